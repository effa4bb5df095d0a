//! Quantizing a ggml Whisper model to whisper.cpp's `Q8_0`, on this machine: the same file
//! whisper.cpp's `quantize` tool writes (per 32 weights an f16 scale and 32 signed bytes), from
//! an f16 or f32 model the user already has — no download. On a CPU a `Q8_0` model decodes about a
//! quarter faster with the same words (see the README), so a live server shows the last words
//! sooner.
//!
//! The file is read and written as a stream (a tensor at a time), written beside the target as
//! `.part` and renamed when whole: a broken run leaves nothing that looks like a model.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::models::{ModelError, read_header};

/// Values per `Q8_0` block.
const QK8_0: usize = 32;
/// A `Q8_0` block: the f16 scale, then 32 signed bytes.
const BLOCK_BYTES: usize = 2 + QK8_0;
/// ggml's tensor types in a model file.
const TYPE_F32: i32 = 0;
const TYPE_F16: i32 = 1;
const TYPE_Q8_0: i32 = 8;
/// The header's file type for "mostly `Q8_0`" (7), with ggml's quantization version 2 (× 1000).
const FTYPE_Q8_0: i32 = 7 + 2 * 1000;
/// Tensors whisper.cpp keeps in f32 whatever the file type (besides every one-dimensional one).
const KEPT: [&str; 4] = [
    "encoder.conv1.bias",
    "encoder.conv2.bias",
    "encoder.positional_embedding",
    "decoder.positional_embedding",
];
/// The convolutions' weights: f16 in every file but an f32 one (whisper.cpp loads them so).
const CONV_WEIGHTS: [&str; 2] = ["encoder.conv1.weight", "encoder.conv2.weight"];

/// What a quantization wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quantized {
    pub path: PathBuf,
    /// Weight matrices now in `Q8_0`.
    pub quantized: usize,
    /// Tensors copied as they were (biases, norms, convolutions, positions).
    pub kept: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Writes `src` (an f16 or f32 ggml Whisper model) to `dest` with its weight matrices in `Q8_0`.
/// `progress(read, total)` is called as the source is read.
pub fn quantize_q8_0(
    src: &Path,
    dest: &Path,
    mut progress: impl FnMut(u64, u64),
) -> Result<Quantized, ModelError> {
    let header = read_header(src)?;
    if header.ftype > 1 {
        return Err(ModelError::NotAModel {
            path: src.display().to_string(),
            reason: format!(
                "it is quantized already (file type {}); quantize an f16 or f32 model",
                header.ftype
            ),
        });
    }
    let total = std::fs::metadata(src).map_or(0, |m| m.len());
    let file = std::fs::File::open(src)
        .map_err(|e| ModelError::Io(format!("cannot read {}: {e}", src.display())))?;
    let part = dest.with_extension("bin.part");
    let out = std::fs::File::create(&part)
        .map_err(|e| ModelError::Io(format!("cannot write {}: {e}", part.display())))?;
    let mut job = Job {
        src: Reader {
            inner: BufReader::with_capacity(1 << 20, file),
            read: 0,
        },
        dst: BufWriter::with_capacity(1 << 20, out),
        total,
        quantized: 0,
        kept: 0,
    };
    let run = job.run(&mut progress).and_then(|()| {
        job.dst
            .flush()
            .and_then(|()| job.dst.get_ref().sync_all())
            .map_err(|e| Fault::Write(e.to_string()))
    });
    let done = run.and_then(|()| {
        std::fs::rename(&part, dest).map_err(|e| Fault::Write(e.to_string()))?;
        Ok(())
    });
    if let Err(fault) = done {
        let _ = std::fs::remove_file(&part);
        return Err(match fault {
            Fault::Source(reason) => ModelError::NotAModel {
                path: src.display().to_string(),
                reason,
            },
            Fault::Write(e) => ModelError::Io(format!("cannot write {}: {e}", dest.display())),
        });
    }
    let bytes_out = std::fs::metadata(dest).map_or(0, |m| m.len());
    Ok(Quantized {
        path: dest.to_owned(),
        quantized: job.quantized,
        kept: job.kept,
        bytes_in: total,
        bytes_out,
    })
}

/// Why a quantization stopped: the source is not what a model should be, or writing failed.
enum Fault {
    Source(String),
    Write(String),
}

struct Reader {
    inner: BufReader<std::fs::File>,
    read: u64,
}

impl Reader {
    /// Exactly `buf.len()` bytes; `what` names the part of the file for the error.
    fn exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), Fault> {
        self.inner.read_exact(buf).map_err(|e| {
            Fault::Source(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                format!("it ends inside {what} (cut short?)")
            } else {
                format!("reading {what}: {e}")
            })
        })?;
        self.read += buf.len() as u64;
        Ok(())
    }

    fn i32(&mut self, what: &str) -> Result<i32, Fault> {
        let mut b = [0u8; 4];
        self.exact(&mut b, what)?;
        Ok(i32::from_le_bytes(b))
    }

    /// The next tensor's first word, or `None` at the end of the file.
    fn next_i32_or_end(&mut self) -> Result<Option<i32>, Fault> {
        let mut b = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match self.inner.read(&mut b[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(Fault::Source("it ends inside a tensor's header".into())),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Fault::Source(format!("reading a tensor: {e}"))),
            }
        }
        self.read += 4;
        Ok(Some(i32::from_le_bytes(b)))
    }
}

struct Job {
    src: Reader,
    dst: BufWriter<std::fs::File>,
    total: u64,
    quantized: usize,
    kept: usize,
}

impl Job {
    fn put(&mut self, bytes: &[u8]) -> Result<(), Fault> {
        self.dst
            .write_all(bytes)
            .map_err(|e| Fault::Write(e.to_string()))
    }

    /// Copies `n` bytes of the source as they are.
    fn copy(&mut self, n: usize, what: &str) -> Result<(), Fault> {
        let mut buf = vec![0u8; n];
        self.src.exact(&mut buf, what)?;
        self.put(&buf)
    }

    /// A count from the header, checked against what a Whisper model can have.
    fn count(&mut self, what: &str, max: i32) -> Result<usize, Fault> {
        let n = self.src.i32(what)?;
        self.put(&n.to_le_bytes())?;
        if !(0..=max).contains(&n) {
            return Err(Fault::Source(format!(
                "its {what} is {n}, not what a Whisper model has"
            )));
        }
        Ok(n as usize)
    }

    fn run(&mut self, progress: &mut impl FnMut(u64, u64)) -> Result<(), Fault> {
        // The magic and eleven hyperparameters (checked by `read_header`); the last is the file
        // type.
        let mut head = [0u8; 48];
        self.src.exact(&mut head, "the header")?;
        head[44..48].copy_from_slice(&FTYPE_Q8_0.to_le_bytes());
        self.put(&head)?;
        // The mel filters.
        let n_mel = self.count("number of mel bands", 512)?;
        let n_fft = self.count("filter length", 4096)?;
        self.copy(n_mel * n_fft * 4, "the mel filters")?;
        // The vocabulary: each token's length and bytes.
        let n_vocab = self.count("vocabulary size", 1 << 20)?;
        for _ in 0..n_vocab {
            let len = self.count("token length", 1 << 16)?;
            self.copy(len, "the vocabulary")?;
        }
        // The tensors, to the end of the file.
        while let Some(n_dims) = self.src.next_i32_or_end()? {
            self.tensor(n_dims)?;
            progress(self.src.read, self.total);
        }
        Ok(())
    }

    fn tensor(&mut self, n_dims: i32) -> Result<(), Fault> {
        let name_len = self.src.i32("a tensor's header")?;
        let ttype = self.src.i32("a tensor's header")?;
        if !(1..=4).contains(&n_dims) || !(1..=256).contains(&name_len) {
            return Err(Fault::Source(format!(
                "a tensor's header is not ggml's ({n_dims} dimensions, a name of {name_len} bytes)"
            )));
        }
        let mut dims = [1usize; 4];
        for d in dims.iter_mut().take(n_dims as usize) {
            let v = self.src.i32("a tensor's shape")?;
            if !(1..=1 << 24).contains(&v) {
                return Err(Fault::Source(format!("a tensor has a dimension of {v}")));
            }
            *d = v as usize;
        }
        let mut name = vec![0u8; name_len as usize];
        self.src.exact(&mut name, "a tensor's name")?;
        let name = String::from_utf8_lossy(&name).into_owned();
        let values = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let width = match ttype {
            TYPE_F32 => 4,
            TYPE_F16 => 2,
            other => {
                return Err(Fault::Source(format!(
                    "tensor {name} is of ggml type {other}: only f16 and f32 models can be quantized"
                )));
            }
        };
        let left = self.total.saturating_sub(self.src.read);
        let Some(size) = values
            .and_then(|v| v.checked_mul(width))
            .filter(|&s| s as u64 <= left)
        else {
            return Err(Fault::Source(format!(
                "tensor {name} claims more bytes than the {left} left in the file (cut short?)"
            )));
        };
        let mut data = vec![0u8; size];
        self.src.exact(&mut data, &format!("tensor {name}"))?;
        let quantize = n_dims == 2 && dims[0] % QK8_0 == 0 && !KEPT.contains(&name.as_str());
        let to_f16 = !quantize && ttype == TYPE_F32 && CONV_WEIGHTS.contains(&name.as_str());
        let out_type = if quantize {
            TYPE_Q8_0
        } else if to_f16 {
            TYPE_F16
        } else {
            ttype
        };
        self.put(&n_dims.to_le_bytes())?;
        self.put(&name_len.to_le_bytes())?;
        self.put(&out_type.to_le_bytes())?;
        for d in dims.iter().take(n_dims as usize) {
            self.put(&(*d as i32).to_le_bytes())?;
        }
        self.put(name.as_bytes())?;
        if quantize {
            let floats: Vec<f32> = if width == 4 {
                data.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            } else {
                data.chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect()
            };
            let packed = q8_0(&floats);
            self.put(&packed)?;
            self.quantized += 1;
        } else if to_f16 {
            let halves: Vec<u8> = data
                .chunks_exact(4)
                .flat_map(|b| {
                    half::f16::from_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]])).to_le_bytes()
                })
                .collect();
            self.put(&halves)?;
            self.kept += 1;
        } else {
            self.put(&data)?;
            self.kept += 1;
        }
        Ok(())
    }
}

/// ggml's `quantize_row_q8_0_ref`: per 32 values, the scale `d = max|x| / 127` as f16, then
/// each value divided by it and rounded (half away from zero). `values.len()` is a multiple
/// of 32.
fn q8_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / QK8_0 * BLOCK_BYTES);
    for block in values.chunks_exact(QK8_0) {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        out.extend(
            block
                .iter()
                .map(|v| ((v * id).round() as i8).to_le_bytes()[0]),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dequantize(blocks: &[u8]) -> Vec<f32> {
        blocks
            .chunks_exact(BLOCK_BYTES)
            .flat_map(|b| {
                let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
                b[2..].iter().map(move |&q| f32::from(q as i8) * d)
            })
            .collect()
    }

    #[test]
    fn a_block_keeps_each_weight_within_half_a_step() {
        let values: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        let packed = q8_0(&values);
        assert_eq!(packed.len(), 2 * BLOCK_BYTES);
        let back = dequantize(&packed);
        for (block, got) in values.chunks(QK8_0).zip(back.chunks(QK8_0)) {
            let step = block.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0;
            for (a, b) in block.iter().zip(got) {
                // Half a step, and the f16 scale's own rounding over 127 steps.
                assert!(
                    (a - b).abs() <= step * 0.5 + step * 127.0 / 1024.0,
                    "{a} vs {b}"
                );
            }
        }
        // The largest magnitude maps to ±127.
        assert!(
            packed[2..BLOCK_BYTES]
                .iter()
                .any(|&q| q as i8 == 127 || q as i8 == -127)
        );
    }

    /// A ggml Whisper file: the header (f32), two mel bands of two, one token, then `tensors`
    /// (name, shape, f32 values).
    fn model_file(tensors: &[(&str, &[i32])]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend(0x6767_6d6c_u32.to_le_bytes());
        for hp in [51_864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 0] {
            f.extend(i32::to_le_bytes(hp));
        }
        for w in [2, 2] {
            f.extend(i32::to_le_bytes(w));
        }
        f.extend([0u8; 16]);
        f.extend(1i32.to_le_bytes());
        f.extend(1i32.to_le_bytes());
        f.push(b'a');
        for (name, shape) in tensors {
            let n: i32 = shape.iter().product();
            f.extend(i32::try_from(shape.len()).unwrap().to_le_bytes());
            f.extend(i32::try_from(name.len()).unwrap().to_le_bytes());
            f.extend(TYPE_F32.to_le_bytes());
            for d in *shape {
                f.extend(d.to_le_bytes());
            }
            f.extend(name.as_bytes());
            for i in 0..n {
                f.extend((i as f32 / 10.0).to_le_bytes());
            }
        }
        f
    }

    /// The tensors of a written file: name, type, bytes of data.
    fn tensors_of(f: &[u8]) -> Vec<(String, i32, usize)> {
        let word = |at: usize| i32::from_le_bytes(f[at..at + 4].try_into().unwrap());
        // Header, filters (2 × 2), one token of one byte.
        let mut at = 48 + 8 + 16 + 4 + 4 + 1;
        let mut out = Vec::new();
        while at < f.len() {
            let (n_dims, name_len, ttype) = (word(at), word(at + 4), word(at + 8));
            at += 12;
            let values: usize = (0..n_dims as usize)
                .map(|i| word(at + 4 * i) as usize)
                .product();
            at += 4 * n_dims as usize;
            let name = String::from_utf8(f[at..at + name_len as usize].to_vec()).unwrap();
            at += name_len as usize;
            let bytes = match ttype {
                TYPE_F32 => values * 4,
                TYPE_F16 => values * 2,
                _ => values / QK8_0 * BLOCK_BYTES,
            };
            at += bytes;
            out.push((name, ttype, bytes));
        }
        out
    }

    #[test]
    fn an_f32_model_gets_q8_0_matrices_f16_convolutions_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("ggml-f32.bin");
        std::fs::write(
            &src,
            model_file(&[
                ("encoder.conv1.weight", &[3, 80, 2]),
                ("encoder.conv1.bias", &[1, 2]),
                ("encoder.positional_embedding", &[64, 2]),
                ("decoder.blocks.0.mlp.0.weight", &[64, 3]),
                ("decoder.blocks.0.mlp_ln.bias", &[64]),
            ]),
        )
        .unwrap();
        let dest = dir.path().join("ggml-f32-q8_0.bin");
        let q = quantize_q8_0(&src, &dest, |_, _| {}).unwrap();
        assert_eq!((q.quantized, q.kept), (1, 4));
        let out = std::fs::read(&dest).unwrap();
        assert_eq!(read_header(&dest).unwrap().ftype, 2007);
        assert_eq!(
            tensors_of(&out),
            [
                ("encoder.conv1.weight".to_owned(), TYPE_F16, 3 * 80 * 2 * 2),
                ("encoder.conv1.bias".to_owned(), TYPE_F32, 2 * 4),
                ("encoder.positional_embedding".to_owned(), TYPE_F32, 128 * 4),
                (
                    "decoder.blocks.0.mlp.0.weight".to_owned(),
                    TYPE_Q8_0,
                    6 * BLOCK_BYTES
                ),
                ("decoder.blocks.0.mlp_ln.bias".to_owned(), TYPE_F32, 64 * 4),
            ]
        );
        assert!(!dir.path().join("ggml-f32-q8_0.bin.part").exists());
    }

    #[test]
    fn a_header_that_claims_more_than_the_file_holds_is_refused_without_a_part() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("ggml-lies.bin");
        let mut f = model_file(&[("decoder.blocks.0.mlp.0.weight", &[64, 3])]);
        // The matrix's second dimension, 3 → 16 million: gigabytes the file does not have.
        let at = f.len() - 64 * 3 * 4 - "decoder.blocks.0.mlp.0.weight".len() - 4;
        f[at..at + 4].copy_from_slice(&(1i32 << 24).to_le_bytes());
        std::fs::write(&src, f).unwrap();
        let dest = dir.path().join("ggml-lies-q8_0.bin");
        let e = quantize_q8_0(&src, &dest, |_, _| {})
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("claims more bytes than the") && e.contains("cut short"),
            "{e}"
        );
        assert!(!dest.exists() && !dir.path().join("ggml-lies-q8_0.bin.part").exists());
    }

    #[test]
    fn a_block_of_zeros_has_a_zero_scale() {
        let packed = q8_0(&[0.0; QK8_0]);
        assert_eq!(packed, vec![0u8; BLOCK_BYTES]);
    }
}
