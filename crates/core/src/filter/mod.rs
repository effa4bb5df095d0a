//! The one filter engine: `tail`, the stream table, charts and export all use it.
//!
//! A [`Filter`] is a parsed expression compiled against the store: symbol-valued terms are
//! decided once per distinct symbol (cached), so re-filtering a million events is a scan over
//! the compact metadata; free text is searched block by block with `memchr`'s SIMD substring
//! search over the decompressed bodies. A [`FilteredView`] keeps the matching sequence numbers
//! and tests only new events as they arrive; a changed filter re-scans.

mod parse;

use std::collections::VecDeque;

use memchr::memmem;

pub use parse::{
    Expr, FIELDS, Field, MAX_DEPTH, ParseError, Term, caret, parse, parse_duration, time_range_term,
};

use super::event::short_type;
use super::glob::{GlobMode, topic_matches, wildcard_matches};
use super::intern::{Interner, Sym};
use super::store::{BlockView, EventMeta, EventStore, id_hash};
use super::time::Micros;

#[derive(Clone, Debug)]
enum Node {
    True,
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    /// Index into `Filter::sym_terms`.
    Sym(usize),
    Status(super::event::Status),
    Related(u32),
    Id(u32),
    Since(Micros),
    Between(Micros, Micros),
    /// Index into `Filter::texts`.
    Text(usize),
}

#[derive(Clone, Debug)]
enum SymTest {
    Type(String),
    RoutingKey(String),
    Field(Field, String),
}

impl SymTest {
    fn sym_of(&self, m: &EventMeta) -> Sym {
        match self {
            Self::Type(_) => m.kind,
            Self::RoutingKey(_) => m.routing_key_sym(),
            Self::Field(Field::Domain, _) => m.domain,
            Self::Field(Field::Source, _) => m.source,
            Self::Field(Field::Agent, _) => m.agent,
            Self::Field(Field::AgentType, _) => m.agent_type,
            Self::Field(Field::Session, _) => m.session,
        }
    }

    fn test(&self, value: &str) -> bool {
        match self {
            Self::Type(glob) => {
                topic_matches(glob, value, GlobMode::Lenient)
                    || topic_matches(glob, short_type(value), GlobMode::Lenient)
            }
            Self::RoutingKey(glob) => topic_matches(glob, value, GlobMode::Lenient),
            Self::Field(_, pattern) => {
                if pattern.contains('*') {
                    wildcard_matches(pattern, value)
                } else {
                    pattern.eq_ignore_ascii_case(value)
                }
            }
        }
    }
}

/// A cache of a symbol test's answer per symbol: 0 unknown, 1 no, 2 yes.
#[derive(Clone, Debug, Default)]
struct SymCache(Vec<u8>);

#[derive(Clone, Debug)]
struct TextTerm {
    needle: Vec<u8>,
    /// Smart case: an upper-case letter in the needle makes it case-sensitive.
    case_sensitive: bool,
    /// The needle's searcher, built once: a query screens every journaled body with it.
    finder: memmem::Finder<'static>,
}

/// A compiled filter expression.
#[derive(Clone, Debug)]
pub struct Filter {
    text: String,
    root: Node,
    sym_terms: Vec<(SymTest, SymCache)>,
    texts: Vec<TextTerm>,
    /// Set when the whole filter is `last:D AND …`: events older than D can be dropped from the
    /// front of a view instead of re-scanning.
    front_window_us: Option<Micros>,
    has_time: bool,
}

impl Default for Filter {
    fn default() -> Self {
        Self::compile(&Expr::All, String::new())
    }
}

impl Filter {
    /// Parses and compiles `text`.
    pub fn new(text: &str) -> Result<Self, ParseError> {
        Ok(Self::compile(&parse(text)?, text.trim().to_owned()))
    }

    fn compile(expr: &Expr, text: String) -> Self {
        let mut f = Self {
            text,
            root: Node::True,
            sym_terms: Vec::new(),
            texts: Vec::new(),
            front_window_us: None,
            has_time: false,
        };
        f.root = f.node(expr);
        f.front_window_us = match expr {
            Expr::Term(Term::Last(d)) => Some(*d),
            Expr::And(items) => items.iter().find_map(|e| {
                if let Expr::Term(Term::Last(d)) = e {
                    Some(*d)
                } else {
                    None
                }
            }),
            _ => None,
        };
        f
    }

    fn node(&mut self, e: &Expr) -> Node {
        match e {
            Expr::All => Node::True,
            Expr::And(v) => Node::And(v.iter().map(|e| self.node(e)).collect()),
            Expr::Or(v) => Node::Or(v.iter().map(|e| self.node(e)).collect()),
            Expr::Not(e) => Node::Not(Box::new(self.node(e))),
            Expr::Term(t) => match t {
                // The type (with or without its versioned prefix) or the routing key: two symbol
                // tests, each cached per symbol.
                Term::Type(g) => Node::Or(vec![
                    self.sym(SymTest::Type(g.clone())),
                    self.sym(SymTest::RoutingKey(g.clone())),
                ]),
                Term::RoutingKey(g) => self.sym(SymTest::RoutingKey(g.clone())),
                Term::Field(field, p) => self.sym(SymTest::Field(*field, p.clone())),
                Term::Status(s) => Node::Status(*s),
                Term::Corr(id) => Node::Related(id_hash(id)),
                Term::Id(id) => Node::Id(id_hash(id)),
                Term::Last(d) => {
                    self.has_time = true;
                    Node::Since(*d)
                }
                Term::Between(from, to) => {
                    Node::Between(from.unwrap_or(Micros::MIN), to.unwrap_or(Micros::MAX))
                }
                Term::Text(t) => {
                    let case_sensitive = t.chars().any(char::is_uppercase);
                    let needle = if case_sensitive {
                        t.as_bytes().to_vec()
                    } else {
                        t.to_ascii_lowercase().into_bytes()
                    };
                    self.texts.push(TextTerm {
                        finder: memmem::Finder::new(&needle).into_owned(),
                        needle,
                        case_sensitive,
                    });
                    Node::Text(self.texts.len() - 1)
                }
            },
        }
    }

    fn sym(&mut self, test: SymTest) -> Node {
        self.sym_terms.push((test, SymCache::default()));
        Node::Sym(self.sym_terms.len() - 1)
    }

    /// The same filter without the answers it cached per symbol: those are indexes into one
    /// store's interner, and mean other strings in another store's.
    #[must_use]
    fn uncached(mut self) -> Self {
        for (_, cache) in &mut self.sym_terms {
            cache.0.clear();
        }
        self
    }

    /// The expression as the user typed it (trimmed).
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether this filter matches everything.
    #[must_use]
    pub fn is_all(&self) -> bool {
        matches!(self.root, Node::True)
    }

    /// Whether matching needs the bodies (free-text terms).
    #[must_use]
    pub fn needs_bodies(&self) -> bool {
        !self.texts.is_empty()
    }

    /// Whether the answer depends on the current time (`last:`).
    #[must_use]
    pub fn is_time_relative(&self) -> bool {
        self.has_time
    }

    /// Tests events `range` of a block; `on_match` gets each matching sequence number.
    fn scan_block(
        &mut self,
        view: &BlockView<'_>,
        range: std::ops::Range<usize>,
        interner: &Interner,
        now_us: Micros,
        scratch: &mut Scratch,
        mut on_match: impl FnMut(u64),
    ) {
        if !self.texts.is_empty() {
            self.find_texts(view, range.clone(), scratch);
        }
        let first = view.first_seq();
        for i in range {
            let Some(meta) = view.meta(i) else {
                break;
            };
            let ctx = Ctx {
                meta: &meta,
                interner,
                now_us,
                hits: &scratch.hits,
                index: i,
            };
            if eval(&self.root, &ctx, &mut self.sym_terms) {
                on_match(first + i as u64);
            }
        }
    }

    /// For each text term, which events of `range` contain it: one SIMD substring search over the
    /// block's bytes, hits mapped to events by their byte ranges. Lower-case needles search a
    /// lower-cased copy made in place in the decompression buffer.
    fn find_texts(
        &self,
        view: &BlockView<'_>,
        range: std::ops::Range<usize>,
        scratch: &mut Scratch,
    ) {
        let n = view.len();
        scratch.hits.resize_with(self.texts.len(), Vec::new);
        if range.is_empty() {
            return;
        }
        let lo = view.body_range(range.start).start;
        let hi = view.body_range(range.end - 1).end;
        // `buf[x - base]` is the block's byte `x`.
        let base = view.data_into(range.clone(), &mut scratch.data);
        if scratch.data.get(lo - base..hi - base).is_none() {
            return;
        }
        let any_sensitive = self.texts.iter().any(|t| t.case_sensitive);
        let any_insensitive = self.texts.iter().any(|t| !t.case_sensitive);
        let Scratch {
            data,
            lower: lower_buf,
            hits: all_hits,
        } = scratch;
        if any_insensitive && !any_sensitive {
            // Only lower-case needles: lower-case the (already copied) bytes in place.
            data[lo - base..hi - base].make_ascii_lowercase();
        } else if any_insensitive {
            lower_buf.clear();
            lower_buf.extend_from_slice(&data[lo - base..hi - base]);
            lower_buf.make_ascii_lowercase();
        }
        let raw: &[u8] = &data[lo - base..hi - base];
        let lower: &[u8] = if any_sensitive { lower_buf } else { raw };
        for (t, hits) in self.texts.iter().zip(all_hits.iter_mut()) {
            hits.clear();
            hits.resize(n, false);
            let hay: &[u8] = if t.case_sensitive { raw } else { lower };
            let finder = memmem::Finder::new(&t.needle);
            let mut pos = 0;
            let mut ev = range.start;
            while let Some(found) = finder.find(&hay[pos..]) {
                let at = lo + pos + found;
                // Advance to the event whose span holds `at`.
                while ev < range.end && view.body_range(ev).end <= at && props_end(view, ev) <= at {
                    ev += 1;
                }
                if ev >= range.end {
                    break;
                }
                let body = view.body_range(ev);
                if at >= body.start && at + t.needle.len() <= body.end {
                    hits[ev] = true;
                    // Skip the rest of this event.
                    let next = props_end(view, ev).min(hi);
                    pos = next - lo;
                    ev += 1;
                } else {
                    pos += found + 1;
                }
                if pos >= hay.len() {
                    break;
                }
            }
        }
    }
}

/// Whether a conservative test of `node` can say no, when it can for the terms `decides` (a
/// negation or an empty filter never can).
fn can_rule_out(node: &Node, decides: &dyn Fn(&Node) -> bool) -> bool {
    match node {
        Node::True | Node::Not(_) => false,
        Node::And(v) => v.iter().any(|n| can_rule_out(n, decides)),
        Node::Or(v) => v.iter().all(|n| can_rule_out(n, decides)),
        leaf => decides(leaf),
    }
}

/// [`Filter::may_match_bodies`]' answer for body `i`, given which bodies hold each text.
fn body_node(node: &Node, hits: &[Vec<bool>], i: usize) -> bool {
    match node {
        Node::And(v) => v.iter().all(|n| body_node(n, hits, i)),
        Node::Or(v) => v.iter().any(|n| body_node(n, hits, i)),
        Node::Text(t) => hits.get(*t).and_then(|h| h.get(i)).copied().unwrap_or(true),
        _ => true,
    }
}

fn props_end(view: &BlockView<'_>, i: usize) -> usize {
    // The next event's body starts where this one's properties end.
    if i + 1 < view.len() {
        view.body_range(i + 1).start
    } else {
        usize::MAX
    }
}

/// A field a [`BlockSummary`] lists the distinct values of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SummaryField {
    /// The event type ([`crate::decode::Decoded::kind`]).
    Type,
    RoutingKey,
    Field(Field),
}

/// What is known about a run of stored events without reading them (a journal block's index):
/// enough for [`Filter::may_match_block`] to rule the run out.
pub trait BlockSummary {
    /// The oldest and newest receive times.
    fn time_range(&self) -> (Micros, Micros);
    /// Whether `test` passes for some value `field` takes among the events; `None` when the
    /// values are not known.
    fn any_value(&self, field: SummaryField, test: &mut dyn FnMut(&str) -> bool) -> Option<bool>;
    /// Whether some event may have this status; `true` when not known.
    fn may_have_status(&self, status: super::event::Status) -> bool;
    /// Whether some event's id, correlation or causation may hash to `hash` (see
    /// [`super::store::id_hash`]); `false` only when certainly none does.
    fn may_relate(&self, hash: u32) -> bool;
}

/// One decoded event as a [`BlockSummary`]: [`Filter::may_match_block`] on it says whether the
/// event may match before it is stored (free text and negations are left to the store).
pub struct EventSummary<'a> {
    pub decoded: &'a crate::decode::Decoded<'a>,
    pub routing_key: &'a str,
    pub received_us: Micros,
}

impl BlockSummary for EventSummary<'_> {
    fn time_range(&self) -> (Micros, Micros) {
        (self.received_us, self.received_us)
    }

    fn any_value(&self, field: SummaryField, test: &mut dyn FnMut(&str) -> bool) -> Option<bool> {
        let d = self.decoded;
        let value = match field {
            SummaryField::Type => Some(&*d.kind),
            SummaryField::RoutingKey => Some(self.routing_key),
            SummaryField::Field(Field::Domain) => Some(&*d.domain),
            SummaryField::Field(Field::Source) => d.source.as_deref(),
            SummaryField::Field(Field::Agent) => d.header.agent.as_deref(),
            SummaryField::Field(Field::AgentType) => d.header.agent_type.as_deref(),
            SummaryField::Field(Field::Session) => d.header.session.as_deref(),
        };
        Some(value.is_some_and(test))
    }

    fn may_have_status(&self, status: super::event::Status) -> bool {
        self.decoded.status == status
    }

    fn may_relate(&self, hash: u32) -> bool {
        let d = self.decoded;
        d.id.iter()
            .chain(&d.header.correlation_ids)
            .chain(&d.header.causation_id)
            .any(|s| id_hash(s) == hash)
    }
}

/// One message being screened: its header decoded and its body lower-cased when first needed.
struct Screened<'m, 'l> {
    m: &'m super::event::RawMessage,
    decoded: Option<super::decode::Decoded<'m>>,
    lower: Lower<'l>,
}

/// A body lower-cased into a buffer kept per thread (a query screens millions of bodies).
struct Lower<'l> {
    buf: &'l mut Vec<u8>,
    filled: bool,
}

impl Lower<'_> {
    fn of(&mut self, body: &[u8]) -> &[u8] {
        if !self.filled {
            self.buf.clear();
            self.buf.extend_from_slice(body);
            self.buf.make_ascii_lowercase();
            self.filled = true;
        }
        self.buf
    }
}

thread_local! {
    static LOWER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Filter {
    /// Whether any event `summary` describes may match: `false` only when none can, so a reader
    /// may skip the run. Free text and negations are not ruled out.
    #[must_use]
    pub fn may_match_block(&self, summary: &dyn BlockSummary, now_us: Micros) -> bool {
        self.may_match_node(&self.root, summary, now_us)
    }

    /// Whether the message may match, from its decoded header and its body's text (negations are
    /// left to a store): what cannot is not worth storing. The header is decoded only when a term
    /// asks about it, and a body is searched as a store searches it (smart case, the body alone).
    #[must_use]
    pub fn may_match_message(&self, m: &super::event::RawMessage, now_us: Micros) -> bool {
        LOWER.with_borrow_mut(|lower| {
            let mut one = Screened {
                m,
                decoded: None,
                lower: Lower {
                    buf: lower,
                    filled: false,
                },
            };
            self.screen_node(&self.root, &mut one, now_us)
        })
    }

    /// Whether a body's text allows a match, every other term taken as passing (see
    /// [`Self::screens_bodies`]).
    #[must_use]
    pub fn may_match_body(&self, body: &[u8]) -> bool {
        let mut keep = [true];
        let whole = std::iter::once(0..body.len()).collect::<Vec<_>>();
        self.may_match_bodies(body, None, &whole, &mut keep);
        keep[0]
    }

    /// [`Self::may_match_body`] for many bodies lying in one buffer, as a journal reader asks
    /// before it decodes or copies a block's events: `keep[i]` is set to `false` for each body
    /// `i` whose text rules a match out. `bodies` are where they lie in `raw`, in order and not
    /// overlapping; `lower`, `raw` ASCII-lower-cased, when the caller has it. Each text is
    /// searched once through the whole buffer.
    pub fn may_match_bodies(
        &self,
        raw: &[u8],
        lower: Option<&[u8]>,
        bodies: &[std::ops::Range<usize>],
        keep: &mut [bool],
    ) {
        if !self.screens_bodies() {
            return;
        }
        let made;
        let lower = match lower {
            Some(l) if l.len() == raw.len() => l,
            _ if self.texts.iter().any(|t| !t.case_sensitive) => {
                made = raw.to_ascii_lowercase();
                &made
            }
            _ => raw,
        };
        let hits: Vec<Vec<bool>> = self
            .texts
            .iter()
            .map(|t| {
                let hay = if t.case_sensitive { raw } else { lower };
                let mut hit = vec![false; bodies.len()];
                let (mut ev, mut pos) = (0, 0);
                while ev < bodies.len() && pos <= hay.len() {
                    let Some(found) = t.finder.find(&hay[pos..]) else {
                        break;
                    };
                    let (at, end) = (pos + found, pos + found + t.needle.len());
                    // Bodies that end before this match ends hold none of the rest.
                    while ev < bodies.len() && bodies[ev].end < end {
                        ev += 1;
                    }
                    let Some(body) = bodies.get(ev) else { break };
                    if body.start <= at {
                        hit[ev] = true;
                        pos = body.end.max(at + 1);
                        ev += 1;
                    } else {
                        pos = body.start;
                    }
                }
                hit
            })
            .collect();
        for (i, k) in keep.iter_mut().enumerate() {
            *k = *k && body_node(&self.root, &hits, i);
        }
    }

    /// Whether some free text that decides [`Self::may_match_body`] ignores case: its callers
    /// may then lower-case many bodies at once.
    #[must_use]
    pub fn screens_lower_case(&self) -> bool {
        self.screens_bodies() && self.texts.iter().any(|t| !t.case_sensitive)
    }

    /// Whether [`Self::may_match_block`] can ever say no (a filter of free text alone, say,
    /// cannot: then asking costs more than it saves).
    #[must_use]
    pub fn rules_out(&self) -> bool {
        can_rule_out(&self.root, &|n| !matches!(n, Node::Text(_)))
    }

    /// Whether [`Self::may_match_body`] can ever say no: some free text every match contains.
    #[must_use]
    pub fn screens_bodies(&self) -> bool {
        can_rule_out(&self.root, &|n| matches!(n, Node::Text(_)))
    }

    /// Whether [`Self::may_match_message`] can ever say no: [`Self::rules_out`], or free text
    /// that every match must contain.
    #[must_use]
    pub fn screens_messages(&self) -> bool {
        can_rule_out(&self.root, &|_| true)
    }

    fn screen_node(&self, node: &Node, one: &mut Screened<'_, '_>, now_us: Micros) -> bool {
        match node {
            Node::True | Node::Not(_) => true,
            Node::And(v) => v.iter().all(|n| self.screen_node(n, one, now_us)),
            Node::Or(v) => v.iter().any(|n| self.screen_node(n, one, now_us)),
            Node::Text(i) => {
                let Some(t) = self.texts.get(*i) else {
                    return true;
                };
                let body = &one.m.body;
                if t.case_sensitive {
                    t.finder.find(body).is_some()
                } else {
                    t.finder.find(one.lower.of(body)).is_some()
                }
            }
            _ => {
                let m = one.m;
                let d = one.decoded.get_or_insert_with(|| super::decode::decode(m));
                let summary = EventSummary {
                    decoded: d,
                    routing_key: &m.routing_key,
                    received_us: m.received_us,
                };
                self.may_match_node(node, &summary, now_us)
            }
        }
    }

    fn may_match_node(&self, node: &Node, s: &dyn BlockSummary, now_us: Micros) -> bool {
        match node {
            Node::True | Node::Not(_) | Node::Text(_) => true,
            Node::And(v) => v.iter().all(|n| self.may_match_node(n, s, now_us)),
            Node::Or(v) => v.iter().any(|n| self.may_match_node(n, s, now_us)),
            Node::Sym(i) => {
                let Some((test, _)) = self.sym_terms.get(*i) else {
                    return true;
                };
                let field = match test {
                    SymTest::Type(_) => SummaryField::Type,
                    SymTest::RoutingKey(_) => SummaryField::RoutingKey,
                    SymTest::Field(f, _) => SummaryField::Field(*f),
                };
                s.any_value(field, &mut |v| test.test(v)).unwrap_or(true)
            }
            Node::Status(status) => s.may_have_status(*status),
            Node::Related(h) | Node::Id(h) => *h != 0 && s.may_relate(*h),
            Node::Since(d) => s.time_range().1 >= now_us - d,
            Node::Between(from, to) => {
                let (oldest, newest) = s.time_range();
                newest >= *from && oldest < *to
            }
        }
    }
}

struct Ctx<'a> {
    meta: &'a EventMeta,
    interner: &'a Interner,
    now_us: Micros,
    hits: &'a [Vec<bool>],
    index: usize,
}

fn eval(node: &Node, ctx: &Ctx<'_>, syms: &mut [(SymTest, SymCache)]) -> bool {
    match node {
        Node::True => true,
        Node::And(v) => v.iter().all(|n| eval(n, ctx, syms)),
        Node::Or(v) => v.iter().any(|n| eval(n, ctx, syms)),
        Node::Not(n) => !eval(n, ctx, syms),
        Node::Sym(i) => {
            let Some((test, cache)) = syms.get_mut(*i) else {
                return false;
            };
            let sym = test.sym_of(ctx.meta);
            if let Some(&c) = cache.0.get(sym.index())
                && c != 0
            {
                return c == 2;
            }
            let yes = !sym.is_none() && test.test(ctx.interner.resolve(sym));
            if cache.0.len() <= sym.index() {
                cache.0.resize(ctx.interner.len().max(sym.index() + 1), 0);
            }
            cache.0[sym.index()] = if yes { 2 } else { 1 };
            yes
        }
        Node::Status(s) => ctx.meta.status == *s,
        Node::Related(h) => ctx.meta.related_to(*h),
        Node::Id(h) => *h != 0 && ctx.meta.id_hash == *h,
        Node::Since(d) => ctx.meta.received_us >= ctx.now_us - d,
        Node::Between(from, to) => (*from..*to).contains(&ctx.meta.received_us),
        Node::Text(i) => ctx
            .hits
            .get(*i)
            .and_then(|h| h.get(ctx.index))
            .copied()
            .unwrap_or(false),
    }
}

/// Free text over many blocks: decompression and search dominate, so the blocks are split into
/// contiguous runs, one per thread; the runs' matches come back in order.
fn scan_parallel(
    filter: &Filter,
    views: &[BlockView<'_>],
    seqs: std::ops::Range<u64>,
    interner: &Interner,
    now_us: Micros,
    workers: usize,
) -> Vec<Vec<u64>> {
    let slice = |v: &BlockView<'_>| {
        let lo = seqs.start.saturating_sub(v.first_seq()) as usize;
        let hi = ((seqs.end - v.first_seq()) as usize).min(v.len());
        lo..hi.max(lo)
    };
    let per = views.len().div_ceil(workers.max(1)).max(1);
    let scan_run = |filter: &mut Filter, run: &[BlockView<'_>]| {
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        for view in run {
            filter.scan_block(view, slice(view), interner, now_us, &mut scratch, |seq| {
                out.push(seq);
            });
        }
        out
    };
    let results: Vec<Option<Vec<u64>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = views
            .chunks(per)
            .map(|run| {
                let mut filter = filter.clone();
                std::thread::Builder::new()
                    .name("filter-scan".into())
                    .spawn_scoped(scope, move || scan_run(&mut filter, run))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.ok().and_then(|h| h.join().ok()))
            .collect()
    });
    // A run whose thread could not start is scanned here: never a silently missing match.
    results
        .into_iter()
        .zip(views.chunks(per))
        .map(|(r, run)| r.unwrap_or_else(|| scan_run(&mut filter.clone(), run)))
        .collect()
}

/// Threads for a parallel re-scan: the machine's cores, at most 8.
fn scan_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

#[derive(Default)]
struct Scratch {
    data: Vec<u8>,
    lower: Vec<u8>,
    hits: Vec<Vec<bool>>,
}

/// How far a [`FilteredView::update`] got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanProgress {
    /// Events tested in this call.
    pub scanned: u64,
    /// Events still to test (a re-scan in progress).
    pub remaining: u64,
}

/// The sequence numbers of stored events that match a filter, kept up to date incrementally.
pub struct FilteredView {
    filter: Filter,
    matches: VecDeque<u64>,
    /// First sequence number not tested yet.
    next_seq: u64,
    scratch: Scratch,
    /// When a time-relative filter last re-scanned.
    last_rescan_us: Micros,
}

impl Default for FilteredView {
    fn default() -> Self {
        Self::new(Filter::default())
    }
}

impl FilteredView {
    /// A view of `filter` (its cached answers are dropped: they belong to the interner of the
    /// store it last ran on, and this view may run on another).
    #[must_use]
    pub fn new(filter: Filter) -> Self {
        Self {
            filter: filter.uncached(),
            matches: VecDeque::new(),
            next_seq: 0,
            scratch: Scratch::default(),
            last_rescan_us: 0,
        }
    }

    #[must_use]
    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// Replaces the filter; the next [`Self::update`] re-scans the store (which may be another
    /// one: the filter's cached answers are dropped).
    pub fn set_filter(&mut self, filter: Filter) {
        self.filter = filter.uncached();
        self.matches.clear();
        self.next_seq = 0;
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.matches.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.matches.is_empty()
    }

    /// The `i`-th match, oldest first.
    #[must_use]
    pub fn get(&self, i: usize) -> Option<u64> {
        self.matches.get(i).copied()
    }

    #[must_use]
    pub fn matches(&self) -> &VecDeque<u64> {
        &self.matches
    }

    /// First sequence number not yet tested.
    #[must_use]
    pub fn scanned_to(&self) -> u64 {
        self.next_seq
    }

    /// Brings the view up to date with `store`, testing at most `max_events` events (a re-scan of
    /// a big store can be spread over frames). New matches are appended in order.
    pub fn update(&mut self, store: &EventStore, now_us: Micros, max_events: u64) -> ScanProgress {
        let first = store.first_seq();
        while self.matches.front().is_some_and(|&s| s < first) {
            self.matches.pop_front();
        }
        if self.filter.is_time_relative() {
            if let Some(window) = self.filter.front_window_us {
                while self
                    .matches
                    .front()
                    .and_then(|&s| store.meta(s))
                    .is_some_and(|m| m.received_us < now_us - window)
                {
                    self.matches.pop_front();
                }
            } else if now_us - self.last_rescan_us > super::time::MICROS_PER_SEC
                && self.next_seq >= store.end_seq()
            {
                // `last:` under OR/NOT: answers change with time, so re-scan once a second.
                self.matches.clear();
                self.next_seq = 0;
            }
        }
        if self.next_seq < first {
            if self.next_seq == 0 {
                self.last_rescan_us = now_us;
            }
            self.next_seq = first;
        }
        let end = store
            .end_seq()
            .min(self.next_seq.saturating_add(max_events));
        let start = self.next_seq;
        if start >= end {
            return ScanProgress {
                scanned: 0,
                remaining: store.end_seq() - self.next_seq,
            };
        }
        let interner = store.interner();
        let views: Vec<BlockView<'_>> = store
            .blocks_from(start)
            .take_while(|v| v.first_seq() < end)
            .collect();
        let slice = |v: &BlockView<'_>| {
            let lo = start.saturating_sub(v.first_seq()) as usize;
            let hi = ((end - v.first_seq()) as usize).min(v.len());
            lo..hi.max(lo)
        };
        let workers = if self.filter.needs_bodies() && views.len() >= 8 {
            scan_threads()
        } else {
            1
        };
        if workers <= 1 {
            let Self {
                filter,
                matches,
                scratch,
                ..
            } = self;
            for view in &views {
                filter.scan_block(view, slice(view), interner, now_us, scratch, |seq| {
                    matches.push_back(seq);
                });
            }
        } else {
            let results =
                scan_parallel(&self.filter, &views, start..end, interner, now_us, workers);
            for run in results {
                self.matches.extend(run);
            }
        }
        self.next_seq = end;
        ScanProgress {
            scanned: end - start,
            remaining: store.end_seq() - end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::RawMessage;
    use crate::store::StoreConfig;

    fn ev(kind: &str, agent: &str, text: &str, corr: &str) -> RawMessage {
        let body = format!(
            r#"{{"event_id":"{corr}-{kind}","event_type":"{kind}","source":{{"app":"svc-{agent}"}},"correlation_ids":["{corr}"],"agent_context":{{"type":"claude-code","name":"{agent}"}},"payload":{{"text":"{text}"}}}}"#
        );
        RawMessage {
            received_us: 0,
            routing_key: kind.into(),
            body: body.into_bytes(),
            ..RawMessage::default()
        }
    }

    fn store_with(events: &[RawMessage]) -> EventStore {
        let mut s = EventStore::default();
        for e in events {
            s.insert(e);
        }
        s
    }

    fn run(store: &EventStore, f: &str) -> Vec<u64> {
        let mut v = FilteredView::new(Filter::new(f).unwrap());
        v.update(store, 0, u64::MAX);
        v.matches().iter().copied().collect()
    }

    fn sample() -> EventStore {
        store_with(&[
            ev("agent.thread.prompt", "momo", "Hello world", "c1"), // 0
            ev("agent.thread.completed", "momo", "done deal", "c1"), // 1
            ev("llm.error", "rex", "Timeout talking to model", "c2"), // 2
            ev("bloodbank.v1.repo.decision.recorded", "rex", "x", "c3"), // 3
            ev("theboard.meeting.started", "ada", "hello again", "c2"), // 4
        ])
    }

    /// A summary of `events` as a journal's block index keeps it.
    struct Summary {
        values: std::collections::HashMap<SummaryField, Vec<String>>,
        statuses: Vec<crate::event::Status>,
        related: Vec<u32>,
        range: (Micros, Micros),
    }

    impl Summary {
        fn of(events: &[RawMessage]) -> Self {
            let mut s = Self {
                values: std::collections::HashMap::new(),
                statuses: Vec::new(),
                related: Vec::new(),
                range: (100, 200),
            };
            for e in events {
                let d = crate::decode::decode(e);
                let mut put = |f, v: Option<&str>| {
                    if let Some(v) = v {
                        s.values.entry(f).or_default().push(v.to_owned());
                    }
                };
                put(SummaryField::Type, Some(&d.kind));
                put(SummaryField::RoutingKey, Some(&e.routing_key));
                put(SummaryField::Field(Field::Domain), Some(&d.domain));
                put(SummaryField::Field(Field::Source), d.source.as_deref());
                put(SummaryField::Field(Field::Agent), d.header.agent.as_deref());
                s.statuses.push(d.status);
                s.related.extend(d.id.as_deref().map(crate::store::id_hash));
                s.related.extend(
                    d.header
                        .correlation_ids
                        .iter()
                        .map(|c| crate::store::id_hash(c)),
                );
            }
            s
        }
    }

    impl BlockSummary for Summary {
        fn time_range(&self) -> (Micros, Micros) {
            self.range
        }
        fn any_value(
            &self,
            field: SummaryField,
            test: &mut dyn FnMut(&str) -> bool,
        ) -> Option<bool> {
            match field {
                SummaryField::Field(Field::Session | Field::AgentType) => None,
                f => Some(
                    self.values
                        .get(&f)
                        .is_some_and(|v| v.iter().any(|v| test(v))),
                ),
            }
        }
        fn may_have_status(&self, status: crate::event::Status) -> bool {
            self.statuses.contains(&status)
        }
        fn may_relate(&self, hash: u32) -> bool {
            self.related.contains(&hash)
        }
    }

    #[test]
    fn a_block_summary_rules_out_only_blocks_without_matches() {
        let events = [
            ev("agent.thread.prompt", "momo", "Hello world", "c1"),
            ev("llm.error", "rex", "Timeout talking to model", "c2"),
            ev("bloodbank.v1.repo.decision.recorded", "rex", "x", "c3"),
        ];
        let store = store_with(&events);
        let summary = Summary::of(&events);
        for (expr, may) in [
            ("", true),
            ("agent.*.prompt", true),
            ("agent.*.completed", false),
            ("repo.decision.*", true),
            ("domain:repo", true),
            ("domain:fireflies", false),
            ("agent:REX", true),
            ("agent:zed*", false),
            ("source:svc-momo", true),
            ("session:s-1", true),
            ("corr:c2", true),
            ("corr:c9", false),
            ("id:c3-bloodbank.v1.repo.decision.recorded", true),
            ("errors", true),
            ("status:other", false),
            ("agent.*.completed OR corr:c1", true),
            ("agent.*.completed OR corr:c9", false),
            ("-agent:rex", true),
            ("\"not in any body\"", true),
            ("time:1970-01-01T00:00:00.0003Z..", false),
            ("time:..1970-01-01T00:00:00.0002Z", true),
        ] {
            let f = Filter::new(expr).unwrap();
            assert_eq!(f.may_match_block(&summary, 1_000), may, "{expr}");
            if !may {
                assert!(run(&store, expr).is_empty(), "{expr} ruled out a match");
            }
        }
        // One event at a time, as `query` tests them before storing: never rules out a match.
        for (i, e) in events.iter().enumerate() {
            let d = crate::decode::decode(e);
            let one = EventSummary {
                decoded: &d,
                routing_key: &e.routing_key,
                received_us: 0,
            };
            for expr in [
                "agent.*.prompt",
                "agent:rex",
                "corr:c2",
                "errors",
                "domain:repo",
            ] {
                let f = Filter::new(expr).unwrap();
                let matches = run(&store, expr).contains(&(i as u64));
                assert_eq!(f.may_match_block(&one, 0), matches, "{expr} on event {i}");
            }
        }
        assert!(
            !Filter::new("last:1s")
                .unwrap()
                .may_match_block(&summary, 10_000_000)
        );
        assert!(
            Filter::new("last:1s")
                .unwrap()
                .may_match_block(&summary, 1_000_000)
        );
        for (expr, rules_out) in [
            ("", false),
            ("\"text\"", false),
            ("-agent:rex", false),
            ("agent:rex OR \"text\"", false),
            ("agent:rex \"text\"", true),
            ("agent:rex OR corr:c1", true),
        ] {
            assert_eq!(Filter::new(expr).unwrap().rules_out(), rules_out, "{expr}");
        }
    }

    #[test]
    fn screening_one_message_drops_only_what_the_store_would_not_match() {
        for (expr, screens) in [
            ("hello", true),
            ("agent:rex timeout", true),
            ("agent:rex OR timeout", false),
            ("hello OR \"done deal\"", true),
            ("-hello", false),
            ("agent:rex", false),
        ] {
            assert_eq!(
                Filter::new(expr).unwrap().screens_bodies(),
                screens,
                "{expr}"
            );
        }
        let hello = Filter::new("hello").unwrap();
        assert!(!hello.may_match_body(b"nothing here"));
        assert!(hello.may_match_body(b"Oh, HELLO."));
        assert!(!Filter::new("Hello").unwrap().may_match_body(b"Oh, HELLO."));
        // Many bodies in one buffer: a match spanning two, or outside any, counts for none.
        let raw = b"[hel][lo hello]xhellox[Hello][]";
        let bodies = [1..4, 6..14, 23..28, 30..30];
        let mut keep = [true; 4];
        hello.may_match_bodies(raw, None, &bodies, &mut keep);
        assert_eq!(keep, [false, true, true, false]);
        let mut keep = [true; 4];
        let both = Filter::new("hel hello").unwrap();
        both.may_match_bodies(raw, Some(&raw.to_ascii_lowercase()), &bodies, &mut keep);
        assert_eq!(keep, [false, true, true, false]);
        let mut keep = [true, true, false, true];
        Filter::new("hel OR \"lo h\"")
            .unwrap()
            .may_match_bodies(raw, None, &bodies, &mut keep);
        assert_eq!(keep, [true, true, false, false]);
        assert!(hello.screens_lower_case());
        assert!(!Filter::new("Hello").unwrap().screens_lower_case());
        let events = [
            ev("agent.thread.prompt", "momo", "Hello world", "c1"),
            ev("llm.error", "rex", "Timeout talking to model", "c2"),
            ev("bloodbank.v1.repo.decision.recorded", "rex", "x", "c3"),
            ev("theboard.meeting.started", "ada", "hello again", "c2"),
        ];
        let store = store_with(&events);
        for (expr, screens) in [
            ("hello", true),
            ("Hello", true),
            ("HELLO", true),
            ("timeout talking", true),
            ("\"not in any body\"", true),
            ("agent:rex timeout", true),
            ("agent:rex OR hello", true),
            ("agent.*.prompt OR \"no such text\"", true),
            ("-hello", false),
            ("hello OR -agent:rex", false),
            ("", false),
            // The routing key and the AMQP properties are not the body's text.
            ("llm.error OR claude", true),
            ("svc-ada", true),
        ] {
            let f = Filter::new(expr).unwrap();
            assert_eq!(f.screens_messages(), screens, "{expr}");
            let found = run(&store, expr);
            for (i, e) in events.iter().enumerate() {
                let matches = found.contains(&(i as u64));
                assert!(
                    f.may_match_body(&e.body) || !matches,
                    "{expr}: the body alone dropped event {i}"
                );
                let kept = f.may_match_message(e, 0);
                // Never drops a match; with nothing but text and header terms, keeps no other.
                assert!(kept || !matches, "{expr} dropped event {i}");
                if screens {
                    assert_eq!(kept, matches, "{expr} on event {i}");
                }
            }
        }
    }

    #[test]
    fn a_filter_moved_to_another_store_answers_for_that_store() {
        let a = sample();
        let mut view = FilteredView::new(Filter::new("llm.error").unwrap());
        view.update(&a, 0, u64::MAX);
        assert_eq!(view.len(), 1);
        // Another store, its types interned in another order.
        let b = store_with(&[
            ev("llm.error", "rex", "x", "c9"),
            ev("agent.thread.prompt", "momo", "y", "c8"),
            ev("llm.error", "rex", "z", "c7"),
        ]);
        for moved in [FilteredView::new(view.filter().clone()), {
            let mut v = FilteredView::default();
            v.set_filter(view.filter().clone());
            v
        }] {
            let mut moved = moved;
            moved.update(&b, 0, u64::MAX);
            assert_eq!(moved.matches().iter().copied().collect::<Vec<_>>(), [0, 2]);
        }
    }

    #[test]
    fn globs_fields_status_text() {
        let s = sample();
        assert_eq!(run(&s, ""), vec![0, 1, 2, 3, 4]);
        assert_eq!(run(&s, "agent.*.completed"), vec![1]);
        assert_eq!(run(&s, "agent.#"), vec![0, 1]);
        assert_eq!(
            run(&s, "repo.decision.*"),
            vec![3],
            "short type without the versioned prefix"
        );
        assert_eq!(run(&s, "domain:repo"), vec![3]);
        assert_eq!(run(&s, "agent:momo"), vec![0, 1]);
        assert_eq!(run(&s, "agent:R*"), vec![2, 3]);
        assert_eq!(run(&s, "source:svc-ada"), vec![4]);
        assert_eq!(run(&s, "errors"), vec![2]);
        assert_eq!(run(&s, "status:started"), vec![0, 4]);
        assert_eq!(
            run(&s, "hello"),
            vec![0, 4],
            "lower-case text is case-insensitive"
        );
        assert_eq!(
            run(&s, "Hello"),
            vec![0],
            "an upper-case letter makes it case-sensitive"
        );
        assert_eq!(run(&s, "\"talking to\""), vec![2]);
        assert_eq!(run(&s, "corr:c2"), vec![2, 4]);
        assert_eq!(run(&s, "id:c1-agent.thread.prompt"), vec![0]);
        assert_eq!(run(&s, "agent:momo AND NOT status:completed"), vec![0]);
        assert_eq!(run(&s, "errors OR theboard.#"), vec![2, 4]);
        assert_eq!(run(&s, "-agent.# -errors"), vec![3, 4]);
        assert_eq!(run(&s, "(agent:rex OR agent:ada) hello"), vec![4]);
        assert_eq!(run(&s, "nothing-matches-this"), Vec::<u64>::new());
    }

    #[test]
    fn text_never_matches_across_event_boundaries() {
        // The end of one body and the start of the next must not form a match.
        let s = store_with(&[
            RawMessage {
                routing_key: "a".into(),
                body: b"xxab".to_vec(),
                ..RawMessage::default()
            },
            RawMessage {
                routing_key: "a".into(),
                body: b"cdxx".to_vec(),
                ..RawMessage::default()
            },
        ]);
        assert!(run(&s, "abcd").is_empty());
        assert_eq!(run(&s, "ab"), vec![0]);
        assert_eq!(run(&s, "cd"), vec![1]);
    }

    #[test]
    fn text_does_not_match_amqp_properties() {
        let props = crate::event::AmqpProps {
            app_id: Some("secret-app".into()),
            ..Default::default()
        };
        let s = store_with(&[RawMessage {
            routing_key: "a".into(),
            body: b"{}".to_vec(),
            props: Some(Box::new(props)),
            ..RawMessage::default()
        }]);
        assert!(run(&s, "secret-app").is_empty());
        assert_eq!(run(&s, "source:secret-app"), vec![0]);
    }

    #[test]
    fn incremental_then_rescan_across_blocks() {
        let mut store = EventStore::default();
        let mut view = FilteredView::new(Filter::new("errors").unwrap());
        let mut expected = Vec::new();
        for i in 0..5000u64 {
            let kind = if i % 7 == 0 {
                "llm.error"
            } else {
                "llm.response"
            };
            store.insert(&ev(kind, "a", "t", "c"));
            if i % 7 == 0 {
                expected.push(i);
            }
            if i % 333 == 0 {
                view.update(&store, 0, u64::MAX);
            }
        }
        view.update(&store, 0, u64::MAX);
        assert_eq!(view.matches().iter().copied().collect::<Vec<_>>(), expected);
        // A re-scan spread over several calls gives the same answer.
        view.set_filter(Filter::new("errors").unwrap());
        let mut calls = 0;
        while view.update(&store, 0, 700).remaining > 0 {
            calls += 1;
        }
        assert!(calls >= 7);
        assert_eq!(view.matches().iter().copied().collect::<Vec<_>>(), expected);
        // Text search over sealed (compressed) blocks.
        view.set_filter(Filter::new("text:\"llm.error\"").unwrap());
        view.update(&store, 0, u64::MAX);
        assert_eq!(view.len(), expected.len());
    }

    #[test]
    fn parallel_text_rescan_matches_a_plain_count() {
        // 20 blocks: the re-scan is split across threads; results must be complete and ordered.
        let mut store = EventStore::default();
        for i in 0..20_000u64 {
            let text = match (i % 13, i % 17) {
                (0, 0) => "Needle and needle",
                (0, _) => "a needle here",
                (_, 0) => "a NEEDLE here",
                _ => "hay",
            };
            store.insert(&ev("a.b", "x", text, "c"));
        }
        store.flush();
        let expect = |f: &dyn Fn(u64) -> bool| (0..20_000u64).filter(|&i| f(i)).collect::<Vec<_>>();
        assert_eq!(
            run(&store, "needle"),
            expect(&|i| i % 13 == 0 || i % 17 == 0)
        );
        assert_eq!(
            run(&store, "NEEDLE"),
            expect(&|i| i % 17 == 0 && i % 13 != 0)
        );
        assert_eq!(
            run(&store, "Needle"),
            expect(&|i| i % 13 == 0 && i % 17 == 0)
        );
        // Mixed: one case-sensitive and one case-insensitive term.
        assert_eq!(
            run(&store, "NEEDLE OR \"and needle\""),
            expect(&|i| i % 17 == 0)
        );
        assert_eq!(
            run(&store, "-needle"),
            expect(&|i| i % 13 != 0 && i % 17 != 0)
        );
    }

    #[test]
    fn evicted_events_leave_the_view() {
        let mut store = EventStore::new(StoreConfig {
            max_events: 2048,
            ..StoreConfig::default()
        });
        let mut view = FilteredView::default();
        for _ in 0..10_000 {
            store.insert(&ev("a.b", "x", "y", "c"));
            view.update(&store, 0, u64::MAX);
        }
        assert_eq!(view.len(), store.len());
        assert_eq!(view.get(0), Some(store.first_seq()));
    }

    #[test]
    fn a_time_range_keeps_what_was_received_in_it() {
        let mut store = EventStore::default();
        for t in 0..10 {
            let mut m = ev("a.b", "x", "y", "c");
            m.received_us = t * 60_000_000; // one a minute
            store.insert(&m);
        }
        let term = time_range_term(2 * 60_000_000, 5 * 60_000_000);
        let mut view = FilteredView::new(Filter::new(&term).unwrap());
        view.update(&store, 0, u64::MAX);
        assert_eq!(
            view.matches().iter().copied().collect::<Vec<_>>(),
            vec![2, 3, 4],
            "{term}: from inclusive, to exclusive"
        );
        // Absolute: the answer does not move with the clock.
        view.update(&store, 100 * 60_000_000, u64::MAX);
        assert_eq!(view.len(), 3);
        let mut view = FilteredView::new(Filter::new("time:1970-01-01T00:07:00Z..").unwrap());
        view.update(&store, 0, u64::MAX);
        assert_eq!(view.len(), 3);
    }

    #[test]
    fn last_window_moves_with_time() {
        let mut store = EventStore::default();
        for t in 0..10 {
            let mut m = ev("a.b", "x", "y", "c");
            m.received_us = t * 60_000_000; // one a minute
            store.insert(&m);
        }
        let mut view = FilteredView::new(Filter::new("last:5m").unwrap());
        let now = 9 * 60_000_000;
        view.update(&store, now, u64::MAX);
        assert_eq!(
            view.matches().iter().copied().collect::<Vec<_>>(),
            vec![4, 5, 6, 7, 8, 9]
        );
        view.update(&store, now + 2 * 60_000_000, u64::MAX);
        assert_eq!(
            view.matches().iter().copied().collect::<Vec<_>>(),
            vec![6, 7, 8, 9]
        );
        // Under OR, it re-scans.
        let mut view = FilteredView::new(Filter::new("last:5m OR x.y").unwrap());
        view.update(&store, now, u64::MAX);
        assert_eq!(view.len(), 6);
        view.update(&store, now + 2 * 60_000_000, u64::MAX);
        view.update(&store, now + 2 * 60_000_000, u64::MAX);
        assert_eq!(view.len(), 4);
    }
}
