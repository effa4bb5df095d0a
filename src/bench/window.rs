//! `candybar bench window`: the real window (this binary, release build) on the current display —
//! under Xvfb on a headless machine — in three runs:
//!
//! 1. cold start: launch (the spawn, passed as `CANDYBAR_LAUNCH_US`) → the first frame handed to
//!    the display (the app's own clock);
//! 2. loaded: a million stored events and the demo feed at 20,000 events/s; the app's CPU per frame
//!    (its own ui time, and eframe's figure that adds tessellation and handing the frame to the
//!    GPU) and event received → row on screen;
//! 3. idle: no events; process CPU over a quiet period, read from /proc from outside, and memory;
//! 4. in the tray: the same with the window hidden (`--minimized`); it needs a system tray (a
//!    `StatusNotifier` host, or an `XEmbed` tray such as `trayer`), else the window shows itself and
//!    the run reports that instead of a figure.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use serde_json::{Value, json};

#[derive(Args, Debug)]
pub struct WindowBenchArgs {
    /// Seconds the loaded run lasts
    #[arg(long, default_value_t = 20.0)]
    secs: f64,
    /// Events stored before the loaded run starts
    #[arg(long, default_value_t = 1_000_000)]
    preload: u64,
    /// Demo feed rate in the loaded run, events/s
    #[arg(long, default_value_t = 20_000.0)]
    rate: f64,
    /// Seconds of the idle measurement (after a 3 s settle)
    #[arg(long, default_value_t = 10.0)]
    idle_secs: f64,
}

fn cpu_secs(pid: u32) -> Option<f64> {
    crate::procfs::cpu_secs_of(&pid.to_string())
}

fn spawn(args: &[String], dir: &Path) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("cannot find candybar's own executable")?;
    Command::new(exe)
        .args(args)
        .env("XDG_DATA_HOME", dir) // a fresh window state, not the user's
        .env("CANDYBAR_SOCKET", dir.join("candybar.sock")) // not handed to a running candybar
        .env("CANDYBAR_HISTORY", dir.join("history.sqlite3"))
        .env("CANDYBAR_CONFIG", dir.join("none.toml"))
        // "launch → first frame" counts from here, the moment of exec (see `launched_at`).
        .env(
            "CANDYBAR_LAUNCH_US",
            candybar_core::time::now_us().to_string(),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start the window")
}

/// Resident memory from /proc: all of it, and the part that is the process's own (anonymous:
/// heap, stacks) rather than mapped files (the binary, shared libraries, the GPU driver).
fn memory_mb(pid: u32) -> Value {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kb| (kb / 1024.0 * 10.0).round() / 10.0)
    };
    json!({"rss": kb("VmRSS:"), "anonymous": kb("RssAnon:"), "files": kb("RssFile:")})
}

fn wait(mut child: Child, limit: Duration) -> anyhow::Result<()> {
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            anyhow::ensure!(status.success(), "the window exited with {status}");
            return Ok(());
        }
        if Instant::now() > end {
            let _ = child.kill();
            anyhow::bail!("the window did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_stats(path: &Path) -> anyhow::Result<Value> {
    let bytes = std::fs::read(path).with_context(|| format!("no stats at {}", path.display()))?;
    Ok(serde_json::from_slice(&bytes)?)
}

fn s(v: &impl ToString) -> String {
    v.to_string()
}

#[allow(clippy::too_many_lines)] // four runs and one report, in order
pub fn bench_window(a: &WindowBenchArgs) -> anyhow::Result<Value> {
    anyhow::ensure!(
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some(),
        "no display: run under Xvfb, e.g. `Xvfb :99 & DISPLAY=:99 candybar bench window`"
    );
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    let stats = dir.join("stats.json");
    let stats_arg = s(&stats.display());

    // 1. Cold start.
    let child = spawn(
        &[
            s(&"--demo"),
            s(&"--exit-after"),
            s(&2),
            s(&"--stats-out"),
            stats_arg.clone(),
        ],
        dir,
    )?;
    wait(child, Duration::from_mins(1))?;
    let cold = read_stats(&stats)?;

    // 2. Loaded.
    let child = spawn(
        &[
            s(&"--demo"),
            s(&"--demo-rate"),
            s(&a.rate),
            s(&"--preload"),
            s(&a.preload),
            s(&"--exit-after"),
            s(&a.secs),
            s(&"--stats-out"),
            stats_arg.clone(),
        ],
        dir,
    )?;
    let pid = child.id();
    // Process CPU over the second half of the run (the preload and start-up are over by then).
    std::thread::sleep(Duration::from_secs_f64(a.secs / 2.0));
    let (c0, t0) = (cpu_secs(pid), Instant::now());
    std::thread::sleep(Duration::from_secs_f64(a.secs / 2.0 - 1.0));
    let loaded_cpu = cpu_secs(pid)
        .zip(c0)
        .map(|(c1, c0)| (c1 - c0) / t0.elapsed().as_secs_f64());
    wait(child, Duration::from_secs_f64(a.secs + 120.0))?;
    let loaded = read_stats(&stats)?;

    // 3. Idle, the window shown; 4. in the tray, the window hidden. No events, no recording.
    let quiet = |extra: &[String]| -> anyhow::Result<(Option<f64>, Value)> {
        let settle = 3.0;
        let mut args = vec![
            s(&"--demo"),
            s(&"--demo-rate"),
            s(&0),
            s(&"--exit-after"),
            s(&(settle + a.idle_secs + 1.0)),
        ];
        args.extend_from_slice(extra);
        let child = spawn(&args, dir)?;
        let pid = child.id();
        std::thread::sleep(Duration::from_secs_f64(settle));
        let (c0, t0) = (cpu_secs(pid), Instant::now());
        std::thread::sleep(Duration::from_secs_f64(a.idle_secs));
        let cpu = cpu_secs(pid)
            .zip(c0)
            .map(|(c1, c0)| (c1 - c0) / t0.elapsed().as_secs_f64());
        let memory = memory_mb(pid);
        wait(child, Duration::from_secs_f64(a.idle_secs + 60.0))?;
        Ok((cpu, memory))
    };
    let (idle_cpu, idle_memory) = quiet(&[s(&"--stats-out"), stats_arg])?;
    let idle = read_stats(&stats)?;
    let tray_stats = dir.join("tray-stats.json");
    let (tray_cpu, tray_memory) = quiet(&[
        s(&"--minimized"),
        s(&"--stats-out"),
        s(&tray_stats.display()),
    ])?;
    // Hidden frames are not counted: a window that drew frames was not in the tray.
    let tray_frames = read_stats(&tray_stats)?["frames"].as_u64().unwrap_or(0);
    let tray = if tray_frames == 0 {
        json!({
            "secs": a.idle_secs,
            "process_cpu_share": tray_cpu,
            "memory_mb": tray_memory,
        })
    } else {
        json!({
            "error": format!(
                "the window was shown ({tray_frames} frames): no system tray took the icon; run \
                 under a StatusNotifier host or an XEmbed tray (e.g. `dbus-run-session` + `trayer`)"
            ),
        })
    };

    Ok(json!({
        "bench": "window",
        "cpus": std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        "first_frame_ms": cold["first_frame_ms"],
        "loaded": {
            "preload_events": a.preload,
            "rate_per_sec": a.rate,
            "secs": a.secs,
            "frames": loaded["frames"],
            "events_received": loaded["events_received"],
            // Received from the first frame (after the preload) to exit, over that time.
            "received_per_sec": loaded["events_received_after_first_frame"].as_f64().zip(loaded["wall_secs"].as_f64()).zip(loaded["first_frame_ms"].as_f64())
                .map(|((n, wall), first_ms)| (n / (wall - first_ms / 1e3)).round()),
            "first_frame_after_preload_ms": loaded["first_frame_ms"],
            "events_stored": loaded["events_stored"],
            "ui_ms": loaded["ui_ms"],
            "ingest_ms": loaded["ingest_ms"],
            "frame_cpu_ms": loaded["frame_cpu_ms"],
            "render_cpu_ms": loaded["render_cpu_ms"],
            "shown_latency_ms": loaded["shown_latency_ms"],
            "process_cpu_share": loaded_cpu,
        },
        "idle": {
            "secs": a.idle_secs,
            "frames": idle["frames"],
            "process_cpu_share": idle_cpu,
            "memory_mb": idle_memory,
        },
        "tray": tray,
    }))
}

#[derive(Args, Debug)]
pub struct WindowJournalBenchArgs {
    /// Events in the journal (written first when the directory holds fewer)
    #[arg(long, default_value_t = 10_000_000)]
    events: usize,
    /// The journal's directory (kept, so later runs reuse it)
    #[arg(long, value_name = "DIR")]
    dir: std::path::PathBuf,
    /// Seconds each window stays open (memory is read one second before it closes)
    #[arg(long, default_value_t = 8.0)]
    secs: f64,
}

/// Fills the journal at `dir` with compact demo events up to `n`, ending now.
fn fill_journal(dir: &Path, n: usize) -> anyhow::Result<usize> {
    use candybar_core::demo::{Demo, DemoConfig};
    use candybar_journal::{JournalConfig, JournalReader, JournalWriter};
    let have = JournalReader::open(dir).map_or(0, |r| r.entry_count());
    if have >= n {
        return Ok(have);
    }
    let mut cfg = JournalConfig::new(dir.to_owned());
    cfg.max_age = None;
    cfg.max_bytes = None;
    let mut writer = JournalWriter::open(cfg, "candybar bench")?;
    let mut demo = Demo::new(
        DemoConfig {
            compact: true,
            seed: have as u64 + 1,
            ..DemoConfig::default()
        },
        &candybar_core::registry::Registry::example(),
    );
    let t0 = candybar_core::time::now_us() - (n - have) as i64 * 20;
    for i in 0..n - have {
        writer.append(&demo.next_message(t0 + i as i64 * 20));
        if i % 8192 == 0 {
            writer.tick();
        }
    }
    writer
        .flush()
        .map_err(|e| anyhow::anyhow!("cannot write the journal: {e}"))?;
    Ok(have + writer.stats().kept as usize)
}

/// `candybar bench window-journal`: the window opened on a big journal that a recorder holds
/// (this process takes the writer's lock, as `candybar record` would), against the same window
/// with `--no-journal` in the same run: launch → first frame, events it opened with, memory.
pub fn bench_window_journal(a: &WindowJournalBenchArgs) -> anyhow::Result<Value> {
    anyhow::ensure!(
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some(),
        "no display: run under Xvfb, e.g. `Xvfb :99 & DISPLAY=:99 candybar bench window-journal`"
    );
    let secs = candybar_core::time::checked_secs(a.secs, 3.0, 600.0, "--secs")
        .map_err(anyhow::Error::msg)?;
    let events = fill_journal(&a.dir, a.events)?;
    let disk: u64 = std::fs::read_dir(&a.dir)?
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    let tmp = tempfile::tempdir()?;
    let run = |journal: bool| -> anyhow::Result<Value> {
        let stats = tmp.path().join("stats.json");
        let mut args = vec![
            s(&"--no-tray"),
            s(&"--exit-after"),
            s(&secs.as_secs_f64()),
            s(&"--stats-out"),
            s(&stats.display()),
        ];
        // The lock says a recorder writes the journal: the window reads it instead of a broker.
        let _writer = if journal {
            args.extend([s(&"--journal"), s(&a.dir.display())]);
            Some(candybar_journal::JournalWriter::open(
                candybar_journal::JournalConfig::new(a.dir.clone()),
                "candybar bench window-journal",
            )?)
        } else {
            args.extend([s(&"--no-journal"), s(&"--demo-rate"), s(&0)]);
            None
        };
        let child = spawn(&args, tmp.path())?;
        let pid = child.id();
        std::thread::sleep(secs.saturating_sub(Duration::from_secs(1)));
        let memory = memory_mb(pid);
        wait(child, secs + Duration::from_mins(1))?;
        let report = read_stats(&stats)?;
        Ok(json!({
            "first_frame_ms": report["first_frame_ms"],
            "events_stored": report["events_stored"],
            "memory_mb": memory,
        }))
    };
    let with = run(true)?;
    let without = run(false)?;
    Ok(json!({
        "bench": "window-journal",
        "journal_events": events,
        "journal_mb": (disk as f64 / 1_048_576.0).round(),
        "window_on_journal": with,
        "baseline_no_journal": without,
    }))
}
