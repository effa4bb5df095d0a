//! The Stream view: a virtual-scrolling table over the filtered store. Only the visible rows are
//! laid out, so a million matching events scroll as smoothly as ten.

use std::time::{Duration, Instant};

use candybar_core::filter::{Filter, FilteredView};
use candybar_core::store::{EventStore, Gap};
use candybar_core::text::printable;
use candybar_core::time::Micros;
use egui::{Align, Key, RichText, Sense};
use egui_extras::{Column, TableBuilder};

use crate::Command;
use crate::theme::{ROW_HEIGHT, Theme};
use crate::time_fmt::TimeZoneChoice;

/// Events tested per step of a re-scan; steps repeat until the frame's budget is spent.
const SCAN_STEP_EVENTS: u64 = 131_072;

/// What lasts between frames.
pub struct StreamViewState {
    pub view: FilteredView,
    /// The selected event (by sequence number; it may scroll out of view or be evicted).
    pub selected: Option<u64>,
    /// Keep the newest row in view. Scrolling up turns it off; scrolling to the end or the
    /// toggle turns it back on.
    pub follow: bool,
    /// Bring this row into view on the next frame.
    scroll_to_row: Option<(usize, Align)>,
    /// Rows that fit in the table (for PageUp/PageDown).
    page_rows: usize,
    /// Events tested and left to test by the re-scan in progress (after a filter change).
    pub scan_remaining: u64,
    pub scan_total: u64,
    /// Sequence of the newest row already shown (to measure when new rows become visible).
    pub newest_shown: Option<u64>,
}

impl Default for StreamViewState {
    fn default() -> Self {
        Self {
            view: FilteredView::new(Filter::default()),
            selected: None,
            follow: true,
            scroll_to_row: None,
            page_rows: 20,
            scan_remaining: 0,
            scan_total: 0,
            newest_shown: None,
        }
    }
}

/// Rows of the table: the matching events, with a separator row where each gap was.
pub struct RowMap {
    /// (row index, gap index), in row order.
    gaps: Vec<(usize, usize)>,
    matches: usize,
}

pub enum RowItem {
    Event(u64),
    Gap(usize),
}

impl RowMap {
    #[must_use]
    pub fn new(view: &FilteredView, gaps: &std::collections::VecDeque<Gap>) -> Self {
        let m = view.matches();
        let gaps = gaps
            .iter()
            .enumerate()
            .map(|(k, g)| (m.partition_point(|&s| s < g.before_seq) + k, k))
            .collect();
        Self {
            gaps,
            matches: m.len(),
        }
    }

    #[must_use]
    pub fn total(&self) -> usize {
        self.matches + self.gaps.len()
    }

    #[must_use]
    pub fn item(&self, view: &FilteredView, row: usize) -> Option<RowItem> {
        match self.gaps.binary_search_by_key(&row, |&(r, _)| r) {
            Ok(i) => Some(RowItem::Gap(self.gaps[i].1)),
            Err(before) => view.get(row - before).map(RowItem::Event),
        }
    }

    /// Row of the `idx`-th match.
    #[must_use]
    pub fn row_of_match(&self, idx: usize) -> usize {
        // Gap rows sit at `pos + k`; a match at `idx` comes after every gap with pos <= idx.
        let before = self.gaps.partition_point(|&(r, k)| r - k <= idx);
        idx + before
    }
}

impl StreamViewState {
    /// Replaces the filter; the view re-scans the store over the next frames.
    pub fn set_filter(&mut self, filter: Filter, store: &EventStore) {
        self.view.set_filter(filter);
        self.scan_total = store.len() as u64;
        self.scan_remaining = self.scan_total;
        self.newest_shown = None;
    }

    /// Brings the view up to date within `budget`. Returns true when work is left.
    pub fn update(&mut self, store: &EventStore, now_us: Micros, budget: Duration) -> bool {
        let start = Instant::now();
        loop {
            let p = self.view.update(store, now_us, SCAN_STEP_EVENTS);
            self.scan_remaining = p.remaining;
            if p.remaining == 0 {
                self.scan_total = 0;
                return false;
            }
            if start.elapsed() >= budget {
                return true;
            }
        }
    }

    /// Index (among the matches) of the selected event, if it matches the filter.
    fn selected_index(&self) -> Option<usize> {
        let seq = self.selected?;
        let m = self.view.matches();
        let i = m.partition_point(|&s| s < seq);
        (m.get(i) == Some(&seq)).then_some(i)
    }

    /// Arrow keys, PageUp/PageDown, Home/End, Enter, Escape — when no text field has focus.
    pub fn handle_keys(&mut self, ctx: &egui::Context, commands: &mut Vec<Command>) {
        if ctx.memory(|m| m.focused().is_some()) {
            return;
        }
        let n = self.view.len();
        if n == 0 {
            return;
        }
        let page = self.page_rows.max(1) as isize;
        let (mut step, mut enter, mut escape) = (None::<isize>, false, false);
        ctx.input(|i| {
            for (key, s) in [
                (Key::ArrowDown, 1),
                (Key::ArrowUp, -1),
                (Key::PageDown, page),
                (Key::PageUp, -page),
                (Key::End, isize::MAX / 2),
                (Key::Home, -(isize::MAX / 2)),
            ] {
                if i.key_pressed(key) {
                    step = Some(s);
                }
            }
            enter = i.key_pressed(Key::Enter);
            escape = i.key_pressed(Key::Escape);
        });
        if let Some(step) = step {
            let current = self
                .selected_index()
                .map_or(if step > 0 { -1 } else { n as isize }, |i| i as isize);
            let next = (current.saturating_add(step)).clamp(0, n as isize - 1) as usize;
            if let Some(seq) = self.view.get(next) {
                self.selected = Some(seq);
                self.follow = next + 1 == n;
                self.scroll_to_row = Some((next, Align::Center));
            }
        }
        if enter && self.selected.is_some() {
            commands.push(Command::ToggleDetail);
        }
        if escape {
            commands.push(Command::Escape);
        }
    }

    /// Selects `seq` and scrolls to it if it matches the filter.
    pub fn select(&mut self, seq: u64) {
        self.selected = Some(seq);
        if let Some(i) = self.selected_index() {
            self.scroll_to_row = Some((i, Align::Center));
            self.follow = false;
        }
    }

    pub fn set_follow(&mut self, follow: bool) {
        self.follow = follow;
        if follow && !self.view.is_empty() {
            self.scroll_to_row = Some((usize::MAX, Align::BOTTOM));
        }
    }

    /// Draws the table. Returns the newest event sequence drawn and the receive time of the oldest
    /// event drawn for the first time (newer than [`Self::newest_shown`]), for the latency figure.
    #[allow(clippy::too_many_lines)] // one table: its columns read best side by side
    pub fn table_ui(
        &mut self,
        ui: &mut egui::Ui,
        store: &EventStore,
        theme: Theme,
        tz: TimeZoneChoice,
        commands: &mut Vec<Command>,
    ) -> (Option<u64>, Option<Micros>) {
        let rows = RowMap::new(&self.view, store.gaps());
        let shown_before = self.newest_shown;
        let mut oldest_new_received = None;
        let total = rows.total();
        // Read before the table consumes it: the wheel or a drag moves the view.
        let (wheel_y, dragging) =
            ui.input(|i| (i.smooth_scroll_delta.y, i.pointer.is_decidedly_dragging()));
        let interner = store.interner();
        // Rows from more than one day (history from the journal) say which day.
        let newest = store.end_seq().checked_sub(1).and_then(|s| store.meta(s));
        let days = match (store.oldest_received_us(), newest) {
            (Some(a), Some(b)) => tz.different_days(a, b.received_us),
            _ => false,
        };
        // A click anywhere on a row selects it, so cell text is not selectable.
        ui.style_mut().interaction.selectable_labels = false;
        let mut table = TableBuilder::new(ui)
            .id_salt(if days { "stream-days" } else { "stream" })
            .striped(true)
            .resizable(true)
            .sense(Sense::click())
            .animate_scrolling(false)
            .stick_to_bottom(self.follow)
            .cell_layout(egui::Layout::left_to_right(Align::Center))
            .column(
                Column::initial(if days { 140.0 } else { 96.0 })
                    .at_least(60.0)
                    .clip(true),
            )
            .column(Column::initial(250.0).at_least(80.0).clip(true))
            .column(Column::initial(80.0).at_least(40.0).clip(true))
            .column(Column::initial(140.0).at_least(40.0).clip(true))
            .column(Column::initial(100.0).at_least(40.0).clip(true))
            .column(Column::initial(64.0).at_least(40.0).clip(true))
            .column(Column::remainder().at_least(24.0));
        if let Some((row, align)) = self.scroll_to_row.take() {
            let row = if row == usize::MAX {
                total.saturating_sub(1)
            } else {
                rows.row_of_match(row)
            };
            table = table.scroll_to_row(row, Some(align));
        }
        let mut newest_drawn = None;
        let selected = self.selected;
        let mut clicked = None;
        let mut double_clicked = false;
        let mut visible_rows = 0usize;
        let output = table
            .header(ROW_HEIGHT, |mut header| {
                for title in [
                    "Time", "Type", "Domain", "Source", "Agent", "Size", "Status",
                ] {
                    header.col(|ui| {
                        ui.strong(title);
                    });
                }
            })
            .body(|body| {
                body.rows(ROW_HEIGHT, total, |mut row| {
                    visible_rows += 1;
                    let Some(item) = rows.item(&self.view, row.index()) else {
                        return;
                    };
                    match item {
                        RowItem::Gap(k) => {
                            let Some(gap) = store.gaps().get(k) else {
                                return;
                            };
                            gap_row(&mut row, gap, theme, tz);
                        }
                        RowItem::Event(seq) => {
                            let Some(meta) = store.meta(seq) else {
                                return;
                            };
                            newest_drawn = Some(newest_drawn.map_or(seq, |n: u64| n.max(seq)));
                            if shown_before.is_some_and(|n| seq > n) {
                                oldest_new_received = Some(
                                    oldest_new_received.map_or(meta.received_us, |r: Micros| {
                                        r.min(meta.received_us)
                                    }),
                                );
                            }
                            row.set_selected(selected == Some(seq));
                            // Outside text, shown escaped: a control character cannot forge a row.
                            let domain = printable(interner.resolve(meta.domain));
                            let domain = domain.as_ref();
                            row.col(|ui| {
                                let time = if days {
                                    tz.day_clock(meta.received_us)
                                } else {
                                    tz.clock(meta.received_us)
                                };
                                ui.label(RichText::new(time).monospace().color(theme.weak_text()));
                            });
                            row.col(|ui| {
                                ui.label(printable(interner.resolve(meta.kind)).as_ref());
                            });
                            row.col(|ui| {
                                ui.label(RichText::new(domain).color(theme.domain_color(domain)));
                            });
                            row.col(|ui| {
                                ui.label(printable(interner.resolve(meta.source)).as_ref());
                            });
                            row.col(|ui| {
                                ui.label(printable(interner.resolve(meta.agent)).as_ref());
                            });
                            row.col(|ui| {
                                let mut t = RichText::new(format_bytes(u64::from(meta.size_bytes)))
                                    .monospace();
                                if meta.truncated() {
                                    t = t.color(theme.warn());
                                }
                                ui.label(t).on_hover_text(if meta.truncated() {
                                    "stored truncated to the body cap; the size is the true size"
                                } else {
                                    "body size"
                                });
                            });
                            row.col(|ui| {
                                ui.label(
                                    RichText::new(Theme::status_icon(meta.status))
                                        .color(theme.status_color(meta.status)),
                                )
                                .on_hover_text(meta.status.label());
                            });
                            let response = row.response();
                            if response.clicked() {
                                clicked = Some(seq);
                            }
                            if response.double_clicked() {
                                double_clicked = true;
                            }
                        }
                    }
                });
            });
        self.page_rows = visible_rows.saturating_sub(2).max(1);
        if let Some(seq) = clicked {
            self.selected = Some(seq);
            commands.push(Command::OpenDetail(true));
        }
        if double_clicked {
            commands.push(Command::ToggleDetail);
        }
        // Follow state from where the table is: scrolled to the end means following.
        let at_bottom = output.state.offset.y + output.inner_rect.height()
            >= output.content_size.y - ROW_HEIGHT * 0.5;
        if ui.rect_contains_pointer(output.inner_rect) {
            if wheel_y > 0.0 {
                self.follow = false; // up, away from the newest
            } else if wheel_y < 0.0 || dragging {
                self.follow = at_bottom;
            }
        }
        (newest_drawn, oldest_new_received)
    }
}

fn gap_row(row: &mut egui_extras::TableRow<'_, '_>, gap: &Gap, theme: Theme, tz: TimeZoneChoice) {
    let span = candybar_core::time::format_span(gap.end_us - gap.start_us);
    let what = if gap.reason == candybar_core::source::NOT_RECORDING {
        "nothing recorded"
    } else if gap.lossless {
        "connection interrupted"
    } else {
        "disconnected"
    };
    let text = if gap.lossless {
        format!(
            "⚠ {what} for {span} ({} → {}): {} — the broker kept what was published meanwhile",
            tz.clock(gap.start_us),
            tz.clock(gap.end_us),
            printable(&gap.reason)
        )
    } else {
        format!(
            "⚠ {what} for {span} ({} → {}): {} — events published meanwhile may be missing",
            tz.clock(gap.start_us),
            tz.clock(gap.end_us),
            printable(&gap.reason)
        )
    };
    let tint = |ui: &mut egui::Ui| {
        let rect = ui.max_rect().expand2(egui::vec2(4.0, 1.0));
        ui.painter().rect_filled(rect, 0.0, theme.gap_fill());
    };
    row.col(|ui| {
        tint(ui);
        ui.label(
            RichText::new(tz.clock(gap.start_us))
                .monospace()
                .color(theme.warn()),
        );
    });
    row.col(|ui| {
        tint(ui);
        ui.label(RichText::new(&text).color(theme.warn()))
            .on_hover_text(&text);
    });
    for _ in 0..5 {
        row.col(tint);
    }
}

/// "1.2 KiB", "312 B".
#[must_use]
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// "1,234,567".
#[must_use]
pub fn format_count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candybar_core::event::RawMessage;

    #[test]
    fn rows_interleave_gaps_where_they_happened() {
        let mut store = EventStore::default();
        for i in 0..10 {
            if i == 4 {
                store.record_gap(10, 20, "connection reset", false);
            }
            store.insert(&RawMessage {
                received_us: i,
                routing_key: format!("a.b{i}"),
                body: b"{}".to_vec(),
                ..RawMessage::default()
            });
        }
        let mut view = FilteredView::new(Filter::default());
        view.update(&store, 0, u64::MAX);
        let rows = RowMap::new(&view, store.gaps());
        assert_eq!(rows.total(), 11);
        assert!(matches!(rows.item(&view, 3), Some(RowItem::Event(3))));
        assert!(matches!(rows.item(&view, 4), Some(RowItem::Gap(0))));
        assert!(matches!(rows.item(&view, 5), Some(RowItem::Event(4))));
        assert!(matches!(rows.item(&view, 10), Some(RowItem::Event(9))));
        assert_eq!(rows.row_of_match(3), 3);
        assert_eq!(rows.row_of_match(4), 5);
        assert_eq!(rows.row_of_match(9), 10);
    }

    #[test]
    fn counts_and_bytes_read_well() {
        assert_eq!(format_count(1_234_567), "1,234,567");
        assert_eq!(format_count(12), "12");
        assert_eq!(format_bytes(312), "312 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
    }
}
