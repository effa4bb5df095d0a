//! NDJSON replay: our export format (or bare event bodies, one per line) at the original pace,
//! N times faster, or as fast as the consumer takes them.

use std::path::PathBuf;
use std::time::Duration;

use candybar_core::export::{LineError, Record, read_ndjson_line};
use candybar_core::time::{Micros, now_us};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

use super::{SourceHandle, SourceMsg, SourceState, SourceTx};

/// The longest line a replay reads (an event and its body, as exported). Longer lines are
/// skipped with a warning instead of growing memory without bound (`--replay /dev/zero`).
pub const MAX_LINE_BYTES: usize = 64 << 20;

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
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let started = tokio::time::Instant::now();
    let mut first_us: Option<Micros> = None;
    let mut line_no = 0u64;
    let mut line = Vec::new();
    loop {
        match read_capped_line(&mut reader, &mut line, MAX_LINE_BYTES).await {
            Ok(Line::Read) => {}
            Ok(Line::End) => break,
            Ok(Line::TooLong { bytes }) => {
                // Not an NDJSON file (a device, a binary): stop rather than read on forever.
                tracing::warn!(
                    "{} line {} is {bytes} bytes or more, over the {} MiB a replay line may \
                     have; the replay stops there (is it an NDJSON file?)",
                    cfg.path.display(),
                    line_no + 1,
                    MAX_LINE_BYTES >> 20
                );
                break;
            }
            Err(err) => {
                tracing::warn!(
                    "replay stopped reading {} at line {line_no}: {err}",
                    cfg.path.display()
                );
                break;
            }
        }
        line_no += 1;
        let mut msg = match read_ndjson_line(&line, now_us()) {
            Ok(Record::Event(m)) => m,
            // A time nothing was received (`query --gaps`): shown where it was.
            Ok(Record::Gap(g)) => {
                let gap = SourceMsg::Gap {
                    start_us: g.start_us,
                    end_us: g.end_us,
                    reason: g.reason,
                    lossless: g.lossless,
                };
                if tx.send(gap).await.is_err() {
                    return;
                }
                continue;
            }
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

/// What [`read_capped_line`] found.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A line (without its newline) is in the buffer.
    Read,
    /// The line is longer than the cap: reading stopped there (`bytes` read of it so far).
    TooLong {
        bytes: usize,
    },
    End,
}

/// Reads one line into `buf` (cleared first), stopping when it would hold more than `cap`
/// bytes: a line that never ends (`/dev/zero`) cannot fill memory or keep the reader busy.
async fn read_capped_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<Line> {
    buf.clear();
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(if buf.is_empty() {
                Line::End
            } else {
                Line::Read
            });
        }
        let (take, done) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        if buf.len() + take > cap {
            return Ok(Line::TooLong {
                bytes: buf.len() + take,
            });
        }
        buf.extend_from_slice(&chunk[..take]);
        reader.consume(if done { take + 1 } else { take });
        if done {
            return Ok(Line::Read);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_read_until_one_is_over_the_cap() {
        let input = [b"short\nlast".as_slice(), b"\n", &[b'x'; 100], b"\nnever"].concat();
        let mut reader = BufReader::with_capacity(16, input.as_slice());
        let mut buf = Vec::new();
        let mut got = Vec::new();
        loop {
            match read_capped_line(&mut reader, &mut buf, 50).await.unwrap() {
                Line::End => break,
                Line::Read => got.push(String::from_utf8(buf.clone()).unwrap()),
                Line::TooLong { bytes } => {
                    got.push(format!("too long at {bytes}"));
                    break;
                }
            }
        }
        assert_eq!(got[..2], ["short", "last"]);
        assert!(got[2].starts_with("too long at "), "{got:?}");
        assert_eq!(got.len(), 3);
        assert!(buf.len() <= 50);
    }
}
