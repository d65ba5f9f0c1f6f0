//! Writes a generated registry into an embedded store: `cargo run --release -p registry-bench
//! --example load_province -- DIR [province|national]` (then `registryd --data-dir DIR`).

fn main() {
    let dir = std::env::args().nth(1).expect("a directory");
    let config = match std::env::args().nth(2).as_deref() {
        Some("national") => registry_testkit::Config::national(1),
        _ => registry_testkit::Config::province(1),
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let generated = registry_testkit::generate(&config);
    let path = std::path::Path::new(&dir).join("registry.db");
    let events = runtime
        .block_on(registry_bench::load_store(&path, &generated.facts))
        .expect("stored");
    println!("{events} events in {}", path.display());
}
