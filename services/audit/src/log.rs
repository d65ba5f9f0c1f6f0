//! The verifiable log's side of the audit service: signed checkpoints, inclusion proofs (an
//! agency's receipt for an event) and consistency proofs, computed from the O(log n) hashes
//! the store keeps for each ([`registry_ledger`] plans which), and the proofs that come with a
//! verified history.
//!
//! The server never checks its own signatures: it serves what its store holds, and the caller,
//! who pinned the log's public key, checks everything.

use std::time::Duration;

use registry_eventstore::{EventStore, Position, RecordedEvent, StoredCheckpoint};
use registry_ledger::{Checkpoint, Note, VerifierKey};
use registry_proto::v1 as pb;
use registry_service_core::ApiError;

/// A stored checkpoint, with the size and root its note states.
pub(crate) fn checkpoint_pb(stored: &StoredCheckpoint) -> Result<pb::Checkpoint, ApiError> {
    let corrupt = |problem: String| ApiError::Corrupt {
        position: format!("checkpoint {}", stored.size),
        problem,
    };
    let note = Note::parse(&stored.note).map_err(|e| corrupt(e.to_string()))?;
    let checkpoint = Checkpoint::parse(note.text()).map_err(|e| corrupt(e.to_string()))?;
    Ok(pb::Checkpoint {
        note: stored.note.clone(),
        size: checkpoint.size,
        root_hash: checkpoint.root.to_vec(),
    })
}

/// The newest checkpoint (`size` 0) or the one of exactly `size` leaves.
pub(crate) async fn checkpoint(
    store: &impl EventStore,
    size: u64,
) -> Result<StoredCheckpoint, ApiError> {
    store
        .log_checkpoint((size > 0).then_some(size))
        .await?
        .ok_or_else(|| {
            if size == 0 {
                ApiError::NotFound("a signed checkpoint of the log".into())
            } else {
                ApiError::NotFound(format!("a checkpoint of size {size}"))
            }
        })
}

/// The inclusion proof of `event` (at leaf `index`) in the log of `size` leaves.
pub(crate) async fn inclusion(
    store: &impl EventStore,
    event: &RecordedEvent,
    index: u64,
    size: u64,
) -> Result<pb::InclusionProof, ApiError> {
    let nodes = store
        .log_nodes(registry_ledger::inclusion_nodes(index, size))
        .await?;
    let hashes =
        registry_ledger::inclusion_proof(&nodes, index, size).map_err(|e| ApiError::Corrupt {
            position: event.position.to_string(),
            problem: format!("the log's proof cannot be made: {e}"),
        })?;
    Ok(pb::InclusionProof {
        leaf: event.leaf().encode(),
        leaf_index: index,
        tree_size: size,
        hashes: hashes.iter().map(|h| h.to_vec()).collect(),
    })
}

/// The leaf of the event at `position`, or why it has no proof in a log of `size` leaves.
pub(crate) async fn leaf_of(
    store: &impl EventStore,
    position: Position,
    size: u64,
) -> Result<u64, ApiError> {
    let index = store.log_index(position).await?.ok_or_else(|| {
        ApiError::NotSigned(format!(
            "the event at {position} is not in the log yet; retry in a second"
        ))
    })?;
    if index >= size {
        return Err(ApiError::NotSigned(format!(
            "the event at {position} is leaf {index}, after the checkpoint of size {size}; \
             ask again in a second, or for the newest checkpoint"
        )));
    }
    Ok(index)
}

/// How long a verified history waits for a checkpoint to cover its newest event: the log
/// signs within about a second of a commit.
pub(crate) const SIGNING_PATIENCE: Duration = Duration::from_secs(3);

/// The newest checkpoint once it covers leaf `index`, waiting up to `patience`; the newest
/// one there is if none does by then.
pub(crate) async fn checkpoint_covering(
    store: &impl EventStore,
    index: u64,
    patience: Duration,
) -> Result<StoredCheckpoint, ApiError> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let newest = checkpoint(store, 0).await;
        match newest {
            Ok(c) if c.size > index => return Ok(c),
            Err(ApiError::NotFound(_)) | Ok(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// The events' leaf indexes in the log. Where the log is integrated after the commit
/// (PostgreSQL), an event just written may have none yet: those are asked again, every 100 ms,
/// until `deadline`; an event still without one is left unproved (`None`).
async fn leaf_indexes(
    store: &impl EventStore,
    events: &[RecordedEvent],
    deadline: tokio::time::Instant,
) -> Result<Vec<Option<u64>>, ApiError> {
    let mut indexes = vec![None; events.len()];
    loop {
        for (event, index) in events.iter().zip(&mut indexes) {
            if index.is_none() {
                *index = store.log_index(event.position).await?;
            }
        }
        if indexes.iter().all(Option::is_some) || tokio::time::Instant::now() >= deadline {
            return Ok(indexes);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A history's events with their proofs in the log of one checkpoint (events it does not cover
/// yet have none).
pub(crate) async fn prove_all(
    store: &impl EventStore,
    events: &[RecordedEvent],
    patience: Duration,
) -> Result<(Vec<Option<pb::InclusionProof>>, pb::Checkpoint), ApiError> {
    // One wait, for the leaves and then a checkpoint covering them.
    let deadline = tokio::time::Instant::now() + patience.min(SIGNING_PATIENCE);
    let indexes = leaf_indexes(store, events, deadline).await?;
    let newest = indexes.iter().flatten().max().copied().unwrap_or(0);
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let stored = checkpoint_covering(store, newest, left).await?;
    let mut proofs = Vec::with_capacity(events.len());
    for (event, index) in events.iter().zip(indexes) {
        proofs.push(match index {
            Some(index) if index < stored.size => {
                Some(inclusion(store, event, index, stored.size).await?)
            }
            _ => None,
        });
    }
    Ok((proofs, checkpoint_pb(&stored)?))
}

/// Events proved at once in one checkpoint.
pub(crate) struct Proved {
    /// The checkpoint.
    pub checkpoint: pb::Checkpoint,
    /// Each event's leaf index, `None` past the checkpoint.
    pub indexes: Vec<Option<u64>>,
    /// The leaves in the checkpoint, by ascending index.
    pub leaves: Vec<pb::ProvedLeaf>,
    /// Their batch proof.
    pub hashes: Vec<Vec<u8>>,
}

/// `events` (in feed order) as leaves with one batch proof in the checkpoint of `size` (0: the
/// newest, once it covers them all, waiting up to `patience`), within `max_bytes`.
pub(crate) async fn prove_leaves(
    store: &impl EventStore,
    events: &[RecordedEvent],
    size: u64,
    patience: Duration,
    max_bytes: usize,
) -> Result<Proved, ApiError> {
    // One wait, for the leaves and then a checkpoint covering them.
    let deadline = tokio::time::Instant::now() + patience.min(SIGNING_PATIENCE);
    let mut indexes = leaf_indexes(store, events, deadline).await?;
    let stored = match size {
        0 => {
            let newest = indexes.iter().flatten().max().copied().unwrap_or(0);
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            checkpoint_covering(store, newest, left).await?
        }
        size => checkpoint(store, size).await?,
    };
    for index in &mut indexes {
        *index = index.filter(|&i| i < stored.size);
    }
    let mut leaves: Vec<pb::ProvedLeaf> = events
        .iter()
        .zip(&indexes)
        .filter_map(|(event, index)| {
            index.map(|index| pb::ProvedLeaf {
                index,
                leaf: event.leaf().encode(),
            })
        })
        .collect();
    leaves.sort_unstable_by_key(|l| l.index);
    leaves.dedup_by_key(|l| l.index);
    let wanted: Vec<u64> = leaves.iter().map(|l| l.index).collect();
    let hashes = if wanted.is_empty() {
        Vec::new()
    } else {
        let nodes = store
            .log_nodes(registry_ledger::batch_nodes(&wanted, stored.size))
            .await?;
        registry_ledger::batch_proof(&nodes, &wanted, stored.size)
            .map_err(|e| ApiError::Corrupt {
                position: format!("the log of size {}", stored.size),
                problem: format!("the log's proof cannot be made: {e}"),
            })?
            .iter()
            .map(|h| h.to_vec())
            .collect()
    };
    // Each leaf and hash costs a few bytes of framing beside its own.
    let bytes: usize = leaves.iter().map(|l| l.leaf.len() + 16).sum::<usize>()
        + hashes.len() * 34
        + stored.note.len();
    if bytes > max_bytes {
        return Err(ApiError::TooLarge(format!(
            "the {} events of these resources take about {bytes} bytes with their proof, over \
             the {max_bytes} a message may have here; ask for fewer resources",
            leaves.len()
        )));
    }
    Ok(Proved {
        checkpoint: checkpoint_pb(&stored)?,
        indexes,
        leaves,
        hashes,
    })
}

/// Keeps the cosignatures of known witnesses that `note` (a stored checkpoint's note with
/// witness lines added) carries; answers the checkpoint as now kept and the witnesses taken.
pub(crate) async fn cosign(
    store: &impl EventStore,
    witnesses: &[VerifierKey],
    note: &str,
) -> Result<(pb::Checkpoint, Vec<String>), ApiError> {
    let invalid = |problem: String| ApiError::invalid("note", problem);
    let given = Note::parse(note).map_err(|e| invalid(e.to_string()))?;
    let size = Checkpoint::parse(given.text())
        .map_err(|e| invalid(e.to_string()))?
        .size;
    let mut accepted = Vec::new();
    for witness in witnesses {
        match given.verify_cosignature(witness) {
            Ok(_) => accepted.push(witness),
            Err(registry_ledger::NoteError::Unsigned(_)) => {}
            Err(e) => return Err(invalid(e.to_string())),
        }
    }
    if accepted.is_empty() {
        return Err(invalid(if witnesses.is_empty() {
            "this registry accepts no witnesses (--log-witnesses)".into()
        } else {
            "no cosignature by a witness this registry accepts".into()
        }));
    }
    // Another witness may add its line at the same time: merge into what is stored now.
    for _ in 0..8 {
        let stored = checkpoint(store, size).await?;
        let mut kept = Note::parse(&stored.note).map_err(|e| ApiError::Corrupt {
            position: format!("checkpoint {size}"),
            problem: e.to_string(),
        })?;
        if kept.text() != given.text() {
            return Err(invalid(format!(
                "is not the registry's checkpoint of size {size}"
            )));
        }
        for witness in &accepted {
            kept.adopt(&given, witness);
        }
        let merged = kept.to_string();
        if merged == stored.note || store.log_cosign(size, stored.note, merged.clone()).await? {
            let names = accepted.iter().map(|w| w.name().to_owned()).collect();
            return Ok((
                checkpoint_pb(&registry_eventstore::StoredCheckpoint { size, note: merged })?,
                names,
            ));
        }
    }
    Err(ApiError::Contention(8))
}
