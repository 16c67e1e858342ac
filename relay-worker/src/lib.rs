//! relay-worker: moves Moodle events from `moodle.ingest` to `moodle.events`.
//!
//! Layout:
//! - [`validate_cli`]: `relay-worker validate`, the operator's envelope checker.
//!
//! The consume → validate → publish pipeline arrives with its own modules.

pub mod config;
pub mod validate_cli;
