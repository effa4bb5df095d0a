//! Text from the outside shown to a person: control characters (escape sequences, BEL, newlines,
//! carriage returns) and the Unicode controls that reorder text are shown escaped, so an event
//! type or a source cannot clear a terminal, colour it, ring it or forge a line of output.
//! Machine formats (NDJSON, JSON) are not passed through this: they escape in their own way.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal or a label as itself.
fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The first non-empty line of a message from elsewhere (an error, a tool's stderr), trimmed and
/// cut to `max_chars`: enough to say what went wrong, never a whole file echoed back.
#[must_use]
pub fn first_line(s: &str, max_chars: usize) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .chars()
        .take(max_chars)
        .collect()
}

/// `s` with every control character written as `\u{…}` (`\n`, `\r`, `\t` as themselves escaped),
/// unchanged (and not copied) when it has none.
#[must_use]
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Words typed into a search box as an SQLite FTS5 query: each word a quoted prefix
/// (`"voic"*`), so any text is safe to search; `None` when there are no words.
pub fn fts_query(input: &str) -> Option<String> {
    let words: Vec<String> = input
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{}\"*", w.replace('"', "\"\"")))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_obey() {
        assert!(matches!(printable("agent.thread.prompt"), Cow::Borrowed(_)));
        assert_eq!(printable("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(printable("x\u{7}\n12:00 forged"), "x\\u{7}\\n12:00 forged");
        assert_eq!(printable("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(printable("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(printable("née ✓ 日本"), "née ✓ 日本");
    }

    #[test]
    fn first_line_skips_blank_lines_and_is_cut() {
        assert_eq!(
            first_line("\n  \n  Stream error: gone  \nmore", 200),
            "Stream error: gone"
        );
        assert_eq!(first_line("abcdef", 3), "abc");
        assert_eq!(first_line("", 3), "");
    }
}
