//! The twelve event types of DESIGN.md §2: one table row each, linking the CloudEvent
//! `type`, the Moodle event class and the compiled-in JSON Schema.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One relayed kind of Moodle change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    UserCreated,
    UserUpdated,
    UserDeleted,
    EnrolmentCreated,
    EnrolmentUpdated,
    EnrolmentDeleted,
    RoleAssigned,
    RoleUnassigned,
    CohortMemberAdded,
    CohortMemberRemoved,
    CourseCompleted,
    ModuleCompletionUpdated,
}

struct Spec {
    name: &'static str,
    moodle_class: &'static str,
    schema: &'static str,
}

macro_rules! schema {
    ($name:literal) => {
        include_str!(concat!("../../schemas/events/", $name, ".schema.json"))
    };
}

/// Indexed by `EventType as usize`; the order must follow the enum.
const SPECS: [Spec; 12] = [
    Spec {
        name: "moodle.user.created",
        moodle_class: r"\core\event\user_created",
        schema: schema!("moodle.user.created"),
    },
    Spec {
        name: "moodle.user.updated",
        moodle_class: r"\core\event\user_updated",
        schema: schema!("moodle.user.updated"),
    },
    Spec {
        name: "moodle.user.deleted",
        moodle_class: r"\core\event\user_deleted",
        schema: schema!("moodle.user.deleted"),
    },
    Spec {
        name: "moodle.enrolment.created",
        moodle_class: r"\core\event\user_enrolment_created",
        schema: schema!("moodle.enrolment.created"),
    },
    Spec {
        name: "moodle.enrolment.updated",
        moodle_class: r"\core\event\user_enrolment_updated",
        schema: schema!("moodle.enrolment.updated"),
    },
    Spec {
        name: "moodle.enrolment.deleted",
        moodle_class: r"\core\event\user_enrolment_deleted",
        schema: schema!("moodle.enrolment.deleted"),
    },
    Spec {
        name: "moodle.role.assigned",
        moodle_class: r"\core\event\role_assigned",
        schema: schema!("moodle.role.assigned"),
    },
    Spec {
        name: "moodle.role.unassigned",
        moodle_class: r"\core\event\role_unassigned",
        schema: schema!("moodle.role.unassigned"),
    },
    Spec {
        name: "moodle.cohort.member_added",
        moodle_class: r"\core\event\cohort_member_added",
        schema: schema!("moodle.cohort.member_added"),
    },
    Spec {
        name: "moodle.cohort.member_removed",
        moodle_class: r"\core\event\cohort_member_removed",
        schema: schema!("moodle.cohort.member_removed"),
    },
    Spec {
        name: "moodle.completion.course_completed",
        moodle_class: r"\core\event\course_completed",
        schema: schema!("moodle.completion.course_completed"),
    },
    Spec {
        name: "moodle.completion.module_updated",
        moodle_class: r"\core\event\course_module_completion_updated",
        schema: schema!("moodle.completion.module_updated"),
    },
];

/// The shared envelope schema every type's schema refers to.
pub(crate) const ENVELOPE_SCHEMA: &str = include_str!("../../schemas/cloudevent.schema.json");

/// Prefix of every schema `$id`, and so of every `dataschema` value.
pub const SCHEMA_ID_PREFIX: &str = "urn:moodle-event-relay:schema:";

/// `$id` of the envelope schema.
pub const ENVELOPE_SCHEMA_ID: &str = "urn:moodle-event-relay:schema:cloudevent:1";

impl EventType {
    /// Every type, in table order.
    pub const ALL: [EventType; 12] = [
        EventType::UserCreated,
        EventType::UserUpdated,
        EventType::UserDeleted,
        EventType::EnrolmentCreated,
        EventType::EnrolmentUpdated,
        EventType::EnrolmentDeleted,
        EventType::RoleAssigned,
        EventType::RoleUnassigned,
        EventType::CohortMemberAdded,
        EventType::CohortMemberRemoved,
        EventType::CourseCompleted,
        EventType::ModuleCompletionUpdated,
    ];

    fn spec(self) -> &'static Spec {
        &SPECS[self as usize]
    }

    /// The CloudEvent `type`, e.g. `moodle.user.created`.
    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// The routing key after the site id, e.g. `user.created`.
    pub fn routing_suffix(self) -> &'static str {
        // Every name starts with "moodle."; checked by a test.
        &self.spec().name["moodle.".len()..]
    }

    /// The Moodle event class, e.g. `\core\event\user_created`.
    pub fn moodle_class(self) -> &'static str {
        self.spec().moodle_class
    }

    /// The type's JSON Schema (draft 2020-12) as shipped in `schemas/events/`.
    pub fn schema_source(self) -> &'static str {
        self.spec().schema
    }

    /// The schema's `$id`, which is also the event's `dataschema` attribute.
    pub fn schema_id(self) -> String {
        format!("{SCHEMA_ID_PREFIX}{}:1", self.as_str())
    }

    /// The type for a Moodle event class name (with or without the leading `\`).
    pub fn from_moodle_class(class: &str) -> Option<Self> {
        let class = class.strip_prefix('\\').unwrap_or(class);
        Self::ALL
            .into_iter()
            .find(|t| &t.moodle_class()[1..] == class)
    }

    /// The type whose routing suffix is `suffix` (`user.created`).
    pub fn from_routing_suffix(suffix: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.routing_suffix() == suffix)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `type` is not one of the twelve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}")]
pub struct UnknownType(pub String);

impl FromStr for EventType {
    type Err = UnknownType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownType(s.to_owned()))
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_follow_the_enum_order() {
        for (i, t) in EventType::ALL.into_iter().enumerate() {
            assert_eq!(t as usize, i, "{t:?} is out of place in ALL");
        }
    }

    #[test]
    fn names_classes_and_suffixes_round_trip() {
        for t in EventType::ALL {
            assert!(t.as_str().starts_with("moodle."), "{t}");
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
            assert_eq!(EventType::from_moodle_class(t.moodle_class()), Some(t));
            assert_eq!(EventType::from_routing_suffix(t.routing_suffix()), Some(t));
        }
        assert_eq!(
            EventType::from_moodle_class(r"core\event\role_assigned"),
            Some(EventType::RoleAssigned)
        );
    }

    #[test]
    fn each_schema_declares_its_type_and_id() {
        for t in EventType::ALL {
            let schema: serde_json::Value =
                serde_json::from_str(t.schema_source()).unwrap_or_default();
            assert_eq!(schema["$id"], t.schema_id().as_str(), "{t}");
            assert_eq!(schema["properties"]["type"]["const"], t.as_str(), "{t}");
            assert_eq!(
                schema["properties"]["moodleevent"]["const"],
                t.moodle_class(),
                "{t}"
            );
        }
    }
}
