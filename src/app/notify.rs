//! Desktop notifications (the freedesktop notification service on the session bus, through
//! notify-rust): Mission Control's alerts as [`AlertGate`] lets them through, and finished
//! briefings. Shown from a thread of their own (a D-Bus call may wait); a desktop without a
//! notification service is said once in the window, then left alone.

use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};

use candybar_core::mission::alerts::{Alert, AlertGate, AlertKind, Notice, in_quiet_hours};
use candybar_core::time::Micros;

/// What the window says in notifications, and when it keeps quiet.
#[derive(Clone, Debug, Default)]
pub struct NotifyPlan {
    pub kinds: Vec<AlertKind>,
    /// Local minutes of the day: (from, to).
    pub quiet: Option<(u32, u32)>,
}

pub struct Notifier {
    plan: NotifyPlan,
    gate: AlertGate,
    tx: SyncSender<Notice>,
    /// Why notifications cannot be shown (said once).
    failed: Receiver<String>,
    said_failure: bool,
}

impl Notifier {
    /// Starts the thread that shows notifications.
    pub fn start(plan: NotifyPlan) -> Option<Self> {
        let (tx, rx) = sync_channel::<Notice>(8);
        let (fail_tx, failed) = sync_channel(1);
        std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || {
                while let Ok(n) = rx.recv() {
                    let shown = notify_rust::Notification::new()
                        .appname("candybar")
                        .summary(&n.summary)
                        .body(&n.body)
                        .show();
                    match shown {
                        Ok(_) => tracing::info!("notified: {}", n.summary),
                        Err(e) => {
                            tracing::warn!("cannot show a desktop notification: {e}");
                            let _ = fail_tx.try_send(e.to_string());
                        }
                    }
                }
            })
            .ok()?;
        Some(Self {
            plan,
            gate: AlertGate::default(),
            tx,
            failed,
            said_failure: false,
        })
    }

    /// Takes the alerts current at `now_us`; shows a notification when one is due.
    pub fn step(&mut self, alerts: Vec<Alert>, now_us: Micros) {
        let quiet = self.plan.quiet.is_some_and(|(from, to)| {
            use chrono::{Local, TimeZone as _, Timelike as _};
            Local
                .timestamp_micros(now_us)
                .single()
                .is_some_and(|t| in_quiet_hours(t.hour() * 60 + t.minute(), from, to))
        });
        if let Some(n) = self.gate.step(alerts, now_us, quiet, &self.plan.kinds) {
            let _ = self.tx.try_send(n);
        }
    }

    /// Says a finished briefing (not held by quiet hours' alerts rule: it was asked for).
    pub fn say(&self, summary: &str, body: &str) {
        let _ = self.tx.try_send(Notice {
            summary: summary.to_owned(),
            body: body.to_owned(),
        });
    }

    /// Why notifications could not be shown, the first time.
    pub fn failure(&mut self) -> Option<String> {
        match self.failed.try_recv() {
            Ok(e) if !self.said_failure => {
                self.said_failure = true;
                Some(e)
            }
            Ok(_) | Err(TryRecvError::Empty | TryRecvError::Disconnected) => None,
        }
    }
}
