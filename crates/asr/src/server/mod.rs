//! `candybar asr serve`: the `/asr` WebSocket server and its HTTP endpoints.
//!
//! One model is loaded (in the background: `/health` answers 503 until it is ready) and shared
//! by a bounded pool of decoding workers; a semaphore in front of the pool is the queue, so
//! decodes never oversubscribe the cores. Each connection buffers its utterance, re-decodes the
//! growing window every second of new audio for partial text (LocalAgreement-2 keeps it from
//! flickering), and decodes the whole utterance for the final text at end of speech.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use candybar_core::asr::audio::SAMPLE_RATE_HZ;
use candybar_core::asr::protocol::{
    ClientText, PROTOCOL_VERSION, ServerMsg, TranscriptMsg, parse_client_text,
};
use candybar_core::asr::streaming::LocalAgreement;
use candybar_core::asr::vad::{DEFAULT_THRESHOLD_RMS, SpeechTracker};
use candybar_core::asr::wlk;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::engine::{
    AsrError, DecodeOptions, Engine, Transcript, Worker, check_language, list_models,
};

mod input;
mod openai;

/// Silence kept before the first speech of an utterance (300 ms).
const LEAD_IN: usize = SAMPLE_RATE_HZ as usize * 3 / 10;

/// Speech before the first partial decode of an utterance (500 ms): the first words show within
/// about a second of the voice starting.
const FIRST_PARTIAL: usize = SAMPLE_RATE_HZ as usize / 2;

/// Silence kept after the last speech when the utterance is decoded (200 ms): enough for a word's
/// quiet ending, and decoding more silence only costs time.
const TAIL_KEEP: usize = SAMPLE_RATE_HZ as usize / 5;

/// How a frame left the utterance.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    No,
    /// The client said so (`eos` or an empty frame): answer with the final and `done`.
    Eos,
    /// A pause after speech, or the length limit: the final only.
    Auto,
}
use candybar_core::time::{format_rfc3339, now_us};

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub model: PathBuf,
    /// Decoding threads per worker.
    pub threads: usize,
    /// Decoding workers (each holds a decoder state, ~190 MB for tiny.en).
    pub workers: usize,
    pub max_clients: usize,
    /// Largest binary frame accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Longest utterance; longer ones are finalized and a new one begins.
    pub max_utterance_secs: u32,
    /// A connection with no frame for this long is closed.
    pub idle_timeout_secs: u32,
    /// Re-decode for partial text after this much new audio.
    pub partial_every_ms: u32,
    /// Silence after speech that starts a decode at once (0: off). When only silence follows it,
    /// that decode is the final text: the final is ready when the client's end of speech
    /// arrives, or soon after, instead of a whole decode later.
    pub early_decode_ms: u32,
    /// Silence after speech that ends an utterance by itself (0: only the client's eos does).
    pub pause_ms: u32,
    /// Frames quieter than this RMS are silence.
    pub vad_threshold_rms: f32,
    /// Required as `Authorization: Bearer …` or `?token=…` when set (on `/asr` and `/v1`).
    pub token: Option<String>,
    /// The spoken language when a client does not say (ISO 639-1, or `auto` to detect it with a
    /// multilingual model); `None`: English for `.en` models, detected for the others.
    pub language: Option<String>,
    /// Publish each final transcript to this broker.
    pub bus: Option<BusConfig>,
    /// Ask WhisperLiveKit's page to record WebM/Opus (`MediaRecorder`, its own server's default)
    /// rather than raw PCM (an `AudioWorklet`, as its `--pcm-input`). Both are accepted from any
    /// client either way; PCM skips an encoder's delay.
    pub wlk_webm: bool,
}

/// Where final transcripts go on the event bus.
#[derive(Clone, Debug)]
pub struct BusConfig {
    pub url: String,
    pub exchange: String,
    /// Default `talkytonny.transcription.completed`.
    pub routing_key: String,
}

/// Transcripts waiting for the broker; beyond this many (a long outage) the oldest are dropped
/// and counted, and transcription goes on.
const BUS_QUEUE: usize = 1024;

impl Default for ServerConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self {
            model: PathBuf::new(),
            threads: cores.min(4),
            workers: 1,
            max_clients: 16,
            max_frame_bytes: 1 << 20,
            max_utterance_secs: 30,
            idle_timeout_secs: 60,
            partial_every_ms: 1000,
            early_decode_ms: 80,
            pause_ms: 800,
            vad_threshold_rms: DEFAULT_THRESHOLD_RMS,
            token: None,
            language: None,
            bus: None,
            wlk_webm: false,
        }
    }
}

struct Loaded {
    name: String,
    multilingual: bool,
    pool: Mutex<Vec<Worker>>,
    permits: Semaphore,
}

struct AppState {
    cfg: ServerConfig,
    loaded: OnceLock<Result<Loaded, String>>,
    started: Instant,
    clients: AtomicUsize,
    utterances: AtomicU64,
    /// Finals that a decode begun at the pause had already read (no decode after the end).
    early_finals: AtomicU64,
    /// Decodes waiting for a decoder.
    waiting: AtomicUsize,
    /// Partial decodes given up because the speech ended while they waited or ran without its
    /// last words.
    partials_given_up: AtomicU64,
    rejected: AtomicU64,
    /// Connections closed on arrival (too many open, or too many still sending their head).
    refused_connections: AtomicU64,
    /// Speech end → final sent, in microseconds.
    final_latency_us: Mutex<Histogram<u64>>,
    audio_ms_total: AtomicU64,
    decode_ms_total: AtomicU64,
    bus: Option<tokio::sync::mpsc::Sender<candybar_core::event::RawMessage>>,
    bus_dropped: AtomicU64,
    bus_published: Arc<AtomicU64>,
    /// Files transcribed through the OpenAI-compatible endpoint.
    uploads: AtomicU64,
    /// Uploads refused (bad form, format, language, audio; too large).
    uploads_refused: AtomicU64,
    /// Decoded segments left out as not speech (hallucinations over silence or noise).
    non_speech_dropped: AtomicU64,
    /// Uploads being read or waiting for a decoder: each holds its audio in memory.
    upload_slots: Semaphore,
}

type Shared = Arc<AppState>;

/// Serves until `shutdown` completes. The model loads in the background.
pub async fn serve(
    listener: tokio::net::TcpListener,
    cfg: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let bus_published = Arc::new(AtomicU64::new(0));
    let bus = cfg.bus.clone().map(|b| spawn_bus(b, bus_published.clone()));
    let state: Shared = Arc::new(AppState {
        cfg: cfg.clone(),
        loaded: OnceLock::new(),
        started: Instant::now(),
        clients: AtomicUsize::new(0),
        utterances: AtomicU64::new(0),
        early_finals: AtomicU64::new(0),
        waiting: AtomicUsize::new(0),
        partials_given_up: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        refused_connections: AtomicU64::new(0),
        final_latency_us: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 2)?),
        audio_ms_total: AtomicU64::new(0),
        decode_ms_total: AtomicU64::new(0),
        bus,
        bus_dropped: AtomicU64::new(0),
        bus_published,
        uploads: AtomicU64::new(0),
        uploads_refused: AtomicU64::new(0),
        non_speech_dropped: AtomicU64::new(0),
        upload_slots: Semaphore::new(openai::MAX_UPLOADS),
    });
    let loader = state.clone();
    tokio::task::spawn_blocking(move || {
        let result = load(&loader.cfg).map_err(|e| e.to_string());
        match &result {
            Ok(l) => tracing::info!("model {} loaded ({} worker(s))", l.name, loader.cfg.workers),
            Err(e) => tracing::error!("{e}"),
        }
        let _ = loader.loaded.set(result);
    });
    let app = Router::new()
        .route("/asr", get(asr))
        .route("/health", get(health))
        .route("/models", get(models))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .merge(openai::routes())
        .with_state(state.clone());
    accept_loop(listener, app, &state, shutdown).await;
    Ok(())
}

/// Connections open at once; more are closed as they arrive (their descriptors freed at once).
const MAX_CONNECTIONS: usize = 512;
/// Connections that have not yet sent a whole request head: what idle half-open connections
/// could otherwise fill until no file descriptor is left for `/health` or `/asr`.
const MAX_PENDING: usize = 64;
/// A connection must send its request head within this, or it is closed.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` until `shutdown`: each connection over HTTP/1 (with upgrades, for
/// WebSockets) on a task of its own, its request head read within [`HEADER_TIMEOUT`], at most
/// [`MAX_PENDING`] heads awaited and [`MAX_CONNECTIONS`] connections open at once.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Router,
    state: &Shared,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt as _;

    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let pending = Arc::new(Semaphore::new(MAX_PENDING));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, say: wait a moment rather than spin.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (Ok(open_permit), Ok(pending_permit)) = (
            open.clone().try_acquire_owned(),
            pending.clone().try_acquire_owned(),
        ) else {
            state.refused_connections.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        // Released once the request head has been read (the connection is no longer pending).
        let pending_slot = Arc::new(Mutex::new(Some(pending_permit)));
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: axum::http::Request<_>| {
            pending_slot.lock().take();
            app.clone().oneshot(req.map(axum::body::Body::new))
        });
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!("connection ended: {e}");
            }
            drop(open_permit);
        });
    }
}

/// The publisher task: takes transcripts from a bounded queue and publishes them with confirms,
/// retrying each until the broker takes it. Transcription never waits for it.
fn spawn_bus(
    cfg: BusConfig,
    published_count: Arc<AtomicU64>,
) -> tokio::sync::mpsc::Sender<candybar_core::event::RawMessage> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<candybar_core::event::RawMessage>(BUS_QUEUE);
    tokio::spawn(async move {
        let mut publisher = candybar_bus::publish::Publisher::new(&cfg.url, &cfg.exchange);
        while let Some(msg) = rx.recv().await {
            let batch = [msg];
            let mut warned = false;
            loop {
                match publisher.publish_window(&batch).await {
                    Ok(_) => {
                        published_count.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Err(e) => {
                        if !warned {
                            tracing::warn!("transcript not yet on the bus: {e}; retrying");
                            warned = true;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    });
    tx
}

fn load(cfg: &ServerConfig) -> Result<Loaded, AsrError> {
    let engine = Engine::load(&cfg.model)?;
    let workers = (0..cfg.workers.max(1))
        .map(|_| engine.worker(cfg.threads))
        .collect::<Result<Vec<_>, _>>()?;
    let n = workers.len();
    // The states keep the model alive (whisper-rs reference-counts the context).
    if let Some(code) = &cfg.language {
        check_language(code, engine.multilingual()).map_err(AsrError::State)?;
    }
    Ok(Loaded {
        name: engine.name(),
        multilingual: engine.multilingual(),
        pool: Mutex::new(workers),
        permits: Semaphore::new(n),
    })
}

fn loaded(state: &AppState) -> Option<&Loaded> {
    state.loaded.get().and_then(|r| r.as_ref().ok())
}

/// Runs a decode on a free worker (waiting for one: the queue with backpressure).
async fn decode(
    state: &Shared,
    samples: Vec<f32>,
    language: Option<&str>,
) -> Result<Transcript, String> {
    let opts = DecodeOptions {
        language: language.map(str::to_owned),
        ..DecodeOptions::default()
    };
    decode_with(state, samples, opts).await
}

/// [`decode`] with every option.
async fn decode_with(
    state: &Shared,
    samples: Vec<f32>,
    opts: DecodeOptions,
) -> Result<Transcript, String> {
    decode_unless(state, samples, opts, None).await
}

/// A decode that may be given up: `up` is set to give it up, `began` says it has a decoder.
struct GiveUp<'a> {
    up: &'a AtomicBool,
    began: &'a AtomicBool,
}

/// [`decode_with`], given up without decoding when `give_up.up` is set before a decoder is free
/// (set while it runs, it stops only if `opts.abort` is the same flag).
async fn decode_unless(
    state: &Shared,
    samples: Vec<f32>,
    opts: DecodeOptions,
    give_up: Option<GiveUp<'_>>,
) -> Result<Transcript, String> {
    let Some(l) = loaded(state) else {
        return Err("the model is not loaded".into());
    };
    let permit = {
        // Counted while it waits, also when the wait is dropped (a client gone meanwhile).
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        state.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&state.waiting);
        l.permits.acquire().await.map_err(|e| e.to_string())?
    };
    if let Some(g) = give_up {
        if g.up.load(Ordering::Relaxed) {
            return Err("given up before it began".into());
        }
        g.began.store(true, Ordering::Relaxed);
    }
    let Some(mut worker) = l.pool.lock().pop() else {
        return Err("no decoder free".into());
    };
    // The decode gives its worker and its permit back itself: a client that goes away while it
    // runs (its request's future dropped) must not take the worker with it.
    permit.forget();
    let back = state.clone();
    let result = tokio::task::spawn_blocking(move || {
        let r = worker.transcribe_with(&samples, &opts);
        if let Some(l) = loaded(&back) {
            l.pool.lock().push(worker);
            l.permits.add_permits(1);
        }
        r
    })
    .await
    .map_err(|e| format!("decoder crashed: {e}"))?;
    let t = result.map_err(|e| e.to_string())?;
    state
        .audio_ms_total
        .fetch_add(t.audio_ms, Ordering::Relaxed);
    state
        .decode_ms_total
        .fetch_add(t.decode_ms, Ordering::Relaxed);
    state
        .non_speech_dropped
        .fetch_add(u64::from(t.dropped_segments), Ordering::Relaxed);
    Ok(t)
}

/// Publishes a final transcript twice: as the configured event (`talkytonny…` by default,
/// `{text, duration_seconds, model, timestamp}`) and as the platform's canonical
/// `transcription.voice.completed`.
fn publish_transcript(state: &AppState, t: &Transcript, source: &str, session_id: &str) {
    let (Some(bus), Some(cfg)) = (&state.bus, &state.cfg.bus) else {
        return;
    };
    if t.text.is_empty() {
        return;
    }
    let model = loaded(state).map_or("", |l| l.name.as_str());
    let host = candybar_bus::host_name();
    let at = now_us();
    let canonical = candybar_core::asr::protocol::VoiceTranscript {
        text: &t.text,
        duration_ms: t.audio_ms,
        sample_rate: SAMPLE_RATE_HZ,
        model,
        language: &t.language,
        source,
        session_id,
    };
    for msg in [
        candybar_core::asr::protocol::transcript_event(
            &host,
            &cfg.routing_key,
            &t.text,
            t.audio_ms,
            model,
            at,
        ),
        candybar_core::asr::protocol::voice_completed_event(&host, &canonical, at),
    ] {
        if bus.try_send(msg).is_err() {
            state.bus_dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("the bus queue is full (broker down?): a transcript was not published");
        }
    }
}

/// Whether a request carries the server's token (`Authorization: Bearer …` or `?token=…`), or
/// the server has none.
fn authorized(state: &AppState, headers: &HeaderMap, query_token: Option<&str>) -> bool {
    let Some(expected) = &state.cfg.token else {
        return true;
    };
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    bearer == Some(expected.as_str()) || query_token == Some(expected.as_str())
}

/// A session id for a connection or an upload: unique on this host.
fn session_id(kind: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{kind}-{:x}-{:x}-{}",
        now_us(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn health(State(state): State<Shared>) -> Response {
    match state.loaded.get() {
        Some(Ok(l)) => (
            StatusCode::OK,
            Json(json!({"status": "ok", "model": l.name})),
        )
            .into_response(),
        Some(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "error", "error": e})),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "loading"})),
        )
            .into_response(),
    }
}

async fn models(State(state): State<Shared>) -> Json<serde_json::Value> {
    let available: Vec<String> = list_models()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    Json(
        json!({ "loaded": loaded(&state).map(|l| l.name.clone()), "path": state.cfg.model.display().to_string(), "available": available }),
    )
}

fn rtf(state: &AppState) -> f64 {
    let audio = state.audio_ms_total.load(Ordering::Relaxed);
    if audio == 0 {
        0.0
    } else {
        state.decode_ms_total.load(Ordering::Relaxed) as f64 / audio as f64
    }
}

async fn status(State(state): State<Shared>) -> Json<serde_json::Value> {
    let h = state.final_latency_us.lock().clone();
    let ms = |q: f64| {
        if h.is_empty() {
            serde_json::Value::Null
        } else {
            json!(h.value_at_quantile(q) as f64 / 1000.0)
        }
    };
    Json(json!({
        "model": loaded(&state).map(|l| l.name.clone()),
        "backend": crate::engine::BACKEND,
        "devices": crate::engine::gpu_devices(),
        "uptime_secs": state.started.elapsed().as_secs(),
        "clients": state.clients.load(Ordering::Relaxed),
        "utterances": state.utterances.load(Ordering::Relaxed),
        "early_finals": state.early_finals.load(Ordering::Relaxed),
        "partials_given_up": state.partials_given_up.load(Ordering::Relaxed),
        "rejected_connections": state.rejected.load(Ordering::Relaxed),
        "refused_connections": state.refused_connections.load(Ordering::Relaxed),
        "bus": { "published": state.bus_published.load(Ordering::Relaxed), "dropped": state.bus_dropped.load(Ordering::Relaxed) },
        "final_latency_ms": { "p50": ms(0.5), "p95": ms(0.95), "p99": ms(0.99) },
        "real_time_factor": rtf(&state),
        "uploads": { "transcribed": state.uploads.load(Ordering::Relaxed), "refused": state.uploads_refused.load(Ordering::Relaxed) },
        "language": state.cfg.language.clone().unwrap_or_else(|| "default".into()),
        "multilingual": loaded(&state).map(|l| l.multilingual),
        "non_speech_dropped": state.non_speech_dropped.load(Ordering::Relaxed),
    }))
}

async fn metrics(State(state): State<Shared>) -> String {
    let h = state.final_latency_us.lock().clone();
    let mut out = String::new();
    let mut line = |name: &str, kind: &str, help: &str, value: String| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    };
    line(
        "candybar_asr_up",
        "gauge",
        "1 when the model is loaded",
        u8::from(loaded(&state).is_some()).to_string(),
    );
    line(
        "candybar_asr_clients",
        "gauge",
        "Connected clients",
        state.clients.load(Ordering::Relaxed).to_string(),
    );
    line(
        "candybar_asr_utterances_total",
        "counter",
        "Finished utterances",
        state.utterances.load(Ordering::Relaxed).to_string(),
    );
    line(
        "candybar_asr_early_finals_total",
        "counter",
        "Finals already decoded when the speech ended (a decode begun at the pause)",
        state.early_finals.load(Ordering::Relaxed).to_string(),
    );
    line(
        "candybar_asr_partials_given_up_total",
        "counter",
        "Partial decodes given up: the speech ended while they waited or ran without its last words",
        state.partials_given_up.load(Ordering::Relaxed).to_string(),
    );
    line(
        "candybar_asr_rejected_total",
        "counter",
        "Connections refused (limits, auth)",
        state.rejected.load(Ordering::Relaxed).to_string(),
    );
    line(
        "candybar_asr_refused_connections_total",
        "counter",
        "Connections closed on arrival (too many open, or too many still sending their head)",
        state
            .refused_connections
            .load(Ordering::Relaxed)
            .to_string(),
    );
    line(
        "candybar_asr_non_speech_dropped_total",
        "counter",
        "Decoded segments left out as not speech (\"you\", [BLANK_AUDIO], stock phrases over silence)",
        state.non_speech_dropped.load(Ordering::Relaxed).to_string(),
    );
    line(
        "candybar_asr_uploads_total",
        "counter",
        "Files transcribed through /v1/audio/transcriptions",
        state.uploads.load(Ordering::Relaxed).to_string(),
    );
    line(
        "candybar_asr_real_time_factor",
        "gauge",
        "Decode time over audio time",
        format!("{:.4}", rtf(&state)),
    );
    for (q, label) in [(0.5, "0.5"), (0.95, "0.95"), (0.99, "0.99")] {
        let v = if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(q) as f64 / 1e6
        };
        let _ = writeln!(
            out,
            "candybar_asr_final_latency_seconds{{quantile=\"{label}\"}} {v:.4}"
        );
    }
    out
}

/// `/asr`'s query. Read leniently: a parameter given twice (WhisperLiveKit's client adds
/// `mode=diff` a second time) takes its last value, and unknown ones are ignored.
#[derive(Default)]
struct AsrQuery {
    token: Option<String>,
    /// The spoken language for this connection (as WhisperLiveKit's clients send it).
    language: Option<String>,
    /// `candybar` or `whisperlivekit`: the protocol, when the client says.
    protocol: Option<String>,
    /// WhisperLiveKit's output mode: `diff` for a snapshot then diffs.
    mode: Option<String>,
}

impl AsrQuery {
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut q = Self::default();
        for (k, v) in pairs {
            let slot = match k.as_str() {
                "token" => &mut q.token,
                "language" => &mut q.language,
                "protocol" => &mut q.protocol,
                "mode" => &mut q.mode,
                _ => continue,
            };
            *slot = Some(v);
        }
        q
    }
}

/// Which protocol a connection speaks: what it asks for (`?protocol=`), else WhisperLiveKit's for
/// browsers (its page and extension send an `Origin`), Python's `websockets` (its `wlk-test`
/// client) and `?mode=`; ours otherwise.
fn speaks_whisperlivekit(q: &AsrQuery, headers: &HeaderMap) -> bool {
    match q.protocol.as_deref() {
        Some("candybar") => false,
        Some("whisperlivekit" | "wlk") => true,
        _ => {
            let python_websockets = headers
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ua| ua.starts_with("Python/") && ua.contains("websockets"));
            q.mode.is_some() || headers.contains_key("origin") || python_websockets
        }
    }
}

async fn asr(
    ws: WebSocketUpgrade,
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let q = AsrQuery::from_pairs(pairs);
    if !authorized(&state, &headers, q.token.as_deref()) {
        state.rejected.fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: send Authorization: Bearer <token> or ?token=<token>\n",
        )
            .into_response();
    }
    let reply = if speaks_whisperlivekit(&q, &headers) {
        Reply::Wlk {
            messages: wlk::Messages::new(q.mode.as_deref() == Some("diff")),
            state: wlk::State::default(),
            webm: state.cfg.wlk_webm,
        }
    } else {
        Reply::Ours
    };
    let language = q.language.filter(|l| !l.is_empty());
    // One limit for binary and text frames, enforced by the transport before a frame is read
    // into memory; `connection` answers a frame over it with an error message and close 1009.
    let limit = state.cfg.max_frame_bytes;
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| connection(socket, state, language, reply))
}

/// Close codes: 1008 policy (limits), 1009 too big, 1011 server error, 1013 try again later.
/// The error goes first, in the connection's protocol.
async fn close(socket: &mut WebSocket, reply: &mut Reply, code: u16, message: &str) {
    reply
        .send(
            socket,
            &ServerMsg::Error {
                message: message.to_owned(),
            },
        )
        .await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: message.chars().take(100).collect::<String>().into(),
        })))
        .await;
    // The closing handshake: read on until the client answers our Close (or goes), so what it
    // still had in flight does not make the kernel reset the connection under our error and
    // Close before the client reads them.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(m)) = socket.recv().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// How a connection's answers are written: in our protocol, or in WhisperLiveKit's (its
/// `config` for our `ready`, the whole transcript — or a diff — for each partial and final, its
/// `ready_to_stop` for our `done`).
enum Reply {
    Ours,
    Wlk {
        messages: wlk::Messages,
        state: wlk::State,
        /// Ask for WebM/Opus rather than PCM.
        webm: bool,
    },
}

impl Reply {
    async fn send(&mut self, socket: &mut WebSocket, msg: &ServerMsg) -> bool {
        let text = match self {
            Self::Ours => msg.to_json(),
            Self::Wlk {
                messages,
                state,
                webm,
            } => {
                match msg {
                    // Raw PCM: WhisperLiveKit's page then records with an AudioWorklet; else
                    // WebM/Opus with a MediaRecorder.
                    ServerMsg::Ready { .. } => wlk::config_message(!*webm, messages.diff()),
                    ServerMsg::Done => wlk::READY_TO_STOP.to_owned(),
                    ServerMsg::Partial(t) => {
                        state.buffer.clone_from(&t.text);
                        state.lag_ms = 0;
                        let Some(m) = messages.next(state) else {
                            return true;
                        };
                        m
                    }
                    ServerMsg::Final(t) => {
                        if !t.text.trim().is_empty() {
                            state.lines.push(wlk::Line {
                                text: t.text.trim().to_owned(),
                                start_ms: t.start_ms,
                                end_ms: t.end_ms,
                                language: t.language.clone(),
                            });
                        }
                        state.buffer.clear();
                        let Some(m) = messages.next(state) else {
                            return true;
                        };
                        m
                    }
                    ServerMsg::Error { message } => {
                        state.error = Some(message.clone());
                        let m = messages.next(state);
                        state.error = None;
                        let Some(m) = m else { return true };
                        m
                    }
                }
            }
        };
        socket.send(Message::Text(text.into())).await.is_ok()
    }
}

struct ClientGuard(Shared);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The utterance being heard on a connection: its audio and what is known of it.
struct Utterance {
    /// Turns the client's frames (PCM, or WebM/Opus) into samples.
    input: input::AudioInput,
    samples: Vec<f32>,
    /// Where speech is, and whether a pause after it ended the utterance.
    tracker: SpeechTracker,
    /// Samples taken since the last partial decode began.
    since_partial: usize,
    /// Where the utterance starts within the connection's audio.
    started_ms: u64,
}

impl Utterance {
    /// Takes an audio frame: whether it ends the utterance — a pause after speech, or the
    /// length limit (`limits`: the largest frame in bytes, the longest utterance in samples) —
    /// or why the connection closes (a close code and words for the client).
    fn take(
        &mut self,
        bytes: &[u8],
        (max_frame_bytes, max_samples): (usize, usize),
    ) -> Result<bool, (u16, String)> {
        if bytes.len() > max_frame_bytes {
            return Err((
                1009,
                format!(
                    "frame of {} bytes is over the limit of {max_frame_bytes} bytes",
                    bytes.len()
                ),
            ));
        }
        let before = self.samples.len();
        self.input
            .push(bytes, &mut self.samples)
            .map_err(|m| (1007, m))?;
        self.since_partial += self.samples.len() - before;
        self.tracker.push(&self.samples[before..]);
        if !self.tracker.heard_speech() && self.samples.len() > LEAD_IN {
            // Skip silence before speech, keeping a short lead-in.
            let cut = self.samples.len() - LEAD_IN;
            self.samples.drain(..cut);
            self.started_ms += cut as u64 * 1000 / u64::from(SAMPLE_RATE_HZ);
        }
        Ok(self.samples.len() >= max_samples || self.tracker.utterance_ended())
    }

    /// Samples up to where the speech last stopped (what comes after is silence).
    fn spoken(&self) -> usize {
        self.samples
            .len()
            .saturating_sub(self.tracker.trailing_silence())
    }
}

#[allow(clippy::too_many_lines)] // the connection's whole life, read top to bottom
async fn connection(
    mut socket: WebSocket,
    state: Shared,
    mut language: Option<String>,
    mut reply: Reply,
) {
    let n = state.clients.fetch_add(1, Ordering::Relaxed) + 1;
    let guard = ClientGuard(state.clone());
    if n > state.cfg.max_clients {
        state.rejected.fetch_add(1, Ordering::Relaxed);
        // A client turned away holds no place while the closing handshake runs.
        drop(guard);
        close(
            &mut socket,
            &mut reply,
            1013,
            &format!(
                "too many clients (limit {}); try again later",
                state.cfg.max_clients
            ),
        )
        .await;
        return;
    }
    let Some((model, multilingual)) = loaded(&state).map(|l| (l.name.clone(), l.multilingual))
    else {
        drop(guard);
        close(
            &mut socket,
            &mut reply,
            1013,
            "the model is still loading (see /health); try again shortly",
        )
        .await;
        return;
    };
    if !reply
        .send(
            &mut socket,
            &ServerMsg::Ready {
                model,
                sample_rate: SAMPLE_RATE_HZ,
                protocol: PROTOCOL_VERSION,
            },
        )
        .await
    {
        return;
    }
    let cfg = &state.cfg;
    let session = session_id("ws");
    match language.as_deref().map(|l| check_language(l, multilingual)) {
        Some(Ok(normalized)) => language = Some(normalized),
        Some(Err(m)) => {
            language = None;
            if !reply
                .send(&mut socket, &ServerMsg::Error { message: m })
                .await
            {
                return;
            }
        }
        None => {}
    }
    let mut language = language.or_else(|| cfg.language.clone());
    let max_samples = cfg.max_utterance_secs as usize * SAMPLE_RATE_HZ as usize;
    let partial_every = cfg.partial_every_ms as usize * SAMPLE_RATE_HZ as usize / 1000;
    let early_after = cfg.early_decode_ms as usize * SAMPLE_RATE_HZ as usize / 1000;
    let mut utt = Utterance {
        input: input::AudioInput::default(),
        samples: Vec::new(),
        tracker: SpeechTracker::new(cfg.vad_threshold_rms, cfg.pause_ms),
        since_partial: 0,
        started_ms: 0,
    };
    // The newest decode of this utterance and how many of its samples it read.
    let mut latest: Option<(usize, Transcript)> = None;
    let mut agreement = LocalAgreement::default();
    let mut segment = 0u32;
    let idle = Duration::from_secs(u64::from(cfg.idle_timeout_secs.max(1)));
    // What a partial decode read while it ran: where the frames it took left the utterance,
    // and a message it stopped at (the next one to handle).
    let mut carried: Option<End> = None;
    let mut held = None;
    loop {
        // A frame read during a decode was taken already: what it came to goes first.
        let end = if let Some(end) = carried.take() {
            end
        } else {
            let received = match held.take() {
                Some(r) => Ok(r),
                None => tokio::time::timeout(idle, socket.recv()).await,
            };
            let msg = match received {
                Err(_) => {
                    close(
                        &mut socket,
                        &mut reply,
                        1008,
                        &format!("no audio for {} s: closing", cfg.idle_timeout_secs),
                    )
                    .await;
                    return;
                }
                Ok(None) => return, // the client went away
                Ok(Some(Err(e))) => {
                    // A frame over the limit is refused by the transport before it is read; say so
                    // (the socket still writes). Anything else: the client went away.
                    let text = e.to_string();
                    if text.contains("too long") || text.contains("Space limit") {
                        close(
                            &mut socket,
                            &mut reply,
                            1009,
                            &format!(
                                "a frame is over the limit of {} bytes: send audio in smaller frames \
                                 (100 ms is 3,200 bytes)",
                                cfg.max_frame_bytes
                            ),
                        )
                        .await;
                    }
                    return;
                }
                Ok(Some(Ok(m))) => m,
            };
            match msg {
                Message::Binary(bytes) if bytes.is_empty() => End::Eos,
                Message::Binary(bytes) => {
                    match utt.take(&bytes, (cfg.max_frame_bytes, max_samples)) {
                        Ok(true) => End::Auto,
                        Ok(false) => End::No,
                        Err((code, why)) => {
                            close(&mut socket, &mut reply, code, &why).await;
                            return;
                        }
                    }
                }
                Message::Text(text) => match parse_client_text(&text) {
                    Ok(ClientText::Eos) => End::Eos,
                    Ok(ClientText::Config {
                        sample_rate,
                        language: asked,
                    }) => {
                        if let Some(code) = asked.filter(|l| !l.is_empty()) {
                            match check_language(&code, multilingual) {
                                Ok(normalized) => language = Some(normalized),
                                Err(m) => {
                                    if !reply
                                        .send(&mut socket, &ServerMsg::Error { message: m })
                                        .await
                                    {
                                        return;
                                    }
                                }
                            }
                        }
                        if let Some(rate) = sample_rate.filter(|&r| r != SAMPLE_RATE_HZ) {
                            let m = format!(
                                "sample_rate {rate} is not supported: send 16000 Hz mono s16le"
                            );
                            if !reply
                                .send(&mut socket, &ServerMsg::Error { message: m })
                                .await
                            {
                                return;
                            }
                        }
                        End::No
                    }
                    Err(m) => {
                        if !reply
                            .send(&mut socket, &ServerMsg::Error { message: m })
                            .await
                        {
                            return;
                        }
                        End::No
                    }
                },
                Message::Close(_) => return,
                Message::Ping(_) | Message::Pong(_) => End::No,
            }
        };
        if end != End::No {
            let speech_end = Instant::now();
            utt.input.end_utterance();
            let mut audio = std::mem::take(&mut utt.samples);
            utt.since_partial = 0;
            agreement = LocalAgreement::default();
            let heard = utt.tracker.heard_speech();
            // Where the last speech ended: everything after it is silence.
            let spoken = audio.len().saturating_sub(utt.tracker.trailing_silence());
            utt.tracker = SpeechTracker::new(cfg.vad_threshold_rms, cfg.pause_ms);
            let reuse = latest.take().filter(|(read, _)| *read >= spoken);
            if !heard {
                // Silence only: nothing to decode (Whisper would invent words).
                utt.started_ms += audio.len() as u64 * 1000 / u64::from(SAMPLE_RATE_HZ);
            } else if !audio.is_empty() {
                let audio_ms = audio.len() as u64 * 1000 / u64::from(SAMPLE_RATE_HZ);
                let result = if let Some((_, t)) = reuse {
                    // A decode already read all the speech (only silence came after it).
                    state.early_finals.fetch_add(1, Ordering::Relaxed);
                    Ok(t)
                } else {
                    audio.truncate((spoken + TAIL_KEEP).max(SAMPLE_RATE_HZ as usize));
                    decode(&state, audio, language.as_deref()).await
                };
                let msg = match result {
                    Ok(t) => {
                        publish_transcript(&state, &t, "asr-server", &session);
                        ServerMsg::Final(TranscriptMsg {
                            language: Some(t.language.clone()),
                            text: t.text,
                            is_final: true,
                            timestamp: format_rfc3339(now_us()),
                            confidence: t.confidence,
                            start_ms: utt.started_ms,
                            end_ms: utt.started_ms + audio_ms,
                            segment,
                        })
                    }
                    Err(e) => ServerMsg::Error {
                        message: format!("transcription failed: {e}"),
                    },
                };
                utt.started_ms += audio_ms;
                segment += 1;
                state.utterances.fetch_add(1, Ordering::Relaxed);
                let ok = reply.send(&mut socket, &msg).await;
                let _ = state
                    .final_latency_us
                    .lock()
                    .record(speech_end.elapsed().as_micros() as u64);
                if !ok {
                    return;
                }
            }
            // `done` answers the client's end of speech; a pause that ended the utterance by itself
            // only brings the final.
            if end == End::Eos && !reply.send(&mut socket, &ServerMsg::Done).await {
                return;
            }
            continue;
        }
        // Decode again when there is speech no decode has read: every `partial_every` of new
        // audio, and at once when a pause begins, so that if the speech has ended the final text
        // is ready. The first words come sooner: after half a second of the utterance.
        let spoken = utt.spoken();
        let unread = latest.as_ref().is_none_or(|(read, _)| *read < spoken);
        let pause_began = early_after > 0 && utt.tracker.trailing_silence() >= early_after;
        let first_words = latest.is_none() && utt.samples.len() >= LEAD_IN + FIRST_PARTIAL;
        // (A message waiting to be handled — the end of speech, say — goes first.)
        if utt.tracker.heard_speech()
            && unread
            && held.is_none()
            && (pause_began
                || first_words
                || (utt.since_partial >= partial_every
                    && utt.samples.len() >= SAMPLE_RATE_HZ as usize))
        {
            utt.since_partial = 0;
            let read = utt.samples.len();
            let whole = pause_began || utt.tracker.trailing_silence() > 0;
            // Mid-speech, frames are still read while the decode waits and runs. When the
            // client ends the speech meanwhile, a decode that lacks the last words is of no use
            // (the final decodes it all): it is given up, and the final comes next rather than
            // after it. When the voice pauses, it is given up only if another decode waits for
            // the decoder — alone, it may well show the last words sooner than the early decode
            // that comes after it.
            let abort = (!pause_began).then(|| Arc::new(AtomicBool::new(false)));
            let began = AtomicBool::new(false);
            let mut decoding = Box::pin(decode_unless(
                &state,
                utt.samples.clone(),
                DecodeOptions {
                    language: language.clone(),
                    abort: abort.clone(),
                    ..DecodeOptions::default()
                },
                abort.as_deref().map(|up| GiveUp { up, began: &began }),
            ));
            let (mut taken, mut ended, mut refused) = (false, false, None);
            let result = loop {
                tokio::select! {
                    r = &mut decoding => break r,
                    // Frames up to the one that ends the utterance: the rest is the next one's.
                    m = socket.recv(), if abort.is_some()
                        && held.is_none()
                        && refused.is_none()
                        && !ended =>
                    {
                        // (Whether the speech is over, and whether the client said so.)
                        let (speech_over, by_client) = match m {
                            Some(Ok(Message::Binary(bytes))) if !bytes.is_empty() => {
                                taken = true;
                                match utt.take(&bytes, (cfg.max_frame_bytes, max_samples)) {
                                    Ok(e) => ended |= e,
                                    Err(why) => refused = Some(why),
                                }
                                let paused = early_after > 0
                                    && utt.tracker.trailing_silence() >= early_after;
                                (ended || refused.is_some() || paused, ended || refused.is_some())
                            }
                            other => {
                                let eos = match &other {
                                    Some(Ok(Message::Text(t))) => {
                                        matches!(parse_client_text(t), Ok(ClientText::Eos))
                                    }
                                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => false,
                                    // The empty frame (eos), a close, the client gone.
                                    _ => true,
                                };
                                held = Some(other);
                                (eos, eos)
                            }
                        };
                        // Unless it read all the speech there is: then it is the final text.
                        let spoken = utt.spoken();
                        let others_wait = state.waiting.load(Ordering::Relaxed) > 0;
                        if speech_over
                            && spoken > read
                            && (by_client || others_wait)
                            && let Some(flag) = &abort
                            && !flag.swap(true, Ordering::Relaxed)
                        {
                            state.partials_given_up.fetch_add(1, Ordering::Relaxed);
                            // Still waiting for a decoder: out of the queue at once, so the
                            // final's decode does not queue behind it.
                            if !began.load(Ordering::Relaxed) {
                                break Err("given up before it began".to_owned());
                            }
                        }
                    }
                }
            };
            drop(decoding);
            if let Some((code, why)) = refused {
                close(&mut socket, &mut reply, code, &why).await;
                return;
            }
            if taken {
                carried = Some(if ended { End::Auto } else { End::No });
            }
            if let Ok(t) = result {
                agreement.push(&t.text);
                // A decode that read all the speech (the voice has paused, however briefly) is
                // the final one if no more speech comes (it is reused): show its text as the
                // final will have it, so the words do not change again when the final comes.
                // Mid-speech, the words decodes agree on.
                let text = if whole {
                    t.text.clone()
                } else {
                    agreement.text()
                };
                let msg = ServerMsg::Partial(TranscriptMsg {
                    language: Some(t.language.clone()),
                    text,
                    is_final: false,
                    timestamp: format_rfc3339(now_us()),
                    confidence: t.confidence,
                    start_ms: utt.started_ms,
                    end_ms: utt.started_ms + read as u64 * 1000 / u64::from(SAMPLE_RATE_HZ),
                    segment,
                });
                latest = Some((read, t));
                if !reply.send(&mut socket, &msg).await {
                    return;
                }
            }
        }
    }
}
