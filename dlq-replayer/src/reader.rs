//! Reads a queue once: every message at most once per run, and no further
//! than the depth the queue had when the run started.
//!
//! How: a passive declare gives the initial depth; a consumer with manual acks
//! receives the messages. What the command takes is acked by it (after its
//! work is safe); everything else is *held*: kept unacknowledged, so the broker
//! cannot deliver it again during the run, with only its delivery tag kept in
//! memory. [`Reader::finish`] gives all held messages back (nack with requeue)
//! and closes the channel; a crash gives them back too, since the broker
//! requeues whatever a closed connection had not acked.
//!
//! Held messages count against a consumer's prefetch, so a consumer whose
//! whole window is held would stall. Each consumer therefore takes at most
//! [`PREFETCH`] deliveries and is then cancelled (its unacked messages stay
//! with the channel) and replaced by a fresh one with a fresh window.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};

use crate::broker::Broker;
use crate::error::Error;

/// Deliveries the broker may push ahead of us per consumer: bounds the memory
/// held by bodies not yet looked at, and is large enough that the round trip
/// of replacing a consumer is rare.
pub const PREFETCH: u16 = 256;

/// How long to wait for a delivery before concluding that the rest of the
/// initial depth was taken by someone else (another consumer of the queue).
pub const IDLE: Duration = Duration::from_secs(5);

/// How long [`Reader::finish`] waits for given-back messages to be ready again
/// (less if someone else consumes the queue meanwhile).
pub const SETTLE: Duration = Duration::from_secs(3);

/// One pass over a queue.
#[derive(Debug)]
pub struct Reader {
    channel: Channel,
    queue: String,
    initial: u32,
    seen: u64,
    consumer: Option<Consumer>,
    /// Deliveries taken from the current consumer.
    taken: u32,
    held: u64,
    acked: u64,
    /// True when the pass ended on [`IDLE`] before the initial depth.
    pub stopped_idle: bool,
}

impl Reader {
    /// Opens a pass over `queue`; fails with [`Error::QueueNotFound`] when it
    /// does not exist. Nothing is consumed until [`Reader::next`].
    pub async fn open(broker: &Broker, queue: &str) -> Result<Reader, Error> {
        let initial = broker.depth(queue).await?;
        let channel = broker.channel("opening the reading channel").await?;
        // Per consumer (global = false, which quorum queues require).
        channel
            .basic_qos(PREFETCH, BasicQosOptions { global: false })
            .await
            .map_err(|e| Error::broker("setting the prefetch", e))?;
        Ok(Reader {
            channel,
            queue: queue.to_owned(),
            initial,
            seen: 0,
            consumer: None,
            taken: 0,
            held: 0,
            acked: 0,
            stopped_idle: false,
        })
    }

    /// The queue's ready messages when the pass started.
    pub fn initial_depth(&self) -> u32 {
        self.initial
    }

    /// Messages delivered so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Messages held so far (to be given back).
    pub fn held(&self) -> u64 {
        self.held
    }

    /// The next message, or `None` once the initial depth has been seen.
    pub async fn next(&mut self) -> Result<Option<Delivery>, Error> {
        loop {
            if self.seen >= u64::from(self.initial) {
                return Ok(None);
            }
            if self.consumer.is_none() {
                self.consumer = Some(self.consume().await?);
            }
            let Some(consumer) = &mut self.consumer else {
                continue;
            };
            match tokio::time::timeout(IDLE, consumer.next()).await {
                Err(_) => {
                    self.stopped_idle = true;
                    return Ok(None);
                }
                // Cancelled (by us, or by the broker if the queue went away).
                Ok(None) => self.consumer = None,
                Ok(Some(Err(e))) => return Err(Error::broker("reading the queue", e)),
                Ok(Some(Ok(delivery))) => {
                    self.seen += 1;
                    self.taken += 1;
                    if self.taken == u32::from(PREFETCH) {
                        self.retire_consumer().await?;
                    }
                    return Ok(Some(delivery));
                }
            }
        }
    }

    /// Starts a consumer with a fresh prefetch window.
    async fn consume(&mut self) -> Result<Consumer, Error> {
        self.taken = 0;
        let options = BasicConsumeOptions {
            // Manual acks: a message leaves the queue only when acked.
            no_ack: false,
            // Not exclusive: the worker keeps dead-lettering meanwhile.
            exclusive: false,
            ..Default::default()
        };
        self.channel
            .basic_consume(
                self.queue.as_str().into(),
                "".into(),
                options,
                FieldTable::default(),
            )
            .await
            .map_err(|e| Error::broker("consuming the queue", e))
    }

    /// Cancels the current consumer; what it already received still arrives
    /// through its stream, which then ends.
    async fn retire_consumer(&mut self) -> Result<(), Error> {
        if let Some(consumer) = &self.consumer {
            self.channel
                .basic_cancel(consumer.tag(), BasicCancelOptions::default())
                .await
                .map_err(|e| Error::broker("replacing the consumer", e))?;
        }
        Ok(())
    }

    /// Keeps the message with this delivery tag in the queue: it stays
    /// unacked and is given back at [`Reader::finish`]. Only a count is kept
    /// (the final nack covers every unacked tag), never the body.
    pub fn hold(&mut self, _delivery_tag: u64) {
        self.held += 1;
    }

    /// Removes a message from the queue: call only once its copy is safe.
    pub async fn ack(&mut self, delivery_tag: u64) -> Result<(), Error> {
        self.channel
            .basic_ack(delivery_tag, BasicAckOptions { multiple: false })
            .await
            .map_err(|e| Error::broker("acknowledging a message", e))?;
        self.acked += 1;
        Ok(())
    }

    /// Gives back every message not acked, then closes the channel (which waits
    /// for the broker, so every ack sent before has been processed), and waits
    /// (up to [`SETTLE`]) until the queue shows them as ready again: a quorum
    /// queue requeues asynchronously, and a command run right after this one
    /// must see the whole queue.
    pub async fn finish(mut self, broker: &Broker) -> Result<(), Error> {
        self.give_back().await?;
        let expected = u64::from(self.initial).saturating_sub(self.acked);
        let deadline = tokio::time::Instant::now() + SETTLE;
        while tokio::time::Instant::now() < deadline {
            if u64::from(broker.depth(&self.queue).await?) >= expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    async fn give_back(&mut self) -> Result<(), Error> {
        if let Some(consumer) = self.consumer.take() {
            let _ = self
                .channel
                .basic_cancel(consumer.tag(), BasicCancelOptions::default())
                .await;
        }
        // Tag 0 with multiple: every outstanding delivery on this channel.
        let options = BasicNackOptions {
            multiple: true,
            requeue: true,
        };
        let nack = self.channel.basic_nack(0, options).await;
        let close = self.channel.close(200, "pass done".into()).await;
        nack.map_err(|e| Error::broker("returning messages to the queue", e))?;
        close.map_err(|e| Error::broker("closing the reading channel", e))
    }
}
