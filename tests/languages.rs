//! Languages other than English with a real multilingual Whisper model (base, found or built by
//! `.ci/model-multilingual`) on speech the real espeak-ng renders from
//! `tests/fixtures/languages.tsv`: a language asked for, detected, or detected among a few;
//! through `asr transcribe`, the `/asr` WebSocket and the OpenAI-compatible API.

// Helpers outside `#[test]` functions: a failed step panics with its message.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use candybar_core::asr::wer;
use serde_json::Value;
use support::asr::{rt, stream_to};
use support::{asr_server_with, model_lock, path_str, repo, run, test_model};

fn multilingual_model() -> PathBuf {
    let p = std::env::var_os("CANDYBAR_TEST_MODEL_MULTILINGUAL")
        .map(PathBuf::from)
        .expect(
            "these tests need a multilingual Whisper model: run them with .ci/test (it finds or \
             builds one with .ci/model-multilingual), or set \
             CANDYBAR_TEST_MODEL_MULTILINGUAL=/path/to/ggml-base.bin",
        );
    assert!(
        p.is_file(),
        "CANDYBAR_TEST_MODEL_MULTILINGUAL={} is not a file",
        p.display()
    );
    p
}

/// The sentences of `lang` in the fixture table, spoken by espeak-ng into one WAV (22 kHz, as
/// espeak-ng writes it); the reference text beside it.
fn spoken(lang: &str, dir: &Path) -> (PathBuf, String) {
    let table = std::fs::read_to_string(repo().join("tests/fixtures/languages.tsv")).unwrap();
    let text = table
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .filter(|(code, _)| *code == lang)
        .map(|(_, sentence)| format!("{sentence}."))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(!text.is_empty(), "no {lang} sentences");
    let path = dir.join(format!("{lang}.wav"));
    let status = Command::new("espeak-ng")
        .args(["-v", lang, "-s", "150", "-w"])
        .arg(&path)
        .arg(&text)
        .status()
        .unwrap_or_else(|e| {
            panic!("espeak-ng is needed (apt-get install espeak-ng; .ci/install-deps does): {e}")
        });
    assert!(status.success(), "espeak-ng failed for {lang}");
    (path, text)
}

/// `asr transcribe --format ndjson` of `files` with `language`.
fn transcribe(model: &Path, language: &str, files: &[&Path]) -> Vec<Value> {
    let mut args = vec![
        "asr",
        "transcribe",
        "--model",
        path_str(model),
        "--language",
        language,
        "--format",
        "ndjson",
    ];
    args.extend(files.iter().map(|f| path_str(f)));
    let (code, out, err) = run(&args);
    assert_eq!(code, Some(0), "{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn german_spanish_and_french_are_detected_and_transcribed() {
    let model = multilingual_model();
    let _one_at_a_time = model_lock();
    let dir = tempfile::tempdir().unwrap();
    let clips: Vec<(&str, PathBuf, String)> = ["de", "es", "fr"]
        .into_iter()
        .map(|lang| {
            let (path, text) = spoken(lang, dir.path());
            (lang, path, text)
        })
        .collect();
    let files: Vec<&Path> = clips.iter().map(|(_, p, _)| p.as_path()).collect();

    // Detected among all 99 languages.
    let auto = transcribe(&model, "auto", &files);
    for ((lang, _, reference), r) in clips.iter().zip(&auto) {
        assert_eq!(r["language"], *lang, "{r}");
        let text = r["text"].as_str().unwrap();
        // espeak-ng's voices are hard on Whisper base (its French most of all): the bounds are
        // what this model reads from them, with a margin.
        let bound = match *lang {
            "fr" => 0.95,
            _ => 0.45,
        };
        let rate = wer::wer(reference, text);
        assert!(
            rate <= bound,
            "{lang}: WER {rate:.2}: {text:?} vs {reference:?}"
        );
    }
    // Told, and told which few it may be.
    let told = transcribe(&model, "es", &files[1..2]);
    assert_eq!(told[0]["language"], "es");
    let among = transcribe(&model, "en,de", &files[..1]);
    assert_eq!(among[0]["language"], "de", "{}", among[0]);
    let among = transcribe(&model, "fr,es", &files[2..]);
    assert_eq!(among[0]["language"], "fr", "{}", among[0]);

    // An English-only model says what it needs.
    let (code, _, err) = run(&[
        "asr",
        "transcribe",
        "--model",
        path_str(&test_model()),
        "--language",
        "de",
        path_str(files[0]),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("needs a multilingual model"), "{err}");
    let (code, _, err) = run(&["asr", "transcribe", "--language", "xx", path_str(files[0])]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("unknown language code 'xx'"), "{err}");
}

#[test]
fn the_server_says_which_language_each_final_is_in() {
    let model = multilingual_model();
    let _one_at_a_time = model_lock();
    let dir = tempfile::tempdir().unwrap();
    let (german, _) = spoken("de", dir.path());
    let (spanish, reference) = spoken("es", dir.path());
    let (server, addr) = asr_server_with(&model, &["--language", "auto"]);
    let pcm = |wav: &Path| -> Vec<u8> {
        candybar_voice::resample::read_wav_16k(wav)
            .unwrap()
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect()
    };
    let finals = |session: &support::asr::Session| -> Vec<Value> {
        session
            .messages
            .iter()
            .filter(|m| m["type"] == "final")
            .cloned()
            .collect()
    };

    // `?language=` on the URL, as WhisperLiveKit's clients send it.
    let url = format!("ws://{addr}/asr?language=es");
    let s = rt().block_on(stream_to(&url, r#"{"type":"config"}"#, &pcm(&spanish), 8.0));
    let spanish_finals = finals(&s);
    assert!(!spanish_finals.is_empty(), "{:?}", s.messages);
    assert!(
        spanish_finals.iter().all(|f| f["language"] == "es"),
        "{spanish_finals:?}"
    );
    let text: Vec<&str> = spanish_finals
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    let rate = wer::wer(&reference, &text.join(" "));
    assert!(rate <= 0.45, "WER {rate:.2}: {text:?}");

    // The server's own `--language auto`: detected.
    let url = format!("ws://{addr}/asr");
    let s = rt().block_on(stream_to(&url, r#"{"type":"config"}"#, &pcm(&german), 8.0));
    let german_finals = finals(&s);
    assert!(!german_finals.is_empty(), "{:?}", s.messages);
    assert!(
        german_finals.iter().all(|f| f["language"] == "de"),
        "{german_finals:?}"
    );

    // A language the server does not know: said, and the connection goes on.
    let s = rt().block_on(stream_to(
        &url,
        r#"{"type":"config","language":"klingon"}"#,
        &pcm(&german),
        8.0,
    ));
    let error = s.messages.iter().find(|m| m["type"] == "error").unwrap();
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("unknown language code 'klingon'"),
        "{error}"
    );
    assert!(finals(&s).iter().all(|f| f["language"] == "de"));

    // OpenAI's client: the language by its English name, as OpenAI answers.
    let python = std::env::var("CANDYBAR_TEST_PYTHON").expect(
        "the OpenAI client test needs CANDYBAR_TEST_PYTHON (run `.ci/python-clients`; .ci/test does)",
    );
    let out = Command::new(python)
        .arg(repo().join("tests/clients/openai_client.py"))
        .args([
            &format!("http://{addr}/v1"),
            "any-key",
            "verbose",
            path_str(&german),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["language"], "german", "{v}");
    drop(server);
}
