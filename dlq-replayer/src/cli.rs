//! The command line: subcommands, their options and the filter options every
//! reading command shares. Parsing only; `lib.rs` runs what was asked.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use jiff::Timestamp;
use relay_contract::dlq::Class;
use relay_contract::routing::DLQ_QUEUE;

use crate::filter::{Filter, Glob, parse_age, parse_time};

/// The retention of dead letters the shipped timer applies
/// (deploy/systemd/dlq-replayer-retention.timer): `purge --older-than 30d`.
pub const RETENTION_DEFAULT: &str = "30d";

/// The broker used when neither `--amqp-url` nor `RELAY_AMQP_URL` is given.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The operator's tool for the relay's dead-letter queue: see what failed and
/// why, then put exactly the right messages back.
///
/// Every command reads the queue at most once, up to the depth it had when the
/// command started; messages a command does not act on stay in the queue,
/// untouched. Exit status: 0 done, 1 failure, 2 usage error.
#[derive(Debug, Parser)]
#[command(name = "dlq-replayer", version, max_term_width = 100)]
pub struct Cli {
    /// AMQP URL of the broker, vhost included [default: amqp://guest:***@127.0.0.1:5672/%2f]
    #[arg(
        long,
        env = "RELAY_AMQP_URL",
        default_value = DEFAULT_AMQP_URL,
        hide_default_value = true,
        hide_env_values = true,
        global = true,
        help_heading = "Connection"
    )]
    pub amqp_url: String,

    /// A file whose first line is the AMQP URL (a systemd credential, say);
    /// wins over --amqp-url. Comma-separated URLs of cluster nodes are tried in turn.
    #[arg(
        long,
        env = "RELAY_AMQP_URL_FILE",
        value_name = "FILE",
        global = true,
        help_heading = "Connection"
    )]
    pub amqp_url_file: Option<PathBuf>,

    /// The dead-letter queue to work on.
    #[arg(long, default_value = DLQ_QUEUE, global = true, help_heading = "Connection")]
    pub queue: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List matching messages: a table, JSON lines (--json) or counts by
    /// site × class × code (--summary). Changes nothing.
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Counts by site, class and code instead of one line per message.
        #[arg(long)]
        summary: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Show one message (by message id): properties, headers and the
    /// pretty-printed body. Changes nothing.
    Show {
        /// The message id (the event id).
        id: String,
    },
    /// Republish matching messages to their original exchange and routing key,
    /// with attempts reset; each is removed from the queue only after the broker
    /// confirmed its republish.
    Replay {
        /// Show what would be replayed, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// At most this many messages per second.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        rate: Option<u32>,
        /// Replay at most this many messages.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// Publish to this exchange instead of the original one (same routing key).
        #[arg(long, value_name = "EXCHANGE")]
        to_exchange: Option<String>,
        /// Do not ask for confirmation (needed when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Remove matching messages, after writing them to a backup file
    /// (JSON lines, the `export` format) unless --no-backup.
    ///
    /// Retention (default 30 days, run daily by
    /// deploy/systemd/dlq-replayer-retention.timer):
    /// `dlq-replayer purge --older-than 30d --no-backup --yes`. No backup on
    /// purpose: a backup would keep the personal data the purge is meant to drop.
    ///
    /// A user's dead letters (erasure request):
    /// `dlq-replayer purge --site lms-prod --user 42 --dry-run`, then `--yes`.
    Purge {
        /// Show what would be removed, and change nothing (no backup written).
        #[arg(long)]
        dry_run: bool,
        /// Required unless --dry-run: purging cannot be undone without the backup.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Where to write the backup [default: dlq-backup-<UTC time>.jsonl].
        #[arg(long, value_name = "FILE", conflicts_with = "no_backup")]
        backup: Option<PathBuf>,
        /// Remove without writing a backup first (retention and erasure: a
        /// backup would keep the personal data).
        #[arg(long)]
        no_backup: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Write matching messages as JSON lines (body, properties and headers,
    /// exactly, unless --redact). Changes nothing.
    Export {
        /// The file to write, or - for stdout.
        #[arg(long, short = 'o', value_name = "FILE", default_value = "-")]
        output: PathBuf,
        /// Remove personal data from the bodies: the snapshot reduced to its
        /// ids, user records fetched from Moodle dropped, names, emails,
        /// usernames, idnumbers... removed from `other`, and their values
        /// masked in the error message. Ids, type, times and the failure
        /// headers stay. A body that is not JSON is dropped. Redacted records
        /// are marked (x-dlq-redacted) and `import` refuses them.
        #[arg(long)]
        redact: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Publish messages from a JSON-lines file (from export or a purge backup)
    /// into the queue, with publisher confirms.
    Import {
        /// The file to read, or - for stdin.
        file: PathBuf,
        #[command(flatten)]
        filter: FilterArgs,
    },
}

/// Which messages a command acts on. Repeat an option for alternatives.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Filters (repeat an option for alternatives)")]
pub struct FilterArgs {
    /// Site id (x-relay-site).
    #[arg(long, value_name = "SITE")]
    pub site: Vec<String>,
    /// Event type, a glob such as 'moodle.user.*' (the type property or the body's type).
    #[arg(long = "type", value_name = "GLOB")]
    pub event_type: Vec<String>,
    /// Failure class: transient, auth, client, conflict, invalid, poison.
    #[arg(long, value_name = "CLASS")]
    pub class: Vec<Class>,
    /// Failure code (x-relay-error-code), e.g. invalidparameter.
    #[arg(long, value_name = "CODE")]
    pub code: Vec<String>,
    /// Last failed at or after: RFC 3339 time or a duration ago (2h, 30m, 1d).
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    pub since: Option<Timestamp>,
    /// Last failed at or before: RFC 3339 time or a duration ago (2h, 30m, 1d).
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    pub until: Option<Timestamp>,
    /// Last failed this long ago or longer: an age (30d, 12h); the retention
    /// option, same as --until with an age.
    #[arg(long, value_name = "AGE", value_parser = age_arg, conflicts_with = "until")]
    pub older_than: Option<Timestamp>,
    /// Message id (the event id).
    #[arg(long, value_name = "ID")]
    pub id: Vec<String>,
    /// Events about this Moodle user id (data.relateduserid, the subject's
    /// user, data.objectid or the snapshot's id for moodle.user.*, the
    /// snapshot's userid otherwise). Not the actor (data.userid): see
    /// --user-as-actor. Bodies that are not JSON never match. User ids are per
    /// site: needs --site (or --any-site).
    #[arg(long, value_name = "ID", value_parser = clap::value_parser!(u64).range(1..))]
    pub user: Vec<u64>,
    /// With --user: also events the user made (data.userid), which are
    /// mostly about other people.
    #[arg(long, requires = "user")]
    pub user_as_actor: bool,
    /// With --user and no --site: the same user id on every site, on purpose.
    #[arg(long, requires = "user", conflicts_with = "site")]
    pub any_site: bool,
}

fn time_arg(text: &str) -> Result<Timestamp, String> {
    parse_time(text, Timestamp::now())
}

fn age_arg(text: &str) -> Result<Timestamp, String> {
    parse_age(text, Timestamp::now())
}

impl FilterArgs {
    pub fn to_filter(&self) -> Filter {
        Filter {
            sites: self.site.clone(),
            types: self.event_type.iter().cloned().map(Glob).collect(),
            classes: self.class.clone(),
            codes: self.code.clone(),
            since: self.since,
            until: self.until.or(self.older_than),
            ids: self.id.clone(),
            users: self.user.clone(),
            user_as_actor: self.user_as_actor,
        }
    }

    /// Refusals clap cannot express: `--user` names a user of one site, so
    /// it needs `--site` or an explicit `--any-site`.
    pub fn check(&self) -> Result<(), String> {
        if !self.user.is_empty() && self.site.is_empty() && !self.any_site {
            return Err(
                "user ids are per Moodle site: give --site SITE with --user \
                 (or --any-site to mean this id on every site)"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("dlq-replayer").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn filters_are_shared_by_reading_commands() {
        let cli = parse(&[
            "replay",
            "--site",
            "a",
            "--class",
            "transient",
            "--type",
            "moodle.user.*",
            "--since",
            "2h",
            "--yes",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let Command::Replay { filter, yes, .. } = cli.command else {
            panic!("not replay");
        };
        assert!(yes);
        let f = filter.to_filter();
        assert_eq!(f.sites, ["a"]);
        assert_eq!(f.classes, [Class::Transient]);
        assert!(f.since.is_some_and(|t| t < Timestamp::now()));
        assert_eq!(cli.queue, "relay.dlq");
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["list", "--since", "yesterday"][..],
            &["replay", "--rate", "0"],
            &["purge", "--no-backup", "--backup", "x"],
            &["list", "--class", "transiant"],
            &["show"],
            &["purge", "--older-than", "2026-01-01T00:00:00Z"],
            &["purge", "--older-than", "1d", "--until", "2d"],
            &["list", "--user-as-actor"],
            &["list", "--user", "0", "--site", "a"],
            &["list", "--user", "4", "--site", "a", "--any-site"],
        ] {
            let err = parse(args)
                .err()
                .unwrap_or_else(|| panic!("{args:?} accepted"));
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn user_needs_a_site_or_any_site() {
        let filter = |args: &[&str]| match parse(args).map(|c| c.command) {
            Ok(Command::List { filter, .. }) => filter,
            other => panic!("{other:?}"),
        };
        assert!(filter(&["list", "--user", "42"]).check().is_err());
        let one = filter(&["list", "--user", "42", "--site", "a"]);
        assert!(one.check().is_ok());
        assert_eq!(one.to_filter().users, [42]);
        assert!(
            filter(&["list", "--user", "42", "--any-site"])
                .check()
                .is_ok()
        );
        assert!(filter(&["list"]).check().is_ok());
        let old = filter(&["list", "--older-than", "30d"]).to_filter();
        assert!(old.until.is_some_and(|t| t < Timestamp::now()));
    }

    #[test]
    fn help_never_shows_the_default_password() {
        let help = Cli::command().render_long_help().to_string();
        assert!(!help.contains("guest:guest"), "{help}");
        assert!(help.contains("guest:***"));
    }
}
