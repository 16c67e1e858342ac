//! A 3-node RabbitMQ cluster: the worker is given the three nodes' URLs, the
//! node it is connected to is stopped mid-stream, and it carries on from
//! another node by itself with nothing lost. Its own test binary (cargo runs
//! test binaries one after another), as three extra RabbitMQ nodes take much
//! of the machine while they run.

#[path = "../it/support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use relay_contract::routing::{DLQ_QUEUE, ingest_queue};
use relay_worker::config::{Config, Secret};
use serde_json::Value;
use test_broker::{Cluster, ClusterNode};
use tokio::sync::watch;

use support::{
    EventFactory, Worker, captured_log, config, connect, declare_topology, depth, downstream_queue,
    message_id, plugin_properties, publish_events, publish_ingest, wait_for_depth,
};

const SITES: [&str; 2] = ["lms-c1", "lms-c2"];
/// Events per site waiting before the worker starts.
const PRELOAD: u64 = 3_000;
/// Events per site published every 50 ms while the node is stopped.
const STEADY: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_moves_to_another_node_when_its_node_stops_and_loses_nothing() {
    let started = Instant::now();
    let cluster = tokio::task::spawn_blocking(|| Cluster::start(3))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("cannot run a 3-node cluster here: {e}"));
    let cluster_s = started.elapsed().as_secs_f64();
    let (boot_s, join_s) = (
        cluster.booted_in.as_secs_f64(),
        cluster.joined_in.as_secs_f64(),
    );
    let urls = cluster.urls("%2f");
    let config = config(&urls.join(","), &SITES);
    let mut on_first = config.clone();
    on_first.amqp.url = Secret::new(urls[0].as_str());
    declare_topology(&on_first).await;
    let members = tokio::task::block_in_place(|| replicated_ingest_queues(&cluster));

    let (conn, channel) = connect(&urls[0]).await;
    let downstream = downstream_queue(&channel, "#", quorum()).await;
    let mut sent = Vec::new();
    for site in SITES {
        sent.extend(publish_events(&channel, site, PRELOAD).await);
    }
    let _ = conn.close(200, "preloaded".into()).await;

    let worker = Worker::start(config).await;
    let first = connected_node(&cluster, 0, Duration::from_secs(60)).await;
    // The test's own connections on a node that stays up.
    let survivor = &cluster.nodes[(first + 2) % cluster.nodes.len()];
    let (stop_publishing, publishing) = watch::channel(false);
    let publisher = tokio::spawn(publish_steadily(survivor.url("%2f"), publishing));
    let (conn, channel) = connect(&survivor.url("%2f")).await;
    assert!(wait_for_depth(&channel, &downstream, 1_000, Duration::from_secs(60)).await);

    let downstream_before = depth(&channel, &downstream).await;
    let stopping = Instant::now();
    let stopped = cluster.nodes[first].clone();
    tokio::task::spawn_blocking(move || stopped.stop())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("stopping the worker's node: {e}"));
    let stop_s = stopping.elapsed().as_secs_f64();
    let second = connected_node(&cluster, 1, Duration::from_secs(60)).await;
    let reconnect_s = stopping.elapsed().as_secs_f64();
    assert_ne!(second, first, "the worker is on another node");
    let gap_s = reconnect_gap_s();
    consumers_on(survivor, &cluster.nodes[second]).await;

    // The quorum queues keep taking events (2 of 3 nodes up) meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut downstream_consumer = Downstream::open(&conn, &downstream).await;
    let _ = stop_publishing.send(true);
    let steady = publisher.await.unwrap_or_else(|e| panic!("publisher: {e}"));
    let after_stop = steady.len();
    sent.extend(steady);
    downstream_consumer
        .until_all(&sent, Duration::from_secs(60))
        .await;
    worker
        .stop()
        .await
        .unwrap_or_else(|e| panic!("worker: {e}"));
    // Whatever the worker still published (duplicates) as it stopped.
    downstream_consumer
        .take(Duration::from_secs(1), |_| false)
        .await;
    let received = downstream_consumer.close().await;

    let unique: BTreeSet<&String> = received.iter().map(|(id, _)| id).collect();
    let missing = sent.iter().filter(|id| !unique.contains(id)).count();
    // A second copy: published twice by the worker, or (redelivered) handed
    // to the test's consumer again after its ack was lost.
    let mut seen = BTreeSet::new();
    let twice: Vec<&(String, bool)> = received.iter().filter(|(id, _)| !seen.insert(id)).collect();
    let duplicates = twice.len();
    let redelivered = twice.iter().filter(|(_, redelivered)| *redelivered).count();
    assert_eq!(missing, 0, "every event arrives, across the node's stop");
    assert_eq!(depth(&channel, DLQ_QUEUE).await, 0);
    for site in SITES {
        let site = site.parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            depth(&channel, &ingest_queue(&site)).await,
            0,
            "nothing left"
        );
    }
    let _ = conn.close(200, "done".into()).await;
    let removing = Instant::now();
    drop(cluster);
    println!(
        "3-node cluster: up in {cluster_s:.1} s (3 nodes started in {boot_s:.1} s, joined in \
         {join_s:.1} s); ingest queues: quorum, a member on each of the {members} nodes"
    );
    println!(
        "worker on node {} ({downstream_before} events downstream when it was stopped); the \
         node stopped in {stop_s:.1} s; worker seen on node {} by {reconnect_s:.1} s after the \
         stop began; {gap_s}",
        first + 1,
        second + 1,
    );
    println!(
        "{} events ({after_stop} of them published while the node stopped and after): \
         0 lost, {duplicates} duplicates ({} published twice by the worker, at most \
         prefetch x sites = {} expected; {redelivered} redelivered to the test's own \
         consumer); cluster removed in {:.1} s",
        sent.len(),
        duplicates - redelivered,
        usize::from(Config::default().amqp.prefetch) * SITES.len(),
        removing.elapsed().as_secs_f64()
    );
    if duplicates > 0 {
        let ids: Vec<&str> = twice.iter().take(10).map(|(id, _)| id.as_str()).collect();
        println!("duplicated ids (first 10): {ids:?}");
    }
}

/// The test's consumer of the downstream queue: one channel for the whole
/// run, as a quorum queue hands out again what a closing channel had, even
/// what it acked just before.
struct Downstream {
    channel: lapin::Channel,
    consumer: lapin::Consumer,
    /// Every id received, duplicates included, with the broker's redelivered
    /// flag (set for what this consumer had before without the ack counting).
    received: Vec<(String, bool)>,
}

impl Downstream {
    async fn open(conn: &lapin::Connection, queue: &str) -> Downstream {
        let channel = conn
            .create_channel()
            .await
            .unwrap_or_else(|e| panic!("channel: {e}"));
        // Bounded, so a lost consumer has little to hand out again.
        channel
            .basic_qos(500, BasicQosOptions::default())
            .await
            .unwrap_or_else(|e| panic!("qos: {e}"));
        let consumer = channel
            .basic_consume(
                queue.into(),
                "cluster-test".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("consume {queue}: {e}"));
        Downstream {
            channel,
            consumer,
            received: Vec::new(),
        }
    }

    /// Takes deliveries until `done` says so or nothing came for `idle`.
    async fn take(&mut self, idle: Duration, mut done: impl FnMut(&str) -> bool) {
        loop {
            match tokio::time::timeout(idle, self.consumer.next()).await {
                Ok(Some(Ok(delivery))) => {
                    delivery
                        .acker
                        .ack(BasicAckOptions::default())
                        .await
                        .unwrap_or_else(|e| panic!("ack: {e}"));
                    let id = message_id(&delivery);
                    let finished = done(&id);
                    self.received.push((id, delivery.redelivered));
                    if finished {
                        return;
                    }
                }
                Ok(Some(Err(e))) => panic!("consuming downstream: {e}"),
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// Takes deliveries until every id of `expected` came (or nothing came
    /// for `idle`).
    async fn until_all(&mut self, expected: &[String], idle: Duration) {
        let mut wanted: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
        for (id, _) in &self.received {
            wanted.remove(id.as_str());
        }
        if !wanted.is_empty() {
            self.take(idle, |id| {
                wanted.remove(id);
                wanted.is_empty()
            })
            .await;
        }
    }

    async fn close(self) -> Vec<(String, bool)> {
        let _ = self.channel.close(200, "received".into()).await;
        self.received
    }
}

/// `x-queue-type = quorum`: a queue that survives the loss of one node.
fn quorum() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    arguments
}

/// Checks with the broker that each site's ingest queue is a quorum queue
/// with a member on every node; returns the member count.
fn replicated_ingest_queues(cluster: &Cluster) -> usize {
    let listed = cluster.nodes[0]
        .ctl(&[
            "list_queues",
            "name",
            "type",
            "members",
            "--formatter",
            "json",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    let queues: Vec<Value> = serde_json::from_str(&listed).unwrap_or_else(|e| panic!("{e}"));
    for site in SITES {
        let name = format!("relay.ingest.{site}");
        let queue = queues
            .iter()
            .find(|q| q["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} not declared: {listed}"));
        assert_eq!(queue["type"], "quorum", "{queue}");
        for node in &cluster.nodes {
            let members = queue["members"].as_array().cloned().unwrap_or_default();
            assert!(members.iter().any(|m| m == node.name.as_str()), "{queue}");
        }
    }
    cluster.nodes.len()
}

/// The node the worker's `nth` connection (0 = the first) went to, from its
/// log line.
async fn connected_node(cluster: &Cluster, nth: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let lines = captured_log("connected to the broker");
        if let Some(line) = lines.get(nth) {
            let line: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}"));
            let node = line["fields"]["node"].as_str().unwrap_or_default();
            return cluster
                .nodes
                .iter()
                .position(|n| n.address() == node)
                .unwrap_or_else(|| panic!("connected to an unknown node: {line}"));
        }
        assert!(
            Instant::now() < deadline,
            "the worker made no connection #{} within {} s",
            nth + 1,
            within.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// From the worker's log: how long it was without the broker.
fn reconnect_gap_s() -> String {
    let at = |marker: &str| {
        let lines = captured_log(marker);
        let line: Value = serde_json::from_str(lines.last()?).ok()?;
        line["timestamp"].as_str()?.parse::<jiff::Timestamp>().ok()
    };
    match (at("broker connection lost"), at("connected to the broker")) {
        (Some(lost), Some(back)) => {
            let gap = back.duration_since(lost).as_secs_f64();
            format!("{gap:.2} s between losing the node and connecting again")
        }
        _ => "gap not in the log".to_owned(),
    }
}

/// Checks with the broker (asking `survivor`) that every site queue's
/// consumers are on channels of `node`.
async fn consumers_on(survivor: &ClusterNode, node: &ClusterNode) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Text output: its pids name their node (`<name@host.1.2.3>`).
        let args = ["list_consumers", "-q", "--no-table-headers"];
        let listed = tokio::task::block_in_place(|| {
            survivor.ctl(&[&args[..], &["queue_name", "channel_pid"]].concat())
        })
        .unwrap_or_default();
        let on_node = SITES.iter().all(|site| {
            let queue = format!("relay.ingest.{site}");
            let mut consumers = listed
                .lines()
                .filter_map(|line| line.split_once('\t'))
                .filter(|(q, _)| *q == queue)
                .peekable();
            consumers.peek().is_some()
                && consumers.all(|(_, pid)| pid.starts_with(&format!("<{}.", node.name)))
        });
        if on_node {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the site queues' consumers are not on {}: {listed}",
            node.name
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Publishes `STEADY` events per site every 50 ms until told to stop;
/// returns their ids.
async fn publish_steadily(url: String, mut stop: watch::Receiver<bool>) -> Vec<String> {
    let (conn, channel) = connect(&url).await;
    let factory = EventFactory::new();
    let mut ids = Vec::new();
    let mut n = PRELOAD;
    while !*stop.borrow() {
        let mut batch = Vec::new();
        for site in SITES {
            for _ in 0..STEADY {
                n += 1;
                let (id, key, body) = factory.event(site, n);
                batch.push((key, body, plugin_properties(&id)));
                ids.push(id);
            }
        }
        publish_ingest(&channel, &batch).await;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stop.changed() => {}
        }
    }
    let _ = conn.close(200, "published".into()).await;
    ids
}
