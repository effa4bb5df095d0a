//! `candybar spec …`, the real binary: specs kept as versioned files a person can read, approved
//! and filed as GitHub issues (against a stand-in of GitHub's REST API — GitHub cannot be reached
//! from the test machines), their events on a real broker, and bad input and GitHub's refusals
//! answered in words with nothing lost.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::github::{self, GitHub, Mode};
use support::{bind_queue, path_str, run_env, shared_broker_url, take_messages, unique};

/// A project directory and a sessions directory (the events' outbox) of its own.
struct Project {
    dir: tempfile::TempDir,
    sessions: tempfile::TempDir,
    env: Vec<(String, String)>,
    /// Flags added to every command (`--amqp URL`: the test helpers keep the environment's
    /// broker out).
    flags: Vec<String>,
}

impl Project {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("specs-project")
            .tempdir()
            .unwrap();
        let sessions = tempfile::tempdir().unwrap();
        let env = vec![
            ("CANDYBAR_SPECS_DIR".into(), path_str(dir.path()).into()),
            (
                "CANDYBAR_SESSIONS_DIR".into(),
                path_str(sessions.path()).into(),
            ),
        ];
        Self {
            dir,
            sessions,
            env,
            flags: Vec::new(),
        }
    }

    fn flag(mut self, flag: &str, value: &str) -> Self {
        self.flags.extend([flag.to_owned(), value.to_owned()]);
        self
    }

    fn with(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(self.flags.iter().map(String::as_str));
        run_env(&all, &env)
    }

    /// `spec ARGS`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let mut all = vec!["spec"];
        all.extend_from_slice(args);
        let (code, out, err) = self.run(&all);
        assert_eq!(code, Some(0), "spec {args:?}: {err}");
        out
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.sessions.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn spec_dir(&self, project: &str, id: &str) -> PathBuf {
        self.dir.path().join(".sentra/specs").join(project).join(id)
    }

    fn meta(&self, project: &str, id: &str) -> Value {
        let text = std::fs::read_to_string(self.spec_dir(project, id).join("meta.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

const V1: &str =
    "# Voice notes\n\nRecord a note by holding the hotkey.\n\n## Requirements\n- Hold to record\n";
const V2: &str = "# Voice notes\n\nRecord a note by holding the hotkey.\n\n## Requirements\n- Hold to record\n- Notes are searchable\n";

fn new_spec(p: &Project, text: &str) -> String {
    let f = p.file(&unique("spec.md"), text);
    p.ok(&["new", "--project", "candybar", "--from", path_str(&f)])
        .trim()
        .to_owned()
}

fn event_types(bodies: &[Vec<u8>]) -> Vec<String> {
    bodies
        .iter()
        .map(|b| {
            let v: Value = serde_json::from_slice(b).unwrap();
            v["event_type"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

#[test]
fn a_spec_is_versioned_approved_and_filed_as_an_issue_and_said_on_the_bus() {
    let url = shared_broker_url();
    let exchange = unique("specs-x");
    let queue = bind_queue(&url, &exchange, "sentra.#");
    let gh = GitHub::start();
    let p = Project::new()
        .flag("--amqp", &url)
        .flag("--exchange", &exchange)
        .with("CANDYBAR_GITHUB_API", &gh.api)
        .with("CANDYBAR_GITHUB_REPO", github::REPO)
        .with("CANDYBAR_GITHUB_TOKEN", github::TOKEN);

    // v1 from a file: on disk where a person looks for it.
    let id = new_spec(&p, V1);
    assert!(id.starts_with("voice-notes-"), "{id}");
    let dir = p.spec_dir("candybar", &id);
    assert_eq!(std::fs::read_to_string(dir.join("v1.md")).unwrap(), V1);
    let meta = p.meta("candybar", &id);
    assert_eq!(meta["status"], "draft");
    assert_eq!(meta["title"], "Voice notes");
    assert_eq!(meta["project"], "candybar");

    // v2 (from stdin-less file), the diff between them, and v1 still readable.
    let f = p.file("v2.md", V2);
    let out = p.ok(&["revise", &id, "--from", path_str(&f)]);
    assert!(out.contains("v2"), "{out}");
    let diff = p.ok(&["diff", &id, "1"]);
    assert!(diff.contains("+- Notes are searchable"), "{diff}");
    assert!(
        diff.contains("--- v1.md") && diff.contains("+++ v2.md"),
        "{diff}"
    );
    assert_eq!(p.ok(&["show", &id, "--version", "1"]), V1);
    assert_eq!(p.ok(&["show", &id]), V2);

    // Not approved: not filed.
    let (code, _, err) = p.run(&["spec", "issue", &id]);
    assert_eq!(code, Some(2));
    assert!(err.contains("approve it first"), "{err}");
    assert!(gh.requests().is_empty());

    let out = p.ok(&["approve", &id]);
    assert!(out.contains("v2 approved"), "{out}");

    // The dry run prints exactly what would be sent, the token masked, and sends nothing.
    let dry = p.ok(&["issue", &id, "--dry-run"]);
    assert!(
        dry.contains(&format!("POST {}/repos/{}/issues", gh.api, github::REPO)),
        "{dry}"
    );
    assert!(dry.contains("Authorization: Bearer ****"), "{dry}");
    assert!(dry.contains("\"ai-feature\"") && dry.contains("Notes are searchable"));
    assert!(!dry.contains(github::TOKEN));
    assert!(gh.requests().is_empty(), "a dry run sent requests");

    // Filed: the label made (the repository lacked it), the issue created with the spec as its
    // body and where it came from, the URL printed and kept.
    let url_out = p.ok(&["issue", &id]);
    assert_eq!(
        url_out.trim(),
        format!("https://github.com/{}/issues/1", github::REPO)
    );
    let requests = gh.requests();
    let calls: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        calls,
        [
            "GET /repos/sentra/platform/labels/ai-feature",
            "POST /repos/sentra/platform/labels",
            "POST /repos/sentra/platform/issues"
        ]
    );
    assert!(
        requests
            .iter()
            .all(|r| r.api_version.as_deref() == Some("2022-11-28"))
    );
    let issue = &gh.issues()[0];
    assert_eq!(issue["title"], "Voice notes");
    assert_eq!(issue["labels"][0]["name"], "ai-feature");
    let body = issue["body"].as_str().unwrap();
    assert!(body.starts_with(V2.trim_end()), "{body}");
    assert!(body.contains(&format!("\"spec_id\":\"{id}\"")) && body.contains("\"version\":2"));
    let meta = p.meta("candybar", &id);
    assert_eq!(meta["status"], "filed");
    assert_eq!(meta["issue"]["url"], url_out.trim());
    assert_eq!(meta["issue"]["number"], 1);
    assert_eq!(meta["issue"]["version"], 2);
    let list = p.ok(&["list"]);
    assert!(
        list.contains(&id) && list.contains("filed") && list.contains(url_out.trim()),
        "{list}"
    );
    // Filing again files nothing new.
    assert_eq!(p.ok(&["issue", &id]).trim(), url_out.trim());
    assert_eq!(gh.issues().len(), 1);

    // The platform heard every step, the last with the issue's URL.
    let bodies = take_messages(&url, &queue, 4, Duration::from_secs(10));
    assert_eq!(
        event_types(&bodies),
        [
            "sentra.spec.created",
            "sentra.spec.versioned",
            "sentra.spec.approved",
            "sentra.issue.created"
        ]
    );
    let issued: Value = serde_json::from_slice(&bodies[3]).unwrap();
    assert_eq!(issued["payload"]["url"], url_out.trim());
    assert_eq!(issued["payload"]["spec_id"], id.as_str());
    assert_eq!(issued["payload"]["version"], 2);
}

#[test]
fn github_refusals_leave_the_spec_approved_to_file_again() {
    let gh = GitHub::start();
    let p = Project::new()
        .with("CANDYBAR_GITHUB_API", &gh.api)
        .with("CANDYBAR_GITHUB_REPO", github::REPO);
    let id = new_spec(&p, V1);
    p.ok(&["approve", &id]);

    let attempt = |token: &str, extra: &[&str]| {
        let mut args = vec!["spec", "issue", id.as_str()];
        args.extend_from_slice(extra);
        let mut env: Vec<(&str, &str)> = p
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.push(("CANDYBAR_GITHUB_TOKEN", token));
        let (code, out, err) = run_env(&args, &env);
        assert!(
            token.is_empty() || !(err.contains(token) || out.contains(token)),
            "{err}"
        );
        (code, err)
    };
    let still_approved = |why: &str| {
        let meta = p.meta("candybar", &id);
        assert_eq!(meta["status"], "approved", "{why}");
        assert!(meta["issue"].is_null());
        assert!(
            meta["last_error"].as_str().is_some_and(|e| e.contains(why)),
            "{meta}"
        );
    };

    // No token at all.
    let (code, err) = attempt("", &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("candybar secret set github-token"), "{err}");
    // A token GitHub does not know.
    let (code, err) = attempt("ghp_wrong_token_abcdef", &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("401 Bad credentials"), "{err}");
    assert!(err.contains("stays approved and not filed"), "{err}");
    still_approved("401");
    // A repository it cannot see.
    let (code, err) = attempt(github::TOKEN, &["--repo", "sentra/elsewhere"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no repository sentra/elsewhere"), "{err}");
    // A token that may read but not write.
    gh.set_mode(Mode::ReadOnly);
    let (_, err) = attempt(github::TOKEN, &[]);
    assert!(
        err.contains("403 Resource not accessible") && err.contains("Issues: write"),
        "{err}"
    );
    // The label cannot be made (422, with GitHub's details).
    gh.set_mode(Mode::LabelRefused);
    let (_, err) = attempt(github::TOKEN, &[]);
    assert!(
        err.contains("422 Validation Failed: Label color invalid"),
        "{err}"
    );
    still_approved("422");
    // The rate limit: when it lifts.
    gh.set_mode(Mode::RateLimited);
    let (_, err) = attempt(github::TOKEN, &[]);
    assert!(
        err.contains("rate limit") && err.contains("2030-01-01T00:00:00"),
        "{err}"
    );
    assert!(gh.issues().is_empty());
    // GitHub takes it again: filed, the error gone.
    gh.set_mode(Mode::Normal);
    let (code, err) = attempt(github::TOKEN, &[]);
    assert_eq!(code, Some(0), "{err}");
    let meta = p.meta("candybar", &id);
    assert_eq!(meta["status"], "filed");
    assert!(meta["last_error"].is_null());
    assert_eq!(gh.issues().len(), 1);

    // A spec longer than an issue may be is refused before anything is sent.
    let long = format!("# Huge\n{}", "word ".repeat(20_000));
    let big = new_spec(&p, &long);
    p.ok(&["approve", &big]);
    let sent = gh.requests().len();
    let (code, _, err) = p
        .with("CANDYBAR_GITHUB_TOKEN", github::TOKEN)
        .run(&["spec", "issue", &big]);
    assert_eq!(code, Some(2));
    assert!(err.contains("GitHub takes at most 65536"), "{err}");
    assert_eq!(gh.requests().len(), sent);
}

#[test]
fn bad_input_is_refused_in_words_and_nothing_is_lost() {
    let p = Project::new();
    let f = p.file("ok.md", V1);
    // A project name that would leave the specs directory.
    for bad in ["../escape", "a/b", ".hidden"] {
        let (code, _, err) = p.run(&["spec", "new", "--project", bad, "--from", path_str(&f)]);
        assert_eq!(code, Some(2), "{bad}");
        assert!(err.contains("cannot be used"), "{bad}: {err}");
    }
    assert!(!p.dir.path().join(".sentra/escape").exists());
    assert!(!p.dir.path().join(".sentra/specs/a").exists());
    // Not text, empty, too big.
    let binary = p.sessions.path().join("bin");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x81]).unwrap();
    let (code, _, err) = p.run(&["spec", "new", "--from", path_str(&binary)]);
    assert_eq!(code, Some(2));
    assert!(err.contains("not text"), "{err}");
    let empty = p.file("empty.md", "  \n\n");
    let (code, _, err) = p.run(&["spec", "new", "--from", path_str(&empty)]);
    assert_eq!(code, Some(2));
    assert!(err.contains("empty"), "{err}");
    let huge = p.file("huge.md", &"x".repeat(9 << 20));
    let (code, _, err) = p.run(&["spec", "new", "--from", path_str(&huge)]);
    assert_eq!(code, Some(2));
    assert!(err.contains("kept up to"), "{err}");
    // A 1 MB spec is kept whole.
    let mega = format!("# Big one\n{}\n", "a line of the spec\n".repeat(55_000));
    let id = new_spec(&p, &mega);
    assert_eq!(p.ok(&["show", &id]), mega);

    // A meta.json broken by hand: said, and the other specs still listed.
    let other = new_spec(&p, V2);
    let broken = p.spec_dir("candybar", &other).join("meta.json");
    std::fs::write(&broken, "{ not json").unwrap();
    let (code, out, err) = p.run(&["spec", "list"]);
    assert_eq!(code, Some(0));
    assert!(out.contains(&id), "{out}");
    assert!(err.contains("does not read"), "{err}");
    // One written by a newer candybar: said so.
    std::fs::write(
        &broken,
        r#"{"format": 9, "id": "x", "title": "t", "project": "candybar", "created": "", "status": "draft", "versions": []}"#,
    )
    .unwrap();
    let (_, _, err) = p.run(&["spec", "show", &other]);
    assert!(
        err.contains("newer candybar") && err.contains("format 9"),
        "{err}"
    );
    // No such spec, no such version.
    let (code, _, err) = p.run(&["spec", "show", "nothing-like-it"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no spec \"nothing-like-it\""), "{err}");
    let (_, _, err) = p.run(&["spec", "show", &id, "--version", "7"]);
    assert!(err.contains("has no version 7 (it has v1)"), "{err}");
    // Filing needs a repository.
    p.ok(&["approve", &id]);
    let (code, _, err) = p.run(&["spec", "issue", &id]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--repo OWNER/NAME"), "{err}");
}

#[test]
fn two_writers_never_overwrite_each_other_and_edits_on_disk_are_read() {
    let p = Project::new();
    let id = new_spec(&p, V1);
    let files: Vec<PathBuf> = (0..8)
        .map(|i| p.file(&format!("w{i}.md"), &format!("# Voice notes\nwriter {i}\n")))
        .collect();
    let env: Vec<(String, String)> = p.env.clone();
    let writers: Vec<_> = files
        .iter()
        .map(|f| {
            let (f, id, env) = (f.clone(), id.clone(), env.clone());
            std::thread::Builder::new()
                .name("writer".into())
                .spawn(move || {
                    let env: Vec<(&str, &str)> =
                        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    run_env(&["spec", "revise", &id, "--from", path_str(&f)], &env)
                })
                .unwrap()
        })
        .collect();
    for w in writers {
        let (code, _, err) = w.join().unwrap();
        assert_eq!(code, Some(0), "{err}");
    }
    let meta = p.meta("candybar", &id);
    let versions: Vec<u64> = meta["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, (1..=9).collect::<Vec<_>>());
    let mut writers_seen: Vec<String> = (2..=9)
        .map(|n| p.ok(&["show", &id, "--version", &n.to_string()]))
        .collect();
    writers_seen.sort();
    writers_seen.dedup();
    assert_eq!(writers_seen.len(), 8, "a version was overwritten");

    // A version written by hand (another editor, git) is a version.
    let dir = p.spec_dir("candybar", &id);
    std::fs::write(dir.join("v10.md"), "# Voice notes\nby hand\n").unwrap();
    assert_eq!(p.ok(&["show", &id]), "# Voice notes\nby hand\n");
    let list = p.ok(&["list"]);
    assert!(list.contains("v10"), "{list}");
    assert!(Path::new(&dir.join("v10.md")).exists());
}
