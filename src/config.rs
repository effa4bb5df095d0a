//! Configuration: a TOML file in the platform's config dir (`~/.config/candybar/config.toml` on
//! Linux), overridden by `CANDYBAR_*` environment variables, overridden by flags. Passwords in
//! URLs are masked wherever they are shown or logged. The file's model is
//! [`candybar_core::config`]; reading it is here.

use std::path::{Path, PathBuf};

pub use candybar_core::config::*;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {reason}")]
    Read {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// The largest config file read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Where the config file is looked for: `$CANDYBAR_CONFIG`, else the platform config dir.
#[must_use]
pub fn default_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CANDYBAR_CONFIG") {
        return Some(PathBuf::from(p));
    }
    directories::ProjectDirs::from("", "", "candybar").map(|d| d.config_dir().join("config.toml"))
}

/// Reads the config file.
pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
    // A config is a few KB; a huge file (or /dev/zero) is refused before it fills memory.
    let read = || -> std::io::Result<String> {
        use std::io::Read as _;
        let mut text = String::new();
        std::fs::File::open(path)?
            .take(MAX_CONFIG_BYTES + 1)
            .read_to_string(&mut text)?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "it is larger than 1 MiB, too large for a config file",
            ));
        }
        Ok(text)
    };
    let text = match read() {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileConfig::default()),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                reason: source,
            });
        }
    };
    FileConfig::parse(&text).map_err(|message| ConfigError::Parse {
        path: path.to_owned(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_empty() {
        let c = load(Path::new("/nonexistent/candybar.toml")).unwrap();
        assert_eq!(c, FileConfig::default());
    }
}
