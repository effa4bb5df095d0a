//! The real binary's window under a real X server (Xvfb), fed by a real broker: it connects,
//! shows what is published, takes a screenshot of itself and exits cleanly.

mod support;

use std::time::Duration;

use support::{Candybar, Xvfb, path_str, shared_broker_url, unique};

#[test]
fn the_window_renders_broker_events_and_exits_cleanly() {
    let x = Xvfb::start();
    let url = shared_broker_url();
    let exchange = unique("t.window");
    let queue = unique("candybar.test.window");
    support::declare_exchange(&url, &exchange);
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("window.png");
    let stats = dir.path().join("stats.json");
    let app = Candybar::spawn_env(
        &[
            "--amqp",
            &url,
            "--exchange",
            &exchange,
            "--durable-queue",
            &queue,
            "--screenshot",
            path_str(&png),
            "--exit-after",
            "8",
            "--stats-out",
            path_str(&stats),
            "--utc",
        ],
        &[
            ("DISPLAY", x.display.as_str()),
            ("RUST_LOG", "warn,candybar=info"),
            ("XDG_DATA_HOME", path_str(dir.path())),
        ],
    );
    app.wait_stderr("Connected", 1, Duration::from_secs(30));
    let events: Vec<(String, Vec<u8>, Option<String>)> = (0..200)
        .map(|i| {
            (
                "xvfb.window.completed".to_owned(),
                format!(
                    r#"{{"event_id":"w-{i}","event_type":"xvfb.window.completed","source":{{"app":"window-test"}},"payload":{{"i":{i}}}}}"#
                )
                .into_bytes(),
                None,
            )
        })
        .collect();
    support::lapin_publish(&url, &exchange, &events);
    let (code, stderr) = app.wait(Duration::from_mins(1));
    assert_eq!(
        code,
        Some(0),
        "the window did not exit cleanly; stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    // It drew a real picture: the window's size, many colours (text, stripes, chips).
    let img = image::open(&png)
        .unwrap_or_else(|e| panic!("no screenshot at {}: {e}; stderr:\n{stderr}", png.display()))
        .to_rgba8();
    assert!(
        img.width() >= 640 && img.height() >= 400,
        "{}x{}",
        img.width(),
        img.height()
    );
    let colours: std::collections::HashSet<[u8; 4]> = img.pixels().map(|p| p.0).collect();
    assert!(
        colours.len() > 50,
        "the screenshot looks blank ({} colours)",
        colours.len()
    );
    if let Ok(dir) = std::env::var("CANDYBAR_ARTIFACTS") {
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::copy(&png, std::path::Path::new(&dir).join("window-amqp.png"));
    }

    // Every published event reached the window, which kept drawing frames.
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stats).expect("stats written on exit")).unwrap();
    assert_eq!(report["events_received"], 200, "{report}");
    assert!(report["frames"].as_u64().unwrap() >= 3, "{report}");
    assert!(report["first_frame_ms"].as_f64().is_some(), "{report}");
}
