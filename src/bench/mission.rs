//! `candybar bench mission`: Mission Control over a day of demo events in a real journal on disk.
//! - the briefing of that day: reading the journal (its indexes rule out blocks without Mission
//!   Control's types) and writing the Markdown, from nothing, as `candybar mission brief` does;
//! - the view's first answers after a start: with no saved model (the whole journal read), and
//!   after a restart (the model the first start saved beside the journal, plus what came after);
//! - CPU per frame of each Mission tab (ui + egui's tessellation, in-process; the GPU's part is
//!   not in it) while 20,000 events a second arrive and are read into the model, its answers
//!   recomputed twice a second — after the journal's day was read into it. The baseline, in the
//!   same run: the same frames and ingest with an empty panel.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use candybar_core::demo::{Demo, DemoConfig};
use candybar_core::registry::Registry;
use candybar_core::store::{EventStore, StoreConfig};
use candybar_core::time::{MICROS_PER_SEC, Micros, now_us};
use candybar_journal::{JournalConfig, JournalWriter};
use candybar_ui::Command;
use candybar_ui::mission::{MissionTab, MissionViewState};
use candybar_ui::theme::{Theme, ThemeChoice};
use clap::Args;
use serde_json::{Value, json};

use super::flow::{measure_frame, percentiles, view_cx};
use crate::app::mission::{BriefingPlan, MissionState};

#[derive(Args, Debug)]
pub struct MissionBenchArgs {
    /// Events in the journal, spread over the last 24 hours
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Events per second arriving while the views draw
    #[arg(long, default_value_t = 20_000.0)]
    rate: f64,
    /// Frames to measure per tab
    #[arg(long, default_value_t = 300)]
    frames: usize,
    /// Where the journal is written [default: a temporary directory, removed after]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

const DAY_US: Micros = 86_400 * MICROS_PER_SEC;

#[allow(clippy::too_many_lines)] // the journal, the briefing, five tabs and the baseline, one report
pub fn bench_mission(a: &MissionBenchArgs) -> anyhow::Result<Value> {
    anyhow::ensure!(a.events >= 1_000, "--events: at least 1,000");
    anyhow::ensure!(
        a.rate.is_finite() && (1.0..=1_000_000.0).contains(&a.rate),
        "--rate: 1 to 1,000,000 events a second"
    );
    let tmp = tempfile::tempdir()?;
    let dir = a.dir.clone().unwrap_or_else(|| tmp.path().join("journal"));
    let end = now_us();
    let start = end - DAY_US;
    let step = DAY_US / a.events as i64;
    let mut demo = Demo::new(DemoConfig::default(), &Registry::example());
    let t = Instant::now();
    {
        let mut w = JournalWriter::open(JournalConfig::new(dir.clone()), "bench mission")
            .map_err(|e| anyhow::anyhow!("cannot write the journal in {}: {e}", dir.display()))?;
        for i in 0..a.events {
            w.append(&demo.next_message(start + i as i64 * step));
        }
        w.flush()
            .map_err(|e| anyhow::anyhow!("cannot write the journal: {e}"))?;
    }
    let write_s = t.elapsed().as_secs_f64();

    // The day's briefing, from nothing: what `candybar mission brief --since 24h` does.
    let t = Instant::now();
    let loaded = crate::mission::load(&dir, end, crate::cli::journal::all_cores(), &mut |_, _| {})
        .map_err(anyhow::Error::msg)?;
    let read_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let brief = candybar_core::mission::brief(&loaded.mission, "bench", start, end, end);
    let brief_ms = t.elapsed().as_secs_f64() * 1e3;
    let total_ms = read_ms + brief_ms;

    // The view's first answers after a start: with no saved model (the journal read from its
    // beginning), then after a restart (the model the first start saved, and what came after).
    let store = EventStore::new(StoreConfig::default());
    let first_view = |store: &EventStore| -> anyhow::Result<(MissionState, f64)> {
        let t = Instant::now();
        let mut state =
            MissionState::start(Some(dir.clone()), BriefingPlan::default(), store, || {});
        let until = Instant::now() + Duration::from_mins(5);
        while state.loading().is_some() {
            anyhow::ensure!(
                Instant::now() < until,
                "the journal took over 5 minutes to read"
            );
            std::thread::sleep(Duration::from_millis(1));
            state.scan(store);
        }
        state.derive(end, &[]);
        Ok((state, t.elapsed().as_secs_f64() * 1e3))
    };
    let snapshot = dir.join("mission-snapshot.json");
    let _ = std::fs::remove_file(&snapshot);
    let (_, cold_ms) = first_view(&store)?;
    // The first start saves the model after its answers are out: wait for it.
    let until = Instant::now() + Duration::from_mins(5);
    while !snapshot.exists() {
        anyhow::ensure!(Instant::now() < until, "the model was not saved");
        std::thread::sleep(Duration::from_millis(10));
    }
    let snapshot_bytes = std::fs::metadata(&snapshot).map_or(0, |m| m.len());
    let (mut state, warm_ms) = first_view(&store)?;
    let mut store = store;
    state.write_brief(end - DAY_US / 2, end);
    let ctx = egui::Context::default();
    let theme = Theme::new(ThemeChoice::Dark);
    let registry = Registry::example();
    let per_frame = (a.rate / 60.0).round() as usize;
    let mut clock = end;
    let mut frame = 0usize;
    let mut commands: Vec<Command> = Vec::new();
    let mut ingest_one = |store: &mut EventStore, clock: &mut Micros| {
        for _ in 0..per_frame {
            *clock += MICROS_PER_SEC / a.rate.round() as i64;
            store.insert(&demo.next_message(*clock));
        }
    };
    let mut tabs = serde_json::Map::new();
    for (name, tab) in [
        ("portfolio", MissionTab::Portfolio),
        ("decisions", MissionTab::Decisions),
        ("drift", MissionTab::Drift),
        ("risks", MissionTab::Risks),
        ("briefing", MissionTab::Briefing),
    ] {
        let mut view = MissionViewState::default();
        view.tab = tab;
        let mut measured = Vec::with_capacity(a.frames);
        for f in 0..a.frames + 30 {
            ingest_one(&mut store, &mut clock);
            let t = Instant::now();
            state.scan(&store);
            state.derive(clock, &[]);
            let model = t.elapsed();
            let mut data = candybar_ui::ViewContext::standalone(&store, clock, &registry);
            data.mission = Some(state.info());
            let (ui, tess) = measure_frame(&ctx, frame, |ui| {
                view.ui(ui, &mut view_cx(&data, theme, &mut commands));
            });
            frame += 1;
            if f >= 30 {
                measured.push((model + ui + tess).as_secs_f64() * 1e3);
            }
        }
        tabs.insert(name.into(), percentiles(measured));
    }
    // The baseline: the same ingest and frames, an empty panel.
    let mut base = Vec::with_capacity(a.frames);
    for f in 0..a.frames + 30 {
        ingest_one(&mut store, &mut clock);
        let (ui, tess) = measure_frame(&ctx, frame, |ui| {
            ui.label("");
        });
        frame += 1;
        if f >= 30 {
            base.push((ui + tess).as_secs_f64() * 1e3);
        }
    }
    let m = &state.mission;
    Ok(json!({
        "bench": "mission",
        "journal_events": a.events,
        "journal_span_hours": 24,
        "journal_write_s": (write_s * 10.0).round() / 10.0,
        "mission_events_in_journal": loaded.events,
        "blocks_read": loaded.blocks_read,
        "blocks_ruled_out": loaded.blocks_skipped,
        "first_view_ms": {
            "no_saved_model": cold_ms.round(),
            "after_a_restart": (warm_ms * 10.0).round() / 10.0,
            "saved_model_bytes": snapshot_bytes,
        },
        "brief_day": {
            "read_journal_ms": read_ms.round(),
            "write_markdown_ms": (brief_ms * 10.0).round() / 10.0,
            "total_ms": total_ms.round(),
            "markdown_bytes": brief.markdown.len(),
            "sources_cited": brief.sources.len(),
        },
        "frames": {
            "arriving_events_per_s": a.rate,
            "what": "per frame: reading the new events into the model + recomputing its answers (every 500 ms) + ui + tessellation",
            "projects": m.projects.len(),
            "decisions_kept": m.decisions.len(),
            "tabs_frame_cpu_ms": tabs,
            "baseline_empty_panel_ms": percentiles(base),
        },
    }))
}
