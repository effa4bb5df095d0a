//! `candybar session …` and `candybar agent status`: coding-agent sessions run in tmux or
//! zellij, their
//! state kept in SQLite, their lifecycle published on the bus.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use candybar_bus::publish::Publisher;
use candybar_core::time::{checked_secs, format_span, now_us};
use candybar_sessions::{
    Multiplexer, Mux, MuxSocket, Provider, Session, SessionError, Sessions, SqliteStore,
    StartRequest, Tmux, Zellij,
};
use clap::builder::TypedValueParser as _;
use clap::{Args, Subcommand, ValueEnum};

use super::{Settings, SourceArgs};

/// A session that printed nothing for this long is idle, unless `[sessions] idle_secs` says.
const DEFAULT_IDLE_SECS: f64 = 120.0;
/// How long `end` waits after Ctrl-C before closing the session.
const DEFAULT_GRACE_SECS: f64 = 5.0;

#[derive(Subcommand, Debug)]
pub enum SessionCommand {
    /// Start an agent CLI (or any command) in a detached tmux or zellij session (`--mux`), its
    /// output logged; prints the session's id. tmux sessions run on tmux's server named
    /// `candybar` (`tmux -L candybar ls`; `[sessions] tmux_socket` or `CANDYBAR_TMUX_SOCKET`
    /// picks another); zellij sessions are named `cb-NAME-ID` (`zellij ls`).
    Start(StartArgs),
    /// The sessions: running ones, or `--all`.
    List(ListArgs),
    /// One session: state, command, directory, last lines.
    Status(IdArgs),
    /// What a session printed (`--follow` until it ends).
    Logs(LogsArgs),
    /// Attach this terminal to a session (detach again with Ctrl-B d in tmux, Ctrl-O d in
    /// zellij).
    Attach(IdArgs),
    /// Type a line into a session and press Enter (an answer, the next prompt).
    Send(SendArgs),
    /// End a session: Ctrl-C, then close it after a grace period (`--force`: at once).
    End(EndArgs),
    /// Pause a session: its processes are stopped (SIGSTOP) and keep their place until resumed;
    /// announced as `jelmore.session.paused`.
    Pause(IdArgs),
    /// Resume a paused session (SIGCONT); announced as `jelmore.session.resumed`.
    Resume(IdArgs),
    /// The headless control plane: start (or continue) sessions other services request on the
    /// bus (`agent.session.requested`), publish their lifecycle, keep their states current.
    Serve(ServeArgs),
    /// What runs in a zellij session's pane: the command on a terminal of its own, every byte
    /// it prints logged (zellij has no `pipe-pane`), its exit status kept.
    #[command(hide = true)]
    Relay(RelayArgs),
}

#[derive(Args, Debug)]
pub struct RelayArgs {
    #[arg(long, value_name = "FILE")]
    log: PathBuf,
    #[arg(long, value_name = "FILE")]
    exit_file: PathBuf,
    #[arg(long, value_name = "FILE")]
    pid_file: PathBuf,
    /// Where the command runs
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The zellij program: the session is closed with it when the command has ended
    #[arg(long, value_name = "PROGRAM", requires = "session")]
    close_zellij: Option<PathBuf>,
    #[arg(long, value_name = "NAME")]
    session: Option<String>,
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum WorkflowCommand {
    /// Run a workflow (NAME.toml in the workflows directory, or a path): its steps in order of
    /// their needs, progress printed and published on the bus. Exit code 1 when a step failed.
    Run(WorkflowRunArgs),
    /// The workflows there are, with their steps (or why a file does not read).
    List(WorkflowDirArgs),
}

#[derive(Args, Debug)]
pub struct WorkflowDirArgs {
    /// Where workflows are [default: workflows in the config dir; env: `CANDYBAR_WORKFLOWS`]
    #[arg(long, value_name = "DIR", global = true)]
    workflows: Option<PathBuf>,
    #[command(flatten)]
    state: StateArgs,
}

#[derive(Args, Debug)]
pub struct WorkflowRunArgs {
    /// The workflow's name (or a .toml file)
    name: String,
    /// Where its steps run unless they say [default: the current directory]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(flatten)]
    place: WorkflowDirArgs,
}

#[derive(Subcommand, Debug)]
pub enum AgentCommand {
    /// Per provider: sessions running, failures in the last 24 hours, the last output.
    Status(FormatArgs),
}

#[derive(Args, Debug)]
pub struct StateArgs {
    /// Where the sessions' database and logs live [default: sessions in the data dir; env:
    /// `CANDYBAR_SESSIONS_DIR`]
    #[arg(long, value_name = "DIR", global = true)]
    sessions_dir: Option<PathBuf>,
    /// Where sessions are kept: sqlite (this host) or `redis://HOST[:PORT][/DB]` (shared by
    /// hosts) [default: `[sessions] state`, else sqlite; env: `CANDYBAR_SESSIONS_STATE`]
    #[arg(long, value_name = "URL", global = true)]
    state: Option<String>,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// The session's name (unique among running sessions)
    name: String,
    /// The agent CLI to run: claude, gemini, codex, or custom (then give `-- COMMAND`)
    #[arg(long, value_parser = provider_parser(), default_value = "claude")]
    provider: Provider,
    /// The working directory (the worktree) [default: the current one]
    #[arg(long, value_name = "PATH")]
    dir: Option<PathBuf>,
    /// The first prompt, given to the agent CLI
    #[arg(long, value_name = "TEXT")]
    prompt: Option<String>,
    /// JSON kept with the session and sent in its events
    #[arg(long, value_name = "JSON")]
    metadata: Option<String>,
    /// The terminal multiplexer it runs in: tmux or zellij [default: `[sessions] multiplexer`,
    /// else tmux where installed, else zellij]
    #[arg(long, value_name = "NAME", value_parser = mux_parser(), help = mux_help())]
    mux: Option<Multiplexer>,
    /// The command to run instead of the provider's CLI
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
    #[command(flatten)]
    state: StateArgs,
}

fn mux_parser() -> impl clap::builder::TypedValueParser<Value = Multiplexer> {
    clap::builder::PossibleValuesParser::new(Multiplexer::ALL.map(Multiplexer::as_str))
        // The parser lets only known names through.
        .map(|s| Multiplexer::parse(&s).unwrap_or_default())
}

/// `--mux`'s help, saying which multiplexer a session gets here (from `PATH`: no program is
/// run to build the help).
fn mux_help() -> String {
    let on_path =
        |p: &str| candybar_sessions::manager::find_program(p, std::path::Path::new("/")).is_some();
    let zellij =
        std::env::var("CANDYBAR_ZELLIJ").map_or_else(|_| on_path("zellij"), |p| on_path(&p));
    let here = match std::env::var("CANDYBAR_MULTIPLEXER").ok().as_deref() {
        Some("tmux") => "tmux (CANDYBAR_MULTIPLEXER)",
        Some("zellij") => "zellij (CANDYBAR_MULTIPLEXER)",
        _ => match (on_path("tmux"), zellij) {
            (true, true) => "tmux (zellij is installed too)",
            (true, false) => "tmux (zellij is not installed)",
            (false, true) => "zellij (tmux is not installed)",
            (false, false) => "neither is installed: install tmux or zellij",
        },
    };
    format!(
        "The terminal multiplexer it runs in: tmux or zellij [default: `[sessions] multiplexer`, \
         else tmux where installed, else zellij; on this machine: {here}]"
    )
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq, Default)]
pub enum ListFormat {
    /// A table for people.
    #[default]
    Table,
    /// JSON: an array of sessions (or one, for `status`).
    Json,
}

#[derive(Args, Debug)]
pub struct FormatArgs {
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    format: ListFormat,
    #[command(flatten)]
    state: StateArgs,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Also the sessions that ended
    #[arg(long)]
    all: bool,
    /// At most this many (newest first)
    #[arg(long, value_name = "N", default_value_t = 1000)]
    limit: usize,
    #[command(flatten)]
    format: FormatArgs,
}

#[derive(Args, Debug)]
pub struct IdArgs {
    /// The session: its id, the start of it, or its name
    id: String,
    #[command(flatten)]
    format: FormatArgs,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The session: its id, the start of it, or its name
    id: String,
    /// Keep printing until the session ends
    #[arg(long, short = 'f')]
    follow: bool,
    /// As the terminal received it (escape sequences kept)
    #[arg(long)]
    raw: bool,
    #[command(flatten)]
    state: StateArgs,
}

#[derive(Args, Debug)]
pub struct SendArgs {
    /// The session: its id, the start of it, or its name
    id: String,
    /// What to type
    text: String,
    #[command(flatten)]
    state: StateArgs,
}

#[derive(Args, Debug)]
pub struct EndArgs {
    /// The session: its id, the start of it, or its name
    id: String,
    /// Close it at once, without Ctrl-C first
    #[arg(long)]
    force: bool,
    /// Seconds to wait after Ctrl-C before closing it
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_GRACE_SECS)]
    grace: f64,
    #[command(flatten)]
    state: StateArgs,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Sessions running on this host at most; further requests wait on the broker
    #[arg(long, value_name = "N", default_value_t = 4)]
    max_running: usize,
    /// Where a request without a worktree runs [default: the current directory]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Requests' worktrees (`metadata.worktree_path`) must lie inside this directory
    /// [default: --dir]
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Let requests run a command of their own (`provider: custom`, `metadata.command`):
    /// anyone who can publish on the exchange could then run anything here
    #[arg(long)]
    allow_custom: bool,
    /// The durable queue requests are read from; every `session serve` sharing it gets its share
    #[arg(
        long,
        value_name = "NAME",
        default_value = "candybar.sessions.requests"
    )]
    requests_queue: String,
    #[command(flatten)]
    state: StateArgs,
}

fn provider_parser() -> impl clap::builder::TypedValueParser<Value = Provider> {
    clap::builder::PossibleValuesParser::new(Provider::ALL.map(Provider::as_str))
        // The parser lets only known names through.
        .map(|s| Provider::parse(&s).unwrap_or(Provider::Custom))
}

/// The sessions' directory: the flag, else `[sessions] dir` / `CANDYBAR_SESSIONS_DIR`, else
/// `sessions` in the data dir.
pub(crate) fn sessions_dir(
    flag: Option<&PathBuf>,
    section: &candybar_core::config::SessionsSection,
) -> anyhow::Result<PathBuf> {
    if let Some(p) = flag.cloned().or_else(|| section.dir.clone()) {
        return Ok(p);
    }
    directories::ProjectDirs::from("", "", "candybar")
        .map(|d| d.data_dir().join("sessions"))
        .context("no home directory to keep sessions in: give --sessions-dir DIR")
}

/// This host's sessions, as configured.
fn open(state: &StateArgs, settings: &Settings) -> anyhow::Result<Sessions> {
    open_with(
        state.sessions_dir.as_ref(),
        state.state.as_deref(),
        &settings.file.sessions,
    )
}

/// The sessions at the flags' directory and state, else the config's (`[sessions]`).
fn open_with(
    dir_flag: Option<&PathBuf>,
    state_flag: Option<&str>,
    section: &candybar_core::config::SessionsSection,
) -> anyhow::Result<Sessions> {
    let dir = sessions_dir(dir_flag, section)?;
    let store = SqliteStore::open(&dir.join("sessions.sqlite3"))?;
    let prefer = match section.multiplexer.as_deref() {
        None => None,
        Some(name) => Some(Multiplexer::parse(name).with_context(|| {
            format!("[sessions] multiplexer = {name:?}: give \"tmux\" or \"zellij\"")
        })?),
    };
    let mut zellij = Zellij::default();
    if let Some(program) = &section.zellij {
        zellij.program.clone_from(program);
    }
    zellij.socket_dir.clone_from(&section.zellij_socket_dir);
    let mux = Mux {
        tmux: Tmux::new(
            section
                .tmux_socket
                .clone()
                .map_or_else(MuxSocket::default, MuxSocket::Path),
        ),
        zellij,
        prefer,
    };
    let idle = checked_secs(
        section.idle_secs.unwrap_or(DEFAULT_IDLE_SECS),
        1.0,
        31_536_000.0,
        "[sessions] idle_secs",
    )
    .map_err(anyhow::Error::msg)?;
    let sessions = Sessions::new(store, mux, dir.join("logs"), idle);
    let backend = state_flag
        .map(str::to_owned)
        .or_else(|| section.state.clone())
        .unwrap_or_else(|| "sqlite".into());
    if backend == "sqlite" {
        return Ok(sessions);
    }
    if !backend.starts_with("redis://") && !backend.starts_with("rediss://") {
        anyhow::bail!(
            "--state {}: give sqlite or a redis:// URL",
            candybar_core::redact::mask_secrets_in(&backend)
        );
    }
    let keep = checked_secs(
        section.keep_days.unwrap_or(30.0) * 86_400.0,
        3600.0,
        3650.0 * 86_400.0,
        "[sessions] keep_days × 86,400",
    )
    .map_err(anyhow::Error::msg)?;
    let redis = candybar_sessions::redis_state::RedisState::open(&backend, keep)?;
    Ok(sessions.with_redis(redis))
}

/// What the window's sessions worker needs: the sessions as configured (opened on its own
/// thread), the broker their events go to, the directory a session starts in by default.
pub(crate) fn window_init(
    source: &SourceArgs,
    settings: &Settings,
    rt: tokio::runtime::Handle,
) -> crate::app::sessions::SessionsInit {
    let section = settings.file.sessions.clone();
    let terminal = section.terminal.clone();
    crate::app::sessions::SessionsInit {
        terminal,
        open: Box::new(move || open_with(None, None, &section)),
        broker: source
            .amqp_url(settings)
            .map(|url| (url, source.exchange(settings))),
        rt,
        default_dir: std::env::current_dir()
            .ok()
            .or_else(|| directories::BaseDirs::new().map(|d| d.home_dir().to_owned()))
            .unwrap_or_else(|| PathBuf::from("/")),
    }
}

/// Sends the queued lifecycle events to the broker, when one is configured; what cannot be
/// sent stays queued for the next time, and the person is told.
async fn deliver(sessions: &Sessions, source: &SourceArgs, settings: &Settings) {
    let Some(url) = source.amqp_url(settings) else {
        return;
    };
    let exchange = source.exchange(settings);
    let mut publisher = Publisher::new(url.expose(), &exchange);
    // A one-shot command tries everything queued, whatever the backoff says.
    match candybar_sessions::outbox::deliver(&sessions.store, &mut publisher, i64::MAX).await {
        Ok(r) if r.pending > 0 => eprintln!(
            "candybar: {} session event(s) wait for the broker ({}); they are sent by the next \
             session command",
            r.pending,
            candybar_core::redact::mask_secrets_in(r.error.as_deref().unwrap_or("not sent yet"))
        ),
        Ok(_) => {}
        Err(e) => eprintln!("candybar: {e}"),
    }
}

/// `session relay`: the command on a terminal of its own, its output logged; the command's
/// exit code.
fn relay(args: RelayArgs) -> ExitCode {
    let code = tokio::task::block_in_place(|| {
        candybar_sessions::relay::run(&candybar_sessions::relay::Relay {
            log: args.log,
            exit_file: args.exit_file,
            pid_file: args.pid_file,
            command: args.command,
            dir: args.dir,
            close: args.close_zellij.zip(args.session),
        })
    });
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// A session error as the person reads it; exit code 2.
fn refused(e: &SessionError) -> ExitCode {
    eprintln!("candybar: {e}");
    ExitCode::from(2)
}

pub async fn run(cmd: SessionCommand, source: &SourceArgs) -> anyhow::Result<ExitCode> {
    // In a zellij pane the relay reads no configuration (a broken one must not stop it).
    let cmd = match cmd {
        SessionCommand::Relay(args) => return Ok(relay(args)),
        cmd => cmd,
    };
    let settings = source.settings()?;
    match cmd {
        SessionCommand::Start(args) => start(args, source, &settings).await,
        SessionCommand::List(args) => {
            let mut sessions = open(&args.format.state, &settings)?;
            let refreshed = tokio::task::block_in_place(|| sessions.refresh());
            if let Err(e) = refreshed {
                return Ok(refused(&e));
            }
            let list = match sessions.list(args.all, args.limit) {
                Ok(l) => l,
                Err(e) => return Ok(refused(&e)),
            };
            deliver(&sessions, source, &settings).await;
            print_sessions(&list, args.format.format)?;
            Ok(ExitCode::SUCCESS)
        }
        SessionCommand::Status(args) => {
            let mut sessions = open(&args.format.state, &settings)?;
            let found = tokio::task::block_in_place(|| {
                sessions.refresh()?;
                sessions.resolve(&args.id)
            });
            deliver(&sessions, source, &settings).await;
            match found {
                Ok(s) => {
                    print_status(&s, args.format.format)?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(refused(&e)),
            }
        }
        SessionCommand::Logs(args) => logs(&args, &settings).await,
        SessionCommand::Attach(args) => attach(&args, &settings),
        SessionCommand::Send(args) => {
            let mut sessions = open(&args.state, &settings)?;
            let sent = tokio::task::block_in_place(|| {
                sessions.refresh()?;
                sessions.send(&args.id, &args.text)
            });
            deliver(&sessions, source, &settings).await;
            match sent {
                Ok(s) => {
                    eprintln!("candybar: sent to {} ({})", s.name, s.short_id());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(refused(&e)),
            }
        }
        SessionCommand::Serve(args) => serve(args, source, &settings).await,
        SessionCommand::Relay(args) => Ok(relay(args)),
        SessionCommand::Pause(args) => pause_or_resume(&args, true, source, &settings).await,
        SessionCommand::Resume(args) => pause_or_resume(&args, false, source, &settings).await,
        SessionCommand::End(args) => {
            let grace =
                checked_secs(args.grace, 0.0, 3600.0, "--grace").map_err(anyhow::Error::msg)?;
            let mut sessions = open(&args.state, &settings)?;
            let ended = tokio::task::block_in_place(|| sessions.end(&args.id, args.force, grace));
            deliver(&sessions, source, &settings).await;
            match ended {
                Ok(s) => {
                    println!(
                        "{} ({}) {}: {}",
                        s.name,
                        s.short_id(),
                        s.state.as_str(),
                        s.reason.as_deref().unwrap_or("")
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(refused(&e)),
            }
        }
    }
}

/// `session pause` / `session resume`: the session's new state, or why not.
async fn pause_or_resume(
    args: &IdArgs,
    pause: bool,
    source: &SourceArgs,
    settings: &Settings,
) -> anyhow::Result<ExitCode> {
    let mut sessions = open(&args.format.state, settings)?;
    let done = tokio::task::block_in_place(|| {
        if pause {
            sessions.pause(&args.id)
        } else {
            sessions.resume(&args.id)
        }
    });
    deliver(&sessions, source, settings).await;
    match done {
        Ok(s) => {
            print_status(&s, args.format.format)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(refused(&e)),
    }
}

async fn start(
    args: StartArgs,
    source: &SourceArgs,
    settings: &Settings,
) -> anyhow::Result<ExitCode> {
    let metadata = match args.metadata.as_deref() {
        None => serde_json::json!({}),
        Some(text) => match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("candybar: --metadata is not JSON: {e}");
                return Ok(ExitCode::from(2));
            }
        },
    };
    let dir = match args.dir {
        Some(d) => d,
        None => std::env::current_dir().context("no current directory: give --dir")?,
    };
    let provider = if args.command.is_empty() {
        args.provider
    } else if args.provider == Provider::Claude {
        // `-- COMMAND` without a provider: a custom session.
        Provider::Custom
    } else {
        args.provider
    };
    let mut sessions = open(&args.state, settings)?;
    let started = tokio::task::block_in_place(|| {
        sessions.start(StartRequest {
            id: None,
            name: args.name,
            provider,
            dir,
            prompt: args.prompt,
            command: args.command,
            metadata,
            correlation_id: None,
            multiplexer: args.mux,
        })
    });
    match started {
        Ok(s) => {
            println!("{}", s.id);
            eprintln!(
                "candybar: started {} in {} in {} ({}; `candybar session logs {}`)",
                s.name,
                s.dir.display(),
                s.multiplexer.as_str(),
                sessions.mux.of(s.multiplexer).attach_words(&s.mux_name),
                s.short_id()
            );
            deliver(&sessions, source, settings).await;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(refused(&e)),
    }
}

async fn logs(args: &LogsArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let mut sessions = open(&args.state, settings)?;
    let mut session = match sessions.resolve(&args.id) {
        Ok(s) => s,
        Err(e) => return Ok(refused(&e)),
    };
    let mut offset = 0u64;
    let mut stdout = std::io::stdout();
    let mut last_check = std::time::Instant::now();
    // Bytes after the last newline wait for the rest of their line (escape sequences and
    // redraws are read whole).
    let mut partial: Vec<u8> = Vec::new();
    loop {
        loop {
            let chunk = read_from(&session.log, &mut offset)?;
            if chunk.is_empty() {
                break;
            }
            if args.raw {
                stdout.write_all(&chunk)?;
                continue;
            }
            partial.extend_from_slice(&chunk);
            if let Some(end) = partial.iter().rposition(|&b| b == b'\n') {
                let whole: Vec<u8> = partial.drain(..=end).collect();
                writeln!(stdout, "{}", candybar_sessions::detect::plain(&whole))?;
            }
        }
        stdout.flush()?;
        if !args.follow || !session.state.is_running() {
            if !partial.is_empty() {
                writeln!(stdout, "{}", candybar_sessions::detect::plain(&partial))?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        if last_check.elapsed() >= Duration::from_secs(1) {
            last_check = std::time::Instant::now();
            let id = session.id.clone();
            session = tokio::task::block_in_place(|| {
                sessions.refresh()?;
                sessions.resolve(&id)
            })
            .unwrap_or(session);
        }
    }
}

/// The log's bytes from `offset` on (at most 4 MiB at a time); `offset` moves past them.
fn read_from(path: &std::path::Path, offset: &mut u64) -> anyhow::Result<Vec<u8>> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut f = std::fs::File::open(path)
        .with_context(|| format!("cannot read the session's log {}", path.display()))?;
    f.seek(SeekFrom::Start(*offset))?;
    let mut bytes = Vec::new();
    f.take(4 << 20).read_to_end(&mut bytes)?;
    *offset += bytes.len() as u64;
    Ok(bytes)
}

fn attach(args: &IdArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt as _;
    let mut sessions = open(&args.format.state, settings)?;
    let session = match sessions.resolve(&args.id) {
        Ok(s) if s.state.is_running() => s,
        Ok(s) => {
            return Ok(refused(&SessionError::Ended {
                id: s.short_id().to_owned(),
                state: s.state.as_str(),
                name: s.name,
            }));
        }
        Err(e) => return Ok(refused(&e)),
    };
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "candybar: attach needs a terminal; from a script, `candybar session logs {} --follow` follows it",
            session.short_id()
        );
        return Ok(ExitCode::from(2));
    }
    // Replaces this process; it returns only when the multiplexer could not be run.
    let e = sessions
        .mux
        .of(session.multiplexer)
        .attach_command(&session.mux_name)
        .env_remove("TMUX")
        .env_remove("ZELLIJ")
        .exec();
    eprintln!("candybar: cannot run {}: {e}", session.multiplexer.as_str());
    Ok(ExitCode::from(2))
}

pub async fn agent(cmd: AgentCommand, source: &SourceArgs) -> anyhow::Result<ExitCode> {
    let settings = source.settings()?;
    let AgentCommand::Status(args) = cmd;
    let mut sessions = open(&args.state, &settings)?;
    if let Err(e) = tokio::task::block_in_place(|| sessions.refresh()) {
        return Ok(refused(&e));
    }
    deliver(&sessions, source, &settings).await;
    let day_ago = now_us() - 86_400 * 1_000_000;
    let summary = match sessions.provider_summary(day_ago) {
        Ok(s) => s,
        Err(e) => return Ok(refused(&e)),
    };
    if args.format == ListFormat::Json {
        let rows: Vec<serde_json::Value> = summary
            .iter()
            .map(|p| {
                serde_json::json!({
                    "provider": p.provider.as_str(),
                    "running": p.running,
                    "failed_24h": p.failed,
                    "last_session": p.newest.as_ref().map(|s| &s.id),
                    "last_output": p.newest.as_ref().map(|s| &s.last_line),
                    "last_output_at": p.newest.as_ref().and_then(|s| s.last_output_us)
                        .map(candybar_core::time::format_rfc3339),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<8} {:>7} {:>10}  LAST OUTPUT",
        "PROVIDER", "RUNNING", "FAILED 24H"
    );
    let now = now_us();
    for p in &summary {
        let last = p.newest.as_ref().map_or_else(String::new, |s| {
            let age = s.last_output_us.map_or_else(
                || "no output".into(),
                |t| format!("{} ago", format_span(now - t)),
            );
            format!("{} ({}, {age}): {}", s.name, s.short_id(), s.last_line)
        });
        println!(
            "{:<8} {:>7} {:>10}  {last}",
            p.provider.as_str(),
            p.running,
            p.failed
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_sessions(list: &[Session], format: ListFormat) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if format == ListFormat::Json {
        serde_json::to_writer_pretty(&mut out, list)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<8}  {:<20} {:<8} {:<13} {:>8}  {:<30} LAST LINE",
        "ID", "NAME", "PROVIDER", "STATE", "AGE", "DIR"
    )?;
    let now = now_us();
    for s in list {
        writeln!(
            out,
            "{:<8}  {:<20} {:<8} {:<13} {:>8}  {:<30} {}",
            s.short_id(),
            cut(&s.name, 20),
            s.provider.as_str(),
            s.state.as_str(),
            format_span(s.duration_us(now)),
            cut(&s.dir.to_string_lossy(), 30),
            cut(&s.last_line, 60)
        )?;
    }
    Ok(())
}

fn print_status(s: &Session, format: ListFormat) -> anyhow::Result<()> {
    if format == ListFormat::Json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    let now = now_us();
    println!("{} ({})", s.name, s.id);
    println!("  state      {}", s.state.as_str());
    if let Some(r) = &s.reason {
        println!("  ended      {r}");
    }
    if let Some(since) = s.paused_us {
        println!("  paused     {} ago", format_span(now - since));
    }
    println!("  provider   {}", s.provider.as_str());
    println!(
        "  command    {}",
        candybar_sessions::events::masked_command(s).join(" ")
    );
    println!("  directory  {}", s.dir.display());
    println!(
        "  host       {} ({} session {})",
        s.host,
        s.multiplexer.as_str(),
        s.mux_name
    );
    println!("  running    {}", format_span(s.duration_us(now)));
    println!("  prompts    {}", s.prompt_count);
    println!("  log        {}", s.log.display());
    let tail = candybar_sessions::manager::log_tail(&s.log);
    if !tail.is_empty() {
        println!("  last lines");
        for l in tail {
            println!("    {l}");
        }
    }
    Ok(())
}

/// `s` cut to `n` characters (an ellipsis says so).
fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut c: String = s.chars().take(n.saturating_sub(1)).collect();
        c.push('…');
        c
    }
}

/// Most requests held at once while sessions run at the limit (the broker keeps the rest).
const SERVE_PREFETCH: u16 = 50;

#[allow(clippy::too_many_lines)] // one event loop, read top to bottom
async fn serve(
    args: ServeArgs,
    source: &SourceArgs,
    settings: &Settings,
) -> anyhow::Result<ExitCode> {
    use candybar_bus::SourceMsg;
    use candybar_bus::amqp::{AmqpConfig, QueueMode};
    use candybar_sessions::requests::{self, ServePolicy};

    let Some(url) = source.amqp_url(settings) else {
        anyhow::bail!("session serve needs a broker: --amqp URL (or CANDYBAR_AMQP_URL)");
    };
    if !(1..=1000).contains(&args.max_running) {
        anyhow::bail!(
            "--max-running {} is out of range: give 1 to 1000",
            args.max_running
        );
    }
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::current_dir().context("no current directory: give --dir")?,
    };
    let checked = |d: &PathBuf, flag: &str| {
        std::fs::canonicalize(d)
            .ok()
            .filter(|p| p.is_dir())
            .with_context(|| format!("{flag} {}: no such directory", d.display()))
    };
    let default_dir = checked(&dir, "--dir")?;
    let root = match &args.root {
        Some(r) => checked(r, "--root")?,
        None => default_dir.clone(),
    };
    if !default_dir.starts_with(&root) {
        anyhow::bail!(
            "--dir {} is outside --root {}",
            default_dir.display(),
            root.display()
        );
    }
    let mut sessions = open(&args.state, settings)?;
    if let Err(e) = sessions.mux.choose(None) {
        eprintln!("candybar: {e}");
        return Ok(ExitCode::from(2));
    }
    let policy = ServePolicy {
        root,
        default_dir,
        allow_custom: args.allow_custom,
    };
    let exchange = source.exchange(settings);
    let gate = candybar_bus::AckGate::new();
    let cfg = AmqpConfig {
        url: url.clone(),
        exchange: exchange.clone(),
        binding_keys: vec![requests::REQUESTED.into()],
        queue: QueueMode::Durable(args.requests_queue.clone()),
        prefetch: SERVE_PREFETCH,
        body_cap_bytes: 1 << 20,
        ack_gate: Some(gate.clone()),
    };
    let mut handle = candybar_bus::amqp::spawn(cfg);
    let mut publisher = Publisher::new(url.expose(), &exchange);
    eprintln!(
        "candybar: serving {} from the queue {} on {} (at most {} sessions; worktrees under {}{})",
        requests::REQUESTED,
        args.requests_queue,
        url.masked(),
        args.max_running,
        policy.root.display(),
        if policy.allow_custom {
            "; requests may run their own commands"
        } else {
            ""
        }
    );
    let mut states = super::StateReport::new(&handle.describe);
    let mut waiting: std::collections::VecDeque<candybar_core::event::RawMessage> =
        std::collections::VecDeque::new();
    let mut handled = 0u64;
    let mut told_full = false;
    let mut problem: Option<String> = None;
    let mut last_refresh: Option<std::time::Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut terminate = super::journal::terminate_signal();
    let mut exit = ExitCode::SUCCESS;
    loop {
        tokio::select! {
            m = handle.rx.recv(), if waiting.len() < usize::from(SERVE_PREFETCH) => match m {
                None => break,
                Some(SourceMsg::Event(m)) => waiting.push_back(m),
                Some(SourceMsg::State(state)) => match states.report(&state) {
                    Ok(false) => {}
                    Ok(true) => break,
                    Err(code) => { exit = code; break }
                },
                Some(SourceMsg::Gap { .. }) => {}
            },
            _ = tick.tick() => {}
            _ = &mut ctrl_c => break,
            _ = terminate.recv() => break,
        }
        // At most twice a second, however many requests arrive.
        if last_refresh.is_none_or(|t| t.elapsed() >= Duration::from_millis(500)) {
            last_refresh = Some(std::time::Instant::now());
            let refreshed = tokio::task::block_in_place(|| sessions.refresh());
            say_once(&mut problem, refreshed.err().map(|e| e.to_string()));
        }
        // In order: a request that would start a session waits for a free slot, and those
        // behind it wait with it (deliveries are acknowledged in order).
        while let Some(msg) = waiting.front() {
            let running = match sessions.list(false, usize::MAX) {
                Ok(list) => list.iter().filter(|s| s.host == sessions.host).count(),
                Err(e) => {
                    // The state store is away: requests wait on the broker meanwhile.
                    say_once(&mut problem, Some(e.to_string()));
                    break;
                }
            };
            let slot_free = running < args.max_running;
            let done =
                tokio::task::block_in_place(|| serve_one(&mut sessions, msg, &policy, slot_free))?;
            if !done {
                if !told_full {
                    told_full = true;
                    eprintln!(
                        "candybar: {} request(s) wait: {running} sessions run (--max-running {})",
                        waiting.len(),
                        args.max_running
                    );
                }
                break;
            }
            told_full = false;
            waiting.pop_front();
            handled += 1;
            gate.release(handled);
        }
        let r =
            candybar_sessions::outbox::deliver(&sessions.store, &mut publisher, now_us()).await?;
        if let Some(e) = r.error.filter(|_| r.pending > 0) {
            tracing::warn!("{} session event(s) wait for the broker: {e}", r.pending);
        }
    }
    // What is queued goes out before leaving; the sessions keep running.
    let _ = candybar_sessions::outbox::deliver(&sessions.store, &mut publisher, i64::MAX).await;
    eprintln!("candybar: stopped serving; {handled} request(s) handled, the sessions keep running");
    Ok(exit)
}

/// Prints `now` when it differs from what was said last (a problem that lasts is said once, and
/// its end too).
fn say_once(last: &mut Option<String>, now: Option<String>) {
    if *last == now {
        return;
    }
    match &now {
        Some(p) => eprintln!("candybar: {p}"),
        None => eprintln!("candybar: the sessions' state is reachable again"),
    }
    *last = now;
}

/// Reads and carries out one request, saying what became of it. `false`: it waits for a slot.
fn serve_one(
    sessions: &mut Sessions,
    msg: &candybar_core::event::RawMessage,
    policy: &candybar_sessions::requests::ServePolicy,
    slot_free: bool,
) -> anyhow::Result<bool> {
    use candybar_sessions::requests::{self, Handled};
    let req = match requests::parse(msg) {
        Ok(r) => r,
        Err(reason) => {
            eprintln!("candybar: a request was refused: {reason}");
            requests::refuse_unreadable(sessions, msg, &reason)?;
            return Ok(true);
        }
    };
    let which = req
        .session_id
        .as_deref()
        .or(req.event_id.as_deref())
        .unwrap_or("without an id")
        .to_owned();
    match sessions.handle_request(&req, policy, slot_free) {
        Ok(Handled::Waits) => return Ok(false),
        Ok(Handled::Started(s)) => eprintln!(
            "candybar: request {which}: started {} ({}) in {}",
            s.name,
            s.short_id(),
            s.dir.display()
        ),
        Ok(Handled::Sent(s)) => eprintln!(
            "candybar: request {which}: the prompt went to {} ({})",
            s.name,
            s.short_id()
        ),
        Ok(Handled::Duplicate) => {
            eprintln!("candybar: request {which} was handled before; skipped");
        }
        Err(e @ (SessionError::Store(_) | SessionError::Redis(_))) => {
            // Not answered: it stays first in line and is tried again.
            eprintln!("candybar: request {which} waits: {e}");
            return Ok(false);
        }
        Err(e) => eprintln!("candybar: request {which} refused: {e}"),
    }
    Ok(true)
}

/// The workflows' directory: the flag, else `CANDYBAR_WORKFLOWS`, else `workflows` in the
/// config dir.
fn workflows_dir(flag: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = flag
        .cloned()
        .or_else(|| std::env::var_os("CANDYBAR_WORKFLOWS").map(PathBuf::from))
    {
        return Ok(p);
    }
    directories::ProjectDirs::from("", "", "candybar")
        .map(|d| d.config_dir().join("workflows"))
        .context("no home directory to find workflows in: give --workflows DIR")
}

pub async fn workflow(cmd: WorkflowCommand, source: &SourceArgs) -> anyhow::Result<ExitCode> {
    use candybar_sessions::workflow::{self, Outcome};
    let settings = source.settings()?;
    match cmd {
        WorkflowCommand::List(args) => {
            let dir = workflows_dir(args.workflows.as_ref())?;
            let found = workflow::list(&dir);
            if found.is_empty() {
                println!("no workflows in {} (NAME.toml files)", dir.display());
            }
            for (name, w) in found {
                match w {
                    Ok(w) => {
                        let steps: Vec<&str> = w.steps.iter().map(|s| s.id.as_str()).collect();
                        println!("{name}: {} ({})", steps.join(" → "), w.description);
                    }
                    Err(e) => println!("{name}: does not read: {e}"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        WorkflowCommand::Run(args) => {
            let dir = workflows_dir(args.place.workflows.as_ref())?;
            let w = match workflow::load(&dir, &args.name) {
                Ok(w) => w,
                Err(e) => {
                    eprintln!("candybar: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let here = match args.dir {
                Some(d) => d,
                None => std::env::current_dir().context("no current directory: give --dir")?,
            };
            let mut sessions = open(&args.place.state, &settings)?;
            let broker = source
                .amqp_url(&settings)
                .map(|url| Publisher::new(url.expose(), &source.exchange(&settings)));
            let rt = tokio::runtime::Handle::current();
            println!("workflow {}: {} steps", w.name, w.steps.len());
            let ran = tokio::task::block_in_place(|| {
                let mut publisher = broker;
                workflow::run(&w, &mut sessions, &here, &mut |line, store| {
                    println!("{line}");
                    if let Some(p) = publisher.as_mut() {
                        let _ = rt.block_on(candybar_sessions::outbox::deliver(store, p, now_us()));
                    }
                })
            });
            deliver(&sessions, source, &settings).await;
            match ran {
                Ok(outcomes) => {
                    let failed = outcomes
                        .iter()
                        .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
                        .count();
                    let skipped = outcomes
                        .iter()
                        .filter(|(_, o)| matches!(o, Outcome::Skipped(_)))
                        .count();
                    println!(
                        "workflow {}: {} done, {failed} failed, {skipped} skipped",
                        w.name,
                        outcomes.len() - failed - skipped
                    );
                    Ok(if failed == 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    })
                }
                Err(e) => Ok(refused(&e)),
            }
        }
    }
}
