//! One site's pipeline: consume from `relay.ingest.<site>`, validate, publish to
//! `moodle.events` with a confirm, and ack the input only once the broker has
//! confirmed where the event went (downstream, a delay queue, or the DLQ).
//!
//! All publishing happens in this one task, in delivery order, so the events of
//! a subject leave in the order they came and confirms can never be matched to
//! the wrong message. Only the waits for confirms (and Moodle lookups) run
//! concurrently. This file is the loop and its consumer; what happens to each
//! delivery is in `site/delivery.rs`.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesOrdered, FuturesUnordered, StreamExt};
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicNackOptions};
use lapin::{BasicProperties, Channel, Consumer, message::Delivery};
use lapin::{Confirmation, PublisherConfirm};
use relay_contract::{Envelope, EventTime, EventType, SiteId, Validator};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::acks::Acks;
use crate::failure::Failure;
use crate::metrics;
use crate::moodle::site::{CallError, MoodleSite};
use crate::site_moodle::{Enriched, PauseReason, Paused};
use crate::topology::RetryStep;

mod delivery;

/// Where a message was published, awaiting the broker's confirm.
#[derive(Debug)]
enum Stage {
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

/// A delivery on its way, with the permit that counts it against `max_in_flight`.
struct InFlight {
    delivery: Delivery,
    stage: Stage,
    _permit: OwnedSemaphorePermit,
}

type Enriching = FuturesOrdered<Pin<Box<dyn Future<Output = Enriched> + Send>>>;
type Probe = Pin<Box<dyn Future<Output = Result<serde_json::Value, CallError>> + Send>>;

type Pending =
    FuturesUnordered<Pin<Box<dyn Future<Output = (InFlight, lapin::Result<Confirmation>)> + Send>>>;

/// What the site needs, shared by every connection attempt.
#[derive(Debug, Clone)]
pub struct SiteContext {
    pub site: SiteId,
    pub validator: Arc<Validator>,
    pub retry_steps: Arc<Vec<RetryStep>>,
    /// Global bound on events in flight across all sites.
    pub in_flight: Arc<Semaphore>,
    pub shutdown_grace: Duration,
    /// The site's Moodle; `None` relays events as they are.
    pub moodle: Option<Arc<MoodleSite>>,
    /// Time between probes while paused for an auth failure.
    pub auth_probe_interval: Duration,
    pub metrics: metrics::SiteMetrics,
}

/// Finished deliveries are acked in one frame once this many are waiting (or
/// sooner, when the pipeline goes idle or the ack timer fires).
const ACK_BATCH: usize = 64;
/// Longest a finished delivery waits for its ack.
const ACK_INTERVAL: Duration = Duration::from_millis(20);

/// One connection's worth of a site's pipeline.
#[derive(Debug)]
pub struct SitePipeline {
    ctx: SiteContext,
    consumer: Consumer,
    consume_channel: Channel,
    publish_channel: Channel,
    acks: Acks,
    /// Set when a failure asks for the site to pause; acted on by the loop.
    pause_request: Option<(PauseReason, Instant)>,
}

impl SitePipeline {
    /// `publish_channel` must be in confirm mode and used by nothing else.
    pub fn new(
        ctx: SiteContext,
        consumer: Consumer,
        consume_channel: Channel,
        publish_channel: Channel,
    ) -> Self {
        SitePipeline {
            ctx,
            consumer,
            consume_channel,
            publish_channel,
            acks: Acks::default(),
            pause_request: None,
        }
    }

    /// Runs until `stop` turns true (then drains within the grace period) or the
    /// broker connection fails (then returns the error; unacked deliveries go
    /// back to the queue and are redelivered after reconnecting).
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> lapin::Result<()> {
        let mut pending: Pending = FuturesUnordered::new();
        let mut enriching: Enriching = FuturesOrdered::new();
        let mut permit: Option<OwnedSemaphorePermit> = None;
        // Taking new deliveries (false while paused or stopping).
        let mut taking = true;
        let mut stopping = false;
        // After a pause cancelled the consumer: deliveries it still yields go back.
        let mut draining_old = false;
        let mut paused: Option<Paused> = None;
        let mut probe: Option<Probe> = None;
        let mut deadline: Option<Instant> = None;
        let site = self.ctx.site.to_string();
        let mut ack_timer = tokio::time::interval(ACK_INTERVAL);
        ack_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if stopping && pending.is_empty() && enriching.is_empty() {
                break;
            }
            if let Some((reason, retry_at)) = self.pause_request.take()
                && !stopping
            {
                if taking {
                    self.stop_consuming().await;
                    taking = false;
                    draining_old = true;
                    permit = None;
                }
                match paused.as_mut() {
                    Some(p) => p.next_probe = p.next_probe.min(retry_at),
                    None => paused = Some(Paused::start(&site, reason, retry_at)),
                }
            }
            let grace_over = until(deadline);
            let probe_due = until(paused.as_ref().map(|p| p.next_probe));
            tokio::select! {
                biased;
                Some((item, confirmation)) = pending.next() => {
                    self.settle(item, confirmation, &mut pending).await?;
                    if pending.is_empty() || self.acks.waiting() >= ACK_BATCH {
                        self.flush_acks().await?;
                    }
                    self.ctx.metrics.in_flight(pending.len() + enriching.len());
                }
                Some(done) = enriching.next() => {
                    self.enriched(done, &mut pending).await?;
                }
                _ = ack_timer.tick(), if self.acks.waiting() > 0 => self.flush_acks().await?,
                changed = stop.changed(), if !stopping => {
                    if changed.is_err() || *stop.borrow() {
                        stopping = true;
                        deadline = Some(Instant::now() + self.ctx.shutdown_grace);
                        if taking {
                            self.stop_consuming().await;
                        }
                        taking = false;
                        permit = None;
                        paused = None;
                        probe = None;
                    }
                }
                () = grace_over => {
                    tracing::warn!(site, unfinished = pending.len() + enriching.len(),
                        "shutdown grace period over; unfinished events return to the queue");
                    break;
                }
                result = async { match probe.as_mut() { Some(p) => p.await, None => std::future::pending().await } },
                    if probe.is_some() => {
                    probe = None;
                    if let Some(p) = paused.as_mut() {
                        match p.probed(&site, result, self.ctx.auth_probe_interval) {
                            true if !draining_old => {
                                paused = None;
                                self.resume_consuming().await?;
                                taking = true;
                            }
                            true => p.next_probe = Instant::now() + Duration::from_millis(100),
                            false => {}
                        }
                    }
                }
                () = probe_due, if paused.is_some() && probe.is_none() && !stopping => {
                    if let Some(moodle) = self.ctx.moodle.clone() {
                        probe = Some(Box::pin(async move { moodle.probe().await }));
                    }
                    if let Some(p) = paused.as_mut() {
                        p.next_probe = Instant::now() + self.ctx.auth_probe_interval;
                    }
                }
                acquired = self.ctx.in_flight.clone().acquire_owned(), if taking && permit.is_none() => {
                    // Closed only if the worker is going away.
                    permit = acquired.ok();
                }
                next = self.consumer.next(), if (taking && permit.is_some()) || draining_old => match next {
                    Some(Ok(delivery)) if !taking => {
                        // Delivered before the pause took effect: back to the queue.
                        self.acks.received(delivery.delivery_tag);
                        self.requeue(&delivery).await?;
                    }
                    Some(Ok(delivery)) => {
                        let Some(p) = permit.take() else { continue };
                        self.ctx.metrics.consumed();
                        self.start(delivery, p, &mut pending, &mut enriching).await?;
                        self.ctx.metrics.in_flight(pending.len() + enriching.len());
                    }
                    Some(Err(e)) => return Err(e),
                    None if draining_old => draining_old = false,
                    None => {
                        tracing::warn!(site, "the broker ended the consumer");
                        return Err(lapin::Error::from(lapin::ErrorKind::InvalidChannelState(
                            lapin::ChannelState::Closed,
                            "consumer ended",
                        )));
                    }
                },
            }
        }
        if paused.is_some() {
            Paused::end(&site);
        }
        self.close().await;
        Ok(())
    }

    /// Acks every finished delivery that can be, in one frame.
    async fn flush_acks(&mut self) -> lapin::Result<()> {
        if let Some(tag) = self.acks.take() {
            let options = BasicAckOptions { multiple: true };
            self.consume_channel.basic_ack(tag, options).await?;
        }
        Ok(())
    }

    /// Returns one delivery to its queue (counted towards its delivery limit).
    async fn requeue(&mut self, delivery: &Delivery) -> lapin::Result<()> {
        self.acks.forget(delivery.delivery_tag);
        let options = BasicNackOptions {
            requeue: true,
            multiple: false,
        };
        self.consume_channel
            .basic_nack(delivery.delivery_tag, options)
            .await
    }

    /// Starts taking deliveries again after a pause, with a new consumer.
    async fn resume_consuming(&mut self) -> lapin::Result<()> {
        let tag = format!(
            "relay-worker.{}.{}.{}",
            self.ctx.site,
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        );
        self.consumer = self
            .consume_channel
            .basic_consume(
                self.consumer.queue(),
                tag.into(),
                lapin::options::BasicConsumeOptions::default(),
                lapin::types::FieldTable::default(),
            )
            .await?;
        Ok(())
    }

    /// Stops new deliveries; those already received are still finished.
    async fn stop_consuming(&self) {
        let tag = self.consumer.tag();
        if let Err(e) = self
            .consume_channel
            .basic_cancel(tag, BasicCancelOptions::default())
            .await
        {
            tracing::warn!(site = %self.ctx.site, error = %e, "cancelling the consumer failed");
        }
    }

    /// Closes the consume channel (returning unacked deliveries), then the
    /// publish channel. The connection is closed by the caller, after.
    async fn close(&mut self) {
        // Acks first, then channels: acks not sent when a channel closes are lost.
        if let Err(e) = self.flush_acks().await {
            tracing::warn!(site = %self.ctx.site, error = %e,
                "final acks failed; those events will be redelivered");
        }
        for channel in [&self.consume_channel, &self.publish_channel] {
            let _ = channel.close(200, "relay-worker stopping".into()).await;
        }
    }
}

/// The publisher must say what it sent: the event id as `message_id` (brokers and
/// consumers deduplicate on it) and the CloudEvents content type.
fn check_properties(props: &BasicProperties, envelope: &Envelope) -> Result<(), Failure> {
    let id = envelope.id.to_string();
    match props.message_id().as_ref().map(|m| m.as_str()) {
        None => {
            return Err(Failure::bad_properties(
                "message_id is missing; it must be the event id",
            ));
        }
        Some(m) if m != id => {
            return Err(Failure::bad_properties(format!(
                "message_id {m:?} is not the event id {id:?}"
            )));
        }
        Some(_) => {}
    }
    match props.content_type().as_ref().map(|c| c.as_str()) {
        Some(relay_contract::CLOUDEVENTS_CONTENT_TYPE) => Ok(()),
        Some(other) => Err(Failure::bad_properties(format!(
            "content_type {other:?} is not {:?}",
            relay_contract::CLOUDEVENTS_CONTENT_TYPE
        ))),
        None => Err(Failure::bad_properties(format!(
            "content_type is missing; it must be {:?}",
            relay_contract::CLOUDEVENTS_CONTENT_TYPE
        ))),
    }
}

/// Resolves at `at`, or never.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Waits for `confirm` alongside the others, keeping the delivery for its settling.
fn push(
    pending: &mut Pending,
    delivery: Delivery,
    stage: Stage,
    permit: OwnedSemaphorePermit,
    confirm: PublisherConfirm,
) {
    let item = InFlight {
        delivery,
        stage,
        _permit: permit,
    };
    pending.push(Box::pin(async move {
        let confirmation = confirm.await;
        (item, confirmation)
    }));
}

/// One of a retry step's delay queues, at random, to spread retries.
fn pick(queues: &[String]) -> &str {
    let n = uuid::Uuid::new_v4().as_u128() as usize;
    queues
        .get(n % queues.len().max(1))
        .map_or("", String::as_str)
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
