//! The worker's configuration: built-in defaults, then the TOML file, then
//! `RELAY_*` environment variables, then [`Config::validate`].
//!
//! Key names are a contract (DESIGN.md §4): operators' files and variables use
//! them. Each field's doc comment is its user documentation.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use relay_contract::SiteId;
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub amqp: AmqpConfig,
    pub worker: WorkerConfig,
    pub retry: RetryConfig,
    pub sites: Vec<SiteConfig>,
}

/// `[amqp]`: the broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpConfig {
    /// AMQP URL with credentials. Default `amqp://guest:guest@127.0.0.1:5672/%2f`.
    /// Never logged; prefer `url_file` in production.
    pub url: Secret,
    /// File holding the AMQP URL (first line); wins over `url`.
    pub url_file: Option<PathBuf>,
    /// Unacknowledged deliveries the broker may push per site queue (1–65535,
    /// default 64). Bounds memory together with `worker.max_in_flight`.
    pub prefetch: u16,
    /// Deliveries after which the broker dead-letters a message that kept
    /// failing without being settled (a poison message), 1–1000, default 10.
    /// Set explicitly on each ingest queue: RabbitMQ 3.10 and 4.x differ.
    pub delivery_limit: u32,
    /// Longest wait, in seconds, for connecting, declaring the topology and
    /// starting the consumers (1–600, default 30). A broker that is still
    /// starting accepts connections before it answers; after this the worker
    /// gives up and tries again.
    pub connect_timeout_s: u64,
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

/// What is wrong with the configuration, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Load(String),
    #[error("{key}: {problem}")]
    Invalid { key: String, problem: String },
    #[error("amqp.url_file {path}: {source}")]
    UrlFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Sections whose keys `RELAY_<SECTION>_<KEY>` variables override.
const ENV_SECTIONS: [&str; 3] = ["amqp", "worker", "retry"];

/// The variables read, without the `RELAY_` prefix. Only these: other `RELAY_*`
/// variables belong to someone else (scripts, or the ones Kubernetes injects
/// for a Service named `relay-worker`, such as `RELAY_WORKER_PORT`).
pub const ENV_KEYS: [&str; 13] = [
    "AMQP_URL",
    "AMQP_URL_FILE",
    "AMQP_PREFETCH",
    "AMQP_DELIVERY_LIMIT",
    "AMQP_CONNECT_TIMEOUT_S",
    "WORKER_MAX_IN_FLIGHT",
    "WORKER_LISTEN",
    "WORKER_SHUTDOWN_GRACE_S",
    "WORKER_MAX_EVENT_BYTES",
    "WORKER_RECONNECT_MAX_BACKOFF_S",
    "RETRY_DELAYS_S",
    "RETRY_JITTER",
    "SITES",
];

/// The environment part of `--help`.
pub fn env_help() -> String {
    let names: Vec<String> = ENV_KEYS.iter().map(|k| format!("RELAY_{k}")).collect();
    format!(
        "Environment variables override the file's keys (values are TOML values):\n  {}\n\
         e.g. RELAY_RETRY_DELAYS_S=\"[1, 5, 30]\", RELAY_SITES='[{{id = \"lms-prod\"}}]'.\n\
         RELAY_CONFIG names the file. See deploy/relay-worker.example.toml.",
        names.join(", ")
    )
}

impl Config {
    /// Defaults, then `file` (if any), then `RELAY_*` variables; then validated.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::Load(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let env = Env::prefixed("RELAY_").only(&ENV_KEYS).map(|key| {
            let key = key.as_str().to_ascii_lowercase();
            let dotted = ENV_SECTIONS.iter().find_map(|section| {
                key.strip_prefix(section)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .map(|rest| format!("{section}.{rest}"))
            });
            dotted.unwrap_or(key).into()
        });
        let mut config: Config = figment
            .merge(env)
            .extract()
            .map_err(|e| ConfigError::Load(describe(e)))?;
        if let Some(path) = &config.amqp.url_file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::UrlFile {
                path: path.clone(),
                source,
            })?;
            config.amqp.url = Secret::new(text.lines().next().unwrap_or("").trim());
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges and consistency; the error names the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, problem: &str| {
            Err(ConfigError::Invalid {
                key: key.to_owned(),
                problem: problem.to_owned(),
            })
        };
        let url = self.amqp.url.expose();
        if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
            return bad("amqp.url", "must start with amqp:// or amqps://");
        }
        if self.amqp.prefetch == 0 {
            return bad("amqp.prefetch", "must be 1-65535");
        }
        if !(1..=1000).contains(&self.amqp.delivery_limit) {
            return bad("amqp.delivery_limit", "must be 1-1000");
        }
        if !(1..=600).contains(&self.amqp.connect_timeout_s) {
            return bad("amqp.connect_timeout_s", "must be 1-600");
        }
        let w = &self.worker;
        if !(1..=100_000).contains(&w.max_in_flight) {
            return bad("worker.max_in_flight", "must be 1-100000");
        }
        if w.shutdown_grace_s > 3600 {
            return bad("worker.shutdown_grace_s", "must be 0-3600");
        }
        if !(1024..=64 * 1024 * 1024).contains(&w.max_event_bytes) {
            return bad("worker.max_event_bytes", "must be 1024-67108864");
        }
        if !(1..=600).contains(&w.reconnect_max_backoff_s) {
            return bad("worker.reconnect_max_backoff_s", "must be 1-600");
        }
        if let Some(i) = self
            .retry
            .delays_s
            .iter()
            .position(|d| !(1..=86_400).contains(d))
        {
            return bad(&format!("retry.delays_s[{i}]"), "must be 1-86400 seconds");
        }
        if !(0.0..=1.0).contains(&self.retry.jitter) {
            return bad("retry.jitter", "must be between 0 and 1");
        }
        if self.sites.is_empty() {
            return bad("sites", "configure at least one [[sites]] entry with an id");
        }
        let mut seen = BTreeSet::new();
        for (i, site) in self.sites.iter().enumerate() {
            if !seen.insert(site.id.as_str()) {
                return bad(
                    &format!("sites[{i}].id"),
                    &format!("{:?} appears twice", site.id.as_str()),
                );
            }
            site.validate(&format!("sites[{i}]"))?;
        }
        Ok(())
    }
}

impl SiteConfig {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let check = |ok: bool, key: &str, problem: &str| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    key: format!("{at}.{key}"),
                    problem: problem.to_owned(),
                })
            }
        };
        if let Some(url) = &self.moodle_url {
            let ok =
                (url.starts_with("https://") || url.starts_with("http://")) && !url.contains('?');
            check(
                ok,
                "moodle_url",
                "must be the site's http(s) wwwroot, without a query",
            )?;
        }
        check(
            !(self.token_file.is_some() && self.token_env.is_some()),
            "token_file",
            "set token_file or token_env, not both",
        )?;
        check(
            (1..=64).contains(&self.max_concurrency),
            "max_concurrency",
            "must be 1-64",
        )?;
        check(
            (1..=60_000).contains(&self.max_calls_per_minute),
            "max_calls_per_minute",
            "must be 1-60000",
        )?;
        check(
            self.min_interval_ms <= 60_000,
            "min_interval_ms",
            "must be 0-60000",
        )?;
        check(
            (100..=300_000).contains(&self.request_timeout_ms),
            "request_timeout_ms",
            "must be 100-300000",
        )?;
        check(
            (1..=3600).contains(&self.auth_probe_interval_s),
            "auth_probe_interval_s",
            "must be 1-3600",
        )?;
        check(
            (5..=3600).contains(&self.heartbeat_s),
            "heartbeat_s",
            "must be 5-3600",
        )?;
        let b = &self.breaker;
        check(
            (1..=3600).contains(&b.window_s),
            "breaker.window_s",
            "must be 1-3600",
        )?;
        check(
            (1..=100_000).contains(&b.min_calls),
            "breaker.min_calls",
            "must be 1-100000",
        )?;
        check(
            b.error_rate > 0.0 && b.error_rate <= 1.0,
            "breaker.error_rate",
            "must be in (0, 1]",
        )?;
        check(
            matches!(b.consecutive_failures, 0 | 2..=1000),
            "breaker.consecutive_failures",
            "must be 0 (off) or 2-1000",
        )?;
        check(
            (1..=300_000).contains(&b.slow_call_ms),
            "breaker.slow_call_ms",
            "must be 1-300000",
        )?;
        check(
            b.slow_call_rate > 0.0 && b.slow_call_rate <= 1.0,
            "breaker.slow_call_rate",
            "must be in (0, 1]",
        )?;
        check(
            (1..=3600).contains(&b.open_s),
            "breaker.open_s",
            "must be 1-3600",
        )?;
        let e = &self.enrich;
        check(
            (1..=1000).contains(&e.batch_max),
            "enrich.batch_max",
            "must be 1-1000",
        )?;
        check(
            e.batch_wait_ms <= 10_000,
            "enrich.batch_wait_ms",
            "must be 0-10000",
        )?;
        Ok(())
    }
}

/// Figment's message, with its internal profile name taken out of key paths.
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let text = e.kind.to_string();
            let origin = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            if key.is_empty() {
                format!("{text}{origin}")
            } else {
                format!("{key}: {text}{origin}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

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
