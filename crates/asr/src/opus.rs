//! Opus — what browsers record (WebM from `MediaRecorder`) and what voice notes keep (Ogg) —
//! decoded straight to 16 kHz mono, the rate Whisper reads: an Opus decoder renders any of its
//! rates itself, so the rate a client claims cannot be wrong for us.
//!
//! The decoder is opus-decoder (pure Rust, RFC 8251's conformance vectors pass): no C library to
//! install or ship. A packet that trips it is an error for that stream, never a crash.

use candybar_core::asr::audio::SAMPLE_RATE_HZ;
use candybar_core::asr::webm::{AudioTrack, WebmDemuxer, WebmError};
use opus_decoder::OpusDecoder;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpusStreamError {
    #[error(transparent)]
    Webm(#[from] WebmError),
    #[error("the recording's audio is {0}; only Opus is read from WebM (browsers record Opus)")]
    Codec(String),
    #[error("Opus with {0} channels: send mono or stereo")]
    Channels(u64),
    #[error("an Opus packet cannot be decoded: {0}")]
    Packet(String),
}

/// One Opus stream's decoder: packets in, 16 kHz mono samples in -1..1 out.
pub struct OpusStream {
    decoder: OpusDecoder,
    channels: usize,
    /// Samples (at 16 kHz) still to drop from the start: the encoder's look-ahead (`pre-skip`).
    skip_samples: usize,
    scratch: Vec<f32>,
}

impl OpusStream {
    /// `head` is the stream's `OpusHead` (Matroska's `CodecPrivate`, Ogg's first packet), if any.
    pub fn new(channels: u64, head: &[u8]) -> Result<Self, OpusStreamError> {
        let channels = match channels {
            1 => 1,
            2 => 2,
            n => return Err(OpusStreamError::Channels(n)),
        };
        let decoder = OpusDecoder::new(SAMPLE_RATE_HZ, channels)
            .map_err(|e| OpusStreamError::Packet(e.to_string()))?;
        // OpusHead: magic (8), version, channels, pre-skip (u16 LE, at 48 kHz), …
        let pre_skip_48k = match head {
            [
                b'O',
                b'p',
                b'u',
                b's',
                b'H',
                b'e',
                b'a',
                b'd',
                _,
                _,
                lo,
                hi,
                ..,
            ] => usize::from(u16::from_le_bytes([*lo, *hi])),
            _ => 0,
        };
        Ok(Self {
            scratch: vec![0.0; decoder.max_frame_size_per_channel() * channels],
            decoder,
            channels,
            skip_samples: pre_skip_48k * SAMPLE_RATE_HZ as usize / 48_000,
        })
    }

    /// Decodes one packet, appending its samples (mono, 16 kHz) to `out`.
    pub fn decode(&mut self, packet: &[u8], out: &mut Vec<f32>) -> Result<(), OpusStreamError> {
        if packet.is_empty() {
            return Ok(()); // nothing sent (the decoder would conceal a loss instead)
        }
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.decoder.decode_float(packet, &mut self.scratch, false)
        }));
        let per_channel = match decoded {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(OpusStreamError::Packet(e.to_string())),
            Err(_) => {
                self.decoder.reset();
                return Err(OpusStreamError::Packet(
                    "the decoder gave up on it".to_owned(),
                ));
            }
        };
        let frames = self
            .scratch
            .get(..per_channel * self.channels)
            .unwrap_or_default()
            .chunks_exact(self.channels);
        let start = out.len();
        out.extend(frames.map(|f| f.iter().sum::<f32>() / self.channels as f32));
        if self.skip_samples > 0 {
            let n = self.skip_samples.min(out.len() - start);
            out.drain(start..start + n);
            self.skip_samples -= n;
        }
        Ok(())
    }
}

/// A WebM/Opus stream as a browser sends it, chunk by chunk: bytes in, 16 kHz mono out.
#[derive(Default)]
pub struct WebmOpusStream {
    demuxer: WebmDemuxer,
    opus: Option<OpusStream>,
    frames: Vec<Vec<u8>>,
}

impl WebmOpusStream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next chunk of the recording; appends the samples it completes to `out`,
    /// stopping once more than `max_samples` were added (the caller decides what that means).
    pub fn push(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<f32>,
        max_samples: usize,
    ) -> Result<(), OpusStreamError> {
        self.demuxer.push(chunk, &mut self.frames)?;
        if self.frames.is_empty() {
            return Ok(());
        }
        if self.opus.is_none() {
            let track = self.demuxer.audio_track().cloned().unwrap_or_default();
            self.opus = Some(opus_for(&track)?);
        }
        let start = out.len();
        if let Some(opus) = &mut self.opus {
            for frame in self.frames.drain(..) {
                opus.decode(&frame, out)?;
                if out.len() - start > max_samples {
                    break;
                }
            }
            self.frames.clear();
        }
        Ok(())
    }
}

fn opus_for(track: &AudioTrack) -> Result<OpusStream, OpusStreamError> {
    if track.codec != "A_OPUS" {
        return Err(OpusStreamError::Codec(if track.codec.is_empty() {
            "of no declared codec".to_owned()
        } else {
            track.codec.chars().take(32).collect()
        }));
    }
    OpusStream::new(track.channels, &track.codec_private)
}

/// A whole WebM/Opus file (an upload) to 16 kHz mono.
pub fn decode_webm(bytes: &[u8], max_samples: usize) -> Result<Vec<f32>, OpusStreamError> {
    let mut stream = WebmOpusStream::new();
    let mut out = Vec::new();
    // In pieces, so a long file is refused once it passes the limit, not after it is decoded.
    for chunk in bytes.chunks(64 * 1024) {
        stream.push(chunk, &mut out, max_samples)?;
        if out.len() > max_samples {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_counts_opus_cannot_carry_plainly_are_refused() {
        assert!(OpusStream::new(1, b"").is_ok());
        assert!(OpusStream::new(2, b"").is_ok());
        assert_eq!(
            OpusStream::new(6, b"").err(),
            Some(OpusStreamError::Channels(6))
        );
    }

    #[test]
    fn random_packets_are_errors_or_audio_never_a_crash() {
        use rand::{Rng as _, SeedableRng as _};
        let mut rng = rand_pcg::Pcg64::seed_from_u64(3);
        let mut opus = OpusStream::new(2, b"").unwrap();
        let mut out = Vec::new();
        for _ in 0..500 {
            let len = rng.random_range(1..300);
            let packet: Vec<u8> = (0..len).map(|_| rng.random::<u8>()).collect();
            let _ = opus.decode(&packet, &mut out);
        }
        assert!(out.iter().all(|s| s.is_finite() && s.abs() <= 1.0));
    }

    #[test]
    fn a_recording_of_another_codec_says_which() {
        let e = opus_for(&AudioTrack {
            codec: "A_VORBIS".into(),
            channels: 1,
            ..AudioTrack::default()
        })
        .err()
        .unwrap();
        assert_eq!(
            e.to_string(),
            "the recording's audio is A_VORBIS; only Opus is read from WebM (browsers record Opus)"
        );
    }
}
