//! Sessions other services ask for over the bus: `agent.session.requested` `{provider, prompt,
//! session_id, continuation_mode new|continue|resume, metadata, correlation_id}`, read from the
//! envelope's `payload` (Bloodbank v1) or `data` (`CloudEvents` style), or a bare object.
//!
//! Running what a message says is a door into this machine, so `session serve` runs only the
//! agent CLIs it allows, in worktrees under its root, and any other command only when told to
//! (`--allow-custom`).

use std::path::{Path, PathBuf};

use candybar_core::event::RawMessage;
use serde_json::{Value, json};

use crate::events;
use crate::manager::{SessionError, Sessions, StartRequest};
use crate::model::{Provider, Session};

/// The event type (and routing key) of a request.
pub const REQUESTED: &str = "agent.session.requested";
/// The longest prompt a request may carry, in characters.
const PROMPT_MAX_CHARS: usize = 100_000;
/// The longest session id a requester may choose.
const ID_MAX_CHARS: usize = 64;

/// What to do with an existing session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Continuation {
    /// A new session.
    New,
    /// Give the prompt to the running session `session_id` (or start it again if it ended).
    Continue,
    /// As `Continue`; kept apart for the events.
    Resume,
}

impl Continuation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Continue => "continue",
            Self::Resume => "resume",
        }
    }
}

/// One `agent.session.requested`, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionRequest {
    /// The request event's own id (a redelivered request is handled once).
    pub event_id: Option<String>,
    pub provider: Provider,
    pub prompt: Option<String>,
    /// The id the requester chose for the session.
    pub session_id: Option<String>,
    pub mode: Continuation,
    pub metadata: Value,
    pub correlation_id: Option<String>,
}

fn text(v: &Value, key: &str) -> Result<Option<String>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("{key} must be a string, not {other}")),
    }
}

/// Reads a request; `Err` says what is wrong with it, in words.
pub fn parse(msg: &RawMessage) -> Result<SessionRequest, String> {
    let decoded = candybar_core::decode::decode(msg);
    let whole: Value =
        serde_json::from_slice(&msg.body).map_err(|e| format!("the request is not JSON ({e})"))?;
    let body = whole
        .get("payload")
        .or_else(|| whole.get("data"))
        .filter(|v| v.is_object())
        .unwrap_or(&whole);
    if !body.is_object() {
        return Err("the request is not a JSON object".into());
    }
    let provider = match text(body, "provider")? {
        None => Provider::Claude,
        Some(p) => Provider::parse(&p.to_lowercase())
            .ok_or_else(|| format!("unknown provider {p:?}: claude, gemini, codex or custom"))?,
    };
    let prompt = text(body, "prompt")?;
    if prompt
        .as_deref()
        .is_some_and(|p| p.trim_start().starts_with('-'))
    {
        // The agent CLI would read it as an option (`--dangerously-skip-permissions`…).
        return Err(
            "a prompt may not begin with '-' (the agent CLI would read it as an option)".into(),
        );
    }
    if prompt
        .as_ref()
        .is_some_and(|p| p.chars().count() > PROMPT_MAX_CHARS)
    {
        return Err(format!(
            "the prompt is longer than {PROMPT_MAX_CHARS} characters"
        ));
    }
    let session_id = text(body, "session_id")?;
    if let Some(id) = &session_id
        && (id.chars().count() > ID_MAX_CHARS
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        return Err(format!(
            "session_id {:?} is not 1 to {ID_MAX_CHARS} letters, digits, - or _",
            id.chars().take(80).collect::<String>()
        ));
    }
    let mode = match text(body, "continuation_mode")?.as_deref() {
        None | Some("new") => Continuation::New,
        Some("continue") => Continuation::Continue,
        Some("resume") => Continuation::Resume,
        Some(other) => {
            return Err(format!(
                "continuation_mode {other:?} is not new, continue or resume"
            ));
        }
    };
    let metadata = match body.get("metadata") {
        None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
        Some(m @ Value::Object(_)) => m.clone(),
        Some(other) => return Err(format!("metadata must be an object, not {other}")),
    };
    let correlation_id = text(body, "correlation_id")?.or_else(|| {
        decoded
            .header
            .correlation_ids
            .first()
            .map(ToString::to_string)
    });
    Ok(SessionRequest {
        event_id: decoded.header.id.as_deref().map(str::to_owned),
        provider,
        prompt,
        session_id,
        mode,
        metadata,
        correlation_id,
    })
}

/// What `session serve` allows a request.
#[derive(Clone, Debug)]
pub struct ServePolicy {
    /// Worktrees must be inside this directory.
    pub root: PathBuf,
    /// Where a request without a worktree runs.
    pub default_dir: PathBuf,
    /// Whether a request may run a command of its own (`provider: custom`,
    /// `metadata.command`).
    pub allow_custom: bool,
}

/// What became of a request.
#[derive(Clone, Debug, PartialEq)]
pub enum Handled {
    Started(Session),
    /// The prompt went to the running session.
    Sent(Session),
    /// Seen before (a redelivery): nothing done.
    Duplicate,
    /// It would start a session and none may start now: try again when one ends.
    Waits,
}

impl Sessions {
    /// Carries out `req` under `policy`. A request that cannot be carried out is answered on
    /// the bus (`jelmore.command.failed`, with its correlation id) and returned as the error; a
    /// request is handled once, by its event id and its session id. One that would start a
    /// session while no slot is free (`slot_free`) is checked, then left for later:
    /// [`Handled::Waits`].
    pub fn handle_request(
        &mut self,
        req: &SessionRequest,
        policy: &ServePolicy,
        slot_free: bool,
    ) -> Result<Handled, SessionError> {
        if let Some(id) = &req.event_id
            && self.store.seen(id)?
        {
            return Ok(Handled::Duplicate);
        }
        let result = self.carry_out(req, policy, slot_free);
        // Waiting for a slot, or for the state store to come back: tried again later, not
        // answered yet.
        if matches!(
            result,
            Ok(Handled::Waits) | Err(SessionError::Store(_) | SessionError::Redis(_))
        ) {
            return result;
        }
        if let Some(id) = &req.event_id {
            self.store.remember(id)?;
        }
        if let Err(e) = &result {
            let known = json!({
                "request_id": req.event_id,
                "session_id": req.session_id,
                "provider": req.provider.as_str(),
                "continuation_mode": req.mode.as_str(),
            });
            let failed = events::request_failed(
                &self.host,
                known,
                req.correlation_id.as_deref(),
                &e.to_string(),
            );
            self.store.queue(&[failed])?;
        }
        result
    }

    fn carry_out(
        &mut self,
        req: &SessionRequest,
        policy: &ServePolicy,
        slot_free: bool,
    ) -> Result<Handled, SessionError> {
        let known = match &req.session_id {
            Some(id) => self.get(id)?,
            None => None,
        };
        let mut metadata = req.metadata.clone();
        match (req.mode, known) {
            (Continuation::New, Some(_)) => return Ok(Handled::Duplicate),
            (Continuation::Continue | Continuation::Resume, Some(s))
                if s.provider == Provider::Custom && !policy.allow_custom =>
            {
                return Err(SessionError::Invalid(format!(
                    "{} runs a command of its own; this candybar types into such sessions only \
                     when started with `session serve --allow-custom`",
                    s.short_id()
                )));
            }
            (Continuation::Continue | Continuation::Resume, Some(s)) if s.state.is_running() => {
                let prompt = req.prompt.as_deref().ok_or_else(|| {
                    SessionError::Invalid(format!(
                        "a {} request for the running session {} needs a prompt",
                        req.mode.as_str(),
                        s.short_id()
                    ))
                })?;
                return self.send(&s.id, prompt).map(Handled::Sent);
            }
            (Continuation::Continue | Continuation::Resume, Some(s)) => {
                // It ended: a new session in its place, saying what it continues.
                metadata["continues"] = Value::String(s.id.clone());
                if metadata.get("worktree_path").is_none() {
                    metadata["worktree_path"] = Value::String(s.dir.to_string_lossy().into());
                }
                if metadata.get("name").is_none() {
                    metadata["name"] = Value::String(s.name.clone());
                }
            }
            _ => {}
        }
        let command = match (req.provider, metadata.get("command")) {
            (Provider::Custom, _) | (_, Some(_)) if !policy.allow_custom => {
                return Err(SessionError::Invalid(
                    "this candybar runs only the agent CLIs (claude, gemini, codex) for the bus; \
                     start `session serve --allow-custom` to let requests run their own command"
                        .into(),
                ));
            }
            (_, Some(Value::Array(parts))) => parts
                .iter()
                .map(|p| p.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()
                .ok_or_else(|| {
                    SessionError::Invalid("metadata.command must be an array of strings".into())
                })?,
            (_, Some(_)) => {
                return Err(SessionError::Invalid(
                    "metadata.command must be an array of strings".into(),
                ));
            }
            (_, None) => Vec::new(),
        };
        let dir = worktree(&metadata, policy)?;
        let fallback = req
            .session_id
            .as_deref()
            .or(req.event_id.as_deref())
            .map_or_else(|| "request".to_owned(), |id| format!("req-{}", short(id)));
        let name = metadata
            .get("name")
            .and_then(Value::as_str)
            .map_or(fallback, str::to_owned);
        if !slot_free {
            return Ok(Handled::Waits);
        }
        self.start(StartRequest {
            id: req.session_id.clone(),
            name,
            provider: req.provider,
            dir,
            prompt: req.prompt.clone(),
            command,
            metadata,
            correlation_id: req.correlation_id.clone(),
            multiplexer: None,
        })
        .map(Handled::Started)
    }
}

/// Answers a request that could not even be read (`reason`) on the bus, with what its envelope
/// says of it (its id and correlation id).
pub fn refuse_unreadable(
    sessions: &mut Sessions,
    msg: &RawMessage,
    reason: &str,
) -> Result<(), SessionError> {
    let decoded = candybar_core::decode::decode(msg);
    let correlation = decoded
        .header
        .correlation_ids
        .first()
        .map(ToString::to_string);
    let known = json!({"request_id": decoded.header.id.as_deref()});
    let failed = events::request_failed(&sessions.host, known, correlation.as_deref(), reason);
    sessions.store.queue(&[failed])?;
    Ok(())
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// The request's worktree (`metadata.worktree_path`, or `dir`), which must lie inside the root;
/// else the default directory.
fn worktree(metadata: &Value, policy: &ServePolicy) -> Result<PathBuf, SessionError> {
    let asked = metadata
        .get("worktree_path")
        .or_else(|| metadata.get("dir"))
        .and_then(Value::as_str);
    let Some(asked) = asked else {
        return Ok(policy.default_dir.clone());
    };
    let inside =
        |p: &Path| std::fs::canonicalize(&policy.root).is_ok_and(|root| p.starts_with(root));
    match std::fs::canonicalize(policy.root.join(asked)) {
        Ok(p) if inside(&p) => Ok(p),
        Ok(p) => Err(SessionError::Invalid(format!(
            "worktree {} is outside {} (session serve --root)",
            p.display(),
            policy.root.display()
        ))),
        Err(_) => Err(SessionError::Invalid(format!(
            "no worktree {asked:?} under {}",
            policy.root.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str) -> RawMessage {
        RawMessage {
            received_us: 0,
            routing_key: REQUESTED.into(),
            props: None,
            body: body.as_bytes().to_vec(),
            precut: None,
        }
    }

    #[test]
    fn requests_are_read_from_either_envelope_and_checked() {
        let v1 = r#"{"event_id":"e-1","event_type":"agent.session.requested","correlation_ids":["c-9"],
            "payload":{"provider":"gemini","prompt":"fix it","session_id":"s-1","continuation_mode":"continue","metadata":{"name":"fixer"}}}"#;
        let r = parse(&msg(v1)).unwrap();
        assert_eq!(r.event_id.as_deref(), Some("e-1"));
        assert_eq!(r.provider, Provider::Gemini);
        assert_eq!(r.mode, Continuation::Continue);
        assert_eq!(r.correlation_id.as_deref(), Some("c-9"));
        assert_eq!(r.metadata["name"], "fixer");
        let v3 = r#"{"id":"e-2","type":"agent.session.requested","specversion":"1.0","data":{"prompt":"go","correlation_id":"c-1"}}"#;
        let r = parse(&msg(v3)).unwrap();
        assert_eq!((r.provider, r.mode), (Provider::Claude, Continuation::New));
        assert_eq!(r.correlation_id.as_deref(), Some("c-1"));

        for (bad, says) in [
            ("not json", "not JSON"),
            ("[1,2]", "not a JSON object"),
            (r#"{"provider":"skynet"}"#, "unknown provider \"skynet\""),
            (r#"{"provider":7}"#, "provider must be a string"),
            (
                r#"{"continuation_mode":"later"}"#,
                "continuation_mode \"later\"",
            ),
            (r#"{"metadata":[1]}"#, "metadata must be an object"),
            (r#"{"session_id":"../../etc"}"#, "session_id \"../../etc\""),
            (
                r#"{"prompt":" --dangerously-skip-permissions"}"#,
                "may not begin with '-'",
            ),
        ] {
            let e = parse(&msg(bad)).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let huge = format!(r#"{{"prompt":"{}"}}"#, "x".repeat(PROMPT_MAX_CHARS + 1));
        assert!(parse(&msg(&huge)).unwrap_err().contains("longer than"));
    }
}
