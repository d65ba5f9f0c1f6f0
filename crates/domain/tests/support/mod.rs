//! Given/When/Then harness and fixtures shared by the domain's tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use registry_domain::*;

pub fn d(text: &str) -> Date {
    text.parse().expect("test date")
}

pub fn basis() -> LegalBasis {
    LegalBasis {
        number: "36-CT/TU".into(),
        issued_on: d("2023-07-18"),
        issuer: "Ban Thường vụ Tỉnh ủy".into(),
        effective_on: None,
    }
}

pub fn amendment(reason: &str) -> Amendment {
    Amendment {
        reason: reason.into(),
        actor: "registrar@quangninh".into(),
        basis: None,
    }
}

/// A registry built by deciding commands, then a command under test.
#[derive(Clone, Default)]
pub struct Given {
    pub registry: Registry,
    pub policy: Policy,
    pub log: Vec<Event>,
}

/// The outcome of the command under test.
pub struct Then {
    pub before: Registry,
    pub result: Result<Decision, DomainError>,
}

impl Given {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a command that must succeed.
    pub fn and(mut self, command: Command) -> Self {
        self.run(command);
        self
    }

    /// Records a command that must succeed, in place.
    pub fn run(&mut self, command: Command) -> Decision {
        let decision = self
            .registry
            .decide(&command, &self.policy)
            .unwrap_or_else(|e| panic!("given {command:?} failed: {e}"));
        for event in &decision.events {
            self.registry.apply(event);
            self.log.push(event.clone());
        }
        decision
    }

    pub fn when(&self, command: Command) -> Then {
        Then {
            before: self.registry.clone(),
            result: self.registry.decide(&command, &self.policy),
        }
    }
}

impl Then {
    /// The command was rejected with exactly this error.
    pub fn then_error(self, expected: DomainError) {
        match self.result {
            Ok(decision) => panic!("expected {expected:?}, got events {:?}", decision.events),
            Err(actual) => assert_eq!(actual, expected),
        }
    }

    /// The command was rejected with an error for which `check` holds.
    pub fn then_error_matching(self, check: impl Fn(&DomainError) -> bool) -> DomainError {
        match self.result {
            Ok(decision) => panic!("expected an error, got events {:?}", decision.events),
            Err(actual) => {
                assert!(check(&actual), "unexpected error {actual:?}");
                actual
            }
        }
    }

    /// The command succeeded with exactly these events.
    pub fn then_events(self, expected: Vec<Event>) -> Decision {
        let decision = self
            .result
            .unwrap_or_else(|e| panic!("expected events, got error {e}"));
        assert_eq!(decision.events, expected);
        decision
    }

    /// The command succeeded; returns its decision.
    pub fn then_ok(self) -> Decision {
        self.result
            .unwrap_or_else(|e| panic!("expected success, got error {e}"))
    }
}

/// A small commune world: a province, a commune with its Party committee, People's Committee and
/// Fatherland Front, their offices, and three persons.
pub struct World {
    pub given: Given,
    pub province: UnitId,
    pub commune: UnitId,
    pub party: UnitId,
    pub committee: UnitId,
    pub front: UnitId,
    pub secretary: OfficeId,
    pub vice_secretary: OfficeId,
    pub committee_chair: OfficeId,
    pub front_chair: OfficeId,
    pub party_member: OfficeId,
    pub a: PersonId,
    pub b: PersonId,
    pub c: PersonId,
}

pub fn establish(
    unit: UnitId,
    kind: UnitKind,
    level: Level,
    name: &str,
    parents: Vec<UnitId>,
    on: &str,
) -> Command {
    Command::EstablishUnit {
        unit,
        kind,
        level,
        name: name.into(),
        parents,
        on: d(on),
        basis: basis(),
    }
}

pub fn create_office(
    office: OfficeId,
    unit: UnitId,
    kind: OfficeKind,
    capacity: Capacity,
    on: &str,
) -> Command {
    Command::CreateOffice {
        office,
        unit,
        title: format!("{kind:?}"),
        kind,
        capacity,
        on: d(on),
        basis: None,
    }
}

pub fn register(person: PersonId, name: &str) -> Command {
    Command::RegisterPerson {
        person,
        name: name.into(),
        aliases: vec![],
        birth: None,
    }
}

pub fn start(holding: HoldingId, person: PersonId, office: OfficeId, on: &str) -> Command {
    Command::StartHolding {
        holding,
        person,
        office,
        start: on.parse().expect("test partial date"),
        beginning: Beginning::Elected,
        term: None,
        basis: Some(basis()),
    }
}

pub fn end(holding: HoldingId, on: &str) -> Command {
    Command::EndHolding {
        holding,
        end: HoldingEnd::On(on.parse().expect("test partial date")),
        reason: EndReason::TermEnd,
        basis: Some(basis()),
    }
}

impl World {
    pub fn new() -> Self {
        let (province, commune, party, committee, front) = (
            UnitId::new(),
            UnitId::new(),
            UnitId::new(),
            UnitId::new(),
            UnitId::new(),
        );
        let (secretary, vice_secretary, committee_chair, front_chair, party_member) = (
            OfficeId::new(),
            OfficeId::new(),
            OfficeId::new(),
            OfficeId::new(),
            OfficeId::new(),
        );
        let (a, b, c) = (PersonId::new(), PersonId::new(), PersonId::new());
        use Level::*;
        use UnitKind::*;
        let mut given = Given::new();
        // Most tests are not about vacancies; the fixture's offices stand empty for decades.
        given.policy.max_vacancy_days = i64::MAX;
        let given = given
            .and(establish(
                province,
                AdministrativeArea,
                Province,
                "Tỉnh Quảng Ninh",
                vec![],
                "1963-10-30",
            ))
            .and(establish(
                commune,
                AdministrativeArea,
                Commune,
                "Xã Cộng Hòa",
                vec![province],
                "1990-01-01",
            ))
            .and(establish(
                party,
                PartyCommittee,
                Commune,
                "Đảng ủy xã Cộng Hòa",
                vec![commune],
                "1990-01-01",
            ))
            .and(establish(
                committee,
                PeoplesCommittee,
                Commune,
                "UBND xã Cộng Hòa",
                vec![commune],
                "1990-01-01",
            ))
            .and(establish(
                front,
                FatherlandFront,
                Commune,
                "Ủy ban MTTQ xã Cộng Hòa",
                vec![commune],
                "1990-01-01",
            ))
            .and(create_office(
                secretary,
                party,
                OfficeKind::Secretary,
                Capacity::Sole,
                "1990-01-01",
            ))
            .and(create_office(
                vice_secretary,
                party,
                OfficeKind::ViceSecretary,
                Capacity::Limited(2),
                "1990-01-01",
            ))
            .and(create_office(
                committee_chair,
                committee,
                OfficeKind::Chair,
                Capacity::Sole,
                "1990-01-01",
            ))
            .and(create_office(
                front_chair,
                front,
                OfficeKind::Chair,
                Capacity::Sole,
                "1990-01-01",
            ))
            .and(create_office(
                party_member,
                party,
                OfficeKind::ExecutiveCommitteeMember,
                Capacity::Unbounded,
                "1990-01-01",
            ))
            .and(register(a, "Nguyễn Văn An"))
            .and(register(b, "Trần Thị Bình"))
            .and(register(c, "Lê Văn Cường"));
        Self {
            given,
            province,
            commune,
            party,
            committee,
            front,
            secretary,
            vice_secretary,
            committee_chair,
            front_chair,
            party_member,
            a,
            b,
            c,
        }
    }
}
