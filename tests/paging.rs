//! Paging past the first page of every list RPC, over real gRPC, while writes arrive between
//! the pages: the pages together are the listing as it stood at the first page (nothing
//! skipped, nothing repeated, nothing recorded later), and page tokens are sealed: a made-up,
//! altered or foreign token is INVALID_ARGUMENT naming `page_token` (issue 22, item 15).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use registry_client::{request_id, v1, Client};
use support::{basis, Daemon, Registrar};
use tonic::Code;
use v1::{CapacityKind as Cap, Level, OfficeKind as Off, UnitKind as Kind};

const DAY: &str = "2024-03-18";

/// Records, between two pages, something of every kind a listing could show.
struct Writes {
    r: Registrar,
    province: String,
    members: String,
    rounds: usize,
}

impl Writes {
    /// A person holding a membership without a basis (a flag), a commune with a committee
    /// and its chair, and a change to the province: the position of the last.
    async fn more(&mut self) -> String {
        self.rounds += 1;
        let person = self.r.person(&format!("Người Mới {}", self.rounds)).await;
        member(&self.r.client, &person, &self.members).await;
        commune(
            &mut self.r,
            &self.province,
            &format!("xã Mới {}", self.rounds),
        )
        .await;
        self.r
            .client
            .command()
            .rename_unit(v1::RenameUnitRequest {
                request_id: request_id(),
                unit: self.province.clone(),
                display_name: format!("Tỉnh Thử {}", self.rounds),
                valid_from: "2024-01-01".into(),
                basis: Some(basis("9/NQ")),
            })
            .await
            .unwrap()
            .into_inner()
            .result
            .unwrap()
            .commit_position
    }
}

/// A commune of `province` with its People's Committee and the committee's Chair.
async fn commune(r: &mut Registrar, province: &str, name: &str) {
    let area = r
        .unit(Kind::AdministrativeArea, Level::Commune, name, &[province])
        .await;
    let committee = r
        .unit(
            Kind::PeoplesCommittee,
            Level::Commune,
            &format!("UBND {name}"),
            &[&area],
        )
        .await;
    r.office(
        &committee,
        &format!("Chủ tịch UBND {name}"),
        Off::Chair,
        Cap::Sole,
        0,
    )
    .await;
}

/// A membership of `person` in `office` from 2020, without a legal basis.
async fn member(client: &Client, person: &str, office: &str) -> String {
    client
        .command()
        .start_holding(v1::StartHoldingRequest {
            request_id: request_id(),
            person: person.into(),
            office: office.into(),
            valid_from: "2020-01-01".into(),
            beginning: v1::BeginningKind::Elected as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap()
        .commit_position
}

/// The listing `fetch` gives (`fetch(page_size, page_token, min_position)` is one page: its
/// items and next token) in one large page, then in pages of `size` with `writes` recorded
/// between every two pages, each later page read once the replica has the writes.
async fn paged<F>(name: &str, fetch: F, size: i32, writes: &mut Writes)
where
    F: AsyncFn(i32, String, String) -> (Vec<String>, String),
{
    let (whole, rest) = fetch(10_000, String::new(), String::new()).await;
    assert!(rest.is_empty(), "{name}: one large page holds it all");
    let mut pages = 0;
    let mut seen = Vec::new();
    let (mut token, mut position) = (String::new(), String::new());
    loop {
        let (items, next) = fetch(size, token, position.clone()).await;
        pages += 1;
        seen.extend(items);
        if next.is_empty() {
            break;
        }
        position = writes.more().await;
        token = next;
    }
    assert!(pages >= 3, "{name}: {pages} pages of {} items", whole.len());
    assert_eq!(
        seen, whole,
        "{name}: the pages are the listing at the first"
    );
    let (after, _) = fetch(10_000, String::new(), position).await;
    assert!(
        after.len() > whole.len(),
        "{name}: the writes between pages do show in a new listing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listing_pages_as_it_stood_at_its_first_page() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::embedded(dir.path(), &[]);
    let client = daemon.client().await;
    let mut r = Registrar::new(client.clone());
    let province = r
        .unit(Kind::AdministrativeArea, Level::Province, "Tỉnh Thử", &[])
        .await;
    let council = r
        .unit(
            Kind::PeoplesCouncil,
            Level::Province,
            "HĐND tỉnh Thử",
            &[&province],
        )
        .await;
    let members = r
        .office(&council, "Đại biểu HĐND", Off::Member, Cap::Unbounded, 0)
        .await;
    let mut seats = Vec::new();
    for i in 0..5 {
        seats.push(
            r.office(
                &council,
                &format!("Phó Chủ tịch {i}"),
                Off::ViceChair,
                Cap::Sole,
                0,
            )
            .await,
        );
    }
    let veteran = r.person("Nguyễn Lâu Năm").await;
    for (i, seat) in seats.iter().enumerate() {
        r.hold(&veteran, seat, &format!("{}-01-01", 2000 + i), None)
            .await;
    }
    for i in 0..12 {
        let person = r.person(&format!("Đại Biểu {i}")).await;
        member(&client, &person, &members).await;
    }
    for i in 0..6 {
        commune(&mut r, &province, &format!("xã Cũ {i}")).await;
    }
    let mut writes = Writes {
        r: Registrar::new(client.clone()),
        province: province.clone(),
        members: members.clone(),
        rounds: 0,
    };
    let q = client.query();
    let a = client.audit();
    let names = |items: Vec<v1::Holding>| items.into_iter().map(|h| h.name).collect();

    paged(
        "ListPersons",
        async |page_size, page_token, min_position| {
            let r = q
                .clone()
                .list_persons(v1::ListPersonsRequest {
                    date: DAY.into(),
                    page_size,
                    page_token,
                    min_position,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            (
                r.persons.into_iter().map(|p| p.name).collect(),
                r.next_page_token,
            )
        },
        5,
        &mut writes,
    )
    .await;
    paged(
        "ListUnits",
        async |page_size, page_token, min_position| {
            let r = q
                .clone()
                .list_units(v1::ListUnitsRequest {
                    date: DAY.into(),
                    page_size,
                    page_token,
                    min_position,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            (
                r.units
                    .into_iter()
                    .map(|u| format!("{} {}", u.name, u.display_name))
                    .collect(),
                r.next_page_token,
            )
        },
        5,
        &mut writes,
    )
    .await;
    paged(
        "ListOffices",
        async |page_size, page_token, min_position| {
            let r = q
                .clone()
                .list_offices(v1::ListOfficesRequest {
                    date: DAY.into(),
                    page_size,
                    page_token,
                    min_position,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            (
                r.offices.into_iter().map(|o| o.name).collect(),
                r.next_page_token,
            )
        },
        4,
        &mut writes,
    )
    .await;
    paged(
        "ListHoldings",
        async |page_size, page_token, min_position| {
            let r = q
                .clone()
                .list_holdings(v1::ListHoldingsRequest {
                    date: DAY.into(),
                    page_size,
                    page_token,
                    min_position,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            (names(r.holdings), r.next_page_token)
        },
        1,
        &mut writes,
    )
    .await;
    paged(
        "ListOfficeHistory",
        async |page_size, page_token, min_position| {
            let r = q
                .clone()
                .list_office_history(v1::ListOfficeHistoryRequest {
                    office: members.clone(),
                    page_size,
                    page_token,
                    min_position,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            (names(r.holdings), r.next_page_token)
        },
        5,
        &mut writes,
    )
    .await;
    paged(
        "ListUnitTree",
        async |page_size, page_token, min_position| {
            let r = q
                .clone()
                .list_unit_tree(v1::ListUnitTreeRequest {
                    root: province.clone(),
                    date: DAY.into(),
                    page_size,
                    page_token,
                    min_position,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            (
                r.units.into_iter().map(|u| u.name).collect(),
                r.next_page_token,
            )
        },
        5,
        &mut writes,
    )
    .await;
    paged(
        "ListResourceHistory",
        async |page_size, page_token, min_position| {
            let r = a
                .clone()
                .list_resource_history(v1::ListResourceHistoryRequest {
                    name: members.clone(),
                    page_size,
                    page_token,
                    min_position,
                    verify: false,
                })
                .await
                .unwrap()
                .into_inner();
            (
                r.changes.into_iter().map(|c| c.event_id).collect(),
                r.next_page_token,
            )
        },
        5,
        &mut writes,
    )
    .await;
    paged(
        "ListChanges",
        async |page_size, page_token, min_position| {
            if !min_position.is_empty() {
                support::await_position(&client, &min_position).await;
            }
            let r = a
                .clone()
                .list_changes(v1::ListChangesRequest {
                    recorded_after: Some(prost_types::Timestamp::default()),
                    page_size,
                    page_token,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            (
                r.changes.into_iter().map(|c| c.event_id).collect(),
                r.next_page_token,
            )
        },
        20,
        &mut writes,
    )
    .await;
    paged(
        "ListIrregularities",
        async |page_size, page_token, min_position| {
            let r = a
                .clone()
                .list_irregularities(v1::ListIrregularitiesRequest {
                    date: DAY.into(),
                    kinds: vec!["missing_basis".into()],
                    page_size,
                    page_token,
                    min_position,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            (
                r.irregularities
                    .into_iter()
                    .map(|i| i.description)
                    .collect(),
                r.next_page_token,
            )
        },
        4,
        &mut writes,
    )
    .await;
    // A career of five holdings; between pages the veteran takes an office held before all
    // of them, which sorts first and would shift every later page.
    let mut token = String::new();
    let mut career = Vec::new();
    loop {
        let page = q
            .clone()
            .list_person_career(v1::ListPersonCareerRequest {
                person: veteran.clone(),
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        career.extend(page.holdings.into_iter().map(|h| h.office));
        if page.next_page_token.is_empty() {
            break;
        }
        let earlier = r
            .office(&council, "Ủy viên Thường trực", Off::Member, Cap::Sole, 0)
            .await;
        r.hold(&veteran, &earlier, "1990-01-01", None).await;
        token = page.next_page_token;
    }
    assert_eq!(career, seats, "ListPersonCareer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_altered_and_foreign_page_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::embedded(dir.path(), &[]);
    let client = daemon.client().await;
    let mut r = Registrar::new(client.clone());
    for i in 0..4 {
        r.person(&format!("Người {i}")).await;
        r.commune_with_chair(&format!("xã {i}")).await;
    }
    let q = client.query();
    let persons = |date: &str, page_token: &str| v1::ListPersonsRequest {
        date: date.into(),
        page_size: 2,
        page_token: page_token.into(),
        ..Default::default()
    };
    let token = q
        .clone()
        .list_persons(persons(DAY, ""))
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty());
    // The same request goes on, whatever page_size and min_position say.
    q.clone()
        .list_persons(v1::ListPersonsRequest {
            page_size: 3,
            ..persons(DAY, &token)
        })
        .await
        .unwrap();
    let mut altered = token.clone().into_bytes();
    let last = altered.len() / 2;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let refusals = [
        (
            "a bare offset",
            q.clone().list_persons(persons(DAY, "2")).await.err(),
        ),
        (
            "an altered token",
            q.clone().list_persons(persons(DAY, &altered)).await.err(),
        ),
        (
            "a token of another date",
            q.clone()
                .list_persons(persons("2020-01-01", &token))
                .await
                .err(),
        ),
        (
            "a token of another listing",
            q.clone()
                .list_units(v1::ListUnitsRequest {
                    date: DAY.into(),
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await
                .err(),
        ),
    ];
    for (case, status) in refusals {
        let status = status.unwrap_or_else(|| panic!("{case}: accepted"));
        assert_eq!(status.code(), Code::InvalidArgument, "{case}");
        assert!(
            status.message().starts_with("page_token: "),
            "{case}: {}",
            status.message()
        );
    }
    // A restart keeps the key beside the embedded store: the token still reads.
    daemon.stop();
    let daemon = Daemon::embedded(dir.path(), &[]);
    let client = daemon.client().await;
    client
        .query()
        .list_persons(persons(DAY, &token))
        .await
        .unwrap();
}
