//! The hashing against published test vectors and against the RFC's definition written out
//! plainly; every proof of small trees checked, and every tampered one refused.

#![allow(clippy::unwrap_used)]

use super::*;

/// The leaves of the Certificate Transparency test vectors (certificate-transparency-go,
/// `merkle/testonly`), and the roots of their first 1 to 8.
const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];
const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// MTH(D[n]) as RFC 6962 §2.1 defines it, over the leaves' data.
fn reference(leaves: &[Vec<u8>]) -> Hash {
    match leaves.len() {
        0 => sha2::Sha256::digest([]).into(),
        1 => leaf_hash(&leaves[0]),
        n => {
            let k = split(n as u64) as usize;
            node_hash(&reference(&leaves[..k]), &reference(&leaves[k..]))
        }
    }
}

fn data(i: usize) -> Vec<u8> {
    format!("leaf {i}").into_bytes()
}

fn tree(n: usize) -> (Tree, Vec<Vec<u8>>) {
    let leaves: Vec<Vec<u8>> = (0..n).map(data).collect();
    let mut tree = Tree::new();
    for leaf in &leaves {
        tree.push(leaf_hash(leaf));
    }
    (tree, leaves)
}

#[test]
fn the_roots_are_the_published_ones() {
    let mut tree = Tree::new();
    assert_eq!(
        hex(&tree.root(0).unwrap()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    for (leaf, root) in LEAVES.iter().zip(ROOTS) {
        tree.push(leaf_hash(&bytes(leaf)));
        assert_eq!(
            hex(&tree.root(tree.len()).unwrap()),
            root,
            "size {}",
            tree.len()
        );
    }
}

#[test]
fn every_root_of_every_size_is_the_definitions() {
    let (tree, leaves) = tree(1100);
    let mut sizes: Vec<usize> = (0..=130).collect();
    for p in [256usize, 512, 1024] {
        sizes.extend([p - 1, p, p + 1]);
    }
    sizes.push(1100);
    for n in sizes {
        assert_eq!(
            tree.root(n as u64),
            Some(reference(&leaves[..n])),
            "size {n}"
        );
    }
    assert_eq!(tree.root(1101), None);
}

#[test]
fn every_inclusion_proof_of_small_trees_verifies_and_a_tampered_one_does_not() {
    let (tree, leaves) = tree(70);
    for n in 1..=70u64 {
        let root = tree.root(n).unwrap();
        for m in 0..n {
            let leaf = leaf_hash(&leaves[m as usize]);
            let proof = tree.inclusion_proof(m, n).unwrap();
            assert_eq!(
                verify_inclusion(&leaf, m, n, &proof, &root),
                Ok(()),
                "{m} in {n}"
            );
            // Another leaf, another index, a changed or missing hash: refused.
            let other = leaf_hash(b"forged");
            assert!(verify_inclusion(&other, m, n, &proof, &root).is_err());
            if n > 1 {
                assert!(verify_inclusion(&leaf, (m + 1) % n, n, &proof, &root).is_err());
                let mut changed = proof.clone();
                changed[0][0] ^= 1;
                assert!(verify_inclusion(&leaf, m, n, &changed, &root).is_err());
                assert_eq!(
                    verify_inclusion(&leaf, m, n, &proof[1..], &root),
                    Err(ProofError::WrongLength)
                );
            }
        }
    }
    assert_eq!(tree.inclusion_proof(5, 5), None);
    assert_eq!(tree.inclusion_proof(0, 71), None);
}

#[test]
fn every_consistency_proof_of_small_trees_verifies_and_a_tampered_one_does_not() {
    let (tree, _) = tree(70);
    for n in 0..=70u64 {
        let new_root = tree.root(n).unwrap();
        for m in 0..=n {
            let old_root = tree.root(m).unwrap();
            let proof = tree.consistency_proof(m, n).unwrap();
            assert_eq!(
                verify_consistency(m, n, &old_root, &new_root, &proof),
                Ok(()),
                "{m} to {n}"
            );
            if 0 < m && m < n {
                let mut changed = proof.clone();
                changed[0][31] ^= 1;
                assert!(verify_consistency(m, n, &old_root, &new_root, &changed).is_err());
                let forged_old = leaf_hash(b"another history");
                assert!(verify_consistency(m, n, &forged_old, &new_root, &proof).is_err());
                if m + 1 < n {
                    // A proof for another old size does not pass for this one.
                    let other = tree.consistency_proof(m + 1, n).unwrap();
                    assert!(verify_consistency(m, n, &old_root, &new_root, &other).is_err());
                }
            }
        }
    }
    assert_eq!(tree.consistency_proof(3, 2), None);
    assert_eq!(tree.consistency_proof(3, 71), None);
}

#[test]
fn node_keys_round_trip_and_follow_the_order_nodes_are_made_in() {
    let mut made = Vec::new();
    let mut frontier = Frontier::new();
    for i in 0..1000 {
        frontier.push(leaf_hash(&data(i)), |id, _| made.push(id));
    }
    // n leaves make 2n - popcount(n) complete subtrees.
    assert_eq!(made.len(), 2000 - 6);
    for id in &made {
        assert_eq!(NodeId::from_key(id.key()), *id);
        assert_eq!(NodeId::try_from_key(id.key()), Some(*id));
    }
    // Keys no node has: level 1 ending at an even leaf, level 63, the largest key.
    for key in [(2 << 6) | 1, 63, u64::MAX] {
        assert_eq!(NodeId::try_from_key(key), None, "{key}");
    }
    assert!(made.windows(2).all(|w| w[0].key() < w[1].key()));
}

/// The frontier makes exactly the nodes the in-memory tree holds, computes the same root at
/// every size, and reloaded from stored nodes carries on as if never stopped.
#[test]
fn the_frontier_makes_the_trees_nodes_and_roots_and_resumes_from_stored_nodes() {
    let (tree, leaves) = tree(600);
    let mut stored = std::collections::HashMap::new();
    let mut frontier = Frontier::new();
    assert_eq!(frontier.root(), tree.root(0).unwrap());
    for (i, leaf) in leaves.iter().enumerate() {
        frontier.push(leaf_hash(leaf), |id, hash| {
            assert_eq!(tree.node(id), Some(hash), "{id:?}");
            assert!(stored.insert(id, hash).is_none(), "{id:?} made twice");
        });
        let size = i as u64 + 1;
        assert_eq!(frontier.root(), tree.root(size).unwrap(), "size {size}");
        let mut resumed = Frontier::load(size, &stored).unwrap();
        assert_eq!(resumed, frontier);
        if let Some(next) = leaves.get(i + 1) {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            resumed.push(leaf_hash(next), |id, h| a.push((id, h)));
            frontier
                .clone()
                .push(leaf_hash(next), |id, h| b.push((id, h)));
            assert_eq!(a, b);
        }
    }
    let missing = Frontier::ids(600)[0];
    stored.remove(&missing);
    assert_eq!(
        Frontier::load(600, &stored),
        Err(ProveError::Missing(missing))
    );
}

/// A store fetches what a plan names and nothing else: computing from only those nodes gives
/// the same roots and proofs as the whole tree.
#[test]
fn plans_name_every_node_a_root_or_proof_reads() {
    let (tree, _) = tree(70);
    let only = |ids: Vec<NodeId>| -> std::collections::HashMap<NodeId, Hash> {
        ids.into_iter()
            .map(|id| (id, tree.node(id).unwrap()))
            .collect()
    };
    for size in 0..=70u64 {
        assert_eq!(
            root(&only(root_nodes(size)), size).unwrap(),
            tree.root(size).unwrap()
        );
        for index in 0..size {
            assert_eq!(
                inclusion_proof(&only(inclusion_nodes(index, size)), index, size).unwrap(),
                tree.inclusion_proof(index, size).unwrap()
            );
        }
        for old in 0..=size {
            assert_eq!(
                consistency_proof(&only(consistency_nodes(old, size)), old, size).unwrap(),
                tree.consistency_proof(old, size).unwrap()
            );
        }
    }
    assert!(inclusion_nodes(69, 70).len() <= 2 * 7);
    assert_eq!(inclusion_proof(&tree, 70, 70), Err(ProveError::OutOfRange));
    assert_eq!(
        inclusion_proof(&tree, 3, 71),
        Err(ProveError::Missing(NodeId::leaf(70)))
    );
}

/// Every set of leaves of trees up to 12, and spread sets of larger ones: the batch proof
/// (computed from only the nodes its plan names) makes the root, and any change to the
/// leaves, their indexes or the hashes is refused.
#[test]
fn every_batch_proof_verifies_and_a_tampered_one_does_not() {
    let (tree, leaves) = tree(1100);
    let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
    let check = |indexes: &[u64], size: u64| {
        let root = tree.root(size).unwrap();
        let planned: std::collections::HashMap<NodeId, Hash> = batch_nodes(indexes, size)
            .into_iter()
            .map(|id| (id, tree.node(id).unwrap()))
            .collect();
        let proof = batch_proof(&planned, indexes, size).unwrap();
        let proved: Vec<(u64, Hash)> = indexes.iter().map(|&i| (i, hashes[i as usize])).collect();
        assert_eq!(
            verify_batch(&proved, size, &proof, &root),
            Ok(()),
            "{indexes:?} in {size}"
        );
        // One leaf alone: the same hashes as its inclusion proof (left to right, not leaf up).
        if let [index] = indexes {
            let mut single = tree.inclusion_proof(*index, size).unwrap();
            single.sort_unstable();
            let mut batch = proof.clone();
            batch.sort_unstable();
            assert_eq!(batch, single);
        }
        let mut changed = proved.clone();
        changed[0].1[0] ^= 1;
        assert_eq!(
            verify_batch(&changed, size, &proof, &root),
            Err(ProofError::Mismatch)
        );
        if let Some(first) = proof.first() {
            let mut altered = proof.clone();
            altered[0][31] ^= 1;
            assert_eq!(
                verify_batch(&proved, size, &altered, &root),
                Err(ProofError::Mismatch)
            );
            assert_eq!(
                verify_batch(&proved, size, &proof[1..], &root),
                Err(ProofError::WrongLength)
            );
            let mut longer = proof.clone();
            longer.push(*first);
            assert_eq!(
                verify_batch(&proved, size, &longer, &root),
                Err(ProofError::WrongLength)
            );
            // A leaf left out of the set proved with the same hashes: refused.
            if proved.len() > 1 {
                assert!(verify_batch(&proved[1..], size, &proof, &root).is_err());
            }
        }
        // The same hashes claimed at other indexes: refused.
        let moved: Vec<(u64, Hash)> = proved.iter().map(|&(i, h)| ((i + 1) % size, h)).collect();
        if size > 1 && moved.windows(2).all(|w| w[0].0 < w[1].0) {
            assert!(verify_batch(&moved, size, &proof, &root).is_err());
        }
    };
    for size in 1..=12u64 {
        for set in 1..(1u64 << size) {
            let indexes: Vec<u64> = (0..size).filter(|i| set >> i & 1 == 1).collect();
            check(&indexes, size);
        }
    }
    for size in [63, 64, 65, 127, 128, 129, 1023, 1024, 1025, 1100] {
        for step in [1, 2, 3, 7, 64, 100, 511] {
            let indexes: Vec<u64> = (0..size).step_by(step).collect();
            check(&indexes, size);
            check(&indexes[indexes.len() / 2..], size);
        }
        check(&[size - 1], size);
    }
    // Sets that are not ascending, repeat a leaf, reach past the size or are empty: refused.
    let root = tree.root(8).unwrap();
    for bad in [&[3u64, 2][..], &[2, 2], &[8], &[]] {
        assert_eq!(batch_proof(&tree, bad, 8), Err(ProveError::OutOfRange));
        let claimed: Vec<(u64, Hash)> = bad.iter().map(|&i| (i, hashes[0])).collect();
        assert_eq!(
            verify_batch(&claimed, 8, &[], &root),
            Err(ProofError::OutOfRange)
        );
    }
}
