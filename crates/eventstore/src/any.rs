//! [`AnyStore`]: one of the backends, chosen at run time.
//!
//! [`EventStore`] returns `impl Future`, so it cannot be a trait object; services that pick the
//! backend from their configuration hold this enum, which forwards every call.

use std::collections::HashMap;

use registry_ledger::{Hash, NodeId};
use tokio::sync::watch;

use crate::{
    AppendResult, Direction, EmbeddedStore, EventStore, ExpectedRevision, KurrentStore, NewEvent,
    Position, PostgresStore, Queued, RecordedEvent, StoreError, StoredCheckpoint, Subscription,
};

/// One of the event store backends.
#[derive(Clone)]
pub enum AnyStore {
    /// SQLite in one file.
    Embedded(EmbeddedStore),
    /// A shared PostgreSQL database.
    Postgres(PostgresStore),
    /// EventStoreDB / KurrentDB.
    Kurrent(KurrentStore),
}

impl AnyStore {
    /// The backend's name: `embedded`, `postgres` or `kurrentdb`.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Embedded(_) => "embedded",
            Self::Postgres(_) => "postgres",
            Self::Kurrent(_) => "kurrentdb",
        }
    }

    /// Closes the store at a planned stop, after the last write: the embedded writer commits
    /// what is queued and signs the log's last checkpoint; PostgreSQL's integrator (when this
    /// process holds it) integrates what is committed and signs a checkpoint covering it.
    pub async fn close(&self) {
        match self {
            Self::Embedded(store) => store.close(),
            Self::Postgres(store) => store.close().await,
            Self::Kurrent(_) => {}
        }
    }
}

macro_rules! forward {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Embedded($store) => $call,
            AnyStore::Postgres($store) => $call,
            AnyStore::Kurrent($store) => $call,
        }
    };
}

impl EventStore for AnyStore {
    fn queues_appends(&self) -> bool {
        forward!(self, s => s.queues_appends())
    }

    fn max_event_bytes(&self) -> usize {
        forward!(self, s => s.max_event_bytes())
    }

    fn queue(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<Queued, StoreError> {
        forward!(self, s => s.queue(stream, expected, events))
    }

    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        forward!(self, s => s.append(stream, expected, events).await)
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        forward!(self, s => s.read_stream(stream, from, direction, limit).await)
    }

    async fn read_revisions(
        &self,
        stream: &str,
        revisions: &[u64],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        forward!(self, s => s.read_revisions(stream, revisions).await)
    }

    async fn read_seen(
        &self,
        stream: &str,
        seen: &[(u64, Position)],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        forward!(self, s => s.read_seen(stream, seen).await)
    }

    async fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        forward!(self, s => s.read_all(after, limit).await)
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        forward!(self, s => s.head().await)
    }

    async fn read_at(&self, position: Position) -> Result<Option<RecordedEvent>, StoreError> {
        forward!(self, s => s.read_at(position).await)
    }

    async fn log_nodes(&self, ids: Vec<NodeId>) -> Result<HashMap<NodeId, Hash>, StoreError> {
        forward!(self, s => s.log_nodes(ids).await)
    }

    async fn log_checkpoint(
        &self,
        size: Option<u64>,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        forward!(self, s => s.log_checkpoint(size).await)
    }

    async fn log_cosign(&self, size: u64, was: String, note: String) -> Result<bool, StoreError> {
        forward!(self, s => s.log_cosign(size, was, note).await)
    }

    async fn log_index(&self, position: Position) -> Result<Option<u64>, StoreError> {
        forward!(self, s => s.log_index(position).await)
    }

    async fn log_position(&self, index: u64) -> Result<Option<Position>, StoreError> {
        forward!(self, s => s.log_position(index).await)
    }

    fn feed_changes(&self) -> watch::Receiver<u64> {
        forward!(self, s => s.feed_changes())
    }

    fn subscribe(&self, after: Option<Position>) -> Subscription {
        forward!(self, s => s.subscribe(after))
    }
}
