//! What the views and the command line know about a source of events, without its machinery.

use std::time::Duration;

/// The durable queue's name when `--durable-queue` is given without one.
pub const DEFAULT_DURABLE_QUEUE: &str = "candybar_visualization_queue";

/// The reason of the gap a journal writer marks between the journal's newest entry and the
/// moment it opens it again.
pub const NOT_RECORDING: &str = "nothing was recording";

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
