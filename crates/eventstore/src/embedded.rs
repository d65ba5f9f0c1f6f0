//! The embedded backend: SQLite in one file, the registry's default store.
//!
//! - WAL journal with `synchronous=FULL`: an acknowledged append has been fsynced and survives a
//!   crash or power loss; a crash mid-transaction leaves nothing partial.
//! - One writer thread owns the only writing connection. It takes every append waiting in its
//!   queue, checks each against the expected revision, and commits them all in one transaction
//!   with one fsync (group commit). Positions are assigned by that thread, so the position order
//!   is the commit order and the feed never has gaps.
//! - Each append runs inside its own savepoint: one rejected append does not affect the others
//!   of its group.
//! - Reads use a pool of [`READ_CONNECTIONS`] read-only connections on blocking threads; WAL
//!   lets them run while the writer commits. A read waits for a free connection rather than
//!   opening one more: under many concurrent reads, opening and dropping connections (each with
//!   its own page cache) cost more than the reads.
//! - The events committed last (up to [`RECENT_EVENTS`]) stay in memory after their commit: the
//!   feed's followers in this process (the read models) get what was just written without
//!   reading it back from the file. Only committed events go there, after the fsync.
//! - The feed's verifiable log ([`crate::log`]) is kept by the writer thread in each commit's
//!   own transaction (`embedded/log.rs`).
//! - A lock file next to the database (`<file>.lock`, an OS file lock) keeps a second process
//!   out with [`StoreError::Locked`] instead of two writers corrupting each other's view.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use registry_ledger::{Hash, NodeId};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

mod log;

use crate::log::{LogSigner, StoredCheckpoint};
use crate::{
    check_append, check_stream_name, now_micros, AppendResult, Direction, EventStore,
    ExpectedRevision, Interner, Metadata, NewEvent, Position, Queued, RecordedEvent, StoreError,
    DEFAULT_MAX_EVENT_BYTES,
};

/// How the embedded store is opened.
#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    /// The database file; created with its directory if missing.
    pub path: PathBuf,
    /// The largest event accepted, in bytes.
    pub max_event_bytes: usize,
    /// The most appends committed in one transaction.
    pub max_group: usize,
    /// Whether the feed's verifiable log is kept. Off only to measure what it costs: a store
    /// opened with it on again integrates what was written meanwhile.
    pub log: bool,
    /// The key that signs the log's checkpoints; without one the log's hashes are kept but no
    /// checkpoint is signed.
    pub signer: Option<Arc<LogSigner>>,
}

impl EmbeddedConfig {
    /// Defaults for a database file.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_group: 512,
            log: true,
            signer: None,
        }
    }
}

/// A handle on the embedded store. Clones share the writer thread and the read pool.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: EmbeddedConfig,
    writer: Mutex<Option<std_mpsc::Sender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    /// One permit per pooled read connection, held until the connection is back in the pool.
    read_slots: Arc<tokio::sync::Semaphore>,
    recent: Arc<Mutex<Recent>>,
    changes: watch::Receiver<u64>,
    /// The log's upper nodes read so far ([`log::UpperNodes`]).
    upper: Mutex<log::UpperNodes>,
    /// Held for the store's lifetime: the OS releases it if the process dies.
    _lock: File,
    /// The writer connection's journal and sync settings, as SQLite reports them.
    durability: Durability,
}

/// What makes the embedded store's commits durable, read back from SQLite (not assumed):
/// its journal mode and its `synchronous` level (2 is FULL: the WAL is fsynced at each commit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durability {
    /// `PRAGMA journal_mode`: `wal`.
    pub journal_mode: String,
    /// `PRAGMA synchronous`: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA.
    pub synchronous: i64,
}

impl Durability {
    fn read(conn: &Connection) -> Result<Self, StoreError> {
        let pragma = |name: &str| {
            conn.query_row(&format!("PRAGMA {name}"), [], |r| {
                r.get::<_, rusqlite::types::Value>(0)
            })
            .map_err(sql_err)
        };
        let journal_mode = match pragma("journal_mode")? {
            rusqlite::types::Value::Text(mode) => mode,
            other => format!("{other:?}"),
        };
        let synchronous = match pragma("synchronous")? {
            rusqlite::types::Value::Integer(level) => level,
            _ => -1,
        };
        Ok(Self {
            journal_mode,
            synchronous,
        })
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.synchronous {
            0 => "OFF",
            1 => "NORMAL",
            2 => "FULL",
            3 => "EXTRA",
            _ => "unknown",
        };
        write!(f, "journal_mode={}, synchronous={level}", self.journal_mode)
    }
}

/// How many of the last committed events are kept in memory for the feed's followers: a few
/// seconds of a bulk import, a few megabytes.
pub const RECENT_EVENTS: usize = 16_384;

/// The last committed events, in position order, without gaps.
#[derive(Default)]
struct Recent {
    events: VecDeque<RecordedEvent>,
}

impl Recent {
    /// The events at positions in `(after, end]`, when all of them are still held.
    fn range(&self, after: u64, end: u64) -> Option<Vec<RecordedEvent>> {
        let first = self.events.front()?.position.commit;
        if after.checked_add(1)? < first {
            return None;
        }
        let (from, to) = ((after + 1 - first) as usize, (end + 1 - first) as usize);
        (from <= to && to <= self.events.len())
            .then(|| self.events.range(from..to).cloned().collect())
    }

    fn extend(&mut self, events: impl IntoIterator<Item = RecordedEvent>) {
        for event in events {
            let follows = self
                .events
                .back()
                .is_none_or(|last| last.position.commit + 1 == event.position.commit);
            if !follows {
                self.events.clear(); // Never serve a range with a hole in it.
            }
            if self.events.len() == RECENT_EVENTS {
                self.events.pop_front();
            }
            self.events.push_back(event);
        }
    }
}

struct Request {
    stream: String,
    expected: ExpectedRevision,
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<AppendResult, StoreError>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,
    stream         TEXT    NOT NULL,
    revision       INTEGER NOT NULL,
    id             BLOB    NOT NULL UNIQUE,
    type           TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    payload        BLOB    NOT NULL,
    actor          TEXT    NOT NULL,
    request_id     TEXT,
    correlation_id TEXT,
    recorded_at    INTEGER NOT NULL,
    request_fingerprint TEXT,
    UNIQUE (stream, revision)
);
";

/// Brings a store written by an earlier version up to [`SCHEMA`]: columns added since are
/// added (nullable: events stored before them have none).
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let has_fingerprint: bool = conn
        .query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('events') WHERE name = 'request_fingerprint'",
            [],
            |row| row.get(0),
        )
        .map_err(sql_err)?;
    if !has_fingerprint {
        conn.execute_batch("ALTER TABLE events ADD COLUMN request_fingerprint TEXT")
            .map_err(sql_err)?;
    }
    Ok(())
}

fn sql_err(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => StoreError::Full(e.to_string()),
        _ => StoreError::backend(e),
    }
}

/// A failed `COMMIT`: a full disk wrote no commit record, but an I/O error (a failed fsync of
/// the WAL, say) may leave the transaction's frames where a later recovery finds them, so
/// whether it happened is unknown.
fn commit_err(e: rusqlite::Error) -> StoreError {
    match sql_err(e) {
        StoreError::Backend { message, .. } => StoreError::Backend {
            message: format!("commit failed: {message}"),
            uncertain: true,
        },
        other => other,
    }
}

/// An error as SQLite reports it (a full disk, an I/O error), injected by a failpoint.
#[cfg(feature = "failpoints")]
fn injected(code: std::ffi::c_int, message: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(message.to_owned()))
}

/// How much of the file read connections map into memory (address space, not memory: the
/// kernel's page cache backs it). SQLite caps it at `SQLITE_MAX_MMAP_SIZE` (`.cargo/config.toml`).
const MMAP_BYTES: i64 = 1 << 40;

fn open_connection(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(sql_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql_err)?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql_err)?;
    }
    conn.pragma_update(None, "cache_size", -65536)
        .map_err(sql_err)?;
    if read_only {
        // Reads of committed pages go straight to the file's mapping: no read call, no copy
        // into the page cache (random reads of histories touch pages all over a large file).
        conn.pragma_update(None, "mmap_size", MMAP_BYTES)
            .map_err(sql_err)?;
    }
    Ok(conn)
}

impl EmbeddedStore {
    /// Opens (or creates) the store. Fails with [`StoreError::Locked`] if another process has it.
    pub fn open(config: EmbeddedConfig) -> Result<Self, StoreError> {
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(StoreError::backend)?;
        }
        let lock_path = PathBuf::from(format!("{}.lock", config.path.display()));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(StoreError::backend)?;
        if lock.try_lock().is_err() {
            return Err(StoreError::Locked(config.path.display().to_string()));
        }
        let conn = open_connection(&config.path, false)?;
        let durability = Durability::read(&conn)?;
        conn.execute_batch(SCHEMA).map_err(sql_err)?;
        migrate(&conn)?;
        let head: u64 = conn
            .query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(sql_err)? as u64;
        let last_recorded: i64 = conn
            .query_row(
                "SELECT COALESCE(MAX(recorded_at), 0) FROM events",
                [],
                |r| r.get(0),
            )
            .map_err(sql_err)?;
        let log = if config.log {
            conn.execute_batch(log::SCHEMA).map_err(sql_err)?;
            Some(log::LogWriter::open(&conn, head, config.signer.clone())?)
        } else {
            None
        };
        let (changes_tx, changes) = watch::channel(head);
        let (tx, rx) = std_mpsc::channel();
        let recent = Arc::new(Mutex::new(Recent::default()));
        let writer = Writer {
            conn,
            recent: recent.clone(),
            head,
            last_recorded,
            revisions: HashMap::new(),
            changes: changes_tx,
            max_group: config.max_group,
            log,
        };
        let thread = std::thread::Builder::new()
            .name("eventstore-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(StoreError::backend)?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                writer: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
                readers: Mutex::new(Vec::new()),
                read_slots: Arc::new(tokio::sync::Semaphore::new(READ_CONNECTIONS)),
                recent,
                changes,
                upper: Mutex::new(log::UpperNodes::default()),
                _lock: lock,
                durability,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.config.path
    }

    /// The writer's journal and sync settings, as SQLite reported them when the store opened.
    pub fn durability(&self) -> &Durability {
        &self.inner.durability
    }

    /// Stops the writer after the appends already queued, and waits for it. Later appends fail
    /// with [`StoreError::Closed`]. Dropping the last handle does the same.
    pub fn close(&self) {
        self.inner.shutdown();
    }

    async fn with_reader<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let slot = self
            .inner
            .read_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = slot; // Released once the connection is back in the pool.
            let pooled = inner.readers.lock().map_err(|_| StoreError::Closed)?.pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => open_connection(&inner.config.path, true)?,
            };
            let result = work(&conn);
            if let Ok(mut pool) = inner.readers.lock() {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::backend(format!("read task failed: {e}")))?
    }
}

/// Read connections at most: reads are short and mostly served from SQLite's page cache, so a
/// few per core keep the cores busy.
pub const READ_CONNECTIONS: usize = 4;

/// Feed reads of at least this many events are split over two connections.
const PARALLEL_READ_THRESHOLD: u64 = 2048;

impl EmbeddedStore {
    /// The events at positions in `(after, end]`: from memory when they were committed last,
    /// else from the file.
    async fn read_range(&self, after: u64, end: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let held = self
            .inner
            .recent
            .lock()
            .ok()
            .and_then(|recent| recent.range(after, end));
        if let Some(events) = held {
            return Ok(events);
        }
        self.with_reader(move |conn| {
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM events WHERE position > ?1 AND position <= ?2 ORDER BY position"
                ))
                .map_err(sql_err)?;
            collect_events(&mut statement, params![after as i64, end as i64], (end - after) as usize)
        })
        .await
    }
}

impl Inner {
    fn shutdown(&self) {
        if let Ok(mut writer) = self.writer.lock() {
            writer.take();
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub(crate) const COLUMNS: &str = "position, stream, revision, id, type, version, payload, actor, request_id, correlation_id, recorded_at, request_fingerprint";

/// The events at a JSON array of positions, by their rows' keys.
fn read_seen_sql() -> String {
    format!("SELECT {COLUMNS} FROM events WHERE position IN (SELECT value FROM json_each(?1)) ORDER BY position ASC")
}

pub(crate) fn row_to_event(
    row: &rusqlite::Row<'_>,
    names: &mut Interner,
) -> rusqlite::Result<RecordedEvent> {
    use rusqlite::types::ValueRef;
    let text = |i: usize| -> rusqlite::Result<&str> {
        std::str::from_utf8(row.get_ref(i)?.as_bytes()?).map_err(rusqlite::Error::Utf8Error)
    };
    let optional_text = |i: usize| -> rusqlite::Result<Option<String>> {
        match row.get_ref(i)? {
            ValueRef::Null => Ok(None),
            _ => text(i).map(|t| Some(t.to_owned())),
        }
    };
    let id = Uuid::from_slice(row.get_ref(3)?.as_blob()?).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Blob, Box::new(e))
    })?;
    Ok(RecordedEvent {
        position: Position::sequence(row.get_ref(0)?.as_i64()? as u64),
        stream: names.get(0, text(1)?),
        revision: row.get_ref(2)?.as_i64()? as u64,
        id,
        event_type: names.get(1, text(4)?),
        schema_version: row.get(5)?,
        payload: row.get_ref(6)?.as_blob()?.to_vec(),
        metadata: Metadata {
            actor: names.get(2, text(7)?),
            request_id: optional_text(8)?,
            correlation_id: optional_text(9)?,
            request_fingerprint: optional_text(11)?,
        },
        recorded_at: row.get_ref(10)?.as_i64()?,
    })
}

fn collect_events(
    statement: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    capacity: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut names = Interner::default();
    let mut rows = statement.query(params).map_err(sql_err)?;
    let mut events = Vec::with_capacity(capacity.min(16_384));
    while let Some(row) = rows.next().map_err(sql_err)? {
        events.push(row_to_event(row, &mut names).map_err(sql_err)?);
    }
    Ok(events)
}

impl EventStore for EmbeddedStore {
    /// The file lock makes this process the only writer.
    fn queues_appends(&self) -> bool {
        true
    }

    fn max_event_bytes(&self) -> usize {
        self.inner.config.max_event_bytes
    }

    /// Appends are committed in the order they are queued, several per transaction and fsync
    /// (group commit). A caller that queues appends one after another, each with the exact
    /// revision the previous one leads to, gets them committed in that order or, after the first
    /// that fails, refused with a revision conflict: nothing else can come between them.
    fn queue(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<Queued, StoreError> {
        check_append(stream, &events, self.inner.config.max_event_bytes)?;
        let (reply, answer) = oneshot::channel();
        let request = Request {
            stream: stream.to_owned(),
            expected,
            events,
            reply,
        };
        {
            let writer = self.inner.writer.lock().map_err(|_| StoreError::Closed)?;
            writer
                .as_ref()
                .ok_or(StoreError::Closed)?
                .send(request)
                .map_err(|_| StoreError::Closed)?;
        }
        Ok(Box::pin(async move {
            answer.await.map_err(|_| StoreError::Closed)?
        }))
    }

    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.queue(stream, expected, events)?.await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_stream_name(stream)?;
        let stream = stream.to_owned();
        self.with_reader(move |conn| {
            let sql = match direction {
                Direction::Forwards => format!("SELECT {COLUMNS} FROM events WHERE stream = ?1 AND revision >= ?2 ORDER BY revision ASC LIMIT ?3"),
                Direction::Backwards => format!("SELECT {COLUMNS} FROM events WHERE stream = ?1 AND revision <= ?2 ORDER BY revision DESC LIMIT ?3"),
            };
            let from = i64::try_from(from).unwrap_or(i64::MAX);
            let mut statement = conn.prepare_cached(&sql).map_err(sql_err)?;
            collect_events(&mut statement, params![stream, from, limit as i64], limit)
        })
        .await
    }

    async fn read_revisions(
        &self,
        stream: &str,
        revisions: &[u64],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_stream_name(stream)?;
        let stream = stream.to_owned();
        let wanted = format!(
            "[{}]",
            revisions
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        );
        let capacity = revisions.len();
        self.with_reader(move |conn| {
            let sql = format!("SELECT {COLUMNS} FROM events WHERE stream = ?1 AND revision IN (SELECT value FROM json_each(?2)) ORDER BY revision ASC");
            let mut statement = conn.prepare_cached(&sql).map_err(sql_err)?;
            collect_events(&mut statement, params![stream, wanted], capacity)
        })
        .await
    }

    async fn read_seen(
        &self,
        stream: &str,
        seen: &[(u64, Position)],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_stream_name(stream)?;
        let stream = stream.to_owned();
        // The position is the row's key (its two parts are one sequence here): one b-tree
        // lookup per event instead of the (stream, revision) index and then the row.
        let wanted = format!(
            "[{}]",
            seen.iter()
                .map(|(_, p)| p.commit.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        let expected: Vec<(u64, Position)> = seen.to_vec();
        self.with_reader(move |conn| {
            let mut statement = conn.prepare_cached(&read_seen_sql()).map_err(sql_err)?;
            let mut events = collect_events(&mut statement, params![wanted], expected.len())?;
            // The stream is checked here, not in SQL: given `stream = ?`, SQLite's planner
            // prefers the (stream, revision) index and scans the whole stream.
            events.retain(|e| {
                *e.stream == *stream && expected.binary_search(&(e.revision, e.position)).is_ok()
            });
            Ok(events)
        })
        .await
    }

    async fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // Positions are dense (1, 2, 3, ...) and every position up to the published head is
        // committed, so the answer is exactly the range (after, min(after + limit, head)]. A large
        // range is read in two halves on two connections at once.
        let after = after.map_or(0, |p| p.commit);
        let head = *self.inner.changes.borrow();
        let end = head.min(after.saturating_add(limit as u64));
        if end <= after {
            return Ok(Vec::new());
        }
        if end - after < PARALLEL_READ_THRESHOLD {
            return self.read_range(after, end).await;
        }
        let middle = after + (end - after) / 2;
        let (first, second) =
            tokio::join!(self.read_range(after, middle), self.read_range(middle, end));
        let mut events = first?;
        events.extend(second?);
        Ok(events)
    }

    async fn read_at(&self, position: Position) -> Result<Option<RecordedEvent>, StoreError> {
        let head = *self.inner.changes.borrow();
        if position.commit != position.prepare || !(1..=head).contains(&position.commit) {
            return Ok(None);
        }
        Ok(self
            .read_range(position.commit - 1, position.commit)
            .await?
            .pop())
    }

    /// Nodes high in the tree are shared by most proofs: they are kept once read (a node never
    /// changes once stored), so a proof reads from the file only the few near its leaf.
    async fn log_nodes(&self, ids: Vec<NodeId>) -> Result<HashMap<NodeId, Hash>, StoreError> {
        let (mut found, missing) = self
            .inner
            .upper
            .lock()
            .map_err(|_| StoreError::Closed)?
            .split(ids);
        if missing.is_empty() {
            return Ok(found);
        }
        let read = self
            .with_reader(move |conn| log::read_nodes(conn, &missing))
            .await?;
        if let Ok(mut upper) = self.inner.upper.lock() {
            upper.keep(&read);
        }
        found.extend(read);
        Ok(found)
    }

    async fn log_checkpoint(
        &self,
        size: Option<u64>,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.with_reader(move |conn| {
            let row = |r: &rusqlite::Row<'_>| {
                Ok(StoredCheckpoint {
                    size: r.get::<_, i64>(0)? as u64,
                    note: r.get(1)?,
                })
            };
            match size {
                None => conn.query_row(
                    "SELECT size, note FROM log_checkpoints ORDER BY size DESC LIMIT 1",
                    [],
                    row,
                ),
                Some(size) => conn.query_row(
                    "SELECT size, note FROM log_checkpoints WHERE size = ?1",
                    [i64::try_from(size).unwrap_or(i64::MAX)],
                    row,
                ),
            }
            .optional()
            .map_err(sql_err)
        })
        .await
    }

    /// A rare write beside the writer thread: its own connection, waiting its turn (SQLite lets
    /// one writer at a time; the writer's commits are short).
    async fn log_cosign(&self, size: u64, was: String, note: String) -> Result<bool, StoreError> {
        let path = self.inner.config.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = open_connection(&path, false)?;
            let changed = conn
                .execute(
                    "UPDATE log_checkpoints SET note = ?3 WHERE size = ?1 AND note = ?2",
                    params![i64::try_from(size).unwrap_or(i64::MAX), was, note],
                )
                .map_err(sql_err)?;
            Ok(changed == 1)
        })
        .await
        .map_err(|e| StoreError::backend(format!("cosign task failed: {e}")))?
    }

    /// Leaf `i` is the event at position `i + 1`: positions are dense, and an event's leaf
    /// commits with it.
    async fn log_index(&self, position: Position) -> Result<Option<u64>, StoreError> {
        let head = *self.inner.changes.borrow();
        let held = self.inner.config.log
            && position.commit == position.prepare
            && (1..=head).contains(&position.commit);
        Ok(held.then(|| position.commit - 1))
    }

    async fn log_position(&self, index: u64) -> Result<Option<Position>, StoreError> {
        let head = *self.inner.changes.borrow();
        Ok((self.inner.config.log && index < head).then(|| Position::sequence(index + 1)))
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        let head = *self.inner.changes.borrow();
        Ok((head > 0).then(|| Position::sequence(head)))
    }

    fn feed_changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.clone()
    }
}

/// After this many events, an idle writer truncates the write-ahead log.
const WAL_TRUNCATE_EVENTS: u64 = 50_000;

/// The writer thread's state.
struct Writer {
    conn: Connection,
    /// Where committed events are handed to this process's readers.
    recent: Arc<Mutex<Recent>>,
    /// The last committed position.
    head: u64,
    /// The last recorded time given out: recorded time never goes backwards along the feed.
    last_recorded: i64,
    /// The last revision of each stream seen, loaded on demand; correct because this thread is
    /// the only writer.
    revisions: HashMap<String, Option<u64>>,
    changes: watch::Sender<u64>,
    max_group: usize,
    /// The verifiable log, when kept.
    log: Option<log::LogWriter>,
}

impl Writer {
    fn run(mut self, requests: std_mpsc::Receiver<Request>) {
        let mut since_truncate = 0u64;
        let mut waiting: Option<Request> = None;
        loop {
            let due = self
                .log
                .as_ref()
                .and_then(log::LogWriter::checkpoint_due_in);
            let first = match (waiting.take(), due) {
                (Some(request), _) => request,
                (None, None) => match requests.recv() {
                    Ok(request) => request,
                    Err(_) => return,
                },
                (None, Some(wait)) => match requests.recv_timeout(wait) {
                    Ok(request) => request,
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {
                        self.checkpoint_now();
                        continue;
                    }
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                        // Closing: the last events are signed before the thread ends.
                        self.checkpoint_now();
                        return;
                    }
                },
            };
            let mut group = vec![first];
            while group.len() < self.max_group {
                match requests.try_recv() {
                    Ok(request) => group.push(request),
                    Err(_) => break,
                }
            }
            let before = self.head;
            self.commit_group(group);
            since_truncate += self.head.saturating_sub(before);
            // SQLite's automatic checkpoints copy the WAL into the database but cannot shrink
            // the WAL while readers hold old snapshots; a long WAL makes every page read search
            // its index. When idle after much writing, truncate it (skipped if readers are busy).
            if since_truncate >= WAL_TRUNCATE_EVENTS {
                match requests.try_recv() {
                    Ok(request) => waiting = Some(request),
                    Err(std_mpsc::TryRecvError::Empty) => {
                        let busy =
                            self.conn
                                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                                    row.get::<_, i64>(0)
                                });
                        if busy.ok() == Some(0) {
                            since_truncate = 0;
                        }
                    }
                    Err(std_mpsc::TryRecvError::Disconnected) => return,
                }
            }
        }
    }

    fn checkpoint_now(&mut self) {
        if let Some(log) = &mut self.log {
            log.checkpoint_now(&self.conn);
        }
    }

    fn stream_revision(&mut self, stream: &str) -> Result<Option<u64>, StoreError> {
        if let Some(revision) = self.revisions.get(stream) {
            return Ok(*revision);
        }
        let revision: Option<i64> = self
            .conn
            .query_row(
                "SELECT MAX(revision) FROM events WHERE stream = ?1",
                [stream],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_err)?
            .flatten();
        let revision = revision.map(|r| r as u64);
        self.revisions.insert(stream.to_owned(), revision);
        Ok(revision)
    }

    fn commit_group(&mut self, mut group: Vec<Request>) {
        let started = std::time::Instant::now();
        metrics::gauge!(crate::metrics::QUEUE_DEPTH).set(group.len() as f64);
        let start_head = self.head;
        let start_recorded = self.last_recorded;
        let mut outcomes: Vec<Result<AppendResult, StoreError>> = Vec::with_capacity(group.len());
        let mut touched: Vec<(String, Option<u64>)> = Vec::new();
        let began = self.conn.execute_batch("BEGIN IMMEDIATE").map_err(sql_err);
        if let Err(e) = began {
            let message = e.to_string();
            for request in group {
                let _ = request.reply.send(Err(StoreError::backend(&message)));
            }
            return;
        }
        let mut recorded_at = Vec::with_capacity(group.len());
        for request in &group {
            let outcome = self.append_one(request, &mut touched);
            outcomes.push(outcome);
            recorded_at.push(self.last_recorded);
        }
        let integrated = match &mut self.log {
            Some(log) => log.integrate(&self.conn),
            None => Ok(()),
        };
        let committed = integrated.and_then(|()| {
            #[cfg(feature = "failpoints")]
            fail::fail_point!("store.commit", |kind| Err(commit_err(
                match kind.as_deref() {
                    Some("io") => injected(rusqlite::ffi::SQLITE_IOERR, "disk I/O error"),
                    _ => injected(rusqlite::ffi::SQLITE_FULL, "database or disk is full"),
                }
            )));
            self.conn.execute_batch("COMMIT").map_err(commit_err)
        });
        match committed {
            Ok(()) => {
                metrics::histogram!(crate::metrics::COMMIT_SECONDS)
                    .record(started.elapsed().as_secs_f64());
                metrics::histogram!(crate::metrics::COMMIT_EVENTS)
                    .record((self.head - start_head) as f64);
                if let Some(log) = &mut self.log {
                    log.committed();
                }
                self.keep_recent(&mut group, &outcomes, &recorded_at);
                self.changes.send_replace(self.head);
                for (request, outcome) in group.into_iter().zip(outcomes) {
                    let _ = request.reply.send(outcome);
                }
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                if let Some(log) = &mut self.log {
                    log.rolled_back();
                }
                self.head = start_head;
                self.last_recorded = start_recorded;
                for (stream, revision) in touched.into_iter().rev() {
                    self.revisions.insert(stream, revision);
                }
                for request in group {
                    let _ = request.reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Hands the events of the committed appends to this process's readers (moved out of their
    /// requests: they are not needed to answer).
    fn keep_recent(
        &self,
        group: &mut [Request],
        outcomes: &[Result<AppendResult, StoreError>],
        recorded_at: &[i64],
    ) {
        let mut names = Interner::default();
        let mut committed = Vec::new();
        for ((request, outcome), recorded_at) in group.iter_mut().zip(outcomes).zip(recorded_at) {
            let Ok(result) = outcome else { continue };
            let events = std::mem::take(&mut request.events);
            let count = events.len() as u64;
            let stream = names.get(0, &request.stream);
            for (i, event) in (0..count).zip(events) {
                let back = count - 1 - i;
                committed.push(RecordedEvent {
                    position: Position::sequence(result.position.commit - back),
                    stream: stream.clone(),
                    revision: result.next_expected - back,
                    id: event.id,
                    event_type: names.get(1, &event.event_type),
                    schema_version: event.schema_version,
                    payload: event.payload,
                    metadata: event.metadata,
                    recorded_at: *recorded_at,
                });
            }
        }
        self.recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend(committed);
    }

    /// Appends one request inside its own savepoint. `touched` collects the revisions it
    /// overwrote in the cache, to undo them if the whole group fails to commit.
    fn append_one(
        &mut self,
        request: &Request,
        touched: &mut Vec<(String, Option<u64>)>,
    ) -> Result<AppendResult, StoreError> {
        let current = self.stream_revision(&request.stream)?;
        let ok = match request.expected {
            ExpectedRevision::Any => true,
            ExpectedRevision::NoStream => current.is_none(),
            ExpectedRevision::Exact(r) => current == Some(r),
        };
        if !ok {
            return Err(StoreError::WrongExpectedRevision {
                stream: request.stream.clone(),
                expected: request.expected,
                actual: current,
            });
        }
        self.conn
            .execute_batch("SAVEPOINT append")
            .map_err(sql_err)?;
        let head_before = self.head;
        let recorded_before = self.last_recorded;
        let mark = self.log.as_ref().map(log::LogWriter::mark);
        let result = self.insert_events(request, current);
        match result {
            Ok(result) => {
                self.conn.execute_batch("RELEASE append").map_err(sql_err)?;
                touched.push((request.stream.clone(), current));
                self.revisions
                    .insert(request.stream.clone(), Some(result.next_expected));
                Ok(result)
            }
            Err(e) => {
                let _ = self
                    .conn
                    .execute_batch("ROLLBACK TO append; RELEASE append");
                if let (Some(log), Some(mark)) = (&mut self.log, mark) {
                    log.forget_since(mark);
                }
                self.head = head_before;
                self.last_recorded = recorded_before;
                Err(e)
            }
        }
    }

    fn insert_events(
        &mut self,
        request: &Request,
        current: Option<u64>,
    ) -> Result<AppendResult, StoreError> {
        let recorded_at = now_micros().max(self.last_recorded);
        let mut statement = self
            .conn
            .prepare_cached(&format!("INSERT INTO events ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"))
            .map_err(sql_err)?;
        let mut revision = current.map_or(0, |r| r + 1);
        let mut position = self.head;
        for event in &request.events {
            position += 1;
            let inserted = statement.execute(params![
                position as i64,
                &request.stream,
                revision as i64,
                event.id.as_bytes(),
                event.event_type,
                event.schema_version,
                event.payload,
                &*event.metadata.actor,
                event.metadata.request_id,
                event.metadata.correlation_id,
                recorded_at,
                event.metadata.request_fingerprint,
            ]);
            if let (Ok(_), Some(log)) = (&inserted, &mut self.log) {
                log.add(&event.leaf(
                    &request.stream,
                    Position::sequence(position),
                    revision,
                    recorded_at,
                ));
            }
            if let Err(e) = inserted {
                let duplicate = matches!(&e, rusqlite::Error::SqliteFailure(f, Some(m)) if f.code == rusqlite::ErrorCode::ConstraintViolation && m.contains("events.id"));
                return Err(if duplicate {
                    StoreError::DuplicateEventId(event.id)
                } else {
                    sql_err(e)
                });
            }
            revision += 1;
        }
        // The append's rows are written, its savepoint not yet released.
        #[cfg(feature = "failpoints")]
        fail::fail_point!("store.append", |_| Err(sql_err(injected(
            rusqlite::ffi::SQLITE_IOERR,
            "disk I/O error"
        ))));
        self.head = position;
        self.last_recorded = recorded_at;
        Ok(AppendResult {
            next_expected: revision - 1,
            position: Position::sequence(position),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An acknowledged append survives power loss only with the WAL fsynced at each commit:
    /// SQLite's own report of the writer's settings says so, on a new store and a reopened one.
    #[test]
    fn the_writer_commits_with_the_wal_fsynced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.db");
        for _ in 0..2 {
            let store = EmbeddedStore::open(EmbeddedConfig::new(&path)).unwrap();
            let durability = store.durability().clone();
            assert_eq!(durability.journal_mode, "wal");
            assert_eq!(durability.synchronous, 2, "{durability}");
            assert_eq!(durability.to_string(), "journal_mode=wal, synchronous=FULL");
            store.close();
        }
    }

    /// `read_seen` finds each event by its row's key, never by scanning: a plan that walks an
    /// index or the table costs a national history seconds instead of microseconds.
    #[tokio::test]
    async fn events_seen_are_read_by_their_rows_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path().join("p.db"))).unwrap();
        let plan = store
            .with_reader(|conn| {
                let mut statement = conn
                    .prepare(&format!("EXPLAIN QUERY PLAN {}", read_seen_sql()))
                    .map_err(sql_err)?;
                let steps = statement
                    .query_map(["[1,2,3]"], |row| row.get::<_, String>(3))
                    .map_err(sql_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sql_err)?;
                Ok(steps)
            })
            .await
            .unwrap();
        assert!(
            plan.iter()
                .any(|step| step.starts_with("SEARCH events USING INTEGER PRIMARY KEY")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN events")),
            "{plan:?}"
        );
    }

    /// The SQLite build settings of `.cargo/config.toml` are in effect: read connections map the
    /// file, and connections do not share one page cache behind one lock.
    #[tokio::test]
    async fn read_connections_map_the_file_and_keep_their_own_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path().join("r.db"))).unwrap();
        let (mmap, options) = store
            .with_reader(|conn| {
                let mmap: i64 = conn
                    .query_row("PRAGMA mmap_size", [], |row| row.get(0))
                    .map_err(sql_err)?;
                let mut statement = conn.prepare("PRAGMA compile_options").map_err(sql_err)?;
                let options = statement
                    .query_map([], |row| row.get::<_, String>(0))
                    .map_err(sql_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sql_err)?;
                Ok((mmap, options))
            })
            .await
            .unwrap();
        assert_eq!(
            mmap, MMAP_BYTES,
            "SQLite capped mmap_size: SQLITE_MAX_MMAP_SIZE not set"
        );
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
    }
}
