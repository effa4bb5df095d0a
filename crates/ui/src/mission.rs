//! Mission Control: the platform's projects, decisions, plans, risks and briefings, computed from
//! its events by [`candybar_core::mission`] (the app keeps the model; this view draws what it
//! derived). Five tabs: Portfolio (a card per project, top movers first; a click shows its events
//! in the Stream), Decisions (the ranked radar), Plans & drift, Risks, Briefing.

use std::fmt::Write as _;

use candybar_core::mission::report::Report;
use candybar_core::mission::{
    Briefing, Health, ImpactLevel, PlanDrift, PortfolioCard, RankedDecision, RiskItem, RiskKind,
    Risks,
};
use candybar_core::time::{Micros, format_span};
use egui::{Color32, RichText, Sense, Stroke, pos2, vec2};
use egui_extras::{Column, TableBuilder};

use crate::context::ViewCx;
use crate::theme::Theme;
use crate::{Command, View};

/// A table row's height.
const ROW: f32 = 18.0;
/// A portfolio card's width (its contents').
const CARD_WIDTH: f32 = 320.0;

/// What the app gives the view each frame.
#[derive(Clone, Copy, Debug)]
pub struct MissionInfo<'a> {
    pub portfolio: &'a [PortfolioCard],
    pub decisions: &'a [RankedDecision],
    pub risks: &'a Risks,
    pub drift: &'a [PlanDrift],
    /// The briefing last generated.
    pub brief: Option<&'a Briefing>,
    /// Briefings kept: (path, title), newest first.
    pub archive: &'a [(std::path::PathBuf, String)],
    /// The journal being read: blocks done of total.
    pub loading: Option<(usize, usize)>,
    /// Where the answers come from, in words ("the journal (2 d) and 3,412 live events").
    pub source: &'a str,
    /// The moment the answers are as of.
    pub now_us: Micros,
    /// The model that rewrites briefings for reading, when one is configured.
    pub rewriter: Option<&'a str>,
    /// It is rewriting the briefing shown.
    pub rewriting: bool,
}

/// What the view asks of the app.
#[derive(Clone, Debug, PartialEq)]
pub enum MissionAction {
    /// The view is shown: start reading (the journal, the live events).
    Wake,
    /// Write the briefing of this range.
    Brief { since_us: Micros, until_us: Micros },
    /// Have the configured model rewrite the briefing shown for reading.
    Rewrite,
    /// Show a kept briefing.
    OpenArchived(std::path::PathBuf),
    /// Save this tab as a file (a save dialog asks where).
    Export { report: Report, format: DocFormat },
}

/// What a Mission tab is saved as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocFormat {
    Markdown,
    Json,
    Csv,
    Pdf,
}

impl DocFormat {
    pub const ALL: [Self; 4] = [Self::Markdown, Self::Json, Self::Csv, Self::Pdf];

    #[must_use]
    pub fn extension(self) -> &'static str {
        match self {
            Self::Markdown => "md",
            Self::Json => "json",
            Self::Csv => "csv",
            Self::Pdf => "pdf",
        }
    }

    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Markdown => "Markdown",
            Self::Json => "JSON",
            Self::Csv => "CSV",
            Self::Pdf => "PDF",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MissionTab {
    #[default]
    Portfolio,
    Decisions,
    Drift,
    Risks,
    Briefing,
}

impl MissionTab {
    const ALL: [Self; 5] = [
        Self::Portfolio,
        Self::Decisions,
        Self::Drift,
        Self::Risks,
        Self::Briefing,
    ];

    /// The report a tab saves as.
    pub fn report(self) -> Report {
        match self {
            Self::Portfolio => Report::Portfolio,
            Self::Decisions => Report::Decisions,
            Self::Drift => Report::Drift,
            Self::Risks => Report::Risks,
            Self::Briefing => Report::Brief,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Portfolio => "Portfolio",
            Self::Decisions => "Decision radar",
            Self::Drift => "Plans & drift",
            Self::Risks => "Risks & blockers",
            Self::Briefing => "Briefing",
        }
    }
}

/// What lasts between frames.
#[derive(Default)]
pub struct MissionViewState {
    pub tab: MissionTab,
    woken: bool,
    /// The briefing's range, in hours back from now.
    brief_hours: u32,
}

pub fn health_color(h: Health, theme: Theme) -> Color32 {
    match h {
        Health::Nominal => theme.good(),
        Health::AtRisk | Health::Degraded => theme.warn(),
        Health::Stalled | Health::Blocked => theme.bad(),
        Health::Unknown => theme.weak_text(),
    }
}

fn impact_color(i: ImpactLevel, theme: Theme) -> Color32 {
    match i {
        ImpactLevel::Critical => theme.bad(),
        ImpactLevel::High => theme.warn(),
        ImpactLevel::Medium => theme.accent(),
        ImpactLevel::Low => theme.weak_text(),
    }
}

impl MissionViewState {
    pub fn ui(&mut self, ui: &mut egui::Ui, cx: &mut ViewCx<'_, '_>) {
        let Some(info) = cx.data.mission else {
            if !self.woken {
                self.woken = true;
                cx.commands.push(Command::Mission(MissionAction::Wake));
            }
            ui.label("Reading the platform's lifecycle, portfolio and decision events…");
            return;
        };
        let theme = cx.theme;
        ui.horizontal(|ui| {
            for tab in MissionTab::ALL {
                let count = match tab {
                    MissionTab::Portfolio => info.portfolio.len(),
                    MissionTab::Decisions => info.decisions.len(),
                    MissionTab::Drift => info.drift.len(),
                    MissionTab::Risks => info.risks.items.len(),
                    MissionTab::Briefing => 0,
                };
                let label = if count > 0 {
                    format!("{} ({count})", tab.label())
                } else {
                    tab.label().to_owned()
                };
                ui.selectable_value(&mut self.tab, tab, label);
            }
            ui.separator();
            let tab = self.tab;
            ui.menu_button("⬇ Export", |ui| {
                for format in DocFormat::ALL {
                    // A briefing is text, not a table.
                    if format == DocFormat::Csv && tab == MissionTab::Briefing {
                        continue;
                    }
                    if ui.button(format.label()).clicked() {
                        cx.commands.push(Command::Mission(MissionAction::Export {
                            report: tab.report(),
                            format,
                        }));
                        ui.close();
                    }
                }
            })
            .response
            .on_hover_text("save this tab as Markdown, JSON, CSV or a PDF to print");
            ui.separator();
            if let Some((done, total)) = info.loading {
                ui.spinner();
                ui.label(format!("reading the journal: {done} of {total} blocks"));
            } else {
                ui.label(RichText::new(info.source).color(theme.weak_text()));
            }
        });
        ui.separator();
        match self.tab {
            MissionTab::Portfolio => portfolio_ui(ui, info, cx),
            MissionTab::Decisions => decisions_ui(ui, info, cx),
            MissionTab::Drift => drift_ui(ui, info, cx),
            MissionTab::Risks => risks_ui(ui, info, cx),
            MissionTab::Briefing => self.briefing_ui(ui, info, cx),
        }
    }

    fn briefing_ui(&mut self, ui: &mut egui::Ui, info: MissionInfo<'_>, cx: &mut ViewCx<'_, '_>) {
        if self.brief_hours == 0 {
            self.brief_hours = 12;
        }
        ui.horizontal(|ui| {
            ui.label("Over the last");
            for h in [12, 24, 72, 168] {
                let label = if h < 48 {
                    format!("{h} h")
                } else {
                    format!("{} d", h / 24)
                };
                ui.selectable_value(&mut self.brief_hours, h, label);
            }
            if ui.button("📝 Write the briefing").clicked() {
                cx.commands.push(Command::Mission(MissionAction::Brief {
                    since_us: info.now_us - i64::from(self.brief_hours) * 3_600_000_000,
                    until_us: info.now_us,
                }));
            }
            if let (Some(model), Some(_)) = (info.rewriter, info.brief) {
                if info.rewriting {
                    ui.spinner();
                    ui.label(format!("{model} is rewriting it…"));
                } else if ui
                    .button(format!("✨ Rewrite with {model}"))
                    .on_hover_text(
                        "The model set in [mission] llm_url rewrites it for reading. Every \
                         heading and source must come back, else it stays as written.",
                    )
                    .clicked()
                {
                    cx.commands.push(Command::Mission(MissionAction::Rewrite));
                }
            }
        });
        if !info.archive.is_empty() {
            ui.horizontal_wrapped(|ui| {
                ui.label(RichText::new("Kept:").color(cx.theme.weak_text()));
                for (path, title) in info.archive.iter().take(8) {
                    let name = path
                        .file_stem()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                    if ui
                        .small_button(name)
                        .on_hover_text(format!("{title}\n{}", path.display()))
                        .clicked()
                    {
                        cx.commands
                            .push(Command::Mission(MissionAction::OpenArchived(path.clone())));
                    }
                }
            });
        }
        ui.separator();
        let Some(b) = info.brief else {
            ui.label(
                RichText::new(
                    "A briefing sums up the range: what moved, the decisions, the risks to \
                     watch, sessions and agents, operational notes — each statement with the \
                     events it came from.",
                )
                .color(cx.theme.weak_text()),
            );
            return;
        };
        egui::ScrollArea::vertical()
            .id_salt("briefing")
            .auto_shrink([false, false])
            .show(ui, |ui| markdown_ui(ui, b, cx));
    }
}

/// The card grid: a card per project.
fn portfolio_ui(ui: &mut egui::Ui, info: MissionInfo<'_>, cx: &mut ViewCx<'_, '_>) {
    if info.portfolio.is_empty() {
        ui.label(
            "No projects yet: Mission Control reads lifecycle.*, portfolio.* and repo.* events \
             (Bloodbank v1).",
        );
        return;
    }
    let theme = cx.theme;
    egui::ScrollArea::vertical()
        .id_salt("portfolio")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            ui.spacing_mut().item_spacing = vec2(10.0, 10.0);
            // As many cards a row as fit.
            let per_row = ((ui.available_width() + 10.0) / (CARD_WIDTH + 30.0))
                .floor()
                .max(1.0);
            for row in info.portfolio.chunks(per_row as usize) {
                ui.horizontal_top(|ui| {
                    for c in row {
                        if card_ui(ui, c, info.now_us, theme).clicked() {
                            cx.commands.push(Command::SetFilter(c.filter.clone()));
                            cx.commands.push(Command::SetView(View::Stream));
                        }
                    }
                });
            }
        });
}

fn card_ui(ui: &mut egui::Ui, c: &PortfolioCard, now_us: Micros, theme: Theme) -> egui::Response {
    let color = health_color(c.health, theme);
    let frame = egui::Frame::group(ui.style())
        .stroke(Stroke::new(1.5, color))
        .inner_margin(egui::Margin::same(10));
    let inner = frame.show(ui, |ui| {
        ui.set_width(CARD_WIDTH);
        ui.set_height(150.0);
        ui.vertical(|ui| card_body_ui(ui, c, now_us, theme, color));
    });
    inner
        .response
        .interact(Sense::click())
        .on_hover_text("show its events in the Stream")
}

fn card_body_ui(
    ui: &mut egui::Ui,
    c: &PortfolioCard,
    now_us: Micros,
    theme: Theme,
    color: Color32,
) {
    ui.horizontal(|ui| {
        ui.strong(&c.name);
        if let Some(repo) = &c.repo {
            ui.label(RichText::new(repo).color(theme.weak_text()).small());
        }
    });
    ui.horizontal(|ui| {
        ui.label(
            RichText::new(c.health.as_str().replace('_', " "))
                .color(color)
                .strong(),
        );
        ui.label(RichText::new(&c.status).color(theme.weak_text()));
    });
    ui.add(egui::Label::new(RichText::new(&c.health_reason).small()).truncate());
    if let Some(p) = c.progress {
        ui.add(
            egui::ProgressBar::new((p / 100.0) as f32)
                .desired_width(CARD_WIDTH)
                .text(format!("{p:.0} %")),
        );
    }
    ui.horizontal(|ui| {
        let blockers = RichText::new(count(c.open_blockers, "blocker"));
        ui.label(if c.open_blockers > 0 {
            blockers.color(theme.bad())
        } else {
            blockers.color(theme.weak_text())
        });
        if let Some(r) = c.active_runs {
            ui.label(format!("· {}", count(r as usize, "agent run")));
        }
        if let Some(t) = c.last_progress_us {
            ui.label(
                RichText::new(format!("· progress {} ago", format_span(now_us - t)))
                    .color(theme.weak_text()),
            );
        }
    });
    ui.horizontal(|ui| {
        let m = c.momentum();
        let (arrow, col) = match m {
            1.. => ("⬆", theme.good()),
            0 => ("➡", theme.weak_text()),
            _ => ("⬇", theme.warn()),
        };
        ui.label(RichText::new(arrow).color(col));
        ui.label(format!(
            "{} done in 24 h ({} the day before)",
            c.done_24h, c.done_prev_24h
        ));
    });
    sparkline_ui(ui, &c.sparkline, theme);
}

/// Bars of work per hour over the last 24 h.
fn sparkline_ui(ui: &mut egui::Ui, values: &[u32], theme: Theme) {
    let (rect, _) = ui.allocate_exact_size(vec2(CARD_WIDTH, 22.0), Sense::hover());
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f32;
    let w = rect.width() / values.len().max(1) as f32;
    let painter = ui.painter_at(rect);
    painter.line_segment(
        [rect.left_bottom(), rect.right_bottom()],
        Stroke::new(1.0, theme.weak_text().gamma_multiply(0.4)),
    );
    for (i, &v) in values.iter().enumerate() {
        if v == 0 {
            continue;
        }
        let h = (v as f32 / max) * rect.height();
        let x = rect.left() + i as f32 * w;
        painter.rect_filled(
            egui::Rect::from_min_max(
                pos2(x + 1.0, rect.bottom() - h),
                pos2(x + w - 1.0, rect.bottom()),
            ),
            1.0,
            theme.accent(),
        );
    }
}

fn decisions_ui(ui: &mut egui::Ui, info: MissionInfo<'_>, cx: &mut ViewCx<'_, '_>) {
    let theme = cx.theme;
    ui.label(
        RichText::new(
            "rank = impact (low 1 · medium 2 · high 4 · critical 8) × category (architectural \
             1.5 · product 1.3 · technical 1.2 · process 1.0 · operational 0.8) × 0.5 per day \
             of age; ⚠ an agent's high-impact decision in the last 24 h",
        )
        .small()
        .color(theme.weak_text()),
    );
    if info.decisions.is_empty() {
        ui.label("No decisions recorded yet.");
        return;
    }
    let now_us = info.now_us;
    let mut clicked = None;
    TableBuilder::new(ui)
        .id_salt("decisions")
        .striped(true)
        .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
        .column(Column::exact(50.0))
        .column(Column::exact(18.0))
        .column(Column::exact(70.0))
        .column(Column::initial(120.0).clip(true))
        .column(Column::initial(150.0).clip(true))
        .column(Column::initial(110.0))
        .column(Column::remainder().clip(true))
        .header(ROW, |mut h| {
            for t in ["rank", "", "impact", "project", "by", "when", "decision"] {
                h.col(|ui| {
                    ui.strong(t);
                });
            }
        })
        .body(|body| {
            body.rows(ROW, info.decisions.len(), |mut row| {
                let Some(r) = info.decisions.get(row.index()) else {
                    return;
                };
                let d = &r.decision;
                row.col(|ui| {
                    ui.label(format!("{:.2}", r.rank));
                });
                row.col(|ui| {
                    if r.autonomy_alert {
                        ui.label(RichText::new("⚠").color(theme.bad()))
                            .on_hover_text(
                                "autonomy alert: a high-impact decision an agent made in the last \
                             24 h",
                            );
                    }
                });
                row.col(|ui| {
                    let impact = ui.label(
                        RichText::new(d.impact.as_str()).color(impact_color(d.impact, theme)),
                    );
                    if let Some(why) = &d.impact_inferred {
                        impact.on_hover_text(why);
                    }
                });
                row.col(|ui| {
                    ui.label(&r.project_name);
                });
                row.col(|ui| {
                    let by = d.decided_by.as_deref().unwrap_or("?");
                    let (icon, who) = if d.by_agent {
                        ("⚙", "an agent")
                    } else {
                        ("👤", "a person")
                    };
                    ui.label(format!("{icon} {by}")).on_hover_text(who);
                });
                row.col(|ui| {
                    ui.label(format!("{} ago", format_span(now_us - d.at.time_us)));
                });
                row.col(|ui| {
                    if decision_text_ui(ui, d) {
                        clicked.clone_from(&d.at.id);
                    }
                });
            });
        });
    if let Some(id) = clicked {
        cx.commands.push(Command::SetFilter(format!("id:{id}")));
        cx.commands.push(Command::SetView(View::Stream));
    }
}

/// A decision's text, the rest of it on hover; whether it was clicked.
fn decision_text_ui(ui: &mut egui::Ui, d: &candybar_core::mission::Decision) -> bool {
    let text = ui.add(egui::Label::new(&d.text).truncate().sense(Sense::click()));
    text.on_hover_ui(|ui| {
        let mut hover = format!("{} · {} · from {}", d.text, d.category, d.source);
        if !d.basis.is_empty() {
            let _ = write!(hover, "\nbasis: {}", d.basis.join(", "));
        }
        if let Some(rev) = d.reversible {
            hover.push_str(if rev {
                "\nreversible"
            } else {
                "\nnot reversible"
            });
        }
        ui.label(hover);
    })
    .clicked()
}

/// "1 checkpoint", "3 checkpoints".
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn drift_color(drift: &str, theme: Theme) -> Color32 {
    match drift {
        "significant" => theme.bad(),
        "minor" => theme.warn(),
        _ => theme.good(),
    }
}

fn drift_ui(ui: &mut egui::Ui, info: MissionInfo<'_>, cx: &mut ViewCx<'_, '_>) {
    let theme = cx.theme;
    if info.drift.is_empty() {
        ui.label("No roadmaps, checkpoints or reviews yet.");
        return;
    }
    egui::ScrollArea::vertical()
        .id_salt("drift")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            for p in info.drift {
                ui.horizontal(|ui| {
                    ui.heading(&p.name);
                    ui.label(
                        RichText::new(format!("drift {}", p.worst_drift))
                            .color(drift_color(&p.worst_drift, theme))
                            .strong(),
                    );
                    ui.label(format!(
                        "· {} · {} · {}",
                        count(p.versions.len(), "roadmap version"),
                        count(p.scope_changes, "scope change"),
                        count(p.checkpoints.len(), "checkpoint")
                    ));
                });
                progress_chart(ui, p, info.now_us, theme);
                for d in &p.diffs {
                    ui.label(format!(
                        "roadmap v{} ➡ v{} ({}): {}",
                        d.from,
                        d.to,
                        d.change_reason.as_deref().unwrap_or("no reason given"),
                        d.words("➡")
                    ));
                }
                for (issue, drift, reasons, at) in &p.reviews {
                    ui.horizontal(|ui| {
                        ui.label(RichText::new(format!("review {issue}")).strong());
                        ui.label(RichText::new(drift).color(drift_color(drift, theme)));
                        ui.label(reasons.join("; "));
                        ui.label(
                            RichText::new(format!("{} ago", format_span(info.now_us - at)))
                                .color(theme.weak_text()),
                        );
                    });
                }
                ui.separator();
            }
        });
}

/// Progress over time (the line), roadmap versions (dashed, scope changes in the warning
/// colour) and checkpoints (dots).
fn progress_chart(ui: &mut egui::Ui, p: &PlanDrift, now_us: Micros, theme: Theme) {
    let first = p
        .versions
        .iter()
        .map(|v| v.3)
        .chain(p.actual.iter().map(|a| a.0))
        .chain(p.checkpoints.iter().map(|c| c.2))
        .min();
    let Some(first) = first else { return };
    let span = (now_us - first).max(1) as f32;
    let (rect, _) =
        ui.allocate_exact_size(vec2(ui.available_width().min(900.0), 90.0), Sense::hover());
    let painter = ui.painter_at(rect);
    let x = |t: Micros| rect.left() + ((t - first) as f32 / span) * rect.width();
    let y = |pct: f64| rect.bottom() - (pct as f32 / 100.0) * rect.height();
    painter.rect_stroke(
        rect,
        2.0,
        Stroke::new(1.0, theme.weak_text().gamma_multiply(0.3)),
        egui::StrokeKind::Inside,
    );
    for (version, _, reason, at) in &p.versions {
        let col = if reason.as_deref() == Some("scope_change") {
            theme.warn()
        } else {
            theme.weak_text()
        };
        let xx = x(*at);
        painter.add(egui::Shape::dashed_line(
            &[pos2(xx, rect.top()), pos2(xx, rect.bottom())],
            Stroke::new(1.0, col),
            4.0,
            3.0,
        ));
        painter.text(
            pos2(xx + 2.0, rect.top() + 2.0),
            egui::Align2::LEFT_TOP,
            format!("v{version}"),
            egui::FontId::proportional(10.0),
            col,
        );
    }
    let points: Vec<egui::Pos2> = p.actual.iter().map(|(t, v)| pos2(x(*t), y(*v))).collect();
    if points.len() >= 2 {
        painter.add(egui::Shape::line(
            points.clone(),
            Stroke::new(2.0, theme.accent()),
        ));
    }
    for pt in &points {
        painter.circle_filled(*pt, 2.5, theme.accent());
    }
    for (_, _, at) in &p.checkpoints {
        painter.circle_filled(pos2(x(*at), rect.bottom() - 4.0), 4.0, theme.good());
    }
}

fn risk_color(r: &RiskItem, theme: Theme) -> Color32 {
    match (r.kind, r.severity.as_str(), r.overdue) {
        (_, _, true) | (RiskKind::Escalation, "critical", _) | (RiskKind::Service, _, _) => {
            theme.bad()
        }
        (RiskKind::Escalation, "warning", _) | (RiskKind::Stalled, _, _) => theme.warn(),
        (RiskKind::Approval, _, _) => theme.accent(),
        _ => theme.overlay_line(),
    }
}

fn risks_ui(ui: &mut egui::Ui, info: MissionInfo<'_>, cx: &mut ViewCx<'_, '_>) {
    let theme = cx.theme;
    let r = info.risks;
    if r.items.is_empty() {
        ui.label(RichText::new("Nothing open.").color(theme.good()));
        return;
    }
    if !r.blockers_by_kind.is_empty() {
        ui.horizontal_wrapped(|ui| {
            ui.label("Blockers by kind:");
            for (k, n) in &r.blockers_by_kind {
                ui.label(RichText::new(format!("{k} {n}")).color(theme.bad()));
            }
            ui.separator();
            ui.label("by owner:");
            for (k, n) in &r.blockers_by_owner {
                ui.label(format!("{k} {n}"));
            }
        });
        ui.separator();
    }
    egui::ScrollArea::vertical()
        .id_salt("risks")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            for item in &r.items {
                let color = risk_color(item, theme);
                ui.horizontal(|ui| {
                    let kind = match item.kind {
                        RiskKind::Escalation => "escalation",
                        RiskKind::Gate => "gate",
                        RiskKind::Approval => "approval",
                        RiskKind::Blocker => "blocker",
                        RiskKind::Stalled => "stalled",
                        RiskKind::Service => "service",
                    };
                    ui.label(
                        RichText::new(format!("{kind} · {}", item.severity))
                            .color(color)
                            .strong(),
                    );
                    ui.label(RichText::new(&item.project_name).color(theme.weak_text()));
                    let title = ui.add(egui::Label::new(&item.title).sense(Sense::click()));
                    if title.on_hover_text(&item.detail).clicked()
                        && let Some(id) = item.at.as_ref().and_then(|a| a.id.clone())
                    {
                        cx.commands.push(Command::SetFilter(format!("id:{id}")));
                        cx.commands.push(Command::SetView(View::Stream));
                    }
                    if let Some(due) = item.due_us {
                        let words = if item.overdue {
                            format!("overdue by {}", format_span(info.now_us - due))
                        } else {
                            format!("SLA in {}", format_span(due - info.now_us))
                        };
                        ui.label(RichText::new(words).color(if item.overdue {
                            theme.bad()
                        } else {
                            theme.warn()
                        }));
                    }
                    if let Some(o) = &item.owner {
                        ui.label(RichText::new(format!("owner {o}")).color(theme.weak_text()));
                    }
                });
                if !item.options.is_empty() {
                    ui.label(
                        RichText::new(format!("   options: {}", item.options.join(" / ")))
                            .color(theme.weak_text()),
                    );
                }
            }
        });
}

/// The briefing's Markdown as it reads: headings, bullets with their bold parts, footnotes whose
/// event a click shows in the Stream.
fn markdown_ui(ui: &mut egui::Ui, b: &Briefing, cx: &mut ViewCx<'_, '_>) {
    let theme = cx.theme;
    for line in b.markdown.lines() {
        if let Some(h) = line.strip_prefix("# ") {
            ui.heading(h);
        } else if let Some(h) = line.strip_prefix("## ") {
            ui.add_space(6.0);
            ui.strong(h);
        } else if line.starts_with("[^") {
            // A footnote: its event one click away.
            let n: usize = line
                .trim_start_matches("[^")
                .split(']')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let resp = ui.add(
                egui::Label::new(RichText::new(line).small().color(theme.weak_text()))
                    .sense(Sense::click()),
            );
            if resp
                .on_hover_text("show this event in the Stream")
                .clicked()
                && let Some(id) = n
                    .checked_sub(1)
                    .and_then(|i| b.sources.get(i))
                    .and_then(|s| s.id.clone())
            {
                cx.commands.push(Command::SetFilter(format!("id:{id}")));
                cx.commands.push(Command::SetView(View::Stream));
            }
        } else if line == "---" {
            ui.separator();
        } else if !line.is_empty() {
            let plain = line
                .replace("**", "")
                .replace("\\[", "[")
                .replace("\\]", "]")
                .replace('→', "➡");
            let rich = if plain.contains("⚠") || plain.contains("overdue") {
                RichText::new(plain).color(theme.warn())
            } else {
                RichText::new(plain)
            };
            ui.label(rich);
        }
    }
}
