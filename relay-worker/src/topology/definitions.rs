//! The topology as RabbitMQ definitions, shipped as
//! `deploy/rabbitmq/definitions.json` (a test checks it is current), with
//! the permissions of the relay's least-privilege broker users.
//!
//! The users themselves are not in the definitions: they need passwords,
//! which are never committed. `deploy/rabbitmq/import.sh` adds them, with
//! passwords read from files or the environment, and rewrites the vhost.
//!
//! RabbitMQ checks three regular expressions per user and vhost, matched
//! against the name of the queue or exchange an operation touches:
//!
//! | operation | needs |
//! |---|---|
//! | declare (not passive) or delete a queue or exchange | configure on it |
//! | create a queue with `x-dead-letter-exchange` | also read on the queue, write on that exchange |
//! | bind a queue to an exchange | write on the queue, read on the exchange |
//! | publish | write on the exchange (`amq.default` for the default exchange `""`) |
//! | consume, get, purge | read on the queue |
//!
//! Passive declares need no permission. The same name means an exchange or a
//! queue alike: a pattern cannot tell them apart.

use relay_contract::routing::{
    DLQ_QUEUE, EVENTS_EXCHANGE, FLEET_EXCHANGE, INGEST_EXCHANGE, INGEST_QUEUE_PREFIX,
    REQUEUE_EXCHANGE, RETRY_EXCHANGE,
};
use serde_json::{Value, json};

use super::{Arg, Topology};

/// The user the Moodle plugin connects as.
pub const PLUGIN_USER: &str = "relay-plugin";
/// The user every relay-worker of a fleet connects as.
pub const WORKER_USER: &str = "relay-worker";
/// The user operators run dlq-replayer as.
pub const REPLAYER_USER: &str = "relay-replayer";

/// The name RabbitMQ checks permissions against when something is
/// published to the default exchange `""` (how the worker reaches `relay.dlq`,
/// and how dlq-replayer's `import` fills it).
const DEFAULT_EXCHANGE: &str = "amq.default";

/// Queues the broker names (`amq.gen-…`): each worker's fleet queue.
const SERVER_NAMED: &str = r"amq\.gen-.+";

/// What one user may do in the relay's vhost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub user: &'static str,
    /// Declare and delete.
    pub configure: String,
    /// Publish to (exchanges), bind (queues).
    pub write: String,
    /// Consume (queues), bind from (exchanges).
    pub read: String,
}

/// `name` as a regular expression matching only itself.
fn literal(name: &str) -> String {
    let mut escaped = String::with_capacity(name.len());
    for c in name.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// A pattern matching exactly one of `alternatives` (regular expressions);
/// `^$` (nothing a name can be) when there are none.
fn one_of(alternatives: &[String]) -> String {
    if alternatives.is_empty() {
        return "^$".to_owned();
    }
    format!("^({})$", alternatives.join("|"))
}

/// Every site's ingest queue, `relay.ingest.<site>` (site ids as
/// [`relay_contract::SiteId`] allows them).
fn ingest_queues() -> String {
    format!("{}[a-z0-9][a-z0-9-]*", literal(INGEST_QUEUE_PREFIX))
}

/// Every delay queue, `relay.retry.<ms>ms`.
fn delay_queues() -> String {
    format!(r"{}\.[0-9]+ms", literal(RETRY_EXCHANGE))
}

/// The permissions of the relay's users. Name patterns, not the configured
/// sites and delays, so a site or a retry step added later needs no new
/// permissions.
pub fn permissions() -> Vec<Permission> {
    let l = literal;
    let plugin = Permission {
        user: PLUGIN_USER,
        // It only checks that moodle.ingest exists (a passive declare).
        configure: one_of(&[]),
        write: one_of(&[l(INGEST_EXCHANGE)]),
        read: one_of(&[]),
    };
    let worker = Permission {
        user: WORKER_USER,
        // It declares the whole topology at start, and its fleet queue.
        configure: one_of(&[
            l(INGEST_EXCHANGE),
            l(EVENTS_EXCHANGE),
            l(RETRY_EXCHANGE),
            l(REQUEUE_EXCHANGE),
            l(FLEET_EXCHANGE),
            l(DLQ_QUEUE),
            ingest_queues(),
            delay_queues(),
            SERVER_NAMED.to_owned(),
        ]),
        // Publishes events, retries, dead letters (through the default
        // exchange) and announcements; binds its queues; names the dead-letter
        // exchanges of the ingest ("") and delay (relay.requeue) queues.
        write: one_of(&[
            l(EVENTS_EXCHANGE),
            l(RETRY_EXCHANGE),
            l(REQUEUE_EXCHANGE),
            l(FLEET_EXCHANGE),
            l(DEFAULT_EXCHANGE),
            ingest_queues(),
            delay_queues(),
            SERVER_NAMED.to_owned(),
        ]),
        // Consumes the ingest queues and its fleet queue; binds from the
        // exchanges that feed them. Not relay.dlq: that is for operators.
        read: one_of(&[
            l(INGEST_EXCHANGE),
            l(RETRY_EXCHANGE),
            l(REQUEUE_EXCHANGE),
            l(FLEET_EXCHANGE),
            ingest_queues(),
            delay_queues(),
            SERVER_NAMED.to_owned(),
        ]),
    };
    let replayer = Permission {
        user: REPLAYER_USER,
        // Declares nothing: it only looks (passive declares).
        configure: one_of(&[]),
        // A dead letter's original exchange is moodle.ingest, or
        // relay.requeue when it failed after a retry; `import` publishes into
        // relay.dlq through the default exchange.
        write: one_of(&[l(INGEST_EXCHANGE), l(REQUEUE_EXCHANGE), l(DEFAULT_EXCHANGE)]),
        // Lists, replays, exports and purges the DLQ.
        read: one_of(&[l(DLQ_QUEUE)]),
    };
    vec![plugin, worker, replayer]
}

impl Topology {
    /// RabbitMQ definitions (import with `deploy/rabbitmq/import.sh`, which
    /// adds the users and their passwords) for vhost `/`.
    pub fn definitions(&self) -> Value {
        let arguments = |args: &[(&str, Arg)]| -> Value {
            args.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Arg::Str(s) => json!(s),
                        Arg::Int(i) => json!(i),
                        Arg::Bool(b) => json!(b),
                    };
                    ((*k).to_owned(), v)
                })
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        json!({
            "vhosts": [{"name": "/"}],
            "exchanges": self.exchanges.iter().map(|e| json!({
                "name": e.name, "vhost": "/", "type": e.kind,
                "durable": true, "auto_delete": false, "internal": false, "arguments": {}
            })).collect::<Vec<_>>(),
            "queues": self.queues.iter().map(|q| json!({
                "name": q.name, "vhost": "/", "durable": true, "auto_delete": false,
                "arguments": arguments(&q.arguments)
            })).collect::<Vec<_>>(),
            "bindings": self.bindings.iter().map(|b| json!({
                "source": b.exchange, "vhost": "/", "destination": b.queue,
                "destination_type": "queue", "routing_key": b.routing_key,
                "arguments": b.headers.iter().map(|(k, v)| ((*k).to_owned(), json!(v)))
                    .collect::<serde_json::Map<_, _>>()
            })).collect::<Vec<_>>(),
            "permissions": permissions().iter().map(|p| json!({
                "user": p.user, "vhost": "/",
                "configure": p.configure, "write": p.write, "read": p.read
            })).collect::<Vec<_>>(),
        })
    }
}
