//! The rules Mission Control's answers come from: a project's health, momentum, the decision
//! ranking, what is at risk, and where plans drifted. Each takes "now", so the same events give
//! the same answers (golden tests below).
//!
//! **Health** (the platform reconciler's rules, applied at "now" over what the platform last
//! said): a blocking gate open → waiting, and at risk once past its SLA; open blockers and no
//! runnable work → blocked; runnable work and no progress for 90 minutes → stalled; otherwise
//! what the platform reported.
//!
//! **Decision rank** = impact weight × category weight × recency, with impact low 1, medium 2,
//! high 4, critical 8; category architectural 1.5, product 1.3, technical 1.2, process 1.0,
//! operational 0.8 (others 1.0); recency = 0.5^(age in hours / 24) — a day-old decision counts
//! half. A record without an impact gets one inferred from what it touches (basis, children,
//! artifacts; words like "schema", "security", "migrate") and says so.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Decision, EvRef, Mission, Project};
use crate::time::Micros;

const HOUR_US: Micros = 3_600_000_000;
const DAY_US: Micros = 24 * HOUR_US;
/// Runnable work with no progress for this long is stalled.
pub const STALL_US: Micros = 90 * 60 * 1_000_000;

/// A project's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Nominal,
    AtRisk,
    Degraded,
    Stalled,
    Blocked,
    /// Nothing said it yet.
    Unknown,
}

impl Health {
    #[must_use]
    pub fn parse(s: &str) -> Self {
        match s {
            "nominal" | "healthy" | "ok" => Self::Nominal,
            "at_risk" => Self::AtRisk,
            "degraded" => Self::Degraded,
            "stalled" => Self::Stalled,
            "blocked" => Self::Blocked,
            _ => Self::Unknown,
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nominal => "nominal",
            Self::AtRisk => "at_risk",
            Self::Degraded => "degraded",
            Self::Stalled => "stalled",
            Self::Blocked => "blocked",
            Self::Unknown => "unknown",
        }
    }

    /// Worse health sorts first.
    #[must_use]
    pub fn severity(self) -> u8 {
        match self {
            Self::Blocked => 5,
            Self::Stalled => 4,
            Self::AtRisk => 3,
            Self::Degraded => 2,
            Self::Unknown => 1,
            Self::Nominal => 0,
        }
    }
}

/// A decision's impact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImpactLevel {
    Low,
    Medium,
    High,
    Critical,
}

impl ImpactLevel {
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_lowercase().as_str() {
            "low" | "minor" => Some(Self::Low),
            "medium" | "moderate" | "normal" => Some(Self::Medium),
            "high" | "major" => Some(Self::High),
            "critical" | "severe" => Some(Self::Critical),
            _ => None,
        }
    }

    /// A triage priority as an impact (`normal` is medium).
    #[must_use]
    pub fn from_priority(s: &str) -> Option<Self> {
        Self::parse(s)
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// Impact weight: low 1, medium 2, high 4, critical 8.
#[must_use]
pub fn impact_weight(i: ImpactLevel) -> f64 {
    match i {
        ImpactLevel::Low => 1.0,
        ImpactLevel::Medium => 2.0,
        ImpactLevel::High => 4.0,
        ImpactLevel::Critical => 8.0,
    }
}

/// Category weight: architectural 1.5, product 1.3, technical 1.2, process 1.0, operational 0.8.
#[must_use]
pub fn category_weight(category: &str) -> f64 {
    match category {
        "architectural" | "architecture" => 1.5,
        "product" => 1.3,
        "technical" => 1.2,
        "operational" | "operations" => 0.8,
        _ => 1.0,
    }
}

/// The rank of `d` at `now_us`.
#[must_use]
pub fn decision_rank(d: &Decision, now_us: Micros) -> f64 {
    let age_h = ((now_us - d.at.time_us).max(0) as f64) / HOUR_US as f64;
    impact_weight(d.impact) * category_weight(&d.category) * 0.5f64.powf(age_h / 24.0)
}

const HIGH_WORDS: [&str; 12] = [
    "architecture",
    "schema",
    "migrat",
    "database",
    "security",
    "auth",
    "breaking",
    "rewrite",
    "replace",
    "delete",
    "drop ",
    "deprecat",
];

/// An impact for a decision that gave none: from the words it uses and how much it touches.
pub(super) fn infer_impact(text: &str, touched: usize, epic: bool) -> (ImpactLevel, String) {
    let lower = text.to_lowercase();
    if let Some(w) = HIGH_WORDS.iter().find(|w| lower.contains(**w)) {
        let w = w.trim();
        return (ImpactLevel::High, format!("inferred: it mentions {w:?}"));
    }
    let level = match (touched, epic) {
        (5.., _) | (_, true) => ImpactLevel::High,
        (2..=4, _) => ImpactLevel::Medium,
        _ => ImpactLevel::Low,
    };
    let epic = if epic { ", part of an epic" } else { "" };
    (level, format!("inferred: touches {touched} things{epic}"))
}

/// A category for a decision that gave none, from its words.
pub(super) fn infer_category(text: &str) -> String {
    let lower = text.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    if has(&[
        "architect",
        "schema",
        "service boundar",
        "module",
        "protocol",
    ]) {
        "architectural"
    } else if has(&[
        "deploy", "infra", "incident", "on-call", "rollback", "capacity",
    ]) {
        "operational"
    } else if has(&["process", "workflow", "review", "policy", "convention"]) {
        "process"
    } else if has(&[
        "feature",
        "customer",
        "user-facing",
        "onboarding",
        "pricing",
        "product",
    ]) {
        "product"
    } else {
        "technical"
    }
    .to_owned()
}

/// One card of the Portfolio.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PortfolioCard {
    pub key: String,
    pub name: String,
    pub repo: Option<String>,
    pub status: String,
    pub health: Health,
    pub health_reason: String,
    pub progress: Option<f64>,
    pub open_blockers: usize,
    pub active_runs: Option<u64>,
    pub last_progress_us: Option<Micros>,
    /// Work done in the last 24 hours, and in the 24 before.
    pub done_24h: usize,
    pub done_prev_24h: usize,
    /// Work done per hour over the last 24 hours, oldest first.
    pub sparkline: Vec<u32>,
    /// The filter that shows its events in the Stream.
    pub filter: String,
}

impl PortfolioCard {
    /// Work done now against the day before (positive: moving faster).
    #[must_use]
    pub fn momentum(&self) -> i64 {
        self.done_24h as i64 - self.done_prev_24h as i64
    }
}

/// The gates of `project` still open and blocking.
fn open_blocking_gates<'m>(
    m: &'m Mission,
    project: &'m str,
) -> impl Iterator<Item = &'m super::Gate> + 'm {
    m.gates
        .values()
        .filter(move |g| g.project == project && g.blocking && g.resolved.is_none())
}

/// `p`'s health at `now_us` and why (see the module's rules).
#[must_use]
pub fn health_of(m: &Mission, p: &Project, now_us: Micros) -> (Health, String) {
    let mut gates: Vec<&super::Gate> = open_blocking_gates(m, &p.key).collect();
    gates.sort_by_key(|g| g.sla_due_us.unwrap_or(Micros::MAX));
    if let Some(g) = gates.first() {
        if let Some(due) = g.sla_due_us.filter(|due| *due < now_us) {
            return (
                Health::AtRisk,
                format!(
                    "{} gate {} is {} past its SLA",
                    g.kind,
                    g.id,
                    crate::time::format_span(now_us - due)
                ),
            );
        }
        let reported = p
            .reported_health
            .as_deref()
            .map_or(Health::Unknown, Health::parse);
        let when = g.sla_due_us.map_or_else(String::new, |due| {
            format!(" (SLA in {})", crate::time::format_span(due - now_us))
        });
        return (
            reported,
            format!("waiting on the {} gate {}{when}", g.kind, g.id),
        );
    }
    let blockers: Vec<_> = p.blockers.iter().filter(|b| b.blocking).collect();
    if !blockers.is_empty() && p.runnable_work == Some(0) {
        let mut kinds: Vec<&str> = blockers.iter().map(|b| b.kind.as_str()).collect();
        kinds.dedup();
        return (
            Health::Blocked,
            format!(
                "{} open blocker{} ({}) and no runnable work",
                blockers.len(),
                if blockers.len() == 1 { "" } else { "s" },
                kinds.join(", ")
            ),
        );
    }
    if p.runnable_work.is_some_and(|n| n > 0) {
        let last = p.last_progress_us.unwrap_or(p.first_us);
        if now_us - last >= STALL_US {
            return (
                Health::Stalled,
                format!(
                    "no progress for {} with {} runnable item{}",
                    crate::time::format_span(now_us - last),
                    p.runnable_work.unwrap_or(0),
                    if p.runnable_work == Some(1) { "" } else { "s" }
                ),
            );
        }
    }
    let reported = p
        .reported_health
        .as_deref()
        .map_or(Health::Unknown, Health::parse);
    let reason = p.reported_reason.clone().unwrap_or_else(|| match reported {
        Health::Unknown => "no health reported yet".into(),
        h => format!("reported {}", h.as_str()),
    });
    (reported, reason)
}

/// The Portfolio at `now_us`: a card per project, top movers first (most work in the last 24 h,
/// then the biggest change against the day before), unhealthy ones before healthy at a tie.
#[must_use]
pub fn portfolio(m: &Mission, now_us: Micros) -> Vec<PortfolioCard> {
    let mut cards: Vec<PortfolioCard> = m
        .projects
        .values()
        .filter(|p| p.key != "unassigned" || !p.work.is_empty())
        .map(|p| {
            let (health, health_reason) = health_of(m, p, now_us);
            let mut sparkline = vec![0u32; 24];
            let (mut now_day, mut prev_day) = (0, 0);
            for w in &p.work {
                let age = now_us - w.time_us;
                if (0..DAY_US).contains(&age) {
                    now_day += 1;
                    let slot = 23 - (age / HOUR_US) as usize;
                    sparkline[slot.min(23)] += 1;
                } else if (DAY_US..2 * DAY_US).contains(&age) {
                    prev_day += 1;
                }
            }
            let gates = open_blocking_gates(m, &p.key).count();
            PortfolioCard {
                key: p.key.clone(),
                name: p.name.clone(),
                repo: p.repo.clone(),
                status: p.status.clone().unwrap_or_else(|| "unknown".into()),
                health,
                health_reason,
                progress: p.progress,
                open_blockers: p.blockers.iter().filter(|b| b.blocking).count() + gates,
                active_runs: p.active_runs,
                last_progress_us: p.last_progress_us,
                done_24h: now_day,
                done_prev_24h: prev_day,
                sparkline,
                filter: p.filter(),
            }
        })
        .collect();
    cards.sort_by(|a, b| {
        b.done_24h
            .cmp(&a.done_24h)
            .then(b.momentum().abs().cmp(&a.momentum().abs()))
            .then(b.health.severity().cmp(&a.health.severity()))
            .then(a.name.cmp(&b.name))
    });
    cards
}

/// A decision with its rank, for the radar.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RankedDecision {
    pub rank: f64,
    /// High or critical impact, made by an agent, in the last 24 hours.
    pub autonomy_alert: bool,
    pub project_name: String,
    #[serde(flatten)]
    pub decision: Decision,
}

/// The decisions made in `[since_us, until_us]`, highest rank first.
#[must_use]
pub fn ranked_decisions(
    m: &Mission,
    since_us: Micros,
    until_us: Micros,
    now_us: Micros,
) -> Vec<RankedDecision> {
    let mut out: Vec<RankedDecision> = m
        .decisions
        .iter()
        .filter(|d| (since_us..=until_us).contains(&d.at.time_us))
        .map(|d| RankedDecision {
            rank: decision_rank(d, now_us),
            autonomy_alert: d.by_agent
                && d.impact >= ImpactLevel::High
                && (0..DAY_US).contains(&(now_us - d.at.time_us)),
            project_name: m
                .projects
                .get(&d.project)
                .map_or_else(|| d.project.clone(), |p| p.name.clone()),
            decision: d.clone(),
        })
        .collect();
    out.sort_by(|a, b| {
        b.rank
            .total_cmp(&a.rank)
            .then(b.decision.at.time_us.cmp(&a.decision.at.time_us))
    });
    out
}

/// What a risk is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskKind {
    Escalation,
    Gate,
    Approval,
    Blocker,
    Stalled,
    /// A service Health finds failing (the window adds them; the journal alone does not know).
    Service,
}

/// One open risk.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RiskItem {
    pub kind: RiskKind,
    pub project: String,
    pub project_name: String,
    pub title: String,
    pub detail: String,
    /// critical / warning / notice for escalations; the blocker's kind; the gate's kind.
    pub severity: String,
    pub owner: Option<String>,
    /// A deadline (an SLA, a decision deadline) and whether it has passed.
    pub due_us: Option<Micros>,
    pub overdue: bool,
    pub since_us: Option<Micros>,
    pub at: Option<EvRef>,
    /// The choices, for an approval.
    pub options: Vec<String>,
}

/// Everything open at `now_us`, most pressing first.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Risks {
    pub items: Vec<RiskItem>,
    /// Open blockers counted by kind and by owner.
    pub blockers_by_kind: BTreeMap<String, usize>,
    pub blockers_by_owner: BTreeMap<String, usize>,
}

/// What is open at `now_us`: escalations (by severity), gates (overdue first), approvals waiting
/// for a person, blockers, stalled projects. A resolved one is gone.
#[must_use]
pub fn risks(m: &Mission, now_us: Micros) -> Risks {
    let mut items = Vec::new();
    open_escalations(m, &mut items);
    open_gates(m, now_us, &mut items);
    waiting_approvals(m, now_us, &mut items);
    let (by_kind, by_owner) = blockers_and_stalls(m, now_us, &mut items);
    let pressing = |r: &RiskItem| -> u8 {
        match (r.kind, r.severity.as_str(), r.overdue) {
            (RiskKind::Escalation, "critical", _) => 0,
            (_, _, true) => 1,
            (RiskKind::Escalation, "warning", _) => 2,
            (RiskKind::Approval, _, _) => 3,
            (RiskKind::Gate | RiskKind::Service, _, _) => 4,
            (RiskKind::Stalled, _, _) => 5,
            (RiskKind::Blocker, _, _) => 6,
            _ => 7,
        }
    };
    items.sort_by(|a, b| {
        pressing(a)
            .cmp(&pressing(b))
            .then(
                a.due_us
                    .unwrap_or(Micros::MAX)
                    .cmp(&b.due_us.unwrap_or(Micros::MAX)),
            )
            .then(a.since_us.cmp(&b.since_us))
    });
    Risks {
        items,
        blockers_by_kind: by_kind,
        blockers_by_owner: by_owner,
    }
}

/// A project's name, else its key.
fn project_name(m: &Mission, key: &str) -> String {
    m.projects
        .get(key)
        .map_or_else(|| key.to_owned(), |p| p.name.clone())
}

fn open_escalations(m: &Mission, items: &mut Vec<RiskItem>) {
    for x in m.escalations.values().filter(|x| x.resolved.is_none()) {
        items.push(RiskItem {
            kind: RiskKind::Escalation,
            project: x.project.clone(),
            project_name: project_name(m, &x.project),
            title: if x.summary.is_empty() {
                x.reason_code.clone().unwrap_or_else(|| x.id.clone())
            } else {
                x.summary.clone()
            },
            detail: format!(
                "{}{}",
                x.reason_code.as_deref().unwrap_or("escalation"),
                if x.requires_approval {
                    " · needs an approval"
                } else {
                    ""
                }
            ),
            severity: x.severity.clone(),
            owner: None,
            due_us: None,
            overdue: false,
            since_us: Some(x.raised.time_us),
            at: Some(x.raised.clone()),
            options: Vec::new(),
        });
    }
}

fn open_gates(m: &Mission, now_us: Micros, items: &mut Vec<RiskItem>) {
    for g in m.gates.values().filter(|g| g.resolved.is_none()) {
        let overdue = g.sla_due_us.is_some_and(|d| d < now_us);
        items.push(RiskItem {
            kind: RiskKind::Gate,
            project: g.project.clone(),
            project_name: project_name(m, &g.project),
            title: format!("{} gate {}", g.kind, g.id),
            detail: g.reason.clone().unwrap_or_default(),
            severity: if g.blocking { "blocking" } else { "advisory" }.into(),
            owner: g.owner.clone(),
            due_us: g.sla_due_us,
            overdue,
            since_us: Some(g.opened.time_us),
            at: Some(g.opened.clone()),
            options: Vec::new(),
        });
    }
}

fn waiting_approvals(m: &Mission, now_us: Micros, items: &mut Vec<RiskItem>) {
    for a in m.approvals.values().filter(|a| a.resolved.is_none()) {
        items.push(RiskItem {
            kind: RiskKind::Approval,
            project: a.project.clone(),
            project_name: project_name(m, &a.project),
            title: if a.prompt.is_empty() {
                format!("approval {}", a.id)
            } else {
                a.prompt.clone()
            },
            detail: a.gate_type.clone().unwrap_or_default(),
            severity: "waiting".into(),
            owner: None,
            due_us: a.deadline_us,
            overdue: a.deadline_us.is_some_and(|d| d < now_us),
            since_us: Some(a.requested.time_us),
            at: Some(a.requested.clone()),
            options: a.options.clone(),
        });
    }
}

/// Open blockers (and their counts by kind and owner) and stalled projects.
fn blockers_and_stalls(
    m: &Mission,
    now_us: Micros,
    items: &mut Vec<RiskItem>,
) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let mut by_kind = BTreeMap::new();
    let mut by_owner = BTreeMap::new();
    for p in m.projects.values() {
        for b in p.blockers.iter().filter(|b| b.blocking) {
            *by_kind.entry(b.kind.clone()).or_insert(0) += 1;
            *by_owner
                .entry(b.owner.clone().unwrap_or_else(|| "unowned".into()))
                .or_insert(0) += 1;
            items.push(RiskItem {
                kind: RiskKind::Blocker,
                project: p.key.clone(),
                project_name: p.name.clone(),
                title: if b.summary.is_empty() {
                    b.kind.clone()
                } else {
                    b.summary.clone()
                },
                detail: b.id.clone(),
                severity: b.kind.clone(),
                owner: b.owner.clone(),
                due_us: None,
                overdue: false,
                since_us: b.since_us,
                at: p.refs.back().cloned(),
                options: Vec::new(),
            });
        }
        let (health, reason) = health_of(m, p, now_us);
        if health == Health::Stalled {
            items.push(RiskItem {
                kind: RiskKind::Stalled,
                project: p.key.clone(),
                project_name: p.name.clone(),
                title: format!("{} is stalled", p.name),
                detail: reason,
                severity: "stalled".into(),
                owner: None,
                due_us: None,
                overdue: false,
                since_us: p.last_progress_us,
                at: p.refs.back().cloned(),
                options: Vec::new(),
            });
        }
    }
    (by_kind, by_owner)
}

/// What changed between two roadmap versions.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RoadmapDiff {
    pub from: String,
    pub to: String,
    pub change_reason: Option<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// (old name, new name) of a phase whose id stayed.
    pub renamed: Vec<(String, String)>,
    pub at: Option<EvRef>,
}

/// A project's plan against what happened.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PlanDrift {
    pub project: String,
    pub name: String,
    /// Roadmap versions, oldest first: (version, phases, change reason, when).
    pub versions: Vec<(String, usize, Option<String>, Micros)>,
    pub diffs: Vec<RoadmapDiff>,
    /// Checkpoints reached: (name, kind, when).
    pub checkpoints: Vec<(String, String, Micros)>,
    /// Progress over time, and the plan's straight line from the first roadmap to 100 % by the
    /// last checkpoint's pace (both (when, percent)).
    pub actual: Vec<(Micros, f64)>,
    /// Scope changes (`change_reason = scope_change`).
    pub scope_changes: usize,
    /// Review verdicts: (issue, drift, reasons, when).
    pub reviews: Vec<(String, String, Vec<String>, Micros)>,
    /// The worst drift any review found: none / minor / significant.
    pub worst_drift: String,
}

impl RoadmapDiff {
    /// What changed, in words: "added GA; renamed Beta → Public beta" (`arrow` between names).
    #[must_use]
    pub fn words(&self, arrow: &str) -> String {
        let mut what = Vec::new();
        if !self.added.is_empty() {
            what.push(format!("added {}", self.added.join(", ")));
        }
        if !self.removed.is_empty() {
            what.push(format!("removed {}", self.removed.join(", ")));
        }
        for (a, b) in &self.renamed {
            what.push(format!("renamed {a} {arrow} {b}"));
        }
        if what.is_empty() {
            "no phase changed".into()
        } else {
            what.join("; ")
        }
    }
}

/// `a` → `b`: phases added, removed, renamed.
#[must_use]
pub fn roadmap_diff(a: &super::Roadmap, b: &super::Roadmap) -> RoadmapDiff {
    let ids = |r: &super::Roadmap| -> BTreeMap<String, String> {
        r.phases
            .iter()
            .map(|(id, name, _)| {
                (
                    if id.is_empty() {
                        name.clone()
                    } else {
                        id.clone()
                    },
                    name.clone(),
                )
            })
            .collect()
    };
    let (old, new) = (ids(a), ids(b));
    RoadmapDiff {
        from: a.version.clone(),
        to: b.version.clone(),
        change_reason: b.change_reason.clone(),
        added: new
            .iter()
            .filter(|(k, _)| !old.contains_key(*k))
            .map(|(_, n)| n.clone())
            .collect(),
        removed: old
            .iter()
            .filter(|(k, _)| !new.contains_key(*k))
            .map(|(_, n)| n.clone())
            .collect(),
        renamed: old
            .iter()
            .filter_map(|(k, n)| {
                new.get(k)
                    .filter(|m| *m != n)
                    .map(|m| (n.clone(), m.clone()))
            })
            .collect(),
        at: Some(b.at.clone()),
    }
}

/// Plans and drift per project that has a roadmap, a checkpoint or a review.
#[must_use]
pub fn drift(m: &Mission) -> Vec<PlanDrift> {
    let mut out = Vec::new();
    for p in m.projects.values() {
        let reviews: Vec<_> = m
            .reviews
            .iter()
            .filter(|r| r.project == p.key)
            .map(|r| {
                (
                    r.issue.clone(),
                    r.drift.clone(),
                    r.reasons.clone(),
                    r.at.time_us,
                )
            })
            .collect();
        if p.roadmaps.is_empty() && p.checkpoints.is_empty() && reviews.is_empty() {
            continue;
        }
        let worst = reviews
            .iter()
            .map(|r| match r.1.as_str() {
                "significant" => 2,
                "minor" => 1,
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        out.push(PlanDrift {
            project: p.key.clone(),
            name: p.name.clone(),
            versions: p
                .roadmaps
                .iter()
                .map(|r| {
                    (
                        r.version.clone(),
                        r.phases.len(),
                        r.change_reason.clone(),
                        r.at.time_us,
                    )
                })
                .collect(),
            diffs: p
                .roadmaps
                .windows(2)
                .map(|w| roadmap_diff(&w[0], &w[1]))
                .collect(),
            checkpoints: p
                .checkpoints
                .iter()
                .map(|c| (c.name.clone(), c.kind.clone(), c.at.time_us))
                .collect(),
            actual: p.progress_points.clone(),
            scope_changes: p
                .roadmaps
                .iter()
                .filter(|r| r.change_reason.as_deref() == Some("scope_change"))
                .count(),
            reviews,
            worst_drift: ["none", "minor", "significant"][worst].into(),
        });
    }
    let level = |d: &PlanDrift| match d.worst_drift.as_str() {
        "significant" => 2,
        "minor" => 1,
        _ => 0,
    };
    out.sort_by(|a, b| level(b).cmp(&level(a)).then(a.name.cmp(&b.name)));
    out
}
