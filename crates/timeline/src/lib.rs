//! Timelines drawn as SVG (by the auditors' pages and `regctl timeline`): holdings as bars along the years, so that thirty years
//! of holders, their gaps and overlaps, can be seen at a glance, printed, and tested as text.
//!
//! Pure: rows of bars in, SVG text out. Bars that overlap in one row are put on lanes of their
//! own; days known only to a month or a year, and ends the registry does not know, are drawn
//! faded (`uncertain`); concurrent and ex officio holdings are marked.

use std::fmt::Write as _;

use registry_domain::{Date, HoldingEnd, PartialDate, Precision};

/// One bar: a holding.
#[derive(Clone, Debug)]
pub struct Bar {
    /// The text on the bar (a holder's name, or an office's title).
    pub label: String,
    /// What a pointer over it shows: dates, how it began and ended, its basis.
    pub detail: String,
    /// Where the bar links to.
    pub href: String,
    /// The first day it surely covers, and the first day it may cover (earlier when the start is
    /// known only to a month or a year).
    pub sure_from: Date,
    /// The first day it may cover.
    pub may_from: Date,
    /// The first day after it surely ended; `None` while it lasts.
    pub sure_until: Option<Date>,
    /// The first day after the last day it may cover; `None` while it lasts or when the end
    /// is not known.
    pub may_until: Option<Date>,
    /// It ended on a day the registry does not know.
    pub end_unknown: bool,
    /// Held concurrently or ex officio, because of another holding.
    pub concurrent: bool,
    /// Corrected or retracted since the instant the drawing shows (outlined).
    pub changed: bool,
    /// Irregularities flagged for auditors (a marker at its end, and in its detail).
    pub flags: Vec<&'static str>,
}

impl Bar {
    /// A holding from `start` until `end`: surely held from the last day its start may be,
    /// possibly from the first; an end known to a month or a year leaves the days between its
    /// earliest and latest possible, and an unknown end the days after the first (faded).
    pub fn holding(
        label: String,
        detail: String,
        href: String,
        start: PartialDate,
        end: HoldingEnd,
        concurrent: bool,
    ) -> Self {
        let (sure_until, may_until, end_unknown) = match end {
            HoldingEnd::Open => (None, None, false),
            HoldingEnd::Unknown => (Some(start.latest().next_day()), None, true),
            HoldingEnd::On(day) => (Some(day.earliest()), Some(day.latest()), false),
        };
        Self {
            label,
            detail,
            href,
            sure_from: start.latest(),
            may_from: start.earliest(),
            sure_until,
            may_until,
            end_unknown,
            concurrent,
            changed: false,
            flags: Vec::new(),
        }
    }
}

/// `dd/mm/yyyy`, `mm/yyyy` or `yyyy`, as Vietnamese readers write a day known that well.
pub fn shown(day: PartialDate) -> String {
    let d = day.earliest();
    match day.precision() {
        Precision::Day => format!("{:02}/{:02}/{}", d.day(), d.month(), d.year()),
        Precision::Month => format!("{:02}/{}", d.month(), d.year()),
        Precision::Year => d.year().to_string(),
    }
}

/// One row of the timeline (an office, or all of one office's holdings).
#[derive(Clone, Debug, Default)]
pub struct Row {
    /// Its name, left of the bars.
    pub label: String,
    /// Its bars.
    pub bars: Vec<Bar>,
    /// Flags on days of the row rather than of a bar (a long vacancy: ⚠ in the gap).
    pub marks: Vec<(Date, String)>,
}

/// The drawing's own style, so that a file (`regctl timeline`) looks as the page does.
const STYLE: &str =
    "<style>text{font-family:'Noto Sans','DejaVu Sans',Arial,sans-serif;font-size:12px}\
text.year{fill:#555}line.year{stroke:#ddd}line.row{stroke:#999}rect.bar{fill:#2f5d8a}\
rect.bar.concurrent{fill:#8a5a2f}rect.changed{stroke:#c00;stroke-width:2;stroke-dasharray:4 2}rect.uncertain{fill:#2f5d8a;opacity:.3}\
text.label,text.mark{fill:#fff}text.flag{fill:#f0b400;font-weight:bold}text.vacancy{fill:#c00;font-weight:bold}a:focus rect,a:hover rect{stroke:#f0b400;stroke-width:2}</style>";

const WIDTH: f64 = 960.0;
const LABEL: f64 = 200.0;
const LANE: f64 = 24.0;
const AXIS: f64 = 28.0;

/// The SVG of `rows` from `from` to `until` (exclusive), with `title` as its text alternative.
pub fn svg(title: &str, rows: &[Row], from: Date, until: Date) -> String {
    let days = from.days_until(until).max(1) as f64;
    let x = |day: Date| {
        LABEL + (from.days_until(day).clamp(0, days as i64) as f64) * (WIDTH - LABEL) / days
    };
    // Each row's bars on lanes: a bar goes on the first lane free at its start.
    let laid: Vec<Vec<Vec<&Bar>>> = rows.iter().map(|row| lanes(&row.bars, until)).collect();
    let height = AXIS
        + laid
            .iter()
            .map(|l| l.len().max(1) as f64 * LANE + 6.0)
            .sum::<f64>();
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="timeline" role="img" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}"><title>{}</title>"#,
        escape(title)
    );
    out.push_str(STYLE);
    // Years along the top, a line every year (every fifth labelled when there are many).
    let years = until.year() - from.year();
    let step = if years > 40 {
        10
    } else if years > 12 {
        5
    } else {
        1
    };
    for year in from.year()..=until.year() {
        let Ok(day) = Date::from_ymd(year, 1, 1) else {
            continue;
        };
        if day < from || day >= until {
            continue;
        }
        let left = x(day);
        let _ = write!(
            out,
            r#"<line class="year" x1="{left:.1}" y1="{AXIS}" x2="{left:.1}" y2="{height}"/>"#
        );
        if year % step == 0 {
            let _ = write!(
                out,
                r#"<text class="year" x="{left:.1}" y="18">{year}</text>"#
            );
        }
    }
    let mut top = AXIS;
    for (row, lanes) in rows.iter().zip(&laid) {
        let _ = write!(
            out,
            r#"<text class="row" x="4" y="{:.1}">{}</text>"#,
            top + 16.0,
            escape(&shorten(&row.label, 30))
        );
        for (lane, bars) in lanes.iter().enumerate() {
            let y = top + lane as f64 * LANE + 3.0;
            for bar in bars {
                let sure_end = bar.sure_until.unwrap_or(until).min(until);
                let may_end = match (bar.sure_until, bar.end_unknown) {
                    (_, true) => until,
                    (Some(_), false) => bar.may_until.unwrap_or(sure_end).min(until),
                    (None, false) => until,
                };
                let class = match (bar.concurrent, bar.changed) {
                    (false, false) => "bar",
                    (true, false) => "bar concurrent",
                    (false, true) => "bar changed",
                    (true, true) => "bar concurrent changed",
                };
                let _ = write!(
                    out,
                    r#"<a href="{}"><g><title>{}</title>"#,
                    escape(&bar.href),
                    escape(&bar.detail)
                );
                // Faded where it only may have been held: before a partial start, after a
                // partial or unknown end.
                if bar.may_from < bar.sure_from {
                    rect(&mut out, "uncertain", x(bar.may_from), x(bar.sure_from), y);
                }
                if may_end > sure_end {
                    rect(&mut out, "uncertain", x(sure_end), x(may_end), y);
                }
                let (left, right) = (x(bar.sure_from), x(sure_end));
                rect(&mut out, class, left, right, y);
                if bar.concurrent {
                    let _ = write!(
                        out,
                        r#"<text class="mark" x="{:.1}" y="{:.1}">◆</text>"#,
                        left + 2.0,
                        y + 13.0
                    );
                }
                if !bar.flags.is_empty() {
                    let _ = write!(
                        out,
                        r#"<text class="flag" x="{:.1}" y="{:.1}"><title>{}</title>⚠</text>"#,
                        (right - 12.0).max(left),
                        y + 13.0,
                        escape(&bar.flags.join("; "))
                    );
                }
                let room = ((right - left) / 7.5) as usize;
                if room >= 4 {
                    let _ = write!(
                        out,
                        r#"<text class="label" x="{:.1}" y="{:.1}">{}</text>"#,
                        left + if bar.concurrent { 14.0 } else { 4.0 },
                        y + 13.0,
                        escape(&shorten(&bar.label, room))
                    );
                }
                out.push_str("</g></a>");
            }
        }
        for (day, what) in &row.marks {
            let _ = write!(
                out,
                r#"<text class="vacancy" x="{:.1}" y="{:.1}"><title>{}</title>⚠</text>"#,
                x(*day) - 5.0,
                top + 16.0,
                escape(what)
            );
        }
        top += lanes.len().max(1) as f64 * LANE + 6.0;
        let _ = write!(
            out,
            r#"<line class="row" x1="0" y1="{top:.1}" x2="{WIDTH}" y2="{top:.1}"/>"#
        );
    }
    out.push_str("</svg>");
    out
}

fn rect(out: &mut String, class: &str, left: f64, right: f64, y: f64) {
    let _ = write!(
        out,
        r#"<rect class="{class}" x="{left:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" rx="3"/>"#,
        (right - left).max(2.0),
        LANE - 6.0
    );
}

/// `bars` on lanes, first come first placed: a lane takes a bar that starts on or after the
/// day its last bar may end.
fn lanes(bars: &[Bar], until: Date) -> Vec<Vec<&Bar>> {
    let mut sorted: Vec<&Bar> = bars.iter().collect();
    sorted.sort_by_key(|b| (b.may_from, b.sure_from));
    let mut lanes: Vec<(Date, Vec<&Bar>)> = Vec::new();
    for bar in sorted {
        let end = if bar.end_unknown {
            until
        } else {
            bar.may_until.or(bar.sure_until).unwrap_or(until)
        };
        match lanes.iter_mut().find(|(free, _)| *free <= bar.may_from) {
            Some((free, lane)) => {
                *free = end;
                lane.push(bar);
            }
            None => lanes.push((end, vec![bar])),
        }
    }
    lanes.into_iter().map(|(_, lane)| lane).collect()
}

/// At most `chars` characters of `text`, with an ellipsis when cut.
fn shorten(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Text for XML: `&`, `<`, `>`, quotes escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> Date {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn bar(label: &str, from: &str, until: Option<&str>) -> Bar {
        Bar {
            label: label.into(),
            detail: format!("{label} detail"),
            href: "/ui/persons/x".into(),
            sure_from: day(from),
            may_from: day(from),
            sure_until: until.map(day),
            may_until: until.map(day),
            end_unknown: false,
            concurrent: false,
            changed: false,
            flags: Vec::new(),
        }
    }

    #[test]
    fn holders_one_after_another_share_a_lane_and_overlaps_get_their_own() {
        let bars = [
            bar("A", "2000-01-01", Some("2005-01-01")),
            bar("B", "2005-01-01", Some("2010-01-01")),
            bar("C", "2004-06-01", None),
        ];
        let laid = lanes(&bars, day("2026-01-01"));
        let labels: Vec<Vec<&str>> = laid
            .iter()
            .map(|l| l.iter().map(|b| b.label.as_str()).collect())
            .collect();
        assert_eq!(labels, vec![vec!["A", "B"], vec!["C"]]);
    }

    #[test]
    fn names_are_escaped_and_uncertain_days_faded() {
        let mut partial = bar("<script>alert(1)</script>", "2000-01-01", None);
        partial.may_from = day("1999-01-01");
        let rows = [Row {
            label: "Bí thư & \"Chủ tịch\"".into(),
            bars: vec![partial],
            marks: vec![(day("2005-01-01"), "<b>".into())],
        }];
        let svg = svg("t", &rows, day("1998-01-01"), day("2010-01-01"));
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"), "{svg}");
        assert!(svg.contains("Bí thư &amp; &quot;Chủ tịch&quot;"), "{svg}");
        assert!(svg.contains(r#"class="uncertain""#), "{svg}");
        assert!(svg.contains(">2000</text>"), "{svg}");
        assert!(
            svg.contains(r#"class="vacancy""#) && svg.contains("&lt;b&gt;"),
            "{svg}"
        );
    }

    #[test]
    fn a_gap_is_empty_space_between_bars() {
        let rows = [Row {
            label: "Office".into(),
            bars: vec![
                bar("A", "2000-01-01", Some("2002-01-01")),
                bar("B", "2004-01-01", Some("2006-01-01")),
            ],
            marks: Vec::new(),
        }];
        let svg = svg("t", &rows, day("2000-01-01"), day("2006-01-01"));
        // Two bars on one lane: A ends a third of the way, B starts two thirds of the way.
        let xs: Vec<f64> = svg
            .match_indices(r#"<rect class="bar" x=""#)
            .map(|(i, m)| {
                let rest = &svg[i + m.len()..];
                rest[..rest.find('"').unwrap_or(0)].parse().unwrap_or(-1.0)
            })
            .collect();
        assert_eq!(xs.len(), 2, "{svg}");
        assert!(xs[1] - xs[0] > 2.0 * (WIDTH - LABEL) / 3.0 - 1.0, "{xs:?}");
    }
}
