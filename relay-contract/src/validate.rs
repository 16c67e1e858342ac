//! Checks untrusted bytes against the contract and says precisely why they fail.
//!
//! Order of checks: size, UTF-8, JSON syntax, top-level object, known `type`, then
//! the type's JSON Schema (which includes the envelope schema). The first failing
//! step is the reason; a schema failure lists every violated rule with its JSON
//! pointer. The schemas are compiled in: nothing is read from disk.

use std::fmt;

use serde_json::Value;

use crate::event_type::{ENVELOPE_SCHEMA, ENVELOPE_SCHEMA_ID};
use crate::{Envelope, EventType};

/// Default upper bound of an event's size. Moodle events are a few KiB; a body
/// this large is a bug upstream, not an event.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;

/// At most this many violations are listed in a reason.
const MAX_VIOLATIONS: usize = 5;
/// Each violation message is cut to this many characters (it may quote values).
const MAX_VIOLATION_CHARS: usize = 200;

/// Why bytes are not a valid relay event. [`Invalid::code`] is stable and goes into
/// the DLQ's `x-relay-error-code`; `Display` is the human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("body is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("not UTF-8: invalid byte sequence at offset {offset}")]
    NotUtf8 { offset: usize },
    #[error("not JSON: {message}")]
    NotJson { message: String },
    #[error("not a JSON object: a CloudEvent in structured mode is one object")]
    NotObject,
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("{}", ViolationList(.0))]
    Schema(Vec<Violation>),
}

/// One broken schema rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer to the offending value in the event ("" is the whole event).
    pub pointer: String,
    pub message: String,
}

struct ViolationList<'a>(&'a [Violation]);

impl fmt::Display for ViolationList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            let at = if v.pointer.is_empty() {
                "/"
            } else {
                &v.pointer
            };
            write!(f, "at {at}: {}", v.message)?;
        }
        Ok(())
    }
}

impl Invalid {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Invalid::TooLarge { .. } => "too_large",
            Invalid::NotUtf8 { .. } => "not_utf8",
            Invalid::NotJson { .. } => "not_json",
            Invalid::NotObject => "not_object",
            Invalid::UnknownType(_) => "unknown_type",
            Invalid::Schema(_) => "schema",
        }
    }

    /// The schema violations, empty for the other reasons.
    pub fn violations(&self) -> &[Violation] {
        match self {
            Invalid::Schema(v) => v,
            _ => &[],
        }
    }
}

/// The schemas failed to compile: a packaging bug, caught by this crate's tests.
#[derive(Debug, thiserror::Error)]
#[error("compiled-in schema {schema} is broken: {reason}")]
pub struct SchemaError {
    schema: String,
    reason: String,
}

/// Validates events against the compiled-in schemas. Build once, share freely.
pub struct Validator {
    envelope: jsonschema::Validator,
    /// Indexed by `EventType as usize`.
    by_type: Vec<jsonschema::Validator>,
    max_bytes: usize,
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl Validator {
    /// Compiles the envelope schema and the twelve type schemas.
    pub fn new() -> Result<Self, SchemaError> {
        let broken = |schema: &str, reason: String| SchemaError {
            schema: schema.to_owned(),
            reason,
        };
        let envelope_doc: Value = serde_json::from_str(ENVELOPE_SCHEMA)
            .map_err(|e| broken(ENVELOPE_SCHEMA_ID, e.to_string()))?;
        let registry = jsonschema::Registry::new()
            .add(ENVELOPE_SCHEMA_ID, envelope_doc.clone())
            .and_then(|b| b.prepare())
            .map_err(|e| broken(ENVELOPE_SCHEMA_ID, e.to_string()))?;
        let options = || {
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .with_registry(&registry)
        };
        let envelope = options()
            .build(&envelope_doc)
            .map_err(|e| broken(ENVELOPE_SCHEMA_ID, e.to_string()))?;
        let by_type = EventType::ALL
            .into_iter()
            .map(|t| {
                let doc: Value = serde_json::from_str(t.schema_source())
                    .map_err(|e| broken(t.as_str(), e.to_string()))?;
                options()
                    .build(&doc)
                    .map_err(|e| broken(t.as_str(), e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Validator {
            envelope,
            by_type,
            max_bytes: DEFAULT_MAX_EVENT_BYTES,
        })
    }

    /// Sets the size limit in bytes (default [`DEFAULT_MAX_EVENT_BYTES`]).
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Checks raw bytes, as they arrive from the broker or a file.
    pub fn validate_bytes(&self, bytes: &[u8]) -> Result<Envelope, Invalid> {
        if bytes.len() > self.max_bytes {
            return Err(Invalid::TooLarge {
                size: bytes.len(),
                limit: self.max_bytes,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| Invalid::NotUtf8 {
            offset: e.valid_up_to(),
        })?;
        let value: Value = serde_json::from_str(text).map_err(|e| Invalid::NotJson {
            message: e.to_string(),
        })?;
        self.validate_value(value)
    }

    /// Checks an already parsed document.
    pub fn validate_value(&self, value: Value) -> Result<Envelope, Invalid> {
        if !value.is_object() {
            return Err(Invalid::NotObject);
        }
        let schema = match value.get("type").and_then(Value::as_str) {
            Some(name) => {
                let t: EventType = name
                    .parse()
                    .map_err(|_| Invalid::UnknownType(name.to_owned()))?;
                &self.by_type[t as usize]
            }
            // No usable `type`: the envelope schema says what is wrong.
            None => &self.envelope,
        };
        if !schema.is_valid(&value) {
            return Err(Invalid::Schema(violations(schema, &value)));
        }
        // The schema is stricter than the types, so this only fails on a bug;
        // report it as a schema failure rather than losing the event.
        serde_json::from_value(value).map_err(|e| {
            Invalid::Schema(vec![Violation {
                pointer: String::new(),
                message: format!("does not fit the typed envelope: {e}"),
            }])
        })
    }
}

fn violations(schema: &jsonschema::Validator, value: &Value) -> Vec<Violation> {
    let mut out: Vec<Violation> = Vec::new();
    for error in schema.iter_errors(value) {
        let violation = Violation {
            pointer: error.instance_path().to_string(),
            message: shorten(&error.to_string()),
        };
        // The envelope's rules are reached both directly and through each type's
        // schema; report each once.
        if !out.contains(&violation) {
            out.push(violation);
        }
        if out.len() == MAX_VIOLATIONS {
            break;
        }
    }
    out
}

fn shorten(message: &str) -> String {
    match message.char_indices().nth(MAX_VIOLATION_CHARS) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validator() -> Validator {
        Validator::new().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_compiled_in_schema_compiles() {
        validator();
    }

    #[test]
    fn oversize_is_refused_before_parsing() {
        let v = validator().with_max_bytes(10);
        assert_eq!(
            v.validate_bytes(b"{\"type\": \"x\"}"),
            Err(Invalid::TooLarge {
                size: 13,
                limit: 10
            })
        );
    }

    #[test]
    fn invalid_utf8_reports_the_offset() {
        assert_eq!(
            validator().validate_bytes(b"{\"a\":\"\xff\"}"),
            Err(Invalid::NotUtf8 { offset: 6 })
        );
    }

    #[test]
    fn long_violation_messages_are_shortened() {
        let long = "x".repeat(500);
        assert_eq!(shorten(&long).chars().count(), MAX_VIOLATION_CHARS + 1);
    }
}
