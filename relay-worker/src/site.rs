//! One site's pipeline: consume from `relay.ingest.<site>`, validate, publish to
//! `moodle.events` with a confirm, and ack the input only once the broker has
//! confirmed where the event went (downstream, a delay queue, or the DLQ).
//!
//! All publishing happens in this one task, in delivery order, so the events of
//! a subject leave in the order they came and confirms can never be matched to
//! the wrong message. Only the waits for confirms run concurrently.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesOrdered, FuturesUnordered, StreamExt};
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicNackOptions, BasicPublishOptions};
use lapin::{BasicProperties, Channel, Consumer, message::Delivery};
use lapin::{Confirmation, PublisherConfirm};
use relay_contract::routing::{DLQ_QUEUE, EVENTS_EXCHANGE, RETRY_EXCHANGE};
use relay_contract::{Envelope, RoutingKey, SiteId, Validator};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::acks::Acks;
use crate::failure::{Action, Failure, decide};
use crate::metrics;
use crate::moodle::site::{CallError, MoodleSite};
use crate::properties::{self, Origin};
use crate::site_moodle::{Enriched, PauseReason, Paused};
use crate::topology::RetryStep;

/// Where a message was published, awaiting the broker's confirm.
#[derive(Debug)]
enum Stage {
    Downstream {
        envelope: Box<Envelope>,
        routing_key: String,
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
                let paused_now = paused.get_or_insert_with(|| Paused::start(&site, reason));
                paused_now.next_probe = paused_now.next_probe.min(retry_at);
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
                    metrics::in_flight(&site, pending.len() + enriching.len());
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
                        metrics::consumed(&site);
                        self.start(delivery, p, &mut pending, &mut enriching).await?;
                        metrics::in_flight(&site, pending.len() + enriching.len());
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

    /// Validates a new delivery and publishes it downstream, or parks it.
    async fn start(
        &mut self,
        delivery: Delivery,
        permit: OwnedSemaphorePermit,
        pending: &mut Pending,
        enriching: &mut Enriching,
    ) -> lapin::Result<()> {
        self.acks.received(delivery.delivery_tag);
        match self.check(&delivery) {
            Ok(envelope) if self.ctx.moodle.is_some() => {
                // In an ordered queue: published in delivery order once enriched.
                if let Some(moodle) = self.ctx.moodle.clone() {
                    enriching.push_back(Box::pin(Enriched::fetch(
                        moodle, delivery, permit, envelope,
                    )));
                }
                Ok(())
            }
            Ok(envelope) => {
                let routing_key =
                    RoutingKey::new(envelope.moodlesite.clone(), envelope.event_type).to_string();
                let props = properties::downstream(&envelope, &delivery.properties, now_s());
                let confirm = self
                    .publish(EVENTS_EXCHANGE, &routing_key, &delivery.data, props)
                    .await?;
                let stage = Stage::Downstream {
                    envelope: Box::new(envelope),
                    routing_key,
                };
                push(pending, delivery, stage, permit, confirm);
                Ok(())
            }
            Err(failure) => self.park(delivery, failure, permit, pending).await,
        }
    }

    /// Publishes an enriched event, or acts on why its enrichment failed.
    async fn enriched(&mut self, done: Enriched, pending: &mut Pending) -> lapin::Result<()> {
        let Enriched {
            delivery,
            permit,
            envelope,
            result,
        } = done;
        match result {
            Ok(body) => {
                let body = body.unwrap_or_else(|| delivery.data.clone());
                let routing_key =
                    RoutingKey::new(envelope.moodlesite.clone(), envelope.event_type).to_string();
                let props = properties::downstream(&envelope, &delivery.properties, now_s());
                let confirm = self
                    .publish(EVENTS_EXCHANGE, &routing_key, &body, props)
                    .await?;
                let stage = Stage::Downstream {
                    envelope: Box::new(envelope),
                    routing_key,
                };
                push(pending, delivery, stage, permit, confirm);
                Ok(())
            }
            Err(error) => {
                // A struggling Moodle pauses the site rather than burning retries.
                let breaker_open = match &error {
                    CallError::BreakerOpen { retry_at } => Some(*retry_at),
                    CallError::Moodle(_) => self
                        .ctx
                        .moodle
                        .as_ref()
                        .and_then(|m| m.breaker_open_until()),
                };
                match (breaker_open, error) {
                    (Some(retry_at), _) => {
                        self.pause_request = Some((PauseReason::Breaker, retry_at));
                        self.requeue(&delivery).await
                    }
                    (None, CallError::Moodle(e)) => {
                        self.park(delivery, Failure::moodle(&e), permit, pending)
                            .await
                    }
                    (None, CallError::BreakerOpen { retry_at }) => {
                        self.pause_request = Some((PauseReason::Breaker, retry_at));
                        self.requeue(&delivery).await
                    }
                }
            }
        }
    }

    /// Decodes and validates; a valid event must also belong to this site and
    /// carry the routing key its content implies.
    fn check(&self, delivery: &Delivery) -> Result<Envelope, Failure> {
        let envelope = self
            .ctx
            .validator
            .validate_bytes(&delivery.data)
            .map_err(|invalid| Failure::invalid(&invalid))?;
        if envelope.moodlesite != self.ctx.site {
            return Err(Failure::misrouted(format!(
                "event of site {:?} arrived on the queue of site {:?}",
                envelope.moodlesite.as_str(),
                self.ctx.site.as_str()
            )));
        }
        check_properties(&delivery.properties, &envelope)?;
        let expected =
            RoutingKey::new(envelope.moodlesite.clone(), envelope.event_type).to_string();
        if delivery.routing_key.as_str() != expected {
            return Err(Failure::misrouted(format!(
                "routing key {:?} does not match the event, which needs {expected:?}",
                delivery.routing_key.as_str()
            )));
        }
        Ok(envelope)
    }

    /// Sends a failed delivery where [`decide`] says: a delay queue or the DLQ.
    /// The input is acked when that publish is confirmed.
    async fn park(
        &mut self,
        delivery: Delivery,
        failure: Failure,
        permit: OwnedSemaphorePermit,
        pending: &mut Pending,
    ) -> lapin::Result<()> {
        let attempts = properties::attempts(&delivery.properties);
        let origin = Origin {
            site: self.ctx.site.as_str(),
            exchange: delivery.exchange.as_str(),
            routing_key: delivery.routing_key.as_str(),
        };
        let now = jiff::Timestamp::now().to_string();
        match decide(failure.class, attempts, self.ctx.retry_steps.len()) {
            Action::Retry { step } => {
                let queue = pick(&self.ctx.retry_steps[step].queues).to_owned();
                let props = properties::failed(
                    &delivery.properties,
                    &failure,
                    &origin,
                    attempts + 1,
                    Some(&queue),
                    &now,
                );
                let key = delivery.routing_key.to_string();
                let confirm = self
                    .publish(RETRY_EXCHANGE, &key, &delivery.data, props)
                    .await?;
                let stage = Stage::Retry {
                    failure,
                    attempt: attempts + 1,
                    queue,
                };
                push(pending, delivery, stage, permit, confirm);
            }
            Action::DeadLetter => {
                let props = properties::failed(
                    &delivery.properties,
                    &failure,
                    &origin,
                    attempts,
                    None,
                    &now,
                );
                let confirm = self.publish("", DLQ_QUEUE, &delivery.data, props).await?;
                push(
                    pending,
                    delivery,
                    Stage::DeadLetter { failure },
                    permit,
                    confirm,
                );
            }
            Action::PauseSite => {
                // The token or the service is refused: nothing is wrong with the
                // event. Back to the queue, and the whole site stops.
                let next_probe = Instant::now() + self.ctx.auth_probe_interval;
                self.pause_request = Some((PauseReason::Auth(failure.code.clone()), next_probe));
                self.requeue(&delivery).await?;
            }
            Action::RecordConflict => {
                let key = relay_contract::routing::conflict_key(&self.ctx.site, &failure.code);
                let props = properties::failed(
                    &delivery.properties,
                    &failure,
                    &origin,
                    attempts,
                    None,
                    &now,
                );
                let confirm = self
                    .publish(EVENTS_EXCHANGE, &key, &delivery.data, props)
                    .await?;
                push(
                    pending,
                    delivery,
                    Stage::Conflict { failure },
                    permit,
                    confirm,
                );
            }
        }
        Ok(())
    }

    /// Acts on the broker's answer for one published message.
    async fn settle(
        &mut self,
        item: InFlight,
        confirmation: lapin::Result<Confirmation>,
        pending: &mut Pending,
    ) -> lapin::Result<()> {
        let site = self.ctx.site.as_str();
        let InFlight {
            delivery,
            stage,
            _permit: permit,
        } = item;
        let confirmation = confirmation?;
        let returned = matches!(
            &confirmation,
            Confirmation::Ack(Some(_)) | Confirmation::Nack(Some(_))
        );
        let accepted = matches!(
            &confirmation,
            Confirmation::Ack(None) | Confirmation::NotRequested
        );
        match stage {
            Stage::Downstream {
                envelope,
                routing_key,
            } => {
                if accepted {
                    self.acks.finished(delivery.delivery_tag);
                    let lag = envelope
                        .time
                        .timestamp()
                        .ok()
                        .map(|t| jiff::Timestamp::now().duration_since(t).as_secs_f64());
                    metrics::published(site, envelope.event_type.as_str(), lag);
                    return Ok(());
                }
                let failure = if returned {
                    metrics::unroutable(site, &routing_key);
                    Failure::unroutable(&routing_key)
                } else {
                    Failure::nacked(EVENTS_EXCHANGE)
                };
                self.park(delivery, failure, permit, pending).await
            }
            Stage::Retry {
                failure,
                attempt,
                queue,
            } if accepted => {
                metrics::retried(site, &failure, attempt, &queue);
                self.acks.finished(delivery.delivery_tag);
                Ok(())
            }
            Stage::DeadLetter { failure } if accepted => {
                let id = delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|s| s.to_string());
                metrics::dead_lettered(site, &failure, id.as_deref());
                self.acks.finished(delivery.delivery_tag);
                Ok(())
            }
            Stage::Conflict { failure } if accepted => {
                metrics::conflict(site, &failure);
                self.acks.finished(delivery.delivery_tag);
                Ok(())
            }
            Stage::Retry { .. } | Stage::DeadLetter { .. } | Stage::Conflict { .. } => {
                // The broker would not take it; it stays ours. Back to the queue:
                // the delivery limit stops this from looping forever.
                metrics::park_refused(site, if returned { "unroutable" } else { "nacked" });
                self.requeue(&delivery).await
            }
        }
    }

    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
    ) -> lapin::Result<PublisherConfirm> {
        // Mandatory: an unroutable message comes back instead of vanishing.
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        self.publish_channel
            .basic_publish(exchange.into(), routing_key.into(), options, body, props)
            .await
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
