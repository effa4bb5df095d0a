//! `candybar bench longform`: a long session — a meeting, a video — through the same client and
//! server a `dictate --source system` session uses, and the memory it takes.
//!
//! The five fixture clips, each followed by two seconds of silence (the pauses that end
//! utterances), repeat until `--minutes` of audio; the dictation client streams them in 50 ms
//! frames to the built-in server (in this process), as fast as the server transcribes them
//! (TCP and the client's frame channel hold the feeder back). Memory is the process's resident
//! set — client and server together — sampled every five minutes of audio. The audio does not
//! come through PulseAudio here (an hour of it would take an hour); what is measured is what
//! grows with a session's length: the client's kept audio, the text and its segments, the
//! server's per-connection state.

use std::time::Instant;

use candybar_core::asr::wer;
use candybar_voice::client::{self, ClientConfig};
use clap::Args;
use serde_json::json;
use tokio::sync::mpsc;

#[derive(Args, Debug)]
pub struct LongformBenchArgs {
    /// The model (a path or a name in the model directory)
    #[arg(long, value_name = "PATH|NAME", default_value = "tiny.en")]
    model: String,
    /// Minutes of audio in the session
    #[arg(long, default_value_t = 60)]
    minutes: u64,
}

/// 50 ms of 16 kHz audio.
const FRAME: usize = 800;
/// Resident memory is sampled every this many minutes of audio sent.
const SAMPLE_EVERY_MIN: u64 = 5;

#[allow(clippy::too_many_lines)] // set up, feed, sample, report: one run
pub async fn bench_longform(a: &LongformBenchArgs) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        (1..=24 * 60).contains(&a.minutes),
        "--minutes {} is out of range (1 to 1440)",
        a.minutes
    );
    let model = candybar_asr::engine::resolve_model(&a.model)?;
    let (addr, stop, server) = super::wlk::start_server(&model, None).await?;

    // The clips and their scripts, each clip followed by two seconds of silence.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/speech");
    let mut clips = Vec::new();
    for n in 1..=5 {
        let samples = candybar_voice::resample::read_wav_16k(&dir.join(format!("utt{n:02}.wav")))?;
        let script = std::fs::read_to_string(dir.join(format!("utt{n:02}.txt")))?;
        let mut pcm = samples;
        pcm.extend(std::iter::repeat_n(0i16, 32_000));
        clips.push((pcm, script));
    }
    let total_samples = a.minutes as usize * 60 * 16_000;
    let total_min = a.minutes;

    let (tx, rx) = mpsc::channel::<Vec<i16>>(4096);
    let cfg = ClientConfig {
        url: format!("ws://{addr}/asr"),
        ..ClientConfig::default()
    };
    let rss_start = super::rss_mib().0;
    let started = Instant::now();
    let (sampled_tx, mut sampled_rx) = mpsc::channel::<(u64, f64, f64)>(1024);
    let feeder = tokio::spawn(async move {
        let mut sent = 0usize;
        let mut said = Vec::new();
        let mut next_sample_min = SAMPLE_EVERY_MIN;
        'feed: for (pcm, script) in clips.iter().cycle() {
            for frame in pcm.chunks(FRAME) {
                if tx.send(frame.to_vec()).await.is_err() {
                    break 'feed;
                }
                sent += frame.len();
                let minutes = (sent / 16_000 / 60) as u64;
                if minutes >= next_sample_min {
                    let rss = super::rss_mib().0;
                    // Progress for whoever waits (the hour takes minutes): to stderr, the JSON
                    // stays alone on stdout.
                    eprintln!(
                        "longform: {minutes} of {total_min} min of audio sent after {:.0} s, \
                         resident memory {rss:.1} MiB",
                        started.elapsed().as_secs_f64()
                    );
                    let _ = sampled_tx.try_send((minutes, rss, started.elapsed().as_secs_f64()));
                    next_sample_min += SAMPLE_EVERY_MIN;
                }
                if sent >= total_samples {
                    break 'feed;
                }
            }
            said.push(script.trim().to_owned());
        }
        said
    });
    let done = client::dictate(&cfg, rx, |_| {}).await;
    let said = feeder.await?;
    let wall_secs = started.elapsed().as_secs_f64();
    let (rss_end, rss_peak) = super::rss_mib();
    let _ = stop.send(());
    let _ = server.await;
    let done = done.map_err(|f| anyhow::anyhow!("the session failed: {}", f.error))?;
    let mut samples = Vec::new();
    while let Ok(s) = sampled_rx.try_recv() {
        samples.push(json!({"audio_min": s.0, "rss_mib": s.1, "wall_secs": s.2.round()}));
    }
    // The clips that were sent whole, against the text: the session's words stay right to the
    // end (a clip cut by the end may be half-heard; it is left out of the reference).
    let reference = said.join(" ");
    let heard_words = wer::words(&done.text).len();
    let reference_words = wer::words(&reference).len();
    let error_rate = wer::wer(&reference, &done.text);
    Ok(json!({
        "bench": "longform",
        "model": model.display().to_string(),
        "audio_minutes": done.audio_ms as f64 / 60_000.0,
        "wall_secs": wall_secs,
        "realtime_factor": wall_secs / (done.audio_ms as f64 / 1000.0).max(0.001),
        "segments": done.segments.len(),
        "words_heard": heard_words,
        "words_said": reference_words,
        "wer": error_rate,
        "rss_mib_start": rss_start,
        "rss_mib_end": rss_end,
        "rss_mib_peak": rss_peak,
        "rss_mib_every_5_min": samples,
        "note": "the dictation client and the built-in server in one process; audio from the \
                 fixture clips, fed as fast as it is transcribed (not through PulseAudio)",
    }))
}
