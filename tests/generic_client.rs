//! A generic client with no project code (Python `grpcio` with `grpcio-reflection`) lists the
//! services of a real `registryd` by server reflection and calls a query with messages built from
//! the reflected descriptors.
//!
//! Needs `pip install grpcio grpcio-reflection`. Without them the test prints a notice and
//! passes, unless `REGISTRY_REQUIRE_PYTHON_GRPC=1` (set by `.ci/run`, which installs them).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::process::Command;

use support::{Daemon, Registrar};

fn python_grpc_available() -> bool {
    Command::new("python3")
        .args(["-c", "import grpc, grpc_reflection"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generic_client_finds_the_services_by_reflection_and_calls_a_query() {
    if !python_grpc_available() {
        if std::env::var("REGISTRY_REQUIRE_PYTHON_GRPC").as_deref() == Ok("1") {
            panic!("python3 with grpcio and grpcio-reflection is required (REGISTRY_REQUIRE_PYTHON_GRPC=1)");
        }
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "NOTICE: python3 grpcio/grpcio-reflection not installed; skipping the generic client test");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::embedded(dir.path(), &[]);
    let mut r = Registrar::new(daemon.client().await);
    let ky = r.person("Nguyễn Xuân Ký").await;

    let address = daemon.address.trim_start_matches("http://").to_owned();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/reflection_client.py");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([script, &address, "nguyen xuan ky"])
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        output.status.success(),
        "the generic client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let services: Vec<&str> = answer["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    for service in [
        "registry.v1.CommandService",
        "registry.v1.QueryService",
        "registry.v1.AuditService",
        "registry.v1.AdminService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            services.contains(&service),
            "{service} not listed: {services:?}"
        );
    }
    let first = &answer["response"]["matches"][0];
    assert_eq!(first["person"].as_str(), Some(ky.as_str()), "{answer}");
    assert_eq!(first["displayName"].as_str(), Some("Nguyễn Xuân Ký"));
    assert_eq!(first["matchKind"].as_str(), Some("MATCH_KIND_FOLDED"));
}
