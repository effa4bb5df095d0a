//! The demo source: the simulator of [`crate::core::demo`] paced in real time.

use std::time::Duration;

use super::{SourceHandle, SourceMsg, SourceState, SourceTx};
use crate::core::demo::{Demo, DemoConfig};
use crate::core::registry::Registry;
use crate::core::time::now_us;

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
    let tick = Duration::from_millis(10);
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let per_tick = cfg.rate_per_sec.max(0.0) * tick.as_secs_f64();
    let mut owed = 0.0;
    let mut sent = 0u64;
    loop {
        interval.tick().await;
        owed += per_tick;
        while owed >= 1.0 {
            owed -= 1.0;
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
