//! The Connection dialog: change the source at run time (demo, `RabbitMQ`, replay) and see why a
//! connection fails, in words. The password has its own masked field and is never shown.

use std::path::PathBuf;

use candybar_core::redact::SecretUrl;
use candybar_core::source::{DEFAULT_DURABLE_QUEUE, SourceState};
use egui::RichText;
use serde::{Deserialize, Serialize};

use crate::Command;
use crate::theme::Theme;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SourceKind {
    #[default]
    Demo,
    Amqp,
    Replay,
}

/// What the user asked to connect to.
#[derive(Clone, Debug, PartialEq)]
pub enum ConnectRequest {
    Demo {
        rate_per_sec: f64,
    },
    Amqp {
        /// With the password put back in.
        url: SecretUrl,
        exchange: String,
        binding_keys: Vec<String>,
        durable_queue: Option<String>,
    },
    Replay {
        path: PathBuf,
        speed: f64,
    },
}

/// The dialog's fields; persisted without the password (and its `Debug` leaves it out too).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectionForm {
    pub kind: SourceKind,
    /// The URL without its password.
    pub url: String,
    #[serde(skip)]
    pub password: String,
    pub exchange: String,
    pub binding_keys: String,
    pub durable: bool,
    pub queue: String,
    pub demo_rate: f64,
    pub replay_path: String,
    pub replay_speed: f64,
    #[serde(skip)]
    pub open: bool,
    #[serde(skip)]
    pub error: Option<String>,
}

impl Default for ConnectionForm {
    fn default() -> Self {
        Self {
            kind: SourceKind::Demo,
            url: "amqp://guest@127.0.0.1:5672/%2f".into(),
            password: String::new(),
            exchange: "events".into(),
            binding_keys: "#".into(),
            durable: false,
            queue: DEFAULT_DURABLE_QUEUE.into(),
            demo_rate: 40.0,
            replay_path: String::new(),
            replay_speed: 1.0,
            open: false,
            error: None,
        }
    }
}

impl std::fmt::Debug for ConnectionForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionForm")
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("password", &"****")
            .field("exchange", &self.exchange)
            .field("binding_keys", &self.binding_keys)
            .field("durable", &self.durable)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl ConnectionForm {
    /// Fills the URL field from a URL that may hold a password (which moves to its own field).
    pub fn set_url(&mut self, url: &str) {
        match url::Url::parse(url) {
            Ok(mut u) => {
                if let Some(p) = u.password() {
                    self.password = percent_decode(p);
                    let _ = u.set_password(None);
                }
                self.url = u.to_string();
            }
            Err(_) => url.clone_into(&mut self.url),
        }
    }

    /// The request the fields describe, or what is wrong with them.
    pub fn request(&self) -> Result<ConnectRequest, String> {
        match self.kind {
            SourceKind::Demo => Ok(ConnectRequest::Demo {
                rate_per_sec: self.demo_rate.clamp(0.0, 1_000_000.0),
            }),
            SourceKind::Replay => {
                if self.replay_path.trim().is_empty() {
                    return Err("choose an NDJSON file to replay".into());
                }
                Ok(ConnectRequest::Replay {
                    path: PathBuf::from(self.replay_path.trim()),
                    speed: self.replay_speed.clamp(0.01, 10_000.0),
                })
            }
            SourceKind::Amqp => {
                let mut u = url::Url::parse(self.url.trim()).map_err(|e| {
                    format!("the URL is not valid ({e}); e.g. amqp://user@host:5672/%2f")
                })?;
                if !matches!(u.scheme(), "amqp" | "amqps") {
                    return Err(format!(
                        "the URL must start with amqp:// or amqps://, not {}://",
                        u.scheme()
                    ));
                }
                if !self.password.is_empty() && u.set_password(Some(&self.password)).is_err() {
                    return Err("this URL cannot carry a password".into());
                }
                let exchange = self.exchange.trim();
                if exchange.is_empty() {
                    return Err(
                        "name the exchange to watch (the platform's is usually \"events\")".into(),
                    );
                }
                let binding_keys: Vec<String> = self
                    .binding_keys
                    .split([',', ' '])
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned)
                    .collect();
                Ok(ConnectRequest::Amqp {
                    url: SecretUrl::new(u.to_string()),
                    exchange: exchange.to_owned(),
                    binding_keys: if binding_keys.is_empty() {
                        vec!["#".into()]
                    } else {
                        binding_keys
                    },
                    durable_queue: (self.durable && !self.queue.trim().is_empty())
                        .then(|| self.queue.trim().to_owned()),
                })
            }
        }
    }

    #[allow(clippy::too_many_lines)] // one form, field by field
    pub fn window_ui(
        &mut self,
        ctx: &egui::Context,
        state: &SourceState,
        describe: &str,
        theme: Theme,
        commands: &mut Vec<Command>,
    ) {
        if !self.open {
            return;
        }
        let mut open = true;
        egui::Window::new("Connection")
            .open(&mut open)
            .collapsible(false)
            .resizable(false)
            .default_width(460.0)
            .show(ctx, |ui| {
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut self.kind, SourceKind::Amqp, "RabbitMQ");
                    ui.selectable_value(&mut self.kind, SourceKind::Demo, "Demo feed");
                    ui.selectable_value(&mut self.kind, SourceKind::Replay, "Replay file");
                });
                ui.separator();
                egui::Grid::new("connection-form")
                    .num_columns(2)
                    .spacing([10.0, 6.0])
                    .show(ui, |ui| match self.kind {
                        SourceKind::Amqp => {
                            ui.label("URL");
                            ui.add(
                                egui::TextEdit::singleline(&mut self.url)
                                    .desired_width(320.0)
                                    .hint_text("amqp://user@host:5672/%2f"),
                            );
                            ui.end_row();
                            ui.label("Password");
                            ui.add(
                                egui::TextEdit::singleline(&mut self.password)
                                    .password(true)
                                    .desired_width(320.0)
                                    .hint_text("(kept in memory only)"),
                            );
                            ui.end_row();
                            ui.label("Exchange");
                            ui.add(
                                egui::TextEdit::singleline(&mut self.exchange).desired_width(320.0),
                            );
                            ui.end_row();
                            ui.label("Binding keys");
                            ui.add(
                                egui::TextEdit::singleline(&mut self.binding_keys)
                                    .desired_width(320.0)
                                    .hint_text("# or agent.* theboard.#"),
                            );
                            ui.end_row();
                            ui.label("Queue");
                            ui.vertical(|ui| {
                                ui.radio_value(
                                    &mut self.durable,
                                    false,
                                    "private (exclusive, deleted on exit)",
                                );
                                ui.radio_value(
                                    &mut self.durable,
                                    true,
                                    "durable, acknowledged (no gaps)",
                                );
                                if self.durable {
                                    ui.add(
                                        egui::TextEdit::singleline(&mut self.queue)
                                            .desired_width(300.0),
                                    );
                                }
                            });
                            ui.end_row();
                        }
                        SourceKind::Demo => {
                            ui.label("Rate");
                            ui.add(
                                egui::DragValue::new(&mut self.demo_rate)
                                    .range(0.0..=200_000.0)
                                    .speed(5.0)
                                    .suffix(" events/s"),
                            );
                            ui.end_row();
                        }
                        SourceKind::Replay => {
                            ui.label("File");
                            ui.add(
                                egui::TextEdit::singleline(&mut self.replay_path)
                                    .desired_width(320.0)
                                    .hint_text("/path/to/export.ndjson"),
                            );
                            ui.end_row();
                            ui.label("Speed");
                            ui.add(
                                egui::DragValue::new(&mut self.replay_speed)
                                    .range(0.01..=10_000.0)
                                    .speed(0.1)
                                    .suffix("×"),
                            );
                            ui.end_row();
                        }
                    });
                if let Some(e) = &self.error {
                    ui.colored_label(theme.bad(), e);
                }
                ui.separator();
                ui.horizontal(|ui| {
                    let (color, text) = state_text(state, theme);
                    crate::theme::dot(ui, color);
                    ui.label(
                        RichText::new(candybar_core::redact::mask_secrets_in(describe)).weak(),
                    );
                    ui.label(text);
                });
                ui.horizontal(|ui| {
                    if ui.button("Connect").clicked() {
                        match self.request() {
                            Ok(req) => {
                                self.error = None;
                                commands.push(Command::Connect(req));
                            }
                            Err(e) => self.error = Some(e),
                        }
                    }
                    if ui.button("Close").clicked() {
                        self.open = false;
                    }
                });
            });
        if !open {
            self.open = false;
        }
    }
}

/// The dot colour and words for a connection state.
#[must_use]
pub fn state_text(state: &SourceState, theme: Theme) -> (egui::Color32, String) {
    match state {
        SourceState::Connecting { attempt } if *attempt > 1 => {
            (theme.warn(), format!("connecting (attempt {attempt})…"))
        }
        SourceState::Connecting { .. } => (theme.warn(), "connecting…".into()),
        SourceState::Connected { .. } => (theme.good(), "connected".into()),
        SourceState::Retrying {
            reason, permanent, ..
        } => (
            if *permanent {
                theme.bad()
            } else {
                theme.warn()
            },
            candybar_core::redact::mask_secrets_in(reason),
        ),
        SourceState::Finished => (theme.weak_text(), "finished".into()),
    }
}

fn percent_decode(s: &str) -> String {
    // Form decoding reads '+' as a space; in a URL's userinfo it is a plain '+'.
    url::form_urlencoded::parse(format!("p={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map_or_else(|| s.to_owned(), |(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_moves_to_its_own_field_and_back() {
        let mut f = ConnectionForm {
            kind: SourceKind::Amqp,
            ..ConnectionForm::default()
        };
        f.set_url("amqp://bob:s%40cret@rabbit:5672/%2f");
        assert_eq!(f.url, "amqp://bob@rabbit:5672/%2f");
        assert_eq!(f.password, "s@cret");
        let Ok(ConnectRequest::Amqp {
            url,
            binding_keys,
            durable_queue,
            ..
        }) = f.request()
        else {
            panic!("valid form refused");
        };
        assert_eq!(url.expose(), "amqp://bob:s%40cret@rabbit:5672/%2f");
        assert_eq!(binding_keys, vec!["#"]);
        assert_eq!(durable_queue, None);
    }

    #[test]
    fn bad_fields_are_explained() {
        let mut f = ConnectionForm {
            kind: SourceKind::Amqp,
            url: "http://x".into(),
            ..ConnectionForm::default()
        };
        assert!(f.request().unwrap_err().contains("amqp://"));
        f.url = "not a url".into();
        assert!(f.request().unwrap_err().contains("not valid"));
        f.kind = SourceKind::Replay;
        assert!(f.request().unwrap_err().contains("NDJSON"));
    }
}
