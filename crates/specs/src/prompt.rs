//! What the architect is told: its role (editable: `[architect] system_prompt` or a file), the
//! project's context read from the project directory, and the request to draft the spec.

use std::fmt::Write as _;
use std::path::Path;

use crate::chat::{Message, Role};

/// The most of a context file put into the prompt (small local models have small windows).
pub const MAX_CONTEXT_BYTES: usize = 8 * 1024;

/// The architect's role when the user gave none.
pub const DEFAULT_SYSTEM: &str = "You are the architect of a software platform. A person \
describes a feature by talking; their words come from speech recognition, so read past small \
errors. Ask one short question at a time about what is unclear (who uses it, what it must do, \
what it must not do, how we will know it works). Keep every answer under three sentences: it is \
spoken aloud.";

/// What the architect is asked when the person is done.
pub const DRAFT_REQUEST: &str = "I'm done. Write the feature as a Markdown spec: a `# ` title \
line, then Summary, Users, Requirements (a list), Out of scope, Acceptance criteria (a list), \
Open questions. Write only the spec.";

/// What the architect is asked to continue an existing spec (the person's new words follow).
pub const CONTINUE_PREFIX: &str = "Here is the current spec. I will tell you what to change; \
then write the whole spec again, changed, in the same form.\n\n";

/// The project's context: `.sentra/config.yml`, else `CLAUDE.md`, in `project_dir` — its first
/// [`MAX_CONTEXT_BYTES`], with the file's name. None when neither is there.
pub fn project_context(project_dir: &Path) -> Option<(String, String)> {
    for name in [".sentra/config.yml", "CLAUDE.md"] {
        let path = project_dir.join(name);
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let mut end = bytes.len().min(MAX_CONTEXT_BYTES);
        let text = loop {
            match std::str::from_utf8(&bytes[..end]) {
                Ok(t) => break t,
                Err(e) if e.error_len().is_none() => end = e.valid_up_to(),
                Err(_) => break "",
            }
        };
        if !text.trim().is_empty() {
            return Some((name.to_owned(), text.to_owned()));
        }
    }
    None
}

/// The system message: the role, then the project's context when there is one.
pub fn system(role: &str, project: &str, context: Option<&(String, String)>) -> Message {
    let mut text = role.trim().to_owned();
    let _ = write!(text, "\n\nThe project is \"{project}\".");
    if let Some((name, body)) = context {
        let _ = write!(text, "\nFrom its {name}:\n{}", body.trim());
    }
    Message::new(Role::System, text)
}

/// A spec as the architect writes it, cleaned: a reply wrapped in a Markdown code fence is
/// unwrapped; text before the first heading (a "Sure, here is…") is dropped.
pub fn spec_from_reply(reply: &str) -> String {
    let mut text = reply.trim();
    if let Some(rest) = text.strip_prefix("```") {
        let rest = rest.split_once('\n').map_or("", |(_, r)| r);
        text = rest.trim_end().strip_suffix("```").unwrap_or(rest).trim();
    }
    if let Some(at) = text.find("\n# ")
        && !text.starts_with("# ")
    {
        text = &text[at + 1..];
    }
    let mut spec = text.trim().to_owned();
    spec.push('\n');
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_become_specs() {
        assert_eq!(
            spec_from_reply("Sure! Here it is:\n# Voice notes\nBody"),
            "# Voice notes\nBody\n"
        );
        assert_eq!(
            spec_from_reply("```markdown\n# Notes\n- a\n```"),
            "# Notes\n- a\n"
        );
        assert_eq!(spec_from_reply("No heading at all"), "No heading at all\n");
    }

    #[test]
    fn the_project_context_is_read_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        assert!(project_context(dir.path()).is_none());
        std::fs::write(dir.path().join("CLAUDE.md"), "é".repeat(MAX_CONTEXT_BYTES)).unwrap();
        let (name, text) = project_context(dir.path()).unwrap();
        assert_eq!(name, "CLAUDE.md");
        assert!(text.len() <= MAX_CONTEXT_BYTES && text.chars().all(|c| c == 'é'));
        std::fs::create_dir(dir.path().join(".sentra")).unwrap();
        std::fs::write(dir.path().join(".sentra/config.yml"), "project: x\n").unwrap();
        assert_eq!(project_context(dir.path()).unwrap().0, ".sentra/config.yml");
    }
}
