//! Property tests: random command sequences never leave a state that breaks a hard rule, and
//! replaying the recorded events (through their stored encoding) rebuilds exactly the same state.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use registry_domain::event::HoldingFacts;
use registry_domain::*;
use support::*;

const PERSONS: usize = 4;
const OFFICES: usize = 5;
const HOLDINGS: usize = 10;

/// A command in terms of small indexes, turned into a real command against the world.
#[derive(Clone, Debug)]
enum Step {
    Start {
        holding: usize,
        person: usize,
        office: usize,
        day: i64,
        month_precision: bool,
        cause: Option<usize>,
    },
    End {
        holding: usize,
        days_after_start: i64,
        unknown: bool,
    },
    Correct {
        holding: usize,
        day: i64,
        end_after: Option<i64>,
        office: usize,
    },
    Retract {
        holding: usize,
    },
    Abolish {
        office: usize,
        day: i64,
    },
    CorrectCapacity {
        office: usize,
        limit: u32,
    },
    CorrectEstablished {
        office: usize,
        day: i64,
    },
    Merge {
        day: i64,
        carry: bool,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..HOLDINGS, 0..PERSONS, 0..OFFICES, 0i64..12_000, any::<bool>(), proptest::option::weighted(0.2, 0..HOLDINGS))
            .prop_map(|(holding, person, office, day, month_precision, cause)| Step::Start { holding, person, office, day, month_precision, cause }),
        3 => (0..HOLDINGS, -30i64..4_000, proptest::bool::weighted(0.1))
            .prop_map(|(holding, days_after_start, unknown)| Step::End { holding, days_after_start, unknown }),
        2 => (0..HOLDINGS, 0i64..12_000, proptest::option::of(-30i64..4_000), 0..OFFICES)
            .prop_map(|(holding, day, end_after, office)| Step::Correct { holding, day, end_after, office }),
        1 => (0..HOLDINGS).prop_map(|holding| Step::Retract { holding }),
        1 => (0..OFFICES, 0i64..13_000).prop_map(|(office, day)| Step::Abolish { office, day }),
        1 => (0..OFFICES, 1u32..3).prop_map(|(office, limit)| Step::CorrectCapacity { office, limit }),
        1 => (0..OFFICES, -500i64..3_000).prop_map(|(office, day)| Step::CorrectEstablished { office, day }),
        1 => (5_000i64..13_000, any::<bool>()).prop_map(|(day, carry)| Step::Merge { day, carry }),
    ]
}

struct Ids {
    holdings: Vec<HoldingId>,
    persons: Vec<PersonId>,
    offices: Vec<OfficeId>,
    other_party: UnitId,
    merged: UnitId,
}

fn day(offset: i64) -> Date {
    d("1990-01-01").add_days(offset)
}

fn to_command(step: &Step, w: &World, ids: &Ids) -> Command {
    let registry = &w.given.registry;
    match step {
        Step::Start {
            holding,
            person,
            office,
            day: offset,
            month_precision,
            cause,
        } => {
            let on = day(*offset);
            let start = if *month_precision {
                PartialDate::month(on.year(), on.month()).unwrap()
            } else {
                on.into()
            };
            let beginning = match cause {
                Some(c) => Beginning::Concurrent {
                    cause: ids.holdings[*c],
                },
                None => Beginning::Appointed,
            };
            Command::StartHolding {
                holding: ids.holdings[*holding],
                person: ids.persons[*person],
                office: ids.offices[*office],
                start,
                beginning,
                term: None,
                basis: Some(basis()),
            }
        }
        Step::End {
            holding,
            days_after_start,
            unknown,
        } => {
            let id = ids.holdings[*holding];
            let start = registry.holding(id).map_or(day(0), |h| h.start.earliest());
            let end = if *unknown {
                HoldingEnd::Unknown
            } else {
                HoldingEnd::On(start.add_days(*days_after_start).into())
            };
            Command::EndHolding {
                holding: id,
                end,
                reason: EndReason::Resignation,
                basis: None,
            }
        }
        Step::Correct {
            holding,
            day: offset,
            end_after,
            office,
        } => {
            let id = ids.holdings[*holding];
            let person = registry.holding(id).map_or(ids.persons[0], |h| h.person);
            let start = day(*offset);
            let (end, end_reason) = match end_after {
                Some(after) => (
                    HoldingEnd::On(start.add_days(*after).into()),
                    Some(EndReason::Transfer),
                ),
                None => (HoldingEnd::Open, None),
            };
            let after = HoldingFacts {
                person,
                office: ids.offices[*office],
                start: start.into(),
                end,
                beginning: Beginning::Appointed,
                end_reason,
                term: None,
                basis: None,
            };
            Command::CorrectHolding {
                holding: id,
                after: after.into(),
                amendment: amendment("wrong decision read"),
            }
        }
        Step::Retract { holding } => Command::Retract {
            target: EntityRef::Holding(ids.holdings[*holding]),
            amendment: amendment("entered in error"),
        },
        Step::Abolish {
            office,
            day: offset,
        } => Command::AbolishOffice {
            office: ids.offices[*office],
            on: day(*offset),
            basis: None,
        },
        Step::CorrectCapacity { office, limit } => {
            let id = ids.offices[*office];
            let facts = registry.office(id).map(|o| o.facts());
            match facts {
                Some(facts) => Command::CorrectOffice {
                    office: id,
                    after: event::OfficeFacts {
                        capacity: Capacity::Limited(*limit),
                        ..facts
                    }
                    .into(),
                    amendment: amendment("capacity"),
                },
                None => Command::Retract {
                    target: EntityRef::Office(id),
                    amendment: amendment("x"),
                },
            }
        }
        Step::CorrectEstablished {
            office,
            day: offset,
        } => {
            let id = ids.offices[*office];
            match registry.office(id).map(|o| o.facts()) {
                Some(facts) => Command::CorrectOffice {
                    office: id,
                    after: event::OfficeFacts {
                        established: day(*offset),
                        ..facts
                    }
                    .into(),
                    amendment: amendment("established"),
                },
                None => Command::Retract {
                    target: EntityRef::Office(id),
                    amendment: amendment("x"),
                },
            }
        }
        Step::Merge { day: offset, carry } => {
            let on = day(*offset);
            let party_offices: Vec<OfficeId> = [w.party, ids.other_party]
                .iter()
                .filter_map(|u| registry.unit(*u))
                .flat_map(|u| u.offices.iter().copied())
                .filter(|o| {
                    registry
                        .office(*o)
                        .is_some_and(|o| o.life.overlaps(Span::from(on)))
                })
                .collect();
            let fate = if *carry {
                OfficeFate::CarryTo(ids.merged)
            } else {
                OfficeFate::Abolish
            };
            Command::Reorganise(Reorganisation {
                ending: UnitEnding::Merged,
                predecessors: vec![w.party, ids.other_party],
                successors: vec![Successor::New(NewUnit {
                    unit: ids.merged,
                    kind: UnitKind::PartyCommittee,
                    level: Level::Commune,
                    name: "Đảng ủy xã sau sáp nhập".into(),
                    parents: vec![w.commune],
                })],
                on,
                basis: basis(),
                offices: party_offices.into_iter().map(|o| (o, fate)).collect(),
                children: vec![],
            })
        }
    }
}

/// The hard rules, checked naively and independently of `decide`.
fn assert_hard_rules(registry: &Registry) {
    // The spans kept beside each person's and office's holdings are the holdings' own.
    let lists = registry
        .persons()
        .map(|(id, p)| (id.to_string(), &p.holdings))
        .chain(
            registry
                .offices()
                .map(|(id, o)| (id.to_string(), &o.holdings)),
        );
    for (owner, holdings) in lists {
        for (h, span) in holdings.spans() {
            assert_eq!(
                span,
                registry.holding(h).unwrap().span(),
                "{owner}: stale span of {h}"
            );
        }
    }
    for (id, holding) in registry.holdings() {
        assert!(
            registry.person(holding.person).is_some(),
            "{id}: unknown person"
        );
        let office = registry
            .office(holding.office)
            .unwrap_or_else(|| panic!("{id}: unknown office"));
        if let HoldingEnd::On(end) = holding.end {
            assert!(
                end.latest() > holding.start.earliest(),
                "{id}: ends before it starts"
            );
        }
        let span = holding.span();
        assert!(
            span.within(office.life),
            "{id}: {span} outside office life {}",
            office.life
        );
        if let Some(cause) = holding.beginning.cause() {
            let cause = registry
                .holding(cause)
                .unwrap_or_else(|| panic!("{id}: cause gone"));
            assert_eq!(
                cause.person, holding.person,
                "{id}: cause of another person"
            );
        }
    }
    for (id, office) in registry.offices() {
        for (i, (since, unit)) in office.placements.iter().enumerate() {
            let from = if i == 0 { office.life.start } else { *since };
            let until = office.placements.get(i + 1).map(|(next, _)| *next);
            if let Some(placed) = (Span {
                start: from,
                end: until,
            })
            .intersection(office.life)
            {
                let unit = registry.unit(*unit).unwrap();
                assert!(
                    placed.within(unit.life),
                    "{id}: placed {placed} in a unit living {}",
                    unit.life
                );
            }
        }
        if let Some(limit) = office.capacity.limit() {
            let spans: Vec<Span> = office
                .holdings
                .iter()
                .map(|h| registry.holding(*h).unwrap().span())
                .collect();
            for probe in spans.iter().map(|s| s.start) {
                let count = spans.iter().filter(|s| s.contains(probe)).count();
                assert!(
                    count <= limit as usize,
                    "{id}: {count} holders on {probe}, capacity {limit}"
                );
            }
        }
    }
}

fn world_with_ids() -> (World, Ids) {
    let mut w = World::new();
    let other_party = UnitId::new();
    w.given.run(establish(
        other_party,
        UnitKind::PartyCommittee,
        Level::Commune,
        "Đảng ủy xã khác",
        vec![w.commune],
        "1990-01-01",
    ));
    let extra = OfficeId::new();
    w.given.run(create_office(
        extra,
        other_party,
        OfficeKind::Secretary,
        Capacity::Sole,
        "1990-01-01",
    ));
    let extra_person = PersonId::new();
    w.given.run(register(extra_person, "Phạm Lê Hưng"));
    let ids = Ids {
        holdings: (0..HOLDINGS).map(|_| HoldingId::new()).collect(),
        persons: vec![w.a, w.b, w.c, extra_person],
        offices: vec![
            w.secretary,
            w.vice_secretary,
            w.committee_chair,
            w.front_chair,
            extra,
        ],
        other_party,
        merged: UnitId::new(),
    };
    (w, ids)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_commands_never_break_a_hard_rule(steps in proptest::collection::vec(step(), 1..60)) {
        let (mut w, ids) = world_with_ids();
        for step in &steps {
            let command = to_command(step, &w, &ids);
            let before = w.given.registry.clone();
            match w.given.registry.decide(&command, &w.given.policy) {
                Ok(decision) => {
                    for event in &decision.events {
                        w.given.registry.apply(event);
                        w.given.log.push(event.clone());
                    }
                }
                Err(_) => prop_assert_eq!(&before, &w.given.registry),
            }
            assert_hard_rules(&w.given.registry);
        }
        // Replaying the encoded log rebuilds exactly the same state.
        let decoded: Vec<Event> = w.given.log.iter()
            .map(|e| Event::decode(e.type_name(), e.schema_version(), &e.encode()).unwrap())
            .collect();
        prop_assert_eq!(&decoded, &w.given.log);
        prop_assert_eq!(Registry::from_events(&decoded), w.given.registry.clone());
    }
}

#[test]
fn the_generator_reaches_both_acceptance_and_rejection() {
    // Guard against a generator that only ever produces rejected (or only accepted) commands,
    // which would make the property above vacuous.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..64 {
        let steps = proptest::collection::vec(step(), 30..31)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let (mut w, ids) = world_with_ids();
        for step in &steps {
            let command = to_command(step, &w, &ids);
            match w.given.registry.decide(&command, &w.given.policy) {
                Ok(decision) => {
                    accepted += 1;
                    decision
                        .events
                        .iter()
                        .for_each(|e| w.given.registry.apply(e));
                }
                Err(_) => rejected += 1,
            }
        }
    }
    assert!(
        accepted > 300 && rejected > 300,
        "accepted {accepted}, rejected {rejected}"
    );
}
