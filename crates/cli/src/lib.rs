//! `regctl`: the registry's command-line tool for registrars (enter and import records),
//! auditors (histories with provenance, differences between recorded instants, the change feed)
//! and administrators (corrections, retractions, rebuilds).
//!
//! It talks to a registry server over gRPC through `registry-client`; it holds no state of its
//! own. Exit status: 0 done; 1 a local file failed; 2 bad arguments or input; 3 the server
//! refused an argument; 4 not found; 5 refused by the registry's rules; 6 concurrent writes kept
//! conflicting (retry); 7 server unreachable or failing; 8 not allowed; 9 the verifiable log
//! does not verify; 10 a confirmation was declined.
//!
//! # Layout
//!
//! - `args`: dates, instants, enums, legal bases; errors and exit codes.
//! - `context`: what every subcommand gets (the connection, the output format, the actor).
//! - `output`: tables and canonical JSON; a write's result.
//! - `persons`, `units`, `offices`, `holdings`, `models`, `terms`: the subcommands of each
//!   subject, what records and what shows.
//! - `read`: the views of single resources, and the questions across subjects (who-held,
//!   career, history, diff, follow, irregularities, stats).
//! - `amend`: corrections and retractions, with a preview and a confirmation.
//! - `transfer`: import and export (CSV, JSON Lines, Popolo).
//! - `ledger`: the verifiable log: signing keys, and verification of a store or a server.
//!
//! A library so that the import's parser can be fuzzed ([`plan_import`]); `main.rs` only calls
//! [`main`].

mod amend;
mod args;
mod backup;
mod context;
mod holdings;
mod ledger;
mod models;
mod offices;
mod output;
mod persons;
mod read;
mod signed;
mod terms;
mod timeline;
mod transfer;
mod units;

use clap::{CommandFactory, Parser, Subcommand};
use registry_client::Client;

pub use crate::args::CliError;
pub use crate::context::Context;
use crate::output::Format;
pub use crate::transfer::{plan_import, FileFormat};

const EXAMPLES: &str = "Examples:
  regctl persons add \"Nguyễn Xuân Ký\" --birth 1962
  regctl who-held offices/0193… --at 18/03/2024
  regctl career persons/0193… --output json
  regctl import examples/seed/seed.jsonl
  regctl correct person persons/0193… --name \"Nguyễn Văn Tú\" --reason \"typing error\"";

/// The registry's command-line tool.
#[derive(Debug, Parser)]
#[command(name = "regctl", version, about, after_help = EXAMPLES)]
struct Cli {
    /// The registry server.
    #[arg(
        long,
        global = true,
        env = "REGCTL_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    server: String,
    /// For an https:// server: the CA that signed its certificate (PEM) [default: the
    /// system's roots].
    #[arg(long, global = true, env = "REGCTL_TLS_CA")]
    tls_ca: Option<std::path::PathBuf>,
    /// For a server that accepts only known clients: your certificate (PEM), with --tls-key.
    #[arg(long, global = true, env = "REGCTL_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, global = true, env = "REGCTL_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Whom you act for: recorded with every change you make, after the name the server
    /// authenticated (your certificate's or your token's), shown to auditors.
    #[arg(long, global = true, env = "REGCTL_ACTOR", default_value = "regctl")]
    actor: String,
    /// A bearer token (a JWT from the identity provider the server's policy trusts), sent with
    /// every call; prefer the environment variable, which other users cannot see.
    #[arg(long, global = true, env = "REGCTL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// How to print answers.
    #[arg(long, short, global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Persons: add, rename, alias, show, search.
    #[command(subcommand)]
    Persons(persons::Persons),
    /// Units: establish, rename, move, merge, split, dissolve, show, tree, lineage.
    #[command(subcommand)]
    Units(units::Units),
    /// Offices: create, abolish, show.
    #[command(subcommand)]
    Offices(offices::Offices),
    /// Holdings: start (elect, appoint, ...), end, show.
    #[command(subcommand)]
    Holdings(holdings::Holdings),
    /// Pilot models: define, adopt, withdraw, coverage.
    #[command(subcommand)]
    Models(models::Models),
    /// Terms of bodies: open.
    #[command(subcommand)]
    Terms(terms::Terms),
    /// Who held an office on a date (optionally as known at an instant).
    #[command(
        after_help = "Example:\n  regctl who-held offices/0193… --at 18/03/2024 --known-at 2024-06-01T00:00:00Z"
    )]
    WhoHeld(read::WhoHeld),
    /// Every office a person held, in order.
    #[command(after_help = "Example:\n  regctl career persons/0193…")]
    Career(read::Career),
    /// The recorded history of a person, unit, office, holding, model or adoption, with
    /// provenance: who recorded what, when, under which request, and what corrected it; with
    /// --log-public-key, every change checked against the signed log.
    #[command(
        after_help = "Examples:\n  regctl history offices/0193…\n  regctl history offices/0193… --log-public-key registry.pub"
    )]
    History(read::History),
    /// What the registry learned between two recorded instants.
    #[command(
        after_help = "Example:\n  regctl diff --from 2025-06-30T00:00:00Z --to 2025-07-02T00:00:00Z"
    )]
    Diff(read::Diff),
    /// Follow the change feed (every event in commit order, then live).
    #[command(after_help = "Example:\n  regctl follow --after 1200 --output jsonl")]
    Follow(read::Follow),
    /// Irregular but real facts flagged for auditors, as of a day.
    #[command(
        after_help = "Examples:\n  regctl irregularities --at 2024-03-18\n  regctl irregularities --at 2024-03-18 --known-at 2025-01-01T00:00:00Z\n  regctl irregularities --at 2024-03-18 --unit units/0193… --kind missing_basis"
    )]
    Irregularities(read::Irregularities),
    /// Correct a person's, an office's or a holding's recorded facts (a reason is required).
    #[command(subcommand)]
    Correct(amend::Correct),
    /// Withdraw a record entered in error (a reason is required).
    #[command(
        after_help = "Example:\n  regctl retract holdings/0193… --reason \"entered twice\" --yes"
    )]
    Retract(amend::Retract),
    /// Import persons, units, offices, holdings (and models, adoptions) from CSV or JSON Lines.
    #[command(after_help = transfer::IMPORT_HELP)]
    Import(transfer::Import),
    /// Export the holdings on a date as JSON Lines, CSV or Popolo JSON; or, with --signed,
    /// with the events they come from, proved in a signed checkpoint.
    #[command(
        after_help = "Examples:\n  regctl export --at 2024-03-18 --format popolo > registry.json\n  regctl export --at 2024-03-18 --signed > holdings.jsonl"
    )]
    Export(transfer::Export),
    /// Store and read-model statistics.
    #[command(after_help = "Example:\n  regctl stats --output json")]
    Stats,
    /// Rebuild the server's read models from the event store.
    #[command(after_help = "Example:\n  regctl rebuild")]
    Rebuild,
    /// Who the server says you are: your name, roles, agency, scopes and what you may do.
    #[command(after_help = "Example:\n  REGCTL_TOKEN=$(cat token.jwt) regctl whoami")]
    Whoami,
    /// Draw an office's holders, or a person's offices, along the years as SVG (as the
    /// auditors' pages in a browser draw them).
    #[command(after_help = "Examples:
  regctl timeline offices/0193a5e0-0000-7000-8000-000000000014 --svg office.svg
  regctl timeline persons/0193a5e0-0000-7000-8000-000000000027 --known-at 2025-01-01T00:00:00Z --from 2015")]
    Timeline(timeline::Timeline),
    /// Whether the server serves (gRPC health checking): prints SERVING and exits 0, or exits 7.
    /// For probes (a Kubernetes exec probe, a load balancer's script), over TLS when asked.
    #[command(after_help = "Examples:
  regctl health
  regctl health --service registry.v1.QueryService")]
    Health {
        /// One service (`registry.v1.QueryService`, ...) instead of the server as a whole.
        #[arg(long, default_value = "")]
        service: String,
    },
    /// Check the verifiable log: a store offline (--store: every event against its hashes and
    /// the signed checkpoints), or the server's newest checkpoint against one saved earlier.
    #[command(after_help = "Examples:
  regctl verify --store registry-data --log-public-key registry-data/log.pub
  regctl verify --log-public-key log.pub --since saved.checkpoint --save saved.checkpoint --spot-check 20")]
    Verify(ledger::Verify),
    /// Check a signed export offline: every row follows from events proved in the signed
    /// checkpoint it names.
    #[command(after_help = "Example:
  regctl export --at 2024-03-18 --signed > holdings.jsonl
  regctl verify-export holdings.jsonl --log-public-key registry.pub")]
    VerifyExport(signed::VerifyExport),
    /// As a witness: cosign the server's newest checkpoint if it extends the last one this
    /// witness cosigned (kept in --state).
    #[command(
        after_help = "Example:\n  regctl witness --log-public-key registry.pub --key witness.key --state witness.checkpoint"
    )]
    Witness(ledger::Witness),
    /// Copy the embedded store while the registry runs (SQLite's online backup), checked.
    #[command(
        after_help = "Example:\n  regctl backup --store registry-data --to /backups/registry-2026-12-06.db"
    )]
    Backup(backup::Backup),
    /// Make a key that signs the log's checkpoints (or, with --witness, cosigns them).
    #[command(after_help = "Example:
  regctl keygen --name registry.example.gov.vn/offices --out /etc/registry/log.key")]
    Keygen(ledger::Keygen),
    /// Print shell completions.
    #[command(after_help = "Example:\n  regctl completions bash > /etc/bash_completion.d/regctl")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

async fn run(cli: Cli) -> Result<(), CliError> {
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "regctl", &mut std::io::stdout());
        return Ok(());
    }
    match &cli.command {
        Command::Keygen(keygen) => return keygen.run(),
        Command::VerifyExport(check) => return check.run(cli.output),
        Command::Backup(backup) => return backup.run(cli.output),
        Command::Verify(verify) if verify.offline() => return verify.run_offline(cli.output).await,
        _ => {}
    }
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| CliError::Io(format!("{}: {e}", path.display())))
    };
    let tls = registry_client::Tls {
        ca: cli.tls_ca.as_deref().map(read).transpose()?,
        identity: match (&cli.tls_cert, &cli.tls_key) {
            (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
            _ => None,
        },
    };
    let client = Client::connect_with(&cli.server, &tls)
        .await
        .map_err(|e| match e {
            registry_client::ClientError::Connect { .. } => CliError::Unavailable(e.to_string()),
            _ => CliError::Usage(e.to_string()),
        })?
        .with_actor(&cli.actor)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let client = match &cli.token {
        Some(token) => client
            .with_token(token)
            .map_err(|e| CliError::Usage(format!("--token: {e}")))?,
        None => client,
    };
    let cx = Context {
        client,
        format: cli.output,
        actor: cli.actor,
    };
    match cli.command {
        Command::Persons(c) => c.run(&cx).await,
        Command::Units(c) => c.run(&cx).await,
        Command::Offices(c) => c.run(&cx).await,
        Command::Holdings(c) => c.run(&cx).await,
        Command::Models(c) => c.run(&cx).await,
        Command::Terms(c) => c.run(&cx).await,
        Command::WhoHeld(c) => c.run(&cx).await,
        Command::Career(c) => c.run(&cx).await,
        Command::History(c) => c.run(&cx).await,
        Command::Diff(c) => c.run(&cx).await,
        Command::Follow(c) => c.run(&cx).await,
        Command::Irregularities(c) => c.run(&cx).await,
        Command::Correct(c) => c.run(&cx).await,
        Command::Retract(c) => c.run(&cx).await,
        Command::Import(c) => c.run(&cx).await,
        Command::Export(c) => c.run(&cx).await,
        Command::Stats => read::stats(&cx).await,
        Command::Rebuild => read::rebuild(&cx).await,
        Command::Whoami => read::whoami(&cx).await,
        Command::Timeline(c) => c.run(&cx).await,
        Command::Health { service } => read::health(&cx, &service).await,
        Command::Verify(c) => c.run_online(&cx).await,
        Command::Witness(c) => c.run(&cx).await,
        Command::Completions { .. }
        | Command::Keygen(_)
        | Command::VerifyExport(_)
        | Command::Backup(_) => Ok(()),
    }
}

/// `regctl`: parses the command line, runs the command, and exits with its status.
pub fn main() {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            output::note(format!("error: cannot start: {e}"));
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        output::note(format!("error: {e}"));
        std::process::exit(e.exit_code());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand that does something shows an example in its help.
    #[test]
    fn every_subcommand_has_an_example() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let leaf = !command.has_subcommands();
            let shows = command
                .get_after_help()
                .is_some_and(|help| help.to_string().contains("Example"));
            if leaf && !shows {
                missing.push(path.to_owned());
            }
            for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "regctl", &mut missing);
        assert!(missing.is_empty(), "no example in the help of: {missing:?}");
    }
}
