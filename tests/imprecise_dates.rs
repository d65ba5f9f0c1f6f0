//! What a registry that knows a date only to its month or year answers, over real gRPC: a day
//! is surely held, possibly held, or surely vacant, and a multi-seat office says how many of
//! its seats were filled (issue 22, items 3 and 4).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use registry_client::{request_id, v1, Client};
use support::{Daemon, Registrar};
use v1::{CapacityKind as Cap, Level, OfficeKind as Off, UnitKind as Kind};

/// The holders of `office` on `date`, once the replica has the writes up to `written`.
async fn holders(
    client: &Client,
    written: &str,
    office: &str,
    date: &str,
) -> v1::GetOfficeHoldersResponse {
    client
        .query()
        .get_office_holders(v1::GetOfficeHoldersRequest {
            office: office.into(),
            date: date.into(),
            min_position: written.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

fn names(holdings: &[v1::Holding]) -> Vec<&str> {
    holdings.iter().map(|h| h.name.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_is_surely_held_possibly_held_or_surely_vacant() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::embedded(dir.path(), &[]);
    let client = daemon.client().await;
    let mut r = Registrar::new(client.clone());
    let (_, committee, chair) = r.commune_with_chair("xã Tháng Sáu").await;
    let person = r.person("Lê Thị Sáu").await;
    // Began in June 2021, day not known.
    let june = r.hold(&person, &chair, "2021-06", None).await.name;

    let before = holders(&client, &r.last, &chair, "2021-05-31").await;
    assert!(before.vacant && before.holdings.is_empty() && before.possible_holdings.is_empty());
    let during = holders(&client, &r.last, &chair, "2021-06-15").await;
    assert!(!during.vacant, "someone may have held it: {during:?}");
    assert!(during.holdings.is_empty());
    assert_eq!(names(&during.possible_holdings), [june.as_str()]);
    assert_eq!((during.seats_filled, during.seats), (0, 1));
    let after = holders(&client, &r.last, &chair, "2021-07-01").await;
    assert_eq!(names(&after.holdings), [june.as_str()]);
    assert!(after.possible_holdings.is_empty() && !after.vacant);
    assert_eq!((after.seats_filled, after.seats), (1, 1));

    let offices = client
        .query()
        .list_person_offices(v1::ListPersonOfficesRequest {
            person: person.clone(),
            date: "2021-06-15".into(),
            min_position: r.last.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(offices.holdings.is_empty());
    assert_eq!(names(&offices.possible_holdings), [june.as_str()]);
    let listed = client
        .query()
        .list_holdings(v1::ListHoldingsRequest {
            date: "2021-06-15".into(),
            min_position: r.last.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.holdings.is_empty());
    assert_eq!(names(&listed.possible_holdings), [june.as_str()]);

    // Multi-seat offices: the seats filled, and the fixed number where there is one.
    let vice_chairs = r
        .office(
            &committee,
            "Phó Chủ tịch UBND",
            Off::ViceChair,
            Cap::Limited,
            5,
        )
        .await;
    let members = r
        .office(&committee, "Ủy viên UBND", Off::Member, Cap::Unbounded, 0)
        .await;
    for name in ["Phó Một", "Phó Hai"] {
        let p = r.person(name).await;
        r.hold(&p, &vice_chairs, "2020-01-01", None).await;
    }
    let vice = holders(&client, &r.last, &vice_chairs, "2024-03-18").await;
    assert_eq!((vice.seats_filled, vice.seats, vice.vacant), (2, 5, false));
    let none = holders(&client, &r.last, &members, "2024-03-18").await;
    assert_eq!((none.seats_filled, none.seats, none.vacant), (0, 0, true));
    let p = r.person("Ủy Viên Ba").await;
    r.hold(&p, &members, "2020-01-01", None).await;
    let one = holders(&client, &r.last, &members, "2024-03-18").await;
    assert_eq!((one.seats_filled, one.seats, one.vacant), (1, 0, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_possibly_held_role_is_uncertain_coverage_not_observed() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::embedded(dir.path(), &[]);
    let client = daemon.client().await;
    let mut r = Registrar::new(client.clone());
    let commune = r
        .unit(
            Kind::AdministrativeArea,
            Level::Commune,
            "xã Năm Hai Mốt",
            &[],
        )
        .await;
    let party = r
        .unit(
            Kind::PartyCommittee,
            Level::Commune,
            "Đảng ủy xã Năm Hai Mốt",
            &[&commune],
        )
        .await;
    let front = r
        .unit(
            Kind::FatherlandFront,
            Level::Commune,
            "MTTQ xã Năm Hai Mốt",
            &[&commune],
        )
        .await;
    let vice = r
        .office(&party, "Phó Bí thư", Off::ViceSecretary, Cap::Limited, 2)
        .await;
    let chair = r
        .office(&front, "Chủ tịch MTTQ", Off::Chair, Cap::Sole, 0)
        .await;
    let model = r
        .concurrent_model(
            "Phó Bí thư đồng thời là Chủ tịch MTTQ",
            &[
                (Kind::PartyCommittee, Off::ViceSecretary),
                (Kind::FatherlandFront, Off::Chair),
            ],
        )
        .await;
    let person = r.person("Trần Văn Kiêm").await;
    let cause = r.hold(&person, &vice, "2020-01-01", None).await.name;
    // Front Chair from some day of 2021.
    let written = client
        .command()
        .start_holding(v1::StartHoldingRequest {
            request_id: request_id(),
            person: person.clone(),
            office: chair.clone(),
            valid_from: "2021".into(),
            beginning: v1::BeginningKind::Concurrent as i32,
            cause,
            basis: Some(support::basis("7-QĐ/ĐU")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap()
        .commit_position;
    let coverage = |date: &'static str| {
        let (client, model, commune) = (client.clone(), model.clone(), commune.clone());
        let written = written.clone();
        async move {
            client
                .query()
                .get_model_coverage(v1::GetModelCoverageRequest {
                    model,
                    jurisdiction: commune,
                    level: Level::Commune as i32,
                    date: date.into(),
                    min_position: written,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let during = coverage("2021-03-01").await;
    assert!(during.observed.is_empty(), "{during:?}");
    assert_eq!(during.uncertain, std::slice::from_ref(&commune));
    let after = coverage("2022-01-01").await;
    assert_eq!(after.observed, std::slice::from_ref(&commune));
    assert!(after.uncertain.is_empty());
    let before = coverage("2020-06-01").await;
    assert!(before.observed.is_empty() && before.uncertain.is_empty());
}
