//! The crash harness's long run (`registry_bench::crash`): `registryd` under write load from 8
//! clients, crashed `REGISTRY_CRASH_CYCLES` times (default 100) per store, faults in turn (on the
//! embedded store: SIGKILL at a random moment, while saving a snapshot, while rebuilding, while
//! recording an import; on PostgreSQL, a server of the harness's own: SIGKILL at a random
//! moment, the database crashed with `pg_ctl stop -m immediate`, while rebuilding, while
//! recording an import), every acknowledged write read back and every write in doubt retried
//! after each restart, and the store's log verified at the end.
//!
//! `cargo bench -p registry-bench --bench crash`; `REGISTRY_CRASH_STORES=embedded` (or
//! `postgres`) runs one store. A violation ends the run with the cycle and what was found.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Instant;

use registry_bench::crash::{run, Options, Store, Tally};
use registry_testkit::daemon::registryd_binary;
use registry_testkit::pgcluster::Single;

fn main() {
    let cycles = std::env::var("REGISTRY_CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100);
    let stores =
        std::env::var("REGISTRY_CRASH_STORES").unwrap_or_else(|_| "embedded,postgres".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let binary = registryd_binary();
    let options = Options {
        cycles,
        writers: 8,
        seed: 2026,
    };
    for name in stores.split(',') {
        let dir = tempfile::tempdir().unwrap();
        let store = match name {
            "embedded" => Store::Embedded(dir.path().to_owned()),
            "postgres" => match Single::start() {
                Ok(server) => Store::Postgres(server, dir.path().to_owned()),
                Err(e) => {
                    println!("postgres: no server of the harness's own ({e}); not run");
                    continue;
                }
            },
            other => panic!("REGISTRY_CRASH_STORES: unknown store {other}"),
        };
        let started = Instant::now();
        match runtime.block_on(run(&binary, &store, &options)) {
            Ok(tally) => report(name, &tally, started.elapsed().as_secs_f64()),
            Err(e) => panic!("{name}: {e}"),
        }
    }
}

fn report(name: &str, tally: &Tally, seconds: f64) {
    let mut faults: Vec<_> = tally.cycles.iter().collect();
    faults.sort();
    let cycles: usize = tally.cycles.values().sum();
    let mut recoveries = tally.recoveries.clone();
    recoveries.sort_by(f64::total_cmp);
    let at = |q: f64| recoveries[((recoveries.len() - 1) as f64 * q) as usize];
    println!("{name}: {cycles} cycles in {seconds:.0} s, 0 violations");
    println!("  faults: {faults:?}");
    println!(
        "  writes acknowledged {} (all read back); in doubt {} (recorded before the crash {}, by the retry {}, each once)",
        tally.acknowledged,
        tally.in_doubt_recorded_before + tally.in_doubt_recorded_by_retry,
        tally.in_doubt_recorded_before,
        tally.in_doubt_recorded_by_retry
    );
    println!(
        "  import records {} (recorded before the crash {}; each once after the import was sent again)",
        tally.imported, tally.imported_before_crash
    );
    println!(
        "  snapshot saves cut short by the kill: {}",
        tally.snapshots_cut
    );
    println!(
        "  recovery (restart to SERVING; after a database crash, its start to the first write acknowledged): p50 {:.2} s, p90 {:.2} s, max {:.2} s",
        at(0.5),
        at(0.9),
        at(1.0)
    );
    println!(
        "  the store's log verified offline: {} events",
        tally.events_verified
    );
}
