//! The seed article (Quảng Ninh, 18 March 2024) as a scenario: the named officials and their
//! concurrent offices, the commune pilot (Vice Secretary concurrently Front Chair), the common
//! advisory agency serving several organisations, and a later merger of two communes after
//! which the predecessor's history is still answerable.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::BTreeSet;

use registry_domain::*;
use support::*;

struct Seed {
    given: Given,
    people: Vec<(PersonId, &'static str)>,
    titles: std::collections::HashMap<OfficeId, &'static str>,
}

impl Seed {
    fn office(
        &mut self,
        unit: UnitId,
        title: &'static str,
        kind: OfficeKind,
        capacity: Capacity,
    ) -> OfficeId {
        let office = OfficeId::new();
        self.given.run(Command::CreateOffice {
            office,
            unit,
            title: title.into(),
            kind,
            capacity,
            on: d("1963-10-30"),
            basis: None,
        });
        self.titles.insert(office, title);
        office
    }

    fn unit(&mut self, kind: UnitKind, level: Level, name: &str, parents: Vec<UnitId>) -> UnitId {
        let unit = UnitId::new();
        self.given
            .run(establish(unit, kind, level, name, parents, "1963-10-30"));
        unit
    }

    fn person(&mut self, name: &'static str) -> PersonId {
        let person = PersonId::new();
        self.given.run(register(person, name));
        self.people.push((person, name));
        person
    }

    fn hold(
        &mut self,
        person: PersonId,
        office: OfficeId,
        from: &str,
        beginning: Beginning,
    ) -> (HoldingId, Decision) {
        let holding = HoldingId::new();
        let decision = self.given.run(Command::StartHolding {
            holding,
            person,
            office,
            start: from.parse().unwrap(),
            beginning,
            term: None,
            basis: Some(basis()),
        });
        (holding, decision)
    }

    /// The titles of the offices a person holds on a day, from the state alone.
    fn titles_on(&self, person: PersonId, day: Date) -> BTreeSet<&'static str> {
        let r = &self.given.registry;
        r.person(person)
            .unwrap()
            .holdings
            .iter()
            .map(|h| r.holding(*h).unwrap())
            .filter(|h| h.span().contains(day))
            .map(|h| self.titles[&h.office])
            .collect()
    }
}

#[test]
fn the_seed_article_as_a_registry() {
    use Level::*;
    use OfficeKind::*;
    use UnitKind::*;
    let mut s = Seed {
        given: Given::new(),
        people: vec![],
        titles: Default::default(),
    };
    s.given.policy.max_vacancy_days = i64::MAX;

    // Structure.
    let central = s.unit(
        PartyCommittee,
        Central,
        "Ban Chấp hành Trung ương Đảng",
        vec![],
    );
    let province = s.unit(AdministrativeArea, Province, "Tỉnh Quảng Ninh", vec![]);
    let provincial_party = s.unit(
        PartyCommittee,
        Province,
        "Tỉnh ủy Quảng Ninh",
        vec![province],
    );
    let provincial_council = s.unit(
        PeoplesCouncil,
        Province,
        "HĐND tỉnh Quảng Ninh",
        vec![province],
    );
    let city = s.unit(
        AdministrativeArea,
        District,
        "Thành phố Cẩm Phả",
        vec![province],
    );
    let city_party = s.unit(PartyCommittee, District, "Thành ủy Cẩm Phả", vec![city]);
    let city_council = s.unit(
        PeoplesCouncil,
        District,
        "HĐND thành phố Cẩm Phả",
        vec![city],
    );
    let city_committee = s.unit(
        PeoplesCommittee,
        District,
        "UBND thành phố Cẩm Phả",
        vec![city],
    );
    let city_front = s.unit(
        FatherlandFront,
        District,
        "Ủy ban MTTQ thành phố Cẩm Phả",
        vec![city],
    );
    let women = s.unit(
        SocioPoliticalOrganisation,
        District,
        "Hội Liên hiệp Phụ nữ thành phố",
        vec![city],
    );
    let youth = s.unit(
        SocioPoliticalOrganisation,
        District,
        "Đoàn Thanh niên thành phố",
        vec![city],
    );

    // Offices.
    let cc_member = s.office(
        central,
        "Ủy viên Trung ương Đảng",
        ExecutiveCommitteeMember,
        Capacity::Unbounded,
    );
    let prov_secretary = s.office(
        provincial_party,
        "Bí thư Tỉnh ủy",
        Secretary,
        Capacity::Sole,
    );
    let prov_member = s.office(
        provincial_party,
        "Ủy viên Ban Chấp hành Đảng bộ Tỉnh",
        ExecutiveCommitteeMember,
        Capacity::Unbounded,
    );
    let prov_council_chair = s.office(
        provincial_council,
        "Chủ tịch HĐND tỉnh",
        Chair,
        Capacity::Sole,
    );
    let city_secretary = s.office(city_party, "Bí thư Thành ủy", Secretary, Capacity::Sole);
    let city_standing_vice = s.office(
        city_party,
        "Phó Bí thư Thường trực Thành ủy",
        StandingViceSecretary,
        Capacity::Sole,
    );
    let city_vice = s.office(
        city_party,
        "Phó Bí thư Thành ủy",
        ViceSecretary,
        Capacity::Limited(3),
    );
    let city_council_chair = s.office(
        city_council,
        "Chủ tịch HĐND Thành phố",
        Chair,
        Capacity::Sole,
    );
    let city_committee_chair = s.office(
        city_committee,
        "Chủ tịch UBND Thành phố",
        Chair,
        Capacity::Sole,
    );

    // Standing arrangements ("đồng thời là"): the Secretary chairs the People's Council.
    let secretary_chairs_council = ModelId::new();
    s.given.run(Command::DefineModel {
        model: secretary_chairs_council,
        name: "Bí thư cấp ủy đồng thời là Chủ tịch HĐND".into(),
        arrangement: Arrangement::ConcurrentOffices {
            roles: vec![
                Role {
                    unit_kind: PartyCommittee,
                    office_kind: Secretary,
                },
                Role {
                    unit_kind: PeoplesCouncil,
                    office_kind: Chair,
                },
            ],
        },
        authorised_by: basis(),
    });
    s.given.run(Command::AdoptModel {
        adoption: AdoptionId::new(),
        model: secretary_chairs_council,
        unit: province,
        on: d("2020-01-01"),
        basis: basis(),
    });

    // People.
    let ky = s.person("Nguyễn Xuân Ký");
    let tu = s.person("Nguyễn Anh Tú");
    let phuong = s.person("Nguyễn Thị Kim Phượng");
    let hung = s.person("Phạm Lê Hưng");
    s.hold(ky, cc_member, "2021-01", Beginning::Elected);
    let (ky_secretary, _) = s.hold(ky, prov_secretary, "2020-10-15", Beginning::Elected);
    let (_, ky_council) = s.hold(
        ky,
        prov_council_chair,
        "2021-06-25",
        Beginning::Concurrent {
            cause: ky_secretary,
        },
    );
    assert!(
        ky_council.warnings.is_empty(),
        "covered by the adopted arrangement: {:?}",
        ky_council.warnings
    );
    s.hold(tu, prov_member, "2020-10-15", Beginning::Elected);
    let (tu_secretary, _) = s.hold(tu, city_secretary, "2020-10", Beginning::Elected);
    s.hold(
        tu,
        city_council_chair,
        "2021-06",
        Beginning::Concurrent {
            cause: tu_secretary,
        },
    );
    s.hold(phuong, city_standing_vice, "2020-10", Beginning::Elected);
    let (hung_vice, _) = s.hold(hung, city_vice, "2020-10", Beginning::Elected);
    let (_, hung_chair) = s.hold(
        hung,
        city_committee_chair,
        "2021-06",
        Beginning::Concurrent { cause: hung_vice },
    );
    // Vice Secretary + People's Committee Chair is real but no adopted model covers it: flagged.
    assert!(
        matches!(hung_chair.warnings.as_slice(), [Irregularity::UncoveredConcurrency { person, .. }] if *person == hung)
    );

    // Who held what on 18 March 2024.
    let day = d("2024-03-18");
    assert_eq!(
        s.titles_on(ky, day),
        BTreeSet::from([
            "Ủy viên Trung ương Đảng",
            "Bí thư Tỉnh ủy",
            "Chủ tịch HĐND tỉnh"
        ])
    );
    assert_eq!(
        s.titles_on(tu, day),
        BTreeSet::from([
            "Ủy viên Ban Chấp hành Đảng bộ Tỉnh",
            "Bí thư Thành ủy",
            "Chủ tịch HĐND Thành phố"
        ])
    );
    assert_eq!(
        s.titles_on(phuong, day),
        BTreeSet::from(["Phó Bí thư Thường trực Thành ủy"])
    );
    assert_eq!(
        s.titles_on(hung, day),
        BTreeSet::from(["Phó Bí thư Thành ủy", "Chủ tịch UBND Thành phố"])
    );
    // Before the 2020 congress none of them held these offices in the registry.
    assert!(s.titles_on(ky, d("2019-01-01")).is_empty());

    // The common advisory agency of the city's Front and socio-political organisations.
    let shared = ModelId::new();
    s.given.run(Command::DefineModel {
        model: shared,
        name: "Cơ quan tham mưu, giúp việc chung khối MTTQ và các tổ chức chính trị - xã hội cấp huyện".into(),
        arrangement: Arrangement::SharedUnit { unit_kind: AdvisoryAgency, serves: vec![FatherlandFront, SocioPoliticalOrganisation] },
        authorised_by: LegalBasis { number: "thí điểm".into(), issued_on: d("2016-01-01"), issuer: "Ban Bí thư Trung ương Đảng".into(), effective_on: None },
    });
    let agency = UnitId::new();
    s.given.run(establish(
        agency,
        AdvisoryAgency,
        District,
        "Cơ quan khối MTTQ và các đoàn thể thành phố",
        vec![city_front, women, youth],
        "2016-03-01",
    ));
    s.given.run(Command::AdoptModel {
        adoption: AdoptionId::new(),
        model: shared,
        unit: city,
        on: d("2016-03-01"),
        basis: basis(),
    });
    let serves: Vec<UnitId> = s
        .given
        .registry
        .unit(agency)
        .unwrap()
        .parents_on(day)
        .collect();
    assert_eq!(serves, vec![city_front, women, youth]);

    // Two communes: one with the pilot (Vice Secretary concurrently Front Chair), one without.
    let pilot = ModelId::new();
    s.given.run(Command::DefineModel {
        model: pilot,
        name: "Phó Bí thư cấp ủy đồng thời là Chủ tịch Ủy ban MTTQ cấp xã".into(),
        arrangement: Arrangement::ConcurrentOffices {
            roles: vec![
                Role {
                    unit_kind: PartyCommittee,
                    office_kind: ViceSecretary,
                },
                Role {
                    unit_kind: FatherlandFront,
                    office_kind: Chair,
                },
            ],
        },
        authorised_by: basis(),
    });
    let mut communes = Vec::new();
    for (name, with_pilot) in [("Xã Cộng Hòa", true), ("Xã Dương Huy", false)] {
        let commune = s.unit(AdministrativeArea, Commune, name, vec![city]);
        let party = s.unit(
            PartyCommittee,
            Commune,
            &format!("Đảng ủy {name}"),
            vec![commune],
        );
        let front = s.unit(
            FatherlandFront,
            Commune,
            &format!("Ủy ban MTTQ {name}"),
            vec![commune],
        );
        let committee = s.unit(
            PeoplesCommittee,
            Commune,
            &format!("UBND {name}"),
            vec![commune],
        );
        let vice = s.office(
            party,
            "Phó Bí thư Đảng ủy xã",
            ViceSecretary,
            Capacity::Limited(2),
        );
        let front_chair = s.office(front, "Chủ tịch Ủy ban MTTQ xã", Chair, Capacity::Sole);
        let committee_chair = s.office(committee, "Chủ tịch UBND xã", Chair, Capacity::Sole);
        let vice_person = s.person(if with_pilot {
            "Vũ Thị Hoa"
        } else {
            "Đỗ Văn Dũng"
        });
        let chair_person = s.person(if with_pilot {
            "Hoàng Văn Nam"
        } else {
            "Lý Thị Mai"
        });
        if with_pilot {
            s.given.run(Command::AdoptModel {
                adoption: AdoptionId::new(),
                model: pilot,
                unit: commune,
                on: d("2019-01-01"),
                basis: basis(),
            });
            let (v, _) = s.hold(vice_person, vice, "2020-08", Beginning::Elected);
            let (_, front) = s.hold(
                vice_person,
                front_chair,
                "2020-09",
                Beginning::Concurrent { cause: v },
            );
            assert!(
                front.warnings.is_empty(),
                "the adopted pilot covers it: {:?}",
                front.warnings
            );
        } else {
            s.hold(vice_person, vice, "2020-08", Beginning::Elected);
        }
        s.hold(
            chair_person,
            committee_chair,
            "2016-07-01",
            Beginning::Elected,
        );
        communes.push((
            commune,
            party,
            front,
            committee,
            committee_chair,
            chair_person,
        ));
    }
    let (cong_hoa, ..) = communes[0];
    let pilot_units: Vec<UnitId> = communes
        .iter()
        .filter(|(commune, ..)| {
            s.given
                .registry
                .unit(*commune)
                .unwrap()
                .adoptions
                .iter()
                .any(|a| {
                    let adoption = s.given.registry.adoption(*a).unwrap();
                    adoption.model == pilot && adoption.span.contains(day)
                })
        })
        .map(|(commune, ..)| *commune)
        .collect();
    assert_eq!(
        pilot_units,
        vec![cong_hoa],
        "1 of 2 communes applies the pilot on 2024-03-18"
    );

    // The merger of 1 July 2025: the two communes become one; each body merges; the new
    // commune's People's Committee Chair office continues the first one's, the other's is
    // abolished.
    let merged = UnitId::new();
    let merger_basis = LegalBasis {
        number: "1679/NQ-UBTVQH15".into(),
        issued_on: d("2025-06-16"),
        issuer: "Ủy ban Thường vụ Quốc hội".into(),
        effective_on: Some(d("2025-07-01")),
    };
    let on = d("2025-07-01");
    let new_unit = |unit, kind, name: &str, parents| {
        Successor::New(NewUnit {
            unit,
            kind,
            level: Commune,
            name: name.into(),
            parents,
        })
    };
    let (merged_party, merged_front, merged_committee) =
        (UnitId::new(), UnitId::new(), UnitId::new());
    s.given.run(Command::Reorganise(Reorganisation {
        ending: UnitEnding::Merged,
        predecessors: vec![communes[0].0, communes[1].0],
        successors: vec![new_unit(
            merged,
            AdministrativeArea,
            "Phường Cẩm Phả Mới",
            vec![province],
        )],
        on,
        basis: merger_basis.clone(),
        offices: vec![],
        children: communes
            .iter()
            .flat_map(|(_, party, front, committee, ..)| {
                [
                    (*party, vec![merged]),
                    (*front, vec![merged]),
                    (*committee, vec![merged]),
                ]
            })
            .collect(),
    }));
    let bodies = |c: &(UnitId, UnitId, UnitId, UnitId, OfficeId, PersonId)| [c.1, c.2, c.3];
    for (i, kind, id, name) in [
        (0, PartyCommittee, merged_party, "Đảng ủy phường"),
        (1, FatherlandFront, merged_front, "Ủy ban MTTQ phường"),
        (2, PeoplesCommittee, merged_committee, "UBND phường"),
    ] {
        let predecessors = vec![bodies(&communes[0])[i], bodies(&communes[1])[i]];
        let r = &s.given.registry;
        let offices: Vec<(OfficeId, OfficeFate)> = predecessors
            .iter()
            .flat_map(|u| r.unit(*u).unwrap().offices.clone())
            .map(|o| {
                (
                    o,
                    if o == communes[0].4 {
                        OfficeFate::CarryTo(id)
                    } else {
                        OfficeFate::Abolish
                    },
                )
            })
            .collect();
        s.given.run(Command::Reorganise(Reorganisation {
            ending: UnitEnding::Merged,
            predecessors,
            successors: vec![new_unit(id, kind, name, vec![merged])],
            on,
            basis: merger_basis.clone(),
            offices,
            children: vec![],
        }));
    }
    let r = &s.given.registry;
    // What became of Xã Dương Huy? It was merged into the new ward.
    let duong_huy = r.unit(communes[1].0).unwrap();
    assert_eq!(duong_huy.successors, vec![merged]);
    assert_eq!(duong_huy.name_on(d("2019-05-01")), "Xã Dương Huy");
    assert_eq!(
        r.unit(merged).unwrap().predecessors,
        vec![communes[0].0, communes[1].0]
    );
    // Who chaired the People's Committee of Xã Dương Huy on 2019-05-01? Still answerable.
    let chair_office = r.office(communes[1].4).unwrap();
    assert_eq!(chair_office.unit_on(d("2019-05-01")), communes[1].3);
    let holder = chair_office
        .holdings
        .iter()
        .map(|h| r.holding(*h).unwrap())
        .find(|h| h.span().contains(d("2019-05-01")))
        .expect("a chair on 2019-05-01");
    assert_eq!(r.person(holder.person).unwrap().name.as_ref(), "Lý Thị Mai");
    // Her holding ended with the merger, on its basis; the carried office's holder continues.
    assert_eq!(holder.end, HoldingEnd::On(on.into()));
    assert_eq!(holder.end_reason, Some(EndReason::UnitMerged));
    let carried = r.office(communes[0].4).unwrap();
    assert_eq!(carried.unit_on(on), merged_committee);
    assert!(carried.holdings.iter().any(|h| r
        .holding(*h)
        .unwrap()
        .span()
        .contains(d("2025-08-01"))));
    // The pilot adoption ended with the commune.
    let adoption = r.unit(cong_hoa).unwrap().adoptions[0];
    assert_eq!(r.adoption(adoption).unwrap().span.end, Some(on));
}
