//! The terminal multiplexer sessions run in: tmux, on a server of candybar's own (`tmux -L
//! candybar`) so ending candybar's sessions never touches the person's, or on a socket given.
//!
//! A session's command runs under a small `sh` wrapper that waits until its output is being
//! logged (`pipe-pane`, signalled through `tmux wait-for`, so not a byte is missed), then runs the
//! command and writes its exit status to a file — the status survives candybar not running.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Which tmux server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MuxSocket {
    /// `tmux -L NAME` (a socket of that name in tmux's directory).
    Named(String),
    /// `tmux -S PATH`.
    Path(PathBuf),
}

impl Default for MuxSocket {
    fn default() -> Self {
        Self::Named("candybar".into())
    }
}

impl MuxSocket {
    fn flag(&self) -> (&'static str, &std::ffi::OsStr) {
        match self {
            Self::Named(n) => ("-L", n.as_ref()),
            Self::Path(p) => ("-S", p.as_os_str()),
        }
    }

    /// How a person reaches the server by hand: `tmux -L candybar`.
    pub fn words(&self) -> String {
        let (flag, value) = self.flag();
        format!("tmux {flag} {}", value.to_string_lossy())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    #[error("tmux is not installed: install it (Debian/Ubuntu: `sudo apt-get install tmux`)")]
    Missing,
    #[error("tmux {what} failed: {reason}")]
    Failed { what: &'static str, reason: String },
}

/// What a session runs.
pub struct Launch<'a> {
    /// The tmux session's name (see [`mux_name`]).
    pub name: &'a str,
    pub dir: &'a Path,
    pub command: &'a [String],
    /// Appended with everything the terminal shows.
    pub log: &'a Path,
    /// Written with the exit status when the command ends.
    pub exit_file: &'a Path,
}

/// The wrapper: wait until the output is logged, run, keep the exit status (written whole:
/// a temporary file renamed). It outlives a Ctrl-C meant for the command (a handler, not an
/// ignored signal, so the command still gets it) to keep the status. Its own variables are
/// private names, unset before the command runs: a candybar started inside a session must see
/// the person's settings, not the wrapper's.
const WRAPPER: &str = r#"trap : INT
go="$_CB_GO"; exit_file="$_CB_EXIT"; flag="$_CB_MUX_FLAG"; socket="$_CB_MUX_SOCKET"
unset _CB_GO _CB_EXIT _CB_MUX_FLAG _CB_MUX_SOCKET
tmux "$flag" "$socket" wait-for "$go"
"$@"
code=$?
printf '%s\n' "$code" > "$exit_file.tmp" && mv "$exit_file.tmp" "$exit_file"
exit "$code""#;

/// A tmux server.
#[derive(Clone, Debug, Default)]
pub struct Tmux {
    pub socket: MuxSocket,
}

impl Tmux {
    pub fn new(socket: MuxSocket) -> Self {
        Self { socket }
    }

    fn command(&self) -> Command {
        let (flag, value) = self.socket.flag();
        let mut c = Command::new("tmux");
        c.arg(flag).arg(value).stdin(Stdio::null());
        c
    }

    fn run<S: AsRef<std::ffi::OsStr>>(
        &self,
        what: &'static str,
        args: &[S],
    ) -> Result<Output, MuxError> {
        let out = self.command().args(args).output().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                MuxError::Missing
            } else {
                MuxError::Failed {
                    what,
                    reason: e.to_string(),
                }
            }
        })?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(MuxError::Failed {
                what,
                reason: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }

    /// tmux's version line; `Err(Missing)` when there is no tmux.
    pub fn version() -> Result<String, MuxError> {
        let out = Command::new("tmux")
            .arg("-V")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => MuxError::Missing,
                _ => MuxError::Failed {
                    what: "-V",
                    reason: e.to_string(),
                },
            })?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Starts `launch` in a detached session, its output logged from the first byte.
    pub fn start(&self, launch: &Launch<'_>) -> Result<(), MuxError> {
        let (flag, socket) = self.socket.flag();
        let go = format!("{}-go", launch.name);
        let env = |k: &str, v: &std::ffi::OsStr| {
            let mut s = std::ffi::OsString::from(format!("{k}="));
            s.push(v);
            s
        };
        let mut args: Vec<std::ffi::OsString> = vec![
            "new-session".into(),
            "-d".into(),
            "-s".into(),
            launch.name.into(),
            "-c".into(),
            launch.dir.into(),
            "-x".into(),
            "200".into(),
            "-y".into(),
            "50".into(),
            "-e".into(),
            env("_CB_MUX_FLAG", flag.as_ref()),
            "-e".into(),
            env("_CB_MUX_SOCKET", socket),
            "-e".into(),
            env("_CB_GO", go.as_ref()),
            "-e".into(),
            env("_CB_EXIT", launch.exit_file.as_os_str()),
            "--".into(),
            "sh".into(),
            "-c".into(),
            WRAPPER.into(),
            "candybar-session".into(),
        ];
        args.extend(launch.command.iter().map(Into::into));
        self.run("new-session", &args)?;
        let pipe = format!("cat >> {}", sh_quote(&launch.log.to_string_lossy()));
        let target = pane(launch.name);
        let logged = self.run("pipe-pane", &["pipe-pane", "-t", &target, &pipe]);
        // Whether or not the log could be set up, the wrapper must not wait for ever.
        let signalled = self.run("wait-for", &["wait-for", "-S", &go]);
        if let Err(e) = logged {
            let _ = self.kill(launch.name);
            return Err(e);
        }
        signalled.map(|_| ())
    }

    /// The names of the sessions this server runs (none when no server runs).
    pub fn running(&self) -> Result<HashSet<String>, MuxError> {
        match self.run("list-sessions", &["list-sessions", "-F", "#{session_name}"]) {
            Ok(out) => Ok(String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect()),
            Err(MuxError::Failed { reason, .. })
                if reason.contains("no server running")
                    || reason.contains("error connecting")
                    || reason.contains("No such file")
                    // The last session just ended and the server is on its way out.
                    || reason.contains("server exited unexpectedly")
                    || reason.contains("lost server") =>
            {
                Ok(HashSet::new())
            }
            Err(e) => Err(e),
        }
    }

    /// What the session's screen shows now, as text.
    pub fn screen(&self, name: &str) -> Result<String, MuxError> {
        let out = self.run("capture-pane", &["capture-pane", "-p", "-t", &pane(name)])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Presses `keys` in the session (tmux key names; after `-l`, literal text).
    fn keys(&self, name: &str, keys: &[&str]) -> Result<(), MuxError> {
        let target = pane(name);
        let mut args = vec!["send-keys", "-t", &target];
        args.extend_from_slice(keys);
        self.run("send-keys", &args).map(|_| ())
    }

    /// Types `text` into the session, then Enter.
    pub fn send_line(&self, name: &str, text: &str) -> Result<(), MuxError> {
        // `--`: a line that begins with `-` is text, not an option of send-keys.
        self.keys(name, &["-l", "--", text])?;
        self.keys(name, &["Enter"])
    }

    /// Ctrl-C, as a person would press it.
    pub fn interrupt(&self, name: &str) -> Result<(), MuxError> {
        self.keys(name, &["C-c"])
    }

    /// The process id of the session's pane: the wrapper, leader of the process group the
    /// command runs in.
    pub fn pane_pid(&self, name: &str) -> Result<u32, MuxError> {
        let out = self.run(
            "display-message",
            &["display-message", "-p", "-t", &pane(name), "#{pane_pid}"],
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim().parse().map_err(|_| MuxError::Failed {
            what: "display-message",
            reason: format!("no pane process id in {:?}", text.trim()),
        })
    }

    /// Stops (`pause`) or continues the session's command: SIGSTOP or SIGCONT to every process
    /// under the pane's wrapper (the wrapper itself stays: tmux continues a pane whose own
    /// process stops, and the wrapper only waits).
    pub fn signal_stop(&self, name: &str, pause: bool) -> Result<(), MuxError> {
        let what = if pause { "SIGSTOP" } else { "SIGCONT" };
        let pane = self.pane_pid(name)?;
        let signal = if pause {
            rustix::process::Signal::STOP
        } else {
            rustix::process::Signal::CONT
        };
        let mut reached = 0;
        for pid in descendants(pane) {
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
                what,
                reason: "the session runs no command (it is starting or has just ended)".into(),
            });
        }
        Ok(())
    }

    /// Ends the session at once (its processes get SIGHUP).
    pub fn kill(&self, name: &str) -> Result<(), MuxError> {
        self.run("kill-session", &["kill-session", "-t", &format!("={name}")])
            .map(|_| ())
    }

    /// The command that attaches a terminal to the session.
    pub fn attach_command(&self, name: &str) -> Command {
        let mut c = self.command();
        c.stdin(Stdio::inherit())
            .args(["attach-session", "-t"])
            .arg(format!("={name}"));
        c
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

/// The session's (only) pane, the session matched exactly.
fn pane(name: &str) -> String {
    format!("={name}:")
}

/// `s` as one word for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A tmux session name for `name` and `id`: tmux refuses `.` and `:`, so anything but letters,
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
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
