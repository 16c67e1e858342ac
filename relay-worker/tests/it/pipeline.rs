//! The happy path at volume, and the operator endpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use lapin::types::FieldTable;
use relay_contract::CLOUDEVENTS_CONTENT_TYPE;
use relay_contract::routing::ingest_queue;

use crate::support::{
    EventFactory, Rig, Worker, await_ids, collect, depth, downstream_queue, message_id,
    plugin_properties, publish_events, publish_ingest,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_arrive_downstream_unchanged() {
    let Rig {
        vhost: _vhost,
        config,
        conn,
        channel,
    } = Rig::new(&["lms-a"]).await;
    let downstream = downstream_queue(&channel, "#", FieldTable::default()).await;

    let factory = EventFactory::new();
    let mut sent = BTreeMap::new();
    let mut batch = Vec::new();
    for n in 1..=10_000u64 {
        let (id, key, body) = factory.event("lms-a", n);
        batch.push((key, body.clone(), plugin_properties(&id)));
        sent.insert(id, body);
    }
    publish_ingest(&channel, &batch).await;

    let worker = Worker::start(config).await;
    let received = collect(&conn, &downstream, 10_000, Duration::from_secs(120)).await;
    worker
        .stop()
        .await
        .unwrap_or_else(|e| panic!("worker: {e}"));

    assert_eq!(received.len(), 10_000, "every event arrives");
    let mut ids = BTreeSet::new();
    for delivery in &received {
        let id = message_id(delivery);
        assert_eq!(sent.get(&id), Some(&delivery.data), "body of {id} changed");
        assert_eq!(
            delivery
                .properties
                .content_type()
                .as_ref()
                .map(|c| c.as_str()),
            Some(CLOUDEVENTS_CONTENT_TYPE)
        );
        assert_eq!(delivery.properties.delivery_mode(), &Some(2));
        assert_eq!(
            delivery.properties.app_id().as_ref().map(|a| a.as_str()),
            Some("relay-worker")
        );
        assert!(delivery.properties.kind().is_some(), "type property");
        assert!(
            delivery.properties.timestamp().is_some(),
            "timestamp property"
        );
        ids.insert(id);
    }
    assert_eq!(ids.len(), 10_000, "no duplicates");
    assert_eq!(
        depth(
            &channel,
            &ingest_queue(&"lms-a".parse().unwrap_or_else(|e| panic!("{e}")))
        )
        .await,
        0
    );
    let _ = conn.close(200, "done".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_report_health_readiness_and_the_contract_metrics() {
    let Rig {
        vhost: _vhost,
        config,
        conn,
        channel,
    } = Rig::new(&["lms-m"]).await;
    let downstream = downstream_queue(&channel, "lms-m.#", FieldTable::default()).await;
    let factory = EventFactory::new();
    let (id, key, body) = factory.event("lms-m", 1);
    publish_ingest(&channel, &[(key, body, plugin_properties(&id))]).await;

    let worker = Worker::start(config).await;
    assert_eq!(
        collect(&conn, &downstream, 1, Duration::from_secs(30))
            .await
            .len(),
        1
    );
    let base = format!("http://{}", worker.http);
    let client = reqwest::Client::new();
    let get = |path: &'static str| {
        let request = client.get(format!("{base}{path}"));
        async move {
            let response = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            (
                response.status().as_u16(),
                response.text().await.unwrap_or_default(),
            )
        }
    };
    assert_eq!(get("/healthz").await.0, 200);
    assert_eq!(get("/readyz").await.0, 200);
    let (status, metrics) = get("/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "relay_events_consumed_total{site=\"lms-m\"}",
        "relay_events_published_total{site=\"lms-m\",type=\"moodle.",
        "relay_event_lag_seconds_bucket{site=\"lms-m\"",
        "relay_in_flight{site=\"lms-m\"}",
        // Its value is process-wide: other tests' workers, in this same test
        // process, connect and stop meanwhile (/readyz above is this worker's).
        "relay_broker_connected ",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}:\n{metrics}");
    }
    assert!(!metrics.contains("guest:guest"), "credentials in /metrics");
    worker
        .stop()
        .await
        .unwrap_or_else(|e| panic!("worker: {e}"));
    let _ = conn.close(200, "done".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_are_spread_over_connections_of_at_most_sites_per_connection() {
    let sites = ["conn-a", "conn-b", "conn-c", "conn-d", "conn-e"];
    let mut rig = Rig::new(&sites).await;
    rig.config.amqp.sites_per_connection = 2;
    let downstream = downstream_queue(&rig.channel, "#", FieldTable::default()).await;
    let mut ids = Vec::new();
    for site in sites {
        ids.extend(publish_events(&rig.channel, site, 20).await);
    }
    let worker = Worker::start(rig.config.clone()).await;
    let arrived = await_ids(&rig.conn, &downstream, &ids, Duration::from_secs(30)).await;
    let got: BTreeSet<&String> = arrived.iter().collect();
    assert_eq!(got.len(), ids.len(), "every site's events arrive");
    let out = std::process::Command::new("rabbitmqctl")
        .args(["list_connections", "vhost", "name"])
        .args(["--formatter", "json", "--quiet"])
        .output()
        .unwrap_or_else(|e| panic!("rabbitmqctl: {e}"));
    // list_connections lists every vhost's: other tests run meanwhile.
    let connections: Vec<serde_json::Value> =
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c["vhost"] == rig.vhost.name.as_str())
            .collect();
    // Five sites, two per connection: three of the worker's, and the test's own.
    assert_eq!(connections.len(), 4, "{connections:?}");
    worker
        .stop()
        .await
        .unwrap_or_else(|e| panic!("worker: {e}"));
}
