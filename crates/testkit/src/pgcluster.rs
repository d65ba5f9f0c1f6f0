//! PostgreSQL servers of the tests' and benchmarks' own, built from the machine's server
//! binaries (`initdb`, `pg_basebackup`, `pg_ctl`) in a directory and on ports of their own: a
//! primary with a hot standby ([`Replicated`], for the registry on replicas) and a single server
//! that can be stopped, crashed and started again ([`Single`], for restarts and crash loops). The
//! machine's own server is left alone. As root (as CI runs) the servers run as the `postgres` user
//! through `runuser`, since PostgreSQL refuses to run as root.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// One server of the pair.
pub struct Server {
    /// Its TCP port.
    pub port: u16,
    data: PathBuf,
}

/// A primary streaming to a hot standby; both are stopped (immediately) and their files removed
/// when dropped.
pub struct Replicated {
    files: Files,
    /// The primary (until [`Replicated::promote_standby`]).
    pub primary: Server,
    /// The hot standby, named `standby` to the primary.
    pub standby: Server,
}

/// The directory of the newest PostgreSQL server binaries: `REGISTRY_PG_BIN`, or the newest
/// `/usr/lib/postgresql/*/bin` (Debian's layout) holding `initdb`.
pub fn bin_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("REGISTRY_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

/// Where a test's servers live and how their commands run.
struct Files {
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
}

impl Files {
    /// A new directory for servers under the system's temporary directory, owned by the user
    /// the servers run as.
    fn new() -> Result<Self, String> {
        let bin = bin_dir().ok_or("no PostgreSQL server binaries (initdb) found")?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("registry-pg-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let files = Self {
            dir,
            bin,
            as_postgres: is_root(),
        };
        if files.as_postgres {
            files.run(Command::new("chown").args(["postgres:postgres", &files.dir_text()]))?;
        }
        Ok(files)
    }

    fn dir_text(&self) -> String {
        self.dir.display().to_string()
    }

    /// A command of the server binaries, as the `postgres` user when running as root.
    fn server_command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            // runuser keeps the environment: a root HOME would be unreadable.
            command.env("HOME", &self.dir);
            command
        } else {
            Command::new(program)
        }
    }

    fn run(&self, command: &mut Command) -> Result<Output, String> {
        let output = command
            .current_dir(&self.dir)
            .output()
            .map_err(|e| format!("{command:?}: {e}"))?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(format!(
                "{command:?} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// `initdb` of a server in `data`, listening on loopback (and `listen`) at `port`, with its
    /// socket in this directory.
    fn init(&self, data: &Path, port: u16, listen: &[&str]) -> Result<(), String> {
        self.run(self.server_command("initdb").args([
            "-D",
            &data.display().to_string(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "--no-instructions",
        ]))?;
        let addresses = std::iter::once("127.0.0.1")
            .chain(listen.iter().copied())
            .collect::<Vec<_>>()
            .join(",");
        append(
            &data.join("postgresql.conf"),
            &format!(
                "\n# registry test server\nlisten_addresses = '{addresses}'\nport = {port}\n\
                 unix_socket_directories = '{}'\nmax_connections = 200\n",
                self.dir_text()
            ),
        )
    }

    /// `pg_ctl start`, waiting until the server accepts connections (crash recovery included).
    fn start_server(&self, data: &Path) -> Result<(), String> {
        let log = data.with_extension("log").display().to_string();
        self.run(self.server_command("pg_ctl").args([
            "-D",
            &data.display().to_string(),
            "-l",
            &log,
            "-w",
            "-t",
            "600",
            "start",
        ]))
        .map(drop)
    }

    /// `pg_ctl stop -m mode`, waiting until the server is gone.
    fn stop_server(&self, data: &Path, mode: &str) -> Result<(), String> {
        self.run(self.server_command("pg_ctl").args([
            "-D",
            &data.display().to_string(),
            "-m",
            mode,
            "-w",
            "-t",
            "600",
            "stop",
        ]))
        .map(drop)
    }

    /// Stops (immediately) every server of `data` still running, and removes the directory.
    fn remove(&self, data: &[&Path]) {
        for data in data {
            if data.join("postmaster.pid").exists() {
                let _ = self.stop_server(data, "immediate");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One server of the tests' own, stopped (immediately) and its files removed when dropped.
pub struct Single {
    files: Files,
    /// The server: its port and data directory.
    pub server: Server,
}

impl Single {
    /// Builds and starts the server (`initdb` defaults, trust authentication, loopback).
    ///
    /// # Errors
    ///
    /// Why it could not be built (no server binaries, a step that failed, with its output).
    pub fn start() -> Result<Self, String> {
        let files = Files::new()?;
        let server = Server {
            port: free_port()?,
            data: files.dir.join("data"),
        };
        files.init(&server.data, server.port, &[])?;
        files.start_server(&server.data)?;
        Ok(Self { files, server })
    }

    /// A URL of the server, database `postgres`.
    pub fn url(&self) -> String {
        Replicated::url(&[&self.server])
    }

    /// Stops the server: `fast` (a checkpoint, then exit, as at a planned restart) or
    /// `immediate` (every process quits at once, without a checkpoint: the next start recovers
    /// from the WAL, as after a crash).
    ///
    /// # Errors
    ///
    /// pg_ctl's complaint.
    pub fn stop(&self, mode: &str) -> Result<(), String> {
        self.files.stop_server(&self.server.data, mode)
    }

    /// Starts the server again, waiting until it accepts connections.
    ///
    /// # Errors
    ///
    /// pg_ctl's complaint.
    pub fn start_again(&self) -> Result<(), String> {
        self.files.start_server(&self.server.data)
    }

    /// Runs `sql` with psql; its output, trimmed.
    ///
    /// # Errors
    ///
    /// psql's complaint.
    pub fn sql(&self, sql: &str) -> Result<String, String> {
        psql(&self.files.bin, self.server.port, sql)
    }
}

impl Drop for Single {
    fn drop(&mut self) {
        self.files.remove(&[&self.server.data]);
    }
}

impl Replicated {
    /// Builds and starts the pair. `synchronous`: the primary waits for the standby to flush
    /// each commit (`synchronous_standby_names = 'standby'`, `synchronous_commit = on`).
    /// `listen`: the addresses both listen on besides loopback (`''` for none), and `hba`
    /// the network (CIDR) allowed to connect from there.
    ///
    /// # Errors
    ///
    /// Why the pair could not be built (no server binaries, a step that failed, with its output).
    pub fn start(synchronous: bool, listen: &[&str], hba: Option<&str>) -> Result<Self, String> {
        let files = Files::new()?;
        let cluster = Self {
            primary: Server {
                port: free_port()?,
                data: files.dir.join("primary"),
            },
            standby: Server {
                port: free_port()?,
                data: files.dir.join("standby"),
            },
            files,
        };
        cluster.build(synchronous, listen, hba)?;
        Ok(cluster)
    }

    fn build(&self, synchronous: bool, listen: &[&str], hba: Option<&str>) -> Result<(), String> {
        let standby = self.standby.data.display().to_string();
        self.files
            .init(&self.primary.data, self.primary.port, listen)?;
        let mut conf = "wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\n\
             hot_standby_feedback = on\nwal_receiver_status_interval = 1s\n"
            .to_owned();
        if synchronous {
            conf.push_str("synchronous_standby_names = 'standby'\nsynchronous_commit = on\n");
        }
        append(&self.primary.data.join("postgresql.conf"), &conf)?;
        let mut hba_lines = "host replication all 127.0.0.1/32 trust\n".to_owned();
        if let Some(network) = hba {
            hba_lines.push_str(&format!(
                "host all all {network} trust\nhost replication all {network} trust\n"
            ));
        }
        append(&self.primary.data.join("pg_hba.conf"), &hba_lines)?;
        self.files.start_server(&self.primary.data)?;
        self.files
            .run(self.files.server_command("pg_basebackup").args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.primary.port.to_string(),
                "-U",
                "postgres",
                "-D",
                &standby,
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ]))?;
        append(
            &self.standby.data.join("postgresql.conf"),
            &format!("port = {}\ncluster_name = 'standby'\n", self.standby.port),
        )?;
        self.files.start_server(&self.standby.data)?;
        // Streaming (and, when synchronous, counted as the synchronous standby) before use.
        let deadline = Instant::now() + Duration::from_secs(30);
        while self
            .sql(
                self.primary.port,
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
            )
            .as_deref()
            != Ok("1")
        {
            if Instant::now() > deadline {
                return Err("the standby did not start streaming in 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Runs `sql` on the server at `port` with psql; its output, trimmed.
    ///
    /// # Errors
    ///
    /// psql's complaint.
    pub fn sql(&self, port: u16, sql: &str) -> Result<String, String> {
        psql(&self.files.bin, port, sql)
    }

    /// A URL naming `servers` (host `127.0.0.1`) in this order, database `postgres`.
    pub fn url(servers: &[&Server]) -> String {
        let hosts: Vec<String> = servers
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("postgres://postgres@{}/postgres", hosts.join(","))
    }

    /// Kills the primary's postmaster and every process it started with SIGKILL, as a crash of
    /// its machine would.
    ///
    /// # Errors
    ///
    /// When its process id cannot be read or the kill fails.
    pub fn kill_primary(&self) -> Result<(), String> {
        let pid_file = self.primary.data.join("postmaster.pid");
        let text = std::fs::read_to_string(&pid_file)
            .map_err(|e| format!("{}: {e}", pid_file.display()))?;
        let pid = text.lines().next().unwrap_or_default().trim().to_owned();
        // Its children first (they would be re-parented once it is gone), then it, at once.
        let children = Command::new("pgrep")
            .args(["-P", &pid])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut kill = Command::new("kill");
        kill.args(["-9", &pid]).args(children.split_whitespace());
        self.files.run(&mut kill).map(drop)
    }

    /// Promotes the standby and, since it has no standby of its own, stops it waiting for one
    /// (`synchronous_standby_names`, copied from the primary with its files, cleared and
    /// reloaded): the two steps of a failover.
    ///
    /// # Errors
    ///
    /// The step that failed.
    pub fn promote_standby(&self) -> Result<(), String> {
        self.files.run(self.files.server_command("pg_ctl").args([
            "-D",
            &self.standby.data.display().to_string(),
            "-w",
            "promote",
        ]))?;
        self.sql(
            self.standby.port,
            "ALTER SYSTEM SET synchronous_standby_names = ''",
        )?;
        self.sql(self.standby.port, "SELECT pg_reload_conf()")?;
        Ok(())
    }

    /// A reader of the standby's replay lag as the primary sees it, in seconds (`None` before
    /// a report), for a thread of its own.
    pub fn replay_lag_probe(&self) -> impl Fn() -> Option<f64> + Send + Sync + 'static {
        let (bin, port) = (self.files.bin.clone(), self.primary.port);
        move || {
            psql(
                &bin,
                port,
                "SELECT extract(epoch FROM replay_lag) FROM pg_stat_replication",
            )
            .ok()?
            .parse()
            .ok()
        }
    }
}

fn append(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

impl Drop for Replicated {
    fn drop(&mut self) {
        self.files.remove(&[&self.standby.data, &self.primary.data]);
    }
}

/// Runs `sql` with the psql of `bin` on the server at `port` of loopback, as `postgres`.
fn psql(bin: &Path, port: u16, sql: &str) -> Result<String, String> {
    let output = Command::new(bin.join("psql"))
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-tAc",
            sql,
        ])
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(format!(
            "psql: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
