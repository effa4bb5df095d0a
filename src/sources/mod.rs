//! Where events come from. Every source runs as a tokio task and hands [`SourceMsg`]s to a
//! bounded channel: when the consumer falls behind, the source waits (for AMQP, the broker's
//! prefetch window then holds the rest), so memory between a fast producer and the UI is bounded.

pub mod amqp;
pub mod demo;
pub mod health_poll;
pub mod registry_watch;
pub mod replay;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::core::event::RawMessage;
use crate::core::time::Micros;

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
    },
    State(SourceState),
}

/// Connection state, for the status bar and `tail`'s messages.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceState {
    Connecting {
        attempt: u32,
    },
    /// `detail` says what is being consumed (URL with the password masked, exchange, queue).
    Connected {
        detail: String,
    },
    /// Lost or refused; the source tries again after `retry_in`. `permanent` means retrying is
    /// unlikely to help until something is changed (credentials, exchange name, URL).
    Retrying {
        reason: String,
        retry_in: Duration,
        permanent: bool,
    },
    /// The source has nothing more to send (a replay reached its end, a count was reached).
    Finished,
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
