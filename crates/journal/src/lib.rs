//! candybar's event journal: every event candybar receives, kept on disk.
//!
//! A journal is a directory of append-only segments of zstd-compressed, checksummed blocks
//! ([`format`]). One [`JournalWriter`] at a time holds the directory's lock (the recorder, or the
//! window when no recorder runs); any number of [`JournalReader`]s read it, also while it grows.
//!
//! - Crash safety: a block is written whole and synced within [`JournalConfig::sync_every`];
//!   a `kill -9` loses only the block being filled, a power cut also what was written since the
//!   last sync. A torn or damaged block is found by its length or checksum, reported once, and
//!   skipped; the rest stays readable.
//! - Duplicates (at-least-once delivery, overlapping backfills) are kept once, by event id,
//!   within the last [`JournalConfig::dedup_window`] events.
//! - A full disk pauses writing (nothing written is touched) until space returns.
//! - Retention by age and size drops whole segments, oldest first.

pub mod format;
pub mod fuzzing;
pub mod index;
mod reader;
mod writer;

use std::path::PathBuf;
use std::time::Duration;

pub use format::{Entry, Keep, KeepAll};
pub use index::{BlockIndex, Tallies};
pub use reader::{BlockRef, Damage, JournalReader};
pub use writer::{Appended, JournalWriter, Notice};

/// Where and how a journal is kept.
#[derive(Clone, Debug)]
pub struct JournalConfig {
    pub dir: PathBuf,
    /// Segments whose newest event is older than this are dropped.
    pub max_age: Option<Duration>,
    /// The journal is kept under this many bytes by dropping its oldest segments.
    pub max_bytes: Option<u64>,
    /// A segment is closed and the next begun past this size.
    pub segment_bytes: u64,
    /// A block is sealed (compressed and written) at this many entries…
    pub block_entries: u32,
    /// …or this many uncompressed bytes…
    pub block_bytes: usize,
    /// …or when its first entry is this old…
    pub block_age: Duration,
    /// …or before an entry would stretch its receive times over more than this (an import or
    /// a backfill writes hours in a moment: a block stays one stretch of time, so reading one
    /// moment, or counting per hour, reads only the blocks that hold it).
    pub block_span: Duration,
    /// Written blocks are synced to the disk at least this often (and acknowledged to the
    /// source then).
    pub sync_every: Duration,
    /// How many recent event ids are remembered to drop duplicates.
    pub dedup_window: usize,
    /// The backlog kept in memory while the disk is full before the writer asks its source to
    /// wait.
    pub backlog_bytes: usize,
}

impl JournalConfig {
    #[must_use]
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            max_age: None,
            max_bytes: None,
            segment_bytes: 64 << 20,
            block_entries: 1024,
            block_bytes: 1 << 20,
            block_age: Duration::from_millis(50),
            block_span: Duration::from_mins(1),
            sync_every: Duration::from_millis(50),
            dedup_window: 262_144,
            backlog_bytes: 64 << 20,
        }
    }

    /// The defaults, kept within `retention` (`[journal] max_age` / `max_size_mb`).
    #[must_use]
    pub fn retained(dir: PathBuf, retention: candybar_core::config::Retention) -> Self {
        Self {
            max_age: Some(Duration::from_micros(retention.max_age_us.max(0) as u64)),
            max_bytes: Some(retention.max_bytes),
            ..Self::new(dir)
        }
    }
}

/// What stops a journal from being opened or read. Each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("the journal {path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("the journal {path} does not exist (record into it first: `candybar record`)")]
    Missing { path: PathBuf },
    #[error("cannot use the journal {path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error(
        "{path} was written by a newer candybar (journal format {found}; this one reads up to {supported}): update candybar, or point it at another journal"
    )]
    Newer {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("another candybar{holder} is writing the journal {path}; it is read from there")]
    Locked { path: PathBuf, holder: String },
}

impl JournalError {
    fn io(path: impl Into<PathBuf>, e: &std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            reason: e.to_string(),
        }
    }
}

/// The lock file a writer holds.
pub const LOCK_FILE: &str = "writer.lock";

/// Whether a writer holds the journal at `dir` now, and its description (`candybar record`,
/// pid) when it said.
#[must_use]
pub fn writer_of(dir: &std::path::Path) -> Option<String> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new().read(true).open(&path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(std::fs::TryLockError::WouldBlock) => Some(
            std::fs::read_to_string(&path)
                .unwrap_or_default()
                .trim()
                .to_owned(),
        ),
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}
