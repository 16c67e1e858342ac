//! Test support: a fresh RabbitMQ vhost per test with the worker's topology,
//! a DLQ seeded with dead letters shaped exactly as the worker (or, for
//! poison, the broker) writes them, snapshots of a queue that leave it as it
//! was, and the `dlq-replayer` binary run as operators run it.

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use relay_contract::dlq;
use relay_contract::routing::{DLQ_QUEUE, INGEST_EXCHANGE};
use relay_worker::config::{Config, SiteConfig};
use relay_worker::topology::Topology;

/// The sites and failure classes of a seeded DLQ.
pub const SITES: [&str; 3] = ["a", "b", "c"];
pub const CLASSES: [&str; 4] = ["transient", "client", "invalid", "poison"];

pub fn code_of(class: &str) -> &'static str {
    match class {
        "transient" => "http503",
        "client" => "invalidparameter",
        "invalid" => "schema",
        _ => "delivery_limit",
    }
}

/// A vhost of its own for one test, with the worker's topology for [`SITES`];
/// deleted when dropped.
pub struct Vhost {
    scratch: test_broker::ScratchVhost,
    pub conn: Connection,
    pub channel: Channel,
}

impl Vhost {
    /// The AMQP URL of this vhost.
    pub fn url(&self) -> &str {
        &self.scratch.url
    }

    pub async fn new() -> Vhost {
        let scratch = test_broker::ScratchVhost::for_test("dlq-test");
        let url = &scratch.url;
        let conn = Connection::connect(url, ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("no RabbitMQ at {url}: {e}"));
        let config = Config {
            sites: SITES
                .iter()
                .map(|s| SiteConfig::new(s.parse().unwrap_or_else(|e| panic!("{e}"))))
                .collect(),
            ..Config::default()
        };
        Topology::for_config(&config)
            .declare(&conn)
            .await
            .unwrap_or_else(|e| panic!("declare topology: {e}"));
        let channel = conn
            .create_channel()
            .await
            .unwrap_or_else(|e| panic!("channel: {e}"));
        Vhost {
            scratch,
            conn,
            channel,
        }
    }

    /// A queue bound to `moodle.ingest` with `#`: receives every replay.
    pub async fn catch_all(&self) -> String {
        let name = "test.catch-all".to_owned();
        self.channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("declare {name}: {e}"));
        self.channel
            .queue_bind(
                name.as_str().into(),
                INGEST_EXCHANGE.into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("bind {name}: {e}"));
        name
    }

    /// Ready messages in `queue`.
    pub async fn depth(&self, queue: &str) -> u32 {
        let options = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        self.channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await
            .map(|q| q.message_count())
            .unwrap_or_else(|e| panic!("inspect {queue}: {e}"))
    }

    /// Messages of `queue` delivered to some client and neither acked nor given
    /// back yet (rabbitmqctl: AMQP has no way to ask).
    pub fn unacked(&self, queue: &str) -> u32 {
        let listing = test_broker::rabbitmqctl_within(
            std::time::Duration::from_secs(30),
            &[
                "list_queues",
                "-p",
                &self.scratch.name,
                "-q",
                "name",
                "messages_unacknowledged",
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        listing
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .find(|(name, _)| *name == queue)
            .map(|(_, count)| {
                count
                    .trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("{count:?}: {e}"))
            })
            .unwrap_or_else(|| panic!("{queue} is not in: {listing}"))
    }

    /// Runs `dlq-replayer` on this vhost with `args`; stdin is not a terminal.
    pub fn run(&self, args: &[&str]) -> Output {
        replayer(self.url(), args)
    }
}

/// Runs the binary with `RELAY_AMQP_URL=url` and waits for it.
pub fn replayer(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dlq-replayer"))
        .args(args)
        .env("RELAY_AMQP_URL", url)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run dlq-replayer: {e}"))
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a zero exit, showing stderr otherwise.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// One seeded dead letter.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub id: String,
    pub site: &'static str,
    pub class: &'static str,
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// The `x-death` header the broker gives a message it dead-lettered from
/// `site`'s ingest queue at its delivery limit, at Unix time `at`.
pub fn x_death(site: &str, routing_key: &str, at: u64) -> AMQPValue {
    let mut death = FieldTable::default();
    death.insert("reason".into(), long("delivery_limit"));
    death.insert("queue".into(), long(&format!("relay.ingest.{site}")));
    death.insert("exchange".into(), long(INGEST_EXCHANGE));
    death.insert("count".into(), AMQPValue::LongLongInt(1));
    death.insert("time".into(), AMQPValue::Timestamp(at));
    death.insert(
        "routing-keys".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![long(routing_key)])),
    );
    AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(death)]))
}

/// The properties and body of a dead letter: the worker's headers (long
/// strings, attempts a long-long int), or for poison only the broker's `x-death`.
pub fn dead_letter(
    n: usize,
    site: &'static str,
    class: &'static str,
) -> (Seeded, BasicProperties, Vec<u8>) {
    let id = uuid::Uuid::new_v4().to_string();
    let kind = ["moodle.user.created", "moodle.enrolment.created"][n % 2];
    let routing_key = format!("{site}.{}", kind.trim_start_matches("moodle."));
    let mut headers = FieldTable::default();
    if class == "poison" {
        headers.insert(
            dlq::X_DEATH.into(),
            x_death(site, &routing_key, 1_795_000_000 + n as u64),
        );
    } else {
        let at = format!("2026-11-24T{:02}:{:02}:00Z", (n / 60) % 24, n % 60);
        for (key, value) in [
            (dlq::ERROR_CLASS, class),
            (dlq::ERROR_CODE, code_of(class)),
            (dlq::ERROR_MESSAGE, "Moodle said no"),
            (dlq::FIRST_FAILED_AT, at.as_str()),
            (dlq::LAST_FAILED_AT, at.as_str()),
            (dlq::SITE, site),
            (dlq::ORIGINAL_EXCHANGE, INGEST_EXCHANGE),
            (dlq::ORIGINAL_ROUTING_KEY, routing_key.as_str()),
            (dlq::WORKER_VERSION, "0.1.0"),
        ] {
            headers.insert(key.into(), long(value));
        }
        headers.insert(dlq::ATTEMPTS.into(), AMQPValue::LongLongInt(5));
    }
    let props = BasicProperties::default()
        .with_message_id(id.as_str().into())
        .with_content_type("application/cloudevents+json".into())
        .with_type(kind.into())
        .with_delivery_mode(2)
        .with_timestamp(1_795_000_000)
        .with_app_id("local_eventrelay".into())
        .with_headers(headers);
    let body = serde_json::json!({
        "specversion": "1.0", "id": id, "type": kind, "moodlesite": site,
        "sequence": format!("{n:020}"), "data": {"userid": n}
    });
    let body = serde_json::to_vec(&body).unwrap_or_else(|e| panic!("{e}"));
    let seeded = Seeded { id, site, class };
    (seeded, props, body)
}

/// Publishes `count` dead letters into `relay.dlq`, spread evenly over
/// [`SITES`] × [`CLASSES`], with confirms.
pub async fn seed(vhost: &Vhost, count: usize) -> Vec<Seeded> {
    let mut seeded = Vec::with_capacity(count);
    let mut messages = Vec::with_capacity(count);
    for n in 0..count {
        let (s, props, body) = dead_letter(n, SITES[n % 3], CLASSES[(n / 3) % 4]);
        seeded.push(s);
        messages.push((body, props));
    }
    publish_confirmed(vhost, messages).await;
    seeded
}

/// Publishes messages into `relay.dlq` on a channel in confirm mode and waits
/// until the broker confirmed every one (none returned).
pub async fn publish_confirmed(vhost: &Vhost, messages: Vec<(Vec<u8>, BasicProperties)>) {
    let channel = vhost
        .conn
        .create_channel()
        .await
        .unwrap_or_else(|e| panic!("channel: {e}"));
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap_or_else(|e| panic!("confirm mode: {e}"));
    for (body, props) in messages {
        publish_raw(&channel, &body, props).await;
    }
    let returned = channel
        .wait_for_confirms()
        .await
        .unwrap_or_else(|e| panic!("confirms: {e}"));
    assert!(returned.is_empty(), "seeding: {} returned", returned.len());
    let _ = channel.close(200, "seeded".into()).await;
}

pub async fn publish_raw(channel: &Channel, body: &[u8], props: BasicProperties) {
    channel
        .basic_publish(
            "".into(),
            DLQ_QUEUE.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            props,
        )
        .await
        .unwrap_or_else(|e| panic!("publish: {e}"));
}

/// A message as compared by the tests: properties and headers (without the
/// broker's `x-delivery-count`) and body.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    pub props: BasicProperties,
    pub body: Vec<u8>,
}

/// Everything in `queue` by message id (a list per id, duplicates kept),
/// read with basic.get on a channel that is then closed, which gives every
/// message back: the queue is left as it was.
pub async fn snapshot(vhost: &Vhost, queue: &str) -> BTreeMap<String, Vec<Content>> {
    let channel = vhost
        .conn
        .create_channel()
        .await
        .unwrap_or_else(|e| panic!("channel: {e}"));
    let mut all: BTreeMap<String, Vec<Content>> = BTreeMap::new();
    loop {
        let got = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap_or_else(|e| panic!("get from {queue}: {e}"));
        let Some(message) = got else { break };
        let delivery = message.delivery;
        let mut props = delivery.properties.clone();
        if let Some(h) = props.headers() {
            let mut inner = h.inner().clone();
            inner.remove("x-delivery-count");
            props = props.with_headers(FieldTable::from(inner));
        }
        let id = props
            .message_id()
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default();
        all.entry(id).or_default().push(Content {
            props,
            body: delivery.data,
        });
    }
    let _ = channel.close(200, "snapshot".into()).await;
    // A quorum queue requeues asynchronously: wait until all are ready again.
    let total: usize = all.values().map(Vec::len).sum();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while (vhost.depth(queue).await as usize) < total && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    all
}

/// A header of a message as text.
pub fn header(props: &BasicProperties, key: &str) -> Option<String> {
    match props.headers().as_ref()?.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::LongLongInt(n) => Some(n.to_string()),
        other => Some(format!("{other:?}")),
    }
}
