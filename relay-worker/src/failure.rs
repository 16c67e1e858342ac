//! What a failure of one message is: its class, a stable code and a reason.
//!
//! A [`Failure`] carries its [`Class`] (what kind of problem), a stable `code`
//! (what exactly, for dashboards and DLQ filters) and a message for people.
//! Moodle's errors are classified in [`crate::moodle::error`], which also
//! makes their [`Failure`]; what happens next is decided in
//! [`crate::pipeline::decide`]. Nothing else in the worker inspects error texts.

use std::fmt;

use relay_contract::Invalid;

/// What kind of failure this is; it alone decides what happens next (DESIGN.md §4).
pub use relay_contract::dlq::Class;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_bodies_keep_the_validator_code() {
        let f = Failure::invalid(&Invalid::NotObject);
        assert_eq!((f.class, f.code.as_str()), (Class::Invalid, "not_object"));
    }
}
