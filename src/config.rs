//! Configuration: a TOML file in the platform's config dir (`~/.config/candybar/config.toml` on
//! Linux), overridden by `CANDYBAR_*` environment variables, overridden by flags. Passwords in
//! URLs are masked wherever they are shown or logged.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use candybar_core::redact::mask_secrets_in;

/// The config file's contents. Every key is optional.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub amqp: AmqpSection,
    pub store: StoreSection,
    pub demo: DemoSection,
    /// Path of the platform's `registry.yaml`.
    pub registry: Option<PathBuf>,
    pub dictation: DictationSection,
    pub local_asr: LocalAsrSection,
    pub health: HealthSection,
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
    pub hotkey_mode: Option<candybar_core::voice::HotkeyMode>,
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
    /// The store's limits: the file's, else the defaults (a million events in 224 MiB).
    #[must_use]
    pub fn store_config(&self) -> candybar_core::store::StoreConfig {
        let d = candybar_core::store::StoreConfig::default();
        candybar_core::store::StoreConfig {
            max_events: self.max_events.unwrap_or(d.max_events).max(1024),
            budget_bytes: self.budget_mb.map_or(d.budget_bytes, |mb| mb.max(16) << 20),
            body_cap_bytes: self
                .body_cap_kb
                .map_or(d.body_cap_bytes, |kb| kb.max(1) << 10),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DemoSection {
    pub rate: Option<f64>,
    pub seed: Option<u64>,
    pub agents: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// Where the config file is looked for: `$CANDYBAR_CONFIG`, else the platform config dir.
#[must_use]
pub fn default_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CANDYBAR_CONFIG") {
        return Some(PathBuf::from(p));
    }
    directories::ProjectDirs::from("", "", "candybar").map(|d| d.config_dir().join("config.toml"))
}

impl FileConfig {
    /// Reads `path`; a missing file is an empty config, a broken one an error that says where.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        // toml's messages quote the offending line; mask any URL password in them.
        toml::from_str(text).map_err(|e| mask_secrets_in(&e.to_string()))
    }

    /// Applies `CANDYBAR_*` environment variables over the file's values.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
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
        if let Some(v) = get("CANDYBAR_REGISTRY") {
            self.registry = Some(PathBuf::from(v));
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
    fn missing_file_is_empty() {
        let c = FileConfig::load(Path::new("/nonexistent/candybar.toml")).unwrap();
        assert_eq!(c, FileConfig::default());
    }
}
