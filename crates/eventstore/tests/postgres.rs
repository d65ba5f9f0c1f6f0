//! The PostgreSQL backend against the real server: the conformance suite, each test in its own
//! schema, plus the out-of-order-commit case the `xid8` technique exists for.
//!
//! The server is `REGISTRY_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`). When it
//! is unreachable the tests print a notice and pass without running, unless
//! `REGISTRY_REQUIRE_POSTGRES=1` (set by CI), where they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[macro_use]
mod conformance;

use std::time::Duration;

use conformance::{event, Fixture};
use registry_eventstore::*;

fn url() -> String {
    std::env::var("REGISTRY_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Drops the test's schema when the test ends.
struct SchemaGuard {
    schema: String,
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let schema = self.schema.clone();
        let url = url();
        // A fresh thread and runtime: Drop may run inside another runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .await;
                }
            });
        })
        .join();
    }
}

async fn postgres() -> Option<Fixture<PostgresStore>> {
    postgres_with(None).await
}

async fn postgres_with(
    signer: Option<std::sync::Arc<LogSigner>>,
) -> Option<Fixture<PostgresStore>> {
    let schema = format!("test_es_{}", uuid::Uuid::now_v7().simple());
    let config = PostgresConfig {
        schema: schema.clone(),
        signer,
        ..PostgresConfig::new(url())
    };
    let connected =
        tokio::time::timeout(Duration::from_secs(10), PostgresStore::connect(config)).await;
    match connected {
        Ok(Ok(store)) => Some(Fixture {
            store,
            guard: Box::new(SchemaGuard { schema }),
        }),
        failure => {
            let why = match failure {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".into(),
            };
            if std::env::var("REGISTRY_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("PostgreSQL at {} is required (REGISTRY_REQUIRE_POSTGRES=1) but unreachable: {why}", url());
            }
            conformance::notice(&format!(
                "skipping PostgreSQL test, no server at {} ({why})",
                url()
            ));
            None
        }
    }
}

conformance_suite!(postgres());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_follows_the_feed() {
    let key = registry_ledger::SigningKey::generate("registry.test/pg").unwrap();
    let verifier = key.verifier();
    let signer = std::sync::Arc::new(LogSigner::new(vec![key]).unwrap());
    let Some(fixture) = postgres_with(Some(signer)).await else {
        return;
    };
    conformance::the_log_follows_the_feed(fixture.store.clone(), &verifier).await;
    drop(fixture);
}

/// Two transactions: the first gets the lower sequence number but commits last. A reader that
/// followed sequence numbers alone would pass the gap and lose the first transaction's event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_commits_are_delivered_without_loss() {
    let Some(fixture) = postgres().await else {
        return;
    };
    let store = fixture.store.clone();
    let schema = store.schema().to_owned();
    let mut subscription = store.subscribe(None);
    let (slow, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // Transaction A: inserts first (lower seq), stays open.
    slow.batch_execute("BEGIN").await.unwrap();
    slow.execute(
        &format!(
            "INSERT INTO {schema}.events (stream, revision, id, type, version, payload, actor, recorded_at)
             VALUES ('slow', 0, $1, 'Slow', 1, ''::bytea, 'tester', 0)"
        ),
        &[&uuid::Uuid::now_v7()],
    )
    .await
    .unwrap();
    // Transaction B: a normal append, committed while A is open.
    let fast = store
        .append("fast", ExpectedRevision::Any, vec![event("Fast", b"{}")])
        .await
        .unwrap();
    // B is held back: A is older and still running.
    assert!(
        tokio::time::timeout(Duration::from_millis(400), subscription.next())
            .await
            .is_err(),
        "delivered past an open transaction"
    );
    slow.batch_execute("COMMIT").await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((&*first.event_type, &*second.event_type), ("Slow", "Fast"));
    assert!(first.position < second.position);
    assert_eq!(second.position, fast.position);
    assert!(
        first.position.prepare < second.position.prepare,
        "A did take the lower sequence number"
    );
    drop(fixture);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_one_stream_never_both_win() {
    let Some(fixture) = postgres().await else {
        return;
    };
    let store = fixture.store.clone();
    store
        .append(
            "contended",
            ExpectedRevision::NoStream,
            vec![event("First", b"{}")],
        )
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(
                        "contended",
                        ExpectedRevision::Exact(0),
                        vec![event("Next", b"{}")],
                    )
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StoreError::WrongExpectedRevision {
                actual: Some(1), ..
            }) => {}
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(
        store
            .read_stream("contended", 0, Direction::Forwards, 100)
            .await
            .unwrap()
            .len(),
        2
    );
    drop(fixture);
}

/// The feed orders transaction ids as numbers: 9 before 10, 999 before 1000 (text would not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_ids_order_as_numbers() {
    let Some(fixture) = postgres().await else {
        return;
    };
    let store = fixture.store.clone();
    let schema = store.schema().to_owned();
    let (client, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    for (tx, stream) in [
        ("10", "ten"),
        ("9", "nine"),
        ("1000", "thousand"),
        ("999", "nine-nine-nine"),
    ] {
        client
            .execute(
                &format!(
                    "INSERT INTO {schema}.events (tx_id, stream, revision, id, type, version, payload, actor, recorded_at)
                     VALUES ($1::text::xid8, $2, 0, $3, 'T', 1, ''::bytea, 'tester', 0)"
                ),
                &[&tx, &stream, &uuid::Uuid::now_v7()],
            )
            .await
            .unwrap();
    }
    let feed = store.read_all(None, 10).await.unwrap();
    let order: Vec<u64> = feed.iter().map(|e| e.position.commit).collect();
    assert_eq!(order, [9, 10, 999, 1000]);
    assert_eq!(store.head().await.unwrap().map(|p| p.commit), Some(1000));
    let after_ten = store.read_all(Some(feed[1].position), 10).await.unwrap();
    assert_eq!(
        after_ten
            .iter()
            .map(|e| e.position.commit)
            .collect::<Vec<_>>(),
        [999, 1000]
    );
    drop(fixture);
}

/// Writers racing to create one stream: exactly one wins, the others hear the stream's real
/// revision (the loser of the race retries under the new row's lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_racing_to_create_a_stream_see_its_real_revision() {
    let Some(fixture) = postgres().await else {
        return;
    };
    let store = fixture.store.clone();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(
                        "created-once",
                        ExpectedRevision::NoStream,
                        vec![event("First", b"{}")],
                    )
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StoreError::WrongExpectedRevision {
                actual: Some(0), ..
            }) => {}
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(wins, 1);
    drop(fixture);
}

/// The database server's clock steps back (NTP, a failover to a host whose clock is behind):
/// simulated by moving the last event's recorded time an hour ahead of the clock. The next
/// append is stamped no earlier than it, so recorded time stays monotone along the feed and
/// "as known at T" stays a prefix of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_time_never_steps_back_when_the_clock_does() {
    let Some(fixture) = postgres().await else {
        return;
    };
    let store = fixture.store.clone();
    let schema = store.schema().to_owned();
    store
        .append(
            "registry",
            ExpectedRevision::NoStream,
            vec![event("A", b"{}")],
        )
        .await
        .unwrap();
    let (client, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let ahead: i64 = client
        .query_one(
            &format!(
                "UPDATE {schema}.events SET recorded_at = recorded_at + 3600000000
                 WHERE stream = 'registry' AND revision = 0 RETURNING recorded_at"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    store
        .append(
            "registry",
            ExpectedRevision::Exact(0),
            vec![event("B", b"{}"), event("C", b"{}")],
        )
        .await
        .unwrap();
    let events = store
        .read_stream("registry", 0, Direction::Forwards, 10)
        .await
        .unwrap();
    let times: Vec<i64> = events.iter().map(|e| e.recorded_at).collect();
    assert_eq!(times[0], ahead);
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "recorded time stepped back: {times:?}"
    );
    // With the clock caught up, time moves on from the clock again.
    client
        .execute(
            &format!("UPDATE {schema}.events SET recorded_at = 0 WHERE stream = 'registry'"),
            &[],
        )
        .await
        .unwrap();
    let later = store
        .append(
            "registry",
            ExpectedRevision::Exact(2),
            vec![event("D", b"{}")],
        )
        .await
        .unwrap();
    let d = store
        .read_stream("registry", 3, Direction::Forwards, 1)
        .await
        .unwrap();
    assert!(d[0].recorded_at > 1_700_000_000_000_000, "{later:?}");
    drop(fixture);
}

/// A schema made before events carried request fingerprints gains the column when the store
/// connects; its old events read back without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_without_fingerprints_is_migrated() {
    let Some(fixture) = postgres().await else {
        return;
    };
    let schema = fixture.store.schema().to_owned();
    let (client, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    fixture
        .store
        .append(
            "registry",
            ExpectedRevision::NoStream,
            vec![event("Old", b"{}")],
        )
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "ALTER TABLE {schema}.events DROP COLUMN request_fingerprint"
        ))
        .await
        .unwrap();
    let reconnected = PostgresStore::connect(PostgresConfig {
        schema: schema.clone(),
        ..PostgresConfig::new(url())
    })
    .await
    .unwrap();
    conformance::fingerprints_after_a_migration(&reconnected).await;
    drop(fixture);
}
