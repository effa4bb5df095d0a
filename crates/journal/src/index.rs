//! A block's index: what the filter language asks most (type, routing key, domain, source,
//! agent, agent type, session, status, and ids / correlations), written beside the block's
//! compressed entries so a query reads and decompresses only the blocks that may hold a match.
//!
//! ```text
//! index  = CRC-32 of the rest u32 · statuses u8 · ids · lists
//! ids    = 0                                       (no event in the block has an id)
//!        | 1 · seed u64 · segment length u32 · mask u32 · segment count length u32
//!            · fingerprint count u32 · fingerprints         (a binary fuse filter, 8-bit)
//!        | 2                                       (not indexed: any id may be there)
//! lists  = length u32 · zstd( per field, in `LISTED` order: 0 · count · values  |  1 (not indexed) )
//! ```
//!
//! The id filter holds [`id_hash`] of every event's id, correlation ids and causation id: about
//! 9 bits per id, and a block without the id is read anyway 0.4 % of the time. An index that
//! does not check out (its CRC, its shape) rules nothing out: the block is read as if it had
//! none, and its own checksum decides.

use rustc_hash::{FxHashMap, FxHashSet};
use xorf::{BinaryFuse8, BinaryFuse8Ref, Filter as _, FilterRef as _};

use candybar_core::decode::Decoded;
use candybar_core::event::Status;
use candybar_core::filter::{BlockSummary, Field, SummaryField};
use candybar_core::store::id_hash;
use candybar_core::time::Micros;

/// The fields whose distinct values an index lists, in the order they are written.
pub const LISTED: [SummaryField; 7] = [
    SummaryField::Type,
    SummaryField::RoutingKey,
    SummaryField::Field(Field::Domain),
    SummaryField::Field(Field::Source),
    SummaryField::Field(Field::Agent),
    SummaryField::Field(Field::AgentType),
    SummaryField::Field(Field::Session),
];

/// A field with more distinct value bytes than this in one block is not listed (a session per
/// event, say): the index would outgrow what it saves.
const MAX_LIST_BYTES: usize = 16 << 10;

/// The most the lists of one index may take, decompressed (each field is listed only below
/// [`MAX_LIST_BYTES`]; their counts and lengths take a little more).
const MAX_LISTS_BYTES: usize = 2 * MAX_LIST_BYTES * LISTED.len();

thread_local! {
    static LISTS_DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        std::cell::RefCell::new(zstd::bulk::Decompressor::new().ok());
}

const IDS_NONE: u8 = 0;
const IDS_FUSE: u8 = 1;
const IDS_UNKNOWN: u8 = 2;

/// The zstd level of the lists (small, and mostly repeated words).
const LIST_LEVEL: i32 = 3;

fn status_bit(s: Status) -> u8 {
    match s {
        Status::Error => 1,
        Status::Completed => 2,
        Status::Started => 4,
        Status::Other => 8,
    }
}

/// An index being filled as the block's events arrive.
#[derive(Default)]
pub struct IndexBuilder {
    lists: [FxHashSet<Box<str>>; LISTED.len()],
    statuses: u8,
    ids: Vec<u64>,
    /// Events per domain, and errors: what the Charts' long ranges draw.
    domain_counts: FxHashMap<Box<str>, u32>,
    errors: u32,
}

impl IndexBuilder {
    pub fn push(&mut self, routing_key: &str, d: &Decoded<'_>) {
        let h = &d.header;
        let values = [
            Some(&*d.kind),
            Some(routing_key),
            Some(&*d.domain),
            d.source.as_deref(),
            h.agent.as_deref(),
            h.agent_type.as_deref(),
            h.session.as_deref(),
        ];
        for (set, value) in self.lists.iter_mut().zip(values) {
            if let Some(v) = value
                && !set.contains(v)
            {
                set.insert(v.into());
            }
        }
        self.statuses |= status_bit(d.status);
        self.errors += u32::from(d.status == Status::Error);
        match self.domain_counts.get_mut(&*d.domain) {
            Some(n) => *n += 1,
            None => {
                self.domain_counts.insert((*d.domain).into(), 1);
            }
        }
        let ids =
            d.id.iter()
                .chain(&h.correlation_ids)
                .chain(&h.causation_id)
                .map(|s| u64::from(id_hash(s)))
                .filter(|&k| k != 0);
        self.ids.extend(ids);
    }

    /// The index's bytes; empties the builder.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = vec![0u8; 4];
        out.push(self.statuses);
        self.ids.sort_unstable();
        self.ids.dedup();
        if self.ids.is_empty() {
            out.push(IDS_NONE);
        } else if let Ok(f) = BinaryFuse8::try_from(&self.ids) {
            out.push(IDS_FUSE);
            let d = &f.descriptor;
            out.extend_from_slice(&d.seed.to_le_bytes());
            out.extend_from_slice(&d.segment_length.to_le_bytes());
            out.extend_from_slice(&d.segment_length_mask.to_le_bytes());
            out.extend_from_slice(&d.segment_count_length.to_le_bytes());
            out.extend_from_slice(&(f.fingerprints.len() as u32).to_le_bytes());
            out.extend_from_slice(&f.fingerprints);
        } else {
            out.push(IDS_UNKNOWN);
        }
        let mut lists = Vec::new();
        for set in &self.lists {
            let bytes: usize = set.iter().map(|v| v.len() + 1).sum();
            if bytes > MAX_LIST_BYTES {
                lists.push(1);
                continue;
            }
            lists.push(0);
            let mut values: Vec<&str> = set.iter().map(|v| &**v).collect();
            values.sort_unstable();
            crate::format::put_len(&mut lists, values.len());
            for v in values {
                crate::format::put_bytes(&mut lists, v.as_bytes());
            }
        }
        // The tallies, per domain in the domain list's order (when it is listed), then errors.
        if lists_domains_listed(&self.lists) {
            lists.push(0);
            let mut domains: Vec<(&str, u32)> =
                self.domain_counts.iter().map(|(d, n)| (&**d, *n)).collect();
            domains.sort_unstable();
            for (_, n) in domains {
                crate::format::put_len(&mut lists, n as usize);
            }
            crate::format::put_len(&mut lists, self.errors as usize);
        } else {
            lists.push(1);
        }
        match zstd::bulk::compress(&lists, LIST_LEVEL) {
            Ok(z) => {
                out.extend_from_slice(&(lists.len() as u32).to_le_bytes());
                out.extend_from_slice(&z);
            }
            // Unlisted fields rule nothing out.
            Err(_) => out.clear(),
        }
        if !out.is_empty() {
            let crc = crc32fast::hash(&out[4..]);
            out[..4].copy_from_slice(&crc.to_le_bytes());
        }
        for set in &mut self.lists {
            set.clear();
        }
        self.statuses = 0;
        self.ids.clear();
        self.domain_counts.clear();
        self.errors = 0;
        out
    }
}

/// Whether the domain list is written (it is left out when too big).
fn lists_domains_listed(lists: &[FxHashSet<Box<str>>; LISTED.len()]) -> bool {
    lists[DOMAIN].iter().map(|v| v.len() + 1).sum::<usize>() <= MAX_LIST_BYTES
}

/// Where the domains are in [`LISTED`].
const DOMAIN: usize = 2;

/// How many events a block holds per domain, and how many are errors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tallies {
    pub by_domain: Vec<(String, u32)>,
    pub errors: u32,
}

/// A block's index, read back: a [`BlockSummary`] for [`candybar_core::filter::Filter`]. Its
/// bytes are kept as read: the id filter is probed in place, and the lists are decompressed
/// when a filter first asks for one (a correlation query never does).
#[derive(Debug)]
pub struct BlockIndex {
    range: (Micros, Micros),
    statuses: u8,
    bytes: Vec<u8>,
    ids: Ids,
    lists_len: usize,
    /// Where the compressed lists start in `bytes`.
    lists_at: usize,
    /// The decompressed lists (`None` inside: they do not decompress, so rule nothing out).
    lists: std::cell::OnceCell<Option<Vec<u8>>>,
}

#[derive(Clone, Debug)]
enum Ids {
    None,
    /// The filter's descriptor starts at `at` in the index's bytes; its `n` fingerprints follow.
    Fuse {
        at: usize,
        n: usize,
    },
    Unknown,
}

/// Seed, segment length, mask, segment count length: xorf's own layout of a descriptor.
const DESCRIPTOR_LEN: usize = 8 + 4 + 4 + 4;

impl BlockIndex {
    /// Reads an index's bytes; `None` when they do not check out (then nothing is ruled out).
    #[must_use]
    pub fn parse(bytes: Vec<u8>, range: (Micros, Micros)) -> Option<Self> {
        let (crc, rest) = bytes.split_first_chunk::<4>()?;
        if crc32fast::hash(rest) != u32::from_le_bytes(*crc) {
            return None;
        }
        let statuses = *bytes.get(4)?;
        let mut at = 6;
        let ids = match *bytes.get(5)? {
            IDS_NONE => Ids::None,
            IDS_UNKNOWN => Ids::Unknown,
            IDS_FUSE => {
                let d = bytes.get(at..at + DESCRIPTOR_LEN)?;
                let u32_at = |i: usize| u32::from_le_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
                let (len, mask, count_len) = (u32_at(8), u32_at(12), u32_at(16));
                let n = bytes.get(at + DESCRIPTOR_LEN..at + DESCRIPTOR_LEN + 4)?;
                let n = u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as usize;
                bytes.get(at + DESCRIPTOR_LEN + 4..(at + DESCRIPTOR_LEN + 4).checked_add(n)?)?;
                if !fuse_fits(len, mask, count_len, n) {
                    return None;
                }
                let ids = Ids::Fuse { at, n };
                at += DESCRIPTOR_LEN + 4 + n;
                ids
            }
            _ => return None,
        };
        let lists_len = bytes.get(at..at + 4)?;
        let lists_len =
            u32::from_le_bytes([lists_len[0], lists_len[1], lists_len[2], lists_len[3]]) as usize;
        if lists_len > MAX_LISTS_BYTES {
            return None;
        }
        Some(Self {
            range,
            statuses,
            ids,
            lists_len,
            lists_at: at + 4,
            bytes,
            lists: std::cell::OnceCell::new(),
        })
    }

    /// The block's events per domain and its errors; `None` for an index written before they
    /// were kept, or whose domains were too many to list.
    #[must_use]
    pub fn tallies(&self) -> Option<Tallies> {
        let mut r = crate::format::Cursor::new(self.raw_lists()?);
        let mut domains = Vec::new();
        for i in 0..LISTED.len() {
            if r.u8()? != 0 {
                continue;
            }
            let n = r.len()?;
            for _ in 0..n {
                let v = r.bytes()?;
                if i == DOMAIN {
                    domains.push(String::from_utf8_lossy(v).into_owned());
                }
            }
        }
        if r.u8()? != 0 {
            return None;
        }
        let mut by_domain = Vec::with_capacity(domains.len());
        for d in domains {
            let n = u32::try_from(r.len()?).ok()?;
            by_domain.push((d, n));
        }
        let errors = u32::try_from(r.len()?).ok()?;
        Some(Tallies { by_domain, errors })
    }

    fn raw_lists(&self) -> Option<&[u8]> {
        self.lists
            .get_or_init(|| {
                // One decompression context per thread: making one costs more than the lists.
                LISTS_DCTX.with_borrow_mut(|d| {
                    let d = d.as_mut()?;
                    d.decompress(self.bytes.get(self.lists_at..)?, self.lists_len)
                        .ok()
                        .filter(|raw| raw.len() == self.lists_len)
                })
            })
            .as_deref()
    }

    /// The values of `LISTED[field]`, each given to `each` until it returns `true`; `None`
    /// when the field is not listed or the lists do not read.
    fn scan_list(&self, field: usize, each: &mut dyn FnMut(&str) -> bool) -> Option<bool> {
        let raw = self.raw_lists()?;
        let mut r = crate::format::Cursor::new(raw);
        for i in 0..=field {
            if r.u8()? != 0 {
                if i == field {
                    return None;
                }
                continue;
            }
            let n = r.len()?;
            for _ in 0..n {
                let v = r.bytes()?;
                if i == field && each(&String::from_utf8_lossy(v)) {
                    return Some(true);
                }
            }
        }
        Some(false)
    }
}

/// Whether a fuse filter's lookups stay within its `n` fingerprints: the three probes of a key
/// land below `segment count length + 2 × segment length` when the segment length is a power of
/// two, its mask one less, and the count length a multiple of it.
fn fuse_fits(len: u32, mask: u32, count_len: u32, n: usize) -> bool {
    len.is_power_of_two()
        && mask == len - 1
        && count_len.is_multiple_of(len)
        && u64::from(count_len) + 2 * u64::from(len) <= n as u64
        && n < u32::MAX as usize
}

impl BlockSummary for BlockIndex {
    fn time_range(&self) -> (Micros, Micros) {
        self.range
    }

    fn any_value(&self, field: SummaryField, test: &mut dyn FnMut(&str) -> bool) -> Option<bool> {
        let i = LISTED.iter().position(|f| *f == field)?;
        self.scan_list(i, test)
    }

    fn may_have_status(&self, status: Status) -> bool {
        self.statuses & status_bit(status) != 0
    }

    fn may_relate(&self, hash: u32) -> bool {
        match self.ids {
            Ids::None => false,
            Ids::Fuse { at, n } => {
                let fingerprints = at + DESCRIPTOR_LEN + 4;
                BinaryFuse8Ref::from_dma(
                    &self.bytes[at..at + DESCRIPTOR_LEN],
                    &self.bytes[fingerprints..fingerprints + n],
                )
                .contains(&u64::from(hash))
            }
            Ids::Unknown => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candybar_core::event::RawMessage;
    use candybar_core::filter::Filter;

    fn msg(kind: &str, corr: &str, session: &str) -> RawMessage {
        RawMessage {
            received_us: 5,
            routing_key: format!("rk.{kind}"),
            body: format!(
                r#"{{"event_id":"id-{corr}-{kind}","event_type":"{kind}","correlation_ids":["{corr}"],"agent_context":{{"session_id":"{session}"}}}}"#
            )
            .into_bytes(),
            ..RawMessage::default()
        }
    }

    fn index_of(msgs: &[RawMessage]) -> (Vec<u8>, BlockIndex) {
        let mut b = IndexBuilder::default();
        for m in msgs {
            b.push(&m.routing_key, &candybar_core::decode::decode(m));
        }
        let bytes = b.finish();
        let index = BlockIndex::parse(bytes.clone(), (0, 10)).expect("the index reads back");
        (bytes, index)
    }

    fn may(index: &BlockIndex, expr: &str) -> bool {
        Filter::new(expr).unwrap().may_match_block(index, 10)
    }

    #[test]
    fn an_index_rules_out_what_its_block_does_not_hold() {
        let msgs: Vec<_> = (0..500)
            .map(|i| {
                msg(
                    &format!("agent.step{}.completed", i % 7),
                    &format!("c{i}"),
                    "s-1",
                )
            })
            .collect();
        let (_, index) = index_of(&msgs);
        assert!(may(&index, "agent.*.completed"));
        assert!(may(&index, "rk:rk.agent.step3.completed"));
        assert!(!may(&index, "agent.step9.completed"));
        assert!(may(&index, "session:S-1"));
        assert!(!may(&index, "session:s-2"));
        assert!(!may(&index, "errors"));
        for i in 0..500 {
            assert!(may(&index, &format!("corr:c{i}")), "c{i} is in the block");
        }
        let strangers = (0..10_000)
            .filter(|i| may(&index, &format!("corr:other-{i}")))
            .count();
        assert!(
            strangers < 100,
            "{strangers} of 10,000 absent ids were let through"
        );
    }

    #[test]
    fn an_index_tallies_its_events_by_domain_and_its_errors() {
        let mut msgs: Vec<_> = (0..30)
            .map(|i| msg("llm.response", &format!("c{i}"), "s"))
            .collect();
        msgs.extend((0..12).map(|i| msg("llm.error", &format!("e{i}"), "s")));
        msgs.extend((0..5).map(|i| msg("repo.decision.recorded", &format!("r{i}"), "s")));
        let (_, index) = index_of(&msgs);
        assert_eq!(
            index.tallies(),
            Some(Tallies {
                by_domain: vec![("llm".into(), 42), ("repo".into(), 5)],
                errors: 12,
            })
        );
    }

    #[test]
    fn a_field_with_too_many_values_is_not_listed_and_rules_nothing_out() {
        let msgs: Vec<_> = (0..2_000)
            .map(|i| msg("a.b", "c", &format!("session-{i:06}-with-a-long-name")))
            .collect();
        let (_, index) = index_of(&msgs);
        assert!(
            index
                .any_value(SummaryField::Field(Field::Session), &mut |_| true)
                .is_none()
        );
        assert!(may(&index, "session:anything"));
        assert!(!may(&index, "x.y"));
    }

    #[test]
    fn a_damaged_index_rules_nothing_out_and_never_panics() {
        let (bytes, _) = index_of(&[msg("a.b", "c1", "s")]);
        for cut in 0..bytes.len() {
            assert!(BlockIndex::parse(bytes[..cut].to_vec(), (0, 10)).is_none());
        }
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x5a;
            assert!(BlockIndex::parse(bad, (0, 10)).is_none(), "byte {at}");
        }
        // Lists that do not decompress (a checksum that holds over garbage): nothing is ruled
        // out by them.
        let mut garbage = bytes[..bytes.len() - 8].to_vec();
        garbage.extend_from_slice(&[0xee; 8]);
        let crc = crc32fast::hash(&garbage[4..]);
        garbage[..4].copy_from_slice(&crc.to_le_bytes());
        let index = BlockIndex::parse(garbage, (0, 10)).unwrap();
        assert!(may(&index, "nothing.like.it"));
        // A forged index with a correct checksum but a filter that would probe past its end.
        let mut forged = vec![0u8; 4];
        forged.extend_from_slice(&[1, IDS_FUSE]);
        forged.extend_from_slice(&7u64.to_le_bytes());
        forged.extend_from_slice(&1024u32.to_le_bytes());
        forged.extend_from_slice(&1023u32.to_le_bytes());
        forged.extend_from_slice(&4096u32.to_le_bytes());
        forged.extend_from_slice(&16u32.to_le_bytes());
        forged.extend_from_slice(&[0; 16]);
        forged.extend_from_slice(&zstd::bulk::compress(&[1; 7], 1).unwrap());
        let crc = crc32fast::hash(&forged[4..]);
        forged[..4].copy_from_slice(&crc.to_le_bytes());
        assert!(BlockIndex::parse(forged, (0, 10)).is_none());
    }
}
