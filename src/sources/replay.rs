//! NDJSON replay: our export format (or bare event bodies, one per line) at the original pace,
//! N times faster, or as fast as the consumer takes them.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use super::{SourceHandle, SourceMsg, SourceState, SourceTx};
use crate::core::export::{LineError, read_ndjson_line};
use crate::core::time::{Micros, now_us};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// The gaps between the events' receive times, divided by the factor (1.0 = original pace).
    Speed(f64),
    /// No waiting.
    AsFastAsPossible,
}

#[derive(Clone, Debug)]
pub struct ReplayConfig {
    pub path: PathBuf,
    pub pace: Pace,
    pub body_cap_bytes: usize,
}

#[must_use]
pub fn spawn(cfg: ReplayConfig) -> SourceHandle {
    let describe = format!("replay of {}", cfg.path.display());
    SourceHandle::spawn(describe, move |tx| run(cfg, tx))
}

async fn run(cfg: ReplayConfig, tx: SourceTx) {
    let file = match tokio::fs::File::open(&cfg.path).await {
        Ok(f) => f,
        Err(err) => {
            let reason = format!("cannot open {}: {err}", cfg.path.display());
            let _ = tx
                .send(SourceMsg::State(SourceState::Retrying {
                    reason,
                    retry_in: Duration::MAX,
                    permanent: true,
                }))
                .await;
            return;
        }
    };
    let detail = format!("replaying {}", cfg.path.display());
    if tx
        .send(SourceMsg::State(SourceState::Connected { detail }))
        .await
        .is_err()
    {
        return;
    }
    let mut lines = BufReader::with_capacity(1 << 20, file).split(b'\n');
    let started = tokio::time::Instant::now();
    let mut first_us: Option<Micros> = None;
    let mut line_no = 0u64;
    loop {
        let line = match lines.next_segment().await {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(err) => {
                tracing::warn!(
                    "replay stopped reading {} at line {line_no}: {err}",
                    cfg.path.display()
                );
                break;
            }
        };
        line_no += 1;
        let mut msg = match read_ndjson_line(&line, now_us()) {
            Ok(m) => m,
            Err(LineError::Empty) => continue,
            Err(err) => {
                tracing::warn!("{} line {line_no}: {err}; skipped", cfg.path.display());
                continue;
            }
        };
        msg.cap_body(cfg.body_cap_bytes);
        if let Pace::Speed(factor) = cfg.pace {
            let first = *first_us.get_or_insert(msg.received_us);
            let offset_us = ((msg.received_us - first).max(0) as f64 / factor.max(1e-6)).min(1e15);
            let due = started + Duration::from_micros(offset_us as u64);
            tokio::time::sleep_until(due).await;
        }
        if tx.send(SourceMsg::Event(msg)).await.is_err() {
            return;
        }
    }
    let _ = tx.send(SourceMsg::State(SourceState::Finished)).await;
}
