//! The registry as known at a recorded instant ([`AsKnown`]), as the domain's rules read it,
//! and the irregularities auditors list over it: the facts the domain accepted but flagged
//! (concurrent offices no adopted model covers, too many offices at once, long vacancies,
//! missing legal basis, unknown end dates).
//!
//! The flags are derived, never stored as events (their thresholds are policy). The domain's
//! rules read a registry through [`StateView`]; [`AsKnown`] is the bitemporal model seen as
//! the registry stood at a recorded instant (now, or any earlier moment), so the list needs
//! neither a second copy of the domain state beside this model nor a refold of the feed for
//! an earlier moment.

use registry_domain::irregular::{
    irregularities, irregularities_page, Cursor, HoldingOutline, Jurisdiction, OfficeOutline,
    StateView,
};
use registry_domain::state::holding_span;
use registry_domain::{
    Arrangement, Date, HoldingId, Irregularity, OfficeId, PersonId, Policy, Span, UnitId, UnitKind,
};

use crate::queries::at;
use crate::{HoldingVersion, Instant, Projection, NO_BASIS};

/// The projection as the registry stood at `known_at` (now when `None`).
#[derive(Clone, Copy)]
pub struct AsKnown<'a> {
    projection: &'a Projection,
    known_at: Option<Instant>,
}

impl Projection {
    /// This model as the registry stood at `known_at` (now when `None`), for the domain's
    /// rules.
    pub fn as_known(&self, known_at: Option<Instant>) -> AsKnown<'_> {
        AsKnown {
            projection: self,
            known_at,
        }
    }

    /// Every irregularity as the registry stood at `known_at`, vacancies counted up to
    /// `as_of`, in a stable order.
    pub fn irregularities(
        &self,
        policy: &Policy,
        as_of: Date,
        known_at: Option<Instant>,
    ) -> Vec<Irregularity> {
        irregularities(&self.as_known(known_at), policy, as_of)
    }

    /// One page of them from `from`: at most `size`, looking at most at `rows` rows (see
    /// [`irregularities_page`]), only those within `within` when given, and where the next
    /// page starts.
    #[allow(clippy::too_many_arguments)] // The domain's page, and the instant it is seen at.
    pub fn irregularities_page(
        &self,
        policy: &Policy,
        as_of: Date,
        known_at: Option<Instant>,
        from: Cursor,
        size: usize,
        rows: usize,
        within: Option<&Jurisdiction>,
    ) -> (Vec<Irregularity>, Option<Cursor>) {
        let view = self.as_known(known_at);
        irregularities_page(&view, policy, as_of, from, size, rows, within)
    }

    /// The jurisdiction of `unit` as known at `known_at`: the unit and every unit it
    /// continues through merges, absorptions and splits ([`Projection::lineage`]'s
    /// predecessors); `None` when the unit is not known then.
    pub fn jurisdiction(&self, unit: UnitId, known_at: Option<Instant>) -> Option<Jurisdiction> {
        let row = *self.unit_ix.get(&unit)?;
        self.unit_life(row, known_at)?;
        let lineage = self.lineage(unit, known_at);
        let before = lineage.predecessors.into_iter().map(|(u, _)| u);
        Some(Jurisdiction::new(std::iter::once(unit).chain(before)))
    }
}

impl AsKnown<'_> {
    fn outline(&self, version: &HoldingVersion) -> Option<HoldingOutline> {
        let p = self.projection;
        Some(HoldingOutline {
            person: p.persons[version.person as usize].id?,
            office: p.offices[version.office as usize].id,
            span: holding_span(version.start, version.end),
            beginning: p.beginnings.get(version.beginning).0,
            end: version.end,
            has_basis: version.basis != NO_BASIS,
        })
    }

    /// The holdings of a list of slots asserted at `known_at`, with their spans.
    fn spans<'s>(
        &'s self,
        slots: &'s [crate::Slot],
    ) -> impl Iterator<Item = (HoldingId, Span)> + 's {
        self.projection
            .holding_versions(slots, self.known_at)
            .map(|v| (v.holding, holding_span(v.start, v.end)))
    }
}

impl StateView for AsKnown<'_> {
    fn holding_outline(&self, id: HoldingId) -> Option<HoldingOutline> {
        self.outline(self.projection.holding_version(id, self.known_at)?)
    }

    fn holdings_from(
        &self,
        row: usize,
    ) -> impl Iterator<Item = (usize, HoldingId, HoldingOutline)> + '_ {
        // A row is a version: each holding has at most one asserted at an instant.
        self.projection
            .versions
            .iter()
            .enumerate()
            .skip(row)
            .filter(|(_, v)| v.recorded.at(self.known_at))
            .filter_map(|(row, v)| Some((row, v.holding, self.outline(v)?)))
    }

    fn persons_from(&self, row: usize) -> impl Iterator<Item = (usize, PersonId)> + '_ {
        self.projection
            .persons
            .iter()
            .enumerate()
            .skip(row)
            .filter(|(_, person)| self.projection.person_row_known(person, self.known_at))
            .filter_map(|(row, person)| Some((row, person.id?)))
    }

    fn person_holdings(
        &self,
        person: PersonId,
    ) -> Option<impl Iterator<Item = (HoldingId, Span)> + '_> {
        let row = &self.projection.persons[*self.projection.person_ix.get(&person)? as usize];
        self.projection
            .person_row_known(row, self.known_at)
            .then(|| self.spans(&row.holdings))
    }

    fn office_outline(&self, office: OfficeId) -> Option<OfficeOutline> {
        let row = *self.projection.office_ix.get(&office)?;
        self.projection
            .office_facts(row, self.known_at)
            .map(|facts| OfficeOutline {
                kind: facts.kind,
                capacity: facts.capacity,
                life: facts.life,
            })
    }

    fn offices_from(&self, row: usize) -> impl Iterator<Item = (usize, OfficeId)> + '_ {
        self.projection
            .offices
            .iter()
            .enumerate()
            .skip(row)
            .filter(|(_, office)| at(&office.facts, self.known_at).next().is_some())
            .map(|(row, office)| (row, office.id))
    }

    fn office_holdings(&self, office: OfficeId) -> impl Iterator<Item = (HoldingId, Span)> + '_ {
        let slots = self
            .projection
            .office_ix
            .get(&office)
            .map_or(&[][..], |row| {
                &self.projection.offices[*row as usize].holdings
            });
        self.spans(slots)
    }

    fn office_unit_on(&self, office: OfficeId, day: Date) -> Option<UnitId> {
        let p = self.projection;
        let unit = p.office_unit_on(*p.office_ix.get(&office)?, day, self.known_at)?;
        Some(p.units[unit as usize].id)
    }

    fn unit_kind(&self, unit: UnitId) -> Option<UnitKind> {
        let row = *self.projection.unit_ix.get(&unit)?;
        self.projection.unit_life(row, self.known_at)?;
        Some(self.projection.units[row as usize].kind)
    }

    fn parents_on(&self, unit: UnitId, day: Date) -> impl Iterator<Item = UnitId> + '_ {
        let p = self.projection;
        p.unit_ix
            .get(&unit)
            .into_iter()
            .flat_map(move |row| p.parents_on(*row, day, self.known_at))
            .map(|parent| p.units[parent as usize].id)
    }

    fn arrangements_on(&self, unit: UnitId, day: Date) -> impl Iterator<Item = &Arrangement> + '_ {
        let p = self.projection;
        p.unit_ix
            .get(&unit)
            .into_iter()
            .flat_map(|row| p.units[*row as usize].adoptions.iter())
            .filter_map(move |a| {
                let adoption = &p.adoptions[*a as usize];
                if !at(&adoption.spans, self.known_at).any(|span| span.contains(day)) {
                    return None;
                }
                let model = p.models.get(&adoption.model)?;
                at(&model.exists, self.known_at).next()?;
                Some(&model.arrangement)
            })
    }
}
