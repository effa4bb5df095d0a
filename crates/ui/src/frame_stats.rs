//! The window's own measurements: how long each frame took on the CPU, how fast frames come, and
//! how long a new event waits before its row is on screen. Shown in the status bar and written as
//! JSON by `--stats-out` (what `candybar bench window` reads).

use std::collections::VecDeque;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Frames remembered for the status bar's figures.
const RECENT_FRAMES: usize = 240;

pub struct FrameStats {
    started: Instant,
    /// Instants of the recent frames (for fps).
    recent_starts: VecDeque<Instant>,
    /// The app's own CPU time per recent frame (logic + ui), seconds.
    recent_ui_secs: VecDeque<f32>,
    /// Whole-run histograms in microseconds.
    ui_us: Histogram<u64>,
    /// Moving arrived events into the store (before the ui pass).
    ingest_us: Histogram<u64>,
    /// eframe's frame CPU less our ingest: ui + tessellation + handing the frame to the GPU.
    render_us: Histogram<u64>,
    /// Ingest seconds of the previous and the current frame (eframe reports a frame's CPU time
    /// one frame late).
    ingest_secs: [f32; 2],
    /// eframe's figure: ui + tessellation + handing the frame to the GPU (minus vsync waits).
    frame_cpu_us: Histogram<u64>,
    /// New event received → the frame that first draws its row has been handed to the display.
    shown_latency_us: Histogram<u64>,
    /// The receive time of the oldest event whose row the current frame draws for the first
    /// time; timed when the next frame begins (after this one was presented).
    pending_shown_us: Option<i64>,
    /// Launch → the first frame handed to the display (the second frame begins).
    pub first_frame_ms: Option<f64>,
    pub frames: u64,
}

/// A summary of a run, for `--stats-out`.
#[derive(Debug, Serialize)]
pub struct StatsReport {
    pub frames: u64,
    pub wall_secs: f64,
    pub first_frame_ms: Option<f64>,
    /// The ui pass alone (layout of every panel and view), without ingest.
    pub ui_ms: Percentiles,
    /// Draining the sources into the store, per frame.
    pub ingest_ms: Percentiles,
    /// eframe's figure: ingest + ui + tessellation + handing the frame to the GPU.
    pub frame_cpu_ms: Percentiles,
    /// The same less ingest, frame by frame: ui + tessellation + handing the frame to the GPU.
    pub render_cpu_ms: Percentiles,
    pub shown_latency_ms: Percentiles,
    /// Process CPU time over the run (user + system), from /proc (the app reads it).
    pub process_cpu_secs: Option<f64>,
    pub events_stored: u64,
    pub events_received: u64,
    /// Received after the first frame was timed (the rate of a run leaves out the start-up).
    pub events_received_after_first_frame: u64,
}

#[derive(Debug, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 100 s at 3 significant digits; the bounds are constants, so this cannot fail.
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("constant, valid bounds")
}

impl FrameStats {
    #[must_use]
    pub fn new(started: Instant) -> Self {
        Self {
            started,
            recent_starts: VecDeque::with_capacity(RECENT_FRAMES),
            recent_ui_secs: VecDeque::with_capacity(RECENT_FRAMES),
            ui_us: histogram(),
            ingest_us: histogram(),
            render_us: histogram(),
            ingest_secs: [0.0; 2],
            frame_cpu_us: histogram(),
            shown_latency_us: histogram(),
            pending_shown_us: None,
            first_frame_ms: None,
            frames: 0,
        }
    }

    /// When the app started (for the first-frame time and `--exit-after`).
    #[must_use]
    pub fn started(&self) -> Instant {
        self.started
    }

    /// A frame begins: everything before it has been laid out, tessellated, painted and handed
    /// to the display. Times the first frame and the rows the previous frame drew first.
    pub fn frame_begins(&mut self, at: Instant, now_us: i64) {
        if self.frames >= 1 && self.first_frame_ms.is_none() {
            self.first_frame_ms = Some(at.duration_since(self.started).as_secs_f64() * 1e3);
        }
        if let Some(received_us) = self.pending_shown_us.take() {
            self.record_shown_latency(now_us - received_us);
        }
    }

    /// The frame being drawn shows, for the first time, rows whose oldest event was received at
    /// `received_us`.
    pub fn rows_drawn(&mut self, received_us: i64) {
        self.pending_shown_us = Some(
            self.pending_shown_us
                .map_or(received_us, |r| r.min(received_us)),
        );
    }

    /// Whether the first frame is still to be timed (the app asks for the frame that times it).
    #[must_use]
    pub fn first_frame_pending(&self) -> bool {
        self.first_frame_ms.is_none()
    }

    /// One frame: when it began, the app's own CPU seconds in it, and eframe's figure for the
    /// previous frame.
    pub fn record(&mut self, frame_start: Instant, ui_secs: f32, prev_frame_cpu_secs: Option<f32>) {
        self.frames += 1;
        if self.recent_starts.len() == RECENT_FRAMES {
            self.recent_starts.pop_front();
            self.recent_ui_secs.pop_front();
        }
        self.recent_starts.push_back(frame_start);
        self.recent_ui_secs.push_back(ui_secs);
        let _ = self.ui_us.record((f64::from(ui_secs) * 1e6) as u64);
        if let Some(s) = prev_frame_cpu_secs.filter(|s| s.is_finite() && *s >= 0.0) {
            let _ = self.frame_cpu_us.record((f64::from(s) * 1e6) as u64);
            let render = (f64::from(s) - f64::from(self.ingest_secs[0])).max(0.0);
            let _ = self.render_us.record((render * 1e6) as u64);
        }
    }

    pub fn record_ingest(&mut self, secs: f32) {
        let _ = self.ingest_us.record((f64::from(secs) * 1e6) as u64);
        self.ingest_secs = [self.ingest_secs[1], secs];
    }

    fn record_shown_latency(&mut self, latency_us: i64) {
        if latency_us >= 0 {
            let _ = self.shown_latency_us.record(latency_us as u64);
        }
    }

    /// Frames per second over the last second of frames (idle windows draw few frames, and say so).
    #[must_use]
    pub fn fps(&self) -> f64 {
        let Some(&last) = self.recent_starts.back() else {
            return 0.0;
        };
        let recent = self
            .recent_starts
            .iter()
            .rev()
            .take_while(|t| last.duration_since(**t).as_secs_f64() <= 1.0)
            .count();
        if last.elapsed().as_secs_f64() > 1.0 {
            return 0.0;
        }
        recent.saturating_sub(1) as f64
    }

    /// The app's CPU milliseconds per frame: mean and worst of the recent frames.
    #[must_use]
    pub fn recent_ui_ms(&self) -> (f64, f64) {
        if self.recent_ui_secs.is_empty() {
            return (0.0, 0.0);
        }
        let sum: f64 = self.recent_ui_secs.iter().map(|&s| f64::from(s)).sum();
        let max = self
            .recent_ui_secs
            .iter()
            .fold(0.0f64, |m, &s| m.max(f64::from(s)));
        (sum * 1e3 / self.recent_ui_secs.len() as f64, max * 1e3)
    }

    #[must_use]
    pub fn report(
        &self,
        events_stored: u64,
        (events_received, events_received_after_first_frame): (u64, u64),
        process_cpu_secs: Option<f64>,
    ) -> StatsReport {
        StatsReport {
            frames: self.frames,
            wall_secs: self.started.elapsed().as_secs_f64(),
            first_frame_ms: self.first_frame_ms,
            ui_ms: Percentiles::of(&self.ui_us),
            ingest_ms: Percentiles::of(&self.ingest_us),
            render_cpu_ms: Percentiles::of(&self.render_us),
            frame_cpu_ms: Percentiles::of(&self.frame_cpu_us),
            shown_latency_ms: Percentiles::of(&self.shown_latency_us),
            process_cpu_secs,
            events_stored,
            events_received,
            events_received_after_first_frame,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fps_counts_frames_in_the_last_second() {
        let t0 = Instant::now();
        let mut s = FrameStats::new(t0);
        for i in 0..30u32 {
            s.record(
                t0 + Duration::from_millis(u64::from(i) * 16),
                0.001,
                Some(0.002),
            );
        }
        assert!(
            s.first_frame_ms.is_none(),
            "timed when the second frame begins"
        );
        s.frame_begins(t0 + Duration::from_millis(500), 0);
        assert_eq!(s.first_frame_ms, Some(500.0));
        let report = s.report(0, (0, 0), None);
        assert_eq!(report.frames, 30);
        assert!((report.ui_ms.p50 - 1.0).abs() < 0.01);
        assert!((report.frame_cpu_ms.p99 - 2.0).abs() < 0.01);
    }
}
