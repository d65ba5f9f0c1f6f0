//! What `regctl` asks: the views the subjects' `show`, `search`, `holders` and `coverage`
//! subcommands print, and the questions across subjects (who-held, career, history, diff,
//! follow, irregularities, stats). Each sends one request (or follows a stream) and prints the
//! answer as a table or as the API's JSON.

use clap::Args;
use registry_client::v1;
use tokio_stream::StreamExt;

use crate::args::{self, name, short, show_instant, CliError};
use crate::output::{json, Answer, Format};
use crate::Context;

/// Every page of a list: `fetch(page_token)` returns one page's items and the next token.
pub async fn all_pages<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, CliError>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, String), tonic::Status>>,
{
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let (page, next) = fetch(token).await?;
        items.extend(page);
        if next.is_empty() {
            return Ok(items);
        }
        token = next;
    }
}

const HOLDING_HEADERS: &[&str] = &[
    "holding", "person", "name", "office", "from", "until", "how", "basis",
];

fn holding_row(h: &v1::Holding) -> Vec<String> {
    let until = if h.end_unknown {
        "unknown".to_owned()
    } else {
        h.end.clone()
    };
    let how = short(
        v1::BeginningKind::try_from(h.beginning)
            .map(|b| b.as_str_name())
            .unwrap_or(""),
        "BEGINNING_KIND",
    );
    let until = match v1::EndReason::try_from(h.end_reason) {
        Ok(reason) if reason != v1::EndReason::Unspecified => {
            format!("{until} ({})", short(reason.as_str_name(), "END_REASON"))
        }
        _ => until,
    };
    vec![
        h.name.clone(),
        h.person.clone(),
        h.person_display_name.clone(),
        h.office_title.clone(),
        h.start.clone(),
        until,
        how,
        h.basis
            .as_ref()
            .map(|b| b.number.clone())
            .unwrap_or_default(),
    ]
}

fn print_holdings<M: prost::Message>(
    cx: &Context,
    response: &M,
    full_name: &str,
    holdings: &[v1::Holding],
) {
    Answer {
        document: json(response, full_name),
        items: holdings
            .iter()
            .map(|h| json(h, "registry.v1.Holding"))
            .collect(),
        headers: HOLDING_HEADERS,
        rows: holdings.iter().map(holding_row).collect(),
    }
    .print(cx.format);
}

/// Under a table of holdings: those the registry cannot say covered the day or not.
fn print_possible(holdings: &[v1::Holding]) {
    if holdings.is_empty() {
        return;
    }
    println!("possibly held (a date known only to a month or a year, or an end not known):");
    Answer {
        document: serde_json::Value::Null,
        items: vec![],
        headers: HOLDING_HEADERS,
        rows: holdings.iter().map(holding_row).collect(),
    }
    .print(Format::Table);
}

/// The `--at`, `--known-at` and `--min-position` options of reads.
#[derive(Args, Clone, Debug)]
pub struct When {
    /// The day asked about (2024-03-18 or 18/03/2024).
    #[arg(long)]
    pub at: String,
    /// Answer as the registry stood at this recorded instant (2024-06-01T00:00:00Z).
    #[arg(long)]
    pub known_at: Option<String>,
    /// Wait until the server has applied this commit position (from a write's answer).
    #[arg(long)]
    pub min_position: Option<String>,
}

/// Who held an office on a day; or, with `--from-file`, who held each office and what each
/// person held, for many at once.
#[derive(Args, Debug)]
pub struct WhoHeld {
    /// The office.
    #[arg(required_unless_present = "from_file", conflicts_with = "from_file")]
    office: Option<String>,
    /// A file of names, one per line (`offices/…` or `persons/…`; a bare id is an office; `#`
    /// starts a comment; `-` reads standard input): asked in batches of up to 1,000.
    #[arg(long)]
    from_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    when: When,
}

/// One name of a `--from-file` list and what the registry answered about it.
struct Asked {
    name: String,
    answer: Result<Vec<v1::Holding>, v1::QuestionError>,
    /// The whole answer as JSON, or the error's.
    document: serde_json::Value,
}

impl WhoHeld {
    /// Runs it.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        let Some(office) = self.office.as_deref() else {
            return self.run_batch(cx).await;
        };
        let response = cx
            .client
            .query()
            .get_office_holders(v1::GetOfficeHoldersRequest {
                office: name("offices", office),
                date: args::date("--at", &self.when.at)?,
                known_at: args::opt_instant("--known-at", self.when.known_at.as_deref())?,
                min_position: self.when.min_position.unwrap_or_default(),
            })
            .await?
            .into_inner();
        if cx.format == Format::Table && response.vacant {
            println!("vacant on {}", self.when.at);
            return Ok(());
        }
        print_holdings(
            cx,
            &response,
            "registry.v1.GetOfficeHoldersResponse",
            &response.holdings,
        );
        if cx.format == Format::Table {
            match response.seats {
                1 => {}
                0 => println!("{} seats filled (no fixed number)", response.seats_filled),
                n => println!("{} of {n} seats filled", response.seats_filled),
            }
            print_possible(&response.possible_holdings);
        }
        Ok(())
    }
}

impl WhoHeld {
    /// `--from-file`: the offices' holders and the persons' offices on the day, asked in
    /// batches (`BatchGetOfficeHolders`, `BatchListPersonOffices`), printed in the file's order.
    /// A name the server could not answer is printed with its error; the exit status then says
    /// that some failed.
    async fn run_batch(self, cx: &Context) -> Result<(), CliError> {
        let path = self.from_file.unwrap_or_default();
        let text = if path.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(&path)
        }
        .map_err(|e| CliError::Io(format!("{}: {e}", path.display())))?;
        let names: Vec<String> = text
            .lines()
            .map(|line| line.split('#').next().unwrap_or_default().trim())
            .filter(|line| !line.is_empty())
            .map(|line| {
                if line.starts_with("persons/") {
                    line.to_owned()
                } else {
                    name("offices", line)
                }
            })
            .collect();
        if names.is_empty() {
            return Err(CliError::Usage(format!(
                "{}: names no office or person",
                path.display()
            )));
        }
        let date = args::date("--at", &self.when.at)?;
        let known_at = args::opt_instant("--known-at", self.when.known_at.as_deref())?;
        let min_position = self.when.min_position.unwrap_or_default();
        // Each name with its place in the file: persons asked in one kind of batch, offices in
        // the other.
        type Placed<'a> = Vec<(usize, &'a String)>;
        let (persons, offices): (Placed, Placed) = names
            .iter()
            .enumerate()
            .partition(|(_, n)| n.starts_with("persons/"));
        let mut answers: Vec<Option<Asked>> = names.iter().map(|_| None).collect();
        for chunk in offices.chunks(BATCH) {
            let requests = chunk
                .iter()
                .map(|(_, office)| v1::GetOfficeHoldersRequest {
                    office: (*office).clone(),
                    date: date.clone(),
                    known_at,
                    min_position: min_position.clone(),
                })
                .collect();
            let batch = cx
                .client
                .query()
                .batch_get_office_holders(v1::BatchGetOfficeHoldersRequest { requests })
                .await?
                .into_inner();
            let outcomes = batch.answers.into_iter().map(|answer| {
                use v1::office_holders_answer::Outcome;
                answer.outcome.map(|outcome| match outcome {
                    Outcome::Holders(holders) => Ok((
                        json(&holders, "registry.v1.GetOfficeHoldersResponse"),
                        holders.holdings,
                    )),
                    Outcome::Error(error) => Err(error),
                })
            });
            place(&mut answers, chunk, outcomes);
        }
        for chunk in persons.chunks(BATCH) {
            let requests = chunk
                .iter()
                .map(|(_, person)| v1::ListPersonOfficesRequest {
                    person: (*person).clone(),
                    date: date.clone(),
                    known_at,
                    min_position: min_position.clone(),
                })
                .collect();
            let batch = cx
                .client
                .query()
                .batch_list_person_offices(v1::BatchListPersonOfficesRequest { requests })
                .await?
                .into_inner();
            let outcomes = batch.answers.into_iter().map(|answer| {
                use v1::person_offices_answer::Outcome;
                answer.outcome.map(|outcome| match outcome {
                    Outcome::Offices(offices) => Ok((
                        json(&offices, "registry.v1.ListPersonOfficesResponse"),
                        offices.holdings,
                    )),
                    Outcome::Error(error) => Err(error),
                })
            });
            place(&mut answers, chunk, outcomes);
        }
        let answers: Vec<Asked> = answers.into_iter().flatten().collect();
        let failures = answers.iter().filter(|a| a.answer.is_err()).count();
        print_batch(cx, &answers);
        if failures > 0 {
            return Err(CliError::Invalid(format!(
                "{failures} of {} names could not be answered (printed with their errors)",
                answers.len()
            )));
        }
        Ok(())
    }
}

/// One question's outcome in a batch: the answer as JSON with its holdings, or why it failed;
/// `None` where the server left it out.
type Outcome = Option<Result<(serde_json::Value, Vec<v1::Holding>), v1::QuestionError>>;

/// Puts a batch's outcomes at their names' places in the file (a name the server gave no
/// outcome for, even past the end of its answers, is printed as unanswered).
fn place(
    answers: &mut [Option<Asked>],
    chunk: &[(usize, &String)],
    mut outcomes: impl Iterator<Item = Outcome>,
) {
    for (i, name) in chunk {
        let outcome = outcomes.next().flatten();
        let (document, answer) = match outcome.unwrap_or_else(|| Err(unanswered())) {
            Ok((document, holdings)) => (document, Ok(holdings)),
            Err(error) => (json(&error, "registry.v1.QuestionError"), Err(error)),
        };
        answers[*i] = Some(Asked {
            name: (*name).clone(),
            answer,
            document,
        });
    }
}

/// The most questions regctl puts in one batch call (the server's limit).
const BATCH: usize = 1000;

/// What stands for an answer a server left out.
fn unanswered() -> v1::QuestionError {
    v1::QuestionError {
        code: tonic::Code::Unknown as i32,
        message: "the server sent no answer for this question".into(),
        field: String::new(),
    }
}

/// A `--from-file` batch: a table of each name's holdings (or `none`, or its error), or JSON.
fn print_batch(cx: &Context, answers: &[Asked]) {
    let mut headers = vec!["asked"];
    headers.extend_from_slice(HOLDING_HEADERS);
    let mut rows = Vec::new();
    for asked in answers {
        match &asked.answer {
            Ok(holdings) if holdings.is_empty() => {
                rows.push(vec![asked.name.clone(), "none".into()])
            }
            Ok(holdings) => rows.extend(holdings.iter().map(|h| {
                let mut row = vec![asked.name.clone()];
                row.extend(holding_row(h));
                row
            })),
            Err(error) => rows.push(vec![
                asked.name.clone(),
                format!("error: {}", error.message),
            ]),
        }
    }
    let items: Vec<serde_json::Value> = answers
        .iter()
        .map(|a| {
            let key = if a.answer.is_ok() { "answer" } else { "error" };
            serde_json::json!({ "asked": a.name, key: a.document })
        })
        .collect();
    Answer {
        document: serde_json::json!({ "answers": items }),
        items,
        headers: &headers,
        rows,
    }
    .print(cx.format);
}

/// Every holding of a person.
#[derive(Args, Debug)]
pub struct Career {
    /// The person.
    person: String,
    /// Answer as known at this recorded instant.
    #[arg(long)]
    known_at: Option<String>,
}

impl Career {
    /// Runs it.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        let person = name("persons", &self.person);
        let known_at = args::opt_instant("--known-at", self.known_at.as_deref())?;
        let holdings = all_pages(|page_token| {
            let request = v1::ListPersonCareerRequest {
                person: person.clone(),
                known_at,
                page_size: 1000,
                page_token,
                ..Default::default()
            };
            let mut client = cx.client.query();
            async move {
                let response = client.list_person_career(request).await?.into_inner();
                Ok((response.holdings, response.next_page_token))
            }
        })
        .await?;
        let response = v1::ListPersonCareerResponse {
            holdings,
            ..Default::default()
        };
        print_holdings(
            cx,
            &response,
            "registry.v1.ListPersonCareerResponse",
            &response.holdings,
        );
        Ok(())
    }
}

/// A person on a day.
#[derive(Args, Debug)]
pub struct PersonShow {
    /// The person.
    person: String,
    #[command(flatten)]
    when: When,
}

impl PersonShow {
    /// Runs it.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        let person = name("persons", &self.person);
        let date = args::date("--at", &self.when.at)?;
        let known_at = args::opt_instant("--known-at", self.when.known_at.as_deref())?;
        let min_position = self.when.min_position.unwrap_or_default();
        let shown = cx
            .client
            .query()
            .get_person(v1::GetPersonRequest {
                name: person.clone(),
                date: date.clone(),
                known_at,
                min_position: min_position.clone(),
            })
            .await?
            .into_inner();
        let offices = cx
            .client
            .query()
            .list_person_offices(v1::ListPersonOfficesRequest {
                person,
                date,
                known_at,
                min_position,
            })
            .await?
            .into_inner();
        if cx.format == Format::Table {
            println!("{} ({})", shown.display_name, shown.name);
        }
        print_holdings(
            cx,
            &offices,
            "registry.v1.ListPersonOfficesResponse",
            &offices.holdings,
        );
        if cx.format == Format::Table {
            print_possible(&offices.possible_holdings);
        }
        Ok(())
    }
}

/// Finds persons by name.
pub async fn search(cx: &Context, query: String, limit: i32) -> Result<(), CliError> {
    let response = cx
        .client
        .query()
        .search_persons(v1::SearchPersonsRequest {
            query,
            page_size: limit,
            ..Default::default()
        })
        .await?
        .into_inner();
    Answer {
        document: json(&response, "registry.v1.SearchPersonsResponse"),
        items: response
            .matches
            .iter()
            .map(|m| json(m, "registry.v1.PersonMatch"))
            .collect(),
        headers: &["person", "name", "born", "holds (or held last)", "match"],
        rows: response
            .matches
            .iter()
            .map(|m| {
                let kind = v1::MatchKind::try_from(m.match_kind)
                    .map(|k| short(k.as_str_name(), "MATCH_KIND"))
                    .unwrap_or_default();
                // The year tells namesakes apart; the office says which one is meant.
                let born = m.birth.get(..4).unwrap_or_default().to_owned();
                let holds = m.latest_holding.as_ref().map_or_else(String::new, |h| {
                    let until = if h.end.is_empty() && !h.end_unknown {
                        "now".to_owned()
                    } else if h.end_unknown {
                        "?".to_owned()
                    } else {
                        h.end.clone()
                    };
                    format!("{} ({} – {until})", h.office_title, h.start)
                });
                vec![m.person.clone(), m.display_name.clone(), born, holds, kind]
            })
            .collect(),
    }
    .print(cx.format);
    Ok(())
}

fn unit_rows(units: &[v1::Unit]) -> Vec<Vec<String>> {
    units
        .iter()
        .map(|u| {
            vec![
                u.name.clone(),
                u.display_name.clone(),
                v1::UnitKind::try_from(u.kind)
                    .map(|k| short(k.as_str_name(), "UNIT_KIND"))
                    .unwrap_or_default(),
                v1::Level::try_from(u.level)
                    .map(|k| short(k.as_str_name(), "LEVEL"))
                    .unwrap_or_default(),
                u.valid_from.clone(),
                u.valid_until.clone(),
                u.parents.join(" "),
                u.offices.len().to_string(),
            ]
        })
        .collect()
}

const UNIT_HEADERS: &[&str] = &[
    "unit", "name", "kind", "level", "from", "until", "parents", "offices",
];

/// A unit on a day.
#[derive(Args, Debug)]
pub struct UnitShow {
    /// The unit.
    unit: String,
    #[command(flatten)]
    when: When,
}

impl UnitShow {
    /// Runs it.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        let response = cx
            .client
            .query()
            .get_unit(v1::GetUnitRequest {
                name: name("units", &self.unit),
                date: args::date("--at", &self.when.at)?,
                known_at: args::opt_instant("--known-at", self.when.known_at.as_deref())?,
                min_position: self.when.min_position.unwrap_or_default(),
            })
            .await?
            .into_inner();
        let unit = response.unit.clone().unwrap_or_default();
        let mut rows = unit_rows(std::slice::from_ref(&unit));
        if cx.format == Format::Table {
            rows.extend(unit.children.iter().map(|c| vec![format!("  child {c}")]));
            rows.extend(unit.offices.iter().map(|o| vec![format!("  office {o}")]));
        }
        Answer {
            document: json(&response, "registry.v1.GetUnitResponse"),
            items: vec![],
            headers: UNIT_HEADERS,
            rows,
        }
        .print(cx.format);
        Ok(())
    }
}

/// The units of a jurisdiction on a day.
#[derive(Args, Debug)]
pub struct UnitTree {
    /// The root unit.
    unit: String,
    #[command(flatten)]
    when: When,
}

impl UnitTree {
    /// Runs it.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        let root = name("units", &self.unit);
        let date = args::date("--at", &self.when.at)?;
        let known_at = args::opt_instant("--known-at", self.when.known_at.as_deref())?;
        let min_position = self.when.min_position.clone().unwrap_or_default();
        let units = all_pages(|page_token| {
            let request = v1::ListUnitTreeRequest {
                root: root.clone(),
                date: date.clone(),
                known_at,
                min_position: min_position.clone(),
                page_size: 1000,
                page_token,
            };
            let mut client = cx.client.query();
            async move {
                let response = client.list_unit_tree(request).await?.into_inner();
                Ok((response.units, response.next_page_token))
            }
        })
        .await?;
        let response = v1::ListUnitTreeResponse {
            units,
            ..Default::default()
        };
        Answer {
            document: json(&response, "registry.v1.ListUnitTreeResponse"),
            items: response
                .units
                .iter()
                .map(|u| json(u, "registry.v1.Unit"))
                .collect(),
            headers: UNIT_HEADERS,
            rows: unit_rows(&response.units),
        }
        .print(cx.format);
        Ok(())
    }
}

/// Predecessors and successors of a unit.
#[derive(Args, Debug)]
pub struct UnitLineage {
    /// The unit.
    unit: String,
    /// Answer as known at this recorded instant.
    #[arg(long)]
    known_at: Option<String>,
}

impl UnitLineage {
    /// Runs it.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        let response = cx
            .client
            .query()
            .get_unit_lineage(v1::GetUnitLineageRequest {
                name: name("units", &self.unit),
                known_at: args::opt_instant("--known-at", self.known_at.as_deref())?,
                ..Default::default()
            })
            .await?
            .into_inner();
        let rows = response
            .predecessors
            .iter()
            .map(|l| {
                vec![
                    "predecessor".to_owned(),
                    l.unit.clone(),
                    l.valid_from.clone(),
                ]
            })
            .chain(
                response
                    .successors
                    .iter()
                    .map(|l| vec!["successor".to_owned(), l.unit.clone(), l.valid_from.clone()]),
            )
            .collect();
        Answer {
            document: json(&response, "registry.v1.GetUnitLineageResponse"),
            items: vec![],
            headers: &["link", "unit", "from"],
            rows,
        }
        .print(cx.format);
        Ok(())
    }
}

/// An office on a day.
#[derive(Args, Debug)]
pub struct OfficeShow {
    /// The office.
    office: String,
    #[command(flatten)]
    when: When,
}

impl OfficeShow {
    /// Runs it.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        let response = cx
            .client
            .query()
            .get_office(v1::GetOfficeRequest {
                name: name("offices", &self.office),
                date: args::date("--at", &self.when.at)?,
                known_at: args::opt_instant("--known-at", self.when.known_at.as_deref())?,
                min_position: self.when.min_position.unwrap_or_default(),
            })
            .await?
            .into_inner();
        let o = response.office.clone().unwrap_or_default();
        let kind = v1::OfficeKind::try_from(o.kind)
            .map(|k| short(k.as_str_name(), "OFFICE_KIND"))
            .unwrap_or_default();
        let capacity = o
            .capacity
            .map(|c| {
                if c.kind == v1::CapacityKind::Unbounded as i32 {
                    "unbounded".to_owned()
                } else {
                    c.limit.to_string()
                }
            })
            .unwrap_or_default();
        let rows = vec![vec![
            o.name,
            o.title,
            kind,
            capacity,
            o.unit,
            o.valid_from,
            o.valid_until,
        ]];
        Answer {
            document: json(&response, "registry.v1.GetOfficeResponse"),
            items: vec![],
            headers: &[
                "office", "title", "kind", "holders", "unit", "from", "until",
            ],
            rows,
        }
        .print(cx.format);
        Ok(())
    }
}

/// Every holding of an office.
#[derive(Args, Debug)]
pub struct OfficeHolders {
    /// The office.
    office: String,
    /// Answer as known at this recorded instant.
    #[arg(long)]
    known_at: Option<String>,
}

impl OfficeHolders {
    /// Runs it.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        let office = name("offices", &self.office);
        let known_at = args::opt_instant("--known-at", self.known_at.as_deref())?;
        let holdings = all_pages(|page_token| {
            let request = v1::ListOfficeHistoryRequest {
                office: office.clone(),
                known_at,
                page_size: 1000,
                page_token,
                ..Default::default()
            };
            let mut client = cx.client.query();
            async move {
                let response = client.list_office_history(request).await?.into_inner();
                Ok((response.holdings, response.next_page_token))
            }
        })
        .await?;
        let response = v1::ListOfficeHistoryResponse {
            holdings,
            ..Default::default()
        };
        print_holdings(
            cx,
            &response,
            "registry.v1.ListOfficeHistoryResponse",
            &response.holdings,
        );
        Ok(())
    }
}

/// One holding.
#[derive(Args, Debug)]
pub struct HoldingShow {
    /// The holding.
    holding: String,
    /// Answer as known at this recorded instant.
    #[arg(long)]
    known_at: Option<String>,
}

impl HoldingShow {
    /// Runs it.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        let response = cx
            .client
            .query()
            .get_holding(v1::GetHoldingRequest {
                name: name("holdings", &self.holding),
                known_at: args::opt_instant("--known-at", self.known_at.as_deref())?,
                ..Default::default()
            })
            .await?
            .into_inner();
        let holdings: Vec<v1::Holding> = response.holding.clone().into_iter().collect();
        print_holdings(cx, &response, "registry.v1.GetHoldingResponse", &holdings);
        Ok(())
    }
}

/// Coverage of a pilot model.
#[derive(Args, Debug)]
pub struct Coverage {
    /// The model.
    model: String,
    /// The jurisdiction (an administrative area).
    jurisdiction: String,
    /// The level of the units counted.
    #[arg(long, default_value = "commune")]
    level: String,
    #[command(flatten)]
    when: When,
}

impl Coverage {
    /// Runs it.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        let response = cx
            .client
            .query()
            .get_model_coverage(v1::GetModelCoverageRequest {
                model: name("models", &self.model),
                jurisdiction: name("units", &self.jurisdiction),
                level: args::level("--level", &self.level)?,
                date: args::date("--at", &self.when.at)?,
                known_at: args::opt_instant("--known-at", self.when.known_at.as_deref())?,
                min_position: self.when.min_position.unwrap_or_default(),
            })
            .await?
            .into_inner();
        let count = |list: &[String]| format!("{} of {}", list.len(), response.unit_count);
        let rows = vec![
            vec![
                "declared".to_owned(),
                count(&response.declared),
                response.declared.join(" "),
            ],
            vec![
                "observed".to_owned(),
                count(&response.observed),
                response.observed.join(" "),
            ],
            vec![
                "declared only".to_owned(),
                response.declared_only.len().to_string(),
                response.declared_only.join(" "),
            ],
            vec![
                "observed only".to_owned(),
                response.observed_only.len().to_string(),
                response.observed_only.join(" "),
            ],
            vec![
                "uncertain".to_owned(),
                response.uncertain.len().to_string(),
                response.uncertain.join(" "),
            ],
        ];
        Answer {
            document: json(&response, "registry.v1.GetModelCoverageResponse"),
            items: vec![],
            headers: &["", "units", "which"],
            rows,
        }
        .print(cx.format);
        Ok(())
    }
}

fn change_rows(changes: &[v1::Change]) -> Vec<Vec<String>> {
    changes
        .iter()
        .map(|c| {
            let payload: serde_json::Value =
                serde_json::from_str(&c.payload_json).unwrap_or_default();
            let why = payload
                .pointer("/amendment/reason")
                .and_then(|r| r.as_str())
                .unwrap_or_default();
            let basis = payload
                .pointer("/basis/number")
                .or_else(|| payload.pointer("/amendment/basis/number"))
                .and_then(|b| b.as_str())
                .unwrap_or_default();
            vec![
                c.position.clone(),
                show_instant(c.recorded_at.as_ref()),
                c.actor.clone(),
                c.event_type.clone(),
                basis.to_owned(),
                why.to_owned(),
            ]
        })
        .collect()
}

const CHANGE_HEADERS: &[&str] = &["position", "recorded at", "by", "event", "basis", "reason"];

/// The recorded history of a resource.
#[derive(Args, Debug)]
pub struct History {
    /// The resource: persons/…, units/…, offices/…, holdings/…, models/…, adoptions/…, terms/….
    resource: String,
    /// Check every change with the log's public key (its `log.pub`, obtained out of band): each
    /// must be an event proved in a checkpoint that key signed, with its signed fields.
    #[arg(long = "log-public-key")]
    log_public_key: Vec<std::path::PathBuf>,
}

impl History {
    /// Runs it.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        let keys = if self.log_public_key.is_empty() {
            None
        } else {
            Some(crate::ledger::keys(&self.log_public_key)?)
        };
        let verify = keys.is_some();
        let pages = all_pages(|page_token| {
            let request = v1::ListResourceHistoryRequest {
                name: self.resource.clone(),
                page_size: 1000,
                page_token,
                verify,
                ..Default::default()
            };
            let mut client = cx.client.audit();
            async move {
                let response = client.list_resource_history(request).await?.into_inner();
                let checkpoint = response.checkpoint;
                let changes = response
                    .changes
                    .into_iter()
                    .map(|c| (c, checkpoint.clone()))
                    .collect();
                Ok((changes, response.next_page_token))
            }
        })
        .await?;
        if let Some(keys) = &keys {
            let proved = crate::ledger::check_history(&pages, keys)?;
            crate::output::note(proved);
        }
        let changes = pages.into_iter().map(|(change, _)| change).collect();
        let response = v1::ListResourceHistoryResponse {
            changes,
            ..Default::default()
        };
        Answer {
            document: json(&response, "registry.v1.ListResourceHistoryResponse"),
            items: response
                .changes
                .iter()
                .map(|c| json(c, "registry.v1.Change"))
                .collect(),
            headers: CHANGE_HEADERS,
            rows: change_rows(&response.changes),
        }
        .print(cx.format);
        Ok(())
    }
}

/// What the registry learned between two instants.
#[derive(Args, Debug)]
pub struct Diff {
    /// From this recorded instant (exclusive).
    #[arg(long)]
    from: String,
    /// To this recorded instant (inclusive); now when absent.
    #[arg(long)]
    to: Option<String>,
}

impl Diff {
    /// Runs it.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        let recorded_after = Some(args::instant("--from", &self.from)?);
        let recorded_before = args::opt_instant("--to", self.to.as_deref())?;
        let changes = all_pages(|page_token| {
            let request = v1::ListChangesRequest {
                recorded_after,
                recorded_before,
                page_size: 1000,
                page_token,
            };
            let mut client = cx.client.audit();
            async move {
                let response = client.list_changes(request).await?.into_inner();
                Ok((response.changes, response.next_page_token))
            }
        })
        .await?;
        let response = v1::ListChangesResponse {
            changes,
            ..Default::default()
        };
        Answer {
            document: json(&response, "registry.v1.ListChangesResponse"),
            items: response
                .changes
                .iter()
                .map(|c| json(c, "registry.v1.Change"))
                .collect(),
            headers: CHANGE_HEADERS,
            rows: change_rows(&response.changes),
        }
        .print(cx.format);
        Ok(())
    }
}

/// Follow the change feed.
#[derive(Args, Debug)]
pub struct Follow {
    /// Start after this commit position; from the beginning when absent.
    #[arg(long)]
    after: Option<String>,
    /// Stop after this many events.
    #[arg(long)]
    limit: Option<u64>,
}

impl Follow {
    /// Runs it: prints each event as it comes (tables: one line each).
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        let mut feed = cx
            .client
            .audit()
            .stream_changes(v1::StreamChangesRequest {
                after_position: self.after.unwrap_or_default(),
            })
            .await?
            .into_inner();
        let mut seen = 0;
        while self.limit.is_none_or(|limit| seen < limit) {
            let Some(next) = feed.next().await else { break };
            let Some(change) = next?.change else { continue };
            match cx.format {
                Format::Table => println!(
                    "{}",
                    change_rows(std::slice::from_ref(&change))[0].join("  ")
                ),
                Format::Json | Format::Jsonl => println!("{}", json(&change, "registry.v1.Change")),
            }
            seen += 1;
        }
        Ok(())
    }
}

/// Irregularities as of a day.
#[derive(Args, Debug)]
pub struct Irregularities {
    /// The day.
    #[arg(long)]
    at: String,
    /// As the registry stood at this recorded instant (RFC 3339): later corrections and
    /// retractions ignored.
    #[arg(long)]
    known_at: Option<String>,
    /// Only this kind (repeat for several): uncovered_concurrency, too_many_offices,
    /// long_vacancy, missing_basis or end_unknown. Every kind when not given.
    #[arg(long = "kind")]
    kinds: Vec<String>,
    /// Only those about offices in or under this unit (a UUID or `units/…`), or in or under
    /// the units it continues through mergers and splits. Every unit when not given.
    #[arg(long)]
    unit: Option<String>,
}

impl Irregularities {
    /// Runs it.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        let date = args::date("--at", &self.at)?;
        let known_at = args::opt_instant("--known-at", self.known_at.as_deref())?;
        let irregularities = all_pages(|page_token| {
            let request = v1::ListIrregularitiesRequest {
                date: date.clone(),
                known_at,
                page_size: 10_000,
                page_token,
                kinds: self.kinds.clone(),
                unit: self
                    .unit
                    .as_deref()
                    .map_or_else(String::new, |unit| args::name("units", unit)),
                ..Default::default()
            };
            let mut client = cx.client.audit();
            async move {
                let response = client.list_irregularities(request).await?.into_inner();
                Ok((response.irregularities, response.next_page_token))
            }
        })
        .await?;
        let response = v1::ListIrregularitiesResponse {
            irregularities,
            ..Default::default()
        };
        Answer {
            document: json(&response, "registry.v1.ListIrregularitiesResponse"),
            items: response
                .irregularities
                .iter()
                .map(|i| json(i, "registry.v1.Irregularity"))
                .collect(),
            headers: &["kind", "description"],
            rows: response
                .irregularities
                .iter()
                .map(|i| vec![i.kind.clone(), i.description.clone()])
                .collect(),
        }
        .print(cx.format);
        Ok(())
    }
}

/// Store statistics.
pub async fn stats(cx: &Context) -> Result<(), CliError> {
    let s = cx
        .client
        .admin()
        .get_store_stats(v1::GetStoreStatsRequest {})
        .await?
        .into_inner();
    let rows = vec![
        vec!["backend".to_owned(), s.backend.clone()],
        vec!["events".to_owned(), s.events.to_string()],
        vec!["head position".to_owned(), s.head_position.clone()],
        vec!["read models at".to_owned(), s.projection_position.clone()],
        vec!["events folded".to_owned(), s.projection_events.to_string()],
    ];
    Answer {
        document: json(&s, "registry.v1.GetStoreStatsResponse"),
        items: vec![],
        headers: &["", ""],
        rows,
    }
    .print(cx.format);
    Ok(())
}

/// What the server sees of the caller.
/// `regctl health`: SERVING (exit 0) or the status the server gave (exit 7).
pub async fn health(cx: &Context, service: &str) -> Result<(), CliError> {
    use tonic_health::pb::health_check_response::ServingStatus;
    let status = cx
        .client
        .health()
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?
        .into_inner()
        .status;
    let name = ServingStatus::try_from(status).map_or_else(
        |_| format!("status {status}"),
        |s| s.as_str_name().to_owned(),
    );
    if status == ServingStatus::Serving as i32 {
        println!("{name}");
        Ok(())
    } else {
        let what = if service.is_empty() {
            "the server"
        } else {
            service
        };
        Err(CliError::Unavailable(format!("{what} is {name}")))
    }
}

pub async fn whoami(cx: &Context) -> Result<(), CliError> {
    let w = cx
        .client
        .access()
        .who_am_i(v1::WhoAmIRequest {})
        .await?
        .into_inner();
    let list = |items: &[String]| {
        if items.is_empty() {
            "-".to_owned()
        } else {
            items.join(", ")
        }
    };
    let mut rows = vec![
        vec!["name".to_owned(), w.name.clone()],
        vec!["proved by".to_owned(), w.proof.clone()],
        vec![
            "policy".to_owned(),
            if w.policy {
                "decides who may do what".to_owned()
            } else {
                "none: every caller may do anything".to_owned()
            },
        ],
        vec!["roles".to_owned(), list(&w.roles)],
        vec!["agency".to_owned(), w.agency.clone()],
        vec!["scopes".to_owned(), list(&w.scopes)],
        vec!["may, anywhere".to_owned(), list(&w.actions)],
    ];
    if let Some(expires) = &w.expires {
        rows.push(vec![
            "token expires".to_owned(),
            show_instant(Some(expires)),
        ]);
    }
    Answer {
        document: json(&w, "registry.v1.WhoAmIResponse"),
        items: vec![],
        headers: &["", ""],
        rows,
    }
    .print(cx.format);
    Ok(())
}

/// Rebuilds the server's read models.
pub async fn rebuild(cx: &Context) -> Result<(), CliError> {
    let r = cx
        .client
        .admin()
        .rebuild_projections(v1::RebuildProjectionsRequest {})
        .await?
        .into_inner();
    let rows = vec![vec![
        r.events.to_string(),
        r.position.clone(),
        format!("{} ms", r.millis),
    ]];
    Answer {
        document: json(&r, "registry.v1.RebuildProjectionsResponse"),
        items: vec![],
        headers: &["events", "position", "took"],
        rows,
    }
    .print(cx.format);
    Ok(())
}
