//! Secrets (the ASR server's token, the webhook's token, the broker's password): from the environment, else the OS
//! keychain (keyring: Secret Service on Linux, Keychain on macOS, Credential Manager on Windows;
//! `CANDYBAR_NO_KEYCHAIN=1` skips it), else — only where no keychain exists, and with a warning when it is written — a file readable
//! by the user alone. Values are never printed or logged; only where each one lives.
//!
//! A keychain can be slow to answer (D-Bus activation of a missing service waits ~25 s), so
//! every keychain call runs on a thread of its own with a time limit.

use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Duration;

use candybar_core::redact::Secret;
use candybar_voice::dictation::SecretStore;

/// The keychain's service name for candybar's entries.
const SERVICE: &str = "candybar";
/// How long a keychain may take to answer.
const KEYCHAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// The secrets candybar knows, with the environment variable that overrides each.
pub const KNOWN: [(&str, &str); 5] = [
    ("asr-token", "CANDYBAR_ASR_TOKEN"),
    ("webhook-token", "CANDYBAR_WEBHOOK_TOKEN"),
    ("amqp-password", "CANDYBAR_AMQP_PASSWORD"),
    ("github-token", "CANDYBAR_GITHUB_TOKEN"),
    ("llm-key", "CANDYBAR_LLM_KEY"),
];

/// What the keychain and the file said, per name, so a slow keychain is asked once per run.
type Found = (Option<String>, Place);
static STORED: std::sync::LazyLock<parking_lot::Mutex<std::collections::HashMap<String, Found>>> =
    std::sync::LazyLock::new(Default::default);

/// Where a secret was found or put.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    Environment(String),
    Keychain,
    File(PathBuf),
    Nowhere,
}

impl Place {
    pub fn words(&self) -> String {
        match self {
            Self::Environment(var) => format!("environment (${var})"),
            Self::Keychain => "the system keychain".into(),
            Self::File(p) => format!("{} (no keychain here)", p.display()),
            Self::Nowhere => "not set".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "unknown secret {0:?}: candybar keeps asr-token, webhook-token, amqp-password, github-token and llm-key"
    )]
    Unknown(String),
    #[error("cannot write {path}: {reason}")]
    File {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("the keychain refused: {0}")]
    Keychain(String),
}

/// `$CANDYBAR_SECRETS`, else `secrets.toml` in the config dir (`~/.config/candybar/`).
#[must_use]
pub fn file_path() -> PathBuf {
    if let Some(p) = std::env::var_os("CANDYBAR_SECRETS") {
        return PathBuf::from(p);
    }
    directories::ProjectDirs::from("", "", "candybar").map_or_else(
        || PathBuf::from("candybar-secrets.toml"),
        |d| d.config_dir().join("secrets.toml"),
    )
}

fn env_var(name: &str) -> Result<&'static str, SecretError> {
    KNOWN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .ok_or_else(|| SecretError::Unknown(name.to_owned()))
}

/// What the keychain said.
enum KeychainAnswer<T> {
    Answered(keyring::Result<T>),
    /// There is none here (no Secret Service, no D-Bus), or `CANDYBAR_NO_KEYCHAIN` is set.
    Absent,
    /// It did not answer in time: it may exist and be busy, so nothing is concluded.
    Mute,
}

/// Runs `f` on the keychain with a time limit.
fn keychain<T: Send + 'static>(
    name: &str,
    f: impl FnOnce(&keyring::Entry) -> keyring::Result<T> + Send + 'static,
) -> KeychainAnswer<T> {
    if std::env::var_os("CANDYBAR_NO_KEYCHAIN").is_some_and(|v| !v.is_empty() && v != "0") {
        return KeychainAnswer::Absent;
    }
    let (tx, rx) = sync_channel(1);
    let name = name.to_owned();
    let spawned = std::thread::Builder::new()
        .name("keychain".into())
        .spawn(move || {
            let r = keyring::Entry::new(SERVICE, &name).and_then(|e| f(&e));
            let _ = tx.send(r);
        });
    if spawned.is_err() {
        return KeychainAnswer::Mute;
    }
    match rx.recv_timeout(KEYCHAIN_TIMEOUT) {
        Err(_) => KeychainAnswer::Mute,
        Ok(Err(keyring::Error::NoDefaultStore | keyring::Error::NoStorageAccess(_))) => {
            KeychainAnswer::Absent
        }
        Ok(Err(keyring::Error::PlatformFailure(e))) => {
            tracing::debug!("keychain: {e}");
            KeychainAnswer::Absent
        }
        Ok(r) => KeychainAnswer::Answered(r),
    }
}

/// Forgets what the keychain and the file said, so the next `get` asks again (after the user
/// changed a secret in another program).
pub fn forget_cached() {
    STORED.lock().clear();
}

fn read_file(path: &Path) -> toml::Table {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.parse::<toml::Table>().ok())
        .unwrap_or_default()
}

/// The secret and where it came from.
pub fn get(name: &str) -> Result<(Option<String>, Place), SecretError> {
    let var = env_var(name)?;
    if let Ok(v) = std::env::var(var)
        && !v.is_empty()
    {
        return Ok((Some(v), Place::Environment(var.to_owned())));
    }
    if let Some(found) = STORED.lock().get(name) {
        return Ok(found.clone());
    }
    let answer = keychain(name, keyring::Entry::get_password);
    let mute = matches!(answer, KeychainAnswer::Mute);
    let found = if let KeychainAnswer::Answered(Ok(v)) = answer {
        (Some(v), Place::Keychain)
    } else {
        let path = file_path();
        match read_file(&path).get(name).and_then(|v| v.as_str()) {
            Some(v) => (Some(v.to_owned()), Place::File(path)),
            None => (None, Place::Nowhere),
        }
    };
    // A keychain that did not answer in time is asked again next time, not taken for empty.
    if !mute {
        STORED.lock().insert(name.to_owned(), found.clone());
    }
    Ok(found)
}

/// The keychain (or the secrets file) as the dictation worker's [`SecretStore`].
pub struct Keychain;

impl SecretStore for Keychain {
    fn get(&self, name: &str) -> Option<Secret> {
        get(name).ok().and_then(|(v, _)| v).map(Secret::new)
    }

    fn forget(&self) {
        forget_cached();
    }
}

/// `url` with the stored broker password when it names a user but carries no password.
#[must_use]
pub fn with_amqp_password(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return url.to_owned();
    };
    if u.username().is_empty() || u.password().is_some() {
        return url.to_owned();
    }
    match get("amqp-password") {
        Ok((Some(p), _)) if u.set_password(Some(&p)).is_ok() => u.to_string(),
        _ => url.to_owned(),
    }
}

/// Keeps a secret: in the keychain, else in the user-only file.
pub fn set(name: &str, value: &str) -> Result<Place, SecretError> {
    env_var(name)?;
    STORED.lock().remove(name);
    let v = value.to_owned();
    match keychain(name, move |e| e.set_password(&v)) {
        KeychainAnswer::Answered(Ok(())) => {
            // A copy left in the file from before would shadow nothing but still leak.
            remove_from_file(name, &file_path())?;
            Ok(Place::Keychain)
        }
        KeychainAnswer::Answered(Err(e)) => Err(SecretError::Keychain(e.to_string())),
        // Writing to the file now would leave two copies once the keychain wakes up.
        KeychainAnswer::Mute => Err(SecretError::Keychain(format!(
            "it did not answer within {} s (is it locked, waiting for a password?); \
             nothing was written, try again",
            KEYCHAIN_TIMEOUT.as_secs()
        ))),
        KeychainAnswer::Absent => {
            let path = file_path();
            let mut table = read_file(&path);
            table.insert(name.to_owned(), toml::Value::String(value.to_owned()));
            write_private(&path, &table.to_string())?;
            Ok(Place::File(path))
        }
    }
}

/// Forgets a secret wherever candybar keeps it.
pub fn delete(name: &str) -> Result<(), SecretError> {
    env_var(name)?;
    STORED.lock().remove(name);
    let _ = keychain(name, keyring::Entry::delete_credential);
    remove_from_file(name, &file_path())
}

fn remove_from_file(name: &str, path: &Path) -> Result<(), SecretError> {
    let mut table = read_file(path);
    if table.remove(name).is_some() {
        write_private(path, &table.to_string())?;
    }
    Ok(())
}

/// Writes `text` to `path`, readable and writable by the user alone.
fn write_private(path: &Path, text: &str) -> Result<(), SecretError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let err = |source| SecretError::File {
        path: path.to_owned(),
        reason: source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("toml.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_private_and_keeps_other_secrets() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.toml");
        let mut t = toml::Table::new();
        t.insert("asr-token".into(), "a".into());
        t.insert("webhook-token".into(), "w".into());
        write_private(&path, &t.to_string()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        remove_from_file("asr-token", &path).unwrap();
        let left = read_file(&path);
        assert!(left.get("asr-token").is_none());
        assert_eq!(
            left.get("webhook-token").and_then(|v| v.as_str()),
            Some("w")
        );
    }

    #[test]
    fn a_url_with_its_own_password_is_left_alone() {
        let url = "amqp://alice:own@127.0.0.1:5672/%2f";
        assert_eq!(with_amqp_password(url), url);
        assert_eq!(
            with_amqp_password("amqp://127.0.0.1:5672"),
            "amqp://127.0.0.1:5672"
        );
    }

    #[test]
    fn unknown_names_are_refused() {
        assert!(matches!(get("password"), Err(SecretError::Unknown(_))));
    }
}
