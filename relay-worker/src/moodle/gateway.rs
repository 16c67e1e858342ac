//! The gateway to one site's Moodle: every call goes through the circuit
//! breaker, then the throttle, then the client, and its outcome feeds the
//! breaker, the `Retry-After` pause and the metrics. Also the site's lookups:
//! coalesced users and courses, and course completion status.
//!
//! It reports facts (Moodle's error, or that the breaker is open until a
//! moment); whether the site pauses is the pipeline's decision, and it owns
//! the pause.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use relay_contract::SiteId;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::breaker::{Admit, Breaker, State};
use super::client::MoodleClient;
use super::coalesce::{BatchCall, BatchFuture, Coalescer};
use super::error::{CallError, MoodleError};
use super::throttle::{Limits, Throttle};
use super::token::TokenSource;
use crate::config::{EnrichConfig, SiteConfig};
use crate::metrics::MoodleMetrics;
use relay_contract::dlq::Class;

/// A configured site's Moodle.
#[derive(Debug)]
pub struct MoodleGateway {
    pub site: SiteId,
    pub enrich: EnrichConfig,
    client: MoodleClient,
    /// `token_expires_at` of the configuration, when the token file says nothing.
    token_expires_at: Option<jiff::Timestamp>,
    throttle: Throttle,
    breaker: Mutex<Breaker>,
    users: Mutex<Option<Coalescer>>,
    courses: Mutex<Option<Coalescer>>,
    metrics: MoodleMetrics,
}

impl MoodleGateway {
    /// The site's Moodle, or `None` for a pass-through site (no `moodle_url`).
    pub fn from_config(config: &SiteConfig) -> Result<Option<Arc<MoodleGateway>>, MoodleError> {
        let Some(url) = &config.moodle_url else {
            return Ok(None);
        };
        let token = match (&config.token_file, &config.token_env) {
            (Some(path), _) => TokenSource::file(path),
            (None, Some(var)) => TokenSource::Env(var.clone()),
            (None, None) => TokenSource::None,
        };
        let timeout = Duration::from_millis(config.request_timeout_ms);
        let client = MoodleClient::new(config.id.clone(), url, token, timeout)?;
        let limits = Limits {
            max_concurrency: config.max_concurrency,
            max_calls_per_minute: config.max_calls_per_minute,
            min_interval: Duration::from_millis(config.min_interval_ms),
        };
        let site = Arc::new(MoodleGateway {
            site: config.id.clone(),
            enrich: config.enrich.clone(),
            client,
            token_expires_at: config.token_expires_at,
            throttle: Throttle::new(limits),
            breaker: Mutex::new(Breaker::new(&config.breaker)),
            users: Mutex::new(None),
            courses: Mutex::new(None),
            metrics: MoodleMetrics::new(config.id.as_str()),
        });
        site.metrics.breaker(State::Closed.gauge());
        Ok(Some(site))
    }

    /// When the token expires, as far as is known: its file's `expires_at=`
    /// line as last read, else the configuration's `token_expires_at`.
    pub fn token_expiry(&self) -> Option<jiff::Timestamp> {
        self.client.token_expires_at().or(self.token_expires_at)
    }

    /// One call, through breaker and throttle.
    pub async fn call(&self, function: &str, args: &Value) -> Result<Value, CallError> {
        let admit = self.lock_breaker().admit(Instant::now());
        if let Admit::No { retry_at } = admit {
            return Err(CallError::BreakerOpen { retry_at });
        }
        self.breaker_gauge();
        let _permit = self.throttle.acquire().await;
        let started = Instant::now();
        let result = self.client.call(function, args).await;
        let took = started.elapsed();
        let struggling = match &result {
            Ok(_) => false,
            Err(e) => {
                if let Some(wait) = e.retry_after() {
                    self.throttle.pause_for(wait);
                }
                e.class() == Class::Transient
            }
        };
        let state = {
            let mut breaker = self.lock_breaker();
            breaker.record(Instant::now(), took, struggling);
            breaker.state()
        };
        self.metrics.breaker(state.gauge());
        let outcome = result
            .as_ref()
            .map_or_else(MoodleError::code, |_| "ok".into());
        self.metrics.call(function, outcome, took);
        match (result, state) {
            (Ok(value), _) => Ok(value),
            // This failure opened the breaker (or found it open): say so, so the
            // event waits for the site instead of burning a retry.
            (Err(_), State::Open { until }) if struggling => {
                Err(CallError::BreakerOpen { retry_at: until })
            }
            (Err(e), _) => Err(CallError::Moodle(e)),
        }
    }

    /// `core_webservice_get_site_info`: the heartbeat, and the probe that ends
    /// a site's pause.
    pub async fn probe(&self) -> Result<Value, CallError> {
        self.call("core_webservice_get_site_info", &json!({})).await
    }

    /// The user's record (`None` if Moodle has no such user any more).
    pub async fn user(self: &Arc<Self>, id: i64) -> Result<Option<Value>, CallError> {
        let coalescer = self.coalescer(&self.users, |site, ids| {
            Box::pin(async move {
                let answer = site
                    .call(
                        "core_user_get_users_by_field",
                        &json!({"field": "id", "values": ids}),
                    )
                    .await;
                rows(answer, None)
            })
        });
        coalescer.lookup(id).await
    }

    /// The course's record.
    pub async fn course(self: &Arc<Self>, id: i64) -> Result<Option<Value>, CallError> {
        let coalescer = self.coalescer(&self.courses, |site, ids| {
            Box::pin(async move {
                let value = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
                let answer = site
                    .call(
                        "core_course_get_courses_by_field",
                        &json!({"field": "ids", "value": value}),
                    )
                    .await;
                rows(answer, Some("courses"))
            })
        });
        coalescer.lookup(id).await
    }

    /// `core_completion_get_course_completion_status` for one user and course.
    pub async fn completion(&self, course: i64, user: i64) -> Result<Value, CallError> {
        self.call(
            "core_completion_get_course_completion_status",
            &json!({"courseid": course, "userid": user}),
        )
        .await
    }

    fn coalescer(
        self: &Arc<Self>,
        slot: &Mutex<Option<Coalescer>>,
        batch: fn(Arc<MoodleGateway>, Vec<i64>) -> BatchFuture,
    ) -> Coalescer {
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = slot.as_ref() {
            return c.clone();
        }
        // A weak reference: the coalescer's task must not keep the site alive.
        let weak = Arc::downgrade(self);
        let call: BatchCall = Arc::new(move |ids| match weak.upgrade() {
            Some(site) => batch(site, ids),
            None => Box::pin(async {
                Err(CallError::Moodle(MoodleError::Connect(
                    "site is gone".into(),
                )))
            }),
        });
        let c = Coalescer::start(
            call,
            self.enrich.batch_max,
            Duration::from_millis(self.enrich.batch_wait_ms),
        );
        *slot = Some(c.clone());
        c
    }

    fn lock_breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn breaker_gauge(&self) {
        let state = self.lock_breaker().state().gauge();
        self.metrics.breaker(state);
    }
}

/// Rows of a list answer (`field` names the list inside an object answer).
fn rows(answer: Result<Value, CallError>, field: Option<&str>) -> Result<Vec<Value>, CallError> {
    let value = answer?;
    let list = match field {
        Some(f) => value.get(f).cloned().unwrap_or(Value::Null),
        None => value,
    };
    Ok(list.as_array().cloned().unwrap_or_default())
}
