//! `candybar bench languages`: a multilingual model beside the English-only one in the same run
//! — streaming latency (end of speech → final) and word error rate on the English fixtures for
//! both — and, for the multilingual model, word error rate and language detection per language
//! on sentences the real espeak-ng speaks (`tests/fixtures/languages.tsv`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use candybar_asr::engine::{DecodeOptions, Engine};
use candybar_core::asr::wer;
use clap::Args;
use serde_json::json;

use super::{AsrBenchArgs, stream_clips};

#[derive(Args, Debug)]
pub struct LanguagesBenchArgs {
    /// The multilingual model (a path or a name in the model directory)
    #[arg(long, value_name = "PATH|NAME", default_value = "base-pypi")]
    model: String,
    /// The English-only model it is compared with
    #[arg(long, value_name = "PATH|NAME", default_value = "tiny.en")]
    baseline: String,
    /// Times each English clip is streamed, per model
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Voice rate for espeak-ng, in words a minute
    #[arg(long, default_value_t = 150)]
    rate: u32,
}

pub async fn bench_languages(a: &LanguagesBenchArgs) -> anyhow::Result<serde_json::Value> {
    let model = candybar_asr::engine::resolve_model(&a.model)?;
    let baseline = candybar_asr::engine::resolve_model(&a.baseline)?;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut clips: Vec<PathBuf> = std::fs::read_dir(fixtures.join("speech"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    clips.sort();
    // English, streamed in real time, both models in this run (alternating would be fairer on a
    // noisy machine, but each server holds its model for the whole pass).
    let mut english = serde_json::Map::new();
    for path in [&baseline, &model] {
        let args = AsrBenchArgs {
            clips: clips.clone(),
            model: crate::cli::asr::ModelArg {
                name: path.display().to_string(),
            },
            rounds: a.rounds,
            speed: 1.0,
            faster_whisper: None,
            also_early_decode_ms: None,
        };
        let cfg = candybar_asr::server::ServerConfig {
            model: path.clone(),
            language: Some("en".into()),
            ..candybar_asr::server::ServerConfig::default()
        };
        let run = stream_clips(&args, &clips, cfg).await?;
        english.insert(model_name(path), run);
    }
    let per_language = tokio::task::block_in_place(|| languages(a, &model, &fixtures))?;
    Ok(json!({
        "bench": "languages",
        "model": model.display().to_string(),
        "baseline": baseline.display().to_string(),
        "english_streaming": english,
        "languages": per_language,
    }))
}

fn model_name(p: &Path) -> String {
    p.file_stem().map_or_else(
        || p.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

/// Each sentence of the table spoken by espeak-ng and transcribed three ways: told its
/// language, detected among all, and detected among the table's languages.
fn languages(
    a: &LanguagesBenchArgs,
    model: &Path,
    fixtures: &Path,
) -> anyhow::Result<serde_json::Value> {
    let table = std::fs::read_to_string(fixtures.join("languages.tsv"))?;
    let rows: Vec<(&str, &str)> = table
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .collect();
    let mut codes: Vec<&str> = rows.iter().map(|(c, _)| *c).collect();
    codes.dedup();
    let among = codes.join(",");
    let engine = Engine::load(model)?;
    let threads = candybar_asr::server::ServerConfig::default().threads;
    let mut worker = engine.worker(threads)?;
    let dir = tempfile::tempdir()?;
    let mut out = serde_json::Map::new();
    for code in &codes {
        // (errors, words) and (right, clips) per way of choosing the language; decode times.
        let mut errors = [(0usize, 0usize); 3];
        let mut detected = [(0usize, 0usize); 3];
        let mut decode_ms = [Vec::new(), Vec::new(), Vec::new()];
        for (i, (_, text)) in rows.iter().filter(|(c, _)| c == code).enumerate() {
            let wav = dir.path().join(format!("{code}-{i}.wav"));
            let status = Command::new("espeak-ng")
                .args(["-v", code, "-s", &a.rate.to_string(), "-w"])
                .arg(&wav)
                .arg(text)
                .status()
                .context("espeak-ng is needed (apt-get install espeak-ng)")?;
            anyhow::ensure!(status.success(), "espeak-ng failed on {code}");
            let samples = candybar_asr::media::decode_audio(std::fs::read(&wav)?, Some("wav"))?;
            for (k, language) in [(*code).to_owned(), "auto".to_owned(), among.clone()]
                .into_iter()
                .enumerate()
            {
                let opts = DecodeOptions {
                    language: Some(language),
                    ..DecodeOptions::default()
                };
                let t = worker.transcribe_with(&samples, &opts)?;
                let (e, n) = wer::errors(text, &t.text);
                errors[k].0 += e;
                errors[k].1 += n;
                detected[k].0 += usize::from(t.language == *code);
                detected[k].1 += 1;
                decode_ms[k].push(t.decode_ms);
            }
        }
        let mut by_way = serde_json::Map::new();
        for (k, way) in ["told", "auto", "among_table_languages"].iter().enumerate() {
            let median = {
                let mut v = decode_ms[k].clone();
                v.sort_unstable();
                v.get(v.len() / 2).copied().unwrap_or(0)
            };
            by_way.insert(
                (*way).to_owned(),
                json!({
                    "word_error_rate": ((errors[k].0 as f64 / errors[k].1.max(1) as f64) * 1000.0).round() / 1000.0,
                    "language_right": format!("{} of {}", detected[k].0, detected[k].1),
                    "median_decode_ms": median,
                }),
            );
        }
        out.insert((*code).to_owned(), serde_json::Value::Object(by_way));
    }
    out.insert("table_languages".into(), json!(among));
    Ok(serde_json::Value::Object(out))
}
