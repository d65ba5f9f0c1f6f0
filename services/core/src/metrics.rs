//! Prometheus metrics for operators, and the span that names each call in the logs: every
//! call's outcome and time, the store's head and how far
//! each reader is behind it, the store's commits, snapshots, rebuilds and access-control
//! denials.
//!
//! Libraries record through the `metrics` facade, which keeps nothing until a recorder is
//! installed; `registryd` installs the Prometheus exporter when `--metrics-listen` is given
//! ([`install`]), which serves the text format over HTTP (`GET /metrics`). Names follow the
//! gRPC ecosystem's (`grpc_server_handled_total`, `grpc_server_handling_seconds`) and, for the
//! registry's own, start with `registry_`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tracing::Instrument;

/// Calls handled, by service, method and status code.
pub const HANDLED: &str = "grpc_server_handled_total";
/// Time to handle a call (until its response headers), by service and method.
pub const HANDLING: &str = "grpc_server_handling_seconds";
/// Calls refused by the access policy, by action.
pub const DENIED: &str = "registry_access_denied_total";
/// The store's head position (its major part: the event count on the embedded store).
pub const STORE_HEAD: &str = "registry_store_head_position";
/// The position a replica's read models have folded (major part).
pub const READER_POSITION: &str = "registry_reader_position";
/// Events the read models are behind the store's head (stores whose positions count events).
pub const READER_LAG_EVENTS: &str = "registry_reader_lag_events";
/// How long the read models have been behind the store's head (0 at the head).
pub const READER_LAG_SECONDS: &str = "registry_reader_lag_seconds";

/// When each state's last snapshot was saved (unix seconds), by state (`writer`,
/// `read-models`): its age is `time() - registry_snapshot_saved_timestamp_seconds`.
pub const SNAPSHOT_SAVED: &str = "registry_snapshot_saved_timestamp_seconds";
/// How long a rebuild of the read models took.
pub const REBUILD_SECONDS: &str = "registry_rebuild_seconds";
/// The async runtime's live tasks (calls in flight, streams, followers, background work): one
/// that only grows is a leak no other figure shows.
pub const TASKS: &str = "registry_runtime_tasks";
pub use registry_eventstore::metrics::{COMMIT_EVENTS, COMMIT_SECONDS, QUEUE_DEPTH};

/// Histogram buckets of durations, in seconds: 50 µs to 10 s.
const SECONDS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

/// Histogram buckets of counts (events per commit).
const COUNTS: [f64; 12] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
];

/// Histogram buckets of long durations (rebuilds), in seconds.
const LONG: [f64; 10] = [0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// The calls the server knows, `/package.Service/Method`: others are counted as `unknown`, so
/// that no caller can add series by sending made-up paths.
fn known_paths() -> &'static HashSet<String> {
    static PATHS: OnceLock<HashSet<String>> = OnceLock::new();
    PATHS.get_or_init(|| {
        let mut paths = HashSet::new();
        for set in [
            registry_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ] {
            let Ok(files) = <prost_types::FileDescriptorSet as prost::Message>::decode(set) else {
                continue;
            };
            for file in &files.file {
                for service in &file.service {
                    for method in &service.method {
                        paths.insert(format!(
                            "/{}.{}/{}",
                            file.package(),
                            service.name(),
                            method.name()
                        ));
                    }
                }
            }
        }
        for reflection in [
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            paths.insert(reflection.to_owned());
        }
        paths
    })
}

/// Installs the Prometheus recorder and serves it on `listen`; an address that cannot be bound
/// is an error. Must run inside the Tokio runtime that serves it.
pub fn install(listen: SocketAddr) -> Result<(), String> {
    let _ = known_paths();
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .set_buckets_for_metric(Matcher::Full(HANDLING.into()), &SECONDS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(COMMIT_SECONDS.into()), &SECONDS))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(COMMIT_EVENTS.into()), &COUNTS))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(REBUILD_SECONDS.into()), &LONG))
        .and_then(PrometheusBuilder::install)
        .map_err(|e| format!("--metrics-listen {listen}: {e}"))?;
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async {
            let runtime = tokio::runtime::Handle::current();
            loop {
                metrics::gauge!(TASKS).set(runtime.metrics().num_alive_tasks() as f64);
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
    }
    Ok(())
}

/// A service and method of a call's path, `unknown` for a path the server does not serve.
fn labels(path: &str) -> (String, String) {
    // The auditors' pages, by kind (`offices`, `persons`, `search`, ...).
    if let Some(page) = crate::access::web_page(path) {
        return ("web".to_owned(), page.to_owned());
    }
    match path.trim_start_matches('/').split_once('/') {
        Some((service, method)) if known_paths().contains(path) => {
            (service.to_owned(), method.to_owned())
        }
        _ => ("unknown".to_owned(), "unknown".to_owned()),
    }
}

/// Counts a call refused by the access policy.
pub fn denied(action: &'static str) {
    metrics::counter!(DENIED, "action" => action).increment(1);
}

/// Records a reader's place against the store's head.
pub fn reader(
    head: Option<registry_eventstore::Position>,
    position: Option<registry_eventstore::Position>,
    behind: std::time::Duration,
) {
    let major = |p: Option<registry_eventstore::Position>| p.map_or(0, |p| p.commit);
    metrics::gauge!(STORE_HEAD).set(major(head) as f64);
    metrics::gauge!(READER_POSITION).set(major(position) as f64);
    // Positions count events where both parts are one sequence (the embedded store).
    if head.is_none_or(|h| h.commit == h.prepare) {
        metrics::gauge!(READER_LAG_EVENTS).set(major(head).saturating_sub(major(position)) as f64);
    }
    metrics::gauge!(READER_LAG_SECONDS).set(behind.as_secs_f64());
}

/// The layer that counts and times every call.
#[derive(Clone, Copy, Debug, Default)]
pub struct CallsLayer;

impl<S> tower::Layer<S> for CallsLayer {
    type Service = Calls<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Calls { inner }
    }
}

/// Counts and times every call (see [`CallsLayer`]).
#[derive(Clone, Debug)]
pub struct Calls<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for Calls<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The clone waits for readiness; the one made ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (service, method) = labels(request.uri().path());
        let started = Instant::now();
        let span = call_span(&request, &service, &method);
        // The layers inside (the access gate) name the caller in the span as they decide.
        let called = span.in_scope(|| inner.call(request));
        Box::pin(
            async move {
                let outcome = called.await;
            // A unary call's error comes in its headers; a stream's later error is not seen.
            let code = match &outcome {
                Ok(response) => crate::access::status_of(response),
                Err(_) => tonic::Code::Internal,
            };
            metrics::histogram!(HANDLING, "grpc_service" => service.clone(), "grpc_method" => method.clone())
                .record(started.elapsed().as_secs_f64());
            metrics::counter!(
                HANDLED,
                "grpc_service" => service,
                "grpc_method" => method,
                "grpc_code" => crate::access::code_name(code)
            )
            .increment(1);
                outcome
            }
            .instrument(span),
        )
    }
}

/// The span of a call, on every log line written while it runs: its RPC, and the caller's
/// correlation id and declared actor where given (the gate replaces the actor with the
/// authenticated caller; the handler adds the request id).
fn call_span<B>(request: &http::Request<B>, service: &str, method: &str) -> tracing::Span {
    let header = |name: &str| {
        request.headers().get(name).map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .chars()
                .take(100)
                .collect::<String>()
        })
    };
    let span = tracing::info_span!(
        "call",
        rpc = %format_args!("{service}/{method}"),
        request_id = tracing::field::Empty,
        correlation_id = tracing::field::Empty,
        caller = tracing::field::Empty,
    );
    if let Some(correlation) = header(crate::serve::CORRELATION_HEADER) {
        span.record("correlation_id", correlation.as_str());
    }
    if let Some(actor) = header(crate::serve::ACTOR_HEADER) {
        span.record("caller", actor.as_str());
    }
    crate::traces::adopt_parent(&span, request.headers());
    span
}
