//! Loading the configuration (defaults, file, `RELAY_*` variables) and
//! validating it, with errors that name the bad key.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};

use super::{AmqpConfig, Config, Secret, SiteConfig};

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
const ENV_SECTIONS: [&str; 4] = ["amqp", "worker", "retry", "fleet"];

/// The variables read, without the `RELAY_` prefix. Only these: other `RELAY_*`
/// variables belong to someone else (scripts, or the ones Kubernetes injects
/// for a Service named `relay-worker`, such as `RELAY_WORKER_PORT`).
pub const ENV_KEYS: [&str; 17] = [
    "AMQP_URL",
    "AMQP_URL_FILE",
    "AMQP_PREFETCH",
    "AMQP_DELIVERY_LIMIT",
    "AMQP_CONNECT_TIMEOUT_S",
    "AMQP_SITES_PER_CONNECTION",
    "WORKER_MAX_IN_FLIGHT",
    "WORKER_LISTEN",
    "WORKER_SHUTDOWN_GRACE_S",
    "WORKER_MAX_EVENT_BYTES",
    "WORKER_RECONNECT_MAX_BACKOFF_S",
    "RETRY_DELAYS_S",
    "RETRY_JITTER",
    "FLEET_MEMBER_ID",
    "FLEET_HEARTBEAT_MS",
    "FLEET_MEMBER_TIMEOUT_MS",
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
        self.amqp.validate_urls()?;
        if self.amqp.prefetch == 0 {
            return bad("amqp.prefetch", "must be 1-65535");
        }
        if !(1..=1000).contains(&self.amqp.delivery_limit) {
            return bad("amqp.delivery_limit", "must be 1-1000");
        }
        if !(1..=600).contains(&self.amqp.connect_timeout_s) {
            return bad("amqp.connect_timeout_s", "must be 1-600");
        }
        if !(1..=1000).contains(&self.amqp.sites_per_connection) {
            return bad("amqp.sites_per_connection", "must be 1-1000");
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
        let f = &self.fleet;
        if let Some(id) = &f.member_id
            && (id.is_empty()
                || id.len() > 64
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return bad(
                "fleet.member_id",
                "must be 1-64 characters of letters, digits, '.', '_' and '-'",
            );
        }
        if !(100..=60_000).contains(&f.heartbeat_ms) {
            return bad("fleet.heartbeat_ms", "must be 100-60000");
        }
        if f.member_timeout_ms < 3 * f.heartbeat_ms || f.member_timeout_ms > 600_000 {
            return bad(
                "fleet.member_timeout_ms",
                "must be at least 3 x fleet.heartbeat_ms and at most 600000",
            );
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

impl AmqpConfig {
    /// The broker addresses `url` lists: comma-separated, blanks around each
    /// trimmed, in order (empty entries included, for validation to name).
    pub fn urls(&self) -> Vec<Secret> {
        self.url
            .expose()
            .split(',')
            .map(|url| Secret::new(url.trim()))
            .collect()
    }

    /// Each address must be an AMQP URL; the error names the entry by its
    /// index (`amqp.url[1]`, or `amqp.url` when there is one), never its
    /// credentials.
    fn validate_urls(&self) -> Result<(), ConfigError> {
        let urls = self.urls();
        for (i, url) in urls.iter().enumerate() {
            let key = if urls.len() == 1 {
                "amqp.url".to_owned()
            } else {
                format!("amqp.url[{i}]")
            };
            let bad = |problem: String| Err(ConfigError::Invalid { key, problem });
            let url = url.expose();
            if url.is_empty() {
                return bad("is empty: separate the URLs of several nodes by single commas".into());
            }
            if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
                let hint = if urls.len() > 1 {
                    " (a comma inside a password is written %2C)"
                } else {
                    ""
                };
                return bad(format!("must start with amqp:// or amqps://{hint}"));
            }
            if let Err(e) = url.parse::<lapin::uri::AMQPUri>() {
                // The parser may quote the URL: no password in the message.
                let e = relay_contract::redact::credentials(&e);
                return bad(format!("is not a valid AMQP URL: {e}"));
            }
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
