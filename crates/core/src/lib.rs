//! candybar's core: pure data and algorithms. No UI, no async runtime, no sockets, no audio, no
//! databases (`.ci/check-layering` keeps it so), so everything here is unit-testable and
//! benchmarkable alone.
//!
//! # Layout
//! - [`event`]: the event model (raw message, decoded header, status, domain).
//! - [`decode`]: the one envelope decoder (Bloodbank v1, CloudEvents-style, AMQP properties).
//! - [`store`]: the event store (compact blocks, indexes, eviction), the model every view reads.
//! - [`filter`]: the one filter language (table, charts, export, `tail`).
//! - [`aggregates`]: running rates, histograms and top lists.
//! - [`registry`]: `registry.yaml`; [`glob`]: AMQP `*`/`#` patterns; [`flow`]: the service
//!   graph; [`health`]: endpoint probes and the health rules.
//! - [`agents`]: who works with whom; [`layout`]: the constellation's force layout.
//! - [`trace`]: one correlation id's or session's events as spans (a waterfall).
//! - [`demo`]: the deterministic platform simulator; [`export`]: NDJSON / JSON / CSV encoding.
//! - [`asr`]: the `/asr` protocol, streaming policy, VAD, WER; [`voice`]: dictation as the views
//!   see it.
//! - [`source`]: a source's connection state; [`redact`]: secrets kept out of logs and screens;
//!   [`text`]: outside text made safe to show (control characters escaped).
//! - [`config`]: the config file's model (TOML). [`intern`], [`time`]: interned strings,
//!   microsecond times.

pub mod agents;
pub mod aggregates;
pub mod asr;
pub mod config;
pub mod decode;
pub mod demo;
pub mod event;
pub mod export;
pub mod filter;
pub mod flow;
#[doc(hidden)]
pub mod fuzzing;
pub mod glob;
pub mod health;
pub mod intern;
pub mod layout;
pub mod mission;
pub mod redact;
pub mod registry;
pub mod source;
pub mod store;
pub mod text;
pub mod time;
pub mod trace;
pub mod voice;
