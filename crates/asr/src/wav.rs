//! 16 kHz mono 16-bit WAV files (test clips, `asr transcribe`, benchmarks).

use std::path::Path;

use candybar_core::asr::audio::{SAMPLE_RATE_HZ, pcm_to_f32};

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

#[cfg(test)]
mod tests {
    use super::*;

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
