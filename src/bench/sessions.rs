//! `candybar bench sessions`: how fast the session commands answer, as a person runs them —
//! each timing is the real binary from exec to what the person waits for.
//!
//! - start → started on the bus: from spawning `candybar session start` to a consumer on the
//!   real broker receiving its `jelmore.session.started` (a private tmux server; the first
//!   start also starts that server, so it is reported apart; `--mux zellij`: zellij sessions in
//!   a private socket directory, each a server of its own).
//! - list: `candybar session list --all` with N sessions in the SQLite store, exec to exit,
//!   next to `candybar --version` (the process's own start-up) in the same run; and the same
//!   with the sessions in Redis (a private redis-server the bench starts, when installed).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use futures_util::StreamExt as _;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::json;

use crate::cli::SourceArgs;
use candybar_core::time::now_us;
use candybar_sessions::{Provider, Session, SessionState, SqliteStore};

#[derive(Args, Debug)]
pub struct SessionsBenchArgs {
    /// Sessions started (and timed to their event on the bus)
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Sessions in the store while `session list` is timed
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// The multiplexer the started sessions run in: tmux or zellij (`CANDYBAR_ZELLIJ` names
    /// the program)
    #[arg(long, default_value = "tmux", value_parser = ["tmux", "zellij"])]
    mux: String,
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// p50, p95 and max of `samples`, in ms.
fn summary(mut samples: Vec<Duration>) -> serde_json::Value {
    samples.sort();
    let at = |q: f64| {
        samples
            .get(((samples.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .map_or(0.0, millis)
    };
    json!({"n": samples.len(), "p50_ms": at(0.5), "p95_ms": at(0.95), "max_ms": at(1.0)})
}

/// The binary with the bench's sessions directory and tmux server.
fn candybar(dir: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap_or_else(|_| "candybar".into()));
    c.env("CANDYBAR_SESSIONS_DIR", dir.join("state"))
        .env("CANDYBAR_TMUX_SOCKET", dir.join("tmux.sock"))
        .env("CANDYBAR_ZELLIJ_SOCKET_DIR", dir.join("zs"))
        .env("CANDYBAR_CONFIG", "/nonexistent/candybar-bench-config.toml")
        .stdin(Stdio::null());
    c
}

pub async fn bench_sessions(
    a: &SessionsBenchArgs,
    source: &SourceArgs,
) -> anyhow::Result<serde_json::Value> {
    let settings = source.settings()?;
    let url = source
        .amqp_url(&settings)
        .context("bench sessions needs a broker: --amqp URL (or CANDYBAR_AMQP_URL)")?;
    let zellij = std::env::var_os("CANDYBAR_ZELLIJ").unwrap_or_else(|| "zellij".into());
    if a.mux == "zellij" {
        candybar_sessions::Zellij {
            program: zellij.clone().into(),
            ..candybar_sessions::Zellij::default()
        }
        .version()?;
    } else {
        candybar_sessions::Tmux::version()?;
    }
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("zs"))?;
    let started = time_starts(dir.path(), url.expose(), a.rounds, &a.mux).await;
    let _ = Command::new("tmux")
        .arg("-S")
        .arg(dir.path().join("tmux.sock"))
        .arg("kill-server")
        .stderr(Stdio::null())
        .status();
    let _ = Command::new(&zellij)
        .env("ZELLIJ_SOCKET_DIR", dir.path().join("zs"))
        .args(["kill-all-sessions", "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let (cold, starts) = started?;
    let zellij_alone = if a.mux == "zellij" {
        summary(time_zellij_alone(
            &zellij,
            &dir.path().join("zs-alone"),
            a.rounds,
        )?)
    } else {
        json!(null)
    };
    fill_store(dir.path(), a.sessions)?;
    let time = |args: &[&str]| -> anyhow::Result<Vec<Duration>> {
        let mut v = Vec::new();
        for _ in 0..20 {
            let t0 = Instant::now();
            let out = candybar(dir.path())
                .args(args)
                .output()
                .context("run candybar")?;
            v.push(t0.elapsed());
            anyhow::ensure!(
                out.status.success(),
                "candybar {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(v)
    };
    let list_all = tokio::task::block_in_place(|| time(&["session", "list", "--all"]))?;
    let list = tokio::task::block_in_place(|| time(&["session", "list"]))?;
    let version = tokio::task::block_in_place(|| time(&["--version"]))?;
    let redis = tokio::task::block_in_place(|| -> anyhow::Result<serde_json::Value> {
        let Some(server) = candybar_sessions::redis_state::LocalRedis::start(dir.path())? else {
            return Ok(json!("skipped: redis-server is not installed"));
        };
        let url = server.url();
        let mut state =
            candybar_sessions::redis_state::RedisState::open(&url, Duration::from_hours(24))?;
        for s in sessions_like(dir.path(), a.sessions) {
            state.save(&s)?;
            let ended = ended(s);
            state.save(&ended)?;
        }
        let all = time(&["session", "list", "--all", "--state", &url])?;
        Ok(json!({"sessions_in_store": a.sessions, "list_all_exec_to_exit": summary(all)}))
    })?;
    Ok(json!({
        "bench": "sessions",
        "start_to_started_on_bus": {
            "multiplexer": a.mux,
            "first_ms (starts the tmux server, or zellij's first)": cold.map(millis),
            "then": summary(starts),
            "baseline_zellij_attach_background_alone": zellij_alone,
        },
        "sessions_in_store": a.sessions + a.rounds,
        "list_all_exec_to_exit": summary(list_all),
        "list_running_exec_to_exit": summary(list),
        "baseline_version_exec_to_exit": summary(version),
        "redis": redis,
    }))
}

/// zellij's own part, for scale: `zellij attach --create-background` alone (a pane running
/// `sleep`), `rounds` times, each exec → exit; the sessions are killed after.
fn time_zellij_alone(
    zellij: &std::ffi::OsStr,
    sockets: &Path,
    rounds: usize,
) -> anyhow::Result<Vec<Duration>> {
    std::fs::create_dir_all(sockets)?;
    let mut v = Vec::new();
    let mut failed = None;
    for i in 0..rounds.max(1) {
        let t0 = Instant::now();
        let out = Command::new(zellij)
            .env("ZELLIJ_SOCKET_DIR", sockets)
            .args([
                "--layout-string",
                "layout { pane command=\"sleep\" { args \"600\"; }; }",
            ])
            .args(["attach", "--create-background", &format!("alone-{i}")])
            .stdin(Stdio::null())
            .output()?;
        v.push(t0.elapsed());
        if !out.status.success() {
            failed = Some(String::from_utf8_lossy(&out.stderr).into_owned());
            break;
        }
    }
    let _ = Command::new(zellij)
        .env("ZELLIJ_SOCKET_DIR", sockets)
        .args(["kill-all-sessions", "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Some(e) = failed {
        anyhow::bail!("zellij attach --create-background: {e}");
    }
    Ok(v)
}

/// `rounds` sessions started, each timed from spawning `candybar session start` to a consumer
/// receiving its `jelmore.session.started`: the first (which starts the tmux server), the rest.
async fn time_starts(
    dir: &Path,
    url: &str,
    rounds: usize,
    mux: &str,
) -> anyhow::Result<(Option<Duration>, Vec<Duration>)> {
    let exchange = format!("candybar.bench.sessions.{}", std::process::id());
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .context("connect to the broker")?;
    let ch = conn.create_channel().await?;
    ch.exchange_declare(
        exchange.as_str().into(),
        lapin::ExchangeKind::Topic,
        lapin::options::ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await?;
    let queue = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    ch.queue_bind(
        queue.name().clone(),
        exchange.as_str().into(),
        "jelmore.session.started".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    let mut consumer = ch
        .basic_consume(
            queue.name().clone(),
            "bench".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;

    let mut starts = Vec::new();
    let mut cold = None;
    for i in 0..rounds.max(1) {
        let name = format!("bench-{i}");
        let t0 = Instant::now();
        let child = candybar(dir)
            .args(["session", "start", &name, "--mux", mux, "--amqp", url])
            .args(["--exchange", &exchange, "--dir"])
            .arg(dir)
            .args(["--", "sleep", "600"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("run candybar session start")?;
        let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .context("no jelmore.session.started within 10 s")?
            .context("the consumer ended")??;
        let took = t0.elapsed();
        let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let event: serde_json::Value = serde_json::from_slice(&delivery.data)?;
        anyhow::ensure!(
            event["payload"]["session_id"] == id.as_str(),
            "the event is not the session's: {event} (stdout {id:?}, stderr {})",
            String::from_utf8_lossy(&out.stderr)
        );
        if i == 0 {
            cold = Some(took);
        } else {
            starts.push(took);
        }
    }
    let _ = conn.close(0, "done".into()).await;
    Ok((cold, starts))
}

/// `n` more sessions in the store at `dir` (ended ones, as a busy month leaves them).
fn fill_store(dir: &Path, n: usize) -> anyhow::Result<()> {
    let mut store = SqliteStore::open(&dir.join("state/sessions.sqlite3"))?;
    for s in sessions_like(dir, n) {
        store.save(&s, &[])?;
        store.save(&ended(s), &[])?;
    }
    Ok(())
}

/// `n` sessions as they were when they ran, a minute apart.
fn sessions_like(dir: &Path, n: usize) -> Vec<Session> {
    let now = now_us();
    (0..n)
        .map(|i| Session {
            id: uuid_like(i),
            name: format!("history-{i}"),
            provider: Provider::ALL[i % 4],
            dir: dir.to_owned(),
            command: vec!["claude".into(), "fix the flaky test".into()],
            prompt: Some("fix the flaky test".into()),
            host: "bench".into(),
            multiplexer: candybar_sessions::Multiplexer::Tmux,
            mux_name: format!("cb-history-{i}"),
            log: dir.join(format!("state/logs/{i}.log")),
            state: SessionState::Initializing,
            created_us: now - (i as i64 + 1) * 60_000_000,
            ended_us: None,
            exit_code: None,
            last_output_us: None,
            last_line: "All 214 tests pass; committed the fix.".into(),
            reason: None,
            prompt_count: 3,
            metadata: json!({"issue": i}),
            correlation_id: None,
            paused_us: None,
        })
        .collect()
}

/// `s` ended well after half a minute.
fn ended(s: Session) -> Session {
    Session {
        state: SessionState::Terminated,
        ended_us: Some(s.created_us + 30_000_000),
        exit_code: Some(0),
        reason: Some("exited with 0".into()),
        ..s
    }
}

/// A UUID-shaped id for the `i`th stored session.
fn uuid_like(i: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i as u32, i)
}
