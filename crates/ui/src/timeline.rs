//! The timeline under the views (as in the Rerun viewer): the journal's whole span with how many
//! events each stretch holds, what is in memory, and the moment shown. Click or drag to any
//! moment and the Stream, Charts, Flow and the constellation show the platform as it was then;
//! "Live" returns to now.

use candybar_core::time::{Micros, format_span};
use egui::{Color32, CursorIcon, Rect, RichText, Sense, Stroke, pos2, vec2};

use crate::Command;
use crate::context::TimelineInfo;
use crate::theme::Theme;
use crate::time_fmt::TimeZoneChoice;

/// Height of the strip with the event density.
const STRIP_HEIGHT: f32 = 22.0;

/// What the timeline keeps between frames.
#[derive(Default)]
pub struct TimelineState {
    /// A moment being dragged to (not asked for until the drag ends).
    dragging: Option<Micros>,
    /// Where the strip was last drawn (tests click on it).
    pub strip_rect: Option<Rect>,
}

impl TimelineState {
    /// Draws the timeline; a chosen moment (or "Live") goes out as [`Command::TravelTo`].
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        info: &TimelineInfo<'_>,
        theme: Theme,
        tz: TimeZoneChoice,
        commands: &mut Vec<Command>,
    ) {
        let now_us = info.now_us;
        let (oldest, newest) = (info.span.0, info.span.1.max(now_us));
        header_ui(ui, info, theme, tz, commands);
        let width = ui.available_width();
        let (rect, response) = ui.allocate_exact_size(vec2(width, STRIP_HEIGHT), Sense::drag());
        let response = response.on_hover_cursor(CursorIcon::PointingHand);
        self.strip_rect = Some(rect);
        let span = (newest - oldest).max(1);
        let to_x = |t: Micros| rect.left() + rect.width() * ((t - oldest) as f32 / span as f32);
        let to_t = |x: f32| {
            let f = ((x - rect.left()) / rect.width()).clamp(0.0, 1.0);
            oldest + (f64::from(f) * span as f64) as Micros
        };
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 2.0, theme.card_fill());
        // What is in memory now (the live store), a band under the bars.
        if let Some(from) = info.in_memory_from {
            let x = to_x(from.max(oldest));
            painter.rect_filled(
                Rect::from_min_max(pos2(x, rect.bottom() - 3.0), rect.right_bottom()),
                0.0,
                theme.accent().gamma_multiply(0.5),
            );
        }
        // The density, on a square-root scale (a quiet night still shows).
        let max = info.density.iter().copied().max().unwrap_or(0).max(1);
        let n = info.density.len().max(1);
        let slice = info.span.1.saturating_sub(info.span.0).max(1) as f64 / n as f64;
        let bar = theme.accent().gamma_multiply(0.8);
        for (i, &count) in info.density.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let t0 = info.span.0 + (i as f64 * slice) as Micros;
            let t1 = info.span.0 + ((i + 1) as f64 * slice) as Micros;
            let h = (count as f32 / max as f32).sqrt() * (rect.height() - 5.0);
            let (x0, x1) = (to_x(t0), to_x(t1).max(to_x(t0) + 1.0));
            painter.rect_filled(
                Rect::from_min_max(
                    pos2(x0, rect.bottom() - 3.0 - h),
                    pos2(x1, rect.bottom() - 3.0),
                ),
                0.0,
                bar,
            );
        }
        // The moment shown (or being loaded), and the one being dragged to.
        let marker = |t: Micros, color: Color32| {
            let x = to_x(t);
            painter.line_segment(
                [pos2(x, rect.top()), pos2(x, rect.bottom())],
                Stroke::new(2.0, color),
            );
        };
        if let Some(at) = info.loading.map(|(t, _)| t).or(info.at) {
            marker(at, theme.warn());
        }
        if let Some(pos) = response.interact_pointer_pos().or(response.hover_pos()) {
            let t = to_t(pos.x);
            if response.dragged() || response.drag_started() {
                self.dragging = Some(t);
            }
            let tip = format!("{} ({} ago)", tz.minute_second(t), format_span(now_us - t));
            response.clone().on_hover_text_at_pointer(tip);
        }
        if let Some(t) = self.dragging {
            marker(t, theme.overlay_line());
        }
        if response.drag_stopped() || response.clicked() {
            let t = self
                .dragging
                .take()
                .or_else(|| response.interact_pointer_pos().map(|p| to_t(p.x)));
            if let Some(t) = t {
                // The right end is now: back to live.
                let live = to_x(newest) - to_x(t) < 3.0;
                commands.push(Command::TravelTo((!live).then_some(t)));
            }
        }
        if !response.dragged() && !response.drag_stopped() {
            self.dragging = None;
        }
    }
}

/// What the timeline shows (live, the moment shown, or one loading) and the journal's span.
fn header_ui(
    ui: &mut egui::Ui,
    info: &TimelineInfo<'_>,
    theme: Theme,
    tz: TimeZoneChoice,
    commands: &mut Vec<Command>,
) {
    let now_us = info.now_us;
    ui.horizontal(|ui| {
        match (info.search, info.at, info.loading) {
            (Some(s), _, _) if s.running => {
                ui.spinner();
                ui.label(format!(
                    "searching the whole journal for `{}`… {} of {} blocks, {} matches",
                    s.filter,
                    crate::stream::format_count(s.blocks_done as u64),
                    crate::stream::format_count(s.blocks_total as u64),
                    crate::stream::format_count(s.matches as u64)
                ));
            }
            (Some(s), _, _) => {
                ui.label(
                    RichText::new(format!(
                        "🔍 {} {} `{}` in the whole journal",
                        crate::stream::format_count(s.matches as u64),
                        if s.matches == 1 {
                            "event matches"
                        } else {
                            "events match"
                        },
                        s.filter
                    ))
                    .strong()
                    .color(theme.warn()),
                )
                .on_hover_text(
                    "the newest 100,000 matches at most, from every day the journal keeps; its \
                     indexes let the search skip the blocks that cannot match",
                );
            }
            (None, _, Some((at, loaded))) => {
                ui.spinner();
                ui.label(format!(
                    "loading {} from the journal… {} events",
                    tz.minute_second(at),
                    crate::stream::format_count(loaded as u64)
                ));
            }
            (None, Some(at), None) => {
                ui.label(
                    RichText::new(format!("⏸ viewing {}", tz.minute_second(at)))
                        .strong()
                        .color(theme.warn()),
                )
                .on_hover_text(
                    "the views show the platform as it was then, from the journal; new \
                     events keep arriving and are recorded",
                );
                ui.label(
                    RichText::new(format!("{} ago", format_span(now_us - at)))
                        .color(theme.weak_text()),
                );
            }
            (None, None, None) => {
                ui.label(RichText::new("⏺ live").strong().color(theme.good()))
                    .on_hover_text("click or drag on the timeline to see an earlier moment");
            }
        }
        if info.at.is_some() || info.loading.is_some() || info.search.is_some() {
            let live = ui.button("⏵ Live").on_hover_text("back to now");
            if live.clicked() {
                commands.push(Command::TravelTo(None));
            }
        }
        ui.label(
            RichText::new(format!(
                "journal: {} – {}",
                tz.minute_second(info.span.0),
                tz.minute_second(info.span.1)
            ))
            .color(theme.weak_text()),
        );
    });
}
