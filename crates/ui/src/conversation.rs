//! The Conversation view: talk a feature through with the architect. Hold the button (or the
//! dictation hotkey while this view is shown) and speak; your words, then the architect's reply
//! as it is written — spoken aloud, and silenced the moment you talk again. Each turn shows how
//! long the answer took (speech end → first words → first sound). "I'm done" (said, or the
//! button) has the architect write the spec, which opens in the Specs view.
//!
//! The app's architect worker fills [`ConversationInfo`]; what the person asks goes back as
//! [`Command::Conversation`].

use egui::RichText;

use crate::Command;
use crate::context::ViewCx;

/// One thing said, as the view shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TurnRow {
    /// The person said it (else the architect).
    pub mine: bool,
    pub text: String,
    /// "first words 1.2 s · first sound 1.5 s", or why it failed.
    pub timing: String,
    pub failed: bool,
}

/// What the view reads each frame.
#[derive(Clone, Copy, Debug)]
pub struct ConversationInfo<'a> {
    pub turns: &'a [TurnRow],
    /// The reply being written.
    pub reply: &'a str,
    /// `ready`, `listening`, `thinking`, `answering` (the reply being written), `speaking`.
    pub state: &'a str,
    /// What the microphone has heard so far in this turn.
    pub hearing: &'a str,
    pub error: Option<&'a str>,
    pub project: &'a str,
    /// The project's directory (its `.sentra/specs`, its `CLAUDE.md`).
    pub dir: &'a str,
    /// The architect's endpoint and model, in words (no key).
    pub architect: &'a str,
    /// How replies are spoken.
    pub speech: &'a str,
    /// The spec this conversation continues, if it does.
    pub continuing: Option<&'a str>,
    /// The spec written, once it is.
    pub spec: Option<&'a str>,
    /// The architect's role (editable).
    pub role: &'a str,
    /// Conversations kept, newest first: (id, title, spec).
    pub past: &'a [(String, String, Option<String>)],
}

#[derive(Clone, Debug, PartialEq)]
pub enum ConversationAction {
    /// The view is shown (`true`): the dictation hotkey talks to the architect; or hidden.
    Shown(bool),
    /// Push to talk: pressed (`true`) or let go.
    Talk(bool),
    /// A typed turn.
    Say(String),
    /// "I'm done": write the spec.
    Done,
    /// Silence the reply's voice.
    Hush,
    /// A new conversation about this project, kept in this directory.
    New {
        project: String,
        dir: String,
    },
    SetRole(String),
    /// Show the spec written in the Specs view.
    OpenSpec(String),
    /// Search the conversations kept.
    Search(String),
    /// Put a kept conversation on the clipboard, as Markdown.
    Copy(String),
}

/// What lasts between frames.
#[derive(Default)]
pub struct ConversationViewState {
    pub typed: String,
    pub project: String,
    pub dir: String,
    pub role: String,
    pub role_open: bool,
    pub search: String,
    holding: bool,
    shown: bool,
}

impl ConversationViewState {
    /// Tells the app the view is no longer shown (the hotkey dictates again).
    pub fn hidden(&mut self, commands: &mut Vec<Command>) {
        if self.shown {
            self.shown = false;
            commands.push(Command::Conversation(ConversationAction::Shown(false)));
        }
    }

    #[allow(clippy::too_many_lines)] // the header, the talk, the controls, read top to bottom
    pub fn ui(&mut self, ui: &mut egui::Ui, cx: &mut ViewCx<'_, '_>) {
        let Some(info) = cx.data.conversation else {
            ui.label("The conversation is not available in this window.");
            return;
        };
        if !self.shown {
            self.shown = true;
            cx.commands
                .push(Command::Conversation(ConversationAction::Shown(true)));
        }
        let theme = cx.theme;
        if self.project.is_empty() {
            info.project.clone_into(&mut self.project);
        }
        if self.dir.is_empty() {
            info.dir.clone_into(&mut self.dir);
        }
        if self.role.is_empty() {
            info.role.clone_into(&mut self.role);
        }
        ui.horizontal_wrapped(|ui| {
            ui.label("Project");
            ui.add(egui::TextEdit::singleline(&mut self.project).desired_width(120.0));
            ui.label("in");
            ui.add(egui::TextEdit::singleline(&mut self.dir).desired_width(220.0))
                .on_hover_text("the project directory: its .sentra/specs keeps the specs");
            if ui
                .button("+ New conversation")
                .on_hover_text("start again about this project")
                .clicked()
            {
                cx.commands
                    .push(Command::Conversation(ConversationAction::New {
                        project: self.project.trim().to_owned(),
                        dir: self.dir.trim().to_owned(),
                    }));
            }
            ui.separator();
            ui.label(
                RichText::new(format!("architect: {}", info.architect)).color(theme.weak_text()),
            );
            ui.label(RichText::new(format!("voice: {}", info.speech)).color(theme.weak_text()));
            ui.toggle_value(&mut self.role_open, "Role…")
                .on_hover_text("what the architect is told it is");
        });
        if let Some(spec) = info.continuing {
            ui.label(
                RichText::new(format!(
                    "Continuing spec {spec}: say what to change, then \"I'm done\"."
                ))
                .color(theme.accent()),
            );
        }
        if self.role_open {
            ui.add(
                egui::TextEdit::multiline(&mut self.role)
                    .desired_rows(3)
                    .desired_width(f32::INFINITY),
            );
            if ui.button("Use this role").clicked() {
                cx.commands
                    .push(Command::Conversation(ConversationAction::SetRole(
                        self.role.clone(),
                    )));
                self.role_open = false;
            }
        }
        if let Some(e) = info.error {
            ui.label(RichText::new(e).color(theme.bad()));
        }
        ui.separator();
        let controls_height = 70.0;
        egui::ScrollArea::vertical()
            .id_salt("conversation")
            .stick_to_bottom(true)
            .auto_shrink([false, false])
            .max_height((ui.available_height() - controls_height).max(80.0))
            .show(ui, |ui| {
                if info.turns.is_empty() && info.reply.is_empty() {
                    ui.label(
                        RichText::new(
                            "Describe a feature: hold 🎤 Talk (or the dictation hotkey) and speak. \
                             The architect asks back; say \"I'm done\" and it writes the spec.",
                        )
                        .color(theme.weak_text()),
                    );
                }
                for t in info.turns {
                    let (who, color) = if t.mine {
                        ("You", theme.accent())
                    } else {
                        ("Architect", theme.good())
                    };
                    ui.label(RichText::new(who).strong().color(color));
                    ui.label(&t.text);
                    if !t.timing.is_empty() {
                        let c = if t.failed {
                            theme.bad()
                        } else {
                            theme.weak_text()
                        };
                        ui.label(RichText::new(&t.timing).small().color(c));
                    }
                    ui.add_space(6.0);
                }
                if !info.hearing.is_empty() {
                    ui.label(RichText::new("You").strong().color(theme.accent()));
                    ui.label(RichText::new(info.hearing).italics());
                }
                if !info.reply.is_empty() {
                    ui.label(RichText::new("Architect").strong().color(theme.good()));
                    ui.label(info.reply);
                }
            });
        ui.separator();
        ui.horizontal(|ui| {
            let talk = ui.add(
                egui::Button::new(RichText::new("🎤 Talk").size(18.0))
                    .selected(self.holding)
                    .sense(egui::Sense::click_and_drag()),
            );
            let talk = talk
                .on_hover_text("hold while you speak (the dictation hotkey does the same here)");
            if talk.is_pointer_button_down_on() && !self.holding {
                self.holding = true;
                cx.commands
                    .push(Command::Conversation(ConversationAction::Talk(true)));
            } else if self.holding && !talk.is_pointer_button_down_on() {
                self.holding = false;
                cx.commands
                    .push(Command::Conversation(ConversationAction::Talk(false)));
            }
            ui.label(RichText::new(info.state).color(theme.weak_text()));
            if matches!(info.state, "answering" | "speaking") && ui.button("⏹ Hush").clicked() {
                cx.commands
                    .push(Command::Conversation(ConversationAction::Hush));
            }
            let field = ui.add(
                egui::TextEdit::singleline(&mut self.typed)
                    .hint_text("or type (Enter sends)")
                    .desired_width(280.0),
            );
            let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if enter && !self.typed.trim().is_empty() {
                cx.commands
                    .push(Command::Conversation(ConversationAction::Say(
                        std::mem::take(&mut self.typed),
                    )));
            }
            if ui
                .button("✔ I'm done")
                .on_hover_text("the architect writes the spec")
                .clicked()
            {
                cx.commands
                    .push(Command::Conversation(ConversationAction::Done));
            }
            if let Some(spec) = info.spec
                && ui.link(format!("📝 spec {spec}")).clicked()
            {
                cx.commands
                    .push(Command::Conversation(ConversationAction::OpenSpec(
                        spec.to_owned(),
                    )));
            }
        });
        ui.collapsing(format!("Past conversations ({})", info.past.len()), |ui| {
            if ui
                .add(egui::TextEdit::singleline(&mut self.search).hint_text("search their words"))
                .changed()
            {
                cx.commands
                    .push(Command::Conversation(ConversationAction::Search(
                        self.search.clone(),
                    )));
            }
            for (id, title, spec) in info.past {
                ui.horizontal(|ui| {
                    ui.label(RichText::new(id).monospace().color(theme.weak_text()));
                    ui.label(title);
                    if ui
                        .small_button("⎘ Markdown")
                        .on_hover_text("copy the conversation as Markdown")
                        .clicked()
                    {
                        cx.commands
                            .push(Command::Conversation(ConversationAction::Copy(id.clone())));
                    }
                    if let Some(s) = spec
                        && ui.link(format!("→ {s}")).clicked()
                    {
                        cx.commands
                            .push(Command::Conversation(ConversationAction::OpenSpec(
                                s.clone(),
                            )));
                    }
                });
            }
        });
    }
}
