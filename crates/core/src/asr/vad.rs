//! Voice activity by energy: which 20 ms frames carry speech, whether an utterance has begun, and
//! when a pause long enough to end it has followed. Cheap enough for every frame of every client.

use super::audio::SAMPLE_RATE_HZ;

/// 20 ms at 16 kHz.
pub const FRAME_SAMPLES: usize = SAMPLE_RATE_HZ as usize / 50;

/// Speech is a frame whose RMS is above this (about -40 dBFS; a quiet room reads far below it).
pub const DEFAULT_THRESHOLD_RMS: f32 = 0.01;

/// Tracks one utterance's speech and trailing silence.
#[derive(Clone, Debug)]
pub struct SpeechTracker {
    threshold_rms: f32,
    pause_samples: usize,
    heard_speech: bool,
    trailing_silence: usize,
    /// Samples not yet judged (less than a frame).
    pending: Vec<f32>,
}

impl SpeechTracker {
    /// `pause_ms` of silence after speech ends the utterance (0: never by itself).
    pub fn new(threshold_rms: f32, pause_ms: u32) -> Self {
        Self {
            threshold_rms,
            pause_samples: pause_ms as usize * SAMPLE_RATE_HZ as usize / 1000,
            heard_speech: false,
            trailing_silence: 0,
            pending: Vec::with_capacity(FRAME_SAMPLES),
        }
    }

    /// Feeds new samples.
    pub fn push(&mut self, samples: &[f32]) {
        for &s in samples {
            self.pending.push(s);
            if self.pending.len() == FRAME_SAMPLES {
                let energy: f32 =
                    self.pending.iter().map(|x| x * x).sum::<f32>() / FRAME_SAMPLES as f32;
                if energy.sqrt() >= self.threshold_rms {
                    self.heard_speech = true;
                    self.trailing_silence = 0;
                } else {
                    self.trailing_silence += FRAME_SAMPLES;
                }
                self.pending.clear();
            }
        }
    }

    /// Whether any frame so far was speech.
    pub fn heard_speech(&self) -> bool {
        self.heard_speech
    }

    /// Silence since the last speech (or since the start), in samples.
    pub fn trailing_silence(&self) -> usize {
        self.trailing_silence
    }

    /// Speech, then a pause at least as long as the configured one.
    pub fn utterance_ended(&self) -> bool {
        self.pause_samples > 0 && self.heard_speech && self.trailing_silence >= self.pause_samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(ms: usize, amp: f32) -> Vec<f32> {
        (0..ms * 16).map(|i| amp * (i as f32 * 0.2).sin()).collect()
    }

    #[test]
    fn speech_then_a_pause_ends_the_utterance() {
        let mut t = SpeechTracker::new(DEFAULT_THRESHOLD_RMS, 500);
        t.push(&vec![0.0; 16_000]);
        assert!(
            !t.heard_speech() && !t.utterance_ended(),
            "silence alone is no utterance"
        );
        t.push(&tone(800, 0.3));
        assert!(t.heard_speech());
        t.push(&vec![0.0; 400 * 16]);
        assert!(!t.utterance_ended(), "400 ms is not yet the 500 ms pause");
        t.push(&vec![0.001; 120 * 16]);
        assert!(t.utterance_ended());
        t.push(&tone(40, 0.3));
        assert!(!t.utterance_ended(), "speech again resets the pause");
    }

    #[test]
    fn zero_pause_never_ends_by_itself() {
        let mut t = SpeechTracker::new(DEFAULT_THRESHOLD_RMS, 0);
        t.push(&tone(500, 0.3));
        t.push(&vec![0.0; 160_000]);
        assert!(!t.utterance_ended());
    }
}
