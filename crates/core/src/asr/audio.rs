//! Speech audio as the engine takes it: 16 kHz mono 16-bit PCM, as samples in -1..1.

/// The sample rate Whisper models take.
pub const SAMPLE_RATE_HZ: u32 = 16_000;

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
}
