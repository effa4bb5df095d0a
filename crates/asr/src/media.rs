//! Audio files of any common kind (WAV, FLAC, MP3, Ogg Vorbis, M4A/AAC, Matroska/WebM with
//! those codecs) decoded with symphonia, downmixed and resampled to 16 kHz mono: what the
//! OpenAI-compatible endpoint accepts as an upload. Opus — a browser's WebM recording, an Ogg
//! voice note — goes to [`crate::opus`] (symphonia has no Opus decoder, and its Matroska reader
//! stops at a live recording's second Cluster).

use candybar_core::asr::audio::{SAMPLE_RATE_HZ, pcm_to_f32};
use candybar_core::asr::resample::{ToSpeechRate, downmix};
use candybar_core::asr::webm::EBML_MAGIC;

use crate::opus::{OpusStream, OpusStreamError, decode_webm};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, CODEC_TYPE_OPUS, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// The longest audio one upload may hold: an hour (115 MB of samples at 16 kHz).
pub const MAX_AUDIO_SECS: u64 = 3600;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MediaError {
    #[error("cannot read it as audio ({0}); send WAV, FLAC, MP3, Ogg (Vorbis, Opus), M4A or WebM")]
    Unreadable(String),
    #[error("the file holds no audio track")]
    NoAudio,
    #[error("the file holds more than {} minutes of audio; split it", MAX_AUDIO_SECS / 60)]
    TooLong,
    #[error("the file's audio is broken: {0}")]
    Broken(String),
}

/// Decodes a whole file to 16 kHz mono samples in -1..1. `extension` (`wav`, `mp3`, …, from the
/// upload's file name) is a hint; the content decides. A demuxer that trips over a hostile file
/// (symphonia's Matroska reader can overflow on a forged header) is an unreadable file, not a
/// crash.
pub fn decode_audio(bytes: Vec<u8>, extension: Option<&str>) -> Result<Vec<f32>, MediaError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_inner(bytes, extension)
    }))
    .unwrap_or_else(|_| {
        Err(MediaError::Unreadable(
            "the decoder gave up on its contents".into(),
        ))
    })
}

fn decode_inner(bytes: Vec<u8>, extension: Option<&str>) -> Result<Vec<f32>, MediaError> {
    let limit = MAX_AUDIO_SECS as usize * SAMPLE_RATE_HZ as usize;
    if bytes.starts_with(&EBML_MAGIC) {
        match decode_webm(&bytes, limit) {
            Ok(samples) if samples.len() > limit => return Err(MediaError::TooLong),
            Ok(samples) if samples.is_empty() => {
                return Err(MediaError::Broken("no Opus packet in the recording".into()));
            }
            Ok(samples) => return Ok(samples),
            // Vorbis in WebM, a file with known sizes: symphonia's reader may do.
            Err(OpusStreamError::Codec(_)) => {}
            Err(e @ OpusStreamError::Webm(_)) => return Err(MediaError::Unreadable(e.to_string())),
            Err(e) => return Err(MediaError::Broken(e.to_string())),
        }
    }
    let mss = MediaSourceStream::new(
        Box::new(std::io::Cursor::new(bytes)),
        symphonia::core::io::MediaSourceStreamOptions::default(),
    );
    let mut hint = Hint::new();
    if let Some(ext) = extension {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            mss,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| MediaError::Unreadable(short(&e)))?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or(MediaError::NoAudio)?;
    let track_id = track.id;
    if track.codec_params.codec == CODEC_TYPE_OPUS {
        let channels = track.codec_params.channels.map_or(1, |c| c.count() as u64);
        let head = track.codec_params.extra_data.as_deref().unwrap_or_default();
        let opus =
            OpusStream::new(channels, head).map_err(|e| MediaError::Broken(e.to_string()))?;
        return decode_opus_packets(format.as_mut(), track_id, opus, limit);
    }
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| MediaError::Unreadable(short(&e)))?;

    let mut conv: Option<(u32, ToSpeechRate)> = None;
    let mut out: Vec<i16> = Vec::new();
    let mut mono = Vec::new();
    let mut decoded_any = false;
    while let Some(packet) = next_packet(format.as_mut(), track_id)? {
        let buf = match decoder.decode(&packet) {
            Ok(b) => b,
            // One damaged packet: skip it, as players do.
            Err(SymphoniaError::DecodeError(_)) => continue,
            Err(SymphoniaError::IoError(_)) => break,
            Err(e) => return Err(MediaError::Broken(short(&e))),
        };
        let spec = *buf.spec();
        let mut samples = SampleBuffer::<f32>::new(buf.capacity() as u64, spec);
        samples.copy_interleaved_ref(buf);
        downmix(samples.samples(), spec.channels.count(), &mut mono);
        if conv.is_none() {
            let c = ToSpeechRate::new(spec.rate).map_err(|e| MediaError::Broken(e.to_string()))?;
            conv = Some((spec.rate, c));
        }
        let Some((rate, c)) = &mut conv else {
            continue;
        };
        if *rate != spec.rate {
            return Err(MediaError::Broken(format!(
                "the sample rate changes mid-file ({rate} Hz, then {} Hz)",
                spec.rate
            )));
        }
        c.push(&mono, &mut out);
        decoded_any = true;
        if out.len() > limit {
            return Err(MediaError::TooLong);
        }
    }
    if let Some((_, c)) = &mut conv {
        c.finish(&mut out);
    }
    if !decoded_any {
        return Err(MediaError::Broken("no packet could be decoded".into()));
    }
    Ok(out.into_iter().map(pcm_to_f32).collect())
}

/// The track's next packet; `None` at the end of the file.
fn next_packet(
    format: &mut dyn symphonia::core::formats::FormatReader,
    track_id: u32,
) -> Result<Option<symphonia::core::formats::Packet>, MediaError> {
    loop {
        match format.next_packet() {
            Ok(p) if p.track_id() == track_id => return Ok(Some(p)),
            Ok(_) => {}
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(None);
            }
            Err(SymphoniaError::ResetRequired) => return Ok(None),
            Err(e) => return Err(MediaError::Broken(short(&e))),
        }
    }
}

/// Opus packets from symphonia's demuxer (Ogg), decoded by [`OpusStream`].
fn decode_opus_packets(
    format: &mut dyn symphonia::core::formats::FormatReader,
    track_id: u32,
    mut opus: OpusStream,
    limit: usize,
) -> Result<Vec<f32>, MediaError> {
    let mut out = Vec::new();
    while let Some(packet) = next_packet(format, track_id)? {
        // One damaged packet: skip it, as players do.
        let _ = opus.decode(&packet.data, &mut out);
        if out.len() > limit {
            return Err(MediaError::TooLong);
        }
    }
    if out.is_empty() {
        return Err(MediaError::Broken("no packet could be decoded".into()));
    }
    Ok(out)
}

/// An error's first line, at most 200 characters (no file contents echoed back).
fn short(e: &SymphoniaError) -> String {
    candybar_core::text::first_line(&e.to_string(), 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(rate: u32, channels: u16, secs: f32) -> Vec<u8> {
        let mut cur = std::io::Cursor::new(Vec::new());
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(&mut cur, spec).expect("writer");
        for i in 0..(rate as f32 * secs) as usize {
            let v = (0.5
                * (std::f32::consts::TAU * 300.0 * i as f32 / rate as f32).sin()
                * 32_767.0) as i16;
            for _ in 0..channels {
                w.write_sample(v).expect("sample");
            }
        }
        w.finalize().expect("finalize");
        cur.into_inner()
    }

    #[test]
    fn a_44k_stereo_wav_comes_out_16k_mono_of_the_same_length() {
        let out = decode_audio(wav(44_100, 2, 1.5), Some("wav")).expect("decodes");
        assert!((23_800..=24_200).contains(&out.len()), "{}", out.len());
        let peak = out.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!((0.4..0.6).contains(&peak), "{peak}");
    }

    #[test]
    fn garbage_and_truncated_files_are_errors_not_panics() {
        let e = decode_audio(b"not audio at all".repeat(100), Some("mp3")).unwrap_err();
        assert!(matches!(e, MediaError::Unreadable(_)), "{e}");
        assert!(e.to_string().contains("send WAV"), "{e}");
        let mut cut = wav(16_000, 1, 1.0);
        cut.truncate(100);
        // A header and a few samples: whatever is there, or an error; never a panic.
        if let Ok(samples) = decode_audio(cut, None) {
            assert!(samples.len() < 100, "{}", samples.len());
        }
        assert!(decode_audio(Vec::new(), None).is_err());
        // A forged Matroska header (the EBML magic, then junk) trips symphonia's demuxer.
        let mut forged = vec![0x1a, 0x45, 0xdf, 0xa3];
        forged.extend((0..=255u8).cycle().take(10_240));
        let e = decode_audio(forged, Some("webm")).unwrap_err();
        assert!(e.to_string().contains("send WAV"), "{e}");
        // A header claiming 2,147,483,647 samples a second: refused before any buffer is sized
        // by it (the resampler's would be gigabytes).
        let mut absurd = wav(16_000, 1, 0.5);
        absurd[24..28].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        let e = decode_audio(absurd, Some("wav")).unwrap_err();
        assert!(e.to_string().contains("384000 Hz"), "{e}");
    }
}
