//! The streaming commit policy (LocalAgreement-2, as in Whisper-Streaming and WhisperLiveKit):
//! the server re-decodes a growing window of audio; a word is committed once two consecutive
//! hypotheses agree on it, so partial text stops flickering and committed audio can be trimmed.

use super::wer::words;

/// What one new hypothesis changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// Words committed by this hypothesis (now stable forever).
    pub committed: Vec<String>,
    /// The rest of the hypothesis: shown as partial text, may still change.
    pub tentative: Vec<String>,
    /// How many words at the start of the hypothesis are now committed (repeats of earlier
    /// committed words included): the audio up to the end of the last of them can be trimmed.
    pub consumed: usize,
}

/// A word as Whisper wrote it, and the form compared (lower case, no punctuation).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Token {
    shown: String,
    key: String,
}

fn tokens(text: &str) -> Vec<Token> {
    text.split_whitespace()
        .filter_map(|w| {
            let key = words(w).pop()?;
            Some(Token {
                shown: w.to_owned(),
                key,
            })
        })
        .collect()
}

fn keys(t: &[Token]) -> Vec<String> {
    t.iter().map(|t| t.key.clone()).collect()
}

fn shown(t: &[Token]) -> String {
    t.iter()
        .map(|t| t.shown.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Keeps the committed words and the previous hypothesis of the uncommitted part. Words are
/// compared without case and punctuation but kept as Whisper wrote them.
#[derive(Debug, Default)]
pub struct LocalAgreement {
    committed: Vec<Token>,
    previous: Vec<Token>,
}

impl LocalAgreement {
    /// Feeds the text decoded from the current window. If the window still contains audio of
    /// already-committed words, they are recognized at its start and skipped (a word really
    /// spoken twice across the trim point is taken for the committed one: the server trims
    /// by word timestamps so that this rarely arises).
    pub fn push(&mut self, hypothesis: &str) -> Update {
        let mut hyp = tokens(hypothesis);
        let overlap = suffix_prefix_overlap(&self.committed, &hyp);
        // The same words again: keep the newer writing (a sentence that went on gains its period).
        let from = self.committed.len() - overlap;
        for (c, h) in self.committed[from..].iter_mut().zip(hyp.drain(..overlap)) {
            c.shown = h.shown;
        }
        let agree = hyp
            .iter()
            .zip(&self.previous)
            .take_while(|(a, b)| a.key == b.key)
            .count();
        let committed: Vec<Token> = hyp[..agree].to_vec();
        self.committed.extend(committed.iter().cloned());
        let tentative = hyp[agree..].to_vec();
        self.previous.clone_from(&tentative);
        Update {
            committed: keys(&committed),
            tentative: keys(&tentative),
            consumed: overlap + agree,
        }
    }

    /// Ends the utterance: everything still tentative is committed. Returns those words.
    pub fn finish(&mut self) -> Vec<String> {
        let rest = std::mem::take(&mut self.previous);
        self.committed.extend(rest.iter().cloned());
        keys(&rest)
    }

    /// The committed words, compared form.
    pub fn committed(&self) -> Vec<String> {
        keys(&self.committed)
    }

    /// The committed words as written.
    pub fn committed_text(&self) -> String {
        shown(&self.committed)
    }

    /// Committed words, then the tentative ones: the text to show now.
    pub fn text(&self) -> String {
        let mut all = self.committed.clone();
        all.extend(self.previous.iter().cloned());
        shown(&all)
    }
}

/// The longest `k` such that the last `k` committed words equal the first `k` words of `hyp`.
fn suffix_prefix_overlap(committed: &[Token], hyp: &[Token]) -> usize {
    let max = committed.len().min(hyp.len());
    (1..=max)
        .rev()
        .find(|&k| {
            committed[committed.len() - k..]
                .iter()
                .zip(&hyp[..k])
                .all(|(a, b)| a.key == b.key)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        words(s)
    }

    #[test]
    fn commits_what_two_hypotheses_agree_on() {
        let mut la = LocalAgreement::default();
        let u = la.push("please schedule");
        assert!(u.committed.is_empty());
        assert_eq!(u.tentative, w("please schedule"));
        let u = la.push("please schedule a meeting");
        assert_eq!(u.committed, w("please schedule"));
        assert_eq!(u.tentative, w("a meeting"));
        // A changed word stays tentative.
        let u = la.push("please schedule a meeting with the");
        assert_eq!(u.committed, w("a meeting"));
        let u = la.push("please schedule a meeting width the design");
        assert!(u.committed.is_empty(), "{u:?}");
        assert_eq!(la.text(), "please schedule a meeting width the design");
        let u = la.push("please schedule a meeting width the design team");
        assert_eq!(u.committed, w("width the design"));
        assert_eq!(la.finish(), w("team"));
        assert_eq!(
            la.committed(),
            w("please schedule a meeting width the design team")
        );
    }

    #[test]
    fn trimmed_windows_continue_after_the_committed_words() {
        let mut la = LocalAgreement::default();
        la.push("send the weekly");
        la.push("send the weekly report"); // commits "send the weekly"
        // The server trimmed the committed audio: the window now starts at "report".
        let u = la.push("report to the");
        assert_eq!(u.committed, w("report"));
        let u = la.push("report to the whole group");
        assert_eq!(u.committed, w("to the"));
        assert_eq!(la.text(), "send the weekly report to the whole group");
    }

    #[test]
    fn punctuation_and_case_do_not_block_agreement() {
        let mut la = LocalAgreement::default();
        la.push("Hello, world");
        let u = la.push("hello world.");
        assert_eq!(u.committed, w("hello world"));
        // Kept as written (the newest writing): case and punctuation survive for display.
        assert_eq!(la.committed_text(), "hello world.");
        la.push("Hello, world. How are");
        la.push("Hello, world. How are you?");
        la.finish();
        assert_eq!(la.committed_text(), "Hello, world. How are you?");
    }
}
