//! Service configuration: flags, environment variables and an optional TOML file, in that order
//! of precedence, validated before anything is bound or opened.
//!
//! Every binary of the registry takes the same options (`--help` lists them with their
//! environment variables). A bad configuration stops the process with exit status 64 and a
//! message naming the option.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use registry_eventstore::{
    AnyStore, EmbeddedConfig, EmbeddedStore, KurrentStore, PostgresConfig, PostgresStore,
};
use serde::Deserialize;
use thiserror::Error;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line, for collectors.
    Json,
}

/// Options as given on the command line or in the environment.
#[derive(Debug, Default, Parser)]
#[command(version, about = "A service of the organisational registry (gRPC)")]
pub struct Options {
    /// Address to listen on [default: 127.0.0.1:50051].
    #[arg(long, env = "REGISTRY_LISTEN")]
    pub listen: Option<String>,
    /// The event store: `embedded` (SQLite under --data-dir), `postgres://…`, or a KurrentDB
    /// connection string (`esdb://…`, `kurrentdb://…`; experimental: never yet tested against a
    /// server, and it keeps no verifiable log) [default: embedded].
    #[arg(long, env = "REGISTRY_STORE")]
    pub store: Option<String>,
    /// Directory of the embedded store [default: ./registry-data].
    #[arg(long, env = "REGISTRY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL schema of the store's tables [default: registry].
    #[arg(long, env = "REGISTRY_PG_SCHEMA")]
    pub pg_schema: Option<String>,
    /// Largest request message accepted, in bytes [default: 4194304].
    #[arg(long, env = "REGISTRY_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<usize>,
    /// Requests served at once per connection [default: 256].
    #[arg(long, env = "REGISTRY_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// Memory for events already shown in histories and listings, kept to answer them again
    /// without reading the store, in MiB; 0 keeps none [default: 256].
    #[arg(long, env = "REGISTRY_HISTORY_CACHE_MIB")]
    pub history_cache_mib: Option<u64>,
    /// Longest time a unary call may take, in seconds, whatever its own deadline; an import
    /// stream is bounded by its caller's deadline only [default: 60].
    #[arg(long, env = "REGISTRY_TIMEOUT_SECONDS")]
    pub timeout_seconds: Option<u64>,
    /// Grace period for in-flight calls at shutdown, in seconds [default: 10].
    #[arg(long, env = "REGISTRY_GRACE_SECONDS")]
    pub grace_seconds: Option<u64>,
    /// Health says NOT_SERVING for a service whose read models have stayed behind the store's
    /// head this long, in seconds, or that cannot reach its store [default: 30].
    #[arg(long, env = "REGISTRY_MAX_LAG_SECONDS")]
    pub max_lag_seconds: Option<u64>,
    /// `registryd` only: the services to host, comma-separated, from command, query, audit and
    /// admin [default: all four].
    #[arg(long, env = "REGISTRY_SERVICES")]
    pub services: Option<String>,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key [default: plaintext].
    #[arg(long, env = "REGISTRY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "REGISTRY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Accept only clients with a certificate signed by this CA (PEM): mutual TLS; needs
    /// --tls-cert.
    #[arg(long, env = "REGISTRY_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Certificate revocation lists of the client CA (PEM; repeat the option, or separate
    /// files with commas): a revoked client certificate fails the handshake. With it, every CA
    /// of --tls-client-ca needs its list.
    #[arg(long, env = "REGISTRY_TLS_CRL", value_delimiter = ',')]
    pub tls_crl: Vec<PathBuf>,
    /// A file of at least 32 secret bytes that keys page tokens: replicas given the same file
    /// honour each other's tokens [default: `page-token.key` in --data-dir on the embedded
    /// store, made on first start; else a random key per process].
    #[arg(long, env = "REGISTRY_PAGE_TOKEN_KEY")]
    pub page_token_key: Option<PathBuf>,
    /// Keep snapshots of the writer's state and of the read models here, load the newest at
    /// start and catch up from it [default: `snapshots` in --data-dir on the embedded store;
    /// else none].
    #[arg(long, env = "REGISTRY_SNAPSHOT_DIR")]
    pub snapshot_dir: Option<PathBuf>,
    /// Save snapshots after this many events since the last, or --snapshot-every-seconds
    /// after it when anything was recorded, and at shutdown; 0 saves them only at shutdown
    /// [default: 1000000].
    #[arg(long, env = "REGISTRY_SNAPSHOT_EVERY_EVENTS")]
    pub snapshot_every_events: Option<u64>,
    /// See --snapshot-every-events [default: 900].
    #[arg(long, env = "REGISTRY_SNAPSHOT_EVERY_SECONDS")]
    pub snapshot_every_seconds: Option<u64>,
    /// Decide who may do what by this policy file (TOML: callers, agencies and their scopes,
    /// bearer tokens, and the Cedar rules file it names): see `examples/access/`. Without it
    /// every caller may do anything, which is served only on loopback unless
    /// --allow-anonymous is given.
    #[arg(long, env = "REGISTRY_POLICY")]
    pub policy: Option<PathBuf>,
    /// Write one JSON line per call to this file (appended): who called which RPC about which
    /// resources, the status, the latency and the peer [default: none].
    #[arg(long, env = "REGISTRY_ACCESS_LOG")]
    pub access_log: Option<PathBuf>,
    /// How log lines are written, on standard error: `text` (coloured only on a terminal) or
    /// `json` (one object a line) [default: text].
    #[arg(long, env = "REGISTRY_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Serve Prometheus metrics over HTTP on this address (`GET /metrics`), such as
    /// 127.0.0.1:9464 [default: none].
    #[arg(long, env = "REGISTRY_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Export traces over OTLP/gRPC to this collector, such as http://127.0.0.1:4317: a span
    /// per call (a child of the caller's W3C `traceparent`), its decision, append and commit,
    /// and its wait for a position [default: none].
    #[arg(long, env = "REGISTRY_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Serve callers on an address other than loopback without a --policy: every caller that
    /// reaches the port may then record, correct and rebuild. Without it, such an address is
    /// refused at start.
    #[arg(long, env = "REGISTRY_ALLOW_ANONYMOUS")]
    pub allow_anonymous: bool,
    /// Sign the verifiable log's checkpoints with this key (`PRIVATE+KEY+…` lines, as `regctl
    /// keygen` writes them; two during a rotation), readable by its owner only [default:
    /// `log.key` in --data-dir on the embedded store, made on first start with --log-name,
    /// its public key beside it in `log.pub`; else none: the log's hashes are kept, unsigned].
    #[arg(long, env = "REGISTRY_LOG_KEY")]
    pub log_key: Option<PathBuf>,
    /// The log's name (its checkpoints' origin line) for a key made on first start
    /// [default: localhost/registry].
    #[arg(long, env = "REGISTRY_LOG_NAME")]
    pub log_name: Option<String>,
    /// Keep no verifiable log (no hashes, no checkpoints): only to measure what the log costs.
    /// A store opened with the log again integrates what was written meanwhile.
    #[arg(long, env = "REGISTRY_NO_LOG")]
    pub no_log: bool,
    /// The witnesses whose cosignatures of the log's checkpoints are accepted: a file of their
    /// public keys (`<name>+<id>+<key>` lines, type 0x04, as `regctl keygen --witness`
    /// prints them) [default: none accepted].
    #[arg(long, env = "REGISTRY_LOG_WITNESSES")]
    pub log_witnesses: Option<PathBuf>,
    /// A TOML file with any of the options above (snake_case keys); flags and environment win.
    #[arg(long, env = "REGISTRY_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The same options read from a file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOptions {
    listen: Option<String>,
    store: Option<String>,
    data_dir: Option<PathBuf>,
    pg_schema: Option<String>,
    max_message_bytes: Option<usize>,
    concurrency: Option<usize>,
    history_cache_mib: Option<u64>,
    timeout_seconds: Option<u64>,
    grace_seconds: Option<u64>,
    max_lag_seconds: Option<u64>,
    services: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    tls_crl: Option<Vec<PathBuf>>,
    page_token_key: Option<PathBuf>,
    snapshot_dir: Option<PathBuf>,
    snapshot_every_events: Option<u64>,
    snapshot_every_seconds: Option<u64>,
    policy: Option<PathBuf>,
    access_log: Option<PathBuf>,
    metrics_listen: Option<String>,
    otlp_endpoint: Option<String>,
    log_format: Option<LogFormat>,
    allow_anonymous: Option<bool>,
    log_key: Option<PathBuf>,
    log_name: Option<String>,
    log_witnesses: Option<PathBuf>,
    no_log: Option<bool>,
}

/// The services `registryd` can host.
pub const SERVICES: [&str; 4] = ["command", "query", "audit", "admin"];

/// Where the events are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreChoice {
    /// SQLite file `registry.db` in this directory.
    Embedded(PathBuf),
    /// PostgreSQL URL and schema.
    Postgres {
        /// The URL.
        url: String,
        /// The schema.
        schema: String,
    },
    /// A KurrentDB connection string.
    Kurrent(String),
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The address to bind.
    pub listen: SocketAddr,
    /// The store.
    pub store: StoreChoice,
    /// Largest message accepted.
    pub max_message_bytes: usize,
    /// Concurrent requests per connection.
    pub concurrency: usize,
    /// Bytes of events kept to answer histories again (0: none).
    pub history_cache_bytes: u64,
    /// Longest call.
    pub timeout: Duration,
    /// Shutdown grace period.
    pub grace: Duration,
    /// How long read models may stay behind the store before health says NOT_SERVING.
    pub max_lag: Duration,
    /// The services to host (`registryd`; a single service's binary sets its own).
    pub services: Vec<String>,
    /// TLS, when served (certificates, key, client CA and revocation lists read and checked).
    pub tls: Option<std::sync::Arc<crate::tls::Served>>,
    /// Where the page-token key comes from.
    pub page_token_key: PageTokenKey,
    /// Snapshots, when kept.
    pub snapshots: Option<crate::snapshots::Snapshots>,
    /// The access policy, when one decides who may do what (read and checked).
    pub access: Option<std::sync::Arc<crate::access::Policy>>,
    /// The access log, when one is written (opened).
    pub access_log: Option<crate::access_log::AccessLog>,
    /// Where Prometheus metrics are served, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// The OTLP/gRPC collector that receives traces, if any (an http:// or https:// URI).
    pub otlp_endpoint: Option<String>,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// The key that signs the log's checkpoints.
    pub log_key: LogKey,
    /// The witnesses whose cosignatures are accepted.
    pub log_witnesses: std::sync::Arc<Vec<registry_ledger::VerifierKey>>,
}

/// Reads the witnesses' public keys: cosigning keys only, one per line (`#` comments).
fn witnesses(path: &std::path::Path) -> Result<Vec<registry_ledger::VerifierKey>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = registry_ledger::VerifierKey::parse(line)
            .map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
        if !key.is_cosigner() {
            return Err(format!(
                "{}:{}: not a witness's cosigning key (type 0x04; `regctl keygen --witness` prints one)",
                path.display(),
                i + 1
            ));
        }
        keys.push(key);
    }
    Ok(keys)
}

/// Where the key that signs the log's checkpoints comes from.
#[derive(Clone, Debug)]
pub enum LogKey {
    /// The operator's key file, read and checked when the configuration is resolved.
    Given(std::sync::Arc<registry_eventstore::LogSigner>),
    /// Kept beside the embedded store: read, or made on first start with this log name.
    Beside {
        /// The key file.
        path: PathBuf,
        /// The log's name for a new key.
        name: String,
    },
    /// No key: the log's hashes are kept, no checkpoint is signed.
    None,
    /// No log at all (`--no-log`).
    Off,
}

impl LogKey {
    /// The signer (making the key beside the embedded store if it is missing, with its public
    /// key in a `.pub` file next to it).
    pub fn load(&self) -> Result<Option<std::sync::Arc<registry_eventstore::LogSigner>>, String> {
        use registry_eventstore::LogSigner;
        match self {
            Self::Given(signer) => Ok(Some(signer.clone())),
            Self::None | Self::Off => Ok(None),
            Self::Beside { path, name } => {
                if !path.exists() {
                    let key = registry_ledger::SigningKey::generate(name)
                        .map_err(|e| format!("--log-name: {e}"))?;
                    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir)
                            .map_err(|e| format!("{}: {e}", dir.display()))?;
                    }
                    write_secret(path, format!("{}\n", key.to_text()).as_bytes())
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    let public = path.with_extension("pub");
                    std::fs::write(&public, format!("{}\n", key.verifier()))
                        .map_err(|e| format!("{}: {e}", public.display()))?;
                    tracing::info!(key = %path.display(), public = %key.verifier(), "made the log's signing key");
                }
                LogSigner::load(path)
                    .map(|s| Some(std::sync::Arc::new(s)))
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// The key of page tokens ([`crate::paging`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageTokenKey {
    /// Read at start from the operator's file (checked when the configuration is resolved).
    Given(Vec<u8>),
    /// Kept beside the embedded store: read, or made on first start.
    Beside(PathBuf),
    /// Drawn at random by the process.
    Random,
}

impl PageTokenKey {
    /// The key's bytes (making the file beside the embedded store if it is missing).
    pub fn load(&self) -> Result<Vec<u8>, String> {
        match self {
            Self::Given(key) => Ok(key.clone()),
            Self::Random => crate::paging::random_key(),
            Self::Beside(path) => match std::fs::read(path) {
                Ok(key) if key.len() >= MIN_KEY_BYTES => Ok(key),
                Ok(_) => Err(format!(
                    "{}: holds fewer than {MIN_KEY_BYTES} bytes",
                    path.display()
                )),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let key = crate::paging::random_key()?;
                    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir)
                            .map_err(|e| format!("{}: {e}", dir.display()))?;
                    }
                    write_secret(path, &key).map_err(|e| format!("{}: {e}", path.display()))?;
                    Ok(key)
                }
                Err(e) => Err(format!("{}: {e}", path.display())),
            },
        }
    }
}

/// The fewest bytes of a page-token key.
const MIN_KEY_BYTES: usize = 32;

/// Writes a new secret file readable by its owner only.
fn write_secret(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// A configuration that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// An option has a bad value.
    #[error("{option}: {problem}")]
    Invalid {
        /// The option.
        option: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The configuration file could not be read.
    #[error("config file {path}: {problem}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

impl Config {
    /// Resolves options: flags and environment over the file over defaults.
    pub fn resolve(options: Options) -> Result<Self, ConfigError> {
        let file = match &options.config {
            None => FileOptions::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                    path: path.clone(),
                    problem: e.to_string(),
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::File {
                    path: path.clone(),
                    problem: e.to_string(),
                })?
            }
        };
        let invalid = |option, problem: String| ConfigError::Invalid { option, problem };
        let listen_text = options
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:50051".into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid(
                "--listen",
                format!("{listen_text:?} is not an address such as 127.0.0.1:50051"),
            )
        })?;
        let allow_anonymous = options.allow_anonymous || file.allow_anonymous == Some(true);
        let access = match options.policy.or(file.policy) {
            None => None,
            Some(_) if allow_anonymous => {
                return Err(invalid(
                    "--allow-anonymous",
                    "contradicts --policy, which admits only the callers it can authenticate"
                        .into(),
                ))
            }
            Some(path) => Some(std::sync::Arc::new(
                crate::access::Policy::load(&path)
                    .map_err(|e| invalid("--policy", e.to_string()))?,
            )),
        };
        let access_log = match options.access_log.or(file.access_log) {
            None => None,
            Some(path) => Some(
                crate::access_log::AccessLog::open(&path)
                    .map_err(|e| invalid("--access-log", format!("{}: {e}", path.display())))?,
            ),
        };
        let metrics_listen = options
            .metrics_listen
            .or(file.metrics_listen)
            .map(|text| {
                text.parse::<SocketAddr>().map_err(|_| {
                    invalid(
                        "--metrics-listen",
                        format!("{text:?} is not an address such as 127.0.0.1:9464"),
                    )
                })
            })
            .transpose()?;
        let otlp_endpoint = options.otlp_endpoint.or(file.otlp_endpoint);
        if let Some(text) = &otlp_endpoint {
            let uri = text.parse::<http::Uri>().ok();
            let scheme = uri.as_ref().and_then(|u| u.scheme_str());
            if !matches!(scheme, Some("http" | "https"))
                || uri.as_ref().and_then(http::Uri::host).is_none()
            {
                let shown: String = text.chars().take(100).collect();
                return Err(invalid(
                    "--otlp-endpoint",
                    format!("{shown:?} is not a collector's URI such as http://127.0.0.1:4317"),
                ));
            }
        }
        if !listen.ip().is_loopback() && !allow_anonymous && access.is_none() {
            return Err(invalid(
                "--listen",
                format!(
                    "{listen} is reachable from other machines, and without --policy every \
                     caller that reaches it may record, correct and rebuild anything: give a \
                     --policy, listen on a loopback address such as 127.0.0.1, or pass \
                     --allow-anonymous to accept that"
                ),
            ));
        }
        let data_dir = options
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| "registry-data".into());
        let schema = options
            .pg_schema
            .or(file.pg_schema)
            .unwrap_or_else(|| "registry".into());
        let store_text = options
            .store
            .or(file.store)
            .unwrap_or_else(|| "embedded".into());
        let store = if store_text == "embedded" {
            StoreChoice::Embedded(data_dir)
        } else if store_text.starts_with("postgres://") || store_text.starts_with("postgresql://") {
            if schema.is_empty()
                || !schema
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(invalid(
                    "--pg-schema",
                    format!("{schema:?} must be lower-case letters, digits and _"),
                ));
            }
            StoreChoice::Postgres {
                url: store_text,
                schema,
            }
        } else if store_text.starts_with("esdb://")
            || store_text.starts_with("esdb+discover://")
            || store_text.starts_with("kurrentdb://")
            || store_text.starts_with("kurrentdb+discover://")
        {
            StoreChoice::Kurrent(store_text)
        } else {
            return Err(invalid(
                "--store",
                format!("{store_text:?} is not `embedded`, a postgres:// URL or a KurrentDB connection string"),
            ));
        };
        let max_message_bytes = options
            .max_message_bytes
            .or(file.max_message_bytes)
            .unwrap_or(4 << 20);
        if !(1024..=(64 << 20)).contains(&max_message_bytes) {
            return Err(invalid(
                "--max-message-bytes",
                format!("{max_message_bytes} is not between 1024 and 67108864"),
            ));
        }
        let history_cache_mib = options
            .history_cache_mib
            .or(file.history_cache_mib)
            .unwrap_or(256);
        // More than a mebibyte short of 2^64 bytes: a figure no machine has, so a typo.
        if history_cache_mib > 1 << 30 {
            return Err(invalid(
                "--history-cache-mib",
                format!("{history_cache_mib} is more than 1073741824 (a pebibyte)"),
            ));
        }
        let concurrency = options.concurrency.or(file.concurrency).unwrap_or(256);
        if concurrency == 0 {
            return Err(invalid("--concurrency", "must be at least 1".into()));
        }
        let timeout = options
            .timeout_seconds
            .or(file.timeout_seconds)
            .unwrap_or(60);
        if timeout == 0 {
            return Err(invalid("--timeout-seconds", "must be at least 1".into()));
        }
        let grace = options.grace_seconds.or(file.grace_seconds).unwrap_or(10);
        let max_lag = options
            .max_lag_seconds
            .or(file.max_lag_seconds)
            .unwrap_or(30);
        if max_lag == 0 {
            return Err(invalid("--max-lag-seconds", "must be at least 1".into()));
        }
        let services: Vec<String> = match options.services.or(file.services) {
            None => SERVICES.iter().map(|s| (*s).to_owned()).collect(),
            Some(list) => list
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        };
        if services.is_empty() {
            return Err(invalid("--services", "names no service".into()));
        }
        if let Some(unknown) = services.iter().find(|s| !SERVICES.contains(&s.as_str())) {
            return Err(invalid(
                "--services",
                format!("{unknown:?} is not one of {}", SERVICES.join(", ")),
            ));
        }
        let tls = tls(
            options.tls_cert.or(file.tls_cert),
            options.tls_key.or(file.tls_key),
            options.tls_client_ca.or(file.tls_client_ca),
            if options.tls_crl.is_empty() {
                file.tls_crl.unwrap_or_default()
            } else {
                options.tls_crl
            },
            access
                .as_ref()
                .is_some_and(|a| a.current().accepts_tokens()),
        )?;
        let page_token_key = match (options.page_token_key.or(file.page_token_key), &store) {
            (Some(path), _) => {
                let key = std::fs::read(&path)
                    .map_err(|e| invalid("--page-token-key", format!("{}: {e}", path.display())))?;
                if key.len() < MIN_KEY_BYTES {
                    return Err(invalid(
                        "--page-token-key",
                        format!("{} holds fewer than {MIN_KEY_BYTES} bytes", path.display()),
                    ));
                }
                PageTokenKey::Given(key)
            }
            (None, StoreChoice::Embedded(dir)) => PageTokenKey::Beside(dir.join("page-token.key")),
            (None, _) => PageTokenKey::Random,
        };
        let log_name = options
            .log_name
            .or(file.log_name)
            .unwrap_or_else(|| "localhost/registry".into());
        let no_log = options.no_log || file.no_log == Some(true);
        let log_key = match (options.log_key.or(file.log_key), &store) {
            (_, _) if no_log => LogKey::Off,
            (Some(path), _) => LogKey::Given(std::sync::Arc::new(
                registry_eventstore::LogSigner::load(&path)
                    .map_err(|e| invalid("--log-key", e.to_string()))?,
            )),
            (None, StoreChoice::Embedded(dir)) => {
                if let Err(e) = registry_ledger::check_name(&log_name) {
                    return Err(invalid("--log-name", e.to_string()));
                }
                LogKey::Beside {
                    path: dir.join("log.key"),
                    name: log_name,
                }
            }
            (None, _) => LogKey::None,
        };
        let log_witnesses = match options.log_witnesses.or(file.log_witnesses) {
            None => Vec::new(),
            Some(path) => witnesses(&path).map_err(|e| invalid("--log-witnesses", e))?,
        };
        let snapshot_dir = match (options.snapshot_dir.or(file.snapshot_dir), &store) {
            (Some(dir), _) => Some(dir),
            (None, StoreChoice::Embedded(dir)) => Some(dir.join("snapshots")),
            (None, _) => None,
        };
        let snapshots = snapshot_dir.map(|dir| crate::snapshots::Snapshots {
            dir,
            every_events: options
                .snapshot_every_events
                .or(file.snapshot_every_events)
                .unwrap_or(1_000_000),
            every: Duration::from_secs(
                options
                    .snapshot_every_seconds
                    .or(file.snapshot_every_seconds)
                    .unwrap_or(900)
                    .max(1),
            ),
        });
        Ok(Self {
            listen,
            store,
            page_token_key,
            snapshots,
            max_message_bytes,
            concurrency,
            history_cache_bytes: history_cache_mib << 20,
            timeout: Duration::from_secs(timeout),
            grace: Duration::from_secs(grace),
            max_lag: Duration::from_secs(max_lag),
            services,
            tls,
            access,
            access_log,
            metrics_listen,
            otlp_endpoint,
            log_format: options.log_format.or(file.log_format).unwrap_or_default(),
            log_key,
            log_witnesses: std::sync::Arc::new(log_witnesses),
        })
    }

    /// Parses the process's flags and environment, or exits with status 64 and the problem.
    pub fn from_process() -> Self {
        match Self::resolve(Options::parse()) {
            Ok(config) => config,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(64);
            }
        }
    }
}

/// The server's TLS from its files: none, or a certificate with its key, and optionally the CA
/// of the clients to accept with its revocation lists. The files are read and the certificates
/// checked here, so a bad one stops the process before anything is bound.
fn tls(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    crls: Vec<PathBuf>,
    tokens_accepted: bool,
) -> Result<Option<std::sync::Arc<crate::tls::Served>>, ConfigError> {
    let invalid = |option: &'static str, problem: &str| ConfigError::Invalid {
        option,
        problem: problem.into(),
    };
    let (cert, key) = match (cert, key) {
        (None, None) if client_ca.is_some() => {
            return Err(invalid(
                "--tls-client-ca",
                "needs --tls-cert and --tls-key (the server's own certificate)",
            ))
        }
        (None, None) if !crls.is_empty() => {
            return Err(invalid("--tls-crl", "needs --tls-client-ca (mutual TLS)"))
        }
        (None, None) => return Ok(None),
        (Some(_), None) => return Err(invalid("--tls-key", "is required with --tls-cert")),
        (None, Some(_)) => return Err(invalid("--tls-cert", "is required with --tls-key")),
        (Some(cert), Some(key)) => (cert, key),
    };
    if client_ca.is_none() && !crls.is_empty() {
        return Err(invalid("--tls-crl", "needs --tls-client-ca (mutual TLS)"));
    }
    let files = crate::tls::TlsFiles {
        cert,
        key,
        client_ca,
        crls,
        // Where bearer tokens are accepted a caller brings either a certificate or a token.
        client_optional: tokens_accepted,
    };
    let served = crate::tls::Served::new(files).map_err(|e| ConfigError::Invalid {
        option: e.option,
        problem: e.problem,
    })?;
    Ok(Some(std::sync::Arc::new(served)))
}

impl StoreChoice {
    /// Opens or connects to the store; `signer` signs the log's checkpoints; `log` false keeps
    /// no log at all; `writes` false lets a PostgreSQL follower read from a hot standby.
    pub async fn open(
        &self,
        signer: Option<std::sync::Arc<registry_eventstore::LogSigner>>,
        log: bool,
        writes: bool,
    ) -> Result<AnyStore, registry_eventstore::StoreError> {
        Ok(match self {
            Self::Embedded(dir) => {
                let mut config = EmbeddedConfig::new(dir.join("registry.db"));
                config.signer = signer;
                config.log = log;
                let store = EmbeddedStore::open(config)?;
                tracing::info!(durability = %store.durability(), "embedded store opened");
                AnyStore::Embedded(store)
            }
            Self::Postgres { url, schema } => {
                let mut config = PostgresConfig::new(url.clone());
                config.schema = schema.clone();
                config.sessions = if writes {
                    registry_eventstore::Sessions::Primary
                } else {
                    registry_eventstore::Sessions::PreferStandby
                };
                config.signer = signer;
                let store = PostgresStore::connect(config).await?;
                match store.durability().await {
                    Ok(durability) => tracing::info!(%durability, "postgres store opened"),
                    Err(e) => tracing::warn!(error = %e, "cannot read the store's durability"),
                }
                AnyStore::Postgres(store)
            }
            Self::Kurrent(connection) => {
                AnyStore::Kurrent(KurrentStore::connect(connection).await?)
            }
        })
    }

    /// A description for logs (no passwords).
    pub fn describe(&self) -> String {
        match self {
            Self::Embedded(dir) => format!("embedded store in {}", dir.display()),
            Self::Postgres { url, schema } => {
                let host = url.rsplit_once('@').map_or(url.as_str(), |(_, host)| host);
                format!("postgres store at {host}, schema {schema}")
            }
            Self::Kurrent(_) => "kurrentdb store".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_embedded_store_on_loopback() {
        let config = Config::resolve(Options::default()).ok();
        assert_eq!(
            config.as_ref().map(|c| c.listen.to_string()),
            Some("127.0.0.1:50051".to_owned())
        );
        assert_eq!(
            config.map(|c| c.store),
            Some(StoreChoice::Embedded("registry-data".into()))
        );
    }

    #[test]
    fn bad_values_name_the_option() {
        let options = Options {
            store: Some("mysql://x".into()),
            ..Options::default()
        };
        let error = Config::resolve(options)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.starts_with("--store: "), "{error}");
        let options = Options {
            listen: Some("nowhere".into()),
            ..Options::default()
        };
        let error = Config::resolve(options)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.starts_with("--listen: "), "{error}");
    }

    #[test]
    fn an_address_beyond_loopback_needs_allow_anonymous() {
        let resolve = |listen: &str, allow_anonymous: bool| {
            Config::resolve(Options {
                listen: Some(listen.into()),
                allow_anonymous,
                ..Options::default()
            })
            .map(|config| config.listen.to_string())
            .map_err(|e| e.to_string())
        };
        let refused = resolve("0.0.0.0:50051", false).err().unwrap_or_default();
        assert!(
            refused.starts_with("--listen: 0.0.0.0:50051 is reachable")
                && refused.contains("--allow-anonymous"),
            "{refused}"
        );
        assert!(resolve("192.0.2.7:50051", false).is_err());
        assert_eq!(resolve("0.0.0.0:50051", true), Ok("0.0.0.0:50051".into()));
        assert_eq!(resolve("127.0.0.1:0", false), Ok("127.0.0.1:0".into()));
        assert_eq!(resolve("[::1]:50051", false), Ok("[::1]:50051".into()));
    }

    #[test]
    fn tls_options_come_together_and_are_checked_before_serving() {
        let problem = |cert: Option<&str>, key: Option<&str>, ca: Option<&str>| {
            let options = Options {
                tls_cert: cert.map(PathBuf::from),
                tls_key: key.map(PathBuf::from),
                tls_client_ca: ca.map(PathBuf::from),
                ..Options::default()
            };
            Config::resolve(options)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let fixture = |name: &str| {
            let dir = env!("CARGO_MANIFEST_DIR");
            format!("{dir}/../../tests/tls/{name}")
        };
        let (cert, key, ca) = (
            fixture("server.pem"),
            fixture("server.key"),
            fixture("ca.pem"),
        );
        assert!(problem(Some(&cert), None, None).starts_with("--tls-key: "));
        assert!(problem(None, Some(&key), None).starts_with("--tls-cert: "));
        assert!(problem(None, None, Some(&ca)).starts_with("--tls-client-ca: "));
        let missing = problem(Some(&cert), Some("/nonexistent.key"), None);
        assert!(
            missing.starts_with("--tls-key: /nonexistent.key"),
            "{missing}"
        );
        // A certificate given as the key.
        let wrong = problem(Some(&cert), Some(&ca), None);
        assert!(
            wrong.starts_with("--tls-key: ") && wrong.ends_with("holds no private key (PEM)"),
            "{wrong}"
        );
        let served = Config::resolve(Options {
            tls_cert: Some(cert.into()),
            tls_key: Some(key.into()),
            tls_client_ca: Some(ca.into()),
            ..Options::default()
        });
        assert!(served.is_ok_and(|c| c.tls.is_some()));
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().ok();
        let path = dir
            .as_ref()
            .map(|d| d.path().join("registry.toml"))
            .unwrap_or_default();
        std::fs::write(&path, "listen = \"127.0.0.1:7000\"\nconcurrency = 8\n").ok();
        let options = Options {
            listen: Some("127.0.0.1:7001".into()),
            config: Some(path),
            ..Options::default()
        };
        let config = Config::resolve(options).ok();
        assert_eq!(config.as_ref().map(|c| c.listen.port()), Some(7001));
        assert_eq!(config.map(|c| c.concurrency), Some(8));
    }
}
