//! What runs in a zellij session's pane (`candybar session relay`): zellij has no `pipe-pane`,
//! so the command runs on a terminal of the relay's own, and the relay copies every byte it
//! prints both to the pane and to the session's log — from the first byte, exactly as the
//! terminal received it (`script(1)` does the same but writes its own header and footer into
//! the log). Keys typed in the pane go to the command unchanged (the pane's terminal is put in
//! raw mode, so Ctrl-C reaches the command as the byte it is); the pane's size follows the
//! command's terminal. The exit status is written to a file (whole: a temporary file renamed),
//! then the zellij session is closed, as tmux closes a session whose command has ended.

use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use rustix::termios::{OptionalActions, Termios};
use signal_hook::consts::{SIGHUP, SIGWINCH};
use signal_hook::iterator::Signals;

/// After the command exits, output still on its way is waited for until none has come for
/// this long (a child it left behind may hold the terminal open for good)…
const DRAIN_QUIET: Duration = Duration::from_millis(500);
/// …and for this long at most.
const DRAIN_MAX: Duration = Duration::from_secs(5);

/// What `candybar session relay` was asked to do.
#[derive(Clone, Debug)]
pub struct Relay {
    pub log: PathBuf,
    pub exit_file: PathBuf,
    /// The relay's process id is written here: the session's processes are its descendants.
    pub pid_file: PathBuf,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Where it runs (given here, not as the pane's directory: zellij expands `$` there).
    pub dir: Option<PathBuf>,
    /// The zellij program and the session to close when the command has ended.
    pub close: Option<(PathBuf, String)>,
}

/// Runs the relay; its exit code is the command's (128 + the signal when one ended it, 127
/// when it could not be started).
pub fn run(relay: &Relay) -> i32 {
    let signals = handle_signals();
    // Raw before anything can be typed in the pane: a Ctrl-C (the byte) goes to the command,
    // never as SIGINT to the relay (which would leave no exit status and the session open).
    let pane = std::io::stdin();
    let raw = RawMode::enter(&pane);
    let _ = write_whole(&relay.pid_file, &format!("{}\n", std::process::id()));
    let code = match relay_command(relay, &pane, signals) {
        Ok(code) => code,
        Err(e) => {
            let program = relay.command.first().map_or("", String::as_str);
            let message = format!("candybar: cannot start {program:?}: {e}\r\n");
            let _ = std::io::stderr().write_all(message.as_bytes());
            let _ = append(&relay.log, message.as_bytes());
            127
        }
    };
    drop(raw);
    let _ = write_whole(&relay.exit_file, &format!("{code}\n"));
    if let Some((zellij, session)) = &relay.close {
        // The pane's own session: this ends the relay too, the last thing it does.
        let _ = Command::new(zellij)
            .args(["kill-session", session])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    code
}

fn relay_command(
    relay: &Relay,
    pane: &std::io::Stdin,
    signals: Option<Signals>,
) -> std::io::Result<i32> {
    let Some((program, args)) = relay.command.split_first() else {
        return Err(std::io::Error::other("no command"));
    };
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&relay.log)?;
    let (master, terminal) = open_pty()?;
    if let Ok(size) = rustix::termios::tcgetwinsize(pane.as_fd()) {
        let _ = rustix::termios::tcsetwinsize(&terminal, size);
    }
    // util-linux `setsid --ctty` makes the command a session leader whose controlling terminal
    // is this one: Ctrl-C (the byte) becomes SIGINT for it, and it is the foreground job.
    let mut command = command_on(&terminal, program, args)?;
    if let Some(dir) = &relay.dir {
        command.current_dir(dir);
    }
    let mut child = command.spawn()?;
    drop(terminal);

    if let Some(mut signals) = signals {
        let resize_to = master.try_clone()?;
        spawn("relay-signals", move || {
            for signal in signals.forever() {
                if signal == SIGHUP {
                    // The pane hung up (its zellij session was killed): the relay ends as it
                    // would have by default; the command gets its hang-up as its terminal
                    // closes.
                    std::process::exit(128 + SIGHUP);
                }
                // SIGWINCH: the pane was resized; the command's terminal follows.
                if let Ok(size) = rustix::termios::tcgetwinsize(std::io::stdin().as_fd()) {
                    let _ = rustix::termios::tcsetwinsize(&resize_to, size);
                }
            }
        });
    }
    {
        // Keys: pane → command. Ends with the process (a read blocks until a key comes).
        let mut to_command = std::fs::File::from(master.try_clone()?);
        spawn("relay-keys", move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 || to_command.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
    // Output: command → log, then pane, until the terminal is closed by all who hold it. The
    // log comes first: it is what candybar reads; a pane that is slow to take it (zellij busy)
    // must not keep the last lines from it.
    let (drained_tx, drained) = mpsc::sync_channel::<()>(1);
    // When output last came, in ms since `began`.
    let began = std::time::Instant::now();
    let read_at = Arc::new(AtomicU64::new(0));
    let mut from_command = std::fs::File::from(master);
    {
        let read_at = Arc::clone(&read_at);
        spawn("relay-output", move || {
            let mut out = std::io::stdout();
            let mut buf = [0u8; 16 * 1024];
            loop {
                match from_command.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let _ = log.write_all(&buf[..n]);
                        let ms = began.elapsed().as_millis();
                        read_at.store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
                        let _ = out.write_all(&buf[..n]);
                        let _ = out.flush();
                    }
                }
            }
            let _ = drained_tx.send(());
        });
    }
    let status = child.wait()?;
    let exited = std::time::Instant::now();
    while drained.recv_timeout(Duration::from_millis(50)).is_err() {
        let last = Duration::from_millis(read_at.load(Ordering::Relaxed));
        let quiet = began.elapsed().saturating_sub(last);
        if quiet >= DRAIN_QUIET || exited.elapsed() >= DRAIN_MAX {
            break;
        }
    }
    Ok(exit_code(status))
}

/// A new terminal: its master side (the relay's) and the terminal the command gets.
fn open_pty() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let master = rustix::pty::openpt(
        rustix::pty::OpenptFlags::RDWR
            | rustix::pty::OpenptFlags::NOCTTY
            | rustix::pty::OpenptFlags::CLOEXEC,
    )?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let terminal = rustix::fs::open(
        name.as_c_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    Ok((master, terminal))
}

/// `program args` on `terminal` (stdin, stdout, stderr), its controlling terminal where
/// `setsid` is installed.
fn command_on(terminal: &OwnedFd, program: &str, args: &[String]) -> std::io::Result<Command> {
    let mut c = if crate::manager::find_program("setsid", Path::new("/")).is_some() {
        let mut c = Command::new("setsid");
        c.args(["--ctty", "--wait", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    c.args(args)
        .stdin(terminal.try_clone()?)
        .stdout(terminal.try_clone()?)
        .stderr(terminal.try_clone()?);
    Ok(c)
}

/// Catches the signals a terminal sends, so that the command starts with their default
/// handling whatever the relay inherited: a process started in the background by a
/// non-interactive shell (`cmd &`, as CI and services run things) has SIGINT and SIGQUIT
/// ignored, `nohup` SIGHUP — and an ignored signal stays ignored across `exec`, so Ctrl-C
/// would not stop the agent. A caught one goes back to its default at `exec`. The relay itself
/// ignores SIGINT, SIGQUIT and SIGTSTP (the pane is raw; they can only come from `kill`); the
/// returned SIGHUP (end) and SIGWINCH (the pane resized) are waited for on a thread — a signal
/// that comes before it starts waits for it.
fn handle_signals() -> Option<Signals> {
    use signal_hook::consts::{SIGINT, SIGQUIT, SIGTSTP};
    let ignored = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGQUIT, SIGTSTP] {
        let _ = signal_hook::flag::register(signal, Arc::clone(&ignored));
    }
    Signals::new([SIGHUP, SIGWINCH]).ok()
}

/// A named thread; one that cannot start leaves that part undone (the relay goes on).
fn spawn(name: &str, work: impl FnOnce() + Send + 'static) {
    if let Err(e) = std::thread::Builder::new().name(name.into()).spawn(work) {
        let _ = writeln!(std::io::stderr(), "candybar: no {name} thread: {e}\r");
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// The pane's terminal in raw mode while the relay runs (restored on drop): the keys go to the
/// command's terminal, whose own settings decide what they mean.
struct RawMode {
    before: Option<Termios>,
}

impl RawMode {
    fn enter(pane: &std::io::Stdin) -> Self {
        let before = rustix::termios::tcgetattr(pane.as_fd()).ok();
        if let Some(before) = &before {
            let mut raw = before.clone();
            raw.make_raw();
            let _ = rustix::termios::tcsetattr(pane.as_fd(), OptionalActions::Now, &raw);
        }
        Self { before }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(before) = &self.before {
            let _ =
                rustix::termios::tcsetattr(std::io::stdin().as_fd(), OptionalActions::Now, before);
        }
    }
}

fn append(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(bytes)
}

/// `text` in `path`, whole or not at all (a temporary file renamed).
fn write_whole(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
