//! Probe: folds a generated province many times, for profiling the rebuild.
//! `cargo run --release -p registry-projections --example rebuild_probe`
#![allow(clippy::unwrap_used, missing_docs)]

use registry_projections::Projection;
use registry_testkit::{generate, Config};

fn main() {
    let generated = generate(&Config::province(1));
    let t = std::time::Instant::now();
    let mut n = 0;
    for _ in 0..5 {
        let mut projection = Projection::new();
        for fact in &generated.facts {
            projection.apply(fact.recorded_at, &fact.event);
        }
        n += generated.facts.len();
        std::hint::black_box(&projection);
    }
    println!("{:.0} events/s", n as f64 / t.elapsed().as_secs_f64());
}
