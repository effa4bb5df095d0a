//! The Charts view: events per second per domain (stacked) over a selectable window, the error
//! rate, latency and payload-size histograms with their percentiles, and the top types and
//! sources — each of which filters the Stream when clicked. Everything is read from the store's
//! running aggregates; nothing here scans events.

use egui::RichText;
use egui_plot::{Bar, BarChart, FilledArea, Legend, Line, Plot, PlotPoints, VLine};
use hdrhistogram::Histogram;

use super::stream::{format_bytes, format_count};
use super::theme::Theme;
use super::{Command, View};
use crate::core::aggregates::RATE_WINDOW_SECS;
use crate::core::intern::Sym;
use crate::core::store::EventStore;
use crate::core::time::{MICROS_PER_SEC, Micros};

/// Most points per series: long windows are averaged into this many buckets.
const MAX_BUCKETS: usize = 240;
/// Domains drawn on their own; the rest are summed as "other".
const TOP_DOMAINS: usize = 8;
const WINDOWS_SECS: [(u32, &str); 4] = [
    (60, "1 min"),
    (300, "5 min"),
    (900, "15 min"),
    (3600, "1 h"),
];

pub struct ChartsViewState {
    pub window_secs: u32,
}

impl Default for ChartsViewState {
    fn default() -> Self {
        Self { window_secs: 300 }
    }
}

/// Per-bucket rates (events/s) for one series over the window, oldest first.
fn bucketed(at: impl Fn(i64) -> u32, now_sec: i64, window_secs: usize, buckets: usize) -> Vec<f64> {
    let per = window_secs.div_ceil(buckets).max(1);
    (0..buckets)
        .map(|b| {
            // Bucket b covers the seconds [start, start + per), ending at the last whole second.
            let start = now_sec - (window_secs as i64) + (b * per) as i64;
            let sum: u64 = (0..per as i64).map(|s| u64::from(at(start + s))).sum();
            sum as f64 / per as f64
        })
        .collect()
}

impl ChartsViewState {
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        store: &EventStore,
        now_us: Micros,
        theme: Theme,
        commands: &mut Vec<Command>,
    ) {
        ui.horizontal(|ui| {
            ui.label("Window");
            for (secs, label) in WINDOWS_SECS {
                ui.selectable_value(&mut self.window_secs, secs, label);
            }
            ui.label(
                RichText::new(format!(
                    "(per-second counts are kept for the last {} min)",
                    RATE_WINDOW_SECS / 60
                ))
                .weak(),
            );
        });
        egui::ScrollArea::vertical()
            .id_salt("charts-scroll")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                self.rates_ui(ui, store, now_us, theme);
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

    fn rates_ui(&self, ui: &mut egui::Ui, store: &EventStore, now_us: Micros, theme: Theme) {
        let agg = store.aggregates();
        let now_sec = now_us.div_euclid(MICROS_PER_SEC);
        let window = (self.window_secs as usize).min(RATE_WINDOW_SECS);
        let buckets = window.min(MAX_BUCKETS);
        let per = window.div_ceil(buckets).max(1) as f64;
        let xs: Vec<f64> = (0..buckets)
            .map(|b| -(window as f64) + b as f64 * per + per / 2.0)
            .collect();
        let interner = store.interner();
        let mut domains: Vec<(Sym, u64)> = store
            .counts()
            .by_domain
            .iter()
            .map(|(s, n)| (*s, *n))
            .collect();
        domains.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.0.cmp(&b.0.0)));
        let total = bucketed(|s| agg.rate.at(s), now_sec, window, buckets);
        let mut lower = vec![0.0; buckets];
        let mut bands = Vec::new();
        for (sym, _) in domains.iter().take(TOP_DOMAINS) {
            let Some(series) = agg.rate_by_domain.get(sym) else {
                continue;
            };
            let v = bucketed(|s| series.at(s), now_sec, window, buckets);
            let upper: Vec<f64> = lower.iter().zip(&v).map(|(l, x)| l + x).collect();
            let name = interner.resolve(*sym);
            let name = if name.is_empty() { "(none)" } else { name };
            bands.push((
                name.to_owned(),
                theme.domain_color(name),
                lower.clone(),
                upper.clone(),
            ));
            lower = upper;
        }
        if domains.len() > TOP_DOMAINS {
            // Whatever the top domains do not account for.
            let upper: Vec<f64> = lower.iter().zip(&total).map(|(l, t)| l.max(*t)).collect();
            bands.push(("other".to_owned(), theme.weak_text(), lower.clone(), upper));
        }
        let errors = bucketed(|s| agg.error_rate.at(s), now_sec, window, buckets);
        ui.label(RichText::new("Events per second, by domain").strong());
        Plot::new(("rates", window))
            .height(220.0)
            .legend(Legend::default().position(egui_plot::Corner::LeftTop))
            .default_x_bounds(-(window as f64), 0.0)
            .include_y(0.0)
            .allow_scroll(false)
            .allow_drag(false)
            .allow_zoom(false)
            .x_axis_formatter(|m, _| format_ago(m.value))
            .show(ui, |plot| {
                for (name, color, lo, hi) in &bands {
                    plot.add(
                        FilledArea::new(name.as_str(), &xs, lo, hi)
                            .fill_color(color.gamma_multiply(0.55)),
                    );
                }
                let pts: PlotPoints<'_> = xs.iter().zip(&errors).map(|(x, y)| [*x, *y]).collect();
                plot.line(Line::new("errors/s", pts).color(theme.bad()).width(2.0));
            });
    }
}

/// "-5m", "-30s", "now" for an offset in seconds.
fn format_ago(secs: f64) -> String {
    let s = -secs;
    if s.abs() < 0.5 {
        "now".to_owned()
    } else if s < 0.0 {
        String::new() // the future: no label
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
                    .link(name)
                    .on_hover_text("show these in the Stream")
                    .clicked()
                {
                    let value = super::detail::quote(name);
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
    fn buckets_average_the_seconds_they_cover() {
        // 10 events in every second: every bucket reads 10/s whatever its width.
        let v = bucketed(|_| 10, 1000, 3600, 240);
        assert_eq!(v.len(), 240);
        assert!(v.iter().all(|&x| (x - 10.0).abs() < 1e-9));
        // One burst of 60 in one second, 1-minute buckets: 1/s in its bucket.
        let v = bucketed(|s| if s == 1000 - 30 { 60 } else { 0 }, 1000, 3600, 60);
        assert_eq!(v.iter().filter(|&&x| x > 0.0).count(), 1);
        assert!((v.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert_eq!(format_ago(-300.0), "-5m");
        assert_eq!(format_ago(-30.0), "-30s");
    }
}
