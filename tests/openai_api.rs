//! `candybar asr serve`'s OpenAI-compatible API (`/v1/audio/transcriptions`, `/v1/models`)
//! driven by OpenAI's official Python client (`openai`, installed by `.ci/python-clients`) with
//! the real Whisper model.

// Helpers outside `#[test]` functions: a failed step panics with its message.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use candybar_core::asr::wer;
use serde_json::Value;
use support::{asr_server as server, model_lock, path_str, repo};

const KEY: &str = "sk-local-7c1e";

/// The venv's python with `openai` installed: `CANDYBAR_TEST_PYTHON`, as `.ci/test` sets it.
fn python() -> PathBuf {
    let p = std::env::var_os("CANDYBAR_TEST_PYTHON").map(PathBuf::from).expect(
        "these tests drive the server with OpenAI's Python client: run `.ci/python-clients` and \
         set CANDYBAR_TEST_PYTHON to the python it prints (.ci/test does both)",
    );
    assert!(
        p.is_file(),
        "CANDYBAR_TEST_PYTHON={} does not exist: run `.ci/python-clients`",
        p.display()
    );
    p
}

/// Runs the client script; its stdout is one JSON object.
fn client(args: &[&str]) -> Value {
    let out = Command::new(python())
        .arg(repo().join("tests/clients/openai_client.py"))
        .args(args)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the client failed:\n{stderr}\n{stdout}"
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

fn fixture(n: usize) -> (PathBuf, String) {
    let dir = repo().join("tests/fixtures/speech");
    let text = std::fs::read_to_string(dir.join(format!("utt{n:02}.txt"))).unwrap();
    (dir.join(format!("utt{n:02}.wav")), text)
}

/// The 16 kHz clip as 48 kHz stereo 32-bit float, as a phone or a browser would record it.
fn as_48k_stereo_float(src: &Path, dst: &Path) {
    let mut reader = hound::WavReader::open(src).unwrap();
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 48_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut writer = hound::WavWriter::create(dst, spec).unwrap();
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    for pair in samples.windows(2) {
        // Linear steps between the 16 kHz samples: three output frames per input sample.
        for k in 0..3 {
            let from = f32::from(pair[0]) / 32_768.0;
            let to = f32::from(pair[1]) / 32_768.0;
            let v = from + (to - from) * k as f32 / 3.0;
            writer.write_sample(v).unwrap();
            writer.write_sample(v).unwrap();
        }
    }
    writer.finalize().unwrap();
}

#[test]
fn the_official_client_transcribes_a_file_in_every_format() {
    let _one_at_a_time = model_lock();
    let (_server, addr) = server(&["--token", KEY]);
    let (wav, reference) = fixture(1);
    let dir = tempfile::tempdir().unwrap();
    let resampled = dir.path().join("48k-stereo.wav");
    as_48k_stereo_float(&wav, &resampled);
    let base = format!("http://{addr}/v1");
    let r = client(&[&base, KEY, "formats", path_str(&wav), path_str(&resampled)]);

    let models: Vec<&str> = r["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(models, ["ggml-tiny.en", "whisper-1"]);

    let text = r["json"].as_str().unwrap();
    assert!(
        wer::wer(&reference, text) <= 0.25,
        "{text:?} vs {reference:?}"
    );
    assert_eq!(r["text"].as_str().unwrap().trim(), text);

    let srt = r["srt"].as_str().unwrap();
    assert!(srt.starts_with("1\n00:00:0"), "{srt}");
    assert!(srt.contains(" --> ") && srt.contains(','), "{srt}");
    let vtt = r["vtt"].as_str().unwrap();
    assert!(vtt.starts_with("WEBVTT\n\n00:00:0"), "{vtt}");

    let v = &r["verbose_json"];
    assert_eq!(v["language"], "english");
    let clip_secs = std::fs::metadata(&wav).unwrap().len() as f64 / 32_000.0;
    let duration = v["duration"].as_f64().unwrap();
    assert!(
        (duration - clip_secs).abs() < 0.1,
        "{duration} vs {clip_secs}"
    );
    let segments = v["segments"].as_array().unwrap();
    assert!(!segments.is_empty());
    let last_end = segments.last().unwrap()["end"].as_f64().unwrap();
    assert!(last_end > 0.5 && last_end <= duration + 0.01, "{v}");
    assert!(
        segments
            .iter()
            .all(|s| s["no_speech_prob"].as_f64().unwrap() < 0.5)
    );
    let words = v["words"].as_array().unwrap();
    assert_eq!(
        words.len(),
        wer::words(v["text"].as_str().unwrap()).len(),
        "{v}"
    );
    let starts: Vec<f64> = words.iter().map(|w| w["start"].as_f64().unwrap()).collect();
    assert!(starts.windows(2).all(|p| p[0] <= p[1]), "{starts:?}");

    // A 48 kHz stereo float file is converted, not refused.
    let other = r["resampled"].as_str().unwrap();
    assert!(
        wer::wer(&reference, other) <= 0.25,
        "{other:?} vs {reference:?}"
    );
}

#[test]
fn browser_recordings_and_voice_notes_in_opus_are_transcribed() {
    let _one_at_a_time = model_lock();
    let (_server, addr) = server(&["--token", KEY]);
    let dir = repo().join("tests/fixtures/speech");
    let base = format!("http://{addr}/v1");
    // Chromium's MediaRecorder (WebM/Opus, a live recording) and an Ogg/Opus voice note.
    for (file, n) in [("utt01.webm", 1), ("utt02.opus", 2)] {
        let (_, reference) = fixture(n);
        let r = client(&[&base, KEY, "verbose", path_str(&dir.join(file))]);
        let text = r["text"].as_str().unwrap();
        assert!(
            wer::wer(&reference, text) <= 0.25,
            "{file}: {text:?} vs {reference:?}"
        );
        assert!(r["duration"].as_f64().unwrap() > 3.0, "{file}: {r}");
    }
}

#[test]
fn bad_requests_get_openai_errors_and_the_server_keeps_serving() {
    let _one_at_a_time = model_lock();
    let (server, addr) = server(&["--token", KEY]);
    let (wav, reference) = fixture(2);
    let r = client(&[&format!("http://{addr}/v1"), KEY, "errors", path_str(&wav)]);
    let case = |name: &str, status: u64, says: &str| {
        assert_eq!(r[name]["status"], status, "{name}: {}", r[name]);
        let message = r[name]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{name}: {message}");
    };
    case("wrong_key", 401, "missing or wrong API key");
    case(
        "bad_format",
        400,
        "use json, text, verbose_json, srt or vtt",
    );
    case("bad_language", 400, "unknown language code 'xx'");
    case("german_on_english_model", 400, "needs a multilingual model");
    case("unknown_model", 404, "this server runs `ggml-tiny.en`");
    case("garbage", 400, "send WAV, FLAC, MP3");
    case("binary_noise", 400, "send WAV, FLAC, MP3");
    case("too_big", 413, "over 25 MB");
    // The server answered each of them and still transcribes.
    let after = r["after"].as_str().unwrap();
    assert!(
        wer::wer(&reference, after) <= 0.3,
        "{after:?} vs {reference:?}"
    );
    let (code, status) = support::http_get(&addr, "/status");
    assert_eq!(code, 200);
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["uploads"]["transcribed"], 2, "{status}");
    assert_eq!(status["uploads"]["refused"], 7, "{status}");
    assert!(!server.stderr().contains(KEY), "the key reached the log");
}
