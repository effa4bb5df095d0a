//! Filing an approved spec as a GitHub issue, through GitHub's REST API: the label is made when
//! the repository lacks it, then the issue is created. Every refusal GitHub documents (401, 403,
//! 404, 410, 422, rate limits) becomes a sentence a person can act on; the token is never shown.

use std::time::Duration;

use candybar_core::redact::Secret;
use serde_json::{Value, json};

use crate::store::Meta;

/// GitHub's API, unless `[github] api` (GitHub Enterprise, a test's stand-in) says otherwise.
pub const DEFAULT_API: &str = "https://api.github.com";
/// The label agents pick features up by.
pub const LABEL: &str = "ai-feature";
/// GitHub refuses an issue body over 65,536 characters.
pub const MAX_BODY_CHARS: usize = 65_536;
const API_VERSION: &str = "2022-11-28";
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GitHubError {
    #[error("the repository {0:?} is not owner/name")]
    BadRepo(String),
    #[error(
        "no GitHub token: store one with `candybar secret set github-token` (a token that may \
         write issues in the repository), or set CANDYBAR_GITHUB_TOKEN"
    )]
    NoToken,
    #[error(
        "the spec is {chars} characters and GitHub takes at most {MAX_BODY_CHARS} in an issue: \
         shorten it (Continue, or edit the version on disk) and file it again"
    )]
    TooLong { chars: usize },
    #[error(
        "GitHub refused the token (401 {0}): check it, or store a new one with `candybar secret set github-token`"
    )]
    Unauthorized(String),
    #[error(
        "GitHub's rate limit is reached ({0}); it lifts {1}: file it again then (the spec stays approved)"
    )]
    RateLimited(String, String),
    #[error(
        "GitHub refused (403 {0}): the token may not write issues or labels in {1} (it needs the \
         Issues: write permission)"
    )]
    Forbidden(String, String),
    #[error(
        "GitHub has no repository {0} that this token can see (404): check [github] repo and the \
         token's access"
    )]
    NotFound(String),
    #[error("GitHub refused the issue (422 {0})")]
    Invalid(String),
    #[error("GitHub answered {status}: {message}")]
    Other { status: u16, message: String },
    #[error("cannot reach GitHub at {api}: {reason}")]
    Unreachable { api: String, reason: String },
}

/// The issue to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewIssue {
    pub repo: String,
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
}

/// An issue GitHub made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedIssue {
    pub number: u64,
    pub url: String,
}

/// The issue for version `version` of a spec: its title, its text and a block saying where it
/// came from (readable, and a machine-readable comment agents can parse), labelled `ai-feature`.
pub fn issue_for(
    repo: &str,
    meta: &Meta,
    version: u32,
    markdown: &str,
) -> Result<NewIssue, GitHubError> {
    check_repo(repo)?;
    let block = format!(
        "\n\n---\n_Filed by candybar from spec `{id}` v{version} (project `{project}`)._\n\n\
         <!-- sentra-spec: {json} -->\n",
        id = meta.id,
        project = meta.project,
        json = json!({"spec_id": meta.id, "version": version, "project": meta.project}),
    );
    let body = format!("{}{block}", markdown.trim_end());
    let chars = body.chars().count();
    if chars > MAX_BODY_CHARS {
        return Err(GitHubError::TooLong { chars });
    }
    Ok(NewIssue {
        repo: repo.to_owned(),
        title: meta.title.clone(),
        body,
        labels: vec![LABEL.to_owned()],
    })
}

fn check_repo(repo: &str) -> Result<(), GitHubError> {
    let ok = repo.split_once('/').is_some_and(|(owner, name)| {
        let part = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        part(owner) && part(name)
    });
    if ok {
        Ok(())
    } else {
        Err(GitHubError::BadRepo(repo.to_owned()))
    }
}

/// A GitHub REST client for one API base.
pub struct GitHub {
    api: String,
    token: Secret,
    http: reqwest::Client,
}

impl GitHub {
    pub fn new(api: &str, token: Secret) -> Result<Self, GitHubError> {
        if token.is_empty() {
            return Err(GitHubError::NoToken);
        }
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent(concat!("candybar/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GitHubError::Unreachable {
                api: api.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            api: api.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    /// The requests `file` would make, as text (`--dry-run`): method, URL, headers with the
    /// token masked, and the JSON body.
    pub fn describe(api: &str, issue: &NewIssue) -> String {
        let api = api.trim_end_matches('/');
        let headers = format!(
            "Accept: application/vnd.github+json\nAuthorization: Bearer ****\n\
             X-GitHub-Api-Version: {API_VERSION}\nUser-Agent: candybar/{}\n",
            env!("CARGO_PKG_VERSION")
        );
        format!(
            "GET {api}/repos/{repo}/labels/{LABEL}\n{headers}\n\
             (when it answers 404:)\nPOST {api}/repos/{repo}/labels\n{headers}\n{label}\n\n\
             POST {api}/repos/{repo}/issues\n{headers}\n{body}\n",
            repo = issue.repo,
            label = serde_json::to_string_pretty(&label_body()).unwrap_or_default(),
            body = serde_json::to_string_pretty(&issue_body(issue)).unwrap_or_default(),
        )
    }

    /// Makes sure the labels exist, then creates the issue.
    pub async fn file(&self, issue: &NewIssue) -> Result<CreatedIssue, GitHubError> {
        check_repo(&issue.repo)?;
        self.ensure_label(&issue.repo).await?;
        let url = format!("{}/repos/{}/issues", self.api, issue.repo);
        let answer = self
            .send(self.http.post(&url).json(&issue_body(issue)))
            .await?;
        let (status, body, headers) = answer;
        if status != 201 && status != 200 {
            return Err(refusal(status, &body, &headers, &issue.repo));
        }
        let v: Value = serde_json::from_str(&body).map_err(|_| GitHubError::Other {
            status,
            message: "the answer is not JSON".to_owned(),
        })?;
        match (
            v["number"].as_u64(),
            v["html_url"].as_str().or_else(|| v["url"].as_str()),
        ) {
            (Some(number), Some(url)) => Ok(CreatedIssue {
                number,
                url: url.to_owned(),
            }),
            _ => Err(GitHubError::Other {
                status,
                message: "the answer names no issue number or URL".to_owned(),
            }),
        }
    }

    async fn ensure_label(&self, repo: &str) -> Result<(), GitHubError> {
        let url = format!("{}/repos/{repo}/labels/{LABEL}", self.api);
        let (status, body, headers) = self.send(self.http.get(&url)).await?;
        match status {
            200 => return Ok(()),
            404 => {}
            _ => return Err(refusal(status, &body, &headers, repo)),
        }
        let url = format!("{}/repos/{repo}/labels", self.api);
        let (status, body, headers) = self.send(self.http.post(&url).json(&label_body())).await?;
        match status {
            200 | 201 => Ok(()),
            // Made meanwhile by someone else: it exists, which is what we wanted.
            422 if body.contains("already_exists") => Ok(()),
            _ => Err(refusal(status, &body, &headers, repo)),
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, String, reqwest::header::HeaderMap), GitHubError> {
        let unreachable = |e: reqwest::Error| GitHubError::Unreachable {
            api: self.api.clone(),
            reason: candybar_core::redact::mask_secrets_in(&e.to_string()),
        };
        let response = request
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION)
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(unreachable)?;
        Ok((status, body, headers))
    }
}

fn label_body() -> Value {
    json!({
        "name": LABEL,
        "color": "7057ff",
        "description": "A feature spec approved in candybar, for agents to pick up",
    })
}

fn issue_body(issue: &NewIssue) -> Value {
    json!({"title": issue.title, "body": issue.body, "labels": issue.labels})
}

/// GitHub's refusal in words: its own `message` (and a 422's `errors`), never the request.
fn refusal(
    status: u16,
    body: &str,
    headers: &reqwest::header::HeaderMap,
    repo: &str,
) -> GitHubError {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let mut message = v["message"]
        .as_str()
        .map_or_else(|| candybar_core::text::first_line(body, 300), str::to_owned);
    message = message.chars().take(300).collect();
    let header = |name: &str| headers.get(name).and_then(|h| h.to_str().ok());
    let exhausted = header("x-ratelimit-remaining") == Some("0");
    if status == 429 || (status == 403 && (exhausted || header("retry-after").is_some())) {
        let when = header("retry-after")
            .and_then(|s| s.parse::<u64>().ok())
            .map(|s| format!("in {s} s"))
            .or_else(|| {
                header("x-ratelimit-reset")
                    .and_then(|s| s.parse::<i64>().ok())
                    .map(|t| {
                        format!(
                            "at {}",
                            candybar_core::time::format_rfc3339(t.saturating_mul(1_000_000))
                        )
                    })
            })
            .unwrap_or_else(|| "in a while".to_owned());
        return GitHubError::RateLimited(message, when);
    }
    match status {
        401 => GitHubError::Unauthorized(message),
        403 => GitHubError::Forbidden(message, repo.to_owned()),
        404 => GitHubError::NotFound(repo.to_owned()),
        422 => {
            let details: Vec<String> = v["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    e["message"].as_str().map(str::to_owned).or_else(|| {
                        Some(format!(
                            "{} {} {}",
                            e["resource"].as_str()?,
                            e["field"].as_str().unwrap_or(""),
                            e["code"].as_str().unwrap_or("")
                        ))
                    })
                })
                .collect();
            if details.is_empty() {
                GitHubError::Invalid(message)
            } else {
                GitHubError::Invalid(format!("{message}: {}", details.join("; ")))
            }
        }
        _ => GitHubError::Other { status, message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_are_owner_slash_name() {
        for bad in [
            "", "owner", "/name", "owner/", "a/b/c", "../x", "a/..", "o w/n",
        ] {
            assert!(check_repo(bad).is_err(), "{bad:?}");
        }
        assert!(check_repo("sentra-platform/candybar.rs").is_ok());
    }
}
