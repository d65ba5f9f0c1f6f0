//! The EventStoreDB/KurrentDB backend, on the official `kurrentdb` client.
//!
//! **Experimental: never run against a server here** (none is available on the build machines).
//! The conformance suite runs against it whenever `REGISTRY_TEST_ESDB` holds a connection
//! string (and fails without one under `REGISTRY_REQUIRE_ESDB=1`); CI compiles it. What was
//! checked against KurrentDB's documentation and its client's source instead is noted below.
//!
//! - Streams, revisions and expected revisions map one to one (`NoStream`, `Any`,
//!   `StreamRevision`).
//! - [`Position`] is KurrentDB's own `(commit, prepare)` pair in `$all`.
//! - Schema version, actor, request and correlation ids travel in the event's custom metadata
//!   (a JSON object); recorded time is the server's `created` time.
//! - System events (`$`-prefixed types) are filtered out of the feed.
//! - A subscription uses the server's catch-up subscription to `$all`, keeps its own checkpoint
//!   (the last position delivered) and resubscribes from it after an error, skipping anything
//!   at or before the checkpoint, so nothing is delivered twice.
//! - Connection strings are KurrentDB's: `kurrentdb://host:2113?tls=false` (insecure),
//!   `kurrentdb://user:pass@host:2113?tls=true&tlsCAFile=...`, `kurrentdb+discover://...` for a
//!   cluster (`esdb://` is accepted too).
//!
//! - Reads of `$all` from a position include the event at it and catch-up subscriptions start
//!   after it (the client itself resumes a dropped subscription from the last event it gave):
//!   both are read one further and filtered at or before the position asked for.
//!
//! Duplicate detection by event id is the server's, **within a stream only** (and best effort
//! with `Any`): an id appended to another stream is stored again, where the embedded store and
//! PostgreSQL refuse it (the conformance suite checks each backend for what it promises). The
//! registry writes one stream, and its idempotency rests on request ids in the service.

use std::sync::Arc;
use std::time::Duration;

use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, EventData, ReadAllOptions, ReadStreamOptions,
    StreamPosition, StreamState, SubscribeToAllOptions, SubscriptionFilter,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::{
    check_append, check_stream_name, AppendResult, Direction, EventStore, ExpectedRevision,
    Interner, Metadata, NewEvent, Position, RecordedEvent, StoreError, Subscription,
    DEFAULT_MAX_EVENT_BYTES,
};

/// A handle on a KurrentDB server or cluster.
#[derive(Clone)]
pub struct KurrentStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    changes: watch::Receiver<u64>,
    watcher: tokio::task::JoinHandle<()>,
    max_event_bytes: usize,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// What the registry keeps in KurrentDB's custom metadata.
#[derive(Serialize, Deserialize, Default)]
struct StoredMetadata {
    #[serde(rename = "schemaVersion")]
    schema_version: u16,
    actor: String,
    #[serde(rename = "requestId", default, skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    #[serde(
        rename = "correlationId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    correlation_id: Option<String>,
    #[serde(
        rename = "requestFingerprint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    request_fingerprint: Option<String>,
}

fn kurrent_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::backend(e)
}

fn to_position(p: kurrentdb::Position) -> Position {
    Position {
        commit: p.commit,
        prepare: p.prepare,
    }
}

fn from_position(p: Position) -> kurrentdb::Position {
    kurrentdb::Position {
        commit: p.commit,
        prepare: p.prepare,
    }
}

fn user_events() -> SubscriptionFilter {
    SubscriptionFilter::on_event_type().exclude_system_events()
}

fn convert(event: &kurrentdb::RecordedEvent, names: &mut Interner) -> RecordedEvent {
    let stored: StoredMetadata = serde_json::from_slice(&event.custom_metadata).unwrap_or_default();
    RecordedEvent {
        position: to_position(event.position),
        stream: names.get(0, event.stream_id()),
        revision: event.revision,
        id: event.id,
        event_type: names.get(1, &event.event_type),
        schema_version: stored.schema_version,
        payload: event.data.to_vec(),
        metadata: Metadata {
            actor: names.get(2, &stored.actor),
            request_id: stored.request_id,
            correlation_id: stored.correlation_id,
            request_fingerprint: stored.request_fingerprint,
        },
        recorded_at: event.created.timestamp_micros(),
    }
}

impl KurrentStore {
    /// Connects with a KurrentDB connection string.
    pub async fn connect(connection_string: &str) -> Result<Self, StoreError> {
        let settings: ClientSettings = connection_string.parse().map_err(kurrent_err)?;
        let client = Client::new(settings).map_err(kurrent_err)?;
        let (changes_tx, changes) = watch::channel(0u64);
        let watcher = tokio::spawn(watch_feed(client.clone(), changes_tx));
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                changes,
                watcher,
                max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            }),
        })
    }
}

/// Bumps the change counter for every new user event; resubscribes after errors.
async fn watch_feed(client: Client, changes: watch::Sender<u64>) {
    loop {
        let options = SubscribeToAllOptions::default()
            .position(StreamPosition::End)
            .filter(user_events());
        let mut subscription = client.subscribe_to_all(&options).await;
        while subscription.next().await.is_ok() {
            changes.send_modify(|n| *n = n.wrapping_add(1));
        }
        if changes.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

impl EventStore for KurrentStore {
    fn max_event_bytes(&self) -> usize {
        self.inner.max_event_bytes
    }

    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        check_append(stream, &events, self.inner.max_event_bytes)?;
        let state = match expected {
            ExpectedRevision::Any => StreamState::Any,
            ExpectedRevision::NoStream => StreamState::NoStream,
            ExpectedRevision::Exact(r) => StreamState::StreamRevision(r),
        };
        let data: Vec<EventData> = events
            .into_iter()
            .map(|e| {
                let metadata = StoredMetadata {
                    schema_version: e.schema_version,
                    actor: e.metadata.actor.to_string(),
                    request_id: e.metadata.request_id,
                    correlation_id: e.metadata.correlation_id,
                    request_fingerprint: e.metadata.request_fingerprint,
                };
                EventData::binary(e.event_type, bytes::Bytes::from(e.payload))
                    .id(e.id)
                    .metadata(bytes::Bytes::from(
                        serde_json::to_vec(&metadata).unwrap_or_default(),
                    ))
            })
            .collect();
        let options = AppendToStreamOptions::default().stream_state(state);
        match self
            .inner
            .client
            .append_to_stream(stream.to_owned(), &options, data)
            .await
        {
            Ok(result) => Ok(AppendResult {
                next_expected: result.next_expected_version,
                position: to_position(result.position),
            }),
            Err(kurrentdb::Error::WrongExpectedVersion { current, .. }) => {
                Err(StoreError::WrongExpectedRevision {
                    stream: stream.to_owned(),
                    expected,
                    actual: match current {
                        kurrentdb::CurrentRevision::Current(r) => Some(r),
                        kurrentdb::CurrentRevision::NoStream => None,
                    },
                })
            }
            Err(e) => Err(StoreError::Backend {
                message: e.to_string(),
                uncertain: true,
            }),
        }
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_stream_name(stream)?;
        let options = ReadStreamOptions::default()
            .position(StreamPosition::Position(from))
            .max_count(limit);
        let options = match direction {
            Direction::Forwards => options.forwards(),
            Direction::Backwards => options.backwards(),
        };
        let mut read = match self
            .inner
            .client
            .read_stream(stream.to_owned(), &options)
            .await
        {
            Ok(read) => read,
            Err(kurrentdb::Error::ResourceNotFound) => return Ok(Vec::new()),
            Err(e) => return Err(kurrent_err(e)),
        };
        let mut names = Interner::default();
        let mut events = Vec::new();
        loop {
            match read.next().await {
                Ok(Some(event)) => events.push(convert(event.get_original_event(), &mut names)),
                Ok(None) => return Ok(events),
                Err(kurrentdb::Error::ResourceNotFound) => return Ok(Vec::new()),
                Err(e) => return Err(kurrent_err(e)),
            }
        }
    }

    async fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let start = after.map_or(StreamPosition::Start, |p| {
            StreamPosition::Position(from_position(p))
        });
        // Reading from a position includes the event at it: read one more and drop it.
        let options = ReadAllOptions::default()
            .forwards()
            .position(start)
            .filter(user_events())
            .max_count(limit.saturating_add(1));
        let mut read = self
            .inner
            .client
            .read_all(&options)
            .await
            .map_err(kurrent_err)?;
        let mut names = Interner::default();
        let mut events = Vec::new();
        while let Some(event) = read.next().await.map_err(kurrent_err)? {
            let event = convert(event.get_original_event(), &mut names);
            if after.is_some_and(|a| event.position <= a) {
                continue;
            }
            events.push(event);
            if events.len() == limit {
                break;
            }
        }
        Ok(events)
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        let options = ReadAllOptions::default()
            .backwards()
            .position(StreamPosition::End)
            .filter(user_events())
            .max_count(1);
        let mut read = self
            .inner
            .client
            .read_all(&options)
            .await
            .map_err(kurrent_err)?;
        Ok(read
            .next()
            .await
            .map_err(kurrent_err)?
            .map(|e| to_position(e.get_original_event().position)))
    }

    fn feed_changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.clone()
    }

    fn subscribe(&self, after: Option<Position>) -> Subscription {
        let (tx, rx) = mpsc::channel(crate::SUBSCRIPTION_BUFFER);
        let client = self.inner.client.clone();
        let task = tokio::spawn(async move {
            let mut checkpoint = after;
            loop {
                let start = checkpoint.map_or(StreamPosition::Start, |p| {
                    StreamPosition::Position(from_position(p))
                });
                let options = SubscribeToAllOptions::default()
                    .position(start)
                    .filter(user_events());
                let mut subscription = client.subscribe_to_all(&options).await;
                let mut names = Interner::default();
                loop {
                    match subscription.next().await {
                        Ok(event) => {
                            let event = convert(event.get_original_event(), &mut names);
                            if checkpoint.is_some_and(|c| event.position <= c) {
                                continue;
                            }
                            checkpoint = Some(event.position);
                            if tx.send(Ok(vec![event])).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, checkpoint = ?checkpoint, "kurrentdb subscription dropped; resubscribing");
                            break;
                        }
                    }
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        Subscription::from_parts(rx, task)
    }
}
