//! The app shell: ingest each frame within a budget, lay out the panels, apply the views'
//! commands in one place.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use egui::{Align, Key, KeyboardShortcut, Layout, Modifiers, RichText};
use serde::{Deserialize, Serialize};

use super::charts::ChartsViewState;
use super::connection::{ConnectRequest, ConnectionForm, state_text};
use super::detail::DetailState;
use super::dictation::{DictationDraft, DictationViewState, HotkeyInfo};
use super::export::{ExportJob, ExportStatus};
use super::frame_stats::FrameStats;
use super::stats::{CardFigures, cards_ui};
use super::stream::{StreamViewState, format_bytes, format_count};
use super::theme::{Theme, ThemeChoice};
use super::time_fmt::TimeZoneChoice;
use super::{Command, View};
use crate::config::mask_secrets_in;
use crate::core::demo::{Demo, DemoConfig};
use crate::core::export::{ExportEncoder, ExportFormat};
use crate::core::filter::Filter;
use crate::core::registry::Registry;
use crate::core::store::EventStore;
use crate::core::time::{Micros, now_us};
use crate::live::Live;
use crate::sources::amqp::{AmqpConfig, QueueMode};
use crate::sources::demo::DemoSourceConfig;
use crate::sources::registry_watch::{RegistryUpdate, RegistryWatch};
use crate::sources::replay::{Pace, ReplayConfig};
use crate::sources::{SourceState, amqp, demo, replay};
use crate::voice::dictation::{Dictation, DictationConfig, Phase, Request};
use crate::voice::hotkey::{Hotkey, HotkeyMode};
use crate::voice::local_server::{LocalServer, LocalServerConfig};
use crate::voice::outputs::{Bus, Webhook};

/// Time per frame for moving arrived events into the store.
const DRAIN_BUDGET: Duration = Duration::from_millis(4);
/// Time per run for moving events into the store while the window is hidden.
const HIDDEN_DRAIN_BUDGET: Duration = Duration::from_millis(40);
/// Time per frame for a re-scan after the filter changed.
const SCAN_BUDGET: Duration = Duration::from_millis(6);
/// Time per frame for encoding an export.
const EXPORT_BUDGET: Duration = Duration::from_millis(4);
const STORAGE_KEY: &str = "candybar";

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
    /// What the demo feed simulates.
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
}

/// What the app needs to run dictation.
pub struct DictationInit {
    /// From the config file and the environment; the view's saved settings apply on top.
    pub cfg: DictationConfig,
    pub hotkey: String,
    pub mode: HotkeyMode,
    /// Recordings stream on this runtime.
    pub rt: tokio::runtime::Handle,
    /// The local socket this instance answers on (`candybar dictate --toggle`).
    pub instance: Option<(crate::instance::Claimed, PathBuf)>,
    /// Grab the global hotkey (not in UI tests).
    pub global_hotkey: bool,
    /// Where the bus output publishes when it is turned on (the configured broker).
    pub bus_target: Option<Bus>,
    /// The built-in ASR server the app can run as a child process.
    pub local_server: LocalServerConfig,
    pub local_auto_start: bool,
}

/// The app's side of dictation.
struct DictationParts {
    handle: Dictation,
    cfg: DictationConfig,
    hotkey: Option<Hotkey>,
    hotkey_info: HotkeyInfo,
    global_hotkey: bool,
    bus_target: Option<Bus>,
    local: LocalServer,
    local_cfg: LocalServerConfig,
    /// A hotkey to grab at the next frame.
    pending_hotkey: Option<(String, HotkeyMode)>,
    /// Removes the socket file when the app exits.
    served: Option<crate::instance::Served>,
}

impl AppInit {
    /// An app over `live` with defaults: system clock, no options.
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum ToastLevel {
    Info,
    Error,
}

struct Toast {
    text: String,
    level: ToastLevel,
    until: Instant,
}

/// What the status bar says about the registry.
#[derive(Clone, Debug, PartialEq)]
pub enum RegistryStatus {
    /// None configured: the bundled example drives the demo feed.
    Example,
    Loaded {
        path: PathBuf,
        services: usize,
    },
    /// The file is broken or gone; the last good registry stays in use.
    Problem {
        path: PathBuf,
        message: String,
    },
}

/// Why a file dialog was opened.
#[derive(Clone, Copy, Debug)]
enum SavePurpose {
    Filtered(ExportFormat),
    Event(u64),
}

struct DialogResult {
    purpose: SavePurpose,
    path: Option<PathBuf>,
    /// A dialog that returns at once without a path most likely could not open at all.
    elapsed: Duration,
}

#[allow(clippy::struct_excessive_bools)] // independent flags of the shell, not a state machine
pub struct CandybarApp {
    pub live: Live,
    pub view: View,
    pub stream: StreamViewState,
    pub charts: ChartsViewState,
    pub constellation: super::constellation::ConstellationViewState,
    /// The wgpu renderer's state, for the views that draw with their own shaders.
    render_state: Option<eframe::egui_wgpu::RenderState>,
    pub flow: super::flow::FlowViewState,
    pub detail: DetailState,
    pub detail_open: bool,
    /// The filter field's text (may not parse; the view keeps the last good filter).
    pub filter_text: String,
    pub filter_error: Option<(usize, String)>,
    pub theme: Theme,
    pub tz: TimeZoneChoice,
    pub clock: Clock,
    pub form: ConnectionForm,
    pub export: Option<ExportJob>,
    pub stats: FrameStats,
    options: RunOptions,
    commands: Vec<Command>,
    toasts: Vec<Toast>,
    dialogs: (SyncSender<DialogResult>, Receiver<DialogResult>),
    frame_start: Instant,
    screenshot_requested: bool,
    focus_filter: bool,
    exit_slot: Option<Arc<parking_lot::Mutex<ExitCode>>>,
    prefetch: u16,
    /// The last good registry (the bundled example when none is configured).
    pub registry: Registry,
    /// The watched file and the state of its last read.
    pub registry_status: RegistryStatus,
    registry_watch: Option<RegistryWatch>,
    /// Polls `endpoints.health` when the config asks for it.
    health_poller: Option<crate::sources::health_poll::HealthPoller>,
    /// Bumped on every registry reload (views cache what they derive from it).
    registry_version: u64,
    received_total: u64,
    ctx: egui::Context,
    dictation: Option<DictationParts>,
    pub dictation_view: DictationViewState,
    /// Set by a second launch (through the local socket): bring the window to the front.
    show_requested: Arc<std::sync::atomic::AtomicBool>,
    /// Whether the view's settings were changed in this run (then they are saved).
    dictation_edited: bool,
    tray: Option<super::tray::Tray>,
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

type SecretResults = (
    SyncSender<(&'static str, Result<crate::secrets::Place, String>)>,
    Receiver<(&'static str, Result<crate::secrets::Place, String>)>,
);

impl CandybarApp {
    pub fn new(cc: &eframe::CreationContext<'_>, init: AppInit) -> Self {
        let persisted: Persisted = cc
            .storage
            .and_then(|s| eframe::get_value(s, STORAGE_KEY))
            .unwrap_or_default();
        let theme = Theme::new(init.theme.unwrap_or(persisted.theme));
        cc.egui_ctx.set_visuals(theme.visuals());
        let ctx = cc.egui_ctx.clone();
        let waker = ctx.clone();
        init.live.set_waker(move || waker.request_repaint());
        let mut form = init.form.or(persisted.form).unwrap_or_default();
        form.open = false;
        let mut app = Self {
            live: init.live,
            view: init.view.unwrap_or(persisted.view),
            stream: StreamViewState::default(),
            charts: ChartsViewState::default(),
            constellation: super::constellation::ConstellationViewState::default(),
            render_state: cc.wgpu_render_state.clone(),
            flow: super::flow::FlowViewState::new(),
            detail: DetailState::default(),
            detail_open: persisted.detail_open,
            filter_text: String::new(),
            filter_error: None,
            theme,
            tz: init.tz.unwrap_or(persisted.tz),
            clock: init.clock,
            form,
            export: None,
            stats: FrameStats::new(init.started),
            options: init.options,
            commands: Vec::new(),
            toasts: Vec::new(),
            dialogs: sync_channel(4),
            frame_start: Instant::now(),
            screenshot_requested: false,
            focus_filter: false,
            exit_slot: None,
            prefetch: init.prefetch,
            registry_status: match &init.registry_path {
                Some(path) => RegistryStatus::Loaded {
                    path: path.clone(),
                    services: init.registry.services.len(),
                },
                None => RegistryStatus::Example,
            },
            registry: init.registry,
            registry_watch: None,
            health_poller: None,
            registry_version: 0,
            received_total: 0,
            ctx,
            dictation: None,
            dictation_view: DictationViewState::default(),
            show_requested: Arc::default(),
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
            match super::tray::Tray::start(dictation, local, move || waker.request_repaint()) {
                Ok(t) => app.tray = Some(t),
                Err(e) => tracing::warn!("{e}; closing the window will quit"),
            }
        }
        app.dictation_view.autostart = init.autostart;
        if init.start_hidden && app.tray.is_some() {
            app.window_visible = false;
            app.ctx
                .send_viewport_cmd(egui::ViewportCommand::Visible(false));
        }
        if let Some((rt, interval, timeout)) = &init.health_poll {
            app.start_health_poller(rt, *interval, *timeout);
        }
        if let Some(path) = &init.registry_path {
            let waker = app.ctx.clone();
            match RegistryWatch::start(path, move || waker.request_repaint()) {
                Ok(w) => app.registry_watch = Some(w),
                Err(e) => app.toast(
                    ToastLevel::Error,
                    format!("the registry will not reload by itself: {e}"),
                ),
            }
        }
        if !persisted.filter.is_empty() {
            app.apply_filter_text(persisted.filter);
        }
        app
    }

    fn start_dictation(&mut self, di: DictationInit, saved: Option<DictationDraft>) {
        let mut draft = DictationDraft {
            server: di.cfg.server.clone(),
            device: di.cfg.device.clone().unwrap_or_default(),
            hotkey: di.hotkey,
            mode: di.mode,
            clipboard: di.cfg.clipboard,
            typing: di.cfg.typing,
            webhook_url: di
                .cfg
                .outputs
                .webhook
                .as_ref()
                .map(|w| w.url.clone())
                .unwrap_or_default(),
            bus: di.cfg.outputs.bus.is_some(),
            local_model: di.local_server.model.clone(),
            local_port: di.local_server.port.to_string(),
            local_auto_start: di.local_auto_start,
        };
        if let Some(saved) = saved {
            draft = saved;
        }
        let local_waker = self.ctx.clone();
        let waker = self.ctx.clone();
        let mut parts = DictationParts {
            handle: Dictation::start(&di.cfg, di.rt, move || waker.request_repaint()),
            cfg: di.cfg,
            hotkey: None,
            hotkey_info: HotkeyInfo::default(),
            global_hotkey: di.global_hotkey,
            bus_target: di.bus_target,
            local: LocalServer::new(move || local_waker.request_repaint()),
            local_cfg: di.local_server,
            pending_hotkey: None,
            served: None,
        };
        if let Some((listener, path)) = di.instance {
            let handle = parts.handle.clone();
            let local = parts.local.clone();
            let local_port = self.local_port.clone();
            let show = self.show_requested.clone();
            let ctx = self.ctx.clone();
            let served = crate::instance::serve(listener, path, move |req| match req {
                "start" => handle.ask(Request::Start),
                "stop" => handle.ask(Request::Stop),
                "toggle" => handle.ask(Request::Toggle),
                "status" => handle.with_status(|s| {
                    let mut line = s.word().to_owned();
                    if let Some(e) = &s.error {
                        let _ = write!(line, "; last error: {e}");
                    }
                    line
                }),
                "server-status" => local
                    .state()
                    .words(local_port.load(std::sync::atomic::Ordering::Relaxed)),
                "show" => {
                    show.store(true, std::sync::atomic::Ordering::Relaxed);
                    ctx.request_repaint();
                    "showing the window".into()
                }
                other => {
                    format!(
                        "error: unknown request {other:?} (start, stop, toggle, status, server-status, show)"
                    )
                }
            });
            match served {
                Ok(s) => parts.served = Some(s),
                Err(e) => tracing::warn!("cannot answer on the local socket: {e}"),
            }
        }
        self.dictation = Some(parts);
        self.apply_dictation(&draft);
        if draft.local_auto_start {
            self.local_server(true);
        }
        let autostart = self.dictation_view.autostart;
        self.dictation_view = DictationViewState::new(draft);
        self.dictation_view.autostart = autostart;
    }

    /// Keeps a token on a thread of its own (a keychain may take seconds) and tells the worker.
    fn save_secret(&mut self, name: &'static str, value: String) {
        let tx = self.secret_results.0.clone();
        let dictation = self.dictation.as_ref().map(|d| d.handle.clone());
        let ctx = self.ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("save-secret".into())
            .spawn(move || {
                let result = crate::secrets::set(name, &value);
                if let Some(d) = dictation {
                    d.send(Request::ReloadSecrets);
                }
                let _ = tx.send((name, result.map_err(|e| e.to_string())));
                ctx.request_repaint();
            });
        if spawned.is_err() {
            self.toast(ToastLevel::Error, "cannot save the token now");
        }
    }

    fn poll_secrets(&mut self) {
        while let Ok((name, result)) = self.secret_results.1.try_recv() {
            match result {
                Ok(crate::secrets::Place::File(path)) => self.toast(
                    ToastLevel::Error,
                    format!(
                        "No system keychain answered: the {name} is kept in {}, readable only by you",
                        path.display()
                    ),
                ),
                Ok(place) => self.toast(
                    ToastLevel::Info,
                    format!("The {name} is kept in {}", place.words()),
                ),
                Err(e) => self.toast(ToastLevel::Error, format!("The {name} was not kept: {e}")),
            }
        }
    }

    /// Starts or stops the built-in ASR server with the current settings.
    fn local_server(&mut self, start: bool) {
        let Some(parts) = &self.dictation else { return };
        if start {
            parts.local.start(parts.local_cfg.clone());
        } else {
            parts.local.stop();
        }
    }

    /// Applies the view's settings: the worker's config and the hotkey.
    fn apply_dictation(&mut self, draft: &DictationDraft) {
        let Some(parts) = &mut self.dictation else {
            return;
        };
        parts.local_cfg.model = Some(draft.local_model.trim())
            .filter(|m| !m.is_empty())
            .map_or_else(|| LocalServerConfig::default().model, str::to_owned);
        let mut bad_port = None;
        match draft.local_port.trim().parse::<u16>() {
            Ok(p) if p > 0 => parts.local_cfg.port = p,
            _ => {
                bad_port = Some(format!(
                    "{:?} is not a port; the built-in server keeps {}",
                    draft.local_port, parts.local_cfg.port
                ));
            }
        }
        self.local_port
            .store(parts.local_cfg.port, std::sync::atomic::Ordering::Relaxed);
        let mut cfg = parts.cfg.clone();
        cfg.server = if draft.server.trim().is_empty() {
            crate::voice::client::DEFAULT_SERVER.to_owned()
        } else {
            draft.server.trim().to_owned()
        };
        cfg.device = Some(draft.device.clone()).filter(|d| !d.is_empty());
        cfg.clipboard = draft.clipboard;
        cfg.typing = draft.typing;
        let token = cfg.outputs.webhook.as_ref().and_then(|w| w.token.clone());
        cfg.outputs.webhook = Some(draft.webhook_url.trim())
            .filter(|u| !u.is_empty())
            .map(|url| Webhook {
                url: url.to_owned(),
                token,
            });
        let mut problem = None;
        cfg.outputs.bus = if draft.bus {
            if parts.bus_target.is_none() {
                problem = Some(
                    "the bus output needs a broker: start candybar with --amqp URL or set                      CANDYBAR_AMQP_URL",
                );
            }
            parts.bus_target.clone()
        } else {
            None
        };
        parts.cfg = cfg.clone();
        parts.handle.send(Request::Configure(Box::new(cfg)));
        let same_key = parts
            .hotkey
            .as_ref()
            .is_some_and(|h| h.combo == draft.hotkey && h.mode == draft.mode);
        if parts.global_hotkey && !same_key {
            // Grabbed after the first frame (a round trip to the X server's thread), not here.
            parts.pending_hotkey = Some((draft.hotkey.clone(), draft.mode));
        } else if !parts.global_hotkey {
            parts.hotkey_info.error = Some("the global hotkey is off in this window".into());
        }
        parts.hotkey_info.combo.clone_from(&draft.hotkey);
        parts.hotkey_info.mode = draft.mode;
        if let Some(p) = problem {
            self.toast(ToastLevel::Error, p);
        }
        if let Some(p) = bad_port {
            self.toast(ToastLevel::Error, p);
        }
    }

    /// Tray clicks, closing to the tray, and what the tray shows.
    fn tray_logic(&mut self, ctx: &egui::Context) {
        if let Some(e) = self.tray.as_ref().and_then(super::tray::Tray::failure) {
            tracing::warn!("{e}; closing the window will quit");
            self.tray = None;
            if !self.window_visible {
                self.apply_tray_action(ctx, super::tray::TrayAction::ShowWindow);
            }
        }
        let Some(tray) = &self.tray else { return };
        let actions: Vec<super::tray::TrayAction> = tray.actions.try_iter().collect();
        let host = tray.host();
        for a in actions {
            self.apply_tray_action(ctx, a);
        }
        if host == super::tray::Host::Absent && !self.window_visible {
            // The tray went away (or never came): a hidden window could not be found again.
            tracing::warn!("no system tray shows candybar's icon; showing the window");
            self.apply_tray_action(ctx, super::tray::TrayAction::ShowWindow);
        }
        if ctx.input(|i| i.viewport().close_requested()) && !self.quitting {
            if host == super::tray::Host::Present {
                // Closing the window keeps candybar (and dictation) running in the tray.
                ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
                self.apply_tray_action(ctx, super::tray::TrayAction::HideWindow);
            } else {
                tracing::info!(
                    "no system tray on this desktop (StatusNotifier or XEmbed): closing quits"
                );
                self.quitting = true;
            }
        }
        let (_, state) = state_text(&self.live.state, self.theme);
        let bus = if self.live.is_demo() {
            "Demo feed"
        } else {
            "Bus"
        };
        if let Some(tray) = &self.tray {
            tray.set_state(super::tray::TrayState {
                window_visible: self.window_visible,
                paused: self.paused,
                bus: format!("{bus}: {state}"),
            });
        }
    }

    pub fn apply_tray_action(&mut self, ctx: &egui::Context, a: super::tray::TrayAction) {
        use super::tray::TrayAction;
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
            TrayAction::Quit => {
                self.quitting = true;
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
        }
    }

    /// Grabs the hotkey the settings ask for.
    fn grab_pending_hotkey(&mut self) {
        let Some(parts) = &mut self.dictation else {
            return;
        };
        let Some((combo, mode)) = parts.pending_hotkey.take() else {
            return;
        };
        parts.hotkey = None; // give the old keys back first
        match Hotkey::register(&combo, mode, parts.handle.clone()) {
            Ok(h) => {
                parts.hotkey = Some(h);
                parts.hotkey_info.error = None;
            }
            Err(e) => {
                tracing::warn!("{e}");
                parts.hotkey_info.error = Some(e);
            }
        }
    }

    /// The dictation worker's status (recording, text, history), if dictation runs.
    pub fn dictation_status(&self) -> Option<crate::voice::dictation::Status> {
        self.dictation.as_ref().map(|d| d.handle.status())
    }

    pub(super) fn set_exit_slot(&mut self, slot: Arc<parking_lot::Mutex<ExitCode>>) {
        self.exit_slot = Some(slot);
    }

    /// Sets the filter field; a text that parses replaces the running filter.
    pub fn apply_filter_text(&mut self, text: String) {
        match Filter::new(&text) {
            Ok(f) => {
                self.filter_error = None;
                if f.text() != self.stream.view.filter().text() {
                    self.stream.set_filter(f, &self.live.store);
                }
            }
            Err(e) => self.filter_error = Some((e.column, e.message.clone())),
        }
        self.filter_text = text;
    }

    /// Starts exporting the events the filter shows to `path`.
    pub fn start_export(&mut self, path: &Path, format: ExportFormat) {
        let seqs: Vec<u64> = self.stream.view.matches().iter().copied().collect();
        match ExportJob::start(path, format, seqs) {
            Ok(job) => self.export = Some(job),
            Err(e) => self.toast(ToastLevel::Error, e),
        }
    }

    /// Writes one event to `path` as NDJSON.
    pub fn export_event(&mut self, seq: u64, path: &Path) -> Result<(), String> {
        let event = self
            .live
            .store
            .get(seq)
            .ok_or_else(|| "this event has been evicted from memory".to_owned())?;
        let mut out = Vec::new();
        let mut enc = ExportEncoder::new(ExportFormat::Ndjson);
        enc.event(&event, &mut out);
        std::fs::write(path, out).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    fn toast(&mut self, level: ToastLevel, text: impl Into<String>) {
        let secs = if level == ToastLevel::Error { 8 } else { 3 };
        self.toasts.push(Toast {
            text: text.into(),
            level,
            until: Instant::now() + Duration::from_secs(secs),
        });
        self.ctx.request_repaint_after(Duration::from_secs(secs));
    }

    fn save_dialog(&self, purpose: SavePurpose) {
        let (name, format) = match purpose {
            SavePurpose::Filtered(f) => (format!("candybar-events.{}", f.extension()), f),
            SavePurpose::Event(seq) => {
                (format!("candybar-event-{seq}.ndjson"), ExportFormat::Ndjson)
            }
        };
        let tx = self.dialogs.0.clone();
        let ctx = self.ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("file-dialog".into())
            .spawn(move || {
                let start = Instant::now();
                let path = rfd::FileDialog::new()
                    .set_file_name(name)
                    .add_filter(format.label(), &[format.extension()])
                    .save_file();
                let _ = tx.send(DialogResult {
                    purpose,
                    path,
                    elapsed: start.elapsed(),
                });
                ctx.request_repaint();
            });
        if spawned.is_err() {
            tracing::warn!("cannot start a file dialog thread");
        }
    }

    fn connect(&mut self, req: ConnectRequest) {
        let body_cap_bytes = self.live.store.config().body_cap_bytes;
        let (handle, demo_reason) = match req {
            ConnectRequest::Demo { rate_per_sec } => (
                demo::spawn(
                    DemoSourceConfig {
                        demo: DemoConfig::default(),
                        rate_per_sec,
                        limit: None,
                    },
                    self.registry.clone(),
                ),
                Some("chosen in the Connection dialog".to_owned()),
            ),
            ConnectRequest::Amqp {
                url,
                exchange,
                binding_keys,
                durable_queue,
            } => (
                amqp::spawn(AmqpConfig {
                    url,
                    exchange,
                    binding_keys,
                    queue: durable_queue.map_or(QueueMode::Private, QueueMode::Durable),
                    prefetch: self.prefetch,
                    body_cap_bytes,
                }),
                None,
            ),
            ConnectRequest::Replay { path, speed } => (
                replay::spawn(ReplayConfig {
                    path,
                    pace: Pace::Speed(speed),
                    body_cap_bytes,
                }),
                None,
            ),
        };
        self.live.connect(handle, demo_reason);
        let waker = self.ctx.clone();
        self.live.set_waker(move || waker.request_repaint());
    }

    fn apply_commands(&mut self, ctx: &egui::Context) {
        for cmd in std::mem::take(&mut self.commands) {
            match cmd {
                Command::SetFilter(text) => self.apply_filter_text(text),
                Command::Select(seq) => {
                    self.stream.select(seq);
                    self.detail_open = true;
                }
                Command::OpenDetail(open) => self.detail_open = open,
                Command::ToggleDetail => self.detail_open = !self.detail_open,
                Command::Escape => {
                    if self.detail_open {
                        self.detail_open = false;
                    } else if self.stream.selected.is_some() {
                        self.stream.selected = None;
                    } else if !self.filter_text.is_empty() {
                        self.apply_filter_text(String::new());
                    }
                }
                Command::Copy(text) => {
                    ctx.copy_text(text);
                    self.toast(ToastLevel::Info, "Copied to the clipboard");
                }
                Command::Autostart(on) => match crate::autostart::set(on) {
                    Ok(path) if on => self.toast(
                        ToastLevel::Info,
                        format!(
                            "candybar will start in the tray when you log in ({})",
                            path.display()
                        ),
                    ),
                    Ok(_) => self.toast(ToastLevel::Info, "candybar will not start at login"),
                    Err(e) => self.toast(ToastLevel::Error, format!("autostart: {e}")),
                },
                Command::ExportFiltered(format) => self.save_dialog(SavePurpose::Filtered(format)),
                Command::ExportEvent(seq) => self.save_dialog(SavePurpose::Event(seq)),
                Command::Connect(req) => self.connect(req),
                Command::OpenConnectionDialog => self.form.open = true,
                Command::SetView(view) => self.view = view,
                Command::Dictation(r) => {
                    if let Some(d) = &self.dictation {
                        d.handle.send(r);
                    } else {
                        self.toast(ToastLevel::Error, "dictation is off in this window");
                    }
                }
                Command::LocalServer(start) => self.local_server(start),
                Command::SaveSecret(name, value) => self.save_secret(name, value),
                Command::ApplyDictation(draft) => {
                    self.dictation_edited = true;
                    self.apply_dictation(&draft);
                }
                Command::SetTheme(choice) => {
                    self.theme = Theme::new(choice);
                    ctx.set_visuals(self.theme.visuals());
                }
            }
        }
    }

    /// Polls the registry services' health endpoints from now on.
    fn start_health_poller(
        &mut self,
        rt: &tokio::runtime::Handle,
        interval: Duration,
        timeout: Duration,
    ) {
        let waker = self.ctx.clone();
        self.health_poller = Some(crate::sources::health_poll::HealthPoller::start(
            rt,
            crate::sources::health_poll::targets(&self.registry),
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
            RegistryStatus::Example => return,
        };
        for update in updates {
            self.registry_status = match update {
                RegistryUpdate::Loaded(r) => {
                    let services = r.services.len();
                    self.registry = *r;
                    self.registry_version += 1;
                    if let Some(p) = &self.health_poller {
                        p.set_targets(crate::sources::health_poll::targets(&self.registry));
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

    fn poll_dialogs(&mut self) {
        while let Ok(r) = self.dialogs.1.try_recv() {
            let Some(path) = r.path else {
                if r.elapsed < Duration::from_millis(300) {
                    self.toast(
                        ToastLevel::Error,
                        "No file dialog could open: install xdg-desktop-portal (or zenity)",
                    );
                }
                continue;
            };
            match r.purpose {
                SavePurpose::Filtered(format) => self.start_export(&path, format),
                SavePurpose::Event(seq) => match self.export_event(seq, &path) {
                    Ok(()) => self.toast(ToastLevel::Info, format!("Saved {}", path.display())),
                    Err(e) => self.toast(ToastLevel::Error, e),
                },
            }
        }
    }

    fn step_export(&mut self) {
        let Some(job) = &mut self.export else { return };
        match job.step(&self.live.store, EXPORT_BUDGET) {
            ExportStatus::Running => self.ctx.request_repaint(),
            ExportStatus::Done {
                path,
                written,
                skipped,
                bytes,
            } => {
                self.export = None;
                let mut text = format!(
                    "Exported {} events ({}) to {}",
                    format_count(written),
                    format_bytes(bytes),
                    path.display()
                );
                if skipped > 0 {
                    let _ = write!(
                        text,
                        "; {} were evicted from memory before they could be written",
                        format_count(skipped)
                    );
                }
                self.toast(ToastLevel::Info, text);
            }
            ExportStatus::Failed { error, .. } => {
                self.export = None;
                self.toast(ToastLevel::Error, error);
            }
        }
    }

    fn top_bar_ui(&mut self, ui: &mut egui::Ui) {
        let theme = self.theme;
        ui.horizontal(|ui| {
            ui.label(RichText::new("🍬 candybar").strong().color(theme.accent()));
            ui.separator();
            let (color, state) = state_text(&self.live.state, theme);
            let source_label = if self.live.is_demo() {
                RichText::new(" DEMO ")
                    .strong()
                    .color(egui::Color32::BLACK)
                    .background_color(theme.warn())
            } else {
                RichText::new(short_source(&self.live.describe)).strong()
            };
            let r = ui
                .add(egui::Button::new(source_label).frame(false))
                .on_hover_text(format!(
                    "{}\n{state}{}\nclick to change the source",
                    mask_secrets_in(&self.live.describe),
                    self.live
                        .demo_reason
                        .as_deref()
                        .map(|r| format!("\nshowing the demo feed: {r}"))
                        .unwrap_or_default()
                ));
            if r.clicked() {
                self.commands.push(Command::OpenConnectionDialog);
            }
            super::theme::dot(ui, color).on_hover_text(&state);
            if ui.button("Connection…").clicked() {
                self.commands.push(Command::OpenConnectionDialog);
            }
            ui.separator();
            ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                let (icon, next) = match theme.choice {
                    ThemeChoice::Dark => ("☀", ThemeChoice::Light),
                    ThemeChoice::Light => ("🌙", ThemeChoice::Dark),
                };
                if ui.button(icon).on_hover_text("switch theme").clicked() {
                    self.commands.push(Command::SetTheme(next));
                }
                ui.menu_button("Export", |ui| {
                    let n = self.stream.view.len();
                    ui.label(
                        RichText::new(format!("the {} events shown", format_count(n as u64)))
                            .weak(),
                    );
                    for f in ExportFormat::ALL {
                        if ui.button(f.label()).clicked() {
                            self.commands.push(Command::ExportFiltered(f));
                            ui.close();
                        }
                    }
                });
                self.filter_ui(ui);
            });
        });
    }

    fn filter_ui(&mut self, ui: &mut egui::Ui) {
        let theme = self.theme;
        let shown = self.stream.view.len() as u64;
        let stored = self.live.store.len() as u64;
        let count = if self.stream.scan_remaining > 0 && self.stream.scan_total > 0 {
            let done = 1.0 - self.stream.scan_remaining as f64 / self.stream.scan_total as f64;
            format!("scanning {:.0} %…", done * 100.0)
        } else if self.stream.view.filter().is_all() {
            format!("{} events", format_count(stored))
        } else {
            format!("{} of {}", format_count(shown), format_count(stored))
        };
        ui.label(RichText::new(count).monospace())
            .on_hover_text("events shown / events in memory");
        ui.menu_button("?", |ui| {
            ui.set_max_width(460.0);
            ui.label(RichText::new("Filter language").strong());
            for (ex, what) in FILTER_HELP {
                ui.horizontal(|ui| {
                    ui.label(RichText::new(*ex).monospace().color(theme.accent()));
                    ui.label(*what);
                });
            }
        });
        let mut text = self.filter_text.clone();
        let edit = egui::TextEdit::singleline(&mut text)
            .id(egui::Id::new("filter"))
            .desired_width(ui.available_width().max(120.0))
            .hint_text(
                "filter: agent.*.completed   domain:llm   errors   \"timeout\" last:15m   (Ctrl+F)",
            )
            .font(egui::TextStyle::Monospace);
        let edit = if self.filter_error.is_some() {
            edit.text_color(theme.bad())
        } else {
            edit
        };
        let output = edit.show(ui);
        let response =
            output
                .response
                .response
                .clone()
                .on_hover_text(self.filter_error.as_ref().map_or_else(
                    || "filter the stream (Esc clears)".to_owned(),
                    |(c, m)| format!("column {c}: {m}"),
                ));
        if self.focus_filter {
            response.request_focus();
            self.focus_filter = false;
        }
        if response.has_focus() && ui.input(|i| i.key_pressed(Key::Escape)) {
            text.clear();
        }
        if text != self.filter_text {
            self.commands.push(Command::SetFilter(text));
        }
        // Point at the column of a parse error.
        if let Some((col, _)) = &self.filter_error {
            let cursor = egui::text::CCursor::new(col.saturating_sub(1));
            let x = output.galley_pos.x + output.galley.pos_from_cursor(cursor).min.x;
            let y = output.response.rect.bottom();
            let p = egui::pos2(x, y);
            ui.painter().add(egui::Shape::convex_polygon(
                vec![p + egui::vec2(-4.0, 5.0), p + egui::vec2(4.0, 5.0), p],
                theme.bad(),
                egui::Stroke::NONE,
            ));
        }
    }

    fn status_bar_ui(&mut self, ui: &mut egui::Ui) {
        let theme = self.theme;
        ui.horizontal(|ui| {
            let (color, mut state) = state_text(&self.live.state, theme);
            if let Some(left) = self.live.retry_in() {
                state = format!("{state} — retrying in {:.1} s", left.as_secs_f64());
            }
            if self.live.ended && !matches!(self.live.state, SourceState::Finished) {
                state = format!("{state} — the source stopped");
            }
            super::theme::dot(ui, color);
            let bus = if self.live.is_demo() { "demo feed" } else { "bus" };
            ui.label(format!("{bus}: {state}")).on_hover_text(mask_secrets_in(&self.live.describe));
            ui.separator();
            ui.label(format!("{:.0} events/s", self.live.rate_per_sec()));
            let (icon, hover) = if self.paused {
                ("▶", "resume: the events that waited at the source come in")
            } else {
                ("⏸", "pause: new events wait at the source (the broker keeps them)")
            };
            if self.paused {
                ui.label(RichText::new("paused").color(theme.warn()));
            }
            if ui.small_button(icon).on_hover_text(hover).clicked() {
                self.paused = !self.paused;
            }
            ui.separator();
            self.dictation_status_ui(ui);
            match &self.registry_status {
                RegistryStatus::Example => {}
                RegistryStatus::Loaded { path, services } => {
                    ui.label(format!("registry: {services} services"))
                        .on_hover_text(format!("{} (reloads when it changes)", path.display()));
                    ui.separator();
                }
                RegistryStatus::Problem { message, .. } => {
                    ui.label(RichText::new("registry: ✖ not reloaded").color(theme.bad()))
                        .on_hover_text(format!("{message}\nthe last good registry stays in use"));
                    ui.separator();
                }
            }
            let store = &self.live.store;
            let fill = store.fill() as f32;
            ui.add(
                egui::ProgressBar::new(fill)
                    .desired_width(80.0)
                    .desired_height(10.0)
                    .fill(if fill > 0.95 { theme.warn() } else { theme.accent() }),
            )
            .on_hover_text("store fill: the oldest events are dropped when it is full");
            ui.label(format!(
                "{} stored · {} of {}",
                format_count(store.len() as u64),
                format_bytes(store.memory_bytes() as u64),
                format_bytes(store.config().budget_bytes as u64),
            ));
            if let Some(job) = &self.export {
                ui.separator();
                ui.add(
                    egui::ProgressBar::new(job.progress())
                        .desired_width(120.0)
                        .text(format!(
                            "export {} / {}",
                            format_count(job.done_count() as u64),
                            format_count(job.total() as u64)
                        )),
                );
                if ui.small_button("cancel").clicked() {
                    let path = job.path.clone();
                    self.export = None;
                    let _ = std::fs::remove_file(&path);
                    self.toast(ToastLevel::Info, "Export cancelled");
                }
            }
            ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                let (mean, max) = self.stats.recent_ui_ms();
                ui.label(
                    RichText::new(format!("{:.0} fps · {mean:.1} ms/frame (max {max:.1})", self.stats.fps()))
                        .monospace()
                        .color(theme.weak_text()),
                )
                .on_hover_text("frames per second (the window only draws when something changes) and the app's CPU time per frame");
            });
        });
    }

    /// "🎤 recording 2.1 s" / "🎤 ASR reconnecting" / "🎤 Ctrl+Alt+Space"; click opens the view.
    fn dictation_status_ui(&mut self, ui: &mut egui::Ui) {
        let theme = self.theme;
        let Some(d) = &self.dictation else { return };
        let (text, color, hover) = d.handle.with_status(|s| {
            let hover = s.error.clone().unwrap_or_else(|| s.connection.clone());
            match s.phase {
                Phase::Recording if s.reconnecting => {
                    ("🎤 ASR reconnecting…".to_owned(), theme.warn(), hover)
                }
                Phase::Recording => (
                    format!(
                        "🎤 recording {:.1} s",
                        s.recording_since.map_or(0.0, |t| t.elapsed().as_secs_f32())
                    ),
                    theme.bad(),
                    hover,
                ),
                Phase::Finishing => ("🎤 finishing…".to_owned(), theme.warn(), hover),
                Phase::Idle if s.error.is_some() => {
                    ("🎤 ✖ dictation".to_owned(), theme.bad(), hover)
                }
                Phase::Idle => (
                    format!("🎤 {}", d.hotkey_info.combo),
                    theme.weak_text(),
                    "press the hotkey to dictate".to_owned(),
                ),
            }
        });
        let pending = d.handle.with_status(|s| s.pending_deliveries);
        if ui
            .add(egui::Button::new(RichText::new(text).color(color)).frame(false))
            .on_hover_text(hover)
            .clicked()
        {
            self.commands.push(Command::SetView(View::Dictation));
        }
        if pending > 0 {
            ui.label(RichText::new(format!("⏳ {pending}")).color(theme.warn()))
                .on_hover_text("transcripts waiting to be delivered (webhook / bus)");
        }
        ui.separator();
    }

    fn toasts_ui(&mut self, ctx: &egui::Context) {
        let now = Instant::now();
        self.toasts.retain(|t| t.until > now);
        if self.toasts.is_empty() {
            return;
        }
        let theme = self.theme;
        egui::Area::new(egui::Id::new("toasts"))
            .anchor(egui::Align2::RIGHT_BOTTOM, egui::vec2(-12.0, -36.0))
            .order(egui::Order::Foreground)
            .show(ctx, |ui| {
                for t in &self.toasts {
                    let color = match t.level {
                        ToastLevel::Info => theme.good(),
                        ToastLevel::Error => theme.bad(),
                    };
                    egui::Frame::popup(ui.style()).show(ui, |ui| {
                        ui.set_max_width(420.0);
                        ui.label(RichText::new(&t.text).color(color));
                    });
                }
            });
    }

    /// The screenshot and exit-after options.
    fn run_options(&mut self, ctx: &egui::Context) {
        let Some(after) = self.options.exit_after_secs else {
            return;
        };
        let elapsed = self.stats_started_secs();
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
                self.quitting = true;
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            } else if !self.screenshot_requested {
                self.screenshot_requested = true;
                ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(egui::UserData::default()));
                ctx.request_repaint();
            } else {
                ctx.request_repaint_after(Duration::from_millis(50));
            }
        } else {
            self.quitting = true;
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
    }

    fn stats_started_secs(&self) -> f64 {
        self.stats.started().elapsed().as_secs_f64()
    }

    fn set_exit(&self, code: ExitCode) {
        if let Some(slot) = &self.exit_slot {
            *slot.lock() = code;
        }
    }

    /// Quitting while the microphone runs must not lose what was said: stop the recording and
    /// wait (bounded) until its text is kept — or its audio saved under `unsent/`.
    fn finish_dictation_before_exit(&self) {
        use crate::voice::dictation::Phase;
        let Some(parts) = &self.dictation else { return };
        let handle = &parts.handle;
        if handle.with_status(|s| s.phase) == Phase::Idle {
            return;
        }
        tracing::info!(
            "quitting during a recording: waiting up to {} s for its text to be kept",
            EXIT_GRACE.as_secs()
        );
        handle.send(crate::voice::dictation::Request::Stop);
        let until = Instant::now() + EXIT_GRACE;
        while handle.with_status(|s| s.phase) != Phase::Idle {
            if Instant::now() > until {
                tracing::warn!("the last recording did not finish in time; it is lost");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn write_stats(&self) {
        let Some(path) = &self.options.stats_out else {
            return;
        };
        let report = self
            .stats
            .report(self.live.store.len() as u64, self.received_total);
        let result = serde_json::to_vec_pretty(&report)
            .map_err(|e| e.to_string())
            .and_then(|j| std::fs::write(path, j).map_err(|e| e.to_string()));
        if let Err(e) = result {
            eprintln!("candybar: cannot write {}: {e}", path.display());
        }
    }

    /// Stats cards, the follow toggle and the stream (or what to do while it is empty).
    #[allow(clippy::too_many_lines)] // one arm per view
    fn central_ui(&mut self, ui: &mut egui::Ui) {
        let theme = self.theme;
        let figures = CardFigures::read(&self.live.store, self.clock.now_us());
        cards_ui(ui, &figures, theme, &mut self.commands);
        ui.add_space(4.0);
        match self.view {
            View::Charts => {
                self.charts.ui(
                    ui,
                    &self.live.store,
                    self.clock.now_us(),
                    theme,
                    &mut self.commands,
                );
                return;
            }
            View::Constellation => {
                self.constellation.ui(
                    ui,
                    &self.live.store,
                    self.render_state.as_ref(),
                    self.clock.now_us(),
                    theme,
                    &mut self.commands,
                );
                return;
            }
            View::Flow => {
                self.flow.ui(
                    ui,
                    (&self.registry, self.registry_version),
                    &self.live.store,
                    self.clock.now_us(),
                    theme,
                    &mut self.commands,
                );
                return;
            }
            View::Health => {
                let probes = self
                    .health_poller
                    .as_ref()
                    .map(crate::sources::health_poll::HealthPoller::results)
                    .unwrap_or_default();
                super::health::health_ui(
                    ui,
                    &self.registry,
                    &self.live.store,
                    &probes,
                    self.clock.now_us(),
                    theme,
                    &mut self.commands,
                );
                return;
            }
            View::Dictation => {
                match &self.dictation {
                    Some(d) => {
                        let status = d.handle.status();
                        let info = d.hotkey_info.clone();
                        let server = (d.local.status(), d.local_cfg.port);
                        self.dictation_view.ui(
                            ui,
                            &status,
                            &info,
                            &server,
                            theme,
                            self.tz,
                            &mut self.commands,
                        );
                    }
                    None => {
                        ui.label("Dictation is off in this window.");
                    }
                }
                return;
            }
            View::Stream => {}
        }
        ui.horizontal(|ui| {
            let mut follow = self.stream.follow;
            if ui
                .toggle_value(&mut follow, "⬇ Follow")
                .on_hover_text("keep the newest event in view (scrolling up stops it)")
                .changed()
            {
                self.stream.set_follow(follow);
            }
            if let Some((col, msg)) = &self.filter_error {
                ui.label(
                    RichText::new(format!("✖ filter, column {col}: {msg}")).color(theme.bad()),
                );
            }
        });
        if self.live.store.is_empty() {
            ui.add_space(40.0);
            ui.vertical_centered(|ui| {
                let (_, state) = state_text(&self.live.state, theme);
                ui.label(RichText::new("Waiting for events…").heading());
                ui.label(format!(
                    "{} — {state}",
                    mask_secrets_in(&self.live.describe)
                ));
                if ui.button("Change the source…").clicked() {
                    self.commands.push(Command::OpenConnectionDialog);
                }
            });
        } else {
            let newest =
                self.stream
                    .table_ui(ui, &self.live.store, theme, self.tz, &mut self.commands);
            if let Some(seq) = newest
                && self.stream.newest_shown.is_none_or(|n| seq > n)
            {
                if self.stream.newest_shown.is_some()
                    && let Some(meta) = self.live.store.meta(seq)
                {
                    self.stats.record_shown_latency(now_us() - meta.received_us);
                }
                self.stream.newest_shown = Some(seq);
            }
        }
    }

    /// Everything a frame does, drawing into `ui` (the whole window).
    pub fn frame_ui(&mut self, ui: &mut egui::Ui, prev_frame_cpu_secs: Option<f32>) {
        let ui_start = Instant::now();
        let ctx = ui.ctx().clone();
        let theme = self.theme;
        if !self.window_visible {
            // Hidden in the tray: nothing to lay out or draw; only what runs on a timer.
            self.apply_commands(&ctx);
            self.run_options(&ctx);
            return;
        }
        if ctx.input_mut(|i| i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, Key::F)))
        {
            self.focus_filter = true;
        }
        // Ctrl+Q quits (closing the window only hides it while a tray shows the icon).
        if ctx.input_mut(|i| i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, Key::Q)))
        {
            self.quitting = true;
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        egui::Panel::top("top-bar")
            .frame(
                egui::Frame::side_top_panel(ui.style()).inner_margin(egui::Margin::symmetric(8, 6)),
            )
            .show(ui, |ui| self.top_bar_ui(ui));
        egui::Panel::bottom("status-bar").show(ui, |ui| self.status_bar_ui(ui));
        egui::Panel::left("nav")
            .resizable(false)
            .exact_size(92.0)
            .show(ui, |ui| {
                ui.add_space(6.0);
                for view in View::ALL {
                    let selected = self.view == view;
                    if ui
                        .add_sized(
                            [80.0, 28.0],
                            egui::Button::selectable(selected, view.label()),
                        )
                        .clicked()
                    {
                        self.commands.push(Command::SetView(view));
                    }
                }
            });
        if self.detail_open
            && self.view == View::Stream
            && let Some(seq) = self.stream.selected
        {
            if !self.detail.load(&self.live.store, seq) {
                // Evicted: keep the pane with its message.
            }
            egui::Panel::right("detail")
                .resizable(true)
                .default_size(440.0)
                .min_size(280.0)
                .show(ui, |ui| {
                    self.detail
                        .ui(ui, &self.live.store, theme, self.tz, &mut self.commands);
                });
        }
        egui::CentralPanel::default().show(ui, |ui| self.central_ui(ui));
        self.form.window_ui(
            &ctx,
            &self.live.state,
            &self.live.describe,
            theme,
            &mut self.commands,
        );
        self.toasts_ui(&ctx);
        self.stream.handle_keys(&ctx, &mut self.commands);
        self.apply_commands(&ctx);
        self.run_options(&ctx);
        // Things that change with time alone ask for their own next frame; nothing else does.
        let recording = self
            .dictation
            .as_ref()
            .is_some_and(|d| d.handle.with_status(|s| s.phase == Phase::Recording));
        if recording {
            // The level meter and the timer.
            ctx.request_repaint_after(Duration::from_millis(50));
        } else if self.live.retry_in().is_some()
            || self.stream.view.filter().is_time_relative()
            || (self.view != View::Stream && self.live.rate_per_sec() > 0.0)
        {
            ctx.request_repaint_after(Duration::from_millis(250));
        } else if self.live.rate_per_sec() > 0.0 {
            ctx.request_repaint_after(Duration::from_secs(1));
        }
        let ui_secs = ui_start.elapsed().as_secs_f32();
        self.stats
            .record(self.frame_start, ui_secs, prev_frame_cpu_secs);
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
        self.tray_logic(ctx);
        if self.stats.frames > 0 || !self.window_visible {
            self.grab_pending_hotkey();
        }
        let report = if self.paused {
            crate::live::DrainReport::default()
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
        if self
            .stream
            .update(&self.live.store, self.clock.now_us(), SCAN_BUDGET)
        {
            ctx.request_repaint();
        }
        self.step_export();
        self.poll_dialogs();
        self.poll_secrets();
        if self
            .show_requested
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            self.apply_tray_action(ctx, super::tray::TrayAction::ShowWindow);
        }
        self.poll_registry();
        self.stats
            .record_ingest(self.frame_start.elapsed().as_secs_f32());
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
            theme: self.theme.choice,
            tz: self.tz,
            filter: self.filter_text.clone(),
            detail_open: self.detail_open,
            form: Some(self.form.clone()),
            view: self.view,
            dictation: self
                .dictation_edited
                .then(|| self.dictation_view.applied.clone()),
        };
        eframe::set_value(storage, STORAGE_KEY, &persisted);
    }

    fn on_exit(&mut self) {
        self.write_stats();
        self.finish_dictation_before_exit();
    }
}

/// How long quitting waits for a recording in progress to be kept.
const EXIT_GRACE: Duration = Duration::from_secs(20);

const FILTER_HELP: &[(&str, &str)] = &[
    ("agent.*.completed", "type glob: * one word, # any words"),
    ("theboard.#", "everything under a prefix"),
    (
        "domain:llm",
        "by domain (also source:, agent:, session:, corr:)",
    ),
    (
        "errors",
        "error and failed events (also status:completed …)",
    ),
    ("last:15m", "received in the last 15 minutes (s, m, h, d)"),
    (
        "time:2026-11-22T10:00:00Z..2026-11-22T10:05:00Z",
        "received in that range (or drag across a chart)",
    ),
    ("\"timeout\"", "text anywhere in the payload"),
    ("a AND b, a OR b, NOT a, ( )", "combine; a space means AND"),
];

/// The source description for the top bar: "`RabbitMQ` host:port · exchange X", or the first
/// 48 characters of other descriptions.
fn short_source(describe: &str) -> String {
    let (first, rest) = describe.split_once(' ').unwrap_or((describe, ""));
    if let Ok(u) = url::Url::parse(first)
        && u.scheme().starts_with("amqp")
    {
        let host = u.host_str().unwrap_or("?");
        let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
        let exchange = rest.split(" keys ").next().unwrap_or(rest);
        return format!("RabbitMQ {host}{port} · {exchange}");
    }
    mask_secrets_in(describe).chars().take(48).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_bar_names_the_broker_not_its_password() {
        assert_eq!(
            short_source(
                "amqp://guest:****@127.0.0.1:5672/%2f exchange events keys # (private queue)"
            ),
            "RabbitMQ 127.0.0.1:5672 · exchange events"
        );
        assert_eq!(
            short_source("demo feed (40 events/s, seed 1)"),
            "demo feed (40 events/s, seed 1)"
        );
    }
}
