//! The registry on PostgreSQL streaming replication (`registry_testkit::pgcluster`: a primary
//! and a synchronous hot standby built from the machine's server binaries), measured:
//!
//! - **lag under W1**: one `registryd --services command` on the primary takes W1 (32 writers
//!   recording past holdings) while a prober writes a person every 50 ms and reads it back on a
//!   follower (`--services query` on the standby) with its commit position: the wait from the
//!   acknowledgement to the answer is what read-your-writes costs there. The standby's
//!   `replay_lag`, as the primary reports it, is sampled every 200 ms.
//! - **followers**: Q1 (holders of an office on a date) driven at one follower, then spread over
//!   two, with the CPU each process used.
//! - **failover**: under a write load, the primary is killed (SIGKILL), the standby promoted at
//!   once and its `synchronous_standby_names` cleared; the time from the kill to the first
//!   acknowledged write sent after it, and the writes lost (none may be).
//!
//! `REGISTRY_BENCH_SECONDS` sets the time of each load (10 s by default).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use registry_bench::{drive, own_offices, past_holding, Load, Report};
use registry_client::{request_id, v1, Client};
use registry_testkit::daemon::{registryd_binary, Daemon};
use registry_testkit::pgcluster::Replicated;

fn seconds() -> Duration {
    Duration::from_secs(
        std::env::var("REGISTRY_BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10),
    )
}

async fn connect(daemon: &Daemon) -> Client {
    for _ in 0..100 {
        if let Ok(client) = Client::connect(&daemon.address).await {
            return client.with_actor("bench").unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot connect to {}", daemon.address);
}

async fn register(client: &Client, request: &str) -> Result<(String, String), tonic::Status> {
    let result = client
        .command()
        .register_person(v1::RegisterPersonRequest {
            request_id: request.into(),
            display_name: "Người Đo Độ Trễ".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .result
        .unwrap();
    Ok((result.name, result.commit_position))
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap()
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn row(label: &str, report: &Report) {
    println!(
        "{label:<34} {:>9.0}/s  p50 {:>6.1} ms  p99 {:>6.1} ms  errors {}  server CPU {:.2} cores",
        report.per_second,
        ms(report.micros[0]),
        ms(report.micros[1]),
        report.errors,
        report.server_cores
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let pair = match Replicated::start(true, &[], None) {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("cannot build a PostgreSQL primary and standby: {e}");
            std::process::exit(1);
        }
    };
    let binary = registryd_binary();
    let writers_url = Replicated::url(&[&pair.primary, &pair.standby]);
    let followers_url = Replicated::url(&[&pair.standby, &pair.primary]);
    let writer = Daemon::start(&binary, &["--services", "command", "--store", &writers_url]);
    let followers: Vec<Daemon> = (0..2)
        .map(|_| Daemon::start(&binary, &["--services", "query", "--store", &followers_url]))
        .collect();
    let write = connect(&writer).await;
    let mut read = Vec::new();
    for follower in &followers {
        read.push(connect(follower).await);
    }
    let unit = registry_bench::load_unit(&write, "Tỉnh Đo Đạc", v1::Level::Province).await;
    let duration = seconds();
    println!(
        "PostgreSQL primary and synchronous hot standby; {} s per load\n",
        duration.as_secs()
    );

    // Lag under W1.
    let w1 = Load {
        connections: 4,
        in_flight: 8,
        duration,
    };
    let own = own_offices(&write, &unit, w1.connections * w1.in_flight, "").await;
    let done = Arc::new(AtomicBool::new(false));
    let prober = {
        let (write, read, done) = (write.clone(), read[0].clone(), done.clone());
        tokio::spawn(async move {
            let mut waits = histogram();
            while !done.load(Ordering::SeqCst) {
                let (name, position) = register(&write, &request_id()).await.unwrap();
                let acked = Instant::now();
                read.query()
                    .get_person(v1::GetPersonRequest {
                        name,
                        date: "2024-01-01".into(),
                        min_position: position,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                waits.record(acked.elapsed().as_micros() as u64).unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            waits
        })
    };
    let sampler = {
        let done = done.clone();
        let probe = pair.replay_lag_probe();
        tokio::task::spawn_blocking(move || {
            let mut lags = histogram();
            while !done.load(Ordering::SeqCst) {
                if let Some(lag) = probe() {
                    lags.record((lag * 1e6) as u64).unwrap();
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            lags
        })
    };
    let clients: Vec<Client> = (0..w1.connections).map(|_| write.clone()).collect();
    let offices: Arc<Vec<String>> = Arc::new(own.iter().map(|(o, _)| o.clone()).collect());
    // Each W1 run records on days of its own: `past_holding` takes the day from n's low bits.
    let holdings = |days_from: u64| {
        let own = own.clone();
        move |n: u64, client: Client| {
            let request = past_holding(&own, n + days_from);
            async move { client.command().start_holding(request).await.map(|_| ()) }
        }
    };
    let report = drive(&clients, w1, &[writer.pid()], holdings(0)).await;
    done.store(true, Ordering::SeqCst);
    let waits = prober.await.unwrap();
    let lags = sampler.await.unwrap();
    row("W1 on the primary (synchronous)", &report);
    println!(
        "standby replay_lag under W1         p50 {:>6.1} ms  p99 {:>6.1} ms  ({} samples)",
        ms(lags.value_at_quantile(0.5)),
        ms(lags.value_at_quantile(0.99)),
        lags.len()
    );
    println!(
        "read-your-writes wait on a follower  p50 {:>6.1} ms  p99 {:>6.1} ms  ({} writes)\n",
        ms(waits.value_at_quantile(0.5)),
        ms(waits.value_at_quantile(0.99)),
        waits.len()
    );

    // The price of synchronous replication: W1 again with the standby asynchronous.
    let set_standbys = |names: &str| {
        pair.sql(
            pair.primary.port,
            &format!("ALTER SYSTEM SET synchronous_standby_names = '{names}'"),
        )
        .unwrap();
        pair.sql(pair.primary.port, "SELECT pg_reload_conf()")
            .unwrap();
    };
    set_standbys("");
    let asynchronous = drive(&clients, w1, &[writer.pid()], holdings(100_000)).await;
    set_standbys("standby");
    row("W1 on the primary (asynchronous)", &asynchronous);
    println!(
        "  synchronous / asynchronous: {:.2}\n",
        report.per_second / asynchronous.per_second
    );

    // Followers: Q1 at one, then at two.
    let q1 = Load {
        connections: 4,
        in_flight: 16,
        duration,
    };
    let ask = move |n: u64, client: Client| {
        let offices = offices.clone();
        async move {
            let office = offices[(n as usize) % offices.len()].clone();
            client
                .query()
                .get_office_holders(v1::GetOfficeHoldersRequest {
                    office,
                    date: "2000-03-01".into(),
                    ..Default::default()
                })
                .await
                .map(|_| ())
        }
    };
    let one: Vec<Client> = (0..4).map(|_| read[0].clone()).collect();
    let single = drive(&one, q1, &[followers[0].pid()], ask.clone()).await;
    row("Q1 on one follower", &single);
    let two: Vec<Client> = (0..4).map(|i| read[i % 2].clone()).collect();
    let cpu = |pid: u32| registry_bench::cpu_seconds(pid);
    let before = [cpu(followers[0].pid()), cpu(followers[1].pid())];
    let started = Instant::now();
    let both = drive(&two, q1, &[followers[0].pid(), followers[1].pid()], ask).await;
    let elapsed = started.elapsed().as_secs_f64();
    row("Q1 spread over two followers", &both);
    println!(
        "  CPU per follower: {:.2} and {:.2} cores; two / one: {:.2}\n",
        (cpu(followers[0].pid()) - before[0]) / elapsed,
        (cpu(followers[1].pid()) - before[1]) / elapsed,
        both.per_second / single.per_second
    );

    // Failover under a write load.
    let stop = Arc::new(AtomicBool::new(false));
    // (person, position, when its successful attempt was sent, when acknowledged).
    type Acked = (String, String, Instant, Instant);
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (write, stop, acked) = (write.clone(), stop.clone(), acked.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let request = request_id();
                    loop {
                        let sent = Instant::now();
                        let attempt = tokio::time::timeout(
                            Duration::from_secs(10),
                            register(&write, &request),
                        )
                        .await;
                        if let Ok(Ok((name, position))) = attempt {
                            acked
                                .lock()
                                .unwrap()
                                .push((name, position, sent, Instant::now()));
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    pair.kill_primary().unwrap();
    let killed = Instant::now();
    pair.promote_standby().unwrap();
    let promoted = killed.elapsed();
    let first = loop {
        let first = acked
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.2 > killed)
            .map(|a| a.3)
            .min();
        if let Some(first) = first {
            break first;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(120),
            "no write after the failover"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    let acked = Arc::try_unwrap(acked).unwrap().into_inner().unwrap();
    let newest = acked
        .iter()
        .map(|a| a.1.parse::<registry_eventstore::Position>().unwrap())
        .max()
        .unwrap()
        .to_string();
    let mut lost = 0;
    for (name, _, _, _) in &acked {
        let found = read[0]
            .query()
            .get_person(v1::GetPersonRequest {
                name: name.clone(),
                date: "2024-01-01".into(),
                min_position: newest.clone(),
                ..Default::default()
            })
            .await;
        lost += usize::from(found.is_err());
    }
    println!(
        "failover: promotion {:.2} s; first write sent after the kill acknowledged {:.2} s after it; \
         {} writes acknowledged, {lost} lost",
        promoted.as_secs_f64(),
        (first - killed).as_secs_f64(),
        acked.len()
    );
}
