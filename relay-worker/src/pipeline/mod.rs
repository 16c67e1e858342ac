//! One site's pipeline: consume from `relay.ingest.<site>`, check, enrich when
//! the site has a Moodle, publish to `moodle.events` with a confirm, and ack the
//! input only once the broker has confirmed where the event went (downstream,
//! a delay queue, the DLQ or a conflict key).
//!
//! All publishing happens in this one task, in delivery order, so the events of
//! a subject leave in the order they came. When the site pauses (Moodle refused
//! our credentials, its breaker opened), is given to another worker of the
//! fleet, or stops, nothing more is published: once what was published is
//! confirmed, every delivery not yet published goes back to the queue, in
//! delivery order (see [`intake`]).
//!
//! Layout, in the order a delivery meets it:
//! - [`intake`]: the consumer (opened, given back, opened again) and acks.
//! - [`check`]: a valid event of this site, properly routed.
//! - [`enrich`]: Moodle lookups under way, kept in delivery order.
//! - [`publish`]: publishing with confirms, and what a confirm means.
//! - [`decide`]: the one decision: an outcome becomes an action.
//! - [`park`]: where a failed delivery goes: a delay queue, the DLQ, a conflict key.
//! - [`mode`]: standing by, running, paused until a probe passes, or draining.

pub mod check;
pub mod decide;
pub mod enrich;
pub mod intake;
pub mod mode;
pub mod park;
pub mod publish;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use lapin::Connection;
use lapin::message::Delivery;
use relay_contract::{Envelope, SiteId, Validator};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, Interval};

use self::decide::{Action, Outcome, PauseReason, decide};
use self::enrich::{Enriched, Enriching};
use self::intake::Intake;
use self::mode::SiteMode;
use self::publish::{Answer, InFlight, Publisher};
use crate::failure::Failure;
use crate::metrics;
use crate::moodle::CallError;
use crate::moodle::gateway::MoodleGateway;
use crate::properties;
use crate::topology::RetryStep;

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
    pub moodle: Option<Arc<MoodleGateway>>,
    /// Time between probes while paused for an auth failure.
    pub auth_probe_interval: Duration,
    pub metrics: metrics::SiteMetrics,
    /// Whether the fleet's share gives this worker the site now.
    pub owned: watch::Receiver<bool>,
    /// This worker's fleet member id.
    pub member: Arc<str>,
}

/// Finished deliveries are acked in one frame once this many are waiting (or
/// sooner, when nothing is left to confirm or the ack timer fires).
const ACK_BATCH: usize = 64;
/// Longest a finished delivery waits for its ack.
const ACK_INTERVAL: Duration = Duration::from_millis(20);

type Probe = Pin<Box<dyn Future<Output = Result<Value, CallError>> + Send>>;

/// One connection's worth of a site's pipeline.
pub struct SitePipeline {
    ctx: SiteContext,
    intake: Intake,
    enriching: Enriching,
    publisher: Publisher,
    mode: SiteMode,
    /// The in-flight permit for the next delivery, taken before it is.
    permit: Option<OwnedSemaphorePermit>,
    /// The probe under way while paused.
    probe: Option<Probe>,
}

impl std::fmt::Debug for SitePipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SitePipeline")
            .field("site", &self.ctx.site)
            .field("mode", self.mode.get())
            .finish_non_exhaustive()
    }
}

/// What woke the pipeline up.
enum Step {
    Confirmed(InFlight, lapin::Result<lapin::Confirmation>),
    Enriched(Enriched),
    AckTimer,
    Stop,
    GraceOver,
    Probed(Result<Value, CallError>),
    ProbeDue,
    Permit(Option<OwnedSemaphorePermit>),
    Delivery(Option<lapin::Result<Delivery>>),
    /// The fleet's share changed, or nothing to act on.
    Nothing,
}

impl SitePipeline {
    /// The site's pipeline on `connection`, standing by: it opens its
    /// channels once the fleet gives it the site.
    pub fn new(connection: Arc<Connection>, ctx: SiteContext, prefetch: u16) -> Self {
        let publisher = Publisher::new(connection.clone());
        let intake = Intake::new(connection, &ctx.site, ctx.member.clone(), prefetch);
        let mode = SiteMode::new(ctx.site.as_str(), ctx.auth_probe_interval);
        SitePipeline {
            ctx,
            intake,
            enriching: Enriching::default(),
            publisher,
            mode,
            permit: None,
            probe: None,
        }
    }

    /// Runs until `stop` turns true (then drains within the grace period) or the
    /// broker connection fails (then returns the error; unacked deliveries go
    /// back to the queue and are redelivered after reconnecting).
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> lapin::Result<()> {
        let mut ack_timer = tokio::time::interval(ACK_INTERVAL);
        ack_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.follow_the_fleet().await?;
        while self.mode.deadline().is_none() || !self.publisher.is_empty() {
            match self.next_step(&mut stop, &mut ack_timer).await {
                Step::GraceOver => {
                    tracing::warn!(site = %self.ctx.site, unfinished = self.publisher.len(),
                        "shutdown grace period over; unconfirmed events return to the queue");
                    break;
                }
                step => self.handle(step).await?,
            }
            self.follow_the_fleet().await?;
            self.ctx
                .metrics
                .in_flight(self.publisher.len() + self.enriching.len());
        }
        self.intake.close().await;
        self.publisher.close().await;
        Ok(())
    }

    /// Waits for the next thing to act on; confirms first, new deliveries last.
    async fn next_step(
        &mut self,
        stop: &mut watch::Receiver<bool>,
        ack_timer: &mut Interval,
    ) -> Step {
        let SitePipeline {
            ctx,
            intake,
            enriching,
            publisher,
            mode,
            permit,
            probe,
        } = self;
        let taking = mode.taking();
        let waiting_acks = intake.waiting() > 0;
        tokio::select! {
            biased;
            (item, confirmation) = publisher.next() => Step::Confirmed(item, confirmation),
            done = enriching.next() => Step::Enriched(done),
            _ = ack_timer.tick(), if waiting_acks => Step::AckTimer,
            changed = stop.changed(), if mode.deadline().is_none() => {
                if changed.is_err() || *stop.borrow() { Step::Stop } else { Step::Nothing }
            }
            () = until(mode.deadline()) => Step::GraceOver,
            answer = async { match probe.as_mut() { Some(p) => p.await, None => std::future::pending().await } } => {
                Step::Probed(answer)
            }
            // Only once everything unpublished is back in the queue.
            () = until(mode.probe_due()), if !intake.is_open() => Step::ProbeDue,
            acquired = ctx.in_flight.clone().acquire_owned(), if taking && permit.is_none() => {
                // Closed only if the worker is going away.
                Step::Permit(acquired.ok())
            }
            next = intake.next(), if taking && permit.is_some() => Step::Delivery(next),
            () = async {
                // The sender lives as long as the worker.
                if ctx.owned.changed().await.is_err() { std::future::pending().await }
            } => Step::Nothing,
        }
    }

    async fn handle(&mut self, step: Step) -> lapin::Result<()> {
        match step {
            Step::Confirmed(item, confirmation) => {
                self.settle(item, Answer::of(&confirmation?)).await?;
                if self.publisher.is_empty() || self.intake.waiting() >= ACK_BATCH {
                    self.intake.flush_acks().await?;
                }
            }
            Step::Enriched(done) => self.enriched(done).await?,
            Step::AckTimer => self.intake.flush_acks().await?,
            Step::Stop => self.stop(),
            Step::Probed(answer) => {
                self.probe = None;
                if self.mode.probed(answer, Instant::now()) {
                    self.start_consuming().await?;
                }
            }
            Step::ProbeDue => self.start_probe(),
            Step::Permit(permit) => self.permit = permit,
            Step::Delivery(Some(delivery)) => self.take(delivery?).await?,
            Step::Delivery(None) => {
                tracing::warn!(site = %self.ctx.site, "the broker ended the consumer");
                return Err(lapin::Error::from(lapin::ErrorKind::InvalidChannelState(
                    lapin::ChannelState::Closed,
                    "consumer ended",
                )));
            }
            Step::GraceOver | Step::Nothing => {}
        }
        Ok(())
    }

    /// A new delivery: checked, then enriched or published, or parked.
    async fn take(&mut self, delivery: Delivery) -> lapin::Result<()> {
        let Some(permit) = self.permit.take() else {
            return self.intake.requeue(delivery.delivery_tag).await;
        };
        self.ctx.metrics.consumed();
        self.intake.received(delivery.delivery_tag);
        let checked = check::check(&self.ctx.validator, &self.ctx.site, &delivery);
        match (checked, self.ctx.moodle.clone()) {
            (Ok(envelope), Some(moodle)) => {
                self.enriching.push(moodle, delivery, permit, envelope);
                Ok(())
            }
            (Ok(envelope), None) => self.publish(delivery, permit, envelope, None).await,
            (Err(failure), _) => self.act(delivery, permit, Outcome::Failed(failure)).await,
        }
    }

    /// The oldest delivery's lookups are done: publish it, or act on why not.
    async fn enriched(&mut self, done: Enriched) -> lapin::Result<()> {
        let Enriched {
            delivery,
            permit,
            envelope,
            lookup,
        } = done;
        let outcome = match lookup {
            Ok(body) => return self.publish(delivery, permit, envelope, body).await,
            Err(CallError::BreakerOpen { retry_at }) => Outcome::BreakerOpen { until: retry_at },
            Err(CallError::Moodle(e)) => Outcome::Failed(Failure::moodle(&e)),
        };
        self.act(delivery, permit, outcome).await
    }

    /// Publishes a checked event downstream: `body` if it was enriched.
    async fn publish(
        &mut self,
        delivery: Delivery,
        permit: OwnedSemaphorePermit,
        envelope: Envelope,
        body: Option<Vec<u8>>,
    ) -> lapin::Result<()> {
        let (target, stage) = publish::downstream(envelope, &delivery, body);
        self.publisher.send(target, delivery, stage, permit).await
    }

    /// The broker answered for a published message: record it, then act.
    async fn settle(&mut self, item: InFlight, answer: Answer) -> lapin::Result<()> {
        let InFlight {
            delivery,
            stage,
            permit,
        } = item;
        stage.record(&self.ctx.metrics, &self.ctx.site, &delivery, answer);
        let outcome = publish::outcome(&stage, delivery.routing_key.as_str(), answer);
        self.act(delivery, permit, outcome).await
    }

    /// Carries out what [`decide`] says about `outcome`.
    async fn act(
        &mut self,
        delivery: Delivery,
        permit: OwnedSemaphorePermit,
        outcome: Outcome,
    ) -> lapin::Result<()> {
        let attempts = properties::attempts(&delivery.properties);
        match decide(outcome, attempts, self.ctx.retry_steps.len()) {
            Action::Ack => {
                self.intake.finished(delivery.delivery_tag);
                Ok(())
            }
            Action::Park(park) => {
                let (target, stage) = park::parked(
                    park,
                    &delivery,
                    &self.ctx.site,
                    &self.ctx.retry_steps,
                    attempts,
                );
                self.publisher.send(target, delivery, stage, permit).await
            }
            Action::PauseSite(reason) => {
                self.pause(reason, delivery);
                Ok(())
            }
            Action::Requeue => self.intake.requeue(delivery.delivery_tag).await,
        }
    }

    /// Pauses the site. Nothing more is published: the lookups under way are
    /// abandoned, and `delivery` (which made it pause) with them stays unacked,
    /// to go back to the queue once what was published is confirmed.
    fn pause(&mut self, reason: PauseReason, delivery: Delivery) {
        self.mode.pause(reason, Instant::now());
        self.abandon_unpublished();
        drop(delivery);
    }

    /// Starts stopping: what was published waits for its confirm until the
    /// grace period ends; nothing more is.
    fn stop(&mut self) {
        self.probe = None;
        self.mode.drain(Instant::now() + self.ctx.shutdown_grace);
        self.abandon_unpublished();
    }

    fn abandon_unpublished(&mut self) {
        self.permit = None;
        let abandoned = self.enriching.abandon();
        if abandoned > 0 {
            tracing::info!(site = %self.ctx.site, abandoned,
                "Moodle lookups abandoned; those events go back to the queue");
        }
    }

    /// Follows the fleet's share (a site given away stops taking deliveries,
    /// a site given to us starts), and gives a site that stopped taking back
    /// once what it published is settled: only then may another worker (or a
    /// resumed consumer of ours) take it, so order holds across the move.
    async fn follow_the_fleet(&mut self) -> lapin::Result<()> {
        let owned = *self.ctx.owned.borrow();
        if !owned && self.mode.release() {
            self.abandon_unpublished();
        }
        let stopped = !self.mode.taking() && self.mode.deadline().is_none();
        if stopped && self.intake.is_open() && self.publisher.is_empty() {
            self.intake.give_back().await?;
            self.publisher.close().await;
            tracing::info!(site = %self.ctx.site, mode = ?self.mode.get(),
                "consuming stopped; unpublished events are back in the queue, in order");
        }
        if owned && !self.intake.is_open() && self.mode.claim() {
            self.start_consuming().await?;
        }
        Ok(())
    }

    /// Opens the site's channels: the publish channel first, so nothing
    /// delivered waits for it.
    async fn start_consuming(&mut self) -> lapin::Result<()> {
        self.publisher.open().await?;
        self.intake.reopen().await
    }

    fn start_probe(&mut self) {
        self.mode.probing();
        let moodle = self.ctx.moodle.clone();
        self.probe = Some(Box::pin(async move {
            match moodle {
                Some(moodle) => moodle.probe().await,
                // A site without Moodle has nothing to wait for.
                None => Ok(Value::Null),
            }
        }));
    }
}

/// Resolves at `at`, or never.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
