//! The registry's feed as the writer and the read models both read it: the one stream's name,
//! the size of the batches they read, and the decoding of stored events (an event that does
//! not decode stops a fold: `ApiError::Corrupt`).

use registry_domain::Event;
use registry_eventstore::{AnyStore, Direction, EventStore, RecordedEvent};

use crate::error::ApiError;

/// The one stream that holds the registry.
pub const STREAM: &str = "registry";

/// Events read per batch while catching up, by the writer and by a rebuild of the read models
/// (the same size as the store's subscription batches; see there why).
pub(crate) const CATCH_UP_BATCH: usize = 2048;

/// Decodes a stored event, reporting where an unreadable one sits.
pub fn decode(recorded: &RecordedEvent) -> Result<Event, ApiError> {
    Event::decode(
        &recorded.event_type,
        recorded.schema_version,
        &recorded.payload,
    )
    .map_err(|e| ApiError::Corrupt {
        position: recorded.position.to_string(),
        problem: e.to_string(),
    })
}

/// A batch of the registry stream read for the writer's catch-up, decoded up to the first event
/// that does not decode.
pub(crate) struct DecodedBatch {
    pub(crate) events: Vec<(RecordedEvent, Event)>,
    /// Why the event after `events` did not decode.
    pub(crate) failed: Option<ApiError>,
    /// True when the batch was as long as asked: there may be more.
    pub(crate) full: bool,
}

/// Reads the stream's batch from `from` and decodes it: a full batch on a blocking thread, a
/// short one (the few events a write on a shared store catches up with) on this one.
pub(crate) async fn read_decoded(store: AnyStore, from: u64) -> Result<DecodedBatch, ApiError> {
    let batch = store
        .read_stream(STREAM, from, Direction::Forwards, CATCH_UP_BATCH)
        .await?;
    let full = batch.len() == CATCH_UP_BATCH;
    let decoded = move || {
        let mut events = Vec::with_capacity(batch.len());
        for recorded in batch {
            match decode(&recorded) {
                Ok(event) => events.push((recorded, event)),
                Err(e) => {
                    return DecodedBatch {
                        events,
                        failed: Some(e),
                        full,
                    }
                }
            }
        }
        DecodedBatch {
            events,
            failed: None,
            full,
        }
    };
    if !full {
        return Ok(decoded());
    }
    tokio::task::spawn_blocking(decoded)
        .await
        .map_err(|e| ApiError::Unavailable(format!("decoding the stream stopped: {e}")))
}
