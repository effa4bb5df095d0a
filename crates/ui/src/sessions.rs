//! The Sessions view: the coding-agent sessions (this host's, and every host's when they share a
//! Redis) with their state, provider, worktree, duration and last output line; a form to start
//! one; and for the selected session its live log, a line to send it, End and Attach.
//!
//! The app's sessions worker fills [`SessionsInfo`]; what the person asks for goes back as
//! [`Command::Sessions`].

use candybar_core::time::{Micros, format_span};
use egui::{Color32, RichText};
use egui_extras::{Column, TableBuilder};

use crate::Command;
use crate::context::ViewCx;
use crate::theme::{ROW_HEIGHT, Theme};

/// One session as the view shows it (the worker's words; the UI knows no session type).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionRow {
    pub id: String,
    pub name: String,
    pub provider: String,
    /// `initializing`, `active`, `idle`, `waiting_input`, `terminated` or `failed`.
    pub state: String,
    pub dir: String,
    pub host: String,
    pub created_us: Micros,
    pub ended_us: Option<Micros>,
    pub last_line: String,
    /// Why it ended.
    pub reason: Option<String>,
    pub command: String,
    /// It runs on this host (it can be attached to and ended from here).
    pub local: bool,
    /// The terminal multiplexer it runs in (`tmux`, `zellij`; empty for another host's).
    pub multiplexer: String,
}

impl SessionRow {
    fn running(&self) -> bool {
        !matches!(self.state.as_str(), "terminated" | "failed")
    }

    fn short_id(&self) -> &str {
        self.id.get(..8).unwrap_or(&self.id)
    }
}

/// What the view reads each frame.
#[derive(Clone, Copy, Debug)]
pub struct SessionsInfo<'a> {
    /// Newest first.
    pub rows: &'a [SessionRow],
    /// The selected session's last output, escape sequences removed.
    pub log: &'a str,
    /// Why sessions cannot be listed or started (tmux missing, Redis down…).
    pub problem: Option<&'a str>,
}

/// What the person asks of sessions.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionAction {
    Start {
        name: String,
        provider: String,
        dir: String,
        prompt: String,
        /// A command instead of the provider's CLI, as typed (split on whitespace).
        command: String,
        /// `tmux` or `zellij`; empty: the configured one, else tmux where installed.
        multiplexer: String,
    },
    End {
        id: String,
        force: bool,
    },
    /// Stop its processes until resumed (`true`), or continue them.
    Pause {
        id: String,
        pause: bool,
    },
    /// Open the user's terminal on it.
    Attach(String),
    Send {
        id: String,
        text: String,
    },
    /// The session whose log the view shows (the worker tails it).
    Select(Option<String>),
    /// List ended sessions too.
    ShowAll(bool),
}

/// The start form.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct StartForm {
    pub name: String,
    pub provider: String,
    pub dir: String,
    pub prompt: String,
    pub command: String,
    /// Empty: the default multiplexer.
    pub multiplexer: String,
}

/// What lasts between frames.
#[derive(Default)]
pub struct SessionsViewState {
    pub selected: Option<String>,
    pub form: StartForm,
    pub form_open: bool,
    pub show_all: bool,
    /// The line being typed for the selected session.
    pub send_text: String,
    /// The worker was told the view is shown (it opens the sessions then).
    woken: bool,
    /// A session just asked for: selected when it shows up.
    select_when_seen: Option<String>,
}

const PROVIDERS: [&str; 4] = ["claude", "gemini", "codex", "custom"];
/// The form's multiplexer choices: (value, label).
const MULTIPLEXERS: [(&str, &str); 3] = [
    ("", "default (tmux where installed, else zellij)"),
    ("tmux", "tmux"),
    ("zellij", "zellij"),
];

fn state_color(state: &str, theme: Theme) -> Color32 {
    match state {
        "active" => theme.good(),
        "waiting_input" => theme.accent(),
        "idle" | "initializing" => theme.warn(),
        "failed" => theme.bad(),
        _ => theme.weak_text(),
    }
}

fn state_label(state: &str) -> &str {
    match state {
        "waiting_input" => "waiting for input",
        s => s,
    }
}

impl SessionsViewState {
    pub fn ui(&mut self, ui: &mut egui::Ui, cx: &mut ViewCx<'_, '_>) {
        let Some(info) = cx.data.sessions else {
            ui.label("Sessions are not available in this window.");
            return;
        };
        if !self.woken {
            self.woken = true;
            cx.commands
                .push(Command::Sessions(SessionAction::ShowAll(self.show_all)));
        }
        let theme = cx.theme;
        let now = cx.data.now_us;
        ui.horizontal(|ui| {
            let running = info.rows.iter().filter(|r| r.running()).count();
            let waiting = info
                .rows
                .iter()
                .filter(|r| r.state == "waiting_input")
                .count();
            ui.label(format!("{running} running"));
            if waiting > 0 {
                ui.label(
                    RichText::new(format!("{waiting} waiting for input")).color(theme.accent()),
                );
            }
            ui.separator();
            if ui
                .toggle_value(&mut self.show_all, "Ended too")
                .on_hover_text("also list the sessions that have ended")
                .changed()
            {
                cx.commands
                    .push(Command::Sessions(SessionAction::ShowAll(self.show_all)));
            }
            ui.toggle_value(&mut self.form_open, "+ New session");
        });
        if let Some(p) = info.problem {
            ui.label(RichText::new(p).color(theme.bad()));
        }
        if self.form_open {
            self.form_ui(ui, cx);
        }
        ui.separator();
        if let Some(name) = &self.select_when_seen
            && let Some(r) = info.rows.iter().find(|r| &r.name == name && r.running())
        {
            self.selected = Some(r.id.clone());
            self.select_when_seen = None;
            cx.commands.push(Command::Sessions(SessionAction::Select(
                self.selected.clone(),
            )));
        }
        let selected = self
            .selected
            .as_ref()
            .and_then(|id| info.rows.iter().find(|r| &r.id == id));
        let table_height = if selected.is_some() {
            (ui.available_height() * 0.45).max(120.0)
        } else {
            ui.available_height()
        };
        ui.allocate_ui(egui::vec2(ui.available_width(), table_height), |ui| {
            self.table_ui(ui, info, theme, now, cx.commands);
        });
        if let Some(row) = selected.cloned() {
            ui.separator();
            self.detail_ui(ui, &row, info.log, theme, now, cx.commands);
        }
    }

    fn form_ui(&mut self, ui: &mut egui::Ui, cx: &mut ViewCx<'_, '_>) {
        let f = &mut self.form;
        if f.provider.is_empty() {
            f.provider = "claude".into();
        }
        egui::Grid::new("session-form")
            .num_columns(2)
            .spacing([8.0, 4.0])
            .show(ui, |ui| {
                ui.label("Name");
                ui.add(egui::TextEdit::singleline(&mut f.name).hint_text("fix-login"));
                ui.end_row();
                ui.label("Provider");
                egui::ComboBox::from_id_salt("session-provider")
                    .selected_text(f.provider.as_str())
                    .show_ui(ui, |ui| {
                        for p in PROVIDERS {
                            ui.selectable_value(&mut f.provider, p.to_owned(), p);
                        }
                    });
                ui.end_row();
                ui.label("Directory");
                ui.add(
                    egui::TextEdit::singleline(&mut f.dir)
                        .hint_text("the worktree (default: candybar's directory)")
                        .desired_width(360.0),
                );
                ui.end_row();
                ui.label("Prompt");
                ui.add(
                    egui::TextEdit::multiline(&mut f.prompt)
                        .desired_rows(2)
                        .desired_width(360.0),
                );
                ui.end_row();
                ui.label("Command");
                ui.add(
                    egui::TextEdit::singleline(&mut f.command)
                        .hint_text("instead of the provider's CLI (custom)")
                        .desired_width(360.0),
                );
                ui.end_row();
                ui.label("Runs in");
                let chosen = MULTIPLEXERS
                    .iter()
                    .find(|(v, _)| *v == f.multiplexer)
                    .map_or("default", |(_, l)| l);
                egui::ComboBox::from_id_salt("session-multiplexer")
                    .selected_text(chosen)
                    .show_ui(ui, |ui| {
                        for (value, label) in MULTIPLEXERS {
                            ui.selectable_value(&mut f.multiplexer, value.to_owned(), label);
                        }
                    });
                ui.end_row();
            });
        let ready = !f.name.trim().is_empty();
        if ui
            .add_enabled(ready, egui::Button::new("▶ Start"))
            .on_disabled_hover_text("give the session a name")
            .clicked()
        {
            let name = f.name.trim().to_owned();
            cx.commands.push(Command::Sessions(SessionAction::Start {
                name: name.clone(),
                provider: f.provider.clone(),
                dir: f.dir.trim().to_owned(),
                prompt: f.prompt.trim().to_owned(),
                command: f.command.trim().to_owned(),
                multiplexer: f.multiplexer.clone(),
            }));
            f.name.clear();
            f.prompt.clear();
            self.select_when_seen = Some(name);
        }
    }

    fn table_ui(
        &mut self,
        ui: &mut egui::Ui,
        info: SessionsInfo<'_>,
        theme: Theme,
        now: Micros,
        commands: &mut Vec<Command>,
    ) {
        if info.rows.is_empty() {
            ui.label(
                RichText::new(
                    "No sessions. Start one with + New session, `candybar session start`, or \
                     from the bus with `candybar session serve`.",
                )
                .color(theme.weak_text()),
            );
            return;
        }
        ui.style_mut().interaction.selectable_labels = false;
        TableBuilder::new(ui)
            .id_salt("sessions")
            .striped(true)
            .sense(egui::Sense::click())
            .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
            .column(Column::initial(150.0))
            .column(Column::initial(160.0).clip(true))
            .column(Column::initial(70.0))
            .column(Column::initial(80.0))
            .column(Column::initial(200.0).clip(true))
            .column(Column::remainder().clip(true))
            .header(ROW_HEIGHT, |mut h| {
                for t in [
                    "State",
                    "Name",
                    "Provider",
                    "Running",
                    "Worktree",
                    "Last line",
                ] {
                    h.col(|ui| {
                        ui.strong(t);
                    });
                }
            })
            .body(|body| {
                body.rows(ROW_HEIGHT, info.rows.len(), |mut row| {
                    let Some(r) = info.rows.get(row.index()) else {
                        return;
                    };
                    row.set_selected(self.selected.as_deref() == Some(r.id.as_str()));
                    let color = state_color(&r.state, theme);
                    row.col(|ui| {
                        crate::theme::dot(ui, color);
                        ui.label(RichText::new(state_label(&r.state)).color(color));
                    });
                    row.col(|ui| {
                        ui.label(&r.name)
                            .on_hover_text(format!("{} on {}", r.id, r.host));
                    });
                    row.col(|ui| {
                        ui.label(&r.provider);
                    });
                    row.col(|ui| {
                        let end = r.ended_us.unwrap_or(now);
                        ui.label(format_span((end - r.created_us).max(0)));
                    });
                    row.col(|ui| {
                        ui.label(&r.dir);
                    });
                    row.col(|ui| {
                        ui.label(RichText::new(&r.last_line).monospace());
                    });
                    if row.response().clicked() {
                        let pick = if self.selected.as_deref() == Some(r.id.as_str()) {
                            None
                        } else {
                            Some(r.id.clone())
                        };
                        self.selected.clone_from(&pick);
                        commands.push(Command::Sessions(SessionAction::Select(pick)));
                    }
                });
            });
    }

    fn detail_ui(
        &mut self,
        ui: &mut egui::Ui,
        r: &SessionRow,
        log: &str,
        theme: Theme,
        now: Micros,
        commands: &mut Vec<Command>,
    ) {
        ui.horizontal(|ui| {
            ui.strong(&r.name);
            let place = if r.multiplexer.is_empty() {
                format!("{} · {}", r.short_id(), r.host)
            } else {
                format!("{} · {} · {}", r.short_id(), r.host, r.multiplexer)
            };
            ui.label(RichText::new(place).color(theme.weak_text()));
            ui.label(RichText::new(state_label(&r.state)).color(state_color(&r.state, theme)));
            if let Some(reason) = &r.reason {
                ui.label(reason);
            }
            let end = r.ended_us.unwrap_or(now);
            ui.label(format_span((end - r.created_us).max(0)));
            if ui
                .small_button("trace")
                .on_hover_text("the events of this session on the bus, as a waterfall")
                .clicked()
            {
                commands.push(Command::OpenTrace(r.id.clone()));
            }
        });
        ui.label(
            RichText::new(&r.command)
                .monospace()
                .color(theme.weak_text()),
        );
        if r.running() && r.local {
            ui.horizontal(|ui| {
                let field = ui.add(
                    egui::TextEdit::singleline(&mut self.send_text)
                        .hint_text("type a line for the agent (Enter sends)")
                        .desired_width(360.0),
                );
                let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                if (ui.button("Send").clicked() || enter) && !self.send_text.is_empty() {
                    commands.push(Command::Sessions(SessionAction::Send {
                        id: r.id.clone(),
                        text: std::mem::take(&mut self.send_text),
                    }));
                }
                if ui
                    .button("Attach")
                    .on_hover_text("open a terminal attached to the session")
                    .clicked()
                {
                    commands.push(Command::Sessions(SessionAction::Attach(r.id.clone())));
                }
                let paused = r.state == "paused";
                let (label, hover) = if paused {
                    ("▶ Resume", "continue its processes")
                } else {
                    ("⏸ Pause", "stop its processes (SIGSTOP) until resumed")
                };
                if ui.button(label).on_hover_text(hover).clicked() {
                    commands.push(Command::Sessions(SessionAction::Pause {
                        id: r.id.clone(),
                        pause: !paused,
                    }));
                }
                if ui
                    .button("⏹ End")
                    .on_hover_text("Ctrl-C, then close it after 5 s")
                    .clicked()
                {
                    commands.push(Command::Sessions(SessionAction::End {
                        id: r.id.clone(),
                        force: false,
                    }));
                }
                if ui
                    .button(RichText::new("Force end").color(theme.bad()))
                    .on_hover_text("close the session at once")
                    .clicked()
                {
                    commands.push(Command::Sessions(SessionAction::End {
                        id: r.id.clone(),
                        force: true,
                    }));
                }
            });
        } else if r.running() {
            ui.label(
                RichText::new(format!("runs on {}: attach and end it there", r.host))
                    .color(theme.weak_text()),
            );
        }
        egui::ScrollArea::vertical()
            .id_salt("session-log")
            .stick_to_bottom(true)
            .auto_shrink([false, false])
            .show(ui, |ui| {
                let text = if log.is_empty() {
                    "(no output yet)"
                } else {
                    log
                };
                ui.label(RichText::new(text).monospace());
            });
    }
}
