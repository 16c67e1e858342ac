//! What the operator reads: the `list` table (streamed, fixed columns), its
//! `--json` lines, the site × class × code summary, and `show`'s full view of
//! one message. Formatting only; no broker access here.

use std::collections::BTreeMap;
use std::io::{self, Write};

use lapin::BasicProperties;
use lapin::types::AMQPValue;
use serde_json::{Value, json};

use crate::codec::{Record, encode};
use crate::dead_letter::DeadLetter;

const DASH: &str = "-";

/// Column widths of the `list` table; the message column takes the rest.
const COLUMNS: [(&str, usize); 7] = [
    ("ID", 36),
    ("SITE", 12),
    ("TYPE", 28),
    ("CLASS", 9),
    ("CODE", 20),
    ("ATTEMPTS", 8),
    ("LAST FAILED", 20),
];
/// Longest message shown in the table (`show` has the whole text).
const MESSAGE_WIDTH: usize = 80;

/// Cuts `text` to `width` characters, marking the cut with `…`, and keeps it on one line.
fn fit(text: &str, width: usize) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= width {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

pub fn table_header(out: &mut dyn Write) -> io::Result<()> {
    let mut line = String::new();
    for (name, width) in COLUMNS {
        line.push_str(&format!("{name:<width$}  "));
    }
    line.push_str("MESSAGE");
    writeln!(out, "{line}")
}

pub fn table_row(out: &mut dyn Write, d: &DeadLetter) -> io::Result<()> {
    let last_failed = d
        .last_failed
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    let attempts = d.attempts.map(|n| n.to_string());
    let cells = [
        d.id.as_deref(),
        d.site.as_deref(),
        d.event_type.as_deref(),
        Some(d.class_label()),
        d.code.as_deref(),
        attempts.as_deref(),
        last_failed.as_deref(),
    ];
    let mut line = String::new();
    for (cell, (_, width)) in cells.into_iter().zip(COLUMNS) {
        let text = fit(cell.unwrap_or(DASH), width);
        line.push_str(&format!("{text:<width$}  "));
    }
    line.push_str(&fit(d.message.as_deref().unwrap_or(DASH), MESSAGE_WIDTH));
    writeln!(out, "{}", line.trim_end())
}

/// A line of `replay --dry-run`: the message and where it would go.
pub fn route_row(out: &mut dyn Write, d: &DeadLetter, exchange: &str, key: &str) -> io::Result<()> {
    let cell = |v: Option<&str>, width: usize| fit(v.unwrap_or(DASH), width);
    writeln!(
        out,
        "{:<36}  {:<12}  {:<9}  {:<20}  -> {exchange} {key}",
        cell(d.id.as_deref(), 36),
        cell(d.site.as_deref(), 12),
        cell(Some(d.class_label()), 9),
        cell(d.code.as_deref(), 20),
    )
}

/// One message as a JSON object (for `list --json`), on one line.
pub fn json_line(out: &mut dyn Write, d: &DeadLetter) -> io::Result<()> {
    let value = json!({
        "id": d.id,
        "site": d.site,
        "type": d.event_type,
        "class": d.class_label(),
        "code": d.code,
        "attempts": d.attempts,
        "last_failed_at": d.last_failed.map(|t| t.to_string()),
        "message": d.message,
        "original_exchange": d.exchange,
        "original_routing_key": d.routing_key,
        "replay_count": d.replay_count,
    });
    writeln!(out, "{value}")
}

/// Counts by site × class × code, for `list --summary`.
#[derive(Debug, Default)]
pub struct Summary {
    counts: BTreeMap<(String, String, String), u64>,
}

impl Summary {
    pub fn add(&mut self, d: &DeadLetter) {
        let key = (
            d.site.clone().unwrap_or_else(|| DASH.to_owned()),
            d.class_label().to_owned(),
            d.code.clone().unwrap_or_else(|| DASH.to_owned()),
        );
        *self.counts.entry(key).or_default() += 1;
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// The count of one (site, class, code) cell.
    pub fn count(&self, site: &str, class: &str, code: &str) -> u64 {
        let key = (site.to_owned(), class.to_owned(), code.to_owned());
        self.counts.get(&key).copied().unwrap_or(0)
    }

    pub fn write_table(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "{:<32}  {:<10}  {:<32}  {:>8}",
            "SITE", "CLASS", "CODE", "COUNT"
        )?;
        for ((site, class, code), n) in &self.counts {
            writeln!(
                out,
                "{:<32}  {:<10}  {:<32}  {n:>8}",
                site,
                class,
                fit(code, 32)
            )?;
        }
        writeln!(
            out,
            "{:<32}  {:<10}  {:<32}  {:>8}",
            "TOTAL",
            "",
            "",
            self.total()
        )
    }

    pub fn write_json(&self, out: &mut dyn Write) -> io::Result<()> {
        for ((site, class, code), n) in &self.counts {
            let value = json!({"site": site, "class": class, "code": code, "count": n});
            writeln!(out, "{value}")?;
        }
        Ok(())
    }
}

/// `show`: properties, headers (as plain values: AMQP timestamps as RFC 3339
/// times, tables as objects; `export` keeps the exact types) and the body,
/// pretty-printed when it is JSON.
pub fn show(out: &mut dyn Write, props: &BasicProperties, body: &[u8]) -> io::Result<()> {
    let record = Record::from_message(props, body);
    writeln!(out, "Properties:")?;
    let properties = serde_json::to_value(&record.properties).unwrap_or(Value::Null);
    if let Value::Object(map) = properties {
        for (k, v) in map {
            writeln!(out, "  {k}: {}", plain(&v))?;
        }
    }
    writeln!(out, "Headers:")?;
    if let Some(headers) = props.headers() {
        for (k, v) in headers.inner() {
            let value = match readable(v) {
                Value::String(s) => s,
                other => serde_json::to_string_pretty(&other).unwrap_or_default(),
            };
            writeln!(out, "  {k}: {}", indent(&value, 2))?;
        }
    }
    writeln!(out, "Body ({} bytes):", body.len())?;
    match serde_json::from_slice::<Value>(body) {
        Ok(json) => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        ),
        Err(_) => match std::str::from_utf8(body) {
            Ok(text) => writeln!(out, "{text}"),
            Err(_) => writeln!(
                out,
                "(not UTF-8; base64) {}",
                record.body_base64.unwrap_or_default()
            ),
        },
    }
}

/// A JSON value without quotes when it is a plain string.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An AMQP value for reading: numbers, text, times, objects and lists.
fn readable(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Timestamp(t) => i64::try_from(*t)
            .ok()
            .and_then(|s| jiff::Timestamp::from_second(s).ok())
            .map_or_else(|| json!(t), |at| json!(at.to_string())),
        AMQPValue::FieldTable(t) => Value::Object(
            t.inner()
                .iter()
                .map(|(k, v)| (k.to_string(), readable(v)))
                .collect(),
        ),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(readable).collect()),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::LongString(s) => json!(String::from_utf8_lossy(s.as_bytes())),
        other => match encode(other) {
            // Typed numbers ({"i32": 5}) read as the number itself.
            Value::Object(o) if o.len() == 1 && o.values().all(Value::is_number) => {
                o.into_iter().map(|(_, v)| v).next().unwrap_or(Value::Null)
            }
            plain => plain,
        },
    }
}

fn indent(text: &str, by: usize) -> String {
    text.replace('\n', &format!("\n{}", " ".repeat(by)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_contract::dlq::Class;

    fn letter() -> DeadLetter {
        DeadLetter {
            id: Some("0b6e0c52-5f3e-4a53-9d6e-8d5b5f0d0c11".into()),
            site: Some("lms-prod".into()),
            event_type: Some("moodle.user.created".into()),
            class: Some(Class::Transient),
            code: Some("http503".into()),
            message: Some("Service Unavailable\nretry later".into()),
            attempts: Some(5),
            last_failed: "2026-11-24T03:00:00.123Z".parse().ok(),
            ..DeadLetter::default()
        }
    }

    fn text(f: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
        let mut buf = Vec::new();
        f(&mut buf).unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8(buf).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn table_rows_line_up_under_the_header_and_stay_on_one_line() {
        let header = text(|b| table_header(b));
        let row = text(|b| table_row(b, &letter()));
        assert_eq!(row.lines().count(), 1);
        assert_eq!(header.find("SITE"), row.find("lms-prod"));
        assert_eq!(
            header.find("MESSAGE"),
            row.find("Service Unavailable retry later")
        );
        assert!(row.contains("2026-11-24T03:00:00Z"));
    }

    #[test]
    fn long_cells_are_cut_with_a_mark() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
    }

    #[test]
    fn json_lines_carry_every_column() {
        let line = text(|b| json_line(b, &letter()));
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["site"], "lms-prod");
        assert_eq!(v["attempts"], 5);
        assert_eq!(v["class"], "transient");
        assert_eq!(v["last_failed_at"], "2026-11-24T03:00:00.123Z");
        let unknown = text(|b| json_line(b, &DeadLetter::default()));
        let v: Value = serde_json::from_str(&unknown).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["class"], "unknown");
    }

    #[test]
    fn the_summary_counts_by_site_class_and_code() {
        let mut s = Summary::default();
        s.add(&letter());
        s.add(&letter());
        s.add(&DeadLetter {
            class: Some(Class::Poison),
            ..letter()
        });
        assert_eq!(s.count("lms-prod", "transient", "http503"), 2);
        assert_eq!(s.total(), 3);
        let table = text(|b| s.write_table(b));
        assert!(
            table
                .lines()
                .last()
                .is_some_and(|l| l.starts_with("TOTAL") && l.ends_with('3'))
        );
    }

    #[test]
    fn show_reads_x_death_as_plain_values() {
        use lapin::types::{FieldArray, FieldTable};
        let mut entry = FieldTable::default();
        entry.insert("time".into(), AMQPValue::Timestamp(1_795_000_000));
        entry.insert("count".into(), AMQPValue::LongLongInt(2));
        entry.insert(
            "queue".into(),
            AMQPValue::LongString("relay.ingest.a".into()),
        );
        let death = AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(entry)]));
        assert_eq!(
            readable(&death),
            json!([{"count": 2, "queue": "relay.ingest.a", "time": "2026-11-18T11:06:40Z"}])
        );
        assert_eq!(readable(&AMQPValue::LongInt(-3)), json!(-3));
    }

    #[test]
    fn show_pretty_prints_a_json_body() {
        let props = BasicProperties::default().with_message_id("m1".into());
        let shown = text(|b| show(b, &props, br#"{"a":{"b":1}}"#));
        assert!(shown.contains("message_id: m1"));
        assert!(shown.contains("\"a\": {\n    \"b\": 1\n  }"), "{shown}");
    }
}
