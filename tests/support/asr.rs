//! A client of the `/asr` WebSocket for the speech tests.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

pub struct Session {
    pub messages: Vec<Value>,
    /// Messages that arrived before the client sent end-of-speech.
    pub before_eos: usize,
}

/// Streams `pcm` in 100 ms frames at `speed` × real time, then eos; collects until `done`.
pub async fn stream(addr: &str, pcm: &[u8], speed: f64) -> Session {
    stream_to(
        &format!("ws://{addr}/asr"),
        r#"{"type":"config","sample_rate":16000,"language":"en"}"#,
        pcm,
        speed,
    )
    .await
}

/// [`stream`] to `url` (with its query), sending `config` as the first text frame.
pub async fn stream_to(url: &str, config: &str, pcm: &[u8], speed: f64) -> Session {
    // 100 ms of 16 kHz s16le.
    stream_chunks(url, config, pcm.chunks(3200), 0.1 / speed).await
}

/// Sends each chunk as a binary frame, `pause_secs` apart, then eos; collects until `done`.
pub async fn stream_chunks<'a>(
    url: &str,
    config: &str,
    chunks: impl Iterator<Item = &'a [u8]>,
    pause_secs: f64,
) -> Session {
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let (mut tx, mut rx) = ws.split();
    let ready: Value = match rx.next().await {
        Some(Ok(Message::Text(t))) => serde_json::from_str(&t).unwrap(),
        other => panic!("expected ready, got {other:?}"),
    };
    assert_eq!(ready["type"], "ready");
    tx.send(Message::Text(config.into())).await.unwrap();
    let collector = tokio::spawn(async move {
        let mut msgs = Vec::new();
        while let Some(Ok(m)) = rx.next().await {
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap();
                let done = v["type"] == "done";
                msgs.push((Instant::now(), v));
                if done {
                    break;
                }
            }
        }
        msgs
    });
    for chunk in chunks {
        tx.send(Message::Binary(chunk.to_vec().into()))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs_f64(pause_secs)).await;
    }
    let eos_at = Instant::now();
    tx.send(Message::Text(r#"{"type":"eos"}"#.into()))
        .await
        .unwrap();
    let msgs = tokio::time::timeout(Duration::from_mins(1), collector)
        .await
        .expect("done within 60 s")
        .unwrap();
    let before_eos = msgs.iter().filter(|(t, _)| *t < eos_at).count();
    Session {
        messages: msgs.into_iter().map(|(_, v)| v).collect(),
        before_eos,
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
