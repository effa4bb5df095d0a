//! The window's sessions worker: a thread of its own refreshes the coding-agent sessions every
//! second (tmux, their logs, SQLite or Redis), tails the selected session's log, carries out
//! what the Sessions view asks, and sends the lifecycle events to the broker. The UI thread
//! only copies its snapshot when it changes. It opens nothing until the view is first shown.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use candybar_core::redact::SecretUrl;
use candybar_sessions::{Provider, Session, Sessions, StartRequest};
use candybar_ui::ToastLevel;
use candybar_ui::sessions::{SessionAction, SessionRow};
use parking_lot::Mutex;

/// How often the sessions are refreshed while nothing is asked.
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// How much of the selected session's log the view shows.
const LOG_TAIL_BYTES: u64 = 32 * 1024;
/// Sessions listed at most.
const LIST_MAX: usize = 500;
/// How long End waits after Ctrl-C before closing a session.
const END_GRACE: Duration = Duration::from_secs(5);

/// What the worker needs: how to open the sessions (on its own thread), and the broker their
/// events go to.
pub struct SessionsInit {
    pub open: Box<dyn FnOnce() -> anyhow::Result<Sessions> + Send>,
    pub broker: Option<(SecretUrl, String)>,
    pub rt: tokio::runtime::Handle,
    /// Where a session started without a directory runs.
    pub default_dir: PathBuf,
    /// The terminal emulator Attach opens (`[sessions] terminal`), before the usual ones.
    pub terminal: Option<String>,
}

/// What the view shows, as the worker last saw it.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Bumped with every change.
    pub generation: u64,
    pub rows: Vec<SessionRow>,
    pub log: String,
    pub problem: Option<String>,
    /// Said once each (toasts).
    pub notices: Vec<(ToastLevel, String)>,
}

impl SessionsWorker {
    /// What the Sessions view reads this frame.
    pub fn info(&self) -> candybar_ui::sessions::SessionsInfo<'_> {
        candybar_ui::sessions::SessionsInfo {
            rows: &self.rows,
            log: &self.seen.log,
            problem: self.seen.problem.as_deref(),
        }
    }
}

pub struct SessionsWorker {
    tx: SyncSender<SessionAction>,
    /// Sessions other hosts announce on the bus.
    pub bus: BusSessions,
    /// What the view shows: `seen`'s rows and the bus's, merged.
    pub rows: Vec<SessionRow>,
    /// The view lists ended sessions too.
    pub show_all: bool,
    /// What the worker shows, under its lock (held only to swap it).
    pub snapshot: Arc<Mutex<Snapshot>>,
    /// The UI thread's copy, taken when the generation changes.
    pub seen: Snapshot,
}

impl SessionsWorker {
    pub fn start(init: SessionsInit, wake: impl Fn() + Send + 'static) -> anyhow::Result<Self> {
        let (tx, rx) = sync_channel(16);
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        let shared = snapshot.clone();
        std::thread::Builder::new()
            .name("sessions".into())
            .spawn(move || run(init, &rx, &shared, &wake))?;
        Ok(Self {
            tx,
            bus: BusSessions::default(),
            rows: Vec::new(),
            show_all: false,
            snapshot,
            seen: Snapshot::default(),
        })
    }

    /// Hands `action` to the worker; `false` when it is busy with too many already.
    pub fn ask(&mut self, action: SessionAction) -> bool {
        if let SessionAction::ShowAll(all) = action {
            self.show_all = all;
            self.rows = self.bus.merged(&self.seen.rows, all);
        }
        self.tx.try_send(action).is_ok()
    }
}

fn row(s: &Session, host: &str) -> SessionRow {
    SessionRow {
        id: s.id.clone(),
        name: s.name.clone(),
        provider: s.provider.as_str().into(),
        state: s.state.as_str().into(),
        dir: s.dir.display().to_string(),
        host: s.host.clone(),
        created_us: s.created_us,
        ended_us: s.ended_us,
        last_line: s.last_line.clone(),
        reason: s.reason.clone(),
        command: candybar_sessions::events::masked_command(s).join(" "),
        local: s.host == host,
        multiplexer: s.multiplexer.as_str().into(),
    }
}

struct Worker {
    sessions: Option<Sessions>,
    terminal: Option<String>,
    /// The selected session's log as last read: its id, the log's length then, the text.
    log_seen: Option<(String, u64, String)>,
    selected: Option<String>,
    show_all: bool,
    default_dir: PathBuf,
    notices: Vec<(ToastLevel, String)>,
}

fn run(
    init: SessionsInit,
    rx: &Receiver<SessionAction>,
    shared: &Mutex<Snapshot>,
    wake: &(impl Fn() + Send),
) {
    let SessionsInit {
        open,
        broker,
        rt,
        default_dir,
        terminal,
    } = init;
    // Nothing is opened (no database, no tmux) until the Sessions view is first shown.
    let Ok(first) = rx.recv() else { return };
    let mut problem = None;
    let sessions = match open() {
        Ok(s) => Some(s),
        Err(e) => {
            problem = Some(format!("sessions: {e:#}"));
            None
        }
    };
    let mut w = Worker {
        sessions,
        terminal,
        log_seen: None,
        selected: None,
        show_all: false,
        default_dir,
        notices: Vec::new(),
    };
    let mut publisher = broker
        .as_ref()
        .map(|(url, exchange)| candybar_bus::publish::Publisher::new(url.expose(), exchange));
    w.act(first);
    let mut refreshed: Option<Instant> = None;
    loop {
        let wait = refreshed.map_or(Duration::ZERO, |t| {
            REFRESH_EVERY.saturating_sub(t.elapsed())
        });
        match rx.recv_timeout(wait) {
            Ok(action) => w.act(action),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        refreshed = Some(Instant::now());
        let Some(sessions) = w.sessions.as_mut() else {
            publish(
                shared,
                Vec::new(),
                String::new(),
                problem.clone(),
                &mut w.notices,
                wake,
            );
            continue;
        };
        let listed = sessions
            .refresh()
            .and_then(|()| sessions.list(w.show_all, LIST_MAX));
        let (rows, problem) = match listed {
            Ok(found) => (found.iter().map(|s| row(s, &sessions.host)).collect(), None),
            Err(e) => (Vec::new(), Some(format!("sessions: {e}"))),
        };
        let log = match w
            .selected
            .as_deref()
            .and_then(|id| sessions.get(id).ok().flatten())
        {
            Some(s) => {
                // Read again only when the log grew (or another session is picked).
                let len = std::fs::metadata(&s.log).map_or(0, |m| m.len());
                match &w.log_seen {
                    Some((id, seen_len, text)) if *id == s.id && *seen_len == len => text.clone(),
                    _ => {
                        let text = candybar_sessions::manager::tail_text(&s.log, LOG_TAIL_BYTES);
                        w.log_seen = Some((s.id.clone(), len, text.clone()));
                        text
                    }
                }
            }
            None => String::new(),
        };
        if let Some(p) = publisher.as_mut() {
            let store = &sessions.store;
            let now = candybar_core::time::now_us();
            let _ = rt.block_on(candybar_sessions::outbox::deliver(store, p, now));
        }
        publish(shared, rows, log, problem, &mut w.notices, wake);
    }
}

/// Puts what the worker sees where the UI reads it, waking the UI when it changed.
fn publish(
    shared: &Mutex<Snapshot>,
    rows: Vec<SessionRow>,
    log: String,
    problem: Option<String>,
    notices: &mut Vec<(ToastLevel, String)>,
    wake: &impl Fn(),
) {
    let mut s = shared.lock();
    if s.rows == rows && s.log == log && s.problem == problem && notices.is_empty() {
        return;
    }
    s.generation += 1;
    s.rows = rows;
    s.log = log;
    s.problem = problem;
    s.notices.append(notices);
    drop(s);
    wake();
}

impl Worker {
    fn say(&mut self, level: ToastLevel, words: String) {
        self.notices.push((level, words));
    }

    fn act(&mut self, action: SessionAction) {
        match action {
            SessionAction::Select(id) => self.selected = id,
            SessionAction::ShowAll(all) => self.show_all = all,
            other => {
                let Some(sessions) = self.sessions.as_mut() else {
                    self.say(
                        ToastLevel::Error,
                        "sessions are not available (see the Sessions view)".into(),
                    );
                    return;
                };
                let result = match other {
                    SessionAction::Start {
                        name,
                        provider,
                        dir,
                        prompt,
                        command,
                        multiplexer,
                    } => {
                        let command: Vec<String> =
                            command.split_whitespace().map(str::to_owned).collect();
                        let provider = if command.is_empty() {
                            Provider::parse(&provider).unwrap_or(Provider::Claude)
                        } else {
                            Provider::Custom
                        };
                        let dir = if dir.is_empty() {
                            self.default_dir.clone()
                        } else {
                            PathBuf::from(dir)
                        };
                        sessions
                            .start(StartRequest {
                                id: None,
                                name,
                                provider,
                                dir,
                                prompt: (!prompt.is_empty()).then_some(prompt),
                                command,
                                metadata: serde_json::json!({}),
                                correlation_id: None,
                                multiplexer: candybar_sessions::Multiplexer::parse(&multiplexer),
                            })
                            .map(|s| {
                                self.selected = Some(s.id.clone());
                                format!("started {} in {}", s.name, s.dir.display())
                            })
                            .map_err(|e| e.to_string())
                    }
                    SessionAction::End { id, force } => sessions
                        .end(&id, force, END_GRACE)
                        .map(|s| format!("{}: {}", s.name, s.reason.as_deref().unwrap_or("ended")))
                        .map_err(|e| e.to_string()),
                    SessionAction::Pause { id, pause } => if pause {
                        sessions.pause(&id)
                    } else {
                        sessions.resume(&id)
                    }
                    .map(|s| format!("{} is {}", s.name, s.state.as_str()))
                    .map_err(|e| e.to_string()),
                    SessionAction::Send { id, text } => sessions
                        .send(&id, &text)
                        .map(|s| format!("sent to {}", s.name))
                        .map_err(|e| e.to_string()),
                    SessionAction::Attach(id) => sessions
                        .resolve(&id)
                        .map_err(|e| e.to_string())
                        .and_then(|s| {
                            let attach = sessions.mux.of(s.multiplexer).attach_command(&s.mux_name);
                            open_terminal(&attach, self.terminal.as_deref())
                        })
                        .map(|terminal| format!("opened {terminal} on the session")),
                    SessionAction::Select(_) | SessionAction::ShowAll(_) => return,
                };
                match result {
                    Ok(words) => self.say(ToastLevel::Info, words),
                    Err(e) => self.say(ToastLevel::Error, e),
                }
            }
        }
    }
}

/// Runs `attach` in the user's terminal emulator: `preferred` (`[sessions] terminal`), else
/// `$TERMINAL`, else the desktop's `x-terminal-emulator`, else the usual ones. The terminal's
/// name, or what to do.
fn open_terminal(
    attach: &std::process::Command,
    preferred: Option<&str>,
) -> Result<String, String> {
    let program = attach.get_program().to_owned();
    let args: Vec<std::ffi::OsString> = attach.get_args().map(ToOwned::to_owned).collect();
    let mut candidates: Vec<String> = preferred.map(str::to_owned).into_iter().collect();
    candidates.extend(std::env::var("TERMINAL").ok());
    candidates.extend(
        [
            "x-terminal-emulator",
            "gnome-terminal",
            "konsole",
            "xfce4-terminal",
            "alacritty",
            "kitty",
            "xterm",
        ]
        .map(str::to_owned),
    );
    for terminal in candidates {
        let Some(path) =
            candybar_sessions::manager::find_program(&terminal, std::path::Path::new("/"))
        else {
            continue;
        };
        // gnome-terminal takes the command after `--`; the others after `-e`.
        let separator = if terminal.ends_with("gnome-terminal") {
            "--"
        } else {
            "-e"
        };
        let mut c = std::process::Command::new(path);
        // The attach command's own environment (zellij's socket directory) goes with it.
        for (key, value) in attach.get_envs() {
            match value {
                Some(v) => c.env(key, v),
                None => c.env_remove(key),
            };
        }
        c.arg(separator)
            .arg(&program)
            .args(&args)
            .env_remove("TMUX")
            .env_remove("ZELLIJ")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        match c.spawn() {
            Ok(mut child) => {
                // Reaped when the person closes it.
                let _ = std::thread::Builder::new()
                    .name("terminal".into())
                    .spawn(move || child.wait());
                return Ok(terminal);
            }
            Err(e) => tracing::info!("{terminal}: {e}"),
        }
    }
    Err(format!(
        "no terminal emulator found: set $TERMINAL, or attach from one with `{}`",
        std::iter::once(program.to_string_lossy().into_owned())
            .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(" ")
    ))
}

/// Sessions other hosts announce on the bus (`jelmore.session.started|completed`), for the
/// Sessions view next to this host's own: read from the store as events arrive.
#[derive(Default)]
pub struct BusSessions {
    /// The next sequence number to look at.
    next_seq: u64,
    rows: std::collections::HashMap<String, SessionRow>,
}

impl BusSessions {
    /// Reads the events that arrived since the last call; whether a row changed.
    pub fn scan(&mut self, store: &candybar_core::store::EventStore) -> bool {
        let interner = store.interner();
        let Some(started) = interner.lookup(candybar_sessions::events::STARTED) else {
            self.next_seq = store.end_seq();
            return false;
        };
        let others = [
            candybar_sessions::events::COMPLETED,
            candybar_sessions::events::PAUSED,
            candybar_sessions::events::RESUMED,
        ]
        .map(|k| interner.lookup(k));
        let from = self.next_seq.max(store.first_seq());
        let mut hits = Vec::new();
        for view in store.blocks_from(from) {
            let first = view.first_seq();
            for (i, m) in view.metas().enumerate() {
                let seq = first + i as u64;
                if seq >= from && (m.kind == started || others.contains(&Some(m.kind))) {
                    hits.push(seq);
                }
            }
        }
        self.next_seq = store.end_seq();
        let mut changed = false;
        for seq in hits {
            if let Some(e) = store.get(seq) {
                changed |= self.read(&e);
            }
        }
        changed
    }

    /// One lifecycle event into its row.
    fn read(&mut self, e: &candybar_core::event::Event) -> bool {
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(&e.body) else {
            return false;
        };
        let payload = body
            .get("payload")
            .or_else(|| body.get("data"))
            .unwrap_or(&body);
        let text = |v: &serde_json::Value, k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let Some(id) = text(payload, "session_id") else {
            return false;
        };
        let at = e.published_us.unwrap_or(e.received_us);
        let row = self.rows.entry(id.clone()).or_insert_with(|| SessionRow {
            id,
            state: "active".into(),
            created_us: at,
            ..SessionRow::default()
        });
        if e.kind == candybar_sessions::events::STARTED {
            row.name = text(payload, "agent_id").unwrap_or_else(|| row.id.clone());
            row.provider = text(payload, "provider").unwrap_or_default();
            row.dir = text(payload, "worktree_path").unwrap_or_default();
            row.host = text(payload, "host")
                .or_else(|| {
                    body.pointer("/source/host")
                        .and_then(|h| h.as_str().map(str::to_owned))
                })
                .unwrap_or_else(|| "another host".into());
            row.created_us = at;
            row.command = payload
                .get("command")
                .and_then(serde_json::Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(serde_json::Value::as_str)
                        .map(candybar_core::redact::mask_secrets_in)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
        } else if e.kind == candybar_sessions::events::PAUSED {
            if row.ended_us.is_none() {
                row.state = "paused".into();
            }
        } else if e.kind == candybar_sessions::events::RESUMED {
            if row.ended_us.is_none() {
                row.state = "active".into();
            }
        } else {
            let ok = payload.get("success").and_then(serde_json::Value::as_bool) == Some(true);
            row.state = if ok { "terminated" } else { "failed" }.into();
            row.ended_us = Some(at);
            row.reason = text(payload, "reason");
            if let Some(summary) = text(payload, "summary") {
                summary
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .clone_into(&mut row.last_line);
            }
        }
        true
    }

    /// `own` (this host's sessions, as the worker sees them) and the others seen on the bus that
    /// are not among them, newest first; ended ones only with `all`.
    pub fn merged(&self, own: &[SessionRow], all: bool) -> Vec<SessionRow> {
        let mut rows = own.to_vec();
        rows.extend(
            self.rows
                .values()
                .filter(|r| !own.iter().any(|o| o.id == r.id))
                .filter(|r| all || !matches!(r.state.as_str(), "terminated" | "failed"))
                .cloned(),
        );
        rows.sort_by_key(|r| std::cmp::Reverse(r.created_us));
        rows
    }
}
