//! The audit service: the recorded history of any resource with its provenance, what the
//! registry learned between two recorded instants, irregularities, and a live change feed.
//!
//! Histories come from the reader's read models (`ReadModels::history`: which stream revisions
//! concern a resource, a person's and an office's holdings included) and the events
//! themselves, read from the store with their metadata (who recorded them, when, under which
//! request, on what basis, which corrections followed) and kept in memory once shown
//! ([`changes`]).
//! Irregularities are the domain's rules run over the projection as it stood at the instant
//! asked (`Projection::irregularities`). The verifiable log's checkpoints and proofs: [`log`].

mod changes;
mod log;

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;

use registry_domain::irregular::{Cursor, Kinds};
use registry_domain::{EntityRef, Event, Policy, UnitId};
use registry_eventstore::{EventStore, RecordedEvent};
use registry_ledger::VerifierKey;
use registry_proto::v1 as pb;
use registry_proto::v1::audit_service_server::{AuditService, AuditServiceServer};
use registry_service_core::convert::{date, entity, irregularity_pb, known_at, opt_id, timestamp};
use registry_service_core::page;
use registry_service_core::paging::{Page, Snapshot};
use registry_service_core::serve::{call, patience, GZIP};
use registry_service_core::{min_position, ApiError, Reader, STREAM};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// The gRPC service name, for health checking.
pub const SERVICE_NAME: &str = "registry.v1.AuditService";

/// Default and largest page sizes.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// Irregularities: default and largest page sizes, and the most rows of the registry (holdings,
/// persons, offices) one page looks at (a national registry has about six million).
const DEFAULT_IRREGULARITIES: usize = 1000;
const MAX_IRREGULARITIES: usize = 10_000;
const IRREGULARITY_ROWS_PER_PAGE: usize = 50_000;

/// The page cursor of an irregularities listing: its part, row and skip (the kinds are the
/// request's own, part of the page token's query).
fn irregularities_cursor(cursor: Cursor) -> [u64; 3] {
    [
        u64::from(cursor.part),
        cursor.row as u64,
        cursor.skip as u64,
    ]
}

/// The kinds of irregularity a request asks for: every kind when it names none.
fn irregularity_kinds(names: &[String]) -> Result<Kinds, ApiError> {
    if names.is_empty() {
        return Ok(Kinds::ALL);
    }
    names
        .iter()
        .enumerate()
        .try_fold(Kinds::NONE, |kinds, (i, name)| {
            let kind = Kinds::named(name).ok_or_else(|| {
                ApiError::invalid(
                    format!("kinds[{i}]"),
                    format!(
                        "{} is not a kind of irregularity (one of {})",
                        registry_domain::quote(name),
                        Kinds::NAMES.join(", ")
                    ),
                )
            })?;
            Ok(kinds.with(kind))
        })
}

/// Where a page of irregularities of `kinds` starts: at the cursor of its token, or the start.
fn irregularities_from(page: &Page, kinds: Kinds) -> Result<Cursor, ApiError> {
    match *page.cursor() {
        [] => Ok(Cursor::start(kinds)),
        [part, row, skip] => Ok(Cursor {
            kinds,
            part: u8::try_from(part).unwrap_or(u8::MAX),
            row: usize::try_from(row).unwrap_or(usize::MAX),
            skip: usize::try_from(skip).unwrap_or(usize::MAX),
        }),
        _ => Err(ApiError::invalid(
            "page_token",
            "is not a token of ListIrregularities",
        )),
    }
}

/// The audit service over a replica's read models and its store.
pub struct AuditApi {
    reader: Reader,
    policy: Policy,
    /// The witnesses whose cosignatures are accepted.
    witnesses: Arc<Vec<VerifierKey>>,
    /// The size a message may have: the limit an answer of proved leaves keeps to.
    max_message_bytes: usize,
    /// Events already shown, kept to show again.
    changes: changes::Changes,
}

/// The most resources one ProveResources call may name.
const MAX_PROVED: usize = 1000;

impl AuditApi {
    /// The service, with the request size limit applied, accepting cosignatures of
    /// `witnesses`, keeping up to `history_cache_bytes` of events shown to show them again.
    pub fn server(
        reader: Reader,
        max_message_bytes: usize,
        witnesses: Arc<Vec<VerifierKey>>,
        history_cache_bytes: u64,
    ) -> AuditServiceServer<Self> {
        AuditServiceServer::new(Self {
            reader,
            policy: Policy::default(),
            witnesses,
            max_message_bytes,
            changes: changes::Changes::new(history_cache_bytes),
        })
        .max_decoding_message_size(max_message_bytes)
        .accept_compressed(GZIP)
        .send_compressed(GZIP)
    }

    /// The revisions of the first events of the resources `events` name beside `asked`.
    fn origins(&self, events: &[RecordedEvent], asked: &[EntityRef]) -> Vec<u64> {
        let asked: HashSet<EntityRef> = asked.iter().copied().collect();
        let named: HashSet<EntityRef> = events
            .iter()
            .filter_map(|e| Event::decode(&e.event_type, e.schema_version, &e.payload).ok())
            .flat_map(|event| event.subjects())
            .filter(|subject| !asked.contains(subject))
            .collect();
        let models = self.reader.models();
        named
            .into_iter()
            .filter_map(|subject| models.history(subject).first().copied())
            .collect()
    }

    /// Reads the events at these revisions of the registry stream, in order, by the positions
    /// the audit index saw them at.
    async fn events_at(&self, revisions: &[u64]) -> Result<Vec<RecordedEvent>, ApiError> {
        let seen = self.reader.models().audit.seen(revisions);
        Ok(self.reader.store().read_seen(STREAM, &seen).await?)
    }

    /// The changes at these revisions, as [`Self::events_at`] reads them, shown: from memory
    /// where they were shown before.
    async fn changes_at(&self, revisions: &[u64]) -> Result<Vec<pb::Change>, ApiError> {
        let seen = self.reader.models().audit.seen(revisions);
        self.changes.at(&self.reader, &seen).await
    }
}

/// The resource a stored event is about first, if it decodes.
fn first_subject(event: &RecordedEvent) -> Option<EntityRef> {
    Event::decode(&event.event_type, event.schema_version, &event.payload)
        .ok()
        .and_then(|e| e.subjects().first().copied())
}

/// An event with its provenance, as the API shows it. Takes the event, so that its payload
/// becomes the answer's text without a copy.
pub fn change_pb(recorded: RecordedEvent) -> pb::Change {
    let subjects = Event::decode(
        &recorded.event_type,
        recorded.schema_version,
        &recorded.payload,
    )
    .map(|e| e.subjects().iter().map(ToString::to_string).collect())
    .unwrap_or_default();
    pb::Change {
        position: recorded.position.to_string(),
        revision: recorded.revision,
        event_id: recorded.id.to_string(),
        event_type: recorded.event_type.to_string(),
        schema_version: u32::from(recorded.schema_version),
        recorded_at: Some(timestamp(recorded.recorded_at)),
        actor: recorded.metadata.actor.to_string(),
        request_id: recorded.metadata.request_id.unwrap_or_default(),
        payload_json: String::from_utf8(recorded.payload)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        subjects,
        proof: None,
    }
}

type ChangeStream = Pin<Box<dyn Stream<Item = Result<pb::StreamChangesResponse, Status>> + Send>>;

use registry_service_core::access_log::AskedAbout;

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_resource_history(
        &self,
        request: Request<pb::ListResourceHistoryRequest>,
    ) -> Result<Response<pb::ListResourceHistoryResponse>, Status> {
        let wait = patience(&request);
        let r = request.into_inner();
        r.note();
        call("ListResourceHistory", "", async {
            let subject = entity("name", &r.name)?;
            let page = page!(
                "ListResourceHistory",
                r,
                DEFAULT_PAGE,
                MAX_PAGE,
                clear min_position
            )?;
            self.reader
                .wait_for(min_position("min_position", &r.min_position)?, wait)
                .await?;
            let (revisions, next_page_token) = {
                let models = self.reader.models();
                let now = Snapshot::of(&models);
                let mut all = models.history(subject);
                if all.is_empty() {
                    return Err(ApiError::NotFound(subject.to_string()));
                }
                // Later pages list the events folded by the first.
                let seen = page.events(now);
                all.retain(|revision| *revision < seen);
                page.of(all, now)
            };
            let (changes, checkpoint) = if r.verify {
                // Proofs are of the events as the store holds them now: read, not kept.
                let events = self.events_at(&revisions).await?;
                let (proofs, checkpoint) =
                    log::prove_all(self.reader.store(), &events, wait).await?;
                let changes = events
                    .into_iter()
                    .zip(proofs)
                    .map(|(event, proof)| pb::Change {
                        proof,
                        ..change_pb(event)
                    })
                    .collect();
                (changes, Some(checkpoint))
            } else {
                (self.changes_at(&revisions).await?, None)
            };
            Ok(pb::ListResourceHistoryResponse {
                changes,
                next_page_token,
                checkpoint,
            })
        })
        .await
    }

    async fn list_changes(
        &self,
        request: Request<pb::ListChangesRequest>,
    ) -> Result<Response<pb::ListChangesResponse>, Status> {
        let r = request.into_inner();
        call("ListChanges", "", async {
            let after = known_at("recorded_after", r.recorded_after.as_ref())?
                .ok_or_else(|| ApiError::invalid("recorded_after", "is required"))?;
            let until =
                known_at("recorded_before", r.recorded_before.as_ref())?.unwrap_or(i64::MAX);
            if until <= after {
                return Err(ApiError::invalid(
                    "recorded_before",
                    "must be after recorded_after",
                ));
            }
            let page = page!("ListChanges", r, DEFAULT_PAGE, MAX_PAGE)?;
            let (revisions, next_page_token) = {
                let models = self.reader.models();
                let now = Snapshot::of(&models);
                // Later pages list the events folded by the first.
                let (revisions, next) = models.audit.recorded_between(
                    after,
                    until,
                    page.from() as u64,
                    page.events(now),
                    page.size,
                );
                let next = next.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
                (revisions, page.offset_token(now, next))
            };
            let changes = self.changes_at(&revisions).await?;
            Ok(pb::ListChangesResponse {
                changes,
                next_page_token,
            })
        })
        .await
    }

    async fn list_irregularities(
        &self,
        request: Request<pb::ListIrregularitiesRequest>,
    ) -> Result<Response<pb::ListIrregularitiesResponse>, Status> {
        let wait = patience(&request);
        let r = request.into_inner();
        r.note();
        call("ListIrregularities", "", async {
            let on = date("date", &r.date)?;
            let min = min_position("min_position", &r.min_position)?;
            let known = known_at("known_at", r.known_at.as_ref())?;
            let page = page!(
                "ListIrregularities",
                r,
                DEFAULT_IRREGULARITIES,
                MAX_IRREGULARITIES,
                clear min_position
            )?;
            let kinds = irregularity_kinds(&r.kinds)?;
            let from = irregularities_from(&page, kinds)?;
            let unit: Option<UnitId> = opt_id("unit", &r.unit, "units")?;
            self.reader.wait_for(min, wait).await?;
            let models = self.reader.models();
            let known = page.known_at(known);
            let within = unit
                .map(|unit| {
                    models
                        .projection
                        .jurisdiction(unit, known)
                        .ok_or_else(|| ApiError::NotFound(unit.to_string()))
                })
                .transpose()?;
            // A page looks at a bounded number of rows, so the read lock is held briefly even
            // on a national registry, whose whole list takes seconds.
            let (found, next) = models.projection.irregularities_page(
                &self.policy,
                on,
                known,
                from,
                page.size,
                IRREGULARITY_ROWS_PER_PAGE,
                within.as_ref(),
            );
            let next = next.map(irregularities_cursor);
            Ok(pb::ListIrregularitiesResponse {
                irregularities: found.iter().map(irregularity_pb).collect(),
                next_page_token: page.token(Snapshot::of(&models), next.as_ref().map(|n| &n[..])),
            })
        })
        .await
    }

    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        let r = request.into_inner();
        call("GetCheckpoint", "", async {
            let stored = log::checkpoint(self.reader.store(), r.size).await?;
            Ok(pb::GetCheckpointResponse {
                checkpoint: Some(log::checkpoint_pb(&stored)?),
            })
        })
        .await
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        let r = request.into_inner();
        call("GetInclusionProof", "", async {
            let store = self.reader.store();
            let position = match (min_position("position", &r.position)?, r.leaf_index) {
                (Some(position), _) => position,
                (None, Some(index)) => store.log_position(index).await?.ok_or_else(|| {
                    ApiError::NotSigned(format!("leaf {index} is not in the log yet"))
                })?,
                (None, None) => {
                    return Err(ApiError::invalid("position", "is required (or leaf_index)"))
                }
            };
            let stored = log::checkpoint(store, r.tree_size).await?;
            let index = log::leaf_of(store, position, stored.size).await?;
            let event = store
                .read_at(position)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("an event at {position}")))?;
            Ok(pb::GetInclusionProofResponse {
                proof: Some(log::inclusion(store, &event, index, stored.size).await?),
                checkpoint: Some(log::checkpoint_pb(&stored)?),
            })
        })
        .await
    }

    async fn prove_resources(
        &self,
        request: Request<pb::ProveResourcesRequest>,
    ) -> Result<Response<pb::ProveResourcesResponse>, Status> {
        let wait = patience(&request);
        let r = request.into_inner();
        call("ProveResources", "", async {
            if r.names.is_empty() {
                return Err(ApiError::invalid(
                    "names",
                    "is required: at least one resource",
                ));
            }
            if r.names.len() > MAX_PROVED {
                return Err(ApiError::invalid(
                    "names",
                    format!(
                        "at most {MAX_PROVED} resources a call, not {}",
                        r.names.len()
                    ),
                ));
            }
            let subjects = r
                .names
                .iter()
                .enumerate()
                .map(|(i, name)| entity(&format!("names[{i}]"), name))
                .collect::<Result<Vec<_>, _>>()?;
            self.reader
                .wait_for(min_position("min_position", &r.min_position)?, wait)
                .await?;
            let mut histories = {
                let models = self.reader.models();
                subjects
                    .iter()
                    .map(|&subject| {
                        let history = models.history(subject);
                        if history.is_empty() {
                            Err(ApiError::NotFound(subject.to_string()))
                        } else {
                            Ok(history)
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?
            };
            let mut revisions: Vec<u64> = histories.iter().flatten().copied().collect();
            revisions.sort_unstable();
            revisions.dedup();
            let mut events = self.events_at(&revisions).await?;
            if r.own_events_only {
                // Each history keeps the events about its resource first; the others go.
                let about: Vec<Option<EntityRef>> = events.iter().map(first_subject).collect();
                for (history, subject) in histories.iter_mut().zip(&subjects) {
                    history.retain(|revision| {
                        revisions
                            .binary_search(revision)
                            .is_ok_and(|at| about[at] == Some(*subject))
                    });
                }
                let kept: HashSet<u64> = histories.iter().flatten().copied().collect();
                let (kept_revisions, kept_events) = revisions
                    .into_iter()
                    .zip(events)
                    .filter(|(revision, _)| kept.contains(revision))
                    .unzip();
                (revisions, events) = (kept_revisions, kept_events);
            }
            if r.with_origins {
                let mut origins: Vec<u64> = self
                    .origins(&events, &subjects)
                    .into_iter()
                    .filter(|revision| revisions.binary_search(revision).is_err())
                    .collect();
                if !origins.is_empty() {
                    // Only the origins are read; the events already read keep their places.
                    origins.sort_unstable();
                    let extra = self.events_at(&origins).await?;
                    let mut merged: Vec<(u64, RecordedEvent)> = revisions
                        .into_iter()
                        .zip(events)
                        .chain(origins.into_iter().zip(extra))
                        .collect();
                    merged.sort_unstable_by_key(|(revision, _)| *revision);
                    (revisions, events) = merged.into_iter().unzip();
                }
            }
            // The resources' leaf lists take their part of the message.
            let lists: usize = r.names.iter().map(|n| n.len() + 8).sum::<usize>()
                + histories.iter().map(|h| h.len() * 6).sum::<usize>();
            let proved = log::prove_leaves(
                self.reader.store(),
                &events,
                r.tree_size,
                wait,
                self.max_message_bytes.saturating_sub(lists),
            )
            .await?;
            // Each resource's events, by the leaves the answer carries (a revision past the
            // checkpoint has none).
            let resources = r
                .names
                .into_iter()
                .zip(histories)
                .map(|(name, history)| pb::ResourceLeaves {
                    name,
                    leaf_indexes: history
                        .iter()
                        .filter_map(|revision| {
                            let at = revisions.binary_search(revision).ok()?;
                            proved.indexes[at]
                        })
                        .collect(),
                })
                .collect();
            Ok(pb::ProveResourcesResponse {
                checkpoint: Some(proved.checkpoint),
                leaves: proved.leaves,
                hashes: proved.hashes,
                resources,
            })
        })
        .await
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        let r = request.into_inner();
        call("GetConsistencyProof", "", async {
            let store = self.reader.store();
            let second = log::checkpoint(store, r.second_size).await?;
            if r.first_size > second.size {
                return Err(ApiError::invalid(
                    "first_size",
                    format!(
                        "{} is larger than the second size, {}",
                        r.first_size, second.size
                    ),
                ));
            }
            let nodes = store
                .log_nodes(registry_ledger::consistency_nodes(
                    r.first_size,
                    second.size,
                ))
                .await?;
            let hashes = registry_ledger::consistency_proof(&nodes, r.first_size, second.size)
                .map_err(|e| ApiError::Corrupt {
                    position: format!("checkpoint {}", second.size),
                    problem: format!("the log's proof cannot be made: {e}"),
                })?;
            Ok(pb::GetConsistencyProofResponse {
                hashes: hashes.iter().map(|h| h.to_vec()).collect(),
                checkpoint: Some(log::checkpoint_pb(&second)?),
            })
        })
        .await
    }

    async fn add_cosignature(
        &self,
        request: Request<pb::AddCosignatureRequest>,
    ) -> Result<Response<pb::AddCosignatureResponse>, Status> {
        let r = request.into_inner();
        call("AddCosignature", "", async {
            let (checkpoint, witnesses) =
                log::cosign(self.reader.store(), &self.witnesses, &r.note).await?;
            Ok(pb::AddCosignatureResponse {
                checkpoint: Some(checkpoint),
                witnesses,
            })
        })
        .await
    }

    type StreamChangesStream = ChangeStream;

    async fn stream_changes(
        &self,
        request: Request<pb::StreamChangesRequest>,
    ) -> Result<Response<ChangeStream>, Status> {
        let r = request.into_inner();
        let after = min_position("after_position", &r.after_position).map_err(Status::from)?;
        tracing::info!(rpc = "StreamChanges", after = ?after, "subscribed");
        let mut subscription = self.reader.store().subscribe(after);
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = subscription.next() => next,
                    () = registry_service_core::serve::shutting_down() => {
                        let _ = tx.send(Err(Status::unavailable("the server is shutting down; resume from the last position received"))).await;
                        return;
                    }
                };
                let Some(next) = next else { return };
                let item = match next {
                    Ok(recorded) if &*recorded.stream != STREAM => continue,
                    Ok(recorded) => Ok(pb::StreamChangesResponse {
                        change: Some(change_pb(recorded)),
                    }),
                    Err(e) => Err(Status::from(ApiError::from(e))),
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return; // The caller went away, or the feed failed and was reported.
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
