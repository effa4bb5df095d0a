//! The stats cards above the stream, as users of the earlier dashboard know them: total events,
//! events per minute, error rate, domains seen. Each one filters the stream when clicked.

use candybar_core::store::EventStore;
use candybar_core::time::{MICROS_PER_SEC, Micros};
use egui::{RichText, Sense};

use crate::Command;
use crate::stream::format_count;
use crate::theme::{RADIUS, Theme};

/// Figures the cards show, read from the store's running aggregates.
#[derive(Clone, Debug, PartialEq)]
pub struct CardFigures {
    pub total: u64,
    pub per_minute: u64,
    pub error_share: f64,
    /// Domains by event count, most first.
    pub domains: Vec<(String, u64)>,
}

impl CardFigures {
    #[must_use]
    pub fn read(store: &EventStore, now_us: Micros) -> Self {
        let agg = store.aggregates();
        let now_sec = now_us.div_euclid(MICROS_PER_SEC);
        let per_minute = agg
            .rate
            .window(now_sec, 60)
            .iter()
            .map(|&c| u64::from(c))
            .sum();
        let interner = store.interner();
        let mut domains: Vec<(String, u64)> = store
            .counts()
            .by_domain
            .iter()
            .filter(|(s, _)| !s.is_none())
            .map(|(s, &n)| (interner.resolve(*s).to_owned(), n))
            .collect();
        domains.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Self {
            total: agg.total,
            per_minute,
            error_share: agg.error_share(),
            domains,
        }
    }
}

pub fn cards_ui(ui: &mut egui::Ui, f: &CardFigures, theme: Theme, commands: &mut Vec<Command>) {
    ui.horizontal(|ui| {
        if card(
            ui,
            theme,
            "Total events",
            &format_count(f.total),
            theme.accent(),
            "show all events",
        )
        .clicked()
        {
            commands.push(Command::SetFilter(String::new()));
        }
        if card(
            ui,
            theme,
            "Events / min",
            &format_count(f.per_minute),
            theme.accent(),
            "show the last minute",
        )
        .clicked()
        {
            commands.push(Command::SetFilter("last:1m".into()));
        }
        let err_color = match f.error_share {
            s if s >= 0.05 => theme.bad(),
            s if s >= 0.01 => theme.warn(),
            _ => theme.good(),
        };
        if card(
            ui,
            theme,
            "Error rate",
            &format!("{:.1} %", f.error_share * 100.0),
            err_color,
            "show errors and failures",
        )
        .clicked()
        {
            commands.push(Command::SetFilter("errors".into()));
        }
        let domains = card(
            ui,
            theme,
            "Domains",
            &f.domains.len().to_string(),
            theme.accent(),
            "pick a domain to filter",
        );
        egui::Popup::menu(&domains).show(|ui| {
            ui.set_min_width(200.0);
            for (d, n) in f.domains.iter().take(40) {
                let label = RichText::new(format!("{d}  ·  {}", format_count(*n)))
                    .color(theme.domain_color(d));
                if ui.button(label).clicked() {
                    commands.push(Command::SetFilter(format!("domain:{d}")));
                    ui.close();
                }
            }
            if f.domains.is_empty() {
                ui.label("no events yet");
            }
        });
    });
}

fn card(
    ui: &mut egui::Ui,
    theme: Theme,
    title: &str,
    value: &str,
    color: egui::Color32,
    hover: &str,
) -> egui::Response {
    let frame = egui::Frame::new()
        .fill(theme.card_fill())
        .corner_radius(RADIUS)
        .inner_margin(egui::Margin::symmetric(12, 6));
    let inner = frame.show(ui, |ui| {
        ui.set_min_width(130.0);
        ui.vertical(|ui| {
            ui.label(RichText::new(title).small().color(theme.weak_text()));
            ui.label(RichText::new(value).size(20.0).strong().color(color));
        });
    });
    let response = ui.interact(inner.response.rect, ui.id().with(title), Sense::click());
    response.widget_info(|| egui::WidgetInfo::labeled(egui::WidgetType::Button, true, title));
    response
        .on_hover_cursor(egui::CursorIcon::PointingHand)
        .on_hover_text(hover)
}
