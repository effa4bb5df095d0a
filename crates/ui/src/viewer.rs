//! The window's state between frames and the frame itself: the chrome, the central view, the
//! detail pane and the dialogs, drawn from a [`ViewContext`]. The views push [`Command`]s;
//! [`Viewer::apply`] takes the UI's own and hands the app back the rest.

use std::time::{Duration, Instant};

use candybar_core::filter::Filter;
use candybar_core::redact::mask_secrets_in;
use candybar_core::store::EventStore;
use egui::{Key, KeyboardShortcut, Modifiers, RichText};

use crate::charts::ChartsViewState;
use crate::connection::{ConnectionForm, state_text};
use crate::constellation::ConstellationViewState;
use crate::context::{RegistryStatus, ViewContext, ViewCx};
use crate::detail::DetailState;
use crate::dictation::DictationViewState;
use crate::flow::FlowViewState;
use crate::frame_stats::FrameStats;
use crate::stats::{CardFigures, cards_ui};
use crate::stream::StreamViewState;
use crate::theme::{Theme, ThemeChoice};
use crate::time_fmt::TimeZoneChoice;
use crate::timeline::TimelineState;
use crate::{Command, View};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToastLevel {
    Info,
    Error,
}

pub(crate) struct Toast {
    pub text: String,
    pub level: ToastLevel,
    pub until: Instant,
}

/// What the window keeps between frames (the app keeps the workers).
pub struct Viewer {
    pub view: View,
    pub stream: StreamViewState,
    pub charts: ChartsViewState,
    pub constellation: ConstellationViewState,
    pub flow: FlowViewState,
    pub detail: DetailState,
    pub detail_open: bool,
    /// The filter field's text (may not parse; the view keeps the last good filter).
    pub filter_text: String,
    pub filter_error: Option<(usize, String)>,
    pub theme: Theme,
    pub tz: TimeZoneChoice,
    pub form: ConnectionForm,
    pub dictation_view: DictationViewState,
    pub sessions: crate::sessions::SessionsViewState,
    pub mission: crate::mission::MissionViewState,
    pub conversation: crate::conversation::ConversationViewState,
    pub specs: crate::specs::SpecsViewState,
    pub trace: crate::trace::TraceViewState,
    pub stats: FrameStats,
    pub timeline: TimelineState,
    pub(crate) toasts: Vec<Toast>,
    pub(crate) focus_filter: bool,
    commands: Vec<Command>,
}

impl Viewer {
    #[must_use]
    pub fn new(theme: ThemeChoice, tz: TimeZoneChoice, view: View, started: Instant) -> Self {
        Self {
            view,
            stream: StreamViewState::default(),
            charts: ChartsViewState::default(),
            constellation: ConstellationViewState::default(),
            flow: FlowViewState::new(),
            detail: DetailState::default(),
            detail_open: false,
            filter_text: String::new(),
            filter_error: None,
            theme: Theme::new(theme),
            tz,
            form: ConnectionForm::default(),
            dictation_view: DictationViewState::default(),
            sessions: crate::sessions::SessionsViewState::default(),
            mission: crate::mission::MissionViewState::default(),
            conversation: crate::conversation::ConversationViewState::default(),
            specs: crate::specs::SpecsViewState::default(),
            trace: crate::trace::TraceViewState::default(),
            stats: FrameStats::new(started),
            timeline: TimelineState::default(),
            toasts: Vec::new(),
            focus_filter: false,
            commands: Vec::new(),
        }
    }

    /// Asks for something (the app's workers, or the UI itself) at the end of the frame.
    pub fn push(&mut self, cmd: Command) {
        self.commands.push(cmd);
    }

    /// The commands pushed since the last call, in order.
    pub fn take_commands(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.commands)
    }

    /// Shows a message at the bottom right for a few seconds (errors stay longer).
    pub fn toast(&mut self, ctx: &egui::Context, level: ToastLevel, text: impl Into<String>) {
        let secs = if level == ToastLevel::Error { 8 } else { 3 };
        self.toasts.push(Toast {
            text: text.into(),
            level,
            until: Instant::now() + Duration::from_secs(secs),
        });
        ctx.request_repaint_after(Duration::from_secs(secs));
    }

    /// Sets the filter field; a text that parses replaces the running filter.
    pub fn apply_filter_text(&mut self, text: String, store: &EventStore) {
        match Filter::new(&text) {
            Ok(f) => {
                self.filter_error = None;
                if f.text() != self.stream.view.filter().text() {
                    self.stream.set_filter(f, store);
                }
            }
            Err(e) => self.filter_error = Some((e.column, e.message.clone())),
        }
        self.filter_text = text;
    }

    /// The views now draw `store` (the live one, or the past loaded from the journal): what they
    /// derived from the other is dropped; the filter, the view and its settings stay.
    pub fn store_changed(&mut self, store: &EventStore) {
        let filter = self.stream.view.filter().clone();
        self.stream = StreamViewState::default();
        self.stream.set_filter(filter, store);
        self.charts.invalidate();
        self.flow.invalidate();
        self.constellation = ConstellationViewState::default();
        self.detail = DetailState::default();
        self.trace.rebuild();
    }

    /// Applies a command that only changes the window; returns the others for the app.
    pub fn apply(
        &mut self,
        cmd: Command,
        store: &EventStore,
        ctx: &egui::Context,
    ) -> Option<Command> {
        match cmd {
            Command::SetFilter(text) => self.apply_filter_text(text, store),
            Command::Select(seq) => {
                self.stream.select(seq);
                self.detail_open = true;
            }
            Command::OpenDetail(open) => self.detail_open = open,
            Command::OpenTrace(key) => {
                self.trace.open(&key);
                self.view = View::Traces;
            }
            Command::ToggleDetail => self.detail_open = !self.detail_open,
            Command::Escape => {
                if self.detail_open {
                    self.detail_open = false;
                } else if self.stream.selected.is_some() {
                    self.stream.selected = None;
                } else if !self.filter_text.is_empty() {
                    self.apply_filter_text(String::new(), store);
                }
            }
            Command::Copy(text) => {
                ctx.copy_text(text);
                self.toast(ctx, ToastLevel::Info, "Copied to the clipboard");
            }
            Command::OpenConnectionDialog => self.form.open = true,
            Command::SetView(view) => self.view = view,
            Command::SetTheme(choice) => {
                self.theme = Theme::new(choice);
                ctx.set_visuals(self.theme.visuals());
            }
            other => return Some(other),
        }
        None
    }

    /// Everything a frame draws, into `ui` (the whole window).
    pub fn frame_ui(&mut self, ui: &mut egui::Ui, cx: &ViewContext<'_>) {
        let ctx = ui.ctx().clone();
        if ctx.input_mut(|i| i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, Key::F)))
        {
            self.focus_filter = true;
        }
        // Ctrl+Q quits (closing the window only hides it while a tray shows the icon).
        if ctx.input_mut(|i| i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, Key::Q)))
        {
            self.push(Command::Quit);
        }
        egui::Panel::top("top-bar")
            .frame(
                egui::Frame::side_top_panel(ui.style()).inner_margin(egui::Margin::symmetric(8, 6)),
            )
            .show(ui, |ui| self.top_bar_ui(ui, cx));
        egui::Panel::bottom("status-bar").show(ui, |ui| self.status_bar_ui(ui, cx));
        if let Some(info) = &cx.timeline {
            egui::Panel::bottom("timeline").show(ui, |ui| {
                self.timeline
                    .ui(ui, info, self.theme, self.tz, &mut self.commands);
            });
        }
        egui::Panel::left("nav")
            .resizable(false)
            .exact_size(92.0)
            .show(ui, |ui| self.nav_ui(ui));
        if self.detail_open
            && self.view == View::Stream
            && let Some(seq) = self.stream.selected
        {
            // An evicted event keeps the pane with its message.
            self.detail.load(cx.store, seq);
            let theme = self.theme;
            let tz = self.tz;
            egui::Panel::right("detail")
                .resizable(true)
                .default_size(440.0)
                .min_size(280.0)
                .show(ui, |ui| {
                    self.detail.ui(ui, cx.store, theme, tz, &mut self.commands);
                });
        }
        egui::CentralPanel::default().show(ui, |ui| self.central_ui(ui, cx));
        self.form.window_ui(
            &ctx,
            cx.source.state,
            cx.source.describe,
            self.theme,
            &mut self.commands,
        );
        self.toasts_ui(&ctx);
        self.stream.handle_keys(&ctx, &mut self.commands);
    }

    /// Stats cards, then the chosen view.
    fn central_ui(&mut self, ui: &mut egui::Ui, cx: &ViewContext<'_>) {
        let theme = self.theme;
        let figures = CardFigures::read(cx.store, cx.now_us);
        cards_ui(ui, &figures, theme, &mut self.commands);
        ui.add_space(4.0);
        let no_registry = *cx.registry_status == RegistryStatus::NotConfigured;
        if self.view != View::Conversation {
            // The dictation hotkey dictates again once the conversation is not in view.
            self.conversation.hidden(&mut self.commands);
        }
        let mut vcx = ViewCx {
            data: cx,
            theme,
            tz: self.tz,
            commands: &mut self.commands,
        };
        match self.view {
            View::Charts => self.charts.ui(ui, &mut vcx),
            View::Constellation => self.constellation.ui(ui, &mut vcx),
            View::Flow => {
                if no_registry {
                    no_registry_ui(
                        ui,
                        theme,
                        "Flow shows what traffic reveals; with the registry it also shows the \
                         declared services, their layers and bindings.",
                    );
                }
                self.flow.ui(ui, &mut vcx);
            }
            View::Health => {
                if no_registry {
                    no_registry_ui(
                        ui,
                        theme,
                        "Health lists the registry's services with their state and endpoints.",
                    );
                } else {
                    crate::health::health_ui(ui, &mut vcx);
                }
            }
            View::Dictation => self.dictation_view.ui(ui, &mut vcx),
            View::Sessions => self.sessions.ui(ui, &mut vcx),
            View::Mission => self.mission.ui(ui, &mut vcx),
            View::Conversation => self.conversation.ui(ui, &mut vcx),
            View::Specs => self.specs.ui(ui, &mut vcx),
            View::Traces => self.trace.ui(ui, &mut vcx),
            View::Stream => self.stream_ui(ui, cx),
        }
    }

    fn stream_ui(&mut self, ui: &mut egui::Ui, cx: &ViewContext<'_>) {
        let theme = self.theme;
        ui.horizontal(|ui| {
            let mut follow = self.stream.follow;
            if ui
                .toggle_value(&mut follow, "⬇ Follow")
                .on_hover_text("keep the newest event in view (scrolling up stops it)")
                .changed()
            {
                self.stream.set_follow(follow);
            }
            // Filtering beyond memory: the newest matches from every day the journal keeps.
            if let Some(t) = &cx.timeline
                && t.search.is_none()
                && !self.stream.view.filter().is_all()
                && ui
                    .button("🔍 Whole journal")
                    .on_hover_text(format!(
                        "find the newest events matching `{}` in the whole journal (since {}), \
                         not only in memory",
                        self.stream.view.filter().text(),
                        self.tz.minute_second(t.span.0)
                    ))
                    .clicked()
            {
                self.commands.push(Command::SearchJournal);
            }
            // Paging back beyond memory: the window travels to just before its oldest event.
            if let (Some(t), Some(oldest)) = (&cx.timeline, cx.store.oldest_received_us())
                && t.span.0 < oldest
                && t.loading.is_none()
                && t.search.is_none()
                && ui
                    .button("⏶ Older")
                    .on_hover_text(format!(
                        "the journal holds events from {}: show the ones before {}",
                        self.tz.minute_second(t.span.0),
                        self.tz.minute_second(oldest)
                    ))
                    .clicked()
            {
                self.commands.push(Command::TravelTo(Some(oldest - 1)));
            }
            if let Some((col, msg)) = &self.filter_error {
                ui.label(
                    RichText::new(format!("✖ filter, column {col}: {msg}")).color(theme.bad()),
                );
            }
        });
        if cx.store.is_empty() {
            ui.add_space(40.0);
            ui.vertical_centered(|ui| {
                let (_, state) = state_text(cx.source.state, theme);
                ui.label(RichText::new("Waiting for events…").heading());
                ui.label(format!("{} — {state}", mask_secrets_in(cx.source.describe)));
                if ui.button("Change the source…").clicked() {
                    self.commands.push(Command::OpenConnectionDialog);
                }
            });
            return;
        }
        let (newest, oldest_new_received) =
            self.stream
                .table_ui(ui, cx.store, theme, self.tz, &mut self.commands);
        if let Some(received_us) = oldest_new_received {
            // Timed when this frame has been handed to the display (see `FrameStats`).
            self.stats.rows_drawn(received_us);
        }
        if let Some(seq) = newest
            && self.stream.newest_shown.is_none_or(|n| seq > n)
        {
            self.stream.newest_shown = Some(seq);
        }
    }

    fn nav_ui(&mut self, ui: &mut egui::Ui) {
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
    }
}

/// Where Flow and Health would show the platform's services but no registry is configured.
fn no_registry_ui(ui: &mut egui::Ui, theme: Theme, what: &str) {
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.label(
            RichText::new("No registry configured")
                .strong()
                .color(theme.warn()),
        );
        ui.label(what);
        ui.label(
            "Point candybar at the platform's registry.yaml: `registry = \"/path/to/registry.yaml\"` \
             in ~/.config/candybar/config.toml, CANDYBAR_REGISTRY, or --registry FILE. \
             `candybar registry check FILE` says what candybar reads from it.",
        );
    });
    ui.add_space(6.0);
}
