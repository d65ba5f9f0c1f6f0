//! Irregularities as known at an earlier instant, over real gRPC: a holding ended on an unknown
//! day is flagged; once retracted it is no longer flagged now, but an auditor asking as the
//! registry stood before the retraction still sees the flag, and asking before the end sees
//! none.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use registry_client::{request_id, v1, Client};
use support::{just_before, Daemon, Registrar};

/// The kinds of irregularities naming `subject`, as known at `known_at` (now when `None`), once
/// the replica has folded the write at `min_position`.
async fn flags(
    client: &Client,
    min_position: &str,
    subject: &str,
    known_at: Option<prost_types::Timestamp>,
) -> Vec<String> {
    client
        .audit()
        .list_irregularities(v1::ListIrregularitiesRequest {
            date: "2024-01-01".into(),
            min_position: min_position.into(),
            known_at,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .irregularities
        .into_iter()
        .filter(|i| i.subjects.iter().any(|s| s == subject))
        .map(|i| i.kind)
        .collect()
}

/// Ends `holding` on a day the registry does not know; the commit position.
async fn end_unknown(client: &Client, holding: &str) -> String {
    client
        .command()
        .end_holding(v1::EndHoldingRequest {
            request_id: request_id(),
            holding: holding.to_owned(),
            end_unknown: true,
            reason: v1::EndReason::TermEnd as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap()
        .commit_position
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irregularities_are_answered_as_known_at_an_instant() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::embedded(dir.path(), &[]);
    let client = daemon.client().await;
    let mut r = Registrar::new(client.clone());
    let (_, _, chair) = r.commune_with_chair("xã Thử").await;
    let person = r.person("Nguyễn Văn Một").await;
    let holding = r.hold(&person, &chair, "2020-01-01", None).await.name;
    let ended = end_unknown(&client, &holding).await;
    assert_eq!(
        flags(&client, &ended, &holding, None).await,
        ["end_unknown"]
    );
    let retracted = client
        .admin()
        .retract_record(v1::RetractRecordRequest {
            request_id: request_id(),
            name: holding.clone(),
            amendment: Some(v1::Amendment {
                reason: "entered for the wrong commune".into(),
                basis: None,
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap()
        .commit_position;
    let flagged = |subject: String, known_at| {
        let (client, retracted) = (client.clone(), retracted.clone());
        async move { flags(&client, &retracted, &subject, known_at).await }
    };

    let history = client
        .audit()
        .list_resource_history(v1::ListResourceHistoryRequest {
            name: holding.clone(),
            min_position: retracted.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .changes;
    let kinds: Vec<&str> = history.iter().map(|c| c.event_type.as_str()).collect();
    assert_eq!(kinds, ["HoldingStarted", "HoldingEnded", "Retracted"]);
    let recorded = |i: usize| history[i].recorded_at.unwrap();

    assert!(flagged(holding.clone(), None).await.is_empty(), "retracted");
    assert_eq!(
        flagged(holding.clone(), Some(just_before(recorded(2)))).await,
        ["end_unknown"],
        "as known just before the retraction"
    );
    assert_eq!(
        flagged(holding.clone(), Some(recorded(1))).await,
        ["end_unknown"],
        "as known when the end was recorded"
    );
    assert!(
        flagged(holding.clone(), Some(just_before(recorded(1))))
            .await
            .is_empty(),
        "as known before the end"
    );
    // The office stood empty from its creation until the holding, and is flagged for it at
    // every instant; as known before the holding was recorded, the holding is unknown.
    assert!(flagged(holding.clone(), Some(just_before(recorded(0))))
        .await
        .is_empty());
    assert_eq!(
        flagged(chair.clone(), Some(just_before(recorded(0)))).await,
        ["long_vacancy"]
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irregularities_come_a_page_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::embedded(dir.path(), &[]);
    let client = daemon.client().await;
    let mut r = Registrar::new(client.clone());
    let mut held = Vec::new();
    for (commune, name) in [
        ("xã Một", "Lê Văn Một"),
        ("xã Hai", "Lê Văn Hai"),
        ("xã Ba", "Lê Văn Ba"),
    ] {
        let (_, _, chair) = r.commune_with_chair(commune).await;
        let person = r.person(name).await;
        held.push(r.hold(&person, &chair, "2020-01-01", None).await.name);
    }
    // One of them ended on a day nobody recorded: a second kind of flag.
    r.last = end_unknown(&client, &held[0]).await;
    let ask = |page_size: i32, page_token: String, kinds: &[&str]| {
        let client = client.clone();
        let min_position = r.last.clone();
        let kinds = kinds.iter().map(ToString::to_string).collect();
        async move {
            client
                .audit()
                .list_irregularities(v1::ListIrregularitiesRequest {
                    date: "2024-01-01".into(),
                    min_position,
                    page_size,
                    page_token,
                    kinds,
                    ..Default::default()
                })
                .await
        }
    };
    let page = |page_size: i32, page_token: String| {
        let asked = ask(page_size, page_token, &[]);
        async move { asked.await.unwrap().into_inner() }
    };
    let whole = page(0, String::new()).await;
    assert!(whole.next_page_token.is_empty());
    assert!(
        whole.irregularities.len() >= 3,
        "{:?}",
        whole.irregularities
    );
    let mut paged = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let answer = page(1, token).await;
        assert!(answer.irregularities.len() <= 1);
        paged.extend(answer.irregularities);
        pages += 1;
        if answer.next_page_token.is_empty() {
            break;
        }
        token = answer.next_page_token;
    }
    assert!(pages >= whole.irregularities.len(), "{pages} pages");
    assert_eq!(paged, whole.irregularities);

    // Some kinds only: the flags of those kinds, in the same order, a page at a time too.
    let mut kinds_met: Vec<&str> = whole
        .irregularities
        .iter()
        .map(|i| i.kind.as_str())
        .collect();
    kinds_met.sort_unstable();
    kinds_met.dedup();
    assert!(kinds_met.len() >= 2, "{kinds_met:?}");
    for kind in &kinds_met {
        let wanted: Vec<_> = whole
            .irregularities
            .iter()
            .filter(|i| i.kind == *kind)
            .cloned()
            .collect();
        let mut listed = Vec::new();
        let mut token = String::new();
        loop {
            let answer = ask(1, token, &[kind]).await.unwrap().into_inner();
            listed.extend(answer.irregularities);
            if answer.next_page_token.is_empty() {
                break;
            }
            // A token is for the kinds it was given for.
            let other = ask(1, answer.next_page_token.clone(), &[])
                .await
                .unwrap_err();
            assert_eq!(other.code(), tonic::Code::InvalidArgument);
            assert!(
                other.message().contains("page_token"),
                "{}",
                other.message()
            );
            token = answer.next_page_token;
        }
        assert_eq!(listed, wanted, "{kind}");
    }
    let unknown = ask(0, String::new(), &["late_lunch"]).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::InvalidArgument);
    assert!(
        unknown.message().contains("kinds") && unknown.message().contains("late_lunch"),
        "{}",
        unknown.message()
    );
    assert_eq!(daemon.stop(), Some(0));
}
