// The agent constellation: stars (one instanced quad per agent, a soft glow drawn in the
// fragment shader) and links (one instanced quad per link). Positions live in one storage
// buffer that both draws index, so a layout step uploads 8 bytes per agent and nothing else.

struct Uniforms {
    // World point at the centre of the view, and pixels per world unit.
    center: vec2<f32>,
    scale: f32,
    // Seconds on the app's clock (pulses are measured against it).
    time: f32,
    // The view's size in physical pixels.
    size_px: vec2<f32>,
    // Star radius in pixels at size 1.
    star_px: f32,
    pixels_per_point: f32,
};

@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> positions: array<vec2<f32>>;

// Two triangles covering [-1, 1]².
fn corner(i: u32) -> vec2<f32> {
    var c = array<vec2<f32>, 6>(
        vec2<f32>(-1.0, -1.0), vec2<f32>(1.0, -1.0), vec2<f32>(1.0, 1.0),
        vec2<f32>(-1.0, -1.0), vec2<f32>(1.0, 1.0), vec2<f32>(-1.0, 1.0),
    );
    return c[i];
}

// World → clip space of the view's viewport.
fn to_clip(px: vec2<f32>) -> vec4<f32> {
    let ndc = px / (u.size_px * 0.5);
    return vec4<f32>(ndc.x, -ndc.y, 0.0, 1.0);
}

fn world_to_px(p: vec2<f32>) -> vec2<f32> {
    return (p - u.center) * u.scale;
}

struct StarOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) uv: vec2<f32>,
    @location(1) color: vec4<f32>,
    @location(2) pulse: f32,
};

@vertex
fn star_vs(
    @builtin(vertex_index) vi: u32,
    @builtin(instance_index) ii: u32,
    @location(0) color: vec4<f32>,
    @location(1) size: f32,
    @location(2) last_event: f32,
) -> StarOut {
    let age = max(u.time - last_event, 0.0);
    let pulse = exp(-age * 3.0);
    let radius = u.star_px * size * (1.0 + 0.8 * pulse) * u.pixels_per_point;
    let c = corner(vi);
    // The quad is larger than the star: the glow needs room.
    let px = world_to_px(positions[ii]) + c * radius * 2.5;
    var out: StarOut;
    out.clip = to_clip(px);
    out.uv = c * 2.5;
    out.color = color;
    out.pulse = pulse;
    return out;
}

@fragment
fn star_fs(in: StarOut) -> @location(0) vec4<f32> {
    let d = length(in.uv);
    let core = 1.0 - smoothstep(0.8, 1.0, d);
    let glow = exp(-d * d * 1.2) * (0.35 + 0.5 * in.pulse);
    let white = vec3<f32>(1.0, 1.0, 1.0);
    let rgb = mix(in.color.rgb, white, 0.55 * in.pulse * core);
    let a = clamp(max(core, glow) * in.color.a, 0.0, 1.0);
    // Premultiplied, as egui's render target expects.
    return vec4<f32>(rgb * a, a);
}

struct LinkOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) color: vec4<f32>,
    @location(1) across: f32,
};

@vertex
fn link_vs(
    @builtin(vertex_index) vi: u32,
    @location(0) ends: vec2<u32>,
    @location(1) color: vec4<f32>,
    @location(2) width: f32,
) -> LinkOut {
    let a = world_to_px(positions[ends.x]);
    let b = world_to_px(positions[ends.y]);
    let d = b - a;
    let len = max(length(d), 0.0001);
    let dir = d / len;
    let normal = vec2<f32>(-dir.y, dir.x);
    let c = corner(vi);
    let half_width = 0.5 * width * u.pixels_per_point + 0.75;
    // x of the corner picks the end, y the side.
    let along = select(a, b, c.x > 0.0);
    let px = along + normal * c.y * half_width;
    var out: LinkOut;
    out.clip = to_clip(px);
    out.color = color;
    out.across = c.y;
    return out;
}

@fragment
fn link_fs(in: LinkOut) -> @location(0) vec4<f32> {
    // Soft edges: full in the middle, fading over the outer part of the quad.
    let a = in.color.a * (1.0 - smoothstep(0.4, 1.0, abs(in.across)));
    return vec4<f32>(in.color.rgb * a, a);
}
