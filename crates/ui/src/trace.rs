//! The Traces view: one correlation id's (or session's) events as a waterfall — bars from start
//! to end on a time axis, nested, errors red, the critical path in the accent colour, the events
//! behind the selected bar one click away. Opened from the Stream's detail pane and the Sessions
//! view, or by typing an id.
//!
//! Prepare ([`candybar_core::trace`], once per id, from the store's metadata) and draw (only the
//! rows in view) are apart, so a 10,000-event trace draws like a short one.

use candybar_core::time::{Micros, format_span};
use candybar_core::trace::{Span, Trace, events_of};
use egui::{Color32, RichText, Sense, Stroke, pos2, vec2};

use crate::context::ViewCx;
use crate::theme::{ROW_HEIGHT, Theme};
use crate::{Command, View};

/// Width of the names column.
const LABEL_WIDTH: f32 = 320.0;
/// Indentation per nesting level.
const INDENT: f32 = 12.0;

/// What lasts between frames.
#[derive(Default)]
pub struct TraceViewState {
    /// The id the trace is of.
    pub key: String,
    /// The id being typed.
    pub input: String,
    /// Built from the store for `key` (rebuilt on Refresh or a new id).
    pub trace: Option<Trace>,
    /// The selected bar (an index into the trace's spans).
    pub selected: Option<usize>,
    /// Scroll the waterfall to this offset (in points) on the next frame.
    pub scroll_to: Option<f32>,
    stale: bool,
}

impl TraceViewState {
    /// Shows the trace of `key` (built on the next frame).
    pub fn open(&mut self, key: &str) {
        key.clone_into(&mut self.key);
        key.clone_into(&mut self.input);
        self.stale = true;
        self.selected = None;
    }

    /// Builds the trace again from the store (it changed: its sequence numbers mean other events).
    pub fn rebuild(&mut self) {
        self.stale = !self.key.is_empty();
        self.selected = None;
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, cx: &mut ViewCx<'_, '_>) {
        let theme = cx.theme;
        ui.horizontal(|ui| {
            ui.label("Trace of");
            let field = ui.add(
                egui::TextEdit::singleline(&mut self.input)
                    .hint_text("a correlation id, event id or session id")
                    .desired_width(360.0),
            );
            let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if (ui.button("Show").clicked() || enter) && !self.input.trim().is_empty() {
                let key = self.input.trim().to_owned();
                self.open(&key);
            }
            if !self.key.is_empty() && ui.button("↻ Refresh").clicked() {
                self.stale = true;
            }
            if !self.key.is_empty() {
                journal_ui(ui, &self.key, cx);
            }
        });
        if self.stale {
            self.stale = false;
            self.trace = Some(Trace::build(events_of(cx.data.store, &self.key)));
        }
        let Some(trace) = &self.trace else {
            ui.label(
                RichText::new(
                    "Pick an event in the Stream and press \"trace\" in its Related events, or \
                     type an id above.",
                )
                .color(theme.weak_text()),
            );
            return;
        };
        if trace.spans.is_empty() {
            let searched = cx.data.timeline.and_then(|t| t.search).is_some();
            let place = if searched {
                "the journal's matches"
            } else {
                "memory"
            };
            ui.label(format!("No events in {place} carry {:?}.", self.key));
            return;
        }
        ui.horizontal(|ui| {
            ui.label(format!(
                "{} events · {} spans · {}",
                trace.events,
                trace.spans.iter().filter(|s| !s.point).count(),
                format_span(trace.end_us - trace.start_us)
            ));
            if trace.errors > 0 {
                ui.label(RichText::new(format!("{} errors", trace.errors)).color(theme.bad()));
            }
            ui.label(RichText::new("■ critical path").color(theme.accent()));
        });
        ui.separator();
        let selected_height = if self.selected.is_some() { 110.0 } else { 0.0 };
        let height = (ui.available_height() - selected_height).max(80.0);
        let mut clicked = None;
        let mut area = egui::ScrollArea::vertical()
            .id_salt("trace")
            .max_height(height)
            .auto_shrink([false, false]);
        if let Some(y) = self.scroll_to.take() {
            area = area.vertical_scroll_offset(y);
        }
        area.show_rows(ui, ROW_HEIGHT, trace.spans.len(), |ui, rows| {
            for i in rows {
                let Some(span) = trace.spans.get(i) else {
                    break;
                };
                let selected = self.selected == Some(i);
                if row_ui(ui, span, trace, theme, selected) {
                    clicked = Some(i);
                }
            }
        });
        if let Some(i) = clicked {
            self.selected = (self.selected != Some(i)).then_some(i);
        }
        if let Some(span) = self.selected.and_then(|i| trace.spans.get(i)) {
            ui.separator();
            selected_ui(ui, span, cx);
        }
    }
}

/// The filter that finds `key`'s trace: events whose id, correlation or causation is `key`, and
/// those of the session `key` — what [`events_of`] picks from a store.
#[must_use]
pub fn journal_filter(key: &str) -> String {
    let quoted = format!("\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\""));
    format!("corr:{quoted} OR session:{quoted}")
}

/// Where the trace comes from, and a button that reads it from the whole journal (memory holds
/// only the newest events; a trace that began yesterday is partly on disk).
fn journal_ui(ui: &mut egui::Ui, key: &str, cx: &mut ViewCx<'_, '_>) {
    let Some(timeline) = cx.data.timeline else {
        return;
    };
    let filter = journal_filter(key);
    match timeline.search {
        Some(s) if s.filter == filter && s.running => {
            ui.spinner();
            ui.label(format!(
                "reading the journal: {} of {} blocks, {} events",
                s.blocks_done, s.blocks_total, s.matches
            ));
        }
        Some(s) if s.filter == filter => {
            // The timeline's "Live" goes back to the events in memory.
            ui.label(
                RichText::new(format!("from the whole journal ({} events)", s.matches))
                    .color(cx.theme.weak_text()),
            );
        }
        _ => {
            if ui
                .button("🔍 Whole journal")
                .on_hover_text(
                    "read this trace from every day the journal keeps, not only from the \
                     events in memory",
                )
                .clicked()
            {
                cx.commands.push(Command::SetFilter(filter));
                cx.commands.push(Command::SearchJournal);
            }
        }
    }
}

fn bar_color(span: &Span, theme: Theme) -> Color32 {
    if span.error {
        theme.bad()
    } else if span.critical {
        theme.accent()
    } else {
        theme.good()
    }
}

/// A row as assistive technology (and the UI tests) name it.
fn label_for(span: &Span) -> String {
    let name = candybar_core::text::printable(&span.name);
    match &span.agent {
        Some(a) => format!("{name} · {}", candybar_core::text::printable(a)),
        None => name.into_owned(),
    }
}

/// One row: the name (indented by depth) and the bar on the time axis. Whether it was clicked.
fn row_ui(ui: &mut egui::Ui, span: &Span, trace: &Trace, theme: Theme, selected: bool) -> bool {
    let (rect, response) =
        ui.allocate_exact_size(vec2(ui.available_width(), ROW_HEIGHT), Sense::click());
    let painter = ui.painter_at(rect);
    if selected {
        painter.rect_filled(rect, 0.0, ui.visuals().selection.bg_fill);
    } else if response.hovered() {
        painter.rect_filled(rect, 0.0, ui.visuals().faint_bg_color);
    }
    let label = label_for(span);
    let text_color = if span.error {
        theme.bad()
    } else {
        ui.visuals().text_color()
    };
    let x0 = rect.left() + 4.0 + f32::from(span.depth.min(20)) * INDENT;
    painter
        .with_clip_rect(rect.with_max_x(rect.left() + LABEL_WIDTH - 8.0))
        .text(
            pos2(x0, rect.center().y),
            egui::Align2::LEFT_CENTER,
            label,
            egui::FontId::proportional(13.0),
            text_color,
        );
    let axis = rect.with_min_x(rect.left() + LABEL_WIDTH);
    let total = (trace.end_us - trace.start_us).max(1) as f32;
    let x = |t: Micros| axis.left() + (t - trace.start_us) as f32 / total * axis.width();
    let color = bar_color(span, theme);
    if span.point {
        let c = pos2(x(span.start_us), rect.center().y);
        painter.circle_filled(c, 3.5, color);
    } else {
        let left = x(span.start_us);
        let right = x(span.end_us).max(left + 2.0);
        let bar = egui::Rect::from_min_max(
            pos2(left, rect.top() + 4.0),
            pos2(right, rect.bottom() - 4.0),
        );
        if span.open {
            // Still running (or its end never came): outlined, not filled.
            painter.rect_stroke(bar, 2.0, Stroke::new(1.5, color), egui::StrokeKind::Inside);
        } else {
            painter.rect_filled(bar, 2.0, color);
        }
        let words = format_span(span.end_us - span.start_us);
        let inside = bar.width() > 60.0;
        painter.text(
            if inside {
                pos2(bar.left() + 4.0, bar.center().y)
            } else {
                pos2(bar.right() + 4.0, bar.center().y)
            },
            egui::Align2::LEFT_CENTER,
            if span.open {
                format!("{words}…")
            } else {
                words
            },
            egui::FontId::proportional(11.0),
            if inside {
                Color32::BLACK
            } else {
                theme.weak_text()
            },
        );
    }
    let described = label_for(span);
    response.widget_info(|| {
        egui::WidgetInfo::labeled(egui::WidgetType::Button, true, described.clone())
    });
    response
        .on_hover_text(format!(
            "{}{}\n{} → {}{}",
            span.name,
            span.agent
                .as_deref()
                .map_or(String::new(), |a| format!(" ({a})")),
            format_span(span.start_us - trace.start_us),
            format_span(span.end_us - trace.start_us),
            if span.open { " (no end seen)" } else { "" }
        ))
        .clicked()
}

/// The events behind the selected bar, each one click from its detail.
fn selected_ui(ui: &mut egui::Ui, span: &Span, cx: &mut ViewCx<'_, '_>) {
    ui.label(RichText::new(&span.name).strong());
    let seqs = std::iter::once(span.start_seq).chain(span.end_seq);
    for seq in seqs {
        let Some(meta) = cx.data.store.meta(seq) else {
            ui.label(RichText::new("(no longer in memory)").color(cx.theme.weak_text()));
            continue;
        };
        let interner = cx.data.store.interner();
        let text = format!(
            "{}  {}  {}",
            cx.tz.clock(meta.received_us),
            candybar_core::text::printable(interner.resolve(meta.kind)),
            candybar_core::text::printable(interner.resolve(meta.source)),
        );
        if ui
            .link(RichText::new(text).monospace())
            .on_hover_text("open this event in the Stream")
            .clicked()
        {
            cx.commands.push(Command::SetView(View::Stream));
            cx.commands.push(Command::Select(seq));
            cx.commands.push(Command::OpenDetail(true));
        }
    }
}
