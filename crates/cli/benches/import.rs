//! Import of 100,000 holdings through `regctl` into a `registryd` on a temporary embedded store,
//! then the same file again (which must append nothing). Prints rows/s for both runs.
//!
//! `cargo bench -p registry-cli --bench import` (release build of both binaries).
//! `REGISTRY_BENCH_HOLDINGS=N` changes the size (rounded to 50 holdings per office).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;
use std::time::Instant;

use registry_testkit::daemon::{registryd_binary, Daemon};
use registry_testkit::fixtures::holdings_jsonl;

fn main() {
    let holdings: usize = std::env::var("REGISTRY_BENCH_HOLDINGS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let per_office = 50;
    let offices = holdings.div_ceil(per_office);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("holdings.jsonl");
    std::fs::write(&file, holdings_jsonl(offices, per_office)).unwrap();
    let rows = 1 + offices + 2 * offices * per_office;
    let daemon = Daemon::embedded(&registryd_binary(), &dir.path().join("store"), &[]);
    let run = |label: &str| {
        let started = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_regctl"))
            .args(["--server", &daemon.address, "import"])
            .arg(&file)
            .output()
            .unwrap();
        let took = started.elapsed();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let summary = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        println!(
            "{label:<8} {holdings} holdings ({rows} rows: unit, offices, persons, holdings with their ends) in {:.1} s, {:.0} rows/s | {summary}",
            took.as_secs_f64(),
            rows as f64 / took.as_secs_f64()
        );
        summary
    };
    let first = run("import");
    assert!(
        first.contains(&format!("imported {rows} new row(s)")),
        "{first}"
    );
    let again = run("re-run");
    assert!(
        again.contains(&format!("imported 0 new row(s), {rows} already recorded")),
        "{again}"
    );
}
