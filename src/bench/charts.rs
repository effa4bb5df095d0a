//! `candybar bench charts`: the Charts view over a full day of per-second counts — 24 h of
//! traffic in 12 domains with bursts and quiet hours — drawn with its 24 h window at 60 fps of
//! simulated time, in-process (ui + egui's tessellation; the GPU's part is not in it). Every
//! 60th frame a new second starts and the chart's columns are rebuilt from the day's 86,400
//! seconds; those frames are also reported alone. The baseline, in the same run: the same frames
//! with an empty panel.

use std::time::Instant;

use candybar_core::aggregates::RATE_WINDOW_SECS;
use candybar_core::event::RawMessage;
use candybar_core::registry::Registry;
use candybar_core::store::{EventStore, StoreConfig};
use candybar_core::time::{MICROS_PER_SEC, Micros};
use candybar_ui::Command;
use candybar_ui::ViewContext;
use candybar_ui::charts::ChartsViewState;
use candybar_ui::theme::{Theme, ThemeChoice};
use clap::Args;
use serde_json::{Value, json};

use super::flow::{measure_frame, percentiles, view_cx};

#[derive(Args, Debug)]
pub struct ChartsBenchArgs {
    /// Domains publishing
    #[arg(long, default_value_t = 12)]
    domains: usize,
    /// Frames to measure (60 per second of simulated time)
    #[arg(long, default_value_t = 1200)]
    frames: usize,
    /// Chart window in seconds
    #[arg(long, default_value_t = RATE_WINDOW_SECS as u32)]
    window_secs: u32,
}

fn insert(store: &mut EventStore, received_us: Micros, domain: usize, n: u64, error: bool) {
    let kind = format!(
        "d{domain:02}.job.{}",
        if error { "failed" } else { "completed" }
    );
    let body =
        format!(r#"{{"event_id":"c-{n}","event_type":"{kind}","source":{{"app":"svc{domain}"}}}}"#);
    store.insert(&RawMessage {
        received_us,
        routing_key: kind,
        props: None,
        body: body.into_bytes(),
        precut: None,
    });
}

/// A store whose rate series hold a whole day ending at `end_us`: each domain at its own pace
/// (1–3 events a second, a daily swell), a 30-second burst every two hours, errors now and then.
/// The ring keeps only the newest events; the series keep every second.
fn day_of_traffic(domains: usize, end_us: Micros) -> EventStore {
    let mut store = EventStore::new(StoreConfig {
        max_events: 100_000,
        ..StoreConfig::default()
    });
    let start_sec = end_us / MICROS_PER_SEC - RATE_WINDOW_SECS as i64;
    let mut n = 0_u64;
    for s in 0..RATE_WINDOW_SECS as i64 {
        let phase = (s as f64 / RATE_WINDOW_SECS as f64) * std::f64::consts::TAU;
        let swell = 1.0 + phase.sin();
        let burst = s % 7200 < 30;
        for d in 0..domains {
            let per_sec =
                1 + (swell * (d % 3) as f64) as u64 + if burst && d == 0 { 40 } else { 0 };
            for i in 0..per_sec {
                let at = (start_sec + s) * MICROS_PER_SEC + (i as i64) * 1000;
                insert(&mut store, at, d, n, n.is_multiple_of(97));
                n += 1;
            }
        }
    }
    store
}

/// Events arriving per frame while the view is measured: 1,200 a second at 60 fps.
const LIVE_PER_FRAME: usize = 20;

/// Runs the frames; returns per-frame (ui + tessellation ms, whether a new second began): the
/// very first frame, then the frames after a second of warm-up.
fn frames(
    a: &ChartsBenchArgs,
    store: &mut EventStore,
    t0: Micros,
    mut draw: impl FnMut(&mut egui::Ui, &EventStore, Micros),
) -> Vec<(f64, bool)> {
    let ctx = egui::Context::default();
    // egui's own first frame (fonts, the context's set-up) is not the view's: an empty frame
    // first, so the view's first frame measures reading the day.
    let _ = measure_frame(&ctx, 0, |ui| {
        ui.label("warm-up");
    });
    let mut out = Vec::new();
    let mut n = 0_u64;
    for f in 0..a.frames + 60 {
        let now = t0 + (f as i64) * MICROS_PER_SEC / 60;
        let new_second =
            f > 0 && (now / MICROS_PER_SEC) != ((now - MICROS_PER_SEC / 60) / MICROS_PER_SEC);
        // Live traffic keeps arriving, LIVE_PER_FRAME events a frame over the domains (1,200/s at
        // 60 frames a second), outside the measured time.
        for i in 0..LIVE_PER_FRAME {
            insert(store, now, i % a.domains.max(1), n, false);
            n += 1;
        }
        let (ui, tess) = measure_frame(&ctx, f, |ui| draw(ui, store, now));
        let ms = (ui + tess).as_secs_f64() * 1e3;
        if f >= 60 || f == 0 {
            out.push((ms, new_second));
        }
    }
    out
}

pub fn bench_charts(a: &ChartsBenchArgs) -> Value {
    let t0 = 1_767_225_600 * MICROS_PER_SEC;
    let fill = Instant::now();
    let mut store = day_of_traffic(a.domains.max(1), t0);
    let fill_secs = fill.elapsed().as_secs_f64();
    let events = store.aggregates().total;
    let theme = Theme::new(ThemeChoice::Dark);
    let mut view = ChartsViewState::default();
    view.window_secs = a.window_secs;
    let mut commands: Vec<Command> = Vec::new();
    let no_registry = Registry::default();
    let measured = frames(a, &mut store, t0, |ui, store, now| {
        let data = ViewContext::standalone(store, now, &no_registry);
        view.ui(ui, &mut view_cx(&data, theme, &mut commands));
    });
    let base = frames(a, &mut store, t0, |ui, _, _| {
        ui.label("empty");
    });
    // The first frame reads the whole day once (opening the view or changing the window).
    let first_frame_ms = measured.first().map_or(0.0, |(ms, _)| *ms);
    let measured = &measured[1..];
    let base = &base[1..];
    let all: Vec<f64> = measured.iter().map(|(ms, _)| *ms).collect();
    let rebuild: Vec<f64> = measured
        .iter()
        .filter(|(_, r)| *r)
        .map(|(ms, _)| *ms)
        .collect();
    let steady: Vec<f64> = measured
        .iter()
        .filter(|(_, r)| !*r)
        .map(|(ms, _)| *ms)
        .collect();
    json!({
        "bench": "charts",
        "cpus": std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        "window_secs": a.window_secs,
        "seconds_in_series": RATE_WINDOW_SECS,
        "domains": a.domains,
        "events_in_the_day": events,
        "fill_secs": (fill_secs * 10.0).round() / 10.0,
        "frames": all.len(),
        "live_events_per_sec": LIVE_PER_FRAME * 60,
        "first_frame_ms": (first_frame_ms * 1000.0).round() / 1000.0,
        "frame_cpu_ms": percentiles(all),
        "frames_with_rebuild_ms": percentiles(rebuild),
        "frames_without_rebuild_ms": percentiles(steady),
        "baseline_empty_panel_ms": percentiles(base.iter().map(|(ms, _)| *ms).collect()),
    })
}
