//! The read path: read models kept up to date by following the store's feed, and waiting for a
//! position so that a caller reads its own writes from any replica.
//!
//! A [`Reader`] owns the read models of one replica ([`ReadModels`]): the bitemporal projection
//! (which also lists irregularities, through the domain's rules) and the audit index (which
//! events concern which resource, and when each was recorded). A background task first folds
//! what the store holds as a rebuild does (on three threads, into models swapped in when done),
//! then subscribes to the feed after the models' position and folds batches of events under a
//! write lock; queries take a read lock. The position reached is published on a watch channel
//! that queries wait on.

use smallvec::SmallVec;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use futures::FutureExt;
use registry_domain::state::SizedLike;
use registry_domain::{EntityRef, Event};
use registry_eventstore::{AnyStore, EventStore, Position, RecordedEvent};
use registry_projections::Projection;
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::ApiError;
use crate::feed::{decode, CATCH_UP_BATCH, STREAM};

/// The longest a read waits for its `min_position`, whatever its deadline.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// Events folded under one write lock at most, so queries are not held up long.
const FOLD_BATCH: usize = 1024;

/// Maps keyed by UUIDs: foldhash (randomly seeded) instead of SipHash, which cost a rebuild
/// of a national registry seconds.
type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Which events concern which resource, and when each was recorded: the auditors' index.
///
/// Each event is listed under the entities it names, except where the projection already keeps
/// it: the events that record a holding's versions (its start, end and corrections) and a
/// person's registration ([`Projection::events_kept_for`]). The events of a holding reach the
/// histories of its person and office through the projection too, which files every holding
/// under them ([`ReadModels::history`]). A national registry registers millions of persons and
/// starts and ends millions of holdings; listing each of those events here as well (a hash
/// lookup of a new key each, missing the cache) was most of the cost of this index in a
/// rebuild.
#[derive(Default)]
pub struct AuditIndex {
    /// The stream revisions of the events naming each entity, in order, but those the
    /// projection keeps ([`Projection::keeps`]). Most entities have a few events: they are
    /// kept inline, as 32-bit revisions (a stream of four billion events is far off).
    named: Map<Uuid, SmallVec<[u32; 4]>>,
    /// The person and office of each corrected holding from a revision on: what they were
    /// before its first correction (from revision 0) and after each. Corrections are rare; a
    /// holding never corrected kept the parties it started with.
    parties: Map<Uuid, SmallVec<[PartiesFrom; 2]>>,
    /// The recorded time of every event, by stream revision.
    recorded_at: Vec<i64>,
    /// The feed position of every event, by stream revision: the store finds an event faster
    /// by it (the embedded store: its row's key).
    positions: Vec<Position>,
    /// The running maximum of `recorded_at`, for a binary search by recorded time (clocks of
    /// several writers need not agree, so `recorded_at` itself need not be sorted).
    latest_so_far: Vec<i64>,
}

/// A holding's person and office from a stream revision on.
type PartiesFrom = (u32, [Uuid; 2]);

impl SizedLike for AuditIndex {
    fn sized_like(other: &Self) -> Self {
        use SizedLike as S;
        Self {
            named: S::sized_like(&other.named),
            parties: S::sized_like(&other.parties),
            recorded_at: S::sized_like(&other.recorded_at),
            positions: S::sized_like(&other.positions),
            latest_so_far: S::sized_like(&other.latest_so_far),
        }
    }
}

impl AuditIndex {
    fn add(&mut self, seen: Seen, event: &Event) {
        let (revision, recorded_at) = (seen.revision, seen.recorded_at);
        // Past four billion events `recorded_at` alone would hold 32 GiB: not a case to serve.
        let revision = u32::try_from(revision).unwrap_or(u32::MAX);
        if let Event::HoldingCorrected(e) = event {
            let moves = self.parties.entry(e.holding.uuid()).or_default();
            if moves.is_empty() {
                moves.push((0, [e.before.person.uuid(), e.before.office.uuid()]));
            }
            moves.push((revision, [e.after.person.uuid(), e.after.office.uuid()]));
        }
        let mut subjects: SmallVec<[Uuid; 8]> = event
            .subjects()
            .into_iter()
            .filter(|s| !Projection::keeps(event, s))
            .map(|s| s.uuid())
            .collect();
        subjects.sort_unstable();
        subjects.dedup();
        for subject in subjects {
            self.named.entry(subject).or_default().push(revision);
        }
        // Revisions are dense from 0: the vector index is the revision.
        let latest = self
            .latest_so_far
            .last()
            .copied()
            .unwrap_or(i64::MIN)
            .max(recorded_at);
        self.recorded_at.push(recorded_at);
        self.latest_so_far.push(latest);
        self.positions.push(seen.position);
    }

    /// The revisions of the events naming `entity`.
    fn named(&self, entity: Uuid) -> &[u32] {
        self.named
            .get(&entity)
            .map_or(&[], |revisions| &revisions[..])
    }

    /// Keeps of these revisions of events about `holding` those while `party` was its person
    /// or office.
    fn keep_while_party(&self, holding: Uuid, party: Uuid, revisions: &mut Vec<u32>) {
        // Never corrected: the holding was found under `party`, its only person or office.
        if let Some(moves) = self.parties.get(&holding) {
            revisions.retain(|revision| {
                let from = moves.partition_point(|(at, _)| at <= revision);
                from > 0 && moves[from - 1].1.contains(&party)
            });
        }
    }

    /// These revisions with the position of each, for [`EventStore::read_seen`]; revisions not
    /// folded yet are left out.
    pub fn seen(&self, revisions: &[u64]) -> Vec<(u64, Position)> {
        revisions
            .iter()
            .filter_map(|r| Some((*r, *self.positions.get(usize::try_from(*r).ok()?)?)))
            .collect()
    }

    /// The revisions in `from..end` of the events recorded in `(after, until]`, at most `limit`,
    /// and the revision to continue from when there may be more (`end`: the events a listing's
    /// first page saw).
    pub fn recorded_between(
        &self,
        after: i64,
        until: i64,
        from: u64,
        end: u64,
        limit: usize,
    ) -> (Vec<u64>, Option<u64>) {
        // No event before `start` was recorded after `after`.
        let start = self.latest_so_far.partition_point(|t| *t <= after) as u64;
        let mut found = Vec::new();
        let mut revision = start.max(from);
        let seen = &self.recorded_at[..self.recorded_at.len().min(end as usize)];
        while let Some(t) = seen.get(revision as usize) {
            if found.len() == limit {
                return (found, Some(revision));
            }
            if after < *t && *t <= until {
                found.push(revision);
            }
            revision += 1;
        }
        (found, None)
    }
}

/// Everything one replica answers queries from, at one position of the feed.
#[derive(Default)]
pub struct ReadModels {
    /// The bitemporal read models.
    pub projection: Projection,
    /// The auditors' index.
    pub audit: AuditIndex,
    /// The position of the last event folded.
    pub position: Option<Position>,
    /// How many events were folded.
    pub events: u64,
}

impl ReadModels {
    /// What a listing's later pages answer as of ([`crate::paging`]): the latest recorded
    /// instant folded and the number of stream events folded.
    pub fn snapshot(&self) -> crate::paging::Snapshot {
        crate::paging::Snapshot {
            recorded_until: self.audit.latest_so_far.last().copied().unwrap_or(i64::MIN),
            events: self.audit.recorded_at.len() as u64,
        }
    }
}

/// A rebuild folds the same feed again: tables sized like the live ones are not copied into
/// fresh memory each time they would grow.
impl SizedLike for ReadModels {
    fn sized_like(other: &Self) -> Self {
        use SizedLike as S;
        Self {
            projection: S::sized_like(&other.projection),
            audit: S::sized_like(&other.audit),
            position: None,
            events: 0,
        }
    }
}

/// Where an event sits in the feed and when it was recorded: what the audit index keeps of it.
#[derive(Clone, Copy, Debug)]
struct Seen {
    revision: u64,
    recorded_at: i64,
    position: Position,
}

/// The registry stream's events of `feed` decoded, up to the first that does not decode: that
/// one's index in `feed` and its error.
type Decoded = (Vec<(Seen, Event)>, Option<(usize, ApiError)>);

/// `next` is the revision due next: the read models number the stream's events by revision
/// (the audit index's tables, the projection's event numbers), so a revision out of place is
/// refused like an event that does not decode.
fn decode_run(feed: &[RecordedEvent], mut next: u64) -> Decoded {
    let mut decoded = Vec::with_capacity(feed.len());
    for (i, recorded) in feed.iter().enumerate() {
        if &*recorded.stream == STREAM {
            if recorded.revision != next {
                let problem = format!(
                    "the registry stream's revision {} came where revision {next} was due",
                    recorded.revision
                );
                let position = recorded.position.to_string();
                return (decoded, Some((i, ApiError::Corrupt { position, problem })));
            }
            next += 1;
            match decode(recorded) {
                Ok(event) => decoded.push((
                    Seen {
                        revision: recorded.revision,
                        recorded_at: recorded.recorded_at,
                        position: recorded.position,
                    },
                    event,
                )),
                Err(e) => return (decoded, Some((i, e))),
            }
        }
    }
    (decoded, None)
}

/// The events of a batch not folded yet, decoded: `events` and `position` moved past them.
fn fresh_decoded(
    events: &mut u64,
    position: &mut Option<Position>,
    batch: &[RecordedEvent],
) -> Decoded {
    let done = batch.partition_point(|r| position.is_some_and(|p| r.position <= p));
    let fresh = &batch[done..]; // The rest were folded already (a rebuild swapped models in).
    let (decoded, failed) = decode_run(fresh, *events);
    let folded = failed.as_ref().map_or(fresh.len(), |(i, _)| *i);
    *events += decoded.len() as u64;
    if folded > 0 {
        *position = Some(fresh[folded - 1].position);
    }
    (decoded, failed)
}

fn fold_projection(projection: &mut Projection, batch: &[(Seen, Event)]) {
    for (seen, event) in batch {
        // The projection numbers the events it folds; the audit index reads those numbers as
        // stream revisions (`decode_run` lets no revision out of place through).
        debug_assert_eq!(projection.applied(), seen.revision);
        projection.apply(seen.recorded_at, event);
    }
}

fn fold_audit(audit: &mut AuditIndex, batch: &[(Seen, Event)]) {
    for (seen, event) in batch {
        audit.add(*seen, event);
    }
}

impl ReadModels {
    /// The stream revisions of the events about `entity`, in order: those naming it and, for a
    /// person or an office, those about a holding while the holding was theirs (as last
    /// started or corrected before the event).
    pub fn history(&self, entity: EntityRef) -> Vec<u64> {
        let uuid = entity.uuid();
        let mut revisions = self.about(entity);
        for holding in self.projection.holdings_ever_filed_under(entity) {
            let mut about = self.about(EntityRef::Holding(holding));
            self.audit
                .keep_while_party(holding.uuid(), uuid, &mut about);
            revisions.extend(about);
        }
        revisions.sort_unstable();
        revisions.dedup();
        revisions.into_iter().map(u64::from).collect()
    }

    /// The revisions of the events naming `entity`: those the audit index lists and those the
    /// projection keeps (the stream's revisions are the projection's event numbers: both fold
    /// the registry stream from its start).
    fn about(&self, entity: EntityRef) -> Vec<u32> {
        let mut revisions = self.audit.named(entity.uuid()).to_vec();
        revisions.extend(self.projection.events_kept_for(entity));
        revisions
    }

    /// Folds a batch of the feed on this thread (events already folded are skipped). On an
    /// event that does not decode, the events before it are folded and the error is returned.
    fn fold_batch(&mut self, batch: &[RecordedEvent]) -> Result<(), ApiError> {
        let (decoded, failed) = fresh_decoded(&mut self.events, &mut self.position, batch);
        fold_projection(&mut self.projection, &decoded);
        fold_audit(&mut self.audit, &decoded);
        failed.map_or(Ok(()), |(_, e)| Err(e))
    }

    /// Folds batches of the feed on three threads, for a rebuild: this one decodes each batch
    /// and two fold it, one model each (the models share nothing). Bounded queues join
    /// them, so no thread waits for another at each batch and the two cores stay busy. The
    /// answers are those of [`fold_batch`] called with each batch in turn, stopping at the
    /// first event that does not decode.
    ///
    /// [`fold_batch`]: ReadModels::fold_batch
    fn fold_pipelined(
        &mut self,
        batches: impl Iterator<Item = Vec<RecordedEvent>>,
    ) -> Result<(), ApiError> {
        let Self {
            projection,
            audit,
            position,
            events,
        } = self;
        std::thread::scope(|s| {
            let queues = [
                fold_on(s, |batch| fold_projection(projection, batch)),
                fold_on(s, |batch| fold_audit(audit, batch)),
            ];
            for batch in batches {
                let (decoded, failed) = fresh_decoded(events, position, &batch);
                let decoded = Arc::new(decoded);
                // A send fails only when a fold thread panicked: the scope then panics too.
                let sent = queues
                    .iter()
                    .all(|queue| queue.send(decoded.clone()).is_ok());
                if let Some((_, e)) = failed {
                    return Err(e);
                }
                if !sent {
                    break;
                }
            }
            Ok(())
        })
    }
}

/// A decoded batch, shared by the threads that fold it.
type Batch = Arc<Vec<(Seen, Event)>>;

/// Starts a thread of `scope` that folds each batch sent on the queue returned, in order.
fn fold_on<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    mut fold: impl FnMut(&[(Seen, Event)]) + Send + 'scope,
) -> std::sync::mpsc::SyncSender<Batch> {
    let (queue, batches) = std::sync::mpsc::sync_channel::<Batch>(PIPELINE_DEPTH);
    scope.spawn(move || batches.into_iter().for_each(|batch| fold(&batch)));
    queue
}

/// Batches decoded ahead of the slower fold in a rebuild, at most.
const PIPELINE_DEPTH: usize = 4;

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
}

impl Reader {
    /// Starts following the feed from the beginning; returns at once (the models fill in the
    /// background: use [`Reader::wait_for`] or [`Reader::caught_up`]).
    pub fn start(store: AnyStore) -> Self {
        let (reached_tx, reached) = watch::channel(None);
        let (ready_tx, ready) = watch::channel(false);
        let reader = Self {
            store,
            models: Arc::new(RwLock::new(ReadModels::default())),
            reached,
            reached_tx: Arc::new(reached_tx),
            ready,
            ready_tx: Arc::new(ready_tx),
        };
        tokio::spawn(follow(reader.clone()));
        reader
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
    /// the old ones. Returns the number of events folded and the time it took.
    pub async fn rebuild(&self) -> Result<(u64, Option<Position>, Duration), ApiError> {
        let started = Instant::now();
        let fresh = ReadModels::sized_like(&self.models());
        let mut fresh = catch_up(&self.store, fresh, None).await?;
        // Bring the new models to where the live ones are, then swap under the write lock. The
        // follower may move on meanwhile: then catch up again.
        loop {
            let live = self.models().position;
            if live > fresh.position {
                fresh = catch_up(&self.store, fresh, live).await?;
            }
            let mut models = self
                .models
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if models.position <= fresh.position {
                let answer = (fresh.events, fresh.position, started.elapsed());
                *models = fresh;
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
/// [`ReadModels::fold_pipelined`] on a blocking thread while this task reads the next batches.
async fn catch_up(
    store: &AnyStore,
    mut models: ReadModels,
    until: Option<Position>,
) -> Result<ReadModels, ApiError> {
    let mut after = models.position;
    let (to_fold, mut for_fold) = tokio::sync::mpsc::channel(PIPELINE_DEPTH);
    let folding = tokio::task::spawn_blocking(move || {
        let folded = models.fold_pipelined(std::iter::from_fn(|| for_fold.blocking_recv()));
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
    // What the store holds already is folded as a rebuild folds it, on both cores; the
    // subscription goes on from there.
    match reader.rebuild().await {
        Ok((_, position, _)) => reached(position),
        Err(e) => {
            tracing::error!(error = %e, "the read models could not fold the stored feed at once; following it batch by batch");
        }
    }
    loop {
        let after = reader.models().position;
        let mut subscription = reader.store.subscribe(after);
        loop {
            let Some(first) = subscription.next().await else {
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
            let outcome = {
                let mut models = reader
                    .models
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                models
                    .fold_batch(&batch)
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
    use registry_domain::event::{HoldingCorrected, HoldingFacts, Retracted};
    use registry_domain::{Amendment, Date, HoldingId, OfficeId};
    use registry_eventstore::{Metadata, Position};
    use registry_projections::Instant;

    /// A generated registry as the store would hand it over, with holdings moved by
    /// corrections to another person and office (some moved back) and then retracted: events
    /// naming only a holding after a move belong to the histories of its parties of the moment.
    fn feed() -> Vec<RecordedEvent> {
        let generated = registry_testkit::generate(&registry_testkit::Config::tiny(7));
        let mut events: Vec<(i64, Event)> = generated
            .facts
            .iter()
            .map(|fact| (fact.recorded_at, fact.event.clone()))
            .collect();
        let current: Vec<(HoldingId, HoldingFacts)> = generated
            .facts
            .iter()
            .filter_map(|fact| match &fact.event {
                Event::HoldingStarted(e) => {
                    Some((e.holding, generated.registry.holding(e.holding)?.facts()))
                }
                _ => None,
            })
            .collect();
        let amendment = Amendment {
            reason: "test".into(),
            actor: "test".into(),
            basis: None,
        };
        let mut clock = events.last().map_or(0, |(at, _)| *at);
        for (i, pair) in current.chunks_exact(2).step_by(40).take(6).enumerate() {
            let ((holding, before), (_, elsewhere)) = (&pair[0], &pair[1]);
            let holding = *holding;
            let after = HoldingFacts {
                person: elsewhere.person,
                office: elsewhere.office,
                ..before.clone()
            };
            let mut moves = vec![(before.clone(), after.clone())];
            if i % 2 == 0 {
                moves.push((after, before.clone()));
            }
            for (before, after) in moves {
                let correction = HoldingCorrected {
                    holding,
                    before,
                    after,
                    amendment: amendment.clone(),
                };
                clock += 1;
                events.push((clock, correction.into()));
            }
            let retraction = Retracted {
                target: EntityRef::Holding(holding),
                amendment: amendment.clone(),
            };
            clock += 1;
            events.push((clock, retraction.into()));
        }
        let stream: Arc<str> = Arc::from(STREAM);
        events
            .into_iter()
            .enumerate()
            .map(|(i, (recorded_at, event))| RecordedEvent {
                position: Position::sequence(i as u64 + 1),
                stream: stream.clone(),
                revision: i as u64,
                id: Uuid::now_v7(),
                event_type: Arc::from(event.type_name()),
                schema_version: event.schema_version(),
                payload: event.encode(),
                metadata: Metadata {
                    actor: Arc::from("test"),
                    request_id: None,
                    correlation_id: None,
                    request_fingerprint: None,
                },
                recorded_at,
            })
            .collect()
    }

    /// What the models answer about everything the feed names: audit histories, the holders
    /// of every office and the irregularities on a few days.
    fn answers(models: &ReadModels, feed: &[RecordedEvent]) -> Vec<String> {
        let mut out = vec![format!(
            "{} events, at {:?}",
            models.events, models.position
        )];
        let policy = registry_domain::Policy::default();
        for recorded in feed {
            let event = decode(recorded).unwrap();
            for subject in event.subjects() {
                out.push(format!("{subject}: {:?}", models.history(subject)));
                if let EntityRef::Office(office) = subject {
                    for year in [2006, 2015, 2024] {
                        let on = Date::from_ymd(year, 6, 1).unwrap();
                        let holders = models.projection.holders(office, on, None::<Instant>);
                        let ids: Vec<_> = holders.iter().map(|h| h.holding).collect();
                        out.push(format!("{office} on {on}: {ids:?}"));
                    }
                }
            }
        }
        for year in [2006, 2015, 2024] {
            let on = Date::from_ymd(year, 6, 1).unwrap();
            out.push(format!(
                "{:?}",
                models.projection.irregularities(&policy, on, None)
            ));
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
    fn batches_folded_by_the_pipeline_give_the_answers_of_one_event_at_a_time() {
        let feed = feed();
        assert!(feed.len() > 2_000, "{} events", feed.len());
        let mut one_at_a_time = ReadModels::default();
        for recorded in &feed {
            one_at_a_time
                .fold_batch(std::slice::from_ref(recorded))
                .unwrap();
        }
        let expected = answers(&one_at_a_time, &feed);
        assert_eq!(
            expected[0],
            format!(
                "{} events, at {:?}",
                feed.len(),
                feed.last().map(|r| r.position)
            )
        );
        let mut in_batches = ReadModels::default();
        in_batches.fold_pipelined(batches(&feed, 97)).unwrap();
        assert_eq!(answers(&in_batches, &feed), expected);
        // Sized like the full models, in one batch, and in batches overlapping what was folded
        // already (those events are skipped).
        let mut sized = ReadModels::sized_like(&one_at_a_time);
        sized.fold_pipelined(batches(&feed, feed.len())).unwrap();
        assert_eq!(answers(&sized, &feed), expected);
        let mut overlapping = ReadModels::default();
        overlapping.fold_batch(&feed[..feed.len() / 2]).unwrap();
        overlapping
            .fold_pipelined(batches(&feed, feed.len() / 3))
            .unwrap();
        assert_eq!(answers(&overlapping, &feed), expected);
    }

    #[test]
    fn the_audit_index_lists_each_event_under_what_it_names_and_a_holding_s_parties() {
        let feed = feed();
        let mut models = ReadModels::default();
        models.fold_batch(&feed).unwrap();
        // The naive reference: every event under the entities it names, and an event naming a
        // holding also under the holding's person and office as last started or corrected.
        let mut parties: Vec<(HoldingId, [EntityRef; 2])> = Vec::new();
        let mut expected: Vec<(Uuid, u64)> = Vec::new();
        let mut entities: Vec<EntityRef> = Vec::new();
        let mut moved = 0;
        for (revision, recorded) in feed.iter().enumerate() {
            let event = decode(recorded).unwrap();
            let filed = match &event {
                Event::HoldingStarted(e) => Some((e.holding, e.person, e.office)),
                Event::HoldingCorrected(e) => {
                    moved += usize::from(e.before.office != e.after.office);
                    Some((e.holding, e.after.person, e.after.office))
                }
                _ => None,
            };
            if let Some((holding, person, office)) = filed {
                parties.push((
                    holding,
                    [EntityRef::Person(person), EntityRef::Office(office)],
                ));
            }
            let mut named: Vec<EntityRef> = Vec::new();
            for subject in event.subjects() {
                named.push(subject);
                if let EntityRef::Holding(h) = subject {
                    if let Some((_, p)) = parties.iter().rev().find(|(id, _)| *id == h) {
                        named.extend_from_slice(p);
                    }
                }
            }
            entities.extend_from_slice(&named);
            let mut named: Vec<Uuid> = named.iter().map(|e| e.uuid()).collect();
            named.sort_unstable();
            named.dedup();
            expected.extend(named.into_iter().map(|id| (id, revision as u64)));
        }
        expected.sort_unstable();
        entities.sort_unstable_by_key(|e| e.uuid());
        entities.dedup();
        let mut indexed: Vec<(Uuid, u64)> = entities
            .iter()
            .flat_map(|e| models.history(*e).into_iter().map(|r| (e.uuid(), r)))
            .collect();
        indexed.sort_unstable();
        assert_eq!(indexed, expected);
        // Events naming only the holding, and corrections, some moving a holding to another
        // office and some back, occur in the feed.
        let types: Vec<&str> = feed.iter().map(|r| &*r.event_type).collect();
        assert!(types.contains(&"HoldingEnded") && types.contains(&"HoldingCorrected"));
        assert!(moved >= 6, "{moved} corrections move a holding");
        assert!(models
            .history(EntityRef::Office(OfficeId::from_uuid(Uuid::now_v7())))
            .is_empty());
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
            let failed = models.fold_batch(&damaged);
            assert!(
                matches!(&failed, Err(ApiError::Corrupt { problem, .. })
                    if problem.contains(&format!("revision {bad} was due")) == skip),
                "{failed:?}"
            );
            assert_eq!(models.events, bad as u64);
            assert_eq!(models.position, Some(damaged[bad - 1].position));
            // The pipeline folds no batch after the one that failed.
            let mut piped = ReadModels::default();
            let failed = piped.fold_pipelined(batches(&damaged, 64).chain(batches(&feed, 64)));
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
