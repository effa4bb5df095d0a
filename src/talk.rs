//! A conversation with the architect, shared by `candybar talk` and the window's Conversation
//! view: the person's words (from the ASR, or typed) → the architect's reply, streamed and said
//! aloud sentence by sentence as it is written → … → "I'm done" → the spec's first version (or,
//! continuing a spec, its next one), kept on disk and said on the bus.
//!
//! Each turn is timed from the end of the person's speech: to its text (the ASR's final), to the
//! reply's first piece, and to the reply's first sound at the output.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candybar_specs::chat::{self, ChatConfig, ChatError, Message, Role};
use candybar_specs::conversation::{self, Conversations, Turn};
use candybar_specs::store::{Meta, SpecStore};
use candybar_specs::{events, prompt};
use candybar_voice::speech::{Speaker, SpeechEngine, complete_sentences};

/// How a conversation is held.
#[derive(Clone, Debug)]
pub struct TalkConfig {
    pub chat: ChatConfig,
    /// The architect's role.
    pub role: String,
    pub project: String,
    pub project_dir: PathBuf,
    pub speech: SpeechEngine,
    /// Where conversations are kept.
    pub conversations: PathBuf,
    /// A spec to continue: the conversation changes it into its next version.
    pub continue_spec: Option<String>,
    /// The most tokens a spoken reply and a spec may run to.
    pub reply_tokens: u32,
    pub spec_tokens: u32,
}

/// What a conversation reports as it goes.
#[derive(Clone, Debug, PartialEq)]
pub enum TalkEvent {
    /// The person's words, as the architect gets them.
    Heard(String),
    /// A piece of the architect's reply.
    Piece(String),
    /// A whole reply, with its turn's timings.
    Replied(Turn),
    /// The spec was written (its new version).
    Spec(Meta),
    Error(String),
}

/// What a turn led to.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The architect answered; the conversation goes on.
    Answered,
    /// The person was done: the spec was written.
    Spec(Box<Meta>),
    /// The architect could not be reached or answered badly (said in a [`TalkEvent::Error`]);
    /// the person's words are kept and the next turn tries again.
    Failed,
}

/// One conversation.
pub struct Talk {
    cfg: TalkConfig,
    http: reqwest::Client,
    pub speaker: Speaker,
    db: Conversations,
    pub id: String,
    system: Message,
    turns: Vec<Turn>,
    specs: SpecStore,
}

/// The most a spoken reply may run to, in tokens (unless the config says otherwise).
pub const REPLY_TOKENS: u32 = 300;
/// The most a spec may run to, in tokens.
pub const SPEC_TOKENS: u32 = 2_000;
/// How long a spec may take to write: it streams onto the screen as it comes, a stalled server
/// is caught by the idle timeout, and a slow local model on a CPU needs minutes for a long one.
const SPEC_TOTAL_TIMEOUT: Duration = Duration::from_mins(20);

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

impl Talk {
    pub fn start(cfg: TalkConfig) -> anyhow::Result<Self> {
        candybar_specs::store::check_project(&cfg.project)?;
        let db = Conversations::open(&cfg.conversations)?;
        let id = db.start(&cfg.project, &cfg.project_dir)?;
        let context = prompt::project_context(&cfg.project_dir);
        let system = prompt::system(&cfg.role, &cfg.project, context.as_ref());
        let specs = SpecStore::new(&cfg.project_dir);
        let mut turns = Vec::new();
        // Continuing a spec: the architect starts from its newest version.
        if let Some(spec) = &cfg.continue_spec {
            let meta = specs.get(spec)?;
            let (n, text) = specs.read(&meta, None)?;
            let seed = Turn::new(
                Role::User,
                &format!(
                    "{}(v{n} of spec {})\n\n{text}",
                    prompt::CONTINUE_PREFIX,
                    meta.id
                ),
            );
            db.add(&id, &seed)?;
            turns.push(seed);
        }
        let speaker = Speaker::start(cfg.speech.clone());
        Ok(Self {
            http: reqwest::Client::new(),
            speaker,
            db,
            id,
            system,
            turns,
            specs,
            cfg,
        })
    }

    pub fn turns(&self) -> &[Turn] {
        &self.turns
    }

    fn messages(&self, extra: Option<&str>) -> Vec<Message> {
        let mut m = vec![self.system.clone()];
        m.extend(conversation::messages(&self.turns));
        if let Some(e) = extra {
            m.push(Message::new(Role::User, e));
        }
        m
    }

    /// The person said `text`; their speech ended at `speech_end` (`asr_ms` after which its
    /// text came).
    pub async fn turn(
        &mut self,
        text: &str,
        speech_end: Instant,
        asr_ms: Option<u64>,
        on: &mut impl FnMut(TalkEvent),
    ) -> Outcome {
        // Whatever is still being said stops: the person talked (barge-in).
        self.speaker.stop();
        self.speaker.new_turn();
        let text = text.trim();
        on(TalkEvent::Heard(text.to_owned()));
        let done = conversation::says_done(text);
        let mut heard = Turn::new(Role::User, text);
        heard.asr_ms = asr_ms;
        self.keep(&heard);
        self.turns.push(heard);
        if done {
            return self.draft(speech_end, on).await;
        }
        let messages = self.messages(None);
        let mut first: Option<Instant> = None;
        let mut unsaid = String::new();
        let speaker = &self.speaker;
        // A spoken answer is short; a small local model left alone can ramble for minutes.
        let mut chat_cfg = self.cfg.chat.clone();
        chat_cfg.max_tokens = Some(self.cfg.reply_tokens);
        let result = chat::complete(&self.http, &chat_cfg, &messages, |piece| {
            first.get_or_insert_with(Instant::now);
            on(TalkEvent::Piece(piece.to_owned()));
            unsaid.push_str(piece);
            let (sentences, rest) = complete_sentences(&unsaid);
            for s in &sentences {
                speaker.say(s);
            }
            let said = unsaid.len() - rest.len();
            unsaid.drain(..said);
        })
        .await;
        self.speaker.say(&unsaid);
        self.finish_reply(result, speech_end, first, on).await
    }

    async fn finish_reply(
        &mut self,
        result: Result<chat::Reply, ChatError>,
        speech_end: Instant,
        first: Option<Instant>,
        on: &mut impl FnMut(TalkEvent),
    ) -> Outcome {
        match result {
            Ok(reply) => {
                let mut turn = Turn::new(Role::Assistant, reply.text.trim());
                turn.first_token_ms = first.map(|t| ms(t.saturating_duration_since(speech_end)));
                turn.total_ms = Some(ms(speech_end.elapsed()));
                // The first sound comes after the first sentence is synthesized: wait for it
                // (a few seconds at most) so the turn's figure is whole.
                turn.first_audio_ms = self.first_audio(speech_end).await;
                self.keep(&turn);
                self.turns.push(turn.clone());
                on(TalkEvent::Replied(turn));
                Outcome::Answered
            }
            Err(e) => {
                let mut turn = Turn::new(Role::Assistant, "");
                turn.error = Some(e.to_string());
                self.keep(&turn);
                on(TalkEvent::Error(e.to_string()));
                Outcome::Failed
            }
        }
    }

    async fn first_audio(&self, speech_end: Instant) -> Option<u64> {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let status = self.speaker.status();
            if let Some(t) = status.first_audio {
                return Some(ms(t.saturating_duration_since(speech_end)));
            }
            if (!status.speaking && status.error.is_some()) || Instant::now() > end {
                return None;
            }
            if !status.speaking && matches!(self.cfg.speech, SpeechEngine::Off) {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// "I'm done": the architect writes the spec; it is kept as the spec's next version.
    async fn draft(&mut self, speech_end: Instant, on: &mut impl FnMut(TalkEvent)) -> Outcome {
        let messages = self.messages(Some(prompt::DRAFT_REQUEST));
        let mut first: Option<Instant> = None;
        let mut chat_cfg = self.cfg.chat.clone();
        chat_cfg.max_tokens = Some(self.cfg.spec_tokens);
        chat_cfg.total_timeout = chat_cfg.total_timeout.max(SPEC_TOTAL_TIMEOUT);
        let result = chat::complete(&self.http, &chat_cfg, &messages, |piece| {
            first.get_or_insert_with(Instant::now);
            on(TalkEvent::Piece(piece.to_owned()));
        })
        .await;
        let reply = match result {
            Ok(r) => r,
            Err(e) => return self.finish_reply(Err(e), speech_end, first, on).await,
        };
        let spec = prompt::spec_from_reply(&reply.text);
        let written = match &self.cfg.continue_spec {
            Some(id) => self.specs.add_version(id, &spec, "continue"),
            None => self
                .specs
                .create(&self.cfg.project, &spec, "conversation", Some(&self.id)),
        };
        let mut turn = Turn::new(Role::Assistant, &spec);
        turn.first_token_ms = first.map(|t| ms(t.saturating_duration_since(speech_end)));
        turn.total_ms = Some(ms(speech_end.elapsed()));
        match written {
            Ok(meta) => {
                self.keep(&turn);
                self.turns.push(turn.clone());
                if let Err(e) = self.db.set_spec(&self.id, &meta.id) {
                    on(TalkEvent::Error(e.to_string()));
                }
                self.speaker.say(&format!(
                    "The spec {} is written, version {}.",
                    meta.title,
                    meta.latest()
                ));
                on(TalkEvent::Replied(turn));
                on(TalkEvent::Spec(meta.clone()));
                Outcome::Spec(Box::new(meta))
            }
            Err(e) => {
                turn.error = Some(format!("the spec was not kept: {e}"));
                self.keep(&turn);
                on(TalkEvent::Error(format!("the spec was not kept: {e}")));
                Outcome::Failed
            }
        }
    }

    fn keep(&self, turn: &Turn) {
        if let Err(e) = self.db.add(&self.id, turn) {
            tracing::warn!("a turn was not kept: {e}");
        }
    }

    /// The `sentra.spec.*` event for a spec this conversation wrote.
    pub fn spec_event(&self, meta: &Meta) -> candybar_sessions::store::Outgoing {
        events::versioned(&candybar_bus::host_name(), &self.specs, meta)
    }

    pub fn project_dir(&self) -> &Path {
        &self.cfg.project_dir
    }
}

/// Where conversations are kept: `conversations.sqlite3` in the data dir.
pub fn default_conversations_path() -> PathBuf {
    directories::ProjectDirs::from("", "", "candybar").map_or_else(
        || PathBuf::from("conversations.sqlite3"),
        |d| d.data_dir().join("conversations.sqlite3"),
    )
}
