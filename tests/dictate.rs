//! `candybar dictate` and `candybar history`: the real binary streaming the speech fixtures to
//! the real `candybar asr serve` (real model), keeping transcripts in a real SQLite file, posting
//! to a local webhook and publishing on a real broker. Stand-in WebSocket servers are used only
//! to speak WhisperLiveKit's protocol and to send garbage.

// Helpers outside `#[test]` functions: a failed step panics with its message.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use parking_lot::Mutex;
use serde_json::Value;
use support::{
    Broker, Candybar, asr_server, bind_queue, model_lock, path_str, repo, run, stand_in,
    take_messages, unique,
};
use tokio_tungstenite::tungstenite::Message;

fn fixture(n: usize) -> (String, String) {
    let dir = repo().join("tests/fixtures/speech");
    let wav = dir.join(format!("utt{n:02}.wav"));
    let text = std::fs::read_to_string(dir.join(format!("utt{n:02}.txt"))).unwrap();
    (path_str(&wav).to_owned(), text.trim().to_owned())
}

fn wer(reference: &str, hypothesis: &str) -> (usize, usize) {
    candybar_core::asr::wer::errors(reference, hypothesis)
}

/// The `result` line of `dictate --json`.
fn result_of(lines: &[String]) -> Value {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "result")
        .unwrap_or_else(|| panic!("no result line in {lines:?}"))
}

/// Runs `dictate` to the end and returns (exit code, stdout lines, stderr).
fn dictate(args: &[&str]) -> (Option<i32>, Vec<String>, String) {
    let (code, out, err) = run(&[&["dictate", "--json"], args].concat());
    (code, out.lines().map(str::to_owned).collect(), err)
}

/// What the webhook received: (authorization header, body).
type Posts = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// A local HTTP server that records webhook POSTs and answers 200.
struct Hook {
    addr: SocketAddr,
    got: Posts,
    _rt: tokio::runtime::Runtime,
}

impl Hook {
    fn start_on(addr: &str) -> Self {
        use axum::{Router, http::HeaderMap, routing::post};
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let got: Posts = Arc::default();
        let sink = got.clone();
        let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: String| {
                let sink = sink.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    sink.lock()
                        .push((auth, serde_json::from_str(&body).unwrap_or(Value::Null)));
                    "ok"
                }
            }),
        );
        rt.spawn(async move { axum::serve(listener, app).await });
        Self { addr, got, _rt: rt }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn wait_for(&self, n: usize, timeout: Duration) -> Vec<(Option<String>, Value)> {
        let end = Instant::now() + timeout;
        while self.got.lock().len() < n && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.got.lock().clone()
    }
}

#[test]
fn dictated_speech_is_kept_searchable_and_delivered_to_webhook_and_bus() {
    let _model = model_lock();
    let (_server, addr) = asr_server(&[]);
    let amqp = support::shared_broker_url();
    let exchange = unique("candybar.test.dictate");
    let queue = bind_queue(&amqp, &exchange, "talkytonny.#");
    let canonical = bind_queue(&amqp, &exchange, "transcription.voice.completed");
    let hook = Hook::start_on("127.0.0.1:0");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite3");
    let server = format!("ws://{addr}/asr");
    let (mut errors, mut words) = (0, 0);
    let mut texts = Vec::new();
    for n in 1..=5 {
        let (wav, script) = fixture(n);
        let (code, lines, err) = dictate(&[
            "--wav",
            &wav,
            "--server",
            &server,
            "--history",
            path_str(&db),
            "--webhook",
            &hook.url(),
            "--webhook-token",
            "hook-secret",
            "--bus",
            "--amqp",
            &amqp,
            "--exchange",
            &exchange,
        ]);
        assert_eq!(code, Some(0), "{err}");
        let r = result_of(&lines);
        let text = r["text"].as_str().unwrap().to_owned();
        let (e, w) = wer(&script, &text);
        errors += e;
        words += w;
        assert_eq!(r["protocol"], "candybar");
        assert_eq!(
            r["delivered"], 3,
            "webhook and bus (both events) delivered: {r}"
        );
        assert_eq!(r["pending"], 0);
        // The tokens never reach the output.
        assert!(!err.contains("hook-secret") && !lines.concat().contains("hook-secret"));
        texts.push(text);
    }
    let wer = errors as f64 / words as f64;
    assert!(
        wer <= 0.20,
        "word error rate {wer:.2} over the fixtures: {texts:?}"
    );

    // The history has all five, newest first, and finds them by words.
    let (code, out, err) = run(&["history", "list", "--json", "--history", path_str(&db)]);
    assert_eq!(code, Some(0), "{err}");
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0]["text"].as_str().unwrap(), texts[4]);
    assert_eq!(rows[0]["model"], "ggml-tiny.en");
    assert_eq!(rows[0]["language"], "en", "the server's language is kept");
    let outputs: Vec<&str> = rows[0]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_str().unwrap())
        .collect();
    // The webhook, the configured event and the canonical one.
    assert_eq!(outputs, ["delivered", "delivered", "delivered"]);
    let (code, out, _) = run(&["history", "search", "deploy", "--history", path_str(&db)]);
    assert_eq!(code, Some(0));
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.to_lowercase().contains("deployment"), "{out}");
    let (code, _, err) = run(&["history", "search", "zebra", "--history", path_str(&db)]);
    assert_eq!(code, Some(1));
    assert!(err.contains("nothing in the history matches"), "{err}");
    let (code, csv, _) = run(&[
        "history",
        "export",
        "--format",
        "csv",
        "--history",
        path_str(&db),
    ]);
    assert_eq!(code, Some(0));
    assert_eq!(csv.lines().count(), 6, "{csv}");

    // The webhook got each text, with the bearer token.
    let posts = hook.wait_for(5, Duration::from_secs(5));
    assert_eq!(posts.len(), 5);
    assert_eq!(posts[0].0.as_deref(), Some("Bearer hook-secret"));
    assert_eq!(posts[0].1["text"].as_str().unwrap(), texts[0]);
    assert_eq!(posts[0].1["source"], "candybar");
    bus_got_both_events(&amqp, &queue, &canonical, &texts);
}

/// The bus got talkytonny.transcription.completed for each text, and the canonical
/// transcription.voice.completed.
fn bus_got_both_events(amqp: &str, queue: &str, canonical: &str, texts: &[String]) {
    // The bus got talkytonny.transcription.completed for each.
    let events = take_messages(amqp, queue, 5, Duration::from_secs(10));
    assert_eq!(events.len(), 5);
    let e: Value = serde_json::from_slice(&events[1]).unwrap();
    assert_eq!(e["event_type"], "talkytonny.transcription.completed");
    assert_eq!(e["payload"]["text"].as_str().unwrap(), texts[1]);
    assert!(e["payload"]["duration_seconds"].as_f64().unwrap() > 4.0);
    // And transcription.voice.completed, the platform's canonical shape, for each.
    let events = take_messages(amqp, canonical, 5, Duration::from_secs(10));
    assert_eq!(events.len(), 5);
    let e: Value = serde_json::from_slice(&events[1]).unwrap();
    assert_eq!(e["payload"]["text"].as_str().unwrap(), texts[1]);
    assert_eq!(e["payload"]["source"], "dictation");
    assert_eq!(e["payload"]["audio_metadata"]["language"], "en");
    assert_eq!(e["payload"]["audio_metadata"]["model"], "ggml-tiny.en");
}

#[test]
fn killing_the_server_mid_utterance_loses_no_audio() {
    let _model = model_lock();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let (server, addr) = asr_server(&["--port", &port]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite3");
    let (wav, script) = fixture(2);
    let client = Candybar::spawn(&[
        "dictate",
        "--json",
        "--realtime",
        "--wav",
        &wav,
        "--server",
        &format!("ws://{addr}/asr"),
        "--history",
        path_str(&db),
    ]);
    // Kill the server once it has shown text for the first part of the utterance.
    let first = client.lines(1, Duration::from_secs(10));
    assert!(first[0].contains("state"), "{first:?}");
    let mut seen = first;
    let end = Instant::now() + Duration::from_secs(10);
    let has_text = |l: &String| {
        serde_json::from_str::<Value>(l)
            .is_ok_and(|v| v["type"] == "text" && (v["settled"] != "" || v["tentative"] != ""))
    };
    while !seen.iter().any(has_text) {
        assert!(Instant::now() < end, "no partial text: {seen:?}");
        seen.extend(client.lines(1, Duration::from_secs(10)));
    }
    drop(server); // SIGKILL
    std::thread::sleep(Duration::from_millis(300));
    let (_again, _) = asr_server(&["--port", &port]);
    let mut rest = Vec::new();
    let end = Instant::now() + Duration::from_mins(1);
    while !rest.iter().any(|l: &String| l.contains("\"result\"")) {
        assert!(
            Instant::now() < end,
            "no result after the restart: {rest:?}"
        );
        rest.extend(client.lines(1, Duration::from_mins(1)));
    }
    let (code, err) = client.wait(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        rest.iter().any(|l| l.contains("reconnecting")),
        "the state was shown: {rest:?}"
    );
    let r = result_of(&rest);
    assert!(r["reconnects"].as_u64().unwrap() >= 1, "{r}");
    let text = r["text"].as_str().unwrap();
    let (e, w) = wer(&script, text);
    assert!(
        e as f64 / w as f64 <= 0.20,
        "the final text covers the whole utterance: {text:?} vs {script:?}"
    );
    assert!(r["audio_ms"].as_u64().unwrap() >= 5000, "{r}");
}

#[test]
fn a_webhook_that_is_down_gets_the_transcript_when_it_comes_back() {
    let _model = model_lock();
    let (_server, addr) = asr_server(&[]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite3");
    // A port with nothing listening yet.
    let hook_addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let hook_url = format!("http://{hook_addr}/hook");
    let (wav, _) = fixture(3);
    let (code, lines, err) = dictate(&[
        "--wav",
        &wav,
        "--server",
        &format!("ws://{addr}/asr"),
        "--history",
        path_str(&db),
        "--webhook",
        &hook_url,
        "--deliver-secs",
        "0",
    ]);
    assert_eq!(
        code,
        Some(0),
        "a delivery failure does not fail the dictation: {err}"
    );
    let r = result_of(&lines);
    assert_eq!(
        (r["delivered"].as_u64(), r["pending"].as_u64()),
        (Some(0), Some(1)),
        "{r}"
    );
    let text = r["text"].as_str().unwrap().to_owned();
    let (_, out, _) = run(&["history", "show", "1", "--history", path_str(&db)]);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        shown["text"].as_str().unwrap(),
        text,
        "kept before any delivery"
    );
    assert_eq!(shown["deliveries"][0]["state"], "pending");
    assert!(
        shown["deliveries"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{shown}"
    );

    // The outbox keeps retrying; the webhook comes up a moment later and gets it.
    let deliver = Candybar::spawn(&[
        "history",
        "deliver",
        "--wait-secs",
        "30",
        "--history",
        path_str(&db),
        "--webhook",
        &hook_url,
    ]);
    std::thread::sleep(Duration::from_millis(1500));
    let hook = Hook::start_on(&hook_addr.to_string());
    let posts = hook.wait_for(1, Duration::from_secs(20));
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].1["text"].as_str().unwrap(), text);
    let (code, err) = deliver.wait(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("1 delivered"), "{err}");
    assert!(err.contains("0 still waiting"), "{err}");
}

#[test]
fn a_broker_that_is_down_gets_the_event_when_it_is_back() {
    let _model = model_lock();
    let (_server, addr) = asr_server(&[]);
    let broker = Broker::start();
    let exchange = unique("candybar.test.outbox");
    broker.kill();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite3");
    let (wav, _) = fixture(4);
    let (code, lines, err) = dictate(&[
        "--wav",
        &wav,
        "--server",
        &format!("ws://{addr}/asr"),
        "--history",
        path_str(&db),
        "--bus",
        "--amqp",
        &broker.url(),
        "--exchange",
        &exchange,
        "--deliver-secs",
        "1",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let r = result_of(&lines);
    // The configured event and the canonical one wait.
    assert_eq!(r["pending"], 2, "{r}");
    assert!(
        err.contains("wait in the outbox"),
        "the user is told: {err}"
    );
    let text = r["text"].as_str().unwrap().to_owned();

    broker.restart();
    let queue = bind_queue(
        &broker.url(),
        &exchange,
        "talkytonny.transcription.completed",
    );
    let (code, _, err) = run(&[
        "history",
        "deliver",
        "--history",
        path_str(&db),
        "--bus",
        "--amqp",
        &broker.url(),
        "--exchange",
        &exchange,
    ]);
    assert_eq!(code, Some(0), "{err}");
    let got = take_messages(&broker.url(), &queue, 1, Duration::from_secs(10));
    assert_eq!(got.len(), 1);
    let e: Value = serde_json::from_slice(&got[0]).unwrap();
    assert_eq!(e["payload"]["text"].as_str().unwrap(), text);
}

#[test]
fn the_server_token_is_required_and_never_shown() {
    let _model = model_lock();
    let (_server, addr) = asr_server(&["--token", "sesame-42"]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite3");
    let (wav, _) = fixture(5);
    let server = format!("ws://{addr}/asr");
    let (code, _, err) = dictate(&[
        "--wav",
        &wav,
        "--server",
        &server,
        "--history",
        path_str(&db),
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("refused the token"), "{err}");
    let (code, lines, err) = dictate(&[
        "--wav",
        &wav,
        "--server",
        &server,
        "--history",
        path_str(&db),
        "--token",
        "sesame-42",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        result_of(&lines)["text"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("lazy")
    );
    assert!(!err.contains("sesame") && !lines.concat().contains("sesame"));

    // Kept with `candybar secret set` (no keychain on this machine: a user-only file), the token
    // is used without being given again, and never shown.
    let secrets = dir.path().join("secrets.toml");
    let env = [("CANDYBAR_SECRETS", path_str(&secrets))];
    let mut set = std::process::Command::new(env!("CARGO_BIN_EXE_candybar"))
        .args(["secret", "set", "asr-token"])
        .env("CANDYBAR_NO_KEYCHAIN", "1")
        .envs(env)
        .env_remove("CANDYBAR_ASR_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        writeln!(set.stdin.take().unwrap(), "sesame-42").unwrap();
    }
    let out = set.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("sesame"), "{said}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&secrets).unwrap().permissions(),
    ) & 0o777;
    assert_eq!(
        mode, 0o600,
        "the secrets file must be readable by the user alone"
    );
    let (_, status, _) = support::run_env(&["secret", "status"], &env);
    assert!(
        status.contains("asr-token: ") && !status.contains("sesame"),
        "{status}"
    );
    let (code, out, err) = support::run_env(
        &[
            "dictate",
            "--json",
            "--wav",
            &wav,
            "--server",
            &server,
            "--history",
            path_str(&db),
        ],
        &env,
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.to_lowercase().contains("lazy"), "{out}");
    assert!(!err.contains("sesame") && !out.contains("sesame"));
}

#[test]
fn speaks_whisperlivekit() {
    let received = Arc::new(Mutex::new(0usize));
    let count = received.clone();
    let (url, _rt) = stand_in(move |mut ws| {
        let count = count.clone();
        async move {
            let snapshot = |lines: &[(i64, &str)], buffer: &str| {
                let lines: Vec<Value> = lines
                    .iter()
                    .map(|(speaker, text)| serde_json::json!({"speaker": speaker, "text": text, "beg": "0:00:00", "end": "0:00:01"}))
                    .collect();
                Message::Text(serde_json::json!({"status": "active_transcription", "lines": lines, "buffer_transcription": buffer, "buffer_diarization": "", "remaining_time_transcription": 0.0}).to_string().into())
            };
            ws.send(Message::Text(
                r#"{"type":"config","useAudioWorklet":true}"#.into(),
            ))
            .await
            .unwrap();
            let mut sent_partial = false;
            while let Some(Ok(m)) = ws.next().await {
                match m {
                    Message::Binary(b) if b.is_empty() => {
                        ws.send(snapshot(
                            &[(1, "Please schedule"), (-2, ""), (1, "a meeting.")],
                            "",
                        ))
                        .await
                        .unwrap();
                        ws.send(Message::Text(r#"{"type":"ready_to_stop"}"#.into()))
                            .await
                            .unwrap();
                        return;
                    }
                    Message::Binary(b) => {
                        *count.lock() += b.len();
                        if *count.lock() > 32_000 && !sent_partial {
                            sent_partial = true;
                            ws.send(snapshot(&[(1, "Please schedule")], "a meet"))
                                .await
                                .unwrap();
                        }
                    }
                    _ => {}
                }
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite3");
    let (wav, _) = fixture(1);
    let (code, lines, err) =
        dictate(&["--wav", &wav, "--server", &url, "--history", path_str(&db)]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(r#""settled":"Please schedule","tentative":"a meet""#)),
        "the partial is shown: {lines:?}"
    );
    let r = result_of(&lines);
    assert_eq!(r["text"], "Please schedule a meeting.");
    assert_eq!(r["protocol"], "whisperlivekit");
    // Raw s16le, every sample of the file.
    let wav_bytes = std::fs::metadata(&wav).unwrap().len() as usize - 44;
    assert_eq!(*received.lock(), wav_bytes);
    let (_, out, _) = run(&["history", "search", "meeting", "--history", path_str(&db)]);
    assert!(out.contains("Please schedule a meeting."), "{out}");
}

#[test]
fn garbage_from_a_server_is_a_clear_error_not_a_crash() {
    // Not an ASR server at all.
    let (url, _rt) = stand_in(|mut ws| async move {
        let _ = ws.send(Message::Text("HELLO I AM A TEAPOT".into())).await;
        let _ = ws.next().await;
    });
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite3");
    let (wav, _) = fixture(1);
    let (code, _, err) = dictate(&["--wav", &wav, "--server", &url, "--history", path_str(&db)]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("is not an ASR server") && err.contains("TEAPOT"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    // Ours, but with junk in the middle: the junk is reported and the text still arrives.
    let (url, _rt2) = stand_in(|mut ws| async move {
        ws.send(Message::Text(
            r#"{"type":"ready","model":"fake","sample_rate":16000,"protocol":1}"#.into(),
        ))
        .await
        .unwrap();
        ws.send(Message::Text("{\"type\":\"partial\",\"text\":".into()))
            .await
            .unwrap();
        ws.send(Message::Binary(vec![0xff; 7].into()))
            .await
            .unwrap();
        ws.send(Message::Text("\u{1F4A9}\u{0}".into()))
            .await
            .unwrap();
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m
                && t.contains("eos")
            {
                ws.send(Message::Text(r#"{"type":"final","text":"still here","is_final":true,"timestamp":"t","confidence":0.5,"start_ms":0,"end_ms":4000,"segment":0}"#.into())).await.unwrap();
                ws.send(Message::Text(r#"{"type":"done"}"#.into()))
                    .await
                    .unwrap();
            }
        }
    });
    let (code, lines, err) =
        dictate(&["--wav", &wav, "--server", &url, "--history", path_str(&db)]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(result_of(&lines)["text"], "still here");
    let complaints = lines.iter().filter(|l| l.contains("server_error")).count();
    assert_eq!(complaints, 3, "{lines:?}");

    // A server that closes with a limit: the reason is shown, no retry loop.
    let (url, _rt3) = stand_in(|mut ws| async move {
        ws.send(Message::Text(
            r#"{"type":"ready","model":"fake","sample_rate":16000,"protocol":1}"#.into(),
        ))
        .await
        .unwrap();
        let _ = ws.next().await;
        let _ = ws
            .send(Message::Text(
                r#"{"type":"error","message":"utterance longer than 1 s"}"#.into(),
            ))
            .await;
        let _ = ws
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: 1008.into(),
                reason: "".into(),
            }))
            .await;
    });
    let started = Instant::now();
    let (code, _, err) = dictate(&["--wav", &wav, "--server", &url, "--history", path_str(&db)]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("ended the utterance: utterance longer than 1 s"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // Nobody listening at all: tried for the given time, then a clear error.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (code, _, err) = dictate(&[
        "--wav",
        &wav,
        "--server",
        &format!("ws://127.0.0.1:{port}/asr"),
        "--history",
        path_str(&db),
        "--reconnect-secs",
        "1",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("cannot reach the ASR server"), "{err}");
}
