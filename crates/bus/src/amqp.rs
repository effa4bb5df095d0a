//! `RabbitMQ`: consume a topic exchange through a private queue (exclusive, auto-delete, named by
//! candybar) or a named durable queue with batched acks, reconnecting by itself. Each
//! disconnection becomes a [`SourceMsg::Gap`].

use std::collections::VecDeque;
use std::time::Duration;

use candybar_core::event::{AmqpProps, RawMessage};
use candybar_core::redact::{SecretUrl, mask_url};
use candybar_core::time::now_us;
use futures_util::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ErrorKind, ExchangeKind};

use crate::{AckGate, SourceHandle, SourceMsg, SourceState, SourceTx, host_name};

pub use candybar_core::source::DEFAULT_DURABLE_QUEUE;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueMode {
    /// Exclusive, auto-delete, named by candybar: two viewers never take each other's messages;
    /// what is published while disconnected is not seen (and recorded as a gap).
    Private,
    /// A durable queue with manual acks: nothing is lost across reconnects and broker restarts
    /// (persistent messages); several viewers on one name share the messages.
    Durable(String),
    /// A `RabbitMQ` stream queue (`x-queue-type: stream`), read from `from` on: the broker keeps
    /// days of events for every reader; a reconnect resumes at the next offset, losing nothing.
    /// The stream and its binding are the broker's set-up (see the README); candybar only reads.
    Stream { name: String, from: StreamStart },
}

/// Where reading a stream begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamStart {
    /// Everything the stream still holds.
    First,
    /// The last chunk the stream wrote, then what comes.
    Last,
    /// Only what is published from now on.
    Next,
    /// This offset on.
    Offset(u64),
    /// What was written at this time (seconds since the epoch) on.
    Timestamp(u64),
}

impl StreamStart {
    /// `first`, `last`, `next`, an offset number, a duration ago (`24h`), or an RFC 3339 moment.
    pub fn parse(s: &str, now: candybar_core::time::Micros) -> Result<Self, String> {
        match s {
            "first" => return Ok(Self::First),
            "last" => return Ok(Self::Last),
            "next" => return Ok(Self::Next),
            _ => {}
        }
        if let Ok(n) = s.parse::<u64>() {
            return Ok(Self::Offset(n));
        }
        let at = candybar_core::filter::parse_duration(s)
            .map(|d| now - d)
            .or_else(|| candybar_core::time::parse_rfc3339_us(s))
            .ok_or_else(|| {
                format!(
                    "--from {s:?}: give first, last, next, an offset, a duration ago (24h) or a moment (2026-12-06T10:00:00Z)"
                )
            })?;
        Ok(Self::Timestamp((at.max(0) / 1_000_000) as u64))
    }

    fn argument(self) -> AMQPValue {
        match self {
            Self::First => AMQPValue::LongString("first".into()),
            Self::Last => AMQPValue::LongString("last".into()),
            Self::Next => AMQPValue::LongString("next".into()),
            Self::Offset(n) => AMQPValue::LongLongInt(n.min(i64::MAX as u64) as i64),
            Self::Timestamp(secs) => AMQPValue::Timestamp(secs),
        }
    }
}

impl std::fmt::Display for StreamStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::First => f.write_str("first"),
            Self::Last => f.write_str("last"),
            Self::Next => f.write_str("next"),
            Self::Offset(n) => write!(f, "offset {n}"),
            Self::Timestamp(secs) => write!(
                f,
                "{}",
                candybar_core::time::format_rfc3339(*secs as i64 * 1_000_000)
            ),
        }
    }
}

/// The header in which `RabbitMQ` gives each stream message's offset.
const STREAM_OFFSET_HEADER: &str = "x-stream-offset";

#[derive(Clone, Debug)]
pub struct AmqpConfig {
    /// The broker, with its password (`Debug` shows it masked).
    pub url: SecretUrl,
    pub exchange: String,
    pub binding_keys: Vec<String>,
    pub queue: QueueMode,
    /// Unacknowledged deliveries the broker may send ahead.
    pub prefetch: u16,
    pub body_cap_bytes: usize,
    /// Acknowledge a delivery only once the consumer released it (the recorder, after its
    /// journal is synced); without a gate, deliveries are acknowledged as they are handed over.
    pub ack_gate: Option<AckGate>,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self {
            url: SecretUrl::new("amqp://guest:guest@127.0.0.1:5672/%2f"),
            exchange: "events".into(),
            binding_keys: vec!["#".into()],
            queue: QueueMode::Private,
            prefetch: 1000,
            body_cap_bytes: 1 << 20,
            ack_gate: None,
        }
    }
}

/// Why talking to the broker failed, in words a user can act on. Never contains a password.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum AmqpError {
    #[error("invalid broker URL {url}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error(
        "cannot reach the broker at {url}: {reason} (is RabbitMQ running and listening there?)"
    )]
    Unreachable { url: String, reason: String },
    #[error("the broker refused the login for {url}: check the user name and password ({reason})")]
    LoginRefused { url: String, reason: String },
    #[error("the broker refused: {reason}")]
    AccessRefused { reason: String },
    #[error(
        "no answer from the broker at {url} within {secs} s (is it RabbitMQ's AMQP port? is the broker frozen?)"
    )]
    NoAnswer { url: String, secs: u64 },
    #[error("{what} is longer than the 255 bytes AMQP allows: {shown}…")]
    NameTooLong { what: &'static str, shown: String },
    #[error(
        "queue '{queue}' exists with other settings ({reason}); delete it or choose another name"
    )]
    QueueMismatch { queue: String, reason: String },
    #[error(
        "{url} does not speak TLS ({reason}): use amqp:// for this port, or the broker's TLS port (5671)"
    )]
    NotTls { url: String, reason: String },
    #[error("the broker does not allow virtual host of {url}: {reason}")]
    Vhost { url: String, reason: String },
    #[error(
        "exchange '{exchange}' does not exist on the broker (check --exchange or the registry's exchange.name)"
    )]
    ExchangeMissing { exchange: String },
    #[error("exchange '{exchange}' exists with other settings: {reason}")]
    ExchangeMismatch { exchange: String, reason: String },
    #[error(
        "there is no queue '{stream}' on the broker: declare the stream (x-queue-type: stream) and bind it to the exchange, as the README shows"
    )]
    StreamMissing { stream: String },
    #[error("connection lost: {reason}")]
    Lost { reason: String },
    #[error("{reason}")]
    Other { reason: String },
}

impl AmqpError {
    /// Errors that retrying will not fix until someone changes something (here or on the
    /// broker): retried slowly.
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        self.is_fatal()
            || matches!(
                self,
                Self::LoginRefused { .. }
                    | Self::AccessRefused { .. }
                    | Self::Vhost { .. }
                    | Self::ExchangeMissing { .. }
                    | Self::ExchangeMismatch { .. }
                    | Self::StreamMissing { .. }
            )
    }

    /// Errors only a new setting in candybar can fix (a URL, a name): the source says so and
    /// stops instead of retrying forever.
    #[must_use]
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::BadUrl { .. }
                | Self::NameTooLong { .. }
                | Self::QueueMismatch { .. }
                | Self::NotTls { .. }
        )
    }

    pub(crate) fn from_lapin(err: &lapin::Error, url: &str, exchange: &str) -> Self {
        let url = mask_url(url);
        match err.kind() {
            ErrorKind::ProtocolError(e) => {
                let reason = e.get_message().to_string();
                match e.kind() {
                    // A refused login, or a permission the user lacks (a reserved queue name,
                    // a vhost or resource it may not use): the broker's own words say which.
                    AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)
                        if reason.to_ascii_lowercase().contains("login") =>
                    {
                        Self::LoginRefused { url, reason }
                    }
                    AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) => {
                        Self::AccessRefused { reason }
                    }
                    AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) if reason.contains("exchange") => {
                        Self::ExchangeMissing {
                            exchange: exchange.to_owned(),
                        }
                    }
                    AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)
                        if reason.contains("exchange") =>
                    {
                        Self::ExchangeMismatch {
                            exchange: exchange.to_owned(),
                            reason,
                        }
                    }
                    // A restarted broker still bringing a stream back: it comes by itself.
                    AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)
                        if reason.contains("does not have a replica") =>
                    {
                        Self::Lost {
                            reason: format!(
                                "the broker is not done recovering the stream: {reason}"
                            ),
                        }
                    }
                    AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)
                        if reason.contains("queue") =>
                    {
                        Self::QueueMismatch {
                            queue: reason.split('\'').nth(1).unwrap_or("?").to_owned(),
                            reason,
                        }
                    }
                    AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED) => Self::Vhost { url, reason },
                    AMQPErrorKind::Hard(AMQPHardError::CONNECTIONFORCED) => Self::Lost { reason },
                    _ => Self::Other { reason },
                }
            }
            ErrorKind::IOError(io) => {
                let reason = io.to_string();
                let tls = url.starts_with("amqps:");
                if tls
                    && (reason.to_ascii_lowercase().contains("tls")
                        || reason.to_ascii_lowercase().contains("handshake")
                        || reason.contains("InvalidContentType")
                        || reason.contains("corrupt message"))
                {
                    Self::NotTls { url, reason }
                } else if reason.contains("Invalid AMQP")
                    || reason.contains("invalid") && reason.contains("uri")
                {
                    Self::BadUrl { url, reason }
                } else if matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::BrokenPipe
                ) {
                    Self::Lost { reason }
                } else {
                    Self::Unreachable { url, reason }
                }
            }
            ErrorKind::InvalidChannelState(..)
            | ErrorKind::InvalidConnectionState(..)
            | ErrorKind::MissingHeartbeatError => Self::Lost {
                reason: err.to_string(),
            },
            _ => Self::Other {
                reason: err.to_string(),
            },
        }
    }
}

/// Checks a broker URL before connecting, and normalizes `amqp://host/` (which would mean the
/// empty virtual host) to the default `/`.
pub fn normalize_url(url: &str) -> Result<String, AmqpError> {
    let parsed = url::Url::parse(url).map_err(|e| AmqpError::BadUrl {
        url: mask_url(url),
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "amqp" | "amqps") {
        return Err(AmqpError::BadUrl {
            url: mask_url(url),
            reason: format!("scheme must be amqp or amqps, not '{}'", parsed.scheme()),
        });
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(AmqpError::BadUrl {
            url: mask_url(url),
            reason: "no host".into(),
        });
    }
    if parsed.path() == "/" {
        let mut fixed = parsed.clone();
        fixed.set_path("/%2f");
        return Ok(fixed.to_string());
    }
    Ok(url.to_owned())
}

/// `s` as an AMQP short string (exchange, queue, routing and binding keys); `what` names it in
/// the error.
pub(crate) fn short_named(s: &str, what: &'static str) -> Result<ShortString, AmqpError> {
    ShortString::try_new(s).map_err(|_| AmqpError::NameTooLong {
        what,
        shown: s[..s.floor_char_boundary(40)].to_owned(),
    })
}

pub(crate) fn short(s: &str) -> Result<ShortString, AmqpError> {
    short_named(s, "a name")
}

/// How long connecting and the AMQP handshake may take before the broker counts as not
/// answering (a port that accepts TCP but never speaks AMQP, a frozen broker).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Heartbeat asked of the broker, in seconds, unless the URL sets one: a broker that stops
/// answering (frozen, a dead network path) is noticed within about two of them.
pub const HEARTBEAT_SECS: u16 = 5;

pub(crate) async fn connect(
    url: &str,
    exchange: &str,
    name: &str,
) -> Result<Connection, AmqpError> {
    let url = with_heartbeat(&normalize_url(url)?);
    let props = ConnectionProperties::default().with_connection_name(name.into());
    match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(&url, props)).await {
        Ok(result) => result.map_err(|e| AmqpError::from_lapin(&e, &url, exchange)),
        Err(_) => Err(AmqpError::NoAnswer {
            url: mask_url(&url),
            secs: CONNECT_TIMEOUT.as_secs(),
        }),
    }
}

/// `url` with `heartbeat=HEARTBEAT_SECS` in its query, unless it asks for a heartbeat itself.
fn with_heartbeat(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return url.to_owned();
    };
    if u.query_pairs().any(|(k, _)| k == "heartbeat") {
        return url.to_owned();
    }
    u.query_pairs_mut()
        .append_pair("heartbeat", &HEARTBEAT_SECS.to_string());
    u.to_string()
}

/// Backoff between reconnects: 100 ms doubling to 500 ms (`RabbitMQ` is usually back within a
/// second); 5 s when the error needs the user to change something.
fn backoff(attempt: u32, permanent: bool) -> Duration {
    if permanent {
        return Duration::from_secs(5);
    }
    Duration::from_millis((100u64 << attempt.min(3)).min(500))
}

#[must_use]
pub fn spawn(cfg: AmqpConfig) -> SourceHandle {
    let describe = describe(&cfg);
    SourceHandle::spawn(describe, move |tx| run(cfg, tx))
}

fn describe(cfg: &AmqpConfig) -> String {
    let queue = match &cfg.queue {
        QueueMode::Private => "private queue".to_owned(),
        QueueMode::Durable(name) => format!("durable queue {name}"),
        QueueMode::Stream { name, from } => format!("stream {name} from {from}"),
    };
    format!(
        "{} exchange {} keys {} ({queue})",
        cfg.url.masked(),
        cfg.exchange,
        cfg.binding_keys.join(",")
    )
}

enum Ended {
    ReceiverGone,
}

async fn run(cfg: AmqpConfig, tx: SourceTx) {
    let queue_name = match &cfg.queue {
        QueueMode::Private => format!(
            "candybar.{}.{}.{:08x}",
            host_name(),
            std::process::id(),
            (now_us() as u32) ^ 0x9e37_79b9
        ),
        QueueMode::Durable(name) | QueueMode::Stream { name, .. } => name.clone(),
    };
    let mut attempt = 0u32;
    // Set from the first failure after having been connected until consuming resumes.
    let mut gap: Option<(i64, String)> = None;
    // Events handed to the consumer so far, across connections (what an ack gate counts).
    let mut sent = 0u64;
    // A stream's next offset to read, once something was read: where a reconnect resumes.
    let mut resume: Option<u64> = None;
    loop {
        if tx
            .send(SourceMsg::State(SourceState::Connecting { attempt }))
            .await
            .is_err()
        {
            return;
        }
        let mut at = Position {
            sent: &mut sent,
            resume: &mut resume,
        };
        match consume(&cfg, &queue_name, &tx, &mut gap, &mut attempt, &mut at).await {
            Ok(Ended::ReceiverGone) => return,
            Err((err, was_connected)) => {
                if was_connected && gap.is_none() {
                    gap = Some((now_us(), err.to_string()));
                }
                // A stream read before and missing now is coming back with a restarted broker
                // (it answers before its streams are recovered): retried like a lost connection.
                let recovering = matches!(err, AmqpError::StreamMissing { .. }) && gap.is_some();
                let permanent = err.is_permanent() && !recovering;
                if err.is_fatal() {
                    // Only a new setting fixes it: say so and stop.
                    tracing::debug!("amqp: {err}; not retrying");
                    let _ = tx
                        .send(SourceMsg::State(SourceState::Retrying {
                            reason: err.to_string(),
                            retry_in: Duration::MAX,
                            permanent: true,
                        }))
                        .await;
                    return;
                }
                let retry_in = backoff(attempt, permanent);
                tracing::debug!("amqp: {err}; retrying in {} ms", retry_in.as_millis());
                let state = SourceState::Retrying {
                    reason: err.to_string(),
                    retry_in,
                    permanent,
                };
                if tx.send(SourceMsg::State(state)).await.is_err() {
                    return;
                }
                attempt = attempt.saturating_add(1);
                tokio::time::sleep(retry_in).await;
            }
        }
    }
}

/// Where a source is, across connections.
struct Position<'a> {
    /// Events handed to the consumer so far (what an ack gate counts).
    sent: &'a mut u64,
    /// A stream's next offset, once something was read.
    resume: &'a mut Option<u64>,
}

/// One connection's life. Returns the error that ended it and whether it had been consuming.
#[allow(clippy::too_many_lines)] // set-up then the delivery loop, read top to bottom
async fn consume(
    cfg: &AmqpConfig,
    queue_name: &str,
    tx: &SourceTx,
    gap: &mut Option<(i64, String)>,
    attempt: &mut u32,
    at: &mut Position<'_>,
) -> Result<Ended, (AmqpError, bool)> {
    let fail = |e: lapin::Error| {
        (
            AmqpError::from_lapin(&e, cfg.url.expose(), &cfg.exchange),
            false,
        )
    };
    // Names the broker could never take are said before connecting.
    let exchange = short_named(&cfg.exchange, "the exchange name").map_err(|e| (e, false))?;
    let queue = short_named(queue_name, "the queue name").map_err(|e| (e, false))?;
    let keys = cfg
        .binding_keys
        .iter()
        .map(|k| short_named(k, "a binding key"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| (e, false))?;
    let conn = connect(cfg.url.expose(), &cfg.exchange, "candybar viewer")
        .await
        .map_err(|e| (e, false))?;
    let ch = conn.create_channel().await.map_err(fail)?;
    let stream = matches!(cfg.queue, QueueMode::Stream { .. });
    if !cfg.exchange.is_empty() && !stream {
        let passive = ExchangeDeclareOptions {
            passive: true,
            ..ExchangeDeclareOptions::default()
        };
        ch.exchange_declare(
            exchange.clone(),
            ExchangeKind::Topic,
            passive,
            FieldTable::default(),
        )
        .await
        .map_err(fail)?;
    }
    let mut consume_args = FieldTable::default();
    let mut beyond_end = None;
    if let QueueMode::Stream { name, from } = &cfg.queue {
        // The stream is the broker's set-up: it must exist; candybar neither creates nor binds it.
        let passive = QueueDeclareOptions {
            passive: true,
            durable: true,
            ..QueueDeclareOptions::default()
        };
        let declared = ch
            .queue_declare(queue.clone(), passive, FieldTable::default())
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::ProtocolError(p)
                    if matches!(p.kind(), AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND)) =>
                {
                    (
                        AmqpError::StreamMissing {
                            stream: name.clone(),
                        },
                        false,
                    )
                }
                _ => fail(e),
            })?;
        let start = at.resume.map_or(*from, StreamStart::Offset);
        // The broker counts a stream's messages; an offset past them waits for new ones.
        let held = u64::from(declared.message_count());
        if let StreamStart::Offset(n) = start
            && n > held
            && at.resume.is_none()
        {
            beyond_end = Some(format!(
                "; offset {n} is beyond the stream's end (it holds about {held}): waiting for new events"
            ));
        }
        consume_args.insert(STREAM_OFFSET_HEADER.into(), start.argument());
    } else {
        let durable = matches!(cfg.queue, QueueMode::Durable(_));
        let qopts = if durable {
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            }
        } else {
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            }
        };
        ch.queue_declare(queue.clone(), qopts, FieldTable::default())
            .await
            .map_err(fail)?;
        for key in keys {
            ch.queue_bind(
                queue.clone(),
                exchange.clone(),
                key,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(fail)?;
        }
    }
    ch.basic_qos(cfg.prefetch, BasicQosOptions::default())
        .await
        .map_err(fail)?;
    let copts = BasicConsumeOptions {
        // Manual acks in every mode: the broker's prefetch window then bounds what sits in memory
        // when the viewer is slower than the bus (a no-ack consumer gets everything pushed at it;
        // a stream requires them).
        no_ack: false,
        ..BasicConsumeOptions::default()
    };
    let mut consumer = ch
        .basic_consume(queue, "".into(), copts, consume_args)
        .await
        .map_err(fail)?;

    *attempt = 0;
    let detail = describe(cfg) + beyond_end.as_deref().unwrap_or_default();
    if tx
        .send(SourceMsg::State(SourceState::Connected { detail }))
        .await
        .is_err()
    {
        return Ok(Ended::ReceiverGone);
    }
    if let Some((start_us, reason)) = gap.take()
        && tx
            .send(SourceMsg::Gap {
                start_us,
                end_us: now_us(),
                reason,
                lossless: !matches!(cfg.queue, QueueMode::Private),
            })
            .await
            .is_err()
    {
        return Ok(Ended::ReceiverGone);
    }
    let lost = |e: lapin::Error| {
        (
            AmqpError::from_lapin(&e, cfg.url.expose(), &cfg.exchange),
            true,
        )
    };
    // Batched acks: every 100 deliveries (a quarter of the prefetch), or when the stream goes
    // quiet. With a gate, a delivery waits until the consumer released it.
    let ack_every = u64::from(cfg.prefetch / 4).clamp(1, 100);
    let mut gate = cfg.ack_gate.as_ref().map(AckGate::subscribe);
    // Gated: (the event's number in `sent`, its delivery tag), oldest first.
    let mut held: VecDeque<(u64, u64)> = VecDeque::new();
    let mut unacked = 0u64;
    let mut last_tag = 0u64;
    loop {
        let next = if let Some(gate) = gate.as_mut() {
            tokio::select! {
                n = consumer.next() => n,
                changed = gate.changed(), if !held.is_empty() => {
                    if changed.is_err() {
                        // The consumer is gone; nothing more will be released.
                        return Ok(Ended::ReceiverGone);
                    }
                    let safe = *gate.borrow_and_update();
                    let mut upto = None;
                    while let Some(&(n, tag)) = held.front() && n <= safe {
                        upto = Some(tag);
                        held.pop_front();
                    }
                    if let Some(tag) = upto {
                        ack(&ch, tag).await.map_err(lost)?;
                    }
                    continue;
                }
            }
        } else if unacked > 0 {
            if let Ok(n) = tokio::time::timeout(Duration::from_millis(50), consumer.next()).await {
                n
            } else {
                ack(&ch, last_tag).await.map_err(lost)?;
                unacked = 0;
                continue;
            }
        } else {
            consumer.next().await
        };
        let delivery = match next {
            Some(Ok(d)) => d,
            Some(Err(e)) => return Err(lost(e)),
            None => {
                return Err((
                    AmqpError::Lost {
                        reason: "the broker ended the consumer".into(),
                    },
                    true,
                ));
            }
        };
        let tag = delivery.delivery_tag;
        let mut props = props_of(&delivery.properties);
        let offset = stream_offset(&delivery.properties);
        if let Some(offset) = offset {
            *at.resume = Some(offset + 1);
            // Where it sat in the stream is not the event's own: not kept per event.
            if let Some(p) = props.as_mut() {
                p.headers.retain(|(k, _)| k != STREAM_OFFSET_HEADER);
            }
            props = props.filter(|p| !p.is_empty());
        }
        let mut msg = RawMessage {
            received_us: now_us(),
            routing_key: delivery.routing_key.as_str().to_owned(),
            props,
            body: delivery.data,
            precut: None,
        };
        if offset.is_some() {
            // History read back from a stream arrives now but happened then: it is placed at its
            // own publish time (never in the future), so time ranges and charts show it where it
            // belongs. An event without a publish time stays at its arrival.
            let published = candybar_core::decode::decode(&msg).published_us;
            if let Some(t) = published.filter(|&t| t > 0 && t < msg.received_us) {
                msg.received_us = t;
            }
        }
        msg.cap_body(cfg.body_cap_bytes);
        if tx.send(SourceMsg::Event(msg)).await.is_err() {
            return Ok(Ended::ReceiverGone);
        }
        *at.sent += 1;
        if gate.is_some() {
            held.push_back((*at.sent, tag));
            continue;
        }
        last_tag = tag;
        unacked += 1;
        if unacked >= ack_every {
            ack(&ch, last_tag).await.map_err(lost)?;
            unacked = 0;
        }
    }
}

async fn ack(ch: &Channel, tag: u64) -> Result<(), lapin::Error> {
    ch.basic_ack(tag, BasicAckOptions { multiple: true }).await
}

/// A stream message's offset, from the header `RabbitMQ` adds.
fn stream_offset(p: &BasicProperties) -> Option<u64> {
    let headers = p.headers().as_ref()?;
    let (_, v) = headers
        .into_iter()
        .find(|(k, _)| k.as_str() == STREAM_OFFSET_HEADER)?;
    match v {
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}

/// The AMQP properties worth keeping, as text.
#[must_use]
pub fn props_of(p: &BasicProperties) -> Option<Box<AmqpProps>> {
    let s = |v: &Option<ShortString>| v.as_ref().map(|s| s.as_str().to_owned());
    let props = AmqpProps {
        message_id: s(p.message_id()),
        timestamp_secs: *p.timestamp(),
        app_id: s(p.app_id()),
        correlation_id: s(p.correlation_id()),
        kind: s(p.kind()),
        content_type: s(p.content_type()),
        headers: p
            .headers()
            .as_ref()
            .map(|h| {
                h.into_iter()
                    .map(|(k, v)| (k.as_str().to_owned(), value_text(v)))
                    .collect()
            })
            .unwrap_or_default(),
    };
    (!props.is_empty()).then(|| Box::new(props))
}

fn value_text(v: &AMQPValue) -> String {
    match v {
        AMQPValue::LongString(s) => s.to_string(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(i) => i.to_string(),
        AMQPValue::ShortShortUInt(i) => i.to_string(),
        AMQPValue::ShortInt(i) => i.to_string(),
        AMQPValue::ShortUInt(i) => i.to_string(),
        AMQPValue::LongInt(i) => i.to_string(),
        AMQPValue::LongUInt(i) => i.to_string(),
        AMQPValue::LongLongInt(i) => i.to_string(),
        AMQPValue::Timestamp(t) => t.to_string(),
        AMQPValue::Float(f) => f.to_string(),
        AMQPValue::Double(f) => f.to_string(),
        AMQPValue::Void => String::new(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_start_is_a_word_an_offset_a_duration_ago_or_a_moment() {
        let now = 1_800_000_000_000_000;
        assert_eq!(StreamStart::parse("first", now), Ok(StreamStart::First));
        assert_eq!(StreamStart::parse("next", now), Ok(StreamStart::Next));
        assert_eq!(StreamStart::parse("last", now), Ok(StreamStart::Last));
        assert_eq!(StreamStart::parse("42", now), Ok(StreamStart::Offset(42)));
        assert_eq!(
            StreamStart::parse("24h", now),
            Ok(StreamStart::Timestamp(1_800_000_000 - 86_400))
        );
        assert_eq!(
            StreamStart::parse("2027-01-15T08:00:00Z", now),
            Ok(StreamStart::Timestamp(1_800_000_000))
        );
        let err = StreamStart::parse("tuesday", now).unwrap_err();
        assert!(err.contains("give first, last, next"), "{err}");
        // Longer ago than the epoch: the stream's beginning, not a wrapped-around number.
        assert_eq!(
            StreamStart::parse("100000d", now),
            Ok(StreamStart::Timestamp(0))
        );
    }

    #[test]
    fn urls_are_checked_and_normalized() {
        assert_eq!(
            normalize_url("amqp://u:p@host:5672/").unwrap(),
            "amqp://u:p@host:5672/%2f"
        );
        assert_eq!(
            normalize_url("amqp://host:5672/%2f").unwrap(),
            "amqp://host:5672/%2f"
        );
        assert_eq!(normalize_url("amqps://host/vh").unwrap(), "amqps://host/vh");
        let e = normalize_url("http://u:secret@host").unwrap_err();
        assert!(e.to_string().contains("scheme must be amqp"), "{e}");
        assert!(!e.to_string().contains("secret"));
        assert!(e.is_permanent());
        let e = normalize_url("not a url").unwrap_err();
        assert!(matches!(e, AmqpError::BadUrl { .. }));
    }

    #[test]
    fn backoff_is_short_then_capped() {
        assert_eq!(backoff(0, false), Duration::from_millis(100));
        assert_eq!(backoff(1, false), Duration::from_millis(200));
        assert_eq!(backoff(2, false), Duration::from_millis(400));
        assert_eq!(backoff(9, false), Duration::from_millis(500));
        assert_eq!(backoff(0, true), Duration::from_secs(5));
    }
}
