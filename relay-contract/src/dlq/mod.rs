//! The DLQ contract (DESIGN.md §5): the header names every dead-lettered
//! message carries, the failure [`Class`] it records, and typed access to the
//! headers' values ([`attempts`], [`set_attempts`], [`class`], [`text`]...).
//!
//! The worker writes them; `dlq-replayer` reads, filters and resets them. Both
//! go through this module, so neither spells a header name or picks a value
//! type of its own.

mod class;
mod headers;

pub use class::{Class, UnknownClass};
pub use headers::{
    HeadersMut, attempts, class, count, count_value, replay_count, set_attempts, set_class,
    set_replay_count, set_text, text, text_value,
};

/// Failure class: a [`Class`] name (`transient`, `auth`, `client`, `conflict`,
/// `invalid` or `poison`).
pub const ERROR_CLASS: &str = "x-relay-error-class";
/// Machine-readable code, e.g. Moodle's `errorcode` or a validation code like `schema`.
pub const ERROR_CODE: &str = "x-relay-error-code";
/// Human-readable reason, at most [`MAX_ERROR_MESSAGE_BYTES`], secrets redacted.
pub const ERROR_MESSAGE: &str = "x-relay-error-message";
/// How many times the relay tried this message.
pub const ATTEMPTS: &str = "x-relay-attempts";
/// RFC 3339 time of the first failure.
pub const FIRST_FAILED_AT: &str = "x-relay-first-failed-at";
/// RFC 3339 time of the last failure.
pub const LAST_FAILED_AT: &str = "x-relay-last-failed-at";
/// Site id the message belongs to.
pub const SITE: &str = "x-relay-site";
/// Exchange the message was first published to.
pub const ORIGINAL_EXCHANGE: &str = "x-relay-original-exchange";
/// Routing key the message was first published with.
pub const ORIGINAL_ROUTING_KEY: &str = "x-relay-original-routing-key";
/// Version of the worker that dead-lettered it.
pub const WORKER_VERSION: &str = "x-relay-worker-version";
/// Set by `dlq-replayer` when it puts a message back.
pub const REPLAYED_AT: &str = "x-relay-replayed-at";
/// How many times `dlq-replayer` has put this message back.
pub const REPLAY_COUNT: &str = "x-relay-replay-count";
/// Added by the broker when it dead-letters on its own (poison messages).
pub const X_DEATH: &str = "x-death";

/// Upper bound of [`ERROR_MESSAGE`]'s value, in bytes.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 1024;

/// Every header the worker sets on a dead-lettered message.
pub const WORKER_HEADERS: [&str; 10] = [
    ERROR_CLASS,
    ERROR_CODE,
    ERROR_MESSAGE,
    ATTEMPTS,
    FIRST_FAILED_AT,
    LAST_FAILED_AT,
    SITE,
    ORIGINAL_EXCHANGE,
    ORIGINAL_ROUTING_KEY,
    WORKER_VERSION,
];

/// Cuts `message` to at most [`MAX_ERROR_MESSAGE_BYTES`] on a character boundary.
pub fn truncate_error_message(message: &str) -> &str {
    if message.len() <= MAX_ERROR_MESSAGE_BYTES {
        return message;
    }
    let mut end = MAX_ERROR_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_ERROR_MESSAGE_BYTES);
        let cut = truncate_error_message(&long);
        assert!(cut.len() <= MAX_ERROR_MESSAGE_BYTES);
        assert!(cut.len() >= MAX_ERROR_MESSAGE_BYTES - 1);
        assert_eq!(truncate_error_message("short"), "short");
    }
}
