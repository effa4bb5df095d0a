//! The Flow view: the platform's services in their topology layers, left to right, and the
//! events flowing between them. Declared edges (the registry says so) are solid, edges only
//! seen in traffic are dashed; particles run along an edge as fast and as densely as its live
//! rate, red in proportion to its errors. Hover shows rates; a click filters the Stream.
//!
//! The layout is the registry's own (columns = layers), so it is settled from the first frame
//! and the view only repaints while something flows. `egui_graphs` was the plan (DESIGN.md), but
//! it repaints every frame and lays out in O(n²); a layered picture needs neither.

use candybar_core::flow::{FlowEdge, FlowGraph, FlowNode, Routes};
use candybar_core::registry::Registry;
use candybar_core::store::EventStore;
use candybar_core::text::printable;
use candybar_core::time::Micros;
use egui::{Color32, Pos2, Rect, RichText, Sense, Shape, Stroke, Vec2};

use crate::context::ViewCx;
use crate::theme::Theme;
use crate::{Command, View};

/// How often the graph's rates are read again from the aggregates (they are 5 s averages); the
/// graph itself is rebuilt only when the registry changes or traffic shows a new pair.
const REBUILD_EVERY_US: Micros = 500_000;
/// Points sampled along each edge's curve (drawing, particles and hover use them).
const CURVE_POINTS: usize = 14;
/// Particles drawn per frame at most, over all edges (each edge gets at least one).
const PARTICLE_BUDGET: usize = 1500;

#[derive(Default)]
pub struct FlowViewState {
    graph: FlowGraph,
    built_at_us: Option<Micros>,
    /// The registry version the graph was built from (rebuilt at once when it changes).
    built_for: Option<u64>,
    /// Who receives which type, for `built_for`.
    routes: Routes,
    /// Bumped on every rebuild.
    generation: u64,
    /// The edges' look at `look_generation` (part of the edge cache's key).
    look: Vec<(usize, usize, u8, bool, bool)>,
    look_generation: u64,
    edges: Option<EdgeCache>,
    search: String,
    hidden: Vec<String>,
    show_planned: bool,
    /// Seconds of animation: particles move with it.
    clock: f64,
    /// Route edges around the services in their way (off: straight curves; the benchmark's
    /// same-run comparison).
    pub route_edges: bool,
    /// Times the edges' mesh was built (the frames that pay for routing; benchmarks read it).
    pub edge_mesh_builds: u64,
}

impl FlowViewState {
    #[must_use]
    pub fn new() -> Self {
        Self {
            show_planned: true,
            route_edges: true,
            ..Self::default()
        }
    }

    /// The next frame rebuilds the graph (the views now draw another store).
    pub fn invalidate(&mut self) {
        self.built_at_us = None;
        self.built_for = None;
        self.edges = None;
    }

    /// The graph as last built (tests and benches read it).
    #[must_use]
    pub fn graph(&self) -> &FlowGraph {
        &self.graph
    }

    fn refresh(&mut self, registry: &Registry, version: u64, store: &EventStore, now_us: Micros) {
        let stale = self
            .built_at_us
            .is_none_or(|t| now_us - t >= REBUILD_EVERY_US || now_us < t);
        let changed = self.built_for != Some(version);
        if changed {
            self.routes = Routes::new(registry);
        }
        if changed || (stale && self.graph.needs_rebuild(store.aggregates())) {
            self.graph = FlowGraph::build(
                registry,
                &mut self.routes,
                store.aggregates(),
                store.interner(),
                now_us,
            );
        } else if stale {
            // The same services and edges: only the figures move.
            self.graph.refresh_rates(store.aggregates(), now_us);
        }
        if stale || changed {
            self.built_at_us = Some(now_us);
            self.built_for = Some(version);
            self.generation += 1;
        }
    }

    #[allow(clippy::too_many_lines)] // one picture: layers, edges, particles, nodes, in paint order
    pub fn ui(&mut self, ui: &mut egui::Ui, cx: &mut ViewCx<'_, '_>) {
        let (registry, registry_version) = (cx.data.registry, cx.data.registry_version);
        let (store, now_us, theme) = (cx.data.store, cx.data.now_us, cx.theme);
        let commands = &mut *cx.commands;
        self.refresh(registry, registry_version, store, now_us);
        self.toolbar_ui(ui, theme);
        let visible: Vec<bool> = self
            .graph
            .nodes
            .iter()
            .map(|n| !self.hidden.contains(&n.key) && (self.show_planned || n.active))
            .collect();
        let (rect, _) = ui.allocate_exact_size(ui.available_size(), Sense::hover());
        let positions = layout(&self.graph, &visible, rect);
        let painter = ui.painter_at(rect);
        let search = self.search.trim().to_lowercase();
        let matches = |n: &FlowNode| {
            search.is_empty()
                || n.label.to_lowercase().contains(&search)
                || n.key.to_lowercase().contains(&search)
        };

        // Layer names above their columns.
        for (i, name) in self.graph.layers.iter().enumerate() {
            if let Some(x) = column_x(&self.graph, &visible, rect, i) {
                let text = name.replace('_', " ");
                let at = painter.text(
                    Pos2::new(x, rect.top() + 4.0),
                    egui::Align2::CENTER_TOP,
                    &text,
                    egui::FontId::proportional(12.0),
                    theme.weak_text(),
                );
                ui.interact(at, ui.id().with(("flow-layer", i)), Sense::hover())
                    .widget_info(|| {
                        egui::WidgetInfo::labeled(egui::WidgetType::Label, true, &text)
                    });
            }
        }

        // Edges first (under the nodes), with their particles.
        let dt = ui.input(|i| i.stable_dt).min(0.1);
        self.clock += f64::from(dt);
        let mut moving = false;
        let mut hovered_edge: Option<(usize, Pos2)> = None;
        // Over a node, the node answers, not the edges under it.
        let hover_at = ui
            .input(|i| i.pointer.hover_pos())
            .filter(|p| rect.contains(*p) && !positions.iter().flatten().any(|r| r.contains(*p)));
        let live = self.graph.edges.iter().filter(|e| e.rate() > 0.0).count();
        let per_edge = (PARTICLE_BUDGET / live.max(1)).clamp(1, 12);
        // The curves and their mesh change only with the graph, the layout or the search;
        // particles move every frame and go into a mesh of their own.
        if self.look_generation != self.generation {
            self.look = CacheKey::look(&self.graph);
            self.look_generation = self.generation;
        }
        let key = CacheKey {
            rect,
            visible: visible.clone(),
            search: search.clone(),
            look: self.look.clone(),
        };
        if self.edges.as_ref().is_none_or(|c| c.key != key) {
            self.edge_mesh_builds += 1;
            self.edges = Some(EdgeCache::build(
                &self.graph,
                &positions,
                key,
                theme,
                self.route_edges,
                &matches,
            ));
        }
        let Some(cache) = &self.edges else { return };
        painter.add(Shape::mesh(cache.lines.clone()));
        let mut dots = egui::Mesh::default();
        for (ei, e) in self.graph.edges.iter().enumerate() {
            let Some(points) = &cache.curves[ei] else {
                continue;
            };
            if e.rate() > 0.0 {
                moving = true;
                particles(
                    &mut dots,
                    points,
                    e,
                    per_edge,
                    self.clock,
                    theme,
                    cache.lit[ei],
                );
            }
            if let Some(p) = hover_at
                && near(points, p, 5.0)
            {
                hovered_edge = Some((ei, p));
            }
            // For screen readers and tests: every edge is a labelled, clickable spot.
            let mid = points[points.len() / 2];
            let id = ui.id().with(("flow-edge", ei));
            let r = ui.interact(
                Rect::from_center_size(mid, Vec2::splat(10.0)),
                id,
                Sense::click(),
            );
            r.widget_info(|| {
                egui::WidgetInfo::labeled(
                    egui::WidgetType::Button,
                    true,
                    edge_label(&self.graph, e),
                )
            });
            if r.clicked() {
                commands.push(Command::SetFilter(edge_filter(&self.graph, e)));
                commands.push(Command::SetView(View::Stream));
            }
        }
        painter.add(Shape::mesh(dots));
        if let Some((ei, p)) = hovered_edge {
            let e = &self.graph.edges[ei];
            egui::Tooltip::always_open(
                ui.ctx().clone(),
                ui.layer_id(),
                ui.id().with("flow-edge-tip"),
                egui::PopupAnchor::Position(p + Vec2::new(12.0, 12.0)),
            )
            .show(|ui| edge_tooltip(ui, &self.graph, e, theme));
            if ui.input(|i| i.pointer.primary_clicked()) {
                commands.push(Command::SetFilter(edge_filter(&self.graph, e)));
                commands.push(Command::SetView(View::Stream));
            }
        }

        // Nodes.
        for (i, n) in self.graph.nodes.iter().enumerate() {
            let Some(r) = positions[i] else { continue };
            let lit = matches(n);
            let id = ui.id().with(("flow-node", &n.key));
            let resp = ui.interact(r, id, Sense::click());
            resp.widget_info(|| {
                egui::WidgetInfo::labeled(egui::WidgetType::Button, true, &n.label)
            });
            draw_node(&painter, r, n, theme, lit, resp.hovered());
            let resp = resp.on_hover_ui(|ui| node_tooltip(ui, n, theme));
            if resp.clicked() {
                commands.push(Command::SetFilter(node_filter(registry, n)));
                commands.push(Command::SetView(View::Stream));
            }
            resp.context_menu(|ui| {
                if ui.button("Hide").clicked() {
                    self.hidden.push(n.key.clone());
                    ui.close();
                }
            });
        }
        if self.graph.nodes.is_empty() {
            painter.text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                "No registry services and no traffic yet: load a registry.yaml (--registry) or wait for events",
                egui::FontId::proportional(14.0),
                theme.weak_text(),
            );
        }
        // Idle when nothing flows: repaint only for particles (and the next rebuild of rates).
        if moving {
            ui.ctx().request_repaint();
        } else {
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(500));
        }
    }

    fn toolbar_ui(&mut self, ui: &mut egui::Ui, theme: Theme) {
        ui.horizontal(|ui| {
            ui.add(
                egui::TextEdit::singleline(&mut self.search)
                    .hint_text("find a service")
                    .desired_width(180.0),
            );
            ui.checkbox(&mut self.show_planned, "planned services");
            if !self.hidden.is_empty()
                && ui
                    .button(format!("show {} hidden", self.hidden.len()))
                    .clicked()
            {
                self.hidden.clear();
            }
            ui.separator();
            let weak = theme.weak_text();
            ui.label(
                RichText::new(
                    "boxes produce, pills consume · solid: declared in the registry, dashed: seen \
                     in traffic only · dots: events (red: errors) · right-click a service to hide it",
                )
                .color(weak)
                .small(),
            );
        });
    }
}

/// What the edges' picture depends on. The graph enters through its look — which edges, how
/// wide, which colour — so a rebuild that changes only the rates' decimals keeps the mesh.
#[derive(Clone, PartialEq)]
struct CacheKey {
    rect: Rect,
    visible: Vec<bool>,
    search: String,
    look: Vec<(usize, usize, u8, bool, bool)>,
}

impl CacheKey {
    fn look(graph: &FlowGraph) -> Vec<(usize, usize, u8, bool, bool)> {
        graph
            .edges
            .iter()
            .map(|e| {
                let rate = e.rate();
                (e.from, e.to, width_step(rate), rate > 0.0, e.declared())
            })
            .collect()
    }
}

/// An edge's width in half-pixel steps above 1 px: log10 of its rate, capped at 3 (1000/s).
fn width_step(rate: f64) -> u8 {
    ((rate + 1.0).log10().min(3.0) * 2.0).round() as u8
}

/// The edges' curves (for particles and hover), whether each is lit by the search, and all of
/// them as one mesh.
struct EdgeCache {
    key: CacheKey,
    curves: Vec<Option<Vec<Pos2>>>,
    lit: Vec<bool>,
    lines: std::sync::Arc<egui::Mesh>,
}

impl EdgeCache {
    fn build(
        graph: &FlowGraph,
        positions: &[Option<Rect>],
        key: CacheKey,
        theme: Theme,
        route_edges: bool,
        matches: &dyn Fn(&FlowNode) -> bool,
    ) -> Self {
        let mut lines = egui::Mesh::default();
        let obstacles: Vec<Rect> = if route_edges {
            positions.iter().flatten().copied().collect()
        } else {
            Vec::new()
        };
        let mut curves = Vec::with_capacity(graph.edges.len());
        let mut lit = Vec::with_capacity(graph.edges.len());
        for e in &graph.edges {
            let on = matches(&graph.nodes[e.from]) || matches(&graph.nodes[e.to]);
            lit.push(on);
            let (Some(a), Some(b)) = (positions[e.from], positions[e.to]) else {
                curves.push(None);
                continue;
            };
            let points = route(a.right_center(), b.left_center(), &obstacles);
            let base = edge_color(e, theme);
            let color = if on { base } else { base.gamma_multiply(0.25) };
            let width = 1.0 + f32::from(width_step(e.rate())) / 2.0;
            add_polyline(&mut lines, &points, width, color, !e.declared());
            curves.push(Some(points));
        }
        Self {
            key,
            curves,
            lit,
            lines: std::sync::Arc::new(lines),
        }
    }
}

/// Each visible node's rectangle: columns by layer, nodes spread down their column.
fn layout(graph: &FlowGraph, visible: &[bool], rect: Rect) -> Vec<Option<Rect>> {
    let mut out = vec![None; graph.nodes.len()];
    let top = rect.top() + 24.0;
    let height = (rect.bottom() - top - 8.0).max(40.0);
    for layer in 0..graph.layers.len() {
        let Some(x) = column_x(graph, visible, rect, layer) else {
            continue;
        };
        let members: Vec<usize> = (0..graph.nodes.len())
            .filter(|&i| visible[i] && graph.nodes[i].layer == layer)
            .collect();
        let slot = height / members.len().max(1) as f32;
        let h = (slot * 0.6).clamp(10.0, 34.0);
        let w = (column_width(graph, visible, rect) * 0.7).clamp(60.0, 190.0);
        for (k, &i) in members.iter().enumerate() {
            let y = top + slot * (k as f32 + 0.5);
            out[i] = Some(Rect::from_center_size(Pos2::new(x, y), Vec2::new(w, h)));
        }
    }
    out
}

fn shown_layers(graph: &FlowGraph, visible: &[bool]) -> Vec<usize> {
    (0..graph.layers.len())
        .filter(|&l| {
            graph
                .nodes
                .iter()
                .zip(visible)
                .any(|(n, &v)| v && n.layer == l)
        })
        .collect()
}

fn column_width(graph: &FlowGraph, visible: &[bool], rect: Rect) -> f32 {
    rect.width() / shown_layers(graph, visible).len().max(1) as f32
}

fn column_x(graph: &FlowGraph, visible: &[bool], rect: Rect, layer: usize) -> Option<f32> {
    let shown = shown_layers(graph, visible);
    let k = shown.iter().position(|&l| l == layer)?;
    let w = rect.width() / shown.len().max(1) as f32;
    Some(rect.left() + w * (k as f32 + 0.5))
}

/// A cubic curve from `a` to `b` leaving and arriving horizontally.
fn curve(from: Pos2, to: Pos2) -> Vec<Pos2> {
    let dx = ((to.x - from.x).abs() * 0.5).max(40.0);
    bezier(from, from + Vec2::new(dx, 0.0), to - Vec2::new(dx, 0.0), to)
}

/// [`CURVE_POINTS`] points of the cubic Bézier curve `from`, `c1`, `c2`, `to`.
fn bezier(from: Pos2, c1: Pos2, c2: Pos2, to: Pos2) -> Vec<Pos2> {
    (0..CURVE_POINTS)
        .map(|i| {
            let t = i as f32 / (CURVE_POINTS - 1) as f32;
            let rest = 1.0 - t;
            let p = from.to_vec2() * (rest * rest * rest)
                + c1.to_vec2() * (3.0 * rest * rest * t)
                + c2.to_vec2() * (3.0 * rest * t * t)
                + to.to_vec2() * (t * t * t);
            p.to_pos2()
        })
        .collect()
}

/// Room kept between an edge and a node it goes around.
const CLEARANCE: f32 = 4.0;

/// An edge's path from `from` (a node's right side) to `to` (another's left side) that goes
/// around the nodes of the columns in between (`obstacles`: every node). Where the plain curve
/// would cross a node, the path runs level through the gap above or below it instead, whichever
/// is nearer, and bends between the columns, where there are no nodes.
fn route(from: Pos2, to: Pos2, obstacles: &[Rect]) -> Vec<Pos2> {
    let path = |waypoints: &[Pos2]| -> Vec<Pos2> {
        let mut out = Vec::new();
        let mut prev = from;
        for &w in waypoints.iter().chain(std::iter::once(&to)) {
            // (Level ends give a straight run: the control points lie on the line.)
            let skip = usize::from(!out.is_empty());
            out.extend(curve(prev, w).into_iter().skip(skip));
            prev = w;
        }
        out
    };
    if to.x - from.x < 1.0 {
        return backward(from, to);
    }
    let mut waypoints: Vec<Pos2> = Vec::new();
    let mut points = path(&waypoints);
    let between: Vec<Rect> = obstacles
        .iter()
        .filter(|r| r.left() > from.x && r.right() < to.x)
        .copied()
        .collect();
    // One detour per column at most (in a crowded column the best gap may still graze a
    // neighbour), columns taken left to right.
    let mut detoured: Vec<f32> = Vec::new();
    loop {
        let bounds = Rect::from_points(&points).expand(CLEARANCE);
        let Some(hit) = between
            .iter()
            .filter(|r| !detoured.iter().any(|x| (r.center().x - x).abs() < 1.0))
            .filter(|r| bounds.intersects(**r) && crosses(&points, r.expand(CLEARANCE)))
            .min_by(|a, b| a.center().x.total_cmp(&b.center().x))
            .copied()
        else {
            break;
        };
        let column: Vec<&Rect> = between
            .iter()
            .filter(|r| (r.center().x - hit.center().x).abs() < 1.0)
            .collect();
        // The middle of the gap above the node (or a little above it, at the top of the column).
        let above = column
            .iter()
            .filter(|r| r.bottom() <= hit.top())
            .map(|r| r.bottom())
            .max_by(f32::total_cmp)
            .map_or(hit.top() - 3.0 * CLEARANCE, |b| f32::midpoint(b, hit.top()));
        let below = column
            .iter()
            .filter(|r| r.top() >= hit.bottom())
            .map(|r| r.top())
            .min_by(f32::total_cmp)
            .map_or(hit.bottom() + 3.0 * CLEARANCE, |t| {
                f32::midpoint(t, hit.bottom())
            });
        detoured.push(hit.center().x);
        let here = y_at(&points, hit.center().x);
        let y = if (here - above).abs() <= (below - here).abs() {
            above
        } else {
            below
        };
        let (left, right) = (hit.left() - CLEARANCE, hit.right() + CLEARANCE);
        waypoints.retain(|w| w.x < left || w.x > right);
        waypoints.push(Pos2::new(left, y));
        waypoints.push(Pos2::new(right, y));
        waypoints.sort_by(|a, b| a.x.total_cmp(&b.x));
        points = path(&waypoints);
    }
    points
}

/// An edge back to an earlier (or the same) column: out of the source's right side, down under
/// both nodes and into the target's left side, rather than straight back through them.
fn backward(from: Pos2, to: Pos2) -> Vec<Pos2> {
    let drop = 60.0 + (to.y - from.y).abs() / 2.0;
    let (c1, c2) = (from + Vec2::new(80.0, drop), to + Vec2::new(-80.0, drop));
    bezier(from, c1, c2, to)
}

/// The path's y where it passes `x` (the first crossing).
fn y_at(points: &[Pos2], x: f32) -> f32 {
    points
        .windows(2)
        .find(|w| (w[0].x <= x && x <= w[1].x) || (w[1].x <= x && x <= w[0].x))
        .map_or(points[0].y, |w| {
            let t = (x - w[0].x) / (w[1].x - w[0].x).abs().max(1e-3);
            w[0].y + (w[1].y - w[0].y) * t.abs()
        })
}

/// Whether the polyline passes through `r`.
fn crosses(points: &[Pos2], r: Rect) -> bool {
    points.windows(2).any(|w| segment_crosses(w[0], w[1], r))
}

/// Whether the segment `a`–`b` meets `r` (Liang–Barsky clipping).
fn segment_crosses(start: Pos2, end: Pos2, r: Rect) -> bool {
    let (a, d) = (start, end - start);
    let (mut t0, mut t1) = (0.0_f32, 1.0_f32);
    for (p, q) in [
        (-d.x, a.x - r.left()),
        (d.x, r.right() - a.x),
        (-d.y, a.y - r.top()),
        (d.y, r.bottom() - a.y),
    ] {
        if p.abs() < 1e-6 {
            if q < 0.0 {
                return false;
            }
        } else {
            let at = q / p;
            if p < 0.0 {
                t0 = t0.max(at);
            } else {
                t1 = t1.min(at);
            }
            if t0 > t1 {
                return false;
            }
        }
    }
    true
}

/// A polyline `width` wide as a strip of quads (no feathering); `dashed` leaves every other
/// segment out. (Sharing the vertices between segments measured slower to tessellate.)
fn add_polyline(mesh: &mut egui::Mesh, points: &[Pos2], width: f32, color: Color32, dashed: bool) {
    let half = width / 2.0;
    let normal = |i: usize| {
        let before = points[i.saturating_sub(1)];
        let after = points[(i + 1).min(points.len() - 1)];
        (after - before).normalized().rot90() * half
    };
    for i in 0..points.len().saturating_sub(1) {
        if dashed && i % 2 == 1 {
            continue;
        }
        let (a, b) = (points[i], points[i + 1]);
        let (na, nb) = (normal(i), normal(i + 1));
        let base = mesh.vertices.len() as u32;
        for p in [a + na, a - na, b + nb, b - nb] {
            mesh.colored_vertex(p, color);
        }
        mesh.add_triangle(base, base + 1, base + 2);
        mesh.add_triangle(base + 1, base + 3, base + 2);
    }
}

fn point_at(points: &[Pos2], t: f32) -> Pos2 {
    let f = t.clamp(0.0, 1.0) * (points.len() - 1) as f32;
    let i = (f.floor() as usize).min(points.len() - 2);
    points[i].lerp(points[i + 1], f - i as f32)
}

fn near(points: &[Pos2], p: Pos2, dist: f32) -> bool {
    points.windows(2).any(|w| {
        let (a, b) = (w[0], w[1]);
        let ab = b - a;
        let t = ((p - a).dot(ab) / ab.length_sq().max(1e-3)).clamp(0.0, 1.0);
        (a + ab * t).distance(p) <= dist
    })
}

fn edge_color(e: &FlowEdge, theme: Theme) -> Color32 {
    if e.rate() > 0.0 {
        theme.accent().gamma_multiply(0.7)
    } else {
        theme.weak_text().gamma_multiply(0.6)
    }
}

/// Particles along an edge: more (up to `max`) and faster with the rate (log scale), red by
/// error share; added to `dots` as small squares.
fn particles(
    dots: &mut egui::Mesh,
    points: &[Pos2],
    e: &FlowEdge,
    max: usize,
    clock: f64,
    theme: Theme,
    lit: bool,
) {
    let rate = e.rate();
    let count = ((1.0 + rate.log2().max(0.0)) as usize).clamp(1, max);
    let speed = 0.25 + 0.1 * rate.log10().clamp(0.0, 3.0);
    let errors = e.error_share();
    // The first `red` of them are error particles (at least one when there are errors).
    let red = if errors > 0.0 {
        ((errors * count as f64).round() as usize).max(1)
    } else {
        0
    };
    for k in 0..count {
        let t = (clock * speed + k as f64 / count as f64).fract() as f32;
        let color = if k < red { theme.bad() } else { theme.good() };
        let color = if lit {
            color
        } else {
            color.gamma_multiply(0.3)
        };
        dots.add_colored_rect(
            Rect::from_center_size(point_at(points, t), Vec2::splat(4.0)),
            color,
        );
    }
}

fn draw_node(
    painter: &egui::Painter,
    r: Rect,
    n: &FlowNode,
    theme: Theme,
    lit: bool,
    hovered: bool,
) {
    let fill = if n.unknown {
        theme.warn().gamma_multiply(0.35)
    } else if n.active {
        theme.accent().gamma_multiply(0.35)
    } else {
        Color32::TRANSPARENT
    };
    let border = if n.unknown {
        theme.warn()
    } else if n.active {
        theme.accent()
    } else {
        theme.weak_text()
    };
    let (fill, border) = if lit {
        (fill, border)
    } else {
        (fill.gamma_multiply(0.3), border.gamma_multiply(0.3))
    };
    let stroke = Stroke::new(if hovered { 2.5 } else { 1.2 }, border);
    // Producers are boxes, consumers pills; a service that does both is a box with round ends
    // on the right.
    let radius = if n.producer && !n.consumer {
        egui::CornerRadius::same(3)
    } else if n.consumer && !n.producer {
        egui::CornerRadius::same((r.height() / 2.0) as u8)
    } else {
        let round = (r.height() / 2.0) as u8;
        egui::CornerRadius {
            nw: 3,
            sw: 3,
            ne: round,
            se: round,
        }
    };
    painter.rect(r, radius, fill, stroke, egui::StrokeKind::Inside);
    if !n.active && !n.unknown {
        // Planned: dashed look over the outline.
        painter.extend(Shape::dashed_line(
            &[r.left_bottom(), r.right_bottom()],
            Stroke::new(1.0, border),
            3.0,
            3.0,
        ));
    }
    let text_color = if lit {
        theme.visuals().strong_text_color()
    } else {
        theme.weak_text()
    };
    let font = egui::FontId::proportional((r.height() * 0.45).clamp(9.0, 13.0));
    let galley = painter.layout(
        printable(&n.label).into_owned(),
        font,
        text_color,
        r.width() - 6.0,
    );
    painter.galley(r.center() - galley.size() / 2.0, galley, text_color);
}

fn node_tooltip(ui: &mut egui::Ui, n: &FlowNode, theme: Theme) {
    ui.strong(printable(&n.label).as_ref());
    let kind = match (n.producer, n.consumer, n.unknown) {
        (_, _, true) => "unknown producer: seen on the bus, not in the registry",
        (true, true, _) => "consumes and produces",
        (true, false, _) => "producer",
        (false, true, _) => "consumer",
        _ => "service",
    };
    ui.label(kind);
    if !n.active && !n.unknown {
        ui.label(RichText::new("planned").color(theme.weak_text()));
    }
    if n.producer {
        ui.label(format!(
            "publishing {}/s lately, {:.1} % errors",
            rate_text(n.rate),
            n.error_share * 100.0
        ));
    }
    if !n.unrouted.is_empty() {
        ui.label(
            RichText::new(format!("no consumer binds: {}", n.unrouted.join(", ")))
                .color(theme.warn()),
        );
    }
    ui.label(
        RichText::new("click: show its events in the Stream")
            .color(theme.weak_text())
            .small(),
    );
}

fn edge_tooltip(ui: &mut egui::Ui, g: &FlowGraph, e: &FlowEdge, theme: Theme) {
    ui.strong(format!(
        "{} → {}",
        g.nodes[e.from].label, g.nodes[e.to].label
    ));
    for t in e.types.iter().take(12) {
        let how = if t.declared {
            ""
        } else {
            "  (seen, not declared)"
        };
        let text = format!(
            "{}  {}/s  {:.0} % errors{how}",
            t.event_type,
            rate_text(t.rate),
            t.error_share * 100.0
        );
        let color = if t.error_share > 0.0 {
            theme.warn()
        } else {
            theme.visuals().text_color()
        };
        ui.label(RichText::new(text).color(color).monospace());
    }
    if e.types.len() > 12 {
        ui.label(format!("… and {} more types", e.types.len() - 12));
    }
}

fn rate_text(rate: f64) -> String {
    if rate >= 10.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.1}")
    }
}

/// "hookd → agent-thread-collector, 12.4 events/s" (what screen readers and tests read).
fn edge_label(g: &FlowGraph, e: &FlowEdge) -> String {
    format!(
        "{} → {}, {} events/s",
        g.nodes[e.from].label,
        g.nodes[e.to].label,
        rate_text(e.rate())
    )
}

/// A producer's events; a consumer's bindings; both for a service that does both.
fn node_filter(registry: &Registry, n: &FlowNode) -> String {
    let source = format!("source:{}", crate::detail::quote(&n.label));
    let bindings: Vec<String> = registry
        .services
        .get(&n.key)
        .map(|s| s.routing_keys.iter().chain(&s.consumes).cloned().collect())
        .unwrap_or_default();
    match (n.producer || n.unknown, bindings.is_empty()) {
        (true, _) | (false, true) => source,
        (false, false) => bindings.join(" OR "),
    }
}

/// What flows along an edge: its producer's events of its types.
fn edge_filter(g: &FlowGraph, e: &FlowEdge) -> String {
    let source = format!("source:{}", crate::detail::quote(&g.nodes[e.from].label));
    let types: Vec<&str> = e.types.iter().map(|t| &*t.event_type).collect();
    if types.len() == 1 {
        format!("{source} {}", types[0])
    } else {
        format!("{source} ({})", types.join(" OR "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_start_and_end_at_their_nodes_and_hover_finds_them() {
        let (a, b) = (Pos2::new(0.0, 0.0), Pos2::new(200.0, 100.0));
        let pts = curve(a, b);
        assert_eq!(pts.len(), CURVE_POINTS);
        assert!(pts[0].distance(a) < 1e-3 && pts[CURVE_POINTS - 1].distance(b) < 1e-3);
        assert!(near(&pts, point_at(&pts, 0.37), 0.5));
        assert!(!near(&pts, Pos2::new(200.0, 0.0), 5.0));
    }

    #[test]
    fn edges_go_around_the_nodes_between_their_ends() {
        // Three columns; the middle one has a node on the edge's row and one below it.
        let node = |x: f32, y: f32| Rect::from_center_size(Pos2::new(x, y), Vec2::new(120.0, 30.0));
        let (a, blocker, under, b) = (
            node(100.0, 100.0),
            node(400.0, 100.0),
            node(400.0, 200.0),
            node(700.0, 100.0),
        );
        let all = [a, blocker, under, b];
        let straight = curve(a.right_center(), b.left_center());
        assert!(
            crosses(&straight, blocker),
            "the plain curve runs through the middle node"
        );
        let pts = route(a.right_center(), b.left_center(), &all);
        assert!(pts[0].distance(a.right_center()) < 1e-3);
        assert!(pts[pts.len() - 1].distance(b.left_center()) < 1e-3);
        for r in [blocker, under] {
            assert!(!crosses(&pts, r), "the route crosses {r:?}");
        }
        // Above the blocker: the nearer gap (below is taken half by the second node).
        assert!(y_at(&pts, 400.0) < blocker.top());
        // Nothing in the way: the plain curve.
        assert_eq!(route(a.right_center(), b.left_center(), &[a, b]), straight);
        // Back to an earlier column on the same row: under the nodes, not through them.
        let back = route(b.right_center(), a.left_center(), &all);
        for r in [a, b, blocker] {
            // (It touches its own ends' sides.)
            assert!(
                !crosses(&back, r.shrink(2.0)),
                "the edge back crosses {r:?}"
            );
        }
    }

    #[test]
    fn segments_meet_rectangles_when_they_cross_them() {
        let r = Rect::from_min_max(Pos2::new(0.0, 0.0), Pos2::new(10.0, 10.0));
        assert!(segment_crosses(
            Pos2::new(-5.0, 5.0),
            Pos2::new(15.0, 5.0),
            r
        ));
        assert!(segment_crosses(Pos2::new(2.0, 2.0), Pos2::new(3.0, 3.0), r));
        assert!(!segment_crosses(
            Pos2::new(-5.0, -1.0),
            Pos2::new(15.0, -1.0),
            r
        ));
        assert!(!segment_crosses(
            Pos2::new(-5.0, 20.0),
            Pos2::new(5.0, 11.0),
            r
        ));
    }
}
