//! Serving: one gRPC server with the registry's services, health checking and reflection, limits,
//! structured logs per call, and graceful shutdown.
//!
//! `registryd` and each single-service binary call [`run`] with the services they host. Tests
//! call [`serve`] with their own listener and shutdown future.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;

use crate::access::Grant;
use crate::config::Config;
use crate::error::ApiError;
use crate::tls::Served;
use crate::writer::Caller;

/// The metadata key naming the caller, recorded with every write as its actor.
pub const ACTOR_HEADER: &str = "x-registry-actor";

/// The metadata key tying related requests together.
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// The compression every service accepts, and answers with to a client that accepts it
/// (`grpc-accept-encoding: gzip`): a history or an export is text that shrinks several times;
/// a client that does not ask gets plain messages.
pub const GZIP: tonic::codec::CompressionEncoding = tonic::codec::CompressionEncoding::Gzip;

/// Set when the process begins to shut down: long-lived calls (change feeds) end themselves so
/// that the graceful shutdown does not wait on them. One per process: a process serves once.
static SHUTTING_DOWN: std::sync::OnceLock<tokio::sync::watch::Sender<bool>> =
    std::sync::OnceLock::new();

fn shutting_down_sender() -> &'static tokio::sync::watch::Sender<bool> {
    SHUTTING_DOWN.get_or_init(|| tokio::sync::watch::channel(false).0)
}

/// Completes when the process begins to shut down.
pub async fn shutting_down() {
    let mut flag = shutting_down_sender().subscribe();
    let _ = flag.wait_for(|down| *down).await;
}

/// Longest accepted `request_id`.
const MAX_REQUEST_ID: usize = 128;

/// Sets up structured logs (`RUST_LOG` filters; `info` by default) and, with `otlp`, the export
/// of traces as `service` (inside the runtime); returns what to shut down at exit.
///
/// # Errors
///
/// When the trace exporter cannot be built.
pub fn init_logs(
    format: crate::config::LogFormat,
    otlp: Option<&str>,
    service: &str,
) -> Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>, String> {
    use std::io::IsTerminal;
    use tracing_subscriber::{prelude::*, EnvFilter};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(std::io::stderr);
    let lines = match format {
        crate::config::LogFormat::Text => lines.with_ansi(std::io::stderr().is_terminal()).boxed(),
        // A call's span (its RPC, request and correlation ids, caller) on every line of it.
        crate::config::LogFormat::Json => lines
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    let (traces, provider) = match otlp {
        Some(endpoint) => {
            let (layer, provider) = crate::traces::layer(endpoint, service)?;
            // The registry's own spans, whatever RUST_LOG keeps for the log lines; never the
            // gRPC stack's, which the exporter itself runs on.
            let spans = EnvFilter::new(
                "info,h2=off,hyper=off,hyper_util=off,tonic=off,tower=off,opentelemetry=off,\
                 opentelemetry_sdk=off,opentelemetry_otlp=off",
            );
            (Some(layer.with_filter(spans)), Some(provider))
        }
        None => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(traces)
        .try_init();
    Ok(provider)
}

/// Who calls with the write request `request`, from its credentials and metadata.
pub fn caller<R: crate::WriteRequest>(request: &Request<R>) -> Result<Caller, ApiError> {
    caller_in(
        request.metadata(),
        &Who::of(request.extensions())?,
        request.get_ref(),
    )
}

/// Who a call comes from, as far as the server knows: under a policy, the identity the access
/// layer authenticated ([`crate::access`]); else the name in the caller's certificate, if any.
#[derive(Clone, Debug)]
pub struct Who {
    certified: Option<String>,
    grant: Option<Grant>,
}

impl Who {
    /// From a call's extensions.
    pub fn of(extensions: &tonic::Extensions) -> Result<Self, ApiError> {
        let grant = extensions.get::<Grant>().cloned();
        let certified = match &grant {
            Some(grant) => Some(grant.identity.name.clone()),
            None => crate::access::certificate_name(extensions)?,
        };
        Ok(Self { certified, grant })
    }
}

/// Who calls with the write request `request`, from a call's metadata and its caller (one call
/// of an import carries many requests).
pub fn caller_in<R: crate::WriteRequest>(
    metadata: &tonic::metadata::MetadataMap,
    who: &Who,
    request: &R,
) -> Result<Caller, ApiError> {
    let request_id = request.request_id().trim();
    if request_id.is_empty() {
        return Err(ApiError::invalid(
            "request_id",
            "is required: a key that makes retries safe (a UUID)",
        ));
    }
    if request_id.len() > MAX_REQUEST_ID || request_id.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "request_id",
            format!("must be at most {MAX_REQUEST_ID} bytes without control characters"),
        ));
    }
    let header = |key: &str| {
        metadata
            .get(key)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let declared = declared_actor(metadata)?;
    // The authenticated name is who calls; a different declared actor is whom it calls for.
    let actor = match (who.certified.as_deref(), declared) {
        (Some(certified), Some(declared)) if certified != declared => {
            format!("{certified} for {declared}")
        }
        (Some(certified), _) => certified.to_owned(),
        (None, Some(declared)) => declared,
        (None, None) => "anonymous".to_owned(),
    };
    Ok(Caller {
        actor,
        request_id: request_id.to_owned(),
        correlation_id: header(CORRELATION_HEADER),
        fingerprint: fingerprint(request),
        grant: who.grant.clone(),
    })
}

/// The fingerprint of a write request: the first 128 bits of SHA-256 over its RPC's name and
/// its protobuf encoding (deterministic for one message), in hex. A retry sends the same bytes;
/// another request under the same `request_id` does not.
pub fn fingerprint<R: crate::WriteRequest>(request: &R) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(R::RPC.as_bytes());
    hasher.update([0]);
    hasher.update(request.encode_to_vec());
    hasher.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The longest accepted `x-registry-actor`, in characters.
const MAX_ACTOR_CHARS: usize = 200;

/// The actor the caller declares in `x-registry-actor` (`None` when absent or blank): its
/// bytes as sent, which must be UTF-8 (a Vietnamese name is recorded as written), at most
/// [`MAX_ACTOR_CHARS`] characters, without control characters. A bad one is refused, never
/// replaced by "anonymous".
fn declared_actor(metadata: &tonic::metadata::MetadataMap) -> Result<Option<String>, ApiError> {
    let Some(value) = metadata.get(ACTOR_HEADER) else {
        return Ok(None);
    };
    let actor = std::str::from_utf8(value.as_encoded_bytes())
        .map_err(|_| ApiError::invalid(ACTOR_HEADER, "is not valid UTF-8"))?;
    let length = actor.chars().count();
    if length > MAX_ACTOR_CHARS {
        return Err(ApiError::invalid(
            ACTOR_HEADER,
            format!("is {length} characters long; at most {MAX_ACTOR_CHARS}"),
        ));
    }
    if actor.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            ACTOR_HEADER,
            "must not contain control characters",
        ));
    }
    Ok((!actor.trim().is_empty()).then(|| actor.to_owned()))
}

/// How long the caller is willing to wait, from its `grpc-timeout`, less a margin to answer.
pub fn patience<T>(request: &Request<T>) -> Duration {
    let header = request
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok());
    let Some((digits, unit)) = header.and_then(|h| h.split_at_checked(h.len().saturating_sub(1)))
    else {
        return crate::reader::MAX_WAIT;
    };
    let Ok(amount) = digits.parse::<u64>() else {
        return crate::reader::MAX_WAIT;
    };
    let timeout = match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return crate::reader::MAX_WAIT,
    };
    timeout.mul_f64(0.9)
}

/// The longest a unary call may take, whatever its own deadline (`--timeout-seconds`); set
/// once by [`serve`].
static CALL_LIMIT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

/// Runs one unary call within the server's limit ([`CALL_LIMIT`]; the caller's own deadline
/// applies too): logs its outcome with the request id and maps its error to a status.
pub async fn call<T>(
    rpc: &'static str,
    request_id: &str,
    work: impl Future<Output = Result<T, ApiError>>,
) -> Result<Response<T>, Status> {
    let limit = CALL_LIMIT.get().copied().unwrap_or(Duration::MAX);
    let bounded = async {
        match tokio::time::timeout(limit, work).await {
            Ok(outcome) => outcome,
            Err(_) => Err(ApiError::TooLong(limit)),
        }
    };
    call_unbounded(rpc, request_id, bounded).await
}

/// Runs a client-streaming call (an import: it lasts as long as its stream, bounded by the
/// caller's deadline only): logs its outcome and maps its error to a status, as [`call`].
pub async fn call_unbounded<T>(
    rpc: &'static str,
    request_id: &str,
    work: impl Future<Output = Result<T, ApiError>>,
) -> Result<Response<T>, Status> {
    if !request_id.is_empty() {
        tracing::Span::current().record("request_id", request_id);
    }
    let started = Instant::now();
    let outcome = work.await;
    let micros = started.elapsed().as_micros() as u64;
    match &outcome {
        Ok(_) => tracing::info!(rpc, request_id, micros, "ok"),
        Err(e) => {
            let code = e.code();
            let server_side = matches!(
                code,
                tonic::Code::Unavailable | tonic::Code::DataLoss | tonic::Code::Internal
            );
            if server_side {
                tracing::error!(rpc, request_id, micros, ?code, error = %e, "failed");
            } else {
                tracing::info!(rpc, request_id, micros, ?code, error = %e, "rejected");
            }
        }
    }
    outcome.map(Response::new).map_err(Status::from)
}

/// Serves `routes` (plus health and reflection) on `listener` until `shutdown` completes, then
/// stops accepting, lets in-flight calls finish within the grace period, and returns.
pub async fn serve(
    config: &Config,
    listener: TcpListener,
    routes: Routes,
    services: &[Hosted],
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    // A server that begins is not shutting down (a process may host one after another).
    shutting_down_sender().send_replace(false);
    let (reporter, health) = tonic_health::server::health_reporter();
    let service_names: Vec<&'static str> = services.iter().map(|s| s.name).collect();
    // NOT_SERVING until each service's state has reached the store's head as it was at start
    // (the server's overall status, "", once all have).
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    // One task per reader (registryd's services share one): it waits for the reader's catch-up,
    // says SERVING for the services that answer from it, then watches its lag.
    let mut groups: Vec<(Option<crate::Reader>, Vec<&'static str>)> = Vec::new();
    for hosted in services {
        reporter
            .set_service_status(hosted.name, ServingStatus::NotServing)
            .await;
        let same = |reader: &Option<crate::Reader>| match (reader, &hosted.reader) {
            (Some(a), Some(b)) => a.same_as(b),
            (a, b) => a.is_none() && b.is_none(),
        };
        match groups.iter_mut().find(|(reader, _)| same(reader)) {
            Some((_, names)) => names.push(hosted.name),
            None => groups.push((hosted.reader.clone(), vec![hosted.name])),
        }
    }
    let mut readiness = Vec::new();
    for (reader, names) in groups {
        let reporter = reporter.clone();
        let max_lag = config.max_lag;
        readiness.push(tokio::spawn(async move {
            if let Some(reader) = &reader {
                reader.ready().await;
            }
            for name in &names {
                reporter
                    .set_service_status(*name, ServingStatus::Serving)
                    .await;
                tracing::info!(service = name, "serving");
            }
            if let Some(reader) = reader {
                tokio::spawn(watch_lag(reporter, names, reader, max_lag));
            }
        }));
    }
    let all = reporter.clone();
    tokio::spawn(async move {
        for ready in readiness {
            let _ = ready.await;
        }
        all.set_service_status("", ServingStatus::Serving).await;
    });
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(registry_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| {
            tracing::error!(error = %e, "reflection could not be built");
            e
        });
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(registry_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha();
    let mut routes = routes
        .add_service(health)
        .add_service(crate::access::AccessApi::server());
    if let Ok(reflection) = reflection_v1 {
        routes = routes.add_service(reflection);
    }
    if let Ok(reflection) = reflection_v1alpha {
        routes = routes.add_service(reflection);
    }
    let names: Vec<String> = service_names.iter().map(|s| (*s).to_owned()).collect();
    let grace = config.grace;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections; finishing calls in flight");
        shutting_down_sender().send_replace(true);
        for name in &names {
            reporter
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        let _ = stop_tx.send(());
    };
    // The server's limit is applied by `call` to unary calls only: an import streams for as
    // long as its file takes (the caller's own deadline still applies to every call).
    let _ = CALL_LIMIT.set(config.timeout);
    tokio::spawn(reload_on_hangup(config.access.clone(), config.tls.clone()));
    let router = tonic::transport::Server::builder()
        // Browsers over plaintext speak HTTP/1.1 to the auditors' view (`/ui`).
        .accept_http1(true)
        .concurrency_limit_per_connection(config.concurrency)
        .layer(crate::metrics::CallsLayer)
        .layer(crate::access::GateLayer::new(
            config.access.clone(),
            config.access_log.clone(),
        ))
        .add_routes(routes);
    let server: std::pin::Pin<Box<dyn Future<Output = _> + Send>> =
        match &config.tls {
            Some(tls) => Box::pin(router.serve_with_incoming_shutdown(
                crate::tls::incoming(listener, Arc::clone(tls)),
                signal,
            )),
            None => Box::pin(router.serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                signal,
            )),
        };
    tokio::pin!(server);
    tokio::select! {
        outcome = &mut server => outcome,
        () = async {
            let _ = stop_rx.await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(?grace, "calls still in flight after the grace period were dropped");
            Ok(())
        }
    }
}

/// At each SIGHUP, reads the policy and the TLS files again (a new policy, key file or
/// revocation list takes effect without a restart); what does not load is logged and the
/// previous stays in force.
async fn reload_on_hangup(policy: Option<Arc<crate::access::Policy>>, tls: Option<Arc<Served>>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("SIGHUP cannot be watched: the policy is read at start only");
            return;
        };
        while hangups.recv().await.is_some() {
            if let Some(policy) = &policy {
                match policy.reload() {
                    Ok(()) => tracing::info!("the access policy was read again"),
                    Err(e) => {
                        tracing::error!(error = %e, "the access policy was not reloaded; the previous stays in force")
                    }
                }
            }
            if let Some(tls) = &tls {
                let tokens = policy
                    .as_ref()
                    .is_some_and(|p| p.current().accepts_tokens());
                match tls.reload(tokens) {
                    Ok(()) => tracing::info!("the TLS files were read again"),
                    Err(e) => {
                        tracing::error!(error = %e, "the TLS files were not reloaded; the previous stay in force")
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (policy, tls);
}

/// Keeps the health of the services answering from `reader` true once they are serving:
/// NOT_SERVING while its store cannot be reached or its read models have stayed behind the
/// store's head for longer than `max_lag`, SERVING again once they are back.
async fn watch_lag(
    reporter: tonic_health::server::HealthReporter,
    names: Vec<&'static str>,
    reader: crate::Reader,
    max_lag: Duration,
) {
    let mut behind_since: Option<Instant> = None;
    let mut serving = true;
    let mut tick = tokio::time::interval(Duration::from_secs(1).min(max_lag));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            // Shutting down: NOT_SERVING is set for good by `serve`.
            () = shutting_down() => return,
        }
        // A store behind a partition may not answer at all: that is unreachable too.
        let head = tokio::time::timeout(
            max_lag,
            registry_eventstore::EventStore::head(reader.store()),
        )
        .await
        .unwrap_or_else(|_| {
            Err(registry_eventstore::StoreError::Backend {
                message: format!("no answer in {max_lag:?}"),
                uncertain: false,
            })
        });
        let healthy = match head {
            Err(e) => {
                if serving {
                    tracing::warn!(services = ?names, error = %e, "the store cannot be reached");
                }
                false
            }
            Ok(head) if reader.position() >= head => {
                behind_since = None;
                crate::metrics::reader(head, reader.position(), Duration::ZERO);
                true
            }
            Ok(head) => {
                let behind = behind_since.get_or_insert_with(Instant::now).elapsed();
                crate::metrics::reader(head, reader.position(), behind);
                behind <= max_lag
            }
        };
        if healthy != serving {
            serving = healthy;
            let status = if healthy {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            tracing::warn!(services = ?names, ?status, "health changed");
            for name in &names {
                reporter.set_service_status(*name, status).await;
            }
        }
    }
}

/// A service a process hosts: the reader whose catch-up it waits for before it says SERVING
/// (none for a service whose state is ready when it is built, as the writer's is), and the
/// states whose snapshots are saved when the process stops.
#[derive(Clone)]
pub struct Hosted {
    /// The gRPC service name.
    pub name: &'static str,
    /// The reader it answers from.
    pub reader: Option<crate::Reader>,
    /// The writer it records with.
    pub writer: Option<crate::Writer>,
}

impl Hosted {
    /// A service that records with `writer`.
    pub fn writing(name: &'static str, writer: &crate::Writer) -> Self {
        Self {
            name,
            reader: None,
            writer: Some(writer.clone()),
        }
    }

    /// A service that answers from `reader`.
    pub fn reading(name: &'static str, reader: &crate::Reader) -> Self {
        Self {
            name,
            reader: Some(reader.clone()),
            writer: None,
        }
    }

    /// The same service, recording with `writer` too.
    pub fn and_writing(self, writer: &crate::Writer) -> Self {
        Self {
            writer: Some(writer.clone()),
            ..self
        }
    }
}

/// Saves a snapshot of every state the hosted services hold, once each (a stopping process:
/// the next start loads them).
async fn save_snapshots(services: &[Hosted]) {
    let mut writers: Vec<&crate::Writer> = Vec::new();
    let mut readers: Vec<&crate::Reader> = Vec::new();
    for service in services {
        if let Some(writer) = &service.writer {
            if !writers.iter().any(|w| w.same_as(writer)) {
                writers.push(writer);
            }
        }
        if let Some(reader) = &service.reader {
            if !readers.iter().any(|r| r.same_as(reader)) {
                readers.push(reader);
            }
        }
    }
    for writer in writers {
        if let Err(e) = writer.save_snapshot(false).await {
            tracing::warn!(error = %e, "the writer's snapshot was not saved at shutdown");
        }
    }
    for reader in readers {
        if let Err(e) = reader.save_snapshot(true).await {
            tracing::warn!(error = %e, "the read models' snapshot was not saved at shutdown");
        }
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Serves as [`serve`] does, then saves the services' snapshots and closes `store` (its last
/// checkpoint signed): a planned stop.
pub async fn serve_then_close(
    config: &Config,
    listener: TcpListener,
    routes: Routes,
    services: &[Hosted],
    store: &registry_eventstore::AnyStore,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    serve(config, listener, routes, services, shutdown).await?;
    save_snapshots(services).await;
    store.close().await;
    Ok(())
}

/// Binds the configured address, logs it, serves until SIGINT or SIGTERM, then saves the
/// snapshots and closes `store`.
pub async fn run(
    config: &Config,
    routes: Routes,
    services: &[Hosted],
    store: &registry_eventstore::AnyStore,
) -> Result<(), Box<dyn std::error::Error>> {
    let service_names: Vec<&str> = services.iter().map(|s| s.name).collect();
    let key = config
        .page_token_key
        .load()
        .map_err(|e| format!("the page-token key: {e}"))?;
    crate::paging::use_key(key);
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    tracing::info!(address = %listener.local_addr()?, services = ?service_names, tls = config.tls.is_some(), "listening");
    // Tests and scripts read the bound address from this line on standard output.
    println!("listening on {}", listener.local_addr()?);
    serve_then_close(config, listener, routes, services, store, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// The `main` of `registryd`: reads the configuration (exit 64 when bad), opens the store (exit
/// 69 when it cannot), builds the services `--services` names with `build`, and serves until
/// SIGINT or SIGTERM (exit 0; 1 when serving failed).
pub fn main_with<F, Fut>(build: F) -> !
where
    F: FnOnce(Config, registry_eventstore::AnyStore) -> Fut,
    Fut: Future<Output = Result<(Routes, Vec<Hosted>), ApiError>>,
{
    main_hosting(Config::from_process(), build)
}

/// The `main` of a binary that hosts one service, `service`, whatever `--services` says.
pub fn main_of<F, Fut>(service: &str, build: F) -> !
where
    F: FnOnce(Config, registry_eventstore::AnyStore) -> Fut,
    Fut: Future<Output = Result<(Routes, Vec<Hosted>), ApiError>>,
{
    let mut config = Config::from_process();
    config.services = vec![service.to_owned()];
    main_hosting(config, build)
}

fn main_hosting<F, Fut>(config: Config, build: F) -> !
where
    F: FnOnce(Config, registry_eventstore::AnyStore) -> Fut,
    Fut: Future<Output = Result<(Routes, Vec<Hosted>), ApiError>>,
{
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(70);
        }
    };
    // The trace exporter's connection lives on the runtime.
    let traces = {
        let _inside = runtime.enter();
        let service = format!("registryd ({})", config.services.join(","));
        match init_logs(config.log_format, config.otlp_endpoint.as_deref(), &service) {
            Ok(traces) => traces,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(64);
            }
        }
    };
    let code = runtime.block_on(async {
        let signer = match config.log_key.load() {
            Ok(signer) => signer,
            Err(e) => {
                tracing::error!(error = %e, "cannot load the log's signing key");
                return 69;
            }
        };
        let log = !matches!(config.log_key, crate::config::LogKey::Off);
        let writes = config
            .services
            .iter()
            .any(|s| s == "command" || s == "admin");
        let store = match config.store.open(signer, log, writes).await {
            Ok(store) => store,
            Err(e) => {
                tracing::error!(store = %config.store.describe(), error = %e, "cannot open the store");
                return 69;
            }
        };
        tracing::info!(store = %config.store.describe(), "store opened");
        if let Some(listen) = config.metrics_listen {
            if let Err(e) = crate::metrics::install(listen) {
                tracing::error!(error = %e, "cannot serve the metrics");
                return 69;
            }
            tracing::info!(%listen, "serving Prometheus metrics");
        }
        let closed_at_stop = store.clone();
        let (routes, names) = match build(config.clone(), store).await {
            Ok(built) => built,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the services");
                return 69;
            }
        };
        match run(&config, routes, &names, &closed_at_stop).await {
            Ok(()) => 0,
            Err(e) => {
                tracing::error!(error = %e, "serving failed");
                1
            }
        }
    });
    // The spans not yet sent go now, while the runtime still runs the exporter's connection.
    if let Some(traces) = traces {
        if let Err(e) = traces.shutdown() {
            tracing::warn!(error = %e, "the last spans were not all exported");
        }
    }
    drop(runtime);
    std::process::exit(code)
}
