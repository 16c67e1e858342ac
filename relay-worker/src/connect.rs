//! Connecting to the broker: `amqp.url` may list several nodes of one RabbitMQ
//! cluster, and [`connect`] tries them in turn, starting after the one tried
//! last, so the node that was just lost is the last one tried again.
//!
//! It does not wait between rounds nor bound their time: the run loop's
//! backoff and `amqp.connect_timeout_s` do.
//!
//! [`lost`] tells when a connection is gone, whatever its channels are doing.

use std::fmt::Display;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::Duration;

use futures_util::StreamExt;
use lapin::{Connection, ConnectionProperties, Event};
use relay_contract::redact;

use crate::config::{AmqpConfig, Secret};

/// The broker's addresses, and where the next round of attempts starts. One
/// per worker, kept across reconnects.
#[derive(Debug)]
pub struct Brokers {
    urls: Vec<Secret>,
    /// The address the next round starts at: the one after the address tried
    /// last. Moved before each attempt, so an attempt cut short by
    /// `amqp.connect_timeout_s` (a node that does not answer) still counts.
    next: AtomicUsize,
}

/// A whole round failed: no address accepted a connection.
#[derive(Debug, thiserror::Error)]
#[error("{tried} broker address(es) tried, none connected; the last, {node}: {last}")]
pub struct ConnectError {
    /// How many addresses were tried.
    pub tried: usize,
    /// `host:port` of the last one tried.
    pub node: String,
    /// Its error, without credentials.
    pub last: String,
}

impl Brokers {
    /// `urls` in order; the first round starts at `start` (modulo their number).
    pub fn new(urls: Vec<Secret>, start: usize) -> Brokers {
        let next = start % urls.len().max(1);
        Brokers {
            urls,
            next: AtomicUsize::new(next),
        }
    }

    /// The addresses `amqp.url` lists. The first round starts at a random one,
    /// so the workers of a fleet spread their connections over the nodes.
    pub fn from_config(amqp: &AmqpConfig) -> Brokers {
        let urls = amqp.urls();
        let start = uuid::Uuid::new_v4().as_u128() % urls.len().max(1) as u128;
        Brokers::new(urls, start as usize)
    }

    /// How many addresses there are.
    pub fn len(&self) -> usize {
        self.urls.len()
    }

    /// True when there are none (an empty `amqp.url`, refused by validation).
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// The indexes of the next round, in the order they will be tried.
    pub fn round(&self) -> Vec<usize> {
        let n = self.urls.len();
        let start = self.next.load(Ordering::Relaxed);
        (0..n).map(|k| (start + k) % n).collect()
    }

    /// Tries `attempt` on each address of a round in turn; the first success
    /// wins. `attempt` gets the full URL; every error is redacted.
    async fn first<'a, T, E, F>(
        &'a self,
        mut attempt: impl FnMut(&'a str) -> F,
    ) -> Result<T, ConnectError>
    where
        E: Display,
        F: Future<Output = Result<T, E>>,
    {
        let round = self.round();
        let mut failed = ConnectError {
            tried: 0,
            node: String::new(),
            last: "no broker address is configured (amqp.url)".to_owned(),
        };
        for i in round {
            let url = self.urls[i].expose();
            let node = node(url);
            self.next
                .store((i + 1) % self.urls.len(), Ordering::Relaxed);
            match attempt(url).await {
                Ok(connected) => {
                    tracing::info!(node, address = i, "connected to the broker");
                    return Ok(connected);
                }
                Err(e) => {
                    let error = redact::credentials(&e.to_string());
                    if self.urls.len() > 1 {
                        tracing::warn!(
                            node,
                            address = i,
                            error,
                            "broker node refused; trying the next"
                        );
                    }
                    failed.tried += 1;
                    failed.node = node;
                    failed.last = error;
                }
            }
        }
        Err(failed)
    }
}

/// Connects to the first address of a round that accepts, and logs which
/// node (`host:port`, never the credentials).
pub async fn connect(
    brokers: &Brokers,
    properties: ConnectionProperties,
) -> Result<Connection, ConnectError> {
    brokers
        .first(|url| Connection::connect(url, properties.clone()))
        .await
}

/// How often [`lost`] looks at a connection's state besides its events.
const STATE_CHECK: Duration = Duration::from_secs(1);

/// Resolves when `connection` is no longer usable (an I/O error, or closed by
/// the broker), with the reason without credentials; never while it is up.
///
/// The pipelines would notice too, but only through a channel operation or a
/// consumer they are polling: a site that holds no channel (standby, paused)
/// or waits for a permit polls nothing, and a node that resets the connection
/// could leave every site waiting. This watches the connection itself: its
/// error event at once, its state once a second (a close by the broker sends
/// no event).
pub async fn lost(connection: &Connection) -> String {
    let mut events = connection.events_listener();
    let mut check = tokio::time::interval(STATE_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut listening = true;
    loop {
        tokio::select! {
            event = events.next(), if listening => match event {
                Some(Event::Error(e)) => {
                    return redact::credentials(&format!("broker connection: {e}"));
                }
                Some(_) => {}
                // The events end with the connection; the state says how.
                None => listening = false,
            },
            _ = check.tick() => {
                let status = connection.status();
                if !status.connected() {
                    let state = if status.errored() { "failed" } else { "closed" };
                    return format!("broker connection {state}");
                }
            }
        }
    }
}

/// `host:port` of an AMQP URL, without credentials, path or query; the
/// scheme's default port when it names none.
pub fn node(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("amqp", url));
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let has_port = host
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    if has_port {
        host.to_owned()
    } else {
        let port = if scheme == "amqps" { 5671 } else { 5672 };
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn brokers(n: usize, start: usize) -> Brokers {
        let urls = (1..=n)
            .map(|i| Secret::new(format!("amqp://relay:s3cret@node{i}:5672/%2f")))
            .collect();
        Brokers::new(urls, start)
    }

    /// Runs a round where the nodes in `down` refuse; returns the nodes tried
    /// in order and the node connected to.
    async fn round(brokers: &Brokers, down: &[&str]) -> (Vec<String>, Result<String, String>) {
        let tried = Mutex::new(Vec::new());
        let result = brokers
            .first(|url| {
                let node = node(url);
                tried
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(node.clone());
                let refused = down.iter().any(|d| node.starts_with(d));
                let url = url.to_owned();
                async move {
                    if refused {
                        Err(format!("connection refused by {url}"))
                    } else {
                        Ok(node)
                    }
                }
            })
            .await
            .map_err(|e| e.to_string());
        (tried.into_inner().unwrap_or_default(), result)
    }

    #[tokio::test]
    async fn each_round_starts_after_the_address_used_last() {
        let b = brokers(3, 0);
        assert_eq!(b.round(), vec![0, 1, 2]);
        let (tried, got) = round(&b, &[]).await;
        assert_eq!(tried, ["node1:5672"]);
        assert_eq!(got.as_deref(), Ok("node1:5672"));
        // node1 was lost: the next round starts at node2.
        assert_eq!(b.round(), vec![1, 2, 0]);
        let (_, got) = round(&b, &[]).await;
        assert_eq!(got.as_deref(), Ok("node2:5672"));
        let (_, got) = round(&b, &[]).await;
        assert_eq!(got.as_deref(), Ok("node3:5672"));
        let (_, got) = round(&b, &[]).await;
        assert_eq!(got.as_deref(), Ok("node1:5672"), "round-robin wraps");
    }

    #[tokio::test]
    async fn a_dead_node_is_skipped_and_not_tried_first_again() {
        let b = brokers(3, 1);
        let (tried, got) = round(&b, &["node2"]).await;
        assert_eq!(tried, ["node2:5672", "node3:5672"]);
        assert_eq!(got.as_deref(), Ok("node3:5672"));
        // Lost node3 too: node1 is next, node2 (still down) only after it.
        let (tried, got) = round(&b, &["node2", "node3"]).await;
        assert_eq!(tried, ["node1:5672"]);
        assert_eq!(got.as_deref(), Ok("node1:5672"));
    }

    #[tokio::test]
    async fn a_failed_round_names_how_many_were_tried_and_the_last_error_without_credentials() {
        let b = brokers(3, 2);
        let (tried, got) = round(&b, &["node"]).await;
        assert_eq!(tried, ["node3:5672", "node1:5672", "node2:5672"]);
        let error = got.err().unwrap_or_default();
        assert!(error.contains("3 broker address(es) tried"), "{error}");
        assert!(error.contains("node2:5672"), "{error}");
        assert!(error.contains("connection refused"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
        // The next round starts where this one did.
        assert_eq!(b.round(), vec![2, 0, 1]);
    }

    #[tokio::test]
    async fn a_refused_connection_is_reported_redacted() {
        // A port nothing listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let url = format!("amqp://relay:s3cret@127.0.0.1:{port}/%2f");
        let b = Brokers::new(vec![Secret::new(url)], 0);
        let error = connect(&b, ConnectionProperties::default())
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("1 broker address(es) tried"), "{error}");
        assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }

    #[test]
    fn the_node_is_host_and_port_only() {
        assert_eq!(node("amqp://u:p@mq1:5673/%2f"), "mq1:5673");
        assert_eq!(node("amqp://u:p@w@mq1/vh?heartbeat=10"), "mq1:5672");
        assert_eq!(node("amqps://mq.example.org"), "mq.example.org:5671");
        assert_eq!(node("amqp://u:p@[::1]:5680/%2f"), "[::1]:5680");
        assert_eq!(node("amqp://[::1]/%2f"), "[::1]:5672");
    }

    #[test]
    fn a_fleet_starts_at_a_random_address_within_the_list() {
        let amqp = AmqpConfig {
            url: Secret::new("amqp://a:1@n1/%2f,amqp://a:1@n2/%2f"),
            ..AmqpConfig::default()
        };
        for _ in 0..20 {
            let b = Brokers::from_config(&amqp);
            assert_eq!(b.len(), 2);
            assert!(b.round()[0] < 2);
        }
    }
}
