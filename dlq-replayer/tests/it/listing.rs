//! `list` and `show`: what they print, and that they leave the queue as it was.

use std::collections::BTreeMap;

use relay_contract::routing::DLQ_QUEUE;
use serde_json::Value;

use crate::support::{CLASSES, SITES, Vhost, code_of, ok, seed, snapshot, stderr};

#[tokio::test(flavor = "multi_thread")]
async fn summary_counts_match_a_dlq_of_1000_over_3_sites_and_4_classes() {
    let vhost = Vhost::new().await;
    let seeded = seed(&vhost, 1000).await;
    let mut expected: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for s in &seeded {
        let key = (
            s.site.to_owned(),
            s.class.to_owned(),
            code_of(s.class).to_owned(),
        );
        *expected.entry(key).or_default() += 1;
    }
    assert_eq!(expected.len(), SITES.len() * CLASSES.len());

    let out = ok(&vhost.run(&["list", "--summary", "--json"]));
    let mut counted = BTreeMap::new();
    for line in out.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let key = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        counted.insert(
            (key("site"), key("class"), key("code")),
            v["count"].as_u64().unwrap_or(0),
        );
    }
    assert_eq!(counted, expected);

    let table = ok(&vhost.run(&["list", "--summary"]));
    assert!(
        table
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("TOTAL") && l.ends_with(" 1000")),
        "{table}"
    );
    // Reading changed nothing.
    assert_eq!(vhost.depth(DLQ_QUEUE).await, 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn list_filters_by_site_class_type_time_and_id() {
    let vhost = Vhost::new().await;
    let seeded = seed(&vhost, 120).await;
    let count = |args: &[&str]| {
        let mut all = vec!["list", "--json"];
        all.extend_from_slice(args);
        ok(&vhost.run(&all)).lines().count()
    };
    let a_transient = seeded
        .iter()
        .filter(|s| s.site == "a" && s.class == "transient")
        .count();
    assert_eq!(count(&["--site", "a", "--class", "transient"]), a_transient);
    assert_eq!(count(&["--site", "a", "--site", "b"]), 80);
    assert_eq!(count(&["--type", "moodle.user.*"]), 60);
    assert_eq!(count(&["--id", &seeded[7].id, "--id", &seeded[9].id]), 2);
    // Seeded worker failures are at 00:00..01:59 on 2026-11-24; poison ones have x-death times.
    let worker_failed = seeded.iter().filter(|s| s.class != "poison").count();
    assert_eq!(
        count(&[
            "--since",
            "2026-11-24T00:00:00Z",
            "--until",
            "2026-11-24T23:00:00Z"
        ]),
        worker_failed
    );

    let table = ok(&vhost.run(&["list", "--site", "c"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ID"), "{table}");
    assert_eq!(lines.len(), 1 + 40 + 1, "{table}");
    assert_eq!(lines[lines.len() - 1], "(40 of 120 messages in relay.dlq)");
}

#[tokio::test(flavor = "multi_thread")]
async fn show_prints_properties_headers_and_the_pretty_body() {
    let vhost = Vhost::new().await;
    let seeded = seed(&vhost, 10).await;
    let before = snapshot(&vhost, DLQ_QUEUE).await;
    let shown = ok(&vhost.run(&["show", &seeded[4].id]));
    assert!(
        shown.contains(&format!("message_id: {}", seeded[4].id)),
        "{shown}"
    );
    assert!(shown.contains("x-relay-error-class: client"), "{shown}");
    assert!(shown.contains("x-relay-attempts: 5"), "{shown}");
    assert!(shown.contains("\"moodlesite\": \"b\""), "{shown}");

    let missing = vhost.run(&["show", "no-such-id"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("no message with id \"no-such-id\" among the 10 messages"),
        "{}",
        stderr(&missing)
    );
    assert_eq!(snapshot(&vhost, DLQ_QUEUE).await, before);
}
