//! Running aggregates over everything ingested since start (not only what the ring still
//! holds): totals, per-second rates per domain, latency and size distributions. The charts read
//! these; they cost a few array updates per event.

use hdrhistogram::Histogram;
use rustc_hash::FxHashMap;

use super::event::Status;
use super::intern::Sym;
use super::time::{MICROS_PER_SEC, Micros};

/// How many seconds of per-second rates are kept: a day, so the Charts' longest window still has
/// one-second resolution (about 340 KiB per series).
pub const RATE_WINDOW_SECS: usize = 86_400;

/// Domains that get a rate series of their own; later ones share [`Aggregates::rate_other_domains`],
/// so a platform that invents a domain per event type cannot grow memory without bound.
pub const MAX_DOMAIN_SERIES: usize = 32;

/// One column of a downsampled series: the seconds it covers, their sum, least and most.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Column {
    pub secs: u32,
    pub sum: u64,
    pub min: u32,
    pub max: u32,
}

impl Column {
    /// Mean events per second over the column.
    #[must_use]
    pub fn mean(&self) -> f64 {
        if self.secs == 0 {
            0.0
        } else {
            self.sum as f64 / f64::from(self.secs)
        }
    }
}

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
    pub(crate) fn add(&mut self, received_us: Micros, error: bool) {
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

    /// The `secs` seconds from `from_sec` on as one [`Column`]: their sum, least and most.
    #[must_use]
    pub fn column(&self, from_sec: i64, secs: usize) -> Column {
        let ring = RATE_WINDOW_SECS as i64;
        // Seconds in [valid_from, valid_to] hold data; the rest read 0.
        let (valid_from, valid_to) = if self.newest_sec == i64::MIN {
            (i64::MAX, i64::MIN)
        } else {
            (self.newest_sec - ring + 1, self.newest_sec)
        };
        let mut col = Column {
            secs: 0,
            sum: 0,
            min: u32::MAX,
            max: 0,
        };
        let mut idx = from_sec.rem_euclid(ring) as usize;
        for sec in from_sec..from_sec + secs as i64 {
            let v = if sec >= valid_from && sec <= valid_to {
                self.counts[idx]
            } else {
                0
            };
            col.secs += 1;
            col.sum += u64::from(v);
            col.min = col.min.min(v);
            col.max = col.max.max(v);
            idx += 1;
            if idx == RATE_WINDOW_SECS {
                idx = 0;
            }
        }
        if col.secs == 0 {
            col.min = 0;
        }
        col
    }

    /// The `window_secs` seconds ending at `end_sec` (inclusive) split into `cols` columns of
    /// (nearly) equal width, oldest first.
    pub fn columns(&self, end_sec: i64, window_secs: usize, cols: usize, out: &mut Vec<Column>) {
        out.clear();
        let window = window_secs.clamp(1, RATE_WINDOW_SECS);
        let cols = cols.clamp(1, window);
        let start = end_sec - window as i64 + 1;
        let mut from = start;
        for c in 0..cols {
            let until = start + ((c + 1) * window / cols) as i64;
            out.push(self.column(from, (until - from) as usize));
            from = until;
        }
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

/// A [`RateSeries`] over a sliding window, downsampled into columns of `secs_per_column`
/// seconds whose edges sit on multiples of that width in absolute time, so that as time passes
/// the finished columns stay as they are: a second later only the first (clipped) and the last
/// (growing) column are read again, not the whole day. What a long chart redraws from.
#[derive(Clone, Debug)]
pub struct Downsampled {
    secs_per_column: i64,
    /// Absolute index (second / width) of `columns[0]`.
    first: i64,
    columns: std::collections::VecDeque<Column>,
    /// Columns with an index below this are final.
    done: i64,
}

impl Downsampled {
    #[must_use]
    pub fn new(secs_per_column: usize) -> Self {
        Self {
            secs_per_column: secs_per_column.max(1) as i64,
            first: 0,
            columns: std::collections::VecDeque::new(),
            done: i64::MIN,
        }
    }

    /// Brings the columns up to the window `[start_sec, end_sec]`. The first and last columns
    /// are clipped to the window (their `secs` say how many seconds they hold).
    pub fn update(&mut self, series: &RateSeries, start_sec: i64, end_sec: i64) {
        let w = self.secs_per_column;
        let end_sec = end_sec.max(start_sec);
        let first = start_sec.div_euclid(w);
        let last = end_sec.div_euclid(w);
        let cached_end = self.first + self.columns.len() as i64;
        if self.columns.is_empty() || first < self.first || first >= cached_end {
            self.columns.clear();
            self.first = first;
            self.done = first;
        }
        while self.first < first {
            self.columns.pop_front();
            self.first += 1;
        }
        // The first column moved with the window's start: read it again, and every column from
        // the first unfinished one on.
        let from = self.done.max(first + 1).min(last + 1);
        self.columns.truncate((from - self.first) as usize);
        let clipped = |k: i64| {
            let a = (k * w).max(start_sec);
            let b = ((k + 1) * w).min(end_sec + 1);
            series.column(a, (b - a).max(0) as usize)
        };
        if let Some(c) = self.columns.front_mut() {
            *c = clipped(first);
        } else {
            self.columns.push_back(clipped(first));
        }
        for k in from.max(first + 1)..=last {
            self.columns.push_back(clipped(k));
        }
        self.done = last;
    }

    /// The columns, oldest first, each with the second it starts at.
    pub fn columns(&self) -> impl Iterator<Item = (i64, &Column)> {
        let w = self.secs_per_column;
        let first = self.first;
        self.columns.iter().enumerate().map(move |(i, c)| {
            let k = first + i as i64;
            // A clipped first column starts where the window does: it ends on the boundary.
            let start = if i == 0 {
                (k + 1) * w - i64::from(c.secs)
            } else {
                k * w
            };
            (start, c)
        })
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
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
    /// The first [`MAX_DOMAIN_SERIES`] domains seen, each with its own series.
    pub rate_by_domain: FxHashMap<Sym, RateSeries>,
    /// Every domain past those, together.
    pub rate_other_domains: RateSeries,
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
            rate_other_domains: RateSeries::default(),
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
        if let Some(series) = self.rate_by_domain.get_mut(&domain) {
            series.add(sec);
        } else if self.rate_by_domain.len() < MAX_DOMAIN_SERIES {
            self.rate_by_domain.entry(domain).or_default().add(sec);
        } else {
            self.rate_other_domains.add(sec);
        }
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
        // The window rolls: a day later the old seconds read zero.
        a.record(
            base + RATE_WINDOW_SECS as i64 * MICROS_PER_SEC + 5 * MICROS_PER_SEC,
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

    #[test]
    fn columns_keep_sums_and_spikes() {
        let mut r = RateSeries::default();
        let s0 = 1_767_225_600_i64;
        // A day of 2/s with one spike of 500 in one second.
        for s in 0..RATE_WINDOW_SECS as i64 {
            r.add(s0 + s);
            r.add(s0 + s);
        }
        let spike = s0 + 40_000;
        for _ in 0..498 {
            r.add(spike);
        }
        let end = s0 + RATE_WINDOW_SECS as i64 - 1;
        let mut cols = Vec::new();
        r.columns(end, RATE_WINDOW_SECS, 1000, &mut cols);
        assert_eq!(cols.len(), 1000);
        assert_eq!(cols.iter().map(|c| u64::from(c.secs)).sum::<u64>(), 86_400);
        assert_eq!(
            cols.iter().map(|c| c.sum).sum::<u64>(),
            2 * 86_400 + 498,
            "nothing lost"
        );
        let peak = cols.iter().max_by_key(|c| c.max).unwrap();
        assert_eq!(
            peak.max, 500,
            "a one-second spike survives in its column's max"
        );
        assert!(
            peak.mean() < 10.0,
            "but the mean flattens it: {}",
            peak.mean()
        );
        assert!(cols.iter().all(|c| c.min == 2));
        // Seconds outside what the series holds read 0; a window shorter than the columns gets
        // one column per second.
        r.columns(end + 10, 20, 100, &mut cols);
        assert_eq!(cols.len(), 20);
        assert_eq!(cols.iter().filter(|c| c.sum == 0).count(), 10);
        assert_eq!(cols[0].sum, 2);
        let mut empty = Vec::new();
        RateSeries::default().columns(end, 60, 60, &mut empty);
        assert!(empty.iter().all(|c| *c
            == Column {
                secs: 1,
                ..Column::default()
            }));
    }

    #[test]
    fn downsampled_columns_follow_the_window_and_read_only_what_changed() {
        let mut r = RateSeries::default();
        let s0 = 1_767_225_600_i64; // a multiple of 60
        for s in 0..7200 {
            for _ in 0..(s % 7) {
                r.add(s0 + s);
            }
        }
        let window = 3600_i64;
        let mut d = Downsampled::new(60);
        let check = |d: &Downsampled, end: i64| {
            // The same sums as reading the window afresh, and every second once.
            let start = end - window + 1;
            let cols: Vec<_> = d.columns().collect();
            assert_eq!(
                cols.iter().map(|(_, c)| i64::from(c.secs)).sum::<i64>(),
                window
            );
            assert_eq!(cols[0].0, start, "the first column starts with the window");
            for (at, c) in &cols {
                let fresh = r.column(*at, c.secs as usize);
                assert_eq!(**c, fresh, "column at {at}");
            }
        };
        for end in [
            s0 + 4000,
            s0 + 4001,
            s0 + 4059,
            s0 + 4060,
            s0 + 4061,
            s0 + 5000,
        ] {
            d.update(&r, end - window + 1, end);
            check(&d, end);
        }
        assert!(d.len() == 61 || d.len() == 60, "{}", d.len());
        // Jumping back (a replayed clock) starts over rather than mixing.
        d.update(&r, s0 - window + 1, s0);
        check(&d, s0);
    }

    #[test]
    fn domain_series_are_capped() {
        let mut a = Aggregates::default();
        let t = 1_767_225_600 * MICROS_PER_SEC;
        for d in 0..(MAX_DOMAIN_SERIES as u32 + 10) {
            a.record(t, None, Sym(d + 1), Sym(1), Sym(1), Status::Other, 1);
        }
        assert_eq!(a.rate_by_domain.len(), MAX_DOMAIN_SERIES);
        assert_eq!(a.rate_other_domains.at(t / MICROS_PER_SEC), 10);
        assert_eq!(a.rate.at(t / MICROS_PER_SEC), MAX_DOMAIN_SERIES as u32 + 10);
    }
}
