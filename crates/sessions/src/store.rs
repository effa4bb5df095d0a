//! Where sessions are kept: SQLite (WAL) in the data dir by default. The same file holds the
//! outbox of lifecycle events waiting for the broker.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use candybar_core::time::Micros;
use rusqlite::{Connection, OptionalExtension as _, params};
use rusqlite_migration::{M, Migrations};

use crate::model::{Provider, Session, SessionState};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the sessions folder {path}: {reason}")]
    Folder {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("sessions database {path}: {reason}")]
    Sqlite {
        path: PathBuf,
        reason: rusqlite::Error,
    },
    #[error("sessions database {path}: cannot bring its schema up to date: {reason}")]
    Migrate {
        path: PathBuf,
        reason: rusqlite_migration::Error,
    },
    #[error("sessions database {path}: a stored session is damaged ({reason})")]
    Damaged { path: PathBuf, reason: String },
}

/// Schema changes in order. Never edit a migration that has shipped: add a new one.
static MIGRATIONS: LazyLock<Migrations<'static>> = LazyLock::new(|| {
    Migrations::new(vec![
        M::up(
            "CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            running INTEGER NOT NULL,
            created_us INTEGER NOT NULL,
            body TEXT NOT NULL
        );
        CREATE INDEX sessions_running ON sessions(running, name);
        CREATE INDEX sessions_created ON sessions(created_us);
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            routing_key TEXT NOT NULL,
            body BLOB NOT NULL,
            created_us INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_us INTEGER NOT NULL DEFAULT 0,
            last_error TEXT
        );
        CREATE INDEX outbox_due ON outbox(next_attempt_us);",
        ),
        // Requests from the bus already handled, by event id (a redelivery is not run twice).
        M::up(
            "CREATE TABLE requests (event_id TEXT PRIMARY KEY, handled_us INTEGER NOT NULL);
            CREATE INDEX requests_handled ON requests(handled_us);",
        ),
    ])
});

/// An event waiting for the broker.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    pub routing_key: String,
    pub body: Vec<u8>,
}

/// An [`Outgoing`] as the outbox keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxItem {
    pub id: i64,
    pub event: Outgoing,
    pub attempts: u32,
}

/// How one provider's sessions go (`candybar agent status`).
#[derive(Clone, Debug)]
pub struct ProviderSummary {
    pub provider: Provider,
    pub running: usize,
    /// Failed since the time asked about.
    pub failed: usize,
    pub newest: Option<Session>,
}

/// Per provider: sessions running, failed since `since_us`, and the newest of `sessions`
/// (newest first).
pub fn summarise(sessions: &[Session], since_us: Micros) -> Vec<ProviderSummary> {
    Provider::ALL
        .into_iter()
        .map(|provider| {
            let mine: Vec<&Session> = sessions.iter().filter(|s| s.provider == provider).collect();
            ProviderSummary {
                provider,
                running: mine.iter().filter(|s| s.state.is_running()).count(),
                failed: mine
                    .iter()
                    .filter(|s| s.state == SessionState::Failed && s.created_us >= since_us)
                    .count(),
                newest: mine.first().map(|s| (*s).clone()),
            }
        })
        .collect()
}

/// Backoff before retry number `attempts` (1 s, 2 s, 4 s … capped at 5 min).
fn retry_delay_us(attempts: u32) -> Micros {
    let secs = 1i64 << attempts.saturating_sub(1).min(9);
    secs.min(300) * 1_000_000
}

/// The sessions database.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating it and its folder when missing) and brings the schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|reason| StoreError::Folder {
                path: dir.to_owned(),
                reason,
            })?;
        }
        let sqlite = |reason| StoreError::Sqlite {
            path: path.to_owned(),
            reason,
        };
        let mut conn = Connection::open(path).map_err(sqlite)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sqlite)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite)?;
        MIGRATIONS
            .to_latest(&mut conn)
            .map_err(|reason| StoreError::Migrate {
                path: path.to_owned(),
                reason,
            })?;
        Ok(Self {
            conn,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sqlite(&self, reason: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            reason,
        }
    }

    fn decode(&self, body: &str) -> Result<Session, StoreError> {
        serde_json::from_str(body).map_err(|e| StoreError::Damaged {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }

    /// Keeps `session` (new or changed) and queues `events` with it, in one transaction: a
    /// state change and the event announcing it are kept together or not at all. A session that
    /// has ended is kept only if it was still running here — of two candybars that see one end,
    /// one announces it. Whether it was kept.
    pub fn save(&mut self, session: &Session, events: &[Outgoing]) -> Result<bool, StoreError> {
        let body = serde_json::to_string(session).map_err(|e| StoreError::Damaged {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let now = candybar_core::time::now_us();
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(|reason| StoreError::Sqlite { path, reason })?;
        let done = (|| {
            let changed = if session.state.is_running() {
                // Never brings back a session another candybar has seen end.
                tx.execute(
                    "INSERT INTO sessions (id, name, running, created_us, body) VALUES (?1, ?2, 1, ?3, ?4)
                     ON CONFLICT(id) DO UPDATE SET name = ?2, body = ?4 WHERE sessions.running = 1",
                    params![session.id, session.name, session.created_us, body],
                )?
            } else {
                tx.execute(
                    "UPDATE sessions SET running = 0, body = ?2 WHERE id = ?1 AND running = 1",
                    params![session.id, body],
                )?
            };
            if changed == 0 {
                return Ok(false);
            }
            for e in events {
                tx.execute(
                    "INSERT INTO outbox (routing_key, body, created_us) VALUES (?1, ?2, ?3)",
                    params![e.routing_key, e.body, now],
                )?;
            }
            tx.commit().map(|()| true)
        })();
        done.map_err(|e| self.sqlite(e))
    }

    pub fn get(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let body: Option<String> = self
            .conn
            .query_row("SELECT body FROM sessions WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.sqlite(e))?;
        body.map(|b| self.decode(&b)).transpose()
    }

    /// Sessions newest first: the running ones, or all when `all`; at most `limit`.
    pub fn list(&self, all: bool, limit: usize) -> Result<Vec<Session>, StoreError> {
        let sql = if all {
            "SELECT body FROM sessions ORDER BY created_us DESC LIMIT ?1"
        } else {
            "SELECT body FROM sessions WHERE running = 1 ORDER BY created_us DESC LIMIT ?1"
        };
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.sqlite(e))?;
        let bodies: Vec<String> = stmt
            .query_map([limit.min(i64::MAX as usize) as i64], |r| r.get(0))
            .and_then(Iterator::collect)
            .map_err(|e| self.sqlite(e))?;
        bodies.iter().map(|b| self.decode(b)).collect()
    }

    /// Sessions whose id starts with `prefix` (at most a few: enough to say it is ambiguous).
    pub fn by_prefix(&self, prefix: &str) -> Result<Vec<Session>, StoreError> {
        let escaped = prefix
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT body FROM sessions WHERE id LIKE ?1 ESCAPE '\\' ORDER BY created_us DESC LIMIT 5",
            )
            .map_err(|e| self.sqlite(e))?;
        let bodies: Vec<String> = stmt
            .query_map([format!("{escaped}%")], |r| r.get(0))
            .and_then(Iterator::collect)
            .map_err(|e| self.sqlite(e))?;
        bodies.iter().map(|b| self.decode(b)).collect()
    }

    /// Sessions named `name`, newest first (running ones before ended ones).
    pub fn by_name(&self, name: &str) -> Result<Vec<Session>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT body FROM sessions WHERE name = ?1 ORDER BY running DESC, created_us DESC LIMIT 5",
            )
            .map_err(|e| self.sqlite(e))?;
        let bodies: Vec<String> = stmt
            .query_map([name], |r| r.get(0))
            .and_then(Iterator::collect)
            .map_err(|e| self.sqlite(e))?;
        bodies.iter().map(|b| self.decode(b)).collect()
    }

    /// Queues `events` that go with no session's change (a refused request).
    pub fn queue(&mut self, events: &[Outgoing]) -> Result<(), StoreError> {
        let now = candybar_core::time::now_us();
        for e in events {
            self.conn
                .execute(
                    "INSERT INTO outbox (routing_key, body, created_us) VALUES (?1, ?2, ?3)",
                    params![e.routing_key, e.body, now],
                )
                .map_err(|e| self.sqlite(e))?;
        }
        Ok(())
    }

    /// Whether the request `event_id` was handled here (in the last week).
    pub fn seen(&self, event_id: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT 1 FROM requests WHERE event_id = ?1",
                [event_id],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(|e| self.sqlite(e))
    }

    /// Remembers that the request `event_id` was handled (a week long).
    pub fn remember(&self, event_id: &str) -> Result<(), StoreError> {
        let now = candybar_core::time::now_us();
        self.conn
            .execute(
                "DELETE FROM requests WHERE handled_us < ?1",
                [now - 7 * 86_400 * 1_000_000],
            )
            .map_err(|e| self.sqlite(e))?;
        self.conn
            .execute(
                "INSERT OR IGNORE INTO requests (event_id, handled_us) VALUES (?1, ?2)",
                params![event_id, now],
            )
            .map(|_| ())
            .map_err(|e| self.sqlite(e))
    }

    /// Events due for delivery by `now_us`, oldest first — and none while the oldest waits
    /// (its backoff holds the ones after it: they go out in order).
    pub fn outbox_due(&self, now_us: Micros, max: usize) -> Result<Vec<OutboxItem>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, routing_key, body, attempts, next_attempt_us FROM outbox
                 ORDER BY id LIMIT ?1",
            )
            .map_err(|e| self.sqlite(e))?;
        let rows: Vec<(OutboxItem, Micros)> = stmt
            .query_map(params![max as i64], |r| {
                Ok((
                    OutboxItem {
                        id: r.get(0)?,
                        event: Outgoing {
                            routing_key: r.get(1)?,
                            body: r.get(2)?,
                        },
                        attempts: r.get(3)?,
                    },
                    r.get(4)?,
                ))
            })
            .and_then(Iterator::collect)
            .map_err(|e| self.sqlite(e))?;
        Ok(rows
            .into_iter()
            .take_while(|(_, due)| *due <= now_us)
            .map(|(item, _)| item)
            .collect())
    }

    /// The broker confirmed `id`.
    pub fn outbox_sent(&self, id: i64) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM outbox WHERE id = ?1", [id])
            .map(|_| ())
            .map_err(|e| self.sqlite(e))
    }

    /// `item` could not be delivered: it waits longer each time.
    pub fn outbox_failed(
        &self,
        item: &OutboxItem,
        error: &str,
        now_us: Micros,
    ) -> Result<(), StoreError> {
        let attempts = item.attempts + 1;
        self.conn
            .execute(
                "UPDATE outbox SET attempts = ?2, next_attempt_us = ?3, last_error = ?4 WHERE id = ?1",
                params![item.id, attempts, now_us + retry_delay_us(attempts), error],
            )
            .map(|_| ())
            .map_err(|e| self.sqlite(e))
    }

    /// Events waiting, and the last error of the oldest.
    pub fn outbox_pending(&self) -> Result<(usize, Option<String>), StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*), (SELECT last_error FROM outbox ORDER BY id LIMIT 1) FROM outbox",
                [],
                |r| Ok((r.get::<_, i64>(0)? as usize, r.get(1)?)),
            )
            .map_err(|e| self.sqlite(e))
    }
}
