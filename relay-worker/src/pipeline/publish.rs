//! Publishing with confirms: the site's one publish channel (so confirms can
//! never be matched to the wrong message), the messages awaiting their
//! confirm, and what each confirm means for its delivery.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use relay_contract::routing::EVENTS_EXCHANGE;
use relay_contract::{Envelope, EventTime, EventType, SiteId};
use tokio::sync::OwnedSemaphorePermit;

use super::decide::Outcome;
use crate::failure::Failure;
use crate::metrics::{self, SiteMetrics};
use crate::properties;

/// Where a message was published, awaiting the broker's confirm.
#[derive(Debug)]
pub enum Stage {
    Downstream {
        event_type: EventType,
        time: EventTime,
    },
    Retry {
        failure: Failure,
        attempt: u32,
        queue: String,
    },
    DeadLetter {
        failure: Failure,
    },
    Conflict {
        failure: Failure,
    },
}

impl Stage {
    /// Counts and logs what the broker's answer means for this stage.
    pub fn record(
        &self,
        metrics: &SiteMetrics,
        site: &SiteId,
        delivery: &Delivery,
        answer: Answer,
    ) {
        let site = site.as_str();
        match (self, answer) {
            (Stage::Downstream { event_type, time }, Answer::Accepted) => {
                let lag = time
                    .timestamp()
                    .ok()
                    .map(|t| jiff::Timestamp::now().duration_since(t).as_secs_f64());
                metrics.published(*event_type, lag);
            }
            (
                Stage::Retry {
                    failure,
                    attempt,
                    queue,
                },
                Answer::Accepted,
            ) => {
                metrics::retried(site, failure, *attempt, queue);
            }
            (Stage::DeadLetter { failure }, Answer::Accepted) => {
                let id = delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|s| s.as_str());
                metrics::dead_lettered(site, failure, id);
            }
            (Stage::Conflict { failure }, Answer::Accepted) => metrics::conflict(site, failure),
            (Stage::Downstream { .. }, Answer::Returned) => {
                metrics::unroutable(site, delivery.routing_key.as_str());
            }
            // Counted as a retry or a dead letter once parked.
            (Stage::Downstream { .. }, Answer::Refused) => {}
            (_, Answer::Returned) => metrics::park_refused(site, "unroutable"),
            (_, Answer::Refused) => metrics::park_refused(site, "nacked"),
        }
    }
}

/// A delivery whose message is published, with the permit that counts it
/// against `max_in_flight`.
#[derive(Debug)]
pub struct InFlight {
    pub delivery: Delivery,
    pub stage: Stage,
    pub permit: OwnedSemaphorePermit,
}

/// Where and how to publish a delivery's message.
#[derive(Debug)]
pub struct Target {
    pub exchange: &'static str,
    /// `None`: the routing key the delivery came with.
    pub routing_key: Option<String>,
    /// `None`: the delivery's own bytes.
    pub body: Option<Vec<u8>>,
    pub properties: BasicProperties,
}

/// The broker's answer to one published message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// It took responsibility for the message.
    Accepted,
    /// No queue was bound for its routing key (`mandatory`).
    Returned,
    /// It refused it (a negative confirm).
    Refused,
}

impl Answer {
    pub fn of(confirmation: &Confirmation) -> Answer {
        match confirmation {
            Confirmation::Ack(None) | Confirmation::NotRequested => Answer::Accepted,
            Confirmation::Ack(Some(_)) | Confirmation::Nack(Some(_)) => Answer::Returned,
            Confirmation::Nack(None) => Answer::Refused,
        }
    }
}

type Confirming =
    FuturesUnordered<Pin<Box<dyn Future<Output = (InFlight, lapin::Result<Confirmation>)> + Send>>>;

/// The site's publishing side of one connection: a channel only while the
/// site consumes, so a worker's channels grow with the sites it holds, not
/// with the sites configured.
pub struct Publisher {
    connection: Arc<Connection>,
    channel: Option<Channel>,
    confirming: Confirming,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("confirming", &self.confirming.len())
            .finish()
    }
}

impl Publisher {
    /// The site's publisher on `connection`, without a channel yet.
    pub fn new(connection: Arc<Connection>) -> Self {
        Publisher {
            connection,
            channel: None,
            confirming: FuturesUnordered::new(),
        }
    }

    /// Opens a channel of its own, in confirm mode.
    pub async fn open(&mut self) -> lapin::Result<()> {
        let channel = self.connection.create_channel().await?;
        // Publisher confirms: the broker tells us when it has taken responsibility.
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        self.channel = Some(channel);
        Ok(())
    }

    /// Publishes `delivery`'s message to `target`; the broker's answer comes
    /// out of [`Self::next`].
    pub async fn send(
        &mut self,
        target: Target,
        delivery: Delivery,
        stage: Stage,
        permit: OwnedSemaphorePermit,
    ) -> lapin::Result<()> {
        // Mandatory: an unroutable message comes back instead of vanishing.
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let routing_key = target
            .routing_key
            .as_deref()
            .unwrap_or(delivery.routing_key.as_str());
        let body = target.body.as_deref().unwrap_or(&delivery.data);
        let Some(channel) = self.channel.as_ref() else {
            return Err(lapin::Error::from(lapin::ErrorKind::InvalidChannelState(
                lapin::ChannelState::Closed,
                "publishing while the site holds no channel",
            )));
        };
        let confirm = channel
            .basic_publish(
                target.exchange.into(),
                routing_key.into(),
                options,
                body,
                target.properties,
            )
            .await?;
        let item = InFlight {
            delivery,
            stage,
            permit,
        };
        self.confirming.push(Box::pin(async move {
            let confirmation = confirm.await;
            (item, confirmation)
        }));
        Ok(())
    }

    /// The next confirmed message; never resolves when none is awaited.
    pub async fn next(&mut self) -> (InFlight, lapin::Result<Confirmation>) {
        match self.confirming.next().await {
            Some(confirmed) => confirmed,
            None => std::future::pending().await,
        }
    }

    /// Messages awaiting their confirm.
    pub fn len(&self) -> usize {
        self.confirming.len()
    }

    pub fn is_empty(&self) -> bool {
        self.confirming.is_empty()
    }

    /// Closes the channel (only once nothing awaits a confirm, or on the way out).
    pub async fn close(&mut self) {
        if let Some(channel) = self.channel.take() {
            let _ = channel
                .close(200, "relay-worker: site given back".into())
                .await;
        }
    }
}

/// Where a checked event goes: `moodle.events`, with the routing key it came
/// with ([`super::check`] proved it is the one the event implies) and the
/// contract's properties; `body` if it was enriched, else the delivery's bytes.
pub fn downstream(
    envelope: Envelope,
    delivery: &Delivery,
    body: Option<Vec<u8>>,
) -> (Target, Stage) {
    let target = Target {
        exchange: EVENTS_EXCHANGE,
        routing_key: None,
        body,
        properties: properties::downstream(&envelope, &delivery.properties, now_s()),
    };
    let stage = Stage::Downstream {
        event_type: envelope.event_type,
        time: envelope.time,
    };
    (target, stage)
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What the broker's answer to a published message means for its delivery.
pub fn outcome(stage: &Stage, routing_key: &str, answer: Answer) -> Outcome {
    match (stage, answer) {
        (_, Answer::Accepted) => Outcome::Confirmed,
        (Stage::Downstream { .. }, Answer::Returned) => {
            Outcome::Failed(Failure::unroutable(routing_key))
        }
        (Stage::Downstream { .. }, Answer::Refused) => {
            Outcome::Failed(Failure::nacked(EVENTS_EXCHANGE))
        }
        (Stage::Retry { .. } | Stage::DeadLetter { .. } | Stage::Conflict { .. }, _) => {
            Outcome::ParkRefused
        }
    }
}
