//! Issue 9: within a site, an event is never published downstream after a
//! later event of its `subject`, unless it went through a delayed retry.
//! Every test here reads a downstream queue bound to `moodle.events` with `#`
//! and checks the order of *first* arrivals per subject (duplicates are
//! allowed: delivery is at-least-once). Delayed retries are seen through a tap
//! queue on the retry exchange. Real broker, simulated Moodle.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueBindOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection};
use moodle_sim::MoodleSim;
use relay_contract::routing::{DLQ_QUEUE, RETRY_EXCHANGE, RETRY_QUEUE_HEADER};
use relay_worker::config::Config;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::support::{
    Message, Rig, Vhost, Worker, config, connect, declare_topology, depth, downstream_queue,
    plugin_properties, publish_ingest, temp_dir, unique,
};

const TOKEN: &str = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d";
const USERS: &str = "core_user_get_users_by_field";
const COMPLETION: &str = "core_completion_get_course_completion_status";

/// An event type of the tests, with the fixture it is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    User,
    Enrolment,
    Role,
    Completion,
}

impl Kind {
    /// Enrolment, role and completion events in turn (all about a course and a user).
    const COURSE_KINDS: [Kind; 3] = [Kind::Enrolment, Kind::Role, Kind::Completion];

    fn template(self) -> &'static str {
        match self {
            Kind::User => include_str!("../../../schemas/fixtures/valid/user.updated.json"),
            Kind::Enrolment => {
                include_str!("../../../schemas/fixtures/valid/enrolment.updated.json")
            }
            Kind::Role => include_str!("../../../schemas/fixtures/valid/role.assigned.json"),
            Kind::Completion => {
                include_str!("../../../schemas/fixtures/valid/completion.course_completed.json")
            }
        }
    }
}

/// Events to publish, and each one's subject and sequence by id.
#[derive(Debug, Default)]
struct Events {
    ids: Vec<String>,
    messages: Vec<Message>,
    meta: HashMap<String, (String, u64)>,
}

impl Events {
    /// Adds an event of `site` about `user` (and `course`, except for user
    /// events), with its subject, ids and sequence set consistently.
    fn push(&mut self, site: &str, kind: Kind, sequence: u64, course: i64, user: i64) {
        let mut event: Value =
            serde_json::from_str(kind.template()).unwrap_or_else(|e| panic!("{e}"));
        let id = uuid::Uuid::new_v4().to_string();
        let subject = match kind {
            Kind::User => format!("user/{user}"),
            _ => format!("course/{course}/user/{user}"),
        };
        event["id"] = id.clone().into();
        event["moodlesite"] = site.into();
        event["sequence"] = format!("{sequence:020}").into();
        event["subject"] = subject.clone().into();
        let data = &mut event["data"];
        data["relateduserid"] = user.into();
        match kind {
            Kind::User => {
                data["objectid"] = user.into();
                data["contextinstanceid"] = user.into();
                data["snapshot"]["id"] = user.into();
            }
            Kind::Role => {
                data["courseid"] = course.into();
                data["snapshot"]["userid"] = user.into();
                data["snapshot"]["instanceid"] = course.into();
            }
            Kind::Enrolment | Kind::Completion => {
                data["courseid"] = course.into();
                data["snapshot"]["userid"] = user.into();
                data["snapshot"]["courseid"] = course.into();
                if kind == Kind::Completion {
                    data["other"]["relateduserid"] = user.into();
                }
            }
        }
        let suffix = event["type"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("moodle.")
            .to_owned();
        let body = serde_json::to_vec(&event).unwrap_or_else(|e| panic!("{e}"));
        self.messages
            .push((format!("{site}.{suffix}"), body, plugin_properties(&id)));
        self.meta.insert(id.clone(), (subject, sequence));
        self.ids.push(id);
    }

    /// `count` events over `subjects` course subjects (course 7 + s, user
    /// 1001 + s), sequence n for the nth, enrolment, role and completion in turn.
    fn course_mix(site: &str, count: u64, subjects: u64) -> Events {
        let mut events = Events::default();
        for n in 1..=count {
            let s = ((n - 1) % subjects) as i64;
            let kind = Kind::COURSE_KINDS[((n - 1) % 3) as usize];
            events.push(site, kind, n, 7 + s, 1001 + s);
        }
        events
    }
}

/// One violation of the rule: `id` (sequence `sequence`) first arrived after
/// an event of its subject with the higher sequence `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Violation {
    subject: String,
    id: String,
    sequence: u64,
    after: u64,
}

/// The events in `arrivals` (ids in arrival order, duplicates included) whose
/// first arrival came after the first arrival of a later-sequence event of the
/// same subject. Events in `retried` (went through a delay queue) are left out
/// altogether: they may be overtaken, and do not count as overtaking.
fn violations(
    arrivals: &[String],
    meta: &HashMap<String, (String, u64)>,
    retried: &HashSet<String>,
) -> Vec<Violation> {
    let mut seen = HashSet::new();
    let mut highest: HashMap<&str, u64> = HashMap::new();
    let mut out = Vec::new();
    for id in arrivals {
        if !seen.insert(id.as_str()) || retried.contains(id) {
            continue;
        }
        let Some((subject, sequence)) = meta.get(id) else {
            continue;
        };
        match highest.get(subject.as_str()) {
            Some(&after) if after > *sequence => out.push(Violation {
                subject: subject.clone(),
                id: id.clone(),
                sequence: *sequence,
                after,
            }),
            _ => {
                highest.insert(subject, *sequence);
            }
        }
    }
    out
}

/// The sequences of `subject`'s events in the order they first arrived.
fn first_order(
    arrivals: &[String],
    meta: &HashMap<String, (String, u64)>,
    subject: &str,
) -> Vec<u64> {
    let mut seen = HashSet::new();
    arrivals
        .iter()
        .filter(|id| seen.insert(id.as_str()))
        .filter_map(|id| meta.get(id))
        .filter(|(s, _)| s == subject)
        .map(|(_, sequence)| *sequence)
        .collect()
}

/// The violations, with each offending subject's first-arrival order, for an
/// assertion message.
fn describe(
    found: &[Violation],
    arrivals: &[String],
    meta: &HashMap<String, (String, u64)>,
) -> String {
    let mut subjects: BTreeMap<&str, usize> = BTreeMap::new();
    for v in found {
        *subjects.entry(v.subject.as_str()).or_default() += 1;
    }
    let mut text = format!(
        "{} events first arrived after a later event of their subject, in {} subjects; first ones: {:?}\n",
        found.len(),
        subjects.len(),
        found.iter().take(10).collect::<Vec<_>>()
    );
    for (subject, count) in subjects.iter().take(5) {
        text.push_str(&format!(
            "  {subject} ({count} late): first arrivals by sequence {:?}\n",
            first_order(arrivals, meta, subject)
        ));
    }
    text
}

/// The `id` of an event body ("" if it has none).
fn event_id(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Reads a queue in the background (auto-ack: nothing here is ever returned)
/// and keeps the event ids in arrival order.
struct Tail {
    seen: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Tail {
    async fn start(conn: &Connection, queue: &str) -> Tail {
        let channel = conn
            .create_channel()
            .await
            .unwrap_or_else(|e| panic!("channel: {e}"));
        // no_ack: the broker pushes in queue order and the test never returns anything.
        let options = BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        };
        let mut consumer = channel
            .basic_consume(
                queue.into(),
                unique("tail").as_str().into(),
                options,
                FieldTable::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("consume {queue}: {e}"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            let _channel = channel;
            while let Some(Ok(delivery)) = consumer.next().await {
                let id = event_id(&delivery.data);
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(id);
            }
        });
        Tail { seen, task }
    }

    /// Ids so far, in arrival order, duplicates included.
    fn ids(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn distinct(&self) -> usize {
        self.ids().iter().collect::<HashSet<_>>().len()
    }

    /// Waits until `count` distinct ids arrived; panics after `within`.
    async fn wait_distinct(&self, count: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.distinct() < count {
            assert!(
                Instant::now() < deadline,
                "only {} of {count} events arrived within {within:?}",
                self.distinct()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until every id in `expected` arrived or `within` passed; returns
    /// every arrival so far.
    async fn wait_all(&self, expected: &[String], within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let ids = self.ids();
            let got: HashSet<&String> = ids.iter().collect();
            if expected.iter().all(|id| got.contains(id)) || Instant::now() >= deadline {
                return ids;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A queue bound to the retry exchange with no arguments, which a headers
/// exchange matches against every message, so it gets a copy of each delayed
/// retry beside the delay queue it is meant for. Checked with a marker
/// message whose header names no delay queue.
async fn retry_tap(rig: &Rig) -> Tail {
    let queue = unique("retry-tap");
    let channel = &rig.channel;
    channel
        .queue_declare(
            queue.as_str().into(),
            lapin::options::QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("declare {queue}: {e}"));
    channel
        .queue_bind(
            queue.as_str().into(),
            RETRY_EXCHANGE.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("bind {queue}: {e}"));
    let tap = Tail::start(&rig.conn, &queue).await;
    let marker = format!("tap-check-{}", uuid::Uuid::new_v4().simple());
    let mut headers = FieldTable::default();
    headers.insert(
        RETRY_QUEUE_HEADER.into(),
        AMQPValue::LongString("test.no-such-delay-queue".into()),
    );
    channel
        .basic_publish(
            RETRY_EXCHANGE.into(),
            "".into(),
            BasicPublishOptions::default(),
            format!("{{\"id\":\"{marker}\"}}").as_bytes(),
            BasicProperties::default().with_headers(headers),
        )
        .await
        .unwrap_or_else(|e| panic!("publish marker: {e}"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !tap.ids().contains(&marker) {
        assert!(
            Instant::now() < deadline,
            "a binding with no arguments to the headers exchange {RETRY_EXCHANGE} does not match every message"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tap
}

/// The ids the tap saw, the marker left out.
fn retried(tap: &Tail) -> HashSet<String> {
    tap.ids()
        .into_iter()
        .filter(|id| !id.starts_with("tap-check-"))
        .collect()
}

/// A scratch vhost with a worker configuration for `site` using `sim`, tuned
/// by `tune` before the topology is declared (so queue arguments match).
async fn rig(site: &str, sim: &MoodleSim, tune: impl FnOnce(&mut Config)) -> Rig {
    let vhost = Vhost::for_test("relay-test");
    let mut config = config(&vhost.url, &[site]);
    let token_file = temp_dir().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap_or_else(|e| panic!("{e}"));
    let s = &mut config.sites[0];
    s.moodle_url = Some(sim.url());
    s.token_file = Some(token_file);
    s.max_calls_per_minute = 60_000;
    s.min_interval_ms = 0;
    s.auth_probe_interval_s = 1;
    tune(&mut config);
    declare_topology(&config).await;
    let (conn, channel) = connect(&vhost.url).await;
    Rig {
        vhost,
        config,
        conn,
        channel,
    }
}

async fn start_sim() -> MoodleSim {
    MoodleSim::start(TOKEN)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Waits until the simulator has refused a call of `function`.
async fn wait_refused(sim: &MoodleSim, function: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !sim.calls().iter().any(|c| c.function == function && !c.ok) {
        assert!(
            Instant::now() < deadline,
            "no call of {function} was refused within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The three events of the repro, all about `course/7/user/1018`:
/// 1 course completed, 2 enrolment updated, 3 role assigned.
fn repro(site: &str) -> Events {
    let mut events = Events::default();
    for (sequence, kind) in [(1, Kind::Completion), (2, Kind::Enrolment), (3, Kind::Role)] {
        events.push(site, kind, sequence, 7, 1018);
    }
    events
}

/// Runs the repro against `sim`, whose completion lookups fail until `heal`,
/// called 1.5 s after the first refusal. Returns the subject's first-arrival
/// order (by sequence), the retried ids and the DLQ depth.
async fn run_repro(
    site: &str,
    sim: &MoodleSim,
    rig: Rig,
    heal: impl FnOnce(&MoodleSim),
) -> (Vec<u64>, HashSet<String>, u32) {
    let events = repro(site);
    let (downstream, tap, worker) = start_run(&rig, &events).await;
    wait_refused(sim, COMPLETION, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    heal(sim);
    let arrivals = downstream
        .wait_all(&events.ids, Duration::from_secs(30))
        .await;
    worker
        .stop()
        .await
        .unwrap_or_else(|e| panic!("worker: {e}"));
    let order = first_order(&arrivals, &events.meta, "course/7/user/1018");
    (order, retried(&tap), depth(&rig.channel, DLQ_QUEUE).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_pause_does_not_publish_later_events_of_the_subject_first() {
    let sim = start_sim().await;
    sim.invalid_token_for(COMPLETION);
    let rig = rig("lms-order-auth", &sim, |_| {}).await;
    let started = Instant::now();
    let (order, retried, dead) = run_repro("lms-order-auth", &sim, rig, |sim| {
        sim.accept_token(TOKEN);
    })
    .await;
    println!(
        "auth repro: first arrivals {order:?}, {} retried, {dead} dead-lettered, {:?}",
        retried.len(),
        started.elapsed()
    );
    assert_eq!(
        order,
        vec![1, 2, 3],
        "course/7/user/1018 first arrived in sequence order {order:?} \
         (an auth failure of 1 must not let 2 and 3 out first); retried: {retried:?}"
    );
    assert_eq!(dead, 0, "nothing dead-lettered for an auth failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_pause_does_not_publish_later_events_of_the_subject_first() {
    let sim = start_sim().await;
    sim.fail_function(COMPLETION, 503);
    let rig = rig("lms-order-breaker", &sim, |config| {
        // The first failed call opens the breaker, so no event takes a delayed
        // retry (which could be overtaken) and the order must be strict.
        let breaker = &mut config.sites[0].breaker;
        breaker.min_calls = 1;
        breaker.error_rate = 0.01;
        breaker.open_s = 2;
    })
    .await;
    let started = Instant::now();
    let (order, retried, dead) =
        run_repro("lms-order-breaker", &sim, rig, MoodleSim::clear_failures).await;
    println!(
        "breaker repro: first arrivals {order:?}, {} retried, {dead} dead-lettered, {:?}",
        retried.len(),
        started.elapsed()
    );
    assert_eq!(
        order,
        vec![1, 2, 3],
        "course/7/user/1018 first arrived in sequence order {order:?} \
         (the breaker opening on 1 must not let 2 and 3 out first); retried: {retried:?}"
    );
    assert_eq!(dead, 0);
}

/// A downstream queue bound with `#` and the retry tap, both being read.
async fn observe(rig: &Rig) -> (Tail, Tail) {
    let downstream = downstream_queue(&rig.channel, "#", FieldTable::default()).await;
    let downstream = Tail::start(&rig.conn, &downstream).await;
    (downstream, retry_tap(rig).await)
}

/// [`observe`], then publishes `events` and starts a worker.
async fn start_run(rig: &Rig, events: &Events) -> (Tail, Tail, Worker) {
    let (downstream, tap) = observe(rig).await;
    publish_ingest(&rig.channel, &events.messages).await;
    let worker = Worker::start(rig.config.clone()).await;
    (downstream, tap, worker)
}

/// Asserts no event is missing and no first arrival is out of order (retried
/// events aside); prints what it saw.
async fn assert_in_order(
    name: &str,
    rig: &Rig,
    events: &Events,
    arrivals: &[String],
    retried: &HashSet<String>,
) {
    let got: HashSet<&String> = arrivals.iter().collect();
    let missing = events.ids.iter().filter(|id| !got.contains(id)).count();
    let dead = depth(&rig.channel, DLQ_QUEUE).await;
    let found = violations(arrivals, &events.meta, retried);
    println!(
        "{name}: {} events, {} arrivals ({} duplicates), {missing} missing, {dead} dead-lettered, \
         {} delayed retries, {} out of order",
        events.ids.len(),
        arrivals.len(),
        arrivals.len() - got.len(),
        retried.len(),
        found.len()
    );
    assert_eq!(
        missing, 0,
        "{missing} events never arrived ({dead} in the DLQ)"
    );
    assert!(
        found.is_empty(),
        "{}",
        describe(&found, arrivals, &events.meta)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_consumer_returns_buffered_deliveries_in_order() {
    let sim = start_sim().await;
    sim.set_latency(Duration::from_millis(50));
    let site = "lms-order-buffered";
    let rig = rig(site, &sim, |config| {
        // Far more deliveries pushed than taken: most wait in the consumer's
        // buffer when the pause cancels it.
        config.amqp.prefetch = 200;
        config.worker.max_in_flight = 20;
    })
    .await;
    let events = Events::course_mix(site, 300, 10);
    let started = Instant::now();
    let (downstream, tap, worker) = start_run(&rig, &events).await;
    downstream.wait_distinct(30, Duration::from_secs(30)).await;
    sim.invalid_token_for(COMPLETION);
    wait_refused(&sim, COMPLETION, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    sim.accept_token(TOKEN);
    let arrivals = downstream
        .wait_all(&events.ids, Duration::from_secs(60))
        .await;
    worker
        .stop()
        .await
        .unwrap_or_else(|e| panic!("worker: {e}"));
    println!("{site}: {:?}", started.elapsed());
    assert_in_order(site, &rig, &events, &arrivals, &retried(&tap)).await;
}

/// Publishes `messages` as the plugin would, a few at a time, spread over
/// `over`, in the background.
async fn publish_over_time(
    conn: &Connection,
    messages: Vec<Message>,
    over: Duration,
) -> JoinHandle<()> {
    let channel = conn
        .create_channel()
        .await
        .unwrap_or_else(|e| panic!("channel: {e}"));
    const CHUNK: usize = 5;
    let pause = over / messages.len().div_ceil(CHUNK).max(1) as u32;
    tokio::spawn(async move {
        for chunk in messages.chunks(CHUNK) {
            publish_ingest(&channel, chunk).await;
            tokio::time::sleep(pause).await;
        }
        let _ = channel.close(200, "published".into()).await;
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_unpublished_deliveries_in_order() {
    let sim = start_sim().await;
    sim.set_latency(Duration::from_millis(50));
    let site = "lms-order-stop";
    let rig = rig(site, &sim, |config| {
        // Deliveries pile up in the consumer's buffer, and the broker is still
        // pushing new ones when a worker stops.
        config.amqp.prefetch = 1_000;
        config.worker.max_in_flight = 50;
        // Short: lookups still running when it ends are abandoned and returned.
        config.worker.shutdown_grace_s = 1;
    })
    .await;
    let events = Events::course_mix(site, 500, 10);
    let started = Instant::now();
    let (downstream, tap) = observe(&rig).await;
    let mut worker = Worker::start(rig.config.clone()).await;
    // Faster than the worker relays them, while it is stopped and started.
    let publisher =
        publish_over_time(&rig.conn, events.messages.clone(), Duration::from_secs(3)).await;
    // Four workers in turn: each of the first three is stopped in mid-stream.
    let mut stopped_at = Vec::new();
    for out in [40, 120, 200] {
        downstream.wait_distinct(out, Duration::from_secs(30)).await;
        worker
            .stop()
            .await
            .unwrap_or_else(|e| panic!("worker stopped at {out}: {e}"));
        stopped_at.push(downstream.distinct());
        worker = Worker::start(rig.config.clone()).await;
    }
    publisher.await.unwrap_or_else(|e| panic!("publisher: {e}"));
    let arrivals = downstream
        .wait_all(&events.ids, Duration::from_secs(60))
        .await;
    worker
        .stop()
        .await
        .unwrap_or_else(|e| panic!("last worker: {e}"));
    println!(
        "{site}: workers stopped with {stopped_at:?} events out; {:?}",
        started.elapsed()
    );
    assert_in_order(site, &rig, &events, &arrivals, &retried(&tap)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_run_keeps_per_subject_order_except_delayed_retries() {
    let sim = start_sim().await;
    sim.set_latency(Duration::from_millis(5));
    let site = "lms-order-faults";
    let rig = rig(site, &sim, |config| {
        // Several events of a subject in flight or waiting in the consumer's
        // buffer at once (sequences of a subject are 200 apart).
        config.amqp.prefetch = 1_000;
        let s = &mut config.sites[0];
        s.max_concurrency = 4;
        s.enrich.batch_wait_ms = 50;
        s.breaker.window_s = 5;
        s.breaker.min_calls = 5;
        s.breaker.error_rate = 0.5;
        s.breaker.open_s = 1;
    })
    .await;
    // 200 subjects × 25 events: every 4th subject is a user's (user.updated),
    // the others a course user's (enrolment, role, completion in turn), over
    // 20 courses; sequence n goes to subject (n - 1) % 200.
    let mut events = Events::default();
    for n in 1..=5_000u64 {
        let s = ((n - 1) % 200) as i64;
        let round = ((n - 1) / 200) as usize;
        let kind = match s % 4 {
            0 => Kind::User,
            _ => Kind::COURSE_KINDS[round % 3],
        };
        events.push(site, kind, n, 7 + s % 20, 2000 + s);
    }
    let started = Instant::now();
    let (downstream, tap, worker) = start_run(&rig, &events).await;

    downstream
        .wait_distinct(1_000, Duration::from_secs(30))
        .await;
    let auth_at = downstream.distinct();
    sim.invalid_token_for(USERS);
    tokio::time::sleep(Duration::from_secs(3)).await;
    sim.accept_token(TOKEN);

    downstream
        .wait_distinct(2_500, Duration::from_secs(30))
        .await;
    let breaker_at = downstream.distinct();
    sim.fail_all(503);
    tokio::time::sleep(Duration::from_secs(3)).await;
    sim.clear_failures();

    let arrivals = downstream
        .wait_all(&events.ids, Duration::from_secs(60))
        .await;
    worker
        .stop()
        .await
        .unwrap_or_else(|e| panic!("worker: {e}"));
    let calls = sim.calls();
    let refused = calls
        .iter()
        .filter(|c| c.function == USERS && !c.ok)
        .count();
    let failed = calls.iter().filter(|c| !c.ok).count() - refused;
    let retried = retried(&tap);
    let mut delayed: Vec<&(String, u64)> = retried
        .iter()
        .filter_map(|id| events.meta.get(id))
        .collect();
    delayed.sort_by_key(|(_, sequence)| *sequence);
    println!(
        "{site}: auth pause from {auth_at} arrivals, 503s from {breaker_at}; {} Moodle calls, \
         {refused} refused user lookups, {failed} other failures; {:?}\n\
         {} delayed retries (subject, sequence): {delayed:?}",
        calls.len(),
        started.elapsed(),
        delayed.len(),
    );
    assert!(refused > 0, "the auth fault never reached Moodle");
    assert!(failed > 0, "the 503s never reached Moodle");
    assert_in_order(site, &rig, &events, &arrivals, &retried).await;
}

#[test]
fn violations_count_first_arrivals_only_and_leave_retried_events_out() {
    let meta: HashMap<String, (String, u64)> = [
        ("a1", "a", 1),
        ("a2", "a", 2),
        ("a3", "a", 3),
        ("b1", "b", 4),
        ("b2", "b", 5),
    ]
    .into_iter()
    .map(|(id, s, n)| (id.to_owned(), (s.to_owned(), n)))
    .collect();
    let ids = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let none = HashSet::new();
    // A duplicate of a1 after a2 is fine; b's order is independent of a's.
    let fine = ids(&["b1", "a1", "a2", "a1", "b2", "a3"]);
    assert!(violations(&fine, &meta, &none).is_empty());
    let late = ids(&["a2", "a3", "a1", "b1", "b2"]);
    let found = violations(&late, &meta, &none);
    assert_eq!(
        found,
        vec![Violation {
            subject: "a".into(),
            id: "a1".into(),
            sequence: 1,
            after: 3
        }]
    );
    assert_eq!(first_order(&late, &meta, "a"), vec![2, 3, 1]);
    let retried: HashSet<String> = ["a1".to_owned()].into_iter().collect();
    assert!(violations(&late, &meta, &retried).is_empty());
}
