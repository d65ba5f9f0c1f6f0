//! The real `regctl` binary (assert_cmd) against a real `registryd` process on a temporary
//! embedded store: every subcommand's success path, bad input answered with a clear message and
//! a non-zero exit that leaves the registry unchanged, and idempotent imports.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use assert_cmd::Command;
use registry_testkit::daemon::{registryd_binary, Daemon};
use serde_json::Value;

struct Registry {
    daemon: Daemon,
    _dir: tempfile::TempDir,
}

const SEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/seed/seed.jsonl"
);

/// The id of the `n`-th record of the seed file.
fn id(n: u32) -> String {
    format!("0193a5e0-0000-7000-8000-{n:012}")
}

impl Registry {
    /// A daemon with the seed article imported.
    fn seeded() -> Self {
        let registry = Self::empty();
        registry.regctl().args(["import", SEED]).assert().success();
        registry
    }

    fn empty() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let daemon = Daemon::embedded(&registryd_binary(), dir.path(), &[]);
        Self { daemon, _dir: dir }
    }

    fn regctl(&self) -> Command {
        let mut command = Command::cargo_bin("regctl").unwrap();
        command.args(["--server", &self.daemon.address, "--actor", "cli-test"]);
        command
    }

    /// Runs regctl with `--output json` and parses the answer.
    fn json(&self, args: &[&str]) -> Value {
        let output = self
            .regctl()
            .args(args)
            .args(["--output", "json"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&output.stdout))
        })
    }

    /// Runs regctl and returns its standard output.
    fn stdout(&self, args: &[&str]) -> String {
        let output = self.regctl().args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// The store's head position.
    fn head(&self) -> String {
        self.json(&["stats"])["headPosition"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Runs regctl expecting failure with `code`; returns standard error; checks nothing changed.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let before = self.head();
        let output = self.regctl().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert_eq!(self.head(), before, "{args:?} changed the registry");
        stderr
    }
}

fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn the_seed_imports_once_and_every_read_answers() {
    let r = Registry::seeded();
    let head = r.head();
    let again = r.stdout(&["import", SEED]);
    assert!(
        again.contains("imported 0 new row(s), 63 already recorded"),
        "{again}"
    );
    assert_eq!(r.head(), head, "a re-run appends nothing");

    // Who held the People's Committee chair of Cẩm Phả on 18/03/2024 (Vietnamese date).
    let held = r.json(&["who-held", &id(21), "--at", "18/03/2024"]);
    assert_eq!(held["holdings"][0]["personDisplayName"], "Phạm Lê Hưng");
    assert_eq!(
        held["holdings"][0]["beginning"],
        "BEGINNING_KIND_CONCURRENT"
    );
    let table = r.stdout(&["who-held", &id(14), "--at", "2024-03-18"]);
    assert!(
        table.contains("Nguyễn Xuân Ký") && table.contains("Bí thư Tỉnh ủy"),
        "{table}"
    );

    let found = r.stdout(&["persons", "search", "nguyen xuan ky"]);
    assert!(
        found.contains("Nguyễn Xuân Ký") && found.contains("folded"),
        "{found}"
    );
    let shown = r.stdout(&["persons", "show", &id(27), "--at", "2024-03-18"]);
    assert!(shown.contains("Chủ tịch HĐND tỉnh"), "{shown}");
    let career = r.json(&["career", &id(27)]);
    assert_eq!(career["holdings"].as_array().unwrap().len(), 3);
    let jsonl = r.stdout(&["career", &id(27), "--output", "jsonl"]);
    assert_eq!(jsonl.lines().count(), 3);

    let unit = r.json(&["units", "show", &id(12), "--at", "2024-03-18"]);
    assert_eq!(
        unit["unit"]["parents"].as_array().unwrap().len(),
        3,
        "the shared agency serves three bodies"
    );
    let tree = r.json(&["units", "tree", &id(5), "--at", "2024-03-18"]);
    assert!(tree["units"].as_array().unwrap().len() >= 15);
    let coverage = r.stdout(&[
        "models",
        "coverage",
        &id(26),
        &id(5),
        "--level",
        "commune",
        "--at",
        "2024-03-18",
    ]);
    assert!(coverage.contains("1 of 2"), "{coverage}");
    let holding = r.json(&["holdings", "show", &id(51)]);
    assert_eq!(holding["holding"]["cause"], format!("holdings/{}", id(49)));

    let history = r.stdout(&["history", &format!("offices/{}", id(21))]);
    assert!(
        history.contains("OfficeCreated")
            && history.contains("HoldingStarted")
            && history.contains("cli-test"),
        "{history}"
    );
    let events: usize = r.json(&["stats"])["events"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(events, 63, "one event per row of the seed");
    let diff = r.json(&["diff", "--from", "2000-01-01"]);
    assert_eq!(
        diff["changes"].as_array().unwrap().len(),
        events,
        "everything was learnt after 2000"
    );
    let followed = r.stdout(&["follow", "--limit", "3", "--output", "jsonl"]);
    assert_eq!(followed.lines().count(), 3);
    let irregular = r.json(&["irregularities", "--at", "2024-03-18"]);
    assert!(irregular["irregularities"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["kind"] == "uncovered_concurrency"));

    let exported = r.stdout(&["export", "--at", "2024-03-18"]);
    assert_eq!(exported.lines().count(), 14, "{exported}");
    let csv = r.stdout(&["export", "--at", "2024-03-18", "--format", "csv"]);
    assert!(
        csv.starts_with("holding,person,person_name") && csv.contains("Vũ Thị Hoa"),
        "{csv}"
    );
    let popolo: Value =
        serde_json::from_str(&r.stdout(&["export", "--at", "2024-03-18", "--format", "popolo"]))
            .unwrap();
    assert_eq!(popolo["memberships"].as_array().unwrap().len(), 14);
    assert!(popolo["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["name"] == "Tỉnh ủy Quảng Ninh"));

    for (kind, count) in [("persons", 8), ("units", 20), ("offices", 15)] {
        let lines = r.stdout(&["export", "--at", "2024-03-18", "--type", kind]);
        assert_eq!(lines.lines().count(), count, "{kind}: {lines}");
        let csv = r.stdout(&[
            "export",
            "--at",
            "2024-03-18",
            "--type",
            kind,
            "--format",
            "csv",
        ]);
        assert_eq!(csv.lines().count(), count + 1, "{kind}: {csv}");
    }
    let office = r.json(&["offices", "show", &id(19), "--at", "2024-03-18"]);
    assert_eq!(
        (
            office["office"]["title"].as_str(),
            office["office"]["capacity"]["limit"].as_u64()
        ),
        (Some("Phó Bí thư Thành ủy"), Some(3))
    );
    let holders = r.json(&["offices", "holders", &id(21)]);
    assert_eq!(holders["holdings"].as_array().unwrap().len(), 1);
    let office = format!("offices/{}", id(21));
    let history = r.json(&["history", &office]);
    let rebuilt = r.json(&["rebuild"]);
    assert_eq!(rebuilt["events"], "63");
    // The rebuilt models answer as the ones they replaced.
    assert_eq!(r.json(&["offices", "holders", &id(21)]), holders);
    assert_eq!(r.json(&["history", &office]), history);
    let completions = r.stdout(&["completions", "bash"]);
    assert!(completions.contains("regctl"));
}

/// The Popolo export against Popolo's person, organization, post and membership schemas
/// (`tests/popolo/`), with memberships ending on the last day held, partial dates as known,
/// birth dates and the legal bases as sources (issue 22, item 5).
#[test]
fn the_popolo_export_follows_popolo() {
    let r = Registry::seeded();
    // Ký's concurrent Council chair ends on 2025-10-01 (the first day without it), Tú's
    // concurrent office in November 2025, day not known.
    r.stdout(&[
        "holdings",
        "end",
        &id(33),
        "--until",
        "2025-10-01",
        "--reason",
        "transfer",
    ]);
    r.stdout(&[
        "holdings",
        "end",
        &id(36),
        "--until",
        "2025-11",
        "--reason",
        "retirement",
    ]);
    let text = r.stdout(&["export", "--at", "2025-06-30", "--format", "popolo"]);
    let document: Value = serde_json::from_str(&text).unwrap();

    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler.enable_format_assertions();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/popolo");
    for name in [
        "link",
        "person",
        "organization",
        "post",
        "membership",
        "document",
    ] {
        let schema: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        compiler
            .add_resource(&format!("https://popolo.example/{name}.json"), schema)
            .unwrap();
    }
    let index = compiler
        .compile("https://popolo.example/document.json", &mut schemas)
        .unwrap();
    if let Err(e) = schemas.validate(&document, index) {
        panic!("the export is not Popolo: {e:#}\n{text}");
    }
    // The schemas do refuse what Popolo does not allow.
    for (path, bad) in [
        ("end_date", Value::from("30/09/2025")),
        ("until", Value::from("2025-10-01")),
    ] {
        let mut doctored = document.clone();
        doctored["memberships"][0][path] = bad;
        assert!(schemas.validate(&doctored, index).is_err(), "{path}");
    }

    let membership = |holding: u32| {
        document["memberships"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == format!("holdings/{}", &id(holding)[..]))
            .unwrap_or_else(|| panic!("no membership {holding}: {text}"))
            .clone()
    };
    assert_eq!(
        membership(33)["end_date"],
        "2025-09-30",
        "the last day held"
    );
    assert_eq!(membership(36)["end_date"], "2025-11", "known to the month");
    assert!(membership(31).get("end_date").is_none(), "still held");
    let source = &membership(32)["sources"][0];
    assert_eq!(
        source["note"],
        "Nghị quyết Đại hội XV, 2020-10-15, Đại hội Đảng bộ tỉnh Quảng Ninh"
    );
    assert!(
        source["url"]
            .as_str()
            .is_some_and(|url| url.starts_with("urn:x-registry-basis:")),
        "{source}"
    );
    assert!(
        membership(31).get("sources").is_none(),
        "recorded without a basis"
    );
    let ky = document["persons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Nguyễn Xuân Ký")
        .unwrap();
    assert_eq!(ky["birth_date"], "1962");
}

/// Namesakes in a search are told apart by birth year and the office held now or last (issue
/// 22, item 19).
#[test]
fn namesakes_are_told_apart_in_a_search() {
    let r = Registry::seeded();
    r.stdout(&["persons", "add", "Nguyễn Xuân Ký", "--birth", "1975-04"]);
    let found = r.stdout(&["persons", "search", "Nguyễn Xuân Ký"]);
    let rows: Vec<&str> = found
        .lines()
        .filter(|l| l.contains("Nguyễn Xuân Ký"))
        .collect();
    assert_eq!(rows.len(), 2, "{found}");
    let seed = rows.iter().find(|l| l.contains("1962")).expect(&found);
    assert!(
        seed.contains("– now)"),
        "the seed's Ký holds offices now: {seed}"
    );
    let other = rows.iter().find(|l| l.contains("1975")).expect(&found);
    assert!(!other.contains("now"), "the other holds none: {other}");
}

#[test]
fn every_write_subcommand_records() {
    let r = Registry::seeded();
    let basis = [
        "--basis",
        "1679/NQ-UBTVQH15",
        "--basis-date",
        "16/06/2025",
        "--issuer",
        "Ủy ban Thường vụ Quốc hội",
    ];
    let name_of = |output: &str| {
        output
            .split_whitespace()
            .find(|word| word.contains('/'))
            .unwrap()
            .to_owned()
    };

    let person = name_of(&r.stdout(&[
        "persons",
        "add",
        "Trần Văn Mới",
        "--birth",
        "03/1970",
        "--alias",
        "Mới",
    ]));
    r.stdout(&[
        "persons",
        "rename",
        &person,
        "Trần Văn Mới Hơn",
        "--from",
        "2022-01-01",
    ]);
    r.stdout(&["persons", "alias", &person, "Anh Mới"]);
    let shown = r.json(&["persons", "show", &person, "--at", "2023-01-01"]);
    assert_eq!(shown["holdings"], Value::Array(vec![]));

    let ward = name_of(
        &r.stdout(
            &[
                &[
                    "units",
                    "establish",
                    "Phường Thử",
                    "--kind",
                    "administrative-area",
                    "--level",
                    "commune",
                    "--parent",
                    &id(5),
                    "--from",
                    "2020-01-01",
                ][..],
                &basis[..],
            ]
            .concat(),
        ),
    );
    let committee = name_of(
        &r.stdout(
            &[
                &[
                    "units",
                    "establish",
                    "UBND phường Thử",
                    "--kind",
                    "peoples-committee",
                    "--level",
                    "commune",
                    "--parent",
                    &ward,
                    "--from",
                    "2020-01-01",
                ][..],
                &basis[..],
            ]
            .concat(),
        ),
    );
    r.stdout(
        &[
            &[
                "units",
                "rename",
                &ward,
                "Phường Thử Mới",
                "--from",
                "2021-01-01",
            ][..],
            &basis[..],
        ]
        .concat(),
    );
    r.stdout(
        &[
            &[
                "units",
                "move",
                &ward,
                "--parent",
                &id(2),
                "--from",
                "2021-06-01",
            ][..],
            &basis[..],
        ]
        .concat(),
    );
    let office = name_of(&r.stdout(&[
        "offices",
        "create",
        &committee,
        "Chủ tịch UBND phường",
        "--kind",
        "chair",
        "--capacity",
        "sole",
        "--from",
        "2020-01-01",
    ]));
    let term = name_of(&r.stdout(&[
        "terms",
        "open",
        &committee,
        "2021-2026",
        "--from",
        "2021-06-01",
        "--planned-until",
        "2026-06-01",
    ]));
    let holding = name_of(&r.stdout(&[
        "holdings",
        "appoint",
        &person,
        &office,
        "--from",
        "06/2021",
        "--how",
        "appointed",
        "--term",
        &term,
    ]));
    r.stdout(&[
        "holdings",
        "end",
        &holding,
        "--until",
        "2024-01-01",
        "--reason",
        "transfer",
    ]);
    let held = r.json(&["who-held", &office, "--at", "2022-01-01"]);
    assert_eq!(
        held["holdings"][0]["personDisplayName"], "Trần Văn Mới",
        "the name on the first day of the holding"
    );

    let model = name_of(
        &r.stdout(
            &[
                &[
                    "models",
                    "define",
                    "Bí thư đồng thời là Chủ tịch UBND xã",
                    "--role",
                    "party-committee:secretary",
                    "--role",
                    "peoples-committee:chair",
                ][..],
                &basis[..],
            ]
            .concat(),
        ),
    );
    let adoption = name_of(
        &r.stdout(
            &[
                &["models", "adopt", &model, &ward, "--from", "2022-01-01"][..],
                &basis[..],
            ]
            .concat(),
        ),
    );
    r.stdout(
        &[
            &["models", "withdraw", &adoption, "--from", "2023-01-01"][..],
            &basis[..],
        ]
        .concat(),
    );
    r.stdout(
        &[
            &[
                "models",
                "define",
                "Cơ quan chung",
                "--shared-unit",
                "advisory-agency",
                "--serves",
                "fatherland-front",
                "--serves",
                "socio-political-organisation",
            ][..],
            &basis[..],
        ]
        .concat(),
    );
    r.stdout(&["offices", "abolish", &office, "--from", "2025-01-01"]);

    // The merger of 1 July 2025: Xã Cộng Hòa and Xã Dương Huy into a new ward; their bodies
    // move under it; then Dương Huy's People's Committee is absorbed by Cộng Hòa's, and the
    // ward is split and dissolved.
    let mut merge: Vec<String> = [
        "units",
        "merge",
        &id(40),
        &id(53),
        "--into-new",
        "Phường Cẩm Phả Mới",
        "--kind",
        "administrative-area",
        "--level",
        "commune",
        "--parent",
        &id(2),
        "--on",
        "2025-07-01",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for child in [41, 42, 43, 54, 55, 56] {
        merge.extend(["--child".to_owned(), format!("{}=new", id(child))]);
    }
    merge.extend(basis.iter().map(|s| (*s).to_owned()));
    let merge: Vec<&str> = merge.iter().map(String::as_str).collect();
    let merged = name_of(&r.stdout(&merge));
    let lineage = r.json(&["units", "lineage", &id(53)]);
    assert_eq!(lineage["successors"][0]["unit"], merged.as_str());
    r.stdout(
        &[
            &[
                "units",
                "merge",
                &id(56),
                "--into",
                &id(43),
                "--on",
                "2025-08-01",
                "--carry",
                &format!("{}={}", id(59), id(43)),
            ][..],
            &basis[..],
        ]
        .concat(),
    );
    let moved = r.json(&["who-held", &id(59), "--at", "2025-09-01"]);
    assert_eq!(
        moved["holdings"][0]["personDisplayName"], "Lý Thị Mai",
        "the carried office keeps its holder"
    );
    r.stdout(
        &[
            &[
                "units",
                "split",
                &ward,
                "--new",
                "Phường Bắc",
                "--new",
                "Phường Nam",
                "--kind",
                "administrative-area",
                "--level",
                "commune",
                "--parent",
                &id(2),
                "--on",
                "2026-01-01",
                "--child",
                &format!("{committee}=new:1"),
            ][..],
            &basis[..],
        ]
        .concat(),
    );
    r.stdout(
        &[
            &[
                "units",
                "dissolve",
                &committee,
                "--on",
                "2026-06-01",
                "--abolish-rest",
            ][..],
            &basis[..],
        ]
        .concat(),
    );
    let gone = r.json(&["units", "show", &committee, "--at", "2025-12-01"]);
    assert_eq!(gone["unit"]["validUntil"], "2026-06-01");

    // A signed export after the merger verifies: the carried office's unit on the day its
    // holding began, its holder's name and its title all follow from the proved events.
    let signed = r.stdout(&["export", "--at", "2025-09-01", "--signed"]);
    assert!(signed.contains(&format!("\"office\":\"offices/{}\"", id(59))));
    let path = r._dir.path().join("signed.jsonl");
    std::fs::write(&path, &signed).unwrap();
    let checked = Command::cargo_bin("regctl")
        .unwrap()
        .arg("verify-export")
        .arg(&path)
        .arg("--log-public-key")
        .arg(r._dir.path().join("log.pub"))
        .output()
        .unwrap();
    assert!(checked.status.success(), "{checked:?}");
}

/// The preview of a holding's correction says what a registrar must know: the record before
/// and after, the days whose answer changes, who held the office on them before and after (a
/// vacancy opening, a predecessor whose end stays where it is) and the flags it raises or
/// clears; a correction the registry would refuse stops at the preview (issue 22, item 10).
#[test]
fn a_holdings_correction_is_previewed_as_a_registrar_needs_it() {
    let r = Registry::seeded();
    // Tú chaired the city's People's Committee until Hưng took over on 2021-06-30.
    let predecessor = r.stdout(&[
        "holdings",
        "start",
        &id(28),
        &id(21),
        "--from",
        "2016-01-01",
        "--until",
        "2021-06-30",
        "--end-reason",
        "transfer",
        "--basis",
        "3-QĐ/TU",
        "--basis-date",
        "2016-01-01",
        "--issuer",
        "Ban Thường vụ Tỉnh ủy",
    ]);
    let predecessor = predecessor
        .split_whitespace()
        .find(|w| w.starts_with("holdings/"))
        .unwrap_or_else(|| panic!("{predecessor}"))
        .to_owned();
    let stderr = r.fails(
        &[
            "correct",
            "holding",
            &id(39),
            "--from",
            "2021-08-01",
            "--reason",
            "ngày của quyết định",
        ],
        10,
    );
    for expected in [
        "from: \"2021-06\" -> \"2021-08-01\"".to_owned(),
        format!(
            "who held offices/{} 2021-06-30 to 2021-07-31: before: Phạm Lê Hưng (holdings/{}); after: vacant",
            id(21),
            id(39)
        ),
        format!("a vacancy opens: Nguyễn Anh Tú ({predecessor}) ended on 2021-06-30, and that end stays where it is"),
        "changes uncovered_concurrency:".to_owned(),
    ] {
        assert!(stderr.contains(&expected), "{expected:?} missing in {stderr}");
    }
    // Earlier than the predecessor's end: refused by the registry before anything is asked.
    let stderr = r.fails(
        &[
            "correct",
            "holding",
            &id(39),
            "--from",
            "2021-01-01",
            "--reason",
            "x",
            "--yes",
        ],
        5,
    );
    assert!(stderr.contains("CAPACITY_EXCEEDED"), "{stderr}");
}

#[test]
fn corrections_need_a_reason_and_a_confirmation() {
    let r = Registry::seeded();
    let ky = id(27);
    let stderr = r.fails(&["correct", "person", &ky, "--name", "Nguyễn Xuân Kỳ"], 2);
    assert!(stderr.contains("--reason is required"), "{stderr}");
    // No terminal and no --yes: the preview is shown and nothing changes.
    let stderr = r.fails(
        &[
            "correct",
            "person",
            &ky,
            "--name",
            "Nguyễn Xuân Kỳ",
            "--reason",
            "spelling",
        ],
        10,
    );
    assert!(
        stderr.contains("\"Nguyễn Xuân Ký\" -> \"Nguyễn Xuân Kỳ\""),
        "{stderr}"
    );
    let instant_before = {
        let history = r.json(&["history", &format!("persons/{ky}")]);
        let changes = history["changes"].as_array().unwrap();
        changes.last().unwrap()["recordedAt"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    r.stdout(&[
        "correct",
        "person",
        &ky,
        "--name",
        "Nguyễn Xuân Kỳ",
        "--reason",
        "spelling in the decision",
        "--yes",
    ]);
    let now = r.json(&["persons", "show", &ky, "--at", "2024-03-18"]);
    assert_eq!(now["holdings"][0]["personDisplayName"], "Nguyễn Xuân Kỳ");
    // As known before the correction, the old spelling.
    let then = r.json(&[
        "persons",
        "show",
        &ky,
        "--at",
        "2024-03-18",
        "--known-at",
        &instant_before,
    ]);
    assert_eq!(
        then["holdings"][0]["personDisplayName"], "Nguyễn Xuân Ký",
        "{instant_before} {then}"
    );
    let history = r.stdout(&["history", &format!("persons/{ky}")]);
    assert!(
        history.contains("PersonCorrected") && history.contains("spelling in the decision"),
        "{history}"
    );

    // A holding's start corrected; an office's title corrected; a holding retracted.
    let preview = r
        .regctl()
        .args([
            "correct",
            "holding",
            &id(35),
            "--from",
            "2020-10-20",
            "--reason",
            "date of the vote",
            "--yes",
        ])
        .output()
        .unwrap();
    assert!(
        preview.status.success(),
        "{}",
        String::from_utf8_lossy(&preview.stderr)
    );
    assert!(String::from_utf8_lossy(&preview.stderr).contains("\"2020-10\" -> \"2020-10-20\""));
    r.stdout(&[
        "correct",
        "office",
        &id(17),
        "--title",
        "Bí thư Thành ủy Cẩm Phả",
        "--reason",
        "full title",
        "--yes",
    ]);
    assert_eq!(
        r.json(&["who-held", &id(17), "--at", "2024-03-18"])["holdings"][0]["officeTitle"],
        "Bí thư Thành ủy Cẩm Phả"
    );
    r.fails(&["retract", &format!("holdings/{}", id(37))], 2);
    r.stdout(&[
        "retract",
        &format!("holdings/{}", id(37)),
        "--reason",
        "entered in error",
        "--yes",
    ]);
    assert_eq!(
        r.json(&["who-held", &id(18), "--at", "2024-03-18"])["vacant"],
        true
    );
}

#[test]
fn bad_input_is_reported_and_changes_nothing() {
    let r = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let csv = write_file(
        dir.path(),
        "holdings.csv",
        &format!(
            "person,office,from,until,how\n{p},{o},2019-01-01,,elected\n{p},{o},30/02/2024,,elected\nnot-a-person,{o},2019-01-01,,elected\n{p},,2019-01-01,,voted\n",
            p = id(47),
            o = id(58),
        ),
    );
    let stderr = r.fails(&["import", &csv, "--type", "holding"], 2);
    for expected in [
        "line 3: from:",
        "line 4: person:",
        "line 5: office: is required",
        "line 5: how:",
        "nothing was imported",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected:?} missing in {stderr}"
        );
    }
    assert!(!stderr.contains("line 2:"), "line 2 is good: {stderr}");

    let stderr = r.fails(&["who-held", &id(21), "--at", "2024-02-30"], 2);
    assert!(
        stderr.contains("--at") && stderr.contains("2024-02-30"),
        "{stderr}"
    );
    let stderr = r.fails(
        &[
            "holdings",
            "start",
            &id(27),
            &id(21),
            "--from",
            "31/04/2024",
        ],
        2,
    );
    assert!(stderr.contains("--from"), "{stderr}");
    let stderr = r.fails(
        &[
            "holdings",
            "start",
            &uuid(),
            &id(21),
            "--from",
            "2024-01-01",
        ],
        4,
    );
    assert!(stderr.contains("not found"), "{stderr}");
    let stderr = r.fails(
        &[
            "holdings",
            "start",
            &id(27),
            &id(21),
            "--from",
            "2024-01-01",
        ],
        5,
    );
    assert!(stderr.contains("CAPACITY_EXCEEDED"), "{stderr}");
    r.fails(
        &[
            "offices",
            "create",
            &id(43),
            "Phó Chủ tịch",
            "--kind",
            "deputy",
            "--from",
            "2020-01-01",
        ],
        2,
    );
    r.fails(
        &[
            "retract",
            &format!("persons/{}", id(27)),
            "--reason",
            "test",
            "--yes",
        ],
        5,
    );
}

fn uuid() -> String {
    format!("0193a5e0-0000-7000-8000-{:012}", 999_999)
}

#[test]
fn an_import_of_thousands_of_holdings_is_idempotent() {
    let r = Registry::empty();
    let dir = tempfile::tempdir().unwrap();
    let rows = registry_testkit::fixtures::holdings_jsonl(20, 50);
    let file = write_file(dir.path(), "bulk.jsonl", &rows);
    let started = std::time::Instant::now();
    let first = r.stdout(&["import", &file]);
    let took = started.elapsed();
    assert!(
        first.contains("imported 2021 new row(s), 0 already recorded"),
        "{first}"
    );
    let head = r.head();
    let again = r.stdout(&["import", &file]);
    assert!(
        again.contains("imported 0 new row(s), 2021 already recorded"),
        "{again}"
    );
    assert_eq!(r.head(), head);
    eprintln!("imported 1,000 holdings (2,021 rows) in {took:?}");
    let held = r.json(&[
        "who-held",
        &registry_testkit::fixtures::bulk_id(2, 3),
        "--at",
        "1991-03-01",
    ]);
    assert_eq!(
        held["holdings"][0]["personDisplayName"], "Người Số 152",
        "office 3's third holder: 1991-01 to 1991-07"
    );
}

#[test]
fn a_row_the_registry_refuses_is_named_by_its_line() {
    let r = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    // Two persons and two overlapping holdings of one sole office: the second breaks a rule.
    let file = write_file(
        dir.path(),
        "clash.jsonl",
        &format!(
            "{{\"type\":\"person\",\"id\":\"{a}\",\"name\":\"Người A\"}}\n{{\"type\":\"person\",\"id\":\"{b}\",\"name\":\"Người B\"}}\n{{\"type\":\"holding\",\"person\":\"{a}\",\"office\":\"{o}\",\"from\":\"2010-01-01\",\"until\":\"2012-01-01\"}}\n{{\"type\":\"holding\",\"person\":\"{b}\",\"office\":\"{o}\",\"from\":\"2011-01-01\",\"until\":\"2013-01-01\"}}\n",
            a = id(900),
            b = id(901),
            o = id(58),
        ),
    );
    let output = r.regctl().args(["import", &file]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("line 4: refused:") && stderr.contains("CAPACITY_EXCEEDED"),
        "{stderr}"
    );
    // The rows before it are recorded; a re-run records nothing new and refuses line 4 again.
    let held = r.json(&["who-held", &id(58), "--at", "2011-06-01"]);
    assert_eq!(held["holdings"][0]["personDisplayName"], "Người A");
    let output = r
        .regctl()
        .args(["import", &file, "--skip-invalid"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&output.stdout)
        .contains("imported 0 new row(s), 3 already recorded, 1 refused"));
    // A past holding in an office that has a later holder is recorded with its end at once.
    let past = write_file(
        dir.path(),
        "past.jsonl",
        &format!(
            "{{\"type\":\"holding\",\"person\":\"{b}\",\"office\":\"{o}\",\"from\":\"2010-01-01\",\"until\":\"2016-07-01\",\"end_reason\":\"retirement\"}}\n",
            b = id(901),
            o = id(46),
        ),
    );
    r.stdout(&["import", &past]);
    let then = r.json(&["who-held", &id(46), "--at", "2012-01-01"]);
    assert_eq!(then["holdings"][0]["personDisplayName"], "Người B");
    assert_eq!(then["holdings"][0]["endReason"], "END_REASON_RETIREMENT");
    let now = r.json(&["who-held", &id(46), "--at", "2020-01-01"]);
    assert_eq!(now["holdings"][0]["personDisplayName"], "Hoàng Văn Nam");
}

#[test]
fn a_generated_registry_imports_whole_and_answers_like_it() {
    // Persons, units, offices, terms, holdings with their ends, models and adoptions of a
    // generated registry, as an agency's import file: every row is accepted, and each imported
    // holding is found holding its office on its first day.
    let r = Registry::empty();
    let dir = tempfile::tempdir().unwrap();
    let generated = registry_testkit::generate(&registry_testkit::Config::tiny(3));
    let mut rows = Vec::new();
    let counts = registry_testkit::fixtures::import_rows(&generated, &mut rows).unwrap();
    let total: usize = counts.rows.values().sum();
    assert!(counts.rows["holding"] > 500, "{counts:?}");
    let text = String::from_utf8(rows).unwrap();
    let file = write_file(dir.path(), "generated.jsonl", &text);
    let out = r.stdout(&["import", &file]);
    assert!(
        out.contains(&format!(
            "imported {total} new row(s), 0 already recorded, 0 refused"
        )),
        "{out}"
    );
    let holdings = text
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|row| row["type"] == "holding" && row["from"].as_str().unwrap().len() == 10);
    let mut checked = 0;
    for row in holdings.step_by(37).take(12) {
        let held = r.json(&[
            "who-held",
            row["office"].as_str().unwrap(),
            "--at",
            row["from"].as_str().unwrap(),
        ]);
        let names: Vec<&str> = held["holdings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["name"].as_str().unwrap())
            .collect();
        let expected = format!("holdings/{}", row["id"].as_str().unwrap());
        assert!(names.contains(&expected.as_str()), "{row}: {held}");
        checked += 1;
    }
    assert_eq!(checked, 12);
}

#[test]
fn regctl_speaks_mutual_tls_with_its_certificate_and_is_turned_away_without() {
    let tls = |name: &str| format!("{}/../../tests/tls/{name}", env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = (tls("server.pem"), tls("server.key"), tls("ca.pem"));
    let daemon = Daemon::embedded(
        &registryd_binary(),
        dir.path(),
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            &ca,
        ],
    );
    let https = daemon.address.replace("http://", "https://");
    let regctl = |extra: &[&str]| {
        let mut command = Command::cargo_bin("regctl").unwrap();
        command
            .args(["--server", &https, "--tls-ca", &ca])
            .args(extra);
        command
    };
    let (client_cert, client_key) = (tls("client.pem"), tls("client.key"));
    regctl(&["--tls-cert", &client_cert, "--tls-key", &client_key])
        .args(["persons", "add", "Trần Thị Bình"])
        .assert()
        .success();
    // Without a client certificate: the server is unreachable for it (exit 7).
    regctl(&[]).args(["stats"]).assert().code(7);
    // A certificate without its key is a usage error (exit 2), caught before connecting.
    regctl(&["--tls-cert", &client_cert])
        .args(["stats"])
        .assert()
        .code(2);
    // Plaintext to a TLS server: exit 7, and what to try.
    let plain = Command::cargo_bin("regctl")
        .unwrap()
        .args(["--server", &daemon.address, "stats"])
        .output()
        .unwrap();
    assert_eq!(plain.status.code(), Some(7));
    let said = String::from_utf8_lossy(&plain.stderr);
    assert!(said.contains("use https://"), "{said}");
}

/// `--server` takes `host:port` as given; a failed connection says why and what to try (issue
/// 22, item 17).
#[test]
fn the_server_is_found_without_a_scheme_and_failures_say_why() {
    let r = Registry::empty();
    let bare = r.daemon.address.trim_start_matches("http://").to_owned();
    Command::cargo_bin("regctl")
        .unwrap()
        .args(["--server", &bare, "stats"])
        .assert()
        .success();
    let refused = Command::cargo_bin("regctl")
        .unwrap()
        .args(["--server", "127.0.0.1:1", "stats"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(7));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("Connection refused") && said.contains("is registryd running"),
        "{said}"
    );
    assert!(!said.ends_with("transport error\n"), "{said}");
    let tls_to_plain = Command::cargo_bin("regctl")
        .unwrap()
        .args([
            "--server",
            &r.daemon.address.replace("http://", "https://"),
            "stats",
        ])
        .output()
        .unwrap();
    assert_eq!(tls_to_plain.status.code(), Some(7));
    let said = String::from_utf8_lossy(&tls_to_plain.stderr);
    assert!(said.contains("use http://"), "{said}");
}

#[test]
fn whoami_shows_what_the_server_sees_and_a_token_is_sent_with_every_call() {
    use registry_testkit::tokens::{Issuer, AUDIENCE, ISSUER};
    let tls = |name: &str| format!("{}/../../tests/tls/{name}", env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let issuer = Issuer::new("k1");
    let rules = format!(
        "{}/../../examples/access/registry.cedar",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::copy(rules, dir.path().join("registry.cedar")).unwrap();
    std::fs::write(dir.path().join("keys.jwks"), issuer.jwks()).unwrap();
    let policy = write_file(
        dir.path(),
        "policy.toml",
        &format!(
            "rules = \"registry.cedar\"\n[tokens]\njwks = \"keys.jwks\"\nissuer = \"{ISSUER}\"\n\
             audience = \"{AUDIENCE}\"\n[callers.clerk]\nroles = [\"reader\"]\n"
        ),
    );
    let (cert, key, ca) = (tls("server.pem"), tls("server.key"), tls("ca.pem"));
    let daemon = Daemon::embedded(
        &registryd_binary(),
        &dir.path().join("data"),
        &["--tls-cert", &cert, "--tls-key", &key, "--policy", &policy],
    );
    let https = daemon.address.replace("http://", "https://");
    let regctl = |token: Option<&str>| {
        let mut command = Command::cargo_bin("regctl").unwrap();
        command
            .args(["--server", &https, "--tls-ca", &ca])
            .env_remove("REGCTL_TOKEN");
        if let Some(token) = token {
            command.env("REGCTL_TOKEN", token);
        }
        command
    };
    let token = issuer.token("clerk");
    let shown = regctl(Some(&token))
        .args(["whoami", "--output", "json"])
        .output()
        .unwrap();
    assert!(shown.status.success(), "{shown:?}");
    let me: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(me["name"], "clerk");
    assert_eq!(me["proof"], "token");
    assert_eq!(me["policy"], true);
    assert_eq!(me["roles"], serde_json::json!(["reader"]));
    assert_eq!(me["actions"], serde_json::json!(["read"]));
    // No token: not authenticated; a reader's write: not allowed (both exit 8).
    let anonymous = regctl(None).args(["whoami"]).output().unwrap();
    assert_eq!(anonymous.status.code(), Some(8), "{anonymous:?}");
    assert!(String::from_utf8_lossy(&anonymous.stderr).contains("Unauthenticated"));
    // Health checking needs no one (probes): SERVING, exit 0; a service not hosted, exit 4.
    for service in ["", "registry.v1.QueryService"] {
        let health = regctl(None)
            .args(["health", "--service", service])
            .output()
            .unwrap();
        assert!(health.status.success(), "{health:?}");
        assert_eq!(String::from_utf8_lossy(&health.stdout), "SERVING\n");
    }
    let unknown = regctl(None)
        .args(["health", "--service", "registry.v1.NoSuchService"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(4), "{unknown:?}");
    let write = regctl(Some(&token))
        .args(["persons", "add", "Trần Thị Bình"])
        .output()
        .unwrap();
    assert_eq!(write.status.code(), Some(8), "{write:?}");
    assert!(String::from_utf8_lossy(&write.stderr).contains("clerk may not record"));
}

/// `regctl verify` against the server (its checkpoint, consistency with one saved, leaves at
/// random) and against the store file once the server stops; a payload altered in the file is
/// named by its position; a key not the registry's verifies nothing. `regctl keygen` makes a
/// key only its owner reads, and never overwrites one.
#[test]
fn the_log_verifies_online_and_offline_and_a_tampered_store_does_not() {
    let registry = Registry::seeded();
    let data = registry._dir.path().to_owned();
    let public = data.join("log.pub");
    let public = public.to_str().unwrap();
    let saved = data.join("saved.checkpoint");
    let saved = saved.to_str().unwrap();
    // The log signs within about a second of the import.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let head: u64 = registry.head().parse().unwrap();
    loop {
        let output = registry
            .regctl()
            .args(["verify", "--log-public-key", public, "--save", saved])
            .args(["--spot-check", "5", "--output", "json"])
            .output()
            .unwrap();
        if output.status.success() {
            let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
            if answer["size"].as_str() == Some(&head.to_string()) {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    registry.stdout(&["persons", "add", "Lê Văn C", "--birth", "1970"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let shown = registry.stdout(&[
        "verify",
        "--log-public-key",
        public,
        "--since",
        saved,
        "--spot-check",
        "3",
    ]);
    assert!(shown.contains("extends"), "{shown}");
    // A history checked change by change against the signed log.
    let history = registry
        .regctl()
        .args([
            "history",
            &format!("persons/{}", id(27)),
            "--log-public-key",
            public,
        ])
        .output()
        .unwrap();
    assert!(history.status.success(), "{history:?}");
    let said = String::from_utf8_lossy(&history.stderr);
    assert!(
        said.contains("verified: 4 change(s), each an event proved"),
        "{said}"
    );
    assert!(String::from_utf8_lossy(&history.stdout).contains("HoldingStarted"));

    // Keys: made once, private to their owner; a stranger's key verifies nothing.
    let stranger = data.join("stranger.key");
    let made = Command::cargo_bin("regctl")
        .unwrap()
        .args(["keygen", "--name", "registry.test/other", "--out"])
        .arg(&stranger)
        .output()
        .unwrap();
    assert!(made.status.success());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&stranger).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = Command::cargo_bin("regctl")
        .unwrap()
        .args(["keygen", "--name", "registry.test/other", "--out"])
        .arg(&stranger)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    let stranger_public = format!("{}.pub", stranger.display());
    let refused = registry
        .regctl()
        .args(["verify", "--log-public-key", &stranger_public])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(9), "{refused:?}");
    let refused = registry
        .regctl()
        .args(["history", &format!("persons/{}", id(27))])
        .args(["--log-public-key", &stranger_public])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(9), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("the checkpoint"));

    // Offline, on the file, once the server has stopped (and signed its last events).
    let Registry { daemon, _dir } = registry;
    daemon.stop();
    let offline = |args: &[&str]| {
        Command::cargo_bin("regctl")
            .unwrap()
            .args(["verify", "--log-public-key", public, "--store"])
            .arg(&data)
            .args(args)
            .output()
            .unwrap()
    };
    let clean = offline(&["--strict"]);
    assert!(clean.status.success(), "{clean:?}");
    assert!(String::from_utf8_lossy(&clean.stdout).contains("the log verifies"));
    let db = rusqlite::Connection::open(data.join("registry.db")).unwrap();
    db.execute_batch(
        "UPDATE events SET payload = CAST(replace(CAST(payload AS TEXT), 'Lê Văn C', 'Lê Văn D') AS BLOB)
         WHERE CAST(payload AS TEXT) LIKE '%Lê Văn C%'",
    )
    .unwrap();
    let position: i64 = db
        .query_row(
            "SELECT position FROM events WHERE CAST(payload AS TEXT) LIKE '%Lê Văn D%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(db);
    let tampered = offline(&[]);
    assert_eq!(tampered.status.code(), Some(9), "{tampered:?}");
    let shown = String::from_utf8_lossy(&tampered.stdout);
    assert!(
        shown.contains(&format!("position {position}: event changed")),
        "{shown}"
    );
    let json = offline(&["--output", "json"]);
    let answer: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(answer["findings"][0]["kind"], "event changed");
    assert_eq!(answer["findings"][0]["position"], position.to_string());
}

/// A witness cosigns the registry's checkpoints with `regctl witness`, each time only if the
/// log extends the one it cosigned before; its cosignature is kept in the checkpoint every
/// reader gets; a forked log (a checkpoint the witness saw, signed by the registry's key, that
/// the log does not extend) is refused.
#[test]
fn a_witness_cosigns_only_a_log_that_extends_what_it_cosigned() {
    let dir = tempfile::tempdir().unwrap();
    let witness_key = dir.path().join("witness.key");
    let made = Command::cargo_bin("regctl")
        .unwrap()
        .args([
            "keygen",
            "--witness",
            "--name",
            "witness.agency.test",
            "--out",
        ])
        .arg(&witness_key)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let witnesses = format!("{}.pub", witness_key.display());
    let data = dir.path().join("data");
    let daemon = Daemon::embedded(&registryd_binary(), &data, &["--log-witnesses", &witnesses]);
    let regctl = || {
        let mut command = Command::cargo_bin("regctl").unwrap();
        command.args(["--server", &daemon.address]);
        command
    };
    let public = data.join("log.pub");
    let state = dir.path().join("witness.checkpoint");
    let witness = || {
        regctl()
            .args(["witness", "--log-public-key"])
            .arg(&public)
            .arg("--key")
            .arg(&witness_key)
            .arg("--state")
            .arg(&state)
            .output()
            .unwrap()
    };
    let record = |name: &str| {
        let out = regctl().args(["persons", "add", name]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        std::thread::sleep(std::time::Duration::from_millis(1500));
    };
    record("Phạm Văn E");
    let first = witness();
    assert!(first.status.success(), "{first:?}");
    assert!(String::from_utf8_lossy(&first.stdout).contains("(the first)"));
    record("Phạm Văn F");
    let second = witness();
    assert!(second.status.success(), "{second:?}");
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("consistent with the 1 cosigned before")
    );
    // Readers get the checkpoint with the witness's line.
    let shown = regctl()
        .args(["verify", "--log-public-key"])
        .arg(&public)
        .args(["--output", "json"])
        .output()
        .unwrap();
    let answer: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert!(
        answer["note"]
            .as_str()
            .unwrap()
            .contains("\n— witness.agency.test "),
        "{answer}"
    );
    // A fork: the witness's state holds a checkpoint, signed with the registry's own key, of a
    // log the server's does not extend.
    let log_key = std::fs::read_to_string(data.join("log.key")).unwrap();
    let log_key = registry_ledger::SigningKey::parse(&log_key).unwrap();
    let forked = registry_ledger::Checkpoint {
        origin: log_key.name().to_owned(),
        size: 1,
        root: [7; 32],
        time: 1,
    }
    .sign(std::slice::from_ref(&log_key));
    std::fs::write(&state, forked).unwrap();
    let refused = witness();
    assert_eq!(refused.status.code(), Some(9), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not cosigned"));
    daemon.stop();
}

/// `regctl export --signed` writes the plain export's rows with the events they come from,
/// proved in a signed checkpoint; `regctl verify-export` accepts it with the pinned key alone,
/// and refuses a changed row, a changed event, a dropped proof hash, a row without a proof, a
/// stranger's key, and a block that leaves out an event of a row with a proof recomputed from
/// the log's own hashes (what a lying server could send).
#[test]
fn a_signed_export_verifies_and_any_change_to_it_does_not() {
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine;

    let registry = Registry::seeded();
    let data = registry._dir.path().to_owned();
    let public = data.join("log.pub");
    let exported = registry.stdout(&["export", "--at", "2024-03-18", "--signed"]);
    let lines: Vec<String> = exported.lines().map(str::to_owned).collect();
    let header: Value = serde_json::from_str(&lines[0]).unwrap();
    let known_at = header["signed_export"]["known_at"]
        .as_str()
        .unwrap()
        .to_owned();
    // The rows are the plain export's at the same instant.
    let plain = registry.stdout(&["export", "--at", "2024-03-18", "--known-at", &known_at]);
    let mut plain: Vec<&str> = plain.lines().collect();
    let mut rows: Vec<&str> = lines[1..]
        .iter()
        .map(String::as_str)
        .filter(|l| !l.starts_with("{\"proof\""))
        .collect();
    plain.sort_unstable();
    rows.sort_unstable();
    assert_eq!(rows.len(), 14);
    assert_eq!(rows, plain);

    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, lines: &[String]| {
        let path = dir.path().join(name);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        Command::cargo_bin("regctl")
            .unwrap()
            .arg("verify-export")
            .arg(&path)
            .arg("--log-public-key")
            .arg(&public)
            .output()
            .unwrap()
    };
    let refused = |name: &str, lines: &[String], expected: &str| {
        let output = check(name, lines);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(9), "{name}: {stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
    };
    let clean = check("clean", &lines);
    assert!(clean.status.success(), "{clean:?}");
    assert!(String::from_utf8_lossy(&clean.stdout).contains("verified: 14 holdings"));

    // A row's holder renamed: refused at its line, naming the field and both values.
    let row_line = lines
        .iter()
        .position(|l| l.contains("Nguyễn Xuân Ký"))
        .unwrap();
    let mut renamed = lines.clone();
    renamed[row_line] = renamed[row_line].replace("Nguyễn Xuân Ký", "Nguyễn Văn Khác");
    refused(
        "renamed",
        &renamed,
        &format!("line {}: holdings/", row_line + 1),
    );
    refused("renamed", &renamed, "personDisplayName is \"Nguyễn Văn Khác\" in the export but \"Nguyễn Xuân Ký\" by the proved events");
    // A row's end moved: refused.
    let mut moved = lines.clone();
    let row: Value = serde_json::from_str(&lines[row_line]).unwrap();
    let start = row["start"].as_str().unwrap().to_owned();
    moved[row_line] = lines[row_line].replace(
        &format!("\"start\":\"{start}\""),
        "\"start\":\"2001-01-01\"",
    );
    assert_ne!(moved[row_line], lines[row_line]);
    refused("moved", &moved, "start is \"2001-01-01\" in the export");

    // An event's payload altered, a proof hash dropped: the proof no longer makes the root.
    let proof_line = lines
        .iter()
        .position(|l| l.starts_with("{\"proof\""))
        .unwrap();
    let proof: Value = serde_json::from_str(&lines[proof_line]).unwrap();
    let leaf = proof["proof"]["leaves"][0]["leaf"].as_str().unwrap();
    let mut bytes = BASE64.decode(leaf).unwrap();
    let last = bytes.len() - 12;
    bytes[last] ^= 1;
    let mut altered = proof.clone();
    altered["proof"]["leaves"][0]["leaf"] = BASE64.encode(&bytes).into();
    let mut changed = lines.clone();
    changed[proof_line] = altered.to_string();
    refused(
        "leaf",
        &changed,
        &format!(
            "line {}: the events are not in the signed log",
            proof_line + 1
        ),
    );
    let mut shorter = proof.clone();
    shorter["proof"]["hashes"].as_array_mut().unwrap().pop();
    changed[proof_line] = shorter.to_string();
    refused("hash", &changed, "the events are not in the signed log");

    // A row after the last proof, and a stranger's key.
    let mut unproved = lines.clone();
    unproved.push(lines[row_line].clone());
    refused(
        "unproved",
        &unproved,
        "rows after the last proof are not proved",
    );
    let stranger = dir.path().join("stranger.key");
    let made = Command::cargo_bin("regctl")
        .unwrap()
        .args(["keygen", "--name", "localhost/registry", "--out"])
        .arg(&stranger)
        .output()
        .unwrap();
    assert!(made.status.success());
    let output = Command::cargo_bin("regctl")
        .unwrap()
        .arg("verify-export")
        .arg(dir.path().join("clean"))
        .arg("--log-public-key")
        .arg(format!("{}.pub", stranger.display()))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(9));
    assert!(String::from_utf8_lossy(&output.stderr).contains("the checkpoint's signature"));

    // A lying server: the block without the holder's registration, proved with the log's own
    // hashes (read from the store once the daemon has stopped), so every leaf left is in the
    // signed log; the fold no longer gives the holder's name.
    let Registry { daemon, _dir } = registry;
    daemon.stop();
    let db = rusqlite::Connection::open(data.join("registry.db")).unwrap();
    let nodes: std::collections::HashMap<registry_ledger::NodeId, registry_ledger::Hash> = db
        .prepare("SELECT key, hash FROM log_nodes")
        .unwrap()
        .query_map([], |r| {
            let key: i64 = r.get(0)?;
            let hash: Vec<u8> = r.get(1)?;
            Ok((
                registry_ledger::NodeId::from_key(key as u64),
                hash.try_into().unwrap(),
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let block_end = (row_line..lines.len())
        .find(|&i| lines[i].starts_with("{\"proof\""))
        .unwrap();
    let mut proof: Value = serde_json::from_str(&lines[block_end]).unwrap();
    let person = row["person"]
        .as_str()
        .unwrap()
        .trim_start_matches("persons/")
        .to_owned();
    let leaves = proof["proof"]["leaves"].as_array_mut().unwrap();
    let registration = leaves
        .iter()
        .position(|l| {
            let bytes = BASE64.decode(l["leaf"].as_str().unwrap()).unwrap();
            let leaf = registry_ledger::Leaf::decode(&bytes).unwrap();
            leaf.event_type == "PersonRegistered"
                && String::from_utf8_lossy(leaf.payload).contains(&person)
        })
        .expect("the holder's registration is proved with the row");
    leaves.remove(registration);
    let indexes: Vec<u64> = leaves
        .iter()
        .map(|l| l["index"].as_u64().unwrap())
        .collect();
    let size = header["signed_export"]["checkpoint"]
        .as_str()
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let hashes = registry_ledger::batch_proof(&nodes, &indexes, size).unwrap();
    proof["proof"]["hashes"] = hashes.iter().map(|h| BASE64.encode(h)).collect();
    let mut lying = lines.clone();
    lying[block_end] = proof.to_string();
    refused(
        "lying",
        &lying,
        &format!("line {}: {}: ", row_line + 1, row["name"].as_str().unwrap()),
    );
}

/// Under a small message limit the server refuses a block too large to send
/// (RESOURCE_EXHAUSTED) and the export proves it in smaller blocks, which verify.
#[test]
fn a_signed_export_fits_its_blocks_to_the_message_limit() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::embedded(
        &registryd_binary(),
        dir.path(),
        &["--max-message-bytes", "16384"],
    );
    let registry = Registry { daemon, _dir: dir };
    registry.regctl().args(["import", SEED]).assert().success();
    let exported = registry.stdout(&["export", "--at", "2024-03-18", "--signed"]);
    let proofs = exported
        .lines()
        .filter(|l| l.starts_with("{\"proof\""))
        .count();
    assert!(proofs > 1, "one block: {exported}");
    let path = registry._dir.path().join("signed.jsonl");
    std::fs::write(&path, &exported).unwrap();
    let output = Command::cargo_bin("regctl")
        .unwrap()
        .arg("verify-export")
        .arg(&path)
        .arg("--log-public-key")
        .arg(registry._dir.path().join("log.pub"))
        .args(["--output", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["holdings"], 14);
}

/// `regctl backup` copies the embedded store while `registryd` runs and records: the copy
/// checks, holds every event acknowledged before the backup began, verifies against the
/// registry's public key, and a `registryd` started on it answers the seed's question. An
/// existing file is never overwritten.
#[test]
fn a_backup_taken_while_the_registry_records_serves_and_verifies() {
    let registry = Registry::seeded();
    let data = registry._dir.path().to_owned();
    let before: u64 = registry.head().parse().unwrap();
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = copy_dir.path().join("registry.db");
    // Writes go on while the backup runs.
    let writer = {
        let address = registry.daemon.address.clone();
        std::thread::spawn(move || {
            for n in 0..20 {
                let output = Command::cargo_bin("regctl")
                    .unwrap()
                    .args([
                        "--server",
                        &address,
                        "persons",
                        "add",
                        &format!("Người ghi {n}"),
                    ])
                    .output()
                    .unwrap();
                assert!(output.status.success(), "{output:?}");
            }
        })
    };
    let output = Command::cargo_bin("regctl")
        .unwrap()
        .args(["backup", "--output", "json", "--store"])
        .arg(&data)
        .arg("--to")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    let events = answer["events"].as_u64().unwrap();
    assert!(
        events >= before,
        "{events} events copied, {before} acknowledged before"
    );
    writer.join().unwrap();
    // Never over an existing file.
    let again = Command::cargo_bin("regctl")
        .unwrap()
        .args(["backup", "--store"])
        .arg(&data)
        .arg("--to")
        .arg(&copy)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    // The copy verifies with the registry's key, and serves.
    let verified = Command::cargo_bin("regctl")
        .unwrap()
        .args(["verify", "--log-public-key"])
        .arg(data.join("log.pub"))
        .arg("--store")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(verified.status.success(), "{verified:?}");
    let restored = Daemon::embedded(&registryd_binary(), copy_dir.path(), &["--no-log"]);
    let held = Command::cargo_bin("regctl")
        .unwrap()
        .args(["--server", &restored.address, "--output", "json"])
        .args(["who-held", &id(21), "--at", "18/03/2024"])
        .output()
        .unwrap();
    assert!(held.status.success(), "{held:?}");
    let held: Value = serde_json::from_slice(&held.stdout).unwrap();
    assert_eq!(held["holdings"][0]["personDisplayName"], "Phạm Lê Hưng");
    restored.stop();
}

/// `regctl timeline` of the seed's Party Secretary (an office) and of its holder (a career with a
/// concurrent office), on a fixed axis, against the SVG kept in `tests/golden/` (write them
/// again with `REGISTRY_BLESS=1` when the drawing changes on purpose, and look at them).
#[test]
fn a_timeline_draws_the_seed_as_the_golden_svg() {
    let registry = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for (name, file) in [
        (
            "offices/0193a5e0-0000-7000-8000-000000000014",
            "timeline-office.svg",
        ),
        (
            "persons/0193a5e0-0000-7000-8000-000000000027",
            "timeline-person.svg",
        ),
    ] {
        let out = dir.path().join(file);
        registry
            .regctl()
            .args(["timeline", name, "--from", "2019", "--to", "2027", "--svg"])
            .arg(&out)
            .assert()
            .success();
        let drawn = std::fs::read_to_string(&out).unwrap();
        assert!(
            drawn.starts_with("<svg") && drawn.contains("Nguyễn Xuân Ký"),
            "{drawn}"
        );
        if std::env::var_os("REGISTRY_BLESS").is_some() {
            std::fs::write(golden.join(file), &drawn).unwrap();
        }
        let kept = std::fs::read_to_string(golden.join(file)).unwrap();
        assert_eq!(drawn, kept, "{file} differs from the golden file");
    }
    // A name that is neither an office nor a person, and a backward axis: usage errors.
    let wrong = registry
        .regctl()
        .args(["timeline", "units/x"])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(2), "{wrong:?}");
    let backward = registry
        .regctl()
        .args([
            "timeline",
            "offices/0193a5e0-0000-7000-8000-000000000014",
            "--from",
            "2020",
            "--to",
            "2010",
        ])
        .output()
        .unwrap();
    assert_eq!(backward.status.code(), Some(2), "{backward:?}");
}

#[test]
fn who_held_answers_a_file_of_offices_and_persons_in_batches() {
    let r = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let list = write_file(
        dir.path(),
        "asked.txt",
        &format!(
            "# the chairs and a secretary\n{}\npersons/{}  # a person\n\noffices/{}\n",
            id(21),
            id(27),
            id(14)
        ),
    );
    let document = r.json(&["who-held", "--from-file", &list, "--at", "18/03/2024"]);
    let answers = document["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 3, "{document}");
    assert_eq!(answers[0]["asked"], format!("offices/{}", id(21)));
    assert_eq!(
        answers[0]["answer"],
        r.json(&["who-held", &id(21), "--at", "18/03/2024"]),
        "a batch's answer is the single call's"
    );
    assert_eq!(answers[1]["asked"], format!("persons/{}", id(27)));
    let titles: Vec<&str> = answers[1]["answer"]["holdings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["officeTitle"].as_str().unwrap())
        .collect();
    assert!(titles.contains(&"Chủ tịch HĐND tỉnh"), "{titles:?}");
    assert_eq!(
        answers[2]["answer"]["holdings"][0]["personDisplayName"],
        "Nguyễn Xuân Ký"
    );

    // Names that cannot be answered are printed with their errors beside the answered ones.
    let unknown = format!("persons/{}", uuid::Uuid::now_v7());
    let bad = write_file(
        dir.path(),
        "bad.txt",
        &format!("{}\noffices/not-an-id\n{unknown}\n", id(21)),
    );
    let output = r
        .regctl()
        .args(["who-held", "--from-file", &bad, "--at", "2024-03-18"])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stdout.contains("Phạm Lê Hưng"), "{stdout}");
    assert!(stdout.contains("error: requests[1].office"), "{stdout}");
    assert!(
        stdout.contains(&unknown) && stdout.contains("error: requests[0]"),
        "{stdout}"
    );
    assert!(
        stderr.contains("2 of 3 names could not be answered"),
        "{stderr}"
    );
    let empty = write_file(dir.path(), "empty.txt", "# nothing\n\n");
    let stderr = r.fails(
        &["who-held", "--from-file", &empty, "--at", "2024-03-18"],
        2,
    );
    assert!(stderr.contains("names no office or person"), "{stderr}");
}
