//! Read-model benchmark on a generated registry.
//!
//! `cargo bench -p registry-projections --bench read_models` (one province, about 165,000
//! events); `REGISTRY_BENCH_SIZE=national` for the whole country (about 10 million events; it
//! takes minutes and several GiB). `REGISTRY_BENCH_PART=rebuild` stops after the rebuild.
//!
//! Reports: rebuild speed (folding decoded events, and decoding stored JSON then folding),
//! the coverage index refresh, resident memory of the projection per event, snapshot size and save/load time, and the median and 99th percentile latency of
//! each query kind, measured one call at a time in process.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use registry_domain::*;
use registry_projections::snapshot::{self, Kind, Shelf};
use registry_projections::{FeedBatch, Projection, ReadModels, Seen};
use registry_testkit::{generate, Config};

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    (
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
    )
}

fn time<T>(n: usize, mut f: impl FnMut(usize) -> T) -> (Duration, Duration) {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        std::hint::black_box(f(i));
        samples.push(t.elapsed());
    }
    percentiles(samples)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let size = std::env::var("REGISTRY_BENCH_SIZE").unwrap_or_else(|_| "province".into());
    let config = if size == "national" {
        Config::national(1)
    } else {
        Config::province(1)
    };
    let t = Instant::now();
    let generated = generate(&config);
    let facts = generated.facts;
    println!(
        "generated {size}: {} events in {:.1} s",
        facts.len(),
        t.elapsed().as_secs_f64()
    );
    let catalogue = generated.catalogue;
    // The baseline for the auditors' list below: the same rules over the domain's own state.
    let t = Instant::now();
    let listed_by_registry = generated
        .registry
        .irregularities(&Policy::default(), Date::from_ymd(2026, 1, 1).unwrap())
        .len();
    let registry_listing = t.elapsed();
    drop(generated.registry);

    // Encoded payloads, as the store holds them.
    let encoded: Vec<(i64, &'static str, u16, Vec<u8>)> = facts
        .iter()
        .map(|f| {
            (
                f.recorded_at,
                f.event.type_name(),
                f.event.schema_version(),
                f.event.encode(),
            )
        })
        .collect();

    let before = resident_bytes();
    let t = Instant::now();
    let mut projection = Projection::new();
    for fact in &facts {
        projection.apply(fact.recorded_at, &fact.event);
    }
    let fold = t.elapsed();
    let t = Instant::now();
    projection.refresh_coverage();
    let refresh = t.elapsed();
    let memory = resident_bytes().saturating_sub(before);

    // The other parts a daemon holds, measured the same way while nothing is freed: the
    // writer's state (the domain's registry) and the read models (projection and auditors'
    // index, the coverage index not refreshed).
    let before = resident_bytes();
    let writer_state = Registry::from_events(facts.iter().map(|f| &f.event));
    let writer_memory = resident_bytes().saturating_sub(before);
    let batch = FeedBatch {
        events: facts
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let seen = Seen {
                    revision: i as u64,
                    recorded_at: f.recorded_at,
                    position: [i as u64, i as u64],
                };
                (seen, f.event.clone())
            })
            .collect(),
        through: Some([facts.len() as u64; 2]),
    };
    let before = resident_bytes();
    let mut models = ReadModels::<[u64; 2]>::default();
    models.fold(&batch);
    let models_memory = resident_bytes().saturating_sub(before);
    drop((writer_state, batch, models));

    drop(facts);

    let t = Instant::now();
    let mut rebuilt = Projection::new();
    for (recorded_at, name, version, payload) in &encoded {
        let event = Event::decode(name, *version, payload).unwrap();
        rebuilt.apply(*recorded_at, &event);
    }
    let decode_fold = t.elapsed();
    drop(rebuilt);
    let n = encoded.len() as f64;
    println!(
        "rebuild (fold decoded events): {:>10.0} events/s",
        n / fold.as_secs_f64()
    );
    println!(
        "rebuild (decode JSON + fold):  {:>10.0} events/s",
        n / decode_fold.as_secs_f64()
    );
    // The auditors' list: the domain's rules over the whole current model.
    let t = Instant::now();
    let listed = projection
        .irregularities(
            &Policy::default(),
            Date::from_ymd(2026, 1, 1).unwrap(),
            None,
        )
        .len();
    let projection_listing = t.elapsed();
    println!(
        "irregularities listed from the projection: {listed} in {:.2} s; from the domain state: {listed_by_registry} in {:.2} s ({:.2} x)",
        projection_listing.as_secs_f64(),
        registry_listing.as_secs_f64(),
        projection_listing.as_secs_f64() / registry_listing.as_secs_f64()
    );
    println!(
        "coverage index refresh after the rebuild: {:.2} s",
        refresh.as_secs_f64()
    );
    for (part, bytes) in [
        ("the projection", memory),
        ("the writer's state", writer_memory),
        (
            "the read models (projection and auditors' index)",
            models_memory,
        ),
    ] {
        println!(
            "resident memory of {part}: {:.0} MiB, {:.0} bytes/event",
            bytes as f64 / 1048576.0,
            bytes as f64 / n
        );
    }

    if std::env::var("REGISTRY_BENCH_PART").as_deref() == Ok("rebuild") {
        return;
    }

    // The snapshot holds the read models a replica keeps: the projection and the auditors'
    // index, folded here as the daemon folds them.
    let mut models = ReadModels::<[u64; 2]>::default();
    models.fold_pipelined(encoded.chunks(2048).enumerate().map(|(c, chunk)| {
        let events: Vec<_> = chunk
            .iter()
            .enumerate()
            .map(|(i, (recorded_at, name, version, payload))| {
                let revision = (c * 2048 + i) as u64;
                let seen = Seen {
                    revision,
                    recorded_at: *recorded_at,
                    position: [revision + 1; 2],
                };
                (seen, Event::decode(name, *version, payload).unwrap())
            })
            .collect();
        let through = events.last().map(|(seen, _)| seen.position);
        FeedBatch { events, through }
    }));
    let dir = std::env::temp_dir().join(format!("registry-bench-{}", std::process::id()));
    let shelf = Shelf::new(&dir, Kind::ReadModels);
    let t = Instant::now();
    let path = snapshot::save_models(&shelf, &models, uuid::Uuid::nil()).unwrap();
    let save = t.elapsed();
    drop(models);
    let size = std::fs::metadata(&path).unwrap().len();
    let t = Instant::now();
    let loaded = snapshot::load_models::<[u64; 2]>(&path).unwrap();
    let load = t.elapsed();
    drop(loaded);
    std::fs::remove_dir_all(&dir).unwrap();
    println!(
        "read models' snapshot: {:.0} MiB, save {:.2} s, load {:.2} s",
        size as f64 / 1048576.0,
        save.as_secs_f64(),
        load.as_secs_f64()
    );

    let mut rng = SmallRng::seed_from_u64(7);
    let dates: Vec<Date> = (0..100_000)
        .map(|_| {
            Date::from_ymd(
                rng.random_range(1996..2026),
                rng.random_range(1..13),
                rng.random_range(1..29),
            )
            .unwrap()
        })
        .collect();
    let offices: Vec<OfficeId> = (0..100_000)
        .map(|_| catalogue.offices[rng.random_range(0..catalogue.offices.len())])
        .collect();
    let persons: Vec<PersonId> = (0..100_000)
        .map(|_| catalogue.persons[rng.random_range(0..catalogue.persons.len())])
        .collect();
    let (p50, p99) = time(100_000, |i| projection.holders(offices[i], dates[i], None));
    println!("holder of an office on a date:       p50 {p50:>9.2?}  p99 {p99:>9.2?}");
    let (p50, p99) = time(100_000, |i| {
        projection.offices_of(persons[i], dates[i], None)
    });
    println!("offices of a person on a date:       p50 {p50:>9.2?}  p99 {p99:>9.2?}");
    let known = Some(1_600_000_000_000_000);
    let (p50, p99) = time(100_000, |i| projection.holders(offices[i], dates[i], known));
    println!("holder, as known at 2020-09-13:      p50 {p50:>9.2?}  p99 {p99:>9.2?}");
    let (p50, p99) = time(20_000, |i| projection.office_history(offices[i], None));
    println!("history of an office:                p50 {p50:>9.2?}  p99 {p99:>9.2?}");
    let units: Vec<UnitId> = (0..20_000)
        .map(|_| catalogue.communes[rng.random_range(0..catalogue.communes.len())])
        .collect();
    let (p50, p99) = time(20_000, |i| projection.unit_on(units[i], dates[i], None));
    println!("a unit on a date:                    p50 {p50:>9.2?}  p99 {p99:>9.2?}");
    let (p50, p99) = time(20_000, |i| projection.lineage(units[i], None));
    println!("lineage of a commune:                p50 {p50:>9.2?}  p99 {p99:>9.2?}");
    let model = catalogue.vice_front_model.unwrap();
    let provinces = &catalogue.provinces;
    let (p50, p99) = time(500, |i| {
        projection.coverage(
            model,
            provinces[i % provinces.len()],
            Level::Commune,
            dates[i],
            None,
        )
    });
    println!("coverage of a model in a province:   p50 {p50:>9.2?}  p99 {p99:>9.2?}");
    let names = ["nguyen van an", "Trần Thị Mai", "dang", "le xuan ky"];
    let (p50, p99) = time(2_000, |i| projection.search(names[i % names.len()], 20));
    println!("name search (20 results):            p50 {p50:>9.2?}  p99 {p99:>9.2?}");
}
