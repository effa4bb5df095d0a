//! What a session is: its identity, the command it runs, where, and the state it is in.

use std::path::PathBuf;

use candybar_core::time::Micros;
use serde::{Deserialize, Serialize};

/// Where a session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Started; the command has printed nothing yet.
    Initializing,
    /// Printing (output within the idle time).
    Active,
    /// No output for the idle time.
    Idle,
    /// The agent asked something (a question, a confirmation) and waits for an answer.
    WaitingInput,
    /// Stopped by the user (`session pause`: SIGSTOP to its processes) until resumed.
    Paused,
    /// Ended: the command exited 0, or the user ended it.
    Terminated,
    /// Ended otherwise: a non-zero exit, killed from outside, or died while nobody watched.
    Failed,
}

impl SessionState {
    pub const ALL: [Self; 7] = [
        Self::Initializing,
        Self::Active,
        Self::Idle,
        Self::WaitingInput,
        Self::Paused,
        Self::Terminated,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initializing => "initializing",
            Self::Active => "active",
            Self::Idle => "idle",
            Self::WaitingInput => "waiting_input",
            Self::Paused => "paused",
            Self::Terminated => "terminated",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Still running (not terminated or failed).
    pub fn is_running(self) -> bool {
        !matches!(self, Self::Terminated | Self::Failed)
    }
}

/// Which agent CLI a session runs; it picks the default command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Claude,
    Gemini,
    Codex,
    /// Any command (`-- COMMAND ARGS…`).
    Custom,
}

impl Provider {
    pub const ALL: [Self; 4] = [Self::Claude, Self::Gemini, Self::Codex, Self::Custom];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Claude => "claude",
            Self::Gemini => "gemini",
            Self::Codex => "codex",
            Self::Custom => "custom",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The provider's CLI with `prompt` as its first message (interactive, so the person can
    /// attach and go on): `claude PROMPT`, `gemini -i PROMPT`, `codex PROMPT`. `None` for
    /// [`Provider::Custom`], which needs a command.
    pub fn command(self, prompt: Option<&str>) -> Option<Vec<String>> {
        let (program, flag) = match self {
            Self::Claude => ("claude", None),
            Self::Gemini => ("gemini", Some("-i")),
            Self::Codex => ("codex", None),
            Self::Custom => return None,
        };
        let mut cmd = vec![program.to_owned()];
        if let Some(p) = prompt.filter(|p| !p.trim().is_empty()) {
            cmd.extend(flag.map(str::to_owned));
            cmd.push(p.to_owned());
        }
        Some(cmd)
    }
}

/// The terminal multiplexer a session runs in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Multiplexer {
    #[default]
    Tmux,
    Zellij,
}

impl Multiplexer {
    pub const ALL: [Self; 2] = [Self::Tmux, Self::Zellij];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tmux => "tmux",
            Self::Zellij => "zellij",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// How to install it, for an error message.
    pub fn install_hint(self) -> &'static str {
        match self {
            Self::Tmux => "install it (Debian/Ubuntu: `sudo apt-get install tmux`)",
            Self::Zellij => {
                "install it (`cargo install --locked zellij`, or a release binary from \
                 https://github.com/zellij-org/zellij/releases), or use tmux"
            }
        }
    }
}

/// One agent session, as the state store keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// A UUID; commands also take a unique prefix or the name of a running session.
    pub id: String,
    pub name: String,
    pub provider: Provider,
    /// The working directory (the worktree).
    pub dir: PathBuf,
    /// The program and its arguments.
    pub command: Vec<String>,
    pub prompt: Option<String>,
    /// The host whose tmux runs it.
    pub host: String,
    /// The terminal multiplexer it runs in (sessions saved before zellij came: tmux).
    #[serde(default)]
    pub multiplexer: Multiplexer,
    /// The multiplexer's name for the session.
    pub mux_name: String,
    /// Everything the session printed, as the terminal received it.
    pub log: PathBuf,
    pub state: SessionState,
    pub created_us: Micros,
    pub ended_us: Option<Micros>,
    /// The command's exit status, when it exited by itself.
    pub exit_code: Option<i32>,
    /// When it last printed anything.
    pub last_output_us: Option<Micros>,
    /// Its last non-empty line of output (escape sequences removed).
    pub last_line: String,
    /// Why it ended, in words ("exited with 1", "ended by the user", …).
    pub reason: Option<String>,
    /// Prompts sent: the first one and each `session send`.
    pub prompt_count: u32,
    /// Given by whoever asked for the session (`agent.session.requested`'s `metadata`).
    pub metadata: serde_json::Value,
    /// The request's correlation id, carried on the lifecycle events.
    pub correlation_id: Option<String>,
    /// Since when it is paused (while [`SessionState::Paused`]).
    #[serde(default)]
    pub paused_us: Option<Micros>,
}

impl Session {
    /// The short id people type: the first 8 characters.
    pub fn short_id(&self) -> &str {
        self.id.get(..8).unwrap_or(&self.id)
    }

    /// How long it ran (to `now_us` while it runs).
    pub fn duration_us(&self, now_us: Micros) -> Micros {
        (self.ended_us.unwrap_or(now_us) - self.created_us).max(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_start_their_cli_with_the_prompt() {
        assert_eq!(
            Provider::Claude.command(Some("fix the tests")),
            Some(vec!["claude".into(), "fix the tests".into()])
        );
        assert_eq!(
            Provider::Gemini.command(Some("hi")),
            Some(vec!["gemini".into(), "-i".into(), "hi".into()])
        );
        assert_eq!(Provider::Codex.command(None), Some(vec!["codex".into()]));
        assert_eq!(Provider::Custom.command(Some("x")), None);
        for s in SessionState::ALL {
            assert_eq!(SessionState::parse(s.as_str()), Some(s));
        }
    }
}
