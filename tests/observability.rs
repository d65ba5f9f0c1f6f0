//! What operators watch, from a real `registryd`. Prometheus metrics over real HTTP: after known
//! calls, the counts per RPC and code, the handling-time histograms, the store's commits, the
//! readers' place against the head and the snapshots' times are what those calls make them; a
//! made-up path adds no series; an address that cannot be bound stops the daemon. Logs: JSON
//! lines on standard error, each line of a call naming its RPC, request id, correlation id and
//! caller. Traces: received by an OTLP/gRPC collector the test runs, each call's span a child of
//! the `traceparent` the call carried, with the decision, the commit and the wait for a position
//! inside it.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use registry_client::v1;
use support::{sample, scrape, Daemon, Registrar};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_count_what_the_calls_did() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = support::free_address();
    let daemon = Daemon::embedded(
        dir.path(),
        &["--metrics-listen", &metrics, "--snapshot-every-events", "3"],
    );
    let client = daemon.client().await;
    let mut registrar = Registrar::new(client.clone());
    for n in 0..5 {
        registrar.person(&format!("Người {n}")).await;
    }
    let head: f64 = registrar.last.parse().unwrap();
    let mut query = client.query();
    for _ in 0..3 {
        let refused = query
            .get_person(v1::GetPersonRequest {
                name: "persons/not-a-uuid".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
    }
    let missing = query
        .get_person(v1::GetPersonRequest {
            name: format!("persons/{}", uuid::Uuid::now_v7()),
            date: "2024-01-01".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    // A path the server does not serve.
    let mut raw = tonic::client::Grpc::new(
        tonic::transport::Channel::from_shared(daemon.address.clone())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    raw.ready().await.unwrap();
    let unknown = raw
        .unary::<_, (), _>(
            tonic::Request::new(()),
            tonic::codegen::http::uri::PathAndQuery::from_static("/made.Up/Path"),
            tonic_prost_codec(),
        )
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::Unimplemented);

    // The readers' gauges are refreshed every second: wait for them to reach the head.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let text = loop {
        let text = scrape(&metrics).await;
        let at_head = sample(&text, "registry_reader_position", &[]) == Some(head);
        let saved = sample(
            &text,
            "registry_snapshot_saved_timestamp_seconds",
            &[("state", "writer")],
        )
        .is_some();
        if at_head && saved {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let command = [
        ("grpc_service", "registry.v1.CommandService"),
        ("grpc_method", "RegisterPerson"),
    ];
    let get = [
        ("grpc_service", "registry.v1.QueryService"),
        ("grpc_method", "GetPerson"),
    ];
    let handled = |labels: &[(&str, &str)], code: &str| {
        let mut all = labels.to_vec();
        all.push(("grpc_code", code));
        sample(&text, "grpc_server_handled_total", &all)
    };
    assert_eq!(handled(&command, "OK"), Some(5.0), "{text}");
    assert_eq!(handled(&get, "INVALID_ARGUMENT"), Some(3.0));
    assert_eq!(handled(&get, "NOT_FOUND"), Some(1.0));
    assert_eq!(handled(&get, "OK"), None);
    assert_eq!(
        handled(
            &[("grpc_service", "unknown"), ("grpc_method", "unknown")],
            "UNIMPLEMENTED"
        ),
        Some(1.0)
    );
    assert!(!text.contains("made.Up"), "a made-up path named a series");
    assert_eq!(
        sample(&text, "grpc_server_handling_seconds_count", &get),
        Some(4.0)
    );
    let within = sample(
        &text,
        "grpc_server_handling_seconds_bucket",
        &[get[0], get[1], ("le", "+Inf")],
    );
    assert_eq!(within, Some(4.0));
    // Five appends, one event each, each acknowledged after its commit.
    assert_eq!(
        sample(&text, "registry_store_commit_events_sum", &[]),
        Some(5.0)
    );
    let commits = sample(&text, "registry_store_commit_seconds_count", &[]).unwrap();
    assert!((1.0..=5.0).contains(&commits), "{commits}");
    assert_eq!(
        sample(&text, "registry_store_head_position", &[]),
        Some(head)
    );
    assert_eq!(sample(&text, "registry_reader_lag_events", &[]), Some(0.0));
    assert_eq!(sample(&text, "registry_reader_lag_seconds", &[]), Some(0.0));
    // The runtime's tasks: at least the server's, the follower's and this gauge's own.
    let tasks = sample(&text, "registry_runtime_tasks", &[]).expect("registry_runtime_tasks");
    assert!(tasks >= 3.0, "{tasks} tasks");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let saved = sample(
        &text,
        "registry_snapshot_saved_timestamp_seconds",
        &[("state", "writer")],
    )
    .unwrap();
    assert!(
        (now - 60.0..=now + 1.0).contains(&saved),
        "{saved} vs {now}"
    );
    daemon.stop();
}

/// The codec of a call whose messages are empty.
fn tonic_prost_codec() -> tonic::codec::ProstCodec<(), ()> {
    tonic::codec::ProstCodec::default()
}

#[test]
fn an_address_that_cannot_be_bound_stops_registryd() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(registry_testkit::daemon::registryd_binary())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            &address,
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    // The daemon's log (stdout, for now) says why.
    let said = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(69), "{said}");
    assert!(
        said.contains(&format!("--metrics-listen {address}")),
        "{said}"
    );
    let output = std::process::Command::new(registry_testkit::daemon::registryd_binary())
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "nowhere"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("--metrics-listen: \"nowhere\""), "{stderr}");
}

/// `--log-format json`: every line is a JSON object on standard error, and a call's line names
/// its RPC, request id, correlation id and caller; text logs carry no colour codes when
/// standard error is not a terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_log_lines_name_its_rpc_request_correlation_and_caller() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("json");
    let daemon = registry_testkit::daemon::Daemon::start_logging(
        &registry_testkit::daemon::registryd_binary(),
        &["--data-dir", data.to_str().unwrap(), "--log-format", "json"],
        "info",
    );
    let client = daemon_client(&daemon.address)
        .await
        .with_actor("clerk-7")
        .unwrap();
    let mut request = tonic::Request::new(v1::RegisterPersonRequest {
        request_id: "req-log-1".into(),
        display_name: "Trần Văn Nhật Ký".into(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-correlation-id", "corr-42".parse().unwrap());
    client.command().register_person(request).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let line = loop {
        if let Some(line) = daemon.logged("req-log-1").into_iter().next() {
            break line;
        }
        assert!(std::time::Instant::now() < deadline, "no line of the call");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
    let span = &parsed["span"];
    assert_eq!(
        span["rpc"], "registry.v1.CommandService/RegisterPerson",
        "{line}"
    );
    assert_eq!(span["request_id"], "req-log-1", "{line}");
    assert_eq!(span["correlation_id"], "corr-42", "{line}");
    assert_eq!(span["caller"], "clerk-7", "{line}");
    assert_eq!(parsed["level"], "INFO");
    for line in daemon.logged("") {
        assert!(
            serde_json::from_str::<serde_json::Value>(&line).is_ok()
                || line.starts_with("listening on"),
            "not JSON: {line}"
        );
    }
    daemon.stop();

    // Text, to a pipe: no colour codes.
    let text = registry_testkit::daemon::Daemon::start_logging(
        &registry_testkit::daemon::registryd_binary(),
        &["--data-dir", dir.path().join("text").to_str().unwrap()],
        "info",
    );
    let client = daemon_client(&text.address).await;
    client
        .command()
        .register_person(v1::RegisterPersonRequest {
            request_id: "req-log-2".into(),
            display_name: "Lê Thị Văn Bản".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let line = loop {
        if let Some(line) = text.logged("req-log-2").into_iter().next() {
            break line;
        }
        assert!(std::time::Instant::now() < deadline, "no line of the call");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(!line.contains('\u{1b}'), "colour codes in a pipe: {line:?}");
    assert!(
        line.contains("rpc=registry.v1.CommandService/RegisterPerson"),
        "{line}"
    );
    text.stop();
}

/// A client of the daemon at `address`.
async fn daemon_client(address: &str) -> registry_client::Client {
    for _ in 0..50 {
        if let Ok(client) = registry_client::Client::connect(address).await {
            return client;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("cannot connect to {address}");
}

/// An OTLP/gRPC collector of the test's own: keeps every span it is sent, with the service
/// name of its resource.
#[derive(Clone, Default)]
struct Collector(std::sync::Arc<std::sync::Mutex<Vec<(String, otlp::trace::v1::Span)>>>);

use opentelemetry_proto::tonic as otlp;
use otlp::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use otlp::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut kept = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(otlp::common::v1::any_value::Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    kept.push((service.clone(), span));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// The trace the traced calls belong to.
const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

/// `request` as a call made inside the caller's span `parent` of [`TRACE`].
fn traced<T>(parent: &str, request: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(request);
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE}-{parent}-01").parse().unwrap(),
    );
    request
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_reach_an_otlp_collector_as_children_of_the_callers_span() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(registry_testkit::daemon::registryd_binary());
    command
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(["--otlp-endpoint", &format!("http://{address}")])
        // Batches leave every 100 ms (the SDK's variable), not every 5 s.
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let daemon = Daemon::spawn(command);
    let client = daemon.client().await;

    let trace = TRACE;
    let written = client
        .command()
        .register_person(traced(
            "b7ad6b7169203331",
            v1::RegisterPersonRequest {
                request_id: registry_client::request_id(),
                display_name: "Người Được Theo Dõi".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    client
        .query()
        .get_person(traced(
            "00f067aa0ba902b7",
            v1::GetPersonRequest {
                name: written.name,
                date: "2024-01-01".into(),
                min_position: written.commit_position,
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    // An untraced call starts a trace of its own.
    support::store_stats(&client).await;

    let wanted = ["decide", "commit", "wait_for_position"];
    let started = std::time::Instant::now();
    let spans = loop {
        let spans = collector.0.lock().unwrap().clone();
        let names: Vec<&str> = spans.iter().map(|(_, s)| s.name.as_str()).collect();
        if wanted.iter().all(|w| names.contains(w))
            && names.iter().filter(|n| **n == "call").count() >= 3
        {
            break spans;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "spans received: {names:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        spans
            .iter()
            .all(|(service, _)| service.starts_with("registryd")),
        "{spans:?}"
    );
    let of_trace: Vec<&otlp::trace::v1::Span> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| hex(&s.trace_id) == trace)
        .collect();
    let call = |parent: &str| {
        of_trace
            .iter()
            .find(|s| s.name == "call" && hex(&s.parent_span_id) == parent)
            .unwrap_or_else(|| panic!("no call span under {parent}: {of_trace:?}"))
    };
    let (write, read) = (call("b7ad6b7169203331"), call("00f067aa0ba902b7"));
    // Inside the call: its decision and the commit it waited for; the read's wait.
    let child = |name: &str, of: &otlp::trace::v1::Span| {
        assert!(
            of_trace
                .iter()
                .any(|s| s.name == name && s.parent_span_id == of.span_id),
            "no {name} span inside {:?}: {of_trace:?}",
            of.name
        );
    };
    child("decide", write);
    child("commit", write);
    child("wait_for_position", read);
    // The untraced call is a root of another trace.
    assert!(spans.iter().any(|(_, s)| s.name == "call"
        && hex(&s.trace_id) != trace
        && s.parent_span_id.is_empty()));
}

#[test]
fn an_otlp_endpoint_that_is_no_uri_is_refused_at_start() {
    let output = std::process::Command::new(registry_testkit::daemon::registryd_binary())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--otlp-endpoint",
            "collector:4317",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--otlp-endpoint"));
}
