//! Capture: the microphone (cpal: the chosen or default input device, any native rate and sample
//! format), what the computer plays or one application ([`super::system_audio`]), or the
//! microphone and what plays mixed — converted to 16 kHz mono s16le ([`super::resample`]) and
//! handed over in frames of 50 ms through a bounded channel.
//!
//! The stream lives on its own thread (`audio-capture`): cpal streams are not `Send` everywhere,
//! and PulseAudio's `play()` blocks until the first data arrives, which must never hold up the UI
//! or the hotkey. The audio callback neither allocates nor locks: it writes the samples into a
//! preallocated single-producer/single-consumer ring ([`rtrb`], 5 s deep) and wakes that thread,
//! which converts them. A slow callback makes PulseAudio overflow, and cpal's pure-Rust
//! PulseAudio client then loses sample alignment (measured: speech became full-scale noise).
//! Stopping (or the device going away) flushes what was heard and closes the frame channel,
//! which is the end of speech for the ASR client.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::Thread;
use std::time::{Duration, Instant};

use candybar_core::asr::audio::SAMPLE_RATE_HZ;
use candybar_core::voice::{AudioSource, InputDevice, LevelMeter};
use cpal::traits::{DeviceTrait as _, HostTrait as _, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::resample::{ToSpeechRate, downmix};
use crate::system_audio::{self, Recorder, SystemAudioError, Target};

/// 50 ms of 16 kHz audio.
pub const FRAME_SAMPLES: usize = SAMPLE_RATE_HZ as usize / 20;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(
        "no microphone: the audio system lists no input device (check that one is plugged in and \
         not muted, or that PulseAudio/PipeWire is running)"
    )]
    NoDevice,
    #[error("no input device named {name:?}; available: {available}")]
    UnknownDevice { name: String, available: String },
    #[error("the microphone {device:?} cannot be opened: {reason}")]
    Open { device: String, reason: String },
    #[error("the audio system cannot list devices: {0}")]
    Host(String),
    #[error(transparent)]
    System(#[from] SystemAudioError),
}

fn name_of(d: &cpal::Device) -> String {
    d.description()
        .map_or_else(|_| "(unnamed device)".to_owned(), |x| x.name().to_owned())
}

/// Tries at the PulseAudio server before capture gives up on it (cpal waits up to 2 s each).
const PULSE_ATTEMPTS: u32 = 3;

/// The sound system: PulseAudio (or `PipeWire`'s Pulse server) where its socket is, else ALSA
/// (Linux); Core Audio on macOS. cpal's default gives a running PulseAudio one 2 s try and then
/// settles for ALSA without a word — whose devices on a PulseAudio desktop are not the user's, so
/// the user would record silence from a null device. Here a PulseAudio that is there is asked
/// again, each failure is logged with its reason, and one that never answers is an error the
/// user can act on, never a silent switch.
pub(crate) fn audio_host() -> Result<cpal::Host, CaptureError> {
    #[cfg(target_os = "linux")]
    if cpal::available_hosts().contains(&cpal::HostId::PulseAudio) {
        let mut last = String::new();
        for attempt in 1..=PULSE_ATTEMPTS {
            let asked = Instant::now();
            match cpal::host_from_id(cpal::HostId::PulseAudio) {
                Ok(host) => {
                    if attempt > 1 {
                        tracing::info!("PulseAudio answered on attempt {attempt}");
                    }
                    return Ok(host);
                }
                Err(e) => {
                    tracing::warn!(
                        "PulseAudio did not answer (attempt {attempt} of {PULSE_ATTEMPTS}, after {:?}): {e}",
                        asked.elapsed()
                    );
                    last = e.to_string();
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        return Err(CaptureError::Host(format!(
            "PulseAudio is there but does not answer ({last}); check it with `pactl info` or \
             restart it with `pulseaudio -k`"
        )));
    }
    Ok(cpal::default_host())
}

/// The input devices the audio system offers, the default one first.
pub fn input_devices() -> Result<Vec<InputDevice>, CaptureError> {
    let host = audio_host()?;
    let default = host.default_input_device().map(|d| name_of(&d));
    let devices = host
        .input_devices()
        .map_err(|e| CaptureError::Host(e.to_string()))?;
    let mut out: Vec<InputDevice> = devices
        .filter_map(|d| {
            let cfg = d.default_input_config().ok()?;
            let name = name_of(&d);
            Some(InputDevice {
                is_default: default.as_deref() == Some(name.as_str()),
                name,
                rate_hz: cfg.sample_rate(),
                channels: cfg.channels(),
                format: format!("{:?}", cfg.sample_format()),
            })
        })
        .collect();
    out.sort_by_key(|d| !d.is_default);
    Ok(out)
}

/// A running capture. Dropping it stops it.
pub struct Capture {
    flushed: Mutex<Receiver<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
    pub device: String,
    pub rate_hz: u32,
    started: Instant,
}

#[derive(Default)]
struct Shared {
    /// RMS of the latest audio.
    level: LevelMeter,
    /// Set to end the capture (by [`Capture::stop`], or the stream's error callback).
    stop: AtomicBool,
    /// The `audio-capture` thread, which the callback wakes.
    thread: std::sync::OnceLock<Thread>,
    /// Microseconds from `start` to the first callback, +1 (0 = none yet).
    first_frame_us: AtomicU64,
    /// Microseconds from `start` to the latest callback.
    last_frame_us: AtomicU64,
    dropped_frames: AtomicU64,
    /// Device frames received (for the log at the end).
    device_frames: AtomicU64,
    sent_frames: AtomicU64,
    error: Mutex<Option<String>>,
    /// What the recording is doing that the user should know, while it goes on ("Firefox
    /// stopped playing; waiting for it to play again").
    notice: Mutex<Option<String>>,
    /// No microphone in the recording: what plays may pause for minutes, so silence from the
    /// source is no sign that it went away (its recorder ending is).
    quiet_ok: AtomicBool,
}

/// Seconds of device audio the ring between the callback and the capture thread holds.
const RING_SECS: usize = 5;

impl Shared {
    /// Audio arrived now: the first and latest arrival, from `started` (atomics only: the audio
    /// callback calls it).
    fn note_audio(&self, started: Instant) {
        let now_us = started.elapsed().as_micros() as u64;
        if self.first_frame_us.load(Ordering::Relaxed) == 0 {
            self.first_frame_us.store(now_us + 1, Ordering::Relaxed);
        }
        self.last_frame_us.store(now_us, Ordering::Relaxed);
    }

    /// Asks the capture thread to end (it flushes what it has).
    fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }
}

/// The capture thread's conversion state and the frame being filled.
struct Pipeline {
    channels: usize,
    mono: Vec<f32>,
    conv: ToSpeechRate,
    frame: Vec<i16>,
    /// Taken at the end: dropping it closes the channel, the end of speech.
    tx: Option<mpsc::Sender<Vec<i16>>>,
    /// With the microphone and what plays together: what plays (16 kHz), added to each frame.
    mix: Option<std::collections::VecDeque<f32>>,
}

fn rms_i16(frame: &[i16]) -> f32 {
    let sum: f32 = frame
        .iter()
        .map(|&s| {
            let v = f32::from(s) / 32_768.0;
            v * v
        })
        .sum();
    (sum / frame.len().max(1) as f32).sqrt()
}

/// What plays, queued for mixing, is held at most this long (the microphone stalled).
const MIX_MAX_SAMPLES: usize = SAMPLE_RATE_HZ as usize;

impl Pipeline {
    fn take(&mut self, interleaved: &[f32], shared: &Shared) {
        let Some(tx) = &self.tx else { return }; // stopped: the stream's last callbacks
        shared.device_frames.fetch_add(
            (interleaved.len() / self.channels.max(1)) as u64,
            Ordering::Relaxed,
        );
        downmix(interleaved, self.channels, &mut self.mono);
        if self.mix.is_none() {
            let rms = (self.mono.iter().map(|s| s * s).sum::<f32>()
                / self.mono.len().max(1) as f32)
                .sqrt();
            shared.level.set(rms);
        }
        let mono = std::mem::take(&mut self.mono);
        self.conv.push(&mono, &mut self.frame);
        self.mono = mono;
        while self.frame.len() >= FRAME_SAMPLES {
            let rest = self.frame.split_off(FRAME_SAMPLES);
            let mut full = std::mem::replace(&mut self.frame, rest);
            if let Some(mix) = &mut self.mix {
                for s in &mut full {
                    let other = mix.pop_front().unwrap_or(0.0);
                    *s = (f32::from(*s) + other * 32_767.0).clamp(-32_768.0, 32_767.0) as i16;
                }
                // The meter shows what is recorded: the microphone and what plays together.
                shared.level.set(rms_i16(&full));
            }
            if tx.try_send(full).is_err() {
                shared.dropped_frames.fetch_add(1, Ordering::Relaxed);
            } else {
                shared.sent_frames.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The end: the resampler's tail and the last partial frame. Never blocks: a consumer that
    /// stopped taking frames gets them counted as dropped instead of hanging the capture.
    fn flush(&mut self, shared: &Shared) {
        let Some(tx) = self.tx.take() else { return };
        self.conv.finish(&mut self.frame);
        for chunk in std::mem::take(&mut self.frame).chunks(FRAME_SAMPLES) {
            if tx.try_send(chunk.to_vec()).is_err() {
                shared.dropped_frames.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Capture {
    /// Opens `device` (a name from [`input_devices`], or the default) and starts sending frames
    /// to `frames`. Returns once the stream is built — within milliseconds — or with an error
    /// that says what to do. Audio flows as soon as the device delivers it.
    pub fn start(
        device: Option<&str>,
        frames: mpsc::Sender<Vec<i16>>,
    ) -> Result<Self, CaptureError> {
        Self::start_source(&AudioSource::Mic, device, frames)
    }

    /// [`Capture::start`] for any source: the microphone (`device`), what the computer plays,
    /// one application, or the microphone and what plays mixed.
    pub fn start_source(
        source: &AudioSource,
        device: Option<&str>,
        frames: mpsc::Sender<Vec<i16>>,
    ) -> Result<Self, CaptureError> {
        let started = Instant::now();
        // Which stream to follow is settled here, so a wrong app name is an error at once.
        let target = match source {
            AudioSource::Mic => None,
            AudioSource::System | AudioSource::MicAndSystem => Some(Target::DefaultMonitor),
            AudioSource::App(name) => Some(Target::App {
                app: system_audio::find_app(name)?,
                wanted: name.clone(),
            }),
        };
        let with_mic = source.uses_mic();
        let shared = Arc::new(Shared {
            quiet_ok: AtomicBool::new(!with_mic),
            ..Shared::default()
        });
        let (ready_tx, ready_rx) = sync_channel::<Result<(String, u32), CaptureError>>(1);
        let (flushed_tx, flushed_rx) = sync_channel::<()>(1);
        let wanted = device.map(str::to_owned);
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("audio-capture".into())
            .spawn(move || {
                let _ = thread_shared.thread.set(std::thread::current());
                let wiring = Wiring {
                    frames,
                    shared: &thread_shared,
                    started,
                    ready: &ready_tx,
                    flushed: &flushed_tx,
                };
                run(with_mic, wanted.as_deref(), target.as_ref(), wiring);
            })
            .map_err(|e| CaptureError::Host(e.to_string()))?;
        // PulseAudio may take a few tries (see `audio_host`) before the device opens.
        let (device, rate_hz) = match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(CaptureError::Host(
                    "the audio system did not open the device within 10 s".into(),
                ));
            }
        };
        Ok(Self {
            flushed: Mutex::new(flushed_rx),
            thread: Some(thread),
            shared,
            device,
            rate_hz,
            started,
        })
    }

    /// A handle that reads the input level after the capture has moved elsewhere.
    pub fn level_meter(&self) -> LevelMeter {
        self.shared.level.clone()
    }

    /// The input level of the latest audio, 0..1 (RMS).
    pub fn level(&self) -> f32 {
        self.shared.level.level()
    }

    /// From `start` to the first audio delivered, once it has come.
    pub fn first_audio_after(&self) -> Option<Duration> {
        match self.shared.first_frame_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us - 1)),
        }
    }

    /// What the recording is doing that the user should know, while it goes on (an
    /// application followed across its streams: waiting for it, recording it again).
    pub fn notice(&self) -> Option<String> {
        self.shared.notice.lock().clone()
    }

    /// Why the capture cannot go on (the device went away or stopped delivering), if so.
    pub fn error(&self) -> Option<String> {
        if let Some(e) = self.shared.error.lock().clone() {
            return Some(e);
        }
        // Some audio systems remove a device without telling the stream: it just goes quiet.
        if self.shared.quiet_ok.load(Ordering::Relaxed) {
            return None;
        }
        let started = self.first_audio_after().is_some();
        let last = Duration::from_micros(self.shared.last_frame_us.load(Ordering::Relaxed));
        (started && self.started.elapsed().saturating_sub(last) > Duration::from_secs(2)).then(|| {
            format!(
                "the microphone {:?} stopped delivering audio (unplugged?); what was heard so far is kept",
                self.device
            )
        })
    }

    /// Frames the consumer did not take in time (lost audio; should stay 0).
    pub fn dropped_frames(&self) -> u64 {
        self.shared.dropped_frames.load(Ordering::Relaxed)
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops, flushes the last audio and closes the frame channel (end of speech).
    pub fn stop(mut self) {
        self.finish();
    }

    /// Signals the stop and waits until the last audio is handed over; the stream itself closes
    /// in the background (the thread ends by itself).
    fn finish(&mut self) {
        // The thread converts the audio still in the ring first; it drains quickly.
        self.shared.request_stop();
        if let Some(t) = self.thread.take() {
            if self
                .flushed
                .lock()
                .recv_timeout(Duration::from_secs(2))
                .is_err()
            {
                tracing::warn!("the microphone did not stop within 2 s");
            }
            drop(t);
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.finish();
    }
}

fn find_device(host: &cpal::Host, wanted: Option<&str>) -> Result<cpal::Device, CaptureError> {
    let Some(name) = wanted else {
        return host.default_input_device().ok_or(CaptureError::NoDevice);
    };
    let devices: Vec<cpal::Device> = host
        .input_devices()
        .map_err(|e| CaptureError::Host(e.to_string()))?
        .collect();
    if let Some(d) = devices.iter().find(|d| name_of(d) == name) {
        return Ok(d.clone());
    }
    Err(CaptureError::UnknownDevice {
        name: name.to_owned(),
        available: devices.iter().map(name_of).collect::<Vec<_>>().join(", "),
    })
}

/// What the capture thread is handed.
struct Wiring<'a> {
    frames: mpsc::Sender<Vec<i16>>,
    shared: &'a Arc<Shared>,
    started: Instant,
    ready: &'a SyncSender<Result<(String, u32), CaptureError>>,
    flushed: &'a SyncSender<()>,
}

/// The microphone's stream, opened.
struct Mic {
    name: String,
    rate: u32,
    stream: cpal::Stream,
    pipeline: Pipeline,
    ring: rtrb::Consumer<f32>,
}

/// The recorder of what plays, on its own thread, filling a ring (mono, at
/// [`system_audio::RECORD_RATE_HZ`]).
struct Playing {
    stopper: system_audio::Stopper,
    ring: rtrb::Consumer<f32>,
}

/// The capture thread: opens the microphone (`device`, or the default) when `with_mic`, and/or
/// the recorder of what plays (`target`), then converts until stopped.
fn run(with_mic: bool, device: Option<&str>, target: Option<&Target>, w: Wiring<'_>) {
    let Wiring {
        frames,
        shared,
        started,
        ready,
        flushed,
    } = w;
    let opened = open_sources(with_mic, device, target, frames, shared, started);
    let mut sources = match opened {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let (name, rate) = (sources.name.clone(), sources.rate);
    let _ = ready.send(Ok((name.clone(), rate)));
    let played = sources.stream.as_ref().map_or(Ok(()), StreamTrait::play);
    if let Err(e) = played {
        *shared.error.lock() = Some(format!("the microphone {name:?} cannot start: {e}"));
    } else {
        pump(&mut sources, shared);
    }
    if let Some(p) = &sources.playing {
        p.stopper.stop();
    }
    // End the utterance first: closing a PulseAudio stream can take seconds, and nobody should
    // wait for that.
    sources.pipeline.flush(shared);
    tracing::debug!(
        "capture of {name:?} ended after {:?}: {} device frames at {rate} Hz, {} frames of 50 ms sent, {} dropped",
        started.elapsed(),
        shared.device_frames.load(Ordering::Relaxed),
        shared.sent_frames.load(Ordering::Relaxed),
        shared.dropped_frames.load(Ordering::Relaxed),
    );
    let _ = flushed.send(());
    drop(sources);
}

/// What the capture thread reads from.
struct Sources {
    name: String,
    rate: u32,
    stream: Option<cpal::Stream>,
    pipeline: Pipeline,
    mic_ring: Option<rtrb::Consumer<f32>>,
    playing: Option<Playing>,
}

fn open_sources(
    with_mic: bool,
    device: Option<&str>,
    target: Option<&Target>,
    frames: mpsc::Sender<Vec<i16>>,
    shared: &Arc<Shared>,
    started: Instant,
) -> Result<Sources, CaptureError> {
    let playing = target
        .map(|t| start_playing(t, shared, started, !with_mic))
        .transpose()?;
    let described = target.map(Target::describe).unwrap_or_default();
    if !with_mic {
        let conv = ToSpeechRate::new(system_audio::RECORD_RATE_HZ)
            .map_err(|e| CaptureError::Host(e.to_string()))?;
        return Ok(Sources {
            name: described,
            rate: system_audio::RECORD_RATE_HZ,
            stream: None,
            pipeline: Pipeline {
                channels: 1,
                mono: Vec::new(),
                conv,
                frame: Vec::with_capacity(FRAME_SAMPLES * 2),
                tx: Some(frames),
                mix: None,
            },
            mic_ring: None,
            playing,
        });
    }
    let mic = match open_mic(device, frames, shared, started) {
        Ok(m) => m,
        Err(e) => {
            if let Some(p) = &playing {
                p.stopper.stop();
            }
            return Err(e);
        }
    };
    let mut pipeline = mic.pipeline;
    let name = if playing.is_some() {
        pipeline.mix = Some(std::collections::VecDeque::new());
        format!("{} + {described}", mic.name)
    } else {
        mic.name
    };
    Ok(Sources {
        name,
        rate: mic.rate,
        stream: Some(mic.stream),
        pipeline,
        mic_ring: Some(mic.ring),
        playing,
    })
}

/// Converts what arrives until stopped. The callback (or the recorder's reader) wakes this
/// thread; the timeout is only a safety net.
fn pump(sources: &mut Sources, shared: &Shared) {
    // Mixing: what plays brought to 16 kHz on its own, then added to the microphone's frames.
    let mut mix_conv = ToSpeechRate::new(system_audio::RECORD_RATE_HZ).ok();
    let mut mix_16k: Vec<i16> = Vec::new();
    let mut samples = Vec::new();
    let pipeline = &mut sources.pipeline;
    loop {
        let stopping = shared.stop.load(Ordering::Acquire);
        if let Some(p) = &mut sources.playing {
            drain(&mut p.ring, &mut samples);
            match (&mut pipeline.mix, &mut mix_conv) {
                (Some(mix), Some(conv)) => {
                    mix_16k.clear();
                    conv.push(&samples, &mut mix_16k);
                    mix.extend(mix_16k.iter().map(|&s| f32::from(s) / 32_768.0));
                    let over = mix.len().saturating_sub(MIX_MAX_SAMPLES);
                    mix.drain(..over);
                }
                _ if !samples.is_empty() => pipeline.take(&samples, shared),
                _ => {}
            }
        }
        if let Some(ring) = &mut sources.mic_ring {
            drain(ring, &mut samples);
            if !samples.is_empty() {
                pipeline.take(&samples, shared);
            }
        }
        if stopping {
            break;
        }
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

/// Moves what a ring holds into `samples` (cleared first).
fn drain(ring: &mut rtrb::Consumer<f32>, samples: &mut Vec<f32>) {
    samples.clear();
    if let Ok(chunk) = ring.read_chunk(ring.slots()) {
        let (a, b) = chunk.as_slices();
        samples.extend_from_slice(a);
        samples.extend_from_slice(b);
        chunk.commit_all();
    }
}

/// Starts recording what plays; a reader thread fills the ring and wakes the capture thread.
/// `alone`: no microphone, so this source's timing is the recording's.
fn start_playing(
    target: &Target,
    shared: &Arc<Shared>,
    started: Instant,
    alone: bool,
) -> Result<Playing, CaptureError> {
    let mut recorder = Recorder::start(target)?;
    let stopper = recorder.stopper();
    let (mut producer, consumer) =
        rtrb::RingBuffer::<f32>::new(system_audio::RECORD_RATE_HZ as usize * RING_SECS);
    let s = shared.clone();
    let target = target.clone();
    std::thread::Builder::new()
        .name("system-audio".into())
        .spawn(move || {
            let mut take = |samples: &[f32]| {
                if alone {
                    s.note_audio(started);
                }
                let n = producer
                    .write_chunk_uninit(samples.len().min(producer.slots()))
                    .map_or(0, |chunk| chunk.fill_from_iter(samples.iter().copied()));
                if n < samples.len() {
                    s.dropped_frames.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(t) = s.thread.get() {
                    t.unpark();
                }
            };
            let why = follow(&mut recorder, &target, &s, &mut take);
            if let Some(why) = why
                && !s.stop.load(Ordering::Acquire)
            {
                let message = format!(
                    "recording {} ended: {why}; what was heard so far is kept",
                    target.describe()
                );
                tracing::warn!("{message}");
                *s.error.lock() = Some(message);
                s.request_stop();
            }
        })
        .map_err(|e| CaptureError::Host(e.to_string()))?;
    Ok(Playing {
        stopper,
        ring: consumer,
    })
}

/// How often the sound server is asked whether a followed application plays again.
const APP_POLL: Duration = Duration::from_millis(250);

/// Records `target` until stopped. One application is followed across its streams: when one
/// ends, the recording waits (saying so, and sending silence meanwhile, so the server does not
/// take the quiet for a client gone) for the application's next one and goes on with it.
/// Returns why the recording ended by itself, or `None` when it was stopped.
fn follow(
    recorder: &mut Recorder,
    target: &Target,
    s: &Shared,
    take: &mut impl FnMut(&[f32]),
) -> Option<String> {
    let stopped = || s.stop.load(Ordering::Acquire);
    let step_samples =
        system_audio::RECORD_RATE_HZ as usize * system_audio::WAIT_STEP.as_millis() as usize / 1000;
    let silence = vec![0.0f32; step_samples];
    // Streams that end as soon as they are recorded (a stream listed but gone, a recorder
    // refused): a few are waited out, more end the recording instead of a busy loop.
    let mut quick_ends = 0;
    let mut since = Instant::now();
    loop {
        let why = recorder.read_into(take);
        if stopped() {
            return None;
        }
        let Target::App { app, wanted } = target else {
            return Some(why);
        };
        if since.elapsed() < Duration::from_secs(1) {
            quick_ends += 1;
            if quick_ends > 5 {
                return Some(why);
            }
            std::thread::sleep(APP_POLL);
        } else {
            quick_ends = 0;
        }
        let waiting = format!("{} stopped playing; waiting for it to play again", app.name);
        tracing::info!("{waiting} ({why})");
        *s.notice.lock() = Some(waiting);
        let next = match system_audio::wait_for_app(wanted, APP_POLL, stopped, || take(&silence)) {
            Ok(Some(next)) => next,
            Ok(None) => return None,
            Err(e) => return Some(e.to_string()),
        };
        let again = format!("{} plays again; recording it", next.name);
        let next = Target::App {
            app: next,
            wanted: wanted.clone(),
        };
        if let Err(e) = recorder.restart(&next) {
            return Some(e.to_string());
        }
        since = Instant::now();
        // A stop that came while the new stream was being opened found no recorder to end
        // (the pid is published under the lock the stopper signals under, before this check).
        if stopped() {
            recorder.stopper().stop();
        }
        tracing::info!("{again}");
        *s.notice.lock() = Some(again);
    }
}

/// Opens the microphone: the device, its stream (not yet playing) and the conversion to 16 kHz.
fn open_mic(
    wanted: Option<&str>,
    frames: mpsc::Sender<Vec<i16>>,
    shared: &Arc<Shared>,
    started: Instant,
) -> Result<Mic, CaptureError> {
    let host = audio_host()?;
    let device = find_device(&host, wanted)?;
    let name = name_of(&device);
    let open_err = |reason: String| CaptureError::Open {
        device: name.clone(),
        reason,
    };
    let supported = device
        .default_input_config()
        .map_err(|e| open_err(e.to_string()))?;
    let rate = supported.sample_rate();
    let config = supported.config();
    let conv = ToSpeechRate::new(rate).map_err(|e| open_err(e.to_string()))?;
    let pipeline = Pipeline {
        channels: usize::from(config.channels.max(1)),
        mono: Vec::new(),
        conv,
        frame: Vec::with_capacity(FRAME_SAMPLES * 2),
        tx: Some(frames),
        mix: None,
    };
    // 20 ms buffers: the default lets PulseAudio pick 2 s fragments on real hardware. Some
    // devices refuse a fixed size; for them the default is the fallback, and the first refusal
    // is the error shown.
    let mut first_error = None;
    let ring_samples = rate as usize * usize::from(config.channels.max(1)) * RING_SECS;
    for buffer_size in [
        cpal::BufferSize::Fixed(rate / 50),
        cpal::BufferSize::Default,
    ] {
        let config = cpal::StreamConfig {
            buffer_size,
            ..config
        };
        let sample_format = supported.sample_format();
        let (producer, consumer) = rtrb::RingBuffer::<f32>::new(ring_samples);
        match build(&device, &config, sample_format, shared, started, producer) {
            Ok(stream) => {
                return Ok(Mic {
                    name,
                    rate,
                    stream,
                    pipeline,
                    ring: consumer,
                });
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(open_err(first_error.unwrap_or_default()))
}

fn build(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    format: SampleFormat,
    shared: &Arc<Shared>,
    started: Instant,
    ring: rtrb::Producer<f32>,
) -> Result<cpal::Stream, String> {
    match format {
        SampleFormat::F32 => typed::<f32>(device, config, shared, started, ring),
        SampleFormat::I16 => typed::<i16>(device, config, shared, started, ring),
        SampleFormat::U16 => typed::<u16>(device, config, shared, started, ring),
        SampleFormat::I32 => typed::<i32>(device, config, shared, started, ring),
        SampleFormat::U8 => typed::<u8>(device, config, shared, started, ring),
        SampleFormat::F64 => typed::<f64>(device, config, shared, started, ring),
        other => Err(format!("sample format {other:?} is not supported")),
    }
}

fn typed<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    shared: &Arc<Shared>,
    started: Instant,
    ring: rtrb::Producer<f32>,
) -> Result<cpal::Stream, String>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let s = shared.clone();
    let errors = shared.clone();
    let channels = u64::from(config.channels.max(1));
    let mut ring = ring;
    let built = device.build_input_stream::<T, _, _>(
        *config,
        move |data: &[T], _| {
            // Real time: no allocation, no lock, nothing that blocks.
            s.note_audio(started);
            let n = ring
                .write_chunk_uninit(data.len().min(ring.slots()))
                .map_or(0, |chunk| {
                    chunk.fill_from_iter(data.iter().map(|&v| v.to_sample::<f32>()))
                });
            if n < data.len() {
                let lost = (data.len() - n) as u64 / channels / u64::from(SAMPLE_RATE_HZ / 20);
                s.dropped_frames.fetch_add(lost.max(1), Ordering::Relaxed);
            }
            if let Some(t) = s.thread.get() {
                t.unpark();
            }
        },
        move |e| {
            let kind = e.kind();
            let message = if kind == cpal::ErrorKind::DeviceNotAvailable {
                "the microphone went away (unplugged?); what was heard so far is kept".to_owned()
            } else {
                format!("the microphone failed ({e}); what was heard so far is kept")
            };
            tracing::warn!("{message}");
            *errors.error.lock() = Some(message);
            errors.request_stop();
        },
        None,
    );
    built.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mixed with what plays, the meter shows the recording, not the microphone alone: a quiet
    /// microphone while the other side talks still moves it.
    #[test]
    fn the_meter_of_a_meeting_shows_what_plays_too() {
        let (tx, mut rx) = mpsc::channel(64);
        let mut pipeline = Pipeline {
            channels: 1,
            mono: Vec::new(),
            conv: ToSpeechRate::new(SAMPLE_RATE_HZ).unwrap(),
            frame: Vec::new(),
            tx: Some(tx),
            mix: Some(
                (0..SAMPLE_RATE_HZ)
                    .map(|k| 0.3 * (k as f32 * 0.2).sin())
                    .collect(),
            ),
        };
        let shared = Shared::default();
        pipeline.take(&vec![0.0; FRAME_SAMPLES * 4], &shared);
        let level = shared.level.level();
        assert!((0.15..0.3).contains(&level), "the meter shows {level}");
        assert!(rx.try_recv().is_ok(), "no frame was sent");
        // A short read that completes no frame leaves the meter on the mix (no flicker to 0).
        pipeline.take(&[0.0; 10], &shared);
        assert!(
            shared.level.level() > 0.15,
            "the meter fell to the microphone alone"
        );
        // The microphone alone (nothing plays): silence is silence.
        pipeline.mix = None;
        pipeline.take(&vec![0.0; FRAME_SAMPLES], &shared);
        assert!(shared.level.level() < 0.001);
    }
}
