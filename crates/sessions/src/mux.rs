//! The terminal multiplexers sessions run in — tmux ([`crate::tmux`]) or zellij
//! ([`crate::zellij`]) — behind one face, [`Multiplex`], and [`Mux`], which holds both and
//! picks one for a new session: the one asked for, else the configured one, else tmux where it
//! is installed, else zellij.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

pub use crate::model::Multiplexer;
use crate::tmux::Tmux;
use crate::zellij::Zellij;

#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    #[error("{} is not installed: {}", .0.as_str(), .0.install_hint())]
    Missing(Multiplexer),
    #[error("{} {what} failed: {reason}", mux.as_str())]
    Failed {
        mux: Multiplexer,
        what: &'static str,
        reason: String,
    },
}

/// What a session runs.
pub struct Launch<'a> {
    /// The multiplexer's session name (see [`mux_name`]).
    pub name: &'a str,
    pub dir: &'a Path,
    pub command: &'a [String],
    /// Appended with everything the terminal shows.
    pub log: &'a Path,
    /// Written with the exit status when the command ends.
    pub exit_file: &'a Path,
    /// Where a relay (zellij) writes its process id.
    pub pid_file: &'a Path,
}

/// What candybar asks of a terminal multiplexer.
pub trait Multiplex {
    /// Starts `launch` in a detached session, its output logged from the first byte.
    fn start(&self, launch: &Launch<'_>) -> Result<(), MuxError>;
    /// The names of the sessions it runs (none when none run).
    fn running(&self) -> Result<HashSet<String>, MuxError>;
    /// What the session's screen shows now, as text.
    fn screen(&self, name: &str) -> Result<String, MuxError>;
    /// Types `text` into the session, then Enter.
    fn send_line(&self, name: &str, text: &str) -> Result<(), MuxError>;
    /// Ctrl-C, as a person would press it.
    fn interrupt(&self, name: &str) -> Result<(), MuxError>;
    /// The process the session's command runs under (its processes are its descendants).
    fn leader_pid(&self, name: &str, pid_file: &Path) -> Result<u32, MuxError>;
    /// Whether the session runs, when it can be told without asking the multiplexer for every
    /// session it has (`None`: ask [`Multiplex::running`]).
    fn is_alive(&self, _name: &str, _pid_file: &Path) -> Option<bool> {
        None
    }
    /// Ends the session at once (its processes get SIGHUP).
    fn kill(&self, name: &str) -> Result<(), MuxError>;
    /// The command that attaches a terminal to the session.
    fn attach_command(&self, name: &str) -> Command;
    /// How a person attaches by hand, as a shell line.
    fn attach_words(&self, name: &str) -> String;
}

/// Runs `command` (the multiplexer's `what`): its output, or why it failed in the
/// multiplexer's words (stderr, else stdout); `Missing` when the program is not there.
pub(crate) fn run_checked(
    mux: Multiplexer,
    what: &'static str,
    command: &mut Command,
) -> Result<std::process::Output, MuxError> {
    let out = command.output().map_err(|e| spawn_error(mux, what, &e))?;
    if out.status.success() {
        return Ok(out);
    }
    let mut reason = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if reason.is_empty() {
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .clone_into(&mut reason);
    }
    Err(MuxError::Failed { mux, what, reason })
}

/// A multiplexer that could not be run: `Missing` when it is not installed.
pub(crate) fn spawn_error(mux: Multiplexer, what: &'static str, e: &std::io::Error) -> MuxError {
    if e.kind() == std::io::ErrorKind::NotFound {
        MuxError::Missing(mux)
    } else {
        MuxError::Failed {
            mux,
            what,
            reason: e.to_string(),
        }
    }
}

/// Both multiplexers, and which one new sessions use.
#[derive(Clone, Debug, Default)]
pub struct Mux {
    pub tmux: Tmux,
    pub zellij: Zellij,
    /// `[sessions] multiplexer`; `None`: tmux where installed, else zellij.
    pub prefer: Option<Multiplexer>,
}

impl From<Tmux> for Mux {
    fn from(tmux: Tmux) -> Self {
        Self {
            tmux,
            ..Self::default()
        }
    }
}

impl Mux {
    pub fn of(&self, kind: Multiplexer) -> &dyn Multiplex {
        match kind {
            Multiplexer::Tmux => &self.tmux,
            Multiplexer::Zellij => &self.zellij,
        }
    }

    /// Its version line; `Err(Missing)` when it is not installed.
    pub fn version(&self, kind: Multiplexer) -> Result<String, MuxError> {
        match kind {
            Multiplexer::Tmux => Tmux::version(),
            Multiplexer::Zellij => self.zellij.version(),
        }
    }

    /// The multiplexer a new session runs in: `asked`, else the preferred one, else tmux
    /// where it is installed, else zellij; an error saying what to install when it is missing.
    pub fn choose(&self, asked: Option<Multiplexer>) -> Result<Multiplexer, MuxError> {
        if let Some(kind) = asked.or(self.prefer) {
            self.version(kind)?;
            return Ok(kind);
        }
        match self.version(Multiplexer::Tmux) {
            Err(MuxError::Missing(_)) if self.version(Multiplexer::Zellij).is_ok() => {
                Ok(Multiplexer::Zellij)
            }
            Err(e) => Err(e),
            Ok(_) => Ok(Multiplexer::Tmux),
        }
    }

    /// Which multiplexer a new session would use here, in words (for `--help`).
    pub fn describe_choice(&self) -> String {
        match self.choose(None) {
            Ok(kind) => format!("{} on this machine", kind.as_str()),
            Err(_) => "none installed on this machine: install tmux or zellij".into(),
        }
    }

    /// Stops (`pause`) or continues the session's command: SIGSTOP or SIGCONT to every process
    /// under the one it runs under (that one stays: it only waits, or relays).
    pub fn signal_stop(
        &self,
        kind: Multiplexer,
        name: &str,
        pid_file: &Path,
        pause: bool,
    ) -> Result<(), MuxError> {
        let what = if pause { "SIGSTOP" } else { "SIGCONT" };
        let leader = self.of(kind).leader_pid(name, pid_file)?;
        let signal = if pause {
            rustix::process::Signal::STOP
        } else {
            rustix::process::Signal::CONT
        };
        let mut reached = 0;
        for pid in descendants(leader) {
            let Some(pid) = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            else {
                continue;
            };
            // One that exited meanwhile is no longer there to stop.
            if rustix::process::kill_process(pid, signal).is_ok() {
                reached += 1;
            }
        }
        if reached == 0 {
            return Err(MuxError::Failed {
                mux: kind,
                what,
                reason: "the session runs no command (it is starting or has just ended)".into(),
            });
        }
        Ok(())
    }
}

/// Every process under `root` (children, theirs, …), parents first, from `/proc`.
fn descendants(root: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut parent_of = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // `pid (comm) state ppid …`: the name may hold spaces and parentheses.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(parent) = parent {
            parent_of.push((pid, parent));
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(child, _) in parent_of.iter().filter(|(_, pp)| *pp == p) {
            if !out.contains(&child) {
                out.push(child);
                frontier.push(child);
            }
        }
    }
    out
}

/// A multiplexer session name for `name` and `id`: tmux refuses `.` and `:`, so anything but letters,
/// digits, `-` and `_` becomes `-`; the id's start keeps names unique.
pub fn mux_name(name: &str, id: &str) -> String {
    let clean: String = name
        .chars()
        .take(40)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("cb-{clean}-{}", id.get(..8).unwrap_or(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_tmux_accepts() {
        assert_eq!(
            mux_name("fix: the.build ✓", "0123456789ab"),
            "cb-fix--the-build---01234567"
        );
    }
}
