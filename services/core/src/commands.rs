//! Every mutating request of the API as a domain [`Command`]: the command and admin services'
//! edge. Each field's errors name the request field.

use registry_domain::{self as d, Command};
use registry_proto::v1 as pb;

use crate::convert::{
    amendment, arrangement, basis, beginning, capacity, date, end_reason, entity, field,
    holding_end, id, ids, level, new_id, office_kind, opt_basis, opt_date, opt_id,
    opt_partial_date, partial_date, text, unit_ending, unit_kind, Parsed,
};

/// Implements [`WriteRequest`](crate::WriteRequest) for request types: `RPC name, Request =>
/// Response, |request, actor| command`; `previewed` marks a request with `validate_only`
/// whose response carries the flags of the record before it (`flags_now`).
macro_rules! write_requests {
    ($($rpc:literal, $request:ty => $response:ident $(, $previewed:ident)?, |$r:ident, $actor:pat_param| $command:expr;)*) => {
        $(
            impl crate::WriteRequest for $request {
                const RPC: &'static str = $rpc;
                type Response = registry_proto::v1::$response;
                fn request_id(&self) -> &str {
                    &self.request_id
                }
                fn command(&self, $actor: &str) -> Result<registry_domain::Command, crate::ApiError> {
                    let $r = self;
                    Ok($command)
                }
                fn respond(result: registry_proto::v1::WriteResult) -> Self::Response {
                    let mut response = registry_proto::v1::$response::default();
                    response.result = Some(result);
                    response
                }
                $(
                    fn validate_only(&self) -> bool {
                        let $previewed = self;
                        $previewed.validate_only
                    }
                    fn respond_preview(
                        result: registry_proto::v1::WriteResult,
                        flags_now: Vec<registry_proto::v1::Irregularity>,
                    ) -> Self::Response {
                        registry_proto::v1::$response {
                            result: Some(result),
                            flags_now,
                        }
                    }
                )?
            }
        )*
    };
}

/// The fields of a correction request it restates (AIP-134): those its `update_mask` names,
/// every one for `*`, or without a mask those it populates.
struct Restated(Vec<&'static str>);

impl Restated {
    /// From the request's mask and its fields, each with whether it is populated.
    fn of(mask: Option<&prost_types::FieldMask>, fields: &[(&'static str, bool)]) -> Parsed<Self> {
        let names = || fields.iter().map(|(name, _)| *name);
        let Some(mask) = mask.filter(|m| !m.paths.is_empty()) else {
            return Ok(Self(
                fields
                    .iter()
                    .filter(|(_, populated)| *populated)
                    .map(|(name, _)| *name)
                    .collect(),
            ));
        };
        if mask.paths.iter().any(|p| p == "*") {
            if mask.paths.len() > 1 {
                return Err(crate::ApiError::invalid(
                    "update_mask",
                    "`*` restates every field: name no other path beside it",
                ));
            }
            return Ok(Self(names().collect()));
        }
        let mut restated = Vec::new();
        for path in &mask.paths {
            let Some(name) = names().find(|name| name == path) else {
                return Err(crate::ApiError::invalid(
                    "update_mask",
                    format!(
                        "{} is not a field this correction restates (one of {}, or *)",
                        registry_domain::quote(path),
                        names().collect::<Vec<_>>().join(", ")
                    ),
                ));
            };
            restated.push(name);
        }
        Ok(Self(restated))
    }

    /// The field's new value when it is restated.
    fn then<T>(&self, field: &str, value: impl FnOnce() -> Parsed<T>) -> Parsed<Option<T>> {
        self.then_any(&[field], value)
    }

    /// The new value of a fact several fields state, when one of them is restated.
    fn then_any<T>(&self, fields: &[&str], value: impl FnOnce() -> Parsed<T>) -> Parsed<Option<T>> {
        if fields.iter().any(|f| self.0.contains(f)) {
            value().map(Some)
        } else {
            Ok(None)
        }
    }
}

fn aliases(values: &[String]) -> Parsed<Vec<String>> {
    values
        .iter()
        .enumerate()
        .map(|(i, alias)| text(&format!("aliases[{i}]"), alias))
        .collect()
}

fn successor(i: usize, s: &pb::Successor) -> Parsed<d::Successor> {
    let f = format!("successors[{i}]");
    match &s.successor {
        None => Err(crate::ApiError::invalid(
            f,
            "is required: an existing unit or a new unit",
        )),
        Some(pb::successor::Successor::Existing(unit)) => Ok(d::Successor::Existing {
            unit: id(&field(&f, "existing"), unit, "units")?,
        }),
        Some(pb::successor::Successor::NewUnit(n)) => {
            let f = field(&f, "new_unit");
            Ok(d::Successor::New(d::NewUnit {
                unit: new_id(&field(&f, "unit_id"), &n.unit_id, "units")?,
                kind: unit_kind(&field(&f, "kind"), n.kind)?,
                level: level(&field(&f, "level"), n.level)?,
                name: text(&field(&f, "display_name"), &n.display_name)?,
                parents: ids(&field(&f, "parents"), &n.parents, "units")?,
            }))
        }
    }
}

/// A holding from its start, or, when its end is given, a past holding recorded with its end.
fn start_holding(r: &pb::StartHoldingRequest) -> Parsed<Command> {
    let holding = new_id("holding_id", &r.holding_id, "holdings")?;
    let person = id("person", &r.person, "persons")?;
    let office = id("office", &r.office, "offices")?;
    let start = partial_date("valid_from", &r.valid_from)?;
    let beginning = beginning("beginning", r.beginning, "cause", &r.cause)?;
    let term = opt_id("term", &r.term, "terms")?;
    let basis = opt_basis("basis", r.basis.as_ref())?;
    let end = holding_end(
        "valid_until",
        &r.valid_until,
        "end_unknown",
        r.end_unknown,
        true,
    )?;
    if end == d::HoldingEnd::Open {
        if r.end_reason != 0 {
            return Err(crate::ApiError::invalid(
                "end_reason",
                "is only for a holding whose end is given",
            ));
        }
        return Ok(Command::StartHolding {
            holding,
            person,
            office,
            start,
            beginning,
            term,
            basis,
        });
    }
    Ok(Command::RecordHolding {
        holding,
        person,
        office,
        start,
        beginning,
        term,
        basis,
        end,
        reason: end_reason("end_reason", r.end_reason)?,
        end_basis: opt_basis("end_basis", r.end_basis.as_ref())?,
    })
}

/// A reorganisation; a new successor without an id gets one, and offices carried to it may name
/// it by the `unit_id` given.
fn reorganisation(r: &pb::ReorganiseUnitsRequest) -> Parsed<d::Reorganisation> {
    let successors: Vec<d::Successor> = r
        .successors
        .iter()
        .enumerate()
        .map(|(i, s)| successor(i, s))
        .collect::<Parsed<_>>()?;
    let offices = r
        .offices
        .iter()
        .enumerate()
        .map(|(i, fate)| {
            let f = format!("offices[{i}]");
            let office: d::OfficeId = id(&field(&f, "office"), &fate.office, "offices")?;
            let fate = match opt_id(&field(&f, "carry_to"), &fate.carry_to, "units")? {
                None => d::OfficeFate::Abolish,
                Some(unit) => d::OfficeFate::CarryTo(unit),
            };
            Ok((office, fate))
        })
        .collect::<Parsed<_>>()?;
    let children = r
        .children
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let f = format!("children[{i}]");
            Ok((
                id(&field(&f, "unit"), &c.unit, "units")?,
                ids(&field(&f, "parents"), &c.parents, "units")?,
            ))
        })
        .collect::<Parsed<_>>()?;
    Ok(d::Reorganisation {
        ending: unit_ending("ending", r.ending)?,
        predecessors: ids("predecessors", &r.predecessors, "units")?,
        successors,
        on: date("valid_from", &r.valid_from)?,
        basis: basis("basis", r.basis.as_ref())?,
        offices,
        children,
    })
}

write_requests! {
    "RegisterPerson", pb::RegisterPersonRequest => RegisterPersonResponse, |r, _| Command::RegisterPerson {
        person: new_id("person_id", &r.person_id, "persons")?,
        name: text("display_name", &r.display_name)?,
        aliases: aliases(&r.aliases)?,
        birth: opt_partial_date("birth", &r.birth)?,
    };
    "RenamePerson", pb::RenamePersonRequest => RenamePersonResponse, |r, _| Command::RenamePerson {
        person: id("person", &r.person, "persons")?,
        name: text("display_name", &r.display_name)?,
        on: date("valid_from", &r.valid_from)?,
    };
    "AddPersonAlias", pb::AddPersonAliasRequest => AddPersonAliasResponse, |r, _| Command::AddPersonAlias {
        person: id("person", &r.person, "persons")?,
        alias: text("alias", &r.alias)?,
    };
    "EstablishUnit", pb::EstablishUnitRequest => EstablishUnitResponse, |r, _| Command::EstablishUnit {
        unit: new_id("unit_id", &r.unit_id, "units")?,
        kind: unit_kind("kind", r.kind)?,
        level: level("level", r.level)?,
        name: text("display_name", &r.display_name)?,
        parents: ids("parents", &r.parents, "units")?,
        on: date("valid_from", &r.valid_from)?,
        basis: basis("basis", r.basis.as_ref())?,
    };
    "RenameUnit", pb::RenameUnitRequest => RenameUnitResponse, |r, _| Command::RenameUnit {
        unit: id("unit", &r.unit, "units")?,
        name: text("display_name", &r.display_name)?,
        on: date("valid_from", &r.valid_from)?,
        basis: basis("basis", r.basis.as_ref())?,
    };
    "MoveUnit", pb::MoveUnitRequest => MoveUnitResponse, |r, _| Command::MoveUnit {
        unit: id("unit", &r.unit, "units")?,
        parents: ids("parents", &r.parents, "units")?,
        on: date("valid_from", &r.valid_from)?,
        basis: basis("basis", r.basis.as_ref())?,
    };
    "ReorganiseUnits", pb::ReorganiseUnitsRequest => ReorganiseUnitsResponse, |r, _| Command::Reorganise(reorganisation(r)?);
    "CreateOffice", pb::CreateOfficeRequest => CreateOfficeResponse, |r, _| Command::CreateOffice {
        office: new_id("office_id", &r.office_id, "offices")?,
        unit: id("unit", &r.unit, "units")?,
        title: text("title", &r.title)?,
        kind: office_kind("kind", r.kind)?,
        capacity: capacity("capacity", r.capacity.as_ref())?,
        on: date("valid_from", &r.valid_from)?,
        basis: opt_basis("basis", r.basis.as_ref())?,
    };
    "AbolishOffice", pb::AbolishOfficeRequest => AbolishOfficeResponse, |r, _| Command::AbolishOffice {
        office: id("office", &r.office, "offices")?,
        on: date("valid_from", &r.valid_from)?,
        basis: opt_basis("basis", r.basis.as_ref())?,
    };
    "StartHolding", pb::StartHoldingRequest => StartHoldingResponse, |r, _| start_holding(r)?;
    "EndHolding", pb::EndHoldingRequest => EndHoldingResponse, |r, _| Command::EndHolding {
        holding: id("holding", &r.holding, "holdings")?,
        end: holding_end("valid_until", &r.valid_until, "end_unknown", r.end_unknown, false)?,
        reason: end_reason("reason", r.reason)?,
        basis: opt_basis("basis", r.basis.as_ref())?,
    };
    "DefineModel", pb::DefineModelRequest => DefineModelResponse, |r, _| Command::DefineModel {
        model: new_id("model_id", &r.model_id, "models")?,
        name: text("display_name", &r.display_name)?,
        arrangement: arrangement("arrangement", r.arrangement.as_ref())?,
        authorised_by: basis("authorised_by", r.authorised_by.as_ref())?,
    };
    "AdoptModel", pb::AdoptModelRequest => AdoptModelResponse, |r, _| Command::AdoptModel {
        adoption: new_id("adoption_id", &r.adoption_id, "adoptions")?,
        model: id("model", &r.model, "models")?,
        unit: id("unit", &r.unit, "units")?,
        on: date("valid_from", &r.valid_from)?,
        basis: basis("basis", r.basis.as_ref())?,
    };
    "WithdrawModel", pb::WithdrawModelRequest => WithdrawModelResponse, |r, _| Command::WithdrawModel {
        adoption: id("adoption", &r.adoption, "adoptions")?,
        on: date("valid_from", &r.valid_from)?,
        basis: basis("basis", r.basis.as_ref())?,
    };
    "OpenTerm", pb::OpenTermRequest => OpenTermResponse, |r, _| Command::OpenTerm {
        term: new_id("term_id", &r.term_id, "terms")?,
        body: id("body", &r.body, "units")?,
        label: text("label", &r.label)?,
        start: date("valid_from", &r.valid_from)?,
        planned_end: opt_date("planned_until", &r.planned_until)?,
    };
    "CorrectPerson", pb::CorrectPersonRequest => CorrectPersonResponse, |r, actor| {
        let f = Restated::of(
            r.update_mask.as_ref(),
            &[("display_name", !r.display_name.is_empty()), ("birth", !r.birth.is_empty())],
        )?;
        Command::CorrectPerson {
            person: id("person", &r.person, "persons")?,
            after: d::PersonPatch {
                name: f.then("display_name", || text("display_name", &r.display_name))?,
                birth: f.then("birth", || opt_partial_date("birth", &r.birth))?,
            },
            amendment: amendment("amendment", r.amendment.as_ref(), actor)?,
        }
    };
    "CorrectOffice", pb::CorrectOfficeRequest => CorrectOfficeResponse, |r, actor| {
        let f = Restated::of(
            r.update_mask.as_ref(),
            &[
                ("title", !r.title.is_empty()),
                ("kind", r.kind != 0),
                ("capacity", r.capacity.is_some()),
                ("valid_from", !r.valid_from.is_empty()),
                ("valid_until", !r.valid_until.is_empty()),
            ],
        )?;
        Command::CorrectOffice {
            office: id("office", &r.office, "offices")?,
            after: d::OfficePatch {
                title: f.then("title", || text("title", &r.title))?,
                kind: f.then("kind", || office_kind("kind", r.kind))?,
                capacity: f.then("capacity", || capacity("capacity", r.capacity.as_ref()))?,
                established: f.then("valid_from", || date("valid_from", &r.valid_from))?,
                abolished: f.then("valid_until", || opt_date("valid_until", &r.valid_until))?,
            },
            amendment: amendment("amendment", r.amendment.as_ref(), actor)?,
        }
    };
    "CorrectHolding", pb::CorrectHoldingRequest => CorrectHoldingResponse, previewed, |r, actor| {
        let f = Restated::of(
            r.update_mask.as_ref(),
            &[
                ("person", !r.person.is_empty()),
                ("office", !r.office.is_empty()),
                ("valid_from", !r.valid_from.is_empty()),
                ("valid_until", !r.valid_until.is_empty()),
                ("end_unknown", r.end_unknown),
                ("beginning", r.beginning != 0),
                ("cause", !r.cause.is_empty()),
                ("end_reason", r.end_reason != 0),
                ("term", !r.term.is_empty()),
                ("basis", r.basis.as_ref().is_some_and(|b| *b != pb::LegalBasis::default())),
            ],
        )?;
        Command::CorrectHolding {
            holding: id("holding", &r.holding, "holdings")?,
            after: d::HoldingPatch {
                person: f.then("person", || id("person", &r.person, "persons"))?,
                office: f.then("office", || id("office", &r.office, "offices"))?,
                start: f.then("valid_from", || partial_date("valid_from", &r.valid_from))?,
                // The end is one fact, restated from both of its fields.
                end: f.then_any(&["valid_until", "end_unknown"], || {
                    holding_end("valid_until", &r.valid_until, "end_unknown", r.end_unknown, true)
                })?,
                beginning: f.then_any(&["beginning", "cause"], || {
                    beginning("beginning", r.beginning, "cause", &r.cause)
                })?,
                end_reason: f.then("end_reason", || {
                    if r.end_reason == 0 {
                        Ok(None)
                    } else {
                        end_reason("end_reason", r.end_reason).map(Some)
                    }
                })?,
                term: f.then("term", || opt_id("term", &r.term, "terms"))?,
                basis: f.then("basis", || opt_basis("basis", r.basis.as_ref()))?,
            },
            amendment: amendment("amendment", r.amendment.as_ref(), actor)?,
        }
    };
    "RetractRecord", pb::RetractRecordRequest => RetractRecordResponse, |r, actor| Command::Retract {
        target: entity("name", &r.name)?,
        amendment: amendment("amendment", r.amendment.as_ref(), actor)?,
    };
}
