//! `regctl verify` on a store: every event re-hashed from what the store holds, the stored
//! hashes checked against them, and both against the checkpoints the log's public key signed
//! ([`registry_ledger::Audit`]). Nothing of the store is trusted but what that key signed.
//!
//! The store is read, never written, and may be in use: the embedded file is read in one read
//! transaction (a snapshot, beside a running writer).

use std::path::Path;
use std::time::Duration;

use registry_ledger::{Audit, Finding, Hash, Leaf, NodeId, VerifierKey};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::{Position, RecordedEvent, StoreError};

/// What to check against.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// The log's public keys (pinned by the verifier, never taken from the store).
    pub keys: Vec<VerifierKey>,
    /// Events after the newest signed checkpoint are a finding, however recent.
    pub strict: bool,
    /// Unsigned events recorded longer ago than this are a finding (a live log signs within
    /// about a second).
    pub grace: Duration,
}

/// One thing that disagrees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Something the audit of the log found.
    Log(Finding),
    /// Events no signed checkpoint covers.
    Unsigned {
        /// How many.
        count: u64,
    },
    /// Events the log does not hold (a store written with the log off).
    NotIntegrated {
        /// How many.
        count: u64,
    },
    /// An event outside the feed's order: stored where no leaf of the log can be.
    Inserted,
}

impl Problem {
    /// A short name of its kind, as `regctl verify` prints it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Log(Finding::EventChanged { .. }) => "event changed",
            Self::Log(Finding::OrderChanged { .. }) => "order changed",
            Self::Log(Finding::EventMissing { .. }) => "event missing",
            Self::Log(Finding::HashAltered { .. }) => "hash table altered",
            Self::Log(Finding::HashMissing { .. }) => "hash missing",
            Self::Log(Finding::CheckpointInvalid { .. }) => "signature invalid",
            Self::Log(Finding::CheckpointMismatch { .. }) => "checkpoint mismatch",
            Self::Unsigned { .. } => "unsigned events",
            Self::NotIntegrated { .. } => "not integrated",
            Self::Inserted => "event inserted",
        }
    }
}

/// A problem and where: the leaf, and the event's position in the feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// The leaf (the feed's `index`-th event, from 0).
    pub index: u64,
    /// The position of the event at that leaf, where known.
    pub position: Option<Position>,
    /// What.
    pub problem: Problem,
    /// A sentence for people.
    pub detail: String,
}

/// What a verification found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Events read.
    pub events: u64,
    /// Leaves the log holds.
    pub leaves: u64,
    /// Checkpoints stored, and the size of the newest that verified.
    pub checkpoints: u64,
    /// The newest verified checkpoint's size (0 if none).
    pub signed: u64,
    /// Events after it.
    pub unsigned: u64,
    /// Everything that disagrees, by leaf.
    pub findings: Vec<Located>,
}

impl Report {
    /// Whether nothing disagrees.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// The leaf hashes of events that differ from their stored leaf, kept to tell a reorder from
/// a change: (leaf, the event, the stored leaf hash).
const MAX_KEPT: usize = 1_000;

/// A verification in progress, fed leaf by leaf by a backend: the audit of the log plus what a
/// report needs to name positions and tell reorders apart.
struct Walk {
    audit: Audit,
    stored_size: u64,
    checkpoints: u64,
    signed: u64,
    /// When the first event after the newest signed checkpoint was recorded.
    first_unsigned_at: Option<i64>,
    /// Events whose leaf differs from the stored one.
    kept: Vec<(u64, RecordedEvent, Option<Hash>)>,
    /// The positions of the leaves a report may name.
    positions: std::collections::BTreeMap<u64, Position>,
    /// Events that are not where the log's order puts any leaf.
    inserted: Vec<Position>,
    events: u64,
    /// Counted when the audit finishes.
    unsigned: u64,
    not_integrated: u64,
}

/// A leaf whose event differs from its stored hash: its index and that hash.
struct Differing {
    index: u64,
    stored_leaf: Option<Hash>,
}

/// One leaf as a backend reads it.
struct Seen<'a> {
    /// Where the leaf's event is (or was) in the feed, if known.
    position: Option<Position>,
    /// The event's leaf hash and recorded time, if the store has the event.
    event: Option<(Hash, i64)>,
    /// The stored hashes of the nodes this leaf completes.
    stored: &'a [(NodeId, Hash)],
}

impl Walk {
    fn new(stored_size: u64, checkpoints: Vec<(u64, String)>, keys: &[VerifierKey]) -> Self {
        let count = checkpoints.len() as u64;
        let audit = Audit::new(stored_size, checkpoints, keys);
        Self {
            signed: audit.newest_signed(),
            audit,
            stored_size,
            checkpoints: count,
            first_unsigned_at: None,
            kept: Vec::new(),
            positions: std::collections::BTreeMap::new(),
            inserted: Vec::new(),
            events: 0,
            unsigned: 0,
            not_integrated: 0,
        }
    }

    /// Feeds the next leaf; when its event differs from the stored leaf, answers what the
    /// backend hands back to [`Walk::keep`] with the full event.
    fn leaf(&mut self, seen: Seen<'_>) -> Option<Differing> {
        let index = self.audit.len();
        let stored_leaf = seen
            .stored
            .iter()
            .find(|(id, _)| *id == NodeId::leaf(index))
            .map(|(_, h)| *h);
        let leaf = seen.event.map(|(hash, _)| hash);
        let differs = leaf != stored_leaf && index < self.stored_size;
        if let Some(position) = seen.position {
            if differs || index == self.signed || index == self.stored_size {
                self.positions.insert(index, position);
            }
        }
        if index == self.signed {
            self.first_unsigned_at = seen.event.map(|(_, at)| at);
        }
        self.events += u64::from(seen.event.is_some());
        self.audit.leaf(leaf, seen.stored);
        (differs && leaf.is_some() && self.kept.len() < MAX_KEPT)
            .then_some(Differing { index, stored_leaf })
    }

    /// Keeps the full event of a leaf that differs, to tell a reorder from a change.
    fn keep(&mut self, differing: Differing, event: RecordedEvent) {
        self.kept
            .push((differing.index, event, differing.stored_leaf));
    }

    /// What the audit found, by leaf (before positions are put to them).
    fn findings(&mut self) -> Vec<Finding> {
        let audit = std::mem::replace(&mut self.audit, Audit::new(0, Vec::new(), &[]));
        self.unsigned = audit.unsigned().1;
        self.not_integrated = audit.not_integrated();
        audit.finish()
    }

    /// The report of `findings`, each at its position: the one seen, else `fill`'s.
    fn report(
        self,
        findings: Vec<Finding>,
        options: &VerifyOptions,
        fill: &dyn Fn(u64) -> Option<Position>,
    ) -> Report {
        let (unsigned, not_integrated) = (self.unsigned, self.not_integrated);
        let positions = self.positions;
        let position_of = |index: u64| positions.get(&index).copied().or_else(|| fill(index));
        let mut findings: Vec<Located> = findings
            .into_iter()
            .map(|finding| locate(finding, &position_of))
            .collect();
        find_moves(&mut findings, &self.kept, &position_of);
        for position in &self.inserted {
            findings.push(Located {
                index: 0,
                position: Some(*position),
                problem: Problem::Inserted,
                detail: format!(
                    "the event at {position} is not in the log's order: it was inserted"
                ),
            });
        }
        let at = |index: u64| {
            position_of(index).map_or(format!("leaf {index}"), |p| format!("position {p}"))
        };
        if not_integrated > 0 {
            findings.push(Located {
                index: self.stored_size,
                position: position_of(self.stored_size),
                problem: Problem::NotIntegrated {
                    count: not_integrated,
                },
                detail: format!(
                    "{not_integrated} events from {} on are not in the log",
                    at(self.stored_size)
                ),
            });
        }
        let stale = self.first_unsigned_at.is_some_and(|recorded| {
            let age = crate::now_micros().saturating_sub(recorded);
            age > i64::try_from(options.grace.as_micros()).unwrap_or(i64::MAX)
        });
        if unsigned > 0 && (options.strict || stale) {
            findings.push(Located {
                index: self.signed,
                position: position_of(self.signed),
                problem: Problem::Unsigned { count: unsigned },
                detail: format!(
                    "{unsigned} events from {} on are under no signed checkpoint",
                    at(self.signed)
                ),
            });
        }
        findings.sort_by_key(|f| f.index);
        Report {
            events: self.events,
            leaves: self.stored_size,
            checkpoints: self.checkpoints,
            signed: self.signed,
            unsigned,
            findings,
        }
    }
}

/// Verifies an embedded store's file.
pub fn verify_embedded(path: &Path, options: &VerifyOptions) -> Result<Report, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(StoreError::backend)?;
    conn.pragma_update(None, "mmap_size", 1i64 << 40)
        .map_err(StoreError::backend)?;
    let sql = |e: rusqlite::Error| StoreError::backend(format!("{}: {e}", path.display()));
    // One snapshot for every query below.
    conn.execute_batch("BEGIN").map_err(sql)?;
    let has_log: bool = conn
        .query_row(
            "SELECT COUNT(*) = 2 FROM sqlite_master WHERE name IN ('log_nodes', 'log_checkpoints')",
            [],
            |r| r.get(0),
        )
        .map_err(sql)?;
    let (stored_size, checkpoints) = if has_log {
        let size: Option<i64> = conn
            .query_row("SELECT MAX(key) FROM log_nodes", [], |r| r.get(0))
            .map_err(sql)?;
        let mut statement = conn
            .prepare("SELECT size, note FROM log_checkpoints ORDER BY size")
            .map_err(sql)?;
        let checkpoints = statement
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
            })
            .map_err(sql)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql)?;
        (size.map_or(0, |k| (k as u64 >> 6) + 1), checkpoints)
    } else {
        (0, Vec::new())
    };
    let head: u64 = conn
        .query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(sql)? as u64;
    let mut walk = Walk::new(stored_size, checkpoints, &options.keys);

    let columns = crate::embedded::COLUMNS;
    // The events are read and hashed on a thread of their own (their own connection, whose
    // snapshot is this one's or later: the feed only grows, so up to `head` it is the same),
    // while this one reads the stored nodes and checks them.
    let (sender, receiver) = std::sync::mpsc::sync_channel(8);
    let hashing = {
        let path = path.to_owned();
        std::thread::Builder::new()
            .name("verify-hashing".into())
            .spawn(move || hash_events(&path, head, &sender))
            .map_err(StoreError::backend)?
    };
    let mut events = Hashed {
        receiver,
        batch: std::collections::VecDeque::new(),
    };
    let mut node_statement = conn
        .prepare(if has_log {
            "SELECT key, hash FROM log_nodes ORDER BY key"
        } else {
            "SELECT 0, x'' WHERE 0"
        })
        .map_err(sql)?;
    let mut nodes = Nodes::new(&mut node_statement).map_err(sql)?;
    let mut names = crate::Interner::default();
    let mut stored: Vec<(NodeId, Hash)> = Vec::with_capacity(8);
    for index in 0..head.max(stored_size) {
        let position = index + 1;
        // The event at this position, if the store has it. Rows below position 1 are outside
        // the feed: someone put them there.
        let mut event = None;
        while let Some(&(at, hash, recorded_at)) = events.peek()? {
            if at < 1 {
                walk.inserted.push(Position::sequence(at as u64));
                events.batch.pop_front();
                continue;
            }
            if at == position as i64 {
                event = Some((hash, recorded_at));
                events.batch.pop_front();
            }
            break;
        }
        nodes
            .completed_by(index, &mut stored, &mut walk)
            .map_err(sql)?;
        let differing = walk.leaf(Seen {
            position: Some(Position::sequence(position)),
            event,
            stored: &stored,
        });
        if let Some(differing) = differing {
            // Read again in full, to tell a moved event from a changed one.
            let full = conn
                .query_row(
                    &format!("SELECT {columns} FROM events WHERE position = ?1"),
                    [position as i64],
                    |row| crate::embedded::row_to_event(row, &mut names),
                )
                .optional()
                .map_err(sql)?;
            if let Some(full) = full {
                walk.keep(differing, full);
            }
        }
    }
    nodes.rest(&mut walk).map_err(sql)?;
    drop(events);
    let _ = hashing.join();
    let findings = walk.findings();
    Ok(walk.report(findings, options, &|index| {
        Some(Position::sequence(index + 1))
    }))
}

/// An event as the hashing thread hands it over: position, leaf hash, recorded time.
type HashedEvent = (i64, Hash, i64);

/// Events hashed per message from the hashing thread.
const HASHED_BATCH: usize = 4096;

/// Reads the events up to `head` in position order and sends their leaf hashes.
fn hash_events(
    path: &Path,
    head: u64,
    sender: &std::sync::mpsc::SyncSender<Result<Vec<HashedEvent>, StoreError>>,
) {
    let read = || -> Result<(), StoreError> {
        let sql = |e: rusqlite::Error| StoreError::backend(format!("{}: {e}", path.display()));
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql)?;
        conn.pragma_update(None, "mmap_size", 1i64 << 40)
            .map_err(sql)?;
        let columns = crate::embedded::COLUMNS;
        let mut statement = conn
            .prepare(&format!(
                "SELECT {columns} FROM events WHERE position <= ?1 ORDER BY position"
            ))
            .map_err(sql)?;
        let mut rows = statement.query([head as i64]).map_err(sql)?;
        let mut batch = Vec::with_capacity(HASHED_BATCH);
        let mut buffer = Vec::new();
        while let Some(row) = rows.next().map_err(sql)? {
            let position: i64 = row.get(0).map_err(sql)?;
            let (hash, recorded_at) = leaf_of_row(row, &mut buffer).map_err(sql)?;
            batch.push((position, hash, recorded_at));
            if batch.len() == HASHED_BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(HASHED_BATCH));
                if sender.send(Ok(full)).is_err() {
                    return Ok(());
                }
            }
        }
        if !batch.is_empty() {
            let _ = sender.send(Ok(batch));
        }
        Ok(())
    };
    if let Err(e) = read() {
        let _ = sender.send(Err(e));
    }
}

/// The hashed events, as they arrive.
struct Hashed {
    receiver: std::sync::mpsc::Receiver<Result<Vec<HashedEvent>, StoreError>>,
    batch: std::collections::VecDeque<HashedEvent>,
}

impl Hashed {
    /// The next event, without taking it; `None` after the last.
    fn peek(&mut self) -> Result<Option<&HashedEvent>, StoreError> {
        while self.batch.is_empty() {
            match self.receiver.recv() {
                Ok(batch) => self.batch.extend(batch?),
                Err(_) => return Ok(None),
            }
        }
        Ok(self.batch.front())
    }
}

/// The stored nodes of an embedded log, read in key order beside the events.
struct Nodes<'c> {
    rows: rusqlite::Rows<'c>,
    /// The next stored node: its key, and its hash unless it is not 32 bytes.
    next: Option<(u64, Option<Hash>)>,
    read: bool,
}

impl<'c> Nodes<'c> {
    /// Reads the nodes `statement` selects, in key order.
    fn new(statement: &'c mut rusqlite::Statement<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            rows: statement.query([])?,
            next: None,
            read: false,
        })
    }

    fn peek(&mut self) -> rusqlite::Result<Option<&(u64, Option<Hash>)>> {
        if !self.read {
            self.next = match self.rows.next()? {
                Some(row) => Some((
                    row.get::<_, i64>(0)? as u64,
                    <Hash>::try_from(row.get_ref(1)?.as_blob().unwrap_or(&[])).ok(),
                )),
                None => None,
            };
            self.read = true;
        }
        Ok(self.next.as_ref())
    }

    /// The stored nodes whose last leaf is `index` (stray keys before it reported).
    fn completed_by(
        &mut self,
        index: u64,
        stored: &mut Vec<(NodeId, Hash)>,
        walk: &mut Walk,
    ) -> rusqlite::Result<()> {
        stored.clear();
        while let Some((key, hash)) = self.peek()? {
            if key >> 6 > index {
                break;
            }
            match (NodeId::try_from_key(*key), hash) {
                (Some(id), Some(hash)) if key >> 6 == index => stored.push((id, *hash)),
                (Some(id), _) => walk.audit.stray_node(id),
                (None, _) => walk.audit.stray_node(NodeId::leaf(key >> 6)),
            }
            self.read = false;
        }
        Ok(())
    }

    /// Nodes past every leaf.
    fn rest(&mut self, walk: &mut Walk) -> rusqlite::Result<()> {
        while let Some((key, _)) = self.peek()? {
            let key = *key;
            walk.audit
                .stray_node(NodeId::try_from_key(key).unwrap_or(NodeId::leaf(key >> 6)));
            self.read = false;
        }
        Ok(())
    }
}

/// The hash of an event row's leaf, read in place, and its recorded time.
fn leaf_of_row(row: &rusqlite::Row<'_>, buffer: &mut Vec<u8>) -> rusqlite::Result<(Hash, i64)> {
    use rusqlite::types::ValueRef;
    let text = |i: usize| -> rusqlite::Result<&str> {
        std::str::from_utf8(row.get_ref(i)?.as_bytes()?).map_err(rusqlite::Error::Utf8Error)
    };
    let optional = |i: usize| -> rusqlite::Result<Option<&str>> {
        match row.get_ref(i)? {
            ValueRef::Null => Ok(None),
            _ => text(i).map(Some),
        }
    };
    let position = row.get_ref(0)?.as_i64()? as u64;
    let id: [u8; 16] = row.get_ref(3)?.as_blob()?.try_into().unwrap_or([0; 16]);
    let recorded_at = row.get_ref(10)?.as_i64()?;
    let leaf = Leaf {
        position: (position, position),
        stream: text(1)?,
        revision: row.get_ref(2)?.as_i64()? as u64,
        id,
        event_type: text(4)?,
        schema_version: row.get(5)?,
        payload: row.get_ref(6)?.as_blob()?,
        actor: text(7)?,
        request_id: optional(8)?,
        correlation_id: optional(9)?,
        request_fingerprint: optional(11)?,
        recorded_at,
    };
    Ok((leaf.hash_with(buffer), recorded_at))
}

fn locate(finding: Finding, position_of: &dyn Fn(u64) -> Option<Position>) -> Located {
    let index = finding.leaf();
    let position = position_of(index);
    let at = position.map_or(format!("leaf {index}"), |p| format!("position {p}"));
    let detail = match &finding {
        Finding::EventChanged { .. } => {
            format!("the event at {at} is not the one the log integrated (its content changed)")
        }
        Finding::OrderChanged { moved_to, .. } => format!(
            "the event integrated at {at} is stored at {}",
            position_of(*moved_to).map_or(format!("leaf {moved_to}"), |p| format!("position {p}"))
        ),
        Finding::EventMissing { .. } => format!("the event at {at} is missing"),
        Finding::HashAltered { node } => format!(
            "the stored hash of {} is not what the events make it",
            node_name(*node)
        ),
        Finding::HashMissing { node } => {
            format!("the stored hash of {} is missing or stray", node_name(*node))
        }
        Finding::CheckpointInvalid { size, reason } => {
            format!("the checkpoint of size {size} does not verify: {reason}")
        }
        Finding::CheckpointMismatch { size, since } => format!(
            "the signed root of size {size} is not the events' root: events after leaf {since} and their hashes were rewritten"
        ),
    };
    Located {
        index,
        position,
        problem: Problem::Log(finding),
        detail,
    }
}

fn node_name(node: NodeId) -> String {
    if node.level == 0 {
        format!("leaf {}", node.index)
    } else {
        let first = node.index << node.level;
        format!("the subtree of leaves {first}..={}", node.last_leaf())
    }
}

/// Turns pairs of changed events that are each other's moved events into reorders: the event
/// now at leaf `i` is the one the log integrated at leaf `j` when, placed at `j`, it hashes to
/// `j`'s stored leaf.
fn find_moves(
    findings: &mut [Located],
    kept: &[(u64, RecordedEvent, Option<Hash>)],
    position_of: &dyn Fn(u64) -> Option<Position>,
) {
    for finding in findings.iter_mut() {
        let Problem::Log(Finding::EventChanged { index }) = finding.problem else {
            continue;
        };
        // The event the log put at `index` is now stored at `other`.
        let moved = kept.iter().find(|(other, event, _)| {
            let Some(stored) = kept.iter().find(|(i, _, _)| *i == index).and_then(|k| k.2) else {
                return false;
            };
            let Some(position) = position_of(index) else {
                return false;
            };
            let mut placed = event.clone();
            placed.position = position;
            *other != index && placed.leaf().hash() == stored
        });
        if let Some((other, _, _)) = moved {
            *finding = locate(
                Finding::OrderChanged {
                    index,
                    moved_to: *other,
                },
                position_of,
            );
        }
    }
}

/// Rows read per query when verifying a PostgreSQL store.
const PG_BATCH: i64 = 20_000;

/// Verifies a PostgreSQL store's schema, in one read-only snapshot.
pub async fn verify_postgres(
    url: &str,
    schema: &str,
    options: &VerifyOptions,
) -> Result<Report, StoreError> {
    use crate::postgres::{parse_xid, rows_to_events, COLUMNS};
    let pg = |e: tokio_postgres::Error| StoreError::backend(e);
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(pg)?;
    let connection = tokio::spawn(connection);
    let s = schema;
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(pg)?;
    let one = |row: Option<tokio_postgres::Row>| row.and_then(|r| r.get::<_, Option<i64>>(0));
    let has_log: bool = tx
        .query_one(
            &format!("SELECT to_regclass('{s}.log_nodes') IS NOT NULL AND to_regclass('{s}.log_leaves') IS NOT NULL"),
            &[],
        )
        .await
        .map_err(pg)?
        .get(0);
    let (stored_size, mapped, checkpoints) = if has_log {
        let size = one(tx
            .query_opt(&format!("SELECT MAX(key) >> 6 FROM {s}.log_nodes"), &[])
            .await
            .map_err(pg)?);
        let mapped = one(tx
            .query_opt(&format!("SELECT MAX(idx) FROM {s}.log_leaves"), &[])
            .await
            .map_err(pg)?);
        let checkpoints = tx
            .query(
                &format!("SELECT size, note FROM {s}.log_checkpoints ORDER BY size"),
                &[],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, String>(1)))
            .collect();
        (
            size.map_or(0, |k| k as u64 + 1),
            mapped.map_or(0, |i| i as u64 + 1),
            checkpoints,
        )
    } else {
        (0, 0, Vec::new())
    };
    let mut walk = Walk::new(stored_size, checkpoints, &options.keys);

    // The three sequences, each read in pages: the feed in its order (below the horizon, as
    // readers see it), the leaves' positions by index, the nodes by key.
    let feed = format!(
        "SELECT {COLUMNS} FROM {s}.events
         WHERE (tx_id, seq) > ($1::text::xid8, $2) AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY tx_id, seq LIMIT {PG_BATCH}"
    );
    let leaves_sql = format!(
        "SELECT idx, tx_id::text, seq FROM {s}.log_leaves WHERE idx >= $1 ORDER BY idx LIMIT {PG_BATCH}"
    );
    let nodes_sql = format!(
        "SELECT key, hash FROM {s}.log_nodes WHERE key >= $1 ORDER BY key LIMIT {PG_BATCH}"
    );
    let mut events: std::collections::VecDeque<RecordedEvent> = Default::default();
    let mut feed_after = Position {
        commit: 0,
        prepare: 0,
    };
    let mut feed_done = false;
    let mut leaves: std::collections::VecDeque<(u64, Position)> = Default::default();
    let mut leaves_from = 0i64;
    let mut leaves_done = !has_log;
    let mut nodes = PgNodes {
        sql: nodes_sql,
        from: 0,
        done: !has_log,
        queue: std::collections::VecDeque::new(),
    };
    let mut stored: Vec<(NodeId, Hash)> = Vec::with_capacity(8);
    let mut index = 0u64;
    loop {
        if events.is_empty() && !feed_done {
            let rows = tx
                .query(
                    &feed,
                    &[&feed_after.commit.to_string(), &(feed_after.prepare as i64)],
                )
                .await
                .map_err(pg)?;
            feed_done = (rows.len() as i64) < PG_BATCH;
            events.extend(rows_to_events(&rows)?);
            if let Some(last) = events.back() {
                feed_after = last.position;
            }
        }
        if leaves.is_empty() && !leaves_done {
            let rows = tx.query(&leaves_sql, &[&leaves_from]).await.map_err(pg)?;
            leaves_done = (rows.len() as i64) < PG_BATCH;
            for row in &rows {
                let idx: i64 = row.get(0);
                leaves.push_back((
                    idx as u64,
                    Position {
                        commit: parse_xid(row.get::<_, &str>(1))?,
                        prepare: row.get::<_, i64>(2) as u64,
                    },
                ));
                leaves_from = idx + 1;
            }
        }
        if index >= stored_size.max(mapped) && events.is_empty() {
            break;
        }
        // Where the log put leaf `index`, if it says.
        while leaves.front().is_some_and(|(i, _)| *i < index) {
            leaves.pop_front();
        }
        let expected = leaves.front().filter(|(i, _)| *i == index).map(|(_, p)| *p);
        // Events before that place are in no leaf: inserted.
        if let Some(expected) = expected {
            while events.front().is_some_and(|e| e.position < expected) {
                if let Some(e) = events.pop_front() {
                    walk.inserted.push(e.position);
                }
                if events.is_empty() && !feed_done {
                    break;
                }
            }
            if events.is_empty() && !feed_done {
                continue; // Read the next page before deciding.
            }
        }
        let event = match expected {
            Some(expected) if events.front().is_some_and(|e| e.position == expected) => {
                events.pop_front()
            }
            Some(_) => None,
            None => events.pop_front(),
        };
        // The stored nodes this leaf completes.
        stored.clear();
        while let Some(&(key, hash)) = nodes.front(&tx).await? {
            if key >> 6 > index {
                break;
            }
            nodes.queue.pop_front();
            match (NodeId::try_from_key(key), hash) {
                (Some(id), Some(hash)) if key >> 6 == index => stored.push((id, hash)),
                (Some(id), _) => walk.audit.stray_node(id),
                (None, _) => walk.audit.stray_node(NodeId::leaf(key >> 6)),
            }
        }
        let differing = walk.leaf(Seen {
            position: event.as_ref().map(|e| e.position).or(expected),
            event: event.as_ref().map(|e| (e.leaf().hash(), e.recorded_at)),
            stored: &stored,
        });
        if let (Some(differing), Some(event)) = (differing, event) {
            walk.keep(differing, event);
        }
        index += 1;
    }
    // Nodes past every leaf.
    while let Some(&(key, _)) = nodes.front(&tx).await? {
        nodes.queue.pop_front();
        walk.audit
            .stray_node(NodeId::try_from_key(key).unwrap_or(NodeId::leaf(key >> 6)));
    }
    let findings = walk.findings();
    // The positions of the leaves the findings name, from the log's map.
    let wanted: Vec<i64> = findings.iter().map(|f| f.leaf() as i64).collect();
    let mut known = std::collections::HashMap::new();
    if has_log {
        for row in tx
            .query(
                &format!("SELECT idx, tx_id::text, seq FROM {s}.log_leaves WHERE idx = ANY($1)"),
                &[&wanted],
            )
            .await
            .map_err(pg)?
        {
            known.insert(
                row.get::<_, i64>(0) as u64,
                Position {
                    commit: parse_xid(row.get::<_, &str>(1))?,
                    prepare: row.get::<_, i64>(2) as u64,
                },
            );
        }
    }
    drop(tx);
    connection.abort();
    Ok(walk.report(findings, options, &|index| known.get(&index).copied()))
}

/// The stored nodes of a PostgreSQL log, read a page at a time in key order: each key, and its
/// hash unless it is not 32 bytes.
struct PgNodes {
    sql: String,
    from: i64,
    done: bool,
    queue: std::collections::VecDeque<(u64, Option<Hash>)>,
}

impl PgNodes {
    /// The next node, reading the next page when needed.
    async fn front(
        &mut self,
        tx: &tokio_postgres::Transaction<'_>,
    ) -> Result<Option<&(u64, Option<Hash>)>, StoreError> {
        if self.queue.is_empty() && !self.done {
            let rows = tx
                .query(&self.sql, &[&self.from])
                .await
                .map_err(StoreError::backend)?;
            self.done = (rows.len() as i64) < PG_BATCH;
            for row in &rows {
                let key: i64 = row.get(0);
                let hash: &[u8] = row.get(1);
                self.queue
                    .push_back((key as u64, <Hash>::try_from(hash).ok()));
                self.from = key + 1;
            }
        }
        Ok(self.queue.front())
    }
}
