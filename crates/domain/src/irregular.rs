//! Irregularities: facts that are real but unusual, accepted and flagged for auditors.
//!
//! The registry records decisions made elsewhere, so it must not refuse a real appointment
//! because it is odd. `decide` returns the irregularities a command brings as warnings;
//! [`irregularities`] lists all of them as of a day, for auditors.
//!
//! The rules read the registry through [`StateView`]: the domain state ([`Registry`]) is one
//! view, the bitemporal read model at any recorded instant is another, so the auditors' list
//! needs no second copy of the domain state beside the read model, and the list as the
//! registry stood at an earlier moment needs no refold of the feed.

use serde::{Deserialize, Serialize};

use crate::date::{Date, Span};
use crate::ids::{HoldingId, OfficeId, PersonId, UnitId};
use crate::model::{Arrangement, Beginning, Capacity, HoldingEnd, OfficeKind, Role, UnitKind};
use crate::state::Registry;

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

impl Irregularity {
    /// The kind's name, as the JSON of the flag and the API write it.
    pub fn kind(&self) -> &'static str {
        Kinds::NAMES[self.kind_index()]
    }

    fn kind_index(&self) -> usize {
        match self {
            Self::UncoveredConcurrency { .. } => 0,
            Self::TooManyOffices { .. } => 1,
            Self::LongVacancy { .. } => 2,
            Self::MissingBasis { .. } => 3,
            Self::EndUnknown { .. } => 4,
        }
    }
}

/// A set of kinds of irregularity: what a listing asks for. An auditor after long vacancies
/// alone should not page through millions of missing bases (and a listing that wants no kind
/// of a part of the registry skips that part).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Kinds(u8);

impl Kinds {
    /// Every kind.
    pub const ALL: Self = Self(0b1_1111);
    /// No kind: the start of a union.
    pub const NONE: Self = Self(0);
    /// The kinds' names, in the order of their bits.
    pub const NAMES: [&'static str; 5] = [
        "uncovered_concurrency",
        "too_many_offices",
        "long_vacancy",
        "missing_basis",
        "end_unknown",
    ];

    /// The kind named `name` ([`Irregularity::kind`]), if there is one.
    pub fn named(name: &str) -> Option<Self> {
        let index = Self::NAMES.iter().position(|n| *n == name)?;
        Some(Self(1 << index))
    }

    /// Both sets' kinds.
    pub fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether `flag` is of a kind in the set.
    pub fn contains(self, flag: &Irregularity) -> bool {
        self.0 & (1 << flag.kind_index()) != 0
    }

    /// The set as a number, and back.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The set of `bits`, when they name kinds only.
    pub fn from_bits(bits: u8) -> Option<Self> {
        (bits & !Self::ALL.0 == 0).then_some(Self(bits))
    }

    /// Whether a part of the listing ([`Cursor::part`]) can hold a kind of the set.
    fn in_part(self, part: u8) -> bool {
        let kinds_of_part = match part {
            0 => 0b1_1000, // missing bases, unknown ends
            1 => 0b0_0011, // uncovered combinations, too many offices
            _ => 0b0_0100, // long vacancies
        };
        self.0 & kinds_of_part != 0
    }
}

/// What the rules read of a holding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HoldingOutline {
    /// Who.
    pub person: PersonId,
    /// Which office.
    pub office: OfficeId,
    /// The days it surely covers ([`crate::state::holding_span`]).
    pub span: Span,
    /// How it began.
    pub beginning: Beginning,
    /// How its end is known.
    pub end: HoldingEnd,
    /// Whether a legal basis of its start is recorded.
    pub has_basis: bool,
}

/// What the rules read of an office.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OfficeOutline {
    /// Its kind.
    pub kind: OfficeKind,
    /// How many may hold it on a day.
    pub capacity: Capacity,
    /// Its life.
    pub life: Span,
}

/// A registry as the irregularity rules read it: its holdings, persons, offices, units and
/// adopted models, each known or not (retracted entities are not).
pub trait StateView {
    /// A holding.
    fn holding_outline(&self, id: HoldingId) -> Option<HoldingOutline>;
    /// Every holding from row `row` on, each with its row: rows are the view's own order,
    /// stable while it only grows, so that a listing can resume where a page stopped.
    fn holdings_from(
        &self,
        row: usize,
    ) -> impl Iterator<Item = (usize, HoldingId, HoldingOutline)> + '_;
    /// Every person from row `row` on, each with its row.
    fn persons_from(&self, row: usize) -> impl Iterator<Item = (usize, PersonId)> + '_;
    /// The holdings of a known person, each with the days it surely covers.
    fn person_holdings(
        &self,
        person: PersonId,
    ) -> Option<impl Iterator<Item = (HoldingId, Span)> + '_>;
    /// An office.
    fn office_outline(&self, office: OfficeId) -> Option<OfficeOutline>;
    /// Every office from row `row` on, each with its row.
    fn offices_from(&self, row: usize) -> impl Iterator<Item = (usize, OfficeId)> + '_;
    /// The holdings of an office, each with the days it surely covers.
    fn office_holdings(&self, office: OfficeId) -> impl Iterator<Item = (HoldingId, Span)> + '_;
    /// The unit an office belongs to on `day`: the placement begun latest by then, else its
    /// first (`None` for an office not known).
    fn office_unit_on(&self, office: OfficeId, day: Date) -> Option<UnitId>;
    /// The kind of a known unit.
    fn unit_kind(&self, unit: UnitId) -> Option<UnitKind>;
    /// The parents of a unit on `day`.
    fn parents_on(&self, unit: UnitId, day: Date) -> impl Iterator<Item = UnitId> + '_;
    /// The arrangements of the known models a unit has adopted, in force on `day`.
    fn arrangements_on(&self, unit: UnitId, day: Date) -> impl Iterator<Item = &Arrangement> + '_;
}

/// The role of an office of `kind` on `day`, and the unit it is in.
fn role_on(
    view: &impl StateView,
    office: OfficeId,
    kind: OfficeKind,
    day: Date,
) -> Option<(Role, UnitId)> {
    let unit = view.office_unit_on(office, day)?;
    Some((
        Role {
            unit_kind: view.unit_kind(unit)?,
            office_kind: kind,
        },
        unit,
    ))
}

/// Whether `ancestor` is `unit` or lies above it on `day`.
pub fn is_ancestor_or_self(
    view: &impl StateView,
    ancestor: UnitId,
    unit: UnitId,
    day: Date,
) -> bool {
    any_above_or_at(view, unit, day, |current| current == ancestor)
}

/// Whether `hit` holds for `unit` or a unit above it on `day`.
fn any_above_or_at(
    view: &impl StateView,
    unit: UnitId,
    day: Date,
    hit: impl Fn(UnitId) -> bool,
) -> bool {
    let mut stack = vec![unit];
    let mut seen = std::collections::HashSet::new();
    while let Some(current) = stack.pop() {
        if hit(current) {
            return true;
        }
        if seen.insert(current) {
            stack.extend(view.parents_on(current, day));
        }
    }
    false
}

/// Whether an adopted model covers holding the two roles together on `day`: a
/// concurrent-offices model naming both roles, adopted on that day by a unit that is an
/// ancestor (or self) of both offices' units.
pub fn combination_covered(
    view: &impl StateView,
    a: (Role, UnitId),
    b: (Role, UnitId),
    day: Date,
) -> bool {
    let mut stack = vec![a.1];
    let mut seen = std::collections::HashSet::new();
    while let Some(current) = stack.pop() {
        if !seen.insert(current) || view.unit_kind(current).is_none() {
            continue;
        }
        for arrangement in view.arrangements_on(current, day) {
            let names_both = match arrangement {
                Arrangement::ConcurrentOffices { roles } => {
                    roles.contains(&a.0) && roles.contains(&b.0)
                }
                Arrangement::SharedUnit { .. } => false,
            };
            if names_both && is_ancestor_or_self(view, current, b.1, day) {
                return true;
            }
        }
        stack.extend(view.parents_on(current, day));
    }
    false
}

/// The irregularities a holding `id` of `person` in `office` over `span`, begun as
/// `beginning`, brings with the person's other holdings (`id` itself excluded): each uncovered
/// combination as `(other, id)`, and too many offices at once on the earliest such day of
/// `span`.
pub(crate) fn concurrency_irregularities(
    view: &impl StateView,
    id: HoldingId,
    person: PersonId,
    office: OfficeId,
    span: Span,
    beginning: Beginning,
    policy: &Policy,
) -> Vec<Irregularity> {
    let Some(held) = view.person_holdings(person) else {
        return Vec::new();
    };
    let holding = Candidate {
        id,
        person,
        office,
        span,
        beginning,
    };
    concurrency_among(view, held, &holding, policy)
}

/// A holding the concurrency rules check against the person's others.
struct Candidate {
    id: HoldingId,
    person: PersonId,
    office: OfficeId,
    span: Span,
    beginning: Beginning,
}

/// [`concurrency_irregularities`] of `holding` among the person's holdings `held`, listed once
/// by the caller (a listing checks every holding of a person against the same list).
fn concurrency_among(
    view: &impl StateView,
    held: impl Iterator<Item = (HoldingId, Span)>,
    holding: &Candidate,
    policy: &Policy,
) -> Vec<Irregularity> {
    let Candidate {
        id,
        person,
        office,
        span,
        beginning,
    } = *holding;
    let mut found = Vec::new();
    let Some(o) = view.office_outline(office) else {
        return found;
    };
    let others: Vec<(HoldingId, HoldingOutline, Span)> = held
        .filter(|(h, s)| *h != id && s.overlaps(span))
        .filter_map(|(h, s)| Some((h, view.holding_outline(h)?, s)))
        .collect();
    if !o.kind.is_membership() {
        for (other_id, other, other_span) in &others {
            let Some(other_office) = view.office_outline(other.office) else {
                continue;
            };
            if other_office.kind.is_membership() {
                continue;
            }
            let Some(day) = span.intersection(*other_span).map(|s| s.start) else {
                continue;
            };
            let (Some(mine), Some(theirs)) = (
                role_on(view, office, o.kind, day),
                role_on(view, other.office, other_office.kind, day),
            ) else {
                continue;
            };
            // Offices in one unit, or one carried ex officio by the other, are not a
            // combination that needs a model.
            let ex_officio = |b: Beginning, cause: HoldingId| b == Beginning::ExOfficio { cause };
            if mine.1 == theirs.1
                || ex_officio(other.beginning, id)
                || ex_officio(beginning, *other_id)
            {
                continue;
            }
            if !combination_covered(view, mine, theirs, day) {
                found.push(Irregularity::UncoveredConcurrency {
                    person,
                    holdings: (*other_id, id),
                    on: day,
                });
            }
        }
    }
    // The most holdings at once: count at each start inside the span, earliest first.
    let mut days: Vec<Date> = others
        .iter()
        .map(|(_, _, s)| s.start.max(span.start))
        .collect();
    days.push(span.start);
    days.sort_unstable();
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

/// The vacancy that ends on `day` in a limited office: the days since the last holder (other
/// than `except`) left, or since the office was established. `None` when it was not vacant on
/// the day before `day`, or the office is unlimited or not known.
pub(crate) fn vacancy_before(
    view: &impl StateView,
    office: OfficeId,
    except: HoldingId,
    day: Date,
) -> Option<Span> {
    let outline = view.office_outline(office)?;
    outline.capacity.limit()?;
    let spans = view
        .office_holdings(office)
        .filter(|(h, _)| *h != except)
        .map(|(_, span)| span);
    vacancy_ending(outline.life.start, spans, day)
}

/// The vacancy that ends on `day` in an office established on `established` whose holdings
/// cover `spans`, every holding looked at.
fn vacancy_ending(established: Date, spans: impl Iterator<Item = Span>, day: Date) -> Option<Span> {
    let mut last_end = established;
    for span in spans {
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

/// Where a listing of irregularities stands: which part (holdings, then persons, then offices)
/// and the row of the view to go on from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    /// The kinds listed: a page goes on from where the one before stopped only for the same.
    pub kinds: Kinds,
    /// 0: holdings (missing bases, unknown ends), 1: persons (uncovered combinations, too many
    /// offices), 2: offices (long vacancies).
    pub part: u8,
    /// The first row of the part not listed in full yet.
    pub row: usize,
    /// How many of that row's irregularities were listed already.
    pub skip: usize,
}

impl Cursor {
    /// The start of a listing of every kind.
    pub const START: Self = Self::start(Kinds::ALL);

    /// The start of a listing of `kinds`.
    pub const fn start(kinds: Kinds) -> Self {
        Self {
            kinds,
            part: 0,
            row: 0,
            skip: 0,
        }
    }

    const PARTS: u8 = 3;
}

/// Every irregularity of the registry `view` shows as of the day `as_of`, in a stable order
/// (see [`irregularities_page`]).
pub fn irregularities(view: &impl StateView, policy: &Policy, as_of: Date) -> Vec<Irregularity> {
    let (mut found, _) = irregularities_page(
        view,
        policy,
        as_of,
        Cursor::START,
        usize::MAX,
        usize::MAX,
        None,
    );
    found.sort_by_key(|i| format!("{i:?}"));
    found
}

/// One page of the irregularities `view` shows as of the day `as_of`, from `from`: at most
/// `size` of them and at most `rows` rows of the view looked at, so that a page of a national
/// registry is computed in a bounded time. Returns where the next page starts (`None` at the end; a page may be
/// empty before the end when its rows held none).
///
/// Only flags of the cursor's kinds are listed (and counted against `size`); a part of the
/// registry that can hold none of them is not looked at.
///
/// Whatever order the view lists holdings in, each uncovered combination is listed once, as
/// `(lower id, higher id)`, and each person held too many offices at once on the earliest day
/// they did.
///
/// As of a day means every flag whose first day is that day or earlier, ended or not (a
/// concurrency that ended before it is listed, one that begins after it is not): the day two
/// holdings began to overlap, the first day of too many offices, a holding's first surely held
/// day for its own flags; vacancies are counted up to it.
///
/// With `within`, only the flags [`Jurisdiction::holds`] are listed (and counted).
pub fn irregularities_page(
    view: &impl StateView,
    policy: &Policy,
    as_of: Date,
    from: Cursor,
    size: usize,
    rows: usize,
    within: Option<&Jurisdiction>,
) -> (Vec<Irregularity>, Option<Cursor>) {
    let kept = |mut flags: Vec<Irregularity>| {
        // As of a day: the flags concerning it or an earlier day, not those that begin later
        // (a holding's own flags are kept or not by `holding_flags`, which has its outline).
        flags.retain(|flag| match flag {
            Irregularity::UncoveredConcurrency { on, .. }
            | Irregularity::TooManyOffices { on, .. } => *on <= as_of,
            _ => true,
        });
        if let Some(jurisdiction) = within {
            flags.retain(|flag| jurisdiction.holds(view, flag));
        }
        flags
    };
    let mut page = Page {
        found: Vec::new(),
        size: size.max(1),
        rows_left: rows.max(1),
        kinds: from.kinds,
    };
    for part in (from.part..Cursor::PARTS).filter(|part| from.kinds.in_part(*part)) {
        let (start, skip) = if part == from.part {
            (from.row, from.skip)
        } else {
            (0, 0)
        };
        let stopped = match part {
            0 => page.fill(
                part,
                (start, skip),
                view.holdings_from(start)
                    .map(|(row, id, h)| (row, kept(holding_flags(id, &h, as_of)))),
            ),
            1 => page.fill(
                part,
                (start, skip),
                view.persons_from(start)
                    .map(|(row, person)| (row, kept(person_flags(view, person, policy)))),
            ),
            _ => page.fill(
                part,
                (start, skip),
                view.offices_from(start)
                    .map(|(row, office)| (row, kept(office_flags(view, office, policy, as_of)))),
            ),
        };
        if let Some(next) = stopped {
            return (page.found, Some(next));
        }
    }
    (page.found, None)
}

/// The units an auditor asks about. A flag is within them when one of the offices it is about
/// sat, on the day the flag concerns, in one of the units or under one (through the parents of
/// that day): a holding's office on the holding's first day, a vacant office on the first
/// vacant day, the offices of an uncovered pair or of too many offices on the day they
/// overlapped. A unit that took over others (a merger) names itself and those it continues,
/// so flags from before the merger are found under it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Jurisdiction {
    units: std::collections::HashSet<UnitId>,
}

impl Jurisdiction {
    /// The units and what lies under them.
    pub fn new(units: impl IntoIterator<Item = UnitId>) -> Self {
        Self {
            units: units.into_iter().collect(),
        }
    }

    /// Whether `flag` is about an office in or under one of the units, as `view` shows them.
    pub fn holds(&self, view: &impl StateView, flag: &Irregularity) -> bool {
        let outline = |holding: HoldingId| view.holding_outline(holding);
        let mut places: Vec<(OfficeId, Date)> = Vec::new();
        match flag {
            Irregularity::UncoveredConcurrency {
                holdings: (a, b),
                on,
                ..
            } => places.extend(
                [*a, *b]
                    .into_iter()
                    .filter_map(outline)
                    .map(|h| (h.office, *on)),
            ),
            Irregularity::TooManyOffices { person, on, .. } => {
                if let Some(held) = view.person_holdings(*person) {
                    places.extend(
                        held.filter(|(_, span)| span.contains(*on))
                            .filter_map(|(holding, _)| outline(holding))
                            .map(|h| (h.office, *on)),
                    );
                }
            }
            Irregularity::LongVacancy { office, vacant, .. } => {
                places.push((*office, vacant.start))
            }
            Irregularity::MissingBasis { holding } | Irregularity::EndUnknown { holding } => {
                places.extend(outline(*holding).map(|h| (h.office, h.span.start)));
            }
        }
        places.into_iter().any(|(office, day)| {
            view.office_unit_on(office, day)
                .is_some_and(|unit| any_above_or_at(view, unit, day, |u| self.units.contains(&u)))
        })
    }
}

/// A page being filled, row by row.
struct Page {
    found: Vec<Irregularity>,
    size: usize,
    rows_left: usize,
    kinds: Kinds,
}

impl Page {
    /// Adds the flags of each row of `part` until the page is full (less the first `given` of
    /// row `from`, listed by the page before, if that row is still there); where the next page
    /// starts if it is.
    fn fill(
        &mut self,
        part: u8,
        (from, given): (usize, usize),
        rows: impl Iterator<Item = (usize, Vec<Irregularity>)>,
    ) -> Option<Cursor> {
        for (row, mut flags) in rows {
            if self.kinds != Kinds::ALL {
                flags.retain(|flag| self.kinds.contains(flag));
            }
            let skip = if row == from {
                given.min(flags.len())
            } else {
                0
            };
            let flags = &flags[skip..];
            let room = self.size - self.found.len();
            if flags.len() > room {
                self.found.extend_from_slice(&flags[..room]);
                return Some(Cursor {
                    kinds: self.kinds,
                    part,
                    row,
                    skip: skip + room,
                });
            }
            self.found.extend_from_slice(flags);
            self.rows_left -= 1;
            if self.found.len() == self.size || self.rows_left == 0 {
                return Some(Cursor {
                    kinds: self.kinds,
                    part,
                    row: row + 1,
                    skip: 0,
                });
            }
        }
        None
    }
}

/// The flags of a holding that began (surely held) on `as_of` or earlier.
/// The irregularities of one office as of `as_of` (its long vacancies), as the registry-wide
/// listing finds them: for a page about the office.
pub fn office_irregularities(
    view: &impl StateView,
    office: OfficeId,
    policy: &Policy,
    as_of: Date,
) -> Vec<Irregularity> {
    office_flags(view, office, policy, as_of)
}

/// The irregularities of one person as of `as_of` (concurrencies no pilot model covers, too
/// many offices at once), as the registry-wide listing finds them: for a page about the person.
pub fn person_irregularities(
    view: &impl StateView,
    person: PersonId,
    policy: &Policy,
    as_of: Date,
) -> Vec<Irregularity> {
    let mut found = person_flags(view, person, policy);
    found.retain(|flag| match flag {
        Irregularity::UncoveredConcurrency { on, .. } | Irregularity::TooManyOffices { on, .. } => {
            *on <= as_of
        }
        _ => true,
    });
    found
}

fn holding_flags(id: HoldingId, holding: &HoldingOutline, as_of: Date) -> Vec<Irregularity> {
    let mut found = Vec::new();
    if holding.span.start > as_of {
        return found;
    }
    if !holding.has_basis {
        found.push(Irregularity::MissingBasis { holding: id });
    }
    if holding.end == HoldingEnd::Unknown {
        found.push(Irregularity::EndUnknown { holding: id });
    }
    found
}

fn person_flags(view: &impl StateView, person: PersonId, policy: &Policy) -> Vec<Irregularity> {
    let mut found = Vec::new();
    let Some(held) = view.person_holdings(person) else {
        return found;
    };
    let held: Vec<(HoldingId, Span)> = held.collect();
    let mut too_many: Option<(Date, Irregularity)> = None;
    for &(id, _) in &held {
        let Some(h) = view.holding_outline(id) else {
            continue;
        };
        let holding = Candidate {
            id,
            person,
            office: h.office,
            span: h.span,
            beginning: h.beginning,
        };
        for irregularity in concurrency_among(view, held.iter().copied(), &holding, policy) {
            match irregularity {
                // Each pair is found from both of its holdings: listed from the higher.
                Irregularity::UncoveredConcurrency {
                    holdings: (other, _),
                    ..
                } if other < id => found.push(irregularity),
                Irregularity::TooManyOffices { on, .. }
                    if too_many.as_ref().is_none_or(|(first, _)| on < *first) =>
                {
                    too_many = Some((on, irregularity));
                }
                _ => {}
            }
        }
    }
    found.extend(too_many.map(|(_, irregularity)| irregularity));
    found
}

fn office_flags(
    view: &impl StateView,
    office: OfficeId,
    policy: &Policy,
    as_of: Date,
) -> Vec<Irregularity> {
    let Some(outline) = view.office_outline(office) else {
        return Vec::new();
    };
    if outline.capacity.limit().is_none() {
        return Vec::new();
    }
    let end_of_watch = outline.life.end.map_or(as_of, |end| end.min(as_of));
    let spans: Vec<Span> = view.office_holdings(office).map(|(_, span)| span).collect();
    vacancies(outline.life.start, spans, end_of_watch)
        .into_iter()
        .filter_map(|vacant| {
            let days = vacant.start.days_until(vacant.end?);
            (days > policy.max_vacancy_days).then_some(Irregularity::LongVacancy {
                office,
                vacant,
                days,
            })
        })
        .collect()
}

/// The vacancies of a limited office established on `established` whose holdings cover
/// `spans`, up to `end_of_watch`: each span without a holder that ends on a holding's start
/// (or on `end_of_watch`), as [`vacancy_before`] finds them day by day, in one sweep over the
/// holdings sorted by start (an office with thousands of holdings is listed in linear time,
/// not quadratic).
fn vacancies(established: Date, mut spans: Vec<Span>, end_of_watch: Date) -> Vec<Span> {
    spans.retain(|s| !s.is_empty());
    spans.sort_unstable_by_key(|s| s.start);
    let mut days: Vec<Date> = spans.iter().map(|s| s.start).collect();
    days.push(end_of_watch);
    days.sort_unstable();
    days.dedup();
    let mut found = Vec::new();
    // The latest end of the holdings begun before the day: `Some(None)` once one never ends.
    let mut latest_end: Option<Option<Date>> = None;
    let mut begun = spans.iter().peekable();
    for day in days.into_iter().filter(|d| *d <= end_of_watch) {
        while let Some(span) = begun.next_if(|s| s.start < day) {
            latest_end = Some(match (latest_end, span.end) {
                (Some(None), _) | (_, None) => None,
                (Some(Some(a)), Some(b)) => Some(a.max(b)),
                (None, Some(b)) => Some(b),
            });
        }
        let last_end = match latest_end {
            Some(None) => continue,
            Some(Some(end)) if end >= day => continue,
            Some(Some(end)) => established.max(end),
            None => established,
        };
        if last_end < day {
            found.push(Span::between(last_end, day));
        }
    }
    found
}

impl Registry {
    /// Whether an adopted model covers holding the two roles together on `day` (see
    /// [`combination_covered`]).
    pub fn combination_covered(&self, a: (Role, UnitId), b: (Role, UnitId), day: Date) -> bool {
        combination_covered(self, a, b, day)
    }

    /// Every irregularity in the registry, with vacancies counted up to `as_of` (see
    /// [`irregularities`]).
    pub fn irregularities(&self, policy: &Policy, as_of: Date) -> Vec<Irregularity> {
        irregularities(self, policy, as_of)
    }
}

fn outline(h: &crate::state::Holding) -> HoldingOutline {
    HoldingOutline {
        person: h.person,
        office: h.office,
        span: h.span(),
        beginning: h.beginning,
        end: h.end,
        has_basis: h.basis.is_some(),
    }
}

/// The domain state is the view the decisions read.
impl StateView for Registry {
    fn holding_outline(&self, id: HoldingId) -> Option<HoldingOutline> {
        self.holdings.get(&id).map(outline)
    }

    fn holdings_from(
        &self,
        row: usize,
    ) -> impl Iterator<Item = (usize, HoldingId, HoldingOutline)> + '_ {
        self.holdings
            .iter()
            .enumerate()
            .skip(row)
            .map(|(row, (id, h))| (row, *id, outline(h)))
    }

    fn persons_from(&self, row: usize) -> impl Iterator<Item = (usize, PersonId)> + '_ {
        self.persons.keys().copied().enumerate().skip(row)
    }

    fn person_holdings(
        &self,
        person: PersonId,
    ) -> Option<impl Iterator<Item = (HoldingId, Span)> + '_> {
        Some(self.persons.get(&person)?.holdings.spans())
    }

    fn office_outline(&self, office: OfficeId) -> Option<OfficeOutline> {
        self.offices.get(&office).map(|o| OfficeOutline {
            kind: o.kind,
            capacity: o.capacity,
            life: o.life,
        })
    }

    fn offices_from(&self, row: usize) -> impl Iterator<Item = (usize, OfficeId)> + '_ {
        self.offices.keys().copied().enumerate().skip(row)
    }

    fn office_holdings(&self, office: OfficeId) -> impl Iterator<Item = (HoldingId, Span)> + '_ {
        self.offices
            .get(&office)
            .into_iter()
            .flat_map(|o| o.holdings.spans())
    }

    fn office_unit_on(&self, office: OfficeId, day: Date) -> Option<UnitId> {
        Some(self.offices.get(&office)?.unit_on(day))
    }

    fn unit_kind(&self, unit: UnitId) -> Option<UnitKind> {
        self.units.get(&unit).map(|u| u.kind)
    }

    fn parents_on(&self, unit: UnitId, day: Date) -> impl Iterator<Item = UnitId> + '_ {
        self.units
            .get(&unit)
            .into_iter()
            .flat_map(move |u| u.parents_on(day))
    }

    fn arrangements_on(&self, unit: UnitId, day: Date) -> impl Iterator<Item = &Arrangement> + '_ {
        self.units
            .get(&unit)
            .into_iter()
            .flat_map(|u| u.adoptions.iter())
            .filter_map(move |a| {
                let adoption = self.adoptions.get(a)?;
                if !adoption.span.contains(day) {
                    return None;
                }
                Some(&self.models.get(&adoption.model)?.arrangement)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn each_kind_is_named_as_its_json_tag_and_is_in_its_own_set_only() {
        let (holding, person, office) = (HoldingId::new(), PersonId::new(), OfficeId::new());
        let on = day(0);
        let flags = [
            Irregularity::UncoveredConcurrency {
                person,
                holdings: (holding, HoldingId::new()),
                on,
            },
            Irregularity::TooManyOffices {
                person,
                count: 7,
                on,
            },
            Irregularity::LongVacancy {
                office,
                vacant: Span::from(on),
                days: 400,
            },
            Irregularity::MissingBasis { holding },
            Irregularity::EndUnknown { holding },
        ];
        for flag in &flags {
            let json = serde_json::to_value(flag).unwrap_or_default();
            assert_eq!(json["kind"], flag.kind(), "{flag:?}");
            let own = Kinds::named(flag.kind()).unwrap_or(Kinds::NONE);
            for other in &flags {
                assert_eq!(own.contains(other), other.kind() == flag.kind());
            }
            assert!(Kinds::ALL.contains(flag) && !Kinds::NONE.contains(flag));
        }
        assert_eq!(Kinds::named("late_lunch"), None);
        assert_eq!(Kinds::from_bits(Kinds::ALL.bits() + 1), None);
    }

    fn day(n: i32) -> Date {
        Date::from_julian_day(2_450_000 + n).unwrap_or_else(|| unreachable!())
    }

    proptest! {
        #[test]
        fn the_sweep_finds_the_vacancies_found_day_by_day(
            raw in proptest::collection::vec((0..400i32, proptest::option::of(0..200i32)), 0..12),
            watch in 0..500i32,
        ) {
            let established = day(0);
            let spans: Vec<Span> = raw
                .iter()
                .map(|(start, len)| Span {
                    start: day(*start),
                    end: len.map(|l| day(start + l)),
                })
                .collect();
            let end_of_watch = day(watch);
            let mut days: Vec<Date> = spans
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| s.start)
                .chain([end_of_watch])
                .filter(|d| *d <= end_of_watch)
                .collect();
            days.sort_unstable();
            days.dedup();
            let slow: Vec<Span> = days
                .into_iter()
                .filter_map(|d| vacancy_ending(established, spans.iter().copied(), d))
                .collect();
            prop_assert_eq!(vacancies(established, spans, end_of_watch), slow);
        }
    }
}
