//! Faults injected inside a running registry (the `fail` crate's named points, compiled in by
//! the `failpoints` features): a full disk at commit and at a snapshot, an append failing with
//! its rows written, a dropped PostgreSQL connection with a transaction open, a feed that
//! cannot be read, and the log's integrator dying between two batches.
//!
//! Failpoints act within one process, so each test hosts `registryd`'s own services
//! (`registryd::build`, `serve_then_close`) in this process, on a real store and a loopback
//! socket, and talks to it with the gRPC client. Each checks the caller's status, that nothing
//! acknowledged is lost and nothing refused is half-stored, and that the service recovers
//! without a restart. `FailScenario` serialises the tests (the points are process-wide).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use fail::FailScenario;
use registry_client::{request_id, v1, Client};
use registry_service_core::config::LogKey;
use registry_service_core::serve::serve_then_close;
use registry_service_core::{Config, Options};
use support::{await_position, drop_schema, postgres, store_stats, Registrar};
use tonic::Code;

/// `registryd`'s services hosted in this process, on a runtime of their own: stopping it ends
/// every task of theirs (the read models' follower too) and lets the store go, as the exit of
/// a process would.
struct InProcess {
    address: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl InProcess {
    async fn start(options: Options) -> Self {
        let config = Config::resolve(Options {
            allow_anonymous: true,
            ..options
        })
        .expect("configuration");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (bound, address) = tokio::sync::oneshot::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = runtime.spawn(async move {
            let signer = config.log_key.load().expect("the log's key");
            let log = !matches!(config.log_key, LogKey::Off);
            let store = config.store.open(signer, log, true).await.expect("store");
            let (routes, hosted) = registryd::build(config.clone(), store.clone())
                .await
                .expect("services");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let _ = bound.send(format!("http://{}", listener.local_addr().unwrap()));
            let shutdown = async {
                let _ = stopped.await;
            };
            serve_then_close(&config, listener, routes, &hosted, &store, shutdown)
                .await
                .expect("served");
        });
        Self {
            address: address.await.expect("the server started"),
            stop: Some(stop),
            served: Some(served),
            runtime: Some(runtime),
        }
    }

    async fn embedded(dir: &Path, snapshots: Option<u64>) -> Self {
        Self::start(Options {
            data_dir: Some(dir.to_owned()),
            snapshot_every_events: snapshots,
            snapshot_every_seconds: snapshots.map(|_| 1),
            ..Options::default()
        })
        .await
    }

    async fn client(&self) -> Client {
        let client = Client::connect(&self.address).await.expect("connect");
        client.with_actor("faults-test").unwrap()
    }

    /// A planned stop: calls drain, snapshots are saved, the store is closed; then the
    /// runtime ends with everything on it.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.unwrap();
        }
        if let Some(runtime) = self.runtime.take() {
            tokio::task::spawn_blocking(move || runtime.shutdown_timeout(Duration::from_secs(10)))
                .await
                .unwrap();
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn register(client: &Client, id: &str, name: &str) -> Result<v1::WriteResult, tonic::Status> {
    client
        .command()
        .register_person(v1::RegisterPersonRequest {
            request_id: id.into(),
            display_name: name.into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().result.expect("a write result"))
}

/// The display names of every person, once the replica reached `min_position`.
async fn person_names(client: &Client, min_position: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .query()
            .list_persons(v1::ListPersonsRequest {
                date: "2024-01-01".into(),
                page_size: 500,
                page_token: page_token.clone(),
                min_position: min_position.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        names.extend(page.persons.into_iter().map(|p| p.display_name));
        if page.next_page_token.is_empty() {
            names.sort();
            return names;
        }
        page_token = page.next_page_token;
    }
}

/// A strict verification against `key`: every event a leaf under a signed checkpoint.
fn strict(key: registry_ledger::VerifierKey) -> registry_eventstore::verify::VerifyOptions {
    registry_eventstore::verify::VerifyOptions {
        keys: vec![key],
        strict: true,
        grace: Duration::from_secs(60),
    }
}

/// The embedded store's log, verified offline against the public key made beside it: every
/// event a leaf under a signed checkpoint, every stored hash right.
fn verify_embedded(dir: &Path) -> registry_eventstore::verify::Report {
    let public = std::fs::read_to_string(dir.join("log.pub")).expect("the log's public key");
    let options = strict(registry_ledger::VerifierKey::parse(public.trim()).unwrap());
    registry_eventstore::verify::verify_embedded(&dir.join("registry.db"), &options).unwrap()
}

/// A full disk at commit: the caller gets RESOURCE_EXHAUSTED, nothing of the write is stored
/// or shown, the log stays whole, and once there is room the same request is recorded once.
/// An I/O error at commit is UNAVAILABLE with an unknown outcome, and a retry with the same
/// request id is recorded once.
#[tokio::test]
async fn a_full_disk_at_commit_refuses_the_write_and_keeps_nothing() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let server = InProcess::embedded(dir.path(), None).await;
    let client = server.client().await;
    let before = register(&client, &request_id(), "Người trước")
        .await
        .unwrap();
    let events = store_stats(&client).await.events;

    fail::cfg("store.commit", "return").unwrap();
    let refused = register(&client, "full-disk-1", "Người đĩa đầy")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("no space"),
        "{}",
        refused.message()
    );
    fail::cfg("store.commit", "return(io)").unwrap();
    let unknown = register(&client, "io-error-1", "Người lỗi ghi")
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::Unavailable, "{unknown:?}");
    assert!(
        unknown.message().contains("outcome is unknown"),
        "{}",
        unknown.message()
    );
    fail::remove("store.commit");

    // Nothing of either is stored or shown.
    assert_eq!(store_stats(&client).await.events, events);
    assert_eq!(
        person_names(&client, &before.commit_position).await,
        vec!["Người trước".to_owned()]
    );
    // With room again: the same requests are recorded, once each, without a restart.
    let first = register(&client, "full-disk-1", "Người đĩa đầy")
        .await
        .unwrap();
    let again = register(&client, "full-disk-1", "Người đĩa đầy")
        .await
        .unwrap();
    assert_eq!(first.name, again.name);
    let last = register(&client, "io-error-1", "Người lỗi ghi")
        .await
        .unwrap();
    assert_eq!(store_stats(&client).await.events, events + 2);
    assert_eq!(
        person_names(&client, &last.commit_position).await,
        vec![
            "Người lỗi ghi".to_owned(),
            "Người trước".to_owned(),
            "Người đĩa đầy".to_owned()
        ]
    );
    server.stop().await;
    let report = verify_embedded(dir.path());
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!((report.leaves, report.signed), (events + 2, events + 2));
    scenario.teardown();
}

/// An append whose rows are written fails before its savepoint is released, while other
/// appends share its commit: only that one is refused (UNAVAILABLE), its rows are gone, the
/// others are stored, and the writer's state holds no trace of it (the writes decided after it
/// are decided again, not against it).
#[tokio::test]
async fn an_append_failing_with_its_rows_written_leaves_none_of_them() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let server = InProcess::embedded(dir.path(), None).await;
    let client = server.client().await;
    let events = store_stats(&client).await.events;

    // The third append to reach the store fails.
    fail::cfg("store.append", "2*off->1*return->off").unwrap();
    let writes: Vec<_> = (0..12)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move {
                let name = format!("Người {n:02}");
                let outcome = register(&client, &format!("append-{n}"), &name).await;
                (n, name, outcome)
            })
        })
        .collect();
    let mut stored = Vec::new();
    let mut failed = Vec::new();
    for write in writes {
        let (n, name, outcome) = write.await.unwrap();
        match outcome {
            Ok(result) => stored.push((name, result)),
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                failed.push((n, name));
            }
        }
    }
    fail::remove("store.append");
    assert_eq!(failed.len(), 1, "exactly one append failed: {failed:?}");
    assert_eq!(store_stats(&client).await.events, events + 11);
    let newest = stored
        .iter()
        .map(|(_, r)| r.commit_position.clone())
        .max_by_key(|p| p.parse::<u64>().unwrap_or(0))
        .unwrap();
    let mut expected: Vec<String> = stored.iter().map(|(name, _)| name.clone()).collect();
    expected.sort();
    assert_eq!(person_names(&client, &newest).await, expected);
    // The refused one, sent again, is recorded after all.
    let (n, name) = &failed[0];
    let retried = register(&client, &format!("append-{n}"), name)
        .await
        .unwrap();
    assert_eq!(
        person_names(&client, &retried.commit_position).await.len(),
        12
    );
    server.stop().await;
    let report = verify_embedded(dir.path());
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!(report.leaves, events + 12);
    scenario.teardown();
}

/// The snapshots' files in `dir`: (`.snap` files, leftover temporary files).
fn snapshot_files(dir: &Path) -> (usize, usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    let names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    (
        names.iter().filter(|n| n.ends_with(".snap")).count(),
        names.iter().filter(|n| n.ends_with(".tmp")).count(),
    )
}

/// A full disk while a periodic snapshot is written: the half-written file is removed, writes
/// and reads go on, and once there is room the next snapshot is saved (and a restart loads it).
#[tokio::test]
async fn a_snapshot_that_finds_the_disk_full_leaves_no_file_and_the_next_is_saved() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let snapshots = dir.path().join("snapshots");
    fail::cfg("snapshot.write", "return").unwrap();
    let server = InProcess::embedded(dir.path(), Some(1)).await;
    let mut registrar = Registrar::new(server.client().await);
    for n in 0..5 {
        registrar.person(&format!("Người {n}")).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    // Several saves were due and each failed: no file of theirs is left.
    assert_eq!(snapshot_files(&snapshots), (0, 0));
    assert_eq!(
        person_names(&registrar.client, &registrar.last).await.len(),
        5
    );
    fail::remove("snapshot.write");
    registrar.person("Người sau").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    // The writer's and the read models' snapshots.
    while snapshot_files(&snapshots).0 < 2 {
        assert!(
            Instant::now() < deadline,
            "no snapshot was saved once there was room"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(snapshot_files(&snapshots).1, 0);
    server.stop().await;
    let server = InProcess::embedded(dir.path(), Some(1)).await;
    let client = server.client().await;
    assert_eq!(person_names(&client, "").await.len(), 6);
    server.stop().await;
    scenario.teardown();
}

/// The feed cannot be read for a while: the read models' follower stops where it stood (writes
/// are still acknowledged) and a change-feed stream ends with UNAVAILABLE; once the feed reads
/// again the follower resumes by itself and the stream's caller resumes after its last event:
/// every event arrives once, in order, none is lost.
#[tokio::test]
async fn a_feed_that_fails_is_followed_again_from_where_it_stood() {
    use tokio_stream::StreamExt;
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let server = InProcess::embedded(dir.path(), None).await;
    let mut registrar = Registrar::new(server.client().await);
    for n in 0..10 {
        registrar.person(&format!("Người trước {n}")).await;
    }
    let client = registrar.client.clone();
    await_position(&client, &registrar.last).await;
    let events = store_stats(&client).await.events;
    let mut changes = client
        .audit()
        .stream_changes(v1::StreamChangesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while (seen.len() as u64) < events {
        let change = changes.next().await.unwrap().unwrap().change.unwrap();
        seen.push(change.position);
    }

    fail::cfg("feed.read", "return").unwrap();
    for n in 0..10 {
        registrar.person(&format!("Người sau {n}")).await;
    }
    let failed = changes
        .next()
        .await
        .expect("the stream reports the failure");
    assert_eq!(failed.unwrap_err().code(), Code::Unavailable);
    let stats = store_stats(&client).await;
    assert_eq!(
        (stats.events, stats.projection_events),
        (events + 10, events),
        "the follower stands still while the feed fails"
    );
    fail::remove("feed.read");

    // The follower resumes without a restart (it tries again each second).
    let names = person_names(&client, &registrar.last).await;
    assert_eq!(names.len(), 20);
    names
        .windows(2)
        .for_each(|w| assert_ne!(w[0], w[1], "{names:?}"));
    assert_eq!(store_stats(&client).await.projection_events, events + 10);
    // The stream's caller resumes after the last event it received.
    let mut changes = client
        .audit()
        .stream_changes(v1::StreamChangesRequest {
            after_position: seen.last().cloned().unwrap(),
        })
        .await
        .unwrap()
        .into_inner();
    while (seen.len() as u64) < events + 10 {
        let change = changes.next().await.unwrap().unwrap().change.unwrap();
        seen.push(change.position);
    }
    let numbers: Vec<u64> = seen.iter().map(|p| p.parse().unwrap()).collect();
    assert_eq!(numbers, (1..=events + 10).collect::<Vec<_>>());
    server.stop().await;
    scenario.teardown();
}

/// A PostgreSQL store in a schema of its own, hosted in this process; `None` when PostgreSQL
/// cannot be reached (with a notice; a failure under `REGISTRY_REQUIRE_POSTGRES=1`).
async fn on_postgres(schema: &str, key: &Path) -> Option<(InProcess, String)> {
    let url = postgres().await?;
    drop_schema(&url, schema).await;
    let server = InProcess::start(Options {
        store: Some(url.clone()),
        pg_schema: Some(schema.into()),
        log_key: Some(key.to_owned()),
        ..Options::default()
    })
    .await;
    Some((server, url))
}

/// A signing key for the log in `dir`; its verifier.
fn log_key(dir: &Path) -> (std::path::PathBuf, registry_ledger::VerifierKey) {
    let key = registry_ledger::SigningKey::generate("faults.test/log").unwrap();
    let path = dir.join("log.key");
    std::fs::write(&path, format!("{}\n", key.to_text())).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    (path, key.verifier())
}

/// Ends, from another connection, every session of the database that sits in an open
/// transaction: the appending one, stopped at the failpoint before its COMMIT.
fn drop_open_transactions(url: &str) {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            let ended = client
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE datname = current_database() AND pid <> pg_backend_pid()
                       AND state = 'idle in transaction'",
                    &[],
                )
                .await
                .unwrap();
            assert!(!ended.is_empty(), "no session had a transaction open");
        });
    })
    .join()
    .unwrap();
}

/// The PostgreSQL connection of an append is dropped with its rows written and its transaction
/// open: the caller gets UNAVAILABLE with an unknown outcome; nothing was stored; the pool
/// replaces the connection, and the retry with the same request id is recorded once.
#[tokio::test]
async fn a_postgres_connection_dropped_mid_transaction_stores_nothing_and_the_pool_recovers() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let (key, verifier) = log_key(dir.path());
    let schema = "faults_dropped";
    let Some((server, url)) = on_postgres(schema, &key).await else {
        return;
    };
    let client = server.client().await;
    let before = register(&client, &request_id(), "Người trước")
        .await
        .unwrap();
    let events = store_stats(&client).await.events;

    let killer = url.clone();
    fail::cfg_callback("store.commit", move || drop_open_transactions(&killer)).unwrap();
    let dropped = register(&client, "dropped-1", "Người mất kết nối")
        .await
        .unwrap_err();
    fail::remove("store.commit");
    assert_eq!(dropped.code(), Code::Unavailable, "{dropped:?}");
    assert!(
        dropped.message().contains("outcome is unknown"),
        "{}",
        dropped.message()
    );
    assert_eq!(store_stats(&client).await.events, events);
    assert_eq!(
        person_names(&client, &before.commit_position).await,
        vec!["Người trước".to_owned()]
    );
    // No restart: the next writes take a new connection; the retry is recorded once.
    let retried = register(&client, "dropped-1", "Người mất kết nối")
        .await
        .unwrap();
    let again = register(&client, "dropped-1", "Người mất kết nối")
        .await
        .unwrap();
    assert_eq!(retried.name, again.name);
    let last = register(&client, &request_id(), "Người sau").await.unwrap();
    assert_eq!(store_stats(&client).await.events, events + 2);
    assert_eq!(person_names(&client, &last.commit_position).await.len(), 3);
    server.stop().await;
    let options = strict(verifier);
    let report = registry_eventstore::verify::verify_postgres(&url, schema, &options)
        .await
        .unwrap();
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!(report.signed, events + 2);
    drop_schema(&url, schema).await;
    scenario.teardown();
}

/// The log's integrator dies between two batches, again and again for a while: writes go on
/// meanwhile (the log lags), and once it stays up it starts over from the last leaf stored;
/// every event is then a leaf once, under a signed checkpoint.
#[tokio::test]
async fn an_integrator_that_dies_between_batches_starts_over_from_the_last_leaf() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let (key, verifier) = log_key(dir.path());
    let schema = "faults_integrator";
    let Some((server, url)) = on_postgres(schema, &key).await else {
        return;
    };
    let mut registrar = Registrar::new(server.client().await);
    for n in 0..5 {
        registrar.person(&format!("Người trước {n}")).await;
    }
    let options = strict(verifier);
    fail::cfg("log.integrate", "return").unwrap();
    for n in 0..20 {
        registrar.person(&format!("Người giữa {n}")).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let lagging = registry_eventstore::verify::verify_postgres(&url, schema, &options)
        .await
        .unwrap();
    assert!(
        lagging.leaves <= 5 && lagging.events == 25,
        "the log did not stop: {} leaves of {} events",
        lagging.leaves,
        lagging.events
    );
    fail::remove("log.integrate");
    for n in 0..5 {
        registrar.person(&format!("Người sau {n}")).await;
    }
    let client = registrar.client.clone();
    let events = store_stats(&client).await.events;
    // Live, without a stop: the integrator catches up and signs within seconds.
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let report = registry_eventstore::verify::verify_postgres(&url, schema, &options)
            .await
            .unwrap();
        if (report.is_clean() && report.signed == events) || Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!((report.leaves, report.signed), (events, events));
    server.stop().await;
    drop_schema(&url, schema).await;
    scenario.teardown();
}
