//! Bitemporal read models, folded from the ordered event feed.
//!
//! The read side that agencies and auditors query: who held an office on a date, which offices a
//! person held, what a unit looked like, its lineage through renames, merges and splits, and how
//! many communes of a jurisdiction applied a pilot model, both as declared (adoptions) and as
//! observed (one person holding both offices). Every query takes an optional recorded-time
//! instant `known_at` and answers as the registry stood then, ignoring later corrections and
//! retractions.
//!
//! # How time is kept
//!
//! Every fact is stored as a *version* with the recorded-time interval during which the
//! registry asserted it: `[rec_from, rec_to)`. A correction, an end or a retraction closes the
//! current version at its recorded time and (except for a retraction) opens a new one. A query
//! at `known_at = t` sees the versions with `rec_from <= t < rec_to`; without `known_at` it sees
//! the current ones. Valid time is then filtered as the domain defines it: a holding covers the
//! days of `registry_domain::state::holding_span`.
//!
//! # Layout
//!
//! - [`Projection`]: the model and [`Projection::apply`].
//! - `queries`: the questions.
//! - [`search`]: diacritic-insensitive name search.
//! - [`read_models`]: the projection and the auditors' index at one feed position, folded
//!   from decoded batches of the feed.
//! - [`snapshot`]: the read models saved and loaded, so a start need not fold the whole feed.

use registry_domain::event::*;
use registry_domain::state::{holding_span, SizedLike};
use registry_domain::*;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

pub mod as_known;
mod coverage_index;
pub mod records;
pub mod search;
pub mod snapshot;

mod queries;
pub mod read_models;

pub use as_known::AsKnown;
pub use queries::{
    Coverage, CoverageError, HoldingView, HoldingsOn, Lineage, OfficeView, UnitView,
};
pub use read_models::{AuditIndex, FeedBatch, FeedPosition, ReadModels, Seen};
pub use search::{fold, MatchKind, NameIndex};

/// The maps of the read models: keys are UUIDs or short strings, so a fast non-cryptographic
/// hasher (foldhash, randomly seeded) is enough and markedly faster than SipHash.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Each key to its position in `keys`: the lookups derived from a table's rows, rebuilt when a
/// snapshot is loaded rather than saved.
pub(crate) fn lookup<K: std::hash::Hash + Eq>(
    keys: impl ExactSizeIterator<Item = K>,
) -> HashMap<K, u32> {
    let mut map = HashMap::with_capacity_and_hasher(keys.len(), Default::default());
    map.extend(keys.enumerate().map(|(ix, key)| (key, ix as u32)));
    map
}

/// Recorded time: microseconds since the Unix epoch.
pub type Instant = i64;

/// The end of recorded time: a version not (yet) superseded.
pub(crate) const CURRENT: Instant = Instant::MAX;

/// The recorded-time interval during which the registry asserted a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// Asserted from.
    pub from: Instant,
    /// Asserted until (exclusive); `Instant::MAX` while current.
    pub to: Instant,
}

impl Recorded {
    fn since(from: Instant) -> Self {
        Self { from, to: CURRENT }
    }

    /// Whether the version was asserted at `known_at` (now when `None`).
    pub fn at(self, known_at: Option<Instant>) -> bool {
        match known_at {
            None => self.to == CURRENT,
            Some(t) => self.from <= t && t < self.to,
        }
    }
}

/// One version of a holding (saved in snapshots as a record: see `records`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HoldingVersion {
    pub(crate) holding: HoldingId,
    pub(crate) person: u32,
    pub(crate) office: u32,
    pub(crate) start: PartialDate,
    pub(crate) end: HoldingEnd,
    /// The days the holding surely covers, as day numbers `[start, end)`.
    pub(crate) days: (i32, i32),
    pub(crate) end_reason: Option<EndReason>,
    /// How it began and its term, as a number in [`Projection::beginnings`]: most holdings
    /// share a few such pairs, and a version stays small (a national registry has millions).
    pub(crate) beginning: u32,
    /// Its legal basis in [`Projection::bases`] ([`NO_BASIS`]: none).
    pub(crate) basis: u32,
    /// The legal basis of its end ([`NO_BASIS`]: none).
    pub(crate) end_basis: u32,
    pub(crate) recorded: Recorded,
    /// The version this one superseded ([`NO_VERSION`] for the first): a holding's versions,
    /// newest first, whatever office or person each was filed under.
    pub(crate) previous: u32,
    /// The number of the event that recorded it in the feed folded ([`Projection::applied`]
    /// before it): the auditors' index finds a holding's events through these
    /// ([`Projection::events_kept_for`]).
    pub(crate) event: u32,
}

/// No earlier version.
pub(crate) const NO_VERSION: u32 = u32::MAX;

/// No event recorded.
pub(crate) const NO_EVENT: u32 = u32::MAX;

/// No legal basis recorded.
pub(crate) const NO_BASIS: u32 = u32::MAX;

/// How holdings began, with their terms, each distinct pair once.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Beginnings {
    pairs: Vec<(Beginning, Option<TermId>)>,
    /// A pair to its number (derived: not saved in snapshots).
    #[serde(skip)]
    ix: HashMap<(Beginning, Option<TermId>), u32>,
}

impl Beginnings {
    fn intern(&mut self, beginning: Beginning, term: Option<TermId>) -> u32 {
        if let Some(&ix) = self.ix.get(&(beginning, term)) {
            return ix;
        }
        let ix = self.pairs.len() as u32;
        self.pairs.push((beginning, term));
        self.ix.insert((beginning, term), ix);
        ix
    }

    pub(crate) fn get(&self, ix: u32) -> (Beginning, Option<TermId>) {
        self.pairs[ix as usize]
    }

    pub(crate) fn restore(&mut self) {
        self.ix = lookup(self.pairs.iter().copied());
    }
}

/// An entry of an office's or a person's list of holding versions, carrying the version's days
/// so that a query on a date touches only the versions that cover it: the list is contiguous,
/// the versions are scattered through the feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) from: i32,
    pub(crate) to: i32,
    pub(crate) version: u32,
}

/// A versioned value of an entity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Version<T> {
    pub(crate) value: T,
    pub(crate) recorded: Recorded,
}

/// A person's name from a day on (`None`: the registered name), as the number of its spelling
/// in the name index, and with the registered name the registered birth date (its
/// `PartialDate::code`, [`NO_BIRTH`] when not known or for a rename): corrections change the
/// two together, and the pair costs no more memory than the name alone.
pub(crate) type NameFact = (Option<Date>, u32, i32);

/// No birth date in a [`NameFact`].
pub(crate) const NO_BIRTH: i32 = i32::MIN;

/// The birth code of a [`NameFact`].
pub(crate) fn birth_code(birth: Option<registry_domain::PartialDate>) -> i32 {
    birth.map_or(NO_BIRTH, registry_domain::PartialDate::code)
}

/// A person. Most persons have one name and one holding (two versions: started, ended), kept
/// inline: a national registry has millions of persons, and two heap lists each would double
/// their memory and the allocations of a rebuild. Saved in snapshots as a record.
#[derive(Clone, Debug)]
pub(crate) struct PersonRow {
    pub(crate) id: Option<PersonId>,
    /// Its names; a person exists while a registered name (`None`) is asserted.
    pub(crate) names: SmallVec<[Version<NameFact>; 1]>,
    pub(crate) holdings: SmallVec<[Slot; 2]>,
    /// The number of the event that registered the person in the feed folded ([`NO_EVENT`]:
    /// none folded yet).
    pub(crate) registered: u32,
}

impl Default for PersonRow {
    fn default() -> Self {
        Self {
            id: None,
            names: SmallVec::new(),
            holdings: SmallVec::new(),
            registered: NO_EVENT,
        }
    }
}

/// The facts of an office that corrections may change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OfficeFacts {
    pub(crate) title: String,
    pub(crate) kind: OfficeKind,
    pub(crate) capacity: Capacity,
    pub(crate) life: Span,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct OfficeRow {
    pub(crate) id: OfficeId,
    pub(crate) facts: Vec<Version<OfficeFacts>>,
    /// The unit from a day on.
    pub(crate) placements: Vec<Version<(Date, u32)>>,
    /// Saved by the snapshot with the holding versions, as arrays (see [`snapshot`]).
    #[serde(skip)]
    pub(crate) holdings: Vec<Slot>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct UnitRow {
    pub(crate) id: UnitId,
    pub(crate) kind: UnitKind,
    pub(crate) level: Level,
    pub(crate) exists: Vec<Version<Span>>,
    pub(crate) names: Vec<Version<(Date, String)>>,
    pub(crate) parents: Vec<Version<(u32, Span)>>,
    /// Links from children, as (child, index into the child's `parents`).
    pub(crate) children: Vec<(u32, u32)>,
    /// The links of `children` from administrative areas: a jurisdiction's tree of areas
    /// without its many bodies (Party committee, council, Front...).
    pub(crate) area_children: Vec<(u32, u32)>,
    pub(crate) offices: Vec<u32>,
    pub(crate) predecessors: Vec<Version<(u32, Date)>>,
    pub(crate) successors: Vec<Version<(u32, Date)>>,
    pub(crate) adoptions: Vec<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct AdoptionRow {
    pub(crate) model: ModelId,
    pub(crate) spans: Vec<Version<Span>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ModelRow {
    pub(crate) arrangement: Arrangement,
    pub(crate) exists: Vec<Version<String>>,
}

/// The legal bases of holdings, stored compactly: a national registry has millions, each with a
/// document number of its own but one of a few issuers. The numbers sit end to end in one
/// string, the issuers once each.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Bases {
    /// Saved by the snapshot as records (see `records`).
    #[serde(skip)]
    pub(crate) rows: Vec<BasisRow>,
    /// The document numbers, end to end.
    numbers: String,
    issuers: Vec<Box<str>>,
    /// Issuer to its number (derived: not saved in snapshots).
    #[serde(skip)]
    issuer_ix: HashMap<Box<str>, u32>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct BasisRow {
    /// Where its number sits in `numbers`: start and length.
    number: (u32, u32),
    issuer: u32,
    issued_on: Date,
    effective_on: Option<Date>,
}

/// A legal basis as the read model holds it, borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BasisRef<'a> {
    /// The document number.
    pub number: &'a str,
    /// The day it was signed.
    pub issued_on: Date,
    /// Who issued it.
    pub issuer: &'a str,
    /// The day it takes effect, when different from the day of issue.
    pub effective_on: Option<Date>,
}

impl Bases {
    fn push(&mut self, basis: &LegalBasis) -> u32 {
        let issuer = match self.issuer_ix.get(basis.issuer.as_str()) {
            Some(&ix) => ix,
            None => {
                let ix = self.issuers.len() as u32;
                self.issuers.push(basis.issuer.as_str().into());
                self.issuer_ix.insert(basis.issuer.as_str().into(), ix);
                ix
            }
        };
        let start = self.numbers.len() as u32;
        self.numbers.push_str(&basis.number);
        self.rows.push(BasisRow {
            number: (start, basis.number.len() as u32),
            issuer,
            issued_on: basis.issued_on,
            effective_on: basis.effective_on,
        });
        self.rows.len() as u32 - 1
    }

    pub(crate) fn get(&self, ix: u32) -> BasisRef<'_> {
        let row = &self.rows[ix as usize];
        let (start, len) = (row.number.0 as usize, row.number.1 as usize);
        BasisRef {
            number: &self.numbers[start..start + len],
            issued_on: row.issued_on,
            issuer: &self.issuers[row.issuer as usize],
            effective_on: row.effective_on,
        }
    }

    /// Rebuilds the derived lookup after loading a snapshot.
    pub(crate) fn restore(&mut self) {
        self.issuer_ix = lookup(self.issuers.iter().cloned());
    }
}

/// The read models: everything the queries need, indexed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Projection {
    /// Saved by the snapshot in a section of its own, like the other large tables marked
    /// `skip` here (see [`snapshot`]).
    #[serde(skip)]
    pub(crate) persons: Vec<PersonRow>,
    /// Derived from the rows, like the other lookups marked `skip`: rebuilt when a snapshot is
    /// loaded ([`Projection::restore_lookups`]) rather than saved.
    #[serde(skip)]
    pub(crate) person_ix: HashMap<PersonId, u32>,
    pub(crate) offices: Vec<OfficeRow>,
    #[serde(skip)]
    pub(crate) office_ix: HashMap<OfficeId, u32>,
    pub(crate) units: Vec<UnitRow>,
    #[serde(skip)]
    pub(crate) unit_ix: HashMap<UnitId, u32>,
    #[serde(skip)]
    pub(crate) versions: Vec<HoldingVersion>,
    /// The current version of each holding (absent once retracted).
    #[serde(skip)]
    pub(crate) current: HashMap<HoldingId, u32>,
    /// The last version of each retracted holding (retractions are rare).
    pub(crate) retracted: HashMap<HoldingId, u32>,
    pub(crate) adoptions: Vec<AdoptionRow>,
    pub(crate) adoption_ix: HashMap<AdoptionId, u32>,
    pub(crate) models: HashMap<ModelId, ModelRow>,
    #[serde(skip)]
    pub(crate) bases: Bases,
    pub(crate) beginnings: Beginnings,
    /// Names by spelling, with the rows of the persons who carried them.
    #[serde(skip)]
    pub(crate) names: NameIndex<u32>,
    pub(crate) applied: u64,
    pub(crate) coverage_index: coverage_index::CoverageIndex,
}

fn days(span: Span) -> (i32, i32) {
    (
        span.start.julian_day(),
        span.end.map_or(i32::MAX, Date::julian_day),
    )
}

fn close<T>(versions: &mut [Version<T>], at: Instant) -> Option<&T> {
    let last = versions
        .iter_mut()
        .rev()
        .find(|v| v.recorded.to == CURRENT)?;
    last.recorded.to = at;
    Some(&last.value)
}

/// For folding the same feed again: the large tables never grow meanwhile.
impl SizedLike for Projection {
    fn sized_like(other: &Self) -> Self {
        use SizedLike as S;
        Self {
            persons: S::sized_like(&other.persons),
            person_ix: S::sized_like(&other.person_ix),
            offices: S::sized_like(&other.offices),
            office_ix: S::sized_like(&other.office_ix),
            units: S::sized_like(&other.units),
            unit_ix: S::sized_like(&other.unit_ix),
            versions: S::sized_like(&other.versions),
            current: S::sized_like(&other.current),
            adoptions: S::sized_like(&other.adoptions),
            adoption_ix: S::sized_like(&other.adoption_ix),
            bases: Bases {
                rows: S::sized_like(&other.bases.rows),
                numbers: S::sized_like(&other.bases.numbers),
                ..Bases::default()
            },
            names: S::sized_like(&other.names),
            ..Self::default()
        }
    }
}

impl Projection {
    /// An empty projection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the lookups a snapshot does not hold (they are derived from the rows), two at
    /// a time: the holdings' on one thread, the rest on another.
    pub(crate) fn restore_lookups(&mut self) {
        let Self {
            persons,
            person_ix,
            offices,
            office_ix,
            units,
            unit_ix,
            versions,
            current,
            names,
            bases,
            beginnings,
            ..
        } = self;
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let mut map =
                    HashMap::with_capacity_and_hasher(versions.len() / 2, Default::default());
                for (ix, version) in versions.iter().enumerate() {
                    if version.recorded.to == CURRENT {
                        map.insert(version.holding, ix as u32);
                    }
                }
                *current = map;
            });
            *person_ix = persons
                .iter()
                .enumerate()
                .filter_map(|(ix, p)| Some((p.id?, ix as u32)))
                .collect();
            *office_ix = lookup(offices.iter().map(|o| o.id));
            *unit_ix = lookup(units.iter().map(|u| u.id));
            names.restore();
            bases.restore();
            beginnings.restore();
        });
    }

    /// How many events have been folded in.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    fn basis(&mut self, basis: &Option<LegalBasis>) -> u32 {
        basis.as_ref().map_or(NO_BASIS, |b| self.bases.push(b))
    }

    fn person_row(&mut self, id: PersonId) -> u32 {
        let persons = &mut self.persons;
        *self.person_ix.entry(id).or_insert_with(|| {
            persons.push(PersonRow {
                id: Some(id),
                ..PersonRow::default()
            });
            persons.len() as u32 - 1
        })
    }

    /// Appends a version and lists it under its person and office; returns its number.
    fn file(&mut self, version: HoldingVersion) -> u32 {
        let ix = self.versions.len() as u32;
        let slot = Slot {
            from: version.days.0,
            to: version.days.1,
            version: ix,
        };
        self.persons[version.person as usize].holdings.push(slot);
        self.offices[version.office as usize].holdings.push(slot);
        self.versions.push(version);
        ix
    }

    /// Closes the current version of a holding at `at` and returns a copy to amend, which the
    /// caller must [`Projection::file`] next: the holding's current version is already set to
    /// the number the copy will get (one hash lookup per amendment instead of two).
    fn supersede(&mut self, holding: HoldingId, at: Instant, event: u32) -> Option<HoldingVersion> {
        let next = self.versions.len() as u32;
        let ix = std::mem::replace(self.current.get_mut(&holding)?, next);
        let version = &mut self.versions[ix as usize];
        version.recorded.to = at;
        let mut next = version.clone();
        next.recorded = Recorded::since(at);
        next.previous = ix;
        next.event = event;
        Some(next)
    }

    /// Folds one event, recorded at `recorded_at`, into the read models. Events must come in
    /// feed order. Never fails: events were decided against the state they follow.
    pub fn apply(&mut self, recorded_at: Instant, event: &Event) {
        // Before and after: a correction may move a holding from one office to another.
        self.mark_coverage(event);
        self.fold(recorded_at, event);
        self.mark_coverage(event);
    }

    /// Marks the precomputed coverage a change may affect: the communes above the offices a
    /// holding event touches (before and after it), or everything after a change of structure,
    /// adoptions or models.
    fn mark_coverage(&mut self, event: &Event) {
        if self.coverage_index.all_dirty {
            // Everything is recomputed at the next refresh anyway (the common case while
            // rebuilding from the feed).
            return;
        }
        let holding = match event {
            Event::HoldingStarted(e) => Some(e.holding),
            Event::HoldingEnded(e) => Some(e.holding),
            Event::HoldingCorrected(e) => Some(e.holding),
            Event::Retracted(e) => match e.target {
                EntityRef::Holding(h) => Some(h),
                EntityRef::Unit(_)
                | EntityRef::Adoption(_)
                | EntityRef::Model(_)
                | EntityRef::Office(_) => {
                    self.coverage_index.all_dirty = true;
                    None
                }
                _ => None,
            },
            Event::OfficeCarried(OfficeCarried { office, .. })
            | Event::OfficeAbolished(OfficeAbolished { office, .. }) => {
                self.mark_office_of(*office);
                None
            }
            Event::OfficeCorrected(e) => {
                self.mark_office_of(e.office);
                None
            }
            Event::UnitEstablished(_)
            | Event::UnitMoved(_)
            | Event::UnitsReorganised(_)
            | Event::ModelDefined(_)
            | Event::ModelAdopted(_)
            | Event::ModelWithdrawn(_) => {
                self.coverage_index.all_dirty = true;
                None
            }
            _ => None,
        };
        if let Some(holding) = holding {
            let office = self
                .current
                .get(&holding)
                .map(|v| self.versions[*v as usize].office);
            if let Some(office) = office {
                self.mark_office(office);
            }
        }
    }

    fn fold(&mut self, recorded_at: Instant, event: &Event) {
        // Past four billion events the numbers saturate: not a case to serve (the versions
        // alone would take hundreds of gigabytes).
        let number = u32::try_from(self.applied).unwrap_or(NO_EVENT);
        self.applied += 1;
        let at = recorded_at;
        match event {
            Event::PersonRegistered(e) => {
                let ix = self.person_row(e.person);
                let name = self.names.add(ix, &e.name);
                let row = &mut self.persons[ix as usize];
                row.registered = number;
                row.names.push(Version {
                    value: (None, name, birth_code(e.birth)),
                    recorded: Recorded::since(at),
                });
                for alias in &e.aliases {
                    self.names.add(ix, alias);
                }
            }
            Event::PersonRenamed(e) => {
                let ix = self.person_row(e.person);
                let name = self.names.add(ix, &e.name);
                self.persons[ix as usize].names.push(Version {
                    value: (Some(e.on), name, NO_BIRTH),
                    recorded: Recorded::since(at),
                });
            }
            Event::PersonAliasAdded(e) => {
                let ix = self.person_row(e.person);
                self.names.add(ix, &e.alias);
            }
            Event::PersonCorrected(e) => {
                let ix = self.person_row(e.person);
                let name = self.names.add(ix, &e.after.name);
                let row = &mut self.persons[ix as usize];
                if let Some(version) = row
                    .names
                    .iter_mut()
                    .rev()
                    .find(|v| v.value.0.is_none() && v.recorded.to == CURRENT)
                {
                    version.recorded.to = at;
                }
                row.names.push(Version {
                    value: (None, name, birth_code(e.after.birth)),
                    recorded: Recorded::since(at),
                });
            }
            Event::UnitEstablished(e) => {
                let ix = self.units.len() as u32;
                let mut parents = Vec::new();
                for parent in &e.parents {
                    if let Some(&p) = self.unit_ix.get(parent) {
                        parents.push(Version {
                            value: (p, Span::from(e.on)),
                            recorded: Recorded::since(at),
                        });
                    }
                }
                for (link, version) in parents.iter().enumerate() {
                    self.link_child(version.value.0, ix, link as u32, e.kind);
                }
                self.units.push(UnitRow {
                    id: e.unit,
                    kind: e.kind,
                    level: e.level,
                    exists: vec![Version {
                        value: Span::from(e.on),
                        recorded: Recorded::since(at),
                    }],
                    names: vec![Version {
                        value: (e.on, e.name.clone()),
                        recorded: Recorded::since(at),
                    }],
                    parents,
                    children: Vec::new(),
                    area_children: Vec::new(),
                    offices: Vec::new(),
                    predecessors: Vec::new(),
                    successors: Vec::new(),
                    adoptions: Vec::new(),
                });
                self.unit_ix.insert(e.unit, ix);
            }
            Event::UnitRenamed(e) => {
                if let Some(&ix) = self.unit_ix.get(&e.unit) {
                    self.units[ix as usize].names.push(Version {
                        value: (e.on, e.name.clone()),
                        recorded: Recorded::since(at),
                    });
                }
            }
            Event::UnitMoved(e) => {
                let Some(&ix) = self.unit_ix.get(&e.unit) else {
                    return;
                };
                self.end_parent_links(ix, e.on, at);
                for parent in &e.parents {
                    if let Some(&p) = self.unit_ix.get(parent) {
                        let link = self.units[ix as usize].parents.len() as u32;
                        self.units[ix as usize].parents.push(Version {
                            value: (p, Span::from(e.on)),
                            recorded: Recorded::since(at),
                        });
                        let kind = self.units[ix as usize].kind;
                        self.link_child(p, ix, link, kind);
                    }
                }
            }
            Event::UnitsReorganised(e) => {
                let successors: Vec<u32> = e
                    .successors
                    .iter()
                    .filter_map(|s| self.unit_ix.get(s).copied())
                    .collect();
                let predecessors: Vec<u32> = e
                    .predecessors
                    .iter()
                    .filter_map(|s| self.unit_ix.get(s).copied())
                    .collect();
                for &p in &predecessors {
                    self.end_parent_links(p, e.on, at);
                    let row = &mut self.units[p as usize];
                    if let Some(life) = close(&mut row.exists, at).copied() {
                        row.exists.push(Version {
                            value: Span {
                                start: life.start,
                                end: Some(e.on),
                            },
                            recorded: Recorded::since(at),
                        });
                    }
                    for &s in &successors {
                        self.units[p as usize].successors.push(Version {
                            value: (s, e.on),
                            recorded: Recorded::since(at),
                        });
                        self.units[s as usize].predecessors.push(Version {
                            value: (p, e.on),
                            recorded: Recorded::since(at),
                        });
                    }
                }
            }
            Event::OfficeCreated(e) => {
                let Some(&unit) = self.unit_ix.get(&e.unit) else {
                    return;
                };
                let ix = self.offices.len() as u32;
                self.offices.push(OfficeRow {
                    id: e.office,
                    facts: vec![Version {
                        value: OfficeFacts {
                            title: e.title.clone(),
                            kind: e.kind,
                            capacity: e.capacity,
                            life: Span::from(e.on),
                        },
                        recorded: Recorded::since(at),
                    }],
                    placements: vec![Version {
                        value: (e.on, unit),
                        recorded: Recorded::since(at),
                    }],
                    holdings: Vec::new(),
                });
                self.office_ix.insert(e.office, ix);
                self.units[unit as usize].offices.push(ix);
            }
            Event::OfficeCarried(e) => {
                let (Some(&office), Some(&unit)) =
                    (self.office_ix.get(&e.office), self.unit_ix.get(&e.unit))
                else {
                    return;
                };
                self.offices[office as usize].placements.push(Version {
                    value: (e.on, unit),
                    recorded: Recorded::since(at),
                });
                self.units[unit as usize].offices.push(office);
            }
            Event::OfficeAbolished(e) => {
                let Some(&office) = self.office_ix.get(&e.office) else {
                    return;
                };
                let row = &mut self.offices[office as usize];
                if let Some(facts) = close(&mut row.facts, at).cloned() {
                    row.facts.push(Version {
                        value: OfficeFacts {
                            life: Span {
                                start: facts.life.start,
                                end: Some(e.on),
                            },
                            ..facts
                        },
                        recorded: Recorded::since(at),
                    });
                }
            }
            Event::OfficeCorrected(e) => {
                let Some(&office) = self.office_ix.get(&e.office) else {
                    return;
                };
                let row = &mut self.offices[office as usize];
                close(&mut row.facts, at);
                row.facts.push(Version {
                    value: OfficeFacts {
                        title: e.after.title.clone(),
                        kind: e.after.kind,
                        capacity: e.after.capacity,
                        life: Span {
                            start: e.after.established,
                            end: e.after.abolished,
                        },
                    },
                    recorded: Recorded::since(at),
                });
                if let Some(first) = row.placements.first().cloned() {
                    if first.value.0 != e.after.established {
                        row.placements[0].recorded.to = at;
                        row.placements.push(Version {
                            value: (e.after.established, first.value.1),
                            recorded: Recorded::since(at),
                        });
                    }
                }
            }
            Event::HoldingStarted(e) => {
                let person = self.person_row(e.person);
                let Some(&office) = self.office_ix.get(&e.office) else {
                    return;
                };
                let basis = self.basis(&e.basis);
                let beginning = self.beginnings.intern(e.beginning, e.term);
                let ix = self.file(HoldingVersion {
                    holding: e.holding,
                    person,
                    office,
                    start: e.start,
                    end: HoldingEnd::Open,
                    days: days(holding_span(e.start, HoldingEnd::Open)),
                    end_reason: None,
                    beginning,
                    basis,
                    end_basis: NO_BASIS,
                    recorded: Recorded::since(at),
                    previous: NO_VERSION,
                    event: number,
                });
                self.current.insert(e.holding, ix);
            }
            Event::HoldingEnded(e) => {
                let end_basis = self.basis(&e.basis);
                if let Some(mut next) = self.supersede(e.holding, at, number) {
                    next.end = e.end;
                    next.end_reason = Some(e.reason);
                    next.end_basis = end_basis;
                    next.days = days(holding_span(next.start, next.end));
                    self.file(next);
                }
            }
            Event::HoldingCorrected(e) => {
                let basis = self.basis(&e.after.basis);
                let person = self.person_row(e.after.person);
                let Some(&office) = self.office_ix.get(&e.after.office) else {
                    return;
                };
                let beginning = self.beginnings.intern(e.after.beginning, e.after.term);
                if let Some(mut next) = self.supersede(e.holding, at, number) {
                    next.person = person;
                    next.office = office;
                    next.start = e.after.start;
                    next.end = e.after.end;
                    next.beginning = beginning;
                    next.end_reason = e.after.end_reason;
                    next.basis = basis;
                    next.days = days(holding_span(next.start, next.end));
                    self.file(next);
                }
            }
            Event::ModelDefined(e) => {
                self.models.insert(
                    e.model,
                    ModelRow {
                        arrangement: e.arrangement.clone(),
                        exists: vec![Version {
                            value: e.name.clone(),
                            recorded: Recorded::since(at),
                        }],
                    },
                );
            }
            Event::ModelAdopted(e) => {
                let Some(&unit) = self.unit_ix.get(&e.unit) else {
                    return;
                };
                let ix = self.adoptions.len() as u32;
                self.adoptions.push(AdoptionRow {
                    model: e.model,
                    spans: vec![Version {
                        value: Span::from(e.on),
                        recorded: Recorded::since(at),
                    }],
                });
                self.adoption_ix.insert(e.adoption, ix);
                self.units[unit as usize].adoptions.push(ix);
            }
            Event::ModelWithdrawn(e) => {
                let Some(&ix) = self.adoption_ix.get(&e.adoption) else {
                    return;
                };
                let row = &mut self.adoptions[ix as usize];
                if let Some(span) = close(&mut row.spans, at).copied() {
                    row.spans.push(Version {
                        value: Span {
                            start: span.start,
                            end: Some(e.on),
                        },
                        recorded: Recorded::since(at),
                    });
                }
            }
            Event::TermOpened(_) => {}
            Event::Retracted(e) => self.retract(e.target, at),
        }
    }

    fn end_parent_links(&mut self, unit: u32, on: Date, at: Instant) {
        let mut ended = Vec::new();
        for link in &mut self.units[unit as usize].parents {
            if link.recorded.to == CURRENT && link.value.1.end.is_none_or(|end| end > on) {
                link.recorded.to = at;
                let span = Span {
                    start: link.value.1.start,
                    end: Some(on),
                };
                if !span.is_empty() {
                    ended.push((link.value.0, span));
                }
            }
        }
        for (parent, span) in ended {
            let link = self.units[unit as usize].parents.len() as u32;
            self.units[unit as usize].parents.push(Version {
                value: (parent, span),
                recorded: Recorded::since(at),
            });
            let kind = self.units[unit as usize].kind;
            self.link_child(parent, unit, link, kind);
        }
    }

    /// Lists `child` (through its parent link number `link`) under `parent`; areas also in the
    /// parent's list of area children, which the coverage of a jurisdiction walks.
    fn link_child(&mut self, parent: u32, child: u32, link: u32, kind: UnitKind) {
        let row = &mut self.units[parent as usize];
        row.children.push((child, link));
        if kind == UnitKind::AdministrativeArea {
            row.area_children.push((child, link));
        }
    }

    fn retract(&mut self, target: EntityRef, at: Instant) {
        match target {
            EntityRef::Holding(holding) => {
                if let Some(ix) = self.current.remove(&holding) {
                    self.versions[ix as usize].recorded.to = at;
                    self.retracted.insert(holding, ix);
                }
            }
            EntityRef::Person(person) => {
                if let Some(&ix) = self.person_ix.get(&person) {
                    let row = &mut self.persons[ix as usize];
                    for name in &mut row.names {
                        if name.recorded.to == CURRENT {
                            name.recorded.to = at;
                        }
                    }
                }
            }
            EntityRef::Unit(unit) => {
                if let Some(&ix) = self.unit_ix.get(&unit) {
                    let row = &mut self.units[ix as usize];
                    close(&mut row.exists, at);
                    for link in &mut row.parents {
                        if link.recorded.to == CURRENT {
                            link.recorded.to = at;
                        }
                    }
                }
            }
            EntityRef::Office(office) => {
                if let Some(&ix) = self.office_ix.get(&office) {
                    let row = &mut self.offices[ix as usize];
                    close(&mut row.facts, at);
                    for placement in &mut row.placements {
                        if placement.recorded.to == CURRENT {
                            placement.recorded.to = at;
                        }
                    }
                }
            }
            EntityRef::Adoption(adoption) => {
                if let Some(&ix) = self.adoption_ix.get(&adoption) {
                    close(&mut self.adoptions[ix as usize].spans, at);
                }
            }
            EntityRef::Model(model) => {
                if let Some(row) = self.models.get_mut(&model) {
                    close(&mut row.exists, at);
                }
            }
            EntityRef::Term(_) => {}
        }
    }
}
