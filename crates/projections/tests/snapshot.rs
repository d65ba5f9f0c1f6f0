//! Snapshots: a loaded snapshot answers like the projection it was taken from; a restart from a
//! snapshot plus the rest of the feed equals a full rebuild; a damaged, truncated, foreign or
//! future-format file is refused (and the caller rebuilds), never half-read.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use registry_domain::*;
use registry_projections::snapshot::{self, Checkpoint, SnapshotError};
use registry_projections::*;
use registry_testkit::{generate, Config, Generated};

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

fn fold(generated: &Generated, range: std::ops::Range<usize>, projection: &mut Projection) {
    for fact in &generated.facts[range] {
        projection.apply(fact.recorded_at, &fact.event);
    }
}

#[test]
fn a_snapshot_answers_like_its_source_and_a_restart_catches_up() {
    let generated = generate(&Config::tiny(11));
    let n = generated.facts.len();
    let mut full = Projection::new();
    fold(&generated, 0..n, &mut full);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("projection.snapshot");
    let half = n / 2;
    let mut partial = Projection::new();
    fold(&generated, 0..half, &mut partial);
    snapshot::save(
        &partial,
        Checkpoint {
            commit: half as u64,
            prepare: half as u64,
        },
        &path,
    )
    .unwrap();
    assert_eq!(
        answers(&snapshot::load(&path).unwrap().projection, &generated, 1),
        answers(&partial, &generated, 1)
    );

    // Restart: load, then catch up from the checkpoint.
    let loaded = snapshot::load(&path).unwrap();
    assert_eq!(
        loaded.checkpoint,
        Checkpoint {
            commit: half as u64,
            prepare: half as u64
        }
    );
    let mut resumed = loaded.projection;
    assert_eq!(resumed.applied(), half as u64);
    fold(&generated, half..n, &mut resumed);
    assert_eq!(
        answers(&resumed, &generated, 2),
        answers(&full, &generated, 2)
    );
}

#[test]
fn damaged_snapshots_are_refused() {
    let generated = generate(&Config::tiny(12));
    let mut projection = Projection::new();
    fold(&generated, 0..generated.facts.len(), &mut projection);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("projection.snapshot");
    snapshot::save(
        &projection,
        Checkpoint {
            commit: 9,
            prepare: 9,
        },
        &path,
    )
    .unwrap();
    let good = std::fs::read(&path).unwrap();

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    std::fs::write(&path, &flipped).unwrap();
    assert!(matches!(
        snapshot::load(&path),
        Err(SnapshotError::Checksum { .. })
    ));

    // A body damaged where the checksum does not catch it (the checksum written again): the
    // records are checked value by value, and an impossible one is refused, not loaded.
    // Header: 48 bytes; the first section's length (8), the count of versions (8), then the
    // first version: holding (16), person (4), office (4), start (4), the tag of its end.
    let mut forged = good.clone();
    forged[48 + 8 + 8 + 28] = 9;
    let crc = crc32fast::hash(&forged[48..]);
    forged[44..48].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &forged).unwrap();
    assert!(matches!(
        snapshot::load(&path),
        Err(SnapshotError::Body(message)) if message.contains("holding end")
    ));

    std::fs::write(&path, &good[..good.len() - 100]).unwrap();
    assert!(matches!(
        snapshot::load(&path),
        Err(SnapshotError::Truncated { .. })
    ));

    std::fs::write(&path, &good[..20]).unwrap();
    assert!(matches!(
        snapshot::load(&path),
        Err(SnapshotError::Truncated { .. })
    ));

    for other in [4, 6] {
        let mut other_format = good.clone();
        other_format[8] = other;
        std::fs::write(&path, &other_format).unwrap();
        assert!(matches!(
            snapshot::load(&path),
            Err(SnapshotError::UnsupportedFormat(f)) if f == u32::from(other)
        ));
    }

    std::fs::write(
        &path,
        b"PK\x03\x04 not a snapshot at all, but long enough for a header......",
    )
    .unwrap();
    assert!(matches!(
        snapshot::load(&path),
        Err(SnapshotError::BadMagic)
    ));

    std::fs::write(&path, &good).unwrap();
    assert!(snapshot::load(&path).is_ok());
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
