//! Events through a WebSocket relay, for users who cannot reach the broker: `--ws URL`
//! (`ws://` / `wss://`; a token as `Authorization: Bearer`, or in the URL's query). The relay
//! sends `{"type":"event","routing_key":…,"envelope":{…}}` per event; a bare envelope (any other
//! JSON object without a `type` of its own choosing) is an event too, with its type as routing
//! key; the relay's own messages (`{"type":"welcome"}`, pings) are not events. Reconnects like
//! the AMQP source, and reports the time it was away as a gap (the relay keeps nothing).

use std::time::Duration;

use futures_util::StreamExt as _;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest as _};

use candybar_core::event::RawMessage;
use candybar_core::redact::{Secret, SecretUrl, mask_url};
use candybar_core::source::SourceState;
use candybar_core::time::now_us;

use crate::{SourceHandle, SourceMsg, SourceTx};

#[derive(Clone, Debug)]
pub struct WsConfig {
    pub url: SecretUrl,
    /// Sent as `Authorization: Bearer …` when set.
    pub token: Option<Secret>,
    /// Bodies longer than this are cut (the header fields kept).
    pub body_cap_bytes: usize,
}

/// The largest message accepted from the relay; a longer one ends the connection (said).
const MAX_MESSAGE: usize = 64 << 20;

/// Why a connection attempt failed: retry soon, retry slowly (a setting to fix on the relay's
/// side or ours), or stop (only a new setting helps).
enum Failure {
    Retry(String),
    Permanent(String),
    Fatal(String),
}

#[must_use]
pub fn spawn(cfg: WsConfig) -> SourceHandle {
    let describe = format!("WebSocket relay {}", mask_url(cfg.url.expose()));
    SourceHandle::spawn(describe.clone(), move |tx| run(cfg, describe, tx))
}

async fn run(cfg: WsConfig, describe: String, tx: SourceTx) {
    let mut attempt = 0u32;
    let mut away: Option<(i64, String)> = None;
    loop {
        let connecting = SourceState::Connecting { attempt };
        if tx.send(SourceMsg::State(connecting)).await.is_err() {
            return;
        }
        let failure = match connect(&cfg).await {
            Ok(ws) => {
                attempt = 0;
                let connected = SourceState::Connected {
                    detail: describe.clone(),
                };
                if tx.send(SourceMsg::State(connected)).await.is_err() {
                    return;
                }
                if let Some((start_us, reason)) = away.take() {
                    let gap = SourceMsg::Gap {
                        start_us,
                        end_us: now_us(),
                        reason,
                        lossless: false,
                    };
                    if tx.send(gap).await.is_err() {
                        return;
                    }
                }
                match relay(&cfg, ws, &tx).await {
                    Some(reason) => {
                        away = Some((now_us(), reason.clone()));
                        Failure::Retry(reason)
                    }
                    None => return, // the window went away
                }
            }
            Err(f) => f,
        };
        let (reason, permanent, retry_in) = match failure {
            Failure::Retry(r) => (r, false, backoff(attempt)),
            Failure::Permanent(r) => (r, true, Duration::from_secs(5)),
            Failure::Fatal(r) => (r, true, Duration::MAX),
        };
        let state = SourceState::Retrying {
            reason,
            retry_in,
            permanent,
        };
        if tx.send(SourceMsg::State(state)).await.is_err() || retry_in == Duration::MAX {
            return;
        }
        attempt = attempt.saturating_add(1);
        tokio::time::sleep(retry_in).await;
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(3)).min(500))
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(cfg: &WsConfig) -> Result<Ws, Failure> {
    let shown = mask_url(cfg.url.expose());
    let mut request = cfg
        .url
        .expose()
        .into_client_request()
        .map_err(|e| Failure::Fatal(format!("{shown} is not a WebSocket URL: {e}")))?;
    if let Some(token) = &cfg.token {
        let value = format!("Bearer {}", token.expose())
            .parse()
            .map_err(|_| Failure::Fatal("the token has characters a header cannot carry".into()))?;
        request.headers_mut().insert("authorization", value);
    }
    let ws_config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let opened = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true),
    )
    .await;
    match opened {
        Err(_) => Err(Failure::Retry(format!(
            "no answer from {shown} within 10 s"
        ))),
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tungstenite::Error::Http(resp))) => {
            let status = resp.status().as_u16();
            Err(match status {
                401 | 403 => Failure::Permanent(format!(
                    "the relay at {shown} refused the token (HTTP {status}): give the right one \
                     with --ws-token or CANDYBAR_WS_TOKEN"
                )),
                404 => Failure::Permanent(format!(
                    "the relay at {shown} has no WebSocket there (HTTP 404): check the URL's path"
                )),
                _ => Failure::Retry(format!("the relay at {shown} answered HTTP {status}")),
            })
        }
        Ok(Err(tungstenite::Error::Url(e))) => Err(Failure::Fatal(format!("{shown}: {e}"))),
        Ok(Err(e)) => Err(Failure::Retry(format!(
            "cannot reach the relay at {shown}: {e}"
        ))),
    }
}

/// Reads events until the connection ends: why it ended, or `None` when the window went away.
async fn relay(cfg: &WsConfig, mut ws: Ws, tx: &SourceTx) -> Option<String> {
    loop {
        let frame = tokio::select! {
            f = ws.next() => f,
            () = tx.closed() => return None,
        };
        let bytes = match frame {
            None => return Some("the relay closed the connection".into()),
            Some(Err(e)) => return Some(format!("connection to the relay lost: {e}")),
            Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
            Some(Ok(Message::Binary(b))) => b.to_vec(),
            Some(Ok(Message::Close(frame))) => {
                let why = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                return Some(if why.is_empty() {
                    "the relay closed the connection".into()
                } else {
                    format!("the relay closed the connection: {why}")
                });
            }
            // Pings are answered by tungstenite while reading.
            Some(Ok(_)) => continue,
        };
        let Some(mut msg) = event_of(bytes) else {
            continue;
        };
        msg.cap_body(cfg.body_cap_bytes);
        if tx.send(SourceMsg::Event(msg)).await.is_err() {
            return None;
        }
    }
}

/// The relay's shape: the envelope and routing key.
#[derive(serde::Deserialize)]
struct Relayed<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    routing_key: Option<String>,
    #[serde(borrow)]
    envelope: Option<&'a serde_json::value::RawValue>,
}

/// One relay message as an event; `None` for the relay's own messages. What is not JSON at all
/// is still an event (shown raw), as on the bus.
fn event_of(bytes: Vec<u8>) -> Option<RawMessage> {
    let received_us = now_us();
    let raw = |routing_key: String, body: Vec<u8>| RawMessage {
        received_us,
        routing_key,
        props: None,
        body,
        precut: None,
    };
    match serde_json::from_slice::<Relayed<'_>>(&bytes) {
        Ok(Relayed {
            kind: Some(kind),
            routing_key,
            envelope: Some(envelope),
        }) if kind == "event" => {
            let body = envelope.get().as_bytes().to_vec();
            Some(raw(routing_key.unwrap_or_default(), body))
        }
        // A message of the relay's own (`welcome`, `subscribed`, `pong`…) without an envelope.
        Ok(Relayed {
            kind: Some(_),
            envelope: None,
            routing_key: None,
        }) if !looks_like_envelope(&bytes) => None,
        // A bare envelope: its type is its routing key (decoding reads it from the body).
        _ => Some(raw(String::new(), bytes)),
    }
}

/// Whether a JSON object carries an event's own fields (then a `type` is the event's type, as
/// in `CloudEvents`, not the relay's message kind).
fn looks_like_envelope(bytes: &[u8]) -> bool {
    let header = candybar_core::decode::read_header(bytes);
    header.id.is_some() || header.published_us.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_bare_and_control_messages_are_told_apart() {
        let relayed = event_of(
            br#"{"type":"event","routing_key":"agent.thread.prompt","envelope":{"event_id":"e1","event_type":"agent.thread.prompt"}}"#.to_vec(),
        )
        .expect("an event");
        assert_eq!(relayed.routing_key, "agent.thread.prompt");
        assert_eq!(
            relayed.body,
            br#"{"event_id":"e1","event_type":"agent.thread.prompt"}"#
        );

        let bare = event_of(br#"{"event_id":"e2","event_type":"llm.call.completed"}"#.to_vec())
            .expect("a bare envelope is an event");
        assert_eq!(
            candybar_core::decode::decode(&bare).kind,
            "llm.call.completed"
        );
        // CloudEvents name their type `type`: still an event.
        let cloud =
            event_of(br#"{"id":"e3","type":"repo.push","time":"2026-12-06T10:00:00Z"}"#.to_vec());
        assert!(cloud.is_some());

        assert!(event_of(br#"{"type":"welcome","server":"relay 1.2"}"#.to_vec()).is_none());
        assert!(event_of(br#"{"type":"pong"}"#.to_vec()).is_none());
        // Not JSON at all: still shown, raw.
        assert_eq!(
            event_of(b"plain text".to_vec()).unwrap().body,
            b"plain text"
        );
    }
}
