//! `candybar asr models`: the catalogue, `list`, `add`, `remove`, and `pull` — a download with
//! progress, resumed after it breaks, checked against its sum. Hugging Face cannot be reached
//! from the test machines, so the server is a local stand-in (plain HTTP/1.1 with range
//! requests, able to break a download mid-way); the file it serves is the real Whisper model.

// Helpers outside `#[test]` functions: a failed step panics with its message.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use support::{path_str, run_env, test_model};

/// Serves `file` at any path; the first response stops after `break_after` bytes when set.
/// Returns its address and the `Range` headers it was sent.
fn file_server(file: &Path, break_after: Option<usize>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let body = Arc::new(std::fs::read(file).unwrap());
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let seen = ranges.clone();
    let broke = Arc::new(AtomicBool::new(break_after.is_none()));
    std::thread::Builder::new()
        .name("file-server".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut start = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                        seen.lock().push(v.trim().to_owned());
                        start = v.trim().trim_end_matches('-').parse().unwrap_or(0);
                    }
                }
                let rest = &body[start.min(body.len())..];
                let head = if start > 0 {
                    format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\nConnection: close\r\n\r\n",
                        rest.len(),
                        body.len() - 1,
                        body.len()
                    )
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        rest.len()
                    )
                };
                let _ = conn.write_all(head.as_bytes());
                let cut = match break_after {
                    Some(n) if !broke.swap(true, Ordering::SeqCst) => n.min(rest.len()),
                    _ => rest.len(),
                };
                let _ = conn.write_all(&rest[..cut]);
            }
        })
        .unwrap();
    (addr, ranges)
}

fn sha256(file: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

#[test]
fn a_pull_that_breaks_is_resumed_checked_listed_and_removed() {
    let model = test_model();
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let env = [("CANDYBAR_MODEL_DIR", path_str(&models))];
    let (addr, ranges) = file_server(&model, Some(30_000_000));
    let url = format!("http://{addr}/ggml-tiny.en.bin");
    let sum = sha256(&model);

    // The connection drops after 30 MB: said, and the part is kept.
    let (code, _, err) = run_env(&["asr", "models", "pull", &url, "--sha256", &sum], &env);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("broke off after 30.0 MB of 77.7 MB"), "{err}");
    assert!(err.contains("the next pull resumes there"), "{err}");
    let part = models.join("ggml-tiny.en.bin.part");
    assert_eq!(std::fs::metadata(&part).unwrap().len(), 30_000_000);

    // The next pull asks for the rest only, shows its progress, checks the sum.
    let (code, out, err) = run_env(&["asr", "models", "pull", &url, "--sha256", &sum], &env);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(*ranges.lock(), ["30000000-"]);
    assert!(err.contains("77.7 MB (100 %)"), "{err}");
    let installed = models.join("ggml-tiny.en.bin");
    assert_eq!(out.trim(), path_str(&installed));
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(&model).unwrap()
    );
    assert!(!part.exists());

    let (code, out, _) = run_env(&["asr", "models", "list"], &env);
    assert_eq!(code, Some(0));
    let line = out.lines().find(|l| l.contains("tiny.en ")).unwrap();
    assert!(
        line.contains("77.7 MB") && line.contains("English only") && line.contains("tiny (f16)"),
        "{out}"
    );
    assert!(
        out.contains("large-v3-turbo"),
        "the catalogue is listed: {out}"
    );
    // The model dir's model is found by name.
    let (code, _, err) = run_env(
        &[
            "asr",
            "transcribe",
            "--model",
            "tiny.en",
            support::path_str(&support::repo().join("tests/fixtures/speech/utt01.wav")),
        ],
        &env,
    );
    assert_eq!(code, Some(0), "{err}");

    let (code, _, err) = run_env(&["asr", "models", "remove", "tiny.en"], &env);
    assert_eq!(code, Some(0), "{err}");
    assert!(!installed.exists());
    let (code, _, err) = run_env(&["asr", "models", "remove", "tiny.en"], &env);
    assert_eq!(code, Some(2));
    assert!(err.contains("no model 'tiny.en'"), "{err}");
}

#[test]
fn wrong_sums_unknown_names_and_files_that_are_not_models_are_refused() {
    let model = test_model();
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let env = [("CANDYBAR_MODEL_DIR", path_str(&models))];
    let (addr, _) = file_server(&model, None);

    // A catalogue name from a mirror that serves another file (this tiny.en is a conversion, not
    // whisper.cpp's own): refused by whisper.cpp's published SHA-1, nothing left behind.
    let (code, _, err) = run_env(
        &[
            "asr",
            "models",
            "pull",
            "tiny.en",
            "--from",
            &format!("http://{addr}"),
        ],
        &env,
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("SHA-1 of the download is")
            && err.contains("not c78c86eb1a8faa21b369bcd33207cc90d64ae9df"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&models).unwrap().count(), 0);

    let (code, _, err) = run_env(&["asr", "models", "pull", "huge"], &env);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("'huge' is not in the catalogue") && err.contains("base.en"),
        "{err}"
    );
    let (code, _, err) = run_env(
        &["asr", "models", "pull", &format!("http://{addr}/x.bin")],
        &env,
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("--sha1 HEX or --sha256 HEX"), "{err}");

    let junk = dir.path().join("notes.bin");
    std::fs::write(&junk, "these are my notes, not a model".repeat(10)).unwrap();
    let (code, _, err) = run_env(&["asr", "models", "add", path_str(&junk)], &env);
    assert_eq!(code, Some(2));
    assert!(err.contains("is not a Whisper ggml model"), "{err}");
    let (code, out, err) = run_env(
        &["asr", "models", "add", path_str(&model), "--name", "mine"],
        &env,
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.trim().ends_with("ggml-mine.bin"), "{out}");
}

/// `models quantize` makes a `Q8_0` copy of an f16 model here, offline: about half the size, and
/// whisper.cpp reads it and transcribes as well. What is not an f16/f32 model is refused with
/// nothing left behind: a file that is no model, one cut short, one quantized already.
#[test]
fn a_model_is_quantized_here_and_transcribes_as_well() {
    let model = test_model();
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let env = [("CANDYBAR_MODEL_DIR", path_str(&models))];
    let (code, out, err) = run_env(&["asr", "models", "quantize", path_str(&model)], &env);
    assert_eq!(code, Some(0), "{err}");
    let q8 = models.join("ggml-tiny.en-q8_0.bin");
    assert_eq!(out.trim(), path_str(&q8));
    assert!(
        err.contains("weight matrices quantized") && err.contains("77.7 MB -> "),
        "{err}"
    );
    let (before, after) = (
        std::fs::metadata(&model).unwrap().len(),
        std::fs::metadata(&q8).unwrap().len(),
    );
    assert!(
        after * 10 < before * 6 && after * 10 > before * 4,
        "{before} -> {after} bytes"
    );
    let (code, out, _) = run_env(&["asr", "models", "list"], &env);
    assert_eq!(code, Some(0));
    let line = out.lines().find(|l| l.contains("tiny.en-q8_0 ")).unwrap();
    assert!(
        line.contains("English only") && line.contains("tiny (q8_0)"),
        "{out}"
    );
    // Every fixture, scored against its script, as the f16 model does (17 % over the five).
    let clips: Vec<String> = (1..=5)
        .map(|n| {
            path_str(&support::repo().join(format!("tests/fixtures/speech/utt{n:02}.wav")))
                .to_owned()
        })
        .collect();
    let mut args = vec!["asr", "transcribe", "--model", "tiny.en-q8_0", "--score"];
    args.extend(clips.iter().map(String::as_str));
    let (code, out, err) = run_env(&args, &env);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("Please schedule a meeting"), "{out}");
    let rate: f64 = err
        .split("word error rate ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no word error rate in: {err}"));
    assert!(rate <= 20.0, "{rate} % — {out}");

    // Refused, nothing left: quantized already, not a model, cut short.
    let (code, _, err) = run_env(&["asr", "models", "quantize", "tiny.en-q8_0"], &env);
    assert_eq!(code, Some(2));
    assert!(err.contains("it is quantized already"), "{err}");
    let junk = dir.path().join("ggml-notes.bin");
    std::fs::write(&junk, "these are my notes, not a model".repeat(10)).unwrap();
    let (code, _, err) = run_env(&["asr", "models", "quantize", path_str(&junk)], &env);
    assert_eq!(code, Some(2));
    assert!(err.contains("is not a Whisper ggml model"), "{err}");
    let cut = dir.path().join("ggml-cut.bin");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (code, _, err) = run_env(&["asr", "models", "quantize", path_str(&cut)], &env);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("is not a Whisper ggml model") && err.contains("cut short"),
        "{err}"
    );
    let mut left: Vec<_> = std::fs::read_dir(&models)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["ggml-tiny.en-q8_0.bin"]);
}
