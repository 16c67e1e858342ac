//! The typed CloudEvent: what a relayed Moodle event holds (DESIGN.md §2).
//!
//! Parsing does not validate: use [`crate::Validator`] on untrusted bytes, which
//! checks the schema and then returns an [`Envelope`]. Serialising an envelope
//! gives back every attribute it was parsed from.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{EventType, SiteId};

/// A CloudEvents 1.0 event as the relay carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Always `"1.0"`.
    pub specversion: String,
    /// Made once when Moodle observed the event; the idempotency key downstream.
    pub id: Uuid,
    /// The site's wwwroot URL.
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// `user/42`, `course/2/user/4`, `cohort/7/user/4`, `context/1/user/4`.
    pub subject: String,
    pub time: EventTime,
    /// Always `"application/json"`.
    pub datacontenttype: String,
    /// The `$id` of the type's schema.
    pub dataschema: String,
    pub moodlesite: SiteId,
    /// The Moodle event class, e.g. `\core\event\user_created`.
    pub moodleevent: String,
    pub sequence: Sequence,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
    pub data: EventData,
}

/// `data`: the Moodle event's fields, the entity snapshot, and what the worker added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventData {
    pub objectid: Option<i64>,
    pub userid: Option<i64>,
    pub relateduserid: Option<i64>,
    pub courseid: i64,
    pub contextid: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contextlevel: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contextinstanceid: Option<i64>,
    pub crud: Crud,
    pub anonymous: u8,
    pub timecreated: i64,
    /// Present in every event; `null` when Moodle gave none.
    pub other: Option<Map<String, Value>>,
    pub snapshot: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<bool>,
    /// Keyed by Moodle web-service function name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrichment: Option<Map<String, Value>>,
}

/// Moodle's create / read / update / delete flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Crud {
    #[serde(rename = "c")]
    Create,
    #[serde(rename = "r")]
    Read,
    #[serde(rename = "u")]
    Update,
    #[serde(rename = "d")]
    Delete,
}

/// The event's `time`, kept exactly as written: a relay never reformats it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventTime(String);

impl EventTime {
    /// The time as written (RFC 3339, UTC).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The instant, for lag and age computations.
    pub fn timestamp(&self) -> Result<jiff::Timestamp, jiff::Error> {
        self.0.parse()
    }
}

impl From<jiff::Timestamp> for EventTime {
    fn from(ts: jiff::Timestamp) -> Self {
        EventTime(ts.to_string())
    }
}

/// Per-site, strictly increasing event number; on the wire a 20-digit decimal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sequence(pub u64);

/// Why a `sequence` string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sequence must be exactly 20 decimal digits, got {0:?}")]
pub struct BadSequence(pub String);

impl fmt::Display for Sequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // u64::MAX has 20 digits, so every value fits.
        write!(f, "{:020}", self.0)
    }
}

impl FromStr for Sequence {
    type Err = BadSequence;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadSequence(s.to_owned()));
        }
        s.parse()
            .map(Sequence)
            .map_err(|_| BadSequence(s.to_owned()))
    }
}

impl Serialize for Sequence {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sequence {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_is_zero_padded_to_twenty_digits() {
        assert_eq!(Sequence(42).to_string(), "00000000000000000042");
        assert_eq!(Sequence(u64::MAX).to_string(), "18446744073709551615");
        assert_eq!("00000000000000000042".parse(), Ok(Sequence(42)));
    }

    #[test]
    fn sequence_orders_as_a_string_as_it_does_as_a_number() {
        let (a, b) = (Sequence(9), Sequence(10));
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
    }

    #[test]
    fn sequence_refuses_short_signed_and_overflowing_values() {
        for bad in ["42", "+0000000000000000042", "99999999999999999999", ""] {
            assert!(bad.parse::<Sequence>().is_err(), "{bad}");
        }
    }

    #[test]
    fn event_time_is_kept_verbatim() {
        let t: EventTime =
            serde_json::from_str(r#""2026-11-24T09:17:00.250Z""#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.as_str(), "2026-11-24T09:17:00.250Z");
        assert!(t.timestamp().is_ok());
    }
}
