//! Watching the platform's `registry.yaml`: every change (an edit, an editor's save by
//! rename-over, a delete, a new file) is read again within a second and reported. A broken file
//! is reported with its line and column, and the last good registry stays in use.
//!
//! notify watches the file's folder, not the file: editors that save by writing a new file and
//! renaming it over the old one replace the inode a file watch would follow.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::Duration;

use candybar_core::registry::Registry;
use notify::{RecursiveMode, Watcher as _};

/// Events on the file that arrive this close together are read once.
const SETTLE: Duration = Duration::from_millis(100);

/// What a (re)load found.
#[derive(Debug)]
pub enum RegistryUpdate {
    Loaded(Box<Registry>),
    /// The file does not parse: `error` says where. The last good registry stays.
    Broken(String),
    /// The file is gone or unreadable. The last good registry stays.
    Unreadable(String),
}

/// The largest registry file read (the platform's is a few hundred KB); a bigger one — or
/// `/dev/zero` — is refused before it fills memory.
pub const MAX_REGISTRY_BYTES: u64 = 16 << 20;

/// The registry file's text, refused when it is over [`MAX_REGISTRY_BYTES`] or not UTF-8.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_REGISTRY_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_REGISTRY_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "it is larger than {} MiB, too large for a registry",
                MAX_REGISTRY_BYTES >> 20
            ),
        ));
    }
    Ok(text)
}

/// Reads `path` once, as the watcher does.
#[must_use]
pub fn load(path: &Path) -> RegistryUpdate {
    match read_text(path) {
        Ok(text) => match Registry::from_yaml(&text) {
            Ok(r) => RegistryUpdate::Loaded(Box::new(r)),
            Err(e) => RegistryUpdate::Broken(format!("{}: {e}", path.display())),
        },
        Err(e) => RegistryUpdate::Unreadable(format!("cannot read {}: {e}", path.display())),
    }
}

/// A running watch; dropping it stops the watch.
pub struct RegistryWatch {
    pub rx: Receiver<RegistryUpdate>,
    _watcher: notify::RecommendedWatcher,
}

impl RegistryWatch {
    /// Starts watching `path` (which need not exist yet). `wake` is called after each update
    /// is sent (the window asks for a frame).
    pub fn start(path: &Path, wake: impl Fn() + Send + 'static) -> Result<Self, String> {
        let path: PathBuf = std::path::absolute(path).map_err(|e| e.to_string())?;
        let dir = path
            .parent()
            .ok_or_else(|| format!("{} has no folder to watch", path.display()))?
            .to_owned();
        let name = path.file_name().map(ToOwned::to_owned);
        let (raw_tx, raw_rx) = sync_channel::<()>(64);
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            if event.paths.iter().any(|p| p.file_name() == name.as_deref()) {
                let _ = raw_tx.try_send(());
            }
        })
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
        let (tx, rx) = sync_channel(16);
        std::thread::Builder::new()
            .name("registry-watch".into())
            .spawn(move || settle_and_load(&path, &raw_rx, &tx, &wake))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            rx,
            _watcher: watcher,
        })
    }
}

fn settle_and_load(
    path: &Path,
    raw: &Receiver<()>,
    tx: &SyncSender<RegistryUpdate>,
    wake: &impl Fn(),
) {
    while raw.recv().is_ok() {
        // Let a burst of events (write, then rename) finish before reading.
        loop {
            match raw.recv_timeout(SETTLE) {
                Ok(()) => {}
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        if tx.send(load(path)).is_err() {
            return;
        }
        wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn next(w: &RegistryWatch) -> RegistryUpdate {
        w.rx.recv_timeout(Duration::from_secs(1))
            .expect("no update within a second of the change")
    }

    fn services(u: &RegistryUpdate) -> usize {
        match u {
            RegistryUpdate::Loaded(r) => r.services.len(),
            other => panic!("expected a registry, got {other:?}"),
        }
    }

    #[test]
    fn edits_renames_deletes_and_broken_files_are_seen_within_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.yaml");
        std::fs::write(&path, "services:\n  a: {}\n").unwrap();
        let w = RegistryWatch::start(&path, || {}).unwrap();

        let t = Instant::now();
        std::fs::write(&path, "services:\n  a: {}\n  b: {}\n").unwrap();
        assert_eq!(services(&next(&w)), 2);
        assert!(t.elapsed() < Duration::from_secs(1));

        // An editor's save: write a new file, rename it over the old one.
        let tmp = dir.path().join(".registry.yaml.swp");
        std::fs::write(&tmp, "services:\n  a: {}\n  b: {}\n  c: {}\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(services(&next(&w)), 3);

        std::fs::write(&path, "services:\n  a: [unclosed\n").unwrap();
        match next(&w) {
            RegistryUpdate::Broken(e) => assert!(e.contains("line 2"), "{e}"),
            other => panic!("{other:?}"),
        }
        std::fs::write(&path, "services:\n  fixed: {}\n").unwrap();
        assert_eq!(services(&next(&w)), 1);

        std::fs::remove_file(&path).unwrap();
        assert!(matches!(next(&w), RegistryUpdate::Unreadable(_)));
        std::fs::write(&path, "services: {}\n").unwrap();
        assert_eq!(services(&next(&w)), 0);
    }
}
