//! A stand-in for GitHub's REST API (GitHub itself cannot be reached from the test machines):
//! the issue and label endpoints candybar uses, answering in GitHub's documented shapes —
//! 201 with `number` and `html_url`, 401 "Bad credentials" for another token, 404 for a
//! repository it does not have, 422 "Validation Failed" with `errors`, and the primary rate
//! limit's 403 with `x-ratelimit-remaining: 0` — and recording every request.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// The token the stand-in accepts.
pub const TOKEN: &str = "ghp_standin_token_0123456789";
/// The repository it has.
pub const REPO: &str = "sentra/platform";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Creating the label fails validation (422), as when the token may not make labels valid.
    LabelRefused,
    /// The primary rate limit is used up (403, `x-ratelimit-remaining: 0`).
    RateLimited,
    /// The token may read but not write (403 "Resource not accessible by personal access token").
    ReadOnly,
}

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub api_version: Option<String>,
    pub body: Value,
}

#[derive(Debug)]
pub struct State {
    pub mode: Mode,
    pub labels: BTreeSet<String>,
    pub issues: Vec<Value>,
    pub requests: Vec<Recorded>,
}

pub struct GitHub {
    pub api: String,
    pub state: Arc<Mutex<State>>,
    _runtime: tokio::runtime::Runtime,
}

impl GitHub {
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State {
            mode: Mode::Normal,
            labels: BTreeSet::from(["bug".to_owned()]),
            issues: Vec::new(),
            requests: Vec::new(),
        }));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = state.clone();
        let app = axum::Router::new().fallback(move |method, uri, headers, body| {
            answer(shared.clone(), method, uri, headers, body)
        });
        runtime.spawn(async move { axum::serve(listener, app).await });
        Self {
            api: format!("http://{addr}"),
            state,
            _runtime: runtime,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().mode = mode;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().requests.clone()
    }

    pub fn issues(&self) -> Vec<Value> {
        self.state.lock().issues.clone()
    }
}

fn reply(status: u16, body: &Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

#[allow(clippy::too_many_lines, clippy::unused_async)] // one stand-in, read top to bottom
async fn answer(
    state: Arc<Mutex<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = state.lock();
    s.requests.push(Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        authorization: header("authorization"),
        api_version: header("x-github-api-version"),
        body: body.clone(),
    });
    if header("authorization").as_deref() != Some(&format!("Bearer {TOKEN}")) {
        return reply(
            401,
            &json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"}),
        );
    }
    if s.mode == Mode::RateLimited {
        return (
            StatusCode::FORBIDDEN,
            [
                ("content-type", "application/json; charset=utf-8"),
                ("x-ratelimit-limit", "5000"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1893456000"),
            ],
            json!({"message": "API rate limit exceeded for user ID 1.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}).to_string(),
        )
            .into_response();
    }
    let path = uri.path().trim_start_matches('/');
    let parts: Vec<&str> = path.split('/').collect();
    let not_found = || {
        reply(
            404,
            &json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue", "status": "404"}),
        )
    };
    if parts.len() < 4 || parts[0] != "repos" || format!("{}/{}", parts[1], parts[2]) != REPO {
        return not_found();
    }
    let read_only = || {
        reply(
            403,
            &json!({"message": "Resource not accessible by personal access token", "documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue", "status": "403"}),
        )
    };
    match (method.as_str(), &parts[3..]) {
        ("GET", ["labels", name]) => {
            if s.labels.contains(*name) {
                reply(200, &json!({"name": name, "color": "7057ff"}))
            } else {
                not_found()
            }
        }
        ("POST", ["labels"]) => {
            if s.mode == Mode::ReadOnly {
                return read_only();
            }
            let name = body["name"].as_str().unwrap_or_default().to_owned();
            if s.mode == Mode::LabelRefused {
                return reply(
                    422,
                    &json!({"message": "Validation Failed", "errors": [{"resource": "Label", "code": "invalid", "field": "color"}], "documentation_url": "https://docs.github.com/rest/issues/labels#create-a-label", "status": "422"}),
                );
            }
            if !s.labels.insert(name.clone()) {
                return reply(
                    422,
                    &json!({"message": "Validation Failed", "errors": [{"resource": "Label", "code": "already_exists", "field": "name"}], "status": "422"}),
                );
            }
            reply(201, &json!({"name": name, "color": body["color"]}))
        }
        ("POST", ["issues"]) => {
            if s.mode == Mode::ReadOnly {
                return read_only();
            }
            let title = body["title"].as_str().unwrap_or_default();
            if title.is_empty() {
                return reply(
                    422,
                    &json!({"message": "Validation Failed", "errors": [{"resource": "Issue", "code": "missing_field", "field": "title"}], "status": "422"}),
                );
            }
            if body["body"]
                .as_str()
                .is_some_and(|b| b.chars().count() > 65_536)
            {
                return reply(
                    422,
                    &json!({"message": "Validation Failed", "errors": [{"resource": "Issue", "code": "custom", "field": "body", "message": "body is too long (maximum is 65536 characters)"}], "status": "422"}),
                );
            }
            let number = s.issues.len() as u64 + 1;
            let issue = json!({
                "number": number,
                "html_url": format!("https://github.com/{REPO}/issues/{number}"),
                "url": format!("https://api.github.com/repos/{REPO}/issues/{number}"),
                "title": title,
                "body": body["body"],
                "labels": body["labels"].as_array().cloned().unwrap_or_default()
                    .into_iter().map(|l| json!({"name": l})).collect::<Vec<_>>(),
                "state": "open",
            });
            s.issues.push(issue.clone());
            reply(201, &issue)
        }
        _ => not_found(),
    }
}
