//! The load generator of the benchmark suite: drives a gRPC server at a fixed number of
//! connections and requests in flight per connection for a fixed time, and reports requests/s,
//! latency percentiles (HdrHistogram) and the server process's CPU use.
//!
//! It also loads a generated registry into an embedded store, for `registryd` to serve.

pub mod crash;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use registry_client::{request_id, v1, Client};
use registry_domain::Date;
use registry_eventstore::{
    EmbeddedConfig, EmbeddedStore, EventStore, ExpectedRevision, Metadata, NewEvent,
};
use registry_testkit::RecordedFact;

/// How hard to drive.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Client connections.
    pub connections: usize,
    /// Requests in flight on each connection.
    pub in_flight: usize,
    /// How long.
    pub duration: Duration,
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct Report {
    /// Requests answered without error.
    pub ok: u64,
    /// Requests answered with an error.
    pub errors: u64,
    /// Answered requests per second.
    pub per_second: f64,
    /// Latency percentiles in microseconds: p50, p99, p99.9.
    pub micros: [u64; 3],
    /// CPU seconds the server used per second of the run (1.0 = one core busy).
    pub server_cores: f64,
}

/// CPU time (user + system) a process has used, from `/proc/PID/stat`; 0 where unavailable.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    (ticks(11) + ticks(12)) / 100.0
}

/// Drives `call` on `clients` (one per connection) under `load`; `call(n, client)` sends the
/// `n`-th request. The processes `server_pids` are sampled for CPU use.
pub async fn drive<C, E, F, Fut>(clients: &[C], load: Load, server_pids: &[u32], call: F) -> Report
where
    C: Clone + Send + 'static,
    F: Fn(u64, C) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
{
    drive_mixed(clients, load, server_pids, 1, |_| 0, call)
        .await
        .0
}

/// Like [`drive`], for a load of `kinds` kinds of request: `kind_of(n)` is the kind of the
/// `n`-th. Returns the report of the whole load and one per kind (their `server_cores` are the
/// whole load's).
pub async fn drive_mixed<C, E, F, Fut>(
    clients: &[C],
    load: Load,
    server_pids: &[u32],
    kinds: usize,
    kind_of: fn(u64) -> usize,
    call: F,
) -> (Report, Vec<Report>)
where
    C: Clone + Send + 'static,
    F: Fn(u64, C) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
{
    /// Latencies, answers and errors of one kind of request.
    type Tally = (Histogram<u64>, u64, u64);
    let tally = || -> Tally {
        let histogram =
            Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|e| panic!("{e}"));
        (histogram, 0, 0)
    };
    let cpu = || server_pids.iter().map(|pid| cpu_seconds(*pid)).sum::<f64>();
    let started = Instant::now();
    let cpu_before = cpu();
    let deadline = started + load.duration;
    let mut tasks = Vec::new();
    for (c, client) in clients.iter().enumerate().take(load.connections) {
        for f in 0..load.in_flight {
            let (client, call) = (client.clone(), call.clone());
            let seed = (c * load.in_flight + f) as u64;
            tasks.push(tokio::spawn(async move {
                let mut tallies: Vec<Tally> = (0..kinds).map(|_| tally()).collect();
                let mut n = seed << 32;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let outcome = call(n, client.clone()).await;
                    let micros = sent.elapsed().as_micros() as u64;
                    let (histogram, ok, errors) = &mut tallies[kind_of(n)];
                    n += 1;
                    match outcome {
                        Ok(()) => {
                            *ok += 1;
                            let _ = histogram.record(micros.max(1));
                        }
                        Err(_) => *errors += 1,
                    }
                }
                tallies
            }));
        }
    }
    let mut all = tally();
    let mut by_kind: Vec<Tally> = (0..kinds).map(|_| tally()).collect();
    for task in tasks {
        if let Ok(tallies) = task.await {
            for (sum, (histogram, ok, errors)) in by_kind.iter_mut().zip(tallies) {
                for total in [&mut *sum, &mut all] {
                    let _ = total.0.add(&histogram);
                    total.1 += ok;
                    total.2 += errors;
                }
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let server_cores = (cpu() - cpu_before) / elapsed;
    let report = |(histogram, ok, errors): &Tally| Report {
        ok: *ok,
        errors: *errors,
        per_second: *ok as f64 / elapsed,
        micros: [
            histogram.value_at_quantile(0.5),
            histogram.value_at_quantile(0.99),
            histogram.value_at_quantile(0.999),
        ],
        server_cores,
    };
    (report(&all), by_kind.iter().map(report).collect())
}

/// Appends generated facts to a new embedded store at `path`, 1,000 events per append.
pub async fn load_store(
    path: &std::path::Path,
    facts: &[RecordedFact],
) -> Result<u64, registry_eventstore::StoreError> {
    let store = EmbeddedStore::open(EmbeddedConfig::new(path))?;
    let metadata = Metadata {
        actor: "registry-bench".into(),
        request_id: None,
        correlation_id: None,
        request_fingerprint: None,
    };
    for chunk in facts.chunks(1000) {
        let events = chunk
            .iter()
            .map(|fact| NewEvent {
                id: uuid::Uuid::now_v7(),
                event_type: fact.event.type_name().to_owned(),
                schema_version: fact.event.schema_version(),
                payload: fact.event.encode(),
                metadata: metadata.clone(),
            })
            .collect();
        store
            .append("registry", ExpectedRevision::Any, events)
            .await?;
    }
    Ok(facts.len() as u64)
}

/// Recorded answers, by gRPC request path: what the echo ceiling's `--answers` file holds.
pub type Answers = Vec<(String, Vec<Vec<u8>>)>;

/// Writes recorded answers (encoded protobuf messages) for the echo server's `--answers`: for
/// each path, its length and bytes, the number of answers, and each answer's length and bytes
/// (lengths as little-endian `u32`).
pub fn write_answers(path: &std::path::Path, answers: &Answers) -> std::io::Result<()> {
    let mut out = Vec::new();
    let mut put = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    for (method, bodies) in answers {
        put(method.as_bytes());
        put(&(bodies.len() as u32).to_le_bytes());
        for body in bodies {
            put(body);
        }
    }
    std::fs::write(path, out)
}

/// Reads what [`write_answers`] wrote.
pub fn read_answers(path: &std::path::Path) -> std::io::Result<Answers> {
    fn take<'a>(rest: &mut &'a [u8]) -> std::io::Result<&'a [u8]> {
        let damaged = || std::io::Error::new(std::io::ErrorKind::InvalidData, "damaged answers");
        let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(damaged)?;
        let (body, tail) = tail
            .split_at_checked(u32::from_le_bytes(*len) as usize)
            .ok_or_else(damaged)?;
        *rest = tail;
        Ok(body)
    }
    let bytes = std::fs::read(path)?;
    let mut rest = bytes.as_slice();
    let mut answers = Vec::new();
    while !rest.is_empty() {
        let method = String::from_utf8(take(&mut rest)?.to_vec())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let count = take(&mut rest)?;
        let count = u32::from_le_bytes(count.try_into().map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "damaged answer count")
        })?);
        let bodies = (0..count)
            .map(|_| take(&mut rest).map(<[u8]>::to_vec))
            .collect::<Result<_, _>>()?;
        answers.push((method, bodies));
    }
    Ok(answers)
}

/// Establishes an administrative area named `name` at `level` (from 1963-10-30, with a basis),
/// to hold a load's offices; its resource name.
///
/// # Panics
///
/// When registryd refuses it: the benchmark cannot go on.
pub async fn load_unit(client: &Client, name: &str, level: v1::Level) -> String {
    client
        .command()
        .establish_unit(v1::EstablishUnitRequest {
            request_id: request_id(),
            kind: v1::UnitKind::AdministrativeArea as i32,
            level: level as i32,
            display_name: name.to_owned(),
            valid_from: "1963-10-30".into(),
            basis: Some(v1::LegalBasis {
                number: "1/QĐ".into(),
                issued_on: "1963-10-30".into(),
                issuer: "Hội đồng Chính phủ".into(),
                effective_on: String::new(),
            }),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("establishing a load unit: {e}"))
        .into_inner()
        .result
        .unwrap_or_default()
        .name
}

/// An office (in `unit`) and a person of their own for each of `count` writing tasks (created
/// through registryd's command service), so that their writes never conflict.
///
/// # Panics
///
/// When registryd refuses them: the benchmark cannot go on.
pub async fn own_offices(
    client: &Client,
    unit: &str,
    count: usize,
    label: &str,
) -> Arc<Vec<(String, String)>> {
    let mut own = Vec::new();
    for task in 0..count {
        let command = client.command();
        let office = command
            .clone()
            .create_office(v1::CreateOfficeRequest {
                request_id: request_id(),
                unit: unit.to_owned(),
                title: format!("Chức vụ thử tải {label}{task}"),
                kind: v1::OfficeKind::Member as i32,
                capacity: Some(v1::Capacity {
                    kind: v1::CapacityKind::Sole as i32,
                    limit: 1,
                }),
                valid_from: "2000-01-01".into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("creating a load office: {e}"))
            .into_inner()
            .result
            .unwrap_or_default()
            .name;
        let person = command
            .clone()
            .register_person(v1::RegisterPersonRequest {
                request_id: request_id(),
                display_name: format!("Người Thử Tải {label}{task}"),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("registering a load person: {e}"))
            .into_inner()
            .result
            .unwrap_or_default()
            .name;
        own.push((office, person));
    }
    Arc::new(own)
}

/// The `n`-th write of the load generator: a past holding (appointment and end in one
/// command) of one day, in the office of the task that sends it, on a day of its own.
pub fn past_holding(own: &[(String, String)], n: u64) -> v1::StartHoldingRequest {
    let (task, k) = ((n >> 32) as usize, (n & 0xffff_ffff) as i64);
    let (office, person) = own[task].clone();
    let start = Date::from_ymd(2000, 1, 1)
        .unwrap_or_else(|e| panic!("{e}"))
        .add_days(k);
    v1::StartHoldingRequest {
        request_id: request_id(),
        person,
        office,
        valid_from: start.to_string(),
        valid_until: start.next_day().to_string(),
        end_reason: v1::EndReason::TermEnd as i32,
        beginning: v1::BeginningKind::Appointed as i32,
        ..Default::default()
    }
}
