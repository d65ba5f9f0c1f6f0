//! The registry's feed as a verifiable log (issue 25, begun): the Merkle tree hashing of RFC 6962
//! and RFC 9162, the proofs a log serves, and their verification by a party that trusts only
//! a signed root.
//!
//! Every event of the feed will be a leaf, in feed order. A [`Tree`] keeps the hash of every
//! complete, aligned subtree (level by level), so a root of any earlier size, an inclusion
//! proof and a consistency proof are each O(log n) hash lookups plus the hashes of the right
//! edge. [`verify_inclusion`] and [`verify_consistency`] follow the RFC 9162 algorithms and need
//! nothing from the server but the proof.
//!
//! A stored event becomes a leaf through one documented byte layout ([`Leaf`]).
//!
//! What is not built yet: the integrator that appends committed events and stores the hashes,
//! signed checkpoints, the API, and `regctl verify`.

mod audit;
mod leaf;
mod merkle;
mod note;

pub use audit::{Audit, Finding};
pub use leaf::{Leaf, LeafError, SEPARATOR};
pub use merkle::{
    consistency_nodes, consistency_proof, inclusion_nodes, inclusion_proof, leaf_hash, node_hash,
    root, root_nodes, verify_consistency, verify_inclusion, Frontier, Hash, NodeId, Nodes,
    ProofError, ProveError, Tree,
};
pub use note::{Checkpoint, Note, NoteError, SigningKey, VerifierKey};
