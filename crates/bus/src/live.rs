//! The live model the window reads: one source feeding one [`EventStore`]. Draining is bounded by
//! a time budget so a flood never holds up a frame; whatever is left waits in the source's bounded
//! channel (and, for `RabbitMQ`, in the broker behind the prefetch window).

use std::time::{Duration, Instant};

use candybar_core::store::{EventStore, StoreConfig};
use candybar_core::time::{MICROS_PER_SEC, Micros, now_us};
use tokio::sync::mpsc::error::TryRecvError;

use crate::{SourceHandle, SourceMsg, SourceState};

/// What one [`Live::drain`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainReport {
    pub events: usize,
    /// Messages are still waiting (the budget ran out): ask for another frame.
    pub more: bool,
    /// The connection state or the gaps changed.
    pub changed: bool,
}

pub struct Live {
    pub store: EventStore,
    source: Option<SourceHandle>,
    /// What the source is, secrets masked (e.g. a `RabbitMQ` URL with `***` for the password).
    pub describe: String,
    /// Why the demo feed is shown, when it is.
    pub demo_reason: Option<String>,
    pub state: SourceState,
    pub state_since: Instant,
    /// The channel closed: the source task ended (replay done, or it failed for good).
    pub ended: bool,
    /// Largest receive time seen (the newest event).
    pub newest_received_us: Option<Micros>,
}

impl Live {
    #[must_use]
    pub fn new(config: StoreConfig) -> Self {
        Self {
            store: EventStore::new(config),
            source: None,
            describe: "no source".into(),
            demo_reason: None,
            state: SourceState::Connecting { attempt: 0 },
            state_since: Instant::now(),
            ended: false,
            newest_received_us: None,
        }
    }

    /// Replaces the source (the old one is stopped). Stored events stay.
    pub fn connect(&mut self, handle: SourceHandle, demo_reason: Option<String>) {
        self.describe.clone_from(&handle.describe);
        self.demo_reason = demo_reason;
        self.state = SourceState::Connecting { attempt: 0 };
        self.state_since = Instant::now();
        self.ended = false;
        self.source = Some(handle);
    }

    /// `wake` is called from a runtime thread when a message arrives while the window idles.
    pub fn set_waker(&self, wake: impl Fn() + Send + Sync + 'static) {
        if let Some(s) = &self.source {
            s.set_waker(wake);
        }
    }

    #[must_use]
    pub fn is_demo(&self) -> bool {
        self.demo_reason.is_some()
    }

    /// Moves what has arrived into the store, for at most `budget`.
    pub fn drain(&mut self, budget: Duration) -> DrainReport {
        let mut report = DrainReport::default();
        let Some(source) = &mut self.source else {
            return report;
        };
        // Re-arm first: a message sent while we drain wakes us again, never the other way round.
        source.rearm();
        let start = Instant::now();
        loop {
            let msg = match source.rx.try_recv() {
                Ok(m) => m,
                Err(TryRecvError::Empty) => {
                    // Nothing waiting: the store's compressor may pack a flood's blocks tighter.
                    self.store.tidy();
                    break;
                }
                Err(TryRecvError::Disconnected) => {
                    self.store.tidy();
                    if !self.ended {
                        self.ended = true;
                        report.changed = true;
                    }
                    break;
                }
            };
            match msg {
                SourceMsg::Event(m) => {
                    self.newest_received_us = Some(
                        self.newest_received_us
                            .map_or(m.received_us, |n| n.max(m.received_us)),
                    );
                    self.store.insert(&m);
                    report.events += 1;
                }
                SourceMsg::Gap {
                    start_us,
                    end_us,
                    reason,
                    lossless,
                } => {
                    self.store.record_gap(start_us, end_us, reason, lossless);
                    report.changed = true;
                }
                SourceMsg::State(state) => {
                    if state != self.state {
                        tracing::info!(
                            "source {}: {}",
                            self.describe,
                            candybar_core::redact::mask_secrets_in(&format!("{state:?}"))
                        );
                        self.state = state;
                        self.state_since = Instant::now();
                        report.changed = true;
                    }
                }
            }
            if report.events % 256 == 255 && start.elapsed() >= budget {
                report.more = !source.rx.is_empty();
                break;
            }
        }
        report
    }

    /// Events received per second, averaged over the last three whole seconds.
    #[must_use]
    pub fn rate_per_sec(&self) -> f64 {
        let now_sec = now_us().div_euclid(MICROS_PER_SEC);
        self.store.aggregates().rate.mean_per_sec(now_sec, 3)
    }

    /// Events received in the last 60 whole seconds.
    #[must_use]
    pub fn per_minute(&self) -> u64 {
        let now_sec = now_us().div_euclid(MICROS_PER_SEC);
        self.store
            .aggregates()
            .rate
            .window(now_sec, 60)
            .iter()
            .map(|&c| u64::from(c))
            .sum()
    }

    /// Time left before the source's next connection attempt, when it is retrying.
    #[must_use]
    pub fn retry_in(&self) -> Option<Duration> {
        match &self.state {
            // `Duration::MAX`: the source gave up (it needs a new setting).
            SourceState::Retrying { retry_in, .. } if *retry_in != Duration::MAX => {
                Some(retry_in.saturating_sub(self.state_since.elapsed()))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{self, DemoSourceConfig};
    use candybar_core::demo::DemoConfig;
    use candybar_core::registry::Registry;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drains_a_source_and_wakes_once_per_idle_period() {
        let mut live = Live::new(StoreConfig::default());
        let handle = demo::spawn(
            DemoSourceConfig {
                demo: DemoConfig::default(),
                rate_per_sec: 5_000.0,
                limit: Some(500),
            },
            Registry::example(),
        );
        live.connect(handle, Some("test".into()));
        let wakes = Arc::new(AtomicUsize::new(0));
        let w = wakes.clone();
        live.set_waker(move || {
            w.fetch_add(1, Ordering::Relaxed);
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !matches!(live.state, SourceState::Finished) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            live.drain(Duration::from_millis(5));
        }
        assert_eq!(live.store.len(), 500);
        assert!(matches!(live.state, SourceState::Finished));
        let n = wakes.load(Ordering::Relaxed);
        // ~100 ms of events drained every 20 ms: a handful of wakes, never one per event.
        assert!((1..=60).contains(&n), "{n} wakes for 500 events");
    }
}
