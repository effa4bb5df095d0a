//! The GPU build: candybar with whisper.cpp's Vulkan backend (`--features vulkan`), run on the
//! machine's Vulkan device — Mesa's lavapipe (a Vulkan driver that computes on the CPU) on the
//! test machines, which have no GPU; a real GPU's driver elsewhere. `.ci/test` builds it
//! (`.ci/vulkan-build`) and names it in `CANDYBAR_TEST_VULKAN_BIN`.

// Helpers outside `#[test]` functions: a failed step panics with its message.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;

use serde_json::Value;
use support::{asr_server_of, http_get, model_lock, path_str, repo, test_model};

fn vulkan_build() -> PathBuf {
    let bin = std::env::var_os("CANDYBAR_TEST_VULKAN_BIN").unwrap_or_else(|| {
        panic!(
            "this test needs candybar built with --features vulkan: run `.ci/vulkan-build` (it \
             needs `sudo apt-get install libvulkan-dev glslc mesa-vulkan-drivers`) and set \
             CANDYBAR_TEST_VULKAN_BIN to the path it prints, or run the suite with .ci/test"
        )
    });
    let bin = PathBuf::from(bin);
    assert!(bin.exists(), "{} does not exist", bin.display());
    bin
}

/// The Vulkan build's server with `env` set; it says it was built for Vulkan. Its `/status`.
fn vulkan_server(env: (&str, &str)) -> (support::Candybar, String, Value) {
    let (server, addr) = asr_server_of(&vulkan_build(), &test_model(), &[], &[env]);
    let (code, status) = http_get(&addr, "/status");
    assert_eq!(code, 200, "{status}");
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["backend"], "vulkan", "{status}");
    (server, addr, status)
}

/// Fixture `n`'s clip uploaded to `/v1/audio/transcriptions` by curl; the text.
fn upload(addr: &str, n: usize) -> String {
    let wav = repo().join(format!("tests/fixtures/speech/utt{n:02}.wav"));
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "300", "-F"])
        .arg(format!("file=@{}", path_str(&wav)))
        .args(["-F", "model=whisper-1"])
        .arg(format!("http://{addr}/v1/audio/transcriptions"))
        .output()
        .expect("this test uploads with curl: sudo apt-get install curl");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{body}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str::<Value>(&body).unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `text` is fixture `n`'s words, give or take a quarter.
fn assert_heard(n: usize, text: &str) {
    let script =
        std::fs::read_to_string(repo().join(format!("tests/fixtures/speech/utt{n:02}.txt")))
            .unwrap();
    let (errors, words) = candybar_core::asr::wer::errors(&script, text);
    assert!(
        errors as f64 / words as f64 <= 0.25,
        "heard {text:?}, said {script:?}"
    );
}

/// The Vulkan build finds a Vulkan device, says which in `/status`, and transcribes on it as
/// well as the CPU build does.
#[test]
fn the_vulkan_build_transcribes_on_a_vulkan_device_and_says_so() {
    let _model = model_lock();
    // lavapipe is a CPU device, which whisper.cpp passes over unless it is named (a real GPU
    // is taken without this).
    let (server, addr, status) = vulkan_server(("GGML_VK_VISIBLE_DEVICES", "0"));
    let devices = status["devices"].as_array().unwrap();
    assert!(
        !devices.is_empty(),
        "no Vulkan device: {status}\n{}",
        server.stderr()
    );
    let first = devices[0].as_str().unwrap();
    assert!(
        server
            .stderr()
            .contains(&format!("whisper.cpp decodes with vulkan on {first}")),
        "{}",
        server.stderr()
    );
    // A clip uploaded as to OpenAI's API (by curl): one decode on the device. (Streaming
    // would decode again every second of audio, which lavapipe — a CPU doing a GPU's work —
    // does slowly.)
    let text = upload(&addr, 1);
    assert_heard(1, &text);
    let status: Value = serde_json::from_str(&http_get(&addr, "/status").1).unwrap();
    assert_eq!(status["uploads"]["transcribed"], 1, "{status}");
}

/// The Vulkan build on a machine without a Vulkan driver (the loader pointed at none): it does
/// not crash — ggml's device listing would abort the process there — but says it found no GPU
/// and decodes on the CPU.
#[test]
fn the_vulkan_build_without_a_vulkan_driver_decodes_on_the_cpu_and_says_so() {
    let _model = model_lock();
    let (server, addr, status) =
        vulkan_server(("VK_ICD_FILENAMES", "/nonexistent/vulkan-driver.json"));
    assert_eq!(status["devices"], serde_json::json!([]), "{status}");
    assert!(
        server
            .stderr()
            .contains("found no Vulkan GPU: decoding on the CPU"),
        "{}",
        server.stderr()
    );
    let text = upload(&addr, 1);
    assert_heard(1, &text);
}
