//! The event model every view reads: what a source received ([`RawMessage`]) and what was made of
//! it ([`Event`]), plus the derived classifications (domain, status).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::intern::Sym;
use super::time::Micros;

/// AMQP message properties that can stand in for missing envelope fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmqpProps {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The `timestamp` property: seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The `type` property.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Headers, values rendered as text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
}

impl AmqpProps {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A message as a source received it.
#[derive(Clone, Debug, Default)]
pub struct RawMessage {
    /// When candybar received it (local clock).
    pub received_us: Micros,
    pub routing_key: String,
    /// AMQP properties, when the transport had any.
    pub props: Option<Box<AmqpProps>>,
    pub body: Vec<u8>,
    /// Set when the body was cut before it reached the store.
    pub precut: Option<Box<Precut>>,
}

/// How the body was understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum BodyKind {
    /// A Bloodbank v1 envelope (`event_id`, `event_type`, `payload`, …).
    BloodbankV1,
    /// A CloudEvents-style envelope (`id`, `type`, `data`, … — Bloodbank v3).
    #[serde(rename = "cloudevents")]
    CloudEvents,
    /// JSON, but neither envelope.
    OtherJson,
    /// Not valid JSON (or nested too deeply to read), but UTF-8 text.
    Text,
    /// Not UTF-8.
    Binary,
    /// Zero bytes.
    #[default]
    Empty,
}

impl BodyKind {
    #[must_use]
    pub fn is_json(self) -> bool {
        matches!(
            self,
            Self::BloodbankV1 | Self::CloudEvents | Self::OtherJson
        )
    }

    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::BloodbankV1 => "bloodbank-v1",
            Self::CloudEvents => "cloudevents",
            Self::OtherJson => "json",
            Self::Text => "text",
            Self::Binary => "binary",
            Self::Empty => "empty",
        }
    }
}

/// A coarse outcome class derived from the event type, for colour and the `errors` filter.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Status {
    Error,
    Completed,
    Started,
    #[default]
    Other,
}

impl Status {
    pub const ALL: [Self; 4] = [Self::Error, Self::Completed, Self::Started, Self::Other];

    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Completed => "completed",
            Self::Started => "started",
            Self::Other => "other",
        }
    }

    #[must_use]
    pub fn from_label(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|st| st.label().eq_ignore_ascii_case(s))
            .or_else(|| match s.to_ascii_lowercase().as_str() {
                "errors" | "failed" | "failure" => Some(Self::Error),
                "done" | "ready" | "ok" => Some(Self::Completed),
                "start" | "prompt" => Some(Self::Started),
                _ => None,
            })
    }

    /// Classifies an event type by its segments: any error word wins, then the last segment that
    /// names a completion or a start.
    #[must_use]
    pub fn of_type(event_type: &str) -> Self {
        let mut status = Self::Other;
        for segment in event_type.split(['.', '_', '-', ':', '/']) {
            let lowered;
            let seg = if segment.bytes().any(|b| b.is_ascii_uppercase()) {
                lowered = segment.to_ascii_lowercase();
                lowered.as_str()
            } else {
                segment
            };
            match seg {
                "error" | "errors" | "failed" | "failure" | "fail" | "exception" | "crashed"
                | "rejected" | "timeout" => {
                    return Self::Error;
                }
                "completed" | "complete" | "ready" | "done" | "succeeded" | "success"
                | "finished" | "processed" | "response" | "ended" | "recorded" | "received" => {
                    status = Self::Completed;
                }
                "started" | "start" | "prompt" | "requested" | "request" | "invoked"
                | "spawned" | "created" | "trigger" | "upload" | "sent" => status = Self::Started,
                _ => {}
            }
        }
        status
    }
}

/// The domain of an event type: the first segment after a versioned platform prefix
/// (`bloodbank.v1.repo.decision.recorded` → `repo`), else the first segment
/// (`agent.thread.prompt` → `agent`).
#[must_use]
pub fn domain_of_type(event_type: &str) -> &str {
    let mut segments = event_type.split('.');
    let first = segments.next().unwrap_or_default();
    let second = segments.next();
    let third = segments.next();
    match (second, third) {
        (Some(v), Some(domain)) if is_version(v) && !domain.is_empty() => domain,
        _ if is_version(first) => second.filter(|d| !d.is_empty()).unwrap_or(first),
        _ => first,
    }
}

/// The type without its versioned platform prefix (`bloodbank.v1.repo.decision.recorded` →
/// `repo.decision.recorded`); the type itself when it has none.
#[must_use]
pub fn short_type(event_type: &str) -> &str {
    let mut parts = event_type.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(v), Some(rest)) if is_version(v) && !rest.is_empty() => rest,
        (Some(v), Some(_), _) if is_version(v) => {
            event_type.split_once('.').map_or(event_type, |(_, r)| r)
        }
        _ => event_type,
    }
}

fn is_version(segment: &str) -> bool {
    let b = segment.as_bytes();
    b.len() >= 2 && (b[0] == b'v' || b[0] == b'V') && b[1..].iter().all(u8::is_ascii_digit)
}

/// One stored event, fully decoded: what the detail pane, `tail` and export show.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Event {
    /// Position in the store; increases by one per event received.
    pub seq: u64,
    pub received_us: Micros,
    /// When the producer says it published the event.
    pub published_us: Option<Micros>,
    pub id: Option<String>,
    /// The event type (envelope type, else the AMQP `type` property, else the routing key).
    pub kind: String,
    pub routing_key: String,
    pub domain: String,
    pub source: Option<String>,
    pub agent: Option<String>,
    pub agent_type: Option<String>,
    pub session: Option<String>,
    pub correlation_ids: Vec<String>,
    pub causation_id: Option<String>,
    pub status: Status,
    pub body_kind: BodyKind,
    /// Size of the body as received, in bytes.
    pub size_bytes: u64,
    /// The body was cut to the store's cap; `body` holds its beginning.
    pub truncated: bool,
    pub props: Option<Box<AmqpProps>>,
    pub body: Vec<u8>,
}

impl Event {
    /// Receive time minus publish time, when the event carries one.
    #[must_use]
    pub fn latency_us(&self) -> Option<Micros> {
        self.published_us.map(|p| self.received_us - p)
    }
}

/// The fields read from a body, borrowed from it where the JSON had no escapes. Serialized where
/// a cut body must keep them (the journal).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Header<'a> {
    pub body_kind: BodyKind,
    pub id: Option<Cow<'a, str>>,
    pub kind: Option<Cow<'a, str>>,
    pub published_us: Option<Micros>,
    pub source: Option<Cow<'a, str>>,
    /// Correlation ids: v1 `correlation_ids[]` (all of them), v3 `correlationid`.
    pub correlation_ids: Vec<Cow<'a, str>>,
    pub causation_id: Option<Cow<'a, str>>,
    pub agent: Option<Cow<'a, str>>,
    pub agent_type: Option<Cow<'a, str>>,
    pub session: Option<Cow<'a, str>>,
    /// The envelope's own `domain`, when it has one.
    pub domain: Option<Cow<'a, str>>,
}

impl Header<'_> {
    #[must_use]
    pub fn into_owned(self) -> Header<'static> {
        fn own(c: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
            c.map(|c| Cow::Owned(c.into_owned()))
        }
        Header {
            body_kind: self.body_kind,
            id: own(self.id),
            kind: own(self.kind),
            published_us: self.published_us,
            source: own(self.source),
            correlation_ids: self
                .correlation_ids
                .into_iter()
                .map(|c| Cow::Owned(c.into_owned()))
                .collect(),
            causation_id: own(self.causation_id),
            agent: own(self.agent),
            agent_type: own(self.agent_type),
            session: own(self.session),
            domain: own(self.domain),
        }
    }
}

/// `published_us` of events that carry no publish time.
pub const NO_TIME: Micros = Micros::MIN;

/// Flag bits in [`EventMeta::flags`].
pub mod flags {
    /// The body was cut to the store's cap.
    pub const TRUNCATED: u8 = 1;
    /// More correlation ids than the meta keeps; the body has the rest.
    pub const MORE_CORRELATIONS: u8 = 2;
    /// The body was cut and its id, correlation and causation ids (read from the whole body)
    /// are kept beside it, since the cut body no longer has them all.
    pub const HEADER_KEPT: u8 = 4;
}

/// What the store keeps per event besides the body: 64 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventMeta {
    pub received_us: Micros,
    /// [`NO_TIME`] when the event carries no publish time.
    pub published_us: Micros,
    /// Hash of the event id (0: none).
    pub id_hash: u32,
    /// Hash of the first correlation id (0: none).
    pub corr_hash: u32,
    /// Hash of the causation id, else of the second correlation id (0: none).
    pub cause_hash: u32,
    pub kind: Sym,
    /// [`Sym::NONE`] when the routing key equals the type.
    pub routing_key: Sym,
    pub domain: Sym,
    pub source: Sym,
    pub agent: Sym,
    pub agent_type: Sym,
    pub session: Sym,
    /// Body size as received (saturating at 4 GiB).
    pub size_bytes: u32,
    pub status: Status,
    pub body_kind: BodyKind,
    pub flags: u8,
}

impl EventMeta {
    #[must_use]
    pub fn published(&self) -> Option<Micros> {
        (self.published_us != NO_TIME).then_some(self.published_us)
    }

    #[must_use]
    pub fn truncated(&self) -> bool {
        self.flags & flags::TRUNCATED != 0
    }

    /// Whether `hash` is this event's id, correlation or causation.
    #[must_use]
    pub fn related_to(&self, hash: u32) -> bool {
        hash != 0 && (self.corr_hash == hash || self.cause_hash == hash || self.id_hash == hash)
    }

    #[must_use]
    pub fn routing_key_sym(&self) -> Sym {
        if self.routing_key.is_none() {
            self.kind
        } else {
            self.routing_key
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_from_types() {
        assert_eq!(
            domain_of_type("bloodbank.v1.repo.decision.recorded"),
            "repo"
        );
        assert_eq!(domain_of_type("agent.thread.prompt"), "agent");
        assert_eq!(domain_of_type("fireflies.transcript.ready"), "fireflies");
        assert_eq!(domain_of_type("v2.llm.response"), "llm");
        assert_eq!(domain_of_type("theboard"), "theboard");
        assert_eq!(domain_of_type(""), "");
        assert_eq!(domain_of_type("bloodbank.v1"), "bloodbank");
    }

    #[test]
    fn short_types() {
        assert_eq!(
            short_type("bloodbank.v1.repo.decision.recorded"),
            "repo.decision.recorded"
        );
        assert_eq!(short_type("agent.thread.prompt"), "agent.thread.prompt");
        assert_eq!(short_type("v1.llm.response"), "llm.response");
    }

    #[test]
    fn status_classes() {
        assert_eq!(
            Status::of_type("fireflies.transcript.failed"),
            Status::Error
        );
        assert_eq!(Status::of_type("agent.thread.error"), Status::Error);
        assert_eq!(Status::of_type("llm.error"), Status::Error);
        assert_eq!(
            Status::of_type("bloodbank.v1.agent.invocation.completed"),
            Status::Completed
        );
        assert_eq!(
            Status::of_type("fireflies.transcript.ready"),
            Status::Completed
        );
        assert_eq!(Status::of_type("agent.thread.prompt"), Status::Started);
        assert_eq!(Status::of_type("agent.session.started"), Status::Started);
        assert_eq!(Status::of_type("system.heartbeat.tick"), Status::Other);
        assert_eq!(Status::of_type("artifact.ingestion.failed"), Status::Error);
        assert_eq!(Status::from_label("ERRORS"), Some(Status::Error));
        assert_eq!(Status::from_label("nope"), None);
    }
}

/// A body cut to a cap after its header was read from the whole of it (see
/// `RawMessage::cap_body` in [`crate::decode`]), so a huge message keeps its type, id and times.
#[derive(Clone, Debug, PartialEq)]
pub struct Precut {
    pub header: Header<'static>,
    /// The body's size before it was cut.
    pub size_bytes: u64,
}

impl RawMessage {
    /// Size of the body as sent, before any cut.
    #[must_use]
    pub fn size_bytes(&self) -> u64 {
        self.precut
            .as_ref()
            .map_or(self.body.len() as u64, |p| p.size_bytes)
    }
}
