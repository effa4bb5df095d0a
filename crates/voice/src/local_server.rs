//! The built-in ASR server as a child process the app starts and stops (`candybar asr serve`):
//! a separate process, so a model's gigabytes and whisper.cpp's threads stay out of the window's
//! process and a crash there does not take the window with it. An `asr-server` thread starts it,
//! waits for `/health`, keeps the last lines of its log, and restarts it (with backoff) when it
//! dies while wanted.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub use candybar_core::voice::{ServerState, ServerStatus};

/// Lines of the server's log kept for the view.
const LOG_LINES: usize = 200;
/// How long a model may take to load before the start counts as failed.
const LOAD_TIMEOUT: Duration = Duration::from_mins(2);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalServerConfig {
    /// A ggml file or a model name (`tiny.en`), as `asr serve --model` takes it.
    pub model: String,
    pub port: u16,
    pub threads: Option<usize>,
}

impl Default for LocalServerConfig {
    fn default() -> Self {
        Self {
            model: "tiny.en".into(),
            port: 8888,
            threads: None,
        }
    }
}

impl LocalServerConfig {
    /// The endpoint the dictation client uses for this server.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/asr", self.port)
    }
}

enum Cmd {
    Start(LocalServerConfig),
    Stop,
}

/// The app's handle on the local server; cheap to clone.
#[derive(Clone)]
pub struct LocalServer {
    tx: SyncSender<Cmd>,
    status: Arc<Mutex<ServerStatus>>,
}

impl LocalServer {
    /// Starts the managing thread (not the server). `waker` asks the window for a frame.
    pub fn new(waker: impl Fn() + Send + Sync + 'static) -> Self {
        let (tx, rx) = sync_channel(8);
        let status = Arc::new(Mutex::new(ServerStatus::default()));
        let keeper = Keeper {
            status: status.clone(),
            waker: Arc::new(waker),
            child: None,
            cfg: None,
        };
        if let Err(e) = std::thread::Builder::new()
            .name("asr-server".into())
            .spawn(move || keeper.run(&rx))
        {
            status.lock().state = ServerState::Failed(format!("no thread: {e}"));
        }
        Self { tx, status }
    }

    pub fn start(&self, cfg: LocalServerConfig) {
        let _ = self.tx.try_send(Cmd::Start(cfg));
    }

    pub fn stop(&self) {
        let _ = self.tx.try_send(Cmd::Stop);
    }

    /// The status itself, for a reader that locks it for as long as it draws (the view).
    pub fn status_cell(&self) -> &Mutex<ServerStatus> {
        &self.status
    }

    pub fn status(&self) -> ServerStatus {
        self.status.lock().clone()
    }

    pub fn state(&self) -> ServerState {
        self.status.lock().state.clone()
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Keeper {
    status: Arc<Mutex<ServerStatus>>,
    waker: Arc<dyn Fn() + Send + Sync>,
    child: Option<Child>,
    /// What is wanted: `Some` while the server should run.
    cfg: Option<LocalServerConfig>,
}

/// Where the keeper is between two looks at the child.
#[derive(Default)]
struct Plan {
    /// Starts after a death so far (0: the first start).
    attempt: u32,
    next_start: Option<Instant>,
    /// When the current child was started, while its model loads.
    loading_since: Option<Instant>,
}

impl Keeper {
    fn set(&self, state: ServerState) {
        self.status.lock().state = state;
        (self.waker)();
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn last_log_line(&self) -> String {
        self.status.lock().log.back().cloned().unwrap_or_default()
    }

    fn run(mut self, rx: &Receiver<Cmd>) {
        let mut plan = Plan::default();
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Cmd::Start(cfg)) => {
                    self.kill();
                    self.cfg = Some(cfg);
                    plan = Plan {
                        next_start: Some(Instant::now()),
                        ..Plan::default()
                    };
                }
                Ok(Cmd::Stop) => {
                    self.cfg = None;
                    plan = Plan::default();
                    self.kill();
                    self.set(ServerState::Stopped);
                }
                Err(RecvTimeoutError::Timeout) => {}
                // The app is gone: so is the server (Drop kills it).
                Err(RecvTimeoutError::Disconnected) => return,
            }
            self.look(&mut plan);
        }
    }

    /// Notices a death, a finished load, a load that takes too long, a start that is due.
    fn look(&mut self, plan: &mut Plan) {
        let Some(cfg) = self.cfg.clone() else { return };
        if let Some(c) = &mut self.child
            && let Ok(Some(exit)) = c.try_wait()
        {
            self.child = None;
            let reason = format!("it exited ({exit}): {}", self.last_log_line());
            if plan.loading_since.is_some() && plan.attempt == 0 {
                // It never came up: a bad model or a taken port, which a retry will not fix.
                self.cfg = None;
                self.set(ServerState::Failed(reason));
                return;
            }
            plan.attempt += 1;
            plan.loading_since = None;
            let wait = Duration::from_secs(1 << plan.attempt.min(5)).min(Duration::from_secs(30));
            tracing::warn!("the local ASR server died ({reason}); starting it again in {wait:?}");
            self.status.lock().restarts += 1;
            self.set(ServerState::Restarting {
                attempt: plan.attempt,
                reason,
            });
            plan.next_start = Some(Instant::now() + wait);
        }
        if let Some(since) = plan.loading_since {
            if health(cfg.port) == Some(200) {
                plan.loading_since = None;
                plan.attempt = 0;
                let pid = self.child.as_ref().map_or(0, Child::id);
                tracing::info!(
                    "the local ASR server is up on port {} (pid {pid})",
                    cfg.port
                );
                self.set(ServerState::Running { pid });
            } else if since.elapsed() > LOAD_TIMEOUT {
                self.kill();
                self.cfg = None;
                self.set(ServerState::Failed(format!(
                    "the model did not load within {} s",
                    LOAD_TIMEOUT.as_secs()
                )));
            }
        }
        if plan.next_start.is_some_and(|at| Instant::now() >= at) {
            plan.next_start = None;
            match self.spawn(&cfg) {
                Ok(()) => plan.loading_since = Some(Instant::now()),
                Err(e) => {
                    self.cfg = None;
                    self.set(ServerState::Failed(e));
                }
            }
        }
    }

    /// Starts the child; its log goes to the status.
    fn spawn(&mut self, cfg: &LocalServerConfig) -> Result<(), String> {
        // A server already on the port would answer our health checks and pass for this one.
        if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", cfg.port)) {
            let who = if health(cfg.port).is_some() {
                "an ASR server already answers there (another candybar?)"
            } else {
                "another program listens there"
            };
            return Err(format!(
                "port {} is taken: {who} ({e}); stop it or choose another port",
                cfg.port
            ));
        }
        let exe = std::env::current_exe().map_err(|e| format!("cannot find candybar: {e}"))?;
        let mut cmd = Command::new(exe);
        cmd.args([
            "asr",
            "serve",
            "--exit-with-parent",
            "--model",
            &cfg.model,
            "--port",
        ])
        .arg(cfg.port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        if let Some(t) = cfg.threads {
            cmd.args(["--threads", &t.to_string()]);
        }
        let mut child = cmd.spawn().map_err(|e| format!("cannot start it: {e}"))?;
        if let Some(err) = child.stderr.take() {
            let status = self.status.clone();
            let _ = std::thread::Builder::new()
                .name("asr-server-log".into())
                .spawn(move || {
                    for line in BufReader::new(err).lines() {
                        let Ok(line) = line else { break };
                        let mut s = status.lock();
                        if s.log.len() == LOG_LINES {
                            s.log.pop_front();
                        }
                        s.log.push_back(line);
                    }
                });
        }
        self.child = Some(child);
        self.set(ServerState::Starting);
        Ok(())
    }
}

/// The HTTP status of `GET /health` on this machine's `port`, if anything answers.
pub fn health(port: u16) -> Option<u16> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(s, "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut head = [0u8; 16];
    s.read_exact(&mut head).ok()?;
    // "HTTP/1.1 200 OK"
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_fails_with_words_instead_of_passing_for_our_server() {
        let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = squatter.local_addr().unwrap().port();
        let server = LocalServer::new(|| {});
        server.start(LocalServerConfig {
            model: "/nonexistent/model.bin".into(),
            port,
            threads: None,
        });
        let until = Instant::now() + Duration::from_secs(5);
        while !matches!(server.state(), ServerState::Failed(_)) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        let words = server.state().words(port);
        assert!(words.contains(&format!("port {port} is taken")), "{words}");
    }
}
