//! Time travel: the journal's timeline under the views, and the past loaded from the journal when
//! the user picks a moment. The past is a store of its own (the newest [`PAST_MAX`] events up to
//! that moment), built on a thread while the views keep drawing; the live store goes on filling
//! meanwhile, so "Live" is instant. Paging the Stream back is travelling to its oldest event.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

use candybar_core::store::{EventStore, StoreConfig};
use candybar_core::time::Micros;
use candybar_journal::{BlockRef, Entry, JournalReader};

/// The most events of the past held in memory at once (beside the live store).
pub const PAST_MAX: usize = 100_000;
/// Slices of the timeline's density.
const TIMELINE_SLICES: usize = 240;
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

/// The moment the views show, and its events.
pub struct Past {
    pub at_us: Micros,
    pub store: EventStore,
}

struct Loading {
    at_us: Micros,
    loaded: Arc<AtomicUsize>,
    rx: Receiver<Result<EventStore, String>>,
}

/// The window's travels in the journal at `dir`.
pub struct Travel {
    dir: PathBuf,
    timeline: Arc<Mutex<Timeline>>,
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
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (dir, timeline, stop) = (dir.clone(), timeline.clone(), stop.clone());
            std::thread::Builder::new()
                .name("timeline".into())
                .spawn(move || watch(&dir, &timeline, &stop, &wake))
                .map_err(|e| tracing::warn!("no timeline: cannot start its thread: {e}"))
                .ok()
        };
        Self {
            dir,
            timeline,
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

    /// The moment being loaded and how many events have been read so far.
    #[must_use]
    pub fn loading(&self) -> Option<(Micros, usize)> {
        self.loading
            .as_ref()
            .map(|l| (l.at_us, l.loaded.load(Ordering::Relaxed)))
    }

    /// Starts loading the past at `at_us` (a load already under way is dropped).
    pub fn go(&mut self, at_us: Micros, config: StoreConfig, wake: impl Fn() + Send + 'static) {
        let loaded = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = sync_channel(1);
        let (dir, counter) = (self.dir.clone(), loaded.clone());
        let spawned = std::thread::Builder::new()
            .name("travel".into())
            .spawn(move || {
                let _ = tx.send(load(&dir, at_us, PAST_MAX, &config, &counter));
                wake();
            });
        match spawned {
            Ok(_) => {
                self.loading = Some(Loading { at_us, loaded, rx });
            }
            Err(e) => tracing::warn!("cannot load the past: {e}"),
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
        let at_us = l.at_us;
        self.loading = None;
        Some(result.map(|store| self.past = Some(Past { at_us, store })))
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

fn watch(dir: &Path, timeline: &Mutex<Timeline>, stop: &AtomicBool, wake: &dyn Fn()) {
    let mut reader: Option<JournalReader> = None;
    while !stop.load(Ordering::Relaxed) {
        if reader.is_none() {
            reader = JournalReader::open(dir).ok();
        }
        if let Some(r) = reader.as_mut() {
            if let Err(e) = r.refresh() {
                tracing::warn!("timeline: {e}");
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
    loaded: &AtomicUsize,
) -> Result<EventStore, String> {
    let mut reader = JournalReader::open(dir).map_err(|e| e.to_string())?;
    let mut picked: Vec<BlockRef> = Vec::new();
    let mut count = 0usize;
    for b in reader.blocks().rev().filter(|b| b.header.min_us <= at_us) {
        if count >= max {
            break;
        }
        count += b.header.count as usize;
        picked.push(*b);
    }
    picked.reverse();
    let mut store = EventStore::new(StoreConfig {
        max_events: config.max_events.max(max),
        ..config.clone()
    });
    for b in &picked {
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
        loaded.fetch_add(b.header.count as usize, Ordering::Relaxed);
    }
    store.flush();
    Ok(store)
}
