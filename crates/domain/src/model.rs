//! The vocabulary of the domain: kinds of units and offices, levels, capacities, how holdings
//! begin and end, legal bases and pilot-model arrangements.
//!
//! These are plain values shared by commands, events and state. They know nothing of storage or
//! of the wire; the services translate them to and from protobuf at their edge.

use serde::{Deserialize, Serialize};

use crate::date::{Date, PartialDate};
use crate::ids::HoldingId;

/// The kind of an organisational unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// A Party committee (cấp ủy, Ban Chấp hành Đảng bộ).
    PartyCommittee,
    /// The standing board of a Party committee (Ban Thường vụ).
    PartyStandingBoard,
    /// An advisory commission of a Party committee (Ban Dân vận, Ban Tổ chức, Ủy ban Kiểm tra, ...).
    PartyCommission,
    /// A People's Council (Hội đồng nhân dân), elected.
    PeoplesCouncil,
    /// A People's Committee (Ủy ban nhân dân), the executive.
    PeoplesCommittee,
    /// A Fatherland Front committee (Ủy ban Mặt trận Tổ quốc).
    FatherlandFront,
    /// A socio-political organisation (Women's Union, Youth Union, Farmers', Veterans', Trade Union).
    SocioPoliticalOrganisation,
    /// An advisory and support agency (cơ quan tham mưu, giúp việc), possibly serving several
    /// organisations at once.
    AdvisoryAgency,
    /// An administrative area (province, district, commune) as a unit of the structure.
    AdministrativeArea,
}

/// The level of government a unit belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Central (Trung ương).
    Central,
    /// Province or centrally governed city (tỉnh, thành phố trực thuộc Trung ương).
    Province,
    /// District (huyện, quận, thị xã, thành phố thuộc tỉnh); abolished from 1 July 2025.
    District,
    /// Commune, ward or township (xã, phường, thị trấn).
    Commune,
}

/// The kind of an office, independent of its title's wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfficeKind {
    /// Secretary (Bí thư).
    Secretary,
    /// Standing Vice Secretary (Phó Bí thư Thường trực).
    StandingViceSecretary,
    /// Vice Secretary (Phó Bí thư).
    ViceSecretary,
    /// Member of a standing board (Ủy viên Ban Thường vụ).
    StandingBoardMember,
    /// Member of an executive committee (Ủy viên Ban Chấp hành), including the Central Committee.
    ExecutiveCommitteeMember,
    /// Chair (Chủ tịch).
    Chair,
    /// Vice Chair (Phó Chủ tịch).
    ViceChair,
    /// Head of a commission or agency (Trưởng ban, Chánh văn phòng).
    Head,
    /// Deputy head (Phó ban).
    DeputyHead,
    /// Ordinary member of a body (Ủy viên).
    Member,
}

impl OfficeKind {
    /// Whether the office is a seat in a body rather than a post that leads it. Memberships come
    /// with leading posts as a matter of course (a Secretary sits on the standing board), so they
    /// do not count as concurrent offices that need a pilot model.
    pub fn is_membership(self) -> bool {
        matches!(
            self,
            Self::StandingBoardMember | Self::ExecutiveCommitteeMember | Self::Member
        )
    }
}

/// How many persons may hold an office on one day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "limit", rename_all = "snake_case")]
pub enum Capacity {
    /// Exactly one holder at a time (a Secretary, a Chair).
    Sole,
    /// At most this many at a time (Vice Chairs).
    Limited(u32),
    /// Any number (members of an executive committee).
    Unbounded,
}

impl Capacity {
    /// The maximum number of simultaneous holders, `None` when unbounded.
    pub fn limit(self) -> Option<u32> {
        match self {
            Self::Sole => Some(1),
            Self::Limited(n) => Some(n),
            Self::Unbounded => None,
        }
    }
}

/// How a holding began.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Beginning {
    /// Elected by a congress or council (bầu).
    Elected,
    /// Appointed (bổ nhiệm).
    Appointed,
    /// Assigned (phân công).
    Assigned,
    /// Transferred in from another post (điều động, luân chuyển).
    Transferred,
    /// Acting (quyền), pending a regular appointment.
    Acting,
    /// Held concurrently (kiêm nhiệm, "đồng thời là") because of another holding.
    Concurrent {
        /// The holding that causes this one.
        cause: HoldingId,
    },
    /// Held ex officio: the other holding carries this one by rule.
    ExOfficio {
        /// The holding that carries this one.
        cause: HoldingId,
    },
}

impl Beginning {
    /// The holding this one depends on, if it began as concurrent or ex officio.
    pub fn cause(self) -> Option<HoldingId> {
        match self {
            Self::Concurrent { cause } | Self::ExOfficio { cause } => Some(cause),
            _ => None,
        }
    }
}

/// How a holding ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The term of the body ended.
    TermEnd,
    /// Dismissed or relieved (miễn nhiệm, cách chức).
    Dismissal,
    /// Resigned.
    Resignation,
    /// Transferred to another post.
    Transfer,
    /// Retired.
    Retirement,
    /// Died in office.
    Death,
    /// The office was abolished.
    OfficeAbolished,
    /// The unit was merged into another.
    UnitMerged,
    /// The unit was split.
    UnitSplit,
    /// The unit was dissolved.
    UnitDissolved,
}

/// How a holding's end is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "on", rename_all = "snake_case")]
pub enum HoldingEnd {
    /// Still held.
    Open,
    /// Ended, but the date is not known. For the rules the holding is then known to cover its
    /// first day only; it is flagged for auditors.
    Unknown,
    /// Ended on this (exclusive) date: the first day it was no longer held.
    On(PartialDate),
}

impl HoldingEnd {
    /// Whether the holding has ended (with or without a known date).
    pub fn has_ended(self) -> bool {
        !matches!(self, Self::Open)
    }
}

/// The document a fact rests on: "Chỉ thị số 22-CT/TW ngày 25/5/2023 của Ban Bí thư".
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LegalBasis {
    /// The document number, such as `22-CT/TW`.
    pub number: String,
    /// The day the document was signed.
    pub issued_on: Date,
    /// Who issued it, such as `Ban Bí thư`.
    pub issuer: String,
    /// The day it takes effect, when different from the day of issue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_on: Option<Date>,
}

/// An office role: a kind of office in a kind of unit, as pilot models describe them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Role {
    /// The kind of unit the office belongs to.
    pub unit_kind: UnitKind,
    /// The kind of office.
    pub office_kind: OfficeKind,
}

/// The arrangement a pilot model names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Arrangement {
    /// One person holds these roles at once (two or more), such as the commune Party Vice
    /// Secretary concurrently Chair of the Fatherland Front committee.
    ConcurrentOffices {
        /// The roles held together.
        roles: Vec<Role>,
    },
    /// One unit of `unit_kind` serves several parent organisations of the `serves` kinds at once,
    /// such as one common advisory agency for the Front and the socio-political organisations.
    SharedUnit {
        /// The kind of the shared unit.
        unit_kind: UnitKind,
        /// The kinds of organisations it serves.
        serves: Vec<UnitKind>,
    },
}

/// How a unit's life ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitEnding {
    /// Merged with others into a new unit.
    Merged,
    /// Absorbed into an existing unit.
    Absorbed,
    /// Split into several new units.
    Split,
    /// Dissolved without successor.
    Dissolved,
}

impl UnitEnding {
    /// The reason recorded on holdings that end because of this.
    pub fn holding_end_reason(self) -> EndReason {
        match self {
            Self::Merged | Self::Absorbed => EndReason::UnitMerged,
            Self::Split => EndReason::UnitSplit,
            Self::Dissolved => EndReason::UnitDissolved,
        }
    }
}

/// Who corrected or retracted a record, why and on what authority.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Amendment {
    /// Why: required, never empty.
    pub reason: String,
    /// Who entered the amendment (a registrar's account).
    pub actor: String,
    /// The document that authorises it, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<LegalBasis>,
}
