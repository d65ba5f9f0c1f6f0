//! Given/When/Then tests: every command's success and every rejection.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use registry_domain::event::*;
use registry_domain::*;
use support::*;

// ----- persons -----

#[test]
fn register_person_records_the_name_in_nfc() {
    let person = PersonId::new();
    let decomposed = "Nguye\u{302}\u{303}n Xua\u{302}n Ky\u{301}";
    Given::new()
        .when(Command::RegisterPerson {
            person,
            name: format!("  {decomposed} "),
            aliases: vec![],
            birth: None,
        })
        .then_events(vec![PersonRegistered {
            person,
            name: "Nguyễn Xuân Ký".into(),
            aliases: vec![],
            birth: None,
        }
        .into()]);
}

#[test]
fn register_person_rejects_a_duplicate_id_and_bad_names() {
    let w = World::new();
    w.given
        .when(register(w.a, "Someone"))
        .then_error(DomainError::AlreadyExists(EntityRef::Person(w.a)));
    let empty = w
        .given
        .when(register(PersonId::new(), "   "))
        .then_error_matching(|e| e.kind() == ErrorKind::InvalidArgument);
    assert_eq!(empty.to_string(), "person.name: must not be empty");
    let long = w
        .given
        .when(register(PersonId::new(), &"ễ".repeat(100_000)))
        .then_error_matching(|e| e.kind() == ErrorKind::InvalidArgument);
    assert!(long
        .to_string()
        .starts_with("person.name: is 100000 characters long"));
    w.given
        .when(register(PersonId::new(), "Tab\tname"))
        .then_error_matching(|e| {
            matches!(
                e,
                DomainError::InvalidField {
                    field: "person.name",
                    ..
                }
            )
        });
}

#[test]
fn rename_and_alias_a_person() {
    let w = World::new();
    w.given
        .when(Command::RenamePerson {
            person: w.a,
            name: "Nguyễn An".into(),
            on: d("2001-01-01"),
        })
        .then_events(vec![PersonRenamed {
            person: w.a,
            name: "Nguyễn An".into(),
            on: d("2001-01-01"),
        }
        .into()]);
    w.given
        .when(Command::AddPersonAlias {
            person: w.a,
            alias: "Ba An".into(),
        })
        .then_events(vec![PersonAliasAdded {
            person: w.a,
            alias: "Ba An".into(),
        }
        .into()]);
    let mut g = w.given.clone();
    g.run(Command::RenamePerson {
        person: w.a,
        name: "Nguyễn An".into(),
        on: d("2001-01-01"),
    });
    let person = g.registry.person(w.a).unwrap();
    assert_eq!(person.name_on(d("2000-12-31")), "Nguyễn Văn An");
    assert_eq!(person.name_on(d("2001-01-01")), "Nguyễn An");
}

#[test]
fn person_commands_reject_unknown_persons() {
    let ghost = PersonId::new();
    Given::new()
        .when(Command::RenamePerson {
            person: ghost,
            name: "X".into(),
            on: d("2001-01-01"),
        })
        .then_error(DomainError::NotFound(EntityRef::Person(ghost)));
    Given::new()
        .when(Command::AddPersonAlias {
            person: ghost,
            alias: "X".into(),
        })
        .then_error(DomainError::NotFound(EntityRef::Person(ghost)));
}

// ----- units -----

#[test]
fn establish_unit_under_a_living_parent() {
    let w = World::new();
    let unit = UnitId::new();
    w.given
        .when(establish(
            unit,
            UnitKind::PartyCommission,
            Level::Commune,
            "Ban Dân vận",
            vec![w.party],
            "2000-01-01",
        ))
        .then_ok();
}

#[test]
fn establish_unit_rejects_dead_unknown_duplicate_and_self_parents() {
    let w = World::new();
    let unit = UnitId::new();
    let ghost = UnitId::new();
    w.given
        .when(establish(
            unit,
            UnitKind::PartyCommission,
            Level::Commune,
            "Ban",
            vec![ghost],
            "2000-01-01",
        ))
        .then_error(DomainError::NotFound(EntityRef::Unit(ghost)));
    w.given
        .when(establish(
            unit,
            UnitKind::PartyCommission,
            Level::Commune,
            "Ban",
            vec![w.party],
            "1980-01-01",
        ))
        .then_error(DomainError::OutsideUnitLife {
            what: EntityRef::Unit(unit),
            unit: w.party,
            day: d("1980-01-01"),
        });
    w.given
        .when(establish(
            unit,
            UnitKind::PartyCommission,
            Level::Commune,
            "Ban",
            vec![w.party, w.party],
            "2000-01-01",
        ))
        .then_error_matching(|e| {
            matches!(
                e,
                DomainError::InvalidField {
                    field: "parents",
                    ..
                }
            )
        });
    w.given
        .when(establish(
            unit,
            UnitKind::PartyCommission,
            Level::Commune,
            "Ban",
            vec![unit],
            "2000-01-01",
        ))
        .then_error(DomainError::StructureCycle {
            unit,
            parent: unit,
            day: d("2000-01-01"),
        });
    w.given
        .when(establish(
            w.party,
            UnitKind::PartyCommission,
            Level::Commune,
            "Ban",
            vec![],
            "2000-01-01",
        ))
        .then_error(DomainError::AlreadyExists(EntityRef::Unit(w.party)));
}

#[test]
fn rename_unit_keeps_the_old_name_for_earlier_dates() {
    let mut w = World::new();
    let rename = Command::RenameUnit {
        unit: w.commune,
        name: "Phường Cộng Hòa".into(),
        on: d("2020-01-01"),
        basis: basis(),
    };
    w.given.when(rename.clone()).then_ok();
    w.given.run(rename);
    let commune = w.given.registry.unit(w.commune).unwrap();
    assert_eq!(commune.name_on(d("2019-12-31")), "Xã Cộng Hòa");
    assert_eq!(commune.name_on(d("2020-01-01")), "Phường Cộng Hòa");
    w.given
        .when(Command::RenameUnit {
            unit: w.commune,
            name: "Y".into(),
            on: d("1980-01-01"),
            basis: basis(),
        })
        .then_error(DomainError::OutsideUnitLife {
            what: EntityRef::Unit(w.commune),
            unit: w.commune,
            day: d("1980-01-01"),
        });
}

#[test]
fn move_unit_changes_parents_from_a_date_and_refuses_cycles() {
    let mut w = World::new();
    let district = UnitId::new();
    w.given.run(establish(
        district,
        UnitKind::AdministrativeArea,
        Level::District,
        "Huyện Vân Đồn",
        vec![w.province],
        "1994-01-01",
    ));
    let move_commune = Command::MoveUnit {
        unit: w.commune,
        parents: vec![district],
        on: d("1995-01-01"),
        basis: basis(),
    };
    w.given.when(move_commune.clone()).then_ok();
    w.given.run(move_commune);
    let commune = w.given.registry.unit(w.commune).unwrap();
    assert_eq!(
        commune.parents_on(d("1994-12-31")).collect::<Vec<_>>(),
        vec![w.province]
    );
    assert_eq!(
        commune.parents_on(d("1995-01-01")).collect::<Vec<_>>(),
        vec![district]
    );
    w.given
        .when(Command::MoveUnit {
            unit: district,
            parents: vec![w.commune],
            on: d("1996-01-01"),
            basis: basis(),
        })
        .then_error(DomainError::StructureCycle {
            unit: district,
            parent: w.commune,
            day: d("1996-01-01"),
        });
}

/// A move dated before a later one already recorded: the unit would be its own ancestor from
/// the later day on, though not on its own day. Found by the access policy's property test.
#[test]
fn a_move_that_closes_a_cycle_on_a_later_day_is_refused() {
    let mut w = World::new();
    let [a, b] = [UnitId::new(), UnitId::new()];
    for unit in [a, b] {
        w.given.run(establish(
            unit,
            UnitKind::AdministrativeArea,
            Level::District,
            "Huyện",
            vec![w.province],
            "1994-01-01",
        ));
    }
    // Recorded first: from 2000, B is under A.
    w.given.run(Command::MoveUnit {
        unit: b,
        parents: vec![a],
        on: d("2000-01-01"),
        basis: basis(),
    });
    // Then: A under B from 1999. On 1999-06-01 it is no cycle (B is under the province
    // then), from 2000-01-01 on it is.
    w.given
        .when(Command::MoveUnit {
            unit: a,
            parents: vec![b],
            on: d("1999-01-01"),
            basis: basis(),
        })
        .then_error(DomainError::StructureCycle {
            unit: a,
            parent: b,
            day: d("2000-01-01"),
        });
}

#[test]
fn a_shared_agency_serves_several_parents_at_once() {
    let w = World::new();
    let agency = UnitId::new();
    let mut g = w.given.clone();
    g.run(establish(
        agency,
        UnitKind::AdvisoryAgency,
        Level::Commune,
        "Cơ quan khối",
        vec![w.front, w.committee],
        "2016-01-01",
    ));
    let parents: Vec<UnitId> = g
        .registry
        .unit(agency)
        .unwrap()
        .parents_on(d("2024-03-18"))
        .collect();
    assert_eq!(parents, vec![w.front, w.committee]);
}

fn merge_of(
    w: &World,
    other: UnitId,
    successor: UnitId,
    offices: Vec<(OfficeId, OfficeFate)>,
) -> Command {
    Command::Reorganise(Reorganisation {
        ending: UnitEnding::Merged,
        predecessors: vec![w.party, other],
        successors: vec![Successor::New(NewUnit {
            unit: successor,
            kind: UnitKind::PartyCommittee,
            level: Level::Commune,
            name: "Đảng ủy xã mới".into(),
            parents: vec![w.commune],
        })],
        on: d("2025-07-01"),
        basis: basis(),
        offices,
        children: vec![],
    })
}

#[test]
fn merge_carries_or_abolishes_offices_as_stated() {
    let mut w = World::new();
    let other = UnitId::new();
    w.given.run(establish(
        other,
        UnitKind::PartyCommittee,
        Level::Commune,
        "Đảng ủy xã khác",
        vec![w.commune],
        "1990-01-01",
    ));
    let (h1, h2) = (HoldingId::new(), HoldingId::new());
    w.given.run(start(h1, w.a, w.secretary, "2020-10-15"));
    w.given.run(start(h2, w.b, w.vice_secretary, "2020-10-15"));
    let successor = UnitId::new();
    let fates = vec![
        (w.secretary, OfficeFate::CarryTo(successor)),
        (w.vice_secretary, OfficeFate::Abolish),
        (w.party_member, OfficeFate::Abolish),
    ];
    let decision = w
        .given
        .when(merge_of(&w, other, successor, fates.clone()))
        .then_ok();
    let names: Vec<&str> = decision.events.iter().map(Event::type_name).collect();
    assert_eq!(
        names,
        [
            "UnitEstablished",
            "HoldingEnded",
            "OfficeAbolished",
            "OfficeAbolished",
            "UnitsReorganised",
            "OfficeCarried"
        ]
    );
    assert!(decision.events.contains(
        &HoldingEnded {
            holding: h2,
            end: HoldingEnd::On(d("2025-07-01").into()),
            reason: EndReason::UnitMerged,
            basis: Some(basis())
        }
        .into()
    ));
    w.given.run(merge_of(&w, other, successor, fates));
    let r = &w.given.registry;
    assert_eq!(
        r.office(w.secretary).unwrap().unit_on(d("2025-07-01")),
        successor
    );
    assert_eq!(
        r.office(w.secretary).unwrap().unit_on(d("2025-06-30")),
        w.party
    );
    assert_eq!(
        r.holding(h1).unwrap().end,
        HoldingEnd::Open,
        "the carried office's holder continues"
    );
    assert_eq!(r.unit(w.party).unwrap().life.end, Some(d("2025-07-01")));
    assert_eq!(
        r.unit(successor).unwrap().predecessors,
        vec![w.party, other]
    );
    assert_eq!(r.unit(w.party).unwrap().successors, vec![successor]);
}

#[test]
fn merge_rejects_an_unstated_office_fate_and_bad_shapes() {
    let mut w = World::new();
    let other = UnitId::new();
    w.given.run(establish(
        other,
        UnitKind::PartyCommittee,
        Level::Commune,
        "Đảng ủy xã khác",
        vec![w.commune],
        "1990-01-01",
    ));
    let successor = UnitId::new();
    w.given
        .when(merge_of(
            &w,
            other,
            successor,
            vec![(w.secretary, OfficeFate::Abolish)],
        ))
        .then_error_matching(
            |e| matches!(e, DomainError::FateNotStated { unit, .. } if *unit == w.party),
        );
    let mut one = merge_of(&w, other, successor, vec![]);
    if let Command::Reorganise(r) = &mut one {
        r.predecessors.truncate(1);
    }
    w.given.when(one).then_error_matching(|e| {
        matches!(
            e,
            DomainError::InvalidField {
                field: "predecessors",
                ..
            }
        )
    });
    let fates = vec![
        (w.secretary, OfficeFate::CarryTo(w.front)),
        (w.vice_secretary, OfficeFate::Abolish),
        (w.party_member, OfficeFate::Abolish),
    ];
    w.given
        .when(merge_of(&w, other, successor, fates))
        .then_error_matching(|e| {
            matches!(
                e,
                DomainError::InvalidField {
                    field: "offices",
                    ..
                }
            )
        });
    let mut late = merge_of(&w, other, successor, vec![]);
    if let Command::Reorganise(r) = &mut late {
        r.on = d("1989-01-01");
    }
    w.given.when(late).then_error(DomainError::OutsideUnitLife {
        what: EntityRef::Unit(w.party),
        unit: w.party,
        day: d("1989-01-01"),
    });
}

#[test]
fn reorganisation_rejects_a_holding_that_outlives_an_abolished_office() {
    let mut w = World::new();
    let h = HoldingId::new();
    w.given.run(start(h, w.a, w.front_chair, "2020-01-01"));
    w.given.run(end(h, "2026-01-01"));
    let dissolve = Command::Reorganise(Reorganisation {
        ending: UnitEnding::Dissolved,
        predecessors: vec![w.front],
        successors: vec![],
        on: d("2025-07-01"),
        basis: basis(),
        offices: vec![(w.front_chair, OfficeFate::Abolish)],
        children: vec![],
    });
    w.given.when(dissolve).then_error_matching(
        |e| matches!(e, DomainError::OutsideOfficeLife { holding, .. } if *holding == h),
    );
}

#[test]
fn dissolving_an_area_requires_new_parents_for_its_bodies() {
    let w = World::new();
    let mut dissolve = Reorganisation {
        ending: UnitEnding::Absorbed,
        predecessors: vec![w.commune],
        successors: vec![Successor::Existing { unit: w.province }],
        on: d("2025-07-01"),
        basis: basis(),
        offices: vec![],
        children: vec![],
    };
    w.given
        .when(Command::Reorganise(dissolve.clone()))
        .then_error_matching(|e| {
            matches!(
                e,
                DomainError::FateNotStated {
                    what: EntityRef::Unit(_),
                    ..
                }
            )
        });
    dissolve.children = vec![
        (w.party, vec![w.province]),
        (w.committee, vec![w.province]),
        (w.front, vec![w.province]),
    ];
    let decision = w.given.when(Command::Reorganise(dissolve)).then_ok();
    assert_eq!(
        decision
            .events
            .iter()
            .filter(|e| e.type_name() == "UnitMoved")
            .count(),
        3
    );
}

#[test]
fn split_makes_several_successors_and_absorb_needs_an_existing_one() {
    let mut w = World::new();
    let (north, south) = (UnitId::new(), UnitId::new());
    let new_area = |unit, name: &str| {
        Successor::New(NewUnit {
            unit,
            kind: UnitKind::AdministrativeArea,
            level: Level::Commune,
            name: name.into(),
            parents: vec![w.province],
        })
    };
    let split = Reorganisation {
        ending: UnitEnding::Split,
        predecessors: vec![w.commune],
        successors: vec![new_area(north, "Xã Bắc"), new_area(south, "Xã Nam")],
        on: d("2010-01-01"),
        basis: basis(),
        offices: vec![],
        children: vec![
            (w.party, vec![north]),
            (w.committee, vec![north]),
            (w.front, vec![south]),
        ],
    };
    w.given.when(Command::Reorganise(split.clone())).then_ok();
    w.given.run(Command::Reorganise(split));
    let r = &w.given.registry;
    assert_eq!(r.unit(w.commune).unwrap().successors, vec![north, south]);
    assert_eq!(
        r.unit(w.front)
            .unwrap()
            .parents_on(d("2010-01-01"))
            .collect::<Vec<_>>(),
        vec![south]
    );
    let absorb_new = Reorganisation {
        ending: UnitEnding::Absorbed,
        predecessors: vec![north],
        successors: vec![new_area(UnitId::new(), "Xã mới")],
        on: d("2015-01-01"),
        basis: basis(),
        offices: vec![],
        children: vec![],
    };
    w.given
        .when(Command::Reorganise(absorb_new))
        .then_error_matching(|e| {
            matches!(
                e,
                DomainError::InvalidField {
                    field: "successors",
                    ..
                }
            )
        });
}

// ----- offices -----

#[test]
fn create_office_in_a_living_unit_only() {
    let w = World::new();
    let office = OfficeId::new();
    w.given
        .when(create_office(
            office,
            w.front,
            OfficeKind::ViceChair,
            Capacity::Limited(3),
            "2000-01-01",
        ))
        .then_ok();
    w.given
        .when(create_office(
            office,
            w.front,
            OfficeKind::ViceChair,
            Capacity::Limited(3),
            "1980-01-01",
        ))
        .then_error(DomainError::OutsideUnitLife {
            what: EntityRef::Office(office),
            unit: w.front,
            day: d("1980-01-01"),
        });
    w.given
        .when(create_office(
            office,
            w.front,
            OfficeKind::ViceChair,
            Capacity::Limited(0),
            "2000-01-01",
        ))
        .then_error_matching(|e| {
            matches!(
                e,
                DomainError::InvalidField {
                    field: "capacity",
                    ..
                }
            )
        });
    w.given
        .when(create_office(
            w.secretary,
            w.front,
            OfficeKind::ViceChair,
            Capacity::Sole,
            "2000-01-01",
        ))
        .then_error(DomainError::AlreadyExists(EntityRef::Office(w.secretary)));
}

#[test]
fn abolish_office_ends_open_holdings() {
    let mut w = World::new();
    let h = HoldingId::new();
    w.given.run(start(h, w.a, w.front_chair, "2019-01-01"));
    let abolish = Command::AbolishOffice {
        office: w.front_chair,
        on: d("2024-01-01"),
        basis: Some(basis()),
    };
    w.given.when(abolish.clone()).then_events(vec![
        HoldingEnded {
            holding: h,
            end: HoldingEnd::On(d("2024-01-01").into()),
            reason: EndReason::OfficeAbolished,
            basis: Some(basis()),
        }
        .into(),
        OfficeAbolished {
            office: w.front_chair,
            on: d("2024-01-01"),
            basis: Some(basis()),
        }
        .into(),
    ]);
    w.given.run(abolish.clone());
    w.given
        .when(abolish)
        .then_error(DomainError::AlreadyEnded(EntityRef::Office(w.front_chair)));
    w.given
        .when(Command::AbolishOffice {
            office: w.secretary,
            on: d("1990-01-01"),
            basis: None,
        })
        .then_error_matching(|e| matches!(e, DomainError::EndBeforeStart { .. }));
}

#[test]
fn correct_office_rechecks_capacity_and_life() {
    let mut w = World::new();
    let (h1, h2) = (HoldingId::new(), HoldingId::new());
    w.given.run(start(h1, w.a, w.vice_secretary, "2020-01-01"));
    w.given.run(start(h2, w.b, w.vice_secretary, "2021-01-01"));
    let facts = w.given.registry.office(w.vice_secretary).unwrap().facts();
    let sole = OfficeFacts {
        capacity: Capacity::Sole,
        ..facts.clone()
    };
    w.given
        .when(Command::CorrectOffice {
            office: w.vice_secretary,
            after: sole.into(),
            amendment: amendment("capacity was mistyped"),
        })
        .then_error_matching(
            |e| matches!(e, DomainError::CapacityExceeded { day, .. } if *day == d("2021-01-01")),
        );
    let later = OfficeFacts {
        established: d("2020-06-01"),
        ..facts.clone()
    };
    w.given
        .when(Command::CorrectOffice {
            office: w.vice_secretary,
            after: later.into(),
            amendment: amendment("wrong date"),
        })
        .then_error_matching(
            |e| matches!(e, DomainError::OutsideOfficeLife { holding, .. } if *holding == h1),
        );
    let too_early = OfficeFacts {
        established: d("1985-01-01"),
        ..facts.clone()
    };
    w.given
        .when(Command::CorrectOffice {
            office: w.vice_secretary,
            after: too_early.into(),
            amendment: amendment("wrong date"),
        })
        .then_error_matching(|e| matches!(e, DomainError::OutsideUnitLife { .. }));
    let renamed = OfficeFacts {
        title: "Phó Bí thư Đảng ủy".into(),
        ..facts.clone()
    };
    w.given
        .when(Command::CorrectOffice {
            office: w.vice_secretary,
            after: renamed.clone().into(),
            amendment: amendment("title"),
        })
        .then_events(vec![OfficeCorrected {
            office: w.vice_secretary,
            before: facts,
            after: renamed,
            amendment: amendment("title"),
        }
        .into()]);
}

// ----- holdings -----

#[test]
fn start_holding_records_the_appointment() {
    let w = World::new();
    let h = HoldingId::new();
    let decision = w
        .given
        .when(start(h, w.a, w.secretary, "2020-10-15"))
        .then_ok();
    assert_eq!(decision.events.len(), 1);
    assert!(decision.warnings.is_empty(), "{:?}", decision.warnings);
}

#[test]
fn a_sole_office_has_one_holder_per_day() {
    let mut w = World::new();
    let (h1, h2) = (HoldingId::new(), HoldingId::new());
    w.given.run(start(h1, w.a, w.secretary, "2015-10-15"));
    w.given
        .when(start(h2, w.b, w.secretary, "2020-10-15"))
        .then_error(DomainError::CapacityExceeded {
            office: w.secretary,
            capacity: 1,
            count: 2,
            day: d("2020-10-15"),
            holders: vec![h1, h2],
        });
    // Back to back (half-open intervals) is fine.
    w.given.run(end(h1, "2020-10-15"));
    w.given
        .when(start(h2, w.b, w.secretary, "2020-10-15"))
        .then_ok();
}

#[test]
fn a_limited_office_counts_holders_day_by_day() {
    let mut w = World::new();
    let (h1, h2, h3) = (HoldingId::new(), HoldingId::new(), HoldingId::new());
    w.given.run(start(h1, w.a, w.vice_secretary, "2015-01-01"));
    w.given.run(end(h1, "2018-01-01"));
    w.given.run(start(h2, w.b, w.vice_secretary, "2016-01-01"));
    w.given
        .when(start(h3, w.c, w.vice_secretary, "2018-01-01"))
        .then_ok();
    w.given
        .when(start(h3, w.c, w.vice_secretary, "2017-06-01"))
        .then_error_matching(|e| {
            matches!(
                e,
                DomainError::CapacityExceeded {
                    capacity: 2,
                    count: 3,
                    ..
                }
            )
        });
}

#[test]
fn imprecise_dates_only_reject_what_cannot_be_true() {
    let mut w = World::new();
    let (h1, h2) = (HoldingId::new(), HoldingId::new());
    w.given.run(start(h1, w.a, w.secretary, "2015-10"));
    w.given.run(end(h1, "2020-10"));
    // The predecessor ended some day in October 2020: a successor from 15 October may be true.
    w.given
        .when(start(h2, w.b, w.secretary, "2020-10-15"))
        .then_ok();
    // But not one from September.
    w.given
        .when(start(h2, w.b, w.secretary, "2020-09-15"))
        .then_error_matching(|e| matches!(e, DomainError::CapacityExceeded { .. }));
}

#[test]
fn start_holding_rejections() {
    let mut w = World::new();
    let h = HoldingId::new();
    let ghost = PersonId::new();
    w.given
        .when(start(h, ghost, w.secretary, "2020-01-01"))
        .then_error(DomainError::NotFound(EntityRef::Person(ghost)));
    let no_office = OfficeId::new();
    w.given
        .when(start(h, w.a, no_office, "2020-01-01"))
        .then_error(DomainError::NotFound(EntityRef::Office(no_office)));
    w.given
        .when(start(h, w.a, w.secretary, "1980-01-01"))
        .then_error_matching(|e| matches!(e, DomainError::OutsideOfficeLife { .. }));
    let young = PersonId::new();
    w.given.run(Command::RegisterPerson {
        person: young,
        name: "Trẻ".into(),
        aliases: vec![],
        birth: Some("1995".parse().unwrap()),
    });
    w.given
        .when(start(h, young, w.secretary, "1994-06-01"))
        .then_error(DomainError::BeforeBirth {
            holding: h,
            person: young,
            birth: "1995".into(),
        });
    let cause = HoldingId::new();
    w.given.run(start(cause, w.a, w.secretary, "2020-01-01"));
    let concurrent_for_other = Command::StartHolding {
        holding: h,
        person: w.b,
        office: w.committee_chair,
        start: d("2020-01-01").into(),
        beginning: Beginning::Concurrent { cause },
        term: None,
        basis: None,
    };
    w.given
        .when(concurrent_for_other)
        .then_error(DomainError::CauseMismatch { holding: h, cause });
    let term = TermId::new();
    w.given.run(Command::OpenTerm {
        term,
        body: w.front,
        label: "2024-2029".into(),
        start: d("2024-10-01"),
        planned_end: None,
    });
    let wrong_term = Command::StartHolding {
        holding: h,
        person: w.b,
        office: w.committee_chair,
        start: d("2024-10-01").into(),
        beginning: Beginning::Elected,
        term: Some(term),
        basis: None,
    };
    w.given
        .when(wrong_term)
        .then_error(DomainError::TermOfAnotherBody {
            holding: h,
            term: EntityRef::Term(term),
            term_body: w.front,
            unit: w.committee,
        });
    w.given
        .when(start(cause, w.b, w.front_chair, "2020-01-01"))
        .then_error(DomainError::AlreadyExists(EntityRef::Holding(cause)));
}

#[test]
fn end_holding_and_its_rejections() {
    let mut w = World::new();
    let h = HoldingId::new();
    w.given.run(start(h, w.a, w.secretary, "2020-10-15"));
    w.given.when(end(h, "2025-10-01")).then_ok();
    w.given
        .when(end(h, "2020-10-15"))
        .then_error(DomainError::EndBeforeStart {
            what: EntityRef::Holding(h),
            start: "2020-10-15".into(),
            end: "2020-10-15".into(),
        });
    w.given
        .when(Command::EndHolding {
            holding: h,
            end: HoldingEnd::Open,
            reason: EndReason::Death,
            basis: None,
        })
        .then_error_matching(|e| matches!(e, DomainError::InvalidField { field: "end", .. }));
    let unknown = w
        .given
        .when(Command::EndHolding {
            holding: h,
            end: HoldingEnd::Unknown,
            reason: EndReason::Transfer,
            basis: None,
        })
        .then_ok();
    assert_eq!(
        unknown.warnings,
        vec![Irregularity::EndUnknown { holding: h }]
    );
    w.given.run(end(h, "2025-10-01"));
    w.given
        .when(end(h, "2025-11-01"))
        .then_error(DomainError::AlreadyEnded(EntityRef::Holding(h)));
    let ghost = HoldingId::new();
    w.given
        .when(end(ghost, "2025-11-01"))
        .then_error(DomainError::NotFound(EntityRef::Holding(ghost)));
}

#[test]
fn correct_holding_is_rechecked_against_everything_it_touches() {
    let mut w = World::new();
    let (h1, h2) = (HoldingId::new(), HoldingId::new());
    w.given.run(start(h1, w.a, w.secretary, "2010-01-01"));
    w.given.run(end(h1, "2015-01-01"));
    w.given.run(start(h2, w.b, w.secretary, "2015-01-01"));
    let facts = w.given.registry.holding(h1).unwrap().facts();
    // A back-dated correction that makes h1 end later collides with h2.
    let later = HoldingFacts {
        end: HoldingEnd::On(d("2016-01-01").into()),
        ..facts.clone()
    };
    w.given
        .when(Command::CorrectHolding {
            holding: h1,
            after: later.into(),
            amendment: amendment("decision misread"),
        })
        .then_error(DomainError::CapacityExceeded {
            office: w.secretary,
            capacity: 1,
            count: 2,
            day: d("2015-01-01"),
            holders: vec![h2, h1],
        });
    let earlier = HoldingFacts {
        end: HoldingEnd::On(d("2014-07-01").into()),
        ..facts.clone()
    };
    let decision = w
        .given
        .when(Command::CorrectHolding {
            holding: h1,
            after: earlier.clone().into(),
            amendment: amendment("decision misread"),
        })
        .then_events(vec![HoldingCorrected {
            holding: h1,
            before: facts.clone(),
            after: earlier,
            amendment: amendment("decision misread"),
        }
        .into()]);
    assert!(decision.warnings.is_empty());
    w.given
        .when(Command::CorrectHolding {
            holding: h1,
            after: facts.clone().into(),
            amendment: amendment(""),
        })
        .then_error_matching(|e| {
            matches!(
                e,
                DomainError::InvalidField {
                    field: "amendment.reason",
                    ..
                }
            )
        });
    let open_with_reason = HoldingFacts {
        end: HoldingEnd::Open,
        ..facts
    };
    w.given
        .when(Command::CorrectHolding {
            holding: h1,
            after: open_with_reason.into(),
            amendment: amendment("x"),
        })
        .then_error_matching(|e| {
            matches!(
                e,
                DomainError::InvalidField {
                    field: "after.end_reason",
                    ..
                }
            )
        });
}

#[test]
fn correct_person_rechecks_holdings_against_the_birth_date() {
    let mut w = World::new();
    w.given
        .run(start(HoldingId::new(), w.a, w.secretary, "2000-01-01"));
    let after = PersonFacts {
        name: "Nguyễn Văn An".into(),
        birth: Some("2001-03".parse().unwrap()),
    };
    w.given
        .when(Command::CorrectPerson {
            person: w.a,
            after: after.into(),
            amendment: amendment("typo"),
        })
        .then_error_matching(|e| matches!(e, DomainError::BeforeBirth { .. }));
    let after = PersonFacts {
        name: "Nguyễn Văn Ân".into(),
        birth: Some("1970".parse().unwrap()),
    };
    w.given
        .when(Command::CorrectPerson {
            person: w.a,
            after: after.into(),
            amendment: amendment("typo"),
        })
        .then_ok();
}

// ----- pilot models and terms -----

fn vice_front_model(model: ModelId) -> Command {
    Command::DefineModel {
        model,
        name: "Phó Bí thư đồng thời là Chủ tịch Ủy ban MTTQ cấp xã".into(),
        arrangement: Arrangement::ConcurrentOffices {
            roles: vec![
                Role {
                    unit_kind: UnitKind::PartyCommittee,
                    office_kind: OfficeKind::ViceSecretary,
                },
                Role {
                    unit_kind: UnitKind::FatherlandFront,
                    office_kind: OfficeKind::Chair,
                },
            ],
        },
        authorised_by: basis(),
    }
}

#[test]
fn define_adopt_and_withdraw_a_model() {
    let mut w = World::new();
    let model = ModelId::new();
    w.given.when(vice_front_model(model)).then_ok();
    w.given
        .when(Command::DefineModel {
            model,
            name: "x".into(),
            arrangement: Arrangement::ConcurrentOffices { roles: vec![] },
            authorised_by: basis(),
        })
        .then_error_matching(|e| {
            matches!(
                e,
                DomainError::InvalidField {
                    field: "arrangement.roles",
                    ..
                }
            )
        });
    w.given.run(vice_front_model(model));
    let adoption = AdoptionId::new();
    let adopt = Command::AdoptModel {
        adoption,
        model,
        unit: w.commune,
        on: d("2019-01-01"),
        basis: basis(),
    };
    w.given.when(adopt.clone()).then_ok();
    let ghost = ModelId::new();
    w.given
        .when(Command::AdoptModel {
            adoption,
            model: ghost,
            unit: w.commune,
            on: d("2019-01-01"),
            basis: basis(),
        })
        .then_error(DomainError::NotFound(EntityRef::Model(ghost)));
    w.given.run(adopt);
    w.given
        .when(Command::AdoptModel {
            adoption: AdoptionId::new(),
            model,
            unit: w.commune,
            on: d("2020-01-01"),
            basis: basis(),
        })
        .then_error(DomainError::InUse {
            target: EntityRef::Model(model),
            used_by: EntityRef::Adoption(adoption),
        });
    w.given
        .when(Command::WithdrawModel {
            adoption,
            on: d("2018-01-01"),
            basis: basis(),
        })
        .then_error_matching(|e| matches!(e, DomainError::EndBeforeStart { .. }));
    w.given.run(Command::WithdrawModel {
        adoption,
        on: d("2025-07-01"),
        basis: basis(),
    });
    w.given
        .when(Command::WithdrawModel {
            adoption,
            on: d("2025-08-01"),
            basis: basis(),
        })
        .then_error(DomainError::AlreadyEnded(EntityRef::Adoption(adoption)));
}

#[test]
fn open_term_of_a_living_body() {
    let w = World::new();
    let term = TermId::new();
    w.given
        .when(Command::OpenTerm {
            term,
            body: w.party,
            label: "2020-2025".into(),
            start: d("2020-10-15"),
            planned_end: Some(d("2025-10-15")),
        })
        .then_ok();
    w.given
        .when(Command::OpenTerm {
            term,
            body: w.party,
            label: "2020-2025".into(),
            start: d("2020-10-15"),
            planned_end: Some(d("2020-10-15")),
        })
        .then_error_matching(|e| matches!(e, DomainError::EndBeforeStart { .. }));
}

// ----- irregularities -----

#[test]
fn an_uncovered_combination_is_accepted_and_flagged_and_a_model_covers_it() {
    let mut w = World::new();
    let (vice, chair) = (HoldingId::new(), HoldingId::new());
    w.given
        .run(start(vice, w.a, w.vice_secretary, "2020-10-15"));
    let flagged = w
        .given
        .when(start(chair, w.a, w.front_chair, "2021-01-01"))
        .then_ok();
    assert_eq!(
        flagged.warnings,
        vec![Irregularity::UncoveredConcurrency {
            person: w.a,
            holdings: (vice, chair),
            on: d("2021-01-01")
        }]
    );
    let model = ModelId::new();
    w.given.run(vice_front_model(model));
    w.given.run(Command::AdoptModel {
        adoption: AdoptionId::new(),
        model,
        unit: w.commune,
        on: d("2020-01-01"),
        basis: basis(),
    });
    let covered = w
        .given
        .when(start(chair, w.a, w.front_chair, "2021-01-01"))
        .then_ok();
    assert!(covered.warnings.is_empty(), "{:?}", covered.warnings);
    // The model does not cover Secretary + Front Chair.
    let mut g = w.given.clone();
    let (sec, chair2) = (HoldingId::new(), HoldingId::new());
    g.run(start(sec, w.b, w.secretary, "2020-10-15"));
    let other = g
        .when(start(chair2, w.b, w.front_chair, "2021-01-01"))
        .then_ok();
    assert_eq!(other.warnings.len(), 1);
}

#[test]
fn too_many_offices_and_long_vacancies_are_flagged() {
    let mut w = World::new();
    w.given.policy = Policy {
        max_concurrent_holdings: 2,
        max_vacancy_days: 365,
    };
    w.given
        .run(start(HoldingId::new(), w.a, w.party_member, "2020-01-01"));
    w.given
        .run(start(HoldingId::new(), w.a, w.secretary, "2020-01-01"));
    let third = w
        .given
        .when(start(
            HoldingId::new(),
            w.a,
            w.committee_chair,
            "2020-01-01",
        ))
        .then_ok();
    assert!(third.warnings.contains(&Irregularity::TooManyOffices {
        person: w.a,
        count: 3,
        on: d("2020-01-01")
    }));
    let vacancy = third
        .warnings
        .iter()
        .find(|i| matches!(i, Irregularity::LongVacancy { .. }))
        .expect("the committee chair stood empty since 1990");
    assert_eq!(
        vacancy,
        &Irregularity::LongVacancy {
            office: w.committee_chair,
            vacant: Span::between(d("1990-01-01"), d("2020-01-01")),
            days: d("1990-01-01").days_until(d("2020-01-01"))
        }
    );
    let all = w
        .given
        .registry
        .irregularities(&w.given.policy, d("2024-01-01"));
    assert!(all.iter().any(
        |i| matches!(i, Irregularity::LongVacancy { office, .. } if *office == w.front_chair)
    ));
}

#[test]
fn missing_basis_is_flagged() {
    let w = World::new();
    let h = HoldingId::new();
    let decision = w
        .given
        .when(Command::StartHolding {
            holding: h,
            person: w.a,
            office: w.party_member,
            start: d("2020-01-01").into(),
            beginning: Beginning::Elected,
            term: None,
            basis: None,
        })
        .then_ok();
    assert_eq!(
        decision.warnings,
        vec![Irregularity::MissingBasis { holding: h }]
    );
}

/// As of a day: every flag whose first day is that day or earlier, ended or not; none that
/// begins later (issue 22, item 2). Each edge is tested on the day before and the day itself.
#[test]
fn irregularities_as_of_a_day_list_only_flags_begun_by_then() {
    let mut w = World::new();
    w.given.policy = Policy {
        max_concurrent_holdings: 2,
        max_vacancy_days: i64::MAX,
    };
    let (vice, chair, no_basis) = (HoldingId::new(), HoldingId::new(), HoldingId::new());
    w.given
        .run(start(vice, w.a, w.vice_secretary, "2020-10-15"));
    w.given.run(start(chair, w.a, w.front_chair, "2021-06-01"));
    w.given.run(end(chair, "2022-01-01"));
    w.given
        .run(start(HoldingId::new(), w.a, w.party_member, "2023-03-01"));
    w.given.run(Command::StartHolding {
        holding: no_basis,
        person: w.b,
        office: w.party_member,
        start: d("2019-05-01").into(),
        beginning: Beginning::Elected,
        term: None,
        basis: None,
    });
    let policy = w.given.policy;
    let listed = |day: &str| w.given.registry.irregularities(&policy, d(day));
    let concurrency = Irregularity::UncoveredConcurrency {
        person: w.a,
        holdings: (vice.min(chair), vice.max(chair)),
        on: d("2021-06-01"),
    };
    let missing = Irregularity::MissingBasis { holding: no_basis };
    assert!(!listed("2019-04-30").contains(&missing));
    assert!(listed("2019-05-01").contains(&missing));
    assert!(!listed("2021-05-31").contains(&concurrency));
    assert!(listed("2021-06-01").contains(&concurrency));
    // Ended on 2022-01-01, still listed later, with its first day.
    assert!(listed("2024-03-18").contains(&concurrency));
    // From 2023 A holds two offices (the Front chair ended in 2022): at the limit, not over.
    assert!(!listed("2024-03-18")
        .iter()
        .any(|i| matches!(i, Irregularity::TooManyOffices { .. })));
    assert!(
        listed("2019-04-30").is_empty(),
        "{:?}",
        listed("2019-04-30")
    );
}

/// The thresholds' edges: a count exactly at the limit and a vacancy of exactly the limit are
/// not flagged; one more is.
#[test]
fn flags_begin_one_past_their_thresholds() {
    let mut w = World::new();
    w.given.policy = Policy {
        max_concurrent_holdings: 2,
        max_vacancy_days: 365,
    };
    w.given
        .run(start(HoldingId::new(), w.a, w.party_member, "1990-01-01"));
    w.given
        .run(start(HoldingId::new(), w.a, w.secretary, "1990-01-01"));
    let policy = w.given.policy;
    let too_many = |g: &Given| {
        g.registry
            .irregularities(&policy, d("2024-01-01"))
            .into_iter()
            .filter(|i| matches!(i, Irregularity::TooManyOffices { .. }))
            .count()
    };
    assert_eq!(too_many(&w.given), 0, "two offices at a limit of two");
    let mut third = w.given.clone();
    third.run(start(
        HoldingId::new(),
        w.a,
        w.committee_chair,
        "1990-01-01",
    ));
    assert_eq!(too_many(&third), 1, "three offices at a limit of two");

    // The committee chair was established on 1990-01-01: a first holder 365 days later is
    // within the limit, 366 days later is not.
    let vacancies = |first: &str| {
        let mut g = w.given.clone();
        g.run(start(HoldingId::new(), w.b, w.committee_chair, first));
        g.registry
            .irregularities(&policy, d("2024-01-01"))
            .into_iter()
            .filter(|i| {
                matches!(i, Irregularity::LongVacancy { office, .. } if *office == w.committee_chair)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(d("1990-01-01").days_until(d("1991-01-01")), 365);
    assert!(vacancies("1991-01-01").is_empty());
    assert_eq!(
        vacancies("1991-01-02"),
        vec![Irregularity::LongVacancy {
            office: w.committee_chair,
            vacant: Span::between(d("1990-01-01"), d("1991-01-02")),
            days: 366,
        }]
    );
}

// ----- retractions -----

#[test]
fn retract_a_holding_frees_the_office_and_reserves_the_id() {
    let mut w = World::new();
    let h = HoldingId::new();
    w.given.run(start(h, w.a, w.secretary, "2020-10-15"));
    let retract = Command::Retract {
        target: EntityRef::Holding(h),
        amendment: amendment("entered for the wrong commune"),
    };
    w.given.when(retract.clone()).then_ok();
    w.given.run(retract.clone());
    assert!(w.given.registry.holding(h).is_none());
    w.given
        .when(start(HoldingId::new(), w.b, w.secretary, "2020-10-15"))
        .then_ok();
    w.given
        .when(start(h, w.b, w.secretary, "2020-10-15"))
        .then_error(DomainError::AlreadyExists(EntityRef::Holding(h)));
    w.given
        .when(end(h, "2021-01-01"))
        .then_error(DomainError::WasRetracted(EntityRef::Holding(h)));
    w.given
        .when(retract)
        .then_error(DomainError::WasRetracted(EntityRef::Holding(h)));
}

#[test]
fn retraction_refuses_what_others_rest_on() {
    let mut w = World::new();
    let (cause, dependent) = (HoldingId::new(), HoldingId::new());
    w.given.run(start(cause, w.a, w.secretary, "2020-10-15"));
    w.given.run(Command::StartHolding {
        holding: dependent,
        person: w.a,
        office: w.committee_chair,
        start: d("2020-10-15").into(),
        beginning: Beginning::Concurrent { cause },
        term: None,
        basis: Some(basis()),
    });
    w.given
        .when(Command::Retract {
            target: EntityRef::Holding(cause),
            amendment: amendment("x"),
        })
        .then_error(DomainError::InUse {
            target: EntityRef::Holding(cause),
            used_by: EntityRef::Holding(dependent),
        });
    w.given
        .when(Command::Retract {
            target: EntityRef::Person(w.a),
            amendment: amendment("x"),
        })
        .then_error(DomainError::InUse {
            target: EntityRef::Person(w.a),
            used_by: EntityRef::Holding(cause),
        });
    w.given
        .when(Command::Retract {
            target: EntityRef::Unit(w.front),
            amendment: amendment("x"),
        })
        .then_error(DomainError::InUse {
            target: EntityRef::Unit(w.front),
            used_by: EntityRef::Office(w.front_chair),
        });
    w.given
        .when(Command::Retract {
            target: EntityRef::Person(w.c),
            amendment: amendment("duplicate entry"),
        })
        .then_ok();
}

#[test]
fn a_past_holding_is_recorded_with_its_end_at_once() {
    let mut w = World::new();
    // The current secretary holds the office from 2020 on.
    w.given
        .run(start(HoldingId::new(), w.a, w.secretary, "2020-01-01"));
    let record = |holding, person, from: &str, until: &str| Command::RecordHolding {
        holding,
        person,
        office: w.secretary,
        start: from.parse().unwrap(),
        beginning: Beginning::Elected,
        term: None,
        basis: Some(basis()),
        end: HoldingEnd::On(until.parse().unwrap()),
        reason: EndReason::TermEnd,
        end_basis: None,
    };
    // A predecessor from 2015 to 2020: started open-ended it would overlap; with its end it fits.
    let past = HoldingId::new();
    let decision = w
        .given
        .when(record(past, w.b, "2015-01-01", "2020-01-01"))
        .then_ok();
    assert!(matches!(
        decision.events.as_slice(),
        [Event::HoldingStarted(s), Event::HoldingEnded(e)] if s.holding == past && e.holding == past
    ));
    w.given
        .when(start(HoldingId::new(), w.b, w.secretary, "2015-01-01"))
        .then_error_matching(|e| matches!(e, DomainError::CapacityExceeded { .. }));
    // Its end is checked like any end, and an overlap with it is refused.
    w.given.run(record(past, w.b, "2015-01-01", "2020-01-01"));
    w.given
        .when(record(HoldingId::new(), w.c, "2016-01-01", "2019-01-01"))
        .then_error_matching(|e| matches!(e, DomainError::CapacityExceeded { .. }));
    w.given
        .when(record(HoldingId::new(), w.c, "2012-01-01", "2011-01-01"))
        .then_error_matching(|e| matches!(e, DomainError::EndBeforeStart { .. }));
}
