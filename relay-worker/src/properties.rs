//! What the worker writes on the messages it publishes: the AMQP properties of
//! a relayed event (DESIGN.md §2), and the headers of a retry or a dead letter
//! (§5). Headers are read back from here too, so their names live in one place.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use relay_contract::routing::RETRY_QUEUE_HEADER;
use relay_contract::{CLOUDEVENTS_CONTENT_TYPE, Envelope, dlq};

use crate::failure::Failure;

/// `app_id` of everything the worker publishes.
pub const APP_ID: &str = "relay-worker";
/// The worker's version, in `x-relay-worker-version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Properties of an event published to `moodle.events`: fresh, so broker and
/// relay bookkeeping headers never leak downstream.
pub fn downstream(envelope: &Envelope, received: &BasicProperties, now_s: u64) -> BasicProperties {
    let mut props = BasicProperties::default()
        .with_message_id(envelope.id.to_string().into())
        .with_content_type(CLOUDEVENTS_CONTENT_TYPE.into())
        // Persistent: downstream durable queues keep it across broker restarts.
        .with_delivery_mode(2)
        .with_timestamp(received.timestamp().unwrap_or(now_s))
        .with_type(envelope.event_type.as_str().into())
        .with_app_id(APP_ID.into());
    let traceparent = envelope
        .traceparent
        .clone()
        .or_else(|| header_str(received, "traceparent"));
    if let Some(tp) = traceparent {
        let mut headers = FieldTable::default();
        headers.insert(
            "traceparent".into(),
            AMQPValue::LongString(tp.as_str().into()),
        );
        props = props.with_headers(headers);
    }
    props
}

/// Where a failed message came from, for the DLQ headers and for retries.
#[derive(Debug, Clone)]
pub struct Origin<'a> {
    pub site: &'a str,
    pub exchange: &'a str,
    pub routing_key: &'a str,
}

/// How many delayed retries a message has had (`x-relay-attempts`, 0 if absent
/// or unreadable; the contract's [`dlq::attempts`] decides how it is read).
pub fn attempts(props: &BasicProperties) -> u32 {
    props.headers().as_ref().map_or(0, dlq::attempts)
}

/// The original properties plus the failure headers. `attempts` is the count to
/// record; `retry_queue` names the delay queue for a retry (None for the DLQ).
pub fn failed(
    received: &BasicProperties,
    failure: &Failure,
    origin: &Origin<'_>,
    attempts: u32,
    retry_queue: Option<&str>,
    now: &str,
) -> BasicProperties {
    let mut headers = received
        .headers()
        .as_ref()
        .map(|h| h.inner().clone())
        .unwrap_or_default();
    let first_failed = header_str(received, dlq::FIRST_FAILED_AT).unwrap_or_else(|| now.to_owned());
    // A message that went round the relay before keeps where it first came from.
    let exchange =
        header_str(received, dlq::ORIGINAL_EXCHANGE).unwrap_or_else(|| origin.exchange.to_owned());
    let message = relay_contract::redact::credentials(&failure.message);
    dlq::set_class(&mut headers, failure.class);
    let text = [
        (dlq::ERROR_CODE, failure.code.as_str()),
        (dlq::ERROR_MESSAGE, dlq::truncate_error_message(&message)),
        (dlq::FIRST_FAILED_AT, first_failed.as_str()),
        (dlq::LAST_FAILED_AT, now),
        (dlq::SITE, origin.site),
        (dlq::ORIGINAL_EXCHANGE, exchange.as_str()),
        (dlq::ORIGINAL_ROUTING_KEY, origin.routing_key),
        (dlq::WORKER_VERSION, VERSION),
    ];
    for (key, value) in text {
        dlq::set_text(&mut headers, key, value);
    }
    dlq::set_attempts(&mut headers, attempts);
    match retry_queue {
        Some(queue) => dlq::set_text(&mut headers, RETRY_QUEUE_HEADER, queue),
        None => {
            headers.remove(&ShortString::from(RETRY_QUEUE_HEADER));
        }
    }
    let mut props = received.clone().with_headers(FieldTable::from(headers));
    // Keep the message persistent in the delay queues and the DLQ.
    if props.delivery_mode().is_none() {
        props = props.with_delivery_mode(2);
    }
    props
}

fn header_str(props: &BasicProperties, key: &str) -> Option<String> {
    dlq::text(props.headers().as_ref()?, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::Class;

    fn header<'a>(props: &'a BasicProperties, key: &str) -> Option<&'a AMQPValue> {
        props.headers().as_ref()?.inner().get(key)
    }

    #[test]
    fn attempts_sent_as_a_narrow_or_unsigned_integer_are_not_read_as_zero() {
        for value in [
            AMQPValue::ShortShortUInt(2),
            AMQPValue::ShortShortInt(2),
            AMQPValue::ShortUInt(2),
            AMQPValue::LongLongInt(2),
        ] {
            let mut headers = FieldTable::default();
            headers.insert(dlq::ATTEMPTS.into(), value);
            let props = BasicProperties::default().with_headers(headers);
            assert_eq!(attempts(&props), 2);
        }
        assert_eq!(attempts(&BasicProperties::default()), 0);
    }

    #[test]
    fn failure_headers_keep_the_first_failure_time_and_original_route() {
        let failure = Failure {
            class: Class::Transient,
            code: "nacked".into(),
            message: "refused".into(),
        };
        let origin = Origin {
            site: "a",
            exchange: "moodle.ingest",
            routing_key: "a.user.created",
        };
        let first = failed(
            &BasicProperties::default(),
            &failure,
            &origin,
            1,
            Some("relay.retry.1000ms"),
            "T1",
        );
        assert_eq!(attempts(&first), 1);
        let again_origin = Origin {
            exchange: "relay.requeue",
            ..origin
        };
        let second = failed(&first, &failure, &again_origin, 2, None, "T2");
        assert_eq!(attempts(&second), 2);
        assert_eq!(
            header_str(&second, dlq::FIRST_FAILED_AT).as_deref(),
            Some("T1")
        );
        assert_eq!(
            header_str(&second, dlq::LAST_FAILED_AT).as_deref(),
            Some("T2")
        );
        assert_eq!(
            header_str(&second, dlq::ORIGINAL_EXCHANGE).as_deref(),
            Some("moodle.ingest")
        );
        assert_eq!(header(&second, RETRY_QUEUE_HEADER), None);
        for name in dlq::WORKER_HEADERS {
            assert!(header(&second, name).is_some(), "{name} missing");
        }
    }
}
