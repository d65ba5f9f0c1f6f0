//! Snapshots: loaded read models answer like those they were taken from; a restart from a
//! snapshot plus the rest of the feed equals a full fold; a damaged, truncated, other-kind or
//! other-format file is refused (and the caller tries another or folds), never half-read; a
//! shelf keeps the last two.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use registry_domain::*;
use registry_projections::snapshot::{self, Kind, Shelf, SnapshotError, Stamp};
use registry_projections::*;
use registry_testkit::{generate, Config, Generated};
use uuid::Uuid;

fn answers(projection: &Projection, generated: &Generated, seed: u64) -> Vec<String> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let c = &generated.catalogue;
    let mut out = Vec::new();
    for _ in 0..300 {
        let on = Date::from_ymd(rng.random_range(2005..2027), rng.random_range(1..13), 1).unwrap();
        let known_at = if rng.random_bool(0.5) {
            None
        } else {
            Some(generated.facts[rng.random_range(0..generated.facts.len())].recorded_at)
        };
        let office = c.offices[rng.random_range(0..c.offices.len())];
        let person = c.persons[rng.random_range(0..c.persons.len())];
        let unit = c.communes[rng.random_range(0..c.communes.len())];
        out.push(format!("{:?}", projection.holders(office, on, known_at)));
        out.push(format!("{:?}", projection.offices_of(person, on, known_at)));
        out.push(format!("{:?}", projection.unit_on(unit, on, known_at)));
        out.push(format!("{:?}", projection.lineage(unit, known_at)));
        out.push(format!(
            "{:?}",
            projection.person_name(person, on, known_at)
        ));
        // The event numbers the projection keeps for the auditors' index.
        out.push(format!(
            "{:?}",
            projection.events_kept_for(EntityRef::Person(person))
        ));
        for holding in projection.holdings_ever_filed_under(EntityRef::Office(office)) {
            out.push(format!(
                "{:?}",
                projection.events_kept_for(EntityRef::Holding(holding))
            ));
        }
    }
    out.push(format!("{:?}", projection.search("nguyen van", 50)));
    for _ in 0..3 {
        let known_at =
            Some(generated.facts[rng.random_range(0..generated.facts.len())].recorded_at);
        let on = Date::from_ymd(rng.random_range(2005..2027), 6, 1).unwrap();
        for known_at in [None, known_at] {
            out.push(format!(
                "{:?}",
                projection.irregularities(&Policy::default(), on, known_at)
            ));
        }
    }
    out
}

type Models = ReadModels<[u64; 2]>;

/// Folds the generated feed's events in `range` into `models`, as the service core hands them
/// over (position: revision + 1).
fn fold(generated: &Generated, range: std::ops::Range<usize>, models: &mut Models) {
    let events: Vec<_> = generated.facts[range.clone()]
        .iter()
        .zip(range)
        .map(|(fact, revision)| {
            let revision = revision as u64;
            let seen = Seen {
                revision,
                recorded_at: fact.recorded_at,
                position: [revision + 1; 2],
            };
            (seen, fact.event.clone())
        })
        .collect();
    let through = events.last().map(|(seen, _)| seen.position);
    models.fold(&FeedBatch { events, through });
}

/// What the models answer: the projection's answers and every entity's history.
fn model_answers(models: &Models, generated: &Generated, seed: u64) -> Vec<String> {
    let mut out = answers(&models.projection, generated, seed);
    out.push(format!("{} events at {:?}", models.events, models.position));
    for fact in &generated.facts {
        for subject in fact.event.subjects() {
            out.push(format!("{subject}: {:?}", models.history(subject)));
        }
    }
    let revisions: Vec<u64> = (0..models.events + 1).collect();
    out.push(format!("{:?}", models.audit.seen(&revisions)));
    out.push(format!(
        "{:?}",
        models
            .audit
            .recorded_between(i64::MIN, i64::MAX, 0, u64::MAX, 100)
    ));
    out
}

#[test]
fn a_snapshot_answers_like_its_source_and_a_restart_catches_up() {
    let generated = generate(&Config::tiny(11));
    let n = generated.facts.len();
    let mut full = Models::default();
    fold(&generated, 0..n, &mut full);

    let dir = tempfile::tempdir().unwrap();
    let shelf = Shelf::new(dir.path(), Kind::ReadModels);
    let half = n / 2;
    let mut partial = Models::default();
    fold(&generated, 0..half, &mut partial);
    let last = Uuid::now_v7();
    let path = snapshot::save_models(&shelf, &partial, last).unwrap();
    let (stamp, loaded) = snapshot::load_models::<[u64; 2]>(&path).unwrap();
    assert_eq!(
        stamp,
        Stamp {
            position: [half as u64; 2],
            events: half as u64,
            last_event: last
        }
    );
    assert_eq!(
        model_answers(&loaded, &generated, 1),
        model_answers(&partial, &generated, 1)
    );

    // Restart: load, then catch up from the snapshot's position.
    let mut resumed = loaded;
    fold(&generated, half..n, &mut resumed);
    assert_eq!(
        model_answers(&resumed, &generated, 2),
        model_answers(&full, &generated, 2)
    );
}

#[test]
fn a_shelf_keeps_the_last_two_snapshots_newest_first() {
    let generated = generate(&Config::tiny(3));
    let dir = tempfile::tempdir().unwrap();
    let shelf = Shelf::new(dir.path().join("snapshots"), Kind::ReadModels);
    assert!(shelf.newest_first().unwrap().is_empty());
    let mut models = Models::default();
    let mut written = Vec::new();
    for end in [10, 200, 2000, 2001] {
        fold(&generated, models.events as usize..end, &mut models);
        written.push(snapshot::save_models(&shelf, &models, Uuid::nil()).unwrap());
    }
    // A file of another kind, and others, are not the shelf's.
    std::fs::write(
        dir.path()
            .join("snapshots/writer-00000000000000009999.snap"),
        b"x",
    )
    .unwrap();
    std::fs::write(dir.path().join("snapshots/notes.txt"), b"x").unwrap();
    assert_eq!(
        shelf.newest_first().unwrap(),
        vec![written[3].clone(), written[2].clone()]
    );
    assert!(matches!(
        snapshot::load_models::<[u64; 2]>(
            &dir.path()
                .join("snapshots/writer-00000000000000009999.snap")
        ),
        Err(SnapshotError::BadMagic)
    ));
}

#[test]
fn damaged_snapshots_are_refused() {
    let generated = generate(&Config::tiny(12));
    let mut models = Models::default();
    fold(&generated, 0..generated.facts.len(), &mut models);
    let dir = tempfile::tempdir().unwrap();
    let shelf = Shelf::new(dir.path(), Kind::ReadModels);
    let path = snapshot::save_models(&shelf, &models, Uuid::nil()).unwrap();
    let load = || snapshot::load_models::<[u64; 2]>(&path).map(|(stamp, _)| stamp);
    let good = std::fs::read(&path).unwrap();

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    std::fs::write(&path, &flipped).unwrap();
    assert!(matches!(load(), Err(SnapshotError::Checksum { .. })));

    // A byte flipped in any section, those decoded as they are read from the file as well as
    // those read whole first, is caught by that section's checksum.
    let mut at = 60;
    for section in 0..5 {
        let length = u64::from_le_bytes(good[at..at + 8].try_into().unwrap()) as usize;
        let body = at + 12;
        if length > 0 {
            let mut flipped = good.clone();
            flipped[body + length / 3] ^= 0x01;
            std::fs::write(&path, &flipped).unwrap();
            let loaded = load();
            assert!(
                matches!(loaded, Err(SnapshotError::Checksum { section: s, .. }) if s == section),
                "section {section}: {loaded:?}"
            );
        }
        at = body + length;
    }
    assert_eq!(at, good.len());

    // A section damaged where its checksum does not catch it (the checksum written again): the
    // records are checked value by value, and an impossible one is refused, not loaded.
    // Header: 60 bytes; the first section's length (8) and checksum (4); the count of versions
    // (8), then the first version: holding (16), person (4), office (4), start (4), the tag of
    // its end.
    let (header, frame) = (60, 12);
    let length = u64::from_le_bytes(good[header..header + 8].try_into().unwrap()) as usize;
    let mut forged = good.clone();
    forged[header + frame + 8 + 28] = 9;
    let crc = crc32fast::hash(&forged[header + frame..header + frame + length]);
    forged[header + 8..header + 12].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &forged).unwrap();
    assert!(matches!(
        load(),
        Err(SnapshotError::Body(message)) if message.contains("holding end")
    ));

    std::fs::write(&path, &good[..good.len() - 100]).unwrap();
    assert!(matches!(load(), Err(SnapshotError::Truncated { .. })));

    std::fs::write(&path, &good[..20]).unwrap();
    assert!(matches!(load(), Err(SnapshotError::Truncated { .. })));

    let mut longer = good.clone();
    longer.push(0);
    std::fs::write(&path, &longer).unwrap();
    assert!(matches!(load(), Err(SnapshotError::Body(_))));

    // The format this program writes, an older one and a newer one.
    let current = good[8];
    for other in [current - 1, current + 1] {
        let mut other_format = good.clone();
        other_format[8] = other;
        std::fs::write(&path, &other_format).unwrap();
        assert!(matches!(
            load(),
            Err(SnapshotError::UnsupportedFormat(f)) if f == u32::from(other)
        ));
    }

    let mut other_kind = good.clone();
    other_kind[12] = Kind::Writer as u8;
    std::fs::write(&path, &other_kind).unwrap();
    assert!(matches!(load(), Err(SnapshotError::OtherKind { .. })));

    std::fs::write(
        &path,
        b"PK\x03\x04 not a snapshot at all, but long enough for a header......",
    )
    .unwrap();
    assert!(matches!(load(), Err(SnapshotError::BadMagic)));

    std::fs::write(&path, &good).unwrap();
    assert!(load().is_ok());
}

#[test]
fn irregularities_are_listed_for_auditors() {
    let generated = generate(&Config::tiny(5));
    let mut projection = Projection::new();
    for fact in &generated.facts {
        projection.apply(fact.recorded_at, &fact.event);
    }
    let on = Date::from_ymd(2026, 1, 1).unwrap();
    let found = projection.irregularities(&Policy::default(), on, None);
    // The generator leaves member holdings without a legal basis, and some communes practise a
    // concurrent arrangement they never adopted.
    assert!(found
        .iter()
        .any(|i| matches!(i, Irregularity::MissingBasis { .. })));
    assert!(
        found
            .iter()
            .any(|i| matches!(i, Irregularity::UncoveredConcurrency { .. })),
        "{:?}",
        &found[..5.min(found.len())]
    );
    assert_eq!(
        found,
        projection.irregularities(&Policy::default(), on, None),
        "stable order"
    );
}
