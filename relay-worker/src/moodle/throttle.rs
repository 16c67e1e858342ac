//! How fast the worker may call one Moodle site: at most `max_concurrency`
//! calls at once, call starts spaced so that neither `min_interval_ms` nor
//! `max_calls_per_minute` is ever exceeded, and a pause when Moodle answers
//! with `Retry-After`.
//!
//! Starts are paced evenly (one every `max(min_interval, 60 s / per_minute)`)
//! rather than allowed in bursts up to the per-minute budget: Moodle shares its
//! PHP workers with people logging in, and a burst is what hurts them.
//!
//! Per site and fleet-wide, because a site's queue has a single active
//! consumer: only one worker at a time calls a given site.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Limits of one site (from `[[sites]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_concurrency: u32,
    pub max_calls_per_minute: u32,
    pub min_interval: Duration,
}

/// Added to the spacing so that network jitter never makes two calls arrive at
/// Moodle closer together than the limits allow.
const SPACING_MARGIN: Duration = Duration::from_millis(5);

impl Limits {
    /// The spacing between two call starts that satisfies both rate limits.
    pub fn spacing(&self) -> Duration {
        let per_minute = Duration::from_secs(60) / self.max_calls_per_minute.max(1);
        let spacing = self.min_interval.max(per_minute);
        if spacing.is_zero() {
            spacing
        } else {
            spacing + SPACING_MARGIN
        }
    }
}

#[derive(Debug, Default)]
struct Pace {
    /// The earliest moment the next call may start.
    next_start: Option<Instant>,
}

/// One site's throttle; cheap to share.
#[derive(Debug, Clone)]
pub struct Throttle {
    slots: Arc<Semaphore>,
    pace: Arc<Mutex<Pace>>,
    spacing: Duration,
}

/// Held for the duration of one call.
#[derive(Debug)]
pub struct CallPermit {
    _slot: OwnedSemaphorePermit,
}

impl Throttle {
    pub fn new(limits: Limits) -> Self {
        Throttle {
            slots: Arc::new(Semaphore::new(limits.max_concurrency.max(1) as usize)),
            pace: Arc::new(Mutex::new(Pace::default())),
            spacing: limits.spacing(),
        }
    }

    /// Waits until a call may start, and reserves its place.
    pub async fn acquire(&self) -> CallPermit {
        // The semaphore is never closed, so acquiring only waits.
        let slot = loop {
            if let Ok(slot) = self.slots.clone().acquire_owned().await {
                break slot;
            }
        };
        let start = {
            let mut pace = self.pace.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let start = pace.next_start.map_or(now, |next| next.max(now));
            pace.next_start = Some(start + self.spacing);
            start
        };
        tokio::time::sleep_until(start).await;
        CallPermit { _slot: slot }
    }

    /// Moodle asked us to wait (`Retry-After`): no call starts before then.
    pub fn pause_for(&self, wait: Duration) {
        let mut pace = self.pace.lock().unwrap_or_else(|p| p.into_inner());
        let until = Instant::now() + wait;
        pace.next_start = Some(pace.next_start.map_or(until, |next| next.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn limits(concurrency: u32, per_minute: u32, min_interval_ms: u64) -> Limits {
        Limits {
            max_concurrency: concurrency,
            max_calls_per_minute: per_minute,
            min_interval: Duration::from_millis(min_interval_ms),
        }
    }

    /// Runs `calls` calls of `work` each through `throttle`; returns their
    /// start times and the most that ran at once.
    async fn run(throttle: &Throttle, calls: usize, work: Duration) -> (Vec<Instant>, usize) {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..calls {
            let (t, running, peak) = (throttle.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = t.acquire().await;
                let start = Instant::now();
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(work).await;
                running.fetch_sub(1, Ordering::SeqCst);
                start
            }));
        }
        let mut starts = Vec::new();
        for task in tasks {
            starts.push(task.await.unwrap_or_else(|e| panic!("{e}")));
        }
        starts.sort();
        (starts, peak.load(Ordering::SeqCst))
    }

    #[tokio::test(start_paused = true)]
    async fn starts_are_spaced_by_the_stricter_limit() {
        assert_eq!(limits(2, 600, 100).spacing(), Duration::from_millis(105));
        assert_eq!(limits(2, 120, 100).spacing(), Duration::from_millis(505));
        let throttle = Throttle::new(limits(2, 600, 100));
        let (starts, _) = run(&throttle, 40, Duration::from_millis(10)).await;
        for pair in starts.windows(2) {
            assert!(
                pair[1] - pair[0] >= Duration::from_millis(100),
                "{:?}",
                pair[1] - pair[0]
            );
        }
        // No 1-second window holds more than 10 starts.
        for (i, first) in starts.iter().enumerate() {
            let within = starts[i..]
                .iter()
                .take_while(|s| **s - *first < Duration::from_secs(1))
                .count();
            assert!(within <= 10, "{within} starts within a second");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_calls_at_once_than_allowed() {
        let throttle = Throttle::new(limits(2, 60_000, 0));
        let (_, peak) = run(&throttle, 30, Duration::from_millis(300)).await;
        assert_eq!(peak, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_holds_every_call_back() {
        let throttle = Throttle::new(limits(2, 60_000, 0));
        let before = Instant::now();
        throttle.pause_for(Duration::from_secs(7));
        let _permit = throttle.acquire().await;
        assert!(Instant::now() - before >= Duration::from_secs(7));
    }
}
