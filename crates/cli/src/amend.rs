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
use crate::output::print_write;
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
                    person: after.person.clone(),
                    office: after.office.clone(),
                    valid_from: after.start.clone(),
                    valid_until: after.end.clone(),
                    end_unknown: after.end_unknown,
                    beginning: after.beginning,
                    cause: after.cause.clone(),
                    end_reason: after.end_reason,
                    term: after.term.clone(),
                    basis: after.basis.clone(),
                    amendment: Some(amendment),
                    validate_only: true,
                };
                // Asked first without recording: a correction the registry would refuse stops
                // here, and the flags it raises and clears are known.
                let dry = cx
                    .client
                    .admin()
                    .correct_holding(request.clone())
                    .await?
                    .into_inner();
                preview.extend(days_that_change(cx, &current, &after).await?);
                preview.extend(flag_changes(
                    &dry.flags_now,
                    &dry.result.map(|r| r.warnings).unwrap_or_default(),
                ));
                why.confirm(&preview)?;
                let request = v1::CorrectHoldingRequest {
                    validate_only: false,
                    ..request
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

/// The days a holding surely covers, from its API form (`None` when its dates do not read).
fn covered(h: &v1::Holding) -> Option<registry_domain::Span> {
    let start: registry_domain::PartialDate = h.start.parse().ok()?;
    let end = if h.end_unknown {
        registry_domain::HoldingEnd::Unknown
    } else if h.end.is_empty() {
        registry_domain::HoldingEnd::Open
    } else {
        registry_domain::HoldingEnd::On(h.end.parse().ok()?)
    };
    Some(registry_domain::state::holding_span(start, end))
}

/// The stretches of days on which a holding covered one of two spans and not the other:
/// `(first day, first day after or None, covered before)`.
fn differing(
    before: Option<registry_domain::Span>,
    after: Option<registry_domain::Span>,
) -> Vec<(registry_domain::Date, Option<registry_domain::Date>, bool)> {
    let mut points: Vec<registry_domain::Date> = [before, after]
        .into_iter()
        .flatten()
        .flat_map(|s| [Some(s.start), s.end])
        .flatten()
        .collect();
    points.sort_unstable();
    points.dedup();
    let covers = |s: Option<registry_domain::Span>, day| s.is_some_and(|s| s.contains(day));
    let mut out: Vec<(registry_domain::Date, Option<registry_domain::Date>, bool)> = Vec::new();
    for (i, day) in points.iter().enumerate() {
        let (b, a) = (covers(before, *day), covers(after, *day));
        if b != a {
            out.push((*day, points.get(i + 1).copied(), b));
        }
    }
    out
}

/// What a registrar must know of a holding's correction besides its facts: the days on which
/// "who held the office" changes, who held it on them before and who after (a vacancy opening,
/// a predecessor whose end stays where it is).
async fn days_that_change(
    cx: &Context,
    before: &v1::Holding,
    after: &v1::Holding,
) -> Result<Vec<String>, CliError> {
    let mut lines = Vec::new();
    let offices: Vec<(
        &str,
        Option<registry_domain::Span>,
        Option<registry_domain::Span>,
    )> = if before.office == after.office {
        vec![(before.office.as_str(), covered(before), covered(after))]
    } else {
        vec![
            (before.office.as_str(), covered(before), None),
            (after.office.as_str(), None, covered(after)),
        ]
    };
    let who = |holders: &[v1::Holding]| {
        if holders.is_empty() {
            "vacant".to_owned()
        } else {
            holders
                .iter()
                .map(|h| format!("{} ({})", h.person_display_name, h.name))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    for (office, span_before, span_after) in offices {
        for (from, until, covered_before) in differing(span_before, span_after) {
            let holders = cx
                .client
                .query()
                .get_office_holders(v1::GetOfficeHoldersRequest {
                    office: office.to_owned(),
                    date: from.to_string(),
                    ..Default::default()
                })
                .await?
                .into_inner()
                .holdings;
            let mut now: Vec<v1::Holding> = holders
                .iter()
                .filter(|h| h.name != before.name)
                .cloned()
                .collect();
            if !covered_before {
                now.push(after.clone());
            }
            let days = match until {
                Some(until) => format!("{from} to {}", until.previous_day()),
                None => format!("from {from} on"),
            };
            lines.push(format!(
                "  who held {office} {days}: before: {}; after: {}",
                who(&holders),
                who(&now)
            ));
            // A predecessor whose holding ended where this one began keeps its end.
            if covered_before && now.is_empty() {
                let previous = cx
                    .client
                    .query()
                    .get_office_holders(v1::GetOfficeHoldersRequest {
                        office: office.to_owned(),
                        date: from.previous_day().to_string(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner()
                    .holdings;
                for p in previous.iter().filter(|p| p.end == from.to_string()) {
                    lines.push(format!(
                        "    a vacancy opens: {} ({}) ended on {from}, and that end stays where it is",
                        p.person_display_name, p.name
                    ));
                }
            }
        }
    }
    Ok(lines)
}

/// The flags a correction raises, changes and clears: the holding's flags after it against
/// now, a flag being the same one when it has the same kind and subjects.
fn flag_changes(now: &[v1::Irregularity], after: &[v1::Irregularity]) -> Vec<String> {
    let same =
        |a: &v1::Irregularity, b: &v1::Irregularity| a.kind == b.kind && a.subjects == b.subjects;
    let mut lines = Vec::new();
    for flag in after {
        match now.iter().find(|f| same(f, flag)) {
            None => lines.push(format!("  raises {}: {}", flag.kind, flag.description)),
            Some(was) if was.description != flag.description => lines.push(format!(
                "  changes {}: {} (was: {})",
                flag.kind, flag.description, was.description
            )),
            Some(_) => {}
        }
    }
    for flag in now.iter().filter(|f| !after.iter().any(|a| same(a, f))) {
        lines.push(format!("  clears {}: {}", flag.kind, flag.description));
    }
    lines
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
