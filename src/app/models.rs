//! The models the Dictation view lists: what the model directory holds (read from each file's
//! header), and their speed on this machine, measured on request (a sentence decoded with each
//! model on a thread of its own) and kept in `speeds.json` beside them; and a model's `Q8_0`
//! copy, made on request.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use std::path::Path;

use candybar_asr::engine::Engine;
use candybar_asr::models::{installed_in, mb};
use candybar_core::voice::ModelInfo;
use parking_lot::Mutex;

/// The sentence each model decodes (utt02 of the speech fixtures, 4.6 s of espeak-ng).
const CLIP: &[u8] = include_bytes!("../../tests/fixtures/speech/utt02.wav");

/// Where a model job's results arrive: the models as they are now, and what came of it in words.
pub(super) type ModelsSlot = Arc<Mutex<Option<(Vec<ModelInfo>, Option<String>)>>>;

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
            quantizable: m.header.is_some_and(|h| h.ftype % 1000 <= 1),
            name: m.name,
            bytes: m.bytes,
        })
        .collect()
}

/// Decodes the sentence with each model, one after another, and keeps the speeds; the list
/// arrives in `slot`. A model that fails to load keeps no speed.
pub(super) fn measure(dir: PathBuf, slot: ModelsSlot, done: impl Fn() + Send + 'static) {
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
            *slot.lock() = Some((list(&dir), None));
            done();
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot measure the models: {e}");
    }
}

/// Writes the `Q8_0` copy of the installed model `name` as `NAME-q8_0` beside it, on a thread;
/// the list and what came of it arrive in `slot`.
pub(super) fn quantize(
    dir: PathBuf,
    name: String,
    slot: ModelsSlot,
    done: impl Fn() + Send + 'static,
) {
    let (give, listed) = (slot.clone(), dir.clone());
    let spawned = std::thread::Builder::new()
        .name("model-quantize".into())
        .spawn(move || {
            let started = std::time::Instant::now();
            let copy = format!("{name}-q8_0");
            let src = installed_in(&dir).into_iter().find(|m| m.name == name);
            let note = match src {
                None => format!("{name} is no longer in {}", dir.display()),
                Some(m) => {
                    let dest = dir.join(format!("ggml-{copy}.bin"));
                    match candybar_asr::quantize::quantize_q8_0(&m.path, &dest, |_, _| {}) {
                        Ok(q) => format!(
                            "made {copy}: {} (from {}) in {:.1} s",
                            mb(q.bytes_out),
                            mb(q.bytes_in),
                            started.elapsed().as_secs_f64()
                        ),
                        Err(e) => format!("cannot make {copy}: {e}"),
                    }
                }
            };
            *slot.lock() = Some((list(&dir), Some(note)));
            done();
        });
    if let Err(e) = spawned {
        *give.lock() = Some((list(&listed), Some(format!("cannot start quantizing: {e}"))));
    }
}
