//! Personal data in a dead letter's event: which user an event is about (for
//! `--user`), which fields are personal, and the redaction `export --redact`
//! applies. The list of personal fields lives here and nowhere else.
//!
//! What an event is *about* (its subject user): `data.relateduserid`, the user
//! part of `subject`, and `data.objectid` plus `data.snapshot.id` for
//! `moodle.user.*` types or `data.snapshot.userid` for the others. The actor
//! (`data.userid`, who made the change) is kept apart: their only datum in an
//! event is their id, and selecting by actor would select other people's
//! events (an administrator's id is in thousands of them).
//!
//! Redaction keeps what says what failed (ids, type, times, the site, every
//! header) and removes what describes a person:
//! - `data.snapshot` is reduced to its ids (`id` and every `…id` key holding
//!   a number);
//! - the results of user look-ups in `data.enrichment` (functions whose name
//!   holds `user`) are replaced by `null`;
//! - everywhere else (`data.other`, other look-ups, fields an invalid event
//!   should not have) every key of [`PERSONAL_FIELDS`] goes, at any depth;
//! - values of those fields found in the body are also masked in the
//!   `x-relay-error-message` header (a Moodle error can quote a username).
//!
//! A redacted event does not always validate against its schema (e.g.
//! `moodle.user.deleted` requires `other.username`, enrolment snapshots
//! require `enrol`): it is a record of a failure, not an event to relay, and
//! `import` refuses it.

use relay_contract::dlq;
use serde_json::{Map, Value};

use crate::codec::Record;

/// Keys whose values identify or describe a person (user record fields of
/// Moodle, as in the schemas' `userSnapshot` and `core_user_*` answers).
pub const PERSONAL_FIELDS: &[&str] = &[
    "username",
    "email",
    "idnumber",
    "firstname",
    "lastname",
    "middlename",
    "alternatename",
    "firstnamephonetic",
    "lastnamephonetic",
    "fullname",
    "institution",
    "department",
    "city",
    "country",
    "address",
    "phone1",
    "phone2",
    "lang",
    "timezone",
    "description",
    "url",
    "profileimageurl",
    "profileimageurlsmall",
    "customfields",
    "preferences",
    "firstaccess",
    "lastaccess",
    "lastlogin",
    "lastip",
    "password",
];

/// Header added to a redacted record, holding what was removed.
pub const REDACTED_HEADER: &str = "x-dlq-redacted";
/// What replaces a personal value quoted in the error message header.
pub const MASK: &str = "[redacted]";

/// The users an event names, as far as its body says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct People {
    /// The subject user(s): the event is about them.
    pub about: Vec<u64>,
    /// Who made the change (`data.userid`), when not the system (0).
    pub actor: Option<u64>,
}

/// A user id as events write it: a number, or digits in a string (an invalid
/// event may carry one).
fn user_id(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .filter(|id| *id > 0)
}

impl People {
    /// The users of an event body (a JSON object).
    pub fn of(event: &Map<String, Value>) -> People {
        let mut about = Vec::new();
        let mut add = |id: Option<u64>| {
            if let Some(id) = id
                && !about.contains(&id)
            {
                about.push(id);
            }
        };
        if let Some(Value::String(subject)) = event.get("subject")
            && let Some((_, user)) = subject.rsplit_once("user/")
        {
            add(user.parse().ok().filter(|id| *id > 0));
        }
        let empty = Map::new();
        let data = event
            .get("data")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let snapshot = data.get("snapshot").and_then(Value::as_object);
        add(user_id(data.get("relateduserid")));
        let is_user_event =
            matches!(event.get("type"), Some(Value::String(t)) if t.starts_with("moodle.user."));
        if is_user_event {
            add(user_id(data.get("objectid")));
            add(snapshot.and_then(|s| user_id(s.get("id"))));
        } else {
            add(snapshot.and_then(|s| user_id(s.get("userid"))));
        }
        People {
            about,
            actor: user_id(data.get("userid")),
        }
    }
}

/// Removes every key of [`PERSONAL_FIELDS`] from `value`, at any depth.
fn strip(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| !PERSONAL_FIELDS.contains(&k.as_str()));
            map.values_mut().for_each(strip);
        }
        Value::Array(items) => items.iter_mut().for_each(strip),
        _ => {}
    }
}

/// A snapshot reduced to its ids.
fn ids_only(snapshot: &mut Map<String, Value>) {
    snapshot.retain(|k, v| (k == "id" || k.ends_with("id")) && (v.is_number() || v.is_null()));
}

/// The personal values in an event (strings under personal keys, at any
/// depth), to mask wherever else they are quoted. Short ones are left out:
/// masking "en" or "B" everywhere would hide ids and words.
pub fn personal_values(value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    collect(value, false, &mut found);
    found.sort_by_key(|s: &String| std::cmp::Reverse(s.len()));
    found.dedup();
    found
}

fn collect(value: &Value, personal: bool, found: &mut Vec<String>) {
    match value {
        Value::String(s) if personal && s.chars().count() >= 3 => found.push(s.clone()),
        Value::Object(map) => {
            for (k, v) in map {
                // Inside a personal record (custom profile fields), only the
                // values are personal, not names such as "type" or "name".
                let inside = match personal {
                    true => k == "value" || k == "data",
                    false => PERSONAL_FIELDS.contains(&k.as_str()),
                };
                collect(v, inside, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, personal, found)),
        _ => {}
    }
}

/// Removes the personal fields of an event body (a JSON object), in place.
pub fn redact_event(event: &mut Map<String, Value>) {
    if let Some(Value::Object(data)) = event.get_mut("data") {
        if let Some(Value::Object(snapshot)) = data.get_mut("snapshot") {
            ids_only(snapshot);
        }
        if let Some(Value::Object(enrichment)) = data.get_mut("enrichment") {
            for (function, call) in enrichment.iter_mut() {
                let result = call.as_object_mut().and_then(|c| c.get_mut("result"));
                if let Some(result) = result
                    && function.contains("user")
                {
                    *result = Value::Null;
                }
            }
        }
    }
    // Everywhere else (`other`, other look-ups, fields an invalid event
    // should not have): every personal key, at any depth.
    event.retain(|k, _| !PERSONAL_FIELDS.contains(&k.as_str()));
    event.values_mut().for_each(strip);
}

/// `text` with every one of `values` replaced by [`MASK`].
pub fn mask(text: &str, values: &[String]) -> String {
    values
        .iter()
        .fold(text.to_owned(), |text, v| text.replace(v.as_str(), MASK))
}

/// Redacts one exported record: its body as [`redact_event`] says, or
/// dropped when it is not a JSON object (nothing tells what it holds); the
/// error message masked; properties and other headers kept. Marks the record
/// with [`REDACTED_HEADER`].
pub fn redact_record(record: &mut Record) {
    let event = match &record.body {
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(event)) => Some(event),
            _ => None,
        },
        None => None,
    };
    let what = match event {
        Some(mut event) => {
            let values = personal_values(&Value::Object(event.clone()));
            if let Some(Value::String(message)) = record.headers.get_mut(dlq::ERROR_MESSAGE) {
                *message = mask(message, &values);
            }
            redact_event(&mut event);
            // A map of JSON values always serialises.
            record.body = Some(serde_json::to_string(&event).unwrap_or_default());
            "personal fields"
        }
        None => {
            record.body = Some(String::new());
            record.body_base64 = None;
            "body (not JSON)"
        }
    };
    record
        .headers
        .insert(REDACTED_HEADER.to_owned(), Value::String(what.to_owned()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    /// Every fixture of the contract that is a JSON object, by file name.
    fn fixtures() -> Vec<(String, Map<String, Value>)> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas/fixtures");
        let mut all = Vec::new();
        for dir in ["valid", "invalid"] {
            let entries = std::fs::read_dir(root.join(dir)).unwrap_or_else(|e| panic!("{e}"));
            for entry in entries {
                let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue; // the not-UTF-8 fixture
                };
                if let Ok(Value::Object(map)) = serde_json::from_str(&text) {
                    all.push((path.display().to_string(), map));
                }
            }
        }
        assert!(all.len() > 30, "fixtures not found: {}", all.len());
        all
    }

    fn keys(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    out.push(k.clone());
                    keys(v, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_fixture_loses_every_personal_field_and_keeps_what_failed() {
        for (name, original) in fixtures() {
            let mut redacted = original.clone();
            redact_event(&mut redacted);
            let text = serde_json::to_string(&redacted).unwrap_or_else(|e| panic!("{e}"));
            let back: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut names = Vec::new();
            keys(&back, &mut names);
            for field in PERSONAL_FIELDS {
                assert!(!names.iter().any(|k| k == field), "{name}: {field} kept");
            }
            for value in personal_values(&Value::Object(original.clone())) {
                assert!(!text.contains(&value), "{name}: {value:?} kept");
            }
            for top in ["id", "type", "time", "subject", "moodlesite", "sequence"] {
                assert_eq!(redacted.get(top), original.get(top), "{name}: {top}");
            }
            let data =
                |m: &Map<String, Value>, k: &str| m.get("data").and_then(|d| d.get(k)).cloned();
            for k in [
                "objectid",
                "userid",
                "relateduserid",
                "courseid",
                "timecreated",
            ] {
                assert_eq!(data(&redacted, k), data(&original, k), "{name}: data.{k}");
            }
            assert_eq!(People::of(&redacted), People::of(&original), "{name}");
        }
    }

    #[test]
    fn the_fixtures_hold_personal_values_at_all() {
        let found: usize = fixtures()
            .iter()
            .map(|(_, f)| personal_values(&Value::Object(f.clone())).len())
            .sum();
        assert!(found > 20, "{found}");
    }

    #[test]
    fn every_user_snapshot_field_of_the_schema_is_decided() {
        // Not personal: ids, flags and record times.
        const NOT_PERSONAL: &[&str] = &[
            "id",
            "auth",
            "suspended",
            "deleted",
            "confirmed",
            "mnethostid",
            "picture",
            "timecreated",
            "timemodified",
        ];
        let path =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas/cloudevent.schema.json");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{e}"));
        let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        let fields = schema["$defs"]["userSnapshot"]["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert!(fields.len() > 10);
        for field in fields.keys() {
            assert!(
                PERSONAL_FIELDS.contains(&field.as_str()) || NOT_PERSONAL.contains(&field.as_str()),
                "userSnapshot.{field}: add it to PERSONAL_FIELDS or to NOT_PERSONAL here"
            );
        }
    }

    #[test]
    fn the_subject_user_is_found_per_type() {
        let user = object(json!({"type": "moodle.user.updated", "subject": "user/42",
            "data": {"objectid": 42, "userid": 2, "relateduserid": null, "snapshot": {"id": 42}}}));
        assert_eq!(
            People::of(&user),
            People {
                about: vec![42],
                actor: Some(2)
            }
        );
        let enrolment = object(json!({"type": "moodle.enrolment.created",
            "data": {"objectid": 311, "userid": 0, "relateduserid": "43", "snapshot": {"id": 311, "userid": 44}}}));
        assert_eq!(
            People::of(&enrolment),
            People {
                about: vec![43, 44],
                actor: None
            }
        );
        let cohort = object(
            json!({"type": "moodle.cohort.member_added", "subject": "cohort/3/user/45", "data": 7}),
        );
        assert_eq!(
            People::of(&cohort),
            People {
                about: vec![45],
                actor: None
            }
        );
    }

    #[test]
    fn enrichment_user_records_go_and_other_results_lose_personal_keys() {
        let mut event = object(
            json!({"data": {"snapshot": {"id": 1, "userid": 2, "enrol": "manual", "name": "x"},
            "other": {"username": "u1", "enrol": "manual", "nested": [{"email": "e@x"}]},
            "enrichment": {
                "core_user_get_users_by_field": {"fetchedat": "t", "result": [{"id": 2, "username": "u1"}]},
                "core_course_get_courses_by_field": {"fetchedat": "t", "result": [{"id": 7, "shortname": "C7", "email": "c@x"}]}
            }}}),
        );
        redact_event(&mut event);
        assert_eq!(
            Value::Object(event),
            json!({"data": {"snapshot": {"id": 1, "userid": 2},
            "other": {"enrol": "manual", "nested": [{}]},
            "enrichment": {
                "core_user_get_users_by_field": {"fetchedat": "t", "result": null},
                "core_course_get_courses_by_field": {"fetchedat": "t", "result": [{"id": 7, "shortname": "C7"}]}
            }}})
        );
    }

    #[test]
    fn a_record_keeps_its_headers_and_loses_a_body_it_cannot_read() {
        let mut headers = Map::new();
        headers.insert(dlq::ERROR_CODE.into(), json!("invalidparameter"));
        headers.insert(dlq::ERROR_MESSAGE.into(), json!("user s.mensah is invalid"));
        let body = json!({"type": "moodle.user.updated", "data": {"snapshot": {"id": 42, "username": "s.mensah"}}});
        let mut record = Record {
            properties: Default::default(),
            headers,
            body: Some(body.to_string()),
            body_base64: None,
        };
        redact_record(&mut record);
        assert_eq!(
            record.headers[dlq::ERROR_MESSAGE],
            "user [redacted] is invalid"
        );
        assert_eq!(record.headers[dlq::ERROR_CODE], "invalidparameter");
        assert_eq!(record.headers[REDACTED_HEADER], "personal fields");
        assert!(!record.body.clone().unwrap_or_default().contains("s.mensah"));
        let mut binary = Record {
            body: None,
            body_base64: Some("/w==".into()),
            ..record
        };
        redact_record(&mut binary);
        assert_eq!(
            (binary.body.as_deref(), binary.body_base64),
            (Some(""), None)
        );
        assert_eq!(binary.headers[REDACTED_HEADER], "body (not JSON)");
    }

    #[test]
    fn quoted_personal_values_are_masked_longest_first() {
        let values = personal_values(
            &json!({"other": {"username": "ann", "email": "ann@example.edu", "lang": "en"}}),
        );
        assert_eq!(values, ["ann@example.edu", "ann"]);
        assert_eq!(
            mask("no user ann@example.edu (ann)", &values),
            "no user [redacted] ([redacted])"
        );
    }
}
