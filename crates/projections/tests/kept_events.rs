//! The auditors' index leaves out the events the projection keeps (`Projection::keeps`), and a
//! history finds them through the projection (`events_kept_for`, the holdings filed under a
//! person or an office). The two rules live side by side; this checks they agree on every event
//! of generated registries (corrections, retractions and the 2025 reform included): what
//! `keeps` leaves out is found through the projection, and what the projection keeps for a
//! holding or a person `keeps` says it keeps.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashSet;

use registry_domain::{EntityRef, Event};
use registry_projections::Projection;
use registry_testkit::{generate, Config};

/// The events the projection finds for `entity`: its own, and those of the holdings filed
/// under it.
fn found_through_projection(projection: &Projection, entity: EntityRef) -> HashSet<u32> {
    let mut found: HashSet<u32> = projection.events_kept_for(entity).into_iter().collect();
    for holding in projection.holdings_ever_filed_under(entity) {
        found.extend(projection.events_kept_for(EntityRef::Holding(holding)));
    }
    found
}

#[test]
fn what_the_index_leaves_out_the_projection_keeps_and_no_more() {
    let mut checked = 0usize;
    for seed in 0..4 {
        let generated = generate(&Config::tiny(seed));
        let mut projection = Projection::new();
        for fact in &generated.facts {
            projection.apply(fact.recorded_at, &fact.event);
        }
        for (number, fact) in generated.facts.iter().enumerate() {
            let number = u32::try_from(number).unwrap();
            for subject in fact.event.subjects() {
                let found = found_through_projection(&projection, subject).contains(&number);
                if Projection::keeps(&fact.event, &subject) {
                    assert!(
                        found,
                        "{} about {subject} is left out of the index but not kept",
                        fact.event.type_name()
                    );
                    checked += 1;
                }
                // What the projection keeps as a holding's or a person's own events is what
                // `keeps` says.
                if matches!(subject, EntityRef::Holding(_) | EntityRef::Person(_))
                    && projection.events_kept_for(subject).contains(&number)
                {
                    assert!(
                        Projection::keeps(&fact.event, &subject),
                        "{} kept for {subject} but listed by the index too",
                        fact.event.type_name()
                    );
                }
            }
        }
        assert!(generated
            .facts
            .iter()
            .any(|f| matches!(f.event, Event::HoldingCorrected(_))));
    }
    assert!(checked > 1000, "{checked}");
}
