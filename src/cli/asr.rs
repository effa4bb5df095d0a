//! `candybar asr …`: speech to text with the built-in Whisper engine.

use std::path::PathBuf;
use std::process::ExitCode;

use candybar_asr::engine::{DecodeOptions, Engine, check_language, model_dir, resolve_model};
use candybar_asr::media::decode_audio;
use candybar_core::asr::wer;
use clap::{Args, Subcommand};

use super::Format;

/// `--model`, shared by every command that loads a Whisper model.
#[derive(Args, Debug, Clone)]
pub struct ModelArg {
    /// A ggml model file, or a name in the model directory (tiny.en, base.en, …)
    #[arg(
        long = "model",
        short = 'm',
        value_name = "PATH|NAME",
        default_value = "tiny.en",
        env = "CANDYBAR_MODEL"
    )]
    pub name: String,
}

#[derive(Subcommand, Debug)]
pub enum AsrCommand {
    /// Transcribe audio files (WAV, FLAC, MP3, Ogg Vorbis, M4A) and print the text.
    Transcribe(TranscribeArgs),
    /// Serve speech to text over WebSocket (`ws://HOST:PORT/asr`) with health and metrics.
    Serve(ServeArgs),
    /// The models in the model directory (`$CANDYBAR_MODEL_DIR` or
    /// `~/.local/share/candybar/models`) and the catalogue: list, add, pull, remove.
    Models {
        #[command(subcommand)]
        cmd: Option<ModelsCommand>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// The installed models (size, languages, kind) and the catalogue's others (the default)
    List,
    /// Copy a ggml model file into the model directory (checked to be a Whisper model first)
    Add {
        file: PathBuf,
        /// Its name there (`--model NAME` finds it): the file's own by default
        #[arg(long)]
        name: Option<String>,
    },
    /// Download a model: a catalogue name (tiny, base, small.en, …) checked against
    /// whisper.cpp's published SHA-1, or a URL with --sha1 or --sha256. A broken download is
    /// resumed by the next pull.
    Pull {
        #[arg(value_name = "NAME|URL")]
        what: String,
        /// Where catalogue names are downloaded from
        #[arg(long, value_name = "URL", env = "CANDYBAR_MODEL_MIRROR", default_value = candybar_asr::models::DEFAULT_MIRROR)]
        from: String,
        /// The SHA-1 a URL's file must have
        #[arg(long, value_name = "HEX", conflicts_with = "sha256")]
        sha1: Option<String>,
        /// The SHA-256 a URL's file must have
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
        /// Its name in the model directory (default: the catalogue name, or the URL's file name)
        #[arg(long)]
        name: Option<String>,
    },
    /// Delete a model from the model directory
    Remove { name: String },
    /// Write a model's `Q8_0` copy into the model directory (as whisper.cpp's `quantize` does,
    /// offline): about half the size and a quarter faster on a CPU, the same words
    Quantize {
        /// An f16 or f32 model: a file or a name in the model directory
        #[arg(value_name = "PATH|NAME")]
        model: String,
        /// The copy's name (default: the model's name and `-q8_0`)
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct TranscribeArgs {
    /// Audio files, any rate and channel count
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    language: LanguageArg,
    /// Decoding threads (default: the machine's cores, at most 4)
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// text: one line per file; ndjson: text, confidence, segments and timings per file
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Report the word error rate against FILE.txt beside each WAV (the reference transcript)
    #[arg(long)]
    score: bool,
}

/// `--language`, shared by the commands that decode speech.
#[derive(Args, Debug, Clone)]
pub struct LanguageArg {
    /// The spoken language: an ISO 639-1 code (en, de, fr, es, …), auto to detect it, or a list
    /// (de,fr,en) to detect which of those it is (other languages than English need a
    /// multilingual model such as ggml-base.bin; default: English for `.en` models, detected for
    /// the others)
    #[arg(long = "language", short = 'l', value_name = "CODE|auto|CODE,CODE…", value_parser = parse_language)]
    pub code: Option<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum WlkInput {
    Pcm,
    Webm,
}

fn parse_language(s: &str) -> Result<String, String> {
    check_language(s, true)
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    language: LanguageArg,
    /// Address to listen on (only this machine by default)
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free port; the chosen one is printed)
    #[arg(long, default_value_t = 8888)]
    port: u16,
    /// Decoding threads per worker (default: the machine's cores, at most 4)
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Decoding workers (each ~190 MB for tiny.en); threads × workers should not pass the cores
    #[arg(long, value_name = "N", default_value_t = 1)]
    workers: usize,
    /// A client that sends no audio this long is closed (code 1008), in seconds
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    idle_timeout_secs: u32,
    /// Clients at once
    #[arg(long, value_name = "N", default_value_t = 16)]
    max_clients: usize,
    /// Silence after speech that ends an utterance by itself, in ms (0: only the client's eos)
    #[arg(long, value_name = "MS", default_value_t = 800)]
    pause_ms: u32,
    /// Silence after speech that starts decoding the final text at once, in ms (0: off); when
    /// no more speech comes, the final is ready at the end of speech
    #[arg(long, value_name = "MS", default_value_t = 80)]
    early_decode_ms: u32,
    /// Routing key of the transcript events published with --amqp
    #[arg(
        long,
        value_name = "KEY",
        default_value = "talkytonny.transcription.completed"
    )]
    routing_key: String,
    /// Require this token (`Authorization: Bearer`, or `?token=`) [env: `CANDYBAR_ASR_TOKEN`]
    #[arg(
        long,
        value_name = "TOKEN",
        hide_env_values = true,
        env = "CANDYBAR_ASR_TOKEN"
    )]
    token: Option<String>,
    /// What WhisperLiveKit's browser page is asked to send: raw PCM (its `--pcm-input` mode) or
    /// WebM/Opus from a MediaRecorder (its server's default). Both are accepted either way.
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "pcm")]
    wlk_input: WlkInput,
    /// Exit when the process that started this one exits (the window runs the server this way)
    #[arg(long, hide = true)]
    exit_with_parent: bool,
}

pub async fn serve(args: ServeArgs, source: &super::SourceArgs) -> anyhow::Result<ExitCode> {
    use candybar_asr::server::{BusConfig, ServerConfig, serve};
    // Transcripts go on the bus only when --amqp is given here (not from config or environment).
    let bus = match &source.amqp {
        Some(url) => {
            let settings = source.settings()?;
            Some(BusConfig {
                url: url.clone(),
                exchange: source.exchange(&settings),
                routing_key: args.routing_key.clone(),
            })
        }
        None => None,
    };
    let model = resolve_model(&args.model.name)?;
    let defaults = ServerConfig::default();
    let cfg = ServerConfig {
        model: model.clone(),
        threads: args.threads.unwrap_or(defaults.threads),
        workers: args.workers.max(1),
        max_clients: args.max_clients.max(1),
        token: args.token.filter(|t| !t.is_empty()),
        language: args.language.code.clone(),
        bus: bus.clone(),
        pause_ms: args.pause_ms,
        early_decode_ms: args.early_decode_ms,
        idle_timeout_secs: args.idle_timeout_secs,
        wlk_webm: args.wlk_input == WlkInput::Webm,
        ..defaults
    };
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    eprintln!(
        "candybar: listening on http://{addr} (ws://{addr}/asr, OpenAI-compatible http://{addr}/v1){}; loading {}",
        if cfg.token.is_some() {
            ", token required"
        } else {
            ""
        },
        model.display()
    );
    match (
        candybar_asr::engine::BACKEND,
        candybar_asr::engine::gpu_devices(),
    ) {
        ("cpu", _) => {}
        ("vulkan", []) => eprintln!(
            "candybar: whisper.cpp is built for Vulkan, but found no Vulkan GPU: decoding on the \
             CPU (install your GPU's Vulkan driver; a CPU Vulkan driver such as Mesa's lavapipe is \
             used only when named, e.g. GGML_VK_VISIBLE_DEVICES=0)"
        ),
        (backend, devices) => eprintln!(
            "candybar: whisper.cpp decodes with {backend} on {}",
            devices.first().map_or("the first device", String::as_str)
        ),
    }
    let parent = std::os::unix::process::parent_id();
    let exit_with_parent = args.exit_with_parent;
    let orphaned = async move {
        if !exit_with_parent {
            return std::future::pending().await;
        }
        // A parent that dies hands its children to init (or a subreaper): the parent id changes.
        while std::os::unix::process::parent_id() == parent {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        eprintln!("candybar: the window that started this server has exited; stopping");
    };
    serve(listener, cfg, async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = orphaned => {}
        }
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

pub fn run(cmd: AsrCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AsrCommand::Serve(_) => anyhow::bail!("serve runs on the async runtime"),
        AsrCommand::Models { cmd } => models(cmd.unwrap_or(ModelsCommand::List)),
        AsrCommand::Transcribe(args) => transcribe(&args),
    }
}

/// The installed models (size, languages, kind) and the catalogue.
fn print_models() {
    use candybar_asr::models::{self, CATALOGUE, mb};
    let dir = model_dir().map_or_else(
        || "(no model directory)".to_owned(),
        |d| d.display().to_string(),
    );
    let installed = models::installed();
    if installed.is_empty() {
        println!("no models in {dir}");
    } else {
        println!("in {dir}:");
    }
    for m in &installed {
        let what = match m.header {
            Some(h) => format!(
                "{:<13} {} ({})",
                if h.multilingual() {
                    "99 languages"
                } else {
                    "English only"
                },
                h.size_class(),
                match h.ftype % 1000 {
                    0 => "f32",
                    1 => "f16",
                    // ggml's file types.
                    2 => "q4_0",
                    3 => "q4_1",
                    7 => "q8_0",
                    8 => "q5_0",
                    9 => "q5_1",
                    _ => "quantized",
                }
            ),
            None => "not a Whisper model".to_owned(),
        };
        println!("  {:<22} {:>9}  {what}", m.name, mb(m.bytes));
    }
    println!("catalogue (candybar asr models pull NAME):");
    for e in CATALOGUE {
        let here = installed.iter().any(|m| m.name == e.name);
        println!(
            "  {:<22} {:>5} MiB  {:<13}{}",
            e.name,
            e.size_mib,
            if e.multilingual {
                "99 languages"
            } else {
                "English only"
            },
            if here { "  installed" } else { "" }
        );
    }
}

fn models(cmd: ModelsCommand) -> anyhow::Result<ExitCode> {
    use candybar_asr::models::{self, Checksum, catalogue_entry};
    match cmd {
        ModelsCommand::List => print_models(),
        ModelsCommand::Add { file, name } => {
            let dest = models::add(&file, name.as_deref())?;
            println!("{}", dest.display());
        }
        ModelsCommand::Remove { name } => {
            let gone = models::remove(&name)?;
            eprintln!("candybar: removed {}", gone.display());
        }
        ModelsCommand::Quantize { model, name } => {
            let src = resolve_model(&model)?;
            let short = name.unwrap_or_else(|| format!("{}-q8_0", models::short_name(&src)));
            let dest = model_path(&short)?;
            eprintln!(
                "candybar: quantizing {} to Q8_0 into {}",
                src.display(),
                dest.display()
            );
            let mut bar = Progress::new();
            let q = candybar_asr::quantize::quantize_q8_0(&src, &dest, |done, total| {
                bar.show(done, Some(total));
            })?;
            bar.finish();
            eprintln!(
                "candybar: {} weight matrices quantized, {} tensors kept; {} -> {}",
                q.quantized,
                q.kept,
                models::mb(q.bytes_in),
                models::mb(q.bytes_out)
            );
            println!("{}", q.path.display());
        }
        ModelsCommand::Pull {
            what,
            from,
            sha1,
            sha256,
            name,
        } => {
            let is_url = what.starts_with("http://") || what.starts_with("https://");
            let (url, sum, short) = if is_url {
                let sum = match (sha1, sha256) {
                    (Some(x), _) => Checksum::Sha1(x),
                    (None, Some(x)) => Checksum::Sha256(x),
                    (None, None) => anyhow::bail!(
                        "a URL needs the sum its file must have: --sha1 HEX or --sha256 HEX"
                    ),
                };
                // The last path segment, without a signed URL's query or a fragment.
                let path = what.split(['?', '#']).next().unwrap_or_default();
                let file = path.rsplit('/').next().unwrap_or("model.bin");
                let short = name.unwrap_or_else(|| models::short_name(std::path::Path::new(file)));
                (what.clone(), sum, short)
            } else {
                let e = catalogue_entry(&what)
                    .ok_or_else(|| models::ModelError::Unknown(what.clone()))?;
                let url = format!("{}/ggml-{}.bin", from.trim_end_matches('/'), e.name);
                (url, e.checksum(), name.unwrap_or_else(|| e.name.to_owned()))
            };
            let dest = model_path(&short)?;
            eprintln!(
                "candybar: pulling {} into {}",
                candybar_core::redact::mask_url(&url),
                dest.display()
            );
            let mut bar = Progress::new();
            let got = tokio::runtime::Handle::current().block_on(models::pull(
                &url,
                &dest,
                &sum,
                |done, total| bar.show(done, total),
            ))?;
            bar.finish();
            println!("{}", got.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the model named `short` goes in the model directory (made if missing).
fn model_path(short: &str) -> anyhow::Result<std::path::PathBuf> {
    use candybar_asr::models;
    models::check_name(short)?;
    let dir = model_dir().ok_or(models::ModelError::NoDir)?;
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join(format!("ggml-{short}.bin")))
}

/// A download's progress on stderr: one line redrawn on a terminal, a line per tenth otherwise.
struct Progress {
    started: std::time::Instant,
    last: std::time::Instant,
    tenth: u64,
    terminal: bool,
}

impl Progress {
    fn new() -> Self {
        use std::io::IsTerminal as _;
        let now = std::time::Instant::now();
        Self {
            started: now,
            last: now,
            tenth: 0,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, done: u64, total: Option<u64>) {
        use candybar_asr::models::mb;
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(0.001) / 1e6;
        let line = match total {
            Some(t) if t > 0 => format!(
                "{} of {} ({:.0} %), {rate:.1} MB/s",
                mb(done),
                mb(t),
                done as f64 * 100.0 / t as f64
            ),
            _ => format!("{}, {rate:.1} MB/s", mb(done)),
        };
        if self.terminal {
            if self.last.elapsed() >= std::time::Duration::from_millis(200) {
                eprint!("\r  {line}    ");
                self.last = std::time::Instant::now();
            }
        } else if let Some(t) = total.filter(|t| *t > 0) {
            let tenth = done * 10 / t;
            if tenth > self.tenth {
                self.tenth = tenth;
                eprintln!("  {line}");
            }
        }
    }

    fn finish(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}

fn transcribe(args: &TranscribeArgs) -> anyhow::Result<ExitCode> {
    let path = resolve_model(&args.model.name)?;
    let engine = Engine::load(&path)?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(4)));
    let mut worker = engine.worker(threads)?;
    if let Some(code) = &args.language.code {
        check_language(code, engine.multilingual()).map_err(anyhow::Error::msg)?;
    }
    let opts = DecodeOptions {
        language: args.language.code.clone(),
        ..DecodeOptions::default()
    };
    let (mut errors, mut ref_words) = (0usize, 0usize);
    let mut failed = false;
    for file in &args.files {
        let decoded = std::fs::read(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))
            .and_then(|bytes| {
                let ext = file
                    .extension()
                    .map(|e| e.to_string_lossy().to_ascii_lowercase());
                decode_audio(bytes, ext.as_deref()).map_err(|e| format!("{}: {e}", file.display()))
            });
        let samples = match decoded {
            Ok(s) => s,
            Err(e) => {
                eprintln!("candybar: {e}");
                failed = true;
                continue;
            }
        };
        let t = worker.transcribe_with(&samples, &opts)?;
        let score = if args.score {
            let reference = std::fs::read_to_string(file.with_extension("txt")).map_err(|e| {
                anyhow::anyhow!(
                    "--score needs {}: {e}",
                    file.with_extension("txt").display()
                )
            })?;
            let (e, n) = wer::errors(&reference, &t.text);
            errors += e;
            ref_words += n;
            Some(e as f64 / n.max(1) as f64)
        } else {
            None
        };
        match args.format {
            Format::Text => println!("{}", t.text),
            Format::Ndjson => {
                let line = serde_json::json!({
                    "file": file.display().to_string(),
                    "model": engine.name(),
                    "text": t.text,
                    "language": t.language,
                    "confidence": t.confidence,
                    "segments": t.segments,
                    "audio_ms": t.audio_ms,
                    "decode_ms": t.decode_ms,
                    "real_time_factor": t.decode_ms as f64 / t.audio_ms.max(1) as f64,
                    "wer": score,
                });
                println!("{line}");
            }
        }
    }
    if args.score && ref_words > 0 {
        eprintln!(
            "candybar: word error rate {:.1} % ({errors} errors in {ref_words} words)",
            100.0 * errors as f64 / ref_words as f64
        );
    }
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
