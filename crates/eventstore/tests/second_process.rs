//! The embedded store's lock holds across processes. In its own test binary: a forked child
//! briefly shares every open file (and so every file lock) of the test process, which would
//! disturb the in-process lock tests running beside it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use registry_eventstore::*;

#[tokio::test]
async fn a_second_process_gets_a_clear_error() {
    // The lock is an OS file lock, so it holds across processes: run a child that tries.
    if let Ok(path) = std::env::var("REGISTRY_LOCK_CHILD") {
        match EmbeddedStore::open(EmbeddedConfig::new(path)) {
            Err(StoreError::Locked(_)) => std::process::exit(42),
            _ => std::process::exit(1),
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let _store = EmbeddedStore::open(EmbeddedConfig::new(&path)).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_second_process_gets_a_clear_error",
            "--nocapture",
        ])
        .env("REGISTRY_LOCK_CHILD", &path)
        .status()
        .unwrap();
    assert_eq!(
        status.code(),
        Some(42),
        "the child did not see the store as locked"
    );
}
