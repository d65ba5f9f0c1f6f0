//! Precomputed coverage: for every commune and pilot model, the days on which the commune
//! applies the model, as declared and as observed, under the registry's current knowledge.
//!
//! The question "how many communes of this province apply model M on day D" otherwise walks
//! every commune's bodies and offices. Both answers are piecewise constant in D: they can only
//! change on a day where a holding of one of the model's roles, a placement of an office, a
//! parent link or an adoption begins or ends. So each timeline is computed by evaluating the
//! plain definition (`Projection::adopted`, `Projection::observed`) once at each such day.
//!
//! Applying an event marks the communes it may affect; [`Projection::refresh_coverage`]
//! recomputes those. A query uses a timeline only when it is clean and the question is about
//! the current knowledge; otherwise it falls back to the plain definition, so answers never
//! depend on whether the index is fresh.

use registry_domain::state::holding_widest_span;
use registry_domain::{Arrangement, Date, Level, ModelId, OfficeId, UnitKind};
use serde::{Deserialize, Serialize};

use crate::{HashMap, Projection, CURRENT};

/// A commune's answers on a day: (exists, declared, observed, uncertain: not observed, but
/// would be with the holdings possibly held).
type Answers = (bool, bool, bool, bool);

/// Change points of a commune's answers over days, from each day on, sorted: one list for all
/// of them, so a query reads one place per commune.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Timeline {
    changes: Vec<(i32, Answers)>,
}

impl Timeline {
    /// The answers on `day`.
    pub(crate) fn at(&self, day: i32) -> Answers {
        let after = self.changes.partition_point(|(d, _)| *d <= day);
        if after == 0 {
            (false, false, false, false)
        } else {
            self.changes[after - 1].1
        }
    }
}

/// The commune timelines of every model, and what is stale.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct CoverageIndex {
    /// Per model, the timeline of each unit row (`None` for units that are not communes): a
    /// query looks the model up once and then indexes.
    pub(crate) timelines: HashMap<ModelId, Vec<Option<Timeline>>>,
    /// Units whose communes' timelines are stale.
    pub(crate) dirty: std::collections::HashSet<u32, foldhash::fast::RandomState>,
    /// Everything is stale (after a change of structure, adoptions or models).
    pub(crate) all_dirty: bool,
}

impl Projection {
    /// Every unit above `unit` at any time (and the unit), through any recorded link.
    pub(crate) fn ancestors_ever(&self, unit: u32) -> Vec<u32> {
        let mut out = vec![unit];
        let mut i = 0;
        while i < out.len() {
            for link in &self.units[out[i] as usize].parents {
                if !out.contains(&link.value.0) {
                    out.push(link.value.0);
                }
            }
            i += 1;
        }
        out
    }

    /// Every unit below `unit` at any time (and the unit), through current links.
    fn descendants_ever(&self, unit: u32) -> Vec<u32> {
        let mut out = vec![unit];
        let mut i = 0;
        while i < out.len() {
            let row = &self.units[out[i] as usize];
            for (child, link) in &row.children {
                let version = &self.units[*child as usize].parents[*link as usize];
                if version.recorded.to == CURRENT && !out.contains(child) {
                    out.push(*child);
                }
            }
            i += 1;
        }
        out
    }

    /// [`Projection::mark_office`] by the office's id (nothing for an unknown office).
    pub(crate) fn mark_office_of(&mut self, office: OfficeId) {
        if let Some(&ix) = self.office_ix.get(&office) {
            self.mark_office(ix);
        }
    }

    /// Marks the communes above the units an office was ever placed in.
    pub(crate) fn mark_office(&mut self, office: u32) {
        if self.coverage_index.all_dirty {
            // Everything is recomputed at the next refresh anyway (the common case while
            // rebuilding from the feed).
            return;
        }
        let units: Vec<u32> = self.offices[office as usize]
            .placements
            .iter()
            .map(|p| p.value.1)
            .collect();
        for unit in units {
            for ancestor in self.ancestors_ever(unit) {
                self.coverage_index.dirty.insert(ancestor);
            }
        }
    }

    /// Recomputes the stale commune timelines. Call after applying a batch of events.
    pub fn refresh_coverage(&mut self) {
        let communes: Vec<u32> = (0..self.units.len() as u32)
            .filter(|u| {
                let row = &self.units[*u as usize];
                row.level == Level::Commune && row.kind == UnitKind::AdministrativeArea
            })
            .filter(|u| self.coverage_index.all_dirty || self.coverage_index.dirty.contains(u))
            .collect();
        let models: Vec<ModelId> = self.models.keys().copied().collect();
        let mut fresh = Vec::new();
        for &commune in &communes {
            for &model in &models {
                fresh.push((model, commune, self.timelines(model, commune)));
            }
        }
        let units = self.units.len();
        let index = &mut self.coverage_index;
        if index.all_dirty {
            index.timelines.clear();
        }
        for (model, commune, timelines) in fresh {
            let list = index.timelines.entry(model).or_default();
            list.resize(units, None);
            list[commune as usize] = Some(timelines);
        }
        self.coverage_index.dirty.clear();
        self.coverage_index.all_dirty = false;
    }

    /// A commune's timelines for one model, from the plain definitions evaluated at every day
    /// where an answer may change.
    fn timelines(&self, model: ModelId, commune: u32) -> Timeline {
        let Some(row) = self.models.get(&model) else {
            return Default::default();
        };
        let mut days: Vec<i32> = Vec::new();
        let span_days = |span: registry_domain::Span, days: &mut Vec<i32>| {
            days.push(span.start.julian_day());
            if let Some(end) = span.end {
                days.push(end.julian_day());
            }
        };
        // Declared: adoptions above, and the links that put the commune under them.
        for unit in self.ancestors_ever(commune) {
            let u = &self.units[unit as usize];
            for link in u.parents.iter().filter(|l| l.recorded.to == CURRENT) {
                span_days(link.value.1, &mut days);
            }
            for adoption in &u.adoptions {
                let a = &self.adoptions[*adoption as usize];
                if a.model == model {
                    for span in a.spans.iter().filter(|s| s.recorded.to == CURRENT) {
                        span_days(span.value, &mut days);
                    }
                }
            }
        }
        // Observed: the structure below, and the holdings of the model's roles there.
        let roles: Vec<registry_domain::Role> = match &row.arrangement {
            Arrangement::ConcurrentOffices { roles } => roles.clone(),
            Arrangement::SharedUnit { .. } => Vec::new(),
        };
        for unit in self.descendants_ever(commune) {
            let u = &self.units[unit as usize];
            for link in u.parents.iter().filter(|l| l.recorded.to == CURRENT) {
                span_days(link.value.1, &mut days);
            }
            for &office in &u.offices {
                let o = &self.offices[office as usize];
                let Some(facts) = o.facts.iter().rev().find(|f| f.recorded.to == CURRENT) else {
                    continue;
                };
                if !roles
                    .iter()
                    .any(|r| r.office_kind == facts.value.kind && r.unit_kind == u.kind)
                {
                    continue;
                }
                for placement in o.placements.iter().filter(|p| p.recorded.to == CURRENT) {
                    days.push(placement.value.0.julian_day());
                }
                for slot in &o.holdings {
                    let version = &self.versions[slot.version as usize];
                    if version.recorded.to == CURRENT {
                        days.push(slot.from);
                        if slot.to != i32::MAX {
                            days.push(slot.to);
                        }
                        // Where it may begin or end to be possibly held.
                        span_days(holding_widest_span(version.start, version.end), &mut days);
                    }
                }
            }
        }
        let life = self.unit_life(commune, None);
        if let Some(life) = life {
            span_days(life, &mut days);
        }
        days.sort_unstable();
        days.dedup();
        let mut timeline = Timeline::default();
        for day in days {
            let Some(date) = Date::from_julian_day(day) else {
                continue;
            };
            let observed = self.observed(&row.arrangement, commune, date, None, false);
            let now = (
                life.is_some_and(|l| l.contains(date)),
                self.adopted(model, commune, date, None),
                observed,
                !observed && self.observed(&row.arrangement, commune, date, None, true),
            );
            if timeline.changes.last().is_none_or(|(_, last)| *last != now) {
                timeline.changes.push((day, now));
            }
        }
        timeline
    }

    /// The timelines of a model, for [`Projection::indexed`]; `None` while everything is stale.
    pub(crate) fn model_timelines(&self, model: ModelId) -> Option<&[Option<Timeline>]> {
        if self.coverage_index.all_dirty {
            return None;
        }
        self.coverage_index.timelines.get(&model).map(Vec::as_slice)
    }

    /// The clean timelines of a commune from a model's, if any.
    pub(crate) fn indexed<'a>(
        &self,
        timelines: Option<&'a [Option<Timeline>]>,
        commune: u32,
    ) -> Option<&'a Timeline> {
        let index = &self.coverage_index;
        if !index.dirty.is_empty() && index.dirty.contains(&commune) {
            return None;
        }
        timelines?.get(commune as usize)?.as_ref()
    }
}
