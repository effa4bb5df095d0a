//! Sessions kept in Redis, for sessions that span hosts: every candybar that points at the same
//! Redis sees every host's sessions (each host refreshes and ends its own).
//!
//! Keys (under a prefix, `candybar:` by default):
//! - `session:{id}`: the session as JSON; an ended session expires after the retention (`TTL`).
//! - `sessions`: a sorted set of ids by creation time (the index `list` reads newest first).
//! - `running`: the set of running sessions' ids. Removing an id from it marks a session ended —
//!   of two candybars that see one end, one announces it; each save is one Lua script, so a
//!   session is never half-written nor brought back once ended.
//!
//! Ids whose key has expired are dropped from the index when a list meets them.

use std::time::Duration;

use crate::model::Session;

/// How long to wait for Redis on connect and on each command.
const TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum RedisStateError {
    #[error("invalid Redis URL {url}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("Redis at {url}: {reason}")]
    Redis { url: String, reason: String },
    #[error("Redis at {url}: a stored session is damaged ({reason})")]
    Damaged { url: String, reason: String },
}

/// A Redis URL with any password masked, for messages.
fn masked(url: &str) -> String {
    candybar_core::redact::mask_secrets_in(url)
}

/// Keeps a session in one step (a Lua script runs alone on the server). KEYS: the session,
/// the index, the running set; ARGV: id, JSON, created, seconds an ended one is kept, running
/// (1/0). A running session is written only while it is new or still in the running set (an
/// end another candybar saw is not undone); an end only by whoever takes it out of that set.
const SAVE_SCRIPT: &str = r"
if ARGV[5] == '1' then
  if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 0 then
    return 0
  end
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('SADD', KEYS[3], ARGV[1])
else
  if redis.call('SREM', KEYS[3], ARGV[1]) == 0 then
    return 0
  end
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[4])
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
";

/// Sessions in Redis.
pub struct RedisState {
    client: redis::Client,
    conn: Option<redis::Connection>,
    url: String,
    prefix: String,
    /// How long an ended session is kept.
    retention: Duration,
}

impl RedisState {
    /// Checks the URL and connects (a Redis that is down is said at once, with its address).
    pub fn open(url: &str, retention: Duration) -> Result<Self, RedisStateError> {
        let client = redis::Client::open(url).map_err(|e| RedisStateError::BadUrl {
            url: masked(url),
            reason: e.to_string(),
        })?;
        let mut state = Self {
            client,
            conn: None,
            url: masked(url),
            prefix: "candybar:".into(),
            retention,
        };
        state.connection()?;
        Ok(state)
    }

    fn error(&self, e: &redis::RedisError) -> RedisStateError {
        RedisStateError::Redis {
            url: self.url.clone(),
            reason: candybar_core::redact::mask_secrets_in(&e.to_string()),
        }
    }

    /// The connection, made again after a failure.
    fn connection(&mut self) -> Result<&mut redis::Connection, RedisStateError> {
        if self.conn.is_none() {
            let conn = self
                .client
                .get_connection_with_timeout(TIMEOUT)
                .and_then(|c| {
                    c.set_read_timeout(Some(TIMEOUT))?;
                    c.set_write_timeout(Some(TIMEOUT))?;
                    Ok(c)
                })
                .map_err(|e| self.error(&e))?;
            self.conn = Some(conn);
        }
        self.conn.as_mut().ok_or_else(|| RedisStateError::Redis {
            url: self.url.clone(),
            reason: "no connection".into(),
        })
    }

    /// Runs `f` on the connection; a failed command drops it (the next one connects again).
    fn run<T>(
        &mut self,
        f: impl FnOnce(&mut redis::Connection, &str) -> redis::RedisResult<T>,
    ) -> Result<T, RedisStateError> {
        let prefix = self.prefix.clone();
        let result = f(self.connection()?, &prefix);
        result.map_err(|e| {
            self.conn = None;
            self.error(&e)
        })
    }

    fn decode(&self, body: &str) -> Result<Session, RedisStateError> {
        serde_json::from_str(body).map_err(|e| RedisStateError::Damaged {
            url: self.url.clone(),
            reason: e.to_string(),
        })
    }

    /// Keeps `session`. A session that has ended is kept only if it was still running here:
    /// whether it was kept (then the caller announces it).
    pub fn save(&mut self, session: &Session) -> Result<bool, RedisStateError> {
        let body = serde_json::to_string(session).map_err(|e| RedisStateError::Damaged {
            url: self.url.clone(),
            reason: e.to_string(),
        })?;
        let ttl_secs = self.retention.as_secs().max(1);
        let running = session.state.is_running();
        self.run(|c, p| {
            redis::cmd("EVAL")
                .arg(SAVE_SCRIPT)
                .arg(3)
                .arg(format!("{p}session:{}", session.id))
                .arg(format!("{p}sessions"))
                .arg(format!("{p}running"))
                .arg(&session.id)
                .arg(&body)
                .arg(session.created_us)
                .arg(ttl_secs)
                .arg(i32::from(running))
                .query::<i64>(c)
                .map(|kept| kept == 1)
        })
    }

    pub fn get(&mut self, id: &str) -> Result<Option<Session>, RedisStateError> {
        let body: Option<String> =
            self.run(|c, p| redis::cmd("GET").arg(format!("{p}session:{id}")).query(c))?;
        body.map(|b| self.decode(&b)).transpose()
    }

    /// Sessions newest first: the running ones, or all when `all`; at most `limit`.
    pub fn list(&mut self, all: bool, limit: usize) -> Result<Vec<Session>, RedisStateError> {
        let ids: Vec<String> = if all {
            let stop = limit.min(i64::MAX as usize) as i64 - 1;
            self.run(|c, p| {
                redis::cmd("ZREVRANGE")
                    .arg(format!("{p}sessions"))
                    .arg(0)
                    .arg(stop)
                    .query(c)
            })?
        } else {
            self.run(|c, p| redis::cmd("SMEMBERS").arg(format!("{p}running")).query(c))?
        };
        let mut sessions = self.fetch(&ids)?;
        sessions.sort_by_key(|s| std::cmp::Reverse(s.created_us));
        sessions.truncate(limit);
        Ok(sessions)
    }

    /// The sessions of `ids` in one round trip; ids whose key expired leave the index.
    fn fetch(&mut self, ids: &[String]) -> Result<Vec<Session>, RedisStateError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let bodies: Vec<Option<String>> = self.run(|c, p| {
            let keys: Vec<String> = ids.iter().map(|id| format!("{p}session:{id}")).collect();
            redis::cmd("MGET").arg(keys).query(c)
        })?;
        let gone: Vec<&String> = ids
            .iter()
            .zip(&bodies)
            .filter_map(|(id, b)| b.is_none().then_some(id))
            .collect();
        if !gone.is_empty() {
            self.run(|c, p| {
                redis::pipe()
                    .cmd("ZREM")
                    .arg(format!("{p}sessions"))
                    .arg(&gone)
                    .ignore()
                    .cmd("SREM")
                    .arg(format!("{p}running"))
                    .arg(&gone)
                    .ignore()
                    .query::<()>(c)
            })?;
        }
        bodies.iter().flatten().map(|b| self.decode(b)).collect()
    }

    /// Sessions whose id starts with `prefix` (at most 5).
    pub fn by_prefix(&mut self, prefix: &str) -> Result<Vec<Session>, RedisStateError> {
        let ids: Vec<String> = self.run(|c, p| {
            redis::cmd("ZREVRANGE")
                .arg(format!("{p}sessions"))
                .arg(0)
                .arg(-1)
                .query(c)
        })?;
        let matching: Vec<String> = ids
            .into_iter()
            .filter(|id| id.starts_with(prefix))
            .take(5)
            .collect();
        self.fetch(&matching)
    }

    /// Sessions named `name`, running ones first, then newest first (of the newest 10,000).
    pub fn by_name(&mut self, name: &str) -> Result<Vec<Session>, RedisStateError> {
        let mut found: Vec<Session> = self
            .list(true, 10_000)?
            .into_iter()
            .filter(|s| s.name == name)
            .collect();
        found.sort_by_key(|s| (!s.state.is_running(), -s.created_us));
        found.truncate(5);
        Ok(found)
    }
}

/// A redis-server of one's own on a free port of 127.0.0.1, with nothing saved to disk — for
/// tests and `bench sessions`. Stopped when dropped.
pub struct LocalRedis {
    child: std::process::Child,
    pub port: u16,
    dir: std::path::PathBuf,
}

impl LocalRedis {
    /// Starts one keeping its files in `dir`; `Ok(None)` when redis-server is not installed.
    pub fn start(dir: &std::path::Path) -> std::io::Result<Option<Self>> {
        // The free port is free when asked, not always when redis-server binds it (another test
        // may take it meanwhile): a server that exits at once is started again on another port.
        let mut last = None;
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let child = match Self::spawn(port, dir) {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let mut redis = Self {
                child,
                port,
                dir: dir.to_owned(),
            };
            match redis.wait_ready() {
                Ok(()) => return Ok(Some(redis)),
                Err(e) => {
                    redis.stop();
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("redis-server did not start")))
    }

    fn spawn(port: u16, dir: &std::path::Path) -> std::io::Result<std::process::Child> {
        std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--dir"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
    }

    /// Waits until this server answers on its port (not another process that holds it).
    fn wait_ready(&mut self) -> std::io::Result<()> {
        let until = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(std::io::Error::other(format!(
                    "redis-server exited at once ({status}; port {} taken?)",
                    self.port
                )));
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                // Still ours a moment later: a server that could not bind exits at once.
                std::thread::sleep(Duration::from_millis(50));
                if self.child.try_wait()?.is_none() {
                    return Ok(());
                }
                continue;
            }
            if std::time::Instant::now() >= until {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "redis-server did not start within 10 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills it (a Redis that goes away).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        self.child = Self::spawn(self.port, &self.dir)?;
        self.wait_ready()
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
