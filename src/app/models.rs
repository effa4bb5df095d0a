//! The models the Dictation view lists: what the model directory holds (read from each file's
//! header), and their speed on this machine, measured on request (a sentence decoded with each
//! model on a thread of its own) and kept in `speeds.json` beside them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use std::path::Path;

use candybar_asr::engine::Engine;
use candybar_asr::models::installed_in;
use candybar_core::voice::ModelInfo;
use parking_lot::Mutex;

/// The sentence each model decodes (utt02 of the speech fixtures, 4.6 s of espeak-ng).
const CLIP: &[u8] = include_bytes!("../../tests/fixtures/speech/utt02.wav");

/// Where a measurement's results arrive.
pub(super) type SpeedSlot = Arc<Mutex<Option<Vec<ModelInfo>>>>;

fn speeds_path(dir: &Path) -> PathBuf {
    dir.join("speeds.json")
}

fn saved_speeds(dir: &Path) -> BTreeMap<String, f32> {
    std::fs::read(speeds_path(dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The models in `dir`, with the speeds measured before.
pub(super) fn list(dir: &Path) -> Vec<ModelInfo> {
    let speeds = saved_speeds(dir);
    installed_in(dir)
        .into_iter()
        .map(|m| ModelInfo {
            real_time_factor: speeds.get(&m.name).copied(),
            multilingual: m.header.map(|h| h.multilingual()),
            kind: m.header.map_or_else(
                || "not a Whisper model".to_owned(),
                |h| match h.ftype % 1000 {
                    0 | 1 => h.size_class().to_owned(),
                    _ => format!("{}, quantized", h.size_class()),
                },
            ),
            name: m.name,
            bytes: m.bytes,
        })
        .collect()
}

/// Decodes the sentence with each model, one after another, and keeps the speeds; the list
/// arrives in `slot`. A model that fails to load keeps no speed.
pub(super) fn measure(dir: PathBuf, slot: SpeedSlot, done: impl Fn() + Send + 'static) {
    let spawned = std::thread::Builder::new()
        .name("model-speeds".into())
        .spawn(move || {
            let mut speeds = saved_speeds(&dir);
            let samples =
                candybar_asr::media::decode_audio(CLIP.to_vec(), Some("wav")).unwrap_or_default();
            let threads = candybar_asr::server::ServerConfig::default().threads;
            for m in installed_in(&dir)
                .into_iter()
                .filter(|m| m.header.is_some())
            {
                let Ok(engine) = Engine::load(&m.path) else {
                    continue;
                };
                let Ok(mut worker) = engine.worker(threads) else {
                    continue;
                };
                // The first decode warms the caches; the second is the one timed.
                let _ = worker.transcribe(&samples);
                if let Ok(t) = worker.transcribe(&samples) {
                    speeds.insert(
                        m.name.clone(),
                        t.decode_ms as f32 / t.audio_ms.max(1) as f32,
                    );
                }
            }
            if let Ok(json) = serde_json::to_vec_pretty(&speeds) {
                let _ = std::fs::write(speeds_path(&dir), json);
            }
            *slot.lock() = Some(list(&dir));
            done();
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot measure the models: {e}");
    }
}
