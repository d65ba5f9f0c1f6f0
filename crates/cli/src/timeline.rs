//! `regctl timeline`: an office's holders, or a person's offices, drawn as SVG as the auditors'
//! pages draw them (`registry_timeline`), from the query service's answers, to a file to print
//! or attach to a report.

use std::path::PathBuf;

use clap::Args;
use registry_client::v1;
use registry_domain::{Date, HoldingEnd, PartialDate};
use registry_timeline::{shown, svg, Bar, Row};

use crate::args::{self, CliError};
use crate::context::Context;
use crate::read::all_pages;

/// Draw an office's holders or a person's offices along the years.
#[derive(Args, Debug)]
pub struct Timeline {
    /// `offices/{uuid}` or `persons/{uuid}`.
    name: String,
    /// Write the SVG to this file [default: standard output]. (`-o` is every command's output
    /// format.)
    #[arg(long = "svg", value_name = "FILE")]
    out: Option<PathBuf>,
    /// As known at this recorded instant (RFC 3339).
    #[arg(long)]
    known_at: Option<String>,
    /// The axis's first year [default: the first holding's].
    #[arg(long)]
    from: Option<i32>,
    /// The year after the axis's last [default: next year].
    #[arg(long)]
    to: Option<i32>,
}

fn partial(field: &str, text: &str) -> Result<PartialDate, CliError> {
    text.parse()
        .map_err(|e| CliError::Invalid(format!("{field} {text:?} from the server: {e}")))
}

/// A holding from the API as a bar labelled `label`.
fn bar(h: &v1::Holding, label: String) -> Result<Bar, CliError> {
    let start = partial("start", &h.start)?;
    let end = match (h.end.as_str(), h.end_unknown) {
        (_, true) => HoldingEnd::Unknown,
        ("", false) => HoldingEnd::Open,
        (end, false) => HoldingEnd::On(partial("end", end)?),
    };
    let until = match end {
        HoldingEnd::Open => "đang giữ".to_owned(),
        HoldingEnd::Unknown => "chưa rõ".to_owned(),
        HoldingEnd::On(day) => shown(day),
    };
    let mut detail = format!("{label}: {} – {until}", shown(start));
    let concurrent = !h.cause.is_empty();
    // The flags a holding raises by itself, as the pages mark them.
    let mut flags = Vec::new();
    if h.basis.is_none() {
        flags.push("Thiếu căn cứ pháp lý");
    }
    if h.end_unknown {
        flags.push("Ngày thôi chưa rõ");
    }
    if !flags.is_empty() {
        detail = format!("{detail}; ⚠ {}", flags.join("; "));
    }
    let mut bar = Bar::holding(label, detail, h.name.clone(), start, end, concurrent);
    bar.flags = flags;
    Ok(bar)
}

impl Timeline {
    /// Runs it.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        let known_at = args::opt_instant("--known-at", self.known_at.as_deref())?;
        let (title, rows) = if self.name.starts_with("offices/") {
            let holdings = all_pages(|page_token| {
                let request = v1::ListOfficeHistoryRequest {
                    office: self.name.clone(),
                    known_at,
                    page_size: 1000,
                    page_token,
                    ..Default::default()
                };
                let client = cx.client.clone();
                async move {
                    let r = client
                        .query()
                        .list_office_history(request)
                        .await?
                        .into_inner();
                    Ok((r.holdings, r.next_page_token))
                }
            })
            .await?;
            let title = holdings
                .first()
                .map_or_else(|| self.name.clone(), |h| h.office_title.clone());
            let bars = holdings
                .iter()
                .map(|h| bar(h, h.person_display_name.clone()))
                .collect::<Result<Vec<_>, _>>()?;
            (
                title.clone(),
                vec![Row {
                    label: title,
                    bars,
                    marks: Vec::new(),
                }],
            )
        } else if self.name.starts_with("persons/") {
            let holdings = all_pages(|page_token| {
                let request = v1::ListPersonCareerRequest {
                    person: self.name.clone(),
                    known_at,
                    page_size: 1000,
                    page_token,
                    ..Default::default()
                };
                let client = cx.client.clone();
                async move {
                    let r = client
                        .query()
                        .list_person_career(request)
                        .await?
                        .into_inner();
                    Ok((r.holdings, r.next_page_token))
                }
            })
            .await?;
            let title = holdings
                .first()
                .map_or_else(|| self.name.clone(), |h| h.person_display_name.clone());
            let mut rows: Vec<Row> = Vec::new();
            for h in &holdings {
                let bar = bar(h, h.office_title.clone())?;
                match rows.iter_mut().find(|r| r.label == h.office_title) {
                    Some(row) => row.bars.push(bar),
                    None => rows.push(Row {
                        label: h.office_title.clone(),
                        bars: vec![bar],
                        marks: Vec::new(),
                    }),
                }
            }
            (title, rows)
        } else {
            return Err(CliError::Usage(format!(
                "{:?} is neither offices/{{uuid}} nor persons/{{uuid}}",
                self.name.chars().take(100).collect::<String>()
            )));
        };
        let (from, until) = self.axis(&rows)?;
        let drawn = svg(&format!("{title} theo thời gian"), &rows, from, until);
        match &self.out {
            Some(path) => std::fs::write(path, drawn)
                .map_err(|e| CliError::Io(format!("{}: {e}", path.display())))?,
            None => println!("{drawn}"),
        }
        Ok(())
    }

    /// The years asked for, else from the first bar's to next year.
    fn axis(&self, rows: &[Row]) -> Result<(Date, Date), CliError> {
        let this_year = time::OffsetDateTime::now_utc().year();
        let first = rows
            .iter()
            .flat_map(|r| &r.bars)
            .map(|b| b.may_from.year())
            .min()
            .unwrap_or(this_year);
        let from = self.from.unwrap_or(first);
        let to = self.to.unwrap_or(this_year + 1);
        if !(1900..=2200).contains(&from) || !(1900..=2200).contains(&to) || to <= from {
            return Err(CliError::Usage(format!(
                "--from {from} and --to {to} must be years from 1900 to 2200, --to after --from"
            )));
        }
        let year = |y| Date::from_ymd(y, 1, 1).map_err(|e| CliError::Usage(e.to_string()));
        Ok((year(from)?, year(to)?))
    }
}
