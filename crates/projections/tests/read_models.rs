//! The read models folded batch by batch, on three threads, or sized like others, answer alike;
//! the auditors' index lists each event under what it names and under a holding's parties of
//! the moment, as a naive reference does.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use registry_domain::event::{HoldingCorrected, HoldingFacts, Retracted};
use registry_domain::state::SizedLike;
use registry_domain::{Amendment, Date, EntityRef, Event, HoldingId, OfficeId};
use registry_projections::{FeedBatch, Instant, ReadModels, Seen};
use uuid::Uuid;

type Models = ReadModels<[u64; 2]>;

/// A generated registry, with holdings moved by corrections to another person and office (some
/// moved back) and then retracted: events naming only a holding after a move belong to the
/// histories of its parties of the moment.
fn feed() -> Vec<(Seen<[u64; 2]>, Event)> {
    let generated = registry_testkit::generate(&registry_testkit::Config::tiny(7));
    let mut events: Vec<(i64, Event)> = generated
        .facts
        .iter()
        .map(|fact| (fact.recorded_at, fact.event.clone()))
        .collect();
    let current: Vec<(HoldingId, HoldingFacts)> = generated
        .facts
        .iter()
        .filter_map(|fact| match &fact.event {
            Event::HoldingStarted(e) => {
                Some((e.holding, generated.registry.holding(e.holding)?.facts()))
            }
            _ => None,
        })
        .collect();
    let amendment = Amendment {
        reason: "test".into(),
        actor: "test".into(),
        basis: None,
    };
    let mut clock = events.last().map_or(0, |(at, _)| *at);
    for (i, pair) in current.chunks_exact(2).step_by(40).take(6).enumerate() {
        let ((holding, before), (_, elsewhere)) = (&pair[0], &pair[1]);
        let holding = *holding;
        let after = HoldingFacts {
            person: elsewhere.person,
            office: elsewhere.office,
            ..before.clone()
        };
        let mut moves = vec![(before.clone(), after.clone())];
        if i % 2 == 0 {
            moves.push((after, before.clone()));
        }
        for (before, after) in moves {
            let correction = HoldingCorrected {
                holding,
                before,
                after,
                amendment: amendment.clone(),
            };
            clock += 1;
            events.push((clock, correction.into()));
        }
        let retraction = Retracted {
            target: EntityRef::Holding(holding),
            amendment: amendment.clone(),
        };
        clock += 1;
        events.push((clock, retraction.into()));
    }
    events
        .into_iter()
        .enumerate()
        .map(|(i, (recorded_at, event))| {
            let seen = Seen {
                revision: i as u64,
                recorded_at,
                position: [i as u64 + 1, i as u64 + 1],
            };
            (seen, event)
        })
        .collect()
}

/// The feed in batches of `len`.
fn batches(
    feed: &[(Seen<[u64; 2]>, Event)],
    len: usize,
) -> impl Iterator<Item = FeedBatch<[u64; 2]>> + '_ {
    feed.chunks(len).map(|chunk| FeedBatch {
        events: chunk.to_vec(),
        through: chunk.last().map(|(seen, _)| seen.position),
    })
}

/// What the models answer about everything the feed names: audit histories, the holders of
/// every office and the irregularities on a few days.
fn answers(models: &Models, feed: &[(Seen<[u64; 2]>, Event)]) -> Vec<String> {
    let mut out = vec![format!(
        "{} events, at {:?}, recorded until {}",
        models.events,
        models.position,
        models.audit.latest_recorded()
    )];
    let policy = registry_domain::Policy::default();
    for (_, event) in feed {
        for subject in event.subjects() {
            out.push(format!("{subject}: {:?}", models.history(subject)));
            if let EntityRef::Office(office) = subject {
                for year in [2006, 2015, 2024] {
                    let on = Date::from_ymd(year, 6, 1).unwrap();
                    let holders = models.projection.holders(office, on, None::<Instant>);
                    let ids: Vec<_> = holders.iter().map(|h| h.holding).collect();
                    out.push(format!("{office} on {on}: {ids:?}"));
                }
            }
        }
    }
    for year in [2006, 2015, 2024] {
        let on = Date::from_ymd(year, 6, 1).unwrap();
        out.push(format!(
            "{:?}",
            models.projection.irregularities(&policy, on, None)
        ));
    }
    let revisions: Vec<u64> = (0..feed.len() as u64 + 2).collect();
    out.push(format!("{:?}", models.audit.seen(&revisions)));
    out
}

#[test]
fn batches_folded_by_the_pipeline_give_the_answers_of_one_event_at_a_time() {
    let feed = feed();
    assert!(feed.len() > 2_000, "{} events", feed.len());
    let mut one_at_a_time = Models::default();
    for batch in batches(&feed, 1) {
        one_at_a_time.fold(&batch);
    }
    let expected = answers(&one_at_a_time, &feed);
    assert_eq!(
        expected[0],
        format!(
            "{} events, at {:?}, recorded until {}",
            feed.len(),
            feed.last().map(|(seen, _)| seen.position),
            feed.iter().map(|(seen, _)| seen.recorded_at).max().unwrap()
        )
    );
    let mut in_batches = Models::default();
    in_batches.fold_pipelined(batches(&feed, 97));
    assert_eq!(answers(&in_batches, &feed), expected);
    // Sized like the full models, in one batch; and half folded one way, half the other.
    let mut sized = Models::sized_like(&one_at_a_time);
    sized.fold_pipelined(batches(&feed, feed.len()));
    assert_eq!(answers(&sized, &feed), expected);
    let mut halves = Models::default();
    let half = feed.len() / 2;
    halves.fold(&batches(&feed[..half], half).next().unwrap());
    halves.fold_pipelined(batches(&feed[half..], 300));
    assert_eq!(answers(&halves, &feed), expected);
}

#[test]
fn a_batch_reaching_past_its_last_event_moves_the_position_there() {
    let feed = feed();
    let mut models = Models::default();
    models.fold(&FeedBatch {
        events: feed[..10].to_vec(),
        through: Some([50, 50]),
    });
    models.fold(&FeedBatch {
        events: Vec::new(),
        through: Some([60, 60]),
    });
    assert_eq!((models.events, models.position), (10, Some([60, 60])));
}

#[test]
fn the_audit_index_lists_each_event_under_what_it_names_and_a_holding_s_parties() {
    let feed = feed();
    let mut models = Models::default();
    models.fold_pipelined(batches(&feed, 500));
    // The naive reference: every event under the entities it names, and an event naming a
    // holding also under the holding's person and office as last started or corrected.
    let mut parties: Vec<(HoldingId, [EntityRef; 2])> = Vec::new();
    let mut expected: Vec<(Uuid, u64)> = Vec::new();
    let mut entities: Vec<EntityRef> = Vec::new();
    let mut moved = 0;
    for (seen, event) in &feed {
        let filed = match event {
            Event::HoldingStarted(e) => Some((e.holding, e.person, e.office)),
            Event::HoldingCorrected(e) => {
                moved += usize::from(e.before.office != e.after.office);
                Some((e.holding, e.after.person, e.after.office))
            }
            _ => None,
        };
        if let Some((holding, person, office)) = filed {
            parties.push((
                holding,
                [EntityRef::Person(person), EntityRef::Office(office)],
            ));
        }
        let mut named: Vec<EntityRef> = Vec::new();
        for subject in event.subjects() {
            named.push(subject);
            if let EntityRef::Holding(h) = subject {
                if let Some((_, p)) = parties.iter().rev().find(|(id, _)| *id == h) {
                    named.extend_from_slice(p);
                }
            }
        }
        entities.extend_from_slice(&named);
        let mut named: Vec<Uuid> = named.iter().map(|e| e.uuid()).collect();
        named.sort_unstable();
        named.dedup();
        expected.extend(named.into_iter().map(|id| (id, seen.revision)));
    }
    expected.sort_unstable();
    entities.sort_unstable_by_key(|e| e.uuid());
    entities.dedup();
    let mut indexed: Vec<(Uuid, u64)> = entities
        .iter()
        .flat_map(|e| models.history(*e).into_iter().map(|r| (e.uuid(), r)))
        .collect();
    indexed.sort_unstable();
    assert_eq!(indexed, expected);
    // Events naming only the holding, and corrections, some moving a holding to another office
    // and some back, occur in the feed.
    let types: Vec<&str> = feed.iter().map(|(_, e)| e.type_name()).collect();
    assert!(types.contains(&"HoldingEnded") && types.contains(&"HoldingCorrected"));
    assert!(moved >= 6, "{moved} corrections move a holding");
    assert!(models
        .history(EntityRef::Office(OfficeId::from_uuid(Uuid::now_v7())))
        .is_empty());
}
