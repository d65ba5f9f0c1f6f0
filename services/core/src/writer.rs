//! The write path: decide a command against the current registry, append its events with the
//! exact expected revision, and answer repeated requests from memory.
//!
//! The whole registry is one stream ([`STREAM`]), so every hard invariant is checked against the
//! state at one revision and appended only if the stream is still at that revision. The writer
//! keeps the domain state folded up to the revision it last saw. Before each decision it reads
//! what other writers (other processes on the same store) appended since; when an append still
//! loses the race it catches up and decides again, up to [`MAX_ATTEMPTS`] times, then answers
//! ABORTED. Within one process a mutex serialises writes, so they never race each other.
//!
//! Every write, alone or in a batch, takes the same path ([`Writer::round`]). A store that
//! queues appends (`EventStore::queues_appends`: the embedded store, whose file lock makes this
//! process the only writer, so no race can happen) gets a decided command's events folded at
//! once and its append queued, and the next command is decided while the store commits, so that
//! concurrent commands share transactions and fsyncs (group commit). Appends are committed in the
//! order they were decided; if one fails, those queued after it fail too (their expected
//! revisions no longer match), and the state, which folded events that were not stored, is
//! rebuilt from the store before the next decision. On other stores a command is folded once
//! stored, so that losing a race to another process costs a catch-up, not a rebuild.
//!
//! Idempotency rests here, not on the store: every event carries its request's `request_id` in
//! its metadata; the writer remembers, for each request id (kept as a 16-byte hash), the answer
//! (the resource and the commit position), rebuilt from the stream at start. A repeated
//! request, from this process or after a restart or from another process, gets the first answer
//! and appends nothing.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use registry_domain::state::Structure;
use registry_domain::{Command, EntityRef, Event, Irregularity, Policy, Registry};
use registry_eventstore::{
    check_append, AnyStore, EventStore, ExpectedRevision, Metadata, NewEvent, Position, Queued,
    StoreError,
};
use registry_projections::records::{self, Damaged};
use registry_projections::snapshot::{self, Kind, SnapshotError, Stamp};
use sha2::{Digest, Sha256};
use tokio::sync::{watch, Mutex};
use tracing::Instrument;

use crate::error::ApiError;
use crate::feed::{read_decoded, DecodedBatch, STREAM};
use crate::snapshots::{self, Due, Snapshots};
use crate::writer_records;

/// Whether the caller holding `grant` may have `command` recorded in `registry` (always, without
/// a policy).
fn permitted(
    grant: Option<&crate::access::Grant>,
    command: &Command,
    registry: &Registry,
) -> Result<(), ApiError> {
    match grant {
        Some(grant) => grant
            .access
            .check(&grant.identity, command, registry)
            .map_err(|denied| {
                crate::metrics::denied(registry_access::Action::of(command).name());
                ApiError::from(denied)
            }),
        None => Ok(()),
    }
}

/// How many times a write is decided again after losing a race to another writer.
pub const MAX_ATTEMPTS: u32 = 8;

/// Who asks for a write, and under which request.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Who (recorded with every event, shown to auditors).
    pub actor: String,
    /// The idempotency key.
    pub request_id: String,
    /// Ties related requests together, where the caller gives one.
    pub correlation_id: Option<String>,
    /// The request's fingerprint ([`crate::serve::fingerprint`]): a repeat of the request id
    /// with another fingerprint is another request, refused.
    pub fingerprint: String,
    /// The authenticated caller with the policy that judges it: the write is checked against
    /// it in the decision step (none without a policy: every caller may write).
    pub grant: Option<crate::access::Grant>,
}

/// The answer to a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The resource the write is about (the first subject of its first event).
    pub name: String,
    /// The commit position of the write's last event.
    pub position: Position,
    /// Irregularities the write brings (empty when replayed: they are not stored).
    pub warnings: Vec<Irregularity>,
    /// Whether this repeats an earlier answer to the same request id.
    pub replayed: bool,
}

struct State {
    registry: Registry,
    /// The revision the next event of the stream will have: the number of events folded.
    next_revision: u64,
    /// The answer to every request id seen, or a way to wait for it while its append is queued.
    requests: HashMap<RequestKey, Known>,
}

impl State {
    fn empty() -> Self {
        Self {
            registry: Registry::new(),
            next_revision: 0,
            requests: HashMap::new(),
        }
    }
}

/// A request id as the writer keeps it: the first 16 bytes of its SHA-256, whatever the id's
/// length. The map holds every request id the registry was ever sent; two ids sharing a key
/// would take 2^64 tries to find, and the fingerprint check still tells their requests apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct RequestKey([u8; 16]);

impl RequestKey {
    fn of(request_id: &str) -> Self {
        let digest = Sha256::digest(request_id.as_bytes());
        let mut key = [0; 16];
        key.copy_from_slice(&digest[..16]);
        Self(key)
    }
}

/// What the writer knows of a request id: what happened to it, and the fingerprint of the
/// request that used it (`None` for events stored before fingerprints were, or one that does
/// not read), kept as its 16 bytes.
struct Known {
    fingerprint: Option<[u8; 16]>,
    outcome: Outcome,
}

#[derive(Clone)]
enum Outcome {
    /// Its events are stored: the resource it is about and the commit position of the append.
    Done {
        subject: Option<EntityRef>,
        position: Position,
    },
    /// Its append was queued: the resource it is about, and the commit position of that
    /// append, which arrives once stored (the sender is dropped if it fails, and then the whole
    /// map is rebuilt from the store). A batch's commands share one append and one channel.
    Pending {
        subject: Option<EntityRef>,
        stored: watch::Receiver<Option<Position>>,
    },
}

impl Outcome {
    /// The answer to a request repeating the one this is the outcome of.
    async fn replayed(self) -> Result<Answer, ApiError> {
        let (subject, position) = match self {
            Outcome::Done { subject, position } => (subject, position),
            Outcome::Pending { subject, stored } => (subject, stored_once(stored).await?),
        };
        Ok(Answer {
            name: resource_name(subject),
            position,
            warnings: Vec::new(),
            replayed: true,
        })
    }
}

impl Known {
    /// What is known of `caller`'s request id once `outcome` is.
    fn of(caller: &Caller, outcome: Outcome) -> Self {
        Self {
            fingerprint: fingerprint_bytes(&caller.fingerprint),
            outcome,
        }
    }

    /// The outcome of the request id for `caller`, refusing another request that reuses it.
    fn for_caller(&self, caller: &Caller) -> Result<&Outcome, ApiError> {
        match self.fingerprint {
            Some(first) if Some(first) != fingerprint_bytes(&caller.fingerprint) => {
                Err(ApiError::RequestIdReused {
                    request_id: caller.request_id.clone(),
                })
            }
            _ => Ok(&self.outcome),
        }
    }
}

/// Decides and appends commands. Cheap to clone; clones share the state. On the embedded store
/// there must be one writer (and its clones) per store: its state is then the whole truth.
#[derive(Clone)]
pub struct Writer {
    store: AnyStore,
    policy: Policy,
    /// A tokio mutex: on shared stores it is held across the append's await (one decision and
    /// append at a time); on the embedded store only while deciding and queueing.
    state: Arc<Mutex<State>>,
    /// A queued append failed after its events were folded: the state is rebuilt from the store
    /// before the next decision.
    poisoned: Arc<AtomicBool>,
    /// Where the state's snapshots are kept, when they are.
    snapshots: Option<Arc<Snapshots>>,
    /// When the last write came in (milliseconds since the Unix epoch): periodic snapshots wait
    /// for a quiet writer.
    last_write: Arc<AtomicU64>,
}

impl Writer {
    /// Folds the stream and returns a writer ready to decide.
    pub async fn open(store: AnyStore, policy: Policy) -> Result<Self, ApiError> {
        Self::open_with(store, policy, None).await
    }

    /// Loads the newest snapshot of the state that belongs to the store (when snapshots are
    /// kept), folds the stream after it, and returns a writer ready to decide that saves
    /// snapshots as `snapshots` says.
    pub async fn open_with(
        store: AnyStore,
        policy: Policy,
        snapshots: Option<Snapshots>,
    ) -> Result<Self, ApiError> {
        let started = std::time::Instant::now();
        let loaded = match &snapshots {
            Some(config) => {
                let shelf = config.shelf(Kind::Writer);
                snapshots::load_newest(&store, &shelf, State::load).await
            }
            None => None,
        };
        let loaded_events = loaded.as_ref().map_or(0, |(stamp, _)| stamp.events);
        let writer = Self {
            store,
            policy,
            state: Arc::new(Mutex::new(loaded.map_or_else(State::empty, |(_, s)| s))),
            poisoned: Arc::new(AtomicBool::new(false)),
            snapshots: snapshots.map(Arc::new),
            last_write: Arc::new(AtomicU64::new(0)),
        };
        writer.catch_up(&mut *writer.state.lock().await).await?;
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            "the writer's state is folded from the store"
        );
        if writer
            .snapshots
            .as_ref()
            .is_some_and(|s| s.every_events > 0)
        {
            tokio::spawn(keep_snapshots(writer.clone(), loaded_events));
        }
        Ok(writer)
    }

    /// Saves a snapshot of the state (none when snapshots are not kept, when the state folded
    /// nothing, or when an append is still being committed or failed: the state is then not
    /// the store's). With `when_quiet`, only if the writer is not deciding: the state is
    /// encoded under its lock, and a periodic snapshot must not hold up writes.
    pub async fn save_snapshot(&self, when_quiet: bool) -> Result<Option<PathBuf>, ApiError> {
        let Some(config) = &self.snapshots else {
            return Ok(None);
        };
        let started = std::time::Instant::now();
        let state = if when_quiet {
            match Arc::clone(&self.state).try_lock_owned() {
                Ok(state) => state,
                Err(_) => return Ok(None),
            }
        } else {
            Arc::clone(&self.state).lock_owned().await
        };
        // At shutdown the appends queued last are being committed: give them a moment (their
        // commits do not need the lock).
        for _ in 0..if when_quiet { 0 } else { 250 } {
            if !state.appending() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        if self.poisoned.load(Ordering::SeqCst) || state.next_revision == 0 || state.appending() {
            return Ok(None);
        }
        let events = state.next_revision;
        let encoded = tokio::task::spawn_blocking(move || state.encode())
            .await
            .map_err(|e| ApiError::Unavailable(format!("encoding a snapshot stopped: {e}")))?
            .map_err(|e| ApiError::Unavailable(format!("encoding a snapshot failed: {e}")))?;
        let stamp = snapshots::stamp(&self.store, events, None).await?;
        let shelf = config.shelf(Kind::Writer);
        snapshots::put(&shelf, stamp, encoded, started)
            .await
            .map(Some)
    }

    fn note_write(&self) {
        self.last_write.store(now_millis(), Ordering::Relaxed);
    }

    /// Whether `other` is this writer (a clone of it).
    pub fn same_as(&self, other: &Writer) -> bool {
        Arc::ptr_eq(&self.state, &other.state)
    }

    /// The store written to.
    pub fn store(&self) -> &AnyStore {
        &self.store
    }

    /// Brings `state` up to the store. On a store that queues appends this process is the only
    /// writer, so after the catch-up at open the state knows every event, unless a queued append
    /// failed: then it is rebuilt (the one place). On others it reads what others appended.
    async fn refresh(&self, state: &mut State) -> Result<(), ApiError> {
        if self.poisoned.swap(false, Ordering::SeqCst) {
            tracing::warn!("a queued append failed; rebuilding the writer's state from the store");
            *state = State::empty();
            self.catch_up(state).await?;
        } else if !self.store.queues_appends() {
            self.catch_up(state).await?;
        }
        Ok(())
    }

    /// What `command` would record, decided against the registry as it stands, recording
    /// nothing: the resource, the flags it brings, and for a holding's correction the flags of
    /// the holding before it.
    pub async fn preview(
        &self,
        grant: Option<&crate::access::Grant>,
        command: &Command,
    ) -> Result<Preview, ApiError> {
        let mut state = self.state.lock().await;
        self.refresh(&mut state).await?;
        permitted(grant, command, &state.registry)?;
        let decision = state.registry.decide(command, &self.policy)?;
        let flags_now = match command {
            Command::CorrectHolding { holding, .. } => state
                .registry
                .flags_of_holding(*holding, &self.policy)
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        Ok(Preview {
            name: resource_name(decision.events.first().and_then(subject)),
            warnings: decision.warnings,
            flags_now,
        })
    }

    /// Records `command` for `caller`, or returns the answer already given to its request id.
    ///
    /// Where appends are queued, one queued behind an append that failed was decided against
    /// a state that held the failed one's events; the store refuses it (its expected revision
    /// is past the stream's), nothing of it is stored, and it is decided again here against the
    /// state rebuilt from the store, as a conflict is.
    pub async fn execute(&self, caller: &Caller, command: &Command) -> Result<Answer, ApiError> {
        self.note_write();
        for _ in 0..MAX_ATTEMPTS {
            match self.execute_once(caller, command).await {
                Err(ApiError::Store {
                    source: StoreError::WrongExpectedRevision { .. },
                    ..
                }) if self.store.queues_appends() => {
                    tracing::debug!("queued behind an append that failed; deciding again");
                }
                answered => return answered,
            }
        }
        Err(ApiError::Contention(MAX_ATTEMPTS))
    }

    async fn execute_once(&self, caller: &Caller, command: &Command) -> Result<Answer, ApiError> {
        let mut round = self.round(&[(caller.clone(), command.clone())]).await?;
        if let Some((_, refused)) = round.refused {
            return Err(refused);
        }
        if let Some(replay) = round.replays.pop() {
            return replay.replayed().await;
        }
        let (Some((name, warnings)), Some(stored)) = (round.decided.pop(), round.stored) else {
            // The domain always records something for an accepted command.
            return Err(ApiError::Unavailable("the command recorded nothing".into()));
        };
        // Where appends are queued, the commit happens after the round: wait for it.
        let position = if self.store.queues_appends() {
            stored.instrument(tracing::info_span!("commit")).await?
        } else {
            stored.await?
        };
        Ok(Answer {
            name,
            position,
            warnings,
            replayed: false,
        })
    }

    /// Records a batch of commands in order, each decided against the registry as the commands
    /// before it left it.
    ///
    /// Stops at the first command refused (a broken rule or a malformed field): the commands
    /// before it are recorded, it and those after it are not, and [`BatchDecision::refused`]
    /// says which and why. A command whose request id is known is counted as replayed. Failures
    /// of the store are errors of the whole call.
    ///
    /// On a store that queues appends the batch is one append, queued, and the next batch is
    /// decided while it commits; on one that does not, the commands are appended one by one
    /// (see [`Writer::round`]).
    pub async fn execute_batch(
        &self,
        commands: &[(Caller, Command)],
    ) -> Result<BatchDecision, ApiError> {
        self.note_write();
        let per_round = if self.store.queues_appends() {
            commands.len().max(1)
        } else {
            1
        };
        let mut outcome = BatchDecision::default();
        let mut waits: Vec<Stored> = Vec::new();
        for (offset, chunk) in commands.chunks(per_round).enumerate() {
            let round = self.round(chunk).await?;
            outcome.recorded += round.decided.len();
            outcome.replayed += round.replays.len();
            outcome.warnings += round.decided.iter().map(|(_, w)| w.len()).sum::<usize>();
            // Queued by an earlier call and not yet stored: this batch is acknowledged only once
            // that append is (it may still fail).
            for replay in round.replays {
                if let Outcome::Pending { stored, .. } = replay {
                    waits.push(Box::pin(stored_once(stored)));
                }
            }
            waits.extend(round.stored);
            if let Some((index, refused)) = round.refused {
                outcome.refused = Some((offset * per_round + index, refused));
                break;
            }
        }
        if !waits.is_empty() {
            outcome.stored = Some(Box::pin(async move {
                let mut last = None;
                for wait in waits {
                    last = last.max(Some(wait.await?));
                }
                last.ok_or_else(|| ApiError::Unavailable("nothing to wait for".into()))
            }));
        }
        Ok(outcome)
    }

    /// One round of the write path: decides `commands` in order against the state (answering
    /// known request ids from memory), then appends what they record as one append with the
    /// exact expected revision.
    ///
    /// How the state learns the events depends on the store. One that queues appends
    /// ([`EventStore::queues_appends`]: this process is its only writer) gets them folded at
    /// once and the append queued; the lock is released before the commit, so the next round
    /// is decided while this one is written, and if the append fails the state, which folded
    /// events that were not stored, is rebuilt before the next decision ([`Writer::refresh`]).
    /// On one that does not (other processes append too), `commands` is one command, decided
    /// without folding, appended under the lock and folded once stored; when another process
    /// appended first the round catches up and decides again, up to [`MAX_ATTEMPTS`] times.
    async fn round(&self, commands: &[(Caller, Command)]) -> Result<Round, ApiError> {
        let ahead = self.store.queues_appends();
        debug_assert!(ahead || commands.len() <= 1);
        let mut state = self.state.lock().await;
        for _ in 0..MAX_ATTEMPTS {
            self.refresh(&mut state).await?;
            let first_revision = state.next_revision;
            let (done, stored) = watch::channel(None);
            let mut round = Round::default();
            let mut events = Vec::new();
            let mut later = Vec::new(); // Decisions to fold once stored (not ahead).
            let deciding = tracing::info_span!("decide", commands = commands.len()).entered();
            for (index, (caller, command)) in commands.iter().enumerate() {
                // Whether the caller may: against the registry as the commands before this
                // one left it (a unit an import establishes is known to its next record).
                if let Err(e) = permitted(caller.grant.as_ref(), command, &state.registry) {
                    round.refused = Some((index, e));
                    break;
                }
                let key = RequestKey::of(&caller.request_id);
                match state.requests.get(&key).map(|k| k.for_caller(caller)) {
                    Some(Ok(outcome)) => {
                        round.replays.push(outcome.clone());
                        continue;
                    }
                    Some(Err(e)) => {
                        round.refused = Some((index, e));
                        break;
                    }
                    None => {}
                }
                let decision = match state.registry.decide(command, &self.policy) {
                    Ok(decision) => decision,
                    Err(e) => {
                        round.refused = Some((index, e.into()));
                        break;
                    }
                };
                let Some(first) = decision.events.first() else {
                    round.refused = Some((
                        index,
                        ApiError::Unavailable("the command produced no events".into()),
                    ));
                    break;
                };
                let subject = subject(first);
                let new = new_events(caller, &decision.events);
                if let Err(e) = check_append(STREAM, &new, self.store.max_event_bytes()) {
                    round.refused = Some((index, e.into()));
                    break;
                }
                events.extend(new);
                if ahead {
                    for event in &decision.events {
                        state.registry.apply(event);
                    }
                    state.next_revision += decision.events.len() as u64;
                    let outcome = Outcome::Pending {
                        subject,
                        stored: stored.clone(),
                    };
                    state.requests.insert(key, Known::of(caller, outcome));
                } else {
                    later.push((key, caller, subject, decision.events));
                }
                round
                    .decided
                    .push((resource_name(subject), decision.warnings));
            }
            drop(deciding);
            if events.is_empty() {
                return Ok(round);
            }
            let expected = match first_revision {
                0 => ExpectedRevision::NoStream,
                n => ExpectedRevision::Exact(n - 1),
            };
            let queued = self.store.queue(STREAM, expected, events);
            if ahead {
                let queued = queued.inspect_err(|_| {
                    // The state folded the round: rebuild it before the next decision.
                    self.poisoned.store(true, Ordering::SeqCst);
                })?;
                drop(state);
                round.stored = Some(Box::pin(self.complete(queued, done)));
                return Ok(round);
            }
            let appended = match queued {
                Ok(queued) => {
                    queued
                        .instrument(tracing::info_span!("append", revision = first_revision))
                        .await
                }
                Err(e) => Err(e),
            };
            match appended {
                Ok(result) => {
                    for (key, caller, subject, events) in later {
                        for event in &events {
                            state.registry.apply(event);
                        }
                        let outcome = Outcome::Done {
                            subject,
                            position: result.position,
                        };
                        state.requests.insert(key, Known::of(caller, outcome));
                    }
                    state.next_revision = result.next_expected + 1;
                    round.stored = Some(Box::pin(std::future::ready(Ok(result.position))));
                    return Ok(round);
                }
                Err(StoreError::WrongExpectedRevision { .. }) => {
                    tracing::debug!("append lost a race; deciding again");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::Contention(MAX_ATTEMPTS))
    }

    /// Waits for a queued append, in a task of its own so that the outcome reaches the request
    /// map (through `done`) and the poison flag even if the caller stops waiting: the commands
    /// of the append are answered without taking the lock again, so the rounds queued behind
    /// it are not kept waiting.
    fn complete(
        &self,
        queued: Queued,
        done: watch::Sender<Option<Position>>,
    ) -> impl Future<Output = Result<Position, ApiError>> + Send + 'static {
        let poisoned = Arc::clone(&self.poisoned);
        let task = tokio::spawn(async move {
            match queued.await {
                Ok(result) => {
                    let _ = done.send(Some(result.position));
                    Ok(result.position)
                }
                Err(e) => {
                    // The state folded events that are not stored: rebuild it first thing.
                    poisoned.store(true, Ordering::SeqCst);
                    Err(ApiError::from(e))
                }
            }
        });
        async move {
            task.await.unwrap_or_else(|e| {
                Err(ApiError::Unavailable(format!(
                    "the append's outcome was lost ({e}); retry with the same request_id"
                )))
            })
        }
    }

    /// Folds what the stream gained since `state` was last brought up to date. While a full
    /// batch folds, the next is read and decoded on other threads, so a start keeps both cores
    /// busy.
    async fn catch_up(&self, state: &mut State) -> Result<(), ApiError> {
        let mut batch = read_decoded(self.store.clone(), state.next_revision).await?;
        loop {
            let DecodedBatch {
                events,
                failed,
                full,
            } = batch;
            let next = (full && failed.is_none()).then(|| {
                let from = events
                    .last()
                    .map_or(state.next_revision, |(r, _)| r.revision + 1);
                tokio::spawn(read_decoded(self.store.clone(), from))
            });
            for (recorded, event) in events {
                state.registry.apply(&event);
                state.next_revision = recorded.revision + 1;
                if let Some(request_id) = &recorded.metadata.request_id {
                    let key = RequestKey::of(request_id);
                    let known = state.requests.entry(key).or_insert_with(|| Known {
                        fingerprint: recorded
                            .metadata
                            .request_fingerprint
                            .as_deref()
                            .and_then(fingerprint_bytes),
                        outcome: Outcome::Done {
                            subject: subject(&event),
                            position: recorded.position,
                        },
                    });
                    if let Outcome::Done { position, .. } = &mut known.outcome {
                        *position = recorded.position;
                    }
                }
            }
            if let Some(e) = failed {
                return Err(e);
            }
            let Some(next) = next else { return Ok(()) };
            batch = next
                .await
                .map_err(|e| ApiError::Unavailable(format!("reading the stream stopped: {e}")))??;
        }
    }
}

/// Saves the state's snapshots when due ([`Snapshots`]: counted from the snapshot loaded at
/// `start`, or from none) and the writer has been quiet for [`QUIET`], until the writer is
/// dropped.
async fn keep_snapshots(writer: Writer, start: u64) {
    let Some(config) = writer.snapshots.clone() else {
        return;
    };
    let mut due = Due::from(start);
    loop {
        tokio::time::sleep(snapshots::LOOK_EVERY).await;
        if Arc::strong_count(&writer.state) <= 1 {
            return; // Only this task holds the writer.
        }
        let quiet = now_millis().saturating_sub(writer.last_write.load(Ordering::Relaxed));
        if quiet < QUIET.as_millis() as u64 {
            continue;
        }
        let events = match writer.state.try_lock() {
            Ok(state) => state.next_revision,
            Err(_) => continue,
        };
        if due.now(&config, events) {
            match writer.save_snapshot(true).await {
                Ok(Some(_)) => due = Due::from(events),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "the writer's snapshot was not saved"),
            }
        }
    }
}

/// How long the writer must have had no write before a periodic snapshot takes its lock.
const QUIET: std::time::Duration = std::time::Duration::from_secs(2);

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl State {
    /// Whether an append queued by this state is still being committed.
    fn appending(&self) -> bool {
        self.requests.values().any(|known| {
            matches!(&known.outcome, Outcome::Pending { stored, .. } if stored.borrow().is_none())
        })
    }

    /// The snapshot sections of a state with no append being committed, encoded on two
    /// threads: the persons, the holdings and the offices' lists of holdings as records
    /// ([`writer_records`]), the rest of the registry as MessagePack (field names kept: the
    /// domain's tagged enums need them), and the request ids' answers.
    fn encode(&self) -> Result<Vec<Vec<u8>>, rmp_serde::encode::Error> {
        let registry = &self.registry;
        std::thread::scope(|scope| {
            let persons = scope.spawn(|| {
                let persons = writer_records::encode_persons(registry);
                (persons, writer_records::encode_office_lists(registry))
            });
            let holdings = writer_records::encode_holdings(registry);
            let structure = rmp_serde::to_vec_named(&registry.structure())?;
            let requests = self.encode_requests();
            let (persons, office_lists) = persons
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            Ok(vec![persons, holdings, structure, office_lists, requests])
        })
    }

    /// Each request id's key, fingerprint, resource and commit position.
    fn encode_requests(&self) -> Vec<u8> {
        let mut out = records::Out::default();
        out.len(self.requests.len());
        for (key, known) in &self.requests {
            let (subject, position) = match &known.outcome {
                Outcome::Done { subject, position } => (*subject, *position),
                Outcome::Pending { subject, stored } => {
                    (*subject, stored.borrow().unwrap_or(Position::sequence(0)))
                }
            };
            out.0.extend_from_slice(&key.0);
            match known.fingerprint {
                Some(fingerprint) => {
                    out.u8(1);
                    out.0.extend_from_slice(&fingerprint);
                }
                None => out.u8(0),
            }
            match subject {
                Some(subject) => {
                    out.u8(1 + subject.code());
                    out.uuid(subject.uuid());
                }
                None => out.u8(0),
            }
            let [commit, prepare] = <[u64; 2]>::from(position);
            out.u64(commit);
            out.u64(prepare);
        }
        out.0
    }

    fn decode_requests(
        input: &mut records::In<impl std::io::Read>,
    ) -> Result<HashMap<RequestKey, Known>, Damaged> {
        let n = input.len(16 + 1 + 1 + 16)?;
        let mut requests = HashMap::with_capacity(n);
        for _ in 0..n {
            let key = RequestKey(input.bytes16()?);
            let fingerprint = match input.u8()? {
                0 => None,
                1 => Some(input.bytes16()?),
                _ => return Err(Damaged("invalid fingerprint flag")),
            };
            let subject = match input.u8()? {
                0 => None,
                code => Some(
                    EntityRef::from_code(code - 1, input.uuid()?)
                        .ok_or(Damaged("invalid subject kind"))?,
                ),
            };
            let position = Position::from([input.u64()?, input.u64()?]);
            let outcome = Outcome::Done { subject, position };
            requests.insert(
                key,
                Known {
                    fingerprint,
                    outcome,
                },
            );
        }
        Ok(requests)
    }

    /// A state from its snapshot file, decoded on two threads as its sections are read.
    fn load(path: &std::path::Path) -> Result<(Stamp, Self), SnapshotError> {
        let sections = snapshot::open(path, Kind::Writer)?;
        sections.expect(5, "the writer's state")?;
        let stamp = sections.stamp();
        let (persons, holdings, structure, office_lists, requests) = std::thread::scope(|scope| {
            let persons = scope.spawn(|| sections.records(0, writer_records::decode_persons));
            let holdings = sections.records(1, writer_records::decode_holdings);
            let structure = sections.read(2).and_then(|bytes| {
                rmp_serde::from_slice::<Structure>(&bytes)
                    .map_err(|e| SnapshotError::Body(e.to_string()))
            });
            let office_lists = sections.records(3, writer_records::decode_office_lists);
            let requests = sections.records(4, Self::decode_requests);
            let persons = persons
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (persons, holdings, structure, office_lists, requests)
        });
        let registry = Registry::from_parts(persons?, holdings?, structure?, office_lists?)
            .map_err(|office| {
                SnapshotError::Body(format!("a list of holdings of an unknown office {office}"))
            })?;
        let state = Self {
            registry,
            next_revision: stamp.events,
            requests: requests?,
        };
        Ok((stamp, state))
    }
}

/// What one round of the write path did ([`Writer::round`]).
#[derive(Default)]
struct Round {
    /// The commands recorded, in order: the resource each is about and the flags it brings.
    decided: Vec<(String, Vec<Irregularity>)>,
    /// The outcomes already known for the commands whose request id was.
    replays: Vec<Outcome>,
    /// The first command refused, by its index, and why; those after it were not looked at.
    refused: Option<(usize, ApiError)>,
    /// The commit of what was recorded.
    stored: Option<Stored>,
}

/// What a write would record ([`Writer::preview`]).
#[derive(Clone, Debug, Default)]
pub struct Preview {
    /// The resource it is about.
    pub name: String,
    /// The flags it would bring.
    pub warnings: Vec<Irregularity>,
    /// For a holding's correction: the holding's flags before it.
    pub flags_now: Vec<Irregularity>,
}

/// What [`Writer::execute_batch`] did.
#[derive(Default)]
pub struct BatchDecision {
    /// Commands recorded (appended, or queued to be).
    pub recorded: usize,
    /// Commands whose request id was already recorded: nothing appended for them.
    pub replayed: usize,
    /// Irregularities the recorded commands bring.
    pub warnings: usize,
    /// The first command refused, by its index in the batch, and why; the commands after it
    /// were not looked at.
    pub refused: Option<(usize, ApiError)>,
    /// The commit position of the recorded commands, once stored (`None` when nothing was
    /// recorded). It must be awaited before the import is acknowledged.
    pub stored: Option<Stored>,
}

/// The commit of a batch's append, to await.
pub type Stored = Pin<Box<dyn Future<Output = Result<Position, ApiError>> + Send>>;

/// Waits until the queued append behind `pending` is stored; its position. An append that
/// failed fails this too: its commands were not recorded.
async fn stored_once(mut pending: watch::Receiver<Option<Position>>) -> Result<Position, ApiError> {
    let position = pending.wait_for(Option::is_some).await.map_err(|_| {
        ApiError::Unavailable("the first request with this request_id failed; send it again".into())
    })?;
    Ok(position.unwrap_or(Position::sequence(0)))
}

/// The events of one decided command, to append, each with the caller's metadata (the first
/// with the request's fingerprint: the one a restart reads it from).
fn new_events(caller: &Caller, events: &[Event]) -> Vec<NewEvent> {
    let metadata = Metadata {
        actor: Arc::from(caller.actor.as_str()),
        request_id: Some(caller.request_id.clone()),
        correlation_id: caller.correlation_id.clone(),
        request_fingerprint: None,
    };
    events
        .iter()
        .enumerate()
        .map(|(i, event)| NewEvent {
            id: event_id(),
            event_type: event.type_name().to_owned(),
            schema_version: event.schema_version(),
            payload: event.encode(),
            metadata: Metadata {
                request_fingerprint: (i == 0).then(|| caller.fingerprint.clone()),
                ..metadata.clone()
            },
        })
        .collect()
}

/// A new event's id: a UUID v7 (the time in milliseconds, then random bits). The random bits
/// come from a per-thread generator seeded once from the system's, not from a system call per
/// event: ids need to be unique, not secret, and an import makes millions of them.
fn event_id() -> uuid::Uuid {
    use rand::{Rng, SeedableRng};
    thread_local! {
        static RNG: std::cell::RefCell<rand::rngs::SmallRng> = std::cell::RefCell::new(
            rand::rngs::SmallRng::seed_from_u64(uuid::Uuid::now_v7().as_u64_pair().1),
        );
    }
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let random: [u8; 10] = RNG.with(|rng| rng.borrow_mut().random());
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

/// A request fingerprint's bytes, from its 32 hex digits.
fn fingerprint_bytes(hex: &str) -> Option<[u8; 16]> {
    let mut bytes = [0u8; 16];
    if hex.len() != 32 {
        return None;
    }
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(bytes)
}

/// The resource an event is about: its first subject.
fn subject(event: &Event) -> Option<EntityRef> {
    event.subjects().first().copied()
}

/// The resource a write is about (the subject of its first event), as a resource name.
fn resource_name(subject: Option<EntityRef>) -> String {
    subject
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// Loads the writer's snapshot file at `path` as a start would, then drops it: the events it
/// covers, or why it cannot be used (for checks of damaged files; a start skips such a file).
pub fn load_snapshot(path: &std::path::Path) -> Result<u64, SnapshotError> {
    State::load(path).map(|(stamp, _)| stamp.events)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::feed::CATCH_UP_BATCH;
    use registry_eventstore::{EmbeddedConfig, EmbeddedStore};

    #[test]
    fn a_fingerprint_is_kept_as_its_bytes() {
        let hex = "000102030405060708090a0b0c0d0eff";
        let bytes = fingerprint_bytes(hex).unwrap();
        assert_eq!((bytes[1], bytes[15]), (1, 0xff));
        assert_eq!(fingerprint_bytes("00ff"), None);
        assert_eq!(fingerprint_bytes(&"zz".repeat(16)), None);
    }

    #[tokio::test]
    async fn a_catch_up_over_several_batches_folds_every_event_and_remembers_every_request() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            EmbeddedStore::open(EmbeddedConfig::new(dir.path().join("registry.db"))).unwrap();
        let config = registry_testkit::Config {
            districts_per_province: 6,
            ..registry_testkit::Config::tiny(7)
        };
        let facts = registry_testkit::generate(&config).facts;
        // Several full batches, read ahead one after the other, and a short one.
        assert!(
            facts.len() > 2 * CATCH_UP_BATCH + 1,
            "{} events",
            facts.len()
        );
        for (n, chunk) in facts.chunks(500).enumerate() {
            let events = chunk
                .iter()
                .enumerate()
                .map(|(i, fact)| NewEvent {
                    id: event_id(),
                    event_type: fact.event.type_name().to_owned(),
                    schema_version: fact.event.schema_version(),
                    payload: fact.event.encode(),
                    metadata: Metadata {
                        actor: "test".into(),
                        // One request per chunk, named on each of its events.
                        request_id: (i == 0 || n % 2 == 0).then(|| format!("request {n}")),
                        correlation_id: None,
                        request_fingerprint: None,
                    },
                })
                .collect();
            store
                .append(STREAM, ExpectedRevision::Any, events)
                .await
                .unwrap();
        }
        let writer = Writer::open(AnyStore::Embedded(store), Policy::default())
            .await
            .unwrap();
        let state = writer.state.lock().await;
        assert_eq!(state.next_revision, facts.len() as u64);
        assert!(state.registry == Registry::from_events(facts.iter().map(|f| &f.event)));
        assert_eq!(state.requests.len(), facts.len().div_ceil(500));

        // Saved and loaded, the state is the same registry with the same answers.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("writer.snap");
        let stamp = Stamp {
            position: [9, 9],
            events: state.next_revision,
            last_event: uuid::Uuid::nil(),
        };
        snapshot::write(&path, Kind::Writer, stamp, &state.encode().unwrap()).unwrap();
        let (loaded_stamp, loaded) = State::load(&path).unwrap();
        assert_eq!(loaded_stamp, stamp);
        assert_eq!(loaded.next_revision, state.next_revision);
        assert!(loaded.registry == state.registry);
        let answers = |s: &State| {
            let mut all: Vec<String> = s
                .requests
                .iter()
                .map(|(key, known)| match &known.outcome {
                    Outcome::Done { subject, position } => {
                        format!("{key:?} {:?} {subject:?} {position}", known.fingerprint)
                    }
                    Outcome::Pending { .. } => format!("{key:?} pending"),
                })
                .collect();
            all.sort();
            all
        };
        assert_eq!(answers(&loaded), answers(&state));
    }

    /// A queued append that fails (a real fault: another connection holds SQLite's write lock
    /// past the store's busy timeout) leaves a state that folded events never stored; the next
    /// write finds it rebuilt from the store: the lost persons unknown, their request ids new.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_queued_append_leaves_the_state_rebuilt_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.db");
        let store = EmbeddedStore::open(EmbeddedConfig::new(path.clone())).unwrap();
        let writer = Writer::open(AnyStore::Embedded(store.clone()), Policy::default())
            .await
            .unwrap();
        let caller = |id: &str| Caller {
            actor: "test".into(),
            request_id: id.into(),
            correlation_id: None,
            fingerprint: format!("{:032x}", id.len()),
            grant: None,
        };
        let person = |name: &str| Command::RegisterPerson {
            person: registry_domain::PersonId::from_uuid(uuid::Uuid::now_v7()),
            name: name.into(),
            aliases: Vec::new(),
            birth: None,
        };
        let kept = writer
            .execute(&caller("kept"), &person("Kept Before"))
            .await
            .unwrap();
        let blocker = rusqlite::Connection::open(&path).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let lost = [person("Lost One"), person("Lost Two")];
        let callers = [caller("lost-1"), caller("lost-2")];
        let (one, two) = tokio::join!(
            writer.execute(&callers[0], &lost[0]),
            writer.execute(&callers[1], &lost[1]),
        );
        assert!(one.is_err() && two.is_err(), "{one:?} {two:?}");
        blocker.execute_batch("ROLLBACK").unwrap();
        drop(blocker);
        // Recorded again under the same request ids and ids: new records, not replays, and not
        // refused as already existing.
        for (id, command) in [("lost-1", &lost[0]), ("lost-2", &lost[1])] {
            let answer = writer.execute(&caller(id), command).await.unwrap();
            assert!(!answer.replayed, "{answer:?}");
        }
        let replayed = writer
            .execute(&caller("kept"), &person("Kept Before"))
            .await
            .unwrap();
        assert!(replayed.replayed);
        assert_eq!(replayed.position, kept.position);
        let stored = store
            .read_stream(STREAM, 0, registry_eventstore::Direction::Forwards, 100)
            .await
            .unwrap();
        assert_eq!(stored.len(), 3);
        let events: Vec<Event> = stored
            .iter()
            .map(|r| crate::feed::decode(r).unwrap())
            .collect();
        let state = writer.state.lock().await;
        assert!(state.registry == Registry::from_events(&events));
        assert_eq!(state.next_revision, 3);
    }

    #[test]
    fn event_ids_are_distinct_version_7_uuids_in_time_order() {
        let ids: Vec<uuid::Uuid> = (0..10_000).map(|_| super::event_id()).collect();
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        assert!(ids.iter().all(|id| id.get_version_num() == 7));
        let millis = |id: &uuid::Uuid| id.get_timestamp().map(|t| t.to_unix());
        assert!(ids.windows(2).all(|w| millis(&w[0]) <= millis(&w[1])));
    }
}
