//! The architect's chat client against a real local model server — llama.cpp's `llama-server`
//! with SmolLM2-135M (`.ci/llm-server` builds and fetches them) — and, for the faults a real
//! server does not make on demand (garbage, silence, a stream cut short, an error mid-stream), a
//! scripted stand-in speaking the same OpenAI chat protocol.

#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use candybar_specs::chat::{ChatConfig, ChatError, Message, Role, complete};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real server, killed when dropped.
struct LlamaServer {
    child: Child,
    url: String,
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn need(var: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "this test needs a local LLM server and model: run `.ci/llm-server` (it builds \
             llama.cpp's llama-server and fetches SmolLM2-135M) and set the two variables it \
             prints ({var} is not set)"
            )
        })
}

fn llama_server() -> LlamaServer {
    let server = need("CANDYBAR_TEST_LLM_SERVER");
    let model = need("CANDYBAR_TEST_LLM_MODEL");
    let port = free_port();
    let child = Command::new(&server)
        .args([
            "-m",
            &model,
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .args(["-c", "2048", "-t", "2", "--no-webui"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {server}: {e}"));
    let mut s = LlamaServer {
        child,
        url: format!("http://127.0.0.1:{port}/v1"),
    };
    let end = Instant::now() + Duration::from_mins(1);
    loop {
        let ok = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut c| {
            use std::io::{Read as _, Write as _};
            let _ = c.write_all(b"GET /health HTTP/1.0\r\n\r\n");
            let mut answer = String::new();
            let _ = c.read_to_string(&mut answer);
            answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200")
        });
        if ok {
            return s;
        }
        if let Ok(Some(status)) = s.child.try_wait() {
            panic!("llama-server exited ({status}) before it was ready");
        }
        assert!(Instant::now() < end, "llama-server was not ready in 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ask(text: &str) -> Vec<Message> {
    vec![
        Message::new(Role::System, "You are a helpful software architect."),
        Message::new(Role::User, text),
    ]
}

#[test]
fn a_real_local_model_answers_in_pieces_and_in_one() {
    let server = llama_server();
    let rt = rt();
    let http = reqwest::Client::new();
    let mut cfg = ChatConfig::new(&server.url, "smollm2");
    cfg.max_tokens = Some(48);
    cfg.temperature = Some(0.0);
    let mut pieces = Vec::new();
    let reply = rt
        .block_on(complete(
            &http,
            &cfg,
            &ask("Name one thing a voice notes feature needs."),
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
        .block_on(complete(&http, &cfg, &ask("Say hello."), |_| calls += 1))
        .unwrap();
    assert_eq!(calls, 1);
    assert!(!reply.text.trim().is_empty());

    // The server gone: said so, with where it was looked for.
    drop(server);
    let e = rt
        .block_on(complete(&http, &cfg, &ask("Hello?"), |_| {}))
        .unwrap_err();
    assert!(
        matches!(&e, ChatError::Unreachable { url, .. } if url == &cfg.url),
        "{e}"
    );
    assert!(e.to_string().contains("start it, or set [architect] url"));
}

/// A scripted OpenAI-compatible server: each request gets the next answer of `script`.
fn stand_in(script: Vec<Response>) -> (String, tokio::runtime::Runtime) {
    let rt = rt();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let script = std::sync::Arc::new(parking_lot::Mutex::new(script.into_iter()));
    let app = axum::Router::new().fallback(move || {
        let next = script.lock().next();
        async move { next.unwrap_or_else(|| (axum::http::StatusCode::GONE).into_response()) }
    });
    rt.spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), rt)
}

fn sse(body: impl Into<axum::body::Body>) -> Response {
    ([("content-type", "text/event-stream")], body.into()).into_response()
}

fn json(status: u16, text: &str) -> Response {
    (
        axum::http::StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        text.to_owned(),
    )
        .into_response()
}

/// A streamed body whose pieces come `gap` apart.
fn slow_sse(pieces: Vec<&'static str>, gap: Duration) -> Response {
    let stream = futures_util::stream::unfold(pieces.into_iter(), move |mut it| async move {
        let piece = it.next()?;
        tokio::time::sleep(gap).await;
        Some((Ok::<_, std::io::Error>(piece), it))
    });
    sse(axum::body::Body::from_stream(stream))
}

#[test]
fn faults_are_said_in_words() {
    let delta =
        |t: &str| format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{t}\"}}}}]}}\n\n");
    let good = format!("{}{}data: [DONE]\n\n", delta("Hello"), delta(" there"));
    let (url, server_rt) = stand_in(vec![
        sse(good),
        json(
            401,
            r#"{"error":{"message":"Incorrect API key provided: sk-abc***","type":"invalid_request_error"}}"#,
        ),
        json(200, "<html>a proxy's login page</html>"),
        sse("data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {not json\n\n"),
        sse("data: {\"error\":{\"message\":\"the model crashed\"}}\n\n"),
        sse("data: {\"choices\":[{\"delta\":{\"content\":\"\"}}]}\n\ndata: [DONE]\n\n"),
        slow_sse(
            vec!["data: {\"choices\":[{\"delta\":{\"content\":\"late\"}}]}\n\n"],
            Duration::from_secs(3),
        ),
        slow_sse(
            vec![
                "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n",
                "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n",
            ],
            Duration::from_millis(1500),
        ),
        json(
            200,
            r#"{"choices":[{"message":{"role":"assistant","content":"one piece"},"finish_reason":"stop"}]}"#,
        ),
        sse(format!("{}{}", delta("cut"), delta(" short"))),
    ]);
    let rt = rt();
    let http = reqwest::Client::new();
    let mut cfg = ChatConfig::new(&url, "any");
    cfg.first_token_timeout = Duration::from_secs(2);
    cfg.idle_timeout = Duration::from_secs(1);
    let run = |cfg: &ChatConfig| rt.block_on(complete(&http, cfg, &ask("hi"), |_| {}));

    assert_eq!(run(&cfg).unwrap().text, "Hello there");
    let e = run(&cfg).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the architect's server refused (HTTP 401): Incorrect API key provided: sk-abc***"
    );
    let e = run(&cfg).unwrap_err();
    assert!(
        e.to_string().contains("not a chat completion") && e.to_string().contains("login page"),
        "{e}"
    );
    let e = run(&cfg).unwrap_err();
    assert!(e.to_string().contains("\"{not json\""), "{e}");
    assert_eq!(
        run(&cfg).unwrap_err().to_string(),
        "the architect's server reported an error: the model crashed"
    );
    assert_eq!(run(&cfg).unwrap_err(), ChatError::Empty);
    // Nothing within the first-token limit.
    let started = Instant::now();
    assert_eq!(run(&cfg).unwrap_err(), ChatError::Silent(2));
    assert!(started.elapsed() < Duration::from_millis(2800));
    // Silent too long between two pieces.
    let e = run(&cfg).unwrap_err();
    assert_eq!(e, ChatError::Silent(1));
    // A server that answers in one piece although asked to stream.
    assert_eq!(run(&cfg).unwrap().text, "one piece");
    // A stream that ends without [DONE]: what came is the reply.
    assert_eq!(run(&cfg).unwrap().text, "cut short");
    drop(server_rt);
}
