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
