//! The seed article end to end over real gRPC: `registryd` on an ephemeral port with a temporary
//! embedded store records the Quảng Ninh officials, their concurrent offices, the commune pilot
//! and the 2025 merger; the query, audit and admin services answer; then the daemon is stopped
//! with SIGTERM, restarted on the same data, and gives the same answers again.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::BTreeSet;

use registry_client::{request_id, v1, Client};
use support::{basis, Daemon, Registrar};
use tokio_stream::StreamExt;
use unicode_normalization::UnicodeNormalization;
use v1::{CapacityKind as Cap, Level, OfficeKind as Off, UnitKind as Kind};

struct Seed {
    ky: String,
    hung: String,
    hung_vice_holding: String,
    city: String,
    city_committee_chair: String,
    pilot: String,
    cong_hoa: String,
    duong_huy: String,
    duong_huy_chair: String,
    merged: String,
    typo_person: String,
    last: String,
}

/// Whether a write was flagged for holding two offices that no adopted model covers.
fn concurrency_flagged(result: &v1::WriteResult) -> bool {
    result
        .warnings
        .iter()
        .any(|w| w.kind == "uncovered_concurrency")
}

async fn record_seed(client: &Client) -> Seed {
    let mut r = Registrar::new(client.clone());
    let province = r
        .unit(
            Kind::AdministrativeArea,
            Level::Province,
            "Tỉnh Quảng Ninh",
            &[],
        )
        .await;
    let provincial_party = r
        .unit(
            Kind::PartyCommittee,
            Level::Province,
            "Tỉnh ủy Quảng Ninh",
            &[&province],
        )
        .await;
    let provincial_council = r
        .unit(
            Kind::PeoplesCouncil,
            Level::Province,
            "HĐND tỉnh Quảng Ninh",
            &[&province],
        )
        .await;
    let city = r
        .unit(
            Kind::AdministrativeArea,
            Level::District,
            "Thành phố Cẩm Phả",
            &[&province],
        )
        .await;
    let city_party = r
        .unit(
            Kind::PartyCommittee,
            Level::District,
            "Thành ủy Cẩm Phả",
            &[&city],
        )
        .await;
    let city_committee = r
        .unit(
            Kind::PeoplesCommittee,
            Level::District,
            "UBND thành phố Cẩm Phả",
            &[&city],
        )
        .await;
    let prov_secretary = r
        .office(
            &provincial_party,
            "Bí thư Tỉnh ủy",
            Off::Secretary,
            Cap::Sole,
            0,
        )
        .await;
    let prov_council_chair = r
        .office(
            &provincial_council,
            "Chủ tịch HĐND tỉnh",
            Off::Chair,
            Cap::Sole,
            0,
        )
        .await;
    let city_vice = r
        .office(
            &city_party,
            "Phó Bí thư Thành ủy",
            Off::ViceSecretary,
            Cap::Limited,
            3,
        )
        .await;
    let city_committee_chair = r
        .office(
            &city_committee,
            "Chủ tịch UBND Thành phố",
            Off::Chair,
            Cap::Sole,
            0,
        )
        .await;

    let secretary_chairs_council = r
        .concurrent_model(
            "Bí thư cấp ủy đồng thời là Chủ tịch HĐND",
            &[
                (Kind::PartyCommittee, Off::Secretary),
                (Kind::PeoplesCouncil, Off::Chair),
            ],
        )
        .await;
    r.adopt(&secretary_chairs_council, &province, "2020-01-01")
        .await;

    let ky = r.person("Nguyễn Xuân Ký").await;
    let hung = r.person("Phạm Lê Hưng").await;
    let ky_secretary = r.hold(&ky, &prov_secretary, "2020-10-15", None).await;
    let ky_council = r
        .hold(
            &ky,
            &prov_council_chair,
            "2021-06-25",
            Some(&ky_secretary.name),
        )
        .await;
    assert!(
        !concurrency_flagged(&ky_council),
        "covered by the adopted model: {:?}",
        ky_council.warnings
    );
    let hung_vice = r.hold(&hung, &city_vice, "2020-10", None).await;
    let hung_chair = r
        .hold(
            &hung,
            &city_committee_chair,
            "2021-06",
            Some(&hung_vice.name),
        )
        .await;
    assert!(
        concurrency_flagged(&hung_chair),
        "Vice Secretary and People's Committee Chair at once is real but flagged: {:?}",
        hung_chair.warnings
    );

    let pilot = r
        .concurrent_model(
            "Phó Bí thư cấp ủy đồng thời là Chủ tịch Ủy ban MTTQ cấp xã",
            &[
                (Kind::PartyCommittee, Off::ViceSecretary),
                (Kind::FatherlandFront, Off::Chair),
            ],
        )
        .await;
    struct Commune {
        unit: String,
        bodies: [String; 3],
        offices: [String; 3],
    }
    let mut communes = Vec::new();
    for (name, with_pilot) in [("Xã Cộng Hòa", true), ("Xã Dương Huy", false)] {
        let unit = r
            .unit(Kind::AdministrativeArea, Level::Commune, name, &[&city])
            .await;
        let party = r
            .unit(
                Kind::PartyCommittee,
                Level::Commune,
                &format!("Đảng ủy {name}"),
                &[&unit],
            )
            .await;
        let front = r
            .unit(
                Kind::FatherlandFront,
                Level::Commune,
                &format!("Ủy ban MTTQ {name}"),
                &[&unit],
            )
            .await;
        let committee = r
            .unit(
                Kind::PeoplesCommittee,
                Level::Commune,
                &format!("UBND {name}"),
                &[&unit],
            )
            .await;
        let vice = r
            .office(
                &party,
                "Phó Bí thư Đảng ủy xã",
                Off::ViceSecretary,
                Cap::Limited,
                2,
            )
            .await;
        let front_chair = r
            .office(&front, "Chủ tịch Ủy ban MTTQ xã", Off::Chair, Cap::Sole, 0)
            .await;
        let committee_chair = r
            .office(&committee, "Chủ tịch UBND xã", Off::Chair, Cap::Sole, 0)
            .await;
        let vice_person = r
            .person(if with_pilot {
                "Vũ Thị Hoa"
            } else {
                "Đỗ Văn Dũng"
            })
            .await;
        let chair_person = r
            .person(if with_pilot {
                "Hoàng Văn Nam"
            } else {
                "Lý Thị Mai"
            })
            .await;
        let v = r.hold(&vice_person, &vice, "2020-08", None).await;
        if with_pilot {
            r.adopt(&pilot, &unit, "2019-01-01").await;
            let front = r
                .hold(&vice_person, &front_chair, "2020-09", Some(&v.name))
                .await;
            assert!(
                !concurrency_flagged(&front),
                "the adopted pilot covers it: {:?}",
                front.warnings
            );
        }
        r.hold(&chair_person, &committee_chair, "2016-07-01", None)
            .await;
        communes.push(Commune {
            unit,
            bodies: [party, front, committee],
            offices: [vice, front_chair, committee_chair],
        });
    }

    // The merger of 1 July 2025: the two communes become one ward; each body merges; the ward's
    // People's Committee Chair continues Cộng Hòa's office, the other offices are abolished.
    let merged_id = request_id();
    let merger = v1::LegalBasis {
        number: "1679/NQ-UBTVQH15".into(),
        issued_on: "2025-06-16".into(),
        issuer: "Ủy ban Thường vụ Quốc hội".into(),
        effective_on: "2025-07-01".into(),
    };
    let reorganise = |predecessors: Vec<String>,
                      new: v1::NewUnit,
                      offices: Vec<v1::OfficeFate>,
                      children: Vec<v1::ChildPlacement>| {
        v1::ReorganiseUnitsRequest {
            request_id: request_id(),
            ending: v1::UnitEnding::Merged as i32,
            predecessors,
            successors: vec![v1::Successor {
                successor: Some(v1::successor::Successor::NewUnit(new)),
            }],
            valid_from: "2025-07-01".into(),
            basis: Some(merger.clone()),
            offices,
            children,
        }
    };
    let children = communes
        .iter()
        .flat_map(|c| {
            c.bodies.iter().map(|b| v1::ChildPlacement {
                unit: b.clone(),
                parents: vec![format!("units/{merged_id}")],
            })
        })
        .collect();
    let area = v1::NewUnit {
        unit_id: merged_id.clone(),
        kind: Kind::AdministrativeArea as i32,
        level: Level::Commune as i32,
        display_name: "Phường Cẩm Phả Mới".into(),
        parents: vec![province.clone()],
    };
    let merged = client
        .command()
        .reorganise_units(reorganise(
            communes.iter().map(|c| c.unit.clone()).collect(),
            area,
            vec![],
            children,
        ))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap()
        .name;
    for (i, kind, name) in [
        (0, Kind::PartyCommittee, "Đảng ủy phường"),
        (1, Kind::FatherlandFront, "Ủy ban MTTQ phường"),
        (2, Kind::PeoplesCommittee, "UBND phường"),
    ] {
        let body_id = request_id();
        let offices = communes
            .iter()
            .enumerate()
            .map(|(c, commune)| v1::OfficeFate {
                office: commune.offices[i].clone(),
                carry_to: if c == 0 && i == 2 {
                    body_id.clone()
                } else {
                    String::new()
                },
            })
            .collect();
        let body = v1::NewUnit {
            unit_id: body_id.clone(),
            kind: kind as i32,
            level: Level::Commune as i32,
            display_name: name.into(),
            parents: vec![merged.clone()],
        };
        client
            .command()
            .reorganise_units(reorganise(
                communes.iter().map(|c| c.bodies[i].clone()).collect(),
                body,
                offices,
                vec![],
            ))
            .await
            .unwrap_or_else(|e| panic!("merging the {name}: {e}"));
    }

    // A name entered with a typo, then corrected by an administrator.
    let typo_person = r.person("Nguyen Van Tuu").await;
    let corrected = client
        .admin()
        .correct_person(v1::CorrectPersonRequest {
            request_id: request_id(),
            person: typo_person.clone(),
            display_name: "Nguyễn Văn Tú".into(),
            birth: String::new(),
            amendment: Some(v1::Amendment {
                reason: "typing error in the import".into(),
                basis: Some(basis("7/BC")),
            }),
            update_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();

    Seed {
        ky,
        hung,
        hung_vice_holding: hung_vice.name,
        city,
        city_committee_chair,
        pilot,
        cong_hoa: communes[0].unit.clone(),
        duong_huy: communes[1].unit.clone(),
        duong_huy_chair: communes[1].offices[2].clone(),
        merged,
        typo_person,
        last: corrected.commit_position,
    }
}

async fn titles(client: &Client, person: &str, date: &str, min: &str) -> BTreeSet<String> {
    client
        .query()
        .list_person_offices(v1::ListPersonOfficesRequest {
            person: person.into(),
            date: date.into(),
            min_position: min.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .holdings
        .into_iter()
        .map(|h| h.office_title)
        .collect()
}

/// Asks every kind of question, checks the answers, and returns them for comparison.
async fn answers(client: &Client, s: &Seed) -> Vec<String> {
    let mut all = Vec::new();
    let q = client.query();
    let day = "2024-03-18";

    let ky = titles(client, &s.ky, day, &s.last).await;
    assert_eq!(
        ky,
        BTreeSet::from(["Bí thư Tỉnh ủy".to_owned(), "Chủ tịch HĐND tỉnh".to_owned()])
    );
    let hung = titles(client, &s.hung, day, &s.last).await;
    assert_eq!(
        hung,
        BTreeSet::from([
            "Phó Bí thư Thành ủy".to_owned(),
            "Chủ tịch UBND Thành phố".to_owned()
        ])
    );
    assert!(titles(client, &s.ky, "2019-01-01", &s.last)
        .await
        .is_empty());
    all.push(format!("{ky:?} {hung:?}"));

    let holders = q
        .clone()
        .get_office_holders(v1::GetOfficeHoldersRequest {
            office: s.city_committee_chair.clone(),
            date: day.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(holders.holdings.len(), 1);
    let holding = &holders.holdings[0];
    assert_eq!(
        (
            holding.person.as_str(),
            holding.person_display_name.as_str()
        ),
        (s.hung.as_str(), "Phạm Lê Hưng")
    );
    assert_eq!(holding.beginning, v1::BeginningKind::Concurrent as i32);
    assert_eq!(holding.cause, s.hung_vice_holding);
    assert_eq!(
        holding.basis.as_ref().map(|b| b.number.as_str()),
        Some("12-QĐ/TU")
    );
    assert!(!holders.vacant);
    all.push(format!("{holders:?}"));

    let vice = q
        .clone()
        .get_holding(v1::GetHoldingRequest {
            name: s.hung_vice_holding.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .holding
        .unwrap();
    assert_eq!(
        (
            vice.person.as_str(),
            vice.office_title.as_str(),
            vice.start.as_str()
        ),
        (s.hung.as_str(), "Phó Bí thư Thành ủy", "2020-10")
    );
    all.push(format!("{vice:?}"));

    // Name search: without diacritics, and in decomposed form.
    let folded = q
        .clone()
        .search_persons(v1::SearchPersonsRequest {
            query: "nguyen xuan ky".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        folded
            .matches
            .first()
            .map(|m| (m.person.as_str(), m.match_kind)),
        Some((s.ky.as_str(), v1::MatchKind::Folded as i32))
    );
    let decomposed: String = "Nguyễn Xuân Ký".nfd().collect();
    let exact = q
        .clone()
        .search_persons(v1::SearchPersonsRequest {
            query: decomposed,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        exact
            .matches
            .first()
            .map(|m| (m.person.as_str(), m.match_kind)),
        Some((s.ky.as_str(), v1::MatchKind::Exact as i32))
    );
    all.push(format!("{folded:?} {exact:?}"));

    // The pilot: 1 of 2 communes of the city, declared and observed.
    let coverage = q
        .clone()
        .get_model_coverage(v1::GetModelCoverageRequest {
            model: s.pilot.clone(),
            jurisdiction: s.city.clone(),
            level: Level::Commune as i32,
            date: day.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(coverage.unit_count, 2);
    assert_eq!(coverage.declared, std::slice::from_ref(&s.cong_hoa));
    assert_eq!(coverage.observed, std::slice::from_ref(&s.cong_hoa));
    assert!(coverage.declared_only.is_empty() && coverage.observed_only.is_empty());
    all.push(format!("{coverage:?}"));
    // The city itself does not observe it: its own Vice Secretary (Hưng) chairs its People's
    // Committee, not its Front; what a commune under it does is the commune's.
    let city_coverage = q
        .clone()
        .get_model_coverage(v1::GetModelCoverageRequest {
            model: s.pilot.clone(),
            jurisdiction: s.city.clone(),
            level: Level::District as i32,
            date: day.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(city_coverage.unit_count, 1);
    assert!(
        city_coverage.observed.is_empty() && city_coverage.declared.is_empty(),
        "{city_coverage:?}"
    );
    all.push(format!("{city_coverage:?}"));

    // What became of Xã Dương Huy, and who chaired its People's Committee in 2019.
    let lineage = q
        .clone()
        .get_unit_lineage(v1::GetUnitLineageRequest {
            name: s.duong_huy.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        lineage
            .successors
            .iter()
            .map(|l| (l.unit.as_str(), l.valid_from.as_str()))
            .collect::<Vec<_>>(),
        [(s.merged.as_str(), "2025-07-01")]
    );
    let unit = q
        .clone()
        .get_unit(v1::GetUnitRequest {
            name: s.duong_huy.clone(),
            date: "2019-05-01".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .unit
        .unwrap();
    assert_eq!(
        (unit.display_name.as_str(), unit.valid_until.as_str()),
        ("Xã Dương Huy", "2025-07-01")
    );
    let chair = q
        .clone()
        .get_office_holders(v1::GetOfficeHoldersRequest {
            office: s.duong_huy_chair.clone(),
            date: "2019-05-01".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let chair = &chair.holdings[0];
    assert_eq!(chair.person_display_name, "Lý Thị Mai");
    assert_eq!(
        (chair.end.as_str(), chair.end_reason),
        ("2025-07-01", v1::EndReason::UnitMerged as i32)
    );
    all.push(format!("{lineage:?} {unit:?} {chair:?}"));

    // The correction: now, and as known just before it.
    let history = client
        .audit()
        .list_resource_history(v1::ListResourceHistoryRequest {
            name: s.typo_person.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let kinds: Vec<(&str, &str)> = history
        .changes
        .iter()
        .map(|c| (c.event_type.as_str(), c.actor.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("PersonRegistered", "e2e-test"),
            ("PersonCorrected", "e2e-test")
        ]
    );
    assert!(history.changes[1]
        .payload_json
        .contains("typing error in the import"));
    let before = support::just_before(history.changes[1].recorded_at.unwrap());
    let name_at = |known_at| {
        let q = q.clone();
        let person = s.typo_person.clone();
        async move {
            q.clone()
                .get_person(v1::GetPersonRequest {
                    name: person,
                    date: "2024-01-01".into(),
                    known_at,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .display_name
        }
    };
    assert_eq!(name_at(None).await, "Nguyễn Văn Tú");
    assert_eq!(name_at(Some(before)).await, "Nguyen Van Tuu");
    all.push(format!("{history:?}"));

    let irregular = client
        .audit()
        .list_irregularities(v1::ListIrregularitiesRequest {
            date: day.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(irregular
        .irregularities
        .iter()
        .any(|i| i.kind == "uncovered_concurrency" && i.subjects.contains(&s.hung)));
    all.push(format!("{irregular:?}"));

    // The same list within a unit: flags about offices in or under it, and under the communes
    // the 2025 ward continues (Dương Huy's chair stood vacant from 1963 to 2016, long before
    // the ward existed; the commune was under the city then).
    let within = |unit: &str| {
        let request = v1::ListIrregularitiesRequest {
            date: day.into(),
            unit: unit.into(),
            ..Default::default()
        };
        let mut audit = client.audit();
        async move { audit.list_irregularities(request).await }
    };
    let names_chair = |i: &v1::Irregularity| i.subjects.contains(&s.duong_huy_chair);
    for unit in [&s.merged, &s.duong_huy, &s.city] {
        let found = within(unit).await.unwrap().into_inner().irregularities;
        assert!(
            found.iter().all(|i| irregular.irregularities.contains(i)),
            "{unit}: {found:?}"
        );
        assert!(found.iter().any(names_chair), "{unit}: {found:?}");
        // Hưng's two city offices at once are the city's flag, not the communes'.
        assert_eq!(
            found.iter().any(|i| i.subjects.contains(&s.hung)),
            unit == &s.city,
            "{unit}: {found:?}"
        );
        all.push(format!("{found:?}"));
    }
    let other_commune = within(&s.cong_hoa).await.unwrap().into_inner();
    assert!(
        !other_commune.irregularities.iter().any(names_chair),
        "{other_commune:?}"
    );
    let unknown = within("units/0193a5e0-0000-7000-8000-0000000000ff").await;
    assert_eq!(unknown.unwrap_err().code(), tonic::Code::NotFound);
    let not_a_unit = within(&s.duong_huy_chair).await.unwrap_err();
    assert_eq!(not_a_unit.code(), tonic::Code::InvalidArgument);
    assert!(not_a_unit.message().contains("unit"), "{not_a_unit:?}");

    // The change feed from the start delivers every event of the store, in order.
    let stats = support::store_stats(client).await;
    assert_eq!(stats.backend, "embedded");
    let mut feed = client
        .audit()
        .stream_changes(v1::StreamChangesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut revisions = Vec::new();
    while (revisions.len() as u64) < stats.events {
        let change = feed.next().await.unwrap().unwrap().change.unwrap();
        revisions.push(change.revision);
    }
    assert_eq!(revisions, (0..stats.events).collect::<Vec<_>>());
    all.push(format!("{} {}", stats.head_position, stats.events));

    // What the registry learned since just before the correction: the correction itself.
    let changes = client
        .audit()
        .list_changes(v1::ListChangesRequest {
            recorded_after: Some(before),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let types: Vec<&str> = changes
        .changes
        .iter()
        .map(|c| c.event_type.as_str())
        .collect();
    assert_eq!(types.first(), Some(&"PersonCorrected"), "{types:?}");
    all.push(format!("{types:?}"));
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_article_end_to_end_and_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::embedded(dir.path(), &[]);
    let client = daemon.client().await;
    let seed = record_seed(&client).await;

    // The health service reports every registry service as serving.
    for service in [
        "",
        "registry.v1.CommandService",
        "registry.v1.QueryService",
        "registry.v1.AuditService",
        "registry.v1.AdminService",
    ] {
        let status = client
            .health()
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service:?}"
        );
    }

    // A subscriber to the live feed receives a write made after it subscribed.
    let head = support::store_stats(&client).await.head_position;
    let mut live = client
        .audit()
        .stream_changes(v1::StreamChangesRequest {
            after_position: head,
        })
        .await
        .unwrap()
        .into_inner();
    let late = Registrar::new(client.clone()).person("Đinh Văn Muộn").await;
    let change = live.next().await.unwrap().unwrap().change.unwrap();
    assert_eq!(
        (change.event_type.as_str(), change.subjects.as_slice()),
        ("PersonRegistered", std::slice::from_ref(&late))
    );

    // A replica asked for a position it has not reached answers DEADLINE_EXCEEDED within the
    // caller's deadline, naming the position.
    let mut ahead = tonic::Request::new(v1::GetPersonRequest {
        name: late.clone(),
        date: "2024-01-01".into(),
        min_position: "999999".into(),
        ..Default::default()
    });
    ahead.set_timeout(std::time::Duration::from_millis(500));
    let started = std::time::Instant::now();
    let status = client.query().get_person(ahead).await.unwrap_err();
    assert_eq!(
        status.code(),
        tonic::Code::DeadlineExceeded,
        "{}",
        status.message()
    );
    assert!(status.message().contains("999999"), "{}", status.message());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // A repeated request returns the first answer and appends nothing.
    let request = v1::RegisterPersonRequest {
        request_id: request_id(),
        display_name: "Trần Văn Lặp".into(),
        ..Default::default()
    };
    let first = client
        .command()
        .register_person(request.clone())
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    let again = client
        .command()
        .register_person(request.clone())
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(
        (
            again.name.as_str(),
            again.commit_position.as_str(),
            again.replayed
        ),
        (first.name.as_str(), first.commit_position.as_str(), true)
    );
    let head = support::store_stats(&client).await.head_position;
    assert_eq!(head, first.commit_position);
    let before = answers(&client, &seed).await;

    drop(client);
    assert_eq!(
        daemon.stop(),
        Some(0),
        "SIGTERM stops the daemon cleanly, although a change feed is open"
    );
    // The open feed was told why it ended.
    let mut delivered = Vec::new();
    let ended = loop {
        match live.next().await.unwrap() {
            Ok(next) => delivered.push(next.change.unwrap().event_type),
            Err(status) => break status,
        }
    };
    assert_eq!(
        delivered,
        ["PersonRegistered"],
        "the write made after the first live one"
    );
    assert_eq!(
        ended.code(),
        tonic::Code::Unavailable,
        "{}",
        ended.message()
    );
    let daemon = Daemon::embedded(dir.path(), &[]);
    let client = daemon.client().await;
    let after = answers(&client, &seed).await;
    assert_eq!(before, after);
    // The request id is remembered across the restart.
    let replayed = client
        .command()
        .register_person(request)
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!((replayed.name, replayed.replayed), (first.name, true));
}
