//! The tray icon (tray-icon, GTK backend): an icon that shows idle / recording / connecting /
//! error, and a menu — show or hide the window, start or stop dictation, the bus and ASR states,
//! pause the stream, quit. GTK objects are not `Send`, so everything lives on a `tray` thread
//! that runs GTK's main loop; menu clicks reach the app as [`TrayAction`]s (dictation requests go
//! straight to the dictation worker), and a timer on that thread redraws the icon and the menu
//! from the states the app publishes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use candybar_core::voice::{AudioSource, DictationStatus, Phase, ServerState};
use candybar_voice::dictation::{Dictation, Request};
use candybar_voice::local_server::LocalServer;
use parking_lot::Mutex;

/// What a menu click asks of the app (the UI thread).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrayAction {
    ShowWindow,
    HideWindow,
    /// Pause or resume taking events from the source.
    SetPaused(bool),
    /// Start (true) or stop the built-in ASR server.
    LocalServer(bool),
    Quit,
}

/// What the icon and the menu show; the app updates it every frame it runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrayState {
    pub window_visible: bool,
    pub paused: bool,
    /// The bus connection in words ("bus: connected").
    pub bus: String,
}

/// The icon's look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IconState {
    Idle,
    Recording,
    /// Recording, but the ASR server is being reached (again), or the final text is awaited.
    Connecting,
    Error,
}

impl IconState {
    fn of(s: &DictationStatus) -> Self {
        match s.phase {
            Phase::Recording if s.reconnecting || !s.listening => Self::Connecting,
            Phase::Recording => Self::Recording,
            Phase::Finishing => Self::Connecting,
            Phase::Idle if s.error.is_some() => Self::Error,
            Phase::Idle => Self::Idle,
        }
    }

    fn tooltip(self) -> &'static str {
        match self {
            Self::Idle => "candybar",
            Self::Recording => "candybar — recording",
            Self::Connecting => "candybar — reaching the ASR server",
            Self::Error => "candybar — dictation needs attention",
        }
    }

    /// A 32×32 candy: a disc in the state's colour with a light rim; recording adds a white dot.
    #[must_use]
    pub fn rgba(self) -> Vec<u8> {
        const N: usize = 32;
        let fill: [u8; 3] = match self {
            Self::Idle => [0xe0, 0x5a, 0xa8],
            Self::Recording => [0xe5, 0x39, 0x35],
            Self::Connecting => [0xf2, 0xa5, 0x1c],
            Self::Error => [0x75, 0x75, 0x75],
        };
        let mut out = vec![0u8; N * N * 4];
        let c = (N as f32 - 1.0) / 2.0;
        for y in 0..N {
            for x in 0..N {
                let d = ((x as f32 - c).powi(2) + (y as f32 - c).powi(2)).sqrt();
                let i = (y * N + x) * 4;
                // Anti-aliased edge over one pixel.
                let alpha = (c + 0.5 - d).clamp(0.0, 1.0);
                let rim = d > c - 2.0;
                let dot = self == Self::Recording && d < 5.0;
                let rgb = if rim || dot { [0xff; 3] } else { fill };
                out[i..i + 3].copy_from_slice(&rgb);
                out[i + 3] = (alpha * 255.0) as u8;
            }
        }
        out
    }
}

/// The running tray. On Linux it runs on a thread of its own (GTK's main loop), which ends with
/// the process; elsewhere the icon must live on the main thread, and the window's frames keep
/// it up to date.
pub struct Tray {
    pub actions: Receiver<TrayAction>,
    state: Arc<Mutex<TrayState>>,
    ready: Receiver<Result<(), String>>,
    host: Arc<AtomicU8>,
    #[cfg(not(target_os = "linux"))]
    ui: std::cell::RefCell<(MenuUi, std::time::Instant)>,
}

/// Whether a tray shows our icon: a `StatusNotifier` host (KDE, the GNOME `AppIndicator` extension,
/// waybar…) or an `XEmbed` system tray (trayer, stalonetray, XFCE…). Plain GNOME has neither, and
/// there a window closed "to the tray" could not be found again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    Unknown,
    Present,
    Absent,
}

impl Tray {
    /// Starts the tray thread. Fails (in words) when GTK cannot start, e.g. without a display;
    /// with no tray host on the desktop the icon is simply not shown.
    pub fn start(
        dictation: Option<Dictation>,
        local: Option<LocalServer>,
        waker: impl Fn() + Send + Sync + 'static,
    ) -> Result<Self, String> {
        let (tx, actions) = sync_channel::<TrayAction>(32);
        let state = Arc::new(Mutex::new(TrayState {
            window_visible: true,
            ..TrayState::default()
        }));
        let (ready_tx, ready_rx) = sync_channel::<Result<(), String>>(1);
        #[cfg(not(target_os = "linux"))]
        {
            // The menu bar (macOS) and the notification area (Windows) are always there.
            let waker: Waker = Arc::new(waker);
            let ui = MenuUi::build(dictation, local, &tx, &waker, state.clone())?;
            let _ = ready_tx.send(Ok(()));
            Ok(Self {
                actions,
                state,
                ready: ready_rx,
                host: Arc::new(AtomicU8::new(Host::Present as u8)),
                ui: std::cell::RefCell::new((ui, std::time::Instant::now())),
            })
        }
        #[cfg(target_os = "linux")]
        {
            let thread_state = state.clone();
            let host = Arc::new(AtomicU8::new(Host::Unknown as u8));
            let thread_host = host.clone();
            std::thread::Builder::new()
                .name("tray".into())
                .spawn(move || {
                    let waker: Waker = Arc::new(waker);
                    run(
                        dictation,
                        local,
                        &tx,
                        &waker,
                        thread_state,
                        &ready_tx,
                        &thread_host,
                    );
                    // Only a failure returns (GTK's main loop runs for the app's life): tell the app.
                    waker();
                })
                .map_err(|e| format!("cannot start the tray thread: {e}"))?;
            // GTK starts on its own time: the window's first frame does not wait for it.
            Ok(Self {
                actions,
                state,
                ready: ready_rx,
                host,
            })
        }
    }

    /// Whether a tray on this desktop shows the icon (looked at every second).
    pub fn host(&self) -> Host {
        match self.host.load(Ordering::Relaxed) {
            1 => Host::Present,
            2 => Host::Absent,
            _ => Host::Unknown,
        }
    }

    /// Why the tray could not start (or stopped), once it has said so.
    pub fn failure(&self) -> Option<String> {
        match self.ready.try_recv() {
            Ok(Err(e)) => Some(e),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                Some("the tray stopped (its thread ended)".into())
            }
            _ => None,
        }
    }

    /// Publishes what the menu shows (cheap when nothing changed).
    pub fn set_state(&self, s: TrayState) {
        {
            let mut cur = self.state.lock();
            if *cur != s {
                *cur = s;
            }
        }
        #[cfg(not(target_os = "linux"))]
        if let Ok(mut ui) = self.ui.try_borrow_mut()
            && ui.1.elapsed() >= REFRESH
        {
            ui.1 = std::time::Instant::now();
            ui.0.refresh();
        }
    }
}

type Waker = Arc<dyn Fn() + Send + Sync>;

/// The icon and its menu, and what they show now. It lives on the thread that made it: GTK's
/// (Linux) or the main thread (macOS, Windows).
struct MenuUi {
    tray: tray_icon::TrayIcon,
    show: tray_icon::menu::MenuItem,
    record: tray_icon::menu::MenuItem,
    /// Checked while what plays is being transcribed.
    playing: tray_icon::menu::CheckMenuItem,
    asr: tray_icon::menu::MenuItem,
    bus: tray_icon::menu::MenuItem,
    pause: tray_icon::menu::CheckMenuItem,
    server: tray_icon::menu::MenuItem,
    dictation: Option<Dictation>,
    local: Option<LocalServer>,
    state: Arc<Mutex<TrayState>>,
    shown: Option<(IconState, String, TrayState, String, bool, bool)>,
}

fn icon(s: IconState) -> Option<tray_icon::Icon> {
    tray_icon::Icon::from_rgba(s.rgba(), 32, 32).ok()
}

impl MenuUi {
    /// Makes the icon and the menu; menu clicks go to `tx` (and dictation requests straight to
    /// the dictation worker), then `waker` wakes the window.
    fn build(
        dictation: Option<Dictation>,
        local: Option<LocalServer>,
        tx: &SyncSender<TrayAction>,
        waker: &Waker,
        state: Arc<Mutex<TrayState>>,
    ) -> Result<Self, String> {
        use tray_icon::menu::{CheckMenuItem, Menu, MenuEvent, MenuItem, PredefinedMenuItem};
        let show = MenuItem::new("Hide window", true, None);
        let record = MenuItem::new("Start dictation", dictation.is_some(), None);
        let playing = CheckMenuItem::new("Transcribe what plays", dictation.is_some(), false, None);
        let asr = MenuItem::new("Dictation: idle", false, None);
        let bus = MenuItem::new("Bus: …", false, None);
        let pause = CheckMenuItem::new("Pause stream", true, false, None);
        let server = MenuItem::new("Start the built-in ASR server", local.is_some(), None);
        let quit = MenuItem::new("Quit candybar", true, None);
        let menu = Menu::new();
        menu.append_items(&[
            &show,
            &record,
            &playing,
            &PredefinedMenuItem::separator(),
            &asr,
            &bus,
            &pause,
            &server,
            &PredefinedMenuItem::separator(),
            &quit,
        ])
        .map_err(|e| format!("no tray menu: {e}"))?;
        let mut builder = tray_icon::TrayIconBuilder::new()
            .with_menu(Box::new(menu))
            .with_tooltip(IconState::Idle.tooltip())
            .with_title("candybar");
        if let Some(i) = icon(IconState::Idle) {
            builder = builder.with_icon(i);
        }
        let tray = builder.build().map_err(|e| format!("no tray icon: {e}"))?;
        {
            let ids = (
                show.id().clone(),
                record.id().clone(),
                pause.id().clone(),
                quit.id().clone(),
                server.id().clone(),
                playing.id().clone(),
            );
            let (tx, waker, dictation, state, local) = (
                tx.clone(),
                waker.clone(),
                dictation.clone(),
                state.clone(),
                local.clone(),
            );
            MenuEvent::set_event_handler(Some(move |e: MenuEvent| {
                let action = if e.id == ids.0 {
                    Some(if state.lock().window_visible {
                        TrayAction::HideWindow
                    } else {
                        TrayAction::ShowWindow
                    })
                } else if e.id == ids.1 {
                    if let Some(d) = &dictation {
                        d.send(Request::Toggle);
                    }
                    None
                } else if e.id == ids.5 {
                    if let Some(d) = &dictation {
                        d.send(Request::TogglePlaying);
                    }
                    None
                } else if e.id == ids.2 {
                    Some(TrayAction::SetPaused(!state.lock().paused))
                } else if e.id == ids.3 {
                    Some(TrayAction::Quit)
                } else if e.id == ids.4 {
                    let running = local.as_ref().is_some_and(|l| {
                        !matches!(l.state(), ServerState::Stopped | ServerState::Failed(_))
                    });
                    Some(TrayAction::LocalServer(!running))
                } else {
                    None
                };
                if let Some(a) = action {
                    let _ = tx.try_send(a);
                }
                waker();
            }));
        }
        Ok(Self {
            tray,
            show,
            record,
            playing,
            asr,
            bus,
            pause,
            server,
            dictation,
            local,
            state,
            shown: None,
        })
    }

    /// Redraws the icon and the menu when something they show changed.
    fn refresh(&mut self) {
        let (icon_state, words, recording, playing) = self.dictation.as_ref().map_or(
            (IconState::Idle, "Dictation: off".to_owned(), false, false),
            |d| {
                d.with_status(|s| {
                    let recording = s.phase == Phase::Recording;
                    let playing = recording && s.source != AudioSource::Mic;
                    let words = match s.word() {
                        "idle" if s.error.is_some() => "Dictation: ✖ see the window".to_owned(),
                        "recording" if playing => "Dictation: transcribing what plays".to_owned(),
                        w => format!("Dictation: {w}"),
                    };
                    (IconState::of(s), words, recording, playing)
                })
            },
        );
        let app = self.state.lock().clone();
        let server_text = match self.local.as_ref().map(LocalServer::state) {
            None | Some(ServerState::Stopped) => "Start the built-in ASR server".to_owned(),
            Some(ServerState::Failed(_)) => "Start the built-in ASR server (it failed)".to_owned(),
            Some(ServerState::Running { .. }) => {
                "Stop the built-in ASR server (running)".to_owned()
            }
            Some(_) => "Stop the built-in ASR server (starting)".to_owned(),
        };
        let now = (icon_state, words, app, server_text, recording, playing);
        if self.shown.as_ref() == Some(&now) {
            return;
        }
        let (icon_state, words, app, server_text, recording, playing) = &now;
        self.playing.set_checked(*playing);
        self.server.set_text(server_text);
        if self.shown.as_ref().is_none_or(|s| s.0 != *icon_state) {
            let _ = self.tray.set_icon(icon(*icon_state));
            let _ = self.tray.set_tooltip(Some(icon_state.tooltip()));
        }
        self.asr.set_text(words);
        // Only a running microphone can be stopped: while the last text is finishing, a click
        // starts the next recording.
        self.record.set_text(if *recording {
            "Stop dictation"
        } else {
            "Start dictation"
        });
        self.bus.set_text(&app.bus);
        self.show.set_text(if app.window_visible {
            "Hide window"
        } else {
            "Show window"
        });
        self.pause.set_checked(app.paused);
        self.shown = Some(now);
    }
}

/// The tray thread's life on Linux: GTK's main loop, a timer that redraws the menu and looks
/// for a tray host.
#[cfg(target_os = "linux")]
fn run(
    dictation: Option<Dictation>,
    local: Option<LocalServer>,
    tx: &SyncSender<TrayAction>,
    waker: &Waker,
    state: Arc<Mutex<TrayState>>,
    ready: &SyncSender<Result<(), String>>,
    host: &Arc<AtomicU8>,
) {
    // tray-icon panics when it cannot open AppIndicator: look first, and say what to install.
    if let Some(words) = super::runtime_libs::APPINDICATOR.missing() {
        let _ = ready.send(Err(format!("no tray: {words}")));
        return;
    }
    if let Err(e) = gtk::init() {
        let _ = ready.send(Err(format!("no tray: GTK cannot start ({e})")));
        return;
    }
    let mut ui = match MenuUi::build(dictation, local, tx, waker, state) {
        Ok(ui) => ui,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let look_for_host = {
        let host = host.clone();
        let waker = waker.clone();
        let bus = gtk::gio::bus_get_sync(gtk::gio::BusType::Session, gtk::gio::Cancellable::NONE);
        let x11 = x11rb::connect(None).ok();
        move || {
            let sni = bus.as_ref().is_ok_and(|b| name_has_owner(b, SNI_WATCHER));
            let xembed = x11
                .as_ref()
                .is_some_and(|(c, screen)| xembed_tray_owned(c, *screen).unwrap_or(false));
            let now = if sni || xembed {
                Host::Present
            } else {
                Host::Absent
            } as u8;
            if host.swap(now, Ordering::Relaxed) != now {
                waker();
            }
        }
    };
    look_for_host();
    let mut ticks = 0_u32;
    gtk::glib::timeout_add_local(REFRESH, move || {
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(5) {
            look_for_host();
        }
        ui.refresh();
        gtk::glib::ControlFlow::Continue
    });
    gtk::main();
}

/// How often the icon and the menu are brought up to date.
const REFRESH: Duration = Duration::from_millis(200);

/// The D-Bus name a `StatusNotifier` host registers.
#[cfg(target_os = "linux")]
const SNI_WATCHER: &str = "org.kde.StatusNotifierWatcher";

#[cfg(target_os = "linux")]
fn name_has_owner(bus: &gtk::gio::DBusConnection, name: &str) -> bool {
    use gtk::glib::prelude::*;
    bus.call_sync(
        Some("org.freedesktop.DBus"),
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus",
        "NameHasOwner",
        Some(&(name,).to_variant()),
        None,
        gtk::gio::DBusCallFlags::NONE,
        500,
        gtk::gio::Cancellable::NONE,
    )
    .ok()
    .and_then(|v| v.get::<(bool,)>())
    .is_some_and(|(owned,)| owned)
}

/// Whether an `XEmbed` system tray owns `_NET_SYSTEM_TRAY_S<screen>`.
#[cfg(target_os = "linux")]
fn xembed_tray_owned(
    conn: &x11rb::rust_connection::RustConnection,
    screen: usize,
) -> Result<bool, Box<dyn std::error::Error>> {
    use x11rb::protocol::xproto::ConnectionExt as _;
    let atom = conn
        .intern_atom(false, format!("_NET_SYSTEM_TRAY_S{screen}").as_bytes())?
        .reply()?
        .atom;
    Ok(conn.get_selection_owner(atom)?.reply()?.owner != x11rb::NONE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_has_its_own_icon() {
        let icons: Vec<Vec<u8>> = [
            IconState::Idle,
            IconState::Recording,
            IconState::Connecting,
            IconState::Error,
        ]
        .iter()
        .map(|s| s.rgba())
        .collect();
        for (i, a) in icons.iter().enumerate() {
            assert_eq!(a.len(), 32 * 32 * 4);
            // Corners are transparent, the centre is opaque.
            assert_eq!(a[3], 0);
            assert_eq!(a[(16 * 32 + 16) * 4 + 3], 255);
            for b in &icons[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
