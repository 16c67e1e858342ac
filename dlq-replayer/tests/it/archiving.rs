//! `export`, `purge` and `import`: messages survive a round trip through a
//! file exactly, headers included; `purge` needs `--yes` and backs up first.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, ByteArray, FieldTable, LongString};
use relay_contract::routing::DLQ_QUEUE;

use crate::support::{Vhost, ok, publish_raw, seed, snapshot, stderr};

fn temp_file(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("dlq-it-{}-{name}", uuid::Uuid::new_v4().simple()))
}

/// A message with a binary body and header types the worker never writes.
fn odd_message() -> (BasicProperties, Vec<u8>) {
    let mut headers = FieldTable::default();
    headers.insert("x-int32".into(), AMQPValue::LongInt(-7));
    headers.insert("x-bool".into(), AMQPValue::Boolean(true));
    headers.insert(
        "x-bytes".into(),
        AMQPValue::ByteArray(ByteArray::from(vec![0, 1, 255])),
    );
    headers.insert(
        "x-latin1".into(),
        AMQPValue::LongString(LongString::from(vec![0xe9])),
    );
    headers.insert("x-time".into(), AMQPValue::Timestamp(1_795_000_000));
    let props = BasicProperties::default()
        .with_message_id("odd-one".into())
        .with_correlation_id("corr".into())
        .with_priority(1)
        .with_headers(headers);
    (props, vec![0xff, 0x00, 0xfe])
}

#[tokio::test(flavor = "multi_thread")]
async fn export_then_purge_then_import_gives_back_the_same_messages() {
    let vhost = Vhost::new().await;
    seed(&vhost, 200).await;
    let (props, body) = odd_message();
    publish_raw(&vhost.channel, &body, props).await;
    let before = snapshot(&vhost, DLQ_QUEUE).await;
    assert_eq!(before.len(), 201);

    let export = temp_file("export.jsonl");
    let backup = temp_file("backup.jsonl");
    let export_s = export.display().to_string();
    let backup_s = backup.display().to_string();
    ok(&vhost.run(&["export", "-o", &export_s]));
    assert_eq!(vhost.depth(DLQ_QUEUE).await, 201, "export removed messages");

    let out = ok(&vhost.run(&["purge", "--yes", "--backup", &backup_s]));
    assert!(out.contains("purged 201 of 201 messages"), "{out}");
    assert_eq!(vhost.depth(DLQ_QUEUE).await, 0);
    // Same records; the order may differ, as given-back messages are requeued.
    let lines = |p: &std::path::Path| {
        let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{e}"));
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    assert!(
        lines(&backup) == lines(&export),
        "the backup is not the export"
    );

    let out = ok(&vhost.run(&["import", &export_s]));
    assert!(out.contains("imported 201 of 201 messages"), "{out}");
    assert_eq!(snapshot(&vhost, DLQ_QUEUE).await, before);

    // A purge never overwrites an earlier backup.
    let again = vhost.run(&["purge", "--yes", "--backup", &backup_s]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(vhost.depth(DLQ_QUEUE).await, 201);
    let _ = std::fs::remove_file(export);
    let _ = std::fs::remove_file(backup);
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_needs_yes_and_removes_only_what_matches() {
    let vhost = Vhost::new().await;
    let seeded = seed(&vhost, 60).await;
    let refused = vhost.run(&["purge", "--class", "client"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("--yes"), "{}", stderr(&refused));
    assert_eq!(vhost.depth(DLQ_QUEUE).await, 60);

    let out = ok(&vhost.run(&["purge", "--class", "client", "--no-backup", "--yes"]));
    let clients = seeded.iter().filter(|s| s.class == "client").count();
    assert!(out.contains(&format!("purged {clients} of 60")), "{out}");
    let left = snapshot(&vhost, DLQ_QUEUE).await;
    assert_eq!(left.len(), 60 - clients);
    assert!(
        seeded
            .iter()
            .all(|s| (s.class == "client") != left.contains_key(&s.id))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn import_refuses_a_bad_file_before_publishing_anything() {
    let vhost = Vhost::new().await;
    let file = temp_file("bad.jsonl");
    std::fs::write(&file, "{\"properties\":{},\"body\":\"ok\"}\n{\"properties\":{},\"headers\":{\"h\":{\"nope\":1}},\"body\":\"x\"}\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let out = vhost.run(&["import", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("line 2: header \"h\": unknown value type \"nope\""),
        "{}",
        stderr(&out)
    );
    assert_eq!(vhost.depth(DLQ_QUEUE).await, 0);
    // An empty queue is read, not waited for.
    let listed = ok(&vhost.run(&["list"]));
    assert!(
        listed.ends_with("(0 of 0 messages in relay.dlq)\n"),
        "{listed}"
    );
    let _ = std::fs::remove_file(file);
}
