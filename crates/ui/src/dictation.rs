//! The Dictation view: record and see the words arrive, the history with full-text search, and
//! the settings (server, microphone, hotkey, outputs). Everything it does goes to the dictation
//! worker as a [`DictationAction`] (through the app); it draws the worker's [`DictationStatus`].

use std::time::Duration;

use candybar_core::redact::Secret;
use candybar_core::voice::{
    AudioSource, DEFAULT_SERVER, DictationAction, DictationStatus, HotkeyMode, Output, Phase,
    ServerState, ServerStatus, Transcript,
};
use egui::{Color32, RichText};

use crate::Command;
use crate::context::ViewCx;
use crate::context::{DictationInfo, HotkeyInfo};
use crate::theme::Theme;
use crate::time_fmt::TimeZoneChoice;

/// The settings the view edits; applied together with "Apply".
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
#[allow(clippy::struct_excessive_bools)] // independent on/off settings, as the form shows them
pub struct DictationDraft {
    pub server: String,
    /// Empty: the system's default input.
    pub device: String,
    pub hotkey: String,
    pub mode: HotkeyMode,
    pub clipboard: bool,
    pub typing: bool,
    /// Empty: no webhook.
    pub webhook_url: String,
    pub bus: bool,
    /// The built-in server's model (a ggml file or a name) and port.
    pub local_model: String,
    pub local_port: String,
    /// Start the built-in server with the window.
    pub local_auto_start: bool,
    /// The spoken language sent to the server (`de`, `auto`, `de,en`); empty: the server's.
    pub language: String,
}

#[derive(Default)]
pub struct DictationViewState {
    pub search: String,
    pub draft: DictationDraft,
    /// The draft as last applied, to tell whether "Apply" has anything to do.
    pub applied: DictationDraft,
    /// The device list was asked for (once, when the list first opens).
    devices_asked: bool,
    /// Tokens being typed; taken (and cleared) by "Save".
    asr_token: String,
    webhook_token: String,
    /// Whether candybar starts at login (the autostart entry, as read at start).
    pub autostart: bool,
}

impl DictationViewState {
    pub fn new(draft: DictationDraft) -> Self {
        Self {
            applied: draft.clone(),
            draft,
            ..Self::default()
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, cx: &mut ViewCx<'_, '_>) {
        let (theme, tz) = (cx.theme, cx.tz);
        let commands = &mut *cx.commands;
        let Some(d) = &cx.data.dictation else {
            ui.label("Dictation is off in this window.");
            return;
        };
        egui::Panel::right("dictation-settings")
            .resizable(true)
            .default_size(330.0)
            .min_size(260.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    self.settings_ui(ui, d, theme, commands);
                    ui.separator();
                    let server = d.server.lock();
                    self.local_server_ui(ui, (&server, d.server_port), d, theme, commands);
                });
            });
        // The worker updates its status under this lock; a frame holds it for microseconds.
        let status = d.status.lock();
        recorder_ui(ui, &status, d.hotkey, theme, commands);
        ui.separator();
        self.history_ui(ui, &status, theme, tz, commands);
    }

    fn history_ui(
        &mut self,
        ui: &mut egui::Ui,
        status: &DictationStatus,
        theme: Theme,
        tz: TimeZoneChoice,
        commands: &mut Vec<Command>,
    ) {
        ui.horizontal(|ui| {
            ui.heading("History");
            let label = ui.label("Search");
            let r = ui
                .add(
                    egui::TextEdit::singleline(&mut self.search)
                        .hint_text("words or their beginnings…")
                        .desired_width(260.0),
                )
                .labelled_by(label.id);
            if r.changed() {
                commands.push(Command::Dictation(DictationAction::Search(
                    self.search.clone(),
                )));
            }
            let shown = status.history.len();
            ui.label(
                RichText::new(if status.query.trim().is_empty() {
                    format!("{} kept", status.history_total)
                } else {
                    format!("{shown} of {} match", status.history_total)
                })
                .color(theme.weak_text()),
            );
            if status.pending_deliveries > 0 {
                ui.separator();
                let text = format!("⏳ {} waiting in the outbox", status.pending_deliveries);
                let r = ui.label(RichText::new(text).color(theme.warn()));
                if let Some(e) = &status.delivery_error {
                    r.on_hover_text(format!("last attempt: {e}"));
                }
                if ui.small_button("Retry now").clicked() {
                    commands.push(Command::Dictation(DictationAction::RetryOutbox));
                }
            }
        });
        if status.history.is_empty() {
            ui.add_space(12.0);
            ui.label(
                RichText::new(if status.query.trim().is_empty() {
                    "Nothing dictated yet. Press the hotkey or ⏺ Start dictation and speak."
                } else {
                    "No transcript matches."
                })
                .color(theme.weak_text()),
            );
            return;
        }
        egui::ScrollArea::vertical()
            .id_salt("dictation-history")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                for t in &status.history {
                    transcript_ui(ui, t, theme, tz, commands);
                }
            });
    }

    /// Fields to give the tokens to the keychain (they are cleared once saved).
    fn tokens_ui(&mut self, ui: &mut egui::Ui, theme: Theme, commands: &mut Vec<Command>) {
        ui.label("Tokens (kept in the system keychain, never shown)");
        for (name, field) in [
            ("asr-token", &mut self.asr_token),
            ("webhook-token", &mut self.webhook_token),
        ] {
            ui.horizontal(|ui| {
                ui.add(
                    egui::TextEdit::singleline(field)
                        .password(true)
                        .hint_text(name)
                        .desired_width(170.0),
                );
                if ui
                    .add_enabled(!field.is_empty(), egui::Button::new("Save"))
                    .clicked()
                {
                    commands.push(Command::SaveSecret(
                        name,
                        Secret::new(std::mem::take(field)),
                    ));
                }
            });
        }
        ui.label(
            RichText::new(
                "or `candybar secret set NAME`; CANDYBAR_ASR_TOKEN and CANDYBAR_WEBHOOK_TOKEN win",
            )
            .small()
            .color(theme.weak_text()),
        );
    }

    /// The built-in ASR server: its state, start/stop, model and port, and its log's tail.
    fn local_server_ui(
        &mut self,
        ui: &mut egui::Ui,
        (status, port): (&ServerStatus, u16),
        info: &DictationInfo<'_>,
        theme: Theme,
        commands: &mut Vec<Command>,
    ) {
        ui.heading("Built-in ASR server");
        let (color, running) = match &status.state {
            ServerState::Running { .. } => (theme.good(), true),
            ServerState::Starting | ServerState::Restarting { .. } => (theme.warn(), true),
            ServerState::Failed(_) => (theme.bad(), false),
            ServerState::Stopped => (theme.weak_text(), false),
        };
        ui.label(RichText::new(status.state.words(port)).color(color));
        if status.restarts > 0 {
            ui.label(
                RichText::new(format!("restarted {} times after dying", status.restarts))
                    .small()
                    .color(theme.warn()),
            );
        }
        let label = if running {
            "Stop the built-in server"
        } else {
            "Start the built-in server"
        };
        if ui.button(label).clicked() {
            // Start with the model and port as they are typed below.
            if !running && self.draft != self.applied {
                self.applied = self.draft.clone();
                commands.push(Command::ApplyDictation(self.draft.clone()));
            }
            commands.push(Command::LocalServer(!running));
        }
        let d = &mut self.draft;
        ui.horizontal(|ui| {
            ui.label("model");
            ui.add(egui::TextEdit::singleline(&mut d.local_model).desired_width(140.0));
            ui.label("port");
            ui.add(egui::TextEdit::singleline(&mut d.local_port).desired_width(50.0));
        });
        models_ui(ui, &mut d.local_model, info, theme, commands);
        ui.checkbox(&mut d.local_auto_start, "start it with candybar");
        ui.label(
            RichText::new(format!(
                "Dictation uses it when the server above is ws://127.0.0.1:{port}/asr."
            ))
            .small()
            .color(theme.weak_text()),
        );
        if !status.log.is_empty() {
            egui::CollapsingHeader::new("Its log")
                .id_salt("local-server-log")
                .show(ui, |ui| {
                    let start = status.log.len().saturating_sub(30);
                    for line in status.log.iter().skip(start) {
                        ui.label(RichText::new(line).monospace().small());
                    }
                });
        }
    }

    fn settings_ui(
        &mut self,
        ui: &mut egui::Ui,
        info: &DictationInfo<'_>,
        theme: Theme,
        commands: &mut Vec<Command>,
    ) {
        let hotkey = info.hotkey;
        ui.heading("Settings");
        let d = &mut self.draft;
        ui.label("ASR server (ours or WhisperLiveKit)");
        ui.add(
            egui::TextEdit::singleline(&mut d.server)
                .hint_text(DEFAULT_SERVER)
                .desired_width(f32::INFINITY),
        );
        ui.add_space(6.0);
        language_ui(ui, &mut d.language);
        ui.add_space(6.0);
        ui.label("Microphone");
        let shown = if d.device.is_empty() {
            "system default".to_owned()
        } else {
            d.device.clone()
        };
        let mut open_devices = false;
        egui::ComboBox::from_id_salt("device")
            .width(ui.available_width() - 8.0)
            .selected_text(shown)
            .show_ui(ui, |ui| {
                open_devices = true;
                ui.selectable_value(&mut d.device, String::new(), "system default");
                match info.devices {
                    None => {
                        ui.label("listing devices…");
                    }
                    Some(Err(e)) => {
                        ui.label(RichText::new(e).color(theme.bad()));
                    }
                    Some(Ok(list)) => {
                        for dev in list {
                            let label = format!("{} ({} Hz)", dev.name, dev.rate_hz);
                            ui.selectable_value(&mut d.device, dev.name.clone(), label);
                        }
                    }
                }
            });
        if open_devices && !self.devices_asked {
            self.devices_asked = true;
            commands.push(Command::ListDevices);
        }
        ui.add_space(6.0);
        ui.label("Hotkey");
        ui.add(egui::TextEdit::singleline(&mut d.hotkey).hint_text("Ctrl+Alt+Space"));
        ui.radio_value(&mut d.mode, HotkeyMode::Hold, HotkeyMode::Hold.label());
        ui.radio_value(&mut d.mode, HotkeyMode::Toggle, HotkeyMode::Toggle.label());
        if let Some(e) = &hotkey.error {
            ui.label(RichText::new(format!("⚠ {e}")).color(theme.warn()));
        }
        ui.add_space(6.0);
        ui.label("Each transcript is kept in the history, then:");
        ui.checkbox(&mut d.typing, "type it into the focused window");
        ui.add_enabled(
            !d.typing,
            egui::Checkbox::new(&mut d.clipboard, "put it on the clipboard"),
        );
        ui.label("POST it to a webhook (n8n style)");
        ui.add(
            egui::TextEdit::singleline(&mut d.webhook_url)
                .hint_text("https://…/webhook/…")
                .desired_width(f32::INFINITY),
        );
        ui.checkbox(&mut d.bus, "publish it on the event bus");
        ui.add_space(8.0);
        let changed = self.draft != self.applied;
        ui.horizontal(|ui| {
            if ui
                .add_enabled(changed, egui::Button::new("Apply"))
                .clicked()
            {
                self.applied = self.draft.clone();
                commands.push(Command::ApplyDictation(self.draft.clone()));
            }
            if ui
                .add_enabled(changed, egui::Button::new("Revert"))
                .clicked()
            {
                self.draft = self.applied.clone();
            }
        });
        ui.add_space(6.0);
        self.tokens_ui(ui, theme, commands);
        ui.add_space(6.0);
        if ui
            .checkbox(
                &mut self.autostart,
                "start candybar in the tray when I log in",
            )
            .changed()
        {
            commands.push(Command::Autostart(self.autostart));
        }
    }
}

/// The spoken language the client asks the server for.
fn language_ui(ui: &mut egui::Ui, language: &mut String) {
    ui.horizontal(|ui| {
        ui.label("Language");
        ui.add(
            egui::TextEdit::singleline(language)
                .hint_text("the server's")
                .desired_width(90.0),
        )
        .on_hover_text(
            "an ISO 639-1 code (en, de, fr, es…), auto to detect it, or a list (de,en) to \
             detect which of those it is; other languages than English need a multilingual \
             model (not a .en one)",
        );
    });
}

/// The installed models to pick from, each with its size, its languages and — once measured —
/// its speed here; and the button that measures them.
fn models_ui(
    ui: &mut egui::Ui,
    chosen: &mut String,
    info: &DictationInfo<'_>,
    theme: Theme,
    commands: &mut Vec<Command>,
) {
    if info.models.is_empty() {
        ui.label(
            RichText::new("No models in the model directory: `candybar asr models pull tiny.en`")
                .small()
                .color(theme.warn()),
        );
        return;
    }
    let busy = info.measuring || info.quantizing.is_some();
    egui::Grid::new("installed-models")
        .num_columns(5)
        .spacing([8.0, 2.0])
        .show(ui, |ui| {
            for m in info.models {
                let languages = match m.multilingual {
                    Some(true) => "99 languages",
                    Some(false) => "English",
                    None => "not a model",
                };
                ui.radio_value(chosen, m.name.clone(), &m.name)
                    .on_hover_text(&m.kind);
                ui.label(
                    RichText::new(format!("{:.0} MB", m.bytes as f64 / 1e6))
                        .small()
                        .color(theme.weak_text()),
                );
                ui.label(RichText::new(languages).small().color(theme.weak_text()));
                match m.real_time_factor {
                    Some(rtf) if rtf > 0.0 => {
                        ui.label(RichText::new(format!("{:.0}× real time", 1.0 / rtf)).small())
                            .on_hover_text(format!(
                                "decodes a second of speech in {:.0} ms on this machine",
                                rtf * 1000.0
                            ));
                    }
                    _ => {
                        ui.label("");
                    }
                }
                let copy = format!("{}-q8_0", m.name);
                if info.quantizing == Some(m.name.as_str()) {
                    ui.label(RichText::new("making its q8_0 copy…").small());
                } else if m.quantizable && !info.models.iter().any(|o| o.name == copy) {
                    if ui
                        .add_enabled(!busy, egui::Button::new("⚡ q8_0 copy").small())
                        .on_hover_text(format!(
                            "make {copy}: about half the size and a quarter faster on a CPU, \
                             the same words (candybar asr models quantize {})",
                            m.name
                        ))
                        .clicked()
                    {
                        commands.push(Command::QuantizeModel(m.name.clone()));
                    }
                } else {
                    ui.label("");
                }
                ui.end_row();
            }
        });
    if let Some(note) = info.models_note {
        ui.label(RichText::new(note).small().color(theme.weak_text()));
    }
    let label = if info.measuring {
        "⏱ measuring…"
    } else {
        "⏱ Measure their speed"
    };
    if ui
        .add_enabled(!busy, egui::Button::new(label).small())
        .on_hover_text("decodes a 4 s sentence with each model, one after another")
        .clicked()
    {
        commands.push(Command::MeasureModels);
    }
}

/// One kept transcript: when, how long, what happened to it, the text and its actions.
fn transcript_ui(
    ui: &mut egui::Ui,
    t: &Transcript,
    theme: Theme,
    tz: TimeZoneChoice,
    commands: &mut Vec<Command>,
) {
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.horizontal(|ui| {
            ui.label(
                RichText::new(tz.minute(t.created_us))
                    .monospace()
                    .color(theme.weak_text()),
            );
            ui.label(
                RichText::new(format!("{:.1} s", t.duration_ms as f64 / 1000.0))
                    .color(theme.weak_text()),
            );
            if let Some(language) = &t.language {
                ui.label(
                    RichText::new(language)
                        .monospace()
                        .small()
                        .color(theme.weak_text()),
                )
                .on_hover_text("the spoken language, as the server heard it");
            }
            for d in &t.deliveries {
                let (icon, color) = match d.state.as_str() {
                    "delivered" => ("✔", theme.good()),
                    "pending" => ("⏳", theme.warn()),
                    _ => ("✖", theme.bad()),
                };
                let r = ui.label(
                    RichText::new(format!("{icon} {}", d.output.as_str()))
                        .small()
                        .color(color),
                );
                if let Some(e) = &d.last_error {
                    r.on_hover_text(e);
                }
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui.small_button("🗑").on_hover_text("delete").clicked() {
                    commands.push(Command::Dictation(DictationAction::Delete(t.id)));
                }
                if ui
                    .small_button("↻")
                    .on_hover_text("send to the webhook / bus again")
                    .clicked()
                {
                    commands.push(Command::Dictation(DictationAction::Resend(t.id)));
                }
                if ui.small_button("🗐").on_hover_text("copy").clicked() {
                    commands.push(Command::Copy(t.text.clone()));
                }
            });
        });
        ui.label(&t.text);
    });
}

/// The record button, the level meter and the words as they arrive.
#[allow(clippy::too_many_lines)] // one row of controls and one box of text, read top to bottom
fn recorder_ui(
    ui: &mut egui::Ui,
    status: &DictationStatus,
    hotkey: &HotkeyInfo,
    theme: Theme,
    commands: &mut Vec<Command>,
) {
    ui.horizontal(|ui| {
        // A meeting, a video: what the computer plays, kept as one transcript with its times.
        let playing = status.phase == Phase::Recording && status.source != AudioSource::Mic;
        let recording = status.phase == Phase::Recording && !playing;
        let (label, request) = if recording {
            ("⏹ Stop dictation", DictationAction::Stop)
        } else {
            ("⏺ Start dictation", DictationAction::Start)
        };
        let button = egui::Button::new(RichText::new(label).size(18.0).color(if recording {
            Color32::WHITE
        } else {
            theme.bad()
        }))
        .fill(if recording {
            theme.bad()
        } else {
            ui.visuals().widgets.inactive.weak_bg_fill
        })
        .min_size(egui::vec2(190.0, 40.0));
        let button = ui
            .add_enabled(!playing, button)
            .on_disabled_hover_text("Transcribing what plays: switch it off to dictate");
        if button.clicked() {
            commands.push(Command::Dictation(request));
        }
        let toggle = ui
            .add_enabled(
                !recording,
                egui::Button::selectable(playing, "🔊 Transcribe what plays"),
            )
            .on_hover_text(
                "Transcribe what the computer plays (a meeting, a video) until you click again: \
                 kept in the history with its times, never typed",
            )
            .on_disabled_hover_text("Stop dictating first");
        if toggle.clicked() {
            commands.push(Command::Dictation(DictationAction::TogglePlaying));
        }
        ui.vertical(|ui| {
            let phase = match status.phase {
                Phase::Idle => "idle".to_owned(),
                Phase::Recording if !status.listening => "opening the microphone…".to_owned(),
                Phase::Recording => format!(
                    "recording {:.1} s from {}",
                    status
                        .recording_since
                        .map_or(Duration::ZERO, |t| t.elapsed())
                        .as_secs_f32(),
                    status.device
                ),
                Phase::Finishing => "waiting for the final text…".to_owned(),
            };
            ui.label(RichText::new(phase).strong());
            if status.phase == Phase::Recording
                && let Some(n) = &status.notice
            {
                ui.label(RichText::new(n).color(theme.warn()));
            }
            let keys = if hotkey.error.is_some() {
                "hotkey unavailable (see settings)".to_owned()
            } else {
                format!("{} — {}", hotkey.combo, hotkey.mode.label())
            };
            ui.label(RichText::new(keys).color(theme.weak_text()));
        });
        if status.phase == Phase::Recording {
            // RMS of speech sits around 0.05–0.3: show it on a square-root scale.
            let level = status.level().clamp(0.0, 1.0).sqrt();
            ui.add(
                egui::ProgressBar::new(level)
                    .desired_width(160.0)
                    .fill(if level > 0.9 {
                        theme.warn()
                    } else {
                        theme.good()
                    }),
            )
            .on_hover_text("input level");
        }
        if status.phase != Phase::Idle && !status.connection.is_empty() {
            let color = if status.reconnecting {
                theme.warn()
            } else {
                theme.weak_text()
            };
            ui.label(RichText::new(&status.connection).color(color));
        }
    });
    ui.add_space(6.0);
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.set_min_height(56.0);
        if status.phase != Phase::Idle || !status.settled.is_empty() {
            ui.horizontal_wrapped(|ui| {
                ui.label(RichText::new(&status.settled).size(16.0).strong());
                ui.label(
                    RichText::new(&status.tentative)
                        .size(16.0)
                        .italics()
                        .color(theme.weak_text()),
                );
            });
        } else if let Some(last) = &status.last {
            ui.label(RichText::new(&last.text).size(16.0));
            ui.horizontal(|ui| {
                if let Some(id) = last.history_id {
                    ui.label(
                        RichText::new(format!("kept as #{id}"))
                            .small()
                            .color(theme.good()),
                    );
                }
                for (output, result) in &last.outputs {
                    let (text, color) = match result {
                        Ok(()) => (format!("✔ {}", output_words(*output)), theme.good()),
                        Err(_) => (format!("✖ {}", output_words(*output)), theme.bad()),
                    };
                    ui.label(RichText::new(text).small().color(color));
                }
                ui.label(
                    RichText::new(format!("final {} ms after speech", last.final_after_ms))
                        .small()
                        .color(theme.weak_text()),
                );
            });
        } else {
            ui.label(RichText::new("The words appear here as you speak.").color(theme.weak_text()));
        }
    });
    if let Some(e) = &status.error {
        ui.label(RichText::new(format!("✖ {e}")).color(theme.bad()));
    }
}

fn output_words(o: Output) -> &'static str {
    match o {
        Output::Clipboard => "on the clipboard",
        Output::Typed => "typed",
        Output::Webhook => "webhook",
        Output::Bus => "bus",
    }
}
