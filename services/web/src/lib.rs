//! The auditors' view: pages a browser opens on the registry's own port (`/ui/...`), drawn on
//! the server as HTML and SVG from the replica's read models, so that they work without
//! JavaScript, print, and can be tested as text.
//!
//! - `/ui/offices/{uuid}`: an office's holders as bars along the years (gaps as gaps, uncertain
//!   days faded, concurrent holdings marked), with the facts in a table under the picture;
//! - `/ui/persons/{uuid}`: a person's career, one row per office on one time axis;
//! - `/ui/units/{uuid}?date=`: a unit's lineage (what it continues and what continues it,
//!   through mergers and splits, as bars of their lives) and, on the day, its parents, offices
//!   and tree;
//! - `/ui/models/{uuid}?date=&level=&jurisdiction=`: how many units of each province apply a
//!   pilot model on a day, as declared and as observed, and, for one province, which (those
//!   only declared or only observed are the gaps an inspector follows up);
//! - `/ui/search?q=`: persons by name, diacritics optional.
//!
//! Every page takes `known_at` (the registry as it stood at that recorded instant, UTC; what
//! has been corrected or retracted since is marked, what was recorded since counted), and
//! `from`/`to` years for the axis; its URL names all it shows, so an auditor can cite it. The
//! access layer in front of the server decides these routes as `read`, as it does the query
//! service. Names are escaped (askama's templates, [`registry_timeline::escape`] in the SVG).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use registry_domain::{
    Beginning, Date, EndReason, HoldingEnd, OfficeId, PartialDate, PersonId, UnitId,
};
use registry_projections::{HoldingView, Instant, Projection};
use registry_service_core::Reader;
use serde::Deserialize;

use registry_timeline as timeline;
use timeline::{shown, Bar, Row};

/// The routes of the view, over the replica `reader`.
pub fn router(reader: Reader) -> axum::Router {
    axum::Router::new()
        .route("/ui", get(home))
        .route("/ui/search", get(search))
        .route("/ui/offices/{id}", get(office))
        .route("/ui/persons/{id}", get(person))
        .route("/ui/units/{id}", get(unit))
        .route("/ui/models", get(models))
        .route("/ui/models/{id}", get(coverage))
        .route("/ui/static/app.css", get(stylesheet))
        .with_state(reader)
}

/// `routes` with the view's routes beside them, on the same server and port.
pub fn beside(routes: tonic::service::Routes, reader: Reader) -> tonic::service::Routes {
    tonic::service::Routes::from(routes.into_axum_router().merge(router(reader)))
}

/// The resource `collection/{id}` of a page's path, or a refusal naming `field`.
fn id_of<T: std::str::FromStr>(field: &str, collection: &str, id: &str) -> Result<T, Refused> {
    format!("{collection}/{id}").parse().map_err(|_| {
        let shown: String = id.chars().take(100).collect();
        Refused::bad(field, format!("{shown:?} is not a UUID"))
    })
}

/// What a page was asked that it cannot show: the HTTP status and a sentence.
#[derive(Debug)]
pub struct Refused(StatusCode, String);

impl Refused {
    fn bad(field: &str, problem: impl std::fmt::Display) -> Self {
        Self(StatusCode::BAD_REQUEST, format!("{field}: {problem}"))
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            title: self.0.canonical_reason().unwrap_or("Lỗi").to_owned(),
            query: String::new(),
            message: self.1,
        };
        (self.0, html(&page)).into_response()
    }
}

fn render<T: Template>(page: &T) -> String {
    page.render()
        .unwrap_or_else(|e| format!("the page could not be drawn: {e}"))
}

fn html<T: Template>(page: &T) -> Html<String> {
    Html(render(page))
}

/// The query of a view: as known at an instant, and the years the axis spans.
#[derive(Debug, Default, Deserialize)]
pub struct View {
    /// The recorded instant (RFC 3339, or `yyyy-mm-ddThh:mm[:ss]` in UTC); now when absent.
    pub known_at: Option<String>,
    /// The axis's first year; the first holding's when absent.
    pub from: Option<String>,
    /// The year after the axis's last; next year when absent.
    pub to: Option<String>,
    /// The day a unit's page shows (`yyyy-mm-dd`); today when absent.
    pub date: Option<String>,
}

impl View {
    /// The instant, in microseconds since the epoch, from RFC 3339 or a browser's
    /// `datetime-local` value (read as UTC).
    fn instant(&self) -> Result<Option<Instant>, Refused> {
        let Some(text) = self.known_at.as_deref().filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        let shown: String = text.chars().take(100).collect();
        let bad = || {
            Refused::bad(
                "known_at",
                format!("{shown:?} is not an instant such as 2025-07-01T08:00:00Z"),
            )
        };
        let parsed =
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .or_else(|_| {
                    let local = time::macros::format_description!(
                        version = 2,
                        "[year]-[month]-[day]T[hour]:[minute][optional [:[second]]]"
                    );
                    time::PrimitiveDateTime::parse(text, local)
                        .map(time::PrimitiveDateTime::assume_utc)
                })
                .map_err(|_| bad())?;
        Ok(Some((parsed.unix_timestamp_nanos() / 1000) as Instant))
    }

    /// The day asked for (`date`), if any.
    fn day(&self) -> Result<Option<Date>, Refused> {
        let Some(text) = self.date.as_deref().filter(|d| !d.is_empty()) else {
            return Ok(None);
        };
        text.parse().map(Some).map_err(|_| {
            let shown: String = text.chars().take(100).collect();
            Refused::bad("date", format!("{shown:?} is not a day such as 2025-07-01"))
        })
    }

    fn year(field: &str, text: Option<&str>) -> Result<Option<i32>, Refused> {
        let Some(text) = text.filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        match text.parse::<i32>() {
            Ok(year) if (1900..=2200).contains(&year) => Ok(Some(year)),
            _ => Err(Refused::bad(
                field,
                format!(
                    "{:?} is not a year from 1900 to 2200",
                    text.chars().take(20).collect::<String>()
                ),
            )),
        }
    }

    /// The axis: the years asked for, else from the first bar's year to next year.
    fn axis(&self, bars: &[&Bar], today: Date) -> Result<(Date, Date), Refused> {
        let first = bars
            .iter()
            .map(|b| b.may_from.year())
            .min()
            .unwrap_or(today.year());
        let last = bars
            .iter()
            .filter_map(|b| b.may_until.or(b.sure_until))
            .map(|d| d.year())
            .max()
            .unwrap_or(today.year())
            .max(
                if bars.iter().any(|b| b.sure_until.is_none() || b.end_unknown) {
                    today.year()
                } else {
                    0
                },
            );
        let from = Self::year("from", self.from.as_deref())?.unwrap_or(first);
        let to = Self::year("to", self.to.as_deref())?.unwrap_or(last + 1);
        if to <= from {
            return Err(Refused::bad("to", "must be after from"));
        }
        let year = |y| Date::from_ymd(y, 1, 1).map_err(|e| Refused::bad("from", e));
        Ok((year(from)?, year(to)?))
    }
}

/// Today, from the system clock (UTC).
pub fn today() -> Date {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    // The Unix epoch is Julian day 2,440,588.
    Date::from_julian_day(2_440_588 + days as i32)
        .unwrap_or_else(|| Date::from_ymd(2026, 1, 1).unwrap_or_else(|_| unreachable!()))
}

fn shown_instant(micros: Instant) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .map(|t| {
            format!(
                "{:02}/{:02}/{} {:02}:{:02}:{:02}",
                t.day(),
                u8::from(t.month()),
                t.year(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_default()
}

fn beginning_text(b: Beginning) -> &'static str {
    match b {
        Beginning::Elected => "Bầu",
        Beginning::Appointed => "Bổ nhiệm",
        Beginning::Assigned => "Phân công",
        Beginning::Transferred => "Điều động",
        Beginning::Acting => "Quyền",
        Beginning::Concurrent { .. } => "Kiêm nhiệm",
        Beginning::ExOfficio { .. } => "Đương nhiên",
    }
}

fn end_reason_text(r: EndReason) -> String {
    match r {
        EndReason::TermEnd => "Hết nhiệm kỳ".into(),
        EndReason::Dismissal => "Miễn nhiệm".into(),
        EndReason::Resignation => "Từ chức".into(),
        EndReason::Transfer => "Điều động".into(),
        EndReason::Retirement => "Nghỉ hưu".into(),
        EndReason::Death => "Từ trần".into(),
        EndReason::OfficeAbolished => "Chức vụ bãi bỏ".into(),
        EndReason::UnitMerged => "Hợp nhất đơn vị".into(),
        EndReason::UnitSplit => "Chia tách đơn vị".into(),
        EndReason::UnitDissolved => "Giải thể đơn vị".into(),
        #[allow(unreachable_patterns)]
        other => format!("{other:?}"),
    }
}

/// A holding as a row of the facts' table.
pub struct Fact {
    holding: registry_domain::HoldingId,
    /// What became of it since the instant shown: corrected, retracted, or nothing.
    change: &'static str,
    /// The irregularities it raises by itself.
    flags: String,
    label: String,
    href: String,
    from: String,
    until: String,
    beginning: &'static str,
    end_reason: String,
    basis: String,
    recorded: String,
    concurrent: bool,
}

/// A holding as a bar and as a row of the table; `label`/`href` name the other side (the
/// holder on an office's page, the office on a person's).
fn holding(h: &HoldingView<'_>, label: String, href: String) -> (Bar, Fact) {
    let concurrent = h.beginning.cause().is_some();
    let basis = h
        .basis
        .as_ref()
        .map(|b| {
            format!(
                "{} ({}, {:02}/{:02}/{})",
                b.number,
                b.issuer,
                b.issued_on.day(),
                b.issued_on.month(),
                b.issued_on.year()
            )
        })
        .unwrap_or_default();
    let until = match h.end {
        HoldingEnd::Open => "đang giữ".to_owned(),
        HoldingEnd::Unknown => "chưa rõ".to_owned(),
        HoldingEnd::On(day) => shown(day),
    };
    let end_reason = h.end_reason.map(end_reason_text).unwrap_or_default();
    let detail = format!(
        "{label}: {} – {until}; {}{}{}",
        shown(h.start),
        beginning_text(h.beginning),
        if end_reason.is_empty() {
            String::new()
        } else {
            format!("; {end_reason}")
        },
        if basis.is_empty() {
            String::new()
        } else {
            format!("; {basis}")
        },
    );
    let mut bar = Bar::holding(
        label.clone(),
        detail,
        href.clone(),
        h.start,
        h.end,
        concurrent,
    );
    // The flags a holding raises by itself (the domain's `MissingBasis` and `EndUnknown`); those
    // across holdings (vacancies, concurrency) are in the auditors' list of irregularities.
    if h.basis.is_none() {
        bar.flags.push("Thiếu căn cứ pháp lý");
    }
    if matches!(h.end, HoldingEnd::Unknown) {
        bar.flags.push("Ngày thôi chưa rõ");
    }
    if !bar.flags.is_empty() {
        bar.detail = format!("{}; ⚠ {}", bar.detail, bar.flags.join("; "));
    }
    let fact = Fact {
        holding: h.holding,
        change: "",
        flags: bar.flags.join("; "),
        label,
        href,
        from: shown(h.start),
        until,
        beginning: beginning_text(h.beginning),
        end_reason,
        basis,
        recorded: shown_instant(h.recorded_at),
        concurrent,
    };
    (bar, fact)
}

fn uuid_of(path: &str) -> &str {
    path.split_once('/').map_or(path, |(_, uuid)| uuid)
}

fn known_at_input(view: &View, instant: Option<Instant>) -> (String, String) {
    match instant {
        None => (String::new(), String::new()),
        Some(micros) => {
            let text = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
                .ok()
                .and_then(|t| {
                    t.format(time::macros::format_description!(
                        "[year]-[month]-[day]T[hour]:[minute]:[second]"
                    ))
                    .ok()
                })
                .unwrap_or_else(|| view.known_at.clone().unwrap_or_default());
            (text, shown_instant(micros))
        }
    }
}

/// An office's or a person's page: a timeline and its facts.
#[derive(Template)]
#[template(path = "timeline.html")]
struct TimelinePage {
    title: String,
    query: String,
    /// The line under the title (the office's unit, the person's birth), linked where `href`.
    about_href: String,
    about: String,
    known_at_input: String,
    known_at_shown: String,
    recorded_since: usize,
    /// The auditors' flags about the office or the person.
    notes: Vec<String>,
    svg: String,
    figcaption: &'static str,
    caption: String,
    first_column: &'static str,
    holdings: Vec<Fact>,
}

async fn office(
    State(reader): State<Reader>,
    Path(id): Path<String>,
    Query(view): Query<View>,
) -> Result<Html<String>, Refused> {
    let office: OfficeId = id_of("office", "offices", &id)?;
    let models = reader.models();
    office_page(&models.projection, office, &view, today()).map(Html)
}

/// The page of `office` as `view` asks, drawn from `p` on `today`.
///
/// # Errors
///
/// When the view asks for what cannot be shown: a bad instant or range, an unknown office.
pub fn office_page(
    p: &Projection,
    office: OfficeId,
    view: &View,
    today: Date,
) -> Result<String, Refused> {
    let known_at = view.instant()?;
    let title = p
        .office_title(office, known_at)
        .ok_or_else(|| Refused(StatusCode::NOT_FOUND, format!("no office {office}")))?
        .to_owned();
    let (unit_href, unit_line) = p
        .office_on(office, today, known_at)
        .and_then(|o| o.unit)
        .map(|u| unit_link(p, u, today, known_at))
        .unwrap_or_default();
    let drawn = |known_at: Option<Instant>| -> Vec<(Bar, Fact)> {
        p.office_history(office, known_at)
            .iter()
            .map(|h| {
                let name = p.holder_name(h, known_at).unwrap_or_default();
                holding(
                    h,
                    name,
                    format!("/ui/persons/{}", uuid_of(&h.person.resource_name())),
                )
            })
            .collect()
    };
    let mut then = drawn(known_at);
    let recorded_since = match known_at {
        Some(_) => mark_changes(&mut then, &drawn(None)),
        None => 0,
    };
    let (bars, facts): (Vec<Bar>, Vec<Fact>) = then.into_iter().unzip();
    let (from, until) = view.axis(&bars.iter().collect::<Vec<_>>(), today)?;
    // Its long vacancies, as the auditors' list flags them: ⚠ in the gap, and a note.
    let mut notes = Vec::new();
    let mut marks = Vec::new();
    let flags = registry_domain::office_irregularities(
        &p.as_known(known_at),
        office,
        &registry_domain::Policy::default(),
        today,
    );
    for flag in flags {
        if let registry_domain::Irregularity::LongVacancy { vacant, days, .. } = flag {
            let until = vacant.end.unwrap_or(today);
            let text = format!(
                "Khuyết {days} ngày, từ {} đến hết {}",
                shown(PartialDate::day(vacant.start)),
                shown(PartialDate::day(until.previous_day()))
            );
            marks.push((vacant.start.add_days(days / 2), text.clone()));
            notes.push(text);
        }
    }
    let rows = [Row {
        label: title.clone(),
        bars,
        marks,
    }];
    let svg = timeline::svg(
        &format!("Những người giữ chức {title} theo thời gian"),
        &rows,
        from,
        until,
    );
    let (known_at_input, known_at_shown) = known_at_input(view, known_at);
    Ok(render(&TimelinePage {
        caption: format!("Những người giữ chức {title}"),
        title,
        query: String::new(),
        about: if unit_href.is_empty() { String::new() } else { format!("Thuộc {unit_line}") },
        about_href: unit_href,
        figcaption: "Thanh liền: những ngày chắc chắn giữ chức; nhạt: những ngày chỉ biết đến tháng hoặc năm, hoặc ngày thôi chưa rõ; ◆ kiêm nhiệm. Khoảng trống là thời gian khuyết.",
        known_at_input,
        known_at_shown,
        recorded_since,
        notes,
        svg,
        first_column: "Người giữ",
        holdings: facts,
    }))
}

async fn person(
    State(reader): State<Reader>,
    Path(id): Path<String>,
    Query(view): Query<View>,
) -> Result<Html<String>, Refused> {
    let person: PersonId = id_of("person", "persons", &id)?;
    let known_at = view.instant()?;
    let models = reader.models();
    let p: &Projection = &models.projection;
    let today = today();
    if !p.knows_person(person, known_at) {
        return Err(Refused(
            StatusCode::NOT_FOUND,
            format!("no person {person}"),
        ));
    }
    let title = p.person_name(person, today, known_at).unwrap_or_default();
    let birth_line = p
        .person_birth(person, known_at)
        .map(|b| format!("Sinh {}", shown(b)))
        .unwrap_or_default();
    let drawn = |known_at: Option<Instant>| -> Vec<(Bar, Fact)> {
        p.career(person, known_at)
            .iter()
            .map(|h| {
                let office = p
                    .holding_office_title(h, known_at)
                    .unwrap_or_default()
                    .to_owned();
                holding(
                    h,
                    office,
                    format!("/ui/offices/{}", uuid_of(&h.office.resource_name())),
                )
            })
            .collect()
    };
    let mut then = drawn(known_at);
    let recorded_since = match known_at {
        Some(_) => mark_changes(&mut then, &drawn(None)),
        None => 0,
    };
    // Concurrencies no pilot model covers, too many offices at once: the auditors' flags.
    let mut notes = Vec::new();
    let flags = registry_domain::person_irregularities(
        &p.as_known(known_at),
        person,
        &registry_domain::Policy::default(),
        today,
    );
    for flag in flags {
        match flag {
            registry_domain::Irregularity::UncoveredConcurrency { holdings, on, .. } => {
                let text = format!(
                    "Kiêm nhiệm không thuộc mô hình thí điểm nào, từ {}",
                    shown(PartialDate::day(on))
                );
                for (bar, fact) in then.iter_mut() {
                    if fact.holding == holdings.0 || fact.holding == holdings.1 {
                        const UNCOVERED: &str = "Kiêm nhiệm không thuộc mô hình thí điểm nào";
                        bar.flags.push(UNCOVERED);
                        fact.flags = bar.flags.join("; ");
                        bar.detail = format!("{}; ⚠ {UNCOVERED}", bar.detail);
                    }
                }
                notes.push(text);
            }
            registry_domain::Irregularity::TooManyOffices { count, on, .. } => notes.push(format!(
                "Giữ {count} chức vụ cùng lúc từ {}",
                shown(PartialDate::day(on))
            )),
            _ => {}
        }
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut facts = Vec::new();
    for (bar, fact) in then {
        let office = fact.label.clone();
        match rows.iter_mut().find(|r| r.label == office) {
            Some(row) => row.bars.push(bar),
            None => rows.push(Row {
                label: office,
                bars: vec![bar],
                marks: Vec::new(),
            }),
        }
        facts.push(fact);
    }
    let all: Vec<&Bar> = rows.iter().flat_map(|r| &r.bars).collect();
    let (from, until) = view.axis(&all, today)?;
    let svg = timeline::svg(
        &format!("Các chức vụ của {title} theo thời gian"),
        &rows,
        from,
        until,
    );
    let (known_at_input, known_at_shown) = known_at_input(&view, known_at);
    Ok(html(&TimelinePage {
        caption: format!("Các chức vụ của {title}"),
        title,
        query: String::new(),
        about_href: String::new(),
        about: birth_line,
        figcaption:
            "Mỗi dòng một chức vụ; các chức vụ kiêm nhiệm (◆) nằm chồng theo cùng trục thời gian.",
        known_at_input,
        known_at_shown,
        recorded_since,
        notes,
        svg,
        first_column: "Chức vụ",
        holdings: facts,
    }))
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    title: String,
    query: String,
    people: Vec<(String, String)>,
}

#[derive(Debug, Default, Deserialize)]
struct Search {
    q: Option<String>,
}

async fn search(
    State(reader): State<Reader>,
    Query(search): Query<Search>,
) -> Result<Html<String>, Refused> {
    let query = search.q.unwrap_or_default();
    if query.chars().count() > registry_domain::MAX_NAME_CHARS {
        return Err(Refused::bad(
            "q",
            format!(
                "is longer than {} characters",
                registry_domain::MAX_NAME_CHARS
            ),
        ));
    }
    let people = if query.trim().is_empty() {
        Vec::new()
    } else {
        let models = reader.models();
        models
            .projection
            .search(&query, 50)
            .into_iter()
            .map(|(person, name, _)| {
                (
                    format!("/ui/persons/{}", uuid_of(&person.resource_name())),
                    name,
                )
            })
            .collect()
    };
    Ok(html(&SearchPage {
        title: if query.is_empty() {
            "Tìm người".into()
        } else {
            format!("Tìm “{query}”")
        },
        query,
        people,
    }))
}

async fn home() -> Html<String> {
    html(&SearchPage {
        title: "Tìm người".into(),
        query: String::new(),
        people: Vec::new(),
    })
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    title: String,
    query: String,
    message: String,
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../static/app.css"),
    )
}

/// The most units a unit's page lists of its tree.
const MAX_TREE: usize = 2000;

/// A unit's name and where its page is, on `day` or, when it did not exist then, on its last
/// day (or first).
fn unit_link(
    p: &Projection,
    unit: UnitId,
    day: Date,
    known_at: Option<Instant>,
) -> (String, String) {
    let shown_on = p.unit_span(unit, known_at).map_or(day, |life| {
        let last = life.end.map_or(day, Date::previous_day);
        day.clamp(life.start, last.max(life.start))
    });
    let name = p
        .unit_on(unit, shown_on, known_at)
        .map_or_else(|| unit.to_string(), |u| u.name);
    (
        format!("/ui/units/{}", uuid_of(&unit.resource_name())),
        name,
    )
}

/// A row of a unit's lineage table.
pub struct Link {
    href: String,
    name: String,
    relation: &'static str,
    on: String,
}

#[derive(Template)]
#[template(path = "unit.html")]
struct UnitPage {
    title: String,
    query: String,
    life_line: String,
    date_input: String,
    date_shown: String,
    known_at_input: String,
    known_at_shown: String,
    svg: String,
    lineage: Vec<Link>,
    parents: Vec<(String, String)>,
    offices: Vec<(String, String)>,
    /// The units under it on the day: link, name, depth.
    children: Vec<(String, String, usize)>,
    /// Units of the tree not listed.
    more: usize,
}

async fn unit(
    State(reader): State<Reader>,
    Path(id): Path<String>,
    Query(view): Query<View>,
) -> Result<Html<String>, Refused> {
    let unit: UnitId = id_of("unit", "units", &id)?;
    let models = reader.models();
    unit_page(&models.projection, unit, &view, today()).map(Html)
}

/// The life of a unit as text: `dd/mm/yyyy – dd/mm/yyyy` (its last day), or `– nay`.
fn lived(life: registry_domain::Span) -> String {
    format!(
        "{} – {}",
        shown(PartialDate::day(life.start)),
        life.end.map_or_else(
            || "nay".to_owned(),
            |end| shown(PartialDate::day(end.previous_day()))
        )
    )
}

/// The page of `unit` as `view` asks, drawn from `p` (on `today`, or the unit's last day, when
/// the view names no day).
///
/// # Errors
///
/// A bad day, instant or range; an unknown unit.
pub fn unit_page(
    p: &Projection,
    unit: UnitId,
    view: &View,
    today: Date,
) -> Result<String, Refused> {
    let known_at = view.instant()?;
    let life = p
        .unit_span(unit, known_at)
        .ok_or_else(|| Refused(StatusCode::NOT_FOUND, format!("no unit {unit}")))?;
    // Today, or the last day of a unit that no longer exists.
    let day = view
        .day()?
        .unwrap_or(life.end.map_or(today, |end| today.min(end.previous_day())));
    let (_, title) = unit_link(p, unit, day, known_at);
    let lineage = p.lineage(unit, known_at);
    // A bar of each unit's life, predecessors above the unit, successors below.
    let row_of = |u: UnitId, label: &str, href: &str| {
        p.unit_span(u, known_at).map(|life| Row {
            label: label.to_owned(),
            bars: vec![Bar {
                label: label.to_owned(),
                detail: format!("{label}: {}", lived(life)),
                href: href.to_owned(),
                sure_from: life.start,
                may_from: life.start,
                sure_until: life.end,
                may_until: life.end,
                end_unknown: false,
                concurrent: false,
                changed: false,
                flags: Vec::new(),
            }],
            marks: Vec::new(),
        })
    };
    let mut links = Vec::new();
    let mut rows = Vec::new();
    for (relation, list) in [
        ("Tiền thân", &lineage.predecessors),
        ("Kế thừa", &lineage.successors),
    ] {
        if relation == "Kế thừa" {
            rows.extend(row_of(unit, &title, "?"));
        }
        for (other, on) in list {
            let (href, name) = unit_link(p, *other, *on, known_at);
            rows.extend(row_of(*other, &name, &href));
            links.push(Link {
                href,
                name,
                relation,
                on: shown(PartialDate::day(*on)),
            });
        }
    }
    let svg = if links.is_empty() {
        String::new()
    } else {
        let all: Vec<&Bar> = rows.iter().flat_map(|r| &r.bars).collect();
        let (from, until) = view.axis(&all, today)?;
        timeline::svg(
            &format!("Tiền thân và kế thừa của {title}"),
            &rows,
            from,
            until,
        )
    };
    let on_day = p.unit_on(unit, day, known_at);
    let units = |ids: &[UnitId]| {
        ids.iter()
            .map(|u| unit_link(p, *u, day, known_at))
            .collect::<Vec<_>>()
    };
    let parents = on_day
        .as_ref()
        .map(|u| units(&u.parents))
        .unwrap_or_default();
    // Its tree on the day, depth first, each unit indented under its parent (at most
    // `MAX_TREE` units: a province's whole tree, not a country's).
    let tree = p.tree(unit, day, known_at);
    let more = tree.len().saturating_sub(MAX_TREE + 1);
    let mut depth: std::collections::HashMap<UnitId, usize> = [(unit, 0)].into();
    let mut children = Vec::new();
    for u in tree.iter().skip(1).take(MAX_TREE) {
        let under = p
            .unit_on(*u, day, known_at)
            .and_then(|v| v.parents.iter().filter_map(|x| depth.get(x)).min().copied())
            .unwrap_or(0);
        depth.insert(*u, under + 1);
        let (href, name) = unit_link(p, *u, day, known_at);
        children.push((href, name, under + 1));
    }
    let offices = on_day
        .as_ref()
        .map(|u| {
            u.offices
                .iter()
                .map(|o| {
                    (
                        format!("/ui/offices/{}", uuid_of(&o.resource_name())),
                        p.office_title(*o, known_at).unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let (known_at_input, known_at_shown) = known_at_input(view, known_at);
    Ok(render(&UnitPage {
        title,
        query: String::new(),
        life_line: format!("Tồn tại {}", lived(life)),
        date_input: day.to_string(),
        date_shown: shown(PartialDate::day(day)),
        known_at_input,
        known_at_shown,
        svg,
        lineage: links,
        parents,
        offices,
        children,
        more,
    }))
}

#[derive(Template)]
#[template(path = "models.html")]
struct ModelsPage {
    title: String,
    query: String,
    models: Vec<(String, String)>,
}

async fn models(
    State(reader): State<Reader>,
    Query(view): Query<View>,
) -> Result<Html<String>, Refused> {
    let known_at = view.instant()?;
    let models = reader.models();
    let list = models
        .projection
        .models(known_at)
        .into_iter()
        .map(|(m, name)| (format!("/ui/models/{}", uuid_of(&m.resource_name())), name))
        .collect();
    Ok(html(&ModelsPage {
        title: "Mô hình thí điểm".into(),
        query: String::new(),
        models: list,
    }))
}

/// A row of the coverage table: one jurisdiction.
pub struct CoverageRow {
    href: String,
    name: String,
    units: usize,
    declared: usize,
    observed: usize,
    declared_only: usize,
    observed_only: usize,
    uncertain: usize,
}

/// The query of a coverage page.
#[derive(Debug, Default, Deserialize)]
pub struct CoverageView {
    /// The view's day and instant.
    #[serde(flatten)]
    pub view: View,
    /// The province (`uuid`) whose units are listed; every province's counts when absent.
    pub jurisdiction: Option<String>,
    /// The level counted: `commune` (default), `district` or `province`.
    pub level: Option<String>,
}

#[derive(Template)]
#[template(path = "coverage.html")]
struct CoveragePage {
    title: String,
    query: String,
    jurisdiction: String,
    date_input: String,
    date_shown: String,
    level: String,
    levels: Vec<(&'static str, &'static str)>,
    known_at_input: String,
    known_at_shown: String,
    rows: Vec<CoverageRow>,
    groups: Vec<(&'static str, Vec<(String, String)>)>,
}

const LEVELS: [(&str, &str, registry_domain::Level); 3] = [
    ("commune", "Xã, phường", registry_domain::Level::Commune),
    ("district", "Huyện", registry_domain::Level::District),
    ("province", "Tỉnh", registry_domain::Level::Province),
];

async fn coverage(
    State(reader): State<Reader>,
    Path(id): Path<String>,
    Query(view): Query<CoverageView>,
) -> Result<Html<String>, Refused> {
    let model: registry_domain::ModelId = id_of("model", "models", &id)?;
    let models = reader.models();
    coverage_page(&models.projection, model, &view, today()).map(Html)
}

/// How many units of a level apply `model` on a day, in each province (or, with a
/// jurisdiction, which), as declared and as observed: the page drawn from `p`.
///
/// # Errors
///
/// A bad day, instant, level or jurisdiction; an unknown model.
pub fn coverage_page(
    p: &Projection,
    model: registry_domain::ModelId,
    view: &CoverageView,
    today: Date,
) -> Result<String, Refused> {
    let known_at = view.view.instant()?;
    let title = p
        .models(known_at)
        .into_iter()
        .find(|(m, _)| *m == model)
        .map(|(_, name)| name)
        .ok_or_else(|| Refused(StatusCode::NOT_FOUND, format!("no model {model}")))?;
    let day = view.view.day()?.unwrap_or(today);
    let level_name = view
        .level
        .clone()
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "commune".into());
    let level = LEVELS
        .iter()
        .find(|(name, _, _)| *name == level_name)
        .map(|(_, _, level)| *level)
        .ok_or_else(|| Refused::bad("level", "is not one of commune, district, province"))?;
    let jurisdiction = match view.jurisdiction.as_deref().filter(|j| !j.is_empty()) {
        None => None,
        Some(text) => Some(id_of::<UnitId>("jurisdiction", "units", text)?),
    };
    // The provinces (administrative areas) of the day, or the one asked about.
    let areas: Vec<UnitId> = match jurisdiction {
        Some(unit) => vec![unit],
        None => {
            let (ids, _) = p.unit_ids(0, usize::MAX);
            ids.into_iter()
                .filter(|u| {
                    p.unit_on(*u, day, known_at).is_some_and(|v| {
                        v.level == registry_domain::Level::Province
                            && v.kind == registry_domain::UnitKind::AdministrativeArea
                    })
                })
                .collect()
        }
    };
    let link = |u: UnitId| unit_link(p, u, day, known_at);
    let mut rows = Vec::new();
    let mut groups = Vec::new();
    for area in areas {
        let counted = p
            .coverage(model, area, level, day, known_at)
            .map_err(|e| match e {
                registry_projections::CoverageError::UnknownModel(_)
                | registry_projections::CoverageError::UnknownUnit(_) => {
                    Refused(StatusCode::NOT_FOUND, e.to_string())
                }
                registry_projections::CoverageError::NotAnArea { .. } => {
                    Refused::bad("jurisdiction", e)
                }
            })?;
        let (_, name) = link(area);
        rows.push(CoverageRow {
            href: format!(
                "?jurisdiction={}&date={day}&level={level_name}",
                uuid_of(&area.resource_name())
            ),
            name,
            units: counted.units,
            declared: counted.declared.len(),
            observed: counted.observed.len(),
            declared_only: counted.declared_only().len(),
            observed_only: counted.observed_only().len(),
            uncertain: counted.uncertain.len(),
        });
        if jurisdiction.is_some() {
            let names = |ids: Vec<UnitId>| ids.into_iter().map(link).collect::<Vec<_>>();
            groups = vec![
                (
                    "Chỉ khai báo, chưa thấy trên thực tế",
                    names(counted.declared_only()),
                ),
                (
                    "Có trên thực tế, không khai báo",
                    names(counted.observed_only()),
                ),
                (
                    "Chưa rõ (ngày chỉ biết đến tháng, năm)",
                    names(counted.uncertain.clone()),
                ),
                (
                    "Khai báo và có trên thực tế",
                    names(
                        counted
                            .declared
                            .iter()
                            .filter(|u| counted.observed.contains(u))
                            .copied()
                            .collect(),
                    ),
                ),
            ];
        }
    }
    let (known_at_input, known_at_shown) = known_at_input(&view.view, known_at);
    Ok(render(&CoveragePage {
        title,
        query: String::new(),
        jurisdiction: jurisdiction
            .map(|u| uuid_of(&u.resource_name()).to_owned())
            .unwrap_or_default(),
        date_input: day.to_string(),
        date_shown: shown(PartialDate::day(day)),
        level: level_name,
        levels: LEVELS.iter().map(|(v, n, _)| (*v, *n)).collect(),
        known_at_input,
        known_at_shown,
        rows,
        groups,
    }))
}

impl Fact {
    /// Whether `other` states the same facts (the recorded time aside).
    fn same_facts(&self, other: &Fact) -> bool {
        (
            &self.label,
            &self.from,
            &self.until,
            self.beginning,
            &self.end_reason,
            &self.basis,
        ) == (
            &other.label,
            &other.from,
            &other.until,
            other.beginning,
            &other.end_reason,
            &other.basis,
        )
    }
}

/// Marks in `then` (a view as known at an instant) what the registry has changed since, against
/// `now` (the same view as known now): holdings since corrected or retracted. Returns how many
/// holdings were recorded since.
fn mark_changes(then: &mut [(Bar, Fact)], now: &[(Bar, Fact)]) -> usize {
    for (bar, fact) in then.iter_mut() {
        let change = match now.iter().find(|(_, f)| f.holding == fact.holding) {
            None => "đã rút bỏ sau đó",
            Some((_, f)) if !f.same_facts(fact) => "đã sửa sau đó",
            Some(_) => "",
        };
        fact.change = change;
        bar.changed = !change.is_empty();
    }
    now.iter()
        .filter(|(_, f)| !then.iter().any(|(_, t)| t.holding == f.holding))
        .count()
}
