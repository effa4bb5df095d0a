//! Speech to text: the Whisper engine (whisper.cpp through whisper-rs), model resolution, audio
//! input, and word error rate for measuring accuracy. The `/asr` WebSocket server builds on this.

pub mod audio;
pub mod engine;
pub mod protocol;
pub mod server;
pub mod streaming;
pub mod vad;
pub mod wer;
