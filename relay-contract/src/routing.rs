//! Where events go: site ids, routing keys, and the exchange and queue names of
//! the topology (DESIGN.md §1, §4).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::EventType;

/// Topic exchange the Moodle plugin publishes to.
pub const INGEST_EXCHANGE: &str = "moodle.ingest";
/// Topic exchange downstream systems bind their queues to.
pub const EVENTS_EXCHANGE: &str = "moodle.events";
/// Quorum queue holding what failed, for `dlq-replayer`.
pub const DLQ_QUEUE: &str = "relay.dlq";
/// Headers exchange the worker publishes delayed retries to; each delay queue
/// is bound by its name in the [`RETRY_QUEUE_HEADER`] header, so the message
/// keeps its original routing key.
pub const RETRY_EXCHANGE: &str = "relay.retry";
/// Topic exchange the delay queues dead-letter into when a retry is due; it
/// routes by the original routing key back to the site's ingest queue only.
pub const REQUEUE_EXCHANGE: &str = "relay.requeue";
/// Fanout exchange on which the workers of a fleet announce themselves.
pub const FLEET_EXCHANGE: &str = "relay.fleet";
/// Header naming the delay queue a retry is meant for. Deliberately not
/// `x-`-prefixed: RabbitMQ's headers exchange ignores such headers when
/// matching, which would send every retry to every delay queue.
pub const RETRY_QUEUE_HEADER: &str = "relay-retry-queue";
/// Routing key that conflicts found while enriching are published with:
/// `<site>.conflict.<code>` on [`EVENTS_EXCHANGE`].
pub fn conflict_key(site: &SiteId, code: &str) -> String {
    format!("{site}.conflict.{code}")
}

/// The delay queue holding retries for `delay_ms` milliseconds.
pub fn retry_queue(delay_ms: u64) -> String {
    format!("relay.retry.{delay_ms}ms")
}

/// What every site's ingest queue name starts with.
pub const INGEST_QUEUE_PREFIX: &str = "relay.ingest.";

/// The site's ingest queue, `relay.ingest.<site>`.
pub fn ingest_queue(site: &SiteId) -> String {
    format!("{INGEST_QUEUE_PREFIX}{site}")
}

/// The site whose ingest queue `queue` is (the inverse of [`ingest_queue`]),
/// or `None` when it is not an ingest queue.
pub fn ingest_queue_site(queue: &str) -> Option<&str> {
    queue
        .strip_prefix(INGEST_QUEUE_PREFIX)
        .filter(|site| !site.is_empty())
}

/// A Moodle site id as configured in the plugin: `^[a-z0-9][a-z0-9-]{0,31}$`.
///
/// No dots, so it is always exactly the first word of a routing key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteId(String);

/// Why a site id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("site id {0:?} must be 1-32 characters of a-z, 0-9 and '-', not starting with '-'")]
pub struct BadSiteId(pub String);

impl SiteId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SiteId {
    type Err = BadSiteId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=32).contains(&s.len())
            && !s.starts_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(SiteId(s.to_owned()))
        } else {
            Err(BadSiteId(s.to_owned()))
        }
    }
}

impl fmt::Display for SiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for SiteId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SiteId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `<site>.<entity>.<action>`, the routing key of an event on both exchanges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoutingKey {
    pub site: SiteId,
    pub event_type: EventType,
}

/// Why a routing key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("routing key {0:?} is not <site>.<entity>.<action> for a known event type")]
pub struct BadRoutingKey(pub String);

impl RoutingKey {
    pub fn new(site: SiteId, event_type: EventType) -> Self {
        RoutingKey { site, event_type }
    }
}

impl fmt::Display for RoutingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.site, self.event_type.routing_suffix())
    }
}

impl FromStr for RoutingKey {
    type Err = BadRoutingKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadRoutingKey(s.to_owned());
        let (site, suffix) = s.split_once('.').ok_or_else(bad)?;
        let site = site.parse().map_err(|_| bad())?;
        let event_type = EventType::from_routing_suffix(suffix).ok_or_else(bad)?;
        Ok(RoutingKey { site, event_type })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_ids_follow_the_plugin_rule() {
        for good in ["lms-prod", "a", "0", "x1-2", &"a".repeat(32)] {
            assert!(good.parse::<SiteId>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "-lms",
            "lms.prod",
            "LMS",
            "lms_prod",
            "lms prod",
            &"a".repeat(33),
        ] {
            assert!(bad.parse::<SiteId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ingest_queue_names_give_their_site_back() {
        let site: SiteId = "lms-prod".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ingest_queue(&site), "relay.ingest.lms-prod");
        assert_eq!(ingest_queue_site(&ingest_queue(&site)), Some("lms-prod"));
        for other in ["relay.ingest.", "relay.dlq", "relay.retry.1000ms", "lms"] {
            assert_eq!(ingest_queue_site(other), None, "{other}");
        }
    }

    #[test]
    fn routing_keys_round_trip_for_every_type() {
        let site: SiteId = "lms-prod".parse().unwrap_or_else(|e| panic!("{e}"));
        for t in EventType::ALL {
            let key = RoutingKey::new(site.clone(), t);
            let text = key.to_string();
            assert_eq!(text.split('.').count(), 3, "{text}");
            assert_eq!(text.parse::<RoutingKey>(), Ok(key));
        }
        assert_eq!(
            RoutingKey::new(site, EventType::CourseCompleted).to_string(),
            "lms-prod.completion.course_completed"
        );
    }

    #[test]
    fn malformed_routing_keys_are_refused() {
        for bad in [
            "lms-prod",
            "lms-prod.user",
            "lms-prod.grade.updated",
            "a.b.user.created",
            "",
        ] {
            assert!(bad.parse::<RoutingKey>().is_err(), "{bad}");
        }
    }
}
