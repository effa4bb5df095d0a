//! Time travel: the journal's timeline under the views, and the past loaded from the journal when
//! the user picks a moment. The past is a store of its own (the newest [`PAST_MAX`] events up to
//! that moment), built on a thread while the views keep drawing; the live store goes on filling
//! meanwhile, so "Live" is instant. Paging the Stream back is travelling to its oldest event.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

use candybar_core::event::RawMessage;
use candybar_core::filter::{Filter, FilteredView};
use candybar_core::store::{EventStore, StoreConfig};
use candybar_core::time::{Micros, now_us};
use candybar_journal::{BlockRef, Entry, JournalReader};

/// The most events of the past held in memory at once (beside the live store).
pub const PAST_MAX: usize = 100_000;
/// Slices of the timeline's density.
const TIMELINE_SLICES: usize = 240;
/// Columns of the Charts' ranges drawn from the journal.
const JOURNAL_COLUMNS: usize = 720;
/// Domains with a band of their own in them; the rest are "other".
const TOP_DOMAINS: usize = 8;
/// How often the timeline reads the journal's new blocks.
const TIMELINE_EVERY: Duration = Duration::from_secs(2);

/// The journal's span and how many events each slice of it holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timeline {
    pub span: Option<(Micros, Micros)>,
    pub density: Vec<u32>,
}

impl Timeline {
    /// The timeline of `blocks` (from their headers: nothing is decompressed).
    #[must_use]
    pub fn of(blocks: &[BlockRef]) -> Self {
        let span = blocks
            .iter()
            .fold(None, |span: Option<(Micros, Micros)>, b| {
                let (lo, hi) = (b.header.min_us, b.header.max_us);
                Some(span.map_or((lo, hi), |(a, z)| (a.min(lo), z.max(hi))))
            });
        let Some((oldest, newest)) = span else {
            return Self::default();
        };
        let mut density = vec![0u32; TIMELINE_SLICES];
        let width = (newest - oldest).max(1) as f64;
        for b in blocks {
            let mid = b.header.min_us / 2 + b.header.max_us / 2;
            let i = ((mid - oldest) as f64 / width * TIMELINE_SLICES as f64) as usize;
            let slot = &mut density[i.min(TIMELINE_SLICES - 1)];
            *slot = slot.saturating_add(b.header.count);
        }
        Self { span, density }
    }
}

/// What the journal's block indexes say, block by block: the Charts' ranges beyond memory are
/// drawn from it (no event is read).
#[derive(Clone, Debug, Default)]
pub struct Tallies {
    /// Domain names, by the index the blocks use.
    pub domains: Vec<String>,
    pub blocks: Vec<BlockTally>,
    /// Bumped when blocks come or go.
    pub version: u64,
}

#[derive(Clone, Debug)]
pub struct BlockTally {
    pub key: (u64, u64),
    pub min_us: Micros,
    pub max_us: Micros,
    pub count: u32,
    pub errors: u32,
    /// Events per domain (index into [`Tallies::domains`]); empty when the index did not say
    /// (a format 1 block): its events count as "other".
    pub by_domain: Vec<(u16, u32)>,
}

impl Tallies {
    fn domain(&mut self, name: String) -> u16 {
        match self.domains.iter().position(|d| *d == name) {
            Some(i) => i as u16,
            None if self.domains.len() < usize::from(u16::MAX) => {
                self.domains.push(name);
                (self.domains.len() - 1) as u16
            }
            None => u16::MAX,
        }
    }

    /// Brings the tallies up to the reader's blocks (new ones read from their indexes, dropped
    /// ones forgotten).
    fn update(&mut self, reader: &mut JournalReader) {
        let present: std::collections::HashSet<(u64, u64)> =
            reader.blocks().map(|b| (b.segment, b.offset)).collect();
        let before = self.blocks.len();
        self.blocks.retain(|b| present.contains(&b.key));
        let mut changed = self.blocks.len() != before;
        let last = self.blocks.last().map(|b| b.key);
        let new: Vec<BlockRef> = reader
            .blocks()
            .filter(|b| last.is_none_or(|l| (b.segment, b.offset) > l))
            .copied()
            .collect();
        for b in new {
            let t = reader.index(&b).and_then(|ix| ix.tallies());
            let (by_domain, errors) = match t {
                Some(t) => (
                    t.by_domain
                        .into_iter()
                        .map(|(d, n)| (self.domain(d), n))
                        .collect(),
                    t.errors,
                ),
                None => (Vec::new(), 0),
            };
            self.blocks.push(BlockTally {
                key: (b.segment, b.offset),
                min_us: b.header.min_us,
                max_us: b.header.max_us,
                count: b.header.count,
                errors,
                by_domain,
            });
            changed = true;
        }
        if changed {
            self.version += 1;
        }
    }

    /// Events per column over `window_us` ending at `end_us`, in `columns` columns: the busiest
    /// `top` domains on their own, the rest as "other". A block spread over several columns
    /// counts in each by how much of it falls there.
    #[must_use]
    pub fn rates(
        &self,
        window_us: Micros,
        end_us: Micros,
        columns: usize,
        top: usize,
    ) -> candybar_ui::JournalRates {
        let columns = columns.max(1);
        let start_us = end_us - window_us;
        let width = (window_us as f64 / columns as f64).max(1.0);
        let mut per_domain = vec![vec![0f64; columns]; self.domains.len() + 1];
        let mut totals = vec![0f64; columns];
        let mut errors = vec![0f64; columns];
        let mut domain_sums = vec![0f64; self.domains.len() + 1];
        let other = self.domains.len();
        for b in &self.blocks {
            if b.max_us < start_us || b.min_us >= end_us {
                continue;
            }
            let span = (b.max_us - b.min_us).max(1) as f64;
            let lo = ((b.min_us.max(start_us) - start_us) as f64 / width) as usize;
            let hi =
                (((b.max_us.min(end_us - 1) - start_us) as f64 / width) as usize).min(columns - 1);
            for c in lo..=hi.max(lo).min(columns - 1) {
                let c0 = start_us as f64 + c as f64 * width;
                let share = if lo == hi {
                    1.0
                } else {
                    let a = (b.min_us as f64).max(c0);
                    let z = (b.max_us as f64).min(c0 + width);
                    ((z - a) / span).clamp(0.0, 1.0)
                };
                totals[c] += f64::from(b.count) * share;
                errors[c] += f64::from(b.errors) * share;
                let mut known = 0u32;
                for &(d, n) in &b.by_domain {
                    let d = usize::from(d).min(other);
                    per_domain[d][c] += f64::from(n) * share;
                    domain_sums[d] += f64::from(n) * share;
                    known += n;
                }
                let rest = f64::from(b.count.saturating_sub(known)) * share;
                per_domain[other][c] += rest;
                domain_sums[other] += rest;
            }
        }
        let mut order: Vec<usize> = (0..self.domains.len())
            .filter(|&d| domain_sums[d] > 0.0)
            .collect();
        order.sort_by(|a, b| domain_sums[*b].total_cmp(&domain_sums[*a]).then(a.cmp(b)));
        let (shown, rest) = order.split_at(order.len().min(top));
        let mut other_counts = per_domain[other].clone();
        for &d in rest {
            for (o, v) in other_counts.iter_mut().zip(&per_domain[d]) {
                *o += v;
            }
        }
        let mut bands: Vec<(String, Vec<f64>)> = shown
            .iter()
            .map(|&d| (self.domains[d].clone(), per_domain[d].clone()))
            .collect();
        if other_counts.iter().any(|&v| v > 0.0) {
            bands.push(("other".into(), other_counts));
        }
        candybar_ui::JournalRates {
            start_us,
            end_us,
            column_us: width as Micros,
            bands,
            totals,
            errors,
        }
    }
}

/// The moment the views show, and its events.
pub struct Past {
    pub at_us: Micros,
    pub store: EventStore,
    /// The filter the whole journal was searched with, when the events are its matches.
    pub search: Option<String>,
}

/// How far a load or a search got (shared with its thread).
#[derive(Default)]
pub struct Progress {
    /// Events read (a load) or matches found (a search).
    pub events: AtomicUsize,
    pub blocks_done: AtomicUsize,
    pub blocks_total: AtomicUsize,
    /// Set when nobody waits for the answer any more.
    cancelled: AtomicBool,
}

struct Loading {
    at_us: Micros,
    search: Option<String>,
    progress: Arc<Progress>,
    rx: Receiver<Result<EventStore, String>>,
}

impl Drop for Loading {
    fn drop(&mut self) {
        self.progress.cancelled.store(true, Ordering::Relaxed);
    }
}

/// The window's travels in the journal at `dir`.
pub struct Travel {
    dir: PathBuf,
    timeline: Arc<Mutex<Timeline>>,
    tallies: Arc<Mutex<Tallies>>,
    /// The Charts' last long range, and what it was computed from.
    rates: Option<((Micros, Micros, u64), candybar_ui::JournalRates)>,
    stop: Arc<AtomicBool>,
    watcher: Option<JoinHandle<()>>,
    pub past: Option<Past>,
    loading: Option<Loading>,
}

impl Travel {
    /// Starts reading the timeline of the journal at `dir`; `wake` asks for a frame when it
    /// changes.
    pub fn start(dir: PathBuf, wake: impl Fn() + Send + 'static) -> Self {
        let timeline = Arc::new(Mutex::new(Timeline::default()));
        let tallies = Arc::new(Mutex::new(Tallies::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (dir, timeline, tallies, stop) =
                (dir.clone(), timeline.clone(), tallies.clone(), stop.clone());
            std::thread::Builder::new()
                .name("timeline".into())
                .spawn(move || watch(&dir, &timeline, &tallies, &stop, &wake))
                .map_err(|e| tracing::warn!("no timeline: cannot start its thread: {e}"))
                .ok()
        };
        Self {
            dir,
            timeline,
            tallies,
            rates: None,
            stop,
            watcher,
            past: None,
            loading: None,
        }
    }

    #[must_use]
    pub fn timeline(&self) -> Timeline {
        self.timeline.lock().clone()
    }

    /// The Charts' last long range (see [`Self::refresh_rates`]).
    #[must_use]
    pub fn rates(&self) -> Option<&candybar_ui::JournalRates> {
        self.rates.as_ref().map(|(_, r)| r)
    }

    /// Computes the Charts' rates over `window_us` ending at `end_us` from the journal's indexes
    /// (again only when a column's worth of time passed or the journal changed).
    pub fn refresh_rates(&mut self, window_us: Micros, end_us: Micros) {
        let tallies = self.tallies.lock();
        let column_us = (window_us / JOURNAL_COLUMNS as Micros).max(1);
        let key = (window_us, end_us.div_euclid(column_us), tallies.version);
        if self.rates.as_ref().is_none_or(|(k, _)| *k != key) {
            let end = (key.1 + 1) * column_us;
            let rates = tallies.rates(window_us, end, JOURNAL_COLUMNS, TOP_DOMAINS);
            self.rates = Some((key, rates));
        }
    }

    /// The moment being loaded and how many events have been read so far (not for a search).
    #[must_use]
    pub fn loading(&self) -> Option<(Micros, usize)> {
        self.loading
            .as_ref()
            .filter(|l| l.search.is_none())
            .map(|l| (l.at_us, l.progress.events.load(Ordering::Relaxed)))
    }

    /// The search under way, or the one whose matches are shown, as the timeline says it.
    #[must_use]
    pub fn search_info(&self) -> Option<candybar_ui::SearchInfo<'_>> {
        if let Some(l) = &self.loading {
            let p = &l.progress;
            return l.search.as_deref().map(|filter| candybar_ui::SearchInfo {
                filter,
                matches: p.events.load(Ordering::Relaxed),
                blocks_done: p.blocks_done.load(Ordering::Relaxed),
                blocks_total: p.blocks_total.load(Ordering::Relaxed),
                running: true,
            });
        }
        let past = self.past.as_ref()?;
        past.search
            .as_deref()
            .map(|filter| candybar_ui::SearchInfo {
                filter,
                matches: past.store.len(),
                blocks_done: 0,
                blocks_total: 0,
                running: false,
            })
    }

    /// Starts loading the past at `at_us` (a load already under way is dropped).
    pub fn go(&mut self, at_us: Micros, config: StoreConfig, wake: impl Fn() + Send + 'static) {
        let dir = self.dir.clone();
        self.spawn(at_us, None, wake, move |progress| {
            load(&dir, at_us, PAST_MAX, &config, progress)
        });
    }

    /// Starts searching the whole journal, newest first, for the newest [`PAST_MAX`] events
    /// that match `filter` (its indexes rule blocks out; a load under way is dropped).
    pub fn search(
        &mut self,
        filter: Filter,
        config: StoreConfig,
        wake: impl Fn() + Send + 'static,
    ) {
        let dir = self.dir.clone();
        let text = filter.text().to_owned();
        self.spawn(now_us(), Some(text), wake, move |progress| {
            search(&dir, &filter, PAST_MAX, &config, progress)
        });
    }

    fn spawn(
        &mut self,
        at_us: Micros,
        search: Option<String>,
        wake: impl Fn() + Send + 'static,
        work: impl FnOnce(&Progress) -> Result<EventStore, String> + Send + 'static,
    ) {
        let progress = Arc::new(Progress::default());
        let (tx, rx) = sync_channel(1);
        let theirs = progress.clone();
        let spawned = std::thread::Builder::new()
            .name("travel".into())
            .spawn(move || {
                let _ = tx.send(work(&theirs));
                wake();
            });
        match spawned {
            Ok(_) => {
                self.loading = Some(Loading {
                    at_us,
                    search,
                    progress,
                    rx,
                });
            }
            Err(e) => tracing::warn!("cannot read the journal: {e}"),
        }
    }

    /// Back to live: the past is dropped (and a load under way forgotten).
    pub fn live(&mut self) {
        self.past = None;
        self.loading = None;
    }

    /// A finished load: `Some(Ok(()))` when the past is now shown, `Some(Err)` when it could not
    /// be read.
    pub fn poll(&mut self) -> Option<Result<(), String>> {
        let l = self.loading.as_ref()?;
        let result = match l.rx.try_recv() {
            Ok(r) => r,
            Err(TryRecvError::Empty) => return None,
            Err(TryRecvError::Disconnected) => Err("the loading thread stopped".into()),
        };
        let (at_us, search) = (l.at_us, l.search.clone());
        self.loading = None;
        Some(result.map(|store| {
            self.past = Some(Past {
                at_us,
                store,
                search,
            });
        }))
    }
}

impl Drop for Travel {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
    }
}

fn watch(
    dir: &Path,
    timeline: &Mutex<Timeline>,
    tallies: &Mutex<Tallies>,
    stop: &AtomicBool,
    wake: &dyn Fn(),
) {
    let mut mine = Tallies::default();
    let mut reader: Option<JournalReader> = None;
    while !stop.load(Ordering::Relaxed) {
        if reader.is_none() {
            reader = JournalReader::open(dir).ok();
        }
        if let Some(r) = reader.as_mut() {
            if let Err(e) = r.refresh() {
                tracing::warn!("timeline: {e}");
            }
            let version = mine.version;
            mine.update(r);
            if mine.version != version {
                *tallies.lock() = mine.clone();
            }
            let blocks: Vec<BlockRef> = r.blocks().copied().collect();
            let next = Timeline::of(&blocks);
            let mut t = timeline.lock();
            if *t != next {
                *t = next;
                drop(t);
                wake();
            }
        }
        // Sleeps in short steps so the window closes at once.
        for _ in 0..(TIMELINE_EVERY.as_millis() / 50) {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The newest `max` events (and gaps) at or before `at_us`, in a store of their own.
fn load(
    dir: &Path,
    at_us: Micros,
    max: usize,
    config: &StoreConfig,
    progress: &Progress,
) -> Result<EventStore, String> {
    let mut reader = JournalReader::open(dir).map_err(|e| e.to_string())?;
    let (picked, _) = super::history::newest_blocks(&reader, max, at_us);
    let mut store = EventStore::new(StoreConfig {
        max_events: config.max_events.max(max),
        ..config.clone()
    });
    progress.blocks_total.store(picked.len(), Ordering::Relaxed);
    for b in &picked {
        if progress.cancelled.load(Ordering::Relaxed) {
            return Err("cancelled".into());
        }
        progress.blocks_done.fetch_add(1, Ordering::Relaxed);
        let Some(entries) = reader.read(b) else {
            continue;
        };
        for e in entries {
            match e {
                Entry::Event(m) if m.received_us <= at_us => {
                    store.insert(&m);
                }
                Entry::Gap {
                    start_us,
                    end_us,
                    reason,
                    lossless,
                } if end_us <= at_us => store.record_gap(start_us, end_us, reason, lossless),
                _ => {}
            }
        }
        progress
            .events
            .fetch_add(b.header.count as usize, Ordering::Relaxed);
    }
    store.flush();
    Ok(store)
}

/// The newest `max` events of the whole journal that match `filter`, in a store of their own:
/// blocks newest first, those the index rules out skipped, the others read ahead on every core,
/// where only the events whose header and text may match are kept and then tested by the
/// filter itself.
fn search(
    dir: &Path,
    filter: &Filter,
    max: usize,
    config: &StoreConfig,
    progress: &Progress,
) -> Result<EventStore, String> {
    let mut reader = JournalReader::open(dir).map_err(|e| e.to_string())?;
    let blocks: Vec<BlockRef> = reader.blocks().rev().copied().collect();
    progress.blocks_total.store(blocks.len(), Ordering::Relaxed);
    let now = now_us();
    // The blocks whose index rules a match out count as done at once.
    let blocks: Vec<BlockRef> = if filter.rules_out() {
        let mut may = Vec::new();
        for b in blocks {
            if progress.cancelled.load(Ordering::Relaxed) {
                return Err("cancelled".into());
            }
            if reader
                .index(&b)
                .is_none_or(|ix| filter.may_match_block(&ix, now))
            {
                may.push(b);
            } else {
                progress.blocks_done.fetch_add(1, Ordering::Relaxed);
            }
        }
        may
    } else {
        blocks
    };
    let screen = crate::cli::journal::Screen::new(filter, (Micros::MIN, Micros::MAX), now);
    let workers = crate::cli::journal::all_cores();
    let mut found: Vec<Vec<RawMessage>> = Vec::new();
    let mut matches = 0usize;
    let mut cancelled = false;
    reader.read_each(&blocks, workers, &screen, &mut |_, entries| {
        if progress.cancelled.load(Ordering::Relaxed) {
            cancelled = true;
            return ControlFlow::Break(());
        }
        progress.blocks_done.fetch_add(1, Ordering::Relaxed);
        let Some(entries) = entries else {
            return ControlFlow::Continue(());
        };
        // Room for the whole block: a store evicts a sealed block of its own once the next
        // would pass `max_events`.
        let mut scratch = EventStore::single_threaded(StoreConfig {
            max_events: entries.len() + 2 * candybar_core::store::BLOCK_EVENTS,
            ..config.clone()
        });
        let candidates: Vec<RawMessage> = entries
            .into_iter()
            .filter_map(|e| match e {
                Entry::Event(m) => Some(m),
                Entry::Gap { .. } => None,
            })
            .collect();
        for m in &candidates {
            scratch.insert(m);
        }
        let mut view = FilteredView::new(filter.clone());
        view.update(&scratch, now, u64::MAX);
        let first = scratch.first_seq();
        let hits: Vec<RawMessage> = view
            .matches()
            .iter()
            .filter_map(|&seq| candidates.get(usize::try_from(seq - first).ok()?).cloned())
            .collect();
        matches += hits.len();
        progress.events.store(matches, Ordering::Relaxed);
        found.push(hits);
        if matches >= max {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    if cancelled {
        return Err("cancelled".into());
    }
    let mut store = EventStore::new(StoreConfig {
        max_events: config.max_events.max(max),
        ..config.clone()
    });
    // Oldest first; the last block read may have brought more than `max`: its oldest go.
    for m in found
        .iter()
        .rev()
        .flatten()
        .skip(matches.saturating_sub(max))
    {
        store.insert(m);
    }
    progress.events.store(matches.min(max), Ordering::Relaxed);
    store.flush();
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(i: u64, min_us: Micros, max_us: Micros, by_domain: Vec<(u16, u32)>) -> BlockTally {
        let count = by_domain.iter().map(|(_, n)| n).sum::<u32>() + 1;
        BlockTally {
            key: (1, i),
            min_us,
            max_us,
            count,
            errors: 1,
            by_domain,
        }
    }

    #[test]
    fn a_search_finds_every_match_in_full_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = candybar_journal::JournalConfig::new(dir.path().to_owned());
        let mut w = candybar_journal::JournalWriter::open(cfg, "test").unwrap();
        for i in 0..3_000i64 {
            let kind = if i % 3 == 0 { "x.failed" } else { "x.ok" };
            w.append(&RawMessage {
                received_us: 1_000_000 + i,
                routing_key: kind.into(),
                body: format!(r#"{{"event_id":"e{i}","event_type":"{kind}"}}"#).into_bytes(),
                ..RawMessage::default()
            });
        }
        w.flush().unwrap();
        drop(w);
        let progress = Progress::default();
        let filter = Filter::new("x.failed").unwrap();
        let store = search(
            dir.path(),
            &filter,
            100_000,
            &StoreConfig::default(),
            &progress,
        )
        .unwrap();
        assert_eq!(store.len(), 1_000);
        assert_eq!(progress.events.load(Ordering::Relaxed), 1_000);
        let first = store.get(store.first_seq()).unwrap();
        assert_eq!(first.received_us, 1_000_000, "oldest first");
        // At most `max`, the newest.
        let store = search(dir.path(), &filter, 10, &StoreConfig::default(), &progress).unwrap();
        assert_eq!(store.len(), 10);
        assert_eq!(
            store.get(store.end_seq() - 1).unwrap().received_us,
            1_002_997
        );
    }

    #[test]
    fn rates_put_each_block_where_its_events_are() {
        let t = Tallies {
            domains: vec!["llm".into(), "repo".into(), "tiny".into()],
            blocks: vec![
                // In column 0; one event the index did not name ("other").
                block(0, 5, 6, vec![(0, 10), (1, 4)]),
                // Half in column 2, half in column 3.
                block(1, 250, 350, vec![(0, 99), (2, 1)]),
                // Outside the range.
                block(2, 5_000, 5_001, vec![(1, 7)]),
            ],
            version: 1,
        };
        let r = t.rates(400, 400, 4, 2);
        assert_eq!((r.start_us, r.column_us), (0, 100));
        assert_eq!(r.totals, vec![15.0, 0.0, 50.5, 50.5]);
        assert_eq!(r.errors, vec![1.0, 0.0, 0.5, 0.5]);
        let names: Vec<&str> = r.bands.iter().map(|(n, _)| n.as_str()).collect();
        // The two busiest on their own; `tiny` and the unnamed event are "other".
        assert_eq!(names, ["llm", "repo", "other"]);
        assert_eq!(r.bands[0].1, vec![10.0, 0.0, 49.5, 49.5]);
        assert_eq!(r.bands[2].1, vec![1.0, 0.0, 1.0, 1.0]);
    }
}
