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
conformance_suite!(@tests embedded(); a_repeated_event_id_is_stored_once_in_the_store);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_follows_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let key = registry_ledger::SigningKey::generate("registry.test/log").unwrap();
    let verifier = key.verifier();
    let mut config = EmbeddedConfig::new(dir.path().join("registry.db"));
    config.signer = Some(std::sync::Arc::new(LogSigner::new(vec![key]).unwrap()));
    let store = EmbeddedStore::open(config).unwrap();
    conformance::the_log_follows_the_feed(store, &verifier).await;
}

/// A store written with the log off (or by a version without it) is integrated when opened with
/// it on, and signed.
#[tokio::test]
async fn a_store_written_without_the_log_is_integrated_when_opened_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let mut config = EmbeddedConfig::new(&path);
    config.log = false;
    let store = EmbeddedStore::open(config).unwrap();
    for n in 0..5u64 {
        let expected = n
            .checked_sub(1)
            .map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
        store
            .append("registry", expected, vec![event("E", &n.to_be_bytes())])
            .await
            .unwrap();
    }
    assert!(store
        .log_index(Position::sequence(1))
        .await
        .unwrap()
        .is_none());
    store.close();
    drop(store);
    let key = registry_ledger::SigningKey::generate("registry.test/log").unwrap();
    let verifier = key.verifier();
    let mut config = EmbeddedConfig::new(&path);
    config.signer = Some(std::sync::Arc::new(LogSigner::new(vec![key]).unwrap()));
    let store = EmbeddedStore::open(config).unwrap();
    let (tree, _) = conformance::tree_of_feed(&store).await;
    assert_eq!(
        conformance::stored_root(&store, 5).await,
        tree.root(5).unwrap()
    );
    let checkpoint = conformance::checkpoint_covering(&store, 5).await;
    let (checkpoint, _) = registry_ledger::Checkpoint::open(&checkpoint.note, &verifier).unwrap();
    assert_eq!(Some(checkpoint.root), tree.root(5));
}

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

/// The feed's events as leaves of a Merkle tree: the root over a stored feed changes when any
/// stored event is altered, deleted or moved, and a leaf altered in the file no longer proves
/// its inclusion under the root taken before. (The log that keeps and signs such roots is
/// issue 25; this checks that what it hashes covers what the file holds.)
#[tokio::test]
async fn an_event_altered_in_the_file_changes_the_feeds_root() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let tree_of = |events: &[RecordedEvent]| {
        let mut tree = registry_ledger::Tree::new();
        for event in events {
            tree.push(event.leaf().hash());
        }
        tree
    };
    let feed = |path: std::path::PathBuf| async move {
        let store = EmbeddedStore::open(EmbeddedConfig::new(&path)).unwrap();
        let events = store.read_all(None, 100).await.unwrap();
        store.close();
        events
    };
    let store = EmbeddedStore::open(EmbeddedConfig::new(&path)).unwrap();
    let batch: Vec<NewEvent> = (0..6)
        .map(|i| event("HoldingStarted", format!("{{\"n\":{i}}}").as_bytes()))
        .collect();
    store
        .append("registry", ExpectedRevision::NoStream, batch)
        .await
        .unwrap();
    store.close();
    drop(store);
    let original = feed(path.clone()).await;
    let tree = tree_of(&original);
    let root = tree.root(6).unwrap();
    let tamper = |sql: &str| {
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(sql).unwrap();
    };
    // One byte of one payload.
    tamper("UPDATE events SET payload = CAST('{\"n\":9}' AS BLOB) WHERE revision = 3");
    let altered = feed(path.clone()).await;
    assert_ne!(tree_of(&altered).root(6).unwrap(), root);
    let proof = tree.inclusion_proof(3, 6).unwrap();
    assert!(
        registry_ledger::verify_inclusion(&original[3].leaf().hash(), 3, 6, &proof, &root).is_ok()
    );
    assert!(
        registry_ledger::verify_inclusion(&altered[3].leaf().hash(), 3, 6, &proof, &root).is_err()
    );
    // Two events swapped (payloads exchanged), an actor rewritten, an event deleted.
    tamper(
        "UPDATE events SET payload = CAST('{\"n\":3}' AS BLOB) WHERE revision = 3;
         UPDATE events SET payload = CAST('{\"n\":1}' AS BLOB) WHERE revision = 2;
         UPDATE events SET payload = CAST('{\"n\":2}' AS BLOB) WHERE revision = 1;",
    );
    assert_ne!(tree_of(&feed(path.clone()).await).root(6).unwrap(), root);
    tamper(
        "UPDATE events SET payload = CAST('{\"n\":1}' AS BLOB) WHERE revision = 1;
         UPDATE events SET payload = CAST('{\"n\":2}' AS BLOB) WHERE revision = 2;",
    );
    assert_eq!(
        tree_of(&feed(path.clone()).await).root(6).unwrap(),
        root,
        "restored"
    );
    tamper("UPDATE events SET actor = 'someone else' WHERE revision = 0");
    assert_ne!(tree_of(&feed(path.clone()).await).root(6).unwrap(), root);
    tamper("UPDATE events SET actor = (SELECT actor FROM events WHERE revision = 1) WHERE revision = 0; DELETE FROM events WHERE revision = 4");
    let shorter = feed(path.clone()).await;
    assert_eq!(shorter.len(), 5);
    assert_ne!(tree_of(&shorter).root(5), tree.root(5));
}
