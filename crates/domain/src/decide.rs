//! Decide: checks a command against the registry and returns the events that record it, or the
//! rule it would break.
//!
//! Every hard rule is enforced here, against one [`Registry`] state: the whole registry is one
//! consistency boundary (see ARCHITECTURE.md). `decide` never mutates; the caller appends the
//! events and folds them with [`Registry::apply`].

use std::collections::{HashMap, HashSet};

use unicode_normalization::UnicodeNormalization;

use crate::command::{Command, OfficeFate, OfficePatch, Reorganisation, Successor};
use crate::date::{Date, Span};
use crate::error::DomainError;
use crate::event::*;
use crate::ids::{EntityRef, HoldingId, OfficeId, PersonId, UnitId};
use crate::irregular::{concurrency_irregularities, vacancy_before, Irregularity, Policy};
use crate::model::{
    Amendment, Arrangement, Capacity, EndReason, HoldingEnd, LegalBasis, UnitEnding,
};
use crate::state::{holding_span, Office, Registry};

/// The longest name, alias, title or label accepted, in characters.
pub const MAX_NAME_CHARS: usize = 500;

/// What a successful command records, and the irregularities it brings (accepted but flagged).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// The events to append, in order.
    pub events: Vec<Event>,
    /// Irregular but real facts the command records, for auditors.
    pub warnings: Vec<Irregularity>,
}

impl From<Vec<Event>> for Decision {
    fn from(events: Vec<Event>) -> Self {
        Self {
            events,
            warnings: Vec::new(),
        }
    }
}

/// A correction must change a fact: one that restates the record as it is would record an
/// amendment of nothing.
fn unchanged_is_refused<T: PartialEq>(before: &T, after: &T) -> Result<(), DomainError> {
    if before == after {
        return Err(DomainError::invalid(
            "after",
            "changes nothing: the correction restates the record as it is",
        ));
    }
    Ok(())
}

/// Checks a name-like text and returns it in Unicode NFC, trimmed.
pub fn clean_text(field: &'static str, text: &str) -> Result<String, DomainError> {
    let text = text.trim();
    // Most text arrives in NFC already: a quick check spares composing it again.
    let text: String = match unicode_normalization::is_nfc_quick(text.chars()) {
        unicode_normalization::IsNormalized::Yes => text.to_owned(),
        _ => text.nfc().collect(),
    };
    if text.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    let chars = text.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(DomainError::invalid(
            field,
            format!("is {chars} characters long; at most {MAX_NAME_CHARS} are allowed"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(text)
}

fn clean_basis(field: &'static str, basis: &LegalBasis) -> Result<LegalBasis, DomainError> {
    let number = clean_text(field, &basis.number).map_err(|_| {
        DomainError::invalid(field, "document number must not be empty or over-long")
    })?;
    let issuer = clean_text(field, &basis.issuer)
        .map_err(|_| DomainError::invalid(field, "issuer must not be empty or over-long"))?;
    if basis
        .effective_on
        .is_some_and(|effective| effective < basis.issued_on)
    {
        return Err(DomainError::invalid(
            field,
            "takes effect before it was issued",
        ));
    }
    Ok(LegalBasis {
        number,
        issuer,
        issued_on: basis.issued_on,
        effective_on: basis.effective_on,
    })
}

fn clean_optional_basis(
    field: &'static str,
    basis: &Option<LegalBasis>,
) -> Result<Option<LegalBasis>, DomainError> {
    basis.as_ref().map(|b| clean_basis(field, b)).transpose()
}

fn clean_amendment(amendment: &Amendment) -> Result<Amendment, DomainError> {
    Ok(Amendment {
        reason: clean_text("amendment.reason", &amendment.reason)?,
        actor: clean_text("amendment.actor", &amendment.actor)?,
        basis: clean_optional_basis("amendment.basis", &amendment.basis)?,
    })
}

impl Registry {
    /// Decide: checks `command` and returns the events that record it.
    pub fn decide(&self, command: &Command, policy: &Policy) -> Result<Decision, DomainError> {
        match command {
            Command::RegisterPerson {
                person,
                name,
                aliases,
                birth,
            } => {
                self.fresh(EntityRef::Person(*person))?;
                let aliases = aliases
                    .iter()
                    .map(|a| clean_text("person.aliases", a))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(vec![PersonRegistered {
                    person: *person,
                    name: clean_text("person.name", name)?,
                    aliases,
                    birth: *birth,
                }
                .into()]
                .into())
            }
            Command::RenamePerson { person, name, on } => {
                self.existing_person(*person)?;
                Ok(vec![PersonRenamed {
                    person: *person,
                    name: clean_text("name", name)?,
                    on: *on,
                }
                .into()]
                .into())
            }
            Command::AddPersonAlias { person, alias } => {
                self.existing_person(*person)?;
                Ok(vec![PersonAliasAdded {
                    person: *person,
                    alias: clean_text("alias", alias)?,
                }
                .into()]
                .into())
            }
            Command::EstablishUnit {
                unit,
                kind,
                level,
                name,
                parents,
                on,
                basis,
            } => {
                self.fresh(EntityRef::Unit(*unit))?;
                self.check_parents(*unit, parents, *on)?;
                Ok(vec![UnitEstablished {
                    unit: *unit,
                    kind: *kind,
                    level: *level,
                    name: clean_text("unit.name", name)?,
                    parents: parents.clone(),
                    on: *on,
                    basis: clean_basis("basis", basis)?,
                }
                .into()]
                .into())
            }
            Command::RenameUnit {
                unit,
                name,
                on,
                basis,
            } => {
                self.unit_alive(EntityRef::Unit(*unit), *unit, *on)?;
                Ok(vec![UnitRenamed {
                    unit: *unit,
                    name: clean_text("name", name)?,
                    on: *on,
                    basis: clean_basis("basis", basis)?,
                }
                .into()]
                .into())
            }
            Command::MoveUnit {
                unit,
                parents,
                on,
                basis,
            } => {
                self.unit_alive(EntityRef::Unit(*unit), *unit, *on)?;
                self.check_parents(*unit, parents, *on)?;
                if self.units[unit]
                    .parents
                    .iter()
                    .any(|link| link.span.start > *on)
                {
                    return Err(DomainError::invalid(
                        "on",
                        "the unit has a later move already; correct that first",
                    ));
                }
                Ok(vec![UnitMoved {
                    unit: *unit,
                    parents: parents.clone(),
                    on: *on,
                    basis: clean_basis("basis", basis)?,
                }
                .into()]
                .into())
            }
            Command::Reorganise(reorganisation) => self.decide_reorganisation(reorganisation),
            Command::CreateOffice {
                office,
                unit,
                title,
                kind,
                capacity,
                on,
                basis,
            } => {
                self.fresh(EntityRef::Office(*office))?;
                check_capacity_value(*capacity)?;
                self.unit_alive(EntityRef::Office(*office), *unit, *on)?;
                Ok(vec![OfficeCreated {
                    office: *office,
                    unit: *unit,
                    title: clean_text("office.title", title)?,
                    kind: *kind,
                    capacity: *capacity,
                    on: *on,
                    basis: clean_optional_basis("basis", basis)?,
                }
                .into()]
                .into())
            }
            Command::AbolishOffice { office, on, basis } => {
                let basis = clean_optional_basis("basis", basis)?;
                let mut events = Vec::new();
                self.abolish_office(*office, *on, basis, EndReason::OfficeAbolished, &mut events)?;
                Ok(events.into())
            }
            Command::StartHolding {
                holding,
                person,
                office,
                start,
                beginning,
                term,
                basis,
            } => {
                self.fresh(EntityRef::Holding(*holding))?;
                let facts = HoldingFacts {
                    person: *person,
                    office: *office,
                    start: *start,
                    end: HoldingEnd::Open,
                    beginning: *beginning,
                    end_reason: None,
                    term: *term,
                    basis: clean_optional_basis("basis", basis)?,
                };
                self.check_holding(*holding, &facts)?;
                let warnings = self.holding_warnings(*holding, &facts, policy);
                Ok(Decision {
                    events: vec![HoldingStarted {
                        holding: *holding,
                        person: *person,
                        office: *office,
                        start: *start,
                        beginning: *beginning,
                        term: *term,
                        basis: facts.basis,
                    }
                    .into()],
                    warnings,
                })
            }
            Command::RecordHolding {
                holding,
                person,
                office,
                start,
                beginning,
                term,
                basis,
                end,
                reason,
                end_basis,
            } => {
                self.fresh(EntityRef::Holding(*holding))?;
                if *end == HoldingEnd::Open {
                    return Err(DomainError::invalid(
                        "end",
                        "must be a date or unknown, not open",
                    ));
                }
                let facts = HoldingFacts {
                    person: *person,
                    office: *office,
                    start: *start,
                    end: *end,
                    beginning: *beginning,
                    end_reason: Some(*reason),
                    term: *term,
                    basis: clean_optional_basis("basis", basis)?,
                };
                self.check_holding(*holding, &facts)?;
                let mut warnings = self.holding_warnings(*holding, &facts, policy);
                if *end == HoldingEnd::Unknown {
                    warnings.push(Irregularity::EndUnknown { holding: *holding });
                }
                Ok(Decision {
                    events: vec![
                        HoldingStarted {
                            holding: *holding,
                            person: *person,
                            office: *office,
                            start: *start,
                            beginning: *beginning,
                            term: *term,
                            basis: facts.basis,
                        }
                        .into(),
                        HoldingEnded {
                            holding: *holding,
                            end: *end,
                            reason: *reason,
                            basis: clean_optional_basis("end_basis", end_basis)?,
                        }
                        .into(),
                    ],
                    warnings,
                })
            }
            Command::EndHolding {
                holding,
                end,
                reason,
                basis,
            } => {
                let current = self.existing_holding(*holding)?;
                if current.end.has_ended() {
                    return Err(DomainError::AlreadyEnded(EntityRef::Holding(*holding)));
                }
                if *end == HoldingEnd::Open {
                    return Err(DomainError::invalid(
                        "end",
                        "must be a date or unknown, not open",
                    ));
                }
                let facts = HoldingFacts {
                    end: *end,
                    end_reason: Some(*reason),
                    ..current.facts()
                };
                self.check_holding(*holding, &facts)?;
                let basis = clean_optional_basis("basis", basis)?;
                let mut warnings = Vec::new();
                if *end == HoldingEnd::Unknown {
                    warnings.push(Irregularity::EndUnknown { holding: *holding });
                }
                Ok(Decision {
                    events: vec![HoldingEnded {
                        holding: *holding,
                        end: *end,
                        reason: *reason,
                        basis,
                    }
                    .into()],
                    warnings,
                })
            }
            Command::DefineModel {
                model,
                name,
                arrangement,
                authorised_by,
            } => {
                self.fresh(EntityRef::Model(*model))?;
                check_arrangement(arrangement)?;
                Ok(vec![ModelDefined {
                    model: *model,
                    name: clean_text("model.name", name)?,
                    arrangement: arrangement.clone(),
                    authorised_by: clean_basis("authorised_by", authorised_by)?,
                }
                .into()]
                .into())
            }
            Command::AdoptModel {
                adoption,
                model,
                unit,
                on,
                basis,
            } => {
                self.fresh(EntityRef::Adoption(*adoption))?;
                self.existing(EntityRef::Model(*model), self.models.contains_key(model))?;
                self.unit_alive(EntityRef::Adoption(*adoption), *unit, *on)?;
                let overlapping = self.units[unit].adoptions.iter().find(|a| {
                    let other = &self.adoptions[*a];
                    other.model == *model && other.span.overlaps(Span::from(*on))
                });
                if let Some(other) = overlapping {
                    return Err(DomainError::InUse {
                        target: EntityRef::Model(*model),
                        used_by: EntityRef::Adoption(*other),
                    });
                }
                Ok(vec![ModelAdopted {
                    adoption: *adoption,
                    model: *model,
                    unit: *unit,
                    on: *on,
                    basis: clean_basis("basis", basis)?,
                }
                .into()]
                .into())
            }
            Command::WithdrawModel {
                adoption,
                on,
                basis,
            } => {
                let current = self
                    .adoptions
                    .get(adoption)
                    .ok_or_else(|| self.missing(EntityRef::Adoption(*adoption)))?;
                if current.span.end.is_some() {
                    return Err(DomainError::AlreadyEnded(EntityRef::Adoption(*adoption)));
                }
                if *on <= current.span.start {
                    return Err(DomainError::EndBeforeStart {
                        what: EntityRef::Adoption(*adoption),
                        start: current.span.start.to_string(),
                        end: on.to_string(),
                    });
                }
                Ok(vec![ModelWithdrawn {
                    adoption: *adoption,
                    on: *on,
                    basis: clean_basis("basis", basis)?,
                }
                .into()]
                .into())
            }
            Command::OpenTerm {
                term,
                body,
                label,
                start,
                planned_end,
            } => {
                self.fresh(EntityRef::Term(*term))?;
                self.unit_alive(EntityRef::Term(*term), *body, *start)?;
                if planned_end.is_some_and(|end| end <= *start) {
                    return Err(DomainError::EndBeforeStart {
                        what: EntityRef::Term(*term),
                        start: start.to_string(),
                        end: planned_end.map(|d| d.to_string()).unwrap_or_default(),
                    });
                }
                Ok(vec![TermOpened {
                    term: *term,
                    body: *body,
                    label: clean_text("term.label", label)?,
                    start: *start,
                    planned_end: *planned_end,
                }
                .into()]
                .into())
            }
            Command::CorrectPerson {
                person,
                after,
                amendment,
            } => {
                let current = self.existing_person(*person)?;
                let after = after.applied_to(&current.facts());
                let after = PersonFacts {
                    name: clean_text("after.name", &after.name)?,
                    birth: after.birth,
                };
                unchanged_is_refused(&current.facts(), &after)?;
                if let Some(birth) = after.birth {
                    for holding in current.holdings.iter() {
                        let h = &self.holdings[holding];
                        if h.start.latest() < birth.earliest() {
                            return Err(DomainError::BeforeBirth {
                                holding: *holding,
                                person: *person,
                                birth: birth.to_string(),
                            });
                        }
                    }
                }
                Ok(vec![PersonCorrected {
                    person: *person,
                    before: current.facts(),
                    after,
                    amendment: clean_amendment(amendment)?,
                }
                .into()]
                .into())
            }
            Command::CorrectOffice {
                office,
                after,
                amendment,
            } => self.decide_office_correction(*office, after, amendment),
            Command::CorrectHolding {
                holding,
                after,
                amendment,
            } => {
                let current = self.existing_holding(*holding)?;
                let amendment = clean_amendment(amendment)?;
                let after = after.applied_to(&current.facts());
                let after = HoldingFacts {
                    basis: clean_optional_basis("after.basis", &after.basis)?,
                    ..after
                };
                unchanged_is_refused(&current.facts(), &after)?;
                if after.end.has_ended() != after.end_reason.is_some() {
                    return Err(DomainError::invalid(
                        "after.end_reason",
                        "must be given exactly when the holding has ended",
                    ));
                }
                self.check_holding(*holding, &after)?;
                if after.person != current.person {
                    if let Some(dependent) = self.dependents(*holding).next() {
                        return Err(DomainError::CauseMismatch {
                            holding: dependent,
                            cause: *holding,
                        });
                    }
                }
                let warnings = self.holding_warnings(*holding, &after, policy);
                Ok(Decision {
                    events: vec![HoldingCorrected {
                        holding: *holding,
                        before: current.facts(),
                        after,
                        amendment,
                    }
                    .into()],
                    warnings,
                })
            }
            Command::Retract { target, amendment } => {
                let amendment = clean_amendment(amendment)?;
                self.check_retraction(*target)?;
                Ok(vec![Retracted {
                    target: *target,
                    amendment,
                }
                .into()]
                .into())
            }
        }
    }

    // ----- lookups -----

    fn missing(&self, what: EntityRef) -> DomainError {
        if self.retracted.contains(&what.uuid()) {
            DomainError::WasRetracted(what)
        } else {
            DomainError::NotFound(what)
        }
    }

    fn existing(&self, what: EntityRef, present: bool) -> Result<(), DomainError> {
        if present {
            Ok(())
        } else {
            Err(self.missing(what))
        }
    }

    fn fresh(&self, what: EntityRef) -> Result<(), DomainError> {
        let id = what.uuid();
        let taken = self.retracted.contains(&id)
            || self.persons.contains_key(&PersonId::from_uuid(id))
            || self.units.contains_key(&UnitId::from_uuid(id))
            || self.offices.contains_key(&OfficeId::from_uuid(id))
            || self.holdings.contains_key(&HoldingId::from_uuid(id))
            || self
                .models
                .contains_key(&crate::ids::ModelId::from_uuid(id))
            || self
                .adoptions
                .contains_key(&crate::ids::AdoptionId::from_uuid(id))
            || self.terms.contains_key(&crate::ids::TermId::from_uuid(id));
        if taken {
            Err(DomainError::AlreadyExists(what))
        } else {
            Ok(())
        }
    }

    fn existing_person(&self, id: PersonId) -> Result<&crate::state::Person, DomainError> {
        self.persons
            .get(&id)
            .ok_or_else(|| self.missing(EntityRef::Person(id)))
    }

    fn existing_office(&self, id: OfficeId) -> Result<&Office, DomainError> {
        self.offices
            .get(&id)
            .ok_or_else(|| self.missing(EntityRef::Office(id)))
    }

    fn existing_holding(&self, id: HoldingId) -> Result<&crate::state::Holding, DomainError> {
        self.holdings
            .get(&id)
            .ok_or_else(|| self.missing(EntityRef::Holding(id)))
    }

    /// The unit exists and is alive on `day`; `what` is the thing that needs it.
    fn unit_alive(&self, what: EntityRef, unit: UnitId, day: Date) -> Result<(), DomainError> {
        let u = self
            .units
            .get(&unit)
            .ok_or_else(|| self.missing(EntityRef::Unit(unit)))?;
        if u.life.contains(day) {
            Ok(())
        } else {
            Err(DomainError::OutsideUnitLife { what, unit, day })
        }
    }

    fn check_parents(&self, unit: UnitId, parents: &[UnitId], on: Date) -> Result<(), DomainError> {
        let mut seen = HashSet::new();
        for &parent in parents {
            if !seen.insert(parent) {
                return Err(DomainError::invalid(
                    "parents",
                    format!("{parent} is listed twice"),
                ));
            }
            self.no_cycle(unit, parent, on)?;
            self.unit_alive(EntityRef::Unit(unit), parent, on)?;
        }
        Ok(())
    }

    /// Placing `unit` under `parent` from `on` on makes no unit its own ancestor on any day:
    /// the link lasts until the unit moves again, and the units above `parent` may change
    /// later (moves recorded before this one, dated after it), so every day the tree changes
    /// shape from `on` on is checked.
    fn no_cycle(&self, unit: UnitId, parent: UnitId, on: Date) -> Result<(), DomainError> {
        let cycle = |day| DomainError::StructureCycle { unit, parent, day };
        if parent == unit {
            return Err(cycle(on));
        }
        if !self.units.contains_key(&unit) {
            // A new unit is under nothing yet.
            return Ok(());
        }
        // Whether `unit` is above `parent` on a day depends only on the links of the units
        // ever above `parent`: the days they begin or end are the days to check.
        let mut days = std::collections::BTreeSet::from([on]);
        let mut above = vec![parent];
        let mut seen = HashSet::new();
        while let Some(current) = above.pop() {
            if !seen.insert(current) {
                continue;
            }
            for link in self
                .units
                .get(&current)
                .into_iter()
                .flat_map(|u| &u.parents)
            {
                days.extend(
                    std::iter::once(link.span.start)
                        .chain(link.span.end)
                        .filter(|day| *day > on),
                );
                above.push(link.parent);
            }
        }
        match days
            .into_iter()
            .find(|day| self.is_ancestor_or_self(unit, parent, *day))
        {
            Some(day) => Err(cycle(day)),
            None => Ok(()),
        }
    }

    fn dependents(&self, cause: HoldingId) -> impl Iterator<Item = HoldingId> + '_ {
        let person = self.holdings.get(&cause).map(|h| h.person);
        person
            .and_then(|p| self.persons.get(&p))
            .into_iter()
            .flat_map(|p| p.holdings.iter().copied())
            .filter(move |h| self.holdings[h].beginning.cause() == Some(cause))
    }

    // ----- holdings -----

    /// Checks every hard rule a holding with these facts must satisfy, as if it replaced the
    /// holding `id` (or were added, when `id` is new).
    fn check_holding(&self, id: HoldingId, facts: &HoldingFacts) -> Result<(), DomainError> {
        let person = self.existing_person(facts.person)?;
        let office = self.existing_office(facts.office)?;
        if let HoldingEnd::On(end) = facts.end {
            if end.latest() <= facts.start.earliest() {
                return Err(DomainError::EndBeforeStart {
                    what: EntityRef::Holding(id),
                    start: facts.start.to_string(),
                    end: end.to_string(),
                });
            }
        }
        let span = holding_span(facts.start, facts.end);
        if !span.within(office.life) {
            return Err(DomainError::OutsideOfficeLife {
                holding: id,
                office: facts.office,
                span,
                life: office.life,
            });
        }
        if !span.is_empty() {
            let unit = office.unit_on(span.start);
            self.unit_alive(EntityRef::Holding(id), unit, span.start)?;
        }
        if let Some(birth) = person.birth {
            if facts.start.latest() < birth.earliest() {
                return Err(DomainError::BeforeBirth {
                    holding: id,
                    person: facts.person,
                    birth: birth.to_string(),
                });
            }
        }
        if let Some(cause) = facts.beginning.cause() {
            let same_person = cause != id
                && self
                    .holdings
                    .get(&cause)
                    .is_some_and(|c| c.person == facts.person);
            if !same_person {
                return Err(DomainError::CauseMismatch { holding: id, cause });
            }
        }
        if let Some(term) = facts.term {
            let t = self
                .terms
                .get(&term)
                .ok_or_else(|| self.missing(EntityRef::Term(term)))?;
            let unit = office.unit_on(facts.start.latest());
            if t.body != unit {
                return Err(DomainError::TermOfAnotherBody {
                    holding: id,
                    term: EntityRef::Term(term),
                    term_body: t.body,
                    unit,
                });
            }
        }
        let others = office
            .holdings
            .spans()
            .filter(|(h, other)| *h != id && other.overlaps(span));
        check_capacity(facts.office, office.capacity, others.chain([(id, span)]))
    }

    /// The flags of a holding as recorded: what its facts bring against the rest of the
    /// registry (as a correction's warnings are for its new facts). `None` for a holding not
    /// known.
    pub fn flags_of_holding(
        &self,
        holding: HoldingId,
        policy: &Policy,
    ) -> Option<Vec<Irregularity>> {
        let facts = self.holding(holding)?.facts();
        Some(self.holding_warnings(holding, &facts, policy))
    }

    fn holding_warnings(
        &self,
        id: HoldingId,
        facts: &HoldingFacts,
        policy: &Policy,
    ) -> Vec<Irregularity> {
        let mut warnings = Vec::new();
        if facts.basis.is_none() {
            warnings.push(Irregularity::MissingBasis { holding: id });
        }
        if facts.end == HoldingEnd::Unknown {
            warnings.push(Irregularity::EndUnknown { holding: id });
        }
        let span = holding_span(facts.start, facts.end);
        warnings.extend(concurrency_irregularities(
            self,
            id,
            facts.person,
            facts.office,
            span,
            facts.beginning,
            policy,
        ));
        if let Some(vacant) = vacancy_before(self, facts.office, id, span.start) {
            let days = vacant.start.days_until(span.start);
            if days > policy.max_vacancy_days {
                warnings.push(Irregularity::LongVacancy {
                    office: facts.office,
                    vacant,
                    days,
                });
            }
        }
        warnings
    }

    // ----- offices -----

    fn abolish_office(
        &self,
        id: OfficeId,
        on: Date,
        basis: Option<LegalBasis>,
        reason: EndReason,
        events: &mut Vec<Event>,
    ) -> Result<(), DomainError> {
        let office = self.existing_office(id)?;
        if office.life.end.is_some() {
            return Err(DomainError::AlreadyEnded(EntityRef::Office(id)));
        }
        if on <= office.life.start {
            return Err(DomainError::EndBeforeStart {
                what: EntityRef::Office(id),
                start: office.life.start.to_string(),
                end: on.to_string(),
            });
        }
        let life = Span::between(office.life.start, on);
        for holding in office.holdings.iter() {
            let h = &self.holdings[holding];
            let span = h.span();
            if span.start >= on || h.end.has_ended() && !span.within(life) {
                return Err(DomainError::OutsideOfficeLife {
                    holding: *holding,
                    office: id,
                    span,
                    life,
                });
            }
            if h.end == HoldingEnd::Open {
                events.push(
                    HoldingEnded {
                        holding: *holding,
                        end: HoldingEnd::On(on.into()),
                        reason,
                        basis: basis.clone(),
                    }
                    .into(),
                );
            }
        }
        events.push(
            OfficeAbolished {
                office: id,
                on,
                basis,
            }
            .into(),
        );
        Ok(())
    }

    fn decide_office_correction(
        &self,
        id: OfficeId,
        after: &OfficePatch,
        amendment: &Amendment,
    ) -> Result<Decision, DomainError> {
        let office = self.existing_office(id)?;
        let amendment = clean_amendment(amendment)?;
        let after = after.applied_to(&office.facts());
        check_capacity_value(after.capacity)?;
        let after = OfficeFacts {
            title: clean_text("after.title", &after.title)?,
            ..after
        };
        unchanged_is_refused(&office.facts(), &after)?;
        if after.abolished.is_some_and(|end| end <= after.established) {
            return Err(DomainError::EndBeforeStart {
                what: EntityRef::Office(id),
                start: after.established.to_string(),
                end: after.abolished.map(|d| d.to_string()).unwrap_or_default(),
            });
        }
        let life = Span {
            start: after.established,
            end: after.abolished,
        };
        // The office must lie within the life of each unit it was placed in, for the days it was
        // placed there; the first placement starts with the (corrected) establishment.
        if office
            .placements
            .get(1)
            .is_some_and(|(moved, _)| *moved <= after.established)
        {
            return Err(DomainError::invalid(
                "after.established",
                "falls after the office was carried to another unit",
            ));
        }
        for (i, (since, unit)) in office.placements.iter().enumerate() {
            let start = if i == 0 { after.established } else { *since };
            let until = office.placements.get(i + 1).map(|(next, _)| *next);
            let placed = Span { start, end: until };
            let Some(days) = placed.intersection(life) else {
                continue;
            };
            let u = &self.units[unit];
            if !days.within(u.life) {
                let day = if u.life.start > days.start {
                    days.start
                } else {
                    u.life.end.unwrap_or(days.start)
                };
                return Err(DomainError::OutsideUnitLife {
                    what: EntityRef::Office(id),
                    unit: *unit,
                    day,
                });
            }
        }
        let spans: Vec<(HoldingId, Span)> = office.holdings.spans().collect();
        for (holding, span) in &spans {
            if !span.within(life) {
                return Err(DomainError::OutsideOfficeLife {
                    holding: *holding,
                    office: id,
                    span: *span,
                    life,
                });
            }
        }
        check_capacity(id, after.capacity, spans.into_iter())?;
        Ok(vec![OfficeCorrected {
            office: id,
            before: office.facts(),
            after,
            amendment,
        }
        .into()]
        .into())
    }

    // ----- structure -----

    fn decide_reorganisation(&self, r: &Reorganisation) -> Result<Decision, DomainError> {
        let basis = clean_basis("basis", &r.basis)?;
        let on = r.on;
        let (min_pred, max_pred, min_succ, max_succ) = match r.ending {
            UnitEnding::Merged => (2, usize::MAX, 1, 1),
            UnitEnding::Absorbed => (1, usize::MAX, 1, 1),
            UnitEnding::Split => (1, 1, 2, usize::MAX),
            UnitEnding::Dissolved => (1, usize::MAX, 0, 0),
        };
        let count_problem = |n: usize, min: usize, max: usize| {
            if n < min || n > max {
                Some(if min == max {
                    format!("needs exactly {min}, got {n}")
                } else if n < min {
                    format!("needs at least {min}, got {n}")
                } else {
                    format!("needs at most {max}, got {n}")
                })
            } else {
                None
            }
        };
        if let Some(problem) = count_problem(r.predecessors.len(), min_pred, max_pred) {
            return Err(DomainError::invalid(
                "predecessors",
                format!("a {:?} reorganisation {problem}", r.ending),
            ));
        }
        if let Some(problem) = count_problem(r.successors.len(), min_succ, max_succ) {
            return Err(DomainError::invalid(
                "successors",
                format!("a {:?} reorganisation {problem}", r.ending),
            ));
        }
        match r.ending {
            UnitEnding::Merged if !matches!(r.successors[0], Successor::New(_)) => {
                return Err(DomainError::invalid(
                    "successors",
                    "a merger establishes a new unit; use absorb for an existing one",
                ));
            }
            UnitEnding::Absorbed if matches!(r.successors[0], Successor::New(_)) => {
                return Err(DomainError::invalid(
                    "successors",
                    "an absorption continues in an existing unit; use merge for a new one",
                ));
            }
            _ => {}
        }
        let predecessors: HashSet<UnitId> = r.predecessors.iter().copied().collect();
        if predecessors.len() != r.predecessors.len() {
            return Err(DomainError::invalid(
                "predecessors",
                "a unit is listed twice",
            ));
        }
        for &unit in &r.predecessors {
            self.unit_alive(EntityRef::Unit(unit), unit, on)?;
            if self.units[&unit].life.start >= on {
                return Err(DomainError::EndBeforeStart {
                    what: EntityRef::Unit(unit),
                    start: self.units[&unit].life.start.to_string(),
                    end: on.to_string(),
                });
            }
        }
        let mut events: Vec<Event> = Vec::new();
        let mut successors = Vec::new();
        for successor in &r.successors {
            let id = successor.unit();
            if predecessors.contains(&id) || successors.contains(&id) {
                return Err(DomainError::invalid(
                    "successors",
                    format!("{id} is listed twice or is also a predecessor"),
                ));
            }
            match successor {
                Successor::New(new) => {
                    self.fresh(EntityRef::Unit(id))?;
                    for &parent in &new.parents {
                        if predecessors.contains(&parent) {
                            return Err(DomainError::OutsideUnitLife {
                                what: EntityRef::Unit(id),
                                unit: parent,
                                day: on,
                            });
                        }
                    }
                    self.check_parents(id, &new.parents, on)?;
                    events.push(
                        UnitEstablished {
                            unit: id,
                            kind: new.kind,
                            level: new.level,
                            name: clean_text("successors.name", &new.name)?,
                            parents: new.parents.clone(),
                            on,
                            basis: basis.clone(),
                        }
                        .into(),
                    );
                }
                Successor::Existing { unit } => {
                    self.unit_alive(EntityRef::Unit(*unit), *unit, on)?
                }
            }
            successors.push(id);
        }

        // Offices: every office alive in a predecessor on `on` needs a stated fate.
        let fates: HashMap<OfficeId, OfficeFate> = r.offices.iter().copied().collect();
        if fates.len() != r.offices.len() {
            return Err(DomainError::invalid("offices", "an office is listed twice"));
        }
        let mut offices_in_predecessors = HashSet::new();
        let mut carried = Vec::new();
        for &unit in &r.predecessors {
            for office_id in &self.units[&unit].offices {
                let office = &self.offices[office_id];
                if office.unit_on(on.previous_day()) != unit
                    || !office.life.overlaps(Span::from(on))
                {
                    continue;
                }
                offices_in_predecessors.insert(*office_id);
                match fates.get(office_id) {
                    None => {
                        return Err(DomainError::FateNotStated {
                            what: EntityRef::Office(*office_id),
                            unit,
                            day: on,
                        });
                    }
                    Some(OfficeFate::Abolish) => {
                        self.abolish_office(
                            *office_id,
                            on,
                            Some(basis.clone()),
                            r.ending.holding_end_reason(),
                            &mut events,
                        )?;
                    }
                    Some(OfficeFate::CarryTo(target)) => {
                        if !successors.contains(target) {
                            return Err(DomainError::invalid(
                                "offices",
                                format!(
                                    "{office_id} is carried to {target}, which is not a successor"
                                ),
                            ));
                        }
                        if office.life.start >= on {
                            return Err(DomainError::OutsideUnitLife {
                                what: EntityRef::Office(*office_id),
                                unit,
                                day: office.life.start,
                            });
                        }
                        carried.push(
                            OfficeCarried {
                                office: *office_id,
                                unit: *target,
                                on,
                            }
                            .into(),
                        );
                    }
                }
            }
        }
        if let Some(extra) = fates.keys().find(|o| !offices_in_predecessors.contains(o)) {
            return Err(DomainError::invalid(
                "offices",
                format!("{extra} is not an office of a predecessor on {on}"),
            ));
        }

        // Children: every unit under a predecessor on `on` needs new parents.
        let moves: HashMap<UnitId, &Vec<UnitId>> =
            r.children.iter().map(|(c, p)| (*c, p)).collect();
        let mut children_seen = HashSet::new();
        let mut moved = Vec::new();
        for &unit in &r.predecessors {
            for child in &self.units[&unit].children {
                if predecessors.contains(child) || !children_seen.insert(*child) {
                    continue;
                }
                let c = &self.units[child];
                let under = c
                    .parents
                    .iter()
                    .any(|l| l.parent == unit && l.span.overlaps(Span::from(on)));
                if !under || !c.life.overlaps(Span::from(on)) {
                    children_seen.remove(child);
                    continue;
                }
                let Some(parents) = moves.get(child) else {
                    return Err(DomainError::FateNotStated {
                        what: EntityRef::Unit(*child),
                        unit,
                        day: on,
                    });
                };
                for parent in parents.iter() {
                    if predecessors.contains(parent) {
                        return Err(DomainError::OutsideUnitLife {
                            what: EntityRef::Unit(*child),
                            unit: *parent,
                            day: on,
                        });
                    }
                    let new = successors.contains(parent) && !self.units.contains_key(parent);
                    if new {
                        // Under a new unit: a cycle if the new unit sits under the child.
                        let above = r.successors.iter().find_map(|s| match s {
                            Successor::New(n) if n.unit == *parent => Some(&n.parents),
                            _ => None,
                        });
                        for grand in above.into_iter().flatten() {
                            self.no_cycle(*child, *grand, on)?;
                        }
                    } else {
                        self.no_cycle(*child, *parent, on)?;
                        self.unit_alive(EntityRef::Unit(*child), *parent, on)?;
                    }
                }
                moved.push(
                    UnitMoved {
                        unit: *child,
                        parents: (*parents).clone(),
                        on,
                        basis: basis.clone(),
                    }
                    .into(),
                );
            }
        }
        if let Some(extra) = moves.keys().find(|c| !children_seen.contains(c)) {
            return Err(DomainError::invalid(
                "children",
                format!("{extra} is not under a predecessor on {on}"),
            ));
        }

        // Adoptions by an ending unit end with it.
        for &unit in &r.predecessors {
            for adoption in &self.units[&unit].adoptions {
                if self.adoptions[adoption].span.end.is_none() {
                    events.push(
                        ModelWithdrawn {
                            adoption: *adoption,
                            on,
                            basis: basis.clone(),
                        }
                        .into(),
                    );
                }
            }
        }
        events.push(
            UnitsReorganised {
                ending: r.ending,
                predecessors: r.predecessors.clone(),
                successors,
                on,
                basis,
            }
            .into(),
        );
        events.extend(carried);
        events.extend(moved);
        Ok(events.into())
    }

    // ----- retractions -----

    fn check_retraction(&self, target: EntityRef) -> Result<(), DomainError> {
        let in_use = |used_by: EntityRef| Err(DomainError::InUse { target, used_by });
        match target {
            EntityRef::Person(id) => {
                let person = self.existing_person(id)?;
                if let Some(h) = person.holdings.first() {
                    return in_use(EntityRef::Holding(*h));
                }
            }
            EntityRef::Unit(id) => {
                let unit = self.units.get(&id).ok_or_else(|| self.missing(target))?;
                if let Some(o) = unit.offices.first() {
                    return in_use(EntityRef::Office(*o));
                }
                if let Some(c) = unit.children.first() {
                    return in_use(EntityRef::Unit(*c));
                }
                if let Some(u) = unit.successors.first().or(unit.predecessors.first()) {
                    return in_use(EntityRef::Unit(*u));
                }
                if let Some(a) = unit.adoptions.first() {
                    return in_use(EntityRef::Adoption(*a));
                }
                if let Some(t) = unit.terms.first() {
                    return in_use(EntityRef::Term(*t));
                }
            }
            EntityRef::Office(id) => {
                let office = self.existing_office(id)?;
                if let Some(h) = office.holdings.first() {
                    return in_use(EntityRef::Holding(*h));
                }
            }
            EntityRef::Holding(id) => {
                self.existing_holding(id)?;
                if let Some(dependent) = self.dependents(id).next() {
                    return in_use(EntityRef::Holding(dependent));
                }
            }
            EntityRef::Model(id) => {
                let model = self.models.get(&id).ok_or_else(|| self.missing(target))?;
                if let Some(a) = model.adoptions.first() {
                    return in_use(EntityRef::Adoption(*a));
                }
            }
            EntityRef::Adoption(id) => self.existing(target, self.adoptions.contains_key(&id))?,
            EntityRef::Term(id) => {
                self.existing(target, self.terms.contains_key(&id))?;
                if let Some((h, _)) = self.holdings.iter().find(|(_, h)| h.term == Some(id)) {
                    return in_use(EntityRef::Holding(*h));
                }
            }
        }
        Ok(())
    }
}

fn check_capacity_value(capacity: Capacity) -> Result<(), DomainError> {
    if capacity == Capacity::Limited(0) {
        return Err(DomainError::invalid(
            "capacity",
            "a limited capacity must be at least 1",
        ));
    }
    Ok(())
}

fn check_arrangement(arrangement: &Arrangement) -> Result<(), DomainError> {
    match arrangement {
        Arrangement::ConcurrentOffices { roles } if roles.len() < 2 => Err(DomainError::invalid(
            "arrangement.roles",
            "a concurrent-offices model combines at least 2 roles",
        )),
        Arrangement::SharedUnit { serves, .. } if serves.len() < 2 => Err(DomainError::invalid(
            "arrangement.serves",
            "a shared unit serves at least 2 kinds of organisation",
        )),
        _ => Ok(()),
    }
}

/// Fails when more than the capacity's holders share a day. A sweep over the spans' bounds.
fn check_capacity(
    office: OfficeId,
    capacity: Capacity,
    spans: impl Iterator<Item = (HoldingId, Span)>,
) -> Result<(), DomainError> {
    let Some(limit) = capacity.limit() else {
        return Ok(());
    };
    let spans: Vec<(HoldingId, Span)> = spans.filter(|(_, s)| !s.is_empty()).collect();
    if spans.len() <= limit as usize {
        return Ok(());
    }
    // An end is exclusive, so on one day ends (-1) must count before starts (+1): they sort first.
    let mut bounds: Vec<(Date, i32)> = Vec::with_capacity(spans.len() * 2);
    for (_, span) in &spans {
        bounds.push((span.start, 1));
        if let Some(end) = span.end {
            bounds.push((end, -1));
        }
    }
    bounds.sort_unstable();
    let mut count = 0i32;
    for (day, delta) in bounds {
        count += delta;
        if count > limit as i32 {
            let holders: Vec<HoldingId> = spans
                .iter()
                .filter(|(_, s)| s.contains(day))
                .map(|(h, _)| *h)
                .collect();
            return Err(DomainError::CapacityExceeded {
                office,
                capacity: limit,
                count: holders.len(),
                day,
                holders,
            });
        }
    }
    Ok(())
}
