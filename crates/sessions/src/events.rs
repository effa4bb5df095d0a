//! The lifecycle events sessions publish, in the platform's shapes (the retired session
//! manager's `jelmore.*` events) inside Bloodbank v1 envelopes; the routing key is the type.

use candybar_core::time::{Micros, format_rfc3339, now_us};
use serde_json::{Value, json};

use crate::model::Session;
use crate::store::Outgoing;

pub const STARTED: &str = "jelmore.session.started";
pub const COMPLETED: &str = "jelmore.session.completed";
pub const PAUSED: &str = "jelmore.session.paused";
pub const RESUMED: &str = "jelmore.session.resumed";
pub const COMMAND_EXECUTED: &str = "jelmore.command.executed";
pub const COMMAND_FAILED: &str = "jelmore.command.failed";

/// A Bloodbank v1 envelope from candybar on `host` (`kind`: what in candybar sent it), routed by
/// its type; `extra` fields (an agent context, correlation ids) are added at the top.
pub fn envelope_v1(
    host: &str,
    kind: &str,
    event_type: &str,
    payload: Value,
    extra: Value,
) -> Outgoing {
    let mut body = json!({
        "event_id": uuid::Uuid::new_v4().to_string(),
        "event_type": event_type,
        "timestamp": format_rfc3339(now_us()),
        "version": "1.0.0",
        "source": {"host": host, "type": kind, "app": "candybar"},
    });
    if let (Value::Object(top), Value::Object(more)) = (&mut body, extra) {
        top.extend(more);
    }
    body["payload"] = payload;
    Outgoing {
        routing_key: event_type.to_owned(),
        body: body.to_string().into_bytes(),
    }
}

/// The correlation ids field for `id`, when there is one.
fn correlation(id: Option<&str>) -> Value {
    id.map_or_else(|| json!({}), |c| json!({"correlation_ids": [c]}))
}

/// A Bloodbank v1 envelope of `event_type` about `session`.
fn envelope(event_type: &str, session: &Session, payload: Value) -> Outgoing {
    let mut extra = correlation(session.correlation_id.as_deref());
    extra["agent_context"] = json!({
        "type": session.provider.as_str(),
        "name": session.name,
        "instance_id": session.id,
    });
    envelope_v1(&session.host, "agent_session", event_type, payload, extra)
}

/// The session's command with any URL password masked (arguments are said on the bus and on
/// screens).
pub fn masked_command(s: &Session) -> Vec<String> {
    s.command
        .iter()
        .map(|a| candybar_core::redact::mask_secrets_in(a))
        .collect()
}

/// `jelmore.session.started` `{session_id, provider, worktree_path, agent_id, metadata}`.
pub fn started(s: &Session) -> Outgoing {
    envelope(
        STARTED,
        s,
        json!({
            "session_id": s.id,
            "provider": s.provider.as_str(),
            "worktree_path": s.dir.to_string_lossy(),
            "agent_id": s.name,
            "metadata": s.metadata,
            "command": masked_command(s),
            "host": s.host,
        }),
    )
}

/// `jelmore.session.completed` `{session_id, duration_seconds, prompt_count, success, summary}`:
/// `success` when it exited 0 or the person ended it; `summary` is its last lines.
pub fn completed(s: &Session, summary: &str, now: Micros) -> Outgoing {
    let success = s.exit_code == Some(0) || s.state == crate::model::SessionState::Terminated;
    envelope(
        COMPLETED,
        s,
        json!({
            "session_id": s.id,
            "duration_seconds": s.duration_us(now) as f64 / 1e6,
            "prompt_count": s.prompt_count,
            "success": success,
            "summary": summary,
            "state": s.state.as_str(),
            "exit_code": s.exit_code,
            "reason": s.reason,
        }),
    )
}

/// `jelmore.session.paused` `{session_id, paused_at}`.
pub fn paused(s: &Session, now: Micros) -> Outgoing {
    envelope(
        PAUSED,
        s,
        json!({
            "session_id": s.id,
            "paused_at": format_rfc3339(now),
            "duration_seconds": s.duration_us(now) as f64 / 1e6,
        }),
    )
}

/// `jelmore.session.resumed` `{session_id, resumed_at, paused_seconds}`.
pub fn resumed(s: &Session, paused_us: Micros, now: Micros) -> Outgoing {
    envelope(
        RESUMED,
        s,
        json!({
            "session_id": s.id,
            "resumed_at": format_rfc3339(now),
            "paused_seconds": (now - paused_us).max(0) as f64 / 1e6,
        }),
    )
}

/// `jelmore.command.failed` for a request from the bus that was not carried out: what is known
/// of it (`request`: its ids, provider, mode), with its correlation id so the requester hears.
pub fn request_failed(
    host: &str,
    mut request: Value,
    correlation_id: Option<&str>,
    error: &str,
) -> Outgoing {
    request["command"] = json!(crate::requests::REQUESTED);
    request["error"] = json!(error);
    envelope_v1(
        host,
        "agent_session",
        COMMAND_FAILED,
        request,
        correlation(correlation_id),
    )
}

/// `jelmore.command.executed` / `failed`: a command given to a running session.
pub fn command(s: &Session, command: &str, error: Option<&str>) -> Outgoing {
    let (event_type, payload) = match error {
        None => (
            COMMAND_EXECUTED,
            json!({"session_id": s.id, "command": command}),
        ),
        Some(e) => (
            COMMAND_FAILED,
            json!({"session_id": s.id, "command": command, "error": e}),
        ),
    };
    envelope(event_type, s, payload)
}
