//! The questions the read models answer, each at a valid date and as known at a recorded
//! instant (`None`: now).

use std::collections::HashSet;

use registry_domain::state::holding_widest_span;
use registry_domain::*;
use smallvec::SmallVec;

use crate::{BasisRef, HoldingVersion, Instant, OfficeFacts, Projection, Slot, Version};

/// A holding as the registry states it, borrowing its legal bases from the read model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldingView<'a> {
    /// The holding.
    pub holding: HoldingId,
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
    /// How it ended.
    pub end_reason: Option<EndReason>,
    /// The term.
    pub term: Option<TermId>,
    /// The basis of its start.
    pub basis: Option<BasisRef<'a>>,
    /// The basis of its end.
    pub end_basis: Option<BasisRef<'a>>,
    /// When the registry recorded this version (microseconds since the Unix epoch).
    pub recorded_at: Instant,
    /// The rows of the person and the office in the read model, so that their names are found
    /// without looking the ids up again.
    person_row: u32,
    office_row: u32,
}

/// A unit on a date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitView {
    /// The unit.
    pub unit: UnitId,
    /// Its kind.
    pub kind: UnitKind,
    /// Its level.
    pub level: Level,
    /// Its life.
    pub life: Span,
    /// Its name on the date.
    pub name: String,
    /// Its parents on the date, sorted.
    pub parents: Vec<UnitId>,
    /// Its children on the date, sorted.
    pub children: Vec<UnitId>,
    /// Its offices alive on the date, sorted.
    pub offices: Vec<OfficeId>,
}

/// An office as it stood on a day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfficeView {
    /// The office.
    pub office: OfficeId,
    /// Its unit on the day.
    pub unit: Option<UnitId>,
    /// Its title.
    pub title: String,
    /// Its kind.
    pub kind: OfficeKind,
    /// How many may hold it on a day.
    pub capacity: Capacity,
    /// The days it exists.
    pub life: Span,
}

/// Where a unit came from and what became of it, transitively, with the dates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lineage {
    /// Units it continues (directly or through others), with the day they ended.
    pub predecessors: Vec<(UnitId, Date)>,
    /// Units that continue it, with the day they took over.
    pub successors: Vec<(UnitId, Date)>,
}

/// How many units of a jurisdiction apply a pilot model on a date.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Units of the counted level under the jurisdiction on the date.
    pub units: usize,
    /// Those with an adoption of the model in force (by themselves or a unit above), sorted.
    pub declared: Vec<UnitId>,
    /// Those where the arrangement is practised (one person holds both roles), sorted.
    pub observed: Vec<UnitId>,
    /// Those not observed that would be if the holdings possibly held on the day (dates known
    /// only to a month or a year, ends not known) were held: the registry cannot tell, sorted.
    pub uncertain: Vec<UnitId>,
}

/// A page of the holdings on a day ([`Projection::holdings_on`]).
#[derive(Debug, Default)]
pub struct HoldingsOn<'a> {
    /// Those that surely cover the day.
    pub surely: Vec<HoldingView<'a>>,
    /// Those whose imprecise dates may, but need not, cover it.
    pub possibly: Vec<HoldingView<'a>>,
    /// The office to go on from, when there may be more.
    pub next: Option<usize>,
}

/// Why a coverage question has no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CoverageError {
    /// The model is not known (at the instant asked about).
    #[error("{0} not found")]
    UnknownModel(ModelId),
    /// The jurisdiction is not known (at the instant asked about).
    #[error("{0} not found")]
    UnknownUnit(UnitId),
    /// The jurisdiction is a body, not an administrative area: coverage counts areas.
    #[error("{unit} is a {kind:?}, not an administrative area (a province, district or commune)")]
    NotAnArea {
        /// The unit asked about.
        unit: UnitId,
        /// Its kind.
        kind: UnitKind,
    },
}

impl Coverage {
    /// Declared but not observed.
    pub fn declared_only(&self) -> Vec<UnitId> {
        self.declared
            .iter()
            .filter(|u| self.observed.binary_search(u).is_err())
            .copied()
            .collect()
    }

    /// Observed but not declared.
    pub fn observed_only(&self) -> Vec<UnitId> {
        self.observed
            .iter()
            .filter(|u| self.declared.binary_search(u).is_err())
            .copied()
            .collect()
    }
}

pub(crate) fn at<T>(
    versions: &[Version<T>],
    known_at: Option<Instant>,
) -> impl Iterator<Item = &T> {
    versions
        .iter()
        .filter(move |v| v.recorded.at(known_at))
        .map(|v| &v.value)
}

/// One page of a list whose entries may be absent (retracted persons): the present ids from
/// index `from`, at most `limit`, and the index the next page starts at.
fn page_of<T>(
    items: impl Iterator<Item = Option<T>>,
    from: usize,
    limit: usize,
) -> (Vec<T>, Option<usize>) {
    let mut found = Vec::new();
    for (ix, item) in items.enumerate().skip(from) {
        if found.len() == limit {
            return (found, Some(ix));
        }
        found.extend(item);
    }
    (found, None)
}

impl Projection {
    fn view(&self, v: &HoldingVersion) -> HoldingView<'_> {
        let (beginning, term) = self.beginnings.get(v.beginning);
        let basis = |ix: u32| (ix != crate::NO_BASIS).then(|| self.bases.get(ix));
        HoldingView {
            holding: v.holding,
            person: self.persons[v.person as usize]
                .id
                .unwrap_or_else(|| PersonId::from_uuid(Default::default())),
            office: self.offices[v.office as usize].id,
            start: v.start,
            end: v.end,
            beginning,
            end_reason: v.end_reason,
            term,
            basis: basis(v.basis),
            end_basis: basis(v.end_basis),
            recorded_at: v.recorded.from,
            person_row: v.person,
            office_row: v.office,
        }
    }

    /// The holder's name on the first day of the holding, as known at `known_at`.
    pub fn holder_name(&self, h: &HoldingView<'_>, known_at: Option<Instant>) -> Option<String> {
        self.person_name_of_row(h.person_row, h.start.earliest(), known_at)
    }

    /// The title of the holding's office, as known at `known_at`.
    pub fn holding_office_title(
        &self,
        h: &HoldingView<'_>,
        known_at: Option<Instant>,
    ) -> Option<&str> {
        self.office_facts(h.office_row, known_at)
            .map(|facts| facts.title.as_str())
    }

    /// The facts of the office in row `office` as asserted at `known_at`.
    pub(crate) fn office_facts(
        &self,
        office: u32,
        known_at: Option<Instant>,
    ) -> Option<&OfficeFacts> {
        at(&self.offices[office as usize].facts, known_at).last()
    }

    /// The unit of the holding's office on the first day of the holding.
    pub fn holding_unit(&self, h: &HoldingView<'_>, known_at: Option<Instant>) -> Option<UnitId> {
        self.office_unit_on(h.office_row, h.start.earliest(), known_at)
            .map(|u| self.units[u as usize].id)
    }

    pub(crate) fn holding_versions<'a>(
        &'a self,
        list: &'a [Slot],
        known_at: Option<Instant>,
    ) -> impl Iterator<Item = &'a HoldingVersion> + 'a {
        list.iter()
            .map(|slot| &self.versions[slot.version as usize])
            .filter(move |v| v.recorded.at(known_at))
    }

    /// The versions of the list asserted at `known_at` that cover `day`.
    fn versions_on<'a>(
        &'a self,
        list: &'a [Slot],
        day: i32,
        known_at: Option<Instant>,
    ) -> impl Iterator<Item = &'a HoldingVersion> + 'a {
        list.iter()
            .filter(move |slot| slot.from <= day && day < slot.to)
            .map(|slot| &self.versions[slot.version as usize])
            .filter(move |v| v.recorded.at(known_at))
    }

    /// One holding as asserted at `known_at` (a retracted holding is still found as known before
    /// its retraction).
    pub fn holding(
        &self,
        holding: HoldingId,
        known_at: Option<Instant>,
    ) -> Option<HoldingView<'_>> {
        self.holding_version(holding, known_at)
            .map(|version| self.view(version))
    }

    /// The version of one holding asserted at `known_at`, found by walking its versions from
    /// the newest back.
    pub(crate) fn holding_version(
        &self,
        holding: HoldingId,
        known_at: Option<Instant>,
    ) -> Option<&HoldingVersion> {
        self.versions_of(holding)
            .find(|version| version.recorded.at(known_at))
    }

    /// Every version of one holding, newest first (a retracted holding's too).
    fn versions_of(&self, holding: HoldingId) -> impl Iterator<Item = &HoldingVersion> {
        let newest = self
            .current
            .get(&holding)
            .or_else(|| self.retracted.get(&holding))
            .copied()
            .unwrap_or(crate::NO_VERSION);
        std::iter::successors(
            (newest != crate::NO_VERSION).then(|| &self.versions[newest as usize]),
            |version| {
                (version.previous != crate::NO_VERSION)
                    .then(|| &self.versions[version.previous as usize])
            },
        )
    }

    /// The holdings that surely cover `on` and those that possibly do, office by office from
    /// the `from`-th office, until at least `limit` are found; with the office to continue
    /// from when there may be more.
    pub fn holdings_on(
        &self,
        on: Date,
        known_at: Option<Instant>,
        from: usize,
        limit: usize,
    ) -> HoldingsOn<'_> {
        let day = on.julian_day();
        let mut page = HoldingsOn::default();
        for (ix, office) in self.offices.iter().enumerate().skip(from) {
            if page.surely.len() + page.possibly.len() >= limit {
                page.next = Some(ix);
                return page;
            }
            let start = page.surely.len();
            page.surely.extend(
                self.versions_on(&office.holdings, day, known_at)
                    .map(|v| self.view(v)),
            );
            page.surely[start..].sort_by_key(|h| h.holding);
            let start = page.possibly.len();
            page.possibly.extend(
                self.versions_possibly_on(&office.holdings, on, known_at)
                    .map(|v| self.view(v)),
            );
            page.possibly[start..].sort_by_key(|h| h.holding);
        }
        page
    }

    /// Who held the office on `on`: the holdings that surely cover that day.
    pub fn holders(
        &self,
        office: OfficeId,
        on: Date,
        known_at: Option<Instant>,
    ) -> Vec<HoldingView<'_>> {
        self.views_by_id(self.versions_on(self.office_slots(office), on.julian_day(), known_at))
    }

    /// The list of an office's holding versions (empty for an office not known).
    fn office_slots(&self, office: OfficeId) -> &[Slot] {
        self.office_ix
            .get(&office)
            .map_or(&[], |ix| &self.offices[*ix as usize].holdings[..])
    }

    /// The list of a person's holding versions (empty for a person not known).
    fn person_slots(&self, person: PersonId) -> &[Slot] {
        self.person_ix
            .get(&person)
            .map_or(&[], |ix| &self.persons[*ix as usize].holdings[..])
    }

    /// The versions as views, in the order of their holdings' ids.
    fn views_by_id<'a>(
        &'a self,
        versions: impl Iterator<Item = &'a HoldingVersion>,
    ) -> Vec<HoldingView<'a>> {
        let mut found: Vec<HoldingView> = versions.map(|v| self.view(v)).collect();
        found.sort_by_key(|h| h.holding);
        found
    }

    /// The versions of the list asserted at `known_at` that may, but need not, cover `on`:
    /// their imprecise dates' widest reading covers it, the narrowest does not.
    fn versions_possibly_on<'a>(
        &'a self,
        list: &'a [Slot],
        on: Date,
        known_at: Option<Instant>,
    ) -> impl Iterator<Item = &'a HoldingVersion> + 'a {
        let day = on.julian_day();
        list.iter()
            .filter(move |slot| !(slot.from <= day && day < slot.to))
            .map(|slot| &self.versions[slot.version as usize])
            .filter(move |v| {
                v.recorded.at(known_at) && holding_widest_span(v.start, v.end).contains(on)
            })
    }

    /// The holdings that may, but need not, have covered `on` in an office (dates known only
    /// to a month or a year, an end not known): neither held surely nor surely not.
    pub fn possible_holders(
        &self,
        office: OfficeId,
        on: Date,
        known_at: Option<Instant>,
    ) -> Vec<HoldingView<'_>> {
        self.views_by_id(self.versions_possibly_on(self.office_slots(office), on, known_at))
    }

    /// The holdings of a person that may, but need not, have covered `on`.
    pub fn possible_offices_of(
        &self,
        person: PersonId,
        on: Date,
        known_at: Option<Instant>,
    ) -> Vec<HoldingView<'_>> {
        self.views_by_id(self.versions_possibly_on(self.person_slots(person), on, known_at))
    }

    /// The offices a person held on `on` (several: concurrent offices).
    pub fn offices_of(
        &self,
        person: PersonId,
        on: Date,
        known_at: Option<Instant>,
    ) -> Vec<HoldingView<'_>> {
        self.views_by_id(self.versions_on(self.person_slots(person), on.julian_day(), known_at))
    }

    /// Every holding ever filed under this person or office, in any version the registry
    /// recorded (superseded, ended and retracted ones too), each once and in order; none for
    /// other kinds of entity. The auditors' index lists a holding's events under them through
    /// this, rather than under each person and office as it folds.
    pub fn holdings_ever_filed_under(&self, entity: EntityRef) -> Vec<HoldingId> {
        let slots = match entity {
            EntityRef::Person(person) => self
                .person_ix
                .get(&person)
                .map(|row| &self.persons[*row as usize].holdings[..]),
            EntityRef::Office(office) => self
                .office_ix
                .get(&office)
                .map(|row| &self.offices[*row as usize].holdings[..]),
            _ => None,
        };
        let mut holdings: Vec<HoldingId> = slots
            .unwrap_or_default()
            .iter()
            .map(|slot| self.versions[slot.version as usize].holding)
            .collect();
        holdings.sort_unstable();
        holdings.dedup();
        holdings
    }

    /// Whether the projection keeps `event` for its subject `subject`, so that an index of the
    /// events about each entity need not list it: a holding's own events (start, end,
    /// corrections), a holding's start for its person and office too (found through the holdings
    /// filed under them, [`Projection::holdings_ever_filed_under`]), a person's registration. The
    /// rule [`Projection::events_kept_for`] follows; `tests/kept_events.rs` checks that the two
    /// agree on every event of generated registries.
    pub fn keeps(event: &Event, subject: &EntityRef) -> bool {
        match event {
            Event::HoldingStarted(_) => matches!(
                subject,
                EntityRef::Holding(_) | EntityRef::Person(_) | EntityRef::Office(_)
            ),
            Event::HoldingEnded(_) | Event::HoldingCorrected(_) => {
                matches!(subject, EntityRef::Holding(_))
            }
            Event::PersonRegistered(_) => true,
            _ => false,
        }
    }

    /// The numbers (in the feed folded) of the events this projection keeps for `entity`, in
    /// order: for a holding, the event that recorded each of its versions (its start, end and
    /// corrections, not its retraction); for a person, its registration. The auditors' index
    /// leaves these out rather than look each up again as it folds (millions of each in a
    /// national registry); other kinds of entity have none here.
    pub fn events_kept_for(&self, entity: EntityRef) -> SmallVec<[u32; 4]> {
        let mut events = SmallVec::new();
        match entity {
            EntityRef::Holding(holding) => {
                events.extend(self.versions_of(holding).map(|version| version.event));
                events.reverse();
            }
            EntityRef::Person(person) => {
                let registered = self
                    .person_ix
                    .get(&person)
                    .map_or(crate::NO_EVENT, |ix| self.persons[*ix as usize].registered);
                if registered != crate::NO_EVENT {
                    events.push(registered);
                }
            }
            _ => {}
        }
        events
    }

    /// Every holding of the office, in order of start.
    pub fn office_history(
        &self,
        office: OfficeId,
        known_at: Option<Instant>,
    ) -> Vec<HoldingView<'_>> {
        let Some(&ix) = self.office_ix.get(&office) else {
            return Vec::new();
        };
        let mut found: Vec<HoldingView> = self
            .holding_versions(&self.offices[ix as usize].holdings, known_at)
            .map(|v| self.view(v))
            .collect();
        found.sort_by_key(|h| (h.start.earliest(), h.holding));
        found
    }

    /// Every holding of the person, in order of start.
    pub fn career(&self, person: PersonId, known_at: Option<Instant>) -> Vec<HoldingView<'_>> {
        let Some(&ix) = self.person_ix.get(&person) else {
            return Vec::new();
        };
        let mut found: Vec<HoldingView> = self
            .holding_versions(&self.persons[ix as usize].holdings, known_at)
            .map(|v| self.view(v))
            .collect();
        found.sort_by_key(|h| (h.start.earliest(), h.holding));
        found
    }

    /// The holding that best says what a person does: the latest begun of those not ended,
    /// else the one that ended last (`None` for a person who never held an office).
    pub fn latest_holding(
        &self,
        person: PersonId,
        known_at: Option<Instant>,
    ) -> Option<HoldingView<'_>> {
        let ix = *self.person_ix.get(&person)?;
        self.holding_versions(&self.persons[ix as usize].holdings, known_at)
            .max_by_key(|v| match v.end {
                HoldingEnd::Open => (1, v.start.latest(), v.holding),
                HoldingEnd::Unknown => (0, v.start.latest(), v.holding),
                HoldingEnd::On(end) => (0, end.latest(), v.holding),
            })
            .map(|v| self.view(v))
    }

    /// Whether the office stood empty on `on` although it existed.
    pub fn vacant(&self, office: OfficeId, on: Date, known_at: Option<Instant>) -> Option<bool> {
        let ix = *self.office_ix.get(&office)?;
        let facts = self.office_facts(ix, known_at)?;
        Some(
            facts.life.contains(on)
                && self.holders(office, on, known_at).is_empty()
                && self.possible_holders(office, on, known_at).is_empty(),
        )
    }

    /// The days a unit exists, as asserted at `known_at`; `None` for a unit unknown then.
    pub fn unit_span(&self, unit: UnitId, known_at: Option<Instant>) -> Option<Span> {
        self.unit_life(*self.unit_ix.get(&unit)?, known_at)
    }

    /// The days the office exists, as asserted at `known_at`; `None` for an office unknown then.
    pub fn office_span(&self, office: OfficeId, known_at: Option<Instant>) -> Option<Span> {
        self.office_facts(*self.office_ix.get(&office)?, known_at)
            .map(|facts| facts.life)
    }

    /// The office's title as asserted at `known_at` (titles are facts, corrected, not dated).
    pub fn office_title(&self, office: OfficeId, known_at: Option<Instant>) -> Option<&str> {
        self.office_facts(*self.office_ix.get(&office)?, known_at)
            .map(|facts| facts.title.as_str())
    }

    /// Whether the person is registered (and not retracted) as known at `known_at`.
    pub fn knows_person(&self, person: PersonId, known_at: Option<Instant>) -> bool {
        self.person_ix
            .get(&person)
            .is_some_and(|ix| self.person_row_known(&self.persons[*ix as usize], known_at))
    }

    /// Whether the person of this row is registered as known at `known_at`.
    pub(crate) fn person_row_known(
        &self,
        row: &crate::PersonRow,
        known_at: Option<Instant>,
    ) -> bool {
        at(&row.names, known_at).any(|(since, _, _)| since.is_none())
    }

    /// Every office, unit and person in the order they were first recorded, a page at a time:
    /// the ids from the `from`-th on, at most `limit`, and where the next page starts.
    pub fn office_ids(&self, from: usize, limit: usize) -> (Vec<OfficeId>, Option<usize>) {
        page_of(self.offices.iter().map(|o| Some(o.id)), from, limit)
    }

    /// See [`Projection::office_ids`].
    pub fn unit_ids(&self, from: usize, limit: usize) -> (Vec<UnitId>, Option<usize>) {
        page_of(self.units.iter().map(|u| Some(u.id)), from, limit)
    }

    /// The pilot models as known at `known_at`, with their names, ordered by name.
    pub fn models(&self, known_at: Option<Instant>) -> Vec<(ModelId, String)> {
        let mut models: Vec<(ModelId, String)> = self
            .models
            .iter()
            .filter_map(|(id, row)| at(&row.exists, known_at).next().map(|n| (*id, n.clone())))
            .collect();
        models.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        models
    }

    /// See [`Projection::office_ids`].
    pub fn person_ids(&self, from: usize, limit: usize) -> (Vec<PersonId>, Option<usize>) {
        page_of(self.persons.iter().map(|p| p.id), from, limit)
    }

    /// An office as it stood on `on`: its facts and its unit then.
    pub fn office_on(
        &self,
        office: OfficeId,
        on: Date,
        known_at: Option<Instant>,
    ) -> Option<OfficeView> {
        let ix = *self.office_ix.get(&office)?;
        let facts = self.office_facts(ix, known_at)?;
        Some(OfficeView {
            office,
            unit: self
                .office_unit_on(ix, on, known_at)
                .map(|u| self.units[u as usize].id),
            title: facts.title.clone(),
            kind: facts.kind,
            capacity: facts.capacity,
            life: facts.life,
        })
    }

    /// The person's name on `on`.
    pub fn person_name(
        &self,
        person: PersonId,
        on: Date,
        known_at: Option<Instant>,
    ) -> Option<String> {
        self.person_name_of_row(*self.person_ix.get(&person)?, on, known_at)
    }

    /// A person's registered birth date, as known at `known_at` (`None` when not known, or for
    /// a person unknown then).
    pub fn person_birth(&self, person: PersonId, known_at: Option<Instant>) -> Option<PartialDate> {
        let row = &self.persons[*self.person_ix.get(&person)? as usize];
        at(&row.names, known_at)
            .find(|(since, _, _)| since.is_none())
            .and_then(|(_, _, birth)| PartialDate::from_code(*birth))
    }

    fn person_name_of_row(&self, row: u32, on: Date, known_at: Option<Instant>) -> Option<String> {
        // A person exists while a registered name is asserted; the name on `on` is the latest
        // rename by then (the last recorded of equal dates), else the registered name.
        let mut registered = None;
        let mut renamed: Option<(Date, u32)> = None;
        for &(since, name, _) in at(&self.persons[row as usize].names, known_at) {
            match since {
                None => registered = registered.or(Some(name)),
                Some(since) if since <= on && renamed.is_none_or(|(best, _)| since >= best) => {
                    renamed = Some((since, name));
                }
                Some(_) => {}
            }
        }
        let registered = registered?;
        Some(
            self.names
                .spelling(renamed.map_or(registered, |(_, name)| name))
                .to_owned(),
        )
    }

    pub(crate) fn unit_life(&self, unit: u32, known_at: Option<Instant>) -> Option<Span> {
        at(&self.units[unit as usize].exists, known_at)
            .last()
            .copied()
    }

    pub(crate) fn parents_on(
        &self,
        unit: u32,
        on: Date,
        known_at: Option<Instant>,
    ) -> impl Iterator<Item = u32> + '_ {
        at(&self.units[unit as usize].parents, known_at)
            .filter(move |(_, span)| span.contains(on))
            .map(|(p, _)| *p)
    }

    fn children_on(&self, unit: u32, on: Date, known_at: Option<Instant>) -> Vec<u32> {
        let mut children: Vec<u32> = self.units[unit as usize]
            .children
            .iter()
            .filter(|(child, link)| {
                let version = &self.units[*child as usize].parents[*link as usize];
                version.recorded.at(known_at)
                    && version.value.0 == unit
                    && version.value.1.contains(on)
            })
            .map(|(child, _)| *child)
            .collect();
        children.sort_unstable();
        children.dedup();
        children
    }

    pub(crate) fn office_unit_on(
        &self,
        office: u32,
        on: Date,
        known_at: Option<Instant>,
    ) -> Option<u32> {
        // The placement in force on `on`: the latest that began by then, else the first.
        let mut first: Option<&(Date, u32)> = None;
        let mut best: Option<&(Date, u32)> = None;
        for placement in at(&self.offices[office as usize].placements, known_at) {
            first = first.or(Some(placement));
            if placement.0 <= on && best.is_none_or(|b| placement.0 >= b.0) {
                best = Some(placement);
            }
        }
        best.or(first).map(|(_, unit)| *unit)
    }

    /// A unit as it stood on `on`: name, parents, children and offices.
    pub fn unit_on(&self, unit: UnitId, on: Date, known_at: Option<Instant>) -> Option<UnitView> {
        let ix = *self.unit_ix.get(&unit)?;
        let row = &self.units[ix as usize];
        let life = self.unit_life(ix, known_at)?;
        let names: Vec<&(Date, String)> = at(&row.names, known_at).collect();
        let name = names
            .iter()
            .filter(|(since, _)| *since <= on)
            .max_by_key(|(since, _)| *since)
            .or(names.first())
            .map(|(_, n)| n.clone())?;
        let mut parents: Vec<UnitId> = self
            .parents_on(ix, on, known_at)
            .map(|p| self.units[p as usize].id)
            .collect();
        parents.sort_unstable();
        parents.dedup();
        let mut children: Vec<UnitId> = self
            .children_on(ix, on, known_at)
            .into_iter()
            .map(|c| self.units[c as usize].id)
            .collect();
        children.sort_unstable();
        let mut offices: Vec<OfficeId> = row
            .offices
            .iter()
            .filter(|o| {
                let alive = at(&self.offices[**o as usize].facts, known_at)
                    .last()
                    .is_some_and(|f| f.life.contains(on));
                alive && self.office_unit_on(**o, on, known_at) == Some(ix)
            })
            .map(|o| self.offices[*o as usize].id)
            .collect();
        offices.sort_unstable();
        offices.dedup();
        Some(UnitView {
            unit,
            kind: row.kind,
            level: row.level,
            life,
            name,
            parents,
            children,
            offices,
        })
    }

    /// The units under `root` on `on` (the root included), as a list in depth-first order.
    pub fn tree(&self, root: UnitId, on: Date, known_at: Option<Instant>) -> Vec<UnitId> {
        let Some(&ix) = self.unit_ix.get(&root) else {
            return Vec::new();
        };
        self.tree_ix(ix, on, known_at)
            .into_iter()
            .map(|u| self.units[u as usize].id)
            .collect()
    }

    fn tree_ix(&self, root: u32, on: Date, known_at: Option<Instant>) -> Vec<u32> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![root];
        while let Some(u) = stack.pop() {
            if !seen.insert(u) {
                continue;
            }
            out.push(u);
            let mut children = self.children_on(u, on, known_at);
            children.reverse();
            stack.extend(children);
        }
        out
    }

    /// The administrative areas under `root` on `on` (the root included): the units coverage
    /// counts, found without visiting every body of every area.
    fn area_tree(&self, root: u32, on: Date, known_at: Option<Instant>) -> Vec<u32> {
        let mut out = Vec::new();
        let mut stack = vec![root];
        while let Some(u) = stack.pop() {
            out.push(u);
            for (child, link) in &self.units[u as usize].area_children {
                let version = &self.units[*child as usize].parents[*link as usize];
                if version.recorded.at(known_at)
                    && version.value.0 == u
                    && version.value.1.contains(on)
                {
                    stack.push(*child);
                }
            }
        }
        // An area under two parents (or linked twice) is counted once. The domain refuses
        // cycles, so the walk ends.
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Predecessors and successors through merges, absorptions and splits, transitively: a
    /// question about a commune later merged finds what it became, and the reverse.
    pub fn lineage(&self, unit: UnitId, known_at: Option<Instant>) -> Lineage {
        let Some(&ix) = self.unit_ix.get(&unit) else {
            return Lineage::default();
        };
        let walk = |forward: bool| {
            let mut out = Vec::new();
            let mut seen = HashSet::from([ix]);
            let mut stack = vec![ix];
            while let Some(u) = stack.pop() {
                let row = &self.units[u as usize];
                let links = if forward {
                    &row.successors
                } else {
                    &row.predecessors
                };
                for (next, day) in at(links, known_at) {
                    if seen.insert(*next) {
                        out.push((self.units[*next as usize].id, *day));
                        stack.push(*next);
                    }
                }
            }
            out.sort_by_key(|(u, d)| (*d, *u));
            out
        };
        Lineage {
            predecessors: walk(false),
            successors: walk(true),
        }
    }

    fn ancestors_or_self(&self, unit: u32, on: Date, known_at: Option<Instant>) -> Vec<u32> {
        let mut out = Vec::new();
        let mut stack = vec![unit];
        while let Some(u) = stack.pop() {
            if out.contains(&u) {
                continue;
            }
            out.push(u);
            stack.extend(self.parents_on(u, on, known_at));
        }
        out
    }

    pub(crate) fn adopted(
        &self,
        model: ModelId,
        unit: u32,
        on: Date,
        known_at: Option<Instant>,
    ) -> bool {
        self.ancestors_or_self(unit, on, known_at).iter().any(|u| {
            self.units[*u as usize].adoptions.iter().any(|a| {
                let adoption = &self.adoptions[*a as usize];
                adoption.model == model
                    && at(&adoption.spans, known_at).any(|span| span.contains(on))
            })
        })
    }

    /// The persons holding an office of `role` in one of `units` on `on` (surely, or with
    /// `possibly` also those whose imprecise dates may cover the day).
    fn role_holders(
        &self,
        role: Role,
        units: &[u32],
        on: Date,
        known_at: Option<Instant>,
        possibly: bool,
    ) -> Vec<u32> {
        let mut persons = Vec::new();
        for &u in units {
            if self.units[u as usize].kind != role.unit_kind {
                continue;
            }
            for &office in &self.units[u as usize].offices {
                let kind_matches = at(&self.offices[office as usize].facts, known_at)
                    .last()
                    .is_some_and(|f| f.kind == role.office_kind);
                if kind_matches && self.office_unit_on(office, on, known_at) == Some(u) {
                    let list = &self.offices[office as usize].holdings;
                    persons.extend(
                        self.versions_on(list, on.julian_day(), known_at)
                            .map(|v| v.person),
                    );
                    if possibly {
                        persons.extend(
                            self.versions_possibly_on(list, on, known_at)
                                .map(|v| v.person),
                        );
                    }
                }
            }
        }
        persons
    }

    /// The bodies of the administrative area `area` on `on`: the units of its level placed in
    /// it, and those placed in them (a standing board in its Party committee, the common
    /// agency serving its Front), never an area under it nor the bodies of one.
    fn own_bodies(&self, area: u32, on: Date, known_at: Option<Instant>) -> Vec<u32> {
        let level = self.units[area as usize].level;
        let mut out = Vec::new();
        let mut stack = vec![area];
        while let Some(u) = stack.pop() {
            for child in self.children_on(u, on, known_at) {
                let row = &self.units[child as usize];
                if row.kind != UnitKind::AdministrativeArea
                    && row.level == level
                    && !out.contains(&child)
                {
                    out.push(child);
                    stack.push(child);
                }
            }
        }
        out
    }

    /// Whether the arrangement is observed in the administrative area `unit` on `on`: its own
    /// bodies' offices are held as the model arranges (one person holds every role of it, or
    /// one of its bodies serves two parents or more). What the areas under it do does not
    /// count: a district observes a pilot when its own Vice Secretary is its own Front Chair.
    ///
    /// With `possibly`, holdings whose imprecise dates may cover the day count as held.
    pub(crate) fn observed(
        &self,
        arrangement: &Arrangement,
        unit: u32,
        on: Date,
        known_at: Option<Instant>,
        possibly: bool,
    ) -> bool {
        let below = self.own_bodies(unit, on, known_at);
        match arrangement {
            Arrangement::ConcurrentOffices { roles } => {
                let Some((first, rest)) = roles.split_first() else {
                    return false;
                };
                let mut common: Vec<u32> =
                    self.role_holders(*first, &below, on, known_at, possibly);
                for role in rest {
                    let holders = self.role_holders(*role, &below, on, known_at, possibly);
                    common.retain(|p| holders.contains(p));
                }
                !common.is_empty()
            }
            Arrangement::SharedUnit { unit_kind, .. } => below.iter().any(|u| {
                self.units[*u as usize].kind == *unit_kind
                    && self.parents_on(*u, on, known_at).count() >= 2
            }),
        }
    }

    /// How many units of `level` under `jurisdiction` apply `model` on `on`, as declared and as
    /// observed. The jurisdiction must be an administrative area.
    pub fn coverage(
        &self,
        model: ModelId,
        jurisdiction: UnitId,
        level: Level,
        on: Date,
        known_at: Option<Instant>,
    ) -> Result<Coverage, CoverageError> {
        let row = self
            .models
            .get(&model)
            .filter(|row| at(&row.exists, known_at).next().is_some())
            .ok_or(CoverageError::UnknownModel(model))?;
        let unknown = CoverageError::UnknownUnit(jurisdiction);
        let root = *self.unit_ix.get(&jurisdiction).ok_or(unknown.clone())?;
        // A jurisdiction recorded (or retracted) after `known_at` is unknown then.
        self.unit_life(root, known_at).ok_or(unknown)?;
        let kind = self.units[root as usize].kind;
        if kind != UnitKind::AdministrativeArea {
            return Err(CoverageError::NotAnArea {
                unit: jurisdiction,
                kind,
            });
        }
        let mut coverage = Coverage::default();
        let day = on.julian_day();
        // The precomputed timelines answer for the current knowledge when they are fresh.
        let timelines = if known_at.is_none() {
            self.model_timelines(model)
        } else {
            None
        };
        for ix in self.area_tree(root, on, known_at) {
            // A commune's fresh timeline answers all three questions (alive, declared,
            // observed) from one place.
            let indexed = match level {
                Level::Commune => self.indexed(timelines, ix),
                _ => None,
            };
            let (declared, observed, uncertain) = match indexed {
                Some(timeline) => {
                    let (alive, declared, observed, uncertain) = timeline.at(day);
                    if !alive {
                        continue;
                    }
                    (declared, observed, uncertain)
                }
                None => {
                    let u = &self.units[ix as usize];
                    if u.level != level
                        || u.kind != UnitKind::AdministrativeArea
                        || !self.unit_life(ix, known_at).is_some_and(|l| l.contains(on))
                    {
                        continue;
                    }
                    let observed = self.observed(&row.arrangement, ix, on, known_at, false);
                    (
                        self.adopted(model, ix, on, known_at),
                        observed,
                        !observed && self.observed(&row.arrangement, ix, on, known_at, true),
                    )
                }
            };
            coverage.units += 1;
            let unit = self.units[ix as usize].id;
            if declared {
                coverage.declared.push(unit);
            }
            if observed {
                coverage.observed.push(unit);
            }
            if uncertain {
                coverage.uncertain.push(unit);
            }
        }
        coverage.declared.sort_unstable();
        coverage.observed.sort_unstable();
        coverage.uncertain.sort_unstable();
        Ok(coverage)
    }

    /// Persons whose names match `query`, ignoring case, diacritics and normal form; exact
    /// matches first.
    pub fn search(&self, query: &str, limit: usize) -> Vec<(PersonId, String, crate::MatchKind)> {
        // Retracted persons are not found.
        self.names
            .search(query, limit, |row| {
                at(&self.persons[row as usize].names, None).any(|(since, _, _)| since.is_none())
            })
            .into_iter()
            .filter_map(|(row, name, kind)| Some((self.persons[row as usize].id?, name, kind)))
            .collect()
    }
}
