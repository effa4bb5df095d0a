//! A real local LLM server for the architect's tests: llama.cpp's `llama-server` with
//! SmolLM2-135M (`.ci/llm-server` builds and fetches them; `.ci/test` sets the variables).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server, killed when dropped.
pub struct LlmServer {
    child: Child,
    /// The OpenAI-compatible API's base (`http://127.0.0.1:PORT/v1`).
    pub url: String,
}

impl Drop for LlmServer {
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
                 prints ({var} is not set), or run the suite with .ci/test"
            )
        })
}

impl LlmServer {
    pub fn start() -> Self {
        let server = need("CANDYBAR_TEST_LLM_SERVER");
        let model = need("CANDYBAR_TEST_LLM_MODEL");
        let port = super::free_port();
        let child = Command::new(&server)
            .args([
                "-m",
                &model,
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            // One thread: the suite runs tests side by side on few cores, where llama.cpp's
            // threads waiting on each other ran at half the speed of one (measured, 2 cores).
            .args(["-c", "4096", "-t", "1", "--no-webui"])
            // Greedy unless a request says otherwise: the same conversation gets the same
            // answer run after run (at the server's default 0.8, SmolLM2-135M now and then
            // answered "I'm done." with "I'm done.").
            .args(["--temp", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {server}: {e}"));
        let mut s = Self {
            child,
            url: format!("http://127.0.0.1:{port}/v1"),
        };
        let end = Instant::now() + Duration::from_mins(1);
        loop {
            if super::http_get(&format!("127.0.0.1:{port}"), "/health").0 == 200 {
                return s;
            }
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("llama-server exited ({status}) before it was ready");
            }
            assert!(Instant::now() < end, "llama-server was not ready in 60 s");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// A stand-in for an OpenAI-compatible chat endpoint, for answers a real model gives only by
/// chance (a rewrite that keeps every fact, one that drops a source, a model not loaded — the
/// small model [`LlmServer`] runs cannot be relied on for any of them): answers each request
/// with `reply(the user message)` as (status, the assistant's text or an error). Its address,
/// and the requests it saw.
pub fn chat_stand_in(
    reply: fn(&str) -> (u16, String),
) -> (
    String,
    std::sync::Arc<parking_lot::Mutex<Vec<serde_json::Value>>>,
) {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port for the stand-in");
    let url = format!("http://{}/v1", listener.local_addr().expect("its address"));
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::Builder::new()
        .name("chat-stand-in".into())
        .spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let mut reader = BufReader::new(stream);
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                let user = request["messages"][1]["content"].as_str().unwrap_or("").to_owned();
                log.lock().push(request);
                let (status, text) = reply(&user);
                let answer = if status == 200 {
                    serde_json::json!({"choices": [{"message": {"role": "assistant", "content": text}}]})
                } else {
                    serde_json::json!({"error": {"message": text}})
                };
                let answer = answer.to_string();
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        })
        .expect("a thread for the stand-in");
    (url, seen)
}
