//! Batch reads over real gRPC: each question of a batch is answered as the call asking it
//! alone answers it, or fails in its place with that call's code and a message naming the
//! question's field; the others are still answered. An empty batch and one of more than 1,000
//! questions are refused whole.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use registry_client::v1;
use support::{Daemon, Registrar};
use tonic::Code;
use v1::office_holders_answer::Outcome as Holders;
use v1::person_offices_answer::Outcome as Offices;

fn holders_asked(office: &str, date: &str) -> v1::GetOfficeHoldersRequest {
    v1::GetOfficeHoldersRequest {
        office: office.into(),
        date: date.into(),
        ..Default::default()
    }
}

fn offices_asked(person: &str, date: &str) -> v1::ListPersonOfficesRequest {
    v1::ListPersonOfficesRequest {
        person: person.into(),
        date: date.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_question_is_answered_or_fails_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::embedded(dir.path(), &[]);
    let client = daemon.client().await;
    let mut registrar = Registrar::new(client.clone());
    let person = registrar.person("Trần Thị Lô").await;
    let (_, _, chair) = registrar.commune_with_chair("Xã Lô").await;
    registrar.hold(&person, &chair, "2020-01-01", None).await;
    let unknown_office = format!("offices/{}", uuid::Uuid::now_v7());
    let unknown_person = format!("persons/{}", uuid::Uuid::now_v7());
    let mut query = client.query();

    let asked = vec![
        v1::GetOfficeHoldersRequest {
            min_position: registrar.last.clone(),
            ..holders_asked(&chair, "2021-01-01")
        },
        holders_asked("offices/not-a-uuid", "2021-01-01"),
        holders_asked(&unknown_office, "2021-01-01"),
        holders_asked(&chair, "2019-01-01"),
        holders_asked(&chair, ""),
    ];
    let batch = query
        .batch_get_office_holders(v1::BatchGetOfficeHoldersRequest {
            requests: asked.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.answers.len(), asked.len());
    for (i, (question, answer)) in asked.into_iter().zip(batch.answers).enumerate() {
        let alone = query.get_office_holders(question).await;
        match (answer.outcome.unwrap(), alone) {
            (Holders::Holders(ours), Ok(theirs)) => assert_eq!(ours, theirs.into_inner()),
            (Holders::Error(ours), Err(theirs)) => {
                assert_eq!(ours.code, theirs.code() as i32, "question {i}: {ours:?}");
                assert!(
                    ours.message.starts_with(&format!("requests[{i}]")),
                    "{ours:?}"
                );
            }
            (ours, theirs) => panic!("question {i}: batch {ours:?}, alone {theirs:?}"),
        }
    }

    let asked = vec![
        offices_asked(&person, "2021-01-01"),
        offices_asked(&unknown_person, "2021-01-01"),
        offices_asked(&person, "2021-02-30"),
        offices_asked(&person, "2019-01-01"),
    ];
    let batch = query
        .batch_list_person_offices(v1::BatchListPersonOfficesRequest {
            requests: asked.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let outcomes: Vec<Offices> = batch
        .answers
        .into_iter()
        .map(|a| a.outcome.unwrap())
        .collect();
    let Offices::Offices(held) = &outcomes[0] else {
        panic!("{outcomes:?}")
    };
    assert_eq!(held.holdings.len(), 1);
    assert_eq!(held.holdings[0].office, chair);
    let Offices::Error(unknown) = &outcomes[1] else {
        panic!("{outcomes:?}")
    };
    assert_eq!(unknown.code, Code::NotFound as i32);
    let Offices::Error(bad_date) = &outcomes[2] else {
        panic!("{outcomes:?}")
    };
    assert_eq!(bad_date.code, Code::InvalidArgument as i32);
    assert_eq!(bad_date.field, "requests[2].date");
    let Offices::Offices(before) = &outcomes[3] else {
        panic!("{outcomes:?}")
    };
    assert!(before.holdings.is_empty());
    for (question, outcome) in asked.into_iter().zip(&outcomes) {
        if let Offices::Offices(ours) = outcome {
            let alone = query.list_person_offices(question).await.unwrap();
            assert_eq!(*ours, alone.into_inner());
        }
    }

    // Whole batches refused: none asked, too many asked; a thousand answered.
    let refused = query
        .batch_list_person_offices(v1::BatchListPersonOfficesRequest { requests: vec![] })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().starts_with("requests:"), "{refused:?}");
    let many = |n| v1::BatchGetOfficeHoldersRequest {
        requests: vec![holders_asked(&chair, "2021-01-01"); n],
    };
    let refused = query
        .batch_get_office_holders(many(1001))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("at most 1000"), "{refused:?}");
    let thousand = query
        .batch_get_office_holders(many(1000))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(thousand.answers.len(), 1000);
    assert!(thousand.answers.iter().all(|a| matches!(
        &a.outcome,
        Some(Holders::Holders(h)) if h.holdings.len() == 1
    )));
}
