//! candybar's NDJSON format: one event per line, decoded fields beside the exact body. `tail
//! --format ndjson` and export write it; replay and `publish FILE` read it back (and also accept
//! lines that are bare event bodies). `query --gaps` also writes the times nothing was received,
//! a line of their own (`{"gap":{…}}`), which readers tell from events.

use std::borrow::Cow;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::event::{AmqpProps, BodyKind, Event, RawMessage, Status};
use super::text::printable;
use super::time::{Micros, format_rfc3339, parse_rfc3339_us};

/// Deepest nesting written as a JSON `body` (`serde_json`'s own reader stops at 128); deeper
/// bodies go out as `body_text`.
pub const MAX_NESTING: usize = 100;

#[derive(Serialize)]
struct Out<'a> {
    seq: u64,
    received_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    published_at: Option<String>,
    routing_key: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    domain: &'a str,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    correlation_ids: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    causation_id: Option<&'a str>,
    size: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
    body_kind: BodyKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    props: Option<&'a AmqpProps>,
    /// The body itself when it is JSON (byte for byte).
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_base64: Option<String>,
}

/// Appends `event` as one NDJSON line (with the newline).
pub fn write_ndjson(event: &Event, out: &mut Vec<u8>) {
    let body_str = std::str::from_utf8(&event.body).ok();
    // A cut body is no longer valid JSON, and one nested deeper than common parsers accept
    // would make the line unreadable: keep those as text.
    let readable = super::decode::nesting_depth(&event.body, MAX_NESTING + 1) <= MAX_NESTING;
    let raw = if event.body_kind.is_json() && !event.truncated && readable {
        // Only when the JSON value is the body byte for byte (RawValue drops surrounding
        // whitespace, which an export must keep), and strict JSON: RawValue lets a lone UTF-16
        // surrogate escape through, which would make the whole line unreadable to others.
        body_str
            .and_then(|s| serde_json::from_str::<&RawValue>(s).ok())
            .filter(|r| r.get().len() == event.body.len())
            .filter(|r| {
                !has_surrogate_escape(r.get().as_bytes())
                    || serde_json::from_str::<serde_json::Value>(r.get()).is_ok()
            })
    } else {
        None
    };
    let rec = Out {
        seq: event.seq,
        received_at: format_rfc3339(event.received_us),
        published_at: event.published_us.map(format_rfc3339),
        routing_key: &event.routing_key,
        kind: &event.kind,
        domain: &event.domain,
        status: event.status,
        id: event.id.as_deref(),
        source: event.source.as_deref(),
        agent: event.agent.as_deref(),
        agent_type: event.agent_type.as_deref(),
        session: event.session.as_deref(),
        correlation_ids: &event.correlation_ids,
        causation_id: event.causation_id.as_deref(),
        size: event.size_bytes,
        truncated: event.truncated,
        body_kind: event.body_kind,
        props: event.props.as_deref(),
        body: raw,
        body_text: if raw.is_none() { body_str } else { None },
        body_base64: (body_str.is_none())
            .then(|| base64::engine::general_purpose::STANDARD.encode(&event.body)),
    };
    // Serializing into a Vec only fails on a non-string map key, which this struct has none of.
    let _ = serde_json::to_writer(&mut *out, &rec);
    out.push(b'\n');
}

/// Whether `json` holds a `\\uD800`–`\\uDFFF` escape (which only a full parse can tell valid or
/// not); one pass, no allocation.
fn has_surrogate_escape(json: &[u8]) -> bool {
    memchr::memmem::find_iter(json, b"\\u").any(|i| {
        matches!(json.get(i + 2), Some(b'd' | b'D'))
            && matches!(
                json.get(i + 3),
                Some(b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
            )
    })
}

/// The formats the window exports a set of events in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// candybar's NDJSON: replayable with `--replay`.
    Ndjson,
    /// One JSON array of the same records.
    Json,
    /// A spreadsheet-friendly table of the decoded fields; the body as text (base64 if binary).
    Csv,
}

impl ExportFormat {
    pub const ALL: [Self; 3] = [Self::Ndjson, Self::Json, Self::Csv];

    #[must_use]
    pub fn extension(self) -> &'static str {
        match self {
            Self::Ndjson => "ndjson",
            Self::Json => "json",
            Self::Csv => "csv",
        }
    }

    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Ndjson => "NDJSON (replayable)",
            Self::Json => "JSON array",
            Self::Csv => "CSV",
        }
    }
}

const CSV_COLUMNS: [&str; 15] = [
    "seq",
    "received_at",
    "published_at",
    "type",
    "routing_key",
    "domain",
    "status",
    "id",
    "source",
    "agent",
    "session",
    "correlation_ids",
    "causation_id",
    "size",
    "body",
];

/// Writes events in one [`ExportFormat`], a chunk at a time: `begin`, `event` for each, `end`.
pub struct ExportEncoder {
    format: ExportFormat,
    written: u64,
}

impl ExportEncoder {
    #[must_use]
    pub fn new(format: ExportFormat) -> Self {
        Self { format, written: 0 }
    }

    pub fn begin(&mut self, out: &mut Vec<u8>) {
        match self.format {
            ExportFormat::Ndjson => {}
            ExportFormat::Json => out.extend_from_slice(b"["),
            ExportFormat::Csv => csv_record(out, CSV_COLUMNS.iter().map(|c| c.as_bytes())),
        }
    }

    pub fn event(&mut self, event: &Event, out: &mut Vec<u8>) {
        self.separate(out);
        self.record(event, out);
        self.written += 1;
    }

    /// One event's record alone, for a writer that places records itself ([`Self::place`]): an
    /// NDJSON line, a JSON array element (no separator), a CSV row.
    pub fn record(&self, event: &Event, out: &mut Vec<u8>) {
        match self.format {
            ExportFormat::Ndjson => write_ndjson(event, out),
            ExportFormat::Json => {
                write_ndjson(event, out);
                out.pop(); // the newline
            }
            ExportFormat::Csv => {
                // People open CSV in terminals and spreadsheets: control characters escaped.
                let text = |s: &str| printable(s).into_owned().into_bytes();
                let clean = |o: Option<&str>| text(o.unwrap_or_default());
                let body = match std::str::from_utf8(&event.body) {
                    Ok(s) => text(s),
                    Err(_) => base64::engine::general_purpose::STANDARD
                        .encode(&event.body)
                        .into_bytes(),
                };
                let fields: [Vec<u8>; 15] = [
                    event.seq.to_string().into_bytes(),
                    format_rfc3339(event.received_us).into_bytes(),
                    event
                        .published_us
                        .map(format_rfc3339)
                        .unwrap_or_default()
                        .into_bytes(),
                    text(&event.kind),
                    text(&event.routing_key),
                    text(&event.domain),
                    event.status.label().as_bytes().to_vec(),
                    clean(event.id.as_deref()),
                    clean(event.source.as_deref()),
                    clean(event.agent.as_deref()),
                    clean(event.session.as_deref()),
                    text(&event.correlation_ids.join(" ")),
                    clean(event.causation_id.as_deref()),
                    event.size_bytes.to_string().into_bytes(),
                    body,
                ];
                csv_record(out, fields.iter().map(Vec::as_slice));
            }
        }
    }

    /// A gap's record alone (see [`Self::record`]); CSV, a table of events, has none.
    pub fn gap_record(&self, gap: &GapRecord, out: &mut Vec<u8>) {
        if self.format == ExportFormat::Csv {
            return;
        }
        write_gap(gap, out);
        if self.format == ExportFormat::Json {
            out.pop(); // the newline
        }
    }

    /// Appends a record [`Self::record`] or [`Self::gap_record`] wrote, with what the format
    /// puts between records. Records written ahead and placed in another order stay a valid
    /// JSON array.
    pub fn place(&mut self, record: &[u8], out: &mut Vec<u8>) {
        if record.is_empty() {
            return;
        }
        self.separate(out);
        out.extend_from_slice(record);
        self.written += 1;
    }

    fn separate(&self, out: &mut Vec<u8>) {
        if self.format == ExportFormat::Json {
            out.extend_from_slice(if self.written == 0 { b"\n" } else { b",\n" });
        }
    }

    pub fn end(&mut self, out: &mut Vec<u8>) {
        if self.format == ExportFormat::Json {
            out.extend_from_slice(if self.written == 0 { b"]\n" } else { b"\n]\n" });
        }
    }
}

/// One CSV record (RFC 4180 quoting) appended to `out`.
fn csv_record<'a>(out: &mut Vec<u8>, fields: impl Iterator<Item = &'a [u8]>) {
    let mut w = csv::WriterBuilder::new().from_writer(&mut *out);
    // Writing to a Vec cannot fail.
    let _ = w.write_record(fields);
    let _ = w.flush();
}

#[derive(Deserialize)]
struct In<'a> {
    received_at: Option<String>,
    routing_key: Option<String>,
    props: Option<AmqpProps>,
    #[serde(borrow)]
    body: Option<&'a RawValue>,
    body_text: Option<String>,
    body_base64: Option<String>,
}

/// A time nothing was received (the source was disconnected, or nothing recorded), as `query
/// --gaps` writes it among the events: `{"gap":{"start":…,"end":…,"seconds":…,"reason":…,
/// "lossless":…}}`.
#[derive(Clone, Debug, PartialEq)]
pub struct GapRecord {
    pub start_us: Micros,
    pub end_us: Micros,
    pub reason: String,
    /// The broker kept what was published meanwhile: nothing is missing.
    pub lossless: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GapLine<'a> {
    #[serde(borrow)]
    gap: GapFields<'a>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GapFields<'a> {
    start: Cow<'a, str>,
    end: Cow<'a, str>,
    /// For people and scripts reading the file; readers take `start` and `end`.
    #[serde(default)]
    seconds: f64,
    #[serde(default, borrow)]
    reason: Cow<'a, str>,
    #[serde(default)]
    lossless: bool,
}

/// Appends `gap` as one NDJSON line (with the newline).
pub fn write_gap(gap: &GapRecord, out: &mut Vec<u8>) {
    let line = GapLine {
        gap: GapFields {
            start: format_rfc3339(gap.start_us).into(),
            end: format_rfc3339(gap.end_us).into(),
            seconds: (gap.end_us - gap.start_us) as f64 / 1e6,
            reason: gap.reason.as_str().into(),
            lossless: gap.lossless,
        },
    };
    // Serializing into a Vec only fails on a non-string map key, which this struct has none of.
    let _ = serde_json::to_writer(&mut *out, &line);
    out.push(b'\n');
}

/// The gap a line holds, if it is one of [`write_gap`]'s.
fn read_gap(line: &[u8]) -> Option<GapRecord> {
    if !line.starts_with(b"{\"gap\":") {
        return None;
    }
    let rec: GapLine<'_> = serde_json::from_slice(line).ok()?;
    let start_us = parse_rfc3339_us(&rec.gap.start)?;
    let end_us = parse_rfc3339_us(&rec.gap.end)?.max(start_us);
    Some(GapRecord {
        start_us,
        end_us,
        reason: rec.gap.reason.into_owned(),
        lossless: rec.gap.lossless,
    })
}

/// What a line of candybar's NDJSON holds.
#[derive(Debug)]
pub enum Record {
    Event(RawMessage),
    /// A time nothing was received (`query --gaps`), not an event.
    Gap(GapRecord),
}

/// Why a line could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LineError {
    #[error("invalid base64 in body_base64: {0}")]
    Base64(String),
    #[error("the line is empty")]
    Empty,
}

/// Reads one NDJSON line: our format (an event, or a gap `query --gaps` wrote), or else the line
/// itself as an event body (its routing key then comes from the envelope's type). `now_us` is
/// the receive time for lines without one.
pub fn read_ndjson_line(line: &[u8], now_us: Micros) -> Result<Record, LineError> {
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() {
        return Err(LineError::Empty);
    }
    if let Some(gap) = read_gap(trimmed) {
        return Ok(Record::Gap(gap));
    }
    if let Ok(rec) = serde_json::from_slice::<In<'_>>(trimmed) {
        let has_body = rec.body.is_some() || rec.body_text.is_some() || rec.body_base64.is_some();
        if let (Some(routing_key), true) = (rec.routing_key, has_body) {
            let body = match (rec.body, rec.body_text, rec.body_base64) {
                (Some(raw), _, _) => raw.get().as_bytes().to_vec(),
                (None, Some(text), _) => text.into_bytes(),
                (None, None, Some(b64)) => base64::engine::general_purpose::STANDARD
                    .decode(b64.as_bytes())
                    .map_err(|e| LineError::Base64(e.to_string()))?,
                (None, None, None) => Vec::new(),
            };
            let received_us = rec
                .received_at
                .as_deref()
                .and_then(parse_rfc3339_us)
                .unwrap_or(now_us);
            return Ok(Record::Event(RawMessage {
                received_us,
                routing_key,
                props: rec.props.filter(|p| !p.is_empty()).map(Box::new),
                body,
                precut: None,
            }));
        }
    }
    // A bare body: the routing key is the type the decoder finds.
    let header = super::decode::read_header(trimmed);
    let routing_key = header.kind.as_deref().unwrap_or_default().to_owned();
    Ok(Record::Event(RawMessage {
        received_us: now_us,
        routing_key,
        props: None,
        body: trimmed.to_vec(),
        precut: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventStore;

    fn export_all(store: &EventStore, n: u64, format: ExportFormat) -> Vec<u8> {
        let mut enc = ExportEncoder::new(format);
        let mut out = Vec::new();
        enc.begin(&mut out);
        store.for_each_event(0..n, |e| enc.event(&e, &mut out));
        enc.end(&mut out);
        out
    }

    #[test]
    fn json_and_csv_exports_hold_every_event() {
        let mut store = EventStore::default();
        let bodies: [&[u8]; 3] = [
            br#"{"event_type":"agent.thread.prompt","payload":{"text":"a, \"quoted\"\nline"}}"#,
            b"plain, text",
            &[0xff, 0x00],
        ];
        for (i, b) in bodies.iter().enumerate() {
            store.insert(&RawMessage {
                received_us: 1_767_225_600_000_000 + i as i64,
                routing_key: format!("rk.{i}"),
                body: b.to_vec(),
                ..RawMessage::default()
            });
        }
        let json: serde_json::Value =
            serde_json::from_slice(&export_all(&store, 3, ExportFormat::Json)).unwrap();
        let items = json.as_array().unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0]["type"], "agent.thread.prompt");
        assert_eq!(items[1]["body_text"], "plain, text");
        let empty: serde_json::Value =
            serde_json::from_slice(&export_all(&store, 0, ExportFormat::Json)).unwrap();
        assert_eq!(empty, serde_json::json!([]));

        let csv_bytes = export_all(&store, 3, ExportFormat::Csv);
        let mut reader = csv::Reader::from_reader(csv_bytes.as_slice());
        assert_eq!(reader.headers().unwrap().len(), CSV_COLUMNS.len());
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(&rows[0][3], "agent.thread.prompt");
        assert!(
            rows[0][14].contains("a, \\\"quoted\\\"\\nline"),
            "{}",
            &rows[0][14]
        );
        assert_eq!(&rows[1][14], "plain, text");
        assert_eq!(&rows[2][14], "/wA=", "binary bodies are base64");
    }

    #[test]
    fn round_trips_json_text_and_binary_bodies() {
        let mut store = EventStore::default();
        let bodies: Vec<Vec<u8>> = vec![
            br#"{"event_id":"e1","event_type":"agent.thread.prompt","payload":{"a":[1,2,{"b":"\u00e9"}]}}"#.to_vec(),
            b"plain text, not json".to_vec(),
            b" 4  ".to_vec(),
            b"{\"a\": 1}\n".to_vec(),
            vec![0xff, 0x00, 0xfe],
            Vec::new(),
        ];
        let props = AmqpProps {
            app_id: Some("hookd".into()),
            ..AmqpProps::default()
        };
        for (i, b) in bodies.iter().enumerate() {
            store.insert(&RawMessage {
                received_us: 1_767_225_600_000_000 + i as i64,
                routing_key: format!("rk.{i}"),
                props: Some(Box::new(props.clone())),
                body: b.clone(),
                precut: None,
            });
        }
        let mut out = Vec::new();
        store.for_each_event(0..bodies.len() as u64, |e| write_ndjson(&e, &mut out));
        let lines: Vec<&[u8]> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), bodies.len());
        for (i, line) in lines.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            assert_eq!(v["routing_key"], format!("rk.{i}"));
            let m = event(line, 0);
            assert_eq!(m.body, bodies[i], "line {i} body is byte-exact");
            assert_eq!(m.routing_key, format!("rk.{i}"));
            assert_eq!(m.received_us, 1_767_225_600_000_000 + i as i64);
            assert_eq!(m.props.as_deref(), Some(&props));
        }
        let first: serde_json::Value = serde_json::from_slice(lines[0]).unwrap();
        assert_eq!(first["type"], "agent.thread.prompt");
        assert_eq!(first["id"], "e1");
        assert_eq!(first["body"]["payload"]["a"][2]["b"], "é");
    }

    fn event(line: &[u8], now_us: Micros) -> RawMessage {
        match read_ndjson_line(line, now_us) {
            Ok(Record::Event(m)) => m,
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn gaps_read_back_as_gaps_and_stay_valid_json_among_events() {
        let gap = GapRecord {
            start_us: 1_767_225_600_000_000,
            end_us: 1_767_225_660_500_000,
            reason: "broker \"down\"\nagain".into(),
            lossless: true,
        };
        let mut line = Vec::new();
        write_gap(&gap, &mut line);
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["gap"]["seconds"], 60.5);
        assert_eq!(v["gap"]["start"], "2026-01-01T00:00:00.000000Z");
        match read_ndjson_line(&line, 0) {
            Ok(Record::Gap(back)) => assert_eq!(back, gap),
            other => panic!("a gap line read as {other:?}"),
        }
        // Not quite a gap (another key, a time that is not one): a bare body, as before.
        for junk in [
            &br#"{"gap":{"start":"2026-01-01T00:00:00Z","end":"x"}}"#[..],
            br#"{"gap":{"start":"2026-01-01T00:00:00Z","end":"2026-01-01T00:00:01Z"},"b":1}"#,
        ] {
            assert!(matches!(read_ndjson_line(junk, 0), Ok(Record::Event(_))));
        }

        // Records written ahead and placed in another order make one valid array.
        let mut store = EventStore::default();
        for i in 0..2 {
            store.insert(&RawMessage {
                received_us: i,
                routing_key: format!("rk.{i}"),
                body: b"{}".to_vec(),
                ..RawMessage::default()
            });
        }
        let mut enc = ExportEncoder::new(ExportFormat::Json);
        let mut records = Vec::new();
        store.for_each_event(0..2, |e| {
            let mut r = Vec::new();
            enc.record(&e, &mut r);
            records.push(r);
        });
        let mut r = Vec::new();
        enc.gap_record(&gap, &mut r);
        records.push(r);
        let mut out = Vec::new();
        enc.begin(&mut out);
        for r in records.iter().rev() {
            enc.place(r, &mut out);
        }
        enc.end(&mut out);
        let all: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0]["gap"]["lossless"], true);
        assert_eq!(all[2]["routing_key"], "rk.0");
        // CSV is a table of events: a gap has no row there.
        let csv = ExportEncoder::new(ExportFormat::Csv);
        let mut r = Vec::new();
        csv.gap_record(&gap, &mut r);
        assert!(r.is_empty());
    }

    #[test]
    fn bare_envelopes_and_junk_lines() {
        let m = event(br#"{"event_type":"llm.response","payload":{}}"#, 5);
        assert_eq!(m.routing_key, "llm.response");
        assert_eq!(m.received_us, 5);
        let m = event(b"not json at all", 5);
        assert_eq!(m.routing_key, "");
        assert_eq!(m.body, b"not json at all");
        assert_eq!(read_ndjson_line(b"   ", 5).unwrap_err(), LineError::Empty);
        let e = read_ndjson_line(br#"{"routing_key":"a","body_base64":"!!!"}"#, 5).unwrap_err();
        assert!(matches!(e, LineError::Base64(_)));
    }
}
