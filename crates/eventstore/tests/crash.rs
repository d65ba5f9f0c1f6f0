//! Crash test for the embedded store: a child process appends in a loop and prints each
//! acknowledged append; the test kills it with SIGKILL at random moments, reopens the store, and
//! checks that every acknowledged event is there, intact, and that nothing partial is visible.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use registry_eventstore::*;
use uuid::Uuid;

const EVENTS_PER_APPEND: usize = 3;
const ROUNDS: usize = 24;

fn payload(batch: &str, k: usize) -> Vec<u8> {
    // Large enough to span several pages, so a torn write would show.
    let mut p = format!("{batch}:{k}:").into_bytes();
    p.extend(std::iter::repeat_n(b'a' + (k as u8), 3000));
    p
}

/// The child: appends batches from 4 concurrent tasks forever, printing each acknowledgement.
fn child(path: &str, round: usize) -> ! {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut config = EmbeddedConfig::new(path);
        let key = registry_ledger::SigningKey::generate("registry.test/crash").unwrap();
        config.signer = Some(std::sync::Arc::new(LogSigner::new(vec![key]).unwrap()));
        let store = EmbeddedStore::open(config).unwrap();
        let mut tasks = Vec::new();
        for task in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0.. {
                    let batch = format!("r{round}-t{task}-n{n}");
                    let events = (0..EVENTS_PER_APPEND)
                        .map(|k| NewEvent {
                            id: Uuid::now_v7(),
                            event_type: "Crash".into(),
                            schema_version: 1,
                            payload: payload(&batch, k),
                            metadata: Metadata {
                                actor: "crash".into(),
                                request_id: Some(batch.clone()),
                                correlation_id: None,
                                request_fingerprint: None,
                            },
                        })
                        .collect();
                    let result = store
                        .append(&format!("crash-{task}"), ExpectedRevision::Any, events)
                        .await
                        .unwrap();
                    // println! locks stdout per line: lines never interleave.
                    println!("ACK {batch} {}", result.position);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    std::process::exit(0)
}

fn pseudo_random(seed: u64) -> u64 {
    // SplitMix64 over the clock: enough to vary the kill moments.
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    if let (Ok(path), Ok(round)) = (
        std::env::var("REGISTRY_CRASH_CHILD"),
        std::env::var("REGISTRY_CRASH_ROUND"),
    ) {
        child(&path, round.parse().unwrap());
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    for round in 0..ROUNDS {
        let wait_for = 5 + pseudo_random(seed ^ round as u64) % 200;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "acknowledged_appends_survive_sigkill",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("REGISTRY_CRASH_CHILD", &path)
            .env("REGISTRY_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen_this_round = 0;
        // Kill after a random number of acknowledgements.
        while seen_this_round < wait_for && Instant::now() < deadline {
            let Some(line) = lines.next() else { break };
            if let Some(rest) = line.unwrap().strip_prefix("ACK ") {
                let (batch, position) = rest.split_once(' ').unwrap();
                acked.insert(batch.to_owned(), position.parse().unwrap());
                seen_this_round += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Acknowledgements printed before the kill count too.
        for line in lines {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("ACK ") {
                let (batch, position) = rest.split_once(' ').unwrap();
                acked.insert(batch.to_owned(), position.parse().unwrap());
            }
        }
        assert!(
            seen_this_round > 0,
            "round {round}: the child acknowledged nothing"
        );
        verify(&path, &acked);
    }
}

fn verify(path: &std::path::Path, acked: &BTreeMap<String, u64>) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Before the store is opened (which would integrate missing leaves): the log holds exactly
    // the events, leaf for leaf, and no checkpoint signs past them.
    let (events, leaves, signed) = {
        let db = rusqlite::Connection::open(path).unwrap();
        let one = |sql: &str| db.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        (
            one("SELECT COALESCE(MAX(position), 0) FROM events"),
            one("SELECT COALESCE(MAX(key) >> 6, -1) + 1 FROM log_nodes"),
            one("SELECT COALESCE(MAX(size), 0) FROM log_checkpoints"),
        )
    };
    assert_eq!(
        leaves, events,
        "the log and the feed disagree after SIGKILL"
    );
    assert!(signed <= events);
    runtime.block_on(async {
        let store = EmbeddedStore::open(EmbeddedConfig::new(path))
            .expect("the store reopens after SIGKILL");
        let all = store.read_all(None, usize::MAX >> 1).await.unwrap();
        // Positions are dense: nothing half-written, no holes.
        for (i, e) in all.iter().enumerate() {
            assert_eq!(e.position, Position::sequence(i as u64 + 1));
        }
        let mut batches: BTreeMap<String, Vec<&RecordedEvent>> = BTreeMap::new();
        for e in &all {
            batches
                .entry(e.metadata.request_id.clone().unwrap())
                .or_default()
                .push(e);
        }
        // Every append is all there or not there.
        for (batch, events) in &batches {
            assert_eq!(events.len(), EVENTS_PER_APPEND, "append {batch} is partial");
            for (k, e) in events.iter().enumerate() {
                assert_eq!(
                    e.payload,
                    payload(batch, k),
                    "append {batch} event {k} is damaged"
                );
            }
        }
        // Every acknowledged append is there, at the acknowledged position.
        for (batch, position) in acked {
            let events = batches
                .get(batch)
                .unwrap_or_else(|| panic!("acknowledged append {batch} is lost"));
            assert_eq!(
                events.last().unwrap().position,
                Position::sequence(*position)
            );
        }
        let ids: HashSet<Uuid> = all.iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), all.len());
        // The stored hashes are the events' own.
        let mut frontier = registry_ledger::Frontier::new();
        let mut made = Vec::new();
        for e in &all {
            frontier.push(e.leaf().hash(), |id, hash| made.push((id, hash)));
        }
        let stored = store
            .log_nodes(made.iter().map(|(id, _)| *id).collect())
            .await
            .unwrap();
        for (id, hash) in &made {
            assert_eq!(stored.get(id), Some(hash), "{id:?}");
        }
    });
}
