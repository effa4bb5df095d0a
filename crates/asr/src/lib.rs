//! candybar's speech to text: the Whisper engine (whisper.cpp through whisper-rs) and the `/asr`
//! WebSocket server (`candybar asr serve`). The protocol, the streaming policy, VAD and WER are
//! in [`candybar_core::asr`], shared with the client in the voice crate.
//!
//! # Layout
//! - [`engine`]: models (lookup, loading), one decode state per worker, decode options.
//! - [`server`]: the axum server: `/asr`, `/health`, `/models`, `/status`, `/metrics`, and the
//!   OpenAI-compatible `/v1/audio/transcriptions` and `/v1/models`.
//! - [`media`]: uploaded audio files of any common kind, decoded to 16 kHz mono.
//! - [`models`]: the catalogue, the installed models, downloads (resumed, checked).
//! - [`quantize`]: a model's weights to `Q8_0` (whisper.cpp's format), on this machine.
//! - [`opus`]: Opus (browsers' WebM recordings, Ogg voice notes) to 16 kHz mono.
//! - [`wav`]: 16 kHz mono WAV files.

pub mod engine;
pub mod media;
pub mod models;
pub mod opus;
pub mod quantize;
pub mod server;
pub mod wav;
