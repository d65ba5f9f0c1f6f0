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
//!   command) one after another in an office of their own.
//!
//! `cargo bench -p registry-bench --bench grpc`. Prints requests/s, latency percentiles, the
//! server's CPU use, and each read's throughput as a fraction of the echo ceiling.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use registry_bench::{drive, load_store, Load, Report};
use registry_client::{request_id, v1, Client};
use registry_domain::Date;
use registry_testkit::daemon::{registryd_binary, Daemon};
use registry_testkit::{generate, Config};

fn row(name: &str, report: &Report, ceiling: Option<f64>) {
    let ratio = ceiling.map_or(String::new(), |c| {
        format!("{:.2} x echo", report.per_second / c)
    });
    println!(
        "{name:<34} {:>9.0} req/s  p50 {:>6} us  p99 {:>6} us  p99.9 {:>6} us  server {:.2} cores  errors {}  {ratio}",
        report.per_second, report.micros[0], report.micros[1], report.micros[2], report.server_cores, report.errors
    );
}

async fn connect(address: &str, n: usize) -> Vec<Client> {
    let mut clients = Vec::new();
    for _ in 0..n {
        clients.push(Client::connect(address).await.unwrap().with_actor("bench"));
    }
    clients
}

fn pid_of(daemon: &Daemon) -> u32 {
    daemon.pid()
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
    runtime.block_on(async {
        let started = Instant::now();
        let generated = generate(&config);
        let dir = tempfile::tempdir().unwrap();
        let events = load_store(&dir.path().join("registry.db"), &generated.facts)
            .await
            .unwrap();
        println!(
            "{size}: {events} events generated and stored in {:.1} s",
            started.elapsed().as_secs_f64()
        );

        let binary = registryd_binary();
        let started = Instant::now();
        let registryd = Daemon::embedded(&binary, dir.path(), &[]);
        let admin = Client::connect(&registryd.address).await.unwrap();
        loop {
            let stats = admin
                .admin()
                .get_store_stats(v1::GetStoreStatsRequest {})
                .await
                .unwrap()
                .into_inner();
            if !stats.head_position.is_empty() && stats.projection_position == stats.head_position {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(
            "registryd started and folded {events} events in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let echo = Daemon::start(std::path::Path::new(env!("CARGO_BIN_EXE_echo-server")), &[]);

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
        let ceiling = drive(&echo_clients, load, pid_of(&echo), |_, client| async move {
            client
                .health()
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map(|_| ())
        })
        .await;
        row("echo (gRPC ceiling)", &ceiling, None);

        let clients = connect(&registryd.address, load.connections).await;
        let pid = pid_of(&registryd);
        let catalogue = Arc::new(generated.catalogue.clone());
        let day = |n: u64| {
            Date::from_ymd(2000, 1, 1)
                .unwrap()
                .add_days((n % 9_000) as i64)
                .to_string()
        };

        let c = catalogue.clone();
        let q1 = drive(&clients, load, pid, move |n, client| {
            let office = c.offices[(n as usize * 7919) % c.offices.len()].to_string();
            async move {
                let request = v1::GetOfficeHoldersRequest {
                    office,
                    date: day(n),
                    ..Default::default()
                };
                client.query().get_office_holders(request).await.map(|_| ())
            }
        })
        .await;
        row("Q1 holders of an office", &q1, Some(ceiling.per_second));

        let c = catalogue.clone();
        let q2 = drive(&clients, load, pid, move |n, client| {
            let person = c.persons[(n as usize * 7919) % c.persons.len()].to_string();
            async move {
                let request = v1::ListPersonOfficesRequest {
                    person,
                    date: day(n),
                    ..Default::default()
                };
                client
                    .query()
                    .list_person_offices(request)
                    .await
                    .map(|_| ())
            }
        })
        .await;
        row("Q2 offices of a person", &q2, Some(ceiling.per_second));

        let c = catalogue.clone();
        let q3 = drive(&clients, load, pid, move |n, client| {
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
        row("Q3 coverage in a province", &q3, Some(ceiling.per_second));

        let c = catalogue.clone();
        let q4 = drive(&clients, load, pid, move |n, client| {
            let office = c.offices[(n as usize * 7919) % c.offices.len()].to_string();
            async move {
                let request = v1::ListResourceHistoryRequest {
                    name: office,
                    ..Default::default()
                };
                client
                    .audit()
                    .list_resource_history(request)
                    .await
                    .map(|_| ())
            }
        })
        .await;
        row(
            "Q4 office history with provenance",
            &q4,
            Some(ceiling.per_second),
        );

        // W1: 32 writers, each with an office and a person of its own, recording one past
        // holding after another (appointment and end in one durable command).
        let writers = Load {
            connections: 4,
            in_flight: 8,
            duration: load.duration,
        };
        let mut own = Vec::new();
        let unit = catalogue.provinces[0].to_string();
        for task in 0..(writers.connections * writers.in_flight) {
            let command = clients[0].command();
            let office = command
                .clone()
                .create_office(v1::CreateOfficeRequest {
                    request_id: request_id(),
                    unit: unit.clone(),
                    title: format!("Chức vụ thử tải {task}"),
                    kind: v1::OfficeKind::Member as i32,
                    capacity: Some(v1::Capacity {
                        kind: v1::CapacityKind::Sole as i32,
                        limit: 1,
                    }),
                    valid_from: "2000-01-01".into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .result
                .unwrap()
                .name;
            let person = command
                .clone()
                .register_person(v1::RegisterPersonRequest {
                    request_id: request_id(),
                    display_name: format!("Người Thử Tải {task}"),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .result
                .unwrap()
                .name;
            own.push((office, person));
        }
        let own = Arc::new(own);
        let w1 = drive(&clients, writers, pid, move |n, client| {
            let (task, k) = ((n >> 32) as usize, (n & 0xffff_ffff) as i64);
            let (office, person) = own[task].clone();
            let start = Date::from_ymd(2000, 1, 1).unwrap().add_days(k);
            async move {
                let request = v1::StartHoldingRequest {
                    request_id: request_id(),
                    person,
                    office,
                    valid_from: start.to_string(),
                    valid_until: start.next_day().to_string(),
                    end_reason: v1::EndReason::TermEnd as i32,
                    beginning: v1::BeginningKind::Appointed as i32,
                    ..Default::default()
                };
                client.command().start_holding(request).await.map(|_| ())
            }
        })
        .await;
        row("W1 durable writes, 32 clients", &w1, None);
        drop((registryd, echo));
    });
}
