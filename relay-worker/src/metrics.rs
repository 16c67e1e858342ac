//! Named instrumentation events: each function is one thing that happens, and
//! both counts it (Prometheus, prefix `relay_`) and logs it where a person needs
//! to know. Metric and label names are a contract (DESIGN.md §6).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use relay_contract::EventType;

use crate::failure::Failure;

/// Buckets of `relay_event_lag_seconds`: from a busy-but-healthy relay to one
/// that was stopped for a day.
const LAG_BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 600.0, 86_400.0,
];

/// Buckets of `relay_moodle_call_duration_seconds`: around the breaker's
/// default slow-call threshold (2 s) and the default timeout (10 s).
const CALL_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0];

/// Installs the Prometheus recorder once per process and returns its handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("relay_event_lag_seconds".into()),
                    &LAG_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("relay_moodle_call_duration_seconds".into()),
                        &CALL_BUCKETS,
                    )
                })
                .map(PrometheusBuilder::build_recorder);
            match recorder {
                Ok(recorder) => {
                    let handle = recorder.handle();
                    // Fails only if another recorder was installed first (then
                    // that one collects; ours renders nothing useful).
                    if metrics::set_global_recorder(recorder).is_err() {
                        tracing::warn!(
                            "a metrics recorder was already installed; /metrics may be empty"
                        );
                    }
                    handle
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            }
        })
        .clone()
}

/// A site's per-event metrics, registered once when the site starts so the
/// hot path neither allocates label values nor looks series up; every event
/// type's `published` series exists (at 0) from the start.
#[derive(Clone)]
pub struct SiteMetrics {
    consumed: Counter,
    in_flight: Gauge,
    lag: Histogram,
    /// Indexed by `EventType as usize`.
    published: Arc<[Counter]>,
}

impl std::fmt::Debug for SiteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteMetrics").finish_non_exhaustive()
    }
}

impl SiteMetrics {
    pub fn new(site: &str) -> Self {
        let published = EventType::ALL
            .iter()
            .map(|t| {
                counter!("relay_events_published_total", "site" => site.to_owned(), "type" => t.as_str())
            })
            .collect();
        SiteMetrics {
            consumed: counter!("relay_events_consumed_total", "site" => site.to_owned()),
            in_flight: gauge!("relay_in_flight", "site" => site.to_owned()),
            lag: histogram!("relay_event_lag_seconds", "site" => site.to_owned()),
            published,
        }
    }

    /// A delivery was taken from the site's ingest queue.
    pub fn consumed(&self) {
        self.consumed.increment(1);
    }

    /// Events of the site being processed now.
    pub fn in_flight(&self, count: usize) {
        self.in_flight.set(count as f64);
    }

    /// An event was confirmed by the broker on `moodle.events`; `lag_s` is how
    /// long after it happened.
    pub fn published(&self, event_type: EventType, lag_s: Option<f64>) {
        self.published[event_type as usize].increment(1);
        if let Some(lag) = lag_s {
            self.lag.record(lag.max(0.0));
        }
    }
}

/// A site's Moodle calls and circuit breaker.
#[derive(Clone)]
pub struct MoodleMetrics {
    site: String,
    breaker: Gauge,
}

impl std::fmt::Debug for MoodleMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MoodleMetrics").finish_non_exhaustive()
    }
}

impl MoodleMetrics {
    pub fn new(site: &str) -> Self {
        MoodleMetrics {
            site: site.to_owned(),
            breaker: gauge!("relay_breaker_state", "site" => site.to_owned()),
        }
    }

    /// The breaker's state: 0 closed, 1 open, 2 half-open.
    pub fn breaker(&self, state: f64) {
        self.breaker.set(state);
    }

    /// One call to Moodle ended with `outcome` (`ok` or the error's code).
    pub fn call(&self, function: &str, outcome: String, took: Duration) {
        let site = self.site.clone();
        counter!("relay_moodle_calls_total", "site" => site.clone(), "function" => function.to_owned(), "outcome" => outcome)
            .increment(1);
        histogram!("relay_moodle_call_duration_seconds", "site" => site, "function" => function.to_owned())
            .record(took.as_secs_f64());
    }
}

/// A failed event is now waiting in a delay queue.
pub fn retried(site: &str, failure: &Failure, attempt: u32, queue: &str) {
    counter!(
        "relay_events_retried_total",
        "site" => site.to_owned(), "class" => failure.class.as_str(), "code" => failure.code.clone()
    )
    .increment(1);
    tracing::info!(site, class = %failure.class, code = %failure.code, attempt, queue, reason = %failure.message,
        "event scheduled for retry");
}

/// A failed event is now in `relay.dlq`.
pub fn dead_lettered(site: &str, failure: &Failure, message_id: Option<&str>) {
    counter!(
        "relay_events_dead_lettered_total",
        "site" => site.to_owned(), "class" => failure.class.as_str(), "code" => failure.code.clone()
    )
    .increment(1);
    tracing::warn!(site, class = %failure.class, code = %failure.code, message_id, reason = %failure.message,
        "event dead-lettered");
}

/// An event could not be routed downstream: no queue is bound for its key.
pub fn unroutable(site: &str, routing_key: &str) {
    counter!("relay_events_unroutable_total", "site" => site.to_owned()).increment(1);
    tracing::warn!(
        site,
        routing_key,
        "no downstream queue is bound for this event; it will be retried"
    );
}

/// A parked (retry or DLQ) publish was refused; the event goes back to its queue.
pub fn park_refused(site: &str, target: &str) {
    counter!("relay_park_refused_total", "site" => site.to_owned()).increment(1);
    tracing::error!(
        site,
        target,
        "the broker refused to park a failed event; returned to its queue"
    );
}

/// The broker connection is up (1) or down (0).
pub fn broker_connected(up: bool) {
    gauge!("relay_broker_connected").set(if up { 1.0 } else { 0.0 });
}

/// The worker lost the broker and will reconnect after `wait_s`.
pub fn reconnecting(error: &str, wait_s: f64) {
    counter!("relay_broker_reconnects_total").increment(1);
    broker_connected(false);
    tracing::warn!(error, wait_s, "broker connection lost; reconnecting");
}

/// A change conflicted with existing data; recorded on `<site>.conflict.<code>`.
pub fn conflict(site: &str, failure: &Failure) {
    counter!("relay_events_conflicts_total", "site" => site.to_owned(), "code" => failure.code.clone()).increment(1);
    tracing::warn!(site, code = %failure.code, reason = %failure.message, "conflict recorded");
}

/// The site stopped (1) or resumed (0) taking deliveries, and why.
pub fn site_paused(site: &str, reason: &'static str, paused: bool) {
    gauge!("relay_site_paused", "site" => site.to_owned(), "reason" => reason).set(if paused {
        1.0
    } else {
        0.0
    });
}

/// The site's Moodle answered the heartbeat (1) or not (0).
pub fn moodle_up(site: &str, up: bool) {
    gauge!("relay_moodle_up", "site" => site.to_owned()).set(if up { 1.0 } else { 0.0 });
}

/// When the site's web-service token expires (Unix seconds), once known; no
/// series while it is not. Alerts compare it with `time()`.
pub fn token_expiry(site: &str, at: Option<jiff::Timestamp>) {
    if let Some(at) = at {
        gauge!("relay_moodle_token_expiry_timestamp_seconds", "site" => site.to_owned())
            .set(at.as_second() as f64);
    }
}

/// The fleet members this worker sees, itself included.
pub fn fleet_members(count: usize) {
    gauge!("relay_fleet_members").set(count as f64);
}

/// The sites this worker consumes now (owned and not given back).
pub fn sites_active(count: usize) {
    gauge!("relay_sites_active").set(count as f64);
}

/// A site changed hands: this worker `claimed` it or gave it up (`released`),
/// because the fleet's share changed or the worker is stopping.
pub fn site_handover(site: &str, reason: &'static str) {
    counter!("relay_site_handovers_total", "reason" => reason).increment(1);
    tracing::info!(site, reason, "site handed over");
}
