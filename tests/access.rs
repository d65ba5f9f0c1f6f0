//! Starting with and without a policy: without one the registry serves only loopback unless
//! the operator says otherwise; a policy that does not load stops it before it binds.

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

/// A policy whose rules do not validate stops the daemon before it binds (exit 64), naming the
/// rules file and the line; so does one naming an agency it does not define.
#[test]
fn an_invalid_policy_stops_registryd_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("registry.cedar");
    std::fs::write(
        &rules,
        "permit(principal, action == Registry::Action::\"read\", resource);\n\
         permit(principal, action == Registry::Action::\"erase\", resource);\n",
    )
    .unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "rules = \"registry.cedar\"\n").unwrap();
    let run = || {
        std::process::Command::new(registryd_binary())
            .args(["--listen", "0.0.0.0:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--policy")
            .arg(&policy)
            .output()
            .unwrap()
    };
    let output = run();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains(&format!("--policy: {}:2:", rules.display())),
        "{stderr}"
    );
    std::fs::write(&rules, "permit(principal, action, resource);\n").unwrap();
    std::fs::write(
        &policy,
        "rules = \"registry.cedar\"\n[callers.x]\nagency = \"nowhere\"\n",
    )
    .unwrap();
    let output = run();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("no agency \"nowhere\""), "{stderr}");
    assert!(!dir.path().join("data").exists(), "the store was opened");
}
