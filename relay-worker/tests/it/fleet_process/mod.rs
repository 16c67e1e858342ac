//! Issue 10 with the real binary: three `relay-worker` processes share twelve
//! sites while events for every site keep arriving. The busiest one is killed
//! with SIGKILL and comes back; then the whole fleet is restarted one worker
//! at a time. Throughout, a sampler inside the broker reports the active
//! consumers every 50 ms and the test fails on the first sample with two
//! active consumers on one site. Real broker, real processes.
//!
//! `sampler.rs` watches the broker; `scenarios.rs` kills and restarts the workers.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::types::FieldTable;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::support::{
    EventFactory, Holders, Rig, WorkerProcess, collect, connect, depth, downstream_queue,
    holders_of, plugin_properties, publish_ingest, shares, site_holders, temp_dir,
};

const SITES: [&str; 12] = [
    "fproc-a", "fproc-b", "fproc-c", "fproc-d", "fproc-e", "fproc-f", "fproc-g", "fproc-h",
    "fproc-i", "fproc-j", "fproc-k", "fproc-l",
];

const MEMBERS: [&str; 3] = ["p1", "p2", "p3"];

/// `amqp.prefetch` as the processes run it (the default): the most deliveries
/// a site's consumer holds unacked, so the most a kill can bring back twice.
const PREFETCH: usize = 64;

/// Events per site in each round of the background publisher, and its pace.
const PER_ROUND: u64 = 4;
const ROUND_EVERY: Duration = Duration::from_millis(100);

/// Events per site published at once just before the kill.
const BURST: u64 = 200;

/// Every site held, by three members with 3 to 5 sites each.
fn even(holders: &Holders) -> bool {
    let shares = shares(holders);
    holders.len() == SITES.len()
        && shares.len() == 3
        && shares.values().all(|n| (3..=5).contains(n))
}

/// Every site held, and none by `gone`.
fn all_held_without(gone: &str) -> impl Fn(&Holders) -> bool + '_ {
    move |holders| holders.len() == SITES.len() && holders.values().all(|m| m != gone)
}

mod sampler;
mod scenarios;

use sampler::*;

/// The worker processes by member id; the ones still running are killed if
/// the test fails.
struct Fleet {
    url: String,
    running: BTreeMap<String, WorkerProcess>,
    dirs: Vec<std::path::PathBuf>,
}

impl Fleet {
    fn start(url: &str) -> Fleet {
        let mut fleet = Fleet {
            url: url.to_owned(),
            running: BTreeMap::new(),
            dirs: Vec::new(),
        };
        for member in MEMBERS {
            fleet.spawn(member);
        }
        fleet
    }

    /// Starts `member` in a directory of its own (each start writes its config file).
    fn spawn(&mut self, member: &str) {
        let dir = temp_dir();
        let fleet = format!(
            "[fleet]\nmember_id = \"{member}\"\nheartbeat_ms = 200\nmember_timeout_ms = 1000\n"
        );
        let process = WorkerProcess::spawn(&dir, &self.url, &SITES, &fleet);
        self.dirs.push(dir);
        self.running.insert(member.to_owned(), process);
    }

    fn take(&mut self, member: &str) -> WorkerProcess {
        self.running
            .remove(member)
            .unwrap_or_else(|| panic!("{member} is not running"))
    }

    /// SIGTERM to `member`; panics unless it exits with success within 20 s.
    async fn terminate(&mut self, member: &str) {
        let process = self.take(member);
        let (status, log) =
            tokio::task::spawn_blocking(move || process.terminate(Duration::from_secs(20)))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            status.is_some_and(|s| s.success()),
            "{member} exited with {status:?}; log:\n{log}"
        );
    }

    /// Stops every worker; panics unless each exits with success.
    async fn stop(mut self) {
        for member in MEMBERS {
            self.terminate(member).await;
        }
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (member, process) in &mut self.running {
            let _ = process.child.kill();
            let _ = process.child.wait();
            eprintln!("{member} left running; its log: {}", process.log.display());
        }
    }
}

/// Publishes a round of `PER_ROUND` events for every site each `ROUND_EVERY`,
/// with growing sequence numbers, until finished.
struct Publisher {
    stop: Arc<AtomicBool>,
    /// Events per site of the next round when not 0 (a burst).
    burst: Arc<AtomicU64>,
    /// Told when a burst is published and confirmed.
    burst_done: Arc<Notify>,
    task: JoinHandle<Vec<String>>,
}

impl Publisher {
    async fn start(url: &str) -> Publisher {
        let (conn, channel) = connect(url).await;
        let stop = Arc::new(AtomicBool::new(false));
        let burst = Arc::new(AtomicU64::new(0));
        let burst_done = Arc::new(Notify::new());
        let (stopped, bursts, done) = (stop.clone(), burst.clone(), burst_done.clone());
        let task = tokio::spawn(async move {
            let factory = EventFactory::new();
            let mut ids = Vec::new();
            let mut tick = tokio::time::interval(ROUND_EVERY);
            let mut n = 0;
            while !stopped.load(Ordering::Relaxed) {
                tick.tick().await;
                let size = match bursts.swap(0, Ordering::Relaxed) {
                    0 => PER_ROUND,
                    burst => burst,
                };
                let mut batch = Vec::new();
                for site in SITES {
                    for sequence in n + 1..=n + size {
                        let (id, key, body) = factory.event(site, sequence);
                        batch.push((key, body, plugin_properties(&id)));
                        ids.push(id);
                    }
                }
                publish_ingest(&channel, &batch).await;
                if size != PER_ROUND {
                    done.notify_one();
                }
                n += size;
            }
            let _ = conn.close(200, "published".into()).await;
            ids
        });
        Publisher {
            stop,
            burst,
            burst_done,
            task,
        }
    }

    /// Makes the next round `per_site` events for every site; returns once
    /// the broker confirmed them.
    async fn burst(&self, per_site: u64) {
        self.burst.store(per_site, Ordering::Relaxed);
        self.burst_done.notified().await;
    }

    /// Stops after the current round; the ids of everything published.
    async fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_else(|e| panic!("publisher: {e}"))
    }
}

/// What arrived downstream, against what was published.
struct Delivered {
    received: usize,
    lost: usize,
    duplicates: usize,
    /// (site, sequence before, sequence after) where an event's first arrival
    /// came after a later event of its site.
    backwards: Vec<(String, u64, u64)>,
}

/// Reads `queue` until every id of `expected` arrived (or `within`), then for
/// one more idle second to catch late duplicates.
async fn delivered(rig: &Rig, queue: &str, expected: &[String], within: Duration) -> Delivered {
    let wanted: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    let (mut received, mut backwards) = (0, Vec::new());
    let deadline = Instant::now() + within;
    let mut idle_after_all = false;
    while Instant::now() < deadline && !idle_after_all {
        let batch = collect(&rig.conn, queue, 5_000, Duration::from_millis(1_000)).await;
        idle_after_all = batch.is_empty() && wanted.iter().all(|id| seen.contains(*id));
        for delivery in batch {
            received += 1;
            let event: Value = serde_json::from_slice(&delivery.data).unwrap_or_default();
            let id = event["id"].as_str().unwrap_or_default();
            if !seen.insert(id.to_owned()) {
                continue;
            }
            let site = event["moodlesite"].as_str().unwrap_or_default().to_owned();
            let sequence = event["sequence"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if let Some(before) = last.insert(site.clone(), sequence)
                && sequence <= before
            {
                backwards.push((site, before, sequence));
            }
        }
    }
    Delivered {
        received,
        lost: wanted.iter().filter(|id| !seen.contains(**id)).count(),
        duplicates: received - seen.len(),
        backwards,
    }
}

/// Starts the fleet and waits for an even share; then checks the sampler
/// against `rabbitmqctl list_consumers` (retried while a move is under way).
async fn even_fleet(rig: &Rig, sampler: &Sampler) -> Fleet {
    let fleet = Fleet::start(&rig.vhost.url);
    let took = sampler
        .until(Duration::from_secs(15), "shared out", even)
        .await;
    let mut tries = 0;
    let listed = loop {
        let before = sampler.now();
        let listed = site_holders(&rig.vhost.name).unwrap_or_else(|e| panic!("{e}"));
        if listed == before && listed == sampler.now() {
            break listed;
        }
        tries += 1;
        assert!(
            tries < 5,
            "list_consumers {listed:?} but the sampler {before:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!("3 processes shared out in {took:?}: {:?}", shares(&listed));
    fleet
}
