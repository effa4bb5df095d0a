//! Driving the app in `egui_kittest`: waiting for what a person would wait for.

use std::path::Path;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;

use candybar::app::CandybarApp;
use candybar::app::history::History;

/// Runs frames until `text` is on screen (10 s at most: threads read files and tmux meanwhile).
pub fn wait_for_label(harness: &mut Harness<'_, CandybarApp>, text: &str) {
    let start = Instant::now();
    while harness.query_all_by_label_contains(text).next().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "waited 10 s for {text:?} on screen"
        );
        harness.run_steps(1);
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// A window's journal in `dir` that it reads (no recorder, no takeover).
pub fn journal_history(dir: &Path) -> History {
    History {
        dir: dir.to_owned(),
        status: std::sync::Arc::default(),
        recorder: None,
        takeover: None,
        own: None,
    }
}
