//! The one envelope decoder. It reads the header fields of Bloodbank v1 and CloudEvents-style
//! envelopes in a single borrowed pass (the payload is skipped, not built), tolerates fields of
//! the wrong type, and falls back to AMQP properties and the routing key for what is missing.
//! Anything that is not JSON is still an event: classified, never an error.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::event::{AmqpProps, BodyKind, Precut, RawMessage, Status, domain_of_type};
use super::time::{MICROS_PER_SEC, Micros, from_epoch_number, parse_rfc3339_us};

pub use crate::event::Header;

/// The decoded fields with every fallback applied: what the store keeps per event.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded<'a> {
    pub header: Header<'a>,
    /// Envelope type, else the AMQP `type` property, else the routing key.
    pub kind: Cow<'a, str>,
    pub domain: Cow<'a, str>,
    pub status: Status,
    pub id: Option<Cow<'a, str>>,
    pub source: Option<Cow<'a, str>>,
    pub published_us: Option<Micros>,
}

/// Decodes a message: the body's header (read before the body was cut, for a cut one), then the
/// AMQP properties and routing key as fallbacks.
#[must_use]
pub fn decode(msg: &RawMessage) -> Decoded<'_> {
    match &msg.precut {
        Some(p) => complete(p.header.clone(), &msg.routing_key, msg.props.as_deref()),
        None => decode_parts(&msg.body, &msg.routing_key, msg.props.as_deref()),
    }
}

/// [`decode`] for a body whose header was read before the body was cut.
#[must_use]
pub fn decode_parts<'a>(
    body: &'a [u8],
    routing_key: &'a str,
    props: Option<&'a AmqpProps>,
) -> Decoded<'a> {
    complete(read_header(body), routing_key, props)
}

/// Applies the fallbacks to a header read earlier.
#[must_use]
pub fn complete<'a>(
    header: Header<'a>,
    routing_key: &'a str,
    props: Option<&'a AmqpProps>,
) -> Decoded<'a> {
    let kind = header
        .kind
        .clone()
        .filter(|k| !k.is_empty())
        .or_else(|| {
            props
                .and_then(|p| p.kind.as_deref())
                .filter(|k| !k.is_empty())
                .map(Cow::Borrowed)
        })
        .unwrap_or(Cow::Borrowed(routing_key));
    let domain = match header.domain.clone().filter(|d| !d.is_empty()) {
        Some(d) => d,
        None => match &kind {
            Cow::Borrowed(k) => Cow::Borrowed(domain_of_type(k)),
            Cow::Owned(k) => Cow::Owned(domain_of_type(k).to_owned()),
        },
    };
    let status = Status::of_type(&kind);
    let id = header.id.clone().or_else(|| {
        props
            .and_then(|p| p.message_id.as_deref())
            .map(Cow::Borrowed)
    });
    let source = header
        .source
        .clone()
        .or_else(|| props.and_then(|p| p.app_id.as_deref()).map(Cow::Borrowed));
    let published_us = header.published_us.or_else(|| {
        props
            .and_then(|p| p.timestamp_secs)
            .and_then(|s| i64::try_from(s).ok())
            .and_then(|s| s.checked_mul(MICROS_PER_SEC))
    });
    let mut header = header;
    if header.correlation_ids.is_empty()
        && let Some(c) = props.and_then(|p| p.correlation_id.as_deref())
    {
        header.correlation_ids.push(Cow::Borrowed(c));
    }
    Decoded {
        header,
        kind,
        domain,
        status,
        id,
        source,
        published_us,
    }
}

/// Reads the header fields of a body. Never fails: a body that is not an envelope is classified.
#[must_use]
pub fn read_header(body: &[u8]) -> Header<'_> {
    if body.is_empty() {
        return Header {
            body_kind: BodyKind::Empty,
            ..Header::default()
        };
    }
    // A UTF-8 byte-order mark is not JSON, but some producers write one.
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    let object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if object {
        if let Ok(env) = serde_json::from_slice::<Envelope<'_>>(body) {
            return env.into_header();
        }
        if let Some(header) = tolerant_header(body) {
            return header;
        }
    }
    // Valid JSON of another shape (an array, a string, duplicate keys, …), or not JSON at all.
    let body_kind = if serde_json::from_slice::<IgnoredAny>(body).is_ok() {
        BodyKind::OtherJson
    } else if std::str::from_utf8(body).is_ok() {
        BodyKind::Text
    } else {
        BodyKind::Binary
    };
    Header {
        body_kind,
        ..Header::default()
    }
}

/// The header of an envelope that strict JSON refuses but a person would read: duplicate keys
/// (the last one wins, as in most parsers), a lone UTF-16 surrogate escape or a byte that is not
/// UTF-8 (each read as U+FFFD). The platform's producers are not all careful; their events
/// should still have a type and an id. Only tried when the strict read failed.
fn tolerant_header(body: &[u8]) -> Option<Header<'static>> {
    let text = String::from_utf8_lossy(body);
    let text = replace_lone_surrogates(&text);
    // `Value` keeps the last of duplicate keys; written out again it is strict JSON.
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    let strict = serde_json::to_vec(&value).ok()?;
    let env = serde_json::from_slice::<Envelope<'_>>(&strict).ok()?;
    Some(env.into_header().into_owned())
}

/// `\uD800`–`\uDFFF` escapes that are not a high surrogate followed by a low one, as `\uFFFD`.
fn replace_lone_surrogates(text: &str) -> Cow<'_, str> {
    fn surrogate_at(b: &[u8], i: usize) -> Option<u16> {
        let hex = b.get(i + 2..i + 6)?;
        if b.get(i) != Some(&b'\\') || b.get(i + 1) != Some(&b'u') {
            return None;
        }
        let v = u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
        (0xd800..=0xdfff).contains(&v).then_some(v)
    }
    let b = text.as_bytes();
    if !text.contains("\\u") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut changed = false;
    while i < b.len() {
        // An escaped backslash is not the start of an escape.
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'\\') {
            out.push_str("\\\\");
            i += 2;
            continue;
        }
        if let Some(hi) = surrogate_at(b, i) {
            let paired = (0xd800..=0xdbff).contains(&hi)
                && surrogate_at(b, i + 6).is_some_and(|lo| (0xdc00..=0xdfff).contains(&lo));
            if paired {
                out.push_str(&text[i..i + 12]);
                i += 12;
            } else {
                out.push_str("\\ufffd");
                changed = true;
                i += 6;
            }
            continue;
        }
        let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&text[i..i + ch_len]);
        i += ch_len;
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

/// How deeply a JSON text nests (brackets outside strings); stops counting at `limit`.
/// Cheap enough for output paths: one pass, no allocation.
#[must_use]
pub fn nesting_depth(body: &[u8], limit: usize) -> usize {
    let (mut depth, mut max, mut in_str, mut escaped) = (0usize, 0usize, false, false);
    for &b in body {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
                if max >= limit {
                    return max;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Why a body cannot be shown as a JSON tree, in words (re-parses; not for the hot path).
/// Nesting deeper than 128 levels is refused here even though it is valid JSON.
#[must_use]
pub fn json_error(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(body)
        .err()
        .map(|e| e.to_string())
}

/// Every header key of both envelope styles. Keys not listed (`payload`, `data`, …) are skipped
/// by serde without being built.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Envelope<'a> {
    // Bloodbank v1
    #[serde(borrow)]
    event_id: Lenient<'a>,
    #[serde(borrow)]
    event_type: Lenient<'a>,
    timestamp: TimeField,
    #[serde(borrow)]
    source: SourceField<'a>,
    #[serde(borrow)]
    correlation_ids: StrList<'a>,
    #[serde(borrow)]
    agent_context: Obj<AgentContext<'a>>,
    #[serde(borrow)]
    session_id: Lenient<'a>,
    // CloudEvents-style (Bloodbank v3)
    #[serde(borrow)]
    id: Lenient<'a>,
    #[serde(borrow, rename = "type")]
    kind: Lenient<'a>,
    #[serde(borrow)]
    subject: Lenient<'a>,
    time: TimeField,
    specversion: Lenient<'a>,
    #[serde(borrow)]
    correlationid: Lenient<'a>,
    #[serde(borrow)]
    causationid: Lenient<'a>,
    #[serde(borrow)]
    actor: Obj<Actor<'a>>,
    #[serde(borrow)]
    domain: Lenient<'a>,
    #[serde(borrow)]
    producer: Lenient<'a>,
    #[serde(borrow)]
    service: Lenient<'a>,
    #[serde(borrow)]
    sessionid: Lenient<'a>,
    payload: Present,
    data: Present,
}

impl<'a> Envelope<'a> {
    fn into_header(self) -> Header<'a> {
        let v1 = self.event_type.0.is_some() || self.event_id.0.is_some() || self.payload.0;
        let v3 = self.specversion.0.is_some()
            || (self.kind.0.is_some() && (self.id.0.is_some() || self.data.0));
        let body_kind = if v1 {
            BodyKind::BloodbankV1
        } else if v3 {
            BodyKind::CloudEvents
        } else {
            BodyKind::OtherJson
        };
        let agent_ctx = self.agent_context.0.unwrap_or_default();
        let actor = self.actor.0.unwrap_or_default();
        let mut correlation_ids = self.correlation_ids.0;
        if let Some(c) = self.correlationid.0 {
            correlation_ids.push(c);
        }
        let (source, v3_source) = match self.source {
            SourceField::Text(s) => (None, Some(s)),
            SourceField::Object { app, host } => (app.0.or(host.0), None),
            SourceField::Missing => (None, None),
        };
        Header {
            body_kind,
            id: self.event_id.0.or(self.id.0),
            kind: self.event_type.0.or(self.kind.0).or(self.subject.0),
            published_us: self.timestamp.0.or(self.time.0),
            source: source.or(v3_source).or(self.producer.0).or(self.service.0),
            correlation_ids,
            causation_id: self.causationid.0,
            agent: agent_ctx
                .name
                .0
                .or(actor.agent_id.0)
                .or_else(|| agent_ctx.kind.0.clone()),
            agent_type: agent_ctx.kind.0.or(actor.kind.0),
            session: agent_ctx
                .session_id
                .0
                .or(agent_ctx.instance_id.0)
                .or(self.session_id.0)
                .or(self.sessionid.0)
                .or(actor.session_id.0),
            domain: self.domain.0,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AgentContext<'a> {
    #[serde(borrow, rename = "type")]
    kind: Lenient<'a>,
    #[serde(borrow)]
    name: Lenient<'a>,
    #[serde(borrow)]
    instance_id: Lenient<'a>,
    #[serde(borrow)]
    session_id: Lenient<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Actor<'a> {
    #[serde(borrow)]
    agent_id: Lenient<'a>,
    #[serde(borrow, rename = "type")]
    kind: Lenient<'a>,
    #[serde(borrow)]
    session_id: Lenient<'a>,
}

/// A text field that accepts a string (borrowed when possible) or a number, and reads anything
/// else (null, bool, object, array) as absent instead of failing the whole envelope.
#[derive(Default)]
struct Lenient<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Lenient<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor).map(Lenient)
    }
}

struct LenientVisitor;

impl<'de> Visitor<'de> for LenientVisitor {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_string())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_string())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_string())))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// Whether a key was present at all (its value is skipped).
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Present(true))
    }
}

/// A list of strings; non-string items are skipped.
#[derive(Default)]
struct StrList<'a>(Vec<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for StrList<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<Cow<'de, str>>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<Lenient<'de>>()? {
                    if let Some(s) = item.0 {
                        out.push(s);
                    }
                }
                Ok(out)
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(vec![Cow::Borrowed(v)])
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(vec![Cow::Owned(v.to_owned())])
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                LenientVisitor.visit_map(map).map(|_| Vec::new())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }
        }
        d.deserialize_any(V).map(StrList)
    }
}

/// An object field read as `T`; anything that is not an object is absent.
struct Obj<T>(Option<T>);

impl<T> Default for Obj<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Option<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                LenientVisitor.visit_seq(seq).map(|_| None)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(None)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData)).map(Obj)
    }
}

/// v1 `source` is an object (`{host, type, app, meta}`), v3 `source` a string (a URI).
#[derive(Default)]
enum SourceField<'a> {
    #[default]
    Missing,
    Text(Cow<'a, str>),
    Object {
        app: Lenient<'a>,
        host: Lenient<'a>,
    },
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SourceObject<'a> {
    #[serde(borrow)]
    app: Lenient<'a>,
    #[serde(borrow)]
    host: Lenient<'a>,
}

impl<'de: 'a, 'a> Deserialize<'de> for SourceField<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SourceField<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a source string or object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let o: SourceObject<'de> =
                    SourceObject::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(SourceField::Object {
                    app: o.app,
                    host: o.host,
                })
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(SourceField::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(SourceField::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                LenientVisitor.visit_seq(seq).map(|_| SourceField::Missing)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(SourceField::Missing)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(SourceField::Missing)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(SourceField::Missing)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(SourceField::Missing)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(SourceField::Missing)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(SourceField::Missing)
            }
        }
        let v: SourceField<'de> = d.deserialize_any(V)?;
        Ok(v)
    }
}

/// A time field: RFC 3339 text or an epoch number; anything unreadable is absent.
#[derive(Default)]
struct TimeField(Option<Micros>);

impl<'de> Deserialize<'de> for TimeField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = d.deserialize_any(TimeVisitor)?;
        Ok(TimeField(text))
    }
}

struct TimeVisitor;

impl<'de> Visitor<'de> for TimeVisitor {
    type Value = Option<Micros>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a timestamp")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(parse_rfc3339_us(v.trim()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(from_epoch_number(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(from_epoch_number(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(from_epoch_number(v))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        LenientVisitor.visit_map(map).map(|_| None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        LenientVisitor.visit_seq(seq).map(|_| None)
    }
}

impl RawMessage {
    /// Cuts a body longer than `cap_bytes`, reading its header first. Sources call this before
    /// handing a message over, so a flood of huge messages cannot fill memory.
    pub fn cap_body(&mut self, cap_bytes: usize) {
        if self.body.len() <= cap_bytes || self.precut.is_some() {
            return;
        }
        let header = read_header(&self.body).into_owned();
        let size_bytes = self.body.len() as u64;
        self.body.truncate(cap_bytes);
        self.body.shrink_to_fit();
        self.precut = Some(Box::new(Precut { header, size_bytes }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339_us;

    #[test]
    fn sloppy_producers_keep_their_type_and_id() {
        let check = |body: &[u8], kind: &str, id: &str| {
            let h = read_header(body);
            assert_eq!(
                h.kind.as_deref(),
                Some(kind),
                "{}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(
                h.id.as_deref(),
                Some(id),
                "{}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(h.body_kind, BodyKind::BloodbankV1);
        };
        // A UTF-8 byte-order mark before the envelope.
        check(
            b"\xef\xbb\xbf{\"event_id\":\"e1\",\"event_type\":\"a.b.completed\",\"payload\":{}}",
            "a.b.completed",
            "e1",
        );
        // Duplicate keys: the last one wins.
        check(
            br#"{"event_id":"e2","event_type":"first.type","event_type":"last.type","payload":{}}"#,
            "last.type",
            "e2",
        );
        // A lone surrogate escape in the payload.
        check(
            br#"{"event_id":"e3","event_type":"c.d.failed","payload":{"t":"x\ud800y"}}"#,
            "c.d.failed",
            "e3",
        );
        // One byte that is not UTF-8.
        check(
            b"{\"event_id\":\"e4\",\"event_type\":\"e.f.started\",\"payload\":{\"t\":\"\xff\"}}",
            "e.f.started",
            "e4",
        );
        // A proper pair stays a pair; an escaped backslash is not an escape.
        assert_eq!(
            replace_lone_surrogates(r#""\ud83d\ude00 \\ud800""#),
            r#""\ud83d\ude00 \\ud800""#
        );
        assert_eq!(replace_lone_surrogates(r#""\udc00x""#), r#""\ufffdx""#);
    }

    const V1: &str = r#"{"event_id":"123e4567-e89b-12d3-a456-426614174000","event_type":"transcription.voice.completed",
 "timestamp":"2026-01-27T10:00:00Z","version":"1.0.0",
 "source":{"host":"workstation-01","type":"manual","app":"bloodbank-cli"},
 "correlation_ids":["a1","b2"],"agent_context":{"type":"claude-code","name":"momo","instance_id":"sess-9"},
 "payload":{"text":"Transcribed content here","nested":[1,{"x":[[]]}]}}"#;

    const V3: &str = r#"{"actor":{"agent_id":"bb-momo","cli":"claude","provider":"anthropic","type":"agent_cli"},
 "causationid":null,"correlationid":"fbfa7559-1341-4b09-b4c9-11ce42121ef8",
 "data":{"decided_at":"2026-08-15T09:53:09Z","repo":"bb"},
 "datacontenttype":"application/json","domain":"repo","id":"7b85b413-b335-4644-b70d-f8aa6333a6a3",
 "kind":"event","ordering_key":"repo:bb","producer":"hermes-agent:bb-momo","service":"bb",
 "source":"hermes://agent/bb-momo","specversion":"1.0","subject":"bloodbank.evt.v1.repo.decision.recorded",
 "time":"2026-08-15T09:53:09.250Z","type":"bloodbank.v1.repo.decision.recorded"}"#;

    fn msg(body: &[u8], rk: &str) -> RawMessage {
        RawMessage {
            received_us: 1,
            routing_key: rk.to_owned(),
            body: body.to_vec(),
            ..RawMessage::default()
        }
    }

    #[test]
    fn bloodbank_v1() {
        let m = msg(V1.as_bytes(), "transcription.voice.completed");
        let d = decode(&m);
        assert_eq!(d.header.body_kind, BodyKind::BloodbankV1);
        assert_eq!(
            d.id.as_deref(),
            Some("123e4567-e89b-12d3-a456-426614174000")
        );
        assert_eq!(d.kind, "transcription.voice.completed");
        assert_eq!(d.domain, "transcription");
        assert_eq!(d.status, Status::Completed);
        assert_eq!(d.source.as_deref(), Some("bloodbank-cli"));
        assert_eq!(d.header.agent.as_deref(), Some("momo"));
        assert_eq!(d.header.agent_type.as_deref(), Some("claude-code"));
        assert_eq!(d.header.session.as_deref(), Some("sess-9"));
        assert_eq!(d.header.correlation_ids, vec!["a1", "b2"]);
        assert_eq!(d.published_us, parse_rfc3339_us("2026-01-27T10:00:00Z"));
        // Borrowed from the body: no allocation for plain strings.
        assert!(matches!(d.kind, Cow::Borrowed(_)));
    }

    #[test]
    fn cloudevents_v3() {
        let m = msg(V3.as_bytes(), "bloodbank.evt.v1.repo.decision.recorded");
        let d = decode(&m);
        assert_eq!(d.header.body_kind, BodyKind::CloudEvents);
        assert_eq!(d.kind, "bloodbank.v1.repo.decision.recorded");
        assert_eq!(d.domain, "repo");
        assert_eq!(d.source.as_deref(), Some("hermes://agent/bb-momo"));
        assert_eq!(d.header.agent.as_deref(), Some("bb-momo"));
        assert_eq!(d.header.agent_type.as_deref(), Some("agent_cli"));
        assert_eq!(
            d.header.correlation_ids,
            vec!["fbfa7559-1341-4b09-b4c9-11ce42121ef8"]
        );
        assert_eq!(d.header.causation_id, None);
        assert_eq!(d.published_us, parse_rfc3339_us("2026-08-15T09:53:09.250Z"));
        assert_eq!(d.status, Status::Completed);
    }

    #[test]
    fn amqp_properties_fill_gaps() {
        let props = AmqpProps {
            message_id: Some("m-1".into()),
            timestamp_secs: Some(1_767_225_600),
            app_id: Some("hookd".into()),
            correlation_id: Some("c-1".into()),
            kind: Some("tool.mutation.write".into()),
            ..AmqpProps::default()
        };
        let m = RawMessage {
            props: Some(Box::new(props)),
            ..msg(br#"{"path":"/tmp/x"}"#, "tool.mutation.write")
        };
        let d = decode(&m);
        assert_eq!(d.header.body_kind, BodyKind::OtherJson);
        assert_eq!(d.id.as_deref(), Some("m-1"));
        assert_eq!(d.source.as_deref(), Some("hookd"));
        assert_eq!(d.kind, "tool.mutation.write");
        assert_eq!(d.domain, "tool");
        assert_eq!(d.published_us, Some(1_767_225_600_000_000));
        assert_eq!(d.header.correlation_ids, vec!["c-1"]);
    }

    #[test]
    fn routing_key_is_the_last_resort_type() {
        let m = msg(b"[1,2,3]", "llm.response");
        let d = decode(&m);
        assert_eq!(d.header.body_kind, BodyKind::OtherJson);
        assert_eq!(d.kind, "llm.response");
        assert_eq!(d.domain, "llm");
    }

    #[test]
    fn junk_is_classified_not_rejected() {
        assert_eq!(read_header(b"").body_kind, BodyKind::Empty);
        assert_eq!(read_header(b"hello, not json").body_kind, BodyKind::Text);
        assert_eq!(
            read_header(b"{\"event_type\": \"x\"").body_kind,
            BodyKind::Text
        );
        assert_eq!(
            read_header(&[0xff, 0xfe, 0x00, 0x80]).body_kind,
            BodyKind::Binary
        );
        assert_eq!(
            read_header(b"\"just a string\"").body_kind,
            BodyKind::OtherJson
        );
        assert_eq!(
            read_header(b"{\"a\":1,\"a\":2}").body_kind,
            BodyKind::OtherJson
        );
        // Deep nesting is valid JSON: skipped without recursion, so the header still reads.
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(read_header(deep.as_bytes()).body_kind, BodyKind::OtherJson);
        let deep_payload = format!(
            r#"{{"event_type":"x.y","payload":{}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let h = read_header(deep_payload.as_bytes());
        assert_eq!(
            (h.body_kind, h.kind.as_deref()),
            (BodyKind::BloodbankV1, Some("x.y"))
        );
        // Building a tree of it is refused with a reason (the detail pane shows it raw).
        assert!(json_error(deep.as_bytes()).unwrap().contains("recursion"));
        assert_eq!(json_error(b"{}"), None);
        assert_eq!(nesting_depth(deep.as_bytes(), usize::MAX), 10_000);
        assert_eq!(nesting_depth(br#"{"a":"[[[[","b":[{}]}"#, 100), 3);
        assert_eq!(nesting_depth(br#"{"a":"\"[[","b":1}"#, 100), 1);
    }

    #[test]
    fn wrong_field_types_do_not_lose_the_rest() {
        let body = br#"{"event_id":42,"event_type":"agent.thread.prompt","timestamp":{"oops":1},
            "source":["a"],"correlation_ids":"single","agent_context":"nope","payload":null}"#;
        let h = read_header(body);
        assert_eq!(h.body_kind, BodyKind::BloodbankV1);
        assert_eq!(h.id.as_deref(), Some("42"));
        assert_eq!(h.kind.as_deref(), Some("agent.thread.prompt"));
        assert_eq!(h.published_us, None);
        assert_eq!(h.source, None);
        assert_eq!(h.correlation_ids, vec!["single"]);
        assert_eq!(h.agent, None);
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let h = read_header(br#"{"event_type":"a.b\u002ec","event_id":"x\"y"}"#);
        assert_eq!(h.kind.as_deref(), Some("a.b.c"));
        assert_eq!(h.id.as_deref(), Some("x\"y"));
    }

    #[test]
    fn epoch_timestamps() {
        let h = read_header(br#"{"event_type":"a.b","timestamp":1767225600123}"#);
        assert_eq!(h.published_us, Some(1_767_225_600_123_000));
    }
}
