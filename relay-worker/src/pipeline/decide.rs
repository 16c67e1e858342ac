//! The one decision: what happens to a delivery after anything happened to it.
//!
//! Every outcome (published, invalid, a Moodle error, the breaker open, Moodle
//! refusing our credentials, a broker nack, no route) becomes an [`Outcome`],
//! and [`decide`] alone turns it into an [`Action`]. The pipeline carries the
//! action out; nothing else chooses between a retry, the DLQ and a pause.

use tokio::time::Instant;

use crate::failure::{Class, Failure};

/// What happened to a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The broker took responsibility for it: downstream, in a delay queue,
    /// in the DLQ or on a conflict key.
    Confirmed,
    /// It failed, for the reason and with the class the failure carries.
    Failed(Failure),
    /// Its enrichment could not be done: the site's circuit breaker is open
    /// until `until` (Moodle was not called, or this call opened it).
    BreakerOpen { until: Instant },
    /// The broker refused to take a failed delivery where it was parked.
    ParkRefused,
}

/// Why a site stops taking deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PauseReason {
    /// Moodle refused the token or the service (the code says how).
    Auth(String),
    /// The circuit breaker is open until then: Moodle is failing or slow.
    Breaker { until: Instant },
}

impl PauseReason {
    /// The `reason` label of `relay_site_paused`.
    pub fn label(&self) -> &'static str {
        match self {
            PauseReason::Auth(_) => "auth",
            PauseReason::Breaker { .. } => "breaker",
        }
    }
}

/// What the pipeline does with the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Acknowledge it: it is where it belongs.
    Ack,
    /// Publish the failed delivery elsewhere; ack once that is confirmed.
    Park(Park),
    /// Nothing is wrong with the event: give it back, and every later one not
    /// yet published, in order; the site takes nothing until a probe passes.
    PauseSite(PauseReason),
    /// Give it back to its queue (its delivery limit stops a loop).
    Requeue,
}

/// Where a failed delivery goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Park {
    /// To delay step `step` (0-based), with the attempt count raised.
    Retry { step: usize, failure: Failure },
    /// To `relay.dlq`, with the DLQ headers.
    DeadLetter(Failure),
    /// To `<site>.conflict.<code>` on `moodle.events`.
    Conflict(Failure),
}

/// `attempts` is how many delayed retries the delivery has had already,
/// `retry_steps` how many the configuration allows.
pub fn decide(outcome: Outcome, attempts: u32, retry_steps: usize) -> Action {
    let failure = match outcome {
        Outcome::Confirmed => return Action::Ack,
        Outcome::BreakerOpen { until } => return Action::PauseSite(PauseReason::Breaker { until }),
        Outcome::ParkRefused => return Action::Requeue,
        Outcome::Failed(failure) => failure,
    };
    Action::Park(match failure.class {
        Class::Transient if (attempts as usize) < retry_steps => Park::Retry {
            step: attempts as usize,
            failure,
        },
        Class::Transient | Class::Client | Class::Invalid | Class::Poison => {
            Park::DeadLetter(failure)
        }
        Class::Auth => return Action::PauseSite(PauseReason::Auth(failure.code)),
        Class::Conflict => Park::Conflict(failure),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(class: Class) -> Failure {
        Failure {
            class,
            code: "code".into(),
            message: "reason".into(),
        }
    }

    fn failed(class: Class) -> Outcome {
        Outcome::Failed(failure(class))
    }

    #[test]
    fn transient_failures_walk_the_retry_steps_then_dead_letter() {
        let transient = || failed(Class::Transient);
        let retry = |step| {
            Action::Park(Park::Retry {
                step,
                failure: failure(Class::Transient),
            })
        };
        let dead = Action::Park(Park::DeadLetter(failure(Class::Transient)));
        assert_eq!(decide(transient(), 0, 3), retry(0));
        assert_eq!(decide(transient(), 2, 3), retry(2));
        assert_eq!(decide(transient(), 3, 3), dead);
        assert_eq!(decide(transient(), 0, 0), dead);
    }

    #[test]
    fn other_classes_never_retry() {
        for class in [Class::Client, Class::Invalid, Class::Poison] {
            let dead = Action::Park(Park::DeadLetter(failure(class)));
            assert_eq!(decide(failed(class), 0, 5), dead, "{class}");
        }
        let conflict = Action::Park(Park::Conflict(failure(Class::Conflict)));
        assert_eq!(decide(failed(Class::Conflict), 0, 5), conflict);
    }

    #[test]
    fn a_refused_token_or_an_open_breaker_pauses_the_site() {
        assert_eq!(
            decide(failed(Class::Auth), 0, 5),
            Action::PauseSite(PauseReason::Auth("code".into()))
        );
        let until = Instant::now();
        assert_eq!(
            decide(Outcome::BreakerOpen { until }, 4, 5),
            Action::PauseSite(PauseReason::Breaker { until })
        );
    }

    #[test]
    fn confirmed_is_acked_and_a_refused_park_goes_back() {
        assert_eq!(decide(Outcome::Confirmed, 0, 5), Action::Ack);
        assert_eq!(decide(Outcome::ParkRefused, 0, 5), Action::Requeue);
    }
}
