//! Snapshots at start: `registryd` saves the writer's state and the read models when it stops,
//! a restart loads them (and says which) and catches up, answering as a full fold does; a
//! damaged snapshot or one of another store is skipped for an older one or for the feed
//! (issue 23, snapshots at start).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::path::Path;
use std::time::Duration;

use registry_client::{v1, Client};
use registry_testkit::{generate, Config};
use support::{store_stats, Daemon, Registrar};

/// What the daemon answers: the units on a day, a search, the history of a unit, the counts.
async fn answers(client: &Client, name: &str, unit: &str) -> Vec<String> {
    let units = client
        .query()
        .list_units(v1::ListUnitsRequest {
            date: "2024-03-18".into(),
            page_size: 10_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let found = client
        .query()
        .search_persons(v1::SearchPersonsRequest {
            query: name.into(),
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let history = client
        .audit()
        .list_resource_history(v1::ListResourceHistoryRequest {
            name: unit.into(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let stats = store_stats(client).await;
    vec![
        format!("{:?}", units.units),
        format!("{:?}", found.matches),
        format!("{:?}", history.changes),
        format!(
            "{} events, read models at {}",
            stats.events, stats.projection_events
        ),
    ]
}

/// The snapshot files in `dir`, sorted.
fn snapshots(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("snapshots"))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Waits until the daemon's read models reached its store's head.
async fn caught_up(client: &Client) {
    for _ in 0..200 {
        let stats = store_stats(client).await;
        if stats.projection_events == stats.events {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the read models did not catch up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loads_the_snapshots_saved_at_shutdown_and_skips_bad_ones() {
    let generated = generate(&Config::tiny(3));
    let events = generated.facts.len();
    let dir = tempfile::tempdir().unwrap();
    registry_bench::load_store(&dir.path().join("registry.db"), &generated.facts)
        .await
        .unwrap();
    let unit = generated.catalogue.communes[0].to_string();

    // First start: no snapshot to load; one more write; saved at shutdown.
    let daemon = Daemon::embedded(dir.path(), &[]);
    assert!(daemon.logged("loaded a snapshot").is_empty());
    let client = daemon.client().await;
    let request = v1::RegisterPersonRequest {
        request_id: "snapshot-test-1".into(),
        display_name: "Trần Thị Snapshot".into(),
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
    caught_up(&client).await;
    let expected = answers(&client, "Tran Thi Snapshot", &unit).await;
    assert_eq!(daemon.stop(), Some(0));
    let saved = format!("{:020}.snap", events + 1);
    assert_eq!(
        snapshots(dir.path()),
        vec![format!("read-models-{saved}"), format!("writer-{saved}")]
    );

    // Second start: both loaded, and said so; the answers, the request ids and the rules as
    // before.
    let daemon = Daemon::embedded(dir.path(), &[]);
    let client = daemon.client().await;
    caught_up(&client).await;
    let loaded = daemon.logged("loaded a snapshot");
    assert_eq!(loaded.len(), 2, "{loaded:?}");
    assert!(loaded
        .iter()
        .any(|l| l.contains(&format!("writer-{saved}"))));
    assert!(loaded
        .iter()
        .any(|l| l.contains(&format!("read-models-{saved}"))));
    assert_eq!(answers(&client, "Tran Thi Snapshot", &unit).await, expected);
    let again = client
        .command()
        .register_person(request.clone())
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert!(again.replayed);
    assert_eq!(
        (again.name, again.commit_position),
        (first.name.clone(), first.commit_position)
    );
    // Another request under the same id is refused, as the fingerprint kept says.
    let reused = client
        .command()
        .register_person(v1::RegisterPersonRequest {
            display_name: "Someone Else".into(),
            ..request.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(reused.code(), tonic::Code::AlreadyExists, "{reused:?}");
    // The writer knows the registry: a person it registered is found by the next command.
    let mut registrar = Registrar::new(client.clone());
    let (_, _, chair) = registrar.commune_with_chair("Xã Snapshot").await;
    registrar
        .hold(&first.name, &chair, "2024-01-01", None)
        .await;
    caught_up(&client).await;
    let expected = answers(&client, "Tran Thi Snapshot", &unit).await;
    assert_eq!(daemon.stop(), Some(0));
    let files = snapshots(dir.path());
    assert_eq!(files.len(), 4, "{files:?}");

    // The newest read models damaged, and a writer's snapshot of another store ahead of this
    // one: both skipped, the older read models and the newest writer's state loaded.
    let newest = dir.path().join("snapshots").join(&files[1]);
    let mut bytes = std::fs::read(&newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&newest, bytes).unwrap();
    let other = tempfile::tempdir().unwrap();
    let foreign = generate(&Config::tiny(4));
    registry_bench::load_store(&other.path().join("registry.db"), &foreign.facts)
        .await
        .unwrap();
    let daemon = Daemon::embedded(other.path(), &[]);
    caught_up(&daemon.client().await).await;
    assert_eq!(daemon.stop(), Some(0));
    let theirs = snapshots(other.path())
        .into_iter()
        .find(|f| f.starts_with("writer-"))
        .unwrap();
    std::fs::copy(
        other.path().join("snapshots").join(&theirs),
        dir.path()
            .join("snapshots")
            .join("writer-00000000000099999999.snap"),
    )
    .unwrap();
    let daemon = Daemon::embedded(dir.path(), &[]);
    let client = daemon.client().await;
    caught_up(&client).await;
    assert_eq!(answers(&client, "Tran Thi Snapshot", &unit).await, expected);
    let skipped = daemon.logged("skipping a snapshot");
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped
        .iter()
        .any(|l| l.contains(&files[1]) && l.contains("checksum")));
    assert!(skipped.iter().any(
        |l| l.contains("writer-00000000000099999999") && l.contains("not taken of this store")
    ));
    let loaded = daemon.logged("loaded a snapshot");
    assert!(loaded.iter().any(|l| l.contains(&files[0])), "{loaded:?}");
    assert!(loaded.iter().any(|l| l.contains(&files[3])), "{loaded:?}");
    // The writer's state is this store's: it knows the request id recorded before.
    let replayed = client
        .command()
        .register_person(request)
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert!(replayed.replayed);
    assert_eq!(replayed.name, first.name);
    let mut registrar = Registrar::new(client.clone());
    registrar.person("Lê Văn Sau").await;
    assert_eq!(daemon.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_saved_while_serving_and_a_restart_does_not_save_what_it_loaded() {
    let generated = generate(&Config::tiny(5));
    let events = generated.facts.len();
    let dir = tempfile::tempdir().unwrap();
    registry_bench::load_store(&dir.path().join("registry.db"), &generated.facts)
        .await
        .unwrap();
    let every = ["--snapshot-every-events", "1000"];
    let daemon = Daemon::embedded(dir.path(), &every);
    let client = daemon.client().await;
    caught_up(&client).await;
    // Both are due at once (more than 1,000 events since none); the writer's once it has been
    // quiet for 2 s.
    let saved = format!("{events:020}.snap");
    let expected = vec![format!("read-models-{saved}"), format!("writer-{saved}")];
    for _ in 0..200 {
        if snapshots(dir.path()) == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(snapshots(dir.path()), expected);
    // A crash: nothing saved at exit. The restart loads both and, nothing having changed,
    // saves neither again.
    daemon.kill_now();
    let daemon = Daemon::embedded(dir.path(), &every);
    let client = daemon.client().await;
    caught_up(&client).await;
    assert_eq!(daemon.logged("loaded a snapshot").len(), 2);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(daemon.logged("saved a snapshot"), Vec::<String>::new());
    assert_eq!(snapshots(dir.path()), expected);
}
