//! Sending the queued lifecycle events to the broker, with confirms. What the broker does not
//! confirm stays queued and is tried again later (by the next `session` command, `session
//! serve` or the window): a broker that is down loses nothing.

use std::time::Duration;

use candybar_bus::publish::Publisher;
use candybar_core::event::RawMessage;
use candybar_core::time::{Micros, now_us};

use crate::store::{Outgoing, SqliteStore, StoreError};

/// How long one delivery may wait for the broker's confirm.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a delivery round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    pub sent: usize,
    /// Still queued after the round.
    pub pending: usize,
    /// Why the last attempt failed, when one did.
    pub error: Option<String>,
}

/// A one-shot command's way: keeps `events` in the outbox at `path` and, given a broker
/// (`url`, `exchange`), sends everything waiting there, these events last. `Ok(None)`: kept, no
/// broker to send to. An error means the events were not kept.
pub async fn keep_and_send(
    path: &std::path::Path,
    events: &[Outgoing],
    broker: Option<(&str, &str)>,
) -> Result<Option<Delivered>, StoreError> {
    let mut store = SqliteStore::open(path)?;
    store.queue(events)?;
    let Some((url, exchange)) = broker else {
        return Ok(None);
    };
    let mut publisher = Publisher::new(url, exchange);
    match deliver(&store, &mut publisher, Micros::MAX).await {
        Ok(d) => Ok(Some(d)),
        // Kept: the next command or the window sends them.
        Err(e) => Ok(Some(Delivered {
            sent: 0,
            pending: events.len(),
            error: Some(format!("the outbox could not be read: {e}")),
        })),
    }
}

/// Sends what is due by `due_by_us` (a long-running deliverer: now, keeping the backoff; a
/// one-shot command: [`Micros::MAX`], everything), oldest first, stopping at the first failure
/// (the broker is down: the rest would fail too, and order is kept).
pub async fn deliver(
    store: &SqliteStore,
    publisher: &mut Publisher,
    due_by_us: Micros,
) -> Result<Delivered, StoreError> {
    let mut report = Delivered::default();
    loop {
        let due = store.outbox_due(due_by_us, 100)?;
        if due.is_empty() {
            break;
        }
        let mut failed = false;
        for item in due {
            let msg = RawMessage {
                received_us: now_us(),
                routing_key: item.event.routing_key.clone(),
                props: None,
                body: item.event.body.clone(),
                precut: None,
            };
            let result = match tokio::time::timeout(
                ATTEMPT_TIMEOUT,
                publisher.publish_window(std::slice::from_ref(&msg)),
            )
            .await
            {
                Err(_) => Err("no confirm from the broker in time".to_owned()),
                Ok(Err(e)) => Err(e.to_string()),
                Ok(Ok(0)) => Ok(()),
                Ok(Ok(_)) => Err("the broker refused the event (nack)".to_owned()),
            };
            match result {
                Ok(()) => {
                    store.outbox_sent(item.id)?;
                    report.sent += 1;
                }
                Err(e) => {
                    store.outbox_failed(&item, &e, now_us())?;
                    report.error = Some(e);
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            break;
        }
    }
    report.pending = store.outbox_pending()?.0;
    Ok(report)
}
