//! The registry over gRPC against the gRPC ceiling, in one run on one machine.
//!
//! Generates a registry (`REGISTRY_BENCH_SIZE=province`, the default, or `national`), loads it
//! into an embedded store, starts `registryd` (release) on it and an echo server, then drives
//! each with the same load generator for `REGISTRY_BENCH_SECONDS` (default 10) per question:
//!
//! - echo: `grpc.health.v1.Health/Check` on a bare tonic server (the ceiling);
//! - Q1 holders of an office on a date; Q2 offices of a person on a date; Q3 coverage of the
//!   Vice-Secretary-and-Front-Chair model in a province on a date; Q4 the history of an office
//!   with provenance (audit service);
//! - W1 durable writes: 32 clients each recording past holdings (appointment and end in one
//!   command) one after another in an office of their own;
//! - M1 a mix on the questions' connections: of every ten requests four Q1, four Q2, one Q4
//!   and one W1 write (PostgreSQL: the reads on its pooled connections, each task's writes on
//!   a connection of its own).
//!
//! Then PostgreSQL (`REGISTRY_PG_URL`, default the machine's server) loads the same registry
//! and its events with binary COPY, indexes after (the `pg` module), checks it gives
//! registryd's answers (Q3 in every province on ten days, Q4 for 256 offices) and answers
//! Q1-Q4 with prepared statements, and W1 as 32 connections inserting past holdings (durable
//! commits); each line is printed with its ratio to registryd's. Q1 and Q2 ask about a holding
//! of the registry on a day it covers, so that answers are rarely empty (the share of empty
//! answers is printed for both); every line gives the server's CPU per request.
//! Last, `registryd` serves the same store again over mutual TLS (the test certificates of
//! `tests/tls/`) and Q2 is driven through clients holding a certificate:
//! its rate and server CPU per request against the plaintext Q2 of the same run.
//!
//! `cargo bench -p registry-bench --bench grpc`. Prints requests/s, latency percentiles, the
//! server's CPU use, and each read's throughput as a fraction of the echo ceiling.
//! `access` serves the same store four times more, with and without an access policy on the
//! same transport (mutual TLS; bearer tokens over TLS), and drives Q2 and W1 through each: what
//! deciding who may do what costs.
//!
//! `log` serves the same store with the verifiable log and without it (`--no-log`), in turns,
//! and drives W1 through each: what the log costs durable writes; then, in this process on the
//! same file, inclusion proofs as the audit service makes them, and `regctl verify`'s check of
//! the whole store.
//!
//! `REGISTRY_BENCH_ONLY=q1,w1` runs only the parts named (of rebuild, health, q1, q2, q3, q4, gzip, batch, tls,
//! access, log, w1, mix, postgres, restart, pgrestart, features, w1snap); the echo ceiling always runs. `restart` stops `registryd` (it
//! saves its snapshots), starts it again and reports the time to SERVING and `RssAnon`, then kills
//! it with SIGKILL and does the same; `pgrestart` does the same to a PostgreSQL server of the bench's
//! own holding the same registry (`pg_ctl stop -m fast`, then `-m immediate`), timing each start
//! to its first Q1 answer. `w1snap` runs W1 again against a `registryd` saving its
//! read models every `REGISTRY_BENCH_SNAPSHOT_EVERY` (50,000) events. `REGISTRY_BENCH_STORE=DIR` keeps the store in `DIR`
//! and, when `DIR` already holds one from an earlier run of the same size, uses it as it is
//! instead of writing the generated registry again (for profiling; W1 adds its writes to it).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use registry_bench::{drive, drive_mixed, load_store, own_offices, past_holding, Load, Report};
use registry_client::{v1, Client};
use registry_domain::Date;
use registry_testkit::daemon::{registryd_binary, Daemon};
use registry_testkit::{generate, Catalogue, Config};

/// The load generator's process holds the generated registry (gigabytes at national scale); on
/// glibc's malloc that heap slowed the client's own allocations. registryd uses mimalloc too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod pg;

/// What every read question is driven against: registryd's connections, the load, its process
/// (for its CPU use), the echo ceiling to compare with, the echo server answering registryd's
/// recorded answers, and the questions asked.
struct Registryd<'a> {
    clients: &'a [Client],
    load: Load,
    pid: u32,
    ceiling: f64,
    replay: &'a [Client],
    replay_pid: u32,
    only: &'a str,
}

impl Registryd<'_> {
    /// Drives one question when asked for, and prints its row against the echo ceiling.
    async fn question<F, Fut, E>(&self, key: &str, name: &str, call: F) -> Option<Report>
    where
        F: Fn(u64, Client) -> Fut + Send + Sync + Clone + 'static,
        Fut: std::future::Future<Output = Result<(), E>> + Send,
    {
        if !wanted(self.only, key) {
            return None;
        }
        let report = drive(self.clients, self.load, &[self.pid], call).await;
        row(name, &report, Some(self.ceiling));
        Some(report)
    }

    /// Like [`Self::question`], then drives the same calls against the echo server answering
    /// registryd's recorded answers from memory: the ceiling for answers of this size.
    async fn replayed<F, Fut, E>(&self, key: &str, name: &str, call: F) -> Option<Report>
    where
        F: Fn(u64, Client) -> Fut + Send + Sync + Clone + 'static,
        Fut: std::future::Future<Output = Result<(), E>> + Send,
    {
        let ours = self.question(key, name, call.clone()).await?;
        let replay = drive(self.replay, self.load, &[self.replay_pid], call).await;
        row(
            "  same answers, echo from memory",
            &replay,
            Some(self.ceiling),
        );
        println!(
            "  registryd {key} / its answers from memory: {:.2}",
            ours.per_second / replay.per_second
        );
        Some(ours)
    }
}

/// Whether `REGISTRY_BENCH_ONLY` (`only`) asks for `key` (everything when unset).
fn wanted(only: &str, key: &str) -> bool {
    only.is_empty() || only.split(',').any(|q| q.trim() == key)
}

/// A day between 2000 and 2024 for the `n`-th request.
fn day(n: u64) -> String {
    Date::from_ymd(2000, 1, 1)
        .unwrap()
        .add_days((n % 9_000) as i64)
        .to_string()
}

/// Q1's `n`-th request: the holders of an office on a day.
fn q1_asked(
    draws: &Arc<Draws>,
) -> impl Fn(u64) -> v1::GetOfficeHoldersRequest + Clone + Send + Sync + 'static {
    let draws = draws.clone();
    move |n| {
        let (office, date) = draws.q1(n);
        v1::GetOfficeHoldersRequest {
            office: format!("offices/{office}"),
            date,
            ..Default::default()
        }
    }
}

/// Q2's `n`-th request: the offices of a person on a day.
fn q2_asked(
    draws: &Arc<Draws>,
) -> impl Fn(u64) -> v1::ListPersonOfficesRequest + Clone + Send + Sync + 'static {
    let draws = draws.clone();
    move |n| {
        let (person, date) = draws.q2(n);
        v1::ListPersonOfficesRequest {
            person: format!("persons/{person}"),
            date,
            ..Default::default()
        }
    }
}

/// Q4's `n`-th request: the whole history of an office, with provenance.
fn q4_asked(
    c: &Arc<Catalogue>,
) -> impl Fn(u64) -> v1::ListResourceHistoryRequest + Clone + Send + Sync + 'static {
    let c = c.clone();
    move |n| v1::ListResourceHistoryRequest {
        name: c.offices[(n as usize * 7919) % c.offices.len()].to_string(),
        ..Default::default()
    }
}

/// How many answers of each question are recorded for the echo server to replay.
const RECORDED: u64 = 1024;

/// The `i`-th request number of a sample spread like the load generator's: each of its tasks
/// numbers its requests from `task << 32`.
fn sample(i: u64) -> u64 {
    ((i % 64) << 32) | (i / 64)
}

/// Records `RECORDED` answers of one question from registryd, encoded, for the echo server.
async fn record<F, Fut>(path: &str, mut ask: F) -> (String, Vec<Vec<u8>>)
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = Vec<u8>>,
{
    let mut bodies = Vec::new();
    for i in 0..RECORDED {
        bodies.push(ask(sample(i)).await);
    }
    let mean = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len();
    println!("recorded {RECORDED} answers of {path}: {mean} bytes on average");
    (path.to_owned(), bodies)
}

/// An answer as the echo server replays it: the encoded message.
fn encoded<M: Message>(answer: Result<tonic::Response<M>, tonic::Status>) -> Vec<u8> {
    answer.unwrap().into_inner().encode_to_vec()
}

/// The call the echo ceiling answers (and registryd's own health row): a health check.
async fn health_check(_: u64, client: Client) -> Result<(), tonic::Status> {
    client
        .health()
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|_| ())
}

/// registryd's throughput over PostgreSQL's on one question, when both ran.
fn ratio(question: &str, ours: Option<&Report>, theirs: &Report) {
    if let Some(ours) = ours {
        println!(
            "  registryd {question} / postgres {question}: {:.2}",
            ours.per_second / theirs.per_second
        );
    }
}

fn row(name: &str, report: &Report, ceiling: Option<f64>) {
    let ratio = ceiling.map_or(String::new(), |c| {
        format!("{:.2} x echo", report.per_second / c)
    });
    // Server CPU per answered request: the figure that does not depend on how the load
    // generator shares the cores.
    let cpu = if report.server_cores > 0.0 {
        format!(
            "server {:.2} cores, {:.1} us/req",
            report.server_cores,
            report.server_cores * 1e6 / report.per_second.max(1e-9)
        )
    } else {
        String::new()
    };
    println!(
        "{name:<34} {:>9.0} req/s  p50 {:>6} us  p99 {:>6} us  p99.9 {:>6} us  {cpu}  errors {}  {ratio}",
        report.per_second, report.micros[0], report.micros[1], report.micros[2], report.errors
    );
}

async fn connect(address: &str, n: usize) -> Vec<Client> {
    let mut clients = Vec::new();
    for _ in 0..n {
        clients.push(
            Client::connect(address)
                .await
                .unwrap()
                .with_actor("bench")
                .unwrap(),
        );
    }
    clients
}

fn pid_of(daemon: &Daemon) -> u32 {
    daemon.pid()
}

/// W1: 32 writers, each with an office and a person of its own, recording one past holding
/// after another (appointment and end in one durable command).
async fn w1(clients: &[Client], catalogue: &Catalogue, load: Load, pid: u32) -> Report {
    let writers = Load {
        connections: 4,
        in_flight: 8,
        duration: load.duration,
    };
    let own = own_offices(
        &clients[0],
        &catalogue.provinces[0].to_string(),
        writers.connections * writers.in_flight,
        "",
    )
    .await;
    drive(clients, writers, &[pid], move |n, client| {
        let request = past_holding(&own, n);
        async move { client.command().start_holding(request).await.map(|_| ()) }
    })
    .await
}

/// One request of the mixed load, by what it asks.
enum Mixed {
    Holders(v1::GetOfficeHoldersRequest),
    Offices(v1::ListPersonOfficesRequest),
    History(v1::ListResourceHistoryRequest),
    Write(Box<v1::StartHoldingRequest>),
}

/// The kind of the mixed load's `n`-th request: of every ten, four Q1 (0), four Q2 (1), one
/// Q4 (2) and one W1 write (3).
fn mixed_kind(n: u64) -> usize {
    match n % 10 {
        0..=3 => 0,
        4..=7 => 1,
        8 => 2,
        _ => 3,
    }
}

/// Prints a mixed load's row and one per kind.
fn mixed_rows(system: &str, all: &Report, kinds: &[Report], ceiling: f64) {
    row(
        &format!("{system}: 40% Q1, 40% Q2, 10% Q4, 10% W1"),
        all,
        Some(ceiling),
    );
    for (name, report) in ["Q1", "Q2", "Q4", "W1 (durable)"].iter().zip(kinds) {
        // The server's CPU is the whole load's: not one kind's.
        let kind = Report {
            server_cores: 0.0,
            ..report.clone()
        };
        row(&format!("  of which {name}"), &kind, None);
    }
}

/// PostgreSQL's `n`-th write (W1, M1): a past holding of one day in the task's own office, one
/// durable transaction (autocommit).
async fn pg_past_holding(
    writer: &(tokio_postgres::Client, tokio_postgres::Statement),
    (office, person): (uuid::Uuid, uuid::Uuid),
    n: u64,
) -> Result<(), tokio_postgres::Error> {
    let start = Date::from_ymd(2000, 1, 1)
        .unwrap()
        .add_days((n & 0xffff_ffff) as i64);
    writer
        .0
        .execute(
            &writer.1,
            &[
                &uuid::Uuid::now_v7(),
                &person,
                &office,
                &start.to_string(),
                &start.next_day().to_string(),
                &"Người Thử Tải",
                &"Chức vụ thử tải",
            ],
        )
        .await
        .map(|_| ())
}

/// The mixed load on registryd: of every ten requests, four Q1, four Q2, one Q4 and one W1
/// write, on the same connections and requests in flight as the questions alone. Returns the
/// whole load's report and one per kind, in that order.
async fn mix(
    clients: &[Client],
    catalogue: &Arc<Catalogue>,
    draws: &Arc<Draws>,
    load: Load,
    pid: u32,
) -> (Report, Vec<Report>) {
    let tasks = load.connections * load.in_flight;
    let own = own_offices(
        &clients[0],
        &catalogue.provinces[0].to_string(),
        tasks,
        "hỗn hợp ",
    )
    .await;
    let (q1, q2, q4) = (q1_asked(draws), q2_asked(draws), q4_asked(catalogue));
    drive_mixed(clients, load, &[pid], 4, mixed_kind, move |n, client| {
        let asked = match mixed_kind(n) {
            0 => Mixed::Holders(q1(n)),
            1 => Mixed::Offices(q2(n)),
            2 => Mixed::History(q4(n)),
            _ => Mixed::Write(Box::new(past_holding(&own, n))),
        };
        async move {
            match asked {
                Mixed::Holders(r) => client.query().get_office_holders(r).await.map(|_| ()),
                Mixed::Offices(r) => client.query().list_person_offices(r).await.map(|_| ()),
                Mixed::History(r) => client.audit().list_resource_history(r).await.map(|_| ()),
                Mixed::Write(r) => client.command().start_holding(*r).await.map(|_| ()),
            }
        }
    })
    .await
}

fn main() {
    let size = std::env::var("REGISTRY_BENCH_SIZE").unwrap_or_else(|_| "province".into());
    let seconds: u64 = std::env::var("REGISTRY_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let config = if size == "national" {
        Config::national(1)
    } else {
        Config::province(1)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let only = std::env::var("REGISTRY_BENCH_ONLY").unwrap_or_default();
    runtime.block_on(async {
        let started = Instant::now();
        let generated = generate(&config);
        let temporary = tempfile::tempdir().unwrap();
        let dir = std::env::var_os("REGISTRY_BENCH_STORE")
            .map_or_else(|| temporary.path().to_owned(), std::path::PathBuf::from);
        let events = generated.facts.len();
        if dir.join("registry.db").exists() {
            println!("{size}: {events} events generated; the store in {dir:?} is used as it is");
        } else {
            load_store(&dir.join("registry.db"), &generated.facts)
                .await
                .unwrap();
            println!(
                "{size}: {events} events generated and stored in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }

        let binary = registryd_binary();
        // The first start folds the whole feed (snapshots of an earlier run are set aside), and
        // saves no snapshot while the figures are measured: only when it stops.
        let _ = std::fs::remove_dir_all(dir.join("snapshots"));
        let started = Instant::now();
        // A national rebuild takes longer than the default call timeout (60 s) allows.
        let mut args = vec!["--data-dir", dir.to_str().unwrap()];
        args.extend_from_slice(DAEMON_ARGS);
        // Warnings, and the line saying how the store commits.
        let registryd =
            Daemon::start_logging(&binary, &args, "warn,registry_service_core::config=info");
        let admin = Client::connect(&registryd.address).await.unwrap();
        caught_up(&admin).await;
        let start_seconds = started.elapsed().as_secs_f64();
        println!(
            "registryd started and folded {events} events in {start_seconds:.1} s; RssAnon {} \
             (MIMALLOC_PURGE_DECOMMITS={}, .cargo/config.toml unless set before)",
            rss_anon_mib(registryd.pid()),
            std::env::var("MIMALLOC_PURGE_DECOMMITS").unwrap_or_else(|_| "unset".into())
        );
        // What makes registryd's commits durable, as its store read it from SQLite.
        for line in registryd.logged("embedded store opened") {
            println!("registryd: {}", line.trim());
        }
        let rebuilt = if wanted(&only, "rebuild") {
            // The replica folds the whole feed again into fresh read models and swaps them in.
            let peak = RssAnonPeak::watch(registryd.pid());
            let answer = admin
                .admin()
                .rebuild_projections(v1::RebuildProjectionsRequest {})
                .await
                .unwrap()
                .into_inner();
            let seconds = answer.millis as f64 / 1000.0;
            println!(
                "registryd rebuilt its read models from the store ({} events) in {seconds:.1} s; \
                 RssAnon peak {} MiB, after {}",
                answer.events,
                peak.peak_mib(),
                rss_anon_mib(registryd.pid())
            );
            Some(seconds)
        } else {
            None
        };
        let catalogue = Arc::new(generated.catalogue.clone());
        let draws = Arc::new(Draws::of(&generated.registry));
        let (q1, q2, q4) = (q1_asked(&draws), q2_asked(&draws), q4_asked(&catalogue));

        // registryd's answers to a sample of Q1, Q2 and Q4, for the echo server to replay.
        let mut answers = Vec::new();
        if wanted(&only, "q1") {
            let path = "/registry.v1.QueryService/GetOfficeHolders";
            let recorded = record(path, |n| {
                let (client, request) = (admin.clone(), q1(n));
                async move { encoded(client.query().get_office_holders(request).await) }
            });
            let recorded = recorded.await;
            let empty = recorded.1.iter().filter(|body| {
                v1::GetOfficeHoldersResponse::decode(&body[..]).is_ok_and(|a| a.holdings.is_empty())
            });
            println!(
                "  registryd Q1 empty answers: {:.1}%",
                percent(empty.count() as u64, RECORDED)
            );
            answers.push(recorded);
        }
        if wanted(&only, "q2") {
            let path = "/registry.v1.QueryService/ListPersonOffices";
            let recorded = record(path, |n| {
                let (client, request) = (admin.clone(), q2(n));
                async move { encoded(client.query().list_person_offices(request).await) }
            });
            let recorded = recorded.await;
            let empty = recorded.1.iter().filter(|body| {
                v1::ListPersonOfficesResponse::decode(&body[..])
                    .is_ok_and(|a| a.holdings.is_empty())
            });
            println!(
                "  registryd Q2 empty answers: {:.1}%",
                percent(empty.count() as u64, RECORDED)
            );
            answers.push(recorded);
        }
        if wanted(&only, "q4") {
            let path = "/registry.v1.AuditService/ListResourceHistory";
            let recorded = record(path, |n| {
                let (client, request) = (admin.clone(), q4(n));
                async move { encoded(client.audit().list_resource_history(request).await) }
            });
            answers.push(recorded.await);
        }
        let answers_file = temporary.path().join("answers.bin");
        registry_bench::write_answers(&answers_file, &answers).unwrap();
        let echo = Daemon::start(
            std::path::Path::new(env!("CARGO_BIN_EXE_echo-server")),
            &["--answers", answers_file.to_str().unwrap()],
        );

        let load = Load {
            connections: 4,
            in_flight: 16,
            duration: Duration::from_secs(seconds),
        };
        println!(
            "load: {} connections x {} in flight, {seconds} s per question",
            load.connections, load.in_flight
        );
        let echo_clients = connect(&echo.address, load.connections).await;
        let ceiling = drive(&echo_clients, load, &[pid_of(&echo)], health_check).await;
        row("echo (gRPC ceiling)", &ceiling, None);

        let clients = connect(&registryd.address, load.connections).await;
        let pid = pid_of(&registryd);
        let registryd_questions = Registryd {
            clients: &clients,
            load,
            pid,
            ceiling: ceiling.per_second,
            replay: &echo_clients,
            replay_pid: pid_of(&echo),
            only: &only,
        };

        // The same health check as the echo row, answered by registryd: its own gRPC stack
        // (call timeout, concurrency limit, its other services' routes) without any query.
        registryd_questions
            .question("health", "registryd health check", health_check)
            .await;

        let r1 = q1.clone();
        let q1_report = registryd_questions
            .replayed("q1", "Q1 holders of an office", move |n, client| {
                let request = r1(n);
                async move { client.query().get_office_holders(request).await.map(|_| ()) }
            })
            .await;

        // Q2 as a call: here in plaintext, and at the end over mutual TLS.
        let ask_q2 = {
            let r2 = q2.clone();
            move |n, client: Client| {
                let request = r2(n);
                async move {
                    client
                        .query()
                        .list_person_offices(request)
                        .await
                        .map(|_| ())
                }
            }
        };
        let q2_report = registryd_questions
            .replayed("q2", "Q2 offices of a person", ask_q2.clone())
            .await;

        let c = catalogue.clone();
        let q3_report = registryd_questions
            .question("q3", "Q3 coverage in a province", move |n, client| {
                let model = c
                    .vice_front_model
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                let province = c.provinces[n as usize % c.provinces.len()].to_string();
                async move {
                    let request = v1::GetModelCoverageRequest {
                        model,
                        jurisdiction: province,
                        level: v1::Level::Commune as i32,
                        date: day(n),
                        ..Default::default()
                    };
                    client.query().get_model_coverage(request).await.map(|_| ())
                }
            })
            .await;

        let r4 = q4.clone();
        let q4_report = registryd_questions
            .replayed(
                "q4",
                "Q4 office history with provenance",
                move |n, client| {
                    let request = r4(n);
                    async move {
                        client
                            .audit()
                            .list_resource_history(request)
                            .await
                            .map(|_| ())
                    }
                },
            )
            .await;
        if wanted(&only, "gzip") {
            // Q4 again, through clients that accept gzip: what compression costs the server
            // and saves on the wire, for answers of this size.
            let gzip_clients: Vec<Client> = clients
                .iter()
                .map(|c| c.clone().with_compression())
                .collect();
            let r4 = q4.clone();
            let report = drive(&gzip_clients, load, &[pid], move |n, client| {
                let request = r4(n);
                async move {
                    client
                        .audit()
                        .list_resource_history(request)
                        .await
                        .map(|_| ())
                }
            })
            .await;
            row(
                "Q4 answered gzip-compressed",
                &report,
                Some(ceiling.per_second),
            );
            if let Some(plain) = &q4_report {
                println!(
                    "  Q4 gzip / plain: {:.2} (server CPU per request {:.2} x)",
                    report.per_second / plain.per_second,
                    (report.server_cores / report.per_second)
                        / (plain.server_cores / plain.per_second)
                );
            }
            if let Some((_, bodies)) = answers
                .iter()
                .find(|(path, _)| path.ends_with("ListResourceHistory"))
            {
                let (plain, packed) = bodies.iter().fold((0, 0), |(plain, packed), body| {
                    (plain + body.len(), packed + gzipped(body))
                });
                println!(
                    "  Q4 answers: {} bytes plain, {} gzip-compressed on average ({:.1} x smaller)",
                    plain / bodies.len(),
                    packed / bodies.len(),
                    plain as f64 / packed.max(1) as f64
                );
            }
        }
        // Batches of 100 Q1 and of 100 Q2 questions a call.
        let batches = if wanted(&only, "batch") {
            let (r1, r2) = (q1.clone(), q2.clone());
            let b1 = drive(&clients, load, &[pid], move |n, client| {
                let requests = (0..BATCH).map(|k| r1(n * BATCH + k)).collect();
                async move {
                    let request = v1::BatchGetOfficeHoldersRequest { requests };
                    client.query().batch_get_office_holders(request).await.map(|_| ())
                }
            })
            .await;
            row("Q1 in batches of 100 (calls)", &b1, None);
            let b2 = drive(&clients, load, &[pid], move |n, client| {
                let requests = (0..BATCH).map(|k| r2(n * BATCH + k)).collect();
                async move {
                    let request = v1::BatchListPersonOfficesRequest { requests };
                    client.query().batch_list_person_offices(request).await.map(|_| ())
                }
            })
            .await;
            row("Q2 in batches of 100 (calls)", &b2, None);
            for (name, batch, single) in [("Q1", &b1, &q1_report), ("Q2", &b2, &q2_report)] {
                let answered = batch.per_second * BATCH as f64;
                match single {
                    Some(single) => println!(
                        "  {name} questions answered in batches: {answered:.0}/s, {:.1} x one question a call",
                        answered / single.per_second
                    ),
                    None => println!("  {name} questions answered in batches: {answered:.0}/s"),
                }
            }
            Some((b1, b2))
        } else {
            None
        };
        let w1 = if wanted(&only, "w1") {
            Some(w1(&clients, &catalogue, load, pid).await)
        } else {
            None
        };
        if let Some(w1) = &w1 {
            row("W1 durable writes, 32 clients", w1, None);
        }
        let mixed = if wanted(&only, "mix") {
            let (mixed, kinds) = mix(&clients, &catalogue, &draws, load, pid).await;
            mixed_rows("M1 mix", &mixed, &kinds, ceiling.per_second);
            Some(mixed)
        } else {
            None
        };

        let clients_of_registryd = clients.clone();
        // The same questions to PostgreSQL holding the same registry, given its best.
        let url = std::env::var("REGISTRY_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        if wanted(&only, "postgres") {
            let loaded = pg::Comparison::load(
                &url,
                &generated.registry,
                &generated.facts,
                load.connections,
            )
            .await;
            match loaded {
                Err(e) => println!("PostgreSQL at {url} not measured: {e}"),
                Ok(pg) => {
                    let ours = Ours {
                        client: &clients_of_registryd[0],
                        q1: q1_report.as_ref(),
                        q2: q2_report.as_ref(),
                        q3: q3_report.as_ref(),
                        q4: q4_report.as_ref(),
                        w1: w1.as_ref(),
                        mix: mixed.as_ref(),
                        batches: batches.as_ref(),
                        rebuilt,
                        started: start_seconds,
                    };
                    against_postgres(&pg, &ours, &catalogue, &draws, load, ceiling.per_second)
                        .await;
                    pg.drop_schema().await;
                }
            }
        } else {
            println!("PostgreSQL left out by REGISTRY_BENCH_ONLY");
        }
        let registryd = if wanted(&only, "restart") {
            drop(admin);
            let stopping = Instant::now();
            let code = registryd.stop_within(Duration::from_secs(900));
            println!(
                "registryd stopped (exit {code:?}) and saved its snapshots in {:.1} s: {:?}",
                stopping.elapsed().as_secs_f64(),
                snapshot_files(&dir)
            );
            let registryd = restart(&binary, &dir, "a graceful stop").await;
            registryd.kill();
            restart(&binary, &dir, "kill -9").await
        } else {
            registryd
        };
        if wanted(&only, "pgrestart") {
            // Like for like with `restart`: PostgreSQL holding the same registry, on a server
            // of the bench's own, restarted after a planned stop and after a crash.
            let (office, day) = draws.q1(0);
            match pg::restarts(&generated.registry, &generated.facts, office, &day).await {
                Err(e) => println!("PostgreSQL's restarts not measured: {e}"),
                Ok(pg) => println!(
                    "PostgreSQL of its own: loaded in {:.1} s (COPY {:.1} s, keys and indexes \
                     {:.1} s, ANALYZE {:.1} s); stop -m fast {:.1} s; start to the first Q1 \
                     answered {:.1} s after it, {:.1} s after stop -m immediate (crash recovery)",
                    pg.load.copy + pg.load.index + pg.load.analyze,
                    pg.load.copy,
                    pg.load.index,
                    pg.load.analyze,
                    pg.stop,
                    pg.after_stop,
                    pg.after_crash
                ),
            }
        }
        let registryd = if wanted(&only, "w1snap") {
            // W1 again, against a registryd that saves its read models every `every` events
            // meanwhile (encoded under their read lock on both cores): what a periodic snapshot
            // costs writes. The writer's own state is saved only when it is quiet, never here.
            let every =
                std::env::var("REGISTRY_BENCH_SNAPSHOT_EVERY").unwrap_or_else(|_| "50000".into());
            registryd.stop_within(Duration::from_secs(900));
            let args = [
                "--timeout-seconds",
                "600",
                "--snapshot-every-events",
                &every,
            ];
            let registryd = Daemon::embedded(&binary, &dir, &args);
            let clients = connect(&registryd.address, load.connections).await;
            caught_up(&clients[0]).await;
            let report = self::w1(&clients, &catalogue, load, pid_of(&registryd)).await;
            row(
                &format!("W1 with snapshots every {every} events"),
                &report,
                None,
            );
            println!(
                "read models' snapshots saved during it: {}",
                registryd.logged("saved a snapshot").len()
            );
            registryd
        } else {
            registryd
        };
        let admin = Client::connect(&registryd.address).await.unwrap();
        drop((clients_of_registryd, clients, admin, registryd));
        if wanted(&only, "tls") {
            // The same store served again, over mutual TLS: what encryption and client
            // certificates cost a question, against the plaintext rows of this run.
            over_tls(&binary, &dir, ask_q2.clone(), load, q2_report.as_ref()).await;
        }
        if wanted(&only, "access") {
            let plaintext = (q2_report.as_ref(), w1.as_ref());
            access::costs(&binary, &dir, &catalogue, ask_q2, load, plaintext).await;
        }
        if wanted(&only, "log") {
            ledger::costs(&binary, &dir, &catalogue, load).await;
        }
        if wanted(&only, "features") {
            // The lines again on a deployment's configuration, against this run's plain ones.
            let (registryd, clients, _files) =
                access::featured(&binary, &dir, &catalogue, load.connections).await;
            let pid = registryd.pid();
            let (r1, r2, r4) = (q1.clone(), q2.clone(), q4.clone());
            let f1 = drive(&clients, load, &[pid], move |n, client| {
                let request = r1(n);
                async move { client.query().get_office_holders(request).await.map(|_| ()) }
            })
            .await;
            let f2 = drive(&clients, load, &[pid], move |n, client| {
                let request = r2(n);
                async move { client.query().list_person_offices(request).await.map(|_| ()) }
            })
            .await;
            let f4 = drive(&clients, load, &[pid], move |n, client| {
                let request = r4(n);
                async move { client.audit().list_resource_history(request).await.map(|_| ()) }
            })
            .await;
            let fw = self::w1(&clients, &catalogue, load, pid).await;
            let (fm, kinds) = mix(&clients, &catalogue, &draws, load, pid).await;
            let plain = [
                ("Q1", &f1, q1_report.as_ref()),
                ("Q2", &f2, q2_report.as_ref()),
                ("Q4", &f4, q4_report.as_ref()),
                ("W1", &fw, w1.as_ref()),
                ("M1", &fm, mixed.as_ref()),
            ];
            for (name, featured, plain) in plain {
                row(
                    &format!("{name}, mutual TLS + policy + access log + metrics"),
                    featured,
                    None,
                );
                if let Some(plain) = plain {
                    println!(
                        "  {name} with every feature / plain: {:.2} (server CPU per request {:.2} x)",
                        featured.per_second / plain.per_second,
                        (featured.server_cores / featured.per_second)
                            / (plain.server_cores / plain.per_second)
                    );
                }
            }
            mixed_rows("M1 with every feature", &fm, &kinds, ceiling.per_second);
        }
        drop(echo);
    });
}

/// The flags of every `registryd` the bench starts.
const DAEMON_ARGS: &[&str] = &["--timeout-seconds", "600", "--snapshot-every-events", "0"];

/// The snapshot files in the store's directory, with their sizes in MiB.
fn snapshot_files(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir.join("snapshots"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    let size = e.metadata().map_or(0, |m| m.len()) >> 20;
                    (e.file_name().to_string_lossy().into_owned(), size)
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// A process's anonymous resident memory in MiB (`RssAnon`, `/proc/PID/status`: its heap,
/// without the store's mapped file), and the part of it freed lazily (`LazyFree`,
/// `/proc/PID/smaps_rollup`: pages the allocator gave back with `MADV_FREE`, which the kernel
/// takes back when it needs them but counts until then).
fn rss_anon_mib(pid: u32) -> String {
    let anon = proc_field_mib(pid, "status", "RssAnon:");
    let lazy = proc_field_mib(pid, "smaps_rollup", "LazyFree:");
    format!("{anon} MiB ({lazy} MiB of it LazyFree)")
}

/// A field of a `/proc/PID` file given in kB, in MiB (0 if absent).
fn proc_field_mib(pid: u32, file: &str, name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name).map(str::to_owned))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb >> 10)
}

/// The highest `RssAnon` of a process, sampled every 50 ms until dropped (the kernel keeps the
/// peak of the whole resident size only, which counts the store's mapped file too).
struct RssAnonPeak {
    done: Arc<std::sync::atomic::AtomicBool>,
    sampler: Option<std::thread::JoinHandle<u64>>,
}

impl RssAnonPeak {
    fn watch(pid: u32) -> Self {
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = Arc::clone(&done);
        let sampler = std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(proc_field_mib(pid, "status", "RssAnon:"));
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        });
        Self {
            done,
            sampler: Some(sampler),
        }
    }

    fn peak_mib(mut self) -> u64 {
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
        self.sampler
            .take()
            .map_or(0, |s| s.join().unwrap_or_default())
    }
}

/// Starts `registryd` again on the store in `dir` (after `after`), and reports how long it took
/// to listen, to say SERVING for every service and to reach the store's head, its memory, and
/// the snapshots it loaded.
async fn restart(binary: &std::path::Path, dir: &std::path::Path, after: &str) -> Daemon {
    let started = Instant::now();
    let registryd = Daemon::embedded(binary, dir, DAEMON_ARGS);
    let listening = started.elapsed();
    let client = Client::connect(&registryd.address).await.unwrap();
    for service in [
        "registry.v1.CommandService",
        "registry.v1.QueryService",
        "registry.v1.AuditService",
        "registry.v1.AdminService",
    ] {
        loop {
            let status = client
                .health()
                .check(tonic_health::pb::HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .map(|r| r.into_inner().status);
            if status.ok()
                == Some(tonic_health::pb::health_check_response::ServingStatus::Serving as i32)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let serving = started.elapsed();
    caught_up(&client).await;
    println!(
        "restart after {after}: listening in {:.1} s, SERVING in {:.1} s, caught up in {:.1} s; \
         RssAnon {}; {:?}",
        listening.as_secs_f64(),
        serving.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        rss_anon_mib(registryd.pid()),
        registryd.logged("loaded a snapshot")
    );
    registryd
}

/// Waits until the read models of the server `client` talks to have folded the whole store.
async fn caught_up(client: &Client) {
    loop {
        let stats = client
            .admin()
            .get_store_stats(v1::GetStoreStatsRequest {})
            .await
            .unwrap()
            .into_inner();
        if !stats.head_position.is_empty() && stats.projection_position == stats.head_position {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts `registryd` on the store in `dir` over mutual TLS (the test certificates), waits
/// until its read models reach the head, and drives Q2 through clients holding a certificate.
async fn over_tls<F, Fut, E>(
    binary: &std::path::Path,
    dir: &std::path::Path,
    ask_q2: F,
    load: Load,
    plaintext: Option<&Report>,
) where
    F: Fn(u64, Client) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<(), E>> + Send,
{
    let fixture = |name: &str| {
        let path = format!("{}/../../tests/tls/{name}", env!("CARGO_MANIFEST_DIR"));
        (std::fs::read(&path).unwrap(), path)
    };
    let ((ca, ca_path), (_, cert), (_, key)) = (
        fixture("ca.pem"),
        fixture("server.pem"),
        fixture("server.key"),
    );
    let ((client_cert, _), (client_key, _)) = (fixture("client.pem"), fixture("client.key"));
    let started = Instant::now();
    let registryd = Daemon::embedded(
        binary,
        dir,
        &[
            "--timeout-seconds",
            "600",
            "--snapshot-every-events",
            "0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            &ca_path,
        ],
    );
    let https = registryd.address.replace("http://", "https://");
    let tls = registry_client::Tls {
        ca: Some(ca),
        identity: Some((client_cert, client_key)),
    };
    let mut clients = Vec::new();
    for _ in 0..load.connections {
        clients.push(Client::connect_with(&https, &tls).await.unwrap());
    }
    caught_up(&clients[0]).await;
    println!(
        "registryd over mutual TLS started in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let report = drive(&clients, load, &[pid_of(&registryd)], ask_q2).await;
    row("Q2 over mutual TLS", &report, None);
    if let Some(plaintext) = plaintext {
        println!(
            "  Q2 over mutual TLS / in plaintext: {:.2} (server CPU per request {:.2} x)",
            report.per_second / plaintext.per_second,
            (report.server_cores / report.per_second)
                / (plaintext.server_cores / plaintext.per_second)
        );
    }
}

mod ledger {
    //! W1 with the verifiable log and without it on the same store, in alternating rounds;
    //! proofs served and the store verified, in process.

    use std::path::Path;
    use std::time::{Duration, Instant};

    use registry_bench::{Load, Report};
    use registry_eventstore::verify::{verify_embedded, VerifyOptions};
    use registry_eventstore::{EmbeddedConfig, EmbeddedStore, EventStore};
    use registry_testkit::daemon::Daemon;
    use registry_testkit::Catalogue;

    /// Rounds of each pair of servers (with and without the log), unless
    /// `REGISTRY_BENCH_ROUNDS` says otherwise (0: only the proofs and the verification).
    fn rounds() -> usize {
        std::env::var("REGISTRY_BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(5)
    }

    /// Proofs made and checked in process.
    const PROOFS: u64 = 20_000;

    async fn w1(
        binary: &Path,
        store: &Path,
        extra: &[&str],
        catalogue: &Catalogue,
        load: Load,
    ) -> Report {
        let mut args = super::DAEMON_ARGS.to_vec();
        args.extend(extra);
        let registryd = Daemon::embedded(binary, store, &args);
        let clients = super::connect(&registryd.address, load.connections).await;
        super::caught_up(&clients[0]).await;
        let report = super::w1(&clients, catalogue, load, registryd.pid()).await;
        drop(clients);
        registryd.stop_within(Duration::from_secs(900));
        report
    }

    /// Prints W1 with and without the log (median ratio), proofs per second and the time of
    /// one, and the verification rate of the whole store.
    pub async fn costs(binary: &Path, store: &Path, catalogue: &Catalogue, load: Load) {
        let mut ratios = Vec::new();
        let rounds = rounds();
        for round in 1..=rounds {
            let on = w1(binary, store, &[], catalogue, load).await;
            super::row(&format!("W1 with the log ({round})"), &on, None);
            let off = w1(binary, store, &["--no-log"], catalogue, load).await;
            super::row(&format!("W1 without the log ({round})"), &off, None);
            ratios.push(on.per_second / off.per_second);
        }
        ratios.sort_by(f64::total_cmp);
        if let Some(median) = ratios.get(rounds / 2) {
            println!(
                "  W1 with the log / without, median of {rounds} rounds: {median:.3} (requests/s)"
            );
        }
        // The writes without the log are integrated when the store opens with it.
        let path = store.join("registry.db");
        let opening = Instant::now();
        let mut config = EmbeddedConfig::new(&path);
        config.signer = Some(std::sync::Arc::new(
            registry_eventstore::LogSigner::load(&store.join("log.key")).unwrap(),
        ));
        let opened = EmbeddedStore::open(config).unwrap();
        println!(
            "  store opened with the log in {:.2} s (integrating the writes made without it)",
            opening.elapsed().as_secs_f64()
        );
        let size = opened.head().await.unwrap().map_or(0, |p| p.commit);
        // The same leaves twice: first from the file as the process finds it (pages not yet
        // mapped, perhaps not in the kernel's cache), then again with their pages cached.
        for pass in ["first read", "pages cached"] {
            let started = Instant::now();
            let mut times = Vec::with_capacity(PROOFS as usize);
            for i in 0..PROOFS {
                let index = (i * 7_919_993) % size;
                let one = Instant::now();
                let nodes = opened
                    .log_nodes(registry_ledger::inclusion_nodes(index, size))
                    .await
                    .unwrap();
                let proof = registry_ledger::inclusion_proof(&nodes, index, size).unwrap();
                times.push(one.elapsed());
                std::hint::black_box(proof);
            }
            let each = started.elapsed() / PROOFS as u32;
            times.sort();
            let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
            println!(
                "  inclusion proofs in a log of {size} leaves, in process (nodes read, path \
                 computed), {pass}: {:.1} µs each, p50 {:.0} µs, p99 {:.0} µs",
                each.as_secs_f64() * 1e6,
                at(0.5),
                at(0.99)
            );
        }
        opened.close();
        drop(opened);
        let key = std::fs::read_to_string(store.join("log.pub")).unwrap();
        let options = VerifyOptions {
            keys: vec![registry_ledger::VerifierKey::parse(&key).unwrap()],
            strict: true,
            grace: Duration::from_secs(10),
        };
        let started = Instant::now();
        let report = verify_embedded(&path, &options).unwrap();
        let took = started.elapsed().as_secs_f64();
        println!(
            "  regctl verify of the store: {} events in {took:.1} s, {:.0} events/s; findings: {}",
            report.events,
            report.events as f64 / took,
            report.findings.len()
        );
    }
}

mod access {
    //! Q2 and W1 with an access policy against the same server without one, on the same
    //! transport: mutual TLS (the callers' certificates name them), and TLS with bearer tokens
    //! (sent to both; the server without a policy ignores them). The policy is the example's
    //! rules with the load's caller a registrar of every province.

    use std::path::Path;

    use registry_bench::{drive, Load, Report};
    use registry_client::{Client, Tls};
    use registry_testkit::daemon::Daemon;
    use registry_testkit::tokens::{Issuer, AUDIENCE, ISSUER};
    use registry_testkit::Catalogue;

    /// The name in the test client certificate (`tests/tls/client.pem`), and the tokens'
    /// subject.
    const CALLER: &str = "registrar@test";

    fn fixture(name: &str) -> String {
        format!("{}/../../tests/tls/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    /// Writes the policy (and the token issuer's keys) into `dir`, the caller holding
    /// `roles`; the policy file's path.
    fn policy(dir: &Path, catalogue: &Catalogue, issuer: &Issuer, roles: &str) -> String {
        let rules = format!(
            "{}/../../examples/access/registry.cedar",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::copy(rules, dir.join("registry.cedar")).unwrap();
        std::fs::write(dir.join("keys.jwks"), issuer.jwks()).unwrap();
        let scopes: Vec<String> = catalogue
            .provinces
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect();
        let text = format!(
            "rules = \"registry.cedar\"\n[tokens]\njwks = \"keys.jwks\"\nissuer = \"{ISSUER}\"\n\
             audience = \"{AUDIENCE}\"\n[agencies.bench]\nscopes = [{}]\n\
             [callers.\"{CALLER}\"]\nroles = [{roles}]\nagency = \"bench\"\n",
            scopes.join(", ")
        );
        let path = dir.join("policy.toml");
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// Q2 and W1 against `registryd` on `store` with `args`, through clients made with `tls`
    /// (and `token`).
    async fn measure<F, Fut, E>(
        binary: &Path,
        store: &Path,
        args: &[&str],
        (tls, token): (&Tls, Option<&str>),
        catalogue: &Catalogue,
        ask_q2: F,
        load: Load,
    ) -> (Report, Report)
    where
        F: Fn(u64, Client) -> Fut + Send + Sync + Clone + 'static,
        Fut: std::future::Future<Output = Result<(), E>> + Send,
    {
        let mut all = vec!["--timeout-seconds", "600", "--snapshot-every-events", "0"];
        all.extend(args);
        let registryd = Daemon::embedded(binary, store, &all);
        let https = registryd.address.replace("http://", "https://");
        let mut clients = Vec::new();
        for _ in 0..load.connections {
            let client = Client::connect_with(&https, tls).await.unwrap();
            clients.push(match token {
                Some(token) => client.with_token(token).unwrap(),
                None => client,
            });
        }
        // SERVING once the read models reached the store's head (health is open to all: the
        // statistics `caught_up` reads are an operator's).
        while !serving(&clients[0]).await {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let pid = registryd.pid();
        let q2 = drive(&clients, load, &[pid], ask_q2).await;
        let w1 = super::w1(&clients, catalogue, load, pid).await;
        (q2, w1)
    }

    /// Rounds of each pair of servers (without and with the policy).
    const ROUNDS: usize = 3;

    /// Runs each transport's pair of servers in turns and prints each row and the median
    /// ratios policy / none.
    pub async fn costs<F, Fut, E>(
        binary: &Path,
        store: &Path,
        catalogue: &Catalogue,
        ask_q2: F,
        load: Load,
        plaintext: (Option<&Report>, Option<&Report>),
    ) where
        F: Fn(u64, Client) -> Fut + Send + Sync + Clone + 'static,
        Fut: std::future::Future<Output = Result<(), E>> + Send,
    {
        let dir = tempfile::tempdir().unwrap();
        let issuer = Issuer::new("bench");
        let policy = policy(dir.path(), catalogue, &issuer, "\"registrar\"");
        let token = issuer.token(CALLER);
        let (cert, key, ca) = (
            fixture("server.pem"),
            fixture("server.key"),
            fixture("ca.pem"),
        );
        let read = |path: &str| std::fs::read(path).unwrap();
        let certified = Tls {
            ca: Some(read(&ca)),
            identity: Some((read(&fixture("client.pem")), read(&fixture("client.key")))),
        };
        let server_only = Tls {
            ca: Some(read(&ca)),
            identity: None,
        };
        let tls = ["--tls-cert", cert.as_str(), "--tls-key", key.as_str()];
        let mutual: Vec<&str> = tls
            .iter()
            .copied()
            .chain(["--tls-client-ca", ca.as_str()])
            .collect();
        let mut mutual_policy = mutual.clone();
        mutual_policy.extend(["--policy", policy.as_str()]);
        let mut tls_policy = tls.to_vec();
        tls_policy.extend(["--policy", policy.as_str()]);
        // The machine's speed drifts over minutes: each transport's servers with and without
        // the policy take turns, and each round's ratio compares neighbours.
        let transports = [
            (
                "mutual TLS",
                [mutual.as_slice(), mutual_policy.as_slice()],
                (&certified, None),
            ),
            (
                "TLS + token",
                [tls.as_slice(), tls_policy.as_slice()],
                (&server_only, Some(token.as_str())),
            ),
        ];
        for (transport, [without, with], client) in transports {
            let mut ratios = Vec::new();
            for round in 1..=ROUNDS {
                let mut pair = Vec::new();
                for (args, policy) in [(without, "no policy"), (with, "policy")] {
                    let (q2, w1) =
                        measure(binary, store, args, client, catalogue, ask_q2.clone(), load).await;
                    super::row(&format!("Q2 {transport}, {policy} ({round})"), &q2, None);
                    super::row(&format!("W1 {transport}, {policy} ({round})"), &w1, None);
                    pair.push((q2, w1));
                }
                ratios.push([
                    pair[1].0.per_second / pair[0].0.per_second,
                    pair[1].1.per_second / pair[0].1.per_second,
                    cpu_per_request(&pair[1].0) / cpu_per_request(&pair[0].0),
                    cpu_per_request(&pair[1].1) / cpu_per_request(&pair[0].1),
                ]);
            }
            let median = |i: usize| {
                let mut values: Vec<f64> = ratios.iter().map(|r| r[i]).collect();
                values.sort_by(f64::total_cmp);
                values[values.len() / 2]
            };
            println!(
                "  {transport}: policy / none, median of {ROUNDS} rounds: Q2 {:.3}, W1 {:.3} \
                 (requests/s); server CPU per request Q2 {:.2} x, W1 {:.2} x",
                median(0),
                median(1),
                median(2),
                median(3),
            );
        }
        if let (Some(q2), Some(w1)) = plaintext {
            println!(
                "  for scale, plaintext without a policy: Q2 {:.0}/s, W1 {:.0}/s",
                q2.per_second, w1.per_second
            );
        }
    }

    /// `registryd` on `store` with every feature a deployment turns on: mutual TLS, the
    /// policy (the caller a registrar and auditor of every province), a JSON access log, Prometheus
    /// metrics and (as always unless `--no-log`) the verifiable log; once serving, with
    /// `connections` clients holding the caller's certificate, and the directory holding the
    /// policy and the access log.
    pub async fn featured(
        binary: &Path,
        store: &Path,
        catalogue: &Catalogue,
        connections: usize,
    ) -> (Daemon, Vec<Client>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        // Q4 asks for histories: an auditor's question.
        let roles = "\"registrar\", \"auditor\"";
        let policy = policy(dir.path(), catalogue, &Issuer::new("bench"), roles);
        let metrics = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .to_string();
        let access_log = dir.path().join("access.jsonl");
        let (cert, key, ca) = (
            fixture("server.pem"),
            fixture("server.key"),
            fixture("ca.pem"),
        );
        let mut args = super::DAEMON_ARGS.to_vec();
        args.extend([
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            &ca,
            "--policy",
            &policy,
            "--access-log",
            access_log.to_str().unwrap(),
            "--metrics-listen",
            &metrics,
        ]);
        let registryd = Daemon::embedded(binary, store, &args);
        let read = |path: &str| std::fs::read(path).unwrap();
        let certified = Tls {
            ca: Some(read(&ca)),
            identity: Some((read(&fixture("client.pem")), read(&fixture("client.key")))),
        };
        let https = registryd.address.replace("http://", "https://");
        let mut clients = Vec::new();
        for _ in 0..connections {
            clients.push(Client::connect_with(&https, &certified).await.unwrap());
        }
        while !serving(&clients[0]).await {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        (registryd, clients, dir)
    }

    async fn serving(client: &Client) -> bool {
        use tonic_health::pb::{health_check_response::ServingStatus, HealthCheckRequest};
        client
            .health()
            .check(HealthCheckRequest::default())
            .await
            .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32)
    }

    fn cpu_per_request(report: &Report) -> f64 {
        report.server_cores / report.per_second
    }
}

/// What registryd measured in the run, for the rows against PostgreSQL.
struct Ours<'a> {
    client: &'a Client,
    q1: Option<&'a Report>,
    q2: Option<&'a Report>,
    q3: Option<&'a Report>,
    q4: Option<&'a Report>,
    w1: Option<&'a Report>,
    mix: Option<&'a Report>,
    /// Q1 and Q2 in batches of [`BATCH`] questions a call.
    batches: Option<&'a (Report, Report)>,
    /// Seconds its rebuild of the read models took, when asked for.
    rebuilt: Option<f64>,
    /// Seconds from its start to serving, the whole store folded.
    started: f64,
}

/// Days Q3's answers are checked on, in every province.
const Q3_DAYS: [&str; 10] = [
    "1996-01-01",
    "1999-07-01",
    "2002-03-15",
    "2005-01-01",
    "2008-09-30",
    "2011-05-01",
    "2015-06-01",
    "2018-12-31",
    "2021-04-01",
    "2024-03-18",
];

/// Questions per batch call (and per PostgreSQL statement) in the batch rows.
const BATCH: u64 = 100;

/// How many offices' histories are compared between the two systems.
const Q4_CHECKED: u64 = 256;

/// PostgreSQL loaded with the same registry: its load, the answers checked against registryd's,
/// then Q1-Q4, W1 and the mix driven with the same load, each printed with its ratio.
async fn against_postgres(
    pg: &pg::Comparison,
    ours: &Ours<'_>,
    catalogue: &Arc<Catalogue>,
    draws: &Arc<Draws>,
    load: Load,
    ceiling: f64,
) {
    let t = &pg.timings;
    println!(
        "postgres: {} holdings and {} events loaded with binary COPY in {:.1} s; keys, \
         the EXCLUDE constraint and indexes built after in {:.1} s; ANALYZE {:.1} s",
        pg.rows, pg.events, t.copy, t.index, t.analyze
    );
    let pg_total = t.copy + t.index + t.analyze;
    println!(
        "  registryd start to serving (the store folded) {:.1} s / postgres load to serving {pg_total:.1} s: {:.2}",
        ours.started,
        ours.started / pg_total
    );
    if let Some(rebuilt) = ours.rebuilt {
        println!(
            "  registryd rebuild of its read models in memory {rebuilt:.1} s (a warm re-fold, not a load)"
        );
    }
    let first = &pg.clients[0];
    // Both count the same Q3 communes, in every province on every day checked.
    let model = catalogue
        .vice_front_model
        .map(|m| m.to_string())
        .unwrap_or_default();
    let mut checked = 0;
    for province in &catalogue.provinces {
        for date in Q3_DAYS {
            let registryd = ours
                .client
                .query()
                .get_model_coverage(v1::GetModelCoverageRequest {
                    model: model.clone(),
                    jurisdiction: province.to_string(),
                    level: v1::Level::Commune as i32,
                    date: date.into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .observed
                .len() as i64;
            let postgres: i64 = first
                .client
                .query_one(&first.q3, &[&province.uuid(), &date])
                .await
                .unwrap()
                .get(0);
            assert_eq!(
                registryd, postgres,
                "Q3 in {province} on {date}: registryd {registryd}, PostgreSQL {postgres}"
            );
            checked += 1;
        }
    }
    println!(
        "  Q3: both count the same communes on {checked} (province, day) pairs ({} provinces x {} days)",
        catalogue.provinces.len(),
        Q3_DAYS.len()
    );
    let plan = pg
        .q3_plan(catalogue.provinces[0], "2015-06-01")
        .await
        .unwrap();
    println!("  Q3's plan (EXPLAIN ANALYZE, first province, 2015-06-01):");
    for line in plan.lines() {
        println!("    {line}");
    }
    // Both list the same events in an office's history.
    for i in 0..Q4_CHECKED {
        let office = catalogue.offices[(sample(i) as usize * 7919) % catalogue.offices.len()];
        let registryd: Vec<u64> = ours
            .client
            .audit()
            .list_resource_history(v1::ListResourceHistoryRequest {
                name: office.to_string(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .changes
            .iter()
            .map(|c| c.revision)
            .collect();
        let postgres = pg.revisions_of(office.uuid()).await.unwrap();
        assert_eq!(registryd, postgres, "Q4 of {office}: the events differ");
    }
    println!("  Q4: both list the same events for {Q4_CHECKED} offices");
    // The share of empty answers to the sample registryd's answers were recorded from.
    let mut empty = [0u64; 2];
    for i in 0..RECORDED {
        let n = sample(i);
        let (office, day) = draws.q1(n);
        empty[0] += u64::from(
            first
                .client
                .query(&first.q1, &[&office, &day])
                .await
                .unwrap()
                .is_empty(),
        );
        let (person, day) = draws.q2(n);
        empty[1] += u64::from(
            first
                .client
                .query(&first.q2, &[&person, &day])
                .await
                .unwrap()
                .is_empty(),
        );
    }
    println!(
        "  postgres empty answers in the same sample: Q1 {:.1}%, Q2 {:.1}%",
        percent(empty[0], RECORDED),
        percent(empty[1], RECORDED)
    );

    let (clients, pids) = (pg.clients.clone(), pg.pids.clone());
    let asked = draws.clone();
    let p1 = drive(&clients, load, &pids, move |n, pg| {
        let (office, day) = asked.q1(n);
        async move { pg.client.query(&pg.q1, &[&office, &day]).await.map(|_| ()) }
    })
    .await;
    row("postgres Q1 holders of an office", &p1, Some(ceiling));
    ratio("Q1", ours.q1, &p1);
    let asked = draws.clone();
    let p2 = drive(&clients, load, &pids, move |n, pg| {
        let (person, day) = asked.q2(n);
        async move { pg.client.query(&pg.q2, &[&person, &day]).await.map(|_| ()) }
    })
    .await;
    row("postgres Q2 offices of a person", &p2, Some(ceiling));
    ratio("Q2", ours.q2, &p2);
    let c = catalogue.clone();
    let p3 = drive(&clients, load, &pids, move |n, pg| {
        let province = c.provinces[n as usize % c.provinces.len()].uuid();
        async move {
            pg.client
                .query(&pg.q3, &[&province, &day(n)])
                .await
                .map(|_| ())
        }
    })
    .await;
    row("postgres Q3, prepared once", &p3, Some(ceiling));
    // The same query planned for each call's own province and day (an unnamed statement):
    // PostgreSQL may keep a generic plan for a prepared one. The better of the two counts.
    let c = catalogue.clone();
    let p3_planned = drive(&clients, load, &pids, move |n, pg| {
        let province = c.provinces[n as usize % c.provinces.len()].uuid();
        async move {
            pg.client
                .query(pg.q3_text.as_str(), &[&province, &day(n)])
                .await
                .map(|_| ())
        }
    })
    .await;
    row("postgres Q3, planned each call", &p3_planned, Some(ceiling));
    let p3 = if p3_planned.per_second > p3.per_second {
        p3_planned
    } else {
        p3
    };
    ratio("Q3", ours.q3, &p3);
    let c = catalogue.clone();
    let p4 = drive(&clients, load, &pids, move |n, pg| {
        let office = c.offices[(n as usize * 7919) % c.offices.len()].uuid();
        async move { pg.client.query(&pg.q4, &[&office]).await.map(|_| ()) }
    })
    .await;
    row("postgres Q4 office history, events", &p4, Some(ceiling));
    ratio("Q4", ours.q4, &p4);
    let c = catalogue.clone();
    let p4_rows = drive(&clients, load, &pids, move |n, pg| {
        let office = c.offices[(n as usize * 7919) % c.offices.len()].uuid();
        async move { pg.client.query(&pg.q4_rows, &[&office]).await.map(|_| ()) }
    })
    .await;
    row(
        "postgres Q4 office history, holding rows",
        &p4_rows,
        Some(ceiling),
    );
    ratio("Q4 (lighter: holding rows)", ours.q4, &p4_rows);
    if let Some((b1, b2)) = ours.batches {
        // The same batches, each one statement over the questions' arrays.
        for (question, ours) in [("Q1", b1), ("Q2", b2)] {
            let asked = draws.clone();
            let theirs = drive(&clients, load, &pids, move |n, pg| {
                let (subjects, days): (Vec<uuid::Uuid>, Vec<String>) = (0..BATCH)
                    .map(|k| match question {
                        "Q1" => asked.q1(n * BATCH + k),
                        _ => asked.q2(n * BATCH + k),
                    })
                    .unzip();
                async move {
                    let statement = if question == "Q1" {
                        &pg.q1_batch
                    } else {
                        &pg.q2_batch
                    };
                    pg.client
                        .query(statement, &[&subjects, &days])
                        .await
                        .map(|_| ())
                }
            })
            .await;
            row(
                &format!("postgres {question} in batches of 100 (statements)"),
                &theirs,
                None,
            );
            ratio(&format!("{question} batches"), Some(ours), &theirs);
        }
    }
    // W1: 32 connections, one transaction each at a time (autocommit, durable), each with an
    // office and a person of its own, inserting one past holding after another.
    let (writers, writer_pids) = pg.writers(32).await.unwrap();
    // What makes PostgreSQL's commits durable, as the server says it (not assumed).
    let mut durability = Vec::new();
    for setting in ["synchronous_commit", "fsync", "wal_sync_method"] {
        let value: String = writers[0]
            .0
            .query_one(&format!("SHOW {setting}"), &[])
            .await
            .unwrap()
            .get(0);
        durability.push(format!("{setting}={value}"));
    }
    println!("postgres durability: {}", durability.join(", "));
    let own: Arc<Vec<(uuid::Uuid, uuid::Uuid)>> = Arc::new(
        (0..writers.len())
            .map(|_| (uuid::Uuid::now_v7(), uuid::Uuid::now_v7()))
            .collect(),
    );
    let pw = drive(
        &writers,
        Load {
            connections: writers.len(),
            in_flight: 1,
            duration: load.duration,
        },
        &writer_pids,
        move |n, writer| {
            let own = own[(n >> 32) as usize];
            async move { pg_past_holding(&writer, own, n).await }
        },
    )
    .await;
    row("postgres W1 durable inserts, 32 clients", &pw, None);
    ratio("W1", ours.w1, &pw);
    if let Some(mixed) = ours.mix {
        // M1: the same mix; the reads on the pooled connections, each task's writes on a
        // connection of its own (a pool of writers).
        let tasks = load.connections * load.in_flight;
        let (writers, writer_pids) = pg.writers(tasks).await.unwrap();
        let writers = Arc::new(writers);
        let own: Arc<Vec<(uuid::Uuid, uuid::Uuid)>> = Arc::new(
            (0..tasks)
                .map(|_| (uuid::Uuid::now_v7(), uuid::Uuid::now_v7()))
                .collect(),
        );
        let all_pids: Vec<u32> = pids.iter().chain(&writer_pids).copied().collect();
        let (c, asked) = (catalogue.clone(), draws.clone());
        let (pm, kinds) = drive_mixed(&clients, load, &all_pids, 4, mixed_kind, move |n, pg| {
            let (c, asked, writers, own) = (c.clone(), asked.clone(), writers.clone(), own.clone());
            async move {
                let asked = match mixed_kind(n) {
                    0 => {
                        let (office, day) = asked.q1(n);
                        pg.client.query(&pg.q1, &[&office, &day]).await
                    }
                    1 => {
                        let (person, day) = asked.q2(n);
                        pg.client.query(&pg.q2, &[&person, &day]).await
                    }
                    2 => {
                        let office = c.offices[(n as usize * 7919) % c.offices.len()].uuid();
                        pg.client.query(&pg.q4, &[&office]).await
                    }
                    _ => {
                        let task = (n >> 32) as usize;
                        return pg_past_holding(&writers[task], own[task], n).await;
                    }
                };
                asked.map(|_| ())
            }
        })
        .await;
        mixed_rows("postgres M1 mix", &pm, &kinds, ceiling);
        ratio("M1", Some(mixed), &pm);
    }
}

/// `part` of `whole` in percent.
fn percent(part: u64, whole: u64) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

/// What Q1 and Q2 ask: a holding of the generated registry and a day it surely covers, so
/// that most questions have an answer (the share of empty answers is printed for both systems).
struct Draws(Vec<(uuid::Uuid, uuid::Uuid, Date, u64)>);

impl Draws {
    fn of(registry: &registry_domain::Registry) -> Self {
        // Open holdings are asked about up to the generated registry's last year.
        let last = Date::from_ymd(2025, 1, 1).unwrap();
        let held = registry
            .holdings()
            .filter_map(|(_, h)| {
                let span = h.span();
                let end = span.end.unwrap_or(last).min(last);
                let days = span.start.days_until(end);
                (days > 0).then(|| (h.office.uuid(), h.person.uuid(), span.start, days as u64))
            })
            .collect();
        Self(held)
    }

    /// The `n`-th request's holding and a day in it.
    fn drawn(&self, n: u64) -> (uuid::Uuid, uuid::Uuid, String) {
        let (office, person, start, days) = self.0[(n as usize * 7919) % self.0.len()];
        let mixed = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
        (
            office,
            person,
            start.add_days((mixed % days) as i64).to_string(),
        )
    }

    /// Q1's `n`-th question: an office and a day.
    fn q1(&self, n: u64) -> (uuid::Uuid, String) {
        let (office, _, day) = self.drawn(n);
        (office, day)
    }

    /// Q2's `n`-th question: a person and a day.
    fn q2(&self, n: u64) -> (uuid::Uuid, String) {
        let (_, person, day) = self.drawn(n);
        (person, day)
    }
}

/// The size of `body` gzip-compressed at flate2's default level, as tonic compresses.
fn gzipped(body: &[u8]) -> usize {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap().len()
}
