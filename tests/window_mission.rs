//! The Mission view driven like a person would (`egui_kittest`): the demo feed's projects as
//! cards (a click shows a project's events in the Stream), the decision radar with its autonomy
//! alert, plans and drift, risks with an overdue gate and an approval's options, a briefing whose
//! footnotes lead to events — and the past read from a real journal on disk.

mod support;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;

use candybar::app::{AppInit, CandybarApp, Clock};
use candybar_bus::live::Live;
use candybar_core::demo::{Demo, DemoConfig};
use candybar_core::registry::Registry;
use candybar_core::source::SourceState;
use candybar_core::store::StoreConfig;
use candybar_journal::{JournalConfig, JournalWriter};
use candybar_ui::View;
use support::kit::{journal_history, wait_for_label};

/// 2026-01-27T10:00:00Z.
const T0_US: i64 = 1_769_508_000_000_000;
/// Four minutes of demo at 10 events a second: its projects' past, then a gate's SLA runs out.
const EVENTS: i64 = 2_400;
const STEP_US: i64 = 100_000;

fn demo_messages() -> Vec<candybar_core::event::RawMessage> {
    let mut demo = Demo::new(DemoConfig::default(), &Registry::example());
    (0..EVENTS)
        .map(|i| demo.next_message(T0_US + i * STEP_US))
        .collect()
}

/// A window over the demo's events: all in memory, or (with `journal`) the first half only in
/// the journal on disk.
fn app(journal: Option<&std::path::Path>) -> Harness<'static, CandybarApp> {
    app_with(journal, candybar::app::mission::BriefingPlan::default())
}

/// [`app`] with briefings written by the window itself.
fn app_with(
    journal: Option<&std::path::Path>,
    briefings: candybar::app::mission::BriefingPlan,
) -> Harness<'static, CandybarApp> {
    app_over(journal, briefings, |_| {})
}

/// [`app_with`]; `before` is given the journal written, before the window opens.
fn app_over(
    journal: Option<&std::path::Path>,
    briefings: candybar::app::mission::BriefingPlan,
    before: impl FnOnce(&mut JournalWriter),
) -> Harness<'static, CandybarApp> {
    let messages = demo_messages();
    let mut live = Live::new(StoreConfig::default());
    let split = if let Some(dir) = journal {
        let mut w = JournalWriter::open(JournalConfig::new(dir.to_owned()), "test")
            .expect("a new journal opens");
        let half = messages.len() / 2;
        for m in &messages[..half] {
            w.append(m);
        }
        before(&mut w);
        w.flush().expect("the journal is written");
        half
    } else {
        0
    };
    for m in &messages[split..] {
        live.store.insert(m);
    }
    live.describe = "demo feed (seeded)".into();
    live.demo_reason = Some("test".into());
    live.state = SourceState::Connected {
        detail: "demo".into(),
    };
    let mut init = AppInit::new(live);
    init.tz = Some(candybar_ui::time_fmt::TimeZoneChoice::Utc);
    init.clock = Clock::Fixed(T0_US + EVENTS * STEP_US);
    init.view = Some(View::Mission);
    init.history = journal.map(journal_history);
    // Briefings are written whatever the view: the Stream then.
    if !briefings.times.is_empty() {
        init.view = Some(View::Stream);
    }
    init.briefings = briefings;
    let mut harness = Harness::builder()
        .with_size([1280.0, 800.0])
        .build_eframe(|cc| CandybarApp::new(cc, init));
    harness.run_steps(3);
    harness
}

fn tab(harness: &mut Harness<'_, CandybarApp>, name: &str) {
    harness
        .query_all_by_label_contains(name)
        .next()
        .unwrap_or_else(|| panic!("no {name} tab"))
        .click();
    harness.run_steps(3);
}

/// Keeps a picture of the window for people to look at (`CANDYBAR_ARTIFACTS`).
fn picture(harness: &mut Harness<'_, CandybarApp>, name: &str) {
    if let Ok(dir) = std::env::var("CANDYBAR_ARTIFACTS") {
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(image) = harness.render() {
            let _ = image.save(std::path::Path::new(&dir).join(format!("{name}.png")));
        }
    }
}

#[test]
fn every_mission_tab_shows_the_demo_platform_and_leads_to_its_events() {
    let mut harness = app(None);
    wait_for_label(&mut harness, "Portfolio (5)");
    // A card per project, with its health and why.
    for words in [
        "Atlas API",
        "2 open blockers (ci_failing, dependency_not_ready) and no runnable work",
        "with 3 runnable items",
        "human_review gate gate-review-118 is",
        "Beacon web",
    ] {
        wait_for_label(&mut harness, words);
    }
    picture(&mut harness, "mission-portfolio");

    tab(&mut harness, "Decision radar");
    wait_for_label(&mut harness, "split billing out of the monolith");
    assert!(
        harness.query_all_by_label("⚠").next().is_some(),
        "an agent's critical decision raises the autonomy alert"
    );
    picture(&mut harness, "mission-decisions");

    tab(&mut harness, "Plans & drift");
    wait_for_label(&mut harness, "drift significant");
    wait_for_label(&mut harness, "roadmap v1 ➡ v2 (scope_change)");
    picture(&mut harness, "mission-drift");

    tab(&mut harness, "Risks & blockers");
    wait_for_label(&mut harness, "staging deploys fail since 09:10");
    wait_for_label(&mut harness, "overdue by");
    wait_for_label(&mut harness, "options: approve / deny / defer");
    picture(&mut harness, "mission-risks");

    tab(&mut harness, "Briefing");
    harness.get_by_label("📝 Write the briefing").click();
    harness.run_steps(3);
    wait_for_label(&mut harness, "Needle-movers");
    wait_for_label(&mut harness, "Risks watchlist");
    picture(&mut harness, "mission-briefing");
    // A footnote leads to its event in the Stream.
    harness
        .query_all_by_label_contains("[^1]:")
        .next()
        .expect("the briefing's sources")
        .scroll_to_me();
    harness.run_steps(2);
    harness
        .query_all_by_label_contains("[^1]:")
        .next()
        .unwrap()
        .click();
    harness.run_steps(3);
    let app = harness.state();
    assert_eq!(app.viewer.view, View::Stream);
    assert!(
        app.viewer.filter_text.starts_with("id:mission-"),
        "{}",
        app.viewer.filter_text
    );
    assert_eq!(app.viewer.stream.view.len(), 1, "the footnote's event");

    // Back to the portfolio: a card shows its project's events.
    harness.get_by_label("🎯 Mission").click();
    harness.run_steps(2);
    tab(&mut harness, "Portfolio");
    harness
        .query_all_by_label_contains("Delta infra")
        .next()
        .unwrap()
        .click();
    harness.run_steps(3);
    let app = harness.state();
    assert_eq!(app.viewer.view, View::Stream);
    assert_eq!(app.viewer.filter_text, "\"lc-delta\"");
    assert!(app.viewer.stream.view.len() >= 3, "its lifecycle's events");
}

#[test]
fn the_past_comes_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let mut harness = app(Some(&journal));
    // The projects were created in the half on disk only: they are there all the same.
    wait_for_label(&mut harness, "from the journal");
    wait_for_label(&mut harness, "Portfolio (5)");
    wait_for_label(&mut harness, "Ember mobile");
    let m = &harness.state().mission.as_ref().unwrap().mission;
    assert_eq!(m.projects.len(), 5);
    assert_eq!(m.unreadable, 0);
}

#[test]
fn every_tab_exports_in_every_format() {
    use candybar_core::mission::report::Report;
    use candybar_ui::mission::DocFormat;
    let mut harness = app(None);
    wait_for_label(&mut harness, "Portfolio (5)");
    let dir = tempfile::tempdir().unwrap();
    for report in Report::ALL {
        for doc in DocFormat::ALL {
            if report == Report::Brief && doc == DocFormat::Csv {
                continue;
            }
            let path = dir
                .path()
                .join(format!("{}.{}", report.name(), doc.extension()));
            harness.state_mut().export_mission(&path, report, doc);
            wait_for_label(&mut harness, &format!("Saved {}", path.display()));
            let bytes = std::fs::read(&path).unwrap();
            match doc {
                DocFormat::Json => {
                    serde_json::from_slice::<serde_json::Value>(&bytes).expect("JSON");
                }
                DocFormat::Csv => {
                    let rows = csv::Reader::from_reader(&bytes[..]).records().count();
                    assert!(rows >= 3, "{report:?}: {rows} rows");
                }
                DocFormat::Markdown => assert!(bytes.starts_with(b"# "), "{report:?}"),
                DocFormat::Pdf => assert!(bytes.starts_with(b"%PDF-"), "{report:?}"),
            }
        }
    }
    // A folder that does not exist: said, not a panic.
    harness.state_mut().export_mission(
        std::path::Path::new("/nonexistent/mission.pdf"),
        Report::Risks,
        DocFormat::Pdf,
    );
    wait_for_label(&mut harness, "the folder does not exist");
}

/// Briefings kept in `archive`, one due a minute after the window's "now" (returned).
fn due_in_a_minute(
    archive: &std::path::Path,
    rewriter: Option<candybar::app::mission::Rewriter>,
) -> (candybar::app::mission::BriefingPlan, i64) {
    use chrono::{Local, TimeZone as _, Timelike as _};
    let now = T0_US + EVENTS * STEP_US;
    let due = Local
        .timestamp_micros(now + 60_000_000)
        .single()
        .expect("a local time");
    let plan = candybar::app::mission::BriefingPlan {
        times: vec![(due.hour(), due.minute())],
        archive: Some(archive.to_owned()),
        bus: None,
        rewriter,
    };
    (plan, now)
}

#[test]
fn the_window_writes_the_scheduled_briefing_and_keeps_it() {
    let archive = tempfile::tempdir().unwrap();
    let (plan, now) = due_in_a_minute(archive.path(), None);
    let mut harness = app_with(None, plan);
    harness.run_steps(5);
    assert!(
        harness.state().mission.is_none(),
        "nothing read before it is due"
    );
    assert_eq!(
        std::fs::read_dir(archive.path()).map_or(0, Iterator::count),
        0
    );
    // Two minutes later: it is written, kept, said, and listed.
    harness.state_mut().clock = Clock::Fixed(now + 120_000_000);
    wait_for_label(&mut harness, "is ready:");
    let kept: Vec<_> = std::fs::read_dir(archive.path())
        .unwrap()
        .filter_map(Result::ok)
        .collect();
    assert_eq!(kept.len(), 1);
    let text = std::fs::read_to_string(kept[0].path()).unwrap();
    assert!(text.contains("## Needle-movers"), "{text}");
    assert!(text.contains("Atlas API"), "{text}");
    harness.get_by_label("🎯 Mission").click();
    harness.run_steps(3);
    tab(&mut harness, "Briefing");
    let name = kept[0]
        .path()
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    wait_for_label(&mut harness, &name);
    // Not written twice for the same time.
    harness.state_mut().clock = Clock::Fixed(now + 180_000_000);
    harness.run_steps(5);
    assert_eq!(std::fs::read_dir(archive.path()).unwrap().count(), 1);
    // A kept one opens.
    harness.get_by_label(&name).click();
    harness.run_steps(2);
    wait_for_label(&mut harness, "opened");
}

/// With a model configured (`[mission] llm_url`), the Briefing tab offers a rewrite of the
/// briefing shown: a rewrite that keeps every heading and source replaces it; one that drops a
/// source is refused, said, and the briefing stays as written. The endpoint is a stand-in (see
/// [`support::llm::chat_stand_in`]).
#[test]
fn a_configured_model_rewrites_the_briefing_shown_only_when_it_keeps_every_fact() {
    let (good, seen) =
        support::llm::chat_stand_in(|user| (200, format!("Rewritten for reading.\n\n{user}")));
    let plan = |url: String| candybar::app::mission::BriefingPlan {
        rewriter: Some(candybar::app::mission::Rewriter {
            url,
            model: "stand-in".into(),
            key: None,
        }),
        ..candybar::app::mission::BriefingPlan::default()
    };
    let mut harness = app_with(None, plan(good));
    tab(&mut harness, "Briefing");
    assert!(
        harness.query_by_label_contains("Rewrite with").is_none(),
        "nothing to rewrite before a briefing is written"
    );
    harness.get_by_label("📝 Write the briefing").click();
    harness.run_steps(3);
    wait_for_label(&mut harness, "Needle-movers");
    harness.get_by_label("✨ Rewrite with stand-in").click();
    wait_for_label(&mut harness, "stand-in rewrote the briefing");
    wait_for_label(&mut harness, "Rewritten for reading.");
    assert_eq!(seen.lock().len(), 1, "one request");
    assert_eq!(seen.lock()[0]["model"], "stand-in");
    picture(&mut harness, "mission-briefing-rewritten");

    // A model that drops a source: said, and the briefing as written.
    let (bad, _) = support::llm::chat_stand_in(|user| (200, user.replace("[^1]", "")));
    let mut harness = app_with(None, plan(bad));
    tab(&mut harness, "Briefing");
    harness.get_by_label("📝 Write the briefing").click();
    harness.run_steps(3);
    harness.get_by_label("✨ Rewrite with stand-in").click();
    wait_for_label(&mut harness, "the briefing is as written");
    assert!(
        harness
            .query_by_label_contains("the rewrite lost [^1]")
            .is_some(),
        "the toast says what it lost"
    );
    assert!(harness.query_by_label_contains("Rewritten").is_none());
    harness.get_by_label("✨ Rewrite with stand-in");
}

/// A scheduled briefing is kept as the configured model rewrote it (stand-in endpoint, as above).
#[test]
fn a_scheduled_briefing_is_kept_rewritten() {
    let (url, _) =
        support::llm::chat_stand_in(|user| (200, format!("Rewritten for reading.\n\n{user}")));
    let archive = tempfile::tempdir().unwrap();
    let rewriter = candybar::app::mission::Rewriter {
        url,
        model: "stand-in".into(),
        key: None,
    };
    let (plan, now) = due_in_a_minute(archive.path(), Some(rewriter));
    let mut harness = app_with(None, plan);
    harness.run_steps(5);
    harness.state_mut().clock = Clock::Fixed(now + 120_000_000);
    wait_for_label(&mut harness, "is ready:");
    let text = std::fs::read_dir(archive.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|f| std::fs::read_to_string(f.path()).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("Rewritten for reading."), "{text}");
    assert!(
        text.contains("## Needle-movers") && text.contains("[^1]"),
        "{text}"
    );
}

/// A model a recorder saved after the oldest event in memory (the window loads the journal's
/// newest events into memory, and a recorder saves every few minutes): the window starts from
/// it, reads none of the journal, and counts the events in memory after it once.
#[test]
fn the_window_starts_from_a_model_saved_after_its_oldest_event_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let messages = demo_messages();
    let half = messages.len() / 2;
    // The journal holds all but the last quarter, the model saved with it; memory holds the
    // second half: the third quarter is in both.
    let plan = candybar::app::mission::BriefingPlan::default();
    let mut harness = app_over(Some(&journal), plan, |w| {
        for m in &messages[half..half + half / 2] {
            w.append(m);
        }
        w.flush().expect("written");
        let loaded = candybar::mission::load(&journal, i64::MAX, 1, &mut |_, _| {}).unwrap();
        loaded.save(&journal);
    });
    wait_for_label(&mut harness, "from the journal (0 blocks read");
    wait_for_label(&mut harness, "Portfolio (5)");
    // The same answers as the whole feed read once.
    let mut whole = candybar_core::mission::Mission::new();
    for m in &messages {
        whole.ingest_raw(m);
    }
    let m = &harness.state().mission.as_ref().unwrap().mission;
    assert_eq!(m.projects.len(), whole.projects.len());
    assert_eq!(
        m.decisions.len(),
        whole.decisions.len(),
        "nothing counted twice"
    );
}
