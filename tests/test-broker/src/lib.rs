//! Broker plumbing shared by the test suites and the benchmark: running
//! `rabbitmqctl`, a scratch vhost of one's own, so runs that use the
//! contract's fixed names (`moodle.ingest`, `relay.dlq`) never collide, and a
//! throw-away cluster of extra local RabbitMQ nodes.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `rabbitmqctl` with `args`; the error says what failed and why.
pub fn rabbitmqctl(args: &[&str]) -> Result<(), String> {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .map_err(|e| format!("rabbitmqctl {args:?}: {e} (rabbitmqctl is needed)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "rabbitmqctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A vhost that exists for as long as this value, with `guest` allowed
/// everything in it; deleted when dropped.
#[derive(Debug)]
pub struct ScratchVhost {
    pub name: String,
    /// `amqp://guest:guest@<broker>/<name>`.
    pub url: String,
}

impl ScratchVhost {
    /// Creates `<prefix>-<random>` on the broker at `broker` (`host:port`).
    pub fn create(prefix: &str, broker: &str) -> Result<ScratchVhost, String> {
        let name = format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
        rabbitmqctl(&["add_vhost", &name])?;
        // From here on, dropping the value deletes the vhost.
        let vhost = ScratchVhost {
            url: format!("amqp://guest:guest@{broker}/{name}"),
            name,
        };
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &vhost.name,
            "guest",
            ".*",
            ".*",
            ".*",
        ])?;
        Ok(vhost)
    }

    /// [`ScratchVhost::create`] on the local broker, for tests: panics with
    /// the reason when it cannot.
    pub fn for_test(prefix: &str) -> ScratchVhost {
        ScratchVhost::create(prefix, "127.0.0.1:5672").unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for ScratchVhost {
    fn drop(&mut self) {
        let _ = rabbitmqctl(&["delete_vhost", &self.name]);
    }
}

/// Runs `rabbitmqctl` with `args`, killed after `limit` (coreutils'
/// `timeout`), and returns what it printed.
pub fn rabbitmqctl_within(limit: Duration, args: &[&str]) -> Result<String, String> {
    let out = Command::new("timeout")
        .args([
            "-k",
            "5",
            &limit.as_secs().max(1).to_string(),
            "rabbitmqctl",
        ])
        .args(args)
        .output()
        .map_err(|e| format!("rabbitmqctl {args:?}: {e} (timeout and rabbitmqctl are needed)"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else if out.status.code() == Some(124) {
        Err(format!(
            "rabbitmqctl {args:?}: no answer within {} s",
            limit.as_secs()
        ))
    } else {
        Err(format!(
            "rabbitmqctl {args:?}: {} {}",
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

/// One node of a [`Cluster`].
#[derive(Debug, Clone)]
pub struct ClusterNode {
    /// Erlang node name, `relaytest-<run>-<n>@localhost`.
    pub name: String,
    /// AMQP port, on 127.0.0.1.
    pub port: u16,
    /// Erlang distribution port, on 127.0.0.1.
    pub dist_port: u16,
    dir: PathBuf,
    /// The node's OS process, once it runs.
    pid: Option<u32>,
    /// Open files the node may have, when set (else what `rabbitmq-server`'s
    /// `su` leaves it: 1,024 on Debian).
    open_files: Option<u64>,
}

impl ClusterNode {
    /// `amqp://guest:guest@127.0.0.1:<port>/<vhost>` (`%2f` is the default vhost).
    pub fn url(&self, vhost: &str) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/{vhost}", self.port)
    }

    /// `host:port` as the worker logs it.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `rabbitmqctl -n <this node> args…`, given two minutes; what it printed.
    pub fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        rabbitmqctl_within(Duration::from_secs(120), &all)
    }

    /// The node's OS process id, once it runs (for `/proc/<pid>/…`).
    pub fn os_pid(&self) -> Option<u32> {
        self.pid.or_else(|| self.read_pid())
    }

    /// Stops the node's Erlang VM and waits (30 s at most) until its process
    /// has exited.
    pub fn stop(&self) -> Result<(), String> {
        self.ctl(&["stop"])?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.pid.is_some_and(|pid| self.is_running(pid)) {
            if Instant::now() > deadline {
                return Err(format!("{} still runs 30 s after stop", self.name));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// The pid RabbitMQ wrote while it runs (it removes the file when it stops).
    fn read_pid(&self) -> Option<u32> {
        let pid = std::fs::read_to_string(self.dir.join("pid")).ok()?;
        pid.trim().parse().ok()
    }

    /// `pid` is this node's process (checked by its environment, so a
    /// reused pid, or the machine's broker, is never taken for it).
    fn is_running(&self, pid: u32) -> bool {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let wanted = format!("RABBITMQ_NODENAME={}", self.name);
        environ
            .split(|b| *b == 0)
            .any(|var| var == wanted.as_bytes())
    }

    /// Kills the node's process if it still runs.
    fn kill(&self) {
        if let Some(pid) = self.pid.or_else(|| self.read_pid())
            && self.is_running(pid)
        {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }

    /// Starts the node detached, with everything of its own under `dir`.
    fn spawn(&self) -> Result<(), String> {
        let dir = &self.dir;
        std::fs::create_dir_all(dir.join("mnesia"))
            .and_then(|()| std::fs::create_dir_all(dir.join("log")))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        // Its own config: only this listener (the machine's broker owns 5672).
        let config = dir.join("rabbitmq.conf");
        // Sourced by the shell that starts the VM, after the wrapper's `su`
        // (whose PAM session sets the soft limit back to 1,024): as many open
        // files as asked, or as the hard limit allows.
        let ulimit = self.open_files.map_or_else(String::new, |n| {
            format!("ulimit -n {n} 2>/dev/null || ulimit -n \"$(ulimit -Hn)\"\n")
        });
        let files = [
            (
                config.clone(),
                format!(
                    "listeners.tcp.default = 127.0.0.1:{}\nloopback_users.guest = true\n",
                    self.port
                ),
            ),
            // No plugins: the management plugin would want port 15672.
            (dir.join("enabled_plugins"), "[].\n".to_owned()),
            // Instead of /etc/rabbitmq/rabbitmq-env.conf, which names the
            // machine's node; distribution on loopback only, like that node.
            (
                dir.join("rabbitmq-env.conf"),
                format!(
                    "ERL_EPMD_ADDRESS=127.0.0.1\n\
                     SERVER_ADDITIONAL_ERL_ARGS=\"-kernel inet_dist_use_interface {{127,0,0,1}}\"\n\
                     {ulimit}"
                ),
            ),
        ];
        for (path, text) in files {
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        // The wrapper runs the node as the `rabbitmq` user (HOME
        // /var/lib/rabbitmq, so the machine's Erlang cookie, which
        // rabbitmqctl uses too): it must own the node's files.
        let _ = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(dir)
            .status();
        let output = std::fs::File::create(dir.join("start.out"))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let errors = output.try_clone().map_err(|e| e.to_string())?;
        let path = |p: &str| dir.join(p).to_string_lossy().into_owned();
        let status = Command::new("rabbitmq-server")
            .arg("-detached")
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", config.to_string_lossy().as_ref())
            .env("RABBITMQ_CONF_ENV_FILE", path("rabbitmq-env.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", path("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", path("mnesia"))
            .env("RABBITMQ_LOG_BASE", path("log"))
            .env("RABBITMQ_PID_FILE", path("pid"))
            .stdin(std::process::Stdio::null())
            .stdout(output)
            .stderr(errors)
            .status()
            .map_err(|e| format!("rabbitmq-server: {e} (the machine's RabbitMQ is needed)"))?;
        if status.success() {
            Ok(())
        } else {
            let said = std::fs::read_to_string(dir.join("start.out")).unwrap_or_default();
            Err(format!("rabbitmq-server {}: {status}: {said}", self.name))
        }
    }

    /// Waits until the node runs RabbitMQ; notes its pid.
    fn await_startup(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            match self.ctl(&["await_startup", "--timeout", "30"]) {
                Ok(_) => {
                    self.pid = self.pid.or_else(|| self.read_pid());
                    return Ok(());
                }
                Err(e) if Instant::now() > deadline => {
                    let log = self.dir.join("log").join(format!("{}.log", self.name));
                    return Err(format!(
                        "{} did not start within {} s: {e} (its log: {})",
                        self.name,
                        within.as_secs(),
                        log.display()
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    /// Makes the node a member of `seed`'s cluster.
    fn join(&self, seed: &ClusterNode) -> Result<(), String> {
        self.ctl(&["stop_app"])?;
        self.ctl(&["reset"])?;
        self.ctl(&["join_cluster", &seed.name])?;
        self.ctl(&["start_app"])?;
        Ok(())
    }
}

/// A RabbitMQ cluster of extra nodes of the machine's own RabbitMQ, for tests:
/// each node has its own name, ports (on 127.0.0.1), config, data and logs
/// under a temporary directory, and shares the machine's Erlang cookie
/// through `rabbitmq-server`'s wrapper. The machine's broker (5672) is never
/// touched. Dropping the value (also when a test panics) stops every node and
/// removes the directory; a process killed outright leaves nodes behind,
/// named `relaytest-*` (`rabbitmqctl -n <name> stop`).
#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<ClusterNode>,
    /// How long the nodes took to start, all at once.
    pub booted_in: Duration,
    /// How long joining them into one cluster took after that.
    pub joined_in: Duration,
    dir: PathBuf,
}

/// How long a cluster may take to start.
const CLUSTER_START: Duration = Duration::from_secs(120);

impl Cluster {
    /// Starts `size` nodes and joins them into one cluster; waits until every
    /// node runs and sees the others.
    pub fn start(size: usize) -> Result<Cluster, String> {
        Cluster::start_nodes(size, None)
    }

    /// [`Cluster::start`] with nodes allowed `open_files` open files each (or
    /// the hard limit of this process, when lower): a broker with many quorum
    /// queues needs far more than the 1,024 it gets by default.
    pub fn start_with_open_files(size: usize, open_files: u64) -> Result<Cluster, String> {
        Cluster::start_nodes(size, Some(open_files))
    }

    fn start_nodes(size: usize, open_files: Option<u64>) -> Result<Cluster, String> {
        let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        let dir = std::env::temp_dir().join(format!("relaytest-{run}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        // From here on, dropping the value stops what started and cleans up.
        let mut cluster = Cluster {
            nodes: Vec::new(),
            booted_in: Duration::ZERO,
            joined_in: Duration::ZERO,
            dir,
        };
        let started = Instant::now();
        let ports = free_ports(2 * size)?;
        for (n, ports) in (1..=size).zip(ports.chunks(2)) {
            let node = ClusterNode {
                name: format!("relaytest-{run}-{n}@localhost"),
                port: ports[0],
                dist_port: ports[1],
                dir: cluster.dir.join(format!("node{n}")),
                pid: None,
                open_files,
            };
            cluster.nodes.push(node.clone());
            node.spawn()?;
        }
        for node in &mut cluster.nodes {
            node.await_startup(CLUSTER_START)?;
        }
        cluster.booted_in = started.elapsed();
        if let Some((seed, others)) = cluster.nodes.split_first() {
            for node in others {
                node.join(seed)?;
            }
        }
        cluster.await_members(CLUSTER_START)?;
        cluster.joined_in = started.elapsed() - cluster.booted_in;
        Ok(cluster)
    }

    /// One URL per node, for `vhost`.
    pub fn urls(&self, vhost: &str) -> Vec<String> {
        self.nodes.iter().map(|n| n.url(vhost)).collect()
    }

    /// Waits until every node runs and the first sees all of them running.
    fn await_members(&self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let Some(seed) = self.nodes.first() else {
            return Ok(());
        };
        loop {
            let status = seed.ctl(&["cluster_status", "--formatter", "json"]);
            let running = status.as_deref().unwrap_or_default();
            let running = running
                .split_once("\"running_nodes\"")
                .map(|(_, rest)| rest.split(']').next().unwrap_or_default())
                .unwrap_or_default();
            if self.nodes.iter().all(|n| running.contains(&n.name)) {
                for node in &self.nodes {
                    node.ctl(&["await_startup", "--timeout", "60"])?;
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the cluster did not form within {} s: {status:?}",
                    within.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // All at once: each stop takes a few seconds.
        let stopping: Vec<_> = self
            .nodes
            .iter()
            .map(|node| {
                let node = node.clone();
                std::thread::spawn(move || node.stop())
            })
            .collect();
        for stop in stopping {
            let _ = stop.join();
        }
        // Whatever did not stop (a node that hung) is killed.
        for node in &self.nodes {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `count` different TCP ports free on 127.0.0.1 right now (all bound at
/// once, so none is given twice).
fn free_ports(count: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("no free port: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("no free port: {e}"))
}
