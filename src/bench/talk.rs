//! `candybar bench talk`: a scripted conversation with the architect, timed as a person hears
//! it. Each fixture is one spoken turn, streamed in real time to the built-in Whisper server (in
//! this process) through the dictation client; its text goes to the architect (an
//! OpenAI-compatible server: `--architect URL`, e.g. llama.cpp's `llama-server`), whose reply is
//! spoken sentence by sentence. Per turn, from the end of the turn's audio (the client's own
//! measure: the final arrives `final_after_ms` after the last sample was sent): to the text, to
//! the reply's first piece, and to the reply's first sound at the output device (needs a sound
//! server: a real one, or `.ci/pulse`'s virtual speakers). Then: saving a spec (a new spec and a
//! new version of a 10 KB one), timed.

use std::path::Path;
use std::time::{Duration, Instant};

use candybar_specs::chat::ChatConfig;
use candybar_specs::store::SpecStore;
use candybar_voice::client::{self, ClientConfig};
use candybar_voice::speech::SpeechEngine;
use clap::Args;
use serde_json::json;

use super::quantiles;
use crate::talk::{Outcome, Talk, TalkConfig, TalkEvent};

#[derive(Args, Debug)]
pub struct TalkBenchArgs {
    /// The Whisper model (a path or a name in the model directory)
    #[arg(long, value_name = "PATH|NAME", default_value = "tiny.en")]
    model: String,
    /// The architect's OpenAI-compatible API base (a local llama.cpp server, Ollama, …)
    #[arg(long, value_name = "URL")]
    architect: String,
    /// The model asked for
    #[arg(long, default_value = "default")]
    llm_model: String,
    /// How replies are spoken: espeak-ng, off, or a speech API's base
    #[arg(long, default_value = "espeak-ng")]
    speech: String,
    /// Conversations of five spoken turns each
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Spec saves timed
    #[arg(long, default_value_t = 200)]
    saves: usize,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub async fn bench_talk(a: &TalkBenchArgs) -> anyhow::Result<serde_json::Value> {
    let model = candybar_asr::engine::resolve_model(&a.model)?;
    let (addr, stop_tx, server) = super::wlk::start_server(&model, None).await?;
    let dir = tempfile::tempdir()?;
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/speech");
    let mut wavs: Vec<_> = std::fs::read_dir(&fixtures)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    wavs.sort();
    let asr = ClientConfig {
        url: format!("ws://{addr}/asr"),
        ..ClientConfig::default()
    };
    let (mut asr_ms, mut first_token, mut first_audio) = (Vec::new(), Vec::new(), Vec::new());
    let started = Instant::now();
    for round in 0..a.rounds {
        let mut talk = Talk::start(TalkConfig {
            chat: ChatConfig::new(&a.architect, &a.llm_model),
            role: candybar_specs::prompt::DEFAULT_SYSTEM.to_owned(),
            project: "bench".into(),
            project_dir: dir.path().to_owned(),
            speech: SpeechEngine::from_setting(Some(&a.speech), None, None, None),
            conversations: dir.path().join("conversations.sqlite3"),
            continue_spec: None,
            reply_tokens: crate::talk::REPLY_TOKENS,
            spec_tokens: crate::talk::SPEC_TOKENS,
        })?;
        for wav in &wavs {
            let pcm = candybar_voice::resample::read_wav_16k(wav)?;
            let (tx, rx) = tokio::sync::mpsc::channel(4096);
            let feeder = tokio::spawn(crate::cli::dictate::feed_file(pcm, tx, true));
            let heard = client::dictate(&asr, rx, |_| {}).await;
            feeder.abort();
            let heard = heard.map_err(|f| anyhow::anyhow!(f.error))?;
            let end = Instant::now()
                .checked_sub(Duration::from_millis(heard.final_after_ms))
                .unwrap_or_else(Instant::now);
            asr_ms.push(heard.final_after_ms as f64);
            let mut failed = None;
            let outcome = talk
                .turn(&heard.text, end, Some(heard.final_after_ms), &mut |e| {
                    if let TalkEvent::Replied(t) = &e {
                        if let Some(v) = t.first_token_ms {
                            first_token.push(v as f64);
                        }
                        if let Some(v) = t.first_audio_ms {
                            first_audio.push(v as f64);
                        }
                    }
                    if let TalkEvent::Error(m) = e {
                        failed = Some(m);
                    }
                })
                .await;
            if let Some(m) = failed {
                anyhow::bail!("round {round}: {m}");
            }
            anyhow::ensure!(
                matches!(outcome, Outcome::Answered),
                "the turn was not answered"
            );
            // The person listens a moment, then talks again (which silences the rest).
            talk.speaker.wait_quiet(Duration::from_secs(3));
            eprintln!(
                "bench talk: round {} turn {} ({:.0} s)",
                round + 1,
                asr_ms.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    let saves = spec_saves(dir.path(), a.saves)?;
    Ok(json!({
        "bench": "talk",
        "whisper_model": model.display().to_string(),
        "architect": candybar_core::redact::mask_url(&a.architect),
        "llm_model": a.llm_model,
        "speech": a.speech,
        "turns": asr_ms.len(),
        "speech_end_to_text_ms": quantiles(asr_ms),
        "speech_end_to_first_token_ms": quantiles(first_token),
        "first_audio_turns": first_audio.len(),
        "speech_end_to_first_audio_ms": quantiles(first_audio),
        "spec_save_ms": saves,
    }))
}

/// Saving specs: a new one (directory, v1.md, meta.json, each flushed to disk), and a new version
/// of one (v{N}.md created, meta.json read and replaced under its lock).
fn spec_saves(dir: &Path, n: usize) -> anyhow::Result<serde_json::Value> {
    let store = SpecStore::new(&dir.join("saves"));
    let body = format!(
        "# Voice notes\n\n{}",
        "A requirement line of a spec, written as people write them.\n".repeat(170)
    );
    let (mut create, mut version) = (Vec::new(), Vec::new());
    let first = store.create("bench", &body, "file", None)?;
    for _ in 0..n {
        let t = Instant::now();
        store.create("bench", &body, "file", None)?;
        create.push(ms(t.elapsed()));
        let t = Instant::now();
        store.add_version(&first.id, &body, "file")?;
        version.push(ms(t.elapsed()));
    }
    Ok(json!({
        "spec_bytes": body.len(),
        "new_spec": quantiles(create),
        "new_version": quantiles(version),
    }))
}
