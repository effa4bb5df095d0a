//! Opus as browsers send it: a live WebM recording from Chromium's `MediaRecorder` (what
//! WhisperLiveKit's page and browser extension send; `tests/fixtures/speech/utt01.webm`, made by
//! `tests/clients/record_webm.py`) streamed to `/asr` over our protocol, the real server and
//! model. Recordings that cannot be read are refused in words; the server keeps serving.

// Helpers outside `#[test]` functions: a failed step panics with its message.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use candybar_core::asr::wer;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use support::asr::{rt, stream_chunks};
use support::{asr_server as server, model_lock, repo};
use tokio_tungstenite::tungstenite::Message;

fn recording() -> (Vec<u8>, String) {
    let dir = repo().join("tests/fixtures/speech");
    (
        std::fs::read(dir.join("utt01.webm")).unwrap(),
        std::fs::read_to_string(dir.join("utt01.txt")).unwrap(),
    )
}

fn finals(messages: &[Value]) -> String {
    messages
        .iter()
        .filter(|m| m["type"] == "final")
        .map(|m| m["text"].as_str().unwrap_or_default().trim())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Replaces the first `from` in `bytes` (a header field of the recording) with `to`.
fn patched(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| panic!("{from:?} is not in the recording"));
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}

/// Sends `bytes` as one stream; returns the server's error text and its close code.
async fn refused(addr: &str, bytes: &[u8]) -> (String, Option<u16>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/asr"))
        .await
        .unwrap();
    let _ready = ws.next().await;
    for chunk in bytes.chunks(2000) {
        if ws
            .send(Message::Binary(chunk.to_vec().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = ws.send(Message::Binary(Vec::new().into())).await;
    let (mut error, mut code) = (String::new(), None);
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
        match m {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "error" {
                    v["message"].as_str().unwrap().clone_into(&mut error);
                }
                if v["type"] == "done" {
                    break;
                }
            }
            Message::Close(frame) => {
                code = frame.map(|f| u16::from(f.code));
                break;
            }
            _ => {}
        }
    }
    (error, code)
}

#[test]
fn a_browser_recording_streamed_in_pieces_is_transcribed() {
    let _one_at_a_time = model_lock();
    let (_server, addr) = server(&[]);
    let (webm, reference) = recording();
    let url = format!("ws://{addr}/asr");
    let config = r#"{"type":"config","language":"en"}"#;
    // In the recorder's own way (a chunk every 100 ms of audio, ~1 kB here) and cut anywhere: an
    // element split between frames waits for the rest.
    for piece in [997, 64] {
        let s = rt().block_on(stream_chunks(&url, config, webm.chunks(piece), 0.0));
        let text = finals(&s.messages);
        assert!(
            wer::wer(&reference, &text) <= 0.25,
            "pieces of {piece} bytes: {text:?} vs {reference:?}"
        );
    }
    // A recording whose track claims another rate (44.1 kHz) is read all the same: Opus is
    // decoded at the rate Whisper wants whatever the container says.
    // (Chromium writes the rate as a 4-byte float, after its id 0xB5 and size 0x84.)
    let rate_48k = [&[0xB5, 0x84][..], &48_000f32.to_be_bytes()].concat();
    let rate_44k = [&[0xB5, 0x84][..], &44_100f32.to_be_bytes()].concat();
    let s = rt().block_on(stream_chunks(
        &url,
        config,
        patched(&webm, &rate_48k, &rate_44k).chunks(997),
        0.0,
    ));
    let text = finals(&s.messages);
    assert!(wer::wer(&reference, &text) <= 0.25, "{text:?}");
}

#[test]
fn recordings_that_cannot_be_read_are_refused_in_words_and_the_server_keeps_serving() {
    let _one_at_a_time = model_lock();
    let (_server, addr) = server(&[]);
    let (webm, reference) = recording();
    rt().block_on(async {
        // The EBML magic, then junk.
        let mut garbage = vec![0x1A, 0x45, 0xDF, 0xA3];
        garbage.extend((0..=255u8).cycle().take(10_000));
        let (error, code) = refused(&addr, &garbage).await;
        assert!(error.contains("WebM"), "{error}");
        assert_eq!(code, Some(1007), "{error}");
        // Another codec than Opus in the track.
        // (Followed by a megabyte more, still in flight when the server refuses: the error and
        // the close code reach the client all the same.)
        let mut vorbis = patched(&webm, b"A_OPUS", b"A_VORB");
        vorbis.resize(1 << 20, 0);
        let (error, code) = refused(&addr, &vorbis).await;
        assert!(
            error.contains("A_VORB") && error.contains("only Opus"),
            "{error}"
        );
        assert_eq!(code, Some(1007));
        // A recording cut after its header and a few packets: what is there is transcribed.
        let (error, _) = refused(&addr, &webm[..webm.len() / 3]).await;
        assert!(error.is_empty(), "{error}");
    });
    // The server still transcribes a whole recording.
    let s = rt().block_on(stream_chunks(
        &format!("ws://{addr}/asr"),
        r#"{"type":"config"}"#,
        webm.chunks(997),
        0.0,
    ));
    let text = finals(&s.messages);
    assert!(wer::wer(&reference, &text) <= 0.25, "{text:?}");
}
