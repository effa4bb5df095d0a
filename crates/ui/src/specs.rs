//! The Specs view: the specs of the project directory by project and status; the selected one
//! rendered as Markdown, any version of it, or what changed between two versions; Approve,
//! Reject, Continue (talk it through again for its next version) and File on GitHub, with the
//! issue's link once filed.
//!
//! The app's specs worker fills [`SpecsInfo`] (it watches the directory, so edits made on disk
//! show up); what the person asks goes back as [`Command::Specs`].

use egui::{Color32, RichText};
use egui_commonmark::{CommonMarkCache, CommonMarkViewer};

use crate::Command;
use crate::context::ViewCx;
use crate::theme::Theme;

/// One spec as the list shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpecRow {
    pub id: String,
    pub title: String,
    pub project: String,
    /// `draft`, `approved`, `rejected` or `filed`.
    pub status: String,
    pub versions: u32,
    pub approved_version: Option<u32>,
    pub created: String,
    pub issue_url: Option<String>,
    /// Why filing it last failed.
    pub last_error: Option<String>,
}

/// What changed between two versions: their numbers and the lines (`-`, `+`, ` `).
pub type SpecDiff = (u32, u32, Vec<(char, String)>);

/// The selected spec's text as asked for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpecText {
    pub id: String,
    pub version: u32,
    pub markdown: String,
    /// With a diff asked for: the two versions and their lines (`-`, `+`, ` `).
    pub diff: Option<SpecDiff>,
}

/// What the view reads each frame.
#[derive(Clone, Copy, Debug)]
pub struct SpecsInfo<'a> {
    /// Newest first.
    pub rows: &'a [SpecRow],
    pub text: Option<&'a SpecText>,
    /// The project directory the specs are in.
    pub dir: &'a str,
    /// Specs that do not read, and why.
    pub problems: &'a [String],
    /// `owner/name`, when filing is configured.
    pub repo: Option<&'a str>,
    /// Work under way ("filing on GitHub…").
    pub busy: Option<&'a str>,
    /// The last action's result in words, and whether it was an error.
    pub message: Option<(&'a str, bool)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SpecAction {
    /// The view is shown: list the specs (and watch the directory).
    Open,
    /// Show this spec (its newest version, or `version`).
    Show {
        id: String,
        version: Option<u32>,
    },
    /// Show what changed between two versions.
    Diff {
        id: String,
        from: u32,
        to: u32,
    },
    Approve {
        id: String,
        version: u32,
    },
    Reject(String),
    /// Talk the spec through again: the Conversation view continues from it.
    Continue(String),
    File(String),
    /// Open a link (the filed issue) in the browser.
    OpenUrl(String),
}

/// What lasts between frames.
#[derive(Default)]
pub struct SpecsViewState {
    pub selected: Option<String>,
    pub version: Option<u32>,
    pub diff_from: Option<u32>,
    pub status_filter: Option<String>,
    woken: bool,
    markdown: CommonMarkCache,
}

fn status_color(status: &str, theme: Theme) -> Color32 {
    match status {
        "approved" => theme.good(),
        "filed" => theme.accent(),
        "rejected" => theme.bad(),
        _ => theme.warn(),
    }
}

const STATUSES: [&str; 4] = ["draft", "approved", "rejected", "filed"];

impl SpecsViewState {
    pub fn ui(&mut self, ui: &mut egui::Ui, cx: &mut ViewCx<'_, '_>) {
        let Some(info) = cx.data.specs else {
            ui.label("Specs are not available in this window.");
            return;
        };
        if !self.woken {
            self.woken = true;
            cx.commands.push(Command::Specs(SpecAction::Open));
        }
        let theme = cx.theme;
        ui.horizontal(|ui| {
            ui.label(RichText::new(info.dir).monospace().color(theme.weak_text()))
                .on_hover_text("the project directory; its .sentra/specs holds the specs");
            ui.separator();
            let all = self.status_filter.is_none();
            if ui.selectable_label(all, "all").clicked() {
                self.status_filter = None;
            }
            for s in STATUSES {
                let n = info.rows.iter().filter(|r| r.status == s).count();
                let on = self.status_filter.as_deref() == Some(s);
                if ui.selectable_label(on, format!("{s} {n}")).clicked() {
                    self.status_filter = (!on).then(|| s.to_owned());
                }
            }
            if let Some(b) = info.busy {
                ui.separator();
                ui.spinner();
                ui.label(b);
            }
        });
        if let Some((m, error)) = info.message {
            let color = if error { theme.bad() } else { theme.good() };
            ui.label(RichText::new(m).color(color));
        }
        for p in info.problems {
            ui.label(RichText::new(format!("⚠ {p}")).color(theme.warn()));
        }
        ui.separator();
        egui::Panel::left("specs-list")
            .resizable(true)
            .default_size(320.0)
            .show(ui, |ui| self.list_ui(ui, info, theme, cx.commands));
        let selected = self
            .selected
            .as_ref()
            .and_then(|id| info.rows.iter().find(|r| &r.id == id))
            .cloned();
        match selected {
            Some(row) => self.detail_ui(ui, &row, info, theme, cx.commands),
            None => {
                ui.label(
                    RichText::new(if info.rows.is_empty() {
                        "No specs yet. Talk a feature through in the Conversation view (say \
                         \"I'm done\" for the spec), or `candybar spec new --from FILE`."
                    } else {
                        "Pick a spec."
                    })
                    .color(theme.weak_text()),
                );
            }
        }
    }

    fn list_ui(
        &mut self,
        ui: &mut egui::Ui,
        info: SpecsInfo<'_>,
        theme: Theme,
        commands: &mut Vec<Command>,
    ) {
        egui::ScrollArea::vertical()
            .id_salt("specs-rows")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                let mut project = "";
                for r in info
                    .rows
                    .iter()
                    .filter(|r| self.status_filter.as_deref().is_none_or(|s| r.status == s))
                {
                    if r.project != project {
                        project = &r.project;
                        ui.label(RichText::new(project).strong().color(theme.weak_text()));
                    }
                    let on = self.selected.as_deref() == Some(r.id.as_str());
                    let text = RichText::new(format!("{}  ·  v{}", r.title, r.versions));
                    let clicked = ui
                        .horizontal(|ui| {
                            crate::theme::dot(ui, status_color(&r.status, theme));
                            ui.selectable_label(on, text)
                                .on_hover_text(format!("{} ({}, {})", r.id, r.status, r.created))
                                .clicked()
                        })
                        .inner;
                    if clicked {
                        self.selected = Some(r.id.clone());
                        self.version = None;
                        self.diff_from = None;
                        commands.push(Command::Specs(SpecAction::Show {
                            id: r.id.clone(),
                            version: None,
                        }));
                    }
                }
            });
    }

    #[allow(clippy::too_many_lines)] // the spec's header, its actions, then its text
    fn detail_ui(
        &mut self,
        ui: &mut egui::Ui,
        r: &SpecRow,
        info: SpecsInfo<'_>,
        theme: Theme,
        commands: &mut Vec<Command>,
    ) {
        let shown = info.text.filter(|t| t.id == r.id);
        let version = shown.map_or(r.versions, |t| t.version);
        ui.horizontal_wrapped(|ui| {
            ui.heading(&r.title);
            ui.label(RichText::new(&r.status).color(status_color(&r.status, theme)));
            if let Some(n) = r.approved_version {
                ui.label(RichText::new(format!("(v{n} approved)")).color(theme.weak_text()));
            }
        });
        ui.horizontal_wrapped(|ui| {
            ui.label("Version");
            egui::ComboBox::from_id_salt("spec-version")
                .selected_text(format!("v{version}"))
                .show_ui(ui, |ui| {
                    for n in (1..=r.versions).rev() {
                        if ui.selectable_label(n == version, format!("v{n}")).clicked() {
                            self.version = Some(n);
                            self.diff_from = None;
                            commands.push(Command::Specs(SpecAction::Show {
                                id: r.id.clone(),
                                version: Some(n),
                            }));
                        }
                    }
                });
            if r.versions > 1 {
                let from_text = self
                    .diff_from
                    .map_or_else(|| "diff with…".to_owned(), |n| format!("diff with v{n}"));
                egui::ComboBox::from_id_salt("spec-diff")
                    .selected_text(from_text)
                    .show_ui(ui, |ui| {
                        if ui
                            .selectable_label(self.diff_from.is_none(), "no diff")
                            .clicked()
                        {
                            self.diff_from = None;
                            commands.push(Command::Specs(SpecAction::Show {
                                id: r.id.clone(),
                                version: Some(version),
                            }));
                        }
                        for n in (1..=r.versions).rev().filter(|n| *n != version) {
                            if ui
                                .selectable_label(self.diff_from == Some(n), format!("v{n}"))
                                .clicked()
                            {
                                self.diff_from = Some(n);
                                commands.push(Command::Specs(SpecAction::Diff {
                                    id: r.id.clone(),
                                    from: n.min(version),
                                    to: n.max(version),
                                }));
                            }
                        }
                    });
            }
            ui.separator();
            let open = matches!(r.status.as_str(), "draft" | "rejected" | "approved");
            if open
                && r.status != "approved"
                && ui
                    .button(RichText::new("✔ Approve").color(theme.good()))
                    .on_hover_text(format!("approve v{version}"))
                    .clicked()
            {
                commands.push(Command::Specs(SpecAction::Approve {
                    id: r.id.clone(),
                    version,
                }));
            }
            if open
                && r.status != "rejected"
                && ui
                    .button(RichText::new("✖ Reject").color(theme.bad()))
                    .clicked()
            {
                commands.push(Command::Specs(SpecAction::Reject(r.id.clone())));
            }
            if r.status != "filed"
                && ui
                    .button("💬 Continue")
                    .on_hover_text("talk it through again: the architect writes its next version")
                    .clicked()
            {
                commands.push(Command::Specs(SpecAction::Continue(r.id.clone())));
            }
            if r.status == "approved" {
                let can_file = info.repo.is_some() && info.busy.is_none();
                let label = match info.repo {
                    Some(repo) => format!("⬆ File on GitHub ({repo})"),
                    None => "⬆ File on GitHub".to_owned(),
                };
                if ui
                    .add_enabled(can_file, egui::Button::new(label))
                    .on_disabled_hover_text(
                        "set [github] repo (owner/name) and store a token with `candybar secret \
                         set github-token`",
                    )
                    .on_hover_text("an issue labelled ai-feature, with the spec as its body")
                    .clicked()
                {
                    commands.push(Command::Specs(SpecAction::File(r.id.clone())));
                }
            }
            if let Some(url) = &r.issue_url
                && ui.link(url).on_hover_text("open the issue").clicked()
            {
                commands.push(Command::Specs(SpecAction::OpenUrl(url.clone())));
            }
        });
        if let Some(e) = &r.last_error {
            ui.label(
                RichText::new(format!(
                    "Not filed: {e} — the spec stays approved; try again."
                ))
                .color(theme.bad()),
            );
        }
        ui.separator();
        let Some(text) = shown else {
            ui.spinner();
            return;
        };
        egui::ScrollArea::vertical()
            .id_salt("spec-text")
            .auto_shrink([false, false])
            .show(ui, |ui| match &text.diff {
                Some((from, to, lines)) => {
                    ui.label(RichText::new(format!("v{from} → v{to}")).color(theme.weak_text()));
                    for (tag, line) in lines {
                        let (color, mark) = match tag {
                            '-' => (theme.bad(), "- "),
                            '+' => (theme.good(), "+ "),
                            _ => (theme.weak_text(), "  "),
                        };
                        ui.label(
                            RichText::new(format!("{mark}{line}"))
                                .monospace()
                                .color(color),
                        );
                    }
                }
                None => {
                    CommonMarkViewer::new().show(ui, &mut self.markdown, &text.markdown);
                }
            });
    }
}
