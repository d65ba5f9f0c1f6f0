//! Histories answered from the events kept in memory (`--history-cache-mib`) are the
//! histories the store holds: asked again, the same changes, counted as hits; after a new
//! event, the kept ones and the new one read; and a `registryd` keeping none, on the same
//! store, answers byte for byte alike. A client that accepts gzip gets them compressed.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use registry_client::{v1, Client};
use support::{sample, scrape, Daemon, Registrar};

async fn history(client: &Client, name: &str, after: &str) -> Vec<v1::Change> {
    client
        .audit()
        .list_resource_history(v1::ListResourceHistoryRequest {
            name: name.into(),
            min_position: after.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .changes
}

/// The cache's counters, as the metrics endpoint serves them (0 before the first).
async fn counted(metrics: &str) -> (f64, f64) {
    let text = scrape(metrics).await;
    let read = |name| sample(&text, name, &[]).unwrap_or(0.0);
    (
        read("registry_history_cache_hits_total"),
        read("registry_history_cache_misses_total"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_changes_answer_as_the_store_does() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = support::free_address();
    let daemon = Daemon::embedded(dir.path(), &["--metrics-listen", &metrics]);
    let client = daemon.client().await;
    let mut registrar = Registrar::new(client.clone());
    let person = registrar.person("Nguyễn Văn Kiểm").await;
    let (_, _, first) = registrar.commune_with_chair("Xã Một").await;
    let (_, _, second) = registrar.commune_with_chair("Xã Hai").await;
    let holding = registrar
        .hold(&person, &first, "2020-01-01", None)
        .await
        .name;

    let read = history(&client, &person, &registrar.last).await;
    assert_eq!(read.len(), 2, "registered, then the holding: {read:?}");
    assert_eq!(counted(&metrics).await, (0.0, 2.0));
    let kept = history(&client, &person, &registrar.last).await;
    assert_eq!(kept, read);
    assert_eq!(counted(&metrics).await, (2.0, 2.0));

    // A new event about the person: the kept two and the new one, read once.
    registrar
        .hold(&person, &second, "2021-01-01", Some(&holding))
        .await;
    let grown = history(&client, &person, &registrar.last).await;
    assert_eq!(grown.len(), 3);
    assert_eq!(grown[..2], read[..]);
    assert_eq!(grown[2].event_type, "HoldingStarted");
    assert_eq!(counted(&metrics).await, (4.0, 3.0));
    // Asked with proofs, the events are read from the store and proved, not taken from memory.
    let proved = client
        .audit()
        .list_resource_history(v1::ListResourceHistoryRequest {
            name: person.clone(),
            min_position: registrar.last.clone(),
            verify: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .changes;
    assert_eq!(proved.len(), 3);
    assert!(proved.iter().all(|c| c.proof.is_some()));
    let unproved: Vec<_> = proved
        .into_iter()
        .map(|c| v1::Change { proof: None, ..c })
        .collect();
    assert_eq!(unproved, grown);
    assert_eq!(counted(&metrics).await, (4.0, 3.0));
    // A client that accepts gzip gets the same history, compressed.
    let answer = client
        .clone()
        .with_compression()
        .audit()
        .list_resource_history(v1::ListResourceHistoryRequest {
            name: person.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let encoding = answer
        .metadata()
        .get("grpc-encoding")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(encoding.as_deref(), Some("gzip"));
    assert_eq!(answer.into_inner().changes, grown);
    // One that does not gets it plain.
    let answer = client
        .audit()
        .list_resource_history(v1::ListResourceHistoryRequest {
            name: person.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(answer.metadata().get("grpc-encoding").is_none());
    daemon.stop();

    // The same store served keeping nothing: the same answer.
    let plain = Daemon::embedded(dir.path(), &["--history-cache-mib", "0"]);
    let client = plain.client().await;
    assert_eq!(history(&client, &person, &registrar.last).await, grown);
    // So is a listing of what was recorded.
    let listed = client
        .audit()
        .list_changes(v1::ListChangesRequest {
            recorded_after: Some(prost_types::Timestamp::default()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .changes;
    assert!(grown.iter().all(|c| listed.contains(c)));
}

#[test]
fn a_cache_larger_than_any_machine_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(registry_testkit::daemon::registryd_binary())
        .args(["--history-cache-mib", "99999999999", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--history-cache-mib"), "{stderr}");
}
