//! `schemas/asyncapi.yaml` describes both exchanges and every event type.

use relay_contract::EventType;
use relay_contract::routing::{EVENTS_EXCHANGE, INGEST_EXCHANGE};
use serde_json::Value;

use crate::support::schemas_dir;

fn document() -> Value {
    let path = schemas_dir().join("asyncapi.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn it_is_asyncapi_3_with_both_exchanges() {
    let doc = document();
    assert_eq!(doc["asyncapi"], "3.0.0");
    let exchange = |channel: &str| doc["channels"][channel]["bindings"]["amqp"]["exchange"].clone();
    assert_eq!(exchange("ingest")["name"], INGEST_EXCHANGE);
    assert_eq!(exchange("events")["name"], EVENTS_EXCHANGE);
    for channel in ["ingest", "events"] {
        assert_eq!(exchange(channel)["type"], "topic");
        assert_eq!(
            doc["channels"][channel]["address"],
            "{site}.{entity}.{action}"
        );
    }
}

#[test]
fn every_event_type_is_a_message_on_both_channels_with_its_schema() {
    let doc = document();
    let messages = doc["components"]["messages"]
        .as_object()
        .unwrap_or_else(|| panic!("components.messages is missing"));
    assert_eq!(messages.len(), EventType::ALL.len());
    for t in EventType::ALL {
        let (key, message) = messages
            .iter()
            .find(|(_, m)| m["name"] == t.as_str())
            .unwrap_or_else(|| panic!("no message named {t}"));
        assert_eq!(message["bindings"]["amqp"]["messageType"], t.as_str());
        let schema_ref = message["payload"]["schema"]["$ref"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(schema_ref, format!("./events/{t}.schema.json"));
        assert!(
            schemas_dir().join(schema_ref).is_file(),
            "{schema_ref} does not exist"
        );
        for channel in ["ingest", "events"] {
            let listed = &doc["channels"][channel]["messages"][key]["$ref"];
            assert_eq!(
                listed,
                &format!("#/components/messages/{key}").as_str(),
                "{channel} lacks {t}"
            );
        }
    }
}
