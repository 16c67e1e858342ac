//! What can go wrong with a Moodle call, and the one mapping from each error to
//! a stable code and a failure class (DESIGN.md §4, §7). The audit log, the
//! circuit breaker and the pipeline all read [`MoodleError::code`] and
//! [`MoodleError::class`]; no other place knows Moodle's error codes.
//!
//! Decided on `errorcode` and `exception`, never on `message`, except the
//! deadlock and lock-wait text of a `dmlwriteexception`, which is all that
//! tells a retryable write conflict from a constraint violation.

use std::time::Duration;

use tokio::time::Instant;

use super::token::TokenError;
use crate::failure::Failure;
use relay_contract::dlq::Class;

/// What went wrong with a call, as Moodle or the network said it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoodleError {
    #[error("Moodle raised {exception} ({errorcode}): {message}")]
    Exception {
        exception: String,
        errorcode: String,
        message: String,
        debuginfo: Option<String>,
    },
    #[error("web services or the REST protocol are disabled on the site (HTTP 403, empty body)")]
    Disabled,
    #[error("HTTP {status}")]
    Http {
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot reach Moodle: {0}")]
    Connect(String),
    #[error("Moodle's answer is not JSON: {0}")]
    Decode(String),
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// Why a call did not happen or did not work.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Moodle(#[from] MoodleError),
    /// Moodle was not called, or this call's failure just opened the breaker:
    /// the site is struggling; try again after `retry_at`.
    #[error("the circuit breaker of this site is open")]
    BreakerOpen { retry_at: Instant },
}

/// Moodle `errorcode`s that mean our token or service is refused.
const AUTH_CODES: [&str; 4] = [
    "invalidtoken",
    "accessexception",
    "nopermissions",
    "requiredcapability",
];
/// Moodle `errorcode`s that mean the change conflicts with existing data.
const CONFLICT_CODES: [&str; 2] = ["usernametaken", "emailalreadyexists"];

impl MoodleError {
    /// How long Moodle asked us to wait (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            MoodleError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Stable and machine-readable: Moodle's `errorcode`, or what the network
    /// did (`http_503`, `timeout`...). The `outcome` label of
    /// `relay_moodle_calls_total` and the DLQ's `x-relay-error-code`.
    pub fn code(&self) -> String {
        match self {
            MoodleError::Exception { errorcode, .. } => errorcode.clone(),
            MoodleError::Disabled => "webservices_disabled".into(),
            MoodleError::Http { status, .. } => format!("http_{status}"),
            MoodleError::Timeout(_) => "timeout".into(),
            MoodleError::Connect(_) => "connect".into(),
            // An HTML error page from a PHP failure: usually passing.
            MoodleError::Decode(_) => "bad_response".into(),
            MoodleError::Token(_) => "token_unavailable".into(),
        }
    }

    /// What the failure means for the relay.
    pub fn class(&self) -> Class {
        match self {
            MoodleError::Exception {
                exception,
                errorcode,
                message,
                debuginfo,
            } => {
                let code = errorcode.as_str();
                if AUTH_CODES.contains(&code) || exception.ends_with("webservice_access_exception")
                {
                    Class::Auth
                } else if CONFLICT_CODES.contains(&code) {
                    Class::Conflict
                } else if code == "dmlwriteexception"
                    && is_lock_conflict(message, debuginfo.as_deref())
                {
                    Class::Transient
                } else {
                    Class::Client
                }
            }
            MoodleError::Disabled | MoodleError::Token(_) => Class::Auth,
            MoodleError::Http { status: 403, .. } => Class::Auth,
            MoodleError::Http { status, .. } if *status == 429 || *status >= 500 => {
                Class::Transient
            }
            MoodleError::Http { .. } => Class::Client,
            MoodleError::Timeout(_) | MoodleError::Connect(_) | MoodleError::Decode(_) => {
                Class::Transient
            }
        }
    }
}

impl Failure {
    /// A Moodle call's failure, classified by [`MoodleError::class`].
    pub fn moodle(error: &MoodleError) -> Self {
        Failure {
            class: error.class(),
            code: error.code(),
            message: relay_contract::redact::credentials(&error.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn exception(exception: &str, errorcode: &str, message: &str) -> MoodleError {
        MoodleError::Exception {
            exception: exception.into(),
            errorcode: errorcode.into(),
            message: message.into(),
            debuginfo: None,
        }
    }

    fn http(status: u16) -> MoodleError {
        MoodleError::Http {
            status,
            retry_after: None,
        }
    }

    #[test]
    fn moodle_errors_map_to_the_design_classes() {
        let cases = [
            (
                exception(r"core\exception\moodle_exception", "invalidtoken", "x"),
                Class::Auth,
            ),
            (
                exception("webservice_access_exception", "accessexception", "x"),
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
            (http(403), Class::Auth),
            (http(503), Class::Transient),
            (http(429), Class::Transient),
            (http(404), Class::Client),
            (
                MoodleError::Timeout(Duration::from_secs(10)),
                Class::Transient,
            ),
        ];
        for (error, class) in cases {
            assert_eq!(error.class(), class, "{error}");
        }
    }

    #[test]
    fn codes_are_moodles_errorcode_or_what_the_network_did() {
        assert_eq!(
            exception("x", "invalidparameter", "y").code(),
            "invalidparameter"
        );
        assert_eq!(http(503).code(), "http_503");
        assert_eq!(MoodleError::Disabled.code(), "webservices_disabled");
        assert_eq!(MoodleError::Decode("x".into()).code(), "bad_response");
    }
}
