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

/// Writes 16 kHz mono 16-bit samples in -1..1.
fn write_wav(path: &std::path::Path, samples: impl Iterator<Item = f32>) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).expect("create wav");
    for s in samples {
        writer
            .write_sample((s.clamp(-1.0, 1.0) * 32_767.0) as i16)
            .expect("write sample");
    }
    writer.finalize().expect("finalize wav");
}

/// Uniform noise in -1..1 from a small LCG: the same every run.
fn noise(seed: u64) -> impl FnMut() -> f32 {
    let mut x = seed;
    move || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Silence, hiss, white noise, mains hum and music-like tones: what tiny.en turns into "you",
/// `[BLANK_AUDIO]` or "Thank you." when left to itself. None of it may become text; speech beside
/// them still does.
#[test]
fn silence_noise_and_music_give_no_text() {
    use std::f32::consts::TAU;
    let model = test_model();
    let _one_at_a_time = model_lock();
    let dir = tempfile::tempdir().unwrap();
    let n = 16_000 * 6;
    let t = |i: usize| i as f32 / 16_000.0;
    let mut hiss = noise(1);
    let mut white = noise(2);
    let mut drum = noise(3);
    let notes = [196.0f32, 246.9, 293.7, 392.0, 329.6, 261.6, 220.0];
    let inputs: Vec<(&str, Vec<f32>)> = vec![
        ("digital-silence", vec![0.0; n]),
        ("hiss", (0..n).map(|_| 0.001 * hiss()).collect()),
        ("white-noise", (0..n).map(|_| 0.4 * white()).collect()),
        (
            "hum",
            (0..n)
                .map(|i| 0.1 * (TAU * 50.0 * t(i)).sin() + 0.05 * (TAU * 150.0 * t(i)).sin())
                .collect(),
        ),
        (
            "music",
            (0..n)
                .map(|i| {
                    let (k, phase) = ((t(i) / 0.4) as usize, (t(i) % 0.4) / 0.4);
                    let f = notes[k % notes.len()];
                    let tick = if t(i) % 0.8 < 0.03 { 0.3 * drum() } else { 0.0 };
                    0.4 * (-3.0 * phase).exp()
                        * ((TAU * f * t(i)).sin() + 0.4 * (TAU * f * 2.01 * t(i)).sin())
                        + tick
                })
                .collect(),
        ),
    ];
    let mut args = vec![
        "asr".to_owned(),
        "transcribe".into(),
        "--model".into(),
        path_str(&model).into(),
        "--format".into(),
        "ndjson".into(),
    ];
    for (name, samples) in &inputs {
        let path = dir.path().join(format!("{name}.wav"));
        write_wav(&path, samples.iter().copied());
        args.push(path_str(&path).into());
    }
    args.push(fixtures()[0].clone());
    // A short word the subtitles Whisper learnt from end with, really said: it stays.
    let okay = dir.path().join("okay.wav");
    let status = std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "130", "-w"])
        .arg(&okay)
        .arg("Okay.")
        .status()
        .expect("espeak-ng is needed (apt-get install espeak-ng; .ci/install-deps does)");
    assert!(status.success());
    args.push(path_str(&okay).into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = run(&args);
    assert_eq!(code, Some(0), "{err}");
    let results: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), inputs.len() + 2, "{out}");
    for ((name, _), r) in inputs.iter().zip(&results) {
        assert_eq!(r["text"], "", "{name} became text: {r}");
    }
    assert!(
        results[inputs.len()]["text"]
            .as_str()
            .unwrap()
            .contains("schedule a meeting"),
        "{out}"
    );
    assert!(
        results[inputs.len() + 1]["text"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("kay"),
        "a spoken \"Okay.\" was dropped: {out}"
    );
}
