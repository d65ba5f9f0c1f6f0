//! Who may reach the registry. Until it decides who may do what (issue 24), it serves only
//! loopback unless the operator says otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use registry_testkit::daemon::registryd_binary;

/// An address other machines can reach is refused at start (exit 64, naming the option and the
/// way out), before the store is opened.
#[test]
fn an_address_beyond_loopback_is_refused_without_allow_anonymous() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let output = std::process::Command::new(registryd_binary())
        .args(["--listen", "0.0.0.0:0", "--data-dir"])
        .arg(&data)
        .env_remove("REGISTRY_ALLOW_ANONYMOUS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("--listen: 0.0.0.0:0 is reachable from other machines")
            && stderr.contains("--allow-anonymous"),
        "{stderr}"
    );
    assert!(!data.exists(), "the store was opened");
}
