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
conformance_suite!(@tests postgres(); a_repeated_event_id_is_stored_once_in_the_store);

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

/// A signed store of 40 events in 10 appends, its integrator stopped once a checkpoint covers
/// them all; answers the fixture (the schema), a direct client and the positions in feed order.
async fn signed_store(
    key: &registry_ledger::SigningKey,
) -> Option<(
    Fixture<PostgresStore>,
    tokio_postgres::Client,
    Vec<Position>,
)> {
    let signer = std::sync::Arc::new(
        LogSigner::new(vec![
            registry_ledger::SigningKey::parse(&key.to_text()).unwrap()
        ])
        .unwrap(),
    );
    let fixture = postgres_with(Some(signer)).await?;
    for s in 0..10 {
        let events = (0..4)
            .map(|n| event("Recorded", format!("{{\"s\":{s},\"n\":{n}}}").as_bytes()))
            .collect();
        fixture
            .store
            .append(&format!("s-{s}"), ExpectedRevision::NoStream, events)
            .await
            .unwrap();
    }
    let head = fixture.store.head().await.unwrap().unwrap();
    conformance::wait_for_feed(&fixture.store, head).await;
    conformance::checkpoint_covering(&fixture.store, 40).await;
    let positions = fixture
        .store
        .read_all(None, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    // The integrator stops with the store; the schema stays until the fixture is dropped.
    let schema = fixture.store.schema().to_owned();
    let Fixture { store, guard } = fixture;
    drop(store);
    let (client, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("SET search_path TO {schema}"))
        .await
        .unwrap();
    let reopened = PostgresStore::connect(PostgresConfig {
        schema,
        ..PostgresConfig::new(url())
    })
    .await
    .unwrap();
    Some((
        Fixture {
            store: reopened,
            guard,
        },
        client,
        positions,
    ))
}

fn at(p: Position) -> String {
    format!("tx_id = '{}'::xid8 AND seq = {}", p.commit, p.prepare)
}

async fn verify(
    store: &PostgresStore,
    key: &registry_ledger::VerifierKey,
    strict: bool,
) -> registry_eventstore::verify::Report {
    registry_eventstore::verify::verify_postgres(
        &url(),
        store.schema(),
        &registry_eventstore::verify::VerifyOptions {
            keys: vec![key.clone()],
            strict,
            grace: Duration::from_secs(10),
        },
    )
    .await
    .unwrap()
}

fn kinds(report: &registry_eventstore::verify::Report) -> Vec<(Option<Position>, &'static str)> {
    report
        .findings
        .iter()
        .map(|f| (f.position, f.problem.kind()))
        .collect()
}

/// The tamper cases of the embedded store's file, on PostgreSQL's tables: each found by
/// `verify_postgres` at the right position with the right kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_tampering_is_found_where_it_was_done() {
    let key = registry_ledger::SigningKey::generate("registry.test/pg-tamper").unwrap();
    let verifier = key.verifier();

    let Some((fixture, db, p)) = signed_store(&key).await else {
        return;
    };
    let clean = verify(&fixture.store, &verifier, true).await;
    assert!(clean.is_clean(), "{:?}", clean.findings);
    assert_eq!((clean.events, clean.leaves, clean.signed), (40, 40, 40));

    // One byte of one payload.
    db.batch_execute(&format!(
        "UPDATE events SET payload = convert_to(replace(convert_from(payload, 'UTF8'), '\"n\":2', '\"n\":3'), 'UTF8') WHERE {}",
        at(p[6])
    ))
    .await
    .unwrap();
    assert_eq!(
        kinds(&verify(&fixture.store, &verifier, false).await),
        [(Some(p[6]), "event changed")]
    );
    drop(fixture);

    // An event deleted.
    let Some((fixture, db, p)) = signed_store(&key).await else {
        return;
    };
    db.batch_execute(&format!("DELETE FROM events WHERE {}", at(p[11])))
        .await
        .unwrap();
    assert_eq!(
        kinds(&verify(&fixture.store, &verifier, false).await),
        [(Some(p[11]), "event missing")]
    );
    drop(fixture);

    // Two events swapped: everything but their places exchanged.
    let Some((fixture, db, p)) = signed_store(&key).await else {
        return;
    };
    let columns = "stream, revision, id, type, version, payload, actor, request_id, correlation_id, recorded_at, request_fingerprint";
    db.batch_execute(&format!(
        "CREATE TEMP TABLE a AS SELECT {columns} FROM events WHERE {a};
         CREATE TEMP TABLE b AS SELECT {columns} FROM events WHERE {b};
         UPDATE events SET id = gen_random_uuid(), revision = -1 WHERE {a};
         UPDATE events SET ({columns}) = (SELECT {columns} FROM a) WHERE {b};
         UPDATE events SET ({columns}) = (SELECT {columns} FROM b) WHERE {a};",
        a = at(p[4]),
        b = at(p[8])
    ))
    .await
    .unwrap();
    assert_eq!(
        kinds(&verify(&fixture.store, &verifier, false).await),
        [(Some(p[4]), "order changed"), (Some(p[8]), "order changed")]
    );
    drop(fixture);

    // An event inserted in the middle of the feed (in an earlier transaction's place).
    let Some((fixture, db, p)) = signed_store(&key).await else {
        return;
    };
    db.batch_execute(&format!(
        "INSERT INTO events (tx_id, stream, revision, id, type, version, payload, actor, recorded_at)
         VALUES ('{}'::xid8, 'inserted', 0, gen_random_uuid(), 'Recorded', 1, '\\x7b7d', 'tester', 0)",
        p[5].commit
    ))
    .await
    .unwrap();
    let report = verify(&fixture.store, &verifier, false).await;
    assert_eq!(
        kinds(&report)[0].1,
        "event inserted",
        "{:?}",
        report.findings
    );
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    assert_eq!(report.findings[0].position.unwrap().commit, p[5].commit);
    drop(fixture);

    // A checkpoint's root replaced.
    let Some((fixture, db, _)) = signed_store(&key).await else {
        return;
    };
    db.batch_execute(
        "UPDATE log_checkpoints SET note = regexp_replace(note, '^([^\n]*\n[^\n]*\n)[^\n]*', '\\1AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=')
         WHERE size = (SELECT MAX(size) FROM log_checkpoints)",
    )
    .await
    .unwrap();
    let report = verify(&fixture.store, &verifier, false).await;
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.problem.kind() == "signature invalid"),
        "{:?}",
        report.findings
    );
    drop(fixture);

    // A forged event appended with the hashes recomputed (leaf, nodes and its place in the
    // log): under no signed checkpoint.
    let Some((fixture, db, _)) = signed_store(&key).await else {
        return;
    };
    db.batch_execute(
        "INSERT INTO events (stream, revision, id, type, version, payload, actor, recorded_at)
         VALUES ('forged', 0, gen_random_uuid(), 'Recorded', 1, '\\x7b7d', 'tester', 0)",
    )
    .await
    .unwrap();
    // Read from its stream: the feed shows it only once older transactions of the cluster
    // (other tests') have ended.
    let forged = fixture
        .store
        .read_stream("forged", 0, Direction::Forwards, 1)
        .await
        .unwrap()
        .pop()
        .unwrap();
    conformance::wait_for_feed(&fixture.store, forged.position).await;
    let ids = registry_ledger::Frontier::ids(40);
    let nodes = fixture.store.log_nodes(ids).await.unwrap();
    let mut frontier = registry_ledger::Frontier::load(40, &nodes).unwrap();
    let mut made = Vec::new();
    frontier.push(forged.leaf().hash(), |id, hash| made.push((id, hash)));
    for (id, hash) in made {
        db.execute(
            "INSERT INTO log_nodes (key, hash) VALUES ($1, $2)",
            &[&(id.key() as i64), &&hash[..]],
        )
        .await
        .unwrap();
    }
    db.execute(
        "INSERT INTO log_leaves (idx, tx_id, seq) VALUES (40, $1::text::xid8, $2)",
        &[
            &forged.position.commit.to_string(),
            &(forged.position.prepare as i64),
        ],
    )
    .await
    .unwrap();
    // Recorded (it says) long ago: a finding with or without --strict.
    for strict in [true, false] {
        assert_eq!(
            kinds(&verify(&fixture.store, &verifier, strict).await),
            [(Some(forged.position), "unsigned events")]
        );
    }
    drop(fixture);
}
