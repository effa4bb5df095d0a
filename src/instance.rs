//! One candybar per user: the running app listens on a local socket, and a second launch — or
//! `candybar dictate --toggle|--start|--stop`, which is how Wayland desktops and scripts reach
//! it — hands its request over and exits. One line in, one line out.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long either side waits for the other.
const IO_TIMEOUT: Duration = Duration::from_secs(8);

/// What a second launch or `candybar dictate --…` asks of the running instance: one line each
/// way, the request's [`InstanceRequest::as_str`] in, the answer in words out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceRequest {
    /// Start a recording.
    Start,
    /// Stop the recording (its text is kept and delivered).
    Stop,
    Toggle,
    /// Start transcribing what the computer plays, or stop.
    TogglePlaying,
    /// Dictation's state in one word (idle, starting, recording, finishing).
    Status,
    /// The built-in ASR server's state.
    ServerStatus,
    /// Bring the window to the front.
    Show,
    /// `release-journal DIR`: a window recording into the journal at DIR stops, lets
    /// `candybar record` write it, and reads what the recorder writes instead.
    ReleaseJournal,
}

impl InstanceRequest {
    pub const ALL: [Self; 8] = [
        Self::Start,
        Self::Stop,
        Self::Toggle,
        Self::TogglePlaying,
        Self::Status,
        Self::ServerStatus,
        Self::Show,
        Self::ReleaseJournal,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Toggle => "toggle",
            Self::TogglePlaying => "toggle-playing",
            Self::Status => "status",
            Self::ServerStatus => "server-status",
            Self::Show => "show",
            Self::ReleaseJournal => "release-journal",
        }
    }

    /// The request on `line` and what follows its word (`""` for most).
    #[must_use]
    pub fn parse(line: &str) -> Option<(Self, &str)> {
        let line = line.trim();
        let (word, arg) = line.split_once(' ').unwrap_or((line, ""));
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == word)
            .map(|r| (r, arg.trim()))
    }
}

/// `$CANDYBAR_SOCKET`, else `candybar.sock` in `$XDG_RUNTIME_DIR`, else in the temp dir with the
/// user's name in it.
#[must_use]
pub fn socket_path() -> PathBuf {
    if let Some(p) = std::env::var_os("CANDYBAR_SOCKET") {
        return PathBuf::from(p);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| Path::new(d).is_dir()) {
        return Path::new(&dir).join("candybar.sock");
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
    std::env::temp_dir().join(format!("candybar-{user}.sock"))
}

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("candybar is not running (nothing answers on {0}); start it with `candybar`")]
    NotRunning(PathBuf),
    #[error("cannot talk to the running candybar on {path}: {reason}")]
    Io {
        path: PathBuf,
        reason: std::io::Error,
    },
}

/// Sends one request to the running instance and returns its answer.
pub fn send(path: &Path, request: InstanceRequest) -> Result<String, InstanceError> {
    send_with(path, request, "")
}

/// Sends one request with its argument (a path, for [`InstanceRequest::ReleaseJournal`]) to the
/// running instance and returns its answer.
pub fn send_with(
    path: &Path,
    request: InstanceRequest,
    arg: &str,
) -> Result<String, InstanceError> {
    let io = |source| InstanceError::Io {
        path: path.to_owned(),
        reason: source,
    };
    let mut stream = UnixStream::connect(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            InstanceError::NotRunning(path.to_owned())
        }
        _ => io(e),
    })?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    if arg.contains('\n') {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a request is one line",
        )));
    }
    if arg.is_empty() {
        writeln!(stream, "{}", request.as_str()).map_err(io)?;
    } else {
        writeln!(stream, "{} {arg}", request.as_str()).map_err(io)?;
    }
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).map_err(io)?;
    Ok(answer.trim_end().to_owned())
}

/// This instance's socket, and the lock that makes it the only one.
pub struct Claimed {
    listener: UnixListener,
    /// Held (flock) for the app's life: two launches at the same moment cannot both bind.
    lock: std::fs::File,
}

/// Becomes the instance: `Ok(Some(_))`, or `Ok(None)` when another one answers on `path` or is
/// starting up (it holds `path.lock`). A socket file left by a crashed instance is replaced.
pub fn claim(path: &Path) -> std::io::Result<Option<Claimed>> {
    if UnixStream::connect(path).is_ok() {
        return Ok(None);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    // Only this user may ask for recordings.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(Some(Claimed { listener, lock }))
}

/// Sends `request` to the instance that holds `path`, waiting up to `patience` for one that is
/// still starting to begin answering.
pub fn send_patiently(
    path: &Path,
    request: InstanceRequest,
    patience: Duration,
) -> Result<String, InstanceError> {
    let until = std::time::Instant::now() + patience;
    loop {
        match send(path, request) {
            Err(InstanceError::NotRunning(_)) if std::time::Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(50));
            }
            r => return r,
        }
    }
}

/// Answers requests on `listener` from an `instance` thread: each request (and its argument) goes
/// to `handle`, its answer goes back; a line that is no request is answered with the ones there are. The socket
/// file is removed when the returned guard drops.
pub fn serve(
    claimed: Claimed,
    path: PathBuf,
    handle: impl Fn(InstanceRequest, &str) -> String + Send + 'static,
) -> std::io::Result<Served> {
    let Claimed { listener, lock } = claimed;
    std::thread::Builder::new()
        .name("instance".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
                let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
                let mut line = String::new();
                let read = stream
                    .try_clone()
                    .map(|s| BufReader::new(std::io::Read::take(s, 4096)).read_line(&mut line));
                let answer = match read {
                    Ok(Ok(_)) => match InstanceRequest::parse(&line) {
                        Some((r, arg)) => handle(r, arg),
                        None => unknown_request(line.trim()),
                    },
                    _ => "error: no request".into(),
                };
                let _ = writeln!(stream, "{answer}");
            }
        })?;
    Ok(Served { path, _lock: lock })
}

/// The answer to a line that is no request: what was asked (cut) and what can be.
fn unknown_request(line: &str) -> String {
    let shown: String = line.chars().take(40).collect();
    let known: Vec<&str> = InstanceRequest::ALL.iter().map(|r| r.as_str()).collect();
    format!("error: unknown request {shown:?} ({})", known.join(", "))
}

/// Removes the socket file when the app exits (and then lets go of the lock).
pub struct Served {
    path: PathBuf,
    _lock: std::fs::File,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_instance_hands_its_request_to_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        assert!(matches!(
            send(&path, InstanceRequest::Toggle),
            Err(InstanceError::NotRunning(_))
        ));
        let claimed = claim(&path).unwrap().expect("first instance");
        let served = serve(claimed, path.clone(), |req, arg| {
            format!("got {}{arg}", req.as_str())
        })
        .unwrap();
        assert!(
            claim(&path).unwrap().is_none(),
            "second instance must defer"
        );
        for r in InstanceRequest::ALL {
            assert_eq!(send(&path, r).unwrap(), format!("got {}", r.as_str()));
        }
        assert_eq!(
            send_with(&path, InstanceRequest::ReleaseJournal, "/a b/journal").unwrap(),
            "got release-journal/a b/journal",
            "the argument arrives whole, spaces and all"
        );
        // Another program writing junk on the socket gets the list, not a crash.
        let mut raw = UnixStream::connect(&path).unwrap();
        writeln!(raw, "launch missiles").unwrap();
        let mut answer = String::new();
        BufReader::new(raw).read_line(&mut answer).unwrap();
        assert!(
            answer.starts_with("error: unknown request \"launch missiles\"")
                && answer.contains("server-status"),
            "{answer}"
        );
        drop(served);
        assert!(!path.exists());
    }

    #[test]
    fn a_stale_socket_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        drop(UnixListener::bind(&path).unwrap()); // a crashed instance's file
        assert!(path.exists());
        assert!(claim(&path).unwrap().is_some());
    }

    #[test]
    fn a_launch_defers_to_one_that_is_still_starting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        // Another launch holds the lock but has not bound its socket yet.
        let starting = std::fs::File::create(dir.path().join("c.sock.lock")).unwrap();
        starting.lock().unwrap();
        assert!(claim(&path).unwrap().is_none(), "both launches would serve");
        drop(starting);
        let claimed = claim(&path).unwrap();
        assert!(claimed.is_some(), "the lock is freed when its holder exits");
    }
}
