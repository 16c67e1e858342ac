//! Shared test support: a fresh RabbitMQ vhost per test (so fixed names such
//! as `moodle.ingest` never collide), an in-process worker, event factories
//! and broker helpers. Everything talks to the real broker.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use relay_contract::CLOUDEVENTS_CONTENT_TYPE;
use relay_contract::routing::{EVENTS_EXCHANGE, INGEST_EXCHANGE};
use relay_worker::config::{Config, Secret, SiteConfig};
use relay_worker::topology::Topology;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The broker under test: `RELAY_TEST_AMQP_URL`, or the local one.
pub fn amqp_url() -> String {
    std::env::var("RELAY_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    format!("test.{prefix}.{}", uuid::Uuid::new_v4().simple())
}

/// A connection and one channel, or a clear failure when no broker listens.
pub async fn channel() -> (Connection, Channel) {
    connect(&amqp_url()).await
}

pub async fn connect(url: &str) -> (Connection, Channel) {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("no RabbitMQ at {url}: {e} (start it with `make rabbitmq`)"));
    let channel = conn
        .create_channel()
        .await
        .unwrap_or_else(|e| panic!("create channel: {e}"));
    (conn, channel)
}

/// A vhost of its own for one test, deleted when dropped.
pub type Vhost = test_broker::ScratchVhost;

/// A test configuration: short retries, no jitter, a quick grace period.
pub fn config(url: &str, sites: &[&str]) -> Config {
    let mut config = Config::default();
    config.amqp.url = Secret::new(url);
    config.retry.delays_s = vec![1, 2];
    config.retry.jitter = 0.0;
    config.worker.shutdown_grace_s = 5;
    config.worker.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.sites = sites
        .iter()
        .map(|s| SiteConfig::new(s.parse().unwrap_or_else(|e| panic!("{e}"))))
        .collect();
    config
}

/// Declares what the worker declares, so a test can fill queues before it starts.
pub async fn declare_topology(config: &Config) {
    let (conn, _) = connect(config.amqp.url.expose()).await;
    Topology::for_config(config)
        .declare(&conn)
        .await
        .unwrap_or_else(|e| panic!("declare topology: {e}"));
    let _ = conn.close(200, "declared".into()).await;
}

/// Everything the code under test logged in this process, for tests that
/// check what must never be logged.
static LOG: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

/// Writes each log line to [`LOG`] and to the test's captured output.
struct Tee;

impl std::io::Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        print!("{}", String::from_utf8_lossy(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One subscriber for the whole test binary (set once; later calls do nothing):
/// worker logs show in `cargo test -- --nocapture` and land in [`captured_log`].
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info,lapin=warn"))
        .with_writer(|| Tee)
        .try_init();
}

/// The log lines so far that contain `marker` (e.g. a test's unique site id;
/// "" for every line).
pub fn captured_log(marker: &str) -> Vec<String> {
    let log = LOG.lock().unwrap_or_else(|p| p.into_inner());
    String::from_utf8_lossy(&log)
        .lines()
        .filter(|l| l.contains(marker))
        .map(str::to_owned)
        .collect()
}

/// A worker running in this process.
pub struct Worker {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), relay_worker::RunError>>,
    pub http: SocketAddr,
}

impl Worker {
    pub async fn start(config: Config) -> Worker {
        init_logging();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let http = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(relay_worker::run_with_listener(listener, config, async {
            let _ = rx.await;
        }));
        Worker {
            stop: Some(tx),
            handle,
            http,
        }
    }

    /// Asks the worker to stop and waits for it (a minute at most: a worker
    /// that cannot be stopped fails the test instead of hanging CI).
    pub async fn stop(mut self) -> Result<(), relay_worker::RunError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match tokio::time::timeout(Duration::from_secs(60), &mut self.handle).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => panic!("worker task failed: {e}"),
            Err(_) => panic!("the worker did not stop within 60 s of being asked"),
        }
    }

    /// The worker ended by itself (e.g. a fatal start-up error).
    pub async fn finished(self) -> Result<(), relay_worker::RunError> {
        match self.handle.await {
            Ok(result) => result,
            Err(e) => panic!("worker task failed: {e}"),
        }
    }
}

/// Every valid fixture as JSON, sorted by file name.
pub fn valid_fixtures() -> Vec<(String, Vec<u8>)> {
    fixtures("valid")
}

pub fn fixtures(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../schemas/fixtures")
        .join(kind);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|entry| {
            let path = entry.path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (entry.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    out.sort();
    out
}

/// A new valid event of `site`: fixture number `n % fixtures` with a fresh id
/// and sequence `n`. Returns (id, routing key, body).
pub struct EventFactory {
    templates: Vec<Value>,
}

impl EventFactory {
    pub fn new() -> EventFactory {
        let templates = valid_fixtures()
            .into_iter()
            .map(|(_, bytes)| serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        EventFactory { templates }
    }

    pub fn event(&self, site: &str, n: u64) -> (String, String, Vec<u8>) {
        let mut event = self.templates[(n as usize) % self.templates.len()].clone();
        let id = uuid::Uuid::new_v4().to_string();
        event["id"] = id.clone().into();
        event["moodlesite"] = site.into();
        event["sequence"] = format!("{n:020}").into();
        let suffix = event["type"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("moodle.")
            .to_owned();
        let body = serde_json::to_vec(&event).unwrap_or_else(|e| panic!("{e}"));
        (id, format!("{site}.{suffix}"), body)
    }
}

/// The properties the plugin sets on what it publishes.
pub fn plugin_properties(id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_message_id(id.into())
        .with_content_type(CLOUDEVENTS_CONTENT_TYPE.into())
        .with_delivery_mode(2)
        .with_app_id("local_eventrelay".into())
}

/// A message to publish: routing key, body, properties.
pub type Message = (String, Vec<u8>, BasicProperties);

/// Publishes to `moodle.ingest` as the plugin would, waiting for confirms.
pub async fn publish_ingest(channel: &Channel, messages: &[Message]) {
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap_or_else(|e| panic!("confirm mode: {e}"));
    for (key, body, props) in messages {
        channel
            .basic_publish(
                INGEST_EXCHANGE.into(),
                key.as_str().into(),
                BasicPublishOptions::default(),
                body,
                props.clone(),
            )
            .await
            .unwrap_or_else(|e| panic!("publish: {e}"));
    }
    let returned = channel
        .wait_for_confirms()
        .await
        .unwrap_or_else(|e| panic!("confirms: {e}"));
    assert!(returned.is_empty());
}

/// A durable downstream queue bound to `moodle.events` with `pattern`.
pub async fn downstream_queue(channel: &Channel, pattern: &str, arguments: FieldTable) -> String {
    let name = unique("downstream");
    channel
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        )
        .await
        .unwrap_or_else(|e| panic!("declare {name}: {e}"));
    channel
        .queue_bind(
            name.as_str().into(),
            EVENTS_EXCHANGE.into(),
            pattern.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("bind {name}: {e}"));
    name
}

/// Consumes until `count` messages arrived or `within` passed, on a channel of
/// its own: what it took is acked, and closing the channel returns whatever
/// the broker had already pushed beyond that.
pub async fn collect(
    conn: &Connection,
    queue: &str,
    count: usize,
    within: Duration,
) -> Vec<Delivery> {
    let channel = conn
        .create_channel()
        .await
        .unwrap_or_else(|e| panic!("channel: {e}"));
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            unique("collector").as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("consume {queue}: {e}"));
    let mut out = Vec::with_capacity(count);
    let deadline = tokio::time::Instant::now() + within;
    while out.len() < count {
        match tokio::time::timeout_at(deadline, consumer.next()).await {
            Ok(Some(Ok(delivery))) => {
                delivery
                    .acker
                    .ack(BasicAckOptions::default())
                    .await
                    .unwrap_or_else(|e| panic!("ack: {e}"));
                out.push(delivery);
            }
            Ok(Some(Err(e))) => panic!("consuming {queue}: {e}"),
            Ok(None) | Err(_) => break,
        }
    }
    let _ = channel.close(200, "collected".into()).await;
    out
}

/// Messages ready in `queue`.
pub async fn depth(channel: &Channel, queue: &str) -> u32 {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map(|q| q.message_count())
        .unwrap_or_else(|e| panic!("inspect {queue}: {e}"))
}

/// A header's value as text.
pub fn header(delivery: &Delivery, key: &str) -> Option<String> {
    use lapin::types::AMQPValue;
    match delivery.properties.headers().as_ref()?.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        AMQPValue::LongLongInt(n) => Some(n.to_string()),
        AMQPValue::LongInt(n) => Some(n.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// A `relay-worker` process, as operators run it; its stderr (JSON logs) goes
/// to a file.
pub struct WorkerProcess {
    pub child: std::process::Child,
    pub log: std::path::PathBuf,
}

impl WorkerProcess {
    /// Starts the binary with a TOML config for `sites` on `url`.
    pub fn spawn(dir: &Path, url: &str, sites: &[&str], extra: &str) -> WorkerProcess {
        let config = dir.join("relay.toml");
        let mut text = format!(
            "[amqp]\nurl = \"{url}\"\n[worker]\nlisten = \"127.0.0.1:0\"\nshutdown_grace_s = 10\n\
             [retry]\ndelays_s = [1, 2]\njitter = 0.0\n{extra}\n"
        );
        for site in sites {
            text.push_str(&format!("[[sites]]\nid = \"{site}\"\n"));
        }
        std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));
        let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let log = dir.join(format!("worker-{n}.log"));
        let stderr = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new(env!("CARGO_BIN_EXE_relay-worker"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn relay-worker: {e}"));
        WorkerProcess { child, log }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to `within` for the exit status.
    pub fn terminate(mut self, within: Duration) -> (Option<std::process::ExitStatus>, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + within;
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        (status, log)
    }
}

/// A directory of its own under the system temp dir.
pub fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("relay-it-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

/// Publishes `count` events of `site` as the plugin would; returns their ids.
pub async fn publish_events(channel: &Channel, site: &str, count: u64) -> Vec<String> {
    let factory = EventFactory::new();
    let mut ids = Vec::with_capacity(count as usize);
    let mut batch = Vec::with_capacity(count as usize);
    for n in 1..=count {
        let (id, key, body) = factory.event(site, n);
        batch.push((key, body, plugin_properties(&id)));
        ids.push(id);
    }
    publish_ingest(channel, &batch).await;
    ids
}

/// Waits until `queue` holds at least `count` messages; false on timeout.
pub async fn wait_for_depth(channel: &Channel, queue: &str, count: u32, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if depth(channel, queue).await >= count {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Message ids of everything in `queue`, consumed until it stays empty for `idle`.
pub async fn drain_ids(conn: &Connection, queue: &str, idle: Duration) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let batch = collect(conn, queue, 5_000, idle).await;
        if batch.is_empty() {
            return ids;
        }
        ids.extend(batch.iter().map(message_id));
    }
}

/// Consumes `queue` until every id in `expected` has been seen or `within`
/// passed; returns every id received, duplicates included.
pub async fn await_ids(
    conn: &Connection,
    queue: &str,
    expected: &[String],
    within: Duration,
) -> Vec<String> {
    let wanted: std::collections::BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    let mut seen = std::collections::BTreeSet::new();
    let mut all = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while seen.len() < wanted.len() && tokio::time::Instant::now() < deadline {
        for delivery in collect(conn, queue, 5_000, Duration::from_millis(500)).await {
            let id = message_id(&delivery);
            if wanted.contains(id.as_str()) {
                seen.insert(id.clone());
            }
            all.push(id);
        }
    }
    all
}

/// What most tests start from: a vhost of their own, a worker configuration
/// for `sites`, the topology declared, and a connection with a channel.
pub struct Rig {
    pub vhost: Vhost,
    pub config: Config,
    pub conn: Connection,
    pub channel: Channel,
}

impl Rig {
    pub async fn new(sites: &[&str]) -> Rig {
        let vhost = Vhost::for_test("relay-test");
        let config = config(&vhost.url, sites);
        declare_topology(&config).await;
        let (conn, channel) = connect(&vhost.url).await;
        Rig {
            vhost,
            config,
            conn,
            channel,
        }
    }
}

/// The delivery's `message_id` ("" when absent).
pub fn message_id(delivery: &Delivery) -> String {
    delivery
        .properties
        .message_id()
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default()
}

/// Site → the fleet member holding its active consumer.
pub type Holders = std::collections::BTreeMap<String, String>;

/// Site and member of an active consumer, from its queue and tag
/// (`relay-worker.<site>.<member>.<uuid>`); None for other queues.
pub fn holder(queue: &str, tag: &str) -> Option<(String, String)> {
    let site = queue.strip_prefix("relay.ingest.")?;
    let member = tag
        .strip_prefix(&format!("relay-worker.{site}."))
        .and_then(|rest| rest.rsplit_once('.'))
        .map_or(tag, |(member, _)| member);
    Some((site.to_owned(), member.to_owned()))
}

/// Holders from (queue, tag) pairs of active consumers; Err names the first
/// site with two.
pub fn holders_of<'a>(active: impl Iterator<Item = (&'a str, &'a str)>) -> Result<Holders, String> {
    let mut holders = Holders::new();
    for (queue, tag) in active {
        let Some((site, member)) = holder(queue, tag) else {
            continue;
        };
        if let Some(earlier) = holders.insert(site.clone(), member.clone()) {
            return Err(format!(
                "two active consumers on {site}: {earlier} and {member}"
            ));
        }
    }
    Ok(holders)
}

/// Which member holds each site's active consumer, as
/// `rabbitmqctl list_consumers` says; Err names a site with two.
pub fn site_holders(vhost: &str) -> Result<Holders, String> {
    let out = std::process::Command::new("rabbitmqctl")
        .args([
            "list_consumers",
            "-p",
            vhost,
            "queue_name",
            "consumer_tag",
            "active",
        ])
        .args(["--formatter", "json", "--quiet"])
        .output()
        .unwrap_or_else(|e| panic!("rabbitmqctl: {e}"));
    holders_listed(&String::from_utf8_lossy(&out.stdout))
}

/// Holders from the JSON of `rabbitmqctl list_consumers queue_name
/// consumer_tag active --formatter json`; Err names a site with two.
pub fn holders_listed(listed: &str) -> Result<Holders, String> {
    let rows: Vec<Value> = serde_json::from_str(listed).map_err(|e| format!("{e}: {listed}"))?;
    holders_of(
        rows.iter()
            .filter(|r| r["active"] == Value::Bool(true))
            .map(|r| {
                let field = |k: &str| r[k].as_str().unwrap_or_default();
                (field("queue_name"), field("consumer_tag"))
            }),
    )
}

/// How many sites each member holds.
pub fn shares(holders: &Holders) -> std::collections::BTreeMap<String, usize> {
    let mut shares = std::collections::BTreeMap::new();
    for member in holders.values() {
        *shares.entry(member.clone()).or_default() += 1;
    }
    shares
}
