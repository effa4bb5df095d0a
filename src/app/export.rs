//! Exporting events to a file without freezing the window: the UI thread encodes a slice of events
//! per frame (the store lives there) and hands the bytes to a writer thread through a small
//! bounded channel. The writer creates, writes, syncs (and on cancel removes) the file, so a slow
//! or full disk never blocks a frame and its error reaches the user.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use candybar_core::export::{ExportEncoder, ExportFormat};
use candybar_core::store::EventStore;

/// Bytes encoded before a chunk is handed to the writer.
const CHUNK_BYTES: usize = 1 << 20;

pub enum ExportStatus {
    Running,
    Done {
        path: PathBuf,
        written: u64,
        /// Events evicted from memory before they could be written.
        skipped: u64,
        bytes: u64,
    },
    Failed {
        path: PathBuf,
        error: String,
    },
}

pub struct ExportJob {
    pub path: PathBuf,
    pub format: ExportFormat,
    seqs: Vec<u64>,
    next: usize,
    written: u64,
    skipped: u64,
    encoder: ExportEncoder,
    pending: Option<Vec<u8>>,
    chunks: Option<SyncSender<Vec<u8>>>,
    result: Receiver<Result<u64, String>>,
    finished_encoding: bool,
    /// Tells the writer to remove the partial file instead of finishing it.
    cancelled: Arc<AtomicBool>,
}

impl ExportJob {
    /// Starts writing `seqs` (in order) to `path`. The file is created by the writer thread; a
    /// path that cannot be written comes back as [`ExportStatus::Failed`] from [`Self::step`].
    pub fn start(path: &Path, format: ExportFormat, seqs: Vec<u64>) -> Result<Self, String> {
        let (chunk_tx, chunk_rx) = sync_channel::<Vec<u8>>(4);
        let (result_tx, result_rx) = sync_channel(1);
        let cancelled = Arc::new(AtomicBool::new(false));
        let shown = path.to_owned();
        let cancel = cancelled.clone();
        std::thread::Builder::new()
            .name("export-writer".into())
            .spawn(move || {
                let result = write_chunks(&shown, &chunk_rx, &cancel)
                    .map_err(|e: std::io::Error| describe_io_error(&shown, &e));
                let _ = result_tx.send(result);
            })
            .map_err(|e| format!("cannot start the export: {e}"))?;
        let mut encoder = ExportEncoder::new(format);
        let mut first = Vec::with_capacity(CHUNK_BYTES);
        encoder.begin(&mut first);
        Ok(Self {
            path: path.to_owned(),
            format,
            seqs,
            next: 0,
            written: 0,
            skipped: 0,
            encoder,
            pending: Some(first),
            chunks: Some(chunk_tx),
            result: result_rx,
            finished_encoding: false,
            cancelled,
        })
    }

    /// Stops the export; the writer removes what it wrote.
    pub fn cancel(self) {
        self.cancelled.store(true, Ordering::Release);
        // Dropping the job closes the channel, which ends the writer.
    }

    /// Fraction done, 0..=1.
    #[must_use]
    pub fn progress(&self) -> f32 {
        if self.seqs.is_empty() {
            1.0
        } else {
            self.next as f32 / self.seqs.len() as f32
        }
    }

    /// What the status bar shows.
    #[must_use]
    pub fn progress_info(&self) -> candybar_ui::ExportProgress {
        candybar_ui::ExportProgress {
            done: self.next,
            total: self.seqs.len(),
        }
    }

    #[must_use]
    pub fn total(&self) -> usize {
        self.seqs.len()
    }

    #[must_use]
    pub fn done_count(&self) -> usize {
        self.next
    }

    /// Encodes and hands over events for at most `budget`.
    pub fn step(&mut self, store: &EventStore, budget: Duration) -> ExportStatus {
        let start = Instant::now();
        loop {
            // Hand over the pending chunk first; a full channel means the disk is behind.
            if let Some(chunk) = self.pending.take().filter(|c| !c.is_empty()) {
                let Some(tx) = &self.chunks else { break };
                match tx.try_send(chunk) {
                    Ok(()) => {}
                    Err(TrySendError::Full(chunk)) => {
                        self.pending = Some(chunk);
                        break;
                    }
                    Err(TrySendError::Disconnected(_)) => {
                        self.chunks = None; // the writer failed; its result says why
                        break;
                    }
                }
            }
            if self.finished_encoding {
                self.chunks = None; // closing the channel lets the writer finish
                break;
            }
            if start.elapsed() >= budget {
                break;
            }
            let mut buf = Vec::with_capacity(CHUNK_BYTES + 4096);
            while buf.len() < CHUNK_BYTES && self.next < self.seqs.len() {
                let seq = self.seqs[self.next];
                self.next += 1;
                match store.get(seq) {
                    Some(event) => {
                        self.encoder.event(&event, &mut buf);
                        self.written += 1;
                    }
                    None => self.skipped += 1,
                }
                if self.next.is_multiple_of(512) && start.elapsed() >= budget {
                    break;
                }
            }
            if self.next >= self.seqs.len() {
                self.encoder.end(&mut buf);
                self.finished_encoding = true;
            }
            self.pending = Some(buf);
        }
        match self.result.try_recv() {
            Ok(Ok(bytes)) => ExportStatus::Done {
                path: self.path.clone(),
                written: self.written,
                skipped: self.skipped,
                bytes,
            },
            Ok(Err(error)) => ExportStatus::Failed {
                path: self.path.clone(),
                error,
            },
            Err(TryRecvError::Empty) => ExportStatus::Running,
            Err(TryRecvError::Disconnected) => ExportStatus::Failed {
                path: self.path.clone(),
                error: "the export stopped unexpectedly".into(),
            },
        }
    }
}

/// The writer thread: creates the file, writes every chunk, syncs. A cancelled export's file is
/// removed.
fn write_chunks(
    path: &Path,
    chunks: &Receiver<Vec<u8>>,
    cancelled: &AtomicBool,
) -> std::io::Result<u64> {
    let file = File::create(path)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut bytes = 0u64;
    for chunk in chunks {
        out.write_all(&chunk)?;
        bytes += chunk.len() as u64;
    }
    if cancelled.load(Ordering::Acquire) {
        drop(out);
        let _ = std::fs::remove_file(path);
        return Ok(bytes);
    }
    out.flush()?;
    out.get_ref().sync_all()?;
    Ok(bytes)
}

/// An I/O error in words, with what to do about it.
pub(super) fn describe_io_error(path: &Path, e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    let hint = match e.kind() {
        ErrorKind::PermissionDenied => " — choose a folder you can write to",
        ErrorKind::NotFound => " — the folder does not exist",
        ErrorKind::StorageFull => " — the disk is full; free some space or choose another disk",
        ErrorKind::ReadOnlyFilesystem => " — the disk is read-only; choose another folder",
        _ => "",
    };
    format!("cannot write {}: {e}{hint}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candybar_core::event::RawMessage;

    fn store(n: u64) -> EventStore {
        let mut s = EventStore::default();
        for i in 0..n {
            s.insert(&RawMessage {
                received_us: 1_767_225_600_000_000 + i as i64,
                routing_key: "agent.thread.prompt".into(),
                body: format!(r#"{{"event_type":"agent.thread.prompt","payload":{{"i":{i}}}}}"#)
                    .into_bytes(),
                ..RawMessage::default()
            });
        }
        s
    }

    fn run(job: &mut ExportJob, store: &EventStore) -> ExportStatus {
        for _ in 0..10_000 {
            match job.step(store, Duration::from_millis(2)) {
                ExportStatus::Running => std::thread::sleep(Duration::from_millis(1)),
                done => return done,
            }
        }
        panic!("export did not finish");
    }

    #[test]
    fn writes_every_event_in_chunks() {
        let store = store(20_000);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let mut job = ExportJob::start(&path, ExportFormat::Ndjson, (0..20_000).collect()).unwrap();
        let ExportStatus::Done {
            written,
            skipped,
            bytes,
            ..
        } = run(&mut job, &store)
        else {
            panic!("failed");
        };
        assert_eq!((written, skipped), (20_000, 0));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len() as u64, bytes);
        assert_eq!(text.lines().count(), 20_000);
        assert!(text.lines().last().unwrap().contains(r#""i":19999"#));
    }

    #[test]
    fn an_unwritable_path_is_refused_in_words() {
        let store = store(10);
        let mut job = ExportJob::start(
            Path::new("/nonexistent-dir/x.csv"),
            ExportFormat::Csv,
            (0..10).collect(),
        )
        .unwrap();
        let ExportStatus::Failed { error, .. } = run(&mut job, &store) else {
            panic!("created a file in a missing folder");
        };
        assert!(
            error.contains("/nonexistent-dir/x.csv") && error.contains("does not exist"),
            "{error}"
        );
    }

    #[test]
    fn a_cancelled_export_leaves_no_file() {
        let store = store(20_000);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let mut job = ExportJob::start(&path, ExportFormat::Ndjson, (0..20_000).collect()).unwrap();
        let end = std::time::Instant::now() + Duration::from_secs(5);
        while !path.exists() && std::time::Instant::now() < end {
            let _ = job.step(&store, Duration::from_millis(1));
        }
        assert!(path.exists(), "the writer never created the file");
        job.cancel();
        while path.exists() && std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!path.exists(), "the partial file stays after cancel");
    }

    #[test]
    fn a_full_disk_is_reported() {
        // /dev/full accepts the open and fails every write with ENOSPC.
        let store = store(5_000);
        let mut job = ExportJob::start(
            Path::new("/dev/full"),
            ExportFormat::Json,
            (0..5_000).collect(),
        )
        .unwrap();
        let ExportStatus::Failed { error, .. } = run(&mut job, &store) else {
            panic!("writing to /dev/full succeeded");
        };
        assert!(error.contains("disk is full"), "{error}");
    }
}
