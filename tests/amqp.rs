//! `candybar tail` and `publish` against a real `RabbitMQ` broker.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{Candybar, declare_exchange, lapin_publish, run, shared_broker_url, unique};

fn v1(i: usize) -> (String, Vec<u8>, Option<String>) {
    let kind = if i.is_multiple_of(7) {
        "llm.error"
    } else {
        "agent.thread.prompt"
    };
    let body = format!(
        r#"{{"event_id":"e-{i}","event_type":"{kind}","timestamp":"2026-11-22T03:00:00Z","version":"1.0.0","source":{{"host":"h","type":"hook","app":"hookd"}},"correlation_ids":["c-{}"],"agent_context":{{"type":"claude-code","name":"momo"}},"payload":{{"n":{i}}}}}"#,
        i / 10
    );
    (kind.to_owned(), body.into_bytes(), None)
}

fn v3(i: usize) -> (String, Vec<u8>, Option<String>) {
    let body = format!(
        r#"{{"specversion":"1.0","id":"e-{i}","type":"bloodbank.v1.repo.decision.recorded","source":"hermes://agent/bb","time":"2026-11-22T03:00:00.5Z","correlationid":"c-{}","actor":{{"agent_id":"bb-momo","type":"agent_cli"}},"domain":"repo","data":{{"n":{i}}}}}"#,
        i / 10
    );
    (
        "bloodbank.evt.v1.repo.decision.recorded".into(),
        body.into_bytes(),
        None,
    )
}

fn junk(i: usize) -> (String, Vec<u8>, Option<String>) {
    (
        "junk.binary.blob".into(),
        vec![0xff, 0xfe, (i % 256) as u8, 0x00, 0x80],
        Some(format!("e-{i}")),
    )
}

fn mixed(n: usize) -> Vec<(String, Vec<u8>, Option<String>)> {
    (0..n)
        .map(|i| {
            if i % 50 == 49 {
                junk(i)
            } else if i % 10 == 3 {
                v3(i)
            } else {
                v1(i)
            }
        })
        .collect()
}

fn parse(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn tail_prints_exactly_what_was_published_in_order_decoded() {
    let url = shared_broker_url();
    let exchange = unique("t.order");
    declare_exchange(&url, &exchange);
    let n = 400;
    let tail = Candybar::spawn(&[
        "tail",
        "--amqp",
        &url,
        "--exchange",
        &exchange,
        "--count",
        &n.to_string(),
        "--format",
        "ndjson",
    ]);
    tail.wait_stderr("connected", 1, Duration::from_secs(20));
    lapin_publish(&url, &exchange, &mixed(n));
    let events = parse(&tail.lines(n, Duration::from_secs(30)));
    let (code, _) = tail.wait(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert_eq!(events.len(), n);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e["id"],
            format!("e-{i}"),
            "event {i} out of order or missing: {e}"
        );
        if i % 50 == 49 {
            assert_eq!(e["body_kind"], "binary");
            assert_eq!(e["type"], "junk.binary.blob");
            assert!(e["body_base64"].is_string());
        } else if i % 10 == 3 {
            assert_eq!(e["body_kind"], "cloudevents");
            assert_eq!(e["type"], "bloodbank.v1.repo.decision.recorded");
            assert_eq!(e["domain"], "repo");
            assert_eq!(e["agent"], "bb-momo");
            assert_eq!(e["correlation_ids"][0], format!("c-{}", i / 10));
        } else {
            assert_eq!(e["body_kind"], "bloodbank_v1");
            assert_eq!(e["source"], "hookd");
            assert_eq!(e["agent"], "momo");
            assert_eq!(e["status"], if i % 7 == 0 { "error" } else { "started" });
            assert_eq!(e["body"]["payload"]["n"], i);
        }
    }
}

#[test]
fn two_tails_both_see_every_event() {
    let url = shared_broker_url();
    let exchange = unique("t.two");
    declare_exchange(&url, &exchange);
    let n = 200;
    let args = [
        "tail",
        "--amqp",
        &url,
        "--exchange",
        &exchange,
        "--count",
        "200",
        "--format",
        "ndjson",
    ];
    let a = Candybar::spawn(&args);
    let b = Candybar::spawn(&args);
    a.wait_stderr("connected", 1, Duration::from_secs(20));
    b.wait_stderr("connected", 1, Duration::from_secs(20));
    lapin_publish(&url, &exchange, &mixed(n));
    for t in [&a, &b] {
        let ids: Vec<String> = parse(&t.lines(n, Duration::from_secs(30)))
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, (0..n).map(|i| format!("e-{i}")).collect::<Vec<_>>());
    }
}

#[test]
fn filter_narrows_what_tail_prints() {
    let url = shared_broker_url();
    let exchange = unique("t.filter");
    declare_exchange(&url, &exchange);
    let tail = Candybar::spawn(&[
        "tail",
        "--amqp",
        &url,
        "--exchange",
        &exchange,
        "--filter",
        "errors OR domain:repo",
        "-n",
        "20",
        "--format",
        "ndjson",
    ]);
    tail.wait_stderr("connected", 1, Duration::from_secs(20));
    lapin_publish(&url, &exchange, &mixed(200));
    let events = parse(&tail.lines(20, Duration::from_secs(30)));
    assert!(
        events
            .iter()
            .all(|e| e["status"] == "error" || e["domain"] == "repo"),
        "{events:?}"
    );
    assert!(events.iter().any(|e| e["status"] == "error"));
    assert!(events.iter().any(|e| e["domain"] == "repo"));
}

#[test]
fn hostile_messages_are_shown_marked_and_nothing_crashes() {
    let url = shared_broker_url();
    let exchange = unique("t.bad");
    declare_exchange(&url, &exchange);
    let tail = Candybar::spawn(&[
        "tail",
        "--amqp",
        &url,
        "--exchange",
        &exchange,
        "-n",
        "6",
        "--format",
        "ndjson",
        "--body-cap",
        "65536",
    ]);
    tail.wait_stderr("connected", 1, Duration::from_secs(20));
    let big = format!(
        r#"{{"event_type":"big.upload.completed","event_id":"big","payload":"{}"}}"#,
        "x".repeat(10 << 20)
    );
    let deep = format!(
        r#"{{"event_type":"deep.thing","payload":{}1{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let weird_rk = format!("{}.#.*.ü", "a".repeat(240));
    lapin_publish(
        &url,
        &exchange,
        &[
            (
                "big.upload.completed".into(),
                big.clone().into_bytes(),
                None,
            ),
            ("deep.thing".into(), deep.into_bytes(), None),
            ("empty".into(), Vec::new(), Some("m-empty".into())),
            ("text.thing".into(), b"{not json".to_vec(), None),
            (weird_rk.clone(), b"\xff\xfe\xfd".to_vec(), None),
            (
                "after.all.ok".into(),
                br#"{"event_type":"after.all.ok"}"#.to_vec(),
                None,
            ),
        ],
    );
    let e = parse(&tail.lines(6, Duration::from_mins(1)));
    assert_eq!(e[0]["type"], "big.upload.completed");
    assert_eq!(e[0]["truncated"], true);
    assert_eq!(e[0]["size"], big.len());
    assert!(e[0]["body_text"].as_str().unwrap().len() <= 65536);
    assert_eq!(
        e[1]["type"], "deep.thing",
        "the header of a deeply nested body still reads"
    );
    assert_eq!(e[2]["body_kind"], "empty");
    assert_eq!(e[2]["id"], "m-empty");
    assert_eq!(e[3]["body_kind"], "text");
    assert_eq!(e[4]["routing_key"], weird_rk);
    assert_eq!(e[4]["body_kind"], "binary");
    assert_eq!(e[5]["type"], "after.all.ok");
}

#[test]
fn broker_errors_are_clear_and_hide_the_password() {
    let url = shared_broker_url();
    let port = url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();

    let (code, _, err) = run(&[
        "tail",
        "--amqp",
        &format!("amqp://guest:hunter2@127.0.0.1:{port}/%2f"),
        "-n",
        "1",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("refused the login"), "{err}");
    assert!(!err.contains("hunter2"), "password leaked: {err}");

    let (code, _, err) = run(&[
        "tail",
        "--amqp",
        &url,
        "--exchange",
        "no.such.exchange",
        "-n",
        "1",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("exchange 'no.such.exchange' does not exist"),
        "{err}"
    );

    // Without --exchange (and no config or registry), the default exchange is `events`.
    let (code, _, err) = run(&["tail", "--amqp", &url, "-n", "1"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("exchange 'events' does not exist"), "{err}");

    let (code, _, err) = run(&["tail", "--amqp", "rabbit://nope", "-n", "1"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("invalid broker URL"), "{err}");

    // Nothing listening: keeps retrying and says why, without exiting.
    let dead = Candybar::spawn(&[
        "tail",
        "--amqp",
        "amqp://u:pw-secret@127.0.0.1:1/%2f",
        "-n",
        "1",
    ]);
    dead.wait_stderr("cannot reach the broker", 1, Duration::from_secs(10));
    assert!(!dead.stderr().contains("pw-secret"));
}

#[test]
fn publish_confirms_and_creates_a_missing_exchange() {
    let url = shared_broker_url();
    let exchange = unique("t.publish");
    let tail_exchange = exchange.clone();
    // The exchange does not exist yet: publish declares it.
    let (code, _, err) = run(&[
        "publish",
        "--amqp",
        &url,
        "--exchange",
        &exchange,
        "-n",
        "1",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("declared it"), "{err}");
    let tail = Candybar::spawn(&[
        "tail",
        "--amqp",
        &url,
        "--exchange",
        &tail_exchange,
        "-n",
        "250",
        "--format",
        "ndjson",
    ]);
    tail.wait_stderr("connected", 1, Duration::from_secs(20));
    let (code, _, err) = run(&[
        "publish",
        "--amqp",
        &url,
        "--exchange",
        &exchange,
        "-n",
        "250",
        "--seed",
        "9",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("published 250 events") && err.contains("all confirmed"),
        "{err}"
    );
    assert!(!err.contains("guest:guest"), "{err}");
    let events = parse(&tail.lines(250, Duration::from_secs(30)));
    assert!(events.iter().any(|e| e["body_kind"] == "cloudevents"));
    assert!(events.iter().any(|e| e["type"] == "system.heartbeat.tick"));
}
