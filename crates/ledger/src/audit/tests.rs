//! Each way a stored log can be altered, found as what it is and where.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use super::*;
use crate::merkle::leaf_hash;
use crate::note::SigningKey;

const ORIGIN: &str = "registry.test/audit";

struct Log {
    events: Vec<Option<Hash>>,
    nodes: BTreeMap<u64, Hash>,
    checkpoints: Vec<(u64, String)>,
}

/// A log of `n` leaves with checkpoints signed at `signed` sizes.
fn log(n: u64, signed: &[u64], key: &SigningKey) -> Log {
    let events: Vec<Option<Hash>> = (0..n)
        .map(|i| Some(leaf_hash(format!("event {i}").as_bytes())))
        .collect();
    let mut nodes = BTreeMap::new();
    let mut frontier = Frontier::new();
    let mut checkpoints = Vec::new();
    for event in &events {
        frontier.push(event.unwrap(), |id, h| {
            nodes.insert(id.key(), h);
        });
        if signed.contains(&frontier.len()) {
            let checkpoint = Checkpoint {
                origin: ORIGIN.into(),
                size: frontier.len(),
                root: frontier.root(),
                time: 1,
            };
            checkpoints.push((frontier.len(), checkpoint.sign(std::slice::from_ref(key))));
        }
    }
    Log {
        events,
        nodes,
        checkpoints,
    }
}

impl Log {
    fn audit(&self, key: &SigningKey) -> (Vec<Finding>, (u64, u64)) {
        let stored_size = self.nodes.keys().next_back().map_or(0, |k| (k >> 6) + 1);
        let mut audit = Audit::new(stored_size, self.checkpoints.clone(), &[key.verifier()]);
        let leaves = (self.events.len() as u64).max(stored_size);
        for index in 0..leaves {
            let stored: Vec<(NodeId, Hash)> = self
                .nodes
                .range(index << 6..(index + 1) << 6)
                .map(|(k, h)| (NodeId::from_key(*k), *h))
                .collect();
            let event = self.events.get(index as usize).copied().flatten();
            audit.leaf(event, &stored);
        }
        let unsigned = audit.unsigned();
        (audit.finish(), unsigned)
    }
}

fn key() -> SigningKey {
    SigningKey::generate(ORIGIN).unwrap()
}

#[test]
fn an_untouched_log_has_no_findings_and_counts_what_is_unsigned() {
    let key = key();
    let log = log(100, &[10, 64, 90], &key);
    assert_eq!(log.audit(&key), (vec![], (90, 10)));
}

#[test]
fn a_changed_event_is_found_at_its_leaf() {
    let key = key();
    let mut log = log(100, &[10, 64, 100], &key);
    log.events[37] = Some(leaf_hash(b"forged"));
    assert_eq!(log.audit(&key).0, vec![Finding::EventChanged { index: 37 }]);
}

#[test]
fn a_deleted_event_is_found_missing_and_the_rest_still_checks() {
    let key = key();
    let mut log = log(100, &[10, 64, 100], &key);
    log.events[5] = None;
    assert_eq!(log.audit(&key).0, vec![Finding::EventMissing { index: 5 }]);
    // The last events and their hashes deleted: the checkpoint that signed them says so.
    let mut log = self::log(100, &[100], &key);
    log.events.truncate(98);
    log.nodes.retain(|k, _| k >> 6 < 98);
    assert_eq!(log.audit(&key).0, vec![Finding::EventMissing { index: 98 }]);
}

#[test]
fn an_altered_stored_hash_is_told_from_an_altered_event() {
    let key = key();
    let mut log = log(100, &[100], &key);
    log.nodes.insert(NodeId::leaf(20).key(), [9; 32]);
    let findings = log.audit(&key).0;
    assert_eq!(
        findings[0],
        Finding::HashAltered {
            node: NodeId::leaf(20)
        }
    );
    assert!(!findings
        .iter()
        .any(|f| matches!(f, Finding::EventChanged { .. })));

    let mut log = self::log(100, &[100], &key);
    let inner = NodeId { level: 3, index: 5 };
    log.nodes.insert(inner.key(), [9; 32]);
    assert_eq!(
        log.audit(&key).0,
        vec![Finding::HashAltered { node: inner }]
    );

    let mut log = self::log(100, &[100], &key);
    log.nodes.remove(&inner.key());
    assert_eq!(
        log.audit(&key).0,
        vec![Finding::HashMissing { node: inner }]
    );
}

/// An event changed and the hashes recomputed over it: every stored leaf matches its event,
/// but the signed root does not.
#[test]
fn events_and_hashes_rewritten_together_fail_the_signed_root() {
    let key = key();
    let mut log = log(100, &[40, 80, 100], &key);
    log.events[50] = Some(leaf_hash(b"forged"));
    let mut frontier = Frontier::new();
    log.nodes.clear();
    for event in &log.events {
        frontier.push(event.unwrap(), |id, h| {
            log.nodes.insert(id.key(), h);
        });
    }
    assert_eq!(
        log.audit(&key).0,
        vec![
            Finding::CheckpointMismatch {
                size: 80,
                since: 40
            },
            Finding::CheckpointMismatch {
                size: 100,
                since: 40
            },
        ]
    );
}

#[test]
fn a_checkpoint_altered_or_signed_by_another_key_is_invalid() {
    let key = key();
    let mut log = log(100, &[64, 100], &key);
    log.checkpoints[0].1 = log.checkpoints[0].1.replacen("\n64\n", "\n63\n", 1);
    let (findings, unsigned) = log.audit(&key);
    assert!(matches!(
        &findings[..],
        [Finding::CheckpointInvalid { size: 64, .. }]
    ));
    assert_eq!(unsigned, (100, 0));
    let other = self::key();
    let (findings, unsigned) = log.audit(&other);
    assert_eq!(findings.len(), 2);
    assert_eq!(unsigned, (0, 100), "nothing is signed by a key not trusted");
}

#[test]
fn events_past_the_stored_log_are_not_integrated_rather_than_altered() {
    let key = key();
    let mut log = log(100, &[90], &key);
    log.nodes.retain(|k, _| k >> 6 < 95);
    let stored_size = 95;
    let mut audit = Audit::new(stored_size, log.checkpoints.clone(), &[key.verifier()]);
    for index in 0..100u64 {
        let stored: Vec<(NodeId, Hash)> = log
            .nodes
            .range(index << 6..(index + 1) << 6)
            .map(|(k, h)| (NodeId::from_key(*k), *h))
            .collect();
        audit.leaf(log.events[index as usize], &stored);
    }
    assert_eq!(audit.not_integrated(), 5);
    assert_eq!(audit.unsigned(), (90, 10));
    assert_eq!(audit.finish(), vec![]);
}
