//! What a DLQ message says about itself (DESIGN.md §5): id, site, type, failure
//! class and code, attempts, times and original route, read from the
//! `x-relay-*` headers the worker writes, or from the broker's `x-death` for
//! poison messages the broker dead-lettered on its own.
//!
//! Reading only: changing headers for a replay is `replay.rs`'s job.

use jiff::Timestamp;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use relay_contract::dlq::{self, Class};
use relay_contract::routing::ingest_queue_site;
use serde_json::Value;

use crate::personal::People;

/// What is shown for the class of a message that carries neither a known
/// class header nor `x-death`.
pub const UNKNOWN: &str = "unknown";
/// The `x-death` reason of a message that kept coming back unsettled.
const DELIVERY_LIMIT: &str = "delivery_limit";
/// Added by quorum queues on redelivery: broker bookkeeping, not content.
pub const DELIVERY_COUNT: &str = "x-delivery-count";

/// The operator's view of one dead letter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeadLetter {
    /// `message_id`, which is the event id.
    pub id: Option<String>,
    pub site: Option<String>,
    /// The `type` property, or the body's `type` field.
    pub event_type: Option<String>,
    /// `None` when the message has no class header the contract knows
    /// (shown as [`UNKNOWN`]).
    pub class: Option<Class>,
    pub code: Option<String>,
    pub message: Option<String>,
    /// `None` when the header is absent (or not a count).
    pub attempts: Option<u32>,
    /// `x-relay-last-failed-at` (or the `x-death` time), as a time.
    pub last_failed: Option<Timestamp>,
    /// Where a replay sends it.
    pub exchange: Option<String>,
    pub routing_key: Option<String>,
    pub replay_count: u32,
    /// The users the event names; `None` when the body is not a JSON object
    /// (such a message never matches `--user`).
    pub people: Option<People>,
}

impl DeadLetter {
    pub fn from_message(props: &BasicProperties, body: &[u8]) -> DeadLetter {
        let empty = FieldTable::default();
        let headers = props.headers().as_ref().unwrap_or(&empty);
        let text = |key: &str| dlq::text(headers, key);
        let death = poison_death(headers);
        let death_key = death.as_ref().and_then(|d| d.routing_key.clone());
        let routing_key = text(dlq::ORIGINAL_ROUTING_KEY).or_else(|| death_key.clone());
        let site = text(dlq::SITE)
            .or_else(|| routing_key.as_deref().and_then(first_word))
            .or_else(|| {
                death
                    .as_ref()
                    .and_then(|d| ingest_queue_site(&d.queue).map(str::to_owned))
            });
        let event = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(event)) => Some(event),
            _ => None,
        };
        let mut letter = DeadLetter {
            id: props.message_id().as_ref().map(|m| m.to_string()),
            site,
            event_type: props
                .kind()
                .as_ref()
                .map(|k| k.to_string())
                .or_else(|| body_type(event.as_ref())),
            class: dlq::class(headers),
            code: text(dlq::ERROR_CODE),
            message: text(dlq::ERROR_MESSAGE),
            attempts: dlq::count(headers, dlq::ATTEMPTS),
            last_failed: text(dlq::LAST_FAILED_AT).and_then(|t| t.parse().ok()),
            exchange: text(dlq::ORIGINAL_EXCHANGE),
            routing_key,
            replay_count: dlq::replay_count(headers),
            people: event.as_ref().map(People::of),
        };
        if let Some(death) = death {
            let replayed: Option<Timestamp> = text(dlq::REPLAYED_AT).and_then(|t| t.parse().ok());
            // A worker failure after the last replay is newer than an x-death
            // the message still carries from before that replay.
            let worker_failed_later = matches!(
                (letter.last_failed, replayed),
                (Some(failed), Some(replayed)) if failed > replayed
            );
            if !worker_failed_later {
                letter.class = Some(Class::Poison);
                letter.code = Some(DELIVERY_LIMIT.to_owned());
                letter.message = Some(format!(
                    "delivery limit reached in {} ({} time(s))",
                    death.queue, death.count
                ));
                letter.last_failed = death.time.or(letter.last_failed);
                letter.exchange = letter.exchange.or(death.exchange);
                letter.routing_key = death_key.or(letter.routing_key);
            }
        }
        letter
    }

    /// The class as shown and summarised: its name, or [`UNKNOWN`].
    pub fn class_label(&self) -> &'static str {
        self.class.map_or(UNKNOWN, Class::as_str)
    }
}

/// The newest `x-death` entry, when it says the broker dead-lettered the
/// message for reaching its delivery limit.
#[derive(Debug, Clone, PartialEq)]
struct Death {
    queue: String,
    exchange: Option<String>,
    routing_key: Option<String>,
    count: u32,
    time: Option<Timestamp>,
}

fn poison_death(headers: &FieldTable) -> Option<Death> {
    let Some(AMQPValue::FieldArray(entries)) = headers.inner().get(dlq::X_DEATH) else {
        return None;
    };
    // RabbitMQ keeps the most recent dead-lettering first.
    let Some(AMQPValue::FieldTable(newest)) = entries.as_slice().first() else {
        return None;
    };
    if dlq::text(newest, "reason").as_deref() != Some(DELIVERY_LIMIT) {
        return None;
    }
    let routing_key = match newest.inner().get("routing-keys") {
        Some(AMQPValue::FieldArray(keys)) => keys.as_slice().first().and_then(dlq::text_value),
        _ => None,
    };
    let time = match newest.inner().get("time") {
        Some(AMQPValue::Timestamp(s)) => i64::try_from(*s)
            .ok()
            .and_then(|s| Timestamp::from_second(s).ok()),
        _ => None,
    };
    Some(Death {
        queue: dlq::text(newest, "queue").unwrap_or_default(),
        exchange: dlq::text(newest, "exchange"),
        routing_key,
        count: dlq::count(newest, "count").unwrap_or(1),
        time,
    })
}

fn first_word(routing_key: &str) -> Option<String> {
    routing_key
        .split('.')
        .next()
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
}

/// The body's top-level `type`, when the body is a JSON object that has one.
fn body_type(event: Option<&serde_json::Map<String, Value>>) -> Option<String> {
    event?.get("type")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{FieldArray, LongString};

    fn long(s: &str) -> AMQPValue {
        AMQPValue::LongString(LongString::from(s))
    }

    fn props(pairs: &[(&str, AMQPValue)]) -> BasicProperties {
        let mut h = FieldTable::default();
        for (k, v) in pairs {
            h.insert((*k).into(), v.clone());
        }
        BasicProperties::default()
            .with_message_id("e1".into())
            .with_headers(h)
    }

    fn x_death(reason: &str, queue: &str, key: &str, time: u64) -> AMQPValue {
        let mut entry = FieldTable::default();
        entry.insert("reason".into(), long(reason));
        entry.insert("queue".into(), long(queue));
        entry.insert("exchange".into(), long("moodle.ingest"));
        entry.insert("count".into(), AMQPValue::LongLongInt(1));
        entry.insert("time".into(), AMQPValue::Timestamp(time));
        entry.insert(
            "routing-keys".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![long(key)])),
        );
        AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(entry)]))
    }

    #[test]
    fn worker_headers_give_every_field() {
        let p = props(&[
            (dlq::ERROR_CLASS, long("client")),
            (dlq::ERROR_CODE, long("invalidparameter")),
            (dlq::ERROR_MESSAGE, long("bad")),
            (dlq::ATTEMPTS, AMQPValue::LongLongInt(3)),
            (dlq::LAST_FAILED_AT, long("2026-11-24T10:00:00Z")),
            (dlq::SITE, long("lms")),
            (dlq::ORIGINAL_EXCHANGE, long("moodle.ingest")),
            (dlq::ORIGINAL_ROUTING_KEY, long("lms.user.created")),
        ])
        .with_type("moodle.user.created".into());
        let d = DeadLetter::from_message(&p, b"{}");
        assert_eq!(d.id.as_deref(), Some("e1"));
        assert_eq!(d.class, Some(Class::Client));
        assert_eq!(d.code.as_deref(), Some("invalidparameter"));
        assert_eq!(d.attempts, Some(3));
        assert_eq!(d.site.as_deref(), Some("lms"));
        assert_eq!(d.event_type.as_deref(), Some("moodle.user.created"));
        assert_eq!(d.routing_key.as_deref(), Some("lms.user.created"));
        assert_eq!(d.replay_count, 0);
        assert_eq!(
            d.last_failed.map(|t| t.to_string()).as_deref(),
            Some("2026-11-24T10:00:00Z")
        );
    }

    #[test]
    fn the_type_falls_back_to_the_body() {
        let d = DeadLetter::from_message(&props(&[]), br#"{"type":"moodle.role.assigned"}"#);
        assert_eq!(d.event_type.as_deref(), Some("moodle.role.assigned"));
        assert_eq!((d.class, d.class_label()), (None, UNKNOWN));
        let binary = DeadLetter::from_message(&props(&[]), b"\xff");
        assert_eq!((binary.event_type, binary.people), (None, None));
    }

    #[test]
    fn poison_messages_are_read_from_x_death() {
        let p = props(&[(
            dlq::X_DEATH,
            x_death(
                "delivery_limit",
                "relay.ingest.lms",
                "lms.user.created",
                1_795_000_000,
            ),
        )]);
        let d = DeadLetter::from_message(&p, b"{}");
        assert_eq!(d.class, Some(Class::Poison));
        assert_eq!(d.code.as_deref(), Some("delivery_limit"));
        assert_eq!(d.site.as_deref(), Some("lms"));
        assert_eq!(d.exchange.as_deref(), Some("moodle.ingest"));
        assert_eq!(d.routing_key.as_deref(), Some("lms.user.created"));
        assert!(d.last_failed.is_some());
    }

    #[test]
    fn an_expired_retry_in_x_death_is_not_poison() {
        let p = props(&[
            (dlq::ERROR_CLASS, long("transient")),
            (
                dlq::X_DEATH,
                x_death("expired", "relay.retry.1000ms", "lms.user.created", 1),
            ),
        ]);
        assert_eq!(
            DeadLetter::from_message(&p, b"{}").class,
            Some(Class::Transient)
        );
    }

    #[test]
    fn a_worker_failure_after_a_replay_wins_over_an_old_x_death() {
        let death = x_death("delivery_limit", "relay.ingest.lms", "lms.user.created", 1);
        let after = props(&[
            (dlq::ERROR_CLASS, long("client")),
            (dlq::REPLAYED_AT, long("2026-11-24T10:00:00Z")),
            (dlq::LAST_FAILED_AT, long("2026-11-24T11:00:00Z")),
            (dlq::X_DEATH, death.clone()),
        ]);
        assert_eq!(
            DeadLetter::from_message(&after, b"{}").class,
            Some(Class::Client)
        );
        let poisoned_again = props(&[
            (dlq::ERROR_CLASS, long("client")),
            (dlq::REPLAYED_AT, long("2026-11-24T12:00:00Z")),
            (dlq::LAST_FAILED_AT, long("2026-11-24T11:00:00Z")),
            (dlq::X_DEATH, death),
        ]);
        assert_eq!(
            DeadLetter::from_message(&poisoned_again, b"{}").class,
            Some(Class::Poison)
        );
    }

    #[test]
    fn attempts_and_replay_counts_of_any_integer_width_are_read() {
        let p = props(&[
            (dlq::ATTEMPTS, AMQPValue::ShortShortUInt(5)),
            (dlq::REPLAY_COUNT, AMQPValue::LongInt(2)),
        ]);
        let d = DeadLetter::from_message(&p, b"{}");
        assert_eq!((d.attempts, d.replay_count), (Some(5), 2));
        let p = props(&[(dlq::ATTEMPTS, long("6"))]);
        assert_eq!(DeadLetter::from_message(&p, b"{}").attempts, Some(6));
        let none = DeadLetter::from_message(&props(&[]), b"{}");
        assert_eq!((none.attempts, none.replay_count), (None, 0));
    }

    #[test]
    fn a_class_header_the_contract_does_not_know_is_unknown() {
        let p = props(&[(dlq::ERROR_CLASS, long("Transient"))]);
        let d = DeadLetter::from_message(&p, b"{}");
        assert_eq!((d.class, d.class_label()), (None, UNKNOWN));
    }
}
