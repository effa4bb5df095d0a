//! WebM as a browser records it (`MediaRecorder`, `audio/webm;codecs=opus`), demuxed as it
//! arrives: bytes in, the audio track's frames out, whatever way the stream is cut into chunks.
//!
//! Why not a crate: a live recording leaves the Segment and every Cluster without a size (the
//! recorder cannot seek back to write it), which symphonia-format-mkv 0.5 rejects at the second
//! Cluster (Symphonia#541), and ebml-iterable pulls from a blocking `Read`, which a WebSocket
//! connection is not. Reading the audio subset needs little: containers are walked through (so a
//! missing size costs nothing), the few leaves we read are buffered up to a limit, everything else
//! is skipped without being held.

/// The first four bytes of every EBML (Matroska, WebM) stream.
pub const EBML_MAGIC: [u8; 4] = [0x1A, 0x45, 0xDF, 0xA3];

/// The largest element we hold in memory to read (a block of laced frames, codec data); larger
/// ones we do not need are skipped as they stream past.
pub const MAX_ELEMENT_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebmError {
    #[error("not WebM: it does not start with an EBML header")]
    NotWebm,
    #[error("broken WebM: {0}")]
    Broken(String),
    #[error("a WebM element of {0} bytes is over the limit of {MAX_ELEMENT_BYTES} bytes")]
    TooBig(u64),
}

/// The audio track a recording carries, as its `TrackEntry` says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioTrack {
    pub number: u64,
    /// Matroska's codec id: `A_OPUS` from browsers, `A_VORBIS`, `A_AAC`, …
    pub codec: String,
    /// The codec's setup (Opus: its `OpusHead`).
    pub codec_private: Vec<u8>,
    pub channels: u64,
    pub rate_hz: f64,
}

/// Elements we step into (their children follow) rather than read or skip.
const SEGMENT: u32 = 0x1853_8067;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const AUDIO: u32 = 0xE1;
const CLUSTER: u32 = 0x1F43_B675;
const BLOCK_GROUP: u32 = 0xA0;
/// Leaves we read.
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_TYPE: u32 = 0x83;
const CODEC_ID: u32 = 0x86;
const CODEC_PRIVATE: u32 = 0x63A2;
const SAMPLING_FREQUENCY: u32 = 0xB5;
const CHANNELS: u32 = 0x9F;
const SIMPLE_BLOCK: u32 = 0xA3;
const BLOCK: u32 = 0xA1;
#[cfg(test)]
const EBML_HEADER: u32 = 0x1A45_DFA3;

/// Matroska's track type for audio.
const TRACK_TYPE_AUDIO: u64 = 2;

/// Reads a WebM stream chunk by chunk.
#[derive(Debug, Default)]
pub struct WebmDemuxer {
    /// Bytes received and not yet consumed: at most one element header or one leaf we read.
    pending: Vec<u8>,
    /// Bytes still to drop of an element we skip.
    skip_bytes: u64,
    /// Whether the stream's EBML header has been seen.
    started: bool,
    /// The tracks declared so far in this Segment.
    tracks: Vec<Track>,
    /// The audio track, chosen at the first block.
    audio: Option<AudioTrack>,
}

#[derive(Debug, Default, Clone)]
struct Track {
    number: u64,
    kind: u64,
    codec: String,
    codec_private: Vec<u8>,
    channels: u64,
    rate_hz: f64,
}

impl WebmDemuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held for an element cut by a chunk's end.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    /// The audio track, once the first block has arrived.
    pub fn audio_track(&self) -> Option<&AudioTrack> {
        self.audio.as_ref()
    }

    /// Takes the next chunk of the stream; appends the audio track's frames (one codec packet
    /// each) to `frames`. An element cut by the chunk's end waits for the next chunk.
    pub fn push(&mut self, bytes: &[u8], frames: &mut Vec<Vec<u8>>) -> Result<(), WebmError> {
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(bytes);
        let mut at = 0;
        loop {
            if self.skip_bytes > 0 {
                let n = usize::try_from(self.skip_bytes)
                    .unwrap_or(usize::MAX)
                    .min(buf.len() - at);
                self.skip_bytes -= n as u64;
                at += n;
                if self.skip_bytes > 0 {
                    break;
                }
            }
            if at == buf.len() {
                break;
            }
            match self.step(&buf[at..], frames)? {
                Step::NeedMore => break,
                Step::Consumed(n) => at += n,
            }
        }
        buf.drain(..at);
        self.pending = buf;
        Ok(())
    }

    /// Reads one element header (and the leaf, when we read it) from the start of `buf`.
    fn step(&mut self, buf: &[u8], frames: &mut Vec<Vec<u8>>) -> Result<Step, WebmError> {
        if !self.started {
            if buf.len() < EBML_MAGIC.len() {
                return if EBML_MAGIC.starts_with(buf) {
                    Ok(Step::NeedMore)
                } else {
                    Err(WebmError::NotWebm)
                };
            }
            if buf[..4] != EBML_MAGIC {
                return Err(WebmError::NotWebm);
            }
            self.started = true;
        }
        let Some((id, id_len)) = read_id(buf)? else {
            return Ok(Step::NeedMore);
        };
        let Some((size, size_len)) = read_size(&buf[id_len..])? else {
            return Ok(Step::NeedMore);
        };
        let header = id_len + size_len;
        match id {
            SEGMENT => {
                // A new recording (a browser restarts its recorder on reconnect): new tracks.
                self.tracks.clear();
                self.audio = None;
                return Ok(Step::Consumed(header));
            }
            TRACKS | AUDIO | CLUSTER | BLOCK_GROUP => return Ok(Step::Consumed(header)),
            TRACK_ENTRY => {
                self.tracks.push(Track::default());
                return Ok(Step::Consumed(header));
            }
            _ => {}
        }
        let Some(size) = size else {
            return Err(WebmError::Broken(format!(
                "element {id:#x} has no size and cannot be skipped"
            )));
        };
        if !reads(id) {
            let have = (buf.len() - header) as u64;
            if size <= have {
                // `size` fits in the buffer, hence in usize.
                return Ok(Step::Consumed(header + size as usize));
            }
            self.skip_bytes = size - have;
            return Ok(Step::Consumed(buf.len()));
        }
        if size > MAX_ELEMENT_BYTES as u64 {
            return Err(WebmError::TooBig(size));
        }
        let size = size as usize; // under MAX_ELEMENT_BYTES
        let Some(body) = buf.get(header..header + size) else {
            return Ok(Step::NeedMore);
        };
        self.leaf(id, body, frames)?;
        Ok(Step::Consumed(header + size))
    }

    fn leaf(&mut self, id: u32, body: &[u8], frames: &mut Vec<Vec<u8>>) -> Result<(), WebmError> {
        if let SIMPLE_BLOCK | BLOCK = id {
            return self.block(body, frames);
        }
        let Some(track) = self.tracks.last_mut() else {
            return Ok(()); // a track field outside a TrackEntry: nothing to attach it to
        };
        match id {
            TRACK_NUMBER => track.number = read_uint(body)?,
            TRACK_TYPE => track.kind = read_uint(body)?,
            CODEC_ID => {
                track.codec.clear();
                track
                    .codec
                    .push_str(String::from_utf8_lossy(body).trim_end_matches('\0'));
            }
            CODEC_PRIVATE => track.codec_private = body.to_vec(),
            SAMPLING_FREQUENCY => track.rate_hz = read_float(body)?,
            CHANNELS => track.channels = read_uint(body)?,
            _ => {}
        }
        Ok(())
    }

    fn block(&mut self, body: &[u8], frames: &mut Vec<Vec<u8>>) -> Result<(), WebmError> {
        let (track, n) = read_vint(body)?
            .ok_or_else(|| WebmError::Broken("a block too short for its track number".into()))?;
        if self.audio.is_none() {
            let chosen = self
                .tracks
                .iter()
                .find(|t| t.kind == TRACK_TYPE_AUDIO || t.codec.starts_with("A_"))
                .ok_or_else(|| {
                    WebmError::Broken("a block came before any audio track was declared".into())
                })?;
            self.audio = Some(AudioTrack {
                number: chosen.number,
                codec: chosen.codec.clone(),
                codec_private: chosen.codec_private.clone(),
                // Matroska's defaults when a track leaves them out.
                channels: if chosen.channels == 0 {
                    1
                } else {
                    chosen.channels
                },
                rate_hz: if chosen.rate_hz > 0.0 {
                    chosen.rate_hz
                } else {
                    8000.0
                },
            });
        }
        if self.audio.as_ref().map(|a| a.number) != Some(track) {
            return Ok(()); // another track's block (video)
        }
        // Track number, 16-bit timecode, flags.
        let rest = body
            .get(n + 2..)
            .ok_or_else(|| WebmError::Broken("a block cut short before its flags".into()))?;
        let (&flags, laced) = rest
            .split_first()
            .ok_or_else(|| WebmError::Broken("a block cut short before its flags".into()))?;
        unlace(flags, laced, frames)
    }
}

enum Step {
    NeedMore,
    Consumed(usize),
}

/// Whether we read this element's contents (else we skip them).
fn reads(id: u32) -> bool {
    matches!(
        id,
        TRACK_NUMBER
            | TRACK_TYPE
            | CODEC_ID
            | CODEC_PRIVATE
            | SAMPLING_FREQUENCY
            | CHANNELS
            | SIMPLE_BLOCK
            | BLOCK
    )
}

/// A block's frames: one, or several by Xiph, fixed-size or EBML lacing.
fn unlace(flags: u8, data: &[u8], frames: &mut Vec<Vec<u8>>) -> Result<(), WebmError> {
    let short = || WebmError::Broken("a laced block is shorter than its frame sizes say".into());
    let lacing = (flags >> 1) & 0b11;
    if lacing == 0 {
        frames.push(data.to_vec());
        return Ok(());
    }
    let (&count_minus_one, mut rest) = data.split_first().ok_or_else(short)?;
    let count = usize::from(count_minus_one) + 1;
    let mut sizes = Vec::with_capacity(count);
    match lacing {
        // Xiph: each size but the last as a run of 255s and a final byte.
        0b01 => {
            for _ in 1..count {
                let mut size = 0usize;
                loop {
                    let (&b, r) = rest.split_first().ok_or_else(short)?;
                    rest = r;
                    size += usize::from(b);
                    if b != 255 {
                        break;
                    }
                }
                sizes.push(size);
            }
        }
        // Fixed: the rest split evenly.
        0b10 => {
            if rest.len() % count != 0 {
                return Err(short());
            }
            sizes.resize(count - 1, rest.len() / count);
        }
        // EBML: the first size, then signed differences.
        _ => {
            let (first, n) = read_vint(rest)?.ok_or_else(short)?;
            rest = &rest[n..];
            let mut size = i64::try_from(first).map_err(|_| short())?;
            sizes.push(usize::try_from(size).map_err(|_| short())?);
            for _ in 2..count {
                let (raw, n) = read_vint(rest)?.ok_or_else(short)?;
                rest = &rest[n..];
                // Signed: subtract the bias of a vint this long (2^(7n-1) - 1).
                let bias = (1i64 << (7 * n - 1)) - 1;
                size += i64::try_from(raw).map_err(|_| short())? - bias;
                sizes.push(usize::try_from(size).map_err(|_| short())?);
            }
        }
    }
    for size in sizes {
        let (frame, r) = rest.split_at_checked(size).ok_or_else(short)?;
        frames.push(frame.to_vec());
        rest = r;
    }
    frames.push(rest.to_vec());
    Ok(())
}

/// An element id (its length marker kept, as ids are written): `None` when cut short.
fn read_id(buf: &[u8]) -> Result<Option<(u32, usize)>, WebmError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let len = first.leading_zeros() as usize + 1;
    if len > 4 {
        return Err(WebmError::Broken(format!(
            "byte {first:#04x} cannot start an element id"
        )));
    }
    let Some(bytes) = buf.get(..len) else {
        return Ok(None);
    };
    let id = bytes.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
    Ok(Some((id, len)))
}

/// An element size: `Some(None)` for "unknown" (all value bits set), `None` when cut short.
#[allow(clippy::option_option)] // cut short / unknown size / a size: three cases the caller needs
fn read_size(buf: &[u8]) -> Result<Option<(Option<u64>, usize)>, WebmError> {
    let Some((value, len)) = read_vint(buf)? else {
        return Ok(None);
    };
    let all_ones = (1u64 << (7 * len)) - 1;
    Ok(Some((
        if value == all_ones { None } else { Some(value) },
        len,
    )))
}

/// A variable-length integer (marker removed): `None` when cut short.
fn read_vint(buf: &[u8]) -> Result<Option<(u64, usize)>, WebmError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first == 0 {
        return Err(WebmError::Broken(
            "a length of more than 8 bytes (a zero byte where a length starts)".into(),
        ));
    }
    let len = first.leading_zeros() as usize + 1;
    let Some(bytes) = buf.get(..len) else {
        return Ok(None);
    };
    let marker_cleared = u64::from(first) & ((1u64 << (8 - len)) - 1);
    let value = bytes[1..]
        .iter()
        .fold(marker_cleared, |acc, &b| (acc << 8) | u64::from(b));
    Ok(Some((value, len)))
}

fn read_uint(body: &[u8]) -> Result<u64, WebmError> {
    if body.len() > 8 {
        return Err(WebmError::Broken(format!(
            "an integer of {} bytes (at most 8)",
            body.len()
        )));
    }
    Ok(body.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

fn read_float(body: &[u8]) -> Result<f64, WebmError> {
    let value = match *body {
        [] => 0.0,
        [a, b, c, d] => f64::from(f32::from_be_bytes([a, b, c, d])),
        [..] if body.len() == 8 => {
            let mut eight = [0u8; 8];
            eight.copy_from_slice(body);
            f64::from_be_bytes(eight)
        }
        _ => {
            return Err(WebmError::Broken(format!(
                "a float of {} bytes (4 or 8)",
                body.len()
            )));
        }
    };
    Ok(if value.is_finite() { value } else { 0.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An element: id bytes as written, then a size (`None`: unknown, as a live recorder writes).
    fn el(id: u32, size: Option<usize>, body: &[u8]) -> Vec<u8> {
        let mut out: Vec<u8> = id
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        match size {
            None => out.push(0xFF),
            Some(n) => {
                // 8-byte size: the longest form, as some muxers write.
                out.push(0x01);
                out.extend_from_slice(&(n as u64).to_be_bytes()[1..]);
            }
        }
        out.extend_from_slice(body);
        out
    }

    fn known(id: u32, body: &[u8]) -> Vec<u8> {
        el(id, Some(body.len()), body)
    }

    fn simple_block(track: u8, flags: u8, data: &[u8]) -> Vec<u8> {
        let mut body = vec![0x80 | track, 0, 0, flags];
        body.extend_from_slice(data);
        known(SIMPLE_BLOCK, &body)
    }

    /// What Chromium's MediaRecorder writes: an unknown-size Segment and unknown-size Clusters.
    fn live_recording(frames_per_cluster: &[&[&[u8]]]) -> Vec<u8> {
        let mut out = known(EBML_HEADER, &known(0x4282, b"webm"));
        out.extend(el(SEGMENT, None, &[]));
        out.extend(known(0x1549_A966, &known(0x002A_D7B1, &[0x0F, 0x42, 0x40]))); // Info
        let entry = [
            known(TRACK_NUMBER, &[1]),
            known(TRACK_TYPE, &[2]),
            known(CODEC_ID, b"A_OPUS"),
            known(CODEC_PRIVATE, b"OpusHead\x01\x01\x38\x01\x80\xbb\0\0\0\0\0"),
            known(
                AUDIO,
                &[
                    known(SAMPLING_FREQUENCY, &48000f32.to_be_bytes()),
                    known(CHANNELS, &[1]),
                ]
                .concat(),
            ),
        ]
        .concat();
        out.extend(known(TRACKS, &known(TRACK_ENTRY, &entry)));
        for frames in frames_per_cluster {
            out.extend(el(CLUSTER, None, &known(0xE7, &[0])));
            for f in *frames {
                out.extend(simple_block(1, 0x80, f));
            }
        }
        out
    }

    fn demux_in_chunks(bytes: &[u8], chunk: usize) -> (Vec<Vec<u8>>, Option<AudioTrack>) {
        let mut d = WebmDemuxer::new();
        let mut frames = Vec::new();
        for c in bytes.chunks(chunk) {
            d.push(c, &mut frames).unwrap();
        }
        (frames, d.audio_track().cloned())
    }

    #[test]
    fn a_live_recording_gives_every_frame_however_it_is_cut() {
        let rec = live_recording(&[&[b"one", b"two"], &[b"three"], &[b"four", b"five"]]);
        for chunk in [1, 2, 3, 7, 64, rec.len()] {
            let (frames, track) = demux_in_chunks(&rec, chunk);
            assert_eq!(
                frames,
                [&b"one"[..], b"two", b"three", b"four", b"five"],
                "cut every {chunk} bytes"
            );
            let track = track.unwrap();
            assert_eq!(track.codec, "A_OPUS");
            assert_eq!((track.channels, track.rate_hz), (1, 48000.0));
            assert!(track.codec_private.starts_with(b"OpusHead"));
        }
    }

    #[test]
    fn laced_blocks_are_split_into_their_frames() {
        let mut frames = Vec::new();
        // Xiph: sizes 300 (255 + 45) and 2, then the rest.
        let mut xiph = vec![2, 255, 45, 2];
        xiph.extend(vec![7u8; 300]);
        xiph.extend([8, 8, 9]);
        unlace(0b0000_0010, &xiph, &mut frames).unwrap();
        assert_eq!(frames.iter().map(Vec::len).collect::<Vec<_>>(), [300, 2, 1]);
        frames.clear();
        // Fixed: three of 2.
        unlace(0b0000_0100, &[2, 1, 1, 2, 2, 3, 3], &mut frames).unwrap();
        assert_eq!(frames, [vec![1, 1], vec![2, 2], vec![3, 3]]);
        frames.clear();
        // EBML: 3, then +1 (a one-byte 64 less the bias of 63), then the rest.
        unlace(
            0b0000_0110,
            &[2, 0x83, 0x80 | 64, 1, 1, 1, 2, 2, 2, 2, 3],
            &mut frames,
        )
        .unwrap();
        assert_eq!(frames, [vec![1, 1, 1], vec![2, 2, 2, 2], vec![3]]);
        frames.clear();
        // Sizes that run past the data are an error, not a panic.
        assert!(unlace(0b0000_0010, &[1, 200, 1], &mut frames).is_err());
        assert!(unlace(0b0000_0100, &[1, 1, 1, 1], &mut frames).is_err());
        assert!(unlace(0b0000_0110, &[1, 0x90, 1], &mut frames).is_err());
    }

    #[test]
    fn what_is_not_webm_or_is_broken_says_so() {
        let mut frames = Vec::new();
        assert_eq!(
            WebmDemuxer::new().push(b"RIFF....WAVE", &mut frames),
            Err(WebmError::NotWebm)
        );
        // A block larger than anything a recorder writes.
        let mut big = EBML_MAGIC.to_vec();
        big.extend([0x80]); // an empty EBML header
        big.extend(el(SEGMENT, None, &[]));
        big.extend([0xA3, 0x01, 0, 0, 0, 0x7F, 0, 0, 0]);
        assert!(matches!(
            WebmDemuxer::new().push(&big, &mut frames),
            Err(WebmError::TooBig(_))
        ));
        // A block before any track.
        let mut early = EBML_MAGIC.to_vec();
        early.push(0x80);
        early.extend(simple_block(1, 0x80, b"x"));
        let e = WebmDemuxer::new().push(&early, &mut frames).unwrap_err();
        assert!(e.to_string().contains("before any audio track"), "{e}");
        // A leaf without a size cannot be skipped.
        let mut unsized_leaf = EBML_MAGIC.to_vec();
        unsized_leaf.push(0x80);
        unsized_leaf.extend([0xEC, 0xFF]);
        assert!(WebmDemuxer::new().push(&unsized_leaf, &mut frames).is_err());
    }

    #[test]
    fn large_elements_we_do_not_read_stream_past_without_being_held() {
        let mut rec = live_recording(&[&[b"a"]]);
        // A 5 MB Void element (what some muxers reserve for cues), then another block.
        rec.extend(el(0xEC, Some(5 << 20), &vec![0u8; 5 << 20]));
        rec.extend(simple_block(1, 0x80, b"b"));
        let mut d = WebmDemuxer::new();
        let mut frames = Vec::new();
        for c in rec.chunks(4096) {
            d.push(c, &mut frames).unwrap();
            assert!(
                d.pending.len() <= 4096 + 16,
                "held {} bytes",
                d.pending.len()
            );
        }
        assert_eq!(frames, [b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn random_bytes_after_the_magic_never_panic() {
        use rand::{Rng as _, SeedableRng as _};
        let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
        for round in 0..2000 {
            let len = rng.random_range(0..400);
            let mut bytes = EBML_MAGIC.to_vec();
            bytes.extend((0..len).map(|_| rng.random::<u8>()));
            let mut d = WebmDemuxer::new();
            let mut frames = Vec::new();
            for c in bytes.chunks(1 + round % 13) {
                if d.push(c, &mut frames).is_err() {
                    break;
                }
            }
        }
    }
}
