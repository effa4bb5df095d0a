//! Dictation wired into the app: the worker (recordings, history, outbox), the global hotkey, the
//! built-in ASR server as a child process, the local socket that `candybar dictate --toggle`
//! and a second launch talk to, and the input devices the view lists.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use candybar_core::voice::{HotkeyMode, InputDevice, Phase};
use candybar_ui::dictation::{DictationDraft, DictationViewState};
use candybar_ui::{DictationInfo, HotkeyInfo, ToastLevel};
use candybar_voice::dictation::{Dictation, DictationConfig, Request, SecretStore};
use candybar_voice::hotkey::Hotkey;
use candybar_voice::local_server::{LocalServer, LocalServerConfig};
use candybar_voice::outputs::{Bus, Webhook};

use super::{CandybarApp, EXIT_GRACE};
use crate::instance::InstanceRequest;

/// What the app needs to run dictation.
pub struct DictationInit {
    /// From the config file and the environment; the view's saved settings apply on top.
    pub cfg: DictationConfig,
    pub hotkey: String,
    pub mode: HotkeyMode,
    /// Recordings stream on this runtime.
    pub rt: tokio::runtime::Handle,
    /// Where the worker finds tokens the config does not carry (the system keychain).
    pub secrets: Arc<dyn SecretStore>,
    /// The local socket this instance answers on (`candybar dictate --toggle`).
    pub instance: Option<(crate::instance::Claimed, PathBuf)>,
    /// Grab the global hotkey (not in UI tests).
    pub global_hotkey: bool,
    /// Where the bus output publishes when it is turned on (the configured broker).
    pub bus_target: Option<Bus>,
    /// The built-in ASR server the app can run as a child process.
    pub local_server: LocalServerConfig,
    pub local_auto_start: bool,
    /// Where the models the view lists are (`None`: no model directory).
    pub model_dir: Option<PathBuf>,
}

type DeviceSlot = Arc<parking_lot::Mutex<Option<Result<Vec<InputDevice>, String>>>>;

/// The app's side of dictation.
pub(super) struct DictationParts {
    pub(super) handle: Dictation,
    cfg: DictationConfig,
    hotkey: Option<Hotkey>,
    hotkey_info: HotkeyInfo,
    global_hotkey: bool,
    bus_target: Option<Bus>,
    pub(super) local: LocalServer,
    local_cfg: LocalServerConfig,
    /// A hotkey to grab at the next frame.
    pub(super) pending_hotkey: Option<(String, HotkeyMode)>,
    /// Removes the socket file when the app exits.
    served: Option<crate::instance::Served>,
    /// The input devices, filled by a `list-devices` thread.
    devices_slot: DeviceSlot,
    devices: Option<Result<Vec<InputDevice>, String>>,
    /// The model directory's models and their measured speeds.
    models: Vec<candybar_core::voice::ModelInfo>,
    models_slot: super::models::ModelsSlot,
    measuring: bool,
    /// The model whose `Q8_0` copy is being made.
    quantizing: Option<String>,
    models_note: Option<String>,
    model_dir: Option<PathBuf>,
}

impl DictationParts {
    /// What the view and the status bar read.
    pub(super) fn info(&self) -> DictationInfo<'_> {
        DictationInfo {
            status: self.handle.status_cell(),
            hotkey: &self.hotkey_info,
            server: self.local.status_cell(),
            server_port: self.local_cfg.port,
            devices: self.devices.as_ref(),
            models: &self.models,
            measuring: self.measuring,
            quantizing: self.quantizing.as_deref(),
            models_note: self.models_note.as_deref(),
        }
    }
}

impl CandybarApp {
    pub(super) fn start_dictation(&mut self, di: DictationInit, saved: Option<DictationDraft>) {
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
            language: di.cfg.language.clone().unwrap_or_default(),
        };
        if let Some(saved) = saved {
            draft = saved;
        }
        let local_waker = self.ctx.clone();
        let waker = self.ctx.clone();
        let mut parts = DictationParts {
            handle: Dictation::start(&di.cfg, di.rt, di.secrets, move || {
                waker.request_repaint();
            }),
            cfg: di.cfg,
            hotkey: None,
            hotkey_info: HotkeyInfo::default(),
            global_hotkey: di.global_hotkey,
            bus_target: di.bus_target,
            local: LocalServer::new(move || local_waker.request_repaint()),
            local_cfg: di.local_server,
            pending_hotkey: None,
            served: None,
            devices_slot: Arc::default(),
            devices: None,
            models: di
                .model_dir
                .as_deref()
                .map(super::models::list)
                .unwrap_or_default(),
            models_slot: Arc::default(),
            measuring: false,
            quantizing: None,
            models_note: None,
            model_dir: di.model_dir.clone(),
        };
        if let Some((listener, path)) = di.instance {
            let handle = parts.handle.clone();
            let local = parts.local.clone();
            let local_port = self.local_port.clone();
            let show = self.show_requested.clone();
            let releases = self.journal_releases.0.clone();
            let ctx = self.ctx.clone();
            let served = crate::instance::serve(listener, path, move |req, arg| match req {
                InstanceRequest::Start => handle.ask(Request::Start),
                InstanceRequest::Stop => handle.ask(Request::Stop),
                InstanceRequest::Toggle => handle.ask(Request::Toggle),
                InstanceRequest::TogglePlaying => handle.ask(Request::TogglePlaying),
                InstanceRequest::Status => handle.with_status(|s| {
                    let mut line = s.word().to_owned();
                    if s.handed_off {
                        line.push_str("; the microphone talks to the architect");
                    }
                    if let Some(e) = &s.error {
                        let _ = write!(line, "; last error: {e}");
                    }
                    line
                }),
                InstanceRequest::ServerStatus => {
                    local.state().words(local_port.load(Ordering::Relaxed))
                }
                InstanceRequest::Show => {
                    show.store(true, Ordering::Relaxed);
                    ctx.request_repaint();
                    "showing the window".into()
                }
                InstanceRequest::ReleaseJournal => {
                    super::history::ask_release(&releases, arg, || ctx.request_repaint())
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
        let autostart = self.viewer.dictation_view.autostart;
        self.viewer.dictation_view = DictationViewState::new(draft);
        self.viewer.dictation_view.autostart = autostart;
    }

    /// Starts or stops the built-in ASR server with the current settings.
    pub(super) fn local_server(&mut self, start: bool) {
        let Some(parts) = &self.dictation else { return };
        if start {
            parts.local.start(parts.local_cfg.clone());
        } else {
            parts.local.stop();
        }
    }

    /// Applies the view's settings: the worker's config and the hotkey.
    pub(super) fn apply_dictation(&mut self, draft: &DictationDraft) {
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
            .store(parts.local_cfg.port, Ordering::Relaxed);
        let mut cfg = parts.cfg.clone();
        cfg.server = if draft.server.trim().is_empty() {
            candybar_core::voice::DEFAULT_SERVER.to_owned()
        } else {
            draft.server.trim().to_owned()
        };
        cfg.device = Some(draft.device.clone()).filter(|d| !d.is_empty());
        cfg.clipboard = draft.clipboard;
        cfg.typing = draft.typing;
        cfg.language = Some(draft.language.trim().replace(' ', "")).filter(|l| !l.is_empty());
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
                    "the bus output needs a broker: start candybar with --amqp URL or set \
                     CANDYBAR_AMQP_URL",
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

    /// Grabs the hotkey the settings ask for.
    pub(super) fn grab_pending_hotkey(&mut self) {
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

    /// Lists the input devices on a thread: the audio system can take a while to answer.
    pub(super) fn list_devices(&mut self) {
        let Some(parts) = &self.dictation else { return };
        let slot = parts.devices_slot.clone();
        let ctx = self.ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("list-devices".into())
            .spawn(move || {
                let list = candybar_voice::capture::input_devices().map_err(|e| e.to_string());
                *slot.lock() = Some(list);
                ctx.request_repaint();
            });
        if spawned.is_err() {
            *parts.devices_slot.lock() = Some(Err("cannot list devices".into()));
        }
    }

    /// Takes the device list once the thread has it, and the models' speeds once measured.
    pub(super) fn poll_devices(&mut self) {
        if let Some(parts) = &mut self.dictation {
            if let Some(list) = parts.devices_slot.lock().take() {
                parts.devices = Some(list);
            }
            if let Some((models, note)) = parts.models_slot.lock().take() {
                parts.models = models;
                parts.models_note = note;
                parts.measuring = false;
                parts.quantizing = None;
            }
        }
    }

    /// The dictation parts, the model directory and a waker, when no model job runs.
    fn models_idle(&mut self) -> Option<(&mut DictationParts, PathBuf, egui::Context)> {
        let ctx = self.ctx.clone();
        let parts = self.dictation.as_mut()?;
        let dir = parts.model_dir.clone()?;
        (!parts.measuring && parts.quantizing.is_none()).then_some((parts, dir, ctx))
    }

    /// Measures each installed model's speed on a thread (the view shows "measuring…").
    pub(super) fn measure_models(&mut self) {
        let Some((parts, dir, ctx)) = self.models_idle() else {
            return;
        };
        parts.measuring = true;
        super::models::measure(dir, parts.models_slot.clone(), move || {
            ctx.request_repaint();
        });
    }

    /// Makes an installed model's `Q8_0` copy on a thread (the view shows it being made).
    pub(super) fn quantize_model(&mut self, name: String) {
        let Some((parts, dir, ctx)) = self.models_idle() else {
            return;
        };
        parts.quantizing = Some(name.clone());
        super::models::quantize(dir, name, parts.models_slot.clone(), move || {
            ctx.request_repaint();
        });
    }

    /// Quitting while the microphone runs must not lose what was said: stop the recording and
    /// wait (bounded) until its text is kept — or its audio saved under `unsent/`.
    pub(super) fn finish_dictation_before_exit(&self) {
        let Some(parts) = &self.dictation else { return };
        let handle = &parts.handle;
        if handle.with_status(|s| s.phase) == Phase::Idle {
            return;
        }
        tracing::info!(
            "quitting during a recording: waiting up to {} s for its text to be kept",
            EXIT_GRACE.as_secs()
        );
        handle.send(Request::Stop);
        let until = Instant::now() + EXIT_GRACE;
        while handle.with_status(|s| s.phase) != Phase::Idle {
            if Instant::now() > until {
                tracing::warn!("the last recording did not finish in time; it is lost");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
