//! The window, driven like a user would (`egui_kittest`): rows from a seeded demo feed, typing a
//! filter, a parse error at its column, opening an event, copying it, exporting the filtered set,
//! and pictures of the main window in both themes.

use egui::accesskit::Role;
use egui_kittest::kittest::Queryable as _;
use egui_kittest::{Harness, SnapshotOptions};

use candybar::app::{AppInit, CandybarApp, Clock};
use candybar_bus::live::Live;
use candybar_core::demo::{Demo, DemoConfig};
use candybar_core::export::ExportFormat;
use candybar_core::registry::Registry;
use candybar_core::source::SourceState;
use candybar_core::store::StoreConfig;
use candybar_ui::ThemeChoice;

/// 2026-01-01 12:00:00 UTC.
const T0_US: i64 = 1_767_268_800_000_000;
const EVENTS: i64 = 600;

/// An app over 600 seeded demo events received 10 ms apart, with a fixed clock.
fn app(theme: ThemeChoice) -> Harness<'static, CandybarApp> {
    let mut live = Live::new(StoreConfig::default());
    let mut demo = Demo::new(DemoConfig::default(), &Registry::example());
    for i in 0..EVENTS {
        live.store.insert(&demo.next_message(T0_US + i * 10_000));
    }
    live.describe = "demo feed (seeded)".into();
    live.demo_reason = Some("test".into());
    live.state = SourceState::Connected {
        detail: "demo".into(),
    };
    let mut init = AppInit::new(live);
    init.theme = Some(theme);
    init.tz = Some(candybar_ui::time_fmt::TimeZoneChoice::Utc);
    init.clock = Clock::Fixed(T0_US + EVENTS * 10_000);
    let mut harness = Harness::builder()
        .with_size([1280.0, 800.0])
        .build_eframe(|cc| CandybarApp::new(cc, init));
    harness.run_steps(3);
    harness
}

fn filter_field<'h>(harness: &'h Harness<'_, CandybarApp>) -> egui_kittest::Node<'h> {
    harness.get_by_role(Role::TextInput)
}

fn type_filter(harness: &mut Harness<'_, CandybarApp>, text: &str) {
    filter_field(harness).click();
    harness.run_steps(2);
    filter_field(harness).type_text(text);
    harness.run_steps(4);
}

#[test]
fn the_stream_shows_rows_from_the_demo_feed() {
    let harness = app(ThemeChoice::Dark);
    let app = harness.state();
    assert_eq!(app.viewer.stream.view.len(), EVENTS as usize);
    // The newest rows are in view (follow), and their types are on screen.
    let newest = app.live.store.get(EVENTS as u64 - 1).unwrap();
    assert!(
        !harness
            .get_all_by_label(&newest.kind)
            .collect::<Vec<_>>()
            .is_empty(),
        "the newest event's type {} is not on screen",
        newest.kind
    );
    harness.get_by_label("600 events");
    harness.get_by_role_and_label(Role::Button, "Total events");
    harness.get_by_label(" DEMO ");
}

#[test]
fn typing_a_filter_narrows_the_rows_and_shows_the_count() {
    let mut harness = app(ThemeChoice::Dark);
    type_filter(&mut harness, "domain:llm");
    let app = harness.state();
    let shown = app.viewer.stream.view.len();
    assert!(
        shown > 0 && shown < EVENTS as usize,
        "{shown} rows for domain:llm"
    );
    for i in 0..shown {
        let seq = app.viewer.stream.view.get(i).unwrap();
        assert_eq!(app.live.store.get(seq).unwrap().domain, "llm");
    }
    harness.get_by_label(&format!("{shown} of 600"));
    // Rows of other domains are gone from the screen.
    assert!(harness.query_by_label("tool.mutation.write").is_none());
}

#[test]
fn a_filter_parse_error_points_at_its_column() {
    let mut harness = app(ThemeChoice::Dark);
    type_filter(&mut harness, "domain:llm AND (errors");
    let app = harness.state();
    let (col, message) = app
        .viewer
        .filter_error
        .clone()
        .expect("an unclosed parenthesis is an error");
    assert_eq!(col, 23, "the error is at the end, where ')' is missing");
    assert!(
        message.contains("column 16"),
        "and names the '(': {message}"
    );
    harness.get_by_label_contains(&format!("✖ filter, column {col}"));
    // The last good filter (none) keeps running: every event is still shown.
    assert_eq!(app.viewer.stream.view.len(), EVENTS as usize);
}

#[test]
fn clicking_a_row_opens_the_detail_and_copy_puts_the_event_on_the_clipboard() {
    let mut harness = app(ThemeChoice::Dark);
    type_filter(&mut harness, "llm.response");
    let first = harness.get_all_by_label("llm.response").next().unwrap();
    first.click();
    harness.run_steps(3);
    let app = harness.state();
    assert!(app.viewer.detail_open, "a click opens the detail pane");
    let seq = app.viewer.stream.selected.expect("a click selects the row");
    let event = app.live.store.get(seq).unwrap();
    assert_eq!(event.kind, "llm.response");
    harness.get_by_label("Metadata");
    harness.get_by_label("routing key");

    harness.get_by_label("📋 Copy event").click();
    harness.step();
    let copied: Vec<String> = harness
        .output()
        .platform_output
        .commands
        .iter()
        .filter_map(|c| match c {
            egui::OutputCommand::CopyText(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(copied.len(), 1, "one copy: {copied:?}");
    let json: serde_json::Value = serde_json::from_str(&copied[0]).unwrap();
    assert_eq!(json["type"], "llm.response");
    assert_eq!(json["seq"], seq);

    // Esc closes the pane (focus is not in a text field after the click).
    harness.key_press(egui::Key::Escape);
    harness.run_steps(2);
    assert!(!harness.state().viewer.detail_open);
}

#[test]
fn clicking_the_error_card_filters_to_errors() {
    let mut harness = app(ThemeChoice::Dark);
    harness
        .get_by_role_and_label(Role::Button, "Error rate")
        .click();
    harness.run_steps(3);
    let app = harness.state();
    assert_eq!(app.viewer.filter_text, "errors");
    assert!(app.viewer.stream.view.len() < EVENTS as usize);
}

#[test]
fn export_writes_the_filtered_events() {
    let mut harness = app(ThemeChoice::Dark);
    type_filter(&mut harness, "domain:agent");
    let shown = harness.state().viewer.stream.view.len();
    let dir = tempfile::tempdir().unwrap();
    for format in ExportFormat::ALL {
        let path = dir.path().join(format!("out.{}", format.extension()));
        harness.state_mut().export_filtered(&path, format);
        for _ in 0..200 {
            if harness.state().export.is_none() {
                break;
            }
            harness.step();
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert!(
            harness.state().export.is_none(),
            "{format:?} export did not finish"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let domains: Vec<String> = match format {
            ExportFormat::Ndjson => text
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["domain"].to_string()
                })
                .collect(),
            ExportFormat::Json => serde_json::from_str::<serde_json::Value>(&text)
                .unwrap()
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["domain"].to_string())
                .collect(),
            ExportFormat::Csv => csv::Reader::from_reader(text.as_bytes())
                .records()
                .map(|r| format!("\"{}\"", &r.unwrap()[5]))
                .collect(),
        };
        assert_eq!(domains.len(), shown, "{format:?}");
        assert!(domains.iter().all(|d| d == "\"agent\""), "{format:?}");
    }
    // A file that cannot be written is reported, not a panic.
    harness.state_mut().export_filtered(
        std::path::Path::new("/nonexistent/x.csv"),
        ExportFormat::Csv,
    );
    for _ in 0..200 {
        if harness
            .query_by_label_contains("the folder does not exist")
            .is_some()
        {
            break;
        }
        harness.step();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    harness.get_by_label_contains("the folder does not exist");
}

fn snapshot(harness: &mut Harness<'_, CandybarApp>, name: &str) {
    // The frame-rate figures depend on the machine: mask them.
    let fps = harness.get_by_label_contains("ms/frame").rect();
    harness.mask(fps);
    harness.snapshot_options(
        name,
        &SnapshotOptions::new().threshold(1.0).max_failed_pixels(200),
    );
}

#[test]
fn snapshot_dark_with_detail() {
    let mut harness = app(ThemeChoice::Dark);
    let first = harness.get_all_by_label("llm.response").next().unwrap();
    first.click();
    harness.run_steps(4);
    snapshot(&mut harness, "main_dark_detail");
}

#[test]
fn snapshot_light() {
    let mut harness = app(ThemeChoice::Light);
    snapshot(&mut harness, "main_light");
}

#[test]
fn a_disconnection_shows_as_a_separator_row() {
    let mut harness = app(ThemeChoice::Dark);
    let at = T0_US + EVENTS * 10_000;
    harness.state_mut().live.store.record_gap(
        at,
        at + 4_000_000,
        "connection reset by the broker",
        false,
    );
    let mut demo = Demo::new(
        DemoConfig {
            seed: 9,
            ..DemoConfig::default()
        },
        &Registry::example(),
    );
    for i in 0..5 {
        let m = demo.next_message(at + 4_000_000 + i * 10_000);
        harness.state_mut().live.store.insert(&m);
    }
    harness.run_steps(4);
    harness.get_by_label_contains("disconnected for 4.0 s");
    harness.get_by_label_contains("connection reset by the broker");
}

#[test]
fn a_night_nothing_recorded_reads_as_such_in_hours() {
    let mut harness = app(ThemeChoice::Dark);
    let at = T0_US + EVENTS * 10_000;
    let night = (14 * 3600 + 30 * 60) * 1_000_000;
    harness.state_mut().live.store.record_gap(
        at,
        at + night,
        candybar_core::source::NOT_RECORDING,
        false,
    );
    let mut demo = Demo::new(DemoConfig::default(), &Registry::example());
    harness
        .state_mut()
        .live
        .store
        .insert(&demo.next_message(at + night + 10_000));
    harness.run_steps(4);
    harness.get_by_label_contains("nothing recorded for 14 h 30 min");
}

#[test]
fn the_connection_dialog_explains_a_bad_url() {
    let mut harness = app(ThemeChoice::Dark);
    harness.get_by_label("Connection…").click();
    harness.run_steps(3);
    harness.get_by_label("RabbitMQ").click();
    harness.run_steps(2);
    harness.state_mut().viewer.form.url = "http://rabbit:5672".into();
    harness.run_steps(1);
    harness.get_by_label("Connect").click();
    harness.run_steps(3);
    harness.get_by_label_contains("must start with amqp://");
    // The running source was not replaced by a broken one.
    assert_eq!(harness.state().live.describe, "demo feed (seeded)");
}

#[test]
fn keys_move_the_selection_and_scrolling_up_stops_following() {
    let mut harness = app(ThemeChoice::Dark);
    assert!(harness.state().viewer.stream.follow);
    harness.key_press(egui::Key::ArrowUp);
    harness.run_steps(2);
    assert_eq!(
        harness.state().viewer.stream.selected,
        Some(EVENTS as u64 - 1),
        "the newest row"
    );
    harness.key_press(egui::Key::ArrowUp);
    harness.run_steps(2);
    assert_eq!(
        harness.state().viewer.stream.selected,
        Some(EVENTS as u64 - 2)
    );
    assert!(
        !harness.state().viewer.stream.follow,
        "moving up leaves the end"
    );
    harness.key_press(egui::Key::Enter);
    harness.run_steps(2);
    assert!(harness.state().viewer.detail_open, "Enter opens the detail");
    harness.key_press(egui::Key::End);
    harness.run_steps(2);
    assert_eq!(
        harness.state().viewer.stream.selected,
        Some(EVENTS as u64 - 1)
    );
    assert!(harness.state().viewer.stream.follow, "End follows again");

    // The mouse wheel up over the table stops following.
    let row = harness
        .get_all_by_label("Time")
        .next()
        .unwrap()
        .rect()
        .center()
        + egui::vec2(0.0, 200.0);
    harness.hover_at(row);
    harness.event(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Point,
        delta: egui::vec2(0.0, 300.0),
        modifiers: egui::Modifiers::NONE,
        phase: egui::TouchPhase::Move,
    });
    harness.run_steps(6);
    assert!(
        !harness.state().viewer.stream.follow,
        "scrolling up stops following"
    );
    harness.get_by_label("⬇ Follow").click();
    harness.run_steps(4);
    assert!(harness.state().viewer.stream.follow);
}

#[test]
fn charts_show_the_demo_domains_and_a_click_filters_the_stream() {
    let mut harness = app(ThemeChoice::Dark);
    harness.get_by_label("📈 Charts").click();
    harness.run_steps(4);
    harness.get_by_label("Events per second, by domain");
    harness.get_by_label_contains("Latency (receive");
    // The legend names the demo's domains.
    for domain in ["agent", "llm", "tool"] {
        assert!(
            harness.query_all_by_label(domain).count() >= 1,
            "no {domain} in the legend"
        );
    }
    snapshot(&mut harness, "charts_dark");
    // A domain in the legend filters the Stream to it.
    harness.get_by_label("tool").click();
    harness.run_steps(4);
    assert_eq!(harness.state().viewer.filter_text, "domain:tool");
    assert_eq!(harness.state().viewer.view, candybar_ui::View::Stream);
    harness.get_by_label("📈 Charts").click();
    harness.run_steps(3);
    // A day's window: one column per pixel, each several seconds, with the busiest second drawn.
    harness.get_by_label("24 h").click();
    harness.run_steps(3);
    harness.get_by_label_contains("per column: bands show the mean");
    harness.get_by_label("busiest second");
    harness.get_by_label("llm.response").click();
    harness.run_steps(4);
    let app = harness.state();
    assert_eq!(app.viewer.filter_text, "llm.response");
    assert_eq!(app.viewer.view, candybar_ui::View::Stream);
    assert!(!app.viewer.stream.view.is_empty() && app.viewer.stream.view.len() < EVENTS as usize);
}

#[test]
fn brushing_the_rates_chart_filters_the_stream_to_that_time() {
    let mut harness = app(ThemeChoice::Dark);
    harness.get_by_label("📈 Charts").click();
    harness.run_steps(3);
    harness.get_by_label("1 min").click();
    harness.run_steps(3);
    let rect = harness
        .state()
        .viewer
        .charts
        .rates_rect()
        .expect("the rates chart was drawn");
    // The demo's 6 s of events sit at the right edge of the minute; drag from 15 s before the
    // end to 3 s before it (the x axis spans the plot's frame minus its margins, so read the
    // range back from the filter rather than from pixels).
    let y = rect.center().y;
    let x_at = |f: f32| rect.left() + rect.width() * f;
    harness.drag_at(egui::pos2(x_at(0.75), y));
    harness.run_steps(2);
    for f in [0.8, 0.9, 0.95] {
        harness.hover_at(egui::pos2(x_at(f), y));
        harness.run_steps(1);
    }
    harness.drop_at(egui::pos2(x_at(0.95), y));
    harness.run_steps(4);
    let app = harness.state();
    assert_eq!(
        app.viewer.view,
        candybar_ui::View::Stream,
        "brushing shows the Stream"
    );
    let filter = candybar_core::filter::parse(&app.viewer.filter_text).unwrap();
    let candybar_core::filter::Expr::Term(candybar_core::filter::Term::Between(
        Some(from),
        Some(to),
    )) = filter
    else {
        panic!("not a time range: {}", app.viewer.filter_text);
    };
    let end = T0_US + EVENTS * 10_000;
    assert!(
        from < T0_US && to > T0_US && to < end,
        "the brush covers the start of the feed, not its end: {}",
        app.viewer.filter_text
    );
    let shown = app.viewer.stream.view.len();
    let expected = ((to - T0_US) / 10_000) as usize;
    assert_eq!(shown, expected, "{}", app.viewer.filter_text);
    for i in 0..shown {
        let seq = app.viewer.stream.view.get(i).unwrap();
        let received = app.live.store.get(seq).unwrap().received_us;
        assert!((from..to).contains(&received));
    }
}

#[test]
fn a_changed_registry_reloads_and_a_broken_one_is_reported() {
    use candybar_ui::RegistryStatus;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.yaml");
    std::fs::write(&path, "services:\n  a: {}\n").unwrap();
    let mut live = Live::new(StoreConfig::default());
    live.describe = "demo feed (seeded)".into();
    let mut init = AppInit::new(live);
    init.registry = candybar_core::registry::Registry::from_yaml("services:\n  a: {}\n").unwrap();
    init.registry_path = Some(path.clone());
    let mut harness = Harness::builder()
        .with_size([1280.0, 800.0])
        .build_eframe(|cc| CandybarApp::new(cc, init));
    harness.run_steps(2);
    harness.get_by_label("registry: 1 services");

    let wait_for = |harness: &mut Harness<'_, CandybarApp>,
                    what: &dyn Fn(&RegistryStatus) -> bool| {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while std::time::Instant::now() < end {
            harness.step();
            if what(&harness.state().registry_status) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!(
            "registry status stayed {:?}",
            harness.state().registry_status
        );
    };
    std::fs::write(&path, "services:\n  a: {}\n  b: {}\n").unwrap();
    wait_for(&mut harness, &|s| {
        matches!(s, RegistryStatus::Loaded { services: 2, .. })
    });
    harness.run_steps(2);
    harness.get_by_label("registry: 2 services");

    std::fs::write(&path, "services:\n  a: [unclosed\n").unwrap();
    wait_for(&mut harness, &|s| {
        matches!(s, RegistryStatus::Problem { .. })
    });
    harness.run_steps(2);
    harness.get_by_label("registry: ✖ not reloaded");
    // The last good registry stays in use.
    assert_eq!(harness.state().registry.services.len(), 2);
}

/// Clicks the first widget labelled `service`: the Stream must show that service's events.
fn clicking_shows_its_events_in_the_stream(harness: &mut Harness<'_, CandybarApp>, service: &str) {
    harness
        .get_all_by_label(service)
        .next()
        .expect("a widget with that label")
        .click();
    harness.run_steps(4);
    let app = harness.state();
    assert_eq!(app.viewer.filter_text, format!("source:{service}"));
    assert_eq!(app.viewer.view, candybar_ui::View::Stream);
    assert!(!app.viewer.stream.view.is_empty());
}

#[test]
fn health_lists_the_registry_services_and_a_click_filters_the_stream() {
    let mut harness = app(ThemeChoice::Dark);
    harness.get_by_label("♥ Health").click();
    harness.run_steps(4);
    // The demo feed's services have been heard from: healthy; the planned one says so.
    assert!(harness.query_all_by_label("hookd").count() >= 1);
    snapshot(&mut harness, "health_dark");
    assert!(harness.query_all_by_label("healthy").count() >= 3);
    assert!(harness.query_all_by_label("planned").count() >= 1);
    clicking_shows_its_events_in_the_stream(&mut harness, "llm-gateway");
}

#[test]
fn flow_shows_the_registry_services_live_edges_and_a_click_filters_the_stream() {
    let mut harness = app(ThemeChoice::Dark);
    harness.get_by_label("🔀 Flow").click();
    harness.run_steps(4);
    // The example registry's layers and services.
    for label in [
        "external sources",
        "collectors",
        "hookd",
        "llm-cost-calculator",
        "event-store-manager",
    ] {
        assert!(
            harness.query_all_by_label(label).count() >= 1,
            "no {label} in the Flow view"
        );
    }
    // The demo feed's llm.response events make the gateway → cost calculator edge live.
    let edge = {
        use egui_kittest::kittest::NodeT as _;
        harness
            .get_by_label_contains("llm-gateway → llm-cost-calculator, ")
            .accesskit_node()
            .label()
            .unwrap_or_default()
    };
    let rate: f64 = edge
        .rsplit(", ")
        .next()
        .and_then(|r| r.strip_suffix(" events/s"))
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no rate in {edge:?}"));
    assert!(rate > 0.0, "{edge}");
    snapshot(&mut harness, "flow_dark");
    clicking_shows_its_events_in_the_stream(&mut harness, "llm-gateway");
}

/// A health endpoint that answers with whatever status `status` holds (a stand-in: the test
/// needs to make a service fail on demand).
fn health_endpoint(status: std::sync::Arc<std::sync::atomic::AtomicU16>) -> String {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let serve = move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let code = status.load(std::sync::atomic::Ordering::Relaxed);
            let _ = write!(
                s,
                "HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            );
        }
    };
    std::thread::Builder::new()
        .name("health-endpoint".into())
        .spawn(serve)
        .expect("thread");
    format!("http://{addr}/health")
}

#[test]
fn health_turns_red_when_a_polled_endpoint_fails_and_green_when_it_recovers() {
    use std::sync::atomic::{AtomicU16, Ordering};
    let status = std::sync::Arc::new(AtomicU16::new(500));
    let url = health_endpoint(status.clone());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let registry = Registry::from_yaml(&format!(
        "services:\n  probe-me:\n    type: event-consumer\n    endpoints: {{ health: \"{url}\" }}\n"
    ))
    .unwrap();
    let mut init = AppInit::new(Live::new(StoreConfig::default()));
    init.registry = registry;
    init.view = Some(candybar_ui::View::Health);
    init.health_poll = Some((
        rt.handle().clone(),
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(1),
    ));
    let mut harness = Harness::builder()
        .with_size([1280.0, 800.0])
        .build_eframe(|cc| CandybarApp::new(cc, init));
    let wait_for = |harness: &mut Harness<'_, CandybarApp>, text: &str| {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while harness.query_by_label_contains(text).is_none() {
            assert!(std::time::Instant::now() < end, "never showed {text:?}");
            std::thread::sleep(std::time::Duration::from_millis(50));
            harness.run_steps(1);
        }
    };
    wait_for(&mut harness, "✖ 500");
    assert!(harness.query_all_by_label("failing").count() >= 1);
    status.store(200, Ordering::Relaxed);
    wait_for(&mut harness, "200 · ");
    assert!(harness.query_all_by_label("healthy").count() >= 1);
    assert_eq!(harness.query_all_by_label("failing").count(), 0);
}

#[test]
fn without_a_registry_real_events_do_not_show_the_example_services() {
    // A real broker's events and no registry.yaml: Flow and Health say how to configure one
    // instead of showing the bundled example's services as if they were the user's platform.
    let mut live = Live::new(StoreConfig::default());
    let mut demo = Demo::new(DemoConfig::default(), &Registry::example());
    for i in 0..EVENTS {
        live.store.insert(&demo.next_message(T0_US + i * 10_000));
    }
    live.describe = "amqp://guest:****@127.0.0.1:5672/%2f exchange events".into();
    live.state = SourceState::Connected {
        detail: "events".into(),
    };
    let mut init = AppInit::new(live);
    init.registry = Registry::default();
    init.clock = Clock::Fixed(T0_US + EVENTS * 10_000);
    init.view = Some(candybar_ui::View::Health);
    let mut harness = Harness::builder()
        .with_size([1280.0, 800.0])
        .build_eframe(|cc| CandybarApp::new(cc, init));
    harness.run_steps(3);
    harness.get_by_label("No registry configured");
    harness.get_by_label_contains("CANDYBAR_REGISTRY");
    assert!(
        harness.query_by_label("hookd").is_none(),
        "an example service is listed as the user's"
    );
    harness.get_by_label("registry: none");
    harness.get_by_label("🔀 Flow").click();
    harness.run_steps(3);
    harness.get_by_label("No registry configured");
    // What the traffic shows is the user's (the events came from hookd); the services only the
    // example declares (consumers that publish nothing) are not.
    harness.get_by_label("hookd");
    assert!(
        harness.query_by_label("llm-cost-calculator").is_none(),
        "a service declared only by the example is drawn"
    );
}

#[test]
fn a_trace_opens_from_the_detail_pane_and_leads_back_to_its_events() {
    let mut harness = app(ThemeChoice::Dark);
    // An invocation that started and ended in the demo feed, with its correlation id.
    let (seq, corr) = {
        let store = &harness.state().live.store;
        (0..EVENTS as u64)
            .filter_map(|s| store.get(s))
            .find(|e| e.kind.ends_with("invocation.started") && !e.correlation_ids.is_empty())
            .map(|e| (e.seq, e.correlation_ids[0].clone()))
            .expect("the demo feed has invocations")
    };
    {
        let app = harness.state_mut();
        app.viewer.stream.select(seq);
        app.viewer.detail_open = true;
    }
    harness.run_steps(3);
    // The button sits under the event's body in the detail pane: scrolled to, then pressed.
    harness.get_by_label("trace").scroll_to_me();
    harness.run_steps(3);
    harness.get_by_label("trace").click();
    harness.run_steps(3);
    let app = harness.state();
    assert_eq!(app.viewer.view, candybar_ui::View::Traces);
    assert_eq!(app.viewer.trace.key, corr);
    let trace = app.viewer.trace.trace.clone().expect("the trace is built");
    assert!(trace.events >= 2, "{trace:?}");
    let first = trace.spans.first().expect("a span");
    harness.get_by_label_contains(" events · ");
    // Its bars are named for assistive technology: the first one, then its events.
    let name = match &first.agent {
        Some(a) => format!("{} · {a}", first.name),
        None => first.name.clone(),
    };
    harness
        .get_all_by_label(&name)
        .next()
        .expect("the first bar")
        .click();
    harness.run_steps(3);
    assert_eq!(harness.state().viewer.trace.selected, Some(0));
    let clock = harness.state().viewer.tz.clock(
        harness
            .state()
            .live
            .store
            .meta(first.start_seq)
            .unwrap()
            .received_us,
    );
    harness
        .get_all_by_label_contains(&clock)
        .next()
        .expect("its start event")
        .click();
    harness.run_steps(3);
    let app = harness.state();
    assert_eq!(app.viewer.view, candybar_ui::View::Stream);
    assert_eq!(app.viewer.stream.selected, Some(first.start_seq));
}
