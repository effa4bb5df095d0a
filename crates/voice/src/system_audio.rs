//! What the computer plays, through PulseAudio (or PipeWire's Pulse server): the default
//! output's monitor, or one application's stream, recorded by `parec` as 48 kHz mono (the sound
//! server mixes down; the rate outputs run at, so it need not resample) and brought to 16 kHz by
//! our own converter, as the microphone is — PulseAudio's default resampler cost Whisper words
//! (measured: "all services are healthy" heard as "all service in our healthy").
//!
//! Why `parec` (pulseaudio-utils): following one application needs PulseAudio's monitor stream
//! (recording a single sink input), which cpal does not offer; `parec --monitor-stream` is
//! PulseAudio's own recorder doing exactly that, on every desktop with PulseAudio or
//! PipeWire-Pulse. The list of playing applications comes from `pactl -f json`.

use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use candybar_core::voice::PlayingApp;
use parking_lot::Mutex;

/// The rate what plays is recorded at.
pub const RECORD_RATE_HZ: u32 = 48_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SystemAudioError {
    #[error(
        "recording what plays needs PulseAudio's tools (`{0}` is missing): sudo apt-get install \
         pulseaudio-utils"
    )]
    NoTools(&'static str),
    #[error("the sound server does not answer ({0}); is PulseAudio or PipeWire-Pulse running?")]
    Server(String),
    #[error("no application named {wanted:?} is playing; playing now: {playing}")]
    NoSuchApp { wanted: String, playing: String },
}

/// What to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The default output's monitor: everything the computer plays.
    DefaultMonitor,
    /// One application's stream (a sink input, by index), and the name the user asked for it
    /// by (its next stream is looked for by that name).
    App { app: PlayingApp, wanted: String },
}

impl Target {
    /// How the recording is named to the user.
    pub fn describe(&self) -> String {
        match self {
            Self::DefaultMonitor => "what the computer plays".to_owned(),
            Self::App { app, .. } if app.media.is_empty() => app.name.clone(),
            Self::App { app, .. } => format!("{} ({})", app.name, app.media),
        }
    }
}

/// The applications playing sound now (paused ones too, marked).
pub fn playing_apps() -> Result<Vec<PlayingApp>, SystemAudioError> {
    let out = Command::new("pactl")
        .args(["-f", "json", "list", "sink-inputs"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SystemAudioError::NoTools("pactl"),
            _ => SystemAudioError::Server(e.to_string()),
        })?;
    if !out.status.success() {
        return Err(SystemAudioError::Server(first_line(&out.stderr)));
    }
    parse_sink_inputs(&String::from_utf8_lossy(&out.stdout)).map_err(SystemAudioError::Server)
}

/// The application `wanted` names (see [`PlayingApp::answers_to`]); a playing stream before a
/// paused one.
pub fn find_app(wanted: &str) -> Result<PlayingApp, SystemAudioError> {
    let apps = playing_apps()?;
    let mut matching: Vec<&PlayingApp> = apps.iter().filter(|a| a.answers_to(wanted)).collect();
    matching.sort_by_key(|a| a.paused);
    matching
        .first()
        .map(|a| (*a).clone())
        .ok_or_else(|| SystemAudioError::NoSuchApp {
            wanted: wanted.to_owned(),
            playing: if apps.is_empty() {
                "nothing".to_owned()
            } else {
                apps.iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
}

/// `pactl -f json list sink-inputs`, read leniently: a stream without a name is listed by its
/// program or index, unknown fields are ignored.
pub fn parse_sink_inputs(json: &str) -> Result<Vec<PlayingApp>, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("pactl's list is not JSON: {e}"))?;
    let list = v
        .as_array()
        .ok_or_else(|| "pactl's list is not a list".to_owned())?;
    Ok(list
        .iter()
        .filter_map(|s| {
            let index = u32::try_from(s.get("index")?.as_u64()?).ok()?;
            let prop = |k: &str| {
                s.get("properties")
                    .and_then(|p| p.get(k))
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect::<String>()
            };
            let binary = prop("application.process.binary");
            let name = Some(prop("application.name"))
                .filter(|n| !n.is_empty())
                .or_else(|| Some(binary.clone()).filter(|b| !b.is_empty()))
                .unwrap_or_else(|| format!("stream {index}"));
            Some(PlayingApp {
                index,
                name,
                binary,
                media: prop("media.name"),
                paused: s
                    .get("corked")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false),
            })
        })
        .collect())
}

/// How often a wait for an application looks whether it was stopped.
pub const WAIT_STEP: Duration = Duration::from_millis(20);

/// Waits until an application answering to `wanted` plays (a stream that is not paused), asking
/// the sound server every `every`; `None` once `stopped` says so. What a recording of one
/// application does when its stream ends: a meeting tab muted and unmuted, a player's next
/// track, an app restarted — each is a new stream of the same application.
///
/// `tick` is called every 20 ms of waiting (the caller feeds silence: a server hearing nothing
/// for a minute closes the connection).
pub fn wait_for_app(
    wanted: &str,
    every: Duration,
    stopped: impl Fn() -> bool,
    mut tick: impl FnMut(),
) -> Result<Option<PlayingApp>, SystemAudioError> {
    loop {
        if stopped() {
            return Ok(None);
        }
        if let Some(app) = playing_apps()?
            .into_iter()
            .find(|a| !a.paused && a.answers_to(wanted))
        {
            return Ok(Some(app));
        }
        // Sleep in short steps, so a stop is heard at once.
        let until = std::time::Instant::now() + every;
        while std::time::Instant::now() < until {
            if stopped() {
                return Ok(None);
            }
            std::thread::sleep(WAIT_STEP);
            tick();
        }
    }
}

/// A running `parec`: 48 kHz mono s16le on its stdout.
pub struct Recorder {
    child: Child,
    /// The child's pid while it may be signalled: taken (under the lock a [`Stopper`] signals
    /// under) before the child is reaped, so a stopper never signals a reused pid. Shared with
    /// the stoppers, which follow the recorder across [`Recorder::restart`].
    pid: Arc<Mutex<Option<u32>>>,
}

fn spawn_parec(target: &Target) -> Result<Child, SystemAudioError> {
    let mut cmd = Command::new("parec");
    cmd.args([
        "--raw",
        "--format=s16le",
        &format!("--rate={RECORD_RATE_HZ}"),
        "--channels=1",
        // Small fragments: text follows the sound within a frame or two.
        "--latency-msec=50",
        "--client-name=candybar",
        "--stream-name=transcription",
    ]);
    match target {
        Target::DefaultMonitor => cmd.args(["--device", "@DEFAULT_MONITOR@"]),
        Target::App { app, .. } => cmd.arg(format!("--monitor-stream={}", app.index)),
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SystemAudioError::NoTools("parec"),
            _ => SystemAudioError::Server(e.to_string()),
        })
}

impl Recorder {
    pub fn start(target: &Target) -> Result<Self, SystemAudioError> {
        let child = spawn_parec(target)?;
        Ok(Self {
            pid: Arc::new(Mutex::new(Some(child.id()))),
            child,
        })
    }

    /// Records `target` in place of the stream that ended (after [`Recorder::read_into`]
    /// returned); stoppers handed out before stop this one.
    pub fn restart(&mut self, target: &Target) -> Result<(), SystemAudioError> {
        let _ = self.reap(true);
        self.child = spawn_parec(target)?;
        *self.pid.lock() = Some(self.child.id());
        Ok(())
    }

    /// Reaps the child (ending it first when `end`) unless that was done; stoppers no longer
    /// signal its pid.
    fn reap(&mut self, end: bool) -> Option<std::io::Result<std::process::ExitStatus>> {
        // Taken under the lock stoppers signal under: none signals this pid after this.
        self.pid.lock().take()?;
        if end {
            let _ = self.child.kill();
        }
        Some(self.child.wait())
    }

    /// Reads samples until the stream ends, handing each read's samples (-1..1) to `take`;
    /// returns why it ended (the sound server's words), for the user.
    pub fn read_into(&mut self, take: &mut impl FnMut(&[f32])) -> String {
        let Some(mut out) = self.child.stdout.take() else {
            return "the recorder has no output".to_owned();
        };
        // 20 ms of 16-bit mono.
        let mut buf = vec![0u8; RECORD_RATE_HZ as usize / 50 * 2];
        let mut odd: Option<u8> = None;
        let mut samples = Vec::with_capacity(buf.len() / 2 + 1);
        loop {
            let n = match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            samples.clear();
            let mut bytes: &[u8] = &buf[..n];
            if let Some(first) = odd.take()
                && let Some((&second, rest)) = bytes.split_first()
            {
                samples.push(f32::from(i16::from_le_bytes([first, second])) / 32_768.0);
                bytes = rest;
            }
            let pairs = bytes.chunks_exact(2);
            odd = pairs.remainder().first().copied();
            samples.extend(pairs.map(|p| f32::from(i16::from_le_bytes([p[0], p[1]])) / 32_768.0));
            take(&samples);
        }
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        let status = self
            .reap(false)
            .unwrap_or_else(|| Err(std::io::Error::other("the recorder was already reaped")));
        let said = first_line(stderr.as_bytes());
        match status {
            Ok(s) if s.success() => "it ended".to_owned(),
            _ if !said.is_empty() => said,
            Ok(s) => format!("the recorder exited ({s})"),
            Err(e) => e.to_string(),
        }
    }

    /// A handle that stops the recorder from another thread.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            pid: self.pid.clone(),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.reap(true);
    }
}

/// Stops a [`Recorder`] (its stdout then ends), whichever stream it records by then.
#[derive(Clone, Debug)]
pub struct Stopper {
    pid: Arc<Mutex<Option<u32>>>,
}

impl Stopper {
    pub fn stop(&self) {
        // Signalled under the lock the recorder takes the pid under before reaping: never a
        // reused pid. SIGTERM: parec exits; its pipe then ends the reader, which reaps it.
        let pid = self.pid.lock();
        if let Some(pid) = pid
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }
}

fn first_line(bytes: &[u8]) -> String {
    candybar_core::text::first_line(&String::from_utf8_lossy(bytes), 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pactls_list_is_read_leniently() {
        let json = r#"[
          {"index": 42, "corked": false, "sink": 0,
           "properties": {"application.name": "Firefox", "application.process.binary": "firefox-esr",
                          "media.name": "Weekly sync"}},
          {"index": 43, "corked": true, "properties": {"application.process.binary": "mpv"}},
          {"index": 44, "properties": {}},
          {"no index": true},
          {"index": -1}
        ]"#;
        let apps = parse_sink_inputs(json).unwrap();
        assert_eq!(
            apps.iter()
                .map(|a| (a.index, a.name.as_str(), a.paused))
                .collect::<Vec<_>>(),
            [
                (42, "Firefox", false),
                (43, "mpv", true),
                (44, "stream 44", false)
            ]
        );
        assert_eq!(apps[0].media, "Weekly sync");
        assert!(
            parse_sink_inputs("not json")
                .unwrap_err()
                .contains("not JSON")
        );
        assert_eq!(
            Target::App {
                app: apps[0].clone(),
                wanted: "firefox".into()
            }
            .describe(),
            "Firefox (Weekly sync)"
        );
    }
}
