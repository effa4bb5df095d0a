//! `candybar session …` and `candybar agent status`: coding-agent sessions run in tmux, their
//! state kept in SQLite, their lifecycle published on the bus.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use candybar_bus::publish::Publisher;
use candybar_core::time::{checked_secs, format_span, now_us};
use candybar_sessions::{
    MuxSocket, Provider, Session, SessionError, Sessions, SqliteStore, StartRequest, Tmux,
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
    /// Start an agent CLI (or any command) in a detached tmux session, its output logged;
    /// prints the session's id. Sessions run on tmux's server named `candybar` (`tmux -L
    /// candybar ls`; `[sessions] tmux_socket` or `CANDYBAR_TMUX_SOCKET` picks another). zellij is
    /// not supported yet.
    Start(StartArgs),
    /// The sessions: running ones, or `--all`.
    List(ListArgs),
    /// One session: state, command, directory, last lines.
    Status(IdArgs),
    /// What a session printed (`--follow` until it ends).
    Logs(LogsArgs),
    /// Attach this terminal to a session (detach again with Ctrl-B d).
    Attach(IdArgs),
    /// Type a line into a session and press Enter (an answer, the next prompt).
    Send(SendArgs),
    /// End a session: Ctrl-C, then close it after a grace period (`--force`: at once).
    End(EndArgs),
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
    /// The command to run instead of the provider's CLI
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
    #[command(flatten)]
    state: StateArgs,
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

fn provider_parser() -> impl clap::builder::TypedValueParser<Value = Provider> {
    clap::builder::PossibleValuesParser::new(Provider::ALL.map(Provider::as_str))
        // The parser lets only known names through.
        .map(|s| Provider::parse(&s).unwrap_or(Provider::Custom))
}

/// The sessions' directory: the flag, else `[sessions] dir` / `CANDYBAR_SESSIONS_DIR`, else
/// `sessions` in the data dir.
fn sessions_dir(flag: Option<&PathBuf>, s: &Settings) -> anyhow::Result<PathBuf> {
    if let Some(p) = flag.cloned().or_else(|| s.file.sessions.dir.clone()) {
        return Ok(p);
    }
    directories::ProjectDirs::from("", "", "candybar")
        .map(|d| d.data_dir().join("sessions"))
        .context("no home directory to keep sessions in: give --sessions-dir DIR")
}

/// This host's sessions, as configured.
fn open(state: &StateArgs, settings: &Settings) -> anyhow::Result<Sessions> {
    let dir = sessions_dir(state.sessions_dir.as_ref(), settings)?;
    let store = SqliteStore::open(&dir.join("sessions.sqlite3"))?;
    let mux = Tmux::new(
        settings
            .file
            .sessions
            .tmux_socket
            .clone()
            .map_or_else(MuxSocket::default, MuxSocket::Path),
    );
    let idle = checked_secs(
        settings
            .file
            .sessions
            .idle_secs
            .unwrap_or(DEFAULT_IDLE_SECS),
        1.0,
        31_536_000.0,
        "[sessions] idle_secs",
    )
    .map_err(anyhow::Error::msg)?;
    Ok(Sessions::new(store, mux, dir.join("logs"), idle))
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

/// A session error as the person reads it; exit code 2.
fn refused(e: &SessionError) -> ExitCode {
    eprintln!("candybar: {e}");
    ExitCode::from(2)
}

pub async fn run(cmd: SessionCommand, source: &SourceArgs) -> anyhow::Result<ExitCode> {
    let settings = source.settings()?;
    match cmd {
        SessionCommand::Start(args) => start(args, source, &settings).await,
        SessionCommand::List(args) => {
            let mut sessions = open(&args.format.state, &settings)?;
            let refreshed = tokio::task::block_in_place(|| sessions.refresh());
            if let Err(e) = refreshed {
                return Ok(refused(&e));
            }
            let list = sessions.store.list(args.all, args.limit)?;
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
            name: args.name,
            provider,
            dir,
            prompt: args.prompt,
            command: args.command,
            metadata,
            correlation_id: None,
        })
    });
    match started {
        Ok(s) => {
            println!("{}", s.id);
            eprintln!(
                "candybar: started {} in {} ({} attach -t {}; `candybar session logs {}`)",
                s.name,
                s.dir.display(),
                sessions.mux.socket.words(),
                s.mux_name,
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
    loop {
        let chunk = read_from(&session.log, &mut offset)?;
        if !chunk.is_empty() {
            if args.raw {
                stdout.write_all(&chunk)?;
            } else {
                let text = candybar_sessions::detect::plain(&chunk);
                if !text.is_empty() {
                    writeln!(stdout, "{text}")?;
                }
            }
            stdout.flush()?;
        }
        if !args.follow || !session.state.is_running() {
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
    let sessions = open(&args.format.state, settings)?;
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
    // Replaces this process; it returns only when tmux could not be run.
    let e = sessions
        .mux
        .attach_command(&session.mux_name)
        .env_remove("TMUX")
        .exec();
    eprintln!("candybar: cannot run tmux: {e}");
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
    let summary = sessions.store.provider_summary(day_ago)?;
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
    println!("  provider   {}", s.provider.as_str());
    println!("  command    {}", s.command.join(" "));
    println!("  directory  {}", s.dir.display());
    println!("  host       {} (tmux session {})", s.host, s.mux_name);
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
