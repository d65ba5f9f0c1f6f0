//! A PostgreSQL primary and a hot standby with streaming replication, built from the machine's
//! own server binaries (`initdb`, `pg_basebackup`, `pg_ctl`) in a directory and on ports of
//! their own, for the tests and benchmarks of the registry on replicas. The machine's own server
//! is left alone. As root (as CI runs) the servers run as the `postgres` user through `runuser`,
//! since PostgreSQL refuses to run as root.

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
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
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
        let bin = bin_dir().ok_or("no PostgreSQL server binaries (initdb) found")?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("registry-pg-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let as_postgres = is_root();
        let cluster = Self {
            primary: Server {
                port: free_port()?,
                data: dir.join("primary"),
            },
            standby: Server {
                port: free_port()?,
                data: dir.join("standby"),
            },
            dir,
            bin,
            as_postgres,
        };
        if as_postgres {
            cluster.run(Command::new("chown").args(["postgres:postgres", &cluster.dir_text()]))?;
        }
        cluster.build(synchronous, listen, hba)?;
        Ok(cluster)
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

    fn build(&self, synchronous: bool, listen: &[&str], hba: Option<&str>) -> Result<(), String> {
        let primary = self.primary.data.display().to_string();
        let standby = self.standby.data.display().to_string();
        self.run(self.server_command("initdb").args([
            "-D",
            &primary,
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
        let mut conf = format!(
            "\n# registry test pair\nlisten_addresses = '{addresses}'\nport = {}\n\
             unix_socket_directories = '{}'\nwal_level = replica\nmax_wal_senders = 5\n\
             hot_standby = on\nhot_standby_feedback = on\nwal_receiver_status_interval = 1s\n\
             max_connections = 200\n",
            self.primary.port,
            self.dir.display()
        );
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
        self.start_server(&self.primary.data)?;
        self.run(self.server_command("pg_basebackup").args([
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
        self.start_server(&self.standby.data)?;
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

    fn start_server(&self, data: &Path) -> Result<(), String> {
        let log = data.with_extension("log").display().to_string();
        self.run(self.server_command("pg_ctl").args([
            "-D",
            &data.display().to_string(),
            "-l",
            &log,
            "-w",
            "-t",
            "60",
            "start",
        ]))
        .map(drop)
    }

    /// Runs `sql` on the server at `port` with psql; its output, trimmed.
    ///
    /// # Errors
    ///
    /// psql's complaint.
    pub fn sql(&self, port: u16, sql: &str) -> Result<String, String> {
        psql(&self.bin, port, sql)
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
        self.run(&mut kill).map(drop)
    }

    /// Promotes the standby and, since it has no standby of its own, stops it waiting for one
    /// (`synchronous_standby_names`, copied from the primary with its files, cleared and
    /// reloaded): the two steps of a failover.
    ///
    /// # Errors
    ///
    /// The step that failed.
    pub fn promote_standby(&self) -> Result<(), String> {
        self.run(self.server_command("pg_ctl").args([
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
        let (bin, port) = (self.bin.clone(), self.primary.port);
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
        for data in [&self.standby.data, &self.primary.data] {
            if data.join("postmaster.pid").exists() {
                let _ = self.run(self.server_command("pg_ctl").args([
                    "-D",
                    &data.display().to_string(),
                    "-m",
                    "immediate",
                    "stop",
                ]));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
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
