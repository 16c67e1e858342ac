//! `replay`: exactly the selected messages go back to their original route,
//! with reset bookkeeping; everything else stays in the DLQ untouched.

use std::collections::BTreeSet;

use relay_contract::dlq;
use relay_contract::routing::DLQ_QUEUE;

use crate::support::{Vhost, header, ok, seed, snapshot, stderr, stdout};

#[tokio::test(flavor = "multi_thread")]
async fn replay_site_a_class_transient_republishes_exactly_those() {
    let vhost = Vhost::new().await;
    let catch = vhost.catch_all().await;
    let seeded = seed(&vhost, 1000).await;
    let before = snapshot(&vhost, DLQ_QUEUE).await;
    let wanted: BTreeSet<&str> = seeded
        .iter()
        .filter(|s| s.site == "a" && s.class == "transient")
        .map(|s| s.id.as_str())
        .collect();
    assert!(wanted.len() > 80);

    let out = ok(&vhost.run(&["replay", "--site", "a", "--class", "transient", "--yes"]));
    assert!(
        out.contains(&format!(
            "replayed {n} of {n} matching messages (1000 read",
            n = wanted.len()
        )),
        "{out}"
    );

    let replayed = snapshot(&vhost, &catch).await;
    assert_eq!(
        replayed.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        wanted
    );
    for (id, copies) in &replayed {
        assert_eq!(copies.len(), 1, "{id} republished twice");
        let copy = &copies[0];
        let original = &before[id][0];
        assert_eq!(copy.body, original.body);
        assert_eq!(copy.props.message_id(), original.props.message_id());
        assert_eq!(copy.props.kind(), original.props.kind());
        assert_eq!(header(&copy.props, dlq::ATTEMPTS).as_deref(), Some("0"));
        assert_eq!(header(&copy.props, dlq::REPLAY_COUNT).as_deref(), Some("1"));
        assert!(header(&copy.props, dlq::REPLAYED_AT).is_some());
        assert_eq!(
            header(&copy.props, dlq::ERROR_CODE).as_deref(),
            Some("http503")
        );
    }
    // It also reached the site's ingest queue, by its original routing key.
    assert_eq!(vhost.depth("relay.ingest.a").await as usize, wanted.len());
    assert_eq!(vhost.depth("relay.ingest.b").await, 0);

    // The others stay, same count, same headers, same bodies.
    let after = snapshot(&vhost, DLQ_QUEUE).await;
    let mut expected = before.clone();
    expected.retain(|id, _| !wanted.contains(id.as_str()));
    assert_eq!(after.len(), 1000 - wanted.len());
    assert_eq!(after, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_changes_nothing() {
    let vhost = Vhost::new().await;
    let catch = vhost.catch_all().await;
    let seeded = seed(&vhost, 1000).await;
    let poison = seeded.iter().filter(|s| s.class == "poison").count();
    let before = snapshot(&vhost, DLQ_QUEUE).await;

    let out = ok(&vhost.run(&["replay", "--dry-run", "--class", "poison"]));
    let expected = format!("dry run: {poison} of 1000 messages read would be replayed");
    assert!(out.contains(&expected), "{out}");
    assert!(out.contains("-> moodle.ingest b.user.created"), "{out}");

    assert_eq!(vhost.depth(DLQ_QUEUE).await, 1000);
    assert_eq!(vhost.depth(&catch).await, 0);
    assert_eq!(snapshot(&vhost, DLQ_QUEUE).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn limit_type_and_poison_routes_from_x_death() {
    let vhost = Vhost::new().await;
    let catch = vhost.catch_all().await;
    seed(&vhost, 120).await;
    ok(&vhost.run(&[
        "replay",
        "--class",
        "poison",
        "--type",
        "moodle.user.*",
        "--limit",
        "7",
        "--yes",
    ]));
    let replayed = snapshot(&vhost, &catch).await;
    assert_eq!(replayed.len(), 7);
    for copies in replayed.values() {
        let props = &copies[0].props;
        assert_eq!(
            props.kind().as_ref().map(|k| k.as_str()),
            Some("moodle.user.created")
        );
        // x-death is the broker's history: kept.
        assert!(header(props, dlq::X_DEATH).is_some());
    }
    assert_eq!(vhost.depth(DLQ_QUEUE).await, 113);
}

#[tokio::test(flavor = "multi_thread")]
async fn unroutable_or_missing_targets_leave_messages_in_the_dlq() {
    let vhost = Vhost::new().await;
    seed(&vhost, 30).await;
    let before = snapshot(&vhost, DLQ_QUEUE).await;

    // moodle.events exists but nothing is bound to it here: every publish is returned.
    let out = vhost.run(&["replay", "--to-exchange", "moodle.events", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("30 unroutable"), "{}", stdout(&out));

    let out = vhost.run(&[
        "replay",
        "--to-exchange",
        "no.such.exchange",
        "--site",
        "a",
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("exchange \"no.such.exchange\" does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("10 the target exchange does not exist"),
        "{}",
        stdout(&out)
    );

    assert_eq!(snapshot(&vhost, DLQ_QUEUE).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_the_broker_dead_lettered_is_listed_as_poison_and_replayed() {
    use futures_util::StreamExt;
    use lapin::BasicProperties;
    use lapin::options::{BasicConsumeOptions, BasicNackOptions, BasicPublishOptions};
    use lapin::types::FieldTable;
    use relay_contract::routing::INGEST_EXCHANGE;

    let vhost = Vhost::new().await;
    vhost
        .channel
        .basic_publish(
            INGEST_EXCHANGE.into(),
            "a.user.created".into(),
            BasicPublishOptions::default(),
            br#"{"type":"moodle.user.created"}"#,
            BasicProperties::default().with_message_id("poisoned".into()),
        )
        .await
        .unwrap_or_else(|e| panic!("publish: {e}"));
    // Return it to relay.ingest.a (single active consumer: no basic.get) until
    // its delivery limit sends it to the DLQ.
    let channel = vhost
        .conn
        .create_channel()
        .await
        .unwrap_or_else(|e| panic!("channel: {e}"));
    let mut consumer = channel
        .basic_consume(
            "relay.ingest.a".into(),
            "poisoner".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("consume: {e}"));
    let requeue = BasicNackOptions {
        multiple: false,
        requeue: true,
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while vhost.depth(DLQ_QUEUE).await == 0 && tokio::time::Instant::now() < deadline {
        let next = tokio::time::timeout(std::time::Duration::from_millis(200), consumer.next());
        if let Ok(Some(Ok(delivery))) = next.await {
            delivery
                .acker
                .nack(requeue)
                .await
                .unwrap_or_else(|e| panic!("nack: {e}"));
        }
    }
    let _ = channel.close(200, "poisoned".into()).await;
    assert_eq!(vhost.depth(DLQ_QUEUE).await, 1, "never dead-lettered");
    // Bound only now, so that it receives the replay and not the first publish.
    let catch = vhost.catch_all().await;

    let listed = ok(&vhost.run(&["list", "--json", "--class", "poison"]));
    let v: serde_json::Value =
        serde_json::from_str(listed.trim()).unwrap_or_else(|e| panic!("{listed}: {e}"));
    assert_eq!(v["id"], "poisoned");
    assert_eq!(v["site"], "a");
    assert_eq!(v["type"], "moodle.user.created");
    assert_eq!(v["code"], "delivery_limit");
    assert_eq!(v["original_exchange"], "moodle.ingest");
    assert_eq!(v["original_routing_key"], "a.user.created");
    assert!(v["last_failed_at"].is_string(), "{v}");

    ok(&vhost.run(&["replay", "--class", "poison", "--yes"]));
    let replayed = snapshot(&vhost, &catch).await;
    assert_eq!(replayed.keys().collect::<Vec<_>>(), ["poisoned"]);
    assert_eq!(replayed["poisoned"].len(), 1);
    assert_eq!(
        header(&replayed["poisoned"][0].props, dlq::REPLAY_COUNT).as_deref(),
        Some("1")
    );
}
