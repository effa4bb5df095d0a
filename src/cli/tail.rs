//! `candybar tail`: print matching events as they arrive.

use std::io::Write as _;
use std::process::ExitCode;

use candybar_bus::SourceMsg;
use candybar_core::event::{Event, Status};
use candybar_core::export::write_ndjson;
use candybar_core::filter::FilteredView;
use candybar_core::store::{EventStore, StoreConfig};
use candybar_core::text::printable;
use candybar_core::time::{format_clock, now_us};
use clap::Args;

use super::{FilterArg, Format, SourceArgs, SourceChoice, StateReport, print_gap};

#[derive(Args, Debug)]
pub struct TailArgs {
    #[command(flatten)]
    filter: FilterArg,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Exit after this many matching events
    #[arg(long, short = 'n', value_name = "N")]
    count: Option<u64>,
    /// Largest body kept per event, in bytes (the true size is still reported)
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    body_cap: usize,
}

#[allow(clippy::too_many_lines)] // one event loop, read top to bottom
pub async fn run(args: TailArgs, source: &SourceArgs) -> anyhow::Result<ExitCode> {
    let filter = match args.filter.parse() {
        Ok(f) => f,
        Err(code) => return Ok(code),
    };
    let settings = source.settings()?;
    let choice = source.choose(&settings, args.body_cap)?;
    if let SourceChoice::Demo { reason, .. } = &choice {
        eprintln!("candybar: showing the demo feed: {reason}");
    }
    let mut handle = choice.spawn();
    // A ring big enough for `tail`'s needs: matches are printed as they arrive.
    let mut store = EventStore::new(StoreConfig {
        max_events: 65_536,
        budget_bytes: 128 << 20,
        body_cap_bytes: args.body_cap,
    });
    let mut view = FilteredView::new(filter);
    let mut printed_to_seq = 0u64; // first seq not yet considered for printing
    let mut printed = 0u64;
    let mut states = StateReport::new(&handle.describe);
    let mut out = Vec::with_capacity(1 << 16);
    let stdout = std::io::stdout();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);

    loop {
        let first = tokio::select! {
            m = handle.rx.recv() => m,
            _ = &mut ctrl_c => break,
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        while batch.len() < 4096 {
            match handle.rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let mut finished = false;
        for msg in batch {
            match msg {
                SourceMsg::Event(m) => {
                    store.insert(&m);
                }
                SourceMsg::Gap {
                    start_us,
                    end_us,
                    reason,
                    lossless,
                } => {
                    print_gap(start_us, end_us, &reason, lossless);
                    store.record_gap(start_us, end_us, reason, lossless);
                }
                SourceMsg::State(state) => match states.report(&state) {
                    Ok(done) => finished |= done,
                    Err(code) => return Ok(code),
                },
            }
        }
        view.update(&store, now_us(), u64::MAX);
        // Print the matches not printed yet, in order.
        let start = view.matches().partition_point(|&s| s < printed_to_seq);
        for i in start..view.len() {
            let Some(seq) = view.get(i) else { break };
            if let Some(event) = store.get(seq) {
                match args.format {
                    Format::Ndjson => write_ndjson(&event, &mut out),
                    Format::Text => write_text(&event, &mut out),
                }
                printed += 1;
            }
            if args.count.is_some_and(|c| printed >= c) {
                break;
            }
        }
        printed_to_seq = store.end_seq();
        let mut lock = stdout.lock();
        if lock.write_all(&out).and_then(|()| lock.flush()).is_err() {
            // The reader went away (`tail | head`): that is a normal end.
            return Ok(ExitCode::SUCCESS);
        }
        out.clear();
        if args.count.is_some_and(|c| printed >= c) || finished {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn write_text(e: &Event, out: &mut Vec<u8>) {
    let icon = match e.status {
        Status::Error => '✗',
        Status::Completed => '✓',
        Status::Started => '▶',
        Status::Other => '·',
    };
    let cut = if e.truncated {
        format!("  [{} B, cut]", e.size_bytes)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{} {icon} {:<42} {:<18} {:<14} {:>6} B{cut}",
        format_clock(e.received_us),
        fit(&printable(&e.kind), 42),
        fit(&printable(e.source.as_deref().unwrap_or("-")), 18),
        fit(&printable(e.agent.as_deref().unwrap_or("-")), 14),
        e.size_bytes,
    );
}

/// `s` cut to `width` characters, keeping the end (the distinctive part of URIs and ids).
fn fit(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        return s.to_owned();
    }
    let tail: String = s.chars().skip(n - (width - 1)).collect();
    format!("…{tail}")
}
