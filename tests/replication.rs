//! The registry on PostgreSQL streaming replication: a primary and a hot standby of the test's
//! own, built from the machine's server binaries (`registry_testkit::pgcluster`), with
//! synchronous replication.
//!
//! - Two command processes write through a URL naming both servers: they connect to the one
//!   that accepts writes. Two query and audit processes follow through a URL naming the standby
//!   first: they read from it (and never from the primary), and answer every write read back
//!   with its commit position.
//! - Failover under write load: the primary is killed (SIGKILL, every process of it), the
//!   standby promoted and told to stop waiting for a standby of its own. The command processes
//!   find the new primary by themselves; clients retry with the same request id; afterwards the
//!   registry holds exactly the writes acknowledged, none lost and none twice.
//! - Partition: a follower on a network namespace of its own (a veth pair to this host, where
//!   the standby listens on an address of its own) is cut off from the standby by a blackhole
//!   route. It says NOT_SERVING past its allowed lag, a read waiting for a newer write ends with
//!   DEADLINE_EXCEEDED, and once the route is gone it serves that write. Skipped, with a notice,
//!   where the machine does not let the test make a namespace.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use registry_client::{request_id, v1, Client};
use registry_testkit::pgcluster::Replicated;
use support::{replicated, Daemon};
use tonic_health::pb::health_check_response::ServingStatus;

/// Registers a person under `request`; the person's name and the write's position.
async fn register(
    client: &Client,
    request: &str,
    label: &str,
) -> Result<(String, String), tonic::Status> {
    let response = client
        .command()
        .register_person(v1::RegisterPersonRequest {
            request_id: request.into(),
            display_name: label.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let result = response.result.expect("a write result");
    Ok((result.name, result.commit_position))
}

/// The name of the person `name` as a follower answers once it has applied `position` (any, when
/// empty).
async fn display_name(client: &Client, name: &str, position: &str) -> String {
    client
        .query()
        .get_person(v1::GetPersonRequest {
            name: name.into(),
            date: "2024-01-01".into(),
            min_position: position.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .display_name
}

/// Every person a follower knows once it has applied `position`.
async fn all_persons(client: &Client, position: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .query()
            .list_persons(v1::ListPersonsRequest {
                date: "2024-01-01".into(),
                min_position: position.into(),
                page_size: 10_000,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        names.extend(page.persons.into_iter().map(|p| p.name));
        if page.next_page_token.is_empty() {
            return names;
        }
        token = page.next_page_token;
    }
}

/// Client connections of `application_name` on the server at `port`.
fn connections(pair: &Replicated, port: u16, application: &str) -> u32 {
    pair.sql(
        port,
        &format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{application}'"),
    )
    .unwrap()
    .parse()
    .unwrap()
}

/// What the write load saw.
#[derive(Default)]
struct Load {
    /// (person, position, when its successful attempt was sent, when acknowledged).
    acked: Vec<(String, String, Instant, Instant)>,
    /// Attempts that failed (and were retried with the same request id).
    failed: usize,
}

/// Writes persons through `writers` (each attempt on the next one) until `stop`; a failed
/// write is retried with the same request id, as a client must, for up to a minute.
async fn write_load(
    writers: Vec<Client>,
    task: usize,
    stop: Arc<AtomicBool>,
    load: Arc<Mutex<Load>>,
) {
    let mut attempt = task;
    for k in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let request = request_id();
        let label = format!("Người Thử {task}-{k}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            attempt += 1;
            let writer = &writers[attempt % writers.len()];
            let sent = Instant::now();
            match tokio::time::timeout(Duration::from_secs(10), register(writer, &request, &label))
                .await
            {
                Ok(Ok((name, position))) => {
                    load.lock()
                        .unwrap()
                        .acked
                        .push((name, position, sent, Instant::now()));
                    break;
                }
                _ => {
                    load.lock().unwrap().failed += 1;
                    assert!(
                        Instant::now() < deadline,
                        "{label} not recorded within a minute"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_read_the_standby_and_writers_survive_a_failover() {
    let Some(pair) = replicated(true, &[], None) else {
        return;
    };
    let writers_url = format!(
        "{}?application_name=writer",
        Replicated::url(&[&pair.primary, &pair.standby])
    );
    let followers_url = format!(
        "{}?application_name=follower",
        Replicated::url(&[&pair.standby, &pair.primary])
    );
    // A standby cannot make the schema: a follower started before any writer says so.
    let early = std::process::Command::new(registry_testkit::daemon::registryd_binary())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--services",
            "query",
            "--store",
            &followers_url,
        ])
        .output()
        .unwrap();
    assert_eq!(early.status.code(), Some(69), "{early:?}");
    assert!(
        String::from_utf8_lossy(&early.stderr)
            .contains("hot standby without the registry's schema"),
        "{early:?}"
    );
    let writers: Vec<Daemon> = (0..2)
        .map(|_| Daemon::start(&["--services", "command", "--store", &writers_url]))
        .collect();
    let followers: Vec<Daemon> = (0..2)
        .map(|_| Daemon::start(&["--services", "query,audit", "--store", &followers_url]))
        .collect();
    let mut write = Vec::new();
    for daemon in &writers {
        write.push(daemon.client().await);
    }
    let mut read = Vec::new();
    for daemon in &followers {
        read.push(daemon.client().await);
    }

    // Read your writes through the standby: each write, read back at once on a follower.
    for i in 0..40 {
        let (name, position) = register(&write[i % 2], &request_id(), &format!("Người Đọc {i}"))
            .await
            .unwrap();
        let shown = display_name(&read[(i / 2) % 2], &name, &position).await;
        assert_eq!(shown, format!("Người Đọc {i}"));
    }
    assert_eq!(
        connections(&pair, pair.primary.port, "follower"),
        0,
        "a follower reads the primary"
    );
    assert!(
        connections(&pair, pair.standby.port, "follower") >= 2,
        "the followers do not read the standby"
    );
    assert!(
        connections(&pair, pair.primary.port, "writer") >= 2,
        "the writers are not on the primary"
    );

    // Failover under load.
    let stop = Arc::new(AtomicBool::new(false));
    let load = Arc::new(Mutex::new(Load::default()));
    let tasks: Vec<_> = (0..4)
        .map(|task| tokio::spawn(write_load(write.clone(), task, stop.clone(), load.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = load.lock().unwrap().acked.len();
    assert!(before > 0, "no write acknowledged before the kill");
    pair.kill_primary().unwrap();
    let killed = Instant::now();
    pair.promote_standby().unwrap();
    let promoted = killed.elapsed();
    // On until the load has gone on for two seconds on the new primary. The first write sent
    // after the kill and acknowledged tells how long writes were refused.
    let first_after = loop {
        let first = load
            .lock()
            .unwrap()
            .acked
            .iter()
            .filter(|a| a.2 > killed)
            .map(|a| a.3)
            .min();
        if let Some(first) = first {
            if first.elapsed() > Duration::from_secs(2) {
                break first;
            }
        }
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "no write acknowledged in a minute after the failover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    let load = Arc::try_unwrap(load).ok().unwrap().into_inner().unwrap();

    // Exactly the acknowledged writes are in the registry, as both followers answer.
    let newest = load
        .acked
        .iter()
        .map(|a| a.1.parse::<registry_eventstore::Position>().unwrap())
        .max()
        .unwrap()
        .to_string();
    let mut acked: Vec<String> = load.acked.iter().map(|a| a.0.clone()).collect();
    acked.sort();
    for client in &read {
        let stored = all_persons(client, &newest).await;
        let known: std::collections::HashSet<&String> = stored.iter().collect();
        let lost = acked.iter().filter(|n| !known.contains(n)).count();
        assert_eq!(
            lost,
            0,
            "{lost} of {} acknowledged writes lost",
            acked.len()
        );
        // The 40 read back above, and the load's, each once.
        assert_eq!(
            stored.len(),
            acked.len() + 40,
            "a write recorded twice or one never acknowledged"
        );
    }
    // With no standby left to answer, a new follower reads from the primary there is.
    let late = Daemon::start(&[
        "--services",
        "query",
        "--store",
        &Replicated::url(&[&pair.primary, &pair.standby]),
    ]);
    let stored = all_persons(&late.client().await, &newest).await;
    assert_eq!(stored.len(), acked.len() + 40);
    eprintln!(
        "failover: {} writes acknowledged ({before} before the kill), {} attempts failed and retried, \
         0 lost; promotion took {:.2} s; first write acknowledged {:.2} s after the kill",
        acked.len(),
        load.failed,
        promoted.as_secs_f64(),
        (first_after - killed).as_secs_f64()
    );
    drop(followers);
    drop(writers);
}

/// A network namespace joined to this host by a veth pair: the host has `.1` (its own) and `.3`
/// (where the servers listen) of a /24, the namespace `.2`. Removed, with the pair, when dropped.
struct Namespace {
    name: String,
    net: String,
}

impl Namespace {
    fn make() -> Result<Self, String> {
        let id = std::process::id() % 10_000;
        let net = format!("10.231.{}", id % 250);
        let (name, host, inside) = (
            format!("regf{id}"),
            format!("regh{id}"),
            format!("regi{id}"),
        );
        let ip = |args: &[&str]| -> Result<(), String> {
            let output = std::process::Command::new("ip")
                .args(args)
                .output()
                .map_err(|e| format!("ip: {e}"))?;
            if output.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&output.stderr).trim()
                ))
            }
        };
        ip(&["netns", "add", &name])?;
        let made = Self {
            name: name.clone(),
            net: net.clone(),
        };
        ip(&[
            "link", "add", &host, "type", "veth", "peer", "name", &inside,
        ])?;
        ip(&["link", "set", &inside, "netns", &name])?;
        ip(&["addr", "add", &format!("{net}.1/24"), "dev", &host])?;
        ip(&["addr", "add", &format!("{net}.3/24"), "dev", &host])?;
        ip(&["link", "set", &host, "up"])?;
        ip(&[
            "netns",
            "exec",
            &name,
            "ip",
            "addr",
            "add",
            &format!("{net}.2/24"),
            "dev",
            &inside,
        ])?;
        ip(&["netns", "exec", &name, "ip", "link", "set", &inside, "up"])?;
        ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"])?;
        Ok(made)
    }

    /// Drops (or, with `cut` false, lets through again) every packet from the namespace to the
    /// servers' address.
    fn cut(&self, cut: bool) {
        let verb = if cut { "add" } else { "del" };
        let status = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "ip",
                "route",
                verb,
                "blackhole",
                &format!("{}.3/32", self.net),
            ])
            .status()
            .unwrap();
        assert!(status.success(), "ip route {verb} blackhole");
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

async fn query_health(client: &Client) -> i32 {
    client
        .health()
        .check(tonic_health::pb::HealthCheckRequest {
            service: "registry.v1.QueryService".into(),
        })
        .await
        .map(|r| r.into_inner().status)
        .unwrap_or(-1)
}

async fn await_health(client: &Client, status: ServingStatus, within: Duration) -> Duration {
    let started = Instant::now();
    while query_health(client).await != status as i32 {
        assert!(
            started.elapsed() < within,
            "not {status:?} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_cut_off_from_its_standby_stops_serving_and_recovers() {
    let namespace = match Namespace::make() {
        Ok(namespace) => namespace,
        Err(e) => {
            eprintln!("NOTICE: cannot make a network namespace ({e}); skipping this test");
            return;
        }
    };
    let servers = format!("{}.3", namespace.net);
    let Some(pair) = replicated(true, &[&servers], Some(&format!("{}.0/24", namespace.net))) else {
        return;
    };
    let writer = Daemon::start(&[
        "--services",
        "command",
        "--store",
        &Replicated::url(&[&pair.primary, &pair.standby]),
    ]);
    let mut command = std::process::Command::new("ip");
    command
        .args(["netns", "exec", &namespace.name])
        .arg(registry_testkit::daemon::registryd_binary())
        .args([
            "--listen",
            &format!("{}.2:0", namespace.net),
            "--allow-anonymous",
        ])
        .args(["--services", "query", "--max-lag-seconds", "2", "--store"])
        .arg(format!(
            "postgres://postgres@{servers}:{}/postgres",
            pair.standby.port
        ));
    let follower = Daemon::spawn(command);
    let write = writer.client().await;
    let read = follower.client().await;
    let (name, position) = register(&write, &request_id(), "Người Trước")
        .await
        .unwrap();
    support::await_position(&read, &position).await;
    await_health(&read, ServingStatus::Serving, Duration::from_secs(30)).await;

    namespace.cut(true);
    let cut = Instant::now();
    let (later, position) = register(&write, &request_id(), "Người Sau").await.unwrap();
    let mut request = tonic::Request::new(v1::GetPersonRequest {
        name: later.clone(),
        date: "2024-01-01".into(),
        min_position: position.clone(),
        ..Default::default()
    });
    request.set_timeout(Duration::from_secs(2));
    let status = read.query().get_person(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    await_health(&read, ServingStatus::NotServing, Duration::from_secs(30)).await;
    let noticed = cut.elapsed();
    // What it had applied before, it still answers.
    assert_eq!(display_name(&read, &name, "").await, "Người Trước");

    namespace.cut(false);
    let healed = await_health(&read, ServingStatus::Serving, Duration::from_secs(60)).await;
    assert_eq!(display_name(&read, &later, &position).await, "Người Sau");
    eprintln!(
        "partition: NOT_SERVING {:.1} s after the cut (allowed lag 2 s); SERVING {:.1} s after healing",
        noticed.as_secs_f64(),
        healed.as_secs_f64()
    );
    drop(follower);
    drop(writer);
}
