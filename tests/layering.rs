//! `.ci/check-layering`, the check CI runs on the workspace's dependency graph: it passes on
//! this repository, and it fails — naming the crate and the dependency — when a crate reaches
//! for what its layer forbids. The second part runs it on a small stand-in workspace (path
//! crates only, so `cargo tree` needs no network) whose core depends on a crate named `tokio`.

mod support;

use std::path::Path;
use std::process::Command;

use support::repo;

/// A workspace with the nine crates of the real one, empty; `core_deps` is added to the core's
/// `[dependencies]`.
fn stand_in(dir: &Path, core_deps: &str) {
    let crates = [
        ("core", "candybar-core", String::from(core_deps)),
        (
            "bus",
            "candybar-bus",
            "candybar-core = { path = \"../core\" }".into(),
        ),
        (
            "journal",
            "candybar-journal",
            "candybar-core = { path = \"../core\" }".into(),
        ),
        (
            "asr",
            "candybar-asr",
            "candybar-core = { path = \"../core\" }".into(),
        ),
        (
            "voice",
            "candybar-voice",
            "candybar-core = { path = \"../core\" }".into(),
        ),
        (
            "sessions",
            "candybar-sessions",
            "candybar-core = { path = \"../core\" }".into(),
        ),
        (
            "specs",
            "candybar-specs",
            "candybar-sessions = { path = \"../sessions\" }".into(),
        ),
        (
            "ui",
            "candybar-ui",
            "candybar-core = { path = \"../core\" }".into(),
        ),
        (
            "app",
            "candybar",
            "candybar-ui = { path = \"../ui\" }".into(),
        ),
        ("tokio", "tokio", String::new()),
    ];
    std::fs::write(
        dir.join("Cargo.toml"),
        "[workspace]\nmembers = [\"crates/*\"]\nresolver = \"3\"\n",
    )
    .expect("write the stand-in workspace");
    for (folder, name, deps) in crates {
        let c = dir.join("crates").join(folder);
        std::fs::create_dir_all(c.join("src")).expect("make a crate folder");
        std::fs::write(
            c.join("Cargo.toml"),
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[dependencies]\n{deps}\n"
            ),
        )
        .expect("write a crate manifest");
        std::fs::write(c.join("src/lib.rs"), "").expect("write a crate source");
    }
}

fn check(manifest: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(repo().join(".ci/check-layering"))
        .args(["--manifest-path", manifest.to_str().expect("a UTF-8 path")])
        .output()
        .expect("run .ci/check-layering");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn this_workspace_keeps_its_layers() {
    let (code, out, err) = check(&repo().join("Cargo.toml"));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("run one way"), "{out}");
}

#[test]
fn a_forbidden_dependency_fails_the_check_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    stand_in(dir.path(), "");
    let (code, out, err) = check(&dir.path().join("Cargo.toml"));
    assert_eq!(code, Some(0), "the clean stand-in must pass: {out}{err}");

    let dir = tempfile::tempdir().unwrap();
    stand_in(dir.path(), "tokio = { path = \"../tokio\" }");
    let (code, out, err) = check(&dir.path().join("Cargo.toml"));
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("candybar-core must not depend on tokio"),
        "the message names the crate and the dependency: {err}"
    );
    assert!(err.contains("ARCHITECTURE.md"), "{err}");
}
