//! `candybar mission portfolio|decisions|drift|risks|brief`: Mission Control's answers from the
//! journal, for scripts and tests — the same rules as the window's Mission view.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use candybar_core::mission::report::{Report, ReportFormat, render};
use candybar_core::time::{Micros, now_us};

use super::SourceArgs;
use super::journal::{journal_dir, parse_when};

#[derive(Subcommand, Debug)]
pub enum MissionCommand {
    /// One card per project: status, health and why, progress, open blockers, agent runs,
    /// momentum (work in the last 24 h against the 24 h before) — top movers first.
    Portfolio(MissionArgs),
    /// Decisions in the range, ranked by impact × category × recency (0.5 per day of age), who
    /// made them and an autonomy alert for agents' high-impact ones in the last 24 h.
    Decisions(MissionArgs),
    /// Roadmap versions and what changed between them, scope changes, checkpoints, progress,
    /// and the drift autonomous reviews found.
    Drift(MissionArgs),
    /// What is open: escalations, gates (overdue first, with their SLA), approvals waiting for a
    /// person, blockers by kind and owner, stalled projects.
    Risks(MissionArgs),
    /// The AM/PM briefing over the range, in Markdown, each statement with the events it came
    /// from.
    Brief(MissionArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq, Default)]
pub enum MissionFormat {
    /// Markdown (tables and lists), for people.
    #[default]
    Md,
    Json,
    Csv,
    /// A PDF to read and print (with `--out FILE`, or stdout redirected to a file).
    Pdf,
}

#[derive(Args, Debug)]
pub struct MissionArgs {
    /// The journal's directory [default: journal in the data dir; env: `CANDYBAR_JOURNAL`]
    #[arg(long, value_name = "DIR")]
    journal: Option<PathBuf>,
    /// The range starts this long ago (12h, 7d) or at this moment (RFC 3339) [default: 12h]
    #[arg(long, value_name = "WHEN", default_value = "12h")]
    since: String,
    /// The range ends (and the answers are as of) this long ago or this moment [default: now]
    #[arg(long, value_name = "WHEN")]
    until: Option<String>,
    #[arg(long, value_enum, default_value_t = MissionFormat::Md)]
    format: MissionFormat,
    /// Write to this file instead of stdout
    #[arg(long, short = 'o', value_name = "FILE")]
    out: Option<PathBuf>,
    /// `brief`: also keep the briefing in the archive and, with a broker configured, announce it
    /// (`reporting.report.started`, then `completed` or `failed`)
    #[arg(long)]
    save: bool,
    /// Where `--save` keeps briefings [default: `[mission] archive`, else briefings in the data
    /// dir]
    #[arg(long, value_name = "DIR")]
    archive: Option<PathBuf>,
    /// `brief`: have it rewritten for reading by the OpenAI-compatible model `[mission] llm_url`
    /// names (the facts and sources are checked to be kept, else it is used as written)
    #[arg(long)]
    llm: bool,
}

pub fn run(cmd: &MissionCommand, source: &SourceArgs) -> anyhow::Result<ExitCode> {
    let settings = source.settings()?;
    let args = match cmd {
        MissionCommand::Portfolio(a)
        | MissionCommand::Decisions(a)
        | MissionCommand::Drift(a)
        | MissionCommand::Risks(a)
        | MissionCommand::Brief(a) => a,
    };
    let now = now_us();
    let until = match args.until.as_deref().map(|u| parse_when(u, now, "--until")) {
        None => now,
        Some(Ok(t)) => t,
        Some(Err(e)) => return Ok(bad(&e)),
    };
    let since = match parse_when(&args.since, until, "--since") {
        Ok(t) if t <= until => t,
        Ok(_) => return Ok(bad("--since is after --until")),
        Err(e) => return Ok(bad(&e)),
    };
    let dir = journal_dir(args.journal.as_deref(), &settings)?;
    let loaded =
        match crate::mission::load(&dir, until, super::journal::all_cores(), &mut |_, _| {}) {
            Ok(l) => l,
            Err(e) => return Ok(bad(&e)),
        };
    eprintln!(
        "candybar: {}{} Mission Control events from {} blocks of {} ({} ruled out by their \
         index) in {} ms",
        if loaded.from_snapshot {
            "the saved model and "
        } else {
            ""
        },
        loaded.events,
        loaded.blocks_read,
        dir.display(),
        loaded.blocks_skipped,
        loaded.took.as_millis()
    );
    let report = match cmd {
        MissionCommand::Portfolio(_) => Report::Portfolio,
        MissionCommand::Decisions(_) => Report::Decisions,
        MissionCommand::Drift(_) => Report::Drift,
        MissionCommand::Risks(_) => Report::Risks,
        MissionCommand::Brief(_) => Report::Brief,
    };
    let title = brief_title(until);
    if (args.save || args.llm) && report != Report::Brief {
        return Ok(bad(
            "--save and --llm are for briefings: use them with `mission brief`",
        ));
    }
    // Rewritten once, for what is printed and what is kept.
    let llm_brief = args.llm.then(|| {
        let b = candybar_core::mission::brief(&loaded.mission, &title, since, until, until);
        rewritten(b, &settings)
    });
    if args.save {
        let b = llm_brief.clone().unwrap_or_else(|| {
            candybar_core::mission::brief(&loaded.mission, &title, since, until, until)
        });
        if let Err(e) = save_brief(&b, args, source, &settings) {
            return Ok(bad(&e));
        }
    }
    let text_format = match args.format {
        MissionFormat::Md | MissionFormat::Pdf => ReportFormat::Markdown,
        MissionFormat::Json => ReportFormat::Json,
        MissionFormat::Csv => ReportFormat::Csv,
    };
    let text = match (&llm_brief, text_format) {
        (Some(b), ReportFormat::Markdown) => Ok(b.markdown.clone()),
        (Some(b), ReportFormat::Json) => serde_json::to_string_pretty(b)
            .map(|t| t + "\n")
            .map_err(|e| e.to_string()),
        _ => render(&loaded.mission, report, since, until, &title, text_format),
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => return Ok(bad(&e)),
    };
    if args.format == MissionFormat::Pdf {
        let pdf = crate::pdf::markdown_to_pdf(&text, &format!("candybar — {}", report.name()));
        let written = write_binary(&pdf, args.out.as_deref());
        loaded.save(&dir);
        return written;
    }
    if let Some(path) = &args.out {
        std::fs::write(path, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    } else {
        use std::io::Write as _;
        print!("{text}");
        let _ = std::io::stdout().flush();
    }
    loaded.save(&dir);
    Ok(ExitCode::SUCCESS)
}

/// `--llm`: the briefing rewritten by the configured model, else as written (with why).
fn rewritten(
    b: candybar_core::mission::Briefing,
    settings: &super::Settings,
) -> candybar_core::mission::Briefing {
    let m = &settings.file.mission;
    let Some(url) = m.llm_url.as_deref() else {
        eprintln!(
            "candybar: --llm needs [mission] llm_url (an OpenAI-compatible endpoint); the briefing is as written"
        );
        return b;
    };
    let model = m.llm_model.as_deref().unwrap_or("default");
    let key = std::env::var("CANDYBAR_LLM_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    match tokio::runtime::Handle::current().block_on(crate::mission::rewrite(
        &b,
        url,
        model,
        key.as_deref(),
    )) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("candybar: {e}; the briefing is as written");
            b
        }
    }
}

/// `--save`: the briefing kept in the archive and announced on the bus when there is one.
fn save_brief(
    b: &candybar_core::mission::Briefing,
    args: &MissionArgs,
    source: &SourceArgs,
    settings: &super::Settings,
) -> Result<(), String> {
    let archive = args
        .archive
        .clone()
        .or_else(|| crate::mission::archive_dir(&settings.file.mission))
        .ok_or("no home directory to keep briefings in: give --archive DIR")?;
    let url = source.amqp_url(settings);
    let exchange = source.exchange(settings);
    let bus = url.as_ref().map(|u| (u.expose(), exchange.as_str()));
    let (path, bus_error) = tokio::runtime::Handle::current()
        .block_on(crate::mission::keep_and_announce(b, &archive, bus))?;
    eprintln!("candybar: the briefing is kept in {}", path.display());
    if let Some(e) = bus_error {
        eprintln!(
            "candybar: the bus did not take its reporting events: {}",
            candybar_core::redact::mask_secrets_in(&e)
        );
    }
    Ok(())
}

/// A PDF to `out`, or to stdout when it is not a terminal.
fn write_binary(bytes: &[u8], out: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    use std::io::{IsTerminal as _, Write as _};
    if let Some(path) = out {
        std::fs::write(path, bytes)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        eprintln!("candybar: wrote {} ({} bytes)", path.display(), bytes.len());
        return Ok(ExitCode::SUCCESS);
    }
    let mut stdout = std::io::stdout();
    if stdout.is_terminal() {
        return Ok(bad(
            "a PDF is not for the terminal: give --out FILE or redirect stdout",
        ));
    }
    stdout.write_all(bytes)?;
    Ok(ExitCode::SUCCESS)
}

fn bad(e: &str) -> ExitCode {
    eprintln!("candybar: {e}");
    ExitCode::from(2)
}

/// "AM briefing" before local noon, else "PM briefing", with the day.
#[must_use]
pub fn brief_title(at_us: Micros) -> String {
    use chrono::{Local, TimeZone as _, Timelike as _};
    match Local.timestamp_micros(at_us).single() {
        Some(t) => format!(
            "{} briefing — {}",
            if t.hour() < 12 { "AM" } else { "PM" },
            t.format("%a %d %b %Y")
        ),
        None => "Briefing".into(),
    }
}
