//! The journal's commands: `record` (the bus into the journal, no window), `query` (read it
//! back through the filter language) and `import` (an NDJSON export into it).

use std::collections::BinaryHeap;
use std::io::Write as _;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use candybar_bus::amqp::{QueueMode, StreamStart};
use candybar_bus::{AckGate, SourceMsg};
use candybar_core::config::Retention;
use candybar_core::event::RawMessage;
use candybar_core::export::{ExportEncoder, ExportFormat, GapRecord, Record, read_ndjson_line};
use candybar_core::filter::{Filter, FilteredView, parse_duration};
use candybar_core::store::{EventStore, StoreConfig};
use candybar_core::time::{Micros, now_us, parse_rfc3339_us};
use candybar_journal::{
    Appended, BlockRef, Entry, JournalConfig, JournalError, JournalReader, JournalWriter, Keep,
};

use super::{FilterArg, Settings, SourceArgs, SourceChoice, StateReport, print_gap};

/// The journal's directory: the flag, else `[journal] dir` / `CANDYBAR_JOURNAL`, else `journal`
/// in the data dir.
pub(crate) fn journal_dir(flag: Option<&Path>, s: &Settings) -> anyhow::Result<PathBuf> {
    if let Some(p) = flag
        .map(Path::to_owned)
        .or_else(|| s.file.journal.dir.clone())
    {
        return Ok(p);
    }
    directories::ProjectDirs::from("", "", "candybar")
        .map(|d| d.data_dir().join("journal"))
        .context("no home directory to keep the journal in: give --journal DIR")
}

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// The journal's directory [default: journal in the data dir; env: `CANDYBAR_JOURNAL`]
    #[arg(long, value_name = "DIR")]
    pub(super) journal: Option<PathBuf>,
    /// Keep events this long, e.g. 7d, 12h [default: `[journal] max_age`, else 30d]
    #[arg(long, value_name = "DURATION")]
    pub(super) max_age: Option<String>,
    /// Keep the journal under this many megabytes [default: `[journal] max_size_mb`, else 10240]
    #[arg(long, value_name = "MB")]
    pub(super) max_size_mb: Option<u64>,
    /// Largest body kept per event, in bytes (a longer one is cut, its header fields kept)
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    body_cap: usize,
    /// Install the recorder as a systemd user service (with these flags; the broker's password
    /// stays in the config or keychain), enable and start it
    #[arg(long, conflicts_with = "uninstall_service")]
    install_service: bool,
    /// Stop and remove the service `--install-service` installed (the journal stays)
    #[arg(long)]
    uninstall_service: bool,
}

/// Prefetch of a recorder with no `[amqp] prefetch`: deliveries are acknowledged when the
/// journal is synced (every 50 ms), so the window must hold that long's worth of events.
const RECORD_PREFETCH: u16 = 10_000;

/// Opens the journal for writing and says what opening it found (damage, a torn tail).
/// `Err`: it cannot be written (said; exit code 2).
fn open_writer(dir: &Path, r: Retention, who: &str) -> Result<JournalWriter, ExitCode> {
    let cfg = JournalConfig::retained(dir.to_owned(), r);
    let opened = match JournalWriter::open(cfg.clone(), who) {
        Err(JournalError::Locked { holder, .. }) if holder.contains(WINDOW_WRITER) => {
            ask_window_to_release(dir)
                .and_then(|()| JournalWriter::open(cfg, who).map_err(|e| format!("{e}")))
        }
        r => r.map_err(|e| e.to_string()),
    };
    let mut writer = opened.map_err(|e| {
        eprintln!("candybar: {e}");
        ExitCode::from(2)
    })?;
    for n in writer.take_notices() {
        eprintln!("candybar: {n}");
    }
    Ok(writer)
}

/// How the window names itself in the journal's lock file.
pub(crate) const WINDOW_WRITER: &str = "the candybar window";

/// The candybar window writes the journal at `dir`: asks it, through its instance socket, to
/// let go (it then reads what this recorder writes). `Err`: why it did not, in words.
fn ask_window_to_release(dir: &Path) -> Result<(), String> {
    let socket = crate::instance::socket_path();
    let shown = dir.display();
    let arg = dir.to_str().ok_or_else(|| {
        format!("the candybar window writes {shown}; close it first (the path is not UTF-8)")
    })?;
    eprintln!("candybar: the candybar window writes {shown}; asking it to hand the journal over");
    match crate::instance::send_with(
        &socket,
        crate::instance::InstanceRequest::ReleaseJournal,
        arg,
    ) {
        Ok(answer) if answer.starts_with("released") => {
            eprintln!(
                "candybar: the window handed the journal over; it reads what this recorder writes"
            );
            Ok(())
        }
        Ok(answer) => Err(format!(
            "the candybar window writes {shown} and did not hand it over: {}",
            answer.trim_start_matches("error: ")
        )),
        Err(e) => Err(format!(
            "the candybar window writes {shown} and cannot be asked to hand it over ({e}); close it, then start the recorder again"
        )),
    }
}

#[allow(clippy::too_many_lines)] // one event loop, read top to bottom
pub async fn record(args: RecordArgs, source: &SourceArgs) -> anyhow::Result<ExitCode> {
    if args.install_service {
        return super::service::install(&args, source);
    }
    if args.uninstall_service {
        return super::service::uninstall();
    }
    let settings = source.settings()?;
    let dir = journal_dir(args.journal.as_deref(), &settings)?;
    let retention = settings
        .file
        .journal
        .retention(args.max_age.as_deref(), args.max_size_mb)
        .map_err(anyhow::Error::msg)?;
    let mut writer = match open_writer(&dir, retention, "candybar record") {
        Ok(w) => w,
        Err(code) => return Ok(code),
    };
    let gate = AckGate::new();
    let newest = JournalReader::open(&dir).ok().and_then(|r| r.newest_us());
    let mut choice = source.choose(&settings, args.body_cap)?;
    match &mut choice {
        SourceChoice::Amqp(cfg) => {
            // A stream keeps its messages whatever is acknowledged (a restart backfills from
            // the journal's newest event): acks wait for the disk only on a queue.
            if !matches!(cfg.queue, QueueMode::Stream { .. }) {
                cfg.ack_gate = Some(gate.clone());
            }
            if settings.file.amqp.prefetch.is_none() {
                cfg.prefetch = RECORD_PREFETCH;
            }
            if let QueueMode::Stream { name, from } = &mut cfg.queue
                && source.from.is_none()
            {
                *from = backfill_start(newest);
                eprintln!("candybar: backfilling from stream {name} since {from}, then following");
            }
        }
        SourceChoice::Demo { reason, .. } => {
            eprintln!("candybar: recording the demo feed: {reason}");
        }
        SourceChoice::Replay(_) | SourceChoice::Ws(_) => {}
    }
    // The time nothing was recording is marked, so `query` and the window show it as a gap
    // rather than a quiet night. A durable queue or a stream kept what came meanwhile.
    if let Some(newest) = newest {
        let lossless = matches!(
            &choice,
            SourceChoice::Amqp(cfg) if !matches!(cfg.queue, QueueMode::Private)
        );
        writer.append_gap(
            newest,
            now_us(),
            candybar_core::source::NOT_RECORDING,
            lossless,
        );
    }
    let mut handle = choice.spawn();
    // A window's first Mission view then reads only the minutes since the last save.
    let _saving = crate::mission::KeepSaved::start(
        dir.clone(),
        Duration::from_secs(5),
        crate::mission::SAVE_EVERY,
    );
    eprintln!(
        "candybar: recording into {} (keeping {}, at most {} MB)",
        dir.display(),
        human_age(retention.max_age_us),
        retention.max_bytes >> 20
    );
    let mut states = StateReport::new(&handle.describe);
    let mut received = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut terminate = terminate_signal();
    let mut exit = ExitCode::SUCCESS;
    let mut stopped = false;
    loop {
        let wait = writer.backpressure();
        tokio::select! {
            m = handle.rx.recv(), if !wait => {
                let Some(first) = m else { break };
                let mut msg = Some(first);
                let mut finished = false;
                let mut n = 0;
                while let Some(m) = msg.take() {
                    match m {
                        SourceMsg::Event(m) => {
                            received += 1;
                            writer.append(&m);
                        }
                        SourceMsg::Gap { start_us, end_us, reason, lossless } => {
                            print_gap(start_us, end_us, &reason, lossless);
                            writer.append_gap(start_us, end_us, &reason, lossless);
                        }
                        SourceMsg::State(state) => match states.report(&state) {
                            Ok(done) => finished |= done,
                            Err(code) => {
                                exit = code;
                                finished = true;
                            }
                        },
                    }
                    n += 1;
                    if n < 4096 && !writer.backpressure() {
                        msg = handle.rx.try_recv().ok();
                    }
                }
                if finished {
                    break;
                }
            }
            _ = tick.tick() => writer.tick(),
            _ = &mut ctrl_c => { stopped = true; break },
            _ = terminate.recv() => { stopped = true; break },
        }
        gate.release(writer.durable());
        for n in writer.take_notices() {
            eprintln!("candybar: {n}");
        }
    }
    let mut flushed = writer.flush();
    if let (Err(reason), false) = (&flushed, stopped) {
        // The source has ended (a replay, say) while the disk is full: wait for room rather
        // than lose the last events.
        eprintln!(
            "candybar: waiting to write the last {} events ({reason}); Ctrl-C gives up",
            received - writer.durable()
        );
        loop {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = &mut ctrl_c => break,
                _ = terminate.recv() => break,
            }
            flushed = writer.flush();
            for n in writer.take_notices() {
                eprintln!("candybar: {n}");
            }
            if flushed.is_ok() {
                break;
            }
        }
    }
    gate.release(writer.durable());
    for n in writer.take_notices() {
        eprintln!("candybar: {n}");
    }
    let counts = writer.stats();
    eprintln!(
        "candybar: recorded {} events ({} duplicates dropped) into {}",
        counts.kept,
        counts.duplicates,
        dir.display()
    );
    if let Err(reason) = flushed {
        eprintln!(
            "candybar: {} received events could not be written: {reason}",
            received - writer.durable()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(exit)
}

/// Where a recorder reading a stream begins when not told: a minute before the journal's newest
/// event (what arrived while it was not running; the overlap is dropped as duplicates), or the
/// stream's first event for an empty journal.
fn backfill_start(newest: Option<Micros>) -> StreamStart {
    match newest {
        Some(us) => StreamStart::Timestamp(((us - BACKFILL_OVERLAP_US).max(0) / 1_000_000) as u64),
        None => StreamStart::First,
    }
}

/// How far before the journal's newest event a stream backfill begins: the stream's timestamps
/// are per chunk and the clocks of broker and recorder differ a little.
const BACKFILL_OVERLAP_US: Micros = 60_000_000;

/// SIGTERM (how service managers stop the recorder): finish the block, sync, exit.
pub(crate) fn terminate_signal() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        tokio::spawn(async move {
            term.recv().await;
            let _ = tx.send(()).await;
        });
    }
    #[cfg(not(unix))]
    drop(tx);
    rx
}

fn human_age(us: Micros) -> String {
    let s = us / 1_000_000;
    if s % 86_400 == 0 {
        format!("{} days", s / 86_400)
    } else if s % 3600 == 0 {
        format!("{} hours", s / 3600)
    } else {
        format!("{s} s")
    }
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq, Default)]
pub enum QueryFormat {
    /// One line per event for people.
    #[default]
    Text,
    /// candybar's NDJSON (decoded fields and the exact body; `import` and `--replay` read it).
    Ndjson,
    /// One JSON array.
    Json,
    /// A table of the decoded fields.
    Csv,
}

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// The journal's directory [default: journal in the data dir; env: `CANDYBAR_JOURNAL`]
    #[arg(long, value_name = "DIR")]
    journal: Option<PathBuf>,
    /// From this long ago (2h, 30m, 7d) or this moment (RFC 3339)
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Until this long ago or this moment
    #[arg(long, value_name = "WHEN")]
    until: Option<String>,
    #[command(flatten)]
    filter: FilterArg,
    /// Output format
    #[arg(long, value_enum, default_value_t = QueryFormat::Text)]
    format: QueryFormat,
    /// Stop after this many events
    #[arg(long, short = 'n', value_name = "N")]
    count: Option<u64>,
    /// Keep going: print new events as they are journaled
    #[arg(long)]
    follow: bool,
    /// NDJSON and JSON: also the times nothing was received, each a record of its own
    /// (`{"gap":{"start","end","seconds","reason","lossless"}}`) in its place among the events;
    /// text always shows them
    #[arg(long)]
    gaps: bool,
}

/// `2h` (ago) or an RFC 3339 moment.
pub(crate) fn parse_when(s: &str, now: Micros, what: &str) -> Result<Micros, String> {
    if let Some(d) = parse_duration(s) {
        return Ok(now - d);
    }
    parse_rfc3339_us(s).ok_or_else(|| {
        format!(
            "{what} {s:?} is neither a duration (2h, 30m, 7d) nor a moment (2026-12-06T10:00:00Z)"
        )
    })
}

/// An event ready to print, ordered oldest first (then in journal order).
struct Pending {
    time: Micros,
    order: u64,
    bytes: Vec<u8>,
    /// An event (counted by `-n`), not a gap line.
    event: bool,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.time, self.order) == (o.time, o.order)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // A max-heap: the oldest on top.
        (o.time, o.order).cmp(&(self.time, self.order))
    }
}

/// Matching events of the journal's blocks, through the same store and filter as the window.
pub(crate) struct Matcher {
    store: EventStore,
    view: FilteredView,
    next_seq: u64,
    encoder: ExportEncoder,
    text: bool,
    /// Gaps among the events: always in text, in the machine formats with `--gaps`.
    gaps: bool,
    order: u64,
}

impl Matcher {
    pub(crate) fn new(filter: Filter, format: QueryFormat, gaps: bool) -> Self {
        let export = match format {
            QueryFormat::Json => ExportFormat::Json,
            QueryFormat::Csv => ExportFormat::Csv,
            QueryFormat::Ndjson | QueryFormat::Text => ExportFormat::Ndjson,
        };
        Self {
            store: EventStore::single_threaded(StoreConfig {
                max_events: 1 << 16,
                budget_bytes: 256 << 20,
                body_cap_bytes: usize::MAX >> 1,
            }),
            view: FilteredView::new(filter),
            next_seq: 0,
            encoder: ExportEncoder::new(export),
            text: format == QueryFormat::Text,
            gaps: gaps || format == QueryFormat::Text,
            order: 0,
        }
    }

    /// Whether `block` may hold a match: `false` when its index rules it out.
    pub(crate) fn may_hold(&self, reader: &mut JournalReader, block: &BlockRef) -> bool {
        let filter = self.view.filter();
        !filter.rules_out()
            || reader
                .index(block)
                .is_none_or(|ix| filter.may_match_block(&ix, now_us()))
    }

    /// The block's matching events within `[since, until)`, encoded; `screened`: its events
    /// already passed a [`Screen`].
    fn block(
        &mut self,
        entries: &[Entry],
        (since, until): (Micros, Micros),
        screened: bool,
        out: &mut Vec<Pending>,
    ) {
        let now = now_us();
        let screen = Screen::new(self.view.filter(), (since, until), now);
        for e in entries {
            match e {
                Entry::Event(m) if screened || screen.keeps(m) => {
                    self.store.insert(m);
                }
                // Where nothing was received, in its place: in words for people; a record of
                // its own in the machine formats when asked (`--gaps`; scripts that expect
                // events only get events by default).
                Entry::Gap {
                    start_us,
                    end_us,
                    reason,
                    lossless,
                } if self.gaps && (since..until).contains(end_us) => {
                    self.order += 1;
                    let bytes = if self.text {
                        let line = super::gap_text(*start_us, *end_us, reason, *lossless);
                        format!("── {line}\n").into_bytes()
                    } else {
                        let mut b = Vec::new();
                        let gap = GapRecord {
                            start_us: *start_us,
                            end_us: *end_us,
                            reason: reason.clone(),
                            lossless: *lossless,
                        };
                        self.encoder.gap_record(&gap, &mut b);
                        b
                    };
                    out.push(Pending {
                        time: *end_us,
                        order: self.order,
                        bytes,
                        event: false,
                    });
                }
                _ => {}
            }
        }
        self.view.update(&self.store, now_us(), u64::MAX);
        let start = self.view.matches().partition_point(|&s| s < self.next_seq);
        for i in start..self.view.len() {
            let Some(seq) = self.view.get(i) else { break };
            if let Some(event) = self.store.get(seq) {
                let mut bytes = Vec::new();
                if self.text {
                    super::tail::write_text(&event, &mut bytes);
                } else {
                    self.encoder.record(&event, &mut bytes);
                }
                self.order += 1;
                out.push(Pending {
                    time: event.received_us,
                    order: self.order,
                    bytes,
                    event: true,
                });
            }
        }
        self.next_seq = self.store.end_seq();
    }
}

/// What cannot match is not worth storing: events outside `[since, until)`, bodies without the
/// filter's text, headers the filter rules out (a text search or a header decode instead of a
/// store insert).
pub(crate) struct Screen<'f> {
    filter: &'f Filter,
    range: (Micros, Micros),
    now: Micros,
    bodies: bool,
    messages: bool,
}

impl<'f> Screen<'f> {
    /// `now`: the moment the store's filter judges `last:` by (the same, or a match is lost).
    pub(crate) fn new(filter: &'f Filter, range: (Micros, Micros), now: Micros) -> Self {
        Self {
            filter,
            range,
            now,
            bodies: filter.screens_bodies(),
            messages: filter.screens_messages(),
        }
    }

    /// Only the time range, everything else left to the store (`bench journal --baseline`).
    fn range_only(filter: &'f Filter, range: (Micros, Micros)) -> Self {
        Self {
            bodies: false,
            messages: false,
            ..Self::new(filter, range, 0)
        }
    }

    fn keeps(&self, m: &RawMessage) -> bool {
        (self.range.0..self.range.1).contains(&m.received_us)
            && (!self.bodies || self.filter.may_match_body(&m.body))
            && self.event(m)
    }
}

impl Keep for Screen<'_> {
    fn wants_lower_case(&self) -> bool {
        self.filter.screens_lower_case()
    }

    fn glance(
        &self,
        raw: &[u8],
        lower: Option<&[u8]>,
        events: &[(Micros, std::ops::Range<usize>)],
        keep: &mut [bool],
    ) {
        for ((t, _), k) in events.iter().zip(keep.iter_mut()) {
            *k = (self.range.0..self.range.1).contains(t);
        }
        if self.bodies {
            let bodies: Vec<_> = events.iter().map(|(_, b)| b.clone()).collect();
            self.filter.may_match_bodies(raw, lower, &bodies, keep);
        }
    }

    fn event(&self, m: &RawMessage) -> bool {
        !self.messages || self.filter.may_match_message(m, self.now)
    }
}

/// Threads for reading a journal: one per core, at most eight.
pub(crate) fn all_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// One pass over the journal's blocks within `[since, until)`: matches are encoded into `out`
/// oldest first (a match waits until no block still to be read can hold an older event:
/// journals are in time order, except what `import` added), `flush` hands `out` on when it grows
/// (`false`: the reader went away). How many were printed; `None` when the reader went away.
///
/// The blocks are read on `workers` threads ([`all_cores`]); `screen: false` stores every event
/// of the blocks read and leaves all to the store's filter (with one worker, how `query` ran
/// before its events were screened: `bench journal --baseline`).
pub(crate) fn pass(
    reader: &mut JournalReader,
    matcher: &mut Matcher,
    (since, until): (Micros, Micros),
    limit: u64,
    out: &mut Vec<u8>,
    flush: &mut dyn FnMut(&mut Vec<u8>) -> bool,
    (workers, screen): (usize, bool),
) -> Option<u64> {
    let in_range: Vec<_> = reader
        .blocks()
        .filter(|b| b.header.max_us >= since && b.header.min_us < until)
        .copied()
        .collect();
    // The blocks whose index rules out a match are not read.
    let blocks: Vec<_> = in_range
        .into_iter()
        .filter(|b| matcher.may_hold(reader, b))
        .collect();
    let mut oldest_ahead = vec![Micros::MAX; blocks.len() + 1];
    for i in (0..blocks.len()).rev() {
        oldest_ahead[i] = oldest_ahead[i + 1].min(blocks[i].header.min_us);
    }
    let mut heap = BinaryHeap::new();
    let mut found = Vec::new();
    let mut printed = 0u64;
    // Blocks are read, decompressed and screened ahead on every core; matches are stored and
    // encoded here, in block order.
    let filter = matcher.view.filter().clone();
    let keep = if screen {
        Screen::new(&filter, (since, until), now_us())
    } else {
        Screen::range_only(&filter, (since, until))
    };
    let mut gone = false;
    reader.read_each(&blocks, workers, &keep, &mut |i, entries| {
        let Some(entries) = entries else {
            return ControlFlow::Continue(());
        };
        matcher.block(&entries, (since, until), true, &mut found);
        heap.extend(found.drain(..));
        while heap
            .peek()
            .is_some_and(|p: &Pending| p.time < oldest_ahead[i + 1])
        {
            let Some(p) = heap.pop() else { break };
            matcher.encoder.place(&p.bytes, out);
            printed += u64::from(p.event);
            if printed >= limit {
                return ControlFlow::Break(());
            }
        }
        if out.len() > 1 << 16 && !flush(out) {
            gone = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    if gone {
        return None;
    }
    while printed < limit
        && let Some(p) = heap.pop()
    {
        matcher.encoder.place(&p.bytes, out);
        printed += u64::from(p.event);
    }
    Some(printed)
}

#[allow(clippy::too_many_lines)] // the pass over the journal, then following it
pub async fn query(args: QueryArgs, source: &SourceArgs) -> anyhow::Result<ExitCode> {
    let filter = match args.filter.parse() {
        Ok(f) => f,
        Err(code) => return Ok(code),
    };
    let settings = source.settings()?;
    let dir = journal_dir(args.journal.as_deref(), &settings)?;
    let now = now_us();
    let since = match args
        .since
        .as_deref()
        .map(|s| parse_when(s, now, "--since"))
        .transpose()
    {
        Ok(s) => s.unwrap_or(Micros::MIN),
        Err(e) => {
            eprintln!("candybar: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let until = match args
        .until
        .as_deref()
        .map(|s| parse_when(s, now, "--until"))
        .transpose()
    {
        Ok(u) => u.unwrap_or(Micros::MAX),
        Err(e) => {
            eprintln!("candybar: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let mut reader = match tokio::task::block_in_place(|| JournalReader::open(&dir)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("candybar: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if args.gaps && args.format == QueryFormat::Csv {
        eprintln!(
            "candybar: --gaps needs --format ndjson or json (CSV is a table of events; text always shows gaps)"
        );
        return Ok(ExitCode::from(2));
    }
    let mut matcher = Matcher::new(filter, args.format, args.gaps);
    let mut out = Vec::with_capacity(1 << 16);
    matcher.encoder.begin(&mut out);
    let limit = args.count.unwrap_or(u64::MAX);
    let stdout = std::io::stdout();
    let write = |out: &mut Vec<u8>| -> bool {
        let mut lock = stdout.lock();
        let ok = lock.write_all(out).and_then(|()| lock.flush()).is_ok();
        out.clear();
        ok
    };

    let last_block = reader.blocks().last().copied();
    let Some(mut printed) = tokio::task::block_in_place(|| {
        pass(
            &mut reader,
            &mut matcher,
            (since, until),
            limit,
            &mut out,
            &mut |o| write(o),
            (all_cores(), true),
        )
    }) else {
        return Ok(ExitCode::SUCCESS);
    };
    report_damage(&mut reader);
    if !args.follow || printed >= limit {
        matcher.encoder.end(&mut out);
        write(&mut out);
        return Ok(ExitCode::SUCCESS);
    }
    if !write(&mut out) {
        return Ok(ExitCode::SUCCESS);
    }

    // Following: new blocks as the writer adds them, in the order written.
    let mut last_block = last_block;
    let mut found = Vec::new();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = &mut ctrl_c => break,
        }
        if let Err(e) = tokio::task::block_in_place(|| reader.refresh()) {
            eprintln!("candybar: {e}");
            return Ok(ExitCode::from(2));
        }
        let new = reader.blocks_after(last_block);
        for b in &new {
            if !matcher.may_hold(&mut reader, b) {
                continue;
            }
            let Some(entries) = tokio::task::block_in_place(|| reader.read(b)) else {
                continue;
            };
            matcher.block(&entries, (since, Micros::MAX), false, &mut found);
            // A block's gaps were found before its events: each in its place.
            found.sort_by_key(|p| (p.time, p.order));
            for p in found.drain(..) {
                matcher.encoder.place(&p.bytes, &mut out);
                printed += u64::from(p.event);
                if printed >= limit {
                    break;
                }
            }
            if printed >= limit {
                break;
            }
        }
        if let Some(b) = new.last() {
            last_block = Some(*b);
        }
        report_damage(&mut reader);
        if !write(&mut out) || printed >= limit {
            break;
        }
    }
    matcher.encoder.end(&mut out);
    write(&mut out);
    Ok(ExitCode::SUCCESS)
}

fn report_damage(reader: &mut JournalReader) {
    for d in reader.new_damage() {
        eprintln!("candybar: damaged journal: {d}");
    }
    if let Some((path, at)) = reader.incomplete_tail()
        && candybar_journal::writer_of(reader.dir()).is_none()
    {
        eprintln!(
            "candybar: {} ends in a block torn at byte {at} (a crash while it was written); the next recorder cuts it off",
            path.display()
        );
    }
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// An NDJSON file: candybar's export format, or one event body per line
    file: PathBuf,
    /// The journal's directory [default: journal in the data dir; env: `CANDYBAR_JOURNAL`]
    #[arg(long, value_name = "DIR")]
    journal: Option<PathBuf>,
}

/// Broken lines named one by one, up to this many; then counted.
const BROKEN_LINES_SHOWN: u64 = 20;

#[allow(clippy::too_many_lines)] // one pass over the file, each line's cases side by side
pub fn import(args: &ImportArgs, source: &SourceArgs) -> anyhow::Result<ExitCode> {
    let settings = source.settings()?;
    let dir = journal_dir(args.journal.as_deref(), &settings)?;
    let retention = settings
        .file
        .journal
        .retention(None, None)
        .map_err(anyhow::Error::msg)?;
    let file = match std::fs::File::open(&args.file) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("candybar: cannot read {}: {e}", args.file.display());
            return Ok(ExitCode::from(2));
        }
    };
    let total = file.metadata().map_or(0, |m| m.len());
    let mut writer = match open_writer(&dir, retention, "candybar import") {
        Ok(w) => w,
        Err(code) => return Ok(code),
    };
    let mut input = std::io::BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::new();
    let (mut kept, mut dups, mut broken, mut read_bytes) = (0u64, 0u64, 0u64, 0u64);
    let mut last_progress = Instant::now();
    let now = now_us();
    // Retention would drop these as soon as they were written: they are counted and said.
    let oldest_kept = now.saturating_sub(retention.max_age_us);
    let (mut too_old, mut gaps) = (0u64, 0u64);
    let mut saved_until = crate::mission::saved_until(&dir);
    let mut forgot = false;
    for number in 1u64.. {
        line.clear();
        let n = match read_line_capped(&mut input, &mut line, candybar_bus::replay::MAX_LINE_BYTES)
        {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                eprintln!(
                    "candybar: cannot read {} after line {}: {e}",
                    args.file.display(),
                    number - 1
                );
                break;
            }
        };
        read_bytes += n as u64;
        let problem = if line.len() > candybar_bus::replay::MAX_LINE_BYTES {
            Some(format!(
                "longer than {} MiB; skipped",
                candybar_bus::replay::MAX_LINE_BYTES >> 20
            ))
        } else if line.trim_ascii().is_empty() {
            None
        } else if let Some(e) = candybar_core::decode::json_error(line.trim_ascii()) {
            Some(format!("not JSON ({e})"))
        } else {
            match read_ndjson_line(&line, now) {
                // Where the exporting journal recorded nothing; this journal may well have.
                Ok(Record::Gap(_)) => {
                    gaps += 1;
                    None
                }
                Ok(Record::Event(m)) if m.received_us < oldest_kept => {
                    too_old += 1;
                    None
                }
                Ok(Record::Event(m)) => {
                    match writer.append(&m) {
                        Appended::Kept => {
                            kept += 1;
                            // Older than Mission Control's saved model: a read from it would
                            // miss this for good, whatever happens to the import after.
                            if saved_until.is_some_and(|u| m.received_us <= u) {
                                saved_until = None;
                                forgot = true;
                                if let Err(e) = crate::mission::forget_saved(&dir) {
                                    eprintln!("candybar: {e}");
                                }
                            }
                        }
                        Appended::Duplicate => dups += 1,
                    }
                    None
                }
                Err(e) => Some(e.to_string()),
            }
        };
        if let Some(p) = problem {
            broken += 1;
            if broken <= BROKEN_LINES_SHOWN {
                eprintln!("candybar: {} line {number}: {p}", args.file.display());
            }
        }
        writer.tick();
        while writer.backpressure() {
            std::thread::sleep(Duration::from_millis(200));
            writer.tick();
        }
        for n in writer.take_notices() {
            eprintln!("candybar: {n}");
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            eprintln!(
                "candybar: importing… {kept} events ({} of {} MB read)",
                read_bytes >> 20,
                total >> 20
            );
        }
    }
    if broken > BROKEN_LINES_SHOWN {
        eprintln!(
            "candybar: … and {} more broken lines",
            broken - BROKEN_LINES_SHOWN
        );
    }
    let flushed = writer.flush();
    for n in writer.take_notices() {
        eprintln!("candybar: {n}");
    }
    if let Err(reason) = flushed {
        eprintln!("candybar: the import could not be written completely: {reason}");
        return Ok(ExitCode::FAILURE);
    }
    eprintln!(
        "candybar: imported {kept} events into {} ({dups} already there, {broken} broken lines skipped)",
        dir.display()
    );
    if gaps > 0 {
        eprintln!(
            "candybar: {gaps} gap lines (times the exporting journal recorded nothing) were not imported: they belong to that journal"
        );
    }
    if too_old > 0 {
        let (n, were) = if too_old == 1 {
            ("1 event".to_owned(), "was")
        } else {
            (format!("{too_old} events"), "were")
        };
        eprintln!(
            "candybar: {n} {were} not imported: older than the journal keeps ([journal] max_age, {}); a longer max_age (or CANDYBAR_JOURNAL_MAX_AGE) keeps them",
            candybar_core::time::format_span(retention.max_age_us)
        );
    }
    drop(writer);
    // The saved model was forgotten for events older than it: built anew, with them.
    if forgot {
        match crate::mission::save_anew(&dir) {
            Ok(l) => eprintln!(
                "candybar: Mission Control's saved model built anew with what was imported ({} of its events, {} ms)",
                l.events,
                l.took.as_millis()
            ),
            Err(e) => eprintln!("candybar: {e}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads one line (up to and without keeping more than `cap` bytes of it); returns the bytes
/// consumed, 0 at the end.
fn read_line_capped(
    input: &mut impl std::io::BufRead,
    line: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(consumed);
        }
        let (chunk, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let room = (cap + 1).saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let n = chunk.len();
        input.consume(n);
        consumed += n;
        if done {
            return Ok(consumed);
        }
    }
}
