//! [`ApiError`], everything a service call can fail with, and its mapping to `tonic::Status`:
//! the one place where errors become status codes.
//!
//! Codes: INVALID_ARGUMENT names the field (message and a `BadRequest` detail); NOT_FOUND and
//! ALREADY_EXISTS name the resource; FAILED_PRECONDITION names the broken rule (message and an
//! `ErrorInfo` detail with the rule as reason); ABORTED when concurrent writes kept conflicting;
//! UNAVAILABLE when the store failed (with "outcome unknown" when an append may have landed);
//! DEADLINE_EXCEEDED when a replica did not reach a requested position in time. A record of an
//! import (`ImportRecords`) refused keeps its own code, with its place in the stream in the
//! message, in BadRequest field paths (`records[3].holding.valid_from`) and in an `ErrorInfo`
//! (`record_index`, and how many records before it were recorded or replayed).

use registry_domain::{DomainError, ErrorKind};
use registry_eventstore::StoreError;
use thiserror::Error;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The error domain reported in `ErrorInfo` details.
const ERROR_DOMAIN: &str = "registry.v1";

/// Why a call failed.
#[derive(Debug, Error)]
pub enum ApiError {
    /// A request field is malformed: the caller must fix it.
    #[error("{field}: {problem}")]
    Invalid {
        /// The field, as a dotted path in the request (`basis.issued_on`).
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The domain refused the command: a broken rule, an unknown or existing resource.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// A resource asked for by a read does not exist (at that date or instant).
    #[error("{0} not found")]
    NotFound(String),
    /// What was asked of the verifiable log is not under a signed checkpoint (yet).
    #[error("{0}")]
    NotSigned(String),
    /// The answer would pass the size a message may have: the caller must ask for less.
    #[error("{0}")]
    TooLarge(String),
    /// A dated read asked for a unit or an office on a day outside its life.
    #[error("{resource} did not exist on {day}: {life}")]
    NotOnDay {
        /// The resource's name.
        resource: String,
        /// The day asked about.
        day: String,
        /// Its life, in words ("it existed from 2020-01-01 until 2025-06-30").
        life: String,
    },
    /// A `request_id` already used by a different request (another RPC or other fields).
    #[error("request_id: {} was used by a different request; a new request needs a new request_id", registry_domain::quote(.request_id))]
    RequestIdReused {
        /// The request id.
        request_id: String,
    },
    /// Concurrent writers kept moving the registry on; retrying with the same `request_id` is safe.
    #[error(
        "the write conflicted with concurrent writes {0} times; retry with the same request_id"
    )]
    Contention(u32),
    /// A rebuild of the read models was asked for while one runs (each holds a second copy
    /// of the models until it is swapped in).
    #[error(
        "a rebuild of this replica's read models is already running; retry once it has finished"
    )]
    RebuildRunning,
    /// The store failed. `uncertain` when an append may have been stored.
    #[error("{}", if *uncertain { format!("the store failed and the outcome is unknown; retry with the same request_id: {source}") } else { format!("the store failed: {source}") })]
    Store {
        /// The store's error.
        source: StoreError,
        /// Whether an append may have landed.
        uncertain: bool,
    },
    /// A stored event could not be read: the store holds something this build cannot decode.
    #[error("stored event at {position} cannot be read: {problem}")]
    Corrupt {
        /// Where.
        position: String,
        /// What.
        problem: String,
    },
    /// This replica did not reach the requested position before the deadline.
    #[error(
        "this replica is at {at}, not yet at min_position {wanted}; retry or ask another replica"
    )]
    Behind {
        /// The position asked for.
        wanted: String,
        /// The position reached.
        at: String,
    },
    /// A client stream failed to deliver its next message (too large, cut, cancelled): its own
    /// status code is kept, so an oversized message of a stream is OUT_OF_RANGE as it is for a
    /// unary call.
    #[error("the request stream failed: {message}")]
    Stream {
        /// The transport's code.
        code: Code,
        /// The transport's message.
        message: String,
    },
    /// A unary call took longer than the server allows (`--timeout-seconds`).
    #[error("the call took longer than this server's limit of {} s (--timeout-seconds)", .0.as_secs())]
    TooLong(std::time::Duration),
    /// The service is shutting down or its background work stopped.
    #[error("{0}")]
    Unavailable(String),
    /// The caller's credentials are missing or bad.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller has used up its allowance of calls (the policy's limits).
    #[error("{who} has made more calls than its allowance; retry in {} ms", .retry_after.as_millis())]
    TooManyCalls {
        /// The caller.
        who: String,
        /// When a call will be admitted again.
        retry_after: std::time::Duration,
    },
    /// The caller may not do what it asked (the policy), here or then.
    #[error("{0}")]
    PermissionDenied(#[from] registry_access::Denied),
    /// One record of an import was refused (the records before it were recorded).
    #[error("{}: {source}", record_path(*index, *kind))]
    Record {
        /// Its index from the start of the import's stream.
        index: usize,
        /// The record's kind (the `ImportRecord` field set), if it had one.
        kind: Option<&'static str>,
        /// Records of the call recorded before it.
        recorded: usize,
        /// Records of the call before it that were recorded already (replayed).
        replayed: usize,
        /// Why it was refused.
        source: Box<ApiError>,
    },
}

impl ApiError {
    /// This error as the failure of the `index`-th question of a batch: its field and message
    /// name the question (`requests[3].date`).
    pub fn in_batch(self, index: usize) -> registry_proto::v1::QuestionError {
        let (field, message) = match &self {
            Self::Invalid { field, problem } => {
                let field = format!("requests[{index}].{field}");
                let message = format!("{field}: {problem}");
                (field, message)
            }
            _ => (String::new(), format!("requests[{index}]: {self}")),
        };
        registry_proto::v1::QuestionError {
            code: self.code() as i32,
            message: bounded(message),
            field,
        }
    }

    /// A malformed request field.
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// Whether the error refuses the request itself (a malformed field, a broken rule, an
    /// unknown or reused resource, an oversized event), rather than the service failing it.
    pub fn is_refusal(&self) -> bool {
        match self {
            Self::Invalid { .. } | Self::Domain(_) | Self::RequestIdReused { .. } => true,
            Self::Store { source, .. } => matches!(source, StoreError::EventTooLarge { .. }),
            Self::Record { source, .. } => source.is_refusal(),
            _ => false,
        }
    }

    /// The status code callers see.
    pub fn code(&self) -> Code {
        match self {
            Self::Record { source, .. } => source.code(),
            Self::Invalid { .. } => Code::InvalidArgument,
            Self::Domain(e) => match e.kind() {
                ErrorKind::InvalidArgument => Code::InvalidArgument,
                ErrorKind::NotFound => Code::NotFound,
                ErrorKind::AlreadyExists => Code::AlreadyExists,
                ErrorKind::FailedPrecondition => Code::FailedPrecondition,
            },
            Self::NotFound(_) | Self::NotOnDay { .. } => Code::NotFound,
            Self::RequestIdReused { .. } => Code::AlreadyExists,
            Self::Contention(_) | Self::RebuildRunning => Code::Aborted,
            Self::NotSigned(_) => Code::FailedPrecondition,
            Self::Store { source, .. } => match source {
                StoreError::EventTooLarge { .. } => Code::InvalidArgument,
                StoreError::Unsupported(_) => Code::Unimplemented,
                StoreError::WrongExpectedRevision { .. } => Code::Aborted,
                // gRPC's code for "the entire file system is out of space".
                StoreError::Full(_) => Code::ResourceExhausted,
                _ => Code::Unavailable,
            },
            Self::Corrupt { .. } => Code::DataLoss,
            Self::Behind { .. } => Code::DeadlineExceeded,
            Self::Unavailable(_) => Code::Unavailable,
            Self::Stream { code, .. } => *code,
            Self::TooLong(_) => Code::DeadlineExceeded,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::TooManyCalls { .. } | Self::TooLarge(_) => Code::ResourceExhausted,
        }
    }
}

/// Where a record of an import is in its request: `records[3].holding`.
fn record_path(index: usize, kind: Option<&str>) -> String {
    match kind {
        Some(kind) => format!("records[{index}].{kind}"),
        None => format!("records[{index}]"),
    }
}

impl From<StoreError> for ApiError {
    fn from(source: StoreError) -> Self {
        let uncertain = matches!(
            source,
            StoreError::Backend {
                uncertain: true,
                ..
            }
        );
        Self::Store { source, uncertain }
    }
}

/// The most bytes of a status message or detail text. Values a caller sent are quoted short
/// where they are echoed ([`registry_domain::quote`]); this bound holds whatever a message
/// says, so a reply's headers stay far below what gRPC clients accept (8 to 16 KiB).
const MAX_MESSAGE_BYTES: usize = 2048;

/// `text`, cut on a character boundary to [`MAX_MESSAGE_BYTES`].
fn bounded(mut text: String) -> String {
    if text.len() > MAX_MESSAGE_BYTES {
        let mut cut = MAX_MESSAGE_BYTES - '…'.len_utf8();
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let code = error.code();
        let message = bounded(error.to_string());
        let mut details = ErrorDetails::new();
        if let ApiError::Record {
            index,
            kind,
            recorded,
            replayed,
            source,
        } = &error
        {
            // The record's own details, with its place: field paths start at the record.
            let prefix = record_path(*index, *kind);
            let (field, reason) = match source.as_ref() {
                ApiError::Invalid { field, problem } => {
                    (Some((field.clone(), problem)), "INVALID_FIELD")
                }
                ApiError::Domain(DomainError::InvalidField { field, problem }) => {
                    (Some(((*field).to_owned(), problem)), "INVALID_FIELD")
                }
                ApiError::Domain(e) => (None, e.rule()),
                _ => (None, "RECORD_REFUSED"),
            };
            if let Some((field, problem)) = field {
                details.add_bad_request_violation(
                    format!("{prefix}.{field}"),
                    bounded(problem.clone()),
                );
            }
            details.set_error_info(
                reason,
                ERROR_DOMAIN,
                [
                    ("record_index".to_owned(), index.to_string()),
                    ("recorded".to_owned(), recorded.to_string()),
                    ("replayed".to_owned(), replayed.to_string()),
                ],
            );
            return Status::with_error_details(code, message, details);
        }
        match &error {
            ApiError::Invalid { field, problem } => {
                details.add_bad_request_violation(field.clone(), bounded(problem.clone()));
            }
            ApiError::Domain(DomainError::InvalidField { field, problem }) => {
                details.add_bad_request_violation(*field, bounded(problem.clone()));
            }
            ApiError::Domain(e) => {
                details.set_error_info(e.rule(), ERROR_DOMAIN, []);
            }
            ApiError::TooManyCalls { retry_after, .. } => {
                details.set_retry_info(Some(*retry_after));
            }
            ApiError::RequestIdReused { .. } => {
                details.set_error_info("REQUEST_ID_REUSED", ERROR_DOMAIN, []);
                details.add_bad_request_violation("request_id", "was used by a different request");
            }
            _ => return Status::new(code, message),
        }
        Status::with_error_details(code, message, details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_rule_names_itself_in_the_status() {
        let error = ApiError::Domain(DomainError::AlreadyEnded(
            registry_domain::EntityRef::Holding(registry_domain::HoldingId::new()),
        ));
        let status = Status::from(error);
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(
            status.get_details_error_info().map(|info| info.reason),
            Some("ALREADY_ENDED".to_owned())
        );
    }

    #[test]
    fn no_message_outgrows_its_bound() {
        let status = Status::from(ApiError::invalid("kinds[0]", "ệ".repeat(20_000)));
        assert!(status.message().len() <= MAX_MESSAGE_BYTES);
        assert!(status.message().ends_with('…'));
        let violations = status
            .get_details_bad_request()
            .map(|b| b.field_violations)
            .unwrap_or_default();
        assert!(violations[0].description.len() <= MAX_MESSAGE_BYTES);
    }

    #[test]
    fn a_bad_field_is_named_in_message_and_details() {
        let status = Status::from(ApiError::invalid(
            "valid_from",
            "\"2024-02-30\" is not a date",
        ));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().starts_with("valid_from: "));
        let violations = status
            .get_details_bad_request()
            .map(|b| b.field_violations)
            .unwrap_or_default();
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "valid_from");
    }
}
