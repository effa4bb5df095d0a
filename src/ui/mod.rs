//! The window (eframe on wgpu). Views only read the live model and issue [`Command`]s, which the
//! app applies in one place at the end of the frame.
//!
//! - [`app`]: the shell (top bar, navigation, status bar), ingest each frame, commands.
//! - [`stream`]: the event table. [`charts`]: rates, histograms, top lists.
//!   [`health`]: the registry's services by the rules in its docs.
//! - [`dictation`]: record, live text, history search, dictation settings.
//! - [`detail`]: one event. [`stats`]: the cards above the table.
//! - [`connection`]: the Connection dialog. [`export`]: writing events to a file off the UI thread.
//! - [`tray`]: the tray icon and its menu, on a GTK thread of its own.
//! - [`theme`], [`time_fmt`], [`frame_stats`]: colours, times, the window's own measurements.

pub mod app;
pub mod charts;
pub mod connection;
pub mod constellation;
pub mod detail;
pub mod dictation;
pub mod export;
pub mod flow;
pub mod frame_stats;
pub mod health;
#[cfg(target_os = "linux")]
pub mod runtime_libs;
pub mod stats;
pub mod stream;
pub mod theme;
pub mod time_fmt;
pub mod tray;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;

use crate::cli::{SourceArgs, SourceChoice};
use crate::core::export::ExportFormat;
use crate::live::Live;
pub use app::{AppInit, CandybarApp, Clock, DictationInit, RunOptions};
pub use connection::ConnectRequest;
pub use theme::ThemeChoice;

/// The views of the central panel, in the order of the navigation.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
pub enum View {
    #[default]
    Stream,
    Flow,
    Charts,
    Health,
    Constellation,
    Dictation,
}

impl View {
    pub const ALL: [Self; 6] = [
        Self::Stream,
        Self::Flow,
        Self::Charts,
        Self::Health,
        Self::Constellation,
        Self::Dictation,
    ];

    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Stream => "☰ Stream",
            Self::Flow => "🔀 Flow",
            Self::Charts => "📈 Charts",
            Self::Health => "♥ Health",
            Self::Constellation => "✨ Agents",
            Self::Dictation => "🎤 Dictation",
        }
    }
}

/// What a view asks the app to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    SetFilter(String),
    Select(u64),
    OpenDetail(bool),
    ToggleDetail,
    /// Esc outside a text field: close the detail pane, else clear the selection.
    Escape,
    Copy(String),
    /// Start (or stop starting) candybar in the tray at login.
    Autostart(bool),
    ExportFiltered(ExportFormat),
    ExportEvent(u64),
    Connect(ConnectRequest),
    OpenConnectionDialog,
    SetTheme(ThemeChoice),
    SetView(View),
    Dictation(crate::voice::dictation::Request),
    ApplyDictation(dictation::DictationDraft),
    /// Start (true) or stop the built-in ASR server.
    LocalServer(bool),
    /// Keep a token in the keychain: its name and value.
    SaveSecret(&'static str, String),
}

/// Flags of the window (bare `candybar`).
#[derive(Args, Debug, Clone, Default)]
pub struct WindowArgs {
    /// Colour theme (default: the last one chosen, else dark)
    #[arg(long, value_enum)]
    pub theme: Option<ThemeChoice>,
    /// Save a PNG of the window, then exit (after --exit-after seconds, default 3)
    #[arg(long, value_name = "PATH")]
    pub screenshot: Option<PathBuf>,
    /// Close the window after this many seconds
    #[arg(long, value_name = "SECS")]
    pub exit_after: Option<f64>,
    /// Write the window's frame statistics as JSON on exit (for `candybar bench window`)
    #[arg(long, value_name = "PATH")]
    pub stats_out: Option<PathBuf>,
    /// Fill the store with this many demo events before the first frame (benchmarks)
    #[arg(long, value_name = "N")]
    pub preload: Option<u64>,
    /// Show times in UTC instead of local time
    #[arg(long)]
    pub utc: bool,
    /// Open on this view (default: the last one shown)
    #[arg(long, value_enum)]
    pub view: Option<View>,
    /// No tray icon (closing the window then quits)
    #[arg(long)]
    pub no_tray: bool,
    /// Start in the tray, the window hidden (the tray's "Show window" opens it)
    #[arg(long)]
    pub minimized: bool,
}

/// Opens the window on the source the flags and config choose. Call with a tokio runtime
/// entered (sources run on it); blocks until the window closes.
#[allow(clippy::too_many_lines)] // the window's whole start-up, in the order it happens
pub fn run(args: &WindowArgs, source: &SourceArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let settings = source.settings()?;
    // One candybar per user: a second launch asks the first to show itself and exits.
    let socket = crate::instance::socket_path();
    let listener = match crate::instance::claim(&socket) {
        Ok(Some(l)) => Some(l),
        Ok(None) => {
            // It may be starting this very moment: give it a few seconds to answer.
            let answer = crate::instance::send_patiently(&socket, "show", Duration::from_secs(5))?;
            eprintln!("candybar is already running ({answer}); its window was asked to show");
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => {
            tracing::warn!(
                "cannot listen on {} ({e}); `candybar dictate --toggle` will not reach this window",
                socket.display()
            );
            None
        }
    };
    let app_dictation = crate::cli::dictate::app_dictation(source, &settings)?;
    let dictation = DictationInit {
        cfg: app_dictation.cfg,
        hotkey: app_dictation.hotkey,
        mode: app_dictation.mode,
        local_server: app_dictation.local_server,
        local_auto_start: app_dictation.local_auto_start,
        rt: tokio::runtime::Handle::current(),
        instance: listener.map(|l| (l, socket)),
        global_hotkey: true,
        bus_target: source
            .amqp_url(&settings)
            .map(|url| crate::voice::outputs::Bus {
                url,
                exchange: source.exchange(&settings),
                routing_key: settings
                    .file
                    .dictation
                    .routing_key
                    .clone()
                    .unwrap_or_else(|| crate::asr::protocol::TRANSCRIPT_ROUTING_KEY.to_owned()),
            }),
    };
    let mut live = Live::new(settings.file.store.store_config());
    if let Some(n) = args.preload {
        app::preload_demo(&mut live.store, n, &settings.registry);
    }
    let choice = source.choose(&settings, live.store.config().body_cap_bytes);
    let mut form = connection::ConnectionForm {
        exchange: source.exchange(&settings),
        ..connection::ConnectionForm::default()
    };
    if let Some(url) = source.amqp_url(&settings) {
        form.set_url(&url);
    }
    let (handle, demo_reason) = match choice {
        SourceChoice::Demo {
            cfg,
            registry,
            reason,
        } => {
            form.kind = connection::SourceKind::Demo;
            form.demo_rate = cfg.rate_per_sec;
            (
                crate::sources::demo::spawn(cfg, registry),
                Some(reason.to_owned()),
            )
        }
        SourceChoice::Amqp(cfg) => {
            form.kind = connection::SourceKind::Amqp;
            form.binding_keys = cfg.binding_keys.join(" ");
            if let crate::sources::amqp::QueueMode::Durable(q) = &cfg.queue {
                form.durable = true;
                form.queue.clone_from(q);
            }
            (crate::sources::amqp::spawn(cfg), None)
        }
        SourceChoice::Replay(cfg) => {
            form.kind = connection::SourceKind::Replay;
            form.replay_path = cfg.path.display().to_string();
            (crate::sources::replay::spawn(cfg), None)
        }
    };
    live.connect(handle, demo_reason);
    let init = AppInit {
        live,
        theme: args.theme,
        tz: args.utc.then_some(time_fmt::TimeZoneChoice::Utc),
        clock: Clock::System,
        options: RunOptions {
            screenshot: args.screenshot.clone(),
            exit_after_secs: args
                .exit_after
                .or_else(|| args.screenshot.as_ref().map(|_| 3.0))
                .filter(|s| s.is_finite() && *s >= 0.0),
            stats_out: args.stats_out.clone(),
        },
        form: Some(form),
        started,
        prefetch: settings.file.amqp.prefetch.unwrap_or(1000),
        registry: settings.registry.clone(),
        registry_path: source.registry_path(&settings),
        health_poll: settings
            .file
            .health
            .poll_secs
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(|secs| {
                (
                    tokio::runtime::Handle::current(),
                    Duration::from_secs_f64(secs.max(1.0)),
                    Duration::from_millis(settings.file.health.timeout_ms.unwrap_or(3000).max(100)),
                )
            }),
        dictation: Some(dictation),
        view: args.view,
        tray: !args.no_tray,
        start_hidden: args.minimized,
        autostart: crate::autostart::is_enabled(),
    };
    #[cfg(target_os = "linux")]
    {
        let x11 =
            std::env::var_os("DISPLAY").is_some() && std::env::var_os("WAYLAND_DISPLAY").is_none();
        if x11 && let Some(words) = runtime_libs::XKBCOMMON_X11.missing() {
            anyhow::bail!("cannot open the window: {words}");
        }
    }
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("candybar")
        .with_app_id("candybar");
    match eframe::icon_data::from_png_bytes(WINDOW_ICON) {
        Ok(icon) => viewport = viewport.with_icon(icon),
        Err(e) => tracing::debug!("window icon: {e}"),
    }
    let native = eframe::NativeOptions {
        viewport: viewport
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([640.0, 400.0]),
        persist_window: true,
        ..eframe::NativeOptions::default()
    };
    let exit = std::sync::Arc::new(parking_lot::Mutex::new(ExitCode::SUCCESS));
    let exit_in_app = exit.clone();
    eframe::run_native(
        "candybar",
        native,
        Box::new(move |cc| {
            let mut app = CandybarApp::new(cc, init);
            app.set_exit_slot(exit_in_app);
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}{}", display_hint()))?;
    let code = *exit.lock();
    Ok(code)
}

/// The window's icon (the desktop entry's comes from the icon theme).
const WINDOW_ICON: &[u8] = include_bytes!("../../assets/icons/candybar-64.png");

/// What to try when no window can be opened.
fn display_hint() -> &'static str {
    if cfg!(not(target_os = "linux")) {
        ""
    } else if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none()
    {
        " (no display: set DISPLAY, or run under Xvfb; `candybar tail` works without one)"
    } else {
        " (is a Vulkan or OpenGL driver installed? on Debian/Ubuntu: mesa-vulkan-drivers libegl1)"
    }
}
