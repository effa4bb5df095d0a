//! Test support: real `RabbitMQ` brokers started by the project's own script (`.ci/rabbitmq`), and
//! the real `candybar` binary as a child process.

// Each test binary uses a different part; a failed setup panics with its message.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::items_after_statements,
    clippy::match_wild_err_arm
)]

pub mod asr;
pub mod github;
pub mod journal;
pub mod kit;
pub mod llm;

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A private `RabbitMQ` node in a temp dir, killed when dropped.
pub struct Broker {
    pub port: u16,
    pub dir: tempfile::TempDir,
}

fn script(args: &[&str]) -> std::process::Output {
    Command::new(repo().join(".ci/rabbitmq"))
        .args(args)
        .output()
        .expect("run .ci/rabbitmq")
}

impl Broker {
    /// Starts a broker; a missing `RabbitMQ` fails the test with what to install.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("candybar-rmq")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let broker = Self { port, dir };
        match broker.boot() {
            Ok(()) => broker,
            Err(3) => panic!(
                "this test needs a real RabbitMQ and none is installed: run `sudo apt-get install rabbitmq-server` (or .ci/install-deps)"
            ),
            Err(code) => panic!("the broker did not start (exit {code})"),
        }
    }

    fn boot(&self) -> Result<(), i32> {
        // With our pid as owner, the broker dies with this test binary even when it is a
        // static that is never dropped.
        let owner = std::process::id().to_string();
        let dir = self.dir.path().to_str().expect("utf-8 path");
        let out = script(&["start", dir, &self.port.to_string(), &owner]);
        if out.status.success() {
            Ok(())
        } else {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            Err(out.status.code().unwrap_or(1))
        }
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// SIGKILL: a crash.
    pub fn kill(&self) {
        script(&["kill", self.dir.path().to_str().expect("utf-8 path")]);
    }

    /// Stops the broker cleanly (SIGTERM): what it was told so far is on disk.
    pub fn stop(&self) {
        script(&["stop", self.dir.path().to_str().expect("utf-8 path")]);
    }

    /// Starts again on the same port with the same data.
    pub fn restart(&self) {
        self.boot().expect("broker restart");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The broker for tests that do not kill it: `CANDYBAR_TEST_AMQP_URL` (set by .ci/run), else one
/// started for this test binary.
pub fn shared_broker_url() -> String {
    if let Ok(url) = std::env::var("CANDYBAR_TEST_AMQP_URL")
        && !url.is_empty()
    {
        return url;
    }
    static BROKER: std::sync::OnceLock<Broker> = std::sync::OnceLock::new();
    BROKER.get_or_init(Broker::start).url()
}

pub fn free_port() -> u16 {
    // Ask the OS for a free port; the broker binds it a moment later.
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let p = l.local_addr().expect("addr").port();
    // Keep clear of the AMQP dist port range clash (port + 20000 must be valid).
    if p > 45_000 { 20_000 + p % 20_000 } else { p }
}

/// The real binary as a child; its stdout and stderr lines arrive on channels.
pub struct Candybar {
    pub child: Child,
    pub stdout: Receiver<String>,
    pub stderr_lines: Arc<Mutex<Vec<String>>>,
}

impl Candybar {
    pub fn spawn(args: &[&str]) -> Self {
        Self::spawn_env(args, &[])
    }

    /// Like [`Self::spawn`], with extra environment variables.
    pub fn spawn_env(args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::spawn_bin(Path::new(env!("CARGO_BIN_EXE_candybar")), args, envs)
    }

    /// Like [`Self::spawn_env`], for another build of candybar (`bin`).
    pub fn spawn_bin(bin: &Path, args: &[&str], envs: &[(&str, &str)]) -> Self {
        // A window of its own: never handed over to a candybar already running for this user.
        let socket = std::env::temp_dir().join(format!("{}.sock", unique("candybar-test")));
        let mut child = Command::new(bin)
            .args(args)
            .env("CANDYBAR_SOCKET", socket)
            .env("CANDYBAR_NO_KEYCHAIN", "1")
            .env(
                "CANDYBAR_SECRETS",
                "/nonexistent/candybar-test-secrets.toml",
            )
            // Never the user's journal: a window on a broker records (a test's own wins).
            .env(
                "CANDYBAR_JOURNAL",
                std::env::temp_dir().join(unique("candybar-test-journal")),
            )
            // Nor the user's sessions.
            .env(
                "CANDYBAR_SESSIONS_DIR",
                std::env::temp_dir().join(unique("candybar-test-sessions")),
            )
            .envs(envs.iter().copied())
            .env("CANDYBAR_CONFIG", "/nonexistent/candybar-test-config.toml")
            .env_remove("CANDYBAR_AMQP_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn candybar");
        let (tx, stdout) = sync_channel(1 << 20);
        let out = child.stdout.take().expect("stdout");
        std::thread::Builder::new()
            .name("test-stdout".into())
            .spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
            .expect("thread");
        let stderr_lines = Arc::new(Mutex::new(Vec::new()));
        let err = child.stderr.take().expect("stderr");
        let sink = stderr_lines.clone();
        std::thread::Builder::new()
            .name("test-stderr".into())
            .spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    sink.lock().push(line);
                }
            })
            .expect("thread");
        Self {
            child,
            stdout,
            stderr_lines,
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr_lines.lock().join("\n")
    }

    /// Waits until stderr has a line containing `needle` `times` times.
    pub fn wait_stderr(&self, needle: &str, times: usize, timeout: Duration) {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self
                .stderr_lines
                .lock()
                .iter()
                .filter(|l| l.contains(needle))
                .count()
                >= times
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no '{needle}' (x{times}) on candybar's stderr within {timeout:?}; stderr:\n{}",
            self.stderr()
        );
    }

    /// Collects `n` stdout lines.
    pub fn lines(&self, n: usize, timeout: Duration) -> Vec<String> {
        let end = Instant::now() + timeout;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let left = end.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(l) => out.push(l),
                Err(_) => panic!(
                    "got {} of {n} lines within {timeout:?}; stderr:\n{}",
                    out.len(),
                    self.stderr()
                ),
            }
        }
        out
    }

    /// Sends a signal (`TERM`, `STOP`, `CONT`) to the process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill(1) from procps must be installed");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for exit; kills after `timeout`.
    pub fn wait(mut self, timeout: Duration) -> (Option<i32>, String) {
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                std::thread::sleep(Duration::from_millis(50)); // let the reader threads finish
                return (status.code(), self.stderr());
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!(
                    "candybar did not exit within {timeout:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Candybar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails with what to install when no terminal emulator (xterm) is here: tests that attach a
/// person's terminal to a session need one.
pub fn require_xterm() {
    assert!(
        Command::new("xterm").arg("-version").output().is_ok(),
        "this test needs a terminal emulator: sudo apt-get install xterm"
    );
}

/// A private X server (Xvfb) for tests of the real window, killed when dropped.
pub struct Xvfb {
    child: Child,
    pub display: String,
}

impl Xvfb {
    /// Starts Xvfb on a free display; a missing Xvfb fails the test with what to install.
    pub fn start() -> Self {
        assert!(
            Command::new("Xvfb").arg("-help").output().is_ok(),
            "this test needs a real X server and Xvfb is not installed: run `sudo apt-get install xvfb` (or .ci/install-deps)"
        );
        // Xvfb picks a free display itself and says which once it accepts clients: two tests
        // starting at once never share one (and one's exit never kills the other's windows).
        let (reader, writer) = std::io::pipe().expect("pipe");
        let child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(writer)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn Xvfb");
        let mut line = String::new();
        let _ = BufReader::new(reader).read_line(&mut line);
        let n: u32 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("Xvfb did not start (it said {line:?})"));
        Self {
            child,
            display: format!(":{n}"),
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion and returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (Option<i32>, String, String) {
    run_env(args, &[])
}

/// Like [`run`], with extra environment variables.
pub fn run_env(args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_candybar"))
        .args(args)
        // Never the developer's own keychain or secrets file.
        .env("CANDYBAR_NO_KEYCHAIN", "1")
        .env(
            "CANDYBAR_SECRETS",
            "/nonexistent/candybar-test-secrets.toml",
        )
        .envs(envs.iter().copied())
        .env("CANDYBAR_CONFIG", "/nonexistent/candybar-test-config.toml")
        .env_remove("CANDYBAR_AMQP_URL")
        .output()
        .expect("run candybar");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}.{}.{}", std::process::id(), n % 1_000_000_007)
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Publishes with plain lapin and publisher confirms (independent of candybar's publisher).
/// Publishes persistent messages (routing key, body, message id) and waits for the broker's
/// confirms, declaring the exchange (durable topic) first; panics unless all are confirmed.
pub fn lapin_publish(url: &str, exchange: &str, msgs: &[(String, Vec<u8>, Option<String>)]) {
    let confirmed = publish_confirmed(url, exchange, msgs, true);
    assert_eq!(
        confirmed.len(),
        msgs.len(),
        "not every message was confirmed"
    );
}

/// Runs `f` on a new connection to `url` (plain lapin, independent of candybar), then closes it.
pub fn with_connection<T>(url: &str, f: impl AsyncFnOnce(&Connection) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conn = Connection::connect(url, ConnectionProperties::default())
            .await
            .unwrap();
        let out = f(&conn).await;
        // Bounded: closing a connection whose broker was just killed may never be answered.
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "done".into())).await;
        out
    })
}

/// Publishes `msgs` with confirms until done or the broker goes away; the indexes of the
/// messages the broker confirmed.
pub fn publish_confirmed(
    url: &str,
    exchange: &str,
    msgs: &[(String, Vec<u8>, Option<String>)],
    declare: bool,
) -> Vec<usize> {
    if declare {
        with_connection(url, async |conn| {
            let ch = conn.create_channel().await.unwrap();
            ch.exchange_declare(
                exchange.into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        });
    }
    let done = AtomicBool::new(false);
    publish_until(url, exchange, |i| msgs.get(i).cloned(), &done)
}

/// Publishes `make(0)`, `make(1)`, … (routing key, body, message id) with confirms until `make`
/// gives `None`, `stop` is set or the broker goes away (so a test can kill something while
/// publishing is sure to be under way, however fast the machine); the indexes the broker
/// confirmed.
pub fn publish_until(
    url: &str,
    exchange: &str,
    make: impl Fn(usize) -> Option<(String, Vec<u8>, Option<String>)>,
    stop: &AtomicBool,
) -> Vec<usize> {
    with_connection(url, async |conn| {
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let mut pending = Vec::new();
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            let Some((rk, body, message_id)) = make(i) else {
                break;
            };
            let mut props = BasicProperties::default().with_delivery_mode(2);
            if let Some(id) = message_id {
                props = props.with_message_id(ShortString::from(id));
            }
            let Ok(confirm) = ch
                .basic_publish(
                    exchange.into(),
                    ShortString::try_new(rk).unwrap(),
                    BasicPublishOptions::default(),
                    &body,
                    props,
                )
                .await
            else {
                break;
            };
            pending.push((i, confirm));
            i += 1;
            if i % 64 == 0 {
                // Let the runtime read the broker's confirms and notice a closed connection.
                tokio::task::yield_now().await;
            }
        }
        let mut confirmed = Vec::new();
        // A confirm still missing after a minute never came (a killed broker): not confirmed.
        let end = tokio::time::Instant::now() + Duration::from_mins(1);
        for (i, c) in pending {
            let answer = tokio::time::timeout_at(end, c).await;
            if answer.is_ok_and(|c| c.is_ok_and(|c| c.is_ack())) {
                confirmed.push(i);
            }
        }
        confirmed
    })
}

/// [`publish_until`] on a thread of its own, until [`Publishing::stop`].
pub struct Publishing {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<usize>>,
}

impl Publishing {
    pub fn start(
        url: &str,
        exchange: &str,
        make: impl Fn(usize) -> Option<(String, Vec<u8>, Option<String>)> + Send + 'static,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (to, via, until) = (url.to_owned(), exchange.to_owned(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("publisher".into())
            .spawn(move || publish_until(&to, &via, make, &until))
            .unwrap();
        Self { stop, thread }
    }

    /// Stops publishing; the indexes the broker confirmed.
    pub fn stop(self) -> Vec<usize> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Declares a durable queue `name` with `args` (a stream: `x-queue-type: stream`), bound to
/// `exchange` with `#` when one is given.
pub fn declare_durable_queue(url: &str, name: &str, args: FieldTable, bind_to: Option<&str>) {
    use lapin::options::{QueueBindOptions, QueueDeclareOptions};
    with_connection(url, async |conn| {
        let ch = conn.create_channel().await.unwrap();
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        ch.queue_declare(name.into(), durable, args).await.unwrap();
        if let Some(exchange) = bind_to {
            let bind = QueueBindOptions::default();
            ch.queue_bind(
                name.into(),
                exchange.into(),
                "#".into(),
                bind,
                FieldTable::default(),
            )
            .await
            .unwrap();
        }
    });
}

pub fn declare_exchange(url: &str, exchange: &str) {
    lapin_publish(url, exchange, &[]);
}

/// Held by tests that run the Whisper model: whisper.cpp's threads busy-wait, so two decodes
/// at once on a small machine slow each other down many times over (see shared/models/README).
pub fn model_lock() -> parking_lot::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
}

/// The Whisper model for tests: `CANDYBAR_TEST_MODEL` (the README's test command sets it, from
/// `.ci/model`), else the shared copy beside the repository. A missing model fails the test with
/// how to get one.
pub fn test_model() -> PathBuf {
    let candidates = [
        std::env::var_os("CANDYBAR_TEST_MODEL").map(PathBuf::from),
        Some(repo().join("../shared/models/ggml-tiny.en.bin")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "this test needs a Whisper model and none was found: run the tests with .ci/test \
                 (it finds or downloads ggml-tiny.en.bin; see .ci/model), or set \
                 CANDYBAR_TEST_MODEL=/path/to/ggml-tiny.en.bin"
            )
        })
}

/// Starts `candybar asr serve` with the test model on a free port (or the `--port` in `extra`) and waits until /health says the model is loaded.
pub fn asr_server(extra: &[&str]) -> (Candybar, String) {
    asr_server_with(&test_model(), extra)
}

/// [`asr_server`] with another model.
pub fn asr_server_with(model: &Path, extra: &[&str]) -> (Candybar, String) {
    asr_server_of(Path::new(env!("CARGO_BIN_EXE_candybar")), model, extra, &[])
}

/// [`asr_server_with`] from another build of candybar (`bin`), with extra environment variables.
pub fn asr_server_of(
    bin: &Path,
    model: &Path,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> (Candybar, String) {
    let mut args = vec!["asr", "serve", "--model", path_str(model)];
    if !extra.contains(&"--port") {
        args.extend(["--port", "0"]);
    }
    args.extend_from_slice(extra);
    let s = Candybar::spawn_bin(bin, &args, envs);
    s.wait_stderr("listening on http://", 1, Duration::from_secs(20));
    let line = s.stderr();
    let addr = line
        .split("listening on http://")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let end = Instant::now() + Duration::from_secs(30);
    while http_get(&addr, "/health").0 != 200 {
        assert!(Instant::now() < end, "model never loaded: {}", s.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    (s, addr)
}

pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (code, body)
}

/// Declares a queue (named, not exclusive, so it outlives this helper's connection) bound to
/// `exchange` with `key`, declaring the exchange too.
pub fn bind_queue(url: &str, exchange: &str, key: &str) -> String {
    use lapin::options::{QueueBindOptions, QueueDeclareOptions};
    declare_exchange(url, exchange);
    let queue = unique("candybar-test-q");
    with_connection(url, async |conn| {
        let ch = conn.create_channel().await.unwrap();
        ch.queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_bind(
            queue.as_str().into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    });
    queue
}

/// Takes up to `n` message bodies from `queue`, waiting up to `timeout` for them.
pub fn take_messages(url: &str, queue: &str, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
    use lapin::options::BasicGetOptions;
    with_connection(url, async |conn| {
        let ch = conn.create_channel().await.unwrap();
        let end = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < n && Instant::now() < end {
            match ch
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
            {
                Some(m) => out.push(m.delivery.data.clone()),
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        out
    })
}

/// A private PulseAudio with a virtual microphone (`.ci/pulse`): what `play` plays is what the
/// microphone hears. A missing PulseAudio fails the test with what to install.
pub struct Pulse {
    pub dir: tempfile::TempDir,
}

impl Pulse {
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("candybar-pulse")
            .tempdir()
            .expect("temp dir");
        let owner = std::process::id().to_string();
        let out = Command::new(repo().join(".ci/pulse"))
            .args(["start", path_str(dir.path()), &owner])
            .output()
            .expect("run .ci/pulse");
        match out.status.code() {
            Some(0) => Self { dir },
            Some(3) => panic!(
                "this test needs PulseAudio and none is installed: run `sudo apt-get install pulseaudio pulseaudio-utils` (or .ci/install-deps)"
            ),
            _ => panic!(
                "PulseAudio did not start ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    /// The environment a client needs to reach this server.
    pub fn env(&self) -> (&'static str, String) {
        (
            "PULSE_SERVER",
            format!("unix:{}/run/native", path_str(self.dir.path())),
        )
    }

    /// Plays a file into the virtual microphone; returns when it has been played.
    pub fn play(&self, wav: &Path) {
        self.play_on("vroom", wav);
    }

    /// Plays a file through the speakers (what the computer plays); returns when it has been
    /// played.
    pub fn play_out(&self, wav: &Path) {
        self.play_on("vspk", wav);
    }

    /// Starts recording what the speakers play (16 kHz mono s16le into `raw`): `parec`'s
    /// process, to be killed when done.
    pub fn record_speakers(&self, raw: &Path) -> std::process::Child {
        let (k, v) = self.env();
        Command::new("parec")
            .args([
                "--device",
                "vspk.monitor",
                "--rate=16000",
                "--channels=1",
                "--format=s16le",
            ])
            .stdout(std::fs::File::create(raw).expect("create the recording"))
            .env(k, v)
            .spawn()
            .expect("run parec (pulseaudio-utils)")
    }

    /// Starts playing a file through the speakers as `paplay`, an application: its process.
    pub fn start_playing(&self, wav: &Path) -> std::process::Child {
        let (k, v) = self.env();
        Command::new("paplay")
            .args(["--device", "vspk"])
            .arg(wav)
            .env(k, v)
            .spawn()
            .expect("run paplay (pulseaudio-utils)")
    }

    fn play_on(&self, sink: &str, wav: &Path) {
        let (k, v) = self.env();
        let out = Command::new("paplay")
            .args(["--device", sink])
            .arg(wav)
            .env(k, v)
            .output()
            .expect("run paplay (pulseaudio-utils)");
        assert!(
            out.status.success(),
            "paplay failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Freezes (`SIGSTOP`) or thaws (`SIGCONT`) the sound server: a frozen one accepts
    /// connections and never answers, as a PulseAudio on a loaded machine does for a while.
    pub fn signal(&self, signal: &str) {
        let pid_file = self.dir.path().join("run/pulse/pid");
        let pid = std::fs::read_to_string(&pid_file)
            .unwrap_or_else(|e| panic!("PulseAudio's pid file {}: {e}", pid_file.display()));
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), pid.trim()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{signal} {}", pid.trim());
    }

    /// Stops the sound server: every device goes away.
    pub fn stop(&self) {
        let _ = Command::new(repo().join(".ci/pulse"))
            .args(["stop", path_str(self.dir.path())])
            .status();
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A stand-in WebSocket server on a runtime of its own; `peer` handles each connection.
pub fn stand_in<F, Fut>(peer: F) -> (String, tokio::runtime::Runtime)
where
    F: Fn(tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("ws://{}/asr", listener.local_addr().unwrap());
    let peer = Arc::new(peer);
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let peer = peer.clone();
            tokio::spawn(async move {
                if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                    peer(ws).await;
                }
            });
        }
    });
    (url, rt)
}
