//! Translation between protobuf messages and domain values, at the edge of every service.
//!
//! Input parsing names the request field in every error (`valid_from: "2024-02-30" is not a
//! date`). Empty strings mean "not given" (proto3 has no presence for scalars): `required`
//! fields reject them, optional ones map them to `None`. Enum fields reject the zero
//! `*_UNSPECIFIED` value and numbers the API does not define.

use std::str::FromStr;

use registry_domain as d;
use registry_domain::{clean_text, quote, Date, PartialDate};
use registry_proto::v1 as pb;

use crate::error::ApiError;

/// Parsing result.
pub type Parsed<T> = Result<T, ApiError>;

/// Joins a field path: `field("basis", "issued_on")` is `basis.issued_on`.
pub fn field(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A required resource name or bare UUID of type `T` (`persons/{uuid}`).
pub fn id<T: FromStr>(field: &str, text: &str, collection: &str) -> Parsed<T> {
    if text.trim().is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    text.trim().parse().map_err(|_| {
        ApiError::invalid(
            field,
            format!("{} is not a {collection}/{{uuid}} name", quote(text)),
        )
    })
}

/// An optional resource name: `None` when empty.
pub fn opt_id<T: FromStr>(field: &str, text: &str, collection: &str) -> Parsed<Option<T>> {
    if text.trim().is_empty() {
        Ok(None)
    } else {
        id(field, text, collection).map(Some)
    }
}

/// The id of a new resource: the caller's UUID, or a fresh UUID v7 when empty.
pub fn new_id<T: FromStr + From<uuid::Uuid>>(
    field: &str,
    text: &str,
    collection: &str,
) -> Parsed<T> {
    Ok(opt_id(field, text, collection)?.unwrap_or_else(|| T::from(uuid::Uuid::now_v7())))
}

/// Several resource names.
pub fn ids<T: FromStr>(field: &str, texts: &[String], collection: &str) -> Parsed<Vec<T>> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| id(&format!("{field}[{i}]"), text, collection))
        .collect()
}

/// A required calendar date (`2024-03-18` or `18/03/2024`).
pub fn date(field: &str, text: &str) -> Parsed<Date> {
    if text.trim().is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    text.trim()
        .parse()
        .map_err(|e: d::DateError| ApiError::invalid(field, e.to_string()))
}

/// An optional calendar date.
pub fn opt_date(field: &str, text: &str) -> Parsed<Option<Date>> {
    if text.trim().is_empty() {
        Ok(None)
    } else {
        date(field, text).map(Some)
    }
}

/// A required partial date (`2024-03-18`, `2024-03` or `2024`).
pub fn partial_date(field: &str, text: &str) -> Parsed<PartialDate> {
    if text.trim().is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    text.trim()
        .parse()
        .map_err(|e: d::DateError| ApiError::invalid(field, e.to_string()))
}

/// An optional partial date.
pub fn opt_partial_date(field: &str, text: &str) -> Parsed<Option<PartialDate>> {
    if text.trim().is_empty() {
        Ok(None)
    } else {
        partial_date(field, text).map(Some)
    }
}

/// A required text (a name, a title): trimmed, NFC, 1 to 500 characters, no control characters.
pub fn text(field: &str, value: &str) -> Parsed<String> {
    clean_text("text", value).map_err(|e| match e {
        d::DomainError::InvalidField { problem, .. } => ApiError::invalid(field, problem),
        other => ApiError::Domain(other),
    })
}

/// A legal basis that must be given.
pub fn basis(field: &str, basis: Option<&pb::LegalBasis>) -> Parsed<d::LegalBasis> {
    let Some(b) = basis else {
        return Err(ApiError::invalid(field, "is required"));
    };
    Ok(d::LegalBasis {
        number: text(&self::field(field, "number"), &b.number)?,
        issued_on: date(&self::field(field, "issued_on"), &b.issued_on)?,
        issuer: text(&self::field(field, "issuer"), &b.issuer)?,
        effective_on: opt_date(&self::field(field, "effective_on"), &b.effective_on)?,
    })
}

/// A legal basis that may be absent (an absent message or one with every field empty).
pub fn opt_basis(field: &str, b: Option<&pb::LegalBasis>) -> Parsed<Option<d::LegalBasis>> {
    match b {
        None => Ok(None),
        Some(b) if *b == pb::LegalBasis::default() => Ok(None),
        Some(b) => basis(field, Some(b)).map(Some),
    }
}

/// A required amendment; `actor` is the authenticated caller.
pub fn amendment(field: &str, a: Option<&pb::Amendment>, actor: &str) -> Parsed<d::Amendment> {
    let Some(a) = a else {
        return Err(ApiError::invalid(
            self::field(field, "reason"),
            "is required: say why the record is amended",
        ));
    };
    if a.reason.trim().is_empty() {
        return Err(ApiError::invalid(
            self::field(field, "reason"),
            "is required: say why the record is amended",
        ));
    }
    Ok(d::Amendment {
        reason: text(&self::field(field, "reason"), &a.reason)?,
        actor: actor.to_owned(),
        basis: opt_basis(&self::field(field, "basis"), a.basis.as_ref())?,
    })
}

/// Reads a protobuf enum field: the zero value and unknown numbers are rejected.
fn known<E: TryFrom<i32>>(field: &str, value: i32, what: &str) -> Parsed<E> {
    if value == 0 {
        return Err(ApiError::invalid(
            field,
            format!("is required: give a {what}"),
        ));
    }
    E::try_from(value)
        .map_err(|_| ApiError::invalid(field, format!("{value} is not a known {what}")))
}

/// Maps a protobuf enum to a domain enum and back, one table per pair.
macro_rules! enum_map {
    ($to_domain:ident, $to_proto:ident, $what:literal, $pb:ty, $d:ty, { $($p:ident => $v:ident),* $(,)? }) => {
        /// Reads the enum field (zero and unknown values are rejected).
        pub fn $to_domain(field: &str, value: i32) -> Parsed<$d> {
            let value: $pb = known(field, value, $what)?;
            match value {
                $(<$pb>::$p => Ok(<$d>::$v),)*
                #[allow(unreachable_patterns)]
                _ => Err(ApiError::invalid(field, concat!("is required: give a ", $what))),
            }
        }

        /// Writes the enum.
        pub fn $to_proto(value: $d) -> $pb {
            match value {
                $(<$d>::$v => <$pb>::$p,)*
            }
        }
    };
}

enum_map!(unit_kind, unit_kind_pb, "unit kind", pb::UnitKind, d::UnitKind, {
    PartyCommittee => PartyCommittee,
    PartyStandingBoard => PartyStandingBoard,
    PartyCommission => PartyCommission,
    PeoplesCouncil => PeoplesCouncil,
    PeoplesCommittee => PeoplesCommittee,
    FatherlandFront => FatherlandFront,
    SocioPoliticalOrganisation => SocioPoliticalOrganisation,
    AdvisoryAgency => AdvisoryAgency,
    AdministrativeArea => AdministrativeArea,
});

enum_map!(level, level_pb, "level", pb::Level, d::Level, {
    Central => Central,
    Province => Province,
    District => District,
    Commune => Commune,
});

enum_map!(office_kind, office_kind_pb, "office kind", pb::OfficeKind, d::OfficeKind, {
    Secretary => Secretary,
    StandingViceSecretary => StandingViceSecretary,
    ViceSecretary => ViceSecretary,
    StandingBoardMember => StandingBoardMember,
    ExecutiveCommitteeMember => ExecutiveCommitteeMember,
    Chair => Chair,
    ViceChair => ViceChair,
    Head => Head,
    DeputyHead => DeputyHead,
    Member => Member,
});

enum_map!(end_reason, end_reason_pb, "end reason", pb::EndReason, d::EndReason, {
    TermEnd => TermEnd,
    Dismissal => Dismissal,
    Resignation => Resignation,
    Transfer => Transfer,
    Retirement => Retirement,
    Death => Death,
    OfficeAbolished => OfficeAbolished,
    UnitMerged => UnitMerged,
    UnitSplit => UnitSplit,
    UnitDissolved => UnitDissolved,
});

enum_map!(unit_ending, unit_ending_pb, "unit ending", pb::UnitEnding, d::UnitEnding, {
    Merged => Merged,
    Absorbed => Absorbed,
    Split => Split,
    Dissolved => Dissolved,
});

/// A required capacity.
pub fn capacity(field: &str, c: Option<&pb::Capacity>) -> Parsed<d::Capacity> {
    let Some(c) = c else {
        return Err(ApiError::invalid(field, "is required"));
    };
    let kind: pb::CapacityKind = known(&self::field(field, "kind"), c.kind, "capacity kind")?;
    let limit_field = self::field(field, "limit");
    match kind {
        pb::CapacityKind::Sole => Ok(d::Capacity::Sole),
        pb::CapacityKind::Unbounded => Ok(d::Capacity::Unbounded),
        pb::CapacityKind::Limited if c.limit == 0 => Err(ApiError::invalid(
            limit_field,
            "must be at least 1 for a limited capacity",
        )),
        pb::CapacityKind::Limited => Ok(d::Capacity::Limited(c.limit)),
        pb::CapacityKind::Unspecified => Err(ApiError::invalid(limit_field, "is required")),
    }
}

/// Writes a capacity.
pub fn capacity_pb(c: d::Capacity) -> pb::Capacity {
    let (kind, limit) = match c {
        d::Capacity::Sole => (pb::CapacityKind::Sole, 1),
        d::Capacity::Limited(n) => (pb::CapacityKind::Limited, n),
        d::Capacity::Unbounded => (pb::CapacityKind::Unbounded, 0),
    };
    pb::Capacity {
        kind: kind as i32,
        limit,
    }
}

/// A beginning, with its cause for concurrent and ex officio holdings.
pub fn beginning(field: &str, kind: i32, cause_field: &str, cause: &str) -> Parsed<d::Beginning> {
    let kind: pb::BeginningKind = known(field, kind, "beginning kind")?;
    let needs_cause = matches!(
        kind,
        pb::BeginningKind::Concurrent | pb::BeginningKind::ExOfficio
    );
    let cause: Option<d::HoldingId> = opt_id(cause_field, cause, "holdings")?;
    match (needs_cause, cause) {
        (true, None) => {
            return Err(ApiError::invalid(
                cause_field,
                "is required for a concurrent or ex officio holding",
            ))
        }
        (false, Some(_)) => {
            return Err(ApiError::invalid(
                cause_field,
                "is only for concurrent and ex officio holdings",
            ))
        }
        _ => {}
    }
    Ok(match (kind, cause) {
        (pb::BeginningKind::Concurrent, Some(cause)) => d::Beginning::Concurrent { cause },
        (pb::BeginningKind::ExOfficio, Some(cause)) => d::Beginning::ExOfficio { cause },
        (pb::BeginningKind::Elected, _) => d::Beginning::Elected,
        (pb::BeginningKind::Appointed, _) => d::Beginning::Appointed,
        (pb::BeginningKind::Assigned, _) => d::Beginning::Assigned,
        (pb::BeginningKind::Transferred, _) => d::Beginning::Transferred,
        (pb::BeginningKind::Acting, _) => d::Beginning::Acting,
        _ => {
            return Err(ApiError::invalid(
                field,
                "is required: give a beginning kind",
            ))
        }
    })
}

/// Writes a beginning as (kind, cause name).
pub fn beginning_pb(b: d::Beginning) -> (pb::BeginningKind, String) {
    match b {
        d::Beginning::Elected => (pb::BeginningKind::Elected, String::new()),
        d::Beginning::Appointed => (pb::BeginningKind::Appointed, String::new()),
        d::Beginning::Assigned => (pb::BeginningKind::Assigned, String::new()),
        d::Beginning::Transferred => (pb::BeginningKind::Transferred, String::new()),
        d::Beginning::Acting => (pb::BeginningKind::Acting, String::new()),
        d::Beginning::Concurrent { cause } => {
            (pb::BeginningKind::Concurrent, cause.resource_name())
        }
        d::Beginning::ExOfficio { cause } => (pb::BeginningKind::ExOfficio, cause.resource_name()),
    }
}

/// A holding's end: a date, unknown, or open when neither is given and `allow_open`.
pub fn holding_end(
    until_field: &str,
    until: &str,
    unknown_field: &str,
    unknown: bool,
    allow_open: bool,
) -> Parsed<d::HoldingEnd> {
    match (opt_partial_date(until_field, until)?, unknown) {
        (Some(_), true) => Err(ApiError::invalid(
            unknown_field,
            format!("cannot be set together with {until_field}"),
        )),
        (Some(day), false) => Ok(d::HoldingEnd::On(day)),
        (None, true) => Ok(d::HoldingEnd::Unknown),
        (None, false) if allow_open => Ok(d::HoldingEnd::Open),
        (None, false) => Err(ApiError::invalid(
            until_field,
            format!("is required unless {unknown_field} is set"),
        )),
    }
}

/// A pilot model's arrangement.
pub fn arrangement(field: &str, a: Option<&pb::Arrangement>) -> Parsed<d::Arrangement> {
    match a.and_then(|a| a.kind.as_ref()) {
        None => Err(ApiError::invalid(field, "is required")),
        Some(pb::arrangement::Kind::ConcurrentOffices(c)) => {
            Ok(d::Arrangement::ConcurrentOffices {
                roles: c
                    .roles
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let f = format!("{field}.concurrent_offices.roles[{i}]");
                        Ok(d::Role {
                            unit_kind: unit_kind(&self::field(&f, "unit_kind"), r.unit_kind)?,
                            office_kind: office_kind(
                                &self::field(&f, "office_kind"),
                                r.office_kind,
                            )?,
                        })
                    })
                    .collect::<Parsed<_>>()?,
            })
        }
        Some(pb::arrangement::Kind::SharedUnit(s)) => Ok(d::Arrangement::SharedUnit {
            unit_kind: unit_kind(&format!("{field}.shared_unit.unit_kind"), s.unit_kind)?,
            serves: s
                .serves
                .iter()
                .enumerate()
                .map(|(i, k)| unit_kind(&format!("{field}.shared_unit.serves[{i}]"), *k))
                .collect::<Parsed<_>>()?,
        }),
    }
}

/// Writes a legal basis as the read models hold it (borrowed: its strings are copied once, into
/// the answer).
pub fn basis_pb(b: &registry_projections::BasisRef<'_>) -> pb::LegalBasis {
    pb::LegalBasis {
        number: b.number.to_owned(),
        issued_on: b.issued_on.to_string(),
        issuer: b.issuer.to_owned(),
        effective_on: b.effective_on.map(|d| d.to_string()).unwrap_or_default(),
    }
}

/// Writes a recorded instant (microseconds since the Unix epoch).
pub fn timestamp(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: i32::try_from(micros.rem_euclid(1_000_000) * 1_000).unwrap_or(0),
    }
}

/// Reads an optional recorded instant as microseconds since the Unix epoch.
pub fn known_at(field: &str, t: Option<&prost_types::Timestamp>) -> Parsed<Option<i64>> {
    // google.protobuf.Timestamp's range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
    const SECONDS: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;
    let Some(t) = t else { return Ok(None) };
    if !SECONDS.contains(&t.seconds) {
        return Err(ApiError::invalid(
            field,
            format!(
                "seconds {} is outside the Timestamp range (years 1 to 9999)",
                t.seconds
            ),
        ));
    }
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(ApiError::invalid(
            field,
            format!("nanos {} is out of range", t.nanos),
        ));
    }
    t.seconds
        .checked_mul(1_000_000)
        .and_then(|s| s.checked_add(i64::from(t.nanos / 1_000)))
        .map(Some)
        .ok_or_else(|| ApiError::invalid(field, "is out of range"))
}

/// An irregularity as the API shows it.
pub fn irregularity_pb(i: &d::Irregularity) -> pb::Irregularity {
    use d::Irregularity as I;
    let (description, subjects) = match i {
        I::UncoveredConcurrency { person, holdings, on } => (
            format!("{person} holds {} and {} at once on {on}, and no adopted pilot model covers that pair", holdings.0, holdings.1),
            vec![person.to_string(), holdings.0.to_string(), holdings.1.to_string()],
        ),
        I::TooManyOffices { person, count, on } => (
            format!("{person} holds {count} offices on {on}"),
            vec![person.to_string()],
        ),
        I::LongVacancy { office, vacant, days } => (
            format!("{office} stood vacant for {days} days ({vacant})"),
            vec![office.to_string()],
        ),
        I::MissingBasis { holding } => (
            format!("{holding} has no legal basis recorded"),
            vec![holding.to_string()],
        ),
        I::EndUnknown { holding } => (
            format!("{holding} has ended on a day the registry does not know"),
            vec![holding.to_string()],
        ),
    };
    pb::Irregularity {
        kind: i.kind().to_owned(),
        description,
        subjects,
    }
}

/// Any resource name (`holdings/{uuid}`) as an entity reference.
pub fn entity(field: &str, name: &str) -> Parsed<d::EntityRef> {
    let Some((collection, _)) = name.trim().split_once('/') else {
        return Err(if name.trim().is_empty() {
            ApiError::invalid(field, "is required")
        } else {
            ApiError::invalid(
                field,
                format!(
                    "{} is not a resource name such as units/{{uuid}}",
                    quote(name)
                ),
            )
        });
    };
    Ok(match collection {
        "persons" => d::EntityRef::Person(id(field, name, collection)?),
        "units" => d::EntityRef::Unit(id(field, name, collection)?),
        "offices" => d::EntityRef::Office(id(field, name, collection)?),
        "holdings" => d::EntityRef::Holding(id(field, name, collection)?),
        "models" => d::EntityRef::Model(id(field, name, collection)?),
        "adoptions" => d::EntityRef::Adoption(id(field, name, collection)?),
        "terms" => d::EntityRef::Term(id(field, name, collection)?),
        other => {
            return Err(ApiError::invalid(
                field,
                format!("{} is not a collection of the registry", quote(other)),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_dates_name_the_field() {
        let error = date("valid_from", "2024-02-30")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error
                .as_deref()
                .map(|m| m.starts_with("valid_from: \"2024-02-30\" is not a date")),
            Some(true),
            "{error:?}"
        );
    }

    #[test]
    fn unspecified_and_unknown_enum_values_are_rejected() {
        assert!(unit_kind("kind", 0).is_err());
        assert!(unit_kind("kind", 99).is_err());
        assert_eq!(
            unit_kind("kind", 9).ok(),
            Some(d::UnitKind::AdministrativeArea)
        );
    }

    #[test]
    fn timestamps_round_trip_in_microseconds() {
        let micros = 1_732_579_200_123_456;
        assert_eq!(
            known_at("t", Some(&timestamp(micros))).ok(),
            Some(Some(micros))
        );
        assert_eq!(known_at("t", Some(&timestamp(-1))).ok(), Some(Some(-1)));
    }
}
