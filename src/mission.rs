//! Mission Control from the journal: the events it reads (lifecycle, portfolio, decisions, …)
//! found through the block indexes — a block whose types hold none of them is not decompressed —
//! and fed to a [`Mission`] in time order. `candybar mission …` and the window's Mission view
//! start from it.

use std::path::Path;
use std::time::{Duration, Instant};

use candybar_core::filter::Filter;
use candybar_core::mission::{FILTER, Mission};
use candybar_core::time::{Micros, now_us};
use candybar_journal::{Entry, JournalReader};

/// The types among a block's that Mission Control reads (`Some(empty)`: none); `None` when the
/// index does not list them (every event is looked at).
fn mission_types(
    ix: &candybar_journal::BlockIndex,
    filter: &Filter,
    now: Micros,
) -> Option<Vec<String>> {
    use candybar_core::filter::{BlockSummary as _, SummaryField};
    if !filter.may_match_block(ix, now) {
        return Some(Vec::new());
    }
    let mut types = Vec::new();
    ix.any_value(SummaryField::Type, &mut |t| {
        if candybar_core::mission::wants(t) {
            types.push(t.to_owned());
        }
        false
    })?;
    Some(types)
}

/// What a load did.
#[derive(Debug)]
pub struct Loaded {
    pub mission: Mission,
    pub blocks_read: usize,
    /// Blocks their index ruled out (none of Mission Control's types).
    pub blocks_skipped: usize,
    /// Mission Control's events read.
    pub events: u64,
    pub took: Duration,
    /// The newest receive time read (live reading goes on from there).
    pub newest_us: Option<Micros>,
}

/// Reads the journal in `dir` up to `until_us` (receive time) into a [`Mission`];
/// `progress(done, total)` is told as blocks are read.
///
/// # Errors
/// The journal cannot be opened (said with its directory and what to do).
pub fn load(
    dir: &Path,
    until_us: Micros,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Loaded, String> {
    let started = Instant::now();
    if !dir.exists() {
        return Err(format!(
            "no journal in {}: record one with `candybar record` (or open the window, which \
             records what it receives), or give --journal DIR",
            dir.display()
        ));
    }
    let mut reader = JournalReader::open(dir)
        .map_err(|e| format!("cannot read the journal in {}: {e}", dir.display()))?;
    let filter = Filter::new(FILTER).map_err(|e| format!("mission filter: {e}"))?;
    let now = now_us();
    let mut blocks: Vec<_> = reader
        .blocks()
        .filter(|b| b.header.min_us <= until_us)
        .copied()
        .collect();
    // Time order: a later status overrides an earlier one (an import may have added old blocks
    // at the end).
    blocks.sort_by_key(|b| (b.header.min_us, b.header.max_us));
    let total = blocks.len();
    let mut mission = Mission::new();
    let (mut read, mut skipped, mut events) = (0, 0, 0u64);
    let mut newest_us = None;
    for (i, b) in blocks.iter().enumerate() {
        if i % 64 == 0 {
            progress(i, total);
        }
        newest_us = Some(newest_us.map_or(b.header.max_us, |n: Micros| n.max(b.header.max_us)));
        // The block's index says which of Mission Control's types it holds: none, and it is not
        // read; some, and only the events whose body (or routing key, or AMQP type) names one of
        // them are decoded.
        let wanted = reader
            .index(b)
            .and_then(|ix| mission_types(&ix, &filter, now));
        let finders: Option<Vec<memchr::memmem::Finder<'static>>> = match wanted {
            Some(types) if types.is_empty() => {
                skipped += 1;
                continue;
            }
            Some(types) => Some(
                types
                    .iter()
                    .map(|t| memchr::memmem::Finder::new(t.as_bytes()).into_owned())
                    .collect(),
            ),
            None => None,
        };
        let Some(entries) = reader.read(b) else {
            continue;
        };
        read += 1;
        for e in &entries {
            let Entry::Event(m) = e else { continue };
            if m.received_us > until_us {
                continue;
            }
            if let Some(finders) = &finders {
                let named = finders.iter().any(|f| {
                    f.find(&m.body).is_some()
                        || f.find(m.routing_key.as_bytes()).is_some()
                        || m.props
                            .as_ref()
                            .and_then(|p| p.kind.as_deref())
                            .is_some_and(|k| f.find(k.as_bytes()).is_some())
                });
                if !named {
                    continue;
                }
            }
            if mission.ingest_raw(m) {
                events += 1;
            }
        }
    }
    progress(total, total);
    Ok(Loaded {
        mission,
        blocks_read: read,
        blocks_skipped: skipped,
        events,
        took: started.elapsed(),
        newest_us,
    })
}
