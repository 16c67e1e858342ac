//! The worker's configuration: built-in defaults, then the TOML file, then
//! `RELAY_*` environment variables, then [`Config::validate`] (both in
//! `config/load.rs`).
//!
//! Key names are a contract (DESIGN.md §4): operators' files and variables use
//! them. Each field's doc comment is its user documentation.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use relay_contract::SiteId;
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub amqp: AmqpConfig,
    pub worker: WorkerConfig,
    pub retry: RetryConfig,
    pub fleet: FleetConfig,
    pub sites: Vec<SiteConfig>,
}

/// `[amqp]`: the broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpConfig {
    /// AMQP URL with credentials. Default `amqp://guest:guest@127.0.0.1:5672/%2f`.
    /// For a RabbitMQ cluster, several URLs separated by commas, one per node
    /// (`amqp://u:p@node1:5672/%2f,amqp://u:p@node2:5672/%2f`; a comma inside
    /// a password is written `%2C`): the worker connects to the first that
    /// answers, and after losing a node starts with the next one. Never
    /// logged; prefer `url_file` in production.
    pub url: Secret,
    /// File holding the AMQP URL or URLs (first line); wins over `url`.
    pub url_file: Option<PathBuf>,
    /// Unacknowledged deliveries the broker may push per site queue (1–65535,
    /// default 64). Bounds memory together with `worker.max_in_flight`.
    pub prefetch: u16,
    /// Deliveries after which the broker dead-letters a message that kept
    /// failing without being settled (a poison message), 1–1000, default 10.
    /// Set explicitly on each ingest queue: RabbitMQ 3.10 and 4.x differ.
    pub delivery_limit: u32,
    /// Longest wait, in seconds, for connecting, and for the broker's answer
    /// to each declaration of the topology (1–600, default 30). A broker that
    /// is still starting accepts connections before it answers; after this the
    /// worker gives up and tries again. Declaring many sites may take longer
    /// in all, one quick answer after another.
    pub connect_timeout_s: u64,
    /// Sites per broker connection (1–1000, default 200). A site this worker
    /// consumes holds two channels, and RabbitMQ allows 2,047 per connection:
    /// a worker with more sites opens more connections (to the next nodes of
    /// a cluster, in turn).
    pub sites_per_connection: usize,
}

/// `[worker]`: the process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Events being processed at once across all sites (1–100000, default 256).
    pub max_in_flight: usize,
    /// Address of `/metrics`, `/healthz` and `/readyz`. Default `127.0.0.1:9464`.
    pub listen: SocketAddr,
    /// Seconds to finish in-flight events after SIGTERM before returning them
    /// to the broker (0–3600, default 30).
    pub shutdown_grace_s: u64,
    /// Largest accepted event body in bytes; larger ones go to the DLQ as
    /// `invalid` (1 KiB–64 MiB, default 1 MiB).
    pub max_event_bytes: usize,
    /// Longest wait between reconnection attempts after losing the broker, in
    /// seconds (1–600, default 30). Attempts start at 0.5 s and double.
    pub reconnect_max_backoff_s: u64,
}

/// `[fleet]`: how the workers sharing one configuration share its sites out.
/// Each worker announces itself on the `relay.fleet` exchange; every worker
/// computes the same share from the live members, so no extra service is needed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetConfig {
    /// This worker's name in the fleet (1–64 characters of letters, digits,
    /// `.`, `_` and `-`); unique per running worker. Default: host name,
    /// process id and a random suffix, new at every start.
    pub member_id: Option<String>,
    /// How often a worker announces itself, in milliseconds (100–60000,
    /// default 1000).
    pub heartbeat_ms: u64,
    /// A worker not heard from for this long is gone, in milliseconds (at
    /// least 3 × `heartbeat_ms`, at most 600000; default 5000): its sites are
    /// shared out among the others. A worker that stops says so at once.
    pub member_timeout_ms: u64,
}

/// `[retry]`: delayed retries of transient failures, held by the broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// One delayed attempt per entry, in seconds (each 1–86400); after the last,
    /// the DLQ. Empty: transient failures go to the DLQ at once.
    /// Default `[1, 5, 30, 120, 600]`.
    pub delays_s: Vec<u64>,
    /// Spread of each delay, as a fraction (0–1, default 0.2): a retry waits
    /// between `delay` and `delay × (1 + jitter)`, so failures that happened
    /// together do not come back together.
    pub jitter: f64,
}

/// `[[sites]]`: one Moodle site.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// The plugin's site id (required): `^[a-z0-9][a-z0-9-]{0,31}$`.
    pub id: SiteId,
    /// Moodle's wwwroot. Absent: events are relayed without Moodle calls.
    #[serde(default)]
    pub moodle_url: Option<String>,
    /// File holding the web-service token; re-read when it changes.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Environment variable holding the token (instead of `token_file`).
    #[serde(default)]
    pub token_env: Option<String>,
    /// When the token expires (RFC 3339, e.g. "2027-06-30T00:00:00Z"), for
    /// `relay_moodle_token_expiry_timestamp_seconds`. A token file's own
    /// `expires_at=` line (written by the plugin's `setup_webservice.php
    /// --token-file`) wins over this.
    #[serde(default)]
    pub token_expires_at: Option<jiff::Timestamp>,
    /// Moodle calls at once for this site (1–64, default 2).
    #[serde(default = "defaults::max_concurrency")]
    pub max_concurrency: u32,
    /// Moodle calls per minute for this site (1–60000, default 120).
    #[serde(default = "defaults::max_calls_per_minute")]
    pub max_calls_per_minute: u32,
    /// Minimum time between two Moodle calls, in ms (0–60000, default 100).
    #[serde(default = "defaults::min_interval_ms")]
    pub min_interval_ms: u64,
    /// Time limit of one Moodle call, in ms (100–300000, default 10000).
    #[serde(default = "defaults::request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Seconds between probes while the site is paused for an auth failure
    /// (1–3600, default 30).
    #[serde(default = "defaults::auth_probe_interval_s")]
    pub auth_probe_interval_s: u64,
    /// Seconds between `core_webservice_get_site_info` heartbeats, which drive
    /// `relay_moodle_up` (5–3600, default 30). Only for sites with `moodle_url`.
    #[serde(default = "defaults::heartbeat_s")]
    pub heartbeat_s: u64,
    #[serde(default)]
    pub breaker: BreakerConfig,
    #[serde(default)]
    pub enrich: EnrichConfig,
}

/// `[sites.breaker]`: the per-site circuit breaker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Rolling window in seconds (1–3600, default 60).
    pub window_s: u64,
    /// Calls in the window before the rates count (1–100000, default 10).
    pub min_calls: u32,
    /// Error share that opens the breaker (0–1, default 0.5).
    pub error_rate: f64,
    /// Failed calls in a row that open the breaker at once, whatever the
    /// window holds, so a Moodle that falls over is caught in a few calls
    /// (0 = off, else 2–1000, default 5). Any success ends the run; slow
    /// successes feed only `slow_call_rate`. 1 is refused: a single timeout
    /// would pause the site.
    pub consecutive_failures: u32,
    /// A call slower than this, in ms, counts as slow (1–300000, default 2000).
    pub slow_call_ms: u64,
    /// Slow-call share that opens the breaker (0–1, default 0.5).
    pub slow_call_rate: f64,
    /// Seconds the breaker stays open before a probe (1–3600, default 30).
    pub open_s: u64,
}

/// `[sites.enrich]`: which events get data from Moodle's web services.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnrichConfig {
    /// User events: `core_user_get_users_by_field` (default true).
    pub user: bool,
    /// Course-scoped events: `core_course_get_courses_by_field` (default true).
    pub course: bool,
    /// Course completion: `core_completion_get_course_completion_status` (default true).
    pub completion: bool,
    /// Most ids coalesced into one call (1–1000, default 50).
    pub batch_max: usize,
    /// Longest wait to fill a batch, in ms (0–10000, default 200).
    pub batch_wait_ms: u64,
}

impl SiteConfig {
    /// A pass-through site (no Moodle calls) with every default.
    pub fn new(id: SiteId) -> Self {
        SiteConfig {
            id,
            moodle_url: None,
            token_file: None,
            token_env: None,
            token_expires_at: None,
            max_concurrency: defaults::max_concurrency(),
            max_calls_per_minute: defaults::max_calls_per_minute(),
            min_interval_ms: defaults::min_interval_ms(),
            request_timeout_ms: defaults::request_timeout_ms(),
            auth_probe_interval_s: defaults::auth_probe_interval_s(),
            heartbeat_s: defaults::heartbeat_s(),
            breaker: BreakerConfig::default(),
            enrich: EnrichConfig::default(),
        }
    }
}

mod defaults {
    pub(super) fn max_concurrency() -> u32 {
        2
    }
    pub(super) fn max_calls_per_minute() -> u32 {
        120
    }
    pub(super) fn min_interval_ms() -> u64 {
        100
    }
    pub(super) fn request_timeout_ms() -> u64 {
        10_000
    }
    pub(super) fn auth_probe_interval_s() -> u64 {
        30
    }
    pub(super) fn heartbeat_s() -> u64 {
        30
    }
}

impl Default for AmqpConfig {
    fn default() -> Self {
        AmqpConfig {
            url: Secret::new("amqp://guest:guest@127.0.0.1:5672/%2f"),
            url_file: None,
            prefetch: 64,
            delivery_limit: 10,
            connect_timeout_s: 30,
            sites_per_connection: 200,
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            max_in_flight: 256,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            shutdown_grace_s: 30,
            max_event_bytes: relay_contract::validate::DEFAULT_MAX_EVENT_BYTES,
            reconnect_max_backoff_s: 30,
        }
    }
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            member_id: None,
            heartbeat_ms: 1000,
            member_timeout_ms: 5000,
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            delays_s: vec![1, 5, 30, 120, 600],
            jitter: 0.2,
        }
    }
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            window_s: 60,
            min_calls: 10,
            error_rate: 0.5,
            consecutive_failures: 5,
            slow_call_ms: 2000,
            slow_call_rate: 0.5,
            open_s: 30,
        }
    }
}

impl Default for EnrichConfig {
    fn default() -> Self {
        EnrichConfig {
            user: true,
            course: true,
            completion: true,
            batch_max: 50,
            batch_wait_ms: 200,
        }
    }
}

/// A value that must never be printed: `Debug` and `Display` show `***`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that needs it (e.g. the connection call).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

mod load;

pub use load::{ConfigError, ENV_KEYS, env_help};

/// Loading configurations from TOML text in tests, with an empty environment.
#[cfg(test)]
// figment::Jail closures must return figment's (large) error type.
#[allow(clippy::result_large_err)]
pub(crate) mod test_support {
    use std::path::Path;

    use super::{Config, ConfigError};

    /// Loads `text` as the config file, in a jail with no `RELAY_*` variables.
    pub(crate) fn load(text: &str) -> Result<Config, ConfigError> {
        let mut result = None;
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file("relay.toml", text)?;
            result = Some(Config::load(Some(Path::new("relay.toml"))));
            Ok(())
        });
        result.unwrap_or_else(|| panic!("jail did not run"))
    }
}

#[cfg(test)]
mod tests;
