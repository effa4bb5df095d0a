//! candybar's agent sessions: coding agents (Claude Code, Gemini CLI, Codex, or any command)
//! started in a worktree, watched, attached to and ended — the role of the platform's retired
//! session manager.
//!
//! ## Layout
//! - [`model`]: a session, its provider and its state.
//! - [`mux`]: the terminal multiplexers sessions run in, behind one face: [`tmux`] (output
//!   logged by `pipe-pane`) or [`zellij`] (whose pane runs the [`relay`], which logs it).
//! - [`detect`]: a session's screen as text, and whether the agent is asking something.
//! - [`store`]: sessions and the outbox of their events in SQLite.
//! - [`redis_state`]: sessions in Redis instead, for sessions that span hosts.
//! - [`manager`]: start, refresh (states, exits), resolve, send, end.
//! - [`events`]: the `jelmore.*` lifecycle events, in the platform's shapes.
//! - [`outbox`]: delivering those events to the broker, nothing lost while it is down.
//! - [`requests`]: `agent.session.requested` from the bus, checked and carried out under
//!   `session serve`'s policy.
//! - [`workflow`]: steps from a TOML file (commands, sessions, waits, events) with dependencies
//!   and a failure policy.

pub mod detect;
pub mod events;
pub mod manager;
pub mod model;
pub mod mux;
pub mod outbox;
pub mod redis_state;
pub mod relay;
pub mod requests;
pub mod store;
pub mod tmux;
pub mod workflow;
pub mod zellij;

pub use manager::{SessionError, Sessions, StartRequest, StateStore};
pub use model::{Multiplexer, Provider, Session, SessionState};
pub use mux::{Mux, MuxError};
pub use store::SqliteStore;
pub use tmux::{MuxSocket, Tmux};
pub use zellij::Zellij;
