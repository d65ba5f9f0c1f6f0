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
    let mut report = Report {
        checkpoints: checkpoints.len() as u64,
        leaves: stored_size,
        ..Report::default()
    };
    let mut audit = Audit::new(stored_size, checkpoints, &options.keys);
    let signed = audit.newest_signed();
    let mut first_unsigned_at = None;
    let mut kept: Vec<(u64, RecordedEvent, Option<Hash>)> = Vec::new();

    let mut events = conn
        .prepare(&format!(
            "SELECT {} FROM events ORDER BY position",
            crate::embedded::COLUMNS
        ))
        .map_err(sql)?;
    let mut events = events.query([]).map_err(sql)?;
    let mut nodes_statement = conn
        .prepare(if has_log {
            "SELECT key, hash FROM log_nodes ORDER BY key"
        } else {
            "SELECT 0, x'' WHERE 0"
        })
        .map_err(sql)?;
    let mut nodes = nodes_statement.query([]).map_err(sql)?;
    let mut next_node: Option<(u64, Vec<u8>)> = None;
    let mut next_node_read = false;
    let mut next_event = events.next().map_err(sql)?;
    let leaves = head.max(stored_size);
    let mut names = crate::Interner::default();
    let mut stored: Vec<(NodeId, Hash)> = Vec::with_capacity(8);
    for index in 0..leaves {
        let position = index + 1;
        // The event at this position, if the store has it (rows at positions below 1 are
        // skipped: no event is stored there).
        let mut event = None;
        while let Some(row) = next_event {
            let at: i64 = row.get(0).map_err(sql)?;
            if at < position as i64 {
                next_event = events.next().map_err(sql)?;
                continue;
            }
            if at == position as i64 {
                let (hash, recorded_at) = leaf_of_row(row).map_err(sql)?;
                event = Some(hash);
                if index == signed {
                    first_unsigned_at = Some(recorded_at);
                }
            }
            break;
        }
        // The stored nodes this leaf completes.
        stored.clear();
        loop {
            if !next_node_read {
                next_node = match nodes.next().map_err(sql)? {
                    Some(row) => Some((
                        row.get::<_, i64>(0).map_err(sql)? as u64,
                        row.get_ref(1)
                            .map_err(sql)?
                            .as_blob()
                            .unwrap_or(&[])
                            .to_vec(),
                    )),
                    None => None,
                };
                next_node_read = true;
            }
            let Some((key, hash)) = &next_node else { break };
            if key >> 6 > index {
                break;
            }
            match (
                NodeId::try_from_key(*key),
                <Hash>::try_from(hash.as_slice()),
            ) {
                (Some(id), Ok(hash)) if key >> 6 == index => stored.push((id, hash)),
                (Some(id), _) => audit.stray_node(id),
                (None, _) => audit.stray_node(NodeId::leaf(key >> 6)),
            }
            next_node_read = false;
        }
        let leaf = event;
        let stored_leaf = stored
            .iter()
            .find(|(id, _)| *id == NodeId::leaf(index))
            .map(|(_, h)| *h);
        if leaf.is_some() && leaf != stored_leaf && kept.len() < MAX_KEPT {
            // Read again in full, to tell a moved event from a changed one.
            let event: Option<RecordedEvent> = conn
                .query_row(
                    &format!(
                        "SELECT {} FROM events WHERE position = ?1",
                        crate::embedded::COLUMNS
                    ),
                    [position as i64],
                    |row| crate::embedded::row_to_event(row, &mut names),
                )
                .optional()
                .map_err(sql)?;
            if let Some(event) = event {
                kept.push((index, event, stored_leaf));
            }
        }
        audit.leaf(leaf, &stored);
        report.events += u64::from(event.is_some());
    }
    // Nodes past every leaf.
    loop {
        if !next_node_read {
            next_node = nodes
                .next()
                .map_err(sql)?
                .map(|row| row.get::<_, i64>(0).map(|k| (k as u64, Vec::new())))
                .transpose()
                .map_err(sql)?;
        }
        next_node_read = false;
        let Some((key, _)) = next_node.take() else {
            break;
        };
        audit.stray_node(NodeId::try_from_key(key).unwrap_or(NodeId::leaf(key >> 6)));
    }
    let (_, unsigned) = audit.unsigned();
    let not_integrated = audit.not_integrated();
    report.signed = signed;
    report.unsigned = unsigned;
    let position_of = |index: u64| Some(Position::sequence(index + 1));
    let mut findings: Vec<Located> = audit
        .finish()
        .into_iter()
        .map(|finding| locate(finding, &position_of))
        .collect();
    find_moves(&mut findings, &kept, &position_of);
    if not_integrated > 0 {
        findings.push(Located {
            index: stored_size,
            position: position_of(stored_size),
            problem: Problem::NotIntegrated {
                count: not_integrated,
            },
            detail: format!(
                "{not_integrated} events from position {} on are not in the log",
                stored_size + 1
            ),
        });
    }
    let stale = first_unsigned_at.is_some_and(|at| {
        let age = crate::now_micros().saturating_sub(at);
        age > i64::try_from(options.grace.as_micros()).unwrap_or(i64::MAX)
    });
    if unsigned > 0 && (options.strict || stale) {
        findings.push(Located {
            index: signed,
            position: position_of(signed),
            problem: Problem::Unsigned { count: unsigned },
            detail: format!(
                "{unsigned} events from position {} on are under no signed checkpoint",
                signed + 1
            ),
        });
    }
    findings.sort_by_key(|f| f.index);
    report.findings = findings;
    Ok(report)
}

/// The hash of an event row's leaf, read in place, and its recorded time.
fn leaf_of_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Hash, i64)> {
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
    Ok((leaf.hash(), recorded_at))
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
