//! Running aggregates over everything ingested since start (not only what the ring still
//! holds): totals, per-second rates per domain, latency and size distributions. The charts read
//! these; they cost a few array updates per event.

use hdrhistogram::Histogram;
use rustc_hash::FxHashMap;

use super::event::Status;
use super::intern::Sym;
use super::time::{MICROS_PER_SEC, Micros};

/// How many seconds of per-second rates are kept.
pub const RATE_WINDOW_SECS: usize = 3600;

/// What the Health view needs to know about one source, kept since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceStats {
    pub events: u64,
    pub errors: u64,
    pub last_received_us: Micros,
    /// Events in the current and the previous whole minute (for a rate without a series).
    minute: i64,
    this_minute: u32,
    last_minute: u32,
}

impl SourceStats {
    fn add(&mut self, received_us: Micros, error: bool) {
        self.events += 1;
        self.errors += u64::from(error);
        self.last_received_us = self.last_received_us.max(received_us);
        let minute = received_us.div_euclid(60 * MICROS_PER_SEC);
        if minute > self.minute {
            self.last_minute = if minute == self.minute + 1 {
                self.this_minute
            } else {
                0
            };
            self.this_minute = 0;
            self.minute = minute;
        }
        if minute == self.minute {
            self.this_minute = self.this_minute.saturating_add(1);
        }
    }

    /// Adds another source's figures (a service that publishes under several source names).
    pub fn merge(&mut self, o: &SourceStats) {
        self.events += o.events;
        self.errors += o.errors;
        self.last_received_us = self.last_received_us.max(o.last_received_us);
        if o.minute > self.minute {
            self.last_minute = if o.minute == self.minute + 1 {
                self.this_minute
            } else {
                0
            };
            self.this_minute = 0;
            self.minute = o.minute;
        }
        if o.minute == self.minute {
            self.this_minute = self.this_minute.saturating_add(o.this_minute);
            self.last_minute = self.last_minute.saturating_add(o.last_minute);
        } else if o.minute + 1 == self.minute {
            self.last_minute = self.last_minute.saturating_add(o.this_minute);
        }
    }

    /// Events per minute: the last whole minute, or the current one if it already has more.
    #[must_use]
    pub fn per_minute(&self, now_us: Micros) -> u32 {
        let now_minute = now_us.div_euclid(60 * MICROS_PER_SEC);
        match now_minute - self.minute {
            0 => self.last_minute.max(self.this_minute),
            1 => self.this_minute,
            _ => 0,
        }
    }

    #[must_use]
    pub fn error_share(&self) -> f64 {
        if self.events == 0 {
            0.0
        } else {
            self.errors as f64 / self.events as f64
        }
    }
}

/// Per-second counts for the last [`RATE_WINDOW_SECS`] seconds.
#[derive(Clone)]
pub struct RateSeries {
    counts: Box<[u32]>,
    /// The second (since the epoch) of the newest bucket written.
    newest_sec: i64,
}

impl Default for RateSeries {
    fn default() -> Self {
        Self {
            counts: vec![0; RATE_WINDOW_SECS].into_boxed_slice(),
            newest_sec: i64::MIN,
        }
    }
}

impl RateSeries {
    fn add(&mut self, sec: i64) {
        if self.newest_sec == i64::MIN {
            self.newest_sec = sec;
        }
        if sec > self.newest_sec {
            let gap = (sec - self.newest_sec).min(RATE_WINDOW_SECS as i64);
            for s in 1..=gap {
                let idx = (self.newest_sec + s).rem_euclid(RATE_WINDOW_SECS as i64) as usize;
                self.counts[idx] = 0;
            }
            self.newest_sec = sec;
        } else if self.newest_sec - sec >= RATE_WINDOW_SECS as i64 {
            return; // older than the window
        }
        let idx = sec.rem_euclid(RATE_WINDOW_SECS as i64) as usize;
        self.counts[idx] = self.counts[idx].saturating_add(1);
    }

    /// Count in the second `sec` (0 outside the window).
    #[must_use]
    pub fn at(&self, sec: i64) -> u32 {
        if self.newest_sec == i64::MIN
            || sec > self.newest_sec
            || self.newest_sec - sec >= RATE_WINDOW_SECS as i64
        {
            return 0;
        }
        self.counts[sec.rem_euclid(RATE_WINDOW_SECS as i64) as usize]
    }

    /// Counts for the `n` seconds ending at `end_sec` (inclusive), oldest first.
    #[must_use]
    pub fn window(&self, end_sec: i64, n: usize) -> Vec<u32> {
        (0..n as i64)
            .rev()
            .map(|back| self.at(end_sec - back))
            .collect()
    }

    /// Mean rate over the `n` whole seconds before `now_sec`.
    #[must_use]
    pub fn mean_per_sec(&self, now_sec: i64, n: usize) -> f64 {
        let n = n.clamp(1, RATE_WINDOW_SECS);
        let sum: u64 = (1..=n as i64)
            .map(|back| u64::from(self.at(now_sec - back)))
            .sum();
        sum as f64 / n as f64
    }
}

/// Seconds of recent per-second counts a [`FlowStats`] keeps (its live rate's window).
pub const FLOW_RECENT_SECS: usize = 16;

/// One source publishing one event type: what the Flow view draws on an edge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub events: u64,
    pub errors: u64,
    pub last_received_us: Micros,
    counts: [u32; FLOW_RECENT_SECS],
    error_counts: [u32; FLOW_RECENT_SECS],
    newest_sec: i64,
}

impl FlowStats {
    fn add(&mut self, received_us: Micros, error: bool) {
        self.events += 1;
        self.errors += u64::from(error);
        self.last_received_us = self.last_received_us.max(received_us);
        let sec = received_us.div_euclid(MICROS_PER_SEC);
        if self.events == 1 {
            self.newest_sec = sec;
        }
        if sec > self.newest_sec {
            let gap = (sec - self.newest_sec).min(FLOW_RECENT_SECS as i64);
            for s in 1..=gap {
                let i = (self.newest_sec + s).rem_euclid(FLOW_RECENT_SECS as i64) as usize;
                self.counts[i] = 0;
                self.error_counts[i] = 0;
            }
            self.newest_sec = sec;
        } else if self.newest_sec - sec >= FLOW_RECENT_SECS as i64 {
            return;
        }
        let i = sec.rem_euclid(FLOW_RECENT_SECS as i64) as usize;
        self.counts[i] = self.counts[i].saturating_add(1);
        self.error_counts[i] = self.error_counts[i].saturating_add(u32::from(error));
    }

    /// Events per second and the error share over the `n` whole seconds before `now_us`
    /// (`n` ≤ [`FLOW_RECENT_SECS`] − 1).
    #[must_use]
    pub fn recent(&self, now_us: Micros, n: usize) -> (f64, f64) {
        let n = n.clamp(1, FLOW_RECENT_SECS - 1) as i64;
        let now_sec = now_us.div_euclid(MICROS_PER_SEC);
        let (mut events, mut errors) = (0_u64, 0_u64);
        for back in 1..=n {
            let sec = now_sec - back;
            if self.events == 0
                || sec > self.newest_sec
                || self.newest_sec - sec >= FLOW_RECENT_SECS as i64
            {
                continue;
            }
            let i = sec.rem_euclid(FLOW_RECENT_SECS as i64) as usize;
            events += u64::from(self.counts[i]);
            errors += u64::from(self.error_counts[i]);
        }
        let share = if events == 0 {
            0.0
        } else {
            errors as f64 / events as f64
        };
        (events as f64 / n as f64, share)
    }
}

pub struct Aggregates {
    pub total: u64,
    pub errors: u64,
    pub bytes: u64,
    pub by_status: [u64; 4],
    /// All events, per second of receive time.
    pub rate: RateSeries,
    pub error_rate: RateSeries,
    pub rate_by_domain: FxHashMap<Sym, RateSeries>,
    /// Receive time minus publish time, in microseconds (events that carry a publish time).
    pub latency_us: Histogram<u64>,
    pub size_bytes: Histogram<u64>,
    /// Per source (the envelope's `source.app` / producer): counts, errors, last seen.
    pub by_source: FxHashMap<Sym, SourceStats>,
    /// Per (source, event type): who was seen publishing what, and how fast lately.
    pub by_flow: FxHashMap<(Sym, Sym), FlowStats>,
    pub first_received_us: Option<Micros>,
    pub last_received_us: Option<Micros>,
}

impl Default for Aggregates {
    fn default() -> Self {
        Self {
            total: 0,
            errors: 0,
            bytes: 0,
            by_status: [0; 4],
            rate: RateSeries::default(),
            error_rate: RateSeries::default(),
            rate_by_domain: FxHashMap::default(),
            // 1 µs .. 1 day, 2 significant digits; sizes 1 B .. 4 GiB.
            latency_us: Histogram::new_with_bounds(1, 86_400 * MICROS_PER_SEC as u64, 2)
                .expect("valid bounds"),
            size_bytes: Histogram::new_with_bounds(1, u64::from(u32::MAX), 2)
                .expect("valid bounds"),
            by_source: FxHashMap::default(),
            by_flow: FxHashMap::default(),
            first_received_us: None,
            last_received_us: None,
        }
    }
}

impl Aggregates {
    #[allow(clippy::too_many_arguments)] // one call site: the store's insert
    pub fn record(
        &mut self,
        received_us: Micros,
        published_us: Option<Micros>,
        domain: Sym,
        source: Sym,
        kind: Sym,
        status: Status,
        size_bytes: u64,
    ) {
        let error = status == Status::Error;
        self.by_source
            .entry(source)
            .or_default()
            .add(received_us, error);
        self.by_flow
            .entry((source, kind))
            .or_default()
            .add(received_us, error);
        self.total += 1;
        self.bytes += size_bytes;
        self.by_status[status as usize] += 1;
        let sec = received_us.div_euclid(MICROS_PER_SEC);
        self.rate.add(sec);
        if status == Status::Error {
            self.errors += 1;
            self.error_rate.add(sec);
        }
        self.rate_by_domain.entry(domain).or_default().add(sec);
        if let Some(p) = published_us {
            // Clock skew can make this negative; those are counted as 1 µs.
            let lat = (received_us - p).max(1) as u64;
            self.latency_us.saturating_record(lat);
        }
        self.size_bytes.saturating_record(size_bytes.max(1));
        self.first_received_us.get_or_insert(received_us);
        self.last_received_us = Some(received_us);
    }

    /// Share of events classified as errors since start.
    #[must_use]
    pub fn error_share(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.errors as f64 / self.total as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_stats_count_errors_and_recent_minutes() {
        let mut st = SourceStats::default();
        let t0 = 1_767_225_600 * MICROS_PER_SEC; // a whole minute
        for i in 0..30 {
            st.add(t0 + i * MICROS_PER_SEC, i % 10 == 0);
        }
        assert_eq!((st.events, st.errors), (30, 3));
        assert_eq!(st.per_minute(t0 + 40 * MICROS_PER_SEC), 30);
        st.add(t0 + 61 * MICROS_PER_SEC, false);
        assert_eq!(
            st.per_minute(t0 + 62 * MICROS_PER_SEC),
            30,
            "the last whole minute"
        );
        assert_eq!(
            st.per_minute(t0 + 10 * 60 * MICROS_PER_SEC),
            0,
            "quiet since"
        );
        assert_eq!(st.last_received_us, t0 + 61 * MICROS_PER_SEC);
        let mut sum = SourceStats::default();
        sum.merge(&st);
        sum.merge(&st);
        assert_eq!((sum.events, sum.errors), (62, 6));
        assert_eq!(sum.per_minute(t0 + 62 * MICROS_PER_SEC), 60);
    }

    #[test]
    fn rates_per_second_and_window() {
        let mut a = Aggregates::default();
        let base = 1_767_225_600 * MICROS_PER_SEC;
        for i in 0..10 {
            a.record(
                base + i * 100_000,
                None,
                Sym(5),
                Sym(7),
                Sym(9),
                Status::Other,
                300,
            ); // 10 in second 0
        }
        for i in 0..3 {
            a.record(
                base + MICROS_PER_SEC * 2 + i,
                Some(base),
                Sym(6),
                Sym(8),
                Sym(9),
                Status::Error,
                10,
            );
        }
        let s0 = base / MICROS_PER_SEC;
        assert_eq!(a.rate.window(s0 + 2, 3), vec![10, 0, 3]);
        assert_eq!(a.rate_by_domain[&Sym(6)].at(s0 + 2), 3);
        assert_eq!(a.error_rate.at(s0 + 2), 3);
        assert_eq!(a.total, 13);
        assert!((a.error_share() - 3.0 / 13.0).abs() < 1e-9);
        assert!((a.rate.mean_per_sec(s0 + 3, 3) - 13.0 / 3.0).abs() < 1e-9);
        assert_eq!(a.latency_us.len(), 3);
        // The window rolls: an hour later the old seconds read zero.
        a.record(
            base + 3600 * MICROS_PER_SEC + 5 * MICROS_PER_SEC,
            None,
            Sym(5),
            Sym(7),
            Sym(9),
            Status::Other,
            1,
        );
        assert_eq!(a.by_source[&Sym(8)].errors, 3);
        assert_eq!(a.rate.at(s0), 0);
    }
}
