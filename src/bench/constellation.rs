//! `candybar bench constellation`: the agent constellation with 10,000 agents and 30,000 links
//! while the layout runs on its thread — the view's CPU per frame (egui's ui pass, tessellation,
//! and preparing the GPU buffers: the paint callback's `prepare`) at 60 fps, measured in-process
//! on a headless wgpu device (lavapipe here); the draw calls per frame; the layout's step time
//! alone; and whether the view stops repainting once the layout has settled. The GPU's own
//! time (submit → done) is reported apart: on lavapipe it is the CPU rasterizer's.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use candybar_core::event::RawMessage;
use candybar_core::layout::ForceLayout;
use candybar_core::registry::Registry;
use candybar_core::store::{EventStore, StoreConfig};
use candybar_core::time::MICROS_PER_SEC;
use candybar_ui::Command;
use candybar_ui::ViewContext;
use candybar_ui::constellation::{ConstellationViewState, Gpu};
use candybar_ui::theme::{Theme, ThemeChoice};
use clap::Args;
use eframe::egui_wgpu::{self, wgpu};
use serde_json::{Value, json};

use super::flow::{percentiles, view_cx};

#[derive(Args, Debug)]
pub struct ConstellationBenchArgs {
    /// Agents
    #[arg(long, default_value_t = 10_000)]
    agents: usize,
    /// Links between them (made by shared correlation chains, mostly within teams of 20)
    #[arg(long, default_value_t = 30_000)]
    links: usize,
    /// Frames at most (60 fps) before giving up on the layout settling
    #[arg(long, default_value_t = 3000)]
    frames: usize,
}

fn message(received_us: i64, agent: usize, corr: usize, n: usize) -> RawMessage {
    let kind = "agent.thread.response";
    let types = candybar_core::demo::AGENT_TYPES;
    let body = format!(
        r#"{{"event_id":"e-{n}","event_type":"{kind}","correlation_ids":["c-{corr}"],"source":{{"app":"bench"}},"agent_context":{{"name":"a{agent:05}","type":"{}"}},"payload":{{}}}}"#,
        types[agent % types.len()]
    );
    RawMessage {
        received_us,
        routing_key: kind.to_owned(),
        props: None,
        body: body.into_bytes(),
        precut: None,
    }
}

/// A store whose agents and links are the asked numbers: every agent once, then pairs sharing
/// a correlation id — mostly within a team of 20, one in ten across teams.
fn population(agents: usize, links: usize, now_us: i64) -> EventStore {
    let mut store = EventStore::new(StoreConfig {
        max_events: 200_000,
        ..StoreConfig::default()
    });
    let mut n = 0;
    for a in 0..agents {
        store.insert(&message(now_us - 30 * MICROS_PER_SEC, a, usize::MAX - a, n));
        n += 1;
    }
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as usize
    };
    let mut corr = 0;
    while store.agents().link_count() < links && corr < links * 4 {
        let a = next() % agents;
        let b = if next() % 10 == 0 {
            next() % agents
        } else {
            (a / 20) * 20 + next() % 20.min(agents - (a / 20) * 20)
        };
        let at = now_us - 20 * MICROS_PER_SEC + (corr as i64 % 20_000) * 1000;
        store.insert(&message(at, a, corr, n));
        store.insert(&message(at, b.min(agents - 1), corr, n + 1));
        n += 2;
        corr += 1;
    }
    store
}

fn render_state() -> anyhow::Result<egui_wgpu::RenderState> {
    let setup =
        egui_wgpu::WgpuSetup::CreateNew(egui_wgpu::WgpuSetupCreateNew::without_display_handle());
    let rt = tokio::runtime::Handle::current();
    let instance = rt.block_on(setup.new_instance());
    rt.block_on(egui_wgpu::RenderState::create(
        &egui_wgpu::WgpuConfiguration {
            wgpu_setup: setup,
            ..Default::default()
        },
        &instance,
        None,
        egui_wgpu::RendererOptions::default(),
    ))
    .context("no GPU or software renderer (install mesa-vulkan-drivers)")
}

#[allow(clippy::too_many_lines)] // one measured loop: population, layout, frames, report
pub fn bench_constellation(a: &ConstellationBenchArgs) -> anyhow::Result<Value> {
    let now = 1_767_225_600 * MICROS_PER_SEC;
    let store = population(a.agents.max(2), a.links, now);
    let agents = store.agents();
    let links = agents.layout_links(now);

    // The layout alone, as its thread runs it.
    let mut layout = ForceLayout::new(7);
    layout.set_graph(agents.agents.len(), &links);
    let mut step_ms = Vec::new();
    for _ in 0..60 {
        let t = Instant::now();
        layout.step();
        step_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }

    let rs = render_state()?;
    let adapter = rs.adapter.get_info();
    let ctx = egui::Context::default();
    let theme = Theme::new(ThemeChoice::Dark);
    let mut view = ConstellationViewState::default();
    let mut commands: Vec<Command> = Vec::new();
    let size = [1280_u32, 800_u32];
    let texture = rs.device.create_texture(&wgpu::TextureDescriptor {
        label: Some("bench"),
        size: wgpu::Extent3d {
            width: size[0],
            height: size[1],
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: rs.target_format,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
        view_formats: &[],
    });
    let target = texture.create_view(&wgpu::TextureViewDescriptor::default());
    let no_registry = Registry::default();
    let (mut cpu_ms, mut gpu_ms) = (Vec::new(), Vec::new());
    // Bytes written to GPU buffers in each frame while the layout moves.
    let mut upload_bytes: Vec<f64> = Vec::new();
    let mut uploaded_before = 0_u64;
    let mut settled_at = None;
    let mut settled_after = None;
    let mut repaints_after_settle = 0_usize;
    let mut frames_after_settle = 0_usize;
    let start = Instant::now();
    let total = a.frames.max(200);
    let mut frames_rendered = 0_usize;
    // Draw calls of each rendered frame (the first, before any upload, left out).
    let mut per_frame_calls: Vec<u64> = Vec::new();
    let mut last_calls = 0_u64;
    for f in 0..total {
        let frame_start = Instant::now();
        let raw = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(
                egui::Pos2::ZERO,
                egui::vec2(size[0] as f32, size[1] as f32),
            )),
            time: Some(start.elapsed().as_secs_f64()),
            ..Default::default()
        };
        // The clock stands still past the events' pulses: only the layout moves.
        let t = Instant::now();
        let out = ctx.run_ui(raw, |ui| {
            egui::CentralPanel::default().show(ui, |ui| {
                let mut data =
                    ViewContext::standalone(&store, now + 60 * MICROS_PER_SEC, &no_registry);
                data.render_state = Some(&rs);
                view.ui(ui, &mut view_cx(&data, theme, &mut commands));
            });
        });
        let prims = ctx.tessellate(out.shapes, out.pixels_per_point);
        let screen = egui_wgpu::ScreenDescriptor {
            size_in_pixels: size,
            pixels_per_point: 1.0,
        };
        let mut encoder = rs
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        let user = {
            let mut renderer = rs.renderer.write();
            for (id, deltas) in &out.textures_delta.set {
                for delta in deltas {
                    renderer.update_texture(&rs.device, &rs.queue, *id, delta);
                }
            }
            renderer.update_buffers(&rs.device, &rs.queue, &mut encoder, &prims, &screen)
        };
        let cpu = t.elapsed();
        let uploaded = rs
            .renderer
            .read()
            .callback_resources
            .get::<Gpu>()
            .map_or(0, |g| g.bytes_uploaded);
        let uploaded_now = uploaded - uploaded_before;
        uploaded_before = uploaded;
        // Rendering on lavapipe takes a few hundred ms a frame (the CPU rasterizer's time, not
        // the app's): render every tenth frame; the others only submit the buffer uploads.
        let render = f % 10 == 0;
        frames_rendered += usize::from(render);
        if render {
            let renderer = rs.renderer.read();
            let mut pass = encoder
                .begin_render_pass(&wgpu::RenderPassDescriptor {
                    label: Some("bench"),
                    color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                        view: &target,
                        resolve_target: None,
                        ops: wgpu::Operations {
                            load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                            store: wgpu::StoreOp::Store,
                        },
                        depth_slice: None,
                    })],
                    ..Default::default()
                })
                .forget_lifetime();
            renderer.render(&mut pass, &prims, &screen);
        }
        let commands_ready = encoder.finish();
        // Submit → the GPU done.
        let t = Instant::now();
        rs.queue
            .submit(user.into_iter().chain(std::iter::once(commands_ready)));
        rs.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(Duration::from_secs(10)),
            })
            .map_err(|e| anyhow::anyhow!("the GPU did not finish: {e}"))?;
        let gpu = t.elapsed();
        if render {
            let calls = rs
                .renderer
                .read()
                .callback_resources
                .get::<Gpu>()
                .map_or(0, |g| {
                    g.draw_calls.load(std::sync::atomic::Ordering::Relaxed)
                });
            if frames_rendered > 1 {
                per_frame_calls.push(calls - last_calls);
            }
            last_calls = calls;
        }
        // Any repaint asked for, however far ahead, is a frame the settled view did not need.
        let repaint = out
            .viewport_output
            .values()
            .any(|v| v.repaint_delay != Duration::MAX);
        if let Some(s) = settled_at {
            if f > s + 5 {
                frames_after_settle += 1;
                repaints_after_settle += usize::from(repaint);
            }
            if frames_after_settle >= 120 {
                break;
            }
        } else if view.settled() {
            settled_at = Some(f);
            settled_after = Some(start.elapsed());
        } else if f >= 5 {
            cpu_ms.push(cpu.as_secs_f64() * 1e3);
            upload_bytes.push(uploaded_now as f64 / 1000.0);
            if render {
                gpu_ms.push(gpu.as_secs_f64() * 1e3);
            }
        }
        // 60 fps.
        std::thread::sleep(Duration::from_micros(16_667).saturating_sub(frame_start.elapsed()));
    }
    Ok(json!({
        "bench": "constellation",
        "cpus": std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        "adapter": format!("{} ({:?})", adapter.name, adapter.backend),
        "agents": store.agents().agents.len(),
        "links": store.agents().link_count(),
        "on_gpu": view.on_gpu(),
        "frames_while_layout_runs": cpu_ms.len(),
        "frame_cpu_ms_ui_tessellate_prepare": percentiles(cpu_ms),
        "gpu_render_submit_to_done_ms_every_10th_frame": percentiles(gpu_ms),
        "layout_step_ms": percentiles(step_ms),
        "draw_calls_per_rendered_frame_min_max": [
            per_frame_calls.iter().min(),
            per_frame_calls.iter().max()
        ],
        // Per frame while the layout moves (percentiles of kB, 1 kB = 1000 bytes; the ms
        // formatting of `percentiles` is reused: read the numbers as kB).
        "kb_uploaded_per_frame_while_moving": percentiles(upload_bytes),
        "settled_after_frames": settled_at,
        "settled_after_secs": settled_after.map(|d| (d.as_secs_f64() * 10.0).round() / 10.0),
        "frames_checked_after_settle": frames_after_settle,
        "frames_asking_for_repaint_after_settle": repaints_after_settle,
    }))
}
