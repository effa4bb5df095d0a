//! `candybar talk`: talk a feature through with the architect from a terminal — each turn spoken
//! into the microphone (Enter to start, Enter to send), read from a WAV file (`--wav`, streamed at
//! the pace it was spoken, as a microphone would), or typed (`--say`). Replies are printed as they
//! come and spoken aloud; "I'm done" makes the architect write the spec. `candybar talk list|show`
//! read the conversations kept.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use candybar_core::redact::Secret;
use candybar_specs::chat::ChatConfig;
use candybar_specs::conversation::{self, Conversations};
use candybar_voice::capture::Capture;
use candybar_voice::client::{self, ClientConfig};
use candybar_voice::speech::SpeechEngine;
use clap::{Args, Subcommand};
use tokio::sync::mpsc;

use super::{Settings, SourceArgs};
use crate::talk::{Outcome, Talk, TalkConfig, TalkEvent};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TalkArgs {
    #[command(subcommand)]
    command: Option<TalkCommand>,
    #[command(flatten)]
    turn: TurnArgs,
}

#[derive(Subcommand, Debug)]
pub enum TalkCommand {
    /// The conversations kept, newest first (`--search WORDS`).
    List(ListArgs),
    /// One conversation, as Markdown (or `--json`).
    Show(ShowArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(long, default_value = "")]
    search: String,
    #[arg(long)]
    json: bool,
    #[arg(long, value_name = "FILE")]
    conversations: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    id: String,
    #[arg(long)]
    json: bool,
    #[arg(long, value_name = "FILE")]
    conversations: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct TurnArgs {
    /// A turn spoken in a WAV file; repeat for several, in order
    #[arg(long, value_name = "FILE")]
    wav: Vec<PathBuf>,
    /// A turn typed; repeat for several (after the --wav turns)
    #[arg(long, value_name = "TEXT")]
    say: Vec<String>,
    /// The project the spec belongs to [default: `[specs] project`, else the directory's name]
    #[arg(long)]
    project: Option<String>,
    /// The project directory (its `.sentra/specs`, its `CLAUDE.md`) [default: `[specs] dir`,
    /// else the current directory; env: `CANDYBAR_SPECS_DIR`]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Continue this spec: the conversation ends in its next version
    #[arg(long = "continue", value_name = "SPEC")]
    continue_spec: Option<String>,
    /// The architect's API base [default: `[architect] url`; env: `CANDYBAR_ARCHITECT_URL`]
    #[arg(long, value_name = "URL")]
    architect: Option<String>,
    /// How replies are spoken: espeak-ng, off, or a speech API's base [default: `[architect]
    /// speech`, else espeak-ng]
    #[arg(long, value_name = "ENGINE")]
    speech: Option<String>,
    /// The ASR server's endpoint [default: `[dictation] server`, else the built-in server's]
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Where conversations are kept [default: conversations.sqlite3 in the data dir]
    #[arg(long, value_name = "FILE")]
    conversations: Option<PathBuf>,
    /// One JSON object per line (heard, reply, spec, error) instead of text
    #[arg(long)]
    json: bool,
}

/// The conversation's settings from the flags, the config and the keychain.
pub(crate) fn talk_config(args: &TurnArgs, settings: &Settings) -> anyhow::Result<TalkConfig> {
    let a = &settings.file.architect;
    let url = args.architect.clone().or_else(|| a.url.clone()).context(
        "no architect to talk to: give --architect URL or set [architect] url (an \
         OpenAI-compatible API: llama.cpp's `llama-server` at http://127.0.0.1:8080/v1, Ollama at \
         http://127.0.0.1:11434/v1, or a hosted one)",
    )?;
    let key = crate::secrets::get("llm-key")
        .ok()
        .and_then(|(v, _)| v)
        .map(Secret::new);
    let mut chat = ChatConfig::new(&url, a.model.as_deref().unwrap_or("default"));
    chat.api_key.clone_from(&key);
    if let Some(secs) = a.first_token_timeout_secs {
        chat.first_token_timeout = candybar_core::time::checked_secs(
            secs,
            1.0,
            3600.0,
            "[architect] first_token_timeout_secs",
        )
        .map_err(anyhow::Error::msg)?;
    }
    let tokens = |n: Option<u32>, default: u32, what: &str| match n.unwrap_or(default) {
        n @ 16..=200_000 => Ok(n),
        n => Err(anyhow::anyhow!(
            "[architect] {what} = {n} is out of range: give a number of tokens from 16 to 200000"
        )),
    };
    let reply_tokens = tokens(
        a.reply_max_tokens,
        crate::talk::REPLY_TOKENS,
        "reply_max_tokens",
    )?;
    let spec_tokens = tokens(
        a.spec_max_tokens,
        crate::talk::SPEC_TOKENS,
        "spec_max_tokens",
    )?;
    let dir = super::spec::project_dir(args.dir.as_ref(), settings)?;
    let project = super::spec::project_name(args.project.as_deref(), &dir, settings);
    Ok(TalkConfig {
        chat,
        role: a
            .system_prompt
            .clone()
            .unwrap_or_else(|| candybar_specs::prompt::DEFAULT_SYSTEM.to_owned()),
        project,
        project_dir: dir,
        speech: SpeechEngine::from_setting(
            args.speech.as_deref().or(a.speech.as_deref()),
            a.voice.as_deref(),
            a.speech_model.as_deref(),
            key,
        ),
        conversations: args
            .conversations
            .clone()
            .unwrap_or_else(crate::talk::default_conversations_path),
        continue_spec: args.continue_spec.clone(),
        reply_tokens,
        spec_tokens,
    })
}

/// What the window's architect worker needs: the conversation as configured (or why there is
/// none), where filing goes, the outbox and the broker.
pub(crate) fn window_init(
    source: &SourceArgs,
    settings: &Settings,
) -> crate::app::architect::ArchitectInit {
    let none = TurnArgs {
        wav: Vec::new(),
        say: Vec::new(),
        project: None,
        dir: None,
        continue_spec: None,
        architect: None,
        speech: None,
        server: None,
        conversations: None,
        json: false,
    };
    let outbox = super::session::sessions_dir(None, &settings.file.sessions)
        .unwrap_or_else(|_| PathBuf::from("sessions"))
        .join("sessions.sqlite3");
    crate::app::architect::ArchitectInit {
        talk: talk_config(&none, settings).map_err(|e| format!("{e:#}")),
        repo: settings.file.github.repo.clone(),
        github_api: settings
            .file
            .github
            .api
            .clone()
            .unwrap_or_else(|| candybar_specs::github::DEFAULT_API.to_owned()),
        github_token: Box::new(|| {
            crate::secrets::get("github-token")
                .ok()
                .and_then(|(v, _)| v)
                .map(Secret::new)
        }),
        outbox,
        broker: source
            .amqp_url(settings)
            .map(|url| (url, source.exchange(settings))),
        rt: tokio::runtime::Handle::current(),
    }
}

#[allow(clippy::too_many_lines)] // one conversation's story, turn by turn
pub async fn run(args: TalkArgs, source: &SourceArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(TalkCommand::List(a)) => return list(&a),
        Some(TalkCommand::Show(a)) => return show(&a),
        None => {}
    }
    let args = args.turn;
    let settings = source.settings()?;
    let cfg = talk_config(&args, &settings)?;
    let json = args.json;
    let mut talk = Talk::start(cfg)?;
    if !json {
        eprintln!(
            "candybar: talking with the architect about {} (conversation {}); say \"I'm done\" \
             for the spec",
            talk.project_dir().display(),
            talk.id
        );
    }
    let asr = ClientConfig {
        url: args
            .server
            .clone()
            .or_else(|| settings.file.dictation.server.clone())
            .unwrap_or_else(|| client::DEFAULT_SERVER.to_owned()),
        token: crate::secrets::get("asr-token")
            .ok()
            .and_then(|(v, _)| v)
            .map(Secret::new),
        language: settings.file.dictation.language.clone(),
        ..ClientConfig::default()
    };
    let mut printer = Printer { json, line: false };
    let mut spec = None;
    let scripted = !args.wav.is_empty() || !args.say.is_empty();
    let mut turns: Vec<Turn> = args.wav.iter().cloned().map(Turn::Wav).collect();
    turns.extend(args.say.iter().cloned().map(Turn::Say));
    let mut next = turns.into_iter();
    // The terminal's lines, read on a thread of their own: Enter can cut into a reply.
    let mut enter = if scripted { None } else { Some(enter_lines()?) };
    // Enter came while the architect answered: the person is already talking.
    let mut interrupted = false;
    loop {
        let turn = if scripted {
            match next.next() {
                Some(t) => t,
                None => break,
            }
        } else {
            Turn::Mic
        };
        let heard =
            match Box::pin(hear(&turn, &asr, &talk, json, enter.as_mut(), interrupted)).await {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(e) => {
                    printer.event(&TalkEvent::Error(format!("{e:#}")));
                    if scripted {
                        return Ok(ExitCode::FAILURE);
                    }
                    continue;
                }
            };
        interrupted = false;
        let speaker = talk.speaker.clone();
        let mut show = |e: TalkEvent| printer.event(&e);
        let answer = talk.turn(&heard.text, heard.speech_end, heard.asr_ms, &mut show);
        let outcome = match enter.as_mut() {
            None => answer.await,
            Some(lines) => {
                tokio::pin!(answer);
                tokio::select! {
                    outcome = &mut answer => outcome,
                    line = lines.recv() => {
                        // Barge-in: the person talks again; the rest of the reply is dropped.
                        speaker.hush();
                        if line != Some(true) {
                            break;
                        }
                        interrupted = true;
                        eprintln!();
                        Outcome::Answered
                    }
                }
            }
        };
        match outcome {
            Outcome::Spec(meta) => {
                super::spec::announce(vec![talk.spec_event(&meta)], source, &settings).await;
                spec = Some(meta);
                break;
            }
            Outcome::Failed if scripted => break,
            Outcome::Answered | Outcome::Failed => {}
        }
        // The reply is said to the end before the next turn (a microphone turn stops it).
        if scripted {
            talk.speaker.wait_quiet(Duration::from_mins(2));
        }
    }
    talk.speaker.wait_quiet(Duration::from_secs(30));
    if let Some(e) = talk.speaker.status().error {
        eprintln!("candybar: {e}");
    }
    match spec {
        Some(meta) if !json => {
            println!(
                "spec {} v{} ({}) in {}",
                meta.id,
                meta.latest(),
                meta.title,
                talk.project_dir().display()
            );
            Ok(ExitCode::SUCCESS)
        }
        None if scripted => {
            if !json {
                eprintln!("candybar: the conversation ended without a spec (say \"I'm done\")");
            }
            Ok(ExitCode::from(1))
        }
        Some(_) | None => Ok(ExitCode::SUCCESS),
    }
}

enum Turn {
    Wav(PathBuf),
    Say(String),
    Mic,
}

struct Heard {
    text: String,
    speech_end: Instant,
    asr_ms: Option<u64>,
}

/// The person's next words: from the file, the text, or the microphone (Enter to start, Enter
/// to send; an empty stdin ends the conversation). `None`: the person left.
/// The terminal's lines as they are typed (`false`: its end).
fn enter_lines() -> anyhow::Result<mpsc::Receiver<bool>> {
    let (tx, rx) = mpsc::channel(4);
    std::thread::Builder::new()
        .name("talk-stdin".into())
        .spawn(move || {
            loop {
                let mut line = String::new();
                let more = std::io::stdin().read_line(&mut line).unwrap_or(0) > 0;
                if tx.blocking_send(more).is_err() || !more {
                    return;
                }
            }
        })?;
    Ok(rx)
}

async fn hear(
    turn: &Turn,
    asr: &ClientConfig,
    talk: &Talk,
    json: bool,
    enter: Option<&mut mpsc::Receiver<bool>>,
    interrupted: bool,
) -> anyhow::Result<Option<Heard>> {
    let (tx, rx) = mpsc::channel::<Vec<i16>>(4096);
    let feeder = match turn {
        Turn::Say(text) => {
            return Ok(Some(Heard {
                text: text.clone(),
                speech_end: Instant::now(),
                asr_ms: None,
            }));
        }
        Turn::Wav(path) => {
            let pcm = candybar_voice::resample::read_wav_16k(path)?;
            tokio::spawn(super::dictate::feed_file(pcm, tx, true))
        }
        Turn::Mic => {
            let Some(enter) = enter else {
                return Ok(None);
            };
            if !interrupted {
                if !json {
                    eprint!("candybar: press Enter to talk (Ctrl+D to leave) ");
                }
                if enter.recv().await != Some(true) {
                    return Ok(None);
                }
            }
            // Talking stops the architect's voice at once.
            talk.speaker.stop();
            let capture = Capture::start(None, tx)?;
            if !json {
                eprintln!("candybar: listening on {:?}; Enter to send", capture.device);
            }
            let words = client::dictate(asr, rx, |_| {});
            tokio::pin!(words);
            // Enter (or the end of input) stops the microphone, which ends the utterance.
            let result = tokio::select! {
                r = &mut words => r,
                _ = enter.recv() => {
                    let _ = tokio::task::spawn_blocking(move || capture.stop()).await;
                    words.await
                }
            };
            return finish(result);
        }
    };
    let result = client::dictate(asr, rx, |_| {}).await;
    feeder.abort();
    finish(result)
}

/// The person's words from a finished utterance, with when their speech ended.
fn finish(result: Result<client::Dictated, client::Failed>) -> anyhow::Result<Option<Heard>> {
    let done = result.map_err(|f| anyhow::anyhow!(f.error))?;
    let asr_ms = done.final_after_ms;
    // The client measured from the end of the audio to its final text.
    let speech_end = Instant::now()
        .checked_sub(Duration::from_millis(asr_ms))
        .unwrap_or_else(Instant::now);
    if done.text.trim().is_empty() {
        anyhow::bail!("nothing was heard in that turn");
    }
    Ok(Some(Heard {
        text: done.text,
        speech_end,
        asr_ms: Some(asr_ms),
    }))
}

struct Printer {
    json: bool,
    /// A reply is being printed on the current line.
    line: bool,
}

impl Printer {
    fn event(&mut self, e: &TalkEvent) {
        let mut out = std::io::stdout().lock();
        if self.json {
            let v = match e {
                TalkEvent::Piece(_) => return,
                TalkEvent::Heard(t) => serde_json::json!({"type": "heard", "text": t}),
                TalkEvent::Replied(t) => serde_json::json!({
                    "type": "reply", "text": t.text, "first_token_ms": t.first_token_ms,
                    "first_audio_ms": t.first_audio_ms, "asr_ms": t.asr_ms, "total_ms": t.total_ms,
                }),
                TalkEvent::Spec(m) => {
                    serde_json::json!({"type": "spec", "id": m.id, "version": m.latest(), "title": m.title})
                }
                TalkEvent::Error(m) => serde_json::json!({"type": "error", "message": m}),
            };
            let _ = writeln!(out, "{v}");
            return;
        }
        match e {
            TalkEvent::Heard(t) => {
                let _ = writeln!(out, "you: {t}");
            }
            TalkEvent::Piece(p) => {
                if !self.line {
                    let _ = write!(out, "architect: ");
                    self.line = true;
                }
                let _ = write!(out, "{p}");
            }
            TalkEvent::Replied(t) => {
                self.line = false;
                let timing = match (t.first_token_ms, t.first_audio_ms) {
                    (Some(a), Some(b)) => {
                        format!("first words after {a} ms, first sound after {b} ms")
                    }
                    (Some(a), None) => format!("first words after {a} ms"),
                    _ => String::new(),
                };
                let _ = writeln!(out);
                let _ = out.flush();
                if !timing.is_empty() {
                    eprintln!("candybar: {timing}");
                }
            }
            TalkEvent::Spec(_) => {}
            TalkEvent::Error(m) => {
                if self.line {
                    let _ = writeln!(out);
                    self.line = false;
                }
                let _ = out.flush();
                eprintln!("candybar: {m}");
            }
        }
        let _ = out.flush();
    }
}

fn open(path: Option<&PathBuf>) -> anyhow::Result<Conversations> {
    let path = path
        .cloned()
        .unwrap_or_else(crate::talk::default_conversations_path);
    Ok(Conversations::open(&path)?)
}

fn list(args: &ListArgs) -> anyhow::Result<ExitCode> {
    let db = open(args.conversations.as_ref())?;
    let list = db.list(&args.search, 500)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    for c in list {
        println!(
            "{}  {}  {:<16} {:>3} turns  {}{}",
            c.id,
            c.started,
            c.project,
            c.turns,
            candybar_core::text::printable(&c.title),
            c.spec_id.map_or(String::new(), |s| format!("  → spec {s}"))
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn show(args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let db = open(args.conversations.as_ref())?;
    let (summary, turns) = match db.get(&args.id) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("candybar: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"conversation": summary, "turns": turns})
            )?
        );
    } else {
        print!("{}", conversation::markdown(&summary, &turns));
    }
    Ok(ExitCode::SUCCESS)
}
