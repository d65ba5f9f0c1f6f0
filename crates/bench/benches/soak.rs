//! The soak: `registryd` under a mixed load for a long time, sampled for anything that grows
//! without bound.
//!
//! For `REGISTRY_SOAK_SECONDS` (default 1800) per store (`REGISTRY_SOAK_STORES`, default
//! `embedded,postgres`; PostgreSQL on a server of the bench's own): 8 writers record past
//! holdings in offices of their own (50 a second each at most); readers ask who held those
//! offices and what their holders held; every ten seconds an import of 500 persons, a
//! correction of a person's name, and a change-feed follower that connects, reads a while and
//! drops; read models saved every 20,000 events; a rebuild every five minutes. Writes, imports
//! and corrections stop in every other twentieth of the run (the reads go on), so that memory
//! that grows with time can be told apart from the registry's data, which grows with events.
//! Every `REGISTRY_SOAK_SAMPLE` seconds (default 10) it samples `registryd`'s resident memory,
//! open file descriptors, threads and tokio tasks (its `registry_runtime_tasks` metric), and
//! the reads' p99.
//!
//! It fails when any call errors, or when over the second half of the run a sample's fitted
//! slope would add more than its allowance over the length of the run (descriptors: 16;
//! threads: 8; tasks: 64; resident memory: a tenth of its mean, 128 MiB and 2 KiB for each
//! event recorded, since the registry is held in memory). Its floor is also fitted to events
//! and time, and printed.
//!
//! `cargo bench -p registry-bench --bench soak`; `REGISTRY_SOAK_SECONDS=60
//! REGISTRY_SOAK_SAMPLE=2` for the short version.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use registry_bench::{load_unit, own_offices, past_holding};
use registry_client::{request_id, v1, Client};
use registry_testkit::daemon::{registryd_binary, Daemon};
use registry_testkit::pgcluster::Single;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One sample of the daemon.
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: f64,
    rss_mib: f64,
    fds: f64,
    threads: f64,
    tasks: f64,
    read_p99_ms: f64,
    /// Events in the registry stream: the data the daemon holds in memory by design.
    events: f64,
}

/// A field of `/proc/PID/status` in its unit (kB for memory).
fn status_field(pid: u32, name: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// A gauge's value from the Prometheus text served at `address` (`host:port`), or NaN.
fn scrape_gauge(address: &str, name: &str) -> f64 {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(address) else {
        return f64::NAN;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    let mut text = String::new();
    if stream.write_all(request.as_bytes()).is_err() || stream.read_to_string(&mut text).is_err() {
        return f64::NAN;
    }
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

fn sample(pid: u32, metrics: &str, at: f64, latencies: &Mutex<Vec<u64>>, events: u64) -> Sample {
    let mut reads = std::mem::take(&mut *latencies.lock().unwrap());
    reads.sort_unstable();
    let p99 = reads
        .get(reads.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or(0);
    Sample {
        at,
        rss_mib: status_field(pid, "VmRSS:") / 1024.0,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count()) as f64,
        threads: status_field(pid, "Threads:"),
        tasks: scrape_gauge(metrics, "registry_runtime_tasks"),
        read_p99_ms: p99 as f64 / 1000.0,
        events: events as f64,
    }
}

/// The least-squares slope of `values` over `times`.
fn slope(times: &[f64], values: &[f64]) -> f64 {
    let n = times.len() as f64;
    let (mt, mv) = (
        times.iter().sum::<f64>() / n,
        values.iter().sum::<f64>() / n,
    );
    let (mut num, mut den) = (0.0, 0.0);
    for (t, v) in times.iter().zip(values) {
        num += (t - mt) * (v - mv);
        den += (t - mt) * (t - mt);
    }
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

struct Soak {
    client: Client,
    started: Instant,
    /// Writes go on for this long, then stop for as long, and so on.
    half: Duration,
    stop: Arc<AtomicBool>,
    errors: Arc<Mutex<Vec<String>>>,
    latencies: Arc<Mutex<Vec<u64>>>,
    calls: Arc<AtomicU64>,
}

impl Soak {
    fn failed(&self, what: &str, e: impl std::fmt::Display) {
        let mut errors = self.errors.lock().unwrap();
        if errors.len() < 20 {
            errors.push(format!("{what}: {e}"));
        }
    }

    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }

    /// Whether this is a time for writes (the first and every other `half`).
    fn writing(&self) -> bool {
        ((self.started.elapsed().as_secs_f64() / self.half.as_secs_f64()) as u64).is_multiple_of(2)
    }
}

async fn setup(client: &Client) -> Arc<Vec<(String, String)>> {
    let unit = load_unit(client, "Xã Ngâm Lâu", v1::Level::Commune).await;
    own_offices(client, &unit, 8, "soak").await
}

/// Runs the soak against `daemon`; its samples and the errors seen.
async fn soak(
    daemon: &Daemon,
    metrics: &str,
    seconds: u64,
    every: u64,
) -> (Vec<Sample>, Vec<String>, u64) {
    let client = Client::connect(&daemon.address).await.unwrap();
    let own = setup(&client).await;
    let state = Arc::new(Soak {
        client,
        started: Instant::now(),
        half: Duration::from_secs((seconds / 20).max(every)),
        stop: Arc::new(AtomicBool::new(false)),
        errors: Arc::default(),
        latencies: Arc::default(),
        calls: Arc::default(),
    });
    let mut tasks = Vec::new();
    // Writers: past holdings, one day each, in offices of their own.
    for task in 0..own.len() as u64 {
        let (s, own) = (state.clone(), own.clone());
        tasks.push(tokio::spawn(async move {
            let mut k = 0;
            while s.running() {
                if !s.writing() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                k += 1;
                let request = past_holding(&own, (task << 32) | k);
                if let Err(e) = s.client.command().start_holding(request).await {
                    s.failed("a write", e);
                }
                s.calls.fetch_add(1, Ordering::Relaxed);
                // 50 writes a second each at most: the registry grows at a steady pace.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    // Readers: holders of those offices on a day they wrote, and their holders' offices.
    for reader in 0..4u64 {
        let (s, own) = (state.clone(), own.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = reader;
            while s.running() {
                n += 1;
                let (office, person) = &own[(n % own.len() as u64) as usize];
                let started = Instant::now();
                let answer = if n % 2 == 0 {
                    s.client
                        .query()
                        .get_office_holders(v1::GetOfficeHoldersRequest {
                            office: office.clone(),
                            date: "2000-01-01".into(),
                            ..Default::default()
                        })
                        .await
                        .map(drop)
                } else {
                    s.client
                        .query()
                        .list_person_offices(v1::ListPersonOfficesRequest {
                            person: person.clone(),
                            date: "2000-01-01".into(),
                            ..Default::default()
                        })
                        .await
                        .map(drop)
                };
                match answer {
                    Ok(()) => s
                        .latencies
                        .lock()
                        .unwrap()
                        .push(started.elapsed().as_micros() as u64),
                    Err(e) => s.failed("a read", e),
                }
                s.calls.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Every ten seconds: an import, a correction, a follower of the change feed.
    {
        let (s, own) = (state.clone(), own.clone());
        tasks.push(tokio::spawn(async move {
            let mut round = 0;
            while s.running() {
                round += 1;
                if s.writing() {
                    let records: Vec<v1::ImportRecord> = (0..500)
                        .map(|n| v1::ImportRecord {
                            record: Some(v1::import_record::Record::Person(
                                v1::RegisterPersonRequest {
                                    request_id: request_id(),
                                    display_name: format!("Người nhập {round}-{n}"),
                                    ..Default::default()
                                },
                            )),
                        })
                        .collect();
                    let messages = records
                        .chunks(100)
                        .map(|c| v1::ImportRecordsRequest {
                            records: c.to_vec(),
                        })
                        .collect::<Vec<_>>();
                    if let Err(e) = s
                        .client
                        .command()
                        .import_records(tokio_stream::iter(messages))
                        .await
                    {
                        s.failed("an import", e);
                    }
                    let (_, person) = &own[round % own.len()];
                    let correction = v1::CorrectPersonRequest {
                        request_id: request_id(),
                        person: person.clone(),
                        display_name: format!("Người Thử Tải đã sửa {round}"),
                        amendment: Some(v1::Amendment {
                            reason: "đối chiếu hồ sơ".into(),
                            basis: None,
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["display_name".into()],
                        }),
                        ..Default::default()
                    };
                    if let Err(e) = s.client.admin().correct_person(correction).await {
                        s.failed("a correction", e);
                    }
                }
                follow_a_while(&s).await;
                s.calls.fetch_add(3, Ordering::Relaxed);
                for _ in 0..100 {
                    if !s.running() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }
    // A rebuild every five minutes.
    {
        let s = state.clone();
        tasks.push(tokio::spawn(async move {
            let mut last = Instant::now();
            while s.running() {
                if last.elapsed() >= Duration::from_secs(300) {
                    last = Instant::now();
                    if let Err(e) = s
                        .client
                        .admin()
                        .rebuild_projections(v1::RebuildProjectionsRequest {})
                        .await
                    {
                        s.failed("a rebuild", e);
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(every)).await;
        let events = match state
            .client
            .admin()
            .get_store_stats(v1::GetStoreStatsRequest {})
            .await
        {
            Ok(stats) => stats.into_inner().events,
            Err(e) => {
                state.failed("the store's statistics", e);
                0
            }
        };
        let s = sample(
            daemon.pid(),
            metrics,
            started.elapsed().as_secs_f64(),
            &state.latencies,
            events,
        );
        println!(
            "  {:>6.0} s  RSS {:>7.1} MiB  fds {:>4}  threads {:>3}  tasks {:>4}  read p99 {:>6.2} ms  events {:>8}  calls {}",
            s.at,
            s.rss_mib,
            s.fds,
            s.threads,
            s.tasks,
            s.read_p99_ms,
            s.events,
            state.calls.load(Ordering::Relaxed)
        );
        samples.push(s);
    }
    state.stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let errors = state.errors.lock().unwrap().clone();
    (samples, errors, state.calls.load(Ordering::Relaxed))
}

/// Reads the change feed from the start for a second, then drops the stream.
async fn follow_a_while(s: &Soak) {
    let stream = s
        .client
        .audit()
        .stream_changes(v1::StreamChangesRequest::default())
        .await;
    match stream {
        Ok(stream) => {
            let mut stream = stream.into_inner();
            let until = Instant::now() + Duration::from_secs(1);
            while Instant::now() < until {
                match tokio::time::timeout(Duration::from_millis(200), stream.message()).await {
                    Ok(Ok(Some(_))) | Err(_) => {}
                    Ok(Ok(None)) => break,
                    Ok(Err(e)) => {
                        s.failed("the change feed", e);
                        break;
                    }
                }
            }
        }
        Err(e) => s.failed("following the change feed", e),
    }
}

/// A sampled figure: its name, how to read it from a sample, and the growth allowed over a run.
type Check = (&'static str, fn(&Sample) -> f64, f64);

/// The least-squares fit `value = a + b·x + c·t`: `(b, c)`, or `None` when `x` and `t` do not
/// vary apart (no pause in the writes).
fn fit_two(xs: &[f64], ts: &[f64], values: &[f64]) -> Option<(f64, f64)> {
    let n = xs.len() as f64;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / n;
    let (mx, mt, mv) = (mean(xs), mean(ts), mean(values));
    let (mut sxx, mut stt, mut sxt, mut sxv, mut stv) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for ((x, t), v) in xs.iter().zip(ts).zip(values) {
        let (x, t, v) = (x - mx, t - mt, v - mv);
        sxx += x * x;
        stt += t * t;
        sxt += x * t;
        sxv += x * v;
        stv += t * v;
    }
    let det = sxx * stt - sxt * sxt;
    // Collinear within a percent: the fit cannot tell time from events.
    if det <= 0.01 * sxx * stt {
        return None;
    }
    Some(((sxv * stt - stv * sxt) / det, (stv * sxx - sxv * sxt) / det))
}

/// Growth allowed whatever the run's length: bounded caches still filling in a short run
/// (SQLite's page caches, the last events, kept histories) and the allocator's arenas, which
/// grow in steps of tens of MiB.
const FIXED_SLACK_MIB: f64 = 128.0;

/// The most resident memory an event recorded may take: the data held in memory for it (a
/// holding in this load costs more than the national registry's 314 B an event: see
/// BENCHMARKS.md), with room for the allocator's slack.
const MAX_BYTES_PER_EVENT: f64 = 2048.0;

/// What grew without bound over the second half, if anything.
fn growth(samples: &[Sample], seconds: f64, every: u64) -> Vec<String> {
    let half = &samples[samples.len() / 2..];
    let times: Vec<f64> = half.iter().map(|s| s.at).collect();
    let mut found = Vec::new();
    let rss: Vec<f64> = half.iter().map(|s| s.rss_mib).collect();
    let events: Vec<f64> = half.iter().map(|s| s.events).collect();
    let allowance = rss.iter().sum::<f64>() / rss.len() as f64 / 10.0 + FIXED_SLACK_MIB;
    // First, growth over time against the allowance plus the data recorded (at most
    // MAX_BYTES_PER_EVENT an event).
    let over_run = slope(&times, &rss) * seconds;
    let added = slope(&times, &events) * seconds;
    let with_data = allowance + added * MAX_BYTES_PER_EVENT / (1024.0 * 1024.0);
    println!(
        "  resident memory (MiB): slope over the second half {over_run:+.1} over the run (allowed {with_data:.1} with {added:.0} events)"
    );
    if over_run > with_data {
        found.push(format!(
            "resident memory grows: {over_run:+.1} MiB over the run, allowed {with_data:.1}"
        ));
    }
    // Then, for the reader, memory fitted to events and time. Not judged: the work deferred to
    // a pause in the writes (the writer's snapshot is saved when it is quiet; the read models'
    // once a while has passed) raises memory there, and the allocator keeps it until writes
    // resume. The floor over one period of writes and pause leaves those peaks out.
    let period = ((2 * (seconds as usize / 20).max(1)) / every.max(1) as usize).max(1);
    let floor: Vec<f64> = (0..samples.len())
        .map(|i| {
            samples[i.saturating_sub(period - 1)..=i]
                .iter()
                .map(|s| s.rss_mib)
                .fold(f64::INFINITY, f64::min)
        })
        .collect();
    match fit_two(&events, &times, &floor[samples.len() / 2..]) {
        Some((per_event, per_second)) => println!(
            "  resident memory's floor fitted to events and time: {:.0} B an event, {:+.1} MiB over the run with time",
            per_event * 1024.0 * 1024.0,
            per_second * seconds
        ),
        None => println!("  resident memory: the writes never paused; time and events not told apart"),
    }
    let checks: [Check; 3] = [
        ("open file descriptors", |s| s.fds, 16.0),
        ("threads", |s| s.threads, 8.0),
        ("tokio tasks", |s| s.tasks, 64.0),
    ];
    for (name, value, allowance) in checks {
        let values: Vec<f64> = half.iter().map(value).collect();
        if values.iter().any(|v| v.is_nan()) {
            found.push(format!("{name} could not be sampled"));
            continue;
        }
        let per_second = slope(&times, &values);
        let over_run = per_second * seconds;
        println!(
            "  {name}: slope over the second half {per_second:+.4}/s, {over_run:+.1} over the run (allowed {allowance:.1})"
        );
        if over_run > allowance {
            found.push(format!(
                "{name} grows: {over_run:+.1} over the run, allowed {allowance:.1}"
            ));
        }
    }
    found
}

fn main() {
    let seconds = env("REGISTRY_SOAK_SECONDS", 1800);
    let every = env("REGISTRY_SOAK_SAMPLE", 10);
    let stores =
        std::env::var("REGISTRY_SOAK_STORES").unwrap_or_else(|_| "embedded,postgres".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let binary = registryd_binary();
    let mut failures = Vec::new();
    for name in stores.split(',') {
        let dir = tempfile::tempdir().unwrap();
        let metrics = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().to_string()
        };
        let common = [
            "--snapshot-every-events",
            "20000",
            "--metrics-listen",
            metrics.as_str(),
        ];
        let (daemon, _server) = match name {
            "embedded" => (Daemon::embedded(&binary, dir.path(), &common), None),
            "postgres" => {
                let Ok(server) = Single::start() else {
                    println!("postgres: no server of the bench's own; not run");
                    continue;
                };
                let url = server.url();
                let snapshots = dir.path().to_str().unwrap().to_owned();
                let mut args = vec!["--store", &url, "--snapshot-dir", &snapshots];
                args.extend(common);
                (Daemon::start(&binary, &args), Some(server))
            }
            other => panic!("REGISTRY_SOAK_STORES: unknown store {other}"),
        };
        println!("{name}: {seconds} s, a sample every {every} s");
        let (samples, errors, calls) = runtime.block_on(soak(&daemon, &metrics, seconds, every));
        let grown = growth(&samples, seconds as f64, every);
        println!(
            "{name}: {calls} calls, {} errors, {} growths",
            errors.len(),
            grown.len()
        );
        for e in errors.iter().chain(&grown) {
            println!("  {e}");
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(failures.is_empty(), "the soak failed: {failures:#?}");
}
