//! The `/asr` WebSocket protocol (DESIGN.md): one module for the server and the client.
//!
//! Client → server: binary frames of 16 kHz s16le mono PCM; optionally a first text frame
//! `{"type":"config",…}`; `{"type":"eos"}` or an empty binary frame ends the utterance.
//! Server → client: `ready` on connect, `partial`/`final` transcripts, `error`, `done` after eos.

use serde::{Deserialize, Serialize};

/// Protocol version sent in `ready`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Text frames a client may send.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientText {
    Config {
        #[serde(default)]
        sample_rate: Option<u32>,
        #[serde(default)]
        language: Option<String>,
    },
    Eos,
}

/// A transcript message's fields (the seed's fields always present).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct TranscriptMsg {
    pub text: String,
    pub is_final: bool,
    /// RFC 3339.
    pub timestamp: String,
    /// 0..1.
    pub confidence: f32,
    pub start_ms: u64,
    pub end_ms: u64,
    /// Utterance number on this connection, from 0.
    pub segment: u32,
    /// The spoken language (ISO 639-1), detected or asked for; absent from servers that do not
    /// say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// Messages the server sends.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Ready {
        model: String,
        sample_rate: u32,
        protocol: u32,
    },
    Partial(TranscriptMsg),
    Final(TranscriptMsg),
    Error {
        message: String,
    },
    Done,
}

impl ServerMsg {
    pub fn to_json(&self) -> String {
        // Serializing these plain types cannot fail; the fallback keeps the connection honest.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","message":"internal encoding error"}"#.to_owned()
        })
    }
}

/// What a text frame from a client means; junk is an error to report, never a panic.
pub fn parse_client_text(text: &str) -> Result<ClientText, String> {
    serde_json::from_str(text).map_err(|e| {
        let shown: String = text.chars().take(80).collect();
        format!("unreadable text frame ({e}): expected {{\"type\":\"config\",…}} or {{\"type\":\"eos\"}}, got {shown:?}")
    })
}

/// Routing key of the bus event a transcript becomes (the platform's talkytonny app's).
pub const TRANSCRIPT_ROUTING_KEY: &str = "talkytonny.transcription.completed";

/// A transcript as a Bloodbank v1 envelope on the bus, payload
/// `{text, duration_seconds, model, timestamp}`, from `host`. Used by `asr serve --amqp` and by
/// dictation.
#[must_use]
pub fn transcript_event(
    host: &str,
    routing_key: &str,
    text: &str,
    duration_ms: u64,
    model: &str,
    at_us: crate::time::Micros,
) -> crate::event::RawMessage {
    let time = crate::time::format_rfc3339(at_us);
    let id = format!("{:016x}-{:08x}", at_us, std::process::id());
    let body = serde_json::json!({
        "event_id": id,
        "event_type": routing_key,
        "timestamp": time,
        "version": "1.0.0",
        "source": { "host": host, "type": "manual", "app": "candybar" },
        "correlation_ids": [],
        "payload": { "text": text, "duration_seconds": duration_ms as f64 / 1000.0, "model": model, "timestamp": time },
    });
    crate::event::RawMessage {
        received_us: at_us,
        routing_key: routing_key.to_owned(),
        props: None,
        body: body.to_string().into_bytes(),
        precut: None,
    }
}

/// Routing key of the platform's canonical transcript event (DESIGN.md, "Voice").
pub const VOICE_COMPLETED_ROUTING_KEY: &str = "transcription.voice.completed";

/// A finished transcript as the canonical event describes it.
#[derive(Clone, Debug)]
pub struct VoiceTranscript<'a> {
    pub text: &'a str,
    pub duration_ms: u64,
    pub sample_rate: u32,
    pub model: &'a str,
    /// ISO 639-1, detected or asked for.
    pub language: &'a str,
    /// What produced it: `asr-server` (the WebSocket), `openai-api` (an upload), `dictation`.
    pub source: &'a str,
    /// The connection, upload or dictation session it belongs to.
    pub session_id: &'a str,
}

/// A transcript as the platform's canonical `transcription.voice.completed` event, payload
/// `{text, timestamp, source, session_id, audio_metadata{duration_seconds, sample_rate, model,
/// language}}`, in a Bloodbank v1 envelope from `host`.
#[must_use]
pub fn voice_completed_event(
    host: &str,
    t: &VoiceTranscript<'_>,
    at_us: crate::time::Micros,
) -> crate::event::RawMessage {
    let time = crate::time::format_rfc3339(at_us);
    let id = format!("{:016x}-{:08x}-v", at_us, std::process::id());
    let body = serde_json::json!({
        "event_id": id,
        "event_type": VOICE_COMPLETED_ROUTING_KEY,
        "timestamp": time,
        "version": "1.0.0",
        "source": { "host": host, "type": "manual", "app": "candybar" },
        "correlation_ids": [],
        "payload": {
            "text": t.text,
            "timestamp": time,
            "source": t.source,
            "session_id": t.session_id,
            "audio_metadata": {
                "duration_seconds": t.duration_ms as f64 / 1000.0,
                "sample_rate": t.sample_rate,
                "model": t.model,
                "language": t.language,
            },
        },
    });
    crate::event::RawMessage {
        received_us: at_us,
        routing_key: VOICE_COMPLETED_ROUTING_KEY.to_owned(),
        props: None,
        body: body.to_string().into_bytes(),
        precut: None,
    }
}

/// The routing key of a long transcript with its segments (a session of what plays, a call).
pub const AUDIO_TRANSCRIPTION_ROUTING_KEY: &str = "audio.transcription.completed";

/// A long transcript as the platform's `audio.transcription.completed` event, payload
/// `{transcription_id, transcript_text, language_detected, duration_seconds, segments[{start,
/// end, text}], source}` (seconds), in a Bloodbank v1 envelope from `host`.
#[must_use]
pub fn audio_transcription_event(
    host: &str,
    transcription_id: &str,
    t: &VoiceTranscript<'_>,
    segments: &[crate::voice::TimedText],
    at_us: crate::time::Micros,
) -> crate::event::RawMessage {
    let time = crate::time::format_rfc3339(at_us);
    let id = format!("{:016x}-{:08x}-a", at_us, std::process::id());
    let segments: Vec<serde_json::Value> = segments
        .iter()
        .map(|s| {
            serde_json::json!({
                "start": s.start_ms as f64 / 1000.0,
                "end": s.end_ms as f64 / 1000.0,
                "text": s.text,
            })
        })
        .collect();
    let body = serde_json::json!({
        "event_id": id,
        "event_type": AUDIO_TRANSCRIPTION_ROUTING_KEY,
        "timestamp": time,
        "version": "1.0.0",
        "source": { "host": host, "type": "manual", "app": "candybar" },
        "correlation_ids": [],
        "payload": {
            "transcription_id": transcription_id,
            "transcript_text": t.text,
            "language_detected": t.language,
            "duration_seconds": t.duration_ms as f64 / 1000.0,
            "segments": segments,
            "source": t.source,
            "model": t.model,
        },
    });
    crate::event::RawMessage {
        received_us: at_us,
        routing_key: AUDIO_TRANSCRIPTION_ROUTING_KEY.to_owned(),
        props: None,
        body: body.to_string().into_bytes(),
        precut: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_matches_the_design() {
        let m = ServerMsg::Final(TranscriptMsg {
            language: None,
            text: "hello world".into(),
            is_final: true,
            timestamp: "2026-11-22T04:00:00.000000Z".into(),
            confidence: 0.5,
            start_ms: 0,
            end_ms: 1200,
            segment: 3,
        });
        let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(v["type"], "final");
        assert_eq!(v["is_final"], true);
        assert_eq!(v["text"], "hello world");
        assert_eq!(v["segment"], 3);
        assert_eq!(serde_json::from_str::<ServerMsg>(&m.to_json()).unwrap(), m);
        assert_eq!(ServerMsg::Done.to_json(), r#"{"type":"done"}"#);
        let r: serde_json::Value = serde_json::from_str(
            &ServerMsg::Ready {
                model: "m".into(),
                sample_rate: 16_000,
                protocol: 1,
            }
            .to_json(),
        )
        .unwrap();
        assert_eq!(r["type"], "ready");
    }

    #[test]
    fn the_canonical_event_carries_the_platforms_fields() {
        let transcript = VoiceTranscript {
            text: "hallo welt",
            duration_ms: 1_500,
            sample_rate: 16_000,
            model: "ggml-tiny",
            language: "de",
            source: "openai-api",
            session_id: "upload-7",
        };
        let msg = voice_completed_event("box", &transcript, 1_700_000_000_000_000);
        assert_eq!(msg.routing_key, "transcription.voice.completed");
        let v: serde_json::Value = serde_json::from_slice(&msg.body).unwrap();
        assert_eq!(v["event_type"], "transcription.voice.completed");
        let p = &v["payload"];
        assert_eq!(p["text"], "hallo welt");
        assert_eq!(p["source"], "openai-api");
        assert_eq!(p["session_id"], "upload-7");
        assert_eq!(p["timestamp"], v["timestamp"]);
        assert_eq!(p["audio_metadata"]["duration_seconds"], 1.5);
        assert_eq!(p["audio_metadata"]["sample_rate"], 16_000);
        assert_eq!(p["audio_metadata"]["model"], "ggml-tiny");
        assert_eq!(p["audio_metadata"]["language"], "de");
        // It decodes as a platform event like any other.
        let decoded = crate::decode::decode(&msg);
        assert_eq!(decoded.kind, "transcription.voice.completed");
        assert_eq!(decoded.source.as_deref(), Some("candybar"));
    }

    #[test]
    fn a_long_transcript_carries_its_segments_in_seconds() {
        let transcript = VoiceTranscript {
            text: "first part second part",
            duration_ms: 3_600_500,
            sample_rate: 16_000,
            model: "ggml-tiny.en",
            language: "en",
            source: "system",
            session_id: "s",
        };
        let segments = [
            crate::voice::TimedText {
                start_ms: 0,
                end_ms: 1_500,
                text: "first part".into(),
            },
            crate::voice::TimedText {
                start_ms: 3_599_000,
                end_ms: 3_600_500,
                text: "second part".into(),
            },
        ];
        let msg = audio_transcription_event("box", "17", &transcript, &segments, 1);
        assert_eq!(msg.routing_key, "audio.transcription.completed");
        let v: serde_json::Value = serde_json::from_slice(&msg.body).unwrap();
        let p = &v["payload"];
        assert_eq!(p["transcription_id"], "17");
        assert_eq!(p["transcript_text"], "first part second part");
        assert_eq!(p["language_detected"], "en");
        assert_eq!(p["duration_seconds"], 3600.5);
        assert_eq!(p["source"], "system");
        assert_eq!(
            p["segments"][1],
            serde_json::json!({"start": 3599.0, "end": 3600.5, "text": "second part"})
        );
        assert_eq!(
            crate::decode::decode(&msg).kind,
            "audio.transcription.completed"
        );
    }

    #[test]
    fn client_frames() {
        assert_eq!(parse_client_text(r#"{"type":"eos"}"#), Ok(ClientText::Eos));
        assert_eq!(
            parse_client_text(r#"{"type":"config","sample_rate":16000,"language":"en","extra":1}"#),
            Ok(ClientText::Config {
                sample_rate: Some(16_000),
                language: Some("en".into())
            })
        );
        assert_eq!(
            parse_client_text(r#"{"type":"config"}"#),
            Ok(ClientText::Config {
                sample_rate: None,
                language: None
            })
        );
        let e = parse_client_text("garbage \u{1F600} ").unwrap_err();
        assert!(e.contains("unreadable text frame"), "{e}");
        assert!(parse_client_text(r#"{"type":"launch_missiles"}"#).is_err());
    }
}
