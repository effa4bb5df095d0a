//! The architect's endpoint: OpenAI's chat completions API (`POST {url}/chat/completions`), as
//! llama.cpp's `llama-server`, Ollama, vLLM and hosted services speak it. Replies are streamed
//! (server-sent events) and handed over piece by piece; a server that answers in one piece is
//! read all the same. A server that is down, silent, slow or speaking something else gives an
//! error in words, never a panic; the key is never shown.

use std::time::{Duration, Instant};

use candybar_core::redact::Secret;
use eventsource_stream::Eventsource as _;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The most of a reply kept (a runaway model is cut here, and said so).
pub const MAX_REPLY_BYTES: usize = 256 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// Where the architect is and how long it may take.
#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// The API's base, e.g. `http://127.0.0.1:8080/v1` (llama.cpp) or
    /// `http://127.0.0.1:11434/v1` (Ollama).
    pub url: String,
    pub model: String,
    pub api_key: Option<Secret>,
    /// Ask for a streamed reply.
    pub stream: bool,
    /// The longest wait for the reply's first piece (a local model reading a long prompt on a
    /// CPU takes a while).
    pub first_token_timeout: Duration,
    /// The longest silence between two pieces, and the longest whole reply.
    pub idle_timeout: Duration,
    pub total_timeout: Duration,
    /// Tokens the reply may have (`max_tokens`), when set.
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
}

impl ChatConfig {
    pub fn new(url: &str, model: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_owned(),
            model: model.to_owned(),
            api_key: None,
            stream: true,
            first_token_timeout: Duration::from_mins(1),
            idle_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_mins(5),
            max_tokens: None,
            temperature: None,
        }
    }
}

/// A whole reply and how long it took.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub text: String,
    /// From the request to the first piece of text.
    pub first_token: Option<Duration>,
    pub total: Duration,
    /// Why the model stopped (`stop`, `length`), when the server said.
    pub finish_reason: Option<String>,
    /// The reply was longer than [`MAX_REPLY_BYTES`] and was cut.
    pub cut: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChatError {
    #[error("cannot reach the architect at {url}: {reason} — start it, or set [architect] url")]
    Unreachable { url: String, reason: String },
    #[error("the architect's server refused (HTTP {status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the architect said nothing for {0} s: it may be overloaded; try again")]
    Silent(u64),
    #[error("the architect's reply took over {0} s and was stopped")]
    TooSlow(u64),
    #[error("the architect's server answered something that is not a chat completion: {0}")]
    Garbage(String),
    #[error("the architect's server reported an error: {0}")]
    Failed(String),
    #[error("the architect answered nothing")]
    Empty,
}

/// Sends `messages`, calling `on_text` with each piece of the reply as it comes.
pub async fn complete(
    http: &reqwest::Client,
    cfg: &ChatConfig,
    messages: &[Message],
    mut on_text: impl FnMut(&str),
) -> Result<Reply, ChatError> {
    let started = Instant::now();
    let url = format!("{}/chat/completions", cfg.url);
    let mut body = json!({"model": cfg.model, "messages": messages, "stream": cfg.stream});
    if let Some(n) = cfg.max_tokens {
        body["max_tokens"] = n.into();
    }
    if let Some(t) = cfg.temperature {
        body["temperature"] = f64::from(t).into();
    }
    let mut request = http.post(&url).json(&body);
    if let Some(key) = &cfg.api_key {
        request = request.bearer_auth(key.expose());
    }
    let unreachable = |e: &reqwest::Error| ChatError::Unreachable {
        url: candybar_core::redact::mask_url(&cfg.url),
        reason: candybar_core::redact::mask_secrets_in(&error_chain(e)),
    };
    let response = match tokio::time::timeout(cfg.first_token_timeout, request.send()).await {
        Err(_) => return Err(ChatError::Silent(cfg.first_token_timeout.as_secs())),
        Ok(Err(e)) => return Err(unreachable(&e)),
        Ok(Ok(r)) => r,
    };
    let status = response.status().as_u16();
    let streamed = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !(200..300).contains(&status) {
        let text = read_limited(response, cfg).await.unwrap_or_default();
        return Err(ChatError::Refused {
            status,
            message: error_message(&text),
        });
    }
    let mut reply = Reply {
        text: String::new(),
        first_token: None,
        total: Duration::ZERO,
        finish_reason: None,
        cut: false,
    };
    if streamed {
        read_stream(response, cfg, started, &mut reply, &mut on_text).await?;
    } else {
        let text = read_limited(response, cfg).await?;
        let v: Value = serde_json::from_str(&text).map_err(|_| garbage(&text))?;
        if let Some(e) = v.get("error") {
            return Err(ChatError::Failed(error_message(&e.to_string())));
        }
        let content = v["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| garbage(&text))?;
        reply.first_token = Some(started.elapsed());
        reply.finish_reason = v["choices"][0]["finish_reason"].as_str().map(str::to_owned);
        push(&mut reply, content, &mut on_text);
    }
    reply.total = started.elapsed();
    if reply.text.trim().is_empty() {
        return Err(ChatError::Empty);
    }
    Ok(reply)
}

async fn read_stream(
    response: reqwest::Response,
    cfg: &ChatConfig,
    started: Instant,
    reply: &mut Reply,
    on_text: &mut impl FnMut(&str),
) -> Result<(), ChatError> {
    let mut events = response.bytes_stream().eventsource();
    loop {
        let wait = if reply.first_token.is_none() {
            cfg.first_token_timeout.saturating_sub(started.elapsed())
        } else {
            cfg.idle_timeout
        };
        if started.elapsed() > cfg.total_timeout {
            return Err(ChatError::TooSlow(cfg.total_timeout.as_secs()));
        }
        let event = match tokio::time::timeout(wait, events.next()).await {
            Err(_) if reply.first_token.is_none() => {
                return Err(ChatError::Silent(cfg.first_token_timeout.as_secs()));
            }
            Err(_) => return Err(ChatError::Silent(cfg.idle_timeout.as_secs())),
            Ok(None) => return Ok(()), // the server ended the stream without [DONE]
            Ok(Some(Err(e))) => return Err(ChatError::Garbage(e.to_string())),
            Ok(Some(Ok(event))) => event,
        };
        let data = event.data.trim();
        if data == "[DONE]" {
            return Ok(());
        }
        if data.is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(data).map_err(|_| garbage(data))?;
        if let Some(e) = v.get("error") {
            return Err(ChatError::Failed(error_message(&e.to_string())));
        }
        let choice = &v["choices"][0];
        if choice.is_null() && v.get("choices").is_none() {
            return Err(garbage(data));
        }
        if let Some(piece) = choice["delta"]["content"]
            .as_str()
            .or_else(|| choice["message"]["content"].as_str())
            && !piece.is_empty()
        {
            if reply.first_token.is_none() {
                reply.first_token = Some(started.elapsed());
            }
            if !push(reply, piece, on_text) {
                return Ok(());
            }
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            reply.finish_reason = Some(reason.to_owned());
        }
    }
}

/// Adds a piece to the reply; false once the reply is as long as it may be.
fn push(reply: &mut Reply, piece: &str, on_text: &mut impl FnMut(&str)) -> bool {
    let room = MAX_REPLY_BYTES.saturating_sub(reply.text.len());
    let mut piece = piece;
    if piece.len() > room {
        let mut end = room;
        while !piece.is_char_boundary(end) {
            end -= 1;
        }
        piece = &piece[..end];
        reply.cut = true;
    }
    reply.text.push_str(piece);
    on_text(piece);
    !reply.cut
}

async fn read_limited(
    mut response: reqwest::Response,
    cfg: &ChatConfig,
) -> Result<String, ChatError> {
    let mut bytes = Vec::new();
    loop {
        match tokio::time::timeout(cfg.idle_timeout, response.chunk()).await {
            Err(_) => return Err(ChatError::Silent(cfg.idle_timeout.as_secs())),
            Ok(Err(e)) => return Err(ChatError::Garbage(error_chain(&e))),
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > MAX_REPLY_BYTES * 4 {
                    return Err(ChatError::Garbage(format!(
                        "over {} bytes in one answer",
                        MAX_REPLY_BYTES * 4
                    )));
                }
            }
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn garbage(text: &str) -> ChatError {
    let line: String = candybar_core::text::first_line(text, 120);
    ChatError::Garbage(if line.is_empty() {
        "an empty answer".to_owned()
    } else {
        format!("{line:?}")
    })
}

/// The server's own words for an error (OpenAI's `{"error": {"message": …}}`, llama.cpp's, or
/// the first line of whatever it sent).
fn error_message(text: &str) -> String {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let message = v["error"]["message"]
        .as_str()
        .or_else(|| v["message"].as_str())
        .or_else(|| v["error"].as_str())
        .map_or_else(|| candybar_core::text::first_line(text, 300), str::to_owned);
    let message: String = message.chars().take(300).collect();
    candybar_core::redact::mask_secrets_in(&message)
}

/// A reqwest error with its causes ("error sending request" alone says little).
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
