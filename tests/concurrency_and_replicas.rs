//! Concurrency and replicas over real sockets and real processes:
//!
//! - 64 concurrent clients appoint 64 different persons to one sole office for overlapping
//!   dates: exactly one succeeds, the others get FAILED_PRECONDITION or ABORTED, and the office
//!   has one holder. Run against one daemon on the embedded store, and against two command
//!   processes sharing one PostgreSQL database (the race then crosses processes).
//! - One command process and two query processes on one PostgreSQL: a write is read back from
//!   both query processes using its commit position.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use registry_client::{request_id, v1, Client};
use support::{drop_schema, holders, postgres, Daemon, Registrar};
use tonic::Code;
use v1::{CapacityKind as Cap, Level, OfficeKind as Off, UnitKind as Kind};

const CLIENTS: usize = 64;

/// Sets up a sole office and 64 persons; returns the office and the persons.
async fn office_and_candidates(client: &Client) -> (String, Vec<String>, String) {
    let mut r = Registrar::new(client.clone());
    let area = r
        .unit(
            Kind::AdministrativeArea,
            Level::Commune,
            "Xã Tranh Chấp",
            &[],
        )
        .await;
    let party = r
        .unit(
            Kind::PartyCommittee,
            Level::Commune,
            "Đảng ủy xã Tranh Chấp",
            &[&area],
        )
        .await;
    let office = r
        .office(&party, "Bí thư Đảng ủy xã", Off::Secretary, Cap::Sole, 0)
        .await;
    let mut persons = Vec::new();
    for i in 0..CLIENTS {
        persons.push(r.person(&format!("Ứng Viên Số {i}")).await);
    }
    (office, persons, r.last)
}

/// 64 clients, each on its own connection to one of `addresses`, race for the office.
async fn race(addresses: &[String], office: &str, persons: &[String]) -> (usize, usize, usize) {
    let mut tasks = Vec::new();
    for (i, person) in persons.iter().enumerate() {
        let address = addresses[i % addresses.len()].clone();
        let (office, person) = (office.to_owned(), person.clone());
        tasks.push(tokio::spawn(async move {
            let client = Client::connect(&address).await.unwrap();
            // Overlapping starts over a few months; every holding is open-ended.
            let from = format!("2021-{:02}-{:02}", 1 + i % 6, 1 + i % 28);
            client
                .command()
                .start_holding(v1::StartHoldingRequest {
                    request_id: request_id(),
                    person,
                    office,
                    valid_from: from,
                    beginning: v1::BeginningKind::Elected as i32,
                    ..Default::default()
                })
                .await
                .map(|_| ())
                .map_err(|status| status.code())
        }));
    }
    let (mut won, mut refused, mut aborted) = (0, 0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => won += 1,
            Err(Code::FailedPrecondition) => refused += 1,
            Err(Code::Aborted) => aborted += 1,
            Err(other) => panic!("unexpected outcome {other:?}"),
        }
    }
    (won, refused, aborted)
}

async fn holders_on(query: &str, office: &str, date: &str, min: &str) -> Vec<String> {
    let client = Client::connect(query).await.unwrap();
    holders(&client, office, date, min)
        .await
        .into_iter()
        .map(|h| h.person)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_race_for_a_sole_office_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::embedded(dir.path(), &[]);
    let client = daemon.client().await;
    let (office, persons, _) = office_and_candidates(&client).await;
    let (won, refused, aborted) =
        race(std::slice::from_ref(&daemon.address), &office, &persons).await;
    assert_eq!((won, refused + aborted), (1, CLIENTS - 1));
    let head = support::store_stats(&client).await.head_position;
    for date in ["2021-12-31", "2030-01-01"] {
        assert_eq!(
            holders_on(&daemon.address, &office, date, &head)
                .await
                .len(),
            1,
            "{date}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_command_processes_race_on_postgres_and_two_query_processes_read_the_writes() {
    let Some(url) = postgres().await else { return };
    let schema = format!(
        "e2e_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros()
    );
    let store = ["--store", url.as_str(), "--pg-schema", schema.as_str()];
    let with = |services: &'static str| {
        let mut args = store.to_vec();
        args.extend(["--services", services]);
        Daemon::start(&args)
    };
    let writer_a = with("command,admin");
    let writer_b = with("command");
    let query_1 = with("query");
    let query_2 = with("query");

    // Read-your-writes from either replica: each write is read back at once with its position.
    let client = writer_a.client().await;
    for i in 0..10 {
        let result = client
            .command()
            .register_person(v1::RegisterPersonRequest {
                request_id: request_id(),
                display_name: format!("Người Thứ {i}"),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .result
            .unwrap();
        for query in [&query_1, &query_2] {
            let name = Client::connect(&query.address)
                .await
                .unwrap()
                .query()
                .get_person(v1::GetPersonRequest {
                    name: result.name.clone(),
                    date: "2024-01-01".into(),
                    min_position: result.commit_position.clone(),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("replica {} did not read write {i}: {e}", query.address))
                .into_inner()
                .display_name;
            assert_eq!(name, format!("Người Thứ {i}"));
        }
    }

    // The race, across two processes appending to one PostgreSQL stream.
    let (office, persons, last) = office_and_candidates(&client).await;
    // The second writer must know the persons before the race; its catch-up does that.
    let (won, refused, aborted) = race(
        &[writer_a.address.clone(), writer_b.address.clone()],
        &office,
        &persons,
    )
    .await;
    assert_eq!(
        (won, refused + aborted),
        (1, CLIENTS - 1),
        "refused {refused}, aborted {aborted}"
    );
    let head = support::store_stats(&client).await.head_position;
    assert!(!last.is_empty());
    for query in [&query_1, &query_2] {
        assert_eq!(
            holders_on(&query.address, &office, "2030-01-01", &head)
                .await
                .len(),
            1
        );
    }
    drop((writer_a, writer_b, query_1, query_2));
    drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_are_each_stored_once_at_their_own_position() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::embedded(dir.path(), &[]);
    let client = daemon.client().await;
    // 200 different requests at once, and one request sent 8 times at once.
    let mut tasks = Vec::new();
    for i in 0..200 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let request = v1::RegisterPersonRequest {
                request_id: request_id(),
                display_name: format!("Người Đồng Thời {i}"),
                ..Default::default()
            };
            client
                .command()
                .register_person(request)
                .await
                .map(|r| r.into_inner().result.unwrap())
        }));
    }
    let twice = v1::RegisterPersonRequest {
        request_id: request_id(),
        display_name: "Người Gửi Lại".into(),
        ..Default::default()
    };
    for _ in 0..8 {
        let (client, request) = (client.clone(), twice.clone());
        tasks.push(tokio::spawn(async move {
            client
                .command()
                .register_person(request)
                .await
                .map(|r| r.into_inner().result.unwrap())
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap().unwrap());
    }
    let (distinct, repeated) = answers.split_at(200);
    let mut positions: Vec<u64> = distinct
        .iter()
        .map(|a| a.commit_position.parse().unwrap())
        .collect();
    positions.sort_unstable();
    positions.dedup();
    assert_eq!(positions.len(), 200, "each write has its own position");
    assert!(repeated
        .iter()
        .all(|a| a.name == repeated[0].name && a.commit_position == repeated[0].commit_position));
    assert_eq!(
        repeated.iter().filter(|a| !a.replayed).count(),
        1,
        "the repeated request was recorded once"
    );
    let stats = support::store_stats(&client).await;
    assert_eq!(stats.events, 201);
    // Every answer's position holds that very write: read each back with it.
    for answer in distinct.iter().take(20) {
        let person = client
            .query()
            .get_person(v1::GetPersonRequest {
                name: answer.name.clone(),
                date: "2024-01-01".into(),
                min_position: answer.commit_position.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(person.display_name.starts_with("Người Đồng Thời"));
    }
    // After a restart the repeated request still gets the same answer.
    drop(client);
    assert_eq!(daemon.stop(), Some(0));
    let daemon = Daemon::embedded(dir.path(), &[]);
    let again = daemon
        .client()
        .await
        .command()
        .register_person(twice)
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
        (
            repeated[0].name.as_str(),
            repeated[0].commit_position.as_str(),
            true
        )
    );
}

/// PostgreSQL's clock steps back (simulated: the last event stamped an hour ahead, as by a
/// server whose clock was ahead): the next event recorded through registryd is stamped no
/// earlier, so "as known at" stays a prefix of the feed: as known just before the first event,
/// the registry knows neither it nor the one recorded after it (issue 22, item 21).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_known_at_stays_a_prefix_when_the_database_clock_steps_back() {
    let Some(url) = support::postgres().await else {
        return;
    };
    let schema = format!("e2e_clock_{}", std::process::id());
    support::drop_schema(&url, &schema).await;
    let args = ["--store", url.as_str(), "--pg-schema", schema.as_str()];
    let daemon = Daemon::start(&args);
    let client = daemon.client().await;
    let mut r = Registrar::new(client.clone());
    r.person("Người Trước").await;
    let (db, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    db.execute(
        &format!(
            "UPDATE {schema}.events SET recorded_at = recorded_at + 3600000000
             WHERE revision = (SELECT max(revision) FROM {schema}.events)"
        ),
        &[],
    )
    .await
    .unwrap();
    r.person("Người Sau").await;
    drop(daemon);
    // A new process folds the feed as stored.
    let daemon = Daemon::start(&args);
    let client = daemon.client().await;
    let first_recorded = client
        .audit()
        .list_changes(v1::ListChangesRequest {
            recorded_after: Some(prost_types::Timestamp::default()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .changes
        .iter()
        .find(|c| c.payload_json.contains("Người Trước"))
        .and_then(|c| c.recorded_at)
        .unwrap();
    let known = |at: prost_types::Timestamp| {
        let client = client.clone();
        async move {
            let mut names: Vec<String> = client
                .query()
                .list_persons(v1::ListPersonsRequest {
                    date: "2024-01-01".into(),
                    known_at: Some(at),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .persons
                .into_iter()
                .map(|p| p.display_name)
                .collect();
            names.sort();
            names
        }
    };
    assert!(
        known(support::just_before(first_recorded)).await.is_empty(),
        "as known before the first event, the one after it is not known either"
    );
    assert!(known(first_recorded)
        .await
        .contains(&"Người Trước".to_owned()));
    drop(daemon);
    support::drop_schema(&url, &schema).await;
}
