//! The contract every part of the relay shares: what an event is and where it goes.
//!
//! The JSON Schemas under `schemas/` are the source of truth; this crate compiles
//! them in so binaries need no files at run time, and gives them Rust types.
//!
//! Layout:
//! - [`event_type`]: the twelve event types, their Moodle classes and schemas.
//! - [`envelope`]: the typed CloudEvent ([`Envelope`]) and its attribute types.
//! - [`validate`]: [`Validator`], which checks raw bytes and says precisely why
//!   an event is refused ([`Invalid`]).
//! - [`routing`]: site ids, routing keys, exchange and queue names.
//! - [`dlq`]: what a dead-lettered message carries: header names, the failure
//!   [`dlq::Class`], and typed reading and writing of the header values.
//! - [`redact`]: credentials out of text before it is logged or stored.

pub mod dlq;
pub mod envelope;
pub mod event_type;
pub mod redact;
pub mod routing;
pub mod validate;

pub use envelope::{Envelope, EventData, EventTime, Sequence};
pub use event_type::EventType;
pub use routing::{RoutingKey, SiteId};
pub use validate::{Invalid, Validator, Violation};

/// `content-type` of every event the relay publishes (CloudEvents structured mode).
pub const CLOUDEVENTS_CONTENT_TYPE: &str = "application/cloudevents+json";
