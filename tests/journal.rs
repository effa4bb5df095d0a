//! The journal end to end: `candybar record` from a real RabbitMQ into a directory, `candybar
//! query` back out, `candybar import`; crashes (`kill -9` of the recorder and of the broker),
//! damage, a full disk (a real tmpfs, mounted in a user namespace), files in the way.

// Helpers outside `#[test]` functions: a failed step panics with its message.
#![allow(clippy::unwrap_used)]

mod support;

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::journal::{query_ids, record, wait_for_count, wait_for_ids};
use support::{Broker, Candybar, path_str, run, shared_broker_url, unique};

fn batch(prefix: &str, n: usize) -> Vec<(String, Vec<u8>, Option<String>)> {
    (0..n).map(|i| one(prefix, i)).collect()
}

/// Event `{prefix}-{i}`; every tenth an error.
fn one(prefix: &str, i: usize) -> (String, Vec<u8>, Option<String>) {
    let kind = if i.is_multiple_of(10) {
        "agent.thread.error"
    } else {
        "agent.thread.prompt"
    };
    let body = format!(
        r#"{{"event_id":"{prefix}-{i}","event_type":"{kind}","payload":{{"i":{i},"text":"words about the work {i}"}}}}"#
    );
    (kind.to_owned(), body.into_bytes(), None)
}

#[test]
fn recorded_events_come_back_through_query_filtered_in_order_and_once() {
    let url = shared_broker_url();
    let exchange = unique("t.journal");
    let queue = unique("candybar.test.record");
    support::declare_exchange(&url, &exchange);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let rec = record(&url, &exchange, ["--durable-queue", &queue], &journal);
    rec.wait_stderr("connected", 1, Duration::from_secs(20));
    support::lapin_publish(&url, &exchange, &batch("a", 300));
    // A redelivery of the same events (at-least-once): kept once.
    support::lapin_publish(&url, &exchange, &batch("a", 50));
    let ids = wait_for_count(&journal, 300, Duration::from_secs(30));
    let expected: Vec<String> = (0..300).map(|i| format!("a-{i}")).collect();
    assert_eq!(ids, expected, "every event once, in order");

    // The window's filter language, a time range, a count.
    let errors = query_ids(&journal, &["--filter", "agent.thread.error"]);
    assert_eq!(errors.len(), 30);
    assert_eq!(errors[1], "a-10");
    assert_eq!(
        query_ids(&journal, &["--filter", "\"work 299\""]),
        ["a-299"]
    );
    assert_eq!(query_ids(&journal, &["--since", "1h"]).len(), 300);
    assert!(query_ids(&journal, &["--until", "1h"]).is_empty());
    assert_eq!(query_ids(&journal, &["-n", "5"]).len(), 5);
    let (code, _, err) = run(&[
        "query",
        "--journal",
        path_str(&journal),
        "--since",
        "tuesday",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("neither a duration"), "{err}");

    // JSON and CSV for other tools.
    let (_, json, _) = run(&["query", "--journal", path_str(&journal), "--format", "json"]);
    let array: Vec<Value> = serde_json::from_str(&json).expect("one JSON array");
    assert_eq!(array.len(), 300);
    let (_, csv, _) = run(&["query", "--journal", path_str(&journal), "--format", "csv"]);
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(rows.records().count(), 300);

    // `--follow` prints what is journaled from now on.
    std::thread::sleep(Duration::from_millis(1200));
    let follow = Candybar::spawn(&[
        "query",
        "--journal",
        path_str(&journal),
        "--follow",
        "--since",
        "1s",
        "--format",
        "ndjson",
    ]);
    std::thread::sleep(Duration::from_millis(1500));
    support::lapin_publish(&url, &exchange, &batch("b", 10));
    let lines = follow.lines(10, Duration::from_secs(20));
    assert!(
        lines[0].contains("\"b-0\"") && lines[9].contains("\"b-9\""),
        "{lines:?}"
    );

    // A second writer is refused, naming the first.
    let (code, _, err) = run(&["record", "--demo", "--journal", path_str(&journal)]);
    assert_eq!(code, Some(2));
    assert!(err.contains("candybar record, pid"), "{err}");

    // SIGTERM: the last block is written and the count said.
    rec.signal("TERM");
    let (code, err) = rec.wait(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("recorded 310 events (50 duplicates dropped)"),
        "{err}"
    );
}

#[test]
fn kill_9_of_the_recorder_and_of_the_broker_loses_no_confirmed_event() {
    let broker = Broker::start();
    let url = broker.url();
    let exchange = unique("t.crash");
    let queue = unique("candybar.test.crash");
    support::declare_exchange(&url, &exchange);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let mut rec = record(&url, &exchange, ["--durable-queue", &queue], &journal);
    rec.wait_stderr("connected", 1, Duration::from_secs(20));
    let mut confirmed: Vec<String> = Vec::new();
    for round in 0..4 {
        // Publishes until stopped (or the broker dies): the kill below always lands under load.
        let publishing = support::Publishing::start(&url, &exchange, move |i| {
            Some(one(&format!("r{round}"), i))
        });
        let confirmed_ids = |ids: Vec<usize>| ids.into_iter().map(move |i| format!("r{round}-{i}"));
        std::thread::sleep(Duration::from_millis(700));
        if round % 2 == 0 {
            drop(rec); // SIGKILL of the recorder
            rec = record(&url, &exchange, ["--durable-queue", &queue], &journal);
            rec.wait_stderr("connected", 1, Duration::from_secs(20));
            std::thread::sleep(Duration::from_millis(300));
            confirmed.extend(confirmed_ids(publishing.stop()));
        } else {
            broker.kill();
            confirmed.extend(confirmed_ids(publishing.stop()));
            rec.wait_stderr("retrying", 1, Duration::from_secs(10));
            broker.restart();
            support::declare_exchange(&url, &exchange);
            rec.wait_stderr("no events were lost", 1, Duration::from_secs(30));
        }
    }
    assert!(confirmed.len() > 4_000, "{} confirmed", confirmed.len());
    // Events published but not confirmed before a kill may be journaled too: wait for the
    // confirmed ones, not for a count.
    let ids = wait_for_ids(&journal, &confirmed, Duration::from_mins(2));
    support::journal::assert_each_once(&ids, &confirmed, &rec.stderr());
}

/// `candybar import FILE --journal JOURNAL`, keeping events for 10,000 days: the fixtures' fixed
/// dates stay inside the journal's retention.
fn import(file: &std::path::Path, journal: &std::path::Path) -> (Option<i32>, String, String) {
    support::run_env(
        &["import", path_str(file), "--journal", path_str(journal)],
        &[("CANDYBAR_JOURNAL_MAX_AGE", "10000d")],
    )
}

/// A journal written by `import` from a generated file: `n` events.
fn imported(n: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let lines: String = batch("i", n)
        .into_iter()
        .map(|(_, body, _)| String::from_utf8(body).unwrap() + "\n")
        .collect();
    std::fs::write(&file, lines).unwrap();
    let journal = dir.path().join("journal");
    let (code, _, err) = import(&file, &journal);
    assert_eq!(code, Some(0), "{err}");
    (dir, journal)
}

/// Free text screens the journal's events before anything is decoded (on every core, block by
/// block): what it finds must be exactly what the window's filter finds, in order.
#[test]
fn text_queries_over_many_blocks_find_every_match_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let n = 5000;
    let mut text = String::new();
    for i in 0..n {
        let kind = if i % 10 == 0 {
            "agent.thread.error"
        } else {
            "agent.thread.prompt"
        };
        let (h, m, s) = (10 + i / 3600, (i / 60) % 60, i % 60);
        writeln!(
            text,
            r#"{{"event_id":"t-{i}","event_type":"{kind}","timestamp":"2026-12-01T{h:02}:{m:02}:{s:02}Z","payload":{{"text":"Words about the work {i}"}}}}"#
        )
        .unwrap();
    }
    std::fs::write(&file, text).unwrap();
    let journal = dir.path().join("journal");
    let (code, _, err) = import(&file, &journal);
    assert_eq!(code, Some(0), "{err}");
    let ids = |keep: &dyn Fn(usize) -> bool| -> Vec<String> {
        (0..n)
            .filter(|&i| keep(i))
            .map(|i| format!("t-{i}"))
            .collect()
    };
    let work = |i: usize, what: &str| format!("work {i}").contains(what);
    for (filter, expected) in [
        ("\"work 4321\"", ids(&|i| i == 4321)),
        // Smart case: lower case finds any case, an upper-case letter only itself.
        ("words", ids(&|_| true)),
        ("WORDS", ids(&|_| false)),
        ("Words", ids(&|_| true)),
        (
            "agent.thread.error \"work 1\"",
            ids(&|i| i % 10 == 0 && work(i, "work 1")),
        ),
        (
            "\"work 7\" OR agent.thread.error",
            ids(&|i| i % 10 == 0 || work(i, "work 7")),
        ),
        ("-words OR \"work 12\"", ids(&|i| work(i, "work 12"))),
        ("\"work 4\" -\"work 4\"", ids(&|_| false)),
    ] {
        assert_eq!(
            query_ids(&journal, &["--filter", filter]),
            expected,
            "{filter}"
        );
    }
    assert_eq!(
        query_ids(&journal, &["--filter", "work", "-n", "3"]),
        ["t-0", "t-1", "t-2"]
    );
}

#[test]
fn import_keeps_the_good_lines_names_the_broken_ones_and_never_doubles() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.ndjson");
    let mut text = String::new();
    // candybar's own export format, a bare body, a broken line, a binary line, an empty one.
    text.push_str(r#"{"seq":1,"received_at":"2026-12-01T10:00:00Z","routing_key":"llm.response","type":"llm.response","domain":"llm","status":"other","size":40,"body_kind":"bloodbank_v1","body":{"event_id":"x-1","event_type":"llm.response"}}"#);
    text.push('\n');
    text.push_str(r#"{"event_id":"x-2","event_type":"agent.thread.prompt","timestamp":"2026-12-01T10:00:01Z"}"#);
    text.push('\n');
    text.push_str("{\"event_id\": \"x-3\", \"event_type\": \n");
    text.push('\n');
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(&[0xff, 0xfe, 0x00, b'\n']);
    bytes.extend_from_slice(br#"{"event_id":"x-4","event_type":"agent.thread.prompt"}"#);
    // Received longer ago than the journal keeps (10,000 days): said, not written (retention
    // would drop it at once).
    bytes.extend_from_slice(
        br#"
{"seq":9,"received_at":"1990-01-01T00:00:00Z","routing_key":"agent.thread.prompt","type":"agent.thread.prompt","domain":"agent","status":"other","size":60,"body_kind":"bloodbank_v1","body":{"event_id":"x-5","event_type":"agent.thread.prompt"}}
"#,
    );
    std::fs::write(&file, bytes).unwrap();
    let journal = dir.path().join("journal");
    let (code, _, err) = import(&file, &journal);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("line 3: not JSON"), "{err}");
    assert!(err.contains("line 5: not JSON"), "{err}");
    assert!(
        err.contains("imported 3 events") && err.contains("2 broken lines"),
        "{err}"
    );
    assert!(
        err.contains(
            "1 event was not imported: older than the journal keeps ([journal] max_age, 10000 d"
        ),
        "{err}"
    );
    assert_eq!(query_ids(&journal, &[]), ["x-1", "x-2", "x-4"]);
    // The export's own receive time is kept.
    let (_, out, _) = run(&[
        "query",
        "--journal",
        path_str(&journal),
        "--format",
        "ndjson",
        "-n",
        "1",
    ]);
    assert!(
        out.contains("\"received_at\":\"2026-12-01T10:00:00"),
        "{out}"
    );

    let (code, _, err) = import(&file, &journal);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("imported 0 events") && err.contains("3 already there"),
        "{err}"
    );
    assert_eq!(query_ids(&journal, &[]).len(), 3);

    let (code, _, err) = run(&[
        "import",
        "/nonexistent/x.ndjson",
        "--journal",
        path_str(&journal),
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("cannot read /nonexistent/x.ndjson"), "{err}");
}

/// `candybar query --journal JOURNAL` with `extra`: exit code, stdout, stderr.
fn query_out(journal: &std::path::Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec!["query", "--journal", path_str(journal)];
    args.extend_from_slice(extra);
    run(&args)
}

/// A journal whose blocks are out of time order (an import of older events after newer):
/// `g-00`..`g-19`, received 2026-12-01 10:00–10:49.
fn imported_out_of_order(dir: &std::path::Path) -> std::path::PathBuf {
    let journal = dir.join("journal");
    let line = |i: usize, minute: usize| {
        format!(
            r#"{{"seq":{i},"received_at":"2026-12-01T10:{minute:02}:00Z","routing_key":"agent.thread.prompt","body":{{"event_id":"g-{i:02}","event_type":"agent.thread.prompt"}}}}"#
        ) + "\n"
    };
    let newer: String = (10..20).map(|i| line(i, 30 + i)).collect();
    let older: String = (0..10).map(|i| line(i, i)).collect();
    for (name, text) in [("newer.ndjson", newer), ("older.ndjson", older)] {
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        let (code, _, err) = import(&file, &journal);
        assert_eq!(code, Some(0), "{err}");
    }
    journal
}

/// Where nothing was recorded: a line in words in text; with `--gaps`, a record of its own in
/// NDJSON and JSON, in its place among the events; never in CSV. JSON stays one valid array
/// when the journal's blocks are out of time order. An import leaves gap lines out and says so;
/// a replay shows them.
#[test]
fn gaps_come_out_in_their_place_for_scripts_that_ask() {
    let dir = tempfile::tempdir().unwrap();
    let journal = imported_out_of_order(dir.path());
    let expected: Vec<String> = (0..20).map(|i| format!("g-{i:02}")).collect();
    let (code, json, err) = query_out(&journal, &["--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let array: Vec<Value> = serde_json::from_str(&json).expect("one valid JSON array");
    assert_eq!(support::journal::ids_of(&array), expected, "oldest first");

    // A recorder started long after the newest event marks the time between as a gap.
    let keep_all = [("CANDYBAR_JOURNAL_MAX_AGE", "10000d")];
    let rec = Candybar::spawn_env(
        &["record", "--demo", "--journal", path_str(&journal)],
        &keep_all,
    );
    rec.wait_stderr("recording the demo feed", 1, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1500));
    rec.signal("TERM");
    let (code, err) = rec.wait(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{err}");

    let records = support::journal::query(&journal, &["--gaps"]);
    let is_gap = |r: &Value| r.get("gap").is_some();
    assert_eq!(
        records.iter().filter(|r| is_gap(r)).count(),
        1,
        "{records:?}"
    );
    let at = records.iter().position(is_gap).unwrap();
    assert_eq!(support::journal::ids_of(&records[..at]), expected);
    assert!(records.len() > at + 1, "the demo's events follow the gap");
    let gap = &records[at]["gap"];
    let start = gap["start"].as_str().unwrap();
    assert!(
        start.starts_with("2026-12-01T10:49:00"),
        "from the newest event: {gap}"
    );
    assert_eq!(gap["reason"], "nothing was recording");
    assert_eq!(gap["lossless"], false, "the demo kept nothing meanwhile");
    assert!(gap["seconds"].as_f64().unwrap() > 86_400.0, "{gap}");
    // Without `--gaps`, events only; text always shows the gap, with its dates across days.
    assert!(!support::journal::query(&journal, &[]).iter().any(is_gap));
    let (_, text, _) = query_out(&journal, &[]);
    assert!(text.contains("── gap 2026-12-01T10:49:00"), "{text}");
    assert!(text.contains("nothing was recording"), "{text}");
    let (_, json, _) = query_out(&journal, &["--format", "json", "--gaps"]);
    let array: Vec<Value> = serde_json::from_str(&json).expect("one valid JSON array");
    assert!(is_gap(&array[at]), "{:?}", array[at]);
    let (code, _, err) = query_out(&journal, &["--format", "csv", "--gaps"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("--gaps needs --format ndjson or json"),
        "{err}"
    );

    // The export with its gap, imported elsewhere: the events, not the gap.
    let (_, ndjson, _) = query_out(&journal, &["--format", "ndjson", "--gaps"]);
    let file = dir.path().join("export.ndjson");
    std::fs::write(&file, ndjson).unwrap();
    let other = dir.path().join("other");
    let (code, _, err) = import(&file, &other);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("1 gap lines") && err.contains("not imported"),
        "{err}"
    );
    assert!(err.contains("0 broken lines"), "{err}");
    let back = support::journal::query(&other, &["--gaps"]);
    assert_eq!(back.len(), records.len() - 1);
    assert!(!back.iter().any(is_gap));
    // Replayed, it shows where nothing was received, as a live gap does.
    let args = [
        "tail",
        "--replay",
        path_str(&file),
        "--replay-fast",
        "--format",
        "ndjson",
    ];
    let (code, out, err) = run(&args);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out.lines().count(),
        records.len() - 1,
        "events only on stdout"
    );
    assert!(
        err.contains("gap ") && err.contains("nothing was recording"),
        "{err}"
    );
}

#[test]
fn a_damaged_journal_is_reported_once_and_the_rest_is_read() {
    let (_dir, journal) = imported(5000);
    assert_eq!(query_ids(&journal, &[]).len(), 5000);
    // Flip bytes in the middle of the segment: one block is lost, and said so.
    let seg = journal.join("0000000001.cbj");
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 16] {
        *b ^= 0xa5;
    }
    std::fs::write(&seg, bytes).unwrap();
    let (code, out, err) = run(&[
        "query",
        "--journal",
        path_str(&journal),
        "--format",
        "ndjson",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let n = out.lines().count();
    assert!(
        (3900..5000).contains(&n),
        "{n} events read back; stderr: {err}"
    );
    assert_eq!(err.matches("damaged journal").count(), 1, "{err}");
    assert!(err.contains("0000000001.cbj at byte"), "{err}");
    // A recorder opening it says so too, and appends after it.
    let (code, _, err) = run(&[
        "record",
        "--replay",
        "/dev/null",
        "--journal",
        path_str(&journal),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("damaged journal"), "{err}");
}

#[test]
fn files_in_the_way_and_newer_journals_are_refused_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let (code, _, err) = run(&["record", "--demo", "--journal", path_str(&file)]);
    assert_eq!(code, Some(2));
    assert!(err.contains("is not a directory"), "{err}");
    let (code, _, err) = run(&["query", "--journal", path_str(&dir.path().join("none"))]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("does not exist") && err.contains("candybar record"),
        "{err}"
    );

    let (_d, journal) = imported(10);
    let seg = journal.join("0000000001.cbj");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[16] = 9; // the format version
    std::fs::write(&seg, bytes).unwrap();
    for args in [
        vec!["query", "--journal", path_str(&journal)],
        vec!["record", "--demo", "--journal", path_str(&journal)],
    ] {
        let (code, _, err) = run(&args);
        assert_eq!(code, Some(2), "{args:?}");
        assert!(err.contains("newer candybar (journal format 9"), "{err}");
    }
}

#[test]
fn a_full_disk_pauses_recording_and_it_resumes_when_space_returns() {
    // A real 4 MiB tmpfs, mounted in a user namespace of its own (no root needed), nearly filled.
    let probe = Command::new("unshare").args(["-rm", "true"]).output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "this test mounts a small tmpfs in a user namespace: it needs `unshare` (util-linux) and unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1): {probe:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let n = 20_000;
    let replay = dir.path().join("events.ndjson");
    let lines: String = batch("f", n)
        .into_iter()
        .map(|(_, body, _)| String::from_utf8(body).unwrap() + "\n")
        .collect();
    std::fs::write(&replay, lines).unwrap();
    let script = r#"
        set -u
        mount -t tmpfs -o size=4m tmpfs "$MNT"
        head -c 4100000 /dev/zero > "$MNT/filler" 2>/dev/null
        "$CANDYBAR" record --replay "$REPLAY" --replay-fast --journal "$MNT/journal" 2> "$OUT/record.err" &
        pid=$!
        for _ in $(seq 1 300); do grep -q "recording paused" "$OUT/record.err" && break; sleep 0.1; done
        sleep 1
        rm "$MNT/filler"
        wait $pid
        echo "record exit $?" >> "$OUT/record.err"
        "$CANDYBAR" query --journal "$MNT/journal" --format ndjson > "$OUT/all.ndjson" 2> "$OUT/query.err"
    "#;
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let status = Command::new("unshare")
        .args(["-rm", "bash", "-c", script])
        .env("MNT", &mnt)
        .env("OUT", dir.path())
        .env("REPLAY", &replay)
        .env("CANDYBAR", env!("CARGO_BIN_EXE_candybar"))
        .env("CANDYBAR_CONFIG", "/nonexistent/candybar-test-config.toml")
        .status()
        .expect("run unshare");
    assert!(status.success());
    let record_err = std::fs::read_to_string(dir.path().join("record.err")).unwrap();
    assert!(
        record_err.contains("recording paused: the disk is full"),
        "{record_err}"
    );
    assert!(record_err.contains("recording resumed"), "{record_err}");
    assert!(record_err.contains("record exit 0"), "{record_err}");
    let query_err = std::fs::read_to_string(dir.path().join("query.err")).unwrap();
    assert!(!query_err.contains("damaged"), "{query_err}");
    let all = std::fs::read_to_string(dir.path().join("all.ndjson")).unwrap();
    let ids: Vec<String> = all
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let expected: Vec<String> = (0..n).map(|i| format!("f-{i}")).collect();
    assert!(
        ids == expected,
        "{} of {n} events, in order: {}",
        ids.len(),
        ids == expected
    );
}
