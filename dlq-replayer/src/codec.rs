//! The JSON-lines record of one message, used by `export`, `import` and the
//! `purge` backup: body, AMQP properties and headers, kept exactly so a
//! message round-trips through a file.
//!
//! ```json
//! {"properties":{"message_id":"…","type":"moodle.user.created","delivery_mode":2},
//!  "headers":{"x-relay-error-class":"transient","x-relay-attempts":5},
//!  "body":"{\"specversion\":\"1.0\",…}"}
//! ```
//!
//! The body is `body` (text) when it is valid UTF-8, else `body_base64`.
//! Header values: a JSON string is an AMQP long string, an integer a signed
//! 64-bit integer, `true`/`false` a boolean, an array a field array, `null`
//! void; every other AMQP type is an object naming it, e.g.
//! `{"timestamp":1795000000}`, `{"table":{…}}`, `{"i32":5}`,
//! `{"shortstr":"…"}`, `{"bytes":"<base64>"}`, `{"str_base64":"<base64>"}`
//! (a long string that is not UTF-8). The broker's `x-delivery-count` is not
//! kept: it counts deliveries in this queue, not something about the message.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use lapin::BasicProperties;
use lapin::types::{
    AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString, ShortString,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::dead_letter::DELIVERY_COUNT;

/// One message as a line of JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub properties: Properties,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub headers: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
}

/// The AMQP basic properties other than headers; absent ones are left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_mode: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
}

fn text(s: &Option<ShortString>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

impl Record {
    pub fn from_message(props: &BasicProperties, body: &[u8]) -> Record {
        let properties = Properties {
            content_type: text(props.content_type()),
            content_encoding: text(props.content_encoding()),
            delivery_mode: *props.delivery_mode(),
            priority: *props.priority(),
            correlation_id: text(props.correlation_id()),
            reply_to: text(props.reply_to()),
            expiration: text(props.expiration()),
            message_id: text(props.message_id()),
            timestamp: *props.timestamp(),
            kind: text(props.kind()),
            user_id: text(props.user_id()),
            app_id: text(props.app_id()),
            cluster_id: text(props.cluster_id()),
        };
        let headers = props
            .headers()
            .as_ref()
            .map(|h| {
                h.inner()
                    .iter()
                    .filter(|(k, _)| k.as_str() != DELIVERY_COUNT)
                    .map(|(k, v)| (k.to_string(), encode(v)))
                    .collect()
            })
            .unwrap_or_default();
        let (body, body_base64) = match std::str::from_utf8(body) {
            Ok(text) => (Some(text.to_owned()), None),
            Err(_) => (None, Some(BASE64.encode(body))),
        };
        Record {
            properties,
            headers,
            body,
            body_base64,
        }
    }

    /// The properties and body to publish; fails on a malformed record.
    pub fn to_message(&self) -> Result<(BasicProperties, Vec<u8>), String> {
        let body = match (&self.body, &self.body_base64) {
            (Some(text), None) => text.clone().into_bytes(),
            (None, Some(b64)) => BASE64
                .decode(b64)
                .map_err(|e| format!("body_base64: {e}"))?,
            _ => return Err("exactly one of body and body_base64 is needed".to_owned()),
        };
        let p = &self.properties;
        let short = |name: &str, v: &Option<String>| -> Result<Option<ShortString>, String> {
            v.as_ref()
                .map(|s| ShortString::try_new(s.as_str()).map_err(|e| format!("{name}: {e}")))
                .transpose()
        };
        let mut props = BasicProperties::default();
        let strings = [
            ("content_type", &p.content_type),
            ("content_encoding", &p.content_encoding),
            ("correlation_id", &p.correlation_id),
            ("reply_to", &p.reply_to),
            ("expiration", &p.expiration),
            ("message_id", &p.message_id),
            ("type", &p.kind),
            ("user_id", &p.user_id),
            ("app_id", &p.app_id),
            ("cluster_id", &p.cluster_id),
        ];
        for (name, value) in strings {
            if let Some(v) = short(name, value)? {
                props = match name {
                    "content_type" => props.with_content_type(v),
                    "content_encoding" => props.with_content_encoding(v),
                    "correlation_id" => props.with_correlation_id(v),
                    "reply_to" => props.with_reply_to(v),
                    "expiration" => props.with_expiration(v),
                    "message_id" => props.with_message_id(v),
                    "type" => props.with_type(v),
                    "user_id" => props.with_user_id(v),
                    "app_id" => props.with_app_id(v),
                    _ => props.with_cluster_id(v),
                };
            }
        }
        if let Some(m) = p.delivery_mode {
            props = props.with_delivery_mode(m);
        }
        if let Some(n) = p.priority {
            props = props.with_priority(n);
        }
        if let Some(t) = p.timestamp {
            props = props.with_timestamp(t);
        }
        if !self.headers.is_empty() {
            props = props.with_headers(decode_table(&self.headers)?);
        }
        Ok((props, body))
    }
}

/// An AMQP value as JSON, in the format described at the top of this module.
pub fn encode(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(n) => json!({ "i8": n }),
        AMQPValue::ShortShortUInt(n) => json!({ "u8": n }),
        AMQPValue::ShortInt(n) => json!({ "i16": n }),
        AMQPValue::ShortUInt(n) => json!({ "u16": n }),
        AMQPValue::LongInt(n) => json!({ "i32": n }),
        AMQPValue::LongUInt(n) => json!({ "u32": n }),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::Float(f) => json!({ "f32": f }),
        AMQPValue::Double(f) => json!({ "f64": f }),
        AMQPValue::DecimalValue(d) => json!({ "decimal": { "scale": d.scale, "value": d.value } }),
        AMQPValue::ShortString(s) => json!({ "shortstr": s.as_str() }),
        AMQPValue::LongString(s) => match std::str::from_utf8(s.as_bytes()) {
            Ok(text) => json!(text),
            Err(_) => json!({ "str_base64": BASE64.encode(s.as_bytes()) }),
        },
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(encode).collect()),
        AMQPValue::Timestamp(t) => json!({ "timestamp": t }),
        AMQPValue::FieldTable(t) => json!({ "table": encode_table(t) }),
        AMQPValue::ByteArray(b) => json!({ "bytes": BASE64.encode(b.as_slice()) }),
        AMQPValue::Void => Value::Null,
    }
}

fn encode_table(table: &FieldTable) -> Map<String, Value> {
    table
        .inner()
        .iter()
        .map(|(k, v)| (k.to_string(), encode(v)))
        .collect()
}

fn decode_table(map: &Map<String, Value>) -> Result<FieldTable, String> {
    let mut table = FieldTable::default();
    for (k, v) in map {
        let key = ShortString::try_new(k.as_str()).map_err(|e| format!("header {k:?}: {e}"))?;
        table.insert(key, decode(v).map_err(|e| format!("header {k:?}: {e}"))?);
    }
    Ok(table)
}

/// The AMQP value a JSON value from [`encode`] stands for.
pub fn decode(value: &Value) -> Result<AMQPValue, String> {
    Ok(match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
        Value::Number(n) => AMQPValue::LongLongInt(n.as_i64().ok_or("not a 64-bit integer")?),
        Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(decode).collect::<Result<Vec<_>, _>>()?,
        )),
        Value::Object(o) => {
            let mut entries = o.iter();
            let (Some((kind, v)), None) = (entries.next(), entries.next()) else {
                return Err("a typed value is an object with exactly one key".to_owned());
            };
            typed(kind, v)?
        }
    })
}

fn typed(kind: &str, v: &Value) -> Result<AMQPValue, String> {
    let int = || v.as_i64().ok_or_else(|| format!("{kind}: not an integer"));
    let uint = || {
        v.as_u64()
            .ok_or_else(|| format!("{kind}: not an unsigned integer"))
    };
    let range = |_| format!("{kind}: out of range");
    let b64 = || {
        v.as_str()
            .ok_or_else(|| format!("{kind}: not a string"))
            .and_then(|s| BASE64.decode(s).map_err(|e| format!("{kind}: {e}")))
    };
    Ok(match kind {
        "i8" => AMQPValue::ShortShortInt(int()?.try_into().map_err(range)?),
        "u8" => AMQPValue::ShortShortUInt(uint()?.try_into().map_err(range)?),
        "i16" => AMQPValue::ShortInt(int()?.try_into().map_err(range)?),
        "u16" => AMQPValue::ShortUInt(uint()?.try_into().map_err(range)?),
        "i32" => AMQPValue::LongInt(int()?.try_into().map_err(range)?),
        "u32" => AMQPValue::LongUInt(uint()?.try_into().map_err(range)?),
        "f32" => AMQPValue::Float(v.as_f64().ok_or("f32: not a number")? as f32),
        "f64" => AMQPValue::Double(v.as_f64().ok_or("f64: not a number")?),
        "decimal" => AMQPValue::DecimalValue(DecimalValue {
            scale: v["scale"]
                .as_u64()
                .and_then(|s| s.try_into().ok())
                .ok_or("decimal: scale")?,
            value: v["value"]
                .as_u64()
                .and_then(|s| s.try_into().ok())
                .ok_or("decimal: value")?,
        }),
        "shortstr" => AMQPValue::ShortString(
            ShortString::try_new(v.as_str().ok_or("shortstr: not a string")?)
                .map_err(|e| e.to_string())?,
        ),
        "str_base64" => AMQPValue::LongString(LongString::from(b64()?)),
        "bytes" => AMQPValue::ByteArray(ByteArray::from(b64()?)),
        "timestamp" => AMQPValue::Timestamp(uint()?),
        "table" => {
            AMQPValue::FieldTable(decode_table(v.as_object().ok_or("table: not an object")?)?)
        }
        other => return Err(format!("unknown value type {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> FieldTable {
        let mut inner = FieldTable::default();
        inner.insert(
            "reason".into(),
            AMQPValue::LongString("delivery_limit".into()),
        );
        inner.insert("time".into(), AMQPValue::Timestamp(1_795_000_000));
        let mut t = FieldTable::default();
        let values = [
            AMQPValue::Boolean(true),
            AMQPValue::ShortShortInt(-3),
            AMQPValue::ShortShortUInt(250),
            AMQPValue::ShortInt(-300),
            AMQPValue::ShortUInt(60_000),
            AMQPValue::LongInt(-70_000),
            AMQPValue::LongUInt(4_000_000_000),
            AMQPValue::LongLongInt(-5),
            AMQPValue::Float(1.5),
            AMQPValue::Double(2.25),
            AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 314,
            }),
            AMQPValue::ShortString("short".into()),
            AMQPValue::LongString("long ü".into()),
            AMQPValue::LongString(LongString::from(vec![0xff, 0x00])),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(inner)])),
            AMQPValue::Timestamp(7),
            AMQPValue::ByteArray(ByteArray::from(vec![1, 2, 3])),
            AMQPValue::Void,
        ];
        for (i, v) in values.into_iter().enumerate() {
            t.insert(format!("h{i:02}").into(), v);
        }
        t
    }

    #[test]
    fn every_amqp_value_type_round_trips_through_a_json_line() {
        let props = BasicProperties::default()
            .with_message_id("id-1".into())
            .with_type("moodle.user.created".into())
            .with_content_type("application/cloudevents+json".into())
            .with_delivery_mode(2)
            .with_priority(3)
            .with_timestamp(1_795_000_000)
            .with_app_id("relay-worker".into())
            .with_headers(every_kind());
        for body in [&b"{\"a\":1}"[..], &[0xff, 0xfe, 0x00][..], &b""[..]] {
            let record = Record::from_message(&props, body);
            let line = serde_json::to_string(&record).unwrap_or_else(|e| panic!("{e}"));
            let back: Record = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}"));
            let (p, b) = back.to_message().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p, props, "{line}");
            assert_eq!(b, body);
        }
    }

    #[test]
    fn text_bodies_stay_readable_and_binary_ones_are_base64() {
        let text = Record::from_message(&BasicProperties::default(), b"{\"x\":1}");
        assert_eq!(text.body.as_deref(), Some("{\"x\":1}"));
        assert_eq!(text.body_base64, None);
        let binary = Record::from_message(&BasicProperties::default(), &[0xff]);
        assert_eq!(binary.body_base64.as_deref(), Some("/w=="));
    }

    #[test]
    fn the_brokers_delivery_count_is_not_exported() {
        let mut h = FieldTable::default();
        h.insert(DELIVERY_COUNT.into(), AMQPValue::LongLongInt(3));
        h.insert("keep".into(), AMQPValue::LongLongInt(1));
        let r = Record::from_message(&BasicProperties::default().with_headers(h), b"");
        assert_eq!(r.headers.keys().collect::<Vec<_>>(), ["keep"]);
    }

    #[test]
    fn malformed_records_are_refused_with_a_reason() {
        let bad = [
            r#"{"properties":{},"body":"a","body_base64":"YQ=="}"#,
            r#"{"properties":{}}"#,
            r#"{"properties":{},"body":"a","headers":{"h":{"i8":300}}}"#,
            r#"{"properties":{},"body":"a","headers":{"h":{"what":1}}}"#,
            r#"{"properties":{},"body":"a","headers":{"h":1.5}}"#,
        ];
        for line in bad {
            let record: Record = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}"));
            assert!(record.to_message().is_err(), "{line}");
        }
        assert!(
            serde_json::from_str::<Record>(r#"{"properties":{"colour":"x"},"body":""}"#).is_err()
        );
    }
}
