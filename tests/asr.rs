//! `candybar asr transcribe` with the real Whisper model on committed espeak-ng fixtures.

mod support;

use serde_json::Value;
use support::{model_lock, path_str, repo, run, test_model};

fn fixtures() -> Vec<String> {
    let dir = repo().join("tests/fixtures/speech");
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .map(|p| path_str(&p).to_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn transcribes_the_fixtures_within_the_word_error_budget() {
    let model = test_model();
    let _one_at_a_time = model_lock();
    let files = fixtures();
    assert!(files.len() >= 5);
    let mut args = vec![
        "asr",
        "transcribe",
        "--model",
        path_str(&model),
        "--format",
        "ndjson",
        "--score",
    ];
    args.extend(files.iter().map(String::as_str));
    let (code, out, err) = run(&args);
    assert_eq!(code, Some(0), "{err}");
    let results: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), files.len());
    for r in &results {
        let c = r["confidence"].as_f64().unwrap();
        assert!(c > 0.0 && c <= 1.0, "confidence {c}");
        assert!(
            r["real_time_factor"].as_f64().unwrap() > 0.0,
            "timings are reported (speed is measured by `bench asr`, not here): {r}"
        );
        assert!(!r["segments"].as_array().unwrap().is_empty());
        assert_eq!(r["model"], "ggml-tiny.en");
    }
    // Corpus word error rate, as printed: "word error rate X % (E errors in N words)".
    let line = err
        .lines()
        .find(|l| l.contains("word error rate"))
        .unwrap_or_else(|| panic!("{err}"));
    let (e, n): (usize, usize) = {
        let nums: Vec<usize> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|s| s.parse().ok())
            .collect();
        (nums[nums.len() - 2], nums[nums.len() - 1])
    };
    let wer = e as f64 / n as f64;
    assert!(
        wer <= 0.20,
        "word error rate {:.1} % over the fixtures: {line}\n{out}",
        wer * 100.0
    );
    assert!(out.contains("schedule a meeting"), "{out}");
}

#[test]
fn bad_audio_and_missing_models_are_explained() {
    let model = test_model();
    let _one_at_a_time = model_lock();
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wav");
    std::fs::write(&junk, b"RIFF not really").unwrap();
    let (code, _, err) = run(&[
        "asr",
        "transcribe",
        "--model",
        path_str(&model),
        path_str(&junk),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("cannot read") && err.contains("junk.wav"),
        "{err}"
    );

    let (code, _, err) = run(&[
        "asr",
        "transcribe",
        "--model",
        "no-such-model",
        &fixtures()[0],
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no model 'no-such-model'") && err.contains("ggml-no-such-model.bin"),
        "{err}"
    );

    // A file that is not a model at all.
    let (code, _, err) = run(&[
        "asr",
        "transcribe",
        "--model",
        path_str(&junk),
        &fixtures()[0],
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot load model"), "{err}");
}

/// The engine's decode options: word times line up with the words, and a decode can be stopped.
#[test]
fn word_times_and_stopping_a_decode() {
    use candybar_asr::engine::{DecodeOptions, Engine};
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    let model = test_model();
    let _one_at_a_time = model_lock();
    let engine = Engine::load(&model).unwrap();
    let mut worker = engine.worker(2).unwrap();
    let clip = &fixtures()[0];
    let samples = candybar_asr::wav::read_wav(std::path::Path::new(clip)).unwrap();
    let audio_ms = samples.len() as u64 * 1000 / 16_000;

    let opts = DecodeOptions {
        word_times: true,
        abort: Some(Arc::new(AtomicBool::new(false))),
        ..DecodeOptions::default()
    };
    let t = worker.transcribe_with(&samples, &opts).unwrap();
    assert!(!t.text.is_empty());
    assert_eq!(
        t.words.len(),
        candybar_core::asr::wer::words(&t.text).len(),
        "{t:?}"
    );
    for pair in t.words.windows(2) {
        assert!(pair[0].start_ms <= pair[1].start_ms, "{:?}", t.words);
    }
    let last = t.words.last().unwrap();
    assert!(
        last.end_ms <= audio_ms + 100 && last.end_ms > audio_ms / 2,
        "{last:?} of {audio_ms} ms"
    );

    // A raised flag stops the decode: an error, not text, and the worker stays usable.
    let stop = DecodeOptions {
        abort: Some(Arc::new(AtomicBool::new(true))),
        ..DecodeOptions::default()
    };
    assert!(worker.transcribe_with(&samples, &stop).is_err());
    assert_eq!(worker.transcribe(&samples).unwrap().text, t.text);
}
