//! Durability where a kill cannot show it: a kill -9 leaves the operating system's page cache
//! intact, so only the syncs themselves tell that an acknowledged write would survive a power
//! loss. `registryd` runs under `strace` (every `fsync`/`fdatasync`, timed) and each write of a
//! client, sent one after another, must see a sync start between its sending and its
//! acknowledgement. And the settings that make commits durable are read from the running
//! daemon: the embedded store's `synchronous=FULL`, and PostgreSQL's `synchronous_commit=on`
//! even on a server whose default is `off`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use registry_client::v1;
use registry_testkit::daemon::{registryd_binary, Daemon};

/// `strace`, or `None` with a notice (a failure when `REGISTRY_REQUIRE_STRACE=1`, as in CI).
fn strace() -> Option<&'static str> {
    if Command::new("strace").arg("-V").output().is_ok() {
        return Some("strace");
    }
    assert_ne!(
        std::env::var("REGISTRY_REQUIRE_STRACE").as_deref(),
        Ok("1"),
        "REGISTRY_REQUIRE_STRACE=1 but strace is not installed"
    );
    eprintln!("NOTICE: strace is not installed; skipping the sync test");
    None
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The start times (seconds since the epoch) of the sync calls `strace -ttt` wrote to `file`.
fn syncs(file: &std::path::Path) -> Vec<f64> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("fsync(") || l.contains("fdatasync("))
        .filter_map(|l| {
            // `PID 1765012345.123456 fdatasync(12) = 0`, or its `<unfinished ...>` first half.
            l.split_whitespace().nth(1)?.parse().ok()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_was_synced_to_disk_first() {
    let Some(strace) = strace() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("syncs.trace");
    let store = dir.path().join("store");
    let mut command = Command::new(strace);
    command
        .args(["-f", "-qq", "-ttt", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&trace)
        .arg(registryd_binary())
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&store);
    let daemon = support::Daemon::spawn(command);
    let client = daemon.client().await;
    let mut windows = Vec::new();
    for n in 0..20 {
        let sent = now_seconds();
        client
            .command()
            .register_person(v1::RegisterPersonRequest {
                request_id: registry_client::request_id(),
                display_name: format!("Người bền vững {n}"),
                ..Default::default()
            })
            .await
            .unwrap();
        windows.push((sent, now_seconds()));
    }
    // strace writes its lines as the calls happen; give the last a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let synced = syncs(&trace);
    for (n, (sent, acknowledged)) in windows.iter().enumerate() {
        assert!(
            synced.iter().any(|t| t >= sent && t <= acknowledged),
            "write {n}, acknowledged {:.1} ms after it was sent, saw no sync in between \
             ({} syncs traced)",
            (acknowledged - sent) * 1000.0,
            synced.len()
        );
    }
    // Killing strace would leave its tracee running: stop registryd itself first.
    let traced = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", daemon.pid()))
        .unwrap_or_default();
    for pid in traced.split_whitespace() {
        let _ = Command::new("kill").args(["-TERM", pid]).status();
    }
    drop(daemon);
}

#[test]
fn the_embedded_store_commits_with_synchronous_full() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--data-dir", dir.path().to_str().unwrap()];
    let daemon = Daemon::start_logging(
        &registryd_binary(),
        &args,
        "warn,registry_service_core::config=info",
    );
    let opened = daemon.logged("embedded store opened");
    assert!(
        opened
            .iter()
            .any(|l| l.contains("journal_mode=wal, synchronous=FULL")),
        "{opened:?}"
    );
}

#[test]
fn postgres_commits_wait_for_the_flush_even_where_the_server_says_otherwise() {
    let Some(server) = support::single_server() else {
        return;
    };
    server
        .sql("ALTER SYSTEM SET synchronous_commit = off")
        .unwrap();
    server.sql("SELECT pg_reload_conf()").unwrap();
    assert_eq!(server.sql("SHOW synchronous_commit").unwrap(), "off");
    let url = server.url();
    let args = ["--store", url.as_str(), "--pg-schema", "durable"];
    let daemon = Daemon::start_logging(
        &registryd_binary(),
        &args,
        "warn,registry_service_core::config=info",
    );
    let opened = daemon.logged("postgres store opened");
    assert!(
        opened
            .iter()
            .any(|l| l.contains("synchronous_commit=on, fsync=on")),
        "{opened:?}"
    );
}
