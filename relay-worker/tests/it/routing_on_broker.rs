//! The routing-key contract on a real broker: events published to a topic
//! exchange with `<site>.<entity>.<action>` reach the queues downstream
//! systems bind, unchanged and still valid.

use std::collections::BTreeSet;

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, ExchangeKind};
use relay_contract::{CLOUDEVENTS_CONTENT_TYPE, RoutingKey, Validator};

use crate::support::{channel, unique, valid_fixtures};

async fn bound_queue(channel: &Channel, exchange: &str, pattern: &str) -> String {
    // Exclusive and auto-deleted: the queue disappears with the test's connection.
    let queue = channel
        .queue_declare(
            unique("q").as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("declare queue: {e}"));
    channel
        .queue_bind(
            queue.name().clone(),
            exchange.into(),
            pattern.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("bind {pattern}: {e}"));
    queue.name().to_string()
}

async fn drain(channel: &Channel, queue: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap_or_else(|e| panic!("get from {queue}: {e}"))
    {
        out.push((
            message.delivery.routing_key.to_string(),
            message.delivery.data.clone(),
        ));
    }
    out
}

#[tokio::test]
async fn events_reach_topic_bindings_by_their_routing_keys() {
    let (conn, channel) = channel().await;
    let exchange = unique("events");
    channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("declare exchange: {e}"));
    let users = bound_queue(&channel, &exchange, "*.user.*").await;
    let site = bound_queue(&channel, &exchange, "lms-prod.#").await;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap_or_else(|e| panic!("confirm mode: {e}"));

    let validator = Validator::new().unwrap_or_else(|e| panic!("{e}"));
    let mut sent = BTreeSet::new();
    let mut sent_users = BTreeSet::new();
    for (name, bytes) in valid_fixtures() {
        let envelope = validator
            .validate_bytes(&bytes)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let key = RoutingKey::new(envelope.moodlesite.clone(), envelope.event_type).to_string();
        let properties = BasicProperties::default()
            .with_message_id(envelope.id.to_string().into())
            .with_content_type(CLOUDEVENTS_CONTENT_TYPE.into())
            .with_delivery_mode(2)
            .with_type(envelope.event_type.as_str().into());
        let confirm = channel
            .basic_publish(
                exchange.as_str().into(),
                key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &bytes,
                properties,
            )
            .await
            .unwrap_or_else(|e| panic!("publish {name}: {e}"))
            .await
            .unwrap_or_else(|e| panic!("confirm {name}: {e}"));
        assert!(confirm.is_ack(), "{name} was not confirmed");
        assert!(
            confirm.take_message().is_none(),
            "{name} was returned as unroutable"
        );
        if key.split('.').nth(1) == Some("user") {
            sent_users.insert(key.clone());
        }
        sent.insert((key, bytes));
    }

    let all = drain(&channel, &site).await;
    let received: BTreeSet<(String, Vec<u8>)> = all.iter().cloned().collect();
    assert_eq!(all.len(), sent.len(), "every event once on lms-prod.#");
    assert_eq!(received, sent, "bodies and keys arrive unchanged");
    for (key, bytes) in &all {
        let envelope = validator
            .validate_bytes(bytes)
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(
            RoutingKey::new(envelope.moodlesite, envelope.event_type).to_string(),
            *key
        );
    }
    let user_keys: BTreeSet<String> = drain(&channel, &users)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        user_keys, sent_users,
        "*.user.* gets the user events and nothing else"
    );

    channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap_or_else(|e| panic!("delete exchange: {e}"));
    conn.close(200, "done".into())
        .await
        .unwrap_or_else(|e| panic!("close: {e}"));
}
