//! Writing a journal: one writer per directory, holding its lock.
//!
//! Entries go into an open block; a block is sealed (compressed, framed, checksummed) when it is
//! full or [`JournalConfig::block_age`] old, appended to the current segment, and synced within
//! [`JournalConfig::sync_every`]. [`JournalWriter::durable`] counts the events appended so far
//! that are safe on disk, which is when a source may acknowledge them to the broker.
//!
//! When a write fails (a full disk, say), the file is cut back to its last whole frame, the
//! sealed blocks wait in memory, the writer reports [`Notice::Paused`] and tries again every
//! second; [`JournalWriter::backpressure`] tells the caller to stop taking events once the
//! backlog reaches [`JournalConfig::backlog_bytes`].

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher as _, BuildHasherDefault, DefaultHasher};
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rustc_hash::FxHashSet;

use candybar_core::decode;
use candybar_core::event::RawMessage;
use candybar_core::time::{Micros, now_us};

use crate::format::{self, BlockBuilder, Entry, SEGMENT_HEADER_LEN, ZSTD_LEVEL};
use crate::reader::{Damage, JournalReader};
use crate::{JournalConfig, JournalError, LOCK_FILE};

/// What [`JournalWriter::append`] did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appended {
    Kept,
    /// An event with this id is already in the journal (within the dedup window).
    Duplicate,
}

/// Something the user should hear about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The last segment ended in a torn block (a crash while writing it); it was cut off.
    TornTail { segment: PathBuf, bytes: u64 },
    /// Part of the journal could not be read; the rest is fine.
    Damage(Damage),
    /// Writing stopped: nothing already written is touched; retried every second.
    Paused { reason: String },
    /// Writing works again; the events that waited are written.
    Resumed { after: Duration },
    /// A segment was dropped by retention.
    Dropped { segment: PathBuf, why: &'static str },
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TornTail { segment, bytes } => write!(
                f,
                "{}: the last block ({bytes} bytes) was torn by a crash while it was written; cut off",
                segment.display()
            ),
            Self::Damage(d) => write!(f, "damaged journal: {d}"),
            Self::Paused { reason } => write!(
                f,
                "recording paused: {reason}; nothing written is lost, retrying every second"
            ),
            Self::Resumed { after } => write!(
                f,
                "recording resumed after {:.1} s; the events that waited are written",
                after.as_secs_f64()
            ),
            Self::Dropped { segment, why } => {
                write!(f, "dropped {} ({why})", segment.display())
            }
        }
    }
}

struct ClosedSegment {
    path: PathBuf,
    bytes: u64,
    max_us: Option<Micros>,
}

struct Current {
    file: File,
    path: PathBuf,
    len: u64,
    max_us: Option<Micros>,
}

/// Counts for the status line and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub kept: u64,
    pub duplicates: u64,
    pub gaps: u64,
    /// Frame bytes written by this writer.
    pub bytes_written: u64,
}

pub struct JournalWriter {
    cfg: JournalConfig,
    _lock: File,
    current: Option<Current>,
    next_index: u64,
    closed: VecDeque<ClosedSegment>,
    block: BlockBuilder,
    block_started: Option<Instant>,
    /// Sealed frames not written yet, with the count of events appended when each was sealed.
    unwritten: VecDeque<(Vec<u8>, u64)>,
    unwritten_bytes: usize,
    accepted: u64,
    written_covers: u64,
    durable: u64,
    dirty: bool,
    last_sync: Instant,
    ids: FxHashSet<u64>,
    id_ring: VecDeque<u64>,
    paused: Option<(Instant, String)>,
    next_retry: Instant,
    last_retention: Instant,
    notices: Vec<Notice>,
    stats: WriterStats,
}

fn id_key(id: &str) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(id)
}

fn describe(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::StorageFull => "the disk is full".into(),
        std::io::ErrorKind::QuotaExceeded => "the disk quota is used up".into(),
        std::io::ErrorKind::ReadOnlyFilesystem => "the file system is read-only".into(),
        _ => e.to_string(),
    }
}

impl JournalWriter {
    /// Opens (creating it if needed) the journal at `cfg.dir` for writing. `who` goes into the
    /// lock file, for the message another writer gets.
    #[allow(clippy::too_many_lines)] // lock, recover, list, remember ids: in that order
    pub fn open(cfg: JournalConfig, who: &str) -> Result<Self, JournalError> {
        let dir = cfg.dir.clone();
        if dir.exists() && !dir.is_dir() {
            return Err(JournalError::NotADirectory { path: dir });
        }
        std::fs::create_dir_all(&dir).map_err(|e| JournalError::io(&dir, &e))?;
        let lock_path = dir.join(LOCK_FILE);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| JournalError::io(&lock_path, &e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
                let holder = holder.trim();
                return Err(JournalError::Locked {
                    path: dir,
                    holder: if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" ({holder})")
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(JournalError::io(&lock_path, &e)),
        }
        let _ = lock.set_len(0);
        let _ = write!(lock, "{who}, pid {}", std::process::id());
        let _ = lock.flush();

        let mut reader = JournalReader::open(&dir)?;
        let mut notices: Vec<Notice> = Vec::new();
        if let Some((path, at)) = reader.incomplete_tail().cloned() {
            // We hold the lock: nobody is writing that frame. Cut it off so the segment ends
            // whole (the next writer appends to a new segment anyway).
            let len = std::fs::metadata(&path).map_or(at, |m| m.len());
            if let Ok(f) = OpenOptions::new().write(true).open(&path)
                && f.set_len(at).and_then(|()| f.sync_all()).is_ok()
            {
                notices.push(Notice::TornTail {
                    segment: path,
                    bytes: len - at,
                });
            }
        }
        notices.extend(reader.new_damage().iter().cloned().map(Notice::Damage));
        let segments = reader.segments();
        let next_index = segments.last().map_or(1, |(i, _, _)| i + 1);
        let closed = segments
            .into_iter()
            .map(|(_, path, max_us)| ClosedSegment {
                bytes: std::fs::metadata(&path).map_or(0, |m| m.len()),
                path,
                max_us,
            })
            .collect();

        // The ids of the newest events, for dropping redeliveries and overlapping backfills.
        let mut newest_first = Vec::new();
        let blocks: Vec<_> = reader.blocks().rev().copied().collect();
        for b in blocks {
            if newest_first.len() >= cfg.dedup_window {
                break;
            }
            if let Some(entries) = reader.read(&b) {
                for e in entries.iter().rev() {
                    if let Entry::Event(m) = e
                        && let Some(id) = decode::decode(m).id
                    {
                        newest_first.push(id_key(&id));
                    }
                }
            }
        }
        notices.extend(reader.new_damage().iter().cloned().map(Notice::Damage));
        newest_first.truncate(cfg.dedup_window);
        let mut w = Self {
            _lock: lock,
            current: None,
            next_index,
            closed,
            block: BlockBuilder::default(),
            block_started: None,
            unwritten: VecDeque::new(),
            unwritten_bytes: 0,
            accepted: 0,
            written_covers: 0,
            durable: 0,
            dirty: false,
            last_sync: Instant::now(),
            ids: FxHashSet::default(),
            id_ring: VecDeque::with_capacity(cfg.dedup_window.min(1 << 20)),
            paused: None,
            next_retry: Instant::now(),
            last_retention: Instant::now(),
            notices,
            stats: WriterStats::default(),
            cfg,
        };
        for key in newest_first.into_iter().rev() {
            w.remember(key);
        }
        w.apply_retention(now_us());
        Ok(w)
    }

    fn remember(&mut self, key: u64) {
        if self.cfg.dedup_window == 0 || !self.ids.insert(key) {
            return;
        }
        self.id_ring.push_back(key);
        if self.id_ring.len() > self.cfg.dedup_window
            && let Some(old) = self.id_ring.pop_front()
        {
            self.ids.remove(&old);
        }
    }

    /// Adds an event. A duplicate (by event id) is counted and not kept.
    pub fn append(&mut self, m: &RawMessage) -> Appended {
        // Before this event counts as accepted: a block sealed now must not cover it.
        self.seal_if_stretched(m.received_us);
        self.accepted += 1;
        let decoded = decode::decode(m);
        if self.cfg.dedup_window > 0
            && let Some(id) = &decoded.id
        {
            let key = id_key(id);
            if self.ids.contains(&key) {
                self.stats.duplicates += 1;
                return Appended::Duplicate;
            }
            self.remember(key);
        }
        self.block.push_event(m, &decoded);
        self.stats.kept += 1;
        self.after_push();
        Appended::Kept
    }

    /// Records that nothing was received between `start_us` and `end_us`.
    pub fn append_gap(&mut self, start_us: Micros, end_us: Micros, reason: &str, lossless: bool) {
        self.seal_if_stretched(end_us);
        self.block.push_gap(start_us, end_us, reason, lossless);
        self.stats.gaps += 1;
        self.after_push();
    }

    /// Seals the open block when an entry at `time_us` would stretch it over more than
    /// [`JournalConfig::block_span`].
    fn seal_if_stretched(&mut self, time_us: Micros) {
        if self.block.is_empty() {
            return;
        }
        let span = i64::try_from(self.cfg.block_span.as_micros()).unwrap_or(i64::MAX);
        let (lo, hi) = (
            self.block.min_us.min(time_us),
            self.block.max_us.max(time_us),
        );
        if hi.saturating_sub(lo) > span {
            self.seal();
        }
    }

    fn after_push(&mut self) {
        if self.block_started.is_none() {
            self.block_started = Some(Instant::now());
        }
        if self.block.count >= self.cfg.block_entries
            || self.block.raw.len() >= self.cfg.block_bytes
        {
            self.seal();
        }
    }

    /// Compresses the open block and writes it (unless writing is paused).
    fn seal(&mut self) {
        self.block_started = None;
        if self.block.is_empty() {
            return;
        }
        match self.block.seal(ZSTD_LEVEL) {
            Ok(frame) => {
                self.unwritten_bytes += frame.len();
                self.unwritten.push_back((frame, self.accepted));
            }
            Err(e) => {
                // zstd failing to compress is an allocation failure; the entries are lost with
                // the block, and said so.
                self.notices.push(Notice::Paused {
                    reason: format!("cannot compress a block: {e}"),
                });
            }
        }
        if self.paused.is_none() {
            self.write_pending();
        }
    }

    fn write_pending(&mut self) {
        while let Some((frame, covers)) = self.unwritten.front() {
            let (frame_len, covers) = (frame.len() as u64, *covers);
            if let Err(reason) = self.ensure_segment(frame_len) {
                self.pause(reason);
                return;
            }
            let (Some(cur), Some((frame, _))) = (self.current.as_mut(), self.unwritten.front())
            else {
                return;
            };
            let block_max =
                format::read_block_header(&frame[format::FRAME_HEADER_LEN..]).map(|h| h.max_us);
            match cur.file.write_all(frame) {
                Ok(()) => {
                    cur.len += frame_len;
                    cur.max_us = cur.max_us.max(block_max);
                    self.written_covers = covers;
                    self.stats.bytes_written += frame_len;
                    self.dirty = true;
                    if let Some((frame, _)) = self.unwritten.pop_front() {
                        self.unwritten_bytes -= frame.len();
                    }
                    if let Some((since, _)) = self.paused.take() {
                        self.notices.push(Notice::Resumed {
                            after: since.elapsed(),
                        });
                    }
                }
                Err(e) => {
                    // Whatever part of the frame made it is cut off: the segment ends whole.
                    let _ = cur.file.set_len(cur.len);
                    self.pause(describe(&e));
                    return;
                }
            }
        }
    }

    fn pause(&mut self, reason: String) {
        self.next_retry = Instant::now() + Duration::from_secs(1);
        match &self.paused {
            Some((_, r)) if *r == reason => {}
            Some((since, _)) => {
                self.paused = Some((*since, reason.clone()));
                self.notices.push(Notice::Paused { reason });
            }
            None => {
                self.paused = Some((Instant::now(), reason.clone()));
                self.notices.push(Notice::Paused { reason });
            }
        }
    }

    /// A segment with room for `frame_len` more bytes (a new one when the current is full).
    fn ensure_segment(&mut self, frame_len: u64) -> Result<(), String> {
        if let Some(cur) = &self.current {
            if cur.len == SEGMENT_HEADER_LEN || cur.len + frame_len <= self.cfg.segment_bytes {
                return Ok(());
            }
            self.sync().map_err(|e| describe(&e))?;
            if let Some(cur) = self.current.take() {
                self.closed.push_back(ClosedSegment {
                    path: cur.path,
                    bytes: cur.len,
                    max_us: cur.max_us,
                });
            }
            self.apply_retention(now_us());
        }
        let path = self.cfg.dir.join(format::segment_name(self.next_index));
        // Append mode: after a failed write is cut off, the next write lands at the new end
        // (a plain file's cursor would leave a hole of zeros).
        let created = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| {
                f.write_all(&format::segment_header())?;
                f.sync_all()?;
                Ok(f)
            });
        match created {
            Ok(file) => {
                // The directory entry, so the segment is there after a power cut.
                if let Ok(d) = File::open(&self.cfg.dir) {
                    let _ = d.sync_all();
                }
                self.next_index += 1;
                self.current = Some(Current {
                    file,
                    path,
                    len: SEGMENT_HEADER_LEN,
                    max_us: None,
                });
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(describe(&e))
            }
        }
    }

    fn sync(&mut self) -> std::io::Result<()> {
        if self.dirty
            && let Some(cur) = &self.current
        {
            cur.file.sync_data()?;
            self.dirty = false;
        }
        self.durable = self.written_covers;
        if self.unwritten.is_empty() && self.block.is_empty() {
            self.durable = self.accepted;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Seals a block that is old enough, retries a paused write, syncs when due, applies
    /// retention now and then. Call it every few tens of milliseconds.
    pub fn tick(&mut self) {
        let now = Instant::now();
        if self
            .block_started
            .is_some_and(|t| now.duration_since(t) >= self.cfg.block_age)
        {
            self.seal();
        }
        if self.paused.is_some() && now >= self.next_retry {
            self.write_pending();
        }
        if now.duration_since(self.last_sync) >= self.cfg.sync_every
            && let Err(e) = self.sync()
        {
            self.pause(describe(&e));
        }
        if now.duration_since(self.last_retention) >= Duration::from_mins(1) {
            self.last_retention = now;
            self.apply_retention(now_us());
        }
    }

    /// Notices since the last call.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    /// How many of the events appended so far (duplicates included) are safe on disk.
    #[must_use]
    pub fn durable(&self) -> u64 {
        self.durable
    }

    /// Why writing is paused, if it is.
    #[must_use]
    pub fn paused(&self) -> Option<&str> {
        self.paused.as_ref().map(|(_, r)| r.as_str())
    }

    /// Whether the caller should stop taking events until writing works again.
    #[must_use]
    pub fn backpressure(&self) -> bool {
        self.paused.is_some()
            && self.unwritten_bytes + self.block.raw.len() >= self.cfg.backlog_bytes
    }

    #[must_use]
    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    /// Bytes of all segments on disk.
    #[must_use]
    pub fn disk_bytes(&self) -> u64 {
        self.closed.iter().map(|s| s.bytes).sum::<u64>()
            + self.current.as_ref().map_or(0, |c| c.len)
    }

    /// Seals, writes and syncs everything appended. When the disk is still full, says so.
    pub fn flush(&mut self) -> Result<(), String> {
        self.seal();
        if self.paused.is_some() {
            self.write_pending();
        }
        if let Some(reason) = self.paused() {
            return Err(reason.to_owned());
        }
        self.sync().map_err(|e| describe(&e))
    }

    fn apply_retention(&mut self, now: Micros) {
        if let Some(age) = self.cfg.max_age {
            let cutoff = now.saturating_sub(age.as_micros().min(i64::MAX as u128) as i64);
            while self
                .closed
                .front()
                .is_some_and(|s| s.max_us.is_none_or(|m| m < cutoff))
            {
                self.drop_oldest("older than max_age");
            }
        }
        if let Some(max) = self.cfg.max_bytes {
            while self.disk_bytes() > max && !self.closed.is_empty() {
                self.drop_oldest("over max_bytes");
            }
        }
    }

    fn drop_oldest(&mut self, why: &'static str) {
        if let Some(s) = self.closed.pop_front() {
            match std::fs::remove_file(&s.path) {
                Ok(()) => self.notices.push(Notice::Dropped {
                    segment: s.path,
                    why,
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    self.notices.push(Notice::Paused {
                        reason: format!("cannot drop {}: {e}", s.path.display()),
                    });
                    self.closed.push_front(s);
                }
            }
        }
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, t: Micros) -> RawMessage {
        RawMessage {
            received_us: t,
            routing_key: "agent.thread.prompt".into(),
            props: None,
            body: format!(r#"{{"event_id":"{id}","event_type":"agent.thread.prompt","payload":{{"n":"{id}"}}}}"#)
                .into_bytes(),
            precut: None,
        }
    }

    fn all_ids(dir: &std::path::Path) -> Vec<String> {
        let mut r = JournalReader::open(dir).unwrap();
        let blocks: Vec<_> = r.blocks().copied().collect();
        let mut out = Vec::new();
        for b in blocks {
            for e in r.read(&b).unwrap_or_default() {
                if let Entry::Event(m) = e {
                    out.push(decode::decode(&m).id.unwrap().into_owned());
                }
            }
        }
        out
    }

    #[test]
    fn what_is_appended_is_read_back_once_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = JournalConfig::new(dir.path().join("j"));
        cfg.block_entries = 10;
        cfg.segment_bytes = 600;
        let mut w = JournalWriter::open(cfg.clone(), "test").unwrap();
        for i in 0..100 {
            assert_eq!(w.append(&event(&format!("e{i}"), i)), Appended::Kept);
        }
        assert_eq!(w.append(&event("e5", 200)), Appended::Duplicate);
        w.flush().unwrap();
        assert_eq!(w.durable(), 101);
        drop(w);
        let ids = all_ids(&cfg.dir);
        assert_eq!(ids.len(), 100);
        assert_eq!(ids[0], "e0");
        assert_eq!(ids[99], "e99");
        let segments = JournalReader::open(&cfg.dir).unwrap().segments().len();
        assert!(segments > 2, "{segments} segments of ≤ 600 B");
        // A second writer remembers what is there: a redelivery is dropped.
        let mut w = JournalWriter::open(cfg.clone(), "test").unwrap();
        assert_eq!(w.append(&event("e99", 300)), Appended::Duplicate);
        assert_eq!(w.append(&event("e100", 300)), Appended::Kept);
        drop(w);
        assert_eq!(all_ids(&cfg.dir).len(), 101);
    }

    #[test]
    fn a_block_holds_one_stretch_of_time() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = JournalConfig::new(dir.path().to_owned());
        let mut w = JournalWriter::open(cfg.clone(), "test").unwrap();
        // An import: yesterday and today in one go, far fewer events than a block holds.
        let day = 86_400_000_000;
        for i in 0..30 {
            w.append(&event(&format!("y{i}"), i * 1_000_000));
        }
        w.append_gap(40_000_000, day, "nothing was recording", false);
        for i in 0..30 {
            w.append(&event(&format!("t{i}"), day + i * 1_000_000));
        }
        w.flush().unwrap();
        let r = JournalReader::open(&cfg.dir).unwrap();
        let spans: Vec<_> = r
            .blocks()
            .map(|b| b.header.max_us - b.header.min_us)
            .collect();
        // An event that closes the block before it is not durable with that block.
        let dir2 = tempfile::tempdir().unwrap();
        let mut cfg2 = JournalConfig::new(dir2.path().to_owned());
        cfg2.block_age = Duration::from_hours(1);
        cfg2.sync_every = Duration::ZERO;
        let mut w2 = JournalWriter::open(cfg2, "test").unwrap();
        w2.append(&event("a", 0));
        w2.append(&event("b", 120_000_000));
        w2.tick();
        assert_eq!(w2.durable(), 1, "only the sealed block's event is on disk");
        // The gap is filed under its end, today.
        assert_eq!(spans.len(), 2, "yesterday; the gap and today: {spans:?}");
        assert!(spans.iter().all(|&s| s <= 60_000_000), "{spans:?}");
    }

    #[test]
    fn one_writer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = JournalConfig::new(dir.path().to_owned());
        let _w = JournalWriter::open(cfg.clone(), "candybar record").unwrap();
        let err = JournalWriter::open(cfg.clone(), "window").err().unwrap();
        assert!(err.to_string().contains("candybar record, pid"), "{err}");
        assert!(
            crate::writer_of(&cfg.dir)
                .unwrap()
                .contains("candybar record")
        );
    }

    #[test]
    fn retention_drops_the_oldest_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = JournalConfig::new(dir.path().to_owned());
        cfg.block_entries = 10;
        cfg.segment_bytes = 1_000;
        cfg.max_bytes = Some(4_000);
        let mut w = JournalWriter::open(cfg.clone(), "test").unwrap();
        let now = now_us();
        for i in 0..300 {
            w.append(&event(&format!("e{i}"), now + i));
        }
        w.flush().unwrap();
        // The bound is checked as a segment is closed: at most one segment more.
        assert!(w.disk_bytes() <= 5_000, "{}", w.disk_bytes());
        let dropped = w
            .take_notices()
            .iter()
            .filter(|n| matches!(n, Notice::Dropped { .. }))
            .count();
        assert!(dropped > 0);
        drop(w);
        let ids = all_ids(&cfg.dir);
        assert_eq!(ids.last().map(String::as_str), Some("e299"));
        assert!(ids.len() < 300);

        // By age: everything written "a day ago" goes when the writer next opens.
        let mut cfg = JournalConfig::new(dir.path().join("age"));
        cfg.block_entries = 10;
        cfg.segment_bytes = 1_000;
        let mut w = JournalWriter::open(cfg.clone(), "test").unwrap();
        for i in 0..100 {
            w.append(&event(&format!("old{i}"), now - 86_400_000_000 + i));
        }
        drop(w);
        cfg.max_age = Some(Duration::from_hours(1));
        let w = JournalWriter::open(cfg.clone(), "test").unwrap();
        drop(w);
        assert!(all_ids(&cfg.dir).is_empty());
    }
}
