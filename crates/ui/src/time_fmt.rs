//! Times as the user reads them: local time by default (like Wireshark), UTC on request.

use candybar_core::time::Micros;
use chrono::{DateTime, Local, Utc};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum TimeZoneChoice {
    #[default]
    Local,
    Utc,
}

impl TimeZoneChoice {
    /// "14:03:07.125".
    #[must_use]
    pub fn clock(self, us: Micros) -> String {
        self.format(us, "%H:%M:%S%.3f")
    }

    /// "11-22 14:03:07.125", where rows span days.
    #[must_use]
    pub fn day_clock(self, us: Micros) -> String {
        self.format(us, "%m-%d %H:%M:%S%.3f")
    }

    /// Whether `a` and `b` fall on different days here.
    #[must_use]
    pub fn different_days(self, a: Micros, b: Micros) -> bool {
        self.format(a, "%F") != self.format(b, "%F")
    }

    /// "2026-11-22 14:03", for things people did (transcripts).
    #[must_use]
    pub fn minute(self, us: Micros) -> String {
        self.format(us, "%Y-%m-%d %H:%M")
    }

    /// "2026-11-22 14:03:07", a moment on the timeline.
    #[must_use]
    pub fn minute_second(self, us: Micros) -> String {
        self.format(us, "%Y-%m-%d %H:%M:%S")
    }

    /// "2026-11-22 14:03:07.125431 +01:00".
    #[must_use]
    pub fn full(self, us: Micros) -> String {
        self.format(us, "%Y-%m-%d %H:%M:%S%.6f %:z")
    }

    fn format(self, us: Micros, fmt: &str) -> String {
        let Some(t) = DateTime::<Utc>::from_timestamp_micros(us) else {
            return us.to_string();
        };
        match self {
            Self::Utc => t.format(fmt).to_string(),
            Self::Local => t.with_timezone(&Local).format(fmt).to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_clock_and_full() {
        let us = 1_767_225_600_123_456; // 2026-01-01T00:00:00.123456Z
        assert_eq!(TimeZoneChoice::Utc.clock(us), "00:00:00.123");
        assert_eq!(
            TimeZoneChoice::Utc.full(us),
            "2026-01-01 00:00:00.123456 +00:00"
        );
        assert_eq!(TimeZoneChoice::Utc.clock(i64::MAX), i64::MAX.to_string());
        assert_eq!(TimeZoneChoice::Utc.day_clock(us), "01-01 00:00:00.123");
        let utc = TimeZoneChoice::Utc;
        assert!(utc.different_days(us - 1_000_000, us));
        assert!(!utc.different_days(us, us + 3_600_000_000));
    }
}
