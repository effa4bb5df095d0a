//! candybar's dictation: speech from a microphone or a file, streamed to an ASR server, kept and
//! delivered. Never builds whisper.cpp: the built-in server runs as a child process.
//!
//! # Layout
//! - [`client`]: the WebSocket client for our `/asr` protocol and WhisperLiveKit's, with
//!   reconnects that lose no audio.
//! - [`history`]: every final transcript in SQLite (full-text search) and the outbox of
//!   deliveries that wait to be retried.
//! - [`outputs`]: webhook and bus deliveries from the outbox.
//! - [`capture`]: the microphone (cpal) on its own thread; [`resample`]: any rate to 16 kHz mono.
//! - [`system_audio`]: what the computer plays, or one application (PulseAudio's `parec`).
//! - [`dictation`]: the app's recordings: one worker that the hotkey, tray, socket and view ask.
//! - [`desktop`]: clipboard and typing into the focused window. [`hotkey`]: the global hotkey.
//! - [`speech`]: replies said aloud (espeak-ng or a speech API) on the output device.
//! - [`local_server`]: `candybar asr serve` as a child process the app starts, watches, restarts.
//!
//! What the views read of all this (status, transcripts, devices) is plain data in
//! [`candybar_core::voice`].

pub mod capture;
pub mod client;
pub mod desktop;
pub mod dictation;
pub mod history;
pub mod hotkey;
pub mod local_server;
pub mod outputs;
pub mod resample;
pub mod speech;
pub mod system_audio;
