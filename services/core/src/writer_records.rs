//! The writer's largest tables as snapshot records: its persons, its holdings and the offices'
//! lists of holdings.
//!
//! A national registry has millions of rows in each. Decoded field by field through a
//! self-describing format they made the writer's snapshot the slowest part of a start; as
//! fixed-layout records ([`registry_projections::records`]) every row is a few plain values,
//! each checked as it is read, so a damaged section is an error, never a wrong row. The
//! registry's structure (units, offices, models, terms: thousands of rows) stays MessagePack.

use std::io::Read;

use registry_domain::state::{Holding, Holdings, Person, Table};
use registry_domain::{
    Beginning, HoldingEnd, HoldingId, LegalBasis, OfficeId, PersonId, Registry, Span,
};
use registry_projections::records::{end_reason, end_reason_code, Damaged, In, Out};

/// The persons: id, name, birth, holdings with their spans, later names, aliases.
pub(crate) fn encode_persons(registry: &Registry) -> Vec<u8> {
    let mut out = Out::default();
    out.len(registry.persons().count());
    for (id, person) in registry.persons() {
        out.uuid(id.uuid());
        out.str(&person.name);
        match person.birth {
            Some(birth) => (out.u8(1), out.partial_date(birth)),
            None => (out.u8(0), ()),
        };
        put_holdings(&person.holdings, &mut out);
        out.count(person.renames().len());
        for (since, name) in person.renames() {
            out.date(*since);
            out.str(name);
        }
        out.count(person.aliases().len());
        for alias in person.aliases() {
            out.str(alias);
        }
    }
    out.0
}

pub(crate) fn decode_persons(
    input: &mut In<impl Read>,
) -> Result<Table<PersonId, Person>, Damaged> {
    let n = input.len(16 + 4 + 1 + 4 + 4 + 4)?;
    let mut persons = Table::with_capacity(n);
    for _ in 0..n {
        let id = PersonId::from_uuid(input.uuid()?);
        let name = input.string()?.into_boxed_str();
        let birth = match input.u8()? {
            0 => None,
            1 => Some(input.partial_date()?),
            _ => return Err(Damaged("invalid birth flag")),
        };
        let holdings = get_holdings(input)?;
        let renames = (0..input.count(8)?)
            .map(|_| Ok((input.date()?, input.string()?)))
            .collect::<Result<_, Damaged>>()?;
        let aliases = (0..input.count(4)?)
            .map(|_| input.string())
            .collect::<Result<_, Damaged>>()?;
        let person = Person::new(name, birth, holdings, renames, aliases);
        if !persons.insert(id, person) {
            return Err(Damaged("a person listed twice"));
        }
    }
    Ok(persons)
}

/// The holdings: id, person, office, dates, how they began and ended, term, basis.
pub(crate) fn encode_holdings(registry: &Registry) -> Vec<u8> {
    let mut out = Out::default();
    out.len(registry.holdings().count());
    for (id, holding) in registry.holdings() {
        out.uuid(id.uuid());
        out.uuid(holding.person.uuid());
        out.uuid(holding.office.uuid());
        out.partial_date(holding.start);
        match holding.end {
            HoldingEnd::Open => (out.u8(0), out.i32(0)),
            HoldingEnd::Unknown => (out.u8(1), out.i32(0)),
            HoldingEnd::On(day) => (out.u8(2), out.partial_date(day)),
        };
        let (tag, cause) = match holding.beginning {
            Beginning::Elected => (0, None),
            Beginning::Appointed => (1, None),
            Beginning::Assigned => (2, None),
            Beginning::Transferred => (3, None),
            Beginning::Acting => (4, None),
            Beginning::Concurrent { cause } => (5, Some(cause)),
            Beginning::ExOfficio { cause } => (6, Some(cause)),
        };
        out.u8(tag);
        if let Some(cause) = cause {
            out.uuid(cause.uuid());
        }
        out.u8(end_reason_code(holding.end_reason));
        match holding.term {
            Some(term) => (out.u8(1), out.uuid(term.uuid())),
            None => (out.u8(0), ()),
        };
        match holding.basis.as_deref() {
            Some(basis) => {
                out.u8(1);
                out.str(&basis.number);
                out.str(&basis.issuer);
                out.date(basis.issued_on);
                out.optional_date(basis.effective_on);
            }
            None => out.u8(0),
        }
    }
    out.0
}

pub(crate) fn decode_holdings(
    input: &mut In<impl Read>,
) -> Result<Table<HoldingId, Holding>, Damaged> {
    let n = input.len(16 * 3 + 4 + 5 + 1 + 1 + 1 + 1)?;
    let mut holdings = Table::with_capacity(n);
    for _ in 0..n {
        let id = HoldingId::from_uuid(input.uuid()?);
        let person = input.uuid()?.into();
        let office = input.uuid()?.into();
        let start = input.partial_date()?;
        let end = match (input.u8()?, input.i32()?) {
            (0, _) => HoldingEnd::Open,
            (1, _) => HoldingEnd::Unknown,
            (2, code) => HoldingEnd::On(
                registry_domain::PartialDate::from_code(code)
                    .ok_or(Damaged("invalid partial date"))?,
            ),
            _ => return Err(Damaged("invalid holding end")),
        };
        let beginning = match input.u8()? {
            0 => Beginning::Elected,
            1 => Beginning::Appointed,
            2 => Beginning::Assigned,
            3 => Beginning::Transferred,
            4 => Beginning::Acting,
            5 => Beginning::Concurrent {
                cause: HoldingId::from_uuid(input.uuid()?),
            },
            6 => Beginning::ExOfficio {
                cause: HoldingId::from_uuid(input.uuid()?),
            },
            _ => return Err(Damaged("invalid beginning")),
        };
        let end_reason = end_reason(input.u8()?)?;
        let term = match input.u8()? {
            0 => None,
            1 => Some(input.uuid()?.into()),
            _ => return Err(Damaged("invalid term flag")),
        };
        let basis = match input.u8()? {
            0 => None,
            1 => Some(Box::new(LegalBasis {
                number: input.string()?,
                issuer: input.string()?,
                issued_on: input.date()?,
                effective_on: input.optional_date()?,
            })),
            _ => return Err(Damaged("invalid basis flag")),
        };
        let holding = Holding {
            person,
            office,
            start,
            end,
            beginning,
            end_reason,
            term,
            basis,
        };
        if !holdings.insert(id, holding) {
            return Err(Damaged("a holding listed twice"));
        }
    }
    Ok(holdings)
}

/// Each office's holdings, in the order recorded, with their spans.
pub(crate) fn encode_office_lists(registry: &Registry) -> Vec<u8> {
    let mut out = Out::default();
    out.len(registry.offices().count());
    for (id, office) in registry.offices() {
        out.uuid(id.uuid());
        put_holdings(&office.holdings, &mut out);
    }
    out.0
}

pub(crate) fn decode_office_lists(
    input: &mut In<impl Read>,
) -> Result<Vec<(OfficeId, Holdings)>, Damaged> {
    let n = input.len(20)?;
    let mut lists = Vec::with_capacity(n);
    for _ in 0..n {
        lists.push((input.uuid()?.into(), get_holdings(input)?));
    }
    Ok(lists)
}

fn put_holdings(holdings: &Holdings, out: &mut Out) {
    out.count(holdings.len());
    for (id, span) in holdings.spans() {
        out.uuid(id.uuid());
        out.date(span.start);
        out.optional_date(span.end);
    }
}

fn get_holdings(input: &mut In<impl Read>) -> Result<Holdings, Damaged> {
    let n = input.count(24)?;
    let mut spans = Vec::with_capacity(n);
    for _ in 0..n {
        let id = HoldingId::from_uuid(input.uuid()?);
        let span = Span {
            start: input.date()?,
            end: input.optional_date()?,
        };
        spans.push((id, span));
    }
    Ok(Holdings::from(spans))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use registry_domain::event::{HoldingStarted, PersonAliasAdded, PersonRenamed, TermOpened};
    use registry_domain::state::Structure;
    use registry_domain::{Date, PartialDate, TermId};

    /// A section's rows, as `Sections::records` reads them from a file: used up, or refused.
    fn read<'a, T>(
        bytes: &'a [u8],
        decode: impl FnOnce(&mut In<&'a [u8]>) -> Result<T, Damaged>,
    ) -> Result<T, Damaged> {
        let mut input = In::of(bytes);
        let rows = decode(&mut input)?;
        if input.finished() {
            Ok(rows)
        } else {
            Err(Damaged("bytes after the last row"))
        }
    }

    #[test]
    fn a_registry_comes_back_whole_from_its_records_and_a_damaged_section_is_refused() {
        let mut registry = registry_testkit::generate(&registry_testkit::Config::tiny(3)).registry;
        let person = registry.persons().map(|(id, _)| id).min().unwrap();
        registry.apply(
            &PersonRenamed {
                person,
                name: "Nguyễn Văn Mới".into(),
                on: Date::from_ymd(2020, 3, 1).unwrap(),
            }
            .into(),
        );
        registry.apply(
            &PersonAliasAdded {
                person,
                alias: "Ba Mới".into(),
            }
            .into(),
        );
        let day = Date::from_ymd(2021, 4, 1).unwrap();
        let (office, _) = registry.offices().next().unwrap();
        let body = registry.office(office).unwrap().unit_on(day);
        let term = TermId::new();
        registry.apply(
            &TermOpened {
                term,
                body,
                label: "2021-2026".into(),
                start: day,
                planned_end: None,
            }
            .into(),
        );
        registry.apply(
            &HoldingStarted {
                holding: HoldingId::new(),
                person,
                office,
                start: PartialDate::day(day),
                beginning: Beginning::Elected,
                term: Some(term),
                basis: None,
            }
            .into(),
        );
        // What the records must carry is there to be carried.
        let holdings: Vec<&Holding> = registry.holdings().map(|(_, h)| h).collect();
        assert!(holdings.iter().any(|h| h.basis.is_some()));
        assert!(holdings.iter().any(|h| h.term.is_some()));
        assert!(holdings.iter().any(|h| h.beginning.cause().is_some()));
        assert!(holdings.iter().any(|h| h.end_reason.is_some()));

        let persons = encode_persons(&registry);
        let holdings = encode_holdings(&registry);
        let lists = encode_office_lists(&registry);
        let structure = rmp_serde::to_vec_named(&registry.structure()).unwrap();
        let back = Registry::from_parts(
            read(&persons, decode_persons).unwrap(),
            read(&holdings, decode_holdings).unwrap(),
            rmp_serde::from_slice::<Structure>(&structure).unwrap(),
            read(&lists, decode_office_lists).unwrap(),
        )
        .unwrap();
        assert!(back == registry);
        assert_eq!(back.person(person).unwrap().aliases(), ["Ba Mới"]);

        for section in [&persons, &holdings, &lists] {
            for cut in [1, section.len() / 3, section.len() / 2, section.len() - 1] {
                let short = &section[..cut];
                let refused = read(short, decode_persons).is_err()
                    && read(short, decode_holdings).is_err()
                    && read(short, decode_office_lists).is_err();
                assert!(
                    refused,
                    "a section cut at {cut} of {} was read",
                    section.len()
                );
            }
        }
        let mut longer = persons.clone();
        longer.push(0);
        assert!(read(&longer, decode_persons).is_err());
    }
}
