//! The access table: every RPC of the API, and every auditors' page (a read), called over real
//! sockets by six callers (anonymous, a reader, an auditor, the registrar of province A, the
//! registrar of province B, an administrator), with bearer tokens over TLS and with client certificates under mutual TLS,
//! each cell's status compared with what the example policy's rules say, and the store's head
//! unchanged after every refusal.
//!
//! Each write cell gets a fresh record to act on (made by the administrator first), all in or
//! under province A, so that a refusal is the policy's and an acceptance is the registry's.
//! The certificates are made here (`rcgen`): a CA, the server's, one per caller.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use registry_client::{request_id, v1, Client, Tls};
use registry_testkit::tokens::{Claims, Issuer, AUDIENCE, ISSUER};
use support::{basis, Daemon};
use tonic::Code;
use v1::import_record::Record;

/// The callers, in the table's column order.
const CALLERS: [&str; 6] = [
    "anonymous",
    "reader",
    "auditor",
    "registrar-a",
    "registrar-b",
    "admin",
];

/// What an RPC does, as the policy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Read,
    Audit,
    Operate,
    Define,
    /// A write on units, offices, holdings or persons in province A.
    InA,
    /// A write that touches no unit (registering a person, an alias).
    Unitless,
    WhoAmI,
}

/// A cell's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Unauthenticated,
    Denied,
    /// Turned away at the TLS handshake (no certificate where one is required).
    Handshake,
    /// Any other status: a failure of the test's own requests.
    Other(Code),
}

/// What the example policy's rules say `caller` gets for an RPC of `class`.
fn expected(caller: &str, class: Class, tokens: bool) -> Outcome {
    use Class::*;
    let allowed = match caller {
        "anonymous" => {
            return if tokens {
                Outcome::Unauthenticated
            } else {
                Outcome::Handshake
            }
        }
        "reader" => matches!(class, Read | WhoAmI),
        "auditor" => matches!(class, Read | Audit | WhoAmI),
        "registrar-a" => matches!(class, Read | InA | Unitless | WhoAmI),
        "registrar-b" => matches!(class, Read | Unitless | WhoAmI),
        "admin" => true,
        other => panic!("unknown caller {other}"),
    };
    if allowed {
        Outcome::Ok
    } else {
        Outcome::Denied
    }
}

/// The RPCs, each with its class.
const RPCS: [(&str, Class); 50] = [
    ("RegisterPerson", Class::Unitless),
    ("RenamePerson", Class::InA),
    ("AddPersonAlias", Class::Unitless),
    ("EstablishUnit", Class::InA),
    ("RenameUnit", Class::InA),
    ("MoveUnit", Class::InA),
    ("ReorganiseUnits", Class::InA),
    ("CreateOffice", Class::InA),
    ("AbolishOffice", Class::InA),
    ("StartHolding", Class::InA),
    ("EndHolding", Class::InA),
    ("DefineModel", Class::Define),
    ("AdoptModel", Class::InA),
    ("WithdrawModel", Class::InA),
    ("OpenTerm", Class::InA),
    ("ImportRecords", Class::InA),
    ("CorrectPerson", Class::InA),
    ("CorrectOffice", Class::InA),
    ("CorrectHolding", Class::InA),
    ("RetractRecord", Class::InA),
    ("RebuildProjections", Class::Operate),
    ("GetStoreStats", Class::Operate),
    ("GetOfficeHolders", Class::Read),
    ("GetHolding", Class::Read),
    ("ListHoldings", Class::Read),
    ("ListOfficeHistory", Class::Read),
    ("ListPersonOffices", Class::Read),
    ("ListPersonCareer", Class::Read),
    ("BatchGetOfficeHolders", Class::Read),
    ("BatchListPersonOffices", Class::Read),
    ("GetPerson", Class::Read),
    ("SearchPersons", Class::Read),
    ("GetOffice", Class::Read),
    ("ListOffices", Class::Read),
    ("ListUnits", Class::Read),
    ("ListPersons", Class::Read),
    ("GetUnit", Class::Read),
    ("ListUnitTree", Class::Read),
    ("GetUnitLineage", Class::Read),
    ("GetModelCoverage", Class::Read),
    ("ListResourceHistory", Class::Audit),
    ("ListChanges", Class::Audit),
    ("ListIrregularities", Class::Audit),
    ("StreamChanges", Class::Audit),
    ("GetCheckpoint", Class::Read),
    ("GetInclusionProof", Class::Audit),
    ("GetConsistencyProof", Class::Read),
    ("AddCosignature", Class::Read),
    ("ProveResources", Class::Audit),
    ("WhoAmI", Class::WhoAmI),
];

/// The records every cell may read: units of province A, an office with a holder, a model.
struct Base {
    a: String,
    x: String,
    d: String,
    office: String,
    person: String,
    holding: String,
    model: String,
}

/// A CA, the server's certificate, and a certificate for each caller but the anonymous one.
struct Pki {
    ca: Vec<u8>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    server: (Vec<u8>, Vec<u8>),
    callers: BTreeMap<&'static str, (Vec<u8>, Vec<u8>)>,
}

/// A new CA named `name`: its certificate (PEM) and what signs with it.
fn ca(name: &str) -> (Vec<u8>, rcgen::Issuer<'static, rcgen::KeyPair>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).unwrap();
    (cert.pem().into_bytes(), rcgen::Issuer::new(params, key))
}

/// A certificate for `name` signed by `issuer`, with serial number `serial`: (cert, key) PEM.
fn leaf(
    issuer: &rcgen::Issuer<'static, rcgen::KeyPair>,
    name: &str,
    serial: u64,
    server: bool,
) -> (Vec<u8>, Vec<u8>) {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
    let key = KeyPair::generate().unwrap();
    let names = if server {
        vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
    } else {
        vec![]
    };
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.serial_number = Some(serial.into());
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem().into_bytes(), key.serialize_pem().into_bytes())
}

fn pki() -> Pki {
    let (ca, issuer) = ca("access test CA");
    let server = leaf(&issuer, "registryd", 1, true);
    let callers = CALLERS[1..]
        .iter()
        .zip(10..)
        .map(|(c, serial)| (*c, leaf(&issuer, c, serial, false)))
        .collect();
    Pki {
        ca,
        issuer,
        server,
        callers,
    }
}

/// A revocation list of the CA revoking the certificates with these serial numbers (PEM).
fn crl(pki: &Pki, revoked: &[u64]) -> Vec<u8> {
    use rcgen::{date_time_ymd, CertificateRevocationListParams, KeyIdMethod, RevokedCertParams};
    CertificateRevocationListParams {
        this_update: date_time_ymd(2025, 1, 1),
        next_update: date_time_ymd(2125, 1, 1),
        crl_number: 1.into(),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|serial| RevokedCertParams {
                serial_number: (*serial).into(),
                revocation_time: date_time_ymd(2025, 6, 1),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&pki.issuer)
    .unwrap()
    .pem()
    .unwrap()
    .into_bytes()
}

/// Writes the policy (the example's rules; A's and B's scopes as given), the key file, the
/// certificates; starts `registryd` with them.
/// The witness the registry under test accepts (the key of sumdb/note's published example).
fn witness() -> registry_ledger::SigningKey {
    registry_ledger::SigningKey::parse(
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
    )
    .and_then(|key| key.as_cosigner())
    .unwrap()
}

fn start(
    dir: &Path,
    pki: &Pki,
    issuer: Option<&Issuer>,
    (a, b): (&str, &str),
    extra: &[&str],
) -> Daemon {
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let rules = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/access/registry.cedar"),
    )
    .unwrap();
    write("registry.cedar", &rules);
    let tokens = match issuer {
        Some(issuer) => {
            write("keys.jwks", issuer.jwks().as_bytes());
            format!("[tokens]\njwks = \"keys.jwks\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n")
        }
        None => String::new(),
    };
    let policy = write(
        "policy.toml",
        format!(
            r#"rules = "registry.cedar"
{tokens}
[agencies.ministry]
scopes = []
[agencies.a]
scopes = ["{a}"]
[agencies.b]
scopes = ["{b}"]
[agencies.audit]
scopes = []
[callers.reader]
roles = ["reader"]
[callers.auditor]
roles = ["auditor"]
agency = "audit"
[callers.registrar-a]
roles = ["registrar"]
agency = "a"
[callers.registrar-b]
roles = ["registrar"]
agency = "b"
[callers.admin]
roles = ["admin"]
agency = "ministry"
[callers.limited]
roles = ["reader"]
limits = {{ per_second = 1, burst = 3 }}
"#
        )
        .as_bytes(),
    );
    let cert = write("server.pem", &pki.server.0);
    let key = write("server.key", &pki.server.1);
    let ca = write("ca.pem", &pki.ca);
    let witnesses = write(
        "witnesses.pub",
        format!("{}\n", witness().verifier()).as_bytes(),
    );
    let mut args = vec![
        "--log-witnesses",
        &witnesses,
        "--policy",
        &policy,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-client-ca",
        &ca,
    ];
    args.extend(extra);
    Daemon::embedded(&dir.join("data"), &args)
}

/// A client for `caller`: by token (with no certificate) or by certificate.
async fn client(
    daemon: &Daemon,
    pki: &Pki,
    caller: &str,
    issuer: Option<&Issuer>,
) -> Option<Client> {
    let address = daemon.address.replace("http://", "https://");
    let tls = Tls {
        ca: Some(pki.ca.clone()),
        identity: match issuer {
            Some(_) => None,
            None => pki.callers.get(caller).cloned(),
        },
    };
    let client = Client::connect_with(&address, &tls).await.ok()?;
    Some(match (issuer, caller) {
        (Some(issuer), c) if c != "anonymous" => client.with_token(&issuer.token(c)).unwrap(),
        _ => client,
    })
}

fn status_outcome(status: &tonic::Status) -> Outcome {
    match status.code() {
        Code::Unauthenticated => Outcome::Unauthenticated,
        Code::PermissionDenied => Outcome::Denied,
        // The handshake failed under the call: the server wanted a certificate.
        Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled
            if !status.message().contains("registry") =>
        {
            Outcome::Handshake
        }
        code => Outcome::Other(code),
    }
}

fn amendment() -> Option<v1::Amendment> {
    Some(v1::Amendment {
        reason: "access table".into(),
        basis: None,
    })
}

/// Records made by the administrator for one cell, and the store's head once they are made.
struct Prep<'a> {
    admin: &'a Client,
    base: &'a Base,
    marked: std::sync::Mutex<String>,
}

impl<'a> Prep<'a> {
    fn new(admin: &'a Client, base: &'a Base) -> Self {
        Self {
            admin,
            base,
            marked: std::sync::Mutex::default(),
        }
    }

    /// Notes the store's head: the cell's own call comes next.
    async fn mark(&self) {
        let now = head(self.admin).await;
        *self.marked.lock().unwrap() = now;
    }

    async fn unit(&self, parent: &str, level: v1::Level, kind: v1::UnitKind) -> String {
        self.admin
            .command()
            .establish_unit(v1::EstablishUnitRequest {
                request_id: request_id(),
                kind: kind as i32,
                level: level as i32,
                display_name: "Xã thử".into(),
                parents: vec![parent.to_owned()],
                valid_from: "2000-01-01".into(),
                basis: Some(basis("1/QĐ")),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .result
            .unwrap()
            .name
    }

    async fn commune(&self) -> String {
        self.unit(
            &self.base.a,
            v1::Level::Commune,
            v1::UnitKind::AdministrativeArea,
        )
        .await
    }

    async fn office(&self) -> String {
        self.admin
            .command()
            .create_office(vice_chair_in(&self.base.x))
            .await
            .unwrap()
            .into_inner()
            .result
            .unwrap()
            .name
    }

    async fn person(&self) -> String {
        self.admin
            .command()
            .register_person(v1::RegisterPersonRequest {
                request_id: request_id(),
                display_name: "Lê Văn Thử".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .result
            .unwrap()
            .name
    }

    /// A person holding a fresh office in X from 2020-01-01: (person, office, holding).
    async fn holder(&self) -> (String, String, String) {
        let (person, office) = (self.person().await, self.office().await);
        let holding = self
            .admin
            .command()
            .start_holding(v1::StartHoldingRequest {
                request_id: request_id(),
                person: person.clone(),
                office: office.clone(),
                valid_from: "2020-01-01".into(),
                beginning: v1::BeginningKind::Appointed as i32,
                basis: Some(basis("2/QĐ")),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .result
            .unwrap()
            .name;
        (person, office, holding)
    }

    async fn adoption(&self, unit: &str) -> String {
        self.admin
            .command()
            .adopt_model(adopt(&self.base.model, unit))
            .await
            .unwrap()
            .into_inner()
            .result
            .unwrap()
            .name
    }
}

/// A new Vice Chair's office in `unit`, from 2000.
fn vice_chair_in(unit: &str) -> v1::CreateOfficeRequest {
    v1::CreateOfficeRequest {
        request_id: request_id(),
        unit: unit.into(),
        title: "Phó Chủ tịch".into(),
        kind: v1::OfficeKind::ViceChair as i32,
        capacity: Some(v1::Capacity {
            kind: v1::CapacityKind::Sole as i32,
            limit: 0,
        }),
        valid_from: "2000-01-01".into(),
        ..Default::default()
    }
}

fn adopt(model: &str, unit: &str) -> v1::AdoptModelRequest {
    v1::AdoptModelRequest {
        request_id: request_id(),
        model: model.into(),
        unit: unit.into(),
        valid_from: "2021-01-01".into(),
        basis: Some(basis("5-NQ/TU")),
        ..Default::default()
    }
}

/// Calls `rpc` as `who`, on fresh records the administrator made first where it writes.
async fn call(rpc: &str, who: &Client, prep: &Prep<'_>) -> Result<(), tonic::Status> {
    let base = prep.base;
    let (mut command, mut query, mut audit, mut admin) =
        (who.command(), who.query(), who.audit(), who.admin());
    let date = || "2024-01-01".to_owned();
    prep.mark().await;
    match rpc {
        "RegisterPerson" => {
            command
                .register_person(v1::RegisterPersonRequest {
                    request_id: request_id(),
                    display_name: "Phạm Thị Mới".into(),
                    ..Default::default()
                })
                .await?;
        }
        "RenamePerson" => {
            let (person, _, _) = prep.holder().await;
            prep.mark().await;
            command
                .rename_person(v1::RenamePersonRequest {
                    request_id: request_id(),
                    person,
                    display_name: "Lê Văn Đổi".into(),
                    valid_from: "2024-01-01".into(),
                })
                .await?;
        }
        "AddPersonAlias" => {
            command
                .add_person_alias(v1::AddPersonAliasRequest {
                    request_id: request_id(),
                    person: base.person.clone(),
                    alias: format!("Bí danh {}", request_id()),
                })
                .await?;
        }
        "EstablishUnit" => {
            command
                .establish_unit(v1::EstablishUnitRequest {
                    request_id: request_id(),
                    kind: v1::UnitKind::AdministrativeArea as i32,
                    level: v1::Level::Commune as i32,
                    display_name: "Xã mới".into(),
                    parents: vec![base.a.clone()],
                    valid_from: "2001-01-01".into(),
                    basis: Some(basis("3/QĐ")),
                    ..Default::default()
                })
                .await?;
        }
        "RenameUnit" => {
            let unit = prep.commune().await;
            prep.mark().await;
            command
                .rename_unit(v1::RenameUnitRequest {
                    request_id: request_id(),
                    unit,
                    display_name: "Xã đổi tên".into(),
                    valid_from: "2010-01-01".into(),
                    basis: Some(basis("4/QĐ")),
                })
                .await?;
        }
        "MoveUnit" => {
            let unit = prep.commune().await;
            prep.mark().await;
            command
                .move_unit(v1::MoveUnitRequest {
                    request_id: request_id(),
                    unit,
                    parents: vec![base.d.clone()],
                    valid_from: "2010-01-01".into(),
                    basis: Some(basis("5/QĐ")),
                })
                .await?;
        }
        "ReorganiseUnits" => {
            let (one, two) = (prep.commune().await, prep.commune().await);
            prep.mark().await;
            command
                .reorganise_units(v1::ReorganiseUnitsRequest {
                    request_id: request_id(),
                    ending: v1::UnitEnding::Merged as i32,
                    predecessors: vec![one, two],
                    successors: vec![v1::Successor {
                        successor: Some(v1::successor::Successor::NewUnit(v1::NewUnit {
                            unit_id: String::new(),
                            kind: v1::UnitKind::AdministrativeArea as i32,
                            level: v1::Level::Commune as i32,
                            display_name: "Xã hợp nhất".into(),
                            parents: vec![base.a.clone()],
                        })),
                    }],
                    valid_from: "2015-01-01".into(),
                    basis: Some(basis("6/NQ")),
                    offices: vec![],
                    children: vec![],
                })
                .await?;
        }
        "CreateOffice" => {
            command.create_office(vice_chair_in(&base.x)).await?;
        }
        "AbolishOffice" => {
            let office = prep.office().await;
            prep.mark().await;
            command
                .abolish_office(v1::AbolishOfficeRequest {
                    request_id: request_id(),
                    office,
                    valid_from: "2022-01-01".into(),
                    basis: Some(basis("7/QĐ")),
                })
                .await?;
        }
        "StartHolding" => {
            let (person, office) = (prep.person().await, prep.office().await);
            prep.mark().await;
            command
                .start_holding(v1::StartHoldingRequest {
                    request_id: request_id(),
                    person,
                    office,
                    valid_from: "2020-01-01".into(),
                    beginning: v1::BeginningKind::Appointed as i32,
                    basis: Some(basis("8/QĐ")),
                    ..Default::default()
                })
                .await?;
        }
        "EndHolding" => {
            let (_, _, holding) = prep.holder().await;
            prep.mark().await;
            command
                .end_holding(v1::EndHoldingRequest {
                    request_id: request_id(),
                    holding,
                    valid_until: "2023-01-01".into(),
                    reason: v1::EndReason::Transfer as i32,
                    ..Default::default()
                })
                .await?;
        }
        "DefineModel" => {
            command
                .define_model(v1::DefineModelRequest {
                    request_id: request_id(),
                    display_name: "Mô hình thử".into(),
                    arrangement: Some(concurrent()),
                    authorised_by: Some(basis("Kết luận 2/TW")),
                    ..Default::default()
                })
                .await?;
        }
        "AdoptModel" => {
            let unit = prep.commune().await;
            prep.mark().await;
            command.adopt_model(adopt(&base.model, &unit)).await?;
        }
        "WithdrawModel" => {
            let unit = prep.commune().await;
            let adoption = prep.adoption(&unit).await;
            prep.mark().await;
            command
                .withdraw_model(v1::WithdrawModelRequest {
                    request_id: request_id(),
                    adoption,
                    valid_from: "2023-01-01".into(),
                    basis: Some(basis("9/NQ")),
                })
                .await?;
        }
        "OpenTerm" => {
            let body = prep
                .unit(&base.x, v1::Level::Commune, v1::UnitKind::PeoplesCouncil)
                .await;
            prep.mark().await;
            command
                .open_term(v1::OpenTermRequest {
                    request_id: request_id(),
                    body,
                    label: "2021-2026".into(),
                    valid_from: "2021-07-01".into(),
                    ..Default::default()
                })
                .await?;
        }
        "ImportRecords" => {
            let record = v1::ImportRecord {
                record: Some(Record::Office(vice_chair_in(&base.x))),
            };
            let stream = futures::stream::iter([v1::ImportRecordsRequest {
                records: vec![record],
            }]);
            command.import_records(stream).await?;
        }
        "CorrectPerson" => {
            let (person, _, _) = prep.holder().await;
            prep.mark().await;
            admin
                .correct_person(v1::CorrectPersonRequest {
                    request_id: request_id(),
                    person,
                    display_name: "Lê Văn Sửa".into(),
                    amendment: amendment(),
                    ..Default::default()
                })
                .await?;
        }
        "CorrectOffice" => {
            let office = prep.office().await;
            prep.mark().await;
            admin
                .correct_office(v1::CorrectOfficeRequest {
                    request_id: request_id(),
                    office,
                    title: "Phó Chủ tịch thường trực".into(),
                    amendment: amendment(),
                    ..Default::default()
                })
                .await?;
        }
        "CorrectHolding" => {
            let (_, _, holding) = prep.holder().await;
            prep.mark().await;
            admin
                .correct_holding(v1::CorrectHoldingRequest {
                    request_id: request_id(),
                    holding,
                    valid_from: "2020-02-01".into(),
                    amendment: amendment(),
                    ..Default::default()
                })
                .await?;
        }
        "RetractRecord" => {
            let office = prep.office().await;
            prep.mark().await;
            admin
                .retract_record(v1::RetractRecordRequest {
                    request_id: request_id(),
                    name: office,
                    amendment: amendment(),
                })
                .await?;
        }
        "RebuildProjections" => {
            admin
                .rebuild_projections(v1::RebuildProjectionsRequest {})
                .await?;
        }
        "GetStoreStats" => {
            admin.get_store_stats(v1::GetStoreStatsRequest {}).await?;
        }
        "GetOfficeHolders" => {
            query
                .get_office_holders(v1::GetOfficeHoldersRequest {
                    office: base.office.clone(),
                    date: date(),
                    ..Default::default()
                })
                .await?;
        }
        "GetHolding" => {
            query
                .get_holding(v1::GetHoldingRequest {
                    name: base.holding.clone(),
                    ..Default::default()
                })
                .await?;
        }
        "ListHoldings" => {
            query
                .list_holdings(v1::ListHoldingsRequest {
                    date: date(),
                    ..Default::default()
                })
                .await?;
        }
        "ListOfficeHistory" => {
            query
                .list_office_history(v1::ListOfficeHistoryRequest {
                    office: base.office.clone(),
                    ..Default::default()
                })
                .await?;
        }
        "ListPersonOffices" => {
            query
                .list_person_offices(v1::ListPersonOfficesRequest {
                    person: base.person.clone(),
                    date: date(),
                    ..Default::default()
                })
                .await?;
        }
        "BatchGetOfficeHolders" => {
            query
                .batch_get_office_holders(v1::BatchGetOfficeHoldersRequest {
                    requests: vec![v1::GetOfficeHoldersRequest {
                        office: base.office.clone(),
                        date: date(),
                        ..Default::default()
                    }],
                })
                .await?;
        }
        "BatchListPersonOffices" => {
            query
                .batch_list_person_offices(v1::BatchListPersonOfficesRequest {
                    requests: vec![v1::ListPersonOfficesRequest {
                        person: base.person.clone(),
                        date: date(),
                        ..Default::default()
                    }],
                })
                .await?;
        }
        "ListPersonCareer" => {
            query
                .list_person_career(v1::ListPersonCareerRequest {
                    person: base.person.clone(),
                    ..Default::default()
                })
                .await?;
        }
        "GetPerson" => {
            query
                .get_person(v1::GetPersonRequest {
                    name: base.person.clone(),
                    date: date(),
                    ..Default::default()
                })
                .await?;
        }
        "SearchPersons" => {
            query
                .search_persons(v1::SearchPersonsRequest {
                    query: "Nguyễn".into(),
                    ..Default::default()
                })
                .await?;
        }
        "GetOffice" => {
            query
                .get_office(v1::GetOfficeRequest {
                    name: base.office.clone(),
                    date: date(),
                    ..Default::default()
                })
                .await?;
        }
        "ListOffices" => {
            query
                .list_offices(v1::ListOfficesRequest {
                    date: date(),
                    ..Default::default()
                })
                .await?;
        }
        "ListUnits" => {
            query
                .list_units(v1::ListUnitsRequest {
                    date: date(),
                    ..Default::default()
                })
                .await?;
        }
        "ListPersons" => {
            query
                .list_persons(v1::ListPersonsRequest {
                    date: date(),
                    ..Default::default()
                })
                .await?;
        }
        "GetUnit" => {
            query
                .get_unit(v1::GetUnitRequest {
                    name: base.x.clone(),
                    date: date(),
                    ..Default::default()
                })
                .await?;
        }
        "ListUnitTree" => {
            query
                .list_unit_tree(v1::ListUnitTreeRequest {
                    root: base.a.clone(),
                    date: date(),
                    ..Default::default()
                })
                .await?;
        }
        "GetUnitLineage" => {
            query
                .get_unit_lineage(v1::GetUnitLineageRequest {
                    name: base.x.clone(),
                    ..Default::default()
                })
                .await?;
        }
        "GetModelCoverage" => {
            query
                .get_model_coverage(v1::GetModelCoverageRequest {
                    model: base.model.clone(),
                    jurisdiction: base.a.clone(),
                    level: v1::Level::Commune as i32,
                    date: date(),
                    ..Default::default()
                })
                .await?;
        }
        "ListResourceHistory" => {
            audit
                .list_resource_history(v1::ListResourceHistoryRequest {
                    name: base.x.clone(),
                    ..Default::default()
                })
                .await?;
        }
        "ListChanges" => {
            audit
                .list_changes(v1::ListChangesRequest {
                    recorded_after: Some(prost_types::Timestamp::default()),
                    recorded_before: Some(prost_types::Timestamp {
                        seconds: 4_000_000_000,
                        nanos: 0,
                    }),
                    ..Default::default()
                })
                .await?;
        }
        "ListIrregularities" => {
            audit
                .list_irregularities(v1::ListIrregularitiesRequest {
                    date: date(),
                    ..Default::default()
                })
                .await?;
        }
        "StreamChanges" => {
            // The feed stays open: its first message shows the call was let in.
            let mut stream = audit
                .stream_changes(v1::StreamChangesRequest::default())
                .await?
                .into_inner();
            stream.message().await?;
        }
        // The log signs within about a second of the base's writes.
        "GetCheckpoint" => {
            signed(|| {
                let mut audit = audit.clone();
                async move {
                    audit
                        .get_checkpoint(v1::GetCheckpointRequest { size: 0 })
                        .await
                        .map(drop)
                }
            })
            .await?;
        }
        "GetInclusionProof" => {
            signed(|| {
                let mut audit = audit.clone();
                async move {
                    audit
                        .get_inclusion_proof(v1::GetInclusionProofRequest {
                            position: "1".into(),
                            tree_size: 0,
                            leaf_index: None,
                        })
                        .await
                        .map(drop)
                }
            })
            .await?;
        }
        "ProveResources" => {
            let name = base.x.clone();
            signed(|| {
                let mut audit = audit.clone();
                let names = vec![name.clone()];
                async move {
                    audit
                        .prove_resources(v1::ProveResourcesRequest {
                            names,
                            ..Default::default()
                        })
                        .await
                        .map(drop)
                }
            })
            .await?;
        }
        "GetConsistencyProof" => {
            signed(|| {
                let mut audit = audit.clone();
                async move {
                    audit
                        .get_consistency_proof(v1::GetConsistencyProofRequest {
                            first_size: 1,
                            second_size: 0,
                        })
                        .await
                        .map(drop)
                }
            })
            .await?;
        }
        "AddCosignature" => {
            signed(|| {
                let mut audit = audit.clone();
                async move {
                    let note = audit
                        .get_checkpoint(v1::GetCheckpointRequest { size: 0 })
                        .await?
                        .into_inner()
                        .checkpoint
                        .unwrap_or_default()
                        .note;
                    let mut note = registry_ledger::Note::parse(&note).unwrap();
                    note.sign(&witness(), 1_796_000_000);
                    let kept = audit
                        .add_cosignature(v1::AddCosignatureRequest {
                            note: note.to_string(),
                        })
                        .await?
                        .into_inner();
                    assert_eq!(kept.witnesses, ["PeterNeumann"]);
                    Ok(())
                }
            })
            .await?;
        }
        "WhoAmI" => {
            who.access().who_am_i(v1::WhoAmIRequest {}).await?;
        }
        other => panic!("no cell for {other}"),
    }
    Ok(())
}

/// Calls `rpc` until the log has signed what it asks about: it answers NOT_FOUND or
/// FAILED_PRECONDITION for about a second after the writes it covers.
async fn signed<F, Fut>(rpc: F) -> Result<(), tonic::Status>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match rpc().await {
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::NotFound | tonic::Code::FailedPrecondition
                ) && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

fn concurrent() -> v1::Arrangement {
    v1::Arrangement {
        kind: Some(v1::arrangement::Kind::ConcurrentOffices(
            v1::ConcurrentOffices {
                roles: vec![
                    v1::Role {
                        unit_kind: v1::UnitKind::PartyCommittee as i32,
                        office_kind: v1::OfficeKind::Secretary as i32,
                    },
                    v1::Role {
                        unit_kind: v1::UnitKind::PeoplesCommittee as i32,
                        office_kind: v1::OfficeKind::Chair as i32,
                    },
                ],
            },
        )),
    }
}

/// The country, provinces A and B (their names fixed before the policy names them), and the
/// records every cell reads, made by the administrator.
async fn base(admin: &Client, country: &str, a: &str, b: &str) -> Base {
    let establish = |id: &str, level: v1::Level, parents: Vec<String>| v1::EstablishUnitRequest {
        request_id: request_id(),
        unit_id: id.trim_start_matches("units/").to_owned(),
        kind: v1::UnitKind::AdministrativeArea as i32,
        level: level as i32,
        display_name: format!("Đơn vị {id}"),
        parents,
        valid_from: "1990-01-01".into(),
        basis: Some(basis("0/QĐ")),
    };
    let mut command = admin.command();
    command
        .establish_unit(establish(country, v1::Level::Central, vec![]))
        .await
        .unwrap();
    for province in [a, b] {
        command
            .establish_unit(establish(
                province,
                v1::Level::Province,
                vec![country.into()],
            ))
            .await
            .unwrap();
    }
    let prep_base = Base {
        a: a.into(),
        x: String::new(),
        d: String::new(),
        office: String::new(),
        person: String::new(),
        holding: String::new(),
        model: String::new(),
    };
    let prep = Prep::new(admin, &prep_base);
    let x = prep.commune().await;
    let d = prep
        .unit(a, v1::Level::District, v1::UnitKind::AdministrativeArea)
        .await;
    let with_x = Base { x, d, ..prep_base };
    let prep = Prep::new(admin, &with_x);
    let (person, office, holding) = prep.holder().await;
    let model = command
        .define_model(v1::DefineModelRequest {
            request_id: request_id(),
            display_name: "Bí thư kiêm Chủ tịch".into(),
            arrangement: Some(concurrent()),
            authorised_by: Some(basis("Kết luận 1/TW")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap()
        .name;
    Base {
        person,
        office,
        holding,
        model,
        ..with_x
    }
}

/// The head of the store, as the administrator sees it.
async fn head(admin: &Client) -> String {
    support::store_stats(admin).await.head_position
}

/// Runs the whole table with tokens (`true`) or certificates; returns the cells that differ
/// from what the rules say.
async fn table(tokens: bool) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let issuer = tokens.then(|| Issuer::new("test-key"));
    let unit = || format!("units/{}", uuid::Uuid::now_v7());
    let (country, a, b) = (unit(), unit(), unit());
    let log = dir.path().join("access.jsonl");
    let daemon = start(
        dir.path(),
        &pki,
        issuer.as_ref(),
        (&a, &b),
        &["--access-log", log.to_str().unwrap()],
    );
    let admin = client(&daemon, &pki, "admin", issuer.as_ref())
        .await
        .expect("the administrator connects");
    let base = base(&admin, &country, &a, &b).await;
    let prep = Prep::new(&admin, &base);
    let mut clients = BTreeMap::new();
    for caller in CALLERS {
        clients.insert(caller, client(&daemon, &pki, caller, issuer.as_ref()).await);
    }
    let mut wrong = Vec::new();
    for (rpc, class) in RPCS {
        for caller in CALLERS {
            let want = expected(caller, class, tokens);
            let got = match &clients[caller] {
                None => Outcome::Handshake,
                Some(who) => match call(rpc, who, &prep).await {
                    Ok(()) => Outcome::Ok,
                    Err(status) => status_outcome(&status),
                },
            };
            if got != want {
                wrong.push(format!("{rpc} as {caller}: got {got:?}, want {want:?}"));
            }
            if got != Outcome::Ok {
                let before = prep.marked.lock().unwrap().clone();
                if head(&admin).await != before {
                    wrong.push(format!("{rpc} as {caller}: refused, yet the head moved"));
                }
            }
        }
    }
    wrong.extend(web_cells(
        dir.path(),
        &daemon,
        &pki,
        issuer.as_ref(),
        &base,
        tokens,
    ));
    wrong.extend(check_access_log(&log, &base, tokens).await);
    wrong
}

/// The auditors' pages, each a read, fetched by every caller with curl (a browser's way: the
/// token in `authorization`, or the certificate at the handshake); the cells that differ.
fn web_cells(
    dir: &Path,
    daemon: &Daemon,
    pki: &Pki,
    issuer: Option<&Issuer>,
    base: &Base,
    tokens: bool,
) -> Vec<String> {
    let address = daemon.address.replace("http://", "https://");
    let ca = dir.join("web-ca.pem");
    std::fs::write(&ca, &pki.ca).unwrap();
    let uuid = |name: &str| name.split_once('/').map_or(name, |(_, u)| u).to_owned();
    let pages = [
        "/ui".to_owned(),
        "/ui/search?q=a".to_owned(),
        "/ui/models".to_owned(),
        format!("/ui/offices/{}", uuid(&base.office)),
        format!("/ui/persons/{}", uuid(&base.person)),
    ];
    let mut wrong = Vec::new();
    for page in &pages {
        for caller in CALLERS {
            let mut curl = std::process::Command::new("curl");
            curl.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
                .arg(&ca);
            match (issuer, pki.callers.get(caller)) {
                (Some(issuer), _) if caller != "anonymous" => {
                    curl.args([
                        "-H",
                        &format!("authorization: Bearer {}", issuer.token(caller)),
                    ]);
                }
                (None, Some((cert, key))) => {
                    let (cert_path, key_path) = (
                        dir.join(format!("{caller}.pem")),
                        dir.join(format!("{caller}.key")),
                    );
                    std::fs::write(&cert_path, cert).unwrap();
                    std::fs::write(&key_path, key).unwrap();
                    curl.arg("--cert")
                        .arg(&cert_path)
                        .arg("--key")
                        .arg(&key_path);
                }
                _ => {}
            }
            let output = curl.arg(format!("{address}{page}")).output().expect("curl");
            let got = match String::from_utf8_lossy(&output.stdout).as_ref() {
                "200" => Outcome::Ok,
                "401" => Outcome::Unauthenticated,
                "403" => Outcome::Denied,
                "000" => Outcome::Handshake,
                _ => Outcome::Other(Code::Unknown),
            };
            let want = expected(caller, Class::Read, tokens);
            if got != want {
                wrong.push(format!(
                    "GET {page} as {caller}: got {got:?}, want {want:?}"
                ));
            }
        }
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_for_every_caller_with_tokens() {
    let wrong = table(true).await;
    assert!(
        wrong.is_empty(),
        "{} cells differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_for_every_caller_with_certificates() {
    let wrong = table(false).await;
    assert!(
        wrong.is_empty(),
        "{} cells differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// What the access log says of the table's calls: "who looked at this person's record", each
/// refusal with its status and caller; the problems found.
async fn check_access_log(path: &Path, base: &Base, tokens: bool) -> Vec<String> {
    // The log is written behind the calls: wait for the table's last one.
    let mut lines: Vec<serde_json::Value> = Vec::new();
    for _ in 0..100 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        lines = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        let last = lines
            .iter()
            .any(|l| l["rpc"] == "/registry.v1.AccessService/WhoAmI" && l["identity"] == "admin");
        if last {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut problems = Vec::new();
    let mut looked: Vec<&str> = lines
        .iter()
        .filter(|l| l["rpc"] == "/registry.v1.QueryService/GetPerson" && l["status"] == "OK")
        .filter(|l| {
            l["resources"]
                .as_array()
                .is_some_and(|r| r.iter().any(|n| n == base.person.as_str()))
        })
        .filter_map(|l| l["identity"].as_str())
        .collect();
    looked.sort_unstable();
    if looked != ["admin", "auditor", "reader", "registrar-a", "registrar-b"] {
        problems.push(format!(
            "who looked at the person, from the log: {looked:?}"
        ));
    }
    let line_of = |rpc: &str, identity: serde_json::Value| {
        lines
            .iter()
            .find(|l| l["rpc"] == format!("/registry.v1.{rpc}") && l["identity"] == identity)
            .cloned()
    };
    match line_of("CommandService/RenamePerson", "registrar-b".into()) {
        Some(l)
            if l["status"] == "PERMISSION_DENIED"
                && l["proof"] == (if tokens { "token" } else { "certificate" }) => {}
        other => problems.push(format!("a denied write, logged as {other:?}")),
    }
    if tokens {
        match line_of("QueryService/GetUnit", serde_json::Value::Null) {
            Some(l) if l["status"] == "UNAUTHENTICATED" && l["peer"].is_string() => {}
            other => problems.push(format!("an anonymous call, logged as {other:?}")),
        }
    }
    problems
}

/// Connects with `tls` and asks `WhoAmI`: the name the server sees, or the status.
async fn whoami(daemon: &Daemon, tls: &Tls, token: Option<&str>) -> Result<String, tonic::Status> {
    let address = daemon.address.replace("http://", "https://");
    let client = Client::connect_with(&address, tls)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let client = match token {
        Some(token) => client.with_token(token).unwrap(),
        None => client,
    };
    let me = client.access().who_am_i(v1::WhoAmIRequest {}).await?;
    Ok(me.into_inner().name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_foreign_and_expired_credentials_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let revoked = leaf(&pki.issuer, "registrar-a", 77, false);
    std::fs::write(dir.path().join("ca.crl"), crl(&pki, &[77])).unwrap();
    let crl_path = dir.path().join("ca.crl");
    let unit = || format!("units/{}", uuid::Uuid::now_v7());
    let daemon = start(
        dir.path(),
        &pki,
        None,
        (&unit(), &unit()),
        &["--tls-crl", crl_path.to_str().unwrap()],
    );
    let with = |identity: (Vec<u8>, Vec<u8>)| Tls {
        ca: Some(pki.ca.clone()),
        identity: Some(identity),
    };
    // The same name in a certificate the CRL does not list is served.
    let good = with(pki.callers["registrar-a"].clone());
    assert_eq!(whoami(&daemon, &good, None).await.unwrap(), "registrar-a");
    // Revoked, foreign, none: refused at the handshake (never UNAUTHENTICATED from a service).
    let (_, foreign_issuer) = ca("a foreign CA");
    let foreign = leaf(&foreign_issuer, "admin", 5, false);
    for (what, tls) in [
        ("revoked", with(revoked)),
        ("foreign", with(foreign)),
        (
            "none",
            Tls {
                ca: Some(pki.ca.clone()),
                identity: None,
            },
        ),
    ] {
        let refused = whoami(&daemon, &tls, None).await.unwrap_err();
        assert_eq!(
            status_outcome(&refused),
            Outcome::Handshake,
            "{what}: {refused:?}"
        );
    }
    // The server says why in its log (the line may trail the client's failure a little).
    let mut logged = Vec::new();
    for _ in 0..50 {
        logged = daemon.logged("TLS handshake refused");
        if logged.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(logged.iter().any(|l| l.contains("Revoked")), "{logged:?}");
    // A name the policy does not know: authenticated, with no role.
    let stranger = with(leaf(&pki.issuer, "stranger", 88, false));
    assert_eq!(whoami(&daemon, &stranger, None).await.unwrap(), "stranger");
    drop(daemon);

    // Tokens over TLS: each bad one is UNAUTHENTICATED, saying why, never echoing the token.
    let dir = tempfile::tempdir().unwrap();
    let issuer = Issuer::new("k1");
    let daemon = start(dir.path(), &pki, Some(&issuer), (&unit(), &unit()), &[]);
    let tls = Tls {
        ca: Some(pki.ca.clone()),
        identity: None,
    };
    let now = registry_testkit::tokens::now();
    let claims = Claims::for_subject("reader");
    assert_eq!(
        whoami(&daemon, &tls, Some(&issuer.token("reader")))
            .await
            .unwrap(),
        "reader"
    );
    for (token, says) in [
        (
            issuer.sign(&Claims {
                exp: now - 600,
                ..claims.clone()
            }),
            "bad token: expired",
        ),
        (
            issuer.sign(&Claims {
                nbf: Some(now + 600),
                ..claims.clone()
            }),
            "bad token: not valid yet (nbf)",
        ),
        (
            issuer.sign(&Claims {
                aud: "another".into(),
                ..claims.clone()
            }),
            "bad token: wrong audience",
        ),
        (
            Issuer::new("k1").token("reader"),
            "bad token: bad signature",
        ),
        (
            "eyJhbGciOiJub25lIn0.e30.".to_owned(),
            "bad token: malformed (not a signed JWT)",
        ),
    ] {
        let refused = whoami(&daemon, &tls, Some(&token)).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
        assert_eq!(refused.message(), says);
    }
    // A caller past its allowance is told to wait, in a RetryInfo detail.
    let limited = issuer.token("limited");
    for _ in 0..3 {
        whoami(&daemon, &tls, Some(&limited)).await.unwrap();
    }
    let exhausted = whoami(&daemon, &tls, Some(&limited)).await.unwrap_err();
    assert_eq!(exhausted.code(), Code::ResourceExhausted, "{exhausted:?}");
    let retry = tonic_types::StatusExt::get_details_retry_info(&exhausted)
        .and_then(|r| r.retry_delay)
        .expect("a retry delay");
    assert!(
        retry > std::time::Duration::ZERO && retry <= std::time::Duration::from_secs(1),
        "{retry:?}"
    );
    // Other callers keep their own allowance.
    whoami(&daemon, &tls, Some(&issuer.token("reader")))
        .await
        .unwrap();
    // A certificate of the CA still works beside tokens; one of a foreign CA does not.
    let certified = Tls {
        ca: Some(pki.ca.clone()),
        identity: Some(pki.callers["auditor"].clone()),
    };
    assert_eq!(whoami(&daemon, &certified, None).await.unwrap(), "auditor");
    let foreign = Tls {
        ca: Some(pki.ca.clone()),
        identity: Some(leaf(&foreign_issuer, "admin", 6, false)),
    };
    assert_eq!(
        status_outcome(&whoami(&daemon, &foreign, None).await.unwrap_err()),
        Outcome::Handshake
    );
}

/// The roles the server gives the caller of `client` (`WhoAmI`).
async fn roles(client: &Client) -> Result<Vec<String>, tonic::Status> {
    let me = client.access().who_am_i(v1::WhoAmIRequest {}).await?;
    Ok(me.into_inner().roles)
}

/// Sends SIGHUP to the daemon and waits until `done` says it took effect (5 s at most).
async fn hang_up<F, Fut>(daemon: &Daemon, done: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let status = std::process::Command::new("kill")
        .args(["-HUP", &daemon.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for _ in 0..50 {
        if done().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_policy_and_revocation_list_take_effect_at_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let crl_path = dir.path().join("ca.crl");
    std::fs::write(&crl_path, crl(&pki, &[])).unwrap();
    let unit = || format!("units/{}", uuid::Uuid::now_v7());
    let daemon = start(
        dir.path(),
        &pki,
        None,
        (&unit(), &unit()),
        &["--tls-crl", crl_path.to_str().unwrap()],
    );
    let with = |caller: &str| Tls {
        ca: Some(pki.ca.clone()),
        identity: Some(pki.callers[caller].clone()),
    };
    let address = daemon.address.replace("http://", "https://");
    let b = Client::connect_with(&address, &with("registrar-b"))
        .await
        .unwrap();
    assert_eq!(roles(&b).await.unwrap(), ["registrar"]);
    assert_eq!(
        whoami(&daemon, &with("registrar-a"), None).await.unwrap(),
        "registrar-a"
    );

    // registrar-b becomes a reader; registrar-a's certificate (serial 12) is revoked.
    let policy = dir.path().join("policy.toml");
    let text = std::fs::read_to_string(&policy).unwrap();
    let demoted = text.replace(
        "[callers.registrar-b]\nroles = [\"registrar\"]",
        "[callers.registrar-b]\nroles = [\"reader\"]",
    );
    assert_ne!(demoted, text);
    std::fs::write(&policy, &demoted).unwrap();
    std::fs::write(&crl_path, crl(&pki, &[12])).unwrap();
    let took = hang_up(&daemon, || async {
        roles(&b).await.is_ok_and(|r| r == ["reader"])
    })
    .await;
    assert!(
        took,
        "the new policy is in force on a connection made before it"
    );
    let refused = whoami(&daemon, &with("registrar-a"), None)
        .await
        .unwrap_err();
    assert_eq!(status_outcome(&refused), Outcome::Handshake, "{refused:?}");

    // A policy that does not load leaves the one in force as it was.
    std::fs::write(
        &policy,
        "rules = \"registry.cedar\"\n[callers.x]\nagency = \"nowhere\"\n",
    )
    .unwrap();
    let changed = hang_up(&daemon, || async {
        roles(&b).await.map_or(true, |r| r != ["reader"])
    })
    .await;
    assert!(!changed, "a broken policy replaced the one in force");
    assert_eq!(
        whoami(&daemon, &with("reader"), None).await.unwrap(),
        "reader"
    );
}

/// Refusals by the policy are counted by action in the metrics: a reader's audit question
/// (refused at the door) and its write (refused by the writer's check).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_counted_by_action_in_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let metrics = support::free_address();
    let unit = || format!("units/{}", uuid::Uuid::now_v7());
    let daemon = start(
        dir.path(),
        &pki,
        None,
        (&unit(), &unit()),
        &["--metrics-listen", &metrics],
    );
    let reader = client(&daemon, &pki, "reader", None).await.unwrap();
    for _ in 0..2 {
        let refused = reader
            .audit()
            .list_changes(v1::ListChangesRequest::default())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    }
    let refused = reader
        .command()
        .register_person(v1::RegisterPersonRequest {
            request_id: registry_client::request_id(),
            display_name: "Nguyễn Văn A".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let text = support::scrape(&metrics).await;
    let denied = |action: &str| {
        support::sample(&text, "registry_access_denied_total", &[("action", action)])
    };
    assert_eq!(denied("audit"), Some(2.0), "{text}");
    assert_eq!(denied("record"), Some(1.0), "{text}");
    assert_eq!(denied("read"), None);
    daemon.stop();
}
