//! Golden files: a stored sample of every event type and schema version stays readable forever.
//!
//! `tests/golden/<Type>.v<version>.json` holds one payload per type and version. The test decodes
//! every file and checks that re-encoding gives the same JSON. When the catalogue gains a type
//! or a version, run `REGISTRY_BLESS=1 cargo test -p registry-domain --test golden` to write
//! the new sample; never edit or delete an existing file (old versions must stay readable,
//! through upcasting if need be).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use registry_domain::event::*;
use registry_domain::*;
use uuid::Uuid;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n)
}

fn d(text: &str) -> Date {
    text.parse().unwrap()
}

fn basis() -> LegalBasis {
    LegalBasis {
        number: "22-CT/TW".into(),
        issued_on: d("2023-05-25"),
        issuer: "Ban Bí thư Trung ương Đảng".into(),
        effective_on: Some(d("2023-06-01")),
    }
}

fn amendment() -> Amendment {
    Amendment {
        reason: "nhập sai ngày".into(),
        actor: "registrar@quangninh".into(),
        basis: Some(basis()),
    }
}

fn holding_facts() -> HoldingFacts {
    HoldingFacts {
        person: PersonId::from_uuid(id(1)),
        office: OfficeId::from_uuid(id(2)),
        start: "2020-10".parse().unwrap(),
        end: HoldingEnd::On(d("2025-07-01").into()),
        beginning: Beginning::Concurrent {
            cause: HoldingId::from_uuid(id(9)),
        },
        end_reason: Some(EndReason::UnitMerged),
        term: Some(TermId::from_uuid(id(7))),
        basis: Some(basis()),
    }
}

fn office_facts() -> OfficeFacts {
    OfficeFacts {
        title: "Chủ tịch Ủy ban MTTQ xã".into(),
        kind: OfficeKind::Chair,
        capacity: Capacity::Limited(2),
        established: d("1990-01-01"),
        abolished: Some(d("2025-07-01")),
    }
}

/// One sample of every event type at its current version.
fn samples() -> Vec<Event> {
    let person = PersonId::from_uuid(id(1));
    let office = OfficeId::from_uuid(id(2));
    let unit = UnitId::from_uuid(id(3));
    let holding = HoldingId::from_uuid(id(4));
    let model = ModelId::from_uuid(id(5));
    let adoption = AdoptionId::from_uuid(id(6));
    let term = TermId::from_uuid(id(7));
    vec![
        PersonRegistered {
            person,
            name: "Nguyễn Xuân Ký".into(),
            aliases: vec!["Ký".into()],
            birth: Some("1972".parse().unwrap()),
        }
        .into(),
        PersonRenamed {
            person,
            name: "Nguyễn Thị Kim Phượng".into(),
            on: d("2001-01-01"),
        }
        .into(),
        PersonAliasAdded {
            person,
            alias: "Phượng".into(),
        }
        .into(),
        PersonCorrected {
            person,
            before: PersonFacts {
                name: "Nguyen Xuan Ky".into(),
                birth: None,
            },
            after: PersonFacts {
                name: "Nguyễn Xuân Ký".into(),
                birth: Some("1972-03".parse().unwrap()),
            },
            amendment: amendment(),
        }
        .into(),
        UnitEstablished {
            unit,
            kind: UnitKind::AdvisoryAgency,
            level: Level::District,
            name: "Cơ quan tham mưu, giúp việc chung khối MTTQ".into(),
            parents: vec![UnitId::from_uuid(id(10)), UnitId::from_uuid(id(11))],
            on: d("2016-01-01"),
            basis: basis(),
        }
        .into(),
        UnitRenamed {
            unit,
            name: "Thành phố Cẩm Phả".into(),
            on: d("2012-02-21"),
            basis: basis(),
        }
        .into(),
        UnitMoved {
            unit,
            parents: vec![UnitId::from_uuid(id(12))],
            on: d("2025-07-01"),
            basis: basis(),
        }
        .into(),
        UnitsReorganised {
            ending: UnitEnding::Merged,
            predecessors: vec![UnitId::from_uuid(id(13)), UnitId::from_uuid(id(14))],
            successors: vec![unit],
            on: d("2025-07-01"),
            basis: basis(),
        }
        .into(),
        OfficeCreated {
            office,
            unit,
            title: "Bí thư Tỉnh ủy".into(),
            kind: OfficeKind::Secretary,
            capacity: Capacity::Sole,
            on: d("1963-10-30"),
            basis: Some(basis()),
        }
        .into(),
        OfficeCarried {
            office,
            unit,
            on: d("2025-07-01"),
        }
        .into(),
        OfficeAbolished {
            office,
            on: d("2025-07-01"),
            basis: None,
        }
        .into(),
        OfficeCorrected {
            office,
            before: office_facts(),
            after: OfficeFacts {
                capacity: Capacity::Unbounded,
                abolished: None,
                ..office_facts()
            },
            amendment: amendment(),
        }
        .into(),
        HoldingStarted {
            holding,
            person,
            office,
            start: d("2020-10-15").into(),
            beginning: Beginning::Elected,
            term: Some(term),
            basis: Some(basis()),
        }
        .into(),
        HoldingEnded {
            holding,
            end: HoldingEnd::Unknown,
            reason: EndReason::Transfer,
            basis: None,
        }
        .into(),
        HoldingCorrected {
            holding,
            before: holding_facts(),
            after: HoldingFacts {
                end: HoldingEnd::Open,
                end_reason: None,
                ..holding_facts()
            },
            amendment: amendment(),
        }
        .into(),
        ModelDefined {
            model,
            name: "Phó Bí thư cấp ủy đồng thời là Chủ tịch Ủy ban MTTQ cấp xã".into(),
            arrangement: Arrangement::ConcurrentOffices {
                roles: vec![
                    Role {
                        unit_kind: UnitKind::PartyCommittee,
                        office_kind: OfficeKind::ViceSecretary,
                    },
                    Role {
                        unit_kind: UnitKind::FatherlandFront,
                        office_kind: OfficeKind::Chair,
                    },
                ],
            },
            authorised_by: basis(),
        }
        .into(),
        ModelAdopted {
            adoption,
            model,
            unit,
            on: d("2019-01-01"),
            basis: basis(),
        }
        .into(),
        ModelWithdrawn {
            adoption,
            on: d("2025-07-01"),
            basis: basis(),
        }
        .into(),
        TermOpened {
            term,
            body: unit,
            label: "2020-2025".into(),
            start: d("2020-10-15"),
            planned_end: Some(d("2025-10-15")),
        }
        .into(),
        Retracted {
            target: EntityRef::Holding(holding),
            amendment: amendment(),
        }
        .into(),
    ]
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn samples_cover_the_whole_catalogue() {
    let mut names: Vec<(&str, u16)> = samples()
        .iter()
        .map(|e| (e.type_name(), e.schema_version()))
        .collect();
    names.sort_unstable();
    let mut catalogue = Event::CATALOGUE.to_vec();
    catalogue.sort_unstable();
    assert_eq!(names, catalogue);
}

#[test]
fn every_stored_sample_stays_readable() {
    let dir = golden_dir();
    if std::env::var_os("REGISTRY_BLESS").is_some() {
        for event in samples() {
            let path = dir.join(format!(
                "{}.v{}.json",
                event.type_name(),
                event.schema_version()
            ));
            if !path.exists() {
                let value: serde_json::Value = serde_json::from_slice(&event.encode()).unwrap();
                std::fs::write(&path, serde_json::to_string_pretty(&value).unwrap() + "\n")
                    .unwrap();
            }
        }
    }
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_owned();
        let (name, version) = file
            .strip_suffix(".json")
            .and_then(|stem| stem.rsplit_once(".v"))
            .unwrap_or_else(|| panic!("golden file {file} is not named <Type>.v<version>.json"));
        let version: u16 = version.parse().unwrap();
        let stored = std::fs::read(&path).unwrap();
        let event = Event::decode(name, version, &stored).unwrap_or_else(|e| panic!("{file}: {e}"));
        if version == event.schema_version() {
            let again: serde_json::Value = serde_json::from_slice(&event.encode()).unwrap();
            let original: serde_json::Value = serde_json::from_slice(&stored).unwrap();
            assert_eq!(again, original, "{file} does not survive a round trip");
        }
        seen.push((event.type_name(), event.schema_version()));
    }
    for entry in Event::CATALOGUE {
        assert!(
            seen.contains(entry),
            "no golden file for {}.v{}",
            entry.0,
            entry.1
        );
    }
    // And the samples equal what the files decode to: a change of meaning is caught too.
    for sample in samples() {
        let path = dir.join(format!(
            "{}.v{}.json",
            sample.type_name(),
            sample.schema_version()
        ));
        let stored = std::fs::read(&path).unwrap();
        assert_eq!(
            Event::decode(sample.type_name(), sample.schema_version(), &stored).unwrap(),
            sample
        );
    }
}

#[test]
fn unknown_types_and_versions_are_errors() {
    assert!(matches!(
        Event::decode("HoldingTeleported", 1, b"{}"),
        Err(DecodeError::UnknownType(_))
    ));
    assert!(matches!(
        Event::decode("HoldingStarted", 99, b"{}"),
        Err(DecodeError::UnknownVersion("HoldingStarted", 99))
    ));
    assert!(matches!(
        Event::decode("HoldingStarted", 1, b"{\"holding\": 3}"),
        Err(DecodeError::Payload(..))
    ));
}
