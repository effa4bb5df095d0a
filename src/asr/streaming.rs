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
}

/// Keeps the committed words and the previous hypothesis of the uncommitted part.
#[derive(Debug, Default)]
pub struct LocalAgreement {
    committed: Vec<String>,
    previous: Vec<String>,
}

impl LocalAgreement {
    /// Feeds the text decoded from the current window. If the window still contains audio of
    /// already-committed words, they are recognized at its start and skipped (a word really
    /// spoken twice across the trim point is taken for the committed one: the server should trim
    /// by word timestamps so that this does not arise).
    pub fn push(&mut self, hypothesis: &str) -> Update {
        let mut hyp: Vec<String> = words(hypothesis);
        let overlap = suffix_prefix_overlap(&self.committed, &hyp);
        hyp.drain(..overlap);
        let agree = hyp
            .iter()
            .zip(&self.previous)
            .take_while(|(a, b)| a == b)
            .count();
        let committed: Vec<String> = hyp[..agree].to_vec();
        self.committed.extend(committed.iter().cloned());
        let tentative = hyp[agree..].to_vec();
        self.previous.clone_from(&tentative);
        Update {
            committed,
            tentative,
        }
    }

    /// Ends the utterance: everything still tentative is committed. Returns those words.
    pub fn finish(&mut self) -> Vec<String> {
        let rest = std::mem::take(&mut self.previous);
        self.committed.extend(rest.iter().cloned());
        rest
    }

    pub fn committed(&self) -> &[String] {
        &self.committed
    }

    /// Committed words, then the tentative ones: the text to show now.
    pub fn text(&self) -> String {
        self.committed
            .iter()
            .chain(&self.previous)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The longest `k` such that the last `k` committed words equal the first `k` words of `hyp`.
fn suffix_prefix_overlap(committed: &[String], hyp: &[String]) -> usize {
    let max = committed.len().min(hyp.len());
    (1..=max)
        .rev()
        .find(|&k| committed[committed.len() - k..] == hyp[..k])
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
            w("please schedule a meeting width the design team").as_slice()
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
    }
}
