//! `candybar asr serve` speaking WhisperLiveKit's protocol (0.2.26) to WhisperLiveKit's own
//! client: `whisperlivekit/test_client.py` from its PyPI package (installed by
//! `.ci/python-clients`), run against the real server and model; and its web page from the same
//! package in headless Chromium with a WAV file as the microphone (`tests/clients/wlk_page.py`
//! drives it over Chromium's debugging protocol). Browsers are told apart by their `Origin` header.

// Helpers outside `#[test]` functions: a failed step panics with its message.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use candybar_core::asr::wer;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use support::asr::rt;
use support::{asr_server as server, model_lock, path_str, repo};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

fn python() -> PathBuf {
    std::env::var_os("CANDYBAR_TEST_PYTHON").map(PathBuf::from).expect(
        "this test drives the server with WhisperLiveKit's client: run `.ci/python-clients` and \
         set CANDYBAR_TEST_PYTHON to the python it prints (.ci/test does both)",
    )
}

/// WhisperLiveKit's client script, run as a file (its package's `__init__` imports the whole
/// server: torch, faster-whisper).
fn wlk_client() -> PathBuf {
    let out = Command::new(python())
        .args([
            "-c",
            "import importlib.util; print(importlib.util.find_spec('whisperlivekit').submodule_search_locations[0])",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "whisperlivekit is not installed in CANDYBAR_TEST_PYTHON's venv: run `.ci/python-clients`"
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("test_client.py")
}

/// The client's `--json` output: every message it kept, diffs rebuilt into whole states.
fn run_client(addr: &str, wav: &str, extra: &[&str]) -> Vec<Value> {
    let out = Command::new(python())
        .arg(wlk_client())
        .args([
            wav,
            "--url",
            &format!("ws://{addr}/asr"),
            "--json",
            "--timeout",
            "30",
        ])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "WhisperLiveKit's client failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The committed lines' text of the last state that has any.
fn committed(states: &[Value]) -> String {
    states
        .iter()
        .rev()
        .find_map(|s| {
            let lines = s["lines"].as_array().filter(|l| !l.is_empty())?;
            Some(
                lines
                    .iter()
                    .map(|l| l["text"].as_str().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        })
        .unwrap_or_default()
}

fn fixture(n: usize) -> (String, String) {
    let dir = repo().join("tests/fixtures/speech");
    (
        path_str(&dir.join(format!("utt{n:02}.wav"))).to_owned(),
        std::fs::read_to_string(dir.join(format!("utt{n:02}.txt"))).unwrap(),
    )
}

#[test]
fn whisperlivekits_own_client_gets_lines_then_ready_to_stop() {
    let _one_at_a_time = model_lock();
    let (_server, addr) = server(&[]);
    let (wav, reference) = fixture(1);

    // Real time, in WhisperLiveKit's half-second chunks: the text grows as it is spoken.
    let states = run_client(&addr, &wav, &["--speed", "1"]);
    let text = committed(&states);
    assert!(
        wer::wer(&reference, &text) <= 0.25,
        "{text:?} vs {reference:?}"
    );
    assert!(
        states.iter().any(|s| s["buffer_transcription"]
            .as_str()
            .is_some_and(|b| !b.is_empty())),
        "words showed as uncommitted before the end: {states:?}"
    );
    let last = states.last().unwrap();
    assert_eq!(last["status"], "active_transcription");
    let line = &last["lines"][0];
    assert_eq!(line["speaker"], 1);
    for key in ["start", "end"] {
        let t = line[key].as_str().unwrap();
        assert!(
            t.len() == 10 && t.as_bytes()[1] == b':' && t.as_bytes()[7] == b'.',
            "{key} {t}"
        );
    }

    // Diff mode: a snapshot, then diffs its client rebuilds into the same text.
    let (wav, reference) = fixture(3);
    let states = run_client(&addr, &wav, &["--speed", "0", "--diff"]);
    assert_eq!(states[0]["type"], "snapshot", "{states:?}");
    assert_eq!(states[0]["seq"], 1);
    let text = committed(&states);
    assert!(
        wer::wer(&reference, &text) <= 0.35,
        "{text:?} vs {reference:?}"
    );
}

#[test]
fn a_browser_gets_whisperlivekits_config_and_our_clients_get_ours() {
    let _one_at_a_time = model_lock();
    let (_server, addr) = server(&[]);
    rt().block_on(async {
        // WhisperLiveKit's page and extension: a browser, so an Origin header.
        let mut req = format!("ws://{addr}/asr").into_client_request().unwrap();
        req.headers_mut()
            .insert("origin", "http://localhost:8000".parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let first: Value =
            serde_json::from_str(&ws.next().await.unwrap().unwrap().into_text().unwrap()).unwrap();
        assert_eq!(
            first,
            serde_json::json!({"type": "config", "useAudioWorklet": true, "mode": "full"})
        );
        // Silence, then its end: no words, and ready_to_stop.
        ws.send(Message::Binary(vec![0u8; 32_000].into()))
            .await
            .unwrap();
        ws.send(Message::Binary(Vec::new().into())).await.unwrap();
        let mut last = Value::Null;
        while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
            if let Message::Text(t) = m {
                last = serde_json::from_str(&t).unwrap();
                if last["type"] == "ready_to_stop" {
                    break;
                }
            }
        }
        assert_eq!(last["type"], "ready_to_stop");

        // Our own clients (no Origin) are greeted as before; `?protocol=` overrides either way.
        for (url, kind) in [
            (format!("ws://{addr}/asr"), "ready"),
            (format!("ws://{addr}/asr?protocol=whisperlivekit"), "config"),
        ] {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            let first: Value =
                serde_json::from_str(&ws.next().await.unwrap().unwrap().into_text().unwrap())
                    .unwrap();
            assert_eq!(first["type"], kind, "{first}");
        }
    });
}

/// Runs WhisperLiveKit's page against `addr` with `wav` as the microphone; asserts it finished
/// and transcribed the clip; returns what it printed.
fn page_run(addr: &str, n: usize, screenshot: Option<&PathBuf>) -> Value {
    let (wav, reference) = fixture(n);
    let mut cmd = Command::new(python());
    cmd.arg(repo().join("tests/clients/wlk_page.py")).args([
        &format!("ws://{addr}/asr"),
        &wav,
        "6",
    ]);
    if let Some(shot) = screenshot {
        std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
        cmd.arg(shot);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the page run failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    // Its own status line once the server said ready_to_stop.
    assert_eq!(
        page["status"], "Finished processing audio! Ready to record again.",
        "{page}"
    );
    // The fake microphone plays the clip on a loop: the sentence is there, whole, at least once.
    let text = page["text"].as_str().unwrap();
    let said = text.lines().last().unwrap_or_default();
    let first = said.split_inclusive('.').next().unwrap_or_default();
    assert!(
        wer::wer(&reference, first) <= 0.25,
        "{first:?} vs {reference:?} in {page}"
    );
    // The words showed while it listened, growing.
    let seen = page["seen"].as_array().unwrap();
    assert!(seen.len() >= 2, "{page}");
    page
}

#[test]
fn whisperlivekits_web_page_in_chromium_transcribes_through_candybar() {
    let _one_at_a_time = model_lock();
    let (_server, addr) = server(&[]);
    let shot = std::env::var_os("CANDYBAR_ARTIFACTS")
        .map(|d| PathBuf::from(d).join("whisperlivekit-page.png"));
    let page = page_run(&addr, 1, shot.as_ref());
    assert!(
        page["statuses"]
            .as_array()
            .unwrap()
            .contains(&Value::from("Connected. Using AudioWorklet (PCM).")),
        "{page}"
    );
    // Its line header: speaker 1, the times, the language candybar detected.
    let text = page["text"].as_str().unwrap();
    assert!(
        text.contains("0:00:00.00 - 0:00:0") && text.contains("en"),
        "{text}"
    );
}

#[test]
fn whisperlivekits_page_recording_webm_opus_transcribes_through_candybar() {
    let _one_at_a_time = model_lock();
    // Asked for WebM, the page records as it does against WhisperLiveKit's own server by
    // default: a MediaRecorder, Opus in WebM, a chunk every 100 ms.
    let (_server, addr) = server(&["--wlk-input", "webm"]);
    let page = page_run(&addr, 2, None);
    assert!(
        page["statuses"]
            .as_array()
            .unwrap()
            .contains(&Value::from("Connected. Using MediaRecorder (WebM).")),
        "{page}"
    );
}
