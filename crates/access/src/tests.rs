//! Tests of the policy: loading and its errors, jurisdiction in valid time, tokens.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use registry_domain::command::{NewUnit, OfficeFate, Reorganisation, Successor};
use registry_domain::{
    Amendment, Beginning, Capacity, Command, Date, EntityRef, HoldingEnd, HoldingId, HoldingPatch,
    LegalBasis, Level, OfficeId, OfficeKind, PartialDate, PersonId, Policy, Registry, UnitEnding,
    UnitId, UnitKind,
};
use registry_testkit::tokens::{Claims, Issuer};

use crate::tokens::TokenProblem;
use crate::{Access, Action, Denied, Unauthenticated};

fn d(text: &str) -> Date {
    text.parse().unwrap()
}

fn basis() -> LegalBasis {
    LegalBasis {
        number: "1/QĐ".into(),
        issued_on: d("2000-01-01"),
        issuer: "Chính phủ".into(),
        effective_on: None,
    }
}

/// Records `command` in `registry` (it must be accepted).
fn record(registry: &mut Registry, command: Command) {
    let decision = registry.decide(&command, &Policy::default()).unwrap();
    for event in &decision.events {
        registry.apply(event);
    }
}

fn establish(unit: UnitId, level: Level, parents: Vec<UnitId>, on: &str) -> Command {
    Command::EstablishUnit {
        unit,
        kind: UnitKind::PeoplesCommittee,
        level,
        name: format!("unit {unit}"),
        parents,
        on: d(on),
        basis: basis(),
    }
}

fn start(holding: HoldingId, person: PersonId, office: OfficeId, on: &str) -> Command {
    Command::StartHolding {
        holding,
        person,
        office,
        start: PartialDate::from(d(on)),
        beginning: Beginning::Appointed,
        term: None,
        basis: None,
    }
}

/// A country; provinces A and B; commune X in A until it moves to B on 2025-07-01, with an
/// office; commune Y in B with an office; a person who held X's office from 2024-03-01.
struct Tree {
    registry: Registry,
    a: UnitId,
    b: UnitId,
    x: UnitId,
    y: UnitId,
    x_office: OfficeId,
    y_office: OfficeId,
    person: PersonId,
    holding: HoldingId,
}

fn tree() -> Tree {
    let mut registry = Registry::default();
    let [country, a, b, x, y] = [(); 5].map(|()| UnitId::new());
    record(
        &mut registry,
        establish(country, Level::Central, vec![], "2000-01-01"),
    );
    record(
        &mut registry,
        establish(a, Level::Province, vec![country], "2000-01-01"),
    );
    record(
        &mut registry,
        establish(b, Level::Province, vec![country], "2000-01-01"),
    );
    record(
        &mut registry,
        establish(x, Level::Commune, vec![a], "2000-01-01"),
    );
    record(
        &mut registry,
        establish(y, Level::Commune, vec![b], "2000-01-01"),
    );
    let [x_office, y_office] = [(); 2].map(|()| OfficeId::new());
    for (office, unit) in [(x_office, x), (y_office, y)] {
        record(
            &mut registry,
            Command::CreateOffice {
                office,
                unit,
                title: "Chủ tịch".into(),
                kind: OfficeKind::Chair,
                capacity: Capacity::Sole,
                on: d("2000-01-01"),
                basis: None,
            },
        );
    }
    record(
        &mut registry,
        Command::MoveUnit {
            unit: x,
            parents: vec![b],
            on: d("2025-07-01"),
            basis: basis(),
        },
    );
    let person = PersonId::new();
    record(
        &mut registry,
        Command::RegisterPerson {
            person,
            name: "Nguyễn Văn A".into(),
            aliases: vec![],
            birth: None,
        },
    );
    let holding = HoldingId::new();
    record(
        &mut registry,
        start(holding, person, x_office, "2024-03-01"),
    );
    Tree {
        registry,
        a,
        b,
        x,
        y,
        x_office,
        y_office,
        person,
        holding,
    }
}

const RULES: &str = include_str!("../../../examples/access/registry.cedar");

/// A policy with the example's rules, registrars for A and B and one for the whole country.
fn policy(tree: &Tree) -> (tempfile::TempDir, Access) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("registry.cedar"), RULES).unwrap();
    let text = format!(
        r#"rules = "registry.cedar"
[agencies.a]
scopes = ["units/{a}"]
[agencies.b]
scopes = ["units/{b}"]
[agencies.both]
scopes = ["units/{a}", "units/{b}"]
[callers.reg-a]
roles = ["registrar"]
agency = "a"
[callers.reg-b]
roles = ["registrar"]
agency = "b"
[callers.reg-both]
roles = ["registrar"]
agency = "both"
[callers.admin]
roles = ["admin"]
[callers.reader]
roles = ["reader"]
"#,
        a = tree.a.uuid(),
        b = tree.b.uuid()
    );
    std::fs::write(dir.path().join("policy.toml"), text).unwrap();
    let access = Access::load(&dir.path().join("policy.toml")).unwrap();
    (dir, access)
}

fn check(access: &Access, who: &str, command: &Command, registry: &Registry) -> Result<(), Denied> {
    let identity = access.identify(Some(who), None).unwrap();
    access.check(&identity, command, registry)
}

#[test]
fn a_moved_commune_belongs_to_the_old_province_before_the_move_and_the_new_one_after() {
    let tree = tree();
    let (_dir, access) = policy(&tree);
    let before = start(HoldingId::new(), tree.person, tree.x_office, "2024-05-01");
    let after = start(HoldingId::new(), tree.person, tree.x_office, "2025-08-01");
    check(&access, "reg-a", &before, &tree.registry).unwrap();
    check(&access, "reg-b", &after, &tree.registry).unwrap();
    let denied = check(&access, "reg-b", &before, &tree.registry);
    assert_eq!(
        denied,
        Err(Denied::Place {
            who: "reg-b".into(),
            action: Action::Record,
            unit: tree.x,
            day: d("2024-05-01"),
        })
    );
    assert_eq!(
        denied.unwrap_err().to_string(),
        format!(
            "reg-b may not record in units/{} on 2024-05-01: outside its scope as the tree \
             stood that day",
            tree.x.uuid()
        )
    );
    assert!(matches!(
        check(&access, "reg-a", &after, &tree.registry),
        Err(Denied::Place { unit, .. }) if unit == tree.x
    ));
    // The day is the fact's: ending, in 2025-08, a holding begun in A's time is B's to record.
    let end = Command::EndHolding {
        holding: tree.holding,
        end: HoldingEnd::On(PartialDate::from(d("2025-09-01"))),
        reason: registry_domain::EndReason::Transfer,
        basis: None,
    };
    check(&access, "reg-b", &end, &tree.registry).unwrap();
    assert!(check(&access, "reg-a", &end, &tree.registry).is_err());
    check(&access, "admin", &end, &tree.registry).unwrap();
    assert!(matches!(
        check(&access, "reader", &end, &tree.registry),
        Err(Denied::Place { .. })
    ));
}

#[test]
fn a_correction_must_be_in_scope_on_both_the_old_and_the_new_days() {
    let mut tree = tree();
    let (_dir, access) = policy(&tree);
    let late = HoldingId::new();
    let other = PersonId::new();
    record(
        &mut tree.registry,
        Command::RegisterPerson {
            person: other,
            name: "Trần Thị B".into(),
            aliases: vec![],
            birth: None,
        },
    );
    record(
        &mut tree.registry,
        start(late, other, tree.y_office, "2025-08-01"),
    );
    let amendment = Amendment {
        reason: "sai ngày".into(),
        actor: "test".into(),
        basis: None,
    };
    let to_office_x = |on: &str| Command::CorrectHolding {
        holding: late,
        after: HoldingPatch {
            office: Some(tree.x_office),
            start: Some(PartialDate::from(d(on))),
            ..HoldingPatch::default()
        },
        amendment: amendment.clone(),
    };
    // Y and X (after its move) are both B's in 2025-08.
    check(&access, "reg-b", &to_office_x("2025-08-02"), &tree.registry).unwrap();
    // Moving the start to 2024 puts it in A's time: B may not, A may not (the old day is B's).
    let into_2024 = to_office_x("2024-01-01");
    assert!(matches!(
        check(&access, "reg-b", &into_2024, &tree.registry),
        Err(Denied::Place { unit, day, .. }) if unit == tree.x && day == d("2024-01-01")
    ));
    assert!(matches!(
        check(&access, "reg-a", &into_2024, &tree.registry),
        Err(Denied::Place { unit, .. }) if unit == tree.y
    ));
    check(&access, "reg-both", &into_2024, &tree.registry).unwrap();
}

#[test]
fn a_merger_across_two_scopes_needs_a_scope_covering_both() {
    let tree = tree();
    let (_dir, access) = policy(&tree);
    let merged = UnitId::new();
    // X is under B from 2025-07-01: merge an A commune into... use a date before the move, so
    // X is A's and Y is B's.
    let merger = Command::Reorganise(Reorganisation {
        ending: UnitEnding::Merged,
        predecessors: vec![tree.x, tree.y],
        successors: vec![Successor::New(NewUnit {
            unit: merged,
            kind: UnitKind::PeoplesCommittee,
            level: Level::Commune,
            name: "Xã mới".into(),
            parents: vec![tree.a],
        })],
        on: d("2025-01-01"),
        basis: basis(),
        offices: vec![
            (tree.x_office, OfficeFate::CarryTo(merged)),
            (tree.y_office, OfficeFate::Abolish),
        ],
        children: vec![],
    });
    tree.registry
        .decide(&merger, &Policy::default())
        .expect("the merger itself is valid");
    assert!(matches!(
        check(&access, "reg-a", &merger, &tree.registry),
        Err(Denied::Place { unit, .. }) if unit == tree.y
    ));
    assert!(matches!(
        check(&access, "reg-b", &merger, &tree.registry),
        Err(Denied::Place { unit, .. }) if unit == tree.x
    ));
    check(&access, "reg-both", &merger, &tree.registry).unwrap();
    check(&access, "admin", &merger, &tree.registry).unwrap();
}

#[test]
fn a_persons_record_is_a_registrars_where_the_person_held_office() {
    let tree = tree();
    let (_dir, access) = policy(&tree);
    let rename = Command::RenamePerson {
        person: tree.person,
        name: "Nguyễn Văn Á".into(),
        on: d("2026-01-01"),
    };
    // The person held X's office from 2024-03-01, when X was A's.
    check(&access, "reg-a", &rename, &tree.registry).unwrap();
    assert_eq!(
        check(&access, "reg-b", &rename, &tree.registry),
        Err(Denied::Person {
            who: "reg-b".into(),
            action: Action::Record
        })
    );
    // A person who never held an office: no registrar's, an admin's.
    let mut registry = tree.registry.clone();
    let nobody = PersonId::new();
    record(
        &mut registry,
        Command::RegisterPerson {
            person: nobody,
            name: "Lê C".into(),
            aliases: vec![],
            birth: None,
        },
    );
    let retract = Command::Retract {
        target: EntityRef::Person(nobody),
        amendment: Amendment {
            reason: "trùng".into(),
            actor: "test".into(),
            basis: None,
        },
    };
    assert!(check(&access, "reg-a", &retract, &registry).is_err());
    check(&access, "admin", &retract, &registry).unwrap();
    // Registering a person touches no unit: any registrar, no reader.
    let register = Command::RegisterPerson {
        person: PersonId::new(),
        name: "Phạm D".into(),
        aliases: vec![],
        birth: None,
    };
    check(&access, "reg-b", &register, &registry).unwrap();
    assert!(matches!(
        check(&access, "reader", &register, &registry),
        Err(Denied::Action {
            action: Action::Record,
            ..
        })
    ));
}

#[test]
fn unit_free_actions_follow_the_roles() {
    let tree = tree();
    let (_dir, access) = policy(&tree);
    let who = |name: &str| access.identify(Some(name), None).unwrap();
    assert!(access.allows(&who("reader"), Action::Read));
    assert!(!access.allows(&who("reader"), Action::Audit));
    assert!(!access.allows(&who("reg-a"), Action::Operate));
    assert!(access.allows(&who("admin"), Action::Operate));
    // A name the policy does not know is authenticated, with no role: it may do nothing.
    let stranger = who("stranger");
    assert!(stranger.roles.is_empty());
    assert!(Action::ALL.iter().all(|a| !access.allows(&stranger, *a)));
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/access/policy.toml")
}

#[test]
fn the_example_policy_loads_and_says_what_its_comments_say() {
    let access = Access::load(&example()).unwrap();
    assert!(access.accepts_tokens());
    let who = |name: &str| access.identify(Some(name), None).unwrap();
    let registrar = who("registrar-a");
    assert_eq!(registrar.roles, vec!["registrar".to_owned()]);
    assert_eq!(registrar.scopes.len(), 1);
    assert!(access.allows(&registrar, Action::Read));
    assert!(!access.allows(&registrar, Action::Audit));
    assert!(access.allows(&who("state-audit"), Action::Audit));
    assert!(access.allows(&who("ministry-models"), Action::Define));
    assert!(!access.allows(&registrar, Action::Define));
    assert!(access.allows(&who("registry-admin"), Action::Operate));
    assert!(!access.allows(&who("press-office"), Action::Record));
}

/// Writes `rules` and a policy file naming them; the error loading it.
fn load_error(rules: &str, extra: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("r.cedar"), rules).unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        format!("rules = \"r.cedar\"\n{extra}"),
    )
    .unwrap();
    let error = Access::load(&dir.path().join("p.toml")).unwrap_err();
    error
        .to_string()
        .replace(&dir.path().display().to_string(), "DIR")
}

#[test]
fn a_bad_policy_is_refused_naming_the_file_and_line() {
    let syntax = load_error(
        "permit(principal, action, resource);\n\npermit(principal action);\n",
        "",
    );
    assert!(syntax.starts_with("DIR/r.cedar:3:"), "{syntax}");
    let unknown_action = load_error(
        "permit(principal, action, resource);\npermit(principal, action == Registry::Action::\"delete\", resource);\n",
        "",
    );
    assert!(
        unknown_action.starts_with("DIR/r.cedar:2:"),
        "{unknown_action}"
    );
    let unknown_attribute = load_error(
        "permit(principal, action, resource)\nwhen { principal.province == \"A\" };\n",
        "",
    );
    assert!(
        unknown_attribute.starts_with("DIR/r.cedar:2:"),
        "{unknown_attribute}"
    );
    let toml = load_error("", "[callers.x]\nroles = \"admin\"\n");
    assert!(toml.starts_with("DIR/p.toml:3:"), "{toml}");
    let agency = load_error("", "[callers.x]\nagency = \"nowhere\"\n");
    assert!(agency.contains("no agency \"nowhere\""), "{agency}");
    let scope = load_error("", "[agencies.a]\nscopes = [\"offices/1\"]\n");
    assert!(scope.contains("not a unit's name"), "{scope}");
}

/// A policy accepting tokens from `issuer`.
fn with_tokens(jwks: &str) -> (tempfile::TempDir, Access) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("r.cedar"), RULES).unwrap();
    std::fs::write(dir.path().join("keys.jwks"), jwks).unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        format!(
            "rules = \"r.cedar\"\n[tokens]\njwks = \"keys.jwks\"\nissuer = \"{}\"\naudience = \"{}\"\nleeway_seconds = 5\n[callers.alice]\nroles = [\"reader\"]\n",
            registry_testkit::tokens::ISSUER,
            registry_testkit::tokens::AUDIENCE
        ),
    )
    .unwrap();
    let access = Access::load(&dir.path().join("p.toml")).unwrap();
    (dir, access)
}

#[test]
fn tokens_are_verified_against_the_key_file_and_their_claims() {
    let issuer = Issuer::new("k1");
    let (_dir, access) = with_tokens(&issuer.jwks());
    let bearer = |token: String| access.identify(None, Some(&format!("Bearer {token}")));
    let alice = bearer(issuer.token("alice")).unwrap();
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.roles, vec!["reader".to_owned()]);
    assert!(alice.expires.is_some());
    let now = registry_testkit::tokens::now();
    let claims = Claims::for_subject("alice");
    let problem = |claims: Claims| match bearer(issuer.sign(&claims)) {
        Err(Unauthenticated::Token(problem)) => problem,
        other => panic!("accepted: {other:?}"),
    };
    assert_eq!(
        problem(Claims {
            exp: now - 60,
            ..claims.clone()
        }),
        TokenProblem::Expired
    );
    assert_eq!(
        problem(Claims {
            nbf: Some(now + 600),
            ..claims.clone()
        }),
        TokenProblem::NotYetValid
    );
    assert_eq!(
        problem(Claims {
            aud: "another-service".into(),
            ..claims.clone()
        }),
        TokenProblem::WrongAudience
    );
    assert_eq!(
        problem(Claims {
            iss: "https://elsewhere.example".into(),
            ..claims.clone()
        }),
        TokenProblem::WrongIssuer
    );
    // Another key under the same key id: the signature does not verify.
    let impostor = Issuer::new("k1");
    assert!(matches!(
        bearer(impostor.token("alice")),
        Err(Unauthenticated::Token(TokenProblem::BadSignature))
    ));
    let stranger = Issuer::new("k2");
    assert!(matches!(
        bearer(stranger.token("alice")),
        Err(Unauthenticated::Token(TokenProblem::UnknownKey(_)))
    ));
    assert!(matches!(
        bearer("not.a.token".into()),
        Err(Unauthenticated::Token(TokenProblem::Malformed))
    ));
    assert_eq!(
        access
            .identify(None, Some("Basic YWxpY2U6c2VjcmV0"))
            .unwrap_err(),
        Unauthenticated::NotBearer
    );
    assert_eq!(
        access.identify(None, None).unwrap_err(),
        Unauthenticated::NoCredentials
    );
    // A subject too long to record or echo.
    assert_eq!(
        problem(Claims {
            sub: "x".repeat(129),
            ..claims.clone()
        }),
        TokenProblem::Claim("sub".into())
    );
    assert_eq!(
        access.identify(Some(&"y".repeat(129)), None).unwrap_err(),
        Unauthenticated::LongName
    );
    // A tampered payload: the signature no longer matches.
    let token = issuer.token("alice");
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let forged = issuer.token("admin");
    parts[1] = forged.split('.').nth(1).unwrap().to_owned();
    assert!(matches!(
        bearer(parts.join(".")),
        Err(Unauthenticated::Token(TokenProblem::BadSignature))
    ));
    // The message never echoes the token.
    let message = bearer(issuer.sign(&Claims {
        exp: now - 60,
        ..claims
    }))
    .unwrap_err()
    .to_string();
    assert_eq!(message, "bad token: expired");
}

#[test]
fn a_key_file_without_public_keys_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("r.cedar"), RULES).unwrap();
    for (jwks, expected) in [
        (r#"{"keys":[]}"#, "holds no keys"),
        (
            r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"s"}]}"#,
            "a shared secret",
        ),
        ("not json", "not a JWKS document"),
    ] {
        std::fs::write(dir.path().join("keys.jwks"), jwks).unwrap();
        std::fs::write(
            dir.path().join("p.toml"),
            "rules = \"r.cedar\"\n[tokens]\njwks = \"keys.jwks\"\nissuer = \"i\"\naudience = \"a\"\n",
        )
        .unwrap();
        let error = Access::load(&dir.path().join("p.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("keys.jwks") && error.contains(expected),
            "{error}"
        );
    }
}

#[test]
fn a_caller_past_its_allowance_waits_and_others_do_not() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("r.cedar"), RULES).unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        "rules = \"r.cedar\"\n[limits]\nper_second = 1000\n[callers.slow]\nroles = [\"reader\"]\nlimits = { per_second = 1, burst = 2 }\n",
    )
    .unwrap();
    let access = Access::load(&dir.path().join("p.toml")).unwrap();
    let slow = access.identify(Some("slow"), None).unwrap();
    assert!(access.admit(&slow).is_ok() && access.admit(&slow).is_ok());
    let wait = access.admit(&slow).unwrap_err();
    assert!(wait > std::time::Duration::ZERO && wait <= std::time::Duration::from_secs(1));
    // The allowance is the caller's, whatever proves it: the same name again shares it.
    let again = access.identify(Some("slow"), None).unwrap();
    assert!(access.admit(&again).is_err());
    // Others have the file's default.
    let other = access.identify(Some("other"), None).unwrap();
    assert!((0..100).all(|_| access.admit(&other).is_ok()));
}

mod ancestry {
    //! The policy's decision against a plain walk up the tree of the day, over random trees
    //! with units moved and merged on random days.

    use std::sync::OnceLock;

    use proptest::prelude::*;

    use super::*;

    /// Units 0..UNITS have fixed ids, so one policy (a registrar scoped to each) serves every
    /// case.
    const UNITS: usize = 6;

    fn unit(i: usize) -> UnitId {
        UnitId::from_uuid(uuid::Uuid::from_u128(i as u128 + 1))
    }

    fn access() -> &'static Access {
        static ACCESS: OnceLock<(tempfile::TempDir, Access)> = OnceLock::new();
        &ACCESS
            .get_or_init(|| {
                let dir = tempfile::tempdir().unwrap();
                std::fs::write(dir.path().join("r.cedar"), RULES).unwrap();
                let mut text = "rules = \"r.cedar\"\n".to_owned();
                for i in 0..UNITS {
                    text.push_str(&format!(
                        "[agencies.a{i}]\nscopes = [\"units/{}\"]\n[callers.reg-{i}]\nroles = [\"registrar\"]\nagency = \"a{i}\"\n",
                        unit(i).uuid()
                    ));
                }
                std::fs::write(dir.path().join("p.toml"), text).unwrap();
                let access = Access::load(&dir.path().join("p.toml")).unwrap();
                (dir, access)
            })
            .1
    }

    /// A change of the tree: move unit `unit` under `parent` on `day`, or merge `unit` and
    /// `parent` into a new unit under `under` on `day`.
    #[derive(Clone, Debug)]
    enum Change {
        Move {
            unit: usize,
            parent: usize,
            day: i64,
        },
        Merge {
            a: usize,
            b: usize,
            under: usize,
            day: i64,
        },
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            (1..UNITS, 0..UNITS, 1..3000i64).prop_map(|(unit, parent, day)| Change::Move {
                unit,
                parent,
                day
            }),
            (1..UNITS, 1..UNITS, 0..UNITS, 1..3000i64)
                .prop_map(|(a, b, under, day)| { Change::Merge { a, b, under, day } }),
        ]
    }

    fn day(offset: i64) -> Date {
        d("2000-01-01").add_days(offset)
    }

    /// Whether `target` lies in or under `scope` on `on`: a plain walk up the parent links
    /// in force that day.
    fn under(registry: &Registry, target: UnitId, scope: UnitId, on: Date) -> bool {
        if target == scope {
            return true;
        }
        registry.unit(target).is_some_and(|u| {
            u.parents
                .iter()
                .filter(|link| link.span.contains(on))
                .any(|link| under(registry, link.parent, scope, on))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn the_decision_is_the_ancestry_of_the_day(
            parents in proptest::collection::vec(any::<prop::sample::Index>(), UNITS - 1),
            changes in proptest::collection::vec(change(), 0..8),
            asks in proptest::collection::vec((0..UNITS, 0..UNITS + 2, 0..3200i64), 1..12),
        ) {
            let mut registry = Registry::default();
            record(&mut registry, establish(unit(0), Level::Central, vec![], "2000-01-01"));
            for (i, parent) in parents.iter().enumerate() {
                let i = i + 1;
                let parent = unit(parent.index(i));
                record(&mut registry, establish(unit(i), Level::Commune, vec![parent], "2000-01-01"));
            }
            let mut merged = Vec::new();
            for change in &changes {
                let command = match *change {
                    Change::Move { unit: u, parent, day: on } => Command::MoveUnit {
                        unit: unit(u),
                        parents: vec![unit(parent)],
                        on: day(on),
                        basis: basis(),
                    },
                    Change::Merge { a, b, under: parent, day: on } => {
                        let new = UnitId::new();
                        merged.push(new);
                        Command::Reorganise(Reorganisation {
                            ending: UnitEnding::Merged,
                            predecessors: vec![unit(a), unit(b)],
                            successors: vec![Successor::New(NewUnit {
                                unit: new,
                                kind: UnitKind::PeoplesCommittee,
                                level: Level::Commune,
                                name: "Xã hợp nhất".into(),
                                parents: vec![unit(parent)],
                            })],
                            on: day(on),
                            basis: basis(),
                            offices: vec![],
                            children: vec![],
                        })
                    }
                };
                // Changes the registry refuses (a cycle, a dead unit) are left out.
                if let Ok(decision) = registry.decide(&command, &Policy::default()) {
                    for event in &decision.events {
                        registry.apply(event);
                    }
                }
            }
            for (scope, target, on) in asks {
                let target = if target < UNITS {
                    unit(target)
                } else {
                    merged.get(target - UNITS).copied().unwrap_or(unit(0))
                };
                let on = day(on);
                let who = access().identify(Some(&format!("reg-{scope}")), None).unwrap();
                let command = Command::CreateOffice {
                    office: OfficeId::new(),
                    unit: target,
                    title: "Chủ tịch".into(),
                    kind: OfficeKind::Chair,
                    capacity: Capacity::Sole,
                    on,
                    basis: None,
                };
                let allowed = access().check(&who, &command, &registry).is_ok();
                prop_assert_eq!(
                    allowed,
                    under(&registry, target, unit(scope), on),
                    "scope {} target {} on {}: {:?}", scope, target, on, registry.ancestry_on(target, on)
                );
            }
        }
    }
}
