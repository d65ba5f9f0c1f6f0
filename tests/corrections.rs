//! Corrections restate what they name and keep the rest (AIP-134's `update_mask`), over real
//! gRPC: a correction sent without `basis` no longer erases the basis (issue 22, item 8).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use prost_types::FieldMask;
use registry_client::{request_id, v1, Client};
use support::{basis, Daemon, Registrar};
use tonic::Code;

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

fn why() -> Option<v1::Amendment> {
    Some(v1::Amendment {
        reason: "đối chiếu với quyết định gốc".into(),
        basis: None,
    })
}

async fn holding(client: &Client, name: &str) -> v1::Holding {
    client
        .query()
        .get_holding(v1::GetHoldingRequest {
            name: name.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .holding
        .unwrap()
}

async fn correct(
    client: &Client,
    request: v1::CorrectHoldingRequest,
) -> Result<v1::WriteResult, tonic::Status> {
    let result = client
        .admin()
        .correct_holding(v1::CorrectHoldingRequest {
            request_id: request_id(),
            amendment: why(),
            ..request
        })
        .await?
        .into_inner()
        .result
        .unwrap();
    // Read back at the write's position.
    support::await_position(client, &result.commit_position).await;
    Ok(result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correction_restates_what_it_names_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::embedded(dir.path(), &[]);
    let client = daemon.client().await;
    let mut r = Registrar::new(client.clone());
    let (_, _, chair) = r.commune_with_chair("xã Sửa Sai").await;
    let person = r.person("Nguyễn Văn Sửa").await;
    let name = r.hold(&person, &chair, "2020-10-15", None).await.name;
    support::await_position(&client, &r.last).await;
    assert!(holding(&client, &name).await.basis.is_some());

    // Without a mask: the populated fields are restated; the basis, omitted, stays.
    correct(
        &client,
        v1::CorrectHoldingRequest {
            holding: name.clone(),
            valid_from: "2020-10-20".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let after = holding(&client, &name).await;
    assert_eq!(after.start, "2020-10-20");
    assert_eq!(
        after.basis.as_ref().map(|b| b.number.as_str()),
        Some("12-QĐ/TU")
    );
    assert_eq!(after.person, person, "the person, not sent, stays");

    // Named and empty: the basis is cleared (and the holding is flagged for it).
    let cleared = correct(
        &client,
        v1::CorrectHoldingRequest {
            holding: name.clone(),
            update_mask: mask(&["basis"]),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(holding(&client, &name).await.basis.is_none());
    assert!(cleared.warnings.iter().any(|w| w.kind == "missing_basis"));

    // Named: restated, even alongside fields that are populated but not named.
    correct(
        &client,
        v1::CorrectHoldingRequest {
            holding: name.clone(),
            update_mask: mask(&["basis"]),
            valid_from: "1999-01-01".into(),
            basis: Some(basis("15-QĐ/TU")),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let after = holding(&client, &name).await;
    assert_eq!(after.start, "2020-10-20", "valid_from was not named");
    assert_eq!(after.basis.map(|b| b.number), Some("15-QĐ/TU".into()));

    // `*` restates everything: what is left empty and is required is refused.
    let everything = correct(
        &client,
        v1::CorrectHoldingRequest {
            holding: name.clone(),
            update_mask: mask(&["*"]),
            valid_from: "2020-10-21".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(everything.code(), Code::InvalidArgument);
    assert!(
        everything.message().starts_with("person: "),
        "{}",
        everything.message()
    );

    // An unknown path is named; a correction that changes nothing is refused.
    let unknown = correct(
        &client,
        v1::CorrectHoldingRequest {
            holding: name.clone(),
            update_mask: mask(&["valid_form"]),
            valid_from: "2020-10-21".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert!(
        unknown.message().starts_with("update_mask: ") && unknown.message().contains("valid_form"),
        "{}",
        unknown.message()
    );
    let nothing = correct(
        &client,
        v1::CorrectHoldingRequest {
            holding: name.clone(),
            valid_from: "2020-10-20".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(nothing.code(), Code::InvalidArgument);
    assert!(
        nothing.message().contains("changes nothing"),
        "{}",
        nothing.message()
    );

    // A person: the birth date alone, the name kept (read back at the write's position).
    let corrected = client
        .admin()
        .correct_person(v1::CorrectPersonRequest {
            request_id: request_id(),
            person: person.clone(),
            birth: "1970-05".into(),
            amendment: why(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    support::await_position(&client, &corrected.commit_position).await;
    let shown = client
        .query()
        .get_person(v1::GetPersonRequest {
            name: person.clone(),
            date: "2024-01-01".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (shown.display_name.as_str(), shown.birth.as_str()),
        ("Nguyễn Văn Sửa", "1970-05")
    );
}

/// `validate_only` decides a correction and records nothing: the flags after it and before it
/// come back, the store's head stays, and the request id is not used up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correction_checked_only_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::embedded(dir.path(), &[]);
    let client = daemon.client().await;
    let mut r = Registrar::new(client.clone());
    let (_, _, chair) = r.commune_with_chair("xã Thử Trước").await;
    let person = r.person("Lê Văn Thử").await;
    let name = r.hold(&person, &chair, "2020-10-15", None).await.name;
    let head = support::store_stats(&client).await.head_position;
    let id = request_id();
    let request = v1::CorrectHoldingRequest {
        request_id: id.clone(),
        holding: name.clone(),
        update_mask: mask(&["basis"]),
        amendment: why(),
        validate_only: true,
        ..Default::default()
    };
    let checked = client
        .admin()
        .correct_holding(request.clone())
        .await
        .unwrap()
        .into_inner();
    let result = checked.result.unwrap();
    assert!(result.commit_position.is_empty());
    assert!(result.warnings.iter().any(|w| w.kind == "missing_basis"));
    assert!(!checked.flags_now.iter().any(|w| w.kind == "missing_basis"));
    assert_eq!(support::store_stats(&client).await.head_position, head);
    let done = client
        .admin()
        .correct_holding(v1::CorrectHoldingRequest {
            validate_only: false,
            ..request
        })
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert!(!done.replayed && !done.commit_position.is_empty());
}
