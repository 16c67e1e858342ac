//! The declared topology: conflicts are named, poison messages are
//! dead-lettered by the broker itself.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicNackOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use relay_contract::routing::{DLQ_QUEUE, ingest_queue};
use relay_worker::RunError;
use relay_worker::topology::TopologyError;

use lapin::message::Delivery;
use lapin::types::AMQPValue;

use crate::support::{
    EventFactory, Vhost, Worker, collect, config, connect, declare_topology, plugin_properties,
    publish_ingest,
};

/// `reason` of the first `x-death` entry the broker added.
fn death_reason(delivery: &Delivery) -> Option<String> {
    let headers = delivery.properties.headers().as_ref()?;
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(first) = deaths.as_slice().first()? else {
        return None;
    };
    match first.inner().get("reason")? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_with_conflicting_arguments_stops_the_start_and_is_named() {
    let vhost = Vhost::for_test("relay-test");
    let (conn, channel) = connect(&vhost.url).await;
    // Someone made the site's queue a classic queue by hand.
    channel
        .queue_declare(
            "relay.ingest.lms-c".into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let worker = Worker::start(config(&vhost.url, &["lms-c"])).await;
    let result = tokio::time::timeout(Duration::from_secs(30), worker.finished()).await;
    match result {
        Ok(Err(RunError::Topology(TopologyError::Conflict { name, reason, .. }))) => {
            assert_eq!(name, "relay.ingest.lms-c");
            assert!(
                reason.contains("x-queue-type") || reason.contains("inequivalent"),
                "{reason}"
            );
        }
        other => panic!("expected a named conflict, got {other:?}"),
    }
    let _ = conn.close(200, "done".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_dead_letters_a_message_that_keeps_coming_back() {
    let vhost = Vhost::for_test("relay-test");
    let mut config = config(&vhost.url, &["lms-x"]);
    config.amqp.delivery_limit = 3;
    declare_topology(&config).await;
    let (conn, channel) = connect(&vhost.url).await;
    let factory = EventFactory::new();
    let (id, key, body) = factory.event("lms-x", 1);
    publish_ingest(&channel, &[(key, body, plugin_properties(&id))]).await;

    // A consumer that never settles it, as a crashing worker would.
    let queue = ingest_queue(&"lms-x".parse().unwrap_or_else(|e| panic!("{e}")));
    let c = conn
        .create_channel()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    c.basic_qos(1, BasicQosOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut consumer = c
        .basic_consume(
            queue.as_str().into(),
            "crasher".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut deliveries = 0;
    while let Ok(Some(Ok(d))) = tokio::time::timeout(Duration::from_secs(3), consumer.next()).await
    {
        deliveries += 1;
        d.acker
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let dead = collect(&conn, DLQ_QUEUE, 1, Duration::from_secs(10)).await;
    assert!(deliveries >= 3, "delivered {deliveries} times");
    assert_eq!(dead.len(), 1, "poison message dead-lettered by the broker");
    assert_eq!(death_reason(&dead[0]).as_deref(), Some("delivery_limit"));
    let _ = conn.close(200, "done".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_accepts_but_never_answers_does_not_hang_the_worker() {
    // Regression: after a broker restart, a worker connected while RabbitMQ
    // accepted TCP but did not answer yet, and waited forever with no consumer.
    let mute = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let port = mute.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = mute.accept().await {
            held.push(socket);
        }
    });
    let mut config = config(
        &format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        &["lms-mute"],
    );
    config.amqp.connect_timeout_s = 1;
    let worker = Worker::start(config).await;
    let metrics_url = format!("http://{}/metrics", worker.http);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut retried = false;
    while !retried && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let metrics = reqwest::get(&metrics_url)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .text()
            .await
            .unwrap_or_default();
        retried = metrics
            .lines()
            .any(|l| l.starts_with("relay_broker_reconnects_total") && !l.ends_with(" 0"));
    }
    assert!(retried, "the attempt is given up and retried");
    let stopped = tokio::time::timeout(Duration::from_secs(5), worker.stop()).await;
    assert!(
        matches!(stopped, Ok(Ok(()))),
        "a stop request is honoured while connecting: {stopped:?}"
    );
}
