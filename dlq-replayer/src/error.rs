//! What can go wrong in a run, said so that the operator knows what to do next,
//! and the exit code each failure maps to (0 done, 1 failure, 2 usage error).
//!
//! Broker errors are classified here, in one place, from lapin's error kinds;
//! no other module inspects AMQP reply codes.

use lapin::protocol::{AMQPErrorKind, AMQPSoftError};

/// Exit code of a run that did what was asked.
pub const EXIT_OK: u8 = 0;
/// Exit code of a run that failed (broker, file, or some messages not replayed).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a command line that cannot be run as given.
pub const EXIT_USAGE: u8 = 2;

/// Why a run stopped. Every message names the queue, exchange or file involved;
/// AMQP URLs in messages never show a password.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line asks for something that cannot be done as given.
    #[error("{0}")]
    Usage(String),

    #[error(
        "cannot connect to RabbitMQ at {url}: {source}. Is the broker running and the \
         URL right (--amqp-url or RELAY_AMQP_URL)?"
    )]
    Unreachable { url: String, source: lapin::Error },

    #[error(
        "RabbitMQ at {url} refused the connection: {reason}. Check the user, password \
         and vhost (--amqp-url or RELAY_AMQP_URL)"
    )]
    Refused { url: String, reason: String },

    #[error(
        "queue {queue:?} does not exist in this vhost ({url}); check --queue and the vhost in the URL"
    )]
    QueueNotFound { queue: String, url: String },

    #[error("RabbitMQ refused access to {what}: {reason}; check the user's permissions")]
    AccessRefused { what: String, reason: String },

    #[error("RabbitMQ error while {doing}: {source}")]
    Broker {
        doing: &'static str,
        source: lapin::Error,
    },

    #[error("{path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },

    #[error("{path} line {line}: {reason}")]
    BadRecord {
        path: String,
        line: usize,
        reason: String,
    },

    #[error("no message with id {id:?} among the {seen} messages read from {queue:?}")]
    NotFound {
        id: String,
        queue: String,
        seen: u64,
    },

    /// The run finished but left work undone (e.g. messages not replayed);
    /// the summary above says which.
    #[error("{0}")]
    Incomplete(String),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }

    /// Wraps a broker error from an operation on `what` (a queue or exchange),
    /// naming a missing object or refused access plainly.
    pub fn broker(doing: &'static str, source: lapin::Error) -> Error {
        match soft_error(&source) {
            Some((AMQPSoftError::ACCESSREFUSED, reason)) => Error::AccessRefused {
                what: doing.to_owned(),
                reason,
            },
            _ => Error::Broker { doing, source },
        }
    }

    pub fn file(path: &str, source: std::io::Error) -> Error {
        Error::File {
            path: path.to_owned(),
            source,
        }
    }
}

/// The channel-level AMQP error the broker answered with, if that is what `error` is.
pub fn soft_error(error: &lapin::Error) -> Option<(AMQPSoftError, String)> {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(e) => match e.kind() {
            AMQPErrorKind::Soft(soft) => Some((soft.clone(), e.get_message().to_string())),
            AMQPErrorKind::Hard(_) => None,
        },
        _ => None,
    }
}

/// True when the broker answered 404 NOT_FOUND (a passive declare of a missing
/// queue or exchange).
pub fn is_not_found(error: &lapin::Error) -> bool {
    matches!(soft_error(error), Some((AMQPSoftError::NOTFOUND, _)))
}

/// The error of a failed connection: refused by the broker (it answered), or
/// unreachable.
pub fn connect_error(url: String, source: lapin::Error) -> Error {
    match source.kind() {
        lapin::ErrorKind::ProtocolError(e) => Error::Refused {
            url,
            reason: e.get_message().as_str().trim_end_matches('.').to_owned(),
        },
        _ => Error::Unreachable { url, source },
    }
}

/// `url` with the password of its `user:password@` part replaced by `***`.
/// Text that is not a URL but has an `@` in it is hidden whole.
pub fn redact_url(url: &str) -> String {
    match url.contains("://") {
        true => relay_contract::redact::credentials(url),
        // Not parseable as a URL: where a password starts cannot be told.
        false if url.contains('@') => "(a malformed URL, not shown)".to_owned(),
        false => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_only_the_password() {
        assert_eq!(
            redact_url("amqp://relay:s3cr@t@mq:5672/%2f"),
            "amqp://relay:***@mq:5672/%2f"
        );
        assert_eq!(
            redact_url("amqps://guest:guest@127.0.0.1/vh"),
            "amqps://guest:***@127.0.0.1/vh"
        );
        assert_eq!(redact_url("amqp://mq:5672/%2f"), "amqp://mq:5672/%2f");
        assert_eq!(redact_url("amqp://user@mq/%2f"), "amqp://user@mq/%2f");
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(redact_url("amqp//u:pw@h"), "(a malformed URL, not shown)");
    }

    #[test]
    fn only_usage_errors_exit_with_2() {
        assert_eq!(Error::Usage("x".into()).exit_code(), EXIT_USAGE);
        assert_eq!(Error::Incomplete("x".into()).exit_code(), EXIT_FAILURE);
        let not_found = Error::NotFound {
            id: "x".into(),
            queue: "q".into(),
            seen: 0,
        };
        assert_eq!(not_found.exit_code(), EXIT_FAILURE);
    }
}
