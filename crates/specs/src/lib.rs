//! Specs: a feature talked through with the architect (an LLM behind an OpenAI-compatible chat
//! endpoint), written down as versioned Markdown a person can read, approve and hand to the
//! platform's agents as a GitHub issue.
//!
//! - [`store`]: `.sentra/specs/{project}/{spec-id}/v{N}.md` plus `meta.json`, in a project's
//!   directory; safe with two writers, edits made by hand picked up.
//! - [`chat`]: the architect's endpoint (`/chat/completions`, streamed or not).
//! - [`conversation`]: what was said and how long answers took, in SQLite.
//! - [`github`]: issues and labels through GitHub's REST API.
//! - [`events`]: `sentra.spec.*` and `sentra.issue.created` on the bus.
//! - [`prompt`]: what the architect is told (its role, the project's context).

pub mod chat;
pub mod conversation;
pub mod events;
pub mod github;
pub mod prompt;
pub mod store;

pub use store::{Meta, SpecError, SpecStore, Status};
