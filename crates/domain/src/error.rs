//! The typed errors of `decide`: what cannot be true, and why.
//!
//! Each variant names the rule it enforces ([`DomainError::rule`]) and says which gRPC family of
//! status it becomes ([`DomainError::kind`]); the services map kinds to `tonic::Status` in one
//! place and never inspect messages.

use thiserror::Error;

use crate::date::{Date, Span};
use crate::ids::{EntityRef, HoldingId, OfficeId, PersonId, UnitId};

/// The most characters of a caller's value an error message quotes.
pub const QUOTED_CHARS: usize = 100;

/// A caller's value as an error message quotes it: in quotes, escaped, and cut on a character
/// boundary after [`QUOTED_CHARS`] characters with "…", so that a 20,000-character bad value
/// makes a short message (a reply's headers carry it, and gRPC clients refuse large ones).
/// Every message that echoes input quotes it through here.
pub fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTED_CHARS) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}", format!("{}…", &text[..cut])),
    }
}

/// The family of a [`DomainError`], which decides the status code a caller sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The command is malformed on its own (INVALID_ARGUMENT): fix the request.
    InvalidArgument,
    /// The command names something the registry does not have (NOT_FOUND).
    NotFound,
    /// The command would create something that already exists (ALREADY_EXISTS).
    AlreadyExists,
    /// The command is well-formed but would make the registry say something impossible
    /// (FAILED_PRECONDITION): the rule is named.
    FailedPrecondition,
}

/// Why a command was rejected. Nothing is recorded when a command is rejected.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DomainError {
    /// A field of the command is malformed (empty name, too long, wrong count of units, ...).
    #[error("{field}: {problem}")]
    InvalidField {
        /// The field, as a dotted path (`holding.start`).
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The command names an entity the registry does not know.
    #[error("{0} not found")]
    NotFound(EntityRef),
    /// The entity was retracted (entered in error); it can no longer be used.
    #[error("{0} was retracted")]
    WasRetracted(EntityRef),
    /// The command would create an entity with an id already in use (retracted ids stay used).
    #[error("{0} already exists")]
    AlreadyExists(EntityRef),
    /// An end on or before the start.
    #[error("{what}: end {end} is not after start {start}")]
    EndBeforeStart {
        /// What has the interval.
        what: EntityRef,
        /// The start as given.
        start: String,
        /// The end as given.
        end: String,
    },
    /// More holders than the office's capacity on some day.
    #[error("{office} may have {capacity} holder(s) on a day but would have {count} on {day}: {holders:?}")]
    CapacityExceeded {
        /// The office.
        office: OfficeId,
        /// Its capacity.
        capacity: u32,
        /// The number of holders there would be.
        count: usize,
        /// The first day with too many holders.
        day: Date,
        /// The holdings that would overlap on that day.
        holders: Vec<HoldingId>,
    },
    /// A holding outside the life of its office.
    #[error("{holding} covers {span} but {office} exists only {life}")]
    OutsideOfficeLife {
        /// The holding.
        holding: HoldingId,
        /// Its office.
        office: OfficeId,
        /// The days the holding surely covers.
        span: Span,
        /// The life of the office.
        life: Span,
    },
    /// Something placed on a day when a unit it needs does not exist.
    #[error("{what} needs {unit} on {day}, but the unit does not exist then")]
    OutsideUnitLife {
        /// What needs the unit.
        what: EntityRef,
        /// The unit.
        unit: UnitId,
        /// The day.
        day: Date,
    },
    /// A holding that starts before its holder was born.
    #[error("{holding} starts before {person} was born ({birth})")]
    BeforeBirth {
        /// The holding.
        holding: HoldingId,
        /// The person.
        person: PersonId,
        /// The birth date.
        birth: String,
    },
    /// Ending or abolishing what has already ended.
    #[error("{0} has already ended")]
    AlreadyEnded(EntityRef),
    /// A reorganisation leaves the fate of an office or of a child unit unstated.
    #[error("reorganisation of {unit} on {day} does not say what becomes of {what}")]
    FateNotStated {
        /// The office or child unit left without a fate.
        what: EntityRef,
        /// The unit that ends.
        unit: UnitId,
        /// The day it ends.
        day: Date,
    },
    /// A concurrent or ex officio holding whose cause is not a holding of the same person.
    #[error("{holding} depends on {cause}, which is not a holding of the same person")]
    CauseMismatch {
        /// The dependent holding.
        holding: HoldingId,
        /// The cause it names.
        cause: HoldingId,
    },
    /// A holding's term belongs to another body than its office's unit.
    #[error("{holding}: term {term} is a term of {term_body}, not of {unit}")]
    TermOfAnotherBody {
        /// The holding.
        holding: HoldingId,
        /// The term.
        term: EntityRef,
        /// The body the term belongs to.
        term_body: UnitId,
        /// The office's unit.
        unit: UnitId,
    },
    /// A retraction or change of something others still rest on.
    #[error("{target} is still used by {used_by}")]
    InUse {
        /// What the command would remove or change.
        target: EntityRef,
        /// What rests on it.
        used_by: EntityRef,
    },
    /// A move that would make a unit its own ancestor.
    #[error("{unit} cannot be placed under {parent}: {parent} lies under {unit} on {day}")]
    StructureCycle {
        /// The unit moved.
        unit: UnitId,
        /// The proposed parent.
        parent: UnitId,
        /// The day.
        day: Date,
    },
}

impl DomainError {
    /// The family of status this error becomes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidField { .. } => ErrorKind::InvalidArgument,
            Self::NotFound(_) | Self::WasRetracted(_) => ErrorKind::NotFound,
            Self::AlreadyExists(_) => ErrorKind::AlreadyExists,
            _ => ErrorKind::FailedPrecondition,
        }
    }

    /// A stable machine-readable name of the broken rule (used as `ErrorInfo.reason`).
    pub fn rule(&self) -> &'static str {
        match self {
            Self::InvalidField { .. } => "INVALID_FIELD",
            Self::NotFound(_) => "NOT_FOUND",
            Self::WasRetracted(_) => "RETRACTED",
            Self::AlreadyExists(_) => "ALREADY_EXISTS",
            Self::EndBeforeStart { .. } => "END_BEFORE_START",
            Self::CapacityExceeded { .. } => "CAPACITY_EXCEEDED",
            Self::OutsideOfficeLife { .. } => "OUTSIDE_OFFICE_LIFE",
            Self::OutsideUnitLife { .. } => "OUTSIDE_UNIT_LIFE",
            Self::BeforeBirth { .. } => "BEFORE_BIRTH",
            Self::AlreadyEnded(_) => "ALREADY_ENDED",
            Self::FateNotStated { .. } => "FATE_NOT_STATED",
            Self::CauseMismatch { .. } => "CAUSE_MISMATCH",
            Self::TermOfAnotherBody { .. } => "TERM_OF_ANOTHER_BODY",
            Self::InUse { .. } => "IN_USE",
            Self::StructureCycle { .. } => "STRUCTURE_CYCLE",
        }
    }

    pub(crate) fn invalid(field: &'static str, problem: impl Into<String>) -> Self {
        Self::InvalidField {
            field,
            problem: problem.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_value_is_quoted_short_and_cut_on_a_character() {
        assert_eq!(quote("2024-03"), "\"2024-03\"");
        let long = "ệ".repeat(1_500);
        let quoted = quote(&long);
        assert_eq!(quoted.chars().count(), QUOTED_CHARS + 3);
        assert!(quoted.ends_with("…\""));
        assert_eq!(quote(&"x".repeat(QUOTED_CHARS)).len(), QUOTED_CHARS + 2);
        assert_eq!(quote("tab\there"), "\"tab\\there\"");
    }
}
