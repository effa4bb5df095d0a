//! The `candybar` command line. Every capability has a headless face here, for scripts, tests
//! and benchmarks.

pub(crate) mod asr;
pub(crate) mod dictate;
pub(crate) mod journal;
pub(crate) mod mission;
mod publish;
mod registry;
mod secret;
mod service;
pub(crate) mod session;
pub(crate) mod spec;
mod tail;
pub(crate) mod talk;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::default_path;
use candybar_bus::SourceState;
use candybar_bus::amqp::{AmqpConfig, DEFAULT_DURABLE_QUEUE, QueueMode, StreamStart};
use candybar_bus::demo::DemoSourceConfig;
use candybar_bus::replay::{Pace, ReplayConfig};
use candybar_bus::{SourceHandle, amqp, demo, replay};
use candybar_core::config::FileConfig;
use candybar_core::demo::DemoConfig;
use candybar_core::redact::SecretUrl;
use candybar_core::redact::mask_secrets_in;
use candybar_core::registry::Registry;
use candybar_core::text::printable;
use candybar_core::time::{Micros, checked_rate, format_clock};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "candybar",
    version,
    about = "A live view of an event-driven agent platform (RabbitMQ), and a way to talk to it.",
    long_about = "A live view of an event-driven agent platform (RabbitMQ), and a way to talk to it.\n\n\
        Configuration comes from ~/.config/candybar/config.toml (or $CANDYBAR_CONFIG), then \
        CANDYBAR_* environment variables (CANDYBAR_AMQP_URL, CANDYBAR_EXCHANGE, \
        CANDYBAR_BINDING_KEYS, CANDYBAR_DURABLE_QUEUE, CANDYBAR_REGISTRY, CANDYBAR_MAX_EVENTS), \
        then flags. With no broker configured, candybar shows its built-in demo feed."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    window: crate::app::WindowArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print matching events as they arrive.
    Tail(tail::TailArgs),
    /// Send demo events or an NDJSON file to a broker, with publisher confirms.
    Publish(publish::PublishArgs),
    /// Keep every event in the on-disk journal, without a window (days of history).
    Record(journal::RecordArgs),
    /// Print events from the journal, oldest first: a time range, a filter, `--follow`.
    Query(journal::QueryArgs),
    /// Add an NDJSON export (or one event body per line) to the journal.
    Import(journal::ImportArgs),
    /// Measure candybar (prints JSON).
    #[cfg(feature = "bench")]
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
    /// Speech to text with the built-in Whisper engine.
    #[command(subcommand)]
    Asr(asr::AsrCommand),
    /// The platform's registry.yaml: `check FILE` validates it and prints what candybar reads.
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Stream speech to an ASR server, print the text, keep and deliver the transcript.
    Dictate(dictate::DictateArgs),
    /// Transcripts kept by dictation: list, search, show, delete, export; retry deliveries.
    #[command(subcommand)]
    History(dictate::HistoryCommand),
    /// Tokens kept in the system keychain: set (from stdin), delete, status.
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Coding-agent sessions in tmux: start, list, status, logs, attach, send, end.
    #[command(subcommand)]
    Session(session::SessionCommand),
    /// The agent CLIs' sessions at a glance.
    #[command(subcommand)]
    Agent(session::AgentCommand),
    /// Workflows: steps from a TOML file that run commands, start sessions and wait for them,
    /// publish events — with dependencies and a failure policy.
    #[command(subcommand)]
    Workflow(session::WorkflowCommand),
    /// Mission Control from the journal: portfolio, decisions, drift, risks, the briefing.
    #[command(subcommand)]
    Mission(mission::MissionCommand),
    /// Feature specs (`.sentra/specs` in a project): list, show, diff, new, revise, approve,
    /// reject, and file as a GitHub issue.
    #[command(subcommand)]
    Spec(spec::SpecCommand),
    /// Talk a feature through with the architect (an LLM): spoken turns (microphone or --wav)
    /// or typed ones (--say), replies printed and spoken; "I'm done" writes the spec. `talk
    /// list|show` read the conversations kept.
    Talk(talk::TalkArgs),
    /// Start candybar in the tray when you log in: on, off, or status.
    Autostart {
        #[arg(value_enum)]
        state: AutostartState,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum AutostartState {
    On,
    Off,
    Status,
}

fn autostart(state: AutostartState) -> anyhow::Result<ExitCode> {
    let path = match state {
        AutostartState::On => crate::autostart::set(true)?,
        AutostartState::Off => crate::autostart::set(false)?,
        AutostartState::Status => crate::autostart::entry_path()?,
    };
    let words = if crate::autostart::is_enabled() {
        "on: candybar starts in the tray when you log in"
    } else {
        "off: candybar does not start by itself"
    };
    println!("autostart {words} ({})", path.display());
    Ok(ExitCode::SUCCESS)
}

/// Where events come from. Shared by the window and `tail`.
#[derive(Args, Debug, Clone, Default)]
pub struct SourceArgs {
    /// `RabbitMQ` URL, e.g. <amqp://user:password@host:5672/%2f> [env: `CANDYBAR_AMQP_URL`]
    #[arg(long, value_name = "URL", global = true)]
    amqp: Option<String>,
    /// Topic exchange to watch (default: the registry's exchange.name, else "events")
    #[arg(long, value_name = "NAME", global = true)]
    exchange: Option<String>,
    /// Binding key; repeat for several (default "#": everything)
    #[arg(long = "binding-key", value_name = "PATTERN", global = true)]
    binding_keys: Vec<String>,
    /// Consume through a named durable queue with acks (gap-free, at-least-once) instead of a
    /// private one
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = DEFAULT_DURABLE_QUEUE, global = true)]
    durable_queue: Option<String>,
    /// Read a `RabbitMQ` stream queue (days of history the broker keeps) instead of a queue of
    /// candybar's own [env: `CANDYBAR_STREAM`]
    #[arg(
        long,
        value_name = "NAME",
        global = true,
        conflicts_with = "durable_queue"
    )]
    stream: Option<String>,
    /// Where reading the stream begins: first, last, next, an offset, a duration ago (24h) or a
    /// moment [default: next; `record`: the journal's newest event]
    #[arg(long, value_name = "WHEN", global = true)]
    from: Option<String>,
    /// Watch through a WebSocket relay (`ws://` / `wss://`) instead of the broker
    /// [env: `CANDYBAR_WS_URL`]
    #[arg(long, value_name = "URL", global = true, conflicts_with_all = ["amqp", "replay", "stream", "durable_queue"])]
    ws: Option<String>,
    /// The relay's token, sent as `Authorization: Bearer` [env: `CANDYBAR_WS_TOKEN`]
    #[arg(long, value_name = "TOKEN", global = true)]
    ws_token: Option<String>,
    /// Use the built-in demo feed even if a broker is configured
    #[arg(long, global = true, conflicts_with_all = ["amqp", "replay", "ws"])]
    demo: bool,
    /// Demo feed rate, events per second
    #[arg(long, value_name = "N", global = true)]
    demo_rate: Option<f64>,
    /// Agents in the demo feed (tens to thousands; default 24)
    #[arg(long, value_name = "N", global = true)]
    demo_agents: Option<usize>,
    /// Demo feed seed (the same seed gives the same events)
    #[arg(long, value_name = "N", global = true)]
    seed: Option<u64>,
    /// Replay an NDJSON file (candybar's export format, or one event body per line)
    #[arg(long, value_name = "FILE", global = true, conflicts_with = "amqp")]
    replay: Option<PathBuf>,
    /// Replay speed factor (1 = original pace)
    #[arg(long, value_name = "X", global = true, default_value_t = 1.0)]
    replay_speed: f64,
    /// Replay as fast as possible
    #[arg(long, global = true)]
    replay_fast: bool,
    /// The platform's registry.yaml [env: `CANDYBAR_REGISTRY`]
    #[arg(long, value_name = "FILE", global = true)]
    registry: Option<PathBuf>,
    /// Config file (default ~/.config/candybar/config.toml) [env: `CANDYBAR_CONFIG`]
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq, Default)]
pub enum Format {
    /// One line per event for people.
    #[default]
    Text,
    /// candybar's NDJSON (decoded fields and the exact body).
    Ndjson,
}

/// The resolved choice of source.
pub enum SourceChoice {
    Amqp(AmqpConfig),
    Demo {
        cfg: DemoSourceConfig,
        registry: Registry,
        reason: &'static str,
    },
    Replay(ReplayConfig),
    Ws(candybar_bus::ws::WsConfig),
}

impl SourceChoice {
    #[must_use]
    pub fn spawn(self) -> SourceHandle {
        match self {
            Self::Amqp(cfg) => amqp::spawn(cfg),
            Self::Ws(cfg) => candybar_bus::ws::spawn(cfg),
            Self::Demo { cfg, registry, .. } => demo::spawn(cfg, registry),
            Self::Replay(cfg) => replay::spawn(cfg),
        }
    }
}

/// Settings merged from the file, the environment and the flags.
#[derive(Clone)]
pub struct Settings {
    pub file: FileConfig,
    /// The loaded registry, else the bundled example (which the demo feed simulates).
    pub registry: Registry,
    /// Whether `registry` came from the user (only then does its exchange name count).
    pub registry_loaded: bool,
}

impl SourceArgs {
    /// `--demo` was given: the demo feed even where a broker or a recorder is there.
    pub(crate) fn demo_forced(&self) -> bool {
        self.demo
    }

    pub fn settings(&self) -> anyhow::Result<Settings> {
        let path = self.config.clone().or_else(default_path);
        let mut file = match &path {
            Some(p) => crate::config::load(p)?,
            None => FileConfig::default(),
        };
        file.apply_env(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
        let registry_path = self.registry.clone().or_else(|| file.registry.clone());
        let registry_loaded = registry_path.is_some();
        let registry = match registry_path {
            Some(p) => {
                let text = candybar_bus::registry_watch::read_text(&p)
                    .with_context(|| format!("cannot read registry {}", p.display()))?;
                Registry::from_yaml(&text).with_context(|| format!("registry {}", p.display()))?
            }
            None => Registry::example(),
        };
        Ok(Settings {
            file,
            registry,
            registry_loaded,
        })
    }

    #[must_use]
    /// `--exchange`, else the config's, else a loaded registry's `exchange.name`, else `events`.
    pub fn exchange(&self, s: &Settings) -> String {
        self.exchange
            .clone()
            .or_else(|| s.file.amqp.exchange.clone())
            .or_else(|| {
                s.registry_loaded
                    .then(|| s.registry.exchange_name().map(str::to_owned))
                    .flatten()
            })
            .unwrap_or_else(|| "events".into())
    }

    /// The registry file the user named (flag, then config / `CANDYBAR_REGISTRY`).
    #[must_use]
    pub fn registry_path(&self, s: &Settings) -> Option<PathBuf> {
        self.registry.clone().or_else(|| s.file.registry.clone())
    }

    /// The broker's URL; a user without a password gets the one kept with
    /// `candybar secret set amqp-password`.
    pub fn amqp_url(&self, s: &Settings) -> Option<SecretUrl> {
        let url = self.amqp.clone().or_else(|| s.file.amqp.url.clone())?;
        Some(SecretUrl::new(crate::secrets::with_amqp_password(&url)))
    }

    /// The source the flags and settings ask for; a rate or speed that is no number, or an
    /// absurd one, is refused in words.
    pub fn choose(&self, s: &Settings, body_cap_bytes: usize) -> anyhow::Result<SourceChoice> {
        if let Some(path) = &self.replay {
            let pace = if self.replay_fast {
                Pace::AsFastAsPossible
            } else {
                Pace::Speed(
                    checked_rate(self.replay_speed, 0.001, 1_000_000.0, "--replay-speed")
                        .map_err(anyhow::Error::msg)?,
                )
            };
            return Ok(SourceChoice::Replay(ReplayConfig {
                path: path.clone(),
                pace,
                body_cap_bytes,
            }));
        }
        let ws = self.ws.clone().or_else(|| {
            (self.amqp.is_none() && !self.demo)
                .then(|| s.file.ws.url.clone())
                .flatten()
        });
        if let (Some(url), false) = (ws, self.demo) {
            let token = self
                .ws_token
                .clone()
                .or_else(|| std::env::var("CANDYBAR_WS_TOKEN").ok())
                .filter(|t| !t.is_empty());
            return Ok(SourceChoice::Ws(candybar_bus::ws::WsConfig {
                url: SecretUrl::new(url),
                token: token.map(candybar_core::redact::Secret::new),
                body_cap_bytes,
            }));
        }
        let url = self.amqp_url(s);
        if let (Some(url), false) = (url, self.demo) {
            let keys = if self.binding_keys.is_empty() {
                s.file
                    .amqp
                    .binding_keys
                    .clone()
                    .unwrap_or_else(|| vec!["#".into()])
            } else {
                self.binding_keys.clone()
            };
            let stream = self.stream.clone().or_else(|| s.file.amqp.stream.clone());
            let queue = match (
                stream,
                self.durable_queue
                    .clone()
                    .or_else(|| s.file.amqp.durable_queue.clone()),
            ) {
                (Some(name), _) => QueueMode::Stream {
                    name,
                    from: match &self.from {
                        Some(f) => StreamStart::parse(f, candybar_core::time::now_us())
                            .map_err(anyhow::Error::msg)?,
                        None => StreamStart::Next,
                    },
                },
                (None, Some(name)) => QueueMode::Durable(name),
                (None, None) => QueueMode::Private,
            };
            return Ok(SourceChoice::Amqp(AmqpConfig {
                url,
                exchange: self.exchange(s),
                binding_keys: keys,
                queue,
                prefetch: s.file.amqp.prefetch.unwrap_or(1000),
                body_cap_bytes,
                ack_gate: None,
            }));
        }
        let demo = DemoConfig {
            seed: self.seed.or(s.file.demo.seed).unwrap_or(1),
            agents: self
                .demo_agents
                .or(s.file.demo.agents)
                .unwrap_or(24)
                .clamp(1, 100_000),
            ..DemoConfig::default()
        };
        let rate = match (self.demo_rate, s.file.demo.rate) {
            (Some(r), _) => checked_rate(r, 0.0, 10_000_000.0, "--demo-rate"),
            (None, Some(r)) => checked_rate(r, 0.0, 10_000_000.0, "[demo] rate"),
            (None, None) => Ok(40.0),
        }
        .map_err(anyhow::Error::msg)?;
        let reason = if self.demo {
            "requested with --demo"
        } else {
            "no broker configured (use --amqp URL or CANDYBAR_AMQP_URL)"
        };
        Ok(SourceChoice::Demo {
            cfg: DemoSourceConfig {
                demo,
                rate_per_sec: rate,
                limit: None,
            },
            registry: s.registry.clone(),
            reason,
        })
    }
}

/// `--filter EXPR`, for `tail` and `query`.
#[derive(Args, Debug)]
pub struct FilterArg {
    /// Filter expression, e.g. 'agent.*.completed', 'domain:llm errors', '"timeout" last:15m'
    /// (one starting with '-', like '-errors', is taken as the expression)
    #[arg(
        long,
        short,
        value_name = "EXPR",
        default_value = "",
        allow_hyphen_values = true
    )]
    filter: String,
}

impl FilterArg {
    /// The parsed filter; a bad one is said with a caret under the column (`Err`: exit code 2).
    pub(crate) fn parse(&self) -> Result<candybar_core::filter::Filter, ExitCode> {
        candybar_core::filter::Filter::new(&self.filter).map_err(|e| {
            eprintln!(
                "candybar: bad filter: {e}\n{}",
                candybar_core::filter::caret(&self.filter, e.column)
            );
            ExitCode::from(2)
        })
    }
}

/// What `tail` and `record` say on stderr about their source's connection.
pub(crate) struct StateReport {
    describe: String,
    connected_once: bool,
    last: String,
}

impl StateReport {
    pub(crate) fn new(describe: &str) -> Self {
        Self {
            describe: describe.to_owned(),
            connected_once: false,
            last: String::new(),
        }
    }

    /// Prints a line when `state` says something new. `Ok(true)`: the source has finished;
    /// `Err(code)`: it gave up on a setting only the user can fix (exit with the code).
    pub(crate) fn report(&mut self, state: &SourceState) -> Result<bool, ExitCode> {
        let line = match state {
            // Said once: a broker that does not answer then says so within seconds.
            SourceState::Connecting { attempt: 0 } if !self.connected_once => {
                Some(format!("connecting to {}…", self.describe))
            }
            SourceState::Connecting { .. } => None,
            SourceState::Connected { detail } => {
                self.connected_once = true;
                Some(format!("connected: {detail}"))
            }
            SourceState::Retrying {
                reason,
                retry_in,
                permanent,
            } => {
                // A setting to fix: exit instead of waiting on it (before the first connection,
                // or when the source gave up).
                if *permanent && (!self.connected_once || *retry_in == Duration::MAX) {
                    eprintln!("candybar: {}", printable(&mask_secrets_in(reason)));
                    return Err(ExitCode::from(2));
                }
                Some(format!(
                    "{reason}; retrying every {} ms",
                    retry_in.as_millis()
                ))
            }
            SourceState::Finished => return Ok(true),
        };
        if let Some(line) = line.filter(|l| *l != self.last) {
            eprintln!("candybar: {}", printable(&line));
            self.last = line;
        }
        Ok(false)
    }
}

/// Says on stderr that the source was disconnected, and whether events may be missing.
pub(crate) fn print_gap(start_us: Micros, end_us: Micros, reason: &str, lossless: bool) {
    eprintln!("candybar: {}", gap_text(start_us, end_us, reason, lossless));
}

/// A gap in words: "gap 08:02:11.000 → 08:31:40.000 (29 min): why; what it means" (with the
/// dates when it spans days).
pub(crate) fn gap_text(start_us: Micros, end_us: Micros, reason: &str, lossless: bool) -> String {
    let (what, after) = if lossless {
        (
            "connection interrupted",
            "the broker kept what was published meanwhile (a durable queue or a stream): no events were lost",
        )
    } else {
        ("gap", "events published meanwhile may be missing")
    };
    // The clock alone within a day; across days, the dates too.
    let day = |us: Micros| us.div_euclid(86_400_000_000);
    let moment = |us| {
        if day(start_us) == day(end_us) {
            format_clock(us)
        } else {
            candybar_core::time::format_rfc3339(us)
        }
    };
    format!(
        "{what} {} → {} ({}): {}; {after}",
        moment(start_us),
        moment(end_us),
        candybar_core::time::format_span(end_us - start_us),
        printable(reason)
    )
}

/// Entry point of the binary.
#[must_use]
pub fn main(started: std::time::Instant) -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("candybar-io")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("candybar: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = if cli.command.is_none() {
        // The window runs on this (main) thread; sources run on the runtime's threads.
        let _guard = rt.enter();
        crate::app::run(&cli.window, &cli.source, started)
    } else {
        rt.block_on(async {
            match cli.command {
                Some(Command::Tail(args)) => tail::run(args, &cli.source).await,
                Some(Command::Publish(args)) => publish::run(args, &cli.source).await,
                Some(Command::Record(args)) => journal::record(args, &cli.source).await,
                Some(Command::Query(args)) => journal::query(args, &cli.source).await,
                Some(Command::Import(args)) => {
                    tokio::task::block_in_place(|| journal::import(&args, &cli.source))
                }
                #[cfg(feature = "bench")]
                Some(Command::Bench(cmd)) => crate::bench::run(cmd, &cli.source).await,
                Some(Command::Asr(asr::AsrCommand::Serve(args))) => {
                    asr::serve(args, &cli.source).await
                }
                Some(Command::Asr(cmd)) => tokio::task::block_in_place(|| asr::run(cmd)),
                Some(Command::Registry(cmd)) => Ok(registry::run(&cmd)),
                Some(Command::Dictate(args)) => Box::pin(dictate::run(args, &cli.source)).await,
                Some(Command::History(cmd)) => dictate::history(cmd, &cli.source).await,
                Some(Command::Secret(cmd)) => tokio::task::block_in_place(|| secret::run(&cmd)),
                Some(Command::Session(cmd)) => session::run(cmd, &cli.source).await,
                Some(Command::Spec(cmd)) => spec::run(cmd, &cli.source).await,
                Some(Command::Talk(args)) => Box::pin(talk::run(args, &cli.source)).await,
                Some(Command::Agent(cmd)) => session::agent(cmd, &cli.source).await,
                Some(Command::Workflow(cmd)) => session::workflow(cmd, &cli.source).await,
                Some(Command::Mission(cmd)) => {
                    tokio::task::block_in_place(|| mission::run(&cmd, &cli.source))
                }
                Some(Command::Autostart { state }) => autostart(state),
                None => Ok(ExitCode::SUCCESS),
            }
        })
    };
    // Blocking helpers (a stdin reader, say) must not keep the process alive.
    rt.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "candybar: {}",
                candybar_core::redact::mask_secrets_in(&format!("{e:#}"))
            );
            ExitCode::from(2)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(
            // cpal's PulseAudio client logs every closed stream as an error.
            // whisper.cpp's own messages: a stopped partial decode logs "failed to encode";
            // real failures reach the user through candybar's own errors.
            "warn,lapin=off,amq_protocol=off,pulseaudio=off,whisper_rs::whisper_logging_hook=off,whisper_rs::ggml_logging_hook=off",
        ));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
