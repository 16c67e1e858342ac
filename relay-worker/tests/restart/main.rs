//! Broker restarts. Its own test binary (cargo runs test binaries one after
//! another), because restarting RabbitMQ would break any broker test running
//! beside it.

#[path = "../it/support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use lapin::types::FieldTable;
use relay_contract::routing::{DLQ_QUEUE, ingest_queue};

use support::{
    Vhost, Worker, await_ids, config, connect, declare_topology, depth, downstream_queue,
    drain_ids, publish_events, wait_for_depth,
};

fn rabbitmqctl(args: &[&str]) {
    test_broker::rabbitmqctl(args).unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_reconnects_by_itself_after_a_broker_restart_and_loses_nothing() {
    let vhost = Vhost::for_test("relay-test");
    let config = config(&vhost.url, &["lms-r"]);
    declare_topology(&config).await;
    let (_dies_with_the_restart, channel) = connect(&vhost.url).await;
    let downstream = downstream_queue(&channel, "#", FieldTable::default()).await;
    let sent = publish_events(&channel, "lms-r", 10_000).await;

    let worker = Worker::start(config).await;
    assert!(wait_for_depth(&channel, &downstream, 2_000, Duration::from_secs(60)).await);
    // Restart the broker under the worker (the test's own connection dies too).
    rabbitmqctl(&["stop_app"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);

    let (conn, channel) = connect(&vhost.url).await;
    let mut received = await_ids(&conn, &downstream, &sent, Duration::from_secs(120)).await;
    let metrics = reqwest::get(format!("http://{}/metrics", worker.http))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    worker
        .stop()
        .await
        .unwrap_or_else(|e| panic!("worker: {e}"));
    received.extend(drain_ids(&conn, &downstream, Duration::from_secs(1)).await);
    let unique: BTreeSet<&String> = received.iter().collect();
    let missing = sent.iter().filter(|id| !unique.contains(id)).count();
    assert_eq!(missing, 0, "every id arrives after the restart");
    assert_eq!(depth(&channel, DLQ_QUEUE).await, 0);
    let site = "lms-r".parse().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        depth(&channel, &ingest_queue(&site)).await,
        0,
        "nothing left behind"
    );
    assert!(
        metrics.contains("relay_broker_reconnects_total"),
        "the reconnect is counted"
    );
    println!(
        "broker restart during 10,000 events: 0 lost, {} duplicates",
        received.len() - unique.len()
    );
    let _ = conn.close(200, "done".into()).await;
}
