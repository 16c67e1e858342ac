//! The worker as a process: killed without warning, or asked to stop.

use std::collections::BTreeSet;
use std::time::Duration;

use lapin::types::FieldTable;
use relay_contract::routing::{DLQ_QUEUE, ingest_queue};

use crate::support::{
    Rig, WorkerProcess, await_ids, depth, downstream_queue, drain_ids, publish_events, temp_dir,
    wait_for_depth,
};

const PREFETCH: u32 = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_with_sigkill_three_times_nothing_is_lost_and_duplicates_stay_in_flight() {
    let Rig {
        vhost,
        conn,
        channel,
        ..
    } = Rig::new(&["lms-k"]).await;
    let downstream = downstream_queue(&channel, "#", FieldTable::default()).await;
    let sent = publish_events(&channel, "lms-k", 20_000).await;
    let dir = temp_dir();
    let extra = format!("prefetch = {PREFETCH}").replace("prefetch", "# prefetch");

    // Kill at a random point inside each quarter of the run.
    for quarter in 1..=3u32 {
        let worker = WorkerProcess::spawn(&dir, &vhost.url, &["lms-k"], &extra);
        let jitter = (uuid::Uuid::new_v4().as_u128() % 3_000) as u32;
        let at = quarter * 5_000 - 2_000 + jitter;
        assert!(
            wait_for_depth(&channel, &downstream, at, Duration::from_secs(120)).await,
            "the worker never got to {at} events"
        );
        worker.kill_9();
    }
    // The last start relays the rest; consume downstream until every id is there.
    let worker = WorkerProcess::spawn(&dir, &vhost.url, &["lms-k"], &extra);
    let mut received = await_ids(&conn, &downstream, &sent, Duration::from_secs(180)).await;
    let (status, _) = worker.terminate(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()));
    received.extend(drain_ids(&conn, &downstream, Duration::from_secs(1)).await);
    let site = "lms-k".parse().unwrap_or_else(|e| panic!("{e}"));
    let unique: BTreeSet<&String> = received.iter().collect();
    let missing = sent.iter().filter(|id| !unique.contains(id)).count();
    assert_eq!(
        missing,
        0,
        "every id arrives downstream (ingest holds {}, DLQ {})",
        depth(&channel, &ingest_queue(&site)).await,
        depth(&channel, DLQ_QUEUE).await
    );
    let duplicates = received.len() - unique.len();
    // Only events in flight at a kill can come twice: at most the prefetch window each time.
    assert!(
        duplicates <= 3 * PREFETCH as usize,
        "{duplicates} duplicates"
    );
    println!("kill -9 x3 over 20,000 events: {duplicates} duplicates, 0 lost");
    assert_eq!(depth(&channel, &ingest_queue(&site)).await, 0);
    assert_eq!(depth(&channel, DLQ_QUEUE).await, 0);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = conn.close(200, "done".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_events_and_exits_cleanly_with_json_logs() {
    let Rig {
        vhost,
        conn,
        channel,
        ..
    } = Rig::new(&["lms-s"]).await;
    let downstream = downstream_queue(&channel, "#", FieldTable::default()).await;
    let sent = publish_events(&channel, "lms-s", 5_000).await;
    let dir = temp_dir();

    let worker = WorkerProcess::spawn(&dir, &vhost.url, &["lms-s"], "");
    assert!(wait_for_depth(&channel, &downstream, 1_000, Duration::from_secs(60)).await);
    let (status, log) = worker.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}; log:\n{log}"
    );
    for line in log.lines() {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "log line is not JSON: {line}");
    }
    assert!(log.contains("shutdown requested"), "{log}");
    assert!(!log.contains("guest:guest"), "credentials in the logs");

    // The rest is relayed by the next start.
    let worker = WorkerProcess::spawn(&dir, &vhost.url, &["lms-s"], "");
    let mut received = await_ids(&conn, &downstream, &sent, Duration::from_secs(60)).await;
    let _ = worker.terminate(Duration::from_secs(20));
    received.extend(drain_ids(&conn, &downstream, Duration::from_secs(1)).await);
    let unique: BTreeSet<&String> = received.iter().collect();
    assert!(
        sent.iter().all(|id| unique.contains(id)),
        "every id arrives"
    );
    assert_eq!(
        received.len(),
        unique.len(),
        "a graceful stop acks what it published: no duplicates"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = conn.close(200, "done".into()).await;
}
