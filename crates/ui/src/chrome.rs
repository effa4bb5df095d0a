//! The chrome around the views: the top bar (source, filter, export, theme), the status bar
//! (connection, rate, pause, dictation, registry, store fill, export progress, frame time) and
//! the toasts.

use std::time::Instant;

use candybar_core::export::ExportFormat;
use candybar_core::redact::mask_secrets_in;
use candybar_core::source::SourceState;
use candybar_core::voice::Phase;
use egui::{Align, Key, Layout, RichText};

use crate::connection::state_text;
use crate::context::{DictationInfo, RegistryStatus, ViewContext};
use crate::stream::{format_bytes, format_count};
use crate::theme::ThemeChoice;
use crate::viewer::{ToastLevel, Viewer};
use crate::{Command, View};

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

impl Viewer {
    pub(crate) fn top_bar_ui(&mut self, ui: &mut egui::Ui, cx: &ViewContext<'_>) {
        let theme = self.theme;
        ui.horizontal(|ui| {
            ui.label(RichText::new("🍬 candybar").strong().color(theme.accent()));
            ui.separator();
            let (color, state) = state_text(cx.source.state, theme);
            let source_label = if cx.source.is_demo() {
                RichText::new(" DEMO ")
                    .strong()
                    .color(egui::Color32::BLACK)
                    .background_color(theme.warn())
            } else {
                RichText::new(short_source(cx.source.describe)).strong()
            };
            let r = ui
                .add(egui::Button::new(source_label).frame(false))
                .on_hover_text(format!(
                    "{}\n{state}{}\nclick to change the source",
                    mask_secrets_in(cx.source.describe),
                    cx.source
                        .demo_reason
                        .map(|r| format!("\nshowing the demo feed: {r}"))
                        .unwrap_or_default()
                ));
            if r.clicked() {
                self.push(Command::OpenConnectionDialog);
            }
            crate::theme::dot(ui, color).on_hover_text(&state);
            if ui.button("Connection…").clicked() {
                self.push(Command::OpenConnectionDialog);
            }
            ui.separator();
            ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                let (icon, next) = match theme.choice {
                    ThemeChoice::Dark => ("☀", ThemeChoice::Light),
                    ThemeChoice::Light => ("🌙", ThemeChoice::Dark),
                };
                if ui.button(icon).on_hover_text("switch theme").clicked() {
                    self.push(Command::SetTheme(next));
                }
                ui.menu_button("Export", |ui| {
                    let n = self.stream.view.len();
                    ui.label(
                        RichText::new(format!("the {} events shown", format_count(n as u64)))
                            .weak(),
                    );
                    for f in ExportFormat::ALL {
                        if ui.button(f.label()).clicked() {
                            self.push(Command::ExportFiltered(f));
                            ui.close();
                        }
                    }
                });
                self.filter_ui(ui, cx);
            });
        });
    }

    fn filter_ui(&mut self, ui: &mut egui::Ui, cx: &ViewContext<'_>) {
        let theme = self.theme;
        let shown = self.stream.view.len() as u64;
        let stored = cx.store.len() as u64;
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
            self.push(Command::SetFilter(text));
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

    pub(crate) fn status_bar_ui(&mut self, ui: &mut egui::Ui, cx: &ViewContext<'_>) {
        let theme = self.theme;
        ui.horizontal(|ui| {
            let (color, mut state) = state_text(cx.source.state, theme);
            if let Some(left) = cx.source.retry_in {
                state = format!("{state} — retrying in {:.1} s", left.as_secs_f64());
            }
            if cx.source.ended && !matches!(cx.source.state, SourceState::Finished) {
                state = format!("{state} — the source stopped");
            }
            crate::theme::dot(ui, color);
            let bus = if cx.source.is_demo() { "demo feed" } else { "bus" };
            ui.label(format!("{bus}: {state}"))
                .on_hover_text(mask_secrets_in(cx.source.describe));
            ui.separator();
            ui.label(format!("{:.0} events/s", cx.source.rate_per_sec));
            let (icon, hover) = if cx.paused {
                ("▶", "resume: the events that waited at the source come in")
            } else {
                ("⏸", "pause: new events wait at the source (the broker keeps them)")
            };
            if cx.paused {
                ui.label(RichText::new("paused").color(theme.warn()));
            }
            if ui.small_button(icon).on_hover_text(hover).clicked() {
                self.push(Command::SetPaused(!cx.paused));
            }
            ui.separator();
            if let Some(d) = &cx.dictation {
                self.dictation_status_ui(ui, d);
            }
            match cx.registry_status {
                RegistryStatus::Example => {}
                RegistryStatus::NotConfigured => {
                    ui.label(RichText::new("registry: none").color(theme.weak_text()))
                        .on_hover_text(
                            "no registry.yaml configured: set `registry` in the config, \
                             CANDYBAR_REGISTRY or --registry",
                        );
                    ui.separator();
                }
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
            if let Some(j) = &cx.journal {
                journal_ui(ui, j, theme);
            }
            let store = cx.store;
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
            if let Some(job) = cx.export {
                ui.separator();
                ui.add(
                    egui::ProgressBar::new(job.fraction())
                        .desired_width(120.0)
                        .text(format!(
                            "export {} / {}",
                            format_count(job.done as u64),
                            format_count(job.total as u64)
                        )),
                );
                if ui.small_button("cancel").clicked() {
                    self.push(Command::CancelExport);
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
    fn dictation_status_ui(&mut self, ui: &mut egui::Ui, d: &DictationInfo<'_>) {
        let theme = self.theme;
        let (text, color, hover, pending) = {
            let s = d.status.lock();
            let hover = s.error.clone().unwrap_or_else(|| s.connection.clone());
            let (text, color, hover) = match s.phase {
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
                    format!("🎤 {}", d.hotkey.combo),
                    theme.weak_text(),
                    "press the hotkey to dictate".to_owned(),
                ),
            };
            (text, color, hover, s.pending_deliveries)
        };
        if ui
            .add(egui::Button::new(RichText::new(text).color(color)).frame(false))
            .on_hover_text(hover)
            .clicked()
        {
            self.push(Command::SetView(View::Dictation));
        }
        if pending > 0 {
            ui.label(RichText::new(format!("⏳ {pending}")).color(theme.warn()))
                .on_hover_text("transcripts waiting to be delivered (webhook / bus)");
        }
        ui.separator();
    }

    pub(crate) fn toasts_ui(&mut self, ctx: &egui::Context) {
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
}

/// The journal's word in the status bar: its line, or what to act on in the warning colour.
fn journal_ui(ui: &mut egui::Ui, j: &crate::context::JournalInfo<'_>, theme: crate::theme::Theme) {
    match j.warning {
        Some(w) => ui
            .label(RichText::new(format!("⚠ {w}")).color(theme.warn()))
            .on_hover_text(j.hover),
        None => ui.label(j.line).on_hover_text(j.hover),
    };
    ui.separator();
}

/// The source description for the top bar: "`RabbitMQ` host:port · exchange X", or the first
/// 48 characters of other descriptions.
#[must_use]
pub fn short_source(describe: &str) -> String {
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
