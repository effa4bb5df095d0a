//! The AM/PM briefing: a Markdown document over a time range — overview, needle-movers,
//! decisions, risks watchlist, sessions and agents, operational notes — every statement ending
//! in footnotes that name the events it came from. Deterministic: the same events and range give
//! the same text.

use std::fmt::Write as _;

use serde::Serialize;

use super::rules::{self, Health, RiskKind};
use super::{EvRef, Mission};
use crate::time::{Micros, format_rfc3339, format_span};

/// Most items per section.
const TOP: usize = 8;

/// A briefing: its Markdown and the events its footnotes name.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Briefing {
    pub title: String,
    pub since_us: Micros,
    pub until_us: Micros,
    pub markdown: String,
    /// The events behind it, by footnote number (1-based).
    pub sources: Vec<EvRef>,
}

/// Footnotes: each source once, numbered in the order first cited.
#[derive(Default)]
struct Notes {
    sources: Vec<EvRef>,
}

impl Notes {
    /// ` [^3][^4]` for `refs` (at most 3 cited per statement).
    fn cite<'a>(&mut self, refs: impl IntoIterator<Item = &'a EvRef>) -> String {
        let mut out = String::new();
        for r in refs.into_iter().take(3) {
            let n = if let Some(i) = self.sources.iter().position(|s| s == r) {
                i + 1
            } else {
                self.sources.push(r.clone());
                self.sources.len()
            };
            let _ = write!(out, "[^{n}]");
        }
        if out.is_empty() {
            out
        } else {
            format!(" {out}")
        }
    }
}

/// Markdown-safe text on one line.
fn inline(s: &str) -> String {
    let one: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    one.replace('[', "\\[").replace(']', "\\]")
}

/// The briefing of `[since_us, until_us]` as seen at `now_us` (`title`: "AM briefing", …).
#[must_use]
pub fn brief(
    m: &Mission,
    title: &str,
    since_us: Micros,
    until_us: Micros,
    now_us: Micros,
) -> Briefing {
    let mut w = Writer {
        md: String::new(),
        notes: Notes::default(),
        since_us,
        until_us,
        now_us,
    };
    let _ = writeln!(w.md, "# {title}\n");
    let _ = writeln!(
        w.md,
        "{} → {} ({})\n",
        format_rfc3339(since_us),
        format_rfc3339(until_us),
        format_span(until_us - since_us)
    );
    let cards = rules::portfolio(m, now_us);
    let decisions = rules::ranked_decisions(m, since_us, until_us, now_us);
    let risks = rules::risks(m, now_us);
    w.overview(&cards, &decisions, &risks);
    w.movers(m);
    w.decisions(&decisions);
    w.risks(&risks);
    w.sessions(m);
    w.operations(m);
    w.sources();
    Briefing {
        title: title.to_owned(),
        since_us,
        until_us,
        markdown: w.md,
        sources: w.notes.sources,
    }
}

/// The briefing being written, section by section.
struct Writer {
    md: String,
    notes: Notes,
    since_us: Micros,
    until_us: Micros,
    now_us: Micros,
}

impl Writer {
    fn in_range(&self, t: Micros) -> bool {
        (self.since_us..=self.until_us).contains(&t)
    }

    fn overview(
        &mut self,
        cards: &[rules::PortfolioCard],
        decisions: &[rules::RankedDecision],
        risks: &rules::Risks,
    ) {
        // Overview.
        let _ = writeln!(self.md, "## Overview\n");
        let mut by_health: Vec<(Health, usize)> = Vec::new();
        for c in cards {
            match by_health.iter_mut().find(|(h, _)| *h == c.health) {
                Some((_, n)) => *n += 1,
                None => by_health.push((c.health, 1)),
            }
        }
        by_health.sort_by_key(|(h, _)| std::cmp::Reverse(h.severity()));
        let health_words: Vec<String> = by_health
            .iter()
            .map(|(h, n)| format!("{n} {}", h.as_str().replace('_', " ")))
            .collect();
        let _ = writeln!(
            self.md,
            "- {} project{}{}.",
            cards.len(),
            if cards.len() == 1 { "" } else { "s" },
            if health_words.is_empty() {
                String::new()
            } else {
                format!(": {}", health_words.join(", "))
            }
        );
        let _ = writeln!(
            self.md,
            "- {} decision{} recorded, {} open risk{}.\n",
            decisions.len(),
            if decisions.len() == 1 { "" } else { "s" },
            risks.items.len(),
            if risks.items.len() == 1 { "" } else { "s" }
        );
    }

    /// Needle-movers: work done in the range, and progress made.
    fn movers(&mut self, m: &Mission) {
        // Needle-movers: work done in the range, and progress made.
        let _ = writeln!(self.md, "## Needle-movers\n");
        let mut movers: Vec<(usize, f64, &super::Project)> = m
            .projects
            .values()
            .map(|p| {
                let done = p.work.iter().filter(|w| self.in_range(w.time_us)).count();
                let points: Vec<f64> = p
                    .progress_points
                    .iter()
                    .filter(|(t, _)| self.in_range(*t))
                    .map(|(_, v)| *v)
                    .collect();
                let gained = match (points.first(), points.last()) {
                    (Some(a), Some(b)) => b - a,
                    _ => 0.0,
                };
                (done, gained, p)
            })
            .filter(|(done, gained, _)| *done > 0 || *gained > 0.0)
            .collect();
        movers.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then(b.1.total_cmp(&a.1))
                .then(a.2.name.cmp(&b.2.name))
        });
        if movers.is_empty() {
            let _ = writeln!(self.md, "- Nothing moved in this range.");
        }
        for (done, gained, p) in movers.iter().take(TOP) {
            let refs: Vec<&EvRef> = p
                .work
                .iter()
                .rev()
                .filter(|r| self.in_range(r.time_us))
                .collect();
            let progress = match p.progress {
                Some(now) if *gained > 0.0 => format!(", {:.0} % → {now:.0} %", now - gained),
                Some(now) => format!(", at {now:.0} %"),
                None => String::new(),
            };
            let _ = writeln!(
                self.md,
                "- **{}**: {done} item{} done{progress}.{}",
                inline(&p.name),
                if *done == 1 { "" } else { "s" },
                self.notes.cite(refs)
            );
        }
        self.md.push('\n');
    }

    fn decisions(&mut self, decisions: &[rules::RankedDecision]) {
        // Decisions.
        let _ = writeln!(self.md, "## Decisions\n");
        if decisions.is_empty() {
            let _ = writeln!(self.md, "- No decisions recorded.");
        }
        for d in decisions.iter().take(TOP) {
            let who = match (&d.decision.decided_by, d.decision.by_agent) {
                (Some(by), true) => format!(" by {} (agent)", inline(by)),
                (Some(by), false) => format!(" by {}", inline(by)),
                (None, _) => String::new(),
            };
            let alert = if d.autonomy_alert {
                "⚠ autonomy alert: "
            } else {
                ""
            };
            let _ = writeln!(
                self.md,
                "- {alert}**{}** ({}, {} impact{}) — {}{who}.{}",
                inline(&d.project_name),
                d.decision.category,
                d.decision.impact.as_str(),
                if d.decision.impact_inferred.is_some() {
                    ", inferred"
                } else {
                    ""
                },
                inline(&d.decision.text),
                self.notes.cite([&d.decision.at])
            );
        }
        self.md.push('\n');
    }

    fn risks(&mut self, risks: &rules::Risks) {
        // Risks watchlist.
        let _ = writeln!(self.md, "## Risks watchlist\n");
        if risks.items.is_empty() {
            let _ = writeln!(self.md, "- Nothing open.");
        }
        for r in risks.items.iter().take(TOP) {
            let due = match r.due_us {
                Some(d) if r.overdue => {
                    format!(", **overdue by {}**", format_span(self.now_us - d))
                }
                Some(d) => format!(", due in {}", format_span(d - self.now_us)),
                None => String::new(),
            };
            let kind = match r.kind {
                RiskKind::Escalation => format!("{} escalation", r.severity),
                RiskKind::Gate => "gate".into(),
                RiskKind::Approval => "approval waiting".into(),
                RiskKind::Blocker => format!("blocker ({})", r.severity),
                RiskKind::Stalled => "stalled".into(),
                RiskKind::Service => "failing service".into(),
            };
            let _ = writeln!(
                self.md,
                "- {kind} — **{}**: {}{due}.{}",
                inline(&r.project_name),
                inline(&r.title),
                self.notes.cite(r.at.iter())
            );
        }
        self.md.push('\n');
    }

    fn sessions(&mut self, m: &Mission) {
        // Sessions and agents.
        let _ = writeln!(self.md, "## Sessions and agents\n");
        let sessions_in: Vec<&super::SessionNote> = m
            .sessions
            .iter()
            .filter(|s| self.in_range(s.at.time_us))
            .collect();
        let started = sessions_in.iter().filter(|s| s.success.is_none()).count();
        let ended: Vec<&&super::SessionNote> =
            sessions_in.iter().filter(|s| s.success.is_some()).collect();
        let failed: Vec<&&super::SessionNote> = ended
            .iter()
            .filter(|s| s.success == Some(false))
            .copied()
            .collect();
        let active: u64 = m.projects.values().filter_map(|p| p.active_runs).sum();
        let _ = writeln!(
            self.md,
            "- {started} session{} started, {} ended ({} failed); {active} agent run{} active now.{}",
            if started == 1 { "" } else { "s" },
            ended.len(),
            failed.len(),
            if active == 1 { "" } else { "s" },
            self.notes.cite(sessions_in.iter().rev().map(|s| &s.at))
        );
        for s in failed.iter().take(TOP) {
            let _ = writeln!(
                self.md,
                "- Failed: {} ({}){}.{}",
                inline(&s.session_id),
                s.provider.as_deref().unwrap_or("?"),
                s.summary
                    .as_deref()
                    .and_then(|t| t.lines().last())
                    .map(|l| format!(": {}", inline(l)))
                    .unwrap_or_default(),
                self.notes.cite([&s.at])
            );
        }
        self.md.push('\n');
    }

    fn operations(&mut self, m: &Mission) {
        // Operational notes.
        let _ = writeln!(self.md, "## Operational notes\n");
        let resolved: Vec<&super::Escalation> = m
            .escalations
            .values()
            .filter(|x| {
                x.resolved
                    .as_ref()
                    .is_some_and(|r| self.in_range(r.2.time_us))
            })
            .collect();
        let gates_done: Vec<&super::Gate> = m
            .gates
            .values()
            .filter(|g| {
                g.resolved
                    .as_ref()
                    .is_some_and(|r| self.in_range(r.2.time_us))
            })
            .collect();
        let _ = writeln!(
            self.md,
            "- {} escalation{} resolved, {} gate{} resolved.{}",
            resolved.len(),
            if resolved.len() == 1 { "" } else { "s" },
            gates_done.len(),
            if gates_done.len() == 1 { "" } else { "s" },
            self.notes.cite(
                resolved
                    .iter()
                    .filter_map(|x| x.resolved.as_ref().map(|r| &r.2))
                    .chain(
                        gates_done
                            .iter()
                            .filter_map(|g| g.resolved.as_ref().map(|r| &r.2))
                    )
            )
        );
        let reports: Vec<&super::ReportNote> = m
            .reports
            .iter()
            .filter(|r| self.in_range(r.at.time_us))
            .collect();
        if let Some(failed) = reports.iter().find(|r| r.state == "failed") {
            let _ = writeln!(
                self.md,
                "- A report run failed ({}).{}",
                inline(&failed.run_id),
                self.notes.cite([&failed.at])
            );
        }
        if m.unreadable > 0 {
            let _ = writeln!(
                self.md,
                "- {} event{} could not be read (not JSON).",
                m.unreadable,
                if m.unreadable == 1 { "" } else { "s" }
            );
        }
        self.md.push('\n');
    }

    /// The footnotes: each source event with its type, id and time.
    fn sources(&mut self) {
        if self.notes.sources.is_empty() {
            return;
        }
        let _ = writeln!(self.md, "---\n");
        for (i, s) in self.notes.sources.iter().enumerate() {
            let _ = writeln!(
                self.md,
                "[^{}]: {} `{}` at {}",
                i + 1,
                s.kind,
                s.id.as_deref().unwrap_or("(no id)"),
                format_rfc3339(s.time_us)
            );
        }
    }
}
