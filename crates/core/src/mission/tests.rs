//! Golden tests of Mission Control's rules: health, the decision ranking, risks, drift, the
//! briefing, and bad records read without a panic.

use serde_json::{Value, json};

use super::*;
use crate::time::MICROS_PER_SEC;

/// 2026-12-01 12:00:00 UTC.
const NOW: Micros = 1_796_126_400_000_000;
const MIN: Micros = 60 * MICROS_PER_SEC;
const HOUR: Micros = 60 * MIN;

fn feed(m: &mut Mission, kind: &str, at: Micros, payload: &Value) {
    m.ingest(&MissionEvent {
        at: EvRef {
            seq: 0,
            id: Some(format!("{kind}@{at}")),
            time_us: at,
            kind: kind.to_owned(),
        },
        agent: None,
        payload,
    });
}

fn created(m: &mut Mission, id: &str, repo: &str, at: Micros) {
    feed(
        m,
        "lifecycle.mission.created",
        at,
        &json!({"lifecycle_id": id, "name": format!("{id} name"), "repo": repo,
            "status": "active", "health": "nominal"}),
    );
}

#[allow(clippy::needless_pass_by_value)] // json!() literals at the call sites
fn status(
    m: &mut Mission,
    id: &str,
    at: Micros,
    runnable: u64,
    blockers: Value,
    last: Option<&str>,
) {
    feed(
        m,
        "lifecycle.status.updated",
        at,
        &json!({"lifecycle_id": id, "repo": "r",
            "previous": {"status": "active", "health": "nominal"},
            "current": {"status": "active", "health": "nominal", "progress_percent": 40},
            "transition": {"reason": "reconciled"},
            "blockers": blockers,
            "signals": {"runnable_work_items": runnable, "open_work_items": 5,
                "active_agent_runs": 2, "last_progress_at": last}}),
    );
}

fn card<'a>(cards: &'a [PortfolioCard], key: &str) -> &'a PortfolioCard {
    cards.iter().find(|c| c.key == key).expect("a card")
}

#[test]
fn health_follows_the_reconcilers_rules() {
    let mut m = Mission::new();
    // Stalled: runnable work, last progress 2 h ago.
    created(&mut m, "lc-stall", "stall", NOW - 5 * HOUR);
    status(
        &mut m,
        "lc-stall",
        NOW - HOUR,
        3,
        json!([]),
        Some("2026-12-01T10:00:00Z"),
    );
    // Blocked: blockers and nothing runnable.
    created(&mut m, "lc-block", "block", NOW - 5 * HOUR);
    status(
        &mut m,
        "lc-block",
        NOW - 10 * MIN,
        0,
        json!([{"id": "b1", "kind": "ci_failing", "blocking": true, "summary": "main is red",
            "owner_id": "ci-bot"}]),
        Some("2026-12-01T11:50:00Z"),
    );
    // Waiting on a gate within its SLA, and one past it.
    created(&mut m, "lc-gate", "gate", NOW - 5 * HOUR);
    feed(
        &mut m,
        "lifecycle.gate.opened",
        NOW - HOUR,
        &json!({"lifecycle_id": "lc-gate", "repo": "gate", "gate": {"id": "g1",
            "kind": "human_review", "blocking": true, "sla_due_at": "2026-12-01T13:00:00Z"}}),
    );
    created(&mut m, "lc-late", "late", NOW - 5 * HOUR);
    feed(
        &mut m,
        "lifecycle.gate.opened",
        NOW - 3 * HOUR,
        &json!({"lifecycle_id": "lc-late", "repo": "late", "gate": {"id": "g2",
            "kind": "security_review", "blocking": true, "sla_due_at": "2026-12-01T11:30:00Z"}}),
    );
    // Fine: progress 10 min ago.
    created(&mut m, "lc-ok", "ok", NOW - 5 * HOUR);
    status(
        &mut m,
        "lc-ok",
        NOW - 10 * MIN,
        2,
        json!([]),
        Some("2026-12-01T11:50:00Z"),
    );

    let cards = portfolio(&m, NOW);
    let c = card(&cards, "lc-stall");
    assert_eq!(c.health, Health::Stalled);
    assert_eq!(
        c.health_reason,
        "no progress for 2 h 0 min with 3 runnable items"
    );
    let c = card(&cards, "lc-block");
    assert_eq!(c.health, Health::Blocked);
    assert_eq!(
        c.health_reason,
        "1 open blocker (ci_failing) and no runnable work"
    );
    assert_eq!(c.open_blockers, 1);
    let c = card(&cards, "lc-gate");
    assert_eq!(c.health, Health::Nominal);
    assert_eq!(
        c.health_reason,
        "waiting on the human_review gate g1 (SLA in 1 h 0 min)"
    );
    let c = card(&cards, "lc-late");
    assert_eq!(c.health, Health::AtRisk);
    assert_eq!(
        c.health_reason,
        "security_review gate g2 is 30 min 0 s past its SLA"
    );
    let c = card(&cards, "lc-ok");
    assert_eq!(
        (c.health, c.health_reason.as_str()),
        (Health::Nominal, "reconciled")
    );

    // The gate resolved: no longer waiting, and the resolution is a decision.
    feed(
        &mut m,
        "lifecycle.gate.resolved",
        NOW - MIN,
        &json!({"lifecycle_id": "lc-late", "repo": "late", "gate": {"id": "g2",
            "resolution": "approved", "resolved_by": "dana"}}),
    );
    let cards = portfolio(&m, NOW);
    assert_eq!(card(&cards, "lc-late").health, Health::Nominal);
    let d = ranked_decisions(&m, 0, NOW, NOW);
    assert_eq!(d[0].decision.text, "gate g2 approved");
    assert_eq!(d[0].decision.decided_by.as_deref(), Some("dana"));
    assert!(!d[0].decision.by_agent);
}

#[test]
fn momentum_counts_work_per_day_and_movers_come_first() {
    let mut m = Mission::new();
    created(&mut m, "lc-a", "a", NOW - 50 * HOUR);
    created(&mut m, "lc-b", "b", NOW - 50 * HOUR);
    for i in 0..6 {
        feed(
            &mut m,
            "repo.task.completed",
            NOW - i * HOUR - MIN,
            &json!({"repo": "b", "task_id": format!("t{i}"), "title": "x"}),
        );
    }
    for i in 0..4 {
        feed(
            &mut m,
            "repo.task.completed",
            NOW - 30 * HOUR - i * HOUR,
            &json!({"repo": "a", "task_id": format!("t{i}"), "title": "x"}),
        );
    }
    feed(
        &mut m,
        "repo.task.completed",
        NOW - 2 * HOUR,
        &json!({"repo": "a", "task_id": "t9", "title": "x"}),
    );
    let cards = portfolio(&m, NOW);
    assert_eq!(cards[0].key, "lc-b", "the mover first");
    assert_eq!((cards[0].done_24h, cards[0].done_prev_24h), (6, 0));
    assert_eq!(cards[0].sparkline.iter().sum::<u32>(), 6);
    assert_eq!(cards[0].sparkline[23], 1, "the last hour");
    let a = card(&cards, "lc-a");
    assert_eq!((a.done_24h, a.done_prev_24h, a.momentum()), (1, 4, -3));
    // Tasks name the repo; its lifecycle owns them.
    assert!(!m.projects.contains_key("repo:b"));
}

#[test]
fn decisions_rank_by_impact_category_and_recency() {
    let mut m = Mission::new();
    feed(
        &mut m,
        "repo.decision.recorded",
        NOW - HOUR,
        &json!({"repo": "api", "decision": "use sqlite for the cache", "impact": "low",
            "category": "technical", "decided_by": "ada"}),
    );
    feed(
        &mut m,
        "repo.decision.recorded",
        NOW - 24 * HOUR,
        &json!({"repo": "api", "decision": "split the monolith", "impact": "critical",
            "category": "architectural", "decided_by": "claude-agent"}),
    );
    // No impact: inferred from its words.
    feed(
        &mut m,
        "repo.decision.recorded",
        NOW - 2 * HOUR,
        &json!({"repo": "api", "decision": "migrate the users table", "decided_by": "codex-bot",
            "basis": ["ADR-12"]}),
    );
    let d = ranked_decisions(&m, 0, NOW, NOW);
    let texts: Vec<&str> = d.iter().map(|d| d.decision.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "split the monolith",
            "migrate the users table",
            "use sqlite for the cache"
        ]
    );
    // 8 × 1.5 × 0.5 (a day old) = 6.
    assert!((d[0].rank - 6.0).abs() < 1e-9, "{}", d[0].rank);
    // 4 × 1.0 (process? no: "migrate" reads technical … ) × 0.5^(2/24).
    let migrate = &d[1].decision;
    assert_eq!(migrate.impact, ImpactLevel::High);
    assert_eq!(
        migrate.impact_inferred.as_deref(),
        Some("inferred: it mentions \"migrat\"")
    );
    assert_eq!(migrate.category, "technical");
    let expect = 4.0 * 1.2 * 0.5f64.powf(2.0 / 24.0);
    assert!((d[1].rank - expect).abs() < 1e-9);
    // Agents' high-impact decisions in the last 24 h raise the alert; a day-old one does not.
    assert!(d[1].autonomy_alert);
    assert!(
        !d[0].autonomy_alert,
        "exactly 24 h old is outside the window"
    );
    assert!(!d[2].autonomy_alert, "a person's");
    // A range picks by time.
    assert_eq!(ranked_decisions(&m, NOW - 3 * HOUR, NOW, NOW).len(), 2);
}

#[test]
fn open_risks_come_most_pressing_first_and_resolved_ones_go() {
    let mut m = Mission::new();
    created(&mut m, "lc-a", "a", NOW - 5 * HOUR);
    feed(
        &mut m,
        "portfolio.escalation.raised",
        NOW - HOUR,
        &json!({"escalation_id": "x1", "project": {"project_id": "p", "repo": "a"},
            "severity": "warning", "summary": "cost over budget"}),
    );
    feed(
        &mut m,
        "portfolio.escalation.raised",
        NOW - 2 * HOUR,
        &json!({"escalation_id": "x2", "project": {"repo": "a"}, "severity": "critical",
            "summary": "prod deploy failing", "requires_approval": true}),
    );
    feed(
        &mut m,
        "portfolio.approval.requested",
        NOW - HOUR,
        &json!({"approval_id": "ap1", "project": {"repo": "a"}, "prompt": "Ship v2?",
            "options": ["approve", "deny"], "decision_deadline": "2026-12-01T11:00:00Z"}),
    );
    feed(
        &mut m,
        "lifecycle.gate.opened",
        NOW - HOUR,
        &json!({"lifecycle_id": "lc-a", "gate": {"id": "g1", "kind": "ci_gate", "blocking": true,
            "sla_due_at": "2026-12-01T18:00:00Z"}}),
    );
    let r = risks(&m, NOW);
    let titles: Vec<&str> = r.items.iter().map(|i| i.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "prod deploy failing",
            "Ship v2?",
            "cost over budget",
            "ci_gate gate g1"
        ]
    );
    assert!(r.items[1].overdue, "past its decision deadline");
    assert_eq!(r.items[1].options, ["approve", "deny"]);
    assert_eq!(r.items[0].project_name, "lc-a name", "the repo's lifecycle");

    feed(
        &mut m,
        "portfolio.escalation.resolved",
        NOW - MIN,
        &json!({"escalation_id": "x2", "resolution": "rolled back", "resolved_by": "ops"}),
    );
    feed(
        &mut m,
        "portfolio.approval.resolved",
        NOW - MIN,
        &json!({"approval_id": "ap1", "decision": "approved", "resolved_by": "dana"}),
    );
    let r = risks(&m, NOW);
    let titles: Vec<&str> = r.items.iter().map(|i| i.title.as_str()).collect();
    assert_eq!(titles, ["cost over budget", "ci_gate gate g1"]);
    // The approval became a decision.
    let d = ranked_decisions(&m, 0, NOW, NOW);
    assert!(d.iter().any(|d| d.decision.text == "approved: Ship v2?"));
}

#[test]
fn roadmap_versions_say_what_changed_and_reviews_their_drift() {
    let mut m = Mission::new();
    created(&mut m, "lc-a", "a", NOW - 50 * HOUR);
    let roadmap = |v: &str, prev: Option<&str>, phases: Value, reason: &str, pct: f64| {
        json!({"lifecycle_id": "lc-a", "repo": "a",
            "roadmap": {"id": "rm", "version": v, "previous_version": prev, "phases": phases},
            "progress": {"percent": pct, "basis": "checkpoints"}, "change_reason": reason})
    };
    feed(
        &mut m,
        "lifecycle.roadmap.updated",
        NOW - 40 * HOUR,
        &roadmap(
            "1",
            None,
            json!([{"id": "p1", "name": "MVP", "kind": "mvp"}, {"id": "p2", "name": "Beta"}]),
            "replan",
            10.0,
        ),
    );
    feed(
        &mut m,
        "lifecycle.checkpoint.reached",
        NOW - 20 * HOUR,
        &json!({"lifecycle_id": "lc-a", "repo": "a", "checkpoint": {"id": "c1", "kind": "phase_exit",
            "name": "MVP done", "roadmap_version": "1"}, "progress": {"percent": 50}}),
    );
    feed(
        &mut m,
        "lifecycle.roadmap.updated",
        NOW - 10 * HOUR,
        &roadmap(
            "2",
            Some("1"),
            json!([{"id": "p1", "name": "MVP"}, {"id": "p2", "name": "Public beta"},
                {"id": "p3", "name": "GA", "kind": "release"}]),
            "scope_change",
            45.0,
        ),
    );
    feed(
        &mut m,
        "acme.api.issue.autonomous_review.decided",
        NOW - HOUR,
        &json!({"repo": "a", "issue": "#12", "decision": "held", "drift": "significant",
            "close_gate": "fail", "reasons": ["scope grew by a phase"]}),
    );
    let d = drift(&m);
    assert_eq!(d.len(), 1);
    let d = &d[0];
    assert_eq!(d.worst_drift, "significant");
    assert_eq!(d.scope_changes, 1);
    assert_eq!(d.diffs.len(), 1);
    assert_eq!(d.diffs[0].added, ["GA"]);
    assert!(d.diffs[0].removed.is_empty());
    assert_eq!(
        d.diffs[0].renamed,
        [("Beta".to_owned(), "Public beta".to_owned())]
    );
    let pct: Vec<f64> = d.actual.iter().map(|(_, p)| *p).collect();
    assert_eq!(
        pct,
        [10.0, 50.0, 45.0],
        "progress as reported, also when it falls"
    );
    assert_eq!(d.checkpoints[0].0, "MVP done");
}

#[test]
fn both_envelopes_are_read_from_stored_events() {
    let mut m = Mission::new();
    let v1 = json!({"event_id": "e1", "event_type": "lifecycle.mission.created",
        "timestamp": "2026-12-01T10:00:00Z",
        "payload": {"lifecycle_id": "lc-1", "name": "Atlas", "repo": "atlas", "status": "active",
            "health": "at_risk"}});
    let ce = json!({"id": "e2", "type": "bloodbank.v1.repo.task.completed", "specversion": "1.0",
        "time": "2026-12-01T11:00:00Z",
        "data": {"repo": "atlas", "task_id": "t1", "title": "ship it", "unknown": [1, 2]}});
    for (i, body) in [v1, ce].iter().enumerate() {
        let e = Event {
            seq: i as u64,
            kind: body
                .get("event_type")
                .or_else(|| body.get("type"))
                .and_then(Value::as_str)
                .unwrap()
                .to_owned(),
            received_us: NOW,
            body: body.to_string().into_bytes(),
            ..Event::default()
        };
        assert!(m.ingest_event(&e));
    }
    let cards = portfolio(&m, NOW);
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0].name, "Atlas");
    assert_eq!(cards[0].health, Health::AtRisk);
    assert_eq!(cards[0].done_24h, 1);
    assert_eq!(cards[0].filter, "\"lc-1\"");
    // Other events are not read at all.
    let other = Event {
        kind: "agent.thread.response".into(),
        body: b"{}".to_vec(),
        ..Event::default()
    };
    assert!(!m.ingest_event(&other));
}

#[test]
fn bad_records_are_shown_with_what_they_have() {
    let mut m = Mission::new();
    let huge: Vec<Value> = (0..100_000)
        .map(|i| json!({"id": format!("b{i}"), "kind": "x"}))
        .collect();
    for (kind, payload) in [
        (
            "lifecycle.mission.created",
            json!({"name": 42, "repo": ["not", "a", "string"]}),
        ),
        (
            "lifecycle.status.updated",
            json!({"lifecycle_id": "lc", "current": "nope",
            "blockers": huge, "signals": {"runnable_work_items": -5, "active_agent_runs": 1e300}}),
        ),
        ("lifecycle.gate.opened", json!({"gate": null})),
        (
            "lifecycle.gate.resolved",
            json!({"gate": {"resolution": 7}}),
        ),
        (
            "lifecycle.roadmap.updated",
            json!({"roadmap": {"phases": "all of them"},
            "progress": {"percent": "NaN"}}),
        ),
        ("lifecycle.checkpoint.reached", json!({"checkpoint": 1})),
        (
            "repo.decision.recorded",
            json!({"impact": "galactic", "basis": 3}),
        ),
        (
            "portfolio.escalation.raised",
            json!({"severity": ["critical"]}),
        ),
        (
            "portfolio.approval.requested",
            json!({"options": [1, null, "ok"]}),
        ),
        ("portfolio.approval.resolved", json!({})),
        (
            "theboard.meeting.comment_extracted",
            json!({"category": "technical_decision",
            "novelty_score": "high"}),
        ),
        ("jelmore.session.completed", json!({"success": "maybe"})),
        (
            "x.issue.autonomous_review.decided",
            json!({"drift": {"a": 1}}),
        ),
    ] {
        feed(&mut m, kind, NOW, &payload);
    }
    // Nothing panicked, and everything is somewhere.
    let cards = portfolio(&m, NOW);
    assert!(!cards.is_empty());
    let lc = card(&cards, "lc");
    assert_eq!(lc.open_blockers, 200, "a huge list is read in part");
    assert_eq!(
        lc.active_runs,
        Some(1_000_000_000_000),
        "an absurd number is capped"
    );
    let d = ranked_decisions(&m, 0, NOW, NOW);
    let recorded = d
        .iter()
        .find(|d| d.decision.source == "repo.decision.recorded")
        .expect("kept without its text");
    assert_eq!(recorded.decision.text, "(no text)");
    assert!(
        recorded.decision.impact_inferred.is_some(),
        "an unknown impact is inferred"
    );
    let r = risks(&m, NOW);
    assert!(r.items.iter().any(|i| i.kind == RiskKind::Escalation));
    assert!(r.items.iter().any(|i| i.options == ["ok"]));
    let b = brief(&m, "PM briefing", NOW - 12 * HOUR, NOW, NOW);
    assert!(b.markdown.contains("## Risks watchlist"));
}

#[test]
fn a_briefing_cites_the_events_behind_each_statement_and_is_deterministic() {
    let mut m = Mission::new();
    created(&mut m, "lc-a", "atlas", NOW - 20 * HOUR);
    for i in 0..3 {
        feed(
            &mut m,
            "repo.task.completed",
            NOW - (i + 1) * HOUR,
            &json!({"repo": "atlas", "task_id": format!("t{i}"), "title": "x"}),
        );
    }
    feed(
        &mut m,
        "repo.decision.recorded",
        NOW - 2 * HOUR,
        &json!({"repo": "atlas", "decision": "adopt [the] new schema", "decided_by": "claude"}),
    );
    feed(
        &mut m,
        "portfolio.escalation.raised",
        NOW - HOUR,
        &json!({"escalation_id": "x1", "project": {"repo": "atlas"}, "severity": "critical",
            "summary": "deploy failing"}),
    );
    feed(
        &mut m,
        "jelmore.session.completed",
        NOW - HOUR,
        &json!({"session_id": "s-1", "success": false, "summary": "build\nerror: linker"}),
    );
    let b = brief(&m, "PM briefing", NOW - 12 * HOUR, NOW, NOW);
    let md = &b.markdown;
    for section in [
        "# PM briefing",
        "## Overview",
        "## Needle-movers",
        "## Decisions",
        "## Risks watchlist",
        "## Sessions and agents",
        "## Operational notes",
    ] {
        assert!(md.contains(section), "{section} missing:\n{md}");
    }
    assert!(md.contains("- **lc-a name**: 3 items done."), "{md}");
    assert!(
        md.contains("⚠ autonomy alert: **lc-a name** (architectural, high impact, inferred) — adopt \\[the\\] new schema by claude (agent)."),
        "{md}"
    );
    assert!(
        md.contains("- critical escalation — **lc-a name**: deploy failing."),
        "{md}"
    );
    assert!(md.contains("- Failed: s-1 (?): error: linker."), "{md}");
    // Every footnote cited is listed with its event.
    for (i, s) in b.sources.iter().enumerate() {
        let line = format!("[^{}]: {} `{}`", i + 1, s.kind, s.id.as_deref().unwrap());
        assert!(md.contains(&line), "{line} missing:\n{md}");
    }
    assert!(b.sources.len() >= 6, "{md}");
    assert_eq!(brief(&m, "PM briefing", NOW - 12 * HOUR, NOW, NOW), b);
}

#[test]
fn the_demo_feed_gives_every_view_something_to_show() {
    use crate::demo::{Demo, DemoConfig};
    use crate::registry::Registry;
    use crate::store::{EventStore, StoreConfig};
    let mut demo = Demo::new(DemoConfig::default(), &Registry::example());
    let mut store = EventStore::new(StoreConfig::default());
    // Five minutes of demo at 10 events a second.
    let t0 = NOW;
    for i in 0..3_000 {
        store.insert(&demo.next_message(t0 + i * 100_000));
    }
    let now = t0 + 3_000 * 100_000;
    let mut m = Mission::new();
    for seq in store.first_seq()..store.end_seq() {
        if let Some(e) = store.get(seq) {
            m.ingest_event(&e);
        }
    }
    assert_eq!(m.unreadable, 0);
    let cards = portfolio(&m, now);
    let names: Vec<&str> = cards.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(cards.len(), 5, "{names:?}");
    let health = |name: &str| cards.iter().find(|c| c.name == name).unwrap().health;
    assert_eq!(health("Delta infra"), Health::Blocked);
    assert_eq!(health("Ember mobile"), Health::Stalled, "{cards:#?}");
    assert_eq!(
        health("Atlas API"),
        Health::AtRisk,
        "its gate went past the SLA"
    );
    assert_eq!(cards[0].name, "Atlas API", "the top mover first: {names:?}");
    assert!(cards.iter().any(|c| c.momentum() < 0), "one slows down");
    let d = ranked_decisions(&m, now - 48 * HOUR, now, now);
    assert!(d.iter().any(|d| d.autonomy_alert));
    let impacts: std::collections::BTreeSet<_> = d.iter().map(|d| d.decision.impact).collect();
    assert_eq!(impacts.len(), 4, "decisions of every size");
    let r = risks(&m, now);
    assert!(
        r.items
            .iter()
            .any(|i| i.kind == RiskKind::Gate && i.overdue)
    );
    assert!(
        r.items
            .iter()
            .any(|i| i.kind == RiskKind::Escalation && i.severity == "critical")
    );
    assert!(r.items.iter().any(|i| i.kind == RiskKind::Approval));
    let plans = drift(&m);
    assert_eq!(plans[0].name, "Beacon web");
    assert_eq!(plans[0].worst_drift, "significant");
}

#[test]
fn the_filter_picks_what_mission_control_reads() {
    let f = crate::filter::Filter::new(FILTER).expect("the filter parses");
    let mut store = crate::store::EventStore::new(crate::store::StoreConfig::default());
    let kinds = [
        ("bloodbank.v1.lifecycle.mission.created", true),
        ("portfolio.escalation.raised", true),
        ("bloodbank.v1.repo.decision.recorded", true),
        ("acme.api.issue.autonomous_review.decided", true),
        ("jelmore.session.completed", true),
        ("repo.push", false),
        ("agent.tool.invoked", false),
        ("bloodbank.v1.agent.invocation.started", false),
    ];
    for (kind, _) in kinds {
        store.insert(&crate::event::RawMessage {
            routing_key: kind.into(),
            body: format!(r#"{{"event_type":"{kind}","payload":{{}}}}"#).into_bytes(),
            ..crate::event::RawMessage::default()
        });
    }
    let mut view = crate::filter::FilteredView::new(f);
    view.update(&store, NOW, u64::MAX);
    let picked: Vec<String> = (0..view.len())
        .filter_map(|i| store.get(view.get(i)?))
        .map(|e| e.kind)
        .collect();
    let wanted: Vec<&str> = kinds.iter().filter(|(_, w)| *w).map(|(k, _)| *k).collect();
    assert_eq!(picked, wanted);
    for (kind, w) in kinds {
        assert_eq!(wants(kind), w, "{kind}");
        // What a journal read screens blocks with: every wanted type names a mark.
        if w {
            assert!(
                MARKS.iter().any(|m| kind.contains(m)),
                "{kind} names no mark"
            );
        }
    }
    // Every type of the demo's that Mission Control takes names one too.
    let mut demo = crate::demo::Demo::new(
        crate::demo::DemoConfig::default(),
        &crate::registry::Registry::example(),
    );
    let mut taken = 0;
    for i in 0..100_000 {
        let m = demo.next_message(NOW + i * 10_000);
        let kind = crate::decode::decode(&m).kind;
        if wants(&kind) {
            taken += 1;
            assert!(
                MARKS.iter().any(|k| kind.contains(k)),
                "{kind} names no mark"
            );
        }
    }
    assert!(
        taken > 50,
        "the demo gave only {taken} of Mission Control's events"
    );
}
