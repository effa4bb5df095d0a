//! A force-directed layout that scales: many-body repulsion through a Barnes–Hut quadtree
//! (O(n log n) a step), springs along links, a gentle pull to the origin, velocities that decay,
//! and a temperature (`alpha`) that cools until the layout comes to rest — the model of d3-force,
//! which people know how to read. Deterministic: the same calls give the same positions.
//! Runs wherever its caller wants (the constellation steps it on a thread of its own).

/// Tunables (d3-force's defaults, with a pull to the origin so that loose agents stay near).
#[derive(Clone, Debug)]
pub struct LayoutConfig {
    /// Length a link pulls towards.
    pub link_distance: f32,
    /// Repulsion between every two nodes.
    pub repulsion: f32,
    /// Barnes–Hut opening angle: larger is faster and coarser.
    pub theta: f32,
    /// Pull towards the origin, per unit of distance.
    pub gravity: f32,
    /// Share of velocity lost each step.
    pub velocity_decay: f32,
    /// How fast alpha cools (≈ 300 steps from 1 to `alpha_min`).
    pub alpha_decay: f32,
    /// Below this the layout is at rest.
    pub alpha_min: f32,
}

impl Default for LayoutConfig {
    fn default() -> Self {
        Self {
            link_distance: 30.0,
            repulsion: 30.0,
            // d3's 0.9 opens quads by the distance to a point; opening them by the distance to
            // the nearest point of a leaf's box is much stricter, so 1.5 here (which keeps a
            // 10,000-agent step under 8 ms on two slow cores) looks the same.
            theta: 1.5,
            gravity: 0.02,
            velocity_decay: 0.4,
            alpha_decay: 1.0 - 0.001_f32.powf(1.0 / 300.0),
            alpha_min: 0.001,
        }
    }
}

/// No point / an internal quad (in [`Quad::first`]).
const NONE: u32 = u32::MAX;
const INTERNAL: u32 = u32::MAX - 1;
/// Points a leaf holds before it splits.
const LEAF_POINTS: usize = 8;
/// Quads deeper than this keep their points together (coincident or nearly so).
const MAX_DEPTH: u32 = 32;
/// Repulsion closer than this is weakened (d3's `distanceMin`), so near points do not explode.
const DISTANCE_MIN_SQ: f32 = 1.0;

#[derive(Clone, Copy, Debug)]
struct Quad {
    x0: f32,
    y0: f32,
    size: f32,
    /// A point of the leaf's list, [`NONE`] when empty, [`INTERNAL`] when it has children.
    first: u32,
    children: [u32; 4],
    /// Points below, and their centre.
    count: f32,
    cx: f32,
    cy: f32,
}

impl Quad {
    fn new(x0: f32, y0: f32, size: f32) -> Self {
        Self {
            x0,
            y0,
            size,
            first: NONE,
            children: [0; 4],
            count: 0.0,
            cx: 0.0,
            cy: 0.0,
        }
    }

    fn quadrant(&self, p: [f32; 2]) -> usize {
        let half = self.size / 2.0;
        usize::from(p[0] >= self.x0 + half) | (usize::from(p[1] >= self.y0 + half) << 1)
    }
}

/// Quads taken as one body (centres and point counts), or near points (count unused), as
/// arrays.
#[derive(Default)]
struct Bodies {
    x: Vec<f32>,
    y: Vec<f32>,
    count: Vec<f32>,
}

pub struct ForceLayout {
    config: LayoutConfig,
    seed: u64,
    pos: Vec<[f32; 2]>,
    vel: Vec<[f32; 2]>,
    pinned: Vec<Option<[f32; 2]>>,
    links: Vec<(u32, u32, f32)>,
    /// Per link: how much of the correction moves the target (d3's bias) and the strength.
    link_bias: Vec<f32>,
    link_strength: Vec<f32>,
    alpha: f32,
    tree: Vec<Quad>,
    /// Per point: the next point of the same leaf.
    next: Vec<u32>,
    stack: Vec<u32>,
    /// Scratch for the repulsion: far bodies (x, y, count) and near points of one leaf.
    far: Bodies,
    near: Bodies,
    /// Per point: a tiny fixed offset used in the near-field repulsion (breaks coincidence).
    offset: Vec<[f32; 2]>,
}

impl ForceLayout {
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self::with_config(seed, LayoutConfig::default())
    }

    #[must_use]
    pub fn with_config(seed: u64, config: LayoutConfig) -> Self {
        Self {
            config,
            seed,
            pos: Vec::new(),
            vel: Vec::new(),
            pinned: Vec::new(),
            links: Vec::new(),
            link_bias: Vec::new(),
            link_strength: Vec::new(),
            alpha: 0.0,
            tree: Vec::new(),
            next: Vec::new(),
            stack: Vec::new(),
            far: Bodies::default(),
            near: Bodies::default(),
            offset: Vec::new(),
        }
    }

    /// A small deterministic offset in [-0.5, 0.5) from two numbers and the seed.
    fn jiggle(&self, a: u64, b: u64) -> f32 {
        let mut h = self
            .seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(a.wrapping_mul(0xbf58_476d_1ce4_e5b9))
            .wrapping_add(b.wrapping_mul(0x94d0_49bb_1331_11eb));
        h ^= h >> 31;
        h = h.wrapping_mul(0xd6e8_feca_66d0_9a55);
        h ^= h >> 29;
        ((h >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    /// The graph: `n` nodes, links (a, b, strength 0..=1); links naming a node past `n` are
    /// left out. Nodes below the old `n` keep their places; a new node starts near the first
    /// placed node it links to, else on a spiral around the origin. Reheats when anything
    /// changed.
    pub fn set_graph(&mut self, n: usize, links: &[(u32, u32, f32)]) {
        let old = self.pos.len();
        let links: Vec<(u32, u32, f32)> = links
            .iter()
            .copied()
            .filter(|&(a, b, _)| a != b && (a as usize) < n && (b as usize) < n)
            .map(|(a, b, s)| {
                (
                    a,
                    b,
                    if s.is_finite() {
                        s.clamp(0.0, 1.0)
                    } else {
                        0.5
                    },
                )
            })
            .collect();
        if n == old && links == self.links {
            return;
        }
        // Only strengths changed (links fade): new springs, no new heat. Otherwise heat in
        // proportion to how much of the graph is new, so a trickle of new links nudges the
        // layout instead of shaking it.
        let same_pairs = n == old
            && links.len() == self.links.len()
            && links
                .iter()
                .zip(&self.links)
                .all(|(a, b)| (a.0, a.1) == (b.0, b.1));
        let old_pairs: std::collections::HashSet<(u32, u32)> =
            self.links.iter().map(|l| (l.0, l.1)).collect();
        let new_links = links
            .iter()
            .filter(|l| !old_pairs.contains(&(l.0, l.1)))
            .count();
        let changed = (n.saturating_sub(old)
            + new_links
            + self.links.len().saturating_sub(links.len())) as f32
            / (n + links.len()).max(1) as f32;
        self.pos.truncate(n);
        self.vel.truncate(n);
        self.pinned.truncate(n);
        // Where new nodes start: beside a placed partner if they have one.
        let mut partner: Vec<Option<u32>> = vec![None; n];
        for &(a, b, _) in &links {
            let (a, b) = (a as usize, b as usize);
            if a >= old && b < old && partner[a].is_none() {
                partner[a] = Some(b as u32);
            }
            if b >= old && a < old && partner[b].is_none() {
                partner[b] = Some(a as u32);
            }
        }
        for (i, partner) in partner.iter().enumerate().skip(old) {
            let placed = partner.and_then(|j| self.pos.get(j as usize).copied());
            let p = if let Some(q) = placed {
                let angle = self.jiggle(i as u64, 1) * std::f32::consts::TAU;
                let r = self.config.link_distance * 0.5;
                [q[0] + r * angle.cos(), q[1] + r * angle.sin()]
            } else {
                // d3's phyllotaxis.
                let r = 10.0 * (0.5 + i as f32).sqrt();
                let angle = i as f32 * std::f32::consts::PI * (3.0 - 5.0_f32.sqrt());
                [r * angle.cos(), r * angle.sin()]
            };
            self.pos.push(p);
            self.vel.push([0.0, 0.0]);
            self.pinned.push(None);
        }
        let mut degree = vec![0_u32; n];
        for &(a, b, _) in &links {
            degree[a as usize] += 1;
            degree[b as usize] += 1;
        }
        self.link_bias = links
            .iter()
            .map(|&(a, b, _)| {
                let (da, db) = (degree[a as usize] as f32, degree[b as usize] as f32);
                da / (da + db)
            })
            .collect();
        self.link_strength = links
            .iter()
            .map(|&(a, b, s)| {
                let least = degree[a as usize].min(degree[b as usize]).max(1) as f32;
                (0.2 + 0.8 * s) / least
            })
            .collect();
        self.links = links;
        self.next.resize(n, NONE);
        let offsets: Vec<[f32; 2]> = (0..n)
            .map(|i| {
                [
                    self.jiggle(i as u64, 11) * 1e-3,
                    self.jiggle(i as u64, 13) * 1e-3,
                ]
            })
            .collect();
        self.offset = offsets;
        if !same_pairs {
            self.reheat((0.02 + 3.0 * changed).min(0.3));
        }
    }

    /// Holds node `i` at `pos`; forces no longer move it.
    pub fn pin(&mut self, i: usize, pos: [f32; 2]) {
        if !(pos[0].is_finite() && pos[1].is_finite()) {
            return;
        }
        if let (Some(slot), Some(p), Some(v)) = (
            self.pinned.get_mut(i),
            self.pos.get_mut(i),
            self.vel.get_mut(i),
        ) {
            *slot = Some(pos);
            *p = pos;
            *v = [0.0, 0.0];
        }
    }

    pub fn unpin(&mut self, i: usize) {
        if let Some(slot) = self.pinned.get_mut(i) {
            *slot = None;
        }
    }

    pub fn reheat(&mut self, alpha: f32) {
        if alpha.is_finite() {
            self.alpha = self.alpha.max(alpha.min(1.0));
        }
    }

    #[must_use]
    pub fn settled(&self) -> bool {
        self.alpha < self.config.alpha_min
    }

    #[must_use]
    pub fn alpha(&self) -> f32 {
        self.alpha
    }

    #[must_use]
    pub fn positions(&self) -> &[[f32; 2]] {
        &self.pos
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.pos.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pos.is_empty()
    }

    /// One step; false once at rest (then it does nothing).
    pub fn step(&mut self) -> bool {
        if self.settled() || self.pos.is_empty() {
            self.alpha = self.alpha.min(self.config.alpha_min * 0.5);
            return false;
        }
        self.alpha += (0.0 - self.alpha) * self.config.alpha_decay;
        let alpha = self.alpha;
        self.links_force(alpha);
        self.build_tree();
        self.repulsion(alpha);
        let keep = 1.0 - self.config.velocity_decay;
        let g = self.config.gravity * alpha;
        for i in 0..self.pos.len() {
            if let Some(p) = self.pinned[i] {
                self.pos[i] = p;
                self.vel[i] = [0.0, 0.0];
                continue;
            }
            let (p, v) = (&mut self.pos[i], &mut self.vel[i]);
            v[0] = (v[0] - p[0] * g) * keep;
            v[1] = (v[1] - p[1] * g) * keep;
            if !(v[0].is_finite() && v[1].is_finite()) {
                *v = [0.0, 0.0];
            }
            p[0] += v[0];
            p[1] += v[1];
        }
        !self.settled()
    }

    #[allow(clippy::many_single_char_names)] // the vector maths, named as in d3
    fn links_force(&mut self, alpha: f32) {
        let distance = self.config.link_distance;
        for (k, &(a, b, _)) in self.links.iter().enumerate() {
            let (a, b) = (a as usize, b as usize);
            let mut x = self.pos[b][0] + self.vel[b][0] - self.pos[a][0] - self.vel[a][0];
            let mut y = self.pos[b][1] + self.vel[b][1] - self.pos[a][1] - self.vel[a][1];
            if x == 0.0 {
                x = self.jiggle(a as u64, b as u64) * 1e-6;
            }
            if y == 0.0 {
                y = self.jiggle(b as u64, a as u64) * 1e-6;
            }
            // The floor keeps a spring between two (nearly) coincident ends finite: `x * x`
            // can underflow to 0 even when `x` is not.
            let l = (x * x + y * y).sqrt().max(1e-9);
            let f = (l - distance) / l * alpha * self.link_strength[k];
            let (x, y) = (x * f, y * f);
            let bias = self.link_bias[k];
            self.vel[b][0] -= x * bias;
            self.vel[b][1] -= y * bias;
            self.vel[a][0] += x * (1.0 - bias);
            self.vel[a][1] += y * (1.0 - bias);
        }
    }

    /// The quadtree over the current positions (leaves hold up to [`LEAF_POINTS`]), with each
    /// quad's point count and centre.
    fn build_tree(&mut self) {
        let (mut lo, mut hi) = ([f32::MAX; 2], [f32::MIN; 2]);
        for p in &self.pos {
            for k in 0..2 {
                lo[k] = lo[k].min(p[k]);
                hi[k] = hi[k].max(p[k]);
            }
        }
        let size = (hi[0] - lo[0]).max(hi[1] - lo[1]).max(1.0) * 1.0001;
        self.tree.clear();
        self.tree.push(Quad::new(lo[0], lo[1], size));
        self.next.clear();
        self.next.resize(self.pos.len(), NONE);
        for i in 0..self.pos.len() {
            self.insert_at(i as u32, 0, 0);
        }
        // Children come after their parents: sum from the back.
        for q in (0..self.tree.len()).rev() {
            let quad = self.tree[q];
            let (mut count, mut sx, mut sy) = (0.0_f32, 0.0_f32, 0.0_f32);
            if quad.first == INTERNAL {
                for c in quad.children {
                    if c != 0 {
                        let child = &self.tree[c as usize];
                        count += child.count;
                        sx += child.cx * child.count;
                        sy += child.cy * child.count;
                    }
                }
            } else {
                let mut j = quad.first;
                while j != NONE {
                    let p = self.pos[j as usize];
                    count += 1.0;
                    sx += p[0];
                    sy += p[1];
                    j = self.next[j as usize];
                }
            }
            let quad = &mut self.tree[q];
            quad.count = count;
            if count > 0.0 {
                quad.cx = sx / count;
                quad.cy = sy / count;
            }
        }
    }

    /// Puts point `i` into the tree below quad `q` (at `depth`). While building, a leaf's
    /// `count` is how many points its list holds.
    fn insert_at(&mut self, i: u32, mut q: usize, mut depth: u32) {
        let p = self.pos[i as usize];
        loop {
            let quad = self.tree[q];
            if quad.first == INTERNAL {
                let k = quad.quadrant(p);
                let child = quad.children[k];
                if child == 0 {
                    let half = quad.size / 2.0;
                    let x0 = quad.x0 + if k & 1 == 1 { half } else { 0.0 };
                    let y0 = quad.y0 + if k & 2 == 2 { half } else { 0.0 };
                    let mut leaf = Quad::new(x0, y0, half);
                    leaf.first = i;
                    leaf.count = 1.0;
                    self.next[i as usize] = NONE;
                    self.tree.push(leaf);
                    let idx = (self.tree.len() - 1) as u32;
                    self.tree[q].children[k] = idx;
                    return;
                }
                q = child as usize;
                depth += 1;
                continue;
            }
            if quad.count < LEAF_POINTS as f32 || depth >= MAX_DEPTH {
                // Room in the leaf (or as deep as it goes: coincident points stay together).
                self.next[i as usize] = if quad.first == NONE { NONE } else { quad.first };
                self.tree[q].first = i;
                self.tree[q].count += 1.0;
                return;
            }
            // Full: the leaf becomes internal and its points go one level down.
            let mut j = quad.first;
            {
                let parent = &mut self.tree[q];
                parent.first = INTERNAL;
                parent.children = [0; 4];
                parent.count = 0.0;
            }
            while j != NONE {
                let after = self.next[j as usize];
                self.insert_at(j, q, depth);
                j = after;
            }
        }
    }

    /// Many-body repulsion, a leaf at a time: the tree is walked once per leaf (opening a quad
    /// when it is near any point of the leaf), which gives a list of far bodies and near points
    /// that every point of the leaf then sums in a tight loop.
    #[allow(clippy::many_single_char_names)] // the vector maths, named as in d3
    fn repulsion(&mut self, alpha: f32) {
        let strength = -self.config.repulsion * alpha;
        let theta_sq = self.config.theta * self.config.theta;
        let mut stack = std::mem::take(&mut self.stack);
        let mut far = std::mem::take(&mut self.far);
        let mut near = std::mem::take(&mut self.near);
        for leaf in 0..self.tree.len() {
            let lq = self.tree[leaf];
            if lq.first == INTERNAL || lq.first == NONE {
                continue;
            }
            // The leaf's points and their box.
            let (mut b0, mut b1) = ([f32::MAX; 2], [f32::MIN; 2]);
            let mut j = lq.first;
            while j != NONE {
                let p = self.pos[j as usize];
                for k in 0..2 {
                    b0[k] = b0[k].min(p[k]);
                    b1[k] = b1[k].max(p[k]);
                }
                j = self.next[j as usize];
            }
            far.x.clear();
            far.y.clear();
            far.count.clear();
            near.x.clear();
            near.y.clear();
            stack.clear();
            stack.push(0);
            while let Some(q) = stack.pop() {
                let quad = self.tree[q as usize];
                if quad.count == 0.0 {
                    continue;
                }
                if q as usize != leaf {
                    let dx = (b0[0] - quad.cx).max(quad.cx - b1[0]).max(0.0);
                    let dy = (b0[1] - quad.cy).max(quad.cy - b1[1]).max(0.0);
                    if quad.size * quad.size / theta_sq < dx * dx + dy * dy {
                        far.x.push(quad.cx);
                        far.y.push(quad.cy);
                        far.count.push(quad.count);
                        continue;
                    }
                }
                if quad.first == INTERNAL {
                    stack.extend(quad.children.iter().copied().filter(|&c| c != 0));
                } else {
                    let mut j = quad.first;
                    while j != NONE {
                        let (p, o) = (self.pos[j as usize], self.offset[j as usize]);
                        near.x.push(p[0] + o[0]);
                        near.y.push(p[1] + o[1]);
                        j = self.next[j as usize];
                    }
                }
            }
            let mut i = lq.first;
            while i != NONE {
                let iu = i as usize;
                let p = self.pos[iu];
                let (mut fx, mut fy) = (0.0_f32, 0.0_f32);
                // Far bodies: a branch-free loop over three arrays, which the compiler
                // vectorizes.
                for ((&cx, &cy), &count) in far.x.iter().zip(&far.y).zip(&far.count) {
                    let dx = cx - p[0];
                    let dy = cy - p[1];
                    let w = count / (dx * dx + dy * dy).max(DISTANCE_MIN_SQ);
                    fx += dx * w;
                    fy += dy * w;
                }
                // Near points, each with its own tiny offset so that coincident points still
                // push apart; the point itself is at distance 0 and adds nothing. Branch-free,
                // so it vectorizes too.
                let (px, py) = (p[0] + self.offset[iu][0], p[1] + self.offset[iu][1]);
                for (&qx, &qy) in near.x.iter().zip(&near.y) {
                    let dx = qx - px;
                    let dy = qy - py;
                    let l = dx * dx + dy * dy;
                    let l = if l < DISTANCE_MIN_SQ {
                        (DISTANCE_MIN_SQ * l).sqrt()
                    } else {
                        l
                    };
                    let w = 1.0 / l.max(1e-12);
                    fx += dx * w;
                    fy += dy * w;
                }
                // d3 adds the force to the velocity directly.
                let (fx, fy) = (fx * strength, fy * strength);
                if fx.is_finite() && fy.is_finite() {
                    self.vel[iu][0] += fx;
                    self.vel[iu][1] += fy;
                }
                i = self.next[iu];
            }
        }
        self.stack = stack;
        self.far = far;
        self.near = near;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    fn random_links(n: usize, m: usize, seed: u64) -> Vec<(u32, u32, f32)> {
        let mut state = seed;
        (0..m)
            .map(|_| {
                let a = (xorshift(&mut state) % n as u64) as u32;
                let b = (xorshift(&mut state) % n as u64) as u32;
                (a, b, 0.5)
            })
            .collect()
    }

    fn dist(a: [f32; 2], b: [f32; 2]) -> f32 {
        (a[0] - b[0]).hypot(a[1] - b[1])
    }

    #[test]
    fn a_random_graph_settles() {
        let mut l = ForceLayout::new(1);
        l.set_graph(500, &random_links(500, 800, 3));
        l.reheat(1.0);
        let mut travel = Vec::new();
        let mut steps = 0;
        loop {
            let before = l.positions().to_vec();
            let moving = l.step();
            let moved: f32 = before
                .iter()
                .zip(l.positions())
                .map(|(a, b)| dist(*a, *b))
                .sum::<f32>()
                / 500.0;
            travel.push(moved);
            steps += 1;
            if !moving {
                break;
            }
            assert!(steps < 1000, "never settles");
        }
        assert!(l.settled());
        assert!(!l.step(), "at rest it stays at rest");
        let early: f32 = travel[..10].iter().sum();
        let late: f32 = travel[travel.len() - 10..].iter().sum();
        assert!(
            late < early / 20.0,
            "movement {early} at first, {late} at the end"
        );
        assert!(
            l.positions()
                .iter()
                .all(|p| p[0].is_finite() && p[1].is_finite())
        );
    }

    #[test]
    fn coincident_points_and_odd_input_give_no_nan() {
        let mut l = ForceLayout::new(2);
        assert!(!l.step(), "an empty layout has nothing to do");
        l.set_graph(
            100,
            &[(0, 1, 1.0), (5, 500, 1.0), (7, 7, 1.0), (3, 4, f32::NAN)],
        );
        for i in 0..100 {
            l.pin(i, [5.0, 5.0]);
        }
        l.step();
        for i in 0..100 {
            l.unpin(i);
        }
        l.reheat(1.0);
        for _ in 0..50 {
            l.step();
        }
        let p = l.positions();
        assert!(
            p.iter().all(|p| p[0].is_finite() && p[1].is_finite()),
            "{p:?}"
        );
        assert!(
            dist(p[10], p[20]) > 0.5,
            "coincident points are pushed apart"
        );
        l.pin(3, [f32::NAN, 0.0]);
        assert!(l.positions()[3][0].is_finite(), "a NaN pin is refused");
    }

    #[test]
    fn the_same_seed_gives_the_same_picture() {
        let run = |seed: u64| {
            let mut l = ForceLayout::new(seed);
            l.set_graph(300, &random_links(300, 500, 9));
            for _ in 0..100 {
                l.step();
            }
            l.positions().to_vec()
        };
        assert_eq!(run(4), run(4));
        // Coincident starts are broken by the seed's jiggle: put two graphs on one spot.
        let coincident = |seed: u64| {
            let mut l = ForceLayout::new(seed);
            l.set_graph(50, &[]);
            for i in 0..50 {
                l.pin(i, [0.0, 0.0]);
            }
            l.step();
            for i in 0..50 {
                l.unpin(i);
            }
            for _ in 0..20 {
                l.step();
            }
            l.positions().to_vec()
        };
        assert_ne!(coincident(4), coincident(5));
    }

    #[test]
    #[allow(clippy::many_single_char_names)]
    fn clusters_separate() {
        // Two groups of 60, each a ring with chords (connected, dense), none across.
        let mut links = Vec::new();
        for g in 0..2_u32 {
            for a in 0..60 {
                for step in [1, 7, 13] {
                    links.push((g * 60 + a, g * 60 + (a + step) % 60, 1.0));
                }
            }
        }
        let mut l = ForceLayout::new(3);
        l.set_graph(120, &links);
        l.reheat(1.0);
        while l.step() {}
        let p = l.positions();
        let centre = |g: usize| {
            let s = p[g * 60..g * 60 + 60]
                .iter()
                .fold([0.0, 0.0], |acc, q| [acc[0] + q[0], acc[1] + q[1]]);
            [s[0] / 60.0, s[1] / 60.0]
        };
        let spread = |g: usize| {
            let c = centre(g);
            p[g * 60..g * 60 + 60]
                .iter()
                .map(|q| dist(*q, c))
                .sum::<f32>()
                / 60.0
        };
        let apart = dist(centre(0), centre(1));
        assert!(
            apart > spread(0) + spread(1),
            "clusters {apart} apart, spreads {} and {}",
            spread(0),
            spread(1)
        );
        let linked: f32 = links
            .iter()
            .map(|&(a, b, _)| dist(p[a as usize], p[b as usize]))
            .sum::<f32>()
            / links.len() as f32;
        let unlinked = (0..60).map(|i| dist(p[i], p[60 + i])).sum::<f32>() / 60.0;
        assert!(
            linked < unlinked / 2.0,
            "linked {linked}, unlinked {unlinked}"
        );
    }

    #[test]
    #[allow(clippy::float_cmp)] // a pinned node is exactly where it was put
    fn pinned_nodes_stay_and_growth_keeps_places() {
        let mut l = ForceLayout::new(5);
        l.set_graph(50, &random_links(50, 80, 1));
        for _ in 0..30 {
            l.step();
        }
        l.pin(7, [100.0, -40.0]);
        l.reheat(1.0);
        for _ in 0..50 {
            l.step();
        }
        assert_eq!(l.positions()[7], [100.0, -40.0]);
        let before = l.positions().to_vec();
        let mut links = random_links(50, 80, 1);
        links.push((0, 50, 1.0));
        l.set_graph(51, &links);
        assert_eq!(
            &l.positions()[..50],
            &before[..],
            "old nodes keep their places"
        );
        assert!(
            dist(l.positions()[50], l.positions()[0]) <= 30.0,
            "the new node starts beside its partner"
        );
        assert!(!l.settled(), "a change reheats");
        // Fading links (the same pairs, other strengths) do not wake a layout at rest; one new
        // link among many nudges it a little.
        while l.step() {}
        let faded: Vec<(u32, u32, f32)> = links.iter().map(|&(a, b, _)| (a, b, 0.1)).collect();
        l.set_graph(51, &faded);
        assert!(l.settled(), "fading alone keeps it at rest");
        let mut more = faded.clone();
        more.push((3, 9, 1.0));
        l.set_graph(51, &more);
        assert!(!l.settled() && l.alpha() < 0.1, "alpha {}", l.alpha());
    }

    #[test]
    fn ten_thousand_nodes_step() {
        // Correctness at size (the time is measured by `candybar bench constellation`).
        let mut l = ForceLayout::new(6);
        l.set_graph(10_000, &random_links(10_000, 30_000, 2));
        for _ in 0..3 {
            l.step();
        }
        assert!(
            l.positions()
                .iter()
                .all(|p| p[0].is_finite() && p[1].is_finite())
        );
        assert!(
            l.tree.len() >= 10_000 / 4,
            "a real tree: {} quads",
            l.tree.len()
        );
    }
}
