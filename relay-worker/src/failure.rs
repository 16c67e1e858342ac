//! Where every failure is classified, once, and where its consequence is decided.
//!
//! A [`Failure`] carries its [`Class`] (what kind of problem), a stable `code`
//! (what exactly, for dashboards and DLQ filters) and a message for people.
//! [`decide`] turns a class and the attempts made so far into an [`Action`].
//! Nothing else in the worker inspects error texts.

use std::fmt;

use relay_contract::Invalid;

use crate::moodle::MoodleError;

/// What kind of failure this is; it alone decides what happens next (DESIGN.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// May work later: broker refused or could not route, Moodle overloaded.
    Transient,
    /// Moodle refused our credentials: the whole site must stop.
    Auth,
    /// Moodle refused the request itself: retrying cannot help.
    Client,
    /// The change conflicts with data downstream or in Moodle: record and go on.
    Conflict,
    /// The message is not a valid event.
    Invalid,
    /// The message kept killing workers; dead-lettered by the broker itself.
    Poison,
}

impl Class {
    /// Label value in metrics and the DLQ's `x-relay-error-class` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Transient => "transient",
            Class::Auth => "auth",
            Class::Client => "client",
            Class::Conflict => "conflict",
            Class::Invalid => "invalid",
            Class::Poison => "poison",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified failure of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: Class,
    /// Stable, machine-readable: `schema`, `nacked`, `unroutable`, Moodle's `errorcode`...
    pub code: String,
    /// For people; never holds a secret (callers pass redacted text).
    pub message: String,
}

impl Failure {
    fn new(class: Class, code: &str, message: impl Into<String>) -> Self {
        Failure {
            class,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// The body is not a valid event.
    pub fn invalid(reason: &Invalid) -> Self {
        Failure::new(Class::Invalid, reason.code(), reason.to_string())
    }

    /// A valid event that does not belong where it was published, e.g. its
    /// `moodlesite` is not the queue's site.
    pub fn misrouted(message: impl Into<String>) -> Self {
        Failure::new(Class::Invalid, "misrouted", message)
    }

    /// The AMQP properties the contract requires are missing or disagree with
    /// the event (DESIGN.md §2: `message_id` is the event id, `content_type`
    /// is CloudEvents JSON).
    pub fn bad_properties(message: impl Into<String>) -> Self {
        Failure::new(Class::Invalid, "bad_properties", message)
    }

    /// The broker refused to take the event downstream (negative confirm),
    /// e.g. a downstream queue is full with `reject-publish`.
    pub fn nacked(target: &str) -> Self {
        Failure::new(
            Class::Transient,
            "nacked",
            format!("the broker refused the publish to {target}"),
        )
    }

    /// No downstream queue is bound for the event's routing key. Retried, so a
    /// subscriber that is (re)declaring its queue does not miss events; after
    /// the last retry it waits in the DLQ for a replay.
    pub fn unroutable(routing_key: &str) -> Self {
        Failure::new(
            Class::Transient,
            "unroutable",
            format!("no queue is bound to moodle.events for {routing_key}"),
        )
    }
}

impl Failure {
    /// What a Moodle call's failure means for the event (DESIGN.md §4). Decided
    /// on `errorcode` and `exception`, never on `message`, except the deadlock
    /// and lock-wait text of a `dmlwriteexception`, which is all that tells a
    /// retryable write conflict from a constraint violation.
    pub fn moodle(error: &MoodleError) -> Self {
        let message = relay_contract::redact::credentials(&error.to_string());
        let (class, code) = match error {
            MoodleError::Exception {
                exception,
                errorcode,
                message: text,
                debuginfo,
            } => {
                let class = match errorcode.as_str() {
                    "invalidtoken" | "accessexception" | "nopermissions" | "requiredcapability" => {
                        Class::Auth
                    }
                    _ if exception.ends_with("webservice_access_exception") => Class::Auth,
                    "usernametaken" | "emailalreadyexists" => Class::Conflict,
                    "dmlwriteexception" if is_lock_conflict(text, debuginfo.as_deref()) => {
                        Class::Transient
                    }
                    _ => Class::Client,
                };
                (class, errorcode.clone())
            }
            MoodleError::Disabled => (Class::Auth, "webservices_disabled".to_owned()),
            MoodleError::Http { status: 403, .. } => (Class::Auth, "http_403".to_owned()),
            MoodleError::Http { status, .. } if *status == 429 || *status >= 500 => {
                (Class::Transient, format!("http_{status}"))
            }
            MoodleError::Http { status, .. } => (Class::Client, format!("http_{status}")),
            MoodleError::Timeout(_) => (Class::Transient, "timeout".to_owned()),
            MoodleError::Connect(_) => (Class::Transient, "connect".to_owned()),
            // An HTML error page from a PHP failure: usually passing.
            MoodleError::Decode(_) => (Class::Transient, "bad_response".to_owned()),
            MoodleError::Token(_) => (Class::Auth, "token_unavailable".to_owned()),
        };
        Failure {
            class,
            code,
            message,
        }
    }
}

/// A write that lost a race (deadlock, lock wait, serialisation), as PostgreSQL
/// and MySQL/MariaDB word it.
fn is_lock_conflict(message: &str, debuginfo: Option<&str>) -> bool {
    let text = format!("{message} {}", debuginfo.unwrap_or_default()).to_ascii_lowercase();
    [
        "deadlock",
        "lock wait",
        "could not serialize",
        "lock timeout",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.class, self.code, self.message)
    }
}

/// What the worker does with a failed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Publish to delay step `step` (0-based) with the attempt count raised, then ack.
    Retry { step: usize },
    /// Publish to `relay.dlq` with the DLQ headers, then ack.
    DeadLetter,
    /// Return the message to its queue and pause the site's consumer.
    PauseSite,
    /// Publish to `<site>.conflict.<code>`, then ack.
    RecordConflict,
}

/// The one decision point: `attempts` is how many delayed retries the message
/// has had already, `retry_steps` how many the configuration allows.
pub fn decide(class: Class, attempts: u32, retry_steps: usize) -> Action {
    match class {
        Class::Transient if (attempts as usize) < retry_steps => Action::Retry {
            step: attempts as usize,
        },
        Class::Transient | Class::Client | Class::Invalid | Class::Poison => Action::DeadLetter,
        Class::Auth => Action::PauseSite,
        Class::Conflict => Action::RecordConflict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_walk_the_retry_steps_then_dead_letter() {
        assert_eq!(decide(Class::Transient, 0, 3), Action::Retry { step: 0 });
        assert_eq!(decide(Class::Transient, 2, 3), Action::Retry { step: 2 });
        assert_eq!(decide(Class::Transient, 3, 3), Action::DeadLetter);
        assert_eq!(decide(Class::Transient, 0, 0), Action::DeadLetter);
    }

    #[test]
    fn other_classes_never_retry() {
        for class in [Class::Client, Class::Invalid, Class::Poison] {
            assert_eq!(decide(class, 0, 5), Action::DeadLetter, "{class}");
        }
        assert_eq!(decide(Class::Auth, 0, 5), Action::PauseSite);
        assert_eq!(decide(Class::Conflict, 0, 5), Action::RecordConflict);
    }

    fn exception(exception: &str, errorcode: &str, message: &str) -> MoodleError {
        MoodleError::Exception {
            exception: exception.into(),
            errorcode: errorcode.into(),
            message: message.into(),
            debuginfo: None,
        }
    }

    #[test]
    fn moodle_errors_map_to_the_design_classes() {
        let cases = [
            (
                exception(
                    r"core\exception\moodle_exception",
                    "invalidtoken",
                    "Invalid token",
                ),
                Class::Auth,
            ),
            (
                exception(
                    "webservice_access_exception",
                    "accessexception",
                    "Access control exception",
                ),
                Class::Auth,
            ),
            (
                exception(
                    r"core\exception\required_capability_exception",
                    "nopermissions",
                    "x",
                ),
                Class::Auth,
            ),
            (
                exception(
                    r"core\exception\invalid_parameter_exception",
                    "invalidparameter",
                    "x",
                ),
                Class::Client,
            ),
            (
                exception("dml_missing_record_exception", "invalidrecord", "x"),
                Class::Client,
            ),
            (
                exception("coding_exception", "codingerror", "x"),
                Class::Client,
            ),
            (
                exception("moodle_exception", "usernametaken", "x"),
                Class::Conflict,
            ),
            (
                exception("moodle_exception", "emailalreadyexists", "x"),
                Class::Conflict,
            ),
            (
                exception(
                    "dml_write_exception",
                    "dmlwriteexception",
                    "Error writing: deadlock detected",
                ),
                Class::Transient,
            ),
            (
                exception(
                    "dml_write_exception",
                    "dmlwriteexception",
                    "Lock wait timeout exceeded",
                ),
                Class::Transient,
            ),
            (
                exception(
                    "dml_write_exception",
                    "dmlwriteexception",
                    "duplicate key violates unique constraint",
                ),
                Class::Client,
            ),
            (MoodleError::Disabled, Class::Auth),
            (
                MoodleError::Http {
                    status: 403,
                    retry_after: None,
                },
                Class::Auth,
            ),
            (
                MoodleError::Http {
                    status: 503,
                    retry_after: None,
                },
                Class::Transient,
            ),
            (
                MoodleError::Http {
                    status: 429,
                    retry_after: None,
                },
                Class::Transient,
            ),
            (
                MoodleError::Http {
                    status: 404,
                    retry_after: None,
                },
                Class::Client,
            ),
            (
                MoodleError::Timeout(std::time::Duration::from_secs(10)),
                Class::Transient,
            ),
        ];
        for (error, class) in cases {
            assert_eq!(Failure::moodle(&error).class, class, "{error}");
        }
        let f = Failure::moodle(&exception(
            "x",
            "invalidparameter",
            "Invalid parameter value detected",
        ));
        assert_eq!(f.code, "invalidparameter");
    }

    #[test]
    fn invalid_bodies_keep_the_validator_code() {
        let f = Failure::invalid(&Invalid::NotObject);
        assert_eq!((f.class, f.code.as_str()), (Class::Invalid, "not_object"));
    }
}
