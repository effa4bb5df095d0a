//! Conversations with the architect: what was said, by whom, and how long each answer took —
//! kept in SQLite (searchable by their words, exportable as Markdown or JSON) so a spec can
//! always be traced to the talk it came from.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use candybar_core::time::{Micros, format_rfc3339, now_us};
use rusqlite::{Connection, OptionalExtension as _, params};
use rusqlite_migration::{M, Migrations};
use serde::Serialize;

use crate::chat::{Message, Role};

/// Never edit a migration that has shipped: add a new one.
static MIGRATIONS: LazyLock<Migrations<'static>> = LazyLock::new(|| {
    Migrations::new(vec![M::up(
        "CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            project TEXT NOT NULL,
            project_dir TEXT NOT NULL,
            started_us INTEGER NOT NULL,
            title TEXT NOT NULL DEFAULT '',
            spec_id TEXT
        );
        CREATE TABLE turns (
            id INTEGER PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            text TEXT NOT NULL,
            at_us INTEGER NOT NULL,
            asr_ms INTEGER,
            first_token_ms INTEGER,
            first_audio_ms INTEGER,
            total_ms INTEGER,
            error TEXT
        );
        CREATE INDEX turns_conversation ON turns(conversation_id, id);
        CREATE VIRTUAL TABLE turns_fts USING fts5(
            text, content='turns', content_rowid='id', tokenize='unicode61', prefix='2 3'
        );
        CREATE TRIGGER turns_ai AFTER INSERT ON turns BEGIN
            INSERT INTO turns_fts(rowid, text) VALUES (new.id, new.text);
        END;
        CREATE TRIGGER turns_ad AFTER DELETE ON turns BEGIN
            INSERT INTO turns_fts(turns_fts, rowid, text) VALUES ('delete', old.id, old.text);
        END;",
    )])
});

#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    #[error("conversations at {path}: {reason}")]
    Sqlite {
        path: PathBuf,
        #[source]
        reason: rusqlite::Error,
    },
    #[error("conversations at {path} cannot be brought up to date: {reason}")]
    Migrate {
        path: PathBuf,
        #[source]
        reason: rusqlite_migration::Error,
    },
    #[error("cannot make the folder {path}: {reason}")]
    Folder {
        path: PathBuf,
        #[source]
        reason: std::io::Error,
    },
    #[error("no conversation {0:?}")]
    NotFound(String),
}

/// A conversation's heading.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub id: String,
    pub project: String,
    pub project_dir: String,
    pub started: String,
    pub title: String,
    pub spec_id: Option<String>,
    pub turns: u64,
}

/// One thing said, with its timings (milliseconds; what applies).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Turn {
    pub role: Role,
    pub text: String,
    pub at: String,
    /// From the end of the person's speech to its text (the ASR's final).
    pub asr_ms: Option<u64>,
    /// From the end of the person's speech to the reply's first piece.
    pub first_token_ms: Option<u64>,
    /// From the end of the person's speech to the reply's first sound.
    pub first_audio_ms: Option<u64>,
    /// The whole reply.
    pub total_ms: Option<u64>,
    /// What went wrong with this turn (the architect down, …).
    pub error: Option<String>,
}

impl Turn {
    pub fn new(role: Role, text: &str) -> Self {
        Self {
            role,
            text: text.to_owned(),
            at: format_rfc3339(now_us()),
            asr_ms: None,
            first_token_ms: None,
            first_audio_ms: None,
            total_ms: None,
            error: None,
        }
    }
}

pub struct Conversations {
    conn: Connection,
    path: PathBuf,
}

fn role_str(r: Role) -> &'static str {
    match r {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

fn role_of(s: &str) -> Role {
    match s {
        "system" => Role::System,
        "assistant" => Role::Assistant,
        _ => Role::User,
    }
}

/// A `conversations` row with its turn count (the columns `SUMMARY_COLUMNS` names).
fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Summary> {
    Ok(Summary {
        id: r.get(0)?,
        project: r.get(1)?,
        project_dir: r.get(2)?,
        started: format_rfc3339(r.get::<_, Micros>(3)?),
        title: r.get(4)?,
        spec_id: r.get(5)?,
        turns: r.get::<_, i64>(6)?.max(0) as u64,
    })
}

const SUMMARY_COLUMNS: &str = "c.id, c.project, c.project_dir, c.started_us, c.title, c.spec_id,
    (SELECT COUNT(*) FROM turns t WHERE t.conversation_id = c.id)";

impl Conversations {
    pub fn open(path: &Path) -> Result<Self, ConversationError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|reason| ConversationError::Folder {
                path: dir.to_owned(),
                reason,
            })?;
        }
        let sql = |reason| ConversationError::Sqlite {
            path: path.to_owned(),
            reason,
        };
        let mut conn = Connection::open(path).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql)?;
        MIGRATIONS
            .to_latest(&mut conn)
            .map_err(|reason| ConversationError::Migrate {
                path: path.to_owned(),
                reason,
            })?;
        Ok(Self {
            conn,
            path: path.to_owned(),
        })
    }

    fn err(&self, reason: rusqlite::Error) -> ConversationError {
        ConversationError::Sqlite {
            path: self.path.clone(),
            reason,
        }
    }

    /// A new conversation about `project`; its id.
    pub fn start(&self, project: &str, project_dir: &Path) -> Result<String, ConversationError> {
        let id = format!("c-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        self.conn
            .execute(
                "INSERT INTO conversations (id, project, project_dir, started_us) VALUES (?1, ?2, ?3, ?4)",
                params![id, project, project_dir.to_string_lossy(), now_us()],
            )
            .map_err(|e| self.err(e))?;
        Ok(id)
    }

    pub fn add(&self, conversation: &str, turn: &Turn) -> Result<(), ConversationError> {
        let ms = |v: Option<u64>| v.map(|v| v.min(i64::MAX as u64) as i64);
        self.conn
            .execute(
                "INSERT INTO turns (conversation_id, role, text, at_us, asr_ms, first_token_ms, first_audio_ms, total_ms, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    conversation,
                    role_str(turn.role),
                    turn.text,
                    candybar_core::time::parse_rfc3339_us(&turn.at).unwrap_or_else(now_us),
                    ms(turn.asr_ms),
                    ms(turn.first_token_ms),
                    ms(turn.first_audio_ms),
                    ms(turn.total_ms),
                    turn.error,
                ],
            )
            .map_err(|e| self.err(e))?;
        // The first thing the person said names the conversation.
        if turn.role == Role::User {
            let title: String = turn.text.chars().take(80).collect();
            self.conn
                .execute(
                    "UPDATE conversations SET title = ?2 WHERE id = ?1 AND title = ''",
                    params![conversation, title],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// The spec the conversation produced.
    pub fn set_spec(&self, conversation: &str, spec_id: &str) -> Result<(), ConversationError> {
        self.conn
            .execute(
                "UPDATE conversations SET spec_id = ?2 WHERE id = ?1",
                params![conversation, spec_id],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Conversations, newest first; with `query`, those with a turn matching its words.
    pub fn list(&self, query: &str, limit: usize) -> Result<Vec<Summary>, ConversationError> {
        let fts = candybar_core::text::fts_query(query);
        let sql = if fts.is_some() {
            format!(
                "SELECT {SUMMARY_COLUMNS} FROM conversations c
                 WHERE c.id IN (SELECT t.conversation_id FROM turns_fts f JOIN turns t ON t.id = f.rowid
                                WHERE turns_fts MATCH ?1)
                 ORDER BY c.started_us DESC LIMIT ?2"
            )
        } else {
            format!(
                "SELECT {SUMMARY_COLUMNS} FROM conversations c WHERE ?1 = ''
                 ORDER BY c.started_us DESC LIMIT ?2"
            )
        };
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![fts.unwrap_or_default(), limit as i64], summary_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// One conversation and what was said in it, in order.
    pub fn get(&self, id: &str) -> Result<(Summary, Vec<Turn>), ConversationError> {
        let summary = self
            .conn
            .query_row(
                &format!("SELECT {SUMMARY_COLUMNS} FROM conversations c WHERE c.id = ?1"),
                [id],
                summary_row,
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or_else(|| ConversationError::NotFound(id.to_owned()))?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT role, text, at_us, asr_ms, first_token_ms, first_audio_ms, total_ms, error
                 FROM turns WHERE conversation_id = ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let ms = |v: Option<i64>| v.map(|v| v.max(0) as u64);
        let turns = stmt
            .query_map([id], |r| {
                Ok(Turn {
                    role: role_of(&r.get::<_, String>(0)?),
                    text: r.get(1)?,
                    at: format_rfc3339(r.get(2)?),
                    asr_ms: ms(r.get(3)?),
                    first_token_ms: ms(r.get(4)?),
                    first_audio_ms: ms(r.get(5)?),
                    total_ms: ms(r.get(6)?),
                    error: r.get(7)?,
                })
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok((summary, turns))
    }
}

/// The chat messages a conversation's turns make (errors left out).
pub fn messages(turns: &[Turn]) -> Vec<Message> {
    turns
        .iter()
        .filter(|t| t.error.is_none() && !t.text.trim().is_empty())
        .map(|t| Message::new(t.role, t.text.clone()))
        .collect()
}

/// A conversation as Markdown, for reading and sharing.
pub fn markdown(summary: &Summary, turns: &[Turn]) -> String {
    let mut out = format!(
        "# {}\n\n{} · project `{}`{}\n",
        if summary.title.is_empty() {
            "Conversation"
        } else {
            &summary.title
        },
        summary.started,
        summary.project,
        summary
            .spec_id
            .as_ref()
            .map_or(String::new(), |s| format!(" · spec `{s}`"))
    );
    for t in turns.iter().filter(|t| t.role != Role::System) {
        let who = if t.role == Role::User {
            "You"
        } else {
            "Architect"
        };
        let _ = write!(out, "\n**{who}** ({}):", t.at);
        if let Some(ms) = t.first_token_ms {
            let _ = write!(out, " _first words after {ms} ms_");
        }
        let _ = write!(out, "\n\n{}\n", t.text.trim());
        if let Some(e) = &t.error {
            let _ = write!(out, "\n> ⚠ {e}\n");
        }
    }
    out
}

/// Whether the person said they are done ("I'm done", "that's all", "write the spec").
pub fn says_done(text: &str) -> bool {
    let words: String = text
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let words = words.replace('\u{2019}', "'");
    let words: Vec<&str> = words.split_whitespace().collect();
    let text = format!(" {} ", words.join(" "));
    [
        " i'm done ",
        " im done ",
        " i am done ",
        " that's all ",
        " thats all ",
        " write the spec ",
        " draft the spec ",
    ]
    .iter()
    .any(|p| text.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_is_heard_in_its_usual_forms() {
        for yes in [
            "I'm done.",
            "OK, I am done",
            "im done",
            "That's all, thanks!",
            "Please write the spec now",
        ] {
            assert!(says_done(yes), "{yes}");
        }
        for no in ["I'm not done yet", "It is done when it saves", "abandoned"] {
            assert!(!says_done(no), "{no}");
        }
    }

    #[test]
    fn conversations_are_kept_searched_and_exported() {
        let dir = tempfile::tempdir().unwrap();
        let db = Conversations::open(&dir.path().join("c.sqlite3")).unwrap();
        let id = db.start("candybar", dir.path()).unwrap();
        let mut t = Turn::new(Role::User, "I want voice notes with search");
        t.asr_ms = Some(300);
        db.add(&id, &t).unwrap();
        let mut r = Turn::new(Role::Assistant, "Who will search them?");
        r.first_token_ms = Some(900);
        db.add(&id, &r).unwrap();
        let other = db.start("candybar", dir.path()).unwrap();
        db.add(&other, &Turn::new(Role::User, "A dashboard for queues"))
            .unwrap();
        db.set_spec(&id, "voice-notes-abc123").unwrap();

        let found = db.list("voice", 10).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].title, "I want voice notes with search");
        assert_eq!(found[0].turns, 2);
        assert_eq!(db.list("", 10).unwrap().len(), 2);
        let (summary, turns) = db.get(&id).unwrap();
        assert_eq!(turns[1].first_token_ms, Some(900));
        assert_eq!(messages(&turns).len(), 2);
        let md = markdown(&summary, &turns);
        assert!(
            md.contains("spec `voice-notes-abc123`") && md.contains("**Architect**"),
            "{md}"
        );
        assert!(matches!(
            db.get("c-nothing"),
            Err(ConversationError::NotFound(_))
        ));
    }
}
