//! The bytes on disk.
//!
//! A journal is a directory of segments, `{index:010}.cbj`, written in index order. A segment is
//! a [`SEGMENT_HEADER_LEN`]-byte header (magic, format version) followed by frames:
//!
//! ```text
//! frame   = magic "CBJF" · payload length u32 · CRC-32 of the payload u32 · payload
//! payload = kind u8 (2 = indexed block) · count u32 · min received µs i64 · max received µs i64
//!           · uncompressed length u32 · index length u32 · index · zstd(entries)
//!         | kind u8 (1 = block, format 1) · count · min · max · uncompressed length · zstd(entries)
//! entry   = 1 · received µs i64 · routing key · props · body · cut    (an event)
//!         | 2 · start µs i64 · end µs i64 · lossless u8 · reason        (a gap)
//! ```
//!
//! Strings and byte strings are a LEB128 length and the bytes; `props` and `cut` are JSON (empty
//! when absent): the AMQP properties, and for a body cut before it was journaled, its size and
//! the header fields read from it. All integers little-endian. A frame is written whole and
//! checked whole: a torn or damaged one is found by its length or checksum, and the reader finds
//! the next good frame by its magic. The index ([`crate::index`]) is read on its own, before a
//! query decides whether to read the block.

use candybar_core::decode::Decoded;
use candybar_core::event::{AmqpProps, Header, Precut, RawMessage};
use candybar_core::time::Micros;

use crate::index::IndexBuilder;

/// What a segment starts with.
pub const SEGMENT_MAGIC: &[u8; 16] = b"candybar-journal";
/// The format this build writes, and the newest it reads. 2 added the block index; format 1
/// segments are read as before (every block is read).
pub const FORMAT_VERSION: u32 = 2;
/// Magic, version, and four reserved bytes.
pub const SEGMENT_HEADER_LEN: u64 = 24;
/// What each frame starts with.
pub const FRAME_MAGIC: [u8; 4] = *b"CBJF";
/// Magic, length, checksum.
pub const FRAME_HEADER_LEN: usize = 12;
/// The largest payload a frame may claim; anything larger is damage, not data.
pub const MAX_FRAME_BYTES: usize = 256 << 20;
/// Kind byte of a format 1 block payload.
pub const KIND_BLOCK: u8 = 1;
/// Kind byte of a block payload with an index.
pub const KIND_INDEXED_BLOCK: u8 = 2;
/// Kind, count, min, max, uncompressed length: the smallest block header.
pub const BLOCK_HEADER_LEN: usize = 1 + 4 + 8 + 8 + 4;
/// An indexed block's header: the index length follows.
pub const INDEXED_BLOCK_HEADER_LEN: usize = BLOCK_HEADER_LEN + 4;
/// The zstd level. Measured on 65,536 demo events (~400 B) in blocks of 1,024 on the 2-core
/// EPYC VM: level 1 gives 62.2 B/event at 852k events/s, 3 gives 65.7 at 487k, 7 gives 58.6 at
/// 281k, 9 gives 56.4 at 244k. With block indexes (about 2 B/event more), `bench journal` over
/// 1M events: level 7 60.6 B/event recording 157k events/s on one core, level 9 58.4 B at 159k.
pub const ZSTD_LEVEL: i32 = 9;

const ENTRY_EVENT: u8 = 1;
const ENTRY_GAP: u8 = 2;

/// The segment file name for `index`.
#[must_use]
pub fn segment_name(index: u64) -> String {
    format!("{index:010}.cbj")
}

/// The index in a segment file name, when it is one.
#[must_use]
pub fn segment_index(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".cbj")?;
    (digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

#[must_use]
pub fn segment_header() -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[..16].copy_from_slice(SEGMENT_MAGIC);
    h[16..20].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// Why a segment header cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderProblem {
    /// Not a candybar journal segment at all.
    NotASegment,
    /// Written by a newer candybar.
    Newer(u32),
}

pub fn check_segment_header(h: &[u8]) -> Result<(), HeaderProblem> {
    if h.len() < SEGMENT_HEADER_LEN as usize || &h[..16] != SEGMENT_MAGIC {
        return Err(HeaderProblem::NotASegment);
    }
    let version = u32::from_le_bytes([h[16], h[17], h[18], h[19]]);
    if version > FORMAT_VERSION {
        return Err(HeaderProblem::Newer(version));
    }
    Ok(())
}

/// One thing the journal keeps.
#[derive(Clone, Debug)]
pub enum Entry {
    Event(RawMessage),
    /// Nothing was received between `start_us` and `end_us` (the source was disconnected, or
    /// recording was off).
    Gap {
        start_us: Micros,
        end_us: Micros,
        reason: String,
        /// The source kept what was published meanwhile: an interruption, not a loss.
        lossless: bool,
    },
}

impl Entry {
    /// The time the entry is filed under.
    #[must_use]
    pub fn time_us(&self) -> Micros {
        match self {
            Self::Event(m) => m.received_us,
            Self::Gap { end_us, .. } => *end_us,
        }
    }
}

/// A cut body's size and header, as kept beside it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cut<'a> {
    size: u64,
    #[serde(borrow)]
    header: Header<'a>,
}

/// Entries of the block being filled, serialized as they come.
#[derive(Default)]
pub struct BlockBuilder {
    pub raw: Vec<u8>,
    pub count: u32,
    pub min_us: Micros,
    pub max_us: Micros,
    index: IndexBuilder,
}

impl BlockBuilder {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn note_time(&mut self, us: Micros) {
        if self.count == 0 {
            self.min_us = us;
            self.max_us = us;
        } else {
            self.min_us = self.min_us.min(us);
            self.max_us = self.max_us.max(us);
        }
        self.count += 1;
    }

    /// Adds an event; `decoded` is [`candybar_core::decode::decode`] of it, for the index.
    pub fn push_event(&mut self, m: &RawMessage, decoded: &Decoded<'_>) {
        self.index.push(&m.routing_key, decoded);
        let out = &mut self.raw;
        out.push(ENTRY_EVENT);
        out.extend_from_slice(&m.received_us.to_le_bytes());
        put_bytes(out, m.routing_key.as_bytes());
        match m.props.as_deref().filter(|p| !p.is_empty()) {
            Some(p) => put_bytes(out, &serde_json::to_vec(p).unwrap_or_default()),
            None => put_len(out, 0),
        }
        put_bytes(out, &m.body);
        match &m.precut {
            Some(p) => {
                let cut = Cut {
                    size: p.size_bytes,
                    header: p.header.clone(),
                };
                put_bytes(out, &serde_json::to_vec(&cut).unwrap_or_default());
            }
            None => put_len(out, 0),
        }
        self.note_time(m.received_us);
    }

    pub fn push_gap(&mut self, start_us: Micros, end_us: Micros, reason: &str, lossless: bool) {
        let out = &mut self.raw;
        out.push(ENTRY_GAP);
        out.extend_from_slice(&start_us.to_le_bytes());
        out.extend_from_slice(&end_us.to_le_bytes());
        out.push(u8::from(lossless));
        put_bytes(out, reason.as_bytes());
        self.note_time(end_us);
    }

    /// The whole frame for what was pushed (header, checksum, compressed entries); empties the
    /// builder.
    pub fn seal(&mut self, level: i32) -> std::io::Result<Vec<u8>> {
        let compressed = zstd::bulk::compress(&self.raw, level)?;
        let index = self.index.finish();
        let mut payload =
            Vec::with_capacity(INDEXED_BLOCK_HEADER_LEN + index.len() + compressed.len());
        payload.push(KIND_INDEXED_BLOCK);
        payload.extend_from_slice(&self.count.to_le_bytes());
        payload.extend_from_slice(&self.min_us.to_le_bytes());
        payload.extend_from_slice(&self.max_us.to_le_bytes());
        payload.extend_from_slice(&(self.raw.len() as u32).to_le_bytes());
        payload.extend_from_slice(&(index.len() as u32).to_le_bytes());
        payload.extend_from_slice(&index);
        payload.extend_from_slice(&compressed);
        let frame = frame(&payload);
        self.raw.clear();
        self.count = 0;
        Ok(frame)
    }
}

/// `payload` framed: magic, length, checksum.
#[must_use]
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    f.extend_from_slice(&FRAME_MAGIC);
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    f.extend_from_slice(payload);
    f
}

/// A frame header's claims: payload length and checksum. `None` when it is not a frame header.
#[must_use]
pub fn read_frame_header(h: &[u8]) -> Option<(usize, u32)> {
    if h.len() < FRAME_HEADER_LEN || h[..4] != FRAME_MAGIC {
        return None;
    }
    let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
    let crc = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    (BLOCK_HEADER_LEN..=MAX_FRAME_BYTES)
        .contains(&len)
        .then_some((len, crc))
}

/// What a block's payload says about itself, without decompressing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    pub count: u32,
    pub min_us: Micros,
    pub max_us: Micros,
    pub raw_len: u32,
    /// The index's length; 0 for a block without one.
    pub index_len: u32,
}

impl BlockHeader {
    /// Where the index starts in the payload.
    #[must_use]
    pub fn index_offset(&self) -> usize {
        INDEXED_BLOCK_HEADER_LEN
    }

    /// Where the compressed entries start in the payload.
    #[must_use]
    pub fn data_offset(&self) -> usize {
        if self.index_len == 0 {
            BLOCK_HEADER_LEN
        } else {
            INDEXED_BLOCK_HEADER_LEN + self.index_len as usize
        }
    }
}

/// The header at the start of a block's payload (`payload` may be only its first
/// [`INDEXED_BLOCK_HEADER_LEN`] bytes).
#[must_use]
pub fn read_block_header(payload: &[u8]) -> Option<BlockHeader> {
    let indexed = match payload.first() {
        Some(&KIND_BLOCK) => false,
        Some(&KIND_INDEXED_BLOCK) => true,
        _ => return None,
    };
    let need = if indexed {
        INDEXED_BLOCK_HEADER_LEN
    } else {
        BLOCK_HEADER_LEN
    };
    if payload.len() < need {
        return None;
    }
    let u32_at =
        |i: usize| u32::from_le_bytes([payload[i], payload[i + 1], payload[i + 2], payload[i + 3]]);
    let i64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&payload[i..i + 8]);
        i64::from_le_bytes(b)
    };
    let index_len = if indexed { u32_at(25) } else { 0 };
    // An indexed block always has an index (a block without one is kind 1).
    if indexed && index_len == 0 {
        return None;
    }
    Some(BlockHeader {
        count: u32_at(1),
        min_us: i64_at(5),
        max_us: i64_at(13),
        raw_len: u32_at(21),
        index_len,
    })
}

/// Why a block's contents cannot be read (its frame checked out, so this is a bug or a
/// deliberate edit, but it is reported, never a panic).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("not a block")]
    NotABlock,
    #[error("cannot decompress: {0}")]
    Decompress(String),
    #[error("entry {0} is malformed")]
    Entry(u32),
}

/// What a reader keeps of a block's events (see [`decode_block_keeping`]).
pub trait Keep: Sync {
    /// Whether [`Self::glance`] wants the block lower-cased (ASCII) too.
    fn wants_lower_case(&self) -> bool {
        false
    }
    /// From the receive times and bodies alone, before anything is decoded or copied: sets
    /// `keep[i]` to `false` for each event `i` to drop. `bodies[i]` is where event `i`'s body
    /// lies in `raw`, the whole decompressed block (and at the same place in `lower`, it
    /// lower-cased, when asked for).
    fn glance(
        &self,
        _raw: &[u8],
        _lower: Option<&[u8]>,
        _events: &[(Micros, std::ops::Range<usize>)],
        _keep: &mut [bool],
    ) {
    }
    /// The whole event, once it passed [`Self::glance`].
    fn event(&self, m: &RawMessage) -> bool;
}

/// Keeps everything.
pub struct KeepAll;

impl Keep for KeepAll {
    fn event(&self, _: &RawMessage) -> bool {
        true
    }
}

/// The entries of a block's payload (frame already checked).
pub fn decode_block(payload: &[u8]) -> Result<(BlockHeader, Vec<Entry>), BlockError> {
    decode_block_keeping(payload, &KeepAll, &mut BlockScratch::default())
}

/// Buffers [`decode_block_keeping`] reuses from one block to the next (a pass over a journal
/// decompresses thousands).
#[derive(Default)]
pub struct BlockScratch {
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
    raw: Vec<u8>,
    lower: Vec<u8>,
}

/// [`decode_block`] with only the events `keep` passes (gaps are all kept): an event dropped
/// at a glance is not copied out of the block.
pub fn decode_block_keeping(
    payload: &[u8],
    keep: &dyn Keep,
    scratch: &mut BlockScratch,
) -> Result<(BlockHeader, Vec<Entry>), BlockError> {
    let header = read_block_header(payload).ok_or(BlockError::NotABlock)?;
    if header.raw_len as usize > MAX_FRAME_BYTES {
        return Err(BlockError::Decompress("claims an absurd size".into()));
    }
    let data = payload
        .get(header.data_offset()..)
        .ok_or_else(|| BlockError::Decompress("the index runs past the block".into()))?;
    let BlockScratch {
        decompressor,
        raw,
        lower,
    } = scratch;
    let decompressor = match decompressor {
        Some(d) => d,
        None => decompressor.insert(
            zstd::bulk::Decompressor::new().map_err(|e| BlockError::Decompress(e.to_string()))?,
        ),
    };
    raw.clear();
    raw.reserve(header.raw_len as usize);
    let n = decompressor
        .decompress_to_buffer(data, raw)
        .map_err(|e| BlockError::Decompress(e.to_string()))?;
    if n != header.raw_len as usize {
        return Err(BlockError::Decompress(format!(
            "{n} bytes where the header says {}",
            header.raw_len
        )));
    }
    let raw: &[u8] = raw;
    let lower: Option<&[u8]> = if keep.wants_lower_case() {
        lower.clear();
        lower.extend_from_slice(raw);
        lower.make_ascii_lowercase();
        Some(lower)
    } else {
        None
    };
    let mut r = Cursor::new(raw);
    // The count is a claim: room for no more entries than the bytes can hold (the smallest, an
    // empty event, takes 13 bytes; found by the fuzz target: a forged count aborted on
    // allocation).
    let room = (header.count as usize).min(raw.len() / 13 + 1);
    let mut parts = Vec::with_capacity(room);
    for i in 0..header.count {
        parts.push(read_parts(&mut r).ok_or(BlockError::Entry(i))?);
    }
    let at = |b: &[u8]| b.as_ptr() as usize - raw.as_ptr() as usize;
    let events: Vec<(Micros, std::ops::Range<usize>)> = parts
        .iter()
        .filter_map(|p| match p {
            Parts::Event(e) => Some((e.received_us, at(e.body)..at(e.body) + e.body.len())),
            Parts::Gap(_) => None,
        })
        .collect();
    let mut kept = vec![true; events.len()];
    keep.glance(raw, lower, &events, &mut kept);
    let mut kept = kept.into_iter();
    let mut entries = Vec::with_capacity(room);
    for (i, p) in (0u32..).zip(parts) {
        let entry = match p {
            Parts::Event(_) if !kept.next().unwrap_or(true) => continue,
            Parts::Event(e) => match e.into_message().ok_or(BlockError::Entry(i))? {
                m if !keep.event(&m) => continue,
                m => Entry::Event(m),
            },
            Parts::Gap(g) => g,
        };
        entries.push(entry);
    }
    Ok((header, entries))
}

/// An event's fields as they lie in the block.
struct EventParts<'a> {
    received_us: Micros,
    routing_key: &'a [u8],
    props: &'a [u8],
    body: &'a [u8],
    cut: &'a [u8],
}

impl EventParts<'_> {
    fn into_message(self) -> Option<RawMessage> {
        let props = if self.props.is_empty() {
            None
        } else {
            serde_json::from_slice::<AmqpProps>(self.props)
                .ok()
                .map(Box::new)
        };
        let precut = if self.cut.is_empty() {
            None
        } else {
            let cut: Cut<'_> = serde_json::from_slice(self.cut).ok()?;
            Some(Box::new(Precut {
                header: cut.header.into_owned(),
                size_bytes: cut.size,
            }))
        };
        Some(RawMessage {
            received_us: self.received_us,
            routing_key: String::from_utf8_lossy(self.routing_key).into_owned(),
            props,
            body: self.body.to_vec(),
            precut,
        })
    }
}

enum Parts<'a> {
    Event(EventParts<'a>),
    Gap(Entry),
}

fn read_parts<'a>(r: &mut Cursor<'a>) -> Option<Parts<'a>> {
    match r.u8()? {
        ENTRY_EVENT => Some(Parts::Event(EventParts {
            received_us: r.i64()?,
            routing_key: r.bytes()?,
            props: r.bytes()?,
            body: r.bytes()?,
            cut: r.bytes()?,
        })),
        ENTRY_GAP => {
            let start_us = r.i64()?;
            let end_us = r.i64()?;
            let lossless = r.u8()? != 0;
            let reason = String::from_utf8_lossy(r.bytes()?).into_owned();
            Some(Parts::Gap(Entry::Gap {
                start_us,
                end_us,
                reason,
                lossless,
            }))
        }
        _ => None,
    }
}

pub(crate) fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

pub(crate) struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Self { b, at: 0 }
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        let v = *self.b.get(self.at)?;
        self.at += 1;
        Some(v)
    }

    fn i64(&mut self) -> Option<i64> {
        let s = self.b.get(self.at..self.at + 8)?;
        self.at += 8;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Some(i64::from_le_bytes(a))
    }

    pub(crate) fn len(&mut self) -> Option<usize> {
        let mut n = 0usize;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            n |= usize::from(byte & 0x7f).checked_shl(shift)?;
            if byte & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.len()?;
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(i: i64, body: &[u8]) -> RawMessage {
        RawMessage {
            received_us: 1_000_000 + i,
            routing_key: format!("rk.{i}"),
            props: (i % 2 == 0).then(|| {
                Box::new(AmqpProps {
                    message_id: Some(format!("m{i}")),
                    headers: vec![("h".into(), "v".into())],
                    ..AmqpProps::default()
                })
            }),
            body: body.to_vec(),
            precut: None,
        }
    }

    fn push(b: &mut BlockBuilder, m: &RawMessage) {
        b.push_event(m, &candybar_core::decode::decode(m));
    }

    #[test]
    fn a_block_reads_back_what_was_written() {
        let mut b = BlockBuilder::default();
        push(&mut b, &msg(5, br#"{"event_id":"a","event_type":"x.y"}"#));
        b.push_gap(10, 20, "broker restarted", true);
        push(&mut b, &msg(2, &[0xff, 0x00, 0xfe]));
        let big = format!(
            r#"{{"event_id":"big","event_type":"t","payload":"{}"}}"#,
            "x".repeat(100)
        );
        let mut cut = msg(9, big.as_bytes());
        cut.cap_body(40);
        push(&mut b, &cut);
        let frame = b.seal(ZSTD_LEVEL).unwrap();
        assert!(b.is_empty());
        let (len, crc) = read_frame_header(&frame).unwrap();
        let payload = &frame[FRAME_HEADER_LEN..];
        assert_eq!(len, payload.len());
        assert_eq!(crc, crc32fast::hash(payload));
        let (h, entries) = decode_block(payload).unwrap();
        assert_eq!((h.count, h.min_us, h.max_us), (4, 20, 1_000_009));
        let Entry::Event(e) = &entries[0] else {
            panic!("{entries:?}")
        };
        assert_eq!(e.routing_key, "rk.5");
        assert_eq!(e.body, br#"{"event_id":"a","event_type":"x.y"}"#);
        assert!(e.props.is_none());
        let Entry::Gap {
            reason, lossless, ..
        } = &entries[1]
        else {
            panic!("{entries:?}")
        };
        assert_eq!((reason.as_str(), *lossless), ("broker restarted", true));
        let Entry::Event(e) = &entries[2] else {
            panic!("{entries:?}")
        };
        assert_eq!(e.body, [0xff, 0x00, 0xfe]);
        assert_eq!(e.props.as_ref().unwrap().message_id.as_deref(), Some("m2"));
        let Entry::Event(e) = &entries[3] else {
            panic!("{entries:?}")
        };
        let p = e.precut.as_ref().unwrap();
        assert_eq!(p.header.id.as_deref(), Some("big"));
        assert!(p.size_bytes > 100);
    }

    #[test]
    fn damaged_blocks_are_errors_not_panics() {
        let mut b = BlockBuilder::default();
        push(&mut b, &msg(1, b"hello"));
        let frame = b.seal(1).unwrap();
        let payload = &frame[FRAME_HEADER_LEN..];
        for cut in 0..payload.len() {
            let _ = decode_block(&payload[..cut]);
        }
        // Flipped compressed bytes: whatever zstd makes of them, no panic.
        let mut bad = payload.to_vec();
        bad[read_block_header(payload).unwrap().data_offset() + 2] ^= 0xff;
        let _ = decode_block(&bad);
        let mut huge = payload.to_vec();
        huge[21..25].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_block(&huge),
            Err(BlockError::Decompress(_))
        ));
    }

    #[test]
    fn segment_names_and_headers() {
        assert_eq!(segment_name(42), "0000000042.cbj");
        assert_eq!(segment_index("0000000042.cbj"), Some(42));
        assert_eq!(segment_index("42.cbj"), None);
        assert_eq!(segment_index("000000004x.cbj"), None);
        let mut h = segment_header();
        assert_eq!(check_segment_header(&h), Ok(()));
        h[16] = 9;
        assert_eq!(check_segment_header(&h), Err(HeaderProblem::Newer(9)));
        assert_eq!(
            check_segment_header(b"not a journal at all, no"),
            Err(HeaderProblem::NotASegment)
        );
    }
}
