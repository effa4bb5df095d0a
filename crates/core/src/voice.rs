//! Dictation as the views, the tray and the command line see it: the worker's status, kept
//! transcripts, input devices, the built-in server's state, the hotkey's mode. The voice crate
//! fills these; the UI crate only reads them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::time::Micros;

/// Where `candybar asr serve` listens by default.
pub const DEFAULT_SERVER: &str = "ws://127.0.0.1:8888/asr";

/// The default combination, as other dictation tools use it.
pub const DEFAULT_HOTKEY: &str = "Ctrl+Alt+Space";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HotkeyMode {
    /// Record while the keys are held (push-to-talk).
    #[default]
    Hold,
    /// One press starts, the next stops.
    Toggle,
}

impl HotkeyMode {
    pub fn label(self) -> &'static str {
        match self {
            Self::Hold => "hold to talk",
            Self::Toggle => "press to start, press to stop",
        }
    }
}

/// What the user asks of dictation (the view, the tray, the hotkey, the local socket).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DictationAction {
    Start,
    Stop,
    Toggle,
    /// Start transcribing what the computer plays (a meeting, a video), or stop it: kept as one
    /// transcript with its times, never typed.
    TogglePlaying,
    /// Show the history rows matching this text (all when empty).
    Search(String),
    Delete(i64),
    /// Put a kept transcript on the clipboard.
    Copy(i64),
    /// Queue a kept transcript's webhook/bus deliveries again.
    Resend(i64),
    /// Retry every waiting delivery now.
    RetryOutbox,
}

/// The microphone's input level, written by the capture and read by any thread (a meter).
#[derive(Clone, Debug, Default)]
pub struct LevelMeter(Arc<AtomicU32>);

impl LevelMeter {
    /// The level of the latest audio, 0..1 (RMS).
    #[must_use]
    pub fn level(&self) -> f32 {
        f32::from_bits(self.0.load(Ordering::Relaxed))
    }

    pub fn set(&self, rms: f32) {
        self.0.store(rms.to_bits(), Ordering::Relaxed);
    }
}

/// Where dictation is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    #[default]
    Idle,
    /// The microphone is open and audio streams to the server.
    Recording,
    /// Recording stopped; waiting for the final text.
    Finishing,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Recording => "recording",
            Self::Finishing => "finishing",
        }
    }
}

/// The outcome of the latest recording, as the view and tray show it.
#[derive(Clone, Debug, PartialEq)]
pub struct LastResult {
    pub text: String,
    pub history_id: Option<i64>,
    /// What happened to each immediate output ("clipboard", "typed", …), errors in words.
    pub outputs: Vec<(Output, Result<(), String>)>,
    /// From the end of the audio to the final text.
    pub final_after_ms: u64,
}

/// What the view reads. Kept by the worker; read under a short lock.
#[derive(Clone, Default)]
pub struct DictationStatus {
    pub phase: Phase,
    /// When the current recording started.
    pub recording_since: Option<Instant>,
    /// The microphone has delivered audio (a sound server can take a moment after opening).
    pub listening: bool,
    pub device: String,
    /// What the current (or last) recording listens to.
    pub source: AudioSource,
    /// The ASR connection in words ("streaming to a candybar server (tiny.en)").
    pub connection: String,
    pub reconnecting: bool,
    /// The current utterance's text: settled, then the server's guess at the rest.
    pub settled: String,
    pub tentative: String,
    pub last: Option<LastResult>,
    /// The latest error the user can act on; cleared when a recording starts.
    pub error: Option<String>,
    /// What the recording is doing that the user should know, while it goes on ("Firefox
    /// stopped playing; waiting for it to play again"); cleared when a recording starts.
    pub notice: Option<String>,
    /// History rows for `query`, newest first.
    pub history: Vec<Transcript>,
    pub query: String,
    pub history_total: u64,
    /// Deliveries waiting in the outbox, and the latest delivery error.
    pub pending_deliveries: u64,
    pub delivery_error: Option<String>,
    /// The microphone's level while recording.
    pub level: Option<LevelMeter>,
    /// Recordings started since the app started.
    pub recordings: u64,
    /// The microphone's words go to the conversation with the architect (its view is shown),
    /// not to the desktop.
    pub handed_off: bool,
}

impl DictationStatus {
    /// The state in one word for the local socket and scripts: idle, starting (the microphone
    /// is opening), recording, finishing.
    pub fn word(&self) -> &'static str {
        match self.phase {
            Phase::Recording if !self.listening => "starting",
            p => p.as_str(),
        }
    }

    /// The input level 0..1 while recording.
    pub fn level(&self) -> f32 {
        self.level.as_ref().map_or(0.0, LevelMeter::level)
    }
}

/// Where a transcript goes besides the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    Clipboard,
    Typed,
    Webhook,
    Bus,
}

impl Output {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clipboard => "clipboard",
            Self::Typed => "typed",
            Self::Webhook => "webhook",
            Self::Bus => "bus",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "clipboard" => Self::Clipboard,
            "typed" => Self::Typed,
            "webhook" => Self::Webhook,
            "bus" => Self::Bus,
            _ => return None,
        })
    }

    /// Outputs that wait in the outbox and are retried when they fail.
    pub fn retried(self) -> bool {
        matches!(self, Self::Webhook | Self::Bus)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Transcript {
    pub id: i64,
    pub created_us: Micros,
    pub duration_ms: u64,
    pub text: String,
    pub server: String,
    pub model: String,
    pub protocol: String,
    pub confidence: Option<f32>,
    /// ISO 639-1, as the server reported it (`None`: older rows, servers that do not say).
    pub language: Option<String>,
    /// What was recorded: `mic`, `system`, `app:NAME`, `mic+system`.
    pub source: String,
    /// The text with its times (filled when one transcript is asked for, not in lists).
    pub segments: Vec<TimedText>,
    pub deliveries: Vec<Delivery>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Delivery {
    pub output: Output,
    pub target: String,
    /// `pending` (in the outbox), `delivered` or `failed` (given up, or not retried).
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// What a recording listens to: the microphone, what the computer plays (the default output's
/// monitor), one playing application's stream, or the microphone and the computer together (a
/// meeting: your voice and theirs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AudioSource {
    #[default]
    Mic,
    System,
    /// An application, by its name or program as the sound system lists it (`firefox`).
    App(String),
    MicAndSystem,
}

impl AudioSource {
    /// Whether the microphone is part of it.
    pub fn uses_mic(&self) -> bool {
        matches!(self, Self::Mic | Self::MicAndSystem)
    }
}

impl std::str::FromStr for AudioSource {
    type Err = String;

    /// `mic`, `system`, `app:NAME`, `mic+system` (as `--source` and the config write them).
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "mic" | "microphone" => Ok(Self::Mic),
            "system" => Ok(Self::System),
            "mic+system" | "system+mic" => Ok(Self::MicAndSystem),
            lower if lower.starts_with("app:") => {
                let name = t[4..].trim();
                if name.is_empty() {
                    Err(
                        "app: needs an application's name (see `candybar dictate --list-apps`)"
                            .to_owned(),
                    )
                } else {
                    Ok(Self::App(name.chars().take(128).collect()))
                }
            }
            _ => Err(format!(
                "unknown source {:?}: use mic, system, app:NAME or mic+system",
                t.chars().take(40).collect::<String>()
            )),
        }
    }
}

impl std::fmt::Display for AudioSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Mic => f.write_str("mic"),
            Self::System => f.write_str("system"),
            Self::App(name) => write!(f, "app:{name}"),
            Self::MicAndSystem => f.write_str("mic+system"),
        }
    }
}

/// A piece of a transcript between two moments (milliseconds from the recording's start).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TimedText {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

/// An application playing sound (a PulseAudio / PipeWire-Pulse sink input).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlayingApp {
    /// The sound system's index of its stream.
    pub index: u32,
    /// `application.name` (`Firefox`), else its program.
    pub name: String,
    /// `application.process.binary` (`firefox`), if given.
    pub binary: String,
    /// `media.name`: what it plays (a tab's title, "Playback").
    pub media: String,
    /// Paused streams are listed too; they deliver silence.
    pub paused: bool,
}

impl PlayingApp {
    /// Whether `wanted` (from `app:NAME`) names this application: its name or program, without
    /// regard to case.
    pub fn answers_to(&self, wanted: &str) -> bool {
        let w = wanted.trim();
        self.name.eq_ignore_ascii_case(w) || self.binary.eq_ignore_ascii_case(w)
    }
}

/// An audio input the system offers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InputDevice {
    pub name: String,
    pub is_default: bool,
    pub rate_hz: u32,
    pub channels: u16,
    pub format: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ServerState {
    #[default]
    Stopped,
    /// Started; the model is loading.
    Starting,
    Running {
        pid: u32,
    },
    /// It died while wanted; the next start is due after a pause.
    Restarting {
        attempt: u32,
        reason: String,
    },
    /// It could not start (bad model, port taken): the reason, in its own words.
    Failed(String),
}

impl ServerState {
    pub fn words(&self, port: u16) -> String {
        match self {
            Self::Stopped => "stopped".into(),
            Self::Starting => "starting (loading the model)".into(),
            Self::Running { pid } => format!("running on 127.0.0.1:{port} (pid {pid})"),
            Self::Restarting { attempt, reason } => {
                format!("restarting (attempt {attempt}): {reason}")
            }
            Self::Failed(e) => format!("failed: {e}"),
        }
    }
}

/// A Whisper model in the model directory, as the Dictation view lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    /// As `--model` takes it (`tiny.en`).
    pub name: String,
    pub bytes: u64,
    /// `Some(true)`: 99 languages; `Some(false)`: English only; `None`: not a readable model.
    pub multilingual: Option<bool>,
    /// `tiny`, `base, quantized`, …
    pub kind: String,
    /// Decode time over audio time on this machine, once measured (lower is faster).
    pub real_time_factor: Option<f32>,
    /// In f16 or f32: a `Q8_0` copy can be made of it (`candybar asr models quantize`).
    pub quantizable: bool,
}

#[derive(Clone, Debug, Default)]
pub struct ServerStatus {
    pub state: ServerState,
    pub log: VecDeque<String>,
    /// Restarts after the server died.
    pub restarts: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_read_as_people_write_them_and_round_trip() {
        for (text, source) in [
            ("mic", AudioSource::Mic),
            ("System", AudioSource::System),
            ("mic+system", AudioSource::MicAndSystem),
            ("app:Firefox", AudioSource::App("Firefox".into())),
            (" APP: zoom ", AudioSource::App("zoom".into())),
        ] {
            assert_eq!(text.parse::<AudioSource>(), Ok(source.clone()), "{text}");
            assert_eq!(source.to_string().parse::<AudioSource>(), Ok(source));
        }
        let e = "speakers".parse::<AudioSource>().unwrap_err();
        assert!(e.contains("mic, system, app:NAME or mic+system"), "{e}");
        assert!(
            "app:"
                .parse::<AudioSource>()
                .unwrap_err()
                .contains("--list-apps")
        );
    }

    #[test]
    fn an_app_answers_to_its_name_or_program_in_any_case() {
        let app = PlayingApp {
            index: 3,
            name: "Firefox".into(),
            binary: "firefox-esr".into(),
            media: "A meeting".into(),
            paused: false,
        };
        assert!(app.answers_to("firefox"));
        assert!(app.answers_to("FIREFOX-ESR"));
        assert!(!app.answers_to("fire"));
    }
}
