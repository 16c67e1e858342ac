//! relay-worker: moves Moodle events from `moodle.ingest` to `moodle.events`.
//!
//! Layout, in pipeline order:
//! - [`config`]: the configuration and its validation.
//! - [`topology`]: exchanges and queues, declared at start and exported.
//! - [`run`](mod@run): connect, run every site, reconnect, shut down.
//! - [`connect`](mod@connect): the broker's nodes, tried in turn (round-robin).
//! - [`fleet`]: the workers sharing the sites out, through the broker.
//! - [`pipeline`]: one site's consume → check → enrich → publish → ack loop,
//!   one file per role; [`pipeline::decide`] is where a retry, a dead-letter
//!   and a pause are decided, [`pipeline::mode`] owns a site's pause.
//! - [`acks`]: acknowledging finished deliveries in runs.
//! - [`failure`]: what a failed message is: class, code, reason.
//! - [`moodle`]: Moodle's REST web services (client, token, form encoding).
//! - [`properties`]: properties and headers of what the worker publishes.
//! - [`metrics`]: named instrumentation events (count and log).
//! - [`http`]: `/metrics`, `/healthz`, `/readyz`.
//! - [`validate_cli`]: `relay-worker validate`, the operator's envelope checker.

pub mod acks;
pub mod config;
pub mod connect;
pub mod failure;
pub mod fleet;
pub mod health_cli;
pub mod http;
pub mod metrics;
pub mod moodle;
pub mod pipeline;
pub mod properties;
pub mod run;
pub mod topology;
pub mod validate_cli;

pub use run::{RunError, run, run_with_listener};
