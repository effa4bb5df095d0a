//! The agents on the bus and who works with whom — the model behind the constellation view.
//!
//! An agent is named by its envelope (`agent_context.name` / `instance_id` in v1, `actor` in v3).
//! Two agents are linked when they work together: events of one correlation chain (a shared
//! correlation id), one agent's event caused by another's (its causation id is the other's event
//! id: output consumed), or the same session. Links carry a weight that halves every
//! [`LINK_HALF_LIFE_SECS`] without new evidence and are dropped when it fades, so the picture
//! follows what happens now. Everything is bounded: agents, links, and the ids remembered to
//! find partners.

use rustc_hash::FxHashMap;

use super::aggregates::SourceStats;
use super::event::EventMeta;
use super::event::Status;
use super::intern::Sym;
use super::time::{MICROS_PER_SEC, Micros};

/// A link's weight halves after this long without new evidence.
pub const LINK_HALF_LIFE_SECS: f64 = 600.0;
/// Links weaker than this are dropped (one event's link fades after ~4 half-lives).
const LINK_MIN_WEIGHT: f32 = 0.06;
/// Agents kept at most; later ones are counted in [`AgentGraph::dropped`] only.
pub const MAX_AGENTS: usize = 100_000;
/// Links kept at most; past it, the faded ones go and then the weakest.
pub const MAX_LINKS: usize = 300_000;
/// Ids (correlation, event, session) remembered per generation to find partners.
const REMEMBERED_IDS: usize = 1 << 17;
/// How often (inserts) faded links are swept.
const PRUNE_EVERY: u64 = 1 << 14;

/// Why two agents are linked (bits of [`Link::kinds`]).
pub mod link_kind {
    /// Events of one correlation chain.
    pub const CHAIN: u8 = 1;
    /// One's event caused by the other's (output consumed).
    pub const CONSUMED: u8 = 2;
    /// The same session.
    pub const SESSION: u8 = 4;
}

#[derive(Clone, Debug)]
pub struct Agent {
    pub name: Sym,
    /// The agent's type (`claude-code`, `letta`, …), [`Sym::NONE`] when unknown.
    pub kind: Sym,
    /// Events, errors, last seen, events per minute.
    pub stats: SourceStats,
    /// Sessions seen (distinct among the last few).
    pub sessions: u32,
    recent_sessions: Vec<Sym>,
    pub last_session: Sym,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Link {
    /// Weight at `last_us` (each event adds 1, a consumed output 2).
    weight: f32,
    pub last_us: Micros,
    pub kinds: u8,
    pub events: u32,
}

impl Link {
    /// The weight as of `now_us`, faded.
    #[must_use]
    pub fn weight(&self, now_us: Micros) -> f32 {
        let age_secs = ((now_us - self.last_us).max(0) as f64) / MICROS_PER_SEC as f64;
        self.weight * (0.5_f64.powf(age_secs / LINK_HALF_LIFE_SECS) as f32)
    }
}

/// A bounded id → agent memory: two generations, the older dropped when the newer fills.
#[derive(Default)]
struct Remembered<K: std::hash::Hash + Eq> {
    new: FxHashMap<K, u32>,
    old: FxHashMap<K, u32>,
}

impl<K: std::hash::Hash + Eq + Copy> Remembered<K> {
    fn get(&self, k: K) -> Option<u32> {
        self.new.get(&k).or_else(|| self.old.get(&k)).copied()
    }

    fn insert(&mut self, k: K, v: u32) {
        if self.new.len() >= REMEMBERED_IDS {
            self.old = std::mem::take(&mut self.new);
        }
        self.new.insert(k, v);
    }
}

#[derive(Default)]
pub struct AgentGraph {
    pub agents: Vec<Agent>,
    index: FxHashMap<Sym, u32>,
    /// (lower index, higher index) → link.
    links: FxHashMap<(u32, u32), Link>,
    by_corr: Remembered<u32>,
    by_event: Remembered<u32>,
    by_session: Remembered<Sym>,
    /// Bumped when agents or links come or go (the layout's graph changes).
    structure_version: u64,
    /// Bumped on every agent event (sizes, pulses, colours change).
    activity_version: u64,
    inserts: u64,
    /// Agents not kept because [`MAX_AGENTS`] were already known.
    pub dropped: u64,
}

impl AgentGraph {
    /// Takes one stored event into account (the store calls this for every insert).
    pub fn record(&mut self, meta: &EventMeta) {
        self.inserts += 1;
        if self.inserts.is_multiple_of(PRUNE_EVERY) {
            self.prune(meta.received_us);
        }
        if meta.agent.is_none() {
            return;
        }
        let Some(idx) = self.agent_index(meta.agent) else {
            self.dropped += 1;
            return;
        };
        self.activity_version += 1;
        let now = meta.received_us;
        if let Some(a) = self.agents.get_mut(idx as usize) {
            a.stats.add(now, meta.status == Status::Error);
            if !meta.agent_type.is_none() {
                a.kind = meta.agent_type;
            }
            if !meta.session.is_none() && a.last_session != meta.session {
                a.last_session = meta.session;
                if !a.recent_sessions.contains(&meta.session) {
                    a.sessions += 1;
                    if a.recent_sessions.len() >= 16 {
                        a.recent_sessions.remove(0);
                    }
                    a.recent_sessions.push(meta.session);
                }
            }
        }
        if meta.corr_hash != 0 {
            if let Some(other) = self.by_corr.get(meta.corr_hash) {
                self.link(idx, other, link_kind::CHAIN, 1.0, now);
            }
            self.by_corr.insert(meta.corr_hash, idx);
        }
        if meta.cause_hash != 0
            && let Some(other) = self.by_event.get(meta.cause_hash)
        {
            self.link(idx, other, link_kind::CONSUMED, 2.0, now);
        }
        if meta.id_hash != 0 {
            self.by_event.insert(meta.id_hash, idx);
        }
        if !meta.session.is_none() {
            if let Some(other) = self.by_session.get(meta.session) {
                self.link(idx, other, link_kind::SESSION, 0.5, now);
            }
            self.by_session.insert(meta.session, idx);
        }
    }

    fn agent_index(&mut self, name: Sym) -> Option<u32> {
        if let Some(&i) = self.index.get(&name) {
            return Some(i);
        }
        if self.agents.len() >= MAX_AGENTS {
            return None;
        }
        let i = self.agents.len() as u32;
        self.agents.push(Agent {
            name,
            kind: Sym::NONE,
            stats: SourceStats::default(),
            sessions: 0,
            recent_sessions: Vec::new(),
            last_session: Sym::NONE,
        });
        self.index.insert(name, i);
        self.structure_version += 1;
        Some(i)
    }

    fn link(&mut self, a: u32, b: u32, kind: u8, add: f32, now_us: Micros) {
        if a == b {
            return;
        }
        let key = (a.min(b), a.max(b));
        if let Some(l) = self.links.get_mut(&key) {
            l.weight = l.weight(now_us) + add;
            l.last_us = l.last_us.max(now_us);
            l.kinds |= kind;
            l.events = l.events.saturating_add(1);
            return;
        }
        if self.links.len() >= MAX_LINKS {
            self.prune(now_us);
            if self.links.len() >= MAX_LINKS {
                return;
            }
        }
        self.links.insert(
            key,
            Link {
                weight: add,
                last_us: now_us,
                kinds: kind,
                events: 1,
            },
        );
        self.structure_version += 1;
    }

    /// Drops links that have faded by `now_us`; when still too many, the weakest tenth.
    pub fn prune(&mut self, now_us: Micros) {
        let before = self.links.len();
        self.links
            .retain(|_, l| l.weight(now_us) >= LINK_MIN_WEIGHT);
        if self.links.len() >= MAX_LINKS {
            let mut w: Vec<f32> = self.links.values().map(|l| l.weight(now_us)).collect();
            let cut_at = w.len() / 10;
            w.select_nth_unstable_by(cut_at, f32::total_cmp);
            let cut = w.get(cut_at).copied().unwrap_or(0.0);
            self.links.retain(|_, l| l.weight(now_us) > cut);
        }
        if self.links.len() != before {
            self.structure_version += 1;
        }
    }

    #[must_use]
    pub fn agent(&self, name: Sym) -> Option<usize> {
        self.index.get(&name).map(|&i| i as usize)
    }

    pub fn links(&self) -> impl Iterator<Item = ((u32, u32), &Link)> {
        self.links.iter().map(|(k, l)| (*k, l))
    }

    #[must_use]
    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    /// The link between two agents, if any.
    #[must_use]
    pub fn link_between(&self, a: usize, b: usize) -> Option<&Link> {
        let (a, b) = (a as u32, b as u32);
        self.links.get(&(a.min(b), a.max(b)))
    }

    /// How many agents `i` works with (the hover card).
    #[must_use]
    pub fn partners(&self, i: usize) -> usize {
        self.links
            .keys()
            .filter(|&&(a, b)| a as usize == i || b as usize == i)
            .count()
    }

    /// The links for a layout: (a, b, strength 0..1 growing with the faded weight), in a stable
    /// order.
    #[must_use]
    pub fn layout_links(&self, now_us: Micros) -> Vec<(u32, u32, f32)> {
        let mut v: Vec<(u32, u32, f32)> = self
            .links
            .iter()
            .map(|(&(a, b), l)| (a, b, 1.0 - (-l.weight(now_us)).exp()))
            .collect();
        v.sort_unstable_by_key(|&(a, b, _)| (a, b));
        v
    }

    /// Changes when agents or links come or go.
    #[must_use]
    pub fn structure_version(&self) -> u64 {
        self.structure_version
    }

    /// Changes on every agent event.
    #[must_use]
    pub fn activity_version(&self) -> u64 {
        self.activity_version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::id_hash;

    fn meta(
        agent: u32,
        at_secs: i64,
        corr: &str,
        id: &str,
        cause: &str,
        session: u32,
    ) -> EventMeta {
        let h = |s: &str| if s.is_empty() { 0 } else { id_hash(s) };
        EventMeta {
            received_us: 1_767_225_600 * MICROS_PER_SEC + at_secs * MICROS_PER_SEC,
            published_us: crate::event::NO_TIME,
            id_hash: h(id),
            corr_hash: h(corr),
            cause_hash: h(cause),
            kind: Sym(1),
            routing_key: Sym::NONE,
            domain: Sym(2),
            source: Sym(3),
            agent: Sym(agent),
            agent_type: Sym(9),
            session: Sym(session),
            size_bytes: 100,
            status: Status::Other,
            body_kind: crate::event::BodyKind::OtherJson,
            flags: 0,
        }
    }

    #[test]
    #[allow(clippy::many_single_char_names)] // four agents, a b c d
    fn chains_consumption_and_sessions_link_agents() {
        let mut g = AgentGraph::default();
        g.record(&meta(10, 0, "c1", "e1", "", 100)); // a starts chain c1
        g.record(&meta(11, 1, "c1", "e2", "e1", 101)); // b continues it, consuming a's output
        g.record(&meta(12, 2, "c2", "e3", "", 102)); // c alone
        g.record(&meta(13, 3, "c3", "e4", "", 102)); // d in c's session
        assert_eq!(g.agents.len(), 4);
        let (a, b, c, d) = (
            g.agent(Sym(10)).unwrap(),
            g.agent(Sym(11)).unwrap(),
            g.agent(Sym(12)).unwrap(),
            g.agent(Sym(13)).unwrap(),
        );
        let ab = g.link_between(a, b).expect("a and b work together");
        assert_eq!(ab.kinds, link_kind::CHAIN | link_kind::CONSUMED);
        assert!((ab.weight(ab.last_us) - 3.0).abs() < 1e-6);
        let cd = g.link_between(c, d).expect("same session");
        assert_eq!(cd.kinds, link_kind::SESSION);
        assert!(g.link_between(a, c).is_none());
        assert_eq!(g.agents[a].kind, Sym(9));
        assert_eq!(g.agents[b].stats.events, 1);
        // Nothing links an agent to itself.
        g.record(&meta(10, 4, "c1", "e5", "e1", 100));
        assert_eq!(g.link_count(), 2);
        assert_eq!((g.partners(a), g.partners(c)), (1, 1));
    }

    #[test]
    fn links_fade_and_go() {
        let mut g = AgentGraph::default();
        g.record(&meta(1, 0, "c", "", "", 0));
        g.record(&meta(2, 0, "c", "", "", 0));
        let l = *g.link_between(0, 1).unwrap();
        let half = l.last_us + (LINK_HALF_LIFE_SECS as i64) * MICROS_PER_SEC;
        assert!((l.weight(half) - 0.5).abs() < 1e-4);
        let v = g.structure_version();
        g.prune(half);
        assert_eq!(g.link_count(), 1, "half a weight is still a link");
        g.prune(l.last_us + 5 * (LINK_HALF_LIFE_SECS as i64) * MICROS_PER_SEC);
        assert_eq!(g.link_count(), 0, "faded away");
        assert!(g.structure_version() > v, "the layout hears about it");
    }

    #[test]
    fn memory_is_bounded() {
        let mut g = AgentGraph::default();
        // More correlation ids than remembered: the oldest are forgotten, not kept forever.
        for i in 0..(REMEMBERED_IDS as u32 * 2 + 10) {
            let mut m = meta(1 + i % 50, 0, "", "", "", 0);
            m.corr_hash = i + 1;
            g.record(&m);
        }
        assert!(g.by_corr.new.len() + g.by_corr.old.len() <= 2 * REMEMBERED_IDS);
        assert_eq!(g.agents.len(), 50);
        assert_eq!(g.link_count(), 0, "no chain was shared");
    }
}
