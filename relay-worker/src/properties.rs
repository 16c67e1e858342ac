//! What the worker writes on the messages it publishes: the AMQP properties of
//! a relayed event (DESIGN.md §2), and the headers of a retry or a dead letter
//! (§5). Headers are read back from here too, so their names live in one place.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
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

/// How many delayed retries a message has had (`x-relay-attempts`, 0 if absent).
pub fn attempts(props: &BasicProperties) -> u32 {
    match header(props, dlq::ATTEMPTS) {
        Some(AMQPValue::LongLongInt(n)) => u32::try_from(*n).unwrap_or(0),
        Some(AMQPValue::LongInt(n)) => u32::try_from(*n).unwrap_or(0),
        Some(AMQPValue::ShortInt(n)) => u32::try_from(*n).unwrap_or(0),
        Some(AMQPValue::LongUInt(n)) => *n,
        _ => 0,
    }
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
    let message = redact(&failure.message);
    let text = [
        (dlq::ERROR_CLASS, failure.class.as_str()),
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
        headers.insert(key.into(), AMQPValue::LongString(LongString::from(value)));
    }
    headers.insert(
        dlq::ATTEMPTS.into(),
        AMQPValue::LongLongInt(i64::from(attempts)),
    );
    match retry_queue {
        Some(queue) => headers.insert(
            RETRY_QUEUE_HEADER.into(),
            AMQPValue::LongString(queue.into()),
        ),
        None => headers.remove(&ShortString::from(RETRY_QUEUE_HEADER)),
    };
    let mut props = received.clone().with_headers(FieldTable::from(headers));
    // Keep the message persistent in the delay queues and the DLQ.
    if props.delivery_mode().is_none() {
        props = props.with_delivery_mode(2);
    }
    props
}

fn header<'a>(props: &'a BasicProperties, key: &str) -> Option<&'a AMQPValue> {
    props.headers().as_ref()?.inner().get(key)
}

fn header_str(props: &BasicProperties, key: &str) -> Option<String> {
    match header(props, key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// Removes credentials from text that may quote a URL or a token parameter:
/// `scheme://user:password@` loses the password, `wstoken=...` and
/// `token=...` lose their value.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', ' ', '"', '\'']).unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(at_sign) => {
                let userinfo = &tail[..at_sign];
                let user = userinfo.split(':').next().unwrap_or("");
                out.push_str(user);
                out.push_str(":***");
                rest = &tail[at_sign..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    redact_params(&out)
}

fn redact_params(text: &str) -> String {
    let mut out = text.to_owned();
    for key in ["wstoken=", "token="] {
        let mut from = 0;
        while let Some(pos) = out[from..].find(key) {
            let start = from + pos + key.len();
            let end = out[start..]
                .find(['&', ' ', '"', '\'', '\n'])
                .map_or(out.len(), |e| start + e);
            out.replace_range(start..end, "***");
            from = start + 3;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::Class;

    #[test]
    fn redact_hides_passwords_in_urls_and_token_parameters() {
        assert_eq!(
            redact("connect amqp://relay:s3cret@mq:5672/%2f failed"),
            "connect amqp://relay:***@mq:5672/%2f failed"
        );
        assert_eq!(
            redact("POST wstoken=abc123&wsfunction=x"),
            "POST wstoken=***&wsfunction=x"
        );
        assert_eq!(
            redact("https://lms.example.edu/ ok"),
            "https://lms.example.edu/ ok"
        );
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
