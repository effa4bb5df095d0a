//! The window's Mission Control: a [`Mission`] fed from the live store as events arrive (only
//! the types it reads are decompressed), started from the journal's past on a thread, and the
//! answers the view draws — recomputed when something changed, at most a few times a second.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError, sync_channel};
use std::time::{Duration, Instant};

use candybar_core::intern::Sym;
use candybar_core::mission::{
    self, Briefing, Mission, PlanDrift, PortfolioCard, RankedDecision, RiskItem, RiskKind, Risks,
};
use candybar_core::store::EventStore;
use candybar_core::time::Micros;

/// The answers are recomputed at most this often (SLA countdowns and ages move with the clock).
const DERIVE_EVERY: Duration = Duration::from_millis(500);
/// Decisions the radar lists: the last week.
const RADAR_US: Micros = 7 * 24 * 3_600_000_000;

/// When and where the window writes briefings by itself.
#[derive(Clone, Debug, Default)]
pub struct BriefingPlan {
    /// Local times of day: (hour, minute).
    pub times: Vec<(u32, u32)>,
    /// Where they are kept (`None`: not kept, only shown).
    pub archive: Option<PathBuf>,
    /// The broker their `reporting.report.*` events go to: (URL, exchange).
    pub bus: Option<(candybar_core::redact::SecretUrl, String)>,
    /// The model that rewrites them for reading (`[mission] llm_url`): scheduled briefings are
    /// kept rewritten, and the view offers it for the one shown.
    pub rewriter: Option<Rewriter>,
}

/// An OpenAI-compatible endpoint that rewrites briefings ([`crate::mission::rewrite`]).
#[derive(Clone, Debug)]
pub struct Rewriter {
    pub url: String,
    pub model: String,
    pub key: Option<candybar_core::redact::Secret>,
}

impl Rewriter {
    /// From `[mission] llm_url` / `llm_model` and `CANDYBAR_LLM_KEY`.
    #[must_use]
    pub fn from_settings(m: &candybar_core::config::MissionSection) -> Option<Self> {
        Some(Self {
            url: m.llm_url.clone()?,
            model: m.llm_model.clone().unwrap_or_else(|| "default".into()),
            key: std::env::var("CANDYBAR_LLM_KEY")
                .ok()
                .filter(|k| !k.is_empty())
                .map(candybar_core::redact::Secret::new),
        })
    }

    /// `b` rewritten, or why not (the caller keeps it as written). Blocks: on a thread.
    fn rewrite(&self, b: &Briefing) -> Result<Briefing, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the rewrite: {e}"))?;
        rt.block_on(crate::mission::rewrite(
            b,
            &self.url,
            &self.model,
            self.key.as_ref().map(candybar_core::redact::Secret::expose),
        ))
    }
}

/// When scheduled briefings fall due: the window looks every frame (cheap), whether or not
/// Mission Control was opened.
#[derive(Debug, Default)]
pub struct Schedule {
    /// Local times of day: (hour, minute).
    pub times: Vec<(u32, u32)>,
    /// When it was last looked at.
    last_tick_us: Option<Micros>,
}

impl Schedule {
    #[must_use]
    pub fn new(times: Vec<(u32, u32)>) -> Self {
        Self {
            times,
            last_tick_us: None,
        }
    }

    /// Whether a scheduled briefing fell due since the last look (none on the first look: a
    /// window opened at 09:00 does not write the 08:00 one late).
    pub fn briefing_due(&mut self, now_us: Micros) -> bool {
        use chrono::{Local, TimeZone as _};
        let Some(last) = self.last_tick_us.replace(now_us) else {
            return false;
        };
        if now_us <= last || now_us - last > 24 * 3_600_000_000 {
            return false;
        }
        let (Some(a), Some(b)) = (
            Local.timestamp_micros(last).single(),
            Local.timestamp_micros(now_us).single(),
        ) else {
            return false;
        };
        self.times.iter().any(|&(h, m)| {
            [a.date_naive(), b.date_naive()].iter().any(|day| {
                day.and_hms_opt(h, m, 0)
                    .and_then(|t| t.and_local_timezone(Local).earliest())
                    .is_some_and(|t| t > a && t <= b)
            })
        })
    }
}

/// What a briefing run came to: the path, and what the bus said, or why it was not kept.
type Kept = Result<(PathBuf, Option<String>), String>;

/// The journal's past, being read.
struct Loading {
    done: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
    /// What was read: every event received up to the moment given is in it.
    rx: Receiver<(Micros, Result<crate::mission::Loaded, String>)>,
}

/// What the view draws, derived from the model.
#[derive(Default)]
struct Derived {
    portfolio: Vec<PortfolioCard>,
    decisions: Vec<RankedDecision>,
    risks: Risks,
    drift: Vec<PlanDrift>,
    version: u64,
    at: Option<Instant>,
    now_us: Micros,
}

pub struct MissionState {
    pub mission: Mission,
    /// The next live event to read.
    next_seq: u64,
    /// Whether a type (by its symbol in the live store) is one Mission Control reads.
    wanted: std::collections::HashMap<Sym, bool>,
    loading: Option<Loading>,
    /// Events read from the journal, and live.
    from_journal: u64,
    live_events: u64,
    journal_note: Option<String>,
    source: String,
    derived: Derived,
    pub brief: Option<Briefing>,
    /// The failing services the answers were derived with.
    failing: Vec<(String, String)>,
    plan: BriefingPlan,
    /// A scheduled briefing waits for the journal's past to be read (its moment).
    pub pending_brief: Option<Micros>,
    /// Briefings kept: (path, title), newest first.
    pub archive: Vec<(PathBuf, String)>,
    /// Answers of the threads that keep briefings and list or read the archive.
    done: (std::sync::mpsc::SyncSender<Done>, Receiver<Done>),
    /// Rewrites under way (the briefing shown, a scheduled one).
    rewriting: u32,
    /// Counts the briefings shown: a rewrite replaces the one it was asked for, not another
    /// shown meanwhile.
    brief_id: u64,
    /// Events received up to here are in the model from the journal (the live store's are
    /// read after it).
    covered_until: Micros,
}

/// What a background job of the briefings came back with.
enum Done {
    Kept(Kept),
    /// The briefing shown as this one (its id) rewritten by the model, or why not.
    Rewritten(u64, Result<Briefing, String>),
    Listed(Vec<(PathBuf, String)>),
    Opened(PathBuf, Result<String, String>),
}

impl MissionState {
    /// Starts reading: the journal in `journal` (on a thread; until then the live events alone
    /// are shown), then the live store.
    pub fn start(
        journal: Option<PathBuf>,
        plan: BriefingPlan,
        store: &EventStore,
        wake: impl Fn() + Send + 'static,
    ) -> Self {
        let loading = journal.map(|dir| {
            // The journal up to the oldest event in memory: from there on the store has them.
            let oldest = store.oldest_received_us().map_or(Micros::MAX, |t| t - 1);
            let done = Arc::new(AtomicUsize::new(0));
            let total = Arc::new(AtomicUsize::new(0));
            let (tx, rx) = sync_channel(1);
            let (d, t) = (done.clone(), total.clone());
            let spawned = std::thread::Builder::new()
                .name("mission".into())
                .spawn(move || {
                    // Or up to the model a recorder saved after that (every few minutes): the
                    // events in memory after it are read on top.
                    let until = crate::mission::saved_until(&dir).map_or(oldest, |s| s.max(oldest));
                    let result = crate::mission::load(
                        &dir,
                        until,
                        crate::cli::journal::all_cores(),
                        &mut |n, of| {
                            d.store(n, Ordering::Relaxed);
                            t.store(of, Ordering::Relaxed);
                        },
                    );
                    // The view first; the model is saved for the next start after.
                    let saving = result
                        .as_ref()
                        .ok()
                        .filter(|l| l.save_until.is_some())
                        .cloned();
                    let _ = tx.send((until, result));
                    wake();
                    if let Some(l) = saving {
                        l.save(&dir);
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!("cannot read the journal for Mission Control: {e}");
            }
            Loading { done, total, rx }
        });
        let mut s = Self {
            mission: Mission::new(),
            next_seq: store.first_seq(),
            wanted: std::collections::HashMap::new(),
            loading,
            from_journal: 0,
            live_events: 0,
            journal_note: None,
            source: String::new(),
            derived: Derived::default(),
            brief: None,
            failing: Vec::new(),
            plan,
            pending_brief: None,
            archive: Vec::new(),
            done: sync_channel(16),
            rewriting: 0,
            brief_id: 0,
            covered_until: Micros::MIN,
        };
        s.scan(store);
        s.list_archive();
        s
    }

    /// Lists the archive on a thread.
    fn list_archive(&self) {
        let Some(dir) = self.plan.archive.clone() else {
            return;
        };
        let tx = self.done.0.clone();
        let _ = std::thread::Builder::new()
            .name("briefings".into())
            .spawn(move || {
                let _ = tx.send(Done::Listed(crate::mission::archived(&dir)));
            });
    }

    /// Reads a kept briefing (on a thread) to show it.
    pub fn open_archived(&self, path: PathBuf) {
        let tx = self.done.0.clone();
        let _ = std::thread::Builder::new()
            .name("briefings".into())
            .spawn(move || {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()));
                let _ = tx.send(Done::Opened(path, text));
            });
    }

    /// Writes the briefing of the 12 hours before `now_us` and keeps it (on a thread, with its
    /// events on the bus when there is one).
    pub fn scheduled_briefing(&mut self, now_us: Micros, wake: impl Fn() + Send + 'static) {
        self.write_brief(now_us - 12 * 3_600_000_000, now_us);
        let (Some(b), Some(archive)) = (self.brief.clone(), self.plan.archive.clone()) else {
            return;
        };
        let bus = self.plan.bus.clone();
        let rewriter = self.plan.rewriter.clone();
        self.rewriting += u32::from(rewriter.is_some());
        let id = self.brief_id;
        let tx = self.done.0.clone();
        let spawned = std::thread::Builder::new()
            .name("briefing".into())
            .spawn(move || {
                // Kept rewritten when a model is configured and keeps every fact; else as
                // written (the reason said).
                let b = match rewriter.map(|r| r.rewrite(&b)) {
                    Some(Ok(r)) => {
                        let _ = tx.send(Done::Rewritten(id, Ok(r.clone())));
                        r
                    }
                    Some(Err(e)) => {
                        let _ = tx.send(Done::Rewritten(id, Err(e)));
                        b
                    }
                    None => b,
                };
                let kept = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(crate::mission::keep_and_announce(
                        &b,
                        &archive,
                        bus.as_ref().map(|(u, x)| (u.expose(), x.as_str())),
                    )),
                    Err(e) => Err(format!("cannot start the briefing's writer: {e}")),
                };
                let _ = tx.send(Done::Kept(kept));
                wake();
            });
        if let Err(e) = spawned {
            self.rewriting = self
                .rewriting
                .saturating_sub(u32::from(self.plan.rewriter.is_some()));
            tracing::warn!("cannot keep the briefing: {e}");
        }
    }

    /// Has the model rewrite the briefing shown (on a thread); the view shows the rewrite when it
    /// comes, or says why it stays as written.
    pub fn rewrite_brief(&mut self, wake: impl Fn() + Send + 'static) {
        let (Some(b), Some(rewriter)) = (self.brief.clone(), self.plan.rewriter.clone()) else {
            return;
        };
        if self.rewriting > 0 {
            return;
        }
        self.rewriting += 1;
        let id = self.brief_id;
        let tx = self.done.0.clone();
        let spawned = std::thread::Builder::new()
            .name("briefing-rewrite".into())
            .spawn(move || {
                let _ = tx.send(Done::Rewritten(id, rewriter.rewrite(&b)));
                wake();
            });
        if let Err(e) = spawned {
            self.rewriting -= 1;
            tracing::warn!("cannot rewrite the briefing: {e}");
        }
    }

    /// What the briefing threads came back with: words for a toast (`Ok`: news, `Err`: a
    /// problem).
    pub fn poll_done(&mut self) -> Vec<Result<String, String>> {
        let mut said = Vec::new();
        while let Ok(done) = self.done.1.try_recv() {
            match done {
                Done::Kept(Ok((path, bus_error))) => {
                    let title = self
                        .brief
                        .as_ref()
                        .map_or("The briefing", |b| b.title.as_str());
                    said.push(Ok(format!("{title} is ready: {}", path.display())));
                    if let Some(e) = bus_error {
                        said.push(Err(format!(
                            "the bus did not take the briefing's events: {}",
                            candybar_core::redact::mask_secrets_in(&e)
                        )));
                    }
                    self.list_archive();
                }
                Done::Rewritten(id, result) => {
                    self.rewriting = self.rewriting.saturating_sub(1);
                    let model = self
                        .plan
                        .rewriter
                        .as_ref()
                        .map_or("the model", |r| r.model.as_str());
                    match result {
                        // Shown unless another briefing took its place meanwhile.
                        Ok(r) if id == self.brief_id => {
                            self.brief = Some(r);
                            said.push(Ok(format!("{model} rewrote the briefing")));
                        }
                        // Another briefing is shown now (a scheduled one is kept rewritten).
                        Ok(_) => {}
                        Err(e) => said.push(Err(format!(
                            "{}; the briefing is as written",
                            candybar_core::redact::mask_secrets_in(&e)
                        ))),
                    }
                }
                Done::Kept(Err(e)) | Done::Opened(_, Err(e)) => said.push(Err(e)),
                Done::Listed(list) => self.archive = list,
                Done::Opened(path, Ok(text)) => {
                    let title = text
                        .lines()
                        .next()
                        .map_or_else(String::new, |l| l.trim_start_matches("# ").to_owned());
                    self.brief_id += 1;
                    self.brief = Some(Briefing {
                        title,
                        since_us: 0,
                        until_us: 0,
                        markdown: text,
                        sources: Vec::new(),
                    });
                    said.push(Ok(format!("opened {}", path.display())));
                }
            }
        }
        said
    }

    /// Reads the live events that arrived since the last call (and takes the journal's past
    /// once it is read); whether anything changed.
    pub fn scan(&mut self, store: &EventStore) -> bool {
        let mut changed = self.poll_loading(store);
        let from = self.next_seq.max(store.first_seq());
        let end = store.end_seq();
        if from >= end {
            self.next_seq = end;
            return changed;
        }
        let interner = store.interner();
        let mut hits = Vec::new();
        for view in store.blocks_from(from) {
            let first = view.first_seq();
            for (i, m) in view.metas().enumerate() {
                let seq = first + i as u64;
                if seq < from || m.received_us <= self.covered_until {
                    continue;
                }
                let wanted = *self
                    .wanted
                    .entry(m.kind)
                    .or_insert_with(|| mission::wants(interner.resolve(m.kind)));
                if wanted {
                    hits.push(seq);
                }
            }
        }
        self.next_seq = end;
        for seq in hits {
            if let Some(e) = store.get(seq)
                && self.mission.ingest_event(&e)
            {
                self.live_events += 1;
                changed = true;
            }
        }
        changed
    }

    /// Takes the journal's past when its thread is done: the model starts over from it, and
    /// the live events in memory are read again on top.
    fn poll_loading(&mut self, store: &EventStore) -> bool {
        let Some(l) = &self.loading else {
            return false;
        };
        let (until, result) = match l.rx.try_recv() {
            Ok(r) => r,
            Err(TryRecvError::Empty) => return false,
            Err(TryRecvError::Disconnected) => {
                (Micros::MIN, Err("the reading thread stopped".into()))
            }
        };
        self.loading = None;
        match result {
            Ok(loaded) => {
                self.from_journal = loaded.events;
                self.mission = loaded.mission;
                self.live_events = 0;
                self.next_seq = store.first_seq();
                self.covered_until = until;
                self.journal_note = Some(format!(
                    "{} from the journal ({} blocks read, {} ruled out, {} ms)",
                    loaded.events,
                    loaded.blocks_read,
                    loaded.blocks_skipped,
                    loaded.took.as_millis()
                ));
            }
            Err(e) => self.journal_note = Some(format!("the journal could not be read: {e}")),
        }
        self.derived.at = None;
        true
    }

    /// The journal being read: blocks done of total.
    pub fn loading(&self) -> Option<(usize, usize)> {
        self.loading.as_ref().map(|l| {
            (
                l.done.load(Ordering::Relaxed),
                l.total.load(Ordering::Relaxed),
            )
        })
    }

    /// Whether the answers are due to be recomputed (the model changed, or time moved on).
    pub fn stale(&self) -> bool {
        let d = &self.derived;
        d.version != self.mission.version || d.at.is_none_or(|t| t.elapsed() >= DERIVE_EVERY)
    }

    /// Brings the answers up to date for `now_us` when the model changed or time moved on;
    /// `failing` are the services Health finds failing (name, why). Whether they were
    /// recomputed.
    pub fn derive(&mut self, now_us: Micros, failing: &[(String, String)]) -> bool {
        if !self.stale() {
            return false;
        }
        let m = &self.mission;
        let mut risks = mission::risks(m, now_us);
        // Failing services come before stalls and blockers (as gates do).
        let at = risks
            .items
            .iter()
            .position(|r| matches!(r.kind, RiskKind::Stalled | RiskKind::Blocker))
            .unwrap_or(risks.items.len());
        for (i, (name, why)) in failing.iter().enumerate() {
            risks.items.insert(
                at + i,
                RiskItem {
                    kind: RiskKind::Service,
                    project: String::new(),
                    project_name: "Health".into(),
                    title: format!("{name} is failing"),
                    detail: why.clone(),
                    severity: "failing".into(),
                    owner: None,
                    due_us: None,
                    overdue: false,
                    since_us: None,
                    at: None,
                    options: Vec::new(),
                },
            );
        }
        failing.clone_into(&mut self.failing);
        self.derived = Derived {
            portfolio: mission::portfolio(m, now_us),
            decisions: mission::ranked_decisions(m, now_us - RADAR_US, now_us, now_us),
            risks,
            drift: mission::drift(m),
            version: m.version,
            at: Some(Instant::now()),
            now_us,
        };
        self.source = match &self.journal_note {
            Some(j) => format!("{j} · {} live events", self.live_events),
            None if self.loading.is_some() => format!("{} live events so far", self.live_events),
            None => format!(
                "{} events from the live feed (no journal)",
                self.live_events
            ),
        };
        true
    }

    /// The alerts the answers hold (what notifications say).
    pub fn alerts(&self) -> Vec<candybar_core::mission::alerts::Alert> {
        candybar_core::mission::alerts::alerts(
            &self.derived.risks,
            &self.derived.portfolio,
            &self.failing,
        )
    }

    /// Writes the briefing of `[since_us, until_us]`.
    pub fn write_brief(&mut self, since_us: Micros, until_us: Micros) {
        let title = crate::cli::mission::brief_title(until_us);
        self.brief_id += 1;
        self.brief = Some(mission::brief(
            &self.mission,
            &title,
            since_us,
            until_us,
            until_us,
        ));
    }

    pub fn info(&self) -> candybar_ui::mission::MissionInfo<'_> {
        candybar_ui::mission::MissionInfo {
            portfolio: &self.derived.portfolio,
            decisions: &self.derived.decisions,
            risks: &self.derived.risks,
            drift: &self.derived.drift,
            brief: self.brief.as_ref(),
            archive: &self.archive,
            loading: self.loading(),
            source: &self.source,
            now_us: self.derived.now_us,
            rewriter: self.plan.rewriter.as_ref().map(|r| r.model.as_str()),
            rewriting: self.rewriting > 0,
        }
    }
}
