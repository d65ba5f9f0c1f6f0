//! The generator is deterministic, obeys the domain, and produces what it promises.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use registry_domain::*;
use registry_testkit::{generate, Config};

#[test]
fn same_seed_same_registry_and_recorded_time_never_goes_back() {
    let a = generate(&Config::tiny(7));
    let b = generate(&Config::tiny(7));
    assert_eq!(a.facts, b.facts);
    assert_ne!(a.facts, generate(&Config::tiny(8)).facts);
    assert!(a
        .facts
        .windows(2)
        .all(|w| w[0].recorded_at <= w[1].recorded_at));
    // Replaying the events rebuilds the generator's final state.
    assert_eq!(
        Registry::from_events(a.facts.iter().map(|f| &f.event)),
        a.registry
    );
}

#[test]
fn many_seeds_generate_without_breaking_a_rule() {
    for seed in 0..40 {
        let g = generate(&Config::tiny(seed));
        assert!(
            g.facts.len() > 1000,
            "seed {seed}: only {} events",
            g.facts.len()
        );
    }
}

#[test]
fn a_province_has_what_the_issue_asks_for() {
    let g = generate(&Config::province(3));
    let count = |name: &str| {
        g.facts
            .iter()
            .filter(|f| f.event.type_name() == name)
            .count()
    };
    assert_eq!(g.catalogue.communes.len(), 180);
    assert!(count("HoldingCorrected") > 50, "late corrections");
    assert!(count("Retracted") > 50, "retractions");
    assert!(count("UnitsReorganised") > 100, "the merger wave");
    assert!(count("ModelAdopted") > 30, "pilot adoptions");
    // Concurrent offices: holdings that began as concurrent, in roughly 40% of communes.
    let concurrent = g
        .registry
        .holdings()
        .filter(|(_, h)| matches!(h.beginning, Beginning::Concurrent { .. }))
        .count();
    assert!(concurrent > 180, "{concurrent} concurrent holdings");
    // The district level is gone after the merger.
    let day = Date::from_ymd(2025, 7, 1).unwrap();
    let districts_alive = g
        .registry
        .units()
        .filter(|(_, u)| u.level == Level::District && u.life.contains(day))
        .count();
    assert_eq!(districts_alive, 0);
}
