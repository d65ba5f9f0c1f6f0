//! The names of the metrics the stores record through the `metrics` facade (kept only where a
//! process installed a recorder: `registryd --metrics-listen`).

/// Appends waiting for the embedded store's writer when it began its last commit.
pub const QUEUE_DEPTH: &str = "registry_store_queue_depth";
/// The time of a commit: on the embedded store from its first append to its durable COMMIT
/// (fsync included), on PostgreSQL the COMMIT itself.
pub const COMMIT_SECONDS: &str = "registry_store_commit_seconds";
/// Events per commit.
pub const COMMIT_EVENTS: &str = "registry_store_commit_events";
