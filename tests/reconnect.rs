//! Broker outages: `tail` reconnects by itself, reports the gap, and in durable-queue mode loses
//! nothing across a broker restart. Each test kills and restarts its own broker.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use support::{Broker, Candybar, unique};

fn ids(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("NDJSON line")["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

fn batch(prefix: &str, n: usize) -> Vec<(String, Vec<u8>, Option<String>)> {
    (0..n)
        .map(|i| {
            let body = format!(r#"{{"event_id":"{prefix}-{i}","event_type":"agent.thread.prompt","payload":{{"i":{i}}}}}"#);
            ("agent.thread.prompt".to_owned(), body.into_bytes(), None)
        })
        .collect()
}

#[test]
fn private_queue_reconnects_and_reports_the_gap() {
    let broker = Broker::start();
    let url = broker.url();
    let exchange = unique("t.gap");
    support::declare_exchange(&url, &exchange);
    let tail = Candybar::spawn(&[
        "tail",
        "--amqp",
        &url,
        "--exchange",
        &exchange,
        "--format",
        "ndjson",
    ]);
    tail.wait_stderr("connected", 1, Duration::from_secs(20));
    support::lapin_publish(&url, &exchange, &batch("before", 100));
    assert_eq!(
        ids(&tail.lines(100, Duration::from_secs(20)))[99],
        "before-99"
    );

    broker.kill();
    tail.wait_stderr("retrying", 1, Duration::from_secs(10));
    broker.restart();
    // A SIGKILL can lose a freshly declared durable exchange (the broker had not written it to
    // disk yet); the platform would declare it again, so the test does too.
    support::declare_exchange(&url, &exchange);
    // Back by itself, and the outage is reported as a gap.
    tail.wait_stderr("connected", 2, Duration::from_secs(30));
    tail.wait_stderr("gap", 1, Duration::from_secs(5));
    support::lapin_publish(&url, &exchange, &batch("after", 100));
    let after = ids(&tail.lines(100, Duration::from_secs(20)));
    assert_eq!(after.first().map(String::as_str), Some("after-0"));
    assert_eq!(after.last().map(String::as_str), Some("after-99"));
}

#[test]
fn durable_queue_loses_nothing_across_a_broker_restart() {
    let broker = Broker::start();
    let url = broker.url();
    let exchange = unique("t.durable");
    let queue = unique("candybar.test.durable");
    support::declare_exchange(&url, &exchange);
    let tail = Candybar::spawn(&[
        "tail",
        "--amqp",
        &url,
        "--exchange",
        &exchange,
        "--durable-queue",
        &queue,
        "--format",
        "ndjson",
    ]);
    tail.wait_stderr("connected", 1, Duration::from_secs(20));
    // The broker must die while candybar is in the middle of the batch. A fast machine drains
    // 20,000 events before the publisher returns, so candybar is held still (SIGSTOP) while the
    // batch is queued, let go for 500 events, and held again while the broker is killed.
    let n = 20_000;
    tail.signal("STOP");
    support::lapin_publish(&url, &exchange, &batch("a", n));
    tail.signal("CONT");
    let mut first = tail.lines(500, Duration::from_secs(20));
    tail.signal("STOP");
    broker.kill();
    tail.signal("CONT");
    tail.wait_stderr("retrying", 1, Duration::from_secs(10));
    // What arrived before the outage (lines still in the pipe settle within the pause).
    std::thread::sleep(Duration::from_millis(500));
    while let Ok(line) = tail.stdout.try_recv() {
        first.push(line);
    }
    assert!(
        first.len() < n,
        "the broker must die while candybar is still consuming: all {n} events had arrived"
    );
    broker.restart();
    tail.wait_stderr("connected", 2, Duration::from_secs(30));
    // The queue kept everything: an interruption, not a loss warning.
    tail.wait_stderr("no events were lost", 1, Duration::from_secs(5));
    assert!(
        !tail.stderr().contains("may be missing"),
        "a durable queue reported a possible loss:\n{}",
        tail.stderr()
    );
    support::lapin_publish(&url, &exchange, &batch("b", 1000));

    let mut seen: HashSet<String> = ids(&first).into_iter().collect();
    let expected: HashSet<String> = (0..n)
        .map(|i| format!("a-{i}"))
        .chain((0..1000).map(|i| format!("b-{i}")))
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_mins(1);
    while !expected.is_subset(&seen) && std::time::Instant::now() < deadline {
        if let Ok(line) = tail.stdout.recv_timeout(Duration::from_millis(500)) {
            seen.extend(ids(&[line]));
        }
    }
    let missing: Vec<&String> = expected.difference(&seen).take(5).collect();
    assert!(
        missing.is_empty(),
        "lost across the restart (first few): {missing:?}; stderr:\n{}",
        tail.stderr()
    );
}
