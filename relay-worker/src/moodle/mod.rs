//! Moodle's REST web services as the worker uses them (DESIGN.md §4, §7).
//!
//! - [`form`]: PHP bracket notation for the POST body.
//! - [`token`]: the web-service token, from a file (re-read when it changes) or
//!   the environment.
//! - [`client`]: one call: POST, parse success or Moodle's HTTP-200 error body,
//!   one audit log line.
//! - [`error`]: what can go wrong, and the one mapping of each error to a code
//!   and a failure class.
//! - [`throttle`]: how fast and how much at once one site may be called.
//! - [`breaker`]: the per-site circuit breaker (errors or slow calls open it).
//! - [`coalesce`]: many concurrent lookups answered by one batched call.
//! - [`gateway`]: a site's calls through breaker, throttle and client; its lookups.

pub mod breaker;
pub mod client;
pub mod coalesce;
pub mod error;
pub mod form;
pub mod gateway;
pub mod throttle;
pub mod token;

pub use client::MoodleClient;
pub use error::{CallError, MoodleError};
pub use token::TokenSource;
