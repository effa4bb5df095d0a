//! `candybar bench soak`: the bus under a broker that keeps dying. A private RabbitMQ node
//! (`.ci/rabbitmq`, in a temp dir) is killed with SIGKILL and started again `--kills` times while
//! events are published at `--rate` with publisher confirms (a window the broker did not confirm
//! is sent again: at-least-once) and `candybar tail --durable-queue` (this binary, a child)
//! consumes them. Reported: events confirmed, received, missing (confirmed but never received:
//! must be 0), duplicates, and for each restart the time from the broker accepting connections
//! again to the consumer's "connected".

use std::collections::HashSet;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use parking_lot::Mutex;
use serde_json::{Value, json};

use candybar_bus::publish::Publisher;
use candybar_core::event::RawMessage;
use candybar_core::time::now_us;

#[derive(Args, Debug)]
pub struct SoakBenchArgs {
    /// Broker kills (SIGKILL, then a restart with its data)
    #[arg(long, default_value_t = 10)]
    kills: usize,
    /// Events published per second
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds between kills
    #[arg(long, default_value_t = 3.0)]
    every_secs: f64,
}

const EXCHANGE: &str = "candybar.soak";
const QUEUE: &str = "candybar.soak.queue";

/// The repository's broker script (the benchmark runs from a checkout).
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/rabbitmq")
}

pub(super) fn broker(cmd: &str, dir: &Path, port: u16) -> anyhow::Result<()> {
    let mut c = Command::new(script());
    c.arg(cmd).arg(dir);
    if cmd == "start" {
        c.arg(port.to_string()).arg(std::process::id().to_string());
    }
    let out = c
        .output()
        .with_context(|| format!("cannot run {}", script().display()))?;
    anyhow::ensure!(
        out.status.success(),
        "the broker did not {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[allow(clippy::too_many_lines)] // a broker, a consumer, a publisher, the kills, the count
pub fn bench_soak(a: &SoakBenchArgs) -> anyhow::Result<Value> {
    let rate = candybar_core::time::checked_rate(a.rate, 1.0, 100_000.0, "--rate")
        .map_err(anyhow::Error::msg)?;
    let every = candybar_core::time::checked_secs(a.every_secs, 0.5, 600.0, "--every-secs")
        .map_err(anyhow::Error::msg)?;
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port()
        .clamp(20_000, 45_000);
    broker("start", dir.path(), port)?;
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    // The exchange first (the publisher declares it), so the consumer can bind its queue.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async { Publisher::new(&url, EXCHANGE).ensure().await.map(|_| ()) })
        .map_err(|e| anyhow::anyhow!("cannot set up the exchange: {e}"))?;

    // The consumer: this binary's `tail`, its ids and its "connected" moments collected.
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let connected: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let mut tail = Command::new(std::env::current_exe()?)
        .args([
            "tail",
            "--amqp",
            &url,
            "--exchange",
            EXCHANGE,
            "--durable-queue",
            QUEUE,
            "--format",
            "ndjson",
        ])
        .env("CANDYBAR_CONFIG", dir.path().join("none.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let out = tail.stdout.take().context("no stdout")?;
    let err = tail.stderr.take().context("no stderr")?;
    let ids = received.clone();
    std::thread::Builder::new()
        .name("soak-stdout".into())
        .spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && let Some(id) = v["id"].as_str()
                {
                    ids.lock().push(id.to_owned());
                }
            }
        })?;
    let times = connected.clone();
    std::thread::Builder::new()
        .name("soak-stderr".into())
        .spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if line.contains("connected:") {
                    times.lock().push(Instant::now());
                }
            }
        })?;
    let wait_connected = |n: usize, limit: Duration| -> Option<Instant> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(t) = connected.lock().get(n - 1) {
                return Some(*t);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    };
    wait_connected(1, Duration::from_secs(30)).context("the consumer never connected")?;

    // The publisher, on a runtime of its own: windows of 50, confirmed or sent again.
    let confirmed: Arc<Mutex<HashSet<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let (confirmed, stop, url) = (confirmed.clone(), stop.clone(), url.clone());
        std::thread::Builder::new()
            .name("soak-publisher".into())
            .spawn(move || -> anyhow::Result<u64> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async {
                    let mut p = Publisher::new(&url, EXCHANGE);
                    let started = Instant::now();
                    let (mut sent, mut resent) = (0u64, 0u64);
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let window: Vec<RawMessage> = (sent..sent + 50)
                            .map(|n| {
                                let body = format!(
                                    r#"{{"event_id":"soak-{n}","event_type":"soak.event.completed","payload":{{"n":{n}}}}}"#
                                );
                                RawMessage {
                                    received_us: now_us(),
                                    routing_key: "soak.event.completed".into(),
                                    body: body.into_bytes(),
                                    ..RawMessage::default()
                                }
                            })
                            .collect();
                        // Refused or unconfirmed: the whole window again.
                        while !matches!(p.publish_window(&window).await, Ok(0)) {
                            resent += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        confirmed
                            .lock()
                            .extend((sent..sent + 50).map(|n| format!("soak-{n}")));
                        sent += 50;
                        let due = Duration::from_secs_f64(sent as f64 / rate);
                        if let Some(wait) = due.checked_sub(started.elapsed()) {
                            tokio::time::sleep(wait).await;
                        }
                    }
                    Ok(resent)
                })
            })?
    };

    // The kills.
    let mut reconnect_ms = Vec::new();
    for k in 0..a.kills {
        std::thread::sleep(every);
        broker("kill", dir.path(), port)?;
        broker("start", dir.path(), port)?;
        let ready = Instant::now(); // `start` returns once the port accepts
        let back = wait_connected(k + 2, Duration::from_mins(1))
            .context("the consumer did not come back")?;
        reconnect_ms.push(back.saturating_duration_since(ready).as_secs_f64() * 1e3);
    }
    std::thread::sleep(every);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let resent_windows = publisher
        .join()
        .map_err(|_| anyhow::anyhow!("the publisher thread panicked"))??;
    // Let the consumer take what is left in the queue.
    let confirmed = confirmed.lock().clone();
    let end = Instant::now() + Duration::from_mins(1);
    loop {
        let got: HashSet<String> = received.lock().iter().cloned().collect();
        if confirmed.is_subset(&got) || Instant::now() > end {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = tail.kill();
    let _ = tail.wait();
    let _ = broker("kill", dir.path(), port);
    let received = received.lock().clone();
    let unique: HashSet<&String> = received.iter().collect();
    let missing = confirmed.iter().filter(|id| !unique.contains(id)).count();
    let mut sorted = reconnect_ms.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(json!({
        "bench": "soak",
        "kills": a.kills,
        "rate_per_sec": rate,
        "confirmed": confirmed.len(),
        "received": received.len(),
        "missing": missing,
        "duplicates": received.len() - unique.len(),
        "windows_sent_again": resent_windows,
        "reconnect_after_broker_ready_ms": sorted.iter().map(|v| (v * 10.0).round() / 10.0).collect::<Vec<_>>(),
        "reconnect_max_ms": sorted.last().map(|v| (v * 10.0).round() / 10.0),
    }))
}
