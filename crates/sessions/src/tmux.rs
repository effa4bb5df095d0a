//! The terminal multiplexer sessions run in: tmux, on a server of candybar's own (`tmux -L
//! candybar`) so ending candybar's sessions never touches the person's, or on a socket given.
//!
//! A session's command runs under a small `sh` wrapper that waits until its output is being
//! logged (`pipe-pane`, signalled through `tmux wait-for`, so not a byte is missed), then runs the
//! command and writes its exit status to a file — the status survives candybar not running.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::model::Multiplexer;
use crate::mux::{Launch, Multiplex, MuxError, run_checked, spawn_error};

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
        format!(
            "tmux {flag} {}",
            crate::zellij::sh_word(&value.to_string_lossy())
        )
    }
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
        run_checked(Multiplexer::Tmux, what, self.command().args(args))
    }

    /// tmux's version line; `Err(Missing)` when there is no tmux.
    pub fn version() -> Result<String, MuxError> {
        let out = Command::new("tmux")
            .arg("-V")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| spawn_error(Multiplexer::Tmux, "-V", &e))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

impl Multiplex for Tmux {
    fn start(&self, launch: &Launch<'_>) -> Result<(), MuxError> {
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

    fn running(&self) -> Result<HashSet<String>, MuxError> {
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

    fn screen(&self, name: &str) -> Result<String, MuxError> {
        let out = self.run("capture-pane", &["capture-pane", "-p", "-t", &pane(name)])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn send_line(&self, name: &str, text: &str) -> Result<(), MuxError> {
        // `--`: a line that begins with `-` is text, not an option of send-keys.
        self.keys(name, &["-l", "--", text])?;
        self.keys(name, &["Enter"])
    }

    fn interrupt(&self, name: &str) -> Result<(), MuxError> {
        self.keys(name, &["C-c"])
    }

    /// The pane's process: the wrapper, leader of the process group the command runs in.
    fn leader_pid(&self, name: &str, _pid_file: &Path) -> Result<u32, MuxError> {
        let out = self.run(
            "display-message",
            &["display-message", "-p", "-t", &pane(name), "#{pane_pid}"],
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim().parse().map_err(|_| MuxError::Failed {
            mux: Multiplexer::Tmux,
            what: "display-message",
            reason: format!("no pane process id in {:?}", text.trim()),
        })
    }

    fn kill(&self, name: &str) -> Result<(), MuxError> {
        self.run("kill-session", &["kill-session", "-t", &format!("={name}")])
            .map(|_| ())
    }

    fn attach_command(&self, name: &str) -> Command {
        let mut c = self.command();
        c.stdin(Stdio::inherit())
            .args(["attach-session", "-t"])
            .arg(format!("={name}"));
        c
    }

    fn attach_words(&self, name: &str) -> String {
        // Quoted: zsh reads a word that begins with `=` as a command's path.
        format!(
            "{} attach -t {}",
            self.socket.words(),
            crate::zellij::sh_word(&format!("={name}"))
        )
    }
}

impl Tmux {
    /// Presses `keys` in the session (tmux key names; after `-l`, literal text).
    fn keys(&self, name: &str, keys: &[&str]) -> Result<(), MuxError> {
        let target = pane(name);
        let mut args = vec!["send-keys", "-t", &target];
        args.extend_from_slice(keys);
        self.run("send-keys", &args).map(|_| ())
    }
}

/// The session's (only) pane, the session matched exactly.
fn pane(name: &str) -> String {
    format!("={name}:")
}

/// `s` as one word for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_for_sh() {
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
