//! Where and when a command acts: the units it touches, each on the day of the fact, as the tree
//! stood on that day.
//!
//! Access control decides a write by its reach: a registrar may record what happens in or under
//! the units of the agency's scope, and a unit belongs to a scope on a day through its parents
//! of that day (a commune that moved to another province is the old province's before the move
//! and the new one's after). The reach is read from the registry as the commands before this
//! one left it, so that an import establishing a unit and then its offices is judged record by
//! record. This module only says where a command acts; whether that is allowed is the policy's.

use crate::command::{Command, Reorganisation, Successor};
use crate::date::{Date, PartialDate};
use crate::ids::{EntityRef, PersonId, UnitId};
use crate::model::HoldingEnd;
use crate::state::{Holding, Registry};

/// A unit on a day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Place {
    /// The unit.
    pub unit: UnitId,
    /// The day of the fact.
    pub day: Date,
}

/// Where a command acts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// In no unit: registering a person or an alias, defining a pilot model, retracting one.
    Nowhere,
    /// In every one of these places (a write on units, offices, holdings, adoptions, terms):
    /// each must be allowed.
    Everywhere(Vec<Place>),
    /// On a person's own record (a rename or a correction of a person, a retraction): one of
    /// the places where the person holds or held an office suffices; a person who never held
    /// one is in no unit's reach.
    Person {
        /// The person.
        person: PersonId,
        /// Where the person holds or held an office.
        places: Vec<Place>,
    },
}

impl Reach {
    /// Every place named.
    pub fn places(&self) -> &[Place] {
        match self {
            Self::Nowhere => &[],
            Self::Everywhere(places) | Self::Person { places, .. } => places,
        }
    }
}

impl Registry {
    /// Where `command` acts, read from the registry as it stands (before the command). An id
    /// the registry does not know adds no place: the decision refuses such a command anyway,
    /// and a unit that a command establishes is placed through the parents it names.
    pub fn reach(&self, command: &Command) -> Reach {
        let mut places = Vec::new();
        let mut at = |unit: UnitId, day: Date| {
            let place = Place { unit, day };
            if !places.contains(&place) {
                places.push(place);
            }
        };
        match command {
            Command::RegisterPerson { .. }
            | Command::AddPersonAlias { .. }
            | Command::DefineModel { .. } => return Reach::Nowhere,
            Command::RenamePerson { person, .. } | Command::CorrectPerson { person, .. } => {
                return self.person_reach(*person)
            }
            Command::EstablishUnit {
                unit, parents, on, ..
            } => {
                // A unit without parents (a country) is placed at itself: no scope holds it
                // before it exists.
                if parents.is_empty() {
                    at(*unit, *on);
                }
                parents.iter().for_each(|parent| at(*parent, *on));
            }
            Command::RenameUnit { unit, on, .. } => at(*unit, *on),
            Command::MoveUnit {
                unit, parents, on, ..
            } => {
                at(*unit, *on);
                parents.iter().for_each(|parent| at(*parent, *on));
            }
            Command::Reorganise(reorganisation) => self.reorganisation_places(reorganisation, at),
            Command::CreateOffice { unit, on, .. } => at(*unit, *on),
            Command::AbolishOffice { office, on, .. } => {
                if let Some(office) = self.office(*office) {
                    at(office.unit_on(*on), *on);
                }
            }
            Command::StartHolding { office, start, .. } => {
                if let Some(office) = self.office(*office) {
                    at(office.unit_on(start.earliest()), start.earliest());
                }
            }
            Command::RecordHolding {
                office, start, end, ..
            } => {
                if let Some(office) = self.office(*office) {
                    for day in fact_days(*start, *end) {
                        at(office.unit_on(day), day);
                    }
                }
            }
            Command::EndHolding { holding, end, .. } => {
                if let Some((holding, office)) = self.holding_and_office(*holding) {
                    let day = last_day(holding.start, *end).unwrap_or(holding.start.earliest());
                    at(office, day);
                }
            }
            Command::AdoptModel { unit, on, .. } => at(*unit, *on),
            Command::WithdrawModel { adoption, on, .. } => {
                if let Some(adoption) = self.adoption(*adoption) {
                    at(adoption.unit, *on);
                }
            }
            Command::OpenTerm { body, start, .. } => at(*body, *start),
            Command::CorrectOffice { office, after, .. } => {
                if let Some(office) = self.office(*office) {
                    let before = office.facts();
                    let after = after.applied_to(&before);
                    for facts in [before, after] {
                        let mut days = vec![facts.established];
                        days.extend(facts.abolished.map(Date::previous_day));
                        for day in days {
                            at(office.unit_on(day), day);
                        }
                    }
                }
            }
            Command::CorrectHolding { holding, after, .. } => {
                if let Some(current) = self.holding(*holding) {
                    let before = current.facts();
                    let after = after.applied_to(&before);
                    for facts in [before, after] {
                        if let Some(office) = self.office(facts.office) {
                            for day in fact_days(facts.start, facts.end) {
                                at(office.unit_on(day), day);
                            }
                        }
                    }
                }
            }
            Command::Retract { target, .. } => match *target {
                EntityRef::Person(person) => return self.person_reach(person),
                EntityRef::Model(_) => return Reach::Nowhere,
                EntityRef::Unit(unit) => {
                    if let Some(found) = self.unit(unit) {
                        at(unit, found.life.start);
                    }
                }
                EntityRef::Office(office) => {
                    if let Some(found) = self.office(office) {
                        at(found.unit_on(found.life.start), found.life.start);
                    }
                }
                EntityRef::Holding(holding) => {
                    if let Some((holding, office)) = self.holding_and_office(holding) {
                        at(office, holding.start.earliest());
                    }
                }
                EntityRef::Adoption(adoption) => {
                    if let Some(found) = self.adoption(adoption) {
                        at(found.unit, found.span.start);
                    }
                }
                EntityRef::Term(term) => {
                    if let Some(found) = self.term(term) {
                        at(found.body, found.start);
                    }
                }
            },
        }
        Reach::Everywhere(places)
    }

    /// The unit and the units above it on `day`, each once, each with its parents on that day:
    /// the tree as it stood on the day, from the unit up.
    pub fn ancestry_on(&self, unit: UnitId, day: Date) -> Vec<(UnitId, Vec<UnitId>)> {
        let mut found: Vec<(UnitId, Vec<UnitId>)> = Vec::new();
        let mut stack = vec![unit];
        while let Some(current) = stack.pop() {
            if found.iter().any(|(u, _)| *u == current) {
                continue;
            }
            let parents: Vec<UnitId> = self
                .unit(current)
                .map(|u| u.parents_on(day).collect())
                .unwrap_or_default();
            stack.extend(parents.iter().copied());
            found.push((current, parents));
        }
        found
    }

    /// A person's record: where the person holds or held an office, each holding's office's
    /// unit on its first day.
    fn person_reach(&self, person: PersonId) -> Reach {
        let mut places = Vec::new();
        for id in self
            .person(person)
            .into_iter()
            .flat_map(|p| p.holdings.iter())
        {
            if let Some((holding, unit)) = self.holding_and_office(*id) {
                let place = Place {
                    unit,
                    day: holding.start.earliest(),
                };
                if !places.contains(&place) {
                    places.push(place);
                }
            }
        }
        Reach::Person { person, places }
    }

    /// A holding and the unit its office belonged to on the holding's first day.
    fn holding_and_office(&self, id: crate::ids::HoldingId) -> Option<(&Holding, UnitId)> {
        let holding = self.holding(id)?;
        let office = self.office(holding.office)?;
        Some((holding, office.unit_on(holding.start.earliest())))
    }

    /// The places of a reorganisation on its day: the units that end, the successors (through
    /// their parents when new), the children moved and their new parents.
    fn reorganisation_places(&self, r: &Reorganisation, mut at: impl FnMut(UnitId, Date)) {
        let created: Vec<UnitId> = r
            .successors
            .iter()
            .filter_map(|s| match s {
                Successor::New(new) => Some(new.unit),
                Successor::Existing { .. } => None,
            })
            .collect();
        r.predecessors.iter().for_each(|unit| at(*unit, r.on));
        for successor in &r.successors {
            match successor {
                Successor::Existing { unit } => at(*unit, r.on),
                Successor::New(new) => new.parents.iter().for_each(|p| at(*p, r.on)),
            }
        }
        for (child, parents) in &r.children {
            at(*child, r.on);
            parents
                .iter()
                .filter(|p| !created.contains(p))
                .for_each(|p| at(*p, r.on));
        }
    }
}

/// The days of a holding's facts: its first day and, once it has ended on a known day, its
/// last.
fn fact_days(start: PartialDate, end: HoldingEnd) -> Vec<Date> {
    let mut days = vec![start.earliest()];
    days.extend(last_day(start, end).filter(|day| *day != start.earliest()));
    days
}

/// The last day a holding from `start` was held, when it ended on a known day (never before
/// its first).
fn last_day(start: PartialDate, end: HoldingEnd) -> Option<Date> {
    match end {
        HoldingEnd::On(end) => Some(end.earliest().previous_day().max(start.earliest())),
        HoldingEnd::Open | HoldingEnd::Unknown => None,
    }
}
