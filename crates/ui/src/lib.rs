//! candybar's window contents: the views and the chrome around them. The app (the binary crate)
//! owns the workers; each frame it fills a [`ViewContext`] and calls [`Viewer::frame_ui`]; the
//! views answer with [`Command`]s, which the app applies in one place. Nothing here touches a
//! file, a socket, the microphone or a worker (`.ci/check-layering` keeps tokio, lapin, cpal,
//! rusqlite, reqwest and whisper-rs out of this crate).
//!
//! # Layout
//! - [`viewer`]: the window's state between frames, the frame itself, the UI's own commands.
//! - [`chrome`]: the top bar (source, filter, export), the navigation, the status bar, toasts.
//! - [`context`]: what a frame reads ([`ViewContext`]).
//! - [`stream`]: the event table. [`detail`]: one event. [`stats`]: the cards above the table.
//! - [`charts`]: rates, histograms, top lists. [`flow`]: the services and how events move.
//!   [`health`]: the registry's services. [`constellation`]: the agents (its own WGSL shaders).
//! - [`dictation`]: record, live text, history search, dictation settings.
//! - [`mission`]: Mission Control: portfolio, decision radar, plans and drift, risks, briefings.
//! - [`sessions`]: coding-agent sessions: their states, a start form, a session's live log.
//! - [`trace`]: one correlation id's or session's events as a waterfall.
//! - [`connection`]: the Connection dialog.
//! - [`timeline`]: the journal's span under the views; picking a moment shows the past.
//! - [`theme`], [`time_fmt`], [`frame_stats`]: colours, times, the window's own measurements.

pub mod charts;
pub mod chrome;
pub mod connection;
pub mod constellation;
pub mod context;
pub mod conversation;
pub mod detail;
pub mod dictation;
pub mod flow;
pub mod frame_stats;
pub mod health;
pub mod mission;
pub mod sessions;
pub mod specs;
pub mod stats;
pub mod stream;
pub mod theme;
pub mod time_fmt;
pub mod timeline;
pub mod trace;
pub mod viewer;

use candybar_core::export::ExportFormat;
use candybar_core::redact::Secret;
use candybar_core::voice::DictationAction;

pub use connection::ConnectRequest;
pub use context::{
    DictationInfo, ExportProgress, HotkeyInfo, JournalInfo, JournalRates, RegistryStatus,
    SearchInfo, SourceInfo, TimelineInfo, ViewContext,
};
pub use dictation::DictationDraft;
pub use theme::ThemeChoice;
pub use viewer::{ToastLevel, Viewer};

/// The views of the central panel, in the order of the navigation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum View {
    #[default]
    Stream,
    Flow,
    Charts,
    Health,
    Constellation,
    Mission,
    Sessions,
    Traces,
    Dictation,
    Conversation,
    Specs,
}

impl View {
    pub const ALL: [Self; 11] = [
        Self::Stream,
        Self::Flow,
        Self::Charts,
        Self::Health,
        Self::Constellation,
        Self::Mission,
        Self::Sessions,
        Self::Traces,
        Self::Dictation,
        Self::Conversation,
        Self::Specs,
    ];

    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Stream => "☰ Stream",
            Self::Flow => "🔀 Flow",
            Self::Charts => "📈 Charts",
            Self::Health => "♥ Health",
            Self::Constellation => "✨ Agents",
            Self::Mission => "🎯 Mission",
            Self::Sessions => "▶ Sessions",
            Self::Traces => "⏱ Traces",
            Self::Dictation => "🎤 Dictation",
            Self::Conversation => "💬 Talk",
            Self::Specs => "📝 Specs",
        }
    }

    /// The name on the command line (`--view`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Stream => "stream",
            Self::Flow => "flow",
            Self::Charts => "charts",
            Self::Health => "health",
            Self::Constellation => "constellation",
            Self::Mission => "mission",
            Self::Sessions => "sessions",
            Self::Traces => "traces",
            Self::Dictation => "dictation",
            Self::Conversation => "conversation",
            Self::Specs => "specs",
        }
    }

    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }
}

/// What a view asks for. The UI's own (filter, selection, view, theme) are applied by
/// [`Viewer::apply`]; the rest by the app, which owns the workers.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    SetFilter(String),
    Select(u64),
    OpenDetail(bool),
    ToggleDetail,
    /// Esc outside a text field: close the detail pane, else clear the selection.
    Escape,
    Copy(String),
    OpenConnectionDialog,
    SetTheme(ThemeChoice),
    SetView(View),
    /// Start (or stop starting) candybar in the tray at login.
    Autostart(bool),
    ExportFiltered(ExportFormat),
    ExportEvent(u64),
    /// Stop the export being written (its partial file is removed).
    CancelExport,
    Connect(ConnectRequest),
    /// Pause (true) or resume taking events from the source.
    SetPaused(bool),
    Dictation(DictationAction),
    ApplyDictation(DictationDraft),
    /// List the input devices (the answer arrives in [`DictationInfo::devices`]).
    ListDevices,
    /// Measure each installed model's speed on this machine (the answer arrives in
    /// [`DictationInfo::models`]).
    MeasureModels,
    /// Make a `Q8_0` copy of this installed model (`NAME-q8_0`) beside it; the list arrives in
    /// [`DictationInfo::models`], what came of it in [`DictationInfo::models_note`].
    QuantizeModel(String),
    /// Start (true) or stop the built-in ASR server.
    LocalServer(bool),
    /// Keep a token in the keychain: its name and value.
    SaveSecret(&'static str, Secret),
    /// Show the platform as it was at this moment, from the journal (`None`: live again).
    TravelTo(Option<candybar_core::time::Micros>),
    /// Find the newest events that match the filter in the whole journal, and show them.
    SearchJournal,
    /// Show the waterfall of this correlation id, event id or session id.
    OpenTrace(String),
    /// Start, end, attach to, talk to or pick a coding-agent session.
    Sessions(sessions::SessionAction),
    /// Mission Control: start reading, write a briefing.
    Mission(mission::MissionAction),
    /// Talk with the architect.
    Conversation(conversation::ConversationAction),
    /// Specs: show, approve, reject, continue, file.
    Specs(specs::SpecAction),
    /// Quit, even where closing the window would only hide it.
    Quit,
}
