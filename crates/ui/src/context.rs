//! What the views read: one [`ViewContext`] per frame, filled by the app from its workers. Views
//! never hold a worker's handle, a socket or a file; what they want done goes back as a
//! [`crate::Command`].

use std::path::PathBuf;
use std::time::Duration;

use candybar_core::health::Probes;
use candybar_core::registry::Registry;
use candybar_core::source::SourceState;
use candybar_core::store::EventStore;
use candybar_core::time::Micros;
use candybar_core::voice::{DictationStatus, HotkeyMode, InputDevice, ModelInfo, ServerStatus};

use crate::Command;
use crate::theme::Theme;
use crate::time_fmt::TimeZoneChoice;

/// What a view draws with: the frame's data, the look, and where its commands go. Every view's
/// `ui` takes this one struct.
pub struct ViewCx<'f, 'a> {
    pub data: &'f ViewContext<'a>,
    pub theme: Theme,
    pub tz: TimeZoneChoice,
    pub commands: &'f mut Vec<Command>,
}
use parking_lot::Mutex;

/// Everything a frame shows, borrowed from the app for the frame's length.
pub struct ViewContext<'a> {
    pub store: &'a EventStore,
    /// "Now" for relative times (a fixed instant in tests and snapshots).
    pub now_us: Micros,
    pub source: SourceInfo<'a>,
    /// Events wait at the source instead of entering the store.
    pub paused: bool,
    /// The registry the views draw (empty when none is configured and the feed is not the
    /// demo); `registry_version` changes with every reload.
    pub registry: &'a Registry,
    pub registry_version: u64,
    pub registry_status: &'a RegistryStatus,
    /// The latest answers of the services' health endpoints (empty when polling is off).
    pub probes: &'a Probes,
    /// Dictation, when this window runs it.
    pub dictation: Option<DictationInfo<'a>>,
    /// An export being written, if any.
    pub export: Option<ExportProgress>,
    /// The wgpu renderer, for the views that draw with their own shaders.
    pub render_state: Option<&'a eframe::egui_wgpu::RenderState>,
    /// The on-disk journal, when the window records or reads one.
    pub journal: Option<JournalInfo<'a>>,
    /// The journal's timeline, when there is a journal to travel in.
    pub timeline: Option<TimelineInfo<'a>>,
    /// The Charts' range beyond what memory holds, from the journal (when it asks for one).
    pub journal_rates: Option<&'a JournalRates>,
    /// Coding-agent sessions, when this window runs the sessions worker.
    pub sessions: Option<crate::sessions::SessionsInfo<'a>>,
    /// Mission Control's answers, once the view has asked for them.
    pub mission: Option<crate::mission::MissionInfo<'a>>,
    /// The conversation with the architect, when this window runs it.
    pub conversation: Option<crate::conversation::ConversationInfo<'a>>,
    /// The project's specs, when this window runs the specs worker.
    pub specs: Option<crate::specs::SpecsInfo<'a>>,
}

/// Events per column over a range of days, from the journal's block indexes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JournalRates {
    pub start_us: Micros,
    pub end_us: Micros,
    pub column_us: Micros,
    /// Events per column by domain, busiest first, "other" last.
    pub bands: Vec<(String, Vec<f64>)>,
    pub totals: Vec<f64>,
    pub errors: Vec<f64>,
}

/// The journal's span as the timeline shows it.
#[derive(Clone, Copy, Debug)]
pub struct TimelineInfo<'a> {
    /// The oldest and newest receive times the journal holds.
    pub span: (Micros, Micros),
    /// Events in each equal slice of `span`, oldest first.
    pub density: &'a [u32],
    /// The moment the views show; `None` while live.
    pub at: Option<Micros>,
    /// A moment being loaded from the journal, and how many events have been read so far.
    pub loading: Option<(Micros, usize)>,
    /// The oldest event in memory (the live store): from there on nothing needs the disk.
    pub in_memory_from: Option<Micros>,
    /// Now (the views' `now_us` is the moment shown while travelling).
    pub now_us: Micros,
    /// A search of the whole journal: under way, or its matches shown.
    pub search: Option<SearchInfo<'a>>,
}

/// A search of the whole journal for the filter.
#[derive(Clone, Copy, Debug)]
pub struct SearchInfo<'a> {
    pub filter: &'a str,
    pub matches: usize,
    pub blocks_done: usize,
    pub blocks_total: usize,
    /// Still reading (else its matches are what the views show).
    pub running: bool,
}

/// The journal as the status bar shows it (the app fills it from its journal thread).
#[derive(Clone, Copy, Debug)]
pub struct JournalInfo<'a> {
    /// One short line: "journal: recording (12,345 new)".
    pub line: &'a str,
    /// Where it is and what it means.
    pub hover: &'a str,
    /// Something to act on (a full disk), shown in the warning colour.
    pub warning: Option<&'a str>,
}

impl<'a> ViewContext<'a> {
    /// A frame over `store` alone: no source, registry, probes, dictation or GPU (benchmarks,
    /// tests of one view).
    #[must_use]
    pub fn standalone(store: &'a EventStore, now_us: Micros, registry: &'a Registry) -> Self {
        static NO_SOURCE: SourceState = SourceState::Finished;
        static NO_STATUS: RegistryStatus = RegistryStatus::Example;
        static NO_PROBES: Probes = Probes(rustc_hash::FxHashMap::with_hasher(
            rustc_hash::FxBuildHasher,
        ));
        Self {
            store,
            now_us,
            source: SourceInfo {
                describe: "",
                demo_reason: None,
                state: &NO_SOURCE,
                retry_in: None,
                ended: false,
                rate_per_sec: 0.0,
            },
            paused: false,
            registry,
            registry_version: 0,
            registry_status: &NO_STATUS,
            probes: &NO_PROBES,
            dictation: None,
            export: None,
            render_state: None,
            journal: None,
            timeline: None,
            journal_rates: None,
            sessions: None,
            mission: None,
            conversation: None,
            specs: None,
        }
    }
}

/// The source of events as the chrome shows it.
#[derive(Clone, Copy)]
pub struct SourceInfo<'a> {
    /// What the source is, secrets masked.
    pub describe: &'a str,
    /// Why the demo feed is shown, when it is.
    pub demo_reason: Option<&'a str>,
    pub state: &'a SourceState,
    /// Time left before the next connection attempt, when retrying.
    pub retry_in: Option<Duration>,
    /// The source task ended (a replay is done, or it failed for good).
    pub ended: bool,
    pub rate_per_sec: f64,
}

impl SourceInfo<'_> {
    #[must_use]
    pub fn is_demo(&self) -> bool {
        self.demo_reason.is_some()
    }
}

/// Dictation as the view and the status bar show it. The statuses are the workers' own, read
/// under their locks for as long as a widget needs them.
#[derive(Clone, Copy)]
pub struct DictationInfo<'a> {
    pub status: &'a Mutex<DictationStatus>,
    pub hotkey: &'a HotkeyInfo,
    pub server: &'a Mutex<ServerStatus>,
    pub server_port: u16,
    /// The input devices, once listed (the view asks with [`crate::Command::ListDevices`]).
    pub devices: Option<&'a Result<Vec<InputDevice>, String>>,
    /// The models in the model directory, with their speed once measured
    /// ([`crate::Command::MeasureModels`]).
    pub models: &'a [ModelInfo],
    /// Their speed is being measured.
    pub measuring: bool,
    /// The model whose `Q8_0` copy is being made ([`crate::Command::QuantizeModel`]).
    pub quantizing: Option<&'a str>,
    /// What the last model job came to, in words (a copy made, or why not).
    pub models_note: Option<&'a str>,
}

/// The hotkey as registered, for the view and the status bar.
#[derive(Clone, Debug, Default)]
pub struct HotkeyInfo {
    pub combo: String,
    pub mode: HotkeyMode,
    /// Why the hotkey does not work, in words the user can act on.
    pub error: Option<String>,
}

/// What the status bar and the Flow and Health views say about the registry.
#[derive(Clone, Debug, PartialEq)]
pub enum RegistryStatus {
    /// None configured; the demo feed simulates the bundled example, which the views show.
    Example,
    /// None configured and the events come from elsewhere: the views say how to set one.
    NotConfigured,
    Loaded {
        path: PathBuf,
        services: usize,
    },
    /// The file is broken or gone; the last good registry stays in use.
    Problem {
        path: PathBuf,
        message: String,
    },
}

/// An export in progress.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExportProgress {
    pub done: usize,
    pub total: usize,
}

impl ExportProgress {
    /// Fraction done, 0..=1.
    #[must_use]
    pub fn fraction(&self) -> f32 {
        if self.total == 0 {
            1.0
        } else {
            self.done as f32 / self.total as f32
        }
    }
}
