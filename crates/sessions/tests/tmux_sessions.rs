//! Sessions end to end with a real tmux (a private server per test) and a real shell script as
//! the agent: states as a person sees them, exits, answers, ends, and what is kept when
//! candybar is not running. A missing tmux fails the test with what to install.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candybar_sessions::mux::Multiplex as _;
use candybar_sessions::store::OutboxItem;
use candybar_sessions::{
    MuxSocket, Provider, Session, SessionError, SessionState, Sessions, SqliteStore, StartRequest,
    Tmux,
};
use serde_json::Value;

/// A temporary directory with a tmux server of its own (killed at the end), and an agent.
struct Lab {
    dir: tempfile::TempDir,
    socket: PathBuf,
}

/// The agent: says what it was given, asks, repeats the answer, exits with 3.
const AGENT: &str = r#"#!/bin/sh
echo "agent starting: $*"
printf '\033[1;32mthinking\033[0m\n'
printf 'Apply the patch? (y/n) '
read answer
echo "you said: $answer"
echo "done"
exit 3
"#;

impl Lab {
    fn new() -> Self {
        if let Err(e) = Tmux::version() {
            panic!("these tests need tmux: {e}");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("tmux.sock");
        let agent = dir.path().join("agent.sh");
        std::fs::write(&agent, AGENT).expect("write the agent");
        std::fs::set_permissions(&agent, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("make the agent executable");
        Self { dir, socket }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A candybar's view of the sessions (several may look at one database at once).
    fn sessions(&self, idle: Duration) -> Sessions {
        let store = SqliteStore::open(&self.path().join("state/sessions.sqlite3")).expect("store");
        Sessions::new(
            store,
            Tmux::new(MuxSocket::Path(self.socket.clone())),
            self.path().join("state/logs"),
            idle,
        )
    }

    fn request(&self, name: &str, command: &[&str]) -> StartRequest {
        StartRequest {
            id: None,
            name: name.into(),
            provider: Provider::Custom,
            dir: self.path().to_owned(),
            prompt: None,
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            metadata: serde_json::json!({"ticket": 7}),
            correlation_id: Some("corr-1".into()),
            multiplexer: Some(candybar_sessions::Multiplexer::Tmux),
        }
    }

    fn tmux(&self, args: &[&str]) {
        let ok = std::process::Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .status()
            .expect("run tmux");
        assert!(ok.success(), "tmux {args:?}");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Refreshes until `id` is in `state` (10 s at most); the session then.
fn wait_for(sessions: &mut Sessions, id: &str, state: SessionState) -> Session {
    let end = Instant::now() + Duration::from_secs(10);
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

/// Everything in the outbox, as (routing key, body).
fn outbox(sessions: &Sessions) -> Vec<(String, Value)> {
    let due: Vec<OutboxItem> = sessions.store.outbox_due(i64::MAX, 1000).expect("outbox");
    due.into_iter()
        .map(|i| {
            let body = serde_json::from_slice(&i.event.body).expect("events are JSON");
            (i.event.routing_key, body)
        })
        .collect()
}

#[test]
fn an_agent_asks_is_answered_and_its_exit_is_kept_and_announced() {
    let lab = Lab::new();
    let mut sessions = lab.sessions(Duration::from_mins(1));
    let agent = lab.path().join("agent.sh");
    let s = sessions
        .start(lab.request("fix: the.build", &[agent.to_str().unwrap(), "hello world"]))
        .expect("start");
    assert_eq!(s.state, SessionState::Initializing);
    assert!(
        s.mux_name.starts_with("cb-fix--the-build-"),
        "{}",
        s.mux_name
    );

    // The question is on the screen: waiting for input, with the question as the last line.
    let asking = wait_for(&mut sessions, &s.id, SessionState::WaitingInput);
    assert_eq!(asking.last_line, "Apply the patch? (y/n)");
    // A line that begins with `-` is text for the agent, not an option of tmux.
    sessions.send(&s.short_id()[..6], "--yes").expect("send");

    // It exits with 3: failed, with the status and its last lines.
    let ended = wait_for(&mut sessions, &s.id, SessionState::Failed);
    assert_eq!(ended.exit_code, Some(3));
    assert_eq!(ended.reason.as_deref(), Some("exited with 3"));
    assert_eq!(ended.last_line, "done");
    let log = std::fs::read(&ended.log).expect("the log");
    let text = candybar_sessions::detect::plain(&log);
    assert!(
        text.contains("agent starting: hello world") && text.contains("you said: --yes"),
        "the log holds everything from the first byte: {text}"
    );

    let events = outbox(&sessions);
    let types: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        types,
        [
            "jelmore.session.started",
            "jelmore.command.executed",
            "jelmore.session.completed"
        ]
    );
    let started = &events[0].1;
    assert_eq!(started["event_type"], "jelmore.session.started");
    assert_eq!(started["payload"]["session_id"], s.id.as_str());
    assert_eq!(started["payload"]["provider"], "custom");
    assert_eq!(started["payload"]["agent_id"], "fix: the.build");
    assert_eq!(started["payload"]["metadata"]["ticket"], 7);
    assert_eq!(
        started["payload"]["worktree_path"],
        lab.path().canonicalize().unwrap().to_str().unwrap()
    );
    assert_eq!(started["correlation_ids"][0], "corr-1");
    let done = &events[2].1["payload"];
    assert_eq!(done["success"], false);
    assert_eq!(done["exit_code"], 3);
    assert_eq!(done["prompt_count"], 1);
    assert!(
        done["summary"].as_str().unwrap().ends_with("done"),
        "{done}"
    );
    assert!(done["duration_seconds"].as_f64().unwrap() > 0.0, "{done}");

    // Refreshing again announces nothing twice.
    sessions.refresh().unwrap();
    assert_eq!(outbox(&sessions).len(), 3);
}

#[test]
fn sessions_outlive_candybar_and_one_killed_meanwhile_is_failed_once() {
    let lab = Lab::new();
    let mut first = lab.sessions(Duration::from_mins(1));
    let keeps = first
        .start(lab.request("keeps", &["sh", "-c", "echo up; read x; echo bye $x"]))
        .unwrap();
    let killed = first
        .start(lab.request("killed", &["sh", "-c", "echo up; sleep 60"]))
        .unwrap();
    wait_for(&mut first, &keeps.id, SessionState::Active);
    drop(first); // candybar exits; tmux keeps running the sessions

    // Meanwhile one is killed from outside.
    lab.tmux(&["kill-session", "-t", &format!("={}", killed.mux_name)]);

    // Two candybars start again and look at once: the killed one is failed, announced once;
    // the other is adopted as it is.
    let mut a = lab.sessions(Duration::from_mins(1));
    let mut b = lab.sessions(Duration::from_mins(1));
    a.refresh().unwrap();
    b.refresh().unwrap();
    let dead = a.get(&killed.id).unwrap().unwrap();
    assert_eq!(dead.state, SessionState::Failed);
    assert!(
        dead.reason
            .as_deref()
            .unwrap()
            .contains("killed from outside"),
        "{dead:?}"
    );
    assert_eq!(dead.exit_code, None);
    let completed = outbox(&a)
        .into_iter()
        .filter(|(k, b)| {
            k == "jelmore.session.completed" && b["payload"]["session_id"] == killed.id.as_str()
        })
        .count();
    assert_eq!(completed, 1, "announced once by two candybars");
    assert!(a.get(&keeps.id).unwrap().unwrap().state.is_running());
    b.send("keeps", "now").unwrap();
    let done = wait_for(&mut a, &keeps.id, SessionState::Terminated);
    assert_eq!(done.exit_code, Some(0));
    assert_eq!(done.last_line, "bye now");
    // A candybar that still holds it as running cannot bring it back.
    let stale = Session {
        state: SessionState::Active,
        ..done.clone()
    };
    assert!(!b.save(&stale, &[]).unwrap(), "an end is not undone");
    assert_eq!(
        a.get(&keeps.id).unwrap().unwrap().state,
        SessionState::Terminated
    );
}

#[test]
fn quiet_sessions_are_idle_and_ending_asks_before_it_closes() {
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
    let s = wait_for(&mut sessions, &quiet.id, SessionState::Idle);
    assert_eq!(s.last_line, "working");

    // Ctrl-C ends a command that listens to it; its status is kept.
    let t = Instant::now();
    let ended = sessions
        .end("quiet", false, Duration::from_secs(5))
        .expect("end");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(ended.state, SessionState::Terminated);
    assert_eq!(ended.exit_code, Some(130));
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
    assert!(
        !Tmux::new(MuxSocket::Path(lab.socket.clone()))
            .running()
            .unwrap()
            .contains(&stubborn.mux_name)
    );
    let completed = outbox(&sessions)
        .into_iter()
        .filter(|(k, b)| k == "jelmore.session.completed" && b["payload"]["success"] == true)
        .count();
    assert_eq!(
        completed, 2,
        "a session the person ended counts as a success"
    );

    // Ending it again says it has ended.
    let again = sessions.end("stubborn", true, Duration::ZERO).unwrap_err();
    assert!(matches!(again, SessionError::Ended { .. }), "{again}");
}

#[test]
fn bad_requests_are_refused_with_what_to_do() {
    let lab = Lab::new();
    let mut sessions = lab.sessions(Duration::from_mins(1));
    let refuse = |sessions: &mut Sessions, req: StartRequest| {
        sessions.start(req).expect_err("refused").to_string()
    };
    sessions
        .start(lab.request("twin", &["sh", "-c", "sleep 60"]))
        .unwrap();
    let e = refuse(
        &mut sessions,
        lab.request("twin", &["sh", "-c", "sleep 60"]),
    );
    assert!(e.contains("a session named \"twin\" is running"), "{e}");

    let mut missing_dir = lab.request("x", &["sh"]);
    missing_dir.dir = lab.path().join("nope");
    let e = refuse(&mut sessions, missing_dir);
    assert!(e.contains("no directory") && e.contains("nope"), "{e}");

    let e = refuse(
        &mut sessions,
        lab.request("x", &["no-such-agent-cli", "go"]),
    );
    assert!(e.contains("no command \"no-such-agent-cli\""), "{e}");

    let mut custom = lab.request("x", &[]);
    custom.provider = Provider::Custom;
    let e = refuse(&mut sessions, custom);
    assert!(e.contains("needs its command"), "{e}");

    for name in ["", "   ", "a\nb", &"n".repeat(65)] {
        let e = refuse(&mut sessions, lab.request(name, &["sh"]));
        assert!(e.contains("a session name is 1 to 64"), "{e}");
    }

    // Names are found by id, by a start of the id, or by name; nothing else.
    let e = sessions.resolve("nobody").unwrap_err().to_string();
    assert!(e.contains("no session \"nobody\""), "{e}");
    assert!(sessions.resolve("twin").is_ok());
}

#[test]
fn a_session_sees_the_persons_environment_not_the_wrappers() {
    let lab = Lab::new();
    let mut sessions = lab.sessions(Duration::from_mins(1));
    let s = sessions
        .start(lab.request("env", &["sh", "-c", "env; echo env-done"]))
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while !candybar_sessions::manager::tail_text(&s.log, 1 << 20).contains("env-done") {
        assert!(Instant::now() < end, "the session did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    let env = candybar_sessions::manager::tail_text(&s.log, 1 << 20);
    assert!(
        !env.contains("_CB_") && !env.contains("CANDYBAR_TMUX"),
        "a candybar run inside a session would read the wrapper's settings:\n{env}"
    );
}

#[test]
fn after_a_failure_only_the_steps_meant_for_it_run() {
    let lab = Lab::new();
    let mut sessions = lab.sessions(Duration::from_mins(1));
    let text = r#"
        [[step]]
        id = "check"
        run = ["false"]
        [[step]]
        id = "fix"
        needs = ["check"]
        when = "failed"
        run = ["true"]
        [[step]]
        id = "ship"
        run = ["true"]
        [[step]]
        id = "report"
        when = "always"
        run = ["true"]
    "#;
    let w = candybar_sessions::workflow::Workflow::parse(text, "w", Path::new("w.toml")).unwrap();
    let mut lines = Vec::new();
    let outcomes = candybar_sessions::workflow::run(&w, &mut sessions, lab.path(), &mut |l, _| {
        lines.push(l.to_owned());
    })
    .unwrap();
    let words: Vec<(&str, &str)> = outcomes
        .iter()
        .map(|(id, o)| {
            let w = match o {
                candybar_sessions::workflow::Outcome::Succeeded => "ok",
                candybar_sessions::workflow::Outcome::Failed(_) => "failed",
                candybar_sessions::workflow::Outcome::Skipped(_) => "skipped",
            };
            (id.as_str(), w)
        })
        .collect();
    assert_eq!(
        words,
        [
            ("check", "failed"),
            ("fix", "ok"),
            ("ship", "skipped"),
            ("report", "ok")
        ],
        "{lines:?}"
    );
}

#[test]
fn a_paused_session_prints_nothing_until_resumed_and_both_are_announced() {
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

    let paused = sessions.pause("ticker").expect("pause");
    assert_eq!(paused.state, SessionState::Paused);
    // The pipe to the log may still hold a line: let it settle, then nothing more comes.
    std::thread::sleep(Duration::from_millis(300));
    let before = log_len();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(log_len(), before, "a paused session went on printing");
    // Quiet for longer than the idle time, it is still paused (not idle), also in the store.
    sessions.refresh().unwrap();
    assert_eq!(
        sessions.get(&ticker.id).unwrap().unwrap().state,
        SessionState::Paused
    );
    assert!(matches!(
        sessions.pause(&ticker.id),
        Err(SessionError::Already { .. })
    ));

    let resumed = sessions.resume("ticker").expect("resume");
    assert!(resumed.state.is_running() && resumed.state != SessionState::Paused);
    assert_eq!(resumed.paused_us, None);
    wait_for(&mut sessions, &ticker.id, SessionState::Active);
    assert!(log_len() > before, "a resumed session prints again");
    assert!(matches!(
        sessions.resume(&ticker.id),
        Err(SessionError::Already { .. })
    ));

    let events = outbox(&sessions);
    let (_, p) = events
        .iter()
        .find(|(k, _)| k == "jelmore.session.paused")
        .expect("paused announced");
    assert_eq!(p["payload"]["session_id"], ticker.id);
    let (_, r) = events
        .iter()
        .find(|(k, _)| k == "jelmore.session.resumed")
        .expect("resumed announced");
    let secs = r["payload"]["paused_seconds"].as_f64().unwrap();
    assert!((1.2..10.0).contains(&secs), "paused for {secs} s");
    assert_eq!(r["correlation_ids"][0], "corr-1");

    // A paused session ends like any other: it is continued to hear Ctrl-C.
    sessions.pause(&ticker.id).unwrap();
    let t = Instant::now();
    let ended = sessions
        .end(&ticker.id, false, Duration::from_secs(5))
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(ended.state, SessionState::Terminated);
    assert_eq!(ended.exit_code, Some(130), "{ended:?}");
}

#[test]
fn independent_branches_run_at_once_and_a_join_waits_for_both() {
    let lab = Lab::new();
    let mut sessions = lab.sessions(Duration::from_mins(1));
    let stamp = |name: &str| {
        format!(
            "date +%s%N > {}/{name}.start; sleep 1.2",
            lab.path().display()
        )
    };
    let text = format!(
        r#"
        parallel = 4
        [[step]]
        id = "build"
        run = ["sh", "-c", "{build}"]
        [[step]]
        id = "agent"
        session = {{ name = "reviewer", command = ["sh", "-c", "{agent}"] }}
        [[step]]
        id = "join"
        needs = ["build", "agent"]
        run = ["sh", "-c", "date +%s%N > {dir}/join.start"]
        "#,
        build = stamp("build"),
        agent = stamp("agent"),
        dir = lab.path().display()
    );
    let w = candybar_sessions::workflow::Workflow::parse(&text, "w", Path::new("w.toml")).unwrap();
    let t = Instant::now();
    let outcomes =
        candybar_sessions::workflow::run(&w, &mut sessions, lab.path(), &mut |_, _| {}).unwrap();
    let took = t.elapsed();
    let ok = |id: &str| {
        outcomes
            .iter()
            .any(|(i, o)| i == id && *o == candybar_sessions::workflow::Outcome::Succeeded)
    };
    assert!(ok("build") && ok("agent") && ok("join"), "{outcomes:?}");
    assert_eq!(outcomes.last().unwrap().0, "join");
    let at = |name: &str| -> i64 {
        std::fs::read_to_string(lab.path().join(format!("{name}.start")))
            .unwrap_or_else(|e| panic!("{name} never started: {e}"))
            .trim()
            .parse()
            .unwrap()
    };
    let (build, agent, join) = (at("build"), at("agent"), at("join"));
    // The two branches began together (one after the other would be 1.2 s apart) …
    assert!((build - agent).abs() < 800_000_000, "{build} {agent}");
    // … and the join only after both had run their 1.2 s.
    assert!(
        join - build.max(agent) >= 1_200_000_000,
        "{join} {build} {agent}"
    );
    // In all, well under the 2.4 s the branches take one after the other.
    assert!(took < Duration::from_millis(2_300), "{took:?}");
}
