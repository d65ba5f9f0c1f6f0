//! Running `registryd` processes for end-to-end tests: start one on an ephemeral port (it prints
//! `listening on ADDRESS` on standard output), read what it logged (on standard error), stop it
//! with SIGTERM, kill it when the test ends.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// A running daemon, killed when dropped.
pub struct Daemon {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// What it logged (warnings, and what snapshots it loaded, saved or skipped).
    output: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Starts `binary` with `args` (plus `--listen 127.0.0.1:0`) and waits until it listens.
    ///
    /// # Panics
    ///
    /// When the daemon cannot start or exits before listening: the test cannot go on.
    pub fn start(binary: &Path, args: &[&str]) -> Self {
        Self::start_logging(binary, args, "warn,registry_service_core::snapshots=info")
    }

    /// As [`Daemon::start`], logging what `filter` (a `RUST_LOG` value) lets through.
    ///
    /// # Panics
    ///
    /// As [`Daemon::start`].
    pub fn start_logging(binary: &Path, args: &[&str], filter: &str) -> Self {
        let mut command = Command::new(binary);
        command.args(["--listen", "127.0.0.1:0"]).args(args);
        Self::spawn(command, filter)
    }

    /// Starts `command` (a daemon, or what runs one, such as `ip netns exec`), logging what
    /// `filter` lets through, and waits until it listens.
    ///
    /// # Panics
    ///
    /// As [`Daemon::start`].
    pub fn spawn(mut command: Command, filter: &str) -> Self {
        let mut child = command
            .env("RUST_LOG", filter)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{command:?} does not start: {e}"));
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            panic!("no standard output from {command:?}");
        };
        // Its log, on standard error, kept from the start (drained so it never blocks).
        let output = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&output);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                kept.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let mut lines = BufReader::new(stdout).lines();
        let mut before = Vec::new();
        let address = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(address) = line.strip_prefix("listening on ") {
                        break format!("http://{address}");
                    }
                    before.push(line);
                }
                _ => {
                    let status = child.wait();
                    std::thread::sleep(Duration::from_millis(100));
                    let logged = output.lock().unwrap_or_else(|e| e.into_inner()).join("\n");
                    panic!("{command:?} exited before listening: {status:?}\n{logged}");
                }
            }
        };
        // Keep draining standard output so the daemon never blocks on a full pipe.
        output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(before);
        let kept = Arc::clone(&output);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        Self {
            child,
            address,
            output,
        }
    }

    /// The lines of its log so far that contain `text`.
    pub fn logged(&self, text: &str) -> Vec<String> {
        let output = self.output.lock().unwrap_or_else(|e| e.into_inner());
        output
            .iter()
            .filter(|l| l.contains(text))
            .cloned()
            .collect()
    }

    /// Starts `binary` on the embedded store in `dir`.
    pub fn embedded(binary: &Path, dir: &Path, extra: &[&str]) -> Self {
        let mut args = vec!["--data-dir", dir.to_str().unwrap_or_default()];
        args.extend_from_slice(extra);
        Self::start(binary, &args)
    }

    /// The process id, for measuring its CPU use.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks the daemon to stop (SIGTERM), waits up to 10 s, and returns its exit code.
    ///
    /// # Panics
    ///
    /// When it does not stop in time.
    pub fn stop(self) -> Option<i32> {
        self.stop_within(Duration::from_secs(10))
    }

    /// Asks the daemon to stop (SIGTERM), waits up to `patience` (a national registry's
    /// snapshots take a while to save), and returns its exit code.
    ///
    /// # Panics
    ///
    /// When it does not stop in time.
    pub fn stop_within(mut self, patience: Duration) -> Option<i32> {
        self.signal("-TERM");
        let started = std::time::Instant::now();
        while started.elapsed() < patience {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the daemon did not stop within {patience:?} of SIGTERM");
    }

    /// Kills the daemon at once (SIGKILL), as a crash would, and waits for it.
    pub fn kill(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }

    fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `registryd` binary of this workspace, built (once per test process) with the same
/// profile as the running test; for tests of other packages, which Cargo gives no
/// `CARGO_BIN_EXE_registryd`.
///
/// # Panics
///
/// When it cannot be built.
pub fn registryd_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| workspace_binary("registryd", "registryd"))
        .clone()
}

/// The binary `bin` of the workspace's package `package`, built with the same profile as the
/// running test (see [`registryd_binary`]).
///
/// # Panics
///
/// When it cannot be built.
pub fn workspace_binary(package: &str, bin: &str) -> PathBuf {
    // Test and benchmark executables live in target/<profile>/deps; binaries in
    // target/<profile>. Benchmarks run in `release`: build the daemon there too.
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let release = profile_dir
        .file_name()
        .is_some_and(|name| name == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "-p", package, "--bin", bin]);
    // Cargo runs this test or benchmark with the variables of its package set
    // (`CARGO_MANIFEST_DIR`, ...). Passed on, they reach build scripts that watch them
    // (ring's), which then rebuild, and so does everything above them: a minute lost
    // here and again at the next `cargo test` or `cargo bench`.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let of_the_package = [
            "CARGO_MANIFEST_",
            "CARGO_PKG_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
        ];
        if of_the_package.iter().any(|p| name.starts_with(p)) {
            build.env_remove(&*name);
        }
    }
    if release {
        build.arg("--release");
    }
    let status = build
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {bin}: {e}"));
    assert!(status.success(), "building {bin} failed");
    profile_dir.join(format!("{bin}{}", std::env::consts::EXE_SUFFIX))
}
