//! The enrichment step: which Moodle data an event gets, fetched through the
//! site's throttled, coalesced lookups, and added under `data.enrichment` as
//! `{"<function>": {"fetchedat": "<RFC 3339>", "result": <Moodle's answer>}}`.
//! Nothing else in the event changes (`id`, `sequence`, `time` never do).
//!
//! [`Enriching`] holds the site's deliveries whose lookups are under way, in
//! delivery order: they come out in that order, so the events of a subject are
//! published in the order they came, and a pause can abandon them all
//! unpublished without waiting for Moodle.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::stream::{FuturesOrdered, StreamExt};
use lapin::message::Delivery;
use relay_contract::{Envelope, EventType};
use serde_json::{Value, json};
use tokio::sync::OwnedSemaphorePermit;

use crate::moodle::CallError;
use crate::moodle::gateway::MoodleGateway;

/// The body to publish (`None`: unchanged), or why it could not be enriched.
pub type Lookup = Result<Option<Vec<u8>>, CallError>;

type Lookups = FuturesOrdered<Pin<Box<dyn Future<Output = (Envelope, Lookup)> + Send>>>;

/// Deliveries waiting for their Moodle lookups, oldest first.
#[derive(Default)]
pub struct Enriching {
    /// Each delivery with the permit that counts it against `max_in_flight`;
    /// in the same order as `lookups`.
    waiting: VecDeque<(Delivery, OwnedSemaphorePermit)>,
    lookups: Lookups,
}

impl std::fmt::Debug for Enriching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enriching")
            .field("waiting", &self.waiting.len())
            .finish()
    }
}

/// A delivery whose lookups are done (or failed).
#[derive(Debug)]
pub struct Enriched {
    pub delivery: Delivery,
    pub permit: OwnedSemaphorePermit,
    pub envelope: Envelope,
    pub lookup: Lookup,
}

impl Enriching {
    /// Starts the lookups `envelope` needs from `moodle`.
    pub fn push(
        &mut self,
        moodle: Arc<MoodleGateway>,
        delivery: Delivery,
        permit: OwnedSemaphorePermit,
        envelope: Envelope,
    ) {
        let body = delivery.data.clone();
        self.lookups.push_back(Box::pin(async move {
            let lookup = enrich(&moodle, &envelope, &body).await;
            (envelope, lookup)
        }));
        self.waiting.push_back((delivery, permit));
    }

    /// The oldest delivery, once its lookups are done; never resolves when
    /// none is waiting.
    pub async fn next(&mut self) -> Enriched {
        match self.lookups.next().await {
            Some((envelope, lookup)) => match self.waiting.pop_front() {
                Some((delivery, permit)) => Enriched {
                    delivery,
                    permit,
                    envelope,
                    lookup,
                },
                None => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }

    /// Drops every lookup under way and its delivery (which stays unacked);
    /// how many there were.
    pub fn abandon(&mut self) -> usize {
        self.lookups = Lookups::new();
        self.waiting.drain(..).count()
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

/// The body to publish: the original when nothing was added, else the event
/// with its enrichment.
async fn enrich(
    site: &Arc<MoodleGateway>,
    envelope: &Envelope,
    body: &[u8],
) -> Result<Option<Vec<u8>>, CallError> {
    let data = &envelope.data;
    let user = data.relateduserid.or(data.objectid).filter(|id| *id > 0);
    let course = Some(data.courseid).filter(|id| *id > 0);
    let family = envelope
        .event_type
        .as_str()
        .split('.')
        .nth(1)
        .unwrap_or_default();
    let mut added: Vec<(&str, Value)> = Vec::new();

    if family == "user"
        && site.enrich.user
        && let Some(id) = user
    {
        // A deleted user is not an error: Moodle answers with no row.
        let rows: Vec<Value> = site.user(id).await?.into_iter().collect();
        added.push(("core_user_get_users_by_field", Value::Array(rows)));
    }
    if matches!(family, "enrolment" | "completion" | "role")
        && site.enrich.course
        && let Some(id) = course
    {
        let rows: Vec<Value> = site.course(id).await?.into_iter().collect();
        added.push((
            "core_course_get_courses_by_field",
            json!({"courses": rows, "warnings": []}),
        ));
    }
    if envelope.event_type == EventType::CourseCompleted
        && site.enrich.completion
        && let (Some(course), Some(user)) = (course, user)
    {
        added.push((
            "core_completion_get_course_completion_status",
            site.completion(course, user).await?,
        ));
    }
    if added.is_empty() {
        return Ok(None);
    }
    Ok(Some(attach(body, added)))
}

/// The event with `additions` under `data.enrichment`.
fn attach(body: &[u8], additions: Vec<(&str, Value)>) -> Vec<u8> {
    let Ok(mut event) = serde_json::from_slice::<Value>(body) else {
        // Validated before this step, so it parses; keep the original if not.
        return body.to_vec();
    };
    let fetched = jiff::Timestamp::now().to_string();
    if let Some(data) = event.get_mut("data").and_then(Value::as_object_mut) {
        let enrichment = data.entry("enrichment").or_insert_with(|| json!({}));
        if let Some(map) = enrichment.as_object_mut() {
            for (function, result) in additions {
                map.insert(
                    function.to_owned(),
                    json!({"fetchedat": fetched, "result": result}),
                );
            }
        }
    }
    serde_json::to_vec(&event).unwrap_or_else(|_| body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrichment_goes_under_data_and_keeps_the_rest() {
        let body = include_bytes!("../../../schemas/fixtures/valid/user.created.json");
        let out = attach(
            body,
            vec![("core_user_get_users_by_field", json!([{"id": 42}]))],
        );
        let before: Value = serde_json::from_slice(body).unwrap_or_default();
        let after: Value = serde_json::from_slice(&out).unwrap_or_default();
        let entry = &after["data"]["enrichment"]["core_user_get_users_by_field"];
        assert_eq!(entry["result"], json!([{"id": 42}]));
        assert!(
            entry["fetchedat"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
        for key in ["id", "sequence", "time", "subject", "type"] {
            assert_eq!(after[key], before[key], "{key} changed");
        }
        let validator = relay_contract::Validator::new().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            validator.validate_bytes(&out).is_ok(),
            "the enriched event is still valid"
        );
    }
}
