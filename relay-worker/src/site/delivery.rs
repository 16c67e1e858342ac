//! What happens to each delivery of a site: validation, publishing downstream
//! (after enrichment when the site has a Moodle), parking a failure in a delay
//! queue, the DLQ or a conflict key, and settling on the broker's confirm.

use lapin::message::Delivery;
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Confirmation, PublisherConfirm};
use relay_contract::routing::{DLQ_QUEUE, EVENTS_EXCHANGE, RETRY_EXCHANGE};
use relay_contract::{Envelope, RoutingKey};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::{
    Enriching, InFlight, Pending, SitePipeline, Stage, check_properties, now_s, pick, push,
};
use crate::failure::{Action, Failure, decide};
use crate::metrics;
use crate::moodle::site::CallError;
use crate::properties::{self, Origin};
use crate::site_moodle::{Enriched, PauseReason};

impl SitePipeline {
    /// Validates a new delivery and publishes it downstream, or parks it.
    pub(super) async fn start(
        &mut self,
        delivery: Delivery,
        permit: OwnedSemaphorePermit,
        pending: &mut Pending,
        enriching: &mut Enriching,
    ) -> lapin::Result<()> {
        self.acks.received(delivery.delivery_tag);
        match (self.check(&delivery), self.ctx.moodle.clone()) {
            (Ok(envelope), Some(moodle)) => {
                // In an ordered queue: published in delivery order once enriched.
                let lookups = Enriched::fetch(moodle, delivery, permit, envelope);
                enriching.push_back(Box::pin(lookups));
                Ok(())
            }
            (Ok(envelope), None) => {
                self.publish_downstream(delivery, permit, envelope, None, pending)
                    .await
            }
            (Err(failure), _) => self.park(delivery, failure, permit, pending).await,
        }
    }

    /// Publishes a valid event to `moodle.events` with the routing key it came
    /// with ([`Self::check`] proved it is the one the event implies): `body` if
    /// it was enriched, else the delivery's own bytes.
    async fn publish_downstream(
        &mut self,
        delivery: Delivery,
        permit: OwnedSemaphorePermit,
        envelope: Envelope,
        body: Option<Vec<u8>>,
        pending: &mut Pending,
    ) -> lapin::Result<()> {
        let props = properties::downstream(&envelope, &delivery.properties, now_s());
        let body = body.as_deref().unwrap_or(&delivery.data);
        let confirm = self
            .publish(EVENTS_EXCHANGE, delivery.routing_key.as_str(), body, props)
            .await?;
        let stage = Stage::Downstream {
            event_type: envelope.event_type,
            time: envelope.time,
        };
        push(pending, delivery, stage, permit, confirm);
        Ok(())
    }

    /// Publishes an enriched event, or acts on why its enrichment failed.
    pub(super) async fn enriched(
        &mut self,
        done: Enriched,
        pending: &mut Pending,
    ) -> lapin::Result<()> {
        let Enriched {
            delivery,
            permit,
            envelope,
            result,
        } = done;
        match result {
            Ok(body) => {
                self.publish_downstream(delivery, permit, envelope, body, pending)
                    .await
            }
            // A struggling Moodle pauses the site rather than burning retries:
            // the breaker refused the lookup, or this failure just opened it.
            Err(CallError::BreakerOpen { retry_at }) => {
                self.pause_for_breaker(&delivery, retry_at).await
            }
            Err(CallError::Moodle(e)) => {
                match self
                    .ctx
                    .moodle
                    .as_ref()
                    .and_then(|m| m.breaker_open_until())
                {
                    Some(retry_at) => self.pause_for_breaker(&delivery, retry_at).await,
                    None => {
                        self.park(delivery, Failure::moodle(&e), permit, pending)
                            .await
                    }
                }
            }
        }
    }

    /// Returns the delivery to its queue and asks the loop to pause the site
    /// until the breaker lets a probe through.
    async fn pause_for_breaker(
        &mut self,
        delivery: &Delivery,
        retry_at: Instant,
    ) -> lapin::Result<()> {
        self.pause_request = Some((PauseReason::Breaker, retry_at));
        self.requeue(delivery).await
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
        // `<site>.<suffix>`, compared in place: no key is built per event.
        let implied = delivery
            .routing_key
            .as_str()
            .strip_prefix(envelope.moodlesite.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            == Some(envelope.event_type.routing_suffix());
        if !implied {
            let expected = RoutingKey::new(envelope.moodlesite.clone(), envelope.event_type);
            return Err(Failure::misrouted(format!(
                "routing key {:?} does not match the event, which needs \"{expected}\"",
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
        let failed = |attempts, retry_queue: Option<&str>| {
            properties::failed(
                &delivery.properties,
                &failure,
                &origin,
                attempts,
                retry_queue,
                &now,
            )
        };
        // Where the failed message goes, with which headers, and what to record
        // once the broker has confirmed it.
        let (exchange, key, props, stage) =
            match decide(failure.class, attempts, self.ctx.retry_steps.len()) {
                Action::Retry { step } => {
                    let queue = pick(&self.ctx.retry_steps[step].queues).to_owned();
                    let props = failed(attempts + 1, Some(&queue));
                    let stage = Stage::Retry {
                        failure,
                        attempt: attempts + 1,
                        queue,
                    };
                    (
                        RETRY_EXCHANGE,
                        delivery.routing_key.to_string(),
                        props,
                        stage,
                    )
                }
                Action::DeadLetter => {
                    let props = failed(attempts, None);
                    (
                        "",
                        DLQ_QUEUE.to_owned(),
                        props,
                        Stage::DeadLetter { failure },
                    )
                }
                Action::RecordConflict => {
                    let key = relay_contract::routing::conflict_key(&self.ctx.site, &failure.code);
                    let props = failed(attempts, None);
                    (EVENTS_EXCHANGE, key, props, Stage::Conflict { failure })
                }
                Action::PauseSite => {
                    // The token or the service is refused: nothing is wrong with the
                    // event. Back to the queue, and the whole site stops.
                    let next_probe = Instant::now() + self.ctx.auth_probe_interval;
                    self.pause_request = Some((PauseReason::Auth(failure.code), next_probe));
                    return self.requeue(&delivery).await;
                }
            };
        let confirm = self.publish(exchange, &key, &delivery.data, props).await?;
        push(pending, delivery, stage, permit, confirm);
        Ok(())
    }

    /// Acts on the broker's answer for one published message.
    pub(super) async fn settle(
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
            Stage::Downstream { event_type, time } => {
                if accepted {
                    self.acks.finished(delivery.delivery_tag);
                    let lag = time
                        .timestamp()
                        .ok()
                        .map(|t| jiff::Timestamp::now().duration_since(t).as_secs_f64());
                    self.ctx.metrics.published(event_type, lag);
                    return Ok(());
                }
                let failure = if returned {
                    metrics::unroutable(site, delivery.routing_key.as_str());
                    Failure::unroutable(delivery.routing_key.as_str())
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
}
