//! Time travel in the window (`egui_kittest` over a real journal on disk): the timeline shows the
//! journal's span, "Older" pages the Stream back beyond what is in memory, a click on the
//! timeline shows the platform as it was then in every view, and "Live" returns to now.

mod support;

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;

use candybar::app::{AppInit, CandybarApp, Clock};
use candybar_bus::live::Live;
use candybar_core::event::RawMessage;
use candybar_core::source::SourceState;
use candybar_core::store::StoreConfig;
use candybar_journal::{JournalConfig, JournalWriter};

/// 2026-01-01 12:00:00 UTC: "now" in the window.
const NOW_US: i64 = 1_767_268_800_000_000;
const DAY_US: i64 = 86_400_000_000;
const YESTERDAY: usize = 400;
const TODAY: usize = 200;

fn event(kind: &str, i: usize, received_us: i64) -> RawMessage {
    RawMessage {
        received_us,
        routing_key: kind.into(),
        body: format!(
            r#"{{"event_id":"{kind}-{i}","event_type":"{kind}","source":{{"app":"{day}-svc"}},"agent_context":{{"type":"claude-code","name":"ada"}},"payload":{{"i":{i}}}}}"#,
            day = kind.split('.').nth(1).unwrap_or_default()
        )
        .into_bytes(),
        ..RawMessage::default()
    }
}

fn yesterday(i: usize) -> RawMessage {
    event(
        "travel.yesterday.completed",
        i,
        NOW_US - DAY_US + i as i64 * 100_000,
    )
}

fn today(i: usize) -> RawMessage {
    event(
        "travel.today.completed",
        i,
        NOW_US - 60_000_000 + i as i64 * 100_000,
    )
}

/// A window whose journal (real, on disk) holds yesterday's and today's events and whose memory
/// holds today's.
fn app(journal: &std::path::Path) -> Harness<'static, CandybarApp> {
    app_with(journal, &[])
}

/// [`app`] with more events, journaled and — those of the last minute — in memory too.
fn app_with(journal: &std::path::Path, more: &[RawMessage]) -> Harness<'static, CandybarApp> {
    let mut w = JournalWriter::open(JournalConfig::new(journal.to_owned()), "test")
        .expect("a new journal opens");
    for i in 0..YESTERDAY {
        w.append(&yesterday(i));
    }
    for i in 0..TODAY {
        w.append(&today(i));
    }
    for m in more {
        w.append(m);
    }
    w.flush().expect("the journal is written");
    drop(w);
    let mut live = Live::new(StoreConfig::default());
    for i in 0..TODAY {
        live.store.insert(&today(i));
    }
    for m in more.iter().filter(|m| m.received_us >= NOW_US - 60_000_000) {
        live.store.insert(m);
    }
    live.describe = "the journal (test)".into();
    live.state = SourceState::Connected {
        detail: "test".into(),
    };
    let mut init = AppInit::new(live);
    init.tz = Some(candybar_ui::time_fmt::TimeZoneChoice::Utc);
    init.clock = Clock::Fixed(NOW_US);
    init.view = Some(candybar_ui::View::Stream);
    init.history = Some(support::kit::journal_history(journal));
    let mut harness = Harness::builder()
        .with_size([1280.0, 800.0])
        .build_eframe(|cc| CandybarApp::new(cc, init));
    wait(&mut harness, "the timeline to read the journal", |app| {
        app.viewer.timeline.strip_rect.is_some()
    });
    harness
}

/// Runs frames until `done` (the journal is read on threads), at most 10 s.
fn wait(harness: &mut Harness<'_, CandybarApp>, what: &str, done: impl Fn(&CandybarApp) -> bool) {
    let start = Instant::now();
    while !done(harness.state()) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "waited 10 s for {what}"
        );
        harness.run_steps(1);
        std::thread::sleep(Duration::from_millis(20));
    }
    harness.run_steps(3);
}

/// The types of the rows the Stream shows.
fn shown_types(harness: &Harness<'_, CandybarApp>) -> Vec<String> {
    let app = harness.state();
    let store = app
        .travel
        .as_ref()
        .and_then(|t| t.past.as_ref())
        .map_or(&app.live.store, |p| &p.store);
    (0..app.viewer.stream.view.len())
        .map(|i| {
            let seq = app.viewer.stream.view.get(i).expect("a row per match");
            store.get(seq).expect("a shown event is stored").kind
        })
        .collect()
}

fn travelling(app: &CandybarApp) -> bool {
    app.travel.as_ref().is_some_and(|t| t.past.is_some())
}

#[test]
fn older_pages_the_stream_back_into_the_journal_and_live_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = app(&dir.path().join("journal"));
    harness.get_by_label("⏺ live");
    assert_eq!(shown_types(&harness).len(), TODAY);

    harness.get_by_label("⏶ Older").click();
    wait(&mut harness, "yesterday to load", travelling);
    let types = shown_types(&harness);
    assert_eq!(
        types.len(),
        YESTERDAY,
        "yesterday's events, from the journal"
    );
    assert!(
        types.iter().all(|t| t == "travel.yesterday.completed"),
        "{types:?}"
    );
    // The moment shown is just before the oldest event that was in memory.
    harness.get_by_label("⏸ viewing 2026-01-01 11:58:59");
    // The past is yesterday's as far as the journal goes: nothing older to page to.
    assert!(harness.query_by_label("⏶ Older").is_none());

    harness.get_by_label("⏵ Live").click();
    harness.run_steps(3);
    assert!(!travelling(harness.state()));
    harness.get_by_label("⏺ live");
    assert_eq!(shown_types(&harness).len(), TODAY);
}

#[test]
fn a_click_on_the_timeline_shows_that_moment_in_every_view() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = app(&dir.path().join("journal"));
    let rect = harness.state().viewer.timeline.strip_rect.unwrap();
    // Half way along the day the journal spans: after yesterday's events, before today's.
    let at = egui::pos2(rect.left() + rect.width() * 0.5, rect.center().y);
    harness.drag_at(at);
    harness.run_steps(1);
    harness.drop_at(at);
    wait(&mut harness, "the moment to load", travelling);
    let at_us = harness
        .state()
        .travel
        .as_ref()
        .unwrap()
        .past
        .as_ref()
        .unwrap()
        .at_us;
    assert!(
        (NOW_US - DAY_US + 40_000_000..NOW_US - 60_000_000).contains(&at_us),
        "the click picked {at_us}, not the middle of the day"
    );
    let types = shown_types(&harness);
    assert_eq!(types.len(), YESTERDAY);
    assert!(types.iter().all(|t| t == "travel.yesterday.completed"));
    // The other views draw the same moment: the agents and services of then.
    for view in ["📈 Charts", "🔀 Flow", "✨ Agents"] {
        harness.get_by_label(view).click();
        harness.run_steps(3);
    }
    harness.get_by_label_contains("⏸ viewing");
    let nodes: Vec<&str> = harness
        .state()
        .viewer
        .flow
        .graph()
        .nodes
        .iter()
        .map(|n| n.key.as_str())
        .collect();
    assert!(
        nodes.contains(&"yesterday-svc") && !nodes.contains(&"today-svc"),
        "Flow draws the services of then: {nodes:?}"
    );

    // A click at the right end is now: live again.
    let end = egui::pos2(rect.right() - 1.0, rect.center().y);
    harness.drag_at(end);
    harness.run_steps(1);
    harness.drop_at(end);
    harness.run_steps(3);
    assert!(!travelling(harness.state()));
}

#[test]
fn charts_reach_days_back_from_the_journal_and_a_brush_travels_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = app(&dir.path().join("journal"));
    harness.get_by_label("📈 Charts").click();
    harness.run_steps(2);
    harness.get_by_label("7 d").click();
    wait(&mut harness, "the week's rates from the journal", |app| {
        app.travel
            .as_ref()
            .and_then(|t| t.rates())
            .is_some_and(|r| !r.totals.is_empty())
    });
    harness.get_by_label_contains("from the journal's block indexes");
    let rates = harness
        .state()
        .travel
        .as_ref()
        .and_then(|t| t.rates())
        .cloned()
        .unwrap();
    // Both days' events, all in the `travel` domain, none of them errors.
    let total: f64 = rates.totals.iter().sum();
    assert!((total - (YESTERDAY + TODAY) as f64).abs() < 0.5, "{total}");
    assert_eq!(
        rates.bands.len(),
        1,
        "{:?}",
        rates.bands.iter().map(|b| &b.0).collect::<Vec<_>>()
    );
    assert_eq!(rates.bands[0].0, "travel");
    assert!(rates.errors.iter().all(|&e| e == 0.0));
    // A week back, yesterday's column holds its 400 events.
    let column = ((NOW_US - DAY_US - rates.start_us) / rates.column_us) as usize;
    let around: f64 = rates.totals[column.saturating_sub(1)..=column + 1]
        .iter()
        .sum();
    assert!((around - YESTERDAY as f64).abs() < 0.5, "{around}");

    // Brushing across yesterday shows its events in the Stream, loaded from the journal.
    let rect = harness.state().viewer.charts.rates_rect().unwrap();
    let y = rect.center().y;
    let x_at = |f: f32| rect.left() + rect.width() * f;
    harness.drag_at(egui::pos2(x_at(0.80), y));
    harness.run_steps(2);
    for f in [0.83, 0.86, 0.9] {
        harness.hover_at(egui::pos2(x_at(f), y));
        harness.run_steps(1);
    }
    harness.drop_at(egui::pos2(x_at(0.9), y));
    wait(&mut harness, "the brushed time to load", travelling);
    assert_eq!(harness.state().viewer.view, candybar_ui::View::Stream);
    let types = shown_types(&harness);
    assert_eq!(
        types.len(),
        YESTERDAY,
        "{}",
        harness.state().viewer.filter_text
    );
    assert!(types.iter().all(|t| t == "travel.yesterday.completed"));
}

fn type_filter(harness: &mut Harness<'_, CandybarApp>, text: &str) {
    harness
        .get_by_role(egui::accesskit::Role::TextInput)
        .click();
    harness.run_steps(2);
    harness
        .get_by_role(egui::accesskit::Role::TextInput)
        .type_text(text);
    harness.run_steps(4);
}

#[test]
fn a_filter_searches_the_whole_journal_beyond_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = app(&dir.path().join("journal"));
    // One event of yesterday, by id: not in memory.
    type_filter(&mut harness, "id:travel.yesterday.completed-7");
    assert!(shown_types(&harness).is_empty());
    harness.get_by_label("🔍 Whole journal").click();
    wait(&mut harness, "the search", travelling);
    assert_eq!(shown_types(&harness), ["travel.yesterday.completed"]);
    harness
        .get_by_label("🔍 1 event matches `id:travel.yesterday.completed-7` in the whole journal");
    harness.get_by_label("⏵ Live").click();
    harness.run_steps(3);
    assert!(!travelling(harness.state()));

    // A glob over both days: every match, oldest first, memory's and the journal's.
    harness
        .state_mut()
        .apply_filter_text("travel.*.completed".into());
    harness.run_steps(4);
    harness.get_by_label("🔍 Whole journal").click();
    wait(&mut harness, "the search", travelling);
    let types = shown_types(&harness);
    assert_eq!(types.len(), YESTERDAY + TODAY);
    assert_eq!(types[0], "travel.yesterday.completed");
    assert_eq!(types[YESTERDAY], "travel.today.completed");
    // Rows from two days say which day.
    harness.get_by_label("01-01 11:59:19.900");
}

/// An event of the job `corr` (its correlation id).
fn job(kind: &str, corr: &str, received_us: i64) -> RawMessage {
    RawMessage {
        received_us,
        routing_key: kind.into(),
        body: format!(
            r#"{{"event_id":"{kind}-{received_us}","event_type":"{kind}","timestamp":"{}","correlation_ids":["{corr}"],"agent_context":{{"type":"claude-code","name":"ada"}},"payload":{{}}}}"#,
            candybar_core::time::format_rfc3339(received_us)
        )
        .into_bytes(),
        ..RawMessage::default()
    }
}

#[test]
fn a_trace_that_began_yesterday_is_read_from_the_whole_journal() {
    let dir = tempfile::tempdir().unwrap();
    // A job that started yesterday (on disk only) and ended a few seconds ago (also in memory),
    // with a tool call in each.
    let more = [
        job("job.run.started", "job-7", NOW_US - DAY_US + 50_000),
        job("job.tool.started", "job-7", NOW_US - DAY_US + 60_000),
        job("job.tool.completed", "job-7", NOW_US - DAY_US + 90_000),
        job("job.tool.started", "job-7", NOW_US - 5_000_000),
        job("job.tool.failed", "job-7", NOW_US - 4_000_000),
        job("job.run.completed", "job-7", NOW_US - 3_000_000),
        job("job.run.started", "job-8", NOW_US - 2_000_000),
    ];
    let mut harness = app_with(&dir.path().join("journal"), &more);
    {
        let viewer = &mut harness.state_mut().viewer;
        viewer.trace.open("job-7");
        viewer.view = candybar_ui::View::Traces;
    }
    harness.run_steps(3);
    // Memory holds its end only: three events, and a run that never started.
    let trace = harness.state().viewer.trace.trace.clone().expect("built");
    assert_eq!(trace.events, 3, "{trace:?}");
    harness.get_by_label("🔍 Whole journal").click();
    wait(&mut harness, "the journal's trace", travelling);
    let trace = harness.state().viewer.trace.trace.clone().expect("rebuilt");
    assert_eq!(trace.events, 6, "{trace:?}");
    let run = trace
        .spans
        .iter()
        .find(|s| s.name == "job.run")
        .expect("the run is a span");
    assert!(
        !run.open,
        "the run's start was read from yesterday: {run:?}"
    );
    assert_eq!(run.end_us - run.start_us, DAY_US - 3_000_000 - 50_000);
    assert_eq!(trace.errors, 1, "the failed tool call: {trace:?}");
    harness.get_by_label("from the whole journal (6 events)");
    assert_eq!(harness.state().viewer.view, candybar_ui::View::Traces);
    // Live again: the trace of what memory holds.
    harness.get_by_label("⏵ Live").click();
    harness.run_steps(3);
    assert!(!travelling(harness.state()));
    assert_eq!(
        harness.state().viewer.trace.trace.as_ref().unwrap().events,
        3
    );
}
