//! An online backup of the embedded store: a consistent copy of its SQLite file taken through
//! SQLite's backup API while `registryd` keeps writing (the store runs in WAL mode, so a reader
//! holds one snapshot without stopping the writer), checked before it is reported done.
//!
//! The copy is taken in one step, inside one read transaction: a backup taken page batch by
//! page batch restarts whenever another process writes, and may never finish under load.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use crate::StoreError;

/// What a backup copied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    /// Events in the copy.
    pub events: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// How long it took, the check included.
    pub took: Duration,
}

/// Copies the store file `from` to `to` (which must not exist), then checks the copy
/// (`PRAGMA quick_check`) and counts its events. A failed backup leaves no file at `to`.
pub fn backup(from: &Path, to: &Path) -> Result<Backup, StoreError> {
    let started = Instant::now();
    if to.exists() {
        return Err(StoreError::backend(format!(
            "{}: exists already; a backup never overwrites a file",
            to.display()
        )));
    }
    let copied = copy(from, to);
    if copied.is_err() {
        let _ = std::fs::remove_file(to);
    }
    let events = copied?;
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    Ok(Backup {
        events,
        bytes,
        took: started.elapsed(),
    })
}

/// A SQLite error, naming the file.
fn err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::backend(format!("{}: {e}", path.display()))
}

fn copy(from: &Path, to: &Path) -> Result<u64, StoreError> {
    let source = Connection::open_with_flags(
        from,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err(from))?;
    let mut copy = Connection::open(to).map_err(err(to))?;
    {
        let backup = rusqlite::backup::Backup::new(&source, &mut copy).map_err(err(to))?;
        // Every page in one step: one snapshot of the source.
        match backup.step(-1).map_err(err(to))? {
            rusqlite::backup::StepResult::Done => {}
            other => {
                return Err(StoreError::backend(format!(
                    "{}: the backup did not finish in one step ({other:?}); retry",
                    to.display()
                )))
            }
        }
    }
    let check: String = copy
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(err(to))?;
    if check != "ok" {
        return Err(StoreError::backend(format!(
            "{}: the copy does not check: {check}",
            to.display()
        )));
    }
    let events: i64 = copy
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .map_err(err(to))?;
    Ok(events as u64)
}
