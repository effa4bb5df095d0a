//! Keeping secrets out of sight: passwords in URLs are masked wherever a URL is shown or logged,
//! and tokens travel in a [`Secret`] whose `Debug` prints a redaction, so a `{:?}` of a config,
//! a command or an error can never leak one.

use std::fmt;

/// A token or password. Its `Debug` and `Display` print `****`; [`Secret::expose`] is the one
/// way to the value, so every place that reads it is easy to find.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself: for the one place that sends it (a header, the keychain).
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// A URL that may carry a password or a token (`amqp://user:password@host`,
/// `wss://host/asr?token=…`). `Debug` and `Display` show it masked ([`mask_url`]).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its secrets, for the one place that connects with it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL as it may be shown.
    #[must_use]
    pub fn masked(&self) -> String {
        mask_url(&self.0)
    }
}

impl From<String> for SecretUrl {
    fn from(url: String) -> Self {
        Self(url)
    }
}

impl From<&str> for SecretUrl {
    fn from(url: &str) -> Self {
        Self(url.to_owned())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", mask_url(&self.0))
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_url(&self.0))
    }
}

/// `amqp://user:secret@host/` → `amqp://user:****@host/`. Anything unparsable is shown with
/// everything between `://` and `@` masked.
#[must_use]
pub fn mask_url(url: &str) -> String {
    if let Ok(mut u) = url::Url::parse(url) {
        if u.password().is_some() {
            // set_password only fails for URLs that cannot have one, which this one does.
            let _ = u.set_password(Some("****"));
        }
        for (k, _) in u.query_pairs().collect::<Vec<_>>() {
            if k.eq_ignore_ascii_case("token") || k.eq_ignore_ascii_case("password") {
                u.set_query(Some("****"));
                break;
            }
        }
        return u.to_string();
    }
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}****{}", &url[..s + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

/// Masks every `scheme://user:pass@` in free text (error messages that quote a config line).
#[must_use]
pub fn mask_secrets_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority_end = tail[..end].find('/').unwrap_or(end);
        match tail[..authority_end].rfind('@') {
            Some(at) => match tail[..at].find(':') {
                Some(colon) => {
                    out.push_str(&tail[..=colon]);
                    out.push_str("****");
                    out.push_str(&tail[at..end]);
                }
                None => out.push_str(&tail[..end]),
            },
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_passwords() {
        assert_eq!(
            mask_url("amqp://guest:hunter2@rabbit:5672/%2f"),
            "amqp://guest:****@rabbit:5672/%2f"
        );
        assert_eq!(mask_url("amqp://rabbit:5672"), "amqp://rabbit:5672");
        assert_eq!(mask_url("wss://h/asr?token=abc"), "wss://h/asr?****");
        assert!(!mask_url("not a url://u:pw@x").contains("pw"));
        let t = mask_secrets_in(
            "expected string, found `amqp://bob:s3cret@h:1/v` at line 2 and http://x/y",
        );
        assert!(!t.contains("s3cret"), "{t}");
        assert!(t.contains("amqp://bob:****@h:1/v"), "{t}");
        assert!(t.contains("http://x/y"));
    }

    #[test]
    fn debug_never_prints_a_secret() {
        let token = Secret::new("hunter2");
        let url = SecretUrl::new("amqp://bob:hunter2@h:5672/%2f");
        let shown = format!("{token:?} {token} {url:?} {url}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("amqp://bob:****@h:5672/%2f"), "{shown}");
        assert_eq!(token.expose(), "hunter2");
        assert_eq!(url.expose(), "amqp://bob:hunter2@h:5672/%2f");
    }
}
