//! Reading a journal, also while it is being written.
//!
//! [`JournalReader::refresh`] walks the frames' headers (a seek per block, no decompression) and
//! keeps a list of [`BlockRef`]s with their time ranges; [`JournalReader::read`] reads one block
//! and checks its checksum. What does not check out is a [`Damage`], reported once.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::format::{
    self, BLOCK_HEADER_LEN, BlockHeader, Entry, FRAME_HEADER_LEN, FRAME_MAGIC, HeaderProblem,
    INDEXED_BLOCK_HEADER_LEN, Keep, SEGMENT_HEADER_LEN,
};
use crate::index::BlockIndex;
use crate::{JournalError, format::FORMAT_VERSION};

/// Where one block is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRef {
    /// The segment's index.
    pub segment: u64,
    /// Where the block's frame starts.
    pub offset: u64,
    /// Payload length.
    pub len: u32,
    pub header: BlockHeader,
}

/// Something in the journal that could not be read: where, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub segment: PathBuf,
    pub offset: u64,
    pub what: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at byte {}: {}",
            self.segment.display(),
            self.offset,
            self.what
        )
    }
}

struct Segment {
    path: PathBuf,
    /// Where the next frame header is expected.
    scanned_to: u64,
    blocks: Vec<BlockRef>,
    /// The header was unreadable or from a newer format: nothing in it is read.
    unusable: bool,
}

/// A journal opened for reading.
pub struct JournalReader {
    dir: PathBuf,
    segments: BTreeMap<u64, Segment>,
    damage: Vec<Damage>,
    seen_damage: HashSet<(PathBuf, u64)>,
    reported: usize,
    /// A frame at the end of the newest segment that is not whole yet: a writer is writing it,
    /// or it was torn by a crash.
    incomplete_tail: Option<(PathBuf, u64)>,
    /// The segment last read from, open.
    open: Option<(u64, File)>,
}

impl JournalReader {
    /// Opens the journal at `dir` and reads its block list.
    pub fn open(dir: &Path) -> Result<Self, JournalError> {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(JournalError::NotADirectory {
                    path: dir.to_owned(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(JournalError::Missing {
                    path: dir.to_owned(),
                });
            }
            Err(e) => return Err(JournalError::io(dir, &e)),
        }
        let mut reader = Self {
            dir: dir.to_owned(),
            segments: BTreeMap::new(),
            damage: Vec::new(),
            seen_damage: HashSet::new(),
            reported: 0,
            incomplete_tail: None,
            open: None,
        };
        reader.refresh()?;
        Ok(reader)
    }

    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads what was added since the last call: new segments, new blocks, segments dropped by
    /// retention. A segment from a newer format is an error (nothing can be read correctly).
    pub fn refresh(&mut self) -> Result<(), JournalError> {
        let listing = std::fs::read_dir(&self.dir).map_err(|e| JournalError::io(&self.dir, &e))?;
        let mut present = BTreeMap::new();
        for entry in listing.flatten() {
            let name = entry.file_name();
            if let Some(index) = name.to_str().and_then(format::segment_index) {
                present.insert(index, entry.path());
            }
        }
        self.segments.retain(|i, _| present.contains_key(i));
        if self
            .open
            .as_ref()
            .is_some_and(|(s, _)| !self.segments.contains_key(s))
        {
            self.open = None;
        }
        for (index, path) in present {
            self.segments.entry(index).or_insert_with(|| Segment {
                path,
                scanned_to: 0,
                blocks: Vec::new(),
                unusable: false,
            });
        }
        self.incomplete_tail = None;
        let newest = self.segments.keys().next_back().copied();
        let indexes: Vec<u64> = self.segments.keys().copied().collect();
        for index in indexes {
            self.scan(index, Some(index) == newest)?;
        }
        Ok(())
    }

    fn note_damage(&mut self, segment: &Path, offset: u64, what: String) {
        if self.seen_damage.insert((segment.to_owned(), offset)) {
            self.damage.push(Damage {
                segment: segment.to_owned(),
                offset,
                what,
            });
        }
    }

    /// Walks the frames of one segment from where the last walk stopped.
    #[allow(clippy::too_many_lines)] // the header, then each frame's cases side by side
    fn scan(&mut self, index: u64, newest: bool) -> Result<(), JournalError> {
        let Some(seg) = self.segments.get(&index) else {
            return Ok(());
        };
        if seg.unusable {
            return Ok(());
        }
        let path = seg.path.clone();
        let Ok(mut file) = File::open(&path) else {
            // Dropped by retention between the listing and now.
            return Ok(());
        };
        let len = file
            .metadata()
            .map_err(|e| JournalError::io(&path, &e))?
            .len();
        let mut at = seg.scanned_to;
        if at == 0 {
            if len < SEGMENT_HEADER_LEN {
                if !newest {
                    self.note_damage(&path, 0, "too short to be a segment; skipped".into());
                    self.mark_unusable(index);
                }
                return Ok(());
            }
            let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
            read_at(&mut file, 0, &mut h).map_err(|e| JournalError::io(&path, &e))?;
            match format::check_segment_header(&h) {
                Ok(()) => at = SEGMENT_HEADER_LEN,
                Err(HeaderProblem::Newer(found)) => {
                    return Err(JournalError::Newer {
                        path,
                        found,
                        supported: FORMAT_VERSION,
                    });
                }
                Err(HeaderProblem::NotASegment) => {
                    self.note_damage(&path, 0, "not a journal segment; skipped".into());
                    self.mark_unusable(index);
                    return Ok(());
                }
            }
        }
        let mut found = Vec::new();
        let mut head = [0u8; FRAME_HEADER_LEN + INDEXED_BLOCK_HEADER_LEN];
        while at < len {
            // A format 1 header is shorter: what there is of the longest one is read, and the
            // header decides whether it was enough.
            let n = (len - at).min(head.len() as u64) as usize;
            let whole = n >= FRAME_HEADER_LEN + BLOCK_HEADER_LEN;
            let parsed = if whole {
                read_at(&mut file, at, &mut head[..n]).map_err(|e| JournalError::io(&path, &e))?;
                format::read_frame_header(&head[..n]).and_then(|(plen, crc)| {
                    format::read_block_header(&head[FRAME_HEADER_LEN..n])
                        .filter(|h| h.data_offset() <= plen)
                        .map(|h| (plen, crc, h))
                })
            } else {
                None
            };
            // A frame ends where the next begins (or the file ends): a damaged length is caught
            // here rather than swallowing the good frames behind it.
            let ends_well = |file: &mut File, plen: usize| {
                let next = at + (FRAME_HEADER_LEN + plen) as u64;
                next <= len && (next == len || head_is_prefix(file, next, len))
            };
            match parsed {
                // Where the next frame is damaged, this one's checksum decides.
                Some((plen, _, header))
                    if ends_well(&mut file, plen)
                        || frame_checks_out(&mut file, at, len).unwrap_or(false) =>
                {
                    found.push(BlockRef {
                        segment: index,
                        offset: at,
                        len: plen as u32,
                        header,
                    });
                    at += (FRAME_HEADER_LEN + plen) as u64;
                }
                // The last frame of the newest segment, not whole yet (being written, or torn by
                // a crash): wait for the rest.
                Some((plen, _, _))
                    if newest
                        && at + (FRAME_HEADER_LEN + plen) as u64 > len
                        && !good_frame_after(&mut file, at, len) =>
                {
                    self.incomplete_tail = Some((path.clone(), at));
                    break;
                }
                None if newest && n < head.len() && head_is_prefix(&mut file, at, len) => {
                    self.incomplete_tail = Some((path.clone(), at));
                    break;
                }
                _ => {
                    // Damage: find the next frame that checks out.
                    let next =
                        resync(&mut file, at + 1, len).map_err(|e| JournalError::io(&path, &e))?;
                    let skipped = next.unwrap_or(len) - at;
                    self.note_damage(
                        &path,
                        at,
                        format!("{skipped} damaged bytes skipped (no valid block there)"),
                    );
                    let Some(n) = next else {
                        at = len;
                        break;
                    };
                    at = n;
                }
            }
        }
        if let Some(seg) = self.segments.get_mut(&index) {
            seg.scanned_to = at;
            seg.blocks.extend(found);
        }
        Ok(())
    }

    fn mark_unusable(&mut self, index: u64) {
        if let Some(seg) = self.segments.get_mut(&index) {
            seg.unusable = true;
        }
    }

    /// Every block, oldest segment first, in the order written.
    /// How many entries (events and gaps) the journal's readable blocks hold.
    #[must_use]
    pub fn entry_count(&self) -> usize {
        self.blocks().map(|b| b.header.count as usize).sum()
    }

    /// When the newest entry the journal holds was received; `None` for an empty journal.
    #[must_use]
    pub fn newest_us(&self) -> Option<candybar_core::time::Micros> {
        self.blocks().map(|b| b.header.max_us).max()
    }

    pub fn blocks(&self) -> impl DoubleEndedIterator<Item = &BlockRef> {
        self.segments.values().flat_map(|s| s.blocks.iter())
    }

    /// Blocks written after `after` (or all), in order.
    pub fn blocks_after(&self, after: Option<BlockRef>) -> Vec<BlockRef> {
        match after {
            None => self.blocks().copied().collect(),
            Some(a) => self
                .blocks()
                .filter(|b| (b.segment, b.offset) > (a.segment, a.offset))
                .copied()
                .collect(),
        }
    }

    /// The open file of a segment (kept open for the next read of the same one).
    fn file(&mut self, segment: u64) -> Option<(&mut File, PathBuf)> {
        let path = self.segments.get(&segment)?.path.clone();
        if self.open.as_ref().is_none_or(|(s, _)| *s != segment) {
            self.open = Some((segment, File::open(&path).ok()?));
        }
        self.open.as_mut().map(|(_, f)| (f, path))
    }

    /// The block's index, when it has one that checks out: what [`candybar_core::filter::Filter`]
    /// needs to rule the block out without reading it. `None` rules nothing out.
    pub fn index(&mut self, block: &BlockRef) -> Option<BlockIndex> {
        let h = block.header;
        if h.index_len == 0 {
            return None;
        }
        let (file, _) = self.file(block.segment)?;
        let mut bytes = vec![0u8; h.index_len as usize];
        read_at(
            file,
            block.offset + (FRAME_HEADER_LEN + h.index_offset()) as u64,
            &mut bytes,
        )
        .ok()?;
        BlockIndex::parse(bytes, (h.min_us, h.max_us))
    }

    /// The entries of one block. A checksum mismatch or an unreadable block is reported (once)
    /// and gives `None`; a block dropped by retention meanwhile gives `None` silently.
    pub fn read(&mut self, block: &BlockRef) -> Option<Vec<Entry>> {
        let (file, path) = self.file(block.segment)?;
        let read = read_frame(file, block);
        let decoded = match read {
            Ok(Some(frame)) => format::decode_block(&frame[FRAME_HEADER_LEN..]),
            Ok(None) => return None,
            Err(what) => {
                self.note_damage(&path, block.offset, what);
                return None;
            }
        };
        self.decoded(block, decoded)
    }

    /// The entries of `blocks`, handed to `each` in their order with only the events `keep`
    /// passes (gaps are all kept; see [`format::decode_block_keeping`]) — what a long query
    /// does. `workers` threads read, decompress and screen the blocks ahead of `each` (most of
    /// a query's time), each with its own files; `each` gets `None` for a block that could not
    /// be read (reported as [`Self::read`] does), and stops the reading with
    /// [`ControlFlow::Break`].
    pub fn read_each(
        &mut self,
        blocks: &[BlockRef],
        workers: usize,
        keep: &dyn Keep,
        each: &mut dyn FnMut(usize, Option<Vec<Entry>>) -> ControlFlow<()>,
    ) {
        let paths: BTreeMap<u64, PathBuf> = self
            .segments
            .iter()
            .map(|(i, s)| (*i, s.path.clone()))
            .collect();
        let next = AtomicUsize::new(0);
        // How many blocks `each` has taken: a worker runs at most `ahead` blocks past it, so
        // memory stays bounded when one block is slow.
        let taken = AtomicUsize::new(0);
        let ahead = workers.max(1) * 4;
        let stop = AtomicBool::new(false);
        let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Decoded)>(ahead);
        let work = |tx: std::sync::mpsc::SyncSender<(usize, Decoded)>| {
            let mut open = None;
            let mut scratch = format::BlockScratch::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(block) = blocks.get(i) else { break };
                while i >= taken.load(Ordering::Acquire) + ahead && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let decoded = fetch(&paths, &mut open, block, keep, &mut scratch);
                if tx.send((i, decoded)).is_err() {
                    break;
                }
            }
        };
        let mut want = 0;
        let spawned = std::thread::scope(|scope| {
            let mut spawned = 0;
            for _ in 0..workers.max(1) {
                let tx = tx.clone();
                let work = &work;
                spawned += usize::from(
                    std::thread::Builder::new()
                        .name("journal-read".into())
                        .spawn_scoped(scope, move || work(tx))
                        .is_ok(),
                );
            }
            drop(tx);
            // Blocks come back in any order; `each` takes them in theirs.
            let mut waiting: BTreeMap<usize, Decoded> = BTreeMap::new();
            'read: for (i, decoded) in &rx {
                waiting.insert(i, decoded);
                while let Some(decoded) = waiting.remove(&want) {
                    let entries = self.hand_over(&paths, &blocks[want], decoded);
                    if each(want, entries).is_break() {
                        stop.store(true, Ordering::Relaxed);
                        break 'read;
                    }
                    want += 1;
                    taken.store(want, Ordering::Release);
                }
            }
            // Workers blocked on a full channel are let go.
            drop(rx);
            spawned
        });
        if spawned == 0 {
            // No thread could be started: the blocks are read here, one after another.
            let (mut open, mut scratch) = (None, format::BlockScratch::default());
            for (i, block) in blocks.iter().enumerate() {
                let decoded = fetch(&paths, &mut open, block, keep, &mut scratch);
                let entries = self.hand_over(&paths, block, decoded);
                if each(i, entries).is_break() {
                    break;
                }
            }
        }
    }

    /// A block as a worker found it, as [`Self::read_each`] hands it on: its entries, or `None`
    /// with any damage noted.
    fn hand_over(
        &mut self,
        paths: &BTreeMap<u64, PathBuf>,
        block: &BlockRef,
        decoded: Decoded,
    ) -> Option<Vec<Entry>> {
        match decoded {
            Decoded::Gone => None,
            Decoded::Unreadable(what) => {
                if let Some(path) = paths.get(&block.segment) {
                    self.note_damage(path, block.offset, what);
                }
                None
            }
            Decoded::Block(d) => self.decoded(block, d),
        }
    }

    /// A decoded block's entries, or its damage noted.
    fn decoded(
        &mut self,
        block: &BlockRef,
        decoded: Result<(BlockHeader, Vec<Entry>), format::BlockError>,
    ) -> Option<Vec<Entry>> {
        match decoded {
            Ok((_, entries)) => Some(entries),
            Err(e) => {
                let path = self.segments.get(&block.segment)?.path.clone();
                self.note_damage(&path, block.offset, format!("{e}; skipped"));
                None
            }
        }
    }

    /// Damage found since the last call, each reported once.
    pub fn new_damage(&mut self) -> &[Damage] {
        let from = self.reported;
        self.reported = self.damage.len();
        &self.damage[from..]
    }

    /// A frame at the end of the newest segment that is not whole: where it starts.
    #[must_use]
    pub fn incomplete_tail(&self) -> Option<&(PathBuf, u64)> {
        self.incomplete_tail.as_ref()
    }

    /// The segments: index, path, size on disk, newest entry time (when it has blocks).
    pub fn segments(&self) -> Vec<(u64, PathBuf, Option<i64>)> {
        self.segments
            .iter()
            .map(|(i, s)| {
                (
                    *i,
                    s.path.clone(),
                    s.blocks.iter().map(|b| b.header.max_us).max(),
                )
            })
            .collect()
    }
}

/// A block as a worker of [`JournalReader::read_each`] found it.
enum Decoded {
    Block(Result<(BlockHeader, Vec<Entry>), format::BlockError>),
    /// What is wrong with it, to be reported.
    Unreadable(String),
    /// No longer there (retention dropped it).
    Gone,
}

/// One block read, checked, decompressed and screened by a worker of
/// [`JournalReader::read_each`]; `open` is the worker's open segment, kept for the next block.
fn fetch(
    paths: &BTreeMap<u64, PathBuf>,
    open: &mut Option<(u64, File)>,
    block: &BlockRef,
    keep: &dyn Keep,
    scratch: &mut format::BlockScratch,
) -> Decoded {
    if open.as_ref().is_none_or(|(s, _)| *s != block.segment) {
        *open = None;
        let Some(path) = paths.get(&block.segment) else {
            return Decoded::Gone;
        };
        match File::open(path) {
            Ok(f) => *open = Some((block.segment, f)),
            // Dropped by retention meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Decoded::Gone,
            Err(e) => return Decoded::Unreadable(format!("cannot open the segment: {e}")),
        }
    }
    let Some((_, file)) = open.as_mut() else {
        return Decoded::Gone;
    };
    match read_frame(file, block) {
        Ok(None) => Decoded::Gone,
        Err(what) => Decoded::Unreadable(what),
        Ok(Some(frame)) => Decoded::Block(format::decode_block_keeping(
            &frame[FRAME_HEADER_LEN..],
            keep,
            scratch,
        )),
    }
}

/// The block's frame, its checksum checked: `Err` says what is wrong, `Ok(None)` that the frame
/// is not there.
fn read_frame(file: &mut File, block: &BlockRef) -> Result<Option<Vec<u8>>, String> {
    let mut frame = vec![0u8; FRAME_HEADER_LEN + block.len as usize];
    if let Err(e) = read_at(file, block.offset, &mut frame) {
        return Err(format!("cannot read the block: {e}"));
    }
    let Some((_, crc)) = format::read_frame_header(&frame) else {
        return Ok(None);
    };
    if crc32fast::hash(&frame[FRAME_HEADER_LEN..]) != crc {
        return Err(format!(
            "a block of {} events fails its checksum; skipped",
            block.header.count
        ));
    }
    Ok(Some(frame))
}

fn read_at(file: &mut File, at: u64, buf: &mut [u8]) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(at))?;
    file.read_exact(buf)
}

/// Whether the bytes from `at` to the end could be the beginning of a frame header (a frame
/// being written), rather than garbage.
fn head_is_prefix(file: &mut File, at: u64, len: u64) -> bool {
    let n = (len - at).min(FRAME_MAGIC.len() as u64) as usize;
    let mut b = [0u8; 4];
    read_at(file, at, &mut b[..n]).is_ok() && b[..n] == FRAME_MAGIC[..n]
}

/// The offset of the first frame at or after `from` whose checksum holds.
fn resync(file: &mut File, from: u64, len: u64) -> std::io::Result<Option<u64>> {
    const CHUNK: usize = 1 << 20;
    let mut at = from;
    let mut buf = vec![0u8; CHUNK + 3];
    while at + FRAME_HEADER_LEN as u64 <= len {
        let n = ((len - at) as usize).min(buf.len());
        read_at(file, at, &mut buf[..n])?;
        let mut i = 0;
        while let Some(p) = memchr_magic(&buf[i..n]) {
            let cand = at + (i + p) as u64;
            if frame_checks_out(file, cand, len)? {
                return Ok(Some(cand));
            }
            i += p + 1;
        }
        if n < buf.len() {
            break;
        }
        at += CHUNK as u64;
    }
    Ok(None)
}

/// Whether a whole, good frame follows `at` (then what is at `at` is damage, not a frame still
/// being written).
fn good_frame_after(file: &mut File, at: u64, len: u64) -> bool {
    matches!(resync(file, at + 1, len), Ok(Some(_)))
}

fn memchr_magic(hay: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, &FRAME_MAGIC)
}

fn frame_checks_out(file: &mut File, at: u64, len: u64) -> std::io::Result<bool> {
    let mut h = [0u8; FRAME_HEADER_LEN];
    if at + FRAME_HEADER_LEN as u64 > len {
        return Ok(false);
    }
    read_at(file, at, &mut h)?;
    let Some((plen, crc)) = format::read_frame_header(&h) else {
        return Ok(false);
    };
    if at + (FRAME_HEADER_LEN + plen) as u64 > len {
        return Ok(false);
    }
    let mut payload = vec![0u8; plen];
    read_at(file, at + FRAME_HEADER_LEN as u64, &mut payload)?;
    Ok(crc32fast::hash(&payload) == crc && format::read_block_header(&payload).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::KeepAll;
    use crate::{JournalConfig, JournalWriter};
    use candybar_core::event::RawMessage;

    /// A journal of `n` events in blocks of 10, one segment.
    fn journal(n: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = JournalConfig::new(dir.path().to_owned());
        cfg.block_entries = 10;
        let mut w = JournalWriter::open(cfg, "test").unwrap();
        for i in 0..n {
            w.append(&RawMessage {
                received_us: i as i64,
                routing_key: "x.y".into(),
                body: format!(r#"{{"event_id":"e{i}","event_type":"x.y"}}"#).into_bytes(),
                ..RawMessage::default()
            });
        }
        drop(w);
        let seg = dir.path().join(format::segment_name(1));
        (dir, seg)
    }

    fn count(r: &mut JournalReader) -> usize {
        let blocks: Vec<_> = r.blocks().copied().collect();
        blocks
            .iter()
            .filter_map(|b| r.read(b))
            .map(|e| e.len())
            .sum()
    }

    fn poke(path: &Path, at: u64, f: impl FnOnce(&mut u8)) {
        let mut bytes = std::fs::read(path).unwrap();
        f(&mut bytes[at as usize]);
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn a_damaged_block_is_reported_once_and_the_rest_reads() {
        let (dir, seg) = journal(100);
        let third = JournalReader::open(dir.path())
            .unwrap()
            .blocks()
            .nth(2)
            .copied()
            .unwrap();
        // A byte inside the payload, past the headers.
        poke(&seg, third.offset + 60, |b| *b ^= 0x55);
        let mut r = JournalReader::open(dir.path()).unwrap();
        assert_eq!(count(&mut r), 90);
        let damage = r.new_damage().to_vec();
        assert_eq!(damage.len(), 1, "{damage:?}");
        assert!(damage[0].what.contains("checksum"), "{}", damage[0]);
        assert_eq!(damage[0].offset, third.offset);
        assert_eq!(count(&mut r), 90);
        assert!(r.new_damage().is_empty(), "reported once");
    }

    /// Keeps events with an even receive time, at a glance or on the whole event.
    struct Even {
        at_a_glance: bool,
    }

    impl Keep for Even {
        fn glance(
            &self,
            raw: &[u8],
            _: Option<&[u8]>,
            events: &[(i64, std::ops::Range<usize>)],
            keep: &mut [bool],
        ) {
            for ((t, body), k) in events.iter().zip(keep) {
                assert!(raw[body.clone()].starts_with(b"{\"event_id\""));
                *k = !self.at_a_glance || t % 2 == 0;
            }
        }

        fn event(&self, m: &RawMessage) -> bool {
            self.at_a_glance || m.received_us % 2 == 0
        }
    }

    #[test]
    fn blocks_read_on_threads_come_in_order_screened_and_damage_is_reported_once() {
        let (dir, seg) = journal(1000);
        let mut r = JournalReader::open(dir.path()).unwrap();
        let blocks: Vec<_> = r.blocks().copied().collect();
        assert_eq!(blocks.len(), 100);
        poke(&seg, blocks[37].offset + 60, |b| *b ^= 0x55);
        for at_a_glance in [true, false] {
            let mut seen = Vec::new();
            let mut times = Vec::new();
            r.read_each(&blocks, 3, &Even { at_a_glance }, &mut |i, entries| {
                seen.push(i);
                match entries {
                    None => assert_eq!(i, 37, "only the damaged block is unreadable"),
                    Some(e) => times.extend(e.iter().map(Entry::time_us)),
                }
                ControlFlow::Continue(())
            });
            assert_eq!(seen, (0..100).collect::<Vec<_>>());
            let even: Vec<i64> = (0..1000)
                .filter(|t| t % 2 == 0 && !(370..380).contains(t))
                .collect();
            assert_eq!(times, even);
        }
        let damage = r.new_damage().to_vec();
        assert_eq!(damage.len(), 1, "reported once: {damage:?}");
        assert!(damage[0].what.contains("checksum"), "{}", damage[0]);

        // Stopping early: no block after the one that said so.
        let mut seen = 0;
        r.read_each(&blocks, 2, &KeepAll, &mut |_, _| {
            seen += 1;
            if seen == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(seen, 3);
    }

    #[test]
    fn a_damaged_frame_header_is_skipped_to_the_next_good_frame() {
        let (dir, seg) = journal(100);
        let blocks: Vec<_> = JournalReader::open(dir.path())
            .unwrap()
            .blocks()
            .copied()
            .collect();
        // The length of block 4 made absurd, and the magic of block 7 broken.
        poke(&seg, blocks[4].offset + 6, |b| *b = 0x7f);
        poke(&seg, blocks[7].offset, |b| *b = b'X');
        let mut r = JournalReader::open(dir.path()).unwrap();
        assert_eq!(count(&mut r), 80);
        assert_eq!(r.new_damage().len(), 2);
    }

    #[test]
    fn a_torn_tail_waits_and_a_writer_cuts_it_off() {
        let (dir, seg) = journal(100);
        let len = std::fs::metadata(&seg).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(len - 7).unwrap();
        let mut r = JournalReader::open(dir.path()).unwrap();
        assert_eq!(count(&mut r), 90);
        assert!(r.incomplete_tail().is_some());
        assert!(
            r.new_damage().is_empty(),
            "a tail being written is not damage"
        );
        let mut w = JournalWriter::open(JournalConfig::new(dir.path().to_owned()), "test").unwrap();
        let notices = w.take_notices();
        assert!(
            matches!(&notices[..], [crate::Notice::TornTail { .. }]),
            "{notices:?}"
        );
        drop(w);
        let r = JournalReader::open(dir.path()).unwrap();
        assert!(r.incomplete_tail().is_none());
    }

    #[test]
    fn a_journal_from_a_newer_candybar_is_refused_in_words() {
        let (dir, seg) = journal(10);
        poke(&seg, 16, |b| *b = 7);
        let err = JournalReader::open(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("newer candybar") && err.contains("format 7"),
            "{err}"
        );
        let err = JournalWriter::open(JournalConfig::new(dir.path().to_owned()), "t")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("newer candybar"), "{err}");
    }

    /// A segment as candybar wrote them before blocks had an index (format 1, kind 1 blocks).
    fn format_1_segment(path: &Path, events: std::ops::Range<usize>) {
        let mut b = format::BlockBuilder::default();
        for i in events {
            let m = RawMessage {
                received_us: i as i64,
                routing_key: "old.event".into(),
                body: format!(r#"{{"event_id":"old{i}","event_type":"old.event"}}"#).into_bytes(),
                ..RawMessage::default()
            };
            b.push_event(&m, &candybar_core::decode::decode(&m));
        }
        let mut payload = vec![format::KIND_BLOCK];
        payload.extend_from_slice(&b.count.to_le_bytes());
        payload.extend_from_slice(&b.min_us.to_le_bytes());
        payload.extend_from_slice(&b.max_us.to_le_bytes());
        payload.extend_from_slice(&(b.raw.len() as u32).to_le_bytes());
        payload.extend_from_slice(&zstd::bulk::compress(&b.raw, 3).unwrap());
        let mut seg = format::segment_header().to_vec();
        seg[16..20].copy_from_slice(&1u32.to_le_bytes());
        seg.extend_from_slice(&format::frame(&payload));
        std::fs::write(path, seg).unwrap();
    }

    #[test]
    fn a_journal_from_before_block_indexes_reads_and_grows() {
        let dir = tempfile::tempdir().unwrap();
        format_1_segment(&dir.path().join(format::segment_name(1)), 0..50);
        let mut w = JournalWriter::open(JournalConfig::new(dir.path().to_owned()), "t").unwrap();
        let m = RawMessage {
            received_us: 100,
            routing_key: "new.event".into(),
            body: br#"{"event_id":"new","event_type":"new.event"}"#.to_vec(),
            ..RawMessage::default()
        };
        w.append(&m);
        w.flush().unwrap();
        let mut r = JournalReader::open(dir.path()).unwrap();
        let blocks: Vec<_> = r.blocks().copied().collect();
        assert_eq!(blocks.len(), 2, "{blocks:?}");
        assert_eq!(count(&mut r), 51);
        assert!(r.new_damage().is_empty(), "{:?}", r.new_damage());
        assert!(
            r.index(&blocks[0]).is_none(),
            "a format 1 block has no index"
        );
        let new = r.index(&blocks[1]).expect("a new block has an index");
        let old_only = candybar_core::filter::Filter::new("old.event").unwrap();
        assert!(!old_only.may_match_block(&new, 0));
    }

    #[test]
    fn garbage_files_are_not_segments() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(format::segment_name(1)), vec![0u8; 5000]).unwrap();
        std::fs::write(dir.path().join(format::segment_name(2)), b"short").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
        let mut r = JournalReader::open(dir.path()).unwrap();
        assert_eq!(count(&mut r), 0);
        assert_eq!(
            r.new_damage().len(),
            1,
            "the 5000 zero bytes; the short newest may be new"
        );
        let file = dir.path().join("notes.txt");
        assert!(matches!(
            JournalReader::open(&file),
            Err(JournalError::NotADirectory { .. })
        ));
        assert!(matches!(
            JournalReader::open(&dir.path().join("nope")),
            Err(JournalError::Missing { .. })
        ));
    }
}
