//! candybar's bus: where events come from and where they are published.
//!
//! Every source runs as a tokio task and hands [`SourceMsg`]s to a bounded channel: when the
//! consumer falls behind, the source waits (for AMQP, the broker's prefetch window then holds the
//! rest), so memory between a fast producer and the UI is bounded.
//!
//! # Layout
//! - [`amqp`]: the `RabbitMQ` consumer (private or durable queue, reconnects, gaps).
//! - [`publish`]: publishing with confirms.
//! - [`demo`], [`replay`]: the built-in simulator and NDJSON files as sources.
//! - [`live`]: one source feeding one store — the model the window reads.
//! - [`registry_watch`]: `registry.yaml` reloaded when it changes.
//! - [`health_poll`]: the services' health endpoints, polled.

pub mod amqp;
pub mod demo;
pub mod health_poll;
pub mod live;
pub mod publish;
pub mod registry_watch;
pub mod replay;
pub mod ws;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use candybar_core::event::RawMessage;
pub use candybar_core::source::SourceState;
use candybar_core::time::Micros;

/// Messages per source channel.
pub const CHANNEL_CAPACITY: usize = 8192;

/// What a source reports.
#[derive(Debug)]
pub enum SourceMsg {
    Event(RawMessage),
    /// No events could be received between `start_us` and `end_us` (the source was
    /// disconnected); sent when the source is back.
    Gap {
        start_us: Micros,
        end_us: Micros,
        reason: String,
        /// The broker kept what was published meanwhile (a durable queue): nothing is missing.
        lossless: bool,
    },
    State(SourceState),
}

/// Acknowledgements a source holds back until its consumer has the events safe (the recorder's
/// journal, synced to disk): the broker keeps each delivery until then, so a crash of the
/// consumer loses nothing the broker had. The consumer counts the events it got, in order, and
/// releases them by count.
#[derive(Clone)]
pub struct AckGate {
    tx: Arc<tokio::sync::watch::Sender<u64>>,
}

impl AckGate {
    #[must_use]
    pub fn new() -> Self {
        Self {
            tx: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    /// The first `n` events the source sent are safe: their deliveries may be acknowledged.
    pub fn release(&self, n: u64) {
        self.tx.send_if_modified(|v| {
            let more = n > *v;
            if more {
                *v = n;
            }
            more
        });
    }

    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.tx.subscribe()
    }
}

impl Default for AckGate {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for AckGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AckGate(released {})", *self.tx.borrow())
    }
}

/// This machine's name (for queue names and event sources).
#[must_use]
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into())
}

/// Wakes whoever drains the channel (the window asks for a frame) when a message arrives while
/// it is idle. At most one wake is outstanding: the consumer re-arms it each time it drains, so a
/// flood of events costs one wake per frame, not one per event.
#[derive(Default)]
struct WakeSlot {
    armed: AtomicBool,
    wake: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
}

impl WakeSlot {
    fn wake(&self) {
        if self.armed.swap(false, Ordering::AcqRel)
            && let Some(wake) = &*self.wake.lock()
        {
            wake();
        }
    }
}

/// The sending half a source task gets: a bounded channel that also wakes the consumer.
#[derive(Clone)]
pub struct SourceTx {
    tx: mpsc::Sender<SourceMsg>,
    wake: Arc<WakeSlot>,
}

impl SourceTx {
    /// Resolves when the consumer is gone (the source should stop).
    pub async fn closed(&self) {
        self.tx.closed().await;
    }

    /// Waits for room, sends, and wakes the consumer. Fails when the consumer is gone.
    pub async fn send(&self, msg: SourceMsg) -> Result<(), mpsc::error::SendError<SourceMsg>> {
        self.tx.send(msg).await?;
        self.wake.wake();
        Ok(())
    }
}

/// A running source: its channel and its task (aborted on drop).
pub struct SourceHandle {
    pub rx: mpsc::Receiver<SourceMsg>,
    /// Human-readable description (secrets masked).
    pub describe: String,
    wake: Arc<WakeSlot>,
    task: JoinHandle<()>,
}

impl SourceHandle {
    /// Starts `run` on the current tokio runtime.
    pub fn spawn<F>(describe: String, run: impl FnOnce(SourceTx) -> F) -> Self
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let wake = Arc::new(WakeSlot::default());
        let task = tokio::spawn(run(SourceTx {
            tx,
            wake: wake.clone(),
        }));
        Self {
            rx,
            describe,
            wake,
            task,
        }
    }

    /// Calls `wake` (from a runtime thread) when a message arrives after [`Self::rearm`].
    pub fn set_waker(&self, wake: impl Fn() + Send + Sync + 'static) {
        *self.wake.wake.lock() = Some(Box::new(wake));
        self.rearm();
    }

    /// The consumer is about to go idle: wake it on the next message.
    pub fn rearm(&self) {
        self.wake.armed.store(true, Ordering::Release);
    }
}

impl Drop for SourceHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
