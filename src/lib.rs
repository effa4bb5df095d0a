//! candybar: a live view of an event-driven agent platform, and a way to talk to it.
//!
//! # Layout
//! - [`core`]: event model, the one envelope decoder, the event store, the filter language,
//!   aggregates, the service flow graph, the agents and who works with whom, the force
//!   layout — no UI, no async runtime, no sockets.
//! - [`sources`]: where events come from (`RabbitMQ`, NDJSON replay, the demo simulator), each
//!   feeding a bounded channel.
//! - [`asr`]: speech to text: the Whisper engine, model lookup, audio input, word error rate.
//! - [`voice`]: dictation: the ASR client (our `/asr` protocol and WhisperLiveKit's), the
//!   transcript history (SQLite, full-text search) and its outbox, the outputs (webhook, bus,
//!   clipboard, typing), the microphone, the global hotkey and the app's dictation worker.
//! - [`live`]: one source feeding one store — the model the window reads.
//! - [`ui`]: the window (eframe/egui on wgpu): the Stream, Flow, Charts, Health, Agents (the
//!   constellation, drawn with its own WGSL shaders) and Dictation views, the detail pane, export.
//! - [`secrets`]: tokens from the environment, the OS keychain, or a user-only file.
//! - [`config`]: configuration from file, environment and flags; secret masking.
//! - [`instance`]: one candybar per user; a local socket takes requests from a second launch.
//! - [`cli`]: the `candybar` command line (`tail`, `publish`, `bench`, …).
//!
//! Data flows one way: sources → channel → [`core::store::EventStore`] → views.

pub mod asr;
pub mod autostart;
pub mod cli;
pub mod config;
pub mod core;
pub mod instance;
pub mod live;
pub mod secrets;
pub mod sources;
pub mod ui;
pub mod voice;
