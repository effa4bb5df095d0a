//! `RabbitMQ` stream queues (`x-queue-type: stream`) as a source: `tail` reads one from its first
//! event or from now on, a missing stream and an offset past the end are said plainly, and
//! `record` backfills from the stream what it missed while it was not running — exactly once, at
//! the events' own times — and resumes at the next offset after the broker is killed.

// Helpers outside `#[test]` functions: a failed step panics with its message.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use serde_json::Value;
use support::journal::{ids_of, query, query_ids, record, wait_for_count};
use support::{Broker, Candybar, path_str, run, shared_broker_url, unique};

/// Declares a stream queue bound to `exchange` for every key, as the README tells a team to.
fn declare_stream(url: &str, exchange: &str, stream: &str) {
    support::declare_exchange(url, exchange);
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("stream".into()),
    );
    args.insert("x-max-age".into(), AMQPValue::LongString("7D".into()));
    support::declare_durable_queue(url, stream, args, Some(exchange));
}

/// Event `{prefix}-{i}`, published (by its own clock) `ago_s` seconds before now.
fn one(prefix: &str, i: usize, ago_s: i64) -> (String, Vec<u8>, Option<String>) {
    let at = candybar_time(ago_s);
    let body = format!(
        r#"{{"event_id":"{prefix}-{i}","event_type":"agent.thread.prompt","timestamp":"{at}","payload":{{"i":{i}}}}}"#
    );
    ("agent.thread.prompt".to_owned(), body.into_bytes(), None)
}

fn batch(prefix: &str, n: usize, ago_s: i64) -> Vec<(String, Vec<u8>, Option<String>)> {
    (0..n).map(|i| one(prefix, i, ago_s)).collect()
}

/// RFC 3339 for `ago_s` seconds before now.
fn candybar_time(ago_s: i64) -> String {
    candybar_core::time::format_rfc3339(candybar_core::time::now_us() - ago_s * 1_000_000)
}

fn ids(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"))["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// Waits until a restarted broker has recovered `stream` (it accepts connections before).
fn wait_for_stream(url: &str, stream: &str) {
    support::with_connection(url, async |conn| {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            // A refused passive declare closes its channel: a new one each time.
            let ch = conn.create_channel().await.unwrap();
            let passive = QueueDeclareOptions {
                passive: true,
                durable: true,
                ..QueueDeclareOptions::default()
            };
            let found = ch
                .queue_declare(stream.into(), passive, FieldTable::default())
                .await;
            if found.is_ok() {
                break;
            }
            assert!(
                Instant::now() < end,
                "the stream {stream} did not come back after the restart"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// `candybar tail` on `stream` with `extra` arguments.
fn tail_stream(url: &str, exchange: &str, stream: &str, extra: &[&str]) -> Candybar {
    let mut args = vec![
        "tail",
        "--amqp",
        url,
        "--exchange",
        exchange,
        "--stream",
        stream,
    ];
    args.extend_from_slice(extra);
    Candybar::spawn(&args)
}

#[test]
fn tail_reads_a_stream_from_its_first_event_or_from_now_on() {
    let url = shared_broker_url();
    let exchange = unique("t.stream");
    let stream = unique("candybar.test.stream");
    declare_stream(&url, &exchange, &stream);
    support::lapin_publish(&url, &exchange, &batch("old", 300, 3600));

    // From the first: what the stream kept before candybar ever ran, in order.
    let first = tail_stream(
        &url,
        &exchange,
        &stream,
        &["--from", "first", "--format", "ndjson", "-n", "300"],
    );
    let got = ids(&first.lines(300, Duration::from_secs(30)));
    let expected: Vec<String> = (0..300).map(|i| format!("old-{i}")).collect();
    assert_eq!(got, expected);
    let (code, err) = first.wait(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!("stream {stream} from first")),
        "the connection line names the stream and where reading began:\n{err}"
    );
    // The offset header the broker adds is not kept as the event's own.
    assert!(!err.contains("x-stream-offset"));

    // From now on (the default): none of the old events, only new ones.
    let next = tail_stream(&url, &exchange, &stream, &["--format", "ndjson"]);
    next.wait_stderr("connected", 1, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    support::lapin_publish(&url, &exchange, &batch("new", 5, 0));
    assert_eq!(
        ids(&next.lines(5, Duration::from_secs(20))),
        ["new-0", "new-1", "new-2", "new-3", "new-4"]
    );
    let line = next.stdout.recv_timeout(Duration::from_millis(500));
    assert!(line.is_err(), "nothing else arrives: {line:?}");

    // From a duration ago: the stream's timestamp is when the broker wrote it (just now).
    let recent = tail_stream(
        &url,
        &exchange,
        &stream,
        &["--from", "10m", "--format", "ndjson", "-n", "305"],
    );
    assert_eq!(recent.lines(305, Duration::from_secs(30)).len(), 305);
}

#[test]
fn a_missing_stream_a_bad_start_and_an_offset_past_the_end_are_said_plainly() {
    let url = shared_broker_url();
    let exchange = unique("t.stream.bad");
    support::declare_exchange(&url, &exchange);
    let missing = unique("candybar.test.nostream");
    let (code, _, err) = run(&[
        "tail",
        "--amqp",
        &url,
        "--exchange",
        &exchange,
        "--stream",
        &missing,
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("there is no queue '{missing}' on the broker"))
            && err.contains("x-queue-type: stream"),
        "{err}"
    );

    let (code, _, err) = run(&["tail", "--amqp", &url, "--stream", "s", "--from", "tuesday"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--from \"tuesday\": give first, last, next"),
        "{err}"
    );

    let stream = unique("candybar.test.stream.end");
    declare_stream(&url, &exchange, &stream);
    support::lapin_publish(&url, &exchange, &batch("e", 10, 0));
    let past = tail_stream(
        &url,
        &exchange,
        &stream,
        &["--from", "1000000", "--format", "ndjson"],
    );
    past.wait_stderr("beyond the stream's end", 1, Duration::from_secs(20));
    assert!(
        past.stderr().contains("offset 1000000"),
        "{}",
        past.stderr()
    );
}

#[test]
fn record_backfills_what_it_missed_from_the_stream_exactly_once_at_the_events_own_times() {
    let url = shared_broker_url();
    let exchange = unique("t.stream.rec");
    let stream = unique("candybar.test.stream.rec");
    declare_stream(&url, &exchange, &stream);
    // History the stream kept from before the recorder first ran, published two hours ago.
    support::lapin_publish(&url, &exchange, &batch("a", 200, 7200));
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");

    // An empty journal begins at the stream's first event.
    let rec = record(&url, &exchange, ["--stream", &stream], &journal);
    rec.wait_stderr("connected", 1, Duration::from_secs(20));
    assert!(
        rec.stderr()
            .contains(&format!("backfilling from stream {stream} since first")),
        "{}",
        rec.stderr()
    );
    support::lapin_publish(&url, &exchange, &batch("b", 200, 0));
    assert_eq!(
        wait_for_count(&journal, 400, Duration::from_secs(30)).len(),
        400
    );
    rec.signal("TERM");
    let (code, err) = rec.wait(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{err}");

    // Published while no recorder ran.
    support::lapin_publish(&url, &exchange, &batch("c", 300, 0));
    let rec = record(&url, &exchange, ["--stream", &stream], &journal);
    rec.wait_stderr("connected", 1, Duration::from_secs(20));
    assert!(
        rec.stderr().contains("backfilling from stream") && !rec.stderr().contains("since first"),
        "a journal with events resumes near its newest one:\n{}",
        rec.stderr()
    );
    let got = wait_for_count(&journal, 700, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    let got = if got.len() == 700 {
        query_ids(&journal, &[])
    } else {
        got
    };
    let expected: Vec<String> = [("a", 200), ("b", 200), ("c", 300)]
        .into_iter()
        .flat_map(|(prefix, n)| (0..n).map(move |i| format!("{prefix}-{i}")))
        .collect();
    support::journal::assert_each_once(&got, &expected, &rec.stderr());
    assert_eq!(got.len(), 700);

    // The time no recorder ran is marked in the journal; `query` shows it in its place.
    let (code, text, err) = run(&["query", "--journal", path_str(&journal)]);
    assert_eq!(code, Some(0), "{err}");
    let gap = text
        .lines()
        .position(|l| l.contains("nothing was recording"))
        .unwrap_or_else(|| panic!("no gap line:\n{text}"));
    assert!(
        text.lines()
            .nth(gap)
            .unwrap()
            .contains("no events were lost"),
        "a stream kept what came meanwhile"
    );
    // `-n` counts events, not the gap lines between them.
    let (_, text, _) = run(&["query", "--journal", path_str(&journal), "-n", "700"]);
    let events = text.lines().filter(|l| !l.starts_with("──")).count();
    assert_eq!(events, 700, "{text}");

    // The history sits at its own time: two hours back, not at the moment it was read.
    let old = query(&journal, &["--until", "1h"]);
    assert_eq!(old.len(), 200, "the two-hour-old events are older than 1h");
    assert!(ids_of(&old).iter().all(|id| id.starts_with("a-")));
    assert_eq!(query(&journal, &["--since", "1h"]).len(), 500);
}

#[test]
fn a_recorder_on_a_stream_resumes_at_the_next_offset_after_the_broker_is_killed() {
    let broker = Broker::start();
    let url = broker.url();
    let exchange = unique("t.stream.kill");
    let stream = unique("candybar.test.stream.kill");
    declare_stream(&url, &exchange, &stream);
    // RabbitMQ 3.10 keeps a fresh declaration in memory for a while: a SIGKILL right after it
    // can lose the stream itself. A team's stream is long-lived; a clean restart stores it.
    broker.stop();
    broker.restart();
    wait_for_stream(&url, &stream);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let rec = record(&url, &exchange, ["--stream", &stream], &journal);
    rec.wait_stderr("connected", 1, Duration::from_secs(20));

    let mut confirmed = Vec::new();
    for round in 0..2 {
        let publishing = support::Publishing::start(&url, &exchange, move |i| {
            Some(one(&format!("r{round}"), i, 0))
        });
        std::thread::sleep(Duration::from_millis(700));
        broker.kill();
        let ids = publishing.stop().into_iter();
        confirmed.extend(ids.map(|i| format!("r{round}-{i}")));
        rec.wait_stderr("retrying", round + 1, Duration::from_secs(10));
        broker.restart();
        rec.wait_stderr("connected", round + 2, Duration::from_secs(30));
    }
    assert!(confirmed.len() > 1000, "{} confirmed", confirmed.len());
    let got = wait_for_count(&journal, confirmed.len(), Duration::from_mins(1));
    support::journal::assert_each_once(&got, &confirmed, &rec.stderr());
    assert!(
        rec.stderr().contains("no events were lost"),
        "a stream's outage is an interruption, not a loss:\n{}",
        rec.stderr()
    );
}
