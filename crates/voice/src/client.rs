//! The ASR client: streams one utterance of 16 kHz mono PCM to a speech server over WebSocket
//! and returns its final text.
//!
//! It speaks our `/asr` protocol ([`candybar_core::asr::protocol`]) and WhisperLiveKit's, told apart by
//! the server's first message (`ready` is ours; `{"type":"config","useAudioWorklet":…}` is
//! WhisperLiveKit's). Every sample of the utterance is kept until the end, so when the server
//! goes away mid-utterance the client reconnects and sends again what the server had not yet
//! turned into final text: nothing said is lost. With our protocol that is the audio after the
//! last final's `end_ms`; WhisperLiveKit gives no such mark, so the whole utterance is sent again
//! and its text starts over.
//!
//! Sessions may last hours (a meeting, what plays): with our protocol the audio already turned
//! into final text is let go, so memory stays bounded; a WhisperLiveKit session keeps its last
//! ten minutes (what a reconnect sends again).

use std::time::{Duration, Instant};

use candybar_core::asr::audio::SAMPLE_RATE_HZ;
use candybar_core::asr::protocol::ServerMsg;
use candybar_core::redact::{Secret, mask_url};
use candybar_core::voice::TimedText;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest as _};

pub use candybar_core::voice::DEFAULT_SERVER;

/// Samples per frame when audio is sent again after a reconnect (100 ms).
const RESEND_FRAME: usize = SAMPLE_RATE_HZ as usize / 10;

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `ws://` or `wss://` URL of the server's endpoint (`/asr`).
    pub url: String,
    /// Sent as `Authorization: Bearer`. Never logged.
    pub token: Option<Secret>,
    pub language: Option<String>,
    /// How long to keep trying to reach the server, first or again, while audio is buffered.
    pub reconnect_for: Duration,
    /// How long the server may take to greet after the WebSocket opens.
    pub greet_timeout: Duration,
    /// How long the server may take to deliver the final text after the end of speech.
    pub final_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            url: DEFAULT_SERVER.to_owned(),
            token: None,
            language: None,
            reconnect_for: Duration::from_secs(30),
            greet_timeout: Duration::from_secs(5),
            final_timeout: Duration::from_mins(1),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Candybar,
    #[serde(rename = "whisperlivekit")]
    WhisperLiveKit,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Candybar => "candybar",
            Self::WhisperLiveKit => "whisperlivekit",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ClientState {
    Connecting,
    Streaming {
        protocol: Protocol,
        model: String,
    },
    /// The server went away; audio is being buffered.
    Reconnecting {
        attempt: u32,
        reason: String,
        buffered_ms: u64,
    },
    /// End of speech sent; waiting for the final text.
    Finishing,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ClientEvent {
    State(ClientState),
    /// The text so far: what the server has settled, and its current guess at the rest.
    Text {
        settled: String,
        tentative: String,
    },
    /// A message from the server worth showing that does not end the utterance.
    ServerError(String),
}

/// A finished utterance.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Dictated {
    pub text: String,
    pub audio_ms: u64,
    pub protocol: Protocol,
    pub model: String,
    /// Mean of the finals' confidences (our protocol only).
    pub confidence: Option<f32>,
    /// The language of the last final that said one (ISO 639-1).
    pub language: Option<String>,
    pub reconnects: u32,
    /// From the end of the audio to the final text.
    pub final_after_ms: u64,
    /// The text with its times (from the start of the recording), final by final.
    pub segments: Vec<TimedText>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad ASR server URL {url}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot reach the ASR server at {url} (tried for {secs} s): {reason}")]
    Unreachable {
        url: String,
        secs: u64,
        reason: String,
    },
    #[error(
        "the ASR server at {url} refused the token (HTTP {status}): set the server's token \
         (--token, CANDYBAR_ASR_TOKEN or the keychain)"
    )]
    Unauthorized { url: String, status: u16 },
    #[error("{url} is not an ASR server candybar can talk to: {detail}")]
    NotAsr { url: String, detail: String },
    #[error("the ASR server ended the utterance: {message}")]
    Rejected { message: String },
    #[error("no final text from {url} within {secs} s of the end of speech")]
    NoFinal { url: String, secs: u64 },
}

/// An utterance that could not be finished. The audio is handed back so the caller can keep
/// it (nothing said is lost); `settled` is the text the server had already finalized.
#[derive(Debug)]
pub struct Failed {
    pub error: ClientError,
    pub audio: Vec<i16>,
    pub settled: String,
}

/// A state in words, for the terminal and the status bar.
#[must_use]
pub fn state_words(s: &ClientState) -> String {
    match s {
        ClientState::Connecting => "connecting".into(),
        ClientState::Streaming { protocol, model } => {
            format!("streaming to a {} server ({model})", protocol.as_str())
        }
        ClientState::Reconnecting {
            attempt,
            reason,
            buffered_ms,
        } => format!(
            "reconnecting (attempt {attempt}; {reason}); {:.1} s of audio kept",
            *buffered_ms as f64 / 1000.0
        ),
        ClientState::Finishing => "waiting for the final text".into(),
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

enum ConnectFail {
    Fatal(ClientError),
    Retry(String),
}

/// What one connection ended with.
enum ConnEnd {
    Finished,
    Lost(String),
    Fatal(ClientError),
}

/// The text of one utterance as the server builds it.
#[derive(Default)]
struct Text {
    /// Our protocol: the finals so far.
    finals: Vec<String>,
    /// Our protocol: the finals with their times.
    timed: Vec<TimedText>,
    /// WhisperLiveKit: the last snapshot's lines.
    lines: String,
    /// WhisperLiveKit: the last snapshot's lines with their times.
    timed_lines: Vec<TimedText>,
    tentative: String,
    confidences: Vec<f32>,
    language: Option<String>,
}

impl Text {
    fn segments(&self) -> Vec<TimedText> {
        self.timed
            .iter()
            .chain(&self.timed_lines)
            .cloned()
            .collect()
    }

    fn settled(&self) -> String {
        let mut s = self.finals.join(" ");
        if !self.lines.is_empty() {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(&self.lines);
        }
        s
    }
}

/// Streams the audio that arrives on `audio` (frames of any size; the channel closing is the end
/// of speech) and returns the final text. `on_event` sees states and text as they change.
pub async fn dictate(
    cfg: &ClientConfig,
    mut audio: mpsc::Receiver<Vec<i16>>,
    mut on_event: impl FnMut(ClientEvent),
) -> Result<Dictated, Failed> {
    let shown_url = mask_url(&cfg.url);
    let mut st = Utterance {
        buf: Vec::new(),
        dropped: 0,
        audio_open: true,
        audio_end: None,
        committed_samples: 0,
        text: Text::default(),
        progress: false,
    };
    let mut reconnects = 0u32;
    let mut attempt = 0u32;
    let mut down_since = Instant::now();
    let mut reason = String::new();
    on_event(ClientEvent::State(ClientState::Connecting));
    loop {
        let connected = {
            let fut = connect(cfg);
            tokio::pin!(fut);
            loop {
                tokio::select! {
                    r = &mut fut => break r,
                    f = audio.recv(), if st.audio_open => st.take(f, None),
                }
            }
        };
        match connected {
            Err(ConnectFail::Fatal(error)) => return Err(st.fail(error)),
            Err(ConnectFail::Retry(why)) => reason = why,
            Ok((ws, protocol, model)) => {
                if reconnects > 0 || attempt > 0 {
                    tracing::info!(
                        "ASR server {shown_url} reached again after {} ms ({reason})",
                        down_since.elapsed().as_millis()
                    );
                }
                on_event(ClientEvent::State(ClientState::Streaming {
                    protocol,
                    model: model.clone(),
                }));
                st.progress = false;
                match stream(cfg, ws, protocol, &mut st, &mut audio, &mut on_event).await {
                    ConnEnd::Finished => return Ok(st.finished(protocol, model, reconnects)),
                    ConnEnd::Fatal(error) => return Err(st.fail(error)),
                    ConnEnd::Lost(why) => {
                        tracing::warn!("lost the ASR server {shown_url}: {why}; reconnecting");
                        reconnects += 1;
                        reason = why;
                        // A connection that got somewhere starts the patience over; one that
                        // failed at once counts as one more failed attempt.
                        if st.progress {
                            attempt = 0;
                            down_since = Instant::now();
                        }
                    }
                }
            }
        }
        attempt += 1;
        if down_since.elapsed() >= cfg.reconnect_for {
            let error = ClientError::Unreachable {
                url: shown_url,
                secs: cfg.reconnect_for.as_secs(),
                reason,
            };
            return Err(st.fail(error));
        }
        on_event(ClientEvent::State(ClientState::Reconnecting {
            attempt,
            reason: reason.clone(),
            buffered_ms: st.buffered_ms(),
        }));
        // 100 ms, 200 ms, 400 ms … 2 s between attempts, taking audio all the while.
        let backoff =
            Duration::from_millis(100 << (attempt - 1).min(5)).min(Duration::from_secs(2));
        let sleep = tokio::time::sleep(backoff);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                f = audio.recv(), if st.audio_open => st.take(f, None),
            }
        }
    }
}

/// How much of a WhisperLiveKit session is kept to send again after a reconnect: ten minutes.
const WLK_KEEP_SAMPLES: usize = 10 * 60 * SAMPLE_RATE_HZ as usize;

struct Utterance {
    /// The samples not yet let go: every sample after the first `dropped`.
    buf: Vec<i16>,
    /// Samples already turned into final text and let go (positions count them).
    dropped: usize,
    audio_open: bool,
    audio_end: Option<Instant>,
    /// The samples already turned into final text (our protocol), from the start.
    committed_samples: usize,
    text: Text,
    /// The current connection brought text or lasted a while.
    progress: bool,
}

impl Utterance {
    fn take(&mut self, frame: Option<Vec<i16>>, protocol: Option<Protocol>) {
        if let Some(f) = frame {
            self.buf.extend_from_slice(&f);
            if protocol == Some(Protocol::WhisperLiveKit) && self.buf.len() > WLK_KEEP_SAMPLES {
                let over = self.buf.len() - WLK_KEEP_SAMPLES;
                self.buf.drain(..over);
                self.dropped += over;
            }
        } else {
            self.audio_open = false;
            self.audio_end = Some(Instant::now());
        }
    }

    /// All the audio so far, from the start.
    fn total_samples(&self) -> usize {
        self.dropped + self.buf.len()
    }

    fn buffered_ms(&self) -> u64 {
        self.total_samples() as u64 * 1000 / u64::from(SAMPLE_RATE_HZ)
    }

    /// Lets go of the audio up to `committed_samples` (our protocol: it will not be sent again).
    fn let_go(&mut self) {
        let n = self
            .committed_samples
            .saturating_sub(self.dropped)
            .min(self.buf.len());
        self.buf.drain(..n);
        self.dropped += n;
    }

    fn finished(&self, protocol: Protocol, model: String, reconnects: u32) -> Dictated {
        let end = self.audio_end.unwrap_or_else(Instant::now);
        let c = &self.text.confidences;
        Dictated {
            text: self.text.settled(),
            audio_ms: self.buffered_ms(),
            protocol,
            model: if model.is_empty() {
                protocol.as_str().to_owned()
            } else {
                model
            },
            confidence: (!c.is_empty()).then(|| c.iter().sum::<f32>() / c.len() as f32),
            language: self.text.language.clone(),
            segments: self.text.segments(),
            reconnects,
            final_after_ms: end.elapsed().as_millis() as u64,
        }
    }

    fn fail(&mut self, error: ClientError) -> Failed {
        Failed {
            error,
            audio: std::mem::take(&mut self.buf),
            settled: self.text.settled(),
        }
    }
}

async fn connect(cfg: &ClientConfig) -> Result<(Ws, Protocol, String), ConnectFail> {
    let shown = mask_url(&cfg.url);
    let bad_url = |reason: String| {
        ConnectFail::Fatal(ClientError::BadUrl {
            url: shown.clone(),
            reason,
        })
    };
    let mut request = cfg
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| bad_url(e.to_string()))?;
    if let Some(token) = &cfg.token {
        let value = format!("Bearer {}", token.expose())
            .parse()
            .map_err(|_| bad_url("the token has characters a header cannot carry".into()))?;
        request.headers_mut().insert("authorization", value);
    }
    let ws_config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(4 << 20))
        .max_frame_size(Some(4 << 20));
    let opened = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true),
    )
    .await;
    let ws = match opened {
        Err(_) => return Err(ConnectFail::Retry("no answer within 10 s".into())),
        Ok(Ok((ws, _))) => ws,
        Ok(Err(tungstenite::Error::Http(resp))) => {
            let status = resp.status().as_u16();
            return Err(match status {
                401 | 403 => ConnectFail::Fatal(ClientError::Unauthorized { url: shown, status }),
                502..=504 => ConnectFail::Retry(format!("HTTP {status}")),
                _ => ConnectFail::Fatal(ClientError::NotAsr {
                    url: shown,
                    detail: format!("the WebSocket upgrade was answered with HTTP {status}"),
                }),
            });
        }
        Ok(Err(tungstenite::Error::Url(e))) => return Err(bad_url(e.to_string())),
        Ok(Err(e @ tungstenite::Error::Tls(_))) => {
            return Err(ConnectFail::Fatal(ClientError::NotAsr {
                url: shown,
                detail: format!("TLS: {e}"),
            }));
        }
        Ok(Err(e)) => return Err(ConnectFail::Retry(e.to_string())),
    };
    greet(cfg, ws, shown).await
}

/// Reads the server's first message and tells the protocols apart.
async fn greet(
    cfg: &ClientConfig,
    mut ws: Ws,
    shown: String,
) -> Result<(Ws, Protocol, String), ConnectFail> {
    let first = match tokio::time::timeout(cfg.greet_timeout, ws.next()).await {
        Err(_) => {
            return Err(ConnectFail::Fatal(ClientError::NotAsr {
                url: shown,
                detail: format!(
                    "it said nothing for {} s after the WebSocket opened (our server greets with \
                     `ready`, WhisperLiveKit with `config`)",
                    cfg.greet_timeout.as_secs()
                ),
            }));
        }
        Ok(None) => return Err(ConnectFail::Retry("closed before greeting".into())),
        Ok(Some(Err(e))) => return Err(ConnectFail::Retry(e.to_string())),
        Ok(Some(Ok(m))) => m,
    };
    let text = match first {
        Message::Text(t) => t.to_string(),
        Message::Close(frame) => {
            return Err(ConnectFail::Retry(frame.map_or_else(
                || "closed before greeting".into(),
                |f| format!("closed before greeting: {}", f.reason),
            )));
        }
        other => {
            return Err(ConnectFail::Fatal(ClientError::NotAsr {
                url: shown,
                detail: format!("its first message was {} bytes of binary", other.len()),
            }));
        }
    };
    match serde_json::from_str::<ServerMsg>(&text) {
        Ok(ServerMsg::Ready { model, .. }) => {
            let config = serde_json::json!({
                "type": "config",
                "sample_rate": SAMPLE_RATE_HZ,
                "language": cfg.language,
            });
            ws.send(Message::Text(config.to_string().into()))
                .await
                .map_err(|e| ConnectFail::Retry(e.to_string()))?;
            return Ok((ws, Protocol::Candybar, model));
        }
        // Too many clients, or the model still loading: the server asks to come back.
        Ok(ServerMsg::Error { message }) => return Err(ConnectFail::Retry(message)),
        _ => {}
    }
    let value: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    let wlk = value.as_ref().is_some_and(|v| {
        (v["type"] == "config" && v.get("useAudioWorklet").is_some()) || v.get("lines").is_some()
    });
    if wlk {
        if value
            .as_ref()
            .is_some_and(|v| v["useAudioWorklet"] == serde_json::Value::Bool(false))
        {
            return Err(ConnectFail::Fatal(ClientError::NotAsr {
                url: shown,
                detail: "this WhisperLiveKit server expects WebM from a browser: start it with \
                         --pcm-input so it accepts raw PCM"
                    .into(),
            }));
        }
        return Ok((ws, Protocol::WhisperLiveKit, String::new()));
    }
    let shown_text: String = text.chars().take(80).collect();
    Err(ConnectFail::Fatal(ClientError::NotAsr {
        url: shown,
        detail: format!("its first message was {shown_text:?}"),
    }))
}

fn pcm_message(samples: &[i16]) -> Message {
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    Message::Binary(bytes.into())
}

/// One connection's life: send what the server lacks, then live audio, read its messages.
async fn stream(
    cfg: &ClientConfig,
    ws: Ws,
    protocol: Protocol,
    st: &mut Utterance,
    audio: &mut mpsc::Receiver<Vec<i16>>,
    on_event: &mut impl FnMut(ClientEvent),
) -> ConnEnd {
    let opened = Instant::now();
    let (mut tx, mut rx) = ws.split();
    let mut last_error: Option<String> = None;
    let end = match exchange(
        cfg,
        &mut tx,
        &mut rx,
        protocol,
        st,
        audio,
        on_event,
        &mut last_error,
    )
    .await
    {
        Err(send_error) => after_send_failure(&mut rx, send_error, &mut last_error).await,
        Ok(end) => end,
    };
    if opened.elapsed() > Duration::from_secs(2) {
        st.progress = true;
    }
    end
}

type WsTx = futures_util::stream::SplitSink<Ws, Message>;
type WsRx = futures_util::stream::SplitStream<Ws>;

/// The send and receive loop; `Err` is a failed send (the server may have said why).
#[allow(clippy::too_many_arguments, clippy::too_many_lines)] // one select loop, read top to bottom
async fn exchange(
    cfg: &ClientConfig,
    tx: &mut WsTx,
    rx: &mut WsRx,
    protocol: Protocol,
    st: &mut Utterance,
    audio: &mut mpsc::Receiver<Vec<i16>>,
    on_event: &mut impl FnMut(ClientEvent),
    last_error: &mut Option<String>,
) -> Result<ConnEnd, String> {
    // Where this connection's audio starts within the utterance.
    let base = match protocol {
        Protocol::Candybar => st.committed_samples.clamp(st.dropped, st.total_samples()),
        Protocol::WhisperLiveKit => {
            st.text.lines.clear();
            st.text.timed_lines.clear();
            st.text.tentative.clear();
            st.dropped
        }
    };
    for chunk in st.buf[base - st.dropped..].chunks(RESEND_FRAME) {
        tx.send(pcm_message(chunk))
            .await
            .map_err(|e| e.to_string())?;
    }
    let end_of_speech = match protocol {
        Protocol::Candybar => Message::Text(r#"{"type":"eos"}"#.into()),
        Protocol::WhisperLiveKit => Message::Binary(Vec::new().into()),
    };
    let mut eos_sent_at: Option<Instant> = None;
    if !st.audio_open {
        tx.send(end_of_speech.clone())
            .await
            .map_err(|e| e.to_string())?;
        eos_sent_at = Some(Instant::now());
        on_event(ClientEvent::State(ClientState::Finishing));
    }
    loop {
        let deadline = eos_sent_at.map(|t| t + cfg.final_timeout);
        let timeout = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            frame = audio.recv(), if st.audio_open => {
                let msg = if let Some(f) = frame {
                    let msg = pcm_message(&f);
                    st.take(Some(f), Some(protocol));
                    msg
                } else {
                    st.take(None, Some(protocol));
                    eos_sent_at = Some(Instant::now());
                    on_event(ClientEvent::State(ClientState::Finishing));
                    end_of_speech.clone()
                };
                tx.send(msg).await.map_err(|e| e.to_string())?;
            }
            () = timeout => {
                return Ok(ConnEnd::Fatal(ClientError::NoFinal {
                    url: mask_url(&cfg.url),
                    secs: cfg.final_timeout.as_secs(),
                }));
            }
            msg = rx.next() => {
                let msg = match msg {
                    None => return Ok(ConnEnd::Lost("the server closed the connection".into())),
                    Some(Err(e)) => return Ok(ConnEnd::Lost(e.to_string())),
                    Some(Ok(m)) => m,
                };
                let text = match msg {
                    Message::Text(t) => t,
                    Message::Binary(b) => {
                        on_event(ClientEvent::ServerError(format!(
                            "the server sent {} bytes of binary; ignored",
                            b.len()
                        )));
                        continue;
                    }
                    Message::Close(frame) => return Ok(closed(frame, last_error)),
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                };
                let finished = match protocol {
                    Protocol::Candybar => on_candybar(&text, base, st, eos_sent_at.is_some(), last_error, on_event),
                    Protocol::WhisperLiveKit => on_wlk(&text, st, on_event),
                };
                if finished {
                    let _ = tx.send(Message::Close(None)).await;
                    return Ok(ConnEnd::Finished);
                }
            }
        }
    }
}

/// What a close frame means: limits (1008 policy, 1009 too big) do not go away by asking again;
/// anything else is worth a reconnect.
fn closed(
    frame: Option<tungstenite::protocol::CloseFrame>,
    last_error: &mut Option<String>,
) -> ConnEnd {
    let code = frame.as_ref().map(|f| u16::from(f.code));
    let why = frame
        .map(|f| f.reason.to_string())
        .filter(|r| !r.is_empty())
        .or_else(|| last_error.take())
        .unwrap_or_else(|| "the server closed the connection".into());
    if matches!(code, Some(1008 | 1009)) {
        ConnEnd::Fatal(ClientError::Rejected { message: why })
    } else {
        ConnEnd::Lost(why)
    }
}

/// A send failed, usually because the server closed: read for a moment what it said last.
async fn after_send_failure(
    rx: &mut WsRx,
    send_error: String,
    last_error: &mut Option<String>,
) -> ConnEnd {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, rx.next()).await {
        match m {
            Message::Close(frame) => return closed(frame, last_error),
            Message::Text(t) => {
                if let Ok(ServerMsg::Error { message }) = serde_json::from_str(&t) {
                    *last_error = Some(message);
                }
            }
            _ => {}
        }
    }
    ConnEnd::Lost(last_error.take().unwrap_or(send_error))
}

/// One message of our protocol. Returns whether the utterance is finished.
fn on_candybar(
    text: &str,
    base: usize,
    st: &mut Utterance,
    eos_sent: bool,
    last_error: &mut Option<String>,
    on_event: &mut impl FnMut(ClientEvent),
) -> bool {
    match serde_json::from_str::<ServerMsg>(text) {
        Ok(ServerMsg::Partial(t)) => {
            st.progress = true;
            st.text.tentative = t.text;
            emit_text(st, on_event);
        }
        Ok(ServerMsg::Final(t)) => {
            st.progress = true;
            let text = t.text.trim();
            if !text.is_empty() {
                st.text.finals.push(text.to_owned());
                st.text.confidences.push(t.confidence);
                if t.language.is_some() {
                    st.text.language = t.language;
                }
            }
            let base_ms = base as u64 * 1000 / u64::from(SAMPLE_RATE_HZ);
            if !text.is_empty() {
                st.text.timed.push(TimedText {
                    start_ms: base_ms + t.start_ms,
                    end_ms: base_ms + t.end_ms.max(t.start_ms),
                    text: text.to_owned(),
                });
            }
            let end = base + (t.end_ms as usize).saturating_mul(SAMPLE_RATE_HZ as usize) / 1000;
            st.committed_samples = end.min(st.total_samples()).max(st.committed_samples);
            st.let_go();
            st.text.tentative.clear();
            emit_text(st, on_event);
        }
        Ok(ServerMsg::Error { message }) => {
            *last_error = Some(message.clone());
            on_event(ClientEvent::ServerError(message));
        }
        Ok(ServerMsg::Done) => return eos_sent,
        Ok(ServerMsg::Ready { .. }) => {}
        Err(_) => on_event(ClientEvent::ServerError(unreadable(text))),
    }
    false
}

/// One WhisperLiveKit message (the snapshot API: `lines[]` + `buffer_transcription`).
fn on_wlk(text: &str, st: &mut Utterance, on_event: &mut impl FnMut(ClientEvent)) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        on_event(ClientEvent::ServerError(unreadable(text)));
        return false;
    };
    if v["type"] == "ready_to_stop" {
        // Whatever was still tentative is the last of the text.
        let tail = std::mem::take(&mut st.text.tentative);
        if !tail.trim().is_empty() {
            if !st.text.lines.is_empty() {
                st.text.lines.push(' ');
            }
            st.text.lines.push_str(tail.trim());
        }
        return true;
    }
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        on_event(ClientEvent::ServerError(e.to_owned()));
        return false;
    }
    let Some(lines) = v.get("lines").and_then(|l| l.as_array()) else {
        return false; // config, status messages
    };
    // Speaker -2 marks silence.
    let spoken = || lines.iter().filter(|l| l["speaker"] != -2);
    let words: Vec<&str> = spoken()
        .filter_map(|l| l["text"].as_str())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    st.progress = true;
    st.text.lines = words.join(" ");
    // This connection's times start where its audio did.
    let base_ms = st.dropped as u64 * 1000 / u64::from(SAMPLE_RATE_HZ);
    st.text.timed_lines = spoken()
        .filter_map(|l| {
            let text = l["text"].as_str()?.trim();
            let start = l.get("start").or_else(|| l.get("beg"))?.as_str()?;
            let end = l["end"].as_str()?;
            if text.is_empty() {
                return None;
            }
            Some(TimedText {
                start_ms: base_ms + wlk_time_ms(start)?,
                end_ms: base_ms + wlk_time_ms(end)?,
                text: text.to_owned(),
            })
        })
        .collect();
    st.text.tentative.clear();
    st.text.tentative.push_str(
        v["buffer_transcription"]
            .as_str()
            .unwrap_or_default()
            .trim(),
    );
    emit_text(st, on_event);
    false
}

fn emit_text(st: &Utterance, on_event: &mut impl FnMut(ClientEvent)) {
    on_event(ClientEvent::Text {
        settled: st.text.settled(),
        tentative: st.text.tentative.clone(),
    });
}

/// WhisperLiveKit's `H:MM:SS` or `H:MM:SS.cc`, in milliseconds.
fn wlk_time_ms(t: &str) -> Option<u64> {
    let mut parts = t.trim().split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    let secs: f64 = s.parse().ok()?;
    if parts.next().is_some() || !(0.0..60.0).contains(&secs) {
        return None;
    }
    let ms = (h.parse::<u64>().ok()? * 3600 + m.parse::<u64>().ok()? * 60) * 1000;
    Some(ms + (secs * 1000.0).round() as u64)
}

fn unreadable(text: &str) -> String {
    let shown: String = text.chars().take(80).collect();
    format!("the server sent a message candybar cannot read: {shown:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utterance() -> Utterance {
        Utterance {
            buf: vec![0; 16_000 * 3],
            dropped: 0,
            audio_open: false,
            audio_end: None,
            committed_samples: 0,
            text: Text::default(),
            progress: false,
        }
    }

    #[test]
    fn finals_move_the_resend_point() {
        let mut st = utterance();
        let mut events = Vec::new();
        let mut err = None;
        let fin = r#"{"type":"final","text":" Hello there. ","is_final":true,"timestamp":"t","confidence":0.8,"start_ms":0,"end_ms":1500,"segment":0}"#;
        assert!(!on_candybar(
            fin,
            8_000,
            &mut st,
            false,
            &mut err,
            &mut |e| events.push(e)
        ));
        // base half a second in + 1.5 s of this connection = 2 s into the utterance; that much
        // is let go, and the final keeps its place in time.
        assert_eq!(st.committed_samples, 32_000);
        assert_eq!((st.dropped, st.buf.len()), (32_000, 16_000));
        assert_eq!(st.buffered_ms(), 3_000);
        assert_eq!(
            st.text.segments(),
            [TimedText {
                start_ms: 500,
                end_ms: 2_000,
                text: "Hello there.".into()
            }]
        );
        assert_eq!(st.text.settled(), "Hello there.");
        assert!(on_candybar(
            r#"{"type":"done"}"#,
            0,
            &mut st,
            true,
            &mut err,
            &mut |e| events.push(e)
        ));
        assert!(!on_candybar(
            "not json",
            0,
            &mut st,
            true,
            &mut err,
            &mut |e| events.push(e)
        ));
        assert!(
            matches!(events.last(), Some(ClientEvent::ServerError(m)) if m.contains("not json"))
        );
    }

    #[test]
    fn whisperlivekit_snapshots() {
        let mut st = utterance();
        let mut events = Vec::new();
        let snap = r#"{"status":"active_transcription","lines":[{"speaker":1,"text":"Hello world,","beg":"0:00:00","end":"0:00:01"},{"speaker":-2,"text":"","beg":"0:00:01","end":"0:00:02"},{"speaker":1,"text":"how are","beg":"0:00:02","end":"0:00:03"}],"buffer_transcription":"you today","buffer_diarization":"","remaining_time_transcription":0.2}"#;
        assert!(!on_wlk(snap, &mut st, &mut |e| events.push(e)));
        assert_eq!(
            events.last(),
            Some(&ClientEvent::Text {
                settled: "Hello world, how are".into(),
                tentative: "you today".into()
            })
        );
        // Its lines keep their times (`start`, or `beg` in older versions; silence left out).
        assert_eq!(
            st.text
                .segments()
                .iter()
                .map(|t| (t.start_ms, t.end_ms))
                .collect::<Vec<_>>(),
            [(0, 1_000), (2_000, 3_000)]
        );
        assert_eq!(wlk_time_ms("1:02:03.45"), Some(3_723_450));
        assert_eq!(wlk_time_ms("0:00:75"), None);
        assert_eq!(wlk_time_ms("soon"), None);
        assert!(on_wlk(r#"{"type":"ready_to_stop"}"#, &mut st, &mut |e| {
            events.push(e);
        }));
        assert_eq!(st.text.settled(), "Hello world, how are you today");
        assert!(!on_wlk("\u{0}\u{1}garbage", &mut st, &mut |e| events.push(e)));
    }
}
