//! The end-to-end harness: starts real `registryd` processes on ephemeral ports and connects
//! real gRPC clients to them.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use registry_client::{request_id, v1, Client};

/// A running `registryd` (this package's binary).
pub struct Daemon(registry_testkit::daemon::Daemon);

impl std::ops::Deref for Daemon {
    type Target = registry_testkit::daemon::Daemon;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Daemon {
    fn binary() -> PathBuf {
        registry_testkit::daemon::registryd_binary()
    }

    /// Starts `registryd` with `args` (plus `--listen 127.0.0.1:0`) and waits until it listens.
    pub fn start(args: &[&str]) -> Self {
        Self(registry_testkit::daemon::Daemon::start(
            &Self::binary(),
            args,
        ))
    }

    /// Starts `command` (`registryd` itself, or what runs it) and waits until it listens.
    pub fn spawn(command: std::process::Command) -> Self {
        Self(registry_testkit::daemon::Daemon::spawn(command, "warn"))
    }

    /// Starts `registryd` on the embedded store in `dir`.
    pub fn embedded(dir: &Path, extra: &[&str]) -> Self {
        Self(registry_testkit::daemon::Daemon::embedded(
            &Self::binary(),
            dir,
            extra,
        ))
    }

    /// A client recording writes as `e2e-test`.
    pub async fn client(&self) -> Client {
        for _ in 0..50 {
            if let Ok(client) = Client::connect(&self.address).await {
                return client.with_actor("e2e-test").unwrap();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("cannot connect to {}", self.address);
    }

    /// Asks the daemon to stop (SIGTERM) and waits for it; returns its exit code.
    pub fn stop(self) -> Option<i32> {
        self.0.stop()
    }

    /// Kills the daemon (SIGKILL), as a crash would.
    pub fn kill_now(self) {
        self.0.kill()
    }
}

/// One microsecond before `t`: "as known just before" a recorded instant.
pub fn just_before(mut t: prost_types::Timestamp) -> prost_types::Timestamp {
    if t.nanos >= 1_000 {
        t.nanos -= 1_000;
    } else {
        t.seconds -= 1;
        t.nanos += 999_999_000;
    }
    t
}

/// The store's statistics as the server `client` talks to sees them.
pub async fn store_stats(client: &Client) -> v1::GetStoreStatsResponse {
    client
        .admin()
        .get_store_stats(v1::GetStoreStatsRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// A legal basis for test records.
pub fn basis(number: &str) -> v1::LegalBasis {
    v1::LegalBasis {
        number: number.into(),
        issued_on: "2020-01-01".into(),
        issuer: "Ban Thường vụ Tỉnh ủy".into(),
        effective_on: String::new(),
    }
}

/// Short helpers that record the usual things and return the new resource's name.
pub struct Registrar {
    /// The client.
    pub client: Client,
    /// The position of the last write.
    pub last: String,
}

impl Registrar {
    /// Over `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            last: String::new(),
        }
    }

    fn done(&mut self, result: Option<v1::WriteResult>) -> v1::WriteResult {
        let result = result.expect("a write result");
        self.last = result.commit_position.clone();
        result
    }

    /// A commune, its People's Committee and the committee's Chair (a sole office); returns
    /// (commune, committee, chair).
    pub async fn commune_with_chair(&mut self, name: &str) -> (String, String, String) {
        use v1::{CapacityKind, Level, OfficeKind, UnitKind};
        let area = self
            .unit(UnitKind::AdministrativeArea, Level::Commune, name, &[])
            .await;
        let committee = self
            .unit(
                UnitKind::PeoplesCommittee,
                Level::Commune,
                &format!("UBND {name}"),
                &[&area],
            )
            .await;
        let chair = self
            .office(
                &committee,
                &format!("Chủ tịch UBND {name}"),
                OfficeKind::Chair,
                CapacityKind::Sole,
                0,
            )
            .await;
        (area, committee, chair)
    }

    /// Establishes a unit on 1963-10-30.
    pub async fn unit(
        &mut self,
        kind: v1::UnitKind,
        level: v1::Level,
        name: &str,
        parents: &[&str],
    ) -> String {
        let response = self
            .client
            .command()
            .establish_unit(v1::EstablishUnitRequest {
                request_id: request_id(),
                kind: kind as i32,
                level: level as i32,
                display_name: name.into(),
                parents: parents.iter().map(|p| (*p).to_owned()).collect(),
                valid_from: "1963-10-30".into(),
                basis: Some(basis("1/QĐ")),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("establish {name}: {e}"))
            .into_inner();
        self.done(response.result).name
    }

    /// Creates an office on 1963-10-30.
    pub async fn office(
        &mut self,
        unit: &str,
        title: &str,
        kind: v1::OfficeKind,
        capacity: v1::CapacityKind,
        limit: u32,
    ) -> String {
        let response = self
            .client
            .command()
            .create_office(v1::CreateOfficeRequest {
                request_id: request_id(),
                unit: unit.into(),
                title: title.into(),
                kind: kind as i32,
                capacity: Some(v1::Capacity {
                    kind: capacity as i32,
                    limit,
                }),
                valid_from: "1963-10-30".into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("create {title}: {e}"))
            .into_inner();
        self.done(response.result).name
    }

    /// Registers a person.
    pub async fn person(&mut self, name: &str) -> String {
        let response = self
            .client
            .command()
            .register_person(v1::RegisterPersonRequest {
                request_id: request_id(),
                display_name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("register {name}: {e}"))
            .into_inner();
        self.done(response.result).name
    }

    /// Starts a holding; `cause` makes it concurrent.
    pub async fn hold(
        &mut self,
        person: &str,
        office: &str,
        from: &str,
        cause: Option<&str>,
    ) -> v1::WriteResult {
        let beginning = if cause.is_some() {
            v1::BeginningKind::Concurrent
        } else {
            v1::BeginningKind::Elected
        };
        let response = self
            .client
            .command()
            .start_holding(v1::StartHoldingRequest {
                request_id: request_id(),
                person: person.into(),
                office: office.into(),
                valid_from: from.into(),
                beginning: beginning as i32,
                cause: cause.unwrap_or_default().into(),
                basis: Some(basis("12-QĐ/TU")),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("hold {office}: {e}"))
            .into_inner();
        self.done(response.result)
    }

    /// Defines a concurrent-offices model.
    pub async fn concurrent_model(
        &mut self,
        name: &str,
        roles: &[(v1::UnitKind, v1::OfficeKind)],
    ) -> String {
        let response = self
            .client
            .command()
            .define_model(v1::DefineModelRequest {
                request_id: request_id(),
                display_name: name.into(),
                arrangement: Some(v1::Arrangement {
                    kind: Some(v1::arrangement::Kind::ConcurrentOffices(
                        v1::ConcurrentOffices {
                            roles: roles
                                .iter()
                                .map(|(u, o)| v1::Role {
                                    unit_kind: *u as i32,
                                    office_kind: *o as i32,
                                })
                                .collect(),
                        },
                    )),
                }),
                authorised_by: Some(basis("Kết luận 1/TW")),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("define {name}: {e}"))
            .into_inner();
        self.done(response.result).name
    }

    /// Adopts a model in a unit.
    pub async fn adopt(&mut self, model: &str, unit: &str, on: &str) -> String {
        let response = self
            .client
            .command()
            .adopt_model(v1::AdoptModelRequest {
                request_id: request_id(),
                model: model.into(),
                unit: unit.into(),
                valid_from: on.into(),
                basis: Some(basis("5-NQ/TU")),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("adopt {model}: {e}"))
            .into_inner();
        self.done(response.result).name
    }
}

/// The holdings of an office on a date, once the replica reached `min_position` (may be empty).
pub async fn holders(
    client: &Client,
    office: &str,
    date: &str,
    min_position: &str,
) -> Vec<v1::Holding> {
    client
        .query()
        .get_office_holders(v1::GetOfficeHoldersRequest {
            office: office.into(),
            date: date.into(),
            min_position: min_position.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .holdings
}

/// The PostgreSQL URL for tests, or `None` (with a visible notice) when none is reachable and
/// `REGISTRY_REQUIRE_POSTGRES` is not `1` (then the test fails instead).
pub async fn postgres() -> Option<String> {
    let url = std::env::var("REGISTRY_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            drop(client);
            Some(url)
        }
        Err(e) => {
            if std::env::var("REGISTRY_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("PostgreSQL is required (REGISTRY_REQUIRE_POSTGRES=1) but {url} is unreachable: {e}");
            }
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "NOTICE: PostgreSQL unreachable at {url} ({e}); skipping this test"
            );
            None
        }
    }
}

/// Drops a test schema.
pub async fn drop_schema(url: &str, schema: &str) {
    if let Ok((client, connection)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await {
        tokio::spawn(connection);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await;
    }
}

/// Waits until the replica behind `client` has applied the write at `position`.
pub async fn await_position(client: &Client, position: &str) {
    client
        .query()
        .list_persons(v1::ListPersonsRequest {
            date: "2024-01-01".into(),
            page_size: 1,
            min_position: position.into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// A loopback address no one listens on now, for a daemon's metrics.
pub fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// The Prometheus text a daemon serves at `address` (`GET /metrics`), once it answers.
pub async fn scrape(address: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for _ in 0..50 {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(address).await {
            stream
                // HTTP/1.0: the answer is not chunked, and the connection closes after it.
                .write_all(b"GET /metrics HTTP/1.0\r\nHost: test\r\n\r\n")
                .await
                .unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.unwrap();
            assert!(answer.contains(" 200 OK"), "{answer}");
            return answer
                .split_once("\r\n\r\n")
                .map(|(_, body)| body.to_owned())
                .unwrap_or_default();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no metrics at {address}");
}

/// The value of the sample `name` whose labels include every `labels` pair, if there is one.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
            let has = |(key, value): &(&str, &str)| rest.contains(&format!("{key}=\"{value}\""));
            (metric == name && labels.iter().all(has)).then(|| value.parse().ok())?
        })
}

/// A PostgreSQL primary and hot standby of this test's own, or `None` (with a visible notice)
/// when the machine cannot build one and `REGISTRY_REQUIRE_POSTGRES` is not `1` (then the test
/// fails instead).
pub fn replicated(
    synchronous: bool,
    listen: &[&str],
    hba: Option<&str>,
) -> Option<registry_testkit::pgcluster::Replicated> {
    match registry_testkit::pgcluster::Replicated::start(synchronous, listen, hba) {
        Ok(pair) => Some(pair),
        Err(e) => {
            if std::env::var("REGISTRY_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("a PostgreSQL primary and standby are required (REGISTRY_REQUIRE_POSTGRES=1) but: {e}");
            }
            eprintln!(
                "NOTICE: cannot build a PostgreSQL primary and standby ({e}); skipping this test"
            );
            None
        }
    }
}

/// A PostgreSQL server of this test's own (it may stop and crash it), or `None` as for
/// [`replicated`].
pub fn single_server() -> Option<registry_testkit::pgcluster::Single> {
    match registry_testkit::pgcluster::Single::start() {
        Ok(server) => Some(server),
        Err(e) => {
            if std::env::var("REGISTRY_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("a PostgreSQL server of the test's own is required (REGISTRY_REQUIRE_POSTGRES=1) but: {e}");
            }
            eprintln!("NOTICE: cannot build a PostgreSQL server ({e}); skipping this test");
            None
        }
    }
}
