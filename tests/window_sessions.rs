//! The Sessions view, driven like a person would (`egui_kittest`), over a real tmux (a private
//! server) and a real shell script as the agent: start one from the form, see it ask, answer it
//! from its log pane, end it, find it among the ended ones. A missing tmux fails the test with
//! what to install.

mod support;

use support::kit::wait_for_label;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;

use candybar::app::sessions::SessionsInit;
use candybar::app::{AppInit, CandybarApp};
use candybar_bus::live::Live;
use candybar_core::store::StoreConfig;
use candybar_sessions::{MuxSocket, Sessions, SqliteStore, Tmux};
use candybar_ui::View;

/// Asks, repeats the answer, then waits to be ended.
const AGENT: &str = r#"#!/bin/sh
echo "agent starting"
printf 'Proceed with the refactor? (y/n) '
read answer
echo "you said: $answer"
sleep 600
"#;

struct Lab {
    dir: tempfile::TempDir,
    _rt: tokio::runtime::Runtime,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .arg("-S")
            .arg(self.dir.path().join("tmux.sock"))
            .arg("kill-server")
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn app() -> (Harness<'static, CandybarApp>, Lab) {
    app_with(Live::new(StoreConfig::default()), None)
}

fn app_with(live: Live, terminal: Option<String>) -> (Harness<'static, CandybarApp>, Lab) {
    assert!(
        Tmux::version().is_ok(),
        "this test needs tmux: sudo apt-get install tmux"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let agent = dir.path().join("agent.sh");
    std::fs::write(&agent, AGENT).expect("write the agent");
    std::fs::set_permissions(&agent, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("make the agent executable");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let state: PathBuf = dir.path().join("state");
    let socket = dir.path().join("tmux.sock");
    let mut init = AppInit::new(live);
    init.view = Some(View::Sessions);
    init.sessions = Some(SessionsInit {
        open: Box::new(move || {
            let store = SqliteStore::open(&state.join("sessions.sqlite3"))?;
            Ok(Sessions::new(
                store,
                Tmux::new(MuxSocket::Path(socket)),
                state.join("logs"),
                Duration::from_mins(1),
            ))
        }),
        broker: None,
        rt: rt.handle().clone(),
        default_dir: dir.path().to_owned(),
        terminal,
    });
    let mut harness = Harness::builder()
        .with_size([1280.0, 800.0])
        .build_eframe(|cc| CandybarApp::new(cc, init));
    harness.run_steps(3);
    (harness, Lab { dir, _rt: rt })
}

fn type_into(harness: &mut Harness<'_, CandybarApp>, nth_field: usize, text: &str) {
    harness
        .get_all_by_role(Role::TextInput)
        .nth(nth_field)
        .expect("the field")
        .click();
    harness.run_steps(2);
    harness
        .get_all_by_role(Role::TextInput)
        .nth(nth_field)
        .expect("the field")
        .type_text(text);
    harness.run_steps(2);
}

#[test]
fn a_session_is_started_answered_and_ended_from_the_window() {
    let (mut harness, lab) = app();
    wait_for_label(&mut harness, "No sessions.");

    // The form: a name and a command (the agent script), then Start.
    let before = harness.get_all_by_role(Role::TextInput).count();
    harness.get_by_label("+ New session").click();
    harness.run_steps(2);
    // The form's one-line fields come after the others (the filter), in order: name,
    // directory, command (the prompt is a multi-line field).
    let after = harness.get_all_by_role(Role::TextInput).count();
    assert_eq!(after, before + 3, "the form opened");
    type_into(&mut harness, before, "refactor");
    let agent = lab.dir.path().join("agent.sh");
    type_into(&mut harness, before + 2, path_str(&agent));
    harness.get_by_label("▶ Start").click();
    harness.run_steps(2);
    wait_for_label(&mut harness, "started refactor");

    // It asks: the table says so, and the log pane (the new session is selected) shows it.
    wait_for_label(&mut harness, "waiting for input");
    wait_for_label(&mut harness, "Proceed with the refactor? (y/n)");
    assert!(
        harness
            .query_all_by_label_contains("agent starting")
            .next()
            .is_some()
    );

    // Answer from the window.
    let fields = harness.get_all_by_role(Role::TextInput).count();
    type_into(&mut harness, fields - 1, "y");
    harness.get_by_label("Send").click();
    harness.run_steps(2);
    wait_for_label(&mut harness, "you said: y");

    // Pause it, and resume it.
    harness.get_by_label("⏸ Pause").click();
    harness.run_steps(2);
    wait_for_label(&mut harness, "refactor is paused");
    wait_for_label(&mut harness, "▶ Resume");
    assert!(harness.query_all_by_label("paused").next().is_some());
    harness.get_by_label("▶ Resume").click();
    harness.run_steps(2);
    wait_for_label(&mut harness, "⏸ Pause");

    // End it: Ctrl-C ends the script; it leaves the running list and shows among the ended.
    harness.get_by_label("⏹ End").click();
    harness.run_steps(2);
    wait_for_label(&mut harness, "ended by the user (Ctrl-C");
    wait_for_label(&mut harness, "No sessions.");
    harness.get_by_label("Ended too").click();
    harness.run_steps(2);
    wait_for_label(&mut harness, "terminated");
    assert!(harness.query_all_by_label("refactor").next().is_some());
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// A lifecycle event another host published.
fn lifecycle(
    kind: &str,
    payload: &serde_json::Value,
    at_us: i64,
) -> candybar_core::event::RawMessage {
    let body = serde_json::json!({
        "event_id": format!("e-{at_us}"),
        "event_type": kind,
        "source": {"host": "build-02", "type": "agent_session", "app": "candybar"},
        "payload": payload,
    });
    candybar_core::event::RawMessage {
        received_us: at_us,
        routing_key: kind.to_owned(),
        props: None,
        body: body.to_string().into_bytes(),
        precut: None,
    }
}

#[test]
fn sessions_other_hosts_announce_on_the_bus_are_listed_too() {
    let now = candybar_core::time::now_us();
    let mut live = Live::new(StoreConfig::default());
    for (kind, payload, at) in [
        (
            "jelmore.session.started",
            serde_json::json!({"session_id": "s-remote-1", "provider": "claude", "agent_id": "nightly",
                "worktree_path": "/srv/app", "host": "build-02", "command": ["claude", "go"]}),
            now - 60_000_000,
        ),
        (
            "jelmore.session.started",
            serde_json::json!({"session_id": "s-remote-2", "provider": "codex", "agent_id": "lint-fixer",
                "worktree_path": "/srv/lib", "host": "build-02"}),
            now - 50_000_000,
        ),
        (
            "jelmore.session.completed",
            serde_json::json!({"session_id": "s-remote-2", "success": false, "duration_seconds": 9.0,
                "summary": "cargo clippy\nerror: 3 warnings", "reason": "exited with 1"}),
            now - 40_000_000,
        ),
        (
            "jelmore.session.paused",
            serde_json::json!({"session_id": "s-remote-1", "paused_at": "2026-12-06T10:00:00Z"}),
            now - 30_000_000,
        ),
    ] {
        live.store.insert(&lifecycle(kind, &payload, at));
    }
    let (mut harness, _lab) = app_with(live, None);
    wait_for_label(&mut harness, "nightly");
    assert!(
        harness.query_all_by_label("lint-fixer").next().is_none(),
        "an ended one only with Ended too"
    );
    harness
        .get_all_by_label("nightly")
        .next()
        .expect("the row")
        .click();
    harness.run_steps(3);
    wait_for_label(&mut harness, "runs on build-02: attach and end it there");
    // Paused over there: the row says so.
    assert!(harness.query_all_by_label("paused").next().is_some());
    harness.get_by_label("Ended too").click();
    harness.run_steps(3);
    wait_for_label(&mut harness, "lint-fixer");
    wait_for_label(&mut harness, "error: 3 warnings");
}

/// tmux's clients of the lab's server: a terminal attached to a session is one.
fn clients(lab: &Lab) -> String {
    let out = std::process::Command::new("tmux")
        .arg("-S")
        .arg(lab.dir.path().join("tmux.sock"))
        .args(["list-clients", "-F", "#{client_session}"])
        .output()
        .expect("run tmux");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn attach_opens_a_real_terminal_on_the_session() {
    let x = support::Xvfb::start();
    assert!(
        std::process::Command::new("xterm")
            .arg("-version")
            .output()
            .is_ok(),
        "this test needs a terminal emulator: sudo apt-get install xterm"
    );
    // `[sessions] terminal`: xterm on the test's X server.
    let scripts = tempfile::tempdir().expect("temp dir");
    let term = scripts.path().join("term.sh");
    std::fs::write(
        &term,
        format!("#!/bin/sh\nexec env DISPLAY={} xterm \"$@\"\n", x.display),
    )
    .expect("write the terminal script");
    std::fs::set_permissions(&term, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("make it executable");
    let (mut harness, lab) = app_with(
        Live::new(StoreConfig::default()),
        Some(term.to_string_lossy().into_owned()),
    );
    wait_for_label(&mut harness, "No sessions.");
    let before = harness.get_all_by_role(Role::TextInput).count();
    harness.get_by_label("+ New session").click();
    harness.run_steps(2);
    type_into(&mut harness, before, "attachable");
    type_into(&mut harness, before + 2, "sleep 600");
    harness.get_by_label("▶ Start").click();
    harness.run_steps(2);
    wait_for_label(&mut harness, "started attachable");
    wait_for_label(&mut harness, "Attach");
    assert!(clients(&lab).trim().is_empty(), "no terminal yet");
    harness.get_by_label("Attach").click();
    harness.run_steps(2);
    wait_for_label(&mut harness, "on the session");
    let start = Instant::now();
    while !clients(&lab).contains("cb-attachable-") {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no terminal attached to the session"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Ending the session closes the terminal's client with it.
    harness.get_by_label("Force end").click();
    harness.run_steps(2);
    wait_for_label(&mut harness, "ended by the user (--force)");
}
