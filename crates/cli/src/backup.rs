//! `regctl backup`: a consistent copy of the embedded store's file, taken while `registryd`
//! runs (SQLite's online backup), checked before it is reported.

use std::path::PathBuf;

use clap::Args;

use crate::args::CliError;
use crate::output::Format;

/// Copy the embedded store while the registry runs.
#[derive(Args, Debug)]
pub struct Backup {
    /// The store: its data directory (`registry-data`) or its file (`registry.db`).
    #[arg(long)]
    store: PathBuf,
    /// The copy to write (a new file; never overwritten).
    #[arg(long)]
    to: PathBuf,
}

impl Backup {
    /// Runs the backup.
    pub fn run(&self, format: Format) -> Result<(), CliError> {
        let from = if self.store.is_dir() {
            self.store.join("registry.db")
        } else {
            self.store.clone()
        };
        if !from.is_file() {
            return Err(CliError::Io(format!(
                "{}: no such store file",
                from.display()
            )));
        }
        let done = registry_eventstore::backup::backup(&from, &self.to)
            .map_err(|e| CliError::Io(e.to_string()))?;
        let summary = serde_json::json!({
            "to": self.to.display().to_string(),
            "events": done.events,
            "bytes": done.bytes,
            "seconds": done.took.as_secs_f64(),
        });
        match format {
            Format::Json | Format::Jsonl => println!("{summary}"),
            Format::Table => println!(
                "backed up {} events ({:.1} MB) to {} in {:.1} s; the copy checks",
                done.events,
                done.bytes as f64 / 1e6,
                self.to.display(),
                done.took.as_secs_f64()
            ),
        }
        Ok(())
    }
}
