//! Audio files at any rate and channel count as 16 kHz mono s16le (the converter itself,
//! [`ToSpeechRate`], lives in `candybar_core::asr::resample`, shared with the server's uploads).

pub use candybar_core::asr::resample::{ResampleError, ToSpeechRate, downmix};

/// Reads a WAV file of any rate, channel count and sample format as 16 kHz mono s16le.
pub fn read_wav_16k(path: &std::path::Path) -> Result<Vec<i16>, ResampleError> {
    let shown = path.display();
    let reader = hound::WavReader::open(path)
        .map_err(|e| ResampleError::File(format!("cannot read {shown}: {e}")))?;
    let spec = reader.spec();
    let bad = |e: hound::Error| ResampleError::File(format!("{shown}: {e}"));
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .into_samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(bad)?,
        hound::SampleFormat::Int => {
            let full = (1u64 << spec.bits_per_sample.clamp(1, 32).saturating_sub(1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 / full))
                .collect::<Result<_, _>>()
                .map_err(bad)?
        }
    };
    let mut mono = Vec::new();
    downmix(&samples, usize::from(spec.channels.max(1)), &mut mono);
    let mut conv = ToSpeechRate::new(spec.sample_rate)?;
    let mut out = Vec::with_capacity(mono.len() * 16_000 / spec.sample_rate.max(1) as usize + 1024);
    conv.push(&mono, &mut out);
    conv.finish(&mut out);
    Ok(out)
}

/// Writes 16 kHz mono s16le samples as a WAV file.
pub fn write_wav_16k(path: &std::path::Path, samples: &[i16]) -> Result<(), ResampleError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: candybar_core::asr::audio::SAMPLE_RATE_HZ,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let shown = path.display();
    let bad = |e: hound::Error| ResampleError::File(format!("cannot write {shown}: {e}"));
    let mut w = hound::WavWriter::create(path, spec).map_err(bad)?;
    for &s in samples {
        w.write_sample(s).map_err(bad)?;
    }
    w.finalize().map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f32, secs: f32) -> Vec<f32> {
        (0..(rate as f32 * secs) as usize)
            .map(|i| 0.5 * (std::f32::consts::TAU * hz * i as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn reads_a_44k_stereo_wav() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stereo.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for s in tone(44_100, 300.0, 0.5) {
            let v = (s * 32_767.0) as i16;
            w.write_sample(v).unwrap();
            w.write_sample(v).unwrap();
        }
        w.finalize().unwrap();
        let out = read_wav_16k(&path).unwrap();
        assert!((7_900..=8_100).contains(&out.len()), "{}", out.len());
        // A 0.5-amplitude sine keeps its level (RMS 0.354); the conversion itself is tested in
        // `candybar_core::asr::resample`.
        let body = &out[500..7_500];
        let rms = (body
            .iter()
            .map(|&s| (f32::from(s) / 32_768.0).powi(2))
            .sum::<f32>()
            / body.len() as f32)
            .sqrt();
        assert!((0.33..0.37).contains(&rms), "{rms}");
        let e = read_wav_16k(&dir.path().join("missing.wav"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.wav"), "{e}");
    }
}
