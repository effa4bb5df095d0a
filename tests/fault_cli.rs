//! Hostile input to the command line and the config, each from the hostile test run that found
//! it: the real binary gets it, and must answer with an error a person can act on — never a
//! panic (exit 101), never a hang, never memory without bound.

mod support;

use std::time::{Duration, Instant};

use support::{path_str, run, run_env};

/// Runs candybar and checks it refused in words: exit status 2, `needle` in its error, no panic.
fn refused(args: &[&str], envs: &[(&str, &str)], needle: &str) -> String {
    let started = Instant::now();
    let (code, out, err) = run_env(args, envs);
    // Messages quote the arguments cut short: some are huge on purpose.
    let shown: String = format!("{args:?}").chars().take(120).collect();
    let cut = |s: &str| s.chars().take(2000).collect::<String>();
    assert!(
        !err.contains("panicked"),
        "{shown} panicked:\n{}",
        cut(&err)
    );
    assert_eq!(
        code,
        Some(2),
        "{shown}: exit {code:?}\n{}\n{}",
        cut(&out),
        cut(&err)
    );
    assert!(
        err.contains(needle),
        "{shown}: no '{needle}' in:\n{}",
        cut(&err)
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{shown} took {:?}",
        started.elapsed()
    );
    err
}

fn config(dir: &tempfile::TempDir, text: &str) -> String {
    let p = dir.path().join("config.toml");
    std::fs::write(&p, text).expect("write the config");
    path_str(&p).to_owned()
}

#[test]
fn absurd_durations_and_rates_are_refused_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("c.sock");
    let socket = path_str(&socket);
    // The window checks its settings before it opens (no display needed to see the refusal).
    let cfg = config(&dir, "[health]\npoll_secs = 1e20\n");
    refused(
        &["--config", &cfg, "--no-tray"],
        &[("CANDYBAR_SOCKET", socket)],
        "[health] poll_secs = 1e20 is out of range",
    );
    let cfg = config(&dir, "[store]\nbudget_mb = 17592186044416\n");
    refused(
        &["--config", &cfg, "--no-tray"],
        &[("CANDYBAR_SOCKET", socket)],
        "[store] budget_mb = 17592186044416 is out of range",
    );
    refused(
        &["dictate", "--mic", "--seconds", "1e20"],
        &[],
        "--seconds = 1e20 is out of range",
    );
    refused(
        &[
            "publish",
            "--amqp",
            "amqp://127.0.0.1:1/%2f",
            "--rate",
            "1e-300",
        ],
        &[],
        "--rate = 1e-300 is out of range",
    );
    refused(
        &["tail", "--demo", "--demo-rate", "NaN", "-n", "1"],
        &[],
        "--demo-rate = NaN is out of range",
    );
    refused(
        &[
            "tail",
            "--replay",
            "/dev/null",
            "--replay-speed",
            "0",
            "-n",
            "1",
        ],
        &[],
        "--replay-speed = 0 is out of range",
    );
    // A moment the window cannot travel to, or no journal to travel in.
    refused(
        &["--no-tray", "--at", "someday"],
        &[("CANDYBAR_SOCKET", socket)],
        "--at \"someday\" is neither a duration (2h, 30m, 7d) nor a moment",
    );
    refused(
        &["--demo", "--no-tray", "--at", "2h"],
        &[("CANDYBAR_SOCKET", socket)],
        "--at shows a moment from the journal, and this window has none",
    );
    let cfg = config(&dir, "[demo]\nrate = -5\n");
    refused(
        &["tail", "--config", &cfg, "-n", "1"],
        &[],
        "[demo] rate = -5 is out of range",
    );
}

#[test]
fn unbounded_inputs_are_cut_and_said() {
    // A registry that never ends is refused at its cap, quickly and without the memory.
    refused(
        &["registry", "check", "/dev/zero"],
        &[],
        "larger than 16 MiB",
    );
    // A replay line that never ends: the replay stops there and says why.
    let (code, _, err) = run(&["tail", "--replay", "/dev/zero", "--replay-fast"]);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("over the 64 MiB a replay line may have"),
        "{err}"
    );
}

#[test]
fn a_filter_error_is_short_and_a_leading_dash_is_an_expression() {
    // 120 KB with its parenthesis never closed.
    let huge = format!("domain:llm AND ({}", "x ".repeat(60_000));
    let err = refused(
        &["tail", "--demo", "--filter", &huge, "-n", "1"],
        &[],
        "bad filter",
    );
    assert!(
        err.len() < 2_000,
        "a 120 KB filter was echoed back at {} bytes",
        err.len()
    );
    // `-errors` is an expression (NOT errors), not an unknown flag.
    let (code, out, err) = run(&[
        "tail",
        "--demo",
        "--demo-rate",
        "2000",
        "--filter",
        "-errors",
        "-n",
        "3",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
}

#[test]
fn an_error_is_said_once_not_twice() {
    let dir = tempfile::tempdir().unwrap();
    // The config path is a folder.
    let err = refused(
        &["tail", "--config", path_str(dir.path()), "-n", "1"],
        &[],
        "cannot read",
    );
    assert_eq!(
        err.matches("Is a directory").count(),
        1,
        "the reason is repeated:\n{err}"
    );
}
