//! The verifiable log's stored side: the key that signs checkpoints, and what a store keeps of
//! the log beside its events.
//!
//! Every event of the feed is a leaf of an RFC 6962 Merkle tree, in feed order (leaf `i` is the
//! feed's `i`-th event). A store that keeps the log holds two tables beside its events:
//!
//! - `log_nodes (key, hash)`: the hash of every complete subtree, keyed by
//!   [`NodeId::key`](registry_ledger::NodeId::key) (the order the log makes them in). Leaves are
//!   level 0. Any root or proof is computed from O(log n) of them.
//! - `log_checkpoints (size, note)`: signed checkpoints (C2SP signed notes), one per size, made
//!   after each integration at most once a second, kept for ever, with witnesses'
//!   cosignatures added to the note.
//!
//! The embedded store integrates in the commit's own transaction; see each backend for how.

use std::path::Path;

use registry_ledger::{Checkpoint, Hash, SigningKey};
use thiserror::Error;

/// Why a log key file was refused.
#[derive(Debug, Error)]
pub enum LogKeyError {
    /// The file cannot be read.
    #[error("{path}: {message}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// Group or others may read the file.
    #[error("{0}: the log's private key must be readable by its owner only (chmod 600)")]
    Exposed(String),
    /// A line is not a key, or the keys name different logs.
    #[error("{path}:{line}: {message}")]
    Malformed {
        /// The file.
        path: String,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// The keys that sign the log's checkpoints: one, or two while a key is rotated (every
/// checkpoint then carries both signatures, so verifiers pinning either accept it). All name
/// the same log: their name is the checkpoints' origin.
#[derive(Debug)]
pub struct LogSigner {
    keys: Vec<SigningKey>,
}

impl LogSigner {
    /// Signs with these keys (at least one, all of one log).
    pub fn new(keys: Vec<SigningKey>) -> Result<Self, String> {
        let Some(first) = keys.first() else {
            return Err("no key".into());
        };
        if let Some(other) = keys.iter().find(|k| k.name() != first.name()) {
            return Err(format!(
                "the keys name two logs, {:?} and {:?}",
                first.name(),
                other.name()
            ));
        }
        Ok(Self { keys })
    }

    /// Reads a key file: `PRIVATE+KEY+…` lines (blank lines and `#` comments skipped), which
    /// only its owner may read.
    pub fn load(path: &Path) -> Result<Self, LogKeyError> {
        let shown = path.display().to_string();
        let unreadable = |e: std::io::Error| LogKeyError::Unreadable {
            path: shown.clone(),
            message: e.to_string(),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(unreadable)?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(LogKeyError::Exposed(shown));
            }
        }
        let text = std::fs::read_to_string(path).map_err(unreadable)?;
        let mut keys = Vec::new();
        let mut last = 0;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            last = i + 1;
            keys.push(SigningKey::parse(line).map_err(|e| LogKeyError::Malformed {
                path: shown.clone(),
                line: i + 1,
                message: e.to_string(),
            })?);
        }
        Self::new(keys).map_err(|message| LogKeyError::Malformed {
            path: shown,
            line: last.max(1),
            message,
        })
    }

    /// The log's name: the checkpoints' origin line.
    pub fn origin(&self) -> &str {
        self.keys[0].name()
    }

    /// The signed checkpoint of `size` leaves with root `root`, at `time` (unix seconds).
    pub fn sign(&self, size: u64, root: Hash, time: u64) -> String {
        Checkpoint {
            origin: self.origin().to_owned(),
            size,
            root,
            time,
        }
        .sign(&self.keys)
    }
}

/// A checkpoint as a store keeps it: its size and its signed note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// The tree size it signs.
    pub size: u64,
    /// The signed note (with any witnesses' cosignatures).
    pub note: String,
}

/// Unix seconds now.
pub(crate) fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
