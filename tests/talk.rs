//! Talking a feature through, with every part real: the running window under Xvfb, a virtual
//! microphone and speakers (a private PulseAudio), the built-in Whisper server, a local LLM
//! server (llama.cpp with SmolLM2-135M) and espeak-ng. Say a feature request, hear a spoken reply,
//! say "I'm done", get spec v1 — and the same from the command line, with the faults a person
//! meets (no architect, the architect down, no espeak-ng) said in words.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use candybar_specs::chat::{ChatConfig, ChatError, Message, Role, complete};
use serde_json::Value;
use support::llm::LlmServer;
use support::{Candybar, Pulse, Xvfb, asr_server, free_port, model_lock, path_str, repo, run_env};

/// "I'm done." spoken by espeak-ng (a different voice than the fixtures': a second speaker).
fn done_wav(dir: &Path) -> PathBuf {
    let wav = dir.join("done.wav");
    let ok = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&wav)
        .arg("Okay, I'm done.")
        .status()
        .expect("these tests need espeak-ng: sudo apt-get install espeak-ng");
    assert!(ok.success());
    wav
}

/// The loudest 100 ms of a 16 kHz s16le recording (RMS, 0..1), and how many of its 100 ms
/// windows are louder than `floor`.
fn loudness(raw: &Path, floor: f64) -> (f64, usize) {
    let bytes = std::fs::read(raw).unwrap_or_default();
    let samples: Vec<f64> = bytes
        .chunks_exact(2)
        .map(|b| f64::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0)
        .collect();
    let rms: Vec<f64> = samples
        .chunks(1600)
        .map(|w| (w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64).sqrt())
        .collect();
    (
        rms.iter().copied().fold(0.0, f64::max),
        rms.iter().filter(|r| **r > floor).count(),
    )
}

/// SmolLM2-135M does not stop writing a spec by itself: at the default 2,000 tokens a test that
/// runs beside others waited minutes for it (CI once gave up after 300 s). Specs of 256 tokens
/// say what the tests check.
const SMALL_SPECS: &str = "spec_max_tokens = 256\n";

/// A config file with [`SMALL_SPECS`] and nothing else.
fn small_specs_config(dir: &Path) -> PathBuf {
    let path = dir.join("small-specs.toml");
    std::fs::write(&path, format!("[architect]\n{SMALL_SPECS}")).unwrap();
    path
}

fn specs_in(project_dir: &Path, project: &str) -> Vec<PathBuf> {
    std::fs::read_dir(project_dir.join(".sentra/specs").join(project))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
#[allow(clippy::too_many_lines)] // one person's conversation, told in order
fn the_window_hears_a_feature_answers_aloud_and_writes_spec_v1() {
    let _model = model_lock();
    let x = Xvfb::start();
    let pulse = Pulse::start();
    let (_asr, addr) = asr_server(&[]);
    let llm = LlmServer::start();
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("CLAUDE.md"),
        "This project is candybar, a desktop app for an agent platform.\n",
    )
    .unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[architect]\nurl = \"{}\"\nspeech = \"espeak-ng\"\n{SMALL_SPECS}\n[specs]\ndir = \"{}\"\nproject = \"demo\"\n",
            llm.url,
            path_str(&project)
        ),
    )
    .unwrap();
    let pulse_server = pulse.env().1;
    let socket = dir.path().join("candybar.sock");
    let history = dir.path().join("history.sqlite3");
    let server = format!("ws://{addr}/asr");
    let env = vec![
        ("DISPLAY", x.display.as_str()),
        ("PULSE_SERVER", pulse_server.as_str()),
        ("CANDYBAR_SOCKET", path_str(&socket)),
        ("CANDYBAR_HISTORY", path_str(&history)),
        ("CANDYBAR_ASR_SERVER", server.as_str()),
        ("XDG_DATA_HOME", path_str(dir.path())),
    ];
    let app = Candybar::spawn_env(
        &[
            "--demo",
            "--no-tray",
            "--view",
            "conversation",
            "--config",
            path_str(&config),
            "--exit-after",
            "240",
        ],
        &env,
    );
    let ask = |what: &str| {
        let (_, out, err) = run_env(&["dictate", what], &env);
        format!("{}{err}", out.trim())
    };
    // The Conversation view is shown: the microphone's words go to the architect.
    let end = Instant::now() + Duration::from_secs(30);
    while ask("--status") != "idle; the microphone talks to the architect" {
        assert!(
            Instant::now() < end,
            "the Conversation view never took the microphone: {}\n{}",
            ask("--status"),
            app.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let speakers = dir.path().join("speakers.raw");
    let mut recorder = pulse.record_speakers(&speakers);
    let say = |wav: &Path| {
        assert!(ask("--start").starts_with("recording"));
        let end = Instant::now() + Duration::from_secs(5);
        while !ask("--status").starts_with("recording") {
            assert!(Instant::now() < end, "no audio from the microphone");
            std::thread::sleep(Duration::from_millis(20));
        }
        pulse.play(wav);
        std::thread::sleep(Duration::from_millis(300));
        ask("--stop");
    };

    // 1. The feature, spoken into the microphone: the architect answers, aloud.
    say(&repo().join("tests/fixtures/speech/utt01.wav"));
    let end = Instant::now() + Duration::from_mins(2);
    loop {
        let (peak, loud) = loudness(&speakers, 0.02);
        if loud >= 5 {
            assert!(peak > 0.05, "{peak}");
            break;
        }
        assert!(
            Instant::now() < end,
            "the reply was never heard from the speakers\n{}",
            app.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Nothing was typed or kept as dictation: the words went to the conversation.
    let (_, kept, _) = run_env(&["history", "list", "--json"], &env);
    assert!(!kept.contains("meeting"), "{kept}");

    // 2. "I'm done": the spec is written (talking stops the voice first).
    say(&done_wav(dir.path()));
    let end = Instant::now() + Duration::from_mins(3);
    let spec_dir = loop {
        if let Some(d) = specs_in(&project, "demo").pop()
            && d.join("meta.json").exists()
        {
            break d;
        }
        assert!(
            Instant::now() < end,
            "no spec was written\n{}",
            app.stderr()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let v1 = std::fs::read_to_string(spec_dir.join("v1.md")).unwrap();
    assert!(v1.trim().len() > 20, "{v1}");
    let meta: Value =
        serde_json::from_slice(&std::fs::read(spec_dir.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["status"], "draft");
    assert_eq!(meta["project"], "demo");
    let conversation = meta["conversation"].as_str().unwrap().to_owned();

    // The conversation is kept: the person's words as Whisper heard them, the replies timed.
    let db = dir.path().join("candybar/conversations.sqlite3");
    let (code, shown, err) = run_env(
        &[
            "talk",
            "show",
            &conversation,
            "--json",
            "--conversations",
            path_str(&db),
        ],
        &env,
    );
    assert_eq!(code, Some(0), "{err}");
    let shown: Value = serde_json::from_str(&shown).unwrap();
    let turns = shown["turns"].as_array().unwrap();
    let first = turns[0]["text"].as_str().unwrap().to_lowercase();
    assert!(
        first.contains("meeting") && first.contains("design"),
        "{first}"
    );
    assert!(turns[0]["asr_ms"].as_u64().is_some());
    let reply = &turns[1];
    assert_eq!(reply["role"], "assistant");
    let first_token = reply["first_token_ms"].as_u64().unwrap();
    let first_audio = reply["first_audio_ms"].as_u64().unwrap();
    assert!(first_token <= first_audio, "{reply}");
    assert_eq!(shown["conversation"]["spec_id"], meta["id"]);
    let _ = recorder.kill();
    let _ = recorder.wait();
    drop(app);
}

#[test]
#[allow(clippy::too_many_lines)] // the command line's turns and faults, told in order
fn the_command_line_talks_from_files_and_says_what_goes_wrong() {
    let _model = model_lock();
    let (_asr, addr) = asr_server(&[]);
    let llm = LlmServer::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("conversations.sqlite3");
    let server = format!("ws://{addr}/asr");
    let config = small_specs_config(dir.path());
    let talk = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec![
            "talk",
            "--config",
            path_str(&config),
            "--dir",
            path_str(dir.path()),
            "--project",
            "cli",
            "--server",
            &server,
            "--conversations",
            path_str(&db),
        ];
        args.extend_from_slice(extra);
        run_env(&args, env)
    };
    // Spoken turns from files, replies not spoken: one JSON object per event.
    let done = done_wav(dir.path());
    let (code, out, err) = talk(
        &[
            "--architect",
            &llm.url,
            "--speech",
            "off",
            "--json",
            "--wav",
            path_str(&repo().join("tests/fixtures/speech/utt02.wav")),
            "--wav",
            path_str(&done),
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{err}");
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(kinds, ["heard", "reply", "heard", "reply", "spec"], "{out}");
    assert!(
        events[0]["text"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("deployment"),
        "{out}"
    );
    assert!(events[1]["first_token_ms"].as_u64().is_some(), "{out}");
    assert_eq!(events[4]["version"], 1);
    let id = events[4]["id"].as_str().unwrap();
    assert!(
        dir.path()
            .join(".sentra/specs/cli")
            .join(id)
            .join("v1.md")
            .exists()
    );
    let (_, list, _) = run_env(
        &[
            "talk",
            "list",
            "--search",
            "deployment",
            "--conversations",
            path_str(&db),
        ],
        &[],
    );
    assert!(list.contains(&format!("→ spec {id}")), "{list}");

    // No architect configured: what to set, before anything is heard.
    let (code, _, err) = talk(&["--say", "hello"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("[architect] url"), "{err}");
    // The architect down: said, and the words are kept for the next try.
    let down = format!("http://127.0.0.1:{}/v1", free_port());
    let (code, _, err) = talk(
        &["--architect", &down, "--speech", "off", "--say", "hello"],
        &[],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot reach the architect"), "{err}");
    // No espeak-ng: said once, with what to install; the conversation goes on.
    let (code, out, err) = talk(
        &[
            "--architect",
            &llm.url,
            "--speech",
            "espeak-ng",
            "--say",
            "Say hi.",
            "--say",
            "I'm done",
        ],
        &[("PATH", "/nonexistent")],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("apt-get install espeak-ng"), "{err}");
    assert!(out.contains("spec "), "{out}");
}

#[test]
fn absurd_token_limits_in_the_config_are_refused_before_anything_is_heard() {
    let dir = tempfile::tempdir().unwrap();
    let absurd = dir.path().join("absurd.toml");
    let down = format!("http://127.0.0.1:{}/v1", free_port());
    for (line, said) in [
        (
            "spec_max_tokens = 0",
            "[architect] spec_max_tokens = 0 is out of range",
        ),
        (
            "reply_max_tokens = 4000000",
            "[architect] reply_max_tokens = 4000000 is out of range",
        ),
        ("reply_max_tokens = -3", "reply_max_tokens"),
    ] {
        std::fs::write(&absurd, format!("[architect]\n{line}\n")).unwrap();
        let (code, _, err) = run_env(
            &[
                "talk",
                "--config",
                path_str(&absurd),
                "--architect",
                &down,
                "--dir",
                path_str(dir.path()),
                "--say",
                "hello",
            ],
            &[],
        );
        assert_eq!(code, Some(2), "{line}: {err}");
        assert!(err.contains(said), "{line}: {err}");
        assert!(!err.contains("cannot reach"), "{line}: {err}");
    }
}

fn chat_ask(text: &str) -> Vec<Message> {
    vec![
        Message::new(Role::System, "You are a helpful software architect."),
        Message::new(Role::User, text),
    ]
}

/// The architect's chat client against the real local model: streamed in pieces, or in one.
#[test]
fn a_real_local_model_answers_in_pieces_and_in_one() {
    let server = LlmServer::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    let mut cfg = ChatConfig::new(&server.url, "smollm2");
    cfg.max_tokens = Some(48);
    cfg.temperature = Some(0.0);
    let mut pieces = Vec::new();
    let reply = rt
        .block_on(complete(
            &http,
            &cfg,
            &chat_ask("Name one thing a voice notes feature needs."),
            |p| pieces.push(p.to_owned()),
        ))
        .unwrap();
    assert!(pieces.len() > 3, "streamed in {} pieces", pieces.len());
    assert_eq!(pieces.concat(), reply.text);
    assert!(
        reply.text.split_whitespace().count() >= 3,
        "{:?}",
        reply.text
    );
    let first = reply.first_token.unwrap();
    assert!(first < reply.total, "{first:?} vs {:?}", reply.total);
    assert!(matches!(
        reply.finish_reason.as_deref(),
        Some("stop" | "length")
    ));

    // The same server, not streamed: one piece, the same kind of answer.
    cfg.stream = false;
    let mut calls = 0;
    let reply = rt
        .block_on(complete(&http, &cfg, &chat_ask("Say hello."), |_| {
            calls += 1;
        }))
        .unwrap();
    assert_eq!(calls, 1);
    assert!(!reply.text.trim().is_empty());

    // The server gone: said so, with where it was looked for.
    drop(server);
    let e = rt
        .block_on(complete(&http, &cfg, &chat_ask("Hello?"), |_| {}))
        .unwrap_err();
    assert!(
        matches!(&e, ChatError::Unreachable { url, .. } if url == &cfg.url),
        "{e}"
    );
    assert!(e.to_string().contains("start it, or set [architect] url"));
}

/// RMS of the 16 kHz s16le recording between `from` and `to` after its start.
fn rms_between(raw: &Path, from: Duration, to: Duration) -> f64 {
    let bytes = std::fs::read(raw).unwrap_or_default();
    let at = |d: Duration| ((d.as_secs_f64() * 16_000.0) as usize * 2).min(bytes.len());
    let part = &bytes[at(from)..at(to)];
    let n = (part.len() / 2).max(1) as f64;
    let sum: f64 = part
        .chunks_exact(2)
        .map(|b| (f64::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0).powi(2))
        .sum();
    (sum / n).sqrt()
}

#[test]
#[allow(clippy::too_many_lines)] // one conversation, told in order
fn talking_again_silences_the_reply_at_once() {
    use std::io::Write as _;
    let _model = model_lock();
    let pulse = Pulse::start();
    let (_asr, addr) = asr_server(&[]);
    let llm = LlmServer::start();
    let dir = tempfile::tempdir().unwrap();
    let server = format!("ws://{addr}/asr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_candybar"))
        .args([
            "talk",
            "--architect",
            &llm.url,
            "--speech",
            "espeak-ng",
            "--server",
            &server,
        ])
        .args(["--dir", path_str(dir.path()), "--project", "barge"])
        .arg("--conversations")
        .arg(dir.path().join("c.sqlite3"))
        .env("PULSE_SERVER", pulse.env().1)
        .env("CANDYBAR_NO_KEYCHAIN", "1")
        .env("CANDYBAR_CONFIG", small_specs_config(dir.path()))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let said = || std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
    let mut stdin = child.stdin.take().unwrap();
    let speakers = dir.path().join("speakers.raw");
    let mut recorder = pulse.record_speakers(&speakers);
    // How much the recorder has written: the recording's own clock.
    let written = || {
        let len = std::fs::metadata(&speakers).map_or(0, |m| m.len());
        Duration::from_secs_f64(len as f64 / 32_000.0)
    };
    // Enter, speak, Enter: a turn from the microphone.
    stdin.write_all(b"\n").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    pulse.play(&repo().join("tests/fixtures/speech/utt03.wav"));
    std::thread::sleep(Duration::from_millis(300));
    stdin.write_all(b"\n").unwrap();
    // The reply is heard…
    let end = Instant::now() + Duration::from_mins(2);
    let heard_at = loop {
        let now = written();
        if let Some(before) = now.checked_sub(Duration::from_millis(400))
            && rms_between(&speakers, before, now) > 0.01
        {
            break now;
        }
        assert!(
            Instant::now() < end,
            "the reply was never heard\n{}",
            said()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // …and the person starts talking again while it speaks: the voice stops.
    std::thread::sleep(Duration::from_millis(600));
    let barge = written();
    assert!(
        rms_between(
            &speakers,
            barge.saturating_sub(Duration::from_millis(500)),
            barge
        ) > 0.01,
        "the reply was over before the person spoke again (heard at {heard_at:?})\n{}",
        said()
    );
    stdin.write_all(b"\n").unwrap();
    while written() < barge + Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let quiet = rms_between(
        &speakers,
        barge + Duration::from_millis(500),
        barge + Duration::from_secs(2),
    );
    let profile: Vec<String> = (0..25)
        .map(|k| {
            let at =
                barge.saturating_sub(Duration::from_millis(500)) + Duration::from_millis(100 * k);
            format!(
                "{:.3}",
                rms_between(&speakers, at, at + Duration::from_millis(100))
            )
        })
        .collect();
    assert!(
        quiet < 0.003,
        "still speaking after the person talked: RMS {quiet} (heard at {heard_at:?}, barge at \
         {barge:?}; per 100 ms from 0.5 s before: {profile:?})\n{}",
        said()
    );
    // Enter ends the empty turn; the end of input ends the conversation.
    stdin.write_all(b"\n").unwrap();
    drop(stdin);
    let end = Instant::now() + Duration::from_mins(1);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < end,
            "talk did not end with its input\n{}",
            said()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = recorder.kill();
    let _ = recorder.wait();
}

/// What the speech stand-in was asked: each request's JSON and `Authorization`.
type Asked = std::sync::Arc<parking_lot::Mutex<Vec<(Value, String)>>>;

/// A stand-in for an OpenAI-compatible speech API (`POST /v1/audio/speech`; no such server can
/// be had from the package registries here): it answers with espeak-ng's WAV of the input, or
/// with `fail` as an HTTP status, and records each request's JSON and `Authorization`.
fn speech_stand_in(fail: Option<u16>) -> (String, Asked, tokio::runtime::Runtime) {
    use axum::response::IntoResponse as _;
    let asked = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = asked.clone();
    let app = axum::Router::new().route(
        "/v1/audio/speech",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let seen = seen.clone();
                async move {
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let auth = headers
                        .get("authorization")
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    seen.lock().push((v.clone(), auth));
                    if let Some(status) = fail {
                        return (
                            axum::http::StatusCode::from_u16(status).unwrap(),
                            "the voice model is not loaded",
                        )
                            .into_response();
                    }
                    let wav = tempfile::NamedTempFile::new().unwrap();
                    let input = v["input"].as_str().unwrap_or("nothing").to_owned();
                    let ok = Command::new("espeak-ng")
                        .arg("-w")
                        .arg(wav.path())
                        .arg(input)
                        .status()
                        .expect("these tests need espeak-ng: sudo apt-get install espeak-ng");
                    assert!(ok.success());
                    (
                        [("content-type", "audio/wav")],
                        std::fs::read(wav.path()).unwrap(),
                    )
                        .into_response()
                }
            },
        ),
    );
    rt.spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), asked, rt)
}

#[test]
fn replies_are_spoken_by_a_speech_api_too_and_its_failure_is_said() {
    let pulse = Pulse::start();
    let llm = LlmServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pulse_server = pulse.env().1;
    let env = [
        ("PULSE_SERVER", pulse_server.as_str()),
        ("CANDYBAR_LLM_KEY", "sk-test-speech"),
    ];
    let config = small_specs_config(dir.path());
    let talk = |speech: &str, project: &str| {
        run_env(
            &[
                "talk",
                "--config",
                path_str(&config),
                "--architect",
                &llm.url,
                "--speech",
                speech,
                "--dir",
                path_str(dir.path()),
                "--project",
                project,
                "--conversations",
                path_str(&dir.path().join("c.sqlite3")),
                "--say",
                "Say hello.",
                "--say",
                "I'm done",
            ],
            &env,
        )
    };
    let (api, asked, _rt) = speech_stand_in(None);
    let speakers = dir.path().join("speakers.raw");
    let mut recorder = pulse.record_speakers(&speakers);
    let (code, out, err) = talk(&api, "api");
    let _ = recorder.kill();
    let _ = recorder.wait();
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("spec "), "{out}");
    let (peak, loud) = loudness(&speakers, 0.02);
    assert!(
        loud >= 3 && peak > 0.05,
        "nothing was heard: {peak} {loud}\n{err}"
    );
    let asked = asked.lock().clone();
    assert!(!asked.is_empty());
    let (first, auth) = &asked[0];
    assert_eq!(first["model"], "tts-1");
    assert_eq!(first["voice"], "alloy");
    assert_eq!(first["response_format"], "wav");
    assert!(!first["input"].as_str().unwrap().is_empty());
    assert_eq!(auth, "Bearer sk-test-speech");
    // A speech API that fails: said, with its answer; the conversation goes on in text.
    let (api, _, _rt) = speech_stand_in(Some(503));
    let (code, out, err) = talk(&api, "failing");
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("spec "), "{out}");
    assert!(
        err.contains("the speech API at http://127.0.0.1:")
            && err.contains("HTTP 503: the voice model is not loaded"),
        "{err}"
    );
    assert!(!err.contains("sk-test-speech"), "{err}");
}
