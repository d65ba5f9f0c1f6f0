//! Import and export.
//!
//! Import reads CSV (one record type per file, `--type`) or JSON Lines (each line names its
//! `type`), validates every row before writing anything, and reports every bad row with its line
//! number and field. Each row's request id is derived from its content (a UUID v5), so running
//! the same file again appends nothing: the server answers each row with the first answer.
//! Rows are sent in file order, so a row may refer to ids given by earlier rows.
//!
//! Export writes the holdings that cover a date as JSON Lines (the API's JSON), CSV, or Popolo
//! JSON (persons, organizations, posts, memberships).

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use registry_client::v1;
use serde::{Deserialize, Serialize};

use crate::args::{self, name, CliError};
use crate::output::{json, note};
use crate::Context;

/// Help text with the formats.
pub const IMPORT_HELP: &str = "Record types and their fields (CSV headers, or JSON keys):
  person   id, name, birth, aliases (a;b)
  unit     id, name, kind, level, parents (a;b), from, basis, basis_date, issuer
  office   id, unit, title, kind, capacity (sole|N|unbounded), from, basis, basis_date, issuer
  term     id, unit (the body), name (\"2020-2025\"), from, until (planned)
  holding  id, person, office, from, until, end_unknown, end_reason, how, cause, term,
           basis, basis_date, issuer
  model    id, name, roles (party-committee:vice-secretary;fatherland-front:chair), or
           kind (of a shared unit) and serves (kinds of body; a;b), basis, basis_date, issuer
  adoption id, model, unit, from, basis, basis_date, issuer
In JSON Lines each line also has \"type\": \"person\", ...; a CSV file holds one type (--type).
Dates: 2024-03-18 or 18/03/2024 (a month or a year where only that is known).

Examples:
  regctl import examples/seed/seed.jsonl
  regctl import holdings.csv --type holding --skip-invalid";

/// A file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FileFormat {
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// Several values: a JSON array, or one text with `;` between values.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Many {
    /// `a;b`.
    Text(String),
    /// `["a", "b"]`.
    List(Vec<String>),
}

impl Default for Many {
    fn default() -> Self {
        Self::List(Vec::new())
    }
}

impl Many {
    fn values(&self) -> Vec<String> {
        match self {
            Self::Text(t) => t
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            Self::List(l) => l.clone(),
        }
    }
}

/// One row of an import file: every field of every record type (unused ones stay empty).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Row {
    #[serde(rename = "type")]
    record: String,
    id: String,
    name: String,
    birth: String,
    aliases: Many,
    kind: String,
    level: String,
    parents: Many,
    unit: String,
    title: String,
    capacity: String,
    person: String,
    office: String,
    from: String,
    until: String,
    end_unknown: String,
    end_reason: String,
    how: String,
    cause: String,
    term: String,
    model: String,
    roles: Many,
    serves: Many,
    basis: String,
    basis_date: String,
    issuer: String,
    basis_effective: String,
}

/// A validated row: the record it becomes (one of the command service's write requests).
use v1::import_record::Record as Planned;

/// Collects the problems of one row.
struct Check {
    line: usize,
    problems: Vec<String>,
}

impl Check {
    fn field<T: Default>(&mut self, field: &str, outcome: Result<T, CliError>) -> T {
        outcome.unwrap_or_else(|e| {
            let message = e.to_string();
            // Argument errors start with the flag they name; rows name fields instead.
            let message = message
                .split_once(": ")
                .map_or(message.clone(), |(_, rest)| rest.to_owned());
            self.problems
                .push(format!("line {}: {field}: {message}", self.line));
            T::default()
        })
    }

    fn required(&mut self, field: &str, value: &str) -> String {
        if value.trim().is_empty() {
            self.problems
                .push(format!("line {}: {field}: is required", self.line));
        }
        value.trim().to_owned()
    }

    fn id(&mut self, field: &str, value: &str) -> String {
        let bare = value.trim().rsplit('/').next().unwrap_or_default();
        if !value.trim().is_empty() && uuid::Uuid::parse_str(bare).is_err() {
            self.problems.push(format!(
                "line {}: {field}: {value:?} is not a UUID or a resource name",
                self.line
            ));
        }
        bare.to_owned()
    }

    fn reference(&mut self, field: &str, collection: &str, value: &str) -> String {
        let text = self.required(field, value);
        let id = self.id(field, &text);
        if id.is_empty() {
            String::new()
        } else {
            name(collection, &id)
        }
    }

    fn basis(&mut self, row: &Row, required: bool) -> Option<v1::LegalBasis> {
        let given = args::BasisArgs {
            number: Some(row.basis.clone()).filter(|s| !s.is_empty()),
            issued_on: Some(row.basis_date.clone()).filter(|s| !s.is_empty()),
            issuer: Some(row.issuer.clone()).filter(|s| !s.is_empty()),
            effective_on: Some(row.basis_effective.clone()).filter(|s| !s.is_empty()),
        };
        let basis = self.field("basis", given.optional());
        if required && basis.is_none() && self.problems.is_empty() {
            self.problems.push(format!(
                "line {}: basis: is required (basis, basis_date, issuer)",
                self.line
            ));
        }
        basis
    }
}

/// The request id of a row: a UUID v5 of its content, so a re-run repeats it exactly.
fn row_request_id(row: &Row, part: &str) -> String {
    let content = serde_json::to_string(row).unwrap_or_default();
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("regctl import {part}\n{content}").as_bytes(),
    )
    .to_string()
}

fn plan(line: usize, row: &Row) -> Result<Planned, Vec<String>> {
    let mut c = Check {
        line,
        problems: Vec::new(),
    };
    let id = c.id("id", &row.id);
    let planned = match row.record.trim() {
        "person" => Planned::Person(v1::RegisterPersonRequest {
            request_id: row_request_id(row, "person"),
            person_id: id,
            display_name: c.required("name", &row.name),
            aliases: row.aliases.values(),
            birth: if row.birth.is_empty() {
                String::new()
            } else {
                c.field("birth", args::partial_date("birth", &row.birth))
            },
        }),
        "unit" => Planned::Unit(v1::EstablishUnitRequest {
            request_id: row_request_id(row, "unit"),
            unit_id: id,
            kind: c.field("kind", args::unit_kind("kind", &row.kind)),
            level: c.field("level", args::level("level", &row.level)),
            display_name: c.required("name", &row.name),
            parents: row
                .parents
                .values()
                .iter()
                .map(|p| c.reference("parents", "units", p))
                .collect(),
            valid_from: c.field("from", args::date("from", &row.from)),
            basis: c.basis(row, true),
        }),
        "office" => Planned::Office(v1::CreateOfficeRequest {
            request_id: row_request_id(row, "office"),
            office_id: id,
            unit: c.reference("unit", "units", &row.unit),
            title: c.required("title", &row.title),
            kind: c.field("kind", args::office_kind("kind", &row.kind)),
            capacity: Some(c.field(
                "capacity",
                args::capacity(if row.capacity.is_empty() {
                    "sole"
                } else {
                    &row.capacity
                }),
            )),
            valid_from: c.field("from", args::date("from", &row.from)),
            basis: c.basis(row, false),
        }),
        "holding" => {
            let holding_id = if id.is_empty() {
                row_request_id(row, "holding id")
            } else {
                id
            };
            let end_unknown = match row.end_unknown.trim() {
                "" | "false" | "no" | "0" => false,
                "true" | "yes" | "1" => true,
                other => {
                    c.problems.push(format!(
                        "line {line}: end_unknown: {other:?} is not true or false"
                    ));
                    false
                }
            };
            let ended = !row.until.is_empty() || end_unknown;
            Planned::Holding(v1::StartHoldingRequest {
                request_id: row_request_id(row, "holding"),
                holding_id,
                person: c.reference("person", "persons", &row.person),
                office: c.reference("office", "offices", &row.office),
                valid_from: c.field("from", args::partial_date("from", &row.from)),
                beginning: c.field(
                    "how",
                    args::beginning(
                        "how",
                        if row.how.is_empty() {
                            "appointed"
                        } else {
                            &row.how
                        },
                    ),
                ),
                cause: if row.cause.is_empty() {
                    String::new()
                } else {
                    c.reference("cause", "holdings", &row.cause)
                },
                term: if row.term.is_empty() {
                    String::new()
                } else {
                    c.reference("term", "terms", &row.term)
                },
                basis: c.basis(row, false),
                valid_until: if row.until.is_empty() {
                    String::new()
                } else {
                    c.field("until", args::partial_date("until", &row.until))
                },
                end_unknown,
                end_reason: if ended {
                    c.field(
                        "end_reason",
                        args::end_reason(
                            "end_reason",
                            if row.end_reason.is_empty() {
                                "term-end"
                            } else {
                                &row.end_reason
                            },
                        ),
                    )
                } else {
                    0
                },
                end_basis: None,
            })
        }
        "model" if !row.kind.is_empty() => Planned::Model(v1::DefineModelRequest {
            request_id: row_request_id(row, "model"),
            model_id: id,
            display_name: c.required("name", &row.name),
            arrangement: Some(v1::Arrangement {
                kind: Some(v1::arrangement::Kind::SharedUnit(v1::SharedUnit {
                    unit_kind: c.field("kind", args::unit_kind("kind", &row.kind)),
                    serves: row
                        .serves
                        .values()
                        .iter()
                        .map(|k| c.field("serves", args::unit_kind("serves", k)))
                        .collect(),
                })),
            }),
            authorised_by: c.basis(row, true),
        }),
        "model" => Planned::Model(v1::DefineModelRequest {
            request_id: row_request_id(row, "model"),
            model_id: id,
            display_name: c.required("name", &row.name),
            arrangement: Some(v1::Arrangement {
                kind: Some(v1::arrangement::Kind::ConcurrentOffices(
                    v1::ConcurrentOffices {
                        roles: row
                            .roles
                            .values()
                            .iter()
                            .map(|r| {
                                let (unit, office) = r.split_once(':').unwrap_or((r, ""));
                                v1::Role {
                                    unit_kind: c.field("roles", args::unit_kind("roles", unit)),
                                    office_kind: c
                                        .field("roles", args::office_kind("roles", office)),
                                }
                            })
                            .collect(),
                    },
                )),
            }),
            authorised_by: c.basis(row, true),
        }),
        "adoption" => Planned::Adoption(v1::AdoptModelRequest {
            request_id: row_request_id(row, "adoption"),
            adoption_id: id,
            model: c.reference("model", "models", &row.model),
            unit: c.reference("unit", "units", &row.unit),
            valid_from: c.field("from", args::date("from", &row.from)),
            basis: c.basis(row, true),
        }),
        "term" => Planned::Term(v1::OpenTermRequest {
            request_id: row_request_id(row, "term"),
            term_id: id,
            body: c.reference("unit", "units", &row.unit),
            label: c.required("name", &row.name),
            valid_from: c.field("from", args::date("from", &row.from)),
            planned_until: if row.until.is_empty() {
                String::new()
            } else {
                c.field("until", args::date("until", &row.until))
            },
        }),
        "" => {
            c.problems.push(format!(
                "line {line}: type: is required (person, unit, office, term, holding, model, adoption)"
            ));
            return Err(c.problems);
        }
        other => {
            c.problems.push(format!("line {line}: type: {other:?} is not person, unit, office, term, holding, model or adoption"));
            return Err(c.problems);
        }
    };
    if c.problems.is_empty() {
        Ok(planned)
    } else {
        Err(c.problems)
    }
}

/// The rows of a file planned: the records with their line numbers, and every problem found.
#[derive(Default)]
struct Plan {
    records: Vec<(usize, Planned)>,
    problems: Vec<String>,
}

impl Plan {
    /// Plans one row read (or not) from line `line`, forcing its type where the file has none.
    fn add(&mut self, line: usize, row: Result<Row, String>, record: Option<&str>) {
        let planned = row.map_err(|e| vec![e]).and_then(|mut row| {
            if let (true, Some(t)) = (row.record.is_empty(), record) {
                t.clone_into(&mut row.record);
            }
            plan(line, &row)
        });
        match planned {
            Ok(p) => self.records.push((line, p)),
            Err(mut e) => self.problems.append(&mut e),
        }
    }

    fn append(&mut self, mut other: Plan) {
        self.records.append(&mut other.records);
        self.problems.append(&mut other.problems);
    }
}

/// Lines of JSON handed to a parsing thread at once.
const LINES_PER_CHUNK: usize = 8192;

/// Reads and plans the rows of a file. Rows are planned as they are read (the rows themselves
/// are not kept); JSON Lines are parsed on two threads, in chunks put back in file order.
fn read_plan(path: &PathBuf, format: FileFormat, record: Option<&str>) -> Result<Plan, CliError> {
    let file =
        std::fs::File::open(path).map_err(|e| CliError::Io(format!("{}: {e}", path.display())))?;
    plan_rows(file, format, record, &path.display().to_string())
}

/// Plans the rows of an import read from `input` as `regctl import` plans a file (`source`
/// names it in errors), sending nothing: the records planned, and every problem found.
pub fn plan_import(
    input: impl std::io::Read + Send,
    format: FileFormat,
    record: Option<&str>,
) -> Result<(usize, Vec<String>), CliError> {
    let plan = plan_rows(input, format, record, "the input")?;
    Ok((plan.records.len(), plan.problems))
}

fn plan_rows(
    file: impl std::io::Read + Send,
    format: FileFormat,
    record: Option<&str>,
    source: &str,
) -> Result<Plan, CliError> {
    let io = |e: std::io::Error| CliError::Io(format!("{source}: {e}"));
    let mut plan = Plan::default();
    match format {
        FileFormat::Jsonl => {
            let parse = |first: usize, lines: Vec<String>| {
                let mut plan = Plan::default();
                for (i, text) in lines.iter().enumerate() {
                    let line = first + i;
                    if text.trim().is_empty() || text.trim_start().starts_with('#') {
                        continue;
                    }
                    let row =
                        serde_json::from_str::<Row>(text).map_err(|e| format!("line {line}: {e}"));
                    plan.add(line, row, record);
                }
                plan
            };
            let (chunks, receiver) = std::sync::mpsc::sync_channel::<(usize, Vec<String>)>(4);
            let receiver = std::sync::Mutex::new(receiver);
            let mut planned: Vec<(usize, Plan)> = std::thread::scope(|scope| {
                let workers: Vec<_> = (0..2)
                    .map(|_| {
                        scope.spawn(|| {
                            let mut done = Vec::new();
                            loop {
                                let next = receiver.lock().ok().and_then(|r| r.recv().ok());
                                let Some((first, lines)) = next else { break };
                                done.push((first, parse(first, lines)));
                            }
                            done
                        })
                    })
                    .collect();
                let mut lines = std::io::BufReader::new(file).lines();
                let mut first = 1;
                let mut outcome = Ok(());
                loop {
                    let chunk: Result<Vec<String>, _> =
                        lines.by_ref().take(LINES_PER_CHUNK).collect();
                    match chunk {
                        Ok(chunk) if chunk.is_empty() => break,
                        Ok(chunk) => {
                            let count = chunk.len();
                            if chunks.send((first, chunk)).is_err() {
                                break;
                            }
                            first += count;
                        }
                        Err(e) => {
                            outcome = Err(io(e));
                            break;
                        }
                    }
                }
                drop(chunks);
                let mut planned = Vec::new();
                for worker in workers {
                    match worker.join() {
                        Ok(done) => planned.extend(done),
                        Err(_) => {
                            outcome = Err(CliError::Io(format!(
                                "{source}: a thread reading the file failed"
                            )))
                        }
                    }
                }
                outcome.map(|()| planned)
            })?;
            planned.sort_unstable_by_key(|(first, _)| *first);
            for (_, part) in planned {
                plan.append(part);
            }
        }
        FileFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .trim(csv::Trim::All)
                .from_reader(file);
            for (i, row) in reader.deserialize::<Row>().enumerate() {
                let line = i + 2;
                plan.add(line, row.map_err(|e| format!("line {line}: {e}")), record);
            }
        }
    }
    Ok(plan)
}

/// Import records from a file.
#[derive(Args, Debug)]
pub struct Import {
    /// The file (`.csv` or `.jsonl`).
    file: PathBuf,
    /// The format, when the extension does not say.
    #[arg(long, value_enum)]
    format: Option<FileFormat>,
    /// The record type of every row (needed for CSV without a `type` column).
    #[arg(long = "type")]
    record: Option<String>,
    /// Import the valid rows even if some are bad (the bad ones are reported and skipped).
    #[arg(long)]
    skip_invalid: bool,
}

impl Import {
    /// Runs the import.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        let format = self
            .format
            .unwrap_or(if self.file.extension().is_some_and(|e| e == "csv") {
                FileFormat::Csv
            } else {
                FileFormat::Jsonl
            });
        let Plan {
            records: planned,
            problems,
        } = read_plan(&self.file, format, self.record.as_deref())?;
        for problem in &problems {
            note(problem);
        }
        if !problems.is_empty() && !self.skip_invalid {
            return Err(CliError::Usage(format!(
                "{} bad row(s) in {}; nothing was imported (fix them, or --skip-invalid)",
                problems.len(),
                self.file.display()
            )));
        }
        send(cx, planned, self.skip_invalid, &self.file).await
    }
}

/// Progress on standard error: a bar with rate and ETA on a terminal, plain lines otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    started: Instant,
    last_line: usize,
}

impl Progress {
    fn new(total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} rows, {per_sec}, ETA {eta}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            total,
            started: Instant::now(),
            last_line: 0,
        }
    }

    fn tick(&mut self, done: usize) {
        match &self.bar {
            Some(bar) => bar.set_position(done as u64),
            None => {
                // The last line is the summary `send` prints, not a progress line.
                let step = (self.total / 10).max(1000);
                if done - self.last_line >= step && done < self.total {
                    let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
                    note(format!(
                        "imported {done}/{} rows ({rate:.0} rows/s)",
                        self.total
                    ));
                    self.last_line = done;
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Records per message of an import stream at most.
const PER_MESSAGE: usize = 1_000;
/// Encoded bytes per message of an import stream at most: well under the server's default
/// message size limit (4 MiB) even when records are long.
const MESSAGE_BYTES: usize = 1 << 20;
/// Records per import call: each call is one stream, and the unit of progress and of retry.
const PER_CALL: usize = 50_000;

/// Times a call cut by the connection or the server is sent again before the import stops.
/// Safe: every record carries a request id derived from its row, so what a cut call recorded
/// is answered as already recorded.
const RETRIES: u32 = 5;

/// Sends the records in file order through `ImportRecords`: the server decides them one after
/// the other and appends them in batches. A refused record ends its call; the records before
/// it stay recorded. With `keep_going` the import goes on after it, else it stops there.
async fn send(
    cx: &Context,
    planned: Vec<(usize, Planned)>,
    keep_going: bool,
    file: &std::path::Path,
) -> Result<(), CliError> {
    let mut command = cx.client.command();
    let total = planned.len();
    let mut progress = Progress::new(total);
    let (lines, records): (Vec<usize>, Vec<v1::ImportRecord>) = planned
        .into_iter()
        .map(|(line, record)| {
            (
                line,
                v1::ImportRecord {
                    record: Some(record),
                },
            )
        })
        .unzip();
    let (mut new, mut repeated, mut refused) = (0i64, 0i64, 0usize);
    let started = Instant::now();
    let mut next = 0;
    let mut retries = 0;
    while next < total {
        let end = (next + PER_CALL).min(total);
        let messages = messages(&records[next..end]);
        match command
            .import_records(futures::stream::iter(messages))
            .await
        {
            Err(status) if retriable(&status) && retries < RETRIES => {
                retries += 1;
                note(format!(
                    "the import was cut ({:?}: {}); sending rows from line {} again ({retries} of {RETRIES})",
                    status.code(),
                    status.message(),
                    lines[next]
                ));
                tokio::time::sleep(std::time::Duration::from_millis(500 << retries)).await;
                continue;
            }
            Ok(response) => {
                let response = response.into_inner();
                new += response.recorded;
                repeated += response.replayed;
                next = end;
            }
            Err(status) => {
                let Some(refusal) = Refusal::of(&status).filter(|r| next + r.index < end) else {
                    progress.finish();
                    return Err(CliError::from(status));
                };
                new += refusal.recorded;
                repeated += refusal.replayed;
                refused += 1;
                let line = lines[next + refusal.index];
                progress.finish();
                note(format!(
                    "{}: line {line}: {}",
                    file.display(),
                    refusal.error
                ));
                if !keep_going {
                    note(format!(
                        "stopped at line {line}: {new} row(s) recorded, {repeated} already recorded; what was recorded stays, and a re-run of the fixed file records only the rest"
                    ));
                    return Err(refusal.error);
                }
                next += refusal.index + 1;
            }
        }
        progress.tick(next);
    }
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    let rate = total as f64 / seconds.max(1e-9);
    println!("imported {new} new row(s), {repeated} already recorded, {refused} refused, in {seconds:.1} s ({rate:.0} rows/s)");
    if refused > 0 {
        return Err(CliError::Refused(format!(
            "{refused} row(s) were refused by the registry"
        )));
    }
    Ok(())
}

/// Whether a failed import call was cut rather than refused: sending it again is safe and may
/// succeed.
fn retriable(status: &tonic::Status) -> bool {
    use tonic::Code;
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted
    ) && Refusal::of(status).is_none()
}

/// The records cut into stream messages of at most [`PER_MESSAGE`] records and about
/// [`MESSAGE_BYTES`] bytes (a record longer than that goes alone).
fn messages(records: &[v1::ImportRecord]) -> Vec<v1::ImportRecordsRequest> {
    use prost::Message;
    let mut messages = Vec::new();
    let mut current = v1::ImportRecordsRequest::default();
    let mut bytes = 0;
    for record in records {
        let size = record.encoded_len() + 4;
        if !current.records.is_empty()
            && (current.records.len() == PER_MESSAGE || bytes + size > MESSAGE_BYTES)
        {
            messages.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.records.push(record.clone());
        bytes += size;
    }
    if !current.records.is_empty() {
        messages.push(current);
    }
    messages
}

/// A record refused by `ImportRecords`, read from the call's status.
struct Refusal {
    /// The record's index in the call.
    index: usize,
    /// Records of the call recorded before it, and replayed before it.
    recorded: i64,
    replayed: i64,
    /// Why, without the record's place (the caller names its line instead).
    error: CliError,
}

impl Refusal {
    /// The refusal the status reports, if it is one (else the call failed as a whole).
    fn of(status: &tonic::Status) -> Option<Self> {
        use tonic_types::StatusExt;
        let info = status.get_details_error_info()?;
        let count = |key: &str| info.metadata.get(key)?.parse::<i64>().ok();
        let index = usize::try_from(count("record_index")?).ok()?;
        // `records[3].holding: valid_from: ...` → `valid_from: ...`.
        let message = status.message();
        let message = message
            .strip_prefix(&format!("records[{index}]"))
            .and_then(|rest| rest.split_once(": "))
            .map_or(message, |(_, reason)| reason);
        let message = match info.reason.as_str() {
            "INVALID_FIELD" => message.to_owned(),
            rule => format!("{message} [rule {rule}]"),
        };
        Some(Self {
            index,
            recorded: count("recorded").unwrap_or(0),
            replayed: count("replayed").unwrap_or(0),
            error: CliError::from(tonic::Status::new(status.code(), message)),
        })
    }
}

/// Every page of one of the whole-registry lists on a date.
macro_rules! all_pages {
    ($cx:expr, $method:ident, $request:ident, $field:ident, $date:expr, $known_at:expr) => {
        crate::read::all_pages(|page_token| {
            let request = v1::$request {
                date: $date.clone(),
                known_at: $known_at,
                page_size: 10_000,
                page_token,
                ..Default::default()
            };
            let mut client = $cx.client.query();
            async move {
                let response = client.$method(request).await?.into_inner();
                Ok((response.$field, response.next_page_token))
            }
        })
        .await?
    };
}

/// An export format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// The API's JSON, one holding per line.
    Jsonl,
    /// Comma-separated values.
    Csv,
    /// Popolo JSON: persons, organizations, posts and memberships.
    Popolo,
}

/// What to export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportKind {
    /// The holdings that cover the day.
    Holdings,
    /// Every registered person, with the name on the day.
    Persons,
    /// The units that exist on the day.
    Units,
    /// The offices that exist on the day.
    Offices,
}

/// Export the registry as it stood on a date.
#[derive(Args, Debug)]
pub struct Export {
    /// What to export (Popolo always holds persons, organizations, posts and memberships).
    #[arg(long = "type", value_enum, default_value_t = ExportKind::Holdings)]
    kind: ExportKind,
    /// The day.
    #[arg(long)]
    at: String,
    /// As known at this recorded instant.
    #[arg(long)]
    known_at: Option<String>,
    /// The format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    format: ExportFormat,
    /// With the events every row comes from and their proof in a signed checkpoint (holdings,
    /// JSON Lines), for `regctl verify-export`. Without --known-at, as known when the newest
    /// checkpoint was signed.
    #[arg(long)]
    signed: bool,
}

impl Export {
    /// Runs the export to standard output.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        let date = args::date("--at", &self.at)?;
        let known_at = args::opt_instant("--known-at", self.known_at.as_deref())?;
        if self.signed {
            if self.kind != ExportKind::Holdings || self.format != ExportFormat::Jsonl {
                return Err(CliError::Usage(
                    "--signed: signed exports hold holdings as JSON Lines (--type holdings \
                     --format jsonl)"
                        .into(),
                ));
            }
            return crate::signed::export(cx, date, known_at).await;
        }
        if self.kind != ExportKind::Holdings && self.format != ExportFormat::Popolo {
            return export_records(cx, self.kind, self.format, date, known_at).await;
        }
        let holdings = holdings_on(cx, &date, known_at).await?;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        match self.format {
            ExportFormat::Jsonl => {
                for (h, possibly) in &holdings {
                    writeln!(out, "{}", holding_line(h, *possibly))?;
                }
            }
            ExportFormat::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record([
                    "holding",
                    "person",
                    "person_name",
                    "office",
                    "office_title",
                    "unit",
                    "from",
                    "until",
                    "how",
                    "basis",
                    "certain",
                ])
                .map_err(|e| CliError::Io(e.to_string()))?;
                for (h, possibly) in &holdings {
                    let how = v1::BeginningKind::try_from(h.beginning)
                        .map(|b| args::short(b.as_str_name(), "BEGINNING_KIND"))
                        .unwrap_or_default();
                    w.write_record([
                        h.name.as_str(),
                        &h.person,
                        &h.person_display_name,
                        &h.office,
                        &h.office_title,
                        &h.unit,
                        &h.start,
                        &h.end,
                        &how,
                        &h.basis
                            .as_ref()
                            .map(|b| b.number.clone())
                            .unwrap_or_default(),
                        if *possibly { "possibly" } else { "yes" },
                    ])
                    .map_err(|e| CliError::Io(e.to_string()))?;
                }
                w.flush()?;
                return Ok(());
            }
            ExportFormat::Popolo => {
                let document = popolo(cx, &holdings, &date, known_at).await?;
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&document).unwrap_or_default()
                )?;
            }
        }
        out.flush()?;
        Ok(())
    }
}

/// The holdings that surely cover `date` as known at `known_at`, and those that possibly do
/// (marked `true`).
pub async fn holdings_on(
    cx: &Context,
    date: &str,
    known_at: Option<prost_types::Timestamp>,
) -> Result<Vec<(v1::Holding, bool)>, CliError> {
    crate::read::all_pages(|page_token| {
        let request = v1::ListHoldingsRequest {
            date: date.to_owned(),
            known_at,
            page_size: 10_000,
            page_token,
            ..Default::default()
        };
        let mut client = cx.client.query();
        async move {
            let response = client.list_holdings(request).await?.into_inner();
            let surely = response.holdings.into_iter().map(|h| (h, false));
            let possibly = response.possible_holdings.into_iter().map(|h| (h, true));
            Ok((surely.chain(possibly).collect(), response.next_page_token))
        }
    })
    .await
}

/// A holding as a line of a JSON Lines export: the API's JSON, with `"possibly": true` when it
/// only possibly covers the day.
pub fn holding_line(holding: &v1::Holding, possibly: bool) -> serde_json::Value {
    let mut line = json(holding, "registry.v1.Holding");
    if let (true, Some(fields)) = (possibly, line.as_object_mut()) {
        fields.insert("possibly".into(), true.into());
    }
    line
}

/// Persons, units or offices as JSON Lines (the API's JSON) or CSV.
async fn export_records(
    cx: &Context,
    kind: ExportKind,
    format: ExportFormat,
    date: String,
    known_at: Option<prost_types::Timestamp>,
) -> Result<(), CliError> {
    let (headers, rows, lines): (&[&str], Vec<Vec<String>>, Vec<serde_json::Value>) = match kind {
        ExportKind::Persons => {
            let persons = all_pages!(
                cx,
                list_persons,
                ListPersonsRequest,
                persons,
                date,
                known_at
            );
            let rows = persons
                .iter()
                .map(|p| vec![p.name.clone(), p.display_name.clone()])
                .collect();
            (
                &["person", "name"],
                rows,
                persons
                    .iter()
                    .map(|p| json(p, "registry.v1.Person"))
                    .collect(),
            )
        }
        ExportKind::Units => {
            let units = all_pages!(cx, list_units, ListUnitsRequest, units, date, known_at);
            let rows = units
                .iter()
                .map(|u| {
                    let kind = v1::UnitKind::try_from(u.kind)
                        .map(|k| args::short(k.as_str_name(), "UNIT_KIND"))
                        .unwrap_or_default();
                    let level = v1::Level::try_from(u.level)
                        .map(|k| args::short(k.as_str_name(), "LEVEL"))
                        .unwrap_or_default();
                    vec![
                        u.name.clone(),
                        u.display_name.clone(),
                        kind,
                        level,
                        u.parents.join(";"),
                        u.valid_from.clone(),
                        u.valid_until.clone(),
                    ]
                })
                .collect();
            (
                &["unit", "name", "kind", "level", "parents", "from", "until"],
                rows,
                units.iter().map(|u| json(u, "registry.v1.Unit")).collect(),
            )
        }
        ExportKind::Offices => {
            let offices = all_pages!(
                cx,
                list_offices,
                ListOfficesRequest,
                offices,
                date,
                known_at
            );
            let rows = offices
                .iter()
                .map(|o| {
                    let kind = v1::OfficeKind::try_from(o.kind)
                        .map(|k| args::short(k.as_str_name(), "OFFICE_KIND"))
                        .unwrap_or_default();
                    let capacity = match o
                        .capacity
                        .as_ref()
                        .map(|c| (v1::CapacityKind::try_from(c.kind), c.limit))
                    {
                        Some((Ok(v1::CapacityKind::Limited), limit)) => limit.to_string(),
                        Some((Ok(v1::CapacityKind::Unbounded), _)) => "unbounded".to_owned(),
                        _ => "sole".to_owned(),
                    };
                    vec![
                        o.name.clone(),
                        o.unit.clone(),
                        o.title.clone(),
                        kind,
                        capacity,
                        o.valid_from.clone(),
                        o.valid_until.clone(),
                    ]
                })
                .collect();
            (
                &[
                    "office", "unit", "title", "kind", "capacity", "from", "until",
                ],
                rows,
                offices
                    .iter()
                    .map(|o| json(o, "registry.v1.Office"))
                    .collect(),
            )
        }
        ExportKind::Holdings => unreachable!("holdings are exported by Export::run"),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match format {
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(headers)
                .map_err(|e| CliError::Io(e.to_string()))?;
            for row in rows {
                w.write_record(row)
                    .map_err(|e| CliError::Io(e.to_string()))?;
            }
            w.flush()?;
        }
        _ => {
            for line in lines {
                writeln!(out, "{line}")?;
            }
            out.flush()?;
        }
    }
    Ok(())
}

/// The holdings as a Popolo document (https://www.popoloproject.com/specs/).
async fn popolo(
    cx: &Context,
    holdings: &[(v1::Holding, bool)],
    date: &str,
    known_at: Option<prost_types::Timestamp>,
) -> Result<serde_json::Value, CliError> {
    let mut persons = BTreeMap::new();
    let mut posts = BTreeMap::new();
    let mut organizations = BTreeMap::new();
    let mut memberships = Vec::new();
    for (h, _) in holdings {
        persons.insert(
            h.person.clone(),
            serde_json::json!({ "id": h.person, "name": h.person_display_name }),
        );
        posts.insert(
            h.office.clone(),
            serde_json::json!({ "id": h.office, "label": h.office_title, "organization_id": h.unit }),
        );
        organizations
            .entry(h.unit.clone())
            .or_insert(serde_json::Value::Null);
        let mut membership = serde_json::json!({
            "id": h.name,
            "person_id": h.person,
            "post_id": h.office,
            "organization_id": h.unit,
            "label": h.office_title,
            "start_date": h.start,
        });
        if let Some(end) = popolo_end_date(h) {
            membership["end_date"] = end.into();
        }
        let sources: Vec<serde_json::Value> = [&h.basis, &h.end_basis]
            .into_iter()
            .flatten()
            .map(popolo_source)
            .collect();
        if !sources.is_empty() {
            membership["sources"] = sources.into();
        }
        memberships.push(membership);
    }
    // Birth dates where known: the registry's persons on the day, a page at a time.
    let wanted = persons.len();
    let mut births = 0;
    let mut page_token = String::new();
    while births < wanted {
        let page = cx
            .client
            .query()
            .list_persons(v1::ListPersonsRequest {
                date: date.to_owned(),
                known_at,
                page_size: 10_000,
                page_token,
                ..Default::default()
            })
            .await?
            .into_inner();
        for p in page.persons {
            if let Some(person) = persons.get_mut(&p.name) {
                births += 1;
                if !p.birth.is_empty() {
                    person["birth_date"] = p.birth.into();
                }
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    for (unit, entry) in organizations.iter_mut() {
        if unit.is_empty() {
            continue;
        }
        let shown = cx
            .client
            .query()
            .get_unit(v1::GetUnitRequest {
                name: unit.clone(),
                date: date.to_owned(),
                known_at,
                ..Default::default()
            })
            .await?
            .into_inner()
            .unit
            .unwrap_or_default();
        let classification = v1::UnitKind::try_from(shown.kind)
            .map(|k| args::short(k.as_str_name(), "UNIT_KIND"))
            .unwrap_or_default();
        *entry = serde_json::json!({
            "id": unit,
            "name": shown.display_name,
            "classification": classification,
            "parent_id": shown.parents.first(),
        });
    }
    organizations.remove("");
    Ok(serde_json::json!({
        "persons": persons.into_values().collect::<Vec<_>>(),
        "organizations": organizations.into_values().collect::<Vec<_>>(),
        "posts": posts.into_values().collect::<Vec<_>>(),
        "memberships": memberships,
    }))
}

/// A membership's Popolo `end_date`: the last day held. The registry keeps the first day not
/// held, so an end known to the day is written one day earlier; one known only to a month or a
/// year is written as known (Popolo's dates may be `YYYY-MM` or `YYYY`); an open holding or an
/// end not known has none.
fn popolo_end_date(h: &v1::Holding) -> Option<String> {
    if h.end.is_empty() || h.end_unknown {
        return None;
    }
    match h.end.parse::<registry_domain::Date>().ok() {
        Some(first_not_held) => Some(first_not_held.previous_day().to_string()),
        None => Some(h.end.clone()),
    }
}

/// A legal basis as a Popolo source: a URN naming the document (Popolo's links need a URL, and
/// a decision has none of its own) and a note a reader understands.
fn popolo_source(basis: &v1::LegalBasis) -> serde_json::Value {
    let urn = format!(
        "urn:x-registry-basis:{}:{}:{}",
        percent(&basis.issuer),
        percent(&basis.number),
        basis.issued_on
    );
    serde_json::json!({
        "url": urn,
        "note": format!("{}, {}, {}", basis.number, basis.issued_on, basis.issuer),
    })
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_field_of_a_row_is_reported_with_its_line() {
        let row = Row {
            record: "holding".into(),
            person: "not-a-uuid".into(),
            from: "30/02/2024".into(),
            ..Row::default()
        };
        let problems = plan(7, &row).err().unwrap_or_default();
        assert!(
            problems.iter().any(|p| p.starts_with("line 7: person:")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("line 7: office: is required")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.starts_with("line 7: from:")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_cut_call_is_sent_again_and_a_refusal_is_not() {
        use tonic::{Code, Status};
        use tonic_types::{ErrorDetails, StatusExt};
        assert!(retriable(&Status::unavailable("connection reset")));
        assert!(retriable(&Status::deadline_exceeded("deadline")));
        assert!(!retriable(&Status::invalid_argument("records[0].person")));
        let mut details = ErrorDetails::new();
        details.set_error_info(
            "CAPACITY_EXCEEDED",
            "registry.v1",
            [("record_index".to_owned(), "3".to_owned())],
        );
        let refused =
            Status::with_error_details(Code::Aborted, "records[3].holding: refused", details);
        assert!(!retriable(&refused), "a record refused is not a cut call");
    }

    #[test]
    fn the_same_row_gets_the_same_request_id() {
        let row = Row {
            record: "person".into(),
            name: "Nguyễn Văn A".into(),
            ..Row::default()
        };
        assert_eq!(
            row_request_id(&row, "person"),
            row_request_id(&row.clone(), "person")
        );
        let other = Row {
            name: "Nguyễn Văn B".into(),
            ..row.clone()
        };
        assert_ne!(
            row_request_id(&row, "person"),
            row_request_id(&other, "person")
        );
    }

    #[test]
    fn import_messages_stay_under_the_size_limit_and_keep_the_order() {
        use prost::Message;
        let record = |name: String| v1::ImportRecord {
            record: Some(Planned::Person(v1::RegisterPersonRequest {
                display_name: name,
                ..Default::default()
            })),
        };
        // 2,500 short records, then 40 of 100 kB.
        let mut records: Vec<_> = (0..2500).map(|i| record(format!("Người {i}"))).collect();
        records.extend((0..40).map(|i| record(format!("{i}{}", "x".repeat(100_000)))));
        let messages = messages(&records);
        assert!(messages.iter().all(|m| m.records.len() <= PER_MESSAGE));
        assert!(messages.iter().all(|m| m.encoded_len() <= MESSAGE_BYTES));
        assert_eq!(&messages[0].records[..], &records[..PER_MESSAGE]);
        let flat: Vec<_> = messages.into_iter().flat_map(|m| m.records).collect();
        assert_eq!(flat, records);
    }

    #[test]
    fn a_long_file_is_planned_in_file_order_with_its_line_numbers() {
        // Several chunks parsed on two threads: records come back in file order, and bad rows
        // are named by their own lines.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("persons.jsonl");
        let lines = 3 * LINES_PER_CHUNK + 17;
        let bad = [5, 2 * LINES_PER_CHUNK + 3];
        let text: String = (1..=lines)
            .map(|line| {
                if bad.contains(&line) {
                    "{\"type\":\"person\",\"name\":\"\"}\n".to_owned()
                } else {
                    format!("{{\"type\":\"person\",\"name\":\"Người {line}\"}}\n")
                }
            })
            .collect();
        std::fs::write(&path, text).unwrap();
        let plan = read_plan(&path, FileFormat::Jsonl, None).unwrap();
        let expected: Vec<usize> = (1..=lines).filter(|l| !bad.contains(l)).collect();
        let got: Vec<usize> = plan.records.iter().map(|(line, _)| *line).collect();
        assert_eq!(got, expected);
        let Some((_, Planned::Person(last))) = plan.records.last() else {
            panic!("the last record is not a person");
        };
        assert_eq!(last.display_name, format!("Người {lines}"));
        assert_eq!(plan.problems.len(), 2, "{:?}", plan.problems);
        assert!(
            plan.problems[0].starts_with("line 5: name"),
            "{:?}",
            plan.problems
        );
        assert!(
            plan.problems[1].starts_with(&format!("line {}: name", bad[1])),
            "{:?}",
            plan.problems
        );
    }
}
