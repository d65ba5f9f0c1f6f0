//! Throughput of the event store backends, measured in one run.
//!
//! `cargo bench -p registry-eventstore --bench throughput` prints, for the embedded store and
//! (when reachable) PostgreSQL at `REGISTRY_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`):
//!
//! - single-writer durable appends/s (one event per append, each acknowledged after fsync);
//! - appends/s with 16 concurrent writers (group commit);
//! - bulk appends of 1,000-event batches, in events/s;
//! - reading the whole feed, in events/s (the median of three passes).
//!
//! The embedded store runs twice: keeping the verifiable log (its checkpoints signed, as
//! `registryd` does) and without it (`log` off), so the rows show what the log costs appends.
//!
//! Figures are throughput over a fixed amount of work, not timings asserted anywhere.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Instant;

use registry_eventstore::*;
use uuid::Uuid;

const PAYLOAD: &str = r#"{"holding":"01900000-0000-7000-8000-000000000004","person":"01900000-0000-7000-8000-000000000001","office":"01900000-0000-7000-8000-000000000002","start":"2020-10-15","beginning":{"kind":"elected"},"basis":{"number":"36-CT/TU","issued_on":"2023-07-18","issuer":"Ban Thường vụ Tỉnh ủy"}}"#;

fn event() -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        event_type: "HoldingStarted".into(),
        schema_version: 1,
        payload: PAYLOAD.as_bytes().to_vec(),
        metadata: Metadata {
            actor: "bench".into(),
            request_id: None,
            correlation_id: None,
            request_fingerprint: None,
        },
    }
}

fn scale() -> usize {
    std::env::var("REGISTRY_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

async fn run<S: EventStore>(name: &str, store: S) {
    let s = scale();
    // Single writer.
    let n = 2_000 * s;
    let t = Instant::now();
    for _ in 0..n {
        store
            .append("single", ExpectedRevision::Any, vec![event()])
            .await
            .unwrap();
    }
    let single = n as f64 / t.elapsed().as_secs_f64();

    // 16 concurrent writers.
    let each = 1_000 * s;
    let t = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..each {
                    store
                        .append(&format!("writer-{w}"), ExpectedRevision::Any, vec![event()])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let concurrent = (16 * each) as f64 / t.elapsed().as_secs_f64();

    // Bulk batches of 1,000.
    let batches = 300 * s;
    let prepared: Vec<Vec<NewEvent>> = (0..batches)
        .map(|_| (0..1_000).map(|_| event()).collect())
        .collect();
    let t = Instant::now();
    for batch in prepared {
        store
            .append("bulk", ExpectedRevision::Any, batch)
            .await
            .unwrap();
    }
    let bulk = (batches * 1_000) as f64 / t.elapsed().as_secs_f64();

    // Read the whole feed, three times; the median is reported.
    let mut rates = Vec::new();
    let mut read = 0usize;
    for _ in 0..3 {
        let t = Instant::now();
        let mut after = None;
        read = 0;
        loop {
            let page = store.read_all(after, 10_000).await.unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.position);
            read += page.len();
        }
        rates.push(read as f64 / t.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    let feed = rates[1];

    println!(
        "{name:<10} single-writer {single:>9.0} appends/s | 16 writers {concurrent:>9.0} appends/s | bulk {bulk:>10.0} events/s | feed read {feed:>10.0} events/s ({read} events)"
    );
}

fn main() {
    // `cargo test --benches` runs bench binaries with --bench absent; do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = EmbeddedConfig::new(dir.path().join("bench.db"));
        let key = registry_ledger::SigningKey::generate("bench/log").unwrap();
        config.signer = Some(std::sync::Arc::new(LogSigner::new(vec![key]).unwrap()));
        let store = EmbeddedStore::open(config).unwrap();
        run("embedded", store.clone()).await;
        store.close();
        if let Ok(keep) = std::env::var("REGISTRY_BENCH_KEEP") {
            std::fs::copy(dir.path().join("bench.db"), keep).unwrap();
        }
        let mut config = EmbeddedConfig::new(dir.path().join("unlogged.db"));
        config.log = false;
        let store = EmbeddedStore::open(config).unwrap();
        run("no log", store.clone()).await;
        store.close();
        let url = std::env::var("REGISTRY_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("bench_{}", Uuid::now_v7().simple());
        let config = PostgresConfig {
            schema: schema.clone(),
            pool_size: 20,
            ..PostgresConfig::new(&url)
        };
        match PostgresStore::connect(config).await {
            Ok(store) => {
                run("postgres", store).await;
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                        .await;
                }
            }
            Err(e) => println!("postgres   skipped: {e}"),
        }
    });
}
