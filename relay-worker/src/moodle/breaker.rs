//! The per-site circuit breaker: it opens when, over a rolling window, too many
//! calls fail *or* too many are slow (Moodle slows down 30-60 s before it
//! errors), or at once after `consecutive_failures` failed calls in a row (a
//! Moodle that falls over completely; the window, still full of successes,
//! would take many seconds to notice). It stays open for `open_s`, then lets
//! one probe through (half-open) and closes when the probe succeeds.
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
    /// Failed calls in a row that open it; 0 = off.
    run_limit: u32,
    outcomes: VecDeque<Outcome>,
    /// Failed calls in a row so far, counted while closed only.
    run: u32,
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
            run_limit: config.consecutive_failures,
            outcomes: VecDeque::new(),
            run: 0,
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
                self.run = 0;
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
        if self.state != State::Closed {
            return;
        }
        // Any success, slow or not, ends the run.
        self.run = if failed {
            self.run.saturating_add(1)
        } else {
            0
        };
        if self.run_is_too_long() || self.rates_are_too_high() {
            self.open(now);
        }
    }

    fn run_is_too_long(&self) -> bool {
        self.run_limit > 0 && self.run >= self.run_limit
    }

    fn rates_are_too_high(&self) -> bool {
        let calls = self.outcomes.len();
        if calls < self.min_calls {
            return false;
        }
        let share = |count: usize| count as f64 / calls as f64;
        let failed = share(self.outcomes.iter().filter(|o| o.failed).count());
        let slow = share(self.outcomes.iter().filter(|o| o.slow).count());
        failed >= self.error_rate || slow >= self.slow_rate
    }

    fn open(&mut self, now: Instant) {
        self.state = State::Open {
            until: now + self.open_for,
        };
        self.outcomes.clear();
        self.run = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rates alone: the run of failures is off.
    fn breaker() -> Breaker {
        Breaker::new(&BreakerConfig {
            window_s: 60,
            min_calls: 10,
            error_rate: 0.5,
            consecutive_failures: 0,
            slow_call_ms: 2000,
            slow_call_rate: 0.5,
            open_s: 30,
        })
    }

    /// The run of failures alone: the rates need more calls than any test makes.
    fn run_breaker() -> Breaker {
        Breaker::new(&BreakerConfig {
            min_calls: 100_000,
            consecutive_failures: 5,
            ..BreakerConfig::default()
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

    /// Time from the first failure until the breaker opened, for a Moodle
    /// that answered every call for 60 s and then fails every call, one call
    /// per 100 ms (the default `min_interval_ms`); `None` if not within 5 s.
    async fn falls_over(consecutive_failures: u32) -> Option<Duration> {
        let mut b = Breaker::new(&BreakerConfig {
            consecutive_failures,
            ..BreakerConfig::default()
        });
        let every = Duration::from_millis(100);
        let healthy_until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < healthy_until {
            assert_eq!(b.admit(Instant::now()), Admit::Yes);
            b.record(Instant::now(), FAST, false);
            tokio::time::advance(every).await;
        }
        let first_failure = Instant::now();
        while Instant::now() - first_failure <= Duration::from_secs(5) {
            assert_eq!(b.admit(Instant::now()), Admit::Yes);
            b.record(Instant::now(), FAST, true);
            if matches!(b.state(), State::Open { .. }) {
                return Some(Instant::now() - first_failure);
            }
            tokio::time::advance(every).await;
        }
        None
    }

    #[tokio::test(start_paused = true)]
    async fn a_moodle_failing_every_call_after_a_healthy_window_opens_it_at_once() {
        let opened = falls_over(5).await;
        assert!(
            opened.is_some_and(|t| t <= Duration::from_secs(1)),
            "5 failures in a row, 100 ms apart: {opened:?}"
        );
        assert_eq!(
            falls_over(0).await,
            None,
            "the rates alone: the window is still full of successes"
        );
    }

    #[test]
    fn a_success_ends_the_run_of_failures() {
        let mut b = run_breaker();
        let t0 = Instant::now();
        for _ in 0..4 {
            b.record(t0, FAST, true);
        }
        b.record(t0, FAST, false);
        for _ in 0..4 {
            b.record(t0, FAST, true);
        }
        assert_eq!(b.state(), State::Closed, "4, a success, then 4 again");
        b.record(t0, FAST, true);
        assert!(
            matches!(b.state(), State::Open { .. }),
            "the fifth in a row"
        );
    }

    #[test]
    fn a_slow_success_ends_the_run_too() {
        let mut b = run_breaker();
        let t0 = Instant::now();
        for _ in 0..4 {
            b.record(t0, FAST, true);
        }
        b.record(t0, SLOW, false);
        for _ in 0..4 {
            b.record(t0, FAST, true);
        }
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn the_run_starts_again_after_the_breaker_closes() {
        let mut b = run_breaker();
        let t0 = Instant::now();
        for _ in 0..5 {
            b.record(t0, FAST, true);
        }
        assert!(matches!(b.state(), State::Open { .. }));
        // Calls that were under way when it opened finish late: not counted.
        for _ in 0..5 {
            b.record(t0, FAST, true);
        }
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(b.admit(t1), Admit::Probe);
        b.record(t1, FAST, false);
        assert_eq!(b.state(), State::Closed);
        for _ in 0..4 {
            b.record(t1, FAST, true);
        }
        assert_eq!(b.state(), State::Closed, "a new run of 4");
    }
}
