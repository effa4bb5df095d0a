//! Pattern matching on dotted names: AMQP topic patterns (`*` = one word, `#` = zero or more
//! words), used for registry routing keys and the filter's type globs. The filter also allows `*`
//! inside a word (`agent.*.comp*`) and compares ASCII case-insensitively.

/// How strictly a pattern is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlobMode {
    /// `RabbitMQ`'s topic exchange rules, exactly.
    Amqp,
    /// Also `*` inside a word, and ASCII case-insensitive.
    Lenient,
}

/// Whether `key` matches the topic `pattern`.
#[must_use]
pub fn topic_matches(pattern: &str, key: &str, mode: GlobMode) -> bool {
    // No wildcard: word by word is the whole string (most filters name a type exactly, and a
    // query tests it against every block's types).
    if !pattern.contains(['*', '#']) {
        return match mode {
            GlobMode::Amqp => pattern == key,
            GlobMode::Lenient => pattern.eq_ignore_ascii_case(key),
        };
    }
    let pat: Vec<&str> = pattern.split('.').collect();
    let words: Vec<&str> = key.split('.').collect();
    // Dynamic programming over (pattern word, key word): linear memory, no recursion, so a
    // pattern of many `#`s cannot blow up.
    let n = words.len();
    let mut reach = vec![false; n + 1];
    reach[0] = true;
    for p in &pat {
        let mut next = vec![false; n + 1];
        if *p == "#" {
            let mut any = false;
            for j in 0..=n {
                any |= reach[j];
                next[j] = any;
            }
        } else {
            for j in 0..n {
                if reach[j] && word_matches(p, words[j], mode) {
                    next[j + 1] = true;
                }
            }
        }
        reach = next;
        if !reach.iter().any(|&r| r) {
            return false;
        }
    }
    reach[n]
}

fn word_matches(pattern: &str, word: &str, mode: GlobMode) -> bool {
    if pattern == "*" {
        return true;
    }
    match mode {
        GlobMode::Amqp => pattern == word,
        GlobMode::Lenient if pattern.contains('*') => wildcard_matches(pattern, word),
        GlobMode::Lenient => pattern.eq_ignore_ascii_case(word),
    }
}

/// Case-insensitive match of `text` against `pattern`, where `*` matches any run of characters
/// (including dots). Iterative with one backtrack point: linear time.
#[must_use]
pub fn wildcard_matches(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi].eq_ignore_ascii_case(&t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amqp(p: &str, k: &str) -> bool {
        topic_matches(p, k, GlobMode::Amqp)
    }

    #[test]
    fn amqp_topic_rules() {
        assert!(amqp("#", "anything.at.all"));
        assert!(amqp("#", ""));
        assert!(amqp("agent.*.prompt", "agent.thread.prompt"));
        assert!(!amqp("agent.*.prompt", "agent.thread.x.prompt"));
        assert!(!amqp("agent.*", "agent"));
        assert!(amqp("agent.#", "agent"));
        assert!(amqp("agent.#", "agent.a.b.c"));
        assert!(amqp("#.completed", "x.y.completed"));
        assert!(amqp("a.#.z", "a.z"));
        assert!(amqp("a.#.z", "a.b.c.z"));
        assert!(!amqp("a.#.z", "a.b.c"));
        assert!(amqp("agent.*.message.*", "agent.voice.message.sent"));
        assert!(!amqp("Agent.thread", "agent.thread"));
        assert!(
            !amqp("agent.thr*", "agent.thread"),
            "no in-word wildcards in AMQP"
        );
        assert!(amqp("*", "single"));
        assert!(!amqp("*", "two.words"));
    }

    #[test]
    fn lenient_globs() {
        let m = |p: &str, k: &str| topic_matches(p, k, GlobMode::Lenient);
        assert!(m("agent.*.comp*", "agent.task.completed"));
        assert!(m("AGENT.#", "agent.thread.prompt"));
        assert!(m("theboard.#", "theboard.meeting.started"));
        assert!(!m("theboard.#", "llm.response"));
        assert!(m("Agent.Thread.Prompt", "agent.thread.prompt"));
        assert!(!m("agent.thread", "agent.thread.prompt"));
        assert!(!m("agent.thread.prompt", "agent.thread"));
        assert!(m("", ""));
    }

    #[test]
    fn pathological_patterns_stay_fast() {
        // Backtracking matchers take exponential time on these; ours are linear-ish. The bound
        // is generous (a debug build on a busy 2-core machine) yet far below exponential.
        let start = std::time::Instant::now();
        let p = "#.".repeat(200) + "x";
        let k = "a.".repeat(500) + "y";
        assert!(!amqp(&p, &k));
        assert!(!wildcard_matches(
            &("*a".repeat(100) + "*b"),
            &"a".repeat(5000)
        ));
        let took = start.elapsed();
        assert!(
            took < std::time::Duration::from_millis(500),
            "pathological patterns took {took:?}"
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_matches("claude*", "Claude-Code:abc"));
        assert!(wildcard_matches("*momo*", "hermes-agent:bb-momo"));
        assert!(!wildcard_matches("momo", "bb-momo"));
        assert!(wildcard_matches("", ""));
        assert!(wildcard_matches("*", ""));
    }
}
