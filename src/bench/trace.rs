//! `candybar bench trace`: the Traces view's waterfall of one correlation id with 10,000 events
//! (5,000 start/end pairs of nested invocations, tool calls and LLM requests, some failing, in a
//! store of 200,000 events) — building the trace from the store once, then CPU per frame (ui +
//! egui's tessellation, in-process; the GPU's part is not in it) while it scrolls. The
//! baseline, in the same run: the same frames with an empty panel.

use std::time::Instant;

use candybar_core::event::RawMessage;
use candybar_core::registry::Registry;
use candybar_core::store::{EventStore, StoreConfig};
use candybar_core::time::{MICROS_PER_SEC, Micros};
use candybar_ui::Command;
use candybar_ui::ViewContext;
use candybar_ui::theme::{Theme, ThemeChoice};
use candybar_ui::trace::TraceViewState;
use clap::Args;
use serde_json::{Value, json};

use super::flow::{measure_frame, percentiles, view_cx};

#[derive(Args, Debug)]
pub struct TraceBenchArgs {
    /// Events in the trace
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// Other events in the store around it
    #[arg(long, default_value_t = 190_000)]
    others: usize,
    /// Frames to measure
    #[arg(long, default_value_t = 600)]
    frames: usize,
}

const CORR: &str = "trace-bench-7f3a";

fn event(store: &mut EventStore, n: usize, at_us: Micros, kind: &str, agent: &str, corr: &str) {
    let body = format!(
        r#"{{"event_id":"b-{n}","event_type":"{kind}","correlation_ids":["{corr}"],"agent_context":{{"name":"{agent}"}},"payload":{{}}}}"#
    );
    store.insert(&RawMessage {
        received_us: at_us,
        routing_key: kind.to_owned(),
        props: None,
        body: body.into_bytes(),
        precut: None,
    });
}

/// A store with the trace's `events` among `others`: invocations of 8 agents, each holding
/// tool calls and LLM requests, one in 50 failing.
fn fill(a: &TraceBenchArgs, t0: Micros) -> EventStore {
    let mut store = EventStore::new(StoreConfig {
        max_events: a.events + a.others + 4 * candybar_core::store::BLOCK_EVENTS,
        ..StoreConfig::default()
    });
    let ops = ["agent.invocation", "agent.tool", "llm.request"];
    let others_per_pair = a.others / (a.events / 2).max(1);
    let mut n = 0;
    let mut at = t0;
    for pair in 0..a.events / 2 {
        let op = ops[pair % 3];
        let agent = format!("agent-{}", pair % 8);
        let (start, end) = match op {
            "agent.tool" => ("requested", "completed"),
            _ => (
                "started",
                if pair % 50 == 49 {
                    "failed"
                } else {
                    "completed"
                },
            ),
        };
        event(&mut store, n, at, &format!("{op}.{start}"), &agent, CORR);
        n += 1;
        for _ in 0..others_per_pair {
            event(
                &mut store,
                n,
                at,
                "other.thing.happened",
                "someone",
                "elsewhere",
            );
            n += 1;
        }
        let took = MICROS_PER_SEC / 20 * (1 + (pair % 7) as i64);
        event(
            &mut store,
            n,
            at + took,
            &format!("{op}.{end}"),
            &agent,
            CORR,
        );
        n += 1;
        at += MICROS_PER_SEC / 50;
    }
    store
}

pub fn bench_trace(a: &TraceBenchArgs) -> Value {
    let t0 = 1_767_225_600 * MICROS_PER_SEC;
    let store = fill(a, t0);
    let theme = Theme::new(ThemeChoice::Dark);
    let registry = Registry::default();
    let mut commands: Vec<Command> = Vec::new();
    let ctx = egui::Context::default();
    let _ = measure_frame(&ctx, 0, |ui| {
        ui.label("warm-up");
    });
    let mut view = TraceViewState::default();
    view.open(CORR);
    // The first frame builds the trace from the store.
    let data = ViewContext::standalone(&store, t0, &registry);
    let t = Instant::now();
    let (ui, tess) = measure_frame(&ctx, 1, |ui| {
        view.ui(ui, &mut view_cx(&data, theme, &mut commands));
    });
    let first_ms = (ui + tess).as_secs_f64() * 1e3;
    let build_and_first_ms = t.elapsed().as_secs_f64() * 1e3;
    let spans = view.trace.as_ref().map_or(0, |t| t.spans.len());
    let events = view.trace.as_ref().map_or(0, |t| t.events);
    let mut measured = Vec::with_capacity(a.frames);
    for f in 0..a.frames {
        // Scrolling through it: 40 points a frame, down then up again.
        let step = (f % 400) as f32;
        view.scroll_to = Some(40.0 * if step < 200.0 { step } else { 400.0 - step });
        let (ui, tess) = measure_frame(&ctx, f + 2, |ui| {
            view.ui(ui, &mut view_cx(&data, theme, &mut commands));
        });
        measured.push((ui + tess).as_secs_f64() * 1e3);
    }
    let mut base = Vec::with_capacity(a.frames);
    for f in 0..a.frames {
        let (ui, tess) = measure_frame(&ctx, f + 2 + a.frames, |ui| {
            ui.label("empty");
        });
        base.push((ui + tess).as_secs_f64() * 1e3);
    }
    json!({
        "bench": "trace",
        "events_in_store": store.len(),
        "trace_events": events,
        "trace_rows": spans,
        "first_frame_with_build_ms": (first_ms * 1000.0).round() / 1000.0,
        "first_frame_wall_ms": (build_and_first_ms * 1000.0).round() / 1000.0,
        "frame_cpu_ms": percentiles(measured),
        "baseline_empty_panel_ms": percentiles(base),
    })
}
