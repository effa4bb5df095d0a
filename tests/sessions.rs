//! `candybar session …` and `candybar agent status`, the real binary with a real tmux (a private
//! server per test), a real broker and shell commands as agents: the lifecycle on the bus, a
//! broker that is down losing nothing, logs followed to the end, and bad input refused.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{bind_queue, path_str, run_env, shared_broker_url, take_messages, unique};

/// A sessions directory and a tmux server of its own (killed at the end).
struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Self {
        let tmux = std::process::Command::new("tmux").arg("-V").output();
        assert!(
            tmux.is_ok_and(|o| o.status.success()),
            "these tests need tmux: sudo apt-get install tmux"
        );
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("tmux.sock")
    }

    /// `candybar ARGS` with this lab's sessions; (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        self.run_env(args, &[])
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
        let state = self.dir.path().join("state");
        let socket = self.socket();
        let mut envs = vec![
            ("CANDYBAR_SESSIONS_DIR", path_str(&state)),
            ("CANDYBAR_TMUX_SOCKET", path_str(&socket)),
        ];
        envs.extend_from_slice(env);
        run_env(args, &envs)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .arg("-S")
            .arg(self.socket())
            .arg("kill-server")
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("events are JSON")
}

#[test]
fn a_session_is_announced_on_the_bus_when_it_starts_and_when_it_ends() {
    let lab = Lab::new();
    let url = shared_broker_url();
    let exchange = unique("t.sessions");
    let queue = bind_queue(&url, &exchange, "jelmore.#");
    let bus = ["--amqp", &url, "--exchange", &exchange];
    let dir = path_str(lab.path());

    let mut args = vec!["session", "start", "builder", "--dir", dir];
    args.extend_from_slice(&["--metadata", r#"{"issue":42}"#]);
    args.extend_from_slice(&bus);
    args.extend_from_slice(&["--", "sh", "-c", "echo compiling; sleep 60"]);
    let (code, out, err) = lab.run(&args);
    assert_eq!(code, Some(0), "{err}");
    let id = out.trim().to_owned();
    assert_eq!(id.len(), 36, "start prints the session id: {out}");
    assert!(
        err.contains("in tmux") && err.contains("attach -t '=cb-builder-"),
        "{err}"
    );

    let started = take_messages(&url, &queue, 1, Duration::from_secs(10));
    assert_eq!(started.len(), 1, "jelmore.session.started on the bus");
    let e = json_of(&started[0]);
    assert_eq!(e["event_type"], "jelmore.session.started");
    assert_eq!(e["payload"]["session_id"], id.as_str());
    assert_eq!(e["payload"]["provider"], "custom");
    assert_eq!(e["payload"]["metadata"]["issue"], 42);

    // The list shows it running, with its last line.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, out, err) = lab.run(&["session", "list"]);
        assert_eq!(code, Some(0), "{err}");
        if out.contains("compiling") {
            assert!(out.contains("builder") && out.contains("active"), "{out}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the list never showed its output:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, out, _) = lab.run(&["session", "list", "--format", "json"]);
    let list: Value = serde_json::from_str(&out).expect("list --format json");
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["state"], "active");

    // Paused and resumed by name: said on the terminal, in the list and on the bus.
    for (verb, state, kind) in [
        ("pause", "paused", "jelmore.session.paused"),
        ("resume", "", "jelmore.session.resumed"),
    ] {
        let mut args = vec!["session", verb, "builder"];
        args.extend_from_slice(&bus);
        let (code, out, err) = lab.run(&args);
        assert_eq!(code, Some(0), "{verb}: {err}");
        if !state.is_empty() {
            assert!(out.contains(&format!("state      {state}")), "{out}");
            let (_, list, _) = lab.run(&["session", "list"]);
            assert!(list.contains("paused"), "{list}");
            let (code, _, err) = lab.run(&args);
            assert_eq!(code, Some(2), "pausing twice is refused");
            assert!(err.contains("is already paused"), "{err}");
        }
        let said = take_messages(&url, &queue, 1, Duration::from_secs(10));
        assert_eq!(said.len(), 1, "{kind} on the bus");
        let e = json_of(&said[0]);
        assert_eq!(e["event_type"], kind);
        assert_eq!(e["payload"]["session_id"], id.as_str());
    }

    let mut end = vec!["session", "end", &id[..8], "--grace", "3"];
    end.extend_from_slice(&bus);
    let (code, out, err) = lab.run(&end);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("terminated: ended by the user (Ctrl-C"),
        "{out}"
    );
    let completed = take_messages(&url, &queue, 1, Duration::from_secs(10));
    assert_eq!(completed.len(), 1, "jelmore.session.completed on the bus");
    let e = json_of(&completed[0]);
    assert_eq!(e["event_type"], "jelmore.session.completed");
    assert_eq!(e["payload"]["session_id"], id.as_str());
    assert_eq!(e["payload"]["success"], true);
    assert_eq!(
        e["payload"]["summary"]
            .as_str()
            .map(|s| s.contains("compiling")),
        Some(true)
    );

    // Ended sessions leave the default list; --all keeps them.
    let (_, out, _) = lab.run(&["session", "list"]);
    assert!(!out.contains("builder"), "{out}");
    let (_, out, _) = lab.run(&["session", "list", "--all"]);
    assert!(
        out.contains("builder") && out.contains("terminated"),
        "{out}"
    );
    let (_, out, _) = lab.run(&["agent", "status"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("custom") && l.contains("builder")),
        "{out}"
    );
}

#[test]
fn with_the_broker_down_the_events_wait_and_are_sent_by_the_next_command() {
    let lab = Lab::new();
    let url = shared_broker_url();
    let exchange = unique("t.sessions.down");
    let queue = bind_queue(&url, &exchange, "jelmore.#");
    let dead = "amqp://guest:guest@127.0.0.1:1/%2f";
    let dir = path_str(lab.path());

    let (code, out, err) = lab.run(&[
        "session",
        "start",
        "offline",
        "--dir",
        dir,
        "--amqp",
        dead,
        "--exchange",
        &exchange,
        "--",
        "sh",
        "-c",
        "echo hi; exit 0",
    ]);
    assert_eq!(
        code,
        Some(0),
        "the session starts without the broker: {err}"
    );
    assert!(
        err.contains("1 session event(s) wait for the broker"),
        "the person is told: {err}"
    );
    let id = out.trim().to_owned();
    // The command exits meanwhile; its end is noticed while the broker is still down.
    std::thread::sleep(Duration::from_millis(500));
    let (code, _, err) = lab.run(&["session", "list", "--amqp", dead, "--exchange", &exchange]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("2 session event(s) wait"), "{err}");

    // The broker is back: the next command sends both, in order.
    let (code, _, err) = lab.run(&["session", "list", "--amqp", &url, "--exchange", &exchange]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("wait for the broker"), "{err}");
    let events: Vec<Value> = take_messages(&url, &queue, 2, Duration::from_secs(10))
        .iter()
        .map(|b| json_of(b))
        .collect();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["jelmore.session.started", "jelmore.session.completed"]
    );
    assert!(
        events
            .iter()
            .all(|e| e["payload"]["session_id"] == id.as_str())
    );
    assert_eq!(events[1]["payload"]["exit_code"], 0);
}

#[test]
fn logs_follow_a_session_to_its_end() {
    let lab = Lab::new();
    let dir = path_str(lab.path());
    let (code, _, err) = lab.run(&[
        "session",
        "start",
        "talker",
        "--dir",
        dir,
        "--",
        "sh",
        "-c",
        r"printf '\033[31mone\033[0m\n'; sleep 1; echo two; exit 4",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let t = Instant::now();
    let (code, out, err) = lab.run(&["session", "logs", "talker", "--follow"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "it followed: {:?}",
        t.elapsed()
    );
    assert_eq!(
        out.lines()
            .filter(|l| !l.trim().is_empty())
            .collect::<Vec<_>>(),
        ["one", "two"],
        "escape sequences removed:\n{out}"
    );
    let (_, out, _) = lab.run(&["session", "logs", "talker", "--raw"]);
    assert!(out.contains("\u{1b}[31mone"), "--raw keeps them: {out:?}");
    let (_, out, _) = lab.run(&["session", "status", "talker"]);
    assert!(
        out.contains("state      failed") && out.contains("ended      exited with 4"),
        "{out}"
    );
}

#[test]
fn bad_input_and_missing_tools_get_a_clear_message() {
    let lab = Lab::new();
    let dir = path_str(lab.path());
    let refused = |args: &[&str], env: &[(&str, &str)], needle: &str| {
        let (code, _, err) = lab.run_env(args, env);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: wanted {needle:?} in:\n{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    };
    // No tmux on PATH (the command itself is given by its path), nor zellij to fall back on.
    refused(
        &[
            "session", "start", "x", "--dir", dir, "--", "/bin/sh", "-c", "true",
        ],
        &[
            ("PATH", "/nonexistent"),
            ("CANDYBAR_ZELLIJ", "/nonexistent/zellij"),
            ("CANDYBAR_MULTIPLEXER", ""),
        ],
        "tmux is not installed",
    );
    refused(
        &[
            "session",
            "start",
            "x",
            "--dir",
            dir,
            "--metadata",
            "{",
            "--",
            "sh",
        ],
        &[],
        "--metadata is not JSON",
    );
    refused(
        &["session", "start", "x", "--dir", "/no/such/dir", "--", "sh"],
        &[],
        "no directory /no/such/dir",
    );
    refused(
        &["session", "start", "x", "--dir", dir, "--provider", "codex"],
        &[("PATH", "/usr/bin:/bin")],
        "install the codex CLI, or give `-- COMMAND`",
    );
    refused(&["session", "logs", "nobody"], &[], "no session \"nobody\"");
    refused(&["session", "end", "nobody"], &[], "no session \"nobody\"");
    refused(
        &["session", "send", "nobody", "hi"],
        &[],
        "no session \"nobody\"",
    );

    // Attaching needs a terminal; a script is told what to use instead.
    let (code, _, err) = lab.run(&[
        "session", "start", "quiet", "--dir", dir, "--", "sleep", "60",
    ]);
    assert_eq!(code, Some(0), "{err}");
    refused(
        &["session", "attach", "quiet"],
        &[],
        "attach needs a terminal",
    );
    refused(
        &["session", "end", "quiet", "--grace", "1e99"],
        &[],
        "--grace = 1e99 is out of range",
    );
}

/// A stand-in `claude` CLI (a real shell script): says what it was asked, then repeats each
/// line it is given until it reads "bye".
const CLAUDE: &str = r#"#!/bin/sh
echo "claude got: $*"
while read line; do
  echo "claude heard: $line"
  [ "$line" = bye ] && exit 0
done
"#;

fn request(
    event_id: &str,
    payload: &Value,
    correlation: &str,
) -> (String, Vec<u8>, Option<String>) {
    let body = serde_json::json!({
        "event_id": event_id,
        "event_type": "agent.session.requested",
        "correlation_ids": [correlation],
        "payload": payload,
    });
    (
        "agent.session.requested".to_owned(),
        body.to_string().into_bytes(),
        None,
    )
}

#[test]
#[allow(clippy::too_many_lines)] // one story, read top to bottom
fn serve_starts_and_continues_what_the_bus_asks_for_and_refuses_the_rest() {
    let lab = Lab::new();
    let url = shared_broker_url();
    let exchange = unique("t.sessions.serve");
    let events = bind_queue(&url, &exchange, "jelmore.#");
    let requests_queue = unique("candybar.test.requests");
    let bin = lab.path().join("bin");
    let worktree = lab.path().join("wt");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&worktree).unwrap();
    std::fs::write(bin.join("claude"), CLAUDE).unwrap();
    std::fs::set_permissions(
        bin.join("claude"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let state = lab.path().join("state");
    let socket = lab.socket();
    let env = [
        ("CANDYBAR_SESSIONS_DIR", path_str(&state)),
        ("CANDYBAR_TMUX_SOCKET", path_str(&socket)),
        ("PATH", path.as_str()),
    ];
    let serve = support::Candybar::spawn_env(
        &[
            "session",
            "serve",
            "--amqp",
            &url,
            "--exchange",
            &exchange,
            "--requests-queue",
            &requests_queue,
            "--dir",
            path_str(&worktree),
            "--root",
            path_str(lab.path()),
            "--max-running",
            "1",
        ],
        &env,
    );
    serve.wait_stderr("connected", 1, Duration::from_secs(20));

    let fix = serde_json::json!({"provider": "claude", "prompt": "fix the build", "session_id": "s-1",
        "metadata": {"name": "fixer", "worktree_path": "wt"}});
    support::lapin_publish(&url, &exchange, &[request("r-1", &fix, "c-1")]);
    serve.wait_stderr("request s-1: started fixer", 1, Duration::from_secs(20));
    let pwned = lab.path().join("pwned");
    let more = serde_json::json!({"prompt": "and the docs", "session_id": "s-1", "continuation_mode": "continue"});
    support::lapin_publish(
        &url,
        &exchange,
        &[
            request("r-2", &more, "c-2"),
            // Refused, answered on the bus with their correlation ids; none needs a slot.
            request(
                "r-3",
                &serde_json::json!({"provider": "custom",
                "metadata": {"command": ["sh", "-c", format!("echo pwned > {}", pwned.display())]}}),
                "c-3",
            ),
            request(
                "r-4",
                &serde_json::json!({"metadata": {"worktree_path": "/etc"}}),
                "c-4",
            ),
            (
                "agent.session.requested".into(),
                b"{not json".to_vec(),
                None,
            ),
            // A redelivery of the first: skipped.
            request("r-1", &fix, "c-1"),
            // A second session while one runs (--max-running 1): it waits.
            request(
                "r-5",
                &serde_json::json!({"prompt": "write the changelog", "session_id": "s-2"}),
                "c-5",
            ),
        ],
    );
    serve.wait_stderr(
        "1 request(s) wait: 1 sessions run",
        1,
        Duration::from_secs(20),
    );
    let err = serve.stderr();
    assert!(
        err.contains("request s-1: the prompt went to fixer"),
        "{err}"
    );
    assert!(
        err.contains("request r-1 was handled before; skipped")
            || err.contains("request s-1 was handled before"),
        "{err}"
    );
    assert!(
        err.contains("start `session serve --allow-custom`"),
        "{err}"
    );
    assert!(
        err.contains("is outside") || err.contains("no worktree"),
        "{err}"
    );
    assert!(
        err.contains("a request was refused: the request is not JSON"),
        "{err}"
    );
    assert!(!pwned.exists(), "a request ran its own command");

    // The first session ends (its agent reads "bye"); the waiting one starts.
    let (code, _, e) = lab.run_env(&["session", "send", "s-1", "bye"], &env);
    assert_eq!(code, Some(0), "{e}");
    serve.wait_stderr("request s-2: started", 1, Duration::from_secs(20));

    let log = {
        let (_, out, _) = lab.run_env(&["session", "logs", "s-1"], &env);
        out
    };
    assert!(
        log.contains("claude got: fix the build") && log.contains("claude heard: and the docs"),
        "the stand-in CLI got the prompt, then the continuation:\n{log}"
    );

    serve.signal("TERM");
    let (code, err) = serve.wait(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{err}");

    let got: Vec<Value> = take_messages(&url, &events, 9, Duration::from_secs(10))
        .iter()
        .map(|b| json_of(b))
        .collect();
    let of = |t: &str| -> Vec<&Value> { got.iter().filter(|e| e["event_type"] == t).collect() };
    let started = of("jelmore.session.started");
    assert_eq!(started.len(), 2, "{got:?}");
    assert_eq!(started[0]["payload"]["session_id"], "s-1");
    assert_eq!(started[0]["correlation_ids"][0], "c-1");
    assert_eq!(
        started[0]["payload"]["worktree_path"],
        worktree.canonicalize().unwrap().to_str().unwrap()
    );
    assert_eq!(started[1]["payload"]["session_id"], "s-2");
    assert_eq!(
        of("jelmore.command.executed").len(),
        2,
        "continue, then bye: {got:?}"
    );
    let failed = of("jelmore.command.failed");
    let corr: Vec<&str> = failed
        .iter()
        .filter_map(|e| e["correlation_ids"][0].as_str())
        .collect();
    assert_eq!(corr, ["c-3", "c-4"], "{failed:?}");
    assert_eq!(failed.len(), 3, "and the unreadable one: {failed:?}");
    let completed = of("jelmore.session.completed");
    assert_eq!(completed.len(), 1, "{got:?}");
    assert_eq!(completed[0]["payload"]["prompt_count"], 3);
}

#[test]
#[allow(clippy::too_many_lines)] // one story, read top to bottom
fn a_workflow_runs_its_steps_by_their_needs_and_publishes_its_progress() {
    let lab = Lab::new();
    let url = shared_broker_url();
    let exchange = unique("t.workflows");
    let events = bind_queue(&url, &exchange, "workflow.#");
    let flows = lab.path().join("workflows");
    std::fs::create_dir_all(&flows).unwrap();
    let never = lab.path().join("never-ran");
    std::fs::write(
        flows.join("release.toml"),
        format!(
            r#"description = "check, fix what fails, announce"
on_failure = "continue"

[[step]]
id = "announce"
needs = ["fix"]
when = "always"
publish = {{ routing_key = "workflow.release.tested", payload = {{ ok = true }} }}

[[step]]
id = "check"
run = ["sh", "-c", "echo checking; exit 3"]

[[step]]
id = "fix"
needs = ["check"]
when = "failed"
session = {{ name = "fixer", command = ["sh", "-c", "echo fixed; sleep 1"] }}

[[step]]
id = "package"
needs = ["check"]
run = ["touch", "{}"]
"#,
            never.display()
        ),
    )
    .unwrap();
    std::fs::write(flows.join("broken.toml"), "[[step]\nid = ").unwrap();
    let dir = path_str(lab.path());
    let at = ["--workflows", path_str(&flows)];

    let (code, out, _) = lab.run(&["workflow", "list", at[0], at[1]]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("release: check → fix → announce → package (check, fix what fails, announce)"),
        "{out}"
    );
    assert!(out.contains("broken: does not read:"), "{out}");

    let t = Instant::now();
    let (code, out, err) = lab.run(&[
        "workflow",
        "run",
        "release",
        at[0],
        at[1],
        "--dir",
        dir,
        "--amqp",
        &url,
        "--exchange",
        &exchange,
    ]);
    assert_eq!(code, Some(1), "a step failed:\n{out}\n{err}");
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "it waited for the session"
    );
    for line in [
        "[1/4] check: running `sh -c echo checking; exit 3`",
        "[1/4] check: ✗ failed: `sh -c echo checking; exit 3` exited with 3",
        "[2/4] fix: starting the session fixer",
        "[2/4] fix: ✓ done",
        "[3/4] announce: ✓ done",
        "[4/4] package: skipped (a step it needs did not succeed)",
        "workflow release: 2 done, 1 failed, 1 skipped",
    ] {
        assert!(out.contains(line), "{line:?} in:\n{out}");
    }
    assert!(!never.exists(), "a skipped step ran");

    let types: Vec<String> = take_messages(&url, &events, 9, Duration::from_secs(10))
        .iter()
        .map(|b| json_of(b)["event_type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "workflow.run.started",
            "workflow.step.started",
            "workflow.step.failed",
            "workflow.step.started",
            "workflow.step.completed",
            "workflow.step.started",
            "workflow.release.tested",
            "workflow.step.completed",
            "workflow.run.failed",
        ]
    );

    let (code, _, err) = lab.run(&["workflow", "run", "broken", at[0], at[1]]);
    assert_eq!(code, Some(2));
    assert!(err.contains("broken.toml: TOML parse error"), "{err}");
    let (code, _, err) = lab.run(&["workflow", "run", "nope", at[0], at[1]]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("no workflow \"nope\"") && err.contains("(there are: broken, release)"),
        "{err}"
    );
}
