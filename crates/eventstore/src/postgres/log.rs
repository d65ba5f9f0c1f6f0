//! The PostgreSQL store's verifiable log, kept by one integrator at a time.
//!
//! The feed's order, `(tx_id, seq)` below the oldest running transaction, is known only after
//! commit, so leaves cannot be made in the appending transaction as the embedded store makes
//! them. Instead, as Trillian's sequencer does, one process (the holder of a session-level
//! advisory lock on its own connection) follows the feed, appends the events it sees to the
//! tree, and stores, in one transaction on that connection: the nodes they complete, each
//! leaf's position (`log_leaves`: leaf index → `(tx_id, seq)`), and a signed checkpoint when
//! one is due (at most once a second). If the process dies, its connection and lock go with it,
//! and another process takes over from the last leaf stored: nothing is integrated twice or
//! lost. Only processes given the log's key compete for the lock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use registry_ledger::{Frontier, Hash, NodeId};
use tokio_postgres::{Client, NoTls};

use super::{parse_xid, pg_err, Inner, PostgresStore};
use crate::log::{now_seconds, LogSigner};
use crate::{EventStore, Position, StoreError};

/// The log's tables (see [`crate::log`]), plus the map from leaf to position.
pub(super) fn schema(s: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {s}.log_nodes (key bigint PRIMARY KEY, hash bytea NOT NULL);
         CREATE TABLE IF NOT EXISTS {s}.log_leaves (
             idx    bigint PRIMARY KEY,
             tx_id  xid8   NOT NULL,
             seq    bigint NOT NULL,
             UNIQUE (tx_id, seq)
         );
         CREATE TABLE IF NOT EXISTS {s}.log_checkpoints (size bigint PRIMARY KEY, note text NOT NULL);"
    )
}

/// Events read and integrated per transaction.
const BATCH: usize = 4096;

/// How often checkpoints are signed at most.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Runs for the store's lifetime: waits for the integrator's lock, integrates while it holds
/// it, and starts over (from what is stored) after any failure.
pub(super) async fn integrate(
    config: tokio_postgres::Config,
    store: std::sync::Weak<Inner>,
    schema: String,
    signer: Arc<LogSigner>,
) {
    // During a failover there is no primary for a while: say so once, not every second.
    let mut failing = false;
    loop {
        let started = std::time::Instant::now();
        match hold_and_integrate(&config, &store, &schema, &signer).await {
            Ok(()) => return, // The store was closed.
            Err(e) if open(&store).is_none_or(|s| s.closing()) => {
                tracing::warn!(error = %e, "the log's integrator stopped while the store closed");
                return;
            }
            Err(e) if failing && started.elapsed() < Duration::from_secs(10) => {
                tracing::debug!(error = %e, "the log's integrator stopped again");
            }
            Err(e) => tracing::warn!(error = %e, "the log's integrator stopped; starting over"),
        }
        failing = true;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The store, while it is open (the integrator must not keep it open).
fn open(store: &std::sync::Weak<Inner>) -> Option<PostgresStore> {
    store.upgrade().map(|inner| PostgresStore { inner })
}

async fn hold_and_integrate(
    config: &tokio_postgres::Config,
    store: &std::sync::Weak<Inner>,
    schema: &str,
    signer: &Arc<LogSigner>,
) -> Result<(), StoreError> {
    let (mut client, connection) = config.connect(NoTls).await.map_err(pg_err)?;
    let connection = tokio::spawn(connection);
    let _stop = scopeguard(connection);
    loop {
        let held: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtext($1))",
                &[&format!("registry-log-{schema}")],
            )
            .await
            .map_err(pg_err)?
            .get(0);
        if held {
            break;
        }
        if open(store).is_none_or(|s| s.closing()) {
            return Ok(()); // Another process integrates.
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut log = Integrator::load(&client, schema, signer.clone()).await?;
    tracing::info!(
        leaves = log.frontier.len(),
        "integrating the feed into the log"
    );
    let Some(mut changes) = open(store).map(|s| s.feed_changes()) else {
        return Ok(());
    };
    loop {
        // Between two batches: a test may make the integrator die here.
        #[cfg(feature = "failpoints")]
        fail::fail_point!("log.integrate", |_| Err(StoreError::backend(
            "injected: the integrator died between two batches"
        )));
        changes.borrow_and_update();
        let Some(events) = open(store).map(|s| async move { s.read_all(log.last, BATCH).await })
        else {
            return Ok(());
        };
        let events = events.await?;
        if events.is_empty() {
            let closing = open(store).is_none_or(|s| s.closing());
            if closing {
                // The last checkpoint covers every leaf, whenever the one before was signed.
                log.signed_at = None;
            }
            if log.checkpoint_due() {
                log.commit(&mut client, &[], &[]).await?;
            }
            if closing {
                return Ok(());
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), changes.changed()).await;
            continue;
        }
        let leaves: Vec<(Position, Hash)> = events
            .iter()
            .map(|e| (e.position, e.leaf().hash()))
            .collect();
        let mut nodes = Vec::with_capacity(leaves.len() * 2);
        let before = log.frontier.clone();
        for (_, leaf) in &leaves {
            log.frontier.push(*leaf, |id, hash| nodes.push((id, hash)));
        }
        if let Err(e) = log.commit(&mut client, &leaves, &nodes).await {
            log.frontier = before;
            return Err(e);
        }
        log.last = leaves.last().map(|(p, _)| *p);
    }
}

/// Aborts the connection's task when the integrator stops.
fn scopeguard(task: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>) -> impl Drop {
    struct Abort(tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>);
    impl Drop for Abort {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    Abort(task)
}

struct Integrator {
    schema: String,
    frontier: Frontier,
    /// The position of the last leaf.
    last: Option<Position>,
    signer: Arc<LogSigner>,
    signed: u64,
    signed_at: Option<Instant>,
}

impl Integrator {
    /// Resumes from the stored log: its size, last position, right edge and newest checkpoint.
    async fn load(
        client: &Client,
        schema: &str,
        signer: Arc<LogSigner>,
    ) -> Result<Self, StoreError> {
        let s = schema;
        let row = client
            .query_opt(
                &format!(
                    "SELECT idx, tx_id::text, seq FROM {s}.log_leaves ORDER BY idx DESC LIMIT 1"
                ),
                &[],
            )
            .await
            .map_err(pg_err)?;
        let (size, last) = match row {
            None => (0, None),
            Some(row) => (
                (row.get::<_, i64>(0) + 1) as u64,
                Some(Position {
                    commit: parse_xid(row.get::<_, &str>(1))?,
                    prepare: row.get::<_, i64>(2) as u64,
                }),
            ),
        };
        let nodes = read_nodes(client, s, &Frontier::ids(size)).await?;
        let frontier = Frontier::load(size, &nodes).map_err(|e| {
            StoreError::backend(format!(
                "the log cannot be resumed: {e}; run `regctl verify`"
            ))
        })?;
        let signed: i64 = client
            .query_one(
                &format!("SELECT COALESCE(MAX(size), 0) FROM {s}.log_checkpoints"),
                &[],
            )
            .await
            .map_err(pg_err)?
            .get(0);
        Ok(Self {
            schema: s.to_owned(),
            frontier,
            last,
            signer,
            signed: signed as u64,
            signed_at: None,
        })
    }

    fn checkpoint_due(&self) -> bool {
        self.signed < self.frontier.len()
            && self
                .signed_at
                .is_none_or(|at| at.elapsed() >= CHECKPOINT_EVERY)
    }

    /// Stores a batch's leaves and nodes, and a checkpoint when one is due, in one transaction.
    async fn commit(
        &mut self,
        client: &mut Client,
        leaves: &[(Position, Hash)],
        nodes: &[(NodeId, Hash)],
    ) -> Result<(), StoreError> {
        let s = &self.schema;
        let tx = client.transaction().await.map_err(pg_err)?;
        if !leaves.is_empty() {
            let first = self.frontier.len() - leaves.len() as u64;
            let indexes: Vec<i64> = (0..leaves.len() as i64).map(|i| first as i64 + i).collect();
            let transactions: Vec<String> =
                leaves.iter().map(|(p, _)| p.commit.to_string()).collect();
            let sequences: Vec<i64> = leaves.iter().map(|(p, _)| p.prepare as i64).collect();
            tx.execute(
                &format!(
                    "INSERT INTO {s}.log_leaves (idx, tx_id, seq)
                     SELECT i, t::xid8, q FROM UNNEST($1::bigint[], $2::text[], $3::bigint[]) AS u(i, t, q)"
                ),
                &[&indexes, &transactions, &sequences],
            )
            .await
            .map_err(pg_err)?;
            let keys: Vec<i64> = nodes.iter().map(|(id, _)| id.key() as i64).collect();
            let hashes: Vec<&[u8]> = nodes.iter().map(|(_, h)| &h[..]).collect();
            tx.execute(
                &format!(
                    "INSERT INTO {s}.log_nodes (key, hash) SELECT * FROM UNNEST($1::bigint[], $2::bytea[])"
                ),
                &[&keys, &hashes],
            )
            .await
            .map_err(pg_err)?;
        }
        let signing = self.checkpoint_due().then(|| self.frontier.len());
        if let Some(size) = signing {
            let note = self.signer.sign(size, self.frontier.root(), now_seconds());
            tx.execute(
                &format!("INSERT INTO {s}.log_checkpoints (size, note) VALUES ($1, $2)"),
                &[&(size as i64), &note],
            )
            .await
            .map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)?;
        if let Some(size) = signing {
            self.signed = size;
            self.signed_at = Some(Instant::now());
        }
        Ok(())
    }
}

/// The stored hashes of these nodes; ids not stored are left out.
pub(super) async fn read_nodes(
    client: &Client,
    schema: &str,
    ids: &[NodeId],
) -> Result<std::collections::HashMap<NodeId, Hash>, StoreError> {
    let keys: Vec<i64> = ids.iter().map(|id| id.key() as i64).collect();
    let rows = client
        .query(
            &format!("SELECT key, hash FROM {schema}.log_nodes WHERE key = ANY($1)"),
            &[&keys],
        )
        .await
        .map_err(pg_err)?;
    let mut nodes = std::collections::HashMap::with_capacity(rows.len());
    for row in rows {
        let key: i64 = row.get(0);
        let hash: &[u8] = row.get(1);
        if let (Some(id), Ok(hash)) = (NodeId::try_from_key(key as u64), <Hash>::try_from(hash)) {
            nodes.insert(id, hash);
        }
    }
    Ok(nodes)
}
