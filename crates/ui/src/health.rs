//! The Health view: every service of the registry at a glance — its state by the rules below,
//! its health endpoint's last answer (when polling is on), when it was last heard from on the
//! bus, its rate and error share. A click filters the Stream to its events.
//!
//! The rules are [`candybar_core::health::Health::of`]'s: planned and unseen are grey, healthy
//! green, degraded amber, failing red.

use candybar_core::aggregates::SourceStats;
use candybar_core::health::{Health, Probe, Probes};
use candybar_core::registry::Registry;
use candybar_core::store::EventStore;
use candybar_core::time::{MICROS_PER_SEC, Micros};
use egui::{Color32, RichText};
use egui_extras::{Column, TableBuilder};
use rustc_hash::FxHashMap;

use crate::context::ViewCx;
use crate::stream::format_count;
use crate::theme::{ROW_HEIGHT, Theme};
use crate::{Command, View};

fn health_color(h: Health, theme: Theme) -> Color32 {
    match h {
        Health::Planned | Health::Unseen => theme.weak_text(),
        Health::Good => theme.good(),
        Health::Warn => theme.warn(),
        Health::Bad => theme.bad(),
    }
}

/// One row: a registry service and what the bus says about it.
struct Row {
    key: String,
    name: String,
    kind: String,
    layer: String,
    health: Health,
    stats: SourceStats,
    probe: Option<Probe>,
    /// Whether the registry gives it a health endpoint.
    endpoint: bool,
}

/// Stats per service, in one pass over the sources. The events of a service are those whose
/// source is its name or key, or starts with `name://` (agents of a service publish as
/// `hermes://agent/…`).
fn stats_by_service(registry: &Registry, store: &EventStore) -> FxHashMap<String, SourceStats> {
    let owners = candybar_core::registry::SourceOwners::new(registry);
    let interner = store.interner();
    let mut out: FxHashMap<String, SourceStats> = FxHashMap::default();
    for (sym, s) in &store.aggregates().by_source {
        if let Some(key) = owners.owner(interner.resolve(*sym)) {
            out.entry(key.to_owned()).or_default().merge(s);
        }
    }
    out
}

/// The registry's services Health finds failing, with why: (name, why) — Mission Control lists
/// them among the risks and notifies them.
#[must_use]
pub fn failing_services(
    registry: &Registry,
    store: &EventStore,
    probes: &Probes,
    now_us: Micros,
) -> Vec<(String, String)> {
    rows(registry, store, probes, now_us)
        .into_iter()
        .filter(|r| r.health == Health::Bad)
        .map(|r| {
            let why = match &r.probe {
                Some(p) if !p.ok() => format!("its health endpoint answered {}", p.words()),
                _ if r.stats.events > 0 && r.stats.error_share() >= 0.2 => format!(
                    "{:.0} % of its events are errors",
                    r.stats.error_share() * 100.0
                ),
                _ => format!("silent since {}", ago(now_us, r.stats.last_received_us)),
            };
            (r.name, why)
        })
        .collect()
}

fn rows(registry: &Registry, store: &EventStore, probes: &Probes, now_us: Micros) -> Vec<Row> {
    let layer_of = |key: &str| {
        registry
            .topology
            .iter()
            .position(|(_, s)| s.iter().any(|k| k == key))
            .map_or((usize::MAX, String::new()), |i| {
                (i, registry.topology[i].0.clone())
            })
    };
    let stats_of = stats_by_service(registry, store);
    let mut out: Vec<(usize, Row)> = registry
        .services
        .iter()
        .map(|(key, s)| {
            let name = s.name.clone().unwrap_or_else(|| key.clone());
            let stats = stats_of.get(key).copied();
            let (order, layer) = layer_of(key);
            let probe = probes.get(key).cloned();
            let row = Row {
                key: key.clone(),
                health: Health::of(!s.is_active(), probe.as_ref(), stats.as_ref(), now_us),
                probe,
                endpoint: s.endpoints.contains_key("health"),
                kind: s.kind.clone().unwrap_or_default(),
                layer,
                stats: stats.unwrap_or_default(),
                name,
            };
            (order, row)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.key.cmp(&b.1.key)));
    out.into_iter().map(|(_, r)| r).collect()
}

fn ago(now_us: Micros, then_us: Micros) -> String {
    let secs = (now_us - then_us).max(0) / MICROS_PER_SEC;
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        _ => format!("{} h ago", secs / 3600),
    }
}

/// The health endpoint's last answer, or why there is none.
fn endpoint_cell(ui: &mut egui::Ui, r: &Row, theme: Theme) {
    match &r.probe {
        Some(p) => {
            let color = if p.ok() { theme.good() } else { theme.bad() };
            let text = match (&p.error, p.status) {
                (Some(e), Some(_)) => format!("✖ {} ({e})", p.words()),
                (Some(_), None) => format!("✖ {}", p.words()),
                _ => p.words(),
            };
            ui.label(RichText::new(text).color(color));
        }
        None if r.endpoint => {
            ui.label(RichText::new("not polled").color(theme.weak_text()))
                .on_hover_text("turn polling on with [health] poll_secs in the config");
        }
        None => {}
    }
}

pub fn health_ui(ui: &mut egui::Ui, cx: &mut ViewCx<'_, '_>) {
    let (registry, store, probes) = (cx.data.registry, cx.data.store, cx.data.probes);
    let (now_us, theme) = (cx.data.now_us, cx.theme);
    let commands = &mut *cx.commands;
    let rows = rows(registry, store, probes, now_us);
    let count = |h: Health| rows.iter().filter(|r| r.health == h).count();
    ui.horizontal(|ui| {
        for h in [
            Health::Good,
            Health::Warn,
            Health::Bad,
            Health::Unseen,
            Health::Planned,
        ] {
            ui.label(
                RichText::new(format!("{} {}", count(h), h.label())).color(health_color(h, theme)),
            );
            ui.separator();
        }
    });
    ui.style_mut().interaction.selectable_labels = false;
    TableBuilder::new(ui)
        .id_salt("health")
        .striped(true)
        .sense(egui::Sense::click())
        .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
        .column(Column::initial(120.0))
        .column(Column::initial(200.0).clip(true))
        .column(Column::initial(120.0).clip(true))
        .column(Column::initial(140.0).clip(true))
        .column(Column::initial(130.0).clip(true))
        .column(Column::initial(100.0))
        .column(Column::initial(90.0))
        .column(Column::initial(80.0))
        .column(Column::remainder())
        .header(ROW_HEIGHT, |mut h| {
            for t in [
                "State",
                "Service",
                "Type",
                "Layer",
                "Endpoint",
                "Last seen",
                "Events/min",
                "Errors",
                "Events",
            ] {
                h.col(|ui| {
                    ui.strong(t);
                });
            }
        })
        .body(|body| {
            body.rows(ROW_HEIGHT, rows.len(), |mut row| {
                let Some(r) = rows.get(row.index()) else {
                    return;
                };
                row.col(|ui| {
                    crate::theme::dot(ui, health_color(r.health, theme));
                    ui.label(RichText::new(r.health.label()).color(health_color(r.health, theme)));
                });
                row.col(|ui| {
                    ui.label(&r.name).on_hover_text(&r.key);
                });
                row.col(|ui| {
                    ui.label(&r.kind);
                });
                row.col(|ui| {
                    ui.label(&r.layer);
                });
                row.col(|ui| endpoint_cell(ui, r, theme));
                row.col(|ui| {
                    if r.stats.events > 0 {
                        ui.label(ago(now_us, r.stats.last_received_us));
                    }
                });
                row.col(|ui| {
                    ui.label(format_count(u64::from(r.stats.per_minute(now_us))));
                });
                row.col(|ui| {
                    if r.stats.events > 0 {
                        ui.label(format!("{:.1} %", r.stats.error_share() * 100.0));
                    }
                });
                row.col(|ui| {
                    ui.label(format_count(r.stats.events));
                });
                if row.response().clicked() {
                    commands.push(Command::SetFilter(format!(
                        "source:{}",
                        crate::detail::quote(&r.name)
                    )));
                    commands.push(Command::SetView(View::Stream));
                }
            });
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_read_as_written() {
        let now = 10_000 * MICROS_PER_SEC;
        let seen = |events: u64, errors: u64, secs_ago: i64| {
            let mut s = SourceStats::default();
            s.events = events;
            s.errors = errors;
            s.last_received_us = now - secs_ago * MICROS_PER_SEC;
            s
        };
        // (merge and per-minute figures are tested beside SourceStats)
        assert_eq!(Health::of(true, None, None, now), Health::Planned);
        assert_eq!(Health::of(false, None, None, now), Health::Unseen);
        assert_eq!(
            Health::of(false, None, Some(&seen(100, 1, 10)), now),
            Health::Good
        );
        assert_eq!(
            Health::of(false, None, Some(&seen(100, 6, 10)), now),
            Health::Warn
        );
        assert_eq!(
            Health::of(false, None, Some(&seen(100, 1, 6 * 60)), now),
            Health::Warn
        );
        assert_eq!(
            Health::of(false, None, Some(&seen(100, 25, 10)), now),
            Health::Bad
        );
        assert_eq!(
            Health::of(false, None, Some(&seen(100, 0, 31 * 60)), now),
            Health::Bad
        );
        assert_eq!(ago(now, now - 90 * MICROS_PER_SEC), "1 min ago");
        // A polled endpoint: a failing one is red whatever the bus says; a good one makes a
        // silent consumer green.
        let probe = |status: u16| Probe {
            status: Some(status),
            error: (status >= 300).then(|| format!("answered {status}")),
            latency_ms: 3,
            at_us: now,
        };
        let busy = seen(100, 0, 10);
        assert_eq!(
            Health::of(false, Some(&probe(500)), Some(&busy), now),
            Health::Bad
        );
        assert_eq!(
            Health::of(false, Some(&probe(200)), None, now),
            Health::Good
        );
        assert_eq!(
            Health::of(true, Some(&probe(500)), None, now),
            Health::Planned
        );
    }
}
