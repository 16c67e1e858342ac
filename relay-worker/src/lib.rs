//! relay-worker: moves Moodle events from `moodle.ingest` to `moodle.events`.
//!
//! Layout, in pipeline order:
//! - [`config`]: the configuration and its validation.
//! - [`topology`]: exchanges and queues, declared at start and exported.
//! - [`run`](mod@run): connect, run every site, reconnect, shut down.
//! - [`site`]: one site's consume → validate → publish → ack loop.
//! - [`site_moodle`]: enrichment in flight, and pausing a site Moodle refuses.
//! - [`acks`]: acknowledging finished deliveries in runs.
//! - [`enrich`]: Moodle data added to events of sites with a `moodle_url`.
//! - [`failure`]: the one place failures are classified and acted upon.
//! - [`moodle`]: Moodle's REST web services (client, token, form encoding).
//! - [`properties`]: properties and headers of what the worker publishes.
//! - [`metrics`]: named instrumentation events (count and log).
//! - [`http`]: `/metrics`, `/healthz`, `/readyz`.
//! - [`validate_cli`]: `relay-worker validate`, the operator's envelope checker.

pub mod acks;
pub mod config;
pub mod enrich;
pub mod failure;
pub mod http;
pub mod metrics;
pub mod moodle;
pub mod properties;
pub mod run;
pub mod site;
pub mod site_moodle;
pub mod topology;
pub mod validate_cli;

pub use run::{RunError, run, run_with_listener};
