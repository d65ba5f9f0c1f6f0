//! Signed exports: the holdings on a day, each block of rows followed by the events they come
//! from (leaves of the verifiable log: the own events of each row's holding, holder and
//! office, and the first events of the units and terms they name) and one batch proof of
//! those leaves in the signed
//! checkpoint named at the top; and their check, which needs nothing but the file and the
//! log's pinned public key.
//!
//! The check folds the proved events of each block into a read model of its own (the same
//! projection the query service answers from) and requires every row to be exactly what that
//! model answers as known at the export's instant: the holding's facts and basis, the holder's
//! name, the office's title and unit, and whether it surely or only possibly covers the day.
//!
//! What it cannot show is an absence: that the server disclosed every event of a resource (a
//! correction in the log could have been left out of a block), or that no holding was left
//! out of the export. Proofs of chosen leaves cannot show what is not among them; the whole
//! log can (`regctl verify --store`, or a monitor that follows the log).
//!
//! The file is JSON Lines: a `{"signed_export": {…}}` header, then rows (the plain export's
//! lines: a holding as the API's JSON, with `"possibly": true` where it only possibly covers
//! the day), each block of rows closed by a `{"proof": {"leaves": […], "hashes": […]}}` line
//! (leaves and hashes in base64; the batch proof of `proto/README.md`).

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use clap::Args;
use futures::StreamExt;
use registry_client::v1;
use registry_domain::{Date, Event, HoldingId, OfficeId};
use registry_ledger::{Checkpoint, Hash, Leaf, Note, VerifierKey};
use registry_projections::{Instant, Projection};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::args::{self, CliError};
use crate::context::Context;
use crate::output::{self, Format};

/// The layout's version, in the header.
const VERSION: u32 = 1;

/// Rows per block: a block's resources (each row's holding, person and office) are proved in
/// one call, so a block stays well under the most names a call may carry (1000).
const ROWS_PER_BLOCK: usize = 100;

/// Blocks being proved at once.
const IN_FLIGHT: usize = 4;

/// How many times the export takes a newer checkpoint when the rows it read are not yet all
/// under the one it has (on PostgreSQL the log follows the feed by up to a second or so).
const ATTEMPTS: usize = 4;

/// The first line.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    version: u32,
    #[serde(rename = "type")]
    kind: String,
    date: String,
    known_at: String,
    checkpoint: String,
}

/// A block's closing line.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ProofLine {
    leaves: Vec<LeafLine>,
    hashes: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct LeafLine {
    index: u64,
    leaf: String,
}

/// Rows and the proof of the events they come from.
struct Block {
    rows: Vec<Value>,
    leaves: Vec<(u64, Vec<u8>)>,
    hashes: Vec<Hash>,
}

/// What a block's check found wrong: the row (its place in the block) or the block itself.
struct Finding {
    row: Option<usize>,
    problem: String,
}

impl Finding {
    fn block(problem: impl Into<String>) -> Self {
        Self {
            row: None,
            problem: problem.into(),
        }
    }

    fn row(row: usize, problem: impl Into<String>) -> Self {
        Self {
            row: Some(row),
            problem: problem.into(),
        }
    }
}

/// Checks a block against the checkpoint: the proof makes its root, and the rows are what the
/// proved events say on `day` as known at `known_at`.
fn check_block(
    checkpoint: &Checkpoint,
    day: Date,
    known_at: Instant,
    block: &Block,
) -> Result<(), Finding> {
    let hashed: Vec<(u64, Hash)> = block
        .leaves
        .iter()
        .map(|(index, leaf)| (*index, registry_ledger::leaf_hash(leaf)))
        .collect();
    registry_ledger::verify_batch(&hashed, checkpoint.size, &block.hashes, &checkpoint.root)
        .map_err(|e| {
            Finding::block(format!(
                "the events are not in the signed log of {} leaves: {e}",
                checkpoint.size
            ))
        })?;
    let mut model = Projection::new();
    for (index, bytes) in &block.leaves {
        let leaf = Leaf::decode(bytes)
            .map_err(|e| Finding::block(format!("leaf {index} cannot be read: {e}")))?;
        let event =
            Event::decode(leaf.event_type, leaf.schema_version, leaf.payload).map_err(|e| {
                Finding::block(format!("the event of leaf {index} cannot be read: {e}"))
            })?;
        model.apply(leaf.recorded_at, &event);
    }
    for (at, row) in block.rows.iter().enumerate() {
        let text = |field: &str| row.get(field).and_then(Value::as_str).unwrap_or_default();
        let holding = HoldingId::from_str(text("name"))
            .map_err(|_| Finding::row(at, "the row names no holding"))?;
        let office = OfficeId::from_str(text("office"))
            .map_err(|_| Finding::row(at, "the row names no office"))?;
        let possibly = row.get("possibly").and_then(Value::as_bool) == Some(true);
        let (found, how) = if possibly {
            (
                model.possible_holders(office, day, Some(known_at)),
                "possibly",
            )
        } else {
            (model.holders(office, day, Some(known_at)), "surely")
        };
        let Some(view) = found.iter().find(|h| h.holding == holding) else {
            return Err(Finding::row(
                at,
                format!(
                    "by the proved events, {holding} does not {how} hold {office} on {day} as \
                     known then"
                ),
            ));
        };
        let expected = crate::transfer::holding_line(
            &registry_query::holding_pb(&model, view, Some(known_at)),
            possibly,
        );
        if let Some(field) = first_difference(row, &expected) {
            return Err(Finding::row(
                at,
                format!(
                    "{field} is {} in the export but {} by the proved events",
                    short(row.get(&field)),
                    short(expected.get(&field))
                ),
            ));
        }
    }
    Ok(())
}

/// The first field whose value differs between two JSON objects.
fn first_difference(given: &Value, expected: &Value) -> Option<String> {
    let (Some(given), Some(expected)) = (given.as_object(), expected.as_object()) else {
        return Some("the row".into());
    };
    expected
        .keys()
        .chain(given.keys())
        .find(|key| given.get(*key) != expected.get(*key))
        .cloned()
}

/// A JSON value, cut to about 100 characters to echo it.
fn short(value: Option<&Value>) -> String {
    let text = value.map_or_else(|| "absent".to_owned(), Value::to_string);
    match text.char_indices().nth(100) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The instant of a timestamp, in µs.
fn micros(t: &prost_types::Timestamp) -> Instant {
    t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000
}

/// The newest checkpoint the server has, waiting a few seconds for a first one.
async fn newest(cx: &Context) -> Result<v1::Checkpoint, CliError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let answer = cx
            .client
            .audit()
            .get_checkpoint(v1::GetCheckpointRequest { size: 0 })
            .await;
        match answer {
            Ok(answer) => {
                return answer
                    .into_inner()
                    .checkpoint
                    .ok_or_else(|| CliError::Unavailable("the server sent no checkpoint".into()))
            }
            Err(status)
                if status.code() == tonic::Code::NotFound
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(status) => return Err(status.into()),
        }
    }
}

/// The checkpoint a served note states (its signature is the reader's to check).
fn stated(checkpoint: &v1::Checkpoint) -> Result<Checkpoint, CliError> {
    Note::parse(&checkpoint.note)
        .and_then(|note| Checkpoint::parse(note.text()))
        .map_err(|e| CliError::Unavailable(format!("the server's checkpoint is malformed: {e}")))
}

/// The holdings surely and possibly covering `day` as known at `known_at`, as the plain export
/// writes them.
async fn rows(
    cx: &Context,
    day: &str,
    known_at: prost_types::Timestamp,
) -> Result<Vec<Value>, CliError> {
    let holdings = crate::transfer::holdings_on(cx, day, Some(known_at)).await?;
    Ok(holdings
        .iter()
        .map(|(h, possibly)| crate::transfer::holding_line(h, *possibly))
        .collect())
}

/// Proves the resources of `rows` in the checkpoint of `size`: one block, or several when the
/// answer would be too large for one message.
async fn prove(cx: &Context, rows: Vec<Value>, size: u64) -> Result<Vec<Block>, CliError> {
    let mut pending = vec![rows];
    let mut blocks = Vec::new();
    while let Some(rows) = pending.pop() {
        let mut names = Vec::with_capacity(rows.len() * 3);
        let mut seen = HashSet::new();
        for row in &rows {
            for field in ["name", "person", "office"] {
                let name = row.get(field).and_then(Value::as_str).unwrap_or_default();
                if !name.is_empty() && seen.insert(name.to_owned()) {
                    names.push(name.to_owned());
                }
            }
        }
        let answer = cx
            .client
            .audit()
            .prove_resources(v1::ProveResourcesRequest {
                names,
                tree_size: size,
                min_position: String::new(),
                with_origins: true,
                own_events_only: true,
            })
            .await;
        match answer {
            Ok(answer) => {
                let answer = answer.into_inner();
                blocks.push(Block {
                    rows,
                    leaves: answer
                        .leaves
                        .into_iter()
                        .map(|l| (l.index, l.leaf))
                        .collect(),
                    hashes: crate::ledger::hashes(&answer.hashes)?,
                });
            }
            Err(status) if status.code() == tonic::Code::ResourceExhausted && rows.len() > 1 => {
                let mut first = rows;
                let second = first.split_off(first.len() / 2);
                pending.push(second);
                pending.push(first);
            }
            Err(status) => return Err(status.into()),
        }
    }
    Ok(blocks)
}

/// Writes the holdings on `day` as a signed export to standard output.
pub async fn export(
    cx: &Context,
    day: String,
    known_at: Option<prost_types::Timestamp>,
) -> Result<(), CliError> {
    let date = Date::from_str(&day).map_err(|e| CliError::Usage(format!("--at: {e}")))?;
    // Unless asked for another instant, the export is as known at the end of the second the
    // newest checkpoint was signed in (its `time` is in whole seconds): every event recorded
    // by then is under it or under one made a moment later, which the check below waits for.
    let mut checkpoint = newest(cx).await?;
    let known_at = match known_at {
        Some(known_at) => known_at,
        None => prost_types::Timestamp {
            seconds: i64::try_from(stated(&checkpoint)?.time)
                .unwrap_or(i64::MAX - 1)
                .saturating_add(1),
            nanos: 0,
        },
    };
    let instant = micros(&known_at);
    let mut attempt = 1;
    let blocks = loop {
        // Read again at each attempt: until the server's clock has passed the instant, what
        // it answers as known then can still grow.
        let rows = rows(cx, &day, known_at).await?;
        let signed = stated(&checkpoint)?;
        // Several blocks in flight; each checked as it arrives, while the server proves the
        // next ones.
        let mut proving = futures::stream::iter(
            rows.chunks(ROWS_PER_BLOCK)
                .map(|chunk| prove(cx, chunk.to_vec(), signed.size)),
        )
        .buffered(IN_FLIGHT);
        let mut blocks = Vec::new();
        let mut failed = Ok(());
        'proving: while let Some(proved) = proving.next().await {
            for block in proved? {
                failed = check_block(&signed, date, instant, &block).map_err(|f| (blocks.len(), f));
                blocks.push(block);
                if failed.is_err() {
                    break 'proving;
                }
            }
        }
        match failed {
            Ok(()) => break blocks,
            Err((block, finding)) if attempt < ATTEMPTS => {
                output::note(format!(
                    "the rows are not all under checkpoint {} yet ({}); reading them again under \
                     a newer one",
                    signed.size,
                    describe(&blocks[block], &finding)
                ));
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
                checkpoint = newest(cx).await?;
            }
            Err((block, finding)) => {
                return Err(CliError::Unverified(format!(
                    "the server's answer does not follow from its signed log: {}",
                    describe(&blocks[block], &finding)
                )))
            }
        }
    };
    write(&checkpoint, &day, &known_at, &blocks)
}

/// Checks every block; answers the failing block and what is wrong.
fn check_all(
    checkpoint: &Checkpoint,
    day: Date,
    known_at: Instant,
    blocks: &[Block],
) -> Result<(), (usize, Finding)> {
    for (at, block) in blocks.iter().enumerate() {
        check_block(checkpoint, day, known_at, block).map_err(|f| (at, f))?;
    }
    Ok(())
}

/// A finding, with the row's holding when it is about one.
fn describe(block: &Block, finding: &Finding) -> String {
    match finding.row {
        Some(row) => format!(
            "{}: {}",
            block.rows[row]
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("a row"),
            finding.problem
        ),
        None => finding.problem.clone(),
    }
}

fn write(
    checkpoint: &v1::Checkpoint,
    day: &str,
    known_at: &prost_types::Timestamp,
    blocks: &[Block],
) -> Result<(), CliError> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let header = Header {
        version: VERSION,
        kind: "holdings".into(),
        date: day.to_owned(),
        known_at: args::show_instant(Some(known_at)),
        checkpoint: checkpoint.note.clone(),
    };
    writeln!(out, "{}", serde_json::json!({ "signed_export": header }))?;
    for block in blocks {
        for row in &block.rows {
            writeln!(out, "{row}")?;
        }
        let proof = ProofLine {
            leaves: block
                .leaves
                .iter()
                .map(|(index, leaf)| LeafLine {
                    index: *index,
                    leaf: BASE64.encode(leaf),
                })
                .collect(),
            hashes: block.hashes.iter().map(|h| BASE64.encode(h)).collect(),
        };
        writeln!(out, "{}", serde_json::json!({ "proof": proof }))?;
    }
    out.flush()?;
    Ok(())
}

/// Check a signed export (`regctl export --signed`) with the log's public key, offline: every
/// row follows from events proved in the signed checkpoint it names.
#[derive(Args, Debug)]
pub struct VerifyExport {
    /// The signed export (standard input when absent).
    file: Option<PathBuf>,
    /// The log's public key (`log.pub`), obtained out of band; repeat for a key rotation.
    #[arg(long = "log-public-key", required = true)]
    log_public_key: Vec<PathBuf>,
}

impl VerifyExport {
    /// Runs the check; a finding exits 9.
    pub fn run(&self, format: Format) -> Result<(), CliError> {
        let keys: Vec<VerifierKey> = crate::ledger::keys(&self.log_public_key)?;
        let text = match &self.file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| CliError::Io(format!("{}: {e}", path.display())))?,
            None => std::io::read_to_string(std::io::stdin())?,
        };
        let unverified =
            |line: usize, problem: String| CliError::Unverified(format!("line {line}: {problem}"));
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        let header: Header = lines
            .next()
            .and_then(|(_, line)| serde_json::from_str::<Value>(line).ok())
            .and_then(|mut v| v.get_mut("signed_export").map(Value::take))
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or_else(|| unverified(1, "not a signed export (no signed_export header)".into()))?;
        if header.version != VERSION || header.kind != "holdings" {
            return Err(unverified(
                1,
                format!(
                    "a signed export of {} version {}; this regctl reads holdings version {VERSION}",
                    header.kind, header.version
                ),
            ));
        }
        let checkpoint = crate::ledger::open(&header.checkpoint, &keys)
            .map_err(|e| unverified(1, format!("the checkpoint's signature: {e}")))?;
        let day = Date::from_str(&header.date).map_err(|e| unverified(1, format!("date: {e}")))?;
        let known_at = micros(&args::instant("known_at", &header.known_at).map_err(|_| {
            unverified(
                1,
                format!("known_at: {:?} is not an instant", header.known_at),
            )
        })?);
        let mut blocks = Vec::new();
        // Where each block's rows are in the file, and its proof line.
        let mut places: Vec<(Vec<usize>, usize)> = Vec::new();
        let mut rows = Vec::new();
        let mut row_lines = Vec::new();
        for (number, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let mut value: Value = serde_json::from_str(line)
                .map_err(|e| unverified(number, format!("not JSON: {e}")))?;
            let Some(proof) = value.get_mut("proof").map(Value::take) else {
                rows.push(value);
                row_lines.push(number);
                continue;
            };
            let proof: ProofLine = serde_json::from_value(proof)
                .map_err(|e| unverified(number, format!("a malformed proof: {e}")))?;
            let decode = |text: &str| {
                BASE64
                    .decode(text)
                    .map_err(|e| unverified(number, format!("not base64: {e}")))
            };
            let leaves = proof
                .leaves
                .iter()
                .map(|l| Ok((l.index, decode(&l.leaf)?)))
                .collect::<Result<Vec<_>, CliError>>()?;
            let hashes = proof
                .hashes
                .iter()
                .map(|h| {
                    Hash::try_from(decode(h)?.as_slice())
                        .map_err(|_| unverified(number, "a hash is not 32 bytes".into()))
                })
                .collect::<Result<Vec<_>, CliError>>()?;
            blocks.push(Block {
                rows: std::mem::take(&mut rows),
                leaves,
                hashes,
            });
            places.push((std::mem::take(&mut row_lines), number));
        }
        if let Some(line) = row_lines.first() {
            return Err(unverified(
                *line,
                "rows after the last proof are not proved".into(),
            ));
        }
        check_all(&checkpoint, day, known_at, &blocks).map_err(|(block, finding)| {
            let (rows, proof) = &places[block];
            let line = finding.row.map_or(*proof, |row| rows[row]);
            unverified(line, describe(&blocks[block], &finding))
        })?;
        let holdings: usize = blocks.iter().map(|b| b.rows.len()).sum();
        let events: usize = blocks.iter().map(|b| b.leaves.len()).sum();
        let summary = serde_json::json!({
            "verified": true,
            "holdings": holdings,
            "events": events,
            "date": header.date,
            "known_at": header.known_at,
            "log": checkpoint.origin,
            "checkpoint_size": checkpoint.size,
            "checkpoint_time": checkpoint.time,
        });
        match format {
            Format::Json | Format::Jsonl => println!("{summary}"),
            Format::Table => println!(
                "verified: {holdings} holdings on {} as known at {}, from {events} events proved \
                 in the log {} of {} leaves (signed at {})",
                header.date,
                header.known_at,
                checkpoint.origin,
                checkpoint.size,
                args::show_instant(Some(&prost_types::Timestamp {
                    seconds: i64::try_from(checkpoint.time).unwrap_or(i64::MAX),
                    nanos: 0
                }))
            ),
        }
        Ok(())
    }
}
