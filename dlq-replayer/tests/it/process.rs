//! The binary as operators run it: killed with SIGKILL mid-replay, paced with
//! `--rate`, and its exit codes and messages when something is wrong.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use relay_contract::routing::DLQ_QUEUE;

use crate::support::{Vhost, ok, replayer, seed, snapshot, stderr};

/// A pseudo-random number in `range` (no seed to manage: a fresh UUID).
fn random_in(range: std::ops::Range<u64>) -> u64 {
    range.start + (uuid::Uuid::new_v4().as_u128() % u128::from(range.end - range.start)) as u64
}

/// Ids in the DLQ and in the catch-all queue, once every id is accounted for
/// (the broker requeues a killed client's unacked messages asynchronously).
///
/// It first waits until nothing of the DLQ is held unacked by the killed
/// replayer: a message it had published but not acked is already in the
/// catch-all queue, so "every id seen" alone can come before it returns to
/// the DLQ, and the next run would start without it.
async fn account(vhost: &Vhost, catch: &str, all: &BTreeSet<String>) -> (usize, usize, usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while vhost.unacked(DLQ_QUEUE) > 0 {
        assert!(
            Instant::now() < deadline,
            "the killed replayer's deliveries never came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    loop {
        let dlq = snapshot(vhost, DLQ_QUEUE).await;
        let out = snapshot(vhost, catch).await;
        let seen: BTreeSet<String> = dlq.keys().chain(out.keys()).cloned().collect();
        let copies: usize = out.values().map(Vec::len).sum();
        if seen == *all {
            let both = dlq.keys().filter(|id| out.contains_key(*id)).count();
            return (dlq.len(), out.len(), copies - out.len() + both);
        }
        assert!(
            Instant::now() < deadline,
            "lost messages: {} of {} accounted for",
            seen.len(),
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_points_of_a_replay_loses_nothing() {
    let vhost = Vhost::new().await;
    let catch = vhost.catch_all().await;
    let all: BTreeSet<String> = seed(&vhost, 1000).await.into_iter().map(|s| s.id).collect();
    for kill in 1..=3 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dlq-replayer"))
            .args(["replay", "--yes", "--rate", "1000"])
            .env("RELAY_AMQP_URL", vhost.url())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn: {e}"));
        let after = random_in(50..600);
        tokio::time::sleep(Duration::from_millis(after)).await;
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let (in_dlq, replayed, duplicates) = account(&vhost, &catch, &all).await;
        println!(
            "kill {kill} after {after} ms: {replayed} replayed, {in_dlq} still in the DLQ, \
             {duplicates} in both or twice (at-least-once)"
        );
    }
    let out = ok(&vhost.run(&["replay", "--yes"]));
    println!("final run: {}", out.trim());
    let (in_dlq, replayed, duplicates) = account(&vhost, &catch, &all).await;
    println!("end: {replayed} replayed, {in_dlq} in the DLQ, {duplicates} duplicates");
    assert_eq!(in_dlq, 0);
    assert_eq!(replayed, 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_50_paces_100_messages_over_about_2_seconds() {
    let vhost = Vhost::new().await;
    vhost.catch_all().await;
    seed(&vhost, 100).await;
    let start = Instant::now();
    ok(&vhost.run(&["replay", "--yes", "--rate", "50"]));
    let took = start.elapsed();
    println!("--rate 50 over 100 messages took {took:?}");
    // 99 intervals of 20 ms, plus connecting and reading.
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(vhost.depth(DLQ_QUEUE).await, 0);
}

/// The issue's own figure; slow (about 10 s), so run on demand:
/// `cargo test -p dlq-replayer --test it -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "takes about 10 s; the 100-message test covers the pacing"]
async fn rate_50_over_500_messages_takes_about_10_seconds() {
    let vhost = Vhost::new().await;
    vhost.catch_all().await;
    seed(&vhost, 500).await;
    let start = Instant::now();
    ok(&vhost.run(&["replay", "--yes", "--rate", "50"]));
    let took = start.elapsed();
    println!("--rate 50 over 500 messages took {took:?}");
    assert!(
        took >= Duration::from_secs(8) && took < Duration::from_secs(14),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_without_yes_and_without_a_terminal_changes_nothing_and_exits_2() {
    let vhost = Vhost::new().await;
    seed(&vhost, 10).await;
    let out = vhost.run(&["replay", "--site", "a"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("pass --yes"), "{}", stderr(&out));
    assert_eq!(vhost.depth(DLQ_QUEUE).await, 10);
    let bad = vhost.run(&["list", "--since", "last tuesday"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_queue_or_broker_is_named_without_the_password() {
    let vhost = Vhost::new().await;
    let out = vhost.run(&["--queue", "no.such.queue", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("queue \"no.such.queue\" does not exist"),
        "{err}"
    );
    assert!(
        err.contains("guest:***@") && !err.contains("guest:guest"),
        "{err}"
    );

    let out = replayer("amqp://relay:s3cret@127.0.0.1:1/%2f", &["list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("cannot connect to RabbitMQ at amqp://relay:***@127.0.0.1:1/%2f"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");

    let out = replayer("amqp://guest:guest@127.0.0.1:5672/no-such-vhost", &["list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("refused the connection: NOT_ALLOWED - vhost no-such-vhost not found"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_a_replay_cleanly_with_nothing_lost_or_doubled() {
    let vhost = Vhost::new().await;
    let catch = vhost.catch_all().await;
    let all: BTreeSet<String> = seed(&vhost, 300).await.into_iter().map(|s| s.id).collect();
    let child = Command::new(env!("CARGO_BIN_EXE_dlq-replayer"))
        .args(["replay", "--yes", "--rate", "200"])
        .env("RELAY_AMQP_URL", vhost.url())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait: {e}"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    let (in_dlq, replayed, duplicates) = account(&vhost, &catch, &all).await;
    assert!(
        replayed > 0 && in_dlq > 0,
        "{replayed} replayed, {in_dlq} left"
    );
    assert_eq!(
        duplicates, 0,
        "a clean stop settles every confirm before closing"
    );
    assert!(
        crate::support::stdout(&out)
            .contains(&format!("replayed {replayed} of {replayed} matching")),
        "{}",
        crate::support::stdout(&out)
    );
}
