//! OpenTelemetry traces, for operators who follow a call across systems: with
//! `--otlp-endpoint`, every call's span and the spans inside it (`decide`, `append`, `commit`,
//! `wait_for_position`) are exported over OTLP/gRPC, the call's span a child of the caller's
//! when the call carries W3C `traceparent` metadata. Without it nothing is set up and a call
//! costs what it did.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};

/// Whether spans are exported (and so whether a call's `traceparent` is worth reading).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// The layer that turns `tracing` spans into OpenTelemetry spans sent to `endpoint`
/// (`http://collector:4317`) in batches, as `service` (`registryd`), and the provider to shut
/// down at exit (which sends what is left). Must run inside the Tokio runtime: the exporter's
/// connection lives there.
///
/// # Errors
///
/// When the exporter cannot be built from `endpoint`.
pub fn layer<S>(
    endpoint: &str,
    service: &str,
) -> Result<(OpenTelemetryLayer<S, SdkTracer>, SdkTracerProvider), String>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| format!("--otlp-endpoint: {e}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build();
    let tracer = provider.tracer("registry");
    EXPORTING.store(true, Ordering::SeqCst);
    Ok((tracing_opentelemetry::layer().with_tracer(tracer), provider))
}

/// Makes `span` (a call's) a child of the span its caller named in `traceparent` (and
/// `tracestate`), when spans are exported and the header is well formed; otherwise the call
/// starts a trace of its own.
pub fn adopt_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    if !EXPORTING.load(Ordering::Relaxed) || !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    span.set_parent(parent);
}

/// A request's headers, as the propagator reads them.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}
