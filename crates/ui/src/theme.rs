//! Colours, spacing and the two themes. Views take their colours from here, never from literals.

use candybar_core::event::Status;
use egui::{Color32, Visuals};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ThemeChoice {
    #[default]
    Dark,
    Light,
}

/// Height of one stream row, in points.
pub const ROW_HEIGHT: f32 = 20.0;
/// Corner radius of cards and chips.
pub const RADIUS: u8 = 4;

/// Domain hues, chosen to stay apart from each other and from the status colours.
const DOMAIN_HUES: [f32; 12] = [
    0.58, 0.08, 0.33, 0.80, 0.15, 0.50, 0.92, 0.25, 0.67, 0.02, 0.42, 0.74,
];

#[derive(Clone, Copy, Debug)]
pub struct Theme {
    pub choice: ThemeChoice,
}

impl Theme {
    #[must_use]
    pub fn new(choice: ThemeChoice) -> Self {
        Self { choice }
    }

    #[must_use]
    pub fn dark(self) -> bool {
        self.choice == ThemeChoice::Dark
    }

    /// egui's visuals for this theme, with candybar's accents.
    #[must_use]
    pub fn visuals(self) -> Visuals {
        let mut v = if self.dark() {
            Visuals::dark()
        } else {
            Visuals::light()
        };
        v.selection.bg_fill = self
            .accent()
            .gamma_multiply(if self.dark() { 0.55 } else { 0.35 });
        v.hyperlink_color = self.accent();
        v.striped = true;
        v
    }

    #[must_use]
    pub fn accent(self) -> Color32 {
        if self.dark() {
            Color32::from_rgb(0xff, 0x7a, 0xc6) // candy pink
        } else {
            Color32::from_rgb(0xc2, 0x18, 0x7a)
        }
    }

    /// A stable colour per domain name (the same domain is the same colour everywhere).
    #[must_use]
    pub fn domain_color(self, domain: &str) -> Color32 {
        if domain.is_empty() {
            return self.weak_text();
        }
        // FNV-1a: stable across runs and platforms, unlike the std hasher.
        let mut h: u32 = 0x811c_9dc5;
        for b in domain.bytes() {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        let hue = DOMAIN_HUES[(h as usize) % DOMAIN_HUES.len()];
        let (s, v) = if self.dark() {
            (0.55, 0.95)
        } else {
            (0.75, 0.60)
        };
        egui::ecolor::Hsva::new(hue, s, v, 1.0).into()
    }

    #[must_use]
    pub fn status_color(self, status: Status) -> Color32 {
        match (status, self.dark()) {
            (Status::Error, true) => Color32::from_rgb(0xff, 0x5c, 0x5c),
            (Status::Error, false) => Color32::from_rgb(0xc6, 0x28, 0x28),
            (Status::Completed, true) => Color32::from_rgb(0x5c, 0xd6, 0x7a),
            (Status::Completed, false) => Color32::from_rgb(0x1b, 0x8a, 0x3c),
            (Status::Started, true) => Color32::from_rgb(0x6c, 0xb4, 0xff),
            (Status::Started, false) => Color32::from_rgb(0x1e, 0x63, 0xc8),
            (Status::Other, _) => self.weak_text(),
        }
    }

    /// The icon in the status column.
    #[must_use]
    pub fn status_icon(status: Status) -> &'static str {
        match status {
            Status::Error => "✖",
            Status::Completed => "✔",
            Status::Started => "▶",
            Status::Other => "·",
        }
    }

    #[must_use]
    pub fn good(self) -> Color32 {
        self.status_color(Status::Completed)
    }

    #[must_use]
    pub fn warn(self) -> Color32 {
        if self.dark() {
            Color32::from_rgb(0xff, 0xc1, 0x4d)
        } else {
            Color32::from_rgb(0xb2, 0x6a, 0x00)
        }
    }

    #[must_use]
    pub fn bad(self) -> Color32 {
        self.status_color(Status::Error)
    }

    #[must_use]
    /// Lines drawn over coloured areas (a chart's envelope): the text colour, a little muted.
    pub fn overlay_line(self) -> Color32 {
        if self.dark() {
            Color32::from_gray(200)
        } else {
            Color32::from_gray(60)
        }
    }

    #[must_use]
    pub fn weak_text(self) -> Color32 {
        if self.dark() {
            Color32::from_gray(140)
        } else {
            Color32::from_gray(110)
        }
    }

    /// Background of the separator row drawn where the source lost its connection.
    #[must_use]
    pub fn gap_fill(self) -> Color32 {
        self.warn().gamma_multiply(0.18)
    }

    #[must_use]
    pub fn card_fill(self) -> Color32 {
        if self.dark() {
            Color32::from_gray(32)
        } else {
            Color32::from_gray(242)
        }
    }
}

/// A small filled circle (connection states): drawn, so it does not depend on a font's glyphs.
pub fn dot(ui: &mut egui::Ui, color: Color32) -> egui::Response {
    let (rect, response) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
    ui.painter().circle_filled(rect.center(), 4.5, color);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_colours_are_stable_and_differ() {
        let t = Theme::new(ThemeChoice::Dark);
        assert_eq!(t.domain_color("agent"), t.domain_color("agent"));
        let distinct: std::collections::HashSet<_> = ["agent", "llm", "fireflies", "theboard"]
            .iter()
            .map(|d| t.domain_color(d))
            .collect();
        assert!(distinct.len() >= 3);
    }
}
