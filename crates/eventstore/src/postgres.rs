//! The PostgreSQL backend: a shared store for many service instances.
//!
//! # A gap-free feed although transactions commit out of order
//!
//! Rows get their sequence number (`seq`, an identity column) when they are inserted, but
//! transactions commit in any order: a reader that follows `seq` can see 11 before 10 commits,
//! move past 10 and never see it. Skipping such gaps after a time-out loses events.
//!
//! Instead, each row stores the id of the transaction that wrote it (`tx_id xid8`, from
//! `pg_current_xact_id()`), and the feed is ordered by `(tx_id, seq)`. A reader only takes rows
//! whose `tx_id` is below `pg_snapshot_xmin(pg_current_snapshot())`: the oldest transaction still
//! running. Every transaction below that horizon has finished, so no row can ever appear before
//! the rows read: the feed only grows at its end. A [`Position`] is `(tx_id, seq)`.
//!
//! The price: a long-running transaction anywhere in the cluster holds the horizon back and
//! delays (never reorders or loses) delivery until it ends.
//!
//! # Expected revisions under concurrent writers
//!
//! A `streams` table holds each stream's last revision. An append locks its stream's row
//! (`SELECT ... FOR UPDATE`), compares, inserts the events and updates the row in one
//! transaction; a concurrent writer on the same stream waits for the lock and then sees the new
//! revision. Two writers creating the same stream race on the primary key; the loser retries
//! under the new row's lock and so sees the true revision.
//!
//! # Live delivery
//!
//! Each append sends `NOTIFY` on the schema's channel (delivered at commit); a listening
//! connection bumps [`EventStore::feed_changes`]. Subscribers also re-read every 100 ms, which
//! covers a horizon held back by another transaction. A hot standby refuses `LISTEN`: there
//! the listener wakes the subscribers every 20 ms instead.
//!
//! # Primaries and hot standbys
//!
//! The URL may name several servers (`postgres://h1:5432,h2:5432/db`). A writing process
//! ([`Sessions::Primary`]) connects only to the one that accepts writes and finds the new one by
//! itself after a failover; a following process ([`Sessions::PreferStandby`]) reads from a hot
//! standby when one answers and from any server otherwise. The feed's horizon holds on a
//! standby too: replaying the primary's WAL, it counts a transaction as running from the first
//! record that names an xid above the ones it knew, so its snapshot's `xmin` stays below every
//! transaction it has not seen finish. A standby never migrates: it checks the schema's version.

mod log;

use std::collections::HashMap;
use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures::StreamExt;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};
use uuid::Uuid;

use registry_ledger::{Hash, NodeId};

use crate::log::{LogSigner, StoredCheckpoint};
use crate::{
    check_append, check_stream_name, AppendResult, Direction, EventStore, ExpectedRevision,
    Interner, Metadata, NewEvent, Position, RecordedEvent, StoreError, DEFAULT_MAX_EVENT_BYTES,
};

/// The schema version this code writes; a database at a newer version is refused.
const SCHEMA_VERSION: i32 = 1;

/// Which of the servers a URL names a connection goes to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sessions {
    /// As the URL says (`target_session_attrs`, or any server).
    #[default]
    AsGiven,
    /// The server that accepts writes, unless the URL says otherwise: what a writer needs.
    Primary,
    /// A hot standby when one answers, any server otherwise: what a follower wants.
    PreferStandby,
}

/// How the PostgreSQL store connects.
#[derive(Clone, Debug)]
pub struct PostgresConfig {
    /// A libpq-style URL, such as `postgres://registry@127.0.0.1:5432/registry`.
    pub url: String,
    /// The schema holding the store's tables (created if missing).
    pub schema: String,
    /// Connections in the pool.
    pub pool_size: usize,
    /// The largest event accepted, in bytes.
    pub max_event_bytes: usize,
    /// The key that signs the log's checkpoints. A process given one competes to be the log's
    /// integrator (`postgres/log.rs`); without any, the log is not kept.
    pub signer: Option<Arc<LogSigner>>,
    /// Which server the pool's connections go to.
    pub sessions: Sessions,
}

impl PostgresConfig {
    /// Defaults for a URL, in schema `registry`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: "registry".into(),
            pool_size: 16,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            signer: None,
            sessions: Sessions::AsGiven,
        }
    }
}

/// A handle on the PostgreSQL store. Clones share the pool and the listener.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    config: PostgresConfig,
    changes: watch::Receiver<u64>,
    listener: tokio::task::JoinHandle<()>,
    integrator: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Set by [`PostgresStore::close`]: the integrator signs what it integrated, then ends.
    closing: std::sync::atomic::AtomicBool,
    sql: Statements,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.abort();
        if let Some(integrator) = self.integrator.lock().ok().and_then(|mut i| i.take()) {
            integrator.abort();
        }
    }
}

impl PostgresStore {
    /// At a planned stop, after the last write: when this process integrates the log, it
    /// integrates every committed event and signs a checkpoint covering them, then stops (an
    /// integrator waiting for another's lock stops at once). Waits at most 10 s.
    pub async fn close(&self) {
        self.inner
            .closing
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let task = self.inner.integrator.lock().ok().and_then(|mut i| i.take());
        if let Some(task) = task {
            if tokio::time::timeout(std::time::Duration::from_secs(10), task)
                .await
                .is_err()
            {
                tracing::warn!("the log's integrator did not finish within 10 s of the stop");
            }
        }
    }

    /// What makes commits durable, as the store's sessions see it:
    /// `synchronous_commit=…, fsync=…`.
    pub async fn durability(&self) -> Result<String, StoreError> {
        let client = self.inner.pool.get().await.map_err(pg_err)?;
        let row = client
            .query_one(
                "SELECT current_setting('synchronous_commit'), current_setting('fsync')",
                &[],
            )
            .await
            .map_err(pg_err)?;
        Ok(format!(
            "synchronous_commit={}, fsync={}",
            row.get::<_, String>(0),
            row.get::<_, String>(1)
        ))
    }

    fn closing(&self) -> bool {
        self.inner
            .closing
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The SQL texts, with the schema name filled in once.
struct Statements {
    lock_stream: String,
    create_stream: String,
    update_stream: String,
    insert: String,
    read_forwards: String,
    read_backwards: String,
    read_revisions: String,
    read_all: String,
    head: String,
}

/// The outcome of one append transaction.
enum Attempt {
    /// Appended, or refused for a reason the caller must hear.
    Done(Result<AppendResult, StoreError>),
    /// Another writer created the stream first; nothing was written.
    CreationRace,
}

fn pg_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::backend(e)
}

/// A failed statement: [`StoreError::Full`] when the server's disk is full, else a backend error.
fn statement_err(e: tokio_postgres::Error) -> StoreError {
    if e.code() == Some(&tokio_postgres::error::SqlState::DISK_FULL) {
        StoreError::Full(e.to_string())
    } else {
        pg_err(e)
    }
}

// The transaction id is read as text (tokio-postgres has no xid8 type) under an alias: an output
// column named `tx_id` would make `ORDER BY tx_id` sort the text, lexicographically ("1007" before
// "964").
pub(crate) const COLUMNS: &str = "tx_id::text AS tx_text, seq, stream, revision, id, type, version, payload, actor, request_id, correlation_id, recorded_at, request_fingerprint";

impl Statements {
    fn new(schema: &str) -> Self {
        let s = schema;
        Self {
            lock_stream: format!("SELECT revision FROM {s}.streams WHERE name = $1 FOR UPDATE"),
            create_stream: format!("INSERT INTO {s}.streams (name, revision) VALUES ($1, $2) ON CONFLICT DO NOTHING"),
            update_stream: format!("UPDATE {s}.streams SET revision = $2 WHERE name = $1"),
            insert: format!(
                "WITH previous AS (
                    SELECT COALESCE(max(recorded_at), 0) AS at FROM (
                        SELECT recorded_at FROM {s}.events WHERE stream = $1
                        ORDER BY revision DESC LIMIT 1) last),
                 inserted AS (
                    INSERT INTO {s}.events (stream, revision, id, type, version, payload, actor, request_id, correlation_id, request_fingerprint, recorded_at)
                    SELECT $1, r, i, t, v, p, a, q, c, f,
                           GREATEST((extract(epoch FROM clock_timestamp()) * 1000000)::bigint, previous.at)
                    FROM UNNEST($2::bigint[], $3::uuid[], $4::text[], $5::smallint[], $6::bytea[], $7::text[], $8::text[], $9::text[], $10::text[])
                         AS u(r, i, t, v, p, a, q, c, f), previous
                    RETURNING tx_id, seq)
                 SELECT tx_id::text AS tx_text, max(seq) FROM inserted GROUP BY tx_id"
            ),
            read_forwards: format!("SELECT {COLUMNS} FROM {s}.events WHERE stream = $1 AND revision >= $2 ORDER BY revision ASC LIMIT $3"),
            read_backwards: format!("SELECT {COLUMNS} FROM {s}.events WHERE stream = $1 AND revision <= $2 ORDER BY revision DESC LIMIT $3"),
            read_revisions: format!("SELECT {COLUMNS} FROM {s}.events WHERE stream = $1 AND revision = ANY($2) ORDER BY revision ASC"),
            read_all: format!(
                "SELECT {COLUMNS} FROM {s}.events
                 WHERE (tx_id, seq) > ($1::text::xid8, $2) AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
                 ORDER BY tx_id, seq LIMIT $3"
            ),
            head: format!(
                "SELECT tx_id::text AS tx_text, seq FROM {s}.events
                 WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot())
                 ORDER BY tx_id DESC, seq DESC LIMIT 1"
            ),
        }
    }
}

fn migration(schema: &str) -> String {
    let s = schema;
    format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.schema_version (version integer NOT NULL);
         CREATE TABLE IF NOT EXISTS {s}.streams (name text PRIMARY KEY, revision bigint NOT NULL);
         CREATE TABLE IF NOT EXISTS {s}.events (
             tx_id          xid8     NOT NULL DEFAULT pg_current_xact_id(),
             seq            bigint   GENERATED ALWAYS AS IDENTITY,
             stream         text     NOT NULL,
             revision       bigint   NOT NULL,
             id             uuid     NOT NULL UNIQUE,
             type           text     NOT NULL,
             version        smallint NOT NULL,
             payload        bytea    NOT NULL,
             actor          text     NOT NULL,
             request_id     text,
             correlation_id text,
             recorded_at    bigint   NOT NULL,
             PRIMARY KEY (tx_id, seq),
             UNIQUE (stream, revision)
         );
         ALTER TABLE {s}.events ADD COLUMN IF NOT EXISTS request_fingerprint text;
         {}",
        log::schema(s)
    )
}

/// The connection settings for each kind of session a URL's servers offer.
#[derive(Clone)]
struct Servers {
    /// As the URL says.
    given: tokio_postgres::Config,
    /// Only a server that accepts writes (unless the URL chose otherwise).
    primary: tokio_postgres::Config,
    /// Only a hot standby, when the URL names several servers and chose none.
    standby: Option<tokio_postgres::Config>,
}

impl Servers {
    fn new(url: &str) -> Result<Self, StoreError> {
        let mut given: tokio_postgres::Config = url.parse().map_err(pg_err)?;
        // A server that stops answering (a partition, a dead machine) must fail the calls
        // waiting on it within seconds, not after the kernel's retransmissions (many minutes),
        // so that the pool reconnects, to the new primary after a failover.
        if given.get_connect_timeout().is_none() {
            given.connect_timeout(std::time::Duration::from_secs(5));
        }
        if given.get_tcp_user_timeout().is_none() {
            given.tcp_user_timeout(std::time::Duration::from_secs(15));
        }
        // tokio-postgres's default is two hours; keep a URL's own choice.
        if given.get_keepalives_idle() == std::time::Duration::from_secs(2 * 60 * 60) {
            given.keepalives_idle(std::time::Duration::from_secs(30));
        }
        // Acknowledged means durable: commits wait for the WAL's flush whatever the server's
        // or database's default says, unless the URL's own `options` chose a level.
        let durable = "-c synchronous_commit=on";
        match given.get_options() {
            Some(options) if options.contains("synchronous_commit") => {}
            Some(options) => {
                let options = format!("{options} {durable}");
                given.options(&options);
            }
            None => {
                given.options(durable);
            }
        }
        let chosen = url.contains("target_session_attrs");
        let mut primary = given.clone();
        if !chosen {
            primary.target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite);
        }
        let standby = (!chosen && given.get_hosts().len() > 1).then(|| {
            let mut standby = given.clone();
            standby.target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadOnly);
            standby
        });
        Ok(Self {
            given,
            primary,
            standby,
        })
    }
}

/// A follower's connections: a hot standby's when one answers, any server's otherwise.
impl deadpool_postgres::Connect for Servers {
    fn connect(
        &self,
        _: &tokio_postgres::Config,
    ) -> futures::future::BoxFuture<
        '_,
        Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>,
    > {
        Box::pin(async move {
            let standby = match &self.standby {
                Some(standby) => standby.connect(NoTls).await.ok(),
                None => None,
            };
            let (client, connection) = match standby {
                Some(connected) => connected,
                None => self.given.connect(NoTls).await?,
            };
            let connection = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "a PostgreSQL connection ended");
                }
            });
            Ok((client, connection))
        })
    }
}

/// On a hot standby, which cannot migrate: the schema must be there, at this code's version.
async fn check_version(client: &tokio_postgres::Client, schema: &str) -> Result<(), StoreError> {
    let version: Option<i32> = client
        .query_one(
            &format!("SELECT max(version) FROM {schema}.schema_version"),
            &[],
        )
        .await
        .map_err(|e| {
            StoreError::backend(format!(
                "this server is a hot standby without the registry's schema {schema:?} ({e}): \
                 start a writing registryd on the primary first"
            ))
        })?
        .get(0);
    match version {
        Some(SCHEMA_VERSION) => Ok(()),
        other => Err(StoreError::backend(format!(
            "this server is a hot standby whose schema is at version {other:?}; this program \
             needs {SCHEMA_VERSION}: start a writing registryd of this version on the primary"
        ))),
    }
}

pub(crate) fn parse_xid(text: &str) -> Result<u64, StoreError> {
    text.parse()
        .map_err(|_| StoreError::backend(format!("unexpected transaction id {text:?}")))
}

impl PostgresStore {
    /// Connects, creates or migrates the schema, and starts listening for appends.
    pub async fn connect(config: PostgresConfig) -> Result<Self, StoreError> {
        if config.schema.is_empty()
            || !config
                .schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(StoreError::backend(format!(
                "schema name {:?} must be lowercase ASCII letters, digits and underscores",
                config.schema
            )));
        }
        let servers = Servers::new(&config.url)?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match config.sessions {
            Sessions::AsGiven => Manager::from_config(servers.given.clone(), NoTls, manager_config),
            Sessions::Primary => {
                Manager::from_config(servers.primary.clone(), NoTls, manager_config)
            }
            Sessions::PreferStandby => {
                Manager::from_connect(servers.given.clone(), servers.clone(), manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .build()
            .map_err(pg_err)?;
        let mut client = pool.get().await.map_err(pg_err)?;
        let standby: bool = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(pg_err)?
            .get(0);
        if standby {
            check_version(&client, &config.schema).await?;
        } else {
            // One migrator at a time across instances.
            let tx = client.transaction().await.map_err(pg_err)?;
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                &[&format!("registry-migrate-{}", config.schema)],
            )
            .await
            .map_err(pg_err)?;
            tx.batch_execute(&migration(&config.schema))
                .await
                .map_err(pg_err)?;
            let version: Option<i32> = tx
                .query_opt(
                    &format!("SELECT max(version) FROM {}.schema_version", config.schema),
                    &[],
                )
                .await
                .map_err(pg_err)?
                .and_then(|row| row.get(0));
            match version {
                None => {
                    tx.execute(
                        &format!("INSERT INTO {}.schema_version VALUES ($1)", config.schema),
                        &[&SCHEMA_VERSION],
                    )
                    .await
                    .map_err(pg_err)?;
                }
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(StoreError::backend(format!(
                        "the database schema is at version {v}; this program knows up to {SCHEMA_VERSION}"
                    )));
                }
                Some(_) => {}
            }
            tx.commit().await.map_err(pg_err)?;
        }
        drop(client);
        let (changes_tx, changes) = watch::channel(0u64);
        let listener = tokio::spawn(listen(
            servers.given.clone(),
            format!("{}_events", config.schema),
            changes_tx,
        ));
        let sql = Statements::new(&config.schema);
        let signer = config.signer.clone();
        let schema = config.schema.clone();
        let store = Self {
            inner: Arc::new(Inner {
                pool,
                config,
                changes,
                listener,
                integrator: std::sync::Mutex::new(None),
                closing: std::sync::atomic::AtomicBool::new(false),
                sql,
            }),
        };
        if let Some(signer) = signer {
            let task = tokio::spawn(log::integrate(
                servers.primary,
                Arc::downgrade(&store.inner),
                schema,
                signer,
            ));
            if let Ok(mut slot) = store.inner.integrator.lock() {
                *slot = Some(task);
            }
        }
        Ok(store)
    }

    /// The schema the store lives in.
    pub fn schema(&self) -> &str {
        &self.inner.config.schema
    }

    async fn try_append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: &[NewEvent],
    ) -> Result<Attempt, StoreError> {
        let sql = &self.inner.sql;
        let mut client = self.inner.pool.get().await.map_err(pg_err)?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let current: Option<i64> = tx
            .query_opt(&sql.lock_stream, &[&stream])
            .await
            .map_err(pg_err)?
            .map(|row| row.get(0));
        let current = current.map(|r| r as u64);
        let ok = match expected {
            ExpectedRevision::Any => true,
            ExpectedRevision::NoStream => current.is_none(),
            ExpectedRevision::Exact(r) => current == Some(r),
        };
        if !ok {
            return Ok(Attempt::Done(Err(StoreError::WrongExpectedRevision {
                stream: stream.to_owned(),
                expected,
                actual: current,
            })));
        }
        let first = current.map_or(0, |r| r + 1);
        let last = first + events.len() as u64 - 1;
        if current.is_none() {
            let created = tx
                .execute(&sql.create_stream, &[&stream, &(last as i64)])
                .await
                .map_err(pg_err)?;
            if created == 0 {
                // Another writer created the stream meanwhile: try again, now under its lock.
                return Ok(Attempt::CreationRace);
            }
        } else {
            tx.execute(&sql.update_stream, &[&stream, &(last as i64)])
                .await
                .map_err(pg_err)?;
        }
        let revisions: Vec<i64> = (first..=last).map(|r| r as i64).collect();
        let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let versions: Vec<i16> = events.iter().map(|e| e.schema_version as i16).collect();
        let payloads: Vec<&[u8]> = events.iter().map(|e| e.payload.as_slice()).collect();
        let actors: Vec<&str> = events.iter().map(|e| &*e.metadata.actor).collect();
        let requests: Vec<Option<&str>> = events
            .iter()
            .map(|e| e.metadata.request_id.as_deref())
            .collect();
        let correlations: Vec<Option<&str>> = events
            .iter()
            .map(|e| e.metadata.correlation_id.as_deref())
            .collect();
        let fingerprints: Vec<Option<&str>> = events
            .iter()
            .map(|e| e.metadata.request_fingerprint.as_deref())
            .collect();
        let inserted = tx
            .query_one(
                &sql.insert,
                &[
                    &stream,
                    &revisions,
                    &ids,
                    &types,
                    &versions,
                    &payloads,
                    &actors,
                    &requests,
                    &correlations,
                    &fingerprints,
                ],
            )
            .await;
        let row = match inserted {
            Ok(row) => row,
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                let duplicate = ids.first().copied().unwrap_or_default();
                let detail = e
                    .as_db_error()
                    .and_then(|d| d.constraint().map(str::to_owned))
                    .unwrap_or_default();
                if detail.contains("id") && !detail.contains("revision") {
                    return Ok(Attempt::Done(Err(StoreError::DuplicateEventId(duplicate))));
                }
                return Err(pg_err(e));
            }
            Err(e) => return Err(statement_err(e)),
        };
        let tx_id = parse_xid(row.get::<_, &str>(0))?;
        let seq: i64 = row.get(1);
        tx.execute(
            "SELECT pg_notify($1, '')",
            &[&format!("{}_events", self.inner.config.schema)],
        )
        .await
        .map_err(pg_err)?;
        // The rows are written, the transaction open: a test may drop its connection here.
        #[cfg(feature = "failpoints")]
        fail::fail_point!("store.commit", |_| Err(StoreError::backend(
            "injected: the append failed before its commit"
        )));
        let committing = std::time::Instant::now();
        tx.commit().await.map_err(|e| match statement_err(e) {
            full @ StoreError::Full(_) => full,
            e => StoreError::Backend {
                message: format!("commit failed: {e}"),
                uncertain: true,
            },
        })?;
        // Each append is its own transaction here: its COMMIT (the server's durable flush).
        metrics::histogram!(crate::metrics::COMMIT_SECONDS)
            .record(committing.elapsed().as_secs_f64());
        metrics::histogram!(crate::metrics::COMMIT_EVENTS).record(events.len() as f64);
        Ok(Attempt::Done(Ok(AppendResult {
            next_expected: last,
            position: Position {
                commit: tx_id,
                prepare: seq as u64,
            },
        })))
    }
}

/// How often followers of a hot standby look for new events.
const STANDBY_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Listens on the notification channel and bumps the change counter; reconnects on failure.
async fn listen(config: tokio_postgres::Config, channel: String, changes: watch::Sender<u64>) {
    loop {
        if let Ok((client, mut connection)) = config.connect(NoTls).await {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            let listening = async {
                // A hot standby refuses LISTEN: wake the subscribers every 20 ms instead (an
                // empty indexed read each), so that a read waiting for a position is not held
                // by their 100 ms re-read; and ask every 5 s whether it has been promoted.
                loop {
                    let standby: bool = client
                        .query_one("SELECT pg_is_in_recovery()", &[])
                        .await
                        .ok()?
                        .get(0);
                    if !standby {
                        break;
                    }
                    for _ in 0..250 {
                        tokio::time::sleep(STANDBY_POLL).await;
                        changes.send_modify(|n| *n = n.wrapping_add(1));
                    }
                }
                client
                    .batch_execute(&format!("LISTEN {channel}"))
                    .await
                    .ok()?;
                futures::future::pending::<Option<()>>().await
            };
            let receiving = async {
                while let Some(message) = messages.next().await {
                    match message {
                        Ok(AsyncMessage::Notification(_)) => {
                            changes.send_modify(|n| *n = n.wrapping_add(1));
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            };
            tokio::select! {
                _ = listening => {}
                () = receiving => {}
            }
        }
        if changes.is_closed() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

fn row_to_event(
    row: &tokio_postgres::Row,
    names: &mut Interner,
) -> Result<RecordedEvent, StoreError> {
    Ok(RecordedEvent {
        position: Position {
            commit: parse_xid(row.get::<_, &str>(0))?,
            prepare: row.get::<_, i64>(1) as u64,
        },
        stream: names.get(0, row.get::<_, &str>(2)),
        revision: row.get::<_, i64>(3) as u64,
        id: row.get(4),
        event_type: names.get(1, row.get::<_, &str>(5)),
        schema_version: row.get::<_, i16>(6) as u16,
        payload: row.get(7),
        metadata: Metadata {
            actor: names.get(2, row.get::<_, &str>(8)),
            request_id: row.get(9),
            correlation_id: row.get(10),
            request_fingerprint: row.get(12),
        },
        recorded_at: row.get(11),
    })
}

pub(crate) fn rows_to_events(
    rows: &[tokio_postgres::Row],
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut names = Interner::default();
    rows.iter()
        .map(|row| row_to_event(row, &mut names))
        .collect()
}

impl EventStore for PostgresStore {
    fn max_event_bytes(&self) -> usize {
        self.inner.config.max_event_bytes
    }

    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        check_append(stream, &events, self.inner.config.max_event_bytes)?;
        loop {
            // A lost race to create the stream is retried: the stream now exists, so the next
            // attempt waits for its lock and checks the expectation against its real revision.
            match self.try_append(stream, expected, &events).await? {
                Attempt::Done(outcome) => return outcome,
                Attempt::CreationRace => continue,
            }
        }
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_stream_name(stream)?;
        let client = self.inner.pool.get().await.map_err(pg_err)?;
        let sql = match direction {
            Direction::Forwards => &self.inner.sql.read_forwards,
            Direction::Backwards => &self.inner.sql.read_backwards,
        };
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let statement = client.prepare_cached(sql).await.map_err(pg_err)?;
        let rows = client
            .query(&statement, &[&stream, &from, &(limit as i64)])
            .await
            .map_err(pg_err)?;
        rows_to_events(&rows)
    }

    async fn read_revisions(
        &self,
        stream: &str,
        revisions: &[u64],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_stream_name(stream)?;
        let wanted: Vec<i64> = revisions
            .iter()
            .filter_map(|r| i64::try_from(*r).ok())
            .collect();
        let client = self.inner.pool.get().await.map_err(pg_err)?;
        let statement = client
            .prepare_cached(&self.inner.sql.read_revisions)
            .await
            .map_err(pg_err)?;
        let rows = client
            .query(&statement, &[&stream, &wanted])
            .await
            .map_err(pg_err)?;
        rows_to_events(&rows)
    }

    async fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.inner.pool.get().await.map_err(pg_err)?;
        let after = after.unwrap_or(Position {
            commit: 0,
            prepare: 0,
        });
        let statement = client
            .prepare_cached(&self.inner.sql.read_all)
            .await
            .map_err(pg_err)?;
        let rows = client
            .query(
                &statement,
                &[
                    &after.commit.to_string(),
                    &(after.prepare as i64),
                    &(limit as i64),
                ],
            )
            .await
            .map_err(pg_err)?;
        rows_to_events(&rows)
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        let client = self.inner.pool.get().await.map_err(pg_err)?;
        let row = client
            .query_opt(&self.inner.sql.head, &[])
            .await
            .map_err(pg_err)?;
        row.map(|row| {
            Ok(Position {
                commit: parse_xid(row.get::<_, &str>(0))?,
                prepare: row.get::<_, i64>(1) as u64,
            })
        })
        .transpose()
    }

    async fn read_at(&self, position: Position) -> Result<Option<RecordedEvent>, StoreError> {
        let client = self.inner.pool.get().await.map_err(pg_err)?;
        let s = self.schema();
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM {s}.events WHERE tx_id = $1::text::xid8 AND seq = $2"
                ),
                &[&position.commit.to_string(), &(position.prepare as i64)],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows_to_events(&rows)?.pop())
    }

    async fn log_nodes(&self, ids: Vec<NodeId>) -> Result<HashMap<NodeId, Hash>, StoreError> {
        let client = self.inner.pool.get().await.map_err(pg_err)?;
        log::read_nodes(&client, self.schema(), &ids).await
    }

    async fn log_checkpoint(
        &self,
        size: Option<u64>,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let client = self.inner.pool.get().await.map_err(pg_err)?;
        let s = self.schema();
        let row = match size {
            None => {
                client
                    .query_opt(
                        &format!(
                            "SELECT size, note FROM {s}.log_checkpoints ORDER BY size DESC LIMIT 1"
                        ),
                        &[],
                    )
                    .await
            }
            Some(size) => {
                client
                    .query_opt(
                        &format!("SELECT size, note FROM {s}.log_checkpoints WHERE size = $1"),
                        &[&i64::try_from(size).unwrap_or(i64::MAX)],
                    )
                    .await
            }
        }
        .map_err(pg_err)?;
        Ok(row.map(|row| StoredCheckpoint {
            size: row.get::<_, i64>(0) as u64,
            note: row.get(1),
        }))
    }

    async fn log_cosign(&self, size: u64, was: String, note: String) -> Result<bool, StoreError> {
        let client = self.inner.pool.get().await.map_err(pg_err)?;
        let s = self.schema();
        let changed = client
            .execute(
                &format!("UPDATE {s}.log_checkpoints SET note = $3 WHERE size = $1 AND note = $2"),
                &[&i64::try_from(size).unwrap_or(i64::MAX), &was, &note],
            )
            .await
            .map_err(pg_err)?;
        Ok(changed == 1)
    }

    async fn log_index(&self, position: Position) -> Result<Option<u64>, StoreError> {
        let client = self.inner.pool.get().await.map_err(pg_err)?;
        let s = self.schema();
        let row = client
            .query_opt(
                &format!(
                    "SELECT idx FROM {s}.log_leaves WHERE tx_id = $1::text::xid8 AND seq = $2"
                ),
                &[&position.commit.to_string(), &(position.prepare as i64)],
            )
            .await
            .map_err(pg_err)?;
        Ok(row.map(|row| row.get::<_, i64>(0) as u64))
    }

    async fn log_position(&self, index: u64) -> Result<Option<Position>, StoreError> {
        let client = self.inner.pool.get().await.map_err(pg_err)?;
        let s = self.schema();
        let row = client
            .query_opt(
                &format!("SELECT tx_id::text, seq FROM {s}.log_leaves WHERE idx = $1"),
                &[&i64::try_from(index).unwrap_or(i64::MAX)],
            )
            .await
            .map_err(pg_err)?;
        row.map(|row| {
            Ok(Position {
                commit: parse_xid(row.get::<_, &str>(0))?,
                prepare: row.get::<_, i64>(1) as u64,
            })
        })
        .transpose()
    }

    fn feed_changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.clone()
    }
}
