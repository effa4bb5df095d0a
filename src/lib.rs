//! candybar: a live view of an event-driven agent platform, and a way to talk to it.
//!
//! This is the binary crate: the command line, settings, and the app that wires the workers
//! together. The parts live in their own crates (ARCHITECTURE.md says what each may depend on):
//! [`candybar_core`] (events, store, filter, registry, the `/asr` protocol — pure data),
//! [`candybar_bus`] (sources and publishing), [`candybar_asr`] (the Whisper engine and server),
//! [`candybar_voice`] (dictation), [`candybar_ui`] (the views).
//!
//! # Layout
//! - [`cli`]: the `candybar` command line (`tail`, `publish`, `asr`, `dictate`, …).
//! - [`app`]: the window's workers, commands applied in one place, the tray, the export writer.
//! - [`config`]: the config file and the environment. [`secrets`]: tokens in the keychain.
//! - [`instance`]: one candybar per user; the local socket a second launch talks to.
//! - [`talk`]: a conversation with the architect that ends in a spec (`talk`, the window).
//! - [`autostart`]: starting in the tray at login. [`procfs`]: a process's CPU time.
//! - `bench` (feature `bench`, on by default): `candybar bench …`, the README's figures.
//!
//! Data flows one way: sources → channel → [`candybar_core::store::EventStore`] → views.

pub mod app;
pub mod autostart;
#[cfg(feature = "bench")]
pub mod bench;
pub mod cli;
pub mod config;
pub mod instance;
pub mod mission;
pub mod pdf;
pub mod procfs;
pub mod secrets;
pub mod talk;

/// When this process was launched: now, or `CANDYBAR_LAUNCH_US` (microseconds since the epoch,
/// set by a launcher such as `candybar bench window`) when it is a plausible moment in the last
/// minute.
#[must_use]
pub fn launched_at() -> std::time::Instant {
    let now = std::time::Instant::now();
    let Some(launch_us) = std::env::var("CANDYBAR_LAUNCH_US")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
    else {
        return now;
    };
    let ago_us = candybar_core::time::now_us() - launch_us;
    if (0..60_000_000).contains(&ago_us) {
        now.checked_sub(std::time::Duration::from_micros(ago_us as u64))
            .unwrap_or(now)
    } else {
        now
    }
}
