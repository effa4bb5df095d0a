//! Reading a session's screen: its last lines without escape sequences, and whether the agent
//! is asking something.

/// Text as a person would read it: terminal escape sequences and carriage-return overwrites
/// removed, invalid UTF-8 replaced.
pub fn plain(bytes: &[u8]) -> String {
    let line = |raw: &[u8]| {
        // A carriage return redraws the line: keep what was written last.
        raw.split(|&b| b == b'\r')
            .map(|part| String::from_utf8_lossy(&strip_ansi_escapes::strip(part)).into_owned())
            .rfind(|p| !p.trim().is_empty())
            .unwrap_or_default()
    };
    let mut lines: Vec<String> = bytes.split(|&b| b == b'\n').map(line).collect();
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines.join("\n")
}

/// The last `n` non-empty lines of `text`, oldest first, each trimmed at the end.
pub fn last_lines(text: &str, n: usize) -> Vec<&str> {
    let mut lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .rev()
        .take(n)
        .collect();
    lines.reverse();
    lines
}

/// What agent CLIs and installers print when they wait for a person, lower-case.
const ASKING: &[&str] = &[
    "(y/n)",
    "[y/n]",
    "(yes/no)",
    "[yes/no]",
    "press enter",
    "press any key",
    "hit enter",
    "do you want to",
    "would you like",
    "do you trust",
    "allow this",
    "approve",
    "waiting for input",
    "waiting for your",
    "enter to confirm",
    "esc to cancel",
    "continue?",
    "proceed?",
    "❯ 1.",
    "> 1.",
    "password:",
    "passphrase",
];

/// Whether the screen's last lines ask the person something: a known prompt among the last
/// few lines, or a question as the very last line.
pub fn asks_for_input(screen: &str) -> bool {
    let tail = last_lines(screen, 6);
    if tail
        .last()
        .is_some_and(|l| l.trim_end().ends_with('?') || l.trim_end().ends_with("?:"))
    {
        return true;
    }
    tail.iter().any(|l| {
        let l = l.to_lowercase();
        ASKING.iter().any(|p| l.contains(p))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_redraws_are_removed() {
        let raw = b"\x1b[1;32mbuilding\x1b[0m\r\n50%\r100%\r\n\xff done\n";
        assert_eq!(plain(raw), "building\n100%\n\u{fffd} done");
        assert_eq!(last_lines("a\n\n b \n\nc\n\n", 2), vec![" b", "c"]);
    }

    #[test]
    fn prompts_of_the_common_agents_are_recognised() {
        for screen in [
            "Edit src/main.rs\nDo you want to make this edit to main.rs?\n❯ 1. Yes\n  2. No",
            "Overwrite config? (y/N)",
            "Apply patch [Y/n]",
            "Which database should I use?",
            "Allow this command to run?\n  Yes, allow once\n  No",
            "Press Enter to continue",
            "Enter passphrase for key:",
        ] {
            assert!(asks_for_input(screen), "{screen}");
        }
        for screen in [
            "Running tests...\n42 passed",
            "Why did it fail? The lock was held.\nFixed it; all tests pass.",
            "",
        ] {
            assert!(!asks_for_input(screen), "{screen}");
        }
    }
}
