//! Fixtures for the command-line tool's tests and benchmarks: import files.

/// The id of the `n`-th record of a kind (1 unit, 2 office, 3 person, 4 holding) in
/// [`holdings_jsonl`].
pub fn bulk_id(kind: u32, n: usize) -> String {
    format!("0193b000-{kind:04}-7000-8000-{n:012}")
}

/// A JSON Lines file: one unit, `offices` sole offices and `per_office` back-to-back
/// holdings in each (one person each), 1990 onwards, half a year each.
pub fn holdings_jsonl(offices: usize, per_office: usize) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{{\"type\":\"unit\",\"id\":\"{}\",\"name\":\"Xã Tải\",\"kind\":\"peoples-committee\",\"level\":\"commune\",\"from\":\"1980-01-01\",\"basis\":\"1/NQ\",\"basis_date\":\"1980-01-01\",\"issuer\":\"HĐND\"}}\n",
        bulk_id(1, 0)
    ));
    for o in 0..offices {
        out.push_str(&format!(
            "{{\"type\":\"office\",\"id\":\"{}\",\"unit\":\"{}\",\"title\":\"Chức vụ {o}\",\"kind\":\"member\",\"from\":\"1980-01-01\"}}\n",
            bulk_id(2, o),
            bulk_id(1, 0)
        ));
    }
    for o in 0..offices {
        for h in 0..per_office {
            let n = o * per_office + h;
            let (from, until) = (1990 * 2 + h, 1990 * 2 + h + 1);
            let half = |x: usize| {
                format!(
                    "{}-{:02}-01",
                    x / 2,
                    if x.is_multiple_of(2) { 1 } else { 7 }
                )
            };
            out.push_str(&format!(
                "{{\"type\":\"person\",\"id\":\"{}\",\"name\":\"Người Số {n}\"}}\n{{\"type\":\"holding\",\"id\":\"{}\",\"person\":\"{}\",\"office\":\"{}\",\"from\":\"{}\",\"until\":\"{}\",\"how\":\"appointed\"}}\n",
                bulk_id(3, n),
                bulk_id(4, n),
                bulk_id(3, n),
                bulk_id(2, o),
                half(from),
                half(until)
            ));
        }
    }
    out
}

/// What [`import_rows`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RowCounts {
    /// Rows written, by record type.
    pub rows: std::collections::BTreeMap<&'static str, usize>,
    /// Events of the generated feed with no import row (renames, moves, reorganisations,
    /// abolitions, withdrawals, corrections, retractions: history an import file does not
    /// carry).
    pub events_left_out: usize,
    /// Holdings left out because they refer to something the file does not hold.
    pub holdings_left_out: usize,
}

/// Writes a generated registry as `regctl import` rows (JSON Lines), in feed order: what an
/// agency's records of persons, units, offices, terms, holdings (each with its end, as the
/// registry knows it now), pilot models and adoptions look like when loaded into a new
/// registry. Structural history (renames, moves, reorganisations) is not carried, so units
/// stay where they were established and keep their offices.
pub fn import_rows(
    generated: &crate::Generated,
    out: &mut impl std::io::Write,
) -> std::io::Result<RowCounts> {
    use registry_domain::{Arrangement, Capacity, Event, HoldingEnd, LegalBasis};
    use serde_json::{json, Map, Value};
    use std::collections::HashSet;

    /// `party_committee` → `party-committee`, the short names of the import format.
    fn short(value: impl serde::Serialize) -> String {
        match serde_json::to_value(value) {
            Ok(Value::String(s)) => s.replace('_', "-"),
            Ok(Value::Object(o)) => o
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .replace('_', "-"),
            _ => String::new(),
        }
    }
    fn basis(row: &mut Map<String, Value>, basis: Option<&LegalBasis>) {
        if let Some(b) = basis {
            row.insert("basis".into(), json!(b.number));
            row.insert("basis_date".into(), json!(b.issued_on.to_string()));
            row.insert("issuer".into(), json!(b.issuer));
        }
    }

    let registry = &generated.registry;
    let mut counts = RowCounts::default();
    let mut written: HashSet<uuid::Uuid> = HashSet::new();
    for fact in &generated.facts {
        let (kind, mut row) = match &fact.event {
            Event::PersonRegistered(e) => {
                let mut row = Map::new();
                row.insert("id".into(), json!(e.person.uuid()));
                row.insert("name".into(), json!(e.name));
                if !e.aliases.is_empty() {
                    row.insert("aliases".into(), json!(e.aliases));
                }
                if let Some(birth) = e.birth {
                    row.insert("birth".into(), json!(birth.to_string()));
                }
                written.insert(e.person.uuid());
                ("person", row)
            }
            Event::UnitEstablished(e) => {
                let mut row = Map::new();
                row.insert("id".into(), json!(e.unit.uuid()));
                row.insert("name".into(), json!(e.name));
                row.insert("kind".into(), json!(short(e.kind)));
                row.insert("level".into(), json!(short(e.level)));
                let parents: Vec<_> = e.parents.iter().map(|p| p.uuid()).collect();
                row.insert("parents".into(), json!(parents));
                row.insert("from".into(), json!(e.on.to_string()));
                basis(&mut row, Some(&e.basis));
                written.insert(e.unit.uuid());
                ("unit", row)
            }
            Event::OfficeCreated(e) => {
                let mut row = Map::new();
                row.insert("id".into(), json!(e.office.uuid()));
                row.insert("unit".into(), json!(e.unit.uuid()));
                row.insert("title".into(), json!(e.title));
                row.insert("kind".into(), json!(short(e.kind)));
                let capacity = match e.capacity {
                    Capacity::Sole => "sole".to_owned(),
                    Capacity::Limited(n) => n.to_string(),
                    Capacity::Unbounded => "unbounded".to_owned(),
                };
                row.insert("capacity".into(), json!(capacity));
                row.insert("from".into(), json!(e.on.to_string()));
                basis(&mut row, e.basis.as_ref());
                written.insert(e.office.uuid());
                ("office", row)
            }
            Event::TermOpened(e) => {
                let mut row = Map::new();
                row.insert("id".into(), json!(e.term.uuid()));
                row.insert("unit".into(), json!(e.body.uuid()));
                row.insert("name".into(), json!(e.label));
                row.insert("from".into(), json!(e.start.to_string()));
                if let Some(end) = e.planned_end {
                    row.insert("until".into(), json!(end.to_string()));
                }
                written.insert(e.term.uuid());
                ("term", row)
            }
            Event::HoldingStarted(e) => {
                // The holding as the registry knows it now (corrections applied; retracted
                // ones are gone).
                let Some(h) = registry.holding(e.holding) else {
                    counts.holdings_left_out += 1;
                    continue;
                };
                let refers = [Some(h.person.uuid()), Some(h.office.uuid())]
                    .into_iter()
                    .chain([
                        h.beginning.cause().map(|c| c.uuid()),
                        h.term.map(|t| t.uuid()),
                    ])
                    .flatten();
                if !refers.into_iter().all(|id| written.contains(&id)) {
                    counts.holdings_left_out += 1;
                    continue;
                }
                let mut row = Map::new();
                row.insert("id".into(), json!(e.holding.uuid()));
                row.insert("person".into(), json!(h.person.uuid()));
                row.insert("office".into(), json!(h.office.uuid()));
                row.insert("from".into(), json!(h.start.to_string()));
                row.insert("how".into(), json!(short(h.beginning)));
                if let Some(cause) = h.beginning.cause() {
                    row.insert("cause".into(), json!(cause.uuid()));
                }
                if let Some(term) = h.term {
                    row.insert("term".into(), json!(term.uuid()));
                }
                match h.end {
                    HoldingEnd::Open => {}
                    HoldingEnd::Unknown => {
                        row.insert("end_unknown".into(), json!("true"));
                    }
                    HoldingEnd::On(day) => {
                        row.insert("until".into(), json!(day.to_string()));
                    }
                }
                if let Some(reason) = h.end_reason {
                    row.insert("end_reason".into(), json!(short(reason)));
                }
                basis(&mut row, h.basis.as_deref());
                written.insert(e.holding.uuid());
                ("holding", row)
            }
            Event::ModelDefined(e) => {
                let mut row = Map::new();
                row.insert("id".into(), json!(e.model.uuid()));
                row.insert("name".into(), json!(e.name));
                match &e.arrangement {
                    Arrangement::ConcurrentOffices { roles } => {
                        let roles: Vec<String> = roles
                            .iter()
                            .map(|r| format!("{}:{}", short(r.unit_kind), short(r.office_kind)))
                            .collect();
                        row.insert("roles".into(), json!(roles));
                    }
                    Arrangement::SharedUnit { unit_kind, serves } => {
                        row.insert("kind".into(), json!(short(unit_kind)));
                        let serves: Vec<String> = serves.iter().map(short).collect();
                        row.insert("serves".into(), json!(serves));
                    }
                }
                basis(&mut row, Some(&e.authorised_by));
                written.insert(e.model.uuid());
                ("model", row)
            }
            Event::ModelAdopted(e) => {
                let mut row = Map::new();
                row.insert("id".into(), json!(e.adoption.uuid()));
                row.insert("model".into(), json!(e.model.uuid()));
                row.insert("unit".into(), json!(e.unit.uuid()));
                row.insert("from".into(), json!(e.on.to_string()));
                basis(&mut row, Some(&e.basis));
                ("adoption", row)
            }
            // A holding's row carries its end.
            Event::HoldingEnded(_) => continue,
            _ => {
                counts.events_left_out += 1;
                continue;
            }
        };
        row.insert("type".into(), json!(kind));
        serde_json::to_writer(&mut *out, &Value::Object(row))?;
        out.write_all(b"\n")?;
        *counts.rows.entry(kind).or_default() += 1;
    }
    Ok(counts)
}
