//! The `candybar` binary without a broker: the demo feed, replay, filters, help.

mod support;

use serde_json::Value;
use support::{path_str, run};

fn ndjson(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON line"))
        .collect()
}

#[test]
fn with_no_broker_tail_shows_the_demo_feed_and_says_so() {
    let (code, out, err) = run(&[
        "tail",
        "-n",
        "30",
        "--format",
        "ndjson",
        "--demo-rate",
        "2000",
        "--seed",
        "3",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("demo feed") && err.contains("no broker configured"),
        "{err}"
    );
    let events = ndjson(&out);
    assert_eq!(events.len(), 30);
    assert!(
        events
            .iter()
            .all(|e| e["type"].is_string() && e["domain"].is_string())
    );
    assert!(events.iter().any(|e| e["agent"].is_string()));
}

#[test]
fn the_filter_narrows_and_errors_point_at_the_column() {
    let (code, out, err) = run(&[
        "tail",
        "--demo",
        "--demo-rate",
        "5000",
        "-n",
        "15",
        "--format",
        "ndjson",
        "-f",
        "agent.# AND NOT status:started",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let events = ndjson(&out);
    assert_eq!(events.len(), 15);
    for e in &events {
        assert_eq!(e["domain"], "agent", "{e}");
        assert_ne!(e["status"], "started");
    }
    let (code, _, err) = run(&[
        "tail",
        "--demo",
        "-n",
        "1",
        "-f",
        "domain:llm AND (errors OR",
    ]);
    assert_eq!(code, Some(2));
    // The expression ends after "OR " (25 characters): the term is missing at column 26.
    assert!(err.contains("column 26: expected a term after OR"), "{err}");
    let caret_line = err.lines().last().unwrap();
    assert_eq!(
        caret_line.find('^'),
        Some(2 + 25),
        "caret under the column: {err}"
    );
}

#[test]
fn export_then_replay_gives_back_the_same_events() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let (code, out, err) = run(&[
        "tail",
        "--demo",
        "--demo-rate",
        "5000",
        "-n",
        "200",
        "--format",
        "ndjson",
        "--seed",
        "11",
    ]);
    assert_eq!(code, Some(0), "{err}");
    std::fs::write(&file, &out).unwrap();
    let (code, replayed, err) = run(&[
        "tail",
        "--replay",
        path_str(&file),
        "--replay-fast",
        "--format",
        "ndjson",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (a, b) = (ndjson(&out), ndjson(&replayed));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        for key in [
            "id",
            "type",
            "routing_key",
            "received_at",
            "published_at",
            "agent",
            "body",
        ] {
            assert_eq!(x[key], y[key], "{key}");
        }
    }
    // Replay at 1000x the original pace still keeps the order and finishes.
    let (code, paced, _) = run(&[
        "tail",
        "--replay",
        path_str(&file),
        "--replay-speed",
        "1000",
        "--format",
        "ndjson",
        "-n",
        "50",
    ]);
    assert_eq!(code, Some(0));
    assert_eq!(ndjson(&paced).len(), 50);
}

#[test]
fn replay_reads_bare_envelopes_and_skips_junk_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bare.ndjson");
    std::fs::write(
        &file,
        "{\"event_type\":\"llm.response\",\"event_id\":\"a\",\"payload\":{}}\n\nnot json\n{\"routing_key\":\"x\",\"body_base64\":\"%%%\"}\n{\"type\":\"bloodbank.v1.repo.task.created\",\"id\":\"b\",\"specversion\":\"1.0\",\"data\":{}}\n",
    )
    .unwrap();
    let (code, out, err) = run(&[
        "tail",
        "--replay",
        path_str(&file),
        "--replay-fast",
        "--format",
        "ndjson",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let events = ndjson(&out);
    let ids: Vec<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids, vec!["a", "b"]);
    assert_eq!(
        events.iter().filter(|e| e["body_kind"] == "text").count(),
        1,
        "the junk line is kept as a text event"
    );
    let (code, _, err) = run(&["tail", "--replay", "/nonexistent/file.ndjson"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("cannot open /nonexistent/file.ndjson"),
        "{err}"
    );
}

#[test]
fn a_broken_config_file_is_reported_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, "[amqp]\nurl = amqp://me:s3cr3t@host\n").unwrap();
    let (code, _, err) = run(&["tail", "--config", path_str(&cfg), "-n", "1"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("line 2"), "{err}");
    assert!(!err.contains("s3cr3t"), "{err}");
}

#[test]
fn help_is_there_for_every_command() {
    for args in [
        &["--help"][..],
        &["tail", "--help"],
        &["publish", "--help"],
        &["bench", "--help"],
        &["bench", "store", "--help"],
    ] {
        let (code, out, _) = run(args);
        assert_eq!(code, Some(0), "{args:?}");
        assert!(out.contains("Usage"), "{args:?}: {out}");
    }
}

#[test]
fn registry_check_describes_a_registry_and_points_at_broken_yaml() {
    let example = support::repo().join("assets/registry.example.yaml");
    let (code, out, err) = support::run(&["registry", "check", support::path_str(&example)]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("exchange: bloodbank.events.v1"), "{out}");
    assert!(
        out.contains("layers (") && out.contains("subscriptions ("),
        "{out}"
    );
    assert!(out.trim_end().ends_with("valid"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "services:\n  a: [unclosed\n").unwrap();
    let (code, _, err) = support::run(&["registry", "check", support::path_str(&broken)]);
    assert_eq!(code, Some(2));
    assert!(err.contains("broken.yaml:2:"), "line and column: {err}");

    let dangling = dir.path().join("dangling.yaml");
    std::fs::write(
        &dangling,
        "services:\n  a: {name: A}\ntopology:\n  ingest: [a, ghost]\n",
    )
    .unwrap();
    let (code, out, _) = support::run(&["registry", "check", support::path_str(&dangling)]);
    assert_eq!(code, Some(1));
    assert!(out.contains("unknown service \"ghost\""), "{out}");
}

#[test]
fn autostart_puts_a_valid_entry_that_starts_in_the_tray_and_takes_it_away() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config");
    let env = [
        ("HOME", path_str(dir.path())),
        ("XDG_CONFIG_HOME", path_str(&config)),
    ];
    let (code, out, err) = support::run_env(&["autostart", "on"], &env);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("autostart on"), "{out}");
    let entry = config.join("autostart/candybar.desktop");
    let text = std::fs::read_to_string(&entry).expect("the autostart entry");
    let exec = format!("Exec={} --minimized", env!("CARGO_BIN_EXE_candybar"));
    assert!(text.lines().any(|l| l == exec), "{text}");
    let valid = std::process::Command::new("desktop-file-validate")
        .arg(&entry)
        .output()
        .expect("desktop-file-validate (desktop-file-utils; .ci/install-deps)");
    assert!(
        valid.status.success() && valid.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&valid.stdout)
    );
    let (_, out, _) = support::run_env(&["autostart", "status"], &env);
    assert!(out.starts_with("autostart on"), "{out}");
    let (code, out, _) = support::run_env(&["autostart", "off"], &env);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("autostart off") && !entry.exists(), "{out}");
}
