//! `candybar bench journal`: recording into the journal on one core, its size on disk, and
//! `candybar query`'s pass over it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use candybar_core::demo::{Demo, DemoConfig};
use candybar_core::event::RawMessage;
use candybar_core::filter::Filter;
use candybar_core::registry::Registry;
use candybar_core::time::now_us;
use candybar_journal::{JournalConfig, JournalReader, JournalWriter};

use crate::cli::journal::{Matcher, QueryFormat, all_cores, pass};

#[derive(Args, Debug)]
pub struct JournalBenchArgs {
    /// Events to journal
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Where to write the journal (default: a temporary directory, removed afterwards)
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Filters to time instead of the default set (repeatable; `corr:MIDDLE` stands for a
    /// correlation id from the middle of the journal)
    #[arg(long = "query", value_name = "EXPR")]
    queries: Vec<String>,
    /// Also time each query as `query` ran before it screened events (every event of the
    /// blocks read stored and left to the store's filter, one thread): the same run's baseline
    #[arg(long)]
    baseline: bool,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

#[allow(clippy::too_many_lines)] // record, then read back: one run, top to bottom
pub fn bench_journal(a: &JournalBenchArgs) -> anyhow::Result<serde_json::Value> {
    let tmp = tempfile::Builder::new()
        .prefix("candybar-bench-journal")
        .tempdir()?;
    let dir = a.dir.clone().unwrap_or_else(|| tmp.path().join("journal"));
    anyhow::ensure!(
        !dir.exists(),
        "{} exists: give a new directory",
        dir.display()
    );
    let mut demo = Demo::new(
        DemoConfig {
            compact: true,
            ..DemoConfig::default()
        },
        &Registry::example(),
    );
    // The events end now, 20 µs apart.
    let t0 = now_us() - a.events as i64 * 20;
    let mut batch: Vec<RawMessage> = Vec::with_capacity(8192);
    let mut probe_corr = None;

    // Recording on one core: dedup by id (a header decode), serializing, zstd, writing and the
    // periodic syncs, all on this thread, as `candybar record` runs; the last block written and
    // synced inside the timing. Decoding the same events alone is timed beside it.
    let mut writer = JournalWriter::open(JournalConfig::new(dir.clone()), "candybar bench")?;
    let (mut record_time, mut decode_time) = (Duration::ZERO, Duration::ZERO);
    let (mut raw_bytes, mut done) = (0u64, 0usize);
    while done < a.events {
        let n = (a.events - done).min(8192);
        batch.clear();
        batch.extend((done..done + n).map(|i| demo.next_message(t0 + i as i64 * 20)));
        if probe_corr.is_none() && done + n >= a.events / 2 {
            probe_corr = batch.iter().find_map(|m| {
                candybar_core::decode::decode(m)
                    .header
                    .correlation_ids
                    .first()
                    .map(std::string::ToString::to_string)
            });
        }
        raw_bytes += batch
            .iter()
            .map(|m| (m.body.len() + m.routing_key.len()) as u64)
            .sum::<u64>();
        let t = Instant::now();
        let mut k = 0usize;
        for m in &batch {
            k += candybar_core::decode::decode(m).kind.len();
        }
        decode_time += t.elapsed();
        std::hint::black_box(k);
        let t = Instant::now();
        for m in &batch {
            writer.append(m);
        }
        writer.tick();
        record_time += t.elapsed();
        done += n;
    }
    let t = Instant::now();
    writer
        .flush()
        .map_err(|e| anyhow::anyhow!("cannot write the journal: {e}"))?;
    record_time += t.elapsed();
    let disk = writer.disk_bytes();
    let kept = writer.stats().kept;
    drop(writer);

    // Reading it back: opening (the block list), then `candybar query`'s pass (filter, encode as
    // NDJSON, order), its output counted instead of printed.
    let t = Instant::now();
    let mut reader = JournalReader::open(&dir)?;
    let open_ms = ms(t.elapsed());
    let corr = probe_corr.unwrap_or_default();
    let mut queries = serde_json::Map::new();
    let exprs = if a.queries.is_empty() {
        vec![
            String::from("system.heartbeat.tick"),
            String::from("agent.*.completed"),
            String::from("theboard.meeting.round_completed"),
            format!("corr:{corr}"),
            String::from("\"flaky consumer\""),
        ]
    } else {
        a.queries
            .iter()
            .map(|q| q.replace("corr:MIDDLE", &format!("corr:{corr}")))
            .collect()
    };
    for expr in exprs {
        let filter = Filter::new(&expr).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut matcher = Matcher::new(filter, QueryFormat::Ndjson, false);
        // One pass, timed: what it printed and how many bytes.
        let mut time = |matcher: &mut Matcher, how: (usize, bool)| {
            let mut out = Vec::new();
            let mut bytes = 0usize;
            let t = Instant::now();
            let printed = pass(
                &mut reader,
                matcher,
                (i64::MIN, i64::MAX),
                u64::MAX,
                &mut out,
                &mut |o| {
                    bytes += o.len();
                    o.clear();
                    true
                },
                how,
            )
            .unwrap_or_default();
            (printed, bytes + out.len(), t.elapsed())
        };
        let (printed, bytes, elapsed) = time(&mut matcher, (all_cores(), true));
        let baseline = if a.baseline {
            let filter = Filter::new(&expr).map_err(|e| anyhow::anyhow!("{e}"))?;
            let (same, _, elapsed) = time(
                &mut Matcher::new(filter, QueryFormat::Ndjson, false),
                (1, false),
            );
            anyhow::ensure!(
                same == printed,
                "the baseline of {expr} found {same} events, the screened pass {printed}"
            );
            Some(ms(elapsed))
        } else {
            None
        };
        // How many blocks the index let through (outside the timing).
        let all: Vec<_> = reader.blocks().copied().collect();
        let read = all
            .iter()
            .filter(|b| matcher.may_hold(&mut reader, b))
            .count();
        let key = if expr.starts_with("corr:") {
            "corr:<an id from the middle>".to_owned()
        } else {
            expr
        };
        queries.insert(
            key,
            json!({
                "ms": ms(elapsed),
                "baseline_ms": baseline,
                "matches": printed,
                "blocks_read": read,
                "blocks": all.len(),
                "output_mb": bytes as f64 / 1e6,
            }),
        );
    }
    let damage = reader.new_damage().len();
    Ok(json!({
        "events": a.events,
        "kept": kept,
        "mean_event_bytes": raw_bytes as f64 / a.events as f64,
        "record_one_core_per_sec": (a.events as f64 / record_time.as_secs_f64()).round(),
        "decode_alone_per_sec": (a.events as f64 / decode_time.as_secs_f64()).round(),
        "disk_bytes": disk,
        "disk_bytes_per_event": (disk as f64 / a.events as f64 * 10.0).round() / 10.0,
        "compression_ratio": (raw_bytes as f64 / disk as f64 * 100.0).round() / 100.0,
        "open_ms": open_ms,
        "query": queries,
        "damaged_blocks": damage,
    }))
}
