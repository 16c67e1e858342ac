//! Intake: the site's consumer on `relay.ingest.<site>` (created, cancelled and
//! created again here only), and the acknowledgements of what it delivered.
//!
//! Giving deliveries back keeps their order: quorum queues redeliver returned
//! messages in the order they were returned, so every return goes out in
//! delivery-tag order, the cancelled consumer's buffered deliveries last.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use relay_contract::SiteId;
use relay_contract::routing::ingest_queue;

use crate::acks::Acks;

/// How long a cancelled consumer may take to hand over what it buffered; the
/// broker has sent all of it before `cancel-ok`, so this only trips on a
/// broken connection.
const CANCEL_LIMIT: Duration = Duration::from_secs(10);

/// One site's consuming side of one connection.
#[derive(Debug)]
pub struct Intake {
    site: SiteId,
    channel: Channel,
    /// `None` while the site is paused or stopping.
    consumer: Option<Consumer>,
    acks: Acks,
}

impl Intake {
    /// Opens a channel with `prefetch` and starts consuming the site's queue.
    pub async fn open(
        connection: &Connection,
        site: &SiteId,
        prefetch: u16,
    ) -> lapin::Result<Self> {
        let channel = connection.create_channel().await?;
        // Per-consumer prefetch: bounds unacked deliveries (and so memory) per site.
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        let mut intake = Intake {
            site: site.clone(),
            channel,
            consumer: None,
            acks: Acks::default(),
        };
        intake.consume().await?;
        Ok(intake)
    }

    /// Starts (again) taking deliveries, with a new consumer.
    pub async fn consume(&mut self) -> lapin::Result<()> {
        // Unique per consumer: a paused site's old tag may still be known to
        // the broker while it processes the cancel.
        let tag = format!(
            "relay-worker.{}.{}.{}",
            self.site,
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        );
        let consumer = self
            .channel
            .basic_consume(
                ingest_queue(&self.site).as_str().into(),
                tag.into(),
                // Manual acks: a message is acked only after its publish is confirmed.
                BasicConsumeOptions {
                    no_ack: false,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        self.consumer = Some(consumer);
        Ok(())
    }

    /// The next delivery. `None` when the broker ended the consumer; never
    /// resolves while not consuming.
    pub async fn next(&mut self) -> Option<lapin::Result<Delivery>> {
        match self.consumer.as_mut() {
            Some(consumer) => consumer.next().await,
            None => std::future::pending().await,
        }
    }

    /// A delivery was taken into the pipeline.
    pub fn received(&mut self, tag: u64) {
        self.acks.received(tag);
    }

    /// A delivery is done; it is acked with the next run.
    pub fn finished(&mut self, tag: u64) {
        self.acks.finished(tag);
    }

    /// Finished deliveries waiting for their ack.
    pub fn waiting(&self) -> usize {
        self.acks.waiting()
    }

    /// Acks every finished delivery that can be, in one frame.
    pub async fn flush_acks(&mut self) -> lapin::Result<()> {
        if let Some(tag) = self.acks.take() {
            let options = BasicAckOptions { multiple: true };
            self.channel.basic_ack(tag, options).await?;
        }
        Ok(())
    }

    /// Returns one delivery to its queue (counted towards its delivery limit).
    pub async fn requeue(&mut self, tag: u64) -> lapin::Result<()> {
        self.acks.forget(tag);
        let options = BasicNackOptions {
            requeue: true,
            multiple: false,
        };
        self.channel.basic_nack(tag, options).await
    }

    /// Stops consuming and gives back `unpublished` (deliveries taken but not
    /// published) and everything the cancelled consumer still held, all in
    /// delivery order. Returns how many went back.
    pub async fn stop_and_give_back(&mut self, unpublished: Vec<u64>) -> lapin::Result<usize> {
        let mut tags = unpublished;
        if let Some(consumer) = self.consumer.take() {
            tags.extend(self.cancel(consumer).await?);
        }
        tags.sort_unstable();
        for &tag in &tags {
            self.requeue(tag).await?;
        }
        Ok(tags.len())
    }

    /// Cancels `consumer`; the tags of the deliveries it had buffered.
    async fn cancel(&self, mut consumer: Consumer) -> lapin::Result<Vec<u64>> {
        self.channel
            .basic_cancel(consumer.tag(), BasicCancelOptions::default())
            .await?;
        let buffered = async {
            let mut tags = Vec::new();
            while let Some(delivery) = consumer.next().await {
                tags.push(delivery?.delivery_tag);
            }
            Ok(tags)
        };
        match tokio::time::timeout(CANCEL_LIMIT, buffered).await {
            Ok(tags) => tags,
            Err(_) => Err(lapin::Error::from(lapin::ErrorKind::InvalidChannelState(
                lapin::ChannelState::Error,
                "the cancelled consumer did not end",
            ))),
        }
    }

    /// Sends the last acks, then closes the channel (the broker returns what
    /// is still unacked). The connection is closed by the caller, after.
    pub async fn close(&mut self) {
        // Acks first, then the channel: acks not sent when it closes are lost.
        if let Err(e) = self.flush_acks().await {
            tracing::warn!(site = %self.site, error = %e,
                "final acks failed; those events will be redelivered");
        }
        let _ = self
            .channel
            .close(200, "relay-worker stopping".into())
            .await;
    }
}
