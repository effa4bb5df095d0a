//! `candybar bench dictation`: speech end → text in the focused window, end to end, with the
//! real parts: the built-in ASR server (`asr serve`, a child), the real window (this binary,
//! typing on), a virtual microphone that `paplay` speaks into (any sound server whose default
//! input hears what `paplay` plays: with `.ci/pulse`, `PULSE_SINK=vroom`, the room its microphone
//! hears), and xev as the focused window, which prints
//! every key it receives. For each clip: start recording (the local socket, as a Wayland
//! shortcut does), play the clip, stop, and take the time of the last typed character. Each
//! clip is spoken two ways: cut where the voice ends and stopped when it has played (the user lets
//! go at the last word: "speech end" is when `paplay` has played it), and as recorded, with its
//! ~0.5 s of trailing silence before the stop (the user pauses, then lets go: "speech end" is
//! `paplay`'s start plus the clip's last voiced sample, so the pause counts).

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::instance::{self, InstanceRequest};

#[derive(Args, Debug)]
pub struct DictationBenchArgs {
    /// The Whisper model for the built-in server
    #[arg(long, value_name = "PATH|NAME", env = "CANDYBAR_TEST_MODEL")]
    model: String,
    /// Clips to speak (16 kHz WAV); default: the speech fixtures of the repository
    #[arg(long = "wav", value_name = "FILE")]
    wavs: Vec<PathBuf>,
    /// Times each clip is spoken
    #[arg(long, default_value_t = 2)]
    rounds: usize,
}

/// Kills the child when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// xev as the focused window: it prints every key it receives, and this keeps them as text with
/// the time the last one came. For the dictation benchmark and tests (typing goes to whatever
/// window has the focus). xev ends when this is dropped.
pub struct TypingTarget {
    _xev: Reaped,
    typed: Arc<Mutex<(String, Option<Instant>)>>,
}

impl TypingTarget {
    /// Opens xev's window (titled `name`) on `display` (default: `$DISPLAY`) and gives it the
    /// keyboard focus.
    pub fn start(display: Option<&str>, name: &str) -> anyhow::Result<Self> {
        let with_display = |c: &mut Command| {
            if let Some(d) = display {
                c.env("DISPLAY", d);
            }
        };
        let mut cmd = Command::new("xev");
        cmd.args(["-name", name, "-event", "keyboard"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        with_display(&mut cmd);
        let mut xev = cmd
            .spawn()
            .context("xev is needed: sudo apt-get install x11-utils")?;
        let out = xev.stdout.take().context("xev's output")?;
        let xev = Reaped(xev);
        let typed: Arc<Mutex<(String, Option<Instant>)>> = Arc::default();
        let sink = typed.clone();
        std::thread::Builder::new()
            .name("xev-reader".into())
            .spawn(move || {
                // A key press is a "KeyPress event" block whose XLookupString line carries the text.
                let mut in_press = false;
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if line.starts_with("KeyPress") {
                        in_press = true;
                    } else if line.starts_with("KeyRelease") {
                        in_press = false;
                    } else if in_press
                        && line.contains("XLookupString gives")
                        && let Some(q) = line.find('"')
                    {
                        let text = line.get(q + 1..line.len().saturating_sub(1)).unwrap_or("");
                        let mut t = sink.lock();
                        t.0.push_str(text);
                        t.1 = Some(Instant::now());
                    }
                }
            })?;
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let mut search = Command::new("xdotool");
            search.args(["search", "--name", name]);
            with_display(&mut search);
            let out = search
                .output()
                .context("xdotool is needed: sudo apt-get install xdotool")?;
            if let Some(id) = String::from_utf8_lossy(&out.stdout).lines().next() {
                let mut focus = Command::new("xdotool");
                focus.args(["windowfocus", "--sync", id]);
                with_display(&mut focus);
                anyhow::ensure!(focus.status()?.success(), "xdotool could not focus xev");
                return Ok(Self { _xev: xev, typed });
            }
            anyhow::ensure!(Instant::now() < end, "xev's window never appeared");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What was typed so far, and when the last key came.
    pub fn typed(&self) -> (String, Option<Instant>) {
        self.typed.lock().clone()
    }

    /// Forgets what was typed.
    pub fn clear(&self) {
        *self.typed.lock() = (String::new(), None);
    }
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> anyhow::Result<()> {
    let end = Instant::now() + limit;
    while !ok() {
        anyhow::ensure!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[allow(clippy::too_many_lines)] // set up four processes, speak, measure, report
pub fn bench_dictation(a: &DictationBenchArgs) -> anyhow::Result<Value> {
    anyhow::ensure!(
        std::env::var_os("DISPLAY").is_some(),
        "needs an X display (typing goes through XTest): run under Xvfb"
    );
    let wavs: Vec<PathBuf> = if a.wavs.is_empty() {
        (1..=5)
            .map(|i| PathBuf::from(format!("tests/fixtures/speech/utt0{i}.wav")))
            .collect()
    } else {
        a.wavs.clone()
    };
    for w in &wavs {
        anyhow::ensure!(w.is_file(), "no clip at {} (give --wav FILE)", w.display());
    }
    let exe = std::env::current_exe()?;
    let dir = tempfile::tempdir()?;
    let dir = dir.path();

    // The built-in server on a free port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let _server = Reaped(
        Command::new(&exe)
            .args([
                "asr",
                "serve",
                "--model",
                &a.model,
                "--port",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    wait_for(
        "the ASR server's model to load",
        Duration::from_mins(1),
        || candybar_voice::local_server::health(port) == Some(200),
    )?;

    // The window, typing into the focused window.
    let config = dir.join("config.toml");
    std::fs::write(&config, "[dictation]\ntyping = true\n")?;
    let socket = dir.join("candybar.sock");
    let _window = Reaped(
        Command::new(&exe)
            .args(["--demo", "--demo-rate", "0", "--no-tray", "--config"])
            .arg(&config)
            .env("CANDYBAR_SOCKET", &socket)
            .env("CANDYBAR_HISTORY", dir.join("history.sqlite3"))
            .env("CANDYBAR_ASR_SERVER", format!("ws://127.0.0.1:{port}/asr"))
            .env("XDG_DATA_HOME", dir)
            .env("RUST_LOG", "warn,candybar_voice::dictation=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("window.log"))?)
            .spawn()?,
    );
    let ask = |r: InstanceRequest| instance::send(&socket, r).unwrap_or_default();
    wait_for("the window", Duration::from_secs(30), || {
        ask(InstanceRequest::Status) == "idle"
    })?;
    let target = TypingTarget::start(None, "candybar-bench-target")?;

    // Each clip, cut at its last voiced frame (a temp WAV), and where its voice ends.
    let mut spoken = Vec::new();
    for (i, wav) in wavs.iter().enumerate() {
        let samples = candybar_asr::wav::read_wav(wav)?;
        let mut vad = candybar_core::asr::vad::SpeechTracker::new(
            candybar_core::asr::vad::DEFAULT_THRESHOLD_RMS,
            0,
        );
        vad.push(&samples);
        let voiced = samples.len() - vad.trailing_silence();
        let cut = dir.join(format!("cut{i}.wav"));
        let pcm: Vec<i16> = samples[..voiced]
            .iter()
            .map(|s| (s * 32_768.0).clamp(-32_768.0, 32_767.0) as i16)
            .collect();
        candybar_voice::resample::write_wav_16k(&cut, &pcm)?;
        let voiced_end = Duration::from_secs_f64(voiced as f64 / 16_000.0);
        spoken.push((wav.clone(), cut, voiced_end));
    }

    let mut latencies_ms = [Vec::new(), Vec::new()];
    let mut clips = Vec::new();
    for round in 0..a.rounds {
        for (wav, cut, voiced_end) in &spoken {
            for (way, latencies) in latencies_ms.iter_mut().enumerate() {
                let at_last_word = way == 0;
                target.clear();
                ask(InstanceRequest::Start);
                wait_for("the microphone", Duration::from_secs(5), || {
                    ask(InstanceRequest::Status) == "recording"
                })?;
                let played = Instant::now();
                let ok = Command::new("paplay")
                    .arg(if at_last_word { cut } else { wav })
                    .status()
                    .context("paplay is needed (pulseaudio-utils)")?;
                anyhow::ensure!(ok.success(), "paplay failed");
                // Cut clip: the voice ends as playback ends. Whole clip: it ended `voiced_end`
                // into the playback (paplay's own start-up makes this a little early: the
                // figure errs long).
                let speech_end = if at_last_word {
                    Instant::now()
                } else {
                    played + *voiced_end
                };
                ask(InstanceRequest::Stop);
                // Done when idle again and nothing more has been typed for a moment.
                wait_for("the text", Duration::from_secs(30), || {
                    ask(InstanceRequest::Status) == "idle"
                        && target
                            .typed()
                            .1
                            .is_some_and(|t| t.elapsed() > Duration::from_millis(300))
                })?;
                let (text, last) = target.typed();
                let ms = last.map_or(f64::NAN, |t| {
                    t.saturating_duration_since(speech_end).as_secs_f64() * 1e3
                });
                latencies.push(ms);
                clips.push(json!({
                    "round": round,
                    "clip": wav.display().to_string(),
                    "stopped": if at_last_word { "at the last word" } else { "after the clip's trailing silence" },
                    "speech_end_to_typed_ms": (ms * 10.0).round() / 10.0,
                    "typed_chars": text.chars().count(),
                }));
            }
        }
    }
    let [mut at_last_word, mut after_pause] = latencies_ms;
    at_last_word.sort_by(f64::total_cmp);
    after_pause.sort_by(f64::total_cmp);
    // The window's own account of each transcript: end of speech → final text, and the time
    // spent typing it.
    let log = std::fs::read_to_string(dir.join("window.log")).unwrap_or_default();
    let number_after = |line: &str, key: &str| -> Option<f64> {
        line.split(key)
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let mut finals: Vec<f64> = Vec::new();
    let mut typing: Vec<f64> = Vec::new();
    for line in log.lines().filter(|l| l.contains("transcript kept:")) {
        finals.extend(number_after(line, "final text "));
        typing.extend(number_after(line, "put out in "));
    }
    finals.sort_by(f64::total_cmp);
    typing.sort_by(f64::total_cmp);
    Ok(json!({
        "bench": "dictation",
        "what": "last voiced sample of the clip → last character typed into the focused window; stopped at the last word (cut clips) and after the clip's ~0.5 s of silence",
        "model": a.model,
        "clips": clips,
        "final_text_after_speech_ms": {"p50": percentile(&finals, 0.5), "p95": percentile(&finals, 0.95)},
        "typing_ms": {"p50": percentile(&typing, 0.5), "p95": percentile(&typing, 0.95)},
        "stopped_at_last_word": {"p50_ms": percentile(&at_last_word, 0.5), "p95_ms": percentile(&at_last_word, 0.95), "max_ms": at_last_word.last()},
        "stopped_after_pause": {"p50_ms": percentile(&after_pause, 0.5), "p95_ms": percentile(&after_pause, 0.95), "max_ms": after_pause.last()},
    }))
}
