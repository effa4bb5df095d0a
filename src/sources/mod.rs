//! Where events come from. Every source runs as a tokio task and hands [`SourceMsg`]s to a
//! bounded channel: when the consumer falls behind, the source waits (for AMQP, the broker's
//! prefetch window then holds the rest), so memory between a fast producer and the UI is bounded.

pub mod amqp;
pub mod demo;
pub mod replay;

use std::time::Duration;

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

/// A running source: its channel and its task (aborted on drop).
pub struct SourceHandle {
    pub rx: mpsc::Receiver<SourceMsg>,
    /// Human-readable description (secrets masked).
    pub describe: String,
    task: JoinHandle<()>,
}

impl SourceHandle {
    pub fn spawn<F>(describe: String, run: impl FnOnce(mpsc::Sender<SourceMsg>) -> F) -> Self
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let task = tokio::spawn(run(tx));
        Self { rx, describe, task }
    }
}

impl Drop for SourceHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
