//! Where every failure is classified, once, and where its consequence is decided.
//!
//! A [`Failure`] carries its [`Class`] (what kind of problem), a stable `code`
//! (what exactly, for dashboards and DLQ filters) and a message for people.
//! [`decide`] turns a class and the attempts made so far into an [`Action`].
//! Nothing else in the worker inspects error texts.

use std::fmt;

use relay_contract::Invalid;

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

    #[test]
    fn invalid_bodies_keep_the_validator_code() {
        let f = Failure::invalid(&Invalid::NotObject);
        assert_eq!((f.class, f.code.as_str()), (Class::Invalid, "not_object"));
    }
}
