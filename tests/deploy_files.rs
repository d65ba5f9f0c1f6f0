//! The deploy files, checked without a cluster or a Docker engine:
//!
//! - every option they give `registryd` or `regctl` (`--name`) is one the binaries know (their
//!   `--help`), so a renamed option cannot leave a unit or a manifest that no longer starts;
//! - the Kubernetes manifests against the API's schemas (`kubernetes-validate --strict`, which
//!   carries them), the compose file against the compose schema (`docker-compose config`), the
//!   systemd units with `systemd-analyze verify` (the binaries placed where the units expect
//!   them, under a root of the test's own).
//!
//! A missing tool is a visible notice, or a failure when `REGISTRY_REQUIRE_DEPLOY_TOOLS=1`
//! (`.ci/run` installs them and sets it).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

use registry_testkit::daemon::{registryd_binary, workspace_binary};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn files(dir: &str, extension: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(deploy().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no {dir}/*.{extension}");
    found
}

fn help(binary: &Path, args: &[&str]) -> String {
    let output = Command::new(binary)
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success(), "{} --help", binary.display());
    String::from_utf8(output.stdout).unwrap()
}

/// The long options (`--name`) written in `text`.
fn options(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, _) in text.match_indices("--") {
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '-') {
            continue;
        }
        let name: String = text[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
            .collect();
        if name.starts_with(|c: char| c.is_ascii_lowercase()) {
            found.push(name);
        }
    }
    found
}

/// A tool the check needs, or `None` with a notice (a failure where it is required).
fn tool(name: &str) -> Option<()> {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(());
    }
    if std::env::var("REGISTRY_REQUIRE_DEPLOY_TOOLS").as_deref() == Ok("1") {
        panic!("{name} is required (REGISTRY_REQUIRE_DEPLOY_TOOLS=1) but not installed");
    }
    eprintln!("NOTICE: {name} is not installed; skipping its check of the deploy files");
    None
}

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_option_in_the_deploy_files_is_one_the_binaries_know() {
    let registryd = registryd_binary();
    let regctl = workspace_binary("registry-cli", "regctl");
    let known = [
        help(&registryd, &[]),
        help(&regctl, &[]),
        help(&regctl, &["health"]),
    ]
    .concat();
    let mut checked = 0;
    let all: Vec<PathBuf> = [
        files("systemd", "service"),
        files("k8s", "yaml"),
        files("compose", "yaml"),
        vec![deploy().join("Dockerfile")],
    ]
    .concat();
    for path in all {
        let text = std::fs::read_to_string(&path).unwrap();
        // What the files run, not what their comments tell an operator to type.
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect();
        for option in options(&lines.join("\n")) {
            // Options of the other programs the Dockerfile runs (cargo, useradd, COPY).
            if [
                "release",
                "locked",
                "system",
                "uid",
                "home-dir",
                "create-home",
                "from",
            ]
            .contains(&option.as_str())
            {
                continue;
            }
            assert!(
                known.contains(&format!("--{option}")),
                "{}: --{option} is not an option of registryd or regctl",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} options found");
}

#[test]
fn the_kubernetes_manifests_validate() {
    let Some(()) = tool("kubernetes-validate") else {
        return;
    };
    run(Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "-k", "1.30.0"])
        .args(files("k8s", "yaml")));
}

#[test]
fn the_compose_file_validates() {
    let Some(()) = tool("docker-compose") else {
        return;
    };
    run(Command::new("docker-compose")
        .arg("-f")
        .arg(deploy().join("compose/compose.yaml"))
        .args(["config", "--quiet"]));
}

#[test]
fn the_systemd_units_verify() {
    let Some(()) = tool("systemd-analyze") else {
        return;
    };
    // The units run /usr/local/bin/registryd: verify copies that run the one built here.
    // systemd-analyze only warns about a line it cannot parse: any complaint fails the test.
    let dir = tempfile::tempdir().unwrap();
    let binary = registryd_binary();
    for unit in files("systemd", "service") {
        let text = std::fs::read_to_string(&unit)
            .unwrap()
            .replace("/usr/local/bin/registryd", &binary.display().to_string());
        let copy = dir.path().join(unit.file_name().unwrap());
        std::fs::write(&copy, text).unwrap();
        let output = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
            .unwrap();
        let complaints = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && complaints.trim().is_empty(),
            "{}: {complaints}",
            unit.display()
        );
    }
}
