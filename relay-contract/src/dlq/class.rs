//! The failure classes (DESIGN.md §4): what kind of problem sent a message to
//! the DLQ. The worker decides the class; `dlq-replayer` filters on it. The
//! text form is the value of [`ERROR_CLASS`](super::ERROR_CLASS) and the
//! `class` label of the worker's metrics, so it never changes.

use std::fmt;
use std::str::FromStr;

/// What kind of failure this is; it alone decides what happens next (DESIGN.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// May work later: broker refused or could not route, Moodle overloaded.
    Transient,
    /// Moodle refused our credentials: the whole site must stop.
    Auth,
    /// Moodle refused the request itself: retrying cannot help.
    Client,
    /// The change conflicts with data downstream or in Moodle: record and go on.
    Conflict,
    /// The message is not a valid event.
    Invalid,
    /// The message kept killing workers; dead-lettered by the broker itself.
    Poison,
}

impl Class {
    /// Every class, in the order the design lists them.
    pub const ALL: [Class; 6] = [
        Class::Transient,
        Class::Auth,
        Class::Client,
        Class::Conflict,
        Class::Invalid,
        Class::Poison,
    ];

    /// Label value in metrics and the DLQ's `x-relay-error-class` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Transient => "transient",
            Class::Auth => "auth",
            Class::Client => "client",
            Class::Conflict => "conflict",
            Class::Invalid => "invalid",
            Class::Poison => "poison",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that is not one of the [`Class`] names (they are lower case, exact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownClass(pub String);

impl fmt::Display for UnknownClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown failure class {:?}: expected one of ", self.0)?;
        for (i, class) in Class::ALL.iter().enumerate() {
            let separator = if i == 0 { "" } else { ", " };
            write!(f, "{separator}{class}")?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownClass {}

impl FromStr for Class {
    type Err = UnknownClass;

    fn from_str(text: &str) -> Result<Class, UnknownClass> {
        Class::ALL
            .into_iter()
            .find(|class| class.as_str() == text)
            .ok_or_else(|| UnknownClass(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_the_header_values() {
        let names: Vec<&str> = Class::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "transient",
                "auth",
                "client",
                "conflict",
                "invalid",
                "poison"
            ]
        );
        for class in Class::ALL {
            assert_eq!(class.to_string().parse(), Ok(class));
        }
    }

    #[test]
    fn unknown_names_are_refused_with_the_allowed_ones() {
        for text in ["", "Transient", "transient ", "unknown"] {
            assert_eq!(text.parse::<Class>(), Err(UnknownClass(text.to_owned())));
        }
        let err = "transiant".parse::<Class>().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "unknown failure class \"transiant\": expected one of \
                 transient, auth, client, conflict, invalid, poison"
            )
        );
    }
}
