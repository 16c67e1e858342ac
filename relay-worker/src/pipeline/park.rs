//! Parking a failed delivery where [`decide`](super::decide::decide) sent it:
//! a delay queue (a retry held by the broker, not in memory), the DLQ, or the
//! site's conflict key, with the failure headers of DESIGN.md §5.

use lapin::message::Delivery;
use relay_contract::SiteId;
use relay_contract::routing::{DLQ_QUEUE, EVENTS_EXCHANGE, RETRY_EXCHANGE, conflict_key};

use super::decide::Park;
use super::publish::{Stage, Target};
use crate::properties::{self, Origin};
use crate::topology::RetryStep;

/// Where `park` sends `delivery`, which has had `attempts` delayed retries,
/// and what to record once the broker has confirmed it.
pub fn parked(
    park: Park,
    delivery: &Delivery,
    site: &SiteId,
    retry_steps: &[RetryStep],
    attempts: u32,
) -> (Target, Stage) {
    let origin = Origin {
        site: site.as_str(),
        exchange: delivery.exchange.as_str(),
        routing_key: delivery.routing_key.as_str(),
    };
    let now = jiff::Timestamp::now().to_string();
    let failed = |failure, attempts, retry_queue: Option<&str>| {
        properties::failed(
            &delivery.properties,
            failure,
            &origin,
            attempts,
            retry_queue,
            &now,
        )
    };
    let target = |exchange, routing_key, properties| Target {
        exchange,
        routing_key,
        body: None,
        properties,
    };
    match park {
        Park::Retry { step, failure } => {
            let queue = pick(retry_steps.get(step).map_or(&[], |s| &s.queues[..])).to_owned();
            // Same routing key: the delay queue dead-letters it back to its site.
            let properties = failed(&failure, attempts + 1, Some(&queue));
            let stage = Stage::Retry {
                failure,
                attempt: attempts + 1,
                queue,
            };
            (target(RETRY_EXCHANGE, None, properties), stage)
        }
        Park::DeadLetter(failure) => {
            let properties = failed(&failure, attempts, None);
            let key = Some(DLQ_QUEUE.to_owned());
            (target("", key, properties), Stage::DeadLetter { failure })
        }
        Park::Conflict(failure) => {
            let properties = failed(&failure, attempts, None);
            let key = Some(conflict_key(site, &failure.code));
            (
                target(EVENTS_EXCHANGE, key, properties),
                Stage::Conflict { failure },
            )
        }
    }
}

/// One of a retry step's delay queues, at random, to spread retries.
fn pick(queues: &[String]) -> &str {
    let n = uuid::Uuid::new_v4().as_u128() as usize;
    queues
        .get(n % queues.len().max(1))
        .map_or("", String::as_str)
}
