//! What operators watch, from a real `registryd`. Prometheus metrics over real HTTP: after known
//! calls, the counts per RPC and code, the handling-time histograms, the store's commits, the
//! readers' place against the head and the snapshots' times are what those calls make them; a
//! made-up path adds no series; an address that cannot be bound stops the daemon. Logs: JSON
//! lines on standard error, each line of a call naming its RPC, request id, correlation id and
//! caller.

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
