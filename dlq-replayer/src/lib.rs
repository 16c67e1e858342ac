//! `dlq-replayer`: the operator's tool for the relay's dead-letter queue
//! (DESIGN.md §5). It lists, shows, replays, purges, exports and imports
//! dead letters, selected by site, type, failure class and code, time, id and
//! the user an event is about; `export --redact` removes personal data.
//!
//! # Layout
//!
//! - `cli.rs`: the command line.
//! - `broker.rs`: the connection and passive inspection of queues and exchanges.
//! - `reader.rs`: one pass over the queue, each message at most once, up to
//!   its initial depth; what a command does not take is given back at the end.
//! - `dead_letter.rs`: what a message says about its failure (headers, `x-death`).
//! - `filter.rs`: the selection options.
//! - `personal.rs`: personal data in events: the users an event is about, the
//!   list of personal fields, redaction.
//! - `inspect.rs`: `list` and `show` (read only).
//! - `replay.rs`: `replay`: republish with confirms, remove after the confirm.
//! - `archive.rs`: `export`, `import` and `purge` (with its backup).
//! - `codec.rs`: the JSON-lines record of a message, exact round trip.
//! - `output.rs`: tables, JSON lines, summaries.
//! - `error.rs`: errors and exit codes.
//!
//! Safety rule everywhere: a message leaves the queue (is acked) only after
//! its copy is safe (republish confirmed, backup line synced to disk); until
//! then a crash gives it back to the queue.

pub mod archive;
pub mod broker;
pub mod cli;
pub mod codec;
pub mod dead_letter;
pub mod error;
pub mod filter;
pub mod inspect;
pub mod output;
pub mod personal;
pub mod reader;
pub mod replay;

use std::future::Future;
use std::io::{IsTerminal, Write};

use tokio::sync::watch;

use crate::broker::Broker;
use crate::cli::{Cli, Command};
pub use crate::error::Error;
use crate::reader::Reader;

/// Whether the run was asked to stop (Ctrl-C, SIGTERM): commands stop reading,
/// settle what is in flight, give the rest back, and report.
#[derive(Debug, Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Fires when `shutdown` completes.
    pub fn on(shutdown: impl Future<Output = ()> + Send + 'static) -> Stop {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = tx.send(true);
        });
        Stop(rx)
    }

    pub fn requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once a stop is requested (never, if it cannot be any more).
    pub async fn wait(&mut self) {
        if self.0.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Runs one command; `out` receives what the operator asked to see, stderr
/// gets progress, prompts and warnings.
pub async fn run(
    cli: Cli,
    out: &mut dyn Write,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let stop = Stop::on(shutdown);
    // Refuse before connecting: no broker round trip for a usage error.
    check_usage(&cli.command)?;
    let urls = amqp_urls(&cli)?;
    let broker = Broker::connect_first(&urls).await?;
    let queue = cli.queue.as_str();
    let result = match cli.command {
        Command::List {
            filter,
            json,
            summary,
        } => {
            let mode = inspect::ListMode::new(json, summary);
            inspect::list(&broker, queue, &filter.to_filter(), mode, out, stop).await
        }
        Command::Show { id } => inspect::show(&broker, queue, &id, out, stop).await,
        Command::Replay {
            filter,
            dry_run,
            rate,
            limit,
            to_exchange,
            yes,
        } => {
            let filter = filter.to_filter();
            let reader = Reader::open(&broker, queue).await?;
            if !dry_run && !yes {
                confirm_replay(&filter, queue, reader.initial_depth()).await?;
            }
            let options = replay::Options {
                to_exchange,
                rate,
                limit,
                dry_run,
            };
            replay::replay(&broker, reader, &filter, &options, out, stop).await
        }
        Command::Purge {
            filter,
            backup,
            no_backup,
            dry_run,
            ..
        } => {
            let backup = (!no_backup).then(|| backup.unwrap_or_else(archive::default_backup_path));
            let filter = filter.to_filter();
            if dry_run {
                archive::purge_dry_run(&broker, queue, &filter, backup, out, stop).await
            } else {
                archive::purge(&broker, queue, &filter, backup, out, stop).await
            }
        }
        Command::Export {
            filter,
            output,
            redact,
        } => {
            let filter = filter.to_filter();
            archive::export(&broker, queue, &filter, &output, redact, out, stop).await
        }
        Command::Import { file, filter } => {
            archive::import(&broker, queue, &file, &filter.to_filter(), out, stop).await
        }
    };
    broker.close().await;
    result
}

/// The broker URLs to try: the first line of --amqp-url-file (comma-separated
/// for a cluster), else --amqp-url. The file's text is never shown.
fn amqp_urls(cli: &Cli) -> Result<Vec<String>, Error> {
    let Some(path) = &cli.amqp_url_file else {
        return Ok(vec![cli.amqp_url.clone()]);
    };
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(&name, e))?;
    let urls: Vec<String> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    if urls.is_empty() {
        return Err(Error::Usage(format!(
            "{name}: no AMQP URL on its first line"
        )));
    }
    Ok(urls)
}

/// Refusals that need no broker: a purge needs --yes (or --dry-run); a
/// replay without --yes needs a terminal to ask on; --user needs a site.
fn check_usage(command: &Command) -> Result<(), Error> {
    let filter = match command {
        Command::List { filter, .. }
        | Command::Replay { filter, .. }
        | Command::Purge { filter, .. }
        | Command::Export { filter, .. }
        | Command::Import { filter, .. } => Some(filter),
        Command::Show { .. } => None,
    };
    if let Some(filter) = filter {
        filter.check().map_err(Error::Usage)?;
    }
    match command {
        Command::Purge {
            yes: false,
            dry_run: false,
            ..
        } => Err(Error::Usage(
            "purge removes messages: pass --yes to confirm (a backup is written first \
             unless --no-backup)"
                .to_owned(),
        )),
        Command::Replay {
            yes: false,
            dry_run: false,
            ..
        } if !std::io::stdin().is_terminal() => Err(Error::Usage(
            "replay asks for confirmation, but stdin is not a terminal: pass --yes \
             (or --dry-run to see what would be replayed)"
                .to_owned(),
        )),
        _ => Ok(()),
    }
}

/// Asks on the terminal; anything but y/yes is a no (exit 2, nothing changed).
async fn confirm_replay(filter: &filter::Filter, queue: &str, depth: u32) -> Result<(), Error> {
    let question = format!(
        "Replay {} from {queue} ({depth} messages in the queue) to their original route? [y/N] ",
        filter.describe()
    );
    let answer = tokio::task::spawn_blocking(move || {
        eprint!("{question}");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await
    .map_err(|e| Error::Usage(format!("no answer: {e}")))?
    .map_err(|e| Error::file("stdin", e))?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(Error::Usage("not confirmed: nothing replayed".to_owned())),
    }
}
