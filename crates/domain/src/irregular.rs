//! Irregularities: facts that are real but unusual, accepted and flagged for auditors.
//!
//! The registry records decisions made elsewhere, so it must not refuse a real appointment
//! because it is odd. `decide` returns the irregularities a command brings as warnings;
//! [`Registry::irregularities`] lists all of them as of a day, for the auditors' read model.

use serde::{Deserialize, Serialize};

use crate::date::{Date, Span};
use crate::ids::{HoldingId, OfficeId, PersonId, UnitId};
use crate::model::{Arrangement, Beginning, HoldingEnd, Role};
use crate::state::{Holding, Office, Registry};

/// Thresholds for what counts as irregular.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// More concurrent holdings than this on one day are flagged.
    pub max_concurrent_holdings: usize,
    /// A sole office vacant for more days than this is flagged.
    pub max_vacancy_days: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_concurrent_holdings: 6,
            max_vacancy_days: 365,
        }
    }
}

/// Something real but irregular.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Irregularity {
    /// A person holds two leading offices in different units at once, and no pilot model
    /// adopted above both offices covers the combination.
    UncoveredConcurrency {
        /// The person.
        person: PersonId,
        /// The two holdings.
        holdings: (HoldingId, HoldingId),
        /// The first day they overlap.
        on: Date,
    },
    /// A person holds more offices at once than the policy finds plausible.
    TooManyOffices {
        /// The person.
        person: PersonId,
        /// How many on `on`.
        count: usize,
        /// The day.
        on: Date,
    },
    /// An office with a limited capacity stood empty longer than the policy allows.
    LongVacancy {
        /// The office.
        office: OfficeId,
        /// The vacant days.
        vacant: Span,
        /// How many.
        days: i64,
    },
    /// A holding with no legal basis recorded.
    MissingBasis {
        /// The holding.
        holding: HoldingId,
    },
    /// A holding that ended on an unknown date.
    EndUnknown {
        /// The holding.
        holding: HoldingId,
    },
}

impl Registry {
    /// The roles of the holding's office on `day`, and the unit it is in.
    fn role_on(&self, office: &Office, day: Date) -> Option<(Role, UnitId)> {
        let unit_id = office.unit_on(day);
        let unit = self.units.get(&unit_id)?;
        Some((
            Role {
                unit_kind: unit.kind,
                office_kind: office.kind,
            },
            unit_id,
        ))
    }

    /// Whether an adopted model covers holding the two roles together on `day`: a
    /// concurrent-offices model naming both roles, adopted on that day by a unit that is an
    /// ancestor (or self) of both offices' units.
    pub fn combination_covered(&self, a: (Role, UnitId), b: (Role, UnitId), day: Date) -> bool {
        let mut stack = vec![a.1];
        let mut seen = std::collections::HashSet::new();
        while let Some(current) = stack.pop() {
            if !seen.insert(current) {
                continue;
            }
            let Some(unit) = self.units.get(&current) else {
                continue;
            };
            for adoption in &unit.adoptions {
                let adoption = &self.adoptions[adoption];
                if !adoption.span.contains(day) {
                    continue;
                }
                let Some(model) = self.models.get(&adoption.model) else {
                    continue;
                };
                let names_both = match &model.arrangement {
                    Arrangement::ConcurrentOffices { roles } => {
                        roles.contains(&a.0) && roles.contains(&b.0)
                    }
                    Arrangement::SharedUnit { .. } => false,
                };
                if names_both && self.is_ancestor_or_self(current, b.1, day) {
                    return true;
                }
            }
            stack.extend(unit.parents_on(day));
        }
        false
    }

    /// The irregularities a holding `id` of `person` in `office` over `span`, begun as
    /// `beginning`, brings with the person's other holdings (`id` itself excluded).
    pub(crate) fn concurrency_irregularities(
        &self,
        id: HoldingId,
        person: PersonId,
        office: OfficeId,
        span: Span,
        beginning: Beginning,
        policy: &Policy,
    ) -> Vec<Irregularity> {
        let mut found = Vec::new();
        let (Some(p), Some(o)) = (self.persons.get(&person), self.offices.get(&office)) else {
            return found;
        };
        let others: Vec<(HoldingId, &Holding, Span)> = p
            .holdings
            .spans()
            .filter(|(h, s)| *h != id && s.overlaps(span))
            .map(|(h, s)| (h, &self.holdings[&h], s))
            .collect();
        if !o.kind.is_membership() {
            for (other_id, other, other_span) in &others {
                let other_office = &self.offices[&other.office];
                if other_office.kind.is_membership() {
                    continue;
                }
                let Some(day) = span.intersection(*other_span).map(|s| s.start) else {
                    continue;
                };
                let (Some(mine), Some(theirs)) =
                    (self.role_on(o, day), self.role_on(other_office, day))
                else {
                    continue;
                };
                // Offices in one unit, or one carried ex officio by the other, are not a
                // combination that needs a model.
                let ex_officio =
                    |b: Beginning, cause: HoldingId| b == Beginning::ExOfficio { cause };
                if mine.1 == theirs.1
                    || ex_officio(other.beginning, id)
                    || ex_officio(beginning, *other_id)
                {
                    continue;
                }
                if !self.combination_covered(mine, theirs, day) {
                    found.push(Irregularity::UncoveredConcurrency {
                        person,
                        holdings: (*other_id, id),
                        on: day,
                    });
                }
            }
        }
        // The most holdings at once: count at each start inside the span.
        let mut days: Vec<Date> = others
            .iter()
            .map(|(_, _, s)| s.start.max(span.start))
            .collect();
        days.push(span.start);
        for day in days {
            let count = 1 + others.iter().filter(|(_, _, s)| s.contains(day)).count();
            if count > policy.max_concurrent_holdings {
                found.push(Irregularity::TooManyOffices {
                    person,
                    count,
                    on: day,
                });
                break;
            }
        }
        found
    }

    /// The vacancy that ends on `day` in a limited office: the days since the last holder
    /// (other than `except`) left, or since the office was established. `None` when it was
    /// not vacant on the day before `day`.
    pub(crate) fn vacancy_before(
        &self,
        office: &Office,
        except: HoldingId,
        day: Date,
    ) -> Option<Span> {
        office.capacity.limit()?;
        let mut last_end = office.life.start;
        for (_, span) in office.holdings.spans().filter(|(h, _)| *h != except) {
            if span.is_empty() || span.start >= day {
                continue;
            }
            match span.end {
                None => return None,
                Some(end) if end >= day => return None,
                Some(end) => last_end = last_end.max(end),
            }
        }
        (last_end < day).then(|| Span::between(last_end, day))
    }

    /// Every irregularity in the registry, with vacancies counted up to `as_of`.
    pub fn irregularities(&self, policy: &Policy, as_of: Date) -> Vec<Irregularity> {
        let mut found = Vec::new();
        for (id, holding) in &self.holdings {
            if holding.basis.is_none() {
                found.push(Irregularity::MissingBasis { holding: *id });
            }
            if holding.end == HoldingEnd::Unknown {
                found.push(Irregularity::EndUnknown { holding: *id });
            }
        }
        for (person_id, person) in &self.persons {
            let mut flagged_count = false;
            for id in person.holdings.iter() {
                let h = &self.holdings[id];
                // Each pair once: only pairs where the other holding was recorded earlier.
                let earlier =
                    &person.holdings[..person.holdings.iter().position(|x| x == id).unwrap_or(0)];
                for irregularity in self.concurrency_irregularities(
                    *id,
                    *person_id,
                    h.office,
                    h.span(),
                    h.beginning,
                    policy,
                ) {
                    match irregularity {
                        Irregularity::UncoveredConcurrency {
                            holdings: (other, _),
                            ..
                        } if earlier.contains(&other) => {
                            found.push(irregularity);
                        }
                        Irregularity::TooManyOffices { .. } if !flagged_count => {
                            flagged_count = true;
                            found.push(irregularity);
                        }
                        _ => {}
                    }
                }
            }
        }
        for (office_id, office) in &self.offices {
            let mut starts: Vec<Date> = office
                .holdings
                .spans()
                .map(|(_, span)| span)
                .filter(|s| !s.is_empty())
                .map(|s| s.start)
                .collect();
            let end_of_watch = office.life.end.map_or(as_of, |end| end.min(as_of));
            starts.push(end_of_watch);
            starts.sort_unstable();
            starts.dedup();
            for day in starts.into_iter().filter(|d| *d <= end_of_watch) {
                if let Some(vacant) =
                    self.vacancy_before(office, HoldingId::from_uuid(uuid::Uuid::nil()), day)
                {
                    let days = vacant.start.days_until(vacant.end.unwrap_or(day));
                    if days > policy.max_vacancy_days {
                        found.push(Irregularity::LongVacancy {
                            office: *office_id,
                            vacant,
                            days,
                        });
                    }
                }
            }
        }
        found
    }
}
