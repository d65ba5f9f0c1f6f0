//! The registry's feed as a verifiable log: RFC 6962 / RFC 9162 Merkle hashing, the proofs a
//! log serves and their verification, signed checkpoints, and the audit of a stored log, for
//! parties that trust nothing but a public key they pinned. Pure: the stores keep the hashes
//! (`registry-eventstore`), the services serve them.
//!
//! - Merkle hashing: complete subtrees ([`NodeId`], with a storage key in the order
//!   a log makes them), roots and proofs (of one leaf, of several at once, of consistency) over any
//!   [`Nodes`] source with plans naming the nodes
//!   each reads, the [`Frontier`] an integrator keeps, the in-memory [`Tree`], and
//!   [`verify_inclusion`] / [`verify_consistency`].
//! - [`Leaf`]: the one documented byte layout of a stored event as a leaf.
//! - [`Note`], [`Checkpoint`], [`SigningKey`], [`VerifierKey`]: C2SP signed notes, checkpoints
//!   and cosignatures, in the key formats of Go's `sumdb/note`.
//! - [`Audit`]: a stored log checked against its events and checkpoints, by leaf.

mod audit;
mod leaf;
mod merkle;
mod note;

pub use audit::{Audit, Finding};
pub use leaf::{Leaf, LeafError, SEPARATOR};
pub use merkle::{
    batch_nodes, batch_proof, consistency_nodes, consistency_proof, inclusion_nodes,
    inclusion_proof, leaf_hash, node_hash, root, root_nodes, verify_batch, verify_consistency,
    verify_inclusion, Frontier, Hash, NodeId, Nodes, ProofError, ProveError, Tree,
};
pub use note::{check_name, Checkpoint, Note, NoteError, SigningKey, VerifierKey};
