//! Least-privilege broker users: each may do its job and nothing else.
//!
//! `deploy/rabbitmq/import.sh` loads `deploy/rabbitmq/definitions.json` and
//! the users (random passwords, random user-name suffix: users are global to
//! the broker) into a scratch vhost of the real broker; then each user, over
//! AMQP, does what its program does and is refused, with 403 ACCESS_REFUSED,
//! what it must not do. The second test runs the worker itself as its user.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
    QueuePurgeOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use relay_contract::dlq;
use relay_contract::routing::{
    DLQ_QUEUE, EVENTS_EXCHANGE, FLEET_EXCHANGE, INGEST_EXCHANGE, REQUEUE_EXCHANGE, RETRY_EXCHANGE,
    RETRY_QUEUE_HEADER,
};
use relay_worker::topology::Topology;

use crate::support::{
    self, EventFactory, Vhost, Worker, collect, depth, header, plugin_properties,
};

/// The relay's users, as named in definitions.json.
const PLUGIN: &str = "relay-plugin";
const WORKER: &str = "relay-worker";
const REPLAYER: &str = "relay-replayer";
/// Two subscribers (import.sh --subscriber): each owns queues `<user>.*`.
const CRM: &str = "crm";
const HR: &str = "hr";
const ALL: [&str; 5] = [PLUGIN, WORKER, REPLAYER, CRM, HR];

/// The users of one test run; deleted, even when the test panics, when dropped.
struct Users {
    suffix: String,
    passwords: BTreeMap<&'static str, String>,
    vhost: String,
}

/// Tags this run's users and vhosts: `RELAY_TEST_RUN` (1-12 of a-z, 0-9),
/// which deploy/rabbitmq/check.sh sets so that its trap can remove them should
/// the test be killed before its guards run; else random.
fn run_id() -> String {
    std::env::var("RELAY_TEST_RUN")
        .ok()
        .filter(|r| {
            (1..=12).contains(&r.len())
                && r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..6].to_owned())
}

impl Users {
    /// Random passwords and suffix for [`ALL`]; nothing on the broker yet.
    fn new(vhost: &Vhost) -> Users {
        let random = || uuid::Uuid::new_v4().simple().to_string();
        Users {
            suffix: format!("-t{}{}", run_id(), &random()[..8]),
            passwords: ALL.iter().map(|u| (*u, random())).collect(),
            vhost: vhost.name.clone(),
        }
    }

    /// The broker's name of `user`.
    fn name(&self, user: &str) -> String {
        format!("{user}{}", self.suffix)
    }

    fn url(&self, user: &str) -> String {
        format!(
            "amqp://{}:{}@127.0.0.1:5672/{}",
            self.name(user),
            self.passwords[user],
            self.vhost
        )
    }

    async fn connect(&self, user: &str) -> Connection {
        Connection::connect(&self.url(user), ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("{user} cannot log in: {e}"))
    }

    /// The subscriber's own queue `<user>.<what>`.
    fn queue(&self, user: &str, what: &str) -> String {
        format!("{}.{what}", self.name(user))
    }
}

impl Drop for Users {
    /// All at once: each rabbitmqctl takes most of a second to start.
    fn drop(&mut self) {
        let running: Vec<_> = ALL
            .iter()
            .filter_map(|user| {
                Command::new("rabbitmqctl")
                    .args(["delete_user", "--quiet", &self.name(user)])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .ok()
            })
            .collect();
        for mut child in running {
            let _ = child.wait();
        }
    }
}

fn import_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/rabbitmq/import.sh")
}

/// How import.sh is handed the passwords.
enum Passwords {
    /// `BROKER_PASSWORD_<USER>` variables.
    Environment,
    /// `--password-dir`: one file per user, mode 0600.
    Files,
}

/// Runs import.sh for `users` into their vhost; panics with its output if it
/// fails, and if that output holds a password.
fn import(users: &Users, passwords: Passwords) {
    let mut command = Command::new(import_script());
    command
        .args(["--vhost", &users.vhost, "--user-suffix", &users.suffix])
        .args(["--subscriber", CRM, "--subscriber", HR]);
    let dir = support::temp_dir();
    match passwords {
        Passwords::Environment => {
            for (user, password) in &users.passwords {
                let var = format!("BROKER_PASSWORD_{}", user.to_uppercase().replace('-', "_"));
                command.env(var, password);
            }
        }
        Passwords::Files => {
            use std::os::unix::fs::OpenOptionsExt;
            for (user, password) in &users.passwords {
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(dir.join(user))
                    .unwrap_or_else(|e| panic!("{e}"));
                std::io::Write::write_all(&mut file, format!("{password}\n").as_bytes())
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            command.arg("--password-dir").arg(&dir);
        }
    }
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", import_script().display()));
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    print!("import.sh: {text}");
    assert!(out.status.success(), "import.sh failed: {text}");
    for password in users.passwords.values() {
        assert!(
            !text.contains(password.as_str()),
            "import.sh printed a password"
        );
    }
}

/// A scratch vhost with the topology and the users imported.
fn setup(passwords: Passwords) -> (Vhost, Users) {
    let vhost = Vhost::for_test(&format!("relay-perm-{}", run_id()));
    let users = Users::new(&vhost);
    import(&users, passwords);
    (vhost, users)
}

fn is_refused(error: &lapin::Error) -> bool {
    matches!(
        error.kind(),
        lapin::ErrorKind::ProtocolError(e)
            if *e.kind() == AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)
    )
}

/// `result` is the broker's 403 ACCESS_REFUSED.
fn assert_refused<T: std::fmt::Debug>(what: &str, result: lapin::Result<T>) {
    match result {
        Err(e) if is_refused(&e) => println!("refused as it must be: {what}"),
        Err(e) => panic!("{what}: failed, but not with ACCESS_REFUSED: {e}"),
        Ok(v) => panic!("{what}: allowed ({v:?}), must be refused"),
    }
}

fn assert_allowed<T>(what: &str, result: lapin::Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("{what}: must be allowed, got {e}"))
}

async fn channel(conn: &Connection) -> Channel {
    conn.create_channel()
        .await
        .unwrap_or_else(|e| panic!("channel: {e}"))
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

fn passive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        passive: true,
        ..Default::default()
    }
}

/// Checks that a topic exchange exists, as the plugin and the replayer do
/// (a passive declare).
async fn check_exchange(ch: &Channel, exchange: &str) -> lapin::Result<()> {
    ch.exchange_declare(
        exchange.into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
}

/// Publishes one persistent message (mandatory) on a channel of its own in
/// confirm mode and returns the broker's answer. A refused publish closes the
/// channel: the error is then the broker's reason.
async fn publish(
    conn: &Connection,
    exchange: &str,
    key: &str,
    properties: BasicProperties,
) -> lapin::Result<Confirmation> {
    let ch = channel(conn).await;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let options = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let confirm = ch
        .basic_publish(exchange.into(), key.into(), options, b"{}", properties)
        .await?;
    let answer = confirm.await?;
    // The channel's close (after a refusal) can come after the confirm: a
    // round trip on the same channel settles it (a passive declare needs no
    // permission).
    check_exchange(&ch, "amq.topic").await?;
    let _ = ch.close(200, "published".into()).await;
    Ok(answer)
}

/// The broker took the message and routed it somewhere.
fn acked(answer: &Confirmation) -> bool {
    matches!(answer, Confirmation::Ack(None))
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_does_its_job_and_is_refused_the_rest() {
    let (vhost, users) = setup(Passwords::Environment);
    let site = "lms-perm";
    let ingest = format!("relay.ingest.{site}");
    let key = format!("{site}.user.created");

    // relay-worker: the whole topology, with the worker's own code.
    let worker = users.connect(WORKER).await;
    let config = support::config(&users.url(WORKER), &[site]);
    Topology::for_config(&config)
        .declare(&worker)
        .await
        .unwrap_or_else(|e| panic!("relay-worker must declare the topology: {e}"));
    println!("relay-worker declared the topology");

    // Subscribers: their own queues, bound to moodle.events.
    let crm = users.connect(CRM).await;
    let hr = users.connect(HR).await;
    let crm_queue = users.queue(CRM, "users");
    let hr_queue = users.queue(HR, "all");
    for (conn, queue, pattern) in [(&crm, &crm_queue, "*.user.*"), (&hr, &hr_queue, "#")] {
        let ch = channel(conn).await;
        let declared = ch
            .queue_declare(queue.as_str().into(), durable(), FieldTable::default())
            .await;
        assert_allowed(&format!("subscriber declares {queue}"), declared);
        let bound = ch
            .queue_bind(
                queue.as_str().into(),
                EVENTS_EXCHANGE.into(),
                pattern.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await;
        assert_allowed(&format!("subscriber binds {queue} to moodle.events"), bound);
    }

    // relay-plugin: checks the exchange (passive, as publisher.php does) and publishes.
    let plugin = users.connect(PLUGIN).await;
    let ch = channel(&plugin).await;
    let checked = check_exchange(&ch, INGEST_EXCHANGE).await;
    assert_allowed("relay-plugin checks moodle.ingest (passive)", checked);
    let (id, event_key, body) = EventFactory::new().event(site, 1);
    let confirmed = async {
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        ch.basic_publish(
            INGEST_EXCHANGE.into(),
            event_key.as_str().into(),
            options,
            &body,
            plugin_properties(&id),
        )
        .await?
        .await
    }
    .await;
    let answer = assert_allowed("relay-plugin publishes to moodle.ingest", confirmed);
    assert!(
        acked(&answer),
        "the event is routed to {ingest}: {answer:?}"
    );

    // relay-worker: consumes its site, publishes downstream, to a delay
    // queue and (through the default exchange) to the DLQ.
    let ch = channel(&worker).await;
    let mut consumer = assert_allowed(
        "relay-worker consumes its site queue",
        ch.basic_consume(
            ingest.as_str().into(),
            "perm-test".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await,
    );
    let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("relay-worker got nothing from {ingest}"))
        .unwrap_or_else(|e| panic!("relay-worker consuming: {e}"));
    assert_eq!(support::message_id(&delivery), id, "the plugin's event");
    let _ = ch.close(200, "consumed".into()).await;
    let answer = publish(&worker, EVENTS_EXCHANGE, &key, persistent()).await;
    let answer = assert_allowed("relay-worker publishes to moodle.events", answer);
    assert!(acked(&answer), "routed to the subscribers: {answer:?}");
    let retry = format!("relay.retry.{}ms", config.retry.delays_s[0] * 1000);
    let mut headers = FieldTable::default();
    headers.insert(
        RETRY_QUEUE_HEADER.into(),
        AMQPValue::LongString(LongString::from(retry.as_str())),
    );
    let answer = publish(
        &worker,
        RETRY_EXCHANGE,
        &key,
        persistent().with_headers(headers),
    )
    .await;
    let answer = assert_allowed("relay-worker publishes to relay.retry", answer);
    assert!(acked(&answer), "routed to {retry}: {answer:?}");
    let answer = publish(&worker, "", DLQ_QUEUE, persistent()).await;
    let answer = assert_allowed(
        "relay-worker publishes to relay.dlq (default exchange)",
        answer,
    );
    assert!(acked(&answer), "routed to relay.dlq: {answer:?}");

    // relay-worker: its fleet queue, as membership.rs makes it.
    let ch = channel(&worker).await;
    let fleet = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    let fleet = assert_allowed("relay-worker declares its fleet queue (amq.gen-…)", fleet);
    let bound = ch
        .queue_bind(
            fleet.name().clone(),
            FLEET_EXCHANGE.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert_allowed("relay-worker binds its fleet queue to relay.fleet", bound);
    let consumed = ch
        .basic_consume(
            fleet.name().clone(),
            "fleet".into(),
            BasicConsumeOptions {
                no_ack: true,
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    assert_allowed("relay-worker consumes its fleet queue", consumed);
    let announced = publish(&worker, FLEET_EXCHANGE, "", BasicProperties::default()).await;
    assert_allowed("relay-worker announces itself on relay.fleet", announced);

    // The subscribers read their own queues.
    for (conn, queue, who) in [(&crm, &crm_queue, CRM), (&hr, &hr_queue, HR)] {
        let got = collect(conn, queue, 1, Duration::from_secs(10)).await;
        assert_eq!(got.len(), 1, "{who} reads the worker's event from {queue}");
    }

    // relay-replayer: looks (passive), reads the DLQ, republishes to the
    // original exchanges, imports into the DLQ.
    let replayer = users.connect(REPLAYER).await;
    let ch = channel(&replayer).await;
    let dlq_depth = ch
        .queue_declare(DLQ_QUEUE.into(), passive(), FieldTable::default())
        .await;
    let dlq_depth = assert_allowed("relay-replayer inspects relay.dlq (passive)", dlq_depth);
    assert_eq!(dlq_depth.message_count(), 1);
    for exchange in [INGEST_EXCHANGE, REQUEUE_EXCHANGE] {
        let checked = check_exchange(&ch, exchange).await;
        assert_allowed(
            &format!("relay-replayer checks {exchange} (passive)"),
            checked,
        );
    }
    let letters = collect(&replayer, DLQ_QUEUE, 1, Duration::from_secs(10)).await;
    assert_eq!(letters.len(), 1, "relay-replayer reads relay.dlq");
    for exchange in [INGEST_EXCHANGE, REQUEUE_EXCHANGE] {
        let answer = publish(&replayer, exchange, &key, persistent()).await;
        let answer = assert_allowed(&format!("relay-replayer republishes to {exchange}"), answer);
        assert!(acked(&answer), "routed back to {ingest}: {answer:?}");
    }
    let answer = publish(&replayer, "", DLQ_QUEUE, persistent()).await;
    let answer = assert_allowed("relay-replayer imports into relay.dlq", answer);
    assert!(acked(&answer), "{answer:?}");

    // What each must not do: 403 ACCESS_REFUSED.
    let refused_publish = [
        (
            PLUGIN,
            EVENTS_EXCHANGE,
            key.as_str(),
            "relay-plugin publishes to moodle.events",
        ),
        (
            PLUGIN,
            "",
            ingest.as_str(),
            "relay-plugin publishes straight into its site queue",
        ),
        (
            PLUGIN,
            RETRY_EXCHANGE,
            key.as_str(),
            "relay-plugin publishes to relay.retry",
        ),
        (
            CRM,
            INGEST_EXCHANGE,
            key.as_str(),
            "a subscriber publishes to moodle.ingest",
        ),
        (
            CRM,
            EVENTS_EXCHANGE,
            key.as_str(),
            "a subscriber publishes to moodle.events",
        ),
        (CRM, "", DLQ_QUEUE, "a subscriber publishes to relay.dlq"),
        (
            WORKER,
            INGEST_EXCHANGE,
            key.as_str(),
            "relay-worker publishes to moodle.ingest",
        ),
        (
            REPLAYER,
            EVENTS_EXCHANGE,
            key.as_str(),
            "relay-replayer publishes to moodle.events",
        ),
        (
            REPLAYER,
            RETRY_EXCHANGE,
            key.as_str(),
            "relay-replayer publishes to relay.retry",
        ),
    ];
    let conns: BTreeMap<&str, &Connection> = [
        (PLUGIN, &plugin),
        (WORKER, &worker),
        (REPLAYER, &replayer),
        (CRM, &crm),
    ]
    .into_iter()
    .collect();
    for (user, exchange, key, what) in refused_publish {
        let conn = conns[user];
        assert_refused(what, publish(conn, exchange, key, persistent()).await);
    }

    // Reading: consume, get and purge.
    let refused_read = [
        (PLUGIN, ingest.as_str(), "relay-plugin"),
        (CRM, DLQ_QUEUE, "a subscriber"),
        (
            CRM,
            hr_queue.as_str(),
            "a subscriber (another subscriber's queue)",
        ),
        (CRM, ingest.as_str(), "a subscriber"),
        (WORKER, DLQ_QUEUE, "relay-worker"),
        (WORKER, crm_queue.as_str(), "relay-worker"),
        (REPLAYER, ingest.as_str(), "relay-replayer"),
        (REPLAYER, crm_queue.as_str(), "relay-replayer"),
    ];
    for (user, queue, who) in refused_read {
        let conn = conns[user];
        let consumed = channel(conn)
            .await
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await;
        assert_refused(&format!("{who} consumes {queue}"), consumed);
        let got = channel(conn)
            .await
            .basic_get(queue.into(), BasicGetOptions::default())
            .await;
        assert_refused(&format!("{who} gets from {queue}"), got);
        let purged = channel(conn)
            .await
            .queue_purge(queue.into(), QueuePurgeOptions::default())
            .await;
        assert_refused(&format!("{who} purges {queue}"), purged);
    }

    // Declaring and deleting (configure), binding (write on the queue, read
    // on the exchange).
    let other = users.queue(HR, "mine");
    for (user, queue, who) in [
        (PLUGIN, users.queue(PLUGIN, "q"), "relay-plugin"),
        (
            CRM,
            other.clone(),
            "a subscriber (a queue named for another)",
        ),
        (CRM, "relay.ingest.crm".to_owned(), "a subscriber"),
        (CRM, "".to_owned(), "a subscriber (server-named)"),
        (REPLAYER, DLQ_QUEUE.to_owned(), "relay-replayer"),
        (WORKER, users.queue(CRM, "q"), "relay-worker"),
    ] {
        let declared = channel(conns[user])
            .await
            .queue_declare(queue.as_str().into(), durable(), FieldTable::default())
            .await;
        assert_refused(&format!("{who} declares queue {queue:?}"), declared);
    }
    for (user, queue, who) in [
        (PLUGIN, ingest.as_str(), "relay-plugin"),
        (
            CRM,
            hr_queue.as_str(),
            "a subscriber (another subscriber's queue)",
        ),
        (CRM, DLQ_QUEUE, "a subscriber"),
        (REPLAYER, DLQ_QUEUE, "relay-replayer"),
        (WORKER, crm_queue.as_str(), "relay-worker"),
    ] {
        let deleted = channel(conns[user])
            .await
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await;
        assert_refused(&format!("{who} deletes {queue}"), deleted);
    }
    for (user, exchange, who) in [
        (PLUGIN, INGEST_EXCHANGE, "relay-plugin"),
        (CRM, EVENTS_EXCHANGE, "a subscriber"),
        (REPLAYER, INGEST_EXCHANGE, "relay-replayer"),
    ] {
        let declared = channel(conns[user])
            .await
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        assert_refused(&format!("{who} declares exchange {exchange}"), declared);
    }
    for (user, queue, exchange, who) in [
        (
            CRM,
            crm_queue.as_str(),
            INGEST_EXCHANGE,
            "a subscriber binds its queue to moodle.ingest",
        ),
        (
            CRM,
            crm_queue.as_str(),
            REQUEUE_EXCHANGE,
            "a subscriber binds its queue to relay.requeue",
        ),
        (
            CRM,
            hr_queue.as_str(),
            EVENTS_EXCHANGE,
            "a subscriber binds another's queue",
        ),
        (
            WORKER,
            ingest.as_str(),
            EVENTS_EXCHANGE,
            "relay-worker binds a queue to moodle.events",
        ),
    ] {
        let bound = channel(conns[user])
            .await
            .queue_bind(
                queue.into(),
                exchange.into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await;
        assert_refused(who, bound);
    }

    // A subscriber's queue may not dead-letter into the relay's exchanges.
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(LongString::from(INGEST_EXCHANGE)),
    );
    let declared = channel(&crm)
        .await
        .queue_declare(users.queue(CRM, "dlx").as_str().into(), durable(), args)
        .await;
    assert_refused(
        "a subscriber's queue dead-letters into moodle.ingest",
        declared,
    );

    // The refused purges and deletes changed nothing: relay.dlq holds the
    // replayer's import; the site queue the plugin's event (never acked), the
    // worker's retry (back after 1 s) and the replayer's two.
    let (observer, observer_ch) = support::connect(&vhost.url).await;
    assert_eq!(depth(&observer_ch, DLQ_QUEUE).await, 1);
    let back = support::wait_for_depth(&observer_ch, &ingest, 4, Duration::from_secs(10)).await;
    assert!(back, "4 messages in {ingest}");
    assert_eq!(depth(&observer_ch, &ingest).await, 4);
    assert_eq!(
        depth(&observer_ch, &crm_queue).await,
        0,
        "crm read its one event"
    );
    assert_eq!(
        depth(&observer_ch, &hr_queue).await,
        0,
        "hr read its one event"
    );
    let _ = observer.close(200, "done".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_relays_retries_and_dead_letters_as_its_own_user() {
    let (vhost, users) = setup(Passwords::Files);
    let site = "lms-perm-run";
    let mut config = support::config(&users.url(WORKER), &[site]);
    config.retry.delays_s = vec![1];
    // As the worker user, the site's queue before the plugin publishes; the
    // worker then declares it all again (same arguments: no conflict).
    let conn = users.connect(WORKER).await;
    Topology::for_config(&config)
        .declare(&conn)
        .await
        .unwrap_or_else(|e| panic!("relay-worker declares the topology: {e}"));
    let _ = conn.close(200, "declared".into()).await;
    let worker = Worker::start(config).await;

    // A subscriber of one event type only: the other type is unroutable.
    let factory = EventFactory::new();
    let (good_id, good_key, good_body) = factory.event(site, 1);
    let (lost_id, lost_key, lost_body) = (2..100)
        .map(|n| factory.event(site, n))
        .find(|(_, key, _)| *key != good_key)
        .unwrap_or_else(|| panic!("the fixtures have a single event type"));
    let crm = users.connect(CRM).await;
    let crm_queue = users.queue(CRM, "events");
    let ch = channel(&crm).await;
    ch.queue_declare(crm_queue.as_str().into(), durable(), FieldTable::default())
        .await
        .unwrap_or_else(|e| panic!("subscriber declares its queue: {e}"));
    ch.queue_bind(
        crm_queue.as_str().into(),
        EVENTS_EXCHANGE.into(),
        good_key.as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("subscriber binds its queue: {e}"));

    // The plugin publishes a good event, one nobody subscribed to and one
    // that is not JSON.
    let plugin = users.connect(PLUGIN).await;
    let ch = channel(&plugin).await;
    let bad_id = uuid::Uuid::new_v4().to_string();
    let messages = vec![
        (good_key.clone(), good_body, plugin_properties(&good_id)),
        (lost_key.clone(), lost_body, plugin_properties(&lost_id)),
        (
            good_key.clone(),
            b"not json".to_vec(),
            plugin_properties(&bad_id),
        ),
    ];
    support::publish_ingest(&ch, &messages).await;

    let relayed = collect(&crm, &crm_queue, 1, Duration::from_secs(30)).await;
    assert_eq!(
        relayed.len(),
        1,
        "the worker relays the event to the subscriber"
    );
    assert_eq!(support::message_id(&relayed[0]), good_id);

    // The unroutable one is retried (relay.retry), then dead-lettered with
    // the invalid one (default exchange to relay.dlq). The replayer reads them.
    let replayer = users.connect(REPLAYER).await;
    let (observer, observer_ch) = support::connect(&vhost.url).await;
    assert!(
        support::wait_for_depth(&observer_ch, DLQ_QUEUE, 2, Duration::from_secs(30)).await,
        "both failures reach relay.dlq"
    );
    let fleet = rabbitmqctl_out(&[
        "list_bindings",
        "-p",
        &vhost.name,
        "source_name",
        "destination_name",
    ]);
    assert!(
        fleet
            .lines()
            .any(|l| l.starts_with(&format!("{FLEET_EXCHANGE}\tamq.gen-"))),
        "the worker's fleet queue is bound to relay.fleet: {fleet}"
    );
    worker
        .stop()
        .await
        .unwrap_or_else(|e| panic!("the worker ran into an error as relay-worker: {e}"));

    let letters = collect(&replayer, DLQ_QUEUE, 2, Duration::from_secs(10)).await;
    let mut found: Vec<(String, Option<String>, Option<String>)> = letters
        .iter()
        .map(|d| {
            let code = header(d, dlq::ERROR_CODE);
            (support::message_id(d), code, header(d, dlq::ATTEMPTS))
        })
        .collect();
    found.sort();
    let mut want = vec![
        (bad_id, Some("not_json".to_owned()), Some("0".to_owned())),
        // Once through relay.retry and back through relay.requeue.
        (lost_id, Some("unroutable".to_owned()), Some("1".to_owned())),
    ];
    want.sort();
    assert_eq!(found, want, "relay.dlq holds the two failures");
    for letter in &letters {
        let exchange = header(letter, dlq::ORIGINAL_EXCHANGE).unwrap_or_default();
        let key = header(letter, dlq::ORIGINAL_ROUTING_KEY).unwrap_or_default();
        assert_eq!(exchange, INGEST_EXCHANGE, "where the plugin published it");
        let properties = letter.properties.clone();
        let ch = channel(&replayer).await;
        let answer = async {
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
            ch.basic_publish(
                exchange.as_str().into(),
                key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &letter.data,
                properties,
            )
            .await?
            .await
        }
        .await;
        let answer = assert_allowed("relay-replayer replays a dead letter", answer);
        assert!(
            acked(&answer),
            "replayed into relay.ingest.{site}: {answer:?}"
        );
    }
    assert_eq!(
        depth(&observer_ch, &format!("relay.ingest.{site}")).await,
        2
    );

    // Nothing logged a password.
    for (user, password) in &users.passwords {
        let leaked = support::captured_log(password);
        assert!(leaked.is_empty(), "{user}'s password logged: {leaked:?}");
    }
    let _ = observer.close(200, "done".into()).await;
}

/// What `rabbitmqctl args --silent` printed.
fn rabbitmqctl_out(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .arg("--silent")
        .output()
        .unwrap_or_else(|e| panic!("rabbitmqctl: {e}"));
    assert!(out.status.success(), "rabbitmqctl {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// import.sh run with `args` and `env`, without the environment's own
/// `BROKER_PASSWORD_*`: (exit code, stdout + stderr).
fn run_import(args: &[&str], env: &[(String, String)]) -> (Option<i32>, String) {
    let mut command = Command::new(import_script());
    for (var, _) in std::env::vars().filter(|(v, _)| v.starts_with("BROKER_PASSWORD_")) {
        command.env_remove(var);
    }
    let out = command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", import_script().display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// Without the broker: what import.sh refuses, and the file it writes for
/// RabbitMQ's `load_definitions`.
#[test]
fn import_refuses_missing_passwords_and_reserved_names_and_writes_a_private_file() {
    let random = || uuid::Uuid::new_v4().simple().to_string();
    let env: Vec<(String, String)> = [PLUGIN, WORKER, REPLAYER, CRM]
        .iter()
        .map(|u| {
            let var = format!("BROKER_PASSWORD_{}", u.to_uppercase().replace('-', "_"));
            (var, random())
        })
        .collect();
    let secrets: Vec<&str> = env.iter().map(|(_, p)| p.as_str()).collect();

    // One password missing: nothing happens, and the missing one is named.
    let (code, text) = run_import(&["--vhost", "x"], &env[..2]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("BROKER_PASSWORD_RELAY_REPLAYER"), "{text}");
    // A subscriber named like the relay's own namespaces, or a password given
    // as an argument.
    for args in [
        &["--subscriber", "relay"][..],
        &["--subscriber", "amq"],
        &["--subscriber", "relay-worker"],
        &["--subscriber", "a.b"],
        &["--password", "x"],
    ] {
        let (code, text) = run_import(args, &env);
        assert_eq!(code, Some(2), "{args:?} must be refused: {text}");
    }

    // --output: the definitions for one vhost, with hashes, mode 0600.
    let dir = support::temp_dir();
    let file = dir.join("definitions.json");
    let file_arg = file.to_string_lossy().into_owned();
    let args = [
        "--vhost",
        "staging",
        "--subscriber",
        CRM,
        "--output",
        &file_arg,
    ];
    let (code, text) = run_import(&args, &env);
    assert_eq!(code, Some(0), "{text}");
    let written = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&file)
            .unwrap_or_else(|e| panic!("{e}"))
            .permissions(),
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(mode & 0o777, 0o600, "only its owner may read it");
    for secret in &secrets {
        assert!(!written.contains(secret), "a password in the file");
        assert!(!text.contains(secret), "a password in the output");
    }
    let doc: serde_json::Value = serde_json::from_str(&written).unwrap_or_else(|e| panic!("{e}"));
    let vhosts: Vec<&str> = ["exchanges", "queues", "bindings", "permissions"]
        .iter()
        .flat_map(|part| doc[part].as_array().into_iter().flatten())
        .map(|item| item["vhost"].as_str().unwrap_or_default())
        .collect();
    assert!(vhosts.iter().all(|v| *v == "staging"), "{vhosts:?}");
    let users: Vec<(&str, usize)> = doc["users"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| {
            let hash = u["password_hash"].as_str().unwrap_or_default();
            (u["name"].as_str().unwrap_or_default(), hash.len())
        })
        .collect();
    // base64 of 4 bytes of salt and 32 of SHA-256.
    assert_eq!(
        users,
        [(PLUGIN, 48), (WORKER, 48), (REPLAYER, 48), (CRM, 48)],
        "{written}"
    );
    let crm = doc["permissions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["user"] == CRM)
        .unwrap_or_else(|| panic!("no permission for {CRM}: {written}"));
    assert_eq!(crm["configure"], r"^(crm\..+)$");
    assert_eq!(crm["write"], r"^(crm\..+)$");
    assert_eq!(crm["read"], r"^(crm\..+|moodle\.events)$");
}
