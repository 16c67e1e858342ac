//! The baseline: the least a correct relay does. Consume, parse the JSON,
//! publish with a confirm, ack after the confirm; pipelined confirms and the
//! same prefetch as the worker, one task publishing, as the worker does.

use futures_util::stream::{FuturesUnordered, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use relay_worker::acks::Acks;

/// Runs until the process is killed.
pub async fn run(url: &str, queue: &str, exchange: &str, prefetch: u16) -> lapin::Result<()> {
    let conn = Connection::connect(url, ConnectionProperties::default()).await?;
    let consume = conn.create_channel().await?;
    consume
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = consume
        .basic_consume(
            queue.into(),
            "raw-forwarder".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let publish = conn.create_channel().await?;
    publish
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let mut pending = FuturesUnordered::new();
    // The same batched multiple-acks as the worker, so the baseline is as well tuned.
    let mut acks = Acks::default();
    let mut ack_timer = tokio::time::interval(std::time::Duration::from_millis(20));
    loop {
        tokio::select! {
            Some((tag, confirmation)) = pending.next() => {
                let confirmation: lapin::Result<lapin::Confirmation> = confirmation;
                if confirmation?.is_ack() {
                    acks.finished(tag);
                }
                if (pending.is_empty() || acks.waiting() >= 64)
                    && let Some(tag) = acks.take()
                {
                    consume.basic_ack(tag, BasicAckOptions { multiple: true }).await?;
                }
            }
            _ = ack_timer.tick(), if acks.waiting() > 0 => {
                if let Some(tag) = acks.take() {
                    consume.basic_ack(tag, BasicAckOptions { multiple: true }).await?;
                }
            }
            next = consumer.next() => {
                let Some(delivery) = next else { return Ok(()) };
                let delivery = delivery?;
                acks.received(delivery.delivery_tag);
                // Parse, as any relay must, and take the id for message_id.
                let id = serde_json::from_slice::<serde_json::Value>(&delivery.data)
                    .ok()
                    .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned))
                    .unwrap_or_default();
                let props = BasicProperties::default().with_message_id(id.into()).with_delivery_mode(2);
                let confirm = publish
                    .basic_publish(
                        exchange.into(),
                        delivery.routing_key.clone(),
                        BasicPublishOptions { mandatory: true, ..Default::default() },
                        &delivery.data,
                        props,
                    )
                    .await?;
                let tag = delivery.delivery_tag;
                pending.push(async move { (tag, confirm.await) });
            }
        }
    }
}
