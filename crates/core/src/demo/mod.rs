//! The demo simulator: a realistic platform built from a registry — agents with sessions,
//! correlation chains (a prompt, the model calls and tool runs it causes, a completion or a
//! failure), heartbeats, both envelope styles. Deterministic for a seed and a clock, so tests
//! and benchmarks see the same events every run. Pure: the caller supplies the time. Mission
//! Control's projects, decisions and risks come from [`mission`].

// Payload structs sit next to the code that fills them, and their field names follow the
// platform's schemas; the two big generators are one `match` each, read top to bottom.
#![allow(
    clippy::items_after_statements,
    clippy::struct_field_names,
    clippy::too_many_lines
)]

mod mission;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::Serialize;

use super::event::{AmqpProps, RawMessage};
use super::registry::Registry;
use super::time::{MICROS_PER_SEC, Micros, format_rfc3339};

#[derive(Clone, Debug)]
pub struct DemoConfig {
    pub seed: u64,
    /// Distinct agents (tens to thousands).
    pub agents: usize,
    /// Share of chains that end in failure, 0..=1.
    pub failure_rate: f64,
    /// Seconds between heartbeats.
    pub heartbeat_secs: u32,
    /// Shorter payloads (events of ~300 bytes instead of ~500), for benchmarks stated at that size.
    pub compact: bool,
    /// Mission Control's events too (projects, decisions, gates, escalations; not when
    /// `compact`): see [`mission`].
    pub mission: bool,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            agents: 24,
            failure_rate: 0.04,
            heartbeat_secs: 5,
            compact: false,
            mission: true,
        }
    }
}

/// The agent types the demo's agents have.
pub const AGENT_TYPES: [&str; 6] = [
    "claude-code",
    "gemini-cli",
    "letta",
    "agno",
    "smolagent",
    "custom",
];
const AGENT_NAMES: [&str; 16] = [
    "momo", "rex", "ada", "lin", "kai", "nova", "otto", "pia", "quill", "rune", "sol", "tess",
    "uma", "vex", "wren", "zed",
];
const MODELS: [&str; 4] = [
    "claude-sonnet-4",
    "gpt-5-mini",
    "gemini-2.5-pro",
    "llama-4-70b",
];
const WORDS: [&str; 24] = [
    "refactor",
    "the",
    "ingest",
    "pipeline",
    "and",
    "add",
    "tests",
    "for",
    "retry",
    "logic",
    "deploy",
    "schema",
    "migration",
    "review",
    "summary",
    "meeting",
    "notes",
    "fix",
    "flaky",
    "timeout",
    "in",
    "consumer",
    "update",
    "docs",
];
const FILES: [&str; 6] = [
    "src/main.rs",
    "src/store.rs",
    "README.md",
    "api/routes.py",
    "web/app.tsx",
    "infra/compose.yml",
];

struct Agent {
    name: String,
    kind: &'static str,
    session: u64,
    events_left_in_session: u32,
}

/// A correlation chain in progress.
struct Chain {
    agent: usize,
    root_id: String,
    last_id: String,
    steps_left: u32,
    style: Style,
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    V1,
    V3,
}

pub struct Demo {
    cfg: DemoConfig,
    rng: Pcg64Mcg,
    agents: Vec<Agent>,
    chains: Vec<Chain>,
    counter: u64,
    last_heartbeat_us: Micros,
    tick: u64,
    /// Producer names from the registry (`hookd`, `llm-gateway`, …) for the v1 `source.app`.
    apps: Apps,
    buf: Vec<u8>,
    mission: Option<mission::MissionSim>,
}

struct Apps {
    hooks: String,
    llm: String,
    fireflies: String,
    board: String,
    heartbeat: String,
    hermes: String,
    voice: String,
}

impl Apps {
    fn from_registry(r: &Registry) -> Self {
        let name = |key: &str, default: &str| {
            r.services
                .get(key)
                .and_then(|s| s.name.clone())
                .unwrap_or_else(|| default.to_owned())
        };
        Self {
            hooks: name("hookd-producer", "hookd"),
            llm: name("llm-gateway", "llm-gateway"),
            fireflies: name("echobox", "echobox"),
            board: name("theboard-producer", "theboard"),
            heartbeat: name("heartbeat-tick", "heartbeat-tick"),
            hermes: name("hermes-agents", "hermes"),
            voice: name("talkytonny", "talkytonny"),
        }
    }
}

#[derive(Serialize)]
struct V1<'a, P: Serialize> {
    event_id: &'a str,
    event_type: &'a str,
    timestamp: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'static str>,
    source: V1Source<'a>,
    correlation_ids: &'a [&'a str],
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_context: Option<V1Agent<'a>>,
    payload: P,
}

#[derive(Serialize)]
struct V1Source<'a> {
    host: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    app: &'a str,
}

#[derive(Serialize)]
struct V1Agent<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    name: &'a str,
    instance_id: &'a str,
}

#[derive(Serialize)]
struct V3<'a, P: Serialize> {
    specversion: &'static str,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    source: &'a str,
    subject: &'a str,
    time: &'a str,
    datacontenttype: &'static str,
    correlationid: &'a str,
    causationid: Option<&'a str>,
    actor: V3Actor<'a>,
    domain: &'a str,
    #[serde(rename = "kind")]
    event_kind: &'static str,
    producer: &'a str,
    service: &'static str,
    data: P,
}

#[derive(Serialize)]
struct V3Actor<'a> {
    agent_id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    cli: &'a str,
    provider: &'static str,
}

/// Agents work in teams of this many: a chain is handed to a teammate now and then.
const TEAM: usize = 8;

/// Who takes the next step of a chain whose last event was `parent`: mostly the same agent, a
/// quarter of the time a teammate (so teams form clusters in the constellation), rarely an agent
/// of another team. Derived from the id, not the random generator, so the seeded feed's other
/// choices stay as they were.
fn handoff(agent: usize, parent: &str, agents: usize) -> usize {
    let h = super::store::id_hash(parent) as usize;
    if agents < 2 || !h.is_multiple_of(4) {
        return agent;
    }
    if (h / 4).is_multiple_of(16) {
        return (h / 64) % agents;
    }
    let team = agent / TEAM * TEAM;
    let size = TEAM.min(agents - team);
    team + (h / 4) % size
}

impl Demo {
    #[must_use]
    pub fn new(cfg: DemoConfig, registry: &Registry) -> Self {
        let mission = (cfg.mission && !cfg.compact).then(|| mission::MissionSim::new(cfg.seed));
        let mut rng = Pcg64Mcg::seed_from_u64(cfg.seed);
        let agents = (0..cfg.agents.max(1))
            .map(|i| {
                let base = AGENT_NAMES[i % AGENT_NAMES.len()];
                let name = if i < AGENT_NAMES.len() {
                    base.to_owned()
                } else {
                    format!("{base}-{}", i / AGENT_NAMES.len())
                };
                Agent {
                    name,
                    kind: AGENT_TYPES[rng.random_range(0..AGENT_TYPES.len())],
                    session: rng.random(),
                    events_left_in_session: rng.random_range(20..200),
                }
            })
            .collect();
        Self {
            cfg,
            rng,
            agents,
            chains: Vec::new(),
            counter: 0,
            last_heartbeat_us: Micros::MIN,
            tick: 0,
            apps: Apps::from_registry(registry),
            buf: Vec::with_capacity(512),
            mission,
        }
    }

    /// The next event, as received at `now_us` (published a little earlier).
    pub fn next_message(&mut self, now_us: Micros) -> RawMessage {
        self.counter += 1;
        let published_us = now_us - self.rng.random_range(200..4_000);
        let time = format_rfc3339(published_us);
        if self.last_heartbeat_us == Micros::MIN
            || now_us - self.last_heartbeat_us
                >= i64::from(self.cfg.heartbeat_secs) * MICROS_PER_SEC
        {
            self.last_heartbeat_us = now_us;
            return self.heartbeat(now_us, &time);
        }
        // Mission Control's events: its past one every other message at first, then a few.
        if self.counter.is_multiple_of(2)
            && let Some(m) = self.mission.as_mut().and_then(|m| m.next(now_us))
        {
            return m;
        }
        // Keep a handful of chains going; start one when there are few.
        if self.chains.len() < 3 + self.agents.len() / 8 || self.rng.random_bool(0.15) {
            return self.start_chain(now_us, &time);
        }
        let idx = self.rng.random_range(0..self.chains.len());
        self.continue_chain(idx, now_us, &time)
    }

    fn new_id(&mut self) -> String {
        let a: u64 = self.rng.random();
        let b: u64 = self.rng.random();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 48) & 0x3fff | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    fn words(&mut self, n: usize) -> String {
        let n = if self.cfg.compact { n.min(2) } else { n };
        let mut s = String::new();
        for i in 0..n {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(WORDS[self.rng.random_range(0..WORDS.len())]);
        }
        s
    }

    fn session_of(&mut self, agent: usize) -> String {
        let a = &mut self.agents[agent];
        if a.events_left_in_session == 0 {
            a.session = a
                .session
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            a.events_left_in_session = 20 + (a.session % 180) as u32;
        }
        a.events_left_in_session -= 1;
        format!("sess-{:012x}", a.session & 0xffff_ffff_ffff)
    }

    fn heartbeat(&mut self, now_us: Micros, time: &str) -> RawMessage {
        self.tick += 1;
        let id = self.new_id();
        #[derive(Serialize)]
        struct Beat {
            tick: u64,
            epoch_ms: i64,
            interval_ms: u32,
        }
        let payload = Beat {
            tick: self.tick,
            epoch_ms: now_us / 1000,
            interval_ms: self.cfg.heartbeat_secs * 1000,
        };
        let app = self.apps.heartbeat.clone();
        self.v1(
            now_us,
            "system.heartbeat.tick",
            &id,
            time,
            &app,
            "heartbeat",
            &[],
            None,
            &payload,
        )
    }

    fn start_chain(&mut self, now_us: Micros, time: &str) -> RawMessage {
        let agent = self.rng.random_range(0..self.agents.len());
        let id = self.new_id();
        let roll = self.rng.random_range(0..100);
        let style = if roll < 20 { Style::V3 } else { Style::V1 };
        let steps = self.rng.random_range(2..7);
        self.chains.push(Chain {
            agent,
            root_id: id.clone(),
            last_id: id.clone(),
            steps_left: steps,
            style,
        });
        let session = self.session_of(agent);
        if style == Style::V3 {
            #[derive(Serialize)]
            struct Inv<'a> {
                task: &'a str,
                repo: &'a str,
                session_id: &'a str,
            }
            let task = self.words(6);
            let data = Inv {
                task: &task,
                repo: "bb",
                session_id: &session,
            };
            return self.v3(
                now_us,
                "bloodbank.v1.agent.invocation.started",
                &id,
                time,
                agent,
                &id,
                None,
                &data,
            );
        }
        match roll % 4 {
            0 if roll > 90 => {
                #[derive(Serialize)]
                struct Upload<'a> {
                    meeting_id: &'a str,
                    title: &'a str,
                    duration_s: u32,
                }
                let title = self.words(4);
                let mid = format!("mtg-{}", self.counter);
                let p = Upload {
                    meeting_id: &mid,
                    title: &title,
                    duration_s: self.rng.random_range(300..5400),
                };
                let app = self.apps.fireflies.clone();
                self.v1(
                    now_us,
                    "fireflies.transcript.upload",
                    &id,
                    time,
                    &app,
                    "file_watch",
                    &[],
                    None,
                    &p,
                )
            }
            1 if roll > 85 => {
                #[derive(Serialize)]
                struct Meeting<'a> {
                    meeting_id: &'a str,
                    topic: &'a str,
                    participants: u32,
                }
                let topic = self.words(5);
                let mid = format!("board-{}", self.counter);
                let p = Meeting {
                    meeting_id: &mid,
                    topic: &topic,
                    participants: self.rng.random_range(2..7),
                };
                let app = self.apps.board.clone();
                self.v1(
                    now_us,
                    "theboard.meeting.started",
                    &id,
                    time,
                    &app,
                    "agent",
                    &[],
                    Some((agent, &session)),
                    &p,
                )
            }
            _ => {
                #[derive(Serialize)]
                struct Prompt<'a> {
                    prompt: &'a str,
                    session_id: &'a str,
                    tokens: u32,
                    working_dir: &'static str,
                }
                let text = self.words(10);
                let p = Prompt {
                    prompt: &text,
                    session_id: &session,
                    tokens: self.rng.random_range(20..900),
                    working_dir: "/home/dev/code/platform",
                };
                let app = self.apps.hooks.clone();
                self.v1(
                    now_us,
                    "agent.thread.prompt",
                    &id,
                    time,
                    &app,
                    "hook",
                    &[],
                    Some((agent, &session)),
                    &p,
                )
            }
        }
    }

    fn continue_chain(&mut self, idx: usize, now_us: Micros, time: &str) -> RawMessage {
        let id = self.new_id();
        let agents = self.agents.len();
        let (agent, parent, root, last_step, style) = {
            let c = &mut self.chains[idx];
            c.steps_left = c.steps_left.saturating_sub(1);
            let parent = std::mem::replace(&mut c.last_id, id.clone());
            c.agent = handoff(c.agent, &parent, agents);
            (
                c.agent,
                parent,
                c.root_id.clone(),
                c.steps_left == 0,
                c.style,
            )
        };
        if last_step {
            self.chains.swap_remove(idx);
        }
        let failed = last_step && self.rng.random_bool(self.cfg.failure_rate.clamp(0.0, 1.0));
        let session = self.session_of(agent);
        if style == Style::V3 {
            #[derive(Serialize)]
            struct Outcome<'a> {
                summary: &'a str,
                duration_ms: u32,
                #[serde(skip_serializing_if = "Option::is_none")]
                error_message: Option<&'a str>,
            }
            let summary = self.words(8);
            let (kind, err) = match (last_step, failed) {
                (true, true) => (
                    "bloodbank.v1.agent.invocation.failed",
                    Some("tool call timed out after 120s"),
                ),
                (true, false) => ("bloodbank.v1.agent.invocation.completed", None),
                _ => ("bloodbank.v1.agent.plan.recorded", None),
            };
            let d = Outcome {
                summary: &summary,
                duration_ms: self.rng.random_range(50..90_000),
                error_message: err,
            };
            return self.v3(now_us, kind, &id, time, agent, &root, Some(&parent), &d);
        }
        let corr = [parent.as_str()];
        let roll = self.rng.random_range(0..100);
        if last_step {
            #[derive(Serialize)]
            struct Done<'a> {
                response: &'a str,
                tokens: u32,
                #[serde(skip_serializing_if = "Option::is_none")]
                error_code: Option<&'a str>,
                #[serde(skip_serializing_if = "Option::is_none")]
                is_retryable: Option<bool>,
            }
            let text = self.words(12);
            let kind = if failed {
                "agent.thread.error"
            } else {
                "agent.thread.response"
            };
            let p = Done {
                response: &text,
                tokens: self.rng.random_range(50..4000),
                error_code: failed.then_some("E_TIMEOUT"),
                is_retryable: failed.then_some(true),
            };
            let app = self.apps.hooks.clone();
            return self.v1(
                now_us,
                kind,
                &id,
                time,
                &app,
                "hook",
                &corr,
                Some((agent, &session)),
                &p,
            );
        }
        if roll < 40 {
            #[derive(Serialize)]
            struct Llm<'a> {
                model: &'a str,
                tokens_in: u32,
                tokens_out: u32,
                latency_ms: u32,
                cost_usd: f64,
            }
            let model = MODELS[self.rng.random_range(0..MODELS.len())];
            let tin = self.rng.random_range(100..20_000);
            let p = Llm {
                model,
                tokens_in: tin,
                tokens_out: self.rng.random_range(10..4000),
                latency_ms: self.rng.random_range(200..30_000),
                cost_usd: f64::from(tin) * 3e-6,
            };
            let app = self.apps.llm.clone();
            let kind = if self.rng.random_bool(0.02) {
                "llm.error"
            } else {
                "llm.response"
            };
            self.v1(
                now_us,
                kind,
                &id,
                time,
                &app,
                "service",
                &corr,
                Some((agent, &session)),
                &p,
            )
        } else if roll < 75 {
            #[derive(Serialize)]
            struct Tool<'a> {
                tool: &'static str,
                path: &'static str,
                bytes: u32,
                description: &'a str,
            }
            let desc = self.words(5);
            let (kind, tool) = match roll % 3 {
                0 => ("tool.mutation.write", "Write"),
                1 => ("tool.mutation.edit", "Edit"),
                _ => ("agent.tool.invoked", "Bash"),
            };
            let p = Tool {
                tool,
                path: FILES[self.rng.random_range(0..FILES.len())],
                bytes: self.rng.random_range(10..40_000),
                description: &desc,
            };
            let app = self.apps.hooks.clone();
            self.v1(
                now_us,
                kind,
                &id,
                time,
                &app,
                "hook",
                &corr,
                Some((agent, &session)),
                &p,
            )
        } else if roll < 90 {
            #[derive(Serialize)]
            struct Ready<'a> {
                meeting_id: &'a str,
                words: u32,
                summary: &'a str,
            }
            let summary = self.words(9);
            let mid = format!("mtg-{}", self.counter);
            let p = Ready {
                meeting_id: &mid,
                words: self.rng.random_range(500..20_000),
                summary: &summary,
            };
            let (kind, app) = if self.rng.random_bool(0.5) {
                ("fireflies.transcript.ready", self.apps.fireflies.clone())
            } else {
                ("theboard.meeting.round_completed", self.apps.board.clone())
            };
            self.v1(
                now_us,
                kind,
                &id,
                time,
                &app,
                "service",
                &corr,
                Some((agent, &session)),
                &p,
            )
        } else {
            #[derive(Serialize)]
            struct Voice<'a> {
                text: &'a str,
                duration_seconds: f64,
                model: &'static str,
            }
            let text = self.words(7);
            let p = Voice {
                text: &text,
                duration_seconds: f64::from(self.rng.random_range(10..300u32)) / 10.0,
                model: "ggml-tiny.en",
            };
            let app = self.apps.voice.clone();
            self.v1(
                now_us,
                "talkytonny.transcription.completed",
                &id,
                time,
                &app,
                "manual",
                &corr,
                None,
                &p,
            )
        }
    }

    #[allow(clippy::too_many_arguments)] // one place that assembles an envelope from its parts
    fn v1<P: Serialize>(
        &mut self,
        now_us: Micros,
        kind: &str,
        id: &str,
        time: &str,
        app: &str,
        trigger: &'static str,
        corr: &[&str],
        agent: Option<(usize, &str)>,
        payload: &P,
    ) -> RawMessage {
        let agent = agent.filter(|_| !self.cfg.compact);
        let agent_context = agent.map(|(a, session)| V1Agent {
            kind: self.agents[a].kind,
            name: &self.agents[a].name,
            instance_id: session,
        });
        let env = V1 {
            event_id: id,
            event_type: kind,
            timestamp: time,
            version: (!self.cfg.compact).then_some("1.0.0"),
            source: V1Source {
                host: "devbox-01",
                kind: trigger,
                app,
            },
            correlation_ids: corr,
            agent_context,
            payload,
        };
        self.buf.clear();
        // Serializing plain structs into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.buf, &env);
        RawMessage {
            received_us: now_us,
            routing_key: kind.to_owned(),
            props: Some(Box::new(AmqpProps {
                message_id: Some(id.to_owned()),
                content_type: Some("application/json".into()),
                ..AmqpProps::default()
            })),
            body: self.buf.clone(),
            precut: None,
        }
    }

    #[allow(clippy::too_many_arguments)] // as above, for the CloudEvents style
    fn v3<P: Serialize>(
        &mut self,
        now_us: Micros,
        kind: &str,
        id: &str,
        time: &str,
        agent: usize,
        correlation: &str,
        causation: Option<&str>,
        data: &P,
    ) -> RawMessage {
        let name = &self.agents[agent].name;
        let source = format!("hermes://agent/{name}");
        let producer = format!("{}:{name}", self.apps.hermes);
        let subject = kind.replacen("bloodbank.v1.", "bloodbank.evt.v1.", 1);
        let domain = super::event::domain_of_type(kind);
        let env = V3 {
            specversion: "1.0",
            id,
            kind,
            source: &source,
            subject: &subject,
            time,
            datacontenttype: "application/json",
            correlationid: correlation,
            causationid: causation,
            actor: V3Actor {
                agent_id: name,
                kind: "agent_cli",
                cli: self.agents[agent].kind,
                provider: "anthropic",
            },
            domain,
            event_kind: "event",
            producer: &producer,
            service: "bb",
            data,
        };
        self.buf.clear();
        let _ = serde_json::to_writer(&mut self.buf, &env);
        RawMessage {
            received_us: now_us,
            routing_key: subject,
            props: None,
            body: self.buf.clone(),
            precut: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode;
    use crate::event::{BodyKind, Status};

    fn run(seed: u64, n: usize) -> Vec<RawMessage> {
        let mut d = Demo::new(
            DemoConfig {
                seed,
                ..DemoConfig::default()
            },
            &Registry::example(),
        );
        (0..n)
            .map(|i| d.next_message(1_767_225_600_000_000 + i as i64 * 10_000))
            .collect()
    }

    #[test]
    fn deterministic_by_seed() {
        let a = run(7, 500);
        let b = run(7, 500);
        let c = run(8, 500);
        assert!(
            a.iter()
                .zip(&b)
                .all(|(x, y)| x.body == y.body && x.routing_key == y.routing_key)
        );
        assert!(a.iter().zip(&c).any(|(x, y)| x.body != y.body));
    }

    #[test]
    fn a_living_platform() {
        let msgs = run(1, 5000);
        let decoded: Vec<_> = msgs.iter().map(decode).collect();
        let count = |f: &dyn Fn(&crate::decode::Decoded<'_>) -> bool| {
            decoded.iter().filter(|d| f(d)).count()
        };
        assert!(count(&|d| d.header.body_kind == BodyKind::BloodbankV1) > 2500);
        assert!(count(&|d| d.header.body_kind == BodyKind::CloudEvents) > 300);
        assert!(count(&|d| d.status == Status::Error) > 10);
        assert!(count(&|d| d.kind == "system.heartbeat.tick") >= 9);
        assert!(count(&|d| !d.header.correlation_ids.is_empty()) > 2000);
        assert!(count(&|d| d.header.agent.is_some()) > 3000);
        assert!(count(&|d| d.header.session.is_some()) > 3000);
        let mut domains: Vec<&str> = decoded.iter().map(|d| &*d.domain).collect();
        domains.sort_unstable();
        domains.dedup();
        assert!(domains.len() >= 7, "{domains:?}");
        let mean = msgs.iter().map(|m| m.body.len()).sum::<usize>() / msgs.len();
        assert!((250..=500).contains(&mean), "mean body {mean} B");
        // Correlation chains link back to real events.
        let ids: std::collections::HashSet<_> =
            decoded.iter().filter_map(|d| d.id.as_deref()).collect();
        let linked = decoded
            .iter()
            .flat_map(|d| d.header.correlation_ids.iter())
            .filter(|c| ids.contains(&***c))
            .count();
        assert!(linked > 2000);
    }
}
