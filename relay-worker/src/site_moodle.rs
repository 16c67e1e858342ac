//! The Moodle side of a site's pipeline: an event's enrichment in flight, and
//! the pause a site enters when Moodle refuses our credentials or its circuit
//! breaker opens. While paused the site takes no deliveries (so no retries are
//! burned) and probes Moodle with `core_webservice_get_site_info` until it
//! answers; then consumption resumes by itself.

use std::sync::Arc;
use std::time::Duration;

use lapin::message::Delivery;
use relay_contract::Envelope;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::enrich::enrich;
use crate::metrics;
use crate::moodle::site::{CallError, MoodleSite};

/// An event whose Moodle lookups are done (or failed).
#[derive(Debug)]
pub struct Enriched {
    pub delivery: Delivery,
    pub permit: OwnedSemaphorePermit,
    pub envelope: Envelope,
    /// The body to publish (`None`: unchanged), or why it could not be enriched.
    pub result: Result<Option<Vec<u8>>, CallError>,
}

impl Enriched {
    /// Fetches what `envelope` needs from the site's Moodle.
    pub async fn fetch(
        moodle: Arc<MoodleSite>,
        delivery: Delivery,
        permit: OwnedSemaphorePermit,
        envelope: Envelope,
    ) -> Enriched {
        let result = enrich(&moodle, &envelope, &delivery.data).await;
        Enriched {
            delivery,
            permit,
            envelope,
            result,
        }
    }
}

/// Why a site stopped taking deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PauseReason {
    /// Moodle refused the token or the service (the code says how).
    Auth(String),
    /// The circuit breaker opened: Moodle is failing or slow.
    Breaker,
}

impl PauseReason {
    fn label(&self) -> &'static str {
        match self {
            PauseReason::Auth(_) => "auth",
            PauseReason::Breaker => "breaker",
        }
    }
}

/// A site's pause, from its start to the probe that ends it.
#[derive(Debug)]
pub struct Paused {
    reason: PauseReason,
    /// When to probe next.
    pub next_probe: Instant,
}

impl Paused {
    /// Records the pause (gauge and log); the first probe is at `first_probe`.
    pub fn start(site: &str, reason: PauseReason, first_probe: Instant) -> Paused {
        metrics::site_paused(site, reason.label(), true);
        match &reason {
            PauseReason::Auth(code) => tracing::error!(site, code = %code,
                "Moodle refused the relay's credentials; site paused, its events wait in the queue until a probe succeeds"),
            PauseReason::Breaker => tracing::warn!(
                site,
                "Moodle is failing or slow; circuit breaker open, site paused until a probe succeeds"
            ),
        }
        Paused {
            reason,
            next_probe: first_probe,
        }
    }

    /// Acts on a probe's answer; true when the site may resume.
    pub fn probed(
        &mut self,
        site: &str,
        result: Result<serde_json::Value, CallError>,
        interval: Duration,
    ) -> bool {
        match result {
            Ok(_) => {
                metrics::site_paused(site, self.reason.label(), false);
                tracing::info!(
                    site,
                    reason = self.reason.label(),
                    "Moodle answers again; site resumed"
                );
                true
            }
            Err(CallError::BreakerOpen { retry_at }) => {
                self.next_probe = retry_at;
                false
            }
            Err(CallError::Moodle(e)) => {
                tracing::warn!(site, error = %relay_contract::redact::credentials(&e.to_string()), "probe failed; site stays paused");
                self.next_probe = Instant::now() + interval;
                false
            }
        }
    }

    /// Clears the pause gauges when the pipeline ends.
    pub fn end(site: &str) {
        for reason in ["auth", "breaker"] {
            metrics::site_paused(site, reason, false);
        }
    }
}
