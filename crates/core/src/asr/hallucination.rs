//! What Whisper says when nobody speaks: "you", "Thank you.", `[BLANK_AUDIO]`, `[Music]`,
//! "♪", or a phrase repeated until the window ends. Each decoded segment is judged on what the
//! model itself reports (its no-speech probability and mean log probability — OpenAI's Whisper
//! drops a segment when the first is over 0.6 and the second under −1) and on its text; what is
//! judged not speech is left out of the transcript.

/// A decoded segment as the judge sees it.
#[derive(Clone, Copy, Debug)]
pub struct SegmentQuality<'a> {
    pub text: &'a str,
    /// 0..1: the model's belief that the audio holds no speech.
    pub no_speech_prob: f32,
    /// Mean log probability of the text tokens.
    pub avg_logprob: f32,
    /// Text bytes over their deflated size: repetition loops score high.
    pub compression_ratio: f32,
}

/// Why a segment is not speech (or that it is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Speech,
    /// The model says no speech and is unsure of its words (Whisper's own rule).
    NoSpeech,
    /// Only annotations: `[BLANK_AUDIO]`, `(music)`, `*silence*`, `♪`.
    Annotation,
    /// A stock phrase of the training subtitles ("Thank you.", "you", "Thanks for watching!")
    /// over audio the model thinks holds no speech.
    StockPhrase,
    /// A phrase looping (compression ratio over 2.4, as Whisper's fallback rule).
    Repetition,
}

/// Whisper's thresholds (`no_speech_threshold`, `logprob_threshold`,
/// `compression_ratio_threshold`).
const NO_SPEECH: f32 = 0.6;
const LOW_LOGPROB: f32 = -1.0;
const REPETITION: f32 = 2.4;
/// Over audio the model believes silent, a stock phrase is not trusted even when its words are
/// sure (a spoken "Okay." scores up to about 0.5 on tiny.en: it is kept).
const STOCK_NO_SPEECH: f32 = 0.6;

/// Phrases Whisper was trained to expect at the end of videos, normalized (lowercase, letters
/// and spaces).
const STOCK_PHRASES: &[&str] = &[
    "you",
    "thank you",
    "thanks",
    "thank you very much",
    "thank you so much",
    "thanks for watching",
    "thank you for watching",
    "thanks for listening",
    "thank you for listening",
    "please subscribe",
    "like and subscribe",
    "bye",
    "bye bye",
    "subtitles by the amara org community",
    "so",
    "okay",
    "oh",
    "hmm",
];

pub fn judge(s: &SegmentQuality<'_>) -> Verdict {
    if s.no_speech_prob > NO_SPEECH && s.avg_logprob < LOW_LOGPROB {
        return Verdict::NoSpeech;
    }
    if is_annotation(s.text) {
        return Verdict::Annotation;
    }
    if s.no_speech_prob > STOCK_NO_SPEECH && STOCK_PHRASES.contains(&normalized(s.text).as_str()) {
        return Verdict::StockPhrase;
    }
    if s.compression_ratio > REPETITION {
        return Verdict::Repetition;
    }
    Verdict::Speech
}

/// Lowercase words of `text`, joined by single spaces (punctuation dropped).
fn normalized(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `text` is nothing but bracketed annotations, music signs and punctuation.
fn is_annotation(text: &str) -> bool {
    let mut depth = 0u32;
    let mut stars = false;
    for c in text.chars() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth = depth.saturating_sub(1),
            '*' => stars = !stars,
            _ if depth > 0 || stars => {}
            c if c.is_alphanumeric() => return false,
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(text: &str, no_speech_prob: f32, avg_logprob: f32) -> SegmentQuality<'_> {
        SegmentQuality {
            text,
            no_speech_prob,
            avg_logprob,
            compression_ratio: 1.0,
        }
    }

    #[test]
    fn what_tiny_en_says_over_silence_is_dropped() {
        // Measured with ggml-tiny.en: digital silence, and a faint hiss.
        assert_eq!(judge(&seg("you", 0.99, -1.58)), Verdict::NoSpeech);
        assert_eq!(
            judge(&seg("[BLANK_AUDIO]", 0.96, -0.31)),
            Verdict::Annotation
        );
        assert_eq!(judge(&seg("(music)", 0.2, -0.5)), Verdict::Annotation);
        assert_eq!(judge(&seg("♪ ♪", 0.1, -0.2)), Verdict::Annotation);
        assert_eq!(judge(&seg("*silence*", 0.1, -0.2)), Verdict::Annotation);
        assert_eq!(judge(&seg("Thank you.", 0.75, -0.4)), Verdict::StockPhrase);
        assert_eq!(
            judge(&seg("Thanks for watching!", 0.65, -0.3)),
            Verdict::StockPhrase
        );
    }

    #[test]
    fn real_speech_is_kept_even_when_it_is_a_stock_phrase() {
        // Measured on the speech fixtures: no-speech probabilities around 0.07.
        let said = seg(
            "Please schedule a meeting with the design team for tomorrow morning.",
            0.07,
            -0.09,
        );
        assert_eq!(judge(&said), Verdict::Speech);
        assert_eq!(judge(&seg("Thank you.", 0.05, -0.2)), Verdict::Speech);
        // Short dictation the model is unsure about is still dictation.
        assert_eq!(judge(&seg("Okay.", 0.5, -0.6)), Verdict::Speech);
        assert_eq!(
            judge(&seg("Call (555) 0100 now", 0.05, -0.3)),
            Verdict::Speech
        );
        assert_eq!(
            judge(&seg("I said [sic] that", 0.05, -0.3)),
            Verdict::Speech
        );
    }

    #[test]
    fn a_loop_is_repetition() {
        let looping = SegmentQuality {
            compression_ratio: 3.1,
            ..seg("the the the the the the the the the the the the", 0.1, -0.3)
        };
        assert_eq!(judge(&looping), Verdict::Repetition);
    }
}
