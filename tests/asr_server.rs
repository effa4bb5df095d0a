//! `candybar asr serve` over real WebSocket connections with the real Whisper model.

// Helpers outside `#[test]` functions: a failed step panics with its message.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use support::asr::{rt, stream};
use support::{Candybar, asr_server as server, http_get, model_lock, repo};
use tokio_tungstenite::tungstenite::Message;

fn fixture(n: usize) -> (Vec<u8>, String) {
    let dir = repo().join("tests/fixtures/speech");
    let wav = std::fs::read(dir.join(format!("utt{n:02}.wav"))).unwrap();
    let text = std::fs::read_to_string(dir.join(format!("utt{n:02}.txt"))).unwrap();
    // The fixtures are canonical 44-byte-header WAVs.
    (wav[44..].to_vec(), text)
}

#[test]
fn a_clip_streamed_in_real_time_gets_partials_then_its_final_then_done() {
    let _one_at_a_time = model_lock();
    let (_server, addr) = server(&[]);
    let (pcm, reference) = fixture(1);
    let s = rt().block_on(stream(&addr, &pcm, 1.0));
    let kinds: Vec<&str> = s
        .messages
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert!(
        s.before_eos >= 1 && kinds[..s.before_eos].iter().all(|k| *k == "partial"),
        "partials while speaking: {kinds:?}"
    );
    assert_eq!(kinds[kinds.len() - 2..], ["final", "done"], "{kinds:?}");
    let fin = &s.messages[s.messages.len() - 2];
    assert_eq!(fin["is_final"], true);
    assert_eq!(fin["segment"], 0);
    assert!(fin["timestamp"].as_str().unwrap().ends_with('Z'));
    let wer = candybar_core::asr::wer::wer(&reference, fin["text"].as_str().unwrap());
    assert!(wer <= 0.2, "{wer} for {fin}");
}

#[test]
fn four_clients_at_once_each_get_their_own_text() {
    let _one_at_a_time = model_lock();
    let (_server, addr) = server(&[]);
    let sessions = rt().block_on(async {
        let tasks: Vec<_> = (1..=4)
            .map(|n| {
                let addr = addr.clone();
                tokio::spawn(async move {
                    let (pcm, reference) = fixture(n);
                    (stream(&addr, &pcm, 4.0).await, reference)
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let (mut errors, mut words) = (0, 0);
    for (s, reference) in &sessions {
        let fin = s
            .messages
            .iter()
            .find(|m| m["type"] == "final")
            .expect("a final");
        let (e, n) = candybar_core::asr::wer::errors(reference, fin["text"].as_str().unwrap());
        assert!(
            e * 2 < n,
            "clip got someone else's text? {reference} → {fin}"
        );
        errors += e;
        words += n;
    }
    assert!(errors as f64 / words as f64 <= 0.2, "{errors}/{words}");
    // Every final the clients got is one finished utterance, in /status and in /metrics.
    let finals = sessions
        .iter()
        .map(|(s, _)| s.messages.iter().filter(|m| m["type"] == "final").count())
        .sum::<usize>();
    assert!(finals >= 4, "{finals} finals for 4 clips");
    let (code, body) = http_get(&addr, "/status");
    assert_eq!(code, 200);
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        status["utterances"].as_u64(),
        Some(finals as u64),
        "{status}"
    );
    assert!(
        status["final_latency_ms"]["p95"].as_f64().unwrap() > 0.0,
        "{status}"
    );
    assert!(status["real_time_factor"].as_f64().unwrap() > 0.0);
    let (code, metrics) = http_get(&addr, "/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics
            .lines()
            .any(|l| l == format!("candybar_asr_utterances_total {finals}")),
        "{metrics}"
    );
    assert!(metrics.contains("candybar_asr_up 1"));
    let (code, models) = http_get(&addr, "/models");
    assert_eq!(code, 200);
    assert!(models.contains("ggml-tiny.en"), "{models}");
}

#[test]
fn bad_frames_are_answered_and_the_server_stays_up() {
    let _one_at_a_time = model_lock();
    let (server, addr) = server(&["--max-clients", "2"]);
    rt().block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/asr"))
            .await
            .unwrap();
        let _ready = ws.next().await;
        // Text garbage: an error, connection kept. (An odd byte count is not an error: the
        // byte is carried into the next frame, tests/fault_asr.rs.)
        ws.send(Message::Text("garbage \u{1F600}".into()))
            .await
            .unwrap();
        let m = ws.next().await.unwrap().unwrap().into_text().unwrap();
        assert!(m.contains("unreadable text frame"), "{m}");
        // Limits: a third client while two are connected is told to come back later.
        let (mut second, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/asr"))
            .await
            .unwrap();
        let _ = second.next().await;
        let (mut third, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/asr"))
            .await
            .unwrap();
        let m = third.next().await.unwrap().unwrap().into_text().unwrap();
        assert!(m.contains("too many clients"), "{m}");
        drop(second);
        // A 10 MB frame is refused with a reason and the connection closed.
        ws.send(Message::Binary(vec![0u8; 10 << 20].into()))
            .await
            .ok();
        let mut saw_error = false;
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m {
                saw_error |= t.contains("over the limit");
            }
        }
        assert!(saw_error);
        // A client that vanishes mid-utterance does not hurt the next one.
        let (mut gone, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/asr"))
            .await
            .unwrap();
        let _ = gone.next().await;
        gone.send(Message::Binary(vec![0u8; 32_000].into()))
            .await
            .unwrap();
        drop(gone);
        let (pcm, reference) = fixture(3);
        let s = stream(&addr, &pcm, 8.0).await;
        let fin = s.messages.iter().find(|m| m["type"] == "final").unwrap();
        assert!(
            candybar_core::asr::wer::wer(&reference, fin["text"].as_str().unwrap()) <= 0.5,
            "{fin}"
        );
    });
    assert_eq!(http_get(&addr, "/health").0, 200, "{}", server.stderr());
}

#[test]
fn a_token_is_required_when_set() {
    let _one_at_a_time = model_lock();
    let (_server, addr) = server(&["--token", "s3cret-token"]);
    rt().block_on(async {
        let err = tokio_tungstenite::connect_async(format!("ws://{addr}/asr"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("401"), "{err}");
        let (mut ok, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/asr?token=s3cret-token"))
                .await
                .unwrap();
        let ready = ok.next().await.unwrap().unwrap().into_text().unwrap();
        assert!(ready.contains("ready"));
    });
}

#[test]
fn finals_go_on_the_bus_and_a_dead_broker_does_not_block_them() {
    let _one_at_a_time = model_lock();
    let broker = support::shared_broker_url();
    let exchange = support::unique("t.asr.bus");
    support::declare_exchange(&broker, &exchange);
    let (_server, addr) = server(&["--amqp", &broker, "--exchange", &exchange]);
    let tail = Candybar::spawn(&[
        "tail",
        "--amqp",
        &broker,
        "--exchange",
        &exchange,
        "-n",
        "2",
        "--format",
        "ndjson",
    ]);
    tail.wait_stderr("connected", 1, Duration::from_secs(20));
    let (pcm, _) = fixture(2);
    let s = rt().block_on(stream(&addr, &pcm, 8.0));
    let fin = s
        .messages
        .iter()
        .find(|m| m["type"] == "final")
        .expect("a final");
    let events: Vec<Value> = tail
        .lines(2, Duration::from_secs(20))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let event = &events[0];
    assert_eq!(event["type"], "talkytonny.transcription.completed");
    assert_eq!(event["source"], "candybar");
    assert_eq!(event["body"]["payload"]["text"], fin["text"]);
    assert_eq!(event["body"]["payload"]["model"], "ggml-tiny.en");
    assert!(
        event["body"]["payload"]["duration_seconds"]
            .as_f64()
            .unwrap()
            > 1.0
    );
    // The same transcript in the platform's canonical shape.
    let canonical = &events[1];
    assert_eq!(canonical["type"], "transcription.voice.completed");
    let p = &canonical["body"]["payload"];
    assert_eq!(p["text"], fin["text"]);
    assert_eq!(p["source"], "asr-server");
    assert!(p["session_id"].as_str().unwrap().starts_with("ws-"), "{p}");
    assert_eq!(p["audio_metadata"]["model"], "ggml-tiny.en");
    assert_eq!(p["audio_metadata"]["language"], "en");
    assert_eq!(p["audio_metadata"]["sample_rate"], 16_000);
    assert!(p["audio_metadata"]["duration_seconds"].as_f64().unwrap() > 1.0);
    // /status counts both as published (confirmed by the broker), nothing dropped.
    let finals = 2 * s.messages.iter().filter(|m| m["type"] == "final").count() as u64;
    let bus_status = |addr: &str| {
        let (code, body) = http_get(addr, "/status");
        assert_eq!(code, 200);
        serde_json::from_str::<Value>(&body).unwrap()["bus"].clone()
    };
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while bus_status(&addr)["published"].as_u64() != Some(finals) {
        assert!(
            std::time::Instant::now() < end,
            "published {} of {finals}",
            bus_status(&addr)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(bus_status(&addr)["dropped"].as_u64(), Some(0));
    // The default build decodes on the CPU, and says so (no GPU device listed).
    let (_, status) = http_get(&addr, "/status");
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["backend"], "cpu");
    assert_eq!(status["devices"], serde_json::json!([]));

    // Nothing listens on port 1: transcription goes on, the transcript waits for the broker.
    let (dead, addr) = server(&[
        "--amqp",
        "amqp://guest:guest@127.0.0.1:1/%2f",
        "--exchange",
        &exchange,
    ]);
    let (pcm, reference) = fixture(3);
    let s = rt().block_on(stream(&addr, &pcm, 8.0));
    let fin = s
        .messages
        .iter()
        .find(|m| m["type"] == "final")
        .expect("a final despite the dead broker");
    assert!(candybar_core::asr::wer::wer(&reference, fin["text"].as_str().unwrap()) <= 0.5);
    // It waits for the broker: not published, not dropped.
    let status = bus_status(&addr);
    assert_eq!(status["published"].as_u64(), Some(0), "{status}");
    assert_eq!(status["dropped"].as_u64(), Some(0), "{status}");
    drop(dead);
}

#[test]
fn a_pause_ends_the_utterance_and_silence_is_not_decoded() {
    let _one_at_a_time = model_lock();
    let (_server, addr) = server(&["--pause-ms", "600"]);
    rt().block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/asr"))
            .await
            .unwrap();
        let _ready = ws.next().await;
        // Speech, then 1.2 s of silence, and no eos: the final comes by itself.
        let (pcm, reference) = fixture(4);
        let mut audio = pcm.clone();
        audio.extend(std::iter::repeat_n(0u8, 2 * 19_200));
        for chunk in audio.chunks(3200) {
            ws.send(Message::Binary(chunk.to_vec().into()))
                .await
                .unwrap();
        }
        let fin = loop {
            let m = tokio::time::timeout(Duration::from_secs(30), ws.next())
                .await
                .expect("a final without eos")
                .unwrap()
                .unwrap();
            let v: Value = serde_json::from_str(&m.into_text().unwrap()).unwrap();
            if v["type"] == "final" {
                break v;
            }
            assert_ne!(v["type"], "done", "done only answers an eos");
        };
        assert!(
            candybar_core::asr::wer::wer(&reference, fin["text"].as_str().unwrap()) <= 0.5,
            "{fin}"
        );
        // Silence only, then eos: nothing to transcribe, just done.
        ws.send(Message::Binary(vec![0u8; 64_000].into()))
            .await
            .unwrap();
        ws.send(Message::Text(r#"{"type":"eos"}"#.into()))
            .await
            .unwrap();
        let m = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(&m.into_text().unwrap()).unwrap();
        assert_eq!(v["type"], "done", "silence is not decoded: {v}");
    });
}

/// The client ends the speech while a partial decode that lacks the last words still runs: it
/// is given up, and the final (all the speech) comes next, as good.
#[test]
fn a_partial_decode_without_the_last_words_is_given_up_when_the_client_ends_the_speech() {
    let _one_at_a_time = model_lock();
    let (_server, addr) = server(&[]);
    let given_up = || {
        let (code, body) = http_get(&addr, "/status");
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["partials_given_up"].as_u64().unwrap()
    };
    assert_eq!(given_up(), 0);
    rt().block_on(async {
        // Sent at 100 times real time: the first words' decode begins after 0.8 s of it, and
        // the rest of the clip and the end of speech arrive while it runs.
        let (pcm, reference) = fixture(2);
        let s = stream(&addr, &pcm, 100.0).await;
        let fin = s.messages.iter().find(|m| m["type"] == "final").unwrap();
        let text = fin["text"].as_str().unwrap();
        assert!(
            candybar_core::asr::wer::wer(&reference, text) <= 0.2,
            "{text}"
        );
        assert!(
            s.messages.iter().any(|m| m["type"] == "done"),
            "{:?}",
            s.messages
        );
    });
    assert_eq!(given_up(), 1, "the first words' decode was given up");
}

#[test]
fn a_final_after_a_pause_is_the_decode_begun_at_the_pause() {
    let _one_at_a_time = model_lock();
    let (_server, addr) = server(&[]);
    let early_finals = || {
        let (code, body) = http_get(&addr, "/status");
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["early_finals"].as_u64().unwrap()
    };
    rt().block_on(async {
        // The clip ends in half a second of silence: the decode begun when it fell silent read
        // all the speech, and the final is that decode's text.
        let (pcm, reference) = fixture(1);
        let s = stream(&addr, &pcm, 1.0).await;
        let fin = s.messages.iter().find(|m| m["type"] == "final").unwrap();
        let text = fin["text"].as_str().unwrap();
        assert!(
            candybar_core::asr::wer::wer(&reference, text) <= 0.2,
            "{text}"
        );
        assert_eq!(early_finals(), 1, "the pause's decode was the final");

        // The clip cut where the voice ends: the final is a decode made after eos, as good.
        let (pcm, reference) = fixture(2);
        let voiced = {
            let samples: Vec<f32> = pcm
                .chunks_exact(2)
                .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0)
                .collect();
            let mut vad = candybar_core::asr::vad::SpeechTracker::new(
                candybar_core::asr::vad::DEFAULT_THRESHOLD_RMS,
                0,
            );
            vad.push(&samples);
            assert!(vad.trailing_silence() > 4_000, "the clip ends in silence");
            2 * (samples.len() - vad.trailing_silence())
        };
        let s = stream(&addr, &pcm[..voiced], 1.0).await;
        let fin = s.messages.iter().find(|m| m["type"] == "final").unwrap();
        let text = fin["text"].as_str().unwrap();
        assert!(
            candybar_core::asr::wer::wer(&reference, text) <= 0.2,
            "{text}"
        );
        assert_eq!(early_finals(), 1, "no pause before the end: a fresh decode");

        // What the pause's decode showed is what the final says: the words do not change
        // again when the final comes (the earlier partials' agreed words may differ from it).
        let (pcm, _) = fixture(4);
        let s = stream(&addr, &pcm, 1.0).await;
        let at = s
            .messages
            .iter()
            .position(|m| m["type"] == "final")
            .unwrap();
        let last_partial = s.messages[..at]
            .iter()
            .rev()
            .find(|m| m["type"] == "partial")
            .unwrap();
        assert_eq!(
            last_partial["text"], s.messages[at]["text"],
            "{:?}",
            s.messages
        );
        assert_eq!(early_finals(), 2);
    });
}
