//! Word error rate: (substitutions + deletions + insertions) / reference words, after folding case
//! and dropping punctuation, as speech benchmarks report it.

/// Words of `text`, lower-cased, punctuation removed (apostrophes kept inside words).
pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Edit distance between the word sequences of `reference` and `hypothesis`, and the number of
/// reference words.
pub fn errors(reference: &str, hypothesis: &str) -> (usize, usize) {
    let r = words(reference);
    let h = words(hypothesis);
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    let mut cur = vec![0; h.len() + 1];
    for (i, rw) in r.iter().enumerate() {
        cur[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let sub = prev[j] + usize::from(rw != hw);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    (prev[h.len()], r.len())
}

/// Word error rate of one pair (0 for an empty reference and hypothesis).
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let (e, n) = errors(reference, hypothesis);
    if n == 0 {
        if e == 0 { 0.0 } else { 1.0 }
    } else {
        e as f64 / n as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_edits_over_reference_words() {
        assert!(wer("the quick brown fox", "the quick brown fox").abs() < 1e-12);
        assert_eq!(
            errors("the quick brown fox", "The quick, brown fox!"),
            (0, 4)
        );
        assert_eq!(errors("the quick brown fox", "the quack brown fox"), (1, 4));
        assert_eq!(errors("the quick brown fox", "the brown fox"), (1, 4));
        assert_eq!(
            errors("the quick brown fox", "the very quick brown fox"),
            (1, 4)
        );
        assert_eq!(errors("hello world", ""), (2, 2));
        assert!(wer("", "").abs() < 1e-12);
        assert_eq!(words("Don't stop."), vec!["don't", "stop"]);
    }
}
