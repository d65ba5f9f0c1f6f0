//! The event store: an append-only log of events in named streams, with one global, ordered feed.
//!
//! Every service reaches storage through the [`EventStore`] trait, implemented by three backends:
//!
//! - [`embedded`]: SQLite in one file (WAL, `synchronous=FULL`), one writer thread doing group
//!   commit. The default: `cargo run` needs no server.
//! - [`postgres`]: a shared PostgreSQL database, for many service instances. A subscriber's feed
//!   stays gap-free and ordered although transactions commit out of sequence order (see the
//!   module docs for the `xid8` technique).
//! - [`kurrent`]: EventStoreDB/KurrentDB through the official `kurrentdb` client.
//!
//! One conformance suite (`tests/conformance/mod.rs`) runs against every backend.
//!
//! The embedded and PostgreSQL stores also keep the feed's verifiable log ([`log`]: its hashes
//! and signed checkpoints beside the events), which [`verify`] checks offline.
//!
//! # Positions
//!
//! A [`Position`] orders the global feed. Like EventStoreDB's, it has two parts, compared
//! lexicographically: embedded uses its commit sequence for both; PostgreSQL uses the writing
//! transaction's id and the row's sequence number; KurrentDB uses its own commit and prepare
//! positions. Positions are opaque to callers except for ordering and their text form.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use registry_ledger::{Hash, NodeId};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

pub mod any;
pub mod backup;
pub mod embedded;
pub mod kurrent;
pub mod log;
pub mod metrics;
pub mod postgres;
pub mod verify;

pub use any::AnyStore;
pub use embedded::{Durability, EmbeddedConfig, EmbeddedStore};
pub use kurrent::KurrentStore;
pub use log::{LogKeyError, LogSigner, StoredCheckpoint};
pub use postgres::{PostgresConfig, PostgresStore, Sessions};

/// The largest payload accepted for one event unless configured otherwise: 1 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

/// The longest stream name accepted, in bytes.
pub const MAX_STREAM_NAME_BYTES: usize = 512;

/// A place in the global feed. Ordered; the first event of the feed has the smallest position.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    /// The major part: commit sequence (embedded), transaction id (PostgreSQL) or commit
    /// position (KurrentDB).
    pub commit: u64,
    /// The minor part: the same sequence (embedded), row sequence (PostgreSQL) or prepare
    /// position (KurrentDB).
    pub prepare: u64,
}

impl Position {
    /// A position whose two parts are one sequence number (the embedded store's).
    pub const fn sequence(n: u64) -> Self {
        Self {
            commit: n,
            prepare: n,
        }
    }
}

/// A position as two numbers (commit, prepare), as snapshots keep it.
impl From<[u64; 2]> for Position {
    fn from([commit, prepare]: [u64; 2]) -> Self {
        Self { commit, prepare }
    }
}

impl From<Position> for [u64; 2] {
    fn from(position: Position) -> Self {
        [position.commit, position.prepare]
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.commit == self.prepare {
            write!(f, "{}", self.commit)
        } else {
            write!(f, "{}.{}", self.commit, self.prepare)
        }
    }
}

impl fmt::Debug for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a text is not a [`Position`].
#[derive(Debug, Error)]
#[error("{0:?} is not a position: expected N or N.M")]
pub struct PositionParseError(String);

impl FromStr for Position {
    type Err = PositionParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PositionParseError(s.to_owned());
        match s.split_once('.') {
            None => s.parse().map(Self::sequence).map_err(|_| bad()),
            Some((c, p)) => Ok(Self {
                commit: c.parse().map_err(|_| bad())?,
                prepare: p.parse().map_err(|_| bad())?,
            }),
        }
    }
}

/// What the writer expects of the stream it appends to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedRevision {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this revision (0 for the first event).
    Exact(u64),
}

impl fmt::Display for ExpectedRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(r) => write!(f, "revision {r}"),
        }
    }
}

/// Who caused an event and within which request, stored beside it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The authenticated caller (a registrar's account, an agency's system). Shared, because
    /// feeds repeat the same few actors over and over.
    pub actor: Arc<str>,
    /// The request that produced the event (idempotency key of the service call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The correlation id of the wider operation (an import, a reorganisation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// A digest of the request that produced the event (its RPC and payload), so that a
    /// `request_id` reused for another request is told apart from a retry, after restarts too.
    /// Carried by the first event of each request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_fingerprint: Option<String>,
}

/// An event to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// A unique id (UUID v7).
    pub id: Uuid,
    /// The stable type name.
    pub event_type: String,
    /// The schema version of the payload.
    pub schema_version: u16,
    /// The payload (JSON for the registry's events, but the store does not care).
    pub payload: Vec<u8>,
    /// Who and within which request.
    pub metadata: Metadata,
}

impl NewEvent {
    /// The event as a leaf of the verifiable log once stored at `position` in `stream`, with
    /// `revision` and `recorded_at`: what [`RecordedEvent::leaf`] will say of it.
    pub fn leaf<'a>(
        &'a self,
        stream: &'a str,
        position: Position,
        revision: u64,
        recorded_at: i64,
    ) -> registry_ledger::Leaf<'a> {
        registry_ledger::Leaf {
            position: (position.commit, position.prepare),
            stream,
            revision,
            id: *self.id.as_bytes(),
            event_type: &self.event_type,
            schema_version: self.schema_version,
            payload: &self.payload,
            actor: &self.metadata.actor,
            request_id: self.metadata.request_id.as_deref(),
            correlation_id: self.metadata.correlation_id.as_deref(),
            request_fingerprint: self.metadata.request_fingerprint.as_deref(),
            recorded_at,
        }
    }
}

/// An event as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Its place in the global feed.
    pub position: Position,
    /// The stream it belongs to (shared: a feed repeats the same streams).
    pub stream: Arc<str>,
    /// Its revision in the stream, from 0.
    pub revision: u64,
    /// Its id.
    pub id: Uuid,
    /// Its type name (shared: a feed repeats the same types).
    pub event_type: Arc<str>,
    /// Its schema version.
    pub schema_version: u16,
    /// Its payload.
    pub payload: Vec<u8>,
    /// Who and within which request.
    pub metadata: Metadata,
    /// Recorded time: when the store committed it, in microseconds since the Unix epoch (UTC).
    pub recorded_at: i64,
}

impl RecordedEvent {
    /// The event as a leaf of the verifiable log: everything stored of it, in the ledger's
    /// canonical layout.
    pub fn leaf(&self) -> registry_ledger::Leaf<'_> {
        registry_ledger::Leaf {
            position: (self.position.commit, self.position.prepare),
            stream: &self.stream,
            revision: self.revision,
            id: *self.id.as_bytes(),
            event_type: &self.event_type,
            schema_version: self.schema_version,
            payload: &self.payload,
            actor: &self.metadata.actor,
            request_id: self.metadata.request_id.as_deref(),
            correlation_id: self.metadata.correlation_id.as_deref(),
            request_fingerprint: self.metadata.request_fingerprint.as_deref(),
            recorded_at: self.recorded_at,
        }
    }
}

/// The outcome of an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendResult {
    /// The revision of the stream's last event after the append.
    pub next_expected: u64,
    /// The position of the last appended event: the commit position a reader can wait for.
    pub position: Position,
}

/// Reading direction within a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the given revision up.
    Forwards,
    /// From the given revision down.
    Backwards,
}

/// Why a store operation failed.
#[derive(Clone, Debug, Error)]
pub enum StoreError {
    /// The stream was not at the expected revision. Nothing was appended.
    #[error("stream {stream:?}: expected {expected}, but the stream is at {}", actual.map_or("no stream".to_owned(), |r| format!("revision {r}")))]
    WrongExpectedRevision {
        /// The stream.
        stream: String,
        /// What the writer expected.
        expected: ExpectedRevision,
        /// The stream's actual last revision.
        actual: Option<u64>,
    },
    /// An event is larger than the store accepts. Nothing was appended.
    #[error("event {index} of the append is {size} bytes; the limit is {limit}")]
    EventTooLarge {
        /// Its index in the append.
        index: usize,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// An event id already exists in the store. Nothing was appended.
    #[error("event id {0} is already stored")]
    DuplicateEventId(Uuid),
    /// The stream name is empty, too long or has control characters.
    #[error("invalid stream name {0:?}: {1}")]
    InvalidStreamName(String, &'static str),
    /// The append has no events.
    #[error("an append needs at least one event")]
    EmptyAppend,
    /// Another process holds the store.
    #[error("the store at {0} is in use by another process")]
    Locked(String),
    /// The backend failed (I/O, connection, server). Whether the append happened is unknown
    /// only if `uncertain` says so.
    #[error("store backend failed: {message}")]
    Backend {
        /// What happened.
        message: String,
        /// Whether a write may have happened despite the error.
        uncertain: bool,
    },
    /// The store's disk (or the database server's) is full. Nothing was appended.
    #[error("the store has no space left: {0}")]
    Full(String),
    /// The store has been closed.
    #[error("the store is closed")]
    Closed,
    /// This backend does not have what was asked for (KurrentDB keeps no verifiable log).
    #[error("this store does not keep {0}")]
    Unsupported(&'static str),
}

impl StoreError {
    pub(crate) fn backend(message: impl fmt::Display) -> Self {
        Self::Backend {
            message: message.to_string(),
            uncertain: false,
        }
    }
}

/// Checks a stream name: not empty, at most [`MAX_STREAM_NAME_BYTES`], no control characters.
/// Any Unicode is fine (Vietnamese names included).
pub fn check_stream_name(stream: &str) -> Result<(), StoreError> {
    let problem = if stream.is_empty() {
        Some("must not be empty")
    } else if stream.len() > MAX_STREAM_NAME_BYTES {
        Some("is longer than 512 bytes")
    } else if stream.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else {
        None
    };
    match problem {
        Some(p) => Err(StoreError::InvalidStreamName(
            stream.chars().take(64).collect(),
            p,
        )),
        None => Ok(()),
    }
}

/// Checks an append before it reaches the backend: a valid stream, some events, none too large.
pub fn check_append(
    stream: &str,
    events: &[NewEvent],
    max_event_bytes: usize,
) -> Result<(), StoreError> {
    check_stream_name(stream)?;
    if events.is_empty() {
        return Err(StoreError::EmptyAppend);
    }
    for (index, event) in events.iter().enumerate() {
        let size = event.payload.len()
            + event.event_type.len()
            + event.metadata.actor.len()
            + event.metadata.request_id.as_ref().map_or(0, String::len)
            + event
                .metadata
                .correlation_id
                .as_ref()
                .map_or(0, String::len);
        if size > max_event_bytes {
            return Err(StoreError::EventTooLarge {
                index,
                size,
                limit: max_event_bytes,
            });
        }
    }
    Ok(())
}

/// An append queued to commit later ([`EventStore::queue`]), and how it went.
pub type Queued = std::pin::Pin<Box<dyn Future<Output = Result<AppendResult, StoreError>> + Send>>;

/// The storage every service uses. Handles are cheap to clone and share one backend.
pub trait EventStore: Clone + Send + Sync + 'static {
    /// Whether appends are queued ([`EventStore::queue`]) rather than made when awaited: then
    /// this process is the store's only writer, nothing can come between two appends it
    /// queues, and a writer may fold an append's events and decide the next before it commits.
    fn queues_appends(&self) -> bool {
        false
    }

    /// The largest event the store takes, in bytes (payload and metadata).
    fn max_event_bytes(&self) -> usize {
        DEFAULT_MAX_EVENT_BYTES
    }

    /// An append to await: queued now, committed after those queued before it and with others
    /// in one transaction (group commit) on a store that queues appends
    /// ([`EventStore::queues_appends`]); made when awaited on one that does not. Events the
    /// store would refuse outright are refused now.
    fn queue(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<Queued, StoreError> {
        check_append(stream, &events, self.max_event_bytes())?;
        let (store, stream) = (self.clone(), stream.to_owned());
        Ok(Box::pin(async move {
            store.append(&stream, expected, events).await
        }))
    }

    /// Appends events to a stream, atomically, if the stream is at `expected`.
    fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<AppendResult, StoreError>> + Send;

    /// Reads up to `limit` events of a stream from revision `from` in `direction`.
    /// A stream that does not exist reads as empty.
    fn read_stream(
        &self,
        stream: &str,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// Reads up to `limit` events of the global feed strictly after `after` (from the start
    /// when `None`), in feed order. Only events no earlier event can still precede are returned:
    /// the feed never has gaps that fill in later.
    fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// The events of `stream` at these revisions (ascending), in order; revisions the stream
    /// does not have are left out. Backends read them in one query where they can; this default
    /// reads each run of consecutive revisions with [`EventStore::read_stream`].
    fn read_revisions(
        &self,
        stream: &str,
        revisions: &[u64],
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send {
        async move {
            let mut events = Vec::with_capacity(revisions.len());
            let mut i = 0;
            while i < revisions.len() {
                let mut run = 1;
                while i + run < revisions.len() && revisions[i + run] == revisions[i] + run as u64 {
                    run += 1;
                }
                events.extend(
                    self.read_stream(stream, revisions[i], Direction::Forwards, run)
                        .await?,
                );
                i += run;
            }
            Ok(events)
        }
    }

    /// The events of `stream` at these revisions (ascending), each given with the position the
    /// caller saw it at in the feed, in order; events the stream does not have at that revision
    /// and position are left out. A backend may find an event faster by its position (the
    /// embedded store: one lookup of its row instead of an index lookup and then the row);
    /// this default reads by revision with [`EventStore::read_revisions`].
    fn read_seen(
        &self,
        stream: &str,
        seen: &[(u64, Position)],
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send {
        async move {
            let revisions: Vec<u64> = seen.iter().map(|(revision, _)| *revision).collect();
            let mut events = self.read_revisions(stream, &revisions).await?;
            // The same answer on every backend: an event found by revision at another position
            // than the caller saw is not the one asked for.
            let at: std::collections::HashMap<u64, Position> = seen.iter().copied().collect();
            events.retain(|e| at.get(&e.revision) == Some(&e.position));
            Ok(events)
        }
    }

    /// The position of the last event of the feed, `None` when empty.
    fn head(&self) -> impl Future<Output = Result<Option<Position>, StoreError>> + Send;

    /// The event at `position`, if the feed has one there.
    fn read_at(
        &self,
        position: Position,
    ) -> impl Future<Output = Result<Option<RecordedEvent>, StoreError>> + Send {
        let _ = position;
        async { Err(StoreError::Unsupported("reads by position")) }
    }

    /// The hashes the feed's verifiable log holds of these complete subtrees ([`log`]); ids
    /// it does not hold are left out.
    fn log_nodes(
        &self,
        ids: Vec<NodeId>,
    ) -> impl Future<Output = Result<HashMap<NodeId, Hash>, StoreError>> + Send {
        let _ = ids;
        async { Err(StoreError::Unsupported("a verifiable log")) }
    }

    /// The log's newest signed checkpoint (`size` `None`), or the one of exactly `size` leaves.
    fn log_checkpoint(
        &self,
        size: Option<u64>,
    ) -> impl Future<Output = Result<Option<StoredCheckpoint>, StoreError>> + Send {
        let _ = size;
        async { Err(StoreError::Unsupported("a verifiable log")) }
    }

    /// Replaces the note of the checkpoint of `size` leaves by `note` (the same checkpoint with
    /// witnesses' cosignatures added), if it is still `was`; answers whether it was.
    fn log_cosign(
        &self,
        size: u64,
        was: String,
        note: String,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let _ = (size, was, note);
        async { Err(StoreError::Unsupported("a verifiable log")) }
    }

    /// The leaf index of the event at `position` in the log, once it is integrated.
    fn log_index(
        &self,
        position: Position,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        let _ = position;
        async { Err(StoreError::Unsupported("a verifiable log")) }
    }

    /// The position of the event at leaf `index` of the log, once it is integrated.
    fn log_position(
        &self,
        index: u64,
    ) -> impl Future<Output = Result<Option<Position>, StoreError>> + Send {
        let _ = index;
        async { Err(StoreError::Unsupported("a verifiable log")) }
    }

    /// A notification that the feed may have grown. Backends without push notification tick
    /// on a timer.
    fn feed_changes(&self) -> watch::Receiver<u64>;

    /// Follows the feed from after `after`: catch-up, then live. Every event is delivered once,
    /// in feed order, with no gaps; a slow consumer slows the producer (bounded buffer).
    fn subscribe(&self, after: Option<Position>) -> Subscription {
        Subscription::spawn(self.clone(), after)
    }
}

/// How many events a subscription reads at once. A batch's vector (about 180 bytes an event)
/// stays under mimalloc's 512 KiB huge-object size, so it is reused instead of mapped afresh
/// (page faults of a national start: 205k with 4096, 155k with 2048).
const SUBSCRIPTION_BATCH: usize = 2048;

/// How many batches a subscription buffers ahead of its consumer.
pub(crate) const SUBSCRIPTION_BUFFER: usize = 4;

/// A live follower of the global feed. Dropping it stops the producer.
///
/// A producer task reads the feed in batches and hands them over a bounded channel, so reading
/// the next batch overlaps with the consumer's work on this one, and a slow consumer makes the
/// producer wait (back-pressure) rather than buffer without bound.
pub struct Subscription {
    batches: mpsc::Receiver<Result<Vec<RecordedEvent>, StoreError>>,
    current: std::vec::IntoIter<RecordedEvent>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscription {
    fn spawn<S: EventStore>(store: S, after: Option<Position>) -> Self {
        let (tx, batches) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let task = tokio::spawn(async move {
            let mut changes = store.feed_changes();
            let mut last = after;
            loop {
                changes.borrow_and_update();
                let read = async {
                    #[cfg(feature = "failpoints")]
                    fail::fail_point!("feed.read", |_| Err(StoreError::backend(
                        "injected: the feed could not be read"
                    )));
                    store.read_all(last, SUBSCRIPTION_BATCH).await
                };
                let batch = match read.await {
                    Ok(batch) => batch,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                let Some(tail) = batch.last() else {
                    // Wait for a change, but re-read at least every 100 ms: some backends can only
                    // release events when unrelated transactions end.
                    let _ =
                        tokio::time::timeout(Duration::from_millis(100), changes.changed()).await;
                    if tx.is_closed() {
                        return;
                    }
                    continue;
                };
                last = Some(tail.position);
                if tx.send(Ok(batch)).await.is_err() {
                    return;
                }
            }
        });
        Self::from_parts(batches, task)
    }

    /// A subscription fed by a backend's own producer task.
    pub(crate) fn from_parts(
        batches: mpsc::Receiver<Result<Vec<RecordedEvent>, StoreError>>,
        task: tokio::task::JoinHandle<()>,
    ) -> Self {
        Self {
            batches,
            current: Vec::new().into_iter(),
            task,
        }
    }

    /// The next event; `None` only if the store closed. An error ends the subscription.
    pub async fn next(&mut self) -> Option<Result<RecordedEvent, StoreError>> {
        loop {
            if let Some(event) = self.current.next() {
                return Some(Ok(event));
            }
            match self.batches.recv().await? {
                Ok(batch) => self.current = batch.into_iter(),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Turns repeated texts of a feed into shared strings: consecutive rows mostly repeat the
/// stream, type and actor of the row before, so comparing with the last one avoids most
/// allocations without hashing.
#[derive(Default)]
pub(crate) struct Interner {
    last: Vec<Arc<str>>,
}

impl Interner {
    /// The shared string for `text` in slot `slot` (one slot per column).
    pub(crate) fn get(&mut self, slot: usize, text: &str) -> Arc<str> {
        if self.last.len() <= slot {
            self.last.resize(slot + 1, Arc::from(""));
        }
        if &*self.last[slot] != text {
            self.last[slot] = Arc::from(text);
        }
        self.last[slot].clone()
    }
}

/// Unix microseconds now.
pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
