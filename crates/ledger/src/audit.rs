//! Checking a stored log against its events, for a verifier that trusts neither: the events are
//! hashed afresh, the stored hashes are checked against the leaves below them, and both against
//! the checkpoints a trusted key signed.
//!
//! A store feeds an [`Audit`] its checkpoints, then every leaf in order (the event's hash as
//! recomputed, and the hashes stored for the nodes that leaf completes), and gets back what
//! disagrees, by leaf:
//!
//! - an event whose hash is not the stored leaf's, where the stored tree still matches the
//!   signed checkpoints: the event was changed ([`Finding::EventChanged`]) or is missing;
//! - a stored hash that the stored leaves below it do not produce, or a stored leaf that differs
//!   from its event while the events still match the checkpoints: the hashes were changed
//!   ([`Finding::HashAltered`]);
//! - a signed root that the events do not produce although every stored leaf matches its event:
//!   the events and their hashes were rewritten together ([`Finding::CheckpointMismatch`]);
//! - a checkpoint whose signature fails ([`Finding::CheckpointInvalid`]);
//! - events no checkpoint covers yet ([`Audit::unsigned`]).
//!
//! Memory is O(log n) plus the findings: the tree is never held.

use std::collections::BTreeMap;

use crate::merkle::{Frontier, Hash, NodeId};
use crate::note::{Checkpoint, VerifierKey};

/// Something that disagrees, by leaf index (the store names positions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The event at this leaf is not the one the log integrated and signed.
    EventChanged {
        /// The leaf.
        index: u64,
    },
    /// The event the log integrated at `index` is stored at leaf `moved_to` instead (set by a
    /// store that can tell, from [`Finding::EventChanged`] pairs).
    OrderChanged {
        /// The leaf whose event moved.
        index: u64,
        /// Where the store now keeps it.
        moved_to: u64,
    },
    /// The log integrated an event at this leaf; the store has none.
    EventMissing {
        /// The leaf.
        index: u64,
    },
    /// A stored hash is not what the leaves below it, or the signed checkpoints, make it.
    HashAltered {
        /// The node.
        node: NodeId,
    },
    /// A hash the log must hold is not stored, or one it cannot hold is.
    HashMissing {
        /// The node.
        node: NodeId,
    },
    /// A stored checkpoint does not verify with the trusted keys.
    CheckpointInvalid {
        /// Its size as stored.
        size: u64,
        /// Why.
        reason: String,
    },
    /// A validly signed checkpoint's root is not the events' root, although every stored leaf
    /// matches its event: events after `since` (the last checkpoint that matches) and their
    /// hashes were rewritten together.
    CheckpointMismatch {
        /// The checkpoint's size.
        size: u64,
        /// The largest matching checkpoint below it (0 if none).
        since: u64,
    },
}

impl Finding {
    /// The leaf where it shows first as the log is read in order (a node's last leaf), to
    /// order findings by.
    pub fn leaf(&self) -> u64 {
        match self {
            Self::EventChanged { index }
            | Self::OrderChanged { index, .. }
            | Self::EventMissing { index } => *index,
            Self::HashAltered { node } | Self::HashMissing { node } => node.last_leaf(),
            Self::CheckpointInvalid { size, .. } => size.saturating_sub(1),
            Self::CheckpointMismatch { since, .. } => *since,
        }
    }
}

/// A check of one log in progress.
pub struct Audit {
    /// Signed checkpoints that verify, by size: their roots.
    signed: BTreeMap<u64, Hash>,
    /// The tree of the events as hashed now.
    events: Frontier,
    /// The tree of the stored leaves, once it differs from the events' (until then it is the
    /// same tree, and only `events` is computed).
    stored: Option<Frontier>,
    /// Leaves whose event and stored hash differ, or where one is missing.
    differing: Vec<(u64, Difference)>,
    findings: Vec<Finding>,
    /// Checkpoint sizes whose root the events do / do not produce.
    matching: Vec<u64>,
    mismatching: Vec<u64>,
    /// How many leaves the store says its log holds.
    stored_size: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Difference {
    Changed,
    NoEvent,
    NoStoredLeaf,
}

/// The most leaf-level differences kept; past that only the count grows.
const MAX_DIFFERENCES: usize = 10_000;

impl Audit {
    /// Starts a check of a log whose store says it holds `stored_size` leaves, with its stored
    /// checkpoints (size as stored, note); those that do not open with any of `keys` become
    /// findings.
    pub fn new(
        stored_size: u64,
        checkpoints: impl IntoIterator<Item = (u64, String)>,
        keys: &[VerifierKey],
    ) -> Self {
        let mut signed = BTreeMap::new();
        let mut findings = Vec::new();
        for (size, note) in checkpoints {
            let mut reason = String::from("no trusted key");
            let opened = keys
                .iter()
                .find_map(|key| match Checkpoint::open(&note, key) {
                    Ok((checkpoint, _)) => Some(checkpoint),
                    Err(e) => {
                        reason = e.to_string();
                        None
                    }
                });
            match opened {
                Some(checkpoint) if checkpoint.size == size => {
                    signed.insert(size, checkpoint.root);
                }
                Some(checkpoint) => findings.push(Finding::CheckpointInvalid {
                    size,
                    reason: format!("stored as size {size}, signed for {}", checkpoint.size),
                }),
                None => findings.push(Finding::CheckpointInvalid { size, reason }),
            }
        }
        Self {
            signed,
            events: Frontier::new(),
            stored: None,
            differing: Vec::new(),
            findings,
            matching: Vec::new(),
            mismatching: Vec::new(),
            stored_size,
        }
    }

    /// The size of the newest checkpoint that verified, 0 if none.
    pub fn newest_signed(&self) -> u64 {
        self.signed.keys().next_back().copied().unwrap_or(0)
    }

    /// The next leaf, `index` = the leaves seen so far: the hash of its event as recomputed
    /// (`None` if the store has no event there) and the stored hashes of the nodes whose last
    /// leaf it is (its own at level 0 first, then upwards; empty past the stored log).
    pub fn leaf(&mut self, event: Option<Hash>, stored: &[(NodeId, Hash)]) {
        let index = self.events.len();
        let stored_leaf = stored
            .iter()
            .find(|(id, _)| *id == NodeId::leaf(index))
            .map(|(_, h)| *h);
        let integrated = index < self.stored_size;
        let difference = match (event, stored_leaf) {
            (Some(e), Some(s)) if e == s => None,
            (Some(_), Some(_)) => Some(Difference::Changed),
            (None, _) => Some(Difference::NoEvent),
            (Some(_), None) if integrated => Some(Difference::NoStoredLeaf),
            // Past the stored log: not integrated yet, counted by the caller.
            (Some(_), None) => None,
        };
        if let Some(difference) = difference {
            if self.stored.is_none() {
                self.stored = Some(self.events.clone());
            }
            if self.differing.len() < MAX_DIFFERENCES {
                self.differing.push((index, difference));
            }
        }
        // The events' tree: a leaf with no event takes the stored hash, so one missing event
        // does not make every later root differ.
        // Neither (a store feeds none such): a placeholder keeps later leaves in place.
        let leaf = event.or(stored_leaf).unwrap_or([0; 32]);
        let mut made = Vec::new();
        self.events.push(leaf, |id, hash| made.push((id, hash)));
        match &mut self.stored {
            None => self.compare(&made, stored),
            Some(tree) => {
                let mut from_stored = Vec::new();
                if let Some(stored_leaf) = stored_leaf.or(event) {
                    tree.push(stored_leaf, |id, hash| from_stored.push((id, hash)));
                }
                self.compare(&from_stored, stored);
            }
        }
        let size = self.events.len();
        if let Some(root) = self.signed.get(&size) {
            if *root == self.events.root() {
                self.matching.push(size);
            } else {
                self.mismatching.push(size);
            }
        }
    }

    /// Compares the nodes the stored leaves make with the hashes stored for them (levels above
    /// 0; leaves are compared with events).
    fn compare(&mut self, made: &[(NodeId, Hash)], stored: &[(NodeId, Hash)]) {
        if stored.is_empty() {
            return; // Past the stored log.
        }
        for (id, hash) in made.iter().filter(|(id, _)| id.level > 0) {
            match stored.iter().find(|(s, _)| s == id) {
                Some((_, s)) if s == hash => {}
                Some(_) => self.findings.push(Finding::HashAltered { node: *id }),
                None => self.findings.push(Finding::HashMissing { node: *id }),
            }
        }
        for (id, _) in stored {
            if !made.iter().any(|(m, _)| m == id) && id.level > 0 {
                self.findings.push(Finding::HashMissing { node: *id });
            }
        }
    }

    /// A stored hash no leaf makes (its key is out of order or past the log).
    pub fn stray_node(&mut self, node: NodeId) {
        self.findings.push(Finding::HashMissing { node });
    }

    /// How many leaves have been fed.
    pub fn len(&self) -> u64 {
        self.events.len()
    }

    /// Whether none has.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The leaves no verified checkpoint covers: (first leaf, count).
    pub fn unsigned(&self) -> (u64, u64) {
        let signed = self.newest_signed().min(self.events.len());
        (signed, self.events.len() - signed)
    }

    /// The leaves past the stored log (not integrated yet).
    pub fn not_integrated(&self) -> u64 {
        self.events.len().saturating_sub(self.stored_size)
    }

    /// What disagrees, ordered by leaf.
    pub fn finish(mut self) -> Vec<Finding> {
        if self.newest_signed() > self.events.len() {
            // A checkpoint past the leaves: the events it signed and their hashes are gone.
            self.findings.push(Finding::EventMissing {
                index: self.events.len(),
            });
        }
        let covering = |index: u64| self.signed.range(index + 1..).next().map(|(s, _)| *s);
        let matches = |size: u64| self.matching.contains(&size);
        for (index, difference) in &self.differing {
            let finding = match difference {
                Difference::NoEvent => Finding::EventMissing { index: *index },
                Difference::NoStoredLeaf => Finding::HashMissing {
                    node: NodeId::leaf(*index),
                },
                // The events still make the signed roots: the stored leaf is what changed.
                Difference::Changed if covering(*index).is_some_and(matches) => {
                    Finding::HashAltered {
                        node: NodeId::leaf(*index),
                    }
                }
                Difference::Changed => Finding::EventChanged { index: *index },
            };
            self.findings.push(finding);
        }
        // Signed roots the events do not make, with no differing leaf below them to say why.
        for size in &self.mismatching {
            let explained = self.differing.iter().any(|(i, _)| i < size);
            if !explained {
                let since = self.matching.iter().copied().filter(|m| m < size).max();
                self.findings.push(Finding::CheckpointMismatch {
                    size: *size,
                    since: since.unwrap_or(0),
                });
            }
        }
        self.findings.sort_by_key(Finding::leaf);
        self.findings.dedup();
        self.findings
    }
}

#[cfg(test)]
mod tests;
