//! The config file's contents (TOML): every key optional, unknown keys refused with the line,
//! URL passwords masked in its errors, and limits checked with the setting's name. Reading the
//! file and resolving it against the environment and the flags is the binary's job.

use std::path::PathBuf;

use serde::Deserialize;

use crate::redact::mask_secrets_in;
use crate::store::StoreConfig;

/// The config file's contents. Every key is optional.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub amqp: AmqpSection,
    /// A WebSocket relay instead of the broker.
    pub ws: WsSection,
    pub store: StoreSection,
    pub demo: DemoSection,
    /// Path of the platform's `registry.yaml`.
    pub registry: Option<PathBuf>,
    pub dictation: DictationSection,
    pub local_asr: LocalAsrSection,
    pub health: HealthSection,
    pub journal: JournalSection,
    pub sessions: SessionsSection,
    pub mission: MissionSection,
    pub architect: ArchitectSection,
    pub specs: SpecsSection,
    pub github: GitHubSection,
}

/// `[architect]`: the LLM a feature is talked through with (the Conversation view).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ArchitectSection {
    /// An OpenAI-compatible API's base: a local llama.cpp (`http://127.0.0.1:8080/v1`), Ollama
    /// (`http://127.0.0.1:11434/v1`) or a hosted one [env: `CANDYBAR_ARCHITECT_URL`]; its key,
    /// when it needs one, in the keychain (`candybar secret set llm-key`) or `CANDYBAR_LLM_KEY`.
    pub url: Option<String>,
    /// The model asked for (default `default`; llama.cpp serves the one it loaded).
    pub model: Option<String>,
    /// The architect's role (default: a short one that asks questions and answers briefly).
    pub system_prompt: Option<String>,
    /// Seconds the first piece of a reply may take (default 60).
    pub first_token_timeout_secs: Option<f64>,
    /// The most tokens a spoken reply may run to (default 300).
    pub reply_max_tokens: Option<u32>,
    /// The most tokens a written spec may run to (default 2000; a small local model that does
    /// not stop by itself writes this many).
    pub spec_max_tokens: Option<u32>,
    /// How replies are spoken: `espeak-ng` (default, offline), `off`, or an OpenAI-compatible
    /// speech API's base (`http://host:port/v1`, its `/audio/speech`).
    pub speech: Option<String>,
    /// The voice: espeak-ng's (`en-us`) or the speech API's (`alloy`).
    pub voice: Option<String>,
    /// The speech API's model (default `tts-1`).
    pub speech_model: Option<String>,
}

/// `[specs]`: where specs are kept.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SpecsSection {
    /// The project directory whose `.sentra/specs` holds them (default: the current directory)
    /// [env: `CANDYBAR_SPECS_DIR`].
    pub dir: Option<PathBuf>,
    /// The project a new spec belongs to (default: the directory's name).
    pub project: Option<String>,
}

/// `[github]`: where approved specs are filed.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GitHubSection {
    /// `owner/name` [env: `CANDYBAR_GITHUB_REPO`]; the token in the keychain (`candybar secret
    /// set github-token`) or `CANDYBAR_GITHUB_TOKEN`.
    pub repo: Option<String>,
    /// The API's base (default `https://api.github.com`; GitHub Enterprise:
    /// `https://HOST/api/v3`) [env: `CANDYBAR_GITHUB_API`].
    pub api: Option<String>,
}

/// `[mission]`: Mission Control.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MissionSection {
    /// Local times of day the window writes a briefing of the 12 hours before (default
    /// `["08:00", "17:00"]`; `[]` for none).
    pub briefings: Option<Vec<String>>,
    /// Where briefings are kept (default: `briefings` in the data dir).
    pub archive: Option<PathBuf>,
    /// What the window says in desktop notifications: `escalation` (critical ones), `gate` (past
    /// its SLA), `blocked` (a project turning blocked), `service` (failing); default all, `[]`
    /// for none.
    pub notify: Option<Vec<String>>,
    /// No notifications in these local hours, e.g. `"22:00-07:00"` (what turns up is said after).
    pub quiet_hours: Option<String>,
    /// An OpenAI-compatible endpoint (`http://localhost:11434/v1`) that rewrites briefings for
    /// reading (`mission brief --llm`); its key, if it needs one, in `CANDYBAR_LLM_KEY`.
    pub llm_url: Option<String>,
    /// The model it is asked for.
    pub llm_model: Option<String>,
}

impl MissionSection {
    pub const DEFAULT_BRIEFINGS: [&str; 2] = ["08:00", "17:00"];

    /// The kinds notified, checked.
    ///
    /// # Errors
    /// A kind that is not one of them, named.
    pub fn notify_kinds(&self) -> Result<Vec<crate::mission::alerts::AlertKind>, String> {
        use crate::mission::alerts::AlertKind;
        match &self.notify {
            None => Ok(AlertKind::ALL.to_vec()),
            Some(v) => v
                .iter()
                .map(|k| {
                    AlertKind::parse(k.trim()).ok_or_else(|| {
                        format!(
                            "[mission] notify: {k:?} is not one of escalation, gate, blocked, service"
                        )
                    })
                })
                .collect(),
        }
    }

    /// The quiet hours as minutes of the day (from, to), checked; `None` when there are none.
    ///
    /// # Errors
    /// Not `HH:MM-HH:MM`.
    pub fn quiet(&self) -> Result<Option<(u32, u32)>, String> {
        let Some(hours) = self.quiet_hours.as_deref().filter(|q| !q.trim().is_empty()) else {
            return Ok(None);
        };
        let bad = || {
            format!(
                "[mission] quiet_hours: {hours:?} is not a range of hours (e.g. \"22:00-07:00\")"
            )
        };
        let (from, to) = hours.split_once('-').ok_or_else(bad)?;
        let minute = |t: &str| {
            let (hour, min) = t.trim().split_once(':')?;
            let (hour, min) = (hour.parse::<u32>().ok()?, min.parse::<u32>().ok()?);
            (hour < 24 && min < 60).then_some(hour * 60 + min)
        };
        Ok(Some((
            minute(from).ok_or_else(bad)?,
            minute(to).ok_or_else(bad)?,
        )))
    }

    /// The briefings' times of day as (hour, minute), checked.
    ///
    /// # Errors
    /// A time that is not `HH:MM` on a 24-hour clock, named.
    pub fn briefing_times(&self) -> Result<Vec<(u32, u32)>, String> {
        let given: Vec<String> = match &self.briefings {
            Some(v) => v.clone(),
            None => Self::DEFAULT_BRIEFINGS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        };
        given
            .iter()
            .map(|t| {
                let (h, m) = t.trim().split_once(':').unwrap_or((t, ""));
                match (h.parse::<u32>(), m.parse::<u32>()) {
                    (Ok(h), Ok(m)) if h < 24 && m < 60 => Ok((h, m)),
                    _ => Err(format!(
                        "[mission] briefings: {t:?} is not a time of day (HH:MM, e.g. \"08:00\")"
                    )),
                }
            })
            .collect()
    }
}

/// `[sessions]`: agent sessions (`candybar session …`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsSection {
    /// Where the sessions' database and logs live (default: `sessions` in the data dir)
    /// [env: `CANDYBAR_SESSIONS_DIR`].
    pub dir: Option<PathBuf>,
    /// The tmux server's socket (default: tmux's socket named `candybar`)
    /// [env: `CANDYBAR_TMUX_SOCKET`].
    pub tmux_socket: Option<PathBuf>,
    /// The multiplexer new sessions run in: `tmux` or `zellij` (default: tmux where installed,
    /// else zellij) [env: `CANDYBAR_MULTIPLEXER`].
    pub multiplexer: Option<String>,
    /// The `zellij` program (default: `zellij` on `PATH`) [env: `CANDYBAR_ZELLIJ`].
    pub zellij: Option<PathBuf>,
    /// `ZELLIJ_SOCKET_DIR` for candybar's zellij sessions (default: zellij's own, so `zellij
    /// ls` lists them) [env: `CANDYBAR_ZELLIJ_SOCKET_DIR`].
    pub zellij_socket_dir: Option<PathBuf>,
    /// A session that printed nothing for this many seconds is idle (default 120).
    pub idle_secs: Option<f64>,
    /// Where sessions are kept: `sqlite` (default, the data dir) or a `redis://` URL shared by
    /// several hosts [env: `CANDYBAR_SESSIONS_STATE`].
    pub state: Option<String>,
    /// How long Redis keeps an ended session, in days (default 30).
    pub keep_days: Option<f64>,
    /// The terminal emulator the window opens to attach to a session (default: `$TERMINAL`,
    /// else `x-terminal-emulator`, gnome-terminal, konsole, xterm…); it runs the attach command
    /// after `-e` (after `--` for gnome-terminal).
    pub terminal: Option<String>,
}

/// `[journal]`: the on-disk history (`candybar record`, `candybar query`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct JournalSection {
    /// The journal's directory (default: `journal` in the data dir) [env: `CANDYBAR_JOURNAL`].
    pub dir: Option<PathBuf>,
    /// Keep events this long: `30d`, `12h` (default 30 days) [env: `CANDYBAR_JOURNAL_MAX_AGE`].
    pub max_age: Option<String>,
    /// Keep the journal under this many megabytes (default 10,240).
    pub max_size_mb: Option<u64>,
}

/// How long and how much a journal keeps, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub max_age_us: crate::time::Micros,
    pub max_bytes: u64,
}

impl JournalSection {
    pub const DEFAULT_MAX_AGE: &str = "30d";
    pub const DEFAULT_MAX_SIZE_MB: u64 = 10_240;

    /// The retention asked for: flags first (`max_age`, `max_size_mb`), then the file's, then
    /// the defaults. A duration that does not parse or a size out of range is refused by name.
    pub fn retention(
        &self,
        max_age: Option<&str>,
        max_size_mb: Option<u64>,
    ) -> Result<Retention, String> {
        let age = max_age
            .or(self.max_age.as_deref())
            .unwrap_or(Self::DEFAULT_MAX_AGE);
        let max_age_us = crate::filter::parse_duration(age).ok_or_else(|| {
            format!("[journal] max_age = {age:?} is not a duration: give e.g. 30d, 12h, 90m")
        })?;
        let mb = max_size_mb
            .or(self.max_size_mb)
            .unwrap_or(Self::DEFAULT_MAX_SIZE_MB);
        if !(1..=1 << 30).contains(&mb) {
            return Err(format!(
                "[journal] max_size_mb = {mb} is out of range: give 1 to {}",
                1u64 << 30
            ));
        }
        Ok(Retention {
            max_age_us,
            max_bytes: mb << 20,
        })
    }
}

/// `[health]`: polling the registry services' `endpoints.health` (off unless `poll_secs` is set).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HealthSection {
    /// Seconds between polls; absent or 0: no polling.
    pub poll_secs: Option<f64>,
    /// How long one endpoint may take to answer (default 3000 ms).
    pub timeout_ms: Option<u64>,
}

/// `[local_asr]`: the built-in ASR server the window can run as a child process.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LocalAsrSection {
    /// A ggml model file or a name in the model dir (default `tiny.en`).
    pub model: Option<String>,
    /// Port on 127.0.0.1 (default 8888, the dictation client's default server).
    pub port: Option<u16>,
    pub threads: Option<usize>,
    /// Start it with the window (default off).
    pub auto_start: Option<bool>,
}

/// `[dictation]`: where speech goes. Tokens are not kept here: they come from the keychain or
/// the environment (`CANDYBAR_ASR_TOKEN`, `CANDYBAR_WEBHOOK_TOKEN`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DictationSection {
    /// The ASR server's WebSocket endpoint (default `ws://127.0.0.1:8888/asr`).
    pub server: Option<String>,
    /// POST each transcript here (`{text, timestamp, source}`).
    pub webhook_url: Option<String>,
    /// Publish each transcript on the bus (the `[amqp]` broker).
    pub bus: Option<bool>,
    /// Routing key of the bus event (default `talkytonny.transcription.completed`).
    pub routing_key: Option<String>,
    /// The history database (default: `history.sqlite3` in the data dir).
    pub history: Option<PathBuf>,
    /// The input device's name (`candybar dictate --list-devices`); default: the system's.
    pub device: Option<String>,
    /// Put each transcript on the clipboard (default on).
    pub clipboard: Option<bool>,
    /// Type each transcript into the focused window (default off).
    pub typing: Option<bool>,
    /// The window's global hotkey (default `Ctrl+Alt+Space`).
    pub hotkey: Option<String>,
    /// `hold` (push-to-talk, default) or `toggle`.
    pub hotkey_mode: Option<crate::voice::HotkeyMode>,
    /// The spoken language sent to the server: an ISO 639-1 code, `auto`, or a list (`de,en`)
    /// to detect among; default: the server's own.
    pub language: Option<String>,
}

/// `[ws]`: a WebSocket relay to watch through (the token comes from `CANDYBAR_WS_TOKEN` or
/// `--ws-token`, never from this file).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WsSection {
    /// `ws://` or `wss://` [env: `CANDYBAR_WS_URL`].
    pub url: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpSection {
    /// `amqp://user:password@host:5672/vhost`. Leave it out to start on the demo feed.
    pub url: Option<String>,
    pub exchange: Option<String>,
    pub binding_keys: Option<Vec<String>>,
    /// A durable queue name for gap-free viewing; without it a private queue is used.
    pub durable_queue: Option<String>,
    /// A stream queue to read (days of history kept by the broker) instead of a queue of
    /// candybar's own [env: `CANDYBAR_STREAM`].
    pub stream: Option<String>,
    pub prefetch: Option<u16>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    pub max_events: Option<usize>,
    pub budget_mb: Option<usize>,
    pub body_cap_kb: Option<usize>,
}

impl StoreSection {
    /// The store's limits: the file's, else the defaults (a million events in 224 MiB). A value
    /// out of range is an error that names it (a huge number must not wrap to a tiny budget).
    pub fn store_config(&self) -> Result<StoreConfig, String> {
        let d = StoreConfig::default();
        let within = |v: usize, min: usize, max: usize, what: &str| {
            if (min..=max).contains(&v) {
                Ok(v)
            } else {
                Err(format!(
                    "[store] {what} = {v} is out of range: give {min} to {max}"
                ))
            }
        };
        Ok(StoreConfig {
            max_events: match self.max_events {
                Some(n) => within(n, 1024, 100_000_000, "max_events")?,
                None => d.max_events,
            },
            budget_bytes: match self.budget_mb {
                Some(mb) => within(mb, 16, 1 << 20, "budget_mb")? << 20,
                None => d.budget_bytes,
            },
            body_cap_bytes: match self.body_cap_kb {
                Some(kb) => within(kb, 1, 1 << 20, "body_cap_kb")? << 10,
                None => d.body_cap_bytes,
            },
        })
    }
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DemoSection {
    pub rate: Option<f64>,
    pub seed: Option<u64>,
    pub agents: Option<usize>,
}

impl FileConfig {
    pub fn parse(text: &str) -> Result<Self, String> {
        // toml's messages quote the offending line; mask any URL password in them.
        toml::from_str(text).map_err(|e| mask_secrets_in(&e.to_string()))
    }

    /// Applies `CANDYBAR_*` environment variables over the file's values.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        if let Some(v) = get("CANDYBAR_WS_URL") {
            self.ws.url = Some(v);
        }
        if let Some(v) = get("CANDYBAR_AMQP_URL") {
            self.amqp.url = Some(v);
        }
        if let Some(v) = get("CANDYBAR_EXCHANGE") {
            self.amqp.exchange = Some(v);
        }
        if let Some(v) = get("CANDYBAR_BINDING_KEYS") {
            self.amqp.binding_keys = Some(
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
            );
        }
        if let Some(v) = get("CANDYBAR_DURABLE_QUEUE") {
            self.amqp.durable_queue = Some(v);
        }
        if let Some(v) = get("CANDYBAR_STREAM") {
            self.amqp.stream = Some(v);
        }
        if let Some(v) = get("CANDYBAR_REGISTRY") {
            self.registry = Some(PathBuf::from(v));
        }
        if let Some(v) = get("CANDYBAR_JOURNAL") {
            self.journal.dir = Some(PathBuf::from(v));
        }
        if let Some(v) = get("CANDYBAR_JOURNAL_MAX_AGE") {
            self.journal.max_age = Some(v);
        }
        if let Some(v) = get("CANDYBAR_SESSIONS_DIR") {
            self.sessions.dir = Some(PathBuf::from(v));
        }
        if let Some(v) = get("CANDYBAR_SESSIONS_STATE") {
            self.sessions.state = Some(v);
        }
        if let Some(v) = get("CANDYBAR_ARCHITECT_URL") {
            self.architect.url = Some(v);
        }
        if let Some(v) = get("CANDYBAR_SPECS_DIR") {
            self.specs.dir = Some(PathBuf::from(v));
        }
        if let Some(v) = get("CANDYBAR_GITHUB_REPO") {
            self.github.repo = Some(v);
        }
        if let Some(v) = get("CANDYBAR_GITHUB_API") {
            self.github.api = Some(v);
        }
        if let Some(v) = get("CANDYBAR_TMUX_SOCKET") {
            self.sessions.tmux_socket = Some(PathBuf::from(v));
        }
        if let Some(v) = get("CANDYBAR_MULTIPLEXER") {
            self.sessions.multiplexer = Some(v);
        }
        if let Some(v) = get("CANDYBAR_ZELLIJ") {
            self.sessions.zellij = Some(PathBuf::from(v));
        }
        if let Some(v) = get("CANDYBAR_ZELLIJ_SOCKET_DIR") {
            self.sessions.zellij_socket_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = get("CANDYBAR_MAX_EVENTS").and_then(|v| v.parse().ok()) {
            self.store.max_events = Some(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env() {
        let mut c = FileConfig::parse("[amqp]\nurl = \"amqp://a:b@h/\"\nexchange = \"bloodbank.events.v1\"\n[store]\nmax_events = 5000\n").unwrap();
        assert_eq!(c.amqp.exchange.as_deref(), Some("bloodbank.events.v1"));
        c.apply_env(|k| match k {
            "CANDYBAR_EXCHANGE" => Some("events".into()),
            "CANDYBAR_BINDING_KEYS" => Some("agent.#, llm.*".into()),
            _ => None,
        });
        assert_eq!(c.amqp.exchange.as_deref(), Some("events"));
        assert_eq!(
            c.amqp.binding_keys,
            Some(vec!["agent.#".into(), "llm.*".into()])
        );
        assert_eq!(c.store.max_events, Some(5000));
    }

    #[test]
    fn broken_config_says_where_and_hides_secrets() {
        let e = FileConfig::parse("[amqp]\nurl = amqp://u:topsecret@h\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        assert!(!e.contains("topsecret"), "{e}");
        let e = FileConfig::parse("[amqp]\nurll = \"x\"\n").unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn absurd_store_limits_are_refused_by_name() {
        let c = FileConfig::parse("[store]\nbudget_mb = 17592186044416\n").unwrap();
        let e = c.store.store_config().unwrap_err();
        assert!(e.contains("budget_mb") && e.contains("out of range"), "{e}");
        let c = FileConfig::parse("[store]\nbudget_mb = 64\nmax_events = 5000\n").unwrap();
        let s = c.store.store_config().unwrap();
        assert_eq!((s.budget_bytes, s.max_events), (64 << 20, 5000));
    }

    #[test]
    fn journal_retention_is_checked_by_name() {
        let c = FileConfig::parse("[journal]\nmax_age = \"soon\"\n").unwrap();
        let e = c.journal.retention(None, None).unwrap_err();
        assert!(e.contains("max_age") && e.contains("\"soon\""), "{e}");
        let c = FileConfig::parse("[journal]\nmax_size_mb = 18446744073709551615\n").unwrap();
        let e = c.journal.retention(None, None).unwrap_err();
        assert!(
            e.contains("max_size_mb") && e.contains("out of range"),
            "{e}"
        );
        let r = FileConfig::default()
            .journal
            .retention(Some("2h"), Some(5))
            .unwrap();
        assert_eq!((r.max_age_us, r.max_bytes), (7_200_000_000, 5 << 20));
        let r = FileConfig::default().journal.retention(None, None).unwrap();
        assert_eq!(r.max_age_us, 30 * 86_400_000_000);
    }
}
