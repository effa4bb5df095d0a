//! Audio input for the engine: 16 kHz mono 16-bit PCM, from WAV files or raw frames.

use std::path::Path;

/// The sample rate Whisper models take.
pub const SAMPLE_RATE_HZ: u32 = 16_000;

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error(
        "{path} is {rate} Hz, {channels} channel(s), {bits}-bit {format}; expected 16000 Hz mono 16-bit PCM \
         (convert it with: sox in.wav -r 16000 -c 1 -b 16 out.wav)"
    )]
    Format {
        path: String,
        rate: u32,
        channels: u16,
        bits: u16,
        format: &'static str,
    },
}

/// Reads a 16 kHz mono 16-bit WAV file as samples in -1..1.
pub fn read_wav(path: &Path) -> Result<Vec<f32>, AudioError> {
    let shown = path.display().to_string();
    let reader = hound::WavReader::open(path).map_err(|e| AudioError::Read {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let spec = reader.spec();
    if spec.sample_rate != SAMPLE_RATE_HZ
        || spec.channels != 1
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        return Err(AudioError::Format {
            path: shown,
            rate: spec.sample_rate,
            channels: spec.channels,
            bits: spec.bits_per_sample,
            format: if spec.sample_format == hound::SampleFormat::Int {
                "integer"
            } else {
                "float"
            },
        });
    }
    reader
        .into_samples::<i16>()
        .map(|s| s.map(pcm_to_f32))
        .collect::<Result<Vec<f32>, _>>()
        .map_err(|e| AudioError::Read {
            path: shown,
            reason: e.to_string(),
        })
}

/// One s16le sample as -1..1.
pub fn pcm_to_f32(s: i16) -> f32 {
    f32::from(s) / 32_768.0
}

/// s16le bytes (as the `/asr` protocol sends them) as samples; a trailing odd byte is ignored
/// (the caller reports it).
pub fn s16le_to_f32(bytes: &[u8], out: &mut Vec<f32>) {
    out.extend(
        bytes
            .chunks_exact(2)
            .map(|c| pcm_to_f32(i16::from_le_bytes([c[0], c[1]]))),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm_conversion() {
        let mut v = Vec::new();
        s16le_to_f32(&[0x00, 0x80, 0xff, 0x7f, 0x00, 0x00, 0x01], &mut v);
        assert_eq!(v.len(), 3);
        assert!((v[0] + 1.0).abs() < 1e-6);
        assert!((v[1] - 32_767.0 / 32_768.0).abs() < 1e-6);
        assert!(v[2].abs() < f32::EPSILON);
    }

    #[test]
    fn wrong_formats_say_how_to_convert() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("stereo.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&p, spec).unwrap();
        w.write_sample(0i16).unwrap();
        w.write_sample(0i16).unwrap();
        w.finalize().unwrap();
        let e = read_wav(&p).unwrap_err().to_string();
        assert!(
            e.contains("44100 Hz, 2 channel(s)") && e.contains("sox in.wav -r 16000"),
            "{e}"
        );
        let junk = dir.path().join("junk.wav");
        std::fs::write(&junk, b"not a wav file at all").unwrap();
        assert!(
            read_wav(&junk)
                .unwrap_err()
                .to_string()
                .starts_with("cannot read")
        );
    }
}
