//! Issue 9: within a site, an event is never published downstream after a
//! later event of its `subject`, unless it went through a delayed retry.
//! Every test here reads a downstream queue bound to `moodle.events` with `#`
//! and checks the order of *first* arrivals per subject (duplicates are
//! allowed: delivery is at-least-once). Delayed retries are seen through a tap
//! queue on the retry exchange. Real broker, simulated Moodle.
//!
//! This file makes the events, observes what arrives (the downstream order,
//! the delayed retries through a tap on the retry exchange) and finds the
//! order violations; `scenarios.rs` runs the faults.

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
    Message, Rig, Vhost, Worker, captured_log, config, connect, declare_topology, depth,
    downstream_queue, plugin_properties, publish_ingest, temp_dir, unique,
};

const TOKEN: &str = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d";
const USERS: &str = "core_user_get_users_by_field";
const COMPLETION: &str = "core_completion_get_course_completion_status";

mod scenarios;

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
            Kind::User => include_str!("../../../../schemas/fixtures/valid/user.updated.json"),
            Kind::Enrolment => {
                include_str!("../../../../schemas/fixtures/valid/enrolment.updated.json")
            }
            Kind::Role => include_str!("../../../../schemas/fixtures/valid/role.assigned.json"),
            Kind::Completion => {
                include_str!("../../../../schemas/fixtures/valid/completion.course_completed.json")
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
