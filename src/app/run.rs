//! Opening the window: one instance per user, the source and the workers from the settings,
//! then eframe's loop on the main thread.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candybar_bus::live::Live;
use candybar_core::time::checked_secs;
use candybar_ui::connection::{ConnectionForm, SourceKind};
use candybar_ui::time_fmt::TimeZoneChoice;
use candybar_ui::{ThemeChoice, View};
use clap::Args;
use clap::builder::{PossibleValuesParser, TypedValueParser as _};

use super::history::{
    self, History, JournalRecorder, JournalStatus, PRELOAD_MAX, Plan, SharedStatus, Takeover,
};
use super::{AppInit, CandybarApp, Clock, DictationInit, RunOptions};
use crate::cli::{SourceArgs, SourceChoice};
use crate::instance::InstanceRequest;
use candybar_bus::SourceHandle;

/// Flags of the window (bare `candybar`).
#[allow(clippy::struct_excessive_bools)] // independent switches of the command line
#[derive(Args, Debug, Clone, Default)]
pub struct WindowArgs {
    /// Colour theme (default: the last one chosen, else dark)
    #[arg(long, value_parser = PossibleValuesParser::new(["dark", "light"])
        .map(|s| if s == "light" { ThemeChoice::Light } else { ThemeChoice::Dark }))]
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
    #[arg(long, value_parser = PossibleValuesParser::new(View::ALL.map(View::name))
        .map(|s| View::from_name(&s).unwrap_or_default()))]
    pub view: Option<View>,
    /// No tray icon (closing the window then quits)
    #[arg(long)]
    pub no_tray: bool,
    /// Start in the tray, the window hidden (the tray's "Show window" opens it)
    #[arg(long)]
    pub minimized: bool,
    /// The journal the window opens with and records into [default: journal in the data dir;
    /// env: `CANDYBAR_JOURNAL`]
    #[arg(long, value_name = "DIR")]
    pub journal: Option<PathBuf>,
    /// Neither read nor write the journal
    #[arg(long)]
    pub no_journal: bool,
    /// Open at this moment from the journal (2h, 1d: ago; or 2026-12-05T14:00:00Z) instead of
    /// live; the timeline's "Live" returns to now
    #[arg(long, value_name = "WHEN")]
    pub at: Option<String>,
}

/// Opens the window on the source the flags and config choose. Call with a tokio runtime
/// entered (sources run on it); blocks until the window closes.
#[allow(clippy::too_many_lines)] // the window's whole start-up, in the order it happens
pub fn run(args: &WindowArgs, source: &SourceArgs, started: Instant) -> anyhow::Result<ExitCode> {
    let settings = source.settings()?;
    // Settings that would stop the window later are refused now, in words.
    let health_poll = match settings.file.health.poll_secs.filter(|s| *s != 0.0) {
        Some(secs) => Some(
            checked_secs(secs, 1.0, 86_400.0, "[health] poll_secs").map_err(anyhow::Error::msg)?,
        ),
        None => None,
    };
    let at = args
        .at
        .as_deref()
        .map(|w| crate::cli::journal::parse_when(w, candybar_core::time::now_us(), "--at"))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let exit_after = args
        .exit_after
        .map(|s| checked_secs(s, 0.0, 31_536_000.0, "--exit-after").map(|_| s))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    // One candybar per user: a second launch asks the first to show itself and exits.
    let socket = crate::instance::socket_path();
    let listener = match crate::instance::claim(&socket) {
        Ok(Some(l)) => Some(l),
        Ok(None) => {
            // It may be starting this very moment: give it a few seconds to answer.
            let answer = crate::instance::send_patiently(
                &socket,
                InstanceRequest::Show,
                Duration::from_secs(5),
            )?;
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
        model_dir: candybar_asr::engine::model_dir(),
        rt: tokio::runtime::Handle::current(),
        secrets: Arc::new(crate::secrets::Keychain),
        instance: listener.map(|l| (l, socket)),
        global_hotkey: true,
        bus_target: crate::cli::dictate::bus_target(source, &settings),
    };
    let mut live = Live::new(
        settings
            .file
            .store
            .store_config()
            .map_err(anyhow::Error::msg)?,
    );
    if let Some(n) = args.preload {
        super::preload_demo(&mut live.store, n, &settings.registry);
    }
    let choice = source.choose(&settings, live.store.config().body_cap_bytes)?;
    let mut form = ConnectionForm {
        exchange: source.exchange(&settings),
        ..ConnectionForm::default()
    };
    if let Some(url) = source.amqp_url(&settings) {
        form.set_url(url.expose());
    }
    let plan = history_plan(args, source, &settings, &choice)?;
    let takeover_amqp = match &choice {
        SourceChoice::Amqp(cfg) => Some(cfg.clone()),
        _ => None,
    };
    let (handle, demo_reason) = match choice {
        SourceChoice::Demo {
            cfg,
            registry,
            reason,
        } => {
            form.kind = SourceKind::Demo;
            form.demo_rate = cfg.rate_per_sec;
            (
                candybar_bus::demo::spawn(cfg, registry),
                Some(reason.to_owned()),
            )
        }
        SourceChoice::Amqp(cfg) => {
            form.kind = SourceKind::Amqp;
            form.binding_keys = cfg.binding_keys.join(" ");
            if let candybar_bus::amqp::QueueMode::Durable(q) = &cfg.queue {
                form.durable = true;
                form.queue.clone_from(q);
            }
            (candybar_bus::amqp::spawn(cfg), None)
        }
        SourceChoice::Replay(cfg) => {
            form.kind = SourceKind::Replay;
            form.replay_path = cfg.path.display().to_string();
            (candybar_bus::replay::spawn(cfg), None)
        }
        SourceChoice::Ws(cfg) => (candybar_bus::ws::spawn(cfg), None),
    };
    let (handle, demo_reason, history) = open_history(
        plan,
        handle,
        demo_reason,
        takeover_amqp,
        live.store.config().max_events,
    );
    if at.is_some() && history.is_none() {
        anyhow::bail!(
            "--at shows a moment from the journal, and this window has none (the demo feed, a \
             replay and --no-journal keep no history): connect to a broker, or run `candybar \
             record`"
        );
    }
    let demo = demo_reason.is_some();
    live.connect(handle, demo_reason);
    // Without a registry file the views show the example only while the demo feed simulates
    // it; real events get an empty registry and a word on how to configure one.
    let registry = if settings.registry_loaded || demo {
        settings.registry.clone()
    } else {
        candybar_core::registry::Registry::default()
    };
    let init = AppInit {
        live,
        theme: args.theme,
        tz: args.utc.then_some(TimeZoneChoice::Utc),
        clock: Clock::System,
        options: RunOptions {
            screenshot: args.screenshot.clone(),
            exit_after_secs: exit_after.or_else(|| args.screenshot.as_ref().map(|_| 3.0)),
            stats_out: args.stats_out.clone(),
        },
        form: Some(form),
        started,
        prefetch: settings.file.amqp.prefetch.unwrap_or(1000),
        registry,
        registry_path: source.registry_path(&settings),
        // Only a registry the user configured is polled (the example's endpoints are not theirs).
        health_poll: health_poll
            .filter(|_| settings.registry_loaded)
            .map(|interval| {
                (
                    tokio::runtime::Handle::current(),
                    interval,
                    Duration::from_millis(
                        settings
                            .file
                            .health
                            .timeout_ms
                            .unwrap_or(3000)
                            .clamp(100, 600_000),
                    ),
                )
            }),
        dictation: Some(dictation),
        view: args.view,
        tray: !args.no_tray,
        start_hidden: args.minimized,
        autostart: crate::autostart::is_enabled(),
        history,
        at,
        sessions: Some(crate::cli::session::window_init(
            source,
            &settings,
            tokio::runtime::Handle::current(),
        )),
        architect: Some(crate::cli::talk::window_init(source, &settings)),
        briefings: super::mission::BriefingPlan {
            times: settings
                .file
                .mission
                .briefing_times()
                .map_err(anyhow::Error::msg)?,
            archive: crate::mission::archive_dir(&settings.file.mission),
            bus: source
                .amqp_url(&settings)
                .map(|u| (u, source.exchange(&settings))),
            rewriter: super::mission::Rewriter::from_settings(&settings.file.mission),
        },
        notify: {
            let kinds = settings
                .file
                .mission
                .notify_kinds()
                .map_err(anyhow::Error::msg)?;
            let quiet = settings.file.mission.quiet().map_err(anyhow::Error::msg)?;
            (!kinds.is_empty()).then_some(super::notify::NotifyPlan { kinds, quiet })
        },
    };
    #[cfg(target_os = "linux")]
    {
        let x11 =
            std::env::var_os("DISPLAY").is_some() && std::env::var_os("WAYLAND_DISPLAY").is_none();
        if x11 && let Some(words) = super::runtime_libs::XKBCOMMON_X11.missing() {
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
    let exit = Arc::new(parking_lot::Mutex::new(ExitCode::SUCCESS));
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

/// How the window uses the journal: off for `--no-journal`, the demo feed and replays; reading
/// `candybar record`'s journal when one runs (unless `--demo`); else recording the broker.
fn history_plan(
    args: &WindowArgs,
    source: &SourceArgs,
    settings: &crate::cli::Settings,
    choice: &SourceChoice,
) -> anyhow::Result<Plan> {
    if args.no_journal || source.demo_forced() || matches!(choice, SourceChoice::Replay(_)) {
        return Ok(Plan::Off);
    }
    let dir = crate::cli::journal::journal_dir(args.journal.as_deref(), settings)?;
    let retention = settings
        .file
        .journal
        .retention(None, None)
        .map_err(anyhow::Error::msg)?;
    if let Some(who) = candybar_journal::writer_of(&dir) {
        return Ok(Plan::Follow {
            dir,
            retention,
            who,
        });
    }
    Ok(match choice {
        SourceChoice::Amqp(_) | SourceChoice::Ws(_) => Plan::Record { dir, retention },
        _ => Plan::Off,
    })
}

/// Starts what `plan` says: the source the window drains (the broker's, recorded; or the
/// recorder's journal) and the journal's state for the app.
fn open_history(
    plan: Plan,
    handle: SourceHandle,
    demo_reason: Option<String>,
    amqp: Option<candybar_bus::amqp::AmqpConfig>,
    store_max: usize,
) -> (SourceHandle, Option<String>, Option<History>) {
    let preload = PRELOAD_MAX.min(store_max / 2);
    let status = SharedStatus::default();
    match plan {
        Plan::Off => (handle, demo_reason, None),
        Plan::Record { dir, retention } => {
            match JournalRecorder::start(&dir, retention, status.clone()) {
                Ok(recorder) => {
                    eprintln!("candybar: recording into the journal at {}", dir.display());
                    let opening = history::Opening {
                        dir: dir.clone(),
                        max: preload,
                        lossless: amqp.as_ref().is_some_and(|c| {
                            !matches!(c.queue, candybar_bus::amqp::QueueMode::Private)
                        }),
                    };
                    let handle = history::recorded(handle, recorder.sink(), Some(opening));
                    let history = History {
                        own: Some(Takeover {
                            dir: dir.clone(),
                            retention,
                            amqp,
                        }),
                        dir,
                        status,
                        recorder: Some(recorder),
                        takeover: None,
                    };
                    (handle, demo_reason, Some(history))
                }
                Err(e) => {
                    // The window still shows the bus; the status bar says why nothing is kept.
                    eprintln!("candybar: not recording: {e}");
                    *status.lock() = JournalStatus {
                        line: "journal: off".into(),
                        hover: e.clone(),
                        warning: Some(format!("not recording: {e}")),
                    };
                    let history = History {
                        dir,
                        status,
                        recorder: None,
                        takeover: None,
                        own: None,
                    };
                    (handle, demo_reason, Some(history))
                }
            }
        }
        Plan::Follow {
            dir,
            retention,
            who,
        } => {
            eprintln!(
                "candybar: reading the journal at {} live: {who} writes it",
                dir.display()
            );
            *status.lock() = history::following_status(&dir, &who);
            drop(handle); // the broker is the recorder's to consume
            let followed = history::followed(dir.clone(), &who, preload);
            let history = History {
                dir: dir.clone(),
                status,
                recorder: None,
                takeover: Some(Takeover {
                    dir,
                    retention,
                    amqp,
                }),
                own: None,
            };
            (followed, None, Some(history))
        }
    }
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
