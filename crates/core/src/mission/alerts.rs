//! What Mission Control tells a person outside the window (desktop notifications): a critical
//! escalation, a gate past its SLA, a project turning blocked, a service failing — each once
//! while it lasts (again if it comes back), switched on per kind, held through quiet hours, and
//! never a flood: what turns up within [`COALESCE_US`] is said in one notification.

use std::collections::BTreeSet;

use super::PortfolioCard;
use super::rules::{Health, RiskKind, Risks};
use crate::time::Micros;

/// Alerts that turn up within this long of the first one waiting are said together.
pub const COALESCE_US: Micros = 10_000_000;
/// At most this many alerts are named in one notification (the rest are counted).
const NAMED: usize = 5;

/// What an alert is about (the per-kind switch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertKind {
    Escalation,
    Gate,
    Blocked,
    Service,
}

impl AlertKind {
    pub const ALL: [Self; 4] = [Self::Escalation, Self::Gate, Self::Blocked, Self::Service];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Escalation => "escalation",
            Self::Gate => "gate",
            Self::Blocked => "blocked",
            Self::Service => "service",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One thing to tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// Stays the same while the condition lasts (an escalation's id, a project's key…).
    pub key: String,
    pub kind: AlertKind,
    pub text: String,
}

/// The alerts at `now_us`: open critical escalations, overdue gates, blocked projects, and the
/// `failing` services (name, why) Health found.
#[must_use]
pub fn alerts(risks: &Risks, cards: &[PortfolioCard], failing: &[(String, String)]) -> Vec<Alert> {
    let mut out = Vec::new();
    for r in &risks.items {
        match r.kind {
            RiskKind::Escalation if r.severity == "critical" => out.push(Alert {
                key: format!(
                    "escalation:{}",
                    r.at.as_ref()
                        .and_then(|a| a.id.clone())
                        .unwrap_or_else(|| r.title.clone())
                ),
                kind: AlertKind::Escalation,
                text: format!("Critical escalation — {}: {}", r.project_name, r.title),
            }),
            RiskKind::Gate if r.overdue => out.push(Alert {
                key: format!("gate:{}", r.title),
                kind: AlertKind::Gate,
                text: format!("{}: {} is past its SLA", r.project_name, r.title),
            }),
            _ => {}
        }
    }
    for c in cards.iter().filter(|c| c.health == Health::Blocked) {
        out.push(Alert {
            key: format!("blocked:{}", c.key),
            kind: AlertKind::Blocked,
            text: format!("{} is blocked: {}", c.name, c.health_reason),
        });
    }
    for (name, why) in failing {
        out.push(Alert {
            key: format!("service:{name}"),
            kind: AlertKind::Service,
            text: format!("{name} is failing: {why}"),
        });
    }
    out
}

/// A notification to show: its summary line and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub summary: String,
    pub body: String,
}

/// Decides what to say and when: each alert once while it lasts, the switched-off kinds never,
/// nothing during quiet hours (held, then said together), a burst said in one notification.
#[derive(Debug, Default)]
pub struct AlertGate {
    /// Alerts current at the last step (said or waiting).
    known: BTreeSet<String>,
    waiting: Vec<Alert>,
    waiting_since: Option<Micros>,
}

impl AlertGate {
    /// Takes the alerts current at `now_us`; a notification when one is due.
    pub fn step(
        &mut self,
        current: Vec<Alert>,
        now_us: Micros,
        quiet: bool,
        kinds: &[AlertKind],
    ) -> Option<Notice> {
        let current: Vec<Alert> = current
            .into_iter()
            .filter(|a| kinds.contains(&a.kind))
            .collect();
        let keys: BTreeSet<String> = current.iter().map(|a| a.key.clone()).collect();
        // Gone: forgotten (if it comes back it is said again), and no longer waiting.
        self.known.retain(|k| keys.contains(k));
        self.waiting.retain(|a| keys.contains(&a.key));
        for a in current {
            if self.known.insert(a.key.clone()) {
                self.waiting_since.get_or_insert(now_us);
                self.waiting.push(a);
            }
        }
        if self.waiting.is_empty() {
            self.waiting_since = None;
            return None;
        }
        let since = self.waiting_since.unwrap_or(now_us);
        if quiet || now_us - since < COALESCE_US {
            return None;
        }
        self.waiting_since = None;
        let said = std::mem::take(&mut self.waiting);
        Some(match said.as_slice() {
            [one] => Notice {
                summary: "candybar: Mission Control".into(),
                body: one.text.clone(),
            },
            many => {
                let mut body: Vec<String> = many
                    .iter()
                    .take(NAMED)
                    .map(|a| format!("• {}", a.text))
                    .collect();
                if many.len() > NAMED {
                    body.push(format!("and {} more", many.len() - NAMED));
                }
                Notice {
                    summary: format!("candybar: {} things need attention", many.len()),
                    body: body.join("\n"),
                }
            }
        })
    }
}

/// Whether `minute_of_day` (local) falls in the quiet hours `from`–`to` (minutes of the day;
/// a range that passes midnight, 22:00–07:00, works).
#[must_use]
pub fn in_quiet_hours(minute_of_day: u32, from: u32, to: u32) -> bool {
    if from <= to {
        (from..to).contains(&minute_of_day)
    } else {
        minute_of_day >= from || minute_of_day < to
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(key: &str, kind: AlertKind) -> Alert {
        Alert {
            key: key.into(),
            kind,
            text: format!("{key} happened"),
        }
    }

    const S: Micros = 1_000_000;

    #[test]
    #[allow(clippy::many_single_char_names)] // alerts a, b, c as the comments name them
    fn a_burst_is_said_once_and_an_alert_only_while_it_lasts() {
        let mut g = AlertGate::default();
        let all = &AlertKind::ALL;
        let a = alert("a", AlertKind::Escalation);
        let b = alert("b", AlertKind::Gate);
        // Two at once: held for the coalescing window, then said together.
        assert_eq!(g.step(vec![a.clone(), b.clone()], 0, false, all), None);
        assert_eq!(g.step(vec![a.clone(), b.clone()], 5 * S, false, all), None);
        let n = g
            .step(vec![a.clone(), b.clone()], 10 * S, false, all)
            .expect("said");
        assert_eq!(n.summary, "candybar: 2 things need attention");
        assert_eq!(n.body, "• a happened\n• b happened");
        // Still there: not said again.
        assert_eq!(g.step(vec![a.clone(), b.clone()], 30 * S, false, all), None);
        // b resolved, then came back: said again, alone.
        assert_eq!(g.step(vec![a.clone()], 40 * S, false, all), None);
        assert_eq!(g.step(vec![a.clone(), b.clone()], 50 * S, false, all), None);
        let n = g
            .step(vec![a.clone(), b.clone()], 61 * S, false, all)
            .expect("said");
        assert_eq!(n.body, "b happened");
        // One that resolves before it is said is never said.
        let c = alert("c", AlertKind::Blocked);
        assert_eq!(g.step(vec![a.clone(), c], 70 * S, false, all), None);
        assert_eq!(g.step(vec![a.clone()], 90 * S, false, all), None);
    }

    #[test]
    fn quiet_hours_hold_alerts_and_switched_off_kinds_are_never_said() {
        let mut g = AlertGate::default();
        let only_gates = [AlertKind::Gate];
        let a = alert("a", AlertKind::Escalation);
        let b = alert("b", AlertKind::Gate);
        assert_eq!(
            g.step(vec![a.clone(), b.clone()], 0, true, &only_gates),
            None
        );
        assert_eq!(
            g.step(vec![a.clone(), b.clone()], 3600 * S, true, &only_gates),
            None
        );
        // Quiet hours over: what waited is said (and only the kind switched on).
        let n = g
            .step(vec![a, b], 7200 * S, false, &only_gates)
            .expect("said");
        assert_eq!(n.body, "b happened");
        // A flood is counted, not listed.
        let many: Vec<Alert> = (0..9)
            .map(|i| alert(&format!("g{i}"), AlertKind::Gate))
            .collect();
        assert_eq!(g.step(many.clone(), 8000 * S, false, &only_gates), None);
        let n = g.step(many, 8010 * S, false, &only_gates).expect("said");
        assert_eq!(n.summary, "candybar: 9 things need attention");
        assert!(n.body.ends_with("and 4 more"), "{}", n.body);
        assert!(in_quiet_hours(23 * 60, 22 * 60, 7 * 60));
        assert!(in_quiet_hours(60, 22 * 60, 7 * 60));
        assert!(!in_quiet_hours(12 * 60, 22 * 60, 7 * 60));
        assert!(in_quiet_hours(13 * 60, 12 * 60, 14 * 60));
    }
}
