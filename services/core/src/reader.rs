//! The read path: a replica's read models ([`ReadModels`], from `registry-projections`) kept up
//! to date by following the store's feed, and waiting for a position so that a caller reads
//! its own writes from any replica.
//!
//! A [`Reader`] starts, catches up, follows, waits and rebuilds; the models themselves know
//! nothing of the store. A background task first folds what the store holds as a rebuild does
//! (on three threads, into models swapped in when done), then subscribes to the feed after the
//! models' position and folds batches of events under a write lock; queries take a read lock.
//! The position reached is published on a watch channel that queries wait on. It loads the
//! newest snapshot at start and saves snapshots as configured (`crate::snapshots`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};
use tracing::Instrument;

use futures::FutureExt;
use registry_domain::state::SizedLike;
use registry_eventstore::{AnyStore, EventStore, Position, RecordedEvent};
use registry_projections::read_models::PIPELINE_DEPTH;
use registry_projections::snapshot::{self, Kind};
use tokio::sync::watch;

use crate::error::ApiError;
use crate::feed::{Cursor, CATCH_UP_BATCH};
use crate::snapshots::{self, Due, Snapshots};

/// The longest a read waits for its `min_position`, whatever its deadline.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// Events folded under one write lock at most, so queries are not held up long.
const FOLD_BATCH: usize = 1024;

/// The read models of a replica, at a position of this store's feed.
pub type ReadModels = registry_projections::ReadModels<Position>;

/// Folds a batch of the feed on this thread (events already folded are skipped) and, when
/// `refresh`, brings the coverage index up to date. On an event that does not decode, the
/// events before it are folded and the error is returned.
///
/// The index's refresh recomputes the communes marked since the last one (a holding's commune,
/// an office's; a change of structure, models or adoptions marks every commune), each from its
/// whole history. Refreshing after every batch of a long backlog (an import) would recompute a
/// busy commune once per batch: the follower refreshes when it has caught up, or once a
/// [`COVERAGE_REFRESH`] while it has not. Queries meanwhile answer for marked communes from the
/// plain definition, so answers never depend on it.
pub(crate) fn fold_batch(
    models: &mut ReadModels,
    batch: &[RecordedEvent],
    refresh: bool,
) -> Result<(), ApiError> {
    let mut cursor = Cursor::of(models);
    let (decoded, failed) = cursor.decode_fresh(batch);
    models.fold(&decoded);
    if refresh {
        models.projection.refresh_coverage();
    }
    failed.map_or(Ok(()), Err)
}

/// How long the coverage index may stay partly stale while the follower works through a
/// backlog (see [`fold_batch`]).
const COVERAGE_REFRESH: Duration = Duration::from_secs(1);

/// After a full batch, how long the follower waits for the next event before it takes the
/// backlog as folded and refreshes the coverage index.
const PAUSE: Duration = Duration::from_millis(20);

/// Folds batches of the feed with [`ReadModels::fold_pipelined`] (on three threads), decoding
/// each on this one; stops at the first event that does not decode, after folding those before
/// it, and returns its error.
pub(crate) fn fold_feed(
    models: &mut ReadModels,
    batches: impl Iterator<Item = Vec<RecordedEvent>>,
) -> Result<(), ApiError> {
    let mut cursor = Cursor::of(models);
    let mut failure = None;
    let mut batches = batches.fuse();
    let decoded = std::iter::from_fn(|| {
        if failure.is_some() {
            return None;
        }
        let (decoded, failed) = cursor.decode_fresh(&batches.next()?);
        failure = failed;
        Some(decoded)
    });
    models.fold_pipelined(decoded);
    failure.map_or(Ok(()), Err)
}

/// Keeps one replica's read models up to date and answers for them.
#[derive(Clone)]
pub struct Reader {
    store: AnyStore,
    models: Arc<RwLock<ReadModels>>,
    reached: watch::Receiver<Option<Position>>,
    reached_tx: Arc<watch::Sender<Option<Position>>>,
    /// Whether the models have folded everything the store held when the reader started:
    /// before that they hold part of the registry, and say so.
    ready: watch::Receiver<bool>,
    ready_tx: Arc<watch::Sender<bool>>,
    /// Where the models' snapshots are kept, when they are.
    snapshots: Option<Arc<Snapshots>>,
    /// The events of the newest snapshot this reader loaded or saved: the next is due from it.
    snapshot_events: Arc<AtomicU64>,
    /// Taken before the models' write lock, and by a snapshot for as long as it reads the
    /// models: so nobody waits on the lock itself while a snapshot holds it for seconds. A
    /// writer waiting there would block its worker thread and every new reader (the lock
    /// prefers writers), stalling queries and, through the runtime, writes.
    turn: Arc<tokio::sync::Mutex<()>>,
    /// Held by the rebuild running, if any: a second is refused, not queued.
    rebuilding: Arc<tokio::sync::Mutex<()>>,
}

impl Reader {
    /// Starts following the feed from the beginning; returns at once (the models fill in the
    /// background: use [`Reader::wait_for`] or [`Reader::caught_up`]).
    pub fn start(store: AnyStore) -> Self {
        Self::start_with(store, None)
    }

    /// Starts from the newest snapshot that loads and belongs to the store (else from the
    /// beginning), and saves snapshots as `snapshots` says; returns at once.
    pub fn start_with(store: AnyStore, snapshots: Option<Snapshots>) -> Self {
        let (reached_tx, reached) = watch::channel(None);
        let (ready_tx, ready) = watch::channel(false);
        let reader = Self {
            store,
            models: Arc::new(RwLock::new(ReadModels::default())),
            reached,
            reached_tx: Arc::new(reached_tx),
            ready,
            ready_tx: Arc::new(ready_tx),
            snapshots: snapshots.map(Arc::new),
            snapshot_events: Arc::new(AtomicU64::new(0)),
            turn: Arc::new(tokio::sync::Mutex::new(())),
            rebuilding: Arc::new(tokio::sync::Mutex::new(())),
        };
        tokio::spawn(follow(reader.clone()));
        if reader
            .snapshots
            .as_ref()
            .is_some_and(|s| s.every_events > 0)
        {
            tokio::spawn(keep_snapshots(reader.clone()));
        }
        reader
    }

    /// Saves a snapshot of the models as they stand (none when they folded nothing or
    /// snapshots are not kept): encoded under the read lock, so queries go on and the follower
    /// waits (a read with a `min_position` past the models waits too); the path written. With
    /// `spread` the encoding takes every core (a stopping process); without, one, leaving the
    /// other to the writes and queries going on (a periodic snapshot).
    pub async fn save_snapshot(&self, spread: bool) -> Result<Option<PathBuf>, ApiError> {
        let Some(config) = &self.snapshots else {
            return Ok(None);
        };
        let started = Instant::now();
        let models = Arc::clone(&self.models);
        let turn = self.turn.lock().await;
        let encoded = tokio::task::spawn_blocking(move || {
            let models = models
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            (models.events > 0).then(|| {
                let sections = snapshot::encode_models(&models, spread);
                (models.events, models.position, sections)
            })
        })
        .await
        .map_err(|e| ApiError::Unavailable(format!("encoding a snapshot stopped: {e}")))?;
        drop(turn);
        let Some((events, position, sections)) = encoded else {
            return Ok(None);
        };
        let sections = sections
            .map_err(|e| ApiError::Unavailable(format!("encoding a snapshot failed: {e}")))?;
        let stamp = snapshots::stamp(&self.store, events, position.map(Into::into)).await?;
        let shelf = config.shelf(Kind::ReadModels);
        let written = snapshots::put(&shelf, stamp, sections, started).await?;
        self.snapshot_events.store(events, Ordering::Relaxed);
        Ok(Some(written))
    }

    /// Whether `other` is this reader (a clone of it).
    pub fn same_as(&self, other: &Reader) -> bool {
        Arc::ptr_eq(&self.models, &other.models)
    }

    /// The read models, for reading.
    pub fn models(&self) -> RwLockReadGuard<'_, ReadModels> {
        self.models
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The store followed.
    pub fn store(&self) -> &AnyStore {
        &self.store
    }

    /// The position reached.
    pub fn position(&self) -> Option<Position> {
        *self.reached.borrow()
    }

    /// Completes once the models have folded everything the store held when the reader
    /// started (at once for a reader that already has).
    pub async fn ready(&self) {
        let _ = self.ready.clone().wait_for(|ready| *ready).await;
    }

    /// Waits until the models have folded `min`, for at most `wait`. Without `min`, waits
    /// until the reader is ready ([`Reader::ready`]): a read never answers from a registry
    /// folded in part without saying so.
    pub async fn wait_for(&self, min: Option<Position>, wait: Duration) -> Result<(), ApiError> {
        let Some(min) = min else {
            if *self.ready.borrow() {
                return Ok(());
            }
            return match tokio::time::timeout(wait.min(MAX_WAIT), self.ready()).await {
                Ok(()) => Ok(()),
                Err(_) => Err(ApiError::Unavailable(format!(
                    "this replica is still reading the store since it started (at {}): retry, \
                     or pass the min_position of the write to read",
                    self.position()
                        .map_or_else(|| "the start".to_owned(), |p| p.to_string())
                ))),
            };
        };
        let mut reached = self.reached.clone();
        let outcome = tokio::time::timeout(
            wait.min(MAX_WAIT),
            reached.wait_for(|p| p.is_some_and(|p| p >= min)),
        )
        .instrument(tracing::info_span!("wait_for_position", min = %min))
        .await;
        match outcome {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ApiError::Unavailable(
                "the replica stopped following the store".into(),
            )),
            Err(_) => Err(ApiError::Behind {
                wanted: min.to_string(),
                at: self
                    .position()
                    .map_or_else(|| "the start".to_owned(), |p| p.to_string()),
            }),
        }
    }

    /// Waits until the models have folded everything the store held when called.
    pub async fn caught_up(&self, wait: Duration) -> Result<(), ApiError> {
        let head = self.store.head().await?;
        self.wait_for(head, wait).await
    }

    /// Folds the whole feed into new models and swaps them in; queries go on meanwhile against
    /// the old ones. Returns the number of events folded and the time it took. One at a time:
    /// asked while one runs, it fails at once ([`ApiError::RebuildRunning`]).
    pub async fn rebuild(&self) -> Result<(u64, Option<Position>, Duration), ApiError> {
        let _running = self
            .rebuilding
            .try_lock()
            .map_err(|_| ApiError::RebuildRunning)?;
        let fresh = ReadModels::sized_like(&self.models());
        self.resume(fresh).await
    }

    /// Folds the feed after `fresh` into it and swaps it in, as [`Reader::rebuild`] does.
    async fn resume(
        &self,
        fresh: ReadModels,
    ) -> Result<(u64, Option<Position>, Duration), ApiError> {
        let started = Instant::now();
        let mut fresh = catch_up(&self.store, fresh, None).await?;
        // Bring the new models to where the live ones are, then swap under the write lock. The
        // follower may move on meanwhile: then catch up again.
        loop {
            let live = self.models().position;
            if live > fresh.position {
                fresh = catch_up(&self.store, fresh, live).await?;
            }
            let _turn = self.turn.lock().await;
            let mut models = self
                .models
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if models.position <= fresh.position {
                let answer = (fresh.events, fresh.position, started.elapsed());
                metrics::histogram!(crate::metrics::REBUILD_SECONDS).record(answer.2.as_secs_f64());
                let old = std::mem::replace(&mut *models, fresh);
                drop(models);
                // Freeing millions of rows takes a while: not under the lock, nor on a worker.
                tokio::task::spawn_blocking(move || drop(old));
                return Ok(answer);
            }
        }
    }

    fn publish(&self, position: Option<Position>) {
        self.reached_tx.send_if_modified(|p| {
            let moved = *p < position;
            if moved {
                *p = position;
            }
            moved
        });
    }
}

/// Folds the feed into `models` up to `until` (inclusive), or up to the head when `None`, with
/// [`fold_feed`] on a blocking thread while this task reads the next batches.
async fn catch_up(
    store: &AnyStore,
    mut models: ReadModels,
    until: Option<Position>,
) -> Result<ReadModels, ApiError> {
    let mut after = models.position;
    let (to_fold, mut for_fold) = tokio::sync::mpsc::channel(PIPELINE_DEPTH);
    let folding = tokio::task::spawn_blocking(move || {
        let folded = fold_feed(&mut models, std::iter::from_fn(|| for_fold.blocking_recv()));
        // Before the models are swapped in, so that queries find the index fresh.
        models.projection.refresh_coverage();
        (models, folded)
    });
    let read = async {
        loop {
            let mut batch = store.read_all(after, CATCH_UP_BATCH).await?;
            let read = batch.len();
            batch.retain(|recorded| until.is_none_or(|u| recorded.position <= u));
            let Some(last) = batch.last() else {
                return Ok(());
            };
            after = Some(last.position);
            let whole = batch.len() == read;
            if to_fold.send(batch).await.is_err() || !whole {
                return Ok(()); // The fold stopped (its error is the answer), or `until` is read.
            }
        }
    };
    let read: Result<(), ApiError> = read.await;
    drop(to_fold);
    let (models, folded) = folding
        .await
        .map_err(|e| ApiError::Unavailable(format!("the rebuild's fold stopped: {e}")))?;
    folded?;
    read?;
    Ok(models)
}

/// Saves the models' snapshots when due ([`Snapshots`]), until the reader is dropped.
async fn keep_snapshots(reader: Reader) {
    let Some(config) = reader.snapshots.clone() else {
        return;
    };
    reader.ready().await;
    // Not the snapshot just loaded again: the next is due from it.
    let mut due = Due::from(reader.snapshot_events.load(Ordering::Relaxed));
    loop {
        tokio::time::sleep(snapshots::LOOK_EVERY).await;
        if Arc::strong_count(&reader.models) <= 2 {
            return; // Only the follower and this task hold the models: nobody reads them.
        }
        let events = reader.models().events;
        if due.now(&config, events) {
            match reader.save_snapshot(false).await {
                Ok(_) => due = Due::from(events),
                Err(e) => tracing::warn!(error = %e, "the read models' snapshot was not saved"),
            }
        }
    }
}

/// The follower: subscribe after the models' position, fold, publish; resubscribe on failure.
async fn follow(reader: Reader) {
    let started = Instant::now();
    // The head when the follower began: reaching it is logged once (how long a start took).
    let mut start_head = match reader.store.head().await {
        Ok(head) => head,
        Err(e) => {
            tracing::warn!(error = %e, "the store's head is unknown; the catch-up is not timed");
            None
        }
    };
    if start_head.is_none() {
        // An empty store (or one whose head is unknown: the follower cannot tell better).
        reader.ready_tx.send_replace(true);
    }
    let mut reached = |position: Option<Position>| {
        reader.publish(position);
        if start_head.is_some_and(|head| position >= Some(head)) {
            start_head = None;
            reader.ready_tx.send_replace(true);
            tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                "the read models caught up with the store"
            );
        }
    };
    // What the store holds already is folded as a rebuild folds it, on both cores, after the
    // newest snapshot when there is one; the subscription goes on from there.
    let loaded = match &reader.snapshots {
        Some(config) => {
            let shelf = config.shelf(Kind::ReadModels);
            snapshots::load_newest(&reader.store, &shelf, snapshot::load_models::<Position>).await
        }
        None => None,
    };
    let start = match loaded {
        Some((stamp, models)) => {
            reader
                .snapshot_events
                .store(stamp.events, Ordering::Relaxed);
            reader.resume(models).await
        }
        None => reader.rebuild().await,
    };
    match start {
        Ok((_, position, _)) => reached(position),
        Err(e) => {
            tracing::error!(error = %e, "the read models could not fold the stored feed at once; following it batch by batch");
        }
    }
    loop {
        let after = reader.models().position;
        let mut subscription = reader.store.subscribe(after);
        // Since when the coverage index has waited for a refresh (a full batch was folded, so
        // more were likely ready).
        let mut stale_since: Option<Instant> = None;
        loop {
            let next = match stale_since {
                None => subscription.next().await,
                Some(_) => match tokio::time::timeout(PAUSE, subscription.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        // The backlog is folded: refresh now rather than at the next event.
                        let _turn = reader.turn.lock().await;
                        reader
                            .models
                            .write()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .projection
                            .refresh_coverage();
                        stale_since = None;
                        continue;
                    }
                },
            };
            let Some(first) = next else {
                return; // The store shut down.
            };
            let mut batch = Vec::new();
            let mut failed = None;
            let mut next = Some(Some(first));
            while let Some(Some(recorded)) = next {
                match recorded {
                    Ok(recorded) => batch.push(recorded),
                    Err(e) => {
                        failed = Some(ApiError::from(e));
                        break;
                    }
                }
                if batch.len() == FOLD_BATCH {
                    break;
                }
                next = subscription.next().now_or_never();
            }
            // A batch that is not full took every event that was ready: caught up.
            let behind = batch.len() == FOLD_BATCH;
            let refresh = !behind || stale_since.is_some_and(|t| t.elapsed() >= COVERAGE_REFRESH);
            stale_since = match (refresh, stale_since) {
                (true, _) => None,
                (false, None) => Some(Instant::now()),
                (false, since) => since,
            };
            let _turn = reader.turn.lock().await;
            let outcome = {
                let mut models = reader
                    .models
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                fold_batch(&mut models, &batch, refresh)
                    .and_then(|()| failed.map_or(Ok(()), Err))
                    .map(|()| models.position)
            };
            match outcome {
                Ok(position) => reached(position),
                Err(e) => {
                    tracing::error!(error = %e, "the read models could not fold the feed; retrying in 1 s");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::feed::STREAM;
    use registry_domain::Event;
    use registry_eventstore::Metadata;
    use uuid::Uuid;

    /// A rebuild asked for while another runs is refused at once (ABORTED); once that one is
    /// done, the next runs and folds the whole store.
    #[tokio::test]
    async fn one_rebuild_runs_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let config = registry_eventstore::EmbeddedConfig::new(dir.path().join("registry.db"));
        let store = registry_eventstore::EmbeddedStore::open(config).unwrap();
        let events: Vec<_> = feed()
            .into_iter()
            .take(50)
            .map(|e| registry_eventstore::NewEvent {
                id: e.id,
                event_type: e.event_type.to_string(),
                schema_version: e.schema_version,
                payload: e.payload,
                metadata: Metadata {
                    actor: "test".into(),
                    request_id: None,
                    correlation_id: None,
                    request_fingerprint: None,
                },
            })
            .collect();
        store
            .append(STREAM, registry_eventstore::ExpectedRevision::Any, events)
            .await
            .unwrap();
        let reader = Reader::start(AnyStore::Embedded(store));
        reader.caught_up(Duration::from_secs(30)).await.unwrap();

        let running = reader.rebuilding.try_lock().unwrap();
        let refused = reader.rebuild().await.unwrap_err();
        assert!(matches!(refused, ApiError::RebuildRunning));
        assert_eq!(refused.code(), tonic::Code::Aborted);
        drop(running);
        let (events, _, _) = reader.rebuild().await.unwrap();
        assert_eq!(events, 50);
    }

    /// A generated registry as the store hands it over.
    fn feed() -> Vec<RecordedEvent> {
        let generated = registry_testkit::generate(&registry_testkit::Config::tiny(7));
        let stream: Arc<str> = Arc::from(STREAM);
        generated
            .facts
            .iter()
            .enumerate()
            .map(|(i, fact)| RecordedEvent {
                position: Position::sequence(i as u64 + 1),
                stream: stream.clone(),
                revision: i as u64,
                id: Uuid::now_v7(),
                event_type: Arc::from(fact.event.type_name()),
                schema_version: fact.event.schema_version(),
                payload: fact.event.encode(),
                metadata: Metadata {
                    actor: Arc::from("test"),
                    request_id: None,
                    correlation_id: None,
                    request_fingerprint: None,
                },
                recorded_at: fact.recorded_at,
            })
            .collect()
    }

    /// Where the models stand and the histories of everything the feed names.
    fn answers(models: &ReadModels, feed: &[RecordedEvent]) -> Vec<String> {
        let mut out = vec![format!(
            "{} events, at {:?}",
            models.events, models.position
        )];
        for recorded in feed {
            let event: Event = crate::feed::decode(recorded).unwrap();
            for subject in event.subjects() {
                out.push(format!("{subject}: {:?}", models.history(subject)));
            }
        }
        out
    }

    /// The feed in batches of `len`.
    fn batches(
        feed: &[RecordedEvent],
        len: usize,
    ) -> impl Iterator<Item = Vec<RecordedEvent>> + '_ {
        feed.chunks(len).map(<[RecordedEvent]>::to_vec)
    }

    #[test]
    fn records_already_folded_are_skipped() {
        let feed = feed();
        let mut whole = ReadModels::default();
        fold_batch(&mut whole, &feed, true).unwrap();
        let expected = answers(&whole, &feed);
        assert_eq!(whole.events, feed.len() as u64);
        // Half folded, then batches overlapping it (a rebuild swapped models in meanwhile).
        let mut overlapping = ReadModels::default();
        fold_batch(&mut overlapping, &feed[..feed.len() / 2], true).unwrap();
        fold_feed(&mut overlapping, batches(&feed, feed.len() / 3)).unwrap();
        assert_eq!(answers(&overlapping, &feed), expected);
        fold_batch(&mut overlapping, &feed[feed.len() - 5..], true).unwrap();
        assert_eq!(answers(&overlapping, &feed), expected);
    }

    #[test]
    fn an_event_that_does_not_decode_or_is_out_of_place_stops_the_fold_just_before_it() {
        let feed = feed();
        for (bad, len, skip) in [(600, 700, false), (40, 700, true), (5, 25, false)] {
            let mut damaged = feed[..len].to_vec();
            if skip {
                // A revision missing from the stream: the next one comes where it was due.
                damaged.remove(bad);
            } else {
                damaged[bad].payload = b"{not json".to_vec();
            }
            let mut models = ReadModels::default();
            let failed = fold_batch(&mut models, &damaged, true);
            assert!(
                matches!(&failed, Err(ApiError::Corrupt { problem, .. })
                    if problem.contains(&format!("revision {bad} was due")) == skip),
                "{failed:?}"
            );
            assert_eq!(models.events, bad as u64);
            assert_eq!(models.position, Some(damaged[bad - 1].position));
            // The pipeline folds no batch after the one that failed.
            let mut piped = ReadModels::default();
            let failed = fold_feed(&mut piped, batches(&damaged, 64).chain(batches(&feed, 64)));
            assert!(
                matches!(failed, Err(ApiError::Corrupt { .. })),
                "{failed:?}"
            );
            assert_eq!(piped.events, bad as u64);
            assert_eq!(piped.position, Some(damaged[bad - 1].position));
            assert_eq!(
                answers(&piped, &damaged[..bad]),
                answers(&models, &damaged[..bad])
            );
        }
    }
}
