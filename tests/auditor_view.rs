//! The auditors' view (`/ui`) of a real `registryd`, over real HTTP on the gRPC port: an
//! office's timeline and its facts, a person's career, search, the registry as known at an
//! earlier instant, escaping, every bad input refused with its status, and, under a policy,
//! the pages decided as reads (over TLS, with curl as the browser).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use registry_client::{request_id, v1, Client};
use support::{basis, Daemon, Registrar};

/// `GET path` over HTTP/1.1 on `address` (`http://…`): the status and the body.
async fn get(address: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn uuid(name: &str) -> &str {
    name.split_once('/').map_or(name, |(_, uuid)| uuid)
}

/// A holding of `office` by `person` from `from` until `until` (exclusive), if it ended.
async fn hold(
    client: &Client,
    person: &str,
    office: &str,
    from: &str,
    until: Option<&str>,
) -> String {
    client
        .command()
        .start_holding(v1::StartHoldingRequest {
            request_id: request_id(),
            person: person.into(),
            office: office.into(),
            valid_from: from.into(),
            valid_until: until.unwrap_or_default().into(),
            end_reason: if until.is_some() {
                v1::EndReason::TermEnd as i32
            } else {
                0
            },
            beginning: v1::BeginningKind::Elected as i32,
            basis: Some(basis("12-QĐ/TU")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap()
        .commit_position
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_show_an_office_a_career_and_the_registry_as_known_before() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::embedded(dir.path(), &[]);
    let client = daemon.client().await;
    let mut r = Registrar::new(client.clone());
    let (_, _, chair) = r.commune_with_chair("Xã Minh Họa").await;
    let first = r.person("Trần Văn Trước").await;
    let script = r.person("<script>alert(1)</script>").await;
    let later = r.person("Lê Thị Sau").await;
    hold(&client, &first, &chair, "2000-01-01", Some("2005-01-01")).await;
    hold(&client, &script, &chair, "2005-01-01", Some("2006-01-01")).await;
    // Then a gap of a year and a quarter, and a holder known from March 2007 only.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let known_before = time::OffsetDateTime::now_utc();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let position = hold(&client, &later, &chair, "2007-03", None).await;
    support::await_position(&client, &position).await;

    let office = format!("/ui/offices/{}", uuid(&chair));
    let (status, page) = get(&daemon.address, &office).await;
    assert_eq!(status, 200, "{page}");
    for fact in [
        "Chủ tịch UBND Xã Minh Họa",
        "Trần Văn Trước",
        "01/01/2000",
        "01/01/2005",
        "01/01/2006",
        "Lê Thị Sau",
        "03/2007",
        "đang giữ",
        "Hết nhiệm kỳ",
        "12-QĐ/TU",
        "<svg",
    ] {
        assert!(
            page.contains(fact),
            "{fact} not on the office's page:\n{page}"
        );
    }
    // The gap of 2006 to March 2007 is a long vacancy: flagged in the picture and noted.
    assert!(page.contains(r#"class="vacancy""#), "{page}");
    assert!(page.contains("⚠ Khuyết"), "{page}");
    // A name is text, never markup, in the table and in the picture.
    assert!(!page.contains("<script>alert(1)"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    // The March 2007 start is drawn faded before its sure part.
    assert!(page.contains(r#"class="uncertain""#), "{page}");

    // As known before the last holding was recorded: it is not there.
    let instant = known_before
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (status, then) = get(&daemon.address, &format!("{office}?known_at={instant}")).await;
    assert_eq!(status, 200, "{then}");
    assert!(then.contains("Trần Văn Trước"), "{then}");
    assert!(!then.contains("Lê Thị Sau"), "{then}");
    assert!(then.contains("Như sổ ghi nhận lúc"), "{then}");
    assert!(
        then.contains("1 chức vụ được ghi sau thời điểm này"),
        "{then}"
    );

    // The career of a holder, and search without diacritics.
    let (status, career) = get(&daemon.address, &format!("/ui/persons/{}", uuid(&first))).await;
    assert_eq!(status, 200, "{career}");
    assert!(
        career.contains("Chủ tịch UBND Xã Minh Họa") && career.contains("01/01/2000"),
        "{career}"
    );
    let (status, found) = get(&daemon.address, "/ui/search?q=le%20thi%20sau").await;
    assert_eq!(status, 200, "{found}");
    assert!(
        found.contains(&format!("/ui/persons/{}", uuid(&later))),
        "{found}"
    );
    let (status, css) = get(&daemon.address, "/ui/static/app.css").await;
    assert_eq!(status, 200);
    assert!(css.contains("svg.timeline"));

    // Bad input: the status that fits and a sentence naming the field.
    let long = "x".repeat(600);
    for (path, status, names) in [
        ("/ui/offices/not-a-uuid".to_owned(), 400, "office"),
        (
            "/ui/offices/0193a5e0-0000-7000-8000-00000000ffff".to_owned(),
            404,
            "no office",
        ),
        (
            "/ui/persons/0193a5e0-0000-7000-8000-00000000ffff".to_owned(),
            404,
            "no person",
        ),
        (
            "/ui/units/0193a5e0-0000-7000-8000-00000000ffff".to_owned(),
            404,
            "no unit",
        ),
        ("/ui/units/nope".to_owned(), 400, "unit"),
        (format!("{office}?known_at=yesterday"), 400, "known_at"),
        (format!("{office}?from=1800"), 400, "from"),
        (format!("{office}?from=2010&to=2000"), 400, "to"),
        (format!("/ui/search?q={long}"), 400, "q"),
    ] {
        let (got, page) = get(&daemon.address, &path).await;
        assert_eq!(got, status, "{path}: {page}");
        assert!(page.contains(names), "{path}: {page}");
        assert!(page.len() < 4000, "{path}: an error page echoes too much");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_policy_the_pages_are_reads() {
    use registry_testkit::tokens::{Issuer, AUDIENCE, ISSUER};
    let tls = |name: &str| format!("{}/tls/{name}", env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let issuer = Issuer::new("k1");
    std::fs::copy(
        format!(
            "{}/../examples/access/registry.cedar",
            env!("CARGO_MANIFEST_DIR")
        ),
        dir.path().join("registry.cedar"),
    )
    .unwrap();
    std::fs::write(dir.path().join("keys.jwks"), issuer.jwks()).unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "rules = \"registry.cedar\"\n[tokens]\njwks = \"keys.jwks\"\nissuer = \"{ISSUER}\"\n\
             audience = \"{AUDIENCE}\"\n[callers.clerk]\nroles = [\"reader\"]\n[callers.nobody]\nroles = []\n"
        ),
    )
    .unwrap();
    let daemon = Daemon::embedded(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            &tls("server.pem"),
            "--tls-key",
            &tls("server.key"),
            "--policy",
            policy.to_str().unwrap(),
        ],
    );
    let url = format!(
        "{}/ui/search?q=a",
        daemon.address.replace("http://", "https://")
    );
    let curl = |token: Option<String>| {
        let mut command = std::process::Command::new("curl");
        command.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            &tls("ca.pem"),
        ]);
        if let Some(token) = token {
            command.args(["-H", &format!("authorization: Bearer {token}")]);
        }
        let output = command.arg(&url).output().expect("curl");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert_eq!(curl(None), "401", "no credentials");
    assert_eq!(
        curl(Some(issuer.token("nobody"))),
        "403",
        "a caller without the read action"
    );
    assert_eq!(curl(Some(issuer.token("clerk"))), "200", "a reader");
}

/// Headless Chromium (Debian's), or `None` with a notice where it is not installed (a failure
/// when `REGISTRY_REQUIRE_BROWSER=1`, as `.ci/run` sets after installing it).
fn chromium() -> Option<std::path::PathBuf> {
    let path = std::path::PathBuf::from("/usr/bin/chromium");
    if path.exists() {
        return Some(path);
    }
    if std::env::var("REGISTRY_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!(
            "Chromium is required (REGISTRY_REQUIRE_BROWSER=1) but /usr/bin/chromium is missing"
        );
    }
    eprintln!("NOTICE: no /usr/bin/chromium; skipping the browser test");
    None
}

/// Chromium, headless and offline (flags that keep it from reaching for the network), with
/// `args` then `url`; its standard output.
fn browse(chromium: &std::path::Path, args: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_draws_thirty_years_of_an_office() {
    let Some(chromium) = chromium() else {
        return;
    };
    // A generated province from 1995, its 2025 mergers included, written into the store.
    let generated = registry_testkit::generate(&registry_testkit::Config {
        from_year: 1995,
        ..registry_testkit::Config::tiny(7)
    });
    let dir = tempfile::tempdir().unwrap();
    registry_bench::load_store(&dir.path().join("registry.db"), &generated.facts)
        .await
        .unwrap();
    let daemon = Daemon::embedded(dir.path(), &[]);
    let client = daemon.client().await;
    support::await_position(&client, &generated.facts.len().to_string()).await;
    // The office with the most holders that has one today.
    let mut most: Option<(String, Vec<v1::Holding>)> = None;
    for office in &generated.catalogue.offices {
        let holdings = client
            .query()
            .list_office_history(v1::ListOfficeHistoryRequest {
                office: office.to_string(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .holdings;
        let held = holdings.iter().any(|h| h.end.is_empty() && !h.end_unknown);
        if held && most.as_ref().is_none_or(|(_, h)| holdings.len() > h.len()) {
            most = Some((office.to_string(), holdings));
        }
    }
    let (office, holdings) = most.unwrap();
    assert!(holdings.len() >= 5, "{holdings:?}");
    let url = format!("{}/ui/offices/{}", daemon.address, uuid(&office));

    // What the browser shows: every holder's name, in the picture's text and the table.
    let dom = browse(&chromium, &["--dump-dom"], &url);
    for holding in &holdings {
        assert!(
            dom.contains(&holding.person_display_name),
            "{} not drawn:\n{dom}",
            holding.person_display_name
        );
    }
    assert!(dom.contains("<svg"), "{dom}");
    // The instant control's form asks for the same page as known at an instant. The current
    // holder's term is ended now: as known just before, it is still held.
    let current = holdings
        .iter()
        .find(|h| h.end.is_empty() && !h.end_unknown)
        .expect("a current holder");
    let before = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]"
        ))
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let ended = client
        .command()
        .end_holding(v1::EndHoldingRequest {
            request_id: request_id(),
            holding: current.name.clone(),
            valid_until: "2026-01-01".into(),
            reason: v1::EndReason::Retirement as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    support::await_position(&client, &ended.commit_position).await;
    let now = browse(&chromium, &["--dump-dom"], &url);
    assert!(now.contains("01/01/2026"), "{now}");
    let then = browse(
        &chromium,
        &["--dump-dom"],
        &format!("{url}?known_at={before}"),
    );
    let held = |page: &str| page.matches("<td>đang giữ</td>").count();
    assert_eq!(
        held(&then),
        held(&now) + 1,
        "the view as known at {before} did not change:\n{then}"
    );
    // The holding ended since is marked as corrected, in the table and as an outlined bar.
    assert!(then.contains("đã sửa sau đó"), "{then}");
    assert!(then.contains("bar changed"), "{then}");
    assert!(then.contains("Như sổ ghi nhận lúc"), "{then}");

    // A commune merged in 2025: its page names what continues it, drawn as its life's bar.
    let commune = generated.catalogue.communes[0].to_string();
    let lineage = client
        .query()
        .get_unit_lineage(v1::GetUnitLineageRequest {
            name: commune.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let successor = lineage.successors.first().expect("the commune was merged");
    let name = client
        .query()
        .get_unit(v1::GetUnitRequest {
            name: successor.unit.clone(),
            date: successor.valid_from.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .unit
        .unwrap()
        .display_name;
    let unit_url = format!("{}/ui/units/{}", daemon.address, uuid(&commune));
    let page = browse(&chromium, &["--dump-dom"], &unit_url);
    assert!(
        page.contains("Kế thừa") && page.contains(&name),
        "{name} not on:\n{page}"
    );
    assert!(
        page.contains(&format!("/ui/units/{}", uuid(&successor.unit))),
        "{page}"
    );

    // The province's tree on a day before the mergers holds the commune, indented under its
    // district.
    let province = generated.catalogue.provinces[0].to_string();
    let tree = browse(
        &chromium,
        &["--dump-dom"],
        &format!(
            "{}/ui/units/{}?date=2024-01-01",
            daemon.address,
            uuid(&province)
        ),
    );
    assert!(tree.contains("Cơ cấu ngày 01/01/2024"), "{tree}");
    let commune_link = format!("/ui/units/{}", uuid(&commune));
    assert!(
        tree.contains(&format!(
            r#"<li style="margin-left: 2em"><a href="{commune_link}">"#
        )),
        "{commune} not two levels under the province:\n{tree}"
    );

    // A picture of it, kept under target/ (CI's artefacts); with REGISTRY_UPDATE_SCREENSHOTS=1
    // also as the README's.
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("office-timeline.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &chromium,
        &[
            "--window-size=1100,1000",
            &format!("--screenshot={}", shot.display()),
        ],
        &url,
    );
    browse(
        &chromium,
        &[
            "--window-size=1100,800",
            &format!("--screenshot={}", shots.join("unit-lineage.png").display()),
        ],
        &unit_url,
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    if std::env::var("REGISTRY_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::copy(&shot, docs.join("office-timeline.png")).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_pilot_is_applied_in_one_of_two_communes() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::embedded(dir.path(), &[]);
    let seed = format!("{}/../examples/seed/seed.jsonl", env!("CARGO_MANIFEST_DIR"));
    let imported = std::process::Command::new(registry_testkit::daemon::workspace_binary(
        "registry-cli",
        "regctl",
    ))
    .args(["--server", &daemon.address, "import", &seed])
    .output()
    .unwrap();
    assert!(imported.status.success(), "{imported:?}");
    let client = daemon.client().await;
    support::await_position(&client, &support::store_stats(&client).await.head_position).await;

    // The seed records no basis for the Secretary's seat on the Central Committee: flagged.
    let (status, career) = get(
        &daemon.address,
        "/ui/persons/0193a5e0-0000-7000-8000-000000000027",
    )
    .await;
    assert_eq!(status, 200, "{career}");
    assert!(career.contains("⚠ Thiếu căn cứ pháp lý"), "{career}");
    assert!(career.contains(r#"class="flag""#), "{career}");

    let (status, models) = get(&daemon.address, "/ui/models").await;
    assert_eq!(status, 200, "{models}");
    let pilot = "/ui/models/0193a5e0-0000-7000-8000-000000000026";
    assert!(models.contains(pilot), "{models}");
    // The province's communes on the seed's day: 2, of which 1 declares and 1 practises it.
    let (status, page) = get(&daemon.address, &format!("{pilot}?date=2024-03-18")).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(
            "Tỉnh Quảng Ninh</a></td><td>2</td><td>1</td><td>1</td><td>0</td><td>0</td><td>0</td>"
        ),
        "{page}"
    );
    // Which: the province's page lists the commune that does, in the group "both".
    let province = "0193a5e0-0000-7000-8000-000000000002";
    let (status, page) = get(
        &daemon.address,
        &format!("{pilot}?date=2024-03-18&jurisdiction={province}"),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let both = page
        .split("Khai báo và có trên thực tế")
        .nth(1)
        .unwrap_or_default();
    assert!(both.contains("<li><a href=\"/ui/units/"), "{page}");
    for (path, status, names) in [
        (format!("{pilot}?level=hamlet"), 400, "level"),
        (format!("{pilot}?date=yesterday"), 400, "date"),
        (format!("{pilot}?jurisdiction=x"), 400, "jurisdiction"),
        (
            "/ui/models/0193a5e0-0000-7000-8000-00000000ffff".to_owned(),
            404,
            "no model",
        ),
    ] {
        let (got, page) = get(&daemon.address, &path).await;
        assert_eq!(got, status, "{path}: {page}");
        assert!(page.contains(names), "{path}: {page}");
    }
}
