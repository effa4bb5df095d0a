//! Microphone capture (cpal): the chosen or default input device, any native rate and sample
//! format, converted to 16 kHz mono s16le ([`super::resample`]) and handed over in frames of
//! 50 ms through a bounded channel.
//!
//! The stream lives on its own thread (`audio-capture`): cpal streams are not `Send` everywhere,
//! and PulseAudio's `play()` blocks until the first data arrives, which must never hold up the UI
//! or the hotkey. The audio callback only copies samples into a bounded queue; that thread
//! converts them. A slow callback makes PulseAudio overflow, and cpal's pure-Rust PulseAudio
//! client then loses sample alignment (measured: speech became full-scale noise). Stopping (or
//! the device going away) flushes what was heard and closes the frame channel, which is the end
//! of speech for the ASR client.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait as _, HostTrait as _, StreamTrait as _};
use cpal::{FromSample, SampleFormat, SizedSample};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::mpsc;

use super::resample::{ToSpeechRate, downmix};
use crate::asr::audio::SAMPLE_RATE_HZ;

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
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InputDevice {
    pub name: String,
    pub is_default: bool,
    pub rate_hz: u32,
    pub channels: u16,
    pub format: String,
}

fn name_of(d: &cpal::Device) -> String {
    d.description()
        .map_or_else(|_| "(unnamed device)".to_owned(), |x| x.name().to_owned())
}

/// The sound system: PulseAudio (or `PipeWire`'s Pulse server) where one runs, else ALSA (Linux);
/// Core Audio on macOS. cpal gives a running PulseAudio one 2 s try and then settles for ALSA
/// without a word — whose devices on a PulseAudio desktop are not the user's — so that is said.
fn audio_host() -> cpal::Host {
    let host = cpal::default_host();
    #[cfg(target_os = "linux")]
    if host.id() != cpal::HostId::PulseAudio
        && cpal::available_hosts().contains(&cpal::HostId::PulseAudio)
    {
        tracing::warn!("PulseAudio is running but did not answer within 2 s: using ALSA's devices");
    }
    host
}

/// The input devices the audio system offers, the default one first.
pub fn input_devices() -> Result<Vec<InputDevice>, CaptureError> {
    let host = audio_host();
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

/// Reads a capture's input level (for a meter) from any thread.
#[derive(Clone)]
pub struct LevelProbe(Arc<Shared>);

impl LevelProbe {
    /// The input level of the latest audio, 0..1 (RMS).
    pub fn level(&self) -> f32 {
        f32::from_bits(self.0.level_bits.load(Ordering::Relaxed))
    }
}

/// A running capture. Dropping it stops it.
pub struct Capture {
    stop: SyncSender<Msg>,
    flushed: Mutex<Receiver<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
    pub device: String,
    pub rate_hz: u32,
    started: Instant,
}

#[derive(Default)]
struct Shared {
    /// RMS of the latest callback, as `f32` bits (0..1).
    level_bits: AtomicU32,
    /// Microseconds from `start` to the first callback, +1 (0 = none yet).
    first_frame_us: AtomicU64,
    /// Microseconds from `start` to the latest callback.
    last_frame_us: AtomicU64,
    dropped_frames: AtomicU64,
    /// Device frames received (for the log at the end).
    device_frames: AtomicU64,
    sent_frames: AtomicU64,
    error: Mutex<Option<String>>,
}

/// What reaches the capture thread.
enum Msg {
    /// Interleaved samples as the device gave them.
    Audio(Vec<f32>),
    Stop,
}

/// Device callbacks queued for the capture thread (about 5 s of 20 ms callbacks).
const QUEUE_CALLBACKS: usize = 256;

/// The capture thread's conversion state and the frame being filled.
struct Pipeline {
    channels: usize,
    mono: Vec<f32>,
    conv: ToSpeechRate,
    frame: Vec<i16>,
    /// Taken at the end: dropping it closes the channel, the end of speech.
    tx: Option<mpsc::Sender<Vec<i16>>>,
}

impl Pipeline {
    fn take(&mut self, interleaved: &[f32], shared: &Shared) {
        let Some(tx) = &self.tx else { return }; // stopped: the stream's last callbacks
        shared.device_frames.fetch_add(
            (interleaved.len() / self.channels.max(1)) as u64,
            Ordering::Relaxed,
        );
        downmix(interleaved, self.channels, &mut self.mono);
        let rms =
            (self.mono.iter().map(|s| s * s).sum::<f32>() / self.mono.len().max(1) as f32).sqrt();
        shared.level_bits.store(rms.to_bits(), Ordering::Relaxed);
        let mono = std::mem::take(&mut self.mono);
        self.conv.push(&mono, &mut self.frame);
        self.mono = mono;
        while self.frame.len() >= FRAME_SAMPLES {
            let rest = self.frame.split_off(FRAME_SAMPLES);
            let full = std::mem::replace(&mut self.frame, rest);
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
        let started = Instant::now();
        let shared = Arc::new(Shared::default());
        let (stop_tx, stop_rx) = sync_channel::<Msg>(QUEUE_CALLBACKS);
        let (ready_tx, ready_rx) = sync_channel::<Result<(String, u32), CaptureError>>(1);
        let (flushed_tx, flushed_rx) = sync_channel::<()>(1);
        let wanted = device.map(str::to_owned);
        let thread_shared = shared.clone();
        let error_stop = stop_tx.clone();
        let thread = std::thread::Builder::new()
            .name("audio-capture".into())
            .spawn(move || {
                run(
                    wanted.as_deref(),
                    frames,
                    &thread_shared,
                    started,
                    &stop_rx,
                    &error_stop,
                    &ready_tx,
                    &flushed_tx,
                );
            })
            .map_err(|e| CaptureError::Host(e.to_string()))?;
        let (device, rate_hz) = match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(CaptureError::Host(
                    "the audio system did not open the device within 5 s".into(),
                ));
            }
        };
        Ok(Self {
            stop: stop_tx,
            flushed: Mutex::new(flushed_rx),
            thread: Some(thread),
            shared,
            device,
            rate_hz,
            started,
        })
    }

    /// A handle that reads the input level after the capture has moved elsewhere.
    pub fn level_probe(&self) -> LevelProbe {
        LevelProbe(self.shared.clone())
    }

    /// The input level of the latest audio, 0..1 (RMS).
    pub fn level(&self) -> f32 {
        f32::from_bits(self.shared.level_bits.load(Ordering::Relaxed))
    }

    /// From `start` to the first audio delivered, once it has come.
    pub fn first_audio_after(&self) -> Option<Duration> {
        match self.shared.first_frame_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us - 1)),
        }
    }

    /// Why the capture cannot go on (the device went away or stopped delivering), if so.
    pub fn error(&self) -> Option<String> {
        if let Some(e) = self.shared.error.lock().clone() {
            return Some(e);
        }
        // Some audio systems remove a device without telling the stream: it just goes quiet.
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
        // Behind the queued audio, which the thread converts first; it drains quickly.
        let _ = self.stop.send(Msg::Stop);
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

#[allow(clippy::too_many_arguments)] // the thread's whole wiring, passed once
fn run(
    wanted: Option<&str>,
    frames: mpsc::Sender<Vec<i16>>,
    shared: &Arc<Shared>,
    started: Instant,
    queue: &Receiver<Msg>,
    to_queue: &SyncSender<Msg>,
    ready: &SyncSender<Result<(String, u32), CaptureError>>,
    flushed: &SyncSender<()>,
) {
    let host = audio_host();
    let opened = find_device(&host, wanted).and_then(|device| {
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
        };
        // 20 ms buffers: the default lets PulseAudio pick 2 s fragments on real hardware. Some
        // devices refuse a fixed size; for them the default is the fallback, and the first
        // refusal is the error shown.
        let mut first_error = None;
        let mut stream = None;
        for buffer_size in [
            cpal::BufferSize::Fixed(rate / 50),
            cpal::BufferSize::Default,
        ] {
            let config = cpal::StreamConfig {
                buffer_size,
                ..config
            };
            let sample_format = supported.sample_format();
            match build(&device, &config, sample_format, shared, started, to_queue) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let stream = stream.ok_or_else(|| open_err(first_error.unwrap_or_default()))?;
        Ok((name, rate, stream, pipeline))
    });
    let (name, rate, stream, mut pipeline) = match opened {
        Ok(v) => v,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok((name.clone(), rate)));
    if let Err(e) = stream.play() {
        *shared.error.lock() = Some(format!("the microphone {name:?} cannot start: {e}"));
    } else {
        while let Ok(Msg::Audio(samples)) = queue.recv() {
            pipeline.take(&samples, shared);
        }
    }
    // End the utterance first: closing a PulseAudio stream can take seconds, and nobody should
    // wait for that.
    pipeline.flush(shared);
    tracing::debug!(
        "capture of {name:?} ended after {:?}: {} device frames at {rate} Hz, {} frames of 50 ms sent, {} dropped",
        started.elapsed(),
        shared.device_frames.load(Ordering::Relaxed),
        shared.sent_frames.load(Ordering::Relaxed),
        shared.dropped_frames.load(Ordering::Relaxed),
    );
    let _ = flushed.send(());
    drop(stream);
}

fn build(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    format: SampleFormat,
    shared: &Arc<Shared>,
    started: Instant,
    queue: &SyncSender<Msg>,
) -> Result<cpal::Stream, String> {
    match format {
        SampleFormat::F32 => typed::<f32>(device, config, shared, started, queue),
        SampleFormat::I16 => typed::<i16>(device, config, shared, started, queue),
        SampleFormat::U16 => typed::<u16>(device, config, shared, started, queue),
        SampleFormat::I32 => typed::<i32>(device, config, shared, started, queue),
        SampleFormat::U8 => typed::<u8>(device, config, shared, started, queue),
        SampleFormat::F64 => typed::<f64>(device, config, shared, started, queue),
        other => Err(format!("sample format {other:?} is not supported")),
    }
}

fn typed<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    shared: &Arc<Shared>,
    started: Instant,
    queue: &SyncSender<Msg>,
) -> Result<cpal::Stream, String>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let s = shared.clone();
    let errors = shared.clone();
    let audio = queue.clone();
    let error_stop = queue.clone();
    let channels = u64::from(config.channels.max(1));
    device
        .build_input_stream::<T, _, _>(
            *config,
            move |data: &[T], _| {
                let now_us = started.elapsed().as_micros() as u64;
                if s.first_frame_us.load(Ordering::Relaxed) == 0 {
                    s.first_frame_us.store(now_us + 1, Ordering::Relaxed);
                }
                s.last_frame_us.store(now_us, Ordering::Relaxed);
                // Only a copy here; the capture thread does the rest.
                let samples = data.iter().map(|&v| v.to_sample::<f32>()).collect();
                if audio.try_send(Msg::Audio(samples)).is_err() {
                    let lost = data.len() as u64 / channels / u64::from(SAMPLE_RATE_HZ / 20);
                    s.dropped_frames.fetch_add(lost.max(1), Ordering::Relaxed);
                }
            },
            move |e| {
                let kind = e.kind();
                let message = if kind == cpal::ErrorKind::DeviceNotAvailable {
                    "the microphone went away (unplugged?); what was heard so far is kept"
                        .to_owned()
                } else {
                    format!("the microphone failed ({e}); what was heard so far is kept")
                };
                tracing::warn!("{message}");
                *errors.error.lock() = Some(message);
                let _ = error_stop.try_send(Msg::Stop);
            },
            None,
        )
        .map_err(|e| e.to_string())
}
