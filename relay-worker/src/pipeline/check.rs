//! The check of each delivery before anything is published: a valid event (the
//! JSON Schemas), of this site, with the routing key its content implies and
//! the AMQP properties the contract requires (DESIGN.md §2).

use lapin::BasicProperties;
use lapin::message::Delivery;
use relay_contract::{CLOUDEVENTS_CONTENT_TYPE, Envelope, RoutingKey, SiteId, Validator};

use crate::failure::Failure;

/// The delivery's event, or why it cannot be relayed.
pub fn check(
    validator: &Validator,
    site: &SiteId,
    delivery: &Delivery,
) -> Result<Envelope, Failure> {
    let envelope = validator
        .validate_bytes(&delivery.data)
        .map_err(|invalid| Failure::invalid(&invalid))?;
    if envelope.moodlesite != *site {
        return Err(Failure::misrouted(format!(
            "event of site {:?} arrived on the queue of site {:?}",
            envelope.moodlesite.as_str(),
            site.as_str()
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
        Some(CLOUDEVENTS_CONTENT_TYPE) => Ok(()),
        Some(other) => Err(Failure::bad_properties(format!(
            "content_type {other:?} is not {CLOUDEVENTS_CONTENT_TYPE:?}"
        ))),
        None => Err(Failure::bad_properties(format!(
            "content_type is missing; it must be {CLOUDEVENTS_CONTENT_TYPE:?}"
        ))),
    }
}
