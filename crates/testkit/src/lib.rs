//! Deterministic generators of realistic registries, from one province to the whole country.
//!
//! [`generate`] builds, from a seed, the units of a country (provinces, districts, communes and
//! their Party committees, People's Councils, People's Committees, Fatherland Fronts and
//! socio-political organisations), their offices, and 30 years of persons holding them back to
//! back (terms of 2 to 5 years, executive committees renewed every 5 years), concurrent offices
//! (about 20% of communes with the Secretary also People's Committee Chair, about 20% with a
//! Vice Secretary also Front Chair), pilot-model adoptions (declared and observed differ on
//! purpose), late corrections, retractions, and the merger wave of 1 July 2025 (communes merged
//! three by three, the district level abolished).
//!
//! Every fact goes through the domain's `decide`, so the result obeys every hard rule; the
//! events come with recorded times that never go backwards. Same config, same events.
//!
//! [`daemon`] runs `registryd` processes for end-to-end tests; [`fixtures`] writes import files;
//! [`pgcluster`] builds a PostgreSQL primary and hot standby to run them on.

use std::collections::HashMap;

pub mod daemon;
pub mod fixtures;
pub mod pgcluster;
pub mod tokens;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use registry_domain::command::{NewUnit, OfficeFate, Reorganisation, Successor};
use registry_domain::event::HoldingFacts;
use registry_domain::*;
use uuid::Uuid;

/// What to generate.
#[derive(Clone, Debug)]
pub struct Config {
    /// Same seed, same registry.
    pub seed: u64,
    /// Number of provinces.
    pub provinces: usize,
    /// Districts in each province.
    pub districts_per_province: usize,
    /// Communes in each district.
    pub communes_per_district: usize,
    /// Members of each commune executive committee and People's Council per 5-year term.
    pub members_per_body: usize,
    /// The first year of the registry's history.
    pub from_year: i32,
    /// Whether to run the merger wave of 1 July 2025.
    pub merger: bool,
    /// Share of ended holdings corrected late.
    pub correction_share: f64,
    /// Share of holdings entered in error and retracted later.
    pub retraction_share: f64,
}

impl Config {
    /// One province: 12 districts of 15 communes (180 communes).
    pub fn province(seed: u64) -> Self {
        Self {
            seed,
            provinces: 1,
            districts_per_province: 12,
            communes_per_district: 15,
            members_per_body: 15,
            from_year: 1995,
            merger: true,
            correction_share: 0.01,
            retraction_share: 0.005,
        }
    }

    /// The whole country: 63 provinces, about 10,400 communes, about 10 million events.
    pub fn national(seed: u64) -> Self {
        Self {
            provinces: 63,
            districts_per_province: 11,
            ..Self::province(seed)
        }
    }

    /// A small registry for property tests: one province, a few districts and communes, few
    /// members, many corrections and retractions.
    pub fn tiny(seed: u64) -> Self {
        Self {
            seed,
            provinces: 1,
            districts_per_province: 2,
            communes_per_district: 4,
            members_per_body: 2,
            from_year: 2005,
            merger: true,
            correction_share: 0.1,
            retraction_share: 0.05,
        }
    }
}

/// An event with the moment the registry recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedFact {
    /// Recorded time, microseconds since the Unix epoch.
    pub recorded_at: i64,
    /// The event.
    pub event: Event,
}

/// Handy ids of what was generated, for queries in tests and benchmarks.
#[derive(Clone, Debug, Default)]
pub struct Catalogue {
    /// Province areas.
    pub provinces: Vec<UnitId>,
    /// Commune areas (before the merger).
    pub communes: Vec<UnitId>,
    /// Every office.
    pub offices: Vec<OfficeId>,
    /// Every person.
    pub persons: Vec<PersonId>,
    /// The pilot model "Vice Secretary concurrently Front Chair".
    pub vice_front_model: Option<ModelId>,
    /// The model "Secretary concurrently People's Committee Chair".
    pub secretary_committee_model: Option<ModelId>,
}

/// A generated registry.
pub struct Generated {
    /// The events in feed order.
    pub facts: Vec<RecordedFact>,
    /// The final state, as the domain folds it.
    pub registry: Registry,
    /// Ids to query.
    pub catalogue: Catalogue,
}

/// When an action happens, and in which order on the same day: structure, reorganisation, ends,
/// persons, starts, concurrent starts.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    day: i32,
    phase: u8,
    seq: u64,
}

const STRUCTURE: u8 = 0;
const REORGANISE: u8 = 1;
const END: u8 = 2;
const START: u8 = 3;
const CONCURRENT_START: u8 = 4;

struct Builder {
    config: Config,
    rng: SmallRng,
    seq: u64,
    id_counter: u64,
    actions: Vec<(Key, Command)>,
    late: Vec<Command>,
    catalogue: Catalogue,
    basis_counter: u64,
}

const FAMILY: &[&str] = &[
    "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ",
    "Hồ", "Ngô", "Dương", "Lý",
];
const MIDDLE: &[&str] = &[
    "Văn",
    "Thị",
    "Hữu",
    "Đức",
    "Minh",
    "Thanh",
    "Quốc",
    "Xuân",
    "Anh",
    "Kim",
    "Thị Kim",
    "Lê",
];
const GIVEN: &[&str] = &[
    "An",
    "Bình",
    "Cường",
    "Dũng",
    "Hà",
    "Hải",
    "Hùng",
    "Hương",
    "Lan",
    "Long",
    "Mai",
    "Nam",
    "Phượng",
    "Quân",
    "Sơn",
    "Tú",
    "Ký",
    "Hưng",
    "Thảo",
    "Trang",
    "Đông",
    "Đạt",
    "Yến",
    "Ngọc",
];
const PLACES: &[&str] = &[
    "Cộng Hòa",
    "Dương Huy",
    "Quang Hanh",
    "Cẩm Thạch",
    "Mông Dương",
    "Hạ Long",
    "Đông Triều",
    "Vân Đồn",
    "Tiên Yên",
    "Bình Liêu",
    "Hải Hà",
    "Đầm Hà",
    "Ba Chẽ",
    "Cô Tô",
    "Uông Bí",
    "Quảng Yên",
    "Móng Cái",
    "Hoành Bồ",
    "Yên Hưng",
    "Thống Nhất",
];

fn day_number(date: Date) -> i32 {
    date.julian_day()
}

fn date_of(day: i32) -> Date {
    Date::from_julian_day(day)
        .unwrap_or_else(|| Date::from_ymd(2000, 1, 1).unwrap_or_else(|_| unreachable!()))
}

fn ymd(y: i32, m: u8, d: u8) -> Date {
    Date::from_ymd(y, m, d).unwrap_or_else(|_| unreachable!("valid constant date"))
}

/// The offices of a body: (kind, capacity, title).
type Template = &'static [(OfficeKind, Capacity, &'static str)];

const COMMUNE_PARTY: Template = &[
    (OfficeKind::Secretary, Capacity::Sole, "Bí thư Đảng ủy"),
    (
        OfficeKind::ViceSecretary,
        Capacity::Limited(2),
        "Phó Bí thư Đảng ủy",
    ),
    (
        OfficeKind::ExecutiveCommitteeMember,
        Capacity::Unbounded,
        "Ủy viên Ban Chấp hành Đảng bộ",
    ),
];
const COUNCIL: Template = &[
    (OfficeKind::Chair, Capacity::Sole, "Chủ tịch HĐND"),
    (OfficeKind::Member, Capacity::Unbounded, "Đại biểu HĐND"),
];
const COMMITTEE: Template = &[
    (OfficeKind::Chair, Capacity::Sole, "Chủ tịch UBND"),
    (
        OfficeKind::ViceChair,
        Capacity::Limited(2),
        "Phó Chủ tịch UBND",
    ),
];
const FRONT: Template = &[(OfficeKind::Chair, Capacity::Sole, "Chủ tịch Ủy ban MTTQ")];
const UNION: Template = &[(
    OfficeKind::Chair,
    Capacity::Sole,
    "Chủ tịch Hội Liên hiệp Phụ nữ",
)];
const HIGHER_PARTY: Template = &[
    (OfficeKind::Secretary, Capacity::Sole, "Bí thư"),
    (
        OfficeKind::StandingViceSecretary,
        Capacity::Sole,
        "Phó Bí thư Thường trực",
    ),
    (
        OfficeKind::ViceSecretary,
        Capacity::Limited(2),
        "Phó Bí thư",
    ),
];

/// One holding of a chain: id, holder, first day and (exclusive) last day as day numbers.
type Link = (HoldingId, PersonId, i32, Option<i32>);

/// A body of a commune or district with its offices, by kind.
#[derive(Clone)]
struct Body {
    unit: UnitId,
    kind: UnitKind,
    offices: Vec<(OfficeKind, OfficeId, Capacity)>,
}

impl Body {
    fn office(&self, kind: OfficeKind) -> Option<OfficeId> {
        self.offices
            .iter()
            .find(|(k, ..)| *k == kind)
            .map(|(_, id, _)| *id)
    }
}

impl Builder {
    fn id(&mut self) -> Uuid {
        self.id_counter += 1;
        let mut random = [0u8; 10];
        self.rng.fill(&mut random);
        // Time-ordered (v7) and deterministic: the "timestamp" is a counter.
        uuid::Builder::from_unix_timestamp_millis(1_600_000_000_000 + self.id_counter, &random)
            .into_uuid()
    }

    fn push(&mut self, day: i32, phase: u8, command: Command) {
        self.seq += 1;
        self.actions.push((
            Key {
                day,
                phase,
                seq: self.seq,
            },
            command,
        ));
    }

    fn basis(&mut self, issuer: &str, day: i32) -> LegalBasis {
        self.basis_counter += 1;
        LegalBasis {
            number: format!("{}-QĐ/TU", self.basis_counter),
            issued_on: date_of(day - 3),
            issuer: issuer.to_owned(),
            effective_on: None,
        }
    }

    fn name(&mut self) -> String {
        let f = FAMILY[self.rng.random_range(0..FAMILY.len())];
        let m = MIDDLE[self.rng.random_range(0..MIDDLE.len())];
        let g = GIVEN[self.rng.random_range(0..GIVEN.len())];
        format!("{f} {m} {g}")
    }

    fn unit(
        &mut self,
        kind: UnitKind,
        level: Level,
        name: String,
        parents: Vec<UnitId>,
        day: i32,
    ) -> UnitId {
        let unit = UnitId::from_uuid(self.id());
        let basis = self.basis("Ban Thường vụ Tỉnh ủy", day);
        self.push(
            day,
            STRUCTURE,
            Command::EstablishUnit {
                unit,
                kind,
                level,
                name,
                parents,
                on: date_of(day),
                basis,
            },
        );
        unit
    }

    fn body(
        &mut self,
        kind: UnitKind,
        level: Level,
        name: String,
        parent: UnitId,
        template: Template,
        day: i32,
    ) -> Body {
        let unit = self.unit(kind, level, name.clone(), vec![parent], day);
        let mut offices = Vec::new();
        for (office_kind, capacity, title) in template {
            let office = OfficeId::from_uuid(self.id());
            self.push(
                day,
                STRUCTURE,
                Command::CreateOffice {
                    office,
                    unit,
                    title: format!("{title} {name}"),
                    kind: *office_kind,
                    capacity: *capacity,
                    on: date_of(day),
                    basis: None,
                },
            );
            self.catalogue.offices.push(office);
            offices.push((*office_kind, office, *capacity));
        }
        Body {
            unit,
            kind,
            offices,
        }
    }

    fn person(&mut self, day: i32) -> PersonId {
        let person = PersonId::from_uuid(self.id());
        let start_year = date_of(day).year();
        let birth = PartialDate::year(start_year - self.rng.random_range(28..58)).ok();
        let name = self.name();
        self.push(
            day,
            END,
            Command::RegisterPerson {
                person,
                name,
                aliases: vec![],
                birth,
            },
        );
        self.catalogue.persons.push(person);
        person
    }

    /// A chain of back-to-back holdings of one office seat from `from` until `until` (the last
    /// one left open when `open_end`). Returns (holding, person, start, end) per link.
    fn chain(&mut self, office: OfficeId, from: i32, until: i32, open_end: bool) -> Vec<Link> {
        let mut links = Vec::new();
        let mut start = from;
        while start < until {
            let length = self.rng.random_range(730..1826);
            let end = start + length;
            let person = self.person(start);
            let holding = HoldingId::from_uuid(self.id());
            let basis = self.basis("Ban Thường vụ Huyện ủy", start);
            let beginning = if self.rng.random_bool(0.7) {
                Beginning::Elected
            } else {
                Beginning::Appointed
            };
            self.push(
                start,
                START,
                Command::StartHolding {
                    holding,
                    person,
                    office,
                    start: date_of(start).into(),
                    beginning,
                    term: None,
                    basis: Some(basis),
                },
            );
            if end >= until && open_end {
                links.push((holding, person, start, None));
                break;
            }
            let end = end.min(until);
            self.end(holding, end);
            links.push((holding, person, start, Some(end)));
            // Now and then the seat stays empty for a while before the next holder.
            start = if self.rng.random_bool(0.1) {
                end + self.rng.random_range(30..400)
            } else {
                end
            };
        }
        links
    }

    fn end(&mut self, holding: HoldingId, day: i32) {
        let reason = match self.rng.random_range(0..10) {
            0 => EndReason::Transfer,
            1 => EndReason::Retirement,
            2 => EndReason::Resignation,
            _ => EndReason::TermEnd,
        };
        let basis = self.basis("Ban Thường vụ Huyện ủy", day);
        self.push(
            day,
            END,
            Command::EndHolding {
                holding,
                end: HoldingEnd::On(date_of(day).into()),
                reason,
                basis: Some(basis),
            },
        );
    }

    /// The same person holds `office` alongside each link of `causes`, as a concurrent office.
    fn mirror(&mut self, office: OfficeId, causes: &[Link]) {
        for (cause, person, start, end) in causes {
            let holding = HoldingId::from_uuid(self.id());
            self.push(
                *start,
                CONCURRENT_START,
                Command::StartHolding {
                    holding,
                    person: *person,
                    office,
                    start: date_of(*start).into(),
                    beginning: Beginning::Concurrent { cause: *cause },
                    term: None,
                    basis: None,
                },
            );
            if let Some(end) = end {
                self.end(holding, *end);
            }
        }
    }

    /// Members of an unbounded body, renewed every 5 years.
    fn members(&mut self, office: OfficeId, from: i32, until: i32, open_end: bool) {
        let mut term_start = from;
        while term_start < until {
            let term_end = (term_start + 1826).min(until);
            let last = term_start + 1826 >= until;
            for _ in 0..self.config.members_per_body {
                let person = self.person(term_start);
                let holding = HoldingId::from_uuid(self.id());
                self.push(
                    term_start,
                    START,
                    Command::StartHolding {
                        holding,
                        person,
                        office,
                        start: date_of(term_start).into(),
                        beginning: Beginning::Elected,
                        term: None,
                        basis: None,
                    },
                );
                if !(last && open_end) {
                    self.end(holding, term_end);
                }
                if self.rng.random_bool(self.config.retraction_share) {
                    self.bogus(office, term_start);
                }
            }
            term_start = term_end;
        }
    }

    /// A holding entered in error (wrong person) and retracted at the end.
    fn bogus(&mut self, office: OfficeId, day: i32) {
        let person = self.person(day);
        let holding = HoldingId::from_uuid(self.id());
        self.push(
            day,
            START,
            Command::StartHolding {
                holding,
                person,
                office,
                start: date_of(day).into(),
                beginning: Beginning::Appointed,
                term: None,
                basis: None,
            },
        );
        self.late.push(Command::Retract {
            target: EntityRef::Holding(holding),
            amendment: Amendment {
                reason: "nhập nhầm người".into(),
                actor: "registrar".into(),
                basis: None,
            },
        });
    }

    fn seats(
        &mut self,
        body: &Body,
        from: i32,
        until: i32,
        open_end: bool,
    ) -> HashMap<OfficeKind, Vec<Vec<Link>>> {
        let mut chains = HashMap::new();
        for (kind, office, capacity) in body.offices.clone() {
            match capacity {
                Capacity::Unbounded => self.members(office, from, until, open_end),
                Capacity::Sole | Capacity::Limited(_) => {
                    let seats = capacity.limit().unwrap_or(1) as usize;
                    let links: Vec<_> = (0..seats)
                        .map(|_| self.chain(office, from, until, open_end))
                        .collect();
                    chains.insert(kind, links);
                }
            }
        }
        chains
    }
}

fn concurrent_model(roles: [(UnitKind, OfficeKind); 2]) -> Arrangement {
    Arrangement::ConcurrentOffices {
        roles: roles
            .iter()
            .map(|&(unit_kind, office_kind)| Role {
                unit_kind,
                office_kind,
            })
            .collect(),
    }
}

/// Generates a registry.
pub fn generate(config: &Config) -> Generated {
    let mut b = Builder {
        config: config.clone(),
        rng: SmallRng::seed_from_u64(config.seed),
        seq: 0,
        id_counter: 0,
        actions: Vec::new(),
        late: Vec::new(),
        catalogue: Catalogue::default(),
        basis_counter: 0,
    };
    let origin = day_number(ymd(config.from_year, 1, 1));
    let merger_day = day_number(ymd(2025, 7, 1));
    let horizon = day_number(ymd(2026, 6, 1));
    let province_until = horizon;
    let local_until = if config.merger { merger_day } else { horizon };

    // Pilot models, authorised centrally.
    let models: Vec<(ModelId, &str, Arrangement)> = vec![
        (
            ModelId::from_uuid(b.id()),
            "Phó Bí thư cấp ủy đồng thời là Chủ tịch Ủy ban MTTQ cấp xã",
            concurrent_model([
                (UnitKind::PartyCommittee, OfficeKind::ViceSecretary),
                (UnitKind::FatherlandFront, OfficeKind::Chair),
            ]),
        ),
        (
            ModelId::from_uuid(b.id()),
            "Bí thư cấp ủy đồng thời là Chủ tịch UBND cấp xã",
            concurrent_model([
                (UnitKind::PartyCommittee, OfficeKind::Secretary),
                (UnitKind::PeoplesCommittee, OfficeKind::Chair),
            ]),
        ),
        (
            ModelId::from_uuid(b.id()),
            "Bí thư cấp ủy đồng thời là Chủ tịch HĐND",
            concurrent_model([
                (UnitKind::PartyCommittee, OfficeKind::Secretary),
                (UnitKind::PeoplesCouncil, OfficeKind::Chair),
            ]),
        ),
        (
            ModelId::from_uuid(b.id()),
            "Cơ quan tham mưu, giúp việc chung khối MTTQ và các đoàn thể cấp huyện",
            Arrangement::SharedUnit {
                unit_kind: UnitKind::AdvisoryAgency,
                serves: vec![
                    UnitKind::FatherlandFront,
                    UnitKind::SocioPoliticalOrganisation,
                ],
            },
        ),
    ];
    for (model, name, arrangement) in &models {
        let basis = b.basis("Ban Bí thư Trung ương Đảng", origin);
        b.push(
            origin,
            STRUCTURE,
            Command::DefineModel {
                model: *model,
                name: (*name).into(),
                arrangement: arrangement.clone(),
                authorised_by: basis,
            },
        );
    }
    let (vice_front, secretary_committee, secretary_council, shared) =
        (models[0].0, models[1].0, models[2].0, models[3].0);
    b.catalogue.vice_front_model = Some(vice_front);
    b.catalogue.secretary_committee_model = Some(secretary_committee);

    let central = b.unit(
        UnitKind::PartyCommittee,
        Level::Central,
        "Ban Chấp hành Trung ương Đảng".into(),
        vec![],
        origin,
    );
    let cc_member = OfficeId::from_uuid(b.id());
    b.push(
        origin,
        STRUCTURE,
        Command::CreateOffice {
            office: cc_member,
            unit: central,
            title: "Ủy viên Trung ương Đảng".into(),
            kind: OfficeKind::ExecutiveCommitteeMember,
            capacity: Capacity::Unbounded,
            on: date_of(origin),
            basis: None,
        },
    );

    for p in 0..config.provinces {
        let province_name = format!("Tỉnh {} {}", PLACES[p % PLACES.len()], p + 1);
        let province = b.unit(
            UnitKind::AdministrativeArea,
            Level::Province,
            province_name.clone(),
            vec![],
            origin,
        );
        b.catalogue.provinces.push(province);
        let party = b.body(
            UnitKind::PartyCommittee,
            Level::Province,
            format!("Tỉnh ủy {province_name}"),
            province,
            HIGHER_PARTY,
            origin,
        );
        let council = b.body(
            UnitKind::PeoplesCouncil,
            Level::Province,
            format!("HĐND {province_name}"),
            province,
            &COUNCIL[..1],
            origin,
        );
        let committee = b.body(
            UnitKind::PeoplesCommittee,
            Level::Province,
            format!("UBND {province_name}"),
            province,
            COMMITTEE,
            origin,
        );
        let front = b.body(
            UnitKind::FatherlandFront,
            Level::Province,
            format!("MTTQ {province_name}"),
            province,
            FRONT,
            origin,
        );
        let basis = b.basis("Ban Thường vụ Tỉnh ủy", origin);
        let adoption = AdoptionId::from_uuid(b.id());
        b.push(
            origin,
            STRUCTURE,
            Command::AdoptModel {
                adoption,
                model: secretary_council,
                unit: province,
                on: date_of(origin),
                basis,
            },
        );
        let secretaries = b
            .seats(&party, origin, province_until, true)
            .remove(&OfficeKind::Secretary)
            .unwrap_or_default();
        if let (Some(chair), Some(links)) = (council.office(OfficeKind::Chair), secretaries.first())
        {
            b.mirror(chair, links);
        }
        b.seats(&committee, origin, province_until, true);
        b.seats(&front, origin, province_until, true);
        // Province secretaries sit on the Central Committee.
        if let Some(links) = secretaries.first() {
            let links = links.clone();
            b.mirror(cc_member, &links);
        }

        for d in 0..config.districts_per_province {
            let district_name = format!(
                "Huyện {} {}-{}",
                PLACES[(p + d) % PLACES.len()],
                p + 1,
                d + 1
            );
            let district = b.unit(
                UnitKind::AdministrativeArea,
                Level::District,
                district_name.clone(),
                vec![province],
                origin,
            );
            let mut district_bodies = vec![
                b.body(
                    UnitKind::PartyCommittee,
                    Level::District,
                    format!("Huyện ủy {district_name}"),
                    district,
                    HIGHER_PARTY,
                    origin,
                ),
                b.body(
                    UnitKind::PeoplesCommittee,
                    Level::District,
                    format!("UBND {district_name}"),
                    district,
                    &COMMITTEE[..1],
                    origin,
                ),
                b.body(
                    UnitKind::FatherlandFront,
                    Level::District,
                    format!("MTTQ {district_name}"),
                    district,
                    FRONT,
                    origin,
                ),
                b.body(
                    UnitKind::SocioPoliticalOrganisation,
                    Level::District,
                    format!("Hội Phụ nữ {district_name}"),
                    district,
                    UNION,
                    origin,
                ),
            ];
            for body in district_bodies.clone() {
                b.seats(&body, origin, local_until, true);
            }
            if b.rng.random_bool(0.3) {
                // The common advisory agency serving the Front and the women's union.
                let since = origin + 365 * 10;
                let agency = b.unit(
                    UnitKind::AdvisoryAgency,
                    Level::District,
                    format!("Cơ quan khối MTTQ và các đoàn thể {district_name}"),
                    vec![district_bodies[2].unit, district_bodies[3].unit],
                    since,
                );
                let basis = b.basis("Ban Bí thư Trung ương Đảng", since);
                let adoption = AdoptionId::from_uuid(b.id());
                b.push(
                    since,
                    STRUCTURE,
                    Command::AdoptModel {
                        adoption,
                        model: shared,
                        unit: district,
                        on: date_of(since),
                        basis,
                    },
                );
                district_bodies.push(Body {
                    unit: agency,
                    kind: UnitKind::AdvisoryAgency,
                    offices: vec![],
                });
            }

            let mut communes = Vec::new();
            for c in 0..config.communes_per_district {
                let commune_name = format!(
                    "Xã {} {}-{}-{}",
                    PLACES[(p + d + c) % PLACES.len()],
                    p + 1,
                    d + 1,
                    c + 1
                );
                let area = b.unit(
                    UnitKind::AdministrativeArea,
                    Level::Commune,
                    commune_name.clone(),
                    vec![district],
                    origin,
                );
                b.catalogue.communes.push(area);
                let bodies = vec![
                    b.body(
                        UnitKind::PartyCommittee,
                        Level::Commune,
                        format!("Đảng ủy {commune_name}"),
                        area,
                        COMMUNE_PARTY,
                        origin,
                    ),
                    b.body(
                        UnitKind::PeoplesCouncil,
                        Level::Commune,
                        format!("HĐND {commune_name}"),
                        area,
                        COUNCIL,
                        origin,
                    ),
                    b.body(
                        UnitKind::PeoplesCommittee,
                        Level::Commune,
                        format!("UBND {commune_name}"),
                        area,
                        COMMITTEE,
                        origin,
                    ),
                    b.body(
                        UnitKind::FatherlandFront,
                        Level::Commune,
                        format!("MTTQ {commune_name}"),
                        area,
                        FRONT,
                        origin,
                    ),
                    b.body(
                        UnitKind::SocioPoliticalOrganisation,
                        Level::Commune,
                        format!("Hội Phụ nữ {commune_name}"),
                        area,
                        UNION,
                        origin,
                    ),
                ];
                let arrangement = b.rng.random_range(0..10);
                let mut seats = b.seats(&bodies[0], origin, local_until, true);
                seats.extend(b.seats(&bodies[1], origin, local_until, true));
                let committee_chair = bodies[2].office(OfficeKind::Chair);
                let front_chair = bodies[3].office(OfficeKind::Chair);
                // Committee: the chair may mirror the Secretary (nhất thể hóa).
                let committee_mirrors = arrangement < 2;
                let front_mirrors = (2..4).contains(&arrangement);
                for (kind, office, capacity) in bodies[2].offices.clone() {
                    if kind == OfficeKind::Chair && committee_mirrors {
                        continue;
                    }
                    let seat_count = capacity.limit().unwrap_or(1) as usize;
                    for _ in 0..seat_count {
                        b.chain(office, origin, local_until, true);
                    }
                }
                if committee_mirrors {
                    let links = seats
                        .get(&OfficeKind::Secretary)
                        .and_then(|s| s.first())
                        .cloned()
                        .unwrap_or_default();
                    if let Some(chair) = committee_chair {
                        b.mirror(chair, &links);
                    }
                }
                if front_mirrors {
                    let links = seats
                        .get(&OfficeKind::ViceSecretary)
                        .and_then(|s| s.first())
                        .cloned()
                        .unwrap_or_default();
                    if let Some(chair) = front_chair {
                        b.mirror(chair, &links);
                    }
                } else {
                    b.seats(&bodies[3], origin, local_until, true);
                }
                b.seats(&bodies[4], origin, local_until, true);
                // Declared adoptions: most communes that practise an arrangement adopt it, and a
                // few adopt one they do not practise; declared and observed then differ.
                let adopt_day = origin + b.rng.random_range(0..3650);
                let declared = match arrangement {
                    0 | 1 if b.rng.random_bool(0.9) => Some(secretary_committee),
                    2 | 3 if b.rng.random_bool(0.9) => Some(vice_front),
                    _ if b.rng.random_bool(0.05) => Some(vice_front),
                    _ => None,
                };
                if let Some(model) = declared {
                    let basis = b.basis("Ban Thường vụ Huyện ủy", adopt_day);
                    let adoption = AdoptionId::from_uuid(b.id());
                    b.push(
                        adopt_day,
                        STRUCTURE,
                        Command::AdoptModel {
                            adoption,
                            model,
                            unit: area,
                            on: date_of(adopt_day),
                            basis,
                        },
                    );
                }
                communes.push((area, bodies));
            }
            if config.merger {
                merge_district(
                    &mut b,
                    d,
                    province,
                    district,
                    &district_bodies,
                    communes,
                    merger_day,
                );
            }
        }
    }

    // Decide everything in order.
    let mut actions = std::mem::take(&mut b.actions);
    actions.sort_by_key(|(key, _)| *key);
    let mut registry = Registry::new();
    let policy = Policy::default();
    let mut facts = Vec::with_capacity(actions.len() * 2);
    let mut clock = 0i64;
    let mut ended: Vec<HoldingId> = Vec::new();
    for (key, command) in actions {
        let decision = registry.decide(&command, &policy).unwrap_or_else(|e| {
            panic!(
                "the generator produced an impossible command on day {}: {e}\n{command:?}",
                date_of(key.day)
            )
        });
        let lag = b.rng.random_range(0..30 * 86_400_000_000i64);
        let recorded = (micros_of(key.day) + lag).max(clock + 1);
        clock = recorded;
        if let Command::EndHolding { holding, .. } = command {
            ended.push(holding);
        }
        for event in decision.events {
            registry.apply(&event);
            facts.push(RecordedFact {
                recorded_at: recorded,
                event,
            });
        }
    }
    // Late corrections and retractions, recorded after everything else.
    let corrections = (ended.len() as f64 * config.correction_share) as usize;
    for _ in 0..corrections {
        let holding = ended[b.rng.random_range(0..ended.len())];
        let Some(current) = registry.holding(holding) else {
            continue;
        };
        let HoldingEnd::On(end) = current.end else {
            continue;
        };
        let start = current.start.earliest();
        if start.days_until(end.earliest()) < 40 {
            continue;
        }
        let shift = b.rng.random_range(1..20);
        let after = HoldingFacts {
            start: start.add_days(shift).into(),
            ..current.facts()
        };
        b.late.push(Command::CorrectHolding {
            holding,
            after: after.into(),
            amendment: Amendment {
                reason: "đối chiếu lại quyết định gốc".into(),
                actor: "registrar".into(),
                basis: None,
            },
        });
    }
    let late = std::mem::take(&mut b.late);
    for command in late {
        let Ok(decision) = registry.decide(&command, &policy) else {
            continue;
        };
        clock += b.rng.random_range(1..86_400_000_000i64);
        for event in decision.events {
            registry.apply(&event);
            facts.push(RecordedFact {
                recorded_at: clock,
                event,
            });
        }
    }
    Generated {
        facts,
        registry,
        catalogue: b.catalogue,
    }
}

fn micros_of(day: i32) -> i64 {
    // Julian day 2440588 is 1970-01-01.
    (i64::from(day) - 2_440_588) * 86_400_000_000
}

/// The merger wave: communes merged three by three into new communes directly under the
/// province, each body merged with its counterparts (the first commune's offices carried, the
/// others abolished), then the district and its bodies dissolved.
/// The 2025 reform in one district: its communes, in groups of three, two and one by turns
/// (the turn starting with the district's number), are merged into a new commune, absorbed
/// (the second into the first) or split in two; the district is dissolved.
/// A commune split in two new communes of the province; its bodies go to the first.
fn split_commune(b: &mut Builder, province: UnitId, commune: &(UnitId, Vec<Body>), day: i32) {
    let (area, bodies) = commune;
    let halves = [UnitId::from_uuid(b.id()), UnitId::from_uuid(b.id())];
    let basis = b.basis("Ủy ban Thường vụ Quốc hội", day);
    b.push(
        day,
        REORGANISE,
        Command::Reorganise(Reorganisation {
            ending: UnitEnding::Split,
            predecessors: vec![*area],
            successors: halves
                .iter()
                .map(|half| {
                    Successor::New(NewUnit {
                        unit: *half,
                        kind: UnitKind::AdministrativeArea,
                        level: Level::Commune,
                        name: format!("Xã tách {}", half.uuid().simple()),
                        parents: vec![province],
                    })
                })
                .collect(),
            on: date_of(day),
            basis,
            offices: vec![],
            children: bodies
                .iter()
                .map(|body| (body.unit, vec![halves[0]]))
                .collect(),
        }),
    );
}

/// A commune absorbed into another, which passes to the province: each of its bodies is
/// absorbed into the other's body of the same place (its offices abolished), then the area.
fn absorb_commune(
    b: &mut Builder,
    province: UnitId,
    into: &(UnitId, Vec<Body>),
    absorbed: &(UnitId, Vec<Body>),
    day: i32,
) {
    let on = date_of(day);
    let basis = b.basis("Ủy ban Thường vụ Quốc hội", day);
    for (body, counterpart) in absorbed.1.iter().zip(&into.1) {
        b.push(
            day,
            REORGANISE,
            Command::Reorganise(Reorganisation {
                ending: UnitEnding::Absorbed,
                predecessors: vec![body.unit],
                successors: vec![Successor::Existing {
                    unit: counterpart.unit,
                }],
                on,
                basis: basis.clone(),
                offices: body
                    .offices
                    .iter()
                    .map(|(_, office, _)| (*office, OfficeFate::Abolish))
                    .collect(),
                children: vec![],
            }),
        );
    }
    b.push(
        day,
        REORGANISE,
        Command::Reorganise(Reorganisation {
            ending: UnitEnding::Absorbed,
            predecessors: vec![absorbed.0],
            successors: vec![Successor::Existing { unit: into.0 }],
            on,
            basis: basis.clone(),
            offices: vec![],
            children: vec![],
        }),
    );
    b.push(
        day,
        REORGANISE,
        Command::MoveUnit {
            unit: into.0,
            parents: vec![province],
            on,
            basis,
        },
    );
}

fn merge_district(
    b: &mut Builder,
    index: usize,
    province: UnitId,
    district: UnitId,
    district_bodies: &[Body],
    communes: Vec<(UnitId, Vec<Body>)>,
    day: i32,
) {
    let on = date_of(day);
    let mut groups: Vec<Vec<(UnitId, Vec<Body>)>> = Vec::new();
    let mut rest = communes;
    let mut turn = index;
    while !rest.is_empty() {
        let take = rest.len().min([3, 2, 1][turn % 3]);
        turn += 1;
        let group: Vec<_> = rest.drain(..take).collect();
        groups.push(group);
    }
    for group in groups {
        if group.len() == 1 {
            split_commune(b, province, &group[0], day);
            continue;
        }
        if group.len() == 2 {
            absorb_commune(b, province, &group[0], &group[1], day);
            continue;
        }
        let new_area = UnitId::from_uuid(b.id());
        let basis = b.basis("Ủy ban Thường vụ Quốc hội", day);
        let children: Vec<(UnitId, Vec<UnitId>)> = group
            .iter()
            .flat_map(|(_, bodies)| bodies.iter().map(|body| (body.unit, vec![new_area])))
            .collect();
        b.push(
            day,
            REORGANISE,
            Command::Reorganise(Reorganisation {
                ending: UnitEnding::Merged,
                predecessors: group.iter().map(|(area, _)| *area).collect(),
                successors: vec![Successor::New(NewUnit {
                    unit: new_area,
                    kind: UnitKind::AdministrativeArea,
                    level: Level::Commune,
                    name: format!("Xã mới {}", new_area.uuid().simple()),
                    parents: vec![province],
                })],
                on,
                basis: basis.clone(),
                offices: vec![],
                children,
            }),
        );
        for i in 0..group[0].1.len() {
            let new_body = UnitId::from_uuid(b.id());
            let kind = group[0].1[i].kind;
            let mut offices = Vec::new();
            for (g, (_, bodies)) in group.iter().enumerate() {
                for (_, office, _) in &bodies[i].offices {
                    offices.push((
                        *office,
                        if g == 0 {
                            OfficeFate::CarryTo(new_body)
                        } else {
                            OfficeFate::Abolish
                        },
                    ));
                }
            }
            b.push(
                day,
                REORGANISE,
                Command::Reorganise(Reorganisation {
                    ending: UnitEnding::Merged,
                    predecessors: group.iter().map(|(_, bodies)| bodies[i].unit).collect(),
                    successors: vec![Successor::New(NewUnit {
                        unit: new_body,
                        kind,
                        level: Level::Commune,
                        name: format!("{kind:?} {}", new_body.uuid().simple()),
                        parents: vec![new_area],
                    })],
                    on,
                    basis: basis.clone(),
                    offices,
                    children: vec![],
                }),
            );
        }
    }
    let basis = b.basis("Ủy ban Thường vụ Quốc hội", day);
    let mut predecessors = vec![district];
    predecessors.extend(district_bodies.iter().map(|body| body.unit));
    let offices = district_bodies
        .iter()
        .flat_map(|body| {
            body.offices
                .iter()
                .map(|(_, office, _)| (*office, OfficeFate::Abolish))
        })
        .collect();
    b.push(
        day,
        REORGANISE,
        Command::Reorganise(Reorganisation {
            ending: UnitEnding::Dissolved,
            predecessors,
            successors: vec![],
            on,
            basis,
            offices,
            children: vec![],
        }),
    );
}
