//! Snapshots of what a start folds, so that a restart loads the newest and catches up from its
//! position instead of folding the whole feed: the read models ([`crate::Reader`]) and the
//! writer's state ([`crate::Writer`]), each on its own shelf (`read-models-*.snap`,
//! `writer-*.snap`, the last two of each kept).
//!
//! The two are saved apart, each at its own position: the read models under their read lock
//! (queries go on; the follower waits) and, while serving, on one core; the writer's state under
//! the writer's lock, which only a quiet writer gives up (or the shutdown), so that saving never
//! holds up a write. A snapshot
//! that does not load (damaged, of another format) or was not taken of this store (its last
//! event is not the store's event at that revision: another store, or one restored from an
//! older backup) is logged and skipped for the next, or for the whole feed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use registry_eventstore::{AnyStore, Direction, EventStore};
use registry_projections::snapshot::{Kind, Shelf, SnapshotError, Stamp};
use uuid::Uuid;

use crate::error::ApiError;
use crate::feed::STREAM;

/// Where snapshots are kept and how often they are saved ([`crate::Config`]).
#[derive(Clone, Debug)]
pub struct Snapshots {
    /// The directory of the shelves.
    pub dir: PathBuf,
    /// Save after this many events since the last save (0: only at shutdown, and no periodic
    /// saver runs).
    pub every_events: u64,
    /// Or this long after it, when anything was folded since.
    pub every: Duration,
}

impl Snapshots {
    /// The shelf of `kind`.
    pub fn shelf(&self, kind: Kind) -> Shelf {
        Shelf::new(&self.dir, kind)
    }
}

/// When the next periodic snapshot is due.
pub(crate) struct Due {
    events: u64,
    at: Instant,
}

impl Due {
    /// Counting from `events` folded now.
    pub(crate) fn from(events: u64) -> Self {
        Self {
            events,
            at: Instant::now(),
        }
    }

    /// Whether a state that folded `events` should be saved now.
    pub(crate) fn now(&self, config: &Snapshots, events: u64) -> bool {
        config.every_events > 0
            && events > self.events
            && (events - self.events >= config.every_events || self.at.elapsed() >= config.every)
    }
}

/// How often periodic savers look whether a snapshot is due.
pub(crate) const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The stamp of a state that folded the registry stream's first `events` events: the id of
/// the last (what a snapshot is checked against at load) and its position unless `position`
/// says where the state stands.
pub(crate) async fn stamp(
    store: &AnyStore,
    events: u64,
    position: Option<[u64; 2]>,
) -> Result<Stamp, ApiError> {
    let Some(last) = events.checked_sub(1) else {
        return Ok(Stamp {
            position: position.unwrap_or_default(),
            events,
            last_event: Uuid::nil(),
        });
    };
    let found = store
        .read_stream(STREAM, last, Direction::Forwards, 1)
        .await?;
    match found.first() {
        Some(event) if event.revision == last => Ok(Stamp {
            position: position.unwrap_or(event.position.into()),
            events,
            last_event: event.id,
        }),
        _ => Err(ApiError::Unavailable(format!(
            "the registry stream has no revision {last} to stamp a snapshot with"
        ))),
    }
}

/// Whether the snapshot stamped `stamp` was taken of `store`.
async fn belongs(store: &AnyStore, stamp: &Stamp) -> Result<bool, ApiError> {
    if stamp.events == 0 {
        return Ok(false); // Nothing to gain, and nothing to check it against.
    }
    let found = store
        .read_stream(STREAM, stamp.events - 1, Direction::Forwards, 1)
        .await?;
    Ok(found
        .first()
        .is_some_and(|event| event.revision == stamp.events - 1 && event.id == stamp.last_event))
}

/// The newest snapshot on `shelf` that loads with `load` (on a blocking thread) and was taken of
/// `store`, logging each one skipped and the one loaded; `None` when there is none.
pub(crate) async fn load_newest<T: Send + 'static>(
    store: &AnyStore,
    shelf: &Shelf,
    load: fn(&Path) -> Result<(Stamp, T), SnapshotError>,
) -> Option<(Stamp, T)> {
    let paths = match shelf.newest_first() {
        Ok(paths) => paths,
        Err(e) => {
            tracing::warn!(dir = %shelf.dir().display(), error = %e, "cannot list the snapshots; folding the feed");
            return None;
        }
    };
    for path in paths {
        let started = Instant::now();
        let file = path.clone();
        let loaded = tokio::task::spawn_blocking(move || load(&file)).await;
        let (stamp, state) = match loaded {
            Ok(Ok(loaded)) => loaded,
            Ok(Err(e)) => {
                tracing::warn!(path = %path.display(), error = %e, "skipping a snapshot that does not load");
                continue;
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "skipping a snapshot whose load stopped");
                continue;
            }
        };
        match belongs(store, &stamp).await {
            Ok(true) => {
                tracing::info!(
                    path = %path.display(),
                    events = stamp.events,
                    seconds = started.elapsed().as_secs_f64(),
                    "loaded a snapshot"
                );
                return Some((stamp, state));
            }
            Ok(false) => {
                tracing::warn!(path = %path.display(), events = stamp.events, "skipping a snapshot not taken of this store (its last event is not the store's)");
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot check a snapshot against the store; folding the feed");
                return None;
            }
        }
    }
    None
}

/// Writes `sections` on `shelf` on a blocking thread, logging it; the path written.
pub(crate) async fn put(
    shelf: &Shelf,
    stamp: Stamp,
    sections: Vec<Vec<u8>>,
    started: Instant,
) -> Result<PathBuf, ApiError> {
    let on = shelf.clone();
    let written = tokio::task::spawn_blocking(move || on.put(stamp, &sections))
        .await
        .map_err(|e| ApiError::Unavailable(format!("saving a snapshot stopped: {e}")))?
        .map_err(|e| ApiError::Unavailable(format!("saving a snapshot failed: {e}")))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    metrics::gauge!(crate::metrics::SNAPSHOT_SAVED, "state" => shelf.kind().name())
        .set(now.as_secs_f64());
    tracing::info!(
        path = %written.display(),
        events = stamp.events,
        seconds = started.elapsed().as_secs_f64(),
        "saved a snapshot"
    );
    Ok(written)
}
