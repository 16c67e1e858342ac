//! The per-site circuit breaker: it opens when, over a rolling window, too many
//! calls fail *or* too many are slow (Moodle slows down 30-60 s before it
//! errors), stays open for `open_s`, then lets one probe through (half-open)
//! and closes when the probe succeeds.
//!
//! It only decides; pausing the site's consumer while it is open is the
//! pipeline's job. Which failures count is decided by the caller: transient
//! ones (timeouts, 5xx) do, a refused request (`invalidparameter`) does not.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::BreakerConfig;

/// The breaker's state; `relay_breaker_state` shows [`State::gauge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open { until: Instant },
    HalfOpen,
}

impl State {
    /// 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> f64 {
        match self {
            State::Closed => 0.0,
            State::Open { .. } => 1.0,
            State::HalfOpen => 2.0,
        }
    }
}

/// May a call go ahead?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// The breaker is half-open and this is its one probe.
    Probe,
    /// Not before this moment.
    No {
        retry_at: Instant,
    },
}

#[derive(Debug, Clone, Copy)]
struct Outcome {
    at: Instant,
    failed: bool,
    slow: bool,
}

/// One site's breaker.
#[derive(Debug)]
pub struct Breaker {
    window: Duration,
    min_calls: usize,
    error_rate: f64,
    slow_call: Duration,
    slow_rate: f64,
    open_for: Duration,
    outcomes: VecDeque<Outcome>,
    state: State,
    probing: bool,
}

impl Breaker {
    pub fn new(config: &BreakerConfig) -> Self {
        Breaker {
            window: Duration::from_secs(config.window_s),
            min_calls: config.min_calls as usize,
            error_rate: config.error_rate,
            slow_call: Duration::from_millis(config.slow_call_ms),
            slow_rate: config.slow_call_rate,
            open_for: Duration::from_secs(config.open_s),
            outcomes: VecDeque::new(),
            state: State::Closed,
            probing: false,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Asks before a call.
    pub fn admit(&mut self, now: Instant) -> Admit {
        match self.state {
            State::Closed => Admit::Yes,
            State::Open { until } if now < until => Admit::No { retry_at: until },
            State::Open { .. } | State::HalfOpen if !self.probing => {
                self.state = State::HalfOpen;
                self.probing = true;
                Admit::Probe
            }
            State::Open { .. } | State::HalfOpen => Admit::No {
                retry_at: now + self.open_for,
            },
        }
    }

    /// Reports a finished call: how long it took and whether it failed in a
    /// way that says the site is struggling.
    pub fn record(&mut self, now: Instant, took: Duration, failed: bool) {
        let slow = took >= self.slow_call;
        if self.probing {
            self.probing = false;
            if failed || slow {
                self.state = State::Open {
                    until: now + self.open_for,
                };
            } else {
                self.state = State::Closed;
                self.outcomes.clear();
            }
            return;
        }
        self.outcomes.push_back(Outcome {
            at: now,
            failed,
            slow,
        });
        while self
            .outcomes
            .front()
            .is_some_and(|o| now.duration_since(o.at) > self.window)
        {
            self.outcomes.pop_front();
        }
        let calls = self.outcomes.len();
        if self.state != State::Closed || calls < self.min_calls {
            return;
        }
        let share = |count: usize| count as f64 / calls as f64;
        let failed = share(self.outcomes.iter().filter(|o| o.failed).count());
        let slow = share(self.outcomes.iter().filter(|o| o.slow).count());
        if failed >= self.error_rate || slow >= self.slow_rate {
            self.state = State::Open {
                until: now + self.open_for,
            };
            self.outcomes.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(&BreakerConfig {
            window_s: 60,
            min_calls: 10,
            error_rate: 0.5,
            slow_call_ms: 2000,
            slow_call_rate: 0.5,
            open_s: 30,
        })
    }

    const FAST: Duration = Duration::from_millis(50);
    const SLOW: Duration = Duration::from_secs(3);

    #[test]
    fn slow_calls_alone_open_it() {
        let mut b = breaker();
        let t0 = Instant::now();
        for i in 0..10 {
            assert_eq!(b.admit(t0), Admit::Yes);
            b.record(t0 + Duration::from_secs(i), SLOW, false);
        }
        assert!(matches!(b.state(), State::Open { .. }), "{:?}", b.state());
    }

    #[test]
    fn errors_open_it_but_not_before_min_calls() {
        let mut b = breaker();
        let t0 = Instant::now();
        for _ in 0..9 {
            b.record(t0, FAST, true);
        }
        assert_eq!(b.state(), State::Closed, "9 calls are below min_calls");
        b.record(t0, FAST, true);
        assert!(matches!(b.state(), State::Open { .. }));
    }

    #[test]
    fn a_healthy_mix_keeps_it_closed_and_old_outcomes_expire() {
        let mut b = breaker();
        let t0 = Instant::now();
        for i in 0..20u32 {
            b.record(t0 + Duration::from_secs(u64::from(i)), FAST, i % 3 == 0);
        }
        assert_eq!(b.state(), State::Closed);
        // 6 failures long ago, then healthy calls: the old ones leave the window.
        let mut b = breaker();
        for _ in 0..6 {
            b.record(t0, FAST, true);
        }
        for i in 0..10 {
            b.record(t0 + Duration::from_secs(61 + i), FAST, false);
        }
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn open_then_one_probe_then_closed_or_open_again() {
        let mut b = breaker();
        let t0 = Instant::now();
        for _ in 0..10 {
            b.record(t0, SLOW, false);
        }
        assert!(matches!(
            b.admit(t0 + Duration::from_secs(29)),
            Admit::No { .. }
        ));
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(b.admit(t1), Admit::Probe);
        assert!(
            matches!(b.admit(t1), Admit::No { .. }),
            "only one probe at a time"
        );
        b.record(t1, SLOW, false);
        assert!(
            matches!(b.state(), State::Open { .. }),
            "a slow probe reopens it"
        );
        let t2 = t1 + Duration::from_secs(30);
        assert_eq!(b.admit(t2), Admit::Probe);
        b.record(t2, FAST, false);
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.admit(t2), Admit::Yes);
    }
}
