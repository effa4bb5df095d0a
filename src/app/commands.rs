//! Applying the views' commands: the UI's own go to the [`candybar_ui::Viewer`], the rest
//! (connecting, exporting, dictation, secrets, autostart) are done here, on threads or tasks
//! where they could take a while.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candybar_bus::amqp::{AmqpConfig, QueueMode};
use candybar_bus::demo::DemoSourceConfig;
use candybar_bus::replay::{Pace, ReplayConfig};
use candybar_bus::{amqp, demo, replay};
use candybar_core::demo::DemoConfig;
use candybar_core::export::ExportFormat;
use candybar_core::mission::report::{Report, ReportFormat, render};
use candybar_core::redact::Secret;
use candybar_core::registry::Registry;
use candybar_ui::mission::DocFormat;
use candybar_ui::stream::{format_bytes, format_count};
use candybar_ui::{Command, ConnectRequest, ToastLevel};
use candybar_voice::dictation::Request;

use super::CandybarApp;
use super::export::{ExportJob, ExportStatus};

/// Time per frame for encoding an export.
const EXPORT_BUDGET: Duration = Duration::from_millis(4);

/// Why a file dialog was opened.
#[derive(Clone, Copy, Debug)]
pub(super) enum SavePurpose {
    Filtered(ExportFormat),
    Event(u64),
    Mission(Report, DocFormat),
}

pub(super) struct DialogResult {
    purpose: SavePurpose,
    path: Option<PathBuf>,
    /// A dialog that returns at once without a path most likely could not open at all.
    elapsed: Duration,
}

impl CandybarApp {
    /// Applies what the views asked for this frame, in order.
    /// Hands a Conversation or Specs command to the architect worker.
    fn ask_architect(&mut self, command: Command) {
        let Some(w) = self.architect.as_mut() else {
            self.toast(
                ToastLevel::Error,
                "the architect is not available in this window",
            );
            return;
        };
        let taken = match command {
            Command::Conversation(a) => w.conversation(a),
            Command::Specs(a) => w.spec(a),
            _ => true,
        };
        if !taken {
            self.toast(
                ToastLevel::Error,
                "the architect is busy; try again in a moment",
            );
        }
    }

    pub(super) fn apply_commands(&mut self, ctx: &egui::Context) {
        for cmd in self.viewer.take_commands() {
            let (store, _) = super::shown(&self.live, self.travel.as_ref(), self.clock);
            let Some(cmd) = self.viewer.apply(cmd, store, ctx) else {
                continue;
            };
            match cmd {
                Command::Autostart(on) => match crate::autostart::set(on) {
                    Ok(path) if on => self.toast(
                        ToastLevel::Info,
                        format!(
                            "candybar will start in the tray when you log in ({})",
                            path.display()
                        ),
                    ),
                    Ok(_) => self.toast(ToastLevel::Info, "candybar will not start at login"),
                    Err(e) => self.toast(ToastLevel::Error, format!("autostart: {e}")),
                },
                Command::ExportFiltered(format) => self.save_dialog(SavePurpose::Filtered(format)),
                Command::ExportEvent(seq) => self.save_dialog(SavePurpose::Event(seq)),
                Command::CancelExport => {
                    if let Some(job) = self.export.take() {
                        job.cancel();
                        self.toast(ToastLevel::Info, "Export cancelled");
                    }
                }
                Command::Connect(req) => self.connect(req),
                Command::TravelTo(at) => self.travel_to(at),
                Command::SearchJournal => self.search_journal(),
                Command::Mission(candybar_ui::mission::MissionAction::Wake) => self.start_mission(),
                Command::Mission(candybar_ui::mission::MissionAction::OpenArchived(path)) => {
                    if let Some(m) = &self.mission {
                        m.open_archived(path);
                    }
                }
                Command::Mission(candybar_ui::mission::MissionAction::Export {
                    report,
                    format,
                }) => {
                    self.save_dialog(SavePurpose::Mission(report, format));
                }
                Command::Mission(candybar_ui::mission::MissionAction::Brief {
                    since_us,
                    until_us,
                }) => {
                    self.start_mission();
                    if let Some(m) = &mut self.mission {
                        m.write_brief(since_us, until_us);
                    }
                }
                Command::Mission(candybar_ui::mission::MissionAction::Rewrite) => {
                    let waker = self.ctx.clone();
                    if let Some(m) = &mut self.mission {
                        m.rewrite_brief(move || waker.request_repaint());
                    }
                }
                c @ (Command::Conversation(_) | Command::Specs(_)) => self.ask_architect(c),
                Command::Sessions(action) => {
                    let taken = self.sessions.as_mut().is_some_and(|w| w.ask(action));
                    if !taken {
                        self.toast(
                            ToastLevel::Error,
                            "the sessions worker is busy; try again in a moment",
                        );
                    }
                }
                Command::SetPaused(paused) => self.paused = paused,
                Command::Dictation(action) => {
                    if let Some(d) = &self.dictation {
                        d.handle.send(Request::from(action));
                    } else {
                        self.toast(ToastLevel::Error, "dictation is off in this window");
                    }
                }
                Command::LocalServer(start) => self.local_server(start),
                Command::SaveSecret(name, value) => self.save_secret(name, value),
                Command::ApplyDictation(draft) => {
                    self.dictation_edited = true;
                    self.apply_dictation(&draft);
                }
                Command::ListDevices => self.list_devices(),
                Command::MeasureModels => self.measure_models(),
                Command::QuantizeModel(name) => self.quantize_model(name),
                Command::Quit => self.quit(ctx),
                // The viewer's own; `Viewer::apply` took them.
                Command::SetFilter(_)
                | Command::Select(_)
                | Command::OpenDetail(_)
                | Command::OpenTrace(_)
                | Command::ToggleDetail
                | Command::Escape
                | Command::Copy(_)
                | Command::OpenConnectionDialog
                | Command::SetTheme(_)
                | Command::SetView(_) => {}
            }
        }
    }

    /// Keeps a token on a thread of its own (a keychain may take seconds) and tells the worker.
    fn save_secret(&mut self, name: &'static str, value: Secret) {
        let tx = self.secret_results.0.clone();
        let dictation = self.dictation.as_ref().map(|d| d.handle.clone());
        let ctx = self.ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("save-secret".into())
            .spawn(move || {
                let result = crate::secrets::set(name, value.expose());
                if let Some(d) = dictation {
                    d.send(Request::ReloadSecrets);
                }
                let _ = tx.send((name, result.map_err(|e| e.to_string())));
                ctx.request_repaint();
            });
        if spawned.is_err() {
            self.toast(ToastLevel::Error, "cannot save the token now");
        }
    }

    pub(super) fn poll_secrets(&mut self) {
        while let Ok((name, result)) = self.secret_results.1.try_recv() {
            match result {
                Ok(crate::secrets::Place::File(path)) => self.toast(
                    ToastLevel::Error,
                    format!(
                        "No system keychain answered: the {name} is kept in {}, readable only by you",
                        path.display()
                    ),
                ),
                Ok(place) => self.toast(
                    ToastLevel::Info,
                    format!("The {name} is kept in {}", place.words()),
                ),
                Err(e) => self.toast(ToastLevel::Error, format!("The {name} was not kept: {e}")),
            }
        }
    }

    fn save_dialog(&self, purpose: SavePurpose) {
        // The file's name, and the filter's label and extension.
        let (name, label, extension) = match purpose {
            SavePurpose::Filtered(f) => (
                format!("candybar-events.{}", f.extension()),
                f.label(),
                f.extension(),
            ),
            SavePurpose::Event(seq) => (
                format!("candybar-event-{seq}.ndjson"),
                ExportFormat::Ndjson.label(),
                ExportFormat::Ndjson.extension(),
            ),
            SavePurpose::Mission(report, doc) => (
                format!("candybar-{}.{}", report.name(), doc.extension()),
                doc.label(),
                doc.extension(),
            ),
        };
        let tx = self.dialogs.0.clone();
        let ctx = self.ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("file-dialog".into())
            .spawn(move || {
                let start = Instant::now();
                let path = rfd::FileDialog::new()
                    .set_file_name(name)
                    .add_filter(label, &[extension])
                    .save_file();
                let _ = tx.send(DialogResult {
                    purpose,
                    path,
                    elapsed: start.elapsed(),
                });
                ctx.request_repaint();
            });
        if spawned.is_err() {
            tracing::warn!("cannot start a file dialog thread");
        }
    }

    pub(super) fn poll_dialogs(&mut self) {
        while let Ok(r) = self.dialogs.1.try_recv() {
            let Some(path) = r.path else {
                if r.elapsed < Duration::from_millis(300) {
                    self.toast(
                        ToastLevel::Error,
                        "No file dialog could open: install xdg-desktop-portal (or zenity)",
                    );
                }
                continue;
            };
            match r.purpose {
                SavePurpose::Filtered(format) => self.export_filtered(&path, format),
                SavePurpose::Event(seq) => {
                    self.start_export(&path, ExportFormat::Ndjson, vec![seq], true);
                }
                SavePurpose::Mission(report, doc) => self.export_mission(&path, report, doc),
            }
        }
    }

    /// Writes a Mission tab to `path` (the document is made here, the file written on a thread;
    /// a toast says how it went).
    pub fn export_mission(&mut self, path: &Path, report: Report, doc: DocFormat) {
        self.start_mission();
        let Some(m) = &self.mission else { return };
        let until = self.clock.now_us();
        let since = until - 12 * 3_600_000_000;
        let title = crate::cli::mission::brief_title(until);
        let text_format = match doc {
            DocFormat::Markdown | DocFormat::Pdf => ReportFormat::Markdown,
            DocFormat::Json => ReportFormat::Json,
            DocFormat::Csv => ReportFormat::Csv,
        };
        let bytes = match render(&m.mission, report, since, until, &title, text_format) {
            Ok(text) if doc == DocFormat::Pdf => {
                crate::pdf::markdown_to_pdf(&text, &format!("candybar — {}", report.name()))
            }
            Ok(text) => text.into_bytes(),
            Err(e) => {
                self.toast(ToastLevel::Error, format!("cannot export: {e}"));
                return;
            }
        };
        let path = path.to_owned();
        let (tx, ctx) = (self.mission_exports.0.clone(), self.ctx.clone());
        let spawned = std::thread::Builder::new()
            .name("mission-export".into())
            .spawn(move || {
                let done = std::fs::write(&path, &bytes)
                    .map(|()| {
                        format!(
                            "Saved {} ({})",
                            path.display(),
                            format_bytes(bytes.len() as u64)
                        )
                    })
                    .map_err(|e| super::export::describe_io_error(&path, &e));
                let _ = tx.send(done);
                ctx.request_repaint();
            });
        if spawned.is_err() {
            self.toast(ToastLevel::Error, "cannot start writing the file");
        }
    }

    /// Says how Mission exports went.
    pub(super) fn poll_mission_exports(&mut self) {
        while let Ok(done) = self.mission_exports.1.try_recv() {
            match done {
                Ok(words) => self.toast(ToastLevel::Info, words),
                Err(e) => self.toast(ToastLevel::Error, e),
            }
        }
    }

    /// Starts writing the events the filter shows to `path`.
    pub fn export_filtered(&mut self, path: &Path, format: ExportFormat) {
        let seqs: Vec<u64> = self.viewer.stream.view.matches().iter().copied().collect();
        self.start_export(path, format, seqs, false);
    }

    /// Starts writing events `seqs` to `path` (the writer thread creates the file).
    fn start_export(&mut self, path: &Path, format: ExportFormat, seqs: Vec<u64>, single: bool) {
        let (store, _) = super::shown(&self.live, self.travel.as_ref(), self.clock);
        if single && store.get(seqs.first().copied().unwrap_or(0)).is_none() {
            self.toast(ToastLevel::Error, "this event has been evicted from memory");
            return;
        }
        match ExportJob::start(path, format, seqs) {
            Ok(job) => {
                self.export = Some(job);
                self.export_single = single;
            }
            Err(e) => self.toast(ToastLevel::Error, e),
        }
    }

    pub(super) fn step_export(&mut self) {
        let Some(job) = &mut self.export else { return };
        let (store, _) = super::shown(&self.live, self.travel.as_ref(), self.clock);
        match job.step(store, EXPORT_BUDGET) {
            ExportStatus::Running => self.ctx.request_repaint(),
            ExportStatus::Done {
                path,
                written,
                skipped,
                bytes,
            } => {
                self.export = None;
                if self.export_single {
                    self.toast(ToastLevel::Info, format!("Saved {}", path.display()));
                    return;
                }
                let mut text = format!(
                    "Exported {} events ({}) to {}",
                    format_count(written),
                    format_bytes(bytes),
                    path.display()
                );
                if skipped > 0 {
                    let _ = write!(
                        text,
                        "; {} were evicted from memory before they could be written",
                        format_count(skipped)
                    );
                }
                self.toast(ToastLevel::Info, text);
            }
            ExportStatus::Failed { error, .. } => {
                self.export = None;
                self.toast(ToastLevel::Error, error);
            }
        }
    }

    fn connect(&mut self, req: ConnectRequest) {
        let body_cap_bytes = self.live.store.config().body_cap_bytes;
        let is_broker = matches!(req, ConnectRequest::Amqp { .. });
        let (handle, demo_reason) = match req {
            ConnectRequest::Demo { rate_per_sec } => {
                // The demo simulates the user's registry when one is loaded, else the example.
                let simulated = match self.registry_status {
                    candybar_ui::RegistryStatus::Loaded { .. }
                    | candybar_ui::RegistryStatus::Problem { .. } => self.registry.clone(),
                    _ => Registry::example(),
                };
                (
                    demo::spawn(
                        DemoSourceConfig {
                            demo: DemoConfig::default(),
                            rate_per_sec,
                            limit: None,
                        },
                        simulated,
                    ),
                    Some("chosen in the Connection dialog".to_owned()),
                )
            }
            ConnectRequest::Amqp {
                url,
                exchange,
                binding_keys,
                durable_queue,
            } => (
                amqp::spawn(AmqpConfig {
                    url,
                    exchange,
                    binding_keys,
                    queue: durable_queue.map_or(QueueMode::Private, QueueMode::Durable),
                    prefetch: self.prefetch,
                    body_cap_bytes,
                    ack_gate: None,
                }),
                None,
            ),
            ConnectRequest::Replay { path, speed } => (
                replay::spawn(ReplayConfig {
                    path,
                    pace: Pace::Speed(speed),
                    body_cap_bytes,
                }),
                None,
            ),
        };
        let handle = self.journaled(handle, is_broker);
        self.live.connect(handle, demo_reason);
        let waker = self.ctx.clone();
        self.live.set_waker(move || waker.request_repaint());
        self.follow_source_with_registry();
    }
}
