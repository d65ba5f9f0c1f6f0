//! Probe: how fast the embedded store's feed reads, against a raw SQLite scan of the same file.
//! `cargo run --release -p registry-eventstore --example scan_probe -- <db>`.
#![allow(clippy::unwrap_used, missing_docs)]
use std::time::Instant;

use registry_eventstore::*;

fn main() {
    let path = std::env::args().nth(1).unwrap();
    {
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        conn.pragma_update(None, "mmap_size", 1i64 << 34).unwrap();
        let t = Instant::now();
        let mut st = conn.prepare("SELECT position, stream, revision, id, type, version, payload, actor, request_id, correlation_id, recorded_at FROM events").unwrap();
        let mut rows = st.query([]).unwrap();
        let mut n = 0u64;
        while let Some(r) = rows.next().unwrap() {
            n += 1;
            std::hint::black_box(r.get_ref(6).unwrap());
        }
        println!(
            "raw sqlite scan: {:.0} rows/s",
            n as f64 / t.elapsed().as_secs_f64()
        );
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = EmbeddedStore::open(EmbeddedConfig::new(&path)).unwrap();
        for page in [1_000, 10_000, 50_000] {
            let t = Instant::now();
            let mut after = None;
            let mut n = 0;
            loop {
                let events = store.read_all(after, page).await.unwrap();
                let Some(last) = events.last() else { break };
                after = Some(last.position);
                n += events.len();
            }
            println!(
                "read_all pages of {page}: {:.0} events/s",
                n as f64 / t.elapsed().as_secs_f64()
            );
        }
    });
}
