//! `ImportRecords` over real gRPC, on the embedded store (batches appended in one transaction)
//! and on PostgreSQL (records executed one by one): records are decided in stream order, each
//! against what the records before it recorded; the first refused record ends the call with its
//! status placed in the stream (`records[N].kind`), the records before it stay recorded and
//! those after it do not; sending the stream again appends only what is missing.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use futures::StreamExt;
use registry_client::{v1, Client};
use support::{drop_schema, holders, postgres, Daemon, Registrar};
use tonic::Code;
use tonic_types::StatusExt;

use v1::import_record::Record;

fn person(id: &uuid::Uuid, name: &str) -> v1::ImportRecord {
    v1::ImportRecord {
        record: Some(Record::Person(v1::RegisterPersonRequest {
            request_id: format!("import-person-{id}"),
            person_id: id.to_string(),
            display_name: name.into(),
            ..Default::default()
        })),
    }
}

fn holding(person: &uuid::Uuid, office: &str, from: &str, until: &str) -> v1::ImportRecord {
    v1::ImportRecord {
        record: Some(Record::Holding(v1::StartHoldingRequest {
            request_id: format!("import-holding-{person}-{from}"),
            person: format!("persons/{person}"),
            office: office.into(),
            valid_from: from.into(),
            valid_until: until.into(),
            end_reason: if until.is_empty() {
                0
            } else {
                v1::EndReason::TermEnd as i32
            },
            beginning: v1::BeginningKind::Elected as i32,
            ..Default::default()
        })),
    }
}

async fn import(
    client: &Client,
    messages: Vec<Vec<v1::ImportRecord>>,
) -> Result<v1::ImportRecordsResponse, tonic::Status> {
    let messages: Vec<v1::ImportRecordsRequest> = messages
        .into_iter()
        .map(|records| v1::ImportRecordsRequest { records })
        .collect();
    client
        .command()
        .import_records(futures::stream::iter(messages))
        .await
        .map(tonic::Response::into_inner)
}

async fn holder(client: &Client, office: &str, date: &str, min_position: &str) -> Vec<String> {
    holders(client, office, date, min_position)
        .await
        .into_iter()
        .map(|h| h.person_display_name)
        .collect()
}

/// The commit position of a new write: every record acknowledged or refused before it is
/// below it, so a read waiting for it sees them.
async fn barrier(client: &Client) -> String {
    client
        .command()
        .register_person(v1::RegisterPersonRequest {
            request_id: registry_client::request_id(),
            display_name: "Rào Chắn".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap()
        .commit_position
}

async fn exists(client: &Client, id: &uuid::Uuid, min_position: &str) -> bool {
    match client
        .query()
        .get_person(v1::GetPersonRequest {
            name: format!("persons/{id}"),
            date: "2024-01-01".into(),
            min_position: min_position.into(),
            ..Default::default()
        })
        .await
    {
        Ok(_) => true,
        Err(status) if status.code() == Code::NotFound => false,
        Err(status) => panic!("get person: {status}"),
    }
}

async fn stops_at_the_first_refused_record(client: Client) {
    let mut r = Registrar::new(client.clone());
    let (_, _, chair) = r.commune_with_chair("xã Nhập").await;
    let [a, b, c, d] = [(); 4].map(|()| uuid::Uuid::now_v7());
    let first = vec![
        person(&a, "Nguyễn Văn A"),
        person(&b, "Trần Thị B"),
        holding(&a, &chair, "2010-01-01", "2015-01-01"),
        holding(&b, &chair, "2015-01-01", ""),
    ];
    // C's holding overlaps B's in a sole office: record 5 is refused, D (record 6) is not
    // looked at.
    let second = vec![
        person(&c, "Lê Văn C"),
        holding(&c, &chair, "2016-01-01", ""),
        person(&d, "Phạm Thị D"),
    ];
    let status = import(&client, vec![first.clone(), second.clone()])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().starts_with("records[5].holding: "),
        "{}",
        status.message()
    );
    let info = status.get_details_error_info().unwrap();
    assert_eq!(info.reason, "CAPACITY_EXCEEDED");
    assert_eq!(info.metadata["record_index"], "5");
    assert_eq!(info.metadata["recorded"], "5");
    assert_eq!(info.metadata["replayed"], "0");

    // Everything before record 5 is recorded, in order; nothing after it.
    let after = barrier(&client).await;
    assert_eq!(
        holder(&client, &chair, "2012-06-01", &after).await,
        ["Nguyễn Văn A"]
    );
    assert_eq!(
        holder(&client, &chair, "2017-06-01", "").await,
        ["Trần Thị B"]
    );
    assert!(exists(&client, &c, "").await);
    assert!(!exists(&client, &d, "").await);

    // The stream again, without the refused record: five records are replayed, D recorded.
    let again = import(
        &client,
        vec![first, vec![second[0].clone(), second[2].clone()]],
    )
    .await
    .unwrap();
    assert_eq!((again.recorded, again.replayed), (1, 5), "{again:?}");
    assert!(!again.commit_position.is_empty());
    assert!(exists(&client, &d, &again.commit_position).await);

    // A malformed record: the valid one before it in the same message is recorded; the field
    // is named from the start of the stream.
    let e = uuid::Uuid::now_v7();
    let status = import(
        &client,
        vec![
            vec![person(&e, "Võ Văn E")],
            vec![
                person(&uuid::Uuid::now_v7(), "Đặng Thị F"),
                holding(&e, &chair, "2019-02-30", ""),
            ],
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let fields: Vec<String> = status
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["records[2].holding.valid_from"]);
    assert_eq!(
        status.get_details_error_info().unwrap().metadata["recorded"],
        "2"
    );
    let after = barrier(&client).await;
    assert!(exists(&client, &e, &after).await);

    // An empty record and an empty request id are refused by position too.
    let status = import(&client, vec![vec![v1::ImportRecord { record: None }]])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("records[0]: record: is empty"),
        "{}",
        status.message()
    );
    let mut nameless = person(&uuid::Uuid::now_v7(), "Bùi Văn G");
    if let Some(Record::Person(p)) = &mut nameless.record {
        p.request_id.clear();
    }
    let status = import(&client, vec![vec![nameless]]).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status
        .message()
        .starts_with("records[0].person: request_id"));

    // An empty stream records nothing and succeeds.
    let empty = import(&client, vec![]).await.unwrap();
    assert_eq!((empty.recorded, empty.replayed), (0, 0));
    assert!(empty.commit_position.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_import_sent_twice_at_once_records_each_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::embedded(dir.path(), &[]);
    let client = daemon.client().await;
    let ids: Vec<uuid::Uuid> = (0..4000).map(|_| uuid::Uuid::now_v7()).collect();
    let messages: Vec<Vec<v1::ImportRecord>> = ids
        .chunks(500)
        .map(|chunk| {
            chunk
                .iter()
                .map(|id| person(id, &format!("Người {id}")))
                .collect()
        })
        .collect();
    let (a, b) = tokio::join!(import(&client, messages.clone()), import(&client, messages));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.recorded + b.recorded, 4000, "{a:?} {b:?}");
    assert_eq!(a.replayed + b.replayed, 4000, "{a:?} {b:?}");
    // Both were acknowledged after every record was stored: a read at the later position sees
    // the last one.
    let last = [&a, &b]
        .iter()
        .filter_map(|r| r.commit_position.parse::<u64>().ok())
        .max()
        .unwrap();
    assert!(exists(&client, ids.last().unwrap(), &last.to_string()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_stops_at_the_first_refused_record_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::embedded(dir.path(), &[]);
    stops_at_the_first_refused_record(daemon.client().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_stops_at_the_first_refused_record_on_postgres() {
    let Some(url) = postgres().await else { return };
    let schema = format!("e2e_import_{}", std::process::id());
    drop_schema(&url, &schema).await;
    let daemon = Daemon::start(&["--store", url.as_str(), "--pg-schema", schema.as_str()]);
    stops_at_the_first_refused_record(daemon.client().await).await;
    drop(daemon);
    drop_schema(&url, &schema).await;
}

/// An import lasts as long as its stream: the server's limit on a call (`--timeout-seconds`,
/// here 1 s) cuts unary calls, never an import whose messages keep coming (it answered
/// "Cancelled: Timeout expired" after 60 s with part of a file written) (issue 22, item 18).
async fn a_slow_stream_is_not_cut_by_the_call_limit(client: Client) {
    let ids: Vec<uuid::Uuid> = (0..6).map(|_| uuid::Uuid::now_v7()).collect();
    let messages: Vec<v1::ImportRecordsRequest> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| v1::ImportRecordsRequest {
            records: vec![person(id, &format!("Người Chậm {i}"))],
        })
        .collect();
    // Six messages, 400 ms apart: the stream lasts about 2.4 s.
    let slow = futures::stream::iter(messages).then(|message| async move {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        message
    });
    let response = client
        .command()
        .import_records(slow)
        .await
        .expect("the import is not cut by the call limit")
        .into_inner();
    assert_eq!(response.recorded, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_import_outlasts_the_call_limit() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::embedded(dir.path(), &["--timeout-seconds", "1"]);
    let client = daemon.client().await;
    a_slow_stream_is_not_cut_by_the_call_limit(client.clone()).await;
    // A unary call is still cut at the limit: a read waiting for a position never reached.
    let started = std::time::Instant::now();
    let waited = client
        .query()
        .list_persons(v1::ListPersonsRequest {
            date: "2024-01-01".into(),
            min_position: "999999999".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        waited.code(),
        Code::DeadlineExceeded,
        "{}",
        waited.message()
    );
    assert!(
        waited.message().contains("--timeout-seconds"),
        "{}",
        waited.message()
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_import_outlasts_the_call_limit_on_postgres() {
    let Some(url) = postgres().await else { return };
    let schema = format!("e2e_slow_import_{}", std::process::id());
    drop_schema(&url, &schema).await;
    let daemon = Daemon::start(&[
        "--store",
        url.as_str(),
        "--pg-schema",
        schema.as_str(),
        "--timeout-seconds",
        "1",
    ]);
    a_slow_stream_is_not_cut_by_the_call_limit(daemon.client().await).await;
    drop(daemon);
    drop_schema(&url, &schema).await;
}
