//! The window's architect worker: the Conversation view's talk (the dictation worker hands it
//! the microphone's words while the view is shown, so the hotkey and the 🎙 button both talk to
//! the architect) and the Specs view's files (listed, watched for edits on disk, approved,
//! rejected, continued, filed on GitHub). One thread of its own; the UI thread copies its
//! snapshot when it changes. Nothing is opened until one of the two views is first shown.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use candybar_core::redact::SecretUrl;
use candybar_sessions::outbox::keep_and_send;
use candybar_sessions::store::Outgoing;
use candybar_specs::github::{self, GitHub};
use candybar_specs::store::{FiledIssue, Meta, SpecStore};
use candybar_ui::ToastLevel;
use candybar_ui::conversation::{ConversationAction, TurnRow};
use candybar_ui::specs::{SpecAction, SpecRow, SpecText};
use candybar_voice::dictation::{Dictation, HandOff, HandOffTo, Request};
use candybar_voice::speech::Speaker;
use notify::Watcher as _;
use parking_lot::Mutex;

use crate::talk::{Outcome, Talk, TalkConfig, TalkEvent};

/// What the worker needs.
pub struct ArchitectInit {
    /// The conversation's settings, or why there can be none (no architect configured).
    pub talk: Result<TalkConfig, String>,
    pub repo: Option<String>,
    pub github_api: String,
    /// The GitHub token, looked up when a spec is filed (the keychain can be slow).
    pub github_token: Box<dyn Fn() -> Option<candybar_core::redact::Secret> + Send>,
    /// Where the events wait for the broker (the sessions' outbox).
    pub outbox: PathBuf,
    pub broker: Option<(SecretUrl, String)>,
    pub rt: tokio::runtime::Handle,
}

/// What the two views show, as the worker last saw it.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub generation: u64,
    // The conversation.
    pub turns: Vec<TurnRow>,
    pub reply: String,
    pub state: String,
    pub hearing: String,
    pub error: Option<String>,
    pub project: String,
    pub architect: String,
    pub speech: String,
    pub continuing: Option<String>,
    pub spec: Option<String>,
    pub role: String,
    pub past: Vec<(String, String, Option<String>)>,
    // The specs.
    pub dir: String,
    pub rows: Vec<SpecRow>,
    pub text: Option<SpecText>,
    pub problems: Vec<String>,
    pub repo: Option<String>,
    pub busy: Option<String>,
    pub message: Option<(String, bool)>,
    /// Said once each (toasts).
    pub notices: Vec<(ToastLevel, String)>,
    /// A view to switch to, and the spec to show there (taken once).
    pub go_to: Option<(candybar_ui::View, Option<String>)>,
    /// Text for the clipboard (taken once).
    pub copy: Option<String>,
}

enum Msg {
    Conversation(ConversationAction),
    Spec(SpecAction),
    Heard(HandOff),
    /// Files under `.sentra/specs` changed.
    Changed,
}

pub struct ArchitectWorker {
    tx: SyncSender<Msg>,
    pub snapshot: Arc<Mutex<Snapshot>>,
    pub seen: Snapshot,
    dictation: Option<Dictation>,
    hand_off: SyncSender<HandOff>,
    /// The conversation's speaker, to hush it from the UI thread while the worker streams.
    hush: Arc<Mutex<Option<Speaker>>>,
}

impl ArchitectWorker {
    pub fn start(
        init: ArchitectInit,
        dictation: Option<Dictation>,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        let (tx, rx) = sync_channel(64);
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        let shared = snapshot.clone();
        let wake = Arc::new(wake);
        // The speaker of the conversation under way, for a barge-in that cannot wait for the
        // worker (it is busy streaming the reply).
        let hush: Arc<Mutex<Option<Speaker>>> = Arc::default();
        let (hand_off, heard) = sync_channel::<HandOff>(16);
        let forward = tx.clone();
        let hush_now = hush.clone();
        let hush_here = hush.clone();
        std::thread::Builder::new()
            .name("architect-ears".into())
            .spawn(move || {
                for h in heard {
                    if h == HandOff::Started
                        && let Some(s) = hush_now.lock().as_ref()
                    {
                        s.stop();
                    }
                    if forward.send(Msg::Heard(h)).is_err() {
                        return;
                    }
                }
            })?;
        let self_tx = tx.clone();
        std::thread::Builder::new()
            .name("architect".into())
            .spawn(move || run(init, &rx, &self_tx, &shared, &hush_here, wake.as_ref()))?;
        Ok(Self {
            tx,
            snapshot,
            seen: Snapshot::default(),
            dictation,
            hand_off,
            hush,
        })
    }

    pub fn conversation(&mut self, action: ConversationAction) -> bool {
        match &action {
            ConversationAction::Shown(shown) => {
                if let Some(d) = &self.dictation {
                    let to = shown.then(|| HandOffTo(self.hand_off.clone()));
                    d.send(Request::HandOff(to));
                }
            }
            ConversationAction::Hush => {
                if let Some(s) = self.hush.lock().as_ref() {
                    s.hush();
                }
                return true;
            }
            ConversationAction::Talk(down) => {
                // The button is the hotkey's twin: dictation records, and hands the words over.
                if let Some(d) = &self.dictation {
                    d.send(if *down {
                        Request::Start
                    } else {
                        Request::StopDictation
                    });
                }
                return true;
            }
            _ => {}
        }
        self.tx.try_send(Msg::Conversation(action)).is_ok()
    }

    pub fn spec(&mut self, action: SpecAction) -> bool {
        if let SpecAction::OpenUrl(url) = &action {
            open_url(url);
            return true;
        }
        self.tx.try_send(Msg::Spec(action)).is_ok()
    }

    pub fn conversation_info(&self) -> candybar_ui::conversation::ConversationInfo<'_> {
        let s = &self.seen;
        candybar_ui::conversation::ConversationInfo {
            turns: &s.turns,
            reply: &s.reply,
            state: &s.state,
            hearing: &s.hearing,
            error: s.error.as_deref(),
            project: &s.project,
            dir: &s.dir,
            architect: &s.architect,
            speech: &s.speech,
            continuing: s.continuing.as_deref(),
            spec: s.spec.as_deref(),
            role: &s.role,
            past: &s.past,
        }
    }

    pub fn specs_info(&self) -> candybar_ui::specs::SpecsInfo<'_> {
        let s = &self.seen;
        candybar_ui::specs::SpecsInfo {
            rows: &s.rows,
            text: s.text.as_ref(),
            dir: &s.dir,
            problems: &s.problems,
            repo: s.repo.as_deref(),
            busy: s.busy.as_deref(),
            message: s.message.as_ref().map(|(m, e)| (m.as_str(), *e)),
        }
    }
}

/// Opens a link in the user's browser.
fn open_url(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    if let Err(e) = std::process::Command::new(opener).arg(url).spawn() {
        tracing::warn!("cannot open {url}: {e}");
    }
}

/// The spec the Specs view shows: its id, the version (newest when `None`), and a diff asked for.
type Showing = (String, Option<u32>, Option<(u32, u32)>);

struct Worker<'a> {
    init: ArchitectInit,
    talk: Option<Talk>,
    shared: &'a Mutex<Snapshot>,
    wake: &'a (dyn Fn() + Send + Sync),
    hush: &'a Mutex<Option<Speaker>>,
    specs: Option<SpecStore>,
    watcher: Option<notify::RecommendedWatcher>,
    tx: SyncSender<Msg>,
    showing: Option<Showing>,
    /// The reply is still being said (the view says "speaking" until it ends).
    speaking: bool,
}

fn run(
    init: ArchitectInit,
    rx: &Receiver<Msg>,
    tx: &SyncSender<Msg>,
    shared: &Mutex<Snapshot>,
    hush: &Mutex<Option<Speaker>>,
    wake: &(dyn Fn() + Send + Sync),
) {
    let mut w = Worker {
        init,
        talk: None,
        shared,
        wake,
        hush,
        specs: None,
        watcher: None,
        tx: tx.clone(),
        showing: None,
        speaking: false,
    };
    w.describe();
    let mut last_change: Option<Instant> = None;
    loop {
        let wait = if last_change.is_some() || w.speaking {
            Duration::from_millis(200)
        } else {
            Duration::from_hours(1)
        };
        match rx.recv_timeout(wait) {
            Ok(Msg::Conversation(a)) => w.conversation(a),
            Ok(Msg::Spec(a)) => w.spec(a),
            Ok(Msg::Heard(h)) => w.heard(h),
            // Edits come in bursts (an editor writes, renames, touches): read once they settle.
            Ok(Msg::Changed) => last_change = Some(Instant::now()),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        }
        if last_change.is_some_and(|t| t.elapsed() > Duration::from_millis(150)) {
            last_change = None;
            w.list_specs();
        }
        // The reply's voice ends by itself: the view says so.
        if w.speaking && !w.talk.as_ref().is_some_and(|t| t.speaker.status().speaking) {
            w.speaking = false;
            w.update(|s| {
                if s.state == "speaking" {
                    s.state = "ready".into();
                }
            });
        }
    }
}

fn ms_words(ms: Option<u64>) -> Option<String> {
    ms.map(|ms| format!("{:.1} s", ms as f64 / 1000.0))
}

fn turn_row(t: &candybar_specs::conversation::Turn) -> TurnRow {
    let mut timing = Vec::new();
    if let Some(w) = ms_words(t.first_token_ms) {
        timing.push(format!("first words {w}"));
    }
    if let Some(w) = ms_words(t.first_audio_ms) {
        timing.push(format!("first sound {w}"));
    }
    if let Some(w) = ms_words(t.asr_ms) {
        timing.push(format!("heard in {w}"));
    }
    TurnRow {
        mine: t.role == candybar_specs::chat::Role::User,
        text: t.text.clone(),
        timing: t.error.clone().unwrap_or_else(|| timing.join(" · ")),
        failed: t.error.is_some(),
    }
}

impl Worker<'_> {
    fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        let mut s = self.shared.lock();
        f(&mut s);
        s.generation += 1;
        drop(s);
        (self.wake)();
    }

    fn say(&self, level: ToastLevel, words: String) {
        self.update(|s| s.notices.push((level, words)));
    }

    /// What the conversation's header says, before anything is opened.
    fn describe(&self) {
        let (project, architect, speech, role, error, dir) = match &self.init.talk {
            Ok(c) => (
                c.project.clone(),
                format!(
                    "{} ({})",
                    candybar_core::redact::mask_url(&c.chat.url),
                    c.chat.model
                ),
                c.speech.words(),
                c.role.clone(),
                None,
                c.project_dir.display().to_string(),
            ),
            Err(e) => (
                String::new(),
                "not configured".to_owned(),
                String::new(),
                String::new(),
                Some(e.clone()),
                String::new(),
            ),
        };
        let repo = self.init.repo.clone();
        self.update(|s| {
            s.project = project;
            s.architect = architect;
            s.speech = speech;
            s.role = role;
            s.error = error;
            s.state = "ready".into();
            s.dir = dir;
            s.repo = repo;
        });
    }

    fn project_dir(&self) -> Option<PathBuf> {
        self.init.talk.as_ref().ok().map(|c| c.project_dir.clone())
    }

    /// The conversation under way, started when first needed.
    fn talk(&mut self) -> Option<&mut Talk> {
        if self.talk.is_none() {
            let cfg = match &self.init.talk {
                Ok(c) => c.clone(),
                Err(e) => {
                    let e = e.clone();
                    self.update(|s| s.error = Some(e));
                    return None;
                }
            };
            match Talk::start(cfg) {
                Ok(t) => {
                    *self.hush.lock() = Some(t.speaker.clone());
                    let id = t.id.clone();
                    self.update(|s| {
                        s.turns.clear();
                        s.spec = None;
                        s.error = None;
                        s.state = format!("ready · conversation {id}");
                    });
                    self.talk = Some(t);
                }
                Err(e) => {
                    let e = format!("{e:#}");
                    self.update(|s| s.error = Some(e));
                    return None;
                }
            }
        }
        self.talk.as_mut()
    }

    fn conversation(&mut self, action: ConversationAction) {
        match action {
            ConversationAction::Shown(true) => self.past(""),
            ConversationAction::Shown(false) | ConversationAction::Talk(_) => {}
            ConversationAction::Say(text) => self.turn(&text, Instant::now(), None),
            ConversationAction::Done => self.turn("I'm done.", Instant::now(), None),
            ConversationAction::Hush => {
                if let Some(t) = &self.talk {
                    t.speaker.stop();
                }
            }
            ConversationAction::New { project, dir } => {
                let dir = PathBuf::from(dir);
                if !dir.as_os_str().is_empty() && !dir.is_dir() {
                    let e = format!("{} is not a directory", dir.display());
                    self.update(|s| s.error = Some(e));
                    return;
                }
                if let Ok(c) = &mut self.init.talk {
                    if !project.is_empty() {
                        c.project = project;
                    }
                    if !dir.as_os_str().is_empty() && dir != c.project_dir {
                        c.project_dir = dir;
                        // The Specs view follows the conversation's project.
                        self.specs = None;
                        self.watcher = None;
                        self.showing = None;
                    }
                    c.continue_spec = None;
                }
                self.talk = None;
                self.describe();
                self.update(|s| {
                    s.turns.clear();
                    s.reply.clear();
                    s.continuing = None;
                    s.spec = None;
                });
            }
            ConversationAction::SetRole(role) => {
                if let Ok(c) = &mut self.init.talk {
                    c.role.clone_from(&role);
                }
                self.talk = None;
                self.update(|s| s.role = role);
            }
            ConversationAction::OpenSpec(id) => {
                self.update(|s| s.go_to = Some((candybar_ui::View::Specs, Some(id))));
            }
            ConversationAction::Search(q) => self.past(&q),
            ConversationAction::Copy(id) => {
                let Ok(c) = &self.init.talk else { return };
                let found = candybar_specs::conversation::Conversations::open(&c.conversations)
                    .and_then(|db| db.get(&id));
                match found {
                    Ok((summary, turns)) => {
                        let md = candybar_specs::conversation::markdown(&summary, &turns);
                        self.update(|s| s.copy = Some(md));
                    }
                    Err(e) => self.say(ToastLevel::Error, e.to_string()),
                }
            }
        }
    }

    fn past(&self, query: &str) {
        let Ok(c) = &self.init.talk else { return };
        let found = candybar_specs::conversation::Conversations::open(&c.conversations)
            .and_then(|db| db.list(query, 50));
        match found {
            Ok(list) => self.update(|s| {
                s.past = list
                    .into_iter()
                    .map(|c| (c.id, c.title, c.spec_id))
                    .collect();
            }),
            Err(e) => self.say(ToastLevel::Error, e.to_string()),
        }
    }

    fn heard(&mut self, h: HandOff) {
        match h {
            HandOff::Started => self.update(|s| {
                s.state = "listening".into();
                s.hearing = "…".into();
            }),
            HandOff::Heard {
                text,
                final_after_ms,
            } => {
                let end = Instant::now()
                    .checked_sub(Duration::from_millis(final_after_ms))
                    .unwrap_or_else(Instant::now);
                self.turn(&text, end, Some(final_after_ms));
            }
            HandOff::Failed(e) => self.update(|s| {
                s.hearing.clear();
                s.state = "ready".into();
                s.error = Some(e);
            }),
        }
    }

    fn turn(&mut self, text: &str, speech_end: Instant, asr_ms: Option<u64>) {
        let rt = self.init.rt.clone();
        let shared = self.shared;
        let wake = self.wake;
        self.update(|s| {
            s.hearing.clear();
            s.reply.clear();
            s.error = None;
            s.state = "thinking".into();
        });
        let Some(talk) = self.talk() else { return };
        let outcome = rt.block_on(talk.turn(text, speech_end, asr_ms, &mut |e| {
            let mut s = shared.lock();
            match e {
                TalkEvent::Heard(t) => s.turns.push(TurnRow {
                    mine: true,
                    text: t,
                    ..TurnRow::default()
                }),
                TalkEvent::Piece(p) => {
                    s.reply.push_str(&p);
                    s.state = "answering".into();
                }
                TalkEvent::Replied(turn) => {
                    s.reply.clear();
                    s.turns.push(turn_row(&turn));
                }
                TalkEvent::Spec(meta) => s.spec = Some(meta.id.clone()),
                TalkEvent::Error(e) => {
                    s.reply.clear();
                    s.turns.push(TurnRow {
                        mine: false,
                        text: String::new(),
                        timing: e.clone(),
                        failed: true,
                    });
                    s.error = Some(e);
                }
            }
            s.generation += 1;
            drop(s);
            wake();
        }));
        let event = match &outcome {
            Outcome::Spec(meta) => Some(talk.spec_event(meta)),
            _ => None,
        };
        // A voice that cannot speak (no espeak-ng, no sound output) is said where the person
        // looks, not only in the log.
        let voice = talk.speaker.status();
        self.speaking = voice.speaking;
        let voice = voice.error;
        let state = if self.speaking { "speaking" } else { "ready" };
        self.update(|s| {
            s.state = state.into();
            if let Some(e) = voice {
                s.error = Some(e);
            }
        });
        if let Outcome::Spec(meta) = outcome {
            let words = format!("spec {} v{} written", meta.id, meta.latest());
            self.say(ToastLevel::Info, words);
            if let Some(e) = event {
                self.announce(&[e]);
            }
            self.list_specs();
        }
    }

    fn store(&mut self) -> Option<&SpecStore> {
        if self.specs.is_none() {
            let dir = self.project_dir()?;
            let store = SpecStore::new(&dir);
            // Watch for edits made on disk (another editor, git, a script).
            let _ = std::fs::create_dir_all(store.root());
            let tx = self.tx.clone();
            let watcher = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
                if e.is_ok() {
                    let _ = tx.try_send(Msg::Changed);
                }
            });
            match watcher {
                Ok(mut w) => match w.watch(store.root(), notify::RecursiveMode::Recursive) {
                    Ok(()) => self.watcher = Some(w),
                    Err(e) => tracing::warn!("specs are not watched for edits: {e}"),
                },
                Err(e) => tracing::warn!("specs are not watched for edits: {e}"),
            }
            self.specs = Some(store);
        }
        self.specs.as_ref()
    }

    fn list_specs(&mut self) {
        let Some(store) = self.store().cloned() else {
            return;
        };
        let listing = match store.list() {
            Ok(l) => l,
            Err(e) => {
                self.update(|s| s.problems = vec![e.to_string()]);
                return;
            }
        };
        let mut rows: Vec<SpecRow> = listing.specs.iter().map(spec_row).collect();
        rows.sort_by(|a, b| a.project.cmp(&b.project).then(b.created.cmp(&a.created)));
        let text = self.showing.clone().and_then(|(id, version, diff)| {
            let meta = listing.specs.iter().find(|m| m.id == id)?;
            Some(read_text(&store, meta, version, diff))
        });
        self.update(|s| {
            s.rows = rows;
            s.problems = listing.problems;
            s.text = text;
        });
    }

    fn spec(&mut self, action: SpecAction) {
        match action {
            SpecAction::Open => self.list_specs(),
            SpecAction::Show { id, version } => {
                self.showing = Some((id, version, None));
                self.list_specs();
            }
            SpecAction::Diff { id, from, to } => {
                self.showing = Some((id, Some(to), Some((from, to))));
                self.list_specs();
            }
            SpecAction::Approve { id, version } => self.change(&id, |st, id| {
                let meta = st.approve(id, Some(version))?;
                let e = candybar_specs::events::approved(&candybar_bus::host_name(), st, &meta);
                Ok((meta, e, format!("approved v{version}")))
            }),
            SpecAction::Reject(id) => self.change(&id, |st, id| {
                let meta = st.reject(id)?;
                let e = candybar_specs::events::rejected(&candybar_bus::host_name(), st, &meta);
                Ok((meta, e, "rejected".to_owned()))
            }),
            SpecAction::Continue(id) => {
                if let Ok(c) = &mut self.init.talk {
                    c.continue_spec = Some(id.clone());
                }
                self.talk = None;
                self.update(|s| {
                    s.turns.clear();
                    s.continuing = Some(id.clone());
                    s.spec = None;
                    s.go_to = Some((candybar_ui::View::Conversation, None));
                });
            }
            SpecAction::File(id) => self.file(&id),
            SpecAction::OpenUrl(url) => open_url(&url),
        }
    }

    fn change(
        &mut self,
        id: &str,
        f: impl FnOnce(&SpecStore, &str) -> Result<(Meta, Outgoing, String), candybar_specs::SpecError>,
    ) {
        let Some(store) = self.store().cloned() else {
            return;
        };
        match f(&store, id) {
            Ok((meta, event, words)) => {
                self.announce(&[event]);
                self.update(|s| s.message = Some((format!("{}: {words}", meta.id), false)));
            }
            Err(e) => self.update(|s| s.message = Some((e.to_string(), true))),
        }
        self.list_specs();
    }

    fn file(&mut self, id: &str) {
        let Some(store) = self.store().cloned() else {
            return;
        };
        let Some(repo) = self.init.repo.clone() else {
            self.update(|s| {
                s.message = Some(("set [github] repo (owner/name) to file specs".into(), true));
            });
            return;
        };
        self.update(|s| s.busy = Some(format!("filing on GitHub ({repo})…")));
        let result = (|| -> Result<(Meta, String), String> {
            let meta = store.get(id).map_err(|e| e.to_string())?;
            let version = meta.approved_version.unwrap_or_else(|| meta.latest());
            let (_, text) = store
                .read(&meta, Some(version))
                .map_err(|e| e.to_string())?;
            let issue = github::issue_for(&repo, &meta, version, &text).map_err(|e| {
                let _ = store.filing_failed(&meta, &e.to_string());
                e.to_string()
            })?;
            let token = (self.init.github_token)()
                .ok_or_else(|| github::GitHubError::NoToken.to_string())
                .inspect_err(|e| {
                    let _ = store.filing_failed(&meta, e);
                })?;
            let gh = GitHub::new(&self.init.github_api, token).map_err(|e| e.to_string())?;
            let created = self.init.rt.block_on(gh.file(&issue)).map_err(|e| {
                let _ = store.filing_failed(&meta, &e.to_string());
                e.to_string()
            })?;
            let filed = FiledIssue {
                url: created.url.clone(),
                number: created.number,
                repo: repo.clone(),
                version,
                filed: candybar_core::time::format_rfc3339(candybar_core::time::now_us()),
            };
            let meta = store.filed(&meta, filed).map_err(|e| e.to_string())?;
            Ok((meta, created.url))
        })();
        match result {
            Ok((meta, url)) => {
                if let Some(e) =
                    candybar_specs::events::issue_created(&candybar_bus::host_name(), &store, &meta)
                {
                    self.announce(&[e]);
                }
                self.update(|s| {
                    s.busy = None;
                    s.message = Some((format!("filed as {url}"), false));
                });
            }
            Err(e) => self.update(|s| {
                s.busy = None;
                s.message = Some((format!("not filed: {e}"), true));
            }),
        }
        self.list_specs();
    }

    /// Queues the events in the sessions' outbox and sends what the broker takes.
    fn announce(&self, events: &[Outgoing]) {
        let broker = self
            .init
            .broker
            .as_ref()
            .map(|(url, exchange)| (url.expose(), exchange.as_str()));
        let outbox = &self.init.outbox;
        let kept = self.init.rt.block_on(keep_and_send(outbox, events, broker));
        // Events the broker did not take wait in the outbox for the next delivery.
        if let Err(e) = kept {
            self.say(
                ToastLevel::Error,
                format!("the spec's events are not kept: {e}"),
            );
        }
    }
}

fn spec_row(m: &Meta) -> SpecRow {
    SpecRow {
        id: m.id.clone(),
        title: m.title.clone(),
        project: m.project.clone(),
        status: m.status.as_str().to_owned(),
        versions: m.latest(),
        approved_version: m.approved_version,
        created: m.created.clone(),
        issue_url: m.issue.as_ref().map(|i| i.url.clone()),
        last_error: m.last_error.clone(),
    }
}

fn read_text(
    store: &SpecStore,
    meta: &Meta,
    version: Option<u32>,
    diff: Option<(u32, u32)>,
) -> SpecText {
    let read = |n: Option<u32>| {
        store
            .read(meta, n)
            .unwrap_or_else(|e| (n.unwrap_or(0), format!("*{e}*")))
    };
    let (n, markdown) = read(version);
    let diff = diff.map(|(from, to)| {
        let (_, old) = read(Some(from));
        let (_, new) = read(Some(to));
        (from, to, candybar_specs::store::diff_lines(&old, &new))
    });
    SpecText {
        id: meta.id.clone(),
        version: n,
        markdown,
        diff,
    }
}
