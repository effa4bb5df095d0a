//! The architect's chat client against the faults a real server does not make on demand
//! (garbage, silence, a stream cut short, an error mid-stream, a refused key): a scripted
//! stand-in speaking the OpenAI chat protocol. The real server (llama.cpp with SmolLM2-135M) is
//! in the binary's tests/talk.rs.

#![allow(clippy::unwrap_used)]

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

fn ask(text: &str) -> Vec<Message> {
    vec![
        Message::new(Role::System, "You are a helpful software architect."),
        Message::new(Role::User, text),
    ]
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
