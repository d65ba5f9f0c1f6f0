//! Events as the API shows them (`pb::Change`), kept in memory once read from the store.
//!
//! A history is mostly the same events asked again: an office's changes until the office
//! changes. Reading them costs a store read per event and a decode of its payload (for the
//! resources it names), several times what sending them costs. An event never changes once
//! appended, so a change kept is right for as long as it is kept: the cache needs no
//! invalidation, only a bound. It is weighed in bytes and evicts with S3-FIFO (`quick_cache`),
//! which keeps what is asked again over what a listing swept through once. A kept change is
//! served only at the position it was read at.

use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::Weighter;
use registry_eventstore::{EventStore, Position};
use registry_proto::v1 as pb;
use registry_service_core::{ApiError, Reader, STREAM};

use crate::change_pb;

/// Hits and misses of the cache, for operators sizing it.
const HITS: &str = "registry_history_cache_hits_total";
const MISSES: &str = "registry_history_cache_misses_total";

/// A kept change and the position it was read at.
type Kept = Arc<(Position, pb::Change)>;

/// What a kept change costs in memory, roughly: its text and a fixed part for the structure,
/// the key and the cache's own slot.
#[derive(Clone)]
struct Bytes;

impl Weighter<u64, Kept> for Bytes {
    fn weight(&self, _: &u64, kept: &Kept) -> u64 {
        let c = &kept.1;
        let text = c.position.len()
            + c.event_id.len()
            + c.event_type.len()
            + c.actor.len()
            + c.request_id.len()
            + c.payload_json.len()
            + c.subjects.iter().map(|s| s.len() + 24).sum::<usize>();
        (text + 256) as u64
    }
}

/// The changes read so far, by stream revision, up to a number of bytes.
pub struct Changes {
    kept: Option<Cache<u64, Kept, Bytes>>,
}

impl Changes {
    /// Keeps up to `bytes` of changes; none when 0.
    pub fn new(bytes: u64) -> Self {
        let kept = (bytes > 0).then(|| {
            // quick_cache sizes its tables from the estimated count: about 1 kB a change.
            let estimated = usize::try_from(bytes / 1024).unwrap_or(usize::MAX).max(16);
            Cache::with_weighter(estimated, bytes, Bytes)
        });
        Self { kept }
    }

    /// The changes at these revisions, each at the position the caller saw it at, in order:
    /// the kept ones from memory, the others read from the store in one call (and kept).
    /// Events the store does not have there are left out, as the store's `read_seen` does.
    pub async fn at(
        &self,
        reader: &Reader,
        seen: &[(u64, Position)],
    ) -> Result<Vec<pb::Change>, ApiError> {
        let Some(kept) = &self.kept else {
            let events = reader.store().read_seen(STREAM, seen).await?;
            return Ok(events.into_iter().map(change_pb).collect());
        };
        let mut found: Vec<Option<Kept>> = Vec::with_capacity(seen.len());
        let mut missing = Vec::new();
        for (revision, position) in seen {
            match kept.get(revision).filter(|k| k.0 == *position) {
                Some(change) => found.push(Some(change)),
                None => {
                    found.push(None);
                    missing.push((*revision, *position));
                }
            }
        }
        metrics::counter!(HITS).increment((seen.len() - missing.len()) as u64);
        if !missing.is_empty() {
            metrics::counter!(MISSES).increment(missing.len() as u64);
            let mut read = reader
                .store()
                .read_seen(STREAM, &missing)
                .await?
                .into_iter()
                .peekable();
            // Both are in revision order: fill each gap with the event read for it, if any.
            for (slot, (revision, _)) in found.iter_mut().filter(|s| s.is_none()).zip(&missing) {
                if let Some(event) = read.next_if(|e| e.revision == *revision) {
                    let change: Kept = Arc::new((event.position, change_pb(event)));
                    kept.insert(*revision, change.clone());
                    *slot = Some(change);
                }
            }
        }
        Ok(found.into_iter().flatten().map(|k| k.1.clone()).collect())
    }
}
