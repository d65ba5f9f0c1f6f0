//! `registry-gen`: generates a registry and prints its size, or writes its events as JSON Lines.
//!
//! `registry-gen [tiny|province|national] [seed] [--jsonl | --import]`
//!
//! `--jsonl` writes the events; `--import` writes `regctl import` rows (JSON Lines) of the
//! persons, units, offices, terms, holdings, models and adoptions.

use std::io::Write;
use std::time::Instant;

use registry_testkit::{generate, Config};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size = args.first().map_or("province", String::as_str);
    let seed = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let config = match size {
        "tiny" => Config::tiny(seed),
        "province" => Config::province(seed),
        "national" => Config::national(seed),
        other => {
            eprintln!("unknown size {other:?}: expected tiny, province or national");
            std::process::exit(64);
        }
    };
    let started = Instant::now();
    let generated = generate(&config);
    let elapsed = started.elapsed();
    if args.iter().any(|a| a == "--import") {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        match registry_testkit::fixtures::import_rows(&generated, &mut out).and_then(|c| {
            out.flush()?;
            Ok(c)
        }) {
            Ok(counts) => eprintln!(
                "import rows: {:?}; {} events without a row, {} holdings left out",
                counts.rows, counts.events_left_out, counts.holdings_left_out
            ),
            Err(e) => {
                eprintln!("cannot write the rows: {e}");
                std::process::exit(74);
            }
        }
    } else if args.iter().any(|a| a == "--jsonl") {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        for fact in &generated.facts {
            let payload = String::from_utf8_lossy(&fact.event.encode()).into_owned();
            let _ = writeln!(
                out,
                "{{\"recorded_at\":{},\"type\":\"{}\",\"version\":{},\"data\":{payload}}}",
                fact.recorded_at,
                fact.event.type_name(),
                fact.event.schema_version()
            );
        }
    }
    eprintln!(
        "{size} (seed {seed}): {} events, {} holdings, {} persons, {} offices, {} communes in {:.1} s",
        generated.facts.len(),
        generated.registry.holdings().count(),
        generated.registry.persons().count(),
        generated.registry.offices().count(),
        generated.catalogue.communes.len(),
        elapsed.as_secs_f64()
    );
}
