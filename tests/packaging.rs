//! The packages `packaging/build` makes, as a user gets them: the .deb unpacked into a throwaway
//! root and the `AppImage` extracted (no FUSE here), each binary started under Xvfb on the demo
//! feed — it must draw a window and exit cleanly — and the desktop entry and `AppStream` metadata
//! validated. `.ci/test` builds the packages and names their directory in
//! `CANDYBAR_TEST_PACKAGES`.

#![allow(clippy::unwrap_used)] // a test: a failed step is the failure

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{Xvfb, path_str};

/// The directory holding the .deb and the `AppImage`; without one the test fails saying how to
/// make them.
fn packages() -> PathBuf {
    let dir = std::env::var_os("CANDYBAR_TEST_PACKAGES").map(PathBuf::from);
    match dir {
        Some(d) if d.is_dir() => d,
        _ => panic!(
            "no packages to test: run `packaging/build DIR` and set CANDYBAR_TEST_PACKAGES=DIR \
             (.ci/test, the README's test command, does both)"
        ),
    }
}

fn find(dir: &Path, suffix: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no *{suffix} in {}", dir.display()))
}

fn output(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (install with .ci/install-deps)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn validate_desktop_integration(root: &Path) {
    output(
        Command::new("desktop-file-validate")
            .arg(root.join("usr/share/applications/candybar.desktop")),
    );
    let metainfo: Vec<PathBuf> = std::fs::read_dir(root.join("usr/share/metainfo"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    assert_eq!(metainfo.len(), 1, "{metainfo:?}");
    output(
        Command::new("appstreamcli")
            .args(["validate", "--no-net"])
            .arg(&metainfo[0]),
    );
    for size in [16, 32, 48, 64, 128, 256, 512] {
        let icon = root.join(format!(
            "usr/share/icons/hicolor/{size}x{size}/apps/candybar.png"
        ));
        let img = image::open(&icon).unwrap_or_else(|e| panic!("{}: {e}", icon.display()));
        assert_eq!(
            (img.width(), img.height()),
            (size, size),
            "{}",
            icon.display()
        );
    }
    assert!(
        root.join("usr/share/icons/hicolor/scalable/apps/candybar.svg")
            .is_file()
    );
}

/// Runs `program` (the packaged candybar) on the demo feed under Xvfb; it must save a real
/// picture of its window and exit 0.
fn opens_a_window(program: &Path, extra_env: &[(&str, &str)]) {
    let x = Xvfb::start();
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("window.png");
    let mut child = Command::new(program)
        .args([
            "--demo",
            "--no-tray",
            "--screenshot",
            path_str(&png),
            "--exit-after",
            "4",
        ])
        .env("DISPLAY", &x.display)
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .env("CANDYBAR_SOCKET", dir.path().join("candybar.sock"))
        .env("CANDYBAR_NO_KEYCHAIN", "1")
        .envs(extra_env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let end = std::time::Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            panic!("{} did not exit within 90 s", program.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        status.success(),
        "{} exited with {status}:\n{stderr}",
        program.display()
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let img = image::open(&png)
        .unwrap_or_else(|e| panic!("no screenshot from {}: {e}\n{stderr}", program.display()))
        .to_rgba8();
    let colours: std::collections::HashSet<[u8; 4]> = img.pixels().map(|p| p.0).collect();
    assert!(
        img.width() >= 640 && colours.len() > 50,
        "the packaged window looks blank: {}x{}, {} colours",
        img.width(),
        img.height(),
        colours.len()
    );
    if let Some(dir) = std::env::var_os("CANDYBAR_ARTIFACTS") {
        let name = program
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace('.', "-");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::copy(&png, Path::new(&dir).join(format!("packaged-{name}.png")));
    }
}

#[test]
fn the_deb_installs_into_a_clean_root_and_its_binary_opens_a_window() {
    let dir = packages();
    let deb = find(&dir, "_amd64.deb");
    let info = output(Command::new("dpkg-deb").arg("--info").arg(&deb));
    assert!(info.contains("Package: candybar"), "{info}");
    let version = env!("CARGO_PKG_VERSION");
    assert!(info.contains(&format!("Version: {version}")), "{info}");
    // Libraries the binary links are dependencies, found by dpkg-shlibdeps.
    let depends = info
        .lines()
        .find(|l| l.trim_start().starts_with("Depends:"))
        .unwrap_or_else(|| panic!("no Depends:\n{info}"));
    for lib in ["libgtk-3-0", "libasound2", "libc6"] {
        assert!(depends.contains(lib), "{lib} missing from {depends}");
    }
    assert!(
        info.contains("Recommends:") && info.contains("libayatana-appindicator3-1"),
        "{info}"
    );

    let root = tempfile::tempdir().unwrap();
    output(Command::new("dpkg").arg("-x").arg(&deb).arg(root.path()));
    let bin = root.path().join("usr/bin/candybar");
    let said = output(Command::new(&bin).arg("--version"));
    assert!(said.contains(version), "{said}");
    validate_desktop_integration(root.path());
    // The recorder's systemd user unit, for `systemctl --user enable --now candybar-record`.
    let unit = root
        .path()
        .join("usr/lib/systemd/user/candybar-record.service");
    let text = std::fs::read_to_string(&unit)
        .unwrap_or_else(|e| panic!("the .deb has no {}: {e}", unit.display()));
    assert!(
        text.contains("ExecStart=/usr/bin/candybar record"),
        "{text}"
    );
    opens_a_window(&bin, &[]);
}

#[test]
fn the_appimage_extracts_and_runs_and_stays_small() {
    let dir = packages();
    let appimage = find(&dir, "-x86_64.AppImage");
    let bytes = std::fs::metadata(&appimage).unwrap().len();
    assert!(
        bytes <= 40 * 1024 * 1024,
        "the AppImage is {:.1} MiB; the goal is ≤ 40 MiB",
        bytes as f64 / 1_048_576.0
    );
    // Without FUSE (as here): extract-and-run, the way the README tells such users.
    let said = output(
        Command::new(&appimage)
            .arg("--version")
            .env("APPIMAGE_EXTRACT_AND_RUN", "1"),
    );
    assert!(said.contains(env!("CARGO_PKG_VERSION")), "{said}");

    let work = tempfile::tempdir().unwrap();
    output(
        Command::new(&appimage)
            .arg("--appimage-extract")
            .current_dir(work.path()),
    );
    let root = work.path().join("squashfs-root");
    for f in [
        "AppRun",
        "candybar.desktop",
        "candybar.png",
        ".DirIcon",
        "usr/bin/candybar",
    ] {
        assert!(root.join(f).exists(), "{f} is missing from the AppImage");
    }
    validate_desktop_integration(&root);
    opens_a_window(&root.join("AppRun"), &[]);
}
