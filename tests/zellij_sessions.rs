//! Sessions in zellij, end to end: a real zellij (its own socket directory per test), the real
//! binary's `session relay` in the pane, and shell scripts as agents — questions seen on the
//! screen and answered, every byte logged (nothing of the relay's own), exit statuses, Ctrl-C,
//! a session killed from outside, pause and resume, and the CLI. A missing zellij fails the
//! test with what to install (`.ci/zellij` builds the one CI uses).

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candybar_sessions::mux::Multiplex as _;
use candybar_sessions::{
    Multiplexer, Mux, Provider, Session, SessionError, SessionState, Sessions, SqliteStore,
    StartRequest, Zellij,
};
use support::{path_str, run_env};

/// The agent: says what it was given and where, asks, repeats the answer, exits with 3.
const AGENT: &str = r#"#!/bin/sh
echo "agent starting: $* in $(pwd)"
printf '\033[1;32mthinking\033[0m\n'
if [ -t 0 ]; then echo "on a terminal: $(stty size)"; fi
printf 'Apply the patch? (y/n) '
read answer
echo "you said: $answer"
echo "done"
exit 3
"#;

/// A temporary directory with zellij sessions of its own (killed at the end), and an agent.
struct Lab {
    dir: tempfile::TempDir,
    zellij: PathBuf,
}

/// The zellij the tests run: `CANDYBAR_TEST_ZELLIJ`, else `zellij` on `PATH`.
fn zellij_program() -> PathBuf {
    let program =
        std::env::var_os("CANDYBAR_TEST_ZELLIJ").map_or_else(|| "zellij".into(), PathBuf::from);
    let version = std::process::Command::new(&program)
        .arg("--version")
        .output();
    assert!(
        version.is_ok_and(|o| o.status.success()),
        "these tests need zellij ({}): `cargo install --locked zellij`, or run .ci/zellij \
         (it builds zellij 0.45.1 once) and set CANDYBAR_TEST_ZELLIJ to the path it prints",
        program.display()
    );
    program
}

impl Lab {
    fn new() -> Self {
        let zellij = zellij_program();
        let dir = tempfile::tempdir().expect("temp dir");
        let agent = dir.path().join("agent.sh");
        std::fs::write(&agent, AGENT).expect("write the agent");
        std::fs::set_permissions(&agent, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("make the agent executable");
        std::fs::create_dir(dir.path().join("zs")).expect("socket dir");
        Self { dir, zellij }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn agent(&self) -> String {
        path_str(&self.path().join("agent.sh")).to_owned()
    }

    fn zellij(&self) -> Zellij {
        Zellij {
            program: self.zellij.clone(),
            socket_dir: Some(self.path().join("zs")),
            relay: env!("CARGO_BIN_EXE_candybar").into(),
        }
    }

    /// A candybar's view of the sessions, zellij preferred.
    fn sessions(&self, idle: Duration) -> Sessions {
        let store = SqliteStore::open(&self.path().join("state/sessions.sqlite3")).expect("store");
        let mux = Mux {
            zellij: self.zellij(),
            prefer: Some(Multiplexer::Zellij),
            ..Mux::default()
        };
        Sessions::new(store, mux, self.path().join("state/logs"), idle)
    }

    fn request(&self, name: &str, command: &[&str]) -> StartRequest {
        StartRequest {
            id: None,
            name: name.into(),
            provider: Provider::Custom,
            dir: self.path().to_owned(),
            prompt: None,
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            metadata: serde_json::json!({"ticket": 9}),
            correlation_id: None,
            multiplexer: None,
        }
    }

    /// `candybar ARGS` with this lab's sessions and zellij; (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let state = self.path().join("cli-state");
        let sockets = self.path().join("zs");
        run_env(
            args,
            &[
                ("CANDYBAR_SESSIONS_DIR", path_str(&state)),
                ("CANDYBAR_ZELLIJ", path_str(&self.zellij)),
                ("CANDYBAR_ZELLIJ_SOCKET_DIR", path_str(&sockets)),
                // (Unset: the default choice, whatever the developer's shell says.)
                ("CANDYBAR_MULTIPLEXER", ""),
            ],
        )
    }
}

impl Lab {
    /// Waits (5 s at most) until zellij no longer runs the session `name`; else fails with `why`.
    fn wait_gone(&self, name: &str, why: &str) {
        let end = Instant::now() + Duration::from_secs(5);
        while self
            .zellij()
            .running()
            .expect("zellij list-sessions")
            .contains(name)
        {
            assert!(Instant::now() < end, "{why}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.zellij)
            .env("ZELLIJ_SOCKET_DIR", self.path().join("zs"))
            .args(["kill-all-sessions", "--yes"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Refreshes until `id` is in `state` (15 s at most); the session then.
fn wait_for(sessions: &mut Sessions, id: &str, state: SessionState) -> Session {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        sessions.refresh().expect("refresh");
        let s = sessions.get(id).expect("get").expect("kept");
        if s.state == state {
            return s;
        }
        assert!(
            Instant::now() < end,
            "{} stayed {} (wanted {}): {s:?}",
            s.name,
            s.state.as_str(),
            state.as_str()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_zellij_agent_asks_is_answered_and_its_exit_is_kept() {
    let lab = Lab::new();
    let mut sessions = lab.sessions(Duration::from_mins(1));
    let agent = lab.agent();
    let s = sessions
        .start(lab.request("fix: the.build", &[&agent, "hello \"world\""]))
        .expect("start");
    assert_eq!(s.multiplexer, Multiplexer::Zellij);
    // zellij lists it (`list-sessions` can pass over a server busy starting: asked again).
    let end = Instant::now() + Duration::from_secs(5);
    while !lab
        .zellij()
        .running()
        .expect("zellij list-sessions")
        .contains(&s.mux_name)
    {
        assert!(
            Instant::now() < end,
            "no zellij session named {} runs",
            s.mux_name
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The question is on the screen (zellij's dump of the pane): waiting for input.
    let asking = wait_for(&mut sessions, &s.id, SessionState::WaitingInput);
    assert_eq!(asking.last_line, "Apply the patch? (y/n)");
    // A line that begins with `-` is text for the agent, not an option of zellij.
    sessions.send(&s.name, "--yes").expect("send");

    // It exits with 3: failed, with the status and its last lines; the zellij session closes.
    let ended = wait_for(&mut sessions, &s.id, SessionState::Failed);
    assert_eq!(ended.exit_code, Some(3));
    assert_eq!(ended.reason.as_deref(), Some("exited with 3"));
    assert_eq!(ended.last_line, "done");
    lab.wait_gone(&s.mux_name, "the zellij session outlived its command");

    // The log is what the terminal received, from the first byte, and nothing else.
    let log = std::fs::read(&ended.log).expect("the log");
    let text = candybar_sessions::detect::plain(&log);
    let dir = lab.path().canonicalize().unwrap();
    assert!(
        text.starts_with(&format!(
            "agent starting: hello \"world\" in {}",
            dir.display()
        )),
        "the log starts with the agent's first line: {text}"
    );
    assert!(
        log.windows(7).any(|w| w == b"\x1b[1;32m"),
        "escape sequences are kept as printed"
    );
    assert!(
        text.contains("on a terminal: ") && text.contains("you said: --yes"),
        "the agent runs on a terminal, and reads the answer: {text}"
    );

    // A command that ends at once: started, then failed with its status and its last line.
    let t = Instant::now();
    let quick = sessions
        .start(lab.request("quick", &["sh", "-c", "echo bye; exit 5"]))
        .expect("start");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let quick = wait_for(&mut sessions, &quick.id, SessionState::Failed);
    assert_eq!(quick.exit_code, Some(5));
    assert_eq!(quick.last_line, "bye");

    // Kept with the session: a candybar started later knows where it ran.
    let again = lab
        .sessions(Duration::from_mins(1))
        .get(&s.id)
        .unwrap()
        .unwrap();
    assert_eq!(again.multiplexer, Multiplexer::Zellij);
}

#[test]
fn zellij_sessions_end_with_ctrl_c_or_are_closed_and_one_killed_outside_fails() {
    let lab = Lab::new();
    let mut sessions = lab.sessions(Duration::from_secs(1));
    let quiet = sessions
        .start(lab.request("quiet", &["sh", "-c", "echo working; sleep 60"]))
        .unwrap();
    let stubborn = sessions
        .start(lab.request(
            "stubborn",
            &["sh", "-c", "trap '' INT; echo cannot stop me; sleep 60"],
        ))
        .unwrap();
    let killed = sessions
        .start(lab.request("killed", &["sh", "-c", "echo up; sleep 60"]))
        .unwrap();
    let s = wait_for(&mut sessions, &quiet.id, SessionState::Idle);
    assert_eq!(s.last_line, "working");

    // Ctrl-C (the byte, through the relay's terminal) ends a command that listens to it.
    let t = Instant::now();
    let ended = sessions
        .end("quiet", false, Duration::from_secs(5))
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(ended.exit_code, Some(130), "{ended:?}");
    assert_eq!(
        ended.reason.as_deref(),
        Some("ended by the user (Ctrl-C; exited with 130)")
    );

    // One that ignores it is closed after the grace period.
    wait_for(&mut sessions, &stubborn.id, SessionState::Idle);
    let t = Instant::now();
    let ended = sessions
        .end(&stubborn.id, false, Duration::from_millis(800))
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(
        ended.reason.as_deref(),
        Some("ended by the user (closed: Ctrl-C went unanswered)")
    );
    assert!(!lab.zellij().running().unwrap().contains(&stubborn.mux_name));

    // Killed from outside (`zellij kill-session`): failed, without an exit status.
    wait_for(&mut sessions, &killed.id, SessionState::Idle);
    lab.zellij()
        .kill(&killed.mux_name)
        .expect("kill from outside");
    let dead = wait_for(&mut sessions, &killed.id, SessionState::Failed);
    assert_eq!(dead.exit_code, None);
    assert!(
        dead.reason
            .as_deref()
            .unwrap()
            .contains("killed from outside"),
        "{dead:?}"
    );
    let again = sessions.end("stubborn", true, Duration::ZERO).unwrap_err();
    assert!(matches!(again, SessionError::Ended { .. }), "{again}");
}

#[test]
fn a_paused_zellij_session_prints_nothing_until_resumed() {
    let lab = Lab::new();
    let mut sessions = lab.sessions(Duration::from_millis(500));
    let ticker = sessions
        .start(lab.request(
            "ticker",
            &[
                "sh",
                "-c",
                "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.05; done",
            ],
        ))
        .unwrap();
    wait_for(&mut sessions, &ticker.id, SessionState::Active);
    let log_len = || std::fs::metadata(&ticker.log).map_or(0, |m| m.len());

    sessions.pause("ticker").expect("pause");
    std::thread::sleep(Duration::from_millis(300));
    let before = log_len();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(log_len(), before, "a paused session went on printing");
    sessions.refresh().unwrap();
    assert_eq!(
        sessions.get(&ticker.id).unwrap().unwrap().state,
        SessionState::Paused
    );

    sessions.resume("ticker").expect("resume");
    wait_for(&mut sessions, &ticker.id, SessionState::Active);
    assert!(log_len() > before, "a resumed session prints again");
    let ended = sessions
        .end(&ticker.id, false, Duration::from_secs(5))
        .unwrap();
    assert_eq!(ended.exit_code, Some(130), "{ended:?}");
}

#[test]
fn the_cli_starts_a_zellij_session_on_request_and_says_how_to_attach() {
    let lab = Lab::new();
    let dir = path_str(lab.path());
    let (code, out, err) = lab.run(&[
        "session",
        "start",
        "asker",
        "--mux",
        "zellij",
        "--dir",
        dir,
        "--",
        &lab.agent(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let id = out.trim().to_owned();
    assert!(
        err.contains("in zellij") && err.contains("attach cb-asker-"),
        "says where it runs and how to attach: {err}"
    );

    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, out, _) = lab.run(&["session", "status", &id]);
        if out.contains("waiting_input") {
            assert!(out.contains("(zellij session cb-asker-"), "{out}");
            break;
        }
        assert!(Instant::now() < end, "never asked: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, _, err) = lab.run(&["session", "send", "asker", "y"]);
    assert_eq!(code, Some(0), "{err}");
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, out, _) = lab.run(&["session", "status", &id]);
        if out.contains("exited with 3") {
            break;
        }
        assert!(Instant::now() < end, "never ended: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, logs, _) = lab.run(&["session", "logs", &id]);
    assert!(logs.contains("you said: y\ndone"), "{logs}");

    // A candybar started with SIGINT ignored (as `cmd &` in a script, or CI, starts it): the
    // agent still hears Ctrl-C — an ignored signal would stay ignored down to it.
    let state = lab.path().join("cli-state");
    let sockets = lab.path().join("zs");
    let started = std::process::Command::new("sh")
        .args(["-c", "trap '' INT QUIT; exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_candybar"))
        .args([
            "session", "start", "deaf", "--mux", "zellij", "--dir", dir, "--",
        ])
        .args(["sh", "-c", "echo listening; sleep 60"])
        .env("CANDYBAR_CONFIG", "/nonexistent/candybar-test-config.toml")
        .env("CANDYBAR_SESSIONS_DIR", &state)
        .env("CANDYBAR_ZELLIJ", &lab.zellij)
        .env("CANDYBAR_ZELLIJ_SOCKET_DIR", &sockets)
        .output()
        .expect("run candybar with SIGINT ignored");
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let end = Instant::now() + Duration::from_secs(10);
    while !lab
        .run(&["session", "logs", "deaf"])
        .1
        .contains("listening")
    {
        assert!(Instant::now() < end, "the session never printed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, out, err) = lab.run(&["session", "end", "deaf"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("Ctrl-C; exited with 130"), "{out}{err}");

    // `--help` says which multiplexer a session gets on this machine.
    let (_, help, _) = lab.run(&["session", "start", "--help"]);
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        help.contains("on this machine: tmux (zellij is installed too)"),
        "{help}"
    );
    // A name that is not a multiplexer is refused with the ones there are.
    let (code, _, err) = lab.run(&["session", "start", "x", "--mux", "screen", "--", "true"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("tmux") && err.contains("zellij"), "{err}");
    // A zellij that is not there: what to install.
    let (code, _, err) = run_env(
        &[
            "session", "start", "x", "--mux", "zellij", "--dir", dir, "--", "true",
        ],
        &[
            (
                "CANDYBAR_SESSIONS_DIR",
                path_str(&lab.path().join("cli-state")),
            ),
            ("CANDYBAR_ZELLIJ", "/nonexistent/zellij"),
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("zellij is not installed") && err.contains("cargo install --locked zellij"),
        "{err}"
    );
}

#[test]
fn odd_directories_and_an_end_right_after_the_start_leave_nothing_behind() {
    let lab = Lab::new();
    let mut sessions = lab.sessions(Duration::from_mins(1));
    // zellij expands `$NAME` in a pane's directory; quotes and backslashes must survive KDL.
    let odd = lab.path().join("wörk \"tree\" \\ $HOME #1");
    std::fs::create_dir(&odd).expect("the odd directory");
    let mut req = lab.request("odd", &["sh", "-c", "pwd; sleep 60"]);
    req.dir.clone_from(&odd);
    let s = sessions.start(req).expect("start in an odd directory");
    let end = Instant::now() + Duration::from_secs(10);
    let want = odd.canonicalize().unwrap().display().to_string();
    while !candybar_sessions::manager::tail_text(&s.log, 1 << 16).contains(&want) {
        assert!(
            Instant::now() < end,
            "it did not run in {want}: {}",
            candybar_sessions::manager::tail_text(&s.log, 1 << 16)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Ended at once after its start: Ctrl-C reaches the command (not the relay), its status is
    // kept, and no zellij session is left.
    let quick = sessions
        .start(lab.request("at-once", &["sh", "-c", "sleep 60"]))
        .unwrap();
    let ended = sessions
        .end(&quick.id, false, Duration::from_secs(5))
        .unwrap();
    assert_eq!(ended.exit_code, Some(130), "{ended:?}");
    lab.wait_gone(&quick.mux_name, "the zellij session was left behind");

    // Its relay killed from outside: failed, and the zellij session it leaves is closed.
    let pid_file = lab.path().join(format!("state/logs/{}.pid", s.id));
    let pid = std::fs::read_to_string(&pid_file).expect("the relay's pid");
    let killed = std::process::Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let dead = wait_for(&mut sessions, &s.id, SessionState::Failed);
    assert!(
        dead.reason
            .as_deref()
            .unwrap()
            .contains("killed from outside"),
        "{dead:?}"
    );
    lab.wait_gone(&s.mux_name, "the relay's zellij session was left behind");
}

#[test]
fn the_agents_terminal_follows_the_size_of_the_terminal_attached() {
    let lab = Lab::new();
    let x = support::Xvfb::start();
    support::require_xterm();
    let mut sessions = lab.sessions(Duration::from_mins(1));
    let s = sessions
        .start(lab.request(
            "sized",
            &[
                "sh",
                "-c",
                "trap 'echo resized $(stty size)' WINCH; echo ready; while true; do sleep 0.1; done",
            ],
        ))
        .unwrap();
    let log = || candybar_sessions::manager::tail_text(&s.log, 1 << 16);
    let end = Instant::now() + Duration::from_secs(10);
    while !log().contains("ready") {
        assert!(Instant::now() < end, "the agent never started: {}", log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // A person attaches from a 120 × 40 terminal: the pane, and the agent's terminal, take its
    // size (zellij draws no frame around a lone pane here).
    let attach = lab.zellij().attach_command(&s.mux_name);
    let mut xterm = std::process::Command::new("xterm")
        .args(["-geometry", "120x40", "-e"])
        .arg(attach.get_program())
        .args(attach.get_args())
        .envs(attach.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env("DISPLAY", &x.display)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run xterm");
    let end = Instant::now() + Duration::from_secs(15);
    while !log().contains("resized 40 120") {
        assert!(
            Instant::now() < end,
            "the agent's terminal did not follow the attached terminal's size: {}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = xterm.kill();
    let _ = xterm.wait();
}
