//! candybar's agent sessions: coding agents (Claude Code, Gemini CLI, Codex, or any command)
//! started in a worktree, watched, attached to and ended — the role of the platform's retired
//! session manager.
//!
//! ## Layout
//! - [`model`]: a session, its provider and its state.
//! - [`tmux`]: the terminal multiplexer the sessions run in, output logged from the first byte.
//! - [`detect`]: a session's screen as text, and whether the agent is asking something.
//! - [`store`]: sessions and the outbox of their events in SQLite.
//! - [`manager`]: start, refresh (states, exits), resolve, send, end.
//! - [`events`]: the `jelmore.*` lifecycle events, in the platform's shapes.
//! - [`outbox`]: delivering those events to the broker, nothing lost while it is down.

pub mod detect;
pub mod events;
pub mod manager;
pub mod model;
pub mod outbox;
pub mod store;
pub mod tmux;

pub use manager::{SessionError, Sessions, StartRequest};
pub use model::{Provider, Session, SessionState};
pub use store::SqliteStore;
pub use tmux::{MuxSocket, Tmux};
