//! Identifiers: one newtype per kind of thing, each over a UUID v7.
//!
//! Identity in the registry is an id, never a name: many officials share a name, and units are
//! renamed. A distinct type per kind makes it impossible to pass a person where an office is
//! expected. UUID v7 ids are time-ordered, so ids minted in sequence index well.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $collection:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// The collection segment of this kind's resource names (`units/{uuid}`).
            pub const COLLECTION: &'static str = $collection;

            /// Mints a fresh, time-ordered id (UUID v7).
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID (from the wire, the store or a deterministic generator).
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            pub const fn uuid(self) -> Uuid {
                self.0
            }

            /// The resource name, for example `units/0190f5c2-...` (the same text as
            /// `to_string`, written into a string of the right size at once: responses carry
            /// many of them).
            pub fn resource_name(self) -> String {
                let mut name =
                    String::with_capacity($collection.len() + 1 + uuid::fmt::Hyphenated::LENGTH);
                name.push_str($collection);
                name.push('/');
                name.push_str(
                    self.0
                        .hyphenated()
                        .encode_lower(&mut Uuid::encode_buffer()),
                );
                name
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}/{}", $collection, self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            /// Accepts a bare UUID or a resource name (`units/{uuid}`).
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let bare = s
                    .strip_prefix(concat!($collection, "/"))
                    .unwrap_or(s);
                Uuid::parse_str(bare).map(Self)
            }
        }
    };
}

id_type!(
    /// A natural person who holds or held offices.
    PersonId,
    "persons"
);
id_type!(
    /// An organisational unit: a body, an agency or an administrative area.
    UnitId,
    "units"
);
id_type!(
    /// An office (a post) in a unit, such as the Secretary of a Party committee.
    OfficeId,
    "offices"
);
id_type!(
    /// One person's tenure of one office over one interval.
    HoldingId,
    "holdings"
);
id_type!(
    /// A pilot model: a named organisational arrangement.
    ModelId,
    "models"
);
id_type!(
    /// One unit's adoption of a pilot model, from adoption to withdrawal.
    AdoptionId,
    "adoptions"
);
id_type!(
    /// A term (nhiệm kỳ) of a body, such as the 2020-2025 term of a Party committee.
    TermId,
    "terms"
);

/// A reference to any entity, used by retractions and by error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum EntityRef {
    /// A person.
    Person(PersonId),
    /// A unit.
    Unit(UnitId),
    /// An office.
    Office(OfficeId),
    /// A holding.
    Holding(HoldingId),
    /// A pilot model.
    Model(ModelId),
    /// An adoption of a pilot model.
    Adoption(AdoptionId),
    /// A term.
    Term(TermId),
}

impl EntityRef {
    /// A number for the kind, 0 to 6, for compact encodings ([`EntityRef::from_code`]).
    pub fn code(self) -> u8 {
        match self {
            Self::Person(_) => 0,
            Self::Unit(_) => 1,
            Self::Office(_) => 2,
            Self::Holding(_) => 3,
            Self::Model(_) => 4,
            Self::Adoption(_) => 5,
            Self::Term(_) => 6,
        }
    }

    /// The reference of the kind numbered `code` ([`EntityRef::code`]) to `uuid`.
    pub fn from_code(code: u8, uuid: Uuid) -> Option<Self> {
        Some(match code {
            0 => Self::Person(uuid.into()),
            1 => Self::Unit(uuid.into()),
            2 => Self::Office(uuid.into()),
            3 => Self::Holding(uuid.into()),
            4 => Self::Model(uuid.into()),
            5 => Self::Adoption(uuid.into()),
            6 => Self::Term(uuid.into()),
            _ => return None,
        })
    }

    /// The underlying UUID, whatever the kind.
    pub fn uuid(self) -> Uuid {
        match self {
            Self::Person(id) => id.uuid(),
            Self::Unit(id) => id.uuid(),
            Self::Office(id) => id.uuid(),
            Self::Holding(id) => id.uuid(),
            Self::Model(id) => id.uuid(),
            Self::Adoption(id) => id.uuid(),
            Self::Term(id) => id.uuid(),
        }
    }
}

impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Person(id) => id.fmt(f),
            Self::Unit(id) => id.fmt(f),
            Self::Office(id) => id.fmt(f),
            Self::Holding(id) => id.fmt(f),
            Self::Model(id) => id.fmt(f),
            Self::Adoption(id) => id.fmt(f),
            Self::Term(id) => id.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_own_code() {
        let uuid = Uuid::now_v7();
        let all = [
            EntityRef::Person(uuid.into()),
            EntityRef::Unit(uuid.into()),
            EntityRef::Office(uuid.into()),
            EntityRef::Holding(uuid.into()),
            EntityRef::Model(uuid.into()),
            EntityRef::Adoption(uuid.into()),
            EntityRef::Term(uuid.into()),
        ];
        for reference in all {
            assert_eq!(
                EntityRef::from_code(reference.code(), uuid),
                Some(reference)
            );
        }
        assert_eq!(EntityRef::from_code(7, uuid), None);
    }

    #[test]
    fn resource_names_are_the_displayed_names() {
        let unit = UnitId::new();
        assert_eq!(unit.resource_name(), unit.to_string());
        assert!(unit.resource_name().starts_with("units/"));
        let holding = HoldingId::new();
        assert_eq!(holding.resource_name(), holding.to_string());
    }

    #[test]
    fn parses_bare_and_resource_names() {
        let id = UnitId::new();
        assert_eq!(id.to_string().parse::<UnitId>().ok(), Some(id));
        assert_eq!(id.uuid().to_string().parse::<UnitId>().ok(), Some(id));
        assert!("offices/not-a-uuid".parse::<OfficeId>().is_err());
    }

    #[test]
    fn new_ids_are_v7_and_ordered() {
        let a = PersonId::new();
        let b = PersonId::new();
        assert_eq!(a.uuid().get_version_num(), 7);
        assert!(a < b);
    }
}
