//! The registry's current knowledge, folded from events: the state `decide` checks commands
//! against.
//!
//! [`Registry::apply`] (evolve) never fails and never checks: it trusts that the events were
//! decided against the state they follow. Retracted entities are removed, but their ids stay
//! reserved so they can never be reused.

/// The registry's maps are keyed by UUIDs chosen by the registry itself: foldhash (randomly
/// seeded) instead of SipHash, which showed in the profiles of every write and of a start.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

use uuid::Uuid;

use crate::date::{Date, PartialDate, Span};
use crate::event::{Event, HoldingFacts, OfficeFacts, PersonFacts};
use crate::ids::{AdoptionId, EntityRef, HoldingId, ModelId, OfficeId, PersonId, TermId, UnitId};
use crate::model::{
    Arrangement, Beginning, Capacity, EndReason, HoldingEnd, LegalBasis, Level, OfficeKind,
    UnitEnding, UnitKind,
};

/// A person as the registry knows them now. The registry holds millions: later names and
/// aliases, which no rule reads and few persons have, sit behind one pointer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    /// The name first registered.
    pub name: Box<str>,
    /// The birth date, when known.
    pub birth: Option<PartialDate>,
    /// Every holding of the person, in the order recorded.
    pub holdings: Holdings,
    /// Later names and aliases, when there are any.
    more: Option<Box<MoreNames>>,
}

/// A person's later names and aliases.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct MoreNames {
    renames: Vec<(Date, String)>,
    aliases: Vec<String>,
}

impl Person {
    /// A person with these names and holdings (a snapshot's).
    pub fn new(
        name: Box<str>,
        birth: Option<PartialDate>,
        holdings: Holdings,
        renames: Vec<(Date, String)>,
        aliases: Vec<String>,
    ) -> Self {
        let more = (!renames.is_empty() || !aliases.is_empty())
            .then(|| Box::new(MoreNames { renames, aliases }));
        Self {
            name,
            birth,
            holdings,
            more,
        }
    }

    /// Later names with the day each took effect, in order.
    pub fn renames(&self) -> &[(Date, String)] {
        self.more.as_ref().map_or(&[], |more| &more.renames)
    }

    /// Other names.
    pub fn aliases(&self) -> &[String] {
        self.more.as_ref().map_or(&[], |more| &more.aliases)
    }

    fn more(&mut self) -> &mut MoreNames {
        self.more.get_or_insert_with(Box::default)
    }

    /// The name in use on `day`.
    pub fn name_on(&self, day: Date) -> &str {
        self.renames()
            .iter()
            .rev()
            .find(|(since, _)| *since <= day)
            .map_or(&*self.name, |(_, name)| name.as_str())
    }

    /// The facts a correction may change.
    pub fn facts(&self) -> PersonFacts {
        PersonFacts {
            name: self.name.to_string(),
            birth: self.birth,
        }
    }
}

/// A link from a unit to one of its parents, valid over a span.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ParentLink {
    /// The parent.
    pub parent: UnitId,
    /// When the link holds.
    pub span: Span,
}

/// An organisational unit.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unit {
    /// Its kind.
    pub kind: UnitKind,
    /// Its level.
    pub level: Level,
    /// Its names, each with the day it took effect, in order; the first is the founding name.
    pub names: Vec<(Date, String)>,
    /// Links to parents over time.
    pub parents: Vec<ParentLink>,
    /// Units that were ever linked under it.
    pub children: Vec<UnitId>,
    /// Its life.
    pub life: Span,
    /// How its life ended, when it has.
    pub ending: Option<UnitEnding>,
    /// The units it continues.
    pub predecessors: Vec<UnitId>,
    /// The units that continue it.
    pub successors: Vec<UnitId>,
    /// Offices ever placed in it.
    pub offices: Vec<OfficeId>,
    /// Adoptions of pilot models by it.
    pub adoptions: Vec<AdoptionId>,
    /// Terms of it as a body.
    pub terms: Vec<TermId>,
}

impl Unit {
    /// The name in use on `day` (the founding name before the unit existed).
    pub fn name_on(&self, day: Date) -> &str {
        self.names
            .iter()
            .rev()
            .find(|(since, _)| *since <= day)
            .or(self.names.first())
            .map_or("", |(_, name)| name.as_str())
    }

    /// The parents on `day`.
    pub fn parents_on(&self, day: Date) -> impl Iterator<Item = UnitId> + '_ {
        self.parents
            .iter()
            .filter(move |link| link.span.contains(day))
            .map(|link| link.parent)
    }
}

/// An office.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Office {
    /// The title as written.
    pub title: String,
    /// Its kind.
    pub kind: OfficeKind,
    /// How many may hold it on a day.
    pub capacity: Capacity,
    /// Its life.
    pub life: Span,
    /// The unit it belongs to, from each day on; the first entry starts at its creation.
    pub placements: Vec<(Date, UnitId)>,
    /// Its holdings, in the order recorded. Not in the office's serialized form: a snapshot
    /// keeps the lists as records of their own ([`Registry::from_parts`]).
    #[serde(skip)]
    pub holdings: Holdings,
}

/// The holdings of a person or an office in the order recorded, each with the days it surely
/// covers: capacity and concurrency checks and vacancies scan these instead of looking every
/// holding up (a plural office, such as a council's seats, gathers thousands over the years).
/// Most persons hold one or two offices in their lives: a short list grows one entry at a time
/// rather than by doubling.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holdings(Vec<(HoldingId, Span)>);

impl From<Vec<(HoldingId, Span)>> for Holdings {
    fn from(spans: Vec<(HoldingId, Span)>) -> Self {
        Self(spans)
    }
}

impl Holdings {
    /// The holdings' ids, in the order recorded.
    pub fn iter(&self) -> impl Iterator<Item = &HoldingId> + '_ {
        self.0.iter().map(|(id, _)| id)
    }

    /// The first holding recorded.
    pub fn first(&self) -> Option<&HoldingId> {
        self.0.first().map(|(id, _)| id)
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each holding with the days it surely covers, in the order recorded.
    pub fn spans(&self) -> impl Iterator<Item = (HoldingId, Span)> + '_ {
        self.0.iter().copied()
    }

    fn add(&mut self, id: HoldingId, span: Span) {
        const SHORT: usize = 4;
        if self.0.len() == self.0.capacity() && self.0.len() < SHORT {
            self.0.reserve_exact(1);
        }
        self.0.push((id, span));
    }

    fn set_span(&mut self, id: HoldingId, span: Span) {
        if let Some(entry) = self.0.iter_mut().rev().find(|(h, _)| *h == id) {
            entry.1 = span;
        }
    }

    fn remove(&mut self, id: HoldingId) {
        if let Some(i) = self.0.iter().rposition(|(h, _)| *h == id) {
            self.0.remove(i);
        }
    }
}

impl Office {
    /// The unit the office belongs to on `day` (its first unit before it existed).
    pub fn unit_on(&self, day: Date) -> UnitId {
        self.placements
            .iter()
            .rev()
            .find(|(since, _)| *since <= day)
            .or(self.placements.first())
            .map(|(_, unit)| *unit)
            .unwrap_or_else(|| UnitId::from_uuid(Uuid::nil()))
    }

    /// The facts a correction may change.
    pub fn facts(&self) -> OfficeFacts {
        OfficeFacts {
            title: self.title.clone(),
            kind: self.kind,
            capacity: self.capacity,
            established: self.life.start,
            abolished: self.life.end,
        }
    }
}

/// One person's tenure of one office.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holding {
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
    /// The basis of its start, boxed: most holdings have none, and the rules only ask whether
    /// there is one (and corrections restate it). The basis of its end is read by no rule and
    /// is not kept here.
    pub basis: Option<Box<LegalBasis>>,
}

impl Holding {
    /// The days the holding surely covers (see [`holding_span`]).
    pub fn span(&self) -> Span {
        holding_span(self.start, self.end)
    }

    /// The facts a correction may change.
    pub fn facts(&self) -> HoldingFacts {
        HoldingFacts {
            person: self.person,
            office: self.office,
            start: self.start,
            end: self.end,
            beginning: self.beginning,
            end_reason: self.end_reason,
            term: self.term,
            basis: self.basis.as_deref().cloned(),
        }
    }
}

/// The days a holding surely covers, used by every rule: from the latest possible start to the
/// earliest possible end. A holding whose end is unknown surely covers only its first day.
pub fn holding_span(start: PartialDate, end: HoldingEnd) -> Span {
    match end {
        HoldingEnd::Open => Span::from(start.latest()),
        HoldingEnd::Unknown => Span::between(start.latest(), start.latest().next_day()),
        HoldingEnd::On(end) => Span::narrowest(start, Some(end)),
    }
}

/// The days a holding may have covered, in the widest reading of its imprecise dates: from the
/// earliest possible start to the latest possible end; a holding whose end is unknown may have
/// gone on any time after its start. A day in this span but not in [`holding_span`] is one the
/// registry cannot say the holding covered or not ("possibly held").
pub fn holding_widest_span(start: PartialDate, end: HoldingEnd) -> Span {
    Span {
        start: start.earliest(),
        end: match end {
            HoldingEnd::Open | HoldingEnd::Unknown => None,
            HoldingEnd::On(end) => Some(end.latest()),
        },
    }
}

/// A pilot model.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Model {
    /// Its name.
    pub name: String,
    /// What it arranges.
    pub arrangement: Arrangement,
    /// The authorising decision.
    pub authorised_by: LegalBasis,
    /// Its adoptions.
    pub adoptions: Vec<AdoptionId>,
}

/// One unit's adoption of a pilot model.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Adoption {
    /// The model.
    pub model: ModelId,
    /// The adopting unit.
    pub unit: UnitId,
    /// When it applies.
    pub span: Span,
    /// The adopting decision.
    pub basis: LegalBasis,
}

/// A term of a body.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Term {
    /// The body.
    pub body: UnitId,
    /// Its label.
    pub label: String,
    /// The first day.
    pub start: Date,
    /// The planned first day after it.
    pub planned_end: Option<Date>,
}

/// A table that can start empty with room for what another holds, and a little more (for what
/// is recorded while it is refilled): a refold of the same events then never grows it.
pub trait SizedLike {
    /// Empty, with room for what `other` holds.
    fn sized_like(other: &Self) -> Self;
}

fn room(len: usize) -> usize {
    len + len / 32
}

impl<T> SizedLike for Vec<T> {
    fn sized_like(other: &Self) -> Self {
        Vec::with_capacity(room(other.len()))
    }
}

impl SizedLike for String {
    fn sized_like(other: &Self) -> Self {
        String::with_capacity(room(other.len()))
    }
}

impl<K, V, S: Default> SizedLike for std::collections::HashMap<K, V, S> {
    fn sized_like(other: &Self) -> Self {
        Self::with_capacity_and_hasher(room(other.len()), S::default())
    }
}

impl<T, S: Default> SizedLike for std::collections::HashSet<T, S> {
    fn sized_like(other: &Self) -> Self {
        Self::with_capacity_and_hasher(room(other.len()), S::default())
    }
}

/// Everything the registry currently knows, indexed for the rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registry {
    pub(crate) persons: HashMap<PersonId, Person>,
    pub(crate) units: HashMap<UnitId, Unit>,
    pub(crate) offices: HashMap<OfficeId, Office>,
    pub(crate) holdings: HashMap<HoldingId, Holding>,
    pub(crate) models: HashMap<ModelId, Model>,
    pub(crate) adoptions: HashMap<AdoptionId, Adoption>,
    pub(crate) terms: HashMap<TermId, Term>,
    /// Ids of retracted entities: gone, but never to be reused.
    pub(crate) retracted: HashSet<Uuid>,
}

/// A refold of the same events (a rebuild of read models) then never grows the registry's
/// tables, each of which growing copies into fresh memory twice its size.
impl SizedLike for Registry {
    fn sized_like(other: &Self) -> Self {
        Self {
            persons: SizedLike::sized_like(&other.persons),
            units: SizedLike::sized_like(&other.units),
            offices: SizedLike::sized_like(&other.offices),
            holdings: SizedLike::sized_like(&other.holdings),
            models: SizedLike::sized_like(&other.models),
            adoptions: SizedLike::sized_like(&other.adoptions),
            terms: SizedLike::sized_like(&other.terms),
            retracted: SizedLike::sized_like(&other.retracted),
        }
    }
}

/// One of the registry's tables (its persons, its holdings), filled by a snapshot's decoder
/// ([`Registry::from_parts`]).
pub struct Table<K, V>(HashMap<K, V>);

impl<K: std::hash::Hash + Eq, V> Table<K, V> {
    /// An empty table with room for `n` rows.
    pub fn with_capacity(n: usize) -> Self {
        Self(HashMap::with_capacity_and_hasher(n, Default::default()))
    }

    /// Adds a row; false if its key was there already.
    pub fn insert(&mut self, key: K, row: V) -> bool {
        self.0.insert(key, row).is_none()
    }
}

/// The rest of the registry: its structure, models and retracted ids (the offices without their
/// lists of holdings), borrowed for encoding.
#[derive(serde::Serialize)]
pub struct StructureRef<'a> {
    units: &'a HashMap<UnitId, Unit>,
    offices: &'a HashMap<OfficeId, Office>,
    models: &'a HashMap<ModelId, Model>,
    adoptions: &'a HashMap<AdoptionId, Adoption>,
    terms: &'a HashMap<TermId, Term>,
    retracted: &'a HashSet<Uuid>,
}

/// The rest of the registry, decoded ([`StructureRef`]).
#[derive(serde::Deserialize)]
pub struct Structure {
    units: HashMap<UnitId, Unit>,
    offices: HashMap<OfficeId, Office>,
    models: HashMap<ModelId, Model>,
    adoptions: HashMap<AdoptionId, Adoption>,
    terms: HashMap<TermId, Term>,
    retracted: HashSet<Uuid>,
}

impl Registry {
    /// The registry's structure, models and retracted ids, to encode; persons, holdings and the
    /// offices' lists of holdings are read through [`Registry::persons`],
    /// [`Registry::holdings`] and [`Registry::offices`].
    pub fn structure(&self) -> StructureRef<'_> {
        StructureRef {
            units: &self.units,
            offices: &self.offices,
            models: &self.models,
            adoptions: &self.adoptions,
            terms: &self.terms,
            retracted: &self.retracted,
        }
    }

    /// The registry whose parts were encoded: its persons, holdings and structure, and each
    /// office's holdings. Fails with an office the structure does not hold.
    pub fn from_parts(
        persons: Table<PersonId, Person>,
        holdings: Table<HoldingId, Holding>,
        structure: Structure,
        office_holdings: impl IntoIterator<Item = (OfficeId, Holdings)>,
    ) -> Result<Self, OfficeId> {
        let mut registry = Self {
            persons: persons.0,
            holdings: holdings.0,
            units: structure.units,
            offices: structure.offices,
            models: structure.models,
            adoptions: structure.adoptions,
            terms: structure.terms,
            retracted: structure.retracted,
        };
        for (id, list) in office_holdings {
            registry.offices.get_mut(&id).ok_or(id)?.holdings = list;
        }
        Ok(registry)
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds events into a fresh registry.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut registry = Self::new();
        for event in events {
            registry.apply(event);
        }
        registry
    }

    /// A person, if known and not retracted.
    pub fn person(&self, id: PersonId) -> Option<&Person> {
        self.persons.get(&id)
    }

    /// A unit, if known and not retracted.
    pub fn unit(&self, id: UnitId) -> Option<&Unit> {
        self.units.get(&id)
    }

    /// An office, if known and not retracted.
    pub fn office(&self, id: OfficeId) -> Option<&Office> {
        self.offices.get(&id)
    }

    /// A holding, if known and not retracted.
    pub fn holding(&self, id: HoldingId) -> Option<&Holding> {
        self.holdings.get(&id)
    }

    /// A pilot model, if known and not retracted.
    pub fn model(&self, id: ModelId) -> Option<&Model> {
        self.models.get(&id)
    }

    /// An adoption, if known and not retracted.
    pub fn adoption(&self, id: AdoptionId) -> Option<&Adoption> {
        self.adoptions.get(&id)
    }

    /// A term, if known and not retracted.
    pub fn term(&self, id: TermId) -> Option<&Term> {
        self.terms.get(&id)
    }

    /// All persons.
    pub fn persons(&self) -> impl Iterator<Item = (PersonId, &Person)> {
        self.persons.iter().map(|(id, p)| (*id, p))
    }

    /// All units.
    pub fn units(&self) -> impl Iterator<Item = (UnitId, &Unit)> {
        self.units.iter().map(|(id, u)| (*id, u))
    }

    /// All offices.
    pub fn offices(&self) -> impl Iterator<Item = (OfficeId, &Office)> {
        self.offices.iter().map(|(id, o)| (*id, o))
    }

    /// All holdings.
    pub fn holdings(&self) -> impl Iterator<Item = (HoldingId, &Holding)> {
        self.holdings.iter().map(|(id, h)| (*id, h))
    }

    /// All adoptions of pilot models.
    pub fn adoptions(&self) -> impl Iterator<Item = (AdoptionId, &Adoption)> {
        self.adoptions.iter().map(|(id, a)| (*id, a))
    }

    /// All pilot models.
    pub fn models(&self) -> impl Iterator<Item = (ModelId, &Model)> {
        self.models.iter().map(|(id, m)| (*id, m))
    }

    /// Whether the id was used by an entity that was later retracted.
    pub fn is_retracted(&self, id: Uuid) -> bool {
        self.retracted.contains(&id)
    }

    /// Evolve: folds one event into the state. Never fails.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::PersonRegistered(e) => {
                self.persons.insert(
                    e.person,
                    Person {
                        name: e.name.as_str().into(),
                        birth: e.birth,
                        holdings: Holdings::default(),
                        more: (!e.aliases.is_empty()).then(|| {
                            Box::new(MoreNames {
                                renames: Vec::new(),
                                aliases: e.aliases.clone(),
                            })
                        }),
                    },
                );
            }
            Event::PersonRenamed(e) => {
                if let Some(person) = self.persons.get_mut(&e.person) {
                    let renames = &mut person.more().renames;
                    let at = renames.partition_point(|(since, _)| *since <= e.on);
                    renames.insert(at, (e.on, e.name.clone()));
                }
            }
            Event::PersonAliasAdded(e) => {
                if let Some(person) = self.persons.get_mut(&e.person) {
                    person.more().aliases.push(e.alias.clone());
                }
            }
            Event::PersonCorrected(e) => {
                if let Some(person) = self.persons.get_mut(&e.person) {
                    person.name = e.after.name.as_str().into();
                    person.birth = e.after.birth;
                }
            }
            Event::UnitEstablished(e) => {
                for parent in &e.parents {
                    if let Some(p) = self.units.get_mut(parent) {
                        p.children.push(e.unit);
                    }
                }
                self.units.insert(
                    e.unit,
                    Unit {
                        kind: e.kind,
                        level: e.level,
                        names: vec![(e.on, e.name.clone())],
                        parents: e
                            .parents
                            .iter()
                            .map(|&parent| ParentLink {
                                parent,
                                span: Span::from(e.on),
                            })
                            .collect(),
                        children: Vec::new(),
                        life: Span::from(e.on),
                        ending: None,
                        predecessors: Vec::new(),
                        successors: Vec::new(),
                        offices: Vec::new(),
                        adoptions: Vec::new(),
                        terms: Vec::new(),
                    },
                );
            }
            Event::UnitRenamed(e) => {
                if let Some(unit) = self.units.get_mut(&e.unit) {
                    let at = unit.names.partition_point(|(since, _)| *since <= e.on);
                    unit.names.insert(at, (e.on, e.name.clone()));
                }
            }
            Event::UnitMoved(e) => self.move_unit(e.unit, &e.parents, e.on),
            Event::UnitsReorganised(e) => {
                for predecessor in &e.predecessors {
                    if let Some(unit) = self.units.get_mut(predecessor) {
                        unit.life.end = Some(e.on);
                        unit.ending = Some(e.ending);
                        unit.successors.extend(e.successors.iter().copied());
                        for link in &mut unit.parents {
                            if link.span.end.is_none_or(|end| end > e.on) {
                                link.span.end = Some(e.on);
                            }
                        }
                    }
                }
                for successor in &e.successors {
                    if let Some(unit) = self.units.get_mut(successor) {
                        unit.predecessors.extend(e.predecessors.iter().copied());
                    }
                }
            }
            Event::OfficeCreated(e) => {
                if let Some(unit) = self.units.get_mut(&e.unit) {
                    unit.offices.push(e.office);
                }
                self.offices.insert(
                    e.office,
                    Office {
                        title: e.title.clone(),
                        kind: e.kind,
                        capacity: e.capacity,
                        life: Span::from(e.on),
                        placements: vec![(e.on, e.unit)],
                        holdings: Holdings::default(),
                    },
                );
            }
            Event::OfficeCarried(e) => {
                if let Some(office) = self.offices.get_mut(&e.office) {
                    office.placements.push((e.on, e.unit));
                }
                if let Some(unit) = self.units.get_mut(&e.unit) {
                    unit.offices.push(e.office);
                }
            }
            Event::OfficeAbolished(e) => {
                if let Some(office) = self.offices.get_mut(&e.office) {
                    office.life.end = Some(e.on);
                }
            }
            Event::OfficeCorrected(e) => {
                if let Some(office) = self.offices.get_mut(&e.office) {
                    office.title = e.after.title.clone();
                    office.kind = e.after.kind;
                    office.capacity = e.after.capacity;
                    office.life = Span {
                        start: e.after.established,
                        end: e.after.abolished,
                    };
                    if let Some(first) = office.placements.first_mut() {
                        first.0 = e.after.established;
                    }
                }
            }
            Event::HoldingStarted(e) => {
                let span = holding_span(e.start, HoldingEnd::Open);
                if let Some(person) = self.persons.get_mut(&e.person) {
                    person.holdings.add(e.holding, span);
                }
                if let Some(office) = self.offices.get_mut(&e.office) {
                    office.holdings.add(e.holding, span);
                }
                self.holdings.insert(
                    e.holding,
                    Holding {
                        person: e.person,
                        office: e.office,
                        start: e.start,
                        end: HoldingEnd::Open,
                        beginning: e.beginning,
                        end_reason: None,
                        term: e.term,
                        basis: e.basis.clone().map(Box::new),
                    },
                );
            }
            Event::HoldingEnded(e) => {
                if let Some(holding) = self.holdings.get_mut(&e.holding) {
                    holding.end = e.end;
                    holding.end_reason = Some(e.reason);
                    let (person, office, span) = (holding.person, holding.office, holding.span());
                    if let Some(person) = self.persons.get_mut(&person) {
                        person.holdings.set_span(e.holding, span);
                    }
                    if let Some(office) = self.offices.get_mut(&office) {
                        office.holdings.set_span(e.holding, span);
                    }
                }
            }
            Event::HoldingCorrected(e) => self.correct_holding(e.holding, &e.after),
            Event::ModelDefined(e) => {
                self.models.insert(
                    e.model,
                    Model {
                        name: e.name.clone(),
                        arrangement: e.arrangement.clone(),
                        authorised_by: e.authorised_by.clone(),
                        adoptions: Vec::new(),
                    },
                );
            }
            Event::ModelAdopted(e) => {
                if let Some(model) = self.models.get_mut(&e.model) {
                    model.adoptions.push(e.adoption);
                }
                if let Some(unit) = self.units.get_mut(&e.unit) {
                    unit.adoptions.push(e.adoption);
                }
                self.adoptions.insert(
                    e.adoption,
                    Adoption {
                        model: e.model,
                        unit: e.unit,
                        span: Span::from(e.on),
                        basis: e.basis.clone(),
                    },
                );
            }
            Event::ModelWithdrawn(e) => {
                if let Some(adoption) = self.adoptions.get_mut(&e.adoption) {
                    adoption.span.end = Some(e.on);
                }
            }
            Event::TermOpened(e) => {
                if let Some(unit) = self.units.get_mut(&e.body) {
                    unit.terms.push(e.term);
                }
                self.terms.insert(
                    e.term,
                    Term {
                        body: e.body,
                        label: e.label.clone(),
                        start: e.start,
                        planned_end: e.planned_end,
                    },
                );
            }
            Event::Retracted(e) => self.retract(e.target),
        }
    }

    fn move_unit(&mut self, id: UnitId, parents: &[UnitId], on: Date) {
        let Some(unit) = self.units.get_mut(&id) else {
            return;
        };
        for link in &mut unit.parents {
            if link.span.end.is_none_or(|end| end > on) {
                link.span.end = Some(on);
            }
        }
        unit.parents.retain(|link| !link.span.is_empty());
        unit.parents
            .extend(parents.iter().map(|&parent| ParentLink {
                parent,
                span: Span::from(on),
            }));
        for parent in parents {
            if let Some(p) = self.units.get_mut(parent) {
                if !p.children.contains(&id) {
                    p.children.push(id);
                }
            }
        }
    }

    fn correct_holding(&mut self, id: HoldingId, after: &HoldingFacts) {
        let Some(holding) = self.holdings.get_mut(&id) else {
            return;
        };
        let (old_person, old_office) = (holding.person, holding.office);
        holding.person = after.person;
        holding.office = after.office;
        holding.start = after.start;
        holding.end = after.end;
        holding.beginning = after.beginning;
        holding.end_reason = after.end_reason;
        holding.term = after.term;
        holding.basis = after.basis.clone().map(Box::new);
        // A holding that stays with its person or office keeps its place in their list.
        let span = holding.span();
        if old_person == after.person {
            if let Some(p) = self.persons.get_mut(&old_person) {
                p.holdings.set_span(id, span);
            }
        } else {
            if let Some(p) = self.persons.get_mut(&old_person) {
                p.holdings.remove(id);
            }
            if let Some(p) = self.persons.get_mut(&after.person) {
                p.holdings.add(id, span);
            }
        }
        if old_office == after.office {
            if let Some(o) = self.offices.get_mut(&old_office) {
                o.holdings.set_span(id, span);
            }
        } else {
            if let Some(o) = self.offices.get_mut(&old_office) {
                o.holdings.remove(id);
            }
            if let Some(o) = self.offices.get_mut(&after.office) {
                o.holdings.add(id, span);
            }
        }
    }

    fn retract(&mut self, target: EntityRef) {
        self.retracted.insert(target.uuid());
        match target {
            EntityRef::Person(id) => {
                self.persons.remove(&id);
            }
            EntityRef::Unit(id) => {
                if let Some(unit) = self.units.remove(&id) {
                    for link in unit.parents {
                        if let Some(parent) = self.units.get_mut(&link.parent) {
                            parent.children.retain(|c| *c != id);
                        }
                    }
                }
            }
            EntityRef::Office(id) => {
                if let Some(office) = self.offices.remove(&id) {
                    for (_, unit) in office.placements {
                        if let Some(u) = self.units.get_mut(&unit) {
                            u.offices.retain(|o| *o != id);
                        }
                    }
                }
            }
            EntityRef::Holding(id) => {
                if let Some(holding) = self.holdings.remove(&id) {
                    if let Some(p) = self.persons.get_mut(&holding.person) {
                        p.holdings.remove(id);
                    }
                    if let Some(o) = self.offices.get_mut(&holding.office) {
                        o.holdings.remove(id);
                    }
                }
            }
            EntityRef::Model(id) => {
                self.models.remove(&id);
            }
            EntityRef::Adoption(id) => {
                if let Some(adoption) = self.adoptions.remove(&id) {
                    if let Some(m) = self.models.get_mut(&adoption.model) {
                        m.adoptions.retain(|a| *a != id);
                    }
                    if let Some(u) = self.units.get_mut(&adoption.unit) {
                        u.adoptions.retain(|a| *a != id);
                    }
                }
            }
            EntityRef::Term(id) => {
                if let Some(term) = self.terms.remove(&id) {
                    if let Some(u) = self.units.get_mut(&term.body) {
                        u.terms.retain(|t| *t != id);
                    }
                }
            }
        }
    }

    /// Whether `ancestor` is `unit` or lies above it on `day`.
    pub fn is_ancestor_or_self(&self, ancestor: UnitId, unit: UnitId, day: Date) -> bool {
        crate::irregular::is_ancestor_or_self(self, ancestor, unit, day)
    }
}
