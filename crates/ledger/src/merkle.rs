//! RFC 6962 / RFC 9162 Merkle tree hashing: a leaf is `SHA-256(0x00 || data)`, a node
//! `SHA-256(0x01 || left || right)`, and the tree over `n` leaves splits at the largest power
//! of two below `n`. Proofs are generated from the stored hashes of complete subtrees and
//! checked by the RFC 9162 verification algorithms.

use sha2::{Digest, Sha256};
use thiserror::Error;

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The hash of a leaf holding `data`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(data);
    hasher.finalize().into()
}

/// The hash of an inner node over `left` and `right`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of the empty tree: the hash of nothing.
fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two below `n` (`n` ≥ 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// A complete, aligned subtree: the `2^level` leaves from leaf `index * 2^level`. Level 0 is
/// a leaf. These are the only hashes a log stores; every other hash is computed from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Its height: `2^level` leaves.
    pub level: u8,
    /// Its place among the subtrees of its level.
    pub index: u64,
}

impl NodeId {
    /// Leaf `index`.
    pub const fn leaf(index: u64) -> Self {
        Self { level: 0, index }
    }

    /// The last leaf under it: the one whose arrival completes it.
    pub const fn last_leaf(self) -> u64 {
        ((self.index + 1) << self.level) - 1
    }

    /// Its key in storage: ordered by the leaf that completes it, then by level, so a log
    /// stores its nodes in the order it makes them and a verifier reads them back in that order.
    pub const fn key(self) -> u64 {
        (self.last_leaf() << 6) | self.level as u64
    }

    /// The node of a storage key, `None` for a key no node has (a stored key is not trusted).
    pub const fn try_from_key(key: u64) -> Option<Self> {
        let level = (key & 63) as u8;
        let end = match (key >> 6).checked_add(1) {
            Some(end) => end,
            None => return None,
        };
        if level >= 58 || end & ((1 << level) - 1) != 0 {
            return None;
        }
        Some(Self {
            level,
            index: (end >> level) - 1,
        })
    }

    /// The node of a storage key ([`NodeId::key`]).
    pub const fn from_key(key: u64) -> Self {
        let level = (key & 63) as u8;
        Self {
            level,
            index: (((key >> 6) + 1) >> level) - 1,
        }
    }
}

/// Where the hashes of complete subtrees come from: memory ([`Tree`]) or a store.
pub trait Nodes {
    /// The hash of a complete subtree, `None` when it is not held.
    fn node(&self, id: NodeId) -> Option<Hash>;
}

/// Why a root or proof could not be made.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum ProveError {
    /// The index or sizes are impossible (an index at or past the size, an old size past the
    /// new) or beyond the log.
    #[error("the index or sizes are out of range")]
    OutOfRange,
    /// A hash the log should hold is missing.
    #[error("the log has no hash for {0:?}")]
    Missing(NodeId),
}

/// The hash of leaves `[lo, hi)` as RFC 6962 defines a tree over them (`hi > lo`): a stored
/// subtree when the range is one, else split at the largest power of two below its size.
fn range(nodes: &impl Nodes, lo: u64, hi: u64) -> Result<Hash, ProveError> {
    let size = hi - lo;
    if size.is_power_of_two() && lo.is_multiple_of(size) {
        let level = size.trailing_zeros() as u8;
        let id = NodeId {
            level,
            index: lo >> level,
        };
        return nodes.node(id).ok_or(ProveError::Missing(id));
    }
    let k = split(size);
    Ok(node_hash(
        &range(nodes, lo, lo + k)?,
        &range(nodes, lo + k, hi)?,
    ))
}

/// The root of the first `size` leaves.
pub fn root(nodes: &impl Nodes, size: u64) -> Result<Hash, ProveError> {
    match size {
        0 => Ok(empty_root()),
        _ => range(nodes, 0, size),
    }
}

/// The proof that leaf `index` is in the tree of the first `size` leaves (RFC 9162
/// §2.1.3.1), from the leaf up.
pub fn inclusion_proof(nodes: &impl Nodes, index: u64, size: u64) -> Result<Vec<Hash>, ProveError> {
    if index >= size {
        return Err(ProveError::OutOfRange);
    }
    let mut proof = Vec::new();
    path(nodes, index, 0, size, &mut proof)?;
    Ok(proof)
}

/// PATH(m, D[lo:hi]), appended leaf-side first.
fn path(
    nodes: &impl Nodes,
    m: u64,
    lo: u64,
    hi: u64,
    proof: &mut Vec<Hash>,
) -> Result<(), ProveError> {
    let n = hi - lo;
    if n == 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(nodes, m, lo, lo + k, proof)?;
        proof.push(range(nodes, lo + k, hi)?);
    } else {
        path(nodes, m - k, lo + k, hi, proof)?;
        proof.push(range(nodes, lo, lo + k)?);
    }
    Ok(())
}

/// The proof that the tree of the first `old` leaves is a prefix of the tree of the first
/// `new` (RFC 9162 §2.1.4.1).
pub fn consistency_proof(nodes: &impl Nodes, old: u64, new: u64) -> Result<Vec<Hash>, ProveError> {
    if old > new {
        return Err(ProveError::OutOfRange);
    }
    let mut proof = Vec::new();
    if old > 0 && old < new {
        subproof(nodes, old, 0, new, true, &mut proof)?;
    }
    Ok(proof)
}

/// SUBPROOF(m, D[lo:hi], b), appended in the RFC's order.
fn subproof(
    nodes: &impl Nodes,
    m: u64,
    lo: u64,
    hi: u64,
    whole: bool,
    proof: &mut Vec<Hash>,
) -> Result<(), ProveError> {
    let n = hi - lo;
    if m == n {
        if !whole {
            proof.push(range(nodes, lo, hi)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(nodes, m, lo, lo + k, whole, proof)?;
        proof.push(range(nodes, lo + k, hi)?);
    } else {
        subproof(nodes, m - k, lo + k, hi, false, proof)?;
        proof.push(range(nodes, lo, lo + k)?);
    }
    Ok(())
}

/// The proof that leaves `indexes` (ascending, distinct) are all in the tree of the first
/// `size` leaves, at once: the hashes of the subtrees (as RFC 6962 splits the tree) that hold
/// none of them and whose parent holds one, left to right. With the leaves' own hashes these
/// make the root ([`verify_batch`]). Shorter than the leaves' inclusion proofs together, since
/// leaves close to each other share their upper path.
pub fn batch_proof(
    nodes: &impl Nodes,
    indexes: &[u64],
    size: u64,
) -> Result<Vec<Hash>, ProveError> {
    if !ascending_below(indexes.iter().copied(), size) {
        return Err(ProveError::OutOfRange);
    }
    let mut proof = Vec::new();
    cover(nodes, indexes, 0, size, &mut proof)?;
    Ok(proof)
}

/// Whether `indexes` is non-empty, strictly ascending and below `size`.
fn ascending_below(indexes: impl Iterator<Item = u64>, size: u64) -> bool {
    let mut previous = None;
    for index in indexes {
        if index >= size || previous.is_some_and(|p| index <= p) {
            return false;
        }
        previous = Some(index);
    }
    previous.is_some()
}

/// The hashes of the subtrees of `[lo, hi)` that hold none of `indexes` (all within it).
fn cover(
    nodes: &impl Nodes,
    indexes: &[u64],
    lo: u64,
    hi: u64,
    proof: &mut Vec<Hash>,
) -> Result<(), ProveError> {
    if indexes.is_empty() {
        proof.push(range(nodes, lo, hi)?);
        return Ok(());
    }
    if hi - lo == 1 {
        return Ok(());
    }
    let mid = lo + split(hi - lo);
    let (left, right) = indexes.split_at(indexes.partition_point(|&i| i < mid));
    cover(nodes, left, lo, mid, proof)?;
    cover(nodes, right, mid, hi, proof)
}

/// Records which nodes a computation asks for, answering with a placeholder: the plan of what
/// to fetch from a store before computing for real.
struct Recorder(std::cell::RefCell<Vec<NodeId>>);

impl Nodes for Recorder {
    fn node(&self, id: NodeId) -> Option<Hash> {
        self.0.borrow_mut().push(id);
        Some([0; 32])
    }
}

fn plan(compute: impl FnOnce(&Recorder) -> Result<(), ProveError>) -> Vec<NodeId> {
    let recorder = Recorder(std::cell::RefCell::new(Vec::new()));
    // The recorder holds every node, so only an out-of-range request fails, and it needs none.
    let _ = compute(&recorder);
    let mut ids = recorder.0.into_inner();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The nodes [`root`] reads for `size` leaves.
pub fn root_nodes(size: u64) -> Vec<NodeId> {
    plan(|r| root(r, size).map(drop))
}

/// The nodes [`inclusion_proof`] reads.
pub fn inclusion_nodes(index: u64, size: u64) -> Vec<NodeId> {
    plan(|r| inclusion_proof(r, index, size).map(drop))
}

/// The nodes [`consistency_proof`] reads.
pub fn consistency_nodes(old: u64, new: u64) -> Vec<NodeId> {
    plan(|r| consistency_proof(r, old, new).map(drop))
}

/// The nodes [`batch_proof`] reads.
pub fn batch_nodes(indexes: &[u64], size: u64) -> Vec<NodeId> {
    plan(|r| batch_proof(r, indexes, size).map(drop))
}

/// Nodes fetched for one computation, by id.
impl Nodes for std::collections::HashMap<NodeId, Hash> {
    fn node(&self, id: NodeId) -> Option<Hash> {
        self.get(&id).copied()
    }
}

/// The right edge of a log: the roots of the complete subtrees that cover its leaves, largest
/// first (one per bit of its size). Enough to append leaves, to name the nodes each completes,
/// and to compute the root, in memory of O(log n): what an integrator keeps between batches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    roots: Vec<(u8, Hash)>,
}

impl Frontier {
    /// The frontier of the empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// The nodes the frontier of a log of `size` leaves consists of, largest first.
    pub fn ids(size: u64) -> Vec<NodeId> {
        let mut ids = Vec::new();
        let mut covered = 0u64;
        for level in (0..64u8).rev() {
            if size >> level & 1 == 1 {
                ids.push(NodeId {
                    level,
                    index: covered >> level,
                });
                covered += 1 << level;
            }
        }
        ids
    }

    /// The frontier of a log of `size` leaves from the stored hashes of its nodes
    /// ([`Frontier::ids`]).
    pub fn load(size: u64, nodes: &impl Nodes) -> Result<Self, ProveError> {
        let roots = Self::ids(size)
            .into_iter()
            .map(|id| {
                nodes
                    .node(id)
                    .map(|h| (id.level, h))
                    .ok_or(ProveError::Missing(id))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { size, roots })
    }

    /// How many leaves the log has.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Appends a leaf by its hash, calling `made` with the leaf's node and every subtree it
    /// completes, in [`NodeId::key`] order.
    pub fn push(&mut self, leaf: Hash, mut made: impl FnMut(NodeId, Hash)) {
        let index = self.size;
        made(NodeId::leaf(index), leaf);
        let (mut level, mut hash) = (0u8, leaf);
        while let Some(&(top, left)) = self.roots.last() {
            if top != level {
                break;
            }
            self.roots.pop();
            hash = node_hash(&left, &hash);
            level += 1;
            made(
                NodeId {
                    level,
                    index: index >> level,
                },
                hash,
            );
        }
        self.roots.push((level, hash));
        self.size += 1;
    }

    /// The root hash of the log.
    pub fn root(&self) -> Hash {
        let mut roots = self.roots.iter().rev();
        let Some(&(_, mut hash)) = roots.next() else {
            return empty_root();
        };
        for (_, left) in roots {
            hash = node_hash(left, &hash);
        }
        hash
    }
}

/// The hashes of a log held in memory: `levels[k][i]` is the hash of the complete subtree of
/// `2^k` leaves from leaf `i * 2^k`, kept once it is complete. For tests, benchmarks and
/// verifiers of small logs; a store keeps the same nodes on disk.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    levels: Vec<Vec<Hash>>,
}

impl Nodes for Tree {
    fn node(&self, id: NodeId) -> Option<Hash> {
        self.levels
            .get(id.level as usize)?
            .get(usize::try_from(id.index).ok()?)
            .copied()
    }
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many leaves it has.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a leaf by its hash ([`leaf_hash`]), completing the subtrees it closes.
    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[level];
            row.push(hash);
            if row.len() % 2 == 1 {
                return;
            }
            hash = node_hash(&row[row.len() - 2], &row[row.len() - 1]);
            level += 1;
        }
    }

    /// The root of the tree's first `size` leaves (`None` beyond its length).
    pub fn root(&self, size: u64) -> Option<Hash> {
        (size <= self.len())
            .then(|| root(self, size).ok())
            .flatten()
    }

    /// The proof that leaf `index` is in the tree of the first `size` leaves; `None` when
    /// `index` or `size` is out of the tree.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Option<Vec<Hash>> {
        (size <= self.len())
            .then(|| inclusion_proof(self, index, size).ok())
            .flatten()
    }

    /// The proof that the tree of the first `old` leaves is a prefix of the tree of the first
    /// `new`; `None` when `old > new` or `new` is beyond the tree.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Option<Vec<Hash>> {
        (new <= self.len())
            .then(|| consistency_proof(self, old, new).ok())
            .flatten()
    }
}

/// Why a proof does not hold.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum ProofError {
    /// The index or sizes are impossible (an index at or past the size, an old size past the
    /// new).
    #[error("the index or sizes are out of range")]
    OutOfRange,
    /// The proof has too few or too many hashes for these sizes.
    #[error("the proof has the wrong number of hashes")]
    WrongLength,
    /// The hashes lead to another root.
    #[error("the proof leads to another root")]
    Mismatch,
}

/// Checks that `leaf` (its [`leaf_hash`]) is leaf `index` of the tree of `size` leaves whose
/// root is `root`, by the RFC 9162 §2.1.3.2 algorithm.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange);
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return Err(ProofError::WrongLength);
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::WrongLength);
    }
    if &r == root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// Checks that `leaves` (index and [`leaf_hash`], by ascending index) are all in the tree of
/// `size` leaves whose root is `root`, with a [`batch_proof`]: every hash of the proof used,
/// in its order, and no other.
pub fn verify_batch(
    leaves: &[(u64, Hash)],
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if !ascending_below(leaves.iter().map(|(i, _)| *i), size) {
        return Err(ProofError::OutOfRange);
    }
    let mut hashes = proof.iter();
    let computed = fold(leaves, 0, size, &mut hashes)?;
    if hashes.next().is_some() {
        return Err(ProofError::WrongLength);
    }
    if &computed == root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// The hash of `[lo, hi)` from the leaves within it and, for its parts that hold none, the
/// proof's next hashes.
fn fold<'a>(
    leaves: &[(u64, Hash)],
    lo: u64,
    hi: u64,
    proof: &mut impl Iterator<Item = &'a Hash>,
) -> Result<Hash, ProofError> {
    match leaves {
        [] => proof.next().copied().ok_or(ProofError::WrongLength),
        [(_, leaf)] if hi - lo == 1 => Ok(*leaf),
        _ => {
            let mid = lo + split(hi - lo);
            let (left, right) = leaves.split_at(leaves.partition_point(|(i, _)| *i < mid));
            let left = fold(left, lo, mid, proof)?;
            Ok(node_hash(&left, &fold(right, mid, hi, proof)?))
        }
    }
}

/// Checks that the tree of `old` leaves with root `old_root` is a prefix of the tree of `new`
/// leaves with root `new_root`, by the RFC 9162 §2.1.4.2 algorithm.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::OutOfRange);
    }
    if old == new {
        return if !proof.is_empty() {
            Err(ProofError::WrongLength)
        } else if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    if old == 0 {
        // Every tree extends the empty one: nothing to prove.
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::WrongLength)
        };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    // When the old size is a power of two its root starts the path.
    let mut hashes: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        hashes.push(*old_root);
    }
    hashes.extend_from_slice(proof);
    let Some((first, rest)) = hashes.split_first() else {
        return Err(ProofError::WrongLength);
    };
    let (mut f_n, mut s_n) = (old - 1, new - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut f_r, mut s_r) = (*first, *first);
    for c in rest {
        if s_n == 0 {
            return Err(ProofError::WrongLength);
        }
        if f_n & 1 == 1 || f_n == s_n {
            f_r = node_hash(c, &f_r);
            s_r = node_hash(c, &s_r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            s_r = node_hash(&s_r, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::WrongLength);
    }
    if &f_r == old_root && &s_r == new_root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

#[cfg(test)]
mod tests;
