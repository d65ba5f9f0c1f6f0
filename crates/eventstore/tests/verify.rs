//! Tamper tests on the embedded store's real file: each way of altering a stored log is done
//! with SQL on a copy of a signed store, and `verify_embedded` must name it at the right
//! position, with the right kind.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[macro_use]
mod conformance;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use conformance::event;
use registry_eventstore::verify::{verify_embedded, Problem, Report, VerifyOptions};
use registry_eventstore::*;
use registry_ledger::{Finding, Frontier, NodeId, SigningKey, VerifierKey};

const ORIGIN: &str = "registry.test/tamper";

/// A store of 40 events in streams of 4, closed twice (so signed at 20 and at 40).
async fn signed_store(dir: &Path, key: &Arc<LogSigner>) -> PathBuf {
    let path = dir.join("registry.db");
    for half in 0..2 {
        let mut config = EmbeddedConfig::new(&path);
        config.signer = Some(key.clone());
        let store = EmbeddedStore::open(config).unwrap();
        for s in 0..5 {
            let events = (0..4)
                .map(|n| {
                    event(
                        "Recorded",
                        format!("{{\"half\":{half},\"n\":{n}}}").as_bytes(),
                    )
                })
                .collect();
            store
                .append(&format!("s-{half}-{s}"), ExpectedRevision::NoStream, events)
                .await
                .unwrap();
        }
        store.close();
    }
    path
}

struct Case {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Case {
    fn of(original: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.db");
        std::fs::copy(original, &path).unwrap();
        Self { _dir: dir, path }
    }

    fn sql(&self, sql: &str) {
        rusqlite::Connection::open(&self.path)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    }

    fn verify(&self, key: &VerifierKey, strict: bool) -> Report {
        verify_embedded(
            &self.path,
            &VerifyOptions {
                keys: vec![key.clone()],
                strict,
                grace: Duration::from_secs(10),
            },
        )
        .unwrap()
    }
}

/// The first finding's position and kind.
fn first(report: &Report) -> (Option<u64>, &'static str) {
    let finding = report.findings.first().expect("a finding");
    (finding.position.map(|p| p.commit), finding.problem.kind())
}

/// Recomputes the log's hashes from the events as they are now (what a forger with write
/// access to the file, but not the key, can do).
async fn recompute_hashes(path: &Path) {
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch("DELETE FROM log_nodes")
        .unwrap();
    // Opening integrates the events the log does not hold, exactly as the store would have.
    EmbeddedStore::open(EmbeddedConfig::new(path))
        .unwrap()
        .close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_tampering_is_found_where_it_was_done() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(ORIGIN).unwrap();
    let verifier = key.verifier();
    let signer = Arc::new(LogSigner::new(vec![key]).unwrap());
    let original = signed_store(dir.path(), &signer).await;

    let clean = Case::of(&original).verify(&verifier, true);
    assert!(clean.is_clean(), "{:?}", clean.findings);
    assert_eq!((clean.events, clean.leaves, clean.signed), (40, 40, 40));
    assert!(clean.checkpoints >= 2, "{}", clean.checkpoints);

    // Another key: nothing verifies, everything is unsigned.
    let stranger = SigningKey::generate(ORIGIN).unwrap().verifier();
    let report = Case::of(&original).verify(&stranger, true);
    let kinds: Vec<(Option<u64>, &str)> = report
        .findings
        .iter()
        .map(|f| (f.position.map(|p| p.commit), f.problem.kind()))
        .collect();
    assert_eq!(kinds[0], (Some(1), "unsigned events"));
    assert_eq!(
        kinds[1..]
            .iter()
            .filter(|(_, k)| *k == "signature invalid")
            .count() as u64,
        clean.checkpoints
    );
    assert_eq!(kinds.last(), Some(&(Some(40), "signature invalid")));

    // One byte of one payload.
    let case = Case::of(&original);
    case.sql("UPDATE events SET payload = CAST(replace(CAST(payload AS TEXT), '\"n\":2', '\"n\":3') AS BLOB) WHERE position = 7");
    let report = case.verify(&verifier, false);
    assert_eq!(first(&report), (Some(7), "event changed"));
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);

    // The actor rewritten.
    let case = Case::of(&original);
    case.sql("UPDATE events SET actor = 'someone else' WHERE position = 33");
    assert_eq!(
        first(&case.verify(&verifier, false)),
        (Some(33), "event changed")
    );

    // An event deleted.
    let case = Case::of(&original);
    case.sql("DELETE FROM events WHERE position = 12");
    let report = case.verify(&verifier, false);
    assert_eq!(first(&report), (Some(12), "event missing"));
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);

    // The last event and its hashes deleted: the checkpoint that signed it says it is gone.
    let case = Case::of(&original);
    case.sql(&format!(
        "DELETE FROM events WHERE position = 40; DELETE FROM log_nodes WHERE key >= {}",
        NodeId::leaf(39).key()
    ));
    assert_eq!(
        first(&case.verify(&verifier, false)),
        (Some(40), "event missing")
    );

    // Two events swapped.
    let case = Case::of(&original);
    case.sql(
        "UPDATE events SET position = -1 WHERE position = 5;
         UPDATE events SET position = 5 WHERE position = 9;
         UPDATE events SET position = 9 WHERE position = -1;",
    );
    let report = case.verify(&verifier, false);
    assert_eq!(first(&report), (Some(5), "order changed"));
    let kinds: Vec<(Option<u64>, &str)> = report
        .findings
        .iter()
        .map(|f| (f.position.map(|p| p.commit), f.problem.kind()))
        .collect();
    assert_eq!(
        kinds,
        [(Some(5), "order changed"), (Some(9), "order changed")]
    );

    // An event put outside the feed, where no position is.
    let case = Case::of(&original);
    case.sql(
        "INSERT INTO events (position, stream, revision, id, type, version, payload, actor, recorded_at)
         VALUES (0, 'inserted', 0, randomblob(16), 'Recorded', 1, x'7b7d', 'tester', 0)",
    );
    let report = case.verify(&verifier, false);
    assert_eq!(first(&report), (Some(0), "event inserted"));
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);

    // A stored hash altered: the leaf's, then an inner node's.
    let case = Case::of(&original);
    case.sql(&format!(
        "UPDATE log_nodes SET hash = zeroblob(32) WHERE key = {}",
        NodeId::leaf(2).key()
    ));
    assert_eq!(
        first(&case.verify(&verifier, false)),
        (Some(3), "hash table altered")
    );
    let case = Case::of(&original);
    let inner = NodeId { level: 2, index: 3 };
    case.sql(&format!(
        "UPDATE log_nodes SET hash = zeroblob(32) WHERE key = {}",
        inner.key()
    ));
    let report = case.verify(&verifier, false);
    assert_eq!(
        report.findings[0].problem,
        Problem::Log(Finding::HashAltered { node: inner })
    );

    // A checkpoint's root replaced.
    let case = Case::of(&original);
    let note: String = rusqlite::Connection::open(&case.path)
        .unwrap()
        .query_row(
            "SELECT note FROM log_checkpoints WHERE size = 20",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let root = note.lines().nth(2).unwrap().to_owned();
    case.sql(&format!(
        "UPDATE log_checkpoints SET note = replace(note, '{root}', '{}') WHERE size = 20",
        "A".repeat(43) + "="
    ));
    assert_eq!(
        first(&case.verify(&verifier, false)),
        (Some(20), "signature invalid")
    );

    // A payload changed and every hash recomputed over it: the signed root is not the events'.
    let case = Case::of(&original);
    case.sql("UPDATE events SET payload = CAST('{}' AS BLOB) WHERE position = 25");
    recompute_hashes(&case.path).await;
    let report = case.verify(&verifier, false);
    // Found from the first position after the last checkpoint the events still make (20 or
    // one signed later, before 25).
    let (position, kind) = first(&report);
    assert_eq!(kind, "checkpoint mismatch");
    assert!((21..=25).contains(&position.unwrap()), "{position:?}");

    // A forged event appended with the hashes recomputed: under no signed checkpoint. Found with
    // --strict, or without it once it is older than the grace period.
    for (recorded_at, strict, found) in [
        ("(SELECT MAX(recorded_at) FROM events)", true, true),
        (
            "CAST(strftime('%s','now') AS INTEGER) * 1000000",
            false,
            false,
        ),
        (
            "(SELECT MIN(recorded_at) FROM events) - 60000000",
            false,
            true,
        ),
    ] {
        let case = Case::of(&original);
        case.sql(&format!(
            "INSERT INTO events (position, stream, revision, id, type, version, payload, actor, recorded_at)
             VALUES (41, 'forged', 0, randomblob(16), 'Recorded', 1, x'7b7d', 'tester', {recorded_at})"
        ));
        // Extend the stored tree by the forged leaf, from its stored right edge.
        let db = rusqlite::Connection::open(&case.path).unwrap();
        let ids = Frontier::ids(40);
        let mut nodes = std::collections::HashMap::new();
        for id in ids {
            let hash: Vec<u8> = db
                .query_row(
                    "SELECT hash FROM log_nodes WHERE key = ?1",
                    [id.key() as i64],
                    |r| r.get(0),
                )
                .unwrap();
            nodes.insert(id, <[u8; 32]>::try_from(hash).unwrap());
        }
        let mut frontier = Frontier::load(40, &nodes).unwrap();
        drop(db);
        let rt_store = EmbeddedStore::open({
            let mut c = EmbeddedConfig::new(&case.path);
            c.log = false;
            c
        })
        .unwrap();
        let forged = rt_store
            .read_all(Some(Position::sequence(40)), 1)
            .await
            .unwrap();
        rt_store.close();
        drop(rt_store);
        let db = rusqlite::Connection::open(&case.path).unwrap();
        frontier.push(forged[0].leaf().hash(), |id, hash| {
            db.execute(
                "INSERT INTO log_nodes (key, hash) VALUES (?1, ?2)",
                rusqlite::params![id.key() as i64, &hash[..]],
            )
            .unwrap();
        });
        drop(db);
        let report = case.verify(&verifier, strict);
        if found {
            assert_eq!(
                first(&report),
                (Some(41), "unsigned events"),
                "{recorded_at}"
            );
            assert_eq!(report.findings.len(), 1);
        } else {
            assert!(report.is_clean(), "{:?}", report.findings);
            assert_eq!(report.unsigned, 1);
        }
    }
}
