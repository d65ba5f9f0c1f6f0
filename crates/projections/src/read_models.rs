//! Everything one replica answers from, kept together at one feed position: the bitemporal
//! [`Projection`] and the auditors' [`AuditIndex`], folded from decoded batches of the feed
//! (one batch at a time while following it, or on three threads for a start or a rebuild).
//!
//! This module knows nothing of the store or of gRPC: the service core reads the feed, decodes
//! it into [`FeedBatch`]es and hands them over. Feed positions are the store's, kept as a type
//! parameter `P` that converts to and from two `u64`s (for snapshots).

use std::sync::Arc;

use registry_domain::state::SizedLike;
use registry_domain::{EntityRef, Event};
use smallvec::SmallVec;
use uuid::Uuid;

use crate::{HashMap as Map, Instant, Projection};

/// A position in the store's feed: ordered, and written in a snapshot as two `u64`s.
pub trait FeedPosition: Copy + Ord + Send + Sync + From<[u64; 2]> + Into<[u64; 2]> {}

impl<P: Copy + Ord + Send + Sync + From<[u64; 2]> + Into<[u64; 2]>> FeedPosition for P {}

/// Where an event of the registry stream sits in the feed and when it was recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen<P> {
    /// Its revision in the registry stream (the read models number events by it).
    pub revision: u64,
    /// When it was recorded.
    pub recorded_at: Instant,
    /// Its position in the feed.
    pub position: P,
}

/// A batch of the feed, decoded: the registry stream's events in order, and the position of
/// the last record of the batch read (which may belong to no event folded here).
#[derive(Clone, Debug)]
pub struct FeedBatch<P> {
    /// The events, each with where it sits.
    pub events: Vec<(Seen<P>, Event)>,
    /// The feed position the batch reaches.
    pub through: Option<P>,
}

/// Which events concern which resource, and when each was recorded: the auditors' index.
///
/// Each event is listed under the entities it names, except where the projection already keeps
/// it: the events that record a holding's versions (its start, end and corrections) and a
/// person's registration ([`Projection::keeps`]). The events of a holding reach the histories
/// of its person and office through the projection too, which files every holding under them
/// ([`ReadModels::history`]): a national registry starts and ends millions of holdings, and
/// listing each of those events here as well (a hash lookup of a new key each, missing the
/// cache) was most of the cost of this index in a rebuild.
pub struct AuditIndex<P> {
    /// The stream revisions of the events naming each entity, in order, but those the
    /// projection keeps. Most entities have a few events: they are kept inline, as 32-bit
    /// revisions (a stream of four billion events is far off).
    pub(crate) named: Map<Uuid, SmallVec<[u32; 4]>>,
    /// The person and office of each corrected holding from a revision on: what they were
    /// before its first correction (from revision 0) and after each. Corrections are rare; a
    /// holding never corrected kept the parties it started with.
    pub(crate) parties: Map<Uuid, SmallVec<[PartiesFrom; 2]>>,
    /// The recorded time of every event, by stream revision.
    pub(crate) recorded_at: Vec<Instant>,
    /// The feed position of every event, by stream revision: the store finds an event faster
    /// by it (the embedded store: its row's key).
    pub(crate) positions: Vec<P>,
    /// The running maximum of `recorded_at`, for a binary search by recorded time (clocks of
    /// several writers need not agree, so `recorded_at` itself need not be sorted).
    pub(crate) latest_so_far: Vec<Instant>,
}

/// A holding's person and office from a stream revision on.
pub(crate) type PartiesFrom = (u32, [Uuid; 2]);

impl<P> Default for AuditIndex<P> {
    fn default() -> Self {
        Self {
            named: Map::default(),
            parties: Map::default(),
            recorded_at: Vec::new(),
            positions: Vec::new(),
            latest_so_far: Vec::new(),
        }
    }
}

impl<P> SizedLike for AuditIndex<P> {
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

impl<P: FeedPosition> AuditIndex<P> {
    fn add(&mut self, seen: Seen<P>, event: &Event) {
        // Past four billion events `recorded_at` alone would hold 32 GiB: not a case to serve.
        let revision = u32::try_from(seen.revision).unwrap_or(u32::MAX);
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
        let latest = self.latest_recorded().max(seen.recorded_at);
        self.recorded_at.push(seen.recorded_at);
        self.latest_so_far.push(latest);
        self.positions.push(seen.position);
    }

    /// The latest recorded instant folded (`i64::MIN` before any).
    pub fn latest_recorded(&self) -> Instant {
        self.latest_so_far.last().copied().unwrap_or(i64::MIN)
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

    /// These revisions with the position of each, to read them from the store; revisions not
    /// folded yet are left out.
    pub fn seen(&self, revisions: &[u64]) -> Vec<(u64, P)> {
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
        after: Instant,
        until: Instant,
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
pub struct ReadModels<P> {
    /// The bitemporal read models.
    pub projection: Projection,
    /// The auditors' index.
    pub audit: AuditIndex<P>,
    /// The feed position of the last record folded.
    pub position: Option<P>,
    /// How many events of the registry stream were folded.
    pub events: u64,
}

impl<P> Default for ReadModels<P> {
    fn default() -> Self {
        Self {
            projection: Projection::default(),
            audit: AuditIndex::default(),
            position: None,
            events: 0,
        }
    }
}

/// A rebuild folds the same feed again: tables sized like the live ones are not copied into
/// fresh memory each time they would grow.
impl<P> SizedLike for ReadModels<P> {
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

fn fold_projection<P>(projection: &mut Projection, events: &[(Seen<P>, Event)]) {
    for (seen, event) in events {
        // The projection numbers the events it folds; the audit index reads those numbers as
        // stream revisions (the feed hands over no revision out of place).
        debug_assert_eq!(projection.applied(), seen.revision);
        projection.apply(seen.recorded_at, event);
    }
}

fn fold_audit<P: FeedPosition>(audit: &mut AuditIndex<P>, events: &[(Seen<P>, Event)]) {
    for (seen, event) in events {
        audit.add(*seen, event);
    }
}

impl<P: FeedPosition> ReadModels<P> {
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

    /// Folds a batch on this thread. Its first event must be the revision after the last
    /// folded ([`ReadModels::events`]).
    pub fn fold(&mut self, batch: &FeedBatch<P>) {
        fold_projection(&mut self.projection, &batch.events);
        fold_audit(&mut self.audit, &batch.events);
        advance(&mut self.events, &mut self.position, batch);
    }

    /// Folds batches on three threads, for a start or a rebuild: this one takes each batch
    /// from `batches` (which may decode it meanwhile) and two fold it, one model each (the
    /// models share nothing). Bounded queues join them, so no thread waits for another at each
    /// batch and two cores stay busy. The models end as [`ReadModels::fold`] called with each
    /// batch in turn leaves them.
    pub fn fold_pipelined(&mut self, batches: impl Iterator<Item = FeedBatch<P>>) {
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
                advance(events, position, &batch);
                let shared = Arc::new(batch.events);
                // A send fails only when a fold thread panicked: the scope then panics too.
                if !queues
                    .iter()
                    .all(|queue| queue.send(shared.clone()).is_ok())
                {
                    break;
                }
            }
        });
    }
}

/// Moves the models' count and position past `batch`.
fn advance<P: FeedPosition>(events: &mut u64, position: &mut Option<P>, batch: &FeedBatch<P>) {
    *events += batch.events.len() as u64;
    *position = (*position).max(batch.through);
}

/// A decoded batch, shared by the threads that fold it.
type Shared<P> = Arc<Vec<(Seen<P>, Event)>>;

/// Starts a thread of `scope` that folds each batch sent on the queue returned, in order.
fn fold_on<'scope, P: Send + Sync + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    mut fold: impl FnMut(&[(Seen<P>, Event)]) + Send + 'scope,
) -> std::sync::mpsc::SyncSender<Shared<P>> {
    let (queue, batches) = std::sync::mpsc::sync_channel::<Shared<P>>(PIPELINE_DEPTH);
    scope.spawn(move || batches.into_iter().for_each(|batch| fold(&batch)));
    queue
}

/// Batches taken ahead of the slower fold, at most.
pub const PIPELINE_DEPTH: usize = 4;
