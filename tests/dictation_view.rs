//! The Dictation view, driven like a user would (`egui_kittest`): the kept transcripts are listed,
//! searching narrows them as you type, delete removes one, and a picture of the view.
//! The history is a real SQLite file; the dictation worker is the app's own.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use egui::accesskit::Role;
use egui_kittest::kittest::Queryable as _;
use egui_kittest::{Harness, SnapshotOptions};

use candybar::app::{AppInit, CandybarApp, Clock, DictationInit};
use candybar_bus::live::Live;
use candybar_core::store::StoreConfig;
use candybar_core::voice::HotkeyMode;
use candybar_ui::{ThemeChoice, View};
use candybar_voice::dictation::DictationConfig;
use candybar_voice::history::{History, NewTranscript};
use candybar_voice::local_server::LocalServerConfig;

/// 2026-01-01 12:00:00 UTC.
const T0_US: i64 = 1_767_268_800_000_000;

const SAID: [&str; 3] = [
    "Deploy the billing service tonight.",
    "Remind me to call Anna about the invoices.",
    "The deployment finished and all services are healthy.",
];

fn app(dir: &std::path::Path, rt: &tokio::runtime::Runtime) -> Harness<'static, CandybarApp> {
    // The model directory holds the real tiny.en (linked, not copied).
    let models = dir.join("models");
    std::fs::create_dir_all(&models).unwrap();
    std::os::unix::fs::symlink(support::test_model(), models.join("ggml-tiny.en.bin")).unwrap();
    let db = dir.join("history.sqlite3");
    let mut h = History::open(&db).unwrap();
    for (i, text) in SAID.iter().enumerate() {
        h.add(
            &NewTranscript {
                created_us: T0_US + i as i64 * 60_000_000,
                duration_ms: 2400,
                text: (*text).into(),
                server: "ws://127.0.0.1:8888/asr".into(),
                model: "ggml-tiny.en.bin".into(),
                protocol: "candybar".into(),
                confidence: Some(0.9),
                language: Some("en".into()),
                source: "mic".into(),
                segments: Vec::new(),
            },
            &[],
        )
        .unwrap();
    }
    let mut init = AppInit::new(Live::new(StoreConfig::default()));
    init.theme = Some(ThemeChoice::Dark);
    init.tz = Some(candybar_ui::time_fmt::TimeZoneChoice::Utc);
    init.clock = Clock::Fixed(T0_US + 600_000_000);
    init.view = Some(View::Dictation);
    init.dictation = Some(DictationInit {
        cfg: DictationConfig {
            history_path: db,
            ..DictationConfig::default()
        },
        hotkey: "Ctrl+Alt+Space".into(),
        mode: HotkeyMode::Hold,
        rt: rt.handle().clone(),
        // No keychain in tests: every token is in the config (here, none).
        secrets: std::sync::Arc::new(candybar_voice::dictation::NoSecrets),
        instance: None,
        global_hotkey: false,
        bus_target: None,
        local_server: LocalServerConfig::default(),
        local_auto_start: false,
        model_dir: Some(models),
    });
    let mut harness = Harness::builder()
        .with_size([1280.0, 800.0])
        .build_eframe(|cc| CandybarApp::new(cc, init));
    wait_until(&mut harness, "the history is listed", |a| {
        a.dictation_status().unwrap().history.len() == SAID.len()
    });
    harness
}

/// Runs frames until `cond` holds (the worker answers on its own thread).
fn wait_until(
    harness: &mut Harness<'_, CandybarApp>,
    what: &str,
    cond: impl Fn(&CandybarApp) -> bool,
) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        harness.run_steps(2);
        if cond(harness.state()) {
            harness.run_steps(2);
            return;
        }
        assert!(Instant::now() < end, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kept_transcripts_are_listed_searched_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut harness = app(dir.path(), &rt);
    for text in SAID {
        harness.get_by_label(text);
    }
    harness.get_by_label("3 kept");
    // The hotkey is off in this window, and the view says so.
    harness.get_by_label("hotkey unavailable (see settings)");

    // Typing a word's beginning narrows the list.
    harness
        .get_by_role_and_label(Role::TextInput, "Search")
        .click();
    harness.run_steps(2);
    harness
        .get_by_role_and_label(Role::TextInput, "Search")
        .type_text("deplo");
    wait_until(&mut harness, "the search narrowed the list", |a| {
        a.dictation_status().unwrap().history.len() == 2
    });
    harness.get_by_label("2 of 3 match");
    assert!(harness.query_by_label(SAID[1]).is_none());

    // Delete the newest match: gone from the view and from the file.
    let newest = harness.state().dictation_status().unwrap().history[0].id;
    harness.get_all_by_label("🗑").next().unwrap().click();
    wait_until(&mut harness, "the transcript was deleted", |a| {
        a.dictation_status().unwrap().history.len() == 1
    });
    let h = History::open(&dir.path().join("history.sqlite3")).unwrap();
    assert_eq!(h.count().unwrap(), 2);
    assert!(h.get(newest).is_err());
}

#[test]
fn snapshot_dictation_view() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut harness = app(dir.path(), &rt);
    harness.run_steps(3);
    // The frame-rate figures depend on the machine: mask them.
    let fps = harness.get_by_label_contains("ms/frame").rect();
    harness.mask(fps);
    harness.snapshot_options(
        "dictation_dark",
        &SnapshotOptions::new().threshold(1.0).max_failed_pixels(200),
    );
}

#[test]
fn the_installed_models_are_listed_and_their_speed_measured_here() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut harness = app(dir.path(), &rt);
    harness.run_steps(3);
    harness.get_by_label("tiny.en");
    harness.get_by_label("English");
    assert!(harness.query_by_label_contains("real time").is_none());
    harness.get_by_label("⏱ Measure their speed").click();
    // tiny.en decodes the 4.6 s sentence twice on a thread; the result comes back to the view.
    let end = Instant::now() + Duration::from_mins(1);
    while harness.query_by_label_contains("× real time").is_none() {
        assert!(Instant::now() < end, "no speed shown within a minute");
        harness.run_steps(2);
        std::thread::sleep(Duration::from_millis(50));
    }
    let shown = {
        use egui_kittest::kittest::NodeT as _;
        let node = harness.get_by_label_contains("× real time");
        let node = node.accesskit_node();
        node.label().or_else(|| node.value()).unwrap_or_default()
    };
    let times: f32 = shown
        .split('×')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{e}: {shown:?}"));
    assert!(
        times >= 1.0,
        "tiny.en runs faster than real time here: {shown}"
    );
    // Kept beside the models for the next start.
    let saved = std::fs::read_to_string(dir.path().join("models/speeds.json")).unwrap();
    assert!(saved.contains("\"tiny.en\""), "{saved}");
}

#[test]
fn an_f16_model_gets_its_q8_0_copy_from_the_view() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut harness = app(dir.path(), &rt);
    harness.run_steps(3);
    harness.get_by_label("⚡ q8_0 copy").click();
    // The copy is written on a thread (under a second for tiny.en) and listed when done.
    let end = Instant::now() + Duration::from_mins(1);
    while harness.query_by_label("tiny.en-q8_0").is_none() {
        assert!(Instant::now() < end, "no copy listed within a minute");
        harness.run_steps(2);
        std::thread::sleep(Duration::from_millis(50));
    }
    harness.get_by_label_contains("made tiny.en-q8_0: 43.6 MB (from 77.7 MB)");
    let copy = dir.path().join("models/ggml-tiny.en-q8_0.bin");
    let header = candybar_asr::models::read_header(&copy).unwrap();
    assert_eq!(header.ftype % 1000, 7, "q8_0");
    // It is there now: no button for another, and the copy itself has none.
    harness.run_steps(2);
    assert!(harness.query_by_label("⚡ q8_0 copy").is_none());
    // The original is untouched (the models dir links the shared one).
    assert_eq!(
        std::fs::metadata(dir.path().join("models/ggml-tiny.en.bin"))
            .unwrap()
            .len(),
        std::fs::metadata(support::test_model()).unwrap().len()
    );
}
