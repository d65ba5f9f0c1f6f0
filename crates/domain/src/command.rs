//! Commands: what a caller asks the registry to record.
//!
//! A command carries every id it creates (the caller or the service mints them), so deciding it
//! is deterministic and a retried command can be recognised. `decide` turns a command into
//! events or a [`DomainError`](crate::DomainError).

use serde::{Deserialize, Serialize};

use crate::date::{Date, PartialDate};
use crate::event::{HoldingFacts, OfficeFacts, PersonFacts};
use crate::ids::{AdoptionId, EntityRef, HoldingId, ModelId, OfficeId, PersonId, TermId, UnitId};
use crate::model::{
    Amendment, Arrangement, Beginning, Capacity, EndReason, HoldingEnd, LegalBasis, Level,
    OfficeKind, UnitEnding, UnitKind,
};

/// A unit to be established as the successor in a reorganisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUnit {
    /// The id for the new unit.
    pub unit: UnitId,
    /// Its kind.
    pub kind: UnitKind,
    /// Its level.
    pub level: Level,
    /// Its name.
    pub name: String,
    /// Its parents.
    pub parents: Vec<UnitId>,
}

/// A successor of a reorganisation: a unit established by it, or one that exists already.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Successor {
    /// Established by the reorganisation.
    New(NewUnit),
    /// Already exists (the unit that absorbs, or takes part of a split).
    Existing {
        /// The unit.
        unit: UnitId,
    },
}

impl Successor {
    /// The successor's id.
    pub fn unit(&self) -> UnitId {
        match self {
            Self::New(new) => new.unit,
            Self::Existing { unit } => *unit,
        }
    }
}

/// What becomes of an office whose unit ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "unit", rename_all = "snake_case")]
pub enum OfficeFate {
    /// The office is abolished; its open holdings end.
    Abolish,
    /// The office continues in this successor; its open holdings continue.
    CarryTo(UnitId),
}

/// A change of the structure in which units end: merge, absorb, split or dissolve.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reorganisation {
    /// How the predecessors end; decides how many predecessors and successors there must be.
    pub ending: UnitEnding,
    /// The units that end on `on`.
    pub predecessors: Vec<UnitId>,
    /// The units that continue them.
    pub successors: Vec<Successor>,
    /// The first day of the new structure.
    pub on: Date,
    /// The decision.
    pub basis: LegalBasis,
    /// The fate of every office of the predecessors that is alive on `on`: stated, never guessed.
    pub offices: Vec<(OfficeId, OfficeFate)>,
    /// The new parents of every unit under a predecessor on `on`.
    pub children: Vec<(UnitId, Vec<UnitId>)>,
}

/// A request to record something.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Enter a person.
    RegisterPerson {
        /// The new id.
        person: PersonId,
        /// The full name.
        name: String,
        /// Other names.
        aliases: Vec<String>,
        /// The birth date, when known.
        birth: Option<PartialDate>,
    },
    /// Record a person's change of name.
    RenamePerson {
        /// The person.
        person: PersonId,
        /// The new name.
        name: String,
        /// From when.
        on: Date,
    },
    /// Record another name a person is known by.
    AddPersonAlias {
        /// The person.
        person: PersonId,
        /// The alias.
        alias: String,
    },
    /// Establish a unit.
    EstablishUnit {
        /// The new id.
        unit: UnitId,
        /// Its kind.
        kind: UnitKind,
        /// Its level.
        level: Level,
        /// Its name.
        name: String,
        /// Its parents.
        parents: Vec<UnitId>,
        /// Its first day.
        on: Date,
        /// The decision.
        basis: LegalBasis,
    },
    /// Rename a unit.
    RenameUnit {
        /// The unit.
        unit: UnitId,
        /// The new name.
        name: String,
        /// From when.
        on: Date,
        /// The decision.
        basis: LegalBasis,
    },
    /// Place a unit under other parents.
    MoveUnit {
        /// The unit.
        unit: UnitId,
        /// The new parents, replacing the old.
        parents: Vec<UnitId>,
        /// From when.
        on: Date,
        /// The decision.
        basis: LegalBasis,
    },
    /// Merge, absorb, split or dissolve units.
    Reorganise(Reorganisation),
    /// Create an office in a unit.
    CreateOffice {
        /// The new id.
        office: OfficeId,
        /// The unit.
        unit: UnitId,
        /// The title as written.
        title: String,
        /// The kind.
        kind: OfficeKind,
        /// How many may hold it on a day.
        capacity: Capacity,
        /// Its first day.
        on: Date,
        /// The decision.
        basis: Option<LegalBasis>,
    },
    /// Abolish an office; its open holdings end on the same day.
    AbolishOffice {
        /// The office.
        office: OfficeId,
        /// The first day without it.
        on: Date,
        /// The decision.
        basis: Option<LegalBasis>,
    },
    /// Record that a person began to hold an office (elected, appointed, ...).
    StartHolding {
        /// The new id.
        holding: HoldingId,
        /// Who.
        person: PersonId,
        /// Which office.
        office: OfficeId,
        /// From when.
        start: PartialDate,
        /// How.
        beginning: Beginning,
        /// The term, where known.
        term: Option<TermId>,
        /// The decision, where known.
        basis: Option<LegalBasis>,
    },
    /// Record a holding whose end is already known (a past tenure, as in an import): decided
    /// as one fact, so the rules see the holding with its end, never open-ended in between.
    RecordHolding {
        /// The new id.
        holding: HoldingId,
        /// Who.
        person: PersonId,
        /// Which office.
        office: OfficeId,
        /// From when.
        start: PartialDate,
        /// How.
        beginning: Beginning,
        /// The term, where known.
        term: Option<TermId>,
        /// The decision of its start, where known.
        basis: Option<LegalBasis>,
        /// When it ended (never [`HoldingEnd::Open`]).
        end: HoldingEnd,
        /// Why.
        reason: EndReason,
        /// The decision of its end, where known.
        end_basis: Option<LegalBasis>,
    },
    /// Record that a holding ended.
    EndHolding {
        /// The holding.
        holding: HoldingId,
        /// When (never [`HoldingEnd::Open`]).
        end: HoldingEnd,
        /// Why.
        reason: EndReason,
        /// The decision, where known.
        basis: Option<LegalBasis>,
    },
    /// Record a pilot model and its authorisation.
    DefineModel {
        /// The new id.
        model: ModelId,
        /// Its name.
        name: String,
        /// What it arranges.
        arrangement: Arrangement,
        /// The authorising decision.
        authorised_by: LegalBasis,
    },
    /// Record that a unit adopted a pilot model.
    AdoptModel {
        /// The new id.
        adoption: AdoptionId,
        /// The model.
        model: ModelId,
        /// The adopting unit.
        unit: UnitId,
        /// From when.
        on: Date,
        /// The decision.
        basis: LegalBasis,
    },
    /// Record that a unit stopped applying a pilot model.
    WithdrawModel {
        /// The adoption.
        adoption: AdoptionId,
        /// The first day without it.
        on: Date,
        /// The decision.
        basis: LegalBasis,
    },
    /// Open a term of a body.
    OpenTerm {
        /// The new id.
        term: TermId,
        /// The body.
        body: UnitId,
        /// The label (`2020-2025`).
        label: String,
        /// The first day.
        start: Date,
        /// The planned first day after it.
        planned_end: Option<Date>,
    },
    /// Correct a person's registered facts.
    CorrectPerson {
        /// The person.
        person: PersonId,
        /// The facts restated; the others stay as recorded.
        after: PersonPatch,
        /// Why, who, on what basis.
        amendment: Amendment,
    },
    /// Correct an office's facts.
    CorrectOffice {
        /// The office.
        office: OfficeId,
        /// The facts restated; the others stay as recorded.
        after: OfficePatch,
        /// Why, who, on what basis.
        amendment: Amendment,
    },
    /// Correct a holding's facts; re-checked against everything it touches.
    CorrectHolding {
        /// The holding.
        holding: HoldingId,
        /// The facts restated; the others stay as recorded.
        after: HoldingPatch,
        /// Why, who, on what basis.
        amendment: Amendment,
    },
    /// Withdraw a record entered in error.
    Retract {
        /// What.
        target: EntityRef,
        /// Why, who, on what basis.
        amendment: Amendment,
    },
}

/// The facts of a person a correction restates: each `Some` replaces the recorded fact (with
/// "not known" where the fact is optional), each `None` keeps it. A correction that restates
/// one fact never erases another (AIP-134's field mask, in the domain's terms).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonPatch {
    /// The registered name.
    pub name: Option<String>,
    /// The birth date (`Some(None)`: not known after all).
    pub birth: Option<Option<PartialDate>>,
}

/// The facts of an office a correction restates (see [`PersonPatch`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfficePatch {
    /// The title.
    pub title: Option<String>,
    /// The kind.
    pub kind: Option<OfficeKind>,
    /// The capacity.
    pub capacity: Option<Capacity>,
    /// The first day.
    pub established: Option<Date>,
    /// The first day without it (`Some(None)`: it has not been abolished).
    pub abolished: Option<Option<Date>>,
}

/// The facts of a holding a correction restates (see [`PersonPatch`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldingPatch {
    /// Who.
    pub person: Option<PersonId>,
    /// Which office.
    pub office: Option<OfficeId>,
    /// From when.
    pub start: Option<PartialDate>,
    /// Until when.
    pub end: Option<HoldingEnd>,
    /// How it began.
    pub beginning: Option<Beginning>,
    /// How it ended (`Some(None)`: it has not ended).
    pub end_reason: Option<Option<EndReason>>,
    /// The term (`Some(None)`: none).
    pub term: Option<Option<TermId>>,
    /// The basis of its start (`Some(None)`: none recorded).
    pub basis: Option<Option<LegalBasis>>,
}

impl PersonPatch {
    /// The facts after the correction.
    pub fn applied_to(&self, current: &PersonFacts) -> PersonFacts {
        PersonFacts {
            name: self.name.clone().unwrap_or_else(|| current.name.clone()),
            birth: self.birth.unwrap_or(current.birth),
        }
    }
}

impl From<PersonFacts> for PersonPatch {
    /// Every fact restated.
    fn from(facts: PersonFacts) -> Self {
        Self {
            name: Some(facts.name),
            birth: Some(facts.birth),
        }
    }
}

impl OfficePatch {
    /// The facts after the correction.
    pub fn applied_to(&self, current: &OfficeFacts) -> OfficeFacts {
        OfficeFacts {
            title: self.title.clone().unwrap_or_else(|| current.title.clone()),
            kind: self.kind.unwrap_or(current.kind),
            capacity: self.capacity.unwrap_or(current.capacity),
            established: self.established.unwrap_or(current.established),
            abolished: self.abolished.unwrap_or(current.abolished),
        }
    }
}

impl From<OfficeFacts> for OfficePatch {
    /// Every fact restated.
    fn from(facts: OfficeFacts) -> Self {
        Self {
            title: Some(facts.title),
            kind: Some(facts.kind),
            capacity: Some(facts.capacity),
            established: Some(facts.established),
            abolished: Some(facts.abolished),
        }
    }
}

impl HoldingPatch {
    /// The facts after the correction.
    pub fn applied_to(&self, current: &HoldingFacts) -> HoldingFacts {
        HoldingFacts {
            person: self.person.unwrap_or(current.person),
            office: self.office.unwrap_or(current.office),
            start: self.start.unwrap_or(current.start),
            end: self.end.unwrap_or(current.end),
            beginning: self.beginning.unwrap_or(current.beginning),
            end_reason: self.end_reason.unwrap_or(current.end_reason),
            term: self.term.unwrap_or(current.term),
            basis: self.basis.clone().unwrap_or_else(|| current.basis.clone()),
        }
    }
}

impl From<HoldingFacts> for HoldingPatch {
    /// Every fact restated.
    fn from(facts: HoldingFacts) -> Self {
        Self {
            person: Some(facts.person),
            office: Some(facts.office),
            start: Some(facts.start),
            end: Some(facts.end),
            beginning: Some(facts.beginning),
            end_reason: Some(facts.end_reason),
            term: Some(facts.term),
            basis: Some(facts.basis),
        }
    }
}
