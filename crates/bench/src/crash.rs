//! The crash harness: `registryd` under gRPC write load from several clients, each keeping
//! every request it sent and whether it was acknowledged, crashed at random moments, then
//! started again and checked.
//!
//! A cycle starts `registryd`, lets the writers run, and injects one [`Fault`]: SIGKILL at a
//! random moment, while it writes a snapshot, while it rebuilds its read models or while an
//! import stream is being recorded; on PostgreSQL also the database itself stopped at once
//! (`pg_ctl stop -m immediate`, a server of the harness's own) with `registryd` left running.
//! After the restart every write left in doubt (sent, not acknowledged) is sent again with its
//! request id, the import again whole, and the registry must hold every acknowledged write,
//! every write in doubt exactly once (its retry says whether it had been recorded before the
//! crash) and every imported record once. At the end the store's log is verified offline:
//! every event against its hashes.
//!
//! Used by `tests/crash_loop.rs` (a few cycles per store in CI) and `benches/crash.rs` (the
//! figures: at least 100 cycles per store).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use registry_client::{v1, Client};
use registry_testkit::daemon::Daemon;
use registry_testkit::pgcluster::Single;
use tonic_health::pb::{health_check_response::ServingStatus, HealthCheckRequest};

/// Where the registry under test keeps its events.
pub enum Store {
    /// The embedded store in this directory.
    Embedded(PathBuf),
    /// A PostgreSQL server of the harness's own (so that it may crash it), and a directory
    /// for `registryd`'s other files.
    Postgres(Single, PathBuf),
}

/// What a cycle does to the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// SIGKILL to `registryd` at a random moment of the write load.
    Kill,
    /// SIGKILL as soon as a snapshot's temporary file appears (it saves every few hundred
    /// events).
    KillSavingSnapshot,
    /// SIGKILL a few milliseconds into a rebuild of its read models.
    KillRebuilding,
    /// SIGKILL while an import stream is being recorded.
    KillImporting,
    /// PostgreSQL stopped at once and started again; `registryd` is not restarted and must
    /// recover by itself.
    CrashPostgres,
}

impl Fault {
    /// The faults a store's cycles take in turn.
    pub fn for_store(store: &Store) -> &'static [Fault] {
        match store {
            Store::Embedded(_) => &[
                Fault::Kill,
                Fault::KillSavingSnapshot,
                Fault::KillRebuilding,
                Fault::KillImporting,
            ],
            Store::Postgres(..) => &[
                Fault::Kill,
                Fault::CrashPostgres,
                Fault::KillRebuilding,
                Fault::KillImporting,
            ],
        }
    }
}

/// What the cycles did and found.
#[derive(Debug, Default)]
pub struct Tally {
    /// Cycles run, by fault.
    pub cycles: HashMap<Fault, usize>,
    /// Writes acknowledged (all found again).
    pub acknowledged: usize,
    /// Writes in doubt at a crash, then retried with their request id: recorded before the
    /// crash (the retry's answer replayed) or only by the retry.
    pub in_doubt_recorded_before: usize,
    /// See `in_doubt_recorded_before`.
    pub in_doubt_recorded_by_retry: usize,
    /// Import records sent (each found once after the import was sent again).
    pub imported: usize,
    /// Of them, recorded before the crash (the second import replayed them).
    pub imported_before_crash: usize,
    /// Kills that left a snapshot's temporary file behind (a save was cut short).
    pub snapshots_cut: usize,
    /// Seconds from each restart to SERVING (or, after a database crash, from its start
    /// again to the first write acknowledged).
    pub recoveries: Vec<f64>,
    /// Events the store held at the end, all verified against the log's hashes.
    pub events_verified: u64,
}

/// How the harness runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Cycles to run.
    pub cycles: usize,
    /// Concurrent writers.
    pub writers: usize,
    /// The random moments' seed.
    pub seed: u64,
}

/// One write: the request id and the person's name it registers (unique to the write).
#[derive(Clone, Debug)]
struct Write {
    request_id: String,
    display_name: String,
}

impl Write {
    fn request(&self) -> v1::RegisterPersonRequest {
        v1::RegisterPersonRequest {
            request_id: self.request_id.clone(),
            display_name: self.display_name.clone(),
            ..Default::default()
        }
    }
}

/// What the harness expects the registry to hold: each name once, with its resource where an
/// answer gave one.
#[derive(Default)]
struct Expected(HashMap<String, Option<String>>);

/// Runs `options.cycles` cycles against `registryd` (`binary`) on `store`, faults in turn;
/// the tally, or the first thing found wrong.
///
/// # Errors
///
/// A write acknowledged and then missing, a record held twice, a retry refused, a restart
/// that does not serve, a log that does not verify.
pub async fn run(binary: &Path, store: &Store, options: &Options) -> Result<Tally, String> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(options.seed);
    let mut tally = Tally::default();
    let mut expected = Expected::default();
    let faults = Fault::for_store(store);
    let mut daemon = Some(start(binary, store)?);
    for cycle in 0..options.cycles {
        let fault = faults[cycle % faults.len()];
        *tally.cycles.entry(fault).or_default() += 1;
        let client = serving(live(&daemon)?, Duration::from_secs(60)).await?.0;
        // The writers run until told to stop, keeping what they sent.
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new((Vec::new(), Vec::new())));
        let mut writers = Vec::new();
        for w in 0..options.writers {
            let (client, stop, outcomes) = (client.clone(), stop.clone(), outcomes.clone());
            writers.push(tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let write = Write {
                        request_id: registry_client::request_id(),
                        display_name: format!("Crash {cycle}-{w}-{n}"),
                    };
                    let answer = client.command().register_person(write.request()).await;
                    let failed = answer.is_err();
                    {
                        let mut kept = outcomes.lock().unwrap_or_else(|e| e.into_inner());
                        match answer {
                            Ok(answer) => {
                                kept.0
                                    .push((write, answer.into_inner().result.map(|r| r.name)));
                            }
                            Err(_) => kept.1.push(write),
                        }
                    }
                    if failed {
                        // The service is down: wait for it rather than spin.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..400))).await;
        let import = (fault == Fault::KillImporting).then(|| import_records(cycle, 2_000));
        match fault {
            Fault::Kill => {
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..600))).await;
                kill(&mut daemon);
            }
            Fault::KillSavingSnapshot => {
                let saving = saving_snapshot(store, Duration::from_secs(5)).await;
                kill(&mut daemon);
                if saving && matches!(store, Store::Embedded(dir) if temporary_snapshot(dir)) {
                    tally.snapshots_cut += 1;
                }
            }
            Fault::KillRebuilding => {
                let admin = client.clone();
                let rebuild = tokio::spawn(async move {
                    admin
                        .admin()
                        .rebuild_projections(v1::RebuildProjectionsRequest {})
                        .await
                });
                tokio::time::sleep(Duration::from_millis(rng.random_range(1..40))).await;
                kill(&mut daemon);
                let _ = rebuild.await;
            }
            Fault::KillImporting => {
                let (importer, records) = (client.clone(), import.clone().unwrap_or_default());
                let sending = tokio::spawn(async move { send_import(&importer, records).await });
                tokio::time::sleep(Duration::from_millis(rng.random_range(5..150))).await;
                kill(&mut daemon);
                let _ = sending.await;
            }
            Fault::CrashPostgres => {
                let Store::Postgres(server, _) = store else {
                    return Err("a database crash needs a PostgreSQL store".into());
                };
                server.stop("immediate")?;
                tokio::time::sleep(Duration::from_millis(rng.random_range(50..500))).await;
                server.start_again()?;
                // The writers go on: registryd must reconnect by itself.
                let back = Instant::now();
                let first = first_write_after(&client).await?;
                tally.recoveries.push((first - back).as_secs_f64());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            let _ = writer.await;
        }
        if daemon.is_none() {
            let started = Instant::now();
            let restarted = start(binary, store)?;
            serving(&restarted, Duration::from_secs(120)).await?;
            tally.recoveries.push(started.elapsed().as_secs_f64());
            daemon = Some(restarted);
        }
        let (client, _) = serving(live(&daemon)?, Duration::from_secs(120)).await?;
        let (acknowledged, in_doubt) =
            std::mem::take(&mut *outcomes.lock().unwrap_or_else(|e| e.into_inner()));
        tally.acknowledged += acknowledged.len();
        for (write, name) in acknowledged {
            expected.0.insert(write.display_name, name);
        }
        let mut last = String::new();
        for write in in_doubt {
            let result = retry(&client, &write).await?;
            if result.replayed {
                tally.in_doubt_recorded_before += 1;
            } else {
                tally.in_doubt_recorded_by_retry += 1;
            }
            last = result.commit_position.clone();
            expected.0.insert(write.display_name, Some(result.name));
        }
        if let Some(records) = import {
            let answer = send_import(&client, records.clone())
                .await
                .map_err(|e| format!("cycle {cycle}: the import sent again failed: {e}"))?;
            if answer.recorded + answer.replayed != records.len() as i64 {
                return Err(format!(
                    "cycle {cycle}: the import sent again recorded {} and replayed {} of {} records",
                    answer.recorded,
                    answer.replayed,
                    records.len()
                ));
            }
            tally.imported += records.len();
            tally.imported_before_crash += answer.replayed as usize;
            if !answer.commit_position.is_empty() {
                last = answer.commit_position;
            }
            for record in records {
                if let Some(v1::import_record::Record::Person(person)) = record.record {
                    expected.0.insert(person.display_name, None);
                }
            }
        }
        check(&client, &expected, &last)
            .await
            .map_err(|e| format!("cycle {cycle} ({fault:?}): {e}"))?;
    }
    let code = daemon
        .ok_or("no registryd at the end")?
        .stop_within(Duration::from_secs(120));
    if code != Some(0) {
        return Err(format!("registryd stopped with {code:?} after SIGTERM"));
    }
    tally.events_verified = verify(store).await?;
    Ok(tally)
}

/// Kills the running `registryd` (SIGKILL), as a crash would.
fn kill(daemon: &mut Option<Daemon>) {
    if let Some(daemon) = daemon.take() {
        daemon.kill();
    }
}

fn live(daemon: &Option<Daemon>) -> Result<&Daemon, String> {
    daemon
        .as_ref()
        .ok_or_else(|| "registryd is not running".to_owned())
}

/// Starts `registryd` on `store`, saving its read models every 200 events.
fn start(binary: &Path, store: &Store) -> Result<Daemon, String> {
    let common = ["--snapshot-every-events", "200", "--timeout-seconds", "30"];
    let daemon = match store {
        Store::Embedded(dir) => Daemon::embedded(binary, dir, &common),
        Store::Postgres(server, dir) => {
            let url = server.url();
            let key = log_key(dir)?;
            let key = key.to_str().ok_or("a data directory not in UTF-8")?;
            let mut args = vec!["--store", &url, "--pg-schema", "crash", "--log-key", key];
            args.extend(common);
            Daemon::start(binary, &args)
        }
    };
    Ok(daemon)
}

/// The log's signing key for PostgreSQL (the embedded store makes its own): made in `dir` the
/// first time; its path.
fn log_key(dir: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("log.key");
    if !path.exists() {
        let key = registry_ledger::SigningKey::generate("registry.test/crash")
            .map_err(|e| e.to_string())?;
        std::fs::write(&path, format!("{}\n", key.to_text())).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
    }
    Ok(path)
}

/// A client of `daemon` once its health says SERVING, and how long that took.
async fn serving(daemon: &Daemon, patience: Duration) -> Result<(Client, Duration), String> {
    let started = Instant::now();
    let client = Client::connect(&daemon.address)
        .await
        .map_err(|e| format!("cannot connect to the restarted registryd: {e}"))?;
    loop {
        let status = client.health().check(HealthCheckRequest::default()).await;
        if status.is_ok_and(|s| s.into_inner().status == ServingStatus::Serving as i32) {
            return Ok((client, started.elapsed()));
        }
        if started.elapsed() > patience {
            return Err(format!(
                "registryd did not serve within {patience:?} of its start"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `write` again until an answer (the service may still be reconnecting).
async fn retry(client: &Client, write: &Write) -> Result<v1::WriteResult, String> {
    let started = Instant::now();
    loop {
        match client.command().register_person(write.request()).await {
            Ok(answer) => {
                return answer
                    .into_inner()
                    .result
                    .ok_or_else(|| "a write's answer without its result".to_owned());
            }
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                ) && started.elapsed() < Duration::from_secs(60) =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => {
                return Err(format!(
                    "the write {} ({}) in doubt was refused when sent again: {status}",
                    write.request_id, write.display_name
                ));
            }
        }
    }
}

/// Registers a person after a database crash until one is acknowledged (the retries 50 ms
/// apart); when that was.
async fn first_write_after(client: &Client) -> Result<Instant, String> {
    let write = Write {
        request_id: registry_client::request_id(),
        display_name: format!("Crash probe {}", registry_client::request_id()),
    };
    retry(client, &write).await?;
    Ok(Instant::now())
}

/// `count` person records of cycle `cycle`, each with its own request id.
fn import_records(cycle: usize, count: usize) -> Vec<v1::ImportRecord> {
    (0..count)
        .map(|n| v1::ImportRecord {
            record: Some(v1::import_record::Record::Person(
                v1::RegisterPersonRequest {
                    request_id: format!("crash-import-{cycle}-{n}"),
                    display_name: format!("Crash import {cycle}-{n}"),
                    ..Default::default()
                },
            )),
        })
        .collect()
}

/// Streams `records` in messages of 100 records.
async fn send_import(
    client: &Client,
    records: Vec<v1::ImportRecord>,
) -> Result<v1::ImportRecordsResponse, tonic::Status> {
    let messages: Vec<v1::ImportRecordsRequest> = records
        .chunks(100)
        .map(|chunk| v1::ImportRecordsRequest {
            records: chunk.to_vec(),
        })
        .collect();
    let answer = client
        .command()
        .import_records(tokio_stream::iter(messages))
        .await?;
    Ok(answer.into_inner())
}

/// Waits (up to `patience`) until a snapshot's temporary file exists in the store's
/// snapshot directory.
async fn saving_snapshot(store: &Store, patience: Duration) -> bool {
    let Store::Embedded(dir) = store else {
        return false;
    };
    let started = Instant::now();
    while started.elapsed() < patience {
        if temporary_snapshot(dir) {
            return true;
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    false
}

fn temporary_snapshot(dir: &Path) -> bool {
    std::fs::read_dir(dir.join("snapshots")).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.path().extension().is_some_and(|x| x == "tmp"))
    })
}

/// Every name of `expected` is held by exactly one person (with the resource its answer
/// named), and no person of the harness's is held that was not expected.
async fn check(client: &Client, expected: &Expected, min_position: &str) -> Result<(), String> {
    let mut held: HashMap<String, Vec<String>> = HashMap::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .query()
            .list_persons(v1::ListPersonsRequest {
                date: "2026-01-01".into(),
                min_position: min_position.to_owned(),
                page_size: 10_000,
                page_token,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("listing the persons failed: {e}"))?
            .into_inner();
        for person in page.persons {
            if person.display_name.starts_with("Crash ")
                && !person.display_name.starts_with("Crash probe")
            {
                held.entry(person.display_name)
                    .or_default()
                    .push(person.name);
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    for (display_name, name) in &expected.0 {
        match held.get(display_name).map(Vec::as_slice) {
            None | Some([]) => {
                return Err(format!("{display_name:?} was acknowledged and is lost"))
            }
            Some([one]) => {
                if name.as_ref().is_some_and(|name| name != one) {
                    return Err(format!(
                        "{display_name:?} is {one}, not {name:?} as its answer said"
                    ));
                }
            }
            Some(many) => return Err(format!("{display_name:?} is recorded {} times", many.len())),
        }
    }
    if let Some(stray) = held.keys().find(|name| !expected.0.contains_key(*name)) {
        return Err(format!(
            "{stray:?} is recorded but was never acknowledged or retried"
        ));
    }
    Ok(())
}

/// Verifies the store's log offline; the events verified.
async fn verify(store: &Store) -> Result<u64, String> {
    use registry_eventstore::verify::{verify_embedded, verify_postgres, VerifyOptions};
    let report = match store {
        Store::Embedded(dir) => {
            let key = std::fs::read_to_string(dir.join("log.pub")).map_err(|e| e.to_string())?;
            let options = VerifyOptions {
                keys: vec![registry_ledger::VerifierKey::parse(&key).map_err(|e| e.to_string())?],
                strict: true,
                grace: Duration::from_secs(10),
            };
            verify_embedded(&dir.join("registry.db"), &options)
        }
        Store::Postgres(server, dir) => {
            let text = std::fs::read_to_string(log_key(dir)?).map_err(|e| e.to_string())?;
            let key = registry_ledger::SigningKey::parse(text.trim()).map_err(|e| e.to_string())?;
            let options = VerifyOptions {
                keys: vec![key.verifier()],
                strict: true,
                grace: Duration::from_secs(10),
            };
            verify_postgres(&server.url(), "crash", &options).await
        }
    }
    .map_err(|e| format!("the store does not verify: {e}"))?;
    if report.is_clean() {
        Ok(report.events)
    } else {
        Err(format!("the log found {:?}", report.findings))
    }
}
