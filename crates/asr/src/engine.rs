//! The Whisper engine: one loaded model ([`Engine`], shared) and per-worker decoding states
//! ([`Worker`], ~190 MB of buffers each for tiny.en, made once and reused).
//!
//! Settings are deterministic (greedy, no temperature fallback, no carried context), the
//! encoder context is shortened to the audio's length (about half the time on dictation-length
//! clips), and whisper.cpp's own logging goes to `tracing` instead of stderr.

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Instant;

use candybar_core::asr::audio::SAMPLE_RATE_HZ;
use candybar_core::asr::hallucination::{self, SegmentQuality, Verdict};
use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

/// The compute backend whisper.cpp was built for: `cpu`, or `cuda` / `vulkan` with those
/// features.
pub const BACKEND: &str = if cfg!(feature = "cuda") {
    "cuda"
} else if cfg!(feature = "vulkan") {
    "vulkan"
} else {
    "cpu"
};

/// The devices whisper.cpp's GPU backend sees, by name (`llvmpipe (LLVM 15.0.6, 256 bits)`,
/// `NVIDIA GeForce RTX 4070`): none in the CPU build, nor when no driver offers one (whisper.cpp
/// then decodes on the CPU). CUDA's are not listed (whisper-rs does not enumerate them).
pub fn gpu_devices() -> &'static [String] {
    static DEVICES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    DEVICES.get_or_init(|| {
        // ggml's Vulkan listing throws a C++ exception when no driver is installed, which
        // aborts the process: it is asked only when the loader will find a driver.
        #[cfg(feature = "vulkan")]
        let devices = if vulkan_driver_installed() {
            whisper_rs::vulkan::list_devices()
                .into_iter()
                .map(|d| d.name)
                .collect()
        } else {
            Vec::new()
        };
        #[cfg(not(feature = "vulkan"))]
        let devices = Vec::new();
        devices
    })
}

/// Whether the Vulkan loader will find a driver: a manifest (`*.json`) where the loader looks
/// for them on Linux, or the files `VK_DRIVER_FILES` / `VK_ICD_FILENAMES` name (which replace
/// that search).
#[cfg_attr(not(feature = "vulkan"), allow(dead_code))]
fn vulkan_driver_installed() -> bool {
    for var in ["VK_DRIVER_FILES", "VK_ICD_FILENAMES"] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            return std::env::split_paths(&v).any(|p| p.is_file());
        }
    }
    let env_dirs = |var: &str, default: &str| -> Vec<PathBuf> {
        std::env::var_os(var).filter(|v| !v.is_empty()).map_or_else(
            || std::env::split_paths(default).collect(),
            |v| std::env::split_paths(&v).collect(),
        )
    };
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let mut roots = vec![
        std::env::var_os("XDG_CONFIG_HOME").map_or_else(|| home.join(".config"), PathBuf::from),
        PathBuf::from("/etc"),
        std::env::var_os("XDG_DATA_HOME").map_or_else(|| home.join(".local/share"), PathBuf::from),
    ];
    roots.extend(env_dirs("XDG_CONFIG_DIRS", "/etc/xdg"));
    roots.extend(env_dirs("XDG_DATA_DIRS", "/usr/local/share:/usr/share"));
    roots.iter().any(|root| {
        std::fs::read_dir(root.join("vulkan/icd.d")).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "json"))
        })
    })
}

/// Whisper's encoder frames per second of audio (1500 frames = 30 s).
const AUDIO_CTX_PER_SEC: f64 = 50.0;
const FULL_AUDIO_CTX: i32 = 1500;

#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    #[error("no model '{name}': looked for {}; get one with e.g. `curl -LO https://huggingface.co/ggerganov/whisper.cpp/resolve/main/ggml-tiny.en.bin` into {}", .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "), model_dir().map_or_else(|| "your model directory".to_owned(), |d| d.display().to_string()))]
    ModelNotFound {
        name: String,
        searched: Vec<PathBuf>,
    },
    #[error("cannot load model {path}: {reason}")]
    ModelLoad { path: PathBuf, reason: String },
    #[error("cannot set up a decoder: {0}")]
    State(String),
    #[error("transcription failed: {0}")]
    Decode(String),
}

/// The directory where model names are looked up: `$CANDYBAR_MODEL_DIR`, else the platform's
/// data dir (`~/.local/share/candybar/models` on Linux).
pub fn model_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("CANDYBAR_MODEL_DIR") {
        return Some(PathBuf::from(d));
    }
    directories::ProjectDirs::from("", "", "candybar").map(|d| d.data_dir().join("models"))
}

/// A model given as a path, or as a name in the model dir (`tiny.en`, `ggml-tiny.en`,
/// `ggml-tiny.en.bin`).
pub fn resolve_model(name_or_path: &str) -> Result<PathBuf, AsrError> {
    let direct = PathBuf::from(name_or_path);
    if direct.is_file() {
        return Ok(direct);
    }
    let mut searched = vec![direct];
    if let Some(dir) = model_dir() {
        let base = name_or_path.trim_end_matches(".bin");
        for candidate in [
            format!("{base}.bin"),
            format!("ggml-{base}.bin"),
            name_or_path.to_owned(),
        ] {
            let p = dir.join(candidate);
            if p.is_file() {
                return Ok(p);
            }
            if !searched.contains(&p) {
                searched.push(p);
            }
        }
    }
    Err(AsrError::ModelNotFound {
        name: name_or_path.to_owned(),
        searched,
    })
}

/// The ggml model files in the model dir, sorted.
pub fn list_models() -> Vec<PathBuf> {
    let Some(dir) = model_dir() else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "bin"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// A loaded model, shared by workers.
pub struct Engine {
    ctx: WhisperContext,
    path: PathBuf,
    multilingual: bool,
}

impl Engine {
    pub fn load(path: &Path) -> Result<Self, AsrError> {
        static HOOKS: Once = Once::new();
        HOOKS.call_once(whisper_rs::install_logging_hooks);
        let shown = path.to_path_buf();
        let path_str = path.to_str().ok_or_else(|| AsrError::ModelLoad {
            path: shown.clone(),
            reason: "path is not UTF-8".into(),
        })?;
        let ctx = WhisperContext::new_with_params(path_str, WhisperContextParameters::default())
            .map_err(|e| AsrError::ModelLoad {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        let multilingual = ctx.is_multilingual();
        Ok(Self {
            ctx,
            path: shown,
            multilingual,
        })
    }

    /// The model's file name without `.bin` (`ggml-tiny.en`).
    pub fn name(&self) -> String {
        self.path
            .file_stem()
            .map_or_else(|| "model".to_owned(), |s| s.to_string_lossy().into_owned())
    }

    /// Whether the model knows languages other than English (`ggml-tiny.bin`, not `tiny.en`).
    pub fn multilingual(&self) -> bool {
        self.multilingual
    }

    /// A decoding state with its buffers; keep it and reuse it.
    pub fn worker(&self, threads: usize) -> Result<Worker, AsrError> {
        let state = self
            .ctx
            .create_state()
            .map_err(|e| AsrError::State(e.to_string()))?;
        Ok(Worker {
            state,
            threads: threads.max(1),
            multilingual: self.multilingual,
        })
    }
}

/// One recognized segment.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Segment {
    pub text: String,
    pub start_ms: u64,
    pub end_ms: u64,
    /// Mean log probability of its text tokens (Whisper's `avg_logprob`).
    pub avg_logprob: f32,
    /// The model's belief that the segment's audio holds no speech, 0..1.
    pub no_speech_prob: f32,
    /// Bytes of text over bytes deflated: repetition loops score high (Whisper's
    /// `compression_ratio`).
    pub compression_ratio: f32,
}

/// A word of the transcript and where it sits in the audio (from token timestamps: ±100 ms).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Word {
    pub text: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// How to run one decode.
#[derive(Clone, Debug, Default)]
pub struct DecodeOptions {
    /// Text said just before this audio (the committed words): context for spelling and case.
    pub prompt: Option<String>,
    /// Set to stop the decode early (its result is then an error).
    pub abort: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Compute word times ([`Transcript::words`]).
    pub word_times: bool,
    /// Run the encoder over Whisper's whole 30 s window, as other engines do, instead of a
    /// context cut to the audio's length (the benchmark's like-for-like comparison).
    pub full_context: bool,
    /// The spoken language (ISO 639-1: `en`, `de`, …), `auto` to detect it, or a list
    /// (`de,fr,en`) to detect which of those it is; `None` is English for an English-only model
    /// and `auto` for a multilingual one. See [`check_language`].
    pub language: Option<String>,
}

/// Checks a requested language against the model and returns it normalized: `auto`, a known
/// ISO 639-1 code, or a list of them (`de,fr,en`: one of these), lowercase and without spaces
/// (Whisper's names, `german`, become codes); English only for an English-only model. The error
/// says what to do instead.
pub fn check_language(spec: &str, multilingual: bool) -> Result<String, String> {
    let spec = spec.trim().to_ascii_lowercase();
    if spec == "auto" {
        return Ok(spec);
    }
    let mut codes = Vec::new();
    for code in spec.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        // whisper-rs panics on a NUL byte; no language name is long.
        let known = (code.len() <= 20 && !code.contains('\0'))
            .then(|| whisper_rs::get_lang_id(code))
            .flatten()
            .and_then(whisper_rs::get_lang_str);
        let Some(known) = known else {
            return Err(format!(
                "unknown language code '{}': use an ISO 639-1 code such as en, de, fr, es, auto, \
                 or a list such as de,en",
                code.chars()
                    .filter(|c| !c.is_control())
                    .take(16)
                    .collect::<String>()
            ));
        };
        if !multilingual && known != "en" {
            return Err(format!(
                "language '{known}' needs a multilingual model: this one is English-only (a `.en` model); \
                 load e.g. ggml-tiny.bin or ggml-base.bin"
            ));
        }
        codes.push(known);
    }
    if codes.is_empty() {
        return Err("no language given: use an ISO 639-1 code such as en, or auto".into());
    }
    Ok(codes.join(","))
}

/// The English name Whisper gives a language code (`de` → `german`), for OpenAI's verbose
/// answers.
pub fn language_name(code: &str) -> &'static str {
    if code.contains('\0') {
        return "unknown";
    }
    whisper_rs::get_lang_id(code)
        .and_then(whisper_rs::get_lang_str_full)
        .unwrap_or("unknown")
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Transcript {
    pub text: String,
    /// Mean token probability of the text tokens, 0..1.
    pub confidence: f32,
    pub segments: Vec<Segment>,
    /// The words of `text` with their times; empty when the tokens could not be split into the
    /// same words as the text.
    pub words: Vec<Word>,
    pub audio_ms: u64,
    pub decode_ms: u64,
    /// The language decoded: the one asked for, or the one detected (`en` for English-only
    /// models).
    pub language: String,
    /// Segments left out as not speech ("you", `[BLANK_AUDIO]`, stock phrases over silence,
    /// loops: see [`candybar_core::asr::hallucination`]).
    pub dropped_segments: u32,
}

pub struct Worker {
    state: WhisperState,
    threads: usize,
    multilingual: bool,
}

impl Worker {
    /// Transcribes 16 kHz mono samples in -1..1 (English, greedy, deterministic).
    pub fn transcribe(&mut self, samples: &[f32]) -> Result<Transcript, AsrError> {
        self.transcribe_with(samples, &DecodeOptions::default())
    }

    #[allow(clippy::too_many_lines)] // one decode, its settings, then reading its result
    pub fn transcribe_with(
        &mut self,
        samples: &[f32],
        opts: &DecodeOptions,
    ) -> Result<Transcript, AsrError> {
        let started = Instant::now();
        let audio_ms = samples.len() as u64 * 1000 / u64::from(SAMPLE_RATE_HZ);
        // whisper.cpp refuses less than a second; pad short clips with silence.
        let mut padded;
        let mut pcm = samples;
        if samples.len() < SAMPLE_RATE_HZ as usize + SAMPLE_RATE_HZ as usize / 10 {
            padded = samples.to_vec();
            padded.resize(SAMPLE_RATE_HZ as usize * 11 / 10, 0.0);
            pcm = &padded;
        }
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_n_threads(i32::try_from(self.threads).unwrap_or(1));
        let asked = match &opts.language {
            Some(spec) if self.multilingual => {
                Some(check_language(spec, true).map_err(AsrError::Decode)?)
            }
            _ => None,
        };
        let among;
        let language = match asked.as_deref() {
            _ if !self.multilingual => "en",
            None | Some("auto") => "auto",
            Some(list) if list.contains(',') => {
                among = self.detect_among(pcm, list)?;
                among.as_str()
            }
            Some(code) => code,
        };
        params.set_language(Some(language));
        params.set_translate(false);
        params.set_no_context(true);
        params.set_temperature(0.0);
        params.set_temperature_inc(0.0);
        params.set_suppress_blank(true);
        // Music signs, brackets and the like, as OpenAI's Whisper suppresses them by default.
        params.set_suppress_nst(true);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        params.set_audio_ctx(if opts.full_context {
            FULL_AUDIO_CTX
        } else {
            audio_ctx_for(pcm.len())
        });
        params.set_token_timestamps(opts.word_times);
        // Whisper reads at most 224 tokens of prompt; whisper-rs panics on a NUL byte.
        let prompt: Option<String> = opts
            .prompt
            .as_deref()
            .map(|p| p.chars().filter(|&c| c != '\0').take(1000).collect());
        if let Some(prompt) = prompt.as_deref().filter(|p| !p.is_empty()) {
            params.set_initial_prompt(prompt);
        }
        if let Some(flag) = &opts.abort {
            // SAFETY: the user data is the flag's address; `opts` keeps the flag alive until
            // `full` below returns, and `abort_requested` only reads it atomically.
            #[allow(unsafe_code)]
            unsafe {
                params.set_abort_callback(Some(abort_requested));
                params.set_abort_callback_user_data(
                    std::sync::Arc::as_ptr(flag)
                        .cast_mut()
                        .cast::<std::ffi::c_void>(),
                );
            }
        }
        self.state
            .full(params, pcm)
            .map_err(|e| AsrError::Decode(e.to_string()))?;

        let mut text = String::new();
        let mut segments = Vec::new();
        let mut words: Vec<Word> = Vec::new();
        let (mut prob_sum, mut prob_n) = (0.0f32, 0u32);
        let mut dropped_segments = 0u32;
        for seg in self.state.as_iter() {
            // What this segment adds, taken back if it is judged not speech.
            let (words_before, sum_before, n_before) = (words.len(), prob_sum, prob_n);
            let seg_text = seg
                .to_str_lossy()
                .map_err(|e| AsrError::Decode(e.to_string()))?
                .trim()
                .to_owned();
            let (mut seg_logprob, mut seg_tokens) = (0.0f32, 0u32);
            for t in 0..seg.n_tokens() {
                let Some(tok) = seg.get_token(t) else {
                    continue;
                };
                let is_text = tok
                    .to_str_lossy()
                    .is_ok_and(|s| !s.starts_with("[_") && !s.starts_with("<|"));
                if is_text {
                    prob_sum += tok.token_probability();
                    prob_n += 1;
                    seg_logprob += tok.token_data().plog;
                    seg_tokens += 1;
                    let piece = tok
                        .to_str_lossy()
                        .map(std::borrow::Cow::into_owned)
                        .unwrap_or_default();
                    let data = tok.token_data();
                    let (t0, t1) = (
                        u64::try_from(data.t0).unwrap_or(0) * 10,
                        u64::try_from(data.t1).unwrap_or(0) * 10,
                    );
                    // A token that begins with a space begins a word.
                    match words.last_mut() {
                        Some(w) if !piece.starts_with(' ') => {
                            w.text.push_str(&piece);
                            w.end_ms = w.end_ms.max(t1);
                        }
                        _ => {
                            if !piece.trim().is_empty() {
                                words.push(Word {
                                    text: piece.trim_start().to_owned(),
                                    start_ms: t0,
                                    end_ms: t1,
                                });
                            }
                        }
                    }
                }
            }
            if seg_text.is_empty() {
                continue;
            }
            let avg_logprob = if seg_tokens == 0 {
                0.0
            } else {
                seg_logprob / seg_tokens as f32
            };
            let compression_ratio = compression_ratio(&seg_text);
            let no_speech_prob = seg.no_speech_probability();
            let verdict = hallucination::judge(&SegmentQuality {
                text: &seg_text,
                no_speech_prob,
                avg_logprob,
                compression_ratio,
            });
            if verdict != Verdict::Speech {
                tracing::debug!("left out {seg_text:?}: {verdict:?}");
                dropped_segments += 1;
                words.truncate(words_before);
                (prob_sum, prob_n) = (sum_before, n_before);
                continue;
            }
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&seg_text);
            segments.push(Segment {
                text: seg_text,
                start_ms: u64::try_from(seg.start_timestamp()).unwrap_or(0) * 10,
                end_ms: (u64::try_from(seg.end_timestamp()).unwrap_or(0) * 10).min(audio_ms.max(1)),
                avg_logprob,
                no_speech_prob,
                compression_ratio,
            });
        }
        let confidence = if prob_n == 0 {
            0.0
        } else {
            (prob_sum / prob_n as f32).clamp(0.0, 1.0)
        };
        // Words as the commit policy counts them (punctuation-only tokens are not words).
        words.retain(|w| !candybar_core::asr::wer::words(&w.text).is_empty());
        if !opts.word_times || words.len() != candybar_core::asr::wer::words(&text).len() {
            words.clear();
        }
        let language = if language == "auto" {
            whisper_rs::get_lang_str(self.state.full_lang_id_from_state())
                .unwrap_or("en")
                .to_owned()
        } else {
            language.to_owned()
        };
        Ok(Transcript {
            text,
            confidence,
            segments,
            words,
            audio_ms,
            decode_ms: started.elapsed().as_millis() as u64,
            language,
            dropped_segments,
        })
    }
}

/// Whisper's `compression_ratio`: text bytes over their deflated size (repetition loops, a
/// sign of hallucination, compress well and score above ~2.4).
pub fn compression_ratio(text: &str) -> f32 {
    use std::io::Write as _;
    if text.is_empty() {
        return 0.0;
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let packed = z
        .write_all(text.as_bytes())
        .and_then(|()| z.finish())
        .map_or(text.len(), |v| v.len());
    text.len() as f32 / packed.max(1) as f32
}

impl Worker {
    /// Which of the languages in `list` (`de,fr,en`) `pcm` is most likely spoken in: Whisper's
    /// language detection, its probabilities read only for those. Costs what `auto` costs (one
    /// encoder pass before the decode), and cannot pick a language the speaker does not speak.
    fn detect_among(&mut self, pcm: &[f32], list: &str) -> Result<String, AsrError> {
        self.state
            .pcm_to_mel(pcm, self.threads)
            .map_err(|e| AsrError::Decode(e.to_string()))?;
        let (_, probs) = self
            .state
            .lang_detect(0, self.threads)
            .map_err(|e| AsrError::Decode(e.to_string()))?;
        list.split(',')
            .map(str::trim)
            .filter_map(|code| {
                let id = whisper_rs::get_lang_id(code)?;
                Some((code, *probs.get(usize::try_from(id).ok()?)?))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(code, _)| code.to_owned())
            .ok_or_else(|| AsrError::Decode(format!("no known language in '{list}'")))
    }
}

/// whisper.cpp asks this between steps of a decode whether to stop. whisper-rs 0.16's safe
/// wrapper for it is unsound (it casts its boxed closure to the wrong type and aborts decodes at
/// random), hence this one `unsafe` function: `data` is an `AtomicBool` (see `transcribe_with`).
#[allow(unsafe_code)]
unsafe extern "C" fn abort_requested(data: *mut std::ffi::c_void) -> bool {
    if data.is_null() {
        return false;
    }
    // SAFETY: `data` points at the `AtomicBool` of `DecodeOptions::abort`, alive for the decode.
    let flag = unsafe { &*data.cast::<std::sync::atomic::AtomicBool>() };
    flag.load(std::sync::atomic::Ordering::Relaxed)
}

/// Encoder context for `samples` of audio: 50 frames a second plus a margin, at most the full
/// 30 s window. Shorter contexts cost less (the encoder dominates on short clips).
pub fn audio_ctx_for(samples: usize) -> i32 {
    let secs = samples as f64 / f64::from(SAMPLE_RATE_HZ);
    ((secs * AUDIO_CTX_PER_SEC) as i32 + 128).clamp(256, FULL_AUDIO_CTX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_ctx_follows_length() {
        assert_eq!(audio_ctx_for(16_000), 256);
        assert_eq!(audio_ctx_for(16_000 * 10), 628);
        assert_eq!(audio_ctx_for(16_000 * 60), 1500);
    }

    #[test]
    fn languages_are_checked_and_normalized() {
        assert_eq!(check_language(" DE , en", true).as_deref(), Ok("de,en"));
        assert_eq!(check_language("German", true).as_deref(), Ok("de"));
        assert_eq!(check_language("auto", false).as_deref(), Ok("auto"));
        assert!(
            check_language("de", false)
                .unwrap_err()
                .contains("multilingual")
        );
        assert!(
            check_language("d\0e", true)
                .unwrap_err()
                .contains("unknown language")
        );
        assert!(check_language(&"x".repeat(10_000), true).is_err());
        assert!(check_language(" , ", true).is_err());
    }

    #[test]
    fn missing_models_say_where_they_were_looked_for() {
        let e = resolve_model("no-such-model").unwrap_err().to_string();
        assert!(
            e.contains("no model 'no-such-model'") && e.contains("ggml-no-such-model.bin"),
            "{e}"
        );
    }
}
