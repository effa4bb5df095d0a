//! Any sample rate and channel count → 16 kHz mono s16le, the only audio an ASR server takes.
//! Channels are averaged; the rate is converted by rubato's FFT resampler (band-limited, so no
//! aliasing from 48 kHz microphones), never by dropping samples.

use crate::asr::audio::SAMPLE_RATE_HZ;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _};

#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    #[error("cannot convert {rate} Hz audio to 16 kHz: {reason}")]
    Setup { rate: u32, reason: String },
    #[error("{0}")]
    File(String),
}

/// The highest rate taken (384 kHz, the most any audio interface records at).
pub const MAX_RATE_HZ: u32 = 384_000;

/// A streaming converter from mono `f32` at the device's rate to 16 kHz `i16`.
pub struct ToSpeechRate {
    /// `None` when the input is already 16 kHz.
    fft: Option<Fft<f32>>,
    /// Input not yet resampled (less than one chunk).
    pending: Vec<f32>,
    out: Vec<f32>,
    /// Output frames still to drop: the resampler's delay, so the output lines up with the input.
    skip: usize,
    rate_hz: u32,
    /// Real input taken and output given, to end the stream at exactly the right length.
    in_frames: u64,
    out_frames: u64,
}

fn to_i16(s: f32) -> i16 {
    (s * 32_768.0).clamp(-32_768.0, 32_767.0) as i16
}

impl ToSpeechRate {
    pub fn new(rate_hz: u32) -> Result<Self, ResampleError> {
        if rate_hz == SAMPLE_RATE_HZ {
            return Ok(Self {
                fft: None,
                pending: Vec::new(),
                out: Vec::new(),
                skip: 0,
                rate_hz,
                in_frames: 0,
                out_frames: 0,
            });
        }
        if rate_hz < 1000 {
            return Err(ResampleError::Setup {
                rate: rate_hz,
                reason: "the rate is too low to carry speech".into(),
            });
        }
        // A file's header can claim any rate; the resampler's buffers grow with it.
        if rate_hz > MAX_RATE_HZ {
            return Err(ResampleError::Setup {
                rate: rate_hz,
                reason: format!("audio devices and files stop at {MAX_RATE_HZ} Hz"),
            });
        }
        // 20 ms chunks: short enough that capture stays live, long enough to be efficient.
        let chunk = (rate_hz / 50) as usize;
        let fft = Fft::<f32>::new(
            rate_hz as usize,
            SAMPLE_RATE_HZ as usize,
            chunk,
            1,
            FixedSync::Input,
        )
        .map_err(|e| ResampleError::Setup {
            rate: rate_hz,
            reason: e.to_string(),
        })?;
        let out = vec![0.0; fft.output_frames_max()];
        let skip = fft.output_delay();
        Ok(Self {
            fft: Some(fft),
            pending: Vec::with_capacity(chunk * 2),
            out,
            skip,
            rate_hz,
            in_frames: 0,
            out_frames: 0,
        })
    }

    /// Converts `mono` and appends the 16 kHz samples ready so far to `sink`.
    pub fn push(&mut self, mono: &[f32], sink: &mut Vec<i16>) {
        let Some(fft) = &mut self.fft else {
            sink.extend(mono.iter().map(|&s| to_i16(s)));
            return;
        };
        self.in_frames += mono.len() as u64;
        self.pending.extend_from_slice(mono);
        loop {
            let need = fft.input_frames_next();
            if self.pending.len() < need {
                return;
            }
            let (Ok(input), Ok(mut output)) = (
                InterleavedSlice::new(&self.pending[..need], 1, need),
                InterleavedSlice::new_mut(&mut self.out[..], 1, fft.output_frames_max()),
            ) else {
                return;
            };
            let Ok((read, written)) = fft.process_into_buffer(&input, &mut output, None) else {
                // Sizes come from the resampler itself; a failure would be a bug, not bad input.
                self.pending.clear();
                return;
            };
            self.pending.drain(..read);
            let drop = self.skip.min(written);
            self.skip -= drop;
            self.out_frames += (written - drop) as u64;
            sink.extend(self.out[drop..written].iter().map(|&s| to_i16(s)));
        }
    }

    /// Ends the stream: pushes silence through so the last real samples come out, and no more.
    pub fn finish(&mut self, sink: &mut Vec<i16>) {
        let Some(fft) = &self.fft else { return };
        let due = self.in_frames * u64::from(SAMPLE_RATE_HZ) / u64::from(self.rate_hz);
        let missing = due.saturating_sub(self.out_frames) as usize;
        if missing == 0 {
            return;
        }
        let silence = vec![0.0; fft.input_frames_next() * 2 + fft.output_delay() * 4];
        let (in_before, before) = (self.in_frames, sink.len());
        self.push(&silence, sink);
        self.in_frames = in_before;
        sink.truncate(before + missing.min(sink.len() - before));
        self.out_frames = due;
    }
}

/// Averages interleaved channels into one.
pub fn downmix(interleaved: &[f32], channels: usize, mono: &mut Vec<f32>) {
    mono.clear();
    if channels <= 1 {
        mono.extend_from_slice(interleaved);
        return;
    }
    let scale = 1.0 / channels as f32;
    mono.extend(
        interleaved
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() * scale),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f32, secs: f32) -> Vec<f32> {
        (0..(rate as f32 * secs) as usize)
            .map(|i| 0.5 * (std::f32::consts::TAU * hz * i as f32 / rate as f32).sin())
            .collect()
    }

    /// Strength of `hz` in 16 kHz samples (a single-bin DFT).
    fn level_at(samples: &[i16], hz: f32) -> f32 {
        let (mut re, mut im) = (0.0f32, 0.0f32);
        for (i, &s) in samples.iter().enumerate() {
            let ph = std::f32::consts::TAU * hz * i as f32 / 16_000.0;
            re += f32::from(s) * ph.cos();
            im += f32::from(s) * ph.sin();
        }
        (re * re + im * im).sqrt() / samples.len() as f32 / 32_768.0 * 2.0
    }

    #[test]
    fn converts_48k_in_small_callbacks_keeping_length_and_pitch() {
        let input = tone(48_000, 440.0, 1.0);
        let mut conv = ToSpeechRate::new(48_000).unwrap();
        let mut out = Vec::new();
        // Microphone callbacks of odd sizes.
        for chunk in input.chunks(441) {
            conv.push(chunk, &mut out);
        }
        conv.finish(&mut out);
        assert!(
            (15_900..=16_100).contains(&out.len()),
            "{} samples",
            out.len()
        );
        let body = &out[1000..15_000];
        assert!(level_at(body, 440.0) > 0.45, "{}", level_at(body, 440.0));
        assert!(level_at(body, 1320.0) < 0.01);
    }

    #[test]
    fn removes_what_16k_cannot_carry_instead_of_aliasing_it() {
        // 10 kHz is above 16 kHz's Nyquist limit: dropping samples would fold it to 6 kHz.
        let input = tone(48_000, 10_000.0, 0.5);
        let mut conv = ToSpeechRate::new(48_000).unwrap();
        let mut out = Vec::new();
        conv.push(&input, &mut out);
        assert!(level_at(&out[500..], 6_000.0) < 0.01);
    }

    #[test]
    fn sixteen_k_passes_through_and_channels_average() {
        let mut conv = ToSpeechRate::new(16_000).unwrap();
        let mut out = Vec::new();
        conv.push(&[0.5, -0.5], &mut out);
        assert_eq!(out, [16_384, -16_384]);
        let mut mono = Vec::new();
        downmix(&[1.0, 0.0, 0.5, 0.5], 2, &mut mono);
        assert_eq!(mono, [0.5, 0.5]);
        assert!(ToSpeechRate::new(10).is_err());
    }
}
