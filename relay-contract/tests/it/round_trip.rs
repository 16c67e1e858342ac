//! serialise(parse(x)) keeps every attribute, for generated events and fixtures.

use proptest::prelude::*;
use relay_contract::{Envelope, EventType};
use serde_json::{Map, Value, json};

use crate::support::fixtures;

fn round_trip(value: &Value) -> Value {
    let envelope: Envelope =
        serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{e}: {value}"));
    serde_json::to_value(&envelope).unwrap_or_else(|e| panic!("{e}"))
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[ -~é€]{0,12}".prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map("[a-z_]{1,10}", json_value(), 0..6)
        .prop_map(|m| m.into_iter().collect())
}

prop_compose! {
    fn envelope()(
        t in prop::sample::select(EventType::ALL.to_vec()),
        id in any::<[u8; 16]>(),
        site in "[a-z0-9][a-z0-9-]{0,31}",
        seq in any::<u64>(),
        secs in 0i64..4_000_000_000,
        millis in prop::option::of(0u32..1000),
        subject_ids in (1u32..1_000_000, 1u32..1_000_000),
        ids in (prop::option::of(0i64..1 << 40), prop::option::of(0i64..1 << 40), prop::option::of(0i64..1 << 40)),
        numbers in (0i64..1 << 40, 1i64..1 << 40, any::<bool>(), 0i64..4_000_000_000),
        context in (prop::option::of(prop::sample::select(vec![10i64, 30, 40, 50, 70, 80])), prop::option::of(0i64..1 << 30)),
        other in prop::option::of(object()),
        snapshot in object(),
        backfill in prop::option::of(any::<bool>()),
        enrichment in prop::option::of(object()),
        trace in prop::option::of(("[0-9a-f]{32}", "[0-9a-f]{16}")),
        tracestate in prop::option::of("[a-z]{1,8}=[a-z0-9]{1,8}"),
    ) -> Value {
        let time = jiff::Timestamp::from_second(secs).unwrap_or_default();
        let time = match millis {
            Some(ms) => format!("{}.{ms:03}Z", time.strftime("%Y-%m-%dT%H:%M:%S")),
            None => time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        };
        let mut data = json!({
            "objectid": ids.0, "userid": ids.1, "relateduserid": ids.2,
            "courseid": numbers.0, "contextid": numbers.1, "crud": "u",
            "anonymous": u8::from(numbers.2), "timecreated": numbers.3,
            "other": other, "snapshot": snapshot,
        });
        if let Some(level) = context.0 { data["contextlevel"] = level.into(); }
        if let Some(instance) = context.1 { data["contextinstanceid"] = instance.into(); }
        if let Some(b) = backfill { data["backfill"] = b.into(); }
        if let Some(e) = enrichment { data["enrichment"] = Value::Object(e); }
        let mut event = json!({
            "specversion": "1.0",
            "id": uuid::Uuid::from_bytes(id).to_string(),
            "source": "https://lms.example.edu/moodle",
            "type": t.as_str(),
            "subject": format!("course/{}/user/{}", subject_ids.0, subject_ids.1),
            "time": time,
            "datacontenttype": "application/json",
            "dataschema": t.schema_id(),
            "moodlesite": site.trim_start_matches('-'),
            "moodleevent": t.moodle_class(),
            "sequence": format!("{seq:020}"),
            "data": data,
        });
        if event["moodlesite"] == "" { event["moodlesite"] = "a".into(); }
        if let Some((trace_id, span_id)) = trace {
            event["traceparent"] = format!("00-{trace_id}-{span_id}-01").into();
        }
        if let Some(state) = tracestate { event["tracestate"] = state.into(); }
        event
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn serialise_of_parse_keeps_every_attribute(event in envelope()) {
        prop_assert_eq!(round_trip(&event), event);
    }
}

#[test]
fn valid_fixtures_round_trip_unchanged() {
    for (name, bytes) in fixtures("valid") {
        let value: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(round_trip(&value), value, "{name}");
    }
}

#[test]
fn parsing_refuses_unknown_attributes_instead_of_dropping_them() {
    let (_, bytes) = fixtures("valid").swap_remove(0);
    let mut value: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
    value["comexampleextension"] = "x".into();
    assert!(serde_json::from_value::<Envelope>(value).is_err());
}
