//! Imports through `regctl` into a `registryd` on a temporary embedded store (release builds of
//! both binaries).
//!
//! `cargo bench -p registry-cli --bench import`: 100,000 holdings (a unit, offices, persons and
//! holdings with their ends), then the same file again (which must append nothing). Prints
//! rows/s for both runs. `REGISTRY_BENCH_HOLDINGS=N` changes the size (rounded to 50 holdings
//! per office).
//!
//! `REGISTRY_BENCH_SIZE=province|national|N cargo bench -p registry-cli --bench import`: a
//! generated registry (N: N provinces of the national shape) (`registry_testkit`) written as import rows (persons, units, offices,
//! terms, holdings with their ends, models, adoptions), imported into an empty registry.
//! Prints the time until `regctl` returned (every row acknowledged, so durable), split into
//! reading the file and sending it, and the time until the read models had folded every event;
//! then the same import into a `registryd` keeping no verifiable log (`--no-log`), and the ratio
//! of the two: what the log costs a bulk import. After the import with the log, the holdings
//! on a day are exported plainly and signed (`--signed`), and the signed file is checked with
//! `regctl verify-export` (`REGISTRY_BENCH_ONLY=export`: that, without the import without the
//! log). A national run takes about twelve minutes and holds the file (1.2 GB) in a temporary
//! directory.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use registry_testkit::daemon::{registryd_binary, Daemon};
use registry_testkit::fixtures::{holdings_jsonl, import_rows};

/// Runs `regctl import FILE` against `daemon`; the time it took and its summary line.
fn import(daemon: &Daemon, file: &Path) -> (Duration, String) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_regctl"))
        .args(["--server", &daemon.address, "import"])
        .arg(file)
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (took, summary)
}

/// `regctl stats` as JSON.
fn stats(daemon: &Daemon) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_regctl"))
        .args(["--server", &daemon.address, "stats", "--output", "json"])
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The sending part of a summary line: `... in 178.4 s (35494 rows/s)` → 178.4.
fn sending_seconds(summary: &str) -> f64 {
    summary
        .rsplit_once(" in ")
        .and_then(|(_, rest)| rest.split_once(" s"))
        .and_then(|(seconds, _)| seconds.parse().ok())
        .unwrap_or(f64::NAN)
}

fn fixture() {
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
        let (took, summary) = import(&daemon, &file);
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

fn generated(size: &str) {
    let config = match size {
        "province" => registry_testkit::Config::province(1),
        "national" => registry_testkit::Config::national(1),
        // Between the two, for profiles of what grows with the registry.
        other => match other.parse() {
            Ok(provinces) => registry_testkit::Config {
                provinces,
                ..registry_testkit::Config::national(1)
            },
            Err(_) => {
                panic!("REGISTRY_BENCH_SIZE={other}: expected province, national or N provinces")
            }
        },
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("registry.jsonl");
    let started = Instant::now();
    let registry = registry_testkit::generate(&config);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    let counts = import_rows(&registry, &mut out).unwrap();
    drop(out);
    drop(registry);
    let rows: usize = counts.rows.values().sum();
    println!(
        "{size}: {rows} rows {:?} written in {:.1} s",
        counts.rows,
        started.elapsed().as_secs_f64()
    );
    let with_log = import_generated(&file, &dir.path().join("store"), rows, &[], "import");
    if std::env::var("REGISTRY_BENCH_ONLY").as_deref() == Ok("export") {
        return;
    }
    let without = import_generated(
        &file,
        &dir.path().join("store-without-log"),
        rows,
        &["--no-log"],
        "no log",
    );
    println!(
        "with the log / without: {:.3} (time until every row was acknowledged)",
        with_log.as_secs_f64() / without.as_secs_f64()
    );
}

/// Imports `file` into a new `registryd` on `store` started with `args`; prints the figures
/// under `label` and answers the time until every row was acknowledged.
fn import_generated(
    file: &Path,
    store: &Path,
    rows: usize,
    args: &[&str],
    label: &str,
) -> Duration {
    let daemon = Daemon::embedded(&registryd_binary(), store, args);
    let started = Instant::now();
    let (took, summary) = import(&daemon, file);
    let events: f64 = stats(&daemon)["headPosition"]
        .as_str()
        .and_then(|p| p.parse().ok())
        .unwrap_or(f64::NAN);
    let caught_up = loop {
        let stats = stats(&daemon);
        if stats["headPosition"] == stats["projectionPosition"] {
            break started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let sending = sending_seconds(&summary);
    println!(
        "{label:<8} {rows} rows -> {events} events acknowledged in {:.1} s ({:.1} s reading and checking the file, {sending:.1} s sending: {:.0} rows/s, {:.0} events/s overall); read models caught up after {:.1} s | {summary}",
        took.as_secs_f64(),
        took.as_secs_f64() - sending,
        rows as f64 / sending,
        events / took.as_secs_f64(),
        caught_up.as_secs_f64()
    );
    assert!(
        summary.contains(&format!("imported {rows} new row(s)")),
        "{summary}"
    );
    if args.is_empty() {
        exports(&daemon, store);
    }
    took
}

/// Runs regctl with `args` against `daemon`, its standard output to `out`; the time it took.
fn timed(daemon: &Daemon, args: &[&str], out: &Path) -> Duration {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_regctl"))
        .args(["--server", &daemon.address])
        .args(args)
        .stdout(std::fs::File::create(out).unwrap())
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    took
}

/// The holdings on a day exported plainly, then signed (with the events of every row and
/// their proof), then the signed file verified offline: times, sizes and the ratio.
fn exports(daemon: &Daemon, dir: &Path) {
    const DAY: &str = "2024-03-18";
    let plain = dir.join("export.jsonl");
    let signed = dir.join("export-signed.jsonl");
    let checked = dir.join("verified.txt");
    let plain_took = timed(daemon, &["export", "--at", DAY], &plain);
    let signed_took = timed(daemon, &["export", "--at", DAY, "--signed"], &signed);
    let key = dir.join("log.pub");
    let verify_took = timed(
        daemon,
        &[
            "verify-export",
            signed.to_str().unwrap(),
            "--log-public-key",
            key.to_str().unwrap(),
        ],
        &checked,
    );
    let rows = std::fs::read_to_string(&plain).unwrap().lines().count();
    let size = |path: &Path| std::fs::metadata(path).unwrap().len() as f64 / 1e6;
    println!(
        "export   {rows} holdings on {DAY}: plain {:.1} s ({:.1} MB), signed {:.1} s ({:.1} MB), signed / plain {:.2}; verify-export {:.1} s ({:.0} rows/s) | {}",
        plain_took.as_secs_f64(),
        size(&plain),
        signed_took.as_secs_f64(),
        size(&signed),
        signed_took.as_secs_f64() / plain_took.as_secs_f64(),
        verify_took.as_secs_f64(),
        rows as f64 / verify_took.as_secs_f64(),
        std::fs::read_to_string(&checked).unwrap().trim()
    );
}

fn main() {
    match std::env::var("REGISTRY_BENCH_SIZE") {
        Ok(size) => generated(&size),
        Err(_) => fixture(),
    }
}
