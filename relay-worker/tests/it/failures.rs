//! What fails lands, classified, in a delay queue and then the DLQ; a bad
//! message never stops the loop.

use std::time::Duration;

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use relay_contract::dlq;
use relay_contract::routing::DLQ_QUEUE;

use crate::support::{
    EventFactory, Rig, Worker, collect, downstream_queue, fixtures, header, plugin_properties,
    publish_ingest,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_inputs_are_dead_lettered_with_their_reason_and_the_loop_goes_on() {
    let Rig {
        vhost: _vhost,
        config,
        conn,
        channel,
    } = Rig::new(&["lms-bad"]).await;
    let downstream = downstream_queue(&channel, "#", FieldTable::default()).await;
    let factory = EventFactory::new();
    let key = "lms-bad.user.created".to_owned();
    let anon = |body: Vec<u8>| {
        (
            key.clone(),
            body,
            plugin_properties(&uuid::Uuid::new_v4().to_string()),
        )
    };

    // (what, expected code)
    let mut messages = Vec::new();
    let mut expected = Vec::new();
    for (name, body) in fixtures("invalid") {
        expected.push((name.clone(), None));
        messages.push(anon(body));
    }
    for (what, body, code) in [
        ("not JSON", b"hello, broker".to_vec(), "not_json"),
        ("not UTF-8", b"{\"a\": \"\xc3\x28\"}".to_vec(), "not_utf8"),
        ("10 MiB", vec![b' '; 10 * 1024 * 1024], "too_large"),
        ("empty", Vec::new(), "not_json"),
    ] {
        expected.push((what.to_owned(), Some(code)));
        messages.push(anon(body));
    }
    let (id, good_key, body) = factory.event("lms-bad", 7);
    // A valid body without the properties the contract requires.
    expected.push(("no properties".to_owned(), Some("bad_properties")));
    messages.push((good_key.clone(), body.clone(), BasicProperties::default()));
    // A valid event of another site on this site's queue.
    let (other_id, _, other_body) = factory.event("lms-other", 8);
    expected.push(("other site".to_owned(), Some("misrouted")));
    messages.push((good_key.clone(), other_body, plugin_properties(&other_id)));
    // And, last, a good one: the worker must still be relaying.
    messages.push((good_key, body, plugin_properties(&id)));
    publish_ingest(&channel, &messages).await;

    let worker = Worker::start(config).await;
    let delivered = collect(&conn, &downstream, 1, Duration::from_secs(60)).await;
    assert_eq!(
        delivered.len(),
        1,
        "the valid event after the bad ones is relayed"
    );
    let dead = collect(&conn, DLQ_QUEUE, expected.len(), Duration::from_secs(60)).await;
    worker
        .stop()
        .await
        .unwrap_or_else(|e| panic!("worker: {e}"));

    assert_eq!(
        dead.len(),
        expected.len(),
        "every bad message is in the DLQ"
    );
    for (delivery, (what, code)) in dead.iter().zip(&expected) {
        assert_eq!(
            header(delivery, dlq::ERROR_CLASS).as_deref(),
            Some("invalid"),
            "{what}"
        );
        let got = header(delivery, dlq::ERROR_CODE).unwrap_or_default();
        if let Some(code) = code {
            assert_eq!(&got, code, "{what}");
        } else {
            assert!(!got.is_empty(), "{what}: no code");
        }
        let reason = header(delivery, dlq::ERROR_MESSAGE).unwrap_or_default();
        assert!(
            !reason.is_empty() && reason.len() <= dlq::MAX_ERROR_MESSAGE_BYTES,
            "{what}: {reason}"
        );
        for name in dlq::WORKER_HEADERS {
            assert!(header(delivery, name).is_some(), "{what}: {name} missing");
        }
        assert_eq!(header(delivery, dlq::SITE).as_deref(), Some("lms-bad"));
        assert_eq!(
            header(delivery, dlq::ORIGINAL_EXCHANGE).as_deref(),
            Some("moodle.ingest")
        );
    }
    // Body and properties are kept as they arrived.
    let (_, first_invalid) = &fixtures("invalid")[0];
    assert_eq!(&dead[0].data, first_invalid);
    let _ = conn.close(200, "done".into()).await;
}

/// A downstream queue that holds at most `n` messages and refuses the rest, so
/// the broker nacks the relay's publishes: a real transient failure.
fn refusing_after(n: i64) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(n));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_publishes_are_retried_with_growing_delays_until_delivered() {
    let Rig {
        vhost: _vhost,
        mut config,
        conn,
        channel,
    } = Rig::new(&["lms-t"]).await;
    config.retry.delays_s = vec![1, 2, 4];
    let downstream = downstream_queue(&channel, "#", refusing_after(5)).await;
    let factory = EventFactory::new();
    let events: Vec<_> = (1..=12u64)
        .map(|n| {
            let (id, key, body) = factory.event("lms-t", n);
            (key, body, plugin_properties(&id))
        })
        .collect();
    publish_ingest(&channel, &events).await;

    let worker = Worker::start(config).await;
    // Take 5 at a time, as a slow downstream would, so retries find room.
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while received.len() < 12 && tokio::time::Instant::now() < deadline {
        received.extend(collect(&conn, &downstream, 5, Duration::from_millis(700)).await);
    }
    worker
        .stop()
        .await
        .unwrap_or_else(|e| panic!("worker: {e}"));
    assert_eq!(
        received.len(),
        12,
        "every refused event is delivered in the end"
    );
    // Regression: retries once matched every delay queue (RabbitMQ's headers
    // exchange ignores `x-` headers) and came back as duplicates.
    let ids: std::collections::BTreeSet<_> = received
        .iter()
        .map(|d| d.properties.message_id().clone())
        .collect();
    assert_eq!(ids.len(), 12, "a retry comes back once");
    assert_eq!(
        collect(&conn, DLQ_QUEUE, 1, Duration::from_millis(300))
            .await
            .len(),
        0,
        "nothing reached the DLQ"
    );
    let _ = conn.close(200, "done".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_that_persists_ends_in_the_dlq_after_the_last_delay() {
    let Rig {
        vhost: _vhost,
        config,
        conn,
        channel,
    } = Rig::new(&["lms-p"]).await;
    // Full from the start and never drained.
    let downstream = downstream_queue(&channel, "#", refusing_after(1)).await;
    let factory = EventFactory::new();
    let (filler_id, filler_key, filler) = factory.event("lms-p", 1);
    let (id, key, body) = factory.event("lms-p", 2);
    publish_ingest(
        &channel,
        &[
            (filler_key, filler, plugin_properties(&filler_id)),
            (key, body, plugin_properties(&id)),
        ],
    )
    .await;

    let worker = Worker::start(config).await;
    let dead = collect(&conn, DLQ_QUEUE, 1, Duration::from_secs(30)).await;
    worker
        .stop()
        .await
        .unwrap_or_else(|e| panic!("worker: {e}"));
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(
        d.properties.message_id().as_ref().map(|m| m.to_string()),
        Some(id)
    );
    assert_eq!(header(d, dlq::ERROR_CLASS).as_deref(), Some("transient"));
    assert_eq!(header(d, dlq::ERROR_CODE).as_deref(), Some("nacked"));
    // Two delays configured (1 s, 2 s): two retries, then the DLQ.
    assert_eq!(header(d, dlq::ATTEMPTS).as_deref(), Some("2"));
    let first: jiff::Timestamp = header(d, dlq::FIRST_FAILED_AT)
        .unwrap_or_default()
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let last: jiff::Timestamp = header(d, dlq::LAST_FAILED_AT)
        .unwrap_or_default()
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let waited = last.duration_since(first).as_secs_f64();
    assert!(
        waited >= 3.0,
        "the delays grow (1 s then 2 s): waited only {waited} s; x-death: {:?}",
        header(d, "x-death")
    );
    assert_eq!(
        header(d, dlq::ORIGINAL_EXCHANGE).as_deref(),
        Some("moodle.ingest")
    );
    assert_eq!(
        collect(&conn, &downstream, 2, Duration::from_millis(300))
            .await
            .len(),
        1
    );
    let _ = conn.close(200, "done".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_no_one_subscribed_to_is_retried_then_kept_in_the_dlq_as_unroutable() {
    let Rig {
        vhost: _vhost,
        config,
        conn,
        channel,
    } = Rig::new(&["lms-u"]).await;
    let factory = EventFactory::new();
    let (id, key, body) = factory.event("lms-u", 1);
    publish_ingest(&channel, &[(key, body, plugin_properties(&id))]).await;

    let worker = Worker::start(config).await;
    let dead = collect(&conn, DLQ_QUEUE, 1, Duration::from_secs(30)).await;
    worker
        .stop()
        .await
        .unwrap_or_else(|e| panic!("worker: {e}"));
    assert_eq!(
        dead.len(),
        1,
        "an unroutable event is never treated as delivered"
    );
    assert_eq!(
        header(&dead[0], dlq::ERROR_CLASS).as_deref(),
        Some("transient")
    );
    assert_eq!(
        header(&dead[0], dlq::ERROR_CODE).as_deref(),
        Some("unroutable")
    );
    assert_eq!(header(&dead[0], dlq::ATTEMPTS).as_deref(), Some("2"));
    let _ = conn.close(200, "done".into()).await;
}
