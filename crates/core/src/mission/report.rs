//! Mission Control's answers as documents: Markdown for people, JSON and CSV for tools — what
//! `candybar mission …` prints and the Mission view exports (the PDF is drawn from the Markdown).

use std::fmt::Write as _;

use super::{Mission, RiskKind};
use crate::time::{Micros, format_rfc3339, format_span};

/// What a report is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    Portfolio,
    Decisions,
    Drift,
    Risks,
    Brief,
}

impl Report {
    pub const ALL: [Self; 5] = [
        Self::Portfolio,
        Self::Decisions,
        Self::Drift,
        Self::Risks,
        Self::Brief,
    ];

    /// Its name in file names and on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Portfolio => "portfolio",
            Self::Decisions => "decisions",
            Self::Drift => "drift",
            Self::Risks => "risks",
            Self::Brief => "briefing",
        }
    }
}

/// A text format of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Markdown,
    Json,
    Csv,
}

impl ReportFormat {
    #[must_use]
    pub fn extension(self) -> &'static str {
        match self {
            Self::Markdown => "md",
            Self::Json => "json",
            Self::Csv => "csv",
        }
    }
}

/// `report` of `m` over `[since_us, until_us]`, as of `until_us`, in `format`; `brief_title`
/// heads a briefing. `Err`: the report has no such format (a briefing is no table).
///
/// # Errors
/// A briefing asked for as CSV, or a CSV that could not be written.
pub fn render(
    m: &Mission,
    report: Report,
    since_us: Micros,
    until_us: Micros,
    brief_title: &str,
    format: ReportFormat,
) -> Result<String, String> {
    let json =
        |v: Result<String, serde_json::Error>| v.map(|s| s + "\n").map_err(|e| e.to_string());
    match report {
        Report::Portfolio => portfolio(m, until_us, format),
        Report::Decisions => decisions(m, since_us, until_us, format),
        Report::Drift => drift(m, format),
        Report::Risks => risks(m, until_us, format),
        Report::Brief => {
            let b = super::brief(m, brief_title, since_us, until_us, until_us);
            match format {
                ReportFormat::Json => json(serde_json::to_string_pretty(&b)),
                ReportFormat::Markdown => Ok(b.markdown),
                ReportFormat::Csv => Err("a briefing is Markdown or JSON, not CSV".into()),
            }
        }
    }
}

/// A table cell: one line, pipes escaped.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn csv_of(header: &[&str], rows: &[Vec<String>]) -> Result<String, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let e = |e: csv::Error| e.to_string();
    w.write_record(header).map_err(e)?;
    for r in rows {
        w.write_record(r).map_err(e)?;
    }
    let bytes = w.into_inner().map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

fn portfolio(m: &Mission, now: Micros, format: ReportFormat) -> Result<String, String> {
    let cards = super::portfolio(m, now);
    Ok(match format {
        ReportFormat::Json => to_json(&cards)?,
        ReportFormat::Csv => csv_of(
            &[
                "project",
                "key",
                "repo",
                "status",
                "health",
                "why",
                "progress_percent",
                "open_blockers",
                "active_agent_runs",
                "done_24h",
                "done_prev_24h",
                "momentum",
                "last_progress",
            ],
            &cards
                .iter()
                .map(|c| {
                    vec![
                        c.name.clone(),
                        c.key.clone(),
                        opt(c.repo.as_ref()),
                        c.status.clone(),
                        c.health.as_str().into(),
                        c.health_reason.clone(),
                        opt(c.progress),
                        c.open_blockers.to_string(),
                        opt(c.active_runs),
                        c.done_24h.to_string(),
                        c.done_prev_24h.to_string(),
                        c.momentum().to_string(),
                        opt(c.last_progress_us.map(format_rfc3339)),
                    ]
                })
                .collect::<Vec<_>>(),
        )?,
        ReportFormat::Markdown => {
            let mut s = String::from(
                "# Portfolio\n\n| project | status | health | why | progress | blockers | runs | done 24 h (day before) | trend |\n|---|---|---|---|---|---|---|---|---|\n",
            );
            for c in &cards {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} ({}) | {} |",
                    cell(&c.name),
                    cell(&c.status),
                    c.health.as_str(),
                    cell(&c.health_reason),
                    c.progress
                        .map_or_else(|| "–".into(), |p| format!("{p:.0} %")),
                    c.open_blockers,
                    opt(c.active_runs),
                    c.done_24h,
                    c.done_prev_24h,
                    sparkline(&c.sparkline)
                );
            }
            s
        }
    })
}

/// `▁▂▅█` from counts.
#[must_use]
pub fn sparkline(values: &[u32]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    values
        .iter()
        .map(|&v| {
            BARS[(v as usize * (BARS.len() - 1))
                .div_ceil(max as usize)
                .min(7)]
        })
        .collect()
}

fn decisions(
    m: &Mission,
    since: Micros,
    until: Micros,
    format: ReportFormat,
) -> Result<String, String> {
    let ranked = super::ranked_decisions(m, since, until, until);
    Ok(match format {
        ReportFormat::Json => to_json(&ranked)?,
        ReportFormat::Csv => csv_of(
            &[
                "time",
                "project",
                "rank",
                "impact",
                "impact_inferred",
                "category",
                "decided_by",
                "by_agent",
                "autonomy_alert",
                "reversible",
                "source",
                "decision",
                "event_id",
            ],
            &ranked
                .iter()
                .map(|r| {
                    let d = &r.decision;
                    vec![
                        format_rfc3339(d.at.time_us),
                        r.project_name.clone(),
                        format!("{:.3}", r.rank),
                        d.impact.as_str().into(),
                        d.impact_inferred.clone().unwrap_or_default(),
                        d.category.clone(),
                        opt(d.decided_by.as_ref()),
                        d.by_agent.to_string(),
                        r.autonomy_alert.to_string(),
                        opt(d.reversible),
                        d.source.clone(),
                        d.text.clone(),
                        opt(d.at.id.as_ref()),
                    ]
                })
                .collect::<Vec<_>>(),
        )?,
        ReportFormat::Markdown => {
            let mut s = format!(
                "# Decision radar\n\n{} → {} · rank = impact (low 1, medium 2, high 4, critical 8) \
                 × category (architectural 1.5, product 1.3, technical 1.2, process 1.0, \
                 operational 0.8) × 0.5^(age in days)\n\n",
                format_rfc3339(since),
                format_rfc3339(until)
            );
            if ranked.is_empty() {
                s.push_str("No decisions in this range.\n");
            }
            for (i, r) in ranked.iter().enumerate() {
                let d = &r.decision;
                let _ = writeln!(
                    s,
                    "{}. {}**{}** — {} · {} impact{} · {} · rank {:.2} · {}{} · {} ago",
                    i + 1,
                    if r.autonomy_alert {
                        "⚠ autonomy alert: "
                    } else {
                        ""
                    },
                    cell(&r.project_name),
                    cell(&d.text),
                    d.impact.as_str(),
                    d.impact_inferred
                        .as_ref()
                        .map(|w| format!(" ({w})"))
                        .unwrap_or_default(),
                    d.category,
                    r.rank,
                    d.decided_by.as_deref().unwrap_or("unknown"),
                    if d.by_agent { " (agent)" } else { "" },
                    format_span(until - d.at.time_us)
                );
            }
            s
        }
    })
}

fn drift(m: &Mission, format: ReportFormat) -> Result<String, String> {
    let plans = super::drift(m);
    Ok(match format {
        ReportFormat::Json => to_json(&plans)?,
        ReportFormat::Csv => {
            let mut rows = Vec::new();
            for p in &plans {
                for (v, phases, reason, at) in &p.versions {
                    rows.push(vec![
                        p.name.clone(),
                        "roadmap".into(),
                        format_rfc3339(*at),
                        format!("v{v} ({phases} phases)"),
                        opt(reason.as_ref()),
                    ]);
                }
                for (name, kind, at) in &p.checkpoints {
                    rows.push(vec![
                        p.name.clone(),
                        "checkpoint".into(),
                        format_rfc3339(*at),
                        name.clone(),
                        kind.clone(),
                    ]);
                }
                for (issue, drift, reasons, at) in &p.reviews {
                    rows.push(vec![
                        p.name.clone(),
                        "review".into(),
                        format_rfc3339(*at),
                        format!("{issue}: {drift}"),
                        reasons.join("; "),
                    ]);
                }
            }
            csv_of(&["project", "what", "time", "detail", "reason"], &rows)?
        }
        ReportFormat::Markdown => {
            let mut s = String::from("# Plans & drift\n");
            for p in &plans {
                let _ = writeln!(
                    s,
                    "\n## {} — drift {}, {} scope change{}\n",
                    p.name,
                    p.worst_drift,
                    p.scope_changes,
                    if p.scope_changes == 1 { "" } else { "s" }
                );
                for d in &p.diffs {
                    let _ = writeln!(
                        s,
                        "- roadmap v{} → v{} ({}): {}",
                        d.from,
                        d.to,
                        d.change_reason.as_deref().unwrap_or("no reason given"),
                        d.words("→")
                    );
                }
                for (name, kind, at) in &p.checkpoints {
                    let _ = writeln!(s, "- checkpoint {name} ({kind}) at {}", format_rfc3339(*at));
                }
                for (issue, drift, reasons, _) in &p.reviews {
                    let _ = writeln!(
                        s,
                        "- review {issue}: drift {drift} — {}",
                        reasons.join("; ")
                    );
                }
                if let (Some(first), Some(last)) = (p.actual.first(), p.actual.last()) {
                    let _ = writeln!(s, "- progress {:.0} % → {:.0} %", first.1, last.1);
                }
            }
            s
        }
    })
}

fn risks(m: &Mission, now: Micros, format: ReportFormat) -> Result<String, String> {
    let r = super::risks(m, now);
    let due = |i: &super::RiskItem| match i.due_us {
        Some(d) if i.overdue => format!("overdue by {}", format_span(now - d)),
        Some(d) => format!("due in {}", format_span(d - now)),
        None => String::new(),
    };
    let kind = |k: RiskKind| match k {
        RiskKind::Escalation => "escalation",
        RiskKind::Gate => "gate",
        RiskKind::Approval => "approval",
        RiskKind::Blocker => "blocker",
        RiskKind::Stalled => "stalled",
        RiskKind::Service => "service",
    };
    Ok(match format {
        ReportFormat::Json => to_json(&r)?,
        ReportFormat::Csv => csv_of(
            &[
                "kind", "project", "severity", "title", "detail", "owner", "due", "overdue",
                "since", "options", "event_id",
            ],
            &r.items
                .iter()
                .map(|i| {
                    vec![
                        kind(i.kind).into(),
                        i.project_name.clone(),
                        i.severity.clone(),
                        i.title.clone(),
                        i.detail.clone(),
                        opt(i.owner.as_ref()),
                        opt(i.due_us.map(format_rfc3339)),
                        i.overdue.to_string(),
                        opt(i.since_us.map(format_rfc3339)),
                        i.options.join("|"),
                        opt(i.at.as_ref().and_then(|a| a.id.as_ref())),
                    ]
                })
                .collect::<Vec<_>>(),
        )?,
        ReportFormat::Markdown => {
            let mut s = String::from("# Risks & blockers\n\n");
            if r.items.is_empty() {
                s.push_str("Nothing open.\n");
            }
            for i in &r.items {
                let when = due(i);
                let _ = writeln!(
                    s,
                    "- **{}** {} — {}: {}{}{}{}",
                    kind(i.kind),
                    i.severity,
                    cell(&i.project_name),
                    cell(&i.title),
                    if i.detail.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", cell(&i.detail))
                    },
                    i.owner
                        .as_ref()
                        .map(|o| format!(" · owner {o}"))
                        .unwrap_or_default(),
                    if when.is_empty() {
                        String::new()
                    } else {
                        format!(" · {when}")
                    }
                );
                if !i.options.is_empty() {
                    let _ = writeln!(s, "  - options: {}", i.options.join(" / "));
                }
            }
            if !r.blockers_by_kind.is_empty() {
                s.push_str("\n## Blockers by kind\n\n");
                for (k, n) in &r.blockers_by_kind {
                    let _ = writeln!(s, "- {k}: {n}");
                }
                s.push_str("\n## Blockers by owner\n\n");
                for (k, n) in &r.blockers_by_owner {
                    let _ = writeln!(s, "- {k}: {n}");
                }
            }
            s
        }
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, String> {
    serde_json::to_string_pretty(v)
        .map(|s| s + "\n")
        .map_err(|e| e.to_string())
}
