//! Intake: the site's consume channel and consumer on `relay.ingest.<site>`
//! (opened, given back and opened again here only), and the acknowledgements
//! of what it delivered. The queue has a single active consumer: a consumer
//! opened while another worker's is still active waits until that one is gone.
//!
//! Giving deliveries back keeps their order. The channel is closed, and the
//! broker returns every delivery still unacked on it at once, sorted in
//! delivery order. Returning them one by one does not keep the order on a
//! quorum queue: RabbitMQ 3.10 batches many returns and applies the batch in
//! hash order, and a consumer's cancel returns what was in transit to it
//! before anything the worker returns itself.

use std::sync::Arc;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use relay_contract::SiteId;
use relay_contract::routing::ingest_queue;

use crate::acks::Acks;

/// One site's consuming side of one connection.
#[derive(Debug)]
pub struct Intake {
    site: SiteId,
    /// This worker's fleet member id, in consumer tags.
    member: Arc<str>,
    connection: Arc<Connection>,
    prefetch: u16,
    /// The channel and its consumer; `None` once given back.
    open: Option<(Channel, Consumer)>,
    /// Of the open channel (delivery tags are per channel).
    acks: Acks,
}

impl Intake {
    /// The site's intake on `connection`, not consuming yet.
    pub fn new(
        connection: Arc<Connection>,
        site: &SiteId,
        member: Arc<str>,
        prefetch: u16,
    ) -> Self {
        Intake {
            site: site.clone(),
            member,
            connection,
            prefetch,
            open: None,
            acks: Acks::default(),
        }
    }

    /// Starts (again) taking deliveries, on a new channel with `prefetch`.
    pub async fn reopen(&mut self) -> lapin::Result<()> {
        let channel = self.connection.create_channel().await?;
        // Per-consumer prefetch: bounds unacked deliveries (and so memory) per site.
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await?;
        // Says which worker holds the site (`rabbitmqctl list_consumers`);
        // unique per consumer, as an earlier one of this worker may still be
        // known to the broker while it processes the close.
        let tag = format!(
            "relay-worker.{}.{}.{}",
            self.site,
            self.member,
            uuid::Uuid::new_v4().simple()
        );
        let consumer = channel
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
        self.open = Some((channel, consumer));
        self.acks = Acks::default();
        Ok(())
    }

    /// Whether the channel is open (not given back).
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// The next delivery. `None` when the broker ended the consumer; never
    /// resolves once given back.
    pub async fn next(&mut self) -> Option<lapin::Result<Delivery>> {
        match self.open.as_mut() {
            Some((_, consumer)) => consumer.next().await,
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
        if let (Some(tag), Some((channel, _))) = (self.acks.take(), self.open.as_ref()) {
            let options = BasicAckOptions { multiple: true };
            channel.basic_ack(tag, options).await?;
        }
        Ok(())
    }

    /// Returns one delivery to its queue (counted towards its delivery limit).
    pub async fn requeue(&mut self, tag: u64) -> lapin::Result<()> {
        self.acks.forget(tag);
        let Some((channel, _)) = self.open.as_ref() else {
            return Ok(());
        };
        let options = BasicNackOptions {
            requeue: true,
            multiple: false,
        };
        channel.basic_nack(tag, options).await
    }

    /// Acks every finished delivery (one by one where an unfinished one lies
    /// below), then closes the channel: the broker returns everything else it
    /// delivered on it to the queue, in delivery order. Nothing is taken until
    /// [`Self::reopen`].
    pub async fn give_back(&mut self) -> lapin::Result<()> {
        let Some((channel, _consumer)) = self.open.take() else {
            return Ok(());
        };
        let (run, singles) = self.acks.take_all();
        if let Some(tag) = run {
            channel
                .basic_ack(tag, BasicAckOptions { multiple: true })
                .await?;
        }
        for tag in singles {
            channel
                .basic_ack(tag, BasicAckOptions { multiple: false })
                .await?;
        }
        channel.close(200, "relay-worker: giving back".into()).await
    }

    /// [`Self::give_back`] at the end: the connection is closed by the caller,
    /// after (closing it right after the last ack can lose acks otherwise).
    pub async fn close(&mut self) {
        if let Err(e) = self.give_back().await {
            tracing::warn!(site = %self.site, error = %e,
                "final acks failed; those events will be redelivered");
        }
    }
}
