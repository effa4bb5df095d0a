//! The event flow between services, as the Flow view draws it: services from the registry in
//! their topology layers, an edge from a producer to each consumer whose bindings receive what
//! it publishes — declared in the registry (`produces` against `routing_keys`, `consumes` and
//! `event_subscriptions`, with AMQP's `*`/`#`) or discovered from traffic (a source seen
//! publishing a type it does not declare) — and "unknown producer" nodes for sources no service
//! owns. Rates come from the store's running aggregates; nothing here knows about drawing.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use super::aggregates::Aggregates;
use super::glob::{GlobMode, topic_matches};
use super::intern::{Interner, Sym};
use super::registry::{Registry, SourceOwners};
use super::time::Micros;

/// Seconds over which a live rate is averaged.
const RATE_SECS: usize = 5;

#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::struct_excessive_bools)] // independent facts about one service
pub struct FlowNode {
    /// The service key, or the source's name for an unknown producer.
    pub key: String,
    pub label: String,
    /// Index into [`FlowGraph::layers`].
    pub layer: usize,
    pub active: bool,
    pub producer: bool,
    pub consumer: bool,
    /// A source seen on the bus that no registry service owns.
    pub unknown: bool,
    /// Events per second it published lately, and their error share.
    pub rate: f64,
    pub error_share: f64,
    /// Event types it was seen publishing that no consumer receives.
    pub unrouted: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EdgeType {
    /// Shared among the edges that carry it.
    pub event_type: std::sync::Arc<str>,
    pub declared: bool,
    pub rate: f64,
    pub error_share: f64,
    /// Events of this type from this producer since start.
    pub events: u64,
    /// Index into the graph's feeds: the traffic this type's figures come from.
    feed: usize,
}

/// One producer publishing one type — the `(source, type)` pairs of the aggregates behind it
/// (a service may publish under several source names). Edges carrying the type, and the
/// producer's node, take their figures from it.
#[derive(Clone, Debug, Default, PartialEq)]
struct Feed {
    node: usize,
    keys: Vec<(Sym, Sym)>,
}

impl Feed {
    /// (events since start, events/s lately, error share lately) over the feed's pairs.
    fn stats(&self, aggregates: &Aggregates, now_us: Micros) -> (u64, f64, f64) {
        let (mut events, mut rate, mut share) = (0_u64, 0.0_f64, 0.0_f64);
        for key in &self.keys {
            let Some(stats) = aggregates.by_flow.get(key) else {
                continue;
            };
            let (r, sh) = stats.recent(now_us, RATE_SECS);
            // Several sources of one service: rates add, error shares weigh by rate.
            let total = rate + r;
            share = if total > 0.0 {
                (share * rate + sh * r) / total
            } else {
                0.0
            };
            events += stats.events;
            rate = total;
        }
        (events, rate, share)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct FlowEdge {
    pub from: usize,
    pub to: usize,
    /// What flows along it, busiest first.
    pub types: Vec<EdgeType>,
}

impl FlowEdge {
    /// Declared in the registry (at least one of its types), or only seen in traffic.
    #[must_use]
    pub fn declared(&self) -> bool {
        self.types.iter().any(|t| t.declared)
    }

    #[must_use]
    pub fn rate(&self) -> f64 {
        self.types.iter().map(|t| t.rate).sum()
    }

    #[must_use]
    pub fn error_share(&self) -> f64 {
        let rate = self.rate();
        if rate <= 0.0 {
            return 0.0;
        }
        self.types
            .iter()
            .map(|t| t.rate * t.error_share)
            .sum::<f64>()
            / rate
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlowGraph {
    /// Layer names, left to right.
    pub layers: Vec<String>,
    pub nodes: Vec<FlowNode>,
    pub edges: Vec<FlowEdge>,
    feeds: Vec<Feed>,
    /// How many `(source, type)` pairs the aggregates held when this was built: a new pair may
    /// add an edge or a node, anything else only changes rates ([`FlowGraph::refresh_rates`]).
    flows_seen: usize,
}

/// Who receives an event type by the registry: bindings (`routing_keys`, AMQP `*`/`#`),
/// `consumes` and `event_subscriptions`. Literal keys are looked up, only wildcard bindings are
/// matched, and answers are kept: a new traffic pair rebuilds the graph, the registry rarely
/// changes. Make a new one when it does.
#[derive(Default)]
pub struct Routes {
    /// Event type → service keys, from literal bindings, `consumes` and subscriptions.
    exact: FxHashMap<String, Vec<String>>,
    /// (pattern, service key) for bindings with `*` or `#`.
    patterns: Vec<(String, String)>,
    memo: FxHashMap<String, Vec<String>>,
}

impl Routes {
    #[must_use]
    pub fn new(registry: &Registry) -> Self {
        let mut routes = Self::default();
        let mut add = |t: &str, key: &str| {
            let keys = routes.exact.entry(t.to_owned()).or_default();
            if !keys.iter().any(|k| k == key) {
                keys.push(key.to_owned());
            }
        };
        for (key, s) in &registry.services {
            for p in &s.routing_keys {
                if p.contains(['*', '#']) {
                    routes.patterns.push((p.clone(), key.clone()));
                } else {
                    add(p, key);
                }
            }
            for c in &s.consumes {
                add(c, key);
            }
        }
        for (t, keys) in &registry.event_subscriptions {
            for k in keys {
                add(t, k);
            }
        }
        routes
    }

    /// The keys of the services that receive `event_type`.
    pub fn consumers(&mut self, event_type: &str) -> &[String] {
        if !self.memo.contains_key(event_type) {
            let mut keys = self.exact.get(event_type).cloned().unwrap_or_default();
            for (p, key) in &self.patterns {
                if !keys.contains(key) && topic_matches(p, event_type, GlobMode::Amqp) {
                    keys.push(key.clone());
                }
            }
            self.memo.insert(event_type.to_owned(), keys);
        }
        self.memo.get(event_type).map_or(&[], Vec::as_slice)
    }
}

/// The layer unknown producers sit in (leftmost), and services no layer names (rightmost).
pub const UNKNOWN_LAYER: &str = "unknown producers";
pub const UNLAYERED: &str = "not in a layer";

impl FlowGraph {
    /// Builds the graph from the registry and what the store has seen, rates as of `now_us`.
    #[must_use]
    #[allow(clippy::too_many_lines)] // traffic, layers, nodes, declared and seen edges, in order
    pub fn build(
        registry: &Registry,
        routes: &mut Routes,
        aggregates: &Aggregates,
        interner: &Interner,
        now_us: Micros,
    ) -> Self {
        let owners = SourceOwners::new(registry);
        // (producer node key, type) → the aggregates' pairs behind it, from traffic.
        let mut seen: BTreeMap<(String, String), Vec<(Sym, Sym)>> = BTreeMap::new();
        let mut unknown_sources = std::collections::BTreeSet::<String>::new();
        for &(source, kind) in aggregates.by_flow.keys() {
            let Some(src) = interner.resolve_opt(source) else {
                continue;
            };
            let owner = owners.owner(src).map_or_else(
                || {
                    unknown_sources.insert(src.to_owned());
                    src.to_owned()
                },
                str::to_owned,
            );
            seen.entry((owner, interner.resolve(kind).to_owned()))
                .or_default()
                .push((source, kind));
        }

        // Layers: unknown producers first (only if any), the registry's in file order, then
        // services no layer names.
        let mut graph = Self::default();
        let mut layer_of: FxHashMap<&str, usize> = FxHashMap::default();
        if !unknown_sources.is_empty() {
            graph.layers.push(UNKNOWN_LAYER.to_owned());
        }
        for (name, keys) in &registry.topology {
            let idx = graph.layers.len();
            graph.layers.push(name.clone());
            for k in keys {
                layer_of.entry(k.as_str()).or_insert(idx);
            }
        }
        let unlayered = registry
            .services
            .keys()
            .any(|k| !layer_of.contains_key(k.as_str()));
        let unlayered_idx = graph.layers.len();
        if unlayered {
            graph.layers.push(UNLAYERED.to_owned());
        }

        let mut index: FxHashMap<String, usize> = FxHashMap::default();
        for src in &unknown_sources {
            index.insert(src.clone(), graph.nodes.len());
            graph.nodes.push(FlowNode {
                key: src.clone(),
                label: src.clone(),
                layer: 0,
                active: true,
                producer: true,
                consumer: false,
                unknown: true,
                rate: 0.0,
                error_share: 0.0,
                unrouted: Vec::new(),
            });
        }
        // Services in layer order, then in the order the layer lists them.
        let mut keys: Vec<&String> = registry.services.keys().collect();
        let position = |k: &str| {
            registry
                .topology
                .iter()
                .find_map(|(_, ks)| ks.iter().position(|x| x == k))
                .unwrap_or(usize::MAX)
        };
        keys.sort_by_key(|k| {
            (
                layer_of.get(k.as_str()).copied().unwrap_or(unlayered_idx),
                position(k),
            )
        });
        for key in keys {
            let s = &registry.services[key];
            index.insert(key.clone(), graph.nodes.len());
            graph.nodes.push(FlowNode {
                key: key.clone(),
                label: s.name.clone().unwrap_or_else(|| key.clone()),
                layer: layer_of.get(key.as_str()).copied().unwrap_or(unlayered_idx),
                active: s.is_active(),
                producer: s.is_producer(),
                consumer: !s.routing_keys.is_empty()
                    || !s.consumes.is_empty()
                    || s.kind.as_deref() == Some("event-consumer"),
                unknown: false,
                rate: 0.0,
                error_share: 0.0,
                unrouted: Vec::new(),
            });
        }

        let mut consumers_of = |event_type: &str| -> Vec<usize> {
            routes
                .consumers(event_type)
                .iter()
                .filter_map(|k| index.get(k).copied())
                .collect()
        };

        let mut edges: BTreeMap<(usize, usize), Vec<EdgeType>> = BTreeMap::new();
        let mut feeds: Vec<Feed> = Vec::new();
        let mut add = |from: usize, to: usize, t: EdgeType| {
            if from != to {
                edges.entry((from, to)).or_default().push(t);
            }
        };
        // Declared: each producer's types, to whoever receives them.
        for (key, s) in &registry.services {
            let from = index[key];
            for t in &s.produces {
                let keys = seen.remove(&(key.clone(), t.clone())).unwrap_or_default();
                let feed = feeds.len();
                feeds.push(Feed { node: from, keys });
                let name: std::sync::Arc<str> = t.as_str().into();
                for to in consumers_of(t) {
                    add(
                        from,
                        to,
                        EdgeType {
                            event_type: name.clone(),
                            declared: true,
                            rate: 0.0,
                            error_share: 0.0,
                            events: 0,
                            feed,
                        },
                    );
                }
            }
        }
        // Discovered: what traffic shows beyond the declarations.
        for ((owner, t), keys) in seen {
            let Some(&from) = index.get(&owner) else {
                continue;
            };
            let feed = feeds.len();
            feeds.push(Feed { node: from, keys });
            let to_list = consumers_of(&t);
            if to_list.iter().all(|&to| to == from) {
                graph.nodes[from].unrouted.push(t.clone());
            }
            let name: std::sync::Arc<str> = t.as_str().into();
            for to in to_list {
                add(
                    from,
                    to,
                    EdgeType {
                        event_type: name.clone(),
                        declared: false,
                        rate: 0.0,
                        error_share: 0.0,
                        events: 0,
                        feed,
                    },
                );
            }
        }
        graph.edges = edges
            .into_iter()
            .map(|((from, to), types)| FlowEdge { from, to, types })
            .collect();
        graph.feeds = feeds;
        graph.flows_seen = aggregates.by_flow.len();
        graph.refresh_rates(aggregates, now_us);
        graph
    }

    /// Whether traffic has shown a `(source, type)` pair the graph was not built with (which
    /// may add an edge or a node): then rebuild, else [`FlowGraph::refresh_rates`] is enough.
    #[must_use]
    pub fn needs_rebuild(&self, aggregates: &Aggregates) -> bool {
        aggregates.by_flow.len() != self.flows_seen
    }

    /// Updates every rate, error share and count from the aggregates as of `now_us`, keeping
    /// nodes and edges as they are — a few thousand additions instead of a rebuild.
    pub fn refresh_rates(&mut self, aggregates: &Aggregates, now_us: Micros) {
        let stats: Vec<(u64, f64, f64)> = self
            .feeds
            .iter()
            .map(|f| f.stats(aggregates, now_us))
            .collect();
        for n in &mut self.nodes {
            n.rate = 0.0;
            n.error_share = 0.0;
        }
        for (feed, &(_, rate, share)) in self.feeds.iter().zip(&stats) {
            if let Some(n) = self.nodes.get_mut(feed.node) {
                n.rate += rate;
                n.error_share += rate * share;
            }
        }
        for n in &mut self.nodes {
            if n.rate > 0.0 {
                n.error_share /= n.rate;
            }
        }
        for edge in &mut self.edges {
            for t in &mut edge.types {
                let (events, rate, share) = stats.get(t.feed).copied().unwrap_or_default();
                (t.events, t.rate, t.error_share) = (events, rate, share);
            }
            edge.types.sort_by(|a, b| {
                b.rate
                    .total_cmp(&a.rate)
                    .then(b.events.cmp(&a.events))
                    .then(a.event_type.cmp(&b.event_type))
            });
        }
    }

    #[must_use]
    pub fn node(&self, key: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.key == key)
    }

    /// The edge between two nodes, by key.
    #[must_use]
    pub fn edge(&self, from: &str, to: &str) -> Option<&FlowEdge> {
        let (f, t) = (self.node(from)?, self.node(to)?);
        self.edges.iter().find(|e| e.from == f && e.to == t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Status;
    use crate::time::MICROS_PER_SEC;

    fn seen(events: &[(&str, &str, bool)], now_us: Micros) -> (Aggregates, Interner) {
        let mut agg = Aggregates::default();
        let mut interner = Interner::default();
        let domain = interner.intern("d");
        for (i, (source, kind, error)) in events.iter().enumerate() {
            let (s, k) = (interner.intern(source), interner.intern(kind));
            let at = now_us - MICROS_PER_SEC - (i as i64 % 1000);
            let status = if *error {
                Status::Error
            } else {
                Status::Completed
            };
            agg.record(at, None, domain, s, k, status, 100);
        }
        (agg, interner)
    }

    #[test]
    fn declared_edges_follow_bindings_and_subscriptions_in_layer_order() {
        let r = Registry::example();
        let g = FlowGraph::build(
            &r,
            &mut Routes::new(&r),
            &Aggregates::default(),
            &Interner::default(),
            0,
        );
        assert_eq!(g.layers[0], "external_sources");
        let hookd = &g.nodes[g.node("hookd-producer").unwrap()];
        assert_eq!(hookd.layer, 0);
        assert!(hookd.producer && hookd.active && !hookd.unknown);
        // agent.thread.# and agent.tool.* bind hookd's agent types to the collector…
        let e = g.edge("hookd-producer", "agent-thread-collector").unwrap();
        assert!(e.declared());
        let types: Vec<&str> = e.types.iter().map(|t| &*t.event_type).collect();
        assert!(types.contains(&"agent.thread.prompt") && types.contains(&"agent.tool.invoked"));
        assert!(!types.contains(&"tool.mutation.write"), "{types:?}");
        // …"*.*.failed" takes echobox's failures to the notifier; "#" takes all to the store.
        assert!(g.edge("echobox", "incident-notifier").is_some());
        assert!(g.edge("llm-gateway", "event-store-manager").is_some());
        assert!(!g.nodes[g.node("event-store-manager").unwrap()].active);
        assert!(g.edge("llm-gateway", "mutation-ledger").is_none());
        assert!(e.rate().abs() < f64::EPSILON, "no traffic, no rate");
    }

    #[test]
    fn traffic_gives_rates_discovered_edges_and_unknown_producers() {
        let now = 1_767_225_600 * MICROS_PER_SEC;
        let mut events = Vec::new();
        for i in 0..50 {
            events.push(("llm-gateway", "llm.response", i % 5 == 0));
            events.push(("hookd", "tool.mutation.delete", false)); // not declared by hookd
            events.push(("mystery-bot", "llm.error", true));
        }
        let (agg, interner) = seen(&events, now);
        let r = Registry::example();
        let g = FlowGraph::build(&r, &mut Routes::new(&r), &agg, &interner, now);

        let e = g.edge("llm-gateway", "llm-cost-calculator").unwrap();
        let resp = e
            .types
            .iter()
            .find(|t| &*t.event_type == "llm.response")
            .unwrap();
        assert!(resp.declared && resp.rate > 0.0, "{resp:?}");
        assert!((resp.error_share - 0.2).abs() < 1e-9, "{resp:?}");

        let d = g.edge("hookd-producer", "mutation-ledger").unwrap();
        assert!(
            d.types
                .iter()
                .any(|t| &*t.event_type == "tool.mutation.delete" && !t.declared)
        );

        assert_eq!(g.layers[0], UNKNOWN_LAYER);
        let bot = &g.nodes[g.node("mystery-bot").unwrap()];
        assert!(bot.unknown && bot.layer == 0 && bot.rate > 0.0);
        let e = g.edge("mystery-bot", "incident-notifier").unwrap();
        assert!(!e.declared() && (e.error_share() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn refreshed_rates_match_a_rebuild_until_a_new_pair_is_seen() {
        let now = 1_767_225_600 * MICROS_PER_SEC;
        let r = Registry::example();
        let mut interner = Interner::default();
        let mut agg = Aggregates::default();
        let domain = interner.intern("d");
        let record = |interner: &mut Interner,
                      agg: &mut Aggregates,
                      source: &str,
                      kind: &str,
                      at: Micros,
                      error: bool| {
            let (s, k) = (interner.intern(source), interner.intern(kind));
            let status = if error {
                Status::Error
            } else {
                Status::Completed
            };
            agg.record(at, None, domain, s, k, status, 100);
        };
        for i in 0..40 {
            record(
                &mut interner,
                &mut agg,
                "llm-gateway",
                "llm.response",
                now - 3 * MICROS_PER_SEC + i,
                false,
            );
        }
        let mut routes = Routes::new(&r);
        let mut g = FlowGraph::build(&r, &mut routes, &agg, &interner, now);
        // Later: the same pair busier and failing.
        let later = now + 2 * MICROS_PER_SEC;
        for i in 0..200 {
            record(
                &mut interner,
                &mut agg,
                "llm-gateway",
                "llm.response",
                later - MICROS_PER_SEC + i,
                i % 4 == 0,
            );
        }
        assert!(!g.needs_rebuild(&agg), "no new pair: the figures only");
        g.refresh_rates(&agg, later);
        let fresh = FlowGraph::build(&r, &mut routes, &agg, &interner, later);
        assert_eq!(g, fresh, "refreshing gives what rebuilding gives");
        let e = g.edge("llm-gateway", "llm-cost-calculator").unwrap();
        assert!(e.rate() > 40.0 && e.error_share() > 0.1, "{e:?}");
        // A new (source, type) pair: now the structure may change.
        record(
            &mut interner,
            &mut agg,
            "mystery-bot",
            "llm.error",
            later,
            true,
        );
        assert!(g.needs_rebuild(&agg));
    }
}
