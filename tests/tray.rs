//! The tray, as a user uses it: the real binary under Xvfb with a session bus and a tray host
//! (trayer), its icon right-clicked with xdotool, the menu's items clicked: hide the window (ingest
//! goes on), show it again, quit.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Xvfb, path_str};

/// The middle of the menu's first item below its top edge, and of its last item (Quit) above its
/// bottom edge (GTK's default theme, measured).
const FIRST_ITEM_Y: i32 = 16;
const LAST_ITEM_Y: i32 = 16;

#[derive(Clone, Copy, Debug)]
enum Item {
    ShowHide,
    Quit,
}

struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn x(display: &str, args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .env("DISPLAY", display)
        .output()
        .unwrap_or_else(|e| panic!("{} is needed (.ci/install-deps): {e}", args[0]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (x, y, width, height) of a window.
fn geometry(display: &str, id: &str) -> (i32, i32, i32, i32) {
    let out = x(display, &["xdotool", "getwindowgeometry", "--shell", id]);
    let get = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("X"), get("Y"), get("WIDTH"), get("HEIGHT"))
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mapped(display: &str, id: &str) -> bool {
    x(display, &["xwininfo", "-id", id]).contains("IsViewable")
}

/// Right-clicks the tray icon and clicks the menu's item `n`.
fn menu_click(display: &str, icon: (i32, i32, i32, i32), main: &str, item: Item) {
    let (ix, iy, iw, ih) = icon;
    let find_menu = || {
        x(
            display,
            &["xdotool", "search", "--onlyvisible", "--class", "Candybar"],
        )
        .lines()
        .filter(|id| *id != main)
        .map(|id| geometry(display, id))
        .find(|g| g.2 > 100 && g.3 > 100 && g.3 < 400)
    };
    // A click that lands while GTK is still busy (starting, or closing the last menu) is lost:
    // click again until the menu shows.
    let mut clicked_at: Option<Instant> = None;
    let end = Instant::now() + Duration::from_secs(20);
    let menu = wait_for("the tray menu", || {
        if let Some(m) = find_menu() {
            return Some(m);
        }
        assert!(
            Instant::now() < end,
            "no tray menu for {item:?}; windows:\n{}",
            x(display, &["xwininfo", "-root", "-tree"])
        );
        if clicked_at.is_none_or(|t| t.elapsed() > Duration::from_secs(2)) {
            // With no window manager the main window may cover the panel: bring the panel up.
            for id in x(display, &["xdotool", "search", "--class", "trayer"]).lines() {
                x(display, &["xdotool", "windowraise", id]);
            }
            x(
                display,
                &[
                    "xdotool",
                    "mousemove",
                    &(ix + iw / 2).to_string(),
                    &(iy + ih / 2).to_string(),
                    "click",
                    "3",
                ],
            );
            clicked_at = Some(Instant::now());
        }
        None
    });
    x(
        display,
        &[
            "xdotool",
            "mousemove",
            &(menu.0 + 50).to_string(),
            &match item {
                Item::ShowHide => menu.1 + FIRST_ITEM_Y,
                Item::Quit => menu.1 + menu.3 - LAST_ITEM_Y,
            }
            .to_string(),
            "click",
            "1",
        ],
    );
}

#[test]
fn the_tray_menu_hides_and_shows_the_window_and_quits() {
    let xvfb = Xvfb::start();
    let display = xvfb.display.as_str();
    // The tray host. Started right after the X server it sometimes exits at once: start it
    // until its panel is there.
    let mut trayer = None;
    wait_for("trayer's panel", || {
        let running = trayer
            .as_mut()
            .is_some_and(|p: &mut Proc| p.0.try_wait().ok().flatten().is_none());
        if !running {
            trayer = Some(Proc(
                Command::new("trayer")
                    .args([
                        "--edge",
                        "top",
                        "--align",
                        "right",
                        "--widthtype",
                        "request",
                    ])
                    .args(["--height", "32", "--transparent", "false"])
                    .env("DISPLAY", display)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("trayer is needed: sudo apt-get install trayer (or .ci/install-deps)"),
            ));
            std::thread::sleep(Duration::from_millis(300));
        }
        let panel = x(display, &["xdotool", "search", "--class", "trayer"]);
        (!panel.trim().is_empty()).then_some(())
    });
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats.json");
    let started = Instant::now();
    // A session bus of its own, as a desktop session has.
    let mut app = Proc(
        Command::new("dbus-run-session")
            .args(["--", env!("CARGO_BIN_EXE_candybar")])
            .args([
                "--demo",
                "--demo-rate",
                "3000",
                "--stats-out",
                path_str(&stats),
            ])
            .env("DISPLAY", display)
            .env("XDG_DATA_HOME", dir.path())
            .env("CANDYBAR_SOCKET", dir.path().join("c.sock"))
            .env("CANDYBAR_HISTORY", dir.path().join("h.sqlite3"))
            .env("CANDYBAR_CONFIG", "/nonexistent/candybar-test-config.toml")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-run-session is needed: sudo apt-get install dbus-x11"),
    );
    let icon = wait_for("the tray icon", || {
        let ids = x(
            display,
            &["xdotool", "search", "--classname", "tray-icon tray app"],
        );
        // Embedded in the panel it is panel-high; alone (no host yet) it is a 16×16 window.
        ids.lines()
            .map(|id| geometry(display, id))
            .find(|g| g.3 > 20 && g.2 < 100)
    });
    let main = wait_for("the main window", || {
        x(
            display,
            &["xdotool", "search", "--onlyvisible", "--name", "^candybar$"],
        )
        .lines()
        .find(|id| geometry(display, id).2 >= 640)
        .map(str::to_owned)
    });

    menu_click(display, icon, &main, Item::ShowHide);
    wait_for("the window to hide", || {
        (!mapped(display, &main)).then_some(())
    });
    // Events keep coming while hidden: 8 s at 3000/s is three times what the source's channel
    // holds, so a window that stopped ingesting would fall far short below.
    std::thread::sleep(Duration::from_secs(8));
    menu_click(display, icon, &main, Item::ShowHide);
    wait_for("the window to show again", || {
        mapped(display, &main).then_some(())
    });

    menu_click(display, icon, &main, Item::Quit);
    let exit = wait_for("candybar to quit", || app.0.try_wait().unwrap());
    let ran_secs = started.elapsed().as_secs_f64();
    assert!(exit.success(), "{exit:?}");
    // Ingest went on while the window was hidden: most of the demo's events arrived.
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stats).expect("stats written on exit")).unwrap();
    let received = report["events_received"].as_f64().unwrap();
    assert!(
        received > 3000.0 * (ran_secs - 2.0) * 0.85,
        "only {received} events in {ran_secs:.1} s at 3000/s"
    );
}
