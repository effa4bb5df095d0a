//! The window's history. It opens on the recent past from the journal instead of an empty table;
//! while it is connected to a broker it records what it receives into the journal (a thread of
//! its own writes, the UI never waits on the disk); and when `candybar record` already writes the
//! journal, it reads that journal live instead of consuming a second copy from the bus — and takes
//! over recording when the recorder stops. The other way round, a `candybar record` started while
//! the window records asks it (through the instance socket) to let go: the window finishes its
//! last block, hands the journal over and reads it live from then on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use candybar_bus::{SourceHandle, SourceMsg, SourceTx};
use candybar_core::config::Retention;
use candybar_core::source::SourceState;
use candybar_journal::{BlockRef, Entry, JournalConfig, JournalReader, JournalWriter, Notice};

/// How many of the newest journaled events the window opens with, at most.
pub const PRELOAD_MAX: usize = 250_000;
/// Events waiting for the journal thread; beyond this (a disk that cannot keep up, or is full)
/// the window keeps showing events but stops recording them, and says so.
const SINK_CAPACITY: usize = 65_536;
/// How often a window reading a recorder's journal looks for new blocks.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);
/// How long the window's journal thread may take to write its last block when `candybar record`
/// asks for the journal (a full disk does not keep the recorder waiting longer).
const RELEASE_GRACE: Duration = Duration::from_secs(3);
/// How long the instance thread waits for the window to let go of the journal. Under the
/// socket's own timeout (8 s), so the recorder hears the answer.
const RELEASE_PATIENCE: Duration = Duration::from_secs(6);
/// How long a window that handed the journal over waits for the recorder to open it before
/// recording again itself (the recorder died on its way).
const RECORDER_ARRIVAL: Duration = Duration::from_secs(10);

/// What the status bar says about the journal.
#[derive(Clone, Debug, Default)]
pub struct JournalStatus {
    /// One short line: "journal: recording (12,345 new)".
    pub line: String,
    /// Where, and what it means.
    pub hover: String,
    /// Something the user should act on (a full disk, events not recorded).
    pub warning: Option<String>,
}

pub type SharedStatus = Arc<Mutex<JournalStatus>>;

/// The window's journal: what the status bar says, the recording thread when the window
/// records, and — while it reads a recorder's journal — how to take over when the recorder stops.
pub struct History {
    /// Where the journal is (the timeline reads it).
    pub dir: PathBuf,
    pub status: SharedStatus,
    pub recorder: Option<JournalRecorder>,
    pub takeover: Option<Takeover>,
    /// While the window records: what it records from, to take over again after it handed the
    /// journal to `candybar record` and that stopped.
    pub own: Option<Takeover>,
}

/// What a window reading `candybar record`'s journal needs to record itself once it stops.
#[derive(Clone)]
pub struct Takeover {
    pub dir: PathBuf,
    pub retention: Retention,
    /// The broker the window would have consumed (none configured: nothing to take over).
    pub amqp: Option<candybar_bus::amqp::AmqpConfig>,
}

/// How the window uses the journal, decided when it opens.
pub enum Plan {
    /// No journal (`--no-journal`, the demo feed, a replay).
    Off,
    /// Record what the broker sends, into `dir`.
    Record { dir: PathBuf, retention: Retention },
    /// `candybar record` (`who`) writes `dir`: read it live.
    Follow {
        dir: PathBuf,
        retention: Retention,
        who: String,
    },
}

/// The blocks holding the journal's newest `max` events received by `until_us`, oldest first,
/// and how many events of the first of them are older than wanted.
pub(crate) fn newest_blocks(
    reader: &JournalReader,
    max: usize,
    until_us: candybar_core::time::Micros,
) -> (Vec<BlockRef>, usize) {
    let mut picked: Vec<BlockRef> = Vec::new();
    let mut count = 0usize;
    for b in reader
        .blocks()
        .rev()
        .filter(|b| b.header.min_us <= until_us)
    {
        if count >= max {
            break;
        }
        count += b.header.count as usize;
        picked.push(*b);
    }
    picked.reverse();
    (picked, count.saturating_sub(max))
}

/// Sends the journal's newest `max` events (and gaps), oldest first, a block at a time (memory
/// stays one block's worth however big the journal is); damage is skipped (the recorder and
/// `query` report it). The newest entry's time, or `Err` when the window went away.
async fn send_newest(
    reader: &mut JournalReader,
    max: usize,
    tx: &SourceTx,
) -> Result<Option<candybar_core::time::Micros>, ()> {
    let (blocks, mut skip) = newest_blocks(reader, max, candybar_core::time::Micros::MAX);
    let mut newest = None;
    for b in &blocks {
        let Some(mut entries) = tokio::task::block_in_place(|| reader.read(b)) else {
            continue;
        };
        if skip > 0 {
            entries.retain(|e| {
                let older = skip > 0 && matches!(e, Entry::Event(_));
                skip -= usize::from(older);
                !older
            });
        }
        newest = entries.iter().map(Entry::time_us).max().max(newest);
        if !send_entries(tx, entries).await {
            return Err(());
        }
    }
    Ok(newest)
}

/// Sends journal entries to the window as if they had just arrived. `false`: the window is gone.
async fn send_entries(tx: &SourceTx, entries: Vec<Entry>) -> bool {
    for e in entries {
        let msg = match e {
            Entry::Event(m) => SourceMsg::Event(m),
            Entry::Gap {
                start_us,
                end_us,
                reason,
                lossless,
            } => SourceMsg::Gap {
                start_us,
                end_us,
                reason,
                lossless,
            },
        };
        if tx.send(msg).await.is_err() {
            return false;
        }
    }
    true
}

/// What a recording window opens with: the newest `max` events of the journal at `dir`, then a
/// gap from the newest of them to now (nothing was recording; `lossless` when the broker kept
/// what came meanwhile: a durable queue).
pub struct Opening {
    pub dir: PathBuf,
    pub max: usize,
    pub lossless: bool,
}

/// `inner` (a broker source) with its events copied into the journal by `sink`, after what
/// `opening` says.
pub fn recorded(
    mut inner: SourceHandle,
    sink: JournalSink,
    opening: Option<Opening>,
) -> SourceHandle {
    let describe = inner.describe.clone();
    SourceHandle::spawn(describe, move |tx| async move {
        if let Some(o) = opening {
            let newest = match tokio::task::block_in_place(|| JournalReader::open(&o.dir)) {
                Ok(mut reader) => match send_newest(&mut reader, o.max, &tx).await {
                    Ok(newest) => newest,
                    Err(()) => return,
                },
                Err(_) => None, // a new journal (the writer made the directory)
            };
            if let Some(start_us) = newest {
                let gap = SourceMsg::Gap {
                    start_us,
                    end_us: candybar_core::time::now_us(),
                    reason: candybar_core::source::NOT_RECORDING.into(),
                    lossless: o.lossless,
                };
                sink.copy(&gap);
                if tx.send(gap).await.is_err() {
                    return;
                }
            }
        }
        while let Some(msg) = inner.rx.recv().await {
            sink.copy(&msg);
            if tx.send(msg).await.is_err() {
                return;
            }
        }
    })
}

/// The journal at `dir`, written by `who`, read live: its newest `max` events, then each block
/// the recorder adds. The source finishes when the recorder stops (the window then records).
pub fn followed(dir: PathBuf, who: &str, max: usize) -> SourceHandle {
    let describe = following_describe(&dir, who);
    SourceHandle::spawn(describe.clone(), move |tx| async move {
        follow(dir, describe, max, Duration::ZERO, tx).await;
    })
}

fn following_describe(dir: &Path, who: &str) -> String {
    format!("the journal at {} (written by {who})", dir.display())
}

/// What the status bar says while the window reads the journal `who` writes.
pub fn following_status(dir: &Path, who: &str) -> JournalStatus {
    JournalStatus {
        line: "journal: read live".into(),
        hover: format!(
            "{who} records into {}; this window reads what it writes instead of consuming a \
             second copy from the bus",
            dir.display()
        ),
        warning: None,
    }
}

/// `candybar record` asked for the journal this window writes: `recorder` writes its last block
/// and lets go, `reply` tells the recorder so, and the returned source reads the journal live
/// from there on (what the window already holds is not read again). It finishes when the
/// recorder stops — or never came within [`RECORDER_ARRIVAL`].
pub fn released(
    mut recorder: JournalRecorder,
    reply: SyncSender<String>,
    status: SharedStatus,
) -> SourceHandle {
    let dir = recorder.dir.clone();
    let describe = following_describe(&dir, "candybar record");
    SourceHandle::spawn(describe.clone(), move |tx| async move {
        let finished = tokio::task::spawn_blocking(move || recorder.finish(RELEASE_GRACE))
            .await
            .unwrap_or(false);
        if !finished {
            let _ = reply.try_send(format!(
                "error: the window could not write its last events to {} within {RELEASE_GRACE:?} \
                 (is the disk full?); try again",
                dir.display()
            ));
            return;
        }
        *status.lock() = following_status(&dir, "candybar record");
        let _ = reply.try_send(format!("released {}", dir.display()));
        follow(dir, describe, 0, RECORDER_ARRIVAL, tx).await;
    })
}

/// Reads the journal at `dir` live into `tx`: its newest `max` events, then each block a writer
/// adds, until no writer holds it (once one was seen, or `arrival` passed without one).
async fn follow(dir: PathBuf, describe: String, max: usize, arrival: Duration, tx: SourceTx) {
    let mut reader = match tokio::task::block_in_place(|| JournalReader::open(&dir)) {
        Ok(r) => r,
        Err(e) => {
            let state = SourceState::Retrying {
                reason: e.to_string(),
                retry_in: Duration::MAX,
                permanent: true,
            };
            let _ = tx.send(SourceMsg::State(state)).await;
            return;
        }
    };
    let mut last = reader.blocks().last().copied();
    if send_newest(&mut reader, max, &tx).await.is_err() {
        return;
    }
    let connected = SourceState::Connected { detail: describe };
    if tx.send(SourceMsg::State(connected)).await.is_err() {
        return;
    }
    let started = Instant::now();
    let mut writer_seen = false;
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        // The recorder's last blocks are read before the window takes over.
        let still_written = candybar_journal::writer_of(&dir).is_some();
        writer_seen |= still_written;
        let (r, new) = tokio::task::spawn_blocking(move || {
            let refreshed = reader.refresh();
            let blocks = reader.blocks_after(last);
            let entries: Vec<Entry> = blocks
                .iter()
                .filter_map(|b| reader.read(b))
                .flatten()
                .collect();
            (
                reader,
                refreshed.map(|()| (blocks.last().copied(), entries)),
            )
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        reader = r;
        match new {
            Ok((newest_block, entries)) => {
                last = newest_block.or(last);
                if !send_entries(&tx, entries).await {
                    return;
                }
            }
            Err(e) => tracing::warn!("journal: {e}"),
        }
        if !still_written && (writer_seen || started.elapsed() >= arrival) {
            let _ = tx.send(SourceMsg::State(SourceState::Finished)).await;
            return;
        }
    }
}

/// `candybar record` asks, through the instance socket, for the journal at `dir`.
pub struct ReleaseRequest {
    pub dir: PathBuf,
    /// The answer for the recorder: `released DIR`, or why not.
    pub reply: SyncSender<String>,
}

/// The instance thread's side of `release-journal DIR`: hands the request to the window (woken
/// by `wake`) and waits for its answer.
pub fn ask_release(tx: &SyncSender<ReleaseRequest>, dir: &str, wake: impl Fn()) -> String {
    if dir.is_empty() {
        return "error: release-journal needs the journal's directory".into();
    }
    let (reply, answer) = sync_channel(1);
    let request = ReleaseRequest {
        dir: PathBuf::from(dir),
        reply,
    };
    if tx.try_send(request).is_err() {
        return "error: the window is busy handing over the journal; try again".into();
    }
    wake();
    answer.recv_timeout(RELEASE_PATIENCE).unwrap_or_else(|_| {
        "error: the window did not let go of the journal in time; try again".into()
    })
}

/// Whether two spellings name one directory.
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// What the journal thread is sent.
enum SinkMsg {
    Event(candybar_core::event::RawMessage),
    Gap {
        start_us: i64,
        end_us: i64,
        reason: String,
        lossless: bool,
    },
}

/// Copies of what the window receives, on their way to the journal thread. Cheap to clone.
#[derive(Clone)]
pub struct JournalSink {
    tx: SyncSender<SinkMsg>,
    shared: Arc<SinkShared>,
}

struct SinkShared {
    /// Events that did not fit in the queue (the disk is behind or full).
    dropped: std::sync::atomic::AtomicU64,
    status: SharedStatus,
}

impl JournalSink {
    fn copy(&self, msg: &SourceMsg) {
        let m = match msg {
            SourceMsg::Event(m) => SinkMsg::Event(m.clone()),
            SourceMsg::Gap {
                start_us,
                end_us,
                reason,
                lossless,
            } => SinkMsg::Gap {
                start_us: *start_us,
                end_us: *end_us,
                reason: reason.clone(),
                lossless: *lossless,
            },
            SourceMsg::State(_) => return,
        };
        // Disconnected: the journal thread ended (the window is closing).
        if let Err(TrySendError::Full(_)) = self.tx.try_send(m) {
            self.shared
                .dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// The journal thread of a recording window: owns the writer, says how it goes in the status.
pub struct JournalRecorder {
    sink: JournalSink,
    stop: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
    pub dir: PathBuf,
    /// Mission Control's model saved beside the journal every few minutes (the Mission view
    /// saves it at the start), so the next start reads only what came since.
    _saving: Option<crate::mission::KeepSaved>,
}

impl JournalRecorder {
    /// Opens the journal at `dir` for writing (another writer or a file in the way: the error in
    /// words) and starts its thread.
    pub fn start(dir: &Path, retention: Retention, status: SharedStatus) -> Result<Self, String> {
        let cfg = JournalConfig::retained(dir.to_owned(), retention);
        let writer = JournalWriter::open(cfg, crate::cli::journal::WINDOW_WRITER)
            .map_err(|e| e.to_string())?;
        let (tx, rx) = sync_channel(SINK_CAPACITY);
        let (stop_tx, stop_rx) = sync_channel(1);
        let shared = Arc::new(SinkShared {
            dropped: std::sync::atomic::AtomicU64::new(0),
            status,
        });
        let thread = {
            let shared = shared.clone();
            let dir = dir.to_owned();
            std::thread::Builder::new()
                .name("journal".into())
                .spawn(move || write_loop(writer, &rx, &stop_rx, &shared, &dir))
                .map_err(|e| format!("cannot start the journal thread: {e}"))?
        };
        Ok(Self {
            sink: JournalSink { tx, shared },
            stop: Some(stop_tx),
            thread: Some(thread),
            dir: dir.to_owned(),
            _saving: crate::mission::KeepSaved::start(
                dir.to_owned(),
                crate::mission::SAVE_EVERY,
                crate::mission::SAVE_EVERY,
            ),
        })
    }

    pub fn sink(&self) -> JournalSink {
        self.sink.clone()
    }

    /// Writes what is queued, syncs and closes the journal (the window is closing). Waits at most
    /// `grace`: a full disk does not hold the window open. Whether it finished in time.
    pub fn finish(&mut self, grace: Duration) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.try_send(());
        }
        let Some(thread) = self.thread.take() else {
            return true;
        };
        let end = Instant::now() + grace;
        while !thread.is_finished() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        if thread.is_finished() {
            let _ = thread.join();
            true
        } else {
            eprintln!(
                "candybar: the journal could not be finished within {grace:?}; the last events may not be in it"
            );
            false
        }
    }
}

impl Drop for JournalRecorder {
    fn drop(&mut self) {
        self.finish(Duration::from_secs(5));
    }
}

fn write_loop(
    mut writer: JournalWriter,
    rx: &Receiver<SinkMsg>,
    stop: &Receiver<()>,
    shared: &SinkShared,
    dir: &Path,
) {
    let mut last_status: Option<Instant> = None;
    let mut problem: Option<String> = None;
    for n in writer.take_notices() {
        tracing::warn!("journal: {n}");
    }
    loop {
        if stop.try_recv().is_ok() {
            // Everything already queued goes in before the journal is closed.
            while let Ok(m) = rx.try_recv() {
                write_one(&mut writer, m);
            }
            break;
        }
        if writer.backpressure() {
            // The writer holds all it may (the disk is full): the queue fills, then overflows.
            std::thread::sleep(Duration::from_millis(20));
        } else {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(m) => {
                    write_one(&mut writer, m);
                    for _ in 0..4096 {
                        match rx.try_recv() {
                            Ok(m) => write_one(&mut writer, m),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        writer.tick();
        for n in writer.take_notices() {
            match &n {
                Notice::Paused { reason } => problem = Some(reason.clone()),
                Notice::Resumed { .. } => problem = None,
                _ => {}
            }
            tracing::warn!("journal: {n}");
        }
        if last_status.is_none_or(|t| t.elapsed() >= Duration::from_millis(250)) {
            last_status = Some(Instant::now());
            *shared.status.lock() = recording_status(&writer, shared, problem.as_deref(), dir);
        }
    }
    if let Err(e) = writer.flush() {
        eprintln!("candybar: the journal's last events could not be written: {e}");
    }
    *shared.status.lock() = recording_status(&writer, shared, problem.as_deref(), dir);
}

fn write_one(writer: &mut JournalWriter, m: SinkMsg) {
    match m {
        SinkMsg::Event(m) => {
            writer.append(&m);
        }
        SinkMsg::Gap {
            start_us,
            end_us,
            reason,
            lossless,
        } => writer.append_gap(start_us, end_us, &reason, lossless),
    }
}

fn recording_status(
    writer: &JournalWriter,
    shared: &SinkShared,
    problem: Option<&str>,
    dir: &Path,
) -> JournalStatus {
    let stats = writer.stats();
    let dropped = shared.dropped.load(std::sync::atomic::Ordering::Relaxed);
    let warning = match (problem, dropped) {
        (Some(reason), _) => Some(format!(
            "recording paused: {reason}; nothing written is lost, retrying every second"
        )),
        (None, n) if n > 0 => Some(format!(
            "{n} events shown but not recorded: the disk did not keep up"
        )),
        _ => None,
    };
    JournalStatus {
        line: format!(
            "journal: recording ({} new)",
            candybar_ui::stream::format_count(stats.kept)
        ),
        hover: format!(
            "every event this window receives is kept in {} ({} MB on disk); `candybar query` \
             reads it back",
            dir.display(),
            writer.disk_bytes() >> 20
        ),
        warning,
    }
}

impl super::CandybarApp {
    /// A window reading `candybar record`'s journal records itself once the recorder stops (the
    /// recorder's last blocks were read first), from the broker it would have consumed.
    pub(super) fn poll_history(&mut self) {
        while let Ok(request) = self.journal_releases.1.try_recv() {
            self.release_journal(request);
        }
        let Some(h) = self.history.as_mut() else {
            return;
        };
        if !self.live.ended || h.takeover.is_none() {
            return;
        }
        let Some(t) = h.takeover.take() else { return };
        let Some(amqp) = t.amqp else {
            *h.status.lock() = JournalStatus {
                line: "journal: the recorder stopped".into(),
                hover: format!(
                    "candybar record stopped writing {}; no broker is configured for this window \
                     to record from",
                    t.dir.display()
                ),
                warning: None,
            };
            return;
        };
        match JournalRecorder::start(&t.dir, t.retention, h.status.clone()) {
            Ok(recorder) => {
                eprintln!(
                    "candybar: candybar record stopped; this window records into the journal at {} now",
                    t.dir.display()
                );
                let handle = recorded(
                    candybar_bus::amqp::spawn(amqp.clone()),
                    recorder.sink(),
                    None,
                );
                h.recorder = Some(recorder);
                h.own = Some(Takeover {
                    amqp: Some(amqp),
                    ..t
                });
                self.switch_source(
                    handle,
                    "candybar record stopped: this window records into the journal now",
                );
            }
            Err(e) => {
                *h.status.lock() = JournalStatus {
                    line: "journal: off".into(),
                    hover: e.clone(),
                    warning: Some(format!("not recording: {e}")),
                };
            }
        }
    }

    /// `candybar record` wants the journal this window writes: the window stops consuming, writes
    /// its last block, lets go, and reads what the recorder writes (taking over again when the
    /// recorder stops). The answer goes back to the recorder.
    fn release_journal(&mut self, request: ReleaseRequest) {
        let answer = |words: String| {
            let _ = request.reply.try_send(words);
        };
        let Some(h) = self.history.as_mut() else {
            answer("error: this window keeps no journal".into());
            return;
        };
        if !same_dir(&h.dir, &request.dir) {
            answer(format!(
                "error: this window's journal is {}, not {}",
                h.dir.display(),
                request.dir.display()
            ));
            return;
        }
        let Some(recorder) = h.recorder.take() else {
            answer(format!(
                "error: this window does not write {}",
                h.dir.display()
            ));
            return;
        };
        eprintln!(
            "candybar: candybar record asked for the journal at {}; this window reads it live from now on",
            h.dir.display()
        );
        h.takeover = h.own.take();
        let handle = released(recorder, request.reply, h.status.clone());
        self.switch_source(
            handle,
            "candybar record writes the journal now: this window reads what it records",
        );
    }

    /// The window reads `handle` from now on (the journal changed hands); the toast says why.
    fn switch_source(&mut self, handle: SourceHandle, why: &str) {
        self.live.connect(handle, None);
        let waker = self.ctx.clone();
        self.live.set_waker(move || waker.request_repaint());
        self.viewer
            .toast(&self.ctx, candybar_ui::ToastLevel::Info, why);
    }

    /// The Connection dialog chose `handle`: a broker is recorded when the window records; a
    /// window that was reading a recorder's journal stops waiting to take over.
    pub(super) fn journaled(&mut self, handle: SourceHandle, is_broker: bool) -> SourceHandle {
        let Some(h) = self.history.as_mut() else {
            return handle;
        };
        h.takeover = None;
        match (&h.recorder, is_broker) {
            (Some(recorder), true) => recorded(handle, recorder.sink(), None),
            _ => handle,
        }
    }
}
