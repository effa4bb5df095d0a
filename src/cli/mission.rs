//! `candybar mission portfolio|decisions|drift|risks|brief`: Mission Control's answers from the
//! journal, for scripts and tests — the same rules as the window's Mission view.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use candybar_core::mission::{self, Mission, RiskKind};
use candybar_core::time::{Micros, format_rfc3339, format_span, now_us};

use super::SourceArgs;
use super::journal::{journal_dir, parse_when};

#[derive(Subcommand, Debug)]
pub enum MissionCommand {
    /// One card per project: status, health and why, progress, open blockers, agent runs,
    /// momentum (work in the last 24 h against the 24 h before) — top movers first.
    Portfolio(MissionArgs),
    /// Decisions in the range, ranked by impact × category × recency (0.5 per day of age), who
    /// made them and an autonomy alert for agents' high-impact ones in the last 24 h.
    Decisions(MissionArgs),
    /// Roadmap versions and what changed between them, scope changes, checkpoints, progress,
    /// and the drift autonomous reviews found.
    Drift(MissionArgs),
    /// What is open: escalations, gates (overdue first, with their SLA), approvals waiting for a
    /// person, blockers by kind and owner, stalled projects.
    Risks(MissionArgs),
    /// The AM/PM briefing over the range, in Markdown, each statement with the events it came
    /// from.
    Brief(MissionArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq, Default)]
pub enum MissionFormat {
    /// Markdown (tables and lists), for people.
    #[default]
    Md,
    Json,
    Csv,
}

#[derive(Args, Debug)]
pub struct MissionArgs {
    /// The journal's directory [default: journal in the data dir; env: `CANDYBAR_JOURNAL`]
    #[arg(long, value_name = "DIR")]
    journal: Option<PathBuf>,
    /// The range starts this long ago (12h, 7d) or at this moment (RFC 3339) [default: 12h]
    #[arg(long, value_name = "WHEN", default_value = "12h")]
    since: String,
    /// The range ends (and the answers are as of) this long ago or this moment [default: now]
    #[arg(long, value_name = "WHEN")]
    until: Option<String>,
    #[arg(long, value_enum, default_value_t = MissionFormat::Md)]
    format: MissionFormat,
}

pub fn run(cmd: &MissionCommand, source: &SourceArgs) -> anyhow::Result<ExitCode> {
    let settings = source.settings()?;
    let args = match cmd {
        MissionCommand::Portfolio(a)
        | MissionCommand::Decisions(a)
        | MissionCommand::Drift(a)
        | MissionCommand::Risks(a)
        | MissionCommand::Brief(a) => a,
    };
    let now = now_us();
    let until = match args.until.as_deref().map(|u| parse_when(u, now, "--until")) {
        None => now,
        Some(Ok(t)) => t,
        Some(Err(e)) => return Ok(bad(&e)),
    };
    let since = match parse_when(&args.since, until, "--since") {
        Ok(t) if t <= until => t,
        Ok(_) => return Ok(bad("--since is after --until")),
        Err(e) => return Ok(bad(&e)),
    };
    let dir = journal_dir(args.journal.as_deref(), &settings)?;
    let loaded = match crate::mission::load(&dir, until, &mut |_, _| {}) {
        Ok(l) => l,
        Err(e) => return Ok(bad(&e)),
    };
    eprintln!(
        "candybar: {} Mission Control events from {} blocks of {} ({} ruled out by their index) \
         in {} ms",
        loaded.events,
        loaded.blocks_read,
        dir.display(),
        loaded.blocks_skipped,
        loaded.took.as_millis()
    );
    let m = &loaded.mission;
    let out = match cmd {
        MissionCommand::Portfolio(_) => portfolio(m, until, args.format)?,
        MissionCommand::Decisions(_) => decisions(m, since, until, args.format)?,
        MissionCommand::Drift(_) => drift(m, args.format)?,
        MissionCommand::Risks(_) => risks(m, until, args.format)?,
        MissionCommand::Brief(_) => {
            let b = mission::brief(m, &brief_title(until), since, until, until);
            match args.format {
                MissionFormat::Json => serde_json::to_string_pretty(&b)? + "\n",
                MissionFormat::Md => b.markdown,
                MissionFormat::Csv => return Ok(bad("a briefing is Markdown or JSON, not CSV")),
            }
        }
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn bad(e: &str) -> ExitCode {
    eprintln!("candybar: {e}");
    ExitCode::from(2)
}

/// "AM briefing" before local noon, else "PM briefing", with the day.
#[must_use]
pub fn brief_title(at_us: Micros) -> String {
    use chrono::{Local, TimeZone as _, Timelike as _};
    match Local.timestamp_micros(at_us).single() {
        Some(t) => format!(
            "{} briefing — {}",
            if t.hour() < 12 { "AM" } else { "PM" },
            t.format("%a %d %b %Y")
        ),
        None => "Briefing".into(),
    }
}

/// A table cell: one line, pipes escaped.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn csv_of(header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header)?;
    for r in rows {
        w.write_record(r)?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

fn portfolio(m: &Mission, now: Micros, format: MissionFormat) -> anyhow::Result<String> {
    let cards = mission::portfolio(m, now);
    Ok(match format {
        MissionFormat::Json => serde_json::to_string_pretty(&cards)? + "\n",
        MissionFormat::Csv => csv_of(
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
        MissionFormat::Md => {
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
    format: MissionFormat,
) -> anyhow::Result<String> {
    let ranked = mission::ranked_decisions(m, since, until, until);
    Ok(match format {
        MissionFormat::Json => serde_json::to_string_pretty(&ranked)? + "\n",
        MissionFormat::Csv => csv_of(
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
                        d.source.into(),
                        d.text.clone(),
                        opt(d.at.id.as_ref()),
                    ]
                })
                .collect::<Vec<_>>(),
        )?,
        MissionFormat::Md => {
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

fn drift(m: &Mission, format: MissionFormat) -> anyhow::Result<String> {
    let plans = mission::drift(m);
    Ok(match format {
        MissionFormat::Json => serde_json::to_string_pretty(&plans)? + "\n",
        MissionFormat::Csv => {
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
        MissionFormat::Md => {
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
                    let mut what = Vec::new();
                    if !d.added.is_empty() {
                        what.push(format!("added {}", d.added.join(", ")));
                    }
                    if !d.removed.is_empty() {
                        what.push(format!("removed {}", d.removed.join(", ")));
                    }
                    for (a, b) in &d.renamed {
                        what.push(format!("renamed {a} → {b}"));
                    }
                    if what.is_empty() {
                        what.push("no phase changed".into());
                    }
                    let _ = writeln!(
                        s,
                        "- roadmap v{} → v{} ({}): {}",
                        d.from,
                        d.to,
                        d.change_reason.as_deref().unwrap_or("no reason given"),
                        what.join("; ")
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

fn risks(m: &Mission, now: Micros, format: MissionFormat) -> anyhow::Result<String> {
    let r = mission::risks(m, now);
    let due = |i: &mission::RiskItem| match i.due_us {
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
    };
    Ok(match format {
        MissionFormat::Json => serde_json::to_string_pretty(&r)? + "\n",
        MissionFormat::Csv => csv_of(
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
        MissionFormat::Md => {
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
