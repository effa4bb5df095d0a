//! `candybar asr serve` under hostile clients, each from the hostile test run that found it:
//! connections that never finish their request head, frames cut at odd byte counts, frames over
//! the limit (binary and text): each is told why in an error message. The real server with the real model; raw TCP where the fault is
//! below WebSocket.

// Helpers outside `#[test]` functions: a failed step panics with its message.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Read as _;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use support::{asr_server, http_get, model_lock, repo};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn fixture(n: usize) -> (Vec<u8>, String) {
    let dir = repo().join("tests/fixtures/speech");
    let wav = std::fs::read(dir.join(format!("utt{n:02}.wav"))).unwrap();
    let text = std::fs::read_to_string(dir.join(format!("utt{n:02}.txt"))).unwrap();
    (wav[44..].to_vec(), text)
}

#[test]
fn idle_connections_that_never_send_a_request_cannot_lock_the_server_out() {
    let _one_at_a_time = model_lock();
    let (_server, addr) = asr_server(&[]);
    // Hundreds of connections that say nothing (each holds a file descriptor on the server).
    let idle: Vec<std::net::TcpStream> = (0..300)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    assert!(idle.len() > 200, "could open only {}", idle.len());
    // /health is back within the header timeout (5 s) and a little.
    let started = Instant::now();
    loop {
        if http_get(&addr, "/health").0 == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "/health locked out for {:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // And the server let go of the idle ones: each reads end-of-stream.
    let mut closed = 0;
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 64];
        if matches!(s.read(&mut buf), Ok(0) | Err(_)) {
            closed += 1;
        }
    }
    assert!(
        closed >= 290,
        "only {closed} of 300 idle connections were closed"
    );
    let (_, status) = http_get(&addr, "/status");
    let status: Value = serde_json::from_str(&status).unwrap();
    assert!(
        status["refused_connections"].as_u64().unwrap() > 0,
        "{status}"
    );
}

#[test]
fn frames_cut_at_odd_byte_counts_keep_their_samples_aligned() {
    let _one_at_a_time = model_lock();
    let (_server, addr) = asr_server(&[]);
    let (pcm, reference) = fixture(1);
    let text = rt().block_on(async {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/asr"))
            .await
            .unwrap();
        let (mut tx, mut rx) = ws.split();
        let _ready = rx.next().await;
        // 3,201 bytes a frame: every frame but the first starts halfway through a sample.
        for chunk in pcm.chunks(3201) {
            tx.send(Message::Binary(chunk.to_vec().into()))
                .await
                .unwrap();
        }
        tx.send(Message::Text(r#"{"type":"eos"}"#.into()))
            .await
            .unwrap();
        let mut fin = None;
        while let Some(Ok(m)) = rx.next().await {
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap();
                assert_ne!(v["type"], "error", "{v}");
                if v["type"] == "final" {
                    fin = Some(v["text"].as_str().unwrap().to_owned());
                }
                if v["type"] == "done" {
                    break;
                }
            }
        }
        fin.expect("a final")
    });
    let wer = candybar_core::asr::wer::wer(&reference, &text);
    assert!(wer <= 0.2, "WER {wer}: {text:?} for {reference:?}");
}

#[test]
fn frames_over_the_limit_get_an_error_then_close_1009_binary_and_text() {
    let _one_at_a_time = model_lock();
    let (_server, addr) = asr_server(&[]);
    for big in [
        Message::Binary(vec![0u8; 17 << 20].into()),
        Message::Text(format!(r#"{{"type":"config","pad":"{}"}}"#, "x".repeat(2 << 20)).into()),
    ] {
        let kind = if big.is_binary() { "binary" } else { "text" };
        let (error, code) = rt().block_on(async {
            // The client itself must be allowed to send the big frame.
            let cfg = WebSocketConfig::default()
                .max_message_size(Some(64 << 20))
                .max_frame_size(Some(64 << 20));
            let (ws, _) = tokio_tungstenite::connect_async_with_config(
                format!("ws://{addr}/asr"),
                Some(cfg),
                false,
            )
            .await
            .unwrap();
            let (mut tx, mut rx) = ws.split();
            let _ready = rx.next().await;
            let _ = tx.send(big).await;
            let (mut error, mut code) = (None, None);
            while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(10), rx.next()).await {
                match m {
                    Ok(Message::Text(t)) => {
                        let v: Value = serde_json::from_str(&t).unwrap();
                        if v["type"] == "error" {
                            error = Some(v["message"].as_str().unwrap().to_owned());
                        }
                    }
                    Ok(Message::Close(f)) => {
                        code = f.map(|f| u16::from(f.code));
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            (error, code)
        });
        let error = error.unwrap_or_else(|| panic!("{kind}: no error message before the close"));
        assert!(error.contains("over the limit"), "{kind}: {error}");
        // The close frame follows the message; a client still busy sending the rest of its
        // frame may see the connection reset before it reads the close.
        assert!(code.is_none_or(|c| c == 1009), "{kind}: close {code:?}");
    }
    // The server goes on serving.
    assert_eq!(http_get(&addr, "/health").0, 200);
}
