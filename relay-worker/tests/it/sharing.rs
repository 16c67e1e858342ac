//! Issue 10: the workers of a fleet share its sites out. Three workers on one
//! configuration of twelve sites each consume three to five of them; a worker
//! that stops hands its sites to the others and gets its share back when it
//! returns. Throughout, the broker never shows two active consumers on a site,
//! and every event arrives once, in its site's order. Real broker.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use lapin::types::FieldTable;
use relay_worker::config::Config;
use serde_json::Value;
use tokio::time::Instant;

use crate::support::{
    EventFactory, Holders, Rig, Worker, collect, downstream_queue, plugin_properties,
    publish_ingest, shares, site_holders,
};

const SITES: [&str; 12] = [
    "share-a", "share-b", "share-c", "share-d", "share-e", "share-f", "share-g", "share-h",
    "share-i", "share-j", "share-k", "share-l",
];

/// The worker holding each site's active consumer; panics if a site has two.
fn holders(vhost: &str) -> Holders {
    site_holders(vhost).unwrap_or_else(|e| panic!("{e}"))
}

/// Polls the broker until every site is held and `fits` the shares; returns
/// how long it took, or panics with the last view after `within`.
async fn until_shared(
    vhost: &str,
    within: Duration,
    fits: impl Fn(&BTreeMap<String, usize>) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let now = holders(vhost);
        let shares = shares(&now);
        if now.len() == SITES.len() && fits(&shares) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "sites not shared as expected within {within:?}: {shares:?} ({} of {} held)",
            now.len(),
            SITES.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn fleet_config(rig: &Rig, member: &str) -> Config {
    let mut config = rig.config.clone();
    config.fleet.member_id = Some(member.to_owned());
    config.fleet.heartbeat_ms = 200;
    config.fleet.member_timeout_ms = 1_000;
    config
}

/// Events with sequences `sequences` for every site; their ids.
async fn publish_round(rig: &Rig, sequences: std::ops::RangeInclusive<u64>) -> Vec<String> {
    let factory = EventFactory::new();
    let mut ids = Vec::new();
    let mut batch = Vec::new();
    for n in sequences {
        for site in SITES {
            let (id, key, body) = factory.event(site, n);
            batch.push((key, body, plugin_properties(&id)));
            ids.push(id);
        }
    }
    publish_ingest(&rig.channel, &batch).await;
    ids
}

/// Reads `queue` until `expected` ids arrived (or `within`), then checks each
/// arrived once and each site's events in their order.
async fn assert_delivered_once_in_order(rig: &Rig, queue: &str, expected: &[String]) {
    let mut arrivals: Vec<(String, String, u64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let wanted: BTreeSet<&String> = expected.iter().collect();
    let mut seen = BTreeSet::new();
    while seen.len() < wanted.len() && Instant::now() < deadline {
        for delivery in collect(&rig.conn, queue, 5_000, Duration::from_millis(500)).await {
            let event: Value = serde_json::from_slice(&delivery.data).unwrap_or_default();
            let id = event["id"].as_str().unwrap_or_default().to_owned();
            let site = event["moodlesite"].as_str().unwrap_or_default().to_owned();
            let sequence = event["sequence"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            seen.insert(id.clone());
            arrivals.push((id, site, sequence));
        }
    }
    let missing = wanted
        .iter()
        .filter(|id| !seen.contains(id.as_str()))
        .count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} events never arrived",
        wanted.len()
    );
    assert_eq!(
        arrivals.len(),
        seen.len(),
        "{} duplicates",
        arrivals.len() - seen.len()
    );
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    let mut backwards = Vec::new();
    for (_, site, sequence) in &arrivals {
        if let Some(before) = last.insert(site, *sequence)
            && *sequence <= before
        {
            backwards.push((site.clone(), before, *sequence));
        }
    }
    assert!(backwards.is_empty(), "out of site order: {backwards:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_twelve_sites_and_every_event_arrives_once() {
    let rig = Rig::new(&SITES).await;
    let downstream = downstream_queue(&rig.channel, "#", FieldTable::default()).await;
    let mut ids = publish_round(&rig, 1..=30).await;
    let workers = [
        Worker::start(fleet_config(&rig, "w1")).await,
        Worker::start(fleet_config(&rig, "w2")).await,
        Worker::start(fleet_config(&rig, "w3")).await,
    ];
    let took = until_shared(&rig.vhost.name, Duration::from_secs(15), |shares| {
        shares.len() == 3 && shares.values().all(|n| (3..=5).contains(n))
    })
    .await;
    println!(
        "shared out in {took:?}: {:?}",
        shares(&holders(&rig.vhost.name))
    );
    ids.extend(publish_round(&rig, 31..=60).await);
    assert_delivered_once_in_order(&rig, &downstream, &ids).await;
    for worker in workers {
        worker.stop().await.unwrap_or_else(|e| panic!("{e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_hands_its_sites_over_and_gets_its_share_back_when_it_returns() {
    let rig = Rig::new(&SITES).await;
    let vhost = rig.vhost.name.clone();
    let downstream = downstream_queue(&rig.channel, "#", FieldTable::default()).await;
    let w1 = Worker::start(fleet_config(&rig, "w1")).await;
    let w2 = Worker::start(fleet_config(&rig, "w2")).await;
    let w3 = Worker::start(fleet_config(&rig, "w3")).await;
    let even = |shares: &BTreeMap<String, usize>| {
        shares.len() == 3 && shares.values().all(|n| (3..=5).contains(n))
    };
    until_shared(&vhost, Duration::from_secs(15), even).await;

    let mut ids = publish_round(&rig, 1..=40).await;
    w1.stop().await.unwrap_or_else(|e| panic!("{e}"));
    let taken_over = until_shared(&vhost, Duration::from_secs(15), |shares| {
        shares.len() == 2 && !shares.contains_key("w1")
    })
    .await;
    ids.extend(publish_round(&rig, 41..=80).await);

    let w1 = Worker::start(fleet_config(&rig, "w1")).await;
    let back = until_shared(&vhost, Duration::from_secs(30), even).await;
    ids.extend(publish_round(&rig, 81..=120).await);
    println!(
        "sites taken over {taken_over:?} after w1 stopped, share even again {back:?} after it \
         returned: {:?}",
        shares(&holders(&vhost))
    );
    assert_delivered_once_in_order(&rig, &downstream, &ids).await;
    for worker in [w1, w2, w3] {
        worker.stop().await.unwrap_or_else(|e| panic!("{e}"));
    }
}
