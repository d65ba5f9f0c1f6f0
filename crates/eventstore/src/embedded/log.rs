//! The embedded store's verifiable log, kept by the writer thread in the commit's own
//! transaction: an event and its leaf (and the subtrees it completes) commit together or not at
//! all, so the events and the log's hashes agree after any crash without a recovery step.
//!
//! The thread keeps only the log's right edge ([`Frontier`], O(log n) hashes). A checkpoint is
//! signed in the transaction of the first commit a second or more after the last one, or, when
//! the writer is idle, in its own transaction a second after the last (and when the store
//! closes), so every event is under a signed checkpoint within about a second.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use registry_ledger::{Frontier, Hash, NodeId};
use rusqlite::{params, Connection};

use super::{collect_events, sql_err, COLUMNS};
use crate::log::{now_seconds, LogSigner};
use crate::StoreError;

/// The log's tables (see [`crate::log`]).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log_nodes (
    key  INTEGER PRIMARY KEY,
    hash BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS log_checkpoints (
    size INTEGER PRIMARY KEY,
    note TEXT    NOT NULL
);
";

/// How often checkpoints are signed at most.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Events integrated per transaction when a store catches up (written by an earlier version,
/// or with the log off).
const CATCH_UP_BATCH: u64 = 50_000;

/// The leaves the log holds, read from its nodes: the newest node is one its last leaf made.
pub(super) fn stored_size(conn: &Connection) -> Result<u64, StoreError> {
    let key: Option<i64> = conn
        .query_row("SELECT MAX(key) FROM log_nodes", [], |r| r.get(0))
        .map_err(sql_err)?;
    Ok(key.map_or(0, |k| (k as u64 >> 6) + 1))
}

/// The stored hashes of these nodes; ids not stored are left out.
pub(super) fn read_nodes(
    conn: &Connection,
    ids: &[NodeId],
) -> Result<HashMap<NodeId, Hash>, StoreError> {
    let keys = format!(
        "[{}]",
        ids.iter()
            .map(|id| id.key().to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut statement = conn
        .prepare_cached(
            "SELECT key, hash FROM log_nodes WHERE key IN (SELECT value FROM json_each(?1))",
        )
        .map_err(sql_err)?;
    let mut rows = statement.query([keys]).map_err(sql_err)?;
    let mut nodes = HashMap::with_capacity(ids.len());
    while let Some(row) = rows.next().map_err(sql_err)? {
        let key: i64 = row.get(0).map_err(sql_err)?;
        // A hash of the wrong length is left out: whoever asked finds it missing.
        let hash = <Hash>::try_from(row.get_ref(1).map_err(sql_err)?.as_blob().unwrap_or(&[]));
        if let (Some(id), Ok(hash)) = (NodeId::try_from_key(key as u64), hash) {
            nodes.insert(id, hash);
        }
    }
    Ok(nodes)
}

/// Nodes of this level and above are kept in memory once read: a 256th of the leaves, twice.
const UPPER_LEVEL: u8 = 8;

/// The log's upper nodes, as read for proofs.
#[derive(Default)]
pub(super) struct UpperNodes {
    nodes: HashMap<NodeId, Hash>,
}

impl UpperNodes {
    /// The nodes of `ids` held here, and the ids to read.
    pub(super) fn split(&self, ids: Vec<NodeId>) -> (HashMap<NodeId, Hash>, Vec<NodeId>) {
        let mut found = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match self.nodes.get(&id) {
                Some(hash) => {
                    found.insert(id, *hash);
                }
                None => missing.push(id),
            }
        }
        (found, missing)
    }

    /// Keeps the upper ones of nodes just read.
    pub(super) fn keep(&mut self, read: &HashMap<NodeId, Hash>) {
        for (id, hash) in read {
            if id.level >= UPPER_LEVEL {
                self.nodes.insert(*id, *hash);
            }
        }
    }
}

/// The writer thread's part of the log.
pub(super) struct LogWriter {
    frontier: Frontier,
    /// The frontier before the group being committed, to return to if it fails.
    before: Option<Frontier>,
    /// Leaf hashes of the group's appends so far, in position order.
    pending: Vec<Hash>,
    /// Where leaves are encoded, reused.
    buffer: Vec<u8>,
    signer: Option<Arc<LogSigner>>,
    /// The size of the newest signed checkpoint, and when this process signed it.
    signed: u64,
    signed_at: Option<Instant>,
    /// A checkpoint written in the transaction being committed.
    signing: Option<u64>,
}

impl LogWriter {
    /// Opens the log of a store whose feed has `head` events: loads its right edge and
    /// integrates any events it does not hold yet.
    pub(super) fn open(
        conn: &Connection,
        head: u64,
        signer: Option<Arc<LogSigner>>,
    ) -> Result<Self, StoreError> {
        let size = stored_size(conn)?;
        if size > head {
            return Err(StoreError::backend(format!(
                "the log holds {size} leaves but the feed only {head} events: run `regctl verify`"
            )));
        }
        let frontier =
            Frontier::load(size, &read_nodes(conn, &Frontier::ids(size))?).map_err(|e| {
                StoreError::backend(format!(
                    "the log cannot be resumed: {e}; run `regctl verify`"
                ))
            })?;
        let signed: Option<i64> = conn
            .query_row("SELECT MAX(size) FROM log_checkpoints", [], |r| r.get(0))
            .map_err(sql_err)?;
        let mut log = Self {
            frontier,
            before: None,
            pending: Vec::new(),
            buffer: Vec::new(),
            signer,
            signed: signed.map_or(0, |s| s as u64),
            signed_at: None,
            signing: None,
        };
        log.catch_up(conn, head)?;
        Ok(log)
    }

    /// Integrates the events after the log's last leaf up to `head`, in batches.
    fn catch_up(&mut self, conn: &Connection, head: u64) -> Result<(), StoreError> {
        while self.frontier.len() < head {
            let after = self.frontier.len();
            let end = head.min(after + CATCH_UP_BATCH);
            let events = {
                let mut statement = conn
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM events WHERE position > ?1 AND position <= ?2 ORDER BY position"
                    ))
                    .map_err(sql_err)?;
                collect_events(
                    &mut statement,
                    params![after as i64, end as i64],
                    (end - after) as usize,
                )?
            };
            if events.len() as u64 != end - after {
                return Err(StoreError::backend(format!(
                    "the feed has a gap after position {after}: run `regctl verify`"
                )));
            }
            self.pending = events.iter().map(|e| e.leaf().hash()).collect();
            conn.execute_batch("BEGIN IMMEDIATE").map_err(sql_err)?;
            let done = self
                .integrate(conn)
                .and_then(|()| conn.execute_batch("COMMIT").map_err(sql_err));
            match done {
                Ok(()) => self.committed(),
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    self.rolled_back();
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Where the group's leaves stand, to forget an append's if it is rolled back.
    pub(super) fn mark(&self) -> usize {
        self.pending.len()
    }

    /// Forgets the leaves added since `mark`.
    pub(super) fn forget_since(&mut self, mark: usize) {
        self.pending.truncate(mark);
    }

    /// Adds the leaf of an event just inserted.
    pub(super) fn add(&mut self, leaf: &registry_ledger::Leaf<'_>) {
        let hash = leaf.hash_with(&mut self.buffer);
        self.pending.push(hash);
    }

    /// Inside the group's transaction: appends its leaves to the log, storing every node they
    /// make, and a signed checkpoint when one is due.
    pub(super) fn integrate(&mut self, conn: &Connection) -> Result<(), StoreError> {
        self.before = Some(self.frontier.clone());
        let mut insert = conn
            .prepare_cached("INSERT INTO log_nodes (key, hash) VALUES (?1, ?2)")
            .map_err(sql_err)?;
        let mut failed = None;
        for leaf in self.pending.drain(..) {
            self.frontier.push(leaf, |id, hash| {
                if failed.is_none() {
                    if let Err(e) = insert.execute(params![id.key() as i64, &hash[..]]) {
                        failed = Some(e);
                    }
                }
            });
        }
        if let Some(e) = failed {
            return Err(sql_err(e));
        }
        let due = self
            .signed_at
            .is_none_or(|at| at.elapsed() >= CHECKPOINT_EVERY);
        if due {
            self.sign(conn)?;
        }
        Ok(())
    }

    /// Writes the checkpoint of the log as it stands, if it has grown since the last one.
    fn sign(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let size = self.frontier.len();
        let Some(signer) = &self.signer else {
            return Ok(());
        };
        if size <= self.signed {
            return Ok(());
        }
        let note = signer.sign(size, self.frontier.root(), now_seconds());
        conn.execute(
            "INSERT INTO log_checkpoints (size, note) VALUES (?1, ?2)",
            params![size as i64, note],
        )
        .map_err(sql_err)?;
        self.signing = Some(size);
        Ok(())
    }

    /// After the group's transaction committed.
    pub(super) fn committed(&mut self) {
        self.before = None;
        if let Some(size) = self.signing.take() {
            self.signed = size;
            self.signed_at = Some(Instant::now());
        }
    }

    /// After the group's transaction was rolled back: the log is as it was before it.
    pub(super) fn rolled_back(&mut self) {
        if let Some(before) = self.before.take() {
            self.frontier = before;
        }
        self.pending.clear();
        self.signing = None;
    }

    /// How long the writer may wait for appends before it must sign the leaves committed since
    /// the last checkpoint; `None` when there are none (or no key).
    pub(super) fn checkpoint_due_in(&self) -> Option<Duration> {
        (self.signer.is_some() && self.signed < self.frontier.len()).then(|| {
            self.signed_at.map_or(Duration::ZERO, |at| {
                CHECKPOINT_EVERY.saturating_sub(at.elapsed())
            })
        })
    }

    /// Signs the log as it stands, in a transaction of its own. A failure is logged and tried
    /// again a second later.
    pub(super) fn checkpoint_now(&mut self, conn: &Connection) {
        let signed = conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(sql_err)
            .and_then(|()| self.sign(conn))
            .and_then(|()| conn.execute_batch("COMMIT").map_err(sql_err));
        match signed {
            Ok(()) => self.committed(),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                self.signing = None;
                self.signed_at = Some(Instant::now());
                tracing::warn!(error = %e, "the log's checkpoint could not be stored; trying again");
            }
        }
    }
}
