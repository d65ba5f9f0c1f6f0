//! What a decision costs, on a generated province: the work the access layer and the writer
//! add to a call, each timed over many repetitions (median of five batches).
//!
//! `cargo bench -p registry-access --bench decisions`. Rows: a read's door (identify a caller
//! by its certificate's name, its allowance, its `read` decision: what every read pays), the
//! same by a bearer token already verified, a token verified for the first time (signature and
//! claims), and a write's check (the reach of an appointment with its end, and the rules for
//! each place) with the caller's decisions kept and with every place decided by Cedar afresh.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use registry_access::{Access, Action};
use registry_domain::{Beginning, Command, EndReason, HoldingEnd, HoldingId, PartialDate};
use registry_testkit::tokens::Issuer;
use registry_testkit::{generate, Config};

/// Nanoseconds per call of `f`, the median of five batches of `n`.
fn time(n: u32, mut f: impl FnMut(u32)) -> f64 {
    let mut batches: Vec<f64> = (0..5)
        .map(|_| {
            let started = Instant::now();
            for i in 0..n {
                f(i);
            }
            started.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[2]
}

fn main() {
    let generated = generate(&Config::province(1));
    let registry = &generated.registry;
    let catalogue = &generated.catalogue;
    let dir = tempfile::tempdir().unwrap();
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/access/registry.cedar"
    );
    std::fs::copy(rules, dir.path().join("registry.cedar")).unwrap();
    let issuer = Issuer::new("bench");
    std::fs::write(dir.path().join("keys.jwks"), issuer.jwks()).unwrap();
    let scopes: Vec<String> = catalogue
        .provinces
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect();
    let mut policy = format!(
        "rules = \"registry.cedar\"\n[tokens]\njwks = \"keys.jwks\"\nissuer = \"{}\"\n\
         audience = \"{}\"\n[agencies.p]\nscopes = [{}]\n",
        registry_testkit::tokens::ISSUER,
        registry_testkit::tokens::AUDIENCE,
        scopes.join(", ")
    );
    for i in 0..10_000 {
        policy.push_str(&format!(
            "[callers.\"registrar-{i}\"]\nroles = [\"registrar\"]\nagency = \"p\"\n"
        ));
    }
    std::fs::write(dir.path().join("policy.toml"), policy).unwrap();
    let access = Access::load(&dir.path().join("policy.toml")).unwrap();

    let read = time(200_000, |_| {
        let who = access.identify(Some("registrar-0"), None).unwrap();
        black_box(access.admit(&who).is_ok() && access.allows(&who, Action::Read));
    });
    let bearer = format!("Bearer {}", issuer.token("registrar-0"));
    let by_token = time(200_000, |_| {
        let who = access.identify(None, Some(&bearer)).unwrap();
        black_box(access.admit(&who).is_ok() && access.allows(&who, Action::Read));
    });
    let tokens: Vec<String> = (0..2_000)
        .map(|i| format!("Bearer {}", issuer.token(&format!("registrar-{i}"))))
        .collect();
    // Five batches of 400 distinct tokens: none was seen before.
    let mut next = tokens.iter();
    let first_token = time(400, |_| {
        let token = next.next().expect("a token not seen before");
        black_box(access.identify(None, Some(token)).unwrap());
    });

    // An appointment with its end in an office of the province, as W1 writes it.
    let offices = &catalogue.offices;
    let persons = &catalogue.persons;
    let appointment = |i: u32| Command::RecordHolding {
        holding: HoldingId::new(),
        person: persons[i as usize % persons.len()],
        office: offices[i as usize % offices.len()],
        start: PartialDate::from(registry_domain::Date::from_ymd(2001, 1, 1).unwrap()),
        beginning: Beginning::Appointed,
        term: None,
        basis: None,
        end: HoldingEnd::On(PartialDate::from(
            registry_domain::Date::from_ymd(2001, 1, 2).unwrap(),
        )),
        reason: EndReason::TermEnd,
        end_basis: None,
    };
    let places = (0..1_000)
        .map(|i| registry.reach(&appointment(i)).places().len())
        .sum::<usize>() as f64
        / 1_000.0;
    let registrar = access.identify(Some("registrar-0"), None).unwrap();
    let mut allowed = 0;
    let kept = time(100_000, |i| {
        allowed += usize::from(access.check(&registrar, &appointment(i), registry).is_ok());
    });
    assert!(allowed > 0, "the registrar may record in its provinces");
    // A caller seen for the first time (its entry in the policy looked up, its entity made) has
    // no decisions kept: every place goes to Cedar.
    let fresh = time(2_000, |i| {
        let who = access
            .identify(Some(&format!("registrar-{}", 1 + i % 9_999)), None)
            .unwrap();
        black_box(access.check(&who, &appointment(i), registry).is_ok());
    });
    println!(
        "{} events; {places:.2} places per appointment",
        generated.facts.len()
    );
    println!("read door, by certificate name        {read:>9.0} ns");
    println!("read door, by a token seen before     {by_token:>9.0} ns");
    println!("a token verified the first time       {first_token:>9.0} ns");
    println!("write check, decisions kept           {kept:>9.0} ns");
    println!("write check, every place to Cedar     {fresh:>9.0} ns (a caller's first writes)");
}
