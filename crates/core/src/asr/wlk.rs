//! WhisperLiveKit's WebSocket protocol (as WhisperLiveKit 0.2.26 speaks it), the server's side,
//! so its browser page, its browser extension and its `wlk-test` client can use candybar's
//! server: a `config` message first, then the whole transcript on every change (`lines[]` with
//! speaker, text, start and end as `H:MM:SS.cc`, the uncommitted `buffer_transcription`, the
//! `remaining_time_*` lags, a `status`), or with `?mode=diff` a `snapshot` then `diff`s
//! numbered by `seq`; `ready_to_stop` once the audio after the client's empty frame is done.

use serde_json::{Value, json};

/// WhisperLiveKit's first message: whether the client should send raw PCM (`useAudioWorklet`)
/// rather than its browser's encoded audio, and the output mode.
pub fn config_message(pcm_input: bool, diff: bool) -> String {
    json!({
        "type": "config",
        "useAudioWorklet": pcm_input,
        "mode": if diff { "diff" } else { "full" },
    })
    .to_string()
}

/// The message after the last result of a session.
pub const READY_TO_STOP: &str = r#"{"type":"ready_to_stop"}"#;

/// A bad session parameter, as WhisperLiveKit reports it before closing with 4400.
pub fn error_message(error: &str) -> String {
    json!({ "type": "error", "error": error }).to_string()
}

/// `H:MM:SS.cc`, as WhisperLiveKit writes times.
pub fn format_time(ms: u64) -> String {
    let cs = (ms + 5) / 10;
    let (h, m, s, c) = (cs / 360_000, cs / 6000 % 60, cs / 100 % 60, cs % 100);
    format!("{h}:{m:02}:{s:02}.{c:02}")
}

/// A committed line of the transcript.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    pub start_ms: u64,
    pub end_ms: u64,
    /// ISO 639-1, when known.
    pub language: Option<String>,
}

impl Line {
    fn to_json(&self) -> Value {
        let mut v = json!({
            // 1: no diarization (WhisperLiveKit's speaker for undiarized speech).
            "speaker": 1,
            "text": self.text,
            "start": format_time(self.start_ms),
            "end": format_time(self.end_ms),
        });
        if let Some(l) = &self.language {
            v["detected_language"] = json!(l);
        }
        v
    }
}

/// What a session has produced so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub lines: Vec<Line>,
    /// Words heard but not committed yet.
    pub buffer: String,
    /// Set when something went wrong (`status` becomes `error`).
    pub error: Option<String>,
    /// How far the transcript lags behind the audio received, in ms.
    pub lag_ms: u64,
}

impl State {
    /// The full-mode message: every line, the buffer, the lags and the status.
    pub fn to_json(&self) -> Value {
        let status = if self.error.is_some() {
            "error"
        } else if self.lines.is_empty() && self.buffer.is_empty() {
            "no_audio_detected"
        } else {
            "active_transcription"
        };
        let lag = self.lag_ms as f64 / 1000.0;
        let mut v = json!({
            "status": status,
            "lines": self.lines.iter().map(Line::to_json).collect::<Vec<_>>(),
            "buffer_transcription": self.buffer,
            "buffer_diarization": "",
            "buffer_translation": "",
            "remaining_time_transcription": lag,
            "remaining_time_transcription_processing": lag,
            "remaining_time_transcription_policy": 0.0,
            "remaining_time_diarization": 0.0,
        });
        if let Some(e) = &self.error {
            v["error"] = json!(e);
        }
        v
    }
}

/// Turns states into messages: the full state each time, or (diff mode) a `snapshot` first and
/// then `diff`s carrying the lines from the first that changed, numbered by `seq` from 1.
#[derive(Debug, Default)]
pub struct Messages {
    diff: bool,
    seq: u64,
    sent: Vec<Value>,
    last: Option<String>,
}

impl Messages {
    pub fn new(diff: bool) -> Self {
        Self {
            diff,
            ..Self::default()
        }
    }

    /// Whether the client asked for diffs (`?mode=diff`).
    pub fn diff(&self) -> bool {
        self.diff
    }

    /// The message for `state`, or `None` when nothing changed since the last one.
    pub fn next(&mut self, state: &State) -> Option<String> {
        let full = state.to_json();
        let text = full.to_string();
        if self.last.as_deref() == Some(text.as_str()) {
            return None;
        }
        self.last = Some(text.clone());
        if !self.diff {
            return Some(text);
        }
        self.seq += 1;
        let lines: Vec<Value> = full["lines"].as_array().cloned().unwrap_or_default();
        if self.seq == 1 {
            let mut snap = full;
            snap["type"] = json!("snapshot");
            snap["seq"] = json!(1);
            self.sent = lines;
            return Some(snap.to_string());
        }
        let mut msg = json!({ "type": "diff", "seq": self.seq, "n_lines": lines.len() });
        for key in [
            "status",
            "buffer_transcription",
            "buffer_diarization",
            "buffer_translation",
            "remaining_time_transcription",
            "remaining_time_transcription_processing",
            "remaining_time_transcription_policy",
            "remaining_time_diarization",
            "error",
        ] {
            if let Some(v) = full.get(key) {
                msg[key] = v.clone();
            }
        }
        // Lines are never dropped from the front here; those after the common prefix go again.
        let common = self
            .sent
            .iter()
            .zip(&lines)
            .take_while(|(a, b)| a == b)
            .count();
        if common < lines.len() {
            msg["new_lines"] = json!(lines[common..]);
        }
        self.sent = lines;
        Some(msg.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, start_ms: u64, end_ms: u64) -> Line {
        Line {
            text: text.into(),
            start_ms,
            end_ms,
            language: None,
        }
    }

    #[test]
    fn times_are_written_as_whisperlivekit_writes_them() {
        assert_eq!(format_time(0), "0:00:00.00");
        assert_eq!(format_time(1_234), "0:00:01.23");
        assert_eq!(format_time(3_723_456), "1:02:03.46");
    }

    #[test]
    fn full_mode_sends_the_whole_state_when_it_changes() {
        let mut m = Messages::new(false);
        let mut s = State::default();
        let first: Value = serde_json::from_str(&m.next(&s).unwrap()).unwrap();
        assert_eq!(first["status"], "no_audio_detected");
        assert!(m.next(&s).is_none(), "nothing changed");
        s.buffer = "hello".into();
        let v: Value = serde_json::from_str(&m.next(&s).unwrap()).unwrap();
        assert_eq!(v["status"], "active_transcription");
        assert_eq!(v["buffer_transcription"], "hello");
        assert!(v.get("type").is_none(), "full-mode messages have no type");
        s.lines.push(Line {
            language: Some("de".into()),
            ..line("Hallo Welt.", 0, 1_500)
        });
        s.buffer.clear();
        let v: Value = serde_json::from_str(&m.next(&s).unwrap()).unwrap();
        assert_eq!(
            v["lines"][0],
            json!({"speaker": 1, "text": "Hallo Welt.", "start": "0:00:00.00", "end": "0:00:01.50", "detected_language": "de"})
        );
    }

    #[test]
    fn diff_mode_sends_a_snapshot_then_what_changed() {
        let mut m = Messages::new(true);
        let mut s = State {
            lines: vec![line("one", 0, 1000)],
            ..State::default()
        };
        let snap: Value = serde_json::from_str(&m.next(&s).unwrap()).unwrap();
        assert_eq!(
            (snap["type"].as_str(), snap["seq"].as_u64()),
            (Some("snapshot"), Some(1))
        );
        assert_eq!(snap["lines"].as_array().unwrap().len(), 1);
        s.lines.push(line("two", 1000, 2000));
        s.buffer = "thr".into();
        let d: Value = serde_json::from_str(&m.next(&s).unwrap()).unwrap();
        assert_eq!(
            (d["type"].as_str(), d["seq"].as_u64()),
            (Some("diff"), Some(2))
        );
        assert_eq!(d["n_lines"], 2);
        assert_eq!(d["new_lines"].as_array().unwrap().len(), 1);
        assert_eq!(d["new_lines"][0]["text"], "two");
        assert_eq!(d["buffer_transcription"], "thr");
        // A changed line goes again with everything after it.
        s.lines[1].text = "two!".into();
        let d: Value = serde_json::from_str(&m.next(&s).unwrap()).unwrap();
        assert_eq!(d["seq"], 3);
        assert_eq!(d["new_lines"][0]["text"], "two!");
        assert!(d.get("lines_pruned").is_none());
    }

    #[test]
    fn the_first_and_last_messages() {
        let c: Value = serde_json::from_str(&config_message(true, false)).unwrap();
        assert_eq!(
            c,
            json!({"type": "config", "useAudioWorklet": true, "mode": "full"})
        );
        let r: Value = serde_json::from_str(READY_TO_STOP).unwrap();
        assert_eq!(r["type"], "ready_to_stop");
        let e: Value = serde_json::from_str(&error_message("bad language")).unwrap();
        assert_eq!(e, json!({"type": "error", "error": "bad language"}));
    }
}
