//! What every registry service shares: the write path ([`Writer`]), the read path
//! ([`Reader`]), translation between protobuf and the domain ([`convert`]), the mapping of errors
//! to gRPC status ([`ApiError`], in one place), configuration ([`Config`]) and serving
//! ([`serve`]).
//!
//! # Layout
//!
//! - `writer`: decide a command against the registry, append with the expected revision, retry
//!   races, answer repeated request ids; batches of commands for imports.
//! - `import`: `ImportRecords`, a stream of records decided in order, appended in batches.
//! - `reader`: read models following the store's feed; waiting for a commit position.
//! - `convert`: protobuf to domain (naming the field of every bad input) and back.
//! - `error`: [`ApiError`] and its `tonic::Status`.
//! - `paging`: page sizes and page tokens of list RPCs.
//! - `config`: flags, environment and file; validated before binding.
//! - `serve`: health, reflection, limits, logs, graceful shutdown.
//! - `snapshots`: the writer's state and the read models saved, and loaded at start.
//!
//! The service crates (`registry-command`, `registry-query`, `registry-audit`,
//! `registry-admin`) hold only their tonic service implementations on top of this.

pub mod access;
pub mod access_log;
pub mod commands;
pub mod config;
pub mod convert;
pub mod error;
pub mod feed;
pub mod import;
pub mod metrics;
pub mod paging;
pub mod reader;
pub mod serve;
pub mod snapshots;
pub mod tls;
pub mod traces;
pub mod writer;
mod writer_records;

pub use config::{Config, Options, StoreChoice};
pub use error::ApiError;
pub use feed::STREAM;
pub use import::import_records;
pub use reader::{ReadModels, Reader};
pub use writer::{Answer, BatchDecision, Caller, Writer};

/// Writes a writer's answer as the API's `WriteResult`.
pub fn write_result(answer: Answer) -> registry_proto::v1::WriteResult {
    registry_proto::v1::WriteResult {
        name: answer.name,
        commit_position: answer.position.to_string(),
        warnings: answer
            .warnings
            .iter()
            .map(convert::irregularity_pb)
            .collect(),
        replayed: answer.replayed,
    }
}

/// Reads an optional `min_position` field.
pub fn min_position(
    field: &str,
    text: &str,
) -> Result<Option<registry_eventstore::Position>, ApiError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    text.trim().parse().map(Some).map_err(|_| {
        ApiError::invalid(
            field,
            format!(
                "{} is not a commit position (N or N.M)",
                registry_domain::quote(text)
            ),
        )
    })
}

/// A mutating request: its idempotency key and the domain command it asks for.
pub trait WriteRequest: prost::Message + Send + Sync + 'static {
    /// The RPC's name, for logs and request fingerprints.
    const RPC: &'static str;
    /// The response message.
    type Response;
    /// The request's `request_id`.
    fn request_id(&self) -> &str;
    /// The command, parsed from the request; `actor` signs amendments.
    fn command(&self, actor: &str) -> Result<registry_domain::Command, ApiError>;
    /// The response carrying `result`.
    fn respond(result: registry_proto::v1::WriteResult) -> Self::Response;
    /// Whether the request only asks what the write would do (AIP-163's `validate_only`).
    fn validate_only(&self) -> bool {
        false
    }
    /// The answer to a `validate_only` request: what the write would record (`result`, with
    /// no commit position) and the flags of the record before it.
    fn respond_preview(
        result: registry_proto::v1::WriteResult,
        _flags_now: Vec<registry_proto::v1::Irregularity>,
    ) -> Self::Response {
        Self::respond(result)
    }
}

/// Serves a mutating request: parse, decide, append (or replay), answer.
pub async fn write<R: WriteRequest>(
    writer: &Writer,
    request: tonic::Request<R>,
) -> Result<tonic::Response<R::Response>, tonic::Status> {
    let request_id = request.get_ref().request_id().to_owned();
    serve::call(R::RPC, &request_id, async {
        let caller = serve::caller(&request)?;
        let command = request.get_ref().command(&caller.actor)?;
        if request.get_ref().validate_only() {
            let preview = writer.preview(caller.grant.as_ref(), &command).await?;
            let flags_now = preview
                .flags_now
                .iter()
                .map(convert::irregularity_pb)
                .collect();
            return Ok(R::respond_preview(
                registry_proto::v1::WriteResult {
                    name: preview.name,
                    warnings: preview
                        .warnings
                        .iter()
                        .map(convert::irregularity_pb)
                        .collect(),
                    ..Default::default()
                },
                flags_now,
            ));
        }
        let answer = writer.execute(&caller, &command).await?;
        access_log::asked_about(&answer.name);
        Ok(R::respond(write_result(answer)))
    })
    .await
}

/// The most questions one batch read may ask.
pub const MAX_BATCH: usize = 1000;

/// Serves a batch of reads (`BatchGetOfficeHolders`, `BatchListPersonOffices`): each question
/// parsed as `parse` parses it alone, one wait for the highest `min_position` among them, and
/// every question answered by `respond` from the same state of the read models, under one read
/// lock. A question that fails gives its error in its place; the others are answered.
/// `finish` makes the response of the outcomes, in the order asked. An empty or oversized batch
/// is refused as a whole.
pub async fn read_batch<R: access_log::AskedAbout, Q, T, Resp>(
    reader: &Reader,
    rpc: &'static str,
    patience: std::time::Duration,
    questions: Vec<R>,
    parse: impl Fn(R) -> Result<(Q, Option<registry_eventstore::Position>), ApiError>,
    respond: impl Fn(Q, &ReadModels) -> Result<T, ApiError>,
    finish: impl FnOnce(Vec<Result<T, registry_proto::v1::QuestionError>>, &ReadModels) -> Resp,
) -> Result<tonic::Response<Resp>, tonic::Status> {
    serve::call(rpc, "", async {
        if questions.is_empty() {
            return Err(ApiError::invalid("requests", "asks no question"));
        }
        if questions.len() > MAX_BATCH {
            return Err(ApiError::invalid(
                "requests",
                format!("asks {} questions, at most {MAX_BATCH}", questions.len()),
            ));
        }
        let mut parsed = Vec::with_capacity(questions.len());
        let mut min = None;
        for (i, question) in questions.into_iter().enumerate() {
            question.note();
            parsed.push(match parse(question) {
                Ok((query, at)) => {
                    min = min.max(at);
                    Ok(query)
                }
                Err(e) => Err(e.in_batch(i)),
            });
        }
        reader.wait_for(min, patience).await?;
        let models = reader.models();
        let outcomes = parsed
            .into_iter()
            .enumerate()
            .map(|(i, query)| query.and_then(|q| respond(q, &models).map_err(|e| e.in_batch(i))))
            .collect();
        Ok(finish(outcomes, &models))
    })
    .await
}

/// Serves a read: `parse` turns the request into a query and its `min_position` (input errors
/// first, before any wait); the reader waits for that position within the caller's deadline;
/// `respond` answers from the read models under the read lock (no awaiting there).
pub async fn read<R: access_log::AskedAbout, Q, T>(
    reader: &Reader,
    rpc: &'static str,
    request: tonic::Request<R>,
    parse: impl FnOnce(R) -> Result<(Q, Option<registry_eventstore::Position>), ApiError>,
    respond: impl FnOnce(Q, &ReadModels) -> Result<T, ApiError>,
) -> Result<tonic::Response<T>, tonic::Status> {
    let wait = serve::patience(&request);
    request.get_ref().note();
    serve::call(rpc, "", async {
        let (query, min) = parse(request.into_inner())?;
        reader.wait_for(min, wait).await?;
        let models = reader.models();
        respond(query, &models)
    })
    .await
}
