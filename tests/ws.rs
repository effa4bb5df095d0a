//! `--ws URL`: events through a WebSocket relay. The relay here is a stand-in (the platform's
//! relay is not available to run), but the broker behind it is real: it consumes a real
//! RabbitMQ queue and forwards each delivery as `{"type":"event","routing_key":…,"envelope":…}`,
//! greets with a message of its own, checks the bearer token, and can drop every client (a
//! relay restart).

// Helpers outside `#[test]` functions: a failed step panics with its message.
#![allow(clippy::unwrap_used)]
// tungstenite's handshake callback returns its (large) error response by value.
#![allow(clippy::result_large_err)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use serde_json::Value;
use tokio::sync::{Notify, broadcast};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

use support::journal::wait_for_count;
use support::{Candybar, path_str, run, shared_broker_url, unique};

const TOKEN: &str = "relay-token-7f3a";

/// The stand-in relay: its URL, the way to drop every client, and its runtime.
struct Relay {
    url: String,
    kick: Arc<Notify>,
    _rt: tokio::runtime::Runtime,
}

fn relay(amqp: &str, exchange: &str) -> Relay {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let queue = support::bind_queue(amqp, exchange, "#");
    let (events, _) = broadcast::channel::<String>(65_536);
    let feed = events.clone();
    let amqp = amqp.to_owned();
    // The relay's own consumer of the real broker.
    rt.spawn(async move {
        let conn = lapin::Connection::connect(&amqp, lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let mut consumer = ch
            .basic_consume(
                queue.as_str().into(),
                "relay".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        while let Some(Ok(d)) = consumer.next().await {
            let envelope: Value = serde_json::from_slice(&d.data).unwrap();
            let relayed = serde_json::json!({
                "type": "event",
                "routing_key": d.routing_key.as_str(),
                "envelope": envelope,
            });
            let _ = feed.send(relayed.to_string());
            d.ack(BasicAckOptions::default()).await.unwrap();
        }
        drop(conn);
    });
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("ws://{}/events", listener.local_addr().unwrap());
    let kick = Arc::new(Notify::new());
    let kicked = kick.clone();
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let mut rx = events.subscribe();
            let kicked = kicked.clone();
            tokio::spawn(async move {
                let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
                    let bearer = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok());
                    if bearer == Some(&format!("Bearer {TOKEN}")) {
                        Ok(resp)
                    } else {
                        let mut refused = ErrorResponse::new(Some("bad token".into()));
                        *refused.status_mut() = 401.try_into().unwrap();
                        Err(refused)
                    }
                };
                // Registered before anything is sent: a kick while a send is under way is not
                // lost (a `notified()` made afresh in each turn of the loop would miss it).
                let kick = kicked.notified();
                tokio::pin!(kick);
                kick.as_mut().enable();
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, check).await else {
                    return;
                };
                // The relay's own greeting: not an event.
                let hello = r#"{"type":"welcome","relay":"stand-in 1.0"}"#;
                if ws.send(Message::text(hello)).await.is_err() {
                    return;
                }
                loop {
                    tokio::select! {
                        e = rx.recv() => {
                            let Ok(text) = e else { return };
                            if ws.send(Message::text(text)).await.is_err() {
                                return;
                            }
                        }
                        () = &mut kick => {
                            let _ = ws.close(None).await;
                            return;
                        }
                    }
                }
            });
        }
    });
    Relay { url, kick, _rt: rt }
}

fn batch(prefix: &str, n: usize) -> Vec<(String, Vec<u8>, Option<String>)> {
    (0..n)
        .map(|i| {
            let body = format!(
                r#"{{"event_id":"{prefix}-{i}","event_type":"relay.test.done","payload":{{"i":{i}}}}}"#
            );
            (format!("relay.test.{prefix}"), body.into_bytes(), None)
        })
        .collect()
}

fn ids_and_keys(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_str().unwrap_or_default().to_owned(),
                v["routing_key"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn tail_watches_through_a_relay_reconnects_and_refuses_a_wrong_token_in_words() {
    let amqp = shared_broker_url();
    let exchange = unique("t.relay");
    support::declare_exchange(&amqp, &exchange);
    let relay = relay(&amqp, &exchange);

    let tail = Candybar::spawn_env(
        &["tail", "--ws", &relay.url, "--format", "ndjson"],
        &[("CANDYBAR_WS_TOKEN", TOKEN)],
    );
    tail.wait_stderr("connected", 1, Duration::from_secs(20));
    support::lapin_publish(&amqp, &exchange, &batch("a", 100));
    let got = ids_and_keys(&tail.lines(100, Duration::from_secs(20)));
    // In order, with the relay's routing keys; its greeting is not an event.
    assert_eq!(got[0], ("a-0".into(), "relay.test.a".into()));
    assert_eq!(got[99].0, "a-99");
    assert!(got.iter().all(|(id, _)| id.starts_with("a-")), "{got:?}");

    // The relay drops its clients: a gap, and back by itself.
    relay.kick.notify_waiters();
    tail.wait_stderr("gap", 1, Duration::from_secs(10));
    tail.wait_stderr("connected", 2, Duration::from_secs(20));
    support::lapin_publish(&amqp, &exchange, &batch("b", 20));
    let got = ids_and_keys(&tail.lines(20, Duration::from_secs(20)));
    assert_eq!(got[0].0, "b-0");
    assert!(!tail.stderr().contains(TOKEN), "the token reached the log");

    // A wrong token: said, and the command gives up (exit 2) rather than retrying blindly.
    let (code, _, err) = run(&["tail", "--ws", &relay.url, "--ws-token", "not-the-token"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("refused the token (HTTP 401)"), "{err}");
    assert!(
        !err.contains("not-the-token"),
        "the token reached the screen: {err}"
    );

    // Nothing listening: a clear message, retried.
    let nobody = Candybar::spawn(&["tail", "--ws", "ws://127.0.0.1:9/events"]);
    nobody.wait_stderr("cannot reach the relay", 1, Duration::from_secs(10));
}

#[test]
fn record_keeps_what_the_relay_sends() {
    let amqp = shared_broker_url();
    let exchange = unique("t.relay.rec");
    support::declare_exchange(&amqp, &exchange);
    let relay = relay(&amqp, &exchange);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let rec = Candybar::spawn_env(
        &[
            "record",
            "--ws",
            &relay.url,
            "--journal",
            path_str(&journal),
        ],
        &[("CANDYBAR_WS_TOKEN", TOKEN)],
    );
    rec.wait_stderr("connected", 1, Duration::from_secs(20));
    support::lapin_publish(&amqp, &exchange, &batch("r", 300));
    let ids = wait_for_count(&journal, 300, Duration::from_secs(30));
    let expected: Vec<String> = (0..300).map(|i| format!("r-{i}")).collect();
    assert_eq!(ids, expected);
}
