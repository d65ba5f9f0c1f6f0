//! The query service: who held an office, which offices a person held, what a unit looked like,
//! how many units applied a pilot model, on any date and as known at any recorded instant.
//!
//! Answers come from the replica's [`Reader`]: each call first waits (within its deadline) for
//! the `min_position` it names, then reads the projection under a read lock, without awaiting.

use registry_domain::{Date, OfficeId, PersonId, Span, TermId, UnitId};
use registry_eventstore::Position;
use registry_projections::{CoverageError, HoldingView, Instant, MatchKind, Projection};
use registry_proto::v1 as pb;
use registry_proto::v1::query_service_server::{QueryService, QueryServiceServer};
use registry_service_core::convert::{
    basis_pb, beginning_pb, capacity_pb, date, end_reason_pb, id, known_at, level, level_pb,
    office_kind_pb, timestamp, unit_kind_pb,
};
use registry_service_core::page;
use registry_service_core::paging::{page_size_of, Snapshot};
use registry_service_core::serve::{patience, GZIP};
use registry_service_core::{min_position, read, read_batch, ApiError, ReadModels, Reader};
use tonic::{Request, Response, Status};

/// The gRPC service name, for health checking.
pub const SERVICE_NAME: &str = "registry.v1.QueryService";

/// The query service over a replica's read models.
pub struct QueryApi {
    reader: Reader,
}

impl QueryApi {
    /// The service, with the request size limit applied.
    pub fn server(reader: Reader, max_message_bytes: usize) -> QueryServiceServer<Self> {
        QueryServiceServer::new(Self { reader })
            .max_decoding_message_size(max_message_bytes)
            .accept_compressed(GZIP)
            .send_compressed(GZIP)
    }
}

type Answer<T> = Result<Response<T>, Status>;

/// Default and largest page sizes.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// A holding as the API shows it.
pub fn holding_pb(p: &Projection, h: &HoldingView<'_>, known_at: Option<Instant>) -> pb::Holding {
    let (beginning, cause) = beginning_pb(h.beginning);
    let (end, end_unknown) = match h.end {
        registry_domain::HoldingEnd::Open => (String::new(), false),
        registry_domain::HoldingEnd::Unknown => (String::new(), true),
        registry_domain::HoldingEnd::On(day) => (day.to_string(), false),
    };
    pb::Holding {
        name: h.holding.resource_name(),
        person: h.person.resource_name(),
        person_display_name: p.holder_name(h, known_at).unwrap_or_default(),
        office: h.office.resource_name(),
        office_title: p
            .holding_office_title(h, known_at)
            .unwrap_or_default()
            .to_owned(),
        start: h.start.to_string(),
        end,
        end_unknown,
        beginning: beginning as i32,
        cause,
        end_reason: h.end_reason.map_or(0, |r| end_reason_pb(r) as i32),
        term: h.term.map(TermId::resource_name).unwrap_or_default(),
        basis: h.basis.as_ref().map(basis_pb),
        end_basis: h.end_basis.as_ref().map(basis_pb),
        recorded_at: Some(timestamp(h.recorded_at)),
        unit: p
            .holding_unit(h, known_at)
            .map(UnitId::resource_name)
            .unwrap_or_default(),
    }
}

fn unit_pb(
    p: &Projection,
    unit: registry_domain::UnitId,
    on: Date,
    known_at: Option<Instant>,
) -> Option<pb::Unit> {
    let view = p.unit_on(unit, on, known_at)?;
    let names = |ids: Vec<_>| {
        ids.into_iter()
            .map(|i: registry_domain::UnitId| i.to_string())
            .collect()
    };
    Some(pb::Unit {
        name: view.unit.to_string(),
        kind: unit_kind_pb(view.kind) as i32,
        level: level_pb(view.level) as i32,
        display_name: view.name,
        valid_from: view.life.start.to_string(),
        valid_until: view.life.end.map(|d| d.to_string()).unwrap_or_default(),
        parents: names(view.parents),
        children: names(view.children),
        offices: view.offices.into_iter().map(|o| o.to_string()).collect(),
    })
}

fn office_pb(view: registry_projections::OfficeView) -> pb::Office {
    pb::Office {
        name: view.office.to_string(),
        unit: view.unit.map(|u| u.to_string()).unwrap_or_default(),
        title: view.title,
        kind: office_kind_pb(view.kind) as i32,
        capacity: Some(capacity_pb(view.capacity)),
        valid_from: view.life.start.to_string(),
        valid_until: view.life.end.map(|d| d.to_string()).unwrap_or_default(),
    }
}

/// The day and instant of a whole-registry list, and its page (the default and largest page
/// sizes of such lists: 1000 and 10000).
macro_rules! whole_registry_page {
    ($rpc:expr, $r:expr) => {{
        let r = &$r;
        Ok::<_, ApiError>((
            date("date", &r.date)?,
            known_at("known_at", r.known_at.as_ref())?,
            registry_service_core::page!($rpc, *r, 1000, 10_000, clear min_position)?,
        ))
    }};
}

/// A dated read of a unit or an office on a day outside its life is NOT_FOUND, naming the
/// resource, the day and the life (so "no holders" never stands for "no such office then").
fn alive_on(resource: impl std::fmt::Display, life: Span, on: Date) -> Result<(), ApiError> {
    if life.contains(on) {
        return Ok(());
    }
    let life = match life.end {
        Some(end) => format!(
            "it existed from {} to {} (its last day)",
            life.start,
            end.previous_day()
        ),
        None => format!("it exists from {}", life.start),
    };
    Err(ApiError::NotOnDay {
        resource: resource.to_string(),
        day: on.to_string(),
        life,
    })
}

/// A person's registered birth date as the API writes it (empty when not known).
fn birth_text(p: &Projection, person: PersonId, known_at: Option<Instant>) -> String {
    p.person_birth(person, known_at)
        .map(|b| b.to_string())
        .unwrap_or_default()
}

fn position_text(position: Option<registry_eventstore::Position>) -> String {
    position.map(|p| p.to_string()).unwrap_or_default()
}

fn person_known(
    p: &Projection,
    person: PersonId,
    known_at: Option<Instant>,
) -> Result<(), ApiError> {
    if p.knows_person(person, known_at) {
        Ok(())
    } else {
        Err(ApiError::NotFound(person.to_string()))
    }
}

fn min(r: &str) -> Result<Option<registry_eventstore::Position>, ApiError> {
    min_position("min_position", r)
}

/// What GetOfficeHolders asks: the office, the day, as known when; and the position to wait for.
type HoldersAsked = ((OfficeId, Date, Option<Instant>), Option<Position>);

fn holders_asked(r: pb::GetOfficeHoldersRequest) -> Result<HoldersAsked, ApiError> {
    let office = id("office", &r.office, "offices")?;
    Ok((
        (
            office,
            date("date", &r.date)?,
            known_at("known_at", r.known_at.as_ref())?,
        ),
        min(&r.min_position)?,
    ))
}

/// GetOfficeHolders' answer: who surely held the office on the day, who may have, the seats.
fn holders_answer(
    (office, on, known_at): (OfficeId, Date, Option<Instant>),
    models: &ReadModels,
) -> Result<pb::GetOfficeHoldersResponse, ApiError> {
    let p = &models.projection;
    let life = p
        .office_span(office, known_at)
        .ok_or_else(|| ApiError::NotFound(office.to_string()))?;
    alive_on(office, life, on)?;
    let holders = p.holders(office, on, known_at);
    let possible = p.possible_holders(office, on, known_at);
    let seats = p
        .office_on(office, on, known_at)
        .and_then(|o| o.capacity.limit())
        .unwrap_or(0);
    Ok(pb::GetOfficeHoldersResponse {
        vacant: holders.is_empty() && possible.is_empty(),
        seats_filled: i32::try_from(holders.len()).unwrap_or(i32::MAX),
        seats: i32::try_from(seats).unwrap_or(i32::MAX),
        holdings: holders.iter().map(|h| holding_pb(p, h, known_at)).collect(),
        possible_holdings: possible
            .iter()
            .map(|h| holding_pb(p, h, known_at))
            .collect(),
        position: position_text(models.position),
    })
}

/// What ListPersonOffices asks: the person, the day, as known when; and the position to wait for.
type OfficesAsked = ((PersonId, Date, Option<Instant>), Option<Position>);

fn offices_asked(r: pb::ListPersonOfficesRequest) -> Result<OfficesAsked, ApiError> {
    let person = id("person", &r.person, "persons")?;
    Ok((
        (
            person,
            date("date", &r.date)?,
            known_at("known_at", r.known_at.as_ref())?,
        ),
        min(&r.min_position)?,
    ))
}

/// ListPersonOffices' answer: the holdings that surely cover the day, and those that may.
fn offices_answer(
    (person, on, known_at): (PersonId, Date, Option<Instant>),
    models: &ReadModels,
) -> Result<pb::ListPersonOfficesResponse, ApiError> {
    let p = &models.projection;
    person_known(p, person, known_at)?;
    let pbs = |views: Vec<HoldingView>| views.iter().map(|h| holding_pb(p, h, known_at)).collect();
    Ok(pb::ListPersonOfficesResponse {
        holdings: pbs(p.offices_of(person, on, known_at)),
        possible_holdings: pbs(p.possible_offices_of(person, on, known_at)),
        position: position_text(models.position),
    })
}

#[tonic::async_trait]
impl QueryService for QueryApi {
    async fn get_office_holders(
        &self,
        request: Request<pb::GetOfficeHoldersRequest>,
    ) -> Answer<pb::GetOfficeHoldersResponse> {
        read(
            &self.reader,
            "GetOfficeHolders",
            request,
            holders_asked,
            holders_answer,
        )
        .await
    }

    async fn batch_get_office_holders(
        &self,
        request: Request<pb::BatchGetOfficeHoldersRequest>,
    ) -> Answer<pb::BatchGetOfficeHoldersResponse> {
        let wait = patience(&request);
        read_batch(
            &self.reader,
            "BatchGetOfficeHolders",
            wait,
            request.into_inner().requests,
            holders_asked,
            holders_answer,
            |outcomes, models| pb::BatchGetOfficeHoldersResponse {
                answers: outcomes
                    .into_iter()
                    .map(|outcome| pb::OfficeHoldersAnswer {
                        outcome: Some(match outcome {
                            Ok(holders) => pb::office_holders_answer::Outcome::Holders(holders),
                            Err(e) => pb::office_holders_answer::Outcome::Error(e),
                        }),
                    })
                    .collect(),
                position: position_text(models.position),
            },
        )
        .await
    }

    async fn get_holding(
        &self,
        request: Request<pb::GetHoldingRequest>,
    ) -> Answer<pb::GetHoldingResponse> {
        read(
            &self.reader,
            "GetHolding",
            request,
            |r| {
                Ok((
                    (
                        id("name", &r.name, "holdings")?,
                        known_at("known_at", r.known_at.as_ref())?,
                    ),
                    min(&r.min_position)?,
                ))
            },
            |(holding, known_at), models| {
                let p = &models.projection;
                let view = p
                    .holding(holding, known_at)
                    .ok_or_else(|| ApiError::NotFound(holding.to_string()))?;
                Ok(pb::GetHoldingResponse {
                    holding: Some(holding_pb(p, &view, known_at)),
                    position: position_text(models.position),
                })
            },
        )
        .await
    }

    async fn list_holdings(
        &self,
        request: Request<pb::ListHoldingsRequest>,
    ) -> Answer<pb::ListHoldingsResponse> {
        read(
            &self.reader,
            "ListHoldings",
            request,
            |r| {
                Ok((
                    whole_registry_page!("ListHoldings", r)?,
                    min(&r.min_position)?,
                ))
            },
            |(on, known_at, page), models| {
                let p = &models.projection;
                let known_at = page.known_at(known_at);
                let found = p.holdings_on(on, known_at, page.from(), page.size);
                let pbs = |views: &[HoldingView]| {
                    views.iter().map(|h| holding_pb(p, h, known_at)).collect()
                };
                Ok(pb::ListHoldingsResponse {
                    holdings: pbs(&found.surely),
                    possible_holdings: pbs(&found.possibly),
                    next_page_token: page.offset_token(Snapshot::of(models), found.next),
                    position: position_text(models.position),
                })
            },
        )
        .await
    }

    async fn list_office_history(
        &self,
        request: Request<pb::ListOfficeHistoryRequest>,
    ) -> Answer<pb::ListOfficeHistoryResponse> {
        read(
            &self.reader,
            "ListOfficeHistory",
            request,
            |r| {
                let office = id("office", &r.office, "offices")?;
                Ok((
                    (
                        office,
                        known_at("known_at", r.known_at.as_ref())?,
                        page!("ListOfficeHistory", r, DEFAULT_PAGE, MAX_PAGE, clear min_position)?,
                    ),
                    min(&r.min_position)?,
                ))
            },
            |(office, known_at, page), models| {
                let p = &models.projection;
                let known_at = page.known_at(known_at);
                p.office_title(office, known_at)
                    .ok_or_else(|| ApiError::NotFound(office.to_string()))?;
                let (views, next_page_token) =
                    page.of(p.office_history(office, known_at), Snapshot::of(models));
                let holdings = views.iter().map(|h| holding_pb(p, h, known_at)).collect();
                Ok(pb::ListOfficeHistoryResponse {
                    holdings,
                    next_page_token,
                    position: position_text(models.position),
                })
            },
        )
        .await
    }

    async fn list_person_offices(
        &self,
        request: Request<pb::ListPersonOfficesRequest>,
    ) -> Answer<pb::ListPersonOfficesResponse> {
        read(
            &self.reader,
            "ListPersonOffices",
            request,
            offices_asked,
            offices_answer,
        )
        .await
    }

    async fn batch_list_person_offices(
        &self,
        request: Request<pb::BatchListPersonOfficesRequest>,
    ) -> Answer<pb::BatchListPersonOfficesResponse> {
        let wait = patience(&request);
        read_batch(
            &self.reader,
            "BatchListPersonOffices",
            wait,
            request.into_inner().requests,
            offices_asked,
            offices_answer,
            |outcomes, models| pb::BatchListPersonOfficesResponse {
                answers: outcomes
                    .into_iter()
                    .map(|outcome| pb::PersonOfficesAnswer {
                        outcome: Some(match outcome {
                            Ok(offices) => pb::person_offices_answer::Outcome::Offices(offices),
                            Err(e) => pb::person_offices_answer::Outcome::Error(e),
                        }),
                    })
                    .collect(),
                position: position_text(models.position),
            },
        )
        .await
    }

    async fn list_person_career(
        &self,
        request: Request<pb::ListPersonCareerRequest>,
    ) -> Answer<pb::ListPersonCareerResponse> {
        read(
            &self.reader,
            "ListPersonCareer",
            request,
            |r| {
                let person = id("person", &r.person, "persons")?;
                Ok((
                    (
                        person,
                        known_at("known_at", r.known_at.as_ref())?,
                        page!("ListPersonCareer", r, DEFAULT_PAGE, MAX_PAGE, clear min_position)?,
                    ),
                    min(&r.min_position)?,
                ))
            },
            |(person, known_at, page), models| {
                let p = &models.projection;
                let known_at = page.known_at(known_at);
                person_known(p, person, known_at)?;
                let (views, next_page_token) =
                    page.of(p.career(person, known_at), Snapshot::of(models));
                let holdings = views.iter().map(|h| holding_pb(p, h, known_at)).collect();
                Ok(pb::ListPersonCareerResponse {
                    holdings,
                    next_page_token,
                    position: position_text(models.position),
                })
            },
        )
        .await
    }

    async fn get_person(
        &self,
        request: Request<pb::GetPersonRequest>,
    ) -> Answer<pb::GetPersonResponse> {
        read(
            &self.reader,
            "GetPerson",
            request,
            |r| {
                let person: PersonId = id("name", &r.name, "persons")?;
                Ok((
                    (
                        person,
                        date("date", &r.date)?,
                        known_at("known_at", r.known_at.as_ref())?,
                    ),
                    min(&r.min_position)?,
                ))
            },
            |(person, on, known_at), models| {
                let display_name = models
                    .projection
                    .person_name(person, on, known_at)
                    .ok_or_else(|| ApiError::NotFound(person.to_string()))?;
                Ok(pb::GetPersonResponse {
                    name: person.to_string(),
                    birth: birth_text(&models.projection, person, known_at),
                    display_name,
                    position: position_text(models.position),
                })
            },
        )
        .await
    }

    async fn search_persons(
        &self,
        request: Request<pb::SearchPersonsRequest>,
    ) -> Answer<pb::SearchPersonsResponse> {
        read(
            &self.reader,
            "SearchPersons",
            request,
            |r| {
                if r.query.trim().is_empty() {
                    return Err(ApiError::invalid("query", "is required"));
                }
                if r.query.chars().count() > registry_domain::MAX_NAME_CHARS {
                    return Err(ApiError::invalid(
                        "query",
                        format!(
                            "is longer than {} characters",
                            registry_domain::MAX_NAME_CHARS
                        ),
                    ));
                }
                let limit = page_size_of(r.page_size, 20, MAX_PAGE)?;
                let min = min(&r.min_position)?;
                Ok(((r.query, limit), min))
            },
            |(query, limit), models| {
                let p = &models.projection;
                let matches = p
                    .search(&query, limit)
                    .into_iter()
                    .map(|(person, display_name, kind)| pb::PersonMatch {
                        person: person.to_string(),
                        display_name,
                        match_kind: match kind {
                            MatchKind::Exact => pb::MatchKind::Exact,
                            MatchKind::Folded => pb::MatchKind::Folded,
                            MatchKind::Words => pb::MatchKind::Words,
                        } as i32,
                        birth: birth_text(p, person, None),
                        latest_holding: p
                            .latest_holding(person, None)
                            .map(|h| holding_pb(p, &h, None)),
                    })
                    .collect();
                Ok(pb::SearchPersonsResponse {
                    matches,
                    position: position_text(models.position),
                })
            },
        )
        .await
    }

    async fn get_office(
        &self,
        request: Request<pb::GetOfficeRequest>,
    ) -> Answer<pb::GetOfficeResponse> {
        read(
            &self.reader,
            "GetOffice",
            request,
            |r| {
                let office = id("name", &r.name, "offices")?;
                Ok((
                    (
                        office,
                        date("date", &r.date)?,
                        known_at("known_at", r.known_at.as_ref())?,
                    ),
                    min(&r.min_position)?,
                ))
            },
            |(office, on, known_at), models| {
                let view = models
                    .projection
                    .office_on(office, on, known_at)
                    .ok_or_else(|| ApiError::NotFound(office.to_string()))?;
                alive_on(office, view.life, on)?;
                Ok(pb::GetOfficeResponse {
                    office: Some(office_pb(view)),
                    position: position_text(models.position),
                })
            },
        )
        .await
    }

    async fn list_offices(
        &self,
        request: Request<pb::ListOfficesRequest>,
    ) -> Answer<pb::ListOfficesResponse> {
        read(
            &self.reader,
            "ListOffices",
            request,
            |r| {
                Ok((
                    whole_registry_page!("ListOffices", r)?,
                    min(&r.min_position)?,
                ))
            },
            |(on, known_at, page), models| {
                let p = &models.projection;
                let known_at = page.known_at(known_at);
                let (ids, next) = p.office_ids(page.from(), page.size);
                let offices = ids
                    .into_iter()
                    .filter_map(|o| p.office_on(o, on, known_at))
                    .filter(|o| o.life.contains(on))
                    .map(office_pb)
                    .collect();
                Ok(pb::ListOfficesResponse {
                    offices,
                    next_page_token: page.offset_token(Snapshot::of(models), next),
                    position: position_text(models.position),
                })
            },
        )
        .await
    }

    async fn list_units(
        &self,
        request: Request<pb::ListUnitsRequest>,
    ) -> Answer<pb::ListUnitsResponse> {
        read(
            &self.reader,
            "ListUnits",
            request,
            |r| Ok((whole_registry_page!("ListUnits", r)?, min(&r.min_position)?)),
            |(on, known_at, page), models| {
                let p = &models.projection;
                let known_at = page.known_at(known_at);
                let (ids, next) = p.unit_ids(page.from(), page.size);
                let units = ids
                    .into_iter()
                    .filter(|u| {
                        p.unit_span(*u, known_at)
                            .is_some_and(|life| life.contains(on))
                    })
                    .filter_map(|u| unit_pb(p, u, on, known_at))
                    .collect();
                Ok(pb::ListUnitsResponse {
                    units,
                    next_page_token: page.offset_token(Snapshot::of(models), next),
                    position: position_text(models.position),
                })
            },
        )
        .await
    }

    async fn list_persons(
        &self,
        request: Request<pb::ListPersonsRequest>,
    ) -> Answer<pb::ListPersonsResponse> {
        read(
            &self.reader,
            "ListPersons",
            request,
            |r| {
                Ok((
                    whole_registry_page!("ListPersons", r)?,
                    min(&r.min_position)?,
                ))
            },
            |(on, known_at, page), models| {
                let p = &models.projection;
                let known_at = page.known_at(known_at);
                let (ids, next) = p.person_ids(page.from(), page.size);
                let persons = ids
                    .into_iter()
                    .filter_map(|person| {
                        let display_name = p.person_name(person, on, known_at)?;
                        Some(pb::Person {
                            name: person.to_string(),
                            birth: birth_text(p, person, known_at),
                            display_name,
                        })
                    })
                    .collect();
                Ok(pb::ListPersonsResponse {
                    persons,
                    next_page_token: page.offset_token(Snapshot::of(models), next),
                    position: position_text(models.position),
                })
            },
        )
        .await
    }

    async fn get_unit(&self, request: Request<pb::GetUnitRequest>) -> Answer<pb::GetUnitResponse> {
        read(
            &self.reader,
            "GetUnit",
            request,
            |r| {
                let unit = id("name", &r.name, "units")?;
                Ok((
                    (
                        unit,
                        date("date", &r.date)?,
                        known_at("known_at", r.known_at.as_ref())?,
                    ),
                    min(&r.min_position)?,
                ))
            },
            |(unit, on, known_at), models| {
                let life = models
                    .projection
                    .unit_span(unit, known_at)
                    .ok_or_else(|| ApiError::NotFound(unit.to_string()))?;
                alive_on(unit, life, on)?;
                let unit = unit_pb(&models.projection, unit, on, known_at)
                    .ok_or_else(|| ApiError::NotFound(unit.to_string()))?;
                Ok(pb::GetUnitResponse {
                    unit: Some(unit),
                    position: position_text(models.position),
                })
            },
        )
        .await
    }

    async fn list_unit_tree(
        &self,
        request: Request<pb::ListUnitTreeRequest>,
    ) -> Answer<pb::ListUnitTreeResponse> {
        read(
            &self.reader,
            "ListUnitTree",
            request,
            |r| {
                let root = id("root", &r.root, "units")?;
                let on = date("date", &r.date)?;
                Ok((
                    (
                        root,
                        on,
                        known_at("known_at", r.known_at.as_ref())?,
                        page!("ListUnitTree", r, DEFAULT_PAGE, MAX_PAGE, clear min_position)?,
                    ),
                    min(&r.min_position)?,
                ))
            },
            |(root, on, known_at, page), models| {
                let p = &models.projection;
                let known_at = page.known_at(known_at);
                let life = p
                    .unit_span(root, known_at)
                    .ok_or_else(|| ApiError::NotFound(root.to_string()))?;
                alive_on(root, life, on)?;
                let tree = p.tree(root, on, known_at);
                let (ids, next_page_token) = page.of(tree, Snapshot::of(models));
                let units = ids
                    .into_iter()
                    .filter_map(|u| unit_pb(p, u, on, known_at))
                    .collect();
                Ok(pb::ListUnitTreeResponse {
                    units,
                    next_page_token,
                    position: position_text(models.position),
                })
            },
        )
        .await
    }

    async fn get_unit_lineage(
        &self,
        request: Request<pb::GetUnitLineageRequest>,
    ) -> Answer<pb::GetUnitLineageResponse> {
        read(
            &self.reader,
            "GetUnitLineage",
            request,
            |r| {
                Ok((
                    (
                        id("name", &r.name, "units")?,
                        known_at("known_at", r.known_at.as_ref())?,
                    ),
                    min(&r.min_position)?,
                ))
            },
            |(unit, known_at), models| {
                let p = &models.projection;
                p.unit_span(unit, known_at)
                    .ok_or_else(|| ApiError::NotFound(unit.to_string()))?;
                let lineage = p.lineage(unit, known_at);
                let links = |links: Vec<(registry_domain::UnitId, Date)>| {
                    links
                        .into_iter()
                        .map(|(unit, on)| pb::LineageLink {
                            unit: unit.to_string(),
                            valid_from: on.to_string(),
                        })
                        .collect()
                };
                Ok(pb::GetUnitLineageResponse {
                    predecessors: links(lineage.predecessors),
                    successors: links(lineage.successors),
                    position: position_text(models.position),
                })
            },
        )
        .await
    }

    async fn get_model_coverage(
        &self,
        request: Request<pb::GetModelCoverageRequest>,
    ) -> Answer<pb::GetModelCoverageResponse> {
        read(
            &self.reader,
            "GetModelCoverage",
            request,
            |r| {
                let model = id("model", &r.model, "models")?;
                let jurisdiction = id("jurisdiction", &r.jurisdiction, "units")?;
                let level = level("level", r.level)?;
                let on = date("date", &r.date)?;
                Ok((
                    (
                        model,
                        jurisdiction,
                        level,
                        on,
                        known_at("known_at", r.known_at.as_ref())?,
                    ),
                    min(&r.min_position)?,
                ))
            },
            |(model, jurisdiction, level, on, known_at), models| {
                if let Some(life) = models.projection.unit_span(jurisdiction, known_at) {
                    alive_on(jurisdiction, life, on)?;
                }
                let coverage = models
                    .projection
                    .coverage(model, jurisdiction, level, on, known_at)
                    .map_err(|e| match e {
                        CoverageError::UnknownModel(model) => ApiError::NotFound(model.to_string()),
                        CoverageError::UnknownUnit(unit) => ApiError::NotFound(unit.to_string()),
                        CoverageError::NotAnArea { .. } => {
                            ApiError::invalid("jurisdiction", e.to_string())
                        }
                    })?;
                let names = |ids: Vec<registry_domain::UnitId>| {
                    ids.into_iter().map(|u| u.to_string()).collect()
                };
                Ok(pb::GetModelCoverageResponse {
                    unit_count: i32::try_from(coverage.units).unwrap_or(i32::MAX),
                    declared_only: names(coverage.declared_only()),
                    observed_only: names(coverage.observed_only()),
                    declared: names(coverage.declared),
                    observed: names(coverage.observed),
                    uncertain: names(coverage.uncertain),
                    position: position_text(models.position),
                })
            },
        )
        .await
    }
}
