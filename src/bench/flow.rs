//! `candybar bench flow`: the Flow view's cost per frame on a big platform — a generated
//! registry (200 services in 5 layers, 1,000 declared edges) with traffic on every producer at
//! 20,000 events/s — measured in-process: ingest into the store, then the view's ui pass and
//! egui's tessellation, frame after frame at 60 fps of simulated time. The GPU's part is not in
//! it (`bench window` measures the real window). The baseline, in the same run: the same frames
//! and ingest with an empty panel, so the difference is the view's own.

use std::fmt::Write as _;
use std::time::Instant;

use candybar_core::event::RawMessage;
use candybar_core::registry::Registry;
use candybar_core::store::{EventStore, StoreConfig};
use candybar_core::time::MICROS_PER_SEC;
use candybar_ui::Command;
use candybar_ui::flow::FlowViewState;
use candybar_ui::theme::{Theme, ThemeChoice};
use clap::Args;
use serde_json::{Value, json};

#[derive(Args, Debug)]
pub struct FlowBenchArgs {
    /// Services in the generated registry (half produce, half consume)
    #[arg(long, default_value_t = 200)]
    services: usize,
    /// Types each consumer binds, each from a different producer (edges = consumers × this)
    #[arg(long, default_value_t = 10)]
    bindings: usize,
    /// Events per second over all producers
    #[arg(long, default_value_t = 20_000.0)]
    rate: f64,
    /// Frames to measure (60 per second of simulated time)
    #[arg(long, default_value_t = 1200)]
    frames: usize,
}

/// Producers `p000`…, each publishing five types; consumers `c000`…, each binding `bindings`
/// types of different producers; five layers.
fn registry_yaml(services: usize, bindings: usize) -> String {
    let producers = (services / 2).max(1);
    let consumers = services.saturating_sub(producers).max(1);
    let mut y = String::from("exchange: { name: bench }\nservices:\n");
    for p in 0..producers {
        let types: Vec<String> = (0..5).map(|t| format!("\"p{p:03}.t{t}.done\"")).collect();
        let _ = writeln!(
            y,
            "  p{p:03}: {{ type: event-producer, produces: [{}] }}",
            types.join(", ")
        );
    }
    for c in 0..consumers {
        let keys: Vec<String> = (0..bindings)
            .map(|k| {
                let p = (c * 7 + k * 13) % producers;
                format!("\"p{p:03}.t{}.done\"", k % 5)
            })
            .collect();
        let status = if c % 10 == 9 { "planned" } else { "active" };
        let _ = writeln!(
            y,
            "  c{c:03}: {{ type: event-consumer, status: {status}, routing_keys: [{}] }}",
            keys.join(", ")
        );
    }
    y.push_str("topology:\n");
    let layers = 5;
    for l in 0..layers {
        let members: Vec<String> = (0..producers)
            .map(|p| format!("p{p:03}"))
            .chain((0..consumers).map(|c| format!("c{c:03}")))
            .enumerate()
            .filter(|(i, _)| i % layers == l)
            .map(|(_, k)| k)
            .collect();
        let _ = writeln!(y, "  layer{l}: [{}]", members.join(", "));
    }
    y
}

/// A view's frame over `data` (benchmarks draw one view at a time).
pub(super) fn view_cx<'f, 'a>(
    data: &'f candybar_ui::ViewContext<'a>,
    theme: Theme,
    commands: &'f mut Vec<Command>,
) -> candybar_ui::context::ViewCx<'f, 'a> {
    candybar_ui::context::ViewCx {
        data,
        theme,
        tz: candybar_ui::time_fmt::TimeZoneChoice::Utc,
        commands,
    }
}

pub(super) fn percentiles(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        (v.get(i).copied().unwrap_or(0.0) * 1000.0).round() / 1000.0
    };
    json!({"p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "max": at(1.0)})
}

/// One frame of `draw` in a 1280 × 800 central panel, the `f`-th at 60 fps: the time of egui's
/// ui pass and of tessellating its shapes.
pub(super) fn measure_frame(
    ctx: &egui::Context,
    f: usize,
    mut draw: impl FnMut(&mut egui::Ui),
) -> (std::time::Duration, std::time::Duration) {
    let raw = egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(1280.0, 800.0),
        )),
        time: Some(f as f64 / 60.0),
        ..Default::default()
    };
    let t = Instant::now();
    let out = ctx.run_ui(raw, |ui| {
        egui::CentralPanel::default().show(ui, &mut draw);
    });
    let ui = t.elapsed();
    let t = Instant::now();
    let prims = ctx.tessellate(out.shapes, out.pixels_per_point);
    let tess = t.elapsed();
    std::hint::black_box(prims);
    (ui, tess)
}

/// Runs `frames` frames of `draw` over a store fed at `rate`; returns (ui ms, tessellate ms,
/// ingest ms), one per measured frame.
fn frames(
    a: &FlowBenchArgs,
    producers: usize,
    mut draw: impl FnMut(&mut egui::Ui, &EventStore, i64),
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let ctx = egui::Context::default();
    let mut store = EventStore::new(StoreConfig::default());
    let t0 = 1_767_225_600 * MICROS_PER_SEC;
    let per_frame = (a.rate / 60.0).round() as usize;
    let (mut ui_ms, mut tess_ms, mut ingest_ms) = (Vec::new(), Vec::new(), Vec::new());
    let mut n = 0_usize;
    for f in 0..a.frames + 60 {
        let now = t0 + (f as i64) * MICROS_PER_SEC / 60;
        let t = Instant::now();
        for _ in 0..per_frame {
            let p = n % producers;
            let error = n.is_multiple_of(37);
            let ty = (n / producers) % 5;
            let kind = format!("p{p:03}.t{ty}.{}", if error { "failed" } else { "done" });
            let body = format!(
                r#"{{"event_id":"b-{n}","event_type":"{kind}","source":{{"app":"p{p:03}"}},"payload":{{"n":{n}}}}}"#
            );
            store.insert(&RawMessage {
                received_us: now,
                routing_key: kind,
                props: None,
                body: body.into_bytes(),
                precut: None,
            });
            n += 1;
        }
        let ingest = t.elapsed();
        let (ui, tess) = measure_frame(&ctx, f, |ui| draw(ui, &store, now));
        if f >= 60 {
            // The first second warms caches (fonts, the first graph build).
            ingest_ms.push(ingest.as_secs_f64() * 1e3);
            ui_ms.push(ui.as_secs_f64() * 1e3);
            tess_ms.push(tess.as_secs_f64() * 1e3);
        }
    }
    (ui_ms, tess_ms, ingest_ms)
}

#[allow(clippy::too_many_lines)] // three runs of the frames, the rebuild and the refresh, one report
pub fn bench_flow(a: &FlowBenchArgs) -> anyhow::Result<Value> {
    let registry = Registry::from_yaml(&registry_yaml(a.services, a.bindings))
        .map_err(|e| anyhow::anyhow!("the generated registry is broken: {e}"))?;
    let producers = registry
        .services
        .values()
        .filter(|s| s.is_producer())
        .count();
    let theme = Theme::new(ThemeChoice::Dark);
    // The view as it ships (edges routed around the services in their way), then the same run
    // with straight edges: the same-run baseline for what routing costs. Frames that built the
    // edges' mesh (routing all of them) are also reported on their own.
    let run = |route_edges: bool| {
        let mut view = FlowViewState::new();
        view.route_edges = route_edges;
        let mut commands: Vec<Command> = Vec::new();
        let (mut edges, mut live_edges) = (0, 0);
        let mut mesh_frames = Vec::new();
        let mut f = 0usize;
        let (ui_ms, tess_ms, ingest_ms) = frames(a, producers, |ui, store, now| {
            let before = view.edge_mesh_builds;
            let data = candybar_ui::ViewContext::standalone(store, now, &registry);
            view.ui(ui, &mut view_cx(&data, theme, &mut commands));
            if view.edge_mesh_builds != before && f >= 60 {
                mesh_frames.push(f - 60);
            }
            f += 1;
            edges = view.graph().edges.len();
            live_edges = view.graph().edges.iter().filter(|e| e.rate() > 0.0).count();
        });
        let frame_ms: Vec<f64> = ui_ms.iter().zip(&tess_ms).map(|(u, t)| u + t).collect();
        let mesh_ms: Vec<f64> = mesh_frames
            .iter()
            .filter_map(|&i| frame_ms.get(i).copied())
            .collect();
        (
            frame_ms, ui_ms, tess_ms, ingest_ms, mesh_ms, edges, live_edges,
        )
    };
    let (frame_ms, ui_ms, tess_ms, ingest_ms, mesh_ms, edges, live_edges) = run(true);
    let (straight_ms, _, _, _, straight_mesh_ms, _, _) = run(false);
    // Baseline: the same frames and ingest with an empty panel.
    let (base_ui, base_tess, _) = frames(a, producers, |ui, _, _| {
        ui.label("empty");
    });
    let base: Vec<f64> = base_ui.iter().zip(&base_tess).map(|(u, t)| u + t).collect();
    // The graph rebuild alone (when the registry changes or a new pair is seen).
    let store = {
        let mut s = EventStore::new(StoreConfig::default());
        let t0 = 1_767_225_600 * MICROS_PER_SEC;
        for n in 0..100_000_usize {
            let p = n % producers;
            let kind = format!("p{p:03}.t{}.done", (n / producers) % 5);
            let body = format!(r#"{{"event_type":"{kind}","source":{{"app":"p{p:03}"}}}}"#);
            s.insert(&RawMessage {
                received_us: t0 + (n as i64) * 50,
                routing_key: kind,
                props: None,
                body: body.into_bytes(),
                precut: None,
            });
        }
        s
    };
    // As after a registry change: who receives which type is looked up afresh (a cold
    // `Routes`), then the graph built.
    let mut build_ms = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let mut routes = candybar_core::flow::Routes::new(&registry);
        let g = candybar_core::flow::FlowGraph::build(
            &registry,
            &mut routes,
            store.aggregates(),
            store.interner(),
            1_767_225_600 * MICROS_PER_SEC + 6 * MICROS_PER_SEC,
        );
        build_ms.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(g);
    }
    // What the view does twice a second when no new (source, type) pair appeared.
    let mut routes = candybar_core::flow::Routes::new(&registry);
    let mut graph = candybar_core::flow::FlowGraph::build(
        &registry,
        &mut routes,
        store.aggregates(),
        store.interner(),
        1_767_225_600 * MICROS_PER_SEC + 6 * MICROS_PER_SEC,
    );
    let mut refresh_ms = Vec::new();
    for i in 0..50 {
        let t = Instant::now();
        graph.refresh_rates(
            store.aggregates(),
            1_767_225_600 * MICROS_PER_SEC + 6 * MICROS_PER_SEC + i,
        );
        refresh_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    std::hint::black_box(&graph);
    Ok(json!({
        "bench": "flow",
        "cpus": std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        "services": registry.services.len(),
        "edges": edges,
        "edges_with_traffic": live_edges,
        "rate_per_sec": a.rate,
        "frames": frame_ms.len(),
        "frame_cpu_ms": percentiles(frame_ms),
        "edge_mesh_frames": mesh_ms.len(),
        "edge_mesh_frame_ms": percentiles(mesh_ms),
        "without_routing_frame_cpu_ms": percentiles(straight_ms),
        "without_routing_edge_mesh_frame_ms": percentiles(straight_mesh_ms),
        "ui_ms": percentiles(ui_ms),
        "tessellate_ms": percentiles(tess_ms),
        "baseline_empty_panel_ms": percentiles(base),
        "ingest_per_frame_ms": percentiles(ingest_ms),
        "graph_rebuild_cold_routes_ms": percentiles(build_ms),
        "graph_rates_refresh_ms": percentiles(refresh_ms),
    }))
}

/// `candybar bench registry`: a registry file changed on disk → the new registry in hand, end to
/// end through the file watcher (notify), the settle delay and parsing — for a plain write and
/// for an editor's save by rename — with the 200-service registry of `bench flow`.
pub fn bench_registry(rounds: usize) -> anyhow::Result<Value> {
    use candybar_bus::registry_watch::{RegistryUpdate, RegistryWatch};
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("registry.yaml");
    let text = registry_yaml(200, 10);
    std::fs::write(&path, &text)?;
    let watch = RegistryWatch::start(&path, || {}).map_err(|e| anyhow::anyhow!(e))?;
    let mut write_ms = Vec::new();
    let mut rename_ms = Vec::new();
    for round in 0..rounds.max(1) {
        // Each version differs (a comment), so every save is a real change.
        let version = format!("{text}# version {round}\n");
        let by_rename = round % 2 == 1;
        let start = Instant::now();
        if by_rename {
            let tmp = dir.path().join("registry.yaml.swp");
            std::fs::write(&tmp, &version)?;
            std::fs::rename(&tmp, &path)?;
        } else {
            std::fs::write(&path, &version)?;
        }
        let update = watch
            .rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .map_err(|_| anyhow::anyhow!("no reload within 5 s (round {round})"))?;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        anyhow::ensure!(
            matches!(&update, RegistryUpdate::Loaded(r) if r.services.len() == 200),
            "round {round}: not the new registry"
        );
        if by_rename {
            rename_ms.push(ms);
        } else {
            write_ms.push(ms);
        }
        // Let the watcher's settle window pass, and drain any second notice of the same save.
        std::thread::sleep(std::time::Duration::from_millis(300));
        while watch.rx.try_recv().is_ok() {}
    }
    Ok(json!({
        "bench": "registry",
        "services": 200,
        "reload_after_write_ms": percentiles(write_ms),
        "reload_after_rename_ms": percentiles(rename_ms),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_registry_has_the_asked_size() {
        let r = Registry::from_yaml(&registry_yaml(200, 10)).unwrap();
        assert_eq!(r.services.len(), 200);
        assert_eq!(r.topology.len(), 5);
        let g = candybar_core::flow::FlowGraph::build(
            &r,
            &mut candybar_core::flow::Routes::new(&r),
            &candybar_core::aggregates::Aggregates::default(),
            &candybar_core::intern::Interner::default(),
            0,
        );
        // Every consumer binds ten types of ten different producers (plus nothing else).
        assert_eq!(g.edges.len(), 1000);
    }
}
