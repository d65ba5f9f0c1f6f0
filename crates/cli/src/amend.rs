//! Corrections and retractions. A reason is required; the registry records who amended what,
//! when, why and on what basis, and keeps what it said before (as known before the amendment).
//!
//! Before sending, `regctl` shows what will change (the facts before and after, and for a holding
//! the days on which the answer to "who held the office" changes) and asks for confirmation,
//! unless `--yes`. Without a terminal and without `--yes` it changes nothing.

use std::io::{BufRead, IsTerminal, Write};

use clap::{Args, Subcommand};
use registry_client::{request_id, v1};

use crate::args::{self, name, BasisArgs, CliError};
use crate::output::note;
use crate::write::print_write;
use crate::Context;

/// Why, and on what basis.
#[derive(Args, Clone, Debug)]
pub struct Why {
    /// Why the record is amended (required).
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    basis: BasisArgs,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    yes: bool,
}

impl Why {
    fn amendment(&self) -> Result<v1::Amendment, CliError> {
        let reason = self
            .reason
            .clone()
            .filter(|r| !r.trim().is_empty())
            .ok_or_else(|| {
                CliError::Usage("--reason is required: say why the record is amended".into())
            })?;
        Ok(v1::Amendment {
            reason,
            basis: self.basis.optional()?,
        })
    }

    /// Shows the preview and asks; `Ok` to go on.
    fn confirm(&self, preview: &[String]) -> Result<(), CliError> {
        for line in preview {
            note(line);
        }
        if self.yes {
            return Ok(());
        }
        if !std::io::stdin().is_terminal() {
            return Err(CliError::Declined(
                "not confirmed: run it in a terminal, or add --yes".into(),
            ));
        }
        note("Record this? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if matches!(answer.trim(), "y" | "Y" | "yes") {
            Ok(())
        } else {
            Err(CliError::Declined("not confirmed".into()))
        }
    }
}

/// The facts of a resource as last recorded, read from its history (the registration or
/// creation, then each correction's `after`).
async fn recorded_facts(
    cx: &Context,
    resource: &str,
    created: &str,
    corrected: &str,
) -> Result<serde_json::Value, CliError> {
    let changes = crate::read::all_pages(|page_token| {
        let request = v1::ListResourceHistoryRequest {
            name: resource.to_owned(),
            page_size: 1000,
            page_token,
            ..Default::default()
        };
        let mut client = cx.client.audit();
        async move {
            let response = client.list_resource_history(request).await?.into_inner();
            Ok((response.changes, response.next_page_token))
        }
    })
    .await?;
    let mut facts = serde_json::Value::Null;
    for change in &changes {
        let payload: serde_json::Value =
            serde_json::from_str(&change.payload_json).unwrap_or_default();
        if change.event_type == created {
            facts = payload;
        } else if change.event_type == corrected {
            facts = payload["after"].clone();
        } else if change.event_type == "OfficeAbolished" {
            facts["abolished"] = payload["on"].clone();
        }
    }
    Ok(facts)
}

/// The update mask of a correction: the fields whose value changes.
fn changed(fields: &[(&str, bool)]) -> prost_types::FieldMask {
    prost_types::FieldMask {
        paths: fields
            .iter()
            .filter(|(_, changes)| *changes)
            .map(|(path, _)| (*path).to_owned())
            .collect(),
    }
}

fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn line(field: &str, before: &str, after: &str) -> Option<String> {
    (before != after).then(|| format!("  {field}: {before:?} -> {after:?}"))
}

/// Corrections.
#[derive(Debug, Subcommand)]
pub enum Correct {
    /// Correct a person's registered name or birth date.
    #[command(
        after_help = "Example:\n  regctl correct person persons/0193… --name \"Nguyễn Văn Tú\" --reason \"typing error in the import\""
    )]
    Person {
        /// The person.
        person: String,
        /// The corrected registered name.
        #[arg(long)]
        name: Option<String>,
        /// The corrected birth date.
        #[arg(long, conflicts_with = "no_birth")]
        birth: Option<String>,
        /// The birth date is not known after all.
        #[arg(long)]
        no_birth: bool,
        #[command(flatten)]
        why: Why,
    },
    /// Correct an office's title, kind, capacity or life.
    #[command(
        after_help = "Example:\n  regctl correct office offices/0193… --title \"Chủ tịch UBND xã\" --reason \"title as in the decision\""
    )]
    Office {
        /// The office.
        office: String,
        /// The corrected title.
        #[arg(long)]
        title: Option<String>,
        /// The corrected kind.
        #[arg(long)]
        kind: Option<String>,
        /// The corrected capacity: sole, a number, unbounded.
        #[arg(long)]
        capacity: Option<String>,
        /// The corrected first day.
        #[arg(long)]
        from: Option<String>,
        /// The corrected first day without it.
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        why: Why,
    },
    /// Correct a holding: any fact not given stays as recorded.
    #[command(
        after_help = "Example:\n  regctl correct holding holdings/0193… --from 2020-10-15 --reason \"date of the election, not of the decision\""
    )]
    Holding {
        /// The holding.
        holding: String,
        /// The corrected person.
        #[arg(long)]
        person: Option<String>,
        /// The corrected office.
        #[arg(long)]
        office: Option<String>,
        /// The corrected first day.
        #[arg(long)]
        from: Option<String>,
        /// The corrected first day after it.
        #[arg(long, conflicts_with_all = ["end_unknown", "open"])]
        until: Option<String>,
        /// It ended on a day not known.
        #[arg(long)]
        end_unknown: bool,
        /// It has not ended.
        #[arg(long)]
        open: bool,
        /// How it began.
        #[arg(long)]
        how: Option<String>,
        /// Why it ended.
        #[arg(long)]
        end_reason: Option<String>,
        #[command(flatten)]
        why: Why,
    },
}

impl Correct {
    /// Runs the correction.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        match self {
            Self::Person {
                person,
                name: new_name,
                birth,
                no_birth,
                why,
            } => {
                let amendment = why.amendment()?;
                let person = name("persons", &person);
                let facts =
                    recorded_facts(cx, &person, "PersonRegistered", "PersonCorrected").await?;
                let (old_name, old_birth) = (text(&facts["name"]), text(&facts["birth"]));
                let new_name = new_name.unwrap_or_else(|| old_name.clone());
                let new_birth = match (birth, no_birth) {
                    (Some(b), _) => args::partial_date("--birth", &b)?,
                    (None, true) => String::new(),
                    (None, false) => old_birth.clone(),
                };
                let changes: Vec<String> = [
                    line("name", &old_name, &new_name),
                    line("birth", &old_birth, &new_birth),
                ]
                .into_iter()
                .flatten()
                .collect();
                if changes.is_empty() {
                    return Err(CliError::Usage(
                        "nothing to correct: give --name, --birth or --no-birth with a new value"
                            .into(),
                    ));
                }
                why.confirm(&[vec![format!("correcting {person}:")], changes].concat())?;
                // Only what changes is restated: the rest stays as recorded.
                let paths = changed(&[
                    ("display_name", old_name != new_name),
                    ("birth", old_birth != new_birth),
                ]);
                let request = v1::CorrectPersonRequest {
                    request_id: request_id(),
                    person,
                    display_name: new_name,
                    birth: new_birth,
                    amendment: Some(amendment),
                    update_mask: Some(paths),
                };
                print_write(
                    cx,
                    "corrected",
                    cx.client
                        .admin()
                        .correct_person(request)
                        .await?
                        .into_inner()
                        .result,
                )
            }
            Self::Office {
                office,
                title,
                kind,
                capacity,
                from,
                until,
                why,
            } => {
                let amendment = why.amendment()?;
                let office = name("offices", &office);
                let facts = recorded_facts(cx, &office, "OfficeCreated", "OfficeCorrected").await?;
                let old = (
                    text(&facts["title"]),
                    text(&facts["kind"]),
                    text(&facts["capacity"]["kind"]),
                    text(&facts["capacity"]["limit"]),
                    text(facts.get("established").unwrap_or(&facts["on"])),
                    text(&facts["abolished"]),
                );
                let old_capacity = if old.3.is_empty() {
                    old.2.clone()
                } else {
                    old.3.clone()
                };
                let new_title = title.unwrap_or_else(|| old.0.clone());
                let new_kind = kind.unwrap_or_else(|| old.1.clone());
                let new_capacity = capacity.unwrap_or_else(|| old_capacity.clone());
                let new_from = from
                    .map(|f| args::date("--from", &f))
                    .transpose()?
                    .unwrap_or_else(|| old.4.clone());
                let new_until = until
                    .map(|u| args::date("--until", &u))
                    .transpose()?
                    .unwrap_or_else(|| old.5.clone());
                let changes: Vec<String> = [
                    line("title", &old.0, &new_title),
                    line("kind", &old.1, &new_kind),
                    line("capacity", &old_capacity, &new_capacity),
                    line("from", &old.4, &new_from),
                    line("until", &old.5, &new_until),
                ]
                .into_iter()
                .flatten()
                .collect();
                if changes.is_empty() {
                    return Err(CliError::Usage(
                        "nothing to correct: give a new value".into(),
                    ));
                }
                why.confirm(&[vec![format!("correcting {office}:")], changes].concat())?;
                let paths = changed(&[
                    ("title", old.0 != new_title),
                    ("kind", old.1 != new_kind),
                    ("capacity", old_capacity != new_capacity),
                    ("valid_from", old.4 != new_from),
                    ("valid_until", old.5 != new_until),
                ]);
                let request = v1::CorrectOfficeRequest {
                    request_id: request_id(),
                    office,
                    title: new_title,
                    kind: args::office_kind("--kind", &new_kind.replace('_', "-"))?,
                    capacity: Some(args::capacity(&new_capacity)?),
                    valid_from: new_from,
                    valid_until: new_until,
                    amendment: Some(amendment),
                    update_mask: Some(paths),
                };
                print_write(
                    cx,
                    "corrected",
                    cx.client
                        .admin()
                        .correct_office(request)
                        .await?
                        .into_inner()
                        .result,
                )
            }
            Self::Holding {
                holding,
                person,
                office,
                from,
                until,
                end_unknown,
                open,
                how,
                end_reason,
                why,
            } => {
                let amendment = why.amendment()?;
                let holding = name("holdings", &holding);
                let current = cx
                    .client
                    .query()
                    .get_holding(v1::GetHoldingRequest {
                        name: holding.clone(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner()
                    .holding
                    .ok_or_else(|| CliError::NotFound(holding.clone()))?;
                let mut after = current.clone();
                if let Some(p) = person {
                    after.person = name("persons", &p);
                }
                if let Some(o) = office {
                    after.office = name("offices", &o);
                }
                if let Some(f) = from {
                    after.start = args::partial_date("--from", &f)?;
                }
                if let Some(u) = until {
                    after.end = args::partial_date("--until", &u)?;
                    after.end_unknown = false;
                }
                if end_unknown {
                    after.end = String::new();
                    after.end_unknown = true;
                }
                if open {
                    after.end = String::new();
                    after.end_unknown = false;
                    after.end_reason = 0;
                }
                if let Some(h) = how {
                    after.beginning = args::beginning("--how", &h)?;
                }
                if let Some(r) = end_reason {
                    after.end_reason = args::end_reason("--end-reason", &r)?;
                }
                let show_end = |h: &v1::Holding| {
                    if h.end_unknown {
                        "unknown".to_owned()
                    } else {
                        h.end.clone()
                    }
                };
                let mut preview = vec![format!(
                    "correcting {holding} ({} as {}):",
                    current.person_display_name, current.office_title
                )];
                preview.extend(
                    [
                        line("person", &current.person, &after.person),
                        line("office", &current.office, &after.office),
                        line("from", &current.start, &after.start),
                        line("until", &show_end(&current), &show_end(&after)),
                        line(
                            "how",
                            &current.beginning.to_string(),
                            &after.beginning.to_string(),
                        ),
                        line(
                            "end reason",
                            &current.end_reason.to_string(),
                            &after.end_reason.to_string(),
                        ),
                    ]
                    .into_iter()
                    .flatten(),
                );
                if preview.len() == 1 {
                    return Err(CliError::Usage(
                        "nothing to correct: give a new value".into(),
                    ));
                }
                preview.extend(coverage_change(&current, &after));
                why.confirm(&preview)?;
                let paths = changed(&[
                    ("person", current.person != after.person),
                    ("office", current.office != after.office),
                    ("valid_from", current.start != after.start),
                    (
                        "valid_until",
                        (&current.end, current.end_unknown) != (&after.end, after.end_unknown),
                    ),
                    ("end_unknown", current.end_unknown != after.end_unknown),
                    ("beginning", current.beginning != after.beginning),
                    ("end_reason", current.end_reason != after.end_reason),
                ]);
                let request = v1::CorrectHoldingRequest {
                    request_id: request_id(),
                    update_mask: Some(paths),
                    holding,
                    person: after.person,
                    office: after.office,
                    valid_from: after.start,
                    valid_until: after.end,
                    end_unknown: after.end_unknown,
                    beginning: after.beginning,
                    cause: after.cause,
                    end_reason: after.end_reason,
                    term: after.term,
                    basis: after.basis,
                    amendment: Some(amendment),
                };
                print_write(
                    cx,
                    "corrected",
                    cx.client
                        .admin()
                        .correct_holding(request)
                        .await?
                        .into_inner()
                        .result,
                )
            }
        }
    }
}

/// The days on which "who held the office" changes, from the change of a holding's dates.
fn coverage_change(before: &v1::Holding, after: &v1::Holding) -> Vec<String> {
    let end = |h: &v1::Holding| {
        if h.end.is_empty() {
            "open".to_owned()
        } else {
            h.end.clone()
        }
    };
    if before.start == after.start
        && end(before) == end(after)
        && before.office == after.office
        && before.person == after.person
    {
        return Vec::new();
    }
    vec![
        format!("  answers to who-held {} change for the days of [{}, {}) and [{}, {}) that the two do not share", before.office, before.start, end(before), after.start, end(after)),
    ]
}

/// Retract a record entered in error.
#[derive(Args, Debug)]
pub struct Retract {
    /// The record: persons/…, units/…, offices/…, holdings/…, models/…, adoptions/…, terms/….
    resource: String,
    #[command(flatten)]
    why: Why,
}

impl Retract {
    /// Runs the retraction.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        let amendment = self.why.amendment()?;
        let history = cx
            .client
            .audit()
            .list_resource_history(v1::ListResourceHistoryRequest {
                name: self.resource.clone(),
                page_size: 1,
                ..Default::default()
            })
            .await?
            .into_inner();
        let first = history
            .changes
            .first()
            .map(|c| {
                format!(
                    "  recorded {} by {} as {}",
                    c.event_type, c.actor, c.payload_json
                )
            })
            .unwrap_or_default();
        self.why.confirm(&[
            format!("retracting {}: the registry will no longer answer with it (it stays readable as known before now)", self.resource),
            first,
        ])?;
        let request = v1::RetractRecordRequest {
            request_id: request_id(),
            name: self.resource,
            amendment: Some(amendment),
        };
        print_write(
            cx,
            "retracted",
            cx.client
                .admin()
                .retract_record(request)
                .await?
                .into_inner()
                .result,
        )
    }
}
