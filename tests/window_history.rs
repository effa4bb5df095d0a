//! The window's history, end to end under a real X server and a real broker: it records what it
//! receives into the journal and opens on it the next time; with `candybar record` running it
//! reads the recorder's journal instead of consuming a second copy, and records itself once the
//! recorder stops.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::journal::{assert_each_once, query_ids, record, wait_for_count};
use support::{Candybar, Xvfb, path_str, shared_broker_url, unique};

fn batch(prefix: &str, n: usize) -> Vec<(String, Vec<u8>, Option<String>)> {
    (0..n)
        .map(|i| {
            let body = format!(
                r#"{{"event_id":"{prefix}-{i}","event_type":"history.window.completed","payload":{{"i":{i}}}}}"#
            );
            ("history.window.completed".to_owned(), body.into_bytes(), None)
        })
        .collect()
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// The window on `exchange`, journal at `journal`, closing itself after `secs`.
fn window(x: &Xvfb, url: &str, exchange: &str, journal: &Path, secs: u32, dir: &Path) -> Candybar {
    window_env(x, url, exchange, journal, secs, dir, &[])
}

/// [`window`] with more environment (a socket of its own a recorder can reach).
fn window_env(
    x: &Xvfb,
    url: &str,
    exchange: &str,
    journal: &Path,
    secs: u32,
    dir: &Path,
    env: &[(&str, &str)],
) -> Candybar {
    let mut envs = vec![
        ("DISPLAY", x.display.as_str()),
        ("RUST_LOG", "warn,candybar=info"),
        ("XDG_DATA_HOME", path_str(dir)),
    ];
    envs.extend_from_slice(env);
    Candybar::spawn_env(
        &[
            "--amqp",
            url,
            "--exchange",
            exchange,
            "--journal",
            path_str(journal),
            "--no-tray",
            "--view",
            "stream",
            "--exit-after",
            &secs.to_string(),
            "--stats-out",
            path_str(&dir.join("stats.json")),
            "--screenshot",
            path_str(&dir.join("window.png")),
        ],
        &envs,
    )
}

/// Waits for the window to exit cleanly; its frame statistics.
fn finished(app: Candybar, dir: &Path) -> Value {
    let (code, stderr) = app.wait(Duration::from_mins(1));
    assert_eq!(code, Some(0), "the window did not exit cleanly:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    serde_json::from_slice(&std::fs::read(dir.join("stats.json")).expect("stats on exit"))
        .expect("stats are JSON")
}

#[test]
fn the_window_records_what_it_receives_and_opens_on_it_the_next_time() {
    let x = Xvfb::start();
    let url = shared_broker_url();
    let exchange = unique("t.history");
    support::declare_exchange(&url, &exchange);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");

    let app = window(&x, &url, &exchange, &journal, 6, dir.path());
    app.wait_stderr("recording into the journal", 1, Duration::from_secs(30));
    app.wait_stderr("Connected", 1, Duration::from_secs(30));
    support::lapin_publish(&url, &exchange, &batch("first", 200));
    let report = finished(app, dir.path());
    assert_eq!(report["events_received"], 200, "{report}");
    // Closing the window wrote the last block: every event is in the journal.
    assert_eq!(query_ids(&journal, &[]), ids("first", 200));

    // Opened again with nothing new published: the past is there, not an empty table.
    let again = tempfile::tempdir().unwrap();
    let app = window(&x, &url, &exchange, &journal, 4, again.path());
    let report = finished(app, again.path());
    assert_eq!(report["events_stored"], 200, "{report}");
    if let Ok(out) = std::env::var("CANDYBAR_ARTIFACTS") {
        let _ = std::fs::create_dir_all(&out);
        let _ = std::fs::copy(
            again.path().join("window.png"),
            Path::new(&out).join("window-history.png"),
        );
    }
}

#[test]
fn with_a_recorder_running_the_window_reads_its_journal_then_takes_over_when_it_stops() {
    let x = Xvfb::start();
    let url = shared_broker_url();
    let exchange = unique("t.history.rec");
    let queue = unique("candybar.test.history");
    support::declare_exchange(&url, &exchange);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let recorder = record(&url, &exchange, ["--durable-queue", &queue], &journal);
    recorder.wait_stderr("connected", 1, Duration::from_secs(20));
    support::lapin_publish(&url, &exchange, &batch("a", 100));
    assert_eq!(
        wait_for_count(&journal, 100, Duration::from_secs(20)).len(),
        100
    );

    let app = window(&x, &url, &exchange, &journal, 30, dir.path());
    app.wait_stderr("reading the journal at", 1, Duration::from_secs(30));
    assert!(
        app.stderr().contains("candybar record, pid"),
        "the window names the recorder:\n{}",
        app.stderr()
    );
    // 100 from the journal when it opened, 100 read live from it, 100 from the broker.
    hand_back(app, recorder, (&url, &exchange), &journal, dir.path(), 2);
}

/// While `recorder` writes `journal` and `app` reads it: 100 "b" events land in it once; then
/// the recorder stops, the window records again from the broker (its `connected`-th connection)
/// and 100 "c" events are published. In the end the window received a, b and c once each — no
/// second copy of what the recorder consumed — and the journal holds each once.
fn hand_back(
    app: Candybar,
    recorder: Candybar,
    (url, exchange): (&str, &str),
    journal: &Path,
    dir: &Path,
    connected: usize,
) {
    // Published while both run: the recorder consumes them once; the window reads its journal.
    support::lapin_publish(url, exchange, &batch("b", 100));
    assert_eq!(
        wait_for_count(journal, 200, Duration::from_secs(20)).len(),
        200
    );
    // The recorder stops: the window records from then on.
    recorder.signal("TERM");
    let (code, err) = recorder.wait(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{err}");
    app.wait_stderr(
        "this window records into the journal",
        1,
        Duration::from_secs(10),
    );
    // Its own queue is bound once it is connected (the recorder's durable queue stays behind).
    app.wait_stderr("Connected", connected, Duration::from_secs(20));
    support::lapin_publish(url, exchange, &batch("c", 100));

    let report = finished(app, dir);
    assert_eq!(report["events_received"], 300, "{report}");
    assert_eq!(report["events_stored"], 300, "{report}");
    let expected: Vec<String> = ["a", "b", "c"].iter().flat_map(|p| ids(p, 100)).collect();
    assert_each_once(&query_ids(journal, &[]), &expected, "");
}

#[test]
fn a_recorder_started_while_the_window_records_is_handed_the_journal() {
    let x = Xvfb::start();
    let url = shared_broker_url();
    let exchange = unique("t.history.hand");
    let queue = unique("candybar.test.handover");
    support::declare_exchange(&url, &exchange);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let socket = dir.path().join("candybar.sock");
    let socket_env = [("CANDYBAR_SOCKET", path_str(&socket))];
    let recorder_args = [
        "record",
        "--amqp",
        &url,
        "--exchange",
        &exchange,
        "--durable-queue",
        &queue,
        "--journal",
        path_str(&journal),
    ];

    let app = window_env(&x, &url, &exchange, &journal, 40, dir.path(), &socket_env);
    app.wait_stderr("recording into the journal", 1, Duration::from_secs(30));
    app.wait_stderr("Connected", 1, Duration::from_secs(30));
    support::lapin_publish(&url, &exchange, &batch("a", 100));
    assert_eq!(
        wait_for_count(&journal, 100, Duration::from_secs(20)).len(),
        100
    );

    // A recorder that cannot reach the window (another socket) is told what to do, not hung.
    let lost = dir.path().join("elsewhere.sock");
    let stray = Candybar::spawn_env(&recorder_args, &[("CANDYBAR_SOCKET", path_str(&lost))]);
    let (code, err) = stray.wait(Duration::from_secs(20));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("the candybar window writes") && err.contains("close it"),
        "{err}"
    );

    // One that can: the window writes its last block, lets go, and reads the recorder's journal.
    let recorder = Candybar::spawn_env(&recorder_args, &socket_env);
    recorder.wait_stderr("handed the journal over", 1, Duration::from_secs(20));
    app.wait_stderr("reads it live from now on", 1, Duration::from_secs(10));
    recorder.wait_stderr("connected", 1, Duration::from_secs(20));
    // Connected thrice in the end: the broker, the recorder's journal, the broker again.
    // 100 from the broker, 100 read from the recorder's journal, 100 from the broker again.
    hand_back(app, recorder, (&url, &exchange), &journal, dir.path(), 3);
}
