//! The event catalogue: every fact the registry records, in the past tense.
//!
//! Events are immutable and never deleted. Each has an explicit, stable type name and a schema
//! version; the payload is JSON. The store keeps type, version and payload side by side, so
//! [`Event::decode`] can upcast old versions as the catalogue evolves. A golden-file test
//! (`tests/golden.rs`) keeps a stored sample of every type and version readable.
//!
//! Valid time (when a fact was true) is in the payload; recorded time (when the registry learned
//! it) is in the store's metadata. Derived consequences are explicit: a merger that ends
//! holdings records `HoldingEnded` events for them, so replay never has to guess.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::date::{Date, PartialDate};
use crate::ids::{AdoptionId, EntityRef, HoldingId, ModelId, OfficeId, PersonId, TermId, UnitId};
use crate::model::{
    Amendment, Arrangement, Beginning, Capacity, EndReason, HoldingEnd, LegalBasis, Level,
    OfficeKind, UnitEnding, UnitKind,
};

/// A person entered the registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonRegistered {
    /// The new person's id.
    pub person: PersonId,
    /// The full name, as written, in NFC.
    pub name: String,
    /// Other names the person is known by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The birth date, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth: Option<PartialDate>,
}

/// A person's name changed from a date on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonRenamed {
    /// The person.
    pub person: PersonId,
    /// The new name.
    pub name: String,
    /// The first day the new name is used.
    pub on: Date,
}

/// A person became known by another name as well.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonAliasAdded {
    /// The person.
    pub person: PersonId,
    /// The alias.
    pub alias: String,
}

/// The facts of a person that a correction may change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonFacts {
    /// The name as first registered.
    pub name: String,
    /// The birth date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth: Option<PartialDate>,
}

/// A person's registered facts were wrong and have been corrected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonCorrected {
    /// The person.
    pub person: PersonId,
    /// What the registry said.
    pub before: PersonFacts,
    /// What it says now.
    pub after: PersonFacts,
    /// Why, who and on what basis.
    pub amendment: Amendment,
}

/// A unit was established.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitEstablished {
    /// The new unit's id.
    pub unit: UnitId,
    /// Its kind.
    pub kind: UnitKind,
    /// Its level.
    pub level: Level,
    /// Its name.
    pub name: String,
    /// The units it belongs to or serves (none for the top of a structure; several for a shared
    /// agency).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<UnitId>,
    /// The first day of its life.
    pub on: Date,
    /// The decision establishing it.
    pub basis: LegalBasis,
}

/// A unit took a new name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitRenamed {
    /// The unit.
    pub unit: UnitId,
    /// The new name.
    pub name: String,
    /// The first day of the new name.
    pub on: Date,
    /// The decision.
    pub basis: LegalBasis,
}

/// A unit's parents changed (moved in the structure).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitMoved {
    /// The unit.
    pub unit: UnitId,
    /// Its parents from `on`, replacing the previous ones.
    pub parents: Vec<UnitId>,
    /// The first day under the new parents.
    pub on: Date,
    /// The decision.
    pub basis: LegalBasis,
}

/// Units ended and their successors took over: a merger (n to 1, new unit), an absorption
/// (n into an existing unit), a split (1 to n new units) or a dissolution (no successor).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitsReorganised {
    /// How the predecessors ended.
    pub ending: UnitEnding,
    /// The units whose life ends on `on`.
    pub predecessors: Vec<UnitId>,
    /// The units that continue them (empty for a dissolution). New successors are established
    /// by `UnitEstablished` events earlier in the same commit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub successors: Vec<UnitId>,
    /// The first day after the predecessors' life.
    pub on: Date,
    /// The decision.
    pub basis: LegalBasis,
}

/// An office was created in a unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfficeCreated {
    /// The new office's id.
    pub office: OfficeId,
    /// The unit it belongs to.
    pub unit: UnitId,
    /// The title as written (Bí thư Đảng ủy xã ...).
    pub title: String,
    /// The kind of office.
    pub kind: OfficeKind,
    /// How many may hold it on one day.
    pub capacity: Capacity,
    /// The first day it exists.
    pub on: Date,
    /// The decision, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<LegalBasis>,
}

/// An office was carried to another unit (its unit was merged, absorbed or split); its open
/// holdings continue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfficeCarried {
    /// The office.
    pub office: OfficeId,
    /// The unit it belongs to from `on`.
    pub unit: UnitId,
    /// The first day in the new unit.
    pub on: Date,
}

/// An office was abolished; any holding still open was ended by `HoldingEnded` events before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfficeAbolished {
    /// The office.
    pub office: OfficeId,
    /// The first day it no longer exists.
    pub on: Date,
    /// The decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<LegalBasis>,
}

/// The facts of an office that a correction may change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfficeFacts {
    /// The title.
    pub title: String,
    /// The kind.
    pub kind: OfficeKind,
    /// The capacity.
    pub capacity: Capacity,
    /// The first day it exists.
    pub established: Date,
    /// The first day it no longer exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abolished: Option<Date>,
}

/// An office's facts were wrong and have been corrected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfficeCorrected {
    /// The office.
    pub office: OfficeId,
    /// What the registry said.
    pub before: OfficeFacts,
    /// What it says now.
    pub after: OfficeFacts,
    /// Why, who and on what basis.
    pub amendment: Amendment,
}

/// A person began to hold an office.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldingStarted {
    /// The new holding's id.
    pub holding: HoldingId,
    /// Who.
    pub person: PersonId,
    /// Which office.
    pub office: OfficeId,
    /// From when (inclusive).
    pub start: PartialDate,
    /// How it began.
    pub beginning: Beginning,
    /// The term of the body, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<TermId>,
    /// The decision (election result, appointment decision), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<LegalBasis>,
}

/// A holding ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldingEnded {
    /// The holding.
    pub holding: HoldingId,
    /// When: a (exclusive) date, or unknown.
    pub end: HoldingEnd,
    /// Why.
    pub reason: EndReason,
    /// The decision, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<LegalBasis>,
}

/// The facts of a holding that a correction may change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldingFacts {
    /// Who.
    pub person: PersonId,
    /// Which office.
    pub office: OfficeId,
    /// From when.
    pub start: PartialDate,
    /// Until when.
    pub end: HoldingEnd,
    /// How it began.
    pub beginning: Beginning,
    /// How it ended, when it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
    /// The term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<TermId>,
    /// The basis of its start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<LegalBasis>,
}

/// A holding's facts were wrong and have been corrected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldingCorrected {
    /// The holding.
    pub holding: HoldingId,
    /// What the registry said.
    pub before: HoldingFacts,
    /// What it says now.
    pub after: HoldingFacts,
    /// Why, who and on what basis.
    pub amendment: Amendment,
}

/// A pilot model was authorised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelDefined {
    /// The new model's id.
    pub model: ModelId,
    /// Its name.
    pub name: String,
    /// What it arranges.
    pub arrangement: Arrangement,
    /// The decision that authorises it.
    pub authorised_by: LegalBasis,
}

/// A unit adopted a pilot model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelAdopted {
    /// The new adoption's id.
    pub adoption: AdoptionId,
    /// Which model.
    pub model: ModelId,
    /// The adopting unit; the adoption covers the unit and the units under it.
    pub unit: UnitId,
    /// The first day it applies.
    pub on: Date,
    /// The decision.
    pub basis: LegalBasis,
}

/// A unit stopped applying a pilot model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelWithdrawn {
    /// The adoption that ends.
    pub adoption: AdoptionId,
    /// The first day it no longer applies.
    pub on: Date,
    /// The decision.
    pub basis: LegalBasis,
}

/// A term of a body was opened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermOpened {
    /// The new term's id.
    pub term: TermId,
    /// The body.
    pub body: UnitId,
    /// Its label, such as `2020-2025`.
    pub label: String,
    /// The first day.
    pub start: Date,
    /// The planned first day after it, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_end: Option<Date>,
}

/// A record was entered in error and is withdrawn as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retracted {
    /// What is retracted.
    pub target: EntityRef,
    /// Why, who and on what basis.
    pub amendment: Amendment,
}

/// Why a stored event could not be read.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// The type name is not in the catalogue.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    /// The type is known but not at this schema version.
    #[error("event type {0} has no schema version {1}")]
    UnknownVersion(&'static str, u16),
    /// The payload does not match the schema.
    #[error("event {0} v{1}: {2}")]
    Payload(&'static str, u16, serde_json::Error),
}

/// A payload decoded from JSON. The text is checked to be UTF-8 once, as a whole, and then read
/// as a `str`: read as bytes, serde_json checks each string it meets on its own, which cost a
/// rebuild a sixth of its decoding (names and legal bases are Vietnamese, not ASCII).
fn json<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, serde_json::Error> {
    let text = std::str::from_utf8(payload).map_err(serde::de::Error::custom)?;
    serde_json::from_str(text)
}

macro_rules! catalogue {
    ($($variant:ident($payload:ty) => $version:literal),* $(,)?) => {
        /// Every event of the registry.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Event {
            $(
                #[allow(missing_docs)]
                $variant($payload),
            )*
        }

        impl Event {
            /// Every event type name with its current schema version.
            pub const CATALOGUE: &'static [(&'static str, u16)] = &[$((stringify!($variant), $version)),*];

            /// The stable type name stored with the event.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => stringify!($variant),)*
                }
            }

            /// The schema version the event is written with.
            pub fn schema_version(&self) -> u16 {
                match self {
                    $(Self::$variant(_) => $version,)*
                }
            }

            /// The JSON payload.
            pub fn encode(&self) -> Vec<u8> {
                let bytes = match self {
                    $(Self::$variant(payload) => serde_json::to_vec(payload),)*
                };
                // Serialising these plain structs to JSON cannot fail: no maps with non-string
                // keys, no custom serialisers that error.
                bytes.unwrap_or_default()
            }

            /// Reads a stored event, upcasting older schema versions.
            pub fn decode(type_name: &str, version: u16, payload: &[u8]) -> Result<Event, DecodeError> {
                match type_name {
                    $(stringify!($variant) => {
                        const NAME: &str = stringify!($variant);
                        if version != $version {
                            return Err(DecodeError::UnknownVersion(NAME, version));
                        }
                        json(payload)
                            .map(Self::$variant)
                            .map_err(|e| DecodeError::Payload(NAME, version, e))
                    })*
                    other => Err(DecodeError::UnknownType(other.to_owned())),
                }
            }
        }

        $(
            impl From<$variant> for Event {
                fn from(payload: $variant) -> Self {
                    Self::$variant(payload.into())
                }
            }
        )*
    };
}

// The corrections, rare and two sets of facts each, are boxed: an event is as large as its
// largest variant (a holding's correction was 408 bytes, a holding's start is 152), and a
// rebuild moves and holds millions of decoded events.
catalogue! {
    PersonRegistered(PersonRegistered) => 1,
    PersonRenamed(PersonRenamed) => 1,
    PersonAliasAdded(PersonAliasAdded) => 1,
    PersonCorrected(Box<PersonCorrected>) => 1,
    UnitEstablished(UnitEstablished) => 1,
    UnitRenamed(UnitRenamed) => 1,
    UnitMoved(UnitMoved) => 1,
    UnitsReorganised(UnitsReorganised) => 1,
    OfficeCreated(OfficeCreated) => 1,
    OfficeCarried(OfficeCarried) => 1,
    OfficeAbolished(OfficeAbolished) => 1,
    OfficeCorrected(Box<OfficeCorrected>) => 1,
    HoldingStarted(HoldingStarted) => 1,
    HoldingEnded(HoldingEnded) => 1,
    HoldingCorrected(Box<HoldingCorrected>) => 1,
    ModelDefined(ModelDefined) => 1,
    ModelAdopted(ModelAdopted) => 1,
    ModelWithdrawn(ModelWithdrawn) => 1,
    TermOpened(TermOpened) => 1,
    Retracted(Retracted) => 1,
}

/// The entities an event names: most name four or fewer, kept inline (a rebuild lists those
/// of millions of events).
pub type Subjects = smallvec::SmallVec<[EntityRef; 4]>;

impl Event {
    /// The entities the event names directly, the one it is about first.
    ///
    /// Audit histories index events by these; an event about a holding names its person and
    /// office only where the payload carries them (`HoldingEnded` names just the holding).
    pub fn subjects(&self) -> Subjects {
        use smallvec::smallvec;
        use EntityRef as R;
        match self {
            Self::PersonRegistered(e) => smallvec![R::Person(e.person)],
            Self::PersonRenamed(e) => smallvec![R::Person(e.person)],
            Self::PersonAliasAdded(e) => smallvec![R::Person(e.person)],
            Self::PersonCorrected(e) => smallvec![R::Person(e.person)],
            Self::UnitEstablished(e) => std::iter::once(R::Unit(e.unit))
                .chain(e.parents.iter().map(|p| R::Unit(*p)))
                .collect(),
            Self::UnitRenamed(e) => smallvec![R::Unit(e.unit)],
            Self::UnitMoved(e) => std::iter::once(R::Unit(e.unit))
                .chain(e.parents.iter().map(|p| R::Unit(*p)))
                .collect(),
            Self::UnitsReorganised(e) => e
                .predecessors
                .iter()
                .chain(&e.successors)
                .map(|u| R::Unit(*u))
                .collect(),
            Self::OfficeCreated(e) => smallvec![R::Office(e.office), R::Unit(e.unit)],
            Self::OfficeCarried(e) => smallvec![R::Office(e.office), R::Unit(e.unit)],
            Self::OfficeAbolished(e) => smallvec![R::Office(e.office)],
            Self::OfficeCorrected(e) => smallvec![R::Office(e.office)],
            Self::HoldingStarted(e) => {
                let mut refs = smallvec![
                    R::Holding(e.holding),
                    R::Person(e.person),
                    R::Office(e.office),
                ];
                refs.extend(e.term.map(R::Term));
                refs
            }
            Self::HoldingEnded(e) => smallvec![R::Holding(e.holding)],
            Self::HoldingCorrected(e) => {
                let mut refs = smallvec![
                    R::Holding(e.holding),
                    R::Person(e.after.person),
                    R::Office(e.after.office),
                ];
                if e.before.person != e.after.person {
                    refs.push(R::Person(e.before.person));
                }
                if e.before.office != e.after.office {
                    refs.push(R::Office(e.before.office));
                }
                refs
            }
            Self::ModelDefined(e) => smallvec![R::Model(e.model)],
            Self::ModelAdopted(e) => {
                smallvec![R::Adoption(e.adoption), R::Model(e.model), R::Unit(e.unit)]
            }
            Self::ModelWithdrawn(e) => smallvec![R::Adoption(e.adoption)],
            Self::TermOpened(e) => smallvec![R::Term(e.term), R::Unit(e.body)],
            Self::Retracted(e) => smallvec![e.target],
        }
    }
}
