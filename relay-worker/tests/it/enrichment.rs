//! Sites with a Moodle: enrichment through the throttle and coalescing, the
//! circuit breaker, the auth pause, and Moodle's failures in their classes.
//! Real broker, simulated Moodle (tests/moodle-sim).

use std::time::Duration;

use lapin::types::FieldTable;
use moodle_sim::MoodleSim;
use relay_contract::dlq;
use relay_contract::routing::DLQ_QUEUE;
use serde_json::Value;

use crate::support::{
    Message, Rig, Worker, await_ids, captured_log, collect, depth, downstream_queue, header,
    plugin_properties, publish_ingest, temp_dir,
};

const TOKEN: &str = "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e";

/// `count` user.updated events of `site`, each about its own user (id 1000 + n).
fn user_events(site: &str, count: u64) -> (Vec<String>, Vec<Message>) {
    let template: Value = serde_json::from_str(include_str!(
        "../../../schemas/fixtures/valid/user.updated.json"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let mut ids = Vec::new();
    let mut messages = Vec::new();
    for n in 1..=count {
        let mut event = template.clone();
        let id = uuid::Uuid::new_v4().to_string();
        let user = 1000 + n as i64;
        event["id"] = id.clone().into();
        event["moodlesite"] = site.into();
        event["sequence"] = format!("{n:020}").into();
        event["subject"] = format!("user/{user}").into();
        event["data"]["objectid"] = user.into();
        event["data"]["relateduserid"] = user.into();
        event["data"]["snapshot"]["id"] = user.into();
        let body = serde_json::to_vec(&event).unwrap_or_else(|e| panic!("{e}"));
        messages.push((format!("{site}.user.updated"), body, plugin_properties(&id)));
        ids.push(id);
    }
    (ids, messages)
}

/// Points the rig's only site at `sim` with a token file holding `token`.
fn use_moodle(rig: &mut Rig, sim: &MoodleSim, token: &str) -> std::path::PathBuf {
    let dir = temp_dir();
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap_or_else(|e| panic!("{e}"));
    let site = &mut rig.config.sites[0];
    site.moodle_url = Some(sim.url());
    site.token_file = Some(token_file.clone());
    token_file
}

async fn metrics_of(worker: &Worker) -> String {
    reqwest::get(format!("http://{}/metrics", worker.http))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default()
}

/// Waits until /metrics contains `line` (a metric with its labels and value).
async fn wait_metric(worker: &Worker, line: &str, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if metrics_of(worker).await.lines().any(|l| l == line) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_user_events_stay_within_the_site_limits_and_share_lookups() {
    let sim = MoodleSim::start(TOKEN)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut rig = Rig::new(&["lms-e"]).await;
    let token_file = use_moodle(&mut rig, &sim, TOKEN);
    // As the plugin's setup_webservice.php --token-file writes it.
    std::fs::write(
        &token_file,
        format!("{TOKEN}\nexpires_at=2027-06-30T00:00:00Z\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    rig.config.amqp.prefetch = 200;
    let site = &mut rig.config.sites[0];
    site.max_concurrency = 2;
    site.max_calls_per_minute = 600;
    site.enrich.batch_max = 50;
    let downstream = downstream_queue(&rig.channel, "#", FieldTable::default()).await;
    let (ids, messages) = user_events("lms-e", 2_000);
    publish_ingest(&rig.channel, &messages).await;

    let worker = Worker::start(rig.config.clone()).await;
    let received = collect(&rig.conn, &downstream, 2_000, Duration::from_secs(120)).await;
    let metrics = metrics_of(&worker).await;
    worker
        .stop()
        .await
        .unwrap_or_else(|e| panic!("worker: {e}"));

    assert_eq!(received.len(), ids.len(), "every event is delivered");
    for d in &received {
        let event: Value = serde_json::from_slice(&d.data).unwrap_or_default();
        let lookup = &event["data"]["enrichment"]["core_user_get_users_by_field"];
        assert!(lookup["fetchedat"].is_string());
        assert_eq!(
            lookup["result"][0]["id"], event["data"]["relateduserid"],
            "each event gets its own user"
        );
    }
    let lookups = sim.count("core_user_get_users_by_field");
    println!(
        "2,000 user events: {lookups} user lookups, peak concurrency {}, at most {} calls in any second",
        sim.max_concurrency(),
        sim.max_calls_within(Duration::from_secs(1))
    );
    assert!(
        sim.max_concurrency() <= 2,
        "concurrency {}",
        sim.max_concurrency()
    );
    assert!(sim.max_calls_within(Duration::from_secs(1)) <= 10);
    assert!(
        lookups <= 2_000 / 50 + 5,
        "{lookups} lookups: not coalesced"
    );
    // The token never shows, in any log line of this process or in /metrics.
    assert!(
        captured_log("").iter().all(|l| !l.contains(TOKEN)),
        "token in the logs"
    );
    assert!(!metrics.contains(TOKEN), "token in /metrics");
    for name in [
        "relay_moodle_calls_total{site=\"lms-e\",function=\"core_user_get_users_by_field\",outcome=\"ok\"}",
        "relay_moodle_call_duration_seconds_bucket{site=\"lms-e\",function=\"core_user_get_users_by_field\"",
        "relay_moodle_up{site=\"lms-e\"} 1",
        "relay_breaker_state{site=\"lms-e\"} 0",
        "relay_moodle_token_expiry_timestamp_seconds{site=\"lms-e\"} 1814313600",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_token_pauses_the_site_without_dead_letters_until_the_token_file_is_fixed() {
    let sim = MoodleSim::start("old-token")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut rig = Rig::new(&["lms-auth"]).await;
    let token_file = use_moodle(&mut rig, &sim, "old-token");
    let site = &mut rig.config.sites[0];
    site.max_calls_per_minute = 60_000;
    site.min_interval_ms = 0;
    site.auth_probe_interval_s = 1;
    site.enrich.batch_max = 1;
    let downstream = downstream_queue(&rig.channel, "#", FieldTable::default()).await;
    let (ids, messages) = user_events("lms-auth", 300);
    publish_ingest(&rig.channel, &messages).await;
    sim.invalid_token_from_call(100);

    let worker = Worker::start(rig.config.clone()).await;
    assert!(
        wait_metric(
            &worker,
            "relay_site_paused{site=\"lms-auth\",reason=\"auth\"} 1",
            Duration::from_secs(60)
        )
        .await,
        "the site pauses"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let refused_lookups = sim
        .calls()
        .iter()
        .filter(|c| !c.ok && c.function == "core_user_get_users_by_field")
        .count();
    assert!(
        refused_lookups <= 2,
        "{refused_lookups} lookups after the refusal: the site did not stop at once"
    );
    assert_eq!(
        depth(&rig.channel, DLQ_QUEUE).await,
        0,
        "nothing dead-lettered for an auth failure"
    );

    // The operator provisions a new token and writes it to the file.
    sim.accept_token("new-token");
    std::fs::write(&token_file, "new-token\n").unwrap_or_else(|e| panic!("{e}"));
    let received = await_ids(&rig.conn, &downstream, &ids, Duration::from_secs(60)).await;
    assert!(
        wait_metric(
            &worker,
            "relay_site_paused{site=\"lms-auth\",reason=\"auth\"} 0",
            Duration::from_secs(10)
        )
        .await,
        "the site resumes by itself"
    );
    worker
        .stop()
        .await
        .unwrap_or_else(|e| panic!("worker: {e}"));
    let unique: std::collections::BTreeSet<&String> = received.iter().collect();
    assert!(
        ids.iter().all(|id| unique.contains(id)),
        "every event is delivered after the rotation"
    );
    assert_eq!(depth(&rig.channel, DLQ_QUEUE).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_moodle_opens_the_breaker_pauses_only_its_site_and_recovers() {
    let sim = MoodleSim::start(TOKEN)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sim.set_latency(Duration::from_secs(3));
    let mut rig = Rig::new(&["lms-slow", "lms-fine"]).await;
    use_moodle(&mut rig, &sim, TOKEN);
    let site = &mut rig.config.sites[0];
    site.max_calls_per_minute = 60_000;
    site.min_interval_ms = 0;
    site.enrich.batch_max = 1;
    site.breaker.window_s = 10;
    site.breaker.min_calls = 2;
    site.breaker.slow_call_ms = 1_000;
    site.breaker.open_s = 2;
    let slow = downstream_queue(&rig.channel, "lms-slow.#", FieldTable::default()).await;
    let fine = downstream_queue(&rig.channel, "lms-fine.#", FieldTable::default()).await;
    let (slow_ids, slow_events) = user_events("lms-slow", 20);
    let (fine_ids, fine_events) = user_events("lms-fine", 200);
    publish_ingest(&rig.channel, &slow_events).await;
    publish_ingest(&rig.channel, &fine_events).await;

    let worker = Worker::start(rig.config.clone()).await;
    assert!(
        wait_metric(
            &worker,
            "relay_breaker_state{site=\"lms-slow\"} 1",
            Duration::from_secs(20)
        )
        .await,
        "the breaker opens on slow calls alone"
    );
    assert!(
        wait_metric(
            &worker,
            "relay_site_paused{site=\"lms-slow\",reason=\"breaker\"} 1",
            Duration::from_secs(10)
        )
        .await
    );
    let fine_received = await_ids(&rig.conn, &fine, &fine_ids, Duration::from_secs(30)).await;
    assert_eq!(
        fine_received.len(),
        fine_ids.len(),
        "the other site keeps flowing"
    );

    sim.set_latency(Duration::from_millis(10));
    let slow_received = await_ids(&rig.conn, &slow, &slow_ids, Duration::from_secs(60)).await;
    let unique: std::collections::BTreeSet<&String> = slow_received.iter().collect();
    assert!(
        slow_ids.iter().all(|id| unique.contains(id)),
        "all events of the slow site arrive once it recovers"
    );
    assert!(
        wait_metric(
            &worker,
            "relay_breaker_state{site=\"lms-slow\"} 0",
            Duration::from_secs(10)
        )
        .await
    );
    worker
        .stop()
        .await
        .unwrap_or_else(|e| panic!("worker: {e}"));
    assert_eq!(
        depth(&rig.channel, DLQ_QUEUE).await,
        0,
        "no retries burned into the DLQ"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moodle_503s_and_deadlocks_are_retried_and_invalidparameter_is_dead_lettered() {
    let sim = MoodleSim::start(TOKEN)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut rig = Rig::new(&["lms-f"]).await;
    use_moodle(&mut rig, &sim, TOKEN);
    rig.config.retry.delays_s = vec![1, 1, 1, 1];
    let site = &mut rig.config.sites[0];
    site.max_calls_per_minute = 60_000;
    site.min_interval_ms = 0;
    site.enrich.batch_max = 5;
    // This test is about retries; keep the breaker out of it (it has its own test).
    site.breaker.min_calls = 1_000;
    site.breaker.consecutive_failures = 0;
    let downstream = downstream_queue(&rig.channel, "#", FieldTable::default()).await;
    sim.fail_next(503, 3, Some(1));
    sim.deadlock_next(2);
    let (ids, messages) = user_events("lms-f", 20);
    publish_ingest(&rig.channel, &messages).await;

    let worker = Worker::start(rig.config.clone()).await;
    let received = await_ids(&rig.conn, &downstream, &ids, Duration::from_secs(60)).await;
    let unique: std::collections::BTreeSet<&String> = received.iter().collect();
    assert!(
        ids.iter().all(|id| unique.contains(id)),
        "503s and deadlocks are retried until delivered"
    );
    assert_eq!(depth(&rig.channel, DLQ_QUEUE).await, 0);

    sim.invalid_parameter_for("core_user_get_users_by_field");
    let (_, more) = user_events("lms-f", 3);
    publish_ingest(&rig.channel, &more).await;
    let dead = collect(&rig.conn, DLQ_QUEUE, 3, Duration::from_secs(30)).await;
    worker
        .stop()
        .await
        .unwrap_or_else(|e| panic!("worker: {e}"));
    assert_eq!(dead.len(), 3);
    for d in &dead {
        assert_eq!(header(d, dlq::ERROR_CLASS).as_deref(), Some("client"));
        assert_eq!(
            header(d, dlq::ERROR_CODE).as_deref(),
            Some("invalidparameter")
        );
        assert_eq!(
            header(d, dlq::ATTEMPTS).as_deref(),
            Some("0"),
            "no retry for a client error"
        );
    }
}
