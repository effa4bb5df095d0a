//! The demo source: the simulator of [`candybar_core::demo`] paced in real time.

use std::time::Duration;

use candybar_core::demo::{Demo, DemoConfig};
use candybar_core::registry::Registry;
use candybar_core::time::now_us;

use super::{SourceHandle, SourceMsg, SourceState, SourceTx};

#[derive(Clone, Debug)]
pub struct DemoSourceConfig {
    pub demo: DemoConfig,
    /// Events per second (fractions allowed).
    pub rate_per_sec: f64,
    /// Stop after this many events.
    pub limit: Option<u64>,
}

impl Default for DemoSourceConfig {
    fn default() -> Self {
        Self {
            demo: DemoConfig::default(),
            rate_per_sec: 40.0,
            limit: None,
        }
    }
}

#[must_use]
pub fn spawn(cfg: DemoSourceConfig, registry: Registry) -> SourceHandle {
    let describe = format!(
        "demo feed ({:.0} events/s, seed {})",
        cfg.rate_per_sec, cfg.demo.seed
    );
    SourceHandle::spawn(describe.clone(), move |tx| run(cfg, registry, describe, tx))
}

async fn run(cfg: DemoSourceConfig, registry: Registry, describe: String, tx: SourceTx) {
    let mut demo = Demo::new(cfg.demo.clone(), &registry);
    if tx
        .send(SourceMsg::State(SourceState::Connected {
            detail: describe,
        }))
        .await
        .is_err()
    {
        return;
    }
    let rate = cfg.rate_per_sec.max(0.0);
    if rate <= 0.0 {
        // A silent feed: nothing to pace, so no timer waking the process.
        tx.closed().await;
        return;
    }
    // One tick per event at low rates (no idle wake-ups), every 10 ms at high ones.
    let tick = Duration::from_secs_f64((1.0 / rate).clamp(0.01, 1.0));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Pace by the clock, not by ticks: a late tick (a busy machine) sends what is owed, so the
    // rate holds. A backlog is capped at a second's worth so a stall does not turn into a flood.
    let start = tokio::time::Instant::now();
    let mut scheduled = 0u64; // events the clock has asked for so far (less skipped backlog)
    let mut sent = 0u64;
    loop {
        interval.tick().await;
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        if due.saturating_sub(scheduled) > rate as u64 + 1 {
            scheduled = due - rate as u64;
        }
        while scheduled < due {
            scheduled += 1;
            if cfg.limit.is_some_and(|l| sent >= l) {
                let _ = tx.send(SourceMsg::State(SourceState::Finished)).await;
                return;
            }
            if tx
                .send(SourceMsg::Event(demo.next_message(now_us())))
                .await
                .is_err()
            {
                return;
            }
            sent += 1;
        }
    }
}
