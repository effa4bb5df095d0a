//! The bus under faults and hostile input, each from the hostile test run that found it: a port
//! that never speaks AMQP, a frozen broker, names over AMQP's limit, a queue that exists with
//! other arguments, TLS to a plain port, a refused permission, terminal escapes and sloppy
//! JSON in events, and bodies cut to a small cap. Real RabbitMQ nodes (`.ci/rabbitmq`), the
//! real binary; the silent listener is a plain TCP socket, as the fault needs.

// Helpers outside `#[test]` functions: a failed step panics with its message.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use lapin::types::{AMQPValue, FieldTable};
use serde_json::Value;
use support::{Broker, Candybar, run, shared_broker_url, unique};

/// Runs `tail` and checks that it gave up in words: exit 2, `needle` in its error, in time.
fn gives_up(args: &[&str], needle: &str) -> String {
    let started = Instant::now();
    let (code, out, err) = run(args);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(code, Some(2), "{args:?}: {out}\n{err}");
    assert!(err.contains(needle), "no '{needle}' in:\n{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    err
}

#[test]
fn a_port_that_never_speaks_amqp_is_reported_within_seconds() {
    // Accepts TCP and says nothing, like a wrong service or a hung broker.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let tail = Candybar::spawn(&["tail", "--amqp", &url]);
    let started = Instant::now();
    tail.wait_stderr("connecting to", 1, Duration::from_secs(5));
    tail.wait_stderr("no answer from the broker", 1, Duration::from_secs(12));
    assert!(started.elapsed() < Duration::from_secs(12));
    assert!(!tail.stderr().contains("guest:guest"), "{}", tail.stderr());
    drop(silent);
}

#[test]
fn a_frozen_broker_is_shown_as_lost_within_seconds() {
    let broker = Broker::start();
    let url = broker.url();
    let exchange = unique("t.frozen");
    support::declare_exchange(&url, &exchange);
    let tail = Candybar::spawn(&["tail", "--amqp", &url, "--exchange", &exchange]);
    tail.wait_stderr("connected", 1, Duration::from_secs(20));
    let pid = std::fs::read_to_string(broker.dir.path().join("rabbit.pid")).unwrap();
    let signal = |sig: &str| {
        assert!(
            std::process::Command::new("kill")
                .args([sig, pid.trim()])
                .status()
                .unwrap()
                .success()
        );
    };
    signal("-STOP");
    let stopped = Instant::now();
    tail.wait_stderr("retrying", 1, Duration::from_secs(20));
    let noticed = stopped.elapsed();
    signal("-CONT");
    assert!(
        noticed < Duration::from_secs(15),
        "a frozen broker was noticed after {noticed:?}"
    );
    tail.wait_stderr("connected", 2, Duration::from_secs(30));
}

#[test]
fn settings_only_a_person_can_fix_stop_the_source_with_the_reason() {
    let url = shared_broker_url();
    let long = "x".repeat(300);
    gives_up(
        &["tail", "--amqp", &url, "--exchange", &long],
        "the exchange name is longer than the 255 bytes AMQP allows",
    );
    gives_up(
        &["tail", "--amqp", &url, "--binding-key", &long],
        "a binding key is longer than the 255 bytes AMQP allows",
    );

    // A durable queue that exists with other arguments.
    let queue = unique("candybar.test.args");
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(10));
    support::declare_durable_queue(&url, &queue, args, None);
    let exchange = unique("t.args");
    support::declare_exchange(&url, &exchange);
    gives_up(
        &[
            "tail",
            "--amqp",
            &url,
            "--exchange",
            &exchange,
            "--durable-queue",
            &queue,
        ],
        "exists with other settings",
    );

    // TLS to a plain AMQP port.
    let plain = url.replacen("amqp://", "amqps://", 1);
    gives_up(&["tail", "--amqp", &plain], "does not speak TLS");

    // A permission error is reported in the broker's words, not as a bad password.
    let err = gives_up(
        &[
            "tail",
            "--amqp",
            &url,
            "--exchange",
            &exchange,
            "--durable-queue",
            "amq.candybar",
        ],
        "amq.",
    );
    assert!(!err.contains("user name and password"), "{err}");
}

#[test]
fn escapes_in_events_never_reach_the_terminal() {
    let url = shared_broker_url();
    let exchange = unique("t.escapes");
    support::declare_exchange(&url, &exchange);
    let tail = Candybar::spawn(&["tail", "--amqp", &url, "--exchange", &exchange, "-n", "1"]);
    tail.wait_stderr("connected", 1, Duration::from_secs(20));
    let body = r#"{"event_id":"e1","event_type":"evil\u001b[2J\u0007.type\nforged line","source":{"app":"src\u001b[31m"},"payload":{}}"#;
    support::lapin_publish(
        &url,
        &exchange,
        &[("evil.rk".to_owned(), body.as_bytes().to_vec(), None)],
    );
    let line = tail.lines(1, Duration::from_secs(20)).remove(0);
    assert!(
        !line.contains('\u{1b}') && !line.contains('\u{7}'),
        "{line:?}"
    );
    assert!(line.contains("\\u{1b}[2J"), "{line:?}");
    assert!(
        line.contains("\\nforged line"),
        "one line, the newline shown: {line:?}"
    );
}

#[test]
fn sloppy_json_and_cut_bodies_keep_their_type_and_ids() {
    let url = shared_broker_url();
    let exchange = unique("t.sloppy");
    support::declare_exchange(&url, &exchange);
    let tail = Candybar::spawn(&[
        "tail",
        "--amqp",
        &url,
        "--exchange",
        &exchange,
        "--format",
        "ndjson",
        "--body-cap",
        "200",
        "-n",
        "5",
    ]);
    tail.wait_stderr("connected", 1, Duration::from_secs(20));
    let bodies: Vec<Vec<u8>> = vec![
        b"\xef\xbb\xbf{\"event_id\":\"bom\",\"event_type\":\"a.bom.completed\",\"payload\":{}}".to_vec(),
        br#"{"event_id":"dup","event_type":"first","event_type":"a.dup.completed","payload":{}}"#.to_vec(),
        br#"{"event_id":"sur","event_type":"a.sur.completed","payload":{"t":"\ud800"}}"#.to_vec(),
        b"{\"event_id\":\"utf\",\"event_type\":\"a.utf.completed\",\"payload\":{\"t\":\"\xff\"}}".to_vec(),
        format!(
            r#"{{"event_type":"a.cut.completed","payload":"{}","event_id":"cut","correlation_ids":["c1","c2","c3"]}}"#,
            "p".repeat(5000)
        )
        .into_bytes(),
    ];
    let msgs: Vec<(String, Vec<u8>, Option<String>)> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, b)| (format!("rk.{i}"), b, Some(format!("amqp-{i}"))))
        .collect();
    support::lapin_publish(&url, &exchange, &msgs);
    let lines = tail.lines(5, Duration::from_secs(20));
    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (e, (kind, id)) in events.iter().zip([
        ("a.bom.completed", "bom"),
        ("a.dup.completed", "dup"),
        ("a.sur.completed", "sur"),
        ("a.utf.completed", "utf"),
        ("a.cut.completed", "cut"),
    ]) {
        assert_eq!(e["type"], kind, "{e}");
        assert_eq!(
            e["id"], id,
            "the envelope's id, not the AMQP message id: {e}"
        );
    }
    let cut = &events[4];
    assert_eq!(cut["truncated"], true, "{cut}");
    assert_eq!(cut["correlation_ids"][2], "c3", "{cut}");
}
