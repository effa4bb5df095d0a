//! The demo's Mission Control events: five projects with a past (the last 40 hours, sent first
//! with their own timestamps) and a present — one speeding up, one slowing down, one blocked,
//! one stalled, one waiting on a gate whose SLA runs out a minute and a half in — decisions of
//! every size (one an agent's high-impact call: an autonomy alert), escalations, an approval
//! waiting for a person, roadmap changes and review drift. Its own random numbers, so the rest
//! of the demo stays as it was.

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde_json::{Value, json};

use crate::event::RawMessage;
use crate::time::{MICROS_PER_SEC, Micros, format_rfc3339};

const MIN: Micros = 60 * MICROS_PER_SEC;
const HOUR: Micros = 60 * MIN;
/// Demo time between two live Mission events.
const EVERY_US: Micros = 4 * MICROS_PER_SEC;

/// (lifecycle id, name, repo).
const PROJECTS: [(&str, &str, &str); 5] = [
    ("lc-atlas", "Atlas API", "atlas-api"),
    ("lc-beacon", "Beacon web", "beacon-web"),
    ("lc-comet", "Comet ML", "comet-ml"),
    ("lc-delta", "Delta infra", "delta-infra"),
    ("lc-ember", "Ember mobile", "ember-mobile"),
];

const TASKS: [&str; 10] = [
    "add retries to the webhook client",
    "cache the pricing table",
    "fix the flaky login test",
    "paginate the audit log",
    "move secrets to the vault",
    "trim the docker image",
    "add a health endpoint",
    "index the events table",
    "rate-limit the public API",
    "write the upgrade guide",
];

/// Decisions: (text, impact or "" to infer, category or "", decided by).
const DECISIONS: [(&str, &str, &str, &str); 8] = [
    (
        "split billing out of the monolith into its own service",
        "critical",
        "architectural",
        "claude-architect",
    ),
    (
        "adopt the new events schema (v2) for every producer",
        "",
        "",
        "codex-bot",
    ),
    (
        "ship the beta to 10 % of users first",
        "medium",
        "product",
        "dana",
    ),
    (
        "keep Postgres 15 until the next quarter",
        "low",
        "technical",
        "ravi",
    ),
    (
        "require two reviews for infra changes",
        "medium",
        "process",
        "dana",
    ),
    (
        "move the nightly jobs to 02:00 UTC",
        "low",
        "operational",
        "ops-agent",
    ),
    (
        "drop the legacy v1 webhooks in January",
        "high",
        "product",
        "ravi",
    ),
    (
        "use sqlite for the local cache",
        "",
        "technical",
        "gemini-agent",
    ),
];

/// Decisions made while the demo runs: (text, impact or "", category or "", decided by).
const LIVE_DECISIONS: [(&str, &str, &str, &str); 8] = [
    (
        "retry flaky integration tests once before failing the build",
        "low",
        "process",
        "ci-agent",
    ),
    (
        "pin the container base image by digest",
        "",
        "operational",
        "ops-agent",
    ),
    (
        "batch embedding calls in groups of 64",
        "medium",
        "technical",
        "claude-code",
    ),
    (
        "show the new onboarding checklist to new teams",
        "medium",
        "product",
        "dana",
    ),
    (
        "cap each agent run at 30 minutes",
        "medium",
        "operational",
        "ravi",
    ),
    (
        "store prompts with their model version",
        "",
        "technical",
        "gemini-agent",
    ),
    (
        "review every dependency bump by hand this month",
        "low",
        "process",
        "dana",
    ),
    (
        "switch the search index to the new schema",
        "",
        "",
        "codex-bot",
    ),
];

/// The Mission Control half of the demo feed.
pub(super) struct MissionSim {
    rng: Pcg64Mcg,
    /// The past, oldest first, each with its own time: sent before anything live.
    backlog: VecDeque<(Micros, &'static str, Value)>,
    started: bool,
    last_us: Micros,
    n: u64,
    progress: [f64; 5],
    open_escalations: Vec<String>,
    open_approvals: Vec<String>,
}

impl MissionSim {
    pub(super) fn new(seed: u64) -> Self {
        Self {
            rng: Pcg64Mcg::seed_from_u64(seed ^ 0x6d69_7373_696f_6e00),
            backlog: VecDeque::new(),
            started: false,
            last_us: Micros::MIN,
            n: 0,
            progress: [35.0, 60.0, 20.0, 45.0, 70.0],
            open_escalations: Vec::new(),
            open_approvals: Vec::new(),
        }
    }

    /// The next Mission event, when one is due at `now_us`.
    pub(super) fn next(&mut self, now_us: Micros) -> Option<RawMessage> {
        if !self.started {
            self.started = true;
            self.history(now_us);
        }
        if let Some((at, kind, payload)) = self.backlog.pop_front() {
            return Some(self.message(now_us, at, kind, &payload));
        }
        if now_us.saturating_sub(self.last_us) < EVERY_US {
            return None;
        }
        self.last_us = now_us;
        let (kind, payload) = self.live(now_us);
        Some(self.message(now_us, now_us, kind, &payload))
    }

    fn message(&mut self, now_us: Micros, at: Micros, kind: &str, payload: &Value) -> RawMessage {
        self.n += 1;
        let id = format!("mission-{:06}-{:08x}", self.n, self.rng.random::<u32>());
        let full = format!("bloodbank.v1.{kind}");
        let time = format_rfc3339(at);
        // Every third one in the CloudEvents style, the rest in Bloodbank v1's.
        let body = if self.n.is_multiple_of(3) {
            json!({"specversion": "1.0", "id": id, "type": full, "time": time,
                "source": "reconciler", "data": payload})
        } else {
            json!({"event_id": id, "event_type": full, "timestamp": time, "version": "1.0.0",
                "source": {"host": "devbox-01", "type": "reconciler", "app": "reconciler"},
                "correlation_ids": [], "payload": payload})
        };
        RawMessage {
            received_us: now_us,
            routing_key: format!("bloodbank.evt.v1.{kind}"),
            body: body.to_string().into_bytes(),
            ..RawMessage::default()
        }
    }

    fn push(&mut self, at: Micros, kind: &'static str, payload: Value) {
        self.backlog.push_back((at, kind, payload));
    }

    /// The last 40 hours, in time order.
    fn history(&mut self, now: Micros) {
        let mut past: Vec<(Micros, &'static str, Value)> = Vec::new();
        for (i, (id, name, repo)) in PROJECTS.iter().enumerate() {
            past.push((
                now - 40 * HOUR + i as i64 * MIN,
                "lifecycle.mission.created",
                json!({"lifecycle_id": id, "name": name, "repo": repo, "repos": [repo],
                    "status": "active", "health": "nominal"}),
            ));
            past.push((
                now - 39 * HOUR,
                "lifecycle.roadmap.updated",
                roadmap(
                    id,
                    repo,
                    "1",
                    None,
                    &["MVP", "Beta", "GA"],
                    "replan",
                    self.progress[i],
                ),
            ));
        }
        // Work done: Atlas speeds up (mostly in the last day), Beacon slows down (mostly the
        // day before), Comet is steady, Delta and Ember did little lately.
        let work: [(usize, usize, usize); 5] =
            [(14, 4, 0), (3, 12, 1), (7, 7, 2), (1, 6, 3), (0, 5, 4)];
        for (recent, before, p) in work {
            let (id, _, repo) = PROJECTS[p];
            for k in 0..recent {
                let at =
                    now - 23 * HOUR + (k as i64 * 23 * HOUR) / (recent.max(1) as i64) + 7 * MIN;
                past.push((at, "repo.task.completed", task(repo, k, "done")));
            }
            for k in 0..before {
                let at =
                    now - 47 * HOUR + (k as i64 * 22 * HOUR) / (before.max(1) as i64) + 7 * MIN;
                if at > now - 40 * HOUR {
                    past.push((at, "repo.task.completed", task(repo, k + 100, "done")));
                }
            }
            let _ = id;
        }
        // Progress and health as the reconciler reported them.
        for (p, (id, _, repo)) in PROJECTS.iter().enumerate() {
            let (runnable, blockers, last_progress) = match p {
                3 => (
                    0,
                    json!([{"id": "blk-ci", "kind": "ci_failing", "blocking": true,
                    "summary": "main has been red since the toolchain bump", "owner_kind": "team",
                    "owner_id": "platform-team", "created_at": format_rfc3339(now - 5 * HOUR)},
                    {"id": "blk-dep", "kind": "dependency_not_ready", "blocking": true,
                    "summary": "waiting for the new VPC from networking", "owner_kind": "team",
                    "owner_id": "networking", "created_at": format_rfc3339(now - 9 * HOUR)}]),
                    now - 6 * HOUR,
                ),
                4 => (3, json!([]), now - 3 * HOUR),
                _ => (2 + p as u64, json!([]), now - 20 * MIN),
            };
            let health = match p {
                3 => "blocked",
                1 => "at_risk",
                _ => "nominal",
            };
            past.push((
                now - 15 * MIN - p as i64 * MIN,
                "lifecycle.status.updated",
                json!({"lifecycle_id": id, "repo": repo,
                    "previous": {"status": "active", "health": "nominal"},
                    "current": {"status": if p == 3 { "blocked" } else { "active" }, "health": health,
                        "phase": "Beta", "progress_percent": self.progress[p]},
                    "transition": {"reason": if p == 1 { "velocity dropped by half" } else { "reconciled" },
                        "detector": "reconciler", "confidence": 0.8},
                    "blockers": blockers,
                    "signals": {"open_work_items": 6 + p, "runnable_work_items": runnable,
                        "active_agent_runs": if p == 3 { 0 } else { 1 + p % 3 }, "open_blockers": if p == 3 { 2 } else { 0 },
                        "last_progress_at": format_rfc3339(last_progress)}}),
            ));
        }
        // Plans: Beacon's scope grew; checkpoints reached.
        past.push((
            now - 12 * HOUR,
            "lifecycle.roadmap.updated",
            roadmap(
                "lc-beacon",
                "beacon-web",
                "2",
                Some("1"),
                &["MVP", "Public beta", "Payments", "GA"],
                "scope_change",
                52.0,
            ),
        ));
        past.push((
            now - 30 * HOUR,
            "lifecycle.checkpoint.reached",
            json!({"lifecycle_id": "lc-atlas", "repo": "atlas-api", "checkpoint": {"id": "cp-mvp",
                "kind": "phase_exit", "name": "MVP live", "roadmap_version": "1", "phase_id": "mvp"},
                "progress": {"percent": 30}}),
        ));
        past.push((
            now - 2 * HOUR,
            "lifecycle.checkpoint.reached",
            json!({"lifecycle_id": "lc-comet", "repo": "comet-ml", "checkpoint": {"id": "cp-eval",
                "kind": "milestone", "name": "eval harness green", "roadmap_version": "1"},
                "progress": {"percent": 20}}),
        ));
        // Gates: Atlas waits on a review whose SLA runs out a minute and a half from now;
        // Comet's security review is overdue already.
        past.push((
            now - 50 * MIN,
            "lifecycle.gate.opened",
            json!({"lifecycle_id": "lc-atlas", "repo": "atlas-api", "gate": {"id": "gate-review-118",
                "kind": "human_review", "blocking": true, "reason": "PR #118 changes the public API",
                "owner_kind": "person", "owner_id": "dana",
                "sla_due_at": format_rfc3339(now + 90 * MICROS_PER_SEC)}}),
        ));
        past.push((
            now - 5 * HOUR,
            "lifecycle.gate.opened",
            json!({"lifecycle_id": "lc-comet", "repo": "comet-ml", "gate": {"id": "gate-sec-7",
                "kind": "security_review", "blocking": true, "reason": "new model weights from an external source",
                "owner_kind": "team", "owner_id": "security",
                "sla_due_at": format_rfc3339(now - HOUR)}}),
        ));
        // Escalations and an approval waiting for a person.
        past.push((
            now - 40 * MIN,
            "portfolio.escalation.raised",
            json!({"portfolio_id": "pf-1", "escalation_id": "esc-1", "work_id": "w-delta-3",
                "project": {"project_id": "delta", "repo": "delta-infra"}, "severity": "critical",
                "reason_code": "deploy_failing", "summary": "staging deploys fail since 09:10",
                "requires_approval": true}),
        ));
        past.push((
            now - 3 * HOUR,
            "portfolio.escalation.raised",
            json!({"portfolio_id": "pf-1", "escalation_id": "esc-2", "work_id": "w-beacon-9",
                "project": {"project_id": "beacon", "repo": "beacon-web"}, "severity": "warning",
                "reason_code": "budget", "summary": "LLM spend at 140 % of the weekly budget"}),
        ));
        past.push((
            now - 25 * MIN,
            "portfolio.approval.requested",
            json!({"portfolio_id": "pf-1", "approval_id": "apr-1", "work_id": "w-comet-2",
                "project": {"project_id": "comet", "repo": "comet-ml"}, "gate_type": "release",
                "prompt": "Promote model comet-v4 to production?", "options": ["approve", "deny", "defer"],
                "decision_deadline": format_rfc3339(now + 2 * HOUR)}),
        ));
        // Decisions of every size, some hours apart.
        for (k, (text, impact, category, by)) in DECISIONS.iter().enumerate() {
            let (_, _, repo) = PROJECTS[k % PROJECTS.len()];
            let mut d = json!({"repo": repo, "decision": text, "decided_by": by,
                "basis": ["ADR-".to_owned() + &(10 + k).to_string()], "artifacts_root": "docs/adr"});
            if !impact.is_empty() {
                d["impact"] = json!(impact);
            }
            if !category.is_empty() {
                d["category"] = json!(category);
            }
            past.push((
                now - (2 + 4 * k as i64) * HOUR + 11 * MIN,
                "repo.decision.recorded",
                d,
            ));
        }
        past.push((
            now - 6 * HOUR,
            "portfolio.intake.triaged",
            json!({"portfolio_id": "pf-1", "intake_id": "in-42", "work_id": "w-atlas-7",
                "project": {"project_id": "atlas", "repo": "atlas-api"}, "triage_status": "accepted",
                "priority": "high", "decision_summary": "accept the SSO request from the sales team"}),
        ));
        past.push((
            now - 4 * HOUR,
            "theboard.meeting.comment_extracted",
            json!({"meeting_id": "mtg-7", "agent_name": "board-scribe", "repo": "comet-ml",
                "category": "technical_decision", "novelty_score": 0.85,
                "comment_text": "evaluate on the held-out set before every release"}),
        ));
        // Review drift.
        past.push((
            now - 3 * HOUR,
            "beacon.issue.autonomous_review.decided",
            json!({"repo": "beacon-web", "issue": "#212", "decision": "held", "drift": "significant",
                "close_gate": "fail", "reasons": ["payments added to the beta scope", "no tests for checkout"]}),
        ));
        past.push((
            now - 9 * HOUR,
            "atlas.issue.autonomous_review.decided",
            json!({"repo": "atlas-api", "issue": "#118", "decision": "accepted", "drift": "minor",
                "close_gate": "pass", "reasons": ["renamed two endpoints"]}),
        ));
        past.sort_by_key(|(t, _, _)| *t);
        for (t, k, p) in past {
            self.push(t, k, p);
        }
    }

    /// One live event.
    fn live(&mut self, now: Micros) -> (&'static str, Value) {
        let roll = self.rng.random_range(0..100);
        // Atlas, Comet and Beacon do most of the work now.
        let p = [0, 0, 0, 2, 2, 1][self.rng.random_range(0..6)];
        let (id, _, repo) = PROJECTS[p];
        match roll {
            0..45 => {
                let k = self.rng.random_range(0..TASKS.len());
                (
                    "repo.task.completed",
                    task(repo, k + 1000 + self.n as usize, "done"),
                )
            }
            45..65 => {
                self.progress[p] = (self.progress[p] + self.rng.random_range(0.5..3.0)).min(100.0);
                (
                    "lifecycle.status.updated",
                    json!({"lifecycle_id": id, "repo": repo,
                        "previous": {"status": "active", "health": "nominal"},
                        "current": {"status": "active", "health": "nominal", "phase": "Beta",
                            "progress_percent": (self.progress[p] * 10.0).round() / 10.0},
                        "transition": {"reason": "work completed", "detector": "reconciler"},
                        "blockers": [],
                        "signals": {"open_work_items": 5, "runnable_work_items": 2,
                            "active_agent_runs": 1 + self.rng.random_range(0..3),
                            "open_blockers": 0, "last_progress_at": format_rfc3339(now)}}),
                )
            }
            65..75 => {
                let (text, impact, category, by) =
                    LIVE_DECISIONS[self.rng.random_range(0..LIVE_DECISIONS.len())];
                let mut d = json!({"repo": repo, "decision": text, "decided_by": by});
                if !impact.is_empty() {
                    d["impact"] = json!(impact);
                }
                if !category.is_empty() {
                    d["category"] = json!(category);
                }
                ("repo.decision.recorded", d)
            }
            75..82 if self.open_escalations.len() < 3 => {
                let eid = format!("esc-live-{}", self.n);
                self.open_escalations.push(eid.clone());
                let severity = ["notice", "warning", "critical"][self.rng.random_range(0..3)];
                (
                    "portfolio.escalation.raised",
                    json!({"portfolio_id": "pf-1", "escalation_id": eid,
                        "project": {"project_id": id, "repo": repo}, "severity": severity,
                        "reason_code": "agent_run_failed",
                        "summary": format!("{} agent runs failed in a row", 2 + self.rng.random_range(0..4))}),
                )
            }
            75..88 if !self.open_escalations.is_empty() => {
                let eid = self.open_escalations.remove(0);
                (
                    "portfolio.escalation.resolved",
                    json!({"escalation_id": eid, "resolution": "retried and passed", "resolved_by": "ops-agent"}),
                )
            }
            88..94 if self.open_approvals.len() < 2 => {
                let aid = format!("apr-live-{}", self.n);
                self.open_approvals.push(aid.clone());
                (
                    "portfolio.approval.requested",
                    json!({"approval_id": aid, "project": {"project_id": id, "repo": repo},
                        "gate_type": "merge", "prompt": format!("Merge the {repo} dependency updates?"),
                        "options": ["approve", "deny"],
                        "decision_deadline": format_rfc3339(now + 30 * MIN)}),
                )
            }
            88..100 if !self.open_approvals.is_empty() => {
                let aid = self.open_approvals.remove(0);
                (
                    "portfolio.approval.resolved",
                    json!({"approval_id": aid, "decision": "approved", "resolved_by": "dana"}),
                )
            }
            _ => (
                "lifecycle.checkpoint.reached",
                json!({"lifecycle_id": id, "repo": repo, "checkpoint": {"id": format!("cp-{}", self.n),
                    "kind": "milestone", "name": "weekly demo", "roadmap_version": "1"},
                    "progress": {"percent": self.progress[p]}}),
            ),
        }
    }
}

fn task(repo: &str, k: usize, status: &str) -> Value {
    json!({"repo": repo, "task_id": format!("{repo}-{k}"), "title": TASKS[k % TASKS.len()],
        "status": status, "completed_by": "claude-code"})
}

fn roadmap(
    id: &str,
    repo: &str,
    version: &str,
    previous: Option<&str>,
    phases: &[&str],
    reason: &str,
    percent: f64,
) -> Value {
    let phases: Vec<Value> = phases
        .iter()
        .map(|p| {
            let kind = match *p {
                "MVP" => "mvp",
                "GA" => "release",
                _ => "phase",
            };
            json!({"id": p.to_lowercase().replace(' ', "-"), "name": p, "kind": kind,
                "entry_criteria": [], "exit_criteria": []})
        })
        .collect();
    json!({"lifecycle_id": id, "repo": repo,
        "roadmap": {"id": format!("rm-{repo}"), "version": version, "previous_version": previous,
            "phases": phases},
        "progress": {"percent": percent, "basis": "checkpoints"}, "change_reason": reason})
}
