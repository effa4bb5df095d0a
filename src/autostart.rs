//! Starting candybar in the tray at login: an XDG autostart entry
//! (`~/.config/autostart/candybar.desktop`) that runs `candybar --minimized`; on macOS a launch
//! agent (`~/Library/LaunchAgents/io.github.candybar.candybar.plist`) that does the same. Inside an
//! `AppImage` the entry runs the `AppImage` file (`$APPIMAGE`), not the binary in its temporary
//! mount.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum AutostartError {
    #[error("no config directory for this user (is $HOME set?)")]
    NoConfigDir,
    #[error("cannot find candybar's own executable: {0}")]
    NoExe(std::io::Error),
    #[error("cannot write {path}: {reason}")]
    Write {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("cannot remove {path}: {reason}")]
    Remove {
        path: PathBuf,
        reason: std::io::Error,
    },
}

/// `$XDG_CONFIG_HOME/autostart/candybar.desktop`.
#[cfg(not(target_os = "macos"))]
pub fn entry_path() -> Result<PathBuf, AutostartError> {
    directories::BaseDirs::new()
        .map(|d| d.config_dir().join("autostart").join("candybar.desktop"))
        .ok_or(AutostartError::NoConfigDir)
}

/// `~/Library/LaunchAgents/io.github.candybar.candybar.plist`.
#[cfg(target_os = "macos")]
pub fn entry_path() -> Result<PathBuf, AutostartError> {
    directories::BaseDirs::new()
        .map(|d| {
            d.home_dir()
                .join("Library/LaunchAgents")
                .join(format!("{LAUNCH_AGENT}.plist"))
        })
        .ok_or(AutostartError::NoConfigDir)
}

/// The launch agent's label (the bundle identifier).
const LAUNCH_AGENT: &str = "io.github.candybar.candybar";

/// Whether candybar starts at login (an entry exists and is not switched off with `Hidden`).
#[must_use]
pub fn is_enabled() -> bool {
    entry_path().is_ok_and(|p| enabled_at(&p))
}

fn enabled_at(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| {
        !text
            .lines()
            .any(|l| l.trim().eq_ignore_ascii_case("Hidden=true"))
    })
}

/// Turns starting at login on or off; returns the entry's path.
pub fn set(enabled: bool) -> Result<PathBuf, AutostartError> {
    let path = entry_path()?;
    if enabled {
        let exe = match std::env::var_os("APPIMAGE") {
            Some(appimage) => PathBuf::from(appimage),
            None => std::env::current_exe().map_err(AutostartError::NoExe)?,
        };
        write_entry(&path, &exe)?;
    } else {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(AutostartError::Remove { path, reason: e });
            }
            _ => {}
        }
    }
    Ok(path)
}

fn write_entry(path: &Path, exe: &Path) -> Result<(), AutostartError> {
    let err = |source| AutostartError::Write {
        path: path.to_owned(),
        reason: source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let text = if cfg!(target_os = "macos") {
        launch_agent_text(exe)
    } else {
        desktop_entry_text(exe)
    };
    std::fs::write(path, text).map_err(err)
}

/// A launch agent that runs `exe --minimized` at login, once.
fn launch_agent_text(exe: &Path) -> String {
    let exe = exe
        .to_string_lossy()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <plist version=\"1.0\">\n<dict>\n\
         \t<key>Label</key>\n\t<string>{LAUNCH_AGENT}</string>\n\
         \t<key>ProgramArguments</key>\n\t<array>\n\t\t<string>{exe}</string>\n\t\t<string>--minimized</string>\n\t</array>\n\
         \t<key>RunAtLoad</key>\n\t<true/>\n\
         \t<key>ProcessType</key>\n\t<string>Interactive</string>\n\
         </dict>\n</plist>\n"
    )
}

/// The entry's text; the program path quoted as the desktop entry spec asks.
fn desktop_entry_text(exe: &Path) -> String {
    let exe = exe.to_string_lossy();
    let quoted = if exe.contains([' ', '"', '\'', '\\', '$', '`']) {
        let escaped = exe
            .replace('\\', "\\\\\\\\")
            .replace('"', "\\\\\"")
            .replace('$', "\\\\$")
            .replace('`', "\\\\`");
        format!("\"{escaped}\"")
    } else {
        exe.into_owned()
    };
    format!(
        "[Desktop Entry]\n\
         Type=Application\n\
         Name=candybar\n\
         Comment=Event stream and dictation, in the tray\n\
         Exec={quoted} --minimized\n\
         Icon=candybar\n\
         Terminal=false\n\
         X-GNOME-Autostart-enabled=true\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_starts_candybar_in_the_tray_and_can_be_switched_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("autostart/candybar.desktop");
        assert!(!enabled_at(&path));
        write_entry(&path, Path::new("/opt/candy bar/candybar")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("Exec=\"/opt/candy bar/candybar\" --minimized"),
            "{text}"
        );
        assert!(enabled_at(&path));
        std::fs::write(&path, format!("{text}Hidden=true\n")).unwrap();
        assert!(!enabled_at(&path), "Hidden=true switches an entry off");
    }

    #[test]
    fn the_macos_launch_agent_runs_the_app_minimized() {
        let text = launch_agent_text(Path::new(
            "/Applications/Candy & Bar.app/Contents/MacOS/candybar",
        ));
        assert!(
            text.contains("<string>io.github.candybar.candybar</string>"),
            "{text}"
        );
        assert!(
            text.contains("<string>/Applications/Candy &amp; Bar.app/Contents/MacOS/candybar</string>\n\t\t<string>--minimized</string>"),
            "{text}"
        );
        assert!(text.contains("<key>RunAtLoad</key>\n\t<true/>"), "{text}");
    }
}
