//! `candybar publish`: send demo events or an NDJSON file to a broker with publisher confirms.
//! Every message is confirmed or reported; a lost connection resends the unconfirmed window.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use candybar_bus::publish::Publisher;
use candybar_core::demo::{Demo, DemoConfig};
use candybar_core::event::RawMessage;
use candybar_core::export::{LineError, Record, read_ndjson_line};
use candybar_core::time::checked_rate;
use candybar_core::time::now_us;
use clap::Args;
use tokio::io::AsyncBufReadExt as _;

use super::SourceArgs;

#[derive(Args, Debug)]
pub struct PublishArgs {
    /// Events per second (0: as fast as the broker confirms)
    #[arg(long, value_name = "N", default_value_t = 0.0)]
    rate: f64,
    /// How many events (demo: default 100; file: default all lines)
    #[arg(long, short = 'n', value_name = "N")]
    count: Option<u64>,
    /// An NDJSON file to publish (candybar's export format, or one event body per line);
    /// without it, demo events are published
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    /// Messages in flight before waiting for confirms
    #[arg(long, value_name = "N", default_value_t = 500)]
    window: usize,
}

pub async fn run(args: PublishArgs, source: &SourceArgs) -> anyhow::Result<ExitCode> {
    if args.rate != 0.0 {
        checked_rate(args.rate, 0.001, 10_000_000.0, "--rate")
            .map_err(|e| anyhow::anyhow!("{e} (or 0: as fast as the broker confirms)"))?;
    }
    let settings = source.settings()?;
    let Some(url) = source.amqp_url(&settings) else {
        anyhow::bail!("publish needs a broker: --amqp URL (or CANDYBAR_AMQP_URL)");
    };
    let exchange = source.exchange(&settings);
    let mut publisher = Publisher::new(url.expose(), &exchange);
    if let Err(e) = publisher.ensure().await {
        eprintln!("candybar: {e}");
        return Ok(ExitCode::from(2));
    }
    if publisher.declared_exchange {
        eprintln!("candybar: exchange '{exchange}' did not exist; declared it (topic, durable)");
    }
    let mut input = Input::open(&args, source).await?;
    let window = args.window.clamp(1, 10_000);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut nacked = 0u64;
    let mut resends = 0u32;
    let limit = args
        .count
        .unwrap_or(if args.file.is_some() { u64::MAX } else { 100 });
    let mut batch: Vec<RawMessage> = Vec::with_capacity(window);
    loop {
        batch.clear();
        // Paced: a window is as many messages as the rate allows in ~50 ms.
        let take = if args.rate > 0.0 {
            ((args.rate * 0.05).ceil() as usize).clamp(1, window)
        } else {
            window
        };
        while batch.len() < take && sent + (batch.len() as u64) < limit {
            match input.next().await? {
                Some(m) => batch.push(m),
                None => break,
            }
        }
        if batch.is_empty() {
            break;
        }
        loop {
            match publisher.publish_window(&batch).await {
                Ok(n) => {
                    nacked += n as u64;
                    break;
                }
                Err(e) if e.is_permanent() => {
                    eprintln!("candybar: {e}; {sent} events were confirmed before this");
                    return Ok(ExitCode::from(2));
                }
                Err(e) => {
                    resends += 1;
                    if resends > 600 {
                        eprintln!("candybar: giving up: {e}; {sent} events were confirmed");
                        return Ok(ExitCode::FAILURE);
                    }
                    eprintln!(
                        "candybar: {e}; sending the unconfirmed {} events again",
                        batch.len()
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        sent += batch.len() as u64;
        if args.rate > 0.0 {
            let due = Duration::from_secs_f64(sent as f64 / args.rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "candybar: published {} events to {} exchange {exchange} in {secs:.2} s ({:.0}/s), all confirmed{}",
        sent - nacked,
        url.masked(),
        sent as f64 / secs.max(1e-9),
        if input.skipped > 0 {
            format!("; {} unreadable lines skipped", input.skipped)
        } else {
            String::new()
        }
    );
    if nacked > 0 {
        eprintln!("candybar: the broker refused {nacked} events (nack)");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

enum Source {
    Demo(Box<Demo>),
    File(tokio::io::Split<tokio::io::BufReader<tokio::fs::File>>),
}

struct Input {
    source: Source,
    skipped: u64,
}

impl Input {
    async fn open(args: &PublishArgs, src: &SourceArgs) -> anyhow::Result<Self> {
        let source = if let Some(path) = &args.file {
            let f = tokio::fs::File::open(path)
                .await
                .with_context(|| format!("cannot open {}", path.display()))?;
            Source::File(tokio::io::BufReader::with_capacity(1 << 20, f).split(b'\n'))
        } else {
            let settings = src.settings()?;
            let cfg = DemoConfig {
                seed: src.seed.unwrap_or(1),
                ..DemoConfig::default()
            };
            Source::Demo(Box::new(Demo::new(cfg, &settings.registry)))
        };
        Ok(Self { source, skipped: 0 })
    }

    async fn next(&mut self) -> anyhow::Result<Option<RawMessage>> {
        match &mut self.source {
            Source::Demo(d) => Ok(Some(d.next_message(now_us()))),
            Source::File(lines) => loop {
                let Some(line) = lines
                    .next_segment()
                    .await
                    .context("reading the input file")?
                else {
                    return Ok(None);
                };
                match read_ndjson_line(&line, now_us()) {
                    Ok(Record::Event(m)) if !m.routing_key.is_empty() => return Ok(Some(m)),
                    Ok(Record::Event(_)) | Err(LineError::Base64(_)) => self.skipped += 1,
                    // Not an event (a `query --gaps` line): nothing to publish.
                    Ok(Record::Gap(_)) | Err(LineError::Empty) => {}
                }
            },
        }
    }
}
