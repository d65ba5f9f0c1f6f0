//! The embedded (SQLite) backend: the conformance suite, the lock against a second process, and
//! durability across reopen.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[macro_use]
mod conformance;

use conformance::{event, Fixture};
use registry_eventstore::*;

async fn embedded() -> Option<Fixture<EmbeddedStore>> {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path().join("registry.db"))).unwrap();
    Some(Fixture {
        store,
        guard: Box::new(dir),
    })
}

conformance_suite!(embedded());

#[tokio::test]
async fn a_second_opener_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let store = EmbeddedStore::open(EmbeddedConfig::new(&path)).unwrap();
    match EmbeddedStore::open(EmbeddedConfig::new(&path)) {
        Err(StoreError::Locked(p)) => assert!(p.ends_with("registry.db")),
        Err(other) => panic!("expected Locked, got {other}"),
        Ok(_) => panic!("a second opener got the store"),
    }
    store.close();
    drop(store);
    EmbeddedStore::open(EmbeddedConfig::new(&path)).expect("reopens once released");
}

#[tokio::test]
async fn appends_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let store = EmbeddedStore::open(EmbeddedConfig::new(&path)).unwrap();
    let a = store
        .append(
            "registry",
            ExpectedRevision::NoStream,
            vec![event("A", b"1")],
        )
        .await
        .unwrap();
    store.close();
    drop(store);
    let store = EmbeddedStore::open(EmbeddedConfig::new(&path)).unwrap();
    assert_eq!(store.head().await.unwrap(), Some(a.position));
    let b = store
        .append(
            "registry",
            ExpectedRevision::Exact(0),
            vec![event("B", b"2")],
        )
        .await
        .unwrap();
    assert!(b.position > a.position);
    assert!(matches!(
        store
            .append(
                "registry",
                ExpectedRevision::Exact(0),
                vec![event("C", b"3")]
            )
            .await,
        Err(StoreError::WrongExpectedRevision {
            actual: Some(1),
            ..
        })
    ));
}

#[tokio::test]
async fn a_closed_store_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path().join("r.db"))).unwrap();
    store.close();
    assert!(matches!(
        store
            .append("s", ExpectedRevision::Any, vec![event("A", b"")])
            .await,
        Err(StoreError::Closed)
    ));
}

/// Reads the whole feed, a page of `page` events at a time.
async fn whole_feed(store: &EmbeddedStore, page: usize) -> Vec<RecordedEvent> {
    let mut feed = Vec::new();
    loop {
        let batch = store
            .read_all(feed.last().map(|e: &RecordedEvent| e.position), page)
            .await
            .unwrap();
        if batch.is_empty() {
            return feed;
        }
        feed.extend(batch);
    }
}

#[tokio::test]
async fn the_feed_read_back_from_memory_is_the_feed_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let store = EmbeddedStore::open(EmbeddedConfig::new(&path)).unwrap();
    // More events than the store keeps in memory, appended by many callers at once (so that
    // commits group several appends), on two streams, with refused appends among them.
    let batches = (registry_eventstore::embedded::RECENT_EVENTS + 3_000) / 100;
    let total = batches * 100;
    let mut pending = Vec::new();
    let mut revisions = [None::<u64>, None];
    for batch in 0..batches {
        let stream = batch % 2;
        let events = (0..100)
            .map(|i| event(&format!("T{}", i % 3), format!("{batch}/{i}").as_bytes()))
            .collect();
        let expected =
            revisions[stream].map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
        pending.push(
            store
                .queue(["registry", "other"][stream], expected, events)
                .unwrap(),
        );
        revisions[stream] = Some(revisions[stream].map_or(99, |r| r + 100));
        if batch % 7 == 3 {
            let refused = store
                .queue(
                    "registry",
                    ExpectedRevision::Exact(123_456),
                    vec![event("X", b"x")],
                )
                .unwrap();
            pending.push(refused);
        }
        if pending.len() >= 32 {
            for append in pending.drain(..) {
                let _ = append.await;
            }
        }
    }
    for append in pending {
        let _ = append.await;
    }
    let live = whole_feed(&store, 4096).await;
    assert_eq!(live.len(), total);
    let head = live.last().unwrap().position.commit;
    let tail = store
        .read_all(Some(Position::sequence(head - 1000)), 600)
        .await
        .unwrap();
    store.close();
    drop(store);

    let reopened = EmbeddedStore::open(EmbeddedConfig::new(&path)).unwrap();
    let from_file = whole_feed(&reopened, 4096).await;
    assert_eq!(live, from_file);
    assert_eq!(tail, from_file[total - 1000..total - 400]);
}

/// A store written before events carried request fingerprints gains the column when opened;
/// its old events read back without one, new ones with theirs.
#[tokio::test]
async fn a_store_without_fingerprints_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    {
        let old = rusqlite::Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE events (
                position INTEGER PRIMARY KEY, stream TEXT NOT NULL, revision INTEGER NOT NULL,
                id BLOB NOT NULL UNIQUE, type TEXT NOT NULL, version INTEGER NOT NULL,
                payload BLOB NOT NULL, actor TEXT NOT NULL, request_id TEXT,
                correlation_id TEXT, recorded_at INTEGER NOT NULL, UNIQUE (stream, revision));
             INSERT INTO events VALUES (1, 'registry', 0, x'0193a5e0000070008000000000000001',
                'Old', 1, x'7b7d', 'tester', 'r-1', NULL, 1700000000000000);",
        )
        .unwrap();
    }
    let store = EmbeddedStore::open(EmbeddedConfig::new(&path)).unwrap();
    conformance::fingerprints_after_a_migration(&store).await;
}
