//! The app's dictation: a `dictation` worker thread owns the recording, its history connection
//! and the desktop outputs; an `outbox` thread delivers webhook and bus events. The hotkey, the
//! tray, the local socket and the Dictation view all send [`Request`]s to the worker, so there is
//! one place where recordings start and stop. The view reads a [`DictationStatus`] the worker keeps.
//!
//! A recording's path: [`Capture`] → frames → [`client::dictate`] on the tokio runtime → the
//! final text → history (first, always) → clipboard / typing → the outbox.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use candybar_core::redact::{Secret, mask_url};
use candybar_core::time::now_us;
use candybar_core::voice::{
    AudioSource, DEFAULT_SERVER, DictationAction, DictationStatus, LastResult, Output, Phase,
};
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};

use crate::capture::Capture;
use crate::client::{self, ClientConfig, ClientEvent, ClientState, Dictated, Failed};
use crate::desktop::Desktop;
use crate::history::{History, NewTranscript};
use crate::outputs::{Deliverer, Outputs};

/// Rows of history the view shows for a query.
const HISTORY_ROWS: usize = 200;
/// The answer to dictation's start/stop while what plays is being transcribed.
const PLAYING_GOES_ON: &str =
    "transcribing what plays (switch \"Transcribe what plays\" off to dictate)";

/// How often the worker checks a recording for a device that went away.
const TICK: Duration = Duration::from_millis(50);

/// Everything the worker needs to record, transcribe and deliver. Secrets (tokens, the broker's
/// password) live only here, never in [`DictationStatus`].
#[derive(Clone, Debug, PartialEq)]
pub struct DictationConfig {
    /// The ASR server's endpoint, ours or WhisperLiveKit's.
    pub server: String,
    pub token: Option<Secret>,
    /// The input device's name; `None` is the system's default.
    pub device: Option<String>,
    pub history_path: PathBuf,
    /// Webhook and bus, delivered through the outbox.
    pub outputs: Outputs,
    pub clipboard: bool,
    pub typing: bool,
    pub reconnect_for: Duration,
    /// Sent to the server as the spoken language (`de`, `auto`, `de,en`); `None`: the server's.
    pub language: Option<String>,
}

impl Default for DictationConfig {
    fn default() -> Self {
        Self {
            server: DEFAULT_SERVER.to_owned(),
            token: None,
            device: None,
            history_path: crate::history::default_path(),
            outputs: Outputs::default(),
            clipboard: true,
            typing: false,
            reconnect_for: Duration::from_secs(30),
            language: None,
        }
    }
}

/// What the hotkey, tray, socket, view and app ask of dictation.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Start,
    Stop,
    Toggle,
    /// Transcribe what the computer plays, or stop doing so (see [`DictationAction`]).
    TogglePlaying,
    /// The hold-to-talk hotkey let go: stops dictation, never a transcription of what plays
    /// (letting go of a key the user pressed during a meeting must not end its transcript).
    StopDictation,
    Configure(Box<DictationConfig>),
    /// Show the history rows matching this text (all when empty).
    Search(String),
    Delete(i64),
    /// Put a kept transcript on the clipboard.
    Copy(i64),
    /// Queue a kept transcript's webhook/bus deliveries again.
    Resend(i64),
    /// Retry every waiting delivery now.
    RetryOutbox,
    /// A token was saved: read the keychain again.
    ReloadSecrets,
    /// Hand what the microphone hears to a conversation (the architect) instead of typing it,
    /// or (`None`) dictate again.
    HandOff(Option<HandOffTo>),
}

/// What a conversation hears from dictation while it holds the microphone's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandOff {
    /// A recording started: the person is talking (barge-in: the reply's voice stops).
    Started,
    /// A recording's words, `final_after_ms` after the audio ended.
    Heard { text: String, final_after_ms: u64 },
    /// Nothing usable came of a recording.
    Failed(String),
}

/// Where [`HandOff`]s go.
#[derive(Clone, Debug)]
pub struct HandOffTo(pub SyncSender<HandOff>);

impl PartialEq for HandOffTo {
    /// Senders are not compared: two hand-offs are never the same request.
    fn eq(&self, _: &Self) -> bool {
        false
    }
}

impl From<DictationAction> for Request {
    fn from(a: DictationAction) -> Self {
        match a {
            DictationAction::Start => Self::Start,
            DictationAction::Stop => Self::Stop,
            DictationAction::Toggle => Self::Toggle,
            DictationAction::TogglePlaying => Self::TogglePlaying,
            DictationAction::Search(q) => Self::Search(q),
            DictationAction::Delete(id) => Self::Delete(id),
            DictationAction::Copy(id) => Self::Copy(id),
            DictationAction::Resend(id) => Self::Resend(id),
            DictationAction::RetryOutbox => Self::RetryOutbox,
        }
    }
}

/// What travels on the worker's channel.
enum Msg {
    Request(Request, Option<SyncSender<String>>),
    Finished {
        id: u64,
        started_us: i64,
        source: AudioSource,
        result: Box<Result<Dictated, Failed>>,
    },
}

type Waker = Arc<dyn Fn() + Send + Sync>;

/// Where the worker finds the tokens its config does not carry (the app passes the system
/// keychain; asked on the worker's thread, since a keychain can take seconds to answer).
pub trait SecretStore: Send + Sync {
    /// The secret called `name` (`asr-token`, `webhook-token`), if one is kept.
    fn get(&self, name: &str) -> Option<Secret>;
    /// Forgets what was read, so the next [`SecretStore::get`] asks again.
    fn forget(&self);
}

/// No secrets anywhere (tests, and tools that pass every token in the config).
pub struct NoSecrets;

impl SecretStore for NoSecrets {
    fn get(&self, _name: &str) -> Option<Secret> {
        None
    }

    fn forget(&self) {}
}

/// The app's handle on dictation; cheap to clone (the hotkey, the socket and the view each hold
/// one).
#[derive(Clone)]
pub struct Dictation {
    tx: SyncSender<Msg>,
    status: Arc<Mutex<DictationStatus>>,
}

impl Dictation {
    /// Starts the worker and the outbox threads. Recordings stream on `rt`; `waker` asks the
    /// window for a frame after a change.
    pub fn start(
        cfg: &DictationConfig,
        rt: tokio::runtime::Handle,
        store: Arc<dyn SecretStore>,
        waker: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let waker: Waker = Arc::new(waker);
        let status = Arc::new(Mutex::new(DictationStatus::default()));
        let (tx, rx) = sync_channel::<Msg>(64);
        let outbox = Arc::new(OutboxShared {
            wake: Notify::new(),
            outputs: Mutex::new((0, cfg.outputs.clone())),
        });
        let worker = Worker {
            cfg: cfg.clone(),
            rt,
            tx: tx.clone(),
            status: status.clone(),
            waker: waker.clone(),
            history: None,
            desktop: Desktop::default(),
            current: None,
            next_id: 0,
            latest_id: 0,
            latest: Arc::default(),
            finishing: 0,
            outbox,
            store,
            secrets: None,
            explicit: (None, None),
            hand_off: None,
        };
        spawn_named("dictation", move || worker.run(&rx));
        let d = Self { tx, status };
        d.send(Request::Search(String::new()));
        d
    }

    /// Asks the worker; false when it is gone or swamped (the request is dropped).
    pub fn send(&self, r: Request) -> bool {
        self.tx.try_send(Msg::Request(r, None)).is_ok()
    }

    /// Asks the worker and waits (up to 5 s) for its answer in words.
    pub fn ask(&self, r: Request) -> String {
        let (ack_tx, ack_rx) = sync_channel(1);
        if self.tx.try_send(Msg::Request(r, Some(ack_tx))).is_err() {
            return "error: dictation is not running".into();
        }
        ack_rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| "error: dictation did not answer".into())
    }

    /// A copy of the status (the lock is held only to clone it).
    pub fn status(&self) -> DictationStatus {
        self.status.lock().clone()
    }

    /// The status itself, for a reader that locks it for as long as it draws (the view).
    pub fn status_cell(&self) -> &Mutex<DictationStatus> {
        &self.status
    }

    /// Reads the status under its lock without copying the history.
    pub fn with_status<R>(&self, f: impl FnOnce(&DictationStatus) -> R) -> R {
        f(&self.status.lock())
    }
}

fn spawn_named(name: &str, f: impl FnOnce() + Send + 'static) {
    if let Err(e) = std::thread::Builder::new().name(name.into()).spawn(f) {
        tracing::error!("cannot start the {name} thread: {e}");
    }
}

/// A recording in progress.
struct Recording {
    id: u64,
    capture: Capture,
    source: AudioSource,
}

struct OutboxShared {
    wake: Notify,
    /// The outputs' generation and value; the outbox rebuilds its deliverer when it changes.
    outputs: Mutex<(u64, Outputs)>,
}

struct Worker {
    cfg: DictationConfig,
    rt: tokio::runtime::Handle,
    tx: SyncSender<Msg>,
    status: Arc<Mutex<DictationStatus>>,
    waker: Waker,
    history: Option<History>,
    desktop: Desktop,
    current: Option<Recording>,
    next_id: u64,
    /// The recording whose text the status shows.
    latest_id: u64,
    /// The same, for the client callbacks on the runtime.
    latest: Arc<std::sync::atomic::AtomicU64>,
    /// Recordings stopped and waiting for their final text.
    finishing: usize,
    outbox: Arc<OutboxShared>,
    /// The ASR and webhook tokens from the keychain, looked up once.
    secrets: Option<(Option<Secret>, Option<Secret>)>,
    store: Arc<dyn SecretStore>,
    /// The tokens the app's config gave (the environment): they win over the keychain.
    explicit: (Option<Secret>, Option<Secret>),
    /// A conversation that takes the microphone's words instead of the desktop.
    hand_off: Option<HandOffTo>,
}

impl Worker {
    fn run(mut self, rx: &Receiver<Msg>) {
        // The outbox opens its own connection once this one has brought the schema up to date:
        // two connections migrating a new file at once would collide.
        self.open_history();
        // Tokens not given in the environment come from the keychain (off the UI thread: a
        // keychain can take seconds to answer).
        let cfg = self.with_secrets(self.cfg.clone());
        self.set_config(cfg);
        let (st, w, path, outbox) = (
            self.status.clone(),
            self.waker.clone(),
            self.cfg.history_path.clone(),
            self.outbox.clone(),
        );
        spawn_named("outbox", move || run_outbox(&path, &outbox, &st, &w));
        loop {
            match rx.recv_timeout(TICK) {
                Ok(Msg::Request(r, ack)) => {
                    let answer = self.handle(r);
                    if let Some(ack) = ack {
                        let _ = ack.try_send(answer);
                    }
                }
                Ok(Msg::Finished {
                    id,
                    started_us,
                    source,
                    result,
                }) => self.finished(id, started_us, &source, *result),
                Err(RecvTimeoutError::Timeout) => self.watch_device(),
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        if let Some(rec) = self.current.take() {
            rec.capture.stop();
        }
    }

    fn open_history(&mut self) {
        match History::open(&self.cfg.history_path) {
            Ok(h) => self.history = Some(h),
            Err(e) => {
                self.update(|s| {
                    s.error = Some(format!(
                        "{e}; transcripts will be shown and delivered but not kept"
                    ));
                });
            }
        }
    }

    fn update(&self, f: impl FnOnce(&mut DictationStatus)) {
        f(&mut self.status.lock());
        (self.waker)();
    }

    fn phase(&self) -> Phase {
        if self.current.is_some() {
            Phase::Recording
        } else if self.finishing > 0 {
            Phase::Finishing
        } else {
            Phase::Idle
        }
    }

    fn set_phase(&self) {
        let phase = self.phase();
        self.update(|s| {
            s.phase = phase;
            if phase != Phase::Recording {
                s.recording_since = None;
                s.level = None;
                s.listening = false;
            }
        });
    }

    #[allow(clippy::too_many_lines)] // one arm per request, read top to bottom
    fn handle(&mut self, r: Request) -> String {
        match r {
            Request::Start => self.start_recording(AudioSource::Mic),
            Request::Stop => self.stop_recording(),
            Request::StopDictation => match &self.current {
                Some(rec) if rec.source != AudioSource::Mic => PLAYING_GOES_ON.to_owned(),
                _ => self.stop_recording(),
            },
            Request::Toggle => match &self.current {
                Some(rec) if rec.source != AudioSource::Mic => PLAYING_GOES_ON.to_owned(),
                Some(_) => self.stop_recording(),
                None => self.start_recording(AudioSource::Mic),
            },
            Request::TogglePlaying => match &self.current {
                Some(rec) if rec.source != AudioSource::Mic => self.stop_recording(),
                Some(rec) => format!(
                    "recording from {} (stop it first to transcribe what plays)",
                    rec.capture.device
                ),
                None => self.start_recording(AudioSource::System),
            },
            Request::Configure(cfg) => {
                let cfg = self.with_secrets(*cfg);
                self.set_config(cfg);
                "configured".into()
            }
            Request::Search(q) => {
                self.status.lock().query = q;
                self.refresh_history();
                "ok".into()
            }
            Request::Delete(id) => self.with_history(id, |h, id| h.delete(id).map(|()| None)),
            Request::Copy(id) => {
                let text = self
                    .history
                    .as_ref()
                    .and_then(|h| h.get(id).ok())
                    .map(|t| t.text);
                match text.map(|t| self.desktop.copy(&t)) {
                    Some(Ok(())) => "copied".into(),
                    Some(Err(e)) => {
                        self.update(|s| s.error = Some(e.clone()));
                        format!("error: {e}")
                    }
                    None => format!("error: no transcript {id}"),
                }
            }
            Request::Resend(id) => {
                let outputs = self.cfg.outputs.clone();
                let answer = self.with_history(id, move |h, id| {
                    let t = h.get(id)?;
                    let planned = outputs.plan(&NewTranscript {
                        created_us: t.created_us,
                        duration_ms: t.duration_ms,
                        text: t.text,
                        server: t.server,
                        model: t.model,
                        protocol: t.protocol,
                        confidence: t.confidence,
                        language: t.language,
                        source: t.source,
                        segments: t.segments,
                    });
                    h.queue(id, &planned, now_us())?;
                    Ok(Some(if planned.is_empty() {
                        "no webhook or bus output is on".to_owned()
                    } else {
                        format!("{} deliveries queued", planned.len())
                    }))
                });
                self.outbox.wake.notify_one();
                answer
            }
            Request::ReloadSecrets => {
                self.secrets = None;
                self.store.forget();
                let mut cfg = self.cfg.clone();
                cfg.token.clone_from(&self.explicit.0);
                if let Some(w) = &mut cfg.outputs.webhook {
                    w.token.clone_from(&self.explicit.1);
                }
                let cfg = self.with_secrets(cfg);
                self.set_config(cfg);
                "reloaded".into()
            }
            Request::RetryOutbox => {
                if let Some(h) = &self.history
                    && let Err(e) = h.retry_all_now()
                {
                    self.update(|s| s.error = Some(e.to_string()));
                }
                self.outbox.wake.notify_one();
                "retrying".into()
            }
            Request::HandOff(to) => {
                self.hand_off = to;
                let to_conversation = self.hand_off.is_some();
                self.update(|s| s.handed_off = to_conversation);
                if to_conversation {
                    "talking"
                } else {
                    "dictating"
                }
                .into()
            }
        }
    }

    /// Fills in the tokens the config lacks from the keychain (or the secrets file).
    fn with_secrets(&mut self, mut cfg: DictationConfig) -> DictationConfig {
        self.explicit = (
            cfg.token.clone(),
            cfg.outputs.webhook.as_ref().and_then(|w| w.token.clone()),
        );
        let (asr, hook) = self
            .secrets
            .get_or_insert_with(|| (self.store.get("asr-token"), self.store.get("webhook-token")))
            .clone();
        if cfg.token.is_none() {
            cfg.token = asr;
        }
        if let Some(w) = &mut cfg.outputs.webhook
            && w.token.is_none()
        {
            w.token = hook;
        }
        cfg
    }

    fn set_config(&mut self, cfg: DictationConfig) {
        let outputs_changed = cfg.outputs != self.cfg.outputs;
        let history_changed = cfg.history_path != self.cfg.history_path;
        self.cfg = cfg;
        if outputs_changed {
            let mut o = self.outbox.outputs.lock();
            *o = (o.0 + 1, self.cfg.outputs.clone());
            self.outbox.wake.notify_one();
        }
        if history_changed {
            self.open_history();
            self.refresh_history();
        }
    }

    /// Runs `f` on the history for transcript `id`, then refreshes the rows shown.
    fn with_history(
        &mut self,
        id: i64,
        f: impl FnOnce(&mut History, i64) -> Result<Option<String>, crate::history::HistoryError>,
    ) -> String {
        let Some(h) = &mut self.history else {
            return "error: the history is not open".into();
        };
        let answer = match f(h, id) {
            Ok(note) => note.unwrap_or_else(|| "ok".into()),
            Err(e) => {
                let msg = e.to_string();
                self.update(|s| s.error = Some(msg.clone()));
                format!("error: {msg}")
            }
        };
        self.refresh_history();
        answer
    }

    fn refresh_history(&self) {
        let Some(h) = &self.history else { return };
        let query = self.status.lock().query.clone();
        let rows = if query.trim().is_empty() {
            h.recent(HISTORY_ROWS)
        } else {
            h.search(&query, HISTORY_ROWS)
        };
        let total = h.count().unwrap_or(0);
        self.update(|s| match rows {
            Ok(rows) => {
                s.history = rows;
                s.history_total = total;
            }
            Err(e) => s.error = Some(e.to_string()),
        });
    }

    fn start_recording(&mut self, source: AudioSource) -> String {
        if let Some(rec) = &self.current {
            return format!("recording (from {})", rec.capture.device);
        }
        let (tx, rx) = mpsc::channel::<Vec<i16>>(4096);
        let capture = match Capture::start_source(&source, self.cfg.device.as_deref(), tx) {
            Ok(c) => c,
            Err(e) => {
                let msg = e.to_string();
                self.update(|s| s.error = Some(msg.clone()));
                return format!("error: {msg}");
            }
        };
        self.next_id += 1;
        let id = self.next_id;
        self.latest_id = id;
        if source == AudioSource::Mic
            && let Some(to) = &self.hand_off
        {
            let _ = to.0.try_send(HandOff::Started);
        }
        let device = capture.device.clone();
        let level = capture.level_meter();
        self.update(|s| {
            s.phase = Phase::Recording;
            s.recording_since = Some(Instant::now());
            s.listening = false;
            s.device.clone_from(&device);
            s.source = source.clone();
            s.level = Some(level);
            s.settled.clear();
            s.tentative.clear();
            s.error = None;
            s.notice = None;
            s.connection = "connecting".into();
            s.recordings += 1;
        });
        let cfg = ClientConfig {
            url: self.cfg.server.clone(),
            token: self.cfg.token.clone(),
            reconnect_for: self.cfg.reconnect_for,
            language: self.cfg.language.clone(),
            ..ClientConfig::default()
        };
        let (status, waker, back) = (self.status.clone(), self.waker.clone(), self.tx.clone());
        let latest = self.latest.clone();
        latest.store(id, std::sync::atomic::Ordering::Relaxed);
        let finished_source = source.clone();
        let started_us = now_us();
        self.rt.spawn(async move {
            let on_event = |e: ClientEvent| {
                // A recording still finishing must not write over the next one's live text.
                if latest.load(std::sync::atomic::Ordering::Relaxed) != id {
                    return;
                }
                let mut s = status.lock();
                match e {
                    ClientEvent::State(st) => {
                        s.reconnecting = matches!(st, ClientState::Reconnecting { .. });
                        s.connection = client::state_words(&st);
                    }
                    ClientEvent::Text { settled, tentative } => {
                        s.settled = settled;
                        s.tentative = tentative;
                    }
                    ClientEvent::ServerError(m) => s.error = Some(format!("ASR server: {m}")),
                }
                drop(s);
                waker();
            };
            let result = client::dictate(&cfg, rx, on_event).await;
            let msg = Msg::Finished {
                id,
                started_us,
                source: finished_source,
                result: Box::new(result),
            };
            // The worker may be busy for a moment; never block the runtime on it.
            let _ = tokio::task::spawn_blocking(move || back.send(msg)).await;
        });
        self.current = Some(Recording {
            id,
            capture,
            source,
        });
        format!("recording (from {device})")
    }

    fn stop_recording(&mut self) -> String {
        let Some(rec) = self.current.take() else {
            return match self.phase() {
                Phase::Finishing => "finishing".into(),
                _ => "not recording".into(),
            };
        };
        let dropped = rec.capture.dropped_frames();
        // Stopping flushes the last audio and closes the frames: the end of the utterance.
        rec.capture.stop();
        if dropped > 0 {
            tracing::warn!(
                "{dropped} frames of audio were dropped in recording {}",
                rec.id
            );
        }
        self.finishing += 1;
        self.set_phase();
        "stopped; finishing the transcript".into()
    }

    /// A microphone that goes away ends the recording; what was heard is still transcribed.
    fn watch_device(&mut self) {
        let Some(rec) = &self.current else { return };
        if rec.capture.first_audio_after().is_some() && !self.status.lock().listening {
            self.update(|s| s.listening = true);
        }
        let notice = rec.capture.notice();
        if notice != self.status.lock().notice {
            self.update(|s| s.notice = notice);
        }
        if let Some(e) = rec.capture.error() {
            self.stop_recording();
            self.update(|s| s.error = Some(e));
        }
    }

    fn finished(
        &mut self,
        id: u64,
        started_us: i64,
        source: &AudioSource,
        result: Result<Dictated, Failed>,
    ) {
        if self.current.as_ref().is_some_and(|r| r.id == id) {
            // The client gave up while the microphone was still open (a refused token, say):
            // close it; this recording was never counted as finishing.
            if let Some(rec) = self.current.take() {
                rec.capture.stop();
            }
        } else {
            self.finishing = self.finishing.saturating_sub(1);
        }
        let shown = id == self.latest_id;
        if *source == AudioSource::Mic
            && let Some(to) = &self.hand_off
        {
            let said = match &result {
                Ok(done) if !done.text.trim().is_empty() => HandOff::Heard {
                    text: done.text.trim().to_owned(),
                    final_after_ms: done.final_after_ms,
                },
                Ok(_) => {
                    HandOff::Failed("nothing was heard (is the right microphone chosen?)".into())
                }
                Err(failed) => HandOff::Failed(failed.error.to_string()),
            };
            if to.0.try_send(said).is_ok() {
                if let Ok(done) = &result {
                    let text = done.text.trim().to_owned();
                    self.update(|s| {
                        s.last = Some(LastResult {
                            text,
                            history_id: None,
                            outputs: Vec::new(),
                            final_after_ms: done.final_after_ms,
                        });
                    });
                }
                self.set_phase();
                return;
            }
        }
        match result {
            Ok(done) => self.keep(started_us, source, &done, shown),
            Err(failed) => self.keep_failed(started_us, &failed),
        }
        self.set_phase();
        self.refresh_history();
    }

    fn keep(&mut self, started_us: i64, source: &AudioSource, done: &Dictated, shown: bool) {
        let text = done.text.trim().to_owned();
        if text.is_empty() {
            if shown {
                self.update(|s| {
                    s.last = Some(LastResult {
                        text: String::new(),
                        history_id: None,
                        outputs: Vec::new(),
                        final_after_ms: done.final_after_ms,
                    });
                    s.error = Some("nothing was heard (is the right microphone chosen?)".into());
                });
            }
            return;
        }
        let t = NewTranscript {
            created_us: started_us,
            duration_ms: done.audio_ms,
            text: text.clone(),
            server: mask_url(&self.cfg.server),
            model: done.model.clone(),
            protocol: done.protocol.as_str().to_owned(),
            confidence: done.confidence,
            language: done.language.clone(),
            source: source.to_string(),
            segments: done.segments.clone(),
        };
        // History first: whatever fails next, the words are kept.
        let history_id = match &mut self.history {
            Some(h) => match h.add(&t, &self.cfg.outputs.plan(&t)) {
                Ok(id) => Some(id),
                Err(e) => {
                    let msg = format!("the transcript was not kept: {e}");
                    self.update(|s| s.error = Some(msg));
                    None
                }
            },
            None => None,
        };
        let mut outputs = Vec::new();
        let put = Instant::now();
        // Dictation goes where the user is typing; a meeting or a video is only kept (and sent
        // on): an hour of text must never be typed into whatever window has the focus.
        let dictated = *source == AudioSource::Mic;
        if dictated && self.cfg.typing {
            outputs.push((Output::Typed, self.desktop.type_or_copy(&text)));
        }
        if dictated && self.cfg.clipboard && !self.cfg.typing {
            outputs.push((Output::Clipboard, self.desktop.copy(&text)));
        }
        if let (Some(h), Some(id)) = (&self.history, history_id) {
            for (output, result) in &outputs {
                let result = result.as_ref().copied().map_err(String::as_str);
                if let Err(e) = h.record(id, *output, result, now_us()) {
                    tracing::warn!("cannot record the {} output: {e}", output.as_str());
                }
            }
        }
        tracing::info!(
            "transcript kept: final text {} ms after the end of speech, {} chars put out in {} ms",
            done.final_after_ms,
            text.chars().count(),
            put.elapsed().as_millis()
        );
        self.outbox.wake.notify_one();
        let error = outputs
            .iter()
            .find_map(|(o, r)| r.as_ref().err().map(|e| format!("{}: {e}", o.as_str())));
        self.update(|s| {
            s.last = Some(LastResult {
                text,
                history_id,
                outputs,
                final_after_ms: done.final_after_ms,
            });
            if shown {
                s.settled.clear();
                s.tentative.clear();
            }
            if error.is_some() {
                s.error = error;
            }
        });
    }

    /// The server could not finish: keep the audio as a WAV file the user can transcribe later.
    fn keep_failed(&self, started_us: i64, failed: &Failed) {
        let dir = self
            .cfg
            .history_path
            .parent()
            .map_or_else(std::env::temp_dir, |d| d.join("unsent"));
        let path = dir.join(format!("recording-{started_us}.wav"));
        let kept = std::fs::create_dir_all(&dir)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                crate::resample::write_wav_16k(&path, &failed.audio).map_err(|e| e.to_string())
            });
        let mut msg = failed.error.to_string();
        if !failed.settled.is_empty() {
            let _ = write!(msg, "; text so far: {:?}", failed.settled);
        }
        match kept {
            Ok(()) => {
                let _ = write!(
                    msg,
                    "; the recording is kept in {} (`candybar dictate --wav` transcribes it later)",
                    path.display()
                );
            }
            Err(e) => {
                let _ = write!(msg, "; the recording could not be kept: {e}");
            }
        }
        tracing::warn!("{msg}");
        self.update(|s| s.error = Some(msg));
    }
}

/// The outbox thread: delivers what waits, when woken or when the next retry is due.
fn run_outbox(
    path: &std::path::Path,
    shared: &OutboxShared,
    status: &Mutex<DictationStatus>,
    waker: &Waker,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("the outbox cannot start: {e}");
            return;
        }
    };
    let history = match History::open(path) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("the outbox cannot open the history: {e}");
            return;
        }
    };
    rt.block_on(async {
        let (mut generation, outputs) = shared.outputs.lock().clone();
        let mut deliverer = Deliverer::new(outputs);
        loop {
            {
                let (g, outputs) = shared.outputs.lock().clone();
                if g != generation {
                    generation = g;
                    deliverer = Deliverer::new(outputs);
                }
            }
            let (pending, error) = match deliverer.run_due(&history).await {
                Ok(r) => (r.pending, None),
                Err(e) => (0, Some(e.to_string())),
            };
            let last_error = history.last_error().ok().flatten();
            {
                let mut s = status.lock();
                s.pending_deliveries = pending;
                s.delivery_error = error.or(if pending > 0 { last_error } else { None });
            }
            waker();
            let next = history
                .next_due_us()
                .ok()
                .flatten()
                .map_or(Duration::from_mins(1), |due| {
                    Duration::from_micros((due - now_us()).max(0) as u64)
                })
                .clamp(Duration::from_millis(20), Duration::from_mins(1));
            tokio::select! {
                () = shared.wake.notified() => {}
                () = tokio::time::sleep(next) => {}
            }
        }
    });
}
