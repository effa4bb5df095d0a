//! Whisper models on this machine: the catalogue of the usual ggml files (whisper.cpp's names,
//! sizes and SHA-1 sums), what the model directory holds (read from each file's header), and
//! `pull` (a download with progress, resumed after a break, checked against its sum), `add` and
//! `remove`.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use sha1::Digest as _;

use crate::engine::model_dir;

/// Where the catalogue's files are downloaded from (`CANDYBAR_MODEL_MIRROR` or `--from` point
/// elsewhere: a proxy, a team's own copy).
pub const DEFAULT_MIRROR: &str = "https://huggingface.co/ggerganov/whisper.cpp/resolve/main";

/// A model of the catalogue: `ggml-{name}.bin` at the mirror.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CatalogueEntry {
    pub name: &'static str,
    pub size_mib: u32,
    /// The file's sum: SHA-1 as whisper.cpp's models/README.md gives it, SHA-256 as Hugging
    /// Face lists the quantized files (whisper.cpp's README gives them no sum).
    pub sum: Sum,
    pub multilingual: bool,
}

/// A catalogue file's published sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sum {
    Sha1(&'static str),
    Sha256(&'static str),
}

impl CatalogueEntry {
    /// What a download of this file must sum to.
    #[must_use]
    pub fn checksum(&self) -> Checksum {
        match self.sum {
            Sum::Sha1(x) => Checksum::Sha1(x.to_owned()),
            Sum::Sha256(x) => Checksum::Sha256(x.to_owned()),
        }
    }
}

/// whisper.cpp's published models (models/README.md): the `.en` ones know English only. The
/// quantized ones (`-q8_0`, `-q5_1`, `-q5_0`) are smaller and decode faster on a CPU (tiny.en's
/// `q8_0` decoded the test clips ~26 % faster than its f16 here, same word error rate; see the
/// README).
pub const CATALOGUE: &[CatalogueEntry] = &[
    entry("tiny", 75, "bd577a113a864445d4c299885e0cb97d4ba92b5f"),
    entry("tiny.en", 75, "c78c86eb1a8faa21b369bcd33207cc90d64ae9df"),
    entry("base", 142, "465707469ff3a37a2b9b8d8f89f2f99de7299dac"),
    entry("base.en", 142, "137c40403d78fd54d454da0f9bd998f78703390c"),
    entry("small", 466, "55356645c2b361a969dfd0ef2c5a50d530afd8d5"),
    entry("small.en", 466, "db8a495a91d927739e50b3fc1cc4c6b8f6c2d022"),
    entry("medium", 1536, "fd9727b6e1217c2f614f9b698455c4ffd82463b4"),
    entry(
        "medium.en",
        1536,
        "8c30f0e44ce9560643ebd10bbe50cd20eafd3723",
    ),
    entry("large-v3", 2969, "ad82bf6a9043ceed055076d0fd39f5f186ff8062"),
    entry(
        "large-v3-turbo",
        1536,
        "4af2b29d7ec73d781377bfd1758ca957a807e941",
    ),
    entry(
        "large-v3-turbo-q5_0",
        547,
        "e050f7970618a659205450ad97eb95a18d69c9ee",
    ),
    // Hugging Face's listing of ggerganov/whisper.cpp (LFS SHA-256).
    quantized(
        "tiny-q5_1",
        31,
        "818710568da3ca15689e31a743197b520007872ff9576237bda97bd1b469c3d7",
    ),
    quantized(
        "tiny-q8_0",
        42,
        "c2085835d3f50733e2ff6e4b41ae8a2b8d8110461e18821b09a15c40c42d1cca",
    ),
    quantized(
        "tiny.en-q5_1",
        31,
        "c77c5766f1cef09b6b7d47f21b546cbddd4157886b3b5d6d4f709e91e66c7c2b",
    ),
    quantized(
        "tiny.en-q8_0",
        42,
        "5bc2b3860aa151a4c6e7bb095e1fcce7cf12c7b020ca08dcec0c6d018bb7dd94",
    ),
    quantized(
        "base-q5_1",
        57,
        "422f1ae452ade6f30a004d7e5c6a43195e4433bc370bf23fac9cc591f01a8898",
    ),
    quantized(
        "base-q8_0",
        78,
        "c577b9a86e7e048a0b7eada054f4dd79a56bbfa911fbdacf900ac5b567cbb7d9",
    ),
    quantized(
        "base.en-q5_1",
        57,
        "4baf70dd0d7c4247ba2b81fafd9c01005ac77c2f9ef064e00dcf195d0e2fdd2f",
    ),
    quantized(
        "base.en-q8_0",
        78,
        "a4d4a0768075e13cfd7e19df3ae2dbc4a68d37d36a7dad45e8410c9a34f8c87e",
    ),
    quantized(
        "small-q5_1",
        181,
        "ae85e4a935d7a567bd102fe55afc16bb595bdb618e11b2fc7591bc08120411bb",
    ),
    quantized(
        "small-q8_0",
        252,
        "49c8fb02b65e6049d5fa6c04f81f53b867b5ec9540406812c643f177317f779f",
    ),
    quantized(
        "small.en-q5_1",
        181,
        "bfdff4894dcb76bbf647d56263ea2a96645423f1669176f4844a1bf8e478ad30",
    ),
    quantized(
        "small.en-q8_0",
        252,
        "67a179f608ea6114bd3fdb9060e762b588a3fb3bd00c4387971be4d177958067",
    ),
    quantized(
        "medium-q5_0",
        514,
        "19fea4b380c3a618ec4723c3eef2eb785ffba0d0538cf43f8f235e7b3b34220f",
    ),
    quantized(
        "medium.en-q5_0",
        514,
        "76733e26ad8fe1c7a5bf7531a9d41917b2adc0f20f2e4f5531688a8c6cd88eb0",
    ),
    quantized(
        "large-v3-turbo-q8_0",
        834,
        "317eb69c11673c9de1e1f0d459b253999804ec71ac4c23c17ecf5fbe24e259a1",
    ),
];

const fn entry(name: &'static str, size_mib: u32, sha1: &'static str) -> CatalogueEntry {
    with_sum(name, size_mib, Sum::Sha1(sha1))
}

const fn quantized(name: &'static str, size_mib: u32, sha256: &'static str) -> CatalogueEntry {
    with_sum(name, size_mib, Sum::Sha256(sha256))
}

const fn with_sum(name: &'static str, size_mib: u32, sum: Sum) -> CatalogueEntry {
    let b = name.as_bytes();
    let n = b.len();
    // English-only models end in `.en`, or have it before a quantization (`tiny.en-q8_0`).
    let mut english_only = false;
    let mut i = 0;
    while i + 3 <= n {
        if b[i] == b'.' && b[i + 1] == b'e' && b[i + 2] == b'n' && (i + 3 == n || b[i + 3] == b'-')
        {
            english_only = true;
        }
        i += 1;
    }
    CatalogueEntry {
        name,
        size_mib,
        sum,
        multilingual: !english_only,
    }
}

pub fn catalogue_entry(name: &str) -> Option<&'static CatalogueEntry> {
    let name = name.trim_start_matches("ggml-").trim_end_matches(".bin");
    CATALOGUE.iter().find(|e| e.name == name)
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path} is not a Whisper ggml model: {reason}")]
    NotAModel { path: String, reason: String },
    #[error("no model directory (set CANDYBAR_MODEL_DIR)")]
    NoDir,
    #[error("{0}")]
    Io(String),
    #[error(
        "'{0}' is not in the catalogue ({names}); pull a URL with --sha1 or --sha256 instead",
        names = CATALOGUE.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
    )]
    Unknown(String),
    #[error("no model '{0}' in {1}")]
    NotInstalled(String, String),
    #[error("the download from {url} failed: {reason}{kept}")]
    Download {
        url: String,
        reason: String,
        /// Says where the part already downloaded waits, to be resumed.
        kept: String,
    },
    #[error(
        "{what} of the download is {got}, not {expected}: the file is not the model it should be; removed it"
    )]
    Checksum {
        what: &'static str,
        expected: String,
        got: String,
    },
}

/// What a ggml model file's header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub n_vocab: u32,
    pub n_audio_state: u32,
    pub n_text_layer: u32,
    /// 0 f32, 1 f16, 2+ quantized (+1000 × the quantization version).
    pub ftype: u32,
}

impl Header {
    /// 51,865 tokens for multilingual models, 51,864 for English-only ones.
    pub fn multilingual(&self) -> bool {
        self.n_vocab >= 51_865
    }

    /// tiny, base, small, medium or large, from the width of the audio encoder.
    pub fn size_class(&self) -> &'static str {
        match self.n_audio_state {
            384 => "tiny",
            512 => "base",
            768 => "small",
            1024 => "medium",
            1280 => "large",
            _ => "unknown size",
        }
    }
}

/// Reads the header of a ggml Whisper file: the magic `ggml` and eleven hyperparameters.
pub fn read_header(path: &Path) -> Result<Header, ModelError> {
    let shown = path.display().to_string();
    let not = |reason: String| ModelError::NotAModel {
        path: shown.clone(),
        reason,
    };
    let mut f = std::fs::File::open(path).map_err(|e| not(e.to_string()))?;
    let mut head = [0u8; 48];
    f.read_exact(&mut head)
        .map_err(|_| not("it is shorter than a model's header".into()))?;
    let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    if word(0) != 0x6767_6d6c {
        return Err(not(format!(
            "it does not begin with ggml's magic (its first bytes are {:02x?})",
            &head[..4]
        )));
    }
    // n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx,
    // n_text_state, n_text_head, n_text_layer, n_mels, ftype.
    let h = Header {
        n_vocab: word(4),
        n_audio_state: word(12),
        n_text_layer: word(36),
        ftype: word(44),
    };
    if !(51_000..=52_000).contains(&h.n_vocab) || h.n_audio_state == 0 {
        return Err(not(format!(
            "its header is not Whisper's (a vocabulary of {} tokens)",
            h.n_vocab
        )));
    }
    Ok(h)
}

/// A model in the model directory.
#[derive(Clone, Debug, PartialEq)]
pub struct Installed {
    /// As `--model` takes it: `tiny.en`, `base`.
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// `None` when the file is not a readable model.
    pub header: Option<Header>,
}

/// The model directory's models, sorted by name.
pub fn installed() -> Vec<Installed> {
    let Some(dir) = model_dir() else {
        return Vec::new();
    };
    installed_in(&dir)
}

pub fn installed_in(dir: &Path) -> Vec<Installed> {
    let mut out: Vec<Installed> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "bin"))
                .map(|path| Installed {
                    name: short_name(&path),
                    bytes: std::fs::metadata(&path).map_or(0, |m| m.len()),
                    header: read_header(&path).ok(),
                    path,
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// `ggml-tiny.en.bin` → `tiny.en`.
pub fn short_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    stem.strip_prefix("ggml-").unwrap_or(&stem).to_owned()
}

fn dir_or_err() -> Result<PathBuf, ModelError> {
    let dir = model_dir().ok_or(ModelError::NoDir)?;
    std::fs::create_dir_all(&dir)
        .map_err(|e| ModelError::Io(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

/// Copies a model file into the model directory as `ggml-{name}.bin` (its own name by default)
/// after checking it is one. Returns where it went.
pub fn add(file: &Path, name: Option<&str>) -> Result<PathBuf, ModelError> {
    read_header(file)?;
    let name = name.map_or_else(|| short_name(file), str::to_owned);
    check_name(&name)?;
    let dir = dir_or_err()?;
    let dest = dir.join(format!("ggml-{name}.bin"));
    let part = dest.with_extension("bin.part");
    std::fs::copy(file, &part)
        .and_then(|_| std::fs::rename(&part, &dest))
        .map_err(|e| {
            let _ = std::fs::remove_file(&part);
            ModelError::Io(format!(
                "cannot copy {} to {}: {e}",
                file.display(),
                dest.display()
            ))
        })?;
    Ok(dest)
}

/// Removes `ggml-{name}.bin` from the model directory.
pub fn remove(name: &str) -> Result<PathBuf, ModelError> {
    let dir = model_dir().ok_or(ModelError::NoDir)?;
    let short = name.trim_start_matches("ggml-").trim_end_matches(".bin");
    check_name(short)?;
    let path = dir.join(format!("ggml-{short}.bin"));
    // A download that broke off goes with it.
    let _ = std::fs::remove_file(path.with_extension("bin.part"));
    if !path.is_file() {
        return Err(ModelError::NotInstalled(
            short.to_owned(),
            dir.display().to_string(),
        ));
    }
    std::fs::remove_file(&path)
        .map_err(|e| ModelError::Io(format!("cannot remove {}: {e}", path.display())))?;
    Ok(path)
}

/// A model's name in the model directory: letters, digits, `.`, `-`, `_` (no paths).
pub fn check_name(name: &str) -> Result<(), ModelError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(ModelError::Io(format!(
            "'{}' is not a model name: use letters, digits, '.', '-' and '_'",
            name.chars().take(40).collect::<String>()
        )))
    }
}

/// The sum a download must have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checksum {
    Sha1(String),
    Sha256(String),
}

/// Downloads `url` to `dest`, through `dest.part`: a part left by a broken download is resumed
/// (HTTP range request), the whole file is checked against `sum` before it takes `dest`'s name,
/// and a file that fails the check is removed. `progress(done, total)` is called as bytes come.
pub async fn pull(
    url: &str,
    dest: &Path,
    sum: &Checksum,
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<PathBuf, ModelError> {
    let part = dest.with_extension("bin.part");
    let fail = |reason: String, kept: bool| ModelError::Download {
        url: candybar_core::redact::mask_url(url),
        reason,
        kept: if kept {
            format!(
                "; the {} downloaded so far wait in {} and the next pull resumes there",
                mb(std::fs::metadata(&part).map_or(0, |m| m.len())),
                part.display()
            )
        } else {
            String::new()
        },
    };
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(15))
        .user_agent(concat!("candybar/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| fail(e.to_string(), false))?;
    let have = std::fs::metadata(&part).map_or(0, |m| m.len());
    let mut request = client.get(url);
    if have > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let mut response = request
        .send()
        .await
        .map_err(|e| fail(e.without_url().to_string(), have > 0))?;
    let status = response.status();
    let resumed = status == reqwest::StatusCode::PARTIAL_CONTENT;
    if !status.is_success() && status != reqwest::StatusCode::RANGE_NOT_SATISFIABLE {
        return Err(fail(format!("the server answered {status}"), have > 0));
    }
    if status != reqwest::StatusCode::RANGE_NOT_SATISFIABLE {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(resumed)
            .truncate(!resumed)
            .open(&part)
            .map_err(|e| fail(format!("cannot write {}: {e}", part.display()), false))?;
        let mut done = if resumed { have } else { 0 };
        let total = response.content_length().map(|n| n + done);
        progress(done, total);
        loop {
            match response.chunk().await {
                Ok(Some(bytes)) => {
                    file.write_all(&bytes)
                        .map_err(|e| fail(format!("cannot write {}: {e}", part.display()), true))?;
                    done += bytes.len() as u64;
                    progress(done, total);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(fail(
                        format!(
                            "the connection broke off after {}{} ({})",
                            mb(done),
                            total.map_or_else(String::new, |t| format!(" of {}", mb(t))),
                            e.without_url()
                        ),
                        true,
                    ));
                }
            }
        }
        file.flush()
            .map_err(|e| fail(format!("cannot write {}: {e}", part.display()), true))?;
        if let Some(total) = total
            && done < total
        {
            return Err(fail(
                format!(
                    "the connection broke off after {} of {}",
                    mb(done),
                    mb(total)
                ),
                true,
            ));
        }
    }
    install(&part, dest, sum).await.map_err(|e| match e {
        ModelError::Io(reason) => fail(reason, true),
        other => other,
    })
}

/// Checks a whole download against `sum` and the model header, then gives it `dest`'s name; a
/// file that fails is removed.
async fn install(part: &Path, dest: &Path, sum: &Checksum) -> Result<PathBuf, ModelError> {
    let part_for_sum = part.to_path_buf();
    let sum = sum.clone();
    let checked = tokio::task::spawn_blocking(move || check_sum(&part_for_sum, &sum))
        .await
        .map_err(|e| ModelError::Io(e.to_string()))?;
    if let Err(e) = checked {
        let _ = std::fs::remove_file(part);
        return Err(e);
    }
    if let Err(e) = read_header(part) {
        let _ = std::fs::remove_file(part);
        return Err(e);
    }
    std::fs::rename(part, dest).map_err(|e| {
        ModelError::Io(format!(
            "cannot move {} to {}: {e}",
            part.display(),
            dest.display()
        ))
    })?;
    Ok(dest.to_path_buf())
}

fn check_sum(path: &Path, sum: &Checksum) -> Result<(), ModelError> {
    let io = |e: std::io::Error| ModelError::Io(format!("cannot read {}: {e}", path.display()));
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut sha1 = sha1::Sha1::new();
    let mut sha256 = sha2::Sha256::new();
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        match sum {
            Checksum::Sha1(_) => sha1.update(&buf[..n]),
            Checksum::Sha256(_) => sha256.update(&buf[..n]),
        }
    }
    let (what, expected, got) = match sum {
        Checksum::Sha1(x) => ("SHA-1", x, hex(&sha1.finalize())),
        Checksum::Sha256(x) => ("SHA-256", x, hex(&sha256.finalize())),
    };
    if got.eq_ignore_ascii_case(expected.trim()) {
        Ok(())
    } else {
        Err(ModelError::Checksum {
            what,
            expected: expected.clone(),
            got,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `81.8 MB`.
pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_knows_which_models_are_english_only() {
        assert!(!catalogue_entry("tiny.en").expect("tiny.en").multilingual);
        assert!(catalogue_entry("ggml-base.bin").expect("base").multilingual);
        assert!(catalogue_entry("large-v3-turbo-q5_0").is_some());
        assert!(catalogue_entry("huge").is_none());
        assert!(!catalogue_entry("tiny.en-q8_0").expect("q8").multilingual);
        assert!(
            catalogue_entry("ggml-base-q5_1.bin")
                .expect("q5")
                .multilingual
        );
        assert!(
            CATALOGUE.iter().all(|e| match e.sum {
                Sum::Sha1(x) => x.len() == 40,
                Sum::Sha256(x) => x.len() == 64,
            } && e
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)))
        );
        let names: std::collections::HashSet<_> = CATALOGUE.iter().map(|e| e.name).collect();
        assert_eq!(names.len(), CATALOGUE.len(), "a name twice");
        assert_eq!(
            catalogue_entry("tiny.en-q8_0").expect("q8").checksum(),
            Checksum::Sha256(
                "5bc2b3860aa151a4c6e7bb095e1fcce7cf12c7b020ca08dcec0c6d018bb7dd94".into()
            )
        );
    }

    #[test]
    fn files_that_are_not_models_are_named_as_such() {
        let dir = tempfile::tempdir().expect("tempdir");
        let junk = dir.path().join("ggml-junk.bin");
        std::fs::write(
            &junk,
            b"definitely not a model, just some text here........",
        )
        .expect("write");
        let e = read_header(&junk).expect_err("not a model").to_string();
        assert!(e.contains("does not begin with ggml's magic"), "{e}");
        std::fs::write(&junk, b"lmgg").expect("write");
        let e = read_header(&junk).expect_err("too short").to_string();
        assert!(e.contains("shorter than a model's header"), "{e}");
        let listed = installed_in(dir.path());
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, "junk");
        assert!(listed[0].header.is_none());
    }
}
