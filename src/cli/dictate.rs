//! `candybar dictate`: stream speech to an ASR server the way the microphone path does, print
//! the text as it comes, keep the final transcript in the history and deliver it.
//! `candybar history`: list, search, show, delete, export transcripts; deliver the outbox.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use candybar_core::asr::protocol::TRANSCRIPT_ROUTING_KEY;
use candybar_core::redact::Secret;
use candybar_core::redact::mask_url;
use candybar_core::time::{checked_secs, format_rfc3339, now_us};
use candybar_core::voice::{AudioSource, Transcript};
use candybar_voice::capture::{Capture, FRAME_SAMPLES};
use candybar_voice::client::{self, ClientConfig, ClientEvent, ClientState};
use candybar_voice::dictation::DictationConfig;
use candybar_voice::history::{self, History, NewTranscript};
use candybar_voice::hotkey::{DEFAULT_HOTKEY, HotkeyMode};
use candybar_voice::local_server::LocalServerConfig;
use candybar_voice::outputs::{Bus, Deliverer, Outputs, Webhook};
use clap::{Args, Subcommand, ValueEnum};
use tokio::sync::mpsc;

use super::SourceArgs;
use crate::instance::InstanceRequest;

/// Where transcripts go; shared by `dictate` and `history deliver`.
#[derive(Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// POST each transcript here as `{text, timestamp, source}` [config: `dictation.webhook_url`]
    #[arg(long, value_name = "URL", env = "CANDYBAR_WEBHOOK_URL")]
    webhook: Option<String>,
    /// Bearer token for the webhook
    #[arg(
        long,
        value_name = "TOKEN",
        env = "CANDYBAR_WEBHOOK_TOKEN",
        hide_env_values = true
    )]
    webhook_token: Option<String>,
    /// Publish each transcript on the bus (the broker of --amqp / `CANDYBAR_AMQP_URL`)
    #[arg(long)]
    bus: bool,
    /// Routing key of the bus event [default: talkytonny.transcription.completed]
    #[arg(long, value_name = "KEY")]
    routing_key: Option<String>,
    /// The history database [default: history.sqlite3 in the data dir; env: `CANDYBAR_HISTORY`]
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
}

impl OutputArgs {
    /// The history and outputs, with the webhook's token from the keychain when no flag or
    /// environment variable gave one (the command line may wait for the keychain; the window
    /// asks it from the dictation worker instead).
    fn resolve(&self, source: &SourceArgs) -> anyhow::Result<(PathBuf, Outputs)> {
        let (path, mut outputs) = self.resolve_with(source, &source.settings()?)?;
        fill_webhook_token(&mut outputs);
        Ok((path, outputs))
    }

    fn resolve_with(
        &self,
        source: &SourceArgs,
        s: &super::Settings,
    ) -> anyhow::Result<(PathBuf, Outputs)> {
        let d = &s.file.dictation;
        let webhook = self
            .webhook
            .clone()
            .or_else(|| d.webhook_url.clone())
            .map(|url| Webhook {
                url,
                token: self.webhook_token.clone().map(Secret::new),
            });
        let bus = if self.bus || d.bus == Some(true) {
            let url = source.amqp_url(s).context(
                "--bus needs a broker: give --amqp URL or set CANDYBAR_AMQP_URL or [amqp] url",
            )?;
            Some(Bus {
                url,
                exchange: source.exchange(s),
                routing_key: self
                    .routing_key
                    .clone()
                    .or_else(|| d.routing_key.clone())
                    .unwrap_or_else(|| TRANSCRIPT_ROUTING_KEY.to_owned()),
            })
        } else {
            None
        };
        let path = self
            .history
            .clone()
            .or_else(|| d.history.clone())
            .unwrap_or_else(history::default_path);
        Ok((path, Outputs { webhook, bus }))
    }
}

fn fill_webhook_token(outputs: &mut Outputs) {
    if let Some(w) = &mut outputs.webhook
        && w.token.is_none()
    {
        w.token = crate::secrets::get("webhook-token")
            .ok()
            .and_then(|(v, _)| v)
            .map(Secret::new);
    }
}

/// Where the window's bus output publishes when the user turns it on: the configured broker,
/// the exchange, the routing key (`[dictation] routing_key`).
pub fn bus_target(source: &SourceArgs, s: &super::Settings) -> Option<Bus> {
    source.amqp_url(s).map(|url| Bus {
        url,
        exchange: source.exchange(s),
        routing_key: s
            .file
            .dictation
            .routing_key
            .clone()
            .unwrap_or_else(|| TRANSCRIPT_ROUTING_KEY.to_owned()),
    })
}

/// The window's dictation, from the config file and the environment.
pub struct AppDictation {
    pub cfg: DictationConfig,
    pub hotkey: String,
    pub mode: HotkeyMode,
    pub local_server: LocalServerConfig,
    pub local_auto_start: bool,
}

/// Reads the window's dictation settings: `[dictation]`, overridden by `CANDYBAR_ASR_SERVER`,
/// `CANDYBAR_ASR_TOKEN`, `CANDYBAR_INPUT_DEVICE`, `CANDYBAR_WEBHOOK_URL`,
/// `CANDYBAR_WEBHOOK_TOKEN`, `CANDYBAR_HOTKEY`.
pub fn app_dictation(source: &SourceArgs, s: &super::Settings) -> anyhow::Result<AppDictation> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let d = &s.file.dictation;
    let outputs = OutputArgs {
        webhook: env("CANDYBAR_WEBHOOK_URL"),
        webhook_token: env("CANDYBAR_WEBHOOK_TOKEN"),
        ..OutputArgs::default()
    };
    // A bus output without a broker is a setting to fix, not a reason to keep the window shut.
    let (history_path, outputs) = match outputs.resolve_with(source, s) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("dictation: {e:#}; the bus output is off");
            let mut s = s.clone();
            s.file.dictation.bus = Some(false);
            outputs.resolve_with(source, &s)?
        }
    };
    Ok(AppDictation {
        cfg: DictationConfig {
            server: env("CANDYBAR_ASR_SERVER")
                .or_else(|| d.server.clone())
                .unwrap_or_else(|| client::DEFAULT_SERVER.to_owned()),
            // The keychain is asked by the dictation worker, off the UI thread.
            token: env("CANDYBAR_ASR_TOKEN").map(Secret::new),
            device: env("CANDYBAR_INPUT_DEVICE").or_else(|| d.device.clone()),
            history_path,
            outputs,
            clipboard: d.clipboard.unwrap_or(true),
            typing: d.typing.unwrap_or(false),
            language: env("CANDYBAR_LANGUAGE").or_else(|| d.language.clone()),
            ..DictationConfig::default()
        },
        hotkey: env("CANDYBAR_HOTKEY")
            .or_else(|| d.hotkey.clone())
            .unwrap_or_else(|| DEFAULT_HOTKEY.to_owned()),
        mode: d.hotkey_mode.unwrap_or_default(),
        local_server: LocalServerConfig {
            model: env("CANDYBAR_MODEL")
                .or_else(|| s.file.local_asr.model.clone())
                .unwrap_or_else(|| LocalServerConfig::default().model),
            port: s
                .file
                .local_asr
                .port
                .unwrap_or(LocalServerConfig::default().port),
            threads: s.file.local_asr.threads,
        },
        local_auto_start: s.file.local_asr.auto_start.unwrap_or(false),
    })
}

#[derive(Args, Debug)]
#[allow(clippy::struct_excessive_bools)] // command-line switches
#[command(group = clap::ArgGroup::new("input").required(true).args(["wav", "mic", "source", "list_devices", "list_apps", "toggle", "toggle_playing", "start", "stop", "status", "server_status"]))]
pub struct DictateArgs {
    /// Start or stop the running candybar's recording (bind this to a desktop shortcut on
    /// Wayland)
    #[arg(long)]
    toggle: bool,
    /// Start or stop the running candybar's transcription of what the computer plays (kept
    /// with its times, never typed)
    #[arg(long)]
    toggle_playing: bool,
    /// Start the running candybar's recording
    #[arg(long)]
    start: bool,
    /// Stop the running candybar's recording; its transcript is kept and delivered
    #[arg(long)]
    stop: bool,
    /// Print the running candybar's dictation state
    #[arg(long)]
    status: bool,
    /// Print the state of the running candybar's built-in ASR server
    #[arg(long)]
    server_status: bool,
    /// Stream this WAV file (any rate, channels and format; converted to 16 kHz mono) as if it
    /// were spoken into the microphone
    #[arg(long, value_name = "FILE")]
    wav: Option<PathBuf>,
    /// Record from the microphone until Enter, Ctrl+C or --seconds
    #[arg(long)]
    mic: bool,
    /// Record from: mic, system (what the computer plays), app:NAME (one application, see
    /// --list-apps) or mic+system (a meeting: you and them); until Enter, Ctrl+C or --seconds
    #[arg(long, value_name = "SOURCE", value_parser = parse_source)]
    source: Option<AudioSource>,
    /// The input device (a name from --list-devices; default: the system's default input)
    #[arg(long, value_name = "NAME", env = "CANDYBAR_INPUT_DEVICE")]
    device: Option<String>,
    /// Stop recording after this many seconds
    #[arg(long, value_name = "SECS")]
    seconds: Option<f64>,
    /// List the input devices and exit
    #[arg(long)]
    list_devices: bool,
    /// List the applications playing sound (for --source app:NAME) and exit
    #[arg(long)]
    list_apps: bool,
    /// Also write the audio sent (16 kHz mono WAV) to this file
    #[arg(long, value_name = "FILE")]
    save_audio: Option<PathBuf>,
    /// The ASR server's endpoint, ours or WhisperLiveKit's [default: `ws://127.0.0.1:8888/asr`]
    #[arg(long, value_name = "URL", env = "CANDYBAR_ASR_SERVER")]
    server: Option<String>,
    /// The server's token (sent as Authorization: Bearer)
    #[arg(
        long,
        value_name = "TOKEN",
        env = "CANDYBAR_ASR_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Send the audio at the pace it was spoken (as a microphone does), not as fast as possible
    #[arg(long)]
    realtime: bool,
    /// Keep trying to reach the server this long (audio is kept meanwhile)
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    reconnect_secs: u64,
    /// Keep retrying failed deliveries this long before leaving them in the outbox
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    deliver_secs: u64,
    /// Print JSON lines (states, text as it changes, the result) instead of text
    #[arg(long)]
    json: bool,
    /// The spoken language: an ISO 639-1 code, auto, or a list to detect among (de,en)
    /// [default: the server's]
    #[arg(long, value_name = "CODE|auto|CODE,CODE…", env = "CANDYBAR_LANGUAGE")]
    language: Option<String>,
    #[command(flatten)]
    outputs: OutputArgs,
}

fn parse_source(s: &str) -> Result<AudioSource, String> {
    s.parse()
}

/// Sends a file in 50 ms frames, like the microphone path; at the pace it was spoken if asked.
pub(crate) async fn feed_file(pcm: Vec<i16>, tx: mpsc::Sender<Vec<i16>>, realtime: bool) {
    let started = Instant::now();
    for (i, frame) in pcm.chunks(FRAME_SAMPLES).enumerate() {
        if tx.send(frame.to_vec()).await.is_err() {
            return;
        }
        if realtime {
            let due = Duration::from_millis((i as u64 + 1) * 50);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Records until Enter, Ctrl+C, `seconds` or the device going away, then stops the capture
/// (which flushes the last audio and ends the utterance).
pub(crate) async fn record_until_stopped(capture: Capture, limit: Option<Duration>) {
    let limit = limit.unwrap_or(Duration::MAX);
    // Enter stops; a closed stdin (scripts, services) does not.
    let enter = async {
        let read = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap_or(0)
        })
        .await;
        if !matches!(read, Ok(n) if n > 0) {
            std::future::pending::<()>().await;
        }
    };
    // The recording's notices as they change (an application followed across its streams),
    // until it cannot go on.
    let gone = async {
        let mut said = None;
        while capture.error().is_none() {
            let notice = capture.notice();
            if notice != said {
                if let Some(n) = &notice {
                    eprintln!("candybar: {n}");
                }
                said = notice;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        () = tokio::time::sleep(limit) => {}
        () = enter => {}
        _ = tokio::signal::ctrl_c() => {}
        () = gone => {}
    }
    if let Some(e) = capture.error() {
        eprintln!("candybar: {e}");
    }
    let dropped = capture.dropped_frames();
    if dropped > 0 {
        eprintln!("candybar: {dropped} frames of audio were dropped (the system was too busy)");
    }
    let _ = tokio::task::spawn_blocking(move || capture.stop()).await;
}

#[allow(clippy::too_many_lines)] // read, stream, keep, deliver, report: one command's story
pub async fn run(args: DictateArgs, source: &SourceArgs) -> anyhow::Result<ExitCode> {
    // A week of recording is more than anyone means; beyond it is a typo, said before the
    // microphone opens.
    let limit = args
        .seconds
        .map(|s| checked_secs(s, 0.0, 7.0 * 86_400.0, "--seconds"))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    for (on, request) in [
        (args.toggle, InstanceRequest::Toggle),
        (args.toggle_playing, InstanceRequest::TogglePlaying),
        (args.start, InstanceRequest::Start),
        (args.stop, InstanceRequest::Stop),
        (args.status, InstanceRequest::Status),
        (args.server_status, InstanceRequest::ServerStatus),
    ] {
        if on {
            let answer = crate::instance::send(&crate::instance::socket_path(), request)?;
            println!("{answer}");
            return Ok(if answer.starts_with("error") {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            });
        }
    }
    if args.list_devices {
        for d in candybar_voice::capture::input_devices()? {
            let mark = if d.is_default { "*" } else { " " };
            println!(
                "{mark} {}  ({} Hz, {} ch, {})",
                d.name, d.rate_hz, d.channels, d.format
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.list_apps {
        let apps = candybar_voice::system_audio::playing_apps()?;
        if apps.is_empty() {
            eprintln!("candybar: no application is playing sound");
        }
        for a in apps {
            let paused = if a.paused { "  (paused)" } else { "" };
            println!("{}  [{}]  {}{paused}", a.name, a.binary, a.media);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let settings = source.settings()?;
    let (history_path, mut outputs) = args.outputs.resolve_with(source, &settings)?;
    fill_webhook_token(&mut outputs);
    let url = args
        .server
        .clone()
        .or_else(|| settings.file.dictation.server.clone())
        .unwrap_or_else(|| client::DEFAULT_SERVER.to_owned());
    // Open the history first: a transcript with nowhere to be kept is an error before speaking.
    let mut history = History::open(&history_path)?;
    let cfg = ClientConfig {
        url: url.clone(),
        token: args
            .token
            .clone()
            .or_else(|| crate::secrets::get("asr-token").ok()?.0)
            .map(Secret::new),
        reconnect_for: Duration::from_secs(args.reconnect_secs),
        language: args
            .language
            .clone()
            .or_else(|| settings.file.dictation.language.clone()),
        ..ClientConfig::default()
    };
    // Room for minutes of audio: the client always drains it, even while reconnecting.
    let (tx, rx) = mpsc::channel::<Vec<i16>>(4096);
    let feeder = if let Some(wav) = &args.wav {
        let pcm = candybar_voice::resample::read_wav_16k(wav)?;
        tokio::spawn(feed_file(pcm, tx, args.realtime))
    } else {
        let from = args.source.clone().unwrap_or_default();
        let capture = Capture::start_source(&from, args.device.as_deref(), tx)?;
        if !args.json {
            eprintln!(
                "candybar: recording from {:?} ({} Hz); press Enter to stop",
                capture.device, capture.rate_hz
            );
        }
        tokio::spawn(record_until_stopped(capture, limit))
    };
    // With --save-audio, every frame also goes to a WAV file on its way to the client.
    let (rx, saver) = match args.save_audio.clone() {
        None => (rx, None),
        Some(path) => {
            let (tee_tx, tee_rx) = mpsc::channel::<Vec<i16>>(4096);
            let mut rx = rx;
            let saver = tokio::spawn(async move {
                let mut all = Vec::new();
                while let Some(f) = rx.recv().await {
                    all.extend_from_slice(&f);
                    if tee_tx.send(f).await.is_err() {
                        break;
                    }
                }
                drop(tee_tx);
                tokio::task::spawn_blocking(move || {
                    candybar_voice::resample::write_wav_16k(&path, &all)
                })
                .await
            });
            (tee_rx, Some(saver))
        }
    };
    let json = args.json;
    let mut last_shown = String::new();
    let started_us = now_us();
    let result = client::dictate(&cfg, rx, |e| show(&e, json, &mut last_shown)).await;
    feeder.abort();
    if let Some(saver) = saver
        && let Ok(Ok(Err(e))) = saver.await
    {
        eprintln!("candybar: the audio was not saved: {e}");
    }
    let done = match result {
        Ok(d) => d,
        Err(failed) => {
            if !failed.settled.is_empty() {
                eprintln!(
                    "candybar: text settled before the failure: {}",
                    failed.settled
                );
            }
            anyhow::bail!(failed.error);
        }
    };
    if !json {
        eprintln!();
    }
    let t = NewTranscript {
        created_us: started_us,
        duration_ms: done.audio_ms,
        text: done.text.clone(),
        server: mask_url(&url),
        model: done.model.clone(),
        protocol: done.protocol.as_str().to_owned(),
        confidence: done.confidence,
        language: done.language.clone(),
        source: if args.wav.is_some() {
            "file".to_owned()
        } else {
            args.source.clone().unwrap_or_default().to_string()
        },
        segments: done.segments.clone(),
    };
    let id = if done.text.trim().is_empty() {
        None
    } else {
        Some(
            history
                .add(&t, &outputs.plan(&t))
                .with_context(|| format!("the transcript was not kept: {}", done.text))?,
        )
    };
    let mut deliverer = Deliverer::new(outputs);
    let report = deliverer
        .drain(&history, Duration::from_secs(args.deliver_secs))
        .await?;
    if json {
        let v = serde_json::json!({
            "type": "result",
            "text": done.text,
            "history_id": id,
            "audio_ms": done.audio_ms,
            "model": done.model,
            "protocol": done.protocol,
            "confidence": done.confidence,
            "language": done.language,
            "reconnects": done.reconnects,
            "final_after_ms": done.final_after_ms,
            "delivered": report.delivered,
            "pending": report.pending,
        });
        println!("{v}");
    } else {
        println!("{}", done.text);
    }
    if report.pending > 0 {
        eprintln!(
            "candybar: {} deliveries wait in the outbox ({}); `candybar history deliver` retries them",
            report.pending,
            history.path().display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn show(e: &ClientEvent, json: bool, last: &mut String) {
    if json {
        let v = match e {
            ClientEvent::State(s) => {
                serde_json::json!({"type": "state", "state": client::state_words(s)})
            }
            ClientEvent::Text { settled, tentative } => {
                serde_json::json!({"type": "text", "settled": settled, "tentative": tentative})
            }
            ClientEvent::ServerError(m) => {
                serde_json::json!({"type": "server_error", "message": m})
            }
        };
        println!("{v}");
        let _ = std::io::stdout().flush();
        return;
    }
    match e {
        ClientEvent::State(
            s @ (ClientState::Reconnecting { .. } | ClientState::Streaming { .. }),
        ) => {
            eprintln!("\ncandybar: {}", client::state_words(s));
        }
        ClientEvent::State(_) => {}
        ClientEvent::Text { settled, tentative } => {
            let line = format!("{settled} {tentative}");
            if line != *last {
                eprint!("\r\x1b[2K… {}", line.trim());
                *last = line;
            }
        }
        ClientEvent::ServerError(m) => eprintln!("\ncandybar: server: {m}"),
    }
}

#[derive(Subcommand, Debug)]
pub enum HistoryCommand {
    /// The newest transcripts
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        outputs: OutputArgs,
    },
    /// Full-text search (every word must match; the last one as a prefix)
    Search {
        query: Vec<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        outputs: OutputArgs,
    },
    /// One transcript with its deliveries
    Show {
        id: i64,
        #[command(flatten)]
        outputs: OutputArgs,
    },
    /// Delete a transcript (and any delivery still waiting for it)
    Delete {
        id: i64,
        #[command(flatten)]
        outputs: OutputArgs,
    },
    /// Every transcript, oldest first, as NDJSON or CSV; or one (--id) with its times as
    /// subtitles (SRT, VTT), Markdown notes or text
    Export {
        #[arg(long, value_enum, default_value_t = HistoryFormat::Ndjson)]
        format: HistoryFormat,
        /// The transcript to export (needed for srt, vtt, markdown and text)
        #[arg(long, value_name = "ID")]
        id: Option<i64>,
        #[command(flatten)]
        outputs: OutputArgs,
    },
    /// Retry the deliveries waiting in the outbox now
    Deliver {
        /// Keep retrying (with backoff) this long
        #[arg(long, value_name = "SECS", default_value_t = 0)]
        wait_secs: u64,
        #[command(flatten)]
        outputs: OutputArgs,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum HistoryFormat {
    Ndjson,
    Csv,
    Srt,
    Vtt,
    Markdown,
    Text,
}

/// `history export`: the whole history as NDJSON or CSV, or one transcript (`id`) in any format.
fn export_history(h: &History, format: HistoryFormat, id: Option<i64>) -> anyhow::Result<()> {
    if let Some(id) = id {
        let t = h.get(id)?;
        print!("{}", export_one(&t, format)?);
        return Ok(());
    }
    anyhow::ensure!(
        matches!(format, HistoryFormat::Ndjson | HistoryFormat::Csv),
        "--format {} is for one transcript: add --id ID (see `candybar history list`)",
        format
            .to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_owned())
    );
    let mut all = h.recent(usize::MAX >> 1)?;
    all.reverse();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        HistoryFormat::Ndjson => {
            for t in &all {
                writeln!(out, "{}", serde_json::to_string(t)?)?;
            }
        }
        HistoryFormat::Srt | HistoryFormat::Vtt | HistoryFormat::Markdown | HistoryFormat::Text => {
        }
        HistoryFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record([
                "id",
                "time",
                "duration_ms",
                "text",
                "server",
                "model",
                "confidence",
                "language",
            ])?;
            for t in &all {
                w.write_record([
                    t.id.to_string(),
                    format_rfc3339(t.created_us),
                    t.duration_ms.to_string(),
                    t.text.clone(),
                    t.server.clone(),
                    t.model.clone(),
                    t.confidence.map(|c| format!("{c:.3}")).unwrap_or_default(),
                    t.language.clone().unwrap_or_default(),
                ])?;
            }
            w.flush()?;
        }
    }
    Ok(())
}

/// One transcript in `format`. Its segments give the times; a transcript kept without them (a
/// short dictation, an older row) is one cue over its whole length.
fn export_one(t: &Transcript, format: HistoryFormat) -> anyhow::Result<String> {
    use candybar_core::asr::subtitles::{Cue, markdown, srt, vtt};
    let whole = [Cue {
        start_ms: 0,
        end_ms: t.duration_ms,
        text: &t.text,
    }];
    let cues: Vec<Cue<'_>> = t
        .segments
        .iter()
        .map(|s| Cue {
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            text: &s.text,
        })
        .collect();
    let cues = if cues.is_empty() { &whole[..] } else { &cues };
    Ok(match format {
        HistoryFormat::Srt => srt(cues),
        HistoryFormat::Vtt => vtt(cues),
        HistoryFormat::Markdown => {
            let when = format_rfc3339(t.created_us);
            let title = format!(
                "{} — {} ({})",
                match t.source.as_str() {
                    "mic" => "Dictation".to_owned(),
                    "system" => "What played".to_owned(),
                    "mic+system" => "Call".to_owned(),
                    other => other.strip_prefix("app:").unwrap_or(other).to_owned(),
                },
                when.get(..16).unwrap_or(&when).replace('T', " "),
                format_duration_ms(t.duration_ms)
            );
            markdown(&title, cues)
        }
        HistoryFormat::Text => format!("{}\n", t.text.trim()),
        HistoryFormat::Ndjson => format!("{}\n", serde_json::to_string(t)?),
        HistoryFormat::Csv => {
            anyhow::bail!("--format csv is for the whole history: leave out --id")
        }
    })
}

/// `1 h 02 min`, `3 min 05 s`, `12 s`.
fn format_duration_ms(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s / 60 % 60),
    }
}

pub async fn history(cmd: HistoryCommand, source: &SourceArgs) -> anyhow::Result<ExitCode> {
    let outputs_of = |o: &OutputArgs| o.resolve(source);
    match cmd {
        HistoryCommand::List {
            limit,
            json,
            outputs,
        } => {
            let h = History::open(&outputs_of(&outputs)?.0)?;
            print_list(&h.recent(limit)?, json);
        }
        HistoryCommand::Search {
            query,
            limit,
            json,
            outputs,
        } => {
            let h = History::open(&outputs_of(&outputs)?.0)?;
            let found = h.search(&query.join(" "), limit)?;
            if found.is_empty() && !json {
                eprintln!(
                    "candybar: nothing in the history matches {:?}",
                    query.join(" ")
                );
                return Ok(ExitCode::from(1));
            }
            print_list(&found, json);
        }
        HistoryCommand::Show { id, outputs } => {
            let h = History::open(&outputs_of(&outputs)?.0)?;
            let t = h.get(id)?;
            println!("{}", serde_json::to_string_pretty(&t)?);
        }
        HistoryCommand::Delete { id, outputs } => {
            let h = History::open(&outputs_of(&outputs)?.0)?;
            h.delete(id)?;
            eprintln!("candybar: deleted transcript {id}");
        }
        HistoryCommand::Export {
            format,
            id,
            outputs,
        } => {
            let h = History::open(&outputs_of(&outputs)?.0)?;
            export_history(&h, format, id)?;
        }
        HistoryCommand::Deliver { wait_secs, outputs } => {
            let (path, outs) = outputs_of(&outputs)?;
            let h = History::open(&path)?;
            h.retry_all_now()?;
            let r = Deliverer::new(outs)
                .drain(&h, Duration::from_secs(wait_secs))
                .await?;
            eprintln!(
                "candybar: {} delivered, {} failed attempts, {} still waiting",
                r.delivered, r.failed_attempts, r.pending
            );
            if r.pending > 0 {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_list(list: &[Transcript], json: bool) {
    for t in list {
        if json {
            println!("{}", serde_json::to_string(t).unwrap_or_default());
        } else {
            let waiting = t.deliveries.iter().filter(|d| d.state == "pending").count();
            let note = if waiting > 0 {
                format!("  [{waiting} waiting]")
            } else {
                String::new()
            };
            let language = t
                .language
                .as_deref()
                .map_or_else(String::new, |l| format!("[{l}] "));
            println!(
                "{:>5}  {}  {:>5.1} s  {language}{}{note}",
                t.id,
                format_rfc3339(t.created_us),
                t.duration_ms as f64 / 1000.0,
                t.text
            );
        }
    }
}
