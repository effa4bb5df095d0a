//! Sessions kept in a real Redis server (a private one per test), shared by two hosts' candybars,
//! with a real tmux and shell commands as agents: each host sees the other's sessions, ends are
//! announced once, ended sessions expire, and a Redis that goes away is said and reconnected.
//! A missing redis-server or tmux fails the test with what to install.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use candybar_sessions::redis_state::{LocalRedis, RedisState};
use candybar_sessions::{
    MuxSocket, Provider, SessionError, SessionState, Sessions, SqliteStore, StartRequest, Tmux,
};

/// A private redis-server (stopped at the end), and its temporary directory.
struct Redis {
    server: LocalRedis,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = LocalRedis::start(dir.path())
            .expect("start redis-server")
            .expect("these tests need redis-server: sudo apt-get install redis-server");
        Self { server, _dir: dir }
    }

    fn url(&self) -> String {
        self.server.url()
    }

    /// A raw command's integer answer (TTL, ZCARD…).
    fn int(&self, args: &[&str]) -> i64 {
        let client = redis::Client::open(self.url()).expect("a Redis URL");
        let mut c = client.get_connection().expect("connect to Redis");
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut c).expect("an integer answer")
    }
}

/// One host's candybar: its own sessions database, its own tmux server, the shared Redis.
struct Host {
    sessions: Sessions,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Host {
    fn new(name: &str, redis: &Redis, keep: Duration) -> Self {
        assert!(
            Tmux::version().is_ok(),
            "these tests need tmux: sudo apt-get install tmux"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("tmux.sock");
        let store =
            SqliteStore::open(&dir.path().join("sessions.sqlite3")).expect("the sessions store");
        let mut sessions = Sessions::new(
            store,
            Tmux::new(MuxSocket::Path(socket.clone())),
            dir.path().join("logs"),
            Duration::from_mins(1),
        )
        .with_redis(RedisState::open(&redis.url(), keep).expect("connect to Redis"));
        sessions.host = name.into();
        Self {
            sessions,
            socket,
            _dir: dir,
        }
    }

    fn start(&mut self, name: &str, script: &str) -> candybar_sessions::Session {
        self.sessions
            .start(StartRequest {
                id: None,
                name: name.into(),
                provider: Provider::Custom,
                dir: std::env::temp_dir(),
                prompt: None,
                command: vec!["sh".into(), "-c".into(), script.into()],
                metadata: serde_json::json!({}),
                correlation_id: None,
                multiplexer: Some(candybar_sessions::Multiplexer::Tmux),
            })
            .expect("start")
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .stderr(Stdio::null())
            .status();
    }
}

fn completed_events(host: &Host) -> usize {
    host.sessions
        .store
        .outbox_due(i64::MAX, 1000)
        .expect("the outbox")
        .iter()
        .filter(|i| i.event.routing_key == "jelmore.session.completed")
        .count()
}

#[test]
fn two_hosts_share_their_sessions_and_an_end_is_announced_once() {
    let redis = Redis::start();
    let mut a = Host::new("host-a", &redis, Duration::from_hours(1));
    let mut b = Host::new("host-b", &redis, Duration::from_hours(1));
    let mine = a.start("on-a", "echo working on a; read x");
    let theirs = b.start("on-b", "echo working on b; read x");

    // Each host lists both, running, and resolves the other's by name.
    for host in [&mut a, &mut b] {
        let list = host.sessions.list(false, 100).unwrap();
        let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["on-b", "on-a"], "newest first");
        assert_eq!(host.sessions.resolve("on-a").unwrap().host, "host-a");
    }
    // A refresh on B leaves A's session alone (B's tmux does not run it).
    b.sessions.refresh().unwrap();
    assert!(
        b.sessions
            .get(&mine.id)
            .unwrap()
            .unwrap()
            .state
            .is_running()
    );

    // A's session ends; A notices. B sees it ended.
    a.sessions.send("on-a", "done").unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        a.sessions.refresh().unwrap();
        if !a
            .sessions
            .get(&mine.id)
            .unwrap()
            .unwrap()
            .state
            .is_running()
        {
            break;
        }
        assert!(Instant::now() < end, "the session did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
    let seen_by_b = b.sessions.get(&mine.id).unwrap().unwrap();
    assert_eq!(seen_by_b.state, SessionState::Terminated);
    assert_eq!(seen_by_b.exit_code, Some(0));
    assert_eq!(completed_events(&a), 1);
    // A second candybar on host A sees the same end: it is not announced again.
    let mut a2 = Host::new("host-a", &redis, Duration::from_hours(1));
    let mut stale = seen_by_b.clone();
    stale.reason = Some("seen twice".into());
    assert!(
        !a2.sessions.save(&stale, &[]).unwrap(),
        "only one candybar keeps an end"
    );
    a2.sessions.refresh().unwrap();
    assert_eq!(completed_events(&a2), 0);

    // Running sessions do not expire; ended ones do, after the retention.
    let key = |id: &str| format!("candybar:session:{id}");
    assert_eq!(redis.int(&["TTL", &key(&theirs.id)]), -1);
    let ttl = redis.int(&["TTL", &key(&mine.id)]);
    assert!((3500..=3600).contains(&ttl), "{ttl}");
    assert_eq!(redis.int(&["SCARD", "candybar:running"]), 1);
}

#[test]
fn ended_sessions_expire_from_the_index_and_a_lost_redis_is_said_then_found_again() {
    let mut redis = Redis::start();
    let mut a = Host::new("host-a", &redis, Duration::from_secs(1));
    let quick = a.start("quick", "echo bye");
    let end = Instant::now() + Duration::from_secs(10);
    while a
        .sessions
        .get(&quick.id)
        .unwrap()
        .unwrap()
        .state
        .is_running()
    {
        assert!(Instant::now() < end, "the session did not end");
        std::thread::sleep(Duration::from_millis(100));
        a.sessions.refresh().unwrap();
    }
    assert_eq!(redis.int(&["ZCARD", "candybar:sessions"]), 1);
    std::thread::sleep(Duration::from_millis(2100));
    assert!(a.sessions.list(true, 100).unwrap().is_empty());
    assert_eq!(
        redis.int(&["ZCARD", "candybar:sessions"]),
        0,
        "the expired id left the index"
    );

    // Redis goes away: the error names it; back, the next command works again.
    redis.server.stop();
    let e = a.sessions.list(true, 100).unwrap_err();
    assert!(matches!(e, SessionError::Redis(_)), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("127.0.0.1:{}", redis.server.port)),
        "{e}"
    );
    redis.server.restart().expect("redis-server again");
    assert!(a.sessions.list(true, 100).unwrap().is_empty());

    // A Redis that is not there at start is said at once.
    redis.server.stop();
    let e = RedisState::open(&redis.url(), Duration::from_hours(1))
        .err()
        .expect("no Redis");
    assert!(e.to_string().contains("Redis at redis://127.0.0.1:"), "{e}");
}
