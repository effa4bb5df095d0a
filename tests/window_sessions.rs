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
use candybar_sessions::{Mux, MuxSocket, Sessions, SqliteStore, Tmux, Zellij};
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
        if let Some(zellij) = std::env::var_os("CANDYBAR_TEST_ZELLIJ") {
            let _ = std::process::Command::new(zellij)
                .env("ZELLIJ_SOCKET_DIR", self.dir.path().join("zs"))
                .args(["kill-all-sessions", "--yes"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// The zellij the tests run (`CANDYBAR_TEST_ZELLIJ`, else `zellij` on `PATH`), sessions in
/// `dir/zs`, the relay of the binary under test.
fn zellij_in(dir: &Path) -> Zellij {
    let program =
        std::env::var_os("CANDYBAR_TEST_ZELLIJ").map_or_else(|| "zellij".into(), PathBuf::from);
    assert!(
        std::process::Command::new(&program)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "this test needs zellij: `cargo install --locked zellij`, or .ci/zellij and \
         CANDYBAR_TEST_ZELLIJ=the path it prints"
    );
    let sockets = dir.join("zs");
    std::fs::create_dir_all(&sockets).expect("zellij's socket dir");
    Zellij {
        program,
        socket_dir: Some(sockets),
        relay: env!("CARGO_BIN_EXE_candybar").into(),
    }
}

fn app() -> (Harness<'static, CandybarApp>, Lab) {
    app_with(Live::new(StoreConfig::default()), None)
}

fn app_with(live: Live, terminal: Option<String>) -> (Harness<'static, CandybarApp>, Lab) {
    app_with_mux(live, terminal, false)
}

/// The app over a lab's tmux server, and its zellij too when `zellij`.
fn app_with_mux(
    live: Live,
    terminal: Option<String>,
    zellij: bool,
) -> (Harness<'static, CandybarApp>, Lab) {
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
    let zellij = if zellij {
        zellij_in(dir.path())
    } else {
        Zellij::default()
    };
    let mut init = AppInit::new(live);
    init.view = Some(View::Sessions);
    init.sessions = Some(SessionsInit {
        open: Box::new(move || {
            let store = SqliteStore::open(&state.join("sessions.sqlite3"))?;
            Ok(Sessions::new(
                store,
                Mux {
                    tmux: Tmux::new(MuxSocket::Path(socket)),
                    zellij,
                    prefer: None,
                },
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

/// `[sessions] terminal`: a script running xterm on the test's X server (kept in the returned
/// directory).
fn xterm_on(x: &support::Xvfb) -> (tempfile::TempDir, String) {
    support::require_xterm();
    let scripts = tempfile::tempdir().expect("temp dir");
    let term = scripts.path().join("term.sh");
    std::fs::write(
        &term,
        format!("#!/bin/sh\nexec env DISPLAY={} xterm \"$@\"\n", x.display),
    )
    .expect("write the terminal script");
    std::fs::set_permissions(&term, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("make it executable");
    let term = term.to_string_lossy().into_owned();
    (scripts, term)
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
    let (_scripts, term) = xterm_on(&x);
    let (mut harness, lab) = app_with(Live::new(StoreConfig::default()), Some(term));
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

#[test]
fn a_session_started_in_zellij_from_the_form_is_answered_and_attached_to() {
    let x = support::Xvfb::start();
    let (_scripts, term) = xterm_on(&x);
    let (mut harness, lab) = app_with_mux(Live::new(StoreConfig::default()), Some(term), true);
    wait_for_label(&mut harness, "No sessions.");
    let before = harness.get_all_by_role(Role::TextInput).count();
    harness.get_by_label("+ New session").click();
    harness.run_steps(2);
    type_into(&mut harness, before, "zellij-refactor");
    let agent = lab.dir.path().join("agent.sh");
    type_into(&mut harness, before + 2, path_str(&agent));

    // "Runs in": zellij instead of the default.
    harness
        .get_all_by_role(Role::ComboBox)
        .find(|n| n.value().is_some_and(|v| v.starts_with("default (tmux")))
        .expect("the form's multiplexer choice")
        .click();
    harness.run_steps(2);
    harness.get_by_label("zellij").click();
    harness.run_steps(2);
    harness.get_by_label("▶ Start").click();
    harness.run_steps(2);
    wait_for_label(&mut harness, "started zellij-refactor");

    // It asks, on zellij's screen; the detail says where it runs.
    wait_for_label(&mut harness, "waiting for input");
    wait_for_label(&mut harness, "Proceed with the refactor? (y/n)");
    assert!(
        harness
            .query_all_by_label_contains("· zellij")
            .next()
            .is_some(),
        "the detail names the multiplexer"
    );
    let fields = harness.get_all_by_role(Role::TextInput).count();
    type_into(&mut harness, fields - 1, "y");
    harness.get_by_label("Send").click();
    harness.run_steps(2);
    wait_for_label(&mut harness, "you said: y");

    // Attach: a real terminal opens on the zellij session (zellij counts it as a client).
    let zellij = zellij_in(lab.dir.path());
    let session = std::fs::read_dir(lab.dir.path().join("zs"))
        .expect("zellij's sockets")
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("cb-zellij-refactor-"))
        .expect("the session's socket");
    let clients = || {
        let out = std::process::Command::new(&zellij.program)
            .env(
                "ZELLIJ_SOCKET_DIR",
                zellij.socket_dir.as_ref().expect("set"),
            )
            .args(["--session", &session, "action", "list-clients"])
            .output()
            .expect("run zellij");
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let alone = clients();
    harness.get_by_label("Attach").click();
    harness.run_steps(2);
    wait_for_label(&mut harness, "on the session");
    let start = Instant::now();
    while clients() <= alone {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no terminal attached to the zellij session"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    harness.get_by_label("⏹ End").click();
    harness.run_steps(2);
    wait_for_label(&mut harness, "ended by the user (Ctrl-C");
}
