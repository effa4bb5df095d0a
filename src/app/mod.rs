//! The app: the window's workers and their wiring. Each frame it drains the source into the store
//! (within a budget), fills the UI's [`ViewContext`] from its workers, lets the
//! [`Viewer`] draw, and applies the commands the views pushed — the one place where the window
//! changes anything outside itself.
//!
//! - [`commands`]: applying the views' commands (connect, export, dictation, secrets, autostart).
//! - [`dictation`]: the dictation worker, hotkey, built-in server and local socket wired together.
//! - [`export`]: writing events to a file off the UI thread.
//! - [`history`]: the journal — the recent past when the window opens, recording what it
//!   receives, or reading `candybar record`'s journal live.
//! - [`travel`]: the journal's timeline, and the past loaded from it when a moment is picked.
//! - [`tray`]: the tray icon and its menu. [`run`]: opening the window.

pub mod architect;

use architect::ArchitectWorker;
mod commands;
mod dictation;
pub mod export;
pub mod history;
pub mod mission;
mod models;
pub mod notify;
mod run;
#[cfg(target_os = "linux")]
pub mod runtime_libs;
pub mod sessions;
pub mod travel;
pub mod tray;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use candybar_bus::health_poll::HealthPoller;
use candybar_bus::live::{DrainReport, Live};
use candybar_bus::registry_watch::{RegistryUpdate, RegistryWatch};
use candybar_core::demo::{Demo, DemoConfig};
use candybar_core::health::Probes;
use candybar_core::registry::Registry;
use candybar_core::store::EventStore;
use candybar_core::time::{Micros, now_us};
use candybar_core::voice::Phase;
use candybar_ui::connection::ConnectionForm;
use candybar_ui::dictation::DictationDraft;
use candybar_ui::time_fmt::TimeZoneChoice;
use candybar_ui::{RegistryStatus, SourceInfo, ThemeChoice, ToastLevel, View, ViewContext, Viewer};

pub use dictation::DictationInit;
use dictation::DictationParts;
use export::ExportJob;
pub use run::{WindowArgs, run};

/// Time per frame for moving arrived events into the store.
const DRAIN_BUDGET: Duration = Duration::from_millis(4);
/// Time per run for moving events into the store while the window is hidden.
const HIDDEN_DRAIN_BUDGET: Duration = Duration::from_millis(40);
/// Time per frame for a re-scan after the filter changed.
const SCAN_BUDGET: Duration = Duration::from_millis(6);
const STORAGE_KEY: &str = "candybar";
/// How long quitting waits for the journal's last events to be written.
const JOURNAL_EXIT_GRACE: Duration = Duration::from_secs(5);
/// How long quitting waits for a recording in progress to be kept.
const EXIT_GRACE: Duration = Duration::from_secs(20);

/// Both ends of a channel a worker thread answers on.
type Channel<T> = (SyncSender<T>, Receiver<T>);

/// Where "now" comes from: the system clock, or a fixed instant (tests and snapshots).
#[derive(Clone, Copy, Debug)]
pub enum Clock {
    System,
    Fixed(Micros),
}

impl Clock {
    #[must_use]
    pub fn now_us(self) -> Micros {
        match self {
            Self::System => now_us(),
            Self::Fixed(t) => t,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub screenshot: Option<PathBuf>,
    pub exit_after_secs: Option<f64>,
    pub stats_out: Option<PathBuf>,
}

pub struct AppInit {
    pub live: Live,
    /// Overrides the persisted theme.
    pub theme: Option<ThemeChoice>,
    pub tz: Option<TimeZoneChoice>,
    pub clock: Clock,
    pub options: RunOptions,
    /// Connection fields for the current source (else the persisted ones).
    pub form: Option<ConnectionForm>,
    pub started: Instant,
    pub prefetch: u16,
    /// The registry the views show: the user's, the bundled example (which the demo feed
    /// simulates), or an empty one when none is configured and the events are real.
    pub registry: Registry,
    /// The platform's registry.yaml, watched for changes.
    pub registry_path: Option<PathBuf>,
    /// Poll the services' health endpoints: the runtime to poll on, the interval, the time
    /// limit per request (`[health]` in the config; off by default).
    pub health_poll: Option<(tokio::runtime::Handle, Duration, Duration)>,
    /// Dictation (off in tests that do not need it).
    pub dictation: Option<DictationInit>,
    /// Overrides the persisted view.
    pub view: Option<View>,
    /// Put an icon in the tray; closing the window then hides it instead of quitting.
    pub tray: bool,
    /// Start hidden in the tray.
    pub start_hidden: bool,
    /// Whether candybar starts at login (the real window reads the autostart entry; tests
    /// leave it off so nothing depends on the machine).
    pub autostart: bool,
    /// The journal, when the window records or reads one.
    pub history: Option<history::History>,
    /// Open at this moment from the journal instead of live.
    pub at: Option<Micros>,
    /// The coding-agent sessions (the Sessions view), when this window runs them.
    pub sessions: Option<sessions::SessionsInit>,
    /// The architect and the specs (the Conversation and Specs views), when this window runs
    /// them.
    pub architect: Option<architect::ArchitectInit>,
    /// Briefings the window writes by itself (none unless given).
    pub briefings: mission::BriefingPlan,
    /// Desktop notifications of Mission Control's alerts (none unless given).
    pub notify: Option<notify::NotifyPlan>,
}

impl AppInit {
    /// An app over `live` with defaults: system clock, no options, the example registry.
    #[must_use]
    pub fn new(live: Live) -> Self {
        Self {
            live,
            theme: None,
            tz: None,
            clock: Clock::System,
            options: RunOptions::default(),
            form: None,
            started: Instant::now(),
            prefetch: 1000,
            registry: Registry::example(),
            registry_path: None,
            health_poll: None,
            dictation: None,
            view: None,
            tray: false,
            start_hidden: false,
            autostart: false,
            history: None,
            sessions: None,
            architect: None,
            briefings: mission::BriefingPlan::default(),
            notify: None,
            at: None,
        }
    }
}

/// What survives a restart (eframe storage). No secrets: the form skips its password.
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct Persisted {
    theme: ThemeChoice,
    tz: TimeZoneChoice,
    filter: String,
    detail_open: bool,
    form: Option<ConnectionForm>,
    view: View,
    /// Dictation settings changed in the view (they win over the config file).
    dictation: Option<DictationDraft>,
}

type SecretResults = (
    SyncSender<(&'static str, Result<crate::secrets::Place, String>)>,
    Receiver<(&'static str, Result<crate::secrets::Place, String>)>,
);

#[allow(clippy::struct_excessive_bools)] // independent flags of the shell, not a state machine
pub struct CandybarApp {
    /// The window's own state: views, filter, theme, toasts.
    pub viewer: Viewer,
    pub live: Live,
    /// The journal, when the window records or reads one.
    history: Option<history::History>,
    /// The journal's timeline and the past shown, when there is a journal.
    pub travel: Option<travel::Travel>,
    pub clock: Clock,
    /// The wgpu renderer's state, for the views that draw with their own shaders.
    render_state: Option<eframe::egui_wgpu::RenderState>,
    pub export: Option<ExportJob>,
    /// An export of one event (the detail pane's): its toast says "Saved".
    export_single: bool,
    options: RunOptions,
    dialogs: (
        SyncSender<commands::DialogResult>,
        Receiver<commands::DialogResult>,
    ),
    frame_start: Instant,
    screenshot_requested: bool,
    exit_slot: Option<Arc<parking_lot::Mutex<ExitCode>>>,
    prefetch: u16,
    /// The registry the views show.
    pub registry: Registry,
    /// The watched file and the state of its last read.
    pub registry_status: RegistryStatus,
    registry_watch: Option<RegistryWatch>,
    /// Polls `endpoints.health` when the config asks for it.
    health_poller: Option<HealthPoller>,
    /// Bumped on every registry reload (views cache what they derive from it).
    registry_version: u64,
    received_total: u64,
    /// `received_total` when the first frame was timed.
    received_at_first_frame: Option<u64>,
    ctx: egui::Context,
    dictation: Option<DictationParts>,
    /// Set by a second launch (through the local socket): bring the window to the front.
    show_requested: Arc<std::sync::atomic::AtomicBool>,
    /// The coding-agent sessions, on their worker's thread.
    sessions: Option<sessions::SessionsWorker>,
    /// The architect's conversation and the specs, on their worker's thread.
    architect: Option<architect::ArchitectWorker>,
    /// Mission Control, once its view was first shown.
    pub mission: Option<mission::MissionState>,
    /// When the window writes briefings by itself, where it keeps them, the bus it tells.
    briefing_plan: mission::BriefingPlan,
    schedule: mission::Schedule,
    /// Desktop notifications of Mission Control's alerts (when asked for).
    notifier: Option<notify::Notifier>,
    /// Mission exports written (what to say).
    mission_exports: Channel<Result<String, String>>,
    /// `candybar record` asking (through the local socket) for the journal this window writes.
    journal_releases: (
        SyncSender<history::ReleaseRequest>,
        Receiver<history::ReleaseRequest>,
    ),
    /// Whether the view's settings were changed in this run (then they are saved).
    dictation_edited: bool,
    tray: Option<tray::Tray>,
    /// The window is shown (not hidden in the tray).
    pub window_visible: bool,
    /// Events wait at the source (the broker, the demo) instead of entering the store.
    pub paused: bool,
    /// Quit was asked for: a close request is no longer turned into hiding.
    quitting: bool,
    /// The built-in server's port, for the socket's answers.
    local_port: Arc<std::sync::atomic::AtomicU16>,
    secret_results: SecretResults,
}

impl CandybarApp {
    #[allow(clippy::too_many_lines)] // every field of the app, one per line
    pub fn new(cc: &eframe::CreationContext<'_>, init: AppInit) -> Self {
        let persisted: Persisted = cc
            .storage
            .and_then(|s| eframe::get_value(s, STORAGE_KEY))
            .unwrap_or_default();
        let mut viewer = Viewer::new(
            init.theme.unwrap_or(persisted.theme),
            init.tz.unwrap_or(persisted.tz),
            init.view.unwrap_or(persisted.view),
            init.started,
        );
        viewer.detail_open = persisted.detail_open;
        viewer.form = init.form.or(persisted.form).unwrap_or_default();
        viewer.form.open = false;
        cc.egui_ctx.set_visuals(viewer.theme.visuals());
        let ctx = cc.egui_ctx.clone();
        let waker = ctx.clone();
        init.live.set_waker(move || waker.request_repaint());
        let travel = init.history.as_ref().map(|h| {
            let waker = ctx.clone();
            travel::Travel::start(h.dir.clone(), move || waker.request_repaint())
        });
        let registry_status = registry_status(init.registry_path.as_ref(), &init.registry);
        let mut app = Self {
            viewer,
            live: init.live,
            history: init.history,
            travel,
            clock: init.clock,
            render_state: cc.wgpu_render_state.clone(),
            export: None,
            export_single: false,
            options: init.options,
            dialogs: sync_channel(4),
            frame_start: Instant::now(),
            screenshot_requested: false,
            exit_slot: None,
            prefetch: init.prefetch,
            registry_status,
            registry: init.registry,
            registry_watch: None,
            health_poller: None,
            registry_version: 0,
            received_total: 0,
            received_at_first_frame: None,
            ctx,
            dictation: None,
            show_requested: Arc::default(),
            sessions: None,
            architect: None,
            mission: None,
            mission_exports: sync_channel(4),
            schedule: mission::Schedule::new(init.briefings.times.clone()),
            notifier: init.notify.clone().and_then(notify::Notifier::start),
            briefing_plan: init.briefings.clone(),
            journal_releases: sync_channel(1),
            dictation_edited: persisted.dictation.is_some(),
            tray: None,
            window_visible: true,
            paused: false,
            quitting: false,
            local_port: Arc::default(),
            secret_results: sync_channel(4),
        };
        if let Some(di) = init.dictation {
            app.start_dictation(di, persisted.dictation);
        }
        if init.tray {
            let waker = app.ctx.clone();
            let dictation = app.dictation.as_ref().map(|d| d.handle.clone());
            let local = app.dictation.as_ref().map(|d| d.local.clone());
            match tray::Tray::start(dictation, local, move || waker.request_repaint()) {
                Ok(t) => app.tray = Some(t),
                Err(e) => tracing::warn!("{e}; closing the window will quit"),
            }
        }
        app.viewer.dictation_view.autostart = init.autostart;
        if init.start_hidden && app.tray.is_some() {
            app.window_visible = false;
            app.ctx
                .send_viewport_cmd(egui::ViewportCommand::Visible(false));
        }
        if let Some(si) = init.sessions {
            app.start_sessions(si);
        }
        if let Some(ai) = init.architect {
            let dictation = app.dictation.as_ref().map(|d| d.handle.clone());
            let waker = app.ctx.clone();
            match architect::ArchitectWorker::start(ai, dictation, move || waker.request_repaint())
            {
                Ok(w) => app.architect = Some(w),
                Err(e) => tracing::warn!("cannot start the architect worker: {e}"),
            }
        }
        if let Some((rt, interval, timeout)) = &init.health_poll {
            app.start_health_poller(rt, *interval, *timeout);
        }
        if let Some(path) = &init.registry_path {
            let waker = app.ctx.clone();
            match RegistryWatch::start(path, move || waker.request_repaint()) {
                Ok(w) => app.registry_watch = Some(w),
                Err(e) => app.viewer.toast(
                    &app.ctx,
                    ToastLevel::Error,
                    format!("the registry will not reload by itself: {e}"),
                ),
            }
        }
        if init.at.is_some() {
            app.travel_to(init.at);
        }
        if !persisted.filter.is_empty() {
            app.viewer
                .apply_filter_text(persisted.filter, &app.live.store);
        }
        app
    }

    /// Sets the filter field; a text that parses replaces the running filter.
    pub fn apply_filter_text(&mut self, text: String) {
        let (store, _) = shown(&self.live, self.travel.as_ref(), self.clock);
        self.viewer.apply_filter_text(text, store);
    }

    /// The views are about to draw another store: an export of the one they drew stops (its
    /// sequence numbers mean other events in the next).
    fn before_store_change(&mut self) {
        if let Some(job) = self.export.take() {
            job.cancel();
            self.toast(
                ToastLevel::Info,
                "Export cancelled: the window moved to another time",
            );
        }
    }

    /// Searches the whole journal for the Stream's filter.
    fn search_journal(&mut self) {
        let filter = self.viewer.stream.view.filter().clone();
        let Some(travel) = self.travel.as_mut() else {
            return;
        };
        let waker = self.ctx.clone();
        let config = self.live.store.config().clone();
        travel.search(filter, config, move || waker.request_repaint());
    }

    /// Travels to `at` (`None`: back to live).
    fn travel_to(&mut self, at: Option<Micros>) {
        let Some(travel) = self.travel.as_mut() else {
            return;
        };
        if let Some(at) = at {
            let waker = self.ctx.clone();
            let config = self.live.store.config().clone();
            travel.go(at, config, move || waker.request_repaint());
        } else {
            let was_past = travel.past.is_some();
            travel.live();
            if was_past {
                self.before_store_change();
                self.viewer.store_changed(&self.live.store);
            }
        }
    }

    /// Whether the Charts show a range longer than memory holds: then it is computed from the
    /// journal's indexes for this frame.
    fn long_range(&mut self) -> bool {
        let window_secs = self.viewer.charts.window_secs;
        let wanted = self.viewer.view == View::Charts
            && candybar_ui::charts::from_journal(window_secs)
            && self.travel.is_some();
        if wanted {
            let (_, now_us) = shown(&self.live, self.travel.as_ref(), self.clock);
            if let Some(t) = self.travel.as_mut() {
                t.refresh_rates(
                    i64::from(window_secs) * candybar_core::time::MICROS_PER_SEC,
                    now_us,
                );
            }
        }
        wanted
    }

    /// A past finished loading: the views draw it (or say why it could not be read).
    fn poll_travel(&mut self) {
        let Some(done) = self.travel.as_mut().and_then(travel::Travel::poll) else {
            return;
        };
        match done {
            Ok(()) => {
                self.before_store_change();
                let (store, _) = shown(&self.live, self.travel.as_ref(), self.clock);
                self.viewer.store_changed(store);
            }
            Err(e) => self.toast(ToastLevel::Error, format!("cannot read the journal: {e}")),
        }
    }

    /// The dictation worker's status (recording, text, history), if dictation runs.
    pub fn dictation_status(&self) -> Option<candybar_core::voice::DictationStatus> {
        self.dictation.as_ref().map(|d| d.handle.status())
    }

    pub(crate) fn set_exit_slot(&mut self, slot: Arc<parking_lot::Mutex<ExitCode>>) {
        self.exit_slot = Some(slot);
    }

    fn toast(&mut self, level: ToastLevel, text: impl Into<String>) {
        self.viewer.toast(&self.ctx, level, text);
    }

    /// Polls the registry services' health endpoints from now on.
    fn start_health_poller(
        &mut self,
        rt: &tokio::runtime::Handle,
        interval: Duration,
        timeout: Duration,
    ) {
        let waker = self.ctx.clone();
        self.health_poller = Some(HealthPoller::start(
            rt,
            candybar_core::health::targets(&self.registry),
            interval,
            timeout,
            move || waker.request_repaint(),
        ));
    }

    /// Applies registry reloads: a good file replaces the registry, a broken one is reported
    /// and the last good registry stays.
    fn poll_registry(&mut self) {
        let Some(watch) = &self.registry_watch else {
            return;
        };
        let updates: Vec<RegistryUpdate> = watch.rx.try_iter().collect();
        let path = match &self.registry_status {
            RegistryStatus::Loaded { path, .. } | RegistryStatus::Problem { path, .. } => {
                path.clone()
            }
            RegistryStatus::Example | RegistryStatus::NotConfigured => return,
        };
        for update in updates {
            self.registry_status = match update {
                RegistryUpdate::Loaded(r) => {
                    let services = r.services.len();
                    self.registry = *r;
                    self.registry_version += 1;
                    if let Some(p) = &self.health_poller {
                        p.set_targets(candybar_core::health::targets(&self.registry));
                    }
                    RegistryStatus::Loaded {
                        path: path.clone(),
                        services,
                    }
                }
                RegistryUpdate::Broken(message) | RegistryUpdate::Unreadable(message) => {
                    RegistryStatus::Problem {
                        path: path.clone(),
                        message,
                    }
                }
            };
        }
    }

    /// Without a registry file, the views show the bundled example while the demo feed (which
    /// simulates it) runs, and nothing — with a word on how to set one — for real events.
    fn follow_source_with_registry(&mut self) {
        let next = match self.registry_status {
            RegistryStatus::Example | RegistryStatus::NotConfigured => {
                if self.live.is_demo() {
                    RegistryStatus::Example
                } else {
                    RegistryStatus::NotConfigured
                }
            }
            _ => return,
        };
        if next != self.registry_status {
            self.registry = if next == RegistryStatus::Example {
                Registry::example()
            } else {
                Registry::default()
            };
            self.registry_version += 1;
            self.registry_status = next;
        }
    }

    /// Tray clicks, closing to the tray, and what the tray shows.
    fn tray_logic(&mut self, ctx: &egui::Context) {
        if let Some(e) = self.tray.as_ref().and_then(tray::Tray::failure) {
            tracing::warn!("{e}; closing the window will quit");
            self.tray = None;
            if !self.window_visible {
                self.apply_tray_action(ctx, tray::TrayAction::ShowWindow);
            }
        }
        let Some(t) = &self.tray else { return };
        let actions: Vec<tray::TrayAction> = t.actions.try_iter().collect();
        let host = t.host();
        for a in actions {
            self.apply_tray_action(ctx, a);
        }
        if host == tray::Host::Absent && !self.window_visible {
            // The tray went away (or never came): a hidden window could not be found again.
            tracing::warn!("no system tray shows candybar's icon; showing the window");
            self.apply_tray_action(ctx, tray::TrayAction::ShowWindow);
        }
        if ctx.input(|i| i.viewport().close_requested()) && !self.quitting {
            if host == tray::Host::Present {
                // Closing the window keeps candybar (and dictation) running in the tray.
                ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
                self.apply_tray_action(ctx, tray::TrayAction::HideWindow);
            } else {
                tracing::info!(
                    "no system tray on this desktop (StatusNotifier or XEmbed): closing quits"
                );
                self.quitting = true;
            }
        }
        let (_, state) = candybar_ui::connection::state_text(&self.live.state, self.viewer.theme);
        let bus = if self.live.is_demo() {
            "Demo feed"
        } else {
            "Bus"
        };
        if let Some(t) = &self.tray {
            t.set_state(tray::TrayState {
                window_visible: self.window_visible,
                paused: self.paused,
                bus: format!("{bus}: {state}"),
            });
        }
    }

    pub fn apply_tray_action(&mut self, ctx: &egui::Context, a: tray::TrayAction) {
        use tray::TrayAction;
        match a {
            TrayAction::ShowWindow => {
                self.window_visible = true;
                ctx.send_viewport_cmd(egui::ViewportCommand::Visible(true));
                ctx.send_viewport_cmd(egui::ViewportCommand::Minimized(false));
                ctx.send_viewport_cmd(egui::ViewportCommand::Focus);
            }
            TrayAction::HideWindow => {
                self.window_visible = false;
                ctx.send_viewport_cmd(egui::ViewportCommand::Visible(false));
            }
            TrayAction::SetPaused(p) => self.paused = p,
            TrayAction::LocalServer(start) => self.local_server(start),
            TrayAction::Quit => self.quit(ctx),
        }
    }

    fn quit(&mut self, ctx: &egui::Context) {
        self.quitting = true;
        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
    }

    /// Things that change with time alone ask for their own next frame; nothing else does.
    fn schedule_repaint(&self, ctx: &egui::Context) {
        let recording = self
            .dictation
            .as_ref()
            .is_some_and(|d| d.handle.with_status(|s| s.phase == Phase::Recording));
        if recording {
            // The level meter and the timer.
            ctx.request_repaint_after(Duration::from_millis(50));
        } else if self.live.retry_in().is_some()
            || self.viewer.stream.view.filter().is_time_relative()
            || (self.viewer.view != View::Stream && self.live.rate_per_sec() > 0.0)
        {
            ctx.request_repaint_after(Duration::from_millis(250));
        } else if self.live.rate_per_sec() > 0.0 {
            ctx.request_repaint_after(Duration::from_secs(1));
        } else if self.live.store.tidying() {
            // After a flood, the store packs its blocks tighter a few at each drain.
            ctx.request_repaint_after(Duration::from_millis(100));
        }
    }

    /// Everything a frame does, drawing into `ui` (the whole window).
    pub fn frame_ui(&mut self, ui: &mut egui::Ui, prev_frame_cpu_secs: Option<f32>) {
        let ui_start = Instant::now();
        let ctx = ui.ctx().clone();
        if !self.window_visible {
            // Hidden in the tray: nothing to lay out or draw; only what runs on a timer.
            self.apply_commands(&ctx);
            self.run_options(&ctx);
            return;
        }
        // The endpoints' answers are copied only for the view that shows them.
        let probes = match (&self.health_poller, self.viewer.view) {
            (Some(p), View::Health) => p.results(),
            _ => Probes::default(),
        };
        let journal = self.history.as_ref().map(|h| h.status.lock().clone());
        let long_range = self.long_range();
        let timeline = self.travel.as_ref().map(|t| (t.timeline(), t.loading()));
        let search = self.travel.as_ref().and_then(travel::Travel::search_info);
        let (store, now_us) = shown(&self.live, self.travel.as_ref(), self.clock);
        // What this frame shows, borrowed from the app's workers (fields apart from the viewer).
        let cx = ViewContext {
            store,
            now_us,
            source: SourceInfo {
                describe: &self.live.describe,
                demo_reason: self.live.demo_reason.as_deref(),
                state: &self.live.state,
                retry_in: self.live.retry_in(),
                ended: self.live.ended,
                rate_per_sec: self.live.rate_per_sec(),
            },
            paused: self.paused,
            registry: &self.registry,
            registry_version: self.registry_version,
            registry_status: &self.registry_status,
            probes: &probes,
            dictation: self.dictation.as_ref().map(DictationParts::info),
            export: self
                .export
                .as_ref()
                .filter(|_| !self.export_single)
                .map(ExportJob::progress_info),
            render_state: self.render_state.as_ref(),
            journal: journal.as_ref().map(|j| candybar_ui::JournalInfo {
                line: &j.line,
                hover: &j.hover,
                warning: j.warning.as_deref(),
            }),
            sessions: self.sessions.as_ref().map(sessions::SessionsWorker::info),
            mission: self.mission.as_ref().map(mission::MissionState::info),
            conversation: self
                .architect
                .as_ref()
                .map(ArchitectWorker::conversation_info),
            specs: self.architect.as_ref().map(ArchitectWorker::specs_info),
            journal_rates: if long_range {
                self.travel.as_ref().and_then(travel::Travel::rates)
            } else {
                None
            },
            timeline: timeline.as_ref().and_then(|(t, loading)| {
                Some(candybar_ui::TimelineInfo {
                    span: t.span?,
                    density: &t.density,
                    at: self
                        .travel
                        .as_ref()
                        .and_then(|t| t.past.as_ref())
                        .map(|p| p.at_us),
                    loading: *loading,
                    in_memory_from: self.live.store.oldest_received_us(),
                    now_us: self.clock.now_us(),
                    search,
                })
            }),
        };
        self.viewer.frame_ui(ui, &cx);
        self.apply_commands(&ctx);
        self.run_options(&ctx);
        self.schedule_repaint(&ctx);
        let ui_secs = ui_start.elapsed().as_secs_f32();
        self.viewer
            .stats
            .record(self.frame_start, ui_secs, prev_frame_cpu_secs);
        if self.viewer.stats.first_frame_pending() {
            // The next frame begins once this one is on its way to the display: it times it.
            ctx.request_repaint();
        }
        if self
            .dictation
            .as_ref()
            .is_some_and(|d| d.pending_hotkey.is_some())
        {
            // After this frame is on its way: the next one grabs the hotkey.
            ctx.request_repaint();
        }
    }

    /// Ingest: what `logic` does every frame, and while the window is hidden.
    pub fn ingest(&mut self, ctx: &egui::Context) {
        self.frame_start = Instant::now();
        self.viewer.stats.frame_begins(self.frame_start, now_us());
        if self.received_at_first_frame.is_none() && !self.viewer.stats.first_frame_pending() {
            self.received_at_first_frame = Some(self.received_total);
        }
        self.tray_logic(ctx);
        if self.viewer.stats.frames > 0 || !self.window_visible {
            self.grab_pending_hotkey();
        }
        let report = if self.paused {
            self.live.store.tidy();
            DrainReport::default()
        } else if self.window_visible {
            self.live.drain(DRAIN_BUDGET)
        } else {
            // Hidden in the tray, eframe runs us only every 100 ms and nothing is drawn: take
            // a bigger bite so ingest keeps up.
            self.live.drain(HIDDEN_DRAIN_BUDGET)
        };
        self.received_total += report.events as u64;
        if report.more {
            ctx.request_repaint();
        }
        self.poll_travel();
        let (store, now_us) = shown(&self.live, self.travel.as_ref(), self.clock);
        if self.viewer.stream.update(store, now_us, SCAN_BUDGET) {
            ctx.request_repaint();
        }
        self.step_export();
        self.poll_history();
        self.poll_sessions();
        self.poll_architect();
        self.poll_mission();
        self.poll_mission_exports();
        self.poll_dialogs();
        self.poll_secrets();
        self.poll_devices();
        if self
            .show_requested
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            self.apply_tray_action(ctx, tray::TrayAction::ShowWindow);
        }
        self.poll_registry();
        self.viewer
            .stats
            .record_ingest(self.frame_start.elapsed().as_secs_f32());
    }

    /// Mission Control reads what arrived, and brings its answers up to date while shown.
    fn poll_mission(&mut self) {
        let now = self.clock.now_us();
        if !self.schedule.times.is_empty() {
            // An idle window still looks at the schedule once a minute.
            self.ctx.request_repaint_after(Duration::from_mins(1));
        }
        if self.schedule.briefing_due(now) {
            // Mission Control starts (reading the journal) if it has not yet; the briefing is
            // written once the past is read.
            self.start_mission();
            if let Some(m) = &mut self.mission {
                m.pending_brief = Some(now);
            }
        }
        // Notifications watch whatever the view.
        if self.notifier.is_some() && self.mission.is_none() {
            self.start_mission();
        }
        let Some(m) = &mut self.mission else { return };
        m.scan(&self.live.store);
        if m.loading().is_none()
            && let Some(at) = m.pending_brief.take()
        {
            let waker = self.ctx.clone();
            m.scheduled_briefing(at, move || waker.request_repaint());
        }
        let said = m.poll_done();
        let shown = self.viewer.view == View::Mission;
        let watched = self.notifier.is_some();
        if shown || watched {
            // Health's failing services only when the answers are recomputed (not every frame).
            let failing = if self.registry.services.is_empty() || !m.stale() {
                Vec::new()
            } else {
                let probes = self
                    .health_poller
                    .as_ref()
                    .map(candybar_bus::health_poll::HealthPoller::results)
                    .unwrap_or_default();
                candybar_ui::health::failing_services(
                    &self.registry,
                    &self.live.store,
                    &probes,
                    now,
                )
            };
            let fresh = m.derive(now, &failing);
            // Alerts once the journal's past is in: what was already open is said together.
            if fresh
                && m.loading().is_none()
                && let Some(n) = &mut self.notifier
            {
                n.step(m.alerts(), now);
            }
            if shown {
                if m.loading().is_some() {
                    self.ctx.request_repaint_after(Duration::from_millis(200));
                } else {
                    // SLA countdowns and ages move with the clock.
                    self.ctx.request_repaint_after(Duration::from_secs(1));
                }
            } else {
                self.ctx.request_repaint_after(Duration::from_secs(2));
            }
        }
        for s in said {
            match s {
                Ok(words) => {
                    if let Some(n) = &self.notifier
                        && words.contains(" is ready: ")
                    {
                        n.say("candybar: briefing", &words);
                    }
                    self.toast(ToastLevel::Info, words);
                }
                Err(e) => self.toast(ToastLevel::Error, e),
            }
        }
        if let Some(e) = self.notifier.as_mut().and_then(notify::Notifier::failure) {
            self.toast(
                ToastLevel::Info,
                format!(
                    "Desktop notifications are unavailable ({e}); Mission Control's alerts show \
                     in its Risks tab"
                ),
            );
        }
    }

    /// Starts Mission Control (its view asked): from the journal when there is one.
    pub(super) fn start_mission(&mut self) {
        if self.mission.is_some() {
            return;
        }
        let journal = self.history.as_ref().map(|h| h.dir.clone());
        let waker = self.ctx.clone();
        let plan = self.briefing_plan.clone();
        let mut m = mission::MissionState::start(journal, plan, &self.live.store, move || {
            waker.request_repaint();
        });
        m.derive(self.clock.now_us(), &[]);
        self.mission = Some(m);
    }

    fn start_sessions(&mut self, init: sessions::SessionsInit) {
        let waker = self.ctx.clone();
        match sessions::SessionsWorker::start(init, move || waker.request_repaint()) {
            Ok(w) => self.sessions = Some(w),
            Err(e) => tracing::warn!("cannot start the sessions worker: {e}"),
        }
    }

    /// Copies what the sessions worker shows when it changed, and says what it has to say.
    fn poll_sessions(&mut self) {
        let Some(w) = &mut self.sessions else { return };
        // Other hosts' sessions, from the lifecycle events that arrived (only while the view is
        // shown: the bus's rows are merged for it).
        let bus_changed = self.viewer.view == View::Sessions && w.bus.scan(&self.live.store);
        let notices = {
            let mut s = w.snapshot.lock();
            if s.generation == w.seen.generation && !bus_changed {
                return;
            }
            let notices = std::mem::take(&mut s.notices);
            w.seen.clone_from(&s);
            notices
        };
        w.rows = w.bus.merged(&w.seen.rows, w.show_all);
        for (level, words) in notices {
            self.viewer.toast(&self.ctx, level, words);
        }
    }

    /// Copies what the architect worker shows when it changed; says its notices; follows it to
    /// the view it asks for (a spec written opens in the Specs view).
    fn poll_architect(&mut self) {
        let Some(w) = &mut self.architect else { return };
        let (notices, go_to, copy) = {
            let mut s = w.snapshot.lock();
            if s.generation == w.seen.generation {
                return;
            }
            let taken = (
                std::mem::take(&mut s.notices),
                s.go_to.take(),
                s.copy.take(),
            );
            w.seen.clone_from(&s);
            taken
        };
        if let Some(text) = copy {
            self.ctx.copy_text(text);
            self.viewer.toast(
                &self.ctx,
                ToastLevel::Info,
                "the conversation is on the clipboard, as Markdown",
            );
        }
        for (level, words) in notices {
            self.viewer.toast(&self.ctx, level, words);
        }
        if let Some((view, spec)) = go_to {
            self.viewer.view = view;
            if let Some(id) = spec {
                self.viewer.specs.selected = Some(id.clone());
                w.spec(candybar_ui::specs::SpecAction::Show { id, version: None });
            }
        }
    }

    /// The screenshot and exit-after options.
    fn run_options(&mut self, ctx: &egui::Context) {
        let Some(after) = self.options.exit_after_secs else {
            return;
        };
        let elapsed = self.viewer.stats.started().elapsed().as_secs_f64();
        if elapsed < after {
            ctx.request_repaint_after(Duration::from_secs_f64(
                (after - elapsed).clamp(0.0, 3600.0),
            ));
            return;
        }
        if let Some(path) = self.options.screenshot.clone() {
            let shot = ctx.input(|i| {
                i.raw.events.iter().find_map(|e| match e {
                    egui::Event::Screenshot { image, .. } => Some(image.clone()),
                    _ => None,
                })
            });
            if let Some(image) = shot {
                if let Err(e) = save_png(&path, &image) {
                    eprintln!("candybar: {e}");
                    self.set_exit(ExitCode::FAILURE);
                }
                self.quit(ctx);
            } else if !self.screenshot_requested {
                self.screenshot_requested = true;
                ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(egui::UserData::default()));
                ctx.request_repaint();
            } else {
                ctx.request_repaint_after(Duration::from_millis(50));
            }
        } else {
            self.quit(ctx);
        }
    }

    fn set_exit(&self, code: ExitCode) {
        if let Some(slot) = &self.exit_slot {
            *slot.lock() = code;
        }
    }

    fn write_stats(&self) {
        let Some(path) = &self.options.stats_out else {
            return;
        };
        let after_first = self.received_total - self.received_at_first_frame.unwrap_or(0);
        let report = self.viewer.stats.report(
            self.live.store.len() as u64,
            (self.received_total, after_first),
            crate::procfs::process_cpu_secs(),
        );
        let result = serde_json::to_vec_pretty(&report)
            .map_err(|e| e.to_string())
            .and_then(|j| std::fs::write(path, j).map_err(|e| e.to_string()));
        if let Err(e) = result {
            eprintln!("candybar: cannot write {}: {e}", path.display());
        }
    }
}

impl eframe::App for CandybarApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.ingest(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        self.frame_ui(ui, frame.info().cpu_usage);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        let persisted = Persisted {
            theme: self.viewer.theme.choice,
            tz: self.viewer.tz,
            filter: self.viewer.filter_text.clone(),
            detail_open: self.viewer.detail_open,
            form: Some(self.viewer.form.clone()),
            view: self.viewer.view,
            dictation: self
                .dictation_edited
                .then(|| self.viewer.dictation_view.applied.clone()),
        };
        eframe::set_value(storage, STORAGE_KEY, &persisted);
    }

    fn on_exit(&mut self) {
        if let Some(recorder) = self.history.as_mut().and_then(|h| h.recorder.as_mut()) {
            recorder.finish(JOURNAL_EXIT_GRACE);
        }
        self.write_stats();
        self.finish_dictation_before_exit();
    }
}

/// What the status bar first says about the registry.
fn registry_status(path: Option<&PathBuf>, registry: &Registry) -> RegistryStatus {
    match path {
        Some(path) => RegistryStatus::Loaded {
            path: path.clone(),
            services: registry.services.len(),
        },
        None if registry.services.is_empty() => RegistryStatus::NotConfigured,
        None => RegistryStatus::Example,
    }
}

/// The store the views draw and their "now": the past when the window travels, else live.
fn shown<'a>(
    live: &'a Live,
    travel: Option<&'a travel::Travel>,
    clock: Clock,
) -> (&'a EventStore, Micros) {
    match travel.and_then(|t| t.past.as_ref()) {
        Some(p) => (&p.store, p.at_us),
        None => (&live.store, clock.now_us()),
    }
}

fn save_png(path: &Path, image: &egui::ColorImage) -> Result<(), String> {
    let [w, h] = image.size;
    let mut rgba = Vec::with_capacity(w * h * 4);
    for p in &image.pixels {
        rgba.extend_from_slice(&p.to_array());
    }
    image::save_buffer(path, &rgba, w as u32, h as u32, image::ColorType::Rgba8)
        .map_err(|e| format!("cannot save the screenshot to {}: {e}", path.display()))
}

/// Fills `store` with `n` demo events, received over the last `n / 1000` seconds (benchmarks and
/// `--preload`).
pub fn preload_demo(store: &mut EventStore, n: u64, registry: &Registry) {
    let mut demo = Demo::new(DemoConfig::default(), registry);
    let end = now_us();
    let start = end - (n as i64) * 1000;
    for i in 0..n {
        store.insert(&demo.next_message(start + i as i64 * 1000));
    }
    store.flush();
}
