//! The agent constellation, driven like a user would (`egui_kittest`): a seeded demo platform's
//! agents drawn by the GPU (the wgpu render state egui uses, on lavapipe here) and by the
//! software fallback, hovering a star names its agent, clicking it filters the Stream to that
//! agent's events.

use egui_kittest::kittest::Queryable as _;
use egui_kittest::{Harness, SnapshotOptions};

use candybar::app::{AppInit, CandybarApp, Clock};
use candybar_bus::live::Live;
use candybar_core::demo::{Demo, DemoConfig};
use candybar_core::registry::Registry;
use candybar_core::source::SourceState;
use candybar_core::store::StoreConfig;
use candybar_ui::{ThemeChoice, View};

/// 2026-01-01 12:00:00 UTC.
const T0_US: i64 = 1_767_268_800_000_000;
const EVENTS: i64 = 3000;

/// An app over a seeded demo platform of 60 agents, its constellation laid out to rest.
fn app(gpu: bool) -> Harness<'static, CandybarApp> {
    let mut live = Live::new(StoreConfig::default());
    let mut demo = Demo::new(
        DemoConfig {
            agents: 60,
            ..DemoConfig::default()
        },
        &Registry::example(),
    );
    for i in 0..EVENTS {
        live.store.insert(&demo.next_message(T0_US + i * 10_000));
    }
    live.describe = "demo feed (seeded)".into();
    live.state = SourceState::Connected {
        detail: "demo".into(),
    };
    let now = T0_US + EVENTS * 10_000 + 5_000_000;
    let mut init = AppInit::new(live);
    init.theme = Some(ThemeChoice::Dark);
    init.tz = Some(candybar_ui::time_fmt::TimeZoneChoice::Utc);
    init.clock = Clock::Fixed(now);
    let builder = Harness::builder().with_size([1280.0, 800.0]);
    let builder = if gpu { builder.wgpu() } else { builder };
    let mut harness = builder.build_eframe(|cc| CandybarApp::new(cc, init));
    harness.run_steps(2);
    harness.get_by_label("✨ Agents").click();
    harness.run_steps(2);
    let app = harness.state_mut();
    app.viewer.constellation.settle_now(&app.live.store, now);
    harness.run_steps(3);
    harness
}

#[test]
fn the_constellation_draws_the_agents_on_the_gpu() {
    let mut harness = app(true);
    let app = harness.state();
    assert!(
        app.viewer.constellation.on_gpu(),
        "drawn by the wgpu pipelines"
    );
    assert!(app.viewer.constellation.settled());
    let agents = app.live.store.agents();
    assert_eq!(agents.agents.len(), 60, "every demo agent is a star");
    assert!(
        agents.link_count() >= 30,
        "teams hand chains to each other: {} links",
        agents.link_count()
    );
    harness.get_by_label("60 agents");
    harness.get_by_label_contains("layout: at rest");
    let fps = harness.get_by_label_contains("ms/frame").rect();
    harness.mask(fps);
    harness.snapshot_options(
        "constellation_dark",
        &SnapshotOptions::new().threshold(1.0).max_failed_pixels(300),
    );
}

#[test]
fn without_a_wgpu_render_state_the_busiest_agents_are_drawn_with_shapes() {
    let harness = app(false);
    let app = harness.state();
    assert!(!app.viewer.constellation.on_gpu(), "the software path");
    assert!(app.viewer.constellation.settled());
    harness.get_by_label_contains("software: the 60 busiest shown");
    // Every agent has a place on screen, inside the view.
    for i in 0..app.live.store.agents().agents.len() {
        let at = app.viewer.constellation.screen_pos(i).unwrap();
        assert!(
            at.x > 90.0 && at.x < 1280.0 && at.y > 110.0 && at.y < 800.0,
            "{i} at {at:?}"
        );
    }
}

#[test]
fn hovering_a_star_names_its_agent_and_a_click_filters_the_stream() {
    let mut harness = app(true);
    assert!(harness.state().viewer.constellation.on_gpu());
    // The busiest agent.
    let (i, name) = {
        let app = harness.state();
        let agents = app.live.store.agents();
        let i = (0..agents.agents.len())
            .max_by_key(|&i| agents.agents[i].stats.events)
            .unwrap();
        (
            i,
            app.live
                .store
                .interner()
                .resolve(agents.agents[i].name)
                .to_owned(),
        )
    };
    let at = harness.state().viewer.constellation.screen_pos(i).unwrap();
    harness.hover_at(at);
    harness.run_steps(3);
    assert_eq!(harness.state().viewer.constellation.hovered(), Some(i));
    // The hover card: the agent's name and what it did.
    harness.get_by_label(&name);
    harness.get_by_label_contains("events/min");
    harness.event(egui::Event::PointerButton {
        pos: at,
        button: egui::PointerButton::Primary,
        pressed: true,
        modifiers: egui::Modifiers::NONE,
    });
    harness.event(egui::Event::PointerButton {
        pos: at,
        button: egui::PointerButton::Primary,
        pressed: false,
        modifiers: egui::Modifiers::NONE,
    });
    harness.run_steps(4);
    let app = harness.state();
    assert_eq!(app.viewer.filter_text, format!("agent:{name}"));
    assert_eq!(app.viewer.view, View::Stream);
    let shown = app.viewer.stream.view.len();
    assert!(shown > 0 && shown < EVENTS as usize, "{shown} events");
    for k in 0..shown {
        let seq = app.viewer.stream.view.get(k).unwrap();
        assert_eq!(
            app.live.store.get(seq).unwrap().agent.as_deref(),
            Some(name.as_str())
        );
    }
}

#[test]
fn ctrl_clicking_a_star_opens_its_latest_session_as_a_trace() {
    let mut harness = app(true);
    let (i, session) = {
        let app = harness.state();
        let agents = app.live.store.agents();
        let i = (0..agents.agents.len())
            .filter(|&i| agents.agents[i].last_session != candybar_core::intern::Sym::NONE)
            .max_by_key(|&i| agents.agents[i].stats.events)
            .expect("an agent with a session");
        let session = app
            .live
            .store
            .interner()
            .resolve(agents.agents[i].last_session)
            .to_owned();
        (i, session)
    };
    let at = harness.state().viewer.constellation.screen_pos(i).unwrap();
    harness.hover_at(at);
    harness.run_steps(3);
    harness.get_by_label_contains("Ctrl-click: its latest session as a trace");
    harness.event(egui::Event::ModifiersChanged(egui::Modifiers::COMMAND));
    for pressed in [true, false] {
        harness.event(egui::Event::PointerButton {
            pos: at,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: egui::Modifiers::COMMAND,
        });
    }
    harness.run_steps(4);
    let app = harness.state();
    assert_eq!(app.viewer.view, View::Traces);
    assert_eq!(app.viewer.trace.key, session);
    let trace = app.viewer.trace.trace.as_ref().expect("built");
    assert!(trace.events > 0, "{trace:?}");
}
