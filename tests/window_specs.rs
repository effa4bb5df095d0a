//! The Specs view, driven like a person would (`egui_kittest`), over real spec files: pick a
//! spec and read it rendered, file the approved one on GitHub (a stand-in of GitHub's REST API:
//! GitHub cannot be reached from the test machines) and follow its link, approve a draft, and see
//! a version written on disk by another editor show up by itself.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use egui_kittest::kittest::Queryable as _;
use egui_kittest::{Harness, SnapshotOptions};

use candybar::app::architect::ArchitectInit;
use candybar::app::{AppInit, CandybarApp};
use candybar_bus::live::Live;
use candybar_core::redact::Secret;
use candybar_core::store::StoreConfig;
use candybar_specs::chat::ChatConfig;
use candybar_specs::store::SpecStore;
use candybar_ui::View;
use support::github::{self, GitHub};
use support::kit::wait_for_label;

const V1: &str = "# Voice notes\n\nRecord a note by holding the hotkey.\n\n## Requirements\n- Hold to record\n- Notes are kept\n";
const V2: &str = "# Voice notes\n\nRecord a note by holding the hotkey.\n\n## Requirements\n- Hold to record\n- Notes are kept and searchable\n\n## Acceptance criteria\n1. A note recorded offline is kept\n";

struct Lab {
    dir: tempfile::TempDir,
    _rt: tokio::runtime::Runtime,
}

fn app(gh: &GitHub) -> (Harness<'static, CandybarApp>, Lab, SpecStore) {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let store = SpecStore::new(&project);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut init = AppInit::new(Live::new(StoreConfig::default()));
    init.view = Some(View::Specs);
    init.architect = Some(ArchitectInit {
        talk: Ok(candybar::talk::TalkConfig {
            // No architect is needed to read, approve and file specs.
            chat: ChatConfig::new("http://127.0.0.1:9/v1", "none"),
            role: String::new(),
            project: "candybar".into(),
            project_dir: project,
            speech: candybar_voice::speech::SpeechEngine::Off,
            conversations: dir.path().join("conversations.sqlite3"),
            continue_spec: None,
            reply_tokens: candybar::talk::REPLY_TOKENS,
            spec_tokens: candybar::talk::SPEC_TOKENS,
        }),
        repo: Some(github::REPO.into()),
        github_api: gh.api.clone(),
        github_token: Box::new(|| Some(Secret::new(github::TOKEN))),
        outbox: dir.path().join("sessions.sqlite3"),
        broker: None,
        rt: rt.handle().clone(),
    });
    let harness = Harness::builder()
        .with_size([1280.0, 800.0])
        .build_eframe(|cc| CandybarApp::new(cc, init));
    (harness, Lab { dir, _rt: rt }, store)
}

#[test]
fn specs_are_read_filed_approved_and_edits_on_disk_show_up() {
    let gh = GitHub::start();
    let (mut harness, lab, store) = app(&gh);
    let voice = store.create("candybar", V1, "file", None).unwrap();
    store.add_version(&voice.id, V2, "file").unwrap();
    store.approve(&voice.id, None).unwrap();
    let queue = store
        .create(
            "ops",
            "# Queue dashboard\n\nShow each queue's depth.\n",
            "file",
            None,
        )
        .unwrap();
    harness.run_steps(3);
    wait_for_label(&mut harness, "Voice notes  ·  v2");
    wait_for_label(&mut harness, "Queue dashboard  ·  v1");

    // Picked: rendered, with what can be done with it.
    harness.get_by_label("Voice notes  ·  v2").click();
    harness.run_steps(2);
    wait_for_label(&mut harness, "Notes are kept and searchable");
    wait_for_label(&mut harness, "(v2 approved)");
    // The frame-rate figures depend on the machine, the project's path on the temp dir: mask
    // them.
    let fps = harness.get_by_label_contains("ms/frame").rect();
    harness.mask(fps);
    let path = harness.get_by_label_contains("/project").rect();
    harness.mask(path);
    harness.snapshot_options(
        "specs_view",
        &SnapshotOptions::new().threshold(1.0).max_failed_pixels(200),
    );

    // Filed on GitHub: the link shows, and the stand-in got the issue.
    harness
        .get_by_label(&format!("⬆ File on GitHub ({})", github::REPO))
        .click();
    harness.run_steps(2);
    let url = format!("https://github.com/{}/issues/1", github::REPO);
    wait_for_label(&mut harness, &format!("filed as {url}"));
    wait_for_label(&mut harness, "filed 1");
    assert_eq!(gh.issues()[0]["title"], "Voice notes");
    assert!(harness.query_all_by_label(&url).next().is_some());

    // A draft approved from the window.
    harness.get_by_label("Queue dashboard  ·  v1").click();
    harness.run_steps(2);
    wait_for_label(&mut harness, "Show each queue's depth.");
    harness.get_by_label("✔ Approve").click();
    harness.run_steps(2);
    wait_for_label(&mut harness, "approved v1");
    assert_eq!(
        store.get(&queue.id).unwrap().status,
        candybar_specs::Status::Approved
    );

    // Another editor writes v2 on disk: the list and the text follow.
    let dir = lab
        .dir
        .path()
        .join("project/.sentra/specs/ops")
        .join(&queue.id);
    std::fs::write(
        dir.join("v2.md"),
        "# Queue dashboard\n\nDepth and rate, per queue.\n",
    )
    .unwrap();
    let start = Instant::now();
    while harness
        .query_all_by_label_contains("Queue dashboard  ·  v2")
        .next()
        .is_none()
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the edit never showed"
        );
        harness.run_steps(1);
        std::thread::sleep(Duration::from_millis(50));
    }
}
