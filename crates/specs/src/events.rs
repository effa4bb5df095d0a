//! What specs say on the bus (Bloodbank v1 envelopes, routed by type), so the platform's agents
//! and Mission Control see a spec from its first version to its issue.

use candybar_sessions::events::envelope_v1;
use candybar_sessions::store::Outgoing;
use serde_json::{Value, json};

use crate::store::{Meta, SpecStore};

pub const CREATED: &str = "sentra.spec.created";
pub const VERSIONED: &str = "sentra.spec.versioned";
pub const APPROVED: &str = "sentra.spec.approved";
pub const REJECTED: &str = "sentra.spec.rejected";
pub const ISSUE_CREATED: &str = "sentra.issue.created";

fn payload(store: &SpecStore, meta: &Meta, version: u32) -> Value {
    json!({
        "spec_id": meta.id,
        "project": meta.project,
        "title": meta.title,
        "version": version,
        "status": meta.status.as_str(),
        "path": store.version_path(meta, version).to_string_lossy(),
        "conversation_id": meta.conversation,
    })
}

fn envelope(host: &str, event_type: &str, payload: Value, meta: &Meta) -> Outgoing {
    envelope_v1(
        host,
        "spec",
        event_type,
        payload,
        json!({"correlation_ids": [meta.id]}),
    )
}

/// `sentra.spec.created` (its first version) or `sentra.spec.versioned` (a later one).
pub fn versioned(host: &str, store: &SpecStore, meta: &Meta) -> Outgoing {
    let n = meta.latest();
    let kind = if n <= 1 { CREATED } else { VERSIONED };
    envelope(host, kind, payload(store, meta, n), meta)
}

/// `sentra.spec.approved` with the version approved.
pub fn approved(host: &str, store: &SpecStore, meta: &Meta) -> Outgoing {
    let n = meta.approved_version.unwrap_or_else(|| meta.latest());
    envelope(host, APPROVED, payload(store, meta, n), meta)
}

/// `sentra.spec.rejected`.
pub fn rejected(host: &str, store: &SpecStore, meta: &Meta) -> Outgoing {
    envelope(host, REJECTED, payload(store, meta, meta.latest()), meta)
}

/// `sentra.issue.created` with the issue's URL.
pub fn issue_created(host: &str, store: &SpecStore, meta: &Meta) -> Option<Outgoing> {
    let issue = meta.issue.as_ref()?;
    let mut p = payload(store, meta, issue.version);
    p["repo"] = issue.repo.clone().into();
    p["issue_number"] = issue.number.into();
    p["url"] = issue.url.clone().into();
    p["labels"] = json!([crate::github::LABEL]);
    Some(envelope(host, ISSUE_CREATED, p, meta))
}
