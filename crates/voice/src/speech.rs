//! Speaking the architect's replies aloud: espeak-ng (offline, the default) or an
//! OpenAI-compatible speech API (`POST {url}/audio/speech`), played on the default output
//! device. Text is said sentence by sentence as it arrives, so the first words sound while the
//! rest of the reply is still being written; [`Speaker::stop`] silences it at once (barge-in:
//! the person started talking).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use candybar_core::redact::Secret;
use cpal::traits::{DeviceTrait as _, HostTrait as _, StreamTrait as _};
use cpal::{FromSample, SampleFormat, SizedSample};
use parking_lot::Mutex;

/// The most of one sentence synthesized (a runaway reply is not read out for an hour).
const MAX_SENTENCE_CHARS: usize = 2_000;
/// The output stream closes after this long with nothing to say.
const IDLE_CLOSE: Duration = Duration::from_secs(2);
/// Seconds of audio the output holds.
const RING_SECS: usize = 20;

/// How replies are spoken.
#[derive(Clone, Debug, PartialEq)]
pub enum SpeechEngine {
    Off,
    /// `espeak-ng -v VOICE --stdout`.
    Espeak {
        voice: String,
    },
    /// An OpenAI-compatible `/audio/speech` (base URL, model, voice, key), asked for WAV.
    Api {
        url: String,
        model: String,
        voice: String,
        key: Option<Secret>,
    },
}

impl SpeechEngine {
    /// From the config's words: `off`, `espeak-ng` (or nothing), or an `http(s)://` base.
    pub fn from_setting(
        setting: Option<&str>,
        voice: Option<&str>,
        model: Option<&str>,
        key: Option<Secret>,
    ) -> Self {
        match setting.map(str::trim) {
            Some("off" | "none") => Self::Off,
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => Self::Api {
                url: url.trim_end_matches('/').to_owned(),
                model: model.unwrap_or("tts-1").to_owned(),
                voice: voice.unwrap_or("alloy").to_owned(),
                key,
            },
            _ => Self::Espeak {
                voice: voice.unwrap_or("en-us").to_owned(),
            },
        }
    }

    pub fn words(&self) -> String {
        match self {
            Self::Off => "off".to_owned(),
            Self::Espeak { voice } => format!("espeak-ng ({voice})"),
            Self::Api { url, voice, .. } => {
                format!("{} ({voice})", candybar_core::redact::mask_url(url))
            }
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpeechError {
    #[error(
        "espeak-ng is not installed, so replies are not spoken: install it (`sudo apt-get install \
         espeak-ng`) or set [architect] speech = \"off\""
    )]
    NoEspeak,
    #[error("espeak-ng failed: {0}")]
    Espeak(String),
    #[error("the speech API at {url} failed: {reason}")]
    Api { url: String, reason: String },
    #[error("the speech is not audio candybar can play: {0}")]
    BadAudio(String),
    #[error("no sound output: {0}")]
    Output(String),
}

/// Mono samples at a rate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sound {
    pub samples: Vec<f32>,
    pub rate: u32,
}

/// Reads a 16-bit PCM WAV, including espeak-ng's streamed one whose sizes say "unknown"
/// (0x7ffff000): the data chunk runs to the end. Channels are mixed down.
pub fn read_wav(bytes: &[u8]) -> Result<Sound, SpeechError> {
    let bad = |why: &str| SpeechError::BadAudio(why.to_owned());
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("not a WAV file"));
    }
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let mut at = 12;
    let mut format = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32_at(at + 4) as usize;
        let body = at + 8;
        if id == b"fmt " {
            if body + 16 > bytes.len() {
                return Err(bad("its format chunk is cut"));
            }
            format = Some((
                u16_at(body),
                u16_at(body + 2),
                u32_at(body + 4),
                u16_at(body + 14),
            ));
        } else if id == b"data" {
            let (tag, channels, rate, bits) = format.ok_or_else(|| bad("data before format"))?;
            if tag != 1 || bits != 16 {
                return Err(bad("only 16-bit PCM WAV is played"));
            }
            if channels == 0 || !(4_000..=192_000).contains(&rate) {
                return Err(bad("its channel count or rate is not one audio has"));
            }
            let end = body.saturating_add(size).min(bytes.len());
            let channels = usize::from(channels);
            let samples: Vec<f32> = bytes[body..end]
                .chunks_exact(2 * channels)
                .map(|frame| {
                    frame
                        .chunks_exact(2)
                        .map(|s| f32::from(i16::from_le_bytes([s[0], s[1]])) / 32_768.0)
                        .sum::<f32>()
                        / channels as f32
                })
                .collect();
            return Ok(Sound { samples, rate });
        }
        at = body.saturating_add(size + (size & 1));
    }
    Err(bad("it has no audio data"))
}

/// `text` as sound, by the engine.
pub fn synthesize(
    engine: &SpeechEngine,
    text: &str,
    rt: &tokio::runtime::Runtime,
) -> Result<Sound, SpeechError> {
    let text: String = text.chars().take(MAX_SENTENCE_CHARS).collect();
    match engine {
        SpeechEngine::Off => Ok(Sound::default()),
        SpeechEngine::Espeak { voice } => {
            let out = Command::new("espeak-ng")
                .args(["-v", voice, "--stdout", "--"])
                .arg(&text)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        SpeechError::NoEspeak
                    } else {
                        SpeechError::Espeak(e.to_string())
                    }
                })?;
            if !out.status.success() {
                return Err(SpeechError::Espeak(
                    candybar_core::text::first_line(&String::from_utf8_lossy(&out.stderr), 300),
                ));
            }
            read_wav(&out.stdout)
        }
        SpeechEngine::Api {
            url,
            model,
            voice,
            key,
        } => rt.block_on(async {
            let shown = candybar_core::redact::mask_url(url);
            let fail = |reason: String| SpeechError::Api {
                url: shown.clone(),
                reason: candybar_core::redact::mask_secrets_in(&reason),
            };
            let client = reqwest::Client::builder()
                .timeout(Duration::from_mins(1))
                .build()
                .map_err(|e| fail(e.to_string()))?;
            let mut request = client.post(format!("{url}/audio/speech")).json(
                &serde_json::json!({"model": model, "voice": voice, "input": text, "response_format": "wav"}),
            );
            if let Some(k) = key {
                request = request.bearer_auth(k.expose());
            }
            let response = request.send().await.map_err(|e| fail(e.to_string()))?;
            let status = response.status();
            let bytes = response.bytes().await.map_err(|e| fail(e.to_string()))?;
            if !status.is_success() {
                let text = String::from_utf8_lossy(&bytes);
                return Err(fail(format!(
                    "HTTP {}: {}",
                    status.as_u16(),
                    candybar_core::text::first_line(&text, 300)
                )));
            }
            read_wav(&bytes)
        }),
    }
}

/// Linear interpolation to the output's rate (speech for ears, not for a recognizer).
fn to_rate(sound: &Sound, rate: u32) -> Vec<f32> {
    if sound.rate == rate || sound.samples.is_empty() {
        return sound.samples.clone();
    }
    let step = f64::from(sound.rate) / f64::from(rate);
    let last = sound.samples.len() - 1;
    let count = (sound.samples.len() as f64 / step) as usize;
    (0..count)
        .map(|k| {
            let at = k as f64 * step;
            let left = at as usize;
            let frac = (at - left as f64) as f32;
            let from = sound.samples[left.min(last)];
            let to = sound.samples[(left + 1).min(last)];
            from + (to - from) * frac
        })
        .collect()
}

/// The sentences of `text` that are complete, and what is left over (a sentence still being
/// written): split after `.`, `!`, `?` or `:` followed by white space, and at line ends.
pub fn complete_sentences(text: &str) -> (Vec<String>, &str) {
    let mut out = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (k, &(i, c)) in chars.iter().enumerate() {
        let next_is_space = chars.get(k + 1).is_some_and(|&(_, n)| n.is_whitespace());
        if c == '\n' || (matches!(c, '.' | '!' | '?' | ':') && next_is_space) {
            let end = i + c.len_utf8();
            let sentence = text[start..end].trim();
            if !sentence.is_empty() {
                out.push(sentence.to_owned());
            }
            start = end;
        }
    }
    (out, &text[start..])
}

/// What the speaker is doing.
#[derive(Clone, Debug, Default)]
pub struct SpeakerStatus {
    pub speaking: bool,
    /// When the first sound of the current turn reached the output.
    pub first_audio: Option<Instant>,
    pub error: Option<String>,
    pub engine: String,
}

enum Cmd {
    Say(String),
    Stop,
}

struct Shared {
    status: Mutex<SpeakerStatus>,
    /// When the current turn began: a sound from before it is not its first.
    turn_since: Mutex<Instant>,
    /// Hushed: the rest of this turn is not said.
    muted: AtomicBool,
    /// Sentences queued or being synthesized.
    pending: AtomicUsize,
    /// Bumped by `stop`: sentences of an older generation are dropped unsaid.
    generation: AtomicU64,
}

/// Says sentences on a thread of its own (a clone speaks through the same thread).
#[derive(Clone)]
pub struct Speaker {
    tx: SyncSender<(u64, Cmd)>,
    shared: Arc<Shared>,
}

impl Speaker {
    pub fn start(engine: SpeechEngine) -> Self {
        let shared = Arc::new(Shared {
            status: Mutex::new(SpeakerStatus {
                engine: engine.words(),
                ..SpeakerStatus::default()
            }),
            pending: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            turn_since: Mutex::new(Instant::now()),
            muted: AtomicBool::new(false),
        });
        // Sentences of a reply or two; a caller that outpaces the speaker waits.
        let (tx, rx) = sync_channel(1024);
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("speaker".into())
            .spawn(move || run(&engine, &rx, &s));
        if let Err(e) = spawned {
            shared.status.lock().error = Some(format!("cannot start the speaker: {e}"));
        }
        Self { tx, shared }
    }

    /// Queues a sentence.
    pub fn say(&self, sentence: &str) {
        if sentence.trim().is_empty() || self.shared.muted.load(Ordering::SeqCst) {
            return;
        }
        self.shared.pending.fetch_add(1, Ordering::SeqCst);
        let generation = self.shared.generation.load(Ordering::SeqCst);
        if self
            .tx
            .send((generation, Cmd::Say(sentence.to_owned())))
            .is_err()
        {
            self.shared.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Silences it now: what is playing and everything queued (barge-in).
    pub fn stop(&self) {
        let generation = self.shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = self.tx.send((generation, Cmd::Stop));
    }

    /// A new turn: its first sound is measured afresh.
    /// Silences it for the rest of this turn: what plays, what is queued, and what the reply
    /// still brings.
    pub fn hush(&self) {
        self.shared.muted.store(true, Ordering::SeqCst);
        self.stop();
    }

    pub fn new_turn(&self) {
        self.shared.muted.store(false, Ordering::SeqCst);
        *self.shared.turn_since.lock() = Instant::now();
        self.shared.status.lock().first_audio = None;
    }

    pub fn status(&self) -> SpeakerStatus {
        let mut s = self.shared.status.lock().clone();
        s.speaking |= self.shared.pending.load(Ordering::SeqCst) > 0;
        s
    }

    /// Waits until everything queued has been said (or `timeout`).
    pub fn wait_quiet(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if !self.status().speaking {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

fn run(engine: &SpeechEngine, rx: &Receiver<(u64, Cmd)>, shared: &Arc<Shared>) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        shared.status.lock().error = Some("cannot start the speaker's runtime".to_owned());
        return;
    };
    let mut output: Option<Output> = None;
    loop {
        let wait = if output.is_some() {
            Duration::from_millis(20)
        } else {
            Duration::from_hours(1)
        };
        match rx.recv_timeout(wait) {
            Ok((generation, Cmd::Say(text))) => {
                if generation == shared.generation.load(Ordering::SeqCst) {
                    say(engine, &text, &rt, &mut output, shared);
                }
                shared.pending.fetch_sub(1, Ordering::SeqCst);
            }
            Ok((_, Cmd::Stop)) => {
                if let Some(o) = &output {
                    o.clear();
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let since = *shared.turn_since.lock();
        let mut status = shared.status.lock();
        match &output {
            Some(o) => {
                if status.first_audio.is_none()
                    && let Some(t) = o.first_sound().filter(|t| *t >= since)
                {
                    status.first_audio = Some(t);
                }
                status.speaking = o.buffered() > 0;
                if !status.speaking && o.idle_for() > IDLE_CLOSE {
                    output = None;
                }
            }
            None => status.speaking = false,
        }
    }
}

fn say(
    engine: &SpeechEngine,
    text: &str,
    rt: &tokio::runtime::Runtime,
    output: &mut Option<Output>,
    shared: &Arc<Shared>,
) {
    let sound = match synthesize(engine, text, rt) {
        Ok(s) if s.samples.is_empty() => return,
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("{e}");
            shared.status.lock().error = Some(e.to_string());
            return;
        }
    };
    if output.is_none() {
        match Output::open() {
            Ok(o) => *output = Some(o),
            Err(e) => {
                tracing::warn!("{e}");
                shared.status.lock().error = Some(e.to_string());
                return;
            }
        }
    }
    let Some(o) = output.as_mut() else { return };
    let generation = shared.generation.load(Ordering::SeqCst);
    o.push(&to_rate(&sound, o.rate), || {
        shared.generation.load(Ordering::SeqCst) != generation
    });
    shared.status.lock().error = None;
}

/// State the output's callback shares (no locks in the callback).
struct OutShared {
    clear: AtomicBool,
    /// Nanoseconds after `base` when a sound was first played (0: not yet).
    first_sound_ns: AtomicU64,
    last_sound_ns: AtomicU64,
    base: Instant,
}

/// The default output device, fed from a ring.
struct Output {
    _stream: cpal::Stream,
    rate: u32,
    ring: rtrb::Producer<f32>,
    capacity: usize,
    shared: Arc<OutShared>,
}

impl Output {
    fn open() -> Result<Self, SpeechError> {
        let host = crate::capture::audio_host().map_err(|e| SpeechError::Output(e.to_string()))?;
        let device = host
            .default_output_device()
            .ok_or_else(|| SpeechError::Output("the audio system has no output device".into()))?;
        let supported = device
            .default_output_config()
            .map_err(|e| SpeechError::Output(e.to_string()))?;
        let rate = supported.sample_rate();
        let capacity = rate as usize * RING_SECS;
        let shared = Arc::new(OutShared {
            clear: AtomicBool::new(false),
            first_sound_ns: AtomicU64::new(0),
            last_sound_ns: AtomicU64::new(0),
            base: Instant::now(),
        });
        // 40 ms buffers: with the sound server's default (seconds on PulseAudio) a reply would
        // go on that long after the person starts talking. A device that refuses a fixed size
        // gets the default; the first refusal is the error shown.
        let mut first_error = None;
        let mut opened = None;
        for buffer_size in [
            cpal::BufferSize::Fixed(rate / 25),
            cpal::BufferSize::Default,
        ] {
            let config = cpal::StreamConfig {
                buffer_size,
                ..supported.config()
            };
            let (producer, consumer) = rtrb::RingBuffer::<f32>::new(capacity);
            let built = match supported.sample_format() {
                SampleFormat::F32 => typed::<f32>(&device, &config, consumer, &shared),
                SampleFormat::I16 => typed::<i16>(&device, &config, consumer, &shared),
                SampleFormat::U16 => typed::<u16>(&device, &config, consumer, &shared),
                SampleFormat::I32 => typed::<i32>(&device, &config, consumer, &shared),
                other => Err(format!("sample format {other:?} is not supported")),
            };
            match built {
                Ok(stream) => {
                    opened = Some((stream, producer));
                    break;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let Some((stream, producer)) = opened else {
            return Err(SpeechError::Output(first_error.unwrap_or_default()));
        };
        stream
            .play()
            .map_err(|e| SpeechError::Output(e.to_string()))?;
        Ok(Self {
            _stream: stream,
            rate,
            ring: producer,
            capacity,
            shared,
        })
    }

    /// Queues samples, waiting for room; stops early when `cancelled` says so.
    fn push(&mut self, samples: &[f32], cancelled: impl Fn() -> bool) {
        let mut at = 0;
        while at < samples.len() {
            if cancelled() {
                return;
            }
            let n = (samples.len() - at).min(self.ring.slots());
            if n == 0 {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            if let Ok(chunk) = self.ring.write_chunk_uninit(n) {
                chunk.fill_from_iter(samples[at..at + n].iter().copied());
            }
            at += n;
        }
    }

    fn clear(&self) {
        self.shared.clear.store(true, Ordering::SeqCst);
    }

    fn buffered(&self) -> usize {
        if self.shared.clear.load(Ordering::SeqCst) {
            return 0;
        }
        self.capacity - self.ring.slots()
    }

    fn first_sound(&self) -> Option<Instant> {
        match self.shared.first_sound_ns.load(Ordering::SeqCst) {
            0 => None,
            ns => Some(self.shared.base + Duration::from_nanos(ns)),
        }
    }

    fn idle_for(&self) -> Duration {
        let last = self.shared.last_sound_ns.load(Ordering::SeqCst);
        self.shared
            .base
            .elapsed()
            .saturating_sub(Duration::from_nanos(last))
    }
}

fn typed<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    mut ring: rtrb::Consumer<f32>,
    shared: &Arc<OutShared>,
) -> Result<cpal::Stream, String>
where
    T: SizedSample + FromSample<f32>,
{
    let s = shared.clone();
    let channels = usize::from(config.channels.max(1));
    device
        .build_output_stream::<T, _, _>(
            *config,
            move |data: &mut [T], _| {
                // Real time: no allocation, no lock, nothing that blocks.
                if s.clear.swap(false, Ordering::SeqCst) {
                    let n = ring.slots();
                    if let Ok(chunk) = ring.read_chunk(n) {
                        chunk.commit_all();
                    }
                    // What sounds next is a new turn's first sound.
                    s.first_sound_ns.store(0, Ordering::SeqCst);
                }
                let mut sounded = false;
                for frame in data.chunks_mut(channels) {
                    let v = ring.pop().unwrap_or(0.0);
                    sounded |= v != 0.0;
                    for out in frame {
                        *out = T::from_sample(v);
                    }
                }
                if sounded {
                    let now = s.base.elapsed().as_nanos() as u64;
                    s.last_sound_ns.store(now, Ordering::SeqCst);
                    let _ = s.first_sound_ns.compare_exchange(
                        0,
                        now.max(1),
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                }
            },
            |e| tracing::warn!("sound output failed: {e}"),
            None,
        )
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_are_said_as_soon_as_they_are_whole() {
        let (done, rest) = complete_sentences("Hello there. What should it do? It");
        assert_eq!(done, ["Hello there.", "What should it do?"]);
        assert_eq!(rest, " It");
        let (done, rest) = complete_sentences("Version 2.5 is out");
        assert!(done.is_empty());
        assert_eq!(rest, "Version 2.5 is out");
        let (done, _) = complete_sentences("- one\n- two\n");
        assert_eq!(done, ["- one", "- two"]);
    }

    #[test]
    fn wav_is_read_also_when_streamed_with_unknown_sizes() {
        let mut wav = b"RIFF\xff\xff\xff\x7fWAVEfmt \x10\0\0\0\x01\0\x01\0\x22\x56\0\0\x44\xac\0\0\x02\0\x10\0data\xff\xff\xff\x7f".to_vec();
        wav.extend([0x00, 0x40, 0x00, 0xc0]);
        let s = read_wav(&wav).unwrap();
        assert_eq!(s.rate, 22_050);
        assert_eq!(s.samples, [0.5, -0.5]);
        assert!(read_wav(b"RIFF....WAVEjunk").is_err());
        assert!(read_wav(&[0u8; 3]).is_err());
        let mut float = wav.clone();
        float[20] = 3;
        assert!(read_wav(&float).is_err());
    }

    #[test]
    fn engines_come_from_the_setting() {
        assert_eq!(
            SpeechEngine::from_setting(Some("off"), None, None, None),
            SpeechEngine::Off
        );
        assert_eq!(
            SpeechEngine::from_setting(None, None, None, None),
            SpeechEngine::Espeak {
                voice: "en-us".into()
            }
        );
        assert!(matches!(
            SpeechEngine::from_setting(Some("http://h:1/v1/"), Some("nova"), None, None),
            SpeechEngine::Api { url, voice, .. } if url == "http://h:1/v1" && voice == "nova"
        ));
    }
}
