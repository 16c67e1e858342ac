//! `make bench`: relay-worker against a minimal raw forwarder, in the same run,
//! on the same broker, queue type and prefetch.
//!
//! Each round preloads N persistent ~1 KiB events into `relay.ingest.bench`
//! (a vhost of its own), starts the program under test as a separate process,
//! and times it until all N are in the downstream queue. It prints events/s,
//! the ratio, CPU seconds per 100k events and peak RSS (VmHWM). Figures, not
//! pass/fail: noise on a shared 2-core machine is 10-25 %.

mod forwarder;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions,
    QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use relay_contract::CLOUDEVENTS_CONTENT_TYPE;
use relay_contract::routing::{EVENTS_EXCHANGE, INGEST_EXCHANGE};
use relay_worker::config::{Config, Secret, SiteConfig};
use relay_worker::topology::Topology;

const SITE: &str = "bench";
const INGEST_QUEUE: &str = "relay.ingest.bench";
const DOWNSTREAM: &str = "bench.downstream";

#[derive(Debug, Parser)]
#[command(about = "Benchmark relay-worker against a raw forwarder on a real RabbitMQ")]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Events per run.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Rounds; figures are medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Prefetch of both programs.
    #[arg(long, default_value_t = 200)]
    prefetch: u16,
    /// Backlog for the memory run (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    backlog: u64,
    /// The relay-worker binary (a release build).
    #[arg(long, default_value = "target/release/relay-worker")]
    worker: PathBuf,
    /// Broker host:port, guest/guest.
    #[arg(long, default_value = "127.0.0.1:5672")]
    broker: String,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Internal: run the raw forwarder (the bench starts it as a child process).
    Forward {
        #[arg(long)]
        url: String,
        #[arg(long)]
        prefetch: u16,
    },
}

struct Run {
    rate: f64,
    cpu_s_per_100k: f64,
    peak_rss_mib: f64,
}

fn main() {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| fail(&format!("runtime: {e}")));
    if let Some(Cmd::Forward { url, prefetch }) = &cli.command {
        if let Err(e) = runtime.block_on(forwarder::run(
            url,
            INGEST_QUEUE,
            EVENTS_EXCHANGE,
            *prefetch,
        )) {
            fail(&format!("forwarder: {e}"));
        }
        return;
    }
    if !cli.worker.is_file() {
        fail(&format!(
            "{} is missing: build it with `cargo build --release -p relay-worker`",
            cli.worker.display()
        ));
    }
    runtime.block_on(bench(&cli));
}

async fn bench(cli: &Cli) {
    let scratch =
        test_broker::ScratchVhost::create("relay-bench", &cli.broker).unwrap_or_else(|e| fail(&e));
    let (vhost, url) = (scratch.name.clone(), scratch.url.clone());
    let config = worker_config(&url, cli.prefetch);
    let config_file = std::env::temp_dir().join(format!("{vhost}.toml"));
    write_config(&config_file, &url, cli.prefetch);

    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| fail(&format!("broker: {e}")));
    Topology::for_config(&config)
        .declare(&conn)
        .await
        .unwrap_or_else(|e| fail(&format!("topology: {e}")));
    let channel = conn
        .create_channel()
        .await
        .unwrap_or_else(|e| fail(&e.to_string()));
    declare_downstream(&channel).await;
    let bodies = event_bodies();
    let size = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len();
    println!(
        "relay-bench: {} events of ~{size} B per run, prefetch {}, {} round(s), quorum queues, persistent",
        cli.events, cli.prefetch, cli.rounds
    );

    let (mut worker_runs, mut raw_runs) = (Vec::new(), Vec::new());
    for round in 1..=cli.rounds {
        preload(&channel, &bodies, cli.events).await;
        let worker = measure(
            &channel,
            cli.events,
            worker_command(&cli.worker, &config_file),
        )
        .await;
        print_run(&format!("round {round} relay-worker"), &worker);
        worker_runs.push(worker);

        preload(&channel, &bodies, cli.events).await;
        let raw = measure(&channel, cli.events, forwarder_command(&url, cli.prefetch)).await;
        print_run(&format!("round {round} raw forwarder"), &raw);
        raw_runs.push(raw);
    }
    if cli.rounds > 0 {
        report(&median(&worker_runs), &median(&raw_runs));
    }
    if cli.backlog > 0 {
        println!();
        println!("memory: preloading a backlog of {} events...", cli.backlog);
        preload(&channel, &bodies, cli.backlog).await;
        let run = measure(
            &channel,
            cli.backlog,
            worker_command(&cli.worker, &config_file),
        )
        .await;
        println!(
            "relay-worker with a {} backlog: {:.0} events/s, peak RSS {:.1} MiB (goal < 64 MiB)",
            cli.backlog, run.rate, run.peak_rss_mib
        );
    }
    let _ = conn.close(200, "bench done".into()).await;
    let _ = std::fs::remove_file(&config_file);
    drop(scratch);
}

fn report(w: &Run, r: &Run) {
    println!();
    println!(
        "{:<28} {:>10} {:>16} {:>14}",
        "median of rounds", "events/s", "CPU s/100k ev", "peak RSS MiB"
    );
    for (name, run) in [("relay-worker", w), ("raw forwarder", r)] {
        println!(
            "{name:<28} {:>10.0} {:>16.2} {:>14.1}",
            run.rate, run.cpu_s_per_100k, run.peak_rss_mib
        );
    }
    println!(
        "relay-worker / raw forwarder: {:.2}x events/s (goal >= 0.80)",
        w.rate / r.rate
    );
}

fn worker_config(url: &str, prefetch: u16) -> Config {
    let mut config = Config::default();
    config.amqp.url = Secret::new(url);
    config.amqp.prefetch = prefetch;
    config.sites = vec![SiteConfig::new(
        SITE.parse().unwrap_or_else(|e| fail(&format!("{e}"))),
    )];
    config
}

fn write_config(path: &PathBuf, url: &str, prefetch: u16) {
    let text = format!(
        "[amqp]\nurl = \"{url}\"\nprefetch = {prefetch}\n[worker]\nlisten = \"127.0.0.1:0\"\n[[sites]]\nid = \"{SITE}\"\n"
    );
    std::fs::write(path, text).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
}

fn worker_command(worker: &PathBuf, config: &PathBuf) -> Command {
    let mut cmd = Command::new(worker);
    cmd.arg("--config").arg(config).env("RUST_LOG", "warn");
    cmd
}

fn forwarder_command(url: &str, prefetch: u16) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("{e}")));
    let mut cmd = Command::new(exe);
    cmd.args(["forward", "--url", url, "--prefetch", &prefetch.to_string()]);
    cmd
}

/// The valid fixtures as stored (~1 KiB each), one per event type and variant.
fn event_bodies() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/fixtures/valid");
    let mut bodies: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())))
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path()).ok())
        .collect();
    bodies.sort();
    bodies
}

async fn declare_downstream(channel: &Channel) {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            DOWNSTREAM.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .unwrap_or_else(|e| fail(&format!("downstream: {e}")));
    channel
        .queue_bind(
            DOWNSTREAM.into(),
            EVENTS_EXCHANGE.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| fail(&format!("bind: {e}")));
}

/// Publishes `count` events with fresh ids, 1,000 confirms outstanding at most.
async fn preload(channel: &Channel, templates: &[Vec<u8>], count: u64) {
    for queue in [DOWNSTREAM, INGEST_QUEUE] {
        let _ = channel
            .queue_purge(queue.into(), QueuePurgeOptions::default())
            .await;
    }
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap_or_else(|e| fail(&format!("confirms: {e}")));
    let values: Vec<serde_json::Value> = templates
        .iter()
        .filter_map(|b| serde_json::from_slice(b).ok())
        .collect();
    for n in 0..count {
        let template = &templates[(n as usize) % templates.len()];
        let value = &values[(n as usize) % values.len()];
        let id = uuid::Uuid::new_v4().to_string();
        // Same length as the template: swap the 36-character id in place.
        let old_id = value["id"].as_str().unwrap_or_default();
        let body = String::from_utf8_lossy(template).replacen(old_id, &id, 1);
        let key = format!(
            "{}.{}",
            value["moodlesite"].as_str().unwrap_or_default(),
            routing_suffix(value)
        );
        let props = BasicProperties::default()
            .with_message_id(id.as_str().into())
            .with_content_type(CLOUDEVENTS_CONTENT_TYPE.into())
            .with_delivery_mode(2);
        let body = body.replace("\"moodlesite\": \"lms-prod\"", "\"moodlesite\": \"bench\"");
        let key = key.replacen("lms-prod", SITE, 1);
        channel
            .basic_publish(
                INGEST_EXCHANGE.into(),
                key.as_str().into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                props,
            )
            .await
            .unwrap_or_else(|e| fail(&format!("preload: {e}")));
        if n % 1000 == 999 {
            channel
                .wait_for_confirms()
                .await
                .unwrap_or_else(|e| fail(&format!("preload confirms: {e}")));
        }
    }
    channel
        .wait_for_confirms()
        .await
        .unwrap_or_else(|e| fail(&format!("preload confirms: {e}")));
}

fn routing_suffix(value: &serde_json::Value) -> String {
    value["type"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("moodle.")
        .to_owned()
}

/// Starts `cmd`, waits until `count` events are downstream, stops it.
async fn measure(channel: &Channel, count: u64, mut cmd: Command) -> Run {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| fail(&format!("spawn: {e}")));
    let mut peak_rss_kib = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak_rss_kib = peak_rss_kib.max(status_kib(&child, "VmHWM:"));
        let depth = channel
            .queue_declare(
                DOWNSTREAM.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map(|q| u64::from(q.message_count()))
            .unwrap_or(0);
        if depth >= count {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            fail(&format!("the program under test exited early: {status}"));
        }
        if started.elapsed() > Duration::from_secs(1800) {
            fail(&format!(
                "only {depth} of {count} events arrived in 30 minutes"
            ));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(&child);
    stop(&mut child);
    Run {
        rate: count as f64 / elapsed,
        cpu_s_per_100k: cpu * 100_000.0 / count as f64,
        peak_rss_mib: peak_rss_kib as f64 / 1024.0,
    }
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    for _ in 0..100 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn status_kib(child: &Child, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn cpu_seconds(child: &Child) -> f64 {
    let ticks: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    std::fs::read_to_string(format!("/proc/{}/stat", child.id()))
        .ok()
        .and_then(|s| {
            // Fields after the ")" that ends the command name: utime is 14th, stime 15th.
            let rest = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks)
        })
        .unwrap_or(0.0)
}

fn median(runs: &[Run]) -> Run {
    let pick = |f: fn(&Run) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Run {
        rate: pick(|r| r.rate),
        cpu_s_per_100k: pick(|r| r.cpu_s_per_100k),
        peak_rss_mib: pick(|r| r.peak_rss_mib),
    }
}

fn print_run(label: &str, run: &Run) {
    println!(
        "{label:<28} {:>8.0} events/s  {:>6.2} CPU s/100k  {:>6.1} MiB peak RSS",
        run.rate, run.cpu_s_per_100k, run.peak_rss_mib
    );
}

fn fail(message: &str) -> ! {
    eprintln!("relay-bench: {message}");
    std::process::exit(1)
}
