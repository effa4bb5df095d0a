//! Mission Control: the platform's projects, decisions, plans, risks and briefings, derived from
//! its own events (Bloodbank v1 `lifecycle.*`, `portfolio.*`, `repo.*`, `reporting.*`,
//! `theboard.meeting.*`, `jelmore.*` / `agent.session.*`; field lists in DESIGN.md).
//!
//! A [`Mission`] is fed event by event ([`Mission::ingest`]) — by the window as events arrive,
//! by `candybar mission` from the journal — and keeps what the views need, bounded. The rules
//! that read it (health, the decision ranking, drift, the briefing) take "now" as an argument,
//! so the same events give the same answers. Both envelope styles are read (the payload in
//! `data` or `payload`); unknown fields are ignored; a record missing fields is kept with what it
//! has (a decision without an impact gets one inferred, and says so).

pub mod alerts;
mod brief;
pub mod report;
mod rules;

pub use brief::{Briefing, brief};
pub use rules::{
    Health, ImpactLevel, PlanDrift, PortfolioCard, RankedDecision, RiskItem, RiskKind, Risks,
    RoadmapDiff, category_weight, decision_rank, drift, health_of, impact_weight, portfolio,
    ranked_decisions, risks, roadmap_diff,
};

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{Event, short_type};
use crate::time::{Micros, parse_rfc3339_us};

/// The most decisions, reviews, session records kept (oldest dropped first).
const KEEP_RECORDS: usize = 20_000;
/// The most work moments and progress points kept per project.
const KEEP_PER_PROJECT: usize = 5_000;
/// The most events a project remembers as its sources.
const KEEP_REFS: usize = 64;

/// Where a statement comes from: an event, findable in the Stream by its id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvRef {
    /// The store's sequence number when the event came from one (the window), else 0.
    #[serde(skip)]
    pub seq: u64,
    pub id: Option<String>,
    pub time_us: Micros,
    pub kind: String,
}

/// One event as Mission Control reads it.
#[derive(Clone, Debug)]
pub struct MissionEvent<'a> {
    pub at: EvRef,
    /// The event's agent (its `agent_context`), when it names one.
    pub agent: Option<&'a str>,
    /// The payload (`data`, else `payload`, else the body).
    pub payload: &'a Value,
}

/// The filter (candybar's filter language) that picks Mission Control's events: what a journal
/// query reads, its block indexes ruling the rest out.
pub const FILTER: &str = "lifecycle.# OR portfolio.# OR repo.decision.# OR repo.task.# OR \
     reporting.# OR theboard.meeting.comment_extracted OR jelmore.session.# OR agent.session.# OR \
     #.autonomous_review.decided";

/// What every type [`wants`] takes holds one of: an event that names none of these in its body,
/// routing key or AMQP type is not one of Mission Control's (a journal read screens a whole
/// block for them before decoding a single event).
pub const MARKS: [&str; 9] = [
    "lifecycle.",
    "portfolio.",
    "repo.decision.",
    "repo.task.",
    "reporting.",
    "theboard.meeting.comment_extracted",
    "jelmore.session.",
    "agent.session.",
    "autonomous_review.decided",
];

/// Whether events of this type matter to Mission Control (cheap: no body is read).
#[must_use]
pub fn wants(kind: &str) -> bool {
    let k = short_type(kind);
    k.starts_with("lifecycle.")
        || k.starts_with("portfolio.")
        || k.starts_with("repo.decision.")
        || k.starts_with("repo.task.")
        || k.starts_with("reporting.")
        || k == "theboard.meeting.comment_extracted"
        || k.starts_with("jelmore.session.")
        || k.starts_with("agent.session.")
        || k.ends_with("autonomous_review.decided")
}

/// A blocker as `lifecycle.status.updated` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Blocker {
    pub id: String,
    pub kind: String,
    pub blocking: bool,
    pub summary: String,
    pub owner: Option<String>,
    pub since_us: Option<Micros>,
}

/// A roadmap version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Roadmap {
    pub id: String,
    pub version: String,
    pub previous_version: Option<String>,
    /// (id, name, kind) per phase.
    pub phases: Vec<(String, String, String)>,
    pub progress: Option<f64>,
    pub change_reason: Option<String>,
    pub at: EvRef,
}

/// A checkpoint reached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub roadmap_version: Option<String>,
    pub progress: Option<f64>,
    pub at: EvRef,
}

/// A project: one lifecycle (or a repo that has none).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Project {
    /// The lifecycle id, else `repo:NAME`, else `project:ID`.
    pub key: String,
    pub name: String,
    pub repo: Option<String>,
    pub status: Option<String>,
    /// What the platform last said its health is.
    pub reported_health: Option<String>,
    pub reported_reason: Option<String>,
    pub phase: Option<String>,
    pub progress: Option<f64>,
    pub blockers: Vec<Blocker>,
    pub open_work: Option<u64>,
    pub runnable_work: Option<u64>,
    pub active_runs: Option<u64>,
    pub last_progress_us: Option<Micros>,
    /// The events that did work (a task completed, a checkpoint reached, progress made).
    #[serde(default)]
    pub work: VecDeque<EvRef>,
    /// Progress over time: (when, percent).
    pub progress_points: Vec<(Micros, f64)>,
    pub roadmaps: Vec<Roadmap>,
    pub checkpoints: Vec<Checkpoint>,
    /// The newest events about it.
    #[serde(default)]
    pub refs: VecDeque<EvRef>,
    pub first_us: Micros,
    pub last_us: Micros,
}

impl Project {
    fn note(&mut self, at: &EvRef) {
        if self.first_us == 0 || at.time_us < self.first_us {
            self.first_us = at.time_us;
        }
        self.last_us = self.last_us.max(at.time_us);
        if self.refs.len() >= KEEP_REFS {
            self.refs.pop_front();
        }
        self.refs.push_back(at.clone());
    }

    fn worked(&mut self, at: &EvRef) {
        let at_us = at.time_us;
        if self.work.len() >= KEEP_PER_PROJECT {
            self.work.pop_front();
        }
        self.work.push_back(at.clone());
        self.last_progress_us = Some(self.last_progress_us.map_or(at_us, |t| t.max(at_us)));
    }

    fn progressed(&mut self, at: &EvRef, percent: f64) {
        let at_us = at.time_us;
        if !percent.is_finite() {
            return;
        }
        let percent = percent.clamp(0.0, 100.0);
        if self.progress.is_some_and(|p| percent > p) {
            self.worked(at);
        }
        self.progress = Some(percent);
        if self.progress_points.len() >= KEEP_PER_PROJECT {
            self.progress_points.remove(0);
        }
        self.progress_points.push((at_us, percent));
    }

    /// The filter that shows its events in the Stream.
    #[must_use]
    pub fn filter(&self) -> String {
        let needle = self
            .key
            .strip_prefix("repo:")
            .or_else(|| self.key.strip_prefix("project:"))
            .unwrap_or(&self.key);
        format!("\"{}\"", needle.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// A gate of a lifecycle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    pub id: String,
    pub project: String,
    pub kind: String,
    pub blocking: bool,
    pub reason: Option<String>,
    pub owner: Option<String>,
    pub sla_due_us: Option<Micros>,
    pub opened: EvRef,
    /// (resolution, by whom, the event).
    pub resolved: Option<(String, Option<String>, EvRef)>,
}

/// An escalation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    pub id: String,
    pub project: String,
    pub work_id: Option<String>,
    pub severity: String,
    pub reason_code: Option<String>,
    pub summary: String,
    pub requires_approval: bool,
    pub raised: EvRef,
    pub resolved: Option<(String, Option<String>, EvRef)>,
}

/// An approval asked of a person.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub id: String,
    pub project: String,
    pub work_id: Option<String>,
    pub gate_type: Option<String>,
    pub prompt: String,
    pub options: Vec<String>,
    pub deadline_us: Option<Micros>,
    pub requested: EvRef,
    pub resolved: Option<(String, Option<String>, EvRef)>,
}

/// A decision, from whichever event recorded it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub project: String,
    pub text: String,
    /// Where it was recorded: `repo.decision.recorded`, `triage`, `approval`, `gate`, `meeting`.
    pub source: String,
    pub category: String,
    pub impact: ImpactLevel,
    /// Why the impact is what it is, when the record gave none ("inferred: touches 4 things").
    pub impact_inferred: Option<String>,
    pub decided_by: Option<String>,
    pub by_agent: bool,
    pub basis: Vec<String>,
    /// Whether it can be undone, when the record or its source says.
    pub reversible: Option<bool>,
    pub at: EvRef,
}

/// An autonomous review's verdict on an issue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub project: String,
    pub issue: String,
    pub decision: String,
    pub drift: String,
    pub close_gate: Option<String>,
    pub reasons: Vec<String>,
    pub at: EvRef,
}

/// A session started or ended, for the briefing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionNote {
    pub session_id: String,
    pub provider: Option<String>,
    /// `None` while it runs (a start), else whether it succeeded.
    pub success: Option<bool>,
    pub summary: Option<String>,
    pub at: EvRef,
}

/// A briefing run the platform announced (`reporting.report.*`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportNote {
    pub run_id: String,
    pub state: String,
    pub at: EvRef,
}

/// Everything Mission Control knows, built from events.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Mission {
    pub projects: BTreeMap<String, Project>,
    /// Repo name → the project (lifecycle) it belongs to.
    repo_project: HashMap<String, String>,
    /// Work id → the project it belongs to (portfolio events name it once).
    work_project: HashMap<String, String>,
    pub gates: BTreeMap<String, Gate>,
    pub escalations: BTreeMap<String, Escalation>,
    pub approvals: BTreeMap<String, Approval>,
    pub decisions: VecDeque<Decision>,
    pub reviews: VecDeque<Review>,
    pub sessions: VecDeque<SessionNote>,
    pub reports: VecDeque<ReportNote>,
    /// Events read, and those whose body did not read as JSON.
    pub events: u64,
    pub unreadable: u64,
    /// Bumped on every change (views recompute what they derived).
    pub version: u64,
}

/// The payload of an event body: `data` (`CloudEvents`), else `payload` (v1), else the body.
#[must_use]
pub fn payload_of(body: &Value) -> &Value {
    body.get("data")
        .filter(|v| v.is_object())
        .or_else(|| body.get("payload").filter(|v| v.is_object()))
        .unwrap_or(body)
}

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(v: &Value, key: &str) -> Option<f64> {
    match v.get(key)? {
        Value::Number(n) => n.as_f64().filter(|f| f.is_finite()),
        Value::String(s) => s.trim().parse().ok().filter(|f: &f64| f.is_finite()),
        _ => None,
    }
}

fn count(v: &Value, key: &str) -> Option<u64> {
    number(v, key).map(|f| f.clamp(0.0, 1e12) as u64)
}

fn boolean(v: &Value, key: &str) -> Option<bool> {
    match v.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.as_str() {
            "true" | "yes" => Some(true),
            "false" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn time(v: &Value, key: &str) -> Option<Micros> {
    v.get(key)?.as_str().and_then(parse_rfc3339_us)
}

/// Up to `max` strings of an array field (a huge array is read in part).
fn strings(v: &Value, key: &str, max: usize) -> Vec<String> {
    match v.get(key) {
        Some(Value::Array(a)) => a
            .iter()
            .take(max)
            .filter_map(|x| match x {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o
                    .get("name")
                    .or_else(|| o.get("id"))
                    .or_else(|| o.get("summary"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                _ => None,
            })
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn push_capped<T>(q: &mut VecDeque<T>, item: T) {
    if q.len() >= KEEP_RECORDS {
        q.pop_front();
    }
    q.push_back(item);
}

impl Mission {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a stored event (its body parsed here); `false` when it is not Mission Control's.
    pub fn ingest_event(&mut self, e: &Event) -> bool {
        if !wants(&e.kind) {
            return false;
        }
        let Ok(body) = serde_json::from_slice::<Value>(&e.body) else {
            self.events += 1;
            self.unreadable += 1;
            return false;
        };
        let payload = payload_of(&body);
        let at = EvRef {
            seq: e.seq,
            id: e.id.clone(),
            time_us: time(payload, "occurred_at")
                .or(e.published_us)
                .unwrap_or(e.received_us),
            kind: short_type(&e.kind).to_owned(),
        };
        self.ingest(&MissionEvent {
            at,
            agent: e.agent.as_deref(),
            payload,
        });
        true
    }

    /// Reads a message as received (from the journal): `false` when it is not Mission
    /// Control's.
    pub fn ingest_raw(&mut self, m: &crate::event::RawMessage) -> bool {
        let d = crate::decode::decode(m);
        if !wants(&d.kind) {
            return false;
        }
        let Ok(body) = serde_json::from_slice::<Value>(&m.body) else {
            self.events += 1;
            self.unreadable += 1;
            return false;
        };
        let payload = payload_of(&body);
        let at = EvRef {
            seq: 0,
            id: d.id.as_deref().map(str::to_owned),
            time_us: time(payload, "occurred_at")
                .or(d.published_us)
                .unwrap_or(m.received_us),
            kind: short_type(&d.kind).to_owned(),
        };
        self.ingest(&MissionEvent {
            at,
            agent: d.header.agent.as_deref(),
            payload,
        });
        true
    }

    /// Reads one event.
    pub fn ingest(&mut self, e: &MissionEvent<'_>) {
        self.events += 1;
        self.version += 1;
        let p = e.payload;
        let kind = e.at.kind.as_str();
        match kind {
            "lifecycle.mission.created" => self.mission_created(e),
            "lifecycle.status.updated" => self.status_updated(e),
            "lifecycle.roadmap.updated" => self.roadmap_updated(e),
            "lifecycle.checkpoint.reached" => self.checkpoint_reached(e),
            "lifecycle.gate.opened" => self.gate_opened(e),
            "lifecycle.gate.resolved" => self.gate_resolved(e),
            "repo.decision.recorded" => self.decision_recorded(e),
            "repo.task.completed" | "repo.task.created" | "repo.task.recorded" => {
                let key = self.project_key(p);
                let project = self.project(&key, p);
                project.note(&e.at);
                let done = kind == "repo.task.completed"
                    || text(p, "status").is_some_and(|s| s == "completed" || s == "done");
                if done {
                    project.worked(&e.at);
                }
            }
            "portfolio.intake.received" | "portfolio.intake.triaged" => self.intake(e),
            "portfolio.work.updated" => {
                let key = self.project_key(p);
                if let Some(w) = text(p, "work_id") {
                    self.work_project.insert(w, key.clone());
                }
                let project = self.project(&key, p);
                project.note(&e.at);
                if text(p, "status").as_deref() == Some("completed") {
                    project.worked(&e.at);
                }
            }
            "portfolio.approval.requested" => self.approval_requested(e),
            "portfolio.approval.resolved" => self.approval_resolved(e),
            "portfolio.escalation.raised" => self.escalation_raised(e),
            "portfolio.escalation.resolved" => {
                if let Some(x) =
                    text(p, "escalation_id").and_then(|id| self.escalations.get_mut(&id))
                {
                    x.resolved = Some((
                        text(p, "resolution").unwrap_or_else(|| "resolved".into()),
                        text(p, "resolved_by"),
                        e.at.clone(),
                    ));
                }
            }
            "theboard.meeting.comment_extracted" => self.meeting_comment(e),
            k if k.starts_with("reporting.report.") => {
                let state = k.trim_start_matches("reporting.report.").to_owned();
                push_capped(
                    &mut self.reports,
                    ReportNote {
                        run_id: text(p, "run_id").unwrap_or_default(),
                        state,
                        at: e.at.clone(),
                    },
                );
            }
            "jelmore.session.started" | "agent.session.started" => {
                push_capped(
                    &mut self.sessions,
                    SessionNote {
                        session_id: text(p, "session_id").unwrap_or_default(),
                        provider: text(p, "provider").or_else(|| e.agent.map(str::to_owned)),
                        success: None,
                        summary: None,
                        at: e.at.clone(),
                    },
                );
            }
            "jelmore.session.completed" | "agent.session.ended" => {
                push_capped(
                    &mut self.sessions,
                    SessionNote {
                        session_id: text(p, "session_id").unwrap_or_default(),
                        provider: text(p, "provider").or_else(|| e.agent.map(str::to_owned)),
                        success: Some(boolean(p, "success").unwrap_or(true)),
                        summary: text(p, "summary"),
                        at: e.at.clone(),
                    },
                );
            }
            k if k.ends_with("autonomous_review.decided") => self.review(e),
            _ => {}
        }
    }

    /// The project an event is about: its lifecycle, else its repo's lifecycle, else the repo,
    /// else the portfolio project, else its work item's project.
    fn project_key(&self, p: &Value) -> String {
        if let Some(id) = text(p, "lifecycle_id") {
            return id;
        }
        let project = p.get("project");
        let repo = text(p, "repo")
            .or_else(|| project.and_then(|x| text(x, "repo")))
            .or_else(|| text(p, "repository"));
        if let Some(repo) = repo {
            return self
                .repo_project
                .get(&repo)
                .cloned()
                .unwrap_or_else(|| format!("repo:{repo}"));
        }
        if let Some(id) = project.and_then(|x| text(x, "project_id")) {
            return format!("project:{id}");
        }
        if let Some(key) = text(p, "work_id").and_then(|w| self.work_project.get(&w)) {
            return key.clone();
        }
        "unassigned".into()
    }

    fn project(&mut self, key: &str, p: &Value) -> &mut Project {
        let project = self
            .projects
            .entry(key.to_owned())
            .or_insert_with(|| Project {
                key: key.to_owned(),
                name: key
                    .strip_prefix("repo:")
                    .or_else(|| key.strip_prefix("project:"))
                    .unwrap_or(key)
                    .to_owned(),
                ..Project::default()
            });
        if project.repo.is_none() {
            project.repo =
                text(p, "repo").or_else(|| p.get("project").and_then(|x| text(x, "repo")));
        }
        project
    }

    fn mission_created(&mut self, e: &MissionEvent<'_>) {
        let p = e.payload;
        let Some(id) = text(p, "lifecycle_id") else {
            // No lifecycle id: kept under its repo.
            let key = self.project_key(p);
            let project = self.project(&key, p);
            project.note(&e.at);
            return;
        };
        let mut repos = strings(p, "repos", 64);
        repos.extend(text(p, "repo"));
        for r in &repos {
            // A repo seen before its lifecycle: what it gathered moves over.
            if let Some(old) = self.projects.remove(&format!("repo:{r}")) {
                let project = self.project(&id, p);
                project.work.extend(old.work);
                project.refs.extend(old.refs);
                project.first_us = project.first_us.min(old.first_us).max(0);
            }
            self.repo_project.insert(r.clone(), id.clone());
        }
        let project = self.project(&id, p);
        project.name = text(p, "name").unwrap_or_else(|| id.clone());
        project.repo = text(p, "repo").or_else(|| repos.first().cloned());
        project.status = text(p, "status");
        project.reported_health = text(p, "health");
        project.note(&e.at);
    }

    fn status_updated(&mut self, e: &MissionEvent<'_>) {
        let p = e.payload;
        let key = self.project_key(p);
        let current = p.get("current").unwrap_or(&Value::Null);
        let project = self.project(&key, p);
        project.note(&e.at);
        if let Some(s) = text(current, "status") {
            project.status = Some(s);
        }
        if let Some(h) = text(current, "health") {
            project.reported_health = Some(h);
        }
        if let Some(ph) = text(current, "phase") {
            project.phase = Some(ph);
        }
        project.reported_reason = p.get("transition").and_then(|t| text(t, "reason"));
        if let Some(pct) = number(current, "progress_percent") {
            project.progressed(&e.at, pct);
        }
        if let Some(Value::Array(list)) = p.get("blockers") {
            project.blockers = list
                .iter()
                .take(200)
                .filter_map(|b| {
                    Some(Blocker {
                        id: text(b, "id")?,
                        kind: text(b, "kind").unwrap_or_else(|| "unknown".into()),
                        blocking: boolean(b, "blocking").unwrap_or(true),
                        summary: text(b, "summary").unwrap_or_default(),
                        owner: text(b, "owner_id").or_else(|| text(b, "owner_kind")),
                        since_us: time(b, "created_at"),
                    })
                })
                .collect();
        }
        if let Some(s) = p.get("signals") {
            project.open_work = count(s, "open_work_items").or(project.open_work);
            project.runnable_work = count(s, "runnable_work_items").or(project.runnable_work);
            project.active_runs = count(s, "active_agent_runs").or(project.active_runs);
            if let Some(t) = time(s, "last_progress_at") {
                project.last_progress_us = Some(project.last_progress_us.map_or(t, |x| x.max(t)));
            }
        }
    }

    fn roadmap_updated(&mut self, e: &MissionEvent<'_>) {
        let p = e.payload;
        let key = self.project_key(p);
        let project = self.project(&key, p);
        project.note(&e.at);
        let r = p.get("roadmap").unwrap_or(&Value::Null);
        let progress = p.get("progress").and_then(|x| number(x, "percent"));
        let phases = match r.get("phases") {
            Some(Value::Array(a)) => a
                .iter()
                .take(200)
                .map(|ph| {
                    (
                        text(ph, "id").unwrap_or_default(),
                        text(ph, "name").unwrap_or_default(),
                        text(ph, "kind").unwrap_or_else(|| "phase".into()),
                    )
                })
                .collect(),
            _ => Vec::new(),
        };
        project.roadmaps.push(Roadmap {
            id: text(r, "id").unwrap_or_default(),
            version: text(r, "version").unwrap_or_else(|| "?".into()),
            previous_version: text(r, "previous_version"),
            phases,
            progress,
            change_reason: text(p, "change_reason"),
            at: e.at.clone(),
        });
        if project.roadmaps.len() > 500 {
            project.roadmaps.remove(0);
        }
        if let Some(pct) = progress {
            project.progressed(&e.at, pct);
        }
    }

    fn checkpoint_reached(&mut self, e: &MissionEvent<'_>) {
        let p = e.payload;
        let key = self.project_key(p);
        let project = self.project(&key, p);
        project.note(&e.at);
        let c = p.get("checkpoint").unwrap_or(&Value::Null);
        let progress = p.get("progress").and_then(|x| number(x, "percent"));
        project.checkpoints.push(Checkpoint {
            id: text(c, "id").unwrap_or_default(),
            name: text(c, "name").unwrap_or_else(|| "checkpoint".into()),
            kind: text(c, "kind").unwrap_or_default(),
            roadmap_version: text(c, "roadmap_version"),
            progress,
            at: e.at.clone(),
        });
        if project.checkpoints.len() > 2_000 {
            project.checkpoints.remove(0);
        }
        project.worked(&e.at);
        if let Some(pct) = progress {
            project.progressed(&e.at, pct);
        }
    }

    fn gate_opened(&mut self, e: &MissionEvent<'_>) {
        let p = e.payload;
        let key = self.project_key(p);
        self.project(&key, p).note(&e.at);
        let g = p.get("gate").unwrap_or(&Value::Null);
        let id = text(g, "id").unwrap_or_else(|| format!("gate@{}", e.at.time_us));
        self.gates.insert(
            id.clone(),
            Gate {
                id,
                project: key,
                kind: text(g, "kind").unwrap_or_else(|| "custom".into()),
                blocking: boolean(g, "blocking").unwrap_or(true),
                reason: text(g, "reason"),
                owner: text(g, "owner_id").or_else(|| text(g, "owner_kind")),
                sla_due_us: time(g, "sla_due_at"),
                opened: e.at.clone(),
                resolved: None,
            },
        );
    }

    fn gate_resolved(&mut self, e: &MissionEvent<'_>) {
        let p = e.payload;
        let g = p.get("gate").unwrap_or(&Value::Null);
        let Some(id) = text(g, "id") else {
            return;
        };
        let resolution = text(g, "resolution").unwrap_or_else(|| "resolved".into());
        let by = text(g, "resolved_by");
        let key = self.project_key(p);
        if let Some(gate) = self.gates.get_mut(&id) {
            gate.resolved = Some((resolution.clone(), by.clone(), e.at.clone()));
        }
        self.project(&key, p).note(&e.at);
        let by_agent = by.as_deref().is_some_and(looks_like_agent);
        self.decide(Decision {
            project: key,
            text: format!("gate {id} {resolution}"),
            source: "gate".into(),
            category: "process".into(),
            impact: ImpactLevel::Medium,
            impact_inferred: Some("inferred: a gate resolution".into()),
            decided_by: by,
            by_agent,
            basis: Vec::new(),
            reversible: Some(false),
            at: e.at.clone(),
        });
    }

    fn decision_recorded(&mut self, e: &MissionEvent<'_>) {
        let p = e.payload;
        let key = self.project_key(p);
        self.project(&key, p).note(&e.at);
        let decision = text(p, "decision")
            .or_else(|| text(p, "summary"))
            .or_else(|| text(p, "title"))
            .unwrap_or_else(|| "(no text)".into());
        let basis = strings(p, "basis", 50);
        let children = strings(p, "children", 50);
        let decided_by = text(p, "decided_by").or_else(|| e.agent.map(str::to_owned));
        let by_agent = match text(p, "decided_by_kind").as_deref() {
            Some(k) => k == "agent",
            None => text(p, "decided_by").map_or(e.agent.is_some(), |d| looks_like_agent(&d)),
        };
        let explicit = text(p, "impact").and_then(|i| ImpactLevel::parse(&i));
        let (impact, inferred) = if let Some(i) = explicit {
            (i, None)
        } else {
            let touched =
                basis.len() + children.len() + usize::from(text(p, "artifacts_root").is_some());
            let (i, why) = rules::infer_impact(&decision, touched, text(p, "epic").is_some());
            (i, Some(why))
        };
        let category = text(p, "category")
            .map_or_else(|| rules::infer_category(&decision), |c| c.to_lowercase());
        let reversible = boolean(p, "reversible").or_else(|| {
            text(p, "reversibility").map(|r| !matches!(r.as_str(), "irreversible" | "one_way"))
        });
        self.decide(Decision {
            project: key,
            text: decision,
            source: "repo.decision.recorded".into(),
            category,
            impact,
            impact_inferred: inferred,
            decided_by,
            by_agent,
            basis,
            reversible,
            at: e.at.clone(),
        });
    }

    fn intake(&mut self, e: &MissionEvent<'_>) {
        let p = e.payload;
        let key = self.project_key(p);
        if let Some(w) = text(p, "work_id") {
            self.work_project.insert(w, key.clone());
        }
        self.project(&key, p).note(&e.at);
        if e.at.kind != "portfolio.intake.triaged" {
            return;
        }
        let priority = text(p, "priority");
        let impact = priority
            .as_deref()
            .and_then(ImpactLevel::from_priority)
            .unwrap_or(ImpactLevel::Medium);
        let summary = text(p, "decision_summary").unwrap_or_else(|| {
            format!(
                "triaged {} as {}",
                text(p, "intake_id").unwrap_or_default(),
                text(p, "triage_status").unwrap_or_else(|| "?".into())
            )
        });
        let by = text(p, "triaged_by").or_else(|| e.agent.map(str::to_owned));
        let by_agent = by.as_deref().is_some_and(looks_like_agent) || e.agent.is_some();
        self.decide(Decision {
            project: key,
            text: summary,
            source: "triage".into(),
            category: "product".into(),
            impact,
            impact_inferred: priority
                .is_none()
                .then(|| "inferred: a triage without a priority".into()),
            decided_by: by,
            by_agent,
            basis: Vec::new(),
            reversible: Some(true),
            at: e.at.clone(),
        });
    }

    fn approval_requested(&mut self, e: &MissionEvent<'_>) {
        let p = e.payload;
        let key = self.project_key(p);
        if let Some(w) = text(p, "work_id") {
            self.work_project.insert(w, key.clone());
        }
        self.project(&key, p).note(&e.at);
        let id = text(p, "approval_id").unwrap_or_else(|| format!("approval@{}", e.at.time_us));
        self.approvals.insert(
            id.clone(),
            Approval {
                id,
                project: key,
                work_id: text(p, "work_id"),
                gate_type: text(p, "gate_type"),
                prompt: text(p, "prompt").unwrap_or_default(),
                options: strings(p, "options", 20),
                deadline_us: time(p, "decision_deadline"),
                requested: e.at.clone(),
                resolved: None,
            },
        );
    }

    fn approval_resolved(&mut self, e: &MissionEvent<'_>) {
        let p = e.payload;
        let decision = text(p, "decision").unwrap_or_else(|| "resolved".into());
        let by = text(p, "resolved_by");
        let id = text(p, "approval_id");
        let asked = id.as_ref().and_then(|id| self.approvals.get_mut(id));
        let (key, prompt) = match asked {
            Some(a) => {
                a.resolved = Some((decision.clone(), by.clone(), e.at.clone()));
                (a.project.clone(), a.prompt.clone())
            }
            None => (self.project_key(p), String::new()),
        };
        let by_agent = by.as_deref().is_some_and(looks_like_agent);
        let what = if prompt.is_empty() {
            id.unwrap_or_default()
        } else {
            prompt
        };
        self.decide(Decision {
            project: key,
            text: format!("{decision}: {what}"),
            source: "approval".into(),
            category: "process".into(),
            impact: ImpactLevel::Medium,
            impact_inferred: Some("inferred: an approval".into()),
            decided_by: by,
            by_agent,
            basis: Vec::new(),
            reversible: None,
            at: e.at.clone(),
        });
    }

    fn escalation_raised(&mut self, e: &MissionEvent<'_>) {
        let p = e.payload;
        let key = self.project_key(p);
        self.project(&key, p).note(&e.at);
        let id = text(p, "escalation_id").unwrap_or_else(|| format!("escalation@{}", e.at.time_us));
        self.escalations.insert(
            id.clone(),
            Escalation {
                id,
                project: key,
                work_id: text(p, "work_id"),
                severity: text(p, "severity").unwrap_or_else(|| "notice".into()),
                reason_code: text(p, "reason_code"),
                summary: text(p, "summary").unwrap_or_default(),
                requires_approval: boolean(p, "requires_approval").unwrap_or(false),
                raised: e.at.clone(),
                resolved: None,
            },
        );
    }

    fn meeting_comment(&mut self, e: &MissionEvent<'_>) {
        let p = e.payload;
        let category = text(p, "category").unwrap_or_default();
        if !category.contains("decision") {
            return;
        }
        let novelty = number(p, "novelty_score").unwrap_or(0.5);
        let impact = if novelty >= 0.8 {
            ImpactLevel::High
        } else if novelty >= 0.4 {
            ImpactLevel::Medium
        } else {
            ImpactLevel::Low
        };
        let key = self.project_key(p);
        self.decide(Decision {
            project: key,
            text: text(p, "comment_text").unwrap_or_default(),
            source: "meeting".into(),
            category: category
                .split('_')
                .next()
                .filter(|c| *c != "decision")
                .unwrap_or("technical")
                .to_owned(),
            impact,
            impact_inferred: Some(format!("inferred: novelty {novelty:.2}")),
            decided_by: text(p, "agent_name"),
            by_agent: text(p, "agent_name").is_some(),
            basis: text(p, "meeting_id").into_iter().collect(),
            reversible: None,
            at: e.at.clone(),
        });
    }

    fn review(&mut self, e: &MissionEvent<'_>) {
        let p = e.payload;
        let key = self.project_key(p);
        push_capped(
            &mut self.reviews,
            Review {
                project: key,
                issue: text(p, "issue").unwrap_or_default(),
                decision: text(p, "decision").unwrap_or_default(),
                drift: text(p, "drift").unwrap_or_else(|| "none".into()),
                close_gate: text(p, "close_gate"),
                reasons: strings(p, "reasons", 20)
                    .into_iter()
                    .chain(strings(p, "drift_reasons", 20))
                    .collect(),
                at: e.at.clone(),
            },
        );
    }

    fn decide(&mut self, d: Decision) {
        push_capped(&mut self.decisions, d);
    }
}

/// Whether a name reads as an agent's rather than a person's.
#[must_use]
pub fn looks_like_agent(name: &str) -> bool {
    let n = name.to_lowercase();
    [
        "agent", "bot", "claude", "gpt", "codex", "gemini", "llm", "auto",
    ]
    .iter()
    .any(|w| n.contains(w))
}

#[cfg(test)]
mod tests;
