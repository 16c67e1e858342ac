//! The broker objects the relay needs, declared idempotently at start and
//! exported as RabbitMQ definitions (`deploy/rabbitmq/definitions.json`).
//!
//! ```text
//! moodle.ingest (topic) --<site>.#--> relay.ingest.<site> (quorum, single active consumer)
//! relay.requeue (topic) --<site>.#--^        | delivery limit reached (poison)
//!                                            +--> "" / relay.dlq
//! relay.retry (headers, x-relay-retry-queue=<q>) --> relay.retry.<ms>ms (quorum, TTL)
//!                                            +--> TTL expired --> relay.requeue
//! moodle.events (topic) --> queues downstream systems declare and bind
//! relay.dlq (quorum) <-- worker dead-letters; dlq-replayer reads
//! relay.fleet (fanout) --> one exclusive queue per running worker (announcements)
//! ```
//!
//! Every queue argument is explicit: RabbitMQ 3.10 and 4.x have different
//! defaults (4.x adds a delivery limit of 20 to quorum queues), and a relay
//! must behave the same on both.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ExchangeKind};
use relay_contract::SiteId;
use relay_contract::routing::{
    DLQ_QUEUE, EVENTS_EXCHANGE, FLEET_EXCHANGE, INGEST_EXCHANGE, REQUEUE_EXCHANGE, RETRY_EXCHANGE,
    RETRY_QUEUE_HEADER, ingest_queue, retry_queue,
};

use crate::config::Config;

/// Number of delay queues per retry step: the step's delay, stretched by
/// 0, ½ and all of `retry.jitter`. Queues with a fixed TTL never block each
/// other, unlike per-message expiry, which only expires at a queue's head.
const JITTER_STEPS: u64 = 3;

/// How often a DLQ message can be looked at (and returned) before the broker
/// would drop it.
pub const DLQ_DELIVERY_LIMIT: i64 = 1_000_000;

/// Why the topology could not be declared.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error(
        "{kind} {name:?} already exists with different settings: {reason}. \
         Delete it (after moving its messages) or align the relay's configuration"
    )]
    Conflict {
        kind: &'static str,
        name: String,
        reason: String,
    },
    #[error("declaring {kind} {name:?}: {source}")]
    Broker {
        kind: &'static str,
        name: String,
        source: lapin::Error,
    },
    #[error("declaring {kind} {name:?}: no answer within {} s", limit.as_secs())]
    Slow {
        kind: &'static str,
        name: String,
        limit: Duration,
    },
}

/// An exchange to declare.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    pub name: String,
    pub kind: &'static str,
}

/// A queue to declare, with its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    pub name: String,
    pub arguments: Vec<(&'static str, Arg)>,
}

/// A queue argument's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Str(String),
    Int(i64),
    Bool(bool),
}

/// A binding of a queue to an exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub exchange: String,
    pub queue: String,
    pub routing_key: String,
    pub headers: Vec<(&'static str, String)>,
}

/// Everything the relay declares, derived from its configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub exchanges: Vec<Exchange>,
    pub queues: Vec<Queue>,
    pub bindings: Vec<Binding>,
    /// Longest wait for the broker's answer to one declaration
    /// (`amqp.connect_timeout_s`).
    pub step_limit: Duration,
}

/// A retry step's delay queues, shortest first.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryStep {
    pub queues: Vec<String>,
}

fn s(value: &str) -> Arg {
    Arg::Str(value.to_owned())
}

/// The delay queues of each retry step, in `retry.delays_s` order.
pub fn retry_steps(config: &Config) -> Vec<RetryStep> {
    let steps = if config.retry.jitter > 0.0 {
        JITTER_STEPS
    } else {
        1
    };
    config
        .retry
        .delays_s
        .iter()
        .map(|&delay_s| {
            let base = delay_s as f64 * 1000.0;
            let mut queues: Vec<String> = (0..steps)
                .map(|k| {
                    let stretch = if steps > 1 {
                        k as f64 / (steps - 1) as f64
                    } else {
                        0.0
                    };
                    retry_queue((base * (1.0 + config.retry.jitter * stretch)).round() as u64)
                })
                .collect();
            queues.dedup();
            RetryStep { queues }
        })
        .collect()
}

/// TTL in ms encoded in a delay queue's name by [`retry_queue`].
fn ttl_of(queue: &str) -> i64 {
    queue
        .trim_start_matches("relay.retry.")
        .trim_end_matches("ms")
        .parse()
        .unwrap_or(0)
}

impl Topology {
    pub fn for_config(config: &Config) -> Topology {
        let exchange = |name: &str, kind| Exchange {
            name: name.to_owned(),
            kind,
        };
        let exchanges = vec![
            exchange(INGEST_EXCHANGE, "topic"),
            exchange(EVENTS_EXCHANGE, "topic"),
            exchange(RETRY_EXCHANGE, "headers"),
            exchange(REQUEUE_EXCHANGE, "topic"),
            // Fleet members' announcements; each worker binds a queue of its own.
            exchange(FLEET_EXCHANGE, "fanout"),
        ];
        let mut queues = Vec::new();
        let mut bindings = Vec::new();
        for site in &config.sites {
            queues.push(ingest_queue_spec(&site.id, config.amqp.delivery_limit));
            for source in [INGEST_EXCHANGE, REQUEUE_EXCHANGE] {
                bindings.push(Binding {
                    exchange: source.to_owned(),
                    queue: ingest_queue(&site.id),
                    routing_key: format!("{}.#", site.id),
                    headers: Vec::new(),
                });
            }
        }
        let mut delay_queues: Vec<String> = retry_steps(config)
            .into_iter()
            .flat_map(|step| step.queues)
            .collect();
        delay_queues.sort_by_key(|q| ttl_of(q));
        delay_queues.dedup();
        for name in delay_queues {
            queues.push(Queue {
                arguments: vec![
                    ("x-queue-type", s("quorum")),
                    ("x-message-ttl", Arg::Int(ttl_of(&name))),
                    // When the wait is over, back to the site's ingest queue.
                    ("x-dead-letter-exchange", s(REQUEUE_EXCHANGE)),
                    // Quorum queues can dead-letter at least once (no loss if the
                    // broker fails mid-way); that mode needs reject-publish.
                    ("x-dead-letter-strategy", s("at-least-once")),
                    ("x-overflow", s("reject-publish")),
                ],
                name: name.clone(),
            });
            bindings.push(Binding {
                exchange: RETRY_EXCHANGE.to_owned(),
                queue: name.clone(),
                routing_key: String::new(),
                headers: vec![("x-match", "all".to_owned()), (RETRY_QUEUE_HEADER, name)],
            });
        }
        queues.push(Queue {
            name: DLQ_QUEUE.to_owned(),
            arguments: vec![
                ("x-queue-type", s("quorum")),
                // Kept until an operator acts: no TTL, no length limit, and no
                // dead-lettering. Inspecting a message returns it to the queue,
                // which counts as a delivery: RabbitMQ 4.x would drop it after its
                // default limit of 20, so the limit is set explicitly, and high.
                ("x-delivery-limit", Arg::Int(DLQ_DELIVERY_LIMIT)),
            ],
        });
        Topology {
            exchanges,
            queues,
            bindings,
            step_limit: Duration::from_secs(config.amqp.connect_timeout_s),
        }
    }

    /// Declares everything; safe to repeat. A queue that exists with other
    /// arguments is reported by name with the broker's explanation.
    ///
    /// Each step waits at most `step_limit` for the broker, so a broker that
    /// stopped answering is noticed quickly while declaring a thousand sites
    /// (each a quorum queue, some tens of milliseconds) may take as long as it
    /// needs.
    pub async fn declare(&self, connection: &Connection) -> Result<(), TopologyError> {
        let channel = self
            .bounded(
                "channel",
                "topology",
                open(connection, "channel", "topology"),
            )
            .await??;
        for e in &self.exchanges {
            let kind = match e.kind {
                "headers" => ExchangeKind::Headers,
                "fanout" => ExchangeKind::Fanout,
                _ => ExchangeKind::Topic,
            };
            // Durable: the topology must survive a broker restart.
            let options = ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            };
            let declared = channel.exchange_declare(
                e.name.as_str().into(),
                kind,
                options,
                FieldTable::default(),
            );
            let result = self.bounded("exchange", &e.name, declared).await?;
            check(result, "exchange", &e.name)?;
        }
        for q in &self.queues {
            // Durable and never auto-deleted: queues hold events between restarts.
            let options = QueueDeclareOptions {
                durable: true,
                ..Default::default()
            };
            let declared =
                channel.queue_declare(q.name.as_str().into(), options, field_table(&q.arguments));
            let result = self.bounded("queue", &q.name, declared).await?;
            check(result.map(|_| ()), "queue", &q.name)?;
        }
        for b in &self.bindings {
            let headers: Vec<(&str, Arg)> = b
                .headers
                .iter()
                .map(|(k, v)| (*k, Arg::Str(v.clone())))
                .collect();
            let bound = channel.queue_bind(
                b.queue.as_str().into(),
                b.exchange.as_str().into(),
                b.routing_key.as_str().into(),
                QueueBindOptions::default(),
                field_table(&headers),
            );
            self.bounded("binding of", &b.queue, bound)
                .await?
                .map_err(|source| TopologyError::Broker {
                    kind: "binding of",
                    name: b.queue.clone(),
                    source,
                })?;
        }
        let _ = channel.close(200, "topology declared".into()).await;
        Ok(())
    }

    /// `step`, unless the broker takes longer than `step_limit` to answer.
    async fn bounded<T>(
        &self,
        kind: &'static str,
        name: &str,
        step: impl Future<Output = T>,
    ) -> Result<T, TopologyError> {
        tokio::time::timeout(self.step_limit, step)
            .await
            .map_err(|_| TopologyError::Slow {
                kind,
                name: name.to_owned(),
                limit: self.step_limit,
            })
    }
}

/// The per-site ingest queue.
fn ingest_queue_spec(site: &SiteId, delivery_limit: u32) -> Queue {
    Queue {
        name: ingest_queue(site),
        arguments: vec![
            // Replicated and durable; the only type with a delivery limit.
            ("x-queue-type", s("quorum")),
            // One worker at a time per site: keeps per-site order and makes the
            // per-site Moodle throttle fleet-wide.
            ("x-single-active-consumer", Arg::Bool(true)),
            // A message that keeps coming back unsettled (it crashes workers) is
            // poison: after this many deliveries the broker dead-letters it.
            ("x-delivery-limit", Arg::Int(i64::from(delivery_limit))),
            ("x-dead-letter-exchange", s("")),
            ("x-dead-letter-routing-key", s(DLQ_QUEUE)),
            ("x-dead-letter-strategy", s("at-least-once")),
            ("x-overflow", s("reject-publish")),
        ],
    }
}

fn field_table(args: &[(&str, Arg)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in args {
        let value = match value {
            Arg::Str(s) => AMQPValue::LongString(LongString::from(s.as_str())),
            Arg::Int(i) => AMQPValue::LongLongInt(*i),
            Arg::Bool(b) => AMQPValue::Boolean(*b),
        };
        table.insert(ShortString::from(*key), value);
    }
    table
}

async fn open(
    connection: &Connection,
    kind: &'static str,
    name: &str,
) -> Result<Channel, TopologyError> {
    connection
        .create_channel()
        .await
        .map_err(|source| TopologyError::Broker {
            kind,
            name: name.to_owned(),
            source,
        })
}

/// Names the object a refused declaration was about. The broker closes the
/// channel after a refusal, so declaring stops at the first one.
fn check(result: lapin::Result<()>, kind: &'static str, name: &str) -> Result<(), TopologyError> {
    result.map_err(|source| match precondition_failed(&source) {
        Some(reason) => TopologyError::Conflict {
            kind,
            name: name.to_owned(),
            reason,
        },
        None => TopologyError::Broker {
            kind,
            name: name.to_owned(),
            source,
        },
    })
}

/// The broker's explanation when it refused a declaration as inequivalent
/// (406 PRECONDITION_FAILED), e.g. "inequivalent arg 'x-queue-type' ...".
fn precondition_failed(error: &lapin::Error) -> Option<String> {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    match error.kind() {
        lapin::ErrorKind::ProtocolError(e)
            if *e.kind() == AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED) =>
        {
            Some(e.get_message().to_string())
        }
        _ => None,
    }
}

mod definitions;
#[cfg(test)]
mod tests;
