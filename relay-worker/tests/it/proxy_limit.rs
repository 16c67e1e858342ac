//! The nginx rate limit in front of Moodle's web services (deploy/nginx/):
//! Debian's real nginx between the worker and the Moodle simulator, with the
//! committed snippets included as they are. The worker at its default
//! throttle never gets a 429, through a restart on the same address too; a
//! runaway client at another address does, and gets no more than the rate.
//! nginx must be installed: `deploy/check/nginx.sh` installs it.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lapin::types::FieldTable;
use moodle_sim::MoodleSim;
use relay_contract::routing::DLQ_QUEUE;
use relay_worker::config::{Config, SiteConfig};
use relay_worker::moodle::throttle::Limits;
use tokio::sync::watch;

use crate::support::{
    Rig, Worker, await_ids, collect, depth, downstream_queue, message_id, publish_events, temp_dir,
};

/// How many workers of a fleet the snippet expects behind one client address
/// (deploy/nginx/README.md): their heartbeats may coincide.
const WORKERS_AT_ONE_ADDRESS: u32 = 5;

/// The runaway client's address; the worker's is 127.0.0.1.
const RUNAWAY: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn nginx_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx")
}

/// The committed limit: the zone's rate and the location's burst.
#[derive(Debug, Clone, Copy)]
struct CommittedLimit {
    per_minute: u64,
    burst: u64,
}

impl CommittedLimit {
    fn read() -> CommittedLimit {
        let zone = directive("moodle-webservice-limit.conf", "limit_req_zone");
        let check = directive("moodle-webservice-limit-req.conf", "limit_req");
        let rate = parameter(&zone, "rate=");
        let per_minute = match (rate.strip_suffix("r/m"), rate.strip_suffix("r/s")) {
            (Some(n), _) => n.parse().ok(),
            (None, Some(n)) => n.parse::<u64>().ok().map(|n| n * 60),
            _ => None,
        };
        CommittedLimit {
            per_minute: per_minute.unwrap_or_else(|| panic!("no rate in r/m or r/s: `{zone}`")),
            burst: parameter(&check, "burst=")
                .parse()
                .unwrap_or_else(|e| panic!("burst in `{check}`: {e}")),
        }
    }
}

/// The first uncommented `name ...;` line of a committed snippet.
fn directive(file: &str, name: &str) -> String {
    let path = nginx_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("{file} has no {name} directive"))
        .to_owned()
}

fn parameter(line: &str, prefix: &str) -> String {
    line.trim_end_matches(';')
        .split_whitespace()
        .find_map(|word| word.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in `{line}`"))
        .to_owned()
}

/// The site's throttle, as the worker builds it.
fn limits(site: &SiteConfig) -> Limits {
    Limits {
        max_concurrency: site.max_concurrency,
        max_calls_per_minute: site.max_calls_per_minute,
        min_interval: Duration::from_millis(site.min_interval_ms),
    }
}

/// Calls a minute the worker's throttle allows one site (rounded up).
fn worker_per_minute(site: &SiteConfig) -> u64 {
    let spacing = limits(site).spacing().as_millis().max(1);
    60_000u128.div_ceil(spacing) as u64
}

/// The sites whose throttle the snippet is tuned for: the built-in defaults
/// and every site of the shipped example configuration.
fn tuned_for() -> Vec<(String, SiteConfig)> {
    use figment::Figment;
    use figment::providers::{Format, Serialized, Toml};
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/relay-worker.example.toml");
    let config: Config = Figment::from(Serialized::defaults(Config::default()))
        .merge(Toml::file_exact(&example))
        .extract()
        .unwrap_or_else(|e| panic!("{}: {e}", example.display()));
    let defaults = SiteConfig::new("lms-defaults".parse().unwrap_or_else(|e| panic!("{e}")));
    let mut sites = vec![("the defaults".to_owned(), defaults)];
    sites.extend(
        config
            .sites
            .into_iter()
            .map(|s| (format!("example site {}", s.id), s)),
    );
    sites
}

#[test]
fn the_committed_limit_leaves_the_worker_throttle_headroom() {
    let limit = CommittedLimit::read();
    for (name, site) in tuned_for() {
        let worker = worker_per_minute(&site);
        assert!(
            2 * limit.per_minute >= 3 * worker,
            "{name}: the worker may call {worker} times a minute; nginx allows {}, less than 1.5 x that",
            limit.per_minute
        );
        let needed = u64::from(site.max_concurrency + 1 + WORKERS_AT_ONE_ADDRESS);
        assert!(
            limit.burst >= needed,
            "{name}: burst {} < max_concurrency {} + 1 + {WORKERS_AT_ONE_ADDRESS} workers at one address",
            limit.burst,
            site.max_concurrency
        );
    }
}

/// Debian's nginx as a child process proxying to `upstream`; killed and its
/// directory removed when dropped.
struct Nginx {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Nginx {
    fn binary() -> PathBuf {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
            .chain([PathBuf::from("/usr/sbin")])
            .map(|dir| dir.join("nginx"))
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "nginx is not installed: run deploy/check/nginx.sh (it installs Debian's nginx)"
                )
            })
    }

    /// Starts it on a free port of 127.0.0.1 (another one if that is taken
    /// before nginx binds it).
    fn start(upstream: SocketAddr) -> Nginx {
        let binary = Nginx::binary();
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .unwrap_or_else(|e| panic!("no free port: {e}"));
            let dir = temp_dir();
            std::fs::write(
                dir.join("nginx.conf"),
                config(&binary, &dir, port, upstream),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let mut nginx = Nginx {
                child: spawn(&binary, &dir),
                dir,
                port,
            };
            match nginx.ready(Duration::from_secs(10)) {
                Ok(()) => return nginx,
                Err(e) if e.contains("Address already in use") => last_error = e,
                Err(e) => panic!("nginx did not start: {e}"),
            }
        }
        panic!("nginx did not start: {last_error}")
    }

    /// Waits until it accepts connections; Err with its error log if it ended.
    fn ready(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("{status}: {}", self.error_log()));
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("no answer within {within:?}: {}", self.error_log()))
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// What nginx logged for `client`: (arrival in ms since the epoch,
    /// status), oldest first.
    fn requests_of(&self, client: IpAddr) -> Vec<(i64, u16)> {
        let text = std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
        let mut out: Vec<(i64, u16)> = text
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let [done, took, addr, status] = fields[..] else {
                    panic!("access log line `{line}`");
                };
                let parsed = (done.parse::<f64>(), took.parse::<f64>(), status.parse());
                let (Ok(done), Ok(took), Ok(status)) = parsed else {
                    panic!("access log line `{line}`");
                };
                let arrived = ((done - took) * 1000.0).round() as i64;
                (addr == client.to_string()).then_some((arrived, status))
            })
            .collect();
        out.sort_unstable();
        out
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One process (no master and workers to leave behind), in the foreground;
/// the committed snippets included by their paths in the repository.
fn config(binary: &Path, dir: &Path, port: u16, upstream: SocketAddr) -> String {
    let d = dir.display();
    let snippets = nginx_dir();
    let snippets = snippets.display();
    // Temporary files go to our directory, not /var/lib/nginx (which needs
    // root); uwsgi and scgi only where this nginx has them.
    let built = Command::new(binary)
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .unwrap_or_default();
    let mut temp_paths = format!(
        "client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;"
    );
    for module in ["uwsgi", "scgi"] {
        if !built.contains(&format!("--without-http_{module}_module")) {
            temp_paths.push_str(&format!(" {module}_temp_path {d}/{module};"));
        }
    }
    format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  {temp_paths}\n\
           log_format relay '$msec $request_time $remote_addr $status';\n\
           access_log {d}/access.log relay;\n\
           include \"{snippets}/moodle-webservice-limit.conf\";\n\
           server {{\n    listen 127.0.0.1:{port};\n    server_name moodle.test;\n\
             location = /webservice/rest/server.php {{\n\
               include \"{snippets}/moodle-webservice-limit-req.conf\";\n\
               proxy_pass http://{upstream};\n    }}\n  }}\n}}\n"
    )
}

/// nginx in the foreground; killed by the kernel too if this test's thread
/// ends without dropping the guard (util-linux `setpriv --pdeathsig`).
fn spawn(binary: &Path, dir: &Path) -> Child {
    let setpriv = Path::new("/usr/bin/setpriv");
    let mut command = if setpriv.is_file() {
        let mut c = Command::new(setpriv);
        c.args(["--pdeathsig", "KILL"]).arg(binary);
        c
    } else {
        Command::new(binary)
    };
    command
        .arg("-p")
        .arg(format!("{}/", dir.display()))
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()))
}

/// The most the leaky bucket of nginx's limit_req filled (in requests above
/// the rate) for these arrivals, by nginx's own arithmetic in thousandths.
fn peak_excess(arrivals_ms: &[i64], per_minute: u64) -> f64 {
    let rate = (per_minute * 1000 / 60) as i64;
    let (mut excess, mut peak, mut last) = (0i64, 0i64, None::<i64>);
    for &t in arrivals_ms {
        if let Some(last) = last {
            excess = (excess - rate * (t - last) / 1000 + 1000).max(0);
        }
        peak = peak.max(excess);
        last = Some(t);
    }
    peak as f64 / 1000.0
}

/// The most arrivals within any window of `width_ms`.
fn most_within(arrivals_ms: &[i64], width_ms: i64) -> usize {
    let mut best = 0;
    let mut start = 0;
    for end in 0..arrivals_ms.len() {
        while arrivals_ms[end] - arrivals_ms[start] >= width_ms {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

/// A client from [`RUNAWAY`] calling web services with no throttle: 50 at
/// once, then 10 a second until told to stop. Returns the statuses of the
/// first 50 and of all its calls.
fn runaway(
    url: String,
    token: String,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<(Vec<u16>, Vec<u16>)> {
    tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .local_address(RUNAWAY)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let endpoint = format!("{url}/webservice/rest/server.php");
        let call = move || {
            let (http, endpoint, token) = (http.clone(), endpoint.clone(), token.clone());
            tokio::spawn(async move {
                let form = [
                    ("wstoken", token.as_str()),
                    ("wsfunction", "core_webservice_get_site_info"),
                    ("moodlewsrestformat", "json"),
                ];
                match http.post(&endpoint).form(&form).send().await {
                    Ok(response) => response.status().as_u16(),
                    Err(e) => panic!("runaway client from {RUNAWAY}: {e}"),
                }
            })
        };
        let mut burst = Vec::new();
        for task in (0..50).map(|_| call()).collect::<Vec<_>>() {
            burst.push(task.await.unwrap_or_else(|e| panic!("{e}")));
        }
        let mut later = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while !*stop.borrow() {
            tick.tick().await;
            later.push(call());
        }
        let mut all = burst.clone();
        for task in later {
            all.push(task.await.unwrap_or_else(|e| panic!("{e}")));
        }
        (burst, all)
    })
}

async fn metrics_of(worker: &Worker) -> String {
    reqwest::get(format!("http://{}/metrics", worker.http))
        .await
        .unwrap_or_else(|e| panic!("/metrics: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("/metrics: {e}"))
}

/// Lines of `/metrics` for `name` and the test's site.
fn metric_lines<'a>(metrics: &'a str, name: &str) -> Vec<&'a str> {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains("site=\"lms-proxy\""))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_at_its_default_throttle_never_trips_nginx_and_a_runaway_client_does() {
    let limit = CommittedLimit::read();
    // Generated here: no credential is written in the repository.
    let token = uuid::Uuid::new_v4().simple().to_string();
    let sim = MoodleSim::start(&token)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Slower than the throttle's spacing (505 ms): two calls run at once, so
    // max_concurrency is used as well as the rate.
    sim.set_latency(Duration::from_millis(700));
    let upstream = sim.url().trim_start_matches("http://").parse();
    let nginx = Nginx::start(upstream.unwrap_or_else(|e| panic!("{e}")));

    let mut rig = Rig::new(&["lms-proxy"]).await;
    let token_dir = temp_dir();
    std::fs::write(token_dir.join("token"), format!("{token}\n")).unwrap_or_else(|e| panic!("{e}"));
    let site = &mut rig.config.sites[0];
    site.moodle_url = Some(nginx.url());
    site.token_file = Some(token_dir.join("token"));
    let defaults = SiteConfig::new(site.id.clone());
    assert_eq!(
        limits(site),
        limits(&defaults),
        "the worker runs at its default throttle"
    );
    // One call per lookup (no batching), so 64 events (every fixture in turn)
    // keep the throttle busy for half a minute: some 60 calls at 2 a second.
    site.enrich.batch_max = 1;
    let downstream = downstream_queue(&rig.channel, "#", FieldTable::default()).await;
    let ids = publish_events(&rig.channel, "lms-proxy", 64).await;

    let started = Instant::now();
    let (stop_runaway, stopped) = watch::channel(false);
    let client = runaway(nginx.url(), token.clone(), stopped);
    let first = Worker::start(rig.config.clone()).await;
    // Half way, the worker restarts: the new one's first calls follow the old
    // one's last at once, from the same address.
    let before = collect(&rig.conn, &downstream, 32, Duration::from_secs(90)).await;
    first
        .stop()
        .await
        .unwrap_or_else(|e| panic!("first worker: {e}"));
    let second = Worker::start(rig.config.clone()).await;
    let mut delivered: BTreeSet<String> = before.iter().map(message_id).collect();
    let rest: Vec<String> = ids
        .iter()
        .filter(|id| !delivered.contains(*id))
        .cloned()
        .collect();
    delivered.extend(await_ids(&rig.conn, &downstream, &rest, Duration::from_secs(90)).await);
    let metrics = metrics_of(&second).await;
    second
        .stop()
        .await
        .unwrap_or_else(|e| panic!("second worker: {e}"));
    let _ = stop_runaway.send(true);
    let (burst, all) = client
        .await
        .unwrap_or_else(|e| panic!("runaway client: {e}"));
    let elapsed = started.elapsed();
    let _ = std::fs::remove_dir_all(&token_dir);

    // The worker: everything delivered, never refused, never retried.
    let missing = ids.iter().filter(|id| !delivered.contains(*id)).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} events not delivered",
        ids.len()
    );
    assert_eq!(
        depth(&rig.channel, DLQ_QUEUE).await,
        0,
        "nothing dead-lettered"
    );
    worker_was_never_refused(&nginx, &metrics, limit, defaults.max_concurrency, elapsed);
    runaway_was_held_to_the_limit(&nginx, &burst, &all, limit);
}

/// The worker's calls as nginx logged them: none refused, and enough at the
/// throttle's pace to have tested something; /metrics agrees.
fn worker_was_never_refused(
    nginx: &Nginx,
    metrics: &str,
    limit: CommittedLimit,
    max_concurrency: u32,
    elapsed: Duration,
) {
    let worker_calls = nginx.requests_of(IpAddr::V4(Ipv4Addr::LOCALHOST));
    // 499: nginx's word for a call the client gave up, here those in flight
    // when a worker stopped (it abandons them; their events go back to the
    // queue). Anything else but 200 is a refusal or a failure.
    let refused: Vec<_> = worker_calls
        .iter()
        .filter(|(_, s)| ![200, 499].contains(s))
        .collect();
    assert!(
        refused.is_empty(),
        "nginx answered the worker {refused:?} (arrival ms, status)"
    );
    let abandoned = worker_calls.iter().filter(|(_, s)| *s == 499).count();
    assert!(
        abandoned <= 2 * max_concurrency as usize,
        "{abandoned} worker calls abandoned: more than the two stops had in flight"
    );
    let arrivals: Vec<i64> = worker_calls.iter().map(|(at, _)| *at).collect();
    let busiest = most_within(&arrivals, 10_000);
    println!(
        "worker: {} calls through nginx in {:.0} s, none refused ({abandoned} abandoned at a \
         stop); at most {busiest} in any 10 s (20 at its throttle's pace); fullest nginx bucket \
         {:.2} of burst {} at {}r/m",
        arrivals.len(),
        elapsed.as_secs_f64(),
        peak_excess(&arrivals, limit.per_minute),
        limit.burst,
        limit.per_minute,
    );
    assert!(
        arrivals.len() >= 50,
        "only {} worker calls: the test did not drive the worker",
        arrivals.len()
    );
    assert!(
        busiest >= 16,
        "at most {busiest} worker calls in 10 s: never at its throttle (20)"
    );
    let calls = metric_lines(metrics, "relay_moodle_calls_total");
    assert!(
        !calls.is_empty(),
        "/metrics has no relay_moodle_calls_total for the site"
    );
    assert!(
        calls.iter().all(|l| l.contains("outcome=\"ok\"")),
        "calls not ok: {calls:?}"
    );
    let retried = metric_lines(metrics, "relay_events_retried_total");
    assert!(retried.is_empty(), "the worker retried events: {retried:?}");
}

/// The runaway's calls: refused with 429 beyond the burst, held to the rate.
fn runaway_was_held_to_the_limit(nginx: &Nginx, burst: &[u16], all: &[u16], limit: CommittedLimit) {
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for status in all {
        *statuses.entry(*status).or_default() += 1;
    }
    assert!(
        statuses.keys().all(|s| [200, 429].contains(s)),
        "the runaway got (status, calls) {statuses:?}: nginx refuses with 429"
    );
    let logged = nginx.requests_of(RUNAWAY);
    assert_eq!(logged.len(), all.len(), "nginx logged every runaway call");
    assert_eq!(
        logged.iter().filter(|(_, s)| *s == 429).count(),
        all.iter().filter(|s| **s == 429).count(),
        "nginx's log and the client agree on the 429s"
    );
    // What the limit lets through of calls arriving over `span_ms`: the burst,
    // the first call, what drains meanwhile, and one for rounding.
    let allows = |span_ms: i64| limit.burst + 2 + limit.per_minute * span_ms.max(0) as u64 / 60_000;
    let passed = |statuses: &[u16]| statuses.iter().filter(|s| **s == 200).count() as u64;
    // The 50 at once arrive within milliseconds of each other.
    let burst_span = logged[burst.len() - 1].0 - logged[0].0;
    assert!(
        passed(burst) <= allows(burst_span),
        "{} of 50 calls at once went through (burst {}, {burst_span} ms apart)",
        passed(burst),
        limit.burst
    );
    let span = logged[logged.len() - 1].0 - logged[0].0;
    let allowed = allows(span);
    println!(
        "runaway at {RUNAWAY}: {} of 50 at once went through, {} of {} in {:.1} s (the limit \
         allows {allowed}), the rest 429",
        passed(burst),
        passed(all),
        all.len(),
        span as f64 / 1000.0
    );
    assert!(
        passed(all) <= allowed,
        "the runaway got {} calls through in {span} ms; the limit allows {allowed}",
        passed(all)
    );
    assert!(
        all.len() as u64 > 2 * allowed,
        "only {} runaway calls: not over the limit",
        all.len()
    );
}
