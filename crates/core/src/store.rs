//! The event store: a ring of blocks bounded by a memory budget and an event count.
//!
//! Each block holds up to [`BLOCK_EVENTS`] events: a column of compact [`EventMeta`] (symbols,
//! times, hashes — what tables, filters and aggregates read; 36-byte rows once the block is
//! full, see `metas`) and the raw bodies. The newest block
//! stays open and uncompressed; a full block is compressed on a background thread (it stays
//! readable meanwhile), which keeps 1M typical events well under their raw size and keeps
//! compression off the ingest thread. Evicting the oldest block frees a thousand events at once.
//!
//! Sealed blocks are LZ4, dense (LZ4 HC: ~5.8× on envelopes, decompressed faster than fast
//! LZ4's output) when the compressor keeps up, loose (fast LZ4, ~4.2×) in a flood; loose blocks
//! are packed again densely when the compressor has time ([`EventStore::tidy`]).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::ops::Range;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};

use rustc_hash::{FxBuildHasher, FxHashMap};

use super::agents::AgentGraph;
use super::aggregates::Aggregates;
use super::decode::{self, Header};
use super::event::{AmqpProps, Event, RawMessage};
use super::intern::{Interner, Sym};
use super::time::Micros;

mod metas;
use metas::Metas;

/// Events per block. A sealed block of ~300-byte events is ~300 KB before compression.
pub const BLOCK_EVENTS: usize = 1024;

pub use crate::event::{EventMeta, NO_TIME, flags};

/// The hash the store keeps for ids; [`EventMeta::id_hash`] and friends. 32 bits: a `corr:`
/// lookup over a million events has about one chance in four thousand of one false match.
#[must_use]
pub fn id_hash(s: &str) -> u32 {
    if s.is_empty() {
        0
    } else {
        ((FxBuildHasher.hash_one(s) >> 32) as u32).max(1)
    }
}

/// Whether AMQP properties say more than the body already does (a `message_id` equal to the
/// event id and a JSON content type are not worth 60 bytes per event).
fn worth_keeping(p: &AmqpProps, id: Option<&str>) -> bool {
    p.timestamp_secs.is_some()
        || p.app_id.is_some()
        || p.correlation_id.is_some()
        || p.kind.is_some()
        || !p.headers.is_empty()
        || p.content_type
            .as_deref()
            .is_some_and(|c| c != "application/json")
        || p.message_id.as_deref().is_some_and(|m| Some(m) != id)
}

/// The props slot of an event whose body was cut ([`flags::HEADER_KEPT`]): the AMQP properties
/// and the header fields the cut body may have lost.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct CutSlot {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    props: Option<AmqpProps>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    correlation_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    causation_id: Option<String>,
}

/// A disconnection recorded by a source: no events were received between `start_us` and
/// `end_us`. Views draw it before the event with sequence `before_seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    pub start_us: Micros,
    pub end_us: Micros,
    pub reason: String,
    pub before_seq: u64,
    /// The source kept what was published meanwhile (a durable queue): an interruption, not
    /// a loss.
    pub lossless: bool,
}

#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// At most this many events are kept (at least this many less one block, once reached).
    pub max_events: usize,
    /// Memory the store may use for metadata, bodies and symbols, in bytes.
    pub budget_bytes: usize,
    /// Bodies longer than this are cut (the true size is kept).
    pub body_cap_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            max_events: 1_000_000,
            budget_bytes: 224 << 20,
            body_cap_bytes: 64 << 10,
        }
    }
}

/// Byte ranges of one event in its block's data.
#[derive(Clone, Copy, Debug)]
struct Span {
    /// End of the body (the body starts where the previous span's `end` is).
    body_end: u32,
    /// End of the serialized AMQP properties, which follow the body.
    end: u32,
}

enum Data {
    Open(Vec<u8>),
    /// Full and handed to the compressor; read as is until the compressed copy comes back.
    Sealing(Arc<[u8]>),
    /// LZ4 block with the uncompressed size prepended; `dense`: packed by LZ4 HC.
    Sealed {
        packed: Arc<[u8]>,
        dense: bool,
    },
}

/// What the compressor thread is asked to do.
enum Job {
    /// A full block: densely when `dense`, else fast (the store is flooded).
    Seal {
        first_seq: u64,
        raw: Arc<[u8]>,
        dense: bool,
    },
    /// A loose block (`raw_len` bytes unpacked), packed again densely.
    Repack {
        first_seq: u64,
        packed: Arc<[u8]>,
        raw_len: usize,
    },
}

/// Compresses full blocks on a named thread. Bounded both ways; when it falls behind, blocks
/// are compressed on the caller's thread instead (backpressure, never an unbounded queue).
struct Compressor {
    jobs: SyncSender<Job>,
    /// A block's first sequence number, its packed bytes, and whether they are dense.
    done: Receiver<(u64, Arc<[u8]>, bool)>,
    pending: usize,
}

const COMPRESSOR_QUEUE: usize = 8;

/// Jobs in the compressor's hands up to which it keeps up with dense packing: more, and new
/// blocks are packed fast (and densely later).
const DENSE_WHILE_PENDING: usize = 1;

/// The compressor's buffers are let go when a block made them bigger than this.
const SCRATCH_KEPT: usize = 8 << 20;

/// Blocks packed again before the heap is trimmed (each trim walks the whole heap).
const TRIM_AFTER_REPACKS: usize = 32;

/// No block sealed for this long: the store is quiet, and the compressor may be given all the
/// loose blocks it can queue.
const QUIET_US: Micros = 300_000;

impl Compressor {
    fn spawn() -> Option<Self> {
        let (jobs, job_rx) = sync_channel::<Job>(COMPRESSOR_QUEUE);
        let (done_tx, done) = sync_channel(COMPRESSOR_QUEUE * 2);
        std::thread::Builder::new()
            .name("store-compress".into())
            .spawn(move || {
                // Reused for every block: what is kept is an exact-size copy, so the heap holds
                // no half-used buffers.
                let (mut raw_buf, mut out_buf) = (Vec::new(), Vec::new());
                for job in job_rx {
                    let result = match job {
                        Job::Seal {
                            first_seq,
                            raw,
                            dense: true,
                        } => (first_seq, compress_dense(&raw, &mut out_buf), true),
                        Job::Seal { first_seq, raw, .. } => (first_seq, compress(&raw), false),
                        Job::Repack {
                            first_seq,
                            packed,
                            raw_len,
                        } => match unpack_into(&packed, raw_len, &mut raw_buf) {
                            Ok(()) => (first_seq, compress_dense(&raw_buf, &mut out_buf), true),
                            // Never (the store packed it): kept as it is, and never sent again.
                            Err(_) => (first_seq, packed, true),
                        },
                    };
                    // A block of huge bodies leaves no buffer of its size behind.
                    for buf in [&mut raw_buf, &mut out_buf] {
                        if buf.capacity() > SCRATCH_KEPT {
                            *buf = Vec::new();
                        }
                    }
                    if done_tx.send(result).is_err() {
                        break;
                    }
                }
            })
            .ok()?;
        Some(Self {
            jobs,
            done,
            pending: 0,
        })
    }
}

struct Block {
    first_seq: u64,
    metas: Metas,
    spans: Vec<Span>,
    data: Data,
}

impl Block {
    fn new(first_seq: u64) -> Self {
        Self {
            first_seq,
            metas: Metas::with_capacity(BLOCK_EVENTS),
            spans: Vec::with_capacity(BLOCK_EVENTS),
            data: Data::Open(Vec::with_capacity(BLOCK_EVENTS * 400)),
        }
    }

    /// Length of the block's bytes (bodies and properties), packed or not.
    fn raw_len(&self) -> usize {
        self.spans.last().map_or(0, |s| s.end as usize)
    }

    fn memory_bytes(&self) -> usize {
        let data = match &self.data {
            Data::Open(v) => v.capacity(),
            Data::Sealing(a) => a.len(),
            Data::Sealed { packed, .. } => packed.len(),
        };
        self.metas.memory_bytes()
            + self.spans.capacity() * size_of::<Span>()
            + data
            + size_of::<Self>()
    }

    /// Closes the block to new events and hands its bytes to `compressor` (or compresses them
    /// here, fast, when there is none or it is busy).
    fn seal(&mut self, compressor: Option<&mut Compressor>) {
        let Data::Open(raw) = std::mem::replace(&mut self.data, Data::Open(Vec::new())) else {
            return;
        };
        let raw: Arc<[u8]> = raw.into();
        let queued = compressor.is_some_and(|c| {
            let job = Job::Seal {
                first_seq: self.first_seq,
                raw: raw.clone(),
                dense: c.pending <= DENSE_WHILE_PENDING,
            };
            c.pending < COMPRESSOR_QUEUE && c.jobs.try_send(job).is_ok() && {
                c.pending += 1;
                true
            }
        });
        self.data = if queued {
            Data::Sealing(raw)
        } else {
            Data::Sealed {
                packed: compress(&raw),
                dense: false,
            }
        };
        self.metas.seal();
        self.spans.shrink_to_fit();
    }
}

/// A read-only view of one block, for scans (filters, export).
pub struct BlockView<'a> {
    block: &'a Block,
}

impl<'a> BlockView<'a> {
    #[must_use]
    pub fn first_seq(&self) -> u64 {
        self.block.first_seq
    }

    /// Events in the block.
    #[must_use]
    pub fn len(&self) -> usize {
        self.block.metas.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Event `i`'s metadata.
    #[must_use]
    #[inline]
    pub fn meta(&self, i: usize) -> Option<EventMeta> {
        self.block.metas.get(i)
    }

    /// Each event's metadata, in order.
    pub fn metas(&self) -> impl Iterator<Item = EventMeta> + 'a {
        self.block.metas.iter()
    }

    /// Whether the block is full (no more events will join it).
    #[must_use]
    pub fn is_full(&self) -> bool {
        !matches!(self.block.data, Data::Open(_))
    }

    /// The block's bytes (bodies and properties), decompressed into `scratch` when sealed.
    pub fn data<'s>(&self, scratch: &'s mut Vec<u8>) -> &'s [u8]
    where
        'a: 's,
    {
        match &self.block.data {
            Data::Open(v) => v,
            Data::Sealing(a) => a,
            Data::Sealed { packed, .. } => {
                if let Err(err) = unpack_into(packed, self.block.raw_len(), scratch) {
                    scratch.clear();
                    tracing::error!("store block {} is corrupt: {err}", self.block.first_seq);
                }
                scratch
            }
        }
    }

    /// Copies the bytes of events `events` into `buf` (decompressing a sealed block whole) and
    /// returns the block offset of `buf[0]`: `buf[x - base]` is the block's byte `x`.
    pub fn data_into(&self, events: Range<usize>, buf: &mut Vec<u8>) -> usize {
        match &self.block.data {
            Data::Sealed { .. } => {
                let mut owned = std::mem::take(buf);
                let len = self.data(&mut owned).len();
                owned.truncate(len);
                *buf = owned;
                0
            }
            Data::Open(_) | Data::Sealing(_) => {
                let lo = if events.start == 0 {
                    0
                } else {
                    self.block.spans[events.start - 1].end as usize
                };
                let hi = events
                    .end
                    .checked_sub(1)
                    .map_or(lo, |last| self.block.spans[last].end as usize);
                let mut scratch = Vec::new();
                let data = self.data(&mut scratch);
                buf.clear();
                buf.extend_from_slice(data.get(lo..hi).unwrap_or_default());
                lo
            }
        }
    }

    /// Range of event `i`'s body in [`Self::data`].
    #[must_use]
    pub fn body_range(&self, i: usize) -> Range<usize> {
        let start = if i == 0 {
            0
        } else {
            self.block.spans[i - 1].end as usize
        };
        start..self.block.spans[i].body_end as usize
    }

    fn props_range(&self, i: usize) -> Range<usize> {
        self.block.spans[i].body_end as usize..self.block.spans[i].end as usize
    }
}

/// Counts per symbol of what the store holds now (a small index for "top N" and for skipping).
#[derive(Default)]
pub struct Counts {
    pub by_kind: FxHashMap<Sym, u64>,
    pub by_domain: FxHashMap<Sym, u64>,
    pub by_source: FxHashMap<Sym, u64>,
    pub by_agent: FxHashMap<Sym, u64>,
}

impl Counts {
    fn add(&mut self, m: &EventMeta) {
        *self.by_kind.entry(m.kind).or_default() += 1;
        *self.by_domain.entry(m.domain).or_default() += 1;
        *self.by_source.entry(m.source).or_default() += 1;
        *self.by_agent.entry(m.agent).or_default() += 1;
    }

    fn remove(&mut self, m: &EventMeta) {
        for (map, sym) in [
            (&mut self.by_kind, m.kind),
            (&mut self.by_domain, m.domain),
            (&mut self.by_source, m.source),
            (&mut self.by_agent, m.agent),
        ] {
            if let Some(c) = map.get_mut(&sym) {
                *c -= 1;
                if *c == 0 {
                    map.remove(&sym);
                }
            }
        }
    }
}

pub struct EventStore {
    config: StoreConfig,
    blocks: VecDeque<Block>,
    interner: Interner,
    aggregates: Aggregates,
    agents: AgentGraph,
    counts: Counts,
    gaps: VecDeque<Gap>,
    next_seq: u64,
    /// Memory of sealed blocks (the open one is measured when asked).
    sealed_bytes: usize,
    evicted: u64,
    compressor: Option<Compressor>,
    /// First sequence numbers of blocks packed fast, to pack again densely, oldest first.
    loose: VecDeque<u64>,
    /// Blocks packed again densely since the heap was last trimmed.
    repacked: usize,
    /// When the last block was sealed (the store's own clock, for [`Self::tidy`]).
    last_seal: std::time::Instant,
}

impl Default for EventStore {
    fn default() -> Self {
        Self::new(StoreConfig::default())
    }
}

impl EventStore {
    #[must_use]
    pub fn new(config: StoreConfig) -> Self {
        Self::with_compressor(config, Compressor::spawn())
    }

    /// A store that compresses full blocks on the inserting thread instead of a background one:
    /// everything `insert` costs on one core (benchmarks of "one core").
    #[must_use]
    pub fn single_threaded(config: StoreConfig) -> Self {
        Self::with_compressor(config, None)
    }

    fn with_compressor(config: StoreConfig, compressor: Option<Compressor>) -> Self {
        let interner = Interner::with_budget((config.budget_bytes / 8).max(1 << 20));
        Self {
            config,
            blocks: VecDeque::new(),
            interner,
            aggregates: Aggregates::default(),
            agents: AgentGraph::default(),
            counts: Counts::default(),
            gaps: VecDeque::new(),
            next_seq: 0,
            sealed_bytes: 0,
            evicted: 0,
            compressor,
            loose: VecDeque::new(),
            repacked: 0,
            last_seal: std::time::Instant::now(),
        }
    }

    #[must_use]
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Decodes and stores a message; returns its sequence number.
    pub fn insert(&mut self, msg: &RawMessage) -> u64 {
        let (header, size_bytes): (Header<'_>, u64) = match &msg.precut {
            Some(p) => (p.header.clone(), p.size_bytes),
            None => (decode::read_header(&msg.body), msg.body.len() as u64),
        };
        let d = decode::complete(header, &msg.routing_key, msg.props.as_deref());
        let body = &msg.body[..msg.body.len().min(self.config.body_cap_bytes)];
        let truncated = msg.precut.is_some() || body.len() < msg.body.len();

        let kind = self.interner.intern(&d.kind);
        let routing_key = if msg.routing_key == *d.kind {
            Sym::NONE
        } else {
            self.interner.intern(&msg.routing_key)
        };
        let mut flags = 0;
        if truncated {
            flags |= flags::TRUNCATED | flags::HEADER_KEPT;
        }
        let corr = &d.header.correlation_ids;
        if corr.len() > 2 || (corr.len() == 2 && d.header.causation_id.is_some()) {
            flags |= flags::MORE_CORRELATIONS;
        }
        let meta = EventMeta {
            received_us: msg.received_us,
            published_us: d.published_us.unwrap_or(NO_TIME),
            id_hash: d.id.as_deref().map_or(0, id_hash),
            corr_hash: corr.first().map_or(0, |c| id_hash(c)),
            cause_hash: d
                .header
                .causation_id
                .as_deref()
                .or(corr.get(1).map(|c| &**c))
                .map_or(0, id_hash),
            kind,
            routing_key,
            domain: self.interner.intern(&d.domain),
            source: self.interner.intern_opt(d.source.as_deref()),
            agent: self.interner.intern_opt(d.header.agent.as_deref()),
            agent_type: self.interner.intern_opt(d.header.agent_type.as_deref()),
            session: self.interner.intern_opt(d.header.session.as_deref()),
            size_bytes: size_bytes.min(u64::from(u32::MAX)) as u32,
            status: d.status,
            body_kind: d.header.body_kind,
            flags,
        };
        self.aggregates.record(
            meta.received_us,
            d.published_us,
            meta.domain,
            meta.source,
            meta.kind,
            meta.status,
            size_bytes,
        );
        self.counts.add(&meta);
        self.agents.record(&meta);
        let props = msg
            .props
            .as_deref()
            .filter(|p| worth_keeping(p, d.header.id.as_deref()));
        let slot = if truncated {
            // The cut body no longer says all of this: kept beside it.
            let cut = CutSlot {
                props: props.cloned(),
                id: d.header.id.as_deref().map(str::to_owned),
                correlation_ids: corr.iter().map(ToString::to_string).collect(),
                causation_id: d.header.causation_id.as_deref().map(str::to_owned),
            };
            serde_json::to_vec(&cut).unwrap_or_default()
        } else {
            props
                .filter(|p| !p.is_empty())
                .and_then(|p| serde_json::to_vec(p).ok())
                .unwrap_or_default()
        };
        self.push(meta, body, &slot);
        self.next_seq - 1
    }

    /// Appends an event: its body, then its slot (the serialized props, or a [`CutSlot`]).
    fn push(&mut self, meta: EventMeta, body: &[u8], slot: &[u8]) {
        let need_new = self
            .blocks
            .back()
            .is_none_or(|b| b.metas.len() >= BLOCK_EVENTS);
        if need_new {
            self.collect_compressed(false);
            if let Some(last) = self.blocks.back_mut() {
                last.seal(self.compressor.as_mut());
                // Packed fast here (the compressor was busy): densely later.
                if self.compressor.is_some()
                    && matches!(last.data, Data::Sealed { dense: false, .. })
                {
                    self.loose.push_back(last.first_seq);
                }
                self.sealed_bytes += last.memory_bytes();
                self.last_seal = std::time::Instant::now();
            }
            self.blocks.push_back(Block::new(self.next_seq));
            self.enforce_limits();
            self.tidy();
        }
        let Some(block) = self.blocks.back_mut() else {
            return;
        };
        let Data::Open(data) = &mut block.data else {
            return;
        };
        data.extend_from_slice(body);
        let body_end = data.len() as u32;
        data.extend_from_slice(slot);
        block.spans.push(Span {
            body_end,
            end: data.len() as u32,
        });
        block.metas.push(meta);
        self.next_seq += 1;
    }

    fn enforce_limits(&mut self) {
        while self.blocks.len() > 1 {
            // Room for the new (empty) block to fill without passing the limit.
            let over_count = self.len() + BLOCK_EVENTS > self.config.max_events.max(BLOCK_EVENTS);
            let over_budget = self.memory_bytes() > self.config.budget_bytes;
            if !(over_count || over_budget) {
                break;
            }
            let Some(old) = self.blocks.pop_front() else {
                break;
            };
            self.sealed_bytes = self.sealed_bytes.saturating_sub(old.memory_bytes());
            self.evicted += old.metas.len() as u64;
            for m in old.metas.iter() {
                self.counts.remove(&m);
            }
            let first = self.first_seq();
            while self.gaps.front().is_some_and(|g| g.before_seq < first) {
                self.gaps.pop_front();
            }
            while self.loose.front().is_some_and(|&s| s < first) {
                self.loose.pop_front();
            }
        }
    }

    /// Swaps in blocks the compressor has finished; with `wait`, waits for all of them.
    fn collect_compressed(&mut self, wait: bool) {
        let Some(c) = self.compressor.as_mut() else {
            return;
        };
        let mut gone = false;
        while c.pending > 0 {
            let (first_seq, packed, dense) = if wait {
                let Ok(r) = c.done.recv() else {
                    gone = true;
                    break;
                };
                r
            } else {
                match c.done.try_recv() {
                    Ok(r) => r,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        gone = true;
                        break;
                    }
                }
            };
            c.pending -= 1;
            if let Some(block) = block_at(&mut self.blocks, first_seq) {
                let before = block.memory_bytes();
                if matches!(block.data, Data::Sealed { dense: false, .. }) {
                    self.repacked += 1;
                }
                block.data = Data::Sealed { packed, dense };
                self.sealed_bytes = self.sealed_bytes.saturating_sub(before) + block.memory_bytes();
                if !dense {
                    self.loose.push_back(first_seq);
                }
            }
        }
        // The compressor thread is gone (it never ends on its own): what it had stays unpacked,
        // loose blocks stay loose, and nobody waits for it.
        if gone {
            self.compressor = None;
            self.loose.clear();
        }
    }

    /// Hands loose blocks to the compressor while it has nothing else to do (never waits): one
    /// at a time while events arrive, as many as it queues when the store is quiet. The window
    /// calls it at each drain of its source (and asks for frames while [`Self::tidying`]);
    /// ingest calls it at every new block. Once a flood's blocks are packed again, what their
    /// fast copies held goes back to the system: they were freed among blocks that stay, where
    /// the allocator keeps the holes.
    pub fn tidy(&mut self) {
        let quiet = self.last_seal.elapsed().as_micros() >= QUIET_US as u128;
        self.tidy_as(quiet);
    }

    /// [`Self::tidy`], `quiet` or not.
    fn tidy_as(&mut self, quiet: bool) {
        self.collect_compressed(false);
        let Some(c) = self.compressor.as_mut() else {
            return;
        };
        let room = if quiet { COMPRESSOR_QUEUE } else { 1 };
        while c.pending < room
            && let Some(first_seq) = self.loose.pop_front()
        {
            // Evicted meanwhile, or already dense: nothing to do.
            let Some(block) = block_at(&mut self.blocks, first_seq) else {
                continue;
            };
            let Data::Sealed {
                packed,
                dense: false,
            } = &block.data
            else {
                continue;
            };
            let job = Job::Repack {
                first_seq,
                packed: packed.clone(),
                raw_len: block.raw_len(),
            };
            match c.jobs.try_send(job) {
                Ok(()) => c.pending += 1,
                Err(TrySendError::Full(_)) => {
                    self.loose.push_front(first_seq);
                    break;
                }
                // The compressor thread is gone: blocks stay as they are.
                Err(TrySendError::Disconnected(_)) => {
                    self.compressor = None;
                    self.loose.clear();
                    return;
                }
            }
        }
        let settled = self.loose.is_empty() && c.pending == 0;
        if settled && (self.repacked >= TRIM_AFTER_REPACKS || (quiet && self.repacked > 0)) {
            self.repacked = 0;
            give_back_freed_memory();
        }
    }

    /// Whether loose blocks wait to be packed again ([`Self::tidy`] has work).
    #[must_use]
    pub fn tidying(&self) -> bool {
        self.compressor.as_ref().is_some_and(|c| c.pending > 0) || !self.loose.is_empty()
    }

    /// Waits until every full block is compressed (for measurements and for stores read at
    /// once: time travel, search); loose blocks stay loose ([`Self::compact`] packs them).
    pub fn flush(&mut self) {
        self.collect_compressed(true);
    }

    /// [`Self::flush`], then every loose block packed again densely, waiting for it (for
    /// measurements and tests).
    pub fn compact(&mut self) {
        self.collect_compressed(true);
        while !self.loose.is_empty() && self.compressor.is_some() {
            self.tidy_as(true);
            self.collect_compressed(true);
        }
        self.tidy_as(true);
    }

    /// How many sealed blocks are packed fast, waiting to be packed densely.
    #[must_use]
    pub fn loose_blocks(&self) -> usize {
        self.blocks
            .iter()
            .filter(|b| matches!(b.data, Data::Sealed { dense: false, .. }))
            .count()
    }

    /// Records a disconnection before the next event.
    pub fn record_gap(
        &mut self,
        start_us: Micros,
        end_us: Micros,
        reason: impl Into<String>,
        lossless: bool,
    ) {
        self.gaps.push_back(Gap {
            start_us,
            end_us,
            reason: reason.into(),
            before_seq: self.next_seq,
            lossless,
        });
        if self.gaps.len() > 10_000 {
            self.gaps.pop_front();
        }
    }

    #[must_use]
    pub fn gaps(&self) -> &VecDeque<Gap> {
        &self.gaps
    }

    /// Sequence number of the oldest event held.
    #[must_use]
    pub fn first_seq(&self) -> u64 {
        self.blocks.front().map_or(self.next_seq, |b| b.first_seq)
    }

    /// Sequence number the next event will get.
    #[must_use]
    pub fn end_seq(&self) -> u64 {
        self.next_seq
    }

    /// Events held now.
    #[must_use]
    pub fn len(&self) -> usize {
        (self.next_seq - self.first_seq()) as usize
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events dropped from the front so far.
    #[must_use]
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    pub fn memory_bytes(&self) -> usize {
        let open = self
            .blocks
            .back()
            .filter(|b| matches!(b.data, Data::Open(_)))
            .map_or(0, Block::memory_bytes);
        self.sealed_bytes + open + self.interner.memory_bytes()
    }

    /// Fill relative to the event limit, 0..=1.
    #[must_use]
    pub fn fill(&self) -> f64 {
        (self.len() as f64 / self.config.max_events.max(1) as f64).min(1.0)
    }

    #[must_use]
    pub fn interner(&self) -> &Interner {
        &self.interner
    }

    #[must_use]
    pub fn agents(&self) -> &AgentGraph {
        &self.agents
    }

    #[must_use]
    pub fn aggregates(&self) -> &Aggregates {
        &self.aggregates
    }

    #[must_use]
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    fn locate(&self, seq: u64) -> Option<(&Block, usize)> {
        let first = self.first_seq();
        if seq < first || seq >= self.next_seq {
            return None;
        }
        // Every block but the last is full, so the block index is a division.
        let block = self
            .blocks
            .get(((seq - first) / BLOCK_EVENTS as u64) as usize)?;
        let i = (seq - block.first_seq) as usize;
        (i < block.metas.len()).then_some((block, i))
    }

    #[must_use]
    pub fn meta(&self, seq: u64) -> Option<EventMeta> {
        self.locate(seq).and_then(|(b, i)| b.metas.get(i))
    }

    /// When the oldest event held was received.
    #[must_use]
    pub fn oldest_received_us(&self) -> Option<Micros> {
        self.meta(self.first_seq()).map(|m| m.received_us)
    }

    /// Blocks holding events from `from_seq` on, oldest first.
    pub fn blocks_from(&self, from_seq: u64) -> impl Iterator<Item = BlockView<'_>> {
        let first = self.first_seq();
        let skip = (from_seq.saturating_sub(first) / BLOCK_EVENTS as u64) as usize;
        self.blocks
            .iter()
            .skip(skip)
            .map(|block| BlockView { block })
    }

    /// The whole event, decoded again from its body (for the detail pane, `tail`, export).
    #[must_use]
    pub fn get(&self, seq: u64) -> Option<Event> {
        let (block, i) = self.locate(seq)?;
        let view = BlockView { block };
        let mut scratch = Vec::new();
        let data = view.data(&mut scratch);
        self.materialize(&view, data, i)
    }

    /// Calls `f` with each event in `range` (sequence numbers), decompressing each block once.
    pub fn for_each_event(&self, range: Range<u64>, mut f: impl FnMut(Event)) {
        let mut scratch = Vec::new();
        for view in self.blocks_from(range.start) {
            let first = view.first_seq();
            if first >= range.end {
                break;
            }
            let data = view.data(&mut scratch);
            for i in 0..view.len() {
                let seq = first + i as u64;
                if range.contains(&seq)
                    && let Some(event) = self.materialize(&view, data, i)
                {
                    f(event);
                }
            }
        }
    }

    fn materialize(&self, view: &BlockView<'_>, data: &[u8], i: usize) -> Option<Event> {
        let m = view.meta(i)?;
        let body = data.get(view.body_range(i)).unwrap_or_default().to_vec();
        let slot = data.get(view.props_range(i)).filter(|p| !p.is_empty());
        let (props, header): (Option<Box<AmqpProps>>, Header<'_>) =
            if m.flags & flags::HEADER_KEPT != 0 {
                let cut: CutSlot = slot
                    .and_then(|p| serde_json::from_slice(p).ok())
                    .unwrap_or_default();
                let header = Header {
                    body_kind: m.body_kind,
                    id: cut.id.map(Cow::Owned),
                    correlation_ids: cut.correlation_ids.into_iter().map(Cow::Owned).collect(),
                    causation_id: cut.causation_id.map(Cow::Owned),
                    ..Header::default()
                };
                (cut.props.map(Box::new), header)
            } else {
                let props = slot.and_then(|p| serde_json::from_slice(p).ok());
                let header = if m.body_kind.is_json() {
                    decode::read_header(&body)
                } else {
                    Header::default()
                };
                (props, header)
            };
        let correlation_ids: Vec<String> = if header.correlation_ids.is_empty() {
            props
                .as_ref()
                .and_then(|p| p.correlation_id.clone())
                .into_iter()
                .collect()
        } else {
            header
                .correlation_ids
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        let id = header
            .id
            .as_deref()
            .map(str::to_owned)
            .or_else(|| props.as_ref().and_then(|p| p.message_id.clone()));
        let s = |sym: Sym| self.interner.resolve_opt(sym).map(str::to_owned);
        Some(Event {
            seq: view.first_seq() + i as u64,
            received_us: m.received_us,
            published_us: m.published(),
            id,
            kind: self.interner.resolve(m.kind).to_owned(),
            routing_key: self.interner.resolve(m.routing_key_sym()).to_owned(),
            domain: self.interner.resolve(m.domain).to_owned(),
            source: s(m.source),
            agent: s(m.agent),
            agent_type: s(m.agent_type),
            session: s(m.session),
            correlation_ids,
            causation_id: header.causation_id.as_deref().map(str::to_owned),
            status: m.status,
            body_kind: m.body_kind,
            size_bytes: u64::from(m.size_bytes),
            truncated: m.truncated(),
            props,
            body,
        })
    }

    /// Sequence numbers of events whose id, correlation or causation is `id`, oldest first.
    /// A scan of the compact metadata (no per-id map: memory is the budget that matters here).
    #[must_use]
    pub fn related(&self, id: &str) -> Vec<u64> {
        let h = id_hash(id);
        if h == 0 {
            return Vec::new();
        }
        self.blocks
            .iter()
            .flat_map(|b| {
                b.metas
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.related_to(h))
                    .map(|(i, _)| b.first_seq + i as u64)
            })
            .collect()
    }
}

/// The block holding `first_seq` as its first event, if it is still held.
fn block_at(blocks: &mut VecDeque<Block>, first_seq: u64) -> Option<&mut Block> {
    let front = blocks.front()?.first_seq;
    let idx = first_seq.checked_sub(front)? / BLOCK_EVENTS as u64;
    blocks
        .get_mut(usize::try_from(idx).ok()?)
        .filter(|b| b.first_seq == first_seq)
}

/// Fast LZ4: ~4.2× on blocks of envelopes at ~600 MB/s here, for when time counts (a flood, a
/// store without a compressor thread).
fn compress(raw: &[u8]) -> Arc<[u8]> {
    lz4_flex::block::compress_prepend_size(raw).into()
}

/// LZ4 HC, level 3: ~5.8× on blocks of envelopes at ~140 MB/s here, in the same format (so
/// read the same way), and decompressed ~15 % faster than [`compress`]'s output — which is what
/// free-text search over a million events needs (zstd-1 packs 7.4× but decompresses at
/// 1.6 GB/s, LZ4 at 2–2.6 GB/s). Fast LZ4 if liblz4 fails (it does not on our own blocks).
/// `buf`: scratch, reused.
fn compress_dense(raw: &[u8], buf: &mut Vec<u8>) -> Arc<[u8]> {
    let Ok(bound) = lz4::block::compress_bound(raw.len()) else {
        return compress(raw);
    };
    buf.resize(bound + 4, 0);
    let mode = lz4::block::CompressionMode::HIGHCOMPRESSION(DENSE_LEVEL);
    match lz4::block::compress_to_buffer(raw, Some(mode), true, buf) {
        Ok(n) => Arc::from(&buf[..n]),
        Err(_) => compress(raw),
    }
}

/// LZ4 HC's level: 3 packs 5.75× at 144 MB/s on the demo's blocks here; 4: 5.89× at 129; 9:
/// 6.08× at 74.
const DENSE_LEVEL: i32 = 3;

/// Returns the heap's free pages to the system (glibc keeps freed memory between live blocks;
/// ~18 MiB after packing a flood of 1M events again, here).
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory inside glibc's allocator; it reads no
    // pointer of ours and may be called from any thread at any time.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A packed block's `raw_len` bytes into `raw` (reused; the length the store knows, not the
/// packed header's, which a corrupt block could make absurd).
fn unpack_into(
    packed: &[u8],
    raw_len: usize,
    raw: &mut Vec<u8>,
) -> Result<(), lz4_flex::block::DecompressError> {
    let (_, body) = lz4_flex::block::uncompressed_size(packed)?;
    raw.resize(raw_len, 0);
    let n = lz4_flex::block::decompress_into(body, raw)?;
    raw.truncate(n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{BodyKind, Status};

    fn v1(i: usize, kind: &str, corr: &str) -> RawMessage {
        let body = format!(
            r#"{{"event_id":"id-{i}","event_type":"{kind}","timestamp":"2026-01-27T10:00:00Z","source":{{"host":"h","app":"app-{a}"}},"correlation_ids":["{corr}"],"agent_context":{{"type":"claude-code","name":"agent-{a}"}},"payload":{{"n":{i},"text":"payload number {i}"}}}}"#,
            a = i % 7
        );
        RawMessage {
            received_us: 1_000_000 + i as i64,
            routing_key: kind.to_owned(),
            body: body.into_bytes(),
            ..RawMessage::default()
        }
    }

    #[test]
    fn stores_and_reads_back_across_sealed_blocks() {
        let mut store = EventStore::default();
        for i in 0..3000 {
            let seq = store.insert(&v1(i, "agent.thread.prompt", &format!("c-{}", i / 10)));
            assert_eq!(seq, i as u64);
        }
        assert_eq!(store.len(), 3000);
        let e = store.get(5).unwrap();
        assert_eq!(e.id.as_deref(), Some("id-5"));
        assert_eq!(e.kind, "agent.thread.prompt");
        assert_eq!(e.domain, "agent");
        assert_eq!(e.source.as_deref(), Some("app-5"));
        assert_eq!(e.agent.as_deref(), Some("agent-5"));
        assert_eq!(e.correlation_ids, vec!["c-0"]);
        assert_eq!(e.status, Status::Started);
        assert!(
            String::from_utf8(e.body)
                .unwrap()
                .contains("payload number 5\"")
        );
        // After the compressor has finished: read back from compressed blocks.
        store.flush();
        for seq in [0, 5, 1023, 1024, 2047] {
            let e = store.get(seq).unwrap();
            assert_eq!(e.id, Some(format!("id-{seq}")));
            assert!(
                String::from_utf8(e.body)
                    .unwrap()
                    .contains(&format!("payload number {seq}\""))
            );
        }
        let last = store.get(2999).unwrap(); // in the open block
        assert_eq!(last.id.as_deref(), Some("id-2999"));
        assert!(store.get(3000).is_none());
        let mut seen = 0;
        store.for_each_event(1020..1030, |e| {
            assert_eq!(e.id, Some(format!("id-{}", e.seq)));
            seen += 1;
        });
        assert_eq!(seen, 10);
    }

    #[test]
    fn loose_blocks_are_packed_again_densely_and_read_the_same() {
        // Packed fast, as in a flood (no compressor at hand), then given one.
        let n = 12 * BLOCK_EVENTS + 7;
        let msgs: Vec<_> = (0..n)
            .map(|i| v1(i, "agent.thread.prompt", &format!("c-{}", i / 10)))
            .collect();
        let mut store = EventStore::single_threaded(StoreConfig::default());
        for m in &msgs {
            store.insert(m);
        }
        store.flush();
        assert_eq!(store.loose_blocks(), 12, "fast LZ4 without a compressor");
        let fast_bytes = store.memory_bytes();
        store.compressor = Compressor::spawn();
        store.loose = store.blocks.iter().map(|b| b.first_seq).collect();
        // As an idle window does: `tidy` now and then, never waiting.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while store.tidying() {
            assert!(std::time::Instant::now() < deadline, "still tidying");
            std::thread::sleep(std::time::Duration::from_millis(5));
            store.tidy();
        }
        assert_eq!(store.loose_blocks(), 0);
        assert!(
            store.memory_bytes() < fast_bytes,
            "dense {} B, fast {fast_bytes} B",
            store.memory_bytes()
        );
        for seq in [0, 1, BLOCK_EVENTS as u64, 5000, n as u64 - 1] {
            let e = store.get(seq).unwrap();
            assert_eq!(e.body, msgs[seq as usize].body, "event {seq}");
        }
        let mut view = crate::filter::FilteredView::new(
            crate::filter::Filter::new("\"payload number 11000\"").unwrap(),
        );
        view.update(&store, 0, u64::MAX);
        assert_eq!(view.matches().iter().copied().collect::<Vec<_>>(), [11000]);

        // With its compressor from the start, every block ends dense.
        let mut store = EventStore::default();
        for m in &msgs {
            store.insert(m);
        }
        store.compact();
        assert_eq!(store.loose_blocks(), 0);
        assert_eq!(store.get(4321).unwrap().body, msgs[4321].body);
    }

    /// A compressor thread that is gone leaves nothing waiting for it: no block stays "tidying"
    /// (the window would ask for frames for ever), no flush hangs.
    #[test]
    fn a_gone_compressor_is_not_waited_for() {
        let mut store = EventStore::single_threaded(StoreConfig::default());
        for i in 0..3 * BLOCK_EVENTS {
            store.insert(&v1(i, "agent.thread.prompt", "c"));
        }
        let (jobs, _) = sync_channel(COMPRESSOR_QUEUE);
        let (_, done) = sync_channel(COMPRESSOR_QUEUE);
        store.compressor = Some(Compressor {
            jobs,
            done,
            pending: 2,
        });
        store.loose = store.blocks.iter().map(|b| b.first_seq).collect();
        assert!(store.tidying());
        store.tidy();
        assert!(!store.tidying());
        store.compact();
        assert_eq!(store.get(1500).unwrap().id.as_deref(), Some("id-1500"));
    }

    #[test]
    fn related_events_by_correlation_in_sealed_and_open_blocks() {
        let mut store = EventStore::default();
        for i in 0..2100 {
            store.insert(&v1(i, "llm.response", &format!("c-{}", i % 1000)));
        }
        assert_eq!(store.related("c-7"), vec![7, 1007, 2007]);
        // An event's own id finds it too.
        assert_eq!(store.related("id-1500"), vec![1500]);
        assert!(store.related("nope").is_empty());
    }

    #[test]
    fn evicts_whole_blocks_at_the_event_limit() {
        let mut store = EventStore::new(StoreConfig {
            max_events: 4096,
            ..StoreConfig::default()
        });
        for i in 0..20_000 {
            store.insert(&v1(i, "agent.thread.prompt", "c"));
        }
        assert!(store.len() <= 4096, "{}", store.len());
        assert!(store.len() >= 4096 - BLOCK_EVENTS);
        assert_eq!(store.first_seq() + store.len() as u64, 20_000);
        assert!(store.get(0).is_none());
        assert_eq!(store.get(19_999).unwrap().id.as_deref(), Some("id-19999"));
        assert_eq!(store.evicted() + store.len() as u64, 20_000);
        assert_eq!(
            store.counts().by_kind.values().sum::<u64>(),
            store.len() as u64
        );
        // Aggregates cover everything ever seen.
        assert_eq!(store.aggregates().total, 20_000);
    }

    #[test]
    fn evicts_under_the_memory_budget() {
        let budget = 4 << 20;
        let mut store = EventStore::new(StoreConfig {
            budget_bytes: budget,
            ..StoreConfig::default()
        });
        let mut rng_body = String::new();
        for i in 0..60_000u64 {
            // Incompressible-ish bodies so the budget, not the count, binds.
            rng_body.clear();
            let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            for _ in 0..40 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                std::fmt::Write::write_fmt(&mut rng_body, format_args!("{:x}", x & 0xffff_ffff))
                    .unwrap();
            }
            let m = RawMessage {
                received_us: i as i64,
                routing_key: "x.y".into(),
                body: rng_body.clone().into_bytes(),
                ..RawMessage::default()
            };
            store.insert(&m);
        }
        assert!(
            store.memory_bytes() <= budget + 2 * BLOCK_EVENTS * 400,
            "{}",
            store.memory_bytes()
        );
        assert!(store.len() < 60_000);
        assert!(store.get(store.end_seq() - 1).is_some());
    }

    #[test]
    fn huge_and_odd_bodies_are_kept_marked() {
        let mut store = EventStore::new(StoreConfig {
            body_cap_bytes: 1000,
            ..StoreConfig::default()
        });
        let big = format!(
            r#"{{"event_type":"big.thing.completed","event_id":"b","payload":"{}"}}"#,
            "x".repeat(10 << 20)
        );
        let seq = store.insert(&RawMessage {
            routing_key: "rk".into(),
            body: big.clone().into_bytes(),
            ..RawMessage::default()
        });
        let e = store.get(seq).unwrap();
        assert!(e.truncated);
        assert_eq!(e.size_bytes, big.len() as u64);
        assert_eq!(e.body.len(), 1000);
        assert_eq!(e.kind, "big.thing.completed");
        assert_eq!(e.routing_key, "rk");

        // Cut at the source, header read first.
        let mut m = RawMessage {
            routing_key: "rk".into(),
            body: big.clone().into_bytes(),
            ..RawMessage::default()
        };
        m.cap_body(500);
        let seq = store.insert(&m);
        let e = store.get(seq).unwrap();
        assert!(e.truncated);
        assert_eq!(e.size_bytes, big.len() as u64);
        assert_eq!(e.kind, "big.thing.completed");
        assert_eq!(
            e.id.as_deref(),
            Some("b"),
            "the id read from the whole body is kept beside the cut one"
        );

        // Ids after a long payload, an AMQP message id of its own: the envelope's ids survive
        // the cut, and the envelope's id wins over the message id.
        let late = format!(
            r#"{{"event_type":"x.y.completed","payload":"{}","event_id":"env-1","correlation_ids":["c-1","c-2","c-3"]}}"#,
            "y".repeat(5000)
        );
        let seq = store.insert(&RawMessage {
            routing_key: "x.y.completed".into(),
            body: late.into_bytes(),
            props: Some(Box::new(AmqpProps {
                message_id: Some("amqp-9".into()),
                ..AmqpProps::default()
            })),
            ..RawMessage::default()
        });
        let e = store.get(seq).unwrap();
        assert!(e.truncated);
        assert_eq!(e.id.as_deref(), Some("env-1"));
        assert_eq!(e.correlation_ids, ["c-1", "c-2", "c-3"]);
        assert_eq!(
            e.props.as_ref().and_then(|p| p.message_id.as_deref()),
            Some("amqp-9")
        );
        let mut line = Vec::new();
        crate::export::write_ndjson(&e, &mut line);
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["id"], "env-1", "{v}");
        assert_eq!(v["correlation_ids"][2], "c-3", "{v}");

        let bin = store.insert(&RawMessage {
            routing_key: "bin.blob".into(),
            body: vec![0xff, 0, 0x80, 0xfe],
            ..RawMessage::default()
        });
        let e = store.get(bin).unwrap();
        assert_eq!(e.body_kind, BodyKind::Binary);
        assert_eq!(e.kind, "bin.blob");
        assert_eq!(e.body, vec![0xff, 0, 0x80, 0xfe]);

        let empty = store.insert(&RawMessage {
            routing_key: "e".into(),
            ..RawMessage::default()
        });
        assert_eq!(store.get(empty).unwrap().body_kind, BodyKind::Empty);
    }

    #[test]
    fn props_survive_storage() {
        let mut store = EventStore::default();
        // A message id the body does not carry is kept (it is the event's only id).
        let only_id = AmqpProps {
            message_id: Some("m-7".into()),
            ..AmqpProps::default()
        };
        let seq = store.insert(&RawMessage {
            routing_key: "bin".into(),
            body: vec![0xff],
            props: Some(Box::new(only_id)),
            ..RawMessage::default()
        });
        assert_eq!(store.get(seq).unwrap().id.as_deref(), Some("m-7"));
        let props = AmqpProps {
            message_id: Some("mid".into()),
            headers: vec![("traceparent".into(), "00-abc".into())],
            ..AmqpProps::default()
        };
        let seq = store.insert(&RawMessage {
            routing_key: "a.b".into(),
            body: b"{}".to_vec(),
            props: Some(Box::new(props.clone())),
            ..RawMessage::default()
        });
        let e = store.get(seq).unwrap();
        assert_eq!(e.props.as_deref(), Some(&props));
        assert_eq!(e.id.as_deref(), Some("mid"));
        assert_eq!(e.body, b"{}");
    }

    #[test]
    fn gaps_are_recorded_before_the_next_event() {
        let mut store = EventStore::default();
        store.insert(&v1(0, "a.b", "c"));
        store.record_gap(10, 20, "connection reset", false);
        store.insert(&v1(1, "a.b", "c"));
        assert_eq!(store.gaps()[0].before_seq, 1);
        assert_eq!(store.gaps()[0].reason, "connection reset");
    }

    #[test]
    fn meta_is_compact() {
        assert!(size_of::<EventMeta>() <= 64, "{}", size_of::<EventMeta>());
    }
}
