//! `candybar bench backfill`: how fast `candybar record` fills an empty journal from a RabbitMQ
//! stream that already holds the history. A private broker (`.ci/rabbitmq`, in a temp dir) gets
//! a stream queue bound to an exchange and `--events` demo events (the demo feed's mix, published
//! with confirms, not timed). Then this binary's `record --stream … --from first` runs as a child:
//! the clock starts before it is spawned and stops when its journal on disk holds every event
//! (polled every 10 ms). The same run's baseline: a bare lapin consumer reading the same stream
//! from the first offset and acknowledging, doing nothing else.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use serde_json::{Value, json};

use candybar_bus::publish::Publisher;
use candybar_core::demo::{Demo, DemoConfig};
use candybar_core::registry::Registry;
use candybar_core::time::now_us;
use candybar_journal::JournalReader;

#[derive(Args, Debug)]
pub struct BackfillBenchArgs {
    /// Events the stream holds before the recorder starts
    #[arg(long, default_value_t = 200_000)]
    events: usize,
}

const EXCHANGE: &str = "candybar.backfill";
const STREAM: &str = "candybar.backfill.history";

fn rate(n: usize, d: Duration) -> f64 {
    (n as f64 / d.as_secs_f64()).round()
}

/// Declares the stream, bound to the exchange for every key.
async fn declare_stream(url: &str) -> anyhow::Result<()> {
    let conn = Connection::connect(url, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("stream".into()),
    );
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare(STREAM.into(), durable, args).await?;
    let bind = QueueBindOptions::default();
    ch.queue_bind(
        STREAM.into(),
        EXCHANGE.into(),
        "#".into(),
        bind,
        FieldTable::default(),
    )
    .await?;
    conn.close(200, "done".into()).await?;
    Ok(())
}

/// The baseline: a bare consumer reading the stream from its first offset, acking each 1,000.
async fn bare_read(url: &str, n: usize) -> anyhow::Result<Duration> {
    use futures_util::StreamExt as _;
    let start = Instant::now();
    let conn = Connection::connect(url, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    ch.basic_qos(10_000, BasicQosOptions::default()).await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-stream-offset".into(),
        AMQPValue::LongString("first".into()),
    );
    let mut consumer = ch
        .basic_consume(
            STREAM.into(),
            "".into(),
            BasicConsumeOptions::default(),
            args,
        )
        .await?;
    let mut got = 0;
    while got < n {
        let delivery = tokio::time::timeout(Duration::from_secs(30), consumer.next())
            .await
            .context("the stream stopped delivering")?
            .context("the consumer ended")??;
        got += 1;
        if got % 1000 == 0 || got == n {
            delivery
                .acker
                .ack(BasicAckOptions { multiple: true })
                .await?;
        }
    }
    let took = start.elapsed();
    conn.close(200, "done".into()).await?;
    Ok(took)
}

/// Events in the journal at `dir`, by its blocks' counts (0 before it exists).
fn journaled(dir: &Path) -> usize {
    JournalReader::open(dir).map_or(0, |r| r.entry_count())
}

#[allow(clippy::too_many_lines)] // a broker, a stream, the events, the recorder, the baseline
pub fn bench_backfill(a: &BackfillBenchArgs) -> anyhow::Result<Value> {
    anyhow::ensure!(
        (1..=50_000_000).contains(&a.events),
        "--events must be between 1 and 50,000,000"
    );
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port()
        .clamp(20_000, 45_000);
    super::soak::broker("start", dir.path(), port)?;
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    // The history: the demo feed's events, published with confirms (not timed).
    let mut demo = Demo::new(DemoConfig::default(), &Registry::example());
    let t0 = now_us() - a.events as i64 * 100;
    let events: Vec<_> = (0..a.events)
        .map(|i| demo.next_message(t0 + i as i64 * 100))
        .collect();
    let bytes: usize = events.iter().map(|m| m.body.len()).sum();
    rt.block_on(async {
        let mut publisher = Publisher::new(&url, EXCHANGE);
        publisher
            .ensure()
            .await
            .map_err(|e| anyhow::anyhow!("cannot set up the exchange: {e}"))?;
        declare_stream(&url).await?;
        for window in events.chunks(2000) {
            let refused = publisher
                .publish_window(window)
                .await
                .map_err(|e| anyhow::anyhow!("publishing: {e}"))?;
            anyhow::ensure!(refused == 0, "the broker refused {refused} events");
        }
        anyhow::Ok(())
    })?;
    drop(events);

    // The recorder, from exec until its journal on disk holds every event.
    let journal = dir.path().join("journal");
    let start = Instant::now();
    let mut record = Command::new(std::env::current_exe()?)
        .args([
            "record",
            "--amqp",
            &url,
            "--exchange",
            EXCHANGE,
            "--stream",
            STREAM,
            "--from",
            "first",
            "--journal",
        ])
        .arg(&journal)
        .env("CANDYBAR_CONFIG", dir.path().join("none.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start candybar record")?;
    let mut first_block = None;
    let limit = Instant::now() + Duration::from_mins(10);
    let took = loop {
        let n = journaled(&journal);
        if n > 0 && first_block.is_none() {
            first_block = Some(start.elapsed());
        }
        if n >= a.events {
            break start.elapsed();
        }
        if let Some(status) = record.try_wait()? {
            anyhow::bail!(
                "candybar record exited ({status}) with {n} of {} events",
                a.events
            );
        }
        anyhow::ensure!(
            Instant::now() < limit,
            "the journal held {n} of {} events after 10 minutes",
            a.events
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = Command::new("kill")
        .args(["-TERM", &record.id().to_string()])
        .status();
    let _ = record.wait();
    let disk: u64 = std::fs::read_dir(&journal)?
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();

    let bare = rt.block_on(bare_read(&url, a.events))?;
    super::soak::broker("stop", dir.path(), port)?;
    let first = first_block.unwrap_or(took);
    Ok(json!({
        "bench": "backfill",
        "events": a.events,
        "mean_body_bytes": (bytes as f64 / a.events as f64).round(),
        "record_from_exec": {
            "secs": (took.as_secs_f64() * 1000.0).round() / 1000.0,
            "events_per_sec": rate(a.events, took),
            "first_block_ms": (first.as_secs_f64() * 1e5).round() / 100.0,
            "events_per_sec_after_first_block": rate(a.events, took.saturating_sub(first)),
        },
        "journal_bytes_per_event": (disk as f64 / a.events as f64 * 10.0).round() / 10.0,
        "baseline_bare_lapin_read": {
            "secs": (bare.as_secs_f64() * 1000.0).round() / 1000.0,
            "events_per_sec": rate(a.events, bare),
        },
        "ratio_to_baseline": ((bare.as_secs_f64() / took.as_secs_f64()) * 100.0).round() / 100.0,
    }))
}
