//! The Charts view: events per second per domain (stacked) over a selectable window, the error
//! rate, latency and payload-size histograms with their percentiles, and the top types and
//! sources — each of which filters the Stream when clicked. Everything is read from the store's
//! running aggregates; nothing here scans events.

use candybar_core::aggregates::{Aggregates, Downsampled, RATE_WINDOW_SECS};
use candybar_core::filter::time_range_term;
use candybar_core::intern::Sym;
use candybar_core::store::EventStore;
use candybar_core::text::printable;
use candybar_core::time::{MICROS_PER_SEC, Micros};
use egui::{Color32, PointerButton, RichText};
use egui_plot::{Bar, BarChart, FilledArea, Line, Plot, PlotPoints, Span, VLine};
use hdrhistogram::Histogram;

use crate::context::{JournalRates, ViewCx};
use crate::stream::{format_bytes, format_count};
use crate::theme::Theme;
use crate::{Command, View};

/// Domains drawn on their own; the rest are summed as "other".
const TOP_DOMAINS: usize = 8;
const WINDOWS_SECS: [(u32, &str); 8] = [
    (60, "1 min"),
    (300, "5 min"),
    (900, "15 min"),
    (3600, "1 h"),
    (6 * 3600, "6 h"),
    (24 * 3600, "24 h"),
    (7 * 86_400, "7 d"),
    (30 * 86_400, "30 d"),
];

/// Whether a window is drawn from the journal's indexes (longer than memory's per-second
/// counts reach) rather than from the store.
#[must_use]
pub fn from_journal(window_secs: u32) -> bool {
    window_secs as usize > RATE_WINDOW_SECS
}
/// Fewest and most columns of the rates chart (it has one per pixel in between).
const MIN_COLUMNS: usize = 60;
const MAX_COLUMNS: usize = 4096;

pub struct ChartsViewState {
    pub window_secs: u32,
    /// The rates chart's columns, rebuilt when a second passes or the window or width changes.
    rates: Option<Rates>,
    /// A brush being dragged on the rates chart: where it started, in seconds since the epoch.
    brush_from_sec: Option<f64>,
    /// Where the rates chart was last drawn (tests drag across it).
    rates_rect: Option<egui::Rect>,
}

impl ChartsViewState {
    /// The next frame recuts the rates (the views now draw another store).
    pub fn invalidate(&mut self) {
        self.rates = None;
        self.brush_from_sec = None;
    }
}

impl Default for ChartsViewState {
    fn default() -> Self {
        Self {
            window_secs: 300,
            rates: None,
            brush_from_sec: None,
            rates_rect: None,
        }
    }
}

/// What the rates chart's columns are cut for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RatesKey {
    window_secs: usize,
    secs_per_column: usize,
}

/// The rates chart, downsampled to about one column per pixel: per column the mean of each
/// domain (stacked, so the bands' areas are event counts), the busiest second of all traffic,
/// and of errors. Columns are kept from second to second ([`Downsampled`]), so a new second
/// reads a few columns, not the day. x is in seconds relative to the end of `end_sec`.
struct Rates {
    key: RatesKey,
    /// The last whole second shown (the current, unfinished one is left out).
    end_sec: i64,
    total: Downsampled,
    errors: Downsampled,
    /// The top domains, bottom band first.
    domains: Vec<(Sym, Downsampled)>,
    xs: Vec<f64>,
    /// (domain, lower edge, upper edge) per band; "other" last when there is one.
    bands: Vec<(String, Vec<f64>, Vec<f64>)>,
    peak: Vec<f64>,
    error_line: Vec<f64>,
}

impl Rates {
    fn new(key: RatesKey) -> Self {
        Self {
            key,
            end_sec: i64::MIN,
            total: Downsampled::new(key.secs_per_column),
            errors: Downsampled::new(key.secs_per_column),
            domains: Vec::new(),
            xs: Vec::new(),
            bands: Vec::new(),
            peak: Vec::new(),
            error_line: Vec::new(),
        }
    }

    fn downsampled(&self) -> bool {
        self.key.secs_per_column > 1
    }

    /// Brings the columns to `end_sec` and recomputes what is drawn from them.
    fn update(&mut self, end_sec: i64, store: &EventStore) {
        let agg: &Aggregates = store.aggregates();
        let start_sec = end_sec - self.key.window_secs as i64 + 1;
        self.end_sec = end_sec;
        self.total.update(&agg.rate, start_sec, end_sec);
        self.errors.update(&agg.error_rate, start_sec, end_sec);
        // The busiest domains with a series of their own, in a stable order.
        let mut top: Vec<(Sym, u64)> = store
            .counts()
            .by_domain
            .iter()
            .filter(|(s, _)| agg.rate_by_domain.contains_key(s))
            .map(|(s, n)| (*s, *n))
            .collect();
        top.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.0.cmp(&b.0.0)));
        top.truncate(TOP_DOMAINS);
        let mut kept = std::mem::take(&mut self.domains);
        for (sym, _) in &top {
            let mut d = match kept.iter().position(|(s, _)| s == sym) {
                Some(i) => kept.swap_remove(i).1,
                None => Downsampled::new(self.key.secs_per_column),
            };
            if let Some(series) = agg.rate_by_domain.get(sym) {
                d.update(series, start_sec, end_sec);
            }
            self.domains.push((*sym, d));
        }
        // What is drawn.
        let origin = (end_sec + 1) as f64;
        self.xs.clear();
        self.peak.clear();
        let mut total = Vec::with_capacity(self.total.len());
        for (at, c) in self.total.columns() {
            self.xs.push(at as f64 + f64::from(c.secs) / 2.0 - origin);
            self.peak.push(f64::from(c.max));
            total.push(c.mean());
        }
        let downsampled = self.downsampled();
        self.error_line.clear();
        self.error_line.extend(self.errors.columns().map(|(_, c)| {
            if downsampled {
                f64::from(c.max)
            } else {
                c.mean()
            }
        }));
        let interner = store.interner();
        let n = self.xs.len();
        let mut lower = vec![0.0; n];
        self.bands.clear();
        for (sym, d) in &self.domains {
            let mut upper = lower.clone();
            for (u, (_, c)) in upper.iter_mut().zip(d.columns()) {
                *u += c.mean();
            }
            let name = interner.resolve(*sym);
            let name = if name.is_empty() { "(none)" } else { name };
            self.bands
                .push((printable(name).into_owned(), lower, upper.clone()));
            lower = upper;
        }
        if store.counts().by_domain.len() > self.domains.len() {
            // Whatever the top domains do not account for.
            let upper: Vec<f64> = lower.iter().zip(&total).map(|(l, t)| l.max(*t)).collect();
            self.bands.push(("other".to_owned(), lower, upper));
        }
    }
}

impl Rates {
    fn plot_ui(&self, plot: &mut egui_plot::PlotUi<'_>, theme: Theme) {
        for (name, lo, hi) in &self.bands {
            let color = band_color(name, theme);
            plot.add(
                FilledArea::new(name.as_str(), &self.xs, lo, hi)
                    .fill_color(color.gamma_multiply(0.55)),
            );
        }
        let line = |ys: &[f64]| -> PlotPoints<'static> {
            self.xs.iter().zip(ys).map(|(x, y)| [*x, *y]).collect()
        };
        if self.downsampled() && !self.peak.is_empty() {
            plot.line(
                Line::new("busiest second", line(&self.peak))
                    .color(theme.overlay_line())
                    .width(1.0),
            );
        }
        plot.line(
            Line::new("errors/s", line(&self.error_line))
                .color(theme.bad())
                .width(2.0),
        );
    }
}

/// Brushing: a primary drag across the plot selects a time range, shown as a span while
/// dragging. Returns the range (seconds since the epoch, either order) when the drag ends.
/// `origin`: the absolute second at x = 0; the plot shows `[-window, 0]`.
fn brush_ui(
    plot: &mut egui_plot::PlotUi<'_>,
    brush_from: &mut Option<f64>,
    origin: f64,
    window: f64,
    theme: Theme,
) -> Option<(f64, f64)> {
    let response = plot.response().clone();
    let to_x = |plot: &egui_plot::PlotUi<'_>, p: egui::Pos2| {
        plot.plot_from_screen(p).x.clamp(-window, 0.0)
    };
    if response.drag_started_by(PointerButton::Primary) {
        let press = plot.ctx().input(|i| i.pointer.press_origin());
        *brush_from = press.map(|p| to_x(plot, p) + origin);
    }
    let pointer_x = plot
        .ctx()
        .input(|i| i.pointer.latest_pos())
        .map(|p| to_x(plot, p));
    let mut brushed = None;
    if let (Some(from), Some(x)) = (*brush_from, pointer_x) {
        let (a, b) = (from - origin, x);
        plot.span(
            Span::new("", a.min(b)..=a.max(b))
                .fill(theme.accent().gamma_multiply(0.2))
                .border_color(theme.accent()),
        );
        if response.drag_stopped() {
            brushed = Some((from, x + origin));
        }
    }
    if !response.dragged() {
        *brush_from = None;
    }
    brushed
}

impl ChartsViewState {
    /// The screen rectangle the rates chart took in the last frame.
    #[must_use]
    pub fn rates_rect(&self) -> Option<egui::Rect> {
        self.rates_rect
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, cx: &mut ViewCx<'_, '_>) {
        let (store, now_us, theme) = (cx.data.store, cx.data.now_us, cx.theme);
        let commands = &mut *cx.commands;
        let journal = cx.data.timeline.is_some();
        if from_journal(self.window_secs) && !journal {
            self.window_secs = 24 * 3600;
        }
        ui.horizontal(|ui| {
            ui.label("Window");
            for (secs, label) in WINDOWS_SECS {
                // Days and weeks come from the journal.
                if journal || !from_journal(secs) {
                    ui.selectable_value(&mut self.window_secs, secs, label);
                }
            }
            ui.label(
                RichText::new("· drag across the chart to see that time in the Stream").weak(),
            );
        });
        egui::ScrollArea::vertical()
            .id_salt("charts-scroll")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                if from_journal(self.window_secs) {
                    self.journal_rates_ui(ui, cx.data.journal_rates, theme, commands);
                } else {
                    self.rates_ui(ui, store, now_us, theme, commands);
                }
                ui.columns(2, |cols| {
                    latency_ui(&mut cols[0], &store.aggregates().latency_us, theme);
                    size_ui(&mut cols[1], &store.aggregates().size_bytes, theme);
                });
                ui.separator();
                ui.columns(2, |cols| {
                    top_ui(
                        &mut cols[0],
                        "Top types",
                        store,
                        &store.counts().by_kind,
                        "",
                        commands,
                    );
                    top_ui(
                        &mut cols[1],
                        "Top sources",
                        store,
                        &store.counts().by_source,
                        "source:",
                        commands,
                    );
                });
            });
    }

    /// The rates over days or weeks, from the journal's block indexes: events per second per
    /// column (the mean), stacked by domain, and the errors.
    fn journal_rates_ui(
        &mut self,
        ui: &mut egui::Ui,
        jr: Option<&JournalRates>,
        theme: Theme,
        commands: &mut Vec<Command>,
    ) {
        let Some(jr) = jr.filter(|j| !j.totals.is_empty()) else {
            ui.label(RichText::new("Events per second, by domain").strong());
            ui.label("reading the journal…");
            return;
        };
        let window = (jr.end_us - jr.start_us).max(1) as f64 / 1e6;
        let column_secs = (jr.column_us as f64 / 1e6).max(1e-6);
        let n = jr.totals.len();
        let xs: Vec<f64> = (0..n)
            .map(|i| (i as f64 + 0.5) * column_secs - window)
            .collect();
        // Busiest at the bottom, "other" on top, as the store's chart stacks them.
        let mut lower = vec![0.0; n];
        let mut stacked = Vec::with_capacity(jr.bands.len());
        for (name, counts) in &jr.bands {
            let upper: Vec<f64> = lower
                .iter()
                .zip(counts)
                .map(|(l, c)| l + c / column_secs)
                .collect();
            stacked.push((printable(name).into_owned(), lower, upper.clone()));
            lower = upper;
        }
        let key = RatesKey {
            window_secs: window as usize,
            secs_per_column: column_secs.ceil() as usize,
        };
        let mut rates = Rates::new(key);
        rates.xs = xs;
        rates.bands = stacked;
        rates.error_line = jr.errors.iter().map(|e| e / column_secs).collect();
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new("Events per second, by domain").strong());
            ui.add_space(12.0);
            legend_ui(ui, &rates, theme, commands);
        });
        let origin = jr.end_us as f64 / 1e6;
        let brush_from = &mut self.brush_from_sec;
        let response = rates_plot(("journal-rates", key.window_secs), window).show(ui, |plot| {
            rates.plot_ui(plot, theme);
            brush_ui(plot, brush_from, origin, window, theme)
        });
        self.rates_rect = Some(response.response.rect);
        if let Some((a, b)) = response.inner {
            self.brush_from_sec = None;
            let (from, to) = (a.min(b), a.max(b));
            if to - from >= column_secs {
                // Older than memory holds: the window travels to the end of the brush, and the
                // Stream shows the range.
                let from_us = (from.floor() as i64) * MICROS_PER_SEC;
                let to_us = (to.ceil() as i64) * MICROS_PER_SEC;
                commands.push(Command::TravelTo(Some(to_us)));
                commands.push(Command::SetFilter(time_range_term(from_us, to_us)));
                commands.push(Command::SetView(View::Stream));
            }
        }
        ui.label(
            RichText::new(format!(
                "{} per column, from the journal's block indexes: bands show the mean per second",
                format_secs(column_secs)
            ))
            .weak()
            .small(),
        );
    }

    fn rates_ui(
        &mut self,
        ui: &mut egui::Ui,
        store: &EventStore,
        now_us: Micros,
        theme: Theme,
        commands: &mut Vec<Command>,
    ) {
        let window = (self.window_secs as usize).clamp(1, RATE_WINDOW_SECS);
        let pixels = (ui.available_width() * ui.ctx().pixels_per_point()).round() as usize;
        let columns = pixels.clamp(MIN_COLUMNS, MAX_COLUMNS);
        let key = RatesKey {
            window_secs: window,
            secs_per_column: window.div_ceil(columns),
        };
        let end_sec = now_us.div_euclid(MICROS_PER_SEC) - 1;
        let rates = match &mut self.rates {
            Some(r) if r.key == key => r,
            slot => slot.insert(Rates::new(key)),
        };
        if rates.end_sec != end_sec {
            rates.update(end_sec, store);
        }
        let rates = &*rates;
        let downsampled = rates.downsampled();
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new("Events per second, by domain").strong());
            ui.add_space(12.0);
            legend_ui(ui, rates, theme, commands);
        });
        // Seconds since the epoch at x = 0.
        let origin = (end_sec + 1) as f64;
        let brush_from = &mut self.brush_from_sec;
        let response = rates_plot(("rates", window), window as f64).show(ui, |plot| {
            rates.plot_ui(plot, theme);
            brush_ui(plot, brush_from, origin, window as f64, theme)
        });
        let brushed = response.inner;
        self.rates_rect = Some(response.response.rect);
        if let Some((a, b)) = brushed {
            self.brush_from_sec = None;
            let (from, to) = (a.min(b), a.max(b));
            // A click, not a drag: less than one column wide.
            if to - from >= key.secs_per_column as f64 {
                let from_us = (from.floor() as i64) * MICROS_PER_SEC;
                let to_us = (to.ceil() as i64) * MICROS_PER_SEC;
                commands.push(Command::SetFilter(time_range_term(from_us, to_us)));
                commands.push(Command::SetView(View::Stream));
            }
        }
        let other_note = if store.aggregates().rate_by_domain.len() < store.counts().by_domain.len()
        {
            " · domains past the first 32 seen are counted in \"other\""
        } else {
            ""
        };
        let resolution = if downsampled {
            format!(
                "{} per column: bands show the mean, the lines the busiest second{other_note}",
                format_secs(key.secs_per_column as f64)
            )
        } else {
            format!("one column per second{other_note}")
        };
        ui.label(RichText::new(resolution).weak().small());
    }
}

/// The rates chart's frame: `window_secs` back to now, fixed (brushing replaces dragging).
fn rates_plot<'a>(id: impl egui::AsId, window_secs: f64) -> Plot<'a> {
    Plot::new(id)
        .height(220.0)
        .default_x_bounds(-window_secs, 0.0)
        .include_y(0.0)
        .allow_scroll(false)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_boxed_zoom(false)
        .allow_double_click_reset(false)
        .x_axis_formatter(|m, _| format_ago(m.value))
}

/// The rates chart's legend, beside its title rather than over the chart (where it hid the
/// oldest seconds): a swatch and the name of each band, top of the stack first, then the lines.
/// A domain's name filters the Stream to it, as the Domains card does.
fn legend_ui(ui: &mut egui::Ui, rates: &Rates, theme: Theme, commands: &mut Vec<Command>) {
    let swatch = |ui: &mut egui::Ui, color: Color32, line: bool| {
        let size = egui::vec2(12.0, 12.0);
        let (rect, _) = ui.allocate_exact_size(size, egui::Sense::hover());
        if line {
            let y = rect.center().y;
            ui.painter().line_segment(
                [egui::pos2(rect.left(), y), egui::pos2(rect.right(), y)],
                egui::Stroke::new(2.0, color),
            );
        } else {
            ui.painter().rect_filled(rect.shrink(1.0), 2.0, color);
        }
    };
    for (name, _, _) in rates.bands.iter().rev() {
        let other = name == "other";
        swatch(ui, band_color(name, theme).gamma_multiply(0.8), false);
        if other {
            ui.label(name.as_str())
                .on_hover_text("domains past the first 32 seen");
        } else if ui
            .add(egui::Button::new(name.as_str()).frame(false))
            .on_hover_ui(|ui| {
                ui.label(format!("show only domain:{name} in the Stream"));
            })
            .clicked()
        {
            commands.push(Command::SetFilter(format!("domain:{name}")));
            commands.push(Command::SetView(View::Stream));
        }
        ui.add_space(6.0);
    }
    if rates.downsampled() && !rates.peak.is_empty() {
        swatch(ui, theme.overlay_line(), true);
        ui.label("busiest second");
        ui.add_space(6.0);
    }
    swatch(ui, theme.bad(), true);
    ui.label("errors/s");
}

/// A band's colour: its domain's, or grey for the domains counted together as "other".
fn band_color(name: &str, theme: Theme) -> Color32 {
    if name == "other" {
        theme.weak_text()
    } else {
        theme.domain_color(name)
    }
}

/// "1 s", "86 s", "3.6 min".
fn format_secs(secs: f64) -> String {
    if secs < 100.0 {
        format!("{secs:.0} s")
    } else if secs < 5400.0 {
        format!("{:.1} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

/// "-5m", "-30s", "now" for an offset in seconds.
fn format_ago(secs: f64) -> String {
    let s = -secs;
    if s.abs() < 0.5 {
        "now".to_owned()
    } else if s < 0.0 {
        String::new() // the future: no label
    } else if s >= 2.0 * 86_400.0 {
        format!("-{:.0}d", s / 86_400.0)
    } else if s >= 2.0 * 3600.0 {
        format!("-{:.0}h", s / 3600.0)
    } else if s >= 120.0 {
        format!("-{:.0}m", s / 60.0)
    } else {
        format!("-{s:.0}s")
    }
}

/// Bars of a histogram on a log10 axis: one bar per power-of-two bucket with counts.
fn log_bars(h: &Histogram<u64>, unit: f64) -> Vec<Bar> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_log(1, 2.0)
        .filter(|v| v.count_since_last_iteration() > 0)
        .map(|v| {
            let x = ((v.value_iterated_to() as f64).max(1.0) / unit).log10();
            Bar::new(x, v.count_since_last_iteration() as f64).width(0.12)
        })
        .collect()
}

fn percentile_lines(plot: &mut egui_plot::PlotUi<'_>, h: &Histogram<u64>, unit: f64, theme: Theme) {
    for (q, name) in [(0.5, "p50"), (0.95, "p95"), (0.99, "p99")] {
        let v = h.value_at_quantile(q) as f64 / unit;
        if v > 0.0 {
            plot.vline(VLine::new(name, v.log10()).color(theme.warn()));
        }
    }
}

fn latency_ui(ui: &mut egui::Ui, h: &Histogram<u64>, theme: Theme) {
    let ms = 1000.0;
    ui.label(RichText::new("Latency (receive − publish)").strong());
    if h.is_empty() {
        ui.label(RichText::new("no events with a publish time yet").weak());
        return;
    }
    ui.label(format!(
        "p50 {:.1} ms · p95 {:.1} ms · p99 {:.1} ms",
        h.value_at_quantile(0.5) as f64 / ms,
        h.value_at_quantile(0.95) as f64 / ms,
        h.value_at_quantile(0.99) as f64 / ms
    ));
    let bars = log_bars(h, ms);
    Plot::new("latency")
        .height(160.0)
        .allow_scroll(false)
        .include_y(0.0)
        .x_axis_formatter(|m, _| format!("{} ms", trim_float(10f64.powf(m.value))))
        .show(ui, |plot| {
            plot.bar_chart(BarChart::new("events", bars).color(theme.accent()));
            percentile_lines(plot, h, ms, theme);
        });
}

fn size_ui(ui: &mut egui::Ui, h: &Histogram<u64>, theme: Theme) {
    ui.label(RichText::new("Payload size").strong());
    if h.is_empty() {
        ui.label(RichText::new("no events yet").weak());
        return;
    }
    ui.label(format!(
        "p50 {} · p95 {} · p99 {}",
        format_bytes(h.value_at_quantile(0.5)),
        format_bytes(h.value_at_quantile(0.95)),
        format_bytes(h.value_at_quantile(0.99))
    ));
    let bars = log_bars(h, 1.0);
    Plot::new("sizes")
        .height(160.0)
        .allow_scroll(false)
        .include_y(0.0)
        .x_axis_formatter(|m, _| format_bytes(10f64.powf(m.value) as u64))
        .show(ui, |plot| {
            plot.bar_chart(BarChart::new("events", bars).color(theme.accent()));
            percentile_lines(plot, h, 1.0, theme);
        });
}

fn trim_float(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

/// The ten most frequent values of a count map; a click filters the Stream to one.
fn top_ui(
    ui: &mut egui::Ui,
    title: &str,
    store: &EventStore,
    counts: &rustc_hash::FxHashMap<Sym, u64>,
    filter_prefix: &str,
    commands: &mut Vec<Command>,
) {
    ui.label(RichText::new(title).strong());
    let mut top: Vec<(Sym, u64)> = counts
        .iter()
        .filter(|(s, _)| !s.is_none())
        .map(|(s, n)| (*s, *n))
        .collect();
    top.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.0.cmp(&b.0.0)));
    let interner = store.interner();
    egui::Grid::new(title)
        .num_columns(2)
        .striped(true)
        .show(ui, |ui| {
            for (sym, n) in top.into_iter().take(10) {
                let name = interner.resolve(sym);
                if ui
                    .link(printable(name).as_ref())
                    .on_hover_text("show these in the Stream")
                    .clicked()
                {
                    let value = crate::detail::quote(name);
                    commands.push(Command::SetFilter(format!("{filter_prefix}{value}")));
                    commands.push(Command::SetView(View::Stream));
                }
                ui.label(RichText::new(format_count(n)).monospace());
                ui.end_row();
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_labels_read_as_time_ago() {
        assert_eq!(format_ago(-300.0), "-5m");
        assert_eq!(format_ago(-30.0), "-30s");
        assert_eq!(format_ago(-6.0 * 3600.0), "-6h");
        assert_eq!(format_ago(0.2), "now");
        assert_eq!(format_secs(86.4), "86 s");
        assert_eq!(format_secs(216.0), "3.6 min");
    }
}
