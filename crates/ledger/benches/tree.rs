//! How fast leaves are hashed and integrated: the bound on `regctl verify` and on the
//! integrator (issue 25 asks ≥ 1 M events/s for a verification of the national store).
//!
//! `cargo bench -p registry-ledger --bench tree`: encodes and hashes 1,000,000 leaves shaped
//! like the registry's events (a 300-byte payload, an actor, a request id and fingerprint) and
//! appends them to a tree; then proves and checks inclusion of 10,000 leaves. Median of three.

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use registry_ledger::{verify_inclusion, Leaf, Tree};

const LEAVES: u64 = 1_000_000;

fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn main() {
    let payload = vec![b'x'; 300];
    let fingerprint = "0123456789abcdef0123456789abcdef";
    let mut tree = Tree::new();
    let integrate = median(
        (0..3)
            .map(|_| {
                tree = Tree::new();
                let started = Instant::now();
                for n in 0..LEAVES {
                    let request = format!("{n:032x}");
                    let leaf = Leaf {
                        position: (n + 1, n + 1),
                        stream: "registry",
                        revision: n,
                        id: (n as u128).to_be_bytes(),
                        event_type: "HoldingStarted",
                        schema_version: 1,
                        payload: &payload,
                        actor: "registrar@quangninh",
                        request_id: Some(&request),
                        correlation_id: None,
                        request_fingerprint: Some(fingerprint),
                        recorded_at: 1_733_472_000_000_000 + n as i64,
                    };
                    tree.push(leaf.hash());
                }
                LEAVES as f64 / started.elapsed().as_secs_f64()
            })
            .collect(),
    );
    let root = tree.root(LEAVES).unwrap();
    let proofs = median(
        (0..3)
            .map(|_| {
                let started = Instant::now();
                for i in 0..10_000u64 {
                    let index = i * 97 % LEAVES;
                    let proof = tree.inclusion_proof(index, LEAVES).unwrap();
                    black_box(proof);
                }
                started.elapsed().as_nanos() as f64 / 10_000.0
            })
            .collect(),
    );
    let leaf = tree.inclusion_proof(0, LEAVES).unwrap();
    let started = Instant::now();
    for _ in 0..10_000 {
        black_box(
            verify_inclusion(&registry_ledger::leaf_hash(b"x"), 0, LEAVES, &leaf, &root).is_err(),
        );
    }
    let check = started.elapsed().as_nanos() as f64 / 10_000.0;
    println!("leaves encoded, hashed and integrated  {integrate:>12.0} /s");
    println!("inclusion proof in a tree of 1 M       {proofs:>12.0} ns");
    println!("inclusion proof checked                {check:>12.0} ns");
}
