//! Argument parsing shared by the subcommands: dates (ISO 8601 or dd/mm/yyyy), instants, the
//! API's enums by short name, legal bases, and the errors with their exit codes.

use std::str::FromStr;

use clap::Args;
use registry_client::v1;
use registry_client::v1::LegalBasis;
use thiserror::Error;
use tonic::Code;
use tonic_types::StatusExt;

/// Why `regctl` failed; each kind has its own exit status.
#[derive(Debug, Error)]
pub enum CliError {
    /// Bad arguments or input (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The server refused an argument (exit 3).
    #[error("invalid: {0}")]
    Invalid(String),
    /// Something named does not exist (exit 4).
    #[error("not found: {0}")]
    NotFound(String),
    /// The registry refused the change: a rule would break, or it exists already (exit 5).
    #[error("refused: {0}")]
    Refused(String),
    /// Concurrent writes kept conflicting (exit 6): retry.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The server could not be reached or failed (exit 7).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The server does not know who you are, or does not let you (exit 8).
    #[error("not allowed: {0}")]
    Denied(String),
    /// The verifiable log does not verify: something was altered, or the server's log does
    /// not extend what was saved (exit 9).
    #[error("does not verify: {0}")]
    Unverified(String),
    /// The user declined the confirmation (exit 10).
    #[error("nothing changed: {0}")]
    Declined(String),
    /// A local file could not be read or written (exit 1).
    #[error("{0}")]
    Io(String),
}

impl CliError {
    /// The process exit status.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Io(_) => 1,
            Self::Usage(_) => 2,
            Self::Invalid(_) => 3,
            Self::NotFound(_) => 4,
            Self::Refused(_) => 5,
            Self::Conflict(_) => 6,
            Self::Unavailable(_) => 7,
            Self::Denied(_) => 8,
            Self::Unverified(_) => 9,
            Self::Declined(_) => 10,
        }
    }
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        let mut message = status.message().to_owned();
        if let Some(info) = status.get_details_error_info() {
            message = format!("{message} [rule {}]", info.reason);
        }
        match status.code() {
            Code::InvalidArgument | Code::OutOfRange => Self::Invalid(message),
            Code::NotFound => Self::NotFound(message),
            Code::FailedPrecondition | Code::AlreadyExists => Self::Refused(message),
            Code::Aborted => Self::Conflict(message),
            Code::Unauthenticated | Code::PermissionDenied => {
                Self::Denied(format!("{:?}: {message}", status.code()))
            }
            // The connection failed under the call (a plaintext client meeting a TLS server
            // sees HTTP/2 fail): the causes, and what to try.
            _ if message.contains("h2 protocol error") || message == "transport error" => {
                Self::Unavailable(format!(
                    "{:?}: {} (the connection failed: if the server speaks TLS, use https:// \
                     and --tls-ca)",
                    status.code(),
                    registry_client::causes(&status)
                ))
            }
            _ => Self::Unavailable(format!("{:?}: {message}", status.code())),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.to_string())
    }
}

/// A calendar date as the API writes it: `2024-03-18` (from `2024-03-18` or `18/03/2024`).
pub fn date(flag: &str, text: &str) -> Result<String, CliError> {
    registry_domain::Date::from_str(text.trim())
        .map(|d| d.to_string())
        .map_err(|e| {
            CliError::Usage(format!(
                "{flag}: {text:?} is not a date ({e}); write 2024-03-18 or 18/03/2024"
            ))
        })
}

/// A date known to the day, the month or the year (`2024-03-18`, `2024-03`, `2024`, `03/2024`).
pub fn partial_date(flag: &str, text: &str) -> Result<String, CliError> {
    registry_domain::PartialDate::from_str(text.trim())
        .map(|d| d.to_string())
        .map_err(|e| {
            CliError::Usage(format!(
                "{flag}: {text:?} is not a date ({e}); write 2024-03-18, 2024-03 or 2024"
            ))
        })
}

/// An optional date.
pub fn opt_date(flag: &str, text: Option<&str>) -> Result<String, CliError> {
    text.map_or(Ok(String::new()), |t| date(flag, t))
}

/// A recorded instant: RFC 3339 (`2025-07-01T08:00:00Z`) or a date (its first instant, UTC).
pub fn instant(flag: &str, text: &str) -> Result<prost_types::Timestamp, CliError> {
    use time::format_description::well_known::Rfc3339;
    let parsed = time::OffsetDateTime::parse(text.trim(), &Rfc3339).or_else(|_| {
        registry_domain::Date::from_str(text.trim())
            .ok()
            .and_then(|d| {
                time::Date::from_calendar_date(
                    d.year(),
                    time::Month::try_from(d.month()).ok()?,
                    d.day(),
                )
                .ok()
            })
            .map(|d| d.midnight().assume_utc())
            .ok_or(())
    });
    let at = parsed.map_err(|()| {
        CliError::Usage(format!(
            "{flag}: {text:?} is not an instant; write 2025-07-01T08:00:00Z or a date"
        ))
    })?;
    Ok(prost_types::Timestamp {
        seconds: at.unix_timestamp(),
        nanos: at.nanosecond() as i32,
    })
}

/// An optional instant.
pub fn opt_instant(
    flag: &str,
    text: Option<&str>,
) -> Result<Option<prost_types::Timestamp>, CliError> {
    text.map(|t| instant(flag, t)).transpose()
}

/// Writes a timestamp as RFC 3339.
pub fn show_instant(t: Option<&prost_types::Timestamp>) -> String {
    let Some(t) = t else { return String::new() };
    time::OffsetDateTime::from_unix_timestamp(t.seconds)
        .ok()
        .and_then(|at| at.replace_nanosecond(t.nanos.max(0) as u32).ok())
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Reads a value of one of the API's enums by its short name (`party-committee`), given the
/// enum's prefix (`UNIT_KIND`) and its parser.
pub fn enum_value(
    flag: &str,
    text: &str,
    prefix: &str,
    parse: fn(&str) -> Option<i32>,
    names: &[&str],
) -> Result<i32, CliError> {
    let full = format!(
        "{prefix}_{}",
        text.trim().to_uppercase().replace(['-', ' '], "_")
    );
    match parse(&full) {
        Some(0) | None => Err(CliError::Usage(format!(
            "{flag}: {text:?} is not one of: {}",
            names.join(", ")
        ))),
        Some(value) => Ok(value),
    }
}

/// Unit kinds by short name.
pub const UNIT_KINDS: &[&str] = &[
    "party-committee",
    "party-standing-board",
    "party-commission",
    "peoples-council",
    "peoples-committee",
    "fatherland-front",
    "socio-political-organisation",
    "advisory-agency",
    "administrative-area",
];
/// Levels by short name.
pub const LEVELS: &[&str] = &["central", "province", "district", "commune"];
/// Office kinds by short name.
pub const OFFICE_KINDS: &[&str] = &[
    "secretary",
    "standing-vice-secretary",
    "vice-secretary",
    "standing-board-member",
    "executive-committee-member",
    "chair",
    "vice-chair",
    "head",
    "deputy-head",
    "member",
];
/// How holdings begin, by short name.
pub const BEGINNINGS: &[&str] = &[
    "elected",
    "appointed",
    "assigned",
    "transferred",
    "acting",
    "concurrent",
    "ex-officio",
];
/// End reasons by short name.
pub const END_REASONS: &[&str] = &[
    "term-end",
    "dismissal",
    "resignation",
    "transfer",
    "retirement",
    "death",
    "office-abolished",
    "unit-merged",
    "unit-split",
    "unit-dissolved",
];

fn unit_kind_parse(s: &str) -> Option<i32> {
    v1::UnitKind::from_str_name(s).map(|v| v as i32)
}
fn level_parse(s: &str) -> Option<i32> {
    v1::Level::from_str_name(s).map(|v| v as i32)
}
fn office_kind_parse(s: &str) -> Option<i32> {
    v1::OfficeKind::from_str_name(s).map(|v| v as i32)
}
fn beginning_parse(s: &str) -> Option<i32> {
    v1::BeginningKind::from_str_name(s).map(|v| v as i32)
}
fn end_reason_parse(s: &str) -> Option<i32> {
    v1::EndReason::from_str_name(s).map(|v| v as i32)
}

/// A unit kind.
pub fn unit_kind(flag: &str, text: &str) -> Result<i32, CliError> {
    enum_value(flag, text, "UNIT_KIND", unit_kind_parse, UNIT_KINDS)
}
/// A level.
pub fn level(flag: &str, text: &str) -> Result<i32, CliError> {
    enum_value(flag, text, "LEVEL", level_parse, LEVELS)
}
/// An office kind.
pub fn office_kind(flag: &str, text: &str) -> Result<i32, CliError> {
    enum_value(flag, text, "OFFICE_KIND", office_kind_parse, OFFICE_KINDS)
}
/// How a holding began.
pub fn beginning(flag: &str, text: &str) -> Result<i32, CliError> {
    enum_value(flag, text, "BEGINNING_KIND", beginning_parse, BEGINNINGS)
}
/// Why a holding ended.
pub fn end_reason(flag: &str, text: &str) -> Result<i32, CliError> {
    enum_value(flag, text, "END_REASON", end_reason_parse, END_REASONS)
}

/// The short name of an enum value (`UNIT_KIND_PARTY_COMMITTEE` → `party-committee`).
pub fn short(full: &str, prefix: &str) -> String {
    full.strip_prefix(prefix)
        .and_then(|s| s.strip_prefix('_'))
        .unwrap_or(full)
        .to_lowercase()
        .replace('_', "-")
}

/// A capacity: `sole`, `unbounded`, or a number.
pub fn capacity(text: &str) -> Result<v1::Capacity, CliError> {
    match text.trim() {
        "sole" | "1" => Ok(v1::Capacity {
            kind: v1::CapacityKind::Sole as i32,
            limit: 1,
        }),
        "unbounded" => Ok(v1::Capacity {
            kind: v1::CapacityKind::Unbounded as i32,
            limit: 0,
        }),
        n => n
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .map(|limit| v1::Capacity {
                kind: v1::CapacityKind::Limited as i32,
                limit,
            })
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "--capacity: {n:?} is not sole, unbounded or a number above 0"
                ))
            }),
    }
}

/// The legal basis of a change: document number, date of issue, issuer.
#[derive(Args, Clone, Debug, Default)]
pub struct BasisArgs {
    /// The document number ("1679/NQ-UBTVQH15").
    #[arg(long = "basis", value_name = "NUMBER")]
    pub number: Option<String>,
    /// The day the document was issued.
    #[arg(long = "basis-date", value_name = "DATE")]
    pub issued_on: Option<String>,
    /// Who issued it ("Ủy ban Thường vụ Quốc hội").
    #[arg(long = "issuer", value_name = "TEXT")]
    pub issuer: Option<String>,
    /// The day it takes effect, when not the day of issue.
    #[arg(long = "basis-effective", value_name = "DATE")]
    pub effective_on: Option<String>,
}

impl BasisArgs {
    /// The basis, or `None` when no part of it is given; an incomplete one is an error.
    pub fn optional(&self) -> Result<Option<LegalBasis>, CliError> {
        if self.number.is_none()
            && self.issued_on.is_none()
            && self.issuer.is_none()
            && self.effective_on.is_none()
        {
            return Ok(None);
        }
        let (Some(number), Some(issued_on), Some(issuer)) =
            (&self.number, &self.issued_on, &self.issuer)
        else {
            return Err(CliError::Usage(
                "a legal basis needs --basis, --basis-date and --issuer together".into(),
            ));
        };
        Ok(Some(LegalBasis {
            number: number.clone(),
            issued_on: date("--basis-date", issued_on)?,
            issuer: issuer.clone(),
            effective_on: opt_date("--basis-effective", self.effective_on.as_deref())?,
        }))
    }

    /// The basis, which this change must have.
    pub fn required(&self) -> Result<LegalBasis, CliError> {
        self.optional()?.ok_or_else(|| {
            CliError::Usage(
                "this change needs its legal basis: --basis NUMBER --basis-date DATE --issuer TEXT"
                    .into(),
            )
        })
    }
}

/// A resource name from a bare UUID or a name (`persons/…`).
pub fn name(collection: &str, text: &str) -> String {
    let text = text.trim();
    if text.contains('/') {
        text.to_owned()
    } else {
        format!("{collection}/{text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vietnamese_dates_are_read() {
        assert_eq!(
            date("--from", "18/03/2024").ok().as_deref(),
            Some("2024-03-18")
        );
        assert!(date("--from", "30/02/2024").is_err());
        assert_eq!(
            partial_date("--from", "03/2024").ok().as_deref(),
            Some("2024-03")
        );
    }

    #[test]
    fn enums_by_short_name() {
        assert_eq!(
            unit_kind("--kind", "party-committee").ok(),
            Some(v1::UnitKind::PartyCommittee as i32)
        );
        assert!(unit_kind("--kind", "unspecified").is_err());
        assert!(unit_kind("--kind", "parliament").is_err());
        assert_eq!(
            short("UNIT_KIND_PARTY_COMMITTEE", "UNIT_KIND"),
            "party-committee"
        );
    }
}
