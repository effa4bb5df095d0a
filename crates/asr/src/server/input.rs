//! What a client sends on `/asr`: raw 16 kHz s16le PCM (our clients, WhisperLiveKit's page in
//! `--pcm-input` mode) or a WebM/Opus recording (WhisperLiveKit's page by default, its browser
//! extension: `MediaRecorder` chunks), told apart by the stream's first bytes.

use candybar_core::asr::audio::{SAMPLE_RATE_HZ, s16le_to_f32};
use candybar_core::asr::webm::EBML_MAGIC;

use crate::opus::WebmOpusStream;

/// The most audio one frame may decode to: a minute. A hostile WebM chunk of tiny packets would
/// otherwise expand a megabyte into gigabytes of samples.
const MAX_SECS_PER_FRAME: usize = 60;

#[derive(Default)]
pub enum AudioInput {
    /// Nothing received yet.
    #[default]
    Undecided,
    Pcm {
        /// A frame may end halfway through a sample: its first byte waits for the next frame.
        odd_byte: Option<u8>,
    },
    Webm(Box<WebmOpusStream>),
}

impl AudioInput {
    /// Appends the samples in one binary frame to `samples`; an error is for the client (its
    /// stream cannot be read further).
    pub fn push(&mut self, bytes: &[u8], samples: &mut Vec<f32>) -> Result<(), String> {
        if matches!(self, Self::Undecided) {
            *self = if bytes.starts_with(&EBML_MAGIC) {
                Self::Webm(Box::default())
            } else {
                Self::Pcm { odd_byte: None }
            };
        }
        match self {
            Self::Undecided => Ok(()),
            Self::Pcm { odd_byte } => {
                // Clients may cut frames anywhere: a byte left over is the first half of the
                // next frame's first sample.
                let joined;
                let mut pcm: &[u8] = bytes;
                if let Some(b) = odd_byte.take() {
                    joined = [&[b][..], bytes].concat();
                    pcm = &joined;
                }
                if pcm.len() % 2 == 1 {
                    *odd_byte = pcm.last().copied();
                    pcm = &pcm[..pcm.len() - 1];
                }
                s16le_to_f32(pcm, samples);
                Ok(())
            }
            Self::Webm(stream) => {
                let before = samples.len();
                let limit = MAX_SECS_PER_FRAME * SAMPLE_RATE_HZ as usize;
                stream
                    .push(bytes, samples, limit)
                    .map_err(|e| format!("{e}: the WebM/Opus stream cannot be read further"))?;
                if samples.len() - before > limit {
                    samples.truncate(before);
                    return Err(format!(
                        "one frame held more than {MAX_SECS_PER_FRAME} s of audio: send a \
                         recording in chunks (MediaRecorder's timeslice)"
                    ));
                }
                Ok(())
            }
        }
    }

    /// At the end of an utterance: half a sample is not audio. A WebM stream goes on.
    pub fn end_utterance(&mut self) {
        if let Self::Pcm { odd_byte } = self {
            *odd_byte = None;
        }
    }
}
