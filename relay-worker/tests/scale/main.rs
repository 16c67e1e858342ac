//! Issue 10 at scale: 1,000 sites on three `relay-worker` processes (the
//! release binary) against a private RabbitMQ node started with a high file
//! limit. Checks that every site queue has an active consumer within a
//! minute, that the share is even, and that a few events per site all arrive;
//! prints what it cost: set-up time, RSS per worker, the broker's memory and
//! file descriptors. Run by hand (`make test-scale`), not by `make test`: it
//! takes a few minutes and much of the machine.

#[path = "../it/support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lapin::types::FieldTable;
use relay_contract::routing::DLQ_QUEUE;
use serde_json::Value;
use test_broker::{Cluster, ClusterNode};

use support::{
    EventFactory, Holders, WorkerProcess, await_ids, connect, depth, downstream_queue,
    holders_listed, plugin_properties, publish_ingest, shares, temp_dir,
};

const SITES: usize = 1_000;
const MEMBERS: [&str; 3] = ["s1", "s2", "s3"];
/// Most sites a worker may hold once the share is stable: ceil(S/N) + 1.
const MOST_PER_WORKER: usize = SITES.div_ceil(MEMBERS.len()) + 1;
const EVENTS_PER_SITE: u64 = 3;
/// Asked of the broker's node; it gets the hard limit of this process when lower.
const OPEN_FILES: u64 = 65_536;
const READY_WITHIN: Duration = Duration::from_secs(60);
/// How long the share may take to settle after every site is held.
const BALANCED_WITHIN: Duration = Duration::from_secs(120);
/// `rabbitmqctl list_consumers` takes about a second with thousands of consumers.
const POLL_EVERY: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scale run: make test-scale"]
async fn a_thousand_sites_on_three_workers_are_ready_within_a_minute_and_all_delivered() {
    let cluster = tokio::task::spawn_blocking(|| Cluster::start_with_open_files(1, OPEN_FILES))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("cannot run a private RabbitMQ node here: {e}"));
    let node = cluster.nodes[0].clone();
    println!(
        "broker {} started in {:.1} s, open files limit {}",
        node.name,
        cluster.booted_in.as_secs_f64(),
        proc_field(&node, "limits", "Max open files").unwrap_or_default()
    );
    let idle = blocking(move || Broker::measure(&node)).await;
    let node = &cluster.nodes[0];
    println!("broker before the workers: {idle}");

    let sites: Vec<String> = (0..SITES).map(|n| format!("scale-{n:04}")).collect();
    let fleet = Fleet::start(&node.url("%2f"), &sites);
    let ready = await_ready(node, &fleet).await;
    println!("{ready}");
    assert!(
        ready.all_held.is_some_and(|t| t < READY_WITHIN),
        "not every site had an active consumer within {READY_WITHIN:?}"
    );
    let held = await_balanced(node, &fleet, ready.started).await;
    for (member, setup) in fleet.setups() {
        println!("{member}: {setup}");
    }
    let at_ready = fleet.memory();

    let (conn, channel) = connect(&node.url("%2f")).await;
    let downstream = downstream_queue(&channel, "#", FieldTable::default()).await;
    let publishing = Instant::now();
    let factory = EventFactory::new();
    let mut sent = Vec::new();
    let mut batch = Vec::new();
    for n in 1..=EVENTS_PER_SITE {
        for site in &sites {
            let (id, key, body) = factory.event(site, n);
            batch.push((key, body, plugin_properties(&id)));
            sent.push(id);
        }
    }
    publish_ingest(&channel, &batch).await;
    let published_s = publishing.elapsed().as_secs_f64();
    let received = await_ids(&conn, &downstream, &sent, Duration::from_secs(120)).await;
    let delivered_s = publishing.elapsed().as_secs_f64();
    let unique: std::collections::BTreeSet<&String> = received.iter().collect();
    let lost = sent.iter().filter(|id| !unique.contains(id)).count();
    println!(
        "{} events ({EVENTS_PER_SITE} per site) published in {published_s:.1} s; {} received \
         ({lost} lost, {} duplicates) {delivered_s:.1} s after publishing began",
        sent.len(),
        received.len(),
        received.len() - unique.len()
    );
    let dead = depth(&channel, DLQ_QUEUE).await;
    let _ = conn.close(200, "done".into()).await;

    let after = blocking({
        let node = node.clone();
        move || Broker::measure(&node)
    })
    .await;
    let held_after = blocking({
        let node = node.clone();
        move || holders(&node)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    println!("share after delivery: {:?}", shares(&held_after));
    for ((member, ready), (_, now)) in at_ready.iter().zip(fleet.memory()) {
        println!("{member}: at the even share {ready}; after delivery {now}");
    }
    println!("broker with 1,000 sites on 3 workers: {after}");
    println!(
        "broker cost of the fleet: {:+.0} MiB Erlang total, {:+.0} MiB RSS, {:+} OS file \
         descriptors",
        mib(after.erlang_total) - mib(idle.erlang_total),
        mib(after.rss) - mib(idle.rss),
        after.os_fds as i64 - idle.os_fds as i64
    );
    let stopping = Instant::now();
    fleet.stop();
    println!(
        "3 workers stopped (SIGTERM) in {:.1} s",
        stopping.elapsed().as_secs_f64()
    );

    assert_eq!(lost, 0, "every event arrives downstream");
    assert_eq!(dead, 0, "nothing dead-lettered");
    for holders in [&held, &held_after] {
        assert_eq!(holders.len(), SITES);
        assert!(
            shares(holders).values().all(|n| *n <= MOST_PER_WORKER),
            "a worker holds more than {MOST_PER_WORKER} sites: {:?}",
            shares(holders)
        );
    }
}

/// Runs blocking work (`rabbitmqctl`) off the runtime's threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Site → member of every active consumer of a site queue, as
/// `rabbitmqctl list_consumers` says; Err names a site with two.
fn holders(node: &ClusterNode) -> Result<Holders, String> {
    let listed = node.ctl(&[
        "list_consumers",
        "-p",
        "/",
        "queue_name",
        "consumer_tag",
        "active",
        "--formatter",
        "json",
        "--quiet",
    ])?;
    holders_listed(&listed)
}

/// How long the fleet took, by the broker's view polled every `POLL_EVERY`.
struct Ready {
    started: Instant,
    /// By the end of the first poll that saw it.
    first_held: Option<Duration>,
    all_held: Option<Duration>,
    polls: usize,
    /// Share when every site was first held.
    share: BTreeMap<String, usize>,
}

impl std::fmt::Display for Ready {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "first site queue with an active consumer by {} after start, all {SITES} by {} \
             ({} polls of list_consumers, every {POLL_EVERY:?}); share then {:?}",
            seconds(self.first_held),
            seconds(self.all_held),
            self.polls,
            self.share
        )
    }
}

/// Polls until every site has an active consumer (or `READY_WITHIN` is well past).
async fn await_ready(node: &ClusterNode, fleet: &Fleet) -> Ready {
    let started = fleet.started;
    let mut first_held = None;
    let mut polls = 0;
    loop {
        let polled = Instant::now();
        let held = blocking({
            let node = node.clone();
            move || holders(&node)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        polls += 1;
        let at = started.elapsed();
        if !held.is_empty() {
            first_held.get_or_insert(at);
        }
        let all_held = (held.len() == SITES).then_some(at);
        if all_held.is_some() || at > READY_WITHIN + Duration::from_secs(30) {
            if all_held.is_none() {
                println!("{} of {SITES} sites held at the last poll", held.len());
                fleet.print_log_problems();
            }
            return Ready {
                started,
                first_held,
                all_held,
                polls,
                share: shares(&held),
            };
        }
        tokio::time::sleep(POLL_EVERY.saturating_sub(polled.elapsed())).await;
    }
}

/// Polls until all three workers hold at most `MOST_PER_WORKER` sites each
/// and every site is held; panics after `BALANCED_WITHIN`.
async fn await_balanced(node: &ClusterNode, fleet: &Fleet, started: Instant) -> Holders {
    let deadline = Instant::now() + BALANCED_WITHIN;
    loop {
        let held = blocking({
            let node = node.clone();
            move || holders(&node)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let share = shares(&held);
        if held.len() == SITES
            && share.len() == MEMBERS.len()
            && share.values().all(|n| *n <= MOST_PER_WORKER)
        {
            println!(
                "even share {share:?} by {:.1} s after start",
                started.elapsed().as_secs_f64()
            );
            return held;
        }
        if Instant::now() > deadline {
            fleet.print_log_problems();
            panic!(
                "no even share within {BALANCED_WITHIN:?} of every site being held: {share:?} \
                 ({} of {SITES} held)",
                held.len()
            );
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// The three worker processes; any still running are killed when dropped.
struct Fleet {
    started: Instant,
    started_at: jiff::Timestamp,
    running: BTreeMap<&'static str, WorkerProcess>,
    dirs: Vec<PathBuf>,
}

impl Fleet {
    fn start(url: &str, sites: &[String]) -> Fleet {
        let sites: Vec<&str> = sites.iter().map(String::as_str).collect();
        let mut fleet = Fleet {
            started: Instant::now(),
            started_at: jiff::Timestamp::now(),
            running: BTreeMap::new(),
            dirs: Vec::new(),
        };
        for member in MEMBERS {
            let dir = temp_dir();
            let extra = format!(
                "[fleet]\nmember_id = \"{member}\"\nheartbeat_ms = 500\nmember_timeout_ms = 3000\n"
            );
            let process = WorkerProcess::spawn(&dir, url, &sites, &extra);
            fleet.dirs.push(dir);
            fleet.running.insert(member, process);
        }
        fleet
    }

    /// Each worker's set-up, from its log.
    fn setups(&self) -> Vec<(&'static str, String)> {
        self.running
            .iter()
            .map(|(member, p)| (*member, setup(&p.log, self.started_at)))
            .collect()
    }

    /// Each worker's memory and file descriptors, from `/proc`.
    fn memory(&self) -> Vec<(&'static str, String)> {
        self.running
            .iter()
            .map(|(member, p)| {
                let pid = p.child.id();
                let field = |name| status_field(pid, name).unwrap_or_else(|| "?".to_owned());
                let figures = format!(
                    "VmRSS {}, VmHWM {}, {} threads, {} file descriptors",
                    field("VmRSS"),
                    field("VmHWM"),
                    field("Threads"),
                    open_fds(pid)
                );
                (*member, figures)
            })
            .collect()
    }

    /// Warnings and errors the workers logged (the first 5 of each), for a
    /// failure's report.
    fn print_log_problems(&self) {
        for (member, process) in &self.running {
            let log = std::fs::read_to_string(&process.log).unwrap_or_default();
            let problems: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("\"WARN\"") || l.contains("\"ERROR\""))
                .take(5)
                .collect();
            println!(
                "{member} ({}): {} lines logged; warnings and errors: {problems:#?}",
                process.log.display(),
                log.lines().count()
            );
        }
    }

    /// SIGTERM to every worker at once; panics unless each exits with success.
    fn stop(mut self) {
        let stopping: Vec<_> = std::mem::take(&mut self.running)
            .into_iter()
            .map(|(member, process)| {
                let stop = std::thread::spawn(move || process.terminate(Duration::from_secs(60)));
                (member, stop)
            })
            .collect();
        for (member, stop) in stopping {
            let (status, log) = stop.join().unwrap_or_else(|_| panic!("{member}"));
            assert!(
                status.is_some_and(|s| s.success()),
                "{member} exited with {status:?}; log tail:\n{}",
                log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
            );
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
            eprintln!("{member} killed; its log: {}", process.log.display());
        }
    }
}

/// From a worker's log: when it first connected and when it was consuming,
/// after `started`.
fn setup(log: &Path, started: jiff::Timestamp) -> String {
    let log = std::fs::read_to_string(log).unwrap_or_default();
    let at = |message: &str| {
        log.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["message"] == message)
            .and_then(|l| l["timestamp"].as_str()?.parse::<jiff::Timestamp>().ok())
            .map(|t| t.duration_since(started).as_secs_f64())
    };
    let connections = log
        .lines()
        .filter(|l| l.contains("connected to the broker"))
        .count();
    match (at("connected to the broker"), at("connected; consuming")) {
        (Some(connected), Some(consuming)) => format!(
            "first connection {connected:.2} s after start, consuming {consuming:.2} s after \
             start (set-up: connections and topology in {:.2} s; {connections} connections)",
            consuming - connected
        ),
        (connected, consuming) => {
            format!("set-up not in the log: connected {connected:?}, consuming {consuming:?}")
        }
    }
}

/// A line's value of `/proc/<pid>/status`, e.g. `VmRSS` → `123456 kB`.
fn status_field(pid: u32, name: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
}

/// The broker node's line of a `/proc/<pid>/<file>` (e.g. `limits`), as written.
fn proc_field(node: &ClusterNode, file: &str, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{}/{file}", node.os_pid()?)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn seconds(time: Option<Duration>) -> String {
    time.map_or_else(
        || "never".to_owned(),
        |t| format!("{:.1} s", t.as_secs_f64()),
    )
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The broker's memory and file descriptors, by `rabbitmqctl status` and `/proc`.
struct Broker {
    /// Erlang's own total, and the OS's RSS of the VM, in bytes.
    erlang_total: u64,
    rss: u64,
    /// The largest categories of `rabbitmqctl status`'s memory breakdown.
    largest: Vec<(String, u64)>,
    /// RabbitMQ's count of file handles and sockets, and its limit.
    fd_used: u64,
    fd_limit: u64,
    sockets_used: u64,
    /// Entries of `/proc/<pid>/fd`: every descriptor the VM holds.
    os_fds: usize,
    queues: usize,
    connections: usize,
    channels: u64,
}

impl Broker {
    fn measure(node: &ClusterNode) -> Broker {
        let json = |args: &[&str]| -> Value {
            let text = node.ctl(args).unwrap_or_else(|e| panic!("{e}"));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
        };
        let status = json(&["status", "--formatter", "json"]);
        let number = |v: &Value| v.as_u64().unwrap_or(0);
        let memory = &status["memory"];
        let mut largest: Vec<(String, u64)> = memory
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| v.is_u64() && !["total", "strategy"].contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), number(v)))
            .collect();
        largest.sort_by_key(|(_, bytes)| std::cmp::Reverse(*bytes));
        largest.truncate(6);
        let fds = &status["file_descriptors"];
        let connections = json(&["list_connections", "channels", "--formatter", "json"]);
        let connections = connections.as_array().cloned().unwrap_or_default();
        let queues = json(&["list_queues", "-p", "/", "name", "--formatter", "json"]);
        Broker {
            erlang_total: number(&memory["total"]["erlang"]),
            rss: number(&memory["total"]["rss"]),
            largest,
            fd_used: number(&fds["total_used"]),
            fd_limit: number(&fds["total_limit"]),
            sockets_used: number(&fds["sockets_used"]),
            os_fds: node.os_pid().map_or(0, open_fds),
            queues: queues.as_array().map_or(0, Vec::len),
            connections: connections.len(),
            channels: connections.iter().map(|c| number(&c["channels"])).sum(),
        }
    }
}

impl std::fmt::Display for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let largest: Vec<String> = self
            .largest
            .iter()
            .map(|(k, v)| format!("{k} {:.1}", mib(*v)))
            .collect();
        write!(
            f,
            "memory {:.0} MiB (Erlang total), RSS {:.0} MiB; largest (MiB): {}; file handles \
             {} of {} (sockets {}), {} OS file descriptors; {} queues, {} connections, {} \
             channels",
            mib(self.erlang_total),
            mib(self.rss),
            largest.join(", "),
            self.fd_used,
            self.fd_limit,
            self.sockets_used,
            self.os_fds,
            self.queues,
            self.connections,
            self.channels
        )
    }
}
