//! The agent constellation: every agent on the bus a star (size by activity, colour by type or
//! health, a pulse on each event), links where agents work together, clusters that form by
//! themselves. Built for thousands of agents:
//! - the model is the store's [`AgentGraph`]; this view only reads it;
//! - the force layout ([`ForceLayout`], Barnes–Hut) runs on its own thread and hands back
//!   positions; the view idles when it has settled and nothing pulses;
//! - stars and links are drawn by the GPU (`shaders/constellation.wgsl`): two instanced draw
//!   calls whatever the number of agents, positions in one storage buffer uploaded per layout
//!   step, per-agent looks and links uploaded only when they change. Where the renderer cannot
//!   do that (the glow renderer, a GPU without vertex storage buffers) the busiest agents are
//!   drawn with egui shapes instead;
//! - hover and click are answered on the CPU from a grid over the positions.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use candybar_core::agents::{AgentGraph, link_kind};
use candybar_core::layout::ForceLayout;
use candybar_core::store::EventStore;
use candybar_core::text::printable;
use candybar_core::time::{MICROS_PER_SEC, Micros};
use eframe::egui_wgpu::{self, wgpu};
use egui::{Color32, Pos2, Rect, RichText, Sense, Vec2};
use parking_lot::Mutex;

use crate::context::ViewCx;
use crate::theme::Theme;
use crate::{Command, View};

const SHADER: &str = include_str!("../../../shaders/constellation.wgsl");
/// Agents labelled besides the hovered one: the busiest.
const LABELS: usize = 12;
/// What the software path draws at most.
const SOFTWARE_AGENTS: usize = 2_000;
const SOFTWARE_LINKS: usize = 4_000;
/// How often the per-agent looks are rebuilt while events arrive.
const LOOKS_EVERY_US: Micros = 100_000;
/// How often the graph handed to the layout may change while agents and links come and go.
const GRAPH_EVERY_US: Micros = 500_000;
/// The layout's pace while it moves: a step per display frame is all anyone can see.
const STEP_INTERVAL: Duration = Duration::from_millis(16);
/// Star radius in points at size 1.
const STAR_POINTS: f32 = 3.0;
/// Seconds a pulse lasts (the view repaints while one runs).
const PULSE_SECS: f32 = 1.5;

/// Positions from the layout, with how far it has come.
pub struct LayoutFrame {
    pub positions: Vec<[f32; 2]>,
    pub settled: bool,
    /// Steps taken since the layout started.
    pub steps: u64,
    /// The last step's time.
    pub step_ms: f32,
}

enum ToLayout {
    Graph {
        agents: usize,
        links: Vec<(u32, u32, f32)>,
    },
    Pin(usize, [f32; 2]),
    Unpin(usize),
}

/// The layout's thread: takes graphs and pins, steps until settled, publishes positions.
struct LayoutWorker {
    tx: SyncSender<ToLayout>,
    latest: Arc<Mutex<Option<Arc<LayoutFrame>>>>,
}

impl LayoutWorker {
    fn start(repaint: impl Fn() + Send + 'static) -> Option<Self> {
        let (tx, rx) = sync_channel(16);
        let latest = Arc::new(Mutex::new(None));
        let out = Arc::clone(&latest);
        std::thread::Builder::new()
            .name("constellation-layout".into())
            .spawn(move || layout_thread(&rx, &out, &repaint))
            .map_err(|e| tracing::warn!("the constellation's layout thread did not start: {e}"))
            .ok()?;
        Some(Self { tx, latest })
    }

    /// False when the queue is full (try again next frame).
    fn send(&self, msg: ToLayout) -> bool {
        !matches!(self.tx.try_send(msg), Err(TrySendError::Full(_)))
    }

    fn take(&self) -> Option<Arc<LayoutFrame>> {
        self.latest.lock().take()
    }
}

fn apply(layout: &mut ForceLayout, msg: ToLayout) {
    match msg {
        ToLayout::Graph { agents, links } => layout.set_graph(agents, &links),
        ToLayout::Pin(i, p) => {
            layout.pin(i, p);
            layout.reheat(0.05);
        }
        ToLayout::Unpin(i) => layout.unpin(i),
    }
}

fn layout_thread(
    rx: &Receiver<ToLayout>,
    out: &Mutex<Option<Arc<LayoutFrame>>>,
    repaint: &dyn Fn(),
) {
    let mut layout = ForceLayout::new(7);
    let mut steps = 0_u64;
    let mut told_settled = true;
    loop {
        if layout.settled() && told_settled {
            // At rest: sleep until there is something to do.
            match rx.recv() {
                Ok(msg) => apply(&mut layout, msg),
                Err(_) => return,
            }
        }
        loop {
            match rx.try_recv() {
                Ok(msg) => apply(&mut layout, msg),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        let start = Instant::now();
        layout.step();
        steps += 1;
        let step_ms = start.elapsed().as_secs_f32() * 1e3;
        let settled = layout.settled();
        *out.lock() = Some(Arc::new(LayoutFrame {
            positions: layout.positions().to_vec(),
            settled,
            steps,
            step_ms,
        }));
        told_settled = settled;
        repaint();
        if !settled {
            std::thread::sleep(STEP_INTERVAL.saturating_sub(start.elapsed()));
        }
    }
}

/// One star as the GPU reads it.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct StarInstance {
    /// Unmultiplied RGBA.
    color: [u8; 4],
    /// Radius factor (1 = [`STAR_POINTS`]).
    size: f32,
    /// Seconds on the view's clock of the agent's last event (the pulse starts there).
    last_event: f32,
}

/// One link as the GPU reads it.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LinkInstance {
    ends: [u32; 2],
    color: [u8; 4],
    /// Width in points.
    width: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniforms {
    center: [f32; 2],
    scale: f32,
    time: f32,
    size_px: [f32; 2],
    star_px: f32,
    pixels_per_point: f32,
}

/// How stars are coloured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColorBy {
    #[default]
    Type,
    Health,
}

/// A uniform grid over the positions for hover and click.
#[derive(Default)]
struct Grid {
    min: [f32; 2],
    cell: f32,
    cols: usize,
    rows: usize,
    /// Agents per cell, cells in row order (`starts[c]..starts[c + 1]` into `items`).
    starts: Vec<u32>,
    items: Vec<u32>,
}

impl Grid {
    fn build(positions: &[[f32; 2]]) -> Self {
        let finite = positions
            .iter()
            .filter(|p| p[0].is_finite() && p[1].is_finite());
        let (mut lo, mut hi) = ([f32::MAX; 2], [f32::MIN; 2]);
        for p in finite {
            for k in 0..2 {
                lo[k] = lo[k].min(p[k]);
                hi[k] = hi[k].max(p[k]);
            }
        }
        if lo[0] > hi[0] {
            return Self::default();
        }
        let area = ((hi[0] - lo[0]) * (hi[1] - lo[1])).max(1.0);
        let cell = (area / positions.len().max(1) as f32).sqrt().max(1.0) * 2.0;
        let cols = (((hi[0] - lo[0]) / cell) as usize + 1).min(4096);
        let rows = (((hi[1] - lo[1]) / cell) as usize + 1).min(4096);
        let mut g = Self {
            min: lo,
            cell,
            cols,
            rows,
            starts: vec![0; cols * rows + 1],
            items: vec![0; positions.len()],
        };
        let cells: Vec<Option<usize>> = positions.iter().map(|p| g.cell_of(*p)).collect();
        for c in cells.iter().flatten() {
            g.starts[c + 1] += 1;
        }
        for i in 1..g.starts.len() {
            g.starts[i] += g.starts[i - 1];
        }
        let mut fill = g.starts.clone();
        for (i, c) in cells.iter().enumerate() {
            if let Some(c) = c {
                let at = fill[*c] as usize;
                if let Some(slot) = g.items.get_mut(at) {
                    *slot = i as u32;
                }
                fill[*c] += 1;
            }
        }
        g
    }

    fn cell_of(&self, p: [f32; 2]) -> Option<usize> {
        if !(p[0].is_finite() && p[1].is_finite()) || self.cols == 0 {
            return None;
        }
        let cx = ((p[0] - self.min[0]) / self.cell).floor();
        let cy = ((p[1] - self.min[1]) / self.cell).floor();
        if cx < 0.0 || cy < 0.0 {
            return None;
        }
        let (cx, cy) = (cx as usize, cy as usize);
        (cx < self.cols && cy < self.rows).then_some(cy * self.cols + cx)
    }

    /// The agent nearest to `p` within `radius` (world units).
    #[allow(clippy::many_single_char_names)] // coordinates and cell bounds
    fn nearest(&self, positions: &[[f32; 2]], p: [f32; 2], radius: f32) -> Option<usize> {
        if self.cols == 0 {
            return None;
        }
        let reach = (radius / self.cell).ceil() as i64 + 1;
        let cx = ((p[0] - self.min[0]) / self.cell).floor() as i64;
        let cy = ((p[1] - self.min[1]) / self.cell).floor() as i64;
        let mut best: Option<(f32, usize)> = None;
        for y in (cy - reach).max(0)..=(cy + reach).min(self.rows as i64 - 1) {
            for x in (cx - reach).max(0)..=(cx + reach).min(self.cols as i64 - 1) {
                let c = (y as usize) * self.cols + x as usize;
                let (Some(&a), Some(&b)) = (self.starts.get(c), self.starts.get(c + 1)) else {
                    continue;
                };
                for &i in self.items.get(a as usize..b as usize).unwrap_or(&[]) {
                    let Some(q) = positions.get(i as usize) else {
                        continue;
                    };
                    let d = (q[0] - p[0]).hypot(q[1] - p[1]);
                    if d <= radius && best.is_none_or(|(bd, _)| d < bd) {
                        best = Some((d, i as usize));
                    }
                }
            }
        }
        best.map(|(_, i)| i)
    }
}

pub struct ConstellationViewState {
    worker: Option<LayoutWorker>,
    /// Tests and benches: the layout stepped in place, no thread.
    inline: Option<ForceLayout>,
    frame: Option<Arc<LayoutFrame>>,
    positions_version: u64,
    grid: Grid,
    /// The agents' structure version last handed to the layout, and when.
    sent_structure: Option<u64>,
    sent_at_us: Micros,
    stars: Arc<Vec<StarInstance>>,
    stars_version: u64,
    stars_built: Option<(u64, Micros, ColorBy, bool)>,
    links: Arc<Vec<LinkInstance>>,
    links_version: u64,
    /// (structure version, positions known, colour scheme) the links were built for.
    links_built: Option<(u64, usize, bool)>,
    /// Busiest agents first, for labels and the software path.
    busiest: Vec<usize>,
    /// Where the clock of pulses starts (f32 seconds stay precise near it).
    epoch_us: Option<Micros>,
    center: [f32; 2],
    /// Pixels per world unit.
    scale: f32,
    /// Fit everything in view until the user pans or zooms.
    auto_fit: bool,
    hovered: Option<usize>,
    dragging: Option<usize>,
    rect: Rect,
    pub color_by: ColorBy,
    gpu: Option<bool>,
}

impl Default for ConstellationViewState {
    fn default() -> Self {
        Self {
            worker: None,
            inline: None,
            frame: None,
            positions_version: 0,
            grid: Grid::default(),
            sent_structure: None,
            sent_at_us: Micros::MIN,
            stars: Arc::new(Vec::new()),
            stars_version: 0,
            stars_built: None,
            links: Arc::new(Vec::new()),
            links_version: 0,
            links_built: None,
            busiest: Vec::new(),
            epoch_us: None,
            center: [0.0, 0.0],
            scale: 1.0,
            auto_fit: true,
            hovered: None,
            dragging: None,
            rect: Rect::NOTHING,
            color_by: ColorBy::Type,
            gpu: None,
        }
    }
}

impl ConstellationViewState {
    /// Lays the current agents out at once, in this thread, until the layout settles (tests and
    /// benches: the same picture every time). Later graph changes are also laid out in place.
    pub fn settle_now(&mut self, store: &EventStore, now_us: Micros) {
        let layout = self.inline.get_or_insert_with(|| ForceLayout::new(7));
        let agents = store.agents();
        layout.set_graph(agents.agents.len(), &agents.layout_links(now_us));
        let mut steps = 0;
        while layout.step() && steps < 5_000 {
            steps += 1;
        }
        self.sent_structure = Some(agents.structure_version());
        self.sent_at_us = now_us;
        self.publish_inline(steps);
    }

    fn publish_inline(&mut self, steps: u64) {
        if let Some(layout) = &self.inline {
            self.frame = Some(Arc::new(LayoutFrame {
                positions: layout.positions().to_vec(),
                settled: layout.settled(),
                steps,
                step_ms: 0.0,
            }));
            self.positions_changed();
        }
    }

    fn positions_changed(&mut self) {
        self.positions_version += 1;
        if let Some(f) = &self.frame {
            self.grid = Grid::build(&f.positions);
        }
    }

    /// The agent under the pointer in the last frame.
    #[must_use]
    pub fn hovered(&self) -> Option<usize> {
        self.hovered
    }

    /// Where agent `i` was drawn in the last frame.
    #[must_use]
    pub fn screen_pos(&self, i: usize) -> Option<Pos2> {
        let p = self.frame.as_ref()?.positions.get(i)?;
        Some(self.to_screen(*p))
    }

    /// Whether the layout has come to rest (the view then draws only when something changes).
    #[must_use]
    pub fn settled(&self) -> bool {
        self.frame.as_ref().is_some_and(|f| f.settled)
    }

    /// Whether stars are drawn by the GPU (false: the egui-shapes fallback, or not drawn yet).
    #[must_use]
    pub fn on_gpu(&self) -> bool {
        self.gpu == Some(true)
    }

    fn to_screen(&self, p: [f32; 2]) -> Pos2 {
        self.rect.center()
            + Vec2::new(
                (p[0] - self.center[0]) * self.scale,
                (p[1] - self.center[1]) * self.scale,
            )
    }

    fn to_world(&self, p: Pos2) -> [f32; 2] {
        let d = p - self.rect.center();
        [
            self.center[0] + d.x / self.scale,
            self.center[1] + d.y / self.scale,
        ]
    }

    /// Hands the layout a new graph when agents or links changed (at most twice a second), and
    /// takes the newest positions.
    fn sync_layout(&mut self, ctx: &egui::Context, store: &EventStore, now_us: Micros) {
        let agents = store.agents();
        let version = agents.structure_version();
        let due = self.sent_structure != Some(version)
            && (self.sent_structure.is_none() || now_us - self.sent_at_us >= GRAPH_EVERY_US);
        if let Some(layout) = &mut self.inline {
            if due {
                layout.set_graph(agents.agents.len(), &agents.layout_links(now_us));
                self.sent_structure = Some(version);
                self.sent_at_us = now_us;
            }
            if !layout.settled() {
                layout.step();
                self.publish_inline(1);
                ctx.request_repaint();
            }
            return;
        }
        if due && !agents.agents.is_empty() {
            if self.worker.is_none() {
                let ctx = ctx.clone();
                self.worker = LayoutWorker::start(move || ctx.request_repaint());
            }
            if let Some(w) = &self.worker
                && w.send(ToLayout::Graph {
                    agents: agents.agents.len(),
                    links: agents.layout_links(now_us),
                })
            {
                self.sent_structure = Some(version);
                self.sent_at_us = now_us;
            }
        }
        if let Some(frame) = self.worker.as_ref().and_then(LayoutWorker::take) {
            self.frame = Some(frame);
            self.positions_changed();
        }
    }

    /// Per-agent looks: colour, size by events per minute, the time of the last event.
    fn build_stars(
        &mut self,
        agents: &AgentGraph,
        store: &EventStore,
        now_us: Micros,
        theme: Theme,
    ) {
        let epoch = *self.epoch_us.get_or_insert(now_us);
        let key = (
            agents.activity_version(),
            now_us,
            self.color_by,
            theme.dark(),
        );
        let fresh = self.stars_built.is_some_and(|(v, at, c, d)| {
            (v == key.0 || now_us - at < LOOKS_EVERY_US) && c == key.2 && d == key.3
        }) && self.stars.len() == agents.agents.len();
        if fresh {
            return;
        }
        let interner = store.interner();
        let per_min: Vec<u32> = agents
            .agents
            .iter()
            .map(|a| a.stats.per_minute(now_us))
            .collect();
        let busiest = per_min.iter().copied().max().unwrap_or(0).max(1) as f32;
        let stars: Vec<StarInstance> = agents
            .agents
            .iter()
            .zip(&per_min)
            .map(|(a, &pm)| {
                let color = match self.color_by {
                    ColorBy::Type => theme.domain_color(interner.resolve(a.kind)),
                    ColorBy::Health => health_color(theme, a.stats.error_share(), pm),
                };
                let [r, g, b, _] = color.to_srgba_unmultiplied();
                let alive = if pm > 0 { 255 } else { 150 };
                StarInstance {
                    color: [r, g, b, alive],
                    size: 0.7 + 1.8 * (pm as f32 / busiest).sqrt(),
                    last_event: ((a.stats.last_received_us - epoch) as f64 / MICROS_PER_SEC as f64)
                        as f32,
                }
            })
            .collect();
        let mut order: Vec<usize> = (0..agents.agents.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(agents.agents[i].stats.events));
        self.busiest = order;
        self.stars = Arc::new(stars);
        self.stars_version += 1;
        self.stars_built = Some(key);
    }

    fn build_links(&mut self, agents: &AgentGraph, now_us: Micros, theme: Theme) {
        let placed = self.frame.as_ref().map_or(0, |f| f.positions.len());
        let key = (agents.structure_version(), placed, theme.dark());
        if self.links_built == Some(key) {
            return;
        }
        let base = if theme.dark() {
            [150, 170, 220]
        } else {
            [70, 90, 140]
        };
        let consumed = theme.accent().to_srgba_unmultiplied();
        let mut links: Vec<LinkInstance> = agents
            .links()
            .filter(|((a, b), _)| (*a as usize) < placed && (*b as usize) < placed)
            .map(|((a, b), l)| {
                let w = l.weight(now_us);
                let strength = 1.0 - (-w).exp();
                let rgb = if l.kinds & link_kind::CONSUMED != 0 {
                    [consumed[0], consumed[1], consumed[2]]
                } else {
                    base
                };
                LinkInstance {
                    ends: [a, b],
                    color: [rgb[0], rgb[1], rgb[2], (40.0 + 150.0 * strength) as u8],
                    width: 0.6 + 1.6 * strength,
                }
            })
            .collect();
        links.sort_unstable_by_key(|l| l.ends);
        self.links = Arc::new(links);
        self.links_version += 1;
        self.links_built = Some(key);
    }

    fn fit(&mut self, positions: &[[f32; 2]]) {
        let (mut lo, mut hi) = ([f32::MAX; 2], [f32::MIN; 2]);
        for p in positions
            .iter()
            .filter(|p| p[0].is_finite() && p[1].is_finite())
        {
            for k in 0..2 {
                lo[k] = lo[k].min(p[k]);
                hi[k] = hi[k].max(p[k]);
            }
        }
        if lo[0] > hi[0] {
            return;
        }
        self.center = [f32::midpoint(lo[0], hi[0]), f32::midpoint(lo[1], hi[1])];
        let w = (hi[0] - lo[0]).max(1.0);
        let h = (hi[1] - lo[1]).max(1.0);
        let margin = 40.0;
        self.scale = ((self.rect.width() - 2.0 * margin).max(50.0) / w)
            .min((self.rect.height() - 2.0 * margin).max(50.0) / h)
            .clamp(0.01, 20.0);
    }

    #[allow(clippy::too_many_lines)] // toolbar, interaction, drawing, labels, hover card
    pub fn ui(&mut self, ui: &mut egui::Ui, cx: &mut ViewCx<'_, '_>) {
        let (store, render_state, now_us, theme) = (
            cx.data.store,
            cx.data.render_state,
            cx.data.now_us,
            cx.theme,
        );
        let commands = &mut *cx.commands;
        let ctx = ui.ctx().clone();
        self.sync_layout(&ctx, store, now_us);
        let agents = store.agents();
        self.build_stars(agents, store, now_us, theme);
        self.build_links(agents, now_us, theme);
        if self.gpu.is_none() {
            self.gpu = Some(render_state.is_some_and(gpu_prepare));
        }
        self.toolbar_ui(ui, agents);
        if agents.agents.is_empty() {
            ui.add_space(40.0);
            ui.vertical_centered(|ui| {
                ui.label(RichText::new("No agents yet").heading());
                ui.label(
                    "Events that name an agent (agent_context in Bloodbank v1, actor in v3) make \
                     stars appear; events of one correlation chain, one agent's output consumed by \
                     another, or a shared session link them.",
                );
            });
            return;
        }
        let (rect, response) = ui.allocate_exact_size(ui.available_size(), Sense::click_and_drag());
        self.rect = rect;
        ui.painter().rect_filled(
            rect,
            0.0,
            if theme.dark() {
                Color32::from_rgb(8, 10, 18)
            } else {
                Color32::from_rgb(238, 240, 246)
            },
        );
        let Some(frame) = self.frame.clone() else {
            ui.painter().text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                "laying out…",
                egui::FontId::proportional(14.0),
                theme.weak_text(),
            );
            return;
        };
        let positions = &frame.positions;
        if self.auto_fit {
            self.fit(positions);
        }
        // Hover and pick.
        let pointer = response
            .hover_pos()
            .or_else(|| response.interact_pointer_pos());
        let pick_radius = (STAR_POINTS * 3.0 + 4.0) / self.scale;
        let under =
            pointer.and_then(|p| self.grid.nearest(positions, self.to_world(p), pick_radius));
        self.hovered = if response.hovered() || response.dragged() {
            self.dragging.or(under)
        } else {
            None
        };
        // Drag a star to pin it; drag the sky to pan; scroll to zoom; double-click to fit.
        if response.drag_started() {
            self.dragging = under;
        }
        if response.dragged() {
            self.auto_fit = false;
            if let (Some(i), Some(p)) = (self.dragging, pointer) {
                let at = self.to_world(p);
                self.pin(i, at);
            } else {
                let d = response.drag_delta();
                self.center[0] -= d.x / self.scale;
                self.center[1] -= d.y / self.scale;
            }
        }
        if response.drag_stopped() {
            self.dragging = None;
        }
        if response.hovered() {
            let scroll = ui.input(|i| i.smooth_scroll_delta.y + i.zoom_delta().ln() * 200.0);
            if scroll.abs() > 0.0
                && let Some(p) = pointer
            {
                let before = self.to_world(p);
                self.scale = (self.scale * (scroll * 0.003).exp()).clamp(0.005, 50.0);
                let after = self.to_world(p);
                self.center[0] += before[0] - after[0];
                self.center[1] += before[1] - after[1];
                self.auto_fit = false;
            }
        }
        if response.double_clicked() {
            self.auto_fit = true;
        }
        if response.clicked()
            && let Some(i) = under
            && let Some(a) = agents.agents.get(i)
        {
            let ctrl = ui.input(|inp| inp.modifiers.command);
            if ctrl && a.last_session != candybar_core::intern::Sym::NONE {
                // Its latest session's trace.
                let session = store.interner().resolve(a.last_session);
                commands.push(Command::OpenTrace(session.to_owned()));
            } else {
                let name = store.interner().resolve(a.name);
                commands.push(Command::SetFilter(format!(
                    "agent:{}",
                    crate::detail::quote(name)
                )));
                commands.push(Command::SetView(View::Stream));
            }
        }
        // Draw.
        let epoch = self.epoch_us.unwrap_or(now_us);
        let time = ((now_us - epoch) as f64 / MICROS_PER_SEC as f64) as f32;
        if self.on_gpu() {
            let n = positions.len().min(self.stars.len()) as u32;
            let paint = Paint {
                uniforms: Uniforms {
                    center: self.center,
                    scale: self.scale * ctx.pixels_per_point(),
                    time,
                    size_px: [
                        rect.width() * ctx.pixels_per_point(),
                        rect.height() * ctx.pixels_per_point(),
                    ],
                    star_px: STAR_POINTS,
                    pixels_per_point: ctx.pixels_per_point(),
                },
                positions: (Arc::clone(&frame), self.positions_version),
                stars: (Arc::clone(&self.stars), self.stars_version),
                links: (Arc::clone(&self.links), self.links_version),
                stars_drawn: n,
            };
            ui.painter()
                .add(egui_wgpu::Callback::new_paint_callback(rect, paint));
        } else {
            self.software_ui(ui, positions, time, theme);
        }
        // Labels: the busiest and the hovered.
        let label_painter = ui.painter_at(rect);
        let label = |i: usize, strong: bool| {
            let (Some(p), Some(a)) = (positions.get(i), agents.agents.get(i)) else {
                return;
            };
            let at = self.to_screen(*p) + Vec2::new(6.0, -6.0);
            if !rect.contains(at) {
                return;
            }
            let color = if strong {
                ui.visuals().strong_text_color()
            } else {
                theme.weak_text()
            };
            label_painter.text(
                at,
                egui::Align2::LEFT_BOTTOM,
                printable(store.interner().resolve(a.name)),
                egui::FontId::proportional(if strong { 13.0 } else { 11.0 }),
                color,
            );
        };
        for &i in self.busiest.iter().take(LABELS) {
            if Some(i) != self.hovered {
                label(i, false);
            }
        }
        if let Some(i) = self.hovered {
            label(i, true);
            self.hover_card(&response, agents, store, i, now_us);
        }
        // Repaint only while something moves: the layout (its thread asks), a pulse, a drag.
        let pulsing = agents
            .agents
            .iter()
            .any(|a| ((now_us - a.stats.last_received_us) as f32) < PULSE_SECS * 1e6);
        if pulsing {
            ctx.request_repaint_after(Duration::from_millis(33));
        }
    }

    fn pin(&mut self, i: usize, at: [f32; 2]) {
        if let Some(layout) = &mut self.inline {
            layout.pin(i, at);
            layout.reheat(0.05);
        } else if let Some(w) = &self.worker {
            w.send(ToLayout::Pin(i, at));
        }
        // Show it where the pointer is at once.
        if let Some(frame) = &self.frame
            && i < frame.positions.len()
        {
            let mut positions = frame.positions.clone();
            positions[i] = at;
            self.frame = Some(Arc::new(LayoutFrame {
                positions,
                settled: false,
                steps: frame.steps,
                step_ms: frame.step_ms,
            }));
            self.positions_changed();
        }
    }

    /// Lets a pinned agent go (right-click).
    fn unpin(&mut self, i: usize) {
        if let Some(layout) = &mut self.inline {
            layout.unpin(i);
        } else if let Some(w) = &self.worker {
            w.send(ToLayout::Unpin(i));
        }
    }

    fn toolbar_ui(&mut self, ui: &mut egui::Ui, agents: &AgentGraph) {
        ui.horizontal(|ui| {
            ui.label(RichText::new(format!("{} agents", agents.agents.len())).strong());
            ui.label(format!("{} links", agents.link_count()));
            ui.separator();
            ui.label("Colour");
            ui.selectable_value(&mut self.color_by, ColorBy::Type, "by type");
            ui.selectable_value(&mut self.color_by, ColorBy::Health, "by health");
            ui.separator();
            if ui
                .button("Fit")
                .on_hover_text("show every agent (or double-click)")
                .clicked()
            {
                self.auto_fit = true;
            }
            let state = match &self.frame {
                None => "layout: starting".to_owned(),
                Some(f) if f.settled => "layout: at rest".to_owned(),
                Some(f) => format!("layout: settling ({:.1} ms a step)", f.step_ms),
            };
            ui.label(RichText::new(state).weak());
            let drawn = match self.gpu {
                Some(true) => "GPU".to_owned(),
                Some(false) => format!(
                    "software: the {} busiest shown",
                    SOFTWARE_AGENTS.min(agents.agents.len())
                ),
                None => String::new(),
            };
            ui.label(RichText::new(drawn).weak());
            ui.label(
                RichText::new("· drag a star to pin it, right-click to let go · click: its events")
                    .weak(),
            );
            if agents.dropped > 0 {
                ui.label(
                    RichText::new(format!(
                        "{} events of agents past the first 100,000 not shown",
                        agents.dropped
                    ))
                    .weak(),
                );
            }
        });
    }

    fn hover_card(
        &mut self,
        response: &egui::Response,
        agents: &AgentGraph,
        store: &EventStore,
        i: usize,
        now_us: Micros,
    ) {
        let Some(a) = agents.agents.get(i) else {
            return;
        };
        if response.secondary_clicked() {
            self.unpin(i);
        }
        let interner = store.interner();
        let name = printable(interner.resolve(a.name)).into_owned();
        let kind = printable(interner.resolve_opt(a.kind).unwrap_or("unknown type")).into_owned();
        let partners = agents.partners(i);
        let ago = (now_us - a.stats.last_received_us).max(0) / MICROS_PER_SEC;
        let text = format!(
            "{kind} · {} sessions\n{} events/min · {} events, {:.1} % errors\nlast event {ago} s ago · works with {partners}",
            a.sessions,
            a.stats.per_minute(now_us),
            a.stats.events,
            a.stats.error_share() * 100.0,
        );
        let has_session = a.last_session != candybar_core::intern::Sym::NONE;
        response.clone().on_hover_ui_at_pointer(|ui| {
            ui.label(RichText::new(name).strong());
            ui.label(text);
            ui.label(
                RichText::new(if has_session {
                    "click: its events · Ctrl-click: its latest session as a trace"
                } else {
                    "click: its events"
                })
                .weak(),
            );
        });
    }

    /// The fallback: the busiest agents and their strongest links as egui shapes.
    #[allow(clippy::many_single_char_names)] // colour channels
    fn software_ui(&self, ui: &egui::Ui, positions: &[[f32; 2]], time: f32, theme: Theme) {
        let painter = ui.painter_at(self.rect);
        let shown: Vec<usize> = self.busiest.iter().copied().take(SOFTWARE_AGENTS).collect();
        let mut keep = vec![false; positions.len()];
        for &i in &shown {
            if let Some(k) = keep.get_mut(i) {
                *k = true;
            }
        }
        let mut links: Vec<&LinkInstance> = self
            .links
            .iter()
            .filter(|l| {
                keep.get(l.ends[0] as usize).copied().unwrap_or(false)
                    && keep.get(l.ends[1] as usize).copied().unwrap_or(false)
            })
            .collect();
        links.sort_by(|a, b| b.width.total_cmp(&a.width));
        for l in links.into_iter().take(SOFTWARE_LINKS) {
            let (Some(a), Some(b)) = (
                positions.get(l.ends[0] as usize),
                positions.get(l.ends[1] as usize),
            ) else {
                continue;
            };
            let [r, g, bl, al] = l.color;
            painter.line_segment(
                [self.to_screen(*a), self.to_screen(*b)],
                (l.width, Color32::from_rgba_unmultiplied(r, g, bl, al)),
            );
        }
        for &i in &shown {
            let (Some(p), Some(s)) = (positions.get(i), self.stars.get(i)) else {
                continue;
            };
            let pulse = (-(time - s.last_event).max(0.0) * 3.0).exp();
            let [r, g, b, a] = s.color;
            let radius = STAR_POINTS * s.size * (1.0 + 0.8 * pulse);
            let at = self.to_screen(*p);
            painter.circle_filled(
                at,
                radius * 2.0,
                Color32::from_rgba_unmultiplied(r, g, b, 30),
            );
            painter.circle_filled(at, radius, Color32::from_rgba_unmultiplied(r, g, b, a));
        }
        let _ = theme;
    }
}

fn health_color(theme: Theme, error_share: f64, per_min: u32) -> Color32 {
    if error_share >= 0.2 {
        theme.bad()
    } else if error_share >= 0.05 {
        theme.warn()
    } else if per_min == 0 {
        theme.weak_text()
    } else {
        theme.good()
    }
}

/// What one frame asks the GPU to draw.
struct Paint {
    uniforms: Uniforms,
    positions: (Arc<LayoutFrame>, u64),
    stars: (Arc<Vec<StarInstance>>, u64),
    links: (Arc<Vec<LinkInstance>>, u64),
    stars_drawn: u32,
}

/// The constellation's GPU side, kept in egui's callback resources.
pub struct Gpu {
    stars_pipeline: wgpu::RenderPipeline,
    links_pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    uniforms: wgpu::Buffer,
    positions: GrowingBuffer,
    stars: GrowingBuffer,
    links: GrowingBuffer,
    bind_group: wgpu::BindGroup,
    /// Versions uploaded: positions, stars, links.
    uploaded: (u64, u64, u64),
    counts: (u32, u32),
    /// Draw calls issued, over all frames (benchmarks read it).
    pub draw_calls: std::sync::atomic::AtomicU64,
    /// Bytes written to GPU buffers, over all frames.
    pub bytes_uploaded: u64,
}

struct GrowingBuffer {
    buffer: wgpu::Buffer,
    capacity: u64,
    label: &'static str,
    usage: wgpu::BufferUsages,
}

impl GrowingBuffer {
    fn new(
        device: &wgpu::Device,
        label: &'static str,
        usage: wgpu::BufferUsages,
        capacity: u64,
    ) -> Self {
        let capacity = capacity.max(256).next_power_of_two();
        Self {
            buffer: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: capacity,
                usage: usage | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            capacity,
            label,
            usage,
        }
    }

    /// Writes `bytes`, growing the buffer first if needed; true when it was replaced.
    fn write(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, bytes: &[u8]) -> bool {
        let grown = bytes.len() as u64 > self.capacity;
        if grown {
            *self = Self::new(device, self.label, self.usage, bytes.len() as u64);
        }
        if !bytes.is_empty() {
            queue.write_buffer(&self.buffer, 0, bytes);
        }
        grown
    }
}

fn bind_group(
    device: &wgpu::Device,
    layout: &wgpu::BindGroupLayout,
    uniforms: &wgpu::Buffer,
    positions: &wgpu::Buffer,
) -> wgpu::BindGroup {
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("constellation"),
        layout,
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: uniforms.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: positions.as_entire_binding(),
            },
        ],
    })
}

/// Makes the pipelines and buffers once per renderer; false when this GPU cannot read storage
/// buffers in a vertex shader (then the software path draws).
#[allow(clippy::too_many_lines)] // one pipeline setup: shader, layouts, two pipelines, buffers
pub fn gpu_prepare(rs: &egui_wgpu::RenderState) -> bool {
    if rs.renderer.read().callback_resources.get::<Gpu>().is_some() {
        return true;
    }
    let vertex_storage = rs
        .adapter
        .get_downlevel_capabilities()
        .flags
        .contains(wgpu::DownlevelFlags::VERTEX_STORAGE)
        && rs.device.limits().max_storage_buffers_per_shader_stage > 0;
    if !vertex_storage {
        tracing::info!(
            "the GPU cannot read storage buffers in vertex shaders: the constellation draws with egui shapes"
        );
        return false;
    }
    let device = &rs.device;
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("constellation"),
        source: wgpu::ShaderSource::Wgsl(SHADER.into()),
    });
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("constellation"),
        entries: &[
            wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::VERTEX,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            },
            wgpu::BindGroupLayoutEntry {
                binding: 1,
                visibility: wgpu::ShaderStages::VERTEX,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: true },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            },
        ],
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("constellation"),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let blend = wgpu::BlendState {
        color: wgpu::BlendComponent {
            src_factor: wgpu::BlendFactor::One,
            dst_factor: wgpu::BlendFactor::OneMinusSrcAlpha,
            operation: wgpu::BlendOperation::Add,
        },
        alpha: wgpu::BlendComponent {
            src_factor: wgpu::BlendFactor::OneMinusDstAlpha,
            dst_factor: wgpu::BlendFactor::One,
            operation: wgpu::BlendOperation::Add,
        },
    };
    let pipeline = |vs: &str, fs: &str, stride: u64, attributes: &[wgpu::VertexAttribute]| {
        device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("constellation"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some(vs),
                buffers: &[Some(wgpu::VertexBufferLayout {
                    array_stride: stride,
                    step_mode: wgpu::VertexStepMode::Instance,
                    attributes,
                })],
                compilation_options: wgpu::PipelineCompilationOptions::default(),
            },
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some(fs),
                targets: &[Some(wgpu::ColorTargetState {
                    format: rs.target_format,
                    blend: Some(blend),
                    write_mask: wgpu::ColorWrites::ALL,
                })],
                compilation_options: wgpu::PipelineCompilationOptions::default(),
            }),
            multiview_mask: None,
            cache: None,
        })
    };
    let stars_pipeline = pipeline(
        "star_vs",
        "star_fs",
        std::mem::size_of::<StarInstance>() as u64,
        &wgpu::vertex_attr_array![0 => Unorm8x4, 1 => Float32, 2 => Float32],
    );
    let links_pipeline = pipeline(
        "link_vs",
        "link_fs",
        std::mem::size_of::<LinkInstance>() as u64,
        &wgpu::vertex_attr_array![0 => Uint32x2, 1 => Unorm8x4, 2 => Float32],
    );
    let uniforms = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("constellation uniforms"),
        size: std::mem::size_of::<Uniforms>() as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let positions = GrowingBuffer::new(
        device,
        "constellation positions",
        wgpu::BufferUsages::STORAGE,
        8 * 1024,
    );
    let group = bind_group(device, &layout, &uniforms, &positions.buffer);
    let gpu = Gpu {
        stars_pipeline,
        links_pipeline,
        uniforms,
        positions,
        stars: GrowingBuffer::new(
            device,
            "constellation stars",
            wgpu::BufferUsages::VERTEX,
            12 * 1024,
        ),
        links: GrowingBuffer::new(
            device,
            "constellation links",
            wgpu::BufferUsages::VERTEX,
            16 * 1024,
        ),
        bind_group: group,
        layout,
        uploaded: (u64::MAX, u64::MAX, u64::MAX),
        counts: (0, 0),
        draw_calls: std::sync::atomic::AtomicU64::new(0),
        bytes_uploaded: 0,
    };
    rs.renderer.write().callback_resources.insert(gpu);
    true
}

impl egui_wgpu::CallbackTrait for Paint {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &egui_wgpu::ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(gpu) = resources.get_mut::<Gpu>() else {
            return Vec::new();
        };
        queue.write_buffer(&gpu.uniforms, 0, bytemuck::bytes_of(&self.uniforms));
        let (frame, pv) = &self.positions;
        if gpu.uploaded.0 != *pv {
            let bytes: &[u8] = bytemuck::cast_slice(&frame.positions);
            if gpu.positions.write(device, queue, bytes) {
                gpu.bind_group =
                    bind_group(device, &gpu.layout, &gpu.uniforms, &gpu.positions.buffer);
            }
            gpu.bytes_uploaded += bytes.len() as u64;
            gpu.uploaded.0 = *pv;
        }
        let (stars, sv) = &self.stars;
        if gpu.uploaded.1 != *sv {
            gpu.stars.write(device, queue, bytemuck::cast_slice(stars));
            gpu.bytes_uploaded += std::mem::size_of_val(stars.as_slice()) as u64;
            gpu.uploaded.1 = *sv;
        }
        let (links, lv) = &self.links;
        if gpu.uploaded.2 != *lv {
            gpu.links.write(device, queue, bytemuck::cast_slice(links));
            gpu.bytes_uploaded += std::mem::size_of_val(links.as_slice()) as u64;
            gpu.uploaded.2 = *lv;
        }
        gpu.counts = (self.stars_drawn.min(stars.len() as u32), links.len() as u32);
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &egui_wgpu::CallbackResources,
    ) {
        let Some(gpu) = resources.get::<Gpu>() else {
            return;
        };
        let (stars, links) = gpu.counts;
        pass.set_bind_group(0, &gpu.bind_group, &[]);
        let mut calls = 0;
        if links > 0 {
            pass.set_pipeline(&gpu.links_pipeline);
            pass.set_vertex_buffer(0, gpu.links.buffer.slice(..));
            pass.draw(0..6, 0..links);
            calls += 1;
        }
        if stars > 0 {
            pass.set_pipeline(&gpu.stars_pipeline);
            pass.set_vertex_buffer(0, gpu.stars.buffer.slice(..));
            pass.draw(0..6, 0..stars);
            calls += 1;
        }
        gpu.draw_calls
            .fetch_add(calls, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_finds_the_nearest_agent_within_reach() {
        let positions: Vec<[f32; 2]> = (0..1000)
            .map(|i| [(i % 40) as f32 * 10.0, (i / 40) as f32 * 10.0])
            .chain([[f32::NAN, 0.0]])
            .collect();
        let g = Grid::build(&positions);
        assert_eq!(g.nearest(&positions, [101.0, 52.0], 4.0), Some(5 * 40 + 10));
        assert_eq!(
            g.nearest(&positions, [105.0, 55.0], 4.0),
            None,
            "between stars"
        );
        assert_eq!(g.nearest(&positions, [-100.0, -100.0], 4.0), None);
        assert_eq!(Grid::build(&[]).nearest(&[], [0.0, 0.0], 10.0), None);
    }
}
