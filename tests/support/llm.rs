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
