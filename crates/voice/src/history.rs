//! Dictation history: every final transcript in SQLite (WAL), searchable with FTS5, and the
//! deliveries of each one — which doubles as the outbox for webhook and bus deliveries that
//! failed and wait to be retried.
//!
//! A transcript is written here before any output is tried, so nothing said is lost when the
//! clipboard, the webhook or the broker fails.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use candybar_core::time::Micros;
use candybar_core::voice::{Delivery, Output, TimedText, Transcript};
use rusqlite::{Connection, OptionalExtension as _, params};
use rusqlite_migration::{M, Migrations};

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot create the history folder {path}: {reason}")]
    Folder {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("history database {path}: {reason}")]
    Sqlite {
        path: PathBuf,
        reason: rusqlite::Error,
    },
    #[error("history database {path}: cannot bring its schema up to date: {reason}")]
    Migrate {
        path: PathBuf,
        reason: rusqlite_migration::Error,
    },
    #[error("no transcript with id {0} in the history")]
    NotFound(i64),
}

/// Schema changes in order; a database is brought up to the last one when opened. Never edit a
/// migration that has shipped: add a new one.
static MIGRATIONS: LazyLock<Migrations<'static>> = LazyLock::new(|| {
    Migrations::new(vec![
        M::up(
            "CREATE TABLE transcripts (
            id INTEGER PRIMARY KEY,
            created_us INTEGER NOT NULL,
            duration_ms INTEGER NOT NULL,
            text TEXT NOT NULL,
            server TEXT NOT NULL,
            model TEXT NOT NULL,
            protocol TEXT NOT NULL,
            confidence REAL
        );
        CREATE INDEX transcripts_created ON transcripts(created_us);
        CREATE VIRTUAL TABLE transcripts_fts USING fts5(
            text, content='transcripts', content_rowid='id', tokenize='unicode61', prefix='2 3'
        );
        CREATE TRIGGER transcripts_ai AFTER INSERT ON transcripts BEGIN
            INSERT INTO transcripts_fts(rowid, text) VALUES (new.id, new.text);
        END;
        CREATE TRIGGER transcripts_ad AFTER DELETE ON transcripts BEGIN
            INSERT INTO transcripts_fts(transcripts_fts, rowid, text) VALUES ('delete', old.id, old.text);
        END;
        CREATE TRIGGER transcripts_au AFTER UPDATE OF text ON transcripts BEGIN
            INSERT INTO transcripts_fts(transcripts_fts, rowid, text) VALUES ('delete', old.id, old.text);
            INSERT INTO transcripts_fts(rowid, text) VALUES (new.id, new.text);
        END;
        CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY,
            transcript_id INTEGER NOT NULL REFERENCES transcripts(id) ON DELETE CASCADE,
            output TEXT NOT NULL,
            target TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
            payload BLOB,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_us INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            updated_us INTEGER NOT NULL
        );
        CREATE INDEX deliveries_due ON deliveries(state, next_attempt_us);
        CREATE INDEX deliveries_transcript ON deliveries(transcript_id);",
        ),
        // The spoken language (ISO 639-1) the server detected or was told; NULL for older rows
        // and servers that do not say.
        M::up("ALTER TABLE transcripts ADD COLUMN language TEXT;"),
        // What was recorded (`mic`, `system`, `app:NAME`, `mic+system`; NULL: the microphone,
        // before there was a choice) and the text's times (a JSON array of
        // `{start_ms, end_ms, text}`; NULL: none kept).
        M::up(
            "ALTER TABLE transcripts ADD COLUMN source TEXT;
             ALTER TABLE transcripts ADD COLUMN segments TEXT;",
        ),
    ])
});

/// A transcript about to be kept.
#[derive(Clone, Debug, Default)]
pub struct NewTranscript {
    pub created_us: Micros,
    pub duration_ms: u64,
    pub text: String,
    /// The server's URL, password and token masked.
    pub server: String,
    pub model: String,
    /// `candybar` or `whisperlivekit`.
    pub protocol: String,
    pub confidence: Option<f32>,
    /// ISO 639-1, as the server reported it.
    pub language: Option<String>,
    /// What was recorded: `mic`, `system`, `app:NAME`, `mic+system`.
    pub source: String,
    /// The text with its times, final by final.
    pub segments: Vec<TimedText>,
}

/// A delivery to queue with the transcript: the output, where it goes (a URL without secrets,
/// or `exchange/routing_key`) and the exact bytes to send.
#[derive(Clone, Debug)]
pub struct PlannedDelivery {
    pub output: Output,
    pub target: String,
    pub payload: Vec<u8>,
}

/// A delivery waiting in the outbox.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxItem {
    pub id: i64,
    pub transcript_id: i64,
    pub output: Output,
    pub target: String,
    pub payload: Vec<u8>,
    pub attempts: u32,
}

/// The history database. One per thread: SQLite in WAL mode lets the app's outbox worker and
/// the UI each hold a connection to the same file.
pub struct History {
    conn: Connection,
    path: PathBuf,
}

/// `$CANDYBAR_HISTORY`, else `history.sqlite3` in the platform's data dir
/// (`~/.local/share/candybar/` on Linux).
#[must_use]
pub fn default_path() -> PathBuf {
    if let Some(p) = std::env::var_os("CANDYBAR_HISTORY") {
        return PathBuf::from(p);
    }
    directories::ProjectDirs::from("", "", "candybar").map_or_else(
        || PathBuf::from("candybar-history.sqlite3"),
        |d| d.data_dir().join("history.sqlite3"),
    )
}

/// Backoff before retry number `attempts` (1 s, 2 s, 4 s … capped at 5 min).
#[must_use]
pub fn retry_delay_us(attempts: u32) -> Micros {
    let secs = 1u64 << attempts.saturating_sub(1).min(9);
    (secs.min(300) * 1_000_000) as Micros
}

impl History {
    pub fn open(path: &Path) -> Result<Self, HistoryError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| HistoryError::Folder {
                path: dir.to_owned(),
                reason: source,
            })?;
        }
        let conn = Connection::open(path).map_err(|source| HistoryError::Sqlite {
            path: path.to_owned(),
            reason: source,
        })?;
        Self::setup(conn, path.to_owned())
    }

    pub fn open_in_memory() -> Result<Self, HistoryError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| HistoryError::Sqlite {
            path: path.clone(),
            reason: source,
        })?;
        Self::setup(conn, path)
    }

    fn setup(mut conn: Connection, path: PathBuf) -> Result<Self, HistoryError> {
        let sql = |source| HistoryError::Sqlite {
            path: path.clone(),
            reason: source,
        };
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql)?;
        MIGRATIONS
            .to_latest(&mut conn)
            .map_err(|source| HistoryError::Migrate {
                path: path.clone(),
                reason: source,
            })?;
        Ok(Self { conn, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> HistoryError {
        HistoryError::Sqlite {
            path: self.path.clone(),
            reason: source,
        }
    }

    /// Keeps a transcript and queues its deliveries, in one transaction: either all of it is
    /// on disk or none (and the caller still holds the text to show or retry).
    pub fn add(
        &mut self,
        t: &NewTranscript,
        deliveries: &[PlannedDelivery],
    ) -> Result<i64, HistoryError> {
        let path = self.path.clone();
        let sql = |source| HistoryError::Sqlite {
            path: path.clone(),
            reason: source,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        tx.execute(
            "INSERT INTO transcripts (created_us, duration_ms, text, server, model, protocol, confidence, language, source, segments)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                t.created_us,
                t.duration_ms as i64,
                t.text,
                t.server,
                t.model,
                t.protocol,
                t.confidence.map(f64::from),
                t.language,
                t.source,
                (!t.segments.is_empty())
                    .then(|| serde_json::to_string(&t.segments).unwrap_or_default()),
            ],
        )
        .map_err(sql)?;
        let id = tx.last_insert_rowid();
        for d in deliveries {
            tx.execute(
                "INSERT INTO deliveries (transcript_id, output, target, state, payload, updated_us)
                 VALUES (?1, ?2, ?3, 'pending', ?4, ?5)",
                params![id, d.output.as_str(), d.target, d.payload, t.created_us],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        Ok(id)
    }

    /// Records an output that is not retried (clipboard, typing): delivered or failed.
    pub fn record(
        &self,
        transcript_id: i64,
        output: Output,
        result: Result<(), &str>,
        now_us: Micros,
    ) -> Result<(), HistoryError> {
        let (state, error) = match result {
            Ok(()) => ("delivered", None),
            Err(e) => ("failed", Some(e)),
        };
        self.conn
            .execute(
                "INSERT INTO deliveries (transcript_id, output, state, attempts, last_error, updated_us)
                 VALUES (?1, ?2, ?3, 1, ?4, ?5)",
                params![transcript_id, output.as_str(), state, error, now_us],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<Transcript>, HistoryError> {
        self.query(
            "SELECT id, created_us, duration_ms, text, server, model, protocol, confidence, language, source
             FROM transcripts ORDER BY created_us DESC, id DESC LIMIT ?1",
            &[&(limit as i64)],
        )
    }

    /// Full-text search: every word must match as a word prefix ("deploy" finds "deployment",
    /// "deployed"), so results follow the user's typing. Best match first.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<Transcript>, HistoryError> {
        let Some(fts) = candybar_core::text::fts_query(query) else {
            return self.recent(limit);
        };
        self.query(
            "SELECT t.id, t.created_us, t.duration_ms, t.text, t.server, t.model, t.protocol, t.confidence, t.language, t.source
             FROM transcripts_fts f JOIN transcripts t ON t.id = f.rowid
             WHERE transcripts_fts MATCH ?1 ORDER BY rank, t.created_us DESC LIMIT ?2",
            &[&fts, &(limit as i64)],
        )
    }

    /// One transcript with its segments (lists leave them out: a meeting's can be long).
    pub fn get(&self, id: i64) -> Result<Transcript, HistoryError> {
        let mut t = self
            .query(
                "SELECT id, created_us, duration_ms, text, server, model, protocol, confidence, language, source
                 FROM transcripts WHERE id = ?1",
                &[&id],
            )?
            .pop()
            .ok_or(HistoryError::NotFound(id))?;
        let json: Option<String> = self
            .conn
            .query_row(
                "SELECT segments FROM transcripts WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        // Unreadable segments (a file edited by hand): the text is still there.
        t.segments = json
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default();
        Ok(t)
    }

    /// Deletes a transcript and its deliveries (pending ones are dropped with it).
    pub fn delete(&self, id: i64) -> Result<(), HistoryError> {
        let n = self
            .conn
            .execute("DELETE FROM transcripts WHERE id = ?1", [id])
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(HistoryError::NotFound(id));
        }
        Ok(())
    }

    pub fn count(&self) -> Result<u64, HistoryError> {
        self.conn
            .query_row("SELECT count(*) FROM transcripts", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    fn query(
        &self,
        sql: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<Transcript>, HistoryError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(args, |r| {
                Ok(Transcript {
                    id: r.get(0)?,
                    created_us: r.get(1)?,
                    duration_ms: r.get::<_, i64>(2)?.max(0) as u64,
                    text: r.get(3)?,
                    server: r.get(4)?,
                    model: r.get(5)?,
                    protocol: r.get(6)?,
                    confidence: r.get::<_, Option<f64>>(7)?.map(|c| c as f32),
                    language: r.get(8)?,
                    source: r
                        .get::<_, Option<String>>(9)?
                        .unwrap_or_else(|| "mic".to_owned()),
                    segments: Vec::new(),
                    deliveries: Vec::new(),
                })
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row.map_err(|e| self.err(e))?);
        }
        for t in &mut out {
            t.deliveries = self.deliveries_of(t.id)?;
        }
        Ok(out)
    }

    fn deliveries_of(&self, transcript_id: i64) -> Result<Vec<Delivery>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT output, target, state, attempts, last_error FROM deliveries
                 WHERE transcript_id = ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([transcript_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (output, target, state, attempts, last_error) = row.map_err(|e| self.err(e))?;
            // Rows written by a newer candybar with outputs this one does not know are skipped.
            if let Some(output) = Output::parse(&output) {
                out.push(Delivery {
                    output,
                    target,
                    state,
                    attempts: attempts.max(0) as u32,
                    last_error,
                });
            }
        }
        Ok(out)
    }

    /// Outbox items whose next attempt is due at `now_us`, oldest first.
    pub fn due(&self, now_us: Micros, limit: usize) -> Result<Vec<OutboxItem>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, transcript_id, output, target, payload, attempts FROM deliveries
                 WHERE state = 'pending' AND next_attempt_us <= ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![now_us, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<Vec<u8>>>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, transcript_id, output, target, payload, attempts) =
                row.map_err(|e| self.err(e))?;
            if let Some(output) = Output::parse(&output) {
                out.push(OutboxItem {
                    id,
                    transcript_id,
                    output,
                    target,
                    payload: payload.unwrap_or_default(),
                    attempts: attempts.max(0) as u32,
                });
            }
        }
        Ok(out)
    }

    /// When the next pending delivery is due, if any is waiting.
    pub fn next_due_us(&self) -> Result<Option<Micros>, HistoryError> {
        self.conn
            .query_row(
                "SELECT min(next_attempt_us) FROM deliveries WHERE state = 'pending'",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map_err(|e| self.err(e))
    }

    pub fn pending_count(&self) -> Result<u64, HistoryError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM deliveries WHERE state = 'pending'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    pub fn delivered(&self, item_id: i64, now_us: Micros) -> Result<(), HistoryError> {
        self.conn
            .execute(
                "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1,
                 last_error = NULL, updated_us = ?2 WHERE id = ?1",
                params![item_id, now_us],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A failed attempt: stays pending with the next attempt after a growing delay.
    pub fn failed(
        &self,
        item: &OutboxItem,
        error: &str,
        now_us: Micros,
    ) -> Result<(), HistoryError> {
        let next = now_us + retry_delay_us(item.attempts + 1);
        self.conn
            .execute(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = ?2,
                 next_attempt_us = ?3, updated_us = ?4 WHERE id = ?1",
                params![item.id, error, next, now_us],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Makes every pending delivery due now (the user asked to retry).
    /// Queues deliveries for a kept transcript again (the view's "re-send").
    pub fn queue(
        &mut self,
        transcript_id: i64,
        deliveries: &[PlannedDelivery],
        now_us: Micros,
    ) -> Result<(), HistoryError> {
        self.get(transcript_id)?;
        let path = self.path.clone();
        let sql = |source| HistoryError::Sqlite {
            path: path.clone(),
            reason: source,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        for d in deliveries {
            tx.execute(
                "INSERT INTO deliveries (transcript_id, output, target, state, payload, updated_us)
                 VALUES (?1, ?2, ?3, 'pending', ?4, ?5)",
                params![
                    transcript_id,
                    d.output.as_str(),
                    d.target,
                    d.payload,
                    now_us
                ],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)
    }

    /// The error of the most recently failed attempt among the waiting deliveries.
    pub fn last_error(&self) -> Result<Option<String>, HistoryError> {
        self.conn
            .query_row(
                "SELECT last_error FROM deliveries WHERE state = 'pending' AND last_error IS NOT NULL
                 ORDER BY updated_us DESC LIMIT 1",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn retry_all_now(&self) -> Result<u64, HistoryError> {
        self.conn
            .execute(
                "UPDATE deliveries SET next_attempt_us = 0 WHERE state = 'pending'",
                [],
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// The newest transcript id, to notice rows written by another process.
    pub fn last_id(&self) -> Result<Option<i64>, HistoryError> {
        self.conn
            .query_row("SELECT max(id) FROM transcripts", [], |r| r.get(0))
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.err(e))
    }
}

/// The user's words as an FTS5 query: each word quoted (so `-`, `:`, `"` and FTS keywords are
/// plain text) and a prefix, all required. No stemming: Porter's stems differ between a word
/// and its prefixes ("deploy" → "deploi", "deployment" → "deploy"), which breaks typing ahead.
#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str, at: Micros) -> NewTranscript {
        NewTranscript {
            created_us: at,
            duration_ms: 1500,
            text: text.into(),
            server: "ws://127.0.0.1:8888/asr".into(),
            model: "ggml-tiny.en.bin".into(),
            protocol: "candybar".into(),
            confidence: Some(0.9),
            language: Some("en".into()),
            source: "mic".into(),
            segments: Vec::new(),
        }
    }

    #[test]
    fn a_long_recording_keeps_its_times_and_where_it_came_from() {
        let mut h = History::open_in_memory().unwrap();
        let segments = vec![
            TimedText {
                start_ms: 0,
                end_ms: 2_000,
                text: "Welcome everyone.".into(),
            },
            TimedText {
                start_ms: 3_540_000,
                end_ms: 3_543_000,
                text: "See you next week.".into(),
            },
        ];
        let id = h
            .add(
                &NewTranscript {
                    source: "app:Firefox".into(),
                    segments: segments.clone(),
                    ..t("Welcome everyone. See you next week.", 1)
                },
                &[],
            )
            .unwrap();
        let kept = h.get(id).unwrap();
        assert_eq!(kept.source, "app:Firefox");
        assert_eq!(kept.segments, segments);
        // Lists leave the segments out; search still finds the words.
        assert!(h.recent(5).unwrap()[0].segments.is_empty());
        assert_eq!(h.search("next week", 5).unwrap()[0].id, id);
        // Rows from before sources were kept read as the microphone's.
        h.conn
            .execute(
                "UPDATE transcripts SET source = NULL, segments = 'not json'",
                [],
            )
            .unwrap();
        let old = h.get(id).unwrap();
        assert_eq!((old.source.as_str(), old.segments.len()), ("mic", 0));
    }

    #[test]
    fn keeps_and_finds_transcripts() {
        let mut h = History::open_in_memory().unwrap();
        let a = h
            .add(&t("Deploy the billing service tonight.", 1), &[])
            .unwrap();
        let b = h
            .add(&t("Remind me to call Anna about the invoices.", 2), &[])
            .unwrap();
        h.add(&t("Weather looks fine for the deploy.", 3), &[])
            .unwrap();
        assert_eq!(h.count().unwrap(), 3);
        assert_eq!(
            h.recent(10).unwrap()[0].text,
            "Weather looks fine for the deploy."
        );
        // Word prefixes: "deplo" finds both "deploy"s, "invo" finds "invoices".
        let ids: Vec<i64> = h
            .search("deplo", 10)
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(ids.len(), 2, "{ids:?}");
        assert!(ids.contains(&a));
        assert_eq!(h.search("anna invo", 10).unwrap()[0].id, b);
        assert!(h.search("anna weather", 10).unwrap().is_empty());
        // Punctuation and FTS syntax are plain text, not errors.
        assert!(h.search("\"NOT\" OR -( ::", 10).is_ok());
        assert_eq!(h.search("   ", 10).unwrap().len(), 3);
        h.delete(a).unwrap();
        assert_eq!(h.search("deploy", 10).unwrap().len(), 1);
        assert!(matches!(h.delete(a), Err(HistoryError::NotFound(_))));
        assert_eq!(h.get(b).unwrap().confidence, Some(0.9));
    }

    #[test]
    fn a_second_connection_to_the_same_file_opens_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sqlite3");
        let mut a = History::open(&path).unwrap();
        let b = History::open(&path).unwrap();
        a.add(&t("One.", 1), &[]).unwrap();
        assert_eq!(b.count().unwrap(), 1);
    }

    #[test]
    fn resending_queues_deliveries_again_and_reports_the_last_error() {
        let mut h = History::open_in_memory().unwrap();
        let id = h.add(&t("Ship it.", 1), &[]).unwrap();
        assert_eq!(h.pending_count().unwrap(), 0);
        let hook = PlannedDelivery {
            output: Output::Webhook,
            target: "http://127.0.0.1:9/hook".into(),
            payload: b"{}".to_vec(),
        };
        h.queue(id, std::slice::from_ref(&hook), 5).unwrap();
        assert_eq!(h.pending_count().unwrap(), 1);
        assert_eq!(h.last_error().unwrap(), None);
        let item = h.due(10, 10).unwrap().remove(0);
        h.failed(&item, "webhook: cannot connect", 10).unwrap();
        assert_eq!(
            h.last_error().unwrap().as_deref(),
            Some("webhook: cannot connect")
        );
        assert!(matches!(
            h.queue(id + 1, &[hook], 5),
            Err(HistoryError::NotFound(_))
        ));
    }

    #[test]
    fn outbox_retries_with_backoff_until_delivered() {
        let mut h = History::open_in_memory().unwrap();
        let hook = PlannedDelivery {
            output: Output::Webhook,
            target: "http://127.0.0.1:9/hook".into(),
            payload: b"{}".to_vec(),
        };
        let id = h.add(&t("hello", 1_000_000), &[hook]).unwrap();
        h.record(id, Output::Clipboard, Ok(()), 1_000_000).unwrap();
        assert_eq!(h.pending_count().unwrap(), 1);
        let due = h.due(1_000_000, 10).unwrap();
        assert_eq!(due.len(), 1);
        h.failed(&due[0], "connection refused", 1_000_000).unwrap();
        // Not due again before its backoff.
        assert!(h.due(1_500_000, 10).unwrap().is_empty());
        assert_eq!(h.next_due_us().unwrap(), Some(2_000_000));
        let again = h.due(2_000_000, 10).unwrap();
        assert_eq!(again[0].attempts, 1);
        h.failed(&again[0], "connection refused", 2_000_000)
            .unwrap();
        assert_eq!(h.next_due_us().unwrap(), Some(4_000_000));
        h.retry_all_now().unwrap();
        let now = h.due(2_000_001, 10).unwrap();
        h.delivered(now[0].id, 2_000_001).unwrap();
        assert_eq!(h.pending_count().unwrap(), 0);
        let d = &h.get(id).unwrap().deliveries;
        assert_eq!(d.len(), 2);
        assert_eq!(
            (d[0].output, d[0].state.as_str(), d[0].attempts),
            (Output::Webhook, "delivered", 3)
        );
        assert_eq!(
            (d[1].output, d[1].state.as_str()),
            (Output::Clipboard, "delivered")
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(retry_delay_us(1), 1_000_000);
        assert_eq!(retry_delay_us(3), 4_000_000);
        assert_eq!(retry_delay_us(40), 300_000_000);
    }

    #[test]
    fn a_file_database_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/history.sqlite3");
        {
            let mut h = History::open(&path).unwrap();
            h.add(&t("kept across restarts", 5), &[]).unwrap();
        }
        let h = History::open(&path).unwrap();
        assert_eq!(h.search("restarts", 5).unwrap().len(), 1);
    }

    #[test]
    fn an_unwritable_place_is_a_clear_error() {
        let e = History::open(Path::new("/proc/candybar/history.sqlite3"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("/proc/candybar"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.sqlite3");
        std::fs::write(&junk, b"this is not a database, just some text long enough").unwrap();
        let e = History::open(&junk).err().unwrap().to_string();
        assert!(e.contains("junk.sqlite3"), "{e}");
    }
}
