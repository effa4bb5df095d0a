//! `candybar bench wlk`: the server as WhisperLiveKit's clients see it, and under many clients.
//!
//! 1. Each fixture streamed in real time in WhisperLiveKit's protocol (a browser's `Origin`, raw
//!    PCM in 100 ms frames, its empty frame at the end): from the first voiced frame sent to the
//!    first message with words, and from the last voiced frame sent to the last message whose
//!    words changed (what WhisperLiveKit's page shows).
//! 2. `--clients N` (4) clients of our protocol streaming the fixtures at once, in real time:
//!    end of speech → final, p95, and the process's resident memory before and after (the
//!    server runs in this process).

use std::time::{Duration, Instant};

use candybar_core::asr::vad::{DEFAULT_THRESHOLD_RMS, FRAME_SAMPLES, SpeechTracker};
use clap::Args;

use super::quantiles;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

#[derive(Args, Debug)]
pub struct WlkBenchArgs {
    /// The model (a path or a name in the model directory)
    #[arg(long, value_name = "PATH|NAME", default_value = "tiny.en")]
    model: String,
    /// Times each clip is streamed
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// The server's `--early-decode-ms` (silence after speech that starts the final decode);
    /// default: the server's
    #[arg(long, value_name = "MS")]
    early_decode_ms: Option<u32>,
    /// Clients streaming at once in the second part
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    clients: u16,
}

/// A clip as 16 kHz s16le bytes, with the first and last voiced 20 ms frame (in samples).
struct Clip {
    name: String,
    pcm: Vec<u8>,
    onset: usize,
    end: usize,
}

fn clips() -> anyhow::Result<Vec<Clip>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/speech");
    let mut paths: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let samples = candybar_asr::wav::read_wav(p)?;
            let voiced: Vec<usize> = samples
                .chunks(FRAME_SAMPLES)
                .enumerate()
                .filter(|(_, f)| {
                    let mut t = SpeechTracker::new(DEFAULT_THRESHOLD_RMS, 0);
                    t.push(f);
                    t.heard_speech()
                })
                .map(|(i, _)| i * FRAME_SAMPLES)
                .collect();
            let pcm = samples
                .iter()
                .flat_map(|s| ((s * 32_768.0).clamp(-32_768.0, 32_767.0) as i16).to_le_bytes())
                .collect();
            Ok(Clip {
                name: p
                    .file_stem()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                pcm,
                onset: voiced.first().copied().unwrap_or(0),
                end: voiced.last().map_or(samples.len(), |v| v + FRAME_SAMPLES),
            })
        })
        .collect()
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| (kb / 1024.0 * 10.0).round() / 10.0)
}

/// The built-in server in this process on a free port, its model loaded: its address, what
/// stops it, and its task.
pub async fn start_server(
    model: &std::path::Path,
    early_decode_ms: Option<u32>,
) -> anyhow::Result<(
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
)> {
    let defaults = candybar_asr::server::ServerConfig::default();
    let cfg = candybar_asr::server::ServerConfig {
        model: model.to_owned(),
        early_decode_ms: early_decode_ms.unwrap_or(defaults.early_decode_ms),
        ..defaults
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(candybar_asr::server::serve(listener, cfg, async {
        let _ = stop_rx.await;
    }));
    let deadline = Instant::now() + Duration::from_mins(1);
    while !model_loaded(&addr).await {
        anyhow::ensure!(Instant::now() < deadline, "the model did not load");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((addr, stop_tx, server))
}

pub async fn bench_wlk(a: &WlkBenchArgs) -> anyhow::Result<serde_json::Value> {
    let model = candybar_asr::engine::resolve_model(&a.model)?;
    let (addr, stop_tx, server) = start_server(&model, a.early_decode_ms).await?;
    let clips = clips()?;
    let (mut first, mut last) = (Vec::new(), Vec::new());
    // Per clip, each round: when its last words came, and what that last change was.
    let mut per_clip: Vec<serde_json::Value> = Vec::new();
    for round in 0..a.rounds.max(1) {
        for clip in &clips {
            let s = wlk_session(&addr, clip).await?;
            first.push(s.first_ms);
            last.push(s.last_ms);
            per_clip.push(json!({
                "clip": clip.name,
                "round": round,
                "speech_end_to_last_text_ms": (s.last_ms * 10.0).round() / 10.0,
                "shown_before_last_change": s.last_change.0,
                "shown_after": s.last_change.1,
            }));
        }
    }
    let rss_before = rss_mb();
    let cpu_before = crate::procfs::process_cpu_secs().unwrap_or_default();
    let mut audio_secs = 0.0;
    let mut finals = Vec::new();
    for _ in 0..a.rounds.max(1) {
        for i in 0..usize::from(a.clients) {
            audio_secs += clips[i % clips.len()].pcm.len() as f64 / 32_000.0;
        }
        let sessions = (0..usize::from(a.clients)).map(|i| {
            let addr = addr.clone();
            let pcm = clips[i % clips.len()].pcm.clone();
            tokio::spawn(async move { super::stream_one(&addr, &pcm, 1.0).await })
        });
        for s in futures_util::future::join_all(sessions).await {
            finals.push(s??.0);
        }
    }
    let rss_after = rss_mb();
    let cpu = crate::procfs::process_cpu_secs().unwrap_or_default() - cpu_before;
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(json!({
        "bench": "wlk",
        "model": model.display().to_string(),
        "early_decode_ms": a.early_decode_ms.unwrap_or(candybar_asr::server::ServerConfig::default().early_decode_ms),
        "whisperlivekit_protocol": {
            "speech_onset_to_first_text_ms": quantiles(first),
            "speech_end_to_last_text_ms": quantiles(last),
            "sessions": per_clip,
        },
        "clients_at_once": {
            "clients": a.clients,
            "speech_end_to_final_ms": quantiles(finals),
            // The process's CPU time (the server's decodes, and the clients' sending) per
            // second of audio streamed: what a shorter pause before the final decode costs.
            "cpu_secs_per_audio_sec": (cpu / audio_secs.max(1e-9) * 1000.0).round() / 1000.0,
            "rss_mb_before": rss_before,
            "rss_mb_after": rss_after,
        },
    }))
}

/// Whether `/health` answers 200 (the model is loaded).
async fn model_loaded(addr: &str) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let req = format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if tokio::io::AsyncWriteExt::write_all(&mut s, req.as_bytes())
        .await
        .is_err()
    {
        return false;
    }
    let mut body = String::new();
    let _ = tokio::io::AsyncReadExt::read_to_string(&mut s, &mut body).await;
    body.starts_with("HTTP/1.1 200") || body.starts_with("HTTP/1.0 200")
}

/// One clip through WhisperLiveKit's protocol in real time.
struct Session {
    /// Voice onset sent → first words shown, ms.
    first_ms: f64,
    /// Voice end sent → the last change of the words shown, ms.
    last_ms: f64,
    /// What was shown before the last change, and after it.
    last_change: (String, String),
}

async fn wlk_session(addr: &str, clip: &Clip) -> anyhow::Result<Session> {
    let mut req = format!("ws://{addr}/asr").into_client_request()?;
    req.headers_mut()
        .insert("origin", "http://localhost:8000".parse()?);
    let (ws, _) = tokio_tungstenite::connect_async(req).await?;
    let (mut tx, mut rx) = ws.split();
    let _config = rx.next().await;
    // Arrival times of each message whose words differ from the last one's.
    let reader = tokio::spawn(async move {
        let mut changes: Vec<(Instant, String)> = Vec::new();
        let mut shown = String::new();
        while let Some(Ok(m)) = rx.next().await {
            let Message::Text(t) = m else { continue };
            let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
            if v["type"] == "ready_to_stop" {
                break;
            }
            let mut words: Vec<&str> = v["lines"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l["text"].as_str())
                .collect();
            words.extend(v["buffer_transcription"].as_str());
            let now = words.join(" ");
            if now.trim() != shown.trim() {
                shown = now;
                if !shown.trim().is_empty() {
                    changes.push((Instant::now(), shown.trim().to_owned()));
                }
            }
        }
        changes
    });
    let started = Instant::now();
    let (mut onset_at, mut end_at) = (None, None);
    for (i, chunk) in clip.pcm.chunks(3200).enumerate() {
        tx.send(Message::Binary(chunk.to_vec().into())).await?;
        let sent = (i + 1) * 1600;
        if onset_at.is_none() && sent > clip.onset {
            onset_at = Some(Instant::now());
        }
        if end_at.is_none() && sent >= clip.end {
            end_at = Some(Instant::now());
        }
        let due = Duration::from_millis((i as u64 + 1) * 100);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
    tx.send(Message::Binary(Vec::new().into())).await?;
    let changes = tokio::time::timeout(Duration::from_mins(1), reader).await??;
    let (Some(onset), Some(end), Some((first, _)), Some((last, after))) =
        (onset_at, end_at, changes.first(), changes.last())
    else {
        anyhow::bail!("no words came back");
    };
    let before = changes
        .len()
        .checked_sub(2)
        .map(|i| changes[i].1.clone())
        .unwrap_or_default();
    Ok(Session {
        first_ms: first.saturating_duration_since(onset).as_secs_f64() * 1000.0,
        last_ms: last.saturating_duration_since(end).as_secs_f64() * 1000.0,
        last_change: (before, after.clone()),
    })
}
