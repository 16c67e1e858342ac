//! Every valid fixture passes; every invalid one fails for its recorded reason.

use std::collections::BTreeSet;

use relay_contract::{EventType, RoutingKey};
use serde_json::Value;

use crate::support::{fixtures, read_json, schemas_dir, validator};

#[test]
fn every_valid_fixture_passes_and_parses_to_its_type() {
    let v = validator();
    let valid = fixtures("valid");
    assert!(!valid.is_empty());
    for (name, bytes) in valid {
        let envelope = v
            .validate_bytes(&bytes)
            .unwrap_or_else(|e| panic!("{name} should be valid: {e}"));
        // File names start with the type's routing suffix: `user.created.json`,
        // `user.updated-enriched.json`.
        let stem = name.trim_end_matches(".json");
        let suffix = stem.split('-').next().unwrap_or(stem);
        assert_eq!(envelope.event_type.routing_suffix(), suffix, "{name}");
        assert_eq!(
            envelope.dataschema,
            envelope.event_type.schema_id(),
            "{name}"
        );
        let key = RoutingKey::new(envelope.moodlesite.clone(), envelope.event_type);
        assert!(key.to_string().starts_with("lms-prod."), "{name}");
    }
}

#[test]
fn every_type_has_a_schema_file_and_a_valid_fixture() {
    let names: BTreeSet<String> = fixtures("valid").into_iter().map(|(n, _)| n).collect();
    for t in EventType::ALL {
        let schema = schemas_dir()
            .join("events")
            .join(format!("{}.schema.json", t.as_str()));
        assert!(schema.is_file(), "{} is missing", schema.display());
        let fixture = format!("{}.json", t.routing_suffix());
        assert!(names.contains(&fixture), "no valid fixture {fixture}");
    }
    let files = std::fs::read_dir(schemas_dir().join("events"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(
        files,
        EventType::ALL.len(),
        "schemas/events has files for unknown types"
    );
}

#[test]
fn every_invalid_fixture_fails_for_its_recorded_reason() {
    let v = validator();
    let reasons = read_json(&schemas_dir().join("fixtures/invalid-reasons.json"));
    let reasons = reasons
        .as_object()
        .unwrap_or_else(|| panic!("reasons must be an object"));
    let invalid = fixtures("invalid");
    let files: BTreeSet<&str> = invalid.iter().map(|(n, _)| n.as_str()).collect();
    let listed: BTreeSet<&str> = reasons.keys().map(String::as_str).collect();
    assert_eq!(
        files, listed,
        "invalid fixtures and invalid-reasons.json disagree"
    );

    for (name, bytes) in &invalid {
        let expected = &reasons[name.as_str()];
        let err = match v.validate_bytes(bytes) {
            Ok(_) => panic!("{name} should be invalid"),
            Err(e) => e,
        };
        assert_eq!(err.code(), expected["code"], "{name}: {err}");
        if let Some(pointer) = expected.get("pointer").and_then(Value::as_str) {
            assert!(
                err.violations().iter().any(|x| x.pointer == pointer),
                "{name}: expected a violation at {pointer:?}, got: {err}"
            );
        }
        if let Some(text) = expected.get("contains").and_then(Value::as_str) {
            assert!(
                err.to_string().contains(text),
                "{name}: expected {text:?} in: {err}"
            );
        }
    }
}

#[test]
fn schema_reasons_name_the_pointer_and_the_rule() {
    let v = validator();
    let bytes = std::fs::read(schemas_dir().join("fixtures/invalid/sequence-not-padded.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    let reason = v.validate_bytes(&bytes).err().map(|e| e.to_string());
    assert_eq!(
        reason.as_deref(),
        Some(r#"at /sequence: "1001" does not match "^[0-9]{20}$""#)
    );
}

#[test]
fn every_schema_file_is_draft_2020_12_with_a_urn_id() {
    let mut files = vec![schemas_dir().join("cloudevent.schema.json")];
    files.extend(EventType::ALL.map(|t| {
        schemas_dir()
            .join("events")
            .join(format!("{}.schema.json", t.as_str()))
    }));
    for path in files {
        let doc = read_json(&path);
        assert_eq!(
            doc["$schema"],
            "https://json-schema.org/draft/2020-12/schema",
            "{}",
            path.display()
        );
        let id = doc["$id"].as_str().unwrap_or_default();
        assert!(
            id.starts_with("urn:moodle-event-relay:schema:"),
            "{}",
            path.display()
        );
    }
}
