//! Mission Control's alerts reach the desktop: the real window on the demo feed under Xvfb, a
//! private D-Bus session bus with a real notification server (dunst) on it, and `dbus-monitor`
//! watching what candybar asks it to show. A missing tool fails the test with what to install.

mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use support::{Candybar, Xvfb};

/// A child process killed when the test ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tool(name: &str, package: &str) -> Command {
    assert!(
        Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
        "this test needs {name}: apt-get install {package}"
    );
    Command::new(name)
}

/// A session bus of the test's own: its address.
fn session_bus(dir: &std::path::Path) -> (Killed, String) {
    let mut bus = tool("dbus-daemon", "dbus")
        .args(["--session", "--nofork", "--print-address=1"])
        .env("XDG_RUNTIME_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dbus-daemon");
    let mut line = String::new();
    BufReader::new(bus.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the bus's address");
    (Killed(bus), line.trim().to_owned())
}

#[test]
fn mission_alerts_reach_the_desktop_in_one_notification() {
    let x = Xvfb::start();
    let dir = tempfile::tempdir().unwrap();
    let (_bus, address) = session_bus(dir.path());
    let envs = [
        ("DISPLAY", x.display.as_str()),
        ("DBUS_SESSION_BUS_ADDRESS", address.as_str()),
    ];
    let _dunst = Killed(
        tool("dunst", "dunst")
            .envs(envs)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dunst"),
    );
    // What candybar asks the notification server to show.
    let mut monitor = tool("dbus-monitor", "dbus")
        .args([
            "--address",
            &address,
            "type='method_call',interface='org.freedesktop.Notifications',member='Notify'",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dbus-monitor");
    let seen = Arc::new(Mutex::new(String::new()));
    let out = monitor.stdout.take().expect("stdout");
    let sink = seen.clone();
    std::thread::Builder::new()
        .name("dbus-monitor".into())
        .spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut s = sink.lock();
                s.push_str(&line);
                s.push('\n');
            }
        })
        .expect("a thread");
    let _monitor = Killed(monitor);
    let data = dir.path().join("data");
    let app = Candybar::spawn_env(
        &["--demo", "--no-tray", "--exit-after", "40"],
        &[
            envs[0],
            envs[1],
            ("XDG_DATA_HOME", data.to_str().unwrap()),
            ("RUST_LOG", "warn,candybar=info"),
        ],
    );
    // The demo's projects: a critical escalation, an overdue gate, a blocked project — said in
    // one notification once the coalescing window has passed.
    let start = Instant::now();
    loop {
        let text = seen.lock().clone();
        if text.contains("things need attention") {
            assert!(text.contains("string \"candybar\""), "{text}");
            assert!(text.contains("Critical escalation"), "{text}");
            assert!(text.contains("is blocked"), "{text}");
            // Only one notification for all of them.
            assert_eq!(text.matches("member=Notify").count(), 1, "{text}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(35),
            "no notification within 35 s; the monitor saw:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(app);
}
