//! Reading a journal back through the real `candybar query`, for the tests that record.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Candybar, path_str, run};

/// `candybar record` from `exchange` through `queue` (`["--durable-queue", NAME]`,
/// `["--stream", NAME]`) into `journal`.
pub fn record(url: &str, exchange: &str, queue: [&str; 2], journal: &Path) -> Candybar {
    Candybar::spawn(&[
        "record",
        "--amqp",
        url,
        "--exchange",
        exchange,
        queue[0],
        queue[1],
        "--journal",
        path_str(journal),
    ])
}

/// `candybar query --format ndjson` with `extra`: the events, in the order printed.
pub fn query(journal: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "query",
        "--journal",
        path_str(journal),
        "--format",
        "ndjson",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = run(&args);
    assert_eq!(code, Some(0), "{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The ids of events, in order.
pub fn ids_of(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|v| v["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// [`query`]'s ids.
pub fn query_ids(journal: &Path, extra: &[&str]) -> Vec<String> {
    ids_of(&query(journal, extra))
}

/// Polls the journal until it holds `n` events (or `timeout` passes); its ids.
pub fn wait_for_count(journal: &Path, n: usize, timeout: Duration) -> Vec<String> {
    let end = Instant::now() + timeout;
    loop {
        let ids = query_ids(journal, &[]);
        if ids.len() >= n || Instant::now() > end {
            return ids;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Polls the journal until it holds every one of `expected` (or `timeout` passes); its ids.
/// (A count is not enough where events published but never confirmed may be journaled too.)
pub fn wait_for_ids(journal: &Path, expected: &[String], timeout: Duration) -> Vec<String> {
    let end = Instant::now() + timeout;
    loop {
        let ids = query_ids(journal, &[]);
        let have: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        if expected.iter().all(|id| have.contains(id.as_str())) || Instant::now() > end {
            return ids;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Every one of `expected` is in `got` exactly once; `context` (the recorder's stderr) is shown
/// when not.
pub fn assert_each_once(got: &[String], expected: &[String], context: &str) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for id in got {
        *seen.entry(id.as_str()).or_default() += 1;
    }
    let missing: Vec<&String> = expected
        .iter()
        .filter(|id| !seen.contains_key(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} expected events missing, e.g. {:?}; recorder:\n{context}",
        missing.len(),
        expected.len(),
        &missing[..missing.len().min(5)],
    );
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "kept more than once: {twice:?}");
}
