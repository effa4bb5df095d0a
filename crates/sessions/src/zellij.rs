//! zellij as the terminal multiplexer: each session is a zellij session (a server of its own)
//! with one pane, created in the background. zellij has no `pipe-pane`, so the pane runs
//! `candybar session relay` ([`crate::relay`]), which runs the command on a terminal of its
//! own and logs every byte; the relay also keeps the exit status and closes the session when
//! the command ends.
//!
//! The sessions use a zellij configuration of candybar's (no startup tips or release notes
//! over the agent; not serialized, so an ended session leaves nothing to resurrect), written
//! beside the logs. They live in zellij's usual socket directory (`zellij ls` lists them, named
//! `cb-…`) unless a socket directory is given.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::model::Multiplexer;
use crate::mux::{Launch, Multiplex, MuxError, run_checked};

/// candybar's configuration for the sessions' zellij servers.
const CONFIG: &str = "// Written by candybar for its agent sessions; rewritten when it differs.
show_startup_tips false
show_release_notes false
session_serialization false
";

/// The running binary, for the relay; after an upgrade in place Linux names it "… (deleted)",
/// and the new one at the same path is the one to run.
fn current_exe() -> PathBuf {
    let Ok(exe) = std::env::current_exe() else {
        return "candybar".into();
    };
    match exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
        Some(path) if Path::new(path).exists() => path.into(),
        _ => exe,
    }
}

/// How long a new session's pane may take to start the relay.
const RELAY_START_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// The session's one pane: the relay's terminal (plugins have ids of their own).
const PANE: &str = "terminal_0";

/// zellij, as candybar runs it.
#[derive(Clone, Debug)]
pub struct Zellij {
    /// The `zellij` program (a name on `PATH`, or a path).
    pub program: PathBuf,
    /// `ZELLIJ_SOCKET_DIR` for candybar's sessions (`None`: zellij's own).
    pub socket_dir: Option<PathBuf>,
    /// The candybar binary whose `session relay` runs in the pane.
    pub relay: PathBuf,
}

impl Default for Zellij {
    fn default() -> Self {
        Self {
            program: "zellij".into(),
            socket_dir: None,
            relay: current_exe(),
        }
    }
}

impl Zellij {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        if let Some(dir) = &self.socket_dir {
            c.env("ZELLIJ_SOCKET_DIR", dir);
        }
        c.stdin(Stdio::null());
        c
    }

    fn run<S: AsRef<std::ffi::OsStr>>(
        &self,
        what: &'static str,
        args: &[S],
    ) -> Result<Output, MuxError> {
        run_checked(Multiplexer::Zellij, what, self.command().args(args))
    }

    /// `action …` in the session `name`, on its pane.
    fn action(&self, name: &str, what: &'static str, args: &[&str]) -> Result<Output, MuxError> {
        let mut all = vec!["--session", name, "action", what, "--pane-id", PANE];
        all.extend_from_slice(args);
        self.run(what, &all)
    }

    /// The zellij version line; `Err(Missing)` when it is not installed.
    pub fn version(&self) -> Result<String, MuxError> {
        let out = run_checked(
            Multiplexer::Zellij,
            "--version",
            self.command().arg("--version"),
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The one-pane layout running the relay for `launch`.
    fn layout(&self, launch: &Launch<'_>) -> String {
        let mut args: Vec<String> = vec![
            "session".into(),
            "relay".into(),
            "--log".into(),
            launch.log.to_string_lossy().into_owned(),
            "--exit-file".into(),
            launch.exit_file.to_string_lossy().into_owned(),
            "--pid-file".into(),
            launch.pid_file.to_string_lossy().into_owned(),
            "--dir".into(),
            launch.dir.to_string_lossy().into_owned(),
            "--close-zellij".into(),
            absolute_program(&self.program)
                .to_string_lossy()
                .into_owned(),
            "--session".into(),
            launch.name.into(),
            "--".into(),
        ];
        args.extend(launch.command.iter().cloned());
        let args: Vec<String> = args.iter().map(|a| kdl_string(a)).collect();
        // No `cwd=`: zellij expands `$NAME` in it (and in `command=`), not in `args`.
        format!(
            "layout {{\n    pane command={} close_on_exit=true {{\n        args {}\n    }}\n}}\n",
            kdl_string(&self.relay.to_string_lossy()),
            args.join(" "),
        )
    }
}

impl Multiplex for Zellij {
    fn start(&self, launch: &Launch<'_>) -> Result<(), MuxError> {
        let config = launch
            .log
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("zellij.kdl");
        if self.relay.to_string_lossy().contains('$') {
            return Err(MuxError::Failed {
                mux: Multiplexer::Zellij,
                what: "session relay",
                reason: format!(
                    "zellij would expand the `$` in candybar's path {}: run candybar from a path without one",
                    self.relay.display()
                ),
            });
        }
        if std::fs::read_to_string(&config).ok().as_deref() != Some(CONFIG) {
            // Whole or not at all: another candybar may start a session at the same moment.
            let tmp = config.with_extension(format!("kdl.{}.tmp", std::process::id()));
            std::fs::write(&tmp, CONFIG)
                .and_then(|()| std::fs::rename(&tmp, &config))
                .map_err(|e| MuxError::Failed {
                    mux: Multiplexer::Zellij,
                    what: "configuration",
                    reason: format!("cannot write {}: {e}", config.display()),
                })?;
        }
        if let Some(dir) = &self.socket_dir {
            std::fs::create_dir_all(dir).map_err(|e| MuxError::Failed {
                mux: Multiplexer::Zellij,
                what: "socket directory",
                reason: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        // zellij refuses a name that is taken ("Session already exists").
        let layout = self.layout(launch);
        self.run(
            "attach --create-background",
            &[
                "--config".as_ref(),
                config.as_os_str(),
                "--layout-string".as_ref(),
                layout.as_ref(),
                "attach".as_ref(),
                "--create-background".as_ref(),
                launch.name.as_ref(),
            ],
        )?;
        // Started when the relay runs (it writes its process id first), or has run already (a
        // command that ended at once): from then on whether the session lives is told by that
        // process, not by `list-sessions`.
        let until = std::time::Instant::now() + RELAY_START_MAX;
        let started = || match self.is_alive(launch.name, launch.pid_file) {
            Some(alive) => alive,
            // No `/proc` to look at the process: its pid file says it began.
            None => launch.pid_file.exists(),
        };
        while !started() && !launch.exit_file.exists() {
            if std::time::Instant::now() >= until {
                let _ = self.kill(launch.name);
                return Err(MuxError::Failed {
                    mux: Multiplexer::Zellij,
                    what: "session relay",
                    reason: format!(
                        "the pane did not run `{} session relay` within {} s",
                        self.relay.display(),
                        RELAY_START_MAX.as_secs()
                    ),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Ok(())
    }

    fn running(&self) -> Result<HashSet<String>, MuxError> {
        match self.run("list-sessions", &["list-sessions", "--no-formatting"]) {
            // `NAME [Created …]`, and `(EXITED - attach to resurrect)` for a dead one.
            Ok(out) => Ok(String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.contains("(EXITED"))
                .filter_map(|l| l.split_whitespace().next())
                .map(str::to_owned)
                .collect()),
            Err(MuxError::Failed { reason, .. })
                if reason.contains("No active zellij sessions") =>
            {
                Ok(HashSet::new())
            }
            Err(e) => Err(e),
        }
    }

    fn screen(&self, name: &str) -> Result<String, MuxError> {
        let out = self.action(name, "dump-screen", &[])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn send_line(&self, name: &str, text: &str) -> Result<(), MuxError> {
        // `--`: a line that begins with `-` is text, not an option.
        self.action(name, "write-chars", &["--", text])?;
        self.action(name, "write", &["13"]).map(|_| ())
    }

    fn interrupt(&self, name: &str) -> Result<(), MuxError> {
        self.action(name, "write", &["3"]).map(|_| ())
    }

    fn leader_pid(&self, name: &str, pid_file: &Path) -> Result<u32, MuxError> {
        let text = std::fs::read_to_string(pid_file).unwrap_or_default();
        let pid = text.trim().parse().ok();
        // Only the session's own relay (a process id used again is someone else's).
        match (pid, self.is_alive(name, pid_file)) {
            (Some(pid), Some(true) | None) => Ok(pid),
            _ => Err(MuxError::Failed {
                mux: Multiplexer::Zellij,
                what: "relay",
                reason: format!(
                    "the session's relay ({}) is not running",
                    pid_file.display()
                ),
            }),
        }
    }

    /// The relay's process is the session: it runs while the session does (zellij's
    /// `list-sessions` can miss a busy server, which is not a dead one). Its command line names
    /// the pid file, so a process id used again by another program is not taken for it.
    fn is_alive(&self, _name: &str, pid_file: &Path) -> Option<bool> {
        let pid: u32 = std::fs::read_to_string(pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        if !Path::new("/proc/self").exists() {
            return None;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return Some(false);
        };
        let wanted = pid_file.as_os_str().as_encoded_bytes();
        Some(cmdline.windows(wanted.len()).any(|w| w == wanted))
    }

    fn kill(&self, name: &str) -> Result<(), MuxError> {
        self.run("kill-session", &["kill-session", name])
            .map(|_| ())
    }

    fn attach_command(&self, name: &str) -> Command {
        let mut c = self.command();
        c.stdin(Stdio::inherit()).args(["attach", name]);
        c
    }

    fn attach_words(&self, name: &str) -> String {
        let prefix = self
            .socket_dir
            .as_ref()
            .map(|d| format!("ZELLIJ_SOCKET_DIR={} ", sh_word(&d.to_string_lossy())))
            .unwrap_or_default();
        format!(
            "{prefix}{} attach {name}",
            sh_word(&self.program.to_string_lossy())
        )
    }
}

/// `s` as one word for a shell: as it is when it needs no quotes, else in single quotes.
pub(crate) fn sh_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:,@%".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `program` with its directory: the relay runs in the session's directory, where a relative
/// path or a name looked up on a different `PATH` would not find it.
fn absolute_program(program: &Path) -> PathBuf {
    if program.components().count() > 1 {
        return std::path::absolute(program).unwrap_or_else(|_| program.to_owned());
    }
    crate::manager::find_program(&program.to_string_lossy(), Path::new("/"))
        .unwrap_or_else(|| program.to_owned())
}

/// `s` as a KDL string: quoted, with `"`, `\` and control characters escaped.
fn kdl_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdl_strings_keep_quotes_backslashes_and_newlines() {
        assert_eq!(kdl_string(r#"say "hi" \ now"#), r#""say \"hi\" \\ now""#);
        assert_eq!(kdl_string("a\nb\u{1}"), r#""a\nb\u{1}""#);
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(sh_word("/usr/bin/zellij"), "/usr/bin/zellij");
        assert_eq!(sh_word("/tmp/my dir"), "'/tmp/my dir'");
        assert_eq!(sh_word("=cb-x"), "'=cb-x'");
        assert_eq!(sh_word("it's"), r"'it'\''s'");
    }
}
