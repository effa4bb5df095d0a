//! Traces built from the bus: the events of one correlation id (or session) as spans on a time
//! axis — as Jaeger and Langfuse show a trace, but from events instead of instrumentation.
//!
//! An event whose type ends in a start word (`started`, `requested`, `opened`…) opens a span of
//! its operation (the type without that word) for its agent; the next event of that operation
//! and agent that ends in an end word (`completed`, `failed`, `ended`…) closes it. Other events
//! are points. A span nests in the smallest span that contains it; a failed end, or an error
//! status, makes it an error. The critical path is the chain of spans that decides when the
//! trace ends: from the span that ends last, back through what ended latest before it began.

use std::collections::{HashMap, VecDeque};

use crate::event::Status;
use crate::intern::Sym;
use crate::store::EventStore;
use crate::time::Micros;

/// One event of a trace, as much as spans need.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceEvent {
    pub seq: u64,
    pub time_us: Micros,
    pub kind: String,
    pub agent: Option<String>,
    pub status: Status,
}

/// The events of `key` in `store`: those whose id, correlation id or causation id is `key`, and
/// those of the session `key`. Read from the compact metadata alone (no body is decompressed),
/// at each event's publish time where it carries one.
#[must_use]
pub fn events_of(store: &EventStore, key: &str) -> Vec<TraceEvent> {
    let hash = crate::store::id_hash(key);
    let session = store.interner().lookup(key).filter(|s| *s != Sym::NONE);
    let interner = store.interner();
    let mut out = Vec::new();
    for view in store.blocks_from(store.first_seq()) {
        let first = view.first_seq();
        for (i, m) in view.metas().enumerate() {
            let mine = (hash != 0 && m.related_to(hash)) || session.is_some_and(|s| m.session == s);
            if !mine {
                continue;
            }
            out.push(TraceEvent {
                seq: first + i as u64,
                time_us: m.published().unwrap_or(m.received_us),
                kind: interner.resolve(m.kind).to_owned(),
                agent: (m.agent != Sym::NONE).then(|| interner.resolve(m.agent).to_owned()),
                status: m.status,
            });
        }
    }
    out
}

/// A bar of the waterfall (or a point: `end_us == start_us` and `point`).
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::struct_excessive_bools)] // four independent facts the waterfall draws
pub struct Span {
    /// The operation: the type without its start/end word (`agent.invocation`).
    pub name: String,
    pub agent: Option<String>,
    pub start_us: Micros,
    pub end_us: Micros,
    /// The start event, the end event (when one came), and for a point its one event.
    pub start_seq: u64,
    pub end_seq: Option<u64>,
    /// No end came (still running, or its end was lost): it reaches the trace's end.
    pub open: bool,
    /// A single event, not a start/end pair.
    pub point: bool,
    pub error: bool,
    /// How many spans enclose it.
    pub depth: u16,
    pub critical: bool,
}

impl Span {
    /// A span begun by `e`: a bar open to `end_us` (the trace's end, until its end comes), or
    /// a point when `end_us` is `e`'s own time.
    fn from(e: &TraceEvent, name: String, end_us: Micros, error: bool) -> Self {
        let point = end_us == e.time_us;
        Self {
            name,
            agent: e.agent.clone(),
            start_us: e.time_us,
            end_us,
            start_seq: e.seq,
            end_seq: None,
            open: !point,
            point,
            error,
            depth: 0,
            critical: false,
        }
    }
}

/// A trace: its spans in start order (parents before children), and its extent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    pub spans: Vec<Span>,
    pub start_us: Micros,
    pub end_us: Micros,
    pub events: usize,
    pub errors: usize,
}

/// A conversation turn (`agent.thread.prompt` → `agent.thread.response`) is a span too.
const START_WORDS: &[&str] = &[
    "prompt",
    "started",
    "requested",
    "opened",
    "begin",
    "began",
    "created",
];
const END_WORDS: &[&str] = &[
    "completed",
    "finished",
    "ended",
    "failed",
    "errored",
    "succeeded",
    "resolved",
    "closed",
    "cancelled",
    "canceled",
    "timeout",
    "timed_out",
    "response",
    "responded",
];
const FAIL_WORDS: &[&str] = &["failed", "errored", "timeout", "timed_out"];

/// `kind` split into its operation and its last word.
fn phase(kind: &str) -> (&str, &str) {
    kind.rsplit_once('.').unwrap_or(("", kind))
}

impl Trace {
    /// Builds the trace of `events` (any order).
    #[must_use]
    pub fn build(mut events: Vec<TraceEvent>) -> Self {
        events.sort_by_key(|e| (e.time_us, e.seq));
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Self::default();
        };
        let (start_us, end_us) = (first.time_us, last.time_us);
        let mut spans: Vec<Span> = Vec::with_capacity(events.len());
        // Open spans per (operation, agent), oldest first.
        let mut open: HashMap<(String, Option<String>), VecDeque<usize>> = HashMap::new();
        let mut errors = 0;
        for e in &events {
            let (op, word) = phase(&e.kind);
            let failed = e.status == Status::Error || FAIL_WORDS.contains(&word);
            errors += usize::from(failed);
            let key = (op.to_owned(), e.agent.clone());
            if !op.is_empty() && START_WORDS.contains(&word) {
                open.entry(key).or_default().push_back(spans.len());
                spans.push(Span::from(e, op.to_owned(), end_us, failed));
                continue;
            }
            if !op.is_empty()
                && END_WORDS.contains(&word)
                && let Some(i) = open.get_mut(&key).and_then(VecDeque::pop_front)
                && let Some(s) = spans.get_mut(i)
            {
                s.end_us = e.time_us;
                s.end_seq = Some(e.seq);
                s.open = false;
                s.error |= failed;
                continue;
            }
            spans.push(Span::from(e, e.kind.clone(), e.time_us, failed));
        }
        // Start order, longer first where they start together: a parent precedes its children.
        spans.sort_by(|a, b| {
            a.start_us
                .cmp(&b.start_us)
                .then(b.end_us.cmp(&a.end_us))
                .then(a.start_seq.cmp(&b.start_seq))
        });
        nest(&mut spans);
        mark_critical(&mut spans);
        Self {
            spans,
            start_us,
            end_us,
            events: events.len(),
            errors,
        }
    }
}

/// Depths: each span inside the smallest earlier span that contains it.
fn nest(spans: &mut [Span]) {
    // The chain of enclosing spans: (end, depth) of each, innermost last.
    let mut chain: Vec<(Micros, u16)> = Vec::new();
    for s in spans.iter_mut() {
        while chain
            .last()
            .is_some_and(|&(end, _)| end < s.end_us || s.start_us > end)
        {
            chain.pop();
        }
        s.depth = chain.last().map_or(0, |&(_, d)| d + 1);
        if !s.point {
            chain.push((s.end_us, s.depth));
        }
    }
}

/// The spans that decide when the trace ends: the one ending last, then (walking back) the span
/// that ended latest before it began, and so on. Bars sorted by end once, each step a binary
/// search: a 10,000-event trace is cheap.
fn mark_critical(spans: &mut [Span]) {
    let mut bars: Vec<usize> = (0..spans.len()).filter(|&i| !spans[i].point).collect();
    bars.sort_by_key(|&i| (spans[i].end_us, std::cmp::Reverse(spans[i].start_us)));
    let Some(mut limit) = bars.len().checked_sub(1) else {
        return;
    };
    let mut at = bars[limit];
    loop {
        spans[at].critical = true;
        let begin = spans[at].start_us;
        let before = bars[..limit].partition_point(|&i| spans[i].end_us <= begin);
        let Some(k) = before.checked_sub(1) else {
            break;
        };
        at = bars[k];
        limit = k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, ms: i64, kind: &str, agent: &str) -> TraceEvent {
        TraceEvent {
            seq,
            time_us: ms * 1000,
            kind: kind.into(),
            agent: Some(agent.into()),
            status: Status::of_type(kind),
        }
    }

    /// The names of the spans on the critical path, in start order.
    fn critical_names(t: &Trace) -> Vec<&str> {
        t.spans
            .iter()
            .filter(|s| s.critical)
            .map(|s| s.name.as_str())
            .collect()
    }

    #[test]
    fn starts_and_ends_pair_into_nested_spans_with_a_critical_path() {
        let t = Trace::build(vec![
            ev(1, 0, "agent.invocation.started", "momo"),
            ev(2, 10, "agent.tool.requested", "momo"),
            ev(3, 40, "agent.tool.completed", "momo"),
            ev(4, 50, "llm.request.started", "momo"),
            ev(5, 55, "tool.mutation.write", "momo"),
            ev(6, 90, "llm.request.failed", "momo"),
            ev(7, 100, "agent.invocation.completed", "momo"),
            ev(8, 60, "agent.invocation.started", "kai"),
        ]);
        assert_eq!(
            (t.start_us, t.end_us, t.events, t.errors),
            (0, 100_000, 8, 1)
        );
        let names: Vec<(&str, u16, bool)> = t
            .spans
            .iter()
            .map(|s| (s.name.as_str(), s.depth, s.point))
            .collect();
        assert_eq!(
            names,
            [
                ("agent.invocation", 0, false),
                ("agent.tool", 1, false),
                ("llm.request", 1, false),
                ("tool.mutation.write", 2, true),
                ("agent.invocation", 1, false),
            ]
        );
        let llm = &t.spans[2];
        assert!(llm.error && !llm.open && llm.end_seq == Some(6));
        // kai's invocation never ended: open to the trace's end.
        let kai = &t.spans[4];
        assert!(kai.open && kai.end_us == 100_000);
        // The outer invocation ends last; nothing ended before it began.
        let critical = critical_names(&t);
        assert_eq!(critical, ["agent.invocation"]);
        assert!(Trace::build(Vec::new()).spans.is_empty());
        // A conversation turn: the prompt opens it, the response closes it.
        let turn = Trace::build(vec![
            ev(1, 0, "agent.thread.prompt", "otto"),
            ev(2, 7, "agent.thread.response", "otto"),
        ]);
        assert_eq!(turn.spans.len(), 1);
        assert_eq!(
            (turn.spans[0].name.as_str(), turn.spans[0].end_us),
            ("agent.thread", 7000)
        );
    }

    #[test]
    fn the_critical_path_walks_back_through_what_ended_before_each_began() {
        let t = Trace::build(vec![
            ev(1, 0, "a.started", "x"),
            ev(2, 30, "a.completed", "x"),
            ev(3, 5, "b.started", "y"),
            ev(4, 20, "b.completed", "y"),
            ev(5, 35, "c.started", "x"),
            ev(6, 80, "c.completed", "x"),
        ]);
        let critical = critical_names(&t);
        assert_eq!(critical, ["a", "c"]);
    }
}
