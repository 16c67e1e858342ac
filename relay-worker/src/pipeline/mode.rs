//! A site's mode, and the one place it changes: standing by (another worker of
//! the fleet has the site), running, paused (Moodle refused our credentials, or
//! its circuit breaker is open) until a probe with
//! `core_webservice_get_site_info` passes, or draining before the pipeline
//! stops. Each change is logged and shown in `relay_site_paused` or
//! `relay_site_handovers_total`.
//!
//! The mode only decides; the pipeline stops and resumes its consumer when a
//! transition says so.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::decide::PauseReason;
use crate::metrics;
use crate::moodle::CallError;

/// What the site is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Not this worker's site now: taking nothing.
    Standby,
    /// Taking deliveries.
    Running,
    /// Taking none until a probe passes.
    Paused {
        reason: PauseReason,
        /// When to probe next (ignored while a probe runs).
        next_probe: Instant,
        probing: bool,
    },
    /// Stopping: taking none; what was published settles until `deadline`.
    Draining { deadline: Instant },
}

/// The mode of one site, with what its transitions need.
#[derive(Debug)]
pub struct SiteMode {
    site: String,
    mode: Mode,
    /// Time between probes while paused for credentials, or after a failed probe.
    probe_interval: Duration,
}

impl SiteMode {
    /// A site standing by (a pause left over from a lost connection is cleared).
    pub fn new(site: &str, probe_interval: Duration) -> Self {
        for reason in ["auth", "breaker"] {
            metrics::site_paused(site, reason, false);
        }
        SiteMode {
            site: site.to_owned(),
            mode: Mode::Standby,
            probe_interval,
        }
    }

    /// The fleet gave this worker the site: a standing-by site runs. True when
    /// it changed; the caller starts consuming.
    pub fn claim(&mut self) -> bool {
        if self.mode != Mode::Standby {
            return false;
        }
        metrics::site_handover(&self.site, "claimed");
        self.mode = Mode::Running;
        true
    }

    /// The fleet gave the site to another worker: a running or paused site
    /// stands by. True when it changed; the caller stops taking deliveries and
    /// gives back what it has not published.
    pub fn release(&mut self) -> bool {
        match &self.mode {
            Mode::Running => {}
            Mode::Paused { reason, .. } => metrics::site_paused(&self.site, reason.label(), false),
            Mode::Standby | Mode::Draining { .. } => return false,
        }
        metrics::site_handover(&self.site, "released");
        self.mode = Mode::Standby;
        true
    }

    pub fn get(&self) -> &Mode {
        &self.mode
    }

    /// Whether the site takes deliveries.
    pub fn taking(&self) -> bool {
        self.mode == Mode::Running
    }

    /// Pauses the site for `reason` (a paused site probes no later than this
    /// reason asks; a draining one stays draining).
    pub fn pause(&mut self, reason: PauseReason, now: Instant) {
        let first_probe = match &reason {
            PauseReason::Auth(_) => now + self.probe_interval,
            PauseReason::Breaker { until } => *until,
        };
        match &mut self.mode {
            Mode::Running => {
                let site = self.site.as_str();
                metrics::site_paused(site, reason.label(), true);
                match &reason {
                    PauseReason::Auth(code) => tracing::error!(site, code = %code,
                        "Moodle refused the relay's credentials; site paused, its events wait in the queue until a probe succeeds"),
                    PauseReason::Breaker { .. } => tracing::warn!(
                        site,
                        "Moodle is failing or slow; circuit breaker open, site paused until a probe succeeds"
                    ),
                }
                self.mode = Mode::Paused {
                    reason,
                    next_probe: first_probe,
                    probing: false,
                };
            }
            Mode::Paused { next_probe, .. } => *next_probe = (*next_probe).min(first_probe),
            Mode::Standby | Mode::Draining { .. } => {}
        }
    }

    /// When a probe is due: the site is paused and no probe runs.
    pub fn probe_due(&self) -> Option<Instant> {
        match &self.mode {
            Mode::Paused {
                next_probe,
                probing: false,
                ..
            } => Some(*next_probe),
            _ => None,
        }
    }

    /// A probe was sent.
    pub fn probing(&mut self) {
        if let Mode::Paused { probing, .. } = &mut self.mode {
            *probing = true;
        }
    }

    /// Acts on a probe's answer. True when the site runs again: the caller
    /// starts consuming.
    pub fn probed(&mut self, answer: Result<Value, CallError>, now: Instant) -> bool {
        let Mode::Paused {
            reason,
            next_probe,
            probing,
        } = &mut self.mode
        else {
            return false;
        };
        *probing = false;
        let site = self.site.as_str();
        match answer {
            Ok(_) => {
                metrics::site_paused(site, reason.label(), false);
                tracing::info!(
                    site,
                    reason = reason.label(),
                    "Moodle answers again; site resumed"
                );
                self.mode = Mode::Running;
                true
            }
            Err(CallError::BreakerOpen { retry_at }) => {
                *next_probe = retry_at.max(now);
                false
            }
            Err(CallError::Moodle(e)) => {
                tracing::warn!(site, error = %relay_contract::redact::credentials(&e.to_string()),
                    "probe failed; site stays paused");
                *next_probe = now + self.probe_interval;
                false
            }
        }
    }

    /// Starts stopping, by `deadline` (a second request keeps the first).
    pub fn drain(&mut self, deadline: Instant) {
        match std::mem::replace(&mut self.mode, Mode::Draining { deadline }) {
            Mode::Standby | Mode::Running => {}
            Mode::Paused { reason, .. } => {
                metrics::site_paused(&self.site, reason.label(), false);
            }
            Mode::Draining { deadline: earlier } => {
                self.mode = Mode::Draining { deadline: earlier };
            }
        }
    }

    /// When a draining site stops waiting for what it published.
    pub fn deadline(&self) -> Option<Instant> {
        match self.mode {
            Mode::Draining { deadline } => Some(deadline),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::moodle::MoodleError;

    const INTERVAL: Duration = Duration::from_secs(30);

    fn refused() -> Result<Value, CallError> {
        Err(CallError::Moodle(MoodleError::Http {
            status: 503,
            retry_after: None,
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn an_auth_pause_probes_every_interval_until_moodle_answers() {
        let mut mode = SiteMode::new("mode-auth", INTERVAL);
        mode.claim();
        let t0 = Instant::now();
        mode.pause(PauseReason::Auth("invalidtoken".into()), t0);
        assert!(!mode.taking());
        assert_eq!(mode.probe_due(), Some(t0 + INTERVAL));
        tokio::time::advance(Duration::from_secs(1)).await;
        mode.pause(PauseReason::Auth("invalidtoken".into()), Instant::now());
        assert_eq!(
            mode.probe_due(),
            Some(t0 + INTERVAL),
            "a second refusal does not delay the probe"
        );
        tokio::time::advance(INTERVAL - Duration::from_secs(1)).await;
        mode.probing();
        assert_eq!(mode.probe_due(), None, "one probe at a time");
        let t1 = Instant::now();
        assert!(!mode.probed(refused(), t1));
        assert_eq!(mode.probe_due(), Some(t1 + INTERVAL));

        tokio::time::advance(INTERVAL).await;
        mode.probing();
        assert!(mode.probed(Ok(json!({})), Instant::now()));
        assert!(mode.taking());
        assert_eq!(mode.probe_due(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_breaker_pause_probes_when_the_breaker_lets_a_call_through() {
        let mut mode = SiteMode::new("mode-breaker", INTERVAL);
        mode.claim();
        let t0 = Instant::now();
        let until = t0 + Duration::from_secs(5);
        mode.pause(PauseReason::Breaker { until }, t0);
        assert_eq!(mode.probe_due(), Some(until));
        // A credentials refusal meanwhile never delays the earlier probe.
        mode.pause(PauseReason::Auth("invalidtoken".into()), t0);
        assert_eq!(mode.probe_due(), Some(until));

        tokio::time::advance(Duration::from_secs(5)).await;
        mode.probing();
        let later = Instant::now() + Duration::from_secs(5);
        assert!(!mode.probed(
            Err(CallError::BreakerOpen { retry_at: later }),
            Instant::now()
        ));
        assert_eq!(mode.probe_due(), Some(later));
    }

    #[tokio::test(start_paused = true)]
    async fn draining_is_final() {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut running = SiteMode::new("mode-drain-a", INTERVAL);
        running.claim();
        running.drain(deadline);
        assert!(!running.taking());
        assert_eq!(running.deadline(), Some(deadline));
        running.pause(PauseReason::Auth("x".into()), Instant::now());
        assert_eq!(running.probe_due(), None, "a pause does not end draining");
        running.drain(deadline + INTERVAL);
        assert_eq!(
            running.deadline(),
            Some(deadline),
            "the first deadline holds"
        );

        let mut paused = SiteMode::new("mode-drain-b", INTERVAL);
        paused.claim();
        paused.pause(PauseReason::Auth("x".into()), Instant::now());
        paused.drain(deadline);
        assert_eq!(paused.deadline(), Some(deadline));
        assert_eq!(paused.probe_due(), None, "no probes while draining");
        assert!(!paused.probed(Ok(json!({})), Instant::now()));
        assert!(!paused.taking());
    }

    #[tokio::test(start_paused = true)]
    async fn a_site_moves_between_standby_and_running_with_the_fleets_share() {
        let mut mode = SiteMode::new("mode-fleet", INTERVAL);
        assert_eq!(
            mode.get(),
            &Mode::Standby,
            "nothing is consumed before it is ours"
        );
        assert!(!mode.taking());
        assert!(!mode.release(), "standing by already");
        assert!(mode.claim());
        assert!(mode.taking());
        assert!(!mode.claim(), "running already");

        mode.pause(PauseReason::Auth("invalidtoken".into()), Instant::now());
        assert!(mode.release(), "a paused site can be given away");
        assert_eq!(mode.get(), &Mode::Standby);
        assert_eq!(mode.probe_due(), None, "the new owner probes, not us");

        mode.drain(Instant::now());
        assert!(!mode.claim(), "a draining site is never claimed");
        assert!(!mode.release());
    }
}
