//! Differential test: the indexed, bitemporal read models and a naive reference (replay the
//! events recorded up to the instant into the domain's state, then scan it linearly) give the
//! same answers, on many random registries and random queries: holders, offices of a person,
//! units on a date, lineage and coverage, now and as known at earlier instants (so corrections,
//! retractions and the merger wave are all exercised).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashSet;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use registry_domain::*;
use registry_projections::*;
use registry_testkit::{generate, Config, Generated, RecordedFact};

/// The naive reference: the domain's own fold of the events recorded up to an instant.
fn registry_at(facts: &[RecordedFact], known_at: Option<Instant>) -> Registry {
    Registry::from_events(
        facts
            .iter()
            .filter(|f| known_at.is_none_or(|t| f.recorded_at <= t))
            .map(|f| &f.event),
    )
}

type Held = (
    HoldingId,
    PersonId,
    OfficeId,
    PartialDate,
    HoldingEnd,
    Beginning,
    Option<EndReason>,
);

fn held(views: Vec<HoldingView>) -> Vec<Held> {
    views
        .into_iter()
        .map(|h| {
            (
                h.holding,
                h.person,
                h.office,
                h.start,
                h.end,
                h.beginning,
                h.end_reason,
            )
        })
        .collect()
}

/// The holdings `keep` selects, in the order of their ids.
fn reference_held(r: &Registry, keep: impl Fn(&state::Holding) -> bool) -> Vec<Held> {
    let mut found: Vec<Held> = r
        .holdings()
        .filter(|(_, h)| keep(h))
        .map(|(id, h)| {
            (
                id,
                h.person,
                h.office,
                h.start,
                h.end,
                h.beginning,
                h.end_reason,
            )
        })
        .collect();
    found.sort_by_key(|h| h.0);
    found
}

fn reference_holdings(r: &Registry, keep: impl Fn(&state::Holding) -> bool, on: Date) -> Vec<Held> {
    reference_held(r, |h| keep(h) && h.span().contains(on))
}

/// The holdings whose imprecise dates may, but need not, cover `on`: the widest reading
/// (earliest start, latest end; an unknown end unbounded) covers it, the narrowest does not.
fn reference_possible(r: &Registry, keep: impl Fn(&state::Holding) -> bool, on: Date) -> Vec<Held> {
    reference_held(r, |h| {
        let after_start = h.start.earliest() <= on;
        let before_end = match h.end {
            HoldingEnd::Open | HoldingEnd::Unknown => true,
            HoldingEnd::On(end) => on < end.latest(),
        };
        keep(h) && !h.span().contains(on) && after_start && before_end
    })
}

fn reference_unit(r: &Registry, unit: UnitId, on: Date) -> Option<UnitView> {
    let u = r.unit(unit)?;
    let mut parents: Vec<UnitId> = u.parents_on(on).collect();
    parents.sort_unstable();
    parents.dedup();
    let mut children: Vec<UnitId> = r
        .units()
        .filter(|(_, c)| c.parents_on(on).any(|p| p == unit))
        .map(|(id, _)| id)
        .collect();
    children.sort_unstable();
    let mut offices: Vec<OfficeId> = r
        .offices()
        .filter(|(_, o)| o.unit_on(on) == unit && o.life.contains(on))
        .map(|(id, _)| id)
        .collect();
    offices.sort_unstable();
    Some(UnitView {
        unit,
        kind: u.kind,
        level: u.level,
        life: u.life,
        name: u.name_on(on).to_owned(),
        parents,
        children,
        offices,
    })
}

fn reference_lineage(r: &Registry, unit: UnitId) -> Lineage {
    let walk = |forward: bool| {
        let mut out = Vec::new();
        let mut seen = HashSet::from([unit]);
        let mut stack = vec![unit];
        while let Some(u) = stack.pop() {
            let Some(row) = r.unit(u) else { continue };
            let links: Vec<(UnitId, Date)> = if forward {
                row.successors
                    .iter()
                    .map(|s| (*s, row.life.end.unwrap()))
                    .collect()
            } else {
                row.predecessors
                    .iter()
                    .map(|p| (*p, r.unit(*p).unwrap().life.end.unwrap()))
                    .collect()
            };
            for (next, day) in links {
                if seen.insert(next) {
                    out.push((next, day));
                    stack.push(next);
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

/// Whether `unit` is one of the bodies of the area `area` (of level `level`) on `on`: not an
/// area, of the area's level, and placed in the area or in another such body.
fn is_own_body(r: &Registry, area: UnitId, level: Level, unit: UnitId, on: Date) -> bool {
    let Some(u) = r.unit(unit) else { return false };
    u.kind != UnitKind::AdministrativeArea
        && u.level == level
        && u.parents_on(on)
            .any(|p| p == area || is_own_body(r, area, level, p, on))
}

fn reference_coverage(
    r: &Registry,
    model: ModelId,
    jurisdiction: UnitId,
    level: Level,
    on: Date,
) -> Option<Coverage> {
    let m = r.model(model)?;
    r.unit(jurisdiction)?;
    let mut coverage = Coverage::default();
    for (id, u) in r.units() {
        if u.level != level
            || u.kind != UnitKind::AdministrativeArea
            || !u.life.contains(on)
            || !r.is_ancestor_or_self(jurisdiction, id, on)
        {
            continue;
        }
        coverage.units += 1;
        if r.adoptions().any(|(_, a)| {
            a.model == model && a.span.contains(on) && r.is_ancestor_or_self(a.unit, id, on)
        }) {
            coverage.declared.push(id);
        }
        // The plain definition: the area's own bodies (of its level, placed in it or in one of
        // them, never through another area) hold the offices as the model arranges.
        let own = |unit: UnitId| is_own_body(r, id, u.level, unit, on);
        // Possibly: holdings whose widest reading covers the day count too.
        let observed_with = |possibly: bool| match &m.arrangement {
            Arrangement::ConcurrentOffices { roles } => {
                let holders = |role: &Role| -> HashSet<PersonId> {
                    r.holdings()
                        .filter(|(_, h)| {
                            h.span().contains(on)
                                || possibly
                                    && state::holding_widest_span(h.start, h.end).contains(on)
                        })
                        .filter(|(_, h)| {
                            let office = r.office(h.office).unwrap();
                            let unit = office.unit_on(on);
                            office.kind == role.office_kind
                                && r.unit(unit).is_some_and(|u| u.kind == role.unit_kind)
                                && own(unit)
                        })
                        .map(|(_, h)| h.person)
                        .collect()
                };
                let mut common = holders(&roles[0]);
                for role in &roles[1..] {
                    let next = holders(role);
                    common.retain(|p| next.contains(p));
                }
                !common.is_empty()
            }
            Arrangement::SharedUnit { unit_kind, .. } => r
                .units()
                .any(|(sid, s)| s.kind == *unit_kind && own(sid) && s.parents_on(on).count() >= 2),
        };
        if observed_with(false) {
            coverage.observed.push(id);
        } else if observed_with(true) {
            coverage.uncertain.push(id);
        }
    }
    coverage.declared.sort_unstable();
    coverage.observed.sort_unstable();
    coverage.uncertain.sort_unstable();
    Some(coverage)
}

fn random_date(rng: &mut SmallRng) -> Date {
    Date::from_ymd(
        rng.random_range(2004..2027),
        rng.random_range(1..13),
        rng.random_range(1..29),
    )
    .unwrap()
}

/// The generated feed with every ninth holding's start known only to its month, then two open
/// holdings ended on days not known (the generator knows every day), so that the read models
/// meet imprecise dates (possibly held, uncertain coverage) and the auditors' list such ends.
/// Both sides fold the same feed and neither checks it, so a start made imprecise need not
/// satisfy every rule in its widest reading.
fn with_unknown_ends(generated: &Generated) -> Vec<RecordedFact> {
    let mut facts = generated.facts.clone();
    let mut started = 0usize;
    for fact in &mut facts {
        if let Event::HoldingStarted(e) = &mut fact.event {
            started += 1;
            if started.is_multiple_of(9) {
                let day = e.start.earliest();
                e.start = PartialDate::month(day.year(), day.month()).unwrap();
            }
        }
    }
    let mut open: Vec<HoldingId> = generated
        .registry
        .holdings()
        .filter(|(_, h)| h.end == HoldingEnd::Open)
        .map(|(id, _)| id)
        .collect();
    open.sort_unstable();
    let last = facts.last().map_or(0, |f| f.recorded_at);
    for (i, holding) in open.into_iter().take(2).enumerate() {
        facts.push(RecordedFact {
            recorded_at: last + 1 + i as i64,
            event: Event::HoldingEnded(event::HoldingEnded {
                holding,
                end: HoldingEnd::Unknown,
                reason: EndReason::Retirement,
                basis: None,
            }),
        });
    }
    facts
}

#[test]
fn indexed_read_models_agree_with_a_naive_replay() {
    let registries: u64 = std::env::var("REGISTRY_DIFFERENTIAL_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    let mut compared = 0usize;
    let mut vacancies = 0usize;
    let mut kinds_listed = Vec::new();
    let mut observed_above_communes = [0usize; 2];
    let mut possibly = 0usize;
    let mut uncertain = 0usize;
    let mut endings = std::collections::BTreeSet::new();
    // Listings within a unit that kept every flag, some, none.
    let mut within_cut = [0usize; 3];
    for seed in 0..registries {
        let generated = generate(&Config::tiny(seed));
        let facts = &with_unknown_ends(&generated);
        // Three copies: coverage from the plain definitions (never refreshed), from fresh
        // precomputed timelines, and from timelines refreshed part way (partly stale).
        let mut projection = Projection::new();
        let mut partly = Projection::new();
        for (i, fact) in facts.iter().enumerate() {
            projection.apply(fact.recorded_at, &fact.event);
            partly.apply(fact.recorded_at, &fact.event);
            // Refreshed part way, and again just before the late corrections and retractions at
            // the end of the feed, which then leave some communes stale.
            if i == facts.len() * 7 / 10 || i + 30 == facts.len() {
                partly.refresh_coverage();
            }
        }
        let mut refreshed = projection.clone();
        refreshed.refresh_coverage();
        let mut rng = SmallRng::seed_from_u64(seed ^ 0xD1FF);
        let units: Vec<UnitId> = generated
            .registry
            .units()
            .map(|(id, _)| id)
            .chain(generated.catalogue.communes.iter().copied())
            .collect();
        let offices = &generated.catalogue.offices;
        let persons = &generated.catalogue.persons;
        let models: Vec<ModelId> = generated.registry.models().map(|(id, _)| id).collect();
        // Every unit's lineage now: mergers, absorptions, splits and dissolutions of 2025.
        let now = registry_at(facts, None);
        for unit in &units {
            assert_eq!(
                projection.lineage(*unit, None),
                reference_lineage(&now, *unit),
                "lineage of {unit}"
            );
        }
        for fact in facts {
            if let Event::UnitsReorganised(e) = &fact.event {
                endings.insert(format!("{:?}", e.ending));
            }
        }
        // Days inside the months of the starts made imprecise: possibly held there, and
        // coverage uncertain where such a holding is one role of a model.
        let imprecise = facts.iter().filter_map(|f| match &f.event {
            Event::HoldingStarted(e) if e.start.precision() == Precision::Month => {
                Some((e.office, e.start.earliest().next_day().next_day()))
            }
            _ => None,
        });
        for (office, on) in imprecise.take(8) {
            assert_eq!(
                held(projection.possible_holders(office, on, None)),
                reference_possible(&now, |h| h.office == office, on),
                "possible holders of {office} on {on}"
            );
            let province = generated.catalogue.provinces[0];
            for model in &models {
                let expected = reference_coverage(&now, *model, province, Level::Commune, on);
                uncertain += expected.as_ref().map_or(0, |c| c.uncertain.len());
                for (copy, p) in [
                    ("plain", &projection),
                    ("indexed", &refreshed),
                    ("partly", &partly),
                ] {
                    assert_eq!(
                        p.coverage(*model, province, Level::Commune, on, None).ok(),
                        expected,
                        "{copy} coverage of {model} on {on}, inside an imprecise start"
                    );
                }
            }
        }
        for _ in 0..6 {
            // An instant in the history (or now), and the reference as known then.
            let known_at = if rng.random_bool(0.3) {
                None
            } else {
                Some(facts[rng.random_range(0..facts.len())].recorded_at)
            };
            let reference = registry_at(facts, known_at);
            // The auditors' list: the domain's rules over the read model as known then, and
            // over the domain's own state folded from the events recorded up to then.
            let as_of = random_date(&mut rng);
            let policy = Policy {
                max_concurrent_holdings: rng.random_range(1..4),
                max_vacancy_days: rng.random_range(30..400),
            };
            let listed = projection.irregularities(&policy, as_of, known_at);
            assert_eq!(
                listed,
                reference.irregularities(&policy, as_of),
                "irregularities as of {as_of} known at {known_at:?} under {policy:?}"
            );
            // The same list a page at a time, small pages looking at few rows each, of every
            // kind or of some (the flags of those kinds, in the same order).
            let (size, rows) = (rng.random_range(1..20), rng.random_range(1..50));
            let kinds = if rng.random_bool(0.5) {
                irregular::Kinds::ALL
            } else {
                irregular::Kinds::from_bits(rng.random_range(1..32)).unwrap()
            };
            // Half the time only the flags within a unit's jurisdiction, which the reference
            // decides over its own state with its own lineage.
            let unit = units[rng.random_range(0..units.len())];
            let within = rng
                .random_bool(0.5)
                .then(|| projection.jurisdiction(unit, known_at))
                .flatten();
            let reference_within = within.as_ref().map(|_| {
                let before = reference_lineage(&reference, unit).predecessors;
                irregular::Jurisdiction::new(
                    std::iter::once(unit).chain(before.into_iter().map(|(u, _)| u)),
                )
            });
            assert_eq!(within, reference_within, "the jurisdiction of {unit}");
            let wanted: Vec<_> = listed
                .iter()
                .filter(|i| kinds.contains(i))
                .filter(|i| {
                    reference_within
                        .as_ref()
                        .is_none_or(|j| j.holds(&reference, i))
                })
                .cloned()
                .collect();
            if within.is_some() {
                let all = listed.iter().filter(|i| kinds.contains(i)).count();
                within_cut[usize::from(wanted.len() < all) + usize::from(wanted.is_empty())] += 1;
            }
            let mut paged = Vec::new();
            let mut cursor = Some(irregular::Cursor::start(kinds));
            let mut pages = 0;
            while let Some(from) = cursor {
                let (page, next) = projection.irregularities_page(
                    &policy,
                    as_of,
                    known_at,
                    from,
                    size,
                    rows,
                    within.as_ref(),
                );
                assert!(page.len() <= size, "a page of {} over {size}", page.len());
                assert!(next.is_none_or(|n| n > from), "{next:?} after {from:?}");
                assert!(
                    next.is_none_or(|n| n.kinds == kinds),
                    "{next:?} for {kinds:?}"
                );
                paged.extend(page);
                cursor = next;
                pages += 1;
            }
            paged.sort_by_key(|i| format!("{i:?}"));
            assert_eq!(
                paged, wanted,
                "pages of {size} over {rows} rows of {kinds:?}: {pages} pages"
            );
            for irregularity in &listed {
                let kind = std::mem::discriminant(irregularity);
                if !kinds_listed.contains(&kind) {
                    kinds_listed.push(kind);
                }
            }
            for _ in 0..40 {
                let on = random_date(&mut rng);
                let office = offices[rng.random_range(0..offices.len())];
                assert_eq!(
                    held(projection.holders(office, on, known_at)),
                    reference_holdings(&reference, |h| h.office == office, on),
                    "holders of {office} on {on} known at {known_at:?}"
                );
                let person = persons[rng.random_range(0..persons.len())];
                assert_eq!(
                    held(projection.offices_of(person, on, known_at)),
                    reference_holdings(&reference, |h| h.person == person, on),
                    "offices of {person} on {on} known at {known_at:?}"
                );
                let unit = units[rng.random_range(0..units.len())];
                assert_eq!(
                    projection.unit_on(unit, on, known_at),
                    reference_unit(&reference, unit, on),
                    "{unit} on {on} known at {known_at:?}"
                );
                assert_eq!(
                    held(projection.possible_holders(office, on, known_at)),
                    reference_possible(&reference, |h| h.office == office, on),
                    "possible holders of {office} on {on} known at {known_at:?}"
                );
                assert_eq!(
                    held(projection.possible_offices_of(person, on, known_at)),
                    reference_possible(&reference, |h| h.person == person, on),
                    "possible offices of {person} on {on} known at {known_at:?}"
                );
                possibly += reference_possible(&reference, |h| h.office == office, on).len();
                let vacant = reference.office(office).map(|o| {
                    o.life.contains(on)
                        && reference_holdings(&reference, |h| h.office == office, on).is_empty()
                        && reference_possible(&reference, |h| h.office == office, on).is_empty()
                });
                assert_eq!(
                    projection.vacant(office, on, known_at),
                    vacant,
                    "vacancy of {office} on {on} known at {known_at:?}"
                );
                vacancies += usize::from(vacant == Some(true));
                assert_eq!(
                    projection.person_birth(person, known_at),
                    reference.person(person).and_then(|p| p.birth),
                    "birth of {person} known at {known_at:?}"
                );
                let name = reference.person(person).map(|p| p.name_on(on).to_owned());
                assert_eq!(
                    projection.person_name(person, on, known_at),
                    name,
                    "name of {person} on {on} known at {known_at:?}"
                );
                // Everything held on the day, a few offices at a time.
                let (mut everything, mut maybe) = (Vec::new(), Vec::new());
                let mut from = 0;
                loop {
                    let page = projection.holdings_on(on, known_at, from, 7);
                    everything.extend(held(page.surely));
                    maybe.extend(held(page.possibly));
                    match page.next {
                        Some(n) => from = n,
                        None => break,
                    }
                }
                everything.sort_by_key(|h| h.0);
                maybe.sort_by_key(|h| h.0);
                assert_eq!(
                    everything,
                    reference_holdings(&reference, |_| true, on),
                    "all holdings on {on} known at {known_at:?}"
                );
                assert_eq!(
                    maybe,
                    reference_possible(&reference, |_| true, on),
                    "all possible holdings on {on} known at {known_at:?}"
                );
                // One holding by its id, and whether a person is known.
                let count = reference.holdings().count();
                if count > 0 {
                    let (id, h) = reference
                        .holdings()
                        .nth(rng.random_range(0..count))
                        .expect("a holding");
                    assert_eq!(
                        projection.holding(id, known_at).map(|v| held(vec![v])),
                        Some(vec![(
                            id,
                            h.person,
                            h.office,
                            h.start,
                            h.end,
                            h.beginning,
                            h.end_reason
                        )]),
                        "{id} known at {known_at:?}"
                    );
                }
                assert_eq!(
                    projection.knows_person(person, known_at),
                    reference.person(person).is_some(),
                    "whether {person} is known at {known_at:?}"
                );
                compared += 8;
            }
            for _ in 0..5 {
                let office = offices[rng.random_range(0..offices.len())];
                let person = persons[rng.random_range(0..persons.len())];
                let history = |keep: &dyn Fn(&state::Holding) -> bool| {
                    let mut all: Vec<(Date, HoldingId)> = reference
                        .holdings()
                        .filter(|(_, h)| keep(h))
                        .map(|(id, h)| (h.start.earliest(), id))
                        .collect();
                    all.sort();
                    all.into_iter().map(|(_, id)| id).collect::<Vec<_>>()
                };
                let ids = |views: Vec<HoldingView>| {
                    views.into_iter().map(|h| h.holding).collect::<Vec<_>>()
                };
                assert_eq!(
                    ids(projection.office_history(office, known_at)),
                    history(&|h| h.office == office),
                    "history of {office} known at {known_at:?}"
                );
                assert_eq!(
                    ids(projection.career(person, known_at)),
                    history(&|h| h.person == person),
                    "career of {person} known at {known_at:?}"
                );
                let unit = units[rng.random_range(0..units.len())];
                assert_eq!(
                    projection.lineage(unit, known_at),
                    reference_lineage(&reference, unit),
                    "lineage of {unit} known at {known_at:?}"
                );
                let on = random_date(&mut rng);
                let model = models[rng.random_range(0..models.len())];
                let province = generated.catalogue.provinces[0];
                let expected = reference_coverage(&reference, model, province, Level::Commune, on);
                uncertain += expected.as_ref().map_or(0, |c| c.uncertain.len());
                assert_eq!(
                    projection
                        .coverage(model, province, Level::Commune, on, known_at)
                        .ok(),
                    expected,
                    "coverage of {model} on {on} known at {known_at:?}"
                );
                assert_eq!(
                    refreshed
                        .coverage(model, province, Level::Commune, on, known_at)
                        .ok(),
                    expected,
                    "indexed coverage of {model} on {on} known at {known_at:?}"
                );
                assert_eq!(
                    partly
                        .coverage(model, province, Level::Commune, on, known_at)
                        .ok(),
                    expected,
                    "partly indexed coverage of {model} on {on} known at {known_at:?}"
                );
                // Above the commune, an area observes a model through its own bodies only.
                for level in [Level::District, Level::Province] {
                    let expected = reference_coverage(&reference, model, province, level, on);
                    let answer = projection
                        .coverage(model, province, level, on, known_at)
                        .ok();
                    assert_eq!(
                        answer, expected,
                        "{level:?} coverage of {model} on {on} known at {known_at:?}"
                    );
                    if let Some(c) = answer {
                        observed_above_communes[usize::from(level == Level::Province)] +=
                            c.observed.len();
                    }
                }
                compared += 4;
            }
        }
    }
    assert!(compared > 1000);
    assert_eq!(
        endings.into_iter().collect::<Vec<_>>(),
        ["Absorbed", "Dissolved", "Merged", "Split"],
        "the generated reform has every kind of ending"
    );
    assert!(
        possibly > 0,
        "some holdings were possibly held on a day asked about"
    );
    assert!(
        possibly > 0 && uncertain > 0,
        "possibly held {possibly}, uncertain {uncertain}"
    );
    // Both levels above the commune observed some model on some day (the province's Secretary
    // chairs its Council; some districts' common agency serves two bodies).
    assert!(
        observed_above_communes.iter().all(|n| *n > 0),
        "{observed_above_communes:?}"
    );
    // Uncovered concurrency, too many offices, long vacancy, missing basis, unknown end.
    assert_eq!(
        kinds_listed.len(),
        5,
        "kinds of irregularity met: {kinds_listed:?}"
    );
    assert!(
        vacancies > 10,
        "the random queries met only {vacancies} vacancies"
    );
    // (No unit of these registries holds every office, so none keeps all.)
    assert!(
        within_cut[1] > 5 && within_cut[2] > 5,
        "listings within a unit that kept all, some and none of the flags: {within_cut:?}"
    );
}

#[test]
fn a_retracted_holding_is_gone_now_but_visible_as_known_before() {
    let generated = generate(&Config::tiny(3));
    let mut projection = Projection::new();
    for fact in &generated.facts {
        projection.apply(fact.recorded_at, &fact.event);
    }
    let (retraction, target) = generated
        .facts
        .iter()
        .find_map(|f| match &f.event {
            Event::Retracted(r) => match r.target {
                EntityRef::Holding(h) => Some((f.recorded_at, h)),
                _ => None,
            },
            _ => None,
        })
        .expect("the tiny registry has retractions");
    let started = generated
        .facts
        .iter()
        .find_map(|f| match &f.event {
            Event::HoldingStarted(s) if s.holding == target => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    let on = started.start.latest();
    let before = projection.holders(started.office, on, Some(retraction - 1));
    assert!(
        before.iter().any(|h| h.holding == target),
        "known before the retraction"
    );
    let now = projection.holders(started.office, on, None);
    assert!(now.iter().all(|h| h.holding != target), "gone after it");
}

/// A change after a refresh makes the touched commune's timelines stale; coverage must then
/// answer from the plain definition, not from the stale index.
#[test]
fn a_stale_coverage_index_is_never_used() {
    let generated = generate(&Config::tiny(4));
    let mut projection = Projection::new();
    for fact in &generated.facts {
        projection.apply(fact.recorded_at, &fact.event);
    }
    projection.refresh_coverage();
    let mut registry = generated.registry.clone();
    let (holding, on) = registry
        .holdings()
        .filter(|(_, h)| matches!(h.beginning, Beginning::Concurrent { .. }))
        .filter(|(_, h)| {
            let office = registry.office(h.office).unwrap();
            registry
                .unit(office.unit_on(h.span().start))
                .is_some_and(|u| u.level == Level::Commune)
        })
        .filter(|(_, h)| {
            h.span()
                .end
                .is_none_or(|end| h.span().start.days_until(end) > 20)
        })
        .map(|(id, h)| (id, h.span().start.add_days(10)))
        .min_by_key(|(id, _)| *id)
        .expect("the tiny registry has concurrent holdings");
    let province = generated.catalogue.provinces[0];
    let models: Vec<ModelId> = registry.models().map(|(id, _)| id).collect();
    let before: Vec<Option<Coverage>> = models
        .iter()
        .map(|m| {
            projection
                .coverage(*m, province, Level::Commune, on, None)
                .ok()
        })
        .collect();
    let retract = Command::Retract {
        target: EntityRef::Holding(holding),
        amendment: Amendment {
            reason: "nhập nhầm".into(),
            actor: "auditor".into(),
            basis: None,
        },
    };
    let decision = registry.decide(&retract, &Policy::default()).unwrap();
    let recorded = generated.facts.last().unwrap().recorded_at + 1;
    for event in &decision.events {
        registry.apply(event);
        projection.apply(recorded, event);
    }
    let after: Vec<Option<Coverage>> = models
        .iter()
        .map(|m| {
            projection
                .coverage(*m, province, Level::Commune, on, None)
                .ok()
        })
        .collect();
    let expected: Vec<Option<Coverage>> = models
        .iter()
        .map(|m| reference_coverage(&registry, *m, province, Level::Commune, on))
        .collect();
    assert_eq!(after, expected);
    assert_ne!(
        before, after,
        "the retraction changed what is observed on {on}"
    );
    projection.refresh_coverage();
    let refreshed: Vec<Option<Coverage>> = models
        .iter()
        .map(|m| {
            projection
                .coverage(*m, province, Level::Commune, on, None)
                .ok()
        })
        .collect();
    assert_eq!(refreshed, expected);
}
