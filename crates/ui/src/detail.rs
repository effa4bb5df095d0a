//! The detail pane: everything about one event — its metadata, its payload as a collapsible JSON
//! tree (raw text for non-JSON, hex for binary), copy, related events, export.

use candybar_core::event::{BodyKind, Event};
use candybar_core::export::write_ndjson;
use candybar_core::store::EventStore;
use candybar_core::text::printable;
use egui::{Color32, RichText};
use serde_json::Value;

use crate::Command;
use crate::stream::format_bytes;
use crate::theme::Theme;
use crate::time_fmt::TimeZoneChoice;

/// Text and hex views show at most this much of a body; copy and export give all of it.
const SHOWN_BODY_BYTES: usize = 64 * 1024;
/// Children listed per JSON object or array before "… N more".
const SHOWN_CHILDREN: usize = 200;
/// Related events listed.
const SHOWN_RELATED: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PayloadView {
    #[default]
    Tree,
    Raw,
}

/// What lasts between frames: the decoded event for the selection, parsed once.
#[derive(Default)]
pub struct DetailState {
    seq: Option<u64>,
    event: Option<Event>,
    json: Option<Value>,
    related: Vec<u64>,
    related_key: Option<String>,
    pub payload_view: PayloadView,
}

impl DetailState {
    /// Loads `seq` from the store if it is not the one shown. Returns false if it was evicted.
    pub fn load(&mut self, store: &EventStore, seq: u64) -> bool {
        if self.seq == Some(seq) && self.event.is_some() {
            return true;
        }
        self.seq = Some(seq);
        self.event = store.get(seq);
        self.json = self.event.as_ref().and_then(|e| {
            (e.body_kind.is_json() && !e.truncated)
                .then(|| serde_json::from_slice(&e.body).ok())
                .flatten()
        });
        self.related_key = self.event.as_ref().and_then(|e| {
            e.correlation_ids
                .first()
                .cloned()
                .or_else(|| e.causation_id.clone())
                .or_else(|| e.id.clone())
        });
        self.related = self
            .related_key
            .as_deref()
            .map(|k| store.related(k))
            .unwrap_or_default();
        self.event.is_some()
    }

    #[must_use]
    pub fn event(&self) -> Option<&Event> {
        self.event.as_ref()
    }

    /// The whole event as pretty JSON (candybar's export record).
    #[must_use]
    pub fn event_json(event: &Event) -> String {
        let mut line = Vec::new();
        write_ndjson(event, &mut line);
        serde_json::from_slice::<Value>(&line)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| String::from_utf8_lossy(&line).trim_end().to_owned())
    }

    #[allow(clippy::too_many_lines)] // the pane reads top to bottom like the screen
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        store: &EventStore,
        theme: Theme,
        tz: TimeZoneChoice,
        commands: &mut Vec<Command>,
    ) {
        let Some(event) = &self.event else {
            ui.label("This event has been evicted from memory (the store keeps the newest).");
            return;
        };
        ui.horizontal(|ui| {
            ui.label(
                RichText::new(Theme::status_icon(event.status))
                    .color(theme.status_color(event.status))
                    .heading(),
            );
            ui.heading(&event.kind);
        });
        ui.horizontal_wrapped(|ui| {
            if ui
                .button("📋 Copy event")
                .on_hover_text("the whole event as JSON")
                .clicked()
            {
                commands.push(Command::Copy(Self::event_json(event)));
            }
            if ui.button("📋 Copy body").clicked() {
                commands.push(Command::Copy(
                    String::from_utf8_lossy(&event.body).into_owned(),
                ));
            }
            if ui.button("💾 Export event…").clicked() {
                commands.push(Command::ExportEvent(event.seq));
            }
            if ui.button("✖ Close").on_hover_text("Esc").clicked() {
                commands.push(Command::OpenDetail(false));
            }
        });
        ui.separator();
        egui::ScrollArea::vertical()
            .id_salt("detail-scroll")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                egui::CollapsingHeader::new("Metadata")
                    .default_open(true)
                    .show(ui, |ui| metadata_ui(ui, event, theme, tz, commands));
                egui::CollapsingHeader::new(format!(
                    "Payload · {} · {}",
                    event.body_kind.label(),
                    format_bytes(event.size_bytes)
                ))
                .id_salt("payload")
                .default_open(true)
                .show(ui, |ui| {
                    if let Some(json) = &self.json {
                        ui.horizontal(|ui| {
                            ui.selectable_value(&mut self.payload_view, PayloadView::Tree, "Tree");
                            ui.selectable_value(&mut self.payload_view, PayloadView::Raw, "Raw");
                        });
                        match self.payload_view {
                            PayloadView::Tree => json_tree_ui(ui, json, "$", 0, theme, commands),
                            PayloadView::Raw => raw_text_ui(ui, event),
                        }
                    } else if event.body_kind == BodyKind::Binary {
                        hex_ui(ui, &event.body);
                    } else {
                        raw_text_ui(ui, event);
                    }
                });
                let related_title = match &self.related_key {
                    Some(_) => format!("Related events · {}", self.related.len()),
                    None => "Related events".to_owned(),
                };
                egui::CollapsingHeader::new(related_title)
                    .id_salt("related")
                    .default_open(true)
                    .show(ui, |ui| {
                        let Some(key) = &self.related_key else {
                            ui.label("This event carries no id or correlation id.");
                            return;
                        };
                        ui.horizontal(|ui| {
                            ui.label(RichText::new(format!("sharing {key}")).weak());
                            if ui
                                .small_button("filter")
                                .on_hover_text("show only these in the stream")
                                .clicked()
                            {
                                commands.push(Command::SetFilter(format!("corr:{}", quote(key))));
                            }
                            if ui
                                .small_button("trace")
                                .on_hover_text("see these events as a waterfall of spans")
                                .clicked()
                            {
                                commands.push(Command::OpenTrace(key.clone()));
                            }
                        });
                        let interner = store.interner();
                        for &seq in self.related.iter().take(SHOWN_RELATED) {
                            let Some(meta) = store.meta(seq) else {
                                continue;
                            };
                            let text = format!(
                                "{}  {}  {}",
                                tz.clock(meta.received_us),
                                printable(interner.resolve(meta.kind)),
                                printable(interner.resolve(meta.source))
                            );
                            let mut rich = RichText::new(text).monospace();
                            if Some(seq) == self.seq {
                                rich = rich.strong();
                            }
                            if ui.selectable_label(Some(seq) == self.seq, rich).clicked() {
                                commands.push(Command::Select(seq));
                            }
                        }
                        if self.related.len() > SHOWN_RELATED {
                            ui.label(format!("… and {} more", self.related.len() - SHOWN_RELATED));
                        }
                    });
            });
    }
}

/// `s` quoted for the filter language when it holds anything but word characters.
pub(super) fn quote(s: &str) -> String {
    if s.chars().all(|c| c.is_alphanumeric() || "-_.:".contains(c)) {
        s.to_owned()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

fn metadata_ui(
    ui: &mut egui::Ui,
    e: &Event,
    theme: Theme,
    tz: TimeZoneChoice,
    commands: &mut Vec<Command>,
) {
    egui::Grid::new("metadata")
        .num_columns(2)
        .striped(true)
        .spacing([12.0, 4.0])
        .show(ui, |ui| {
            let mut row = |ui: &mut egui::Ui, key: &str, value: &str, filter: Option<String>| {
                ui.label(RichText::new(key).color(theme.weak_text()));
                // Shown escaped; copied as it is.
                let r = ui.add(
                    egui::Label::new(printable(value).as_ref())
                        .wrap()
                        .sense(egui::Sense::click()),
                );
                let r = r.on_hover_text("click to copy");
                if r.clicked() {
                    commands.push(Command::Copy(value.to_owned()));
                }
                r.context_menu(|ui| {
                    if ui.button("Copy").clicked() {
                        commands.push(Command::Copy(value.to_owned()));
                    }
                    if let Some(f) = &filter
                        && ui.button(format!("Filter: {f}")).clicked()
                    {
                        commands.push(Command::SetFilter(f.clone()));
                    }
                });
                ui.end_row();
            };
            row(ui, "type", &e.kind, Some(quote(&e.kind)));
            row(ui, "routing key", &e.routing_key, None);
            if let Some(id) = &e.id {
                row(ui, "id", id, None);
            }
            row(
                ui,
                "domain",
                &e.domain,
                Some(format!("domain:{}", quote(&e.domain))),
            );
            row(ui, "status", e.status.label(), None);
            if let Some(s) = &e.source {
                row(ui, "source", s, Some(format!("source:{}", quote(s))));
            }
            if let Some(a) = &e.agent {
                let label = match &e.agent_type {
                    Some(t) => format!("{a} ({t})"),
                    None => a.clone(),
                };
                row(ui, "agent", &label, Some(format!("agent:{}", quote(a))));
            }
            if let Some(s) = &e.session {
                row(ui, "session", s, Some(format!("session:{}", quote(s))));
            }
            for c in &e.correlation_ids {
                row(ui, "correlation", c, Some(format!("corr:{}", quote(c))));
            }
            if let Some(c) = &e.causation_id {
                row(ui, "causation", c, Some(format!("corr:{}", quote(c))));
            }
            row(ui, "received", &tz.full(e.received_us), None);
            if let Some(p) = e.published_us {
                row(ui, "published", &tz.full(p), None);
            }
            if let Some(l) = e.latency_us() {
                row(ui, "latency", &format!("{:.3} ms", l as f64 / 1e3), None);
            }
            let size = if e.truncated {
                format!(
                    "{} ({} bytes; stored truncated to {})",
                    format_bytes(e.size_bytes),
                    e.size_bytes,
                    format_bytes(e.body.len() as u64)
                )
            } else {
                format!("{} ({} bytes)", format_bytes(e.size_bytes), e.size_bytes)
            };
            row(ui, "size", &size, None);
            if let Some(p) = &e.props {
                for (k, v) in [
                    ("amqp message_id", &p.message_id),
                    ("amqp app_id", &p.app_id),
                    ("amqp correlation_id", &p.correlation_id),
                    ("amqp type", &p.kind),
                    ("amqp content_type", &p.content_type),
                ] {
                    if let Some(v) = v {
                        row(ui, k, v, None);
                    }
                }
                for (k, v) in &p.headers {
                    row(ui, &format!("header {k}"), v, None);
                }
            }
        });
}

/// A JSON path step: `.key`, `["odd key"]` or `[3]`.
fn path_key(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key.chars().all(|c| c.is_alphanumeric() || c == '_')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        format!("{parent}.{key}")
    } else {
        format!("{parent}[{}]", serde_json::Value::String(key.to_owned()))
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn scalar_color(v: &Value, theme: Theme) -> Color32 {
    match v {
        Value::String(_) => theme.good(),
        Value::Number(_) => theme.accent(),
        Value::Bool(_) | Value::Null => theme.warn(),
        _ => theme.weak_text(),
    }
}

/// One node of the payload tree. Objects and arrays collapse; each value and path can be copied.
pub fn json_tree_ui(
    ui: &mut egui::Ui,
    value: &Value,
    path: &str,
    depth: usize,
    theme: Theme,
    commands: &mut Vec<Command>,
) {
    let children: Vec<(String, String, &Value)> = match value {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), path_key(path, k), v))
            .collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("[{i}]"), format!("{path}[{i}]"), v))
            .collect(),
        scalar => {
            leaf_ui(ui, None, scalar, path, theme, commands);
            return;
        }
    };
    let total = children.len();
    for (label, child_path, child) in children.into_iter().take(SHOWN_CHILDREN) {
        match child {
            Value::Object(m) if !m.is_empty() => {
                node_ui(
                    ui,
                    &label,
                    &format!("{{…}} {} keys", m.len()),
                    child,
                    &child_path,
                    depth,
                    theme,
                    commands,
                );
            }
            Value::Array(a) if !a.is_empty() => {
                node_ui(
                    ui,
                    &label,
                    &format!("[…] {} items", a.len()),
                    child,
                    &child_path,
                    depth,
                    theme,
                    commands,
                );
            }
            _ => leaf_ui(ui, Some(&label), child, &child_path, theme, commands),
        }
    }
    if total > SHOWN_CHILDREN {
        ui.label(
            RichText::new(format!(
                "… and {} more (copy the value to see all)",
                total - SHOWN_CHILDREN
            ))
            .color(theme.weak_text()),
        );
    }
}

#[allow(clippy::too_many_arguments)] // a recursive helper; bundling the args would only hide them
fn node_ui(
    ui: &mut egui::Ui,
    label: &str,
    summary: &str,
    value: &Value,
    path: &str,
    depth: usize,
    theme: Theme,
    commands: &mut Vec<Command>,
) {
    let header = egui::CollapsingHeader::new(RichText::new(format!("{label}  ")).strong())
        .id_salt(path)
        .default_open(depth < 1);
    let response = header.show(ui, |ui| {
        json_tree_ui(ui, value, path, depth + 1, theme, commands);
    });
    response
        .header_response
        .clone()
        .on_hover_text(summary)
        .context_menu(|ui| {
            copy_menu(ui, value, path, commands);
        });
}

fn leaf_ui(
    ui: &mut egui::Ui,
    label: Option<&str>,
    value: &Value,
    path: &str,
    theme: Theme,
    commands: &mut Vec<Command>,
) {
    ui.horizontal(|ui| {
        if let Some(label) = label {
            ui.label(RichText::new(format!("{label}:")).strong());
        }
        let text = scalar_text(value);
        let r = ui.add(
            egui::Label::new(
                RichText::new(text)
                    .monospace()
                    .color(scalar_color(value, theme)),
            )
            .wrap()
            .sense(egui::Sense::click()),
        );
        r.on_hover_text(path)
            .context_menu(|ui| copy_menu(ui, value, path, commands));
    });
}

fn copy_menu(ui: &mut egui::Ui, value: &Value, path: &str, commands: &mut Vec<Command>) {
    if ui.button("Copy value").clicked() {
        let text = match value {
            Value::String(s) => s.clone(),
            other => serde_json::to_string_pretty(other).unwrap_or_default(),
        };
        commands.push(Command::Copy(text));
    }
    if ui.button(format!("Copy path  {path}")).clicked() {
        commands.push(Command::Copy(path.to_owned()));
    }
}

fn raw_text_ui(ui: &mut egui::Ui, e: &Event) {
    if e.body.is_empty() {
        ui.label(RichText::new("(empty body)").italics());
        return;
    }
    let shown = &e.body[..e.body.len().min(SHOWN_BODY_BYTES)];
    let text = String::from_utf8_lossy(shown);
    ui.add(egui::Label::new(RichText::new(text).monospace()).wrap());
    if e.body.len() > SHOWN_BODY_BYTES || e.truncated {
        ui.label(
            RichText::new(format!(
                "showing the first {} of {}; copy or export the event for the stored body",
                format_bytes(shown.len() as u64),
                format_bytes(e.size_bytes)
            ))
            .italics(),
        );
    }
}

fn hex_ui(ui: &mut egui::Ui, body: &[u8]) {
    let shown = &body[..body.len().min(SHOWN_BODY_BYTES)];
    let mut out = String::with_capacity(shown.len() * 4);
    for (i, chunk) in shown.chunks(16).enumerate() {
        use std::fmt::Write as _;
        let _ = write!(out, "{:08x}  ", i * 16);
        for j in 0..16 {
            match chunk.get(j) {
                Some(b) => {
                    let _ = write!(out, "{b:02x} ");
                }
                None => out.push_str("   "),
            }
        }
        out.push(' ');
        out.extend(chunk.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        out.push('\n');
    }
    ui.add(egui::Label::new(RichText::new(out).monospace()).extend());
    if body.len() > SHOWN_BODY_BYTES {
        ui.label(
            RichText::new(format!(
                "showing the first {}",
                format_bytes(SHOWN_BODY_BYTES as u64)
            ))
            .italics(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_read_like_jsonpath() {
        assert_eq!(path_key("$", "payload"), "$.payload");
        assert_eq!(path_key("$.a", "odd key"), "$.a[\"odd key\"]");
        assert_eq!(path_key("$", "3d"), "$[\"3d\"]");
        assert_eq!(quote("agent.thread"), "agent.thread");
        assert_eq!(quote("a b\"c"), "\"a b\\\"c\"");
    }
}
