//! Which dead letters a command acts on: `--site`, `--type` (glob), `--class`,
//! `--code`, `--since`/`--until` (or `--older-than`), `--id` and `--user`,
//! and the parsing of their values.
//!
//! Values of one option are alternatives (`--site a --site b`: either site);
//! different options must all hold. An empty filter matches everything.

use jiff::{Span, Timestamp, tz::TimeZone};
use relay_contract::dlq::Class;

use crate::dead_letter::DeadLetter;

/// The selection every reading command applies.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub sites: Vec<String>,
    pub types: Vec<Glob>,
    pub classes: Vec<Class>,
    pub codes: Vec<String>,
    /// Only messages whose last failure is at or after this time.
    pub since: Option<Timestamp>,
    /// Only messages whose last failure is at or before this time.
    pub until: Option<Timestamp>,
    pub ids: Vec<String>,
    /// Only events about one of these users (see `personal.rs`); a body that
    /// is not a JSON object never matches.
    pub users: Vec<u64>,
    /// With `users`: also events one of them made (`data.userid`).
    pub user_as_actor: bool,
}

impl Filter {
    /// True when `message` is selected. Messages without a value for a filtered
    /// field (no site, no failure time...) are not selected by that filter.
    pub fn matches(&self, message: &DeadLetter) -> bool {
        any_equal(&self.sites, message.site.as_deref())
            && (self.classes.is_empty() || message.class.is_some_and(|c| self.classes.contains(&c)))
            && any_equal(&self.codes, message.code.as_deref())
            && any_equal(&self.ids, message.id.as_deref())
            && (self.types.is_empty()
                || message
                    .event_type
                    .as_deref()
                    .is_some_and(|t| self.types.iter().any(|g| g.matches(t))))
            && self.in_time_range(message.last_failed)
            && self.about_user(message)
    }

    fn about_user(&self, message: &DeadLetter) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some(people) = &message.people else {
            return false;
        };
        self.users
            .iter()
            .any(|u| people.about.contains(u) || (self.user_as_actor && people.actor == Some(*u)))
    }

    /// True when no option narrows the selection.
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    fn in_time_range(&self, at: Option<Timestamp>) -> bool {
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let Some(at) = at else { return false };
        self.since.is_none_or(|since| at >= since) && self.until.is_none_or(|until| at <= until)
    }

    /// A short human description, for prompts and summaries.
    pub fn describe(&self) -> String {
        if self.is_empty() {
            return "all messages".to_owned();
        }
        let mut parts = Vec::new();
        let mut list = |name: &str, values: Vec<String>| {
            if !values.is_empty() {
                parts.push(format!("{name} {}", values.join("|")));
            }
        };
        list("site", self.sites.clone());
        list("type", self.types.iter().map(|g| g.0.clone()).collect());
        list("class", self.classes.iter().map(Class::to_string).collect());
        list("code", self.codes.clone());
        list("id", self.ids.clone());
        let users = self.users.iter().map(u64::to_string).collect();
        match self.user_as_actor {
            true => list("user (subject or actor)", users),
            false => list("user", users),
        }
        if let Some(since) = self.since {
            parts.push(format!("failed since {since}"));
        }
        if let Some(until) = self.until {
            parts.push(format!("failed until {until}"));
        }
        format!("messages with {}", parts.join(", "))
    }
}

fn any_equal(wanted: &[String], value: Option<&str>) -> bool {
    wanted.is_empty() || value.is_some_and(|v| wanted.iter().any(|w| w == v))
}

/// A shell-style pattern: `*` is any run of characters (dots included), `?`
/// one character, everything else itself. `moodle.user.*` matches every user
/// event type.
#[derive(Debug, Clone, PartialEq)]
pub struct Glob(pub String);

impl Glob {
    pub fn matches(&self, text: &str) -> bool {
        let pattern: Vec<char> = self.0.chars().collect();
        let text: Vec<char> = text.chars().collect();
        // Iterative matching with one backtrack point: linear in practice.
        let (mut p, mut t) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
                p += 1;
                t += 1;
            } else if p < pattern.len() && pattern[p] == '*' {
                star = Some((p, t));
                p += 1;
            } else if let Some((sp, st)) = star {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        pattern[p..].iter().all(|&c| c == '*')
    }
}

/// Parses a `--since`/`--until` value: an RFC 3339 time
/// (`2026-11-24T03:00:00Z`) or a duration meaning that long before `now`
/// (`2h`, `30m`, `1d`, `1 day 2h`).
pub fn parse_time(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    let span: Span = text.parse().map_err(|_| {
        format!("{text:?} is neither an RFC 3339 time (2026-11-24T03:00:00Z) nor a duration (2h, 30m, 1d)")
    })?;
    // Through a UTC zoned time so that days and weeks are allowed (24 h each).
    now.to_zoned_datetime(TimeZone::UTC)
        .checked_sub(span.abs())
        .map(|z| z.timestamp())
        .map_err(|e| format!("{text:?}: {e}"))
}

/// Parses an `--older-than` value: an age only (`30d`, `12h`), meaning a
/// last failure at or before that long before `now`.
pub fn parse_age(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    if text.parse::<Timestamp>().is_ok() {
        return Err(format!(
            "{text:?} is a time; --older-than takes an age such as 30d (or use --until TIME)"
        ));
    }
    parse_time(text, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(site: &str, class: Class, code: &str, kind: &str, at: &str) -> DeadLetter {
        DeadLetter {
            id: Some(format!("{site}-{class}")),
            site: Some(site.into()),
            event_type: Some(kind.into()),
            class: Some(class),
            code: Some(code.into()),
            last_failed: at.parse().ok(),
            ..DeadLetter::default()
        }
    }

    #[test]
    fn globs_match_whole_type_names() {
        let g = Glob("moodle.user.*".into());
        assert!(g.matches("moodle.user.created"));
        assert!(!g.matches("moodle.enrolment.created"));
        assert!(Glob("*.created".into()).matches("moodle.user.created"));
        assert!(Glob("moodle.*.c?eated".into()).matches("moodle.role.created"));
        assert!(!Glob("moodle.user".into()).matches("moodle.user.created"));
        assert!(Glob("*".into()).matches(""));
        assert!(Glob("a*b*c".into()).matches("aXXbYYbc"));
    }

    #[test]
    fn options_combine_with_and_values_with_or() {
        let m = letter(
            "a",
            Class::Transient,
            "http503",
            "moodle.user.created",
            "2026-11-24T10:00:00Z",
        );
        let mut f = Filter::default();
        assert!(f.matches(&m));
        f.sites = vec!["b".into(), "a".into()];
        assert!(f.matches(&m));
        f.classes = vec![Class::Client];
        assert!(!f.matches(&m));
        f.classes = vec![Class::Transient];
        f.types = vec![Glob("moodle.user.*".into())];
        assert!(f.matches(&m));
        f.codes = vec!["invalidparameter".into()];
        assert!(!f.matches(&m));
    }

    #[test]
    fn time_range_is_on_the_last_failure_and_inclusive() {
        let m = letter("a", Class::Client, "x", "t", "2026-11-24T10:00:00Z");
        let at = |s: &str| s.parse::<Timestamp>().ok();
        let mut f = Filter {
            since: at("2026-11-24T10:00:00Z"),
            until: at("2026-11-24T10:00:00Z"),
            ..Filter::default()
        };
        assert!(f.matches(&m));
        f.since = at("2026-11-24T10:00:01Z");
        assert!(!f.matches(&m));
        let undated = DeadLetter::default();
        assert!(
            !Filter {
                since: at("2000-01-01T00:00:00Z"),
                ..Filter::default()
            }
            .matches(&undated)
        );
    }

    #[test]
    fn times_are_rfc3339_or_durations_ago() {
        let now: Timestamp = "2026-11-24T12:00:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let parse = |s: &str| parse_time(s, now).map(|t| t.to_string());
        assert_eq!(parse("2h").as_deref(), Ok("2026-11-24T10:00:00Z"));
        assert_eq!(parse("30m").as_deref(), Ok("2026-11-24T11:30:00Z"));
        assert_eq!(parse("1d").as_deref(), Ok("2026-11-23T12:00:00Z"));
        assert_eq!(
            parse("2026-11-20T01:02:03+01:00").as_deref(),
            Ok("2026-11-20T00:02:03Z")
        );
        assert!(parse("yesterday").is_err());
        assert_eq!(
            parse_age("30d", now).map(|t| t.to_string()).as_deref(),
            Ok("2026-10-25T12:00:00Z")
        );
        assert!(parse_age("2026-11-20T00:00:00Z", now).is_err());
    }

    #[test]
    fn users_match_the_subject_and_the_actor_only_when_asked() {
        use crate::personal::People;
        let about = |about: Vec<u64>, actor: Option<u64>| DeadLetter {
            people: Some(People { about, actor }),
            ..DeadLetter::default()
        };
        let mut f = Filter {
            users: vec![42, 7],
            ..Filter::default()
        };
        assert!(f.matches(&about(vec![42], Some(2))));
        assert!(!f.matches(&about(vec![43], Some(42))));
        assert!(
            !f.matches(&DeadLetter::default()),
            "a body that is not JSON"
        );
        f.user_as_actor = true;
        assert!(f.matches(&about(vec![43], Some(42))));
        assert!(!f.matches(&about(vec![43], Some(2))));
        assert_eq!(f.describe(), "messages with user (subject or actor) 42|7");
    }

    #[test]
    fn describe_names_every_option() {
        let f = Filter {
            sites: vec!["a".into()],
            classes: vec![Class::Transient, Class::Client],
            ..Filter::default()
        };
        assert_eq!(f.describe(), "messages with site a, class transient|client");
        assert_eq!(Filter::default().describe(), "all messages");
    }
}
