//! `candybar mission …` (the real binary) over a real journal on disk: the demo's projects,
//! decisions, risks, drift and briefing in every format, and bad input with a clear message.

mod support;

use std::path::Path;

use candybar_core::demo::{Demo, DemoConfig};
use candybar_core::event::RawMessage;
use candybar_core::registry::Registry;
use candybar_core::time::format_rfc3339;
use candybar_journal::{JournalConfig, JournalWriter};
use serde_json::Value;
use support::llm::chat_stand_in;
use support::{Candybar, bind_queue, path_str, run, shared_broker_url, take_messages, unique};

/// 2026-01-27T10:00:00Z.
const T0_US: i64 = 1_769_508_000_000_000;
const EVENTS: i64 = 3_000;
const STEP_US: i64 = 100_000;

/// A journal of five minutes of the demo feed, with `more` after it; the moment it ends.
fn journal(dir: &Path, more: &[RawMessage]) -> String {
    let mut w = JournalWriter::open(JournalConfig::new(dir.to_owned()), "test").expect("journal");
    let mut demo = Demo::new(DemoConfig::default(), &Registry::example());
    for i in 0..EVENTS {
        w.append(&demo.next_message(T0_US + i * STEP_US));
    }
    for m in more {
        w.append(m);
    }
    w.flush().expect("written");
    format_rfc3339(T0_US + EVENTS * STEP_US + 1_000_000)
}

/// A temporary directory with [`journal`]'s journal in it: (the directory, the journal, its end).
fn demo_journal() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = tmp.path().join("journal");
    let until = journal(&dir, &[]);
    (tmp, dir, until)
}

fn mission(dir: &Path, what: &str, until: &str, format: &str) -> String {
    let (code, out, err) = run(&[
        "mission",
        what,
        "--journal",
        path_str(dir),
        "--until",
        until,
        "--since",
        "24h",
        "--format",
        format,
    ]);
    assert_eq!(code, Some(0), "mission {what} --format {format}: {err}");
    assert!(err.contains("Mission Control events from"), "{err}");
    out
}

#[test]
fn the_journal_answers_in_every_format() {
    let (_tmp, dir, until) = demo_journal();

    let cards: Value = serde_json::from_str(&mission(&dir, "portfolio", &until, "json")).unwrap();
    let cards = cards.as_array().unwrap();
    assert_eq!(cards.len(), 5);
    assert_eq!(cards[0]["name"], "Atlas API", "the top mover first");
    let health = |name: &str| {
        cards.iter().find(|c| c["name"] == name).unwrap()["health"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(health("Delta infra"), "blocked");
    assert_eq!(health("Ember mobile"), "stalled");
    let md = mission(&dir, "portfolio", &until, "md");
    assert!(md.starts_with("# Portfolio\n\n| project |"), "{md}");
    assert!(
        md.contains("| Delta infra | blocked | blocked | 2 open blockers"),
        "{md}"
    );
    let csv = mission(&dir, "portfolio", &until, "csv");
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(rows.records().count(), 5);

    let decisions: Value =
        serde_json::from_str(&mission(&dir, "decisions", &until, "json")).unwrap();
    let decisions = decisions.as_array().unwrap();
    assert!(decisions.len() >= 8, "{decisions:?}");
    assert_eq!(decisions[0]["impact"], "critical");
    assert_eq!(decisions[0]["autonomy_alert"], true);
    let ranks: Vec<f64> = decisions
        .iter()
        .map(|d| d["rank"].as_f64().unwrap())
        .collect();
    assert!(
        ranks.windows(2).all(|w| w[0] >= w[1]),
        "highest first: {ranks:?}"
    );
    assert!(mission(&dir, "decisions", &until, "md").contains("⚠ autonomy alert: **Atlas API**"));

    let risks = mission(&dir, "risks", &until, "md");
    assert!(
        risks.contains("**escalation** critical — Delta infra: staging deploys fail"),
        "{risks}"
    );
    assert!(risks.contains("overdue by"), "{risks}");
    assert!(risks.contains("options: approve / deny / defer"), "{risks}");
    let drift = mission(&dir, "drift", &until, "md");
    assert!(
        drift.contains("## Beacon web — drift significant, 1 scope change"),
        "{drift}"
    );
    assert!(
        drift.contains("roadmap v1 → v2 (scope_change): added"),
        "{drift}"
    );

    let brief = mission(&dir, "brief", &until, "md");
    assert!(
        brief.starts_with("# AM briefing — Tue 27 Jan 2026") || brief.starts_with("# PM briefing"),
        "{brief}"
    );
    for section in [
        "## Needle-movers",
        "## Decisions",
        "## Risks watchlist",
        "[^1]: ",
    ] {
        assert!(brief.contains(section), "{section}: {brief}");
    }
    let again = mission(&dir, "brief", &until, "md");
    assert_eq!(brief, again, "deterministic");
    let json: Value = serde_json::from_str(&mission(&dir, "brief", &until, "json")).unwrap();
    assert!(!json["sources"].as_array().unwrap().is_empty());
}

#[test]
fn bad_records_and_bad_input_get_a_clear_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    // Records Mission Control cannot make much of: not JSON, binary, wrong types, a huge array.
    let at = T0_US + EVENTS * STEP_US;
    let raw = |kind: &str, body: Vec<u8>| RawMessage {
        received_us: at,
        routing_key: kind.into(),
        body,
        ..RawMessage::default()
    };
    let huge: Vec<String> = (0..50_000)
        .map(|i| format!(r#"{{"id":"b{i}","kind":"x"}}"#))
        .collect();
    let until = journal(
        &dir,
        &[
            raw("lifecycle.status.updated", b"not json {".to_vec()),
            raw("portfolio.escalation.raised", vec![0xff, 0x00, 0x9c, 0x12]),
            raw(
                "lifecycle.status.updated",
                format!(
                    r#"{{"event_type":"lifecycle.status.updated","payload":{{"lifecycle_id":"lc-x","current":7,"blockers":[{}]}}}}"#,
                    huge.join(",")
                )
                .into_bytes(),
            ),
            raw(
                "repo.decision.recorded",
                br#"{"event_type":"repo.decision.recorded","payload":{"impact":"galactic","decided_by":["x"]}}"#.to_vec(),
            ),
        ],
    );
    let cards: Value = serde_json::from_str(&mission(&dir, "portfolio", &until, "json")).unwrap();
    let x = cards
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == "lc-x")
        .expect("a project known only from a malformed status is shown");
    assert_eq!(x["open_blockers"], 200, "a huge list is read in part");
    let brief = mission(&dir, "brief", &until, "md");
    assert!(
        brief.contains("2 events could not be read (not JSON)."),
        "{brief}"
    );

    for (args, says) in [
        (
            vec!["mission", "portfolio", "--journal", "/nonexistent/j"],
            "no journal in /nonexistent/j",
        ),
        (
            vec![
                "mission",
                "brief",
                "--journal",
                path_str(&dir),
                "--format",
                "csv",
            ],
            "a briefing is Markdown or JSON",
        ),
        (
            vec![
                "mission",
                "risks",
                "--journal",
                path_str(&dir),
                "--since",
                "yesterday",
            ],
            "--since \"yesterday\" is neither a duration",
        ),
        (
            vec![
                "mission",
                "decisions",
                "--journal",
                path_str(&dir),
                "--since",
                "2099-01-01T00:00:00Z",
            ],
            "--since is after --until",
        ),
    ] {
        let (code, _, err) = run(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// `tool` from poppler-utils, or a failure saying what to install.
fn poppler(tool: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{tool} is needed to check PDFs: apt-get install poppler-utils ({e})")
        });
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_pdf_opens_and_reads_like_the_report() {
    let (tmp, dir, until) = demo_journal();
    for what in ["portfolio", "risks", "brief"] {
        let pdf = tmp.path().join(format!("{what}.pdf"));
        let (code, out, err) = run(&[
            "mission",
            what,
            "--journal",
            path_str(&dir),
            "--until",
            &until,
            "--format",
            "pdf",
            "--out",
            path_str(&pdf),
        ]);
        assert_eq!(code, Some(0), "{err}");
        assert!(out.is_empty());
        assert!(err.contains("wrote"), "{err}");
        // A reader opens it: its text is the report's, and its first page renders.
        let text = poppler("pdftotext", &["-layout", path_str(&pdf), "-"]);
        let expect = match what {
            "portfolio" => "Delta infra",
            "risks" => "staging deploys fail since 09:10",
            _ => "Needle-movers",
        };
        assert!(text.contains(expect), "{what}: {text}");
        assert!(text.contains("page 1 of"), "{text}");
        let png = tmp.path().join(what);
        poppler(
            "pdftoppm",
            &[
                "-png",
                "-r",
                "60",
                "-f",
                "1",
                "-l",
                "1",
                path_str(&pdf),
                path_str(&png),
            ],
        );
        let page = std::fs::read_dir(tmp.path())
            .unwrap()
            .filter_map(Result::ok)
            .find(|e| {
                e.file_name().to_string_lossy().starts_with(what)
                    && e.file_name().to_string_lossy().ends_with(".png")
            })
            .expect("pdftoppm drew the first page");
        assert!(
            page.metadata().unwrap().len() > 2_000,
            "a page with something on it"
        );
        if let Ok(out) = std::env::var("CANDYBAR_ARTIFACTS") {
            let _ = std::fs::create_dir_all(&out);
            let _ = std::fs::copy(
                page.path(),
                Path::new(&out).join(format!("mission-{what}-pdf.png")),
            );
        }
    }
    // A PDF is not written to a terminal (stdout is a pipe here: it is written).
    let (code, out, _) = run(&[
        "mission",
        "risks",
        "--journal",
        path_str(&dir),
        "--until",
        &until,
        "--format",
        "pdf",
    ]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("%PDF-"));
}

#[test]
fn a_saved_briefing_is_kept_and_announced_on_the_bus() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let archive = tmp.path().join("briefings");
    let until = journal(&dir, &[]);
    let url = shared_broker_url();
    let exchange = unique("t.mission");
    let queue = bind_queue(&url, &exchange, "reporting.#");
    let save = |bus: &[&str]| {
        let mut args = vec![
            "mission",
            "brief",
            "--journal",
            path_str(&dir),
            "--until",
            &until,
            "--save",
            "--archive",
            path_str(&archive),
        ];
        args.extend_from_slice(bus);
        run(&args)
    };
    let (code, out, err) = save(&["--amqp", &url, "--exchange", &exchange]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("the briefing is kept in"), "{err}");
    let kept: Vec<_> = std::fs::read_dir(&archive)
        .unwrap()
        .filter_map(Result::ok)
        .collect();
    assert_eq!(kept.len(), 1, "one file, no temporary left");
    let text = std::fs::read_to_string(kept[0].path()).unwrap();
    assert_eq!(text, out, "the file is what was printed");
    let events: Vec<Value> = take_messages(&url, &queue, 2, std::time::Duration::from_secs(10))
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["reporting.report.started", "reporting.report.completed"]
    );
    assert_eq!(
        events[0]["payload"]["run_id"],
        events[1]["payload"]["run_id"]
    );
    let done = &events[1]["payload"];
    assert_eq!(done["path"], kept[0].path().display().to_string());
    assert!(
        done["sections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "Risks watchlist")
    );

    // A dead broker: the briefing is kept all the same, and the bus's refusal said.
    let (code, _, err) = save(&["--amqp", "amqp://guest:guest@127.0.0.1:1/%2f"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("the briefing is kept in"), "{err}");
    assert!(
        err.contains("the bus did not take its reporting events"),
        "{err}"
    );
    // A briefing is what --save keeps.
    let (code, _, err) = run(&["mission", "risks", "--journal", path_str(&dir), "--save"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--save and --llm are for briefings"), "{err}");
}

#[test]
fn the_model_is_saved_beside_the_journal_and_the_next_read_starts_from_it() {
    let (_tmp, dir, until) = demo_journal();
    // The portfolio as JSON as of `until`: (exit code, stdout, stderr).
    let portfolio = |until: &str| {
        run(&[
            "mission",
            "portfolio",
            "--journal",
            path_str(&dir),
            "--until",
            until,
            "--format",
            "json",
        ])
    };
    let first = mission(&dir, "portfolio", &until, "json");
    assert!(dir.join("mission-snapshot.json").exists(), "saved");
    // Again: from the saved model, nothing read, the same answers.
    let (code, again, err) = portfolio(&until);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("the saved model and 0 Mission Control events from 0 blocks"),
        "{err}"
    );
    assert_eq!(again, first);

    // A project that starts later: read on top of the saved model.
    let later = T0_US + EVENTS * STEP_US + 5_000_000;
    let body = r#"{"event_type":"lifecycle.mission.created","event_id":"late-1","payload":{"lifecycle_id":"lc-late","name":"Late project","repo":"late","status":"active","health":"nominal"}}"#;
    {
        let mut w = JournalWriter::open(JournalConfig::new(dir.clone()), "test").unwrap();
        w.append(&RawMessage {
            received_us: later,
            routing_key: "lifecycle.mission.created".into(),
            body: body.as_bytes().to_vec(),
            ..RawMessage::default()
        });
        w.flush().unwrap();
    }
    let until2 = format_rfc3339(later + 1_000_000);
    let (code, out, err) = portfolio(&until2);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("the saved model and 1 Mission Control events from 1 blocks"),
        "{err}"
    );
    let cards: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(cards.as_array().unwrap().len(), 6, "{out}");

    // A broken saved model is ignored: everything is read again, the answers the same.
    std::fs::write(dir.join("mission-snapshot.json"), b"{ not json").unwrap();
    let (code, out2, err) = portfolio(&until2);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("the saved model"), "{err}");
    assert_eq!(out2, out);
}

/// Five minutes of the demo feed up to now (what a recorder or an import writes into drops what
/// is older than the retention): (a temporary directory, the journal in it).
fn recent_demo_journal() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = tmp.path().join("journal");
    let mut w = JournalWriter::open(JournalConfig::new(dir.clone()), "test").expect("journal");
    let mut demo = Demo::new(DemoConfig::default(), &Registry::example());
    let start = candybar_core::time::now_us() - EVENTS * STEP_US;
    for i in 0..EVENTS {
        w.append(&demo.next_message(start + i * STEP_US));
    }
    w.flush().expect("written");
    (tmp, dir)
}

/// `candybar record` keeps the model saved beside the journal it writes: the first Mission view
/// after it reads only what came since, not the whole journal, and answers the same.
#[test]
fn the_recorder_keeps_the_model_saved_for_the_next_first_view() {
    let (_tmp, dir) = recent_demo_journal();
    let snapshot = dir.join("mission-snapshot.json");
    assert!(!snapshot.exists());
    let rec = Candybar::spawn(&["record", "--demo", "--journal", path_str(&dir)]);
    let end = std::time::Instant::now() + std::time::Duration::from_mins(1);
    while !snapshot.exists() {
        assert!(
            std::time::Instant::now() < end,
            "the recorder saved no model within a minute; its stderr:\n{}",
            rec.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    rec.signal("TERM");
    let (code, err) = rec.wait(std::time::Duration::from_secs(30));
    assert_eq!(code, Some(0), "{err}");
    // (project, status) of each card, as of now.
    let portfolio = || {
        let (code, out, err) = run(&[
            "mission",
            "portfolio",
            "--journal",
            path_str(&dir),
            "--format",
            "json",
        ]);
        assert_eq!(code, Some(0), "{err}");
        let cards: Value = serde_json::from_str(&out).unwrap();
        let cards: Vec<(String, String)> = cards
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].to_string(), c["status"].to_string()))
            .collect();
        (cards, err)
    };
    let (saved, err) = portfolio();
    assert!(err.contains("the saved model and "), "{err}");
    // The journal's 3,000 events were read by the recorder, not by this first view.
    let blocks_read: usize = err
        .split(" Mission Control events from ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert!(blocks_read <= 1, "{err}");
    std::fs::remove_file(&snapshot).unwrap();
    let (whole, err) = portfolio();
    assert!(!err.contains("the saved model"), "{err}");
    assert_eq!(saved, whole);
    assert_eq!(saved.len(), 5, "{saved:?}");
}

/// An import of events older than the saved model's moment builds the model anew: the next
/// read from it has them (a read from the old model would start after them).
#[test]
fn an_import_of_older_events_is_in_the_next_mission_view() {
    let (tmp, dir) = recent_demo_journal();
    let until = format_rfc3339(candybar_core::time::now_us());
    let first = mission(&dir, "portfolio", &until, "json");
    assert!(dir.join("mission-snapshot.json").exists(), "saved");
    assert!(!first.contains("Old project"), "{first}");
    // A project from before the journal's first event, exported from another journal.
    let other = tmp.path().join("other");
    {
        let mut w = JournalWriter::open(JournalConfig::new(other.clone()), "test").unwrap();
        w.append(&RawMessage {
            received_us: candybar_core::time::now_us() - 3_600_000_000,
            routing_key: "lifecycle.mission.created".into(),
            body: br#"{"event_type":"lifecycle.mission.created","event_id":"old-1","payload":{"lifecycle_id":"lc-old","name":"Old project","repo":"old","status":"active","health":"nominal"}}"#.to_vec(),
            ..RawMessage::default()
        });
        w.flush().unwrap();
    }
    let (code, ndjson, err) = run(&[
        "query",
        "--journal",
        path_str(&other),
        "--since",
        "2020-01-01T00:00:00Z",
        "--format",
        "ndjson",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let file = tmp.path().join("old.ndjson");
    std::fs::write(&file, ndjson).unwrap();
    let (code, _, err) = run(&["import", "--journal", path_str(&dir), path_str(&file)]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("Mission Control's saved model built anew with what was imported"),
        "{err}"
    );
    let (code, out, err) = run(&[
        "mission",
        "portfolio",
        "--journal",
        path_str(&dir),
        "--until",
        &until,
        "--format",
        "json",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("the saved model and 0 Mission Control events"),
        "{err}"
    );
    let cards: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(cards.as_array().unwrap().len(), 6, "{out}");
    assert!(out.contains("Old project"), "{out}");
}

#[test]
fn llm_rewrites_a_briefing_only_when_it_keeps_every_fact_and_source() {
    let (tmp, dir, until) = demo_journal();
    let brief = |url: &str| {
        let config = tmp.path().join(format!("{}.toml", url.len()));
        std::fs::write(
            &config,
            format!("[mission]\nllm_url = \"{url}\"\nllm_model = \"tiny\"\n"),
        )
        .unwrap();
        support::run_env(
            &[
                "mission",
                "brief",
                "--journal",
                path_str(&dir),
                "--until",
                &until,
                "--llm",
                "--config",
                path_str(&config),
            ],
            &[("CANDYBAR_LLM_KEY", "sk-test-1")],
        )
    };
    // The briefing as written (the same range: the default 12 h).
    let (code, plain, err) = run(&[
        "mission",
        "brief",
        "--journal",
        path_str(&dir),
        "--until",
        &until,
    ]);
    assert_eq!(code, Some(0), "{err}");

    // A rewrite that keeps every heading and source marker is used; the sources list stays.
    let (url, seen) = chat_stand_in(|user| (200, format!("Rewritten for reading.\n\n{user}")));
    let (code, out, err) = brief(&url);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("Rewritten for reading."), "{out}");
    assert!(out.contains("[^1]: "), "the sources list is kept: {out}");
    let asked = seen.lock()[0].clone();
    assert_eq!(asked["model"], "tiny");
    assert!(
        asked["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("## Decisions")
    );
    assert!(
        !asked.to_string().contains("[^1]: "),
        "the sources list is not sent"
    );

    // One that loses sources is refused: the briefing as written, and why.
    let (url, _) = chat_stand_in(|user| (200, user.replace("[^1]", "")));
    let (code, out, err) = brief(&url);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("the rewrite lost [^1]"), "{err}");
    assert_eq!(out, plain);

    // An endpoint that fails or is not there: said, the briefing as written, no key in the words.
    let (url, _) = chat_stand_in(|_| (500, "model not loaded".into()));
    let (_, out, err) = brief(&url);
    assert!(
        err.contains("answered 500 Internal Server Error: model not loaded"),
        "{err}"
    );
    assert_eq!(out, plain);
    let (_, out, err) = brief("http://127.0.0.1:1/v1");
    assert!(err.contains("did not answer"), "{err}");
    assert!(!err.contains("sk-test-1"), "{err}");
    assert_eq!(out, plain);
}
