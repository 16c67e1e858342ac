//! Typed reading and writing of the DLQ headers on an AMQP header table, so the
//! worker (which writes them) and `dlq-replayer` (which reads and resets them)
//! agree on every value's type.
//!
//! Writers always use one type: counts are `LongLongInt` (RabbitMQ's own type
//! for integers, as in `x-death`), texts are `LongString`. Readers are lenient,
//! because a header may have been set by other tools on the way:
//!
//! - a count is read from every AMQP integer type (`ShortShortInt` to
//!   `LongLongInt`; lapin has no `LongLongUInt` value) and from a decimal
//!   string, which is what a header typed by hand into the management UI
//!   becomes. A negative or over-range value (beyond `u32`) is no count any
//!   relay writes: it reads as absent, so [`attempts`] starts again from 0 and
//!   the worker's next write replaces it with a sane value;
//! - a text is read from a `LongString` (invalid UTF-8 replaced) or a
//!   `ShortString`.

use std::collections::BTreeMap;

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use super::{ATTEMPTS, Class, ERROR_CLASS, REPLAY_COUNT};

/// A header table the writers can set values in: lapin's [`FieldTable`], or
/// the map inside one (which can also remove entries).
pub trait HeadersMut {
    /// Sets `name` to `value`, replacing any previous value.
    fn set(&mut self, name: &str, value: AMQPValue);
}

impl HeadersMut for FieldTable {
    fn set(&mut self, name: &str, value: AMQPValue) {
        self.insert(ShortString::from(name), value);
    }
}

impl HeadersMut for BTreeMap<ShortString, AMQPValue> {
    fn set(&mut self, name: &str, value: AMQPValue) {
        self.insert(ShortString::from(name), value);
    }
}

/// A value as a count: any integer type or a decimal string, within `u32`.
pub fn count_value(value: &AMQPValue) -> Option<u32> {
    match value {
        AMQPValue::ShortShortInt(n) => u32::try_from(*n).ok(),
        AMQPValue::ShortShortUInt(n) => Some(u32::from(*n)),
        AMQPValue::ShortInt(n) => u32::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u32::from(*n)),
        AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(*n),
        AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::ShortString(_) | AMQPValue::LongString(_) => text_value(value)?.parse().ok(),
        _ => None,
    }
}

/// A value as text, if it is a string of either kind.
pub fn text_value(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// Header `name` as a count; `None` when absent or not a count.
pub fn count(headers: &FieldTable, name: &str) -> Option<u32> {
    headers.inner().get(name).and_then(count_value)
}

/// Header `name` as text; `None` when absent or not a string.
pub fn text(headers: &FieldTable, name: &str) -> Option<String> {
    headers.inner().get(name).and_then(text_value)
}

/// Sets header `name` to `value` as a `LongString`.
pub fn set_text(headers: &mut impl HeadersMut, name: &str, value: &str) {
    headers.set(name, AMQPValue::LongString(LongString::from(value)));
}

/// How many delayed retries the message has had ([`ATTEMPTS`]); 0 when absent
/// or unreadable.
pub fn attempts(headers: &FieldTable) -> u32 {
    count(headers, ATTEMPTS).unwrap_or(0)
}

/// Records `attempts` in [`ATTEMPTS`], as a `LongLongInt`.
pub fn set_attempts(headers: &mut impl HeadersMut, attempts: u32) {
    headers.set(ATTEMPTS, AMQPValue::LongLongInt(i64::from(attempts)));
}

/// How many times `dlq-replayer` put the message back ([`REPLAY_COUNT`]); 0
/// when absent or unreadable.
pub fn replay_count(headers: &FieldTable) -> u32 {
    count(headers, REPLAY_COUNT).unwrap_or(0)
}

/// Records `count` in [`REPLAY_COUNT`], as a `LongLongInt`.
pub fn set_replay_count(headers: &mut impl HeadersMut, count: u32) {
    headers.set(REPLAY_COUNT, AMQPValue::LongLongInt(i64::from(count)));
}

/// The failure class in [`ERROR_CLASS`]; `None` when absent or not a class
/// name (a message not dead-lettered by the worker, or a foreign value).
pub fn class(headers: &FieldTable) -> Option<Class> {
    text(headers, ERROR_CLASS)?.parse().ok()
}

/// Records `class` in [`ERROR_CLASS`].
pub fn set_class(headers: &mut impl HeadersMut, class: Class) {
    set_text(headers, ERROR_CLASS, class.as_str());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &str, value: AMQPValue) -> FieldTable {
        let mut headers = FieldTable::default();
        headers.set(name, value);
        headers
    }

    fn attempts_of(value: AMQPValue) -> u32 {
        attempts(&with(ATTEMPTS, value))
    }

    #[test]
    fn attempts_are_read_from_every_integer_type() {
        assert_eq!(attempts_of(AMQPValue::ShortShortInt(7)), 7);
        assert_eq!(attempts_of(AMQPValue::ShortShortUInt(200)), 200);
        assert_eq!(attempts_of(AMQPValue::ShortInt(300)), 300);
        assert_eq!(attempts_of(AMQPValue::ShortUInt(60_000)), 60_000);
        assert_eq!(attempts_of(AMQPValue::LongInt(70_000)), 70_000);
        assert_eq!(attempts_of(AMQPValue::LongUInt(u32::MAX)), u32::MAX);
        assert_eq!(attempts_of(AMQPValue::LongLongInt(3)), 3);
        assert_eq!(
            attempts_of(AMQPValue::LongLongInt(i64::from(u32::MAX))),
            u32::MAX
        );
    }

    #[test]
    fn attempts_are_read_from_decimal_strings() {
        assert_eq!(attempts_of(AMQPValue::LongString("6".into())), 6);
        assert_eq!(attempts_of(AMQPValue::ShortString("8".into())), 8);
    }

    #[test]
    fn absent_negative_over_range_or_garbage_attempts_read_as_zero() {
        assert_eq!(attempts(&FieldTable::default()), 0);
        for value in [
            AMQPValue::ShortShortInt(-1),
            AMQPValue::ShortInt(-2),
            AMQPValue::LongInt(i32::MIN),
            AMQPValue::LongLongInt(-1),
            AMQPValue::LongLongInt(i64::from(u32::MAX) + 1),
            AMQPValue::LongString("".into()),
            AMQPValue::LongString("-3".into()),
            AMQPValue::LongString("three".into()),
            AMQPValue::LongString(vec![0xff, 0xfe].into()),
            AMQPValue::Boolean(true),
            AMQPValue::Double(2.0),
            AMQPValue::Timestamp(2),
            AMQPValue::Void,
        ] {
            assert_eq!(attempts_of(value.clone()), 0, "{value:?}");
        }
        assert_eq!(count(&FieldTable::default(), ATTEMPTS), None);
        assert_eq!(
            count(&with(ATTEMPTS, AMQPValue::LongLongInt(-1)), ATTEMPTS),
            None
        );
    }

    #[test]
    fn counts_are_written_as_long_long_ints_in_either_table() {
        let mut table = with(ATTEMPTS, AMQPValue::LongString("9".into()));
        set_attempts(&mut table, 4);
        set_replay_count(&mut table, 2);
        assert_eq!(
            table.inner().get(ATTEMPTS),
            Some(&AMQPValue::LongLongInt(4))
        );
        assert_eq!((attempts(&table), replay_count(&table)), (4, 2));

        let mut map = BTreeMap::new();
        set_attempts(&mut map, 1);
        let table = FieldTable::from(map);
        assert_eq!(
            table.inner().get(ATTEMPTS),
            Some(&AMQPValue::LongLongInt(1))
        );
        assert_eq!(replay_count(&table), 0);
    }

    #[test]
    fn texts_are_read_from_either_string_type_only() {
        let mut headers = FieldTable::default();
        set_text(&mut headers, "a", "long");
        headers.set("b", AMQPValue::ShortString("short".into()));
        headers.set("c", AMQPValue::LongString(vec![b'x', 0xff].into()));
        headers.set("d", AMQPValue::LongLongInt(1));
        assert_eq!(text(&headers, "a").as_deref(), Some("long"));
        assert_eq!(text(&headers, "b").as_deref(), Some("short"));
        assert_eq!(text(&headers, "c").as_deref(), Some("x\u{fffd}"));
        assert_eq!(text(&headers, "d"), None);
        assert_eq!(text(&headers, "e"), None);
    }

    #[test]
    fn the_class_is_read_back_and_garbage_is_none() {
        let mut headers = FieldTable::default();
        assert_eq!(class(&headers), None);
        for c in Class::ALL {
            set_class(&mut headers, c);
            assert_eq!(class(&headers), Some(c));
        }
        set_text(&mut headers, ERROR_CLASS, "Transient");
        assert_eq!(class(&headers), None);
        headers.set(ERROR_CLASS, AMQPValue::LongLongInt(0));
        assert_eq!(class(&headers), None);
    }
}
