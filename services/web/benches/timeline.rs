//! How long an office's page takes to draw on the server (issue 27 asks under 50 ms for thirty
//! years of holders), against reading the same holdings from the models (their holders' names
//! and titles, what `ListOfficeHistory` reads before encoding) in the same run.
//!
//! `cargo bench -p registry-web --bench timeline`: generates a province (1995 to today, its
//! 2025 mergers), folds it into the read models, takes the office with the most holdings, and
//! draws its page (`office_page`, what `/ui/offices/{uuid}` runs under the models' lock) 200
//! times. Median and p99 of each.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use registry_projections::Projection;
use registry_web::{office_page, today, View};

fn quantiles(mut runs: Vec<Duration>) -> (f64, f64) {
    runs.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(runs[runs.len() / 2]), ms(runs[runs.len() * 99 / 100]))
}

fn main() {
    let generated = registry_testkit::generate(&registry_testkit::Config::province(1));
    let mut p = Projection::new();
    for fact in &generated.facts {
        p.apply(fact.recorded_at, &fact.event);
    }
    let (office, holdings) = generated
        .catalogue
        .offices
        .iter()
        .map(|o| (*o, p.office_history(*o, None).len()))
        .max_by_key(|(_, n)| *n)
        .unwrap();
    let view = View::default();
    let day = today();
    let page = office_page(&p, office, &view, day).unwrap();
    let draw: Vec<Duration> = (0..200)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(office_page(&p, office, &view, day).unwrap());
            started.elapsed()
        })
        .collect();
    let read: Vec<Duration> = (0..200)
        .map(|_| {
            let started = Instant::now();
            let views = p.office_history(office, None);
            let rows: Vec<_> = views
                .iter()
                .map(|h| {
                    (
                        p.holder_name(h, None),
                        p.holding_office_title(h, None).map(str::to_owned),
                    )
                })
                .collect();
            std::hint::black_box(rows);
            started.elapsed()
        })
        .collect();
    let (draw_p50, draw_p99) = quantiles(draw);
    let (read_p50, read_p99) = quantiles(read);
    println!(
        "office page, {holdings} holdings, {} bytes: p50 {draw_p50:.3} ms, p99 {draw_p99:.3} ms (target < 50 ms)",
        page.len()
    );
    println!(
        "the same holdings read for ListOfficeHistory: p50 {read_p50:.3} ms, p99 {read_p99:.3} ms"
    );
    println!("page / read (p50): {:.1}", draw_p50 / read_p50);
}
