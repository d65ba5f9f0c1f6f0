//! The registry's feed as the writer and the read models both read it: the one stream's name,
//! the size of the batches they read, and the decoding of stored events (an event that does
//! not decode, or comes out of place, stops a fold: `ApiError::Corrupt`).

use registry_domain::Event;
use registry_eventstore::{AnyStore, Direction, EventStore, Position, RecordedEvent};
use registry_projections::{FeedBatch, ReadModels, Seen};

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

/// Where the read models' fold stands: the revision due next and the last position folded. A
/// batch is decoded against it ahead of its fold (a start decodes while two threads fold).
pub(crate) struct Cursor {
    next: u64,
    position: Option<Position>,
}

impl Cursor {
    /// Where `models` stand.
    pub(crate) fn of(models: &ReadModels<Position>) -> Self {
        Self {
            next: models.events,
            position: models.position,
        }
    }

    /// The records of `batch` not folded yet, decoded, up to the first that does not decode or
    /// whose revision is not the one due (the read models number the stream's events by
    /// revision): its error. The cursor moves past what is returned.
    pub(crate) fn decode_fresh(
        &mut self,
        batch: &[RecordedEvent],
    ) -> (FeedBatch<Position>, Option<ApiError>) {
        let done = batch.partition_point(|r| self.position.is_some_and(|p| r.position <= p));
        let fresh = &batch[done..]; // The rest were folded already (a rebuild swapped models in).
        let mut decoded = FeedBatch {
            events: Vec::with_capacity(fresh.len()),
            through: None,
        };
        for recorded in fresh {
            if &*recorded.stream == STREAM {
                let event = if recorded.revision == self.next {
                    decode(recorded)
                } else {
                    Err(ApiError::Corrupt {
                        position: recorded.position.to_string(),
                        problem: format!(
                            "the registry stream's revision {} came where revision {} was due",
                            recorded.revision, self.next
                        ),
                    })
                };
                match event {
                    Ok(event) => {
                        let seen = Seen {
                            revision: recorded.revision,
                            recorded_at: recorded.recorded_at,
                            position: recorded.position,
                        };
                        decoded.events.push((seen, event));
                        self.next += 1;
                    }
                    Err(e) => return (decoded, Some(e)),
                }
            }
            decoded.through = Some(recorded.position);
            self.position = Some(recorded.position);
        }
        (decoded, None)
    }
}
