//! The access log (`--access-log FILE`): one JSON line per call, read or write, saying who
//! called which RPC about which resources, with what status, how fast, from where. Auditors
//! answer "who looked at this person's record" from it.
//!
//! The access layer ([`crate::access`]) times each call and writes its line; the handlers note
//! the resources a call asks about ([`asked_about`], [`AskedAbout`]) in a task-local list the
//! layer opens around the call. Lines go through a bounded channel to a thread of their own
//! that writes them buffered and flushes whenever it has caught up, so a call never waits on
//! the disk (it waits only if the writer falls a whole channel behind: lines are not dropped).
//!
//! A call's status is the one its handler answered (a streaming call's, at its first
//! response); a write notes the resource it recorded, a read the names in its request.

use std::cell::RefCell;
use std::io::Write;
use std::path::Path;

use registry_proto::v1 as pb;
use serde::Serialize;

/// The most resources one line names, and the most characters of each.
const MAX_NAMES: usize = 16;
const MAX_NAME_CHARS: usize = 100;

/// Lines queued for the writer thread before a call waits for it.
const QUEUE: usize = 16_384;

tokio::task_local! {
    /// The resources the current call asked about (set by the access layer).
    static ASKED: RefCell<Vec<String>>;
}

/// Runs `call` with an empty list of resources, and returns its output with the list.
pub async fn collecting<F: std::future::Future>(call: F) -> (F::Output, Vec<String>) {
    ASKED
        .scope(RefCell::new(Vec::new()), async move {
            let output = call.await;
            let asked = ASKED.with(|asked| asked.take());
            (output, asked)
        })
        .await
}

/// Notes that the current call asks about `name` (nothing outside a logged call; an empty
/// name is skipped).
pub fn asked_about(name: &str) {
    let name = name.trim();
    if name.is_empty() {
        return;
    }
    let _ = ASKED.try_with(|asked| {
        let mut asked = asked.borrow_mut();
        if asked.len() < MAX_NAMES && !asked.iter().any(|n| n == name) {
            asked.push(name.chars().take(MAX_NAME_CHARS).collect());
        }
    });
}

/// A request that names the resources it asks about.
pub trait AskedAbout {
    /// Notes them ([`asked_about`]).
    fn note(&self);
}

macro_rules! asked {
    ($($request:ident: $($field:ident),*;)*) => {
        $(
            impl AskedAbout for pb::$request {
                fn note(&self) {
                    $( asked_about(&self.$field); )*
                }
            }
        )*
    };
}

asked! {
    GetOfficeHoldersRequest: office;
    GetHoldingRequest: name;
    ListHoldingsRequest: ;
    ListOfficeHistoryRequest: office;
    ListPersonOfficesRequest: person;
    ListPersonCareerRequest: person;
    GetPersonRequest: name;
    SearchPersonsRequest: query;
    GetOfficeRequest: name;
    ListOfficesRequest: ;
    ListUnitsRequest: ;
    ListPersonsRequest: ;
    GetUnitRequest: name;
    ListUnitTreeRequest: root;
    GetUnitLineageRequest: name;
    GetModelCoverageRequest: model, jurisdiction;
    ListResourceHistoryRequest: name;
    ListIrregularitiesRequest: unit;
}

/// One call, as logged.
#[derive(Debug, Serialize)]
pub struct Line<'a> {
    /// When the call came in (RFC 3339, UTC).
    pub time: String,
    /// The authenticated caller (none without a policy and a certificate).
    pub identity: Option<&'a str>,
    /// How it was proved: certificate, token or none.
    pub proof: &'static str,
    /// Whom the caller declared it acts for (`x-registry-actor`), if anyone.
    pub on_behalf_of: Option<String>,
    /// The RPC's path.
    pub rpc: &'a str,
    /// The resources it asked about.
    pub resources: Vec<String>,
    /// The gRPC status code's name.
    pub status: &'static str,
    /// Microseconds until the response (its first part, for a stream).
    pub micros: u64,
    /// The caller's address.
    pub peer: Option<String>,
}

/// Where access-log lines go.
#[derive(Clone, Debug)]
pub struct AccessLog {
    lines: tokio::sync::mpsc::Sender<Vec<u8>>,
}

impl AccessLog {
    /// Opens `path` for appending (creating it) and starts the thread that writes to it.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (lines, mut queue) = tokio::sync::mpsc::channel::<Vec<u8>>(QUEUE);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
                while let Some(line) = queue.blocking_recv() {
                    let mut written = out.write_all(&line);
                    // Write what else is queued, then flush once caught up.
                    while let (Ok(()), Ok(line)) = (&written, queue.try_recv()) {
                        written = out.write_all(&line);
                    }
                    if let Err(e) = written.and_then(|()| out.flush()) {
                        tracing::error!(error = %e, "the access log cannot be written");
                    }
                }
                let _ = out.flush();
            })?;
        Ok(Self { lines })
    }

    /// Queues `line` (waits only while the writer is a whole queue behind).
    pub async fn write(&self, line: &Line<'_>) {
        let Ok(mut bytes) = serde_json::to_vec(line) else {
            return;
        };
        bytes.push(b'\n');
        let _ = self.lines.send(bytes).await;
    }
}

/// Now, as RFC 3339 (UTC, microseconds).
pub fn now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let timestamp = prost_types::Timestamp {
        seconds: now.as_secs() as i64,
        nanos: (now.subsec_micros() * 1000) as i32,
    };
    timestamp.to_string()
}
