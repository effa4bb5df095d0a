//! Dictation: speech from a microphone or a file, streamed to an ASR server, kept and delivered.
//!
//! - [`client`]: the WebSocket client for our `/asr` protocol and WhisperLiveKit's, with
//!   reconnects that lose no audio.
//! - [`history`]: every final transcript in SQLite (full-text search) and the outbox of
//!   deliveries that wait to be retried.
//! - [`outputs`]: webhook and bus deliveries from the outbox.

pub mod capture;
pub mod client;
pub mod history;
pub mod outputs;
pub mod resample;
