//! Service health: the latest answer of each service's health endpoint, and the rules that turn
//! what the bus and the endpoint say into one state per service (the Health view, the tray,
//! Mission Control).
//!
//! Rules, in order:
//! - planned in the registry → "planned";
//! - its health endpoint is polled and did not answer 2xx in time → failing;
//! - never seen on the bus: endpoint answered 2xx → healthy, else "no events yet";
//! - error share ≥ 20 % or silent for 30 min → failing;
//! - error share ≥ 5 % or silent for 5 min → degraded;
//! - otherwise healthy.

use rustc_hash::FxHashMap;

use crate::aggregates::SourceStats;
use crate::registry::Registry;
use crate::time::{MICROS_PER_SEC, Micros};

/// The latest answer of one service's health endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The HTTP status, when one came back.
    pub status: Option<u16>,
    /// Why there is no (good) answer: a timeout, a refused connection, a bad status.
    pub error: Option<String>,
    pub latency_ms: u32,
    pub at_us: Micros,
}

impl Probe {
    /// 2xx within the time limit.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    /// "200 · 12 ms", "500 · 3 ms", "timeout after 3 s", "connection refused".
    #[must_use]
    pub fn words(&self) -> String {
        match (&self.error, self.status) {
            (_, Some(s)) => format!("{s} · {} ms", self.latency_ms),
            (Some(e), None) => e.clone(),
            (None, None) => "?".into(),
        }
    }
}

/// The latest answer per service key.
#[derive(Clone, Debug, Default)]
pub struct Probes(pub FxHashMap<String, Probe>);

impl Probes {
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Probe> {
        self.0.get(key)
    }
}

/// Service key → health URL, from the registry.
#[must_use]
pub fn targets(registry: &Registry) -> Vec<(String, String)> {
    registry
        .services
        .iter()
        .filter_map(|(k, s)| Some((k.clone(), s.endpoints.get("health")?.clone())))
        .collect()
}

const AMBER_SILENCE_US: Micros = 5 * 60 * MICROS_PER_SEC;
const RED_SILENCE_US: Micros = 30 * 60 * MICROS_PER_SEC;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Planned,
    Unseen,
    Good,
    Warn,
    Bad,
}

impl Health {
    #[must_use]
    pub fn of(
        planned: bool,
        probe: Option<&Probe>,
        stats: Option<&SourceStats>,
        now_us: Micros,
    ) -> Self {
        if planned {
            return Self::Planned;
        }
        if probe.is_some_and(|p| !p.ok()) {
            return Self::Bad;
        }
        let Some(s) = stats.filter(|s| s.events > 0) else {
            return if probe.is_some() {
                Self::Good
            } else {
                Self::Unseen
            };
        };
        let silent = now_us - s.last_received_us;
        let errors = s.error_share();
        if errors >= 0.20 || silent >= RED_SILENCE_US {
            Self::Bad
        } else if errors >= 0.05 || silent >= AMBER_SILENCE_US {
            Self::Warn
        } else {
            Self::Good
        }
    }

    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Unseen => "no events yet",
            Self::Good => "healthy",
            Self::Warn => "degraded",
            Self::Bad => "failing",
        }
    }
}
