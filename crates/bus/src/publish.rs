//! Publishing to `RabbitMQ` with publisher confirms (`candybar publish`, transcripts on the bus,
//! `asr serve --amqp`).

use candybar_core::event::RawMessage;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};

use crate::amqp::{AmqpError, connect, short};

/// Publishes with publisher confirms: every message is either confirmed by the broker or
/// reported; on a lost connection the unconfirmed window is sent again (at-least-once).
pub struct Publisher {
    url: String,
    exchange: String,
    channel: Option<Channel>,
    /// Kept so the channel stays open.
    connection: Option<Connection>,
    pub declared_exchange: bool,
}

impl Publisher {
    #[must_use]
    pub fn new(url: &str, exchange: &str) -> Self {
        Self {
            url: url.to_owned(),
            exchange: exchange.to_owned(),
            channel: None,
            connection: None,
            declared_exchange: false,
        }
    }

    pub fn exchange(&self) -> &str {
        &self.exchange
    }

    /// Connects (if needed), makes sure the exchange exists (declaring a durable topic exchange
    /// when it does not), and turns on confirms.
    pub async fn ensure(&mut self) -> Result<&Channel, AmqpError> {
        if self
            .channel
            .as_ref()
            .is_some_and(|c| c.status().connected())
        {
            return self.channel.as_ref().ok_or_else(|| AmqpError::Other {
                reason: "no channel".into(),
            });
        }
        let fail = |e: lapin::Error, url: &str, ex: &str| AmqpError::from_lapin(&e, url, ex);
        let conn = connect(&self.url, &self.exchange, "candybar publisher").await?;
        let exchange = short(&self.exchange)?;
        if !self.exchange.is_empty() {
            let probe = conn
                .create_channel()
                .await
                .map_err(|e| fail(e, &self.url, &self.exchange))?;
            let passive = ExchangeDeclareOptions {
                passive: true,
                ..ExchangeDeclareOptions::default()
            };
            match probe
                .exchange_declare(
                    exchange.clone(),
                    ExchangeKind::Topic,
                    passive,
                    FieldTable::default(),
                )
                .await
            {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        AmqpError::from_lapin(&e, &self.url, &self.exchange),
                        AmqpError::ExchangeMissing { .. }
                    ) =>
                {
                    // The probe channel is closed by the 404; declare on a fresh one.
                    let ch = conn
                        .create_channel()
                        .await
                        .map_err(|e| fail(e, &self.url, &self.exchange))?;
                    let opts = ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    };
                    ch.exchange_declare(
                        exchange.clone(),
                        ExchangeKind::Topic,
                        opts,
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| fail(e, &self.url, &self.exchange))?;
                    self.declared_exchange = true;
                }
                Err(e) => return Err(fail(e, &self.url, &self.exchange)),
            }
        }
        let ch = conn
            .create_channel()
            .await
            .map_err(|e| fail(e, &self.url, &self.exchange))?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| fail(e, &self.url, &self.exchange))?;
        self.connection = Some(conn);
        self.channel = Some(ch);
        self.channel.as_ref().ok_or_else(|| AmqpError::Other {
            reason: "no channel".into(),
        })
    }

    /// Publishes a window of messages and waits until the broker confirms all of them. Returns
    /// how many the broker refused (nack); an `Err` means the window must be sent again.
    pub async fn publish_window(&mut self, msgs: &[RawMessage]) -> Result<usize, AmqpError> {
        let url = self.url.clone();
        let exchange_name = self.exchange.clone();
        let ch = self.ensure().await?.clone();
        let exchange = short(&exchange_name)?;
        let mut pending = Vec::with_capacity(msgs.len());
        for m in msgs {
            let props = publish_props(m);
            let confirm = ch
                .basic_publish(
                    exchange.clone(),
                    short(&m.routing_key)?,
                    BasicPublishOptions::default(),
                    &m.body,
                    props,
                )
                .await
                .map_err(|e| AmqpError::from_lapin(&e, &url, &exchange_name));
            match confirm {
                Ok(c) => pending.push(c),
                Err(e) => {
                    self.channel = None;
                    return Err(e);
                }
            }
        }
        let mut nacked = 0;
        for c in pending {
            match c.await {
                Ok(conf) if conf.is_nack() => nacked += 1,
                Ok(_) => {}
                Err(e) => {
                    self.channel = None;
                    return Err(AmqpError::from_lapin(&e, &url, &exchange_name));
                }
            }
        }
        Ok(nacked)
    }
}

/// Persistent delivery, the message id and timestamp from the envelope, JSON content type.
fn publish_props(m: &RawMessage) -> BasicProperties {
    let mut props = BasicProperties::default().with_delivery_mode(2);
    let header = candybar_core::decode::read_header(&m.body);
    if let Some(id) = header
        .id
        .as_deref()
        .and_then(|id| ShortString::try_new(id).ok())
    {
        props = props.with_message_id(id);
    }
    if header.body_kind.is_json() {
        props = props.with_content_type("application/json".into());
    }
    let secs = header.published_us.unwrap_or(m.received_us) / 1_000_000;
    props = props.with_timestamp(secs.max(0) as u64);
    if let Some(p) = m.props.as_deref()
        && let Some(app) = p
            .app_id
            .as_deref()
            .and_then(|a| ShortString::try_new(a).ok())
    {
        props = props.with_app_id(app);
    }
    props
}
