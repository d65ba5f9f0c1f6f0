//! `ImportRecords`: a stream of records (each one of the command service's write requests)
//! decided in order and appended many to a transaction, for imports and initial loads.
//!
//! Each message of the stream is one batch for [`Writer::execute_batch`]. While the store
//! commits a batch, the next message is read and decided, so parsing, deciding and writing
//! overlap; at most [`QUEUED`] batches wait for their commit. The call answers only once every
//! recorded batch is stored, so an acknowledged import is durable. A refused record ends the
//! call with its status, placed by [`ApiError::Record`] (with the counts of the records before
//! it, which stay recorded).

use std::collections::VecDeque;

use registry_domain::Command;
use registry_proto::v1 as pb;
use registry_proto::v1::import_record::Record;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::writer::{Caller, Writer};
use crate::{serve, ApiError, WriteRequest};

/// Batches decided ahead of their commit at most.
const QUEUED: usize = 4;

/// Applies `$body` to the request inside a record, with `$kind` bound to the record's field
/// name.
macro_rules! with_request {
    ($record:expr, |$kind:ident, $r:ident| $body:expr) => {
        match $record {
            Record::Person($r) => {
                let $kind = "person";
                $body
            }
            Record::RenamePerson($r) => {
                let $kind = "rename_person";
                $body
            }
            Record::PersonAlias($r) => {
                let $kind = "person_alias";
                $body
            }
            Record::Unit($r) => {
                let $kind = "unit";
                $body
            }
            Record::RenameUnit($r) => {
                let $kind = "rename_unit";
                $body
            }
            Record::MoveUnit($r) => {
                let $kind = "move_unit";
                $body
            }
            Record::Reorganisation($r) => {
                let $kind = "reorganisation";
                $body
            }
            Record::Office($r) => {
                let $kind = "office";
                $body
            }
            Record::AbolishOffice($r) => {
                let $kind = "abolish_office";
                $body
            }
            Record::Holding($r) => {
                let $kind = "holding";
                $body
            }
            Record::EndHolding($r) => {
                let $kind = "end_holding";
                $body
            }
            Record::Model($r) => {
                let $kind = "model";
                $body
            }
            Record::Adoption($r) => {
                let $kind = "adoption";
                $body
            }
            Record::Withdrawal($r) => {
                let $kind = "withdrawal";
                $body
            }
            Record::Term($r) => {
                let $kind = "term";
                $body
            }
        }
    };
}

/// The record's kind, if set.
fn kind(record: &pb::ImportRecord) -> Option<&'static str> {
    record
        .record
        .as_ref()
        .map(|record| with_request!(record, |kind, _r| kind))
}

/// The caller and command of one record.
fn parse(
    metadata: &MetadataMap,
    who: &serve::Who,
    record: &pb::ImportRecord,
) -> Result<(Caller, Command), ApiError> {
    let Some(inner) = &record.record else {
        return Err(empty());
    };
    let caller = with_request!(inner, |_kind, r| serve::caller_in(metadata, who, r))?;
    let command = command_of(record, &caller.actor)?;
    Ok((caller, command))
}

fn empty() -> ApiError {
    ApiError::invalid(
        "record",
        "is empty: set one write (person, unit, office, holding, ...)",
    )
}

/// The domain command of one record, recorded by `actor`: its request's conversion, as the
/// command service makes it for the same request alone.
pub fn command_of(record: &pb::ImportRecord, actor: &str) -> Result<Command, ApiError> {
    let Some(record) = &record.record else {
        return Err(empty());
    };
    with_request!(record, |_kind, r| r.command(actor))
}

/// Serves `ImportRecords`.
pub async fn import_records(
    writer: &Writer,
    request: Request<Streaming<pb::ImportRecordsRequest>>,
) -> Result<Response<pb::ImportRecordsResponse>, Status> {
    serve::call_unbounded("ImportRecords", "", async move {
        let who = serve::Who::of(request.extensions())?;
        let (metadata, _, mut stream) = request.into_parts();
        let mut response = pb::ImportRecordsResponse::default();
        let mut queued = VecDeque::new();
        let mut last = None;
        let mut offset = 0;
        let mut refused = None;
        while let Some(message) = stream.message().await.map_err(|status| ApiError::Stream {
            code: status.code(),
            message: status.message().to_owned(),
        })? {
            let mut batch = Vec::with_capacity(message.records.len());
            let mut malformed = None;
            for (index, record) in message.records.iter().enumerate() {
                match parse(&metadata, &who, record) {
                    Ok(item) => batch.push(item),
                    Err(e) => {
                        malformed = Some((index, e));
                        break;
                    }
                }
            }
            let decision = writer.execute_batch(&batch).await?;
            response.recorded += decision.recorded as i64;
            response.replayed += decision.replayed as i64;
            response.warnings += decision.warnings as i64;
            queued.extend(decision.stored);
            while queued.len() > QUEUED {
                if let Some(stored) = queued.pop_front() {
                    last = Some(stored.await?);
                }
            }
            // A refusal by the writer comes before the malformed record, which ended the batch.
            if let Some((index, source)) = decision.refused.or(malformed) {
                refused = Some(ApiError::Record {
                    index: offset + index,
                    kind: kind(&message.records[index]),
                    recorded: response.recorded as usize,
                    replayed: response.replayed as usize,
                    source: Box::new(source),
                });
                break;
            }
            offset += message.records.len();
        }
        for stored in queued {
            last = Some(stored.await?);
        }
        if let Some(refused) = refused {
            return Err(refused);
        }
        response.commit_position = last.map(|p| p.to_string()).unwrap_or_default();
        Ok(response)
    })
    .await
}
