//! Starting, watching and ending sessions: tmux runs them, the store remembers them, and every
//! change of life (started, completed, a command) is queued for the bus with the change itself.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candybar_core::time::{Micros, now_us};

use crate::detect;
use crate::events;
use crate::model::{Multiplexer, Provider, Session, SessionState};
use crate::mux::{Launch, Mux, MuxError, mux_name};
use crate::redis_state::{RedisState, RedisStateError};
use crate::store::{Outgoing, ProviderSummary, SqliteStore, StoreError};

/// How quiet a session must be before its screen is read for a question.
const QUIET_BEFORE_ASKING_US: Micros = 1_500_000;
/// How much of a log's end is read for its last lines.
const LOG_TAIL_BYTES: u64 = 16 * 1024;
/// Longest session name.
const NAME_MAX_CHARS: usize = 64;
/// An `end` that left its marker longer ago than this died on the way: refresh takes over.
const ENDING_MAX_US: Micros = 120_000_000;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Redis(#[from] RedisStateError),
    #[error(transparent)]
    Mux(#[from] MuxError),
    #[error("{0}")]
    Invalid(String),
    #[error("no session {0:?}: `candybar session list --all` shows them")]
    NotFound(String),
    #[error("{key:?} names more than one session ({ids}): give more of the id")]
    Ambiguous { key: String, ids: String },
    #[error("session {name} ({id}) has already ended ({state})")]
    Ended {
        name: String,
        id: String,
        state: &'static str,
    },
    #[error("session {id} is already {what}")]
    Already { id: String, what: &'static str },
    #[error("cannot keep the session's log in {path}: {reason}")]
    Log {
        path: PathBuf,
        reason: std::io::Error,
    },
}

/// What `session start` asks for.
#[derive(Clone, Debug)]
pub struct StartRequest {
    /// The session's id when the requester chose one (else a new UUID).
    pub id: Option<String>,
    pub name: String,
    pub provider: Provider,
    pub dir: PathBuf,
    pub prompt: Option<String>,
    /// The program and its arguments; empty: the provider's CLI.
    pub command: Vec<String>,
    pub metadata: serde_json::Value,
    pub correlation_id: Option<String>,
    /// tmux or zellij; `None`: the configured one, else tmux where installed, else zellij.
    pub multiplexer: Option<Multiplexer>,
}

/// Where sessions are kept.
pub enum StateStore {
    /// In the local SQLite database (with the outbox).
    Local,
    /// In Redis, shared by the hosts that point at it.
    Redis(Box<RedisState>),
}

/// Sessions on this host.
pub struct Sessions {
    /// The outbox and the requests handled — and the sessions, unless `state` says Redis.
    pub store: SqliteStore,
    pub state: StateStore,
    pub mux: Mux,
    /// Logs and exit statuses live here.
    logs: PathBuf,
    pub host: String,
    /// No output for this long: idle.
    pub idle_us: Micros,
    /// Per session: the output time its screen was last read for, and whether it asked.
    screens_read: std::collections::HashMap<String, (Micros, bool)>,
}

impl Sessions {
    pub fn new(store: SqliteStore, mux: impl Into<Mux>, logs: PathBuf, idle: Duration) -> Self {
        Self {
            store,
            state: StateStore::Local,
            mux: mux.into(),
            // Absolute: a zellij session's relay runs in the session's directory.
            logs: std::path::absolute(&logs).unwrap_or(logs),
            host: candybar_bus::host_name(),
            idle_us: idle.as_micros().min(i64::MAX as u128) as Micros,
            screens_read: std::collections::HashMap::new(),
        }
    }

    /// Keeps sessions in Redis instead of the local database.
    #[must_use]
    pub fn with_redis(mut self, redis: RedisState) -> Self {
        self.state = StateStore::Redis(Box::new(redis));
        self
    }

    /// Keeps `session` and queues `events` with it; a session that has ended is kept (and
    /// announced) only by the candybar that saw it running: whether this one did.
    pub fn save(&mut self, session: &Session, events: &[Outgoing]) -> Result<bool, SessionError> {
        match &mut self.state {
            StateStore::Local => Ok(self.store.save(session, events)?),
            StateStore::Redis(r) => {
                let kept = r.save(session)?;
                if kept {
                    self.store.queue(events)?;
                }
                Ok(kept)
            }
        }
    }

    pub fn get(&mut self, id: &str) -> Result<Option<Session>, SessionError> {
        Ok(match &mut self.state {
            StateStore::Local => self.store.get(id)?,
            StateStore::Redis(r) => r.get(id)?,
        })
    }

    /// Sessions newest first: the running ones (of every host), or all when `all`.
    pub fn list(&mut self, all: bool, limit: usize) -> Result<Vec<Session>, SessionError> {
        Ok(match &mut self.state {
            StateStore::Local => self.store.list(all, limit)?,
            StateStore::Redis(r) => r.list(all, limit)?,
        })
    }

    fn by_name(&mut self, name: &str) -> Result<Vec<Session>, SessionError> {
        Ok(match &mut self.state {
            StateStore::Local => self.store.by_name(name)?,
            StateStore::Redis(r) => r.by_name(name)?,
        })
    }

    fn by_prefix(&mut self, prefix: &str) -> Result<Vec<Session>, SessionError> {
        Ok(match &mut self.state {
            StateStore::Local => self.store.by_prefix(prefix)?,
            StateStore::Redis(r) => r.by_prefix(prefix)?,
        })
    }

    /// Per provider: sessions running, failed since `since_us`, and the newest session (of the
    /// newest 10,000).
    pub fn provider_summary(
        &mut self,
        since_us: Micros,
    ) -> Result<Vec<ProviderSummary>, SessionError> {
        let recent = self.list(true, 10_000)?;
        Ok(crate::store::summarise(&recent, since_us))
    }

    fn exit_file(&self, s: &Session) -> PathBuf {
        self.logs.join(format!("{}.exit", s.id))
    }

    /// Where a zellij session's relay keeps its process id.
    fn pid_file(&self, s: &Session) -> PathBuf {
        self.logs.join(format!("{}.pid", s.id))
    }

    /// Stops or continues the session's processes (see [`Mux::signal_stop`]).
    fn signal_stop(&self, s: &Session, pause: bool) -> Result<(), MuxError> {
        self.mux
            .signal_stop(s.multiplexer, &s.mux_name, &self.pid_file(s), pause)
    }

    /// Present while `end` ends the session: `refresh` leaves it to `end`.
    fn ending_file(&self, s: &Session) -> PathBuf {
        self.logs.join(format!("{}.ending", s.id))
    }

    /// Starts a session; it runs detached in tmux (or zellij) with its output logged. The
    /// `jelmore.session.started` event is queued with it.
    pub fn start(&mut self, req: StartRequest) -> Result<Session, SessionError> {
        let name = req.name.trim().to_owned();
        if name.is_empty()
            || name.chars().count() > NAME_MAX_CHARS
            || name.chars().any(char::is_control)
        {
            return Err(SessionError::Invalid(format!(
                "a session name is 1 to {NAME_MAX_CHARS} printable characters, not {:?}",
                req.name
            )));
        }
        let dir = std::fs::canonicalize(&req.dir)
            .ok()
            .filter(|d| d.is_dir())
            .ok_or_else(|| {
                SessionError::Invalid(format!(
                    "no directory {}: give an existing one with --dir",
                    req.dir.display()
                ))
            })?;
        let command = if req.command.is_empty() {
            req.provider
                .command(req.prompt.as_deref())
                .ok_or_else(|| {
                    SessionError::Invalid(
                        "a custom session needs its command: `candybar session start NAME -- COMMAND ARGS…`"
                            .into(),
                    )
                })?
        } else {
            req.command.clone()
        };
        check_program(&command, req.provider, &dir)?;
        let multiplexer = self.mux.choose(req.multiplexer)?;
        self.refresh()?;
        if let Some(twin) = self
            .by_name(&name)?
            .into_iter()
            .find(|s| s.state.is_running())
        {
            return Err(SessionError::Invalid(format!(
                "a session named {name:?} is running ({}): end it, or choose another name",
                twin.short_id()
            )));
        }
        std::fs::create_dir_all(&self.logs).map_err(|reason| SessionError::Log {
            path: self.logs.clone(),
            reason,
        })?;
        let id = match req.id {
            Some(id) if self.get(&id)?.is_some() => {
                return Err(SessionError::Invalid(format!(
                    "a session with id {id} exists already"
                )));
            }
            Some(id) => id,
            None => uuid::Uuid::new_v4().to_string(),
        };
        let log = self.logs.join(format!("{id}.log"));
        std::fs::File::create(&log).map_err(|reason| SessionError::Log {
            path: log.clone(),
            reason,
        })?;
        let mut session = Session {
            multiplexer,
            mux_name: mux_name(&name, &id),
            id,
            name,
            provider: req.provider,
            dir,
            command,
            prompt: req.prompt,
            host: self.host.clone(),
            log,
            state: SessionState::Initializing,
            created_us: now_us(),
            ended_us: None,
            exit_code: None,
            last_output_us: None,
            last_line: String::new(),
            reason: None,
            prompt_count: 0,
            metadata: req.metadata,
            correlation_id: req.correlation_id,
            paused_us: None,
        };
        session.prompt_count = u32::from(session.prompt.is_some());
        self.mux.of(multiplexer).start(&Launch {
            name: &session.mux_name,
            dir: &session.dir,
            command: &session.command,
            log: &session.log,
            exit_file: &self.exit_file(&session),
            pid_file: &self.pid_file(&session),
        })?;
        self.save(&session, &[events::started(&session)])?;
        Ok(session)
    }

    /// Brings the state of this host's running sessions up to date (output, questions, exits);
    /// a session that ended is marked so once, with its `jelmore.session.completed`.
    pub fn refresh(&mut self) -> Result<(), SessionError> {
        let running: Vec<Session> = self
            .list(false, usize::MAX)?
            .into_iter()
            .filter(|s| s.host == self.host)
            .collect();
        if running.is_empty() {
            return Ok(());
        }
        // Each multiplexer is asked once, and only for a session it cannot tell otherwise.
        let mut listed: std::collections::HashMap<Multiplexer, std::collections::HashSet<String>> =
            std::collections::HashMap::new();
        let now = now_us();
        for before in running {
            if file_mtime(&self.ending_file(&before)).is_some_and(|t| now - t < ENDING_MAX_US) {
                continue;
            }
            let mut s = before.clone();
            // Alive is looked at before the exit status is read: a command that ends writes its
            // status before its session goes, so one gone without a status never had one (read
            // the other way round, a session ending in between looked killed).
            let alive = self.alive(&s, &mut listed)?;
            let exit = std::fs::read_to_string(self.exit_file(&s))
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok());
            let tail = log_tail(&s.log);
            if let Some(line) = tail.last() {
                line.clone_into(&mut s.last_line);
            }
            s.last_output_us = log_mtime(&s.log).or(s.last_output_us);
            if let Some(code) = exit {
                s.exit_code = Some(code);
                s.ended_us = Some(file_mtime(&self.exit_file(&s)).unwrap_or(now));
                if code == 0 {
                    s.state = SessionState::Terminated;
                    s.reason = Some("exited with 0".into());
                } else {
                    s.state = SessionState::Failed;
                    s.reason = Some(format!("exited with {code}"));
                }
            } else if !alive {
                // What is left of it (a zellij session whose relay was killed) goes too.
                if s.multiplexer == Multiplexer::Zellij {
                    let _ = self.mux.of(s.multiplexer).kill(&s.mux_name);
                }
                s.state = SessionState::Failed;
                s.ended_us = Some(now);
                s.reason = Some(match s.multiplexer {
                    Multiplexer::Tmux => "ended without an exit status: killed from outside, or its tmux server stopped".into(),
                    Multiplexer::Zellij => "ended without an exit status: killed from outside (its zellij session is gone)".into(),
                });
            } else if s.state != SessionState::Paused {
                s.state = self.running_state(&s, now);
            }
            if !s.state.is_running() {
                self.screens_read.remove(&s.id);
            }
            if s != before {
                let events = if s.state.is_running() {
                    Vec::new()
                } else {
                    vec![events::completed(&s, &tail.join("\n"), now)]
                };
                self.save(&s, &events)?;
            }
        }
        Ok(())
    }

    /// Whether `s` still runs in its multiplexer; `listed` keeps what each was asked.
    fn alive(
        &self,
        s: &Session,
        listed: &mut std::collections::HashMap<Multiplexer, std::collections::HashSet<String>>,
    ) -> Result<bool, SessionError> {
        let mux = self.mux.of(s.multiplexer);
        if let Some(alive) = mux.is_alive(&s.mux_name, &self.pid_file(s)) {
            return Ok(alive);
        }
        let names = match listed.entry(s.multiplexer) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(mux.running()?),
        };
        Ok(names.contains(&s.mux_name))
    }

    /// A live session's state from its output's age and, when it has gone quiet, its screen.
    /// The screen changes only with output, so it is read once per quiet spell (a session that
    /// waits for an hour is not asked of tmux every second).
    fn running_state(&mut self, s: &Session, now: Micros) -> SessionState {
        let Some(last) = s.last_output_us.filter(|_| log_len(&s.log) > 0) else {
            return SessionState::Initializing;
        };
        let quiet = now - last;
        let asks = quiet >= QUIET_BEFORE_ASKING_US
            && match self.screens_read.get(&s.id) {
                Some(&(read_for, asks)) if read_for == last => asks,
                _ => {
                    let asks = self
                        .mux
                        .of(s.multiplexer)
                        .screen(&s.mux_name)
                        .is_ok_and(|screen| detect::asks_for_input(&screen));
                    self.screens_read.insert(s.id.clone(), (last, asks));
                    asks
                }
            };
        if asks {
            return SessionState::WaitingInput;
        }
        if quiet >= self.idle_us {
            SessionState::Idle
        } else {
            SessionState::Active
        }
    }

    /// The session `key` names: its id, a unique start of it (4 characters or more), or its
    /// name (the running one, else the newest).
    pub fn resolve(&mut self, key: &str) -> Result<Session, SessionError> {
        let key = key.trim();
        // A running session's name first: an id a requester chose cannot shadow it.
        let named = self.by_name(key)?;
        if let Some(s) = named.iter().find(|s| s.state.is_running()) {
            return Ok(s.clone());
        }
        if let Some(s) = self.get(key)? {
            return Ok(s);
        }
        if let Some(s) = named.into_iter().next() {
            return Ok(s);
        }
        if key.len() >= 4 {
            let found = self.by_prefix(key)?;
            match found.len() {
                0 => {}
                1 => return Ok(found.into_iter().next().expect("one")),
                _ => {
                    return Err(SessionError::Ambiguous {
                        key: key.to_owned(),
                        ids: found
                            .iter()
                            .map(Session::short_id)
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            }
        }
        Err(SessionError::NotFound(key.to_owned()))
    }

    fn running(&mut self, key: &str) -> Result<Session, SessionError> {
        let s = self.resolve(key)?;
        if s.state.is_running() {
            Ok(s)
        } else {
            Err(SessionError::Ended {
                id: s.short_id().to_owned(),
                name: s.name,
                state: s.state.as_str(),
            })
        }
    }

    /// Ends a session: Ctrl-C (twice, as agent CLIs want), then the session is closed after
    /// `grace`; `force` closes it at once.
    pub fn end(
        &mut self,
        key: &str,
        force: bool,
        grace: Duration,
    ) -> Result<Session, SessionError> {
        self.refresh()?;
        let mut s = self.running(key)?;
        if s.state == SessionState::Paused {
            // A stopped process hears no Ctrl-C (nor the hang-up) until it runs again.
            let _ = self.signal_stop(&s, false);
        }
        let exit_file = self.exit_file(&s);
        let ending = self.ending_file(&s);
        // Other candybars' refreshes leave it to this one meanwhile.
        let _ = std::fs::write(&ending, b"");
        let mux = self.mux.of(s.multiplexer);
        let gone = || {
            exit_file.exists()
                || self
                    .alive(&s, &mut std::collections::HashMap::new())
                    .is_ok_and(|alive| !alive)
        };
        if !force {
            let until = Instant::now() + grace;
            let mut presses = 0;
            while !gone() && Instant::now() < until {
                if presses < 2 {
                    let _ = mux.interrupt(&s.mux_name);
                    presses += 1;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let closed = !gone();
        if closed {
            mux.kill(&s.mux_name)?;
        }
        let now = now_us();
        let tail = log_tail(&s.log);
        s.exit_code = std::fs::read_to_string(&exit_file)
            .ok()
            .and_then(|t| t.trim().parse().ok());
        s.state = SessionState::Terminated;
        s.ended_us = Some(now);
        s.last_output_us = log_mtime(&s.log).or(s.last_output_us);
        if let Some(line) = tail.last() {
            line.clone_into(&mut s.last_line);
        }
        s.reason = Some(match (force, closed, s.exit_code) {
            (true, _, _) => "ended by the user (--force)".into(),
            (false, true, _) => "ended by the user (closed: Ctrl-C went unanswered)".into(),
            (false, false, Some(code)) => format!("ended by the user (Ctrl-C; exited with {code})"),
            (false, false, None) => "ended by the user (Ctrl-C)".into(),
        });
        let kept = self.save(&s, &[events::completed(&s, &tail.join("\n"), now)]);
        let _ = std::fs::remove_file(&ending);
        if !kept? {
            // Another candybar saw it end first: what it kept is what happened.
            return self
                .get(&s.id)?
                .ok_or_else(|| SessionError::NotFound(s.id.clone()));
        }
        Ok(s)
    }

    /// Pauses a running session (SIGSTOP to its processes): it keeps its memory and its place,
    /// prints nothing and uses no CPU until [`Self::resume`].
    pub fn pause(&mut self, key: &str) -> Result<Session, SessionError> {
        self.refresh()?;
        let mut s = self.running(key)?;
        if s.state == SessionState::Paused {
            return Err(SessionError::Already {
                id: s.short_id().to_owned(),
                what: "paused",
            });
        }
        if let Err(e) = self.signal_stop(&s, true) {
            self.save(&s, &[events::command(&s, "pause", Some(&e.to_string()))])?;
            return Err(e.into());
        }
        let now = now_us();
        s.state = SessionState::Paused;
        s.paused_us = Some(now);
        self.save(&s, &[events::paused(&s, now)])?;
        Ok(s)
    }

    /// Continues a paused session (SIGCONT); its state is read again from its output.
    pub fn resume(&mut self, key: &str) -> Result<Session, SessionError> {
        self.refresh()?;
        let mut s = self.running(key)?;
        if s.state != SessionState::Paused {
            return Err(SessionError::Already {
                id: s.short_id().to_owned(),
                what: "running (not paused)",
            });
        }
        if let Err(e) = self.signal_stop(&s, false) {
            self.save(&s, &[events::command(&s, "resume", Some(&e.to_string()))])?;
            return Err(e.into());
        }
        let now = now_us();
        let since = s.paused_us.take().unwrap_or(now);
        s.state = self.running_state(&s, now);
        self.save(&s, &[events::resumed(&s, since, now)])?;
        Ok(s)
    }

    /// Types `text` and Enter into a running session (an answer, the next prompt).
    pub fn send(&mut self, key: &str, text: &str) -> Result<Session, SessionError> {
        let mut s = self.running(key)?;
        match self.mux.of(s.multiplexer).send_line(&s.mux_name, text) {
            Ok(()) => {
                s.prompt_count += 1;
                self.save(&s, &[events::command(&s, "send", None)])?;
                Ok(s)
            }
            Err(e) => {
                self.save(&s, &[events::command(&s, "send", Some(&e.to_string()))])?;
                Err(e.into())
            }
        }
    }
}

/// The command's program can be run from `dir`, or what to do.
fn check_program(command: &[String], provider: Provider, dir: &Path) -> Result<(), SessionError> {
    let program = command.first().map(String::as_str).unwrap_or_default();
    if find_program(program, dir).is_some() {
        return Ok(());
    }
    Err(SessionError::Invalid(format!(
        "no command {program:?} (not on PATH, or not executable){}",
        match provider {
            Provider::Custom => String::new(),
            p => format!(": install the {} CLI, or give `-- COMMAND`", p.as_str()),
        }
    )))
}

/// `program` as the session would run it: a path (relative to `dir`) or a name on `PATH`,
/// executable.
pub fn find_program(program: &str, dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.is_empty() {
        return None;
    }
    if program.contains('/') {
        let p = dir.join(program);
        return executable(&p).then_some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| executable(p))
}

fn file_mtime(path: &Path) -> Option<Micros> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(since.as_micros().min(i64::MAX as u128) as Micros)
}

fn log_mtime(path: &Path) -> Option<Micros> {
    (log_len(path) > 0).then(|| file_mtime(path)).flatten()
}

fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The last few lines a session printed, as text.
pub fn log_tail(path: &Path) -> Vec<String> {
    let text = tail_text(path, LOG_TAIL_BYTES);
    detect::last_lines(&text, 5)
        .into_iter()
        .map(|l| l.chars().take(300).collect())
        .collect()
}

/// The last `max_bytes` of the log at `path` as a person reads them (escape sequences removed);
/// empty when there is no log.
pub fn tail_text(path: &Path, max_bytes: u64) -> String {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max_bytes)));
    let mut bytes = Vec::new();
    let _ = f.take(max_bytes).read_to_end(&mut bytes);
    detect::plain(&bytes)
}
