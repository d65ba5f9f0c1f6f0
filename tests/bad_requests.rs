//! A table of bad requests against a real `registryd`: each is answered with the right status
//! code and a message naming the field (or the rule, in an `ErrorInfo` detail), and the store's
//! head position is unchanged after every one.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use registry_client::{request_id, v1, Client};
use support::{basis, Daemon, Registrar};
use tonic::{Code, Status};
use tonic_types::StatusExt;
use v1::{CapacityKind as Cap, Level, OfficeKind as Off};

async fn head(client: &Client) -> String {
    support::store_stats(client).await.head_position
}

struct Table {
    client: Client,
    head: String,
    checked: usize,
}

impl Table {
    /// Checks one rejected call: its code, that `needle` is in its message (or is the rule of
    /// its `ErrorInfo`), and that nothing was stored.
    async fn expect<T: std::fmt::Debug>(
        &mut self,
        case: &str,
        outcome: Result<tonic::Response<T>, Status>,
        code: Code,
        needle: &str,
    ) {
        let status = match outcome {
            Ok(response) => panic!("{case}: accepted: {:?}", response.into_inner()),
            Err(status) => status,
        };
        assert_eq!(status.code(), code, "{case}: {}", status.message());
        let rule = status
            .get_details_error_info()
            .map(|info| info.reason)
            .unwrap_or_default();
        let fields: Vec<String> = status
            .get_details_bad_request()
            .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
            .unwrap_or_default();
        assert!(
            status.message().contains(needle) || rule == needle,
            "{case}: {needle:?} is neither in the message {:?} nor the rule {rule:?}",
            status.message()
        );
        if code == Code::InvalidArgument && !status.message().contains("message length") {
            assert!(
                fields.iter().any(|f| f == needle),
                "{case}: field {needle:?} not in the BadRequest detail {fields:?}"
            );
            let length = status.message().chars().count();
            assert!(
                length < 300,
                "{case}: the message echoes too much: {length} characters"
            );
        }
        assert_eq!(
            head(&self.client).await,
            self.head,
            "{case}: the store changed"
        );
        self.checked += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_named_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::embedded(dir.path(), &["--max-message-bytes", "65536"]);
    let client = daemon.client().await;
    let mut r = Registrar::new(client.clone());
    let (area, committee, chair) = r.commune_with_chair("xã Thử").await;
    let person = r.person("Nguyễn Văn Một").await;
    let other = r.person("Trần Thị Hai").await;
    let holding = r.hold(&person, &chair, "2020-01-01", None).await.name;
    let model = r
        .concurrent_model(
            "Bí thư đồng thời là Chủ tịch UBND",
            &[
                (v1::UnitKind::PartyCommittee, Off::Secretary),
                (v1::UnitKind::PeoplesCommittee, Off::Chair),
            ],
        )
        .await;

    let mut t = Table {
        head: head(&client).await,
        client: client.clone(),
        checked: 0,
    };
    let c = client.command();
    let start = |person: &str, from: &str| v1::StartHoldingRequest {
        request_id: request_id(),
        person: person.into(),
        office: chair.clone(),
        valid_from: from.into(),
        beginning: v1::BeginningKind::Appointed as i32,
        basis: Some(basis("3/QĐ")),
        ..Default::default()
    };
    let register = |name: String| v1::RegisterPersonRequest {
        request_id: request_id(),
        display_name: name,
        ..Default::default()
    };

    t.expect(
        "impossible date",
        c.clone().start_holding(start(&other, "2024-02-30")).await,
        Code::InvalidArgument,
        "valid_from",
    )
    .await;
    t.expect(
        "end before start",
        c.clone()
            .end_holding(v1::EndHoldingRequest {
                request_id: request_id(),
                holding: holding.clone(),
                valid_until: "2019-06-01".into(),
                reason: v1::EndReason::Resignation as i32,
                ..Default::default()
            })
            .await,
        Code::FailedPrecondition,
        "END_BEFORE_START",
    )
    .await;
    t.expect(
        "empty name",
        c.clone().register_person(register("   ".into())).await,
        Code::InvalidArgument,
        "display_name",
    )
    .await;
    t.expect(
        "50 kB name",
        c.clone()
            .register_person(register("Nguyễn ".repeat(5_000)))
            .await,
        Code::InvalidArgument,
        "display_name",
    )
    .await;
    t.expect(
        "unknown person",
        c.clone()
            .start_holding(start(&format!("persons/{}", request_id()), "2024-01-01"))
            .await,
        Code::NotFound,
        "not found",
    )
    .await;
    t.expect(
        "a unit's id where a person's goes",
        c.clone().start_holding(start(&area, "2024-01-01")).await,
        Code::InvalidArgument,
        "person",
    )
    .await;
    t.expect(
        "unknown enum value",
        c.clone()
            .create_office(v1::CreateOfficeRequest {
                request_id: request_id(),
                unit: committee.clone(),
                title: "Phó Chủ tịch".into(),
                kind: 99,
                capacity: Some(v1::Capacity {
                    kind: Cap::Sole as i32,
                    limit: 0,
                }),
                valid_from: "2020-01-01".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "kind",
    )
    .await;
    t.expect(
        "unspecified enum value",
        c.clone()
            .establish_unit(v1::EstablishUnitRequest {
                request_id: request_id(),
                kind: 0,
                level: Level::Commune as i32,
                display_name: "Xã Không Loại".into(),
                valid_from: "2020-01-01".into(),
                basis: Some(basis("4/NQ")),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "kind",
    )
    .await;
    t.expect(
        "a limited capacity of zero",
        c.clone()
            .create_office(v1::CreateOfficeRequest {
                request_id: request_id(),
                unit: committee.clone(),
                title: "Phó Chủ tịch".into(),
                kind: Off::ViceChair as i32,
                capacity: Some(v1::Capacity {
                    kind: Cap::Limited as i32,
                    limit: 0,
                }),
                valid_from: "2020-01-01".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "capacity.limit",
    )
    .await;
    t.expect(
        "no request id",
        c.clone()
            .register_person(v1::RegisterPersonRequest {
                display_name: "Lê Văn Ba".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "request_id",
    )
    .await;
    t.expect(
        "a second sole holder",
        c.clone().start_holding(start(&other, "2023-01-01")).await,
        Code::FailedPrecondition,
        "CAPACITY_EXCEEDED",
    )
    .await;
    t.expect(
        "an id in use",
        c.clone()
            .register_person(v1::RegisterPersonRequest {
                request_id: request_id(),
                person_id: person.clone(),
                display_name: "Nguyễn Văn Một".into(),
                ..Default::default()
            })
            .await,
        Code::AlreadyExists,
        "already exists",
    )
    .await;
    t.expect(
        "a correction without a reason",
        client
            .admin()
            .retract_record(v1::RetractRecordRequest {
                request_id: request_id(),
                name: other.clone(),
                amendment: Some(v1::Amendment::default()),
            })
            .await,
        Code::InvalidArgument,
        "amendment.reason",
    )
    .await;
    t.expect(
        "a correction with no amendment at all",
        client
            .admin()
            .correct_person(v1::CorrectPersonRequest {
                request_id: request_id(),
                person: other.clone(),
                display_name: "Trần Thị Hai".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "amendment.reason",
    )
    .await;
    t.expect(
        "an oversized message",
        c.clone()
            .register_person(v1::RegisterPersonRequest {
                request_id: request_id(),
                display_name: "Phạm Văn Bốn".into(),
                aliases: vec!["x".repeat(1000); 100],
                ..Default::default()
            })
            .await,
        Code::OutOfRange,
        "message length too large",
    )
    .await;
    let q = client.query();
    t.expect(
        "a query date that does not exist",
        q.clone()
            .get_office_holders(v1::GetOfficeHoldersRequest {
                office: chair.clone(),
                date: "2023-13-01".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "date",
    )
    .await;
    t.expect(
        "a position that is not one",
        q.clone()
            .get_office_holders(v1::GetOfficeHoldersRequest {
                office: chair.clone(),
                date: "2023-01-01".into(),
                min_position: "soon".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "min_position",
    )
    .await;
    t.expect(
        "an unknown office",
        q.clone()
            .get_office_holders(v1::GetOfficeHoldersRequest {
                office: format!("offices/{}", request_id()),
                date: "2023-01-01".into(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
        "not found",
    )
    .await;
    t.expect(
        "irregularities as known at an impossible instant",
        client
            .audit()
            .list_irregularities(v1::ListIrregularitiesRequest {
                date: "2023-01-01".into(),
                known_at: Some(prost_types::Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 2_000_000_000,
                }),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "known_at",
    )
    .await;
    t.expect(
        "irregularities from a page token this service never gave",
        client
            .audit()
            .list_irregularities(v1::ListIrregularitiesRequest {
                date: "2023-01-01".into(),
                page_token: "1.2".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "page_token",
    )
    .await;
    t.expect(
        "irregularities of a kind there is not",
        client
            .audit()
            .list_irregularities(v1::ListIrregularitiesRequest {
                date: "2023-01-01".into(),
                kinds: vec!["long_vacancy".into(), "late_lunch".into()],
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "kinds[1]",
    )
    .await;
    t.expect(
        "irregularities within an office rather than a unit",
        client
            .audit()
            .list_irregularities(v1::ListIrregularitiesRequest {
                date: "2023-01-01".into(),
                unit: "offices/0193a5e0-0000-7000-8000-000000000013".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "unit",
    )
    .await;
    t.expect(
        "irregularities within a unit the registry does not know",
        client
            .audit()
            .list_irregularities(v1::ListIrregularitiesRequest {
                date: "2023-01-01".into(),
                unit: "units/0193a5e0-0000-7000-8000-0000000000ff".into(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
        "units/0193a5e0-0000-7000-8000-0000000000ff",
    )
    .await;
    t.expect(
        "irregularities with a negative page size",
        client
            .audit()
            .list_irregularities(v1::ListIrregularitiesRequest {
                date: "2023-01-01".into(),
                page_size: -1,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "page_size",
    )
    .await;
    // Dated reads outside a resource's life (issue 22, item 6).
    t.expect(
        "a unit on a day before it existed",
        q.clone()
            .get_unit(v1::GetUnitRequest {
                name: area.clone(),
                date: "1950-01-01".into(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
        &format!("{area} did not exist on 1950-01-01"),
    )
    .await;
    t.expect(
        "an office on a day before it existed",
        q.clone()
            .get_office(v1::GetOfficeRequest {
                name: chair.clone(),
                date: "1950-01-01".into(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
        &format!("{chair} did not exist on 1950-01-01"),
    )
    .await;
    t.expect(
        "the holders of an office on a day before it existed",
        q.clone()
            .get_office_holders(v1::GetOfficeHoldersRequest {
                office: chair.clone(),
                date: "1950-01-01".into(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
        &format!("{chair} did not exist on 1950-01-01"),
    )
    .await;
    // Coverage is counted in administrative areas (items 7 and 16).
    let coverage = |model: &str, jurisdiction: &str| v1::GetModelCoverageRequest {
        model: model.into(),
        jurisdiction: jurisdiction.into(),
        level: Level::Commune as i32,
        date: "2024-01-01".into(),
        ..Default::default()
    };
    t.expect(
        "coverage within a People's Committee",
        q.clone()
            .get_model_coverage(coverage(&model, &committee))
            .await,
        Code::InvalidArgument,
        "jurisdiction",
    )
    .await;
    let unknown_model = format!("models/{}", request_id());
    let outcome = q
        .clone()
        .get_model_coverage(coverage(&unknown_model, &area))
        .await;
    assert_eq!(
        outcome.as_ref().map_err(Status::message).err(),
        Some(format!("{unknown_model} not found").as_str()),
        "NOT_FOUND names the one resource missing"
    );
    t.expect(
        "coverage of a model the registry does not know",
        outcome,
        Code::NotFound,
        &unknown_model,
    )
    .await;
    let unknown_unit = format!("units/{}", request_id());
    t.expect(
        "coverage within a unit the registry does not know",
        q.clone()
            .get_model_coverage(coverage(&model, &unknown_unit))
            .await,
        Code::NotFound,
        &unknown_unit,
    )
    .await;
    // Long bad values are quoted short, so the caller sees INVALID_ARGUMENT, not a reply whose
    // headers its client refuses (item 11).
    t.expect(
        "a 20,000-character date",
        q.clone()
            .get_office_holders(v1::GetOfficeHoldersRequest {
                office: chair.clone(),
                date: "2".repeat(20_000),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "date",
    )
    .await;
    t.expect(
        "a kind of 1,500 × ệ",
        client
            .audit()
            .list_irregularities(v1::ListIrregularitiesRequest {
                date: "2023-01-01".into(),
                kinds: vec!["ệ".repeat(1_500)],
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "kinds[0]",
    )
    .await;
    let month = q
        .clone()
        .get_office_holders(v1::GetOfficeHoldersRequest {
            office: chair.clone(),
            date: "2024-03".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        month.message().matches("2024-03").count(),
        1,
        "says it once: {}",
        month.message()
    );
    t.expect(
        "a month where a day is asked",
        Err::<tonic::Response<()>, _>(month),
        Code::InvalidArgument,
        "date",
    )
    .await;
    t.expect(
        "known_at in the year 287,000",
        q.clone()
            .get_office_holders(v1::GetOfficeHoldersRequest {
                office: chair.clone(),
                date: "2023-01-01".into(),
                known_at: Some(prost_types::Timestamp {
                    seconds: 9_000_000_000_000,
                    nanos: 0,
                }),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "known_at",
    )
    .await;
    // The actor header (item 14): bounded, no control characters, UTF-8, refused (never
    // replaced by "anonymous").
    let raw = v1::command_service_client::CommandServiceClient::connect(daemon.address.clone())
        .await
        .unwrap();
    let as_actor = |actor: &[u8]| {
        let mut request = tonic::Request::new(register("Đỗ Văn Năm".into()));
        request.metadata_mut().insert(
            "x-registry-actor",
            tonic::metadata::MetadataValue::try_from(actor).unwrap(),
        );
        request
    };
    for (case, actor) in [
        ("a 10 kB actor", "a".repeat(10_000).into_bytes()),
        ("an actor with a tab", b"clerk\t7".to_vec()),
        ("an actor that is not UTF-8", vec![b'x', 0xff, 0xfe]),
    ] {
        t.expect(
            case,
            raw.clone().register_person(as_actor(&actor)).await,
            Code::InvalidArgument,
            "x-registry-actor",
        )
        .await;
    }
    // An import message over the size limit is OUT_OF_RANGE, as a unary call's is (item 12).
    let oversized = v1::ImportRecordsRequest {
        records: (0..100)
            .map(|_| v1::ImportRecord {
                record: Some(v1::import_record::Record::Person(register(
                    "x".repeat(1_000),
                ))),
            })
            .collect(),
    };
    t.expect(
        "an oversized import message",
        c.clone()
            .import_records(futures::stream::iter([oversized]))
            .await,
        Code::OutOfRange,
        "message length too large",
    )
    .await;
    assert_eq!(t.checked, 38);

    // A Vietnamese name in the header is recorded as sent.
    let vietnamese = "Nguyễn Thị Kim Phượng (Sở Nội vụ)";
    let written = client
        .clone()
        .with_actor(vietnamese)
        .unwrap()
        .command()
        .register_person(register("Võ Văn Sáu".into()))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    let history = client
        .audit()
        .list_resource_history(v1::ListResourceHistoryRequest {
            name: written.name.clone(),
            min_position: written.commit_position.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.changes[0].actor, vietnamese);

    // The store is intact: the one holder is still there, and a good request still works.
    let holders = q
        .clone()
        .get_office_holders(v1::GetOfficeHoldersRequest {
            office: chair.clone(),
            date: "2024-01-01".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        holders
            .holdings
            .iter()
            .map(|h| h.person.as_str())
            .collect::<Vec<_>>(),
        [person.as_str()]
    );
}

/// A `request_id` names one request: repeated with the same request it is answered again
/// (`replayed`), reused for another request it is ALREADY_EXISTS naming `request_id`, with
/// nothing appended, also after a restart and inside an import (issue 22, item 9).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_reused_for_another_request_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let reused = request_id();
    let person = v1::RegisterPersonRequest {
        request_id: reused.clone(),
        display_name: "Nguyễn Văn Bảy".into(),
        ..Default::default()
    };
    let daemon = Daemon::embedded(dir.path(), &[]);
    let client = daemon.client().await;
    let mut r = Registrar::new(client.clone());
    let (_, committee, _) = r.commune_with_chair("xã Tám").await;
    let first = client
        .command()
        .register_person(person.clone())
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    let office = v1::CreateOfficeRequest {
        request_id: reused.clone(),
        unit: committee.clone(),
        title: "Phó Chủ tịch".into(),
        kind: Off::ViceChair as i32,
        capacity: Some(v1::Capacity {
            kind: Cap::Sole as i32,
            limit: 0,
        }),
        valid_from: "2020-01-01".into(),
        ..Default::default()
    };
    let check = |client: Client, round: &'static str| {
        let (person, office, first) = (person.clone(), office.clone(), first.clone());
        async move {
            let mut t = Table {
                head: head(&client).await,
                client: client.clone(),
                checked: 0,
            };
            t.expect(
                round,
                client.command().create_office(office).await,
                Code::AlreadyExists,
                "request_id",
            )
            .await;
            let other_name = v1::RegisterPersonRequest {
                display_name: "Trần Văn Chín".into(),
                ..person.clone()
            };
            t.expect(
                round,
                client.command().register_person(other_name).await,
                Code::AlreadyExists,
                "request_id",
            )
            .await;
            let again = client
                .command()
                .register_person(person)
                .await
                .unwrap()
                .into_inner()
                .result
                .unwrap();
            assert!(again.replayed, "{round}: the same request is a retry");
            assert_eq!(
                (again.name, again.commit_position),
                (first.name, first.commit_position)
            );
        }
    };
    check(client.clone(), "before a restart").await;
    // In an import, the record reusing the id is refused with its place in the stream.
    let outcome = client
        .command()
        .import_records(futures::stream::iter([v1::ImportRecordsRequest {
            records: vec![v1::ImportRecord {
                record: Some(v1::import_record::Record::Office(office.clone())),
            }],
        }]))
        .await;
    let status = outcome.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{}", status.message());
    assert!(status
        .message()
        .starts_with("records[0].office: request_id"));
    daemon.stop();

    let daemon = Daemon::embedded(dir.path(), &[]);
    check(daemon.client().await, "after a restart").await;
}
