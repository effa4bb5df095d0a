//! `candybar record --install-service`: the recorder as a systemd user service, so history
//! accumulates while no window is open (the .deb also ships the unit in
//! `/usr/lib/systemd/user/`; macOS has a launch agent recipe in `packaging/macos/`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::Context as _;

use super::SourceArgs;
use super::journal::RecordArgs;

/// The unit's name.
pub const UNIT: &str = "candybar-record.service";

/// `$XDG_CONFIG_HOME/systemd/user/candybar-record.service`.
fn unit_path() -> anyhow::Result<PathBuf> {
    directories::BaseDirs::new()
        .map(|d| d.config_dir().join("systemd/user").join(UNIT))
        .context("no config directory for this user (is $HOME set?)")
}

/// One word of `ExecStart=`, quoted for systemd: `"`, `\` escaped, `%` and `$` doubled.
fn quoted(word: &str) -> String {
    let mut out = String::with_capacity(word.len() + 2);
    out.push('"');
    for c in word.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The flags the service runs `record` with: where to write and what to read, never a secret
/// (a broker password stays in the config file or the keychain, where `record` finds it).
fn service_flags(args: &RecordArgs, source: &SourceArgs) -> Result<Vec<String>, String> {
    if source.demo || source.replay.is_some() {
        return Err("a service records the broker: --demo and --replay do not belong in it".into());
    }
    let mut flags = Vec::new();
    if let Some(url) = &source.amqp {
        if url::Url::parse(url).is_ok_and(|u| u.password().is_some()) {
            return Err(
                "the service file would hold the broker's password: put the URL in the config \
                 file ([amqp] url) or the keychain (`candybar secret set amqp`) and install \
                 without --amqp"
                    .into(),
            );
        }
        flags.extend(["--amqp".into(), url.clone()]);
    }
    let mut flag = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            flags.extend([name.to_owned(), v]);
        }
    };
    flag("--exchange", source.exchange.clone());
    flag("--durable-queue", source.durable_queue.clone());
    flag("--stream", source.stream.clone());
    flag("--config", source.config.as_ref().map(path_text));
    flag("--registry", source.registry.as_ref().map(path_text));
    flag("--journal", args.journal.as_ref().map(path_text));
    flag("--max-age", args.max_age.clone());
    flag("--max-size-mb", args.max_size_mb.map(|m| m.to_string()));
    for key in &source.binding_keys {
        flags.extend(["--binding-key".into(), key.clone()]);
    }
    Ok(flags)
}

fn path_text(p: &PathBuf) -> String {
    // A relative path would be relative to the service manager's directory: made absolute.
    std::path::absolute(p)
        .unwrap_or_else(|_| p.clone())
        .display()
        .to_string()
}

/// The unit file's text for running `exe record <flags>`.
#[must_use]
pub fn unit_text(exe: &Path, flags: &[String]) -> String {
    let mut exec = quoted(&exe.display().to_string());
    exec.push_str(" \"record\"");
    for f in flags {
        exec.push(' ');
        exec.push_str(&quoted(f));
    }
    format!(
        "# Written by `candybar record --install-service`; `candybar record --uninstall-service`\n\
         # removes it. The broker and the journal come from candybar's config file.\n\
         [Unit]\n\
         Description=candybar record: the agent platform's events into the journal\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=exec\n\
         ExecStart={exec}\n\
         # SIGTERM: the last block is written and synced before it exits.\n\
         TimeoutStopSec=30s\n\
         Restart=on-failure\n\
         RestartSec=5s\n\
         # Exit status 2: a setting to fix (a bad URL, a journal that is a file); not retried.\n\
         RestartPreventExitStatus=2\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n"
    )
}

/// Runs `systemctl --user <args>`; its complaint when it fails (no user session, no systemd).
fn systemctl(args: &[&str]) -> Result<(), String> {
    let out = Command::new("systemctl")
        .arg("--user")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run systemctl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

pub fn install(args: &RecordArgs, source: &SourceArgs) -> anyhow::Result<ExitCode> {
    if cfg!(target_os = "macos") {
        eprintln!(
            "candybar: on macOS the recorder runs as a launch agent: see \
             packaging/macos/io.github.candybar.record.plist for the file and the two commands"
        );
        return Ok(ExitCode::from(2));
    }
    let flags = match service_flags(args, source) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("candybar: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    // Inside an AppImage the binary lives in a temporary mount: the service runs the AppImage.
    let exe = match std::env::var_os("APPIMAGE") {
        Some(a) => PathBuf::from(a),
        None => std::env::current_exe().context("cannot find candybar's own executable")?,
    };
    let path = unit_path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&path, unit_text(&exe, &flags))
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}", path.display());
    match systemctl(&["daemon-reload"]).and_then(|()| systemctl(&["enable", "--now", UNIT])) {
        Ok(()) => {
            println!(
                "the recorder runs now and at every login; its log: journalctl --user -u {UNIT}"
            );
        }
        Err(why) => println!(
            "systemd did not take it ({why}); where a systemd user session runs: \
             systemctl --user daemon-reload && systemctl --user enable --now {UNIT}"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn uninstall() -> anyhow::Result<ExitCode> {
    let path = unit_path()?;
    if !path.exists() {
        println!("no service installed ({} does not exist)", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    if let Err(why) = systemctl(&["disable", "--now", UNIT]) {
        tracing::debug!("systemctl disable: {why}");
    }
    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    let _ = systemctl(&["daemon-reload"]);
    println!("removed {} (the journal stays)", path.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_start_words_are_quoted_for_systemd() {
        assert_eq!(quoted("/opt/my apps/candybar"), "\"/opt/my apps/candybar\"");
        assert_eq!(quoted("100%"), "\"100%%\"");
        assert_eq!(quoted("$HOME"), "\"$$HOME\"");
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
        let text = unit_text(
            Path::new("/usr/bin/candybar"),
            &["--stream".into(), "platform.history".into()],
        );
        assert!(
            text.contains(
                r#"ExecStart="/usr/bin/candybar" "record" "--stream" "platform.history""#
            ),
            "{text}"
        );
    }
}
