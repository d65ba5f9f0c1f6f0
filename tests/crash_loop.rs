//! Crash and restart through the service (`registry_bench::crash`, the harness whose longer runs
//! give the figures): `registryd` under write load killed with SIGKILL at random moments, while
//! it saves a snapshot, rebuilds its read models or records an import; on PostgreSQL also the
//! database crashed under it. After each restart every acknowledged write is read back, every
//! write in doubt retried with its request id is recorded once, and at the end the store's log
//! verifies.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use registry_bench::crash::{run, Fault, Options, Store};

/// Cycles per store here; `cargo bench -p registry-bench --bench crash` runs more.
const CYCLES: usize = 12;

fn options(seed: u64) -> Options {
    Options {
        cycles: CYCLES,
        writers: 8,
        seed,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_loses_nothing_acknowledged_across_kills() {
    let dir = tempfile::tempdir().unwrap();
    cycles(&Store::Embedded(dir.path().to_owned()), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_loses_nothing_acknowledged_across_kills_and_database_crashes() {
    let Some(server) = support::single_server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    cycles(&Store::Postgres(server, dir.path().to_owned()), 2).await;
}

/// Runs the cycles on `store` and checks each fault had its turn and writes went through (the
/// harness itself fails on anything lost, doubled or unverified).
async fn cycles(store: &Store, seed: u64) {
    let binary = registry_testkit::daemon::registryd_binary();
    let tally = run(&binary, store, &options(seed))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{tally:?}");
    for fault in Fault::for_store(store) {
        assert_eq!(tally.cycles.get(fault), Some(&(CYCLES / 4)), "{fault:?}");
    }
    assert!(
        tally.acknowledged > 0,
        "no write was acknowledged: {tally:?}"
    );
    assert_eq!(tally.imported, 2_000 * CYCLES / 4);
    assert!(tally.events_verified > tally.acknowledged as u64);
}
